//! Whose storage is it? Each SR record judged by what is on the storage, read by the hosts
//! that see it (their surveys), never by xapi's labels — which are what is inconsistent after
//! a botched upgrade:
//! * LVM-based SRs (lvm, lvmoiscsi, lvmohba, lvmofcoe), EXT/XFS and LargeBlock local SRs keep
//!   their data in a volume group named for the SR (`VG_XenStorage-<sr>`, `XSLocalEXT-<sr>`,
//!   `XSLocalLargeBlock-<sr>`). A record whose VG a host sees is the real one. A record whose
//!   device-config names a device (`device`, `SCSIid`) that holds another record's VG is that
//!   record's duplicate — proven only when every host the record has a PBD on was read, so its
//!   own VG cannot be hiding on one that was not.
//! * NFS and SMB SRs live in a directory named by the SR's uuid on the export
//!   (`<serverpath>/<sr>`): two records on one export are two SRs, never duplicates (an NFS SR
//!   whose sm-config says `nosubdir=true` uses the export itself, and is judged as below).
//! * udev SRs (DVD drives, removable storage) are a host's device directory: two records for
//!   one (host, location) claim one thing; the one plugged there serves it, the other is the
//!   duplicate — unproven when neither or both are plugged.
//! * ISO SRs (a library) and file SRs use their `location` itself; it carries no SR uuid, so
//!   two records of one location are reported, never proven duplicates.
//!
//! Whatever cannot be proven is `Unproven`, with what to check. A PBD that failed to plug, or
//! whose host is down, says nothing here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::snapshot::Snapshot;
use crate::storage::{PhysicalVolume, VgKind};
use crate::xapi::records::{Pbd, Ref, Sr};

/// What the storage says about one SR record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Identity {
    /// The storage names this record: its data is there (where, in words).
    Proven { evidence: Vec<String> },
    /// The storage this record claims is another record's (`of`, its ref); evidence in words.
    DuplicateOf { of: Ref, evidence: Vec<String> },
    /// Records claim the same storage and what is on it could not say whose.
    Unproven {
        /// The other records that claim it.
        with: Vec<Ref>,
        why: String,
        /// What to run to tell.
        check: Vec<String>,
    },
    /// Nothing else claims its storage (or its identity includes its own uuid): no question.
    Unique,
}

/// Every SR record's identity.
pub fn judge(s: &Snapshot) -> BTreeMap<Ref, Identity> {
    let mut out: BTreeMap<Ref, Identity> = BTreeMap::new();
    for (r, sr) in &s.srs {
        let id = match VgKind::of_sr_type(&sr.kind) {
            Some(kind) => volume_group(s, r, sr, kind),
            None => Identity::Unique,
        };
        out.insert(r.clone(), id);
    }
    for (r, id) in claimed_together(s, "udev", &udev_key) {
        out.insert(r, id);
    }
    for kind in ["iso", "file", "nfs"] {
        for (r, id) in claimed_together(s, kind, &location_key) {
            out.insert(r, id);
        }
    }
    out
}

fn pbds_of<'a>(s: &'a Snapshot, sr: &'a Sr) -> impl Iterator<Item = &'a Pbd> + 'a {
    sr.pbds.iter().filter_map(|p| s.pbds.get(p))
}

/// The device names a PBD's device-config gives (`device` may list several, comma-separated)
/// and its SCSI id.
fn claimed_devices(p: &Pbd) -> (Vec<String>, Option<String>) {
    let devices = p
        .device_config
        .get("device")
        .map(|d| {
            d.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let scsi = p
        .device_config
        .get("SCSIid")
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty());
    (devices, scsi)
}

/// The PVs on `host` that a PBD's device-config names. None: the host's LVM could not be read.
fn named_pvs<'a>(s: &'a Snapshot, host: &str, p: &Pbd) -> Option<Vec<&'a PhysicalVolume>> {
    let pvs = s.surveys.get(host)?.survey()?.storage.pvs()?;
    let (devices, scsi) = claimed_devices(p);
    Some(
        pvs.iter()
            .filter(|pv| {
                devices.iter().any(|d| pv.names.contains(d))
                    || scsi.as_ref().is_some_and(|id| pv.scsi_ids.contains(id))
            })
            .collect(),
    )
}

