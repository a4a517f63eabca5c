//! The Storage Manager layer: SM's reference counts and SM's locks.

pub mod lock;
pub mod refcount;

pub use lock::{SmLock, SmLockKind};
pub use refcount::Refcount;
