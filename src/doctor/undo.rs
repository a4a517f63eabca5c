//! `dmheal restore <id>` for what `doctor --apply` did: the journal entry holds what it takes.
//! SR.forget is undone by SR.introduce with the same uuid and record, its other-config and
//! tags set again, each PBD made again with its device-config and other-config — and then
//! every field is read back and compared; a removed sm-config mark is put back; a reset
//! refcount is written again. A power-state reset cannot be undone through xapi (there is no
//! way to tell it a domain runs), so `--apply` never does one; an old entry of one is refused,
//! with what to do instead.

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::JournalId;
use crate::xapi::Xapi;

/// What was undone, in words; errors refuse with the reason.
pub fn undo(config: &Config, id: JournalId, action: &str, undo: &Value) -> Result<String> {
    let refused = |why: String| Error::RestoreRefused { id, why };
    if undo.is_null() {
        return Err(refused(
            "the entry records nothing to undo it with (written before dmheal journalled undo data)".into(),
        ));
    }
    match action {
        "refcount.reset" => {
            let field = |k: &str| undo[k].as_str().unwrap_or_default().to_string();
            let (sr, vdi) = (
                crate::ids::Uuid::new(&field("sr"))?,
                crate::ids::Uuid::new(&field("vdi"))?,
            );
            let (count, binary) = (
                undo["count"].as_u64().unwrap_or(0),
                undo["binary"].as_u64().unwrap_or(0),
            );
            let path = crate::sm::refcount::path_of(&config.refcount_dir, &sr, &vdi);
            if path.exists() {
                return Err(refused(format!(
                    "SM keeps a count for VDI {vdi} again ({}): putting the old one back would overwrite it",
                    path.display()
                )));
            }
            crate::sm::refcount::write(&config.refcount_dir, &sr, &vdi, count, binary)
                .map_err(|e| Error::Io(format!("writing {}", path.display()), e))?;
            Ok(format!("SM's refcount of VDI {vdi} is {count} {binary} again"))
        }
        "VM.power_state_reset" => Err(refused(format!(
            "a power-state reset cannot be undone through xapi: VM {} is Halted in xapi's eyes; start it (xe vm-start uuid={}) if it should run",
            undo["vm_uuid"].as_str().unwrap_or("?"),
            undo["vm_uuid"].as_str().unwrap_or("?")
        ))),
        "VDI.remove_from_sm_config" => {
            let xapi = config.xapi.require("restore")?;
            let (vdi, key) = (
                undo["vdi_uuid"].as_str().unwrap_or_default(),
                undo["key"].as_str().unwrap_or_default(),
            );
            let value = undo["value"].as_str().ok_or_else(|| refused("no value recorded".into()))?;
            let x = |e: crate::xapi::XapiError| refused(e.chain());
            let vdi_ref: String = xapi.call("VDI.get_by_uuid", vec![json!(vdi)]).map_err(x)?;
            let config_now: std::collections::BTreeMap<String, String> =
                xapi.call("VDI.get_sm_config", vec![json!(vdi_ref)]).map_err(x)?;
            if let Some(now) = config_now.get(key) {
                return Err(refused(format!("VDI {vdi} has {key}={now} again: nothing to put back")));
            }
            xapi.call::<Value>("VDI.add_to_sm_config", vec![json!(vdi_ref), json!(key), json!(value)])
                .map_err(x)?;
            Ok(format!("sm-config {key}={value} is back on VDI {vdi}"))
        }
        "SR.forget" => reintroduce(config, id, undo),
        other => Err(refused(format!("dmheal cannot undo {other}"))),
    }
}

/// The fields of an SR record `restore` gives back and checks (journalled by `apply::sr_record`).
const SR_FIELDS: [&str; 9] = [
    "uuid",
    "name_label",
    "name_description",
    "type",
    "content_type",
    "shared",
    "sm_config",
    "other_config",
    "tags",
];