/// Where a host sees the VG `vg`: "VG on DEVICE on HOST".
fn seen(s: &Snapshot, vg: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (host, survey) in &s.surveys {
        let Some(pvs) = survey.survey().and_then(|x| x.storage.pvs()) else {
            continue;
        };
        for pv in pvs.iter().filter(|pv| pv.vg_name == vg) {
            out.push(format!("{vg} on {} on {}", pv.device, s.host_name(host)));
        }
    }
    out
}

/// Whether every host in the database that `sr` has a PBD on was read (so its own VG would
/// have been seen there): the hosts that were not, if any.
fn unread_hosts(s: &Snapshot, sr: &Sr) -> Vec<String> {
    pbds_of(s, sr)
        .filter(|p| s.hosts.contains_key(&p.host))
        .filter(|p| {
            s.surveys
                .get(&p.host)
                .and_then(|x| x.survey())
                .and_then(|x| x.storage.pvs())
                .is_none()
        })
        .map(|p| {
            let why =
                s.surveys
                    .get(&p.host)
                    .and_then(|x| x.why_not().map(str::to_string))
                    .or_else(|| {
                        s.surveys.get(&p.host).and_then(|x| x.survey()).map(|x| {
                            match &x.storage.lvm {
                                crate::storage::PvsView::Unreadable { why } => {
                                    format!("LVM could not be read: {why}")
                                }
                                _ => String::new(),
                            }
                        })
                    })
                    .unwrap_or_else(|| "not asked".into());
            format!("{} ({why})", s.host_name(&p.host))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn sr_ref_by_uuid<'a>(s: &'a Snapshot, uuid: &str) -> Option<&'a Ref> {
    s.srs
        .iter()
        .find(|(_, x)| x.uuid.eq_ignore_ascii_case(uuid))
        .map(|(r, _)| r)
}

/// An LVM-based, EXT/XFS or LargeBlock SR: its volume group decides.
fn volume_group(s: &Snapshot, r: &Ref, sr: &Sr, kind: VgKind) -> Identity {
    let own_vg = kind.vg_of(&sr.uuid);
    let own = seen(s, &own_vg);
    if !own.is_empty() {
        return Identity::Proven { evidence: own };
    }
    // What the devices it names hold, on the hosts of its PBDs.
    let mut held_by_others: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut foreign: Vec<String> = Vec::new();
    for p in pbds_of(s, sr).filter(|p| s.hosts.contains_key(&p.host)) {
        for pv in named_pvs(s, &p.host, p).unwrap_or_default() {
            let at = format!("{} on {}", pv.device, s.host_name(&p.host));
            match pv.sr() {
                Some((_, other)) => held_by_others
                    .entry(other)
                    .or_default()
                    .push(format!("{at} holds {}", pv.vg_name)),
                None if pv.vg_name.is_empty() => foreign.push(format!("{at} is a PV in no VG")),
                None => foreign.push(format!("{at} holds the VG {}", pv.vg_name)),
            }
        }
    }
    let unread = unread_hosts(s, sr);
    if let Some((other_uuid, evidence)) = held_by_others.iter().next() {
        let mut evidence = evidence.clone();
        evidence.push(format!("{own_vg} is on no host that was read"));
        return match sr_ref_by_uuid(s, other_uuid) {
            Some(other) if unread.is_empty() => Identity::DuplicateOf {
                of: other.clone(),
                evidence,
            },
            Some(other) => Identity::Unproven {
                with: vec![other.clone()],
                why: format!(
                    "{}; but {} could not be read, and its own VG may be there",
                    evidence.join("; "),
                    unread.join(", ")
                ),
                check: check_vg(&own_vg),
            },
            None => Identity::Unproven {
                with: Vec::new(),
                why: format!(
                    "{}: an SR xapi has no record of (was this SR re-created or re-introduced under another uuid?)",
                    evidence.join("; ")
                ),
                check: check_vg(&own_vg),
            },
        };
    }
    // A record whose every PBD belongs to a host no longer in the database: its device names
    // nothing any live host can read. When another record of the same kind names the same
    // device and its VG is on that device of a live host, and no host that was read has this
    // record's VG, the old record is a leftover of that storage (a host reinstalled or
    // re-joined under a new identity).
    let pbds: Vec<&Pbd> = pbds_of(s, sr).collect();
    if !pbds.is_empty() && pbds.iter().all(|p| !s.hosts.contains_key(&p.host)) {
        let every_live_host_read = s
            .states
            .iter()
            .filter(|(_, st)| **st != crate::xapi::fanout::HostState::Down)
            .all(|(h, _)| {
                s.surveys
                    .get(h)
                    .and_then(|x| x.survey())
                    .and_then(|x| x.storage.pvs())
                    .is_some()
            });
        for (other_ref, other) in &s.srs {
            if other_ref == r || VgKind::of_sr_type(&other.kind) != Some(kind) {
                continue;
            }
            let other_vg = kind.vg_of(&other.uuid);
            for op in pbds_of(s, other).filter(|op| s.hosts.contains_key(&op.host)) {
                let same_claim = pbds.iter().any(|p| {
                    let (d1, i1) = claimed_devices(p);
                    let (d2, i2) = claimed_devices(op);
                    (!d1.is_empty() && d1 == d2) || (i1.is_some() && i1 == i2)
                });
                if !same_claim {
                    continue;
                }
                let holds: Vec<String> = named_pvs(s, &op.host, op)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|pv| pv.vg_name == other_vg)
                    .map(|pv| {
                        format!(
                            "{} on {} holds {other_vg}",
                            pv.device,
                            s.host_name(&op.host)
                        )
                    })
                    .collect();
                if holds.is_empty() {
                    continue;
                }
                let mut evidence = vec![format!(
                    "every PBD of this record belongs to a host no longer in the database; the device it names ({}) is SR {}'s",
                    describe_claim(pbds[0]),
                    other.uuid
                )];
                evidence.extend(holds);
                if every_live_host_read {
                    evidence.push(format!("{own_vg} is on no live host"));
                    return Identity::DuplicateOf {
                        of: other_ref.clone(),
                        evidence,
                    };
                }
                return Identity::Unproven {
                    with: vec![other_ref.clone()],
                    why: format!(
                        "{}; but not every live host could be read, and its own VG may be on one of them",
                        evidence.join("; ")
                    ),
                    check: check_vg(&own_vg),
                };
            }
        }
    }
    // Others claiming the same device by the same words, unread: unproven.
    let mine: BTreeSet<(String, String)> = claim_keys(s, sr);
    let with: Vec<Ref> = s
        .srs
        .iter()
        .filter(|(o, other)| {
            *o != r
                && VgKind::of_sr_type(&other.kind) == Some(kind)
                && !claim_keys(s, other).is_disjoint(&mine)
        })
        .map(|(o, _)| o.clone())
        .collect();
    if !with.is_empty() {
        let mut why = vec![format!(
            "{} other record(s) name the same device and no host that could be read shows whose it is",
            with.len()
        )];
        why.extend(foreign);
        if !unread.is_empty() {
            why.push(format!("not read: {}", unread.join(", ")));
        }
        return Identity::Unproven {
            with,
            why: why.join("; "),
            check: check_vg(&own_vg),
        };
    }
    Identity::Unique
}

