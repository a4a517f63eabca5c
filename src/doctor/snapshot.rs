//! Everything the doctor decides on, gathered once: every xapi record it reads, this host's
//! running domains (xenstore / xl) and their states, what tapdisk serves, SM's refcounts and the
//! volumes mapped here. Checks are pure functions of this.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::external_tool;
use crate::sm::Refcount;
use crate::tapdisk::{self, TapdiskView};
use crate::xapi::records::{Host, HostMetrics, Pbd, Pool, Ref, Sr, Vbd, Vdi, Vm};
use crate::xapi::{Xapi, XapiError};

/// The domains running on this host, or why that is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Domains {
    Known {
        domids: BTreeSet<u32>,
        /// `xl list`'s state column per domain (r running, b blocked, p paused, ...), where
        /// xl answered.
        states: BTreeMap<u32, String>,
        source: String,
    },
    /// Neither xenstore nor xl could be asked: no VM may be called domain-less.
    Unknown { why: String },
}

/// A volume mapped on this host, as the scan saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LocalMapping {
    pub dm_name: String,
    pub open_count: Option<i32>,
    pub verdict: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub this_host: Option<Ref>,
    pub pools: BTreeMap<Ref, Pool>,
    pub hosts: BTreeMap<Ref, Host>,
    pub live: BTreeMap<Ref, bool>,
    pub srs: BTreeMap<Ref, Sr>,
    pub pbds: BTreeMap<Ref, Pbd>,
    pub vdis: BTreeMap<Ref, Vdi>,
    pub vbds: BTreeMap<Ref, Vbd>,
    pub vms: BTreeMap<Ref, Vm>,
    #[serde(skip)]
    pub domains: Option<Domains>,
    /// Image paths tapdisk serves; None when tapdisk could not be asked.
    #[serde(skip)]
    pub tapdisk_paths: Option<Vec<String>>,
    /// SM's refcounts on this host: (SR, VDI, count).
    #[serde(skip)]
    pub refcounts: Vec<(String, String, Refcount)>,
    /// This host's mapped VDI volumes, by VDI uuid; None when device-mapper was not scanned.
    #[serde(skip)]
    pub mappings: Option<BTreeMap<String, Vec<LocalMapping>>>,
}

impl Snapshot {
    pub fn is_live(&self, host: &str) -> bool {
        self.live.get(host).copied().unwrap_or(false)
    }

    /// Whether any tapdisk serves this VDI (its uuid in an image path). None: unknown.
    pub fn tapdisk_serves(&self, vdi_uuid: &str) -> Option<bool> {
        self.tapdisk_paths
            .as_ref()
            .map(|paths| paths.iter().any(|p| p.contains(vdi_uuid)))
    }

    /// Whether a mapping of this VDI's volume is open on this host. None: not scanned.
    pub fn mapping_open(&self, vdi_uuid: &str) -> Option<bool> {
        self.mappings.as_ref().map(|m| {
            m.get(vdi_uuid)
                .is_some_and(|ms| ms.iter().any(|x| x.open_count.is_none_or(|n| n > 0)))
        })
    }

    /// The VMs resident on `host` that have `vdi_ref` attached (VBD currently_attached).
    pub fn attached_on(&self, vdi_ref: &str, host: &str) -> Vec<&Vm> {
        self.vbds
            .values()
            .filter(|b| b.vdi == vdi_ref && b.currently_attached)
            .filter_map(|b| self.vms.get(&b.vm))
            .filter(|vm| vm.resident_on == host)
            .collect()
    }
}

