//! What keeps an SR record from being forgotten. SR.forget drops the SR's VDI records and with
//! them every link xapi holds to the data — VBDs (attached or not: a halted VM's disk is
//! still its disk), snapshots, suspend images — so a record is forgotten only when nothing
//! refers to any of its VDIs and the pool does not use the SR itself.

use super::vdi_label;
use crate::doctor::snapshot::Snapshot;
use crate::xapi::records::{Vdi, NULL_REF};

/// VDI types the pool itself uses (xapi, HA, DR, PVS, CBT): never "unreferenced".
const POOL_TYPES: [&str; 5] = [
    "metadata",
    "ha_statefile",
    "redo_log",
    "pvs_cache",
    "cbt_metadata",
];

fn set(r: &str) -> bool {
    !r.is_empty() && r != NULL_REF
}

/// What refers to `vdi` (its ref `vdi_ref`), in words; empty when nothing does.
pub fn vdi_references(s: &Snapshot, vdi_ref: &str, vdi: &Vdi) -> Vec<String> {
    let mut why = Vec::new();
    let vbds: Vec<&str> = s
        .vbds
        .iter()
        .filter(|(r, b)| b.vdi == vdi_ref || vdi.vbds.contains(r))
        .map(|(_, b)| b.vm.as_str())
        .collect();
    for vm in vbds {
        let name = s
            .vms
            .get(vm)
            .map(|v| format!("VM {} ({:?}, {})", v.uuid, v.name_label, v.power_state))
            .unwrap_or_else(|| format!("VM {vm}"));
        why.push(format!("{} is a disk of {name}", vdi_label(vdi)));
    }
    if set(&vdi.snapshot_of) {
        why.push(format!("{} is a snapshot", vdi_label(vdi)));
    }
    if !vdi.snapshots.is_empty() || s.vdis.values().any(|o| o.snapshot_of == vdi_ref) {
        why.push(format!("{} has snapshots", vdi_label(vdi)));
    }
    for vm in s.vms.values().filter(|v| v.suspend_vdi == vdi_ref) {
        why.push(format!(
            "{} is the suspend image of VM {} ({:?})",
            vdi_label(vdi),
            vm.uuid,
            vm.name_label
        ));
    }
    if POOL_TYPES.contains(&vdi.kind.as_str()) {
        why.push(format!("{} is the pool's {} VDI", vdi_label(vdi), vdi.kind));
    }
    why
}

/// Why forgetting SR `sr_ref` would lose something; empty when it would not.
pub fn why_not_forget(s: &Snapshot, sr_ref: &str) -> Vec<String> {
    let mut why = Vec::new();
    for pool in s.pools.values() {
        for (role, r) in [
            ("default SR", &pool.default_sr),
            ("suspend image SR", &pool.suspend_image_sr),
            ("crash dump SR", &pool.crash_dump_sr),
        ] {
            if r == sr_ref {
                why.push(format!("it is the pool's {role}"));
            }
        }
    }
    for h in s.hosts.values() {
        for (role, r) in [
            ("suspend image SR", &h.suspend_image_sr),
            ("crash dump SR", &h.crash_dump_sr),
        ] {
            if r == sr_ref {
                why.push(format!("it is host {}'s {role}", h.name_label));
            }
        }
    }
    let listed = s
        .srs
        .get(sr_ref)
        .map(|sr| sr.vdis.clone())
        .unwrap_or_default();
    for (r, vdi) in s
        .vdis
        .iter()
        .filter(|(r, v)| v.sr == sr_ref || listed.contains(r))
    {
        why.extend(vdi_references(s, r, vdi));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;

    #[test]
    fn a_halted_vms_disk_is_a_reference() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "old", "lvm", &[]);
        let vdi = add_vdi(&mut s, &sr, "disk");
        assert!(why_not_forget(&s, &sr).is_empty());
        let vm = add_vm(&mut s, "stopped", "Halted", None);
        add_vbd(&mut s, &vm, &vdi, false);
        let why = why_not_forget(&s, &sr);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("Halted"), "{why:?}");
    }

    #[test]
    fn snapshots_suspend_images_and_the_pools_srs_are_references() {
        let mut s = pool();
        let (sr, _) = add_sr(&mut s, "old", "lvm", &[]);
        let vdi = add_vdi(&mut s, &sr, "disk");
        let snap = add_vdi(&mut s, &sr, "snap");
        s.vdis.get_mut(&snap).unwrap().snapshot_of = vdi.clone();
        assert_eq!(why_not_forget(&s, &sr).len(), 2); // one is a snapshot, one has snapshots
        s.vdis.get_mut(&snap).unwrap().snapshot_of = NULL_REF.into();
        let vm = add_vm(&mut s, "sleeping", "Suspended", None);
        s.vms.get_mut(&vm).unwrap().suspend_vdi = vdi.clone();
        assert!(why_not_forget(&s, &sr)[0].contains("suspend image"));
        s.vms.get_mut(&vm).unwrap().suspend_vdi = NULL_REF.into();
        assert!(why_not_forget(&s, &sr).is_empty());
        s.pools.values_mut().next().unwrap().default_sr = sr.clone();
        assert!(why_not_forget(&s, &sr)[0].contains("default SR"));
    }
}
