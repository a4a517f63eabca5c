//! The cross-layer doctor, pool-wide: SRs judged by what is on their storage (`identity`, from
//! every host's `survey`), PBDs of vanished hosts, VMs whose power state and domain disagree on
//! any host, VDIs wedged between layers, stale SM refcounts, chains, ghost mappings — each
//! with the evidence and the commands that work. `--apply` does only what `dmheal restore
//! <id>` undoes exactly (`apply`, `undo`), each action re-checked on a fresh read and
//! journalled with what it takes to undo it; everything else is a printed plan.

pub mod apply;
pub mod checks;
pub mod identity;
pub mod snapshot;
pub mod survey;
pub mod undo;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::context::OpContext;
use crate::error::{Error, Result};
use crate::ids::JournalId;
use crate::verdict::Verdict;
use crate::xapi::Xapi;

pub use checks::{Finding, Severity};
use snapshot::LocalMapping;

#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub subject: String,
    pub action: String,
    pub result: String,
    pub journal_id: Option<JournalId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub host: Option<String>,
    pub findings: Vec<Finding>,
    /// Checks that could not run, and why (they did not fire for lack of evidence).
    pub unchecked: Vec<String>,
    pub applied: Vec<Applied>,
    /// What still stands: after `--apply`, a fresh diagnosis; otherwise the findings.
    pub remaining: Vec<Finding>,
    /// Every host of the pool as asked for its survey: state, product version, what it said.
    pub hosts: Vec<crate::xapi::fanout::HostAnswer<survey::Survey>>,
}

/// The pool's records, every host's survey, this host's local facts, and every check's
/// findings. `per_host`: how long each other host may take to answer its survey.
pub fn diagnose(
    config: &Config,
    xapi: &Xapi,
    per_host: Duration,
) -> Result<(snapshot::Snapshot, Vec<Finding>, Vec<String>)> {
    let host_uuid = config.xapi.this_host();
    let mut snap = snapshot::gather(xapi, host_uuid.as_deref(), survey::survey(config), per_host)
        .map_err(crate::xapi::XapiError::failing("reading the pool"))?;
    snap.refcounts = crate::sm::refcount::all(&config.refcount_dir)
        .into_iter()
        .map(|(sr, vdi, c)| (sr.to_string(), vdi.to_string(), c))
        .collect();
    let mut unchecked = Vec::new();
    if snap.this_host.is_none() {
        unchecked.push(
            "this host is unknown to xapi: VMs, host keys and refcounts of this host not checked"
                .into(),
        );
    }
    if let Some(crate::domains::Domains::Unknown { why }) = &snap.domains {
        unchecked.push(format!(
            "this host's running domains unknown ({why}): no VM here called domain-less"
        ));
    }
    for (h, answer) in &snap.surveys {
        if Some(h) == snap.this_host.as_ref() {
            continue;
        }
        let name = snap.host_name(h);
        match answer {
            snapshot::HostSurvey::Answered(sv) => {
                if let crate::domains::Domains::Unknown { why } = &sv.domains {
                    unchecked.push(format!(
                        "{name}: running domains unknown ({why}): no VM there called domain-less"
                    ));
                }
                if let crate::storage::PvsView::Unreadable { why } = &sv.storage.lvm {
                    unchecked.push(format!(
                        "{name}: LVM could not be read ({why}): no SR's identity proven from its storage there"
                    ));
                }
            }
            other => unchecked.push(format!(
                "{name} not surveyed ({}): its VMs' domains and its storage not checked",
                other.why_not().unwrap_or("")
            )),
        }
    }
    if let Some(why) = &snap.messages_unread {
        unchecked.push(format!(
            "xapi's messages could not be read ({why}): no alarm reported"
        ));
    }
    if snap.tapdisk_paths.is_none() {
        unchecked.push("tap-ctl failed: nothing called unserved by tapdisk".into());
    }
    let mut ghosts = Vec::new();
    match OpContext::open(config.clone()).and_then(|h| h.scan()) {
        Ok(scan) => {
            let mut mappings: BTreeMap<String, Vec<LocalMapping>> = BTreeMap::new();
            for m in &scan.mappings {
                if let Some(vdi) = &m.facts.vdi {
                    mappings.entry(vdi.to_string()).or_default().push(LocalMapping {
                        dm_name: m.dm_name.clone(),
                        open_count: m.facts.device.as_ref().and_then(|d| d.open_count()),
                        verdict: m.verdict.as_str().into(),
                    });
                }
            }
            snap.mappings = Some(mappings);
            ghosts.extend(
                scan.mappings
                    .iter()
                    .filter(|m| m.verdict == Verdict::Ghost)
                    .map(|m| Finding {
                        code: "ghost_mapping",
                        severity: Severity::Warning,
                        subject: format!("mapping {}", m.dm_name),
                        summary: m.summary.clone(),
                        evidence: json!({"reasons": m.reasons}),
                        plan: vec![crate::commands::heal_here(&m.dm_name)],
                        safe_action: None,
                    }),
            );
        }
        // No device-mapper on this host at all: no mapping exists to be open, and SM's
        // refcounts and host keys are judged without one.
        Err(Error::NoDeviceMapper { .. }) => snap.mappings = Some(BTreeMap::new()),
        Err(e) => unchecked.push(format!(
            "device-mapper mappings not scanned ({}): no host key or refcount of this host called stale",
            e.chain()
        )),
    }
    let mut findings = checks::all(&snap);
    findings.extend(ghosts);
    checks::sort(&mut findings);
    Ok((snap, findings, unchecked))
}

/// Diagnose, and with `apply` carry out what restore undoes exactly and diagnose again.
/// `per_host`: how long each other host may take to answer its survey.
pub fn doctor(config: &Config, apply: bool, per_host: Duration) -> Result<Report> {
    let xapi = config.xapi.require("doctor")?;
    let (snap, findings, unchecked) = diagnose(config, &xapi, per_host)?;
    let mut applied = Vec::new();
    let remaining = if apply {
        for f in findings.iter().filter(|f| f.safe_action.is_some()) {
            applied.push(apply::one(config, &xapi, f, per_host)?);
        }
        diagnose(config, &xapi, per_host)?.1
    } else {
        findings.clone()
    };
    Ok(Report {
        host: snap
            .this_host
            .as_ref()
            .and_then(|r| snap.hosts.get(r))
            .map(|h| h.uuid.clone()),
        findings,
        unchecked,
        applied,
        remaining,
        hosts: snap.asked,
    })
}
