//! dmheal: find device-mapper "ghosts" of XenServer / XCP-ng VDIs, prove from every layer that
//! nothing uses them, and remove them safely, journalled and reversibly.
//!
//! Layers, one module each: `dm` (kernel device-mapper), `kernel` (holders, openers, mounts),
//! `lvm` (names, `lvs`), `tapdisk` (`tap-ctl list`), `sm` (refcounts, locks). `facts` gathers
//! them, `verdict` decides (pure), `heal` acts under the locks, `journal` records.

pub mod cli;
pub mod config;
pub mod contract;
pub mod dm;
pub mod doctor;
pub mod domains;
pub mod error;
pub mod execute;
pub mod exit_codes;
pub mod external_tool;
pub mod facts;
pub mod heal;
pub mod heal_all;
pub mod host;
pub mod ids;
pub mod journal;
pub mod kernel;
pub mod logging;
pub mod lvm;
pub mod pool;
pub mod progress;
pub mod render;
pub mod restore;
pub mod results;
pub mod sm;
pub mod storage;
pub mod tapdisk;
pub mod unix_socket;
pub mod verdict;
pub mod vm;
pub mod xapi;

#[cfg(test)]
mod test_support;

#[cfg(feature = "python")]
mod python;
