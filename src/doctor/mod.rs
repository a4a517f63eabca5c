//! The cross-layer doctor: duplicate and orphaned SRs, PBDs of vanished hosts, VMs "running"
//! without a domain, VDIs wedged between layers, broken VHD chains, ghost mappings — each with
//! the evidence and the exact `xe` commands. `--apply` does the safe subset only, re-checking
//! each action just before it runs and journalling it.

pub mod checks;
pub mod snapshot;

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::journal::{Event, Journal};
use crate::ops::Host;
use crate::verdict::Verdict;
use crate::xapi::{view::error_chain, Xapi};

pub use checks::{Finding, SafeAction, Severity};

#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub subject: String,
    pub action: String,
    pub result: String,
    pub journal_id: Option<u64>,
}

impl Report {
    /// The findings still standing: those whose safe action was not carried out.
    pub fn remaining(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| {
            !self
                .applied
                .iter()
                .any(|a| a.subject == f.subject && a.result == "done")
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub host: Option<String>,
    pub findings: Vec<Finding>,
    /// Checks that could not run, and why (they did not fire for lack of evidence).
    pub unchecked: Vec<String>,
    pub applied: Vec<Applied>,
}

fn xapi_err(what: &'static str) -> impl Fn(crate::xapi::XapiError) -> Error {
    move |e| Error::Xapi {
        what,
        why: error_chain(&e),
    }
}

fn diagnose(
    config: &Config,
    xapi: &Xapi,
) -> Result<(snapshot::Snapshot, Vec<Finding>, Vec<String>)> {
    let host_uuid = config.xapi.this_host();
    let snap = snapshot::gather(
        xapi,
        host_uuid.as_deref(),
        &config.tap_ctl,
        config.tool_timeout,
    )
    .map_err(xapi_err("reading the pool"))?;
    let mut unchecked = Vec::new();
    if snap.this_host.is_none() {
        unchecked.push(
            "this host is unknown to xapi: VMs and host keys of this host not checked".into(),
        );
    }
    if let Some(snapshot::Domains::Unknown { why }) = &snap.domains {
        unchecked.push(format!(
            "running domains unknown ({why}): no VM called domain-less"
        ));
    }
    if snap.tapdisk_paths.is_none() {
        unchecked.push("tap-ctl failed: nothing called unserved by tapdisk".into());
    }
    let mut findings = checks::all(&snap);
    match Host::open(config.clone()).and_then(|h| h.scan()) {
        Ok(scan) => findings.extend(
            scan.mappings
                .iter()
                .filter(|m| m.verdict == Verdict::Ghost)
                .map(|m| Finding {
                    check: "ghost_mapping",
                    severity: Severity::Warning,
                    subject: format!("mapping {}", m.dm_name),
                    summary: m.summary.clone(),
                    evidence: json!({"reasons": m.reasons}),
                    plan: vec![format!("dmheal heal {} --apply", m.dm_name)],
                    safe_action: None,
                }),
        ),
        Err(e) => unchecked.push(format!("device-mapper mappings not scanned: {}", e.chain())),
    }
    checks::sort(&mut findings);
    Ok((snap, findings, unchecked))
}

/// Diagnose, and with `apply` carry out the safe actions.
pub fn doctor(config: &Config, apply: bool) -> Result<Report> {
    let xapi = config.xapi.require("doctor")?;
    let (snap, findings, unchecked) = diagnose(config, &xapi)?;
    let mut applied = Vec::new();
    if apply {
        for f in findings.iter().filter(|f| f.safe_action.is_some()) {
            applied.push(apply_one(config, &xapi, f)?);
        }
    }
    Ok(Report {
        host: snap
            .this_host
            .as_ref()
            .and_then(|r| snap.hosts.get(r))
            .map(|h| h.uuid.clone()),
        findings,
        unchecked,
        applied,
    })
}

/// Re-check `f` on a fresh snapshot; act only if the same finding, with the same action,
/// still stands. Journal what was done.
fn apply_one(config: &Config, xapi: &Xapi, f: &Finding) -> Result<Applied> {
    let action = f
        .safe_action
        .clone()
        .expect("only safe findings are applied");
    let (_, fresh, _) = diagnose(config, xapi)?;
    let still = fresh
        .iter()
        .any(|g| g.check == f.check && g.safe_action.as_ref() == Some(&action));
    let (name, subject) = match &action {
        SafeAction::SrForget { .. } => ("SR.forget", f.subject.clone()),
        SafeAction::VmPowerStateReset { .. } => ("VM.power_state_reset", f.subject.clone()),
    };
    if !still {
        return Ok(Applied {
            subject,
            action: name.into(),
            result: "skipped: no longer holds at the re-check".into(),
            journal_id: None,
        });
    }
    let outcome: std::result::Result<(), crate::xapi::XapiError> = match &action {
        SafeAction::SrForget { sr, keep } => xapi
            .call::<serde_json::Value>("SR.forget", vec![json!(sr)])
            .and_then(|_| xapi.call::<serde_json::Value>("SR.scan", vec![json!(keep)]))
            .map(|_| ()),
        SafeAction::VmPowerStateReset { vm } => xapi
            .call::<serde_json::Value>("VM.power_state_reset", vec![json!(vm)])
            .map(|_| ()),
    };
    let result = match &outcome {
        Ok(()) => "done".to_string(),
        Err(e) => format!("failed: {}", error_chain(e)),
    };
    let id = Journal::new(&config.journal)
        .writer(config.lock_timeout)?
        .append(Event::XapiAction {
            action: name.into(),
            subject: subject.clone(),
            evidence: f.evidence.clone(),
            result: result.clone(),
        })?;
    Ok(Applied {
        subject,
        action: name.into(),
        result,
        journal_id: Some(id),
    })
}
