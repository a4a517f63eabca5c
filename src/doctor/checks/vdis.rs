//! VDI checks: stale `host_<ref>` marks, VDIs left on the control domain, orphaned VDIs
//! (snapshot VDIs included, as Xen Orchestra counts them), broken VHD chains, chains waiting
//! for a coalesce or longer than SM allows.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{sr_label, vdi_label, Finding, SafeAction, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::xapi::records::Vdi;

/// SM refuses to snapshot a VHD whose chain is this deep or deeper (vhdutil.MAX_CHAIN_SIZE;
/// LVHDSR raises SnapshotChainTooLong).
pub const SM_MAX_CHAIN: usize = 30;

/// sm-config `host_<ref>` marks that are stale: the host is not in the database (SM's
/// resetvdis force-clears those), or no VM resident on it has the VDI attached and — for this
/// host, from local facts; for another live host, asked through the plugin when `--apply`
/// acts — nothing there uses it. Removed through the API (VDI.remove_from_sm_config), as
/// resetvdis does; sm-config is read-only to `xe`. Must not fire: a VM resident on that host
/// has the VDI attached; an activation is in progress (`activating`); on this host a tapdisk
/// serves it or its mapping is open, or either cannot be known.
pub fn stale_host_keys(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for (vdi_ref, vdi) in &s.vdis {
        if vdi.sm_config.contains_key("activating") {
            continue;
        }
        for (key, mode) in &vdi.sm_config {
            let Some(host_ref) = key.strip_prefix("host_") else {
                continue;
            };
            let attached = s.attached_on(vdi_ref, host_ref);
            if !attached.is_empty() {
                continue;
            }
            let (why, ask, evidence) = match s.hosts.get(host_ref) {
                None => (
                    format!("names host {host_ref}, which is not in the database"),
                    None,
                    json!({}),
                ),
                Some(_) if Some(host_ref) == s.this_host.as_deref() => {
                    let (tap, open) = (s.tapdisk_serves(&vdi.uuid), s.mapping_open(&vdi.uuid));
                    if tap != Some(false) || open != Some(false) {
                        continue;
                    }
                    (
                        "marks the VDI activated on this host, but no VM here has it attached, no tapdisk serves it and no mapping of it is open".to_string(),
                        None,
                        json!({"tapdisk": false, "mapping_open": false}),
                    )
                }
                Some(h) if s.is_live(host_ref) => (
                    format!(
                        "marks the VDI activated on {}, where no VM has it attached (to be confirmed by {} itself before removal)",
                        h.name_label, h.name_label
                    ),
                    Some(host_ref.to_string()),
                    json!({"confirm_on": h.uuid}),
                ),
                Some(_) => continue, // a host that is down cannot confirm anything
            };
            let host_uuid = s.hosts.get(host_ref).map(|h| h.uuid.clone());
            out.push(Finding {
                code: "stale_host_key",
                severity: Severity::Warning,
                subject: vdi_label(vdi),
                summary: format!("sm-config {key}={mode} {why}"),
                evidence: json!({"vdi": vdi.uuid, "key": key, "value": mode, "host": host_uuid, "facts": evidence}),
                plan: vec![
                    "dmheal doctor --apply   # removes it through xapi (VDI.remove_from_sm_config), after re-checking".to_string(),
                    format!(
                        "# by hand: python3 -c 'import XenAPI; s = XenAPI.xapi_local(); s.xenapi.login_with_password(\"root\", \"\"); x = s.xenapi; x.VDI.remove_from_sm_config(x.VDI.get_by_uuid(\"{}\"), \"{key}\")'",
                        vdi.uuid
                    ),
                ],
                safe_action: Some(SafeAction::RemoveHostKey {
                    vdi: vdi_ref.clone(),
                    key: key.clone(),
                    ask,
                }),
            });
        }
    }
    out
}

