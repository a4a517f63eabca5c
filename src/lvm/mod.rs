//! The LVM layer: naming rules (pure) and what `lvs` reports.

pub mod names;
pub mod report;

pub use names::{dm_name_for, lvm_dm_uuid, split_dm_name, sr_of_vg, vdi_of_lv, LvmDmName};
pub use report::{LvRecord, LvmView, Lvs, VgReport};
