//! `dmheal restore <id>` for what `doctor --apply` did: the journal entry holds what it takes.
//! SR.forget is undone by SR.introduce with the same uuid and record, PBD.create for each host
//! still in the database, PBD.plug where it was plugged, then SR.scan (the VDIs come back from
//! the storage); a removed sm-config mark is put back; a reset refcount is written again. A
//! power-state reset cannot be undone through xapi (there is no way to tell it a domain runs):
//! refused, with what to do instead.

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::JournalId;
use crate::xapi::{view::error_chain, Xapi};

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
            let x = |e: crate::xapi::XapiError| refused(error_chain(&e));
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

fn reintroduce(config: &Config, id: JournalId, undo: &Value) -> Result<String> {
    let refused = |why: String| Error::RestoreRefused { id, why };
    let xapi: Xapi = config.xapi.require("restore")?;
    let x = |what: &'static str| {
        move |e: crate::xapi::XapiError| Error::Xapi {
            what,
            why: error_chain(&e),
        }
    };
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
    for p in undo["pbds"].as_array().cloned().unwrap_or_default() {
        let host = match p["host_uuid"].as_str() {
            Some(h) => xapi.call::<String>("host.get_by_uuid", vec![json!(h)]).ok(),
            None => None,
        };
        let Some(host) = host else {
            notes.push(format!(
                "no PBD for host {}: it is not in the database",
                p["host_ref"].as_str().unwrap_or("?")
            ));
            continue;
        };
        let pbd: String = xapi
            .call(
                "PBD.create",
                vec![json!({"host": host, "SR": sr_ref, "device_config": p["device_config"], "other_config": {}})],
            )
            .map_err(x("PBD.create"))?;
        if p["plugged"].as_bool() == Some(true) {
            match xapi.call::<Value>("PBD.plug", vec![json!(pbd)]) {
                Ok(_) => notes.push("its PBD plugged where it was plugged".into()),
                Err(e) => notes.push(format!("plugging its PBD failed: {}", error_chain(&e))),
            }
        } else {
            notes.push("its PBD created (unplugged, as it was)".into());
        }
    }
    match xapi.call::<Value>("SR.scan", vec![json!(sr_ref)]) {
        Ok(_) => notes.push("scanned: its VDIs come back from the storage".into()),
        Err(e) => notes.push(format!(
            "scanning it failed ({}): run xe sr-scan once its PBD is plugged",
            error_chain(&e)
        )),
    }
    Ok(notes.join("; "))
}
