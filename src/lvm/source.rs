//! LVM's view of the VGs some mappings belong to: read from the PVs' metadata (fast, no LVM
//! process), or from `lvs` — for the VGs whose metadata could not be read, or everywhere when
//! configured so, and for a VG whose metadata alone would call an LVM uuid nobody's.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::dm::DevNum;
use crate::ids::VgName;

use super::metadata_text::{LvFilter, VgMetadata};
use super::names::lv_of_dm_uuid;
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

/// What the mappings of one VG show: the devices their tables are built on, and the LVM uuids
/// they carry.
#[derive(Clone, Debug, Default)]
pub struct VgMappings {
    pub devices: Vec<DevNum>,
    pub lvm_uuids: Vec<String>,
}

/// An LVM uuid of `metadata`'s VG that no LV in it has (not a layer's: those carry a suffix):
/// what makes a mapping look like a removed LV's. Read from the PVs' labels alone, that claim
/// could rest on an old copy of the PV, where a live LV did not exist yet.
fn stale_looking<'a>(metadata: &VgMetadata, uuids: &'a [String]) -> Option<&'a str> {
    let mut candidates = uuids
        .iter()
        .filter_map(|u| match lv_of_dm_uuid(u, &metadata.id)? {
            (lv, None) => Some((u.as_str(), lv)),
            (_, Some(_layer)) => None,
        });
    let first = candidates.next()?;
    // A scan passes every mapping's uuid (thousands): one set of the LVs' ids, not a search
    // per uuid.
    let ids: HashSet<String> = metadata.lvs.iter().map(|l| l.id.replace('-', "")).collect();
    std::iter::once(first)
        .chain(candidates)
        .find(|(_, lv)| !ids.contains(*lv))
        .map(|(u, _)| u)
}

/// The report for `vgs`, each with what its mappings show (`lvs`: the `lvs` front end for what
/// the metadata cannot answer, made when needed); `filter`: only those LVs from the metadata
/// (what `lvs` reports is not filtered).
pub fn read(
    how: LvmReader,
    pvs: &PvReader,
    lvs: &dyn Fn() -> Lvs,
    vgs: &BTreeMap<VgName, VgMappings>,
    filter: Option<&LvFilter>,
) -> VgReport {
    let mut from_metadata = Vec::new();
    let mut need_lvs: Vec<&VgName> = Vec::new();
    let mut failures = HashMap::new();
    let mut pv_devices: HashMap<String, HashSet<DevNum>> = HashMap::new();
    let mut not_pv: HashMap<DevNum, String> = HashMap::new();
    for (vg, mappings) in vgs {
        let devices = &mappings.devices;
        if how == LvmReader::Lvs {
            need_lvs.push(vg);
            continue;
        }
        // Every device under the VG's mappings is read: which of them are its PVs is what
        // tells a mapping of this VG from one that only has an SR LV's name.
        let survey = pvs.survey(vg.as_str(), devices, filter);
        let labelled = survey.pvs.iter().map(|(d, _)| *d);
        not_pv.extend(survey.why.iter().cloned());
        match survey.best {
            Some(metadata) => match stale_looking(&metadata, &mappings.lvm_uuids) {
                // Whose identity a mapping carries is the VG's to say, not a copy's: the
                // devices under the mappings may hold an old copy of a PV (a clone LUN, a PV
                // the VG dropped) in which a live LV did not exist. So the VG is read as LVM
                // reads it — every PV found by a label scan, the newest metadata — and where
                // LVM's own choice would be a guess (a PV's label on two devices, a PV
                // missing, copies that disagree) LVM itself is asked.
                Some(uuid) => match pvs.complete(vg.as_str(), metadata, &survey.pvs, filter) {
                    Ok((newest, devices)) => {
                        tracing::info!(
                            vg = vg.as_str(),
                            uuid,
                            seqno = newest.seqno,
                            "the VG read from every PV decides whose the uuid is"
                        );
                        pv_devices
                            .entry(vg.to_string())
                            .or_default()
                            .extend(devices.iter().map(|(d, _)| *d));
                        from_metadata.push(newest);
                    }
                    Err(why) => {
                        tracing::info!(
                            vg = vg.as_str(),
                            uuid,
                            why,
                            "a mapping carries an LVM uuid no LV has in the metadata read, and LVM's choice of PVs is not certain; asking lvs"
                        );
                        need_lvs.push(vg);
                    }
                },
                None => {
                    pv_devices
                        .entry(vg.to_string())
                        .or_default()
                        .extend(labelled);
                    from_metadata.push(metadata);
                }
            },
            None => {
                pv_devices
                    .entry(vg.to_string())
                    .or_default()
                    .extend(labelled);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::metadata_text::LvMetadata;

    #[test]
    fn only_an_lvm_uuid_of_the_vg_that_no_lv_has_looks_stale() {
        let lv = |name: &str, id: &str| LvMetadata {
            name: name.into(),
            id: id.into(),
            visible: true,
            segments: Vec::new(),
        };
        let m = VgMetadata {
            name: "VG_XenStorage-x".into(),
            id: "vg-1".into(),
            seqno: 1,
            pv_ids: Vec::new(),
            pvs: Vec::new(),
            extent_size: 8192,
            lvs: vec![lv("VHD-a", "a-1"), lv("VHD-c", "c-1")],
        };
        let ask = |u: &[&str]| {
            stale_looking(&m, &u.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map(str::to_string)
        };
        // An LV's own, its layer, another VG's, another subsystem's: not a stale claim.
        assert_eq!(
            ask(&["LVM-vg1a1", "LVM-vg1c1-real", "LVM-other9", "CRYPT-x"]),
            None
        );
        // No LV of the VG has it: lvs must confirm.
        assert_eq!(
            ask(&["LVM-vg1a1", "LVM-vg1gone"]).as_deref(),
            Some("LVM-vg1gone")
        );
    }
}
