//! What LVM itself says about logical volumes, from `lvs --reportformat json`.

use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::dm::{DevNum, TableLine};
use crate::external_tool::{self, CommandError};
use crate::ids::{LvName, VgName};

use super::metadata_text::VgMetadata;
use super::names::lvm_dm_uuid;

const FIELDS: &str = "vg_name,lv_name,lv_uuid,vg_uuid,lv_attr";

/// Where an LV record was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// `lvs --reportformat json`.
    #[default]
    Lvs,
    /// The VG's committed metadata on its PV (see `lvm::pv_metadata`).
    Metadata,
}

/// One LV as LVM knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvRecord {
    pub vg_name: String,
    pub lv_name: String,
    pub lv_uuid: String,
    pub vg_uuid: String,
    /// `lv_attr` as `lvs` printed it; absent when read from the metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lv_attr: Option<String>,
    /// Active in LVM's sense: a mapping carries the LV's LVM uuid. From `lv_attr` (5th
    /// character `a`) for `lvs` records; for metadata records the caller asks the kernel, as
    /// `lvs` itself does, and sets it (`facts::gather`).
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub read_from: ReadFrom,
}

impl LvRecord {
    /// How LVM's state reads in a reason: the attributes when `lvs` gave them.
    pub fn state(&self) -> String {
        let word = if self.active { "active" } else { "inactive" };
        match &self.lv_attr {
            Some(attr) => format!("LV {word} ({attr})"),
            None => format!("LV {word} (metadata; kernel asked by uuid)"),
        }
    }

    /// The DM uuid LVM would give this LV's mapping today.
    pub fn expected_dm_uuid(&self) -> String {
        lvm_dm_uuid(&self.vg_uuid, &self.lv_uuid)
    }
}

#[derive(Deserialize)]
struct Report {
    report: Vec<ReportSection>,
}

#[derive(Deserialize)]
struct ReportSection {
    #[serde(default)]
    lv: Vec<LvRecord>,
}

/// Parse `lvs --reportformat json` output.
pub fn parse(json: &str) -> Result<Vec<LvRecord>, String> {
    let report: Report =
        serde_json::from_str(json).map_err(|e| format!("unexpected lvs JSON: {e}"))?;
    let mut lvs: Vec<LvRecord> = report.report.into_iter().flat_map(|s| s.lv).collect();
    for lv in lvs.iter_mut() {
        // `lvs -a` shows a hidden LV's name in brackets; its name is without them.
        if let Some(inner) = lv
            .lv_name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
        {
            lv.lv_name = inner.to_string();
        }
        // LVM calls an LV active when the 5th attribute character is `a`.
        lv.active = lv.lv_attr.as_deref().and_then(|a| a.chars().nth(4)) == Some('a');
        lv.read_from = ReadFrom::Lvs;
    }
    Ok(lvs)
}

/// Whether a mapping's table maps only PVs of its LV's volume group. A mapping at an SR LV's
/// name that maps another VG's PV (or a device that is no PV at all) is not that LV's ghost,
/// whatever its name says: it is never removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TablePvs {
    /// Not looked at: no table read, or LVM's own mapping.
    NotChecked,
    /// Every line is linear or striped onto devices that are PVs of the VG.
    OnVg,
    /// A line maps something else (said).
    Elsewhere { why: String },
    /// The VG's PVs could not be listed (said).
    Unverified { why: String },
}

#[derive(Deserialize)]
struct PvReport {
    report: Vec<PvSection>,
}

#[derive(Deserialize)]
struct PvSection {
    #[serde(default)]
    pv: Vec<PvRow>,
}

#[derive(Deserialize)]
struct PvRow {
    pv_major: String,
    pv_minor: String,
    #[serde(default)]
    vg_name: String,
}

/// Parse `pvs --reportformat json -o pv_major,pv_minor,vg_name`: each VG's PV devices.
/// LVM's word that a PV's label is on more than one device (a clone LUN, an old copy): which
/// of them LVM uses is then its guess — it prefers the device a mapping already uses, so a
/// mapping onto the copy makes LVM read the copy — and nothing is proven from it.
pub fn duplicate_pvs(stderr: &str) -> Option<String> {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.contains("Not using device")
                || (l.contains("prefers device") && l.contains("PV"))
                || l.contains("uplicate PV")
        })
        .collect();
    (!said.is_empty()).then(|| {
        format!(
            "LVM sees a PV's label on more than one device, so which one is the PV is not \
             certain ({})",
            said.join("; ")
        )
    })
}

