//! Where dmheal looks and writes, and how long it waits. One place, so the CLI, the Python
//! module and the tests resolve the same settings the same way.

use std::path::PathBuf;
use std::time::Duration;

use crate::lvm::Lvs;

pub const DEFAULT_JOURNAL: &str = "/var/lib/dmheal/journal.jsonl";
/// Environment variable naming the journal (for both the CLI and the Python module).
pub const JOURNAL_ENV: &str = "DMHEAL_JOURNAL";

#[derive(Clone, Debug)]
pub struct Config {
    pub journal: PathBuf,
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    pub refcount_dir: PathBuf,
    pub fairlock_socket: PathBuf,
    pub legacy_lock: PathBuf,
    pub lvs_program: String,
    pub tap_ctl: String,
    /// Deadline for each external tool (lvs, tap-ctl).
    pub tool_timeout: Duration,
    /// Deadline for taking the SM lock and the journal lock.
    pub lock_timeout: Duration,
    /// Running inside an SM process (the activation hook, native backend): SM's fcntl lock
    /// files must not be opened, since any close() would drop SM's own lock.
    pub in_sm_process: bool,
}

/// What a caller may override; everything else is the dom0 default.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub journal: Option<PathBuf>,
    pub lock_timeout: Option<Duration>,
    pub tool_timeout: Option<Duration>,
    pub in_sm_process: bool,
}

impl Config {
    /// The defaults for a XenServer / XCP-ng dom0; `journal` overrides the journal path, else
    /// `DMHEAL_JOURNAL`, else /var/lib/dmheal/journal.jsonl.
    pub fn resolve(o: Overrides) -> Self {
        let journal = o
            .journal
            .or_else(|| std::env::var_os(JOURNAL_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL));
        let tool_timeout = o.tool_timeout.unwrap_or(Duration::from_secs(20));
        Config {
            journal,
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            refcount_dir: "/run/sm/refcount".into(),
            fairlock_socket: crate::sm::lock::FAIRLOCK_SOCKET.into(),
            legacy_lock: crate::sm::lock::LEGACY_LOCK.into(),
            lvs_program: "lvs".into(),
            tap_ctl: "tap-ctl".into(),
            tool_timeout,
            lock_timeout: o.lock_timeout.unwrap_or(Duration::from_secs(30)),
            in_sm_process: o.in_sm_process,
        }
    }
}

impl Config {
    /// The `lvs` front end with this configuration's program and deadline.
    pub fn lvs(&self) -> Lvs {
        Lvs {
            program: self.lvs_program.clone(),
            timeout: self.tool_timeout,
        }
    }
}