/// Undo an SR.forget: SR.introduce with the same uuid and record, SR.set_other_config and
/// SR.set_tags, PBD.create and PBD.set_other_config for each PBD (PBD.create ignores
/// other_config), PBD.plug where it was plugged; then read it all back and compare field by
/// field. Hosts are checked before anything changes: a PBD whose host is gone cannot be made.
fn reintroduce(config: &Config, id: JournalId, undo: &Value) -> Result<String> {
    let refused = |why: String| Error::RestoreRefused { id, why };
    let xapi: Xapi = config.xapi.require("restore")?;
    let x = crate::xapi::XapiError::failing;
    let sr = &undo["sr"];
    let uuid = sr["uuid"].as_str().unwrap_or_default();
    if xapi
        .call::<String>("SR.get_by_uuid", vec![json!(uuid)])
        .is_ok()
    {
        return Err(refused(format!(
            "SR {uuid} is in the database again: nothing to introduce"
        )));
    }
    // An entry written before dmheal journalled every field (0.1.0) lacks other_config and
    // tags: what it has is given back, and the rest said.
    let complete = sr.get("other_config").is_some() && sr.get("tags").is_some();
    let pbds = undo["pbds"].as_array().cloned().unwrap_or_default();
    let mut hosts = Vec::new();
    for p in &pbds {
        let host = p["host_uuid"]
            .as_str()
            .and_then(|h| xapi.call::<String>("host.get_by_uuid", vec![json!(h)]).ok());
        match host {
            Some(h) => hosts.push(h),
            None if complete => {
                return Err(refused(format!(
                    "host {} of one of its PBDs is not in the database: its PBD cannot be made again, so the SR would not come back as it was",
                    p["host_uuid"].as_str().or(p["host_ref"].as_str()).unwrap_or("?")
                )))
            }
            None => hosts.push(String::new()),
        }
    }
    let sr_ref: String = xapi
        .call(
            "SR.introduce",
            vec![
                json!(uuid),
                sr["name_label"].clone(),
                sr["name_description"].clone(),
                sr["type"].clone(),
                sr["content_type"].clone(),
                sr["shared"].clone(),
                sr["sm_config"].clone(),
            ],
        )
        .map_err(x("SR.introduce"))?;
    let mut notes = vec![format!("SR {uuid} introduced again")];
    if complete {
        xapi.call::<Value>(
            "SR.set_other_config",
            vec![json!(sr_ref), sr["other_config"].clone()],
        )
        .map_err(x("SR.set_other_config"))?;
        xapi.call::<Value>("SR.set_tags", vec![json!(sr_ref), sr["tags"].clone()])
            .map_err(x("SR.set_tags"))?;
    } else {
        notes.push("(an older entry: its other-config and tags were not recorded)".into());
    }
    for (p, host) in pbds.iter().zip(&hosts) {
        if host.is_empty() {
            notes.push(format!(
                "no PBD for host {}: it is not in the database",
                p["host_ref"].as_str().unwrap_or("?")
            ));
            continue;
        }
        let other = p.get("other_config").cloned().unwrap_or_else(|| json!({}));
        let pbd: String = xapi
            .call(
                "PBD.create",
                vec![json!({"host": host, "SR": sr_ref, "device_config": p["device_config"], "other_config": other})],
            )
            .map_err(x("PBD.create"))?;
        xapi.call::<Value>("PBD.set_other_config", vec![json!(pbd), other])
            .map_err(x("PBD.set_other_config"))?;
        if p["plugged"].as_bool() == Some(true) {
            match xapi.call::<Value>("PBD.plug", vec![json!(pbd)]) {
                Ok(_) => notes.push("its PBD plugged where it was plugged".into()),
                Err(e) => notes.push(format!("plugging its PBD failed: {}", e.chain())),
            }
        } else {
            notes.push("its PBD made again (unplugged, as it was)".into());
        }
    }
    // Entries from before dmheal forgot only SRs without VDI records listed VDIs: a scan
    // brings them back from the storage.
    if undo["vdis"].as_array().is_some_and(|v| !v.is_empty()) {
        match xapi.call::<Value>("SR.scan", vec![json!(sr_ref)]) {
            Ok(_) => notes.push("scanned: its VDIs come back from the storage".into()),
            Err(e) => notes.push(format!(
                "scanning it failed ({}): run xe sr-scan once its PBD is plugged",
                e.chain()
            )),
        }
    }
    if complete {
        let differs = compare(&xapi, &sr_ref, undo)?;
        if !differs.is_empty() {
            return Err(Error::Xapi {
                what: "checking the SR given back",
                why: format!(
                    "SR {uuid} was introduced again but differs from what was forgotten: {}",
                    differs.join("; ")
                ),
            });
        }
        notes.push("every recorded field checked equal".into());
    }
    Ok(notes.join("; "))
}

/// What differs between the SR (and its PBDs) in xapi now and the journalled record.
fn compare(xapi: &Xapi, sr_ref: &str, undo: &Value) -> Result<Vec<String>> {
    let x = crate::xapi::XapiError::failing("reading the SR given back");
    let now: Value = xapi.call("SR.get_record", vec![json!(sr_ref)]).map_err(x)?;
    let mut differs = Vec::new();
    for field in SR_FIELDS {
        let (want, got) = (&undo["sr"][field], &now[field]);
        if !same(want, got) {
            differs.push(format!("{field} is {got}, was {want}"));
        }
    }
    let pbd_refs: Vec<String> = serde_json::from_value(now["PBDs"].clone()).unwrap_or_default();
    let mut have = Vec::new();
    for r in pbd_refs {
        let p: Value = xapi.call("PBD.get_record", vec![json!(r)]).map_err(x)?;
        let host: Value = xapi
            .call("host.get_record", vec![p["host"].clone()])
            .map_err(x)?;
        have.push((host["uuid"].clone(), p));
    }
    for want in undo["pbds"].as_array().into_iter().flatten() {
        let found = have.iter().any(|(h, p)| {
            same(h, &want["host_uuid"])
                && same(&p["device_config"], &want["device_config"])
                && same(&p["other_config"], &want["other_config"])
        });
        if !found {
            differs.push(format!(
                "no PBD on host {} with the recorded device-config and other-config",
                want["host_uuid"]
            ));
        }
    }
    if have.len() != undo["pbds"].as_array().map_or(0, Vec::len) {
        differs.push(format!(
            "{} PBDs, was {}",
            have.len(),
            undo["pbds"].as_array().map_or(0, Vec::len)
        ));
    }
    Ok(differs)
}

/// Equal as xapi means it: booleans and numbers may come back as text over XML-RPC, and the
/// tags' order is not the record's.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Bool(x), Value::String(y)) | (Value::String(y), Value::Bool(x)) => {
            y.eq_ignore_ascii_case(if *x { "true" } else { "false" })
        }
        (Value::Array(x), Value::Array(y)) => {
            let mut x: Vec<String> = x.iter().map(Value::to_string).collect();
            let mut y: Vec<String> = y.iter().map(Value::to_string).collect();
            x.sort();
            y.sort();
            x == y
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_compare_as_xapi_means_them() {
        assert!(same(&json!(true), &json!("true")));
        assert!(!same(&json!(false), &json!("true")));
        assert!(same(&json!(["b", "a"]), &json!(["a", "b"])));
        assert!(!same(&json!(["a"]), &json!(["a", "b"])));
        assert!(same(&json!({"k": "v"}), &json!({"k": "v"})));
        assert!(!same(&json!({"k": "v"}), &json!({})));
    }
}
