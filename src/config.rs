//! Where dmheal looks and writes, and how long it waits. One place, so the CLI, the Python
//! module and the tests resolve the same settings the same way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::lvm::{LvmReader, Lvs, PvReader};
use crate::xapi::{self, Endpoint, XapiConfig};

pub const DEFAULT_JOURNAL: &str = "/var/lib/dmheal/journal.jsonl";
/// Environment variable naming the journal (for both the CLI and the Python module).
pub const JOURNAL_ENV: &str = "DMHEAL_JOURNAL";

#[derive(Clone, Debug)]
pub struct Config {
    pub journal: PathBuf,
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    pub dev_root: PathBuf,
    pub refcount_dir: PathBuf,
    pub fairlock_socket: PathBuf,
    pub legacy_lock: PathBuf,
    pub lvs_program: String,
    /// How LVM's view is read: the PVs' metadata (default) or `lvs`.
    pub lvm_reader: LvmReader,
    pub tap_ctl: String,
    /// Deadline for each external tool (lvs, tap-ctl).
    pub tool_timeout: Duration,
    /// Deadline for taking the SM lock and the journal lock.
    pub lock_timeout: Duration,
    /// Running inside an SM process (the activation hook, native backend): SM's fcntl lock
    /// files must not be opened, since any close() would drop SM's own lock.
    pub in_sm_process: bool,
    /// Called from SM's own activation of the volume (the hook): SM's `host_<ref>` mark on
    /// the VDI is then its own, not a sign of use.
    pub activating: bool,
    pub xapi: XapiConfig,
    /// Create xapi messages for ghosts removed and found (off: DMHEAL_XAPI_MESSAGES=off).
    pub xapi_messages: bool,
    /// When the whole operation must be over (the SM hook's budget inside a VM start): every
    /// wait is cut to it, and no removal starts after it.
    pub deadline: Option<Instant>,
}

/// Of an operation's time budget, the share xapi may take (its questions come first, before
/// SM's lock); the rest is the local layers', which decide when xapi did not answer.
pub const XAPI_SHARE: f64 = 0.35;