pub fn parse_pvs(json: &str) -> Result<HashMap<String, HashSet<DevNum>>, String> {
    let report: PvReport =
        serde_json::from_str(json).map_err(|e| format!("unexpected pvs JSON: {e}"))?;
    let mut out: HashMap<String, HashSet<DevNum>> = HashMap::new();
    for row in report.report.into_iter().flat_map(|s| s.pv) {
        let (Ok(major), Ok(minor)) = (row.pv_major.trim().parse(), row.pv_minor.trim().parse())
        else {
            return Err(format!(
                "pvs printed device {:?}:{:?}",
                row.pv_major, row.pv_minor
            ));
        };
        if !row.vg_name.is_empty() {
            out.entry(row.vg_name)
                .or_default()
                .insert(DevNum { major, minor });
        }
    }
    Ok(out)
}

/// LVM's view of one LV, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LvmView {
    Lv(LvRecord),
    /// LVM reads the VG but it has no LV of that name (the volume was deleted or renamed).
    LvMissing,
    /// LVM does not see the VG on this host.
    VgMissing,
    /// `lvs` failed or printed something we cannot read: nothing can be proven from LVM.
    Unreadable {
        why: String,
    },
}

/// The `lvs` front end, with the program name and deadline to use.
#[derive(Clone, Debug)]
pub struct Lvs {
    pub program: String,
    /// Every run (`pvs`, then `lvs`) ends by then: one deadline, not one per run.
    pub deadline: Instant,
}

impl Lvs {
    /// `pvs`, beside `lvs` (same directory, or the same PATH lookup).
    fn pvs_program(&self) -> String {
        match self.program.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/pvs"),
            None => "pvs".into(),
        }
    }

    /// Every VG's PV devices, as `pvs` reports them (one run for the host).
    pub fn pv_devices(&self) -> Result<HashMap<String, HashSet<DevNum>>, String> {
        let program = self.pvs_program();
        let args = ["--reportformat", "json", "-o", "pv_major,pv_minor,vg_name"];
        let out = external_tool::run(&program, &args, self.left())
            .and_then(|o| o.success(&program))
            .map_err(|e| e.to_string())?;
        if let Some(why) = duplicate_pvs(&out.stderr) {
            return Err(why);
        }
        parse_pvs(&out.stdout)
    }

    fn run(&self, vgs: &[&str]) -> Result<external_tool::Output, CommandError> {
        // -a: hidden LVs too (mirror legs, pool metadata), so that their uuids are somebody's
        // and never taken for a removed LV's.
        let mut args = vec!["-a", "--reportformat", "json", "--units", "b", "-o", FIELDS];
        args.extend_from_slice(vgs);
        external_tool::run(&self.program, &args, self.left())
    }

    /// What is left before the deadline (zero: a run times out at once).
    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Every LV LVM can see (one `lvs` run for the whole host).
    pub fn all(&self) -> Result<Vec<LvRecord>, CommandError> {
        let out = self.run(&[])?.success(&self.program)?;
        parse(&out.stdout).map_err(|why| CommandError::Failed {
            program: self.program.clone(),
            status: 0,
            stderr: why,
        })
    }

    /// Every LV of the named VGs, in one `lvs` run. Records of the VGs LVM found, and the
    /// outcome for the rest: LVM may print some VGs and fail on others in the same run.
    pub fn of_vgs(&self, vgs: &[&VgName]) -> VgReport {
        let names: Vec<&str> = vgs.iter().map(|v| v.as_str()).collect();
        match self.run(&names) {
            Err(e) => VgReport::new(Vec::new(), 1, String::new(), Some(e.to_string())),
            Ok(out) => match parse(&out.stdout) {
                Ok(records) => VgReport::new(records, out.status, out.stderr, None),
                Err(why) => {
                    let failure = Some(format!("{why}; stderr: {}", out.stderr.trim()));
                    VgReport::new(Vec::new(), out.status, out.stderr, failure)
                }
            },
        }
    }
}

