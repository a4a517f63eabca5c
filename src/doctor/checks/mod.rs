//! The doctor's checks: pure functions of a `Snapshot`, one module per kind of record. Each
//! says when it fires and, as importantly, when it must not; each fix it offers is one
//! `--apply` may carry out only after re-checking, and only when it is safe (`SafeAction`).

pub mod alarms;
pub mod pool;
pub mod refcounts;
pub mod references;
pub mod snapshots;
pub mod srs;
pub mod vdis;
pub mod vms;

use serde::Serialize;

use super::snapshot::Snapshot;
use crate::xapi::records::Ref;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What `--apply` may do by itself, after re-checking just before, journalled with what it
/// takes to undo it: only what `dmheal restore <id>` undoes exactly. (A power-state reset,
/// for one, cannot be undone through xapi: it stays a printed plan.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SafeAction {
    /// SR.forget a proven phantom duplicate: its storage is another record's, nothing refers
    /// to it, no PBD of it is plugged, and restore gives back every field
    /// (`srs::forget_restorable`).
    SrForget { sr: Ref },
    /// VDI.remove_from_sm_config of a stale `host_<ref>` mark; `ask`: the live host that must
    /// first confirm (through the dmheal plugin) that nothing there uses the VDI.
    RemoveHostKey {
        vdi: Ref,
        key: String,
        ask: Option<Ref>,
    },
    /// Reset SM's refcount of a VDI nothing on this host uses.
    ResetRefcount { sr: String, vdi: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub subject: String,
    pub summary: String,
    /// The records and facts that prove it.
    pub evidence: serde_json::Value,
    /// The exact commands an administrator would run.
    pub plan: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_action: Option<SafeAction>,
}

pub(crate) fn sr_label(s: &Snapshot, r: &Ref) -> String {
    s.srs
        .get(r)
        .map(|sr| format!("SR {} ({:?})", sr.uuid, sr.name_label))
        .unwrap_or_else(|| r.to_string())
}

pub(crate) fn vdi_label(v: &crate::xapi::records::Vdi) -> String {
    format!("VDI {} ({:?})", v.uuid, v.name_label)
}

/// Every check, in order of severity then subject.
pub fn all(s: &Snapshot) -> Vec<Finding> {
    let ids = crate::doctor::identity::judge(s);
    let mut out = srs::identity_findings(s, &ids);
    out.extend(srs::without_pbds(s));
    out.extend(srs::pbd_problems(s, &ids));
    out.extend(srs::usage(s));
    out.extend(pool::no_default_sr(s));
    out.extend(pool::local_default_sr(s));
    out.extend(vms::without_domain(s));
    out.extend(vms::paused_with_a_domain(s));
    out.extend(vdis::stale_host_keys(s));
    out.extend(vdis::on_control_domain(s));
    out.extend(vdis::orphaned(s));
    out.extend(vdis::broken_chains(s));
    out.extend(vdis::chains(s));
    out.extend(refcounts::stale(s));
    out.extend(snapshots::orphaned(s));
    out.extend(snapshots::too_many(s));
    out.extend(snapshots::old(s));
    out.extend(alarms::raised(s));
    sort(&mut out);
    out
}

/// Most severe first, then by check and subject.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.code.cmp(b.code))
            .then(a.subject.cmp(&b.subject))
    });
}

#[cfg(test)]
pub(crate) mod fixtures;
