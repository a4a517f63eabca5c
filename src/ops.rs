//! The operations dmheal offers — inspect, scan, heal, journal, restore — with results as
//! plain serialisable values. The CLI and the Python module both call these, so `--json`
//! and `dmheal._core` return the same content.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::Config;
use crate::dm::{DeviceMapper, KernelDm};
use crate::error::{Error, Result};
use crate::facts::{self, Facts, KernelSearch};
use crate::ids::{DmName, LvName, Target, Uuid};
use crate::journal::{Entry, Journal};
use crate::lvm;
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
        let d = verdict::decide(&facts);
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

#[derive(Clone, Debug, Default, Serialize)]
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

/// A host: its configuration and its device-mapper.
pub struct Host {
    pub config: Config,
    pub dm: Box<dyn DeviceMapper>,
}

impl Host {
    /// The real host: opens /dev/mapper/control.
    pub fn open(config: Config) -> Result<Self> {
        Ok(Host {
            config,
            dm: Box::new(KernelDm::open()?),
        })
    }

    /// The DM name a target stands for.
    pub fn resolve(&self, target: &Target) -> Result<DmName> {
        match target {
            Target::DmName(name) => Ok(name.clone()),
            Target::LvPath(vg, lv) => Ok(lvm::dm_name_for(vg, lv)?),
            Target::Vdi(vdi) => self.resolve_vdi(vdi),
        }
    }

    /// A VDI's LV: through xapi when it is there (its SR and type name the LV), else among the
    /// kernel's mappings (cheap), then among the SR LVs LVM knows.
    fn resolve_vdi(&self, vdi: &Uuid) -> Result<DmName> {
        if let Ok(Some(client)) = self.config.xapi.connect() {
            match crate::xapi::view::vdi_location(&client, vdi.as_str()) {
                Ok((sr_uuid, record)) => {
                    let vg =
                        crate::ids::VgName::new(&format!("{}{sr_uuid}", lvm::names::SR_VG_PREFIX))?;
                    let prefix = match record.sm_config.get("vdi_type").map(String::as_str) {
                        Some("aio") | Some("raw") => "LV-",
                        _ => "VHD-",
                    };
                    let lv = LvName::new(&format!("{prefix}{vdi}"))?;
                    return Ok(lvm::dm_name_for(&vg, &lv)?);
                }
                Err(e) if e.code() == Some("UUID_INVALID") => {
                    return Err(Error::VdiNotFound(vdi.to_string()))
                }
                Err(_) => {} // xapi not answering: resolve locally
            }
        }
        for listed in self.dm.list()? {
            let Ok(name) = DmName::new(&listed.name) else {
                continue;
            };
            if let Some(n) = lvm::split_dm_name(&name) {
                if n.layer.is_none()
                    && lvm::sr_of_vg(&n.vg).is_some()
                    && lvm::vdi_of_lv(&n.lv).as_ref() == Some(vdi)
                {
                    return Ok(name);
                }
            }
        }
        let records = self.config.lvs().all().map_err(|source| Error::Command {
            what: "listing logical volumes (lvs)",
            source,
        })?;
        for r in records {
            let (Ok(vg), Ok(lv)) = (crate::ids::VgName::new(&r.vg_name), LvName::new(&r.lv_name))
            else {
                continue;
            };
            if lvm::sr_of_vg(&vg).is_some() && lvm::vdi_of_lv(&lv).as_ref() == Some(vdi) {
                return Ok(lvm::dm_name_for(&vg, &lv)?);
            }
        }
        Err(Error::VdiNotFound(vdi.to_string()))
    }

    /// Facts and verdict for one name.
    pub fn inspect_name(&self, target: String, name: &DmName) -> Result<Inspection> {
        let mut facts = facts::gather(
            &self.config,
            self.dm.as_ref(),
            std::slice::from_ref(name),
            KernelSearch::Everywhere,
        )?;
        Ok(Inspection::new(target, facts.remove(0)))
    }

    pub fn inspect(&self, target: &Target) -> Result<Inspection> {
        let name = self.resolve(target)?;
        self.inspect_name(target.to_string(), &name)
    }

    /// Every SR-VG mapping in the kernel and every SR LV LVM knows, one pass per layer.
    pub fn scan(&self) -> Result<Scan> {
        let mut mappings = Vec::new();
        let summary = self.scan_each(&mut |m| {
            mappings.push(m);
            Ok(())
        })?;
        Ok(Scan {
            counts: summary.counts,
            mappings,
            inactive_lvs: summary.inactive_lvs,
            lvm_error: summary.lvm_error,
        })
    }

    /// `scan`, handing each mapping's inspection to `each` as soon as it is decided: memory
    /// stays flat at thousands of mappings (the CLI prints them as they come).
    pub fn scan_each(&self, each: &mut dyn FnMut(Inspection) -> Result<()>) -> Result<ScanSummary> {
        let clock = std::time::Instant::now();
        let mut names: Vec<DmName> = Vec::new();
        for listed in self.dm.list()? {
            let Ok(name) = DmName::new(&listed.name) else {
                continue; // not an LVM-charset name: certainly not an SR volume
            };
            if lvm::split_dm_name(&name).is_some_and(|n| lvm::sr_of_vg(&n.vg).is_some()) {
                names.push(name);
            }
        }
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "scan: listed");
        let mut gathered = facts::prepare(
            &self.config,
            self.dm.as_ref(),
            &names,
            KernelSearch::HoldersWhereOpen,
        )?;
        let lvm_error = gathered.report.failure.clone();

        // The SR LVs of those VGs that have no mapping: inactive, nothing to heal.
        let mapped: BTreeSet<&str> = names.iter().map(|n| n.as_str()).collect();
        let mut inactive_lvs = Vec::new();
        for r in &gathered.report.records {
            let (Ok(vg), Ok(lv)) = (crate::ids::VgName::new(&r.vg_name), LvName::new(&r.lv_name))
            else {
                continue;
            };
            if lvm::sr_of_vg(&vg).is_none() {
                continue;
            }
            if let Ok(name) = lvm::dm_name_for(&vg, &lv) {
                if !mapped.contains(name.as_str()) {
                    inactive_lvs.push(format!("/dev/{vg}/{lv}"));
                }
            }
        }
        let mut counts = ScanCounts {
            inactive_lvs: inactive_lvs.len(),
            ..Default::default()
        };
        for mut f in std::mem::take(&mut gathered.facts) {
            gathered.complete(&mut f)?;
            let m = Inspection::new(f.dm_name.to_string(), f);
            counts.mappings += 1;
            match m.verdict {
                Verdict::Ghost => counts.ghost += 1,
                Verdict::InUse => counts.in_use += 1,
                Verdict::Suspicious => counts.suspicious += 1,
                Verdict::Healthy => counts.healthy += 1,
                Verdict::Absent => {}
            }
            each(m)?;
        }
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "scan: decided");
        Ok(ScanSummary {
            counts,
            inactive_lvs,
            lvm_error,
        })
    }
}

/// The journal's entries (needs no device-mapper).
pub fn journal_entries(config: &Config) -> Result<Vec<Entry>> {
    Journal::new(&config.journal).entries()
}
