//! Documented exit codes, one meaning each (also listed in the README and `dmheal --help`).

use std::process::ExitCode;

use crate::heal::Action;
use crate::verdict::Verdict;

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

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}