/// The outcome of one `lvs` run over some VGs, indexed once so that looking up thousands of
/// mappings stays linear.
#[derive(Clone, Debug, Default)]
pub struct VgReport {
    pub records: Vec<LvRecord>,
    pub status: i32,
    pub stderr: String,
    /// Set when `lvs` could read nothing at all.
    pub failure: Option<String>,
    /// Record indices sorted by (VG, LV) and by the DM uuid LVM gives the LV: looked up by
    /// binary search, so the index holds no copy of any name (thousands of LVs per VG).
    by_name: Vec<usize>,
    by_dm_uuid: Vec<usize>,
    /// VGs read (with or without LVs).
    vgs: HashSet<String>,
    /// Why a VG's metadata could not be read from its PVs (those VGs were asked of `lvs`).
    pub metadata_failures: HashMap<String, String>,
    /// The devices known to be PVs of each VG (their labels and metadata say so, or `pvs`).
    pub pv_devices: HashMap<String, HashSet<DevNum>>,
    /// What a device that is not known as a PV of the VG read for it is (another VG's PV,
    /// no label, unreadable).
    pub not_pv: HashMap<DevNum, String>,
    /// VGs whose PVs could not be listed at all, and why.
    pub pvs_unknown: HashMap<String, String>,
    /// Each VG's uuid (from its metadata, or from `lvs`).
    pub vg_uuids: HashMap<String, String>,
}

impl VgReport {
    pub fn new(
        records: Vec<LvRecord>,
        status: i32,
        stderr: String,
        failure: Option<String>,
    ) -> Self {
        let mut report = VgReport {
            records,
            status,
            stderr,
            failure,
            ..Default::default()
        };
        report.index();
        report
    }

    fn index(&mut self) {
        let records = &self.records;
        let mut by_name: Vec<usize> = (0..records.len()).collect();
        by_name.sort_by(|a, b| name_key(&records[*a]).cmp(&name_key(&records[*b])));
        let mut by_dm_uuid = by_name.clone();
        by_dm_uuid.sort_by(|a, b| dm_uuid_bytes(&records[*a]).cmp(dm_uuid_bytes(&records[*b])));
        for r in records {
            if !self.vgs.contains(&r.vg_name) {
                self.vgs.insert(r.vg_name.clone());
            }
            if !self.vg_uuids.contains_key(&r.vg_name) {
                self.vg_uuids.insert(r.vg_name.clone(), r.vg_uuid.clone());
            }
        }
        self.by_name = by_name;
        self.by_dm_uuid = by_dm_uuid;
    }

    fn find(&self, vg: &str, lv: &str) -> Option<&LvRecord> {
        let i = self
            .by_name
            .binary_search_by(|i| name_key(&self.records[*i]).cmp(&(vg, lv)))
            .ok()?;
        Some(&self.records[self.by_name[i]])
    }

    /// VGs read from their PVs' metadata, and an `lvs` report for the VGs that could not be:
    /// the `lvs` outcome (status, failure) speaks only for the VGs the metadata did not cover.
    pub fn combine(metadata: Vec<VgMetadata>, lvs: Option<VgReport>) -> Self {
        let mut report = lvs.unwrap_or_default();
        for vg in metadata {
            report.vgs.insert(vg.name.clone());
            report.vg_uuids.insert(vg.name.clone(), vg.id.clone());
            for lv in vg.lvs {
                report.records.push(LvRecord {
                    vg_name: vg.name.clone(),
                    lv_name: lv.name,
                    lv_uuid: lv.id,
                    vg_uuid: vg.id.clone(),
                    lv_attr: None,
                    active: false,
                    read_from: ReadFrom::Metadata,
                });
            }
        }
        report.index();
        report
    }

    /// LVM's view of one LV, as far as this run tells.
    pub fn view(&self, vg: &VgName, lv: &LvName) -> LvmView {
        if let Some(r) = self.find(vg.as_str(), lv.as_str()) {
            return LvmView::Lv(r.clone());
        }
        if self.vgs.contains(vg.as_str()) {
            return LvmView::LvMissing;
        }
        let unreadable = |why: String| LvmView::Unreadable {
            why: match self.metadata_failures.get(vg.as_str()) {
                Some(m) => format!("{why}; and its metadata on the PVs: {m}"),
                None => why,
            },
        };
        if let Some(why) = &self.failure {
            return unreadable(why.clone());
        }
        if self
            .stderr
            .contains(&format!("Volume group \"{}\" not found", vg.as_str()))
        {
            return LvmView::VgMissing;
        }
        if self.status == 0 {
            // LVM read the VG without complaint and listed no LV in it: the VG is empty.
            return LvmView::LvMissing;
        }
        unreadable(format!(
            "lvs exited with status {}: {}",
            self.status,
            self.stderr.trim()
        ))
    }

    /// The DM uuid LVM gives `vg/lv` today, when LVM knows the LV.
    pub fn expected_dm_uuid(&self, vg: &VgName, lv: &LvName) -> Option<String> {
        self.find(vg.as_str(), lv.as_str())
            .map(|r| r.expected_dm_uuid())
    }

