//! dmheal: find device-mapper "ghosts" of XenServer / XCP-ng VDIs, prove from every layer that
//! nothing uses them, and remove them safely, journalled and reversibly.
//!
//! Plan, then act: the layers' facts are gathered (`facts`), a pure function decides on them
//! (`verdict`), and only then does an operation act (`heal`), under SM's lock, after
//! journalling. Modules are grouped below by what they are; each group uses only the groups
//! after it. docs/architecture.md walks through them.

// --- Boundary: how callers reach an operation (CLI, `dmheal call`, `_core.call`, the plugin)
// and how answers are shown.
pub mod cli;
pub mod contract;
pub mod execute;
pub mod exit_codes;
#[cfg(feature = "python")]
mod python;
pub(crate) mod render;

// --- Operations: one file (or directory) per command, each on one `OpContext`, and the
// journal they write.
pub(crate) mod context;
pub(crate) mod doctor;
pub(crate) mod heal;
pub(crate) mod heal_all;
pub(crate) mod inspect;
pub(crate) mod journal;
pub(crate) mod pool;
pub(crate) mod restore;
pub(crate) mod scan;
pub(crate) mod vm;

// --- Decision: what every layer says about a mapping, and the verdict (pure) on it.
pub(crate) mod facts;
pub mod results;
pub mod verdict;

// --- Settings: what an operation is given (paths, deadlines, each layer's reader), resolved
// once from the defaults, the environment and the caller.
pub(crate) mod config;

// --- Layers: one module per system dmheal asks or acts on.
pub mod dm;
pub(crate) mod domains;
pub(crate) mod kernel;
pub(crate) mod lvm;
pub(crate) mod sm;
pub(crate) mod storage;
pub(crate) mod tapdisk;
pub(crate) mod xapi;

// --- Foundation: identifiers, errors, trusted files, running tools, logging and progress.
pub(crate) mod commands;
pub mod error;
pub(crate) mod external_tool;
pub mod ids;
pub mod logging;
pub(crate) mod progress;
pub(crate) mod trusted_file;
pub(crate) mod unix_socket;

#[cfg(test)]
mod test_support;
