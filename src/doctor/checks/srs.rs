//! SR and PBD checks: duplicate records of the same storage, records attached nowhere, PBDs of
//! vanished hosts, unplugged PBDs, nearly full SRs.
//!
//! A duplicate is a second SR record for the same storage on the same host: the same SR type
//! and device identity (device-config `SCSIid`, `device`, `path`, `location`, NFS `server` and
//! `serverpath`), the host being the PBD's. A record whose PBDs all belong to hosts no longer in
//! the database is an orphan of its identity, and a duplicate when a live host has that
//! storage plugged through another record. Two disks with the same name are two SRs; a host
//! that is down, or a PBD that failed to plug, leaves its SR the only record of its storage on
//! that host: not a duplicate, whatever other hosts have.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::references::why_not_forget;
use super::{sr_label, Finding, SafeAction, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::xapi::records::{Pbd, Ref, Sr};

/// The device-config keys that name the storage behind a PBD.
const IDENTITY_KEYS: [&str; 6] = [
    "SCSIid",
    "device",
    "path",
    "location",
    "server",
    "serverpath",
];

/// The storage a PBD attaches, as its SR type and device-config name it; None when nothing
/// names it (such a record is never anyone's duplicate).
pub fn identity(sr: &Sr, pbd: &Pbd) -> Option<String> {
    let parts: Vec<String> = IDENTITY_KEYS
        .iter()
        .filter_map(|k| pbd.device_config.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| format!("{} {}", sr.kind, parts.join(" ")))
}

fn plugged_live(s: &Snapshot, p: &Pbd) -> bool {
    p.currently_attached && s.is_live(&p.host)
}

fn host_name(s: &Snapshot, host: &str) -> String {
    s.hosts
        .get(host)
        .map(|h| h.name_label.clone())
        .unwrap_or_else(|| "<not in database>".into())
}

/// The finding for one duplicate record `dup` of the storage `kept` serves.
fn duplicate(s: &Snapshot, dup: &Ref, kept: &[Ref], id: &str, why: String) -> Finding {
    let sr = &s.srs[dup];
    let refs = why_not_forget(s, dup);
    let safe = refs.is_empty() && !kept.is_empty();
    let rescan = (kept.len() == 1).then(|| kept[0].clone());
    let mut plan = vec![format!("xe sr-forget uuid={}", sr.uuid)];
    if let Some(k) = &rescan {
        plan.push(format!("xe sr-scan uuid={}", s.srs[k].uuid));
    }
    if !refs.is_empty() {
        plan.insert(
            0,
            format!(
                "# first move or detach what still refers to it: {}",
                refs.join("; ")
            ),
        );
    }
    Finding {
        check: "duplicate_sr",
        severity: Severity::Warning,
        subject: sr_label(s, dup),
        summary: why,
        evidence: json!({
            "identity": id,
            "duplicate": {
                "uuid": sr.uuid,
                "pbds": sr.pbds.iter().filter_map(|p| s.pbds.get(p)).map(|p| json!({
                    "host": host_name(s, &p.host), "plugged": p.currently_attached,
                    "device_config": p.device_config})).collect::<Vec<_>>(),
                "vdis": sr.vdis.len(),
            },
            "kept": kept.iter().map(|k| &s.srs[k].uuid).collect::<Vec<_>>(),
            "references": refs,
        }),
        plan,
        safe_action: safe.then(|| SafeAction::SrForget {
            sr: dup.clone(),
            rescan,
        }),
    }
}

/// Duplicate SR records (see the module's rules). Must not fire: a lone record of its storage on
/// its host; another device; a record whose host is down or whose PBD failed to plug; an orphan
/// no live host has the storage of. Forgetting is offered only for a record nothing references
/// (`references`), with a copy that stays.
pub fn duplicates(s: &Snapshot) -> Vec<Finding> {
    // (host, identity) -> the SR records attaching that storage on that host.
    let mut on_host: BTreeMap<(Ref, String), BTreeSet<Ref>> = BTreeMap::new();
    for (sr_ref, sr) in &s.srs {
        for p in sr.pbds.iter().filter_map(|p| s.pbds.get(p)) {
            if let (true, Some(id)) = (s.hosts.contains_key(&p.host), identity(sr, p)) {
                on_host
                    .entry((p.host.clone(), id))
                    .or_default()
                    .insert(sr_ref.clone());
            }
        }
    }
    let plugged_here = |sr_ref: &Ref, host: &Ref| {
        s.srs[sr_ref]
            .pbds
            .iter()
            .filter_map(|p| s.pbds.get(p))
            .any(|p| &p.host == host && plugged_live(s, p))
    };
    let mut out = Vec::new();
    for ((host, id), srs) in &on_host {
        if srs.len() < 2 {
            continue;
        }
        let plugged: Vec<Ref> = srs
            .iter()
            .filter(|r| plugged_here(r, host))
            .cloned()
            .collect();
        for dup in srs.iter().filter(|r| !plugged.contains(r)) {
            let why = match plugged.len() {
                1 => format!(
                    "a second record of the storage {} serves on {} ({id}); not plugged there",
                    sr_label(s, &plugged[0]),
                    host_name(s, host)
                ),
                0 => format!(
                    "{} records of the same storage on {} ({id}), none plugged: which one is right is not known",
                    srs.len(),
                    host_name(s, host)
                ),
                n => format!("{n} records of the same storage are plugged on {} ({id})", host_name(s, host)),
            };
            let kept = if plugged.len() == 1 {
                plugged.clone()
            } else {
                Vec::new()
            };
            out.push(duplicate(s, dup, &kept, id, why));
        }
    }
    // Orphans: every PBD of a host no longer in the database.
    for (sr_ref, sr) in &s.srs {
        let pbds: Vec<&Pbd> = sr.pbds.iter().filter_map(|p| s.pbds.get(p)).collect();
        if pbds.is_empty() || pbds.iter().any(|p| s.hosts.contains_key(&p.host)) {
            continue;
        }
        for id in pbds
            .iter()
            .filter_map(|p| identity(sr, p))
            .collect::<BTreeSet<_>>()
        {
            let kept: Vec<Ref> = on_host
                .iter()
                .filter(|((host, i), _)| *i == id && s.is_live(host))
                .flat_map(|((host, _), srs)| srs.iter().filter(|r| plugged_here(r, host)))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if kept.is_empty() {
                continue;
            }
            let names: Vec<String> = kept.iter().map(|k| sr_label(s, k)).collect();
            let why = format!(
                "a record of storage {id} whose hosts are no longer in the database; plugged now through {}",
                names.join(", ")
            );
            out.push(duplicate(s, sr_ref, &kept, &id, why));
            break;
        }
    }
    out
}

/// SRs with no PBD at all: attached nowhere, and no host can attach them. Forgotten by
/// `--apply` only when nothing refers to their VDIs. Must not fire for an SR with any PBD.
pub fn without_pbds(s: &Snapshot) -> Vec<Finding> {
    s.srs
        .iter()
        .filter(|(_, sr)| sr.pbds.is_empty())
        .map(|(r, sr)| {
            let refs = why_not_forget(s, r);
            let mut plan = vec![
                format!("xe sr-param-list uuid={}   # confirm nothing needs it", sr.uuid),
                format!("xe sr-forget uuid={}", sr.uuid),
            ];
            if !refs.is_empty() {
                plan.insert(0, format!("# it is still referred to: {}", refs.join("; ")));
            }
            Finding {
                check: "sr_without_pbds",
                severity: Severity::Warning,
                subject: sr_label(s, r),
                summary: format!(
                    "no PBD: the SR is attached to no host ({} VDIs recorded)",
                    sr.vdis.len()
                ),
                evidence: json!({"uuid": sr.uuid, "type": sr.kind, "vdis": sr.vdis.len(), "references": refs}),
                plan,
                safe_action: refs.is_empty().then(|| SafeAction::SrForget {
                    sr: r.clone(),
                    rescan: None,
                }),
            }
        })
        .collect()
}

/// PBDs whose host is not in the database ("<not in database>" in XenCenter); unplugged PBDs on
/// live, enabled hosts (a PBD that failed to plug); PBDs of hosts that are down. Must not fire
/// for a plugged PBD, or for the PBD of a duplicate record (`duplicates`: plugging it is not
/// the fix; that finding says what is).
pub fn pbd_problems(s: &Snapshot, duplicates: &BTreeSet<Ref>) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in s.pbds.values() {
        if duplicates.contains(&p.sr) && s.hosts.contains_key(&p.host) {
            continue;
        }
        let sr_uuid = s.srs.get(&p.sr).map(|x| x.uuid.clone()).unwrap_or_default();
        let subject = format!("PBD {} of {}", p.uuid, sr_label(s, &p.sr));
        match s.hosts.get(&p.host) {
            None => out.push(Finding {
                check: "pbd_host_not_in_database",
                severity: Severity::Warning,
                subject,
                summary: format!("its host {} is not in the database", p.host),
                evidence: json!({"pbd": p.uuid, "host_ref": p.host, "sr": sr_uuid, "device_config": p.device_config}),
                plan: vec![format!("xe pbd-destroy uuid={}", p.uuid)],
                safe_action: None,
            }),
            Some(h) if !p.currently_attached && !s.is_live(&p.host) => out.push(Finding {
                check: "pbd_host_down",
                severity: Severity::Info,
                subject,
                summary: format!("not plugged: host {} is down; its SR is not a duplicate", h.name_label),
                evidence: json!({"pbd": p.uuid, "host": h.uuid, "sr": sr_uuid}),
                plan: vec![format!("# when {} is back: xe pbd-plug uuid={}", h.name_label, p.uuid)],
                safe_action: None,
            }),
            Some(h) if !p.currently_attached && h.enabled => out.push(Finding {
                check: "pbd_unplugged",
                severity: Severity::Warning,
                subject,
                summary: format!("not plugged on live host {}", h.name_label),
                evidence: json!({"pbd": p.uuid, "host": h.uuid, "sr": sr_uuid}),
                plan: vec![format!("xe pbd-plug uuid={}", p.uuid)],
                safe_action: None,
            }),
            Some(_) => {}
        }
    }
    out
}