    /// Whose LVM DM uuid `dm_uuid` is, when it is not `vg/lv`'s and not a stale uuid of this
    /// VG (an LV of `vg` since removed or re-created): another LV (`vg/lv`), or an LV of
    /// another volume group — a mapping carrying another volume's identity.
    pub fn other_owner(&self, dm_uuid: &str, vg: &VgName, lv: &LvName) -> Option<String> {
        let not_this_lv = |r: &LvRecord| r.vg_name != vg.as_str() || r.lv_name != lv.as_str();
        if let Some(r) = self.by_dm_uuid(dm_uuid) {
            return not_this_lv(r).then(|| format!("LV {}/{}", r.vg_name, r.lv_name));
        }
        if !dm_uuid.starts_with("LVM-") {
            return None;
        }
        let Some(ours) = self.vg_uuids.get(vg.as_str()) else {
            return Some(format!(
                "an LV LVM cannot place ({vg}'s own uuid is not known)"
            ));
        };
        let Some((base, layer)) = super::names::lv_of_dm_uuid(dm_uuid, ours) else {
            return Some(format!(
                "an LV of another volume group (the uuid's VG part is not {vg}'s {})",
                ours.replace('-', "")
            ));
        };
        // A removed LV's plain uuid is nobody's. LVM's internal layers carry their LV's uuid
        // plus a suffix ("-real", "-cow", "-pool"): a layer belongs to its LV, never to another
        // LV's activation.
        let suffix = layer?;
        match self.by_dm_uuid(&super::names::lvm_dm_uuid(ours, base)) {
            Some(r) if !not_this_lv(r) => None, // this LV's own layer: the verdict says so
            Some(r) => Some(format!(
                "the -{suffix} layer of LV {}/{}",
                r.vg_name, r.lv_name
            )),
            None => Some(format!(
                "a -{suffix} layer of an LV that {vg} no longer lists"
            )),
        }
    }

    /// The LV whose LVM DM uuid is exactly `dm_uuid`.
    fn by_dm_uuid(&self, dm_uuid: &str) -> Option<&LvRecord> {
        let i = self
            .by_dm_uuid
            .binary_search_by(|i| dm_uuid_bytes(&self.records[*i]).cmp(dm_uuid.bytes()))
            .ok()?;
        Some(&self.records[self.by_dm_uuid[i]])
    }

    /// Whether `table` maps only PVs of `vg`.
    pub fn table_on_vg(&self, vg: &VgName, table: &[TableLine]) -> TablePvs {
        if let Some(l) = table
            .iter()
            .find(|l| l.target != "linear" && l.target != "striped")
        {
            return TablePvs::Elsewhere {
                why: format!(
                    "its table has a {} line, not a linear map of a PV",
                    l.target
                ),
            };
        }
        let devices = super::table_devices(table);
        if devices.is_empty() {
            return TablePvs::Elsewhere {
                why: "its table maps no device".into(),
            };
        }
        let known = self.pv_devices.get(vg.as_str());
        for dev in devices {
            if known.is_some_and(|k| k.contains(&dev)) {
                continue;
            }
            if let Some(why) = self.pvs_unknown.get(vg.as_str()) {
                return TablePvs::Unverified {
                    why: format!("whether {dev} is a PV of {vg} is unknown: {why}"),
                };
            }
            return TablePvs::Elsewhere {
                why: match self.not_pv.get(&dev) {
                    Some(what) => format!("it maps {dev}, which is not a PV of {vg} ({what})"),
                    None => format!("it maps {dev}, which is not a PV of {vg}"),
                },
            };
        }
        TablePvs::OnVg
    }
}

fn name_key(r: &LvRecord) -> (&str, &str) {
    (r.vg_name.as_str(), r.lv_name.as_str())
}

