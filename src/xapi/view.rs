//! xapi's view of one VDI, as it concerns this host: VBDs attached here, SM's sm-config keys
//! (`host_<this host's ref>`, `paused`, `relinking`). Gathered with targeted calls.

use std::fs;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::client::{Xapi, XapiError};
use super::records::{Sr, Vbd, Vdi, Vm};

/// One VBD of the VDI that xapi calls attached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttachedVbd {
    pub vbd: String,
    pub device: String,
    pub vm_uuid: String,
    pub vm_name: String,
    pub on_this_host: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XapiVdi {
    pub vdi_uuid: String,
    pub vdi_ref: String,
    pub name_label: String,
    pub sr_uuid: String,
    pub this_host: String,
    pub attached: Vec<AttachedVbd>,
    /// sm-config `host_<this host's ref>`: SM's mark that the VDI is activated here (RW/RO).
    pub host_key: Option<String>,
    pub paused: bool,
    pub relinking: bool,
    /// The caller is SM's own activation of this VDI (the hook): `host_key` is its own.
    pub activating: bool,
    /// sm-config `activating`: blktap2 writes it, then `host_<ref>`, before it activates the
    /// LV, and removes it when the activation ends.
    pub sm_config_activating: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum XapiView {
    /// No xapi on this host and none configured: not a XenServer host, or xapi not asked.
    NotConfigured,
    /// xapi was asked and did not answer usefully. Local verdicts stand without it.
    Unreachable {
        why: String,
    },
    /// xapi has no VDI with this uuid (deleted, or another pool's SR).
    VdiUnknown,
    Known(XapiVdi),
    /// The volume is not a VDI (no uuid in its LV name): nothing to ask xapi.
    NotApplicable,
}

/// The host dmheal runs on: INSTALLATION_UUID from /etc/xensource-inventory.
pub fn inventory_host_uuid(inventory: &Path) -> Option<String> {
    let text = fs::read_to_string(inventory).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("INSTALLATION_UUID=")?;
        Some(v.trim().trim_matches('\'').trim_matches('"').to_string())
    })
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| !v.eq_ignore_ascii_case("false") && !v.is_empty())
}

/// Ask xapi about `vdi_uuid` from the point of view of host `host_uuid`.
pub fn vdi_view(xapi: &Xapi, host_uuid: &str, vdi_uuid: &str, activating: bool) -> XapiView {
    match vdi_view_inner(xapi, host_uuid, vdi_uuid, activating) {
        Ok(v) => v,
        Err(XapiError::Api { code, .. }) if code == "UUID_INVALID" => XapiView::VdiUnknown,
        Err(e) => XapiView::Unreachable { why: e.chain() },
    }
}

fn vdi_view_inner(
    xapi: &Xapi,
    host_uuid: &str,
    vdi_uuid: &str,
    activating: bool,
) -> Result<XapiView, XapiError> {
    let host_ref: String = xapi.call("host.get_by_uuid", vec![json!(host_uuid)])?;
    let vdi_ref: String = xapi.call("VDI.get_by_uuid", vec![json!(vdi_uuid)])?;
    let vdi: Vdi = xapi.call("VDI.get_record", vec![json!(vdi_ref)])?;
    let sr: Sr = xapi.call("SR.get_record", vec![json!(vdi.sr)])?;
    let mut attached = Vec::new();
    for vbd_ref in &vdi.vbds {
        let vbd: Vbd = xapi.call("VBD.get_record", vec![json!(vbd_ref)])?;
        if !vbd.currently_attached {
            continue;
        }
        let vm: Vm = xapi.call("VM.get_record", vec![json!(vbd.vm)])?;
        attached.push(AttachedVbd {
            vbd: vbd.uuid,
            device: vbd.device,
            on_this_host: vm.resident_on == host_ref,
            vm_uuid: vm.uuid,
            vm_name: vm.name_label,
        });
    }
    Ok(XapiView::Known(XapiVdi {
        vdi_uuid: vdi.uuid.clone(),
        host_key: vdi.sm_config.get(&format!("host_{host_ref}")).cloned(),
        paused: truthy(vdi.sm_config.get("paused")),
        sm_config_activating: truthy(vdi.sm_config.get("activating")),
        relinking: truthy(vdi.sm_config.get("relinking")),
        vdi_ref,
        name_label: vdi.name_label,
        sr_uuid: sr.uuid,
        this_host: host_uuid.to_string(),
        attached,
        activating,
    }))
}

