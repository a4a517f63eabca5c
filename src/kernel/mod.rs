//! The kernel's own evidence that a device is used: stacked holders in sysfs, open file
//! descriptors and mounts in /proc.

pub mod holders;
pub mod processes;

pub use holders::{holders_of, Holder};
pub use processes::{scan, Mount, Opener, Usage};
