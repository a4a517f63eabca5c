//! `dmheal vm <uuid or name-label>`: from the VM that will not start to the ghost on the right
//! host. xapi gives the VM's VBDs, VDIs and SRs; every live host is asked at once (the plugin's
//! `volumes`, bounded per host) for its mappings of those VDIs and, on the VM's resident host,
//! for its domain; the findings say what blocks the VM, blocking first, with the exact next
//! step. `--apply` heals the proven ghosts through the plugin on the hosts that hold them —
//! each host decides again and journals its own — and then asks every host again.

pub mod findings;
pub mod local;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, InputError, Result};
use crate::ids::Uuid;
use crate::xapi::fanout::{self, HostAnswer, PoolHost, Reply};
use crate::xapi::records::{Sr, Vbd, Vdi, Vm, NULL_REF};
use crate::xapi::{Xapi, XapiError};

pub use findings::{Finding, Severity};
use local::LocalView;

/// SR types whose VDIs are LVs of `VG_XenStorage-<sr uuid>` (SM's LVHD drivers; the FCoE pair
/// only in XCP-ng 8.3's SM). Other SRs have no device-mapper mapping per VDI to go stale.
pub const LVM_SR_TYPES: [&str; 8] = [
    "lvm",
    "lvhd",
    "lvmoiscsi",
    "lvhdoiscsi",
    "lvmohba",
    "lvhdohba",
    "lvmofcoe",
    "lvhdofcoe",
];

#[derive(Clone, Debug, Serialize)]
pub struct HostName {
    pub uuid: String,
    pub name_label: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmInfo {
    pub uuid: String,
    pub name_label: String,
    pub power_state: String,
    pub resident_on: Option<HostName>,
    pub domid: Option<u32>,
}

/// One of the VM's disks.
#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    /// The VBD's userdevice (0 is the first disk).
    pub device: String,
    pub vdi_uuid: String,
    pub vdi_name: String,
    pub sr_uuid: String,
    pub sr_name: String,
    pub sr_type: String,
    /// On an LVM-based SR: a device-mapper mapping per VDI, which can go stale.
    pub lvm: bool,
}

/// What one host said: its state, version and its `volumes` answer.
pub type HostView = HostAnswer<LocalView>;

/// A heal `--apply` asked a host for.
#[derive(Clone, Debug, Serialize)]
pub struct HealAttempt {
    pub host_uuid: String,
    pub host_name: String,
    pub vdi_uuid: String,
    /// The host's heal action (removed, refused, nothing-to-do ...) or "failed".
    pub action: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmReport {
    pub vm: VmInfo,
    pub disks: Vec<Disk>,
    /// Blocking first; after `--apply`, what the hosts say once the heals are done.
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub healed: Vec<HealAttempt>,
    pub hosts: Vec<HostView>,
}

impl VmReport {
    /// Whether a proven ghost still stands.
    pub fn has_ghost(&self) -> bool {
        self.findings.iter().any(|f| f.code == "ghost")
    }

    pub fn has_blocking(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Blocking)
    }
}

/// Why `vm` will not start, from every host's side; `apply`: heal the proven ghosts.
pub fn trace(config: &Config, vm: &str, apply: bool, per_host: Duration) -> Result<VmReport> {
    let client = config.xapi.require("dmheal vm")?;
    let (vm_ref, record) = find_vm(&client, vm)?;
    let disks = disks_of(&client, &record)?;
    let hosts = fanout::pool_hosts(&client).map_err(XapiError::failing("listing hosts"))?;
    let resident = hosts
        .iter()
        .find(|h| h.host_ref == record.resident_on)
        .map(|h| HostName {
            uuid: h.host_uuid.clone(),
            name_label: h.host_name.clone(),
        });
    let info = VmInfo {
        uuid: record.uuid.clone(),
        name_label: record.name_label.clone(),
        power_state: record.power_state.clone(),
        resident_on: resident,
        domid: record
            .domid
            .parse::<i64>()
            .ok()
            .and_then(|d| u32::try_from(d).ok()),
    };
    tracing::debug!(vm = %vm_ref, disks = disks.len(), "asking every host");
    let views = ask_hosts(
        &client,
        &info,
        &record.resident_on,
        &disks,
        &hosts,
        per_host,
    );
    let mut report = VmReport {
        findings: findings::derive(&info, &disks, &views),
        vm: info,
        disks,
        healed: Vec::new(),
        hosts: views,
    };
    if apply && report.has_ghost() {
        let healed = heal_ghosts(&client, &hosts, &report.disks, &report.findings, per_host);
        let views = ask_hosts(
            &client,
            &report.vm,
            &record.resident_on,
            &report.disks,
            &hosts,
            per_host,
        );
        report.findings = findings::derive(&report.vm, &report.disks, &views);
        report.hosts = views;
        report.healed = healed;
    }
    Ok(report)
}