/// `r.expected_dm_uuid()`'s bytes, without building the string (see `names::lvm_dm_uuid`).
fn dm_uuid_bytes(r: &LvRecord) -> impl Iterator<Item = u8> + '_ {
    fn undashed(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().filter(|b| *b != b'-')
    }
    b"LVM-"
        .iter()
        .copied()
        .chain(undashed(&r.vg_uuid))
        .chain(undashed(&r.lv_uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"  {
      "report": [
          {
              "lv": [
                  {"vg_name":"VG_XenStorage-aaaa", "lv_name":"VHD-cc", "lv_uuid":"X4HzXT-jZRq-DfaP", "vg_uuid":"K2BweQ-UkrI", "lv_attr":"-wi-a-----"},
                  {"vg_name":"VG_XenStorage-aaaa", "lv_name":"VHD-dd", "lv_uuid":"AAAA-BBBB", "vg_uuid":"K2BweQ-UkrI", "lv_attr":"-wi-------"}
              ]
          }
      ]
  }"#;

    #[test]
    fn parses_lvs_json_and_attributes() {
        let lvs = parse(SAMPLE).unwrap();
        assert_eq!(lvs.len(), 2);
        assert!(lvs[0].active);
        assert!(!lvs[1].active);
        assert_eq!(lvs[0].state(), "LV active (-wi-a-----)");
        assert_eq!(lvs[0].expected_dm_uuid(), "LVM-K2BweQUkrIX4HzXTjZRqDfaP");
    }

    #[test]
    fn views_distinguish_missing_lv_missing_vg_and_failure() {
        let vg = VgName::new("VG_XenStorage-aaaa").unwrap();
        let report = VgReport::new(
            parse(SAMPLE).unwrap(),
            5,
            "  Volume group \"VG_XenStorage-zzzz\" not found\n".into(),
            None,
        );
        let lv = |n: &str| LvName::new(n).unwrap();
        assert!(matches!(report.view(&vg, &lv("VHD-cc")), LvmView::Lv(_)));
        assert_eq!(report.view(&vg, &lv("VHD-zz")), LvmView::LvMissing);
        let gone = VgName::new("VG_XenStorage-zzzz").unwrap();
        assert_eq!(report.view(&gone, &lv("VHD-cc")), LvmView::VgMissing);
        let other = VgName::new("VG_XenStorage-yyyy").unwrap();
        assert!(matches!(
            report.view(&other, &lv("VHD-cc")),
            LvmView::Unreadable { .. }
        ));
        assert_eq!(
            report
                .other_owner("LVM-K2BweQUkrIAAAABBBB", &vg, &lv("VHD-cc"))
                .as_deref(),
            Some("LV VG_XenStorage-aaaa/VHD-dd")
        );
        assert_eq!(
            report.other_owner("LVM-K2BweQUkrIAAAABBBB", &vg, &lv("VHD-dd")),
            None
        );
        assert_eq!(report.other_owner("", &vg, &lv("VHD-cc")), None);
        // A layer (LV uuid + suffix) is its LV's: another LV's layer names that LV, this LV's
        // own is left to the verdict's lvm_sub_uuid, a removed LV's layer is no LV's to take.
        assert_eq!(
            report
                .other_owner("LVM-K2BweQUkrIAAAABBBB-real", &vg, &lv("VHD-cc"))
                .as_deref(),
            Some("the -real layer of LV VG_XenStorage-aaaa/VHD-dd")
        );
        assert_eq!(
            report.other_owner("LVM-K2BweQUkrIAAAABBBB-real", &vg, &lv("VHD-dd")),
            None
        );
        assert!(report
            .other_owner("LVM-K2BweQUkrIGONE-cow", &vg, &lv("VHD-cc"))
            .is_some_and(
                |o| o.contains("-cow layer of an LV that VG_XenStorage-aaaa no longer lists")
            ));
        // A removed LV's plain uuid of this VG is stale: nobody's.
        assert_eq!(
            report.other_owner("LVM-K2BweQUkrIGONE", &vg, &lv("VHD-cc")),
            None
        );
    }

    #[test]
    fn duplicate_pvs_make_lvms_device_choice_unproven() {
        let stderr = "  WARNING: Not using device /dev/ubda for PV jhIr3H-g7mq.\n  WARNING: PV jhIr3H-g7mq prefers device /dev/ubdb because device is used by LV.\n";
        let why = duplicate_pvs(stderr).unwrap();
        assert!(
            why.contains("/dev/ubdb because device is used by LV"),
            "{why}"
        );
        assert_eq!(
            duplicate_pvs("  WARNING: This metadata update is NOT backed up.\n"),
            None
        );
        assert_eq!(duplicate_pvs(""), None);
    }

    #[test]
    fn a_hidden_lv_from_lvs_a_is_somebody_and_named_without_brackets() {
        let json = r#"{"report":[{"lv":[
          {"vg_name":"VG_XenStorage-aaaa", "lv_name":"[R_mimage_0]", "lv_uuid":"HIDD-EN", "vg_uuid":"K2BweQ-UkrI", "lv_attr":"iwi-a-----"}
        ]}]}"#;
        let records = parse(json).unwrap();
        assert_eq!(records[0].lv_name, "R_mimage_0");
        let report = VgReport::new(records, 0, String::new(), None);
        let vg = VgName::new("VG_XenStorage-aaaa").unwrap();
        assert_eq!(
            report
                .other_owner("LVM-K2BweQUkrIHIDDEN", &vg, &LvName::new("VHD-cc").unwrap())
                .as_deref(),
            Some("LV VG_XenStorage-aaaa/R_mimage_0")
        );
    }

    #[test]
    fn every_lv_is_found_by_name_and_by_dm_uuid_among_thousands() {
        let records: Vec<LvRecord> = (0..3000)
            .map(|i| LvRecord {
                vg_name: format!("VG_XenStorage-{}", i % 3),
                lv_name: format!("VHD-{:04}", (i * 7919) % 3000),
                lv_uuid: format!("L{i:05}-x-{}", i % 10),
                vg_uuid: format!("V-{}", i % 3),
                lv_attr: None,
                active: false,
                read_from: ReadFrom::Metadata,
            })
            .collect();
        let report = VgReport::new(records.clone(), 0, String::new(), None);
        for r in &records {
            let (vg, lv) = (
                VgName::new(&r.vg_name).unwrap(),
                LvName::new(&r.lv_name).unwrap(),
            );
            assert_eq!(report.view(&vg, &lv), LvmView::Lv(r.clone()));
            let uuid = r.expected_dm_uuid();
            assert!(dm_uuid_bytes(r).eq(uuid.bytes()));
            assert_eq!(report.expected_dm_uuid(&vg, &lv), Some(uuid.clone()));
            // Its own uuid is not another's; from a different LV it names this one.
            assert_eq!(report.other_owner(&uuid, &vg, &lv), None);
            let other = LvName::new("VHD-none").unwrap();
            assert_eq!(
                report.other_owner(&uuid, &vg, &other),
                Some(format!("LV {}/{}", r.vg_name, r.lv_name))
            );
        }
        let vg = VgName::new("VG_XenStorage-1").unwrap();
        assert_eq!(
            report.view(&vg, &LvName::new("VHD-none").unwrap()),
            LvmView::LvMissing
        );
        // A uuid of this VG that no LV has (one removed or re-created) is stale: no owner.
        let lv1 = LvName::new("VHD-0001").unwrap();
        assert_eq!(report.other_owner("LVM-V1stale", &vg, &lv1), None);
        // Any other LVM uuid is another volume group's LV.
        assert!(report
            .other_owner("LVM-nothing", &vg, &lv1)
            .is_some_and(|o| o.contains("another volume group")));
        assert!(report
            .other_owner("LVM-V2stale", &vg, &lv1)
            .is_some_and(|o| o.contains("another volume group")));
    }

    #[test]
    fn only_a_linear_map_of_the_vgs_own_pvs_is_on_the_vg() {
        let vg = VgName::new("VG_XenStorage-1").unwrap();
        let mut report = VgReport::default();
        report.pv_devices.insert(
            vg.to_string(),
            [DevNum {
                major: 98,
                minor: 0,
            }]
            .into(),
        );
        report.not_pv.insert(
            DevNum {
                major: 98,
                minor: 16,
            },
            "a PV of VG dom0vg".into(),
        );
        let line = |target: &str, params: &str| TableLine {
            start: 0,
            length: 8,
            target: target.into(),
            params: params.into(),
        };
        assert_eq!(
            report.table_on_vg(&vg, &[line("linear", "98:0 2048")]),
            TablePvs::OnVg
        );
        for (table, says) in [
            (vec![line("linear", "98:16 0")], "a PV of VG dom0vg"),
            (
                vec![line("linear", "98:0 2048"), line("linear", "7:0 0")],
                "7:0",
            ),
            (vec![line("zero", "")], "zero"),
            (vec![line("error", "")], "error"),
        ] {
            match report.table_on_vg(&vg, &table) {
                TablePvs::Elsewhere { why } => assert!(why.contains(says), "{why}"),
                other => panic!("{table:?}: {other:?}"),
            }
        }
        report
            .pvs_unknown
            .insert(vg.to_string(), "pvs is not installed".into());
        assert!(matches!(
            report.table_on_vg(&vg, &[line("linear", "7:0 0")]),
            TablePvs::Unverified { .. }
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("not json").is_err());
        assert!(parse("{}").is_err());
    }
}
