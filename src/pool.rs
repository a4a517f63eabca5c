//! Pool-wide scan, run on the master: xapi's own fan-out. Every enabled, live host runs the
//! dmheal plugin's `scan` through `host.call_plugin`; the answers are merged into one report.
//! A host that is down, fails or times out is listed as such — never fatal.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::results::ScanAnswer;
use crate::xapi::records::{Host, HostMetrics, NULL_REF};
use crate::xapi::{view::error_chain, Xapi};

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostStatus {
    Scanned,
    /// Disabled in xapi, or not live: not asked.
    Skipped,
    /// Asked, and the plugin or the host failed (the error says how).
    Failed,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostScan {
    pub host_uuid: String,
    pub name_label: String,
    pub status: HostStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The host's own `dmheal scan` result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanAnswer>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolCounts {
    pub hosts: usize,
    pub scanned: usize,
    pub skipped: usize,
    pub failed: usize,
    pub ghost: usize,
    pub in_use: usize,
    pub suspicious: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolScan {
    pub counts: PoolCounts,
    pub hosts: Vec<HostScan>,
}

pub const PLUGIN: &str = "dmheal";

/// Scan every host of the pool. `per_host` bounds each host's answer.
pub fn pool_scan(config: &Config, per_host: Duration) -> Result<PoolScan> {
    let xapi_err = |what: &'static str| {
        move |e: crate::xapi::XapiError| Error::Xapi {
            what,
            why: error_chain(&e),
        }
    };
    let client = config.xapi.require("pool scan")?;
    let hosts: BTreeMap<String, Host> = client
        .call("host.get_all_records", vec![])
        .map_err(xapi_err("listing hosts"))?;

    let mut jobs = Vec::new();
    let mut results = Vec::new();
    for (host_ref, host) in hosts {
        let live = host.metrics != NULL_REF
            && client
                .call::<HostMetrics>("host_metrics.get_record", vec![json!(host.metrics)])
                .map(|m| m.live)
                .unwrap_or(false);
        if !host.enabled || !live {
            results.push(HostScan {
                host_uuid: host.uuid,
                name_label: host.name_label,
                status: HostStatus::Skipped,
                error: Some(if host.enabled { "not live" } else { "disabled" }.into()),
                scan: None,
            });
            continue;
        }
        // Each host on its own thread and connection, so one slow host delays nobody.
        let endpoint = client.endpoint.clone();
        let session = client.session().map(str::to_string).unwrap_or_default();
        jobs.push(thread::spawn(move || {
            let c = Xapi::new(endpoint, per_host).with_session(session);
            let answer: std::result::Result<String, _> = c.call(
                "host.call_plugin",
                vec![json!(host_ref), json!(PLUGIN), json!("scan"), json!({})],
            );
            let (status, error, scan) = match answer {
                Ok(text) => match serde_json::from_str::<ScanAnswer>(&text) {
                    Ok(v) => (HostStatus::Scanned, None, Some(v)),
                    Err(e) => (
                        HostStatus::Failed,
                        Some(format!("plugin answered something that is not a scan: {e}")),
                        None,
                    ),
                },
                Err(e) => (HostStatus::Failed, Some(error_chain(&e)), None),
            };
            HostScan {
                host_uuid: host.uuid,
                name_label: host.name_label,
                status,
                error,
                scan,
            }
        }));
    }
    for job in jobs {
        results.push(job.join().expect("host scan thread panicked"));
    }
    results.sort_by(|a, b| a.name_label.cmp(&b.name_label));

    let mut counts = PoolCounts {
        hosts: results.len(),
        ..Default::default()
    };
    for h in &results {
        match h.status {
            HostStatus::Scanned => counts.scanned += 1,
            HostStatus::Skipped => counts.skipped += 1,
            HostStatus::Failed => counts.failed += 1,
        }
        if let Some(s) = &h.scan {
            counts.ghost += s.counts.ghost;
            counts.in_use += s.counts.in_use;
            counts.suspicious += s.counts.suspicious;
        }
    }
    Ok(PoolScan {
        counts,
        hosts: results,
    })
}
