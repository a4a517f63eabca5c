//! Asking many hosts at once through xapi's `host.call_plugin`: every enabled, live host on its
//! own thread and connection, each bounded by the same per-host deadline, so the whole answer
//! takes about the slowest live host's time (or the bound, for a host that hangs) — never the
//! sum. A host that is down, fails or times out is reported as such, never fatal.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::records::{Host, HostMetrics, NULL_REF};
use super::transport::TransportError;
use super::{view::error_chain, Xapi, XapiError};

/// The plugin dmheal installs on every host (/etc/xapi.d/plugins/dmheal).
pub const PLUGIN: &str = "dmheal";

/// A host of the pool, as xapi names it.
#[derive(Clone, Debug, Serialize)]
pub struct PoolHost {
    #[serde(skip)]
    pub host_ref: String,
    pub host_uuid: String,
    pub name_label: String,
    /// Why it is not asked (disabled, not live), if it is not.
    #[serde(skip)]
    pub skip: Option<&'static str>,
}

/// Every host of the pool, sorted by name, each with whether it can be asked.
pub fn pool_hosts(client: &Xapi) -> Result<Vec<PoolHost>, XapiError> {
    let hosts: BTreeMap<String, Host> = client.call("host.get_all_records", vec![])?;
    let metrics: BTreeMap<String, HostMetrics> =
        client.call("host_metrics.get_all_records", vec![])?;
    let mut all: Vec<PoolHost> = hosts
        .into_iter()
        .map(|(host_ref, h)| {
            let live = h.metrics != NULL_REF && metrics.get(&h.metrics).is_some_and(|m| m.live);
            let skip = if !h.enabled {
                Some("disabled")
            } else if !live {
                Some("not live")
            } else {
                None
            };
            PoolHost {
                host_ref,
                host_uuid: h.uuid,
                name_label: h.name_label,
                skip,
            }
        })
        .collect();
    all.sort_by(|a, b| a.name_label.cmp(&b.name_label));
    Ok(all)
}

/// What one host answered.
#[derive(Clone, Debug)]
pub enum Reply {
    /// The plugin's answer (a JSON string), parsed.
    Answered(Value),
    /// Not asked: disabled or not live.
    Skipped(&'static str),
    /// Asked, and the host, xapi or the plugin failed (said in full), or it did not answer
    /// in time. `code`: the xapi or plugin error code, when there was one (DMHEAL_UNSAFE ...).
    Failed { code: Option<String>, why: String },
}

/// A reply read as the answer one plugin function gives.
pub enum Decoded<T> {
    Answered(T),
    /// Not asked (why).
    Skipped(String),
    /// Asked, and it failed, or answered something else (said).
    Failed(String),
}

impl Reply {
    /// This reply as a `T` (`what`: what the function answers, for the message when the
    /// answer is something else).
    pub fn decode<T: serde::de::DeserializeOwned>(self, what: &str) -> Decoded<T> {
        match self {
            Reply::Skipped(why) => Decoded::Skipped(why.to_string()),
            Reply::Failed { why, .. } => Decoded::Failed(why),
            Reply::Answered(v) => match serde_json::from_value(v) {
                Ok(t) => Decoded::Answered(t),
                Err(e) => Decoded::Failed(format!("the plugin's answer is not {what}: {e}")),
            },
        }
    }
}

/// Call `function` of the dmheal plugin on each host with `args(i, host)` (string values, as
/// xapi's plugin map), all at once, each bounded by `per_host`. Replies in the hosts' order (a
/// host may be listed more than once: one call each).
pub fn call_each(
    client: &Xapi,
    hosts: &[PoolHost],
    function: &str,
    args: &dyn Fn(usize, &PoolHost) -> BTreeMap<String, String>,
    per_host: Duration,
) -> Vec<Reply> {
    let session = client.session().map(str::to_string).unwrap_or_default();
    let jobs: Vec<Option<thread::JoinHandle<Reply>>> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if h.skip.is_some() {
                return None;
            }
            let c = Xapi::new(client.endpoint.clone(), per_host).with_session(session.clone());
            let call = json!([h.host_ref, PLUGIN, function, args(i, h)]);
            let function = function.to_string();
            Some(thread::spawn(move || {
                let Value::Array(params) = call else {
                    unreachable!()
                };
                match c.call::<String>("host.call_plugin", params) {
                    Ok(text) => match serde_json::from_str::<Value>(&text) {
                        Ok(v) => Reply::Answered(v),
                        Err(e) => Reply::Failed {
                            code: None,
                            why: format!("the plugin answered non-JSON: {e}"),
                        },
                    },
                    // xapi waits for the host's plugin: a call that runs out of time is the
                    // host not answering, not xapi.
                    Err(XapiError::Unreachable(TransportError::Timeout { seconds, .. })) => {
                        Reply::Failed {
                            code: None,
                            why: format!(
                                "the host did not answer within {seconds} s (host.call_plugin {function})"
                            ),
                        }
                    }
                    Err(e) => Reply::Failed {
                        code: e.code().map(str::to_string),
                        why: error_chain(&e),
                    },
                }
            }))
        })
        .collect();
    hosts
        .iter()
        .zip(jobs)
        .map(|(h, job)| match (h.skip, job) {
            (Some(why), _) => Reply::Skipped(why),
            (None, Some(job)) => job.join().unwrap_or_else(|_| Reply::Failed {
                code: None,
                why: "dmheal failed internally asking it".into(),
            }),
            (None, None) => unreachable!("a host asked has a job"),
        })
        .collect()
}
