//! The seed ghost every layer's tests start from, and helpers to change one fact of it.

use super::{from_facts, Decision, Layer, Signal, Verdict};
use crate::dm::{DevNum, DmDevice, DmStatus};
use crate::facts::{Facts, TapdiskFacts, UsersSearched};
use crate::lvm::report::LvRecord;
use crate::lvm::{dm_name_for, split_dm_name, LvmView};
use crate::sm::Refcount;
use crate::xapi::XapiView;

pub(super) const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
pub(super) const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

pub(super) fn lv_record(attr: &str) -> LvRecord {
    LvRecord {
        vg_name: format!("VG_XenStorage-{SR}"),
        lv_name: format!("VHD-{VDI}"),
        lv_uuid: "X4HzXT-jZRq".into(),
        vg_uuid: "K2BweQ-UkrI".into(),
        lv_attr: Some(attr.into()),
        active: attr.chars().nth(4) == Some('a'),
        read_from: crate::lvm::ReadFrom::Lvs,
    }
}

/// The seed ghost: SR volume, idle mapping with no uuid, LV inactive, nothing else.
pub(super) fn ghost() -> Facts {
    let vg = crate::ids::VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
    let lv = crate::ids::LvName::new(&format!("VHD-{VDI}")).unwrap();
    let name = dm_name_for(&vg, &lv).unwrap();
    Facts {
        lvm_name: split_dm_name(&name),
        sr: Some(crate::ids::Uuid::new(SR).unwrap()),
        vdi: Some(crate::ids::Uuid::new(VDI).unwrap()),
        stores: Some(crate::lvm::Stores::Vdi(crate::ids::Uuid::new(VDI).unwrap())),
        device: Some(DmDevice {
            name: name.to_string(),
            uuid: Default::default(),
            dev: DevNum {
                major: 254,
                minor: 0,
            },
            status: Some(crate::test_support::status(0)),
            table: Some(crate::test_support::linear_table(16384)),
        }),
        dm_name: name,
        users_searched: UsersSearched::All,
        holders: vec![],
        openers: vec![],
        mounts: vec![],
        holders_unreadable: None,
        proc_unreadable: None,
        lvm: Some(LvmView::Lv(lv_record("-wi-------"))),
        uuid_owner: None,
        table_pvs: crate::lvm::TablePvs::OnVg,
        tapdisk: TapdiskFacts::Listed {
            naming_this: vec![],
        },
        refcount: Refcount::Absent,
        xapi: XapiView::NotConfigured,
        activating: false,
    }
}

/// A named change to the ghost's facts.
pub(super) type Change = Box<dyn Fn(&mut Facts)>;

pub(super) fn device(f: &mut Facts) -> &mut DmDevice {
    f.device.as_mut().unwrap()
}

pub(super) fn status(f: &mut Facts) -> &mut DmStatus {
    device(f).status.as_mut().unwrap()
}

pub(super) fn code_of(d: &Decision, layer: Layer) -> &'static str {
    d.reasons.iter().find(|r| r.layer == layer).unwrap().code
}

/// Apply each change to the seed ghost and check the verdict it brings and that the reason
/// with `code` is there with `signal`.
pub(super) fn each_change_gives(verdict: Verdict, signal: Signal, cases: Vec<(&str, Change)>) {
    for (code, change) in cases {
        let mut f = ghost();
        change(&mut f);
        let d = from_facts(&f);
        assert_eq!(d.verdict, verdict, "{code}: {d:#?}");
        assert!(
            d.reasons
                .iter()
                .any(|r| r.code == code && r.signal == signal),
            "{code}: {d:#?}"
        );
    }
}
