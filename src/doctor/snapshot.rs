//! Everything the doctor decides on, gathered once: every xapi record it reads, this host's
//! running domains (xenstore / xl) and what tapdisk serves. Checks are pure functions of this.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::command;
use crate::tapdisk::{self, TapdiskView};
use crate::xapi::records::{Host, HostMetrics, Pbd, Ref, Sr, Vbd, Vdi, Vm};
use crate::xapi::{Xapi, XapiError};

/// The domains running on this host, or why that is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Domains {
    Known {
        domids: BTreeSet<u32>,
        source: String,
    },
    /// Neither xenstore nor xl could be asked: no VM may be called domain-less.
    Unknown { why: String },
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub this_host: Option<Ref>,
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
    })
}

/// This host's domains from xenstore's /local/domain and from the toolstack (`xl list`). A
/// domain either source lists exists: a VM is called domain-less only when every source that
/// answered lacks it.
pub fn domains(timeout: Duration) -> Domains {
    let xenstore = command::run("xenstore-list", &["/local/domain"], timeout)
        .and_then(|o| o.success("xenstore-list"))
        .map(|o| {
            o.stdout
                .split_whitespace()
                .filter_map(|d| d.parse().ok())
                .collect()
        });
    let xl = command::run("xl", &["list"], timeout)
        .and_then(|o| o.success("xl"))
        .map(|o| parse_xl_list(&o.stdout));
    merge_domains(xenstore, xl)
}

fn merge_domains(
    xenstore: Result<BTreeSet<u32>, command::CommandError>,
    xl: Result<BTreeSet<u32>, command::CommandError>,
) -> Domains {
    match (xenstore, xl) {
        (Ok(a), Ok(b)) => Domains::Known {
            domids: a.union(&b).copied().collect(),
            source: "xenstore /local/domain and xl list".into(),
        },
        (Ok(a), Err(_)) => Domains::Known {
            domids: a,
            source: "xenstore /local/domain (xl unavailable)".into(),
        },
        (Err(_), Ok(b)) => Domains::Known {
            domids: b,
            source: "xl list (xenstore unavailable)".into(),
        },
        (Err(e1), Err(e2)) => Domains::Unknown {
            why: format!("{e1}; {e2}"),
        },
    }
}

/// Domain ids from `xl list` (header, then `Name ID Mem VCPUs State Time(s)`; names may
/// contain spaces, so the id is the fifth field from the end).
pub fn parse_xl_list(text: &str) -> BTreeSet<u32> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len().checked_sub(5).and_then(|i| f[i].parse().ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_either_source_lists_exists() {
        let none = || {
            Err(command::CommandError::NotFound {
                program: "x".into(),
            })
        };
        let d = merge_domains(Ok([0, 7].into()), Ok([0, 8].into()));
        assert!(matches!(d, Domains::Known { ref domids, .. } if *domids == [0, 7, 8].into()));
        assert!(matches!(
            merge_domains(none(), Ok([0].into())),
            Domains::Known { .. }
        ));
        assert!(matches!(
            merge_domains(none(), none()),
            Domains::Unknown { .. }
        ));
    }

    #[test]
    fn xl_list_gives_domids() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                    Domain-0                                     0  4096     8     r-----    1234.5\n\
                    my web vm                                    7  2048     2     -b----      12.0\n";
        assert_eq!(parse_xl_list(text), [0, 7].into());
    }
}