/// Every VBD of a control domain that names a VDI, plugged or not (Xen Orchestra lists them
/// all): a backup tool or an interrupted export leaves them, and a VDI held by dom0 cannot be
/// attached to its VM. Info only, a printed plan.
pub fn on_control_domain(s: &Snapshot) -> Vec<Finding> {
    s.vbds
        .values()
        .filter(|b| s.vms.get(&b.vm).is_some_and(|vm| vm.is_control_domain))
        .filter_map(|b| s.vdis.get(&b.vdi).map(|v| (b, v)))
        .map(|(b, v)| {
            let mut plan = Vec::new();
            if b.currently_attached {
                plan.push(format!("xe vbd-unplug uuid={}", b.uuid));
            }
            plan.push(format!("xe vbd-destroy uuid={}", b.uuid));
            Finding {
                code: "vdi_on_control_domain",
                severity: Severity::Info,
                subject: vdi_label(v),
                summary: format!(
                    "a VBD of the control domain names it, as {} ({})",
                    b.device,
                    if b.currently_attached { "plugged" } else { "not plugged" }
                ),
                evidence: json!({"vbd": b.uuid, "device": b.device, "plugged": b.currently_attached}),
                plan,
                safe_action: None,
            }
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

/// VDIs no VM (or VM snapshot) uses — snapshot VDIs included, as Xen Orchestra counts them.
/// Must not fire for the known false positives: suspend images and other system types, PVS
/// cache, ISO and udev SRs, VDIs in the middle of a storage migration, empty VDIs, unmanaged
/// (hidden base copy) VDIs, a VM's suspend image.
pub fn orphaned(s: &Snapshot) -> Vec<Finding> {
    let suspend: BTreeSet<&str> = s.vms.values().map(|v| v.suspend_vdi.as_str()).collect();
    s.vdis
        .iter()
        .filter(|(r, v)| v.vbds.is_empty() && v.managed && !suspend.contains(r.as_str()))
        .map(|(_, v)| v)
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
        .map(|v| {
            let what = if v.is_a_snapshot {
                "a snapshot VDI that no VM snapshot uses"
            } else {
                "no VBD: no VM uses it"
            };
            Finding {
                code: "orphaned_vdi",
                severity: Severity::Info,
                subject: vdi_label(v),
                summary: format!("{what} (in {})", sr_label(s, &v.sr)),
                evidence: json!({"vdi": v.uuid, "type": v.kind, "virtual_size": v.virtual_size,
                                 "is_a_snapshot": v.is_a_snapshot}),
                plan: vec![format!(
                    "xe vdi-param-list uuid={}   # then, if unwanted: xe vdi-destroy uuid={}",
                    v.uuid, v.uuid
                )],
                safe_action: None,
            }
        })
        .collect()
}

/// VHD chains whose vhd-parent is not a VDI xapi knows. Must not fire when the parent exists.
pub fn broken_chains(s: &Snapshot) -> Vec<Finding> {
    let known: BTreeSet<&str> = s.vdis.values().map(|v| v.uuid.as_str()).collect();
    s.vdis
        .values()
        .filter_map(|v| v.sm_config.get("vhd-parent").map(|p| (v, p)))
        .filter(|(_, p)| !known.contains(p.as_str()))
        .map(|(v, p)| Finding {
            code: "broken_vhd_chain",
            severity: Severity::Critical,
            subject: vdi_label(v),
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

/// The chain of `v` (itself first) by vhd-parent, stopping at a missing parent or a loop.
fn chain<'a>(by_uuid: &BTreeMap<&str, &'a Vdi>, v: &'a Vdi) -> Vec<&'a Vdi> {
    let mut out = vec![v];
    let mut seen: BTreeSet<&str> = [v.uuid.as_str()].into();
    while let Some(parent) = out
        .last()
        .and_then(|l| l.sm_config.get("vhd-parent"))
        .and_then(|p| by_uuid.get(p.as_str()))
    {
        if !seen.insert(parent.uuid.as_str()) {
            break;
        }
        out.push(parent);
    }
    out
}

/// Chains waiting for SM's garbage collector, as Xen Orchestra's "VDIs to coalesce" counts
/// them, anywhere in the chain: every node with exactly one child (the child is coalesced into
/// it — a hidden base copy, or above a snapshot's base), for each VDI in use (managed, not a
/// snapshot, the chain's leaf), with the chain's depth; and chains as deep as SM's limit (snapshots of the VDI
/// then fail with SnapshotChainTooLong). Must not fire for a VDI with no parent, or where
/// every node up the chain has other children too (snapshot bases).
pub fn chains(s: &Snapshot) -> Vec<Finding> {
    let by_uuid: BTreeMap<&str, &Vdi> = s.vdis.values().map(|v| (v.uuid.as_str(), v)).collect();
    let mut children: BTreeMap<&str, usize> = BTreeMap::new();
    for v in s.vdis.values() {
        if let Some(p) = v.sm_config.get("vhd-parent") {
            *children.entry(p.as_str()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    // From each VDI in use: managed, not a snapshot, a leaf (SM keeps a VDI's uuid on the leaf
    // of its chain; what is above it is hidden base copies).
    for v in s
        .vdis
        .values()
        .filter(|v| v.managed && !v.is_a_snapshot && !children.contains_key(v.uuid.as_str()))
    {
        let c = chain(&by_uuid, v);
        if c.len() < 2 {
            continue;
        }
        let uuids: Vec<&str> = c.iter().map(|x| x.uuid.as_str()).collect();
        // Each link child -> parent where the parent has no other child: SM merges them.
        let to_coalesce: Vec<serde_json::Value> = c
            .windows(2)
            .filter(|w| children.get(w[1].uuid.as_str()) == Some(&1))
            .map(|w| json!({"child": w[0].uuid, "into": w[1].uuid, "leaf": std::ptr::eq(w[0], v)}))
            .collect();
        let sr = s.srs.get(&v.sr).map(|x| x.uuid.as_str()).unwrap_or("<sr>");
        let evidence = json!({"chain": uuids, "depth": c.len(), "to_coalesce": to_coalesce});
        if c.len() >= SM_MAX_CHAIN {
            out.push(Finding {
                code: "vdi_chain_too_long",
                severity: Severity::Warning,
                subject: vdi_label(v),
                summary: format!(
                    "its VHD chain is {} deep; SM refuses to snapshot at {SM_MAX_CHAIN} (SnapshotChainTooLong); {} link(s) wait for a coalesce",
                    c.len(),
                    to_coalesce.len()
                ),
                evidence,
                plan: vec![format!("xe sr-scan uuid={sr}   # lets SM's garbage collector coalesce; check SMlog for GC errors")],
                safe_action: None,
            });
        } else if !to_coalesce.is_empty() {
            let nodes: Vec<&str> = to_coalesce
                .iter()
                .filter_map(|x| x["into"].as_str())
                .collect();
            out.push(Finding {
                code: "vdi_to_coalesce",
                severity: Severity::Info,
                subject: vdi_label(v),
                summary: format!(
                    "{} link(s) of its chain (depth {}) wait for SM's garbage collector: {} ha{} no other child",
                    to_coalesce.len(),
                    c.len(),
                    nodes.join(", "),
                    if nodes.len() == 1 { "s" } else { "ve" }
                ),
                evidence,
                plan: vec![format!("xe sr-scan uuid={sr}   # triggers SM's garbage collector")],
                safe_action: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;

    #[test]
    fn host_keys_are_stale_only_with_evidence() {
        let mut s = pool();
        let a = this_host(&s);
        let b = add_host(&mut s, "xcp-b", true);
        let down = add_host(&mut s, "xcp-c", false);
        let (sr, _) = add_sr(&mut s, "shared", "lvmoiscsi", &[(&a, "SCSIid=x", true)]);
        let vdi = add_vdi(&mut s, &sr, "disk");
        let key = |h: &str| format!("host_{h}");
        let set = |s: &mut Snapshot, h: &str| {
            let v = s.vdis.get_mut(&vdi).unwrap();
            v.sm_config.clear();
            v.sm_config.insert(key(h), "RW".into());
        };
        // A host not in the database: stale, nothing to ask.
        set(&mut s, "OpaqueRef:gone");
        let f = stale_host_keys(&s);
        assert!(matches!(
            f[0].safe_action,
            Some(SafeAction::RemoveHostKey { ask: None, .. })
        ));
        // This host, nothing uses it here: stale.
        set(&mut s, &a);
        assert_eq!(stale_host_keys(&s).len(), 1);
        // ... but a tapdisk serves it, or its mapping is open, or tapdisk cannot be asked.
        let uuid = s.vdis[&vdi].uuid.clone();
        s.tapdisk_paths = Some(vec![format!("/dev/sm/backend/x/{uuid}")]);
        assert!(stale_host_keys(&s).is_empty());
        s.tapdisk_paths = None;
        assert!(stale_host_keys(&s).is_empty());
        s.tapdisk_paths = Some(vec![]);
        // Another live host: offered, to be confirmed by that host.
        set(&mut s, &b);
        let f = stale_host_keys(&s);
        assert!(
            matches!(&f[0].safe_action, Some(SafeAction::RemoveHostKey { ask: Some(h), .. }) if *h == b)
        );
        // ... unless a VM running there has it attached, or an activation is in progress.
        let vm = add_vm(&mut s, "web", "Running", Some((&b, 3)));
        add_vbd(&mut s, &vm, &vdi, true);
        assert!(stale_host_keys(&s).is_empty());
        set(&mut s, &down);
        assert!(
            stale_host_keys(&s).is_empty(),
            "a host that is down cannot confirm"
        );
        set(&mut s, "OpaqueRef:gone");
        s.vdis
            .get_mut(&vdi)
            .unwrap()
            .sm_config
            .insert("activating".into(), "True".into());
        assert!(stale_host_keys(&s).is_empty());
    }

    #[test]
    fn snapshot_vdis_nobody_uses_are_orphans_a_suspend_image_is_not() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "local", "lvm", &[]);
        let snap = add_vdi(&mut s, &sr, "snap");
        s.vdis.get_mut(&snap).unwrap().is_a_snapshot = true;
        let f = orphaned(&s);
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("snapshot VDI"));
        let vm = add_vm(&mut s, "sleeping", "Suspended", None);
        s.vms.get_mut(&vm).unwrap().suspend_vdi = snap.clone();
        assert!(orphaned(&s).is_empty());
    }

    #[test]
    fn chains_to_coalesce_and_chains_too_long() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "local", "lvm", &[]);
        let base = add_vdi(&mut s, &sr, "base");
        s.vdis.get_mut(&base).unwrap().managed = false;
        let leaf = add_vdi(&mut s, &sr, "leaf");
        let base_uuid = s.vdis[&base].uuid.clone();
        s.vdis
            .get_mut(&leaf)
            .unwrap()
            .sm_config
            .insert("vhd-parent".into(), base_uuid.clone());
        let f = chains(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, "vdi_to_coalesce");
        assert_eq!(f[0].evidence["depth"], 2);
        // A second child (a snapshot's base): nothing to coalesce.
        let other = add_vdi(&mut s, &sr, "other");
        s.vdis
            .get_mut(&other)
            .unwrap()
            .sm_config
            .insert("vhd-parent".into(), base_uuid.clone());
        s.vdis.get_mut(&other).unwrap().is_a_snapshot = true;
        assert!(chains(&s).is_empty());
        // ... but a base copy above that snapshot's base, with it as its only child: SM
        // coalesces them, and that is said for the leaf, with the chain's depth.
        let root = add_vdi(&mut s, &sr, "root");
        s.vdis.get_mut(&root).unwrap().managed = false;
        let root_uuid = s.vdis[&root].uuid.clone();
        s.vdis
            .get_mut(&base)
            .unwrap()
            .sm_config
            .insert("vhd-parent".into(), root_uuid.clone());
        let f = chains(&s);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].evidence["depth"], 3);
        assert_eq!(f[0].evidence["to_coalesce"][0]["into"], root_uuid.as_str());
        // A chain of SM's limit.
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "local", "lvm", &[]);
        let mut parent: Option<String> = None;
        for i in 0..SM_MAX_CHAIN {
            let v = add_vdi(&mut s, &sr, &format!("v{i}"));
            if let Some(p) = &parent {
                s.vdis
                    .get_mut(&v)
                    .unwrap()
                    .sm_config
                    .insert("vhd-parent".into(), p.clone());
            }
            parent = Some(s.vdis[&v].uuid.clone());
        }
        let f = chains(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, "vdi_chain_too_long");
    }
}
