//! Every reason code a verdict can give, in one place: `<layer>_<what>`, the layer it belongs
//! to, and what it means. A reason is made from one of these (`super::reason` takes a `Code`),
//! so no call site can invent a code, and `dmheal contract` lists them all (`reason_codes`).

use serde::Serialize;

use super::Layer;

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Code {
    pub code: &'static str,
    pub layer: Layer,
    pub meaning: &'static str,
}

macro_rules! codes {
    ($($id:ident = $code:literal, $layer:ident, $meaning:literal;)*) => {
        $(pub const $id: Code = Code { code: $code, layer: Layer::$layer, meaning: $meaning };)*
        /// Every code, in layer order.
        pub const ALL: &[Code] = &[$($id),*];
    };
}

codes! {
    NAMING_SR_VOLUME = "naming_sr_volume", Naming, "a volume SM makes in an SR's volume group: a VDI's LV, or a local SR's own LV";
    NAMING_UNKNOWN_VOLUME = "naming_unknown_volume", Naming, "an LV of an SR's volume group that SM does not make there (MGT, an unknown prefix): its other layers cannot be asked";
    NAMING_FOREIGN_VG = "naming_foreign_vg", Naming, "the volume group is not an SR's";
    NAMING_LVM_LAYER = "naming_lvm_layer", Naming, "an LVM sub-device (-real, -cow, ...), which LVM manages with its LV";
    NAMING_NOT_LVM = "naming_not_lvm", Naming, "the name is not an LVM volume's";

    DM_ABSENT = "dm_absent", DeviceMapper, "the kernel has no mapping of this name: lvchange -ay can create it";
    DM_IDLE = "dm_idle", DeviceMapper, "registered in the kernel, open count 0, live table, not suspended";
    DM_LISTED = "dm_listed", DeviceMapper, "listed by the kernel with the uuid LVM gives the LV: its status was not read (a scan)";
    DM_OPEN = "dm_open", DeviceMapper, "the kernel counts users of the mapping";
    DM_SUSPENDED = "dm_suspended", DeviceMapper, "the mapping is suspended: someone is changing it";
    DM_DEFERRED_REMOVE = "dm_deferred_remove", DeviceMapper, "a deferred remove is pending on it";
    DM_INACTIVE_TABLE = "dm_inactive_table", DeviceMapper, "an inactive table is loaded: a reload is in progress";
    DM_NO_TABLE = "dm_no_table", DeviceMapper, "the mapping has no live table";
    DM_STATUS_UNKNOWN = "dm_status_unknown", DeviceMapper, "the kernel's status of the mapping could not be read";

    LVM_OWNS = "lvm_owns", Lvm, "the mapping carries the uuid LVM gives this LV: LVM's own, live mapping";
    LVM_INACTIVE = "lvm_inactive", Lvm, "LVM says the LV is inactive, and would create this name, which the mapping blocks";
    LVM_NO_LV = "lvm_no_lv", Lvm, "the VG has no LV of this name any more";
    LVM_NO_VG = "lvm_no_vg", Lvm, "LVM does not see this VG on this host";
    LVM_OTHER_LV = "lvm_other_lv", Lvm, "the mapping carries another LV's uuid (or its layer's)";
    LVM_SUB_UUID = "lvm_sub_uuid", Lvm, "the mapping carries an LVM uuid with a suffix: a layer of some LV";
    LVM_FOREIGN_UUID = "lvm_foreign_uuid", Lvm, "the mapping carries another subsystem's uuid (CRYPT-, mpath-, part1-...)";
    LVM_ACTIVE_ELSEWHERE = "lvm_active_elsewhere", Lvm, "LVM reports the LV active through a mapping with another name";
    LVM_UNREADABLE = "lvm_unreadable", Lvm, "LVM's view could not be read (neither the metadata on the PVs nor lvs)";
    LVM_TABLE_ON_VG = "lvm_table_on_vg", Lvm, "the table maps only PVs of the LV's volume group";
    LVM_TABLE_ELSEWHERE = "lvm_table_elsewhere", Lvm, "the table maps a device that is not a PV of the VG (a copy, a loop device, another VG): not this LV's ghost";
    LVM_TABLE_UNVERIFIED = "lvm_table_unverified", Lvm, "which devices are the VG's PVs could not be proven (LVM sees a PV's label twice, or could not be asked)";

    HOLDERS_NOT_OPEN = "holders_not_open", Holders, "the kernel's own count of users is 0: nothing holds the mapping";
    HOLDERS_NOT_SEARCHED = "holders_not_searched", Holders, "a host scan does not search users of a mapping the kernel counts as unused";
    HOLDERS_NONE = "holders_none", Holders, "no device is stacked on it";
    HOLDERS_STACKED = "holders_stacked", Holders, "devices are stacked on it";
    HOLDERS_UNREADABLE = "holders_unreadable", Holders, "stacked devices could not be looked for (sysfs)";
    OPENERS_NOT_SEARCHED = "openers_not_searched", Openers, "a host scan does not walk /proc";
    OPENERS_NONE = "openers_none", Openers, "no process has it open";
    OPENERS_HOLDING = "openers_holding", Openers, "processes hold it open (named)";
    OPENERS_UNREADABLE = "openers_unreadable", Openers, "processes holding it could not be looked for (/proc)";
    MOUNTS_NONE = "mounts_none", Mounts, "not mounted in any mount namespace";
    MOUNTS_MOUNTED = "mounts_mounted", Mounts, "mounted (where, named)";
    MOUNTS_UNREADABLE = "mounts_unreadable", Mounts, "mounts could not be looked for (/proc)";

    TAPDISK_NONE = "tapdisk_none", Tapdisk, "no tapdisk serves the volume";
    TAPDISK_SERVING = "tapdisk_serving", Tapdisk, "a tapdisk serves the volume";
    TAPDISK_PAUSED = "tapdisk_paused", Tapdisk, "a paused tapdisk serves the volume: it closed the device and will reopen it";
    TAPDISK_NO_TAP_CTL = "tapdisk_no_tap_ctl", Tapdisk, "tap-ctl is not installed: no tapdisk facts on this host";
    TAPDISK_UNREADABLE = "tapdisk_unreadable", Tapdisk, "tap-ctl failed or answered what cannot be read";

    SM_REFCOUNT_ABSENT = "sm_refcount_absent", Sm, "SM holds no reference to the VDI";
    SM_REFCOUNT_ZERO = "sm_refcount_zero", Sm, "SM's reference count is zero";
    SM_REFCOUNT_ACTIVATING = "sm_refcount_activating", Sm, "SM's one reference is the activation the hook runs in";
    SM_REFCOUNT_HELD = "sm_refcount_held", Sm, "SM counts references to the VDI on this host";
    SM_REFCOUNT_UNREADABLE = "sm_refcount_unreadable", Sm, "SM's reference count could not be read";

    XAPI_NOT_ASKED = "xapi_not_asked", Xapi, "no xapi on this host, and none configured";
    XAPI_UNREACHABLE = "xapi_unreachable", Xapi, "xapi did not answer (in time); the local layers decide";
    XAPI_NO_VDI = "xapi_no_vdi", Xapi, "xapi has no VDI with this uuid";
    XAPI_FREE_HERE = "xapi_free_here", Xapi, "xapi has the VDI attached to no VM on this host";
    XAPI_ATTACHED = "xapi_attached", Xapi, "xapi has the VDI attached to a VM resident on this host";
    XAPI_PAUSED = "xapi_paused", Xapi, "sm-config paused: SM paused the VDI's tapdisk";
    XAPI_RELINKING = "xapi_relinking", Xapi, "sm-config relinking: a coalesce is relinking the chain";
    XAPI_HOST_KEY = "xapi_host_key", Xapi, "sm-config host_<this host>: SM has the VDI activated here";
    XAPI_ACTIVATING = "xapi_activating", Xapi, "sm-config's activating and host_<this host> marks are the hook's own activation";
}

impl Layer {
    /// What every code of this layer starts with.
    pub fn code_prefix(self) -> &'static str {
        match self {
            Layer::Naming => "naming_",
            Layer::DeviceMapper => "dm_",
            Layer::Lvm => "lvm_",
            Layer::Tapdisk => "tapdisk_",
            Layer::Sm => "sm_",
            Layer::Xapi => "xapi_",
            Layer::Holders => "holders_",
            Layer::Openers => "openers_",
            Layer::Mounts => "mounts_",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_its_layers_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            assert!(
                c.code.starts_with(c.layer.code_prefix()),
                "{} is not `{}...`",
                c.code,
                c.layer.code_prefix()
            );
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!(!c.meaning.is_empty());
        }
    }
}
