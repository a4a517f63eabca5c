//! Errors in two layers: what went wrong for the operator (`Error`), keeping the low-level
//! cause (errno, a command's stderr) as `source()` so it is never flattened away.

use std::path::PathBuf;

use thiserror::Error;

use crate::external_tool::CommandError;
pub use crate::ids::InputError;
use crate::ids::JournalId;

/// Everything that can stop an operation. Refusals are not errors: they are verdicts.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),

    #[error(
        "device-mapper is not available: {path} cannot be opened (is dm-mod loaded? are you root?)"
    )]
    NoDeviceMapper {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("device-mapper {operation} on {name} failed")]
    Dm {
        operation: &'static str,
        name: String,
        #[source]
        source: devicemapper::DmError,
    },

    #[error("device-mapper {operation} of {name} failed")]
    DmIoctl {
        operation: &'static str,
        name: String,
        #[source]
        source: std::io::Error,
    },

    #[error("listing device-mapper mappings failed: {0}")]
    DmList(String),

    #[error("{what} failed")]
    Command {
        what: &'static str,
        #[source]
        source: CommandError,
    },

    #[error("the journal {path} cannot be used")]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the journal {path} has an unreadable entry at line {line}: {why}")]
    JournalCorrupt {
        path: PathBuf,
        line: usize,
        why: String,
    },

    #[error("journal entry {0} does not exist or is not a change dmheal can undo")]
    NoSuchEntry(JournalId),

    #[error("cannot restore entry {id}: {why}")]
    RestoreRefused { id: JournalId, why: String },

    #[error("could not take the {lock} lock within {seconds} s")]
    LockTimeout { lock: String, seconds: f64 },

    #[error("the {lock} lock cannot be used")]
    Lock {
        lock: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} failed: {why}")]
    Xapi { what: &'static str, why: String },

    /// The in-process core refuses what only a separate process may do (open SM's fcntl lock
    /// file: its close() would drop SM's own lock). The caller runs the `dmheal` binary.
    #[error("{0}")]
    NeedsOwnProcess(String),

    #[error("VDI {0} has no logical volume in any SR volume group on this host")]
    VdiNotFound(String),

    #[error("no VM has the uuid or name-label {0:?}")]
    VmNotFound(String),

    #[error("{0}")]
    Io(String, #[source] std::io::Error),
}

impl Error {
    /// A stable machine name for the kind of failure (JSON output, Python exceptions).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Input(_) => "bad_input",
            Error::NoDeviceMapper { .. } => "no_device_mapper",
            Error::Dm { .. } | Error::DmIoctl { .. } | Error::DmList(_) => "device_mapper",
            Error::Command { .. } => "command",
            Error::Journal { .. } | Error::JournalCorrupt { .. } => "journal",
            Error::NoSuchEntry(_) => "not_found",
            Error::RestoreRefused { .. } => "refused",
            Error::LockTimeout { .. } | Error::Lock { .. } => "lock",
            Error::VdiNotFound(_) | Error::VmNotFound(_) => "not_found",
            Error::Xapi { .. } => "xapi",
            Error::NeedsOwnProcess(_) => "needs_own_process",
            Error::Io(..) => "io",
        }
    }

    /// The whole chain of causes, outermost first, as one line.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if !out.ends_with(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
