//! What inspecting and scanning give, as plain values: serialised for `--json`, the plugin and
//! `dmheal._core`, and read back (the counts) by the pool scan from each host's answer.

use serde::{Deserialize, Serialize};

use crate::facts::Facts;
use crate::verdict::{self, Reason, Verdict};

/// One DM name, every layer's facts, and the verdict with its reasons.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub target: String,
    pub dm_name: String,
    pub verdict: Verdict,
    pub summary: String,
    pub reasons: Vec<Reason>,
    pub facts: Facts,
}

impl Inspection {
    pub fn new(target: String, facts: Facts) -> Self {
        let d = verdict::from_facts(&facts);
        Inspection {
            target,
            dm_name: facts.dm_name.to_string(),
            verdict: d.verdict,
            summary: d.summary,
            reasons: d.reasons,
            facts,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCounts {
    pub mappings: usize,
    pub ghost: usize,
    pub in_use: usize,
    pub suspicious: usize,
    pub healthy: usize,
    pub inactive_lvs: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scan {
    pub counts: ScanCounts,
    /// Every SR-VG mapping in the kernel, inspected.
    pub mappings: Vec<Inspection>,
    /// SR LVs with no mapping (what `lvs` lists as inactive, and nothing in the kernel).
    pub inactive_lvs: Vec<String>,
    /// Set when `lvs` could not be read: LVM-based verdicts are then suspicious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lvm_error: Option<String>,
}

/// What a scan says besides the mappings themselves.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanSummary {
    pub counts: ScanCounts,
    pub inactive_lvs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lvm_error: Option<String>,
}

impl ScanCounts {
    /// Count one decided mapping.
    pub fn add(&mut self, v: Verdict) {
        self.mappings += 1;
        match v {
            Verdict::Ghost => self.ghost += 1,
            Verdict::InUse => self.in_use += 1,
            Verdict::Suspicious => self.suspicious += 1,
            Verdict::Healthy => self.healthy += 1,
            Verdict::Absent => {}
        }
    }
}

/// A host's scan as another host reads it back (the pool scan, from each host's plugin answer):
/// typed where it is used — the counts, each mapping's name, verdict and volume — and every
/// other field carried through unchanged, so the pool's JSON holds each host's whole answer.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ScanAnswer {
    pub counts: ScanCounts,
    #[serde(default)]
    pub mappings: Vec<MappingAnswer>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct MappingAnswer {
    pub dm_name: String,
    pub verdict: Verdict,
    pub summary: String,
    #[serde(default)]
    pub facts: VolumeAnswer,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// The SR and VDI a mapping stores (absent for names that are not a VDI's), and the rest of
/// its facts as they came.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct VolumeAnswer {
    // 0.1.0 members said `sr` and `vdi`: a pool mid-upgrade still reads them.
    #[serde(rename = "sr_uuid", alias = "sr")]
    pub sr: Option<String>,
    #[serde(rename = "vdi_uuid", alias = "vdi")]
    pub vdi: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}
