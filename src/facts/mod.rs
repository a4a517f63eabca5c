//! The fact model: an immutable picture of what every local layer says about one DM name.
//! Gathered first (`gather`), decided on afterwards (`verdict`), acted on last (`heal`): a dry
//! run is "stop after deciding". The types here hold no I/O, so the verdict is tested on
//! built facts.

pub mod gather;

use serde::Serialize;

use crate::dm::DmDevice;
use crate::ids::{DmName, Uuid};
use crate::kernel::{Holder, Mount, Opener};
use crate::lvm::{LvmDmName, LvmView, TablePvs};
use crate::sm::Refcount;
use crate::tapdisk::Tapdisk;
use crate::xapi::XapiView;

pub use gather::gather;

/// tapdisk's layer, reduced to what concerns this volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TapdiskFacts {
    /// tap-ctl answered; these tapdisks name this volume (paused or not).
    Listed {
        naming_this: Vec<Tapdisk>,
    },
    NotInstalled,
    Failed {
        why: String,
    },
    /// Not asked: no mapping, or not an SR volume.
    NotChecked,
}

/// Everything known about one DM name.
#[derive(Clone, Debug, Serialize)]
pub struct Facts {
    pub dm_name: DmName,
    /// The name split back into VG / LV (None when it is not LVM-shaped).
    pub lvm_name: Option<LvmDmName>,
    #[serde(rename = "sr_uuid")]
    pub sr: Option<Uuid>,
    #[serde(rename = "vdi_uuid")]
    pub vdi: Option<Uuid>,
    /// What the volume stores by SM's naming (a VDI, a local file SR's file system, or
    /// nothing SM makes); None when it is not an SR volume.
    pub stores: Option<crate::lvm::Stores>,
    /// The mapping in the kernel; None: no mapping of that name.
    pub device: Option<DmDevice>,
    /// What was searched for users (see `KernelSearch`).
    pub users_searched: UsersSearched,
    pub holders: Vec<Holder>,
    pub openers: Vec<Opener>,
    pub mounts: Vec<Mount>,
    /// Why sysfs could not be searched for holders (when it was to be searched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders_unreadable: Option<String>,
    /// Why /proc could not be searched for openers and mounts (when it was to be searched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proc_unreadable: Option<String>,
    /// LVM's view; None when not asked (no mapping, or not an SR volume).
    pub lvm: Option<LvmView>,
    /// Another LV (`vg/lv`) whose LVM DM uuid this mapping carries, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid_owner: Option<String>,
    /// Whether the mapping's table maps only PVs of the VG its name says (for mappings that
    /// are not LVM's own).
    pub table_pvs: TablePvs,
    pub tapdisk: TapdiskFacts,
    pub refcount: Refcount,
    pub xapi: XapiView,
    /// Gathered for SM's own activation of this volume (the SM hook): SM's reference and
    /// xapi mark for this host may be that activation's own.
    pub activating: bool,
}

impl Facts {
    /// Whether this name is an SR volume that dmheal may consider at all.
    pub fn is_sr_volume(&self) -> bool {
        crate::lvm::sr_volume(&self.dm_name).is_some()
    }
}

/// Where to look for holders, openers and mounts.
///
/// The kernel's open count, read by the same DM_DEV_STATUS that pins the device's dev_t, uuid
/// and event number, is its own count of users: an fd opener or mmap in any process, a mount in
/// any namespace, a stacked device, swap, a loop device all hold the device open. At 0, none
/// exists at that instant (and the kernel refuses to remove an open device anyway), so users
/// are searched only to NAME them when the count is above 0 — the team rule in DESIGN.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelSearch {
    /// Inspect, heal and heal's re-check: holders, /proc openers and every mount namespace's
    /// mounts, for each mapping the kernel counts as open. Status and table of every mapping.
    AllWhereOpen,
    /// A host scan: sysfs holders only, for mappings the kernel counts as open. /proc is not
    /// walked (thousands of kernel threads on a busy host); `inspect` names the processes.
    HoldersWhereOpen,
}

/// What was searched for users of one mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsersSearched {
    /// Holders, openers and mounts.
    All,
    /// Holders only (host scan, open mapping).
    Holders,
    /// Nothing: the open count is 0 (host scan).
    Nothing,
}