/// xapi's view of many VDIs from host `host_uuid`, from the pool's records read once (a batch
/// of a thousand heals asks xapi four times, not five thousand). A VDI xapi does not have is
/// `VdiUnknown`; a xapi that fails is `Unreachable` for all of them.
pub fn vdi_views(
    xapi: &Xapi,
    host_uuid: &str,
    vdi_uuids: &[&str],
    activating: bool,
) -> std::collections::BTreeMap<String, XapiView> {
    use std::collections::BTreeMap;
    let read = || -> Result<_, XapiError> {
        let host_ref: String = xapi.call("host.get_by_uuid", vec![json!(host_uuid)])?;
        let vdis: BTreeMap<String, Vdi> = xapi.call("VDI.get_all_records", vec![])?;
        let vbds: BTreeMap<String, Vbd> = xapi.call("VBD.get_all_records", vec![])?;
        let vms: BTreeMap<String, Vm> = xapi.call("VM.get_all_records", vec![])?;
        let srs: BTreeMap<String, Sr> = xapi.call("SR.get_all_records", vec![])?;
        Ok((host_ref, vdis, vbds, vms, srs))
    };
    let (host_ref, vdis, vbds, vms, srs) = match read() {
        Ok(r) => r,
        Err(e) => {
            let why = e.chain();
            return vdi_uuids
                .iter()
                .map(|u| (u.to_string(), XapiView::Unreachable { why: why.clone() }))
                .collect();
        }
    };
    let by_uuid: BTreeMap<&str, (&String, &Vdi)> = vdis
        .iter()
        .map(|(r, v)| (v.uuid.as_str(), (r, v)))
        .collect();
    vdi_uuids
        .iter()
        .map(|u| {
            let Some((vdi_ref, vdi)) = by_uuid.get(u) else {
                return (u.to_string(), XapiView::VdiUnknown);
            };
            let attached = vdi
                .vbds
                .iter()
                .filter_map(|b| vbds.get(b))
                .filter(|b| b.currently_attached)
                .filter_map(|b| vms.get(&b.vm).map(|vm| (b, vm)))
                .map(|(b, vm)| AttachedVbd {
                    vbd: b.uuid.clone(),
                    device: b.device.clone(),
                    on_this_host: vm.resident_on == host_ref,
                    vm_uuid: vm.uuid.clone(),
                    vm_name: vm.name_label.clone(),
                })
                .collect();
            let view = XapiView::Known(XapiVdi {
                vdi_uuid: vdi.uuid.clone(),
                host_key: vdi.sm_config.get(&format!("host_{host_ref}")).cloned(),
                paused: truthy(vdi.sm_config.get("paused")),
                sm_config_activating: truthy(vdi.sm_config.get("activating")),
                relinking: truthy(vdi.sm_config.get("relinking")),
                vdi_ref: (*vdi_ref).clone(),
                name_label: vdi.name_label.clone(),
                sr_uuid: srs.get(&vdi.sr).map(|s| s.uuid.clone()).unwrap_or_default(),
                this_host: host_uuid.to_string(),
                attached,
                activating,
            });
            (u.to_string(), view)
        })
        .collect()
}

/// The SR uuid and storage type of a VDI (to find its LV through xapi).
pub fn vdi_location(xapi: &Xapi, vdi_uuid: &str) -> Result<(String, Vdi), XapiError> {
    let vdi_ref: String = xapi.call("VDI.get_by_uuid", vec![json!(vdi_uuid)])?;
    let vdi: Vdi = xapi.call("VDI.get_record", vec![json!(vdi_ref)])?;
    let sr_uuid: String = xapi.call("SR.get_uuid", vec![json!(vdi.sr)])?;
    Ok((sr_uuid, vdi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_installation_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inv");
        fs::write(
            &p,
            "PRIMARY_DISK='/dev/sda'\nINSTALLATION_UUID='5f3c0b1e-1111-4222-8333-944455566677'\n",
        )
        .unwrap();
        assert_eq!(
            inventory_host_uuid(&p).as_deref(),
            Some("5f3c0b1e-1111-4222-8333-944455566677")
        );
        assert_eq!(inventory_host_uuid(&dir.path().join("none")), None);
    }
}
