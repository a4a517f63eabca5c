//! The device-mapper layer: what DM_DEV_STATUS says of the mapping (open count, suspended,
//! tables, deferred remove) — or that a host scan did not ask it.

use super::{codes, reason, Reason, Signal};
use crate::dm::{DmDevice, DmStatus};

/// The device-mapper layer's reason (always one). `lvm_owned`: the mapping carries the uuid
/// LVM gives its LV.
pub(super) fn reasons(dev: &DmDevice, lvm_owned: bool) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    // Device-mapper.
    let uuid_text = if dev.uuid.is_empty() {
        "none".to_string()
    } else {
        dev.uuid.to_string()
    };
    match &dev.status {
        // A host scan lists LVM's own mappings without asking their status: nothing here can
        // prove a mapping unused, so anything but LVM's own uuid (checked below) is not clear.
        None => {
            let state = format!("{} uuid {}, status not read", dev.dev, uuid_text);
            rs.push(if lvm_owned {
                reason(
                    &codes::DM_LISTED,
                    Clear,
                    state,
                    "listed by the kernel with the uuid LVM gives this LV; a host scan does not ask its open count (`dmheal inspect` does)",
                )
            } else {
                reason(
                    &codes::DM_STATUS_UNKNOWN,
                    Suspicious,
                    state,
                    "the kernel's status of this mapping was not read: nothing is proven about its use",
                )
            });
        }
        Some(st) => rs.push(status_reason(dev, st, &uuid_text)),
    }
    rs
}

/// The device-mapper layer's reason, from DM_DEV_STATUS.
fn status_reason(dev: &DmDevice, st: &DmStatus, uuid_text: &str) -> Reason {
    use Signal::*;
    let dm_state = format!("{} open {}, uuid {}", dev.dev, st.open_count, uuid_text);
    if st.open_count > 0 {
        reason(
            &codes::DM_OPEN,
            InUse,
            dm_state,
            format!(
                "the kernel counts {} open(s) of this mapping",
                st.open_count
            ),
        )
    } else if st.suspended {
        reason(
            &codes::DM_SUSPENDED,
            Suspicious,
            format!("{dm_state}, suspended"),
            "the mapping is suspended: someone is in the middle of changing it",
        )
    } else if st.deferred_remove {
        reason(
            &codes::DM_DEFERRED_REMOVE,
            Suspicious,
            format!("{dm_state}, deferred remove"),
            "a deferred remove is already pending on this mapping",
        )
    } else if st.inactive_table {
        reason(
            &codes::DM_INACTIVE_TABLE,
            Suspicious,
            format!("{dm_state}, inactive table"),
            "an inactive table is loaded: a reload is in progress",
        )
    } else if !st.live_table {
        reason(
            &codes::DM_NO_TABLE,
            Suspicious,
            format!("{dm_state}, no table"),
            "the mapping has no live table",
        )
    } else {
        reason(
            &codes::DM_IDLE,
            Clear,
            dm_state,
            "registered in the kernel, open count 0, live table, not suspended",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Layer, Signal, Verdict};
    use crate::facts::{Facts, UsersSearched};
    use crate::lvm::LvmView;

    #[test]
    fn an_idle_mapping_is_clear() {
        assert_eq!(
            code_of(&from_facts(&ghost()), Layer::DeviceMapper),
            "dm_idle"
        );
    }

    #[test]
    fn an_open_mapping_is_in_use() {
        each_change_gives(
            Verdict::InUse,
            Signal::InUse,
            vec![(
                "dm_open",
                Box::new(|f: &mut Facts| status(f).open_count = 1),
            )],
        );
    }

    #[test]
    fn a_mapping_in_an_odd_state_needs_a_human() {
        each_change_gives(
            Verdict::Suspicious,
            Signal::Suspicious,
            vec![
                (
                    "dm_suspended",
                    Box::new(|f: &mut Facts| status(f).suspended = true),
                ),
                (
                    "dm_deferred_remove",
                    Box::new(|f: &mut Facts| status(f).deferred_remove = true),
                ),
                (
                    "dm_inactive_table",
                    Box::new(|f: &mut Facts| status(f).inactive_table = true),
                ),
                (
                    "dm_no_table",
                    Box::new(|f: &mut Facts| status(f).live_table = false),
                ),
            ],
        );
    }

    #[test]
    fn a_mapping_listed_without_status_is_healthy_only_if_it_is_lvms_own() {
        // A host scan on Linux 5.15+ lists LVM's own mappings and does not ask their status.
        let mut f = ghost();
        let expected = match &f.lvm {
            Some(LvmView::Lv(lv)) => lv.expected_dm_uuid(),
            _ => unreachable!(),
        };
        f.users_searched = UsersSearched::Nothing;
        device(&mut f).status = None;
        device(&mut f).uuid = expected.into();
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Healthy, "{d:#?}");
        assert_eq!(code_of(&d, Layer::DeviceMapper), "dm_listed");
        assert_eq!(code_of(&d, Layer::Holders), "holders_not_searched");
        // The same without LVM's uuid: nothing is proven, so never a ghost.
        device(&mut f).uuid = Default::default();
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Suspicious, "{d:#?}");
        assert_eq!(code_of(&d, Layer::DeviceMapper), "dm_status_unknown");
    }
}