/// What a caller may override; everything else is the dom0 default.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub journal: Option<PathBuf>,
    pub lock_timeout: Option<Duration>,
    pub tool_timeout: Option<Duration>,
    pub in_sm_process: bool,
    pub activating: bool,
    /// `unix:/path`, `/path` or `http://host:port` [env DMHEAL_XAPI]; "none" disables xapi.
    pub xapi: Option<String>,
    /// The pool certificate (PEM) to trust for an https endpoint [env DMHEAL_XAPI_CA].
    pub xapi_ca: Option<PathBuf>,
    /// A xapi session to reuse [env DMHEAL_XAPI_SESSION].
    pub xapi_session: Option<String>,
    /// This host's uuid [env DMHEAL_HOST_UUID]; default INSTALLATION_UUID of the inventory.
    pub host_uuid: Option<String>,
    /// `metadata` or `lvs` [env DMHEAL_LVM_READER].
    pub lvm_reader: Option<LvmReader>,
    /// The whole operation's time budget, from now.
    pub budget: Option<Duration>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// The defaults for a XenServer / XCP-ng dom0; `journal` overrides the journal path, else
    /// `DMHEAL_JOURNAL`, else /var/lib/dmheal/journal.jsonl.
    pub fn resolve(o: Overrides) -> crate::error::Result<Self> {
        let journal = o
            .journal
            .or_else(|| std::env::var_os(JOURNAL_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL));
        let deadline = o.budget.map(|b| Instant::now() + b);
        let tool_timeout = o.tool_timeout.unwrap_or(Duration::from_secs(20));
        let tool_timeout = o.budget.map_or(tool_timeout, |b| tool_timeout.min(b));
        let endpoint = match o.xapi.or_else(|| env("DMHEAL_XAPI")) {
            Some(s) if s == "none" => None,
            Some(s) => Some(
                match Endpoint::parse(&s).map_err(crate::error::InputError::BadXapi)? {
                    Endpoint::Https { host, port, .. } => Endpoint::Https {
                        host,
                        port,
                        ca: o
                            .xapi_ca
                            .clone()
                            .or_else(|| env("DMHEAL_XAPI_CA").map(PathBuf::from)),
                    },
                    other => other,
                },
            ),
            // On dom0 the local socket exists; elsewhere there is no xapi to ask.
            None => Some(Endpoint::Unix(xapi::LOCAL_SOCKET.into()))
                .filter(|_| std::path::Path::new(xapi::LOCAL_SOCKET).exists()),
        };
        // Under a budget (the SM hook's, `heal --budget`), xapi gets a share of it — connect,
        // login, every read and the logout — and no more: a xapi that accepts and never
        // answers is then "unreachable" while SM's lock, LVM and the removal still have the
        // rest. Without a budget, xapi's calls are bounded one by one.
        let xapi_deadline = o
            .budget
            .map(|b| Instant::now() + b.mul_f64(XAPI_SHARE))
            .or(deadline);
        let xapi = XapiConfig {
            endpoint,
            session: o.xapi_session.or_else(|| env("DMHEAL_XAPI_SESSION")),
            user: env("DMHEAL_XAPI_USER").unwrap_or_else(|| "root".into()),
            password: env("DMHEAL_XAPI_PASSWORD").unwrap_or_default(),
            host_uuid: o.host_uuid.or_else(|| env("DMHEAL_HOST_UUID")),
            inventory: env("DMHEAL_INVENTORY")
                .unwrap_or_else(|| xapi::INVENTORY.into())
                .into(),
            timeout: tool_timeout.min(Duration::from_secs(10)),
            deadline: xapi_deadline,
        };
        let lvm_reader = match o.lvm_reader {
            Some(r) => r,
            None => match env("DMHEAL_LVM_READER") {
                Some(s) => s
                    .parse()
                    .map_err(|why: String| crate::error::InputError::BadLvmReader(why))?,
                None => LvmReader::default(),
            },
        };
        Ok(Config {
            journal,
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            dev_root: "/dev".into(),
            // SM's runtime directory (DMHEAL_SM_RUN_DIR for tests): its refcounts are in
            // refcount/lvm-<sr>/<vdi>.
            refcount_dir: PathBuf::from(
                env("DMHEAL_SM_RUN_DIR").unwrap_or_else(|| "/run/sm".into()),
            )
            .join("refcount"),
            fairlock_socket: crate::sm::lock::FAIRLOCK_SOCKET.into(),
            legacy_lock: crate::sm::lock::LEGACY_LOCK.into(),
            lvs_program: "lvs".into(),
            lvm_reader,
            tap_ctl: "tap-ctl".into(),
            tool_timeout,
            lock_timeout: o.lock_timeout.unwrap_or(Duration::from_secs(30)),
            in_sm_process: o.in_sm_process,
            activating: o.activating,
            xapi,
            xapi_messages: !matches!(
                env("DMHEAL_XAPI_MESSAGES").as_deref(),
                Some("off") | Some("0") | Some("no")
            ),
            deadline,
        })
    }
}

impl Config {
    /// `wait`, cut to what is left before the operation's deadline, if it has one.
    pub fn within(&self, wait: Duration) -> Duration {
        match self.deadline {
            Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
            None => wait,
        }
    }

    /// Whether the operation's deadline has passed.
    pub fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The `lvs` front end with this configuration's program and deadline.
    pub fn lvs(&self) -> Lvs {
        Lvs {
            program: self.lvs_program.clone(),
            deadline: Instant::now() + self.within(self.tool_timeout),
        }
    }

    /// The reader of LVM metadata on PVs, with this configuration's roots and deadline.
    pub fn pv_reader(&self) -> PvReader {
        PvReader {
            sys_root: self.sys_root.clone(),
            dev_root: self.dev_root.clone(),
            deadline: Instant::now() + self.within(self.tool_timeout),
        }
    }
}