/// The VM by uuid, else by name-label (exactly one non-template VM of that name).
fn find_vm(client: &Xapi, vm: &str) -> Result<(String, Vm)> {
    if Uuid::is_well_formed(vm) {
        match client.call::<String>("VM.get_by_uuid", vec![json!(vm.to_ascii_lowercase())]) {
            Ok(r) => {
                let rec: Vm = client
                    .call("VM.get_record", vec![json!(r)])
                    .map_err(XapiError::failing("reading the VM"))?;
                return check_vm(r, rec, vm);
            }
            Err(e) if e.code() == Some("UUID_INVALID") => {} // perhaps a name that looks like one
            Err(e) => return Err(XapiError::failing("finding the VM")(e)),
        }
    }
    let refs: Vec<String> = client
        .call("VM.get_by_name_label", vec![json!(vm)])
        .map_err(XapiError::failing("finding the VM"))?;
    let mut found = Vec::new();
    for r in refs {
        let rec: Vm = client
            .call("VM.get_record", vec![json!(r)])
            .map_err(XapiError::failing("reading the VM"))?;
        if !rec.is_a_template && !rec.is_a_snapshot && !rec.is_control_domain {
            found.push((r, rec));
        }
    }
    match found.len() {
        0 => Err(Error::VmNotFound(vm.to_string())),
        1 => Ok(found.remove(0)),
        n => Err(InputError::BadValue {
            name: "vm".into(),
            why: format!(
                "{n} VMs are named {vm:?}: give the uuid ({})",
                found
                    .iter()
                    .map(|(_, v)| v.uuid.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into()),
    }
}

fn check_vm(r: String, rec: Vm, asked: &str) -> Result<(String, Vm)> {
    if rec.is_control_domain || rec.is_a_template || rec.is_a_snapshot {
        return Err(InputError::BadValue {
            name: "vm".into(),
            why: format!("{asked} is a control domain, template or snapshot, not a VM that starts"),
        }
        .into());
    }
    Ok((r, rec))
}

/// The VM's disks (VBDs with a VDI), in device order.
fn disks_of(client: &Xapi, vm: &Vm) -> Result<Vec<Disk>> {
    let mut srs: BTreeMap<String, Sr> = BTreeMap::new();
    let mut disks = Vec::new();
    for vbd_ref in &vm.vbds {
        let vbd: Vbd = client
            .call("VBD.get_record", vec![json!(vbd_ref)])
            .map_err(XapiError::failing("reading the VM's VBDs"))?;
        if vbd.vdi == NULL_REF || vbd.vdi.is_empty() {
            continue; // an empty CD drive
        }
        let vdi: Vdi = client
            .call("VDI.get_record", vec![json!(vbd.vdi)])
            .map_err(XapiError::failing("reading the VM's VDIs"))?;
        if !srs.contains_key(&vdi.sr) {
            let sr: Sr = client
                .call("SR.get_record", vec![json!(vdi.sr)])
                .map_err(XapiError::failing("reading the VDIs' SRs"))?;
            srs.insert(vdi.sr.clone(), sr);
        }
        let sr = &srs[&vdi.sr];
        disks.push(Disk {
            device: vbd.userdevice.clone(),
            vdi_uuid: vdi.uuid,
            vdi_name: vdi.name_label,
            sr_uuid: sr.uuid.clone(),
            sr_name: sr.name_label.clone(),
            sr_type: sr.kind.clone(),
            lvm: LVM_SR_TYPES.contains(&sr.kind.as_str()),
        });
    }
    disks.sort_by(|a, b| {
        let n = |d: &Disk| d.device.parse::<u32>().unwrap_or(u32::MAX);
        n(a).cmp(&n(b)).then(a.device.cmp(&b.device))
    });
    Ok(disks)
}

/// The VDIs hosts are asked about: the VM's disks on LVM-based SRs, by well-formed uuid.
fn asked_vdis(disks: &[Disk]) -> Vec<&str> {
    disks
        .iter()
        .filter(|d| d.lvm && Uuid::is_well_formed(&d.vdi_uuid))
        .map(|d| d.vdi_uuid.as_str())
        .collect()
}

/// A host's answer kept to what it was asked: the VM's VDIs and its domain. Whatever else a
/// host lists (a broken or hostile plugin) is dropped, so nothing downstream — the findings,
/// the commands they print, `--apply` — ever names another VDI.
fn only_asked(mut view: LocalView, vdis: &[&str], vm: &VmInfo) -> LocalView {
    view.volumes.retain(|v| vdis.contains(&v.vdi_uuid.as_str()));
    if view.domain.as_ref().map(|d| d.domid) != vm.domid {
        view.domain = None;
    }
    view
}

/// Every live host's `volumes` for the VM's LVM-based disks (and, on the resident host, its
/// domain), at once, each bounded by `per_host`.
fn ask_hosts(
    client: &Xapi,
    vm: &VmInfo,
    resident_ref: &str,
    disks: &[Disk],
    hosts: &[PoolHost],
    per_host: Duration,
) -> Vec<HostView> {
    let vdis = asked_vdis(disks);
    let running = matches!(vm.power_state.as_str(), "Running" | "Paused");
    let args = |_: usize, h: &PoolHost| {
        let mut a = BTreeMap::new();
        a.insert("vdis".to_string(), vdis.join(","));
        if let (true, true, Some(d)) = (running, h.host_ref == resident_ref, vm.domid) {
            a.insert("domid".to_string(), d.to_string());
        }
        a
    };
    // Nothing to ask a host that is neither holding a possible mapping nor running the VM.
    let asked: Vec<PoolHost> = hosts
        .iter()
        .filter(|h| !vdis.is_empty() || (running && h.host_ref == resident_ref))
        .cloned()
        .collect();
    let replies = fanout::call_each(client, &asked, "volumes", &args, per_host);
    asked
        .into_iter()
        .zip(replies)
        .map(|(h, reply)| {
            HostView::of(h, reply, "a volumes view").map(|v| only_asked(v, &vdis, vm))
        })
        .collect()
}

/// Heal each proven ghost on the host that holds it (the plugin's `heal` with apply: that host
/// inspects again under its locks, and journals), all hosts at once.
fn heal_ghosts(
    client: &Xapi,
    hosts: &[PoolHost],
    disks: &[Disk],
    findings: &[Finding],
    per_host: Duration,
) -> Vec<HealAttempt> {
    let mine = asked_vdis(disks);
    let jobs: Vec<(PoolHost, String)> = findings
        .iter()
        .filter(|f| f.code == "ghost")
        .filter(|f| f.vdi_uuid.as_deref().is_some_and(|v| mine.contains(&v)))
        .filter_map(|f| {
            let h = hosts
                .iter()
                .find(|h| Some(&h.host_uuid) == f.host_uuid.as_ref())?;
            Some((h.clone(), f.vdi_uuid.clone()?))
        })
        .collect();
    // One call per (host, VDI): `call_each` takes each entry as its own target.
    let targets: Vec<PoolHost> = jobs.iter().map(|(h, _)| h.clone()).collect();
    let args = |i: usize, _: &PoolHost| {
        BTreeMap::from([
            ("vdi_uuid".to_string(), jobs[i].1.clone()),
            ("apply".to_string(), "true".to_string()),
        ])
    };
    let replies = fanout::call_each(client, &targets, "heal", &args, per_host);
    jobs.into_iter()
        .zip(replies)
        .map(|((h, vdi), reply)| {
            let (action, message) = match reply {
                Reply::Answered(v) => (
                    v.get("action")
                        .and_then(|a| a.as_str())
                        .unwrap_or("unknown")
                        .to_string(),
                    v.get("message")
                        .and_then(|a| a.as_str())
                        .unwrap_or("")
                        .to_string(),
                ),
                // The host inspected again and refused: that is its verdict, not a failure.
                Reply::Failed { code, why } if code.as_deref() == Some("DMHEAL_UNSAFE") => {
                    ("refused".to_string(), why)
                }
                Reply::Failed { why, .. } => ("failed".to_string(), why),
                Reply::Skipped(why) => ("failed".to_string(), why.to_string()),
            };
            HealAttempt {
                host_uuid: h.host_uuid,
                host_name: h.host_name,
                vdi_uuid: vdi,
                action,
                message,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;
    use local::{DomainHere, LocalVolume};

    const MINE: &str = "3f1c0de2-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

    fn volume(vdi: &str) -> LocalVolume {
        LocalVolume {
            vdi_uuid: vdi.into(),
            dm_name: Some("x".into()),
            verdict: Verdict::Ghost,
            summary: "ghost".into(),
            reasons: Vec::new(),
        }
    }

    #[test]
    fn a_hosts_answer_is_kept_to_the_vms_own_disks_and_domain() {
        let disks = vec![
            Disk {
                device: "0".into(),
                vdi_uuid: MINE.into(),
                vdi_name: "d".into(),
                sr_uuid: "s".into(),
                sr_name: "s".into(),
                sr_type: "lvmoiscsi".into(),
                lvm: true,
            },
            Disk {
                device: "1".into(),
                vdi_uuid: "$(reboot)".into(),
                vdi_name: "d".into(),
                sr_uuid: "s".into(),
                sr_name: "s".into(),
                sr_type: "lvm".into(),
                lvm: true,
            },
        ];
        let vdis = asked_vdis(&disks);
        assert_eq!(vdis, vec![MINE], "only well-formed uuids are asked about");
        let vm = VmInfo {
            uuid: "v".into(),
            name_label: "v".into(),
            power_state: "Running".into(),
            resident_on: None,
            domid: Some(7),
        };
        let view = LocalView {
            host_uuid: None,
            volumes: vec![
                volume(MINE),
                volume("99999999-9999-4999-8999-999999999999"),
                volume("$(reboot)"),
            ],
            domain: Some(DomainHere {
                domid: 8,
                present: Some(false),
                state: None,
                source: "xl".into(),
            }),
        };
        let kept = only_asked(view, &vdis, &vm);
        let listed: Vec<&str> = kept.volumes.iter().map(|v| v.vdi_uuid.as_str()).collect();
        assert_eq!(listed, vec![MINE]);
        assert!(
            kept.domain.is_none(),
            "another domain than the VM's is dropped"
        );
    }
}
