//! `doctor --apply`: one action at a time — only those `dmheal restore` undoes exactly — each
//! re-checked on a fresh read of the pool and every host just before it runs, confirmed by the
//! host it concerns where that is another host, journalled — with every field it takes to undo
//! it — before anything changes.

use std::time::Duration;

use serde_json::{json, Value};

use super::checks::{Finding, SafeAction};
use super::snapshot::Snapshot;
use super::Applied;
use crate::config::Config;
use crate::error::Result;
use crate::ids::JournalId;
use crate::journal::{Event, Journal};
use crate::sm::refcount;
use crate::xapi::{Xapi, XapiError};

pub fn action_name(a: &SafeAction) -> &'static str {
    match a {
        SafeAction::SrForget { .. } => "SR.forget",
        SafeAction::RemoveHostKey { .. } => "VDI.remove_from_sm_config",
        SafeAction::ResetRefcount { .. } => "refcount.reset",
    }
}

fn applied(f: &Finding, a: &SafeAction, result: String, journal_id: Option<JournalId>) -> Applied {
    Applied {
        subject: f.subject.clone(),
        action: action_name(a).into(),
        result,
        journal_id,
    }
}

/// Carry out `f`'s safe action if it still stands.
pub fn one(config: &Config, xapi: &Xapi, f: &Finding, per_host: Duration) -> Result<Applied> {
    let action = f
        .safe_action
        .clone()
        .expect("only safe findings are applied");
    let (snap, fresh, _) = super::diagnose(config, xapi, per_host)?;
    let still = fresh
        .iter()
        .any(|g| g.code == f.code && g.safe_action.as_ref() == Some(&action));
    if !still {
        return Ok(applied(
            f,
            &action,
            "skipped: no longer holds at the re-check".into(),
            None,
        ));
    }
    let mut evidence = f.evidence.clone();
    if let SafeAction::RemoveHostKey {
        vdi,
        ask: Some(host),
        ..
    } = &action
    {
        match confirm_unused(config, xapi, &snap, host, vdi) {
            Ok(said) => evidence["confirmed_by_host"] = said,
            Err(why) => return Ok(applied(f, &action, format!("skipped: {why}"), None)),
        }
    }
    let undo = undo_record(&snap, &action);
    let mut journal = Journal::new(&config.journal).writer(config.within(config.lock_timeout))?;
    let (name, subject) = (action_name(&action).to_string(), f.subject.clone());
    let entry = if matches!(action, SafeAction::ResetRefcount { .. }) {
        Event::LocalAction {
            action: name,
            subject,
            evidence,
            result: "started".into(),
            undo,
        }
    } else {
        Event::XapiAction {
            action: name,
            subject,
            evidence,
            result: "started".into(),
            undo,
        }
    };
    let id = journal.append(entry)?;
    let result = match act(config, xapi, &action) {
        Ok(note) => format!("done{note}"),
        Err(why) => format!("failed: {why}"),
    };
    journal.append(Event::Outcome {
        of: id,
        result: if result.starts_with("done") {
            "done"
        } else {
            "failed"
        }
        .into(),
        detail: result.clone(),
        removed_uuid: None,
    })?;
    Ok(applied(f, &action, result, Some(id)))
}

