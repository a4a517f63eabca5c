//! The command line: its arguments (clap, here) and running them (`run`). Targets are parsed
//! into validated types by the contract, at the boundary, so nothing hostile reaches a syscall.

mod run;

pub use run::{error_json, exit_of, run};

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "Exit codes: 0 nothing to do or done; 1 error; 2 bad input; \
3 ghost (or doctor finding) found, not fixed; 4 refused, in use; 5 refused, needs a human.";

/// Find device-mapper ghosts of XenServer / XCP-ng VDIs, prove them unused, heal them safely.
#[derive(Debug, Parser)]
#[command(name = "dmheal", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print JSON instead of tables (same content as the Python module returns).
    #[arg(long, global = true)]
    pub json: bool,

    /// The journal file [env: DMHEAL_JOURNAL] [default: /var/lib/dmheal/journal.jsonl]
    #[arg(long, global = true, value_name = "PATH")]
    pub journal: Option<PathBuf>,

    /// Seconds to wait for SM's lock and the journal lock (0-3600).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub lock_timeout: Option<f64>,

    /// Seconds each external tool (lvs, tap-ctl) may take (0-3600).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub tool_timeout: Option<f64>,

    /// Where xapi listens: unix:/path, /path, http://host:port or https://host[:port]; "none" to not ask xapi
    /// [env: DMHEAL_XAPI] [default: /var/lib/xcp/xapi when it exists]
    #[arg(long, global = true, value_name = "ENDPOINT")]
    pub xapi: Option<String>,

    /// For an https:// xapi endpoint: the pool certificate (PEM) to trust [env: DMHEAL_XAPI_CA].
    /// Credentials: DMHEAL_XAPI_USER (default root) and DMHEAL_XAPI_PASSWORD.
    #[arg(long, global = true, value_name = "PEM")]
    pub xapi_ca: Option<PathBuf>,

    /// A xapi session to reuse instead of logging in as root [env: DMHEAL_XAPI_SESSION]
    #[arg(long, global = true, value_name = "REF")]
    pub xapi_session: Option<String>,

    /// This host's uuid [env: DMHEAL_HOST_UUID] [default: from /etc/xensource-inventory]
    #[arg(long, global = true, value_name = "UUID")]
    pub host_uuid: Option<String>,

    /// How to read LVM's view: "metadata" (the VG metadata on the PVs under the mappings, `lvs`
    /// only for what it cannot cover) or "lvs" [env: DMHEAL_LVM_READER] [default: metadata]
    #[arg(long, global = true, value_name = "READER")]
    pub lvm_reader: Option<crate::lvm::LvmReader>,

    /// No progress on stderr (shown for work over a second when stderr is a terminal).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every layer's view of one volume and the verdict.
    Inspect {
        /// /dev/<vg>/<lv>, /dev/mapper/<name>, a DM name, or a VDI uuid
        target: String,
    },
    /// Inspect every SR-VG mapping and every SR LV on this host.
    Scan,
    /// Remove a proven ghost (dry run unless --apply); with --all, every ghost a scan proves.
    Heal {
        /// /dev/<vg>/<lv>, /dev/mapper/<name>, a DM name, or a VDI uuid
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        target: Option<String>,
        /// Every mapping a scan of this host proves a ghost, each re-decided under SM's lock
        /// and removed as a single heal is; a summary of each.
        #[arg(long)]
        all: bool,
        /// Really remove it (journalled first; `dmheal restore` undoes it).
        #[arg(long)]
        apply: bool,
        /// Also journal a dry run or a refusal (what the SM hook does for every decision).
        #[arg(long)]
        record: bool,
        /// Called from SM's own activation of the volume (the SM hook sets this): SM's
        /// reference and xapi mark for this host are that activation's own.
        #[arg(long, hide = true)]
        activating: bool,
        /// Seconds the whole heal may take: every wait is cut to it, and no removal starts
        /// after it (the SM hook's budget inside a VM start).
        #[arg(long, value_name = "SECONDS")]
        budget: Option<f64>,
    },
    /// List the journal.
    Journal,
    /// Cross-layer doctor, pool-wide: SRs judged by what is on their storage (duplicates,
    /// orphans, unplugged PBDs), VMs running without a domain on any host, VDIs wedged between
    /// layers, ghost mappings; with --apply, only what `restore` undoes exactly.
    Doctor {
        /// Carry out the actions `dmheal restore` undoes exactly (SR.forget of a proven
        /// phantom duplicate, a stale host mark, a stale refcount), each re-checked and
        /// journalled; everything else stays a printed plan.
        #[arg(long)]
        apply: bool,
        /// Seconds each other host may take to answer its survey (default 30).
        #[arg(long, value_name = "SECONDS")]
        host_timeout: Option<f64>,
    },
    /// What this host's storage says about SRs (LVM's PVs and VGs, SR mounts, udev
    /// locations), its domains and its tapdisks: what `doctor` asks each host.
    Survey,
    /// Why won't this VM start? Its disks, every host's mappings of them (asked through
    /// xapi, in parallel), its domain; the blocking finding first, with the next step.
    Vm {
        /// The VM's uuid or name-label
        vm: String,
        /// Heal the proven ghosts, each on the host that holds it (that host decides again
        /// and journals), then ask every host again.
        #[arg(long)]
        apply: bool,
        /// Seconds each host may take to answer (default 30).
        #[arg(long, value_name = "SECONDS")]
        host_timeout: Option<f64>,
    },
    /// This host's mappings of some VDIs, and whether a domain runs here (what `vm` asks each
    /// host through the plugin).
    Volumes {
        /// VDI uuids, separated by commas
        vdis: String,
        /// A domain id to look for on this host.
        #[arg(long)]
        domid: Option<String>,
    },
    /// Pool-wide operations, run on the master through xapi.
    Pool {
        #[command(subcommand)]
        command: PoolCommand,
    },
    /// Install, remove or show the SM pre-activation hook (runs `python3 -m dmheal.sm_hook`).
    Hook {
        /// install | uninstall | status, then options (--site-dir, --sm-dir)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Print the man page (roff) on stdout; the RPM ships it as dmheal(8).
    #[command(hide = true)]
    Manpage,
    /// Recreate the mapping a journalled removal removed.
    Restore {
        /// The journal entry id of the removal
        id: String,
    },
    /// Run one request given as JSON on stdin and answer with one JSON envelope,
    /// {"result": ...} or {"error": {"kind", "message"}}, whatever the exit code: the
    /// interface the Python facade uses (`dmheal contract` lists the requests).
    Call,
    /// Print the operations and parameters the core accepts (JSON), as `call` takes them.
    Contract,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Run `scan` on every host that is up (host.call_plugin) and merge the answers.
    Scan {
        /// Seconds each host may take to answer.
        #[arg(long, default_value = "60", value_parser = seconds)]
        host_timeout: f64,
    },
    /// Heal every proven ghost on every host that is up (`heal --all` there, through the
    /// plugin; a dry run unless --apply), each host's answer said.
    Heal {
        /// Really remove them, each host deciding again under its own locks.
        #[arg(long)]
        apply: bool,
        /// Seconds each host may take to answer.
        #[arg(long, default_value = "300", value_parser = seconds)]
        host_timeout: f64,
    },
}

// Targets, journal ids and numbers are validated by `contract` (not by clap), so that
// `--json` reports bad input as JSON, with the same message the Python module gives.

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    crate::contract::seconds("seconds", v)
        .map(|_| v)
        .map_err(|e| e.to_string())
}