/// SRs above 90% physical utilisation (Xen Orchestra's health view has it). Must not fire for
/// an SR whose size xapi does not know (0).
pub fn nearly_full(s: &Snapshot) -> Vec<Finding> {
    s.srs
        .iter()
        .filter(|(_, sr)| sr.physical_size > 0 && sr.physical_utilisation * 10 > sr.physical_size * 9)
        .map(|(r, sr)| {
            let pct = sr.physical_utilisation as f64 * 100.0 / sr.physical_size as f64;
            Finding {
                check: "sr_nearly_full",
                severity: Severity::Warning,
                subject: sr_label(s, r),
                summary: format!("{pct:.0}% of its physical size is used"),
                evidence: json!({"physical_size": sr.physical_size, "physical_utilisation": sr.physical_utilisation}),
                plan: vec![format!(
                    "xe vdi-list sr-uuid={} params=uuid,name-label,physical-utilisation   # what uses it",
                    sr.uuid
                )],
                safe_action: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;

    fn subjects(fs: &[Finding], check: &str) -> Vec<String> {
        fs.iter()
            .filter(|f| f.check == check)
            .map(|f| f.subject.split_whitespace().nth(1).unwrap().to_string())
            .collect()
    }

    /// The seed: "Local storage" plugged on xcp-a, an old record of the same disk whose host is
    /// gone — with a second live host with its own local storage on the same device path, and a
    /// second local disk on xcp-a.
    #[test]
    fn the_old_record_is_a_duplicate_on_a_multi_host_pool() {
        let mut s = pool();
        let a = this_host(&s);
        let b = add_host(&mut s, "xcp-b", true);
        let (_, _) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&a, "device=/dev/sda3", true)],
        );
        let (_, _) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&b, "device=/dev/sda3", true)],
        );
        let (_, _) = add_sr(
            &mut s,
            "Local storage 2",
            "lvm",
            &[(&a, "device=/dev/sdb", true)],
        );
        let (old, _) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[("OpaqueRef:gone", "device=/dev/sda3", false)],
        );
        let f = duplicates(&s);
        assert_eq!(subjects(&f, "duplicate_sr"), vec![s.srs[&old].uuid.clone()]);
        assert!(matches!(
            f[0].safe_action,
            Some(SafeAction::SrForget { rescan: None, .. })
        ));
        // With one live host only, the copy that stays is rescanned.
        s.live.insert(b.clone(), false);
        let f = duplicates(&s);
        assert!(matches!(
            f[0].safe_action,
            Some(SafeAction::SrForget {
                rescan: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn a_host_that_is_down_or_a_pbd_that_failed_to_plug_is_not_a_duplicate() {
        let mut s = pool();
        let a = this_host(&s);
        let b = add_host(&mut s, "xcp-b", false);
        add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&a, "device=/dev/sda3", true)],
        );
        add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&b, "device=/dev/sda3", false)],
        );
        let c = add_host(&mut s, "xcp-c", true);
        add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&c, "device=/dev/sda3", false)],
        );
        assert!(duplicates(&s).is_empty());
        let p = pbd_problems(&s, &BTreeSet::new());
        assert_eq!(p.iter().filter(|f| f.check == "pbd_host_down").count(), 1);
        assert_eq!(p.iter().filter(|f| f.check == "pbd_unplugged").count(), 1);
    }

    #[test]
    fn two_disks_with_the_same_name_are_two_srs() {
        let mut s = pool();
        let a = this_host(&s);
        add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&a, "device=/dev/sda3", true)],
        );
        add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&a, "device=/dev/sdb", false)],
        );
        assert!(duplicates(&s).is_empty());
    }

    #[test]
    fn a_duplicate_holding_a_halted_vms_disk_is_never_forgotten_by_itself() {
        let mut s = pool();
        let a = this_host(&s);
        add_sr(
            &mut s,
            "DVD drives",
            "udev",
            &[(&a, "location=/dev/xapi/cd", true)],
        );
        let (dup, _) = add_sr(
            &mut s,
            "DVD drives",
            "udev",
            &[(&a, "location=/dev/xapi/cd", false)],
        );
        let vdi = add_vdi(&mut s, &dup, "disk");
        let vm = add_vm(&mut s, "stopped", "Halted", None);
        add_vbd(&mut s, &vm, &vdi, false);
        let f = duplicates(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].safe_action, None);
        assert!(f[0].plan[0].contains("Halted"), "{:?}", f[0].plan);
    }

    #[test]
    fn an_sr_without_pbds_is_forgotten_only_when_nothing_refers_to_it() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "Local storage", "lvm", &[]);
        assert!(without_pbds(&s)[0].safe_action.is_some());
        let vdi = add_vdi(&mut s, &sr, "disk");
        let vm = add_vm(&mut s, "stopped", "Halted", None);
        add_vbd(&mut s, &vm, &vdi, false);
        assert!(without_pbds(&s)[0].safe_action.is_none());
    }

    #[test]
    fn nearly_full_srs() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "full", "lvm", &[]);
        s.srs.get_mut(&sr).unwrap().physical_size = 1000;
        s.srs.get_mut(&sr).unwrap().physical_utilisation = 900;
        assert!(nearly_full(&s).is_empty());
        s.srs.get_mut(&sr).unwrap().physical_utilisation = 901;
        assert_eq!(nearly_full(&s).len(), 1);
    }
}
