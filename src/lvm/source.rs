//! LVM's view of the VGs some mappings belong to: read from the PVs' metadata (fast, no LVM
//! process), or from `lvs` — for the VGs whose metadata could not be read, or everywhere when
//! configured so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dm::DevNum;
use crate::ids::VgName;

use super::metadata_text::LvFilter;
use super::pv_metadata::PvReader;
use super::report::{Lvs, VgReport};

/// How dmheal learns what LVM knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LvmReader {
    /// The committed metadata on the PVs under the mappings; `lvs` for what that cannot cover.
    #[default]
    Metadata,
    /// `lvs` only (slower: seconds per VG of thousands of LVs).
    Lvs,
}

impl std::str::FromStr for LvmReader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "metadata" => Ok(LvmReader::Metadata),
            "lvs" => Ok(LvmReader::Lvs),
            other => Err(format!("unknown LVM reader {other:?} (metadata or lvs)")),
        }
    }
}

/// The report for `vgs`, each with the devices its mappings are built on (`lvs`: the `lvs`
/// front end for what the metadata cannot answer, made when needed); `filter`: only those
/// LVs from the metadata (what `lvs` reports is not filtered).
pub fn read(
    how: LvmReader,
    pvs: &PvReader,
    lvs: &dyn Fn() -> Lvs,
    vgs: &BTreeMap<VgName, Vec<DevNum>>,
    filter: Option<&LvFilter>,
) -> VgReport {
    let mut from_metadata = Vec::new();
    let mut need_lvs: Vec<&VgName> = Vec::new();
    let mut failures = std::collections::HashMap::new();
    for (vg, devices) in vgs {
        if how == LvmReader::Lvs {
            need_lvs.push(vg);
            continue;
        }
        match pvs.read_vg(vg.as_str(), devices, filter) {
            Ok(metadata) => from_metadata.push(metadata),
            Err(why) => {
                tracing::info!(
                    vg = vg.as_str(),
                    why,
                    "VG metadata not readable; asking lvs"
                );
                failures.insert(vg.to_string(), why);
                need_lvs.push(vg);
            }
        }
    }
    // `lvs` is made now, with what is left of the deadline after the PV reads.
    let fallback = (!need_lvs.is_empty()).then(|| lvs().of_vgs(&need_lvs));
    let mut report = VgReport::combine(from_metadata, fallback);
    report.metadata_failures = failures;
    report
}