/// Read the pool from xapi and this host's local facts.
pub fn gather(
    xapi: &Xapi,
    this_host_uuid: Option<&str>,
    tap_ctl: &str,
    tool_timeout: Duration,
) -> Result<Snapshot, XapiError> {
    let hosts: BTreeMap<Ref, Host> = xapi.call("host.get_all_records", vec![])?;
    let metrics: BTreeMap<Ref, HostMetrics> = xapi.call("host_metrics.get_all_records", vec![])?;
    let live = hosts
        .iter()
        .map(|(r, h)| (r.clone(), metrics.get(&h.metrics).is_some_and(|m| m.live)))
        .collect();
    let this_host = this_host_uuid.and_then(|u| {
        hosts
            .iter()
            .find(|(_, h)| h.uuid == u)
            .map(|(r, _)| r.clone())
    });
    Ok(Snapshot {
        this_host,
        pools: xapi.call("pool.get_all_records", vec![])?,
        hosts,
        live,
        srs: xapi.call("SR.get_all_records", vec![])?,
        pbds: xapi.call("PBD.get_all_records", vec![])?,
        vdis: xapi.call("VDI.get_all_records", vec![])?,
        vbds: xapi.call("VBD.get_all_records", vec![])?,
        vms: xapi.call("VM.get_all_records", vec![])?,
        domains: Some(domains(tool_timeout)),
        tapdisk_paths: match tapdisk::list(tap_ctl, tool_timeout) {
            TapdiskView::Listed { tapdisks } => {
                Some(tapdisks.into_iter().filter_map(|t| t.path).collect())
            }
            // No tap-ctl: not a dom0, so no tapdisk serves anything here.
            TapdiskView::NotInstalled => Some(Vec::new()),
            TapdiskView::Failed { .. } => None,
        },
        refcounts: Vec::new(),
        mappings: None,
    })
}

/// This host's domains from xenstore's /local/domain and from the toolstack (`xl list`). A
/// domain either source lists exists: a VM is called domain-less only when every source that
/// answered lacks it.
pub fn domains(timeout: Duration) -> Domains {
    let xenstore = external_tool::run("xenstore-list", &["/local/domain"], timeout)
        .and_then(|o| o.success("xenstore-list"))
        .map(|o| {
            o.stdout
                .split_whitespace()
                .filter_map(|d| d.parse().ok())
                .collect()
        });
    let xl = external_tool::run("xl", &["list"], timeout)
        .and_then(|o| o.success("xl"))
        .map(|o| parse_xl_states(&o.stdout));
    merge_domains(xenstore, xl)
}

fn merge_domains(
    xenstore: Result<BTreeSet<u32>, external_tool::CommandError>,
    xl: Result<BTreeMap<u32, String>, external_tool::CommandError>,
) -> Domains {
    match (xenstore, xl) {
        (Ok(a), Ok(b)) => Domains::Known {
            domids: a.union(&b.keys().copied().collect()).copied().collect(),
            states: b,
            source: "xenstore /local/domain and xl list".into(),
        },
        (Ok(a), Err(_)) => Domains::Known {
            domids: a,
            states: BTreeMap::new(),
            source: "xenstore /local/domain (xl unavailable)".into(),
        },
        (Err(_), Ok(b)) => Domains::Known {
            domids: b.keys().copied().collect(),
            states: b,
            source: "xl list (xenstore unavailable)".into(),
        },
        (Err(e1), Err(e2)) => Domains::Unknown {
            why: format!("{e1}; {e2}"),
        },
    }
}

/// Domain ids and states from `xl list` (header, then `Name ID Mem VCPUs State Time(s)`;
/// names may contain spaces, so the id is the fifth field from the end, the state the second).
pub fn parse_xl_states(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let id = f.len().checked_sub(5).and_then(|i| f[i].parse().ok())?;
            Some((id, f[f.len() - 2].to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_either_source_lists_exists() {
        fn none<T>() -> Result<T, external_tool::CommandError> {
            Err(external_tool::CommandError::NotFound {
                program: "x".into(),
            })
        }
        let xl = |ids: &[u32]| -> Result<BTreeMap<u32, String>, external_tool::CommandError> {
            Ok(ids.iter().map(|i| (*i, "r-----".to_string())).collect())
        };
        let d = merge_domains(Ok([0, 7].into()), xl(&[0, 8]));
        assert!(matches!(d, Domains::Known { ref domids, .. } if *domids == [0, 7, 8].into()));
        assert!(matches!(
            merge_domains(none(), xl(&[0])),
            Domains::Known { .. }
        ));
        assert!(matches!(
            merge_domains(none(), none()),
            Domains::Unknown { .. }
        ));
    }

    #[test]
    fn xl_list_gives_domids_and_states() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                    Domain-0                                     0  4096     8     r-----    1234.5\n\
                    my web vm                                    7  2048     2     --p---      12.0\n";
        let states = parse_xl_states(text);
        assert_eq!(states.keys().copied().collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!(states[&7], "--p---");
    }
}
