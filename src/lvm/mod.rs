//! The LVM layer: naming rules (pure), LVM's on-disk metadata (label, metadata area, text), and
//! what `lvs` reports; `source` picks between the last two.

pub mod isolated;
pub mod metadata_text;
pub mod names;
pub mod ondisk;
pub mod pv_metadata;
mod reader_process;
pub mod report;
pub mod scan;
pub mod source;

pub use names::{
    dm_name_for, split_dm_name, sr_of_vg, sr_volume, vdi_of_lv, LvmDmName, SrVolume, Stores,
};
pub use pv_metadata::{table_devices, PvReader};
pub use report::{LvmView, Lvs, ReadFrom, TablePvs, VgReport};
pub use source::LvmReader;