/// (host or "shared", device) pairs a record's PBDs claim.
fn claim_keys(s: &Snapshot, sr: &Sr) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in pbds_of(s, sr) {
        let (devices, scsi) = claimed_devices(p);
        if let Some(id) = scsi {
            out.insert(("shared".into(), format!("SCSIid={id}")));
        }
        for d in devices {
            out.insert((p.host.clone(), d));
        }
    }
    out
}

fn describe_claim(p: &Pbd) -> String {
    let (devices, scsi) = claimed_devices(p);
    let mut parts: Vec<String> = devices.iter().map(|d| format!("device={d}")).collect();
    if let Some(id) = scsi {
        parts.push(format!("SCSIid={id}"));
    }
    parts.join(" ")
}

fn check_vg(vg: &str) -> Vec<String> {
    vec![
        format!("pvs -o pv_name,vg_name | grep {vg}   # on each host that should see it"),
        "dmheal survey   # on each host: the SR volume groups it sees, and on which devices".into(),
    ]
}

fn udev_key(s: &Snapshot, _: &Sr, p: &Pbd) -> Option<String> {
    let loc = p.device_config.get("location")?;
    s.hosts
        .contains_key(&p.host)
        .then(|| format!("{}|{loc}", p.host))
}

/// Where a record without a uuid directory keeps its data: an ISO library's or a file SR's
/// `location` (per host unless shared); an NFS SR's `server:serverpath` only when its
/// sm-config says `nosubdir=true` (else its data is in `<serverpath>/<sr>`: its own).
fn location_key(_: &Snapshot, sr: &Sr, p: &Pbd) -> Option<String> {
    let loc = if sr.kind == "nfs" {
        if sr.sm_config.get("nosubdir").map(String::as_str) != Some("true") {
            return None;
        }
        format!(
            "{}:{}",
            p.device_config.get("server")?,
            p.device_config.get("serverpath")?
        )
    } else {
        p.device_config.get("location")?.clone()
    };
    Some(if sr.shared {
        loc
    } else {
        format!("{}|{loc}", p.host)
    })
}

