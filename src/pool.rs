//! Pool-wide scan, run on the master (or any host: a member forwards to it): xapi's own
//! fan-out (`xapi::fanout`). Every host that is not down runs the dmheal plugin's `scan`; the
//! answers are merged into one report that names each ghost and suspicious mapping with its
//! host, SR, VDI and the VMs whose disks it is. A host that is down, fails or times out is
//! listed as such — never fatal.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::heal_all::{BatchCounts, BatchOutcome};
use crate::results::ScanAnswer;
use crate::verdict::Verdict;
use crate::xapi::fanout::{self, AskCounts, HostAnswer};
use crate::xapi::records::{Vbd, Vdi, Vm};
use crate::xapi::Xapi;

pub use crate::xapi::fanout::PLUGIN;

/// One host's part: its state, version, and its own `dmheal scan` answer.
pub type HostScan = HostAnswer<ScanAnswer>;

/// A VM whose VBD uses a VDI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmName {
    pub uuid: String,
    pub name_label: String,
    pub power_state: String,
}

/// A ghost or suspicious mapping somewhere in the pool, named.
#[derive(Clone, Debug, Serialize)]
pub struct PoolFinding {
    pub host_uuid: String,
    pub host_name: String,
    pub verdict: Verdict,
    pub dm_name: String,
    pub sr_uuid: Option<String>,
    pub vdi_uuid: Option<String>,
    /// The VDI's name-label in xapi (None: not a VDI's volume, or xapi does not know it).
    pub vdi_name: Option<String>,
    /// The VMs whose VBDs use the VDI.
    pub vms: Vec<VmName>,
    pub summary: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolCounts {
    #[serde(flatten)]
    pub hosts: AskCounts,
    pub ghost: usize,
    pub in_use: usize,
    pub suspicious: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolScan {
    /// Ghosts first, then suspicious mappings, each named.
    pub findings: Vec<PoolFinding>,
    pub hosts: Vec<HostScan>,
    pub counts: PoolCounts,
}

/// Scan every host of the pool. `per_host` bounds each host's answer.
pub fn pool_scan(config: &Config, per_host: Duration) -> Result<PoolScan> {
    let client = config.xapi.require("pool scan")?;
    let hosts =
        fanout::pool_hosts(&client).map_err(crate::xapi::XapiError::failing("listing hosts"))?;
    let replies = fanout::call_each(&client, &hosts, "scan", &|_, _| BTreeMap::new(), per_host);
    let results: Vec<HostScan> = hosts
        .into_iter()
        .zip(replies)
        .map(|(h, reply)| HostAnswer::of(h, reply, "a scan"))
        .collect();

    let mut counts = PoolCounts {
        hosts: AskCounts::of(&results),
        ..Default::default()
    };
    for h in &results {
        if let Some(s) = &h.answer {
            counts.ghost += s.counts.ghost;
            counts.in_use += s.counts.in_use;
            counts.suspicious += s.counts.suspicious;
        }
    }
    let findings = name_findings(&client, &results);
    Ok(PoolScan {
        findings,
        hosts: results,
        counts,
    })
}

/// The ghost and suspicious mappings of every host's scan, each with its VDI's name and the
/// VMs using it (asked of xapi only when there is something to name; if xapi cannot say, the
/// findings stand without the names).
fn name_findings(client: &Xapi, results: &[HostScan]) -> Vec<PoolFinding> {
    let mut findings: Vec<PoolFinding> = results
        .iter()
        .filter_map(|h| h.answer.as_ref().map(|s| (h, s)))
        .flat_map(|(h, s)| {
            s.mappings
                .iter()
                .filter(|m| matches!(m.verdict, Verdict::Ghost | Verdict::Suspicious))
                .map(move |m| PoolFinding {
                    host_uuid: h.host_uuid.clone(),
                    host_name: h.host_name.clone(),
                    verdict: m.verdict,
                    dm_name: m.dm_name.clone(),
                    sr_uuid: m.facts.sr.clone(),
                    vdi_uuid: m.facts.vdi.clone(),
                    vdi_name: None,
                    vms: Vec::new(),
                    summary: m.summary.clone(),
                })
        })
        .collect();
    findings.sort_by_key(|f| {
        (
            f.verdict != Verdict::Ghost,
            f.host_name.clone(),
            f.dm_name.clone(),
        )
    });
    if findings.iter().all(|f| f.vdi_uuid.is_none()) {
        return findings;
    }
    let names = VdiNames::read(client);
    if let Some(names) = names {
        for f in &mut findings {
            if let Some(v) = f.vdi_uuid.as_deref() {
                (f.vdi_name, f.vms) = names.of(v);
            }
        }
    }
    findings
}

/// Each VDI's name and the VMs whose VBDs use it, from xapi's records.
pub struct VdiNames {
    vdis: BTreeMap<String, Vdi>,
    vbds: BTreeMap<String, Vbd>,
    vms: BTreeMap<String, Vm>,
    by_uuid: BTreeMap<String, String>,
}

impl VdiNames {
    pub fn read(client: &Xapi) -> Option<Self> {
        let vdis: BTreeMap<String, Vdi> = client.call("VDI.get_all_records", vec![]).ok()?;
        let vbds = client.call("VBD.get_all_records", vec![]).ok()?;
        let vms = client.call("VM.get_all_records", vec![]).ok()?;
        let by_uuid = vdis
            .iter()
            .map(|(r, v)| (v.uuid.clone(), r.clone()))
            .collect();
        Some(VdiNames {
            vdis,
            vbds,
            vms,
            by_uuid,
        })
    }

    /// The VDI's name-label and the (non-template) VMs using it.
    pub fn of(&self, vdi_uuid: &str) -> (Option<String>, Vec<VmName>) {
        let Some(vdi_ref) = self.by_uuid.get(vdi_uuid) else {
            return (None, Vec::new());
        };
        let name = self.vdis.get(vdi_ref).map(|v| v.name_label.clone());
        let mut vms: Vec<VmName> = self
            .vbds
            .values()
            .filter(|b| &b.vdi == vdi_ref)
            .filter_map(|b| self.vms.get(&b.vm))
            .filter(|vm| !vm.is_a_template && !vm.is_a_snapshot)
            .map(|vm| VmName {
                uuid: vm.uuid.clone(),
                name_label: vm.name_label.clone(),
                power_state: vm.power_state.clone(),
            })
            .collect();
        vms.sort_by(|a, b| a.name_label.cmp(&b.name_label));
        vms.dedup();
        (name, vms)
    }
}

/// One host's part of a pool heal: its state, version and its own `heal --all` answer.
pub type HostHeal = HostAnswer<BatchOutcome>;

#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolHealCounts {
    /// The hosts: asked, skipped, failed (as `pool scan` counts them).
    #[serde(flatten)]
    pub hosts: AskCounts,
    /// The sum of the answering hosts' batches.
    pub batch: BatchCounts,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolHeal {
    pub apply: bool,
    pub hosts: Vec<HostHeal>,
    pub counts: PoolHealCounts,
}

/// `heal --all` on every host that is up, through the plugin's `heal_all`, all at once, each
/// host bounded by `per_host` (and each deciding and journalling for itself, under its own
/// locks). A host that is down, fails or does not answer in time is said as such.
pub fn pool_heal(config: &Config, apply: bool, per_host: Duration) -> Result<PoolHeal> {
    let client = config.xapi.require("pool heal")?;
    let hosts =
        fanout::pool_hosts(&client).map_err(crate::xapi::XapiError::failing("listing hosts"))?;
    // Each host stops starting removals a little before the master stops waiting for it, so
    // that what it did is in its answer rather than lost to the master's timeout.
    let budget = format!("{:.3}", per_host.as_secs_f64() * 0.9);
    let args = |_: usize, _: &fanout::PoolHost| {
        BTreeMap::from([
            ("apply".to_string(), apply.to_string()),
            ("budget".to_string(), budget.clone()),
        ])
    };
    let replies = fanout::call_each(&client, &hosts, "heal_all", &args, per_host);
    let results: Vec<HostHeal> = hosts
        .into_iter()
        .zip(replies)
        .map(|(h, reply)| HostAnswer::of(h, reply, "a batch heal"))
        .collect();
    let mut counts = PoolHealCounts {
        hosts: AskCounts::of(&results),
        ..Default::default()
    };
    for b in results.iter().filter_map(|h| h.answer.as_ref()) {
        counts.batch.add(&b.counts);
    }
    Ok(PoolHeal {
        apply,
        hosts: results,
        counts,
    })
}
