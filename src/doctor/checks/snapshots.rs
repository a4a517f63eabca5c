//! VM snapshots, as Xen Orchestra's health view counts them: snapshots whose VM is gone,
//! VMs with more snapshots than is healthy, snapshots older than thirty days. Each snapshot is
//! a VHD chain link on the SR: many, or old ones, keep the garbage collector from coalescing
//! and hold space. Plans only: deleting a snapshot cannot be undone.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Finding, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::xapi::records::{epoch_seconds, Vm};

/// Xen Orchestra's "too many snapshots": more than this many.
pub const MAX_HEALTHY_SNAPSHOTS: usize = 5;
/// Xen Orchestra's "old snapshots": at least this old.
pub const OLD_SNAPSHOT_SECONDS: u64 = 30 * 24 * 3600;
/// The tag Xen Orchestra's continuous replication gives replica VMs (their snapshots are the
/// replication's, and counted by it).
pub const CR_TAG: &str = "Continuous Replication";
/// The key Xen Orchestra's backups put on the snapshots a backup schedule manages.
pub const XO_SCHEDULE_KEY: &str = "xo:backup:schedule";

fn label(vm: &Vm) -> String {
    format!("VM {} ({:?})", vm.uuid, vm.name_label)
}

fn is_vm(vm: &Vm) -> bool {
    !vm.is_a_snapshot && !vm.is_a_template && !vm.is_control_domain
}

/// Snapshots whose `snapshot_of` names no VM (NULL, or a VM since deleted). Must not fire for
/// a snapshot of an existing VM.
pub fn orphaned(s: &Snapshot) -> Vec<Finding> {
    s.vms
        .values()
        .filter(|v| v.is_a_snapshot && !s.vms.contains_key(&v.snapshot_of))
        .map(|v| Finding {
            code: "orphaned_vm_snapshot",
            severity: Severity::Info,
            subject: label(v),
            summary: format!(
                "a snapshot whose VM ({}) is gone: its disks hold space on the SR",
                v.snapshot_of
            ),
            evidence: json!({"snapshot_of": v.snapshot_of, "snapshot_time": v.snapshot_time}),
            plan: vec![
                format!(
                    "xe snapshot-param-list uuid={}   # confirm nothing needs it",
                    v.uuid
                ),
                format!(
                    "xe snapshot-uninstall uuid={}   # deletes it and its disks",
                    v.uuid
                ),
            ],
            safe_action: None,
        })
        .collect()
}

/// VMs with more than MAX_HEALTHY_SNAPSHOTS snapshots, not tagged for continuous replication.
/// Must not fire at five, or for a CR replica.
pub fn too_many(s: &Snapshot) -> Vec<Finding> {
    s.vms
        .values()
        .filter(|v| is_vm(v) && v.snapshots.len() > MAX_HEALTHY_SNAPSHOTS)
        .filter(|v| !v.tags.iter().any(|t| t == CR_TAG))
        .map(|v| Finding {
            code: "too_many_snapshots",
            severity: Severity::Warning,
            subject: label(v),
            summary: format!(
                "{} snapshots (more than {MAX_HEALTHY_SNAPSHOTS}): each is a link of its disks' VHD chains, which SM's garbage collector cannot coalesce while they stand",
                v.snapshots.len()
            ),
            evidence: json!({"snapshots": v.snapshots.len(),
                             "snapshot_uuids": v.snapshots.iter().filter_map(|r| s.vms.get(r)).map(|x| &x.uuid).collect::<Vec<_>>()}),
            plan: vec![format!(
                "xe snapshot-list snapshot-of={} params=uuid,name-label,snapshot-time   # then snapshot-uninstall the ones not needed",
                v.uuid
            )],
            safe_action: None,
        })
        .collect()
}

/// Snapshots at least OLD_SNAPSHOT_SECONDS old that no backup schedule manages (Xen
/// Orchestra's key, `xo:backup:schedule`; whether that schedule is enabled is XO's to say).
/// Must not fire for a younger snapshot, one without a time, or one a schedule manages.
pub fn old(s: &Snapshot) -> Vec<Finding> {
    old_at(
        s,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

fn old_at(s: &Snapshot, now: u64) -> Vec<Finding> {
    s.vms
        .values()
        .filter(|v| v.is_a_snapshot && !v.other_config.contains_key(XO_SCHEDULE_KEY))
        .filter_map(|v| {
            let t = epoch_seconds(&v.snapshot_time).filter(|t| *t > 0)?;
            let age = now.checked_sub(t)?;
            (age >= OLD_SNAPSHOT_SECONDS).then_some((v, age / 86400))
        })
        .map(|(v, days)| Finding {
            code: "old_snapshot",
            severity: Severity::Info,
            subject: label(v),
            summary: format!(
                "taken {days} days ago ({}), and no backup schedule manages it",
                v.snapshot_time
            ),
            evidence: json!({"snapshot_time": v.snapshot_time, "age_days": days,
                             "snapshot_of": s.vms.get(&v.snapshot_of).map(|x| x.uuid.clone())}),
            plan: vec![format!(
                "xe snapshot-uninstall uuid={}   # if it is no longer needed",
                v.uuid
            )],
            safe_action: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;

    fn snapshot_of(s: &mut Snapshot, vm: &str, name: &str, time: &str) -> String {
        let r = add_vm(s, name, "Halted", None);
        let v = s.vms.get_mut(&r).unwrap();
        v.is_a_snapshot = true;
        v.snapshot_of = vm.to_string();
        v.snapshot_time = time.into();
        if let Some(x) = s.vms.get_mut(vm) {
            x.snapshots.push(r.clone());
        }
        r
    }

    #[test]
    fn orphaned_too_many_and_old_snapshots() {
        let mut s = pool();
        let vm = add_vm(&mut s, "web", "Running", None);
        for i in 0..5 {
            snapshot_of(&mut s, &vm, &format!("s{i}"), "20261201T00:00:00Z");
        }
        assert!(too_many(&s).is_empty(), "five is healthy");
        let sixth = snapshot_of(&mut s, &vm, "s5", "20261001T00:00:00Z");
        assert_eq!(too_many(&s).len(), 1);
        s.vms.get_mut(&vm).unwrap().tags.push(CR_TAG.into());
        assert!(
            too_many(&s).is_empty(),
            "a CR replica's snapshots are the replication's"
        );
        assert!(orphaned(&s).is_empty());
        let gone = snapshot_of(&mut s, "OpaqueRef:deleted-vm", "lost", "20261201T00:00:00Z");
        let f = orphaned(&s);
        assert_eq!(f.len(), 1);
        assert!(f[0].subject.contains(&s.vms[&gone].uuid));
        // Old: the 1 October one, on 7 December; not once a schedule manages it.
        let now = epoch_seconds("20261207T00:00:00Z").unwrap();
        let f = old_at(&s, now);
        assert_eq!(f.len(), 1);
        assert!(f[0].subject.contains(&s.vms[&sixth].uuid) && f[0].summary.contains("67 days"));
        s.vms
            .get_mut(&sixth)
            .unwrap()
            .other_config
            .insert(XO_SCHEDULE_KEY.into(), "0f8a".into());
        assert!(old_at(&s, now).is_empty());
    }
}
