//! The naming layer: dmheal only ever considers the LV of a VDI in an SR volume group — never a
//! foreign VG, an LVM sub-device, or an SR LV SM does not name as a VDI's.

use super::{codes, reason, Reason, Signal};
use crate::facts::Facts;
use crate::lvm::Stores;

/// The naming layer's reason (always one).
pub(super) fn reasons(f: &Facts) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    // Naming: dmheal only ever considers plain LVs of SR volume groups.
    match &f.lvm_name {
        None => rs.push(reason(
            &codes::NAMING_NOT_LVM,
            Suspicious,
            "not an LVM name",
            "the name is not vg-lv shaped: not an LVM volume, dmheal never touches it",
        )),
        Some(n) if n.layer.is_some() => rs.push(reason(
            &codes::NAMING_LVM_LAYER,
            Suspicious,
            format!("LVM sub-device -{}", n.layer.as_deref().unwrap_or_default()),
            "an LVM internal layer (snapshot, pool); never a VDI's ghost",
        )),
        Some(n) if f.sr.is_none() => rs.push(reason(
            &codes::NAMING_FOREIGN_VG,
            Suspicious,
            format!("VG {}", n.vg),
            format!(
                "VG {} is not an SR's (VG_XenStorage-<sr>, XSLocalEXT-<sr>): never touched",
                n.vg
            ),
        )),
        Some(n) if !matches!(f.stores, Some(Stores::Vdi(_)) | Some(Stores::SrFilesystem)) => {
            rs.push(reason(
                &codes::NAMING_UNKNOWN_VOLUME,
                Suspicious,
                format!("LV {}", n.lv),
                format!(
                    "LV {} of SR volume group {} is not a volume SM activates — a VDI's ({}<vdi uuid>, lower case, in VG_XenStorage-<sr>) or a local SR's own (<sr> in XSLocalEXT-<sr> or XSLocalLargeBlock-<sr>): its SM, xapi and tapdisk layers cannot be asked, so it is never healed",
                    n.lv,
                    n.vg,
                    crate::lvm::names::VDI_LV_PREFIXES.join("<vdi uuid>, ")
                ),
            ))
        }
        Some(n) => rs.push(reason(
            &codes::NAMING_SR_VOLUME,
            Clear,
            format!(
                "SR {}",
                f.sr.as_ref().map(|s| s.as_str()).unwrap_or_default()
            ),
            match &f.vdi {
                Some(v) => format!("LV {} of SR volume group {} stores VDI {v}", n.lv, n.vg),
                None => format!(
                    "LV {} of VG {} holds the local SR's file system, which SM mounts at PBD.plug (no VDI, SM refcount or tapdisk of its own; a file its tapdisks serve keeps it open)",
                    n.lv, n.vg
                ),
            },
        )),
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Layer, Signal, Verdict};
    use crate::ids::DmName;
    use crate::lvm::split_dm_name;

    #[test]
    fn an_sr_volumes_vdi_lv_is_clear() {
        let d = from_facts(&ghost());
        assert_eq!(code_of(&d, Layer::Naming), "naming_sr_volume");
    }

    #[test]
    fn anything_but_a_vdi_lv_of_an_sr_is_left_alone() {
        let rename = |n: &'static str, sr: bool, vdi: bool| -> Change {
            Box::new(move |f| {
                let name = DmName::new(n).unwrap();
                f.lvm_name = split_dm_name(&name);
                f.dm_name = name;
                if !sr {
                    f.sr = None;
                }
                if !vdi {
                    f.vdi = None;
                    f.stores = Some(crate::lvm::Stores::Other);
                }
            })
        };
        each_change_gives(
            Verdict::Suspicious,
            Signal::Suspicious,
            vec![
                ("naming_foreign_vg", rename("vg_data-lv_home", false, false)),
                ("naming_not_lvm", rename("cryptswap", false, false)),
                (
                    "naming_lvm_layer",
                    rename(
                        "VG_XenStorage--9a3c6ed4--8f0e--4f57--a6c2--1b2d3e4f5a6b-thin-tpool",
                        true,
                        false,
                    ),
                ),
                (
                    "naming_unknown_volume",
                    rename(
                        "VG_XenStorage--9a3c6ed4--8f0e--4f57--a6c2--1b2d3e4f5a6b-MGT",
                        true,
                        false,
                    ),
                ),
            ],
        );
    }
}
