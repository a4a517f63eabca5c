//! The Storage Manager layer: SM's reference counts and SM's locks.

pub mod lock;
pub mod refcount;

pub use refcount::Refcount;
