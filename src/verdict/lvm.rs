//! The LVM layer: whether the mapping is LVM's own, another LV's, or in the way of an inactive
//! LV's activation.

use super::{codes, reason, Reason, Signal};
use crate::dm::DmDevice;
use crate::facts::Facts;
use crate::lvm::{LvmView, TablePvs};

/// Whether the mapping carries exactly the uuid LVM gives its LV: LVM's own, live mapping,
/// healthy whatever else (decided once; the device-mapper layer and the summary use it too).
pub(super) fn owned(f: &Facts, dev: &DmDevice) -> bool {
    matches!(&f.lvm, Some(LvmView::Lv(lv)) if lv.expected_dm_uuid() == dev.uuid)
}

/// The LVM layer's reason, when LVM was asked.
pub(super) fn reasons(f: &Facts, dev: &DmDevice, lvm_owned: bool) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    let other_lv = |owner: &str| {
        reason(
            &codes::LVM_OTHER_LV,
            Suspicious,
            "uuid of another LV",
            format!("the mapping carries the identity of {owner}, not of this LV: never removed"),
        )
    };
    match &f.lvm {
        None => {}
        Some(LvmView::LvMissing) if f.uuid_owner.is_some() => {
            rs.push(other_lv(f.uuid_owner.as_deref().unwrap_or_default()))
        }
        Some(LvmView::Lv(lv)) => {
            let expected = lv.expected_dm_uuid();
            if lvm_owned {
                rs.push(reason(
                    &codes::LVM_OWNS,
                    Healthy,
                    lv.state(),
                    "the mapping carries the uuid LVM gives this LV: it is LVM's own, live mapping",
                ));
            } else if dev.uuid.starts_with(&expected) {
                rs.push(reason(
                    &codes::LVM_SUB_UUID,
                    Suspicious,
                    format!("uuid {}", dev.uuid),
                    "the uuid is LVM's for this LV plus a suffix: an LVM internal layer",
                ));
            } else if let Some(owner) = &f.uuid_owner {
                rs.push(other_lv(owner));
            } else if lv.active {
                rs.push(reason(
                    &codes::LVM_ACTIVE_ELSEWHERE,
                    Suspicious,
                    lv.state(),
                    "LVM reports the LV active, yet not through this mapping",
                ));
            } else {
                rs.push(reason(&codes::LVM_INACTIVE, Clear, lv.state(),
                    format!("LVM says the LV is inactive; it would create this name with uuid {expected}, which the kernel refuses while this mapping exists")));
            }
        }
        Some(LvmView::LvMissing) => rs.push(reason(
            &codes::LVM_NO_LV,
            Clear,
            "no such LV",
            "the VG has no LV of this name any more: the mapping outlived its volume",
        )),
        Some(LvmView::VgMissing) => rs.push(reason(
            &codes::LVM_NO_VG,
            Suspicious,
            "VG not found",
            "LVM does not see this VG on this host: nothing can be proven from LVM",
        )),
        Some(LvmView::Unreadable { why }) => rs.push(reason(
            &codes::LVM_UNREADABLE,
            Suspicious,
            "unreadable",
            format!("LVM could not be read: {why}"),
        )),
    }
    // Whose identity the mapping carries. A ghost has none, the one dmheal stamped on it, or
    // an LVM uuid of this VG (its LV's, or a removed LV's: the LV was re-created or renamed
    // over since); another LV's is refused above. Any other uuid is another subsystem's
    // (dm-crypt, multipath, kpartx): not an LV's ghost, and not dmheal's to take away.
    if f.lvm.is_some()
        && !dev.uuid.is_empty()
        && !dev.uuid.starts_with("LVM-")
        && !crate::dm::is_dmheal_stamp(&dev.uuid)
    {
        rs.push(reason(
            &codes::LVM_FOREIGN_UUID,
            Suspicious,
            format!("uuid {}", dev.uuid),
            format!(
                "the mapping carries uuid {}, which neither LVM nor dmheal gives: another \
                 subsystem's device, never removed",
                dev.uuid
            ),
        ));
    }
    // What the mapping maps: only a mapping onto the VG's own PVs can be its LV's ghost.
    match &f.table_pvs {
        TablePvs::NotChecked => {}
        TablePvs::OnVg => rs.push(reason(
            &codes::LVM_TABLE_ON_VG,
            Clear,
            "maps the VG's PVs",
            "its table maps only PVs of this volume group",
        )),
        TablePvs::Elsewhere { why } => rs.push(reason(
            &codes::LVM_TABLE_ELSEWHERE,
            Suspicious,
            "maps outside the VG",
            format!("{why}: not this LV's mapping, whatever its name; never removed"),
        )),
        TablePvs::Unverified { why } => rs.push(reason(
            &codes::LVM_TABLE_UNVERIFIED,
            Suspicious,
            "PVs unknown",
            format!("{why}; a mapping not proven to map this VG is never removed"),
        )),
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Layer, Signal, Verdict};
    use crate::facts::Facts;
    use crate::lvm::{LvmView, TablePvs};

    #[test]
    fn an_inactive_or_deleted_lv_allows_a_ghost() {
        assert_eq!(code_of(&from_facts(&ghost()), Layer::Lvm), "lvm_inactive");
        let mut f = ghost();
        f.lvm = Some(LvmView::LvMissing);
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Ghost, "{d:#?}");
        assert_eq!(code_of(&d, Layer::Lvm), "lvm_no_lv");
    }

    #[test]
    fn what_lvm_cannot_explain_needs_a_human() {
        each_change_gives(
            Verdict::Suspicious,
            Signal::Suspicious,
            vec![
                (
                    "lvm_no_vg",
                    Box::new(|f: &mut Facts| f.lvm = Some(LvmView::VgMissing)),
                ),
                (
                    "lvm_unreadable",
                    Box::new(|f: &mut Facts| f.lvm = Some(LvmView::Unreadable { why: "x".into() })),
                ),
                (
                    "lvm_active_elsewhere",
                    Box::new(|f: &mut Facts| f.lvm = Some(LvmView::Lv(lv_record("-wi-a-----")))),
                ),
                (
                    "lvm_sub_uuid",
                    Box::new(|f: &mut Facts| {
                        device(f).uuid = "LVM-K2BweQUkrIX4HzXTjZRq-real".into()
                    }),
                ),
                (
                    "lvm_other_lv",
                    Box::new(|f: &mut Facts| {
                        device(f).uuid = "LVM-other".into();
                        f.uuid_owner = Some("LV vg/other".into());
                    }),
                ),
                (
                    "lvm_other_lv",
                    Box::new(|f: &mut Facts| {
                        // Deleted LV, and the mapping is another VG's live LV renamed here.
                        f.lvm = Some(LvmView::LvMissing);
                        device(f).uuid = "LVM-elsewhere".into();
                        f.uuid_owner = Some("an LV of another volume group".into());
                    }),
                ),
                (
                    "lvm_other_lv",
                    Box::new(|f: &mut Facts| {
                        // A sibling's snapshot-origin layer: the sibling's identity.
                        device(f).uuid = "LVM-K2BweQUkrIsibling-real".into();
                        f.uuid_owner = Some("the -real layer of LV vg/sibling".into());
                    }),
                ),
                (
                    "lvm_foreign_uuid",
                    Box::new(|f: &mut Facts| device(f).uuid = "CRYPT-LUKS2-0a1b-x".into()),
                ),
                (
                    "lvm_foreign_uuid",
                    Box::new(|f: &mut Facts| {
                        f.lvm = Some(LvmView::LvMissing);
                        device(f).uuid = "mpath-3600a0b80".into();
                    }),
                ),
                (
                    "lvm_foreign_uuid",
                    Box::new(|f: &mut Facts| device(f).uuid = "part1-mpath-3600a0b80".into()),
                ),
                (
                    "lvm_table_elsewhere",
                    Box::new(|f: &mut Facts| {
                        f.table_pvs = TablePvs::Elsewhere {
                            why: "it maps 98:16, which is not a PV".into(),
                        }
                    }),
                ),
                (
                    "lvm_table_unverified",
                    Box::new(|f: &mut Facts| {
                        f.table_pvs = TablePvs::Unverified {
                            why: "pvs failed".into(),
                        }
                    }),
                ),
            ],
        );
    }

    #[test]
    fn a_removed_lvs_uuid_of_this_vg_or_dmheals_stamp_is_still_a_ghost() {
        // The LV was re-created or renamed over since the ghost was made: its uuid is the VG's
        // but no LV's today (the gatherer found no owner), as after a leaf-coalesce rename.
        for uuid in ["LVM-K2BweQUkrIremovedLV", "DMHEAL-7-1a2b"] {
            let mut f = ghost();
            device(&mut f).uuid = uuid.into();
            let d = from_facts(&f);
            assert_eq!(d.verdict, Verdict::Ghost, "{uuid}: {d:#?}");
            assert_eq!(code_of(&d, Layer::Lvm), "lvm_inactive");
        }
    }

    #[test]
    fn lvms_own_uuid_makes_it_healthy() {
        let mut f = ghost();
        f.lvm = Some(LvmView::Lv(lv_record("-wi-a-----")));
        device(&mut f).uuid = "LVM-K2BweQUkrIX4HzXTjZRq".into();
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Healthy, "{d:#?}");
        assert_eq!(code_of(&d, Layer::Lvm), "lvm_owns");
    }
}