/// Ask `host` — through the dmheal plugin, as xapi runs it there — whether anything uses the
/// VDI: its answer must show no open mapping of the VDI's volume and no tapdisk naming it.
fn confirm_unused(
    config: &Config,
    xapi: &Xapi,
    snap: &Snapshot,
    host: &str,
    vdi: &str,
) -> Result<Value, String> {
    let name = snap
        .hosts
        .get(host)
        .map(|h| h.name_label.clone())
        .unwrap_or_else(|| host.into());
    let uuid = snap
        .vdis
        .get(vdi)
        .map(|v| v.uuid.clone())
        .ok_or("the VDI is gone")?;
    let asked = Xapi::new(xapi.endpoint.clone(), config.tool_timeout);
    let asked = match xapi.session() {
        Some(s) => asked.with_session(s.to_string()),
        None => return Err("no xapi session to ask with".into()),
    };
    let answer: String = asked
        .call(
            "host.call_plugin",
            vec![
                json!(host),
                json!(crate::pool::PLUGIN),
                json!("diagnose"),
                json!({"vdi_uuid": uuid}),
            ],
        )
        .map_err(|e| format!("{name} could not confirm it: {}", e.chain()))?;
    let i: Value = serde_json::from_str(&answer)
        .map_err(|e| format!("{name} answered something unreadable: {e}"))?;
    let facts = &i["facts"];
    let open = facts["device"]["open_count"].as_i64();
    let tapdisk_clear = match facts["tapdisk"]["state"].as_str() {
        Some("listed") => facts["tapdisk"]["naming_this"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        Some("not_installed") => true,
        // No mapping there: tapdisk cannot serve an LV that is not mapped.
        Some("not_checked") => facts["device"].is_null(),
        _ => false,
    };
    if (facts["device"].is_null() || open == Some(0)) && tapdisk_clear {
        Ok(json!({"host": name, "verdict": i["verdict"], "summary": i["summary"]}))
    } else {
        Err(format!(
            "{name} says the VDI is in use or could not tell: {}",
            i["summary"].as_str().unwrap_or("")
        ))
    }
}

fn host_uuid(snap: &Snapshot, r: &str) -> Value {
    snap.hosts.get(r).map_or(Value::Null, |h| json!(h.uuid))
}

/// An SR record and its PBDs, every field `restore` gives back (and checks), as journalled.
pub fn sr_record(snap: &Snapshot, sr_ref: &str) -> Value {
    let Some(r) = snap.srs.get(sr_ref) else {
        return Value::Null;
    };
    let pbds: Vec<Value> = r
        .pbds
        .iter()
        .filter_map(|p| snap.pbds.get(p))
        .map(|p| {
            json!({"host_ref": p.host, "host_uuid": host_uuid(snap, &p.host),
                   "device_config": p.device_config, "other_config": p.other_config,
                   "plugged": p.currently_attached})
        })
        .collect();
    json!({"sr": {"uuid": r.uuid, "name_label": r.name_label,
                  "name_description": r.name_description, "type": r.kind,
                  "content_type": r.content_type, "shared": r.shared,
                  "sm_config": r.sm_config, "other_config": r.other_config, "tags": r.tags},
           "pbds": pbds})
}

/// What `dmheal restore` needs to undo `action`, read before it runs.
fn undo_record(snap: &Snapshot, action: &SafeAction) -> Value {
    match action {
        SafeAction::SrForget { sr } => sr_record(snap, sr),
        SafeAction::RemoveHostKey { vdi, key, .. } => snap.vdis.get(vdi).map_or(
            Value::Null,
            |v| json!({"vdi_uuid": v.uuid, "key": key, "value": v.sm_config.get(key)}),
        ),
        SafeAction::ResetRefcount { sr, vdi } => {
            let count = snap.refcounts.iter().find(|(s, v, _)| s == sr && v == vdi);
            match count.map(|(_, _, c)| c) {
                Some(crate::sm::Refcount::Counts { count, binary }) => {
                    json!({"sr": sr, "vdi": vdi, "count": count, "binary": binary})
                }
                _ => Value::Null,
            }
        }
    }
}

/// Do it. Ok carries a note for the report (what else was done).
fn act(config: &Config, xapi: &Xapi, action: &SafeAction) -> Result<String, String> {
    let call = |m: &str, args: Vec<Value>| -> Result<(), String> {
        xapi.call::<Value>(m, args)
            .map(|_| ())
            .map_err(|e: XapiError| e.chain())
    };
    match action {
        SafeAction::SrForget { sr } => call("SR.forget", vec![json!(sr)]).map(|_| String::new()),
        SafeAction::RemoveHostKey { vdi, key, .. } => {
            call("VDI.remove_from_sm_config", vec![json!(vdi), json!(key)]).map(|_| String::new())
        }
        SafeAction::ResetRefcount { sr, vdi } => {
            let (sr, vdi) = (
                crate::ids::Uuid::new(sr).map_err(|e| e.to_string())?,
                crate::ids::Uuid::new(vdi).map_err(|e| e.to_string())?,
            );
            refcount::write(&config.refcount_dir, &sr, &vdi, 0, 0)
                .map(|_| String::new())
                .map_err(|e| e.to_string())
        }
    }
}
