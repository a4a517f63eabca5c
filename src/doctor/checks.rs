//! The doctor's checks: pure functions of a `Snapshot`. Each says when it fires and, as
//! importantly, when it must not.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use super::snapshot::{Domains, Snapshot};
use crate::xapi::records::{Ref, Sr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What `--apply` may do by itself, after re-checking just before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SafeAction {
    /// SR.forget the duplicate, then SR.scan the copy that stays.
    SrForget { sr: Ref, keep: Ref },
    /// VM.power_state_reset a VM whose domain provably does not exist.
    VmPowerStateReset { vm: Ref },
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub subject: String,
    pub summary: String,
    /// The records and facts that prove it.
    pub evidence: serde_json::Value,
    /// The exact xe commands an administrator would run.
    pub plan: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_action: Option<SafeAction>,
}

fn sr_label(s: &Snapshot, r: &str) -> String {
    s.srs
        .get(r)
        .map(|sr| format!("SR {} ({:?})", sr.uuid, sr.name_label))
        .unwrap_or_else(|| r.to_string())
}

/// Device identities of an SR from its PBDs' device-config.
fn devices(s: &Snapshot, sr: &Sr) -> BTreeSet<String> {
    sr.pbds
        .iter()
        .filter_map(|p| s.pbds.get(p))
        .flat_map(|p| {
            ["device", "location", "SCSIid", "path"]
                .iter()
                .filter_map(|k| p.device_config.get(*k).map(|v| format!("{k}={v}")))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn plugged(s: &Snapshot, sr: &Sr) -> bool {
    sr.pbds
        .iter()
        .filter_map(|p| s.pbds.get(p))
        .any(|p| p.currently_attached && s.is_live(&p.host))
}

fn attached_vdis(s: &Snapshot, sr_ref: &str) -> Vec<String> {
    s.vdis
        .values()
        .filter(|v| v.sr == sr_ref)
        .filter(|v| {
            v.vbds
                .iter()
                .filter_map(|b| s.vbds.get(b))
                .any(|b| b.currently_attached)
        })
        .map(|v| v.uuid.clone())
        .collect()
}

/// Duplicate SRs of one device: same type, content type and name, one with a PBD plugged on a
/// live host, the others with none plugged, and no conflicting device-config.
/// Must not fire: a lone SR; a group where none or more than one copy is plugged (nothing to
/// keep, or both in use); a copy whose device-config names a different device.
pub fn duplicate_srs(s: &Snapshot) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, String, String), Vec<&Ref>> = BTreeMap::new();
    for (r, sr) in &s.srs {
        groups
            .entry((
                sr.kind.clone(),
                sr.content_type.clone(),
                sr.name_label.clone(),
            ))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((kind, content, name), refs) in groups {
        if refs.len() < 2 {
            continue;
        }
        let live: Vec<&&Ref> = refs.iter().filter(|r| plugged(s, &s.srs[**r])).collect();
        if live.len() != 1 {
            continue;
        }
        let keep = (*live[0]).clone();
        let keep_dev = devices(s, &s.srs[&keep]);
        for dup in refs.iter().filter(|r| ***r != keep) {
            let sr = &s.srs[*dup];
            let dev = devices(s, sr);
            if !dev.is_empty() && !keep_dev.is_empty() && dev.is_disjoint(&keep_dev) {
                continue;
            }
            let pbd_hosts: Vec<String> = sr
                .pbds
                .iter()
                .filter_map(|p| s.pbds.get(p))
                .map(|p| match s.hosts.get(&p.host) {
                    Some(h) => h.name_label.clone(),
                    None => "<not in database>".into(),
                })
                .collect();
            let only_gone_hosts = sr
                .pbds
                .iter()
                .filter_map(|p| s.pbds.get(p))
                .all(|p| !s.hosts.contains_key(&p.host));
            let in_use = attached_vdis(s, dup);
            let safe = only_gone_hosts && in_use.is_empty();
            out.push(Finding {
                check: "duplicate_sr",
                severity: Severity::Warning,
                subject: sr_label(s, dup),
                summary: format!(
                    "duplicate of {} ({kind}, {content}, {name:?}): not plugged anywhere, the other copy is",
                    sr_label(s, &keep)
                ),
                evidence: json!({
                    "duplicate": {"uuid": sr.uuid, "pbd_hosts": pbd_hosts, "devices": dev, "vdis": sr.vdis.len()},
                    "kept": {"uuid": s.srs[&keep].uuid, "devices": keep_dev},
                    "vdis_attached_to_vms": in_use,
                }),
                plan: vec![
                    format!("xe sr-forget uuid={}", sr.uuid),
                    format!("xe sr-scan uuid={}", s.srs[&keep].uuid),
                ],
                safe_action: safe.then(|| SafeAction::SrForget {
                    sr: (*dup).clone(),
                    keep: keep.clone(),
                }),
            });
        }
    }
    out
}

/// SRs with no PBD at all: attached nowhere. Must not fire for an SR with any PBD.
pub fn srs_without_pbds(s: &Snapshot) -> Vec<Finding> {
    s.srs
        .iter()
        .filter(|(_, sr)| sr.pbds.is_empty())
        .map(|(r, sr)| Finding {
            check: "sr_without_pbds",
            severity: Severity::Warning,
            subject: sr_label(s, r),
            summary: format!(
                "no PBD: the SR is attached to no host ({} VDIs recorded)",
                sr.vdis.len()
            ),
            evidence: json!({"uuid": sr.uuid, "type": sr.kind, "vdis": sr.vdis.len()}),
            plan: vec![
                format!(
                    "xe sr-param-list uuid={}   # confirm nothing needs it",
                    sr.uuid
                ),
                format!("xe sr-forget uuid={}", sr.uuid),
            ],
            safe_action: None,
        })
        .collect()
}

/// PBDs whose host is not in the database ("<not in database>" in XenCenter), and unplugged
/// PBDs on live, enabled hosts. Must not fire for a plugged PBD, a PBD of a host that is down,
/// or the PBD of a duplicate SR (that finding covers it).
pub fn pbd_problems(s: &Snapshot, duplicates: &BTreeSet<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (r, p) in &s.pbds {
        let sr = s.srs.get(&p.sr);
        let sr_uuid = sr.map(|x| x.uuid.clone()).unwrap_or_default();
        match s.hosts.get(&p.host) {
            None => out.push(Finding {
                check: "pbd_host_not_in_database",
                severity: Severity::Warning,
                subject: format!("PBD {} of {}", p.uuid, sr_label(s, &p.sr)),
                summary: format!("its host {} is not in the database", p.host),
                evidence: json!({"pbd": p.uuid, "host_ref": p.host, "sr": sr_uuid, "device_config": p.device_config}),
                plan: vec![format!("xe pbd-destroy uuid={}", p.uuid)],
                safe_action: None,
            }),
            Some(h) if !p.currently_attached && h.enabled && s.is_live(&p.host) && !duplicates.contains(&p.sr) => {
                out.push(Finding {
                    check: "pbd_unplugged",
                    severity: Severity::Warning,
                    subject: format!("PBD {} of {}", p.uuid, sr_label(s, &p.sr)),
                    summary: format!("not plugged on live host {}", h.name_label),
                    evidence: json!({"pbd": p.uuid, "host": h.uuid, "sr": sr_uuid}),
                    plan: vec![format!("xe pbd-plug uuid={}", p.uuid)],
                    safe_action: None,
                });
            }
            Some(_) => {}
        }
        let _ = r;
    }
    out
}

/// VMs xapi calls Running or Paused on this host whose domain does not exist, and whose disks
/// no tapdisk serves. Must not fire: the domain exists; this host's domains are unknown; the VM
/// is resident elsewhere; a tapdisk serves one of its disks, or tapdisk cannot be asked.
pub fn vms_without_domain(s: &Snapshot) -> Vec<Finding> {
    let (Some(this), Some(Domains::Known { domids, source })) = (&s.this_host, &s.domains) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (r, vm) in &s.vms {
        if vm.is_control_domain
            || vm.resident_on != *this
            || !matches!(vm.power_state.as_str(), "Running" | "Paused")
        {
            continue;
        }
        let domid: Option<u32> = vm.domid.parse().ok();
        if domid.is_some_and(|d| domids.contains(&d)) {
            continue;
        }
        let disks: Vec<String> = vm
            .vbds
            .iter()
            .filter_map(|b| s.vbds.get(b))
            .filter_map(|b| s.vdis.get(&b.vdi))
            .map(|v| v.uuid.clone())
            .collect();
        let served: Vec<Option<bool>> = disks.iter().map(|d| s.tapdisk_serves(d)).collect();
        if served.iter().any(|x| *x != Some(false)) {
            continue;
        }
        out.push(Finding {
            check: "vm_without_domain",
            severity: Severity::Critical,
            subject: format!("VM {} ({:?})", vm.uuid, vm.name_label),
            summary: format!(
                "xapi says {} on this host with domid {}, but no such domain exists and no tapdisk serves its disks",
                vm.power_state, vm.domid
            ),
            evidence: json!({"power_state": vm.power_state, "domid": vm.domid, "domains": domids, "domains_from": source, "disks": disks}),
            plan: vec![format!("xe vm-reset-powerstate uuid={} --force", vm.uuid)],
            safe_action: Some(SafeAction::VmPowerStateReset { vm: r.clone() }),
        });
    }
    out
}

/// sm-config host_<ref> marks that name a host not in the database, or this live host while
/// no tapdisk has the VDI open (what resetvdis would clear). Must not fire when the host exists
/// elsewhere, when a tapdisk serves the VDI, or when tapdisk cannot be asked.
pub fn stale_host_keys(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for vdi in s.vdis.values() {
        for (key, mode) in &vdi.sm_config {
            let Some(host_ref) = key.strip_prefix("host_") else {
                continue;
            };
            let why = if !s.hosts.contains_key(host_ref) {
                format!("names host {host_ref}, which is not in the database")
            } else if Some(host_ref) == s.this_host.as_deref()
                && s.tapdisk_serves(&vdi.uuid) == Some(false)
            {
                "marks the VDI activated on this host, but no tapdisk has it open".to_string()
            } else {
                continue;
            };
            out.push(Finding {
                check: "stale_host_key",
                severity: Severity::Warning,
                subject: format!("VDI {} ({:?})", vdi.uuid, vdi.name_label),
                summary: format!("sm-config {key}={mode} {why}"),
                evidence: json!({"vdi": vdi.uuid, "key": key, "value": mode}),
                plan: vec![format!(
                    "xe vdi-param-remove uuid={} param-name=sm-config param-key={key}",
                    vdi.uuid
                )],
                safe_action: None,
            });
        }
    }
    out
}

/// VDIs attached to the control domain (often left by backup tools). Info only.
pub fn vdis_on_dom0(s: &Snapshot) -> Vec<Finding> {
    s.vbds
        .values()
        .filter(|b| b.currently_attached)
        .filter(|b| s.vms.get(&b.vm).is_some_and(|vm| vm.is_control_domain))
        .filter_map(|b| s.vdis.get(&b.vdi).map(|v| (b, v)))
        .map(|(b, v)| Finding {
            check: "vdi_on_control_domain",
            severity: Severity::Info,
            subject: format!("VDI {} ({:?})", v.uuid, v.name_label),
            summary: format!("attached to the control domain as {}", b.device),
            evidence: json!({"vbd": b.uuid, "device": b.device}),
            plan: vec![
                format!("xe vbd-unplug uuid={}", b.uuid),
                format!("xe vbd-destroy uuid={}", b.uuid),
            ],
            safe_action: None,
        })
        .collect()
}

const NOT_ORPHAN_TYPES: [&str; 8] = [
    "suspend",
    "crashdump",
    "ha_statefile",
    "redo_log",
    "metadata",
    "pvs_cache",
    "cbt_metadata",
    "rrd",
];

/// VDIs no VM uses. Must not fire for the known false positives: snapshots, suspend images and
/// other system types, PVS cache, ISO and udev SRs, VDIs in the middle of a storage migration,
/// empty VDIs, unmanaged (hidden base copy) VDIs.
pub fn orphaned_vdis(s: &Snapshot) -> Vec<Finding> {
    s.vdis
        .values()
        .filter(|v| v.vbds.is_empty() && v.managed && !v.is_a_snapshot)
        .filter(|v| !NOT_ORPHAN_TYPES.contains(&v.kind.as_str()))
        .filter(|v| {
            s.srs
                .get(&v.sr)
                .is_some_and(|sr| !matches!(sr.kind.as_str(), "iso" | "udev"))
        })
        .filter(|v| {
            !v.sm_config
                .keys()
                .chain(v.other_config.keys())
                .any(|k| k.contains("mirror") || k.contains("pvs"))
        })
        .filter(|v| v.virtual_size != "0")
        .map(|v| Finding {
            check: "orphaned_vdi",
            severity: Severity::Info,
            subject: format!("VDI {} ({:?})", v.uuid, v.name_label),
            summary: format!("no VBD: no VM uses it (in {})", sr_label(s, &v.sr)),
            evidence: json!({"vdi": v.uuid, "type": v.kind, "virtual_size": v.virtual_size}),
            plan: vec![format!(
                "xe vdi-param-list uuid={}   # then, if unwanted: xe vdi-destroy uuid={}",
                v.uuid, v.uuid
            )],
            safe_action: None,
        })
        .collect()
}

/// VHD chains whose vhd-parent is not a VDI xapi knows. Must not fire when the parent exists.
pub fn broken_vhd_chains(s: &Snapshot) -> Vec<Finding> {
    let known: BTreeSet<&str> = s.vdis.values().map(|v| v.uuid.as_str()).collect();
    s.vdis
        .values()
        .filter_map(|v| v.sm_config.get("vhd-parent").map(|p| (v, p)))
        .filter(|(_, p)| !known.contains(p.as_str()))
        .map(|(v, p)| Finding {
            check: "broken_vhd_chain",
            severity: Severity::Critical,
            subject: format!("VDI {} ({:?})", v.uuid, v.name_label),
            summary: format!("its vhd-parent {p} is not a VDI xapi knows: the chain is broken"),
            evidence: json!({"vdi": v.uuid, "vhd-parent": p}),
            plan: vec![format!(
                "xe sr-scan uuid={}   # then check the parent with vhd-util on the SR",
                s.srs.get(&v.sr).map(|x| x.uuid.as_str()).unwrap_or("<sr>")
            )],
            safe_action: None,
        })
        .collect()
}

/// Every check, in order of severity then subject.
pub fn all(s: &Snapshot) -> Vec<Finding> {
    let dups = duplicate_srs(s);
    let dup_refs: BTreeSet<String> = dups
        .iter()
        .filter_map(|f| f.evidence["duplicate"]["uuid"].as_str())
        .filter_map(|u| {
            s.srs
                .iter()
                .find(|(_, sr)| sr.uuid == u)
                .map(|(r, _)| r.clone())
        })
        .collect();
    let mut out = dups;
    out.extend(srs_without_pbds(s));
    out.extend(pbd_problems(s, &dup_refs));
    out.extend(vms_without_domain(s));
    out.extend(stale_host_keys(s));
    out.extend(vdis_on_dom0(s));
    out.extend(orphaned_vdis(s));
    out.extend(broken_vhd_chains(s));
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
