//! The doctor's checks: pure functions of a `Snapshot`, one module per kind of record. Each
//! says when it fires and, as importantly, when it must not; each fix it offers is one
//! `--apply` may carry out only after re-checking, and only when it is safe (`SafeAction`).

pub mod refcounts;
pub mod references;
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
/// takes to undo it (`dmheal restore <id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SafeAction {
    /// SR.forget a record that nothing references, then SR.scan the copy that stays (when
    /// there is exactly one).
    SrForget { sr: Ref, rescan: Option<Ref> },
    /// VM.power_state_reset a VM whose domain provably does not exist.
    VmPowerStateReset { vm: Ref },
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
    pub check: &'static str,
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

pub(crate) fn sr_label(s: &Snapshot, r: &str) -> String {
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
    let mut out = srs::duplicates(s);
    let duplicated: std::collections::BTreeSet<Ref> = out
        .iter()
        .filter_map(|f| f.evidence["duplicate"]["uuid"].as_str())
        .filter_map(|u| {
            s.srs
                .iter()
                .find(|(_, sr)| sr.uuid == u)
                .map(|(r, _)| r.clone())
        })
        .collect();
    out.extend(srs::without_pbds(s));
    out.extend(srs::pbd_problems(s, &duplicated));
    out.extend(srs::nearly_full(s));
    out.extend(vms::without_domain(s));
    out.extend(vms::paused_with_a_domain(s));
    out.extend(vdis::stale_host_keys(s));
    out.extend(vdis::on_control_domain(s));
    out.extend(vdis::orphaned(s));
    out.extend(vdis::broken_chains(s));
    out.extend(vdis::chains(s));
    out.extend(refcounts::stale(s));
    sort(&mut out);
    out
}

/// Most severe first, then by check and subject.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.check.cmp(b.check))
            .then(a.subject.cmp(&b.subject))
    });
}

#[cfg(test)]
pub(crate) mod fixtures;
