//! LVM's view of the VGs some mappings belong to: read from the PVs' metadata (fast, no LVM
//! process), or from `lvs` — for the VGs whose metadata could not be read, or everywhere when
//! configured so.

use std::collections::{BTreeMap, HashMap, HashSet};

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
    let mut failures = HashMap::new();
    let mut pv_devices: HashMap<String, HashSet<DevNum>> = HashMap::new();
    let mut not_pv: HashMap<DevNum, String> = HashMap::new();
    for (vg, devices) in vgs {
        if how == LvmReader::Lvs {
            need_lvs.push(vg);
            continue;
        }
        // Every device under the VG's mappings is read: which of them are its PVs is what
        // tells a mapping of this VG from one that only has an SR LV's name.
        let survey = pvs.survey(vg.as_str(), devices, filter);
        pv_devices
            .entry(vg.to_string())
            .or_default()
            .extend(survey.pvs.iter().map(|(d, _)| *d));
        not_pv.extend(survey.why.iter().cloned());
        match survey.best {
            Some(metadata) => from_metadata.push(metadata),
            None => {
                let why = if devices.is_empty() {
                    "no device under the VG's mappings to read".to_string()
                } else {
                    survey
                        .why
                        .iter()
                        .map(|(d, w)| format!("{d}: {w}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
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
    // `lvs` (and `pvs`, for the PVs of what it reads) now, with what is left of the deadline
    // after the PV reads.
    let mut pvs_unknown = HashMap::new();
    let fallback = (!need_lvs.is_empty()).then(|| {
        let lvs = lvs();
        match lvs.pv_devices() {
            Ok(all) => {
                for vg in &need_lvs {
                    if let Some(d) = all.get(vg.as_str()) {
                        pv_devices.entry(vg.to_string()).or_default().extend(d);
                    }
                }
            }
            Err(why) => {
                for vg in &need_lvs {
                    pvs_unknown.insert(vg.to_string(), why.clone());
                }
            }
        }
        lvs.of_vgs(&need_lvs)
    });
    let mut report = VgReport::combine(from_metadata, fallback);
    report.metadata_failures = failures;
    report.pv_devices = pv_devices;
    report.not_pv = not_pv;
    report.pvs_unknown = pvs_unknown;
    report
}
