//! SR and PBD checks, one finding per SR record, each with every PBD's state: duplicates
//! proven by what is on the storage (`doctor::identity`), records whose identity cannot be
//! proven, records attached nowhere, PBDs of vanished hosts, PBDs that failed to plug or whose
//! host is down, nearly full SRs.
//!
//! Nothing referenced is ever planned for forgetting: an SR with a VDI that any VBD (any power
//! state), snapshot or suspend image uses, or that the pool or a host uses, gets the fix that
//! keeps it (re-create its PBD where its storage is, plug it) instead. `--apply` forgets only a
//! proven phantom duplicate that `restore` gives back exactly (`forget_restorable`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::references::why_not_forget;
use super::{sr_label, Finding, SafeAction, Severity};
use crate::doctor::identity::Identity;
use crate::doctor::snapshot::Snapshot;
use crate::xapi::fanout::HostState;
use crate::xapi::records::{Pbd, Ref, Sr};

fn pbds_of<'a>(s: &'a Snapshot, sr: &'a Sr) -> Vec<&'a Pbd> {
    sr.pbds.iter().filter_map(|p| s.pbds.get(p)).collect()
}

/// A PBD's state in words: plugged, not plugged (and why that may be), host down or gone.
fn pbd_state(s: &Snapshot, p: &Pbd) -> &'static str {
    match (s.hosts.contains_key(&p.host), s.state(&p.host)) {
        (false, _) => "host not in database",
        (true, Some(HostState::Down)) if p.currently_attached => "host down (was plugged)",
        (true, Some(HostState::Down)) => "host down",
        (true, _) if p.currently_attached => "plugged",
        (true, _) => "not plugged",
    }
}

/// Every PBD of an SR, as evidence: host, state, device-config.
fn pbd_evidence(s: &Snapshot, sr: &Sr) -> Vec<Value> {
    pbds_of(s, sr)
        .iter()
        .map(|p| {
            json!({"pbd": p.uuid, "host": s.host_name(&p.host),
                   "host_uuid": s.hosts.get(&p.host).map(|h| h.uuid.clone()),
                   "host_state": s.state(&p.host), "state": pbd_state(s, p),
                   "plugged": p.currently_attached, "device_config": p.device_config})
        })
        .collect()
}

/// Whether SR.forget of `sr` is one `restore` undoes exactly, field by field: SR.introduce
/// gives back its uuid, name, description, type, content type, shared flag and sm-config;
/// SR.set_other_config and SR.set_tags the rest; PBD.create and PBD.set_other_config each
/// PBD. Not so when a PBD is plugged (xapi refuses), a PBD's host is not in the database (no
/// PBD can be made for it), a PBD holds a secret (SR.forget destroys it), or the SR has VDI
/// records (SR.forget drops them; a scan gives back neither their uuids on every SR type nor
/// their names and configs). `None`: it is; otherwise why not.
pub fn forget_restorable(s: &Snapshot, sr_ref: &str) -> Option<String> {
    let sr = s.srs.get(sr_ref)?;
    let pbds = pbds_of(s, sr);
    if let Some(p) = pbds.iter().find(|p| p.currently_attached) {
        return Some(format!("its PBD on {} is plugged", s.host_name(&p.host)));
    }
    if pbds.iter().any(|p| !s.hosts.contains_key(&p.host)) {
        return Some(
            "a PBD of it belongs to a host no longer in the database: restore could not make that PBD again".into(),
        );
    }
    if pbds.iter().any(|p| {
        p.device_config
            .keys()
            .any(|k| k.to_ascii_lowercase().contains("password"))
    }) {
        return Some(
            "a PBD of it holds a password: SR.forget destroys its secret, which restore cannot give back".into(),
        );
    }
    let vdis = s
        .vdis
        .iter()
        .filter(|(r, v)| v.sr == sr_ref || sr.vdis.contains(r))
        .count();
    if vdis > 0 {
        return Some(format!(
            "it holds {vdis} VDI record(s): SR.forget drops them, and restore could not give them back exactly"
        ));
    }
    None
}

