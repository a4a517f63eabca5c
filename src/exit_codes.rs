//! Documented exit codes, one meaning each (also listed in the README and `dmheal --help`).

use std::process::ExitCode;

use crate::doctor::{Report, Severity};
use crate::error::Error;
use crate::heal::Action;
use crate::pool::PoolCounts;
use crate::results::ScanCounts;
use crate::verdict::Verdict;
use crate::vm::VmReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Nothing to do (absent, healthy), or the action was done.
    Ok = 0,
    /// An error: nothing was changed unless the output says so.
    Error = 1,
    /// Bad input or usage: nothing was touched.
    BadInput = 2,
    /// A ghost was found and not removed (inspect, scan, or heal without --apply).
    GhostFound = 3,
    /// Refused: the mapping is in use.
    InUse = 4,
    /// Refused: something is odd, a human must look.
    Suspicious = 5,
}

impl Exit {
    pub fn of_verdict(v: Verdict) -> Self {
        match v {
            Verdict::Absent | Verdict::Healthy => Exit::Ok,
            Verdict::Ghost => Exit::GhostFound,
            Verdict::InUse => Exit::InUse,
            Verdict::Suspicious => Exit::Suspicious,
        }
    }

    pub fn of_heal(action: Action, v: Verdict) -> Self {
        match action {
            Action::NothingToDo | Action::Removed => Exit::Ok,
            Action::WouldRemove => Exit::GhostFound,
            Action::Refused => Exit::of_verdict(v),
            Action::Failed => Exit::Error,
        }
    }
}

impl Exit {
    /// A batch heal: a dry run 3 when it found ghosts; with --apply 1 when the kernel refused a
    /// removal, else 0 (a ghost that was not one any more at the re-check is a verdict, not a
    /// failure; the result says it).
    pub fn of_batch(b: &crate::heal_all::BatchOutcome) -> Self {
        if b.counts.failed > 0 {
            Exit::Error
        } else if b.counts.would_remove > 0 {
            Exit::GhostFound
        } else {
            Exit::Ok
        }
    }

    /// A scan: 3 when it found a ghost, else 5 when something is suspicious.
    pub fn of_scan(c: &ScanCounts) -> Self {
        if c.ghost > 0 {
            Exit::GhostFound
        } else if c.suspicious > 0 {
            Exit::Suspicious
        } else {
            Exit::Ok
        }
    }

    /// The doctor: 3 while a finding above Info remains (after --apply too: what it fixed is
    /// no longer a finding).
    pub fn of_doctor(r: &Report) -> Self {
        if r.remaining.iter().any(|f| f.severity > Severity::Info) {
            Exit::GhostFound
        } else {
            Exit::Ok
        }
    }

    /// A pool scan: 3 when a host found a ghost, else 5 when one found something suspicious,
    /// else 1 when a live host could not be scanned (the pool is not known to be clean).
    pub fn of_pool_scan(c: &PoolCounts) -> Self {
        if c.ghost > 0 {
            Exit::GhostFound
        } else if c.suspicious > 0 {
            Exit::Suspicious
        } else if c.hosts.failed > 0 {
            Exit::Error
        } else {
            Exit::Ok
        }
    }

    /// A pool heal: 1 when a host that is up failed or a removal failed, else 3 when a dry run
    /// found ghosts, else 0.
    pub fn of_pool_heal(p: &crate::pool::PoolHeal) -> Self {
        if p.counts.hosts.failed > 0 || p.counts.batch.failed > 0 {
            Exit::Error
        } else if p.counts.batch.would_remove > 0 {
            Exit::GhostFound
        } else {
            Exit::Ok
        }
    }

    /// `dmheal vm`: 3 while a proven ghost blocks the VM (after --apply too: what it healed
    /// is no longer a finding), else 5 while something else blocks it, else 0.
    pub fn of_vm(r: &VmReport) -> Self {
        if r.has_ghost() {
            Exit::GhostFound
        } else if r.has_blocking() {
            Exit::Suspicious
        } else {
            Exit::Ok
        }
    }

    /// `dmheal hook`: the hook's own status, 0 or 1 (its report says what it did).
    pub fn of_hook(status: std::process::ExitStatus) -> Self {
        if status.success() {
            Exit::Ok
        } else {
            Exit::Error
        }
    }

    /// An error: 2 for bad input (nothing was touched), else 1.
    pub fn of_error(e: &Error) -> Self {
        match e {
            Error::Input(_) => Exit::BadInput,
            _ => Exit::Error,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}