/// Records of SR type `kind` that claim one key (`key`): for udev, the one plugged on a live
/// host serves it and the others are its duplicates; otherwise (ISO, or udev with none or
/// several plugged) nobody is proven.
fn claimed_together(
    s: &Snapshot,
    kind: &str,
    key: &dyn Fn(&Snapshot, &Sr, &Pbd) -> Option<String>,
) -> BTreeMap<Ref, Identity> {
    let mut groups: BTreeMap<String, BTreeSet<Ref>> = BTreeMap::new();
    for (r, sr) in s.srs.iter().filter(|(_, x)| x.kind == kind) {
        for p in pbds_of(s, sr) {
            if let Some(k) = key(s, sr, p) {
                groups.entry(k).or_default().insert(r.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    for (k, records) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
        let (host, location) = match k.split_once('|') {
            Some((h, l)) => (Some(h.to_string()), l.to_string()),
            None => (None, k.clone()),
        };
        let plugged: Vec<&Ref> = records
            .iter()
            .filter(|r| {
                pbds_of(s, &s.srs[*r]).any(|p| {
                    p.currently_attached
                        && host.as_deref().is_none_or(|h| p.host == h)
                        && s.is_live(&p.host)
                })
            })
            .collect();
        let where_ = host
            .as_deref()
            .map(|h| format!(" on {}", s.host_name(h)))
            .unwrap_or_default();
        if kind == "udev" && plugged.len() == 1 {
            let kept = plugged[0].clone();
            let present = host
                .as_deref()
                .and_then(|h| s.surveys.get(h))
                .and_then(|x| x.survey())
                .and_then(|x| x.storage.udev.iter().find(|u| u.location == location))
                .map(|u| {
                    if u.present {
                        format!("{location} is there, with {} device(s)", u.devices.len())
                    } else {
                        format!("{location} is not there")
                    }
                });
            let mut evidence = vec![format!(
                "{location}{where_} is served by SR {}, plugged there",
                s.srs[&kept].uuid
            )];
            evidence.extend(present);
            out.insert(
                kept.clone(),
                Identity::Proven {
                    evidence: evidence.clone(),
                },
            );
            for r in records.iter().filter(|r| **r != kept) {
                out.insert(
                    r.clone(),
                    Identity::DuplicateOf {
                        of: kept.clone(),
                        evidence: evidence.clone(),
                    },
                );
            }
            continue;
        }
        let why = if kind == "udev" {
            format!(
                "{} records claim {location}{where_}, and {} of them is plugged there: which one serves it is not known",
                records.len(),
                plugged.len()
            )
        } else {
            format!(
                "{} {kind} records use {location}{where_}, which carries no SR uuid: they show the same data, and which record to keep is the administrator's choice",
                records.len()
            )
        };
        for r in &records {
            let with = records.iter().filter(|o| *o != r).cloned().collect();
            out.insert(
                r.clone(),
                Identity::Unproven {
                    with,
                    why: why.clone(),
                    check: vec![format!(
                        "xe sr-list type={kind} params=uuid,name-label,PBDs"
                    )],
                },
            );
        }
    }
    out
}