/// How to give an SR a PBD again where its storage is, from the device-config recorded in
/// `from` (xapi's `xe pbd-create`, then plug and scan).
fn recreate_plan(s: &Snapshot, sr: &Sr, from: &Pbd, host: Option<&str>) -> Vec<String> {
    let host = host
        .map(|h| {
            s.hosts
                .get(h)
                .map(|x| x.uuid.clone())
                .unwrap_or_else(|| h.to_string())
        })
        .unwrap_or_else(|| "<uuid of the host that sees its storage>".into());
    let config: Vec<String> = from
        .device_config
        .iter()
        .map(|(k, v)| format!("device-config:{k}={}", shell_word(v)))
        .collect();
    vec![
        format!(
            "xe pbd-create host-uuid={host} sr-uuid={} {}   # with the device-config recorded in its old PBD",
            sr.uuid,
            config.join(" ")
        ),
        "xe pbd-plug uuid=<the uuid pbd-create printed>".into(),
        format!("xe sr-scan uuid={}", sr.uuid),
    ]
}

/// A value as one shell word (device-config values are paths, ids, host names).
fn shell_word(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:,=@+".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// The host where a host sees the SR's own storage (its VG), if one does.
fn storage_host(s: &Snapshot, sr: &Sr) -> Option<Ref> {
    let kind = crate::storage::VgKind::of_sr_type(&sr.kind)?;
    let vg = kind.vg_of(&sr.uuid);
    s.surveys.iter().find_map(|(h, x)| {
        x.survey()?
            .storage
            .pvs()?
            .iter()
            .any(|pv| pv.vg_name == vg)
            .then(|| h.clone())
    })
}

/// Findings from each record's identity: `duplicate_sr` (proven) and `sr_identity_unproven`.
pub fn identity_findings(s: &Snapshot, ids: &BTreeMap<Ref, Identity>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (r, id) in ids {
        let Some(sr) = s.srs.get(r) else { continue };
        match id {
            Identity::DuplicateOf { of, evidence } => {
                let refs = why_not_forget(s, r);
                let restorable = forget_restorable(s, r);
                let kept = s.srs.get(of).map(|k| k.uuid.clone()).unwrap_or_default();
                let mut plan = Vec::new();
                if refs.is_empty() {
                    plan.push(format!("xe sr-forget uuid={}", sr.uuid));
                    if let Some(why) = &restorable {
                        plan.push(format!(
                            "# not done by `dmheal doctor --apply`: {why} (check with: xe sr-param-list uuid={})",
                            sr.uuid
                        ));
                    }
                } else {
                    plan.push(format!(
                        "# never forget it while anything refers to it: {}",
                        refs.join("; ")
                    ));
                    plan.push(format!(
                        "# move those disks to SR {kept} (xe vdi-copy / VM migration), then check again: dmheal doctor"
                    ));
                }
                out.push(Finding {
                    code: "duplicate_sr",
                    severity: Severity::Warning,
                    subject: sr_label(s, r),
                    summary: format!(
                        "a second record of the storage of {}: {}",
                        sr_label(s, of),
                        evidence.join("; ")
                    ),
                    evidence: json!({"identity": id, "duplicate": {"uuid": sr.uuid, "type": sr.kind},
                                     "kept": kept, "pbds": pbd_evidence(s, sr),
                                     "vdis": sr.vdis.len(), "references": refs,
                                     "restorable": restorable.is_none(),
                                     "not_restorable_because": restorable}),
                    plan,
                    safe_action: (refs.is_empty() && restorable.is_none())
                        .then(|| SafeAction::SrForget { sr: r.clone() }),
                });
            }
            Identity::Unproven { with, why, check } => {
                let iso_like = matches!(sr.kind.as_str(), "iso" | "file" | "nfs");
                let mut plan = check.clone();
                plan.push(format!(
                    "# never forget either record until the storage says which is whose: xe sr-param-list uuid={}",
                    sr.uuid
                ));
                out.push(Finding {
                    code: "sr_identity_unproven",
                    severity: if iso_like {
                        Severity::Info
                    } else {
                        Severity::Warning
                    },
                    subject: sr_label(s, r),
                    summary: why.clone(),
                    evidence: json!({"identity": id, "with": with.iter().filter_map(|w| s.srs.get(w)).map(|w| &w.uuid).collect::<Vec<_>>(),
                                     "pbds": pbd_evidence(s, sr)}),
                    plan,
                    safe_action: None,
                });
            }
            Identity::Proven { .. } | Identity::Unique => {}
        }
    }
    out
}

/// SRs with no PBD at all: attached nowhere, and no host can attach them. Where a host sees
/// their storage, the fix is a PBD there; when nothing refers to them and no storage of theirs
/// is seen, forgetting is printed (never applied: nothing proves the storage is another's).
/// Must not fire for an SR with any PBD.
pub fn without_pbds(s: &Snapshot) -> Vec<Finding> {
    s.srs
        .iter()
        .filter(|(_, sr)| sr.pbds.is_empty())
        .map(|(r, sr)| {
            let refs = why_not_forget(s, r);
            let found = storage_host(s, sr);
            let mut plan = Vec::new();
            if let Some(h) = &found {
                plan.push(format!(
                    "# its storage is seen on {}: give it a PBD there (xe pbd-create host-uuid={} sr-uuid={} device-config:...), plug it, scan it",
                    s.host_name(h),
                    s.hosts.get(h).map(|x| x.uuid.as_str()).unwrap_or("?"),
                    sr.uuid
                ));
            } else if refs.is_empty() {
                plan.push(format!(
                    "xe sr-param-list uuid={}   # confirm nothing needs it",
                    sr.uuid
                ));
                plan.push(format!("xe sr-forget uuid={}", sr.uuid));
            } else {
                plan.push(format!(
                    "# never forget it while anything refers to it: {}",
                    refs.join("; ")
                ));
                plan.push(
                    "# find the host that sees its storage (dmheal survey there), give it a PBD there (xe pbd-create ... device-config:...), plug it, scan it"
                        .into(),
                );
            }
            Finding {
                code: "sr_without_pbds",
                severity: Severity::Warning,
                subject: sr_label(s, r),
                summary: format!(
                    "no PBD: the SR is attached to no host ({} VDIs recorded{})",
                    sr.vdis.len(),
                    found
                        .as_ref()
                        .map(|h| format!("; its storage is seen on {}", s.host_name(h)))
                        .unwrap_or_default()
                ),
                evidence: json!({"uuid": sr.uuid, "type": sr.kind, "vdis": sr.vdis.len(),
                                 "references": refs,
                                 "storage_seen_on": found.map(|h| s.host_name(&h))}),
                plan,
                safe_action: None,
            }
        })
        .collect()
}

/// PBD problems, one finding per SR record and kind, each with every PBD's state: PBDs whose
/// host is not in the database ("<not in database>" in XenCenter), PBDs not plugged on hosts
/// that are up (a PBD that failed to plug: `xe pbd-plug`), PBDs of hosts that are down. Must
/// not fire for a plugged PBD, or for a proven duplicate (its finding says what to do).
pub fn pbd_problems(s: &Snapshot, ids: &BTreeMap<Ref, Identity>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (r, sr) in &s.srs {
        if matches!(ids.get(r), Some(Identity::DuplicateOf { .. })) {
            continue;
        }
        let pbds = pbds_of(s, sr);
        let gone: Vec<&&Pbd> = pbds
            .iter()
            .filter(|p| !s.hosts.contains_key(&p.host))
            .collect();
        let down: Vec<&&Pbd> = pbds
            .iter()
            .filter(|p| {
                s.hosts.contains_key(&p.host)
                    && !p.currently_attached
                    && s.state(&p.host) == Some(HostState::Down)
            })
            .collect();
        let unplugged: Vec<&&Pbd> = pbds
            .iter()
            .filter(|p| {
                s.hosts.contains_key(&p.host)
                    && !p.currently_attached
                    && s.state(&p.host) != Some(HostState::Down)
            })
            .collect();
        let names =
            |ps: &[&&Pbd]| -> Vec<String> { ps.iter().map(|p| s.host_name(&p.host)).collect() };
        if !gone.is_empty() {
            let refs = why_not_forget(s, r);
            // Another PBD of the SR on a host in the database with the same device-config
            // keeps what the dangling one records: destroying it loses nothing.
            let copy_kept = |p: &Pbd| {
                pbds.iter()
                    .any(|o| s.hosts.contains_key(&o.host) && o.device_config == p.device_config)
            };
            let mut plan = Vec::new();
            for p in &gone {
                if copy_kept(p) {
                    plan.push(format!(
                        "xe pbd-destroy uuid={}   # another PBD of the SR keeps the same device-config",
                        p.uuid
                    ));
                }
            }
            let only_copies: Vec<&&&Pbd> = gone.iter().filter(|p| !copy_kept(p)).collect();
            if let Some(p) = only_copies.first() {
                let host = storage_host(s, sr);
                if !refs.is_empty() || host.is_some() || plan.is_empty() {
                    plan.push(format!(
                        "# keep its PBD: it holds the only copy of the SR's device-config ({})",
                        p.device_config
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ));
                    plan.extend(recreate_plan(s, sr, p, host.as_deref()));
                }
            }
            let used_by = if refs.is_empty() {
                String::new()
            } else {
                format!("; {}", refs.join("; "))
            };
            out.push(Finding {
                code: "pbd_host_not_in_database",
                severity: Severity::Warning,
                subject: sr_label(s, r),
                summary: format!(
                    "{} of its PBDs belong(s) to a host not in the database ({}){used_by}",
                    gone.len(),
                    gone.iter()
                        .map(|p| p.host.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                evidence: json!({"pbds": pbd_evidence(s, sr), "references": refs}),
                plan,
                safe_action: None,
            });
        }
        if !unplugged.is_empty() {
            out.push(Finding {
                code: "pbd_unplugged",
                severity: Severity::Warning,
                subject: sr_label(s, r),
                summary: format!(
                    "not plugged on {} (host up): the SR is not usable there; this says nothing about duplicates",
                    names(&unplugged).join(", ")
                ),
                evidence: json!({"pbds": pbd_evidence(s, sr)}),
                plan: unplugged
                    .iter()
                    .map(|p| format!("xe pbd-plug uuid={}   # on {}", p.uuid, s.host_name(&p.host)))
                    .collect(),
                safe_action: None,
            });
        }
        if !down.is_empty() {
            out.push(Finding {
                code: "host_down",
                severity: Severity::Info,
                subject: sr_label(s, r),
                summary: format!(
                    "not plugged on {}, which is down; this says nothing about duplicates",
                    names(&down).join(", ")
                ),
                evidence: json!({"pbds": pbd_evidence(s, sr)}),
                plan: down
                    .iter()
                    .map(|p| {
                        format!(
                            "# when {} is back: xe pbd-plug uuid={}",
                            s.host_name(&p.host),
                            p.uuid
                        )
                    })
                    .collect(),
                safe_action: None,
            });
        }
    }
    out
}

/// SR usage as Xen Orchestra colours it: above 90 % of the physical size used is red
/// (`sr_nearly_full`, a warning: coalesce and snapshots need room), from 80 % yellow
/// (`sr_usage_high`, information). Must not fire for an SR whose size xapi does not know (0),
/// or an ISO library.
pub fn usage(s: &Snapshot) -> Vec<Finding> {
    s.srs
        .iter()
        .filter(|(_, sr)| sr.physical_size > 0 && sr.content_type != "iso")
        .filter_map(|(r, sr)| {
            let used = sr.physical_utilisation as f64 / sr.physical_size as f64;
            let (code, severity) = if used > 0.9 {
                ("sr_nearly_full", Severity::Warning)
            } else if used >= 0.8 {
                ("sr_usage_high", Severity::Info)
            } else {
                return None;
            };
            Some(Finding {
                code,
                severity,
                subject: sr_label(s, r),
                summary: format!(
                    "{:.0}% of its physical size is used ({} of {} bytes free)",
                    used * 100.0,
                    sr.physical_size - sr.physical_utilisation,
                    sr.physical_size
                ),
                evidence: json!({"physical_size": sr.physical_size, "physical_utilisation": sr.physical_utilisation}),
                plan: vec![format!(
                    "xe vdi-list sr-uuid={} params=uuid,name-label,physical-utilisation   # what uses it",
                    sr.uuid
                )],
                safe_action: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::doctor::checks::fixtures::*;
    use crate::doctor::identity::judge;

    /// Every check, less the pool's own (the fixture pool has no default SR).
    fn all(s: &Snapshot) -> Vec<Finding> {
        crate::doctor::checks::all(s)
            .into_iter()
            .filter(|f| f.code != "no_default_sr")
            .collect()
    }

    fn of<'a>(fs: &'a [Finding], check: &str) -> Vec<&'a Finding> {
        fs.iter().filter(|f| f.code == check).collect()
    }

    fn uuid(s: &Snapshot, r: &str) -> String {
        s.srs[r].uuid.clone()
    }

    fn about<'a>(fs: &'a [Finding], s: &Snapshot, sr: &str) -> Vec<&'a str> {
        let u = uuid(s, sr);
        fs.iter()
            .filter(|f| f.subject.contains(&u))
            .map(|f| f.code)
            .collect()
    }

    fn plans(fs: &[Finding]) -> String {
        fs.iter()
            .flat_map(|f| f.plan.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The seed: "Local storage" plugged on xcp-a, whose disk holds its VG; an old record of
    /// the same device whose only host is gone.
    #[test]
    fn the_old_local_storage_record_is_a_duplicate_by_what_the_disk_holds() {
        let mut s = pool();
        let a = this_host(&s);
        let (local, _) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&a, "device=/dev/sda3", true)],
        );
        let (old, _) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[("OpaqueRef:gone", "device=/dev/sda3", false)],
        );
        let vg = format!("VG_XenStorage-{}", uuid(&s, &local));
        surveyed(&mut s, &a, &[("/dev/sda3", &vg, None)]);
        let ids = judge(&s);
        assert!(
            matches!(ids[&local], Identity::Proven { .. }),
            "{:?}",
            ids[&local]
        );
        assert!(
            matches!(&ids[&old], Identity::DuplicateOf { of, .. } if *of == local),
            "{:?}",
            ids[&old]
        );
        let f = all(&s);
        assert_eq!(
            about(&f, &s, &old),
            vec!["duplicate_sr"],
            "one finding per record"
        );
        // Its PBD belongs to a host that is gone: restore could not make it again.
        assert!(of(&f, "duplicate_sr")[0].safe_action.is_none());
        assert!(plans(&f).contains(&format!("xe sr-forget uuid={}", uuid(&s, &old))));
        assert!(about(&f, &s, &local).is_empty());
        // Nobody read xcp-a's disk: nothing is proven.
        not_surveyed(&mut s, &a, "did not answer");
        let f = all(&s);
        assert!(of(&f, "duplicate_sr").is_empty());
        assert!(!plans(&f).contains("sr-forget"));
    }

    #[test]
    fn two_nfs_srs_on_one_export_are_two_srs() {
        let mut s = pool();
        let a = this_host(&s);
        for name in ["nfs one", "nfs two"] {
            let (sr, pbds) = add_sr(&mut s, name, "nfs", &[(&a, "server=192.0.2.9", true)]);
            s.pbds
                .get_mut(&pbds[0])
                .unwrap()
                .device_config
                .insert("serverpath".into(), "/export".into());
            s.srs.get_mut(&sr).unwrap().shared = true;
        }
        surveyed(&mut s, &a, &[]);
        let f = all(&s);
        assert!(f.is_empty(), "{f:?}");
        // The one exception: an NFS SR that uses the export itself (nosubdir).
        for sr in s.srs.values_mut() {
            sr.sm_config.insert("nosubdir".into(), "true".into());
        }
        let f = all(&s);
        assert_eq!(of(&f, "sr_identity_unproven").len(), 2);
        assert!(of(&f, "duplicate_sr").is_empty());
    }

    /// The pool's iSCSI SR, in use, with a member down and a PBD that failed to plug on another.
    #[test]
    fn an_in_use_sr_with_a_member_down_and_a_failed_plug_is_no_duplicate() {
        let mut s = pool();
        let a = this_host(&s);
        let b = add_host(&mut s, "xcp-b", false);
        let c = add_host(&mut s, "xcp-c", true);
        let (iscsi, _) = add_sr(
            &mut s,
            "shared iSCSI",
            "lvmoiscsi",
            &[
                (&a, "SCSIid=360a98", true),
                (&b, "SCSIid=360a98", false),
                (&c, "SCSIid=360a98", false),
            ],
        );
        let vdi = add_vdi(&mut s, &iscsi, "disk");
        let vm = add_vm(&mut s, "web", "Running", Some((&a, 7)));
        add_vbd(&mut s, &vm, &vdi, true);
        s.pools.values_mut().next().unwrap().default_sr = iscsi.clone();
        let vg = format!("VG_XenStorage-{}", uuid(&s, &iscsi));
        surveyed(&mut s, &a, &[("/dev/sdc", &vg, Some("360a98"))]);
        surveyed(&mut s, &c, &[]); // the LUN is not logged in there
        let f = all(&s);
        assert_eq!(
            about(&f, &s, &iscsi),
            vec!["pbd_unplugged", "host_down"],
            "{f:#?}"
        );
        assert!(!plans(&f).contains("sr-forget"));
        let unplugged = of(&f, "pbd_unplugged")[0];
        assert_eq!(unplugged.evidence["pbds"].as_array().unwrap().len(), 3);
        assert!(unplugged.plan[0].starts_with("xe pbd-plug uuid="));
    }

    /// A second record of that LUN, unplugged on three hosts: one finding, every PBD in it,
    /// and a forget `--apply` may do (restore gives it back exactly).
    #[test]
    fn a_phantom_record_unplugged_on_three_hosts_is_one_finding() {
        let mut s = pool();
        let a = this_host(&s);
        let b = add_host(&mut s, "xcp-b", true);
        let c = add_host(&mut s, "xcp-c", true);
        let (iscsi, _) = add_sr(
            &mut s,
            "shared iSCSI",
            "lvmoiscsi",
            &[
                (&a, "SCSIid=360a98", true),
                (&b, "SCSIid=360a98", true),
                (&c, "SCSIid=360a98", true),
            ],
        );
        let (phantom, _) = add_sr(
            &mut s,
            "shared iSCSI",
            "lvmoiscsi",
            &[
                (&a, "SCSIid=360a98", false),
                (&b, "SCSIid=360a98", false),
                (&c, "SCSIid=360a98", false),
            ],
        );
        let vg = format!("VG_XenStorage-{}", uuid(&s, &iscsi));
        for h in [&a, &b, &c] {
            surveyed(&mut s, h, &[("/dev/sdc", &vg, Some("360a98"))]);
        }
        let f = all(&s);
        assert_eq!(about(&f, &s, &phantom), vec!["duplicate_sr"]);
        let d = of(&f, "duplicate_sr")[0];
        assert_eq!(d.evidence["pbds"].as_array().unwrap().len(), 3);
        assert_eq!(
            d.safe_action,
            Some(SafeAction::SrForget {
                sr: phantom.clone()
            })
        );
        assert!(about(&f, &s, &iscsi).is_empty());
        // With a VDI record in it, or a host that could not be read, it is not done by itself.
        let vdi = add_vdi(&mut s, &phantom, "old");
        assert!(of(&all(&s), "duplicate_sr")[0].safe_action.is_none());
        s.vdis.remove(&vdi);
        s.srs.get_mut(&phantom).unwrap().vdis.clear();
        not_surveyed(&mut s, &c, "did not answer within 5 s");
        let f = all(&s);
        assert!(of(&f, "duplicate_sr").is_empty());
        assert!(about(&f, &s, &phantom).contains(&"sr_identity_unproven"));
    }

    #[test]
    fn an_sr_on_a_host_not_in_the_database_holding_a_halted_vms_disk_is_kept() {
        let mut s = pool();
        let a = this_host(&s);
        let (sr, pbds) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[("OpaqueRef:gone", "device=/dev/sdb", false)],
        );
        let vdi = add_vdi(&mut s, &sr, "data");
        let vm = add_vm(&mut s, "archive", "Halted", None);
        add_vbd(&mut s, &vm, &vdi, false);
        surveyed(&mut s, &a, &[]);
        let f = all(&s);
        assert_eq!(
            about(&f, &s, &sr),
            vec!["pbd_host_not_in_database"],
            "{f:#?}"
        );
        let p = plans(&f);
        assert!(
            !p.contains("pbd-destroy") && !p.contains("sr-forget"),
            "{p}"
        );
        assert!(p.contains("device-config:device=/dev/sdb"), "{p}");
        assert!(p.contains("xe pbd-plug"), "{p}");
        let g = of(&f, "pbd_host_not_in_database")[0];
        assert!(
            g.summary.contains("\"archive\"") && g.summary.contains("Halted"),
            "{}",
            g.summary
        );
        // Where a live host sees its storage, the plan names that host.
        let vg = format!("VG_XenStorage-{}", uuid(&s, &sr));
        surveyed(&mut s, &a, &[("/dev/sdb", &vg, None)]);
        let host_uuid = s.hosts[&a].uuid.clone();
        assert!(plans(&all(&s)).contains(&format!("xe pbd-create host-uuid={host_uuid}")));
        let _ = pbds;
    }

    #[test]
    fn udev_duplicates_and_iso_libraries() {
        let mut s = pool();
        let a = this_host(&s);
        let (dvd, _) = add_sr(
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
        surveyed(&mut s, &a, &[]);
        let f = all(&s);
        assert_eq!(about(&f, &s, &dup), vec!["duplicate_sr"]);
        assert!(about(&f, &s, &dvd).is_empty());
        assert!(of(&f, "duplicate_sr")[0].safe_action.is_some());
        // Neither plugged: which one serves it is not known.
        s.pbds
            .values_mut()
            .for_each(|p| p.currently_attached = false);
        let f = all(&s);
        assert!(of(&f, "duplicate_sr").is_empty());
        assert_eq!(of(&f, "sr_identity_unproven").len(), 2);
        // Two ISO records of one library: reported, never proven.
        let mut s = pool();
        let a = this_host(&s);
        for name in ["ISOs", "ISOs (old)"] {
            let (sr, _) = add_sr(
                &mut s,
                name,
                "iso",
                &[(&a, "location=192.0.2.9:/isos", true)],
            );
            s.srs.get_mut(&sr).unwrap().shared = true;
        }
        let f = all(&s);
        assert_eq!(of(&f, "sr_identity_unproven").len(), 2);
        assert!(f
            .iter()
            .all(|x| x.severity == Severity::Info && x.safe_action.is_none()));
    }

    #[test]
    fn a_duplicate_holding_a_halted_vms_disk_is_never_planned_for_forgetting() {
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
        let f = all(&s);
        let d = of(&f, "duplicate_sr");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].safe_action, None);
        assert!(!plans(&f).contains("sr-forget"));
        assert!(d[0].plan[0].contains("Halted"), "{:?}", d[0].plan);
    }

    #[test]
    fn an_sr_without_pbds_is_never_forgotten_by_itself() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "Local storage", "lvm", &[]);
        let f = without_pbds(&s);
        assert!(f[0].safe_action.is_none());
        assert!(plans(&f).contains("sr-forget"));
        let vdi = add_vdi(&mut s, &sr, "disk");
        let vm = add_vm(&mut s, "stopped", "Halted", None);
        add_vbd(&mut s, &vm, &vdi, false);
        assert!(!plans(&without_pbds(&s)).contains("sr-forget"));
    }

    #[test]
    fn sr_usage_from_80_and_above_90_percent() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "full", "lvm", &[]);
        let set = |s: &mut Snapshot, used: i64| {
            s.srs.get_mut(&sr).unwrap().physical_size = 1000;
            s.srs.get_mut(&sr).unwrap().physical_utilisation = used;
            usage(s).iter().map(|f| f.code).collect::<Vec<_>>()
        };
        assert!(set(&mut s, 799).is_empty());
        assert_eq!(set(&mut s, 800), vec!["sr_usage_high"]);
        assert_eq!(set(&mut s, 900), vec!["sr_usage_high"]);
        assert_eq!(set(&mut s, 901), vec!["sr_nearly_full"]);
        s.srs.get_mut(&sr).unwrap().content_type = "iso".into();
        assert!(usage(&s).is_empty());
    }
}
