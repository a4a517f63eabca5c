//! Asking many hosts at once through xapi's `host.call_plugin`: every host that is not down on
//! its own thread and connection, each bounded by the same per-host deadline, so the whole
//! answer takes about the slowest host's time (or the bound, for a host that hangs) — never
//! the sum. A host in maintenance mode (disabled, but live) is asked like any other: its
//! mappings and domains are as real as anyone's. A host that is down, fails or times out is
//! reported as such, never fatal; every answer says the host's state and product version.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::records::{Host, HostMetrics, NULL_REF};
use super::transport::TransportError;
use super::{Xapi, XapiError};

/// The plugin dmheal installs on every host (/etc/xapi.d/plugins/dmheal).
pub const PLUGIN: &str = "dmheal";

/// A host's state as xapi records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Enabled and live.
    Live,
    /// Disabled (maintenance mode, or being evacuated) but live: asked like any other.
    Disabled,
    /// Its metrics say it is not live: not asked.
    Down,
    /// Its record does not say whether it is enabled or live (fields missing): asked anyway,
    /// and the answer says what happened.
    Unknown,
}

impl HostState {
    pub fn of(host: &Host, metrics: &BTreeMap<String, HostMetrics>) -> HostState {
        let live = (host.metrics != NULL_REF && !host.metrics.is_empty())
            .then(|| metrics.get(&host.metrics).map(|m| m.live))
            .flatten();
        match (live, host.enabled) {
            (Some(false), _) => HostState::Down,
            (Some(true), Some(true)) => HostState::Live,
            (Some(true), Some(false)) => HostState::Disabled,
            (None, _) | (Some(true), None) => HostState::Unknown,
        }
    }

    /// In words, for tables and messages.
    pub fn said(self) -> &'static str {
        match self {
            HostState::Live => "live",
            HostState::Disabled => "disabled (maintenance mode) but live",
            HostState::Down => "down",
            HostState::Unknown => "state unknown (its record lacks enabled or metrics)",
        }
    }
}

/// A host of the pool, as xapi names it.
#[derive(Clone, Debug, Serialize)]
pub struct PoolHost {
    #[serde(skip)]
    pub host_ref: String,
    pub host_uuid: String,
    pub host_name: String,
    pub state: HostState,
    /// The product and version it runs ("XCP-ng 8.3.0"), when its record says.
    pub version: Option<String>,
}

impl PoolHost {
    /// Whether it is asked: every host that is not down.
    pub fn asked(&self) -> bool {
        self.state != HostState::Down
    }
}

/// Every host of the pool, sorted by name, each with its state.
pub fn pool_hosts(client: &Xapi) -> Result<Vec<PoolHost>, XapiError> {
    let hosts: BTreeMap<String, Host> = client.call("host.get_all_records", vec![])?;
    let metrics: BTreeMap<String, HostMetrics> =
        client.call("host_metrics.get_all_records", vec![])?;
    let mut all: Vec<PoolHost> = hosts
        .into_iter()
        .map(|(host_ref, h)| PoolHost {
            state: HostState::of(&h, &metrics),
            version: h.product_version(),
            host_name: h.display_name(),
            host_uuid: h.uuid,
            host_ref,
        })
        .collect();
    all.sort_by(|a, b| a.host_name.cmp(&b.host_name));
    Ok(all)
}

/// Whether a host was asked, and how that went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AskStatus {
    /// Asked, and it answered.
    Asked,
    /// Down: not asked.
    Skipped,
    /// Asked, and it, xapi or the plugin failed, or it did not answer in time.
    Failed,
}

/// One host's part of a pool-wide answer (pool scan, vm, doctor): the same shape for all.
#[derive(Clone, Debug, Serialize)]
pub struct HostAnswer<T> {
    pub host_uuid: String,
    pub host_name: String,
    pub state: HostState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub status: AskStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the host's plugin answered, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<T>,
}

impl<T: serde::de::DeserializeOwned> HostAnswer<T> {
    /// `host`'s reply read as a `T` (`what`: what the function answers, for the message when
    /// the answer is something else).
    pub fn of(host: PoolHost, reply: Reply, what: &str) -> Self {
        let (status, error, answer) = match reply.decode::<T>(what) {
            Decoded::Answered(t) => (AskStatus::Asked, None, Some(t)),
            Decoded::Skipped(why) => (AskStatus::Skipped, Some(why), None),
            Decoded::Failed(why) => (AskStatus::Failed, Some(why), None),
        };
        HostAnswer {
            host_uuid: host.host_uuid,
            host_name: host.host_name,
            state: host.state,
            version: host.version,
            status,
            error,
            answer,
        }
    }
}

impl<T> HostAnswer<T> {
    /// The same host with its answer kept to what the caller asked (`f`).
    pub fn map(self, f: impl FnOnce(T) -> T) -> Self {
        HostAnswer {
            answer: self.answer.map(f),
            ..self
        }
    }
}

/// How many hosts were asked, skipped and failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AskCounts {
    pub hosts: usize,
    pub asked: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl AskCounts {
    pub fn of<T>(answers: &[HostAnswer<T>]) -> Self {
        let n = |s: AskStatus| answers.iter().filter(|a| a.status == s).count();
        AskCounts {
            hosts: answers.len(),
            asked: n(AskStatus::Asked),
            skipped: n(AskStatus::Skipped),
            failed: n(AskStatus::Failed),
        }
    }
}

/// What one host answered.
#[derive(Clone, Debug)]
pub enum Reply {
    /// The plugin's answer (a JSON string), parsed.
    Answered(Value),
    /// Not asked: the host is down.
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
            // Through the text, not `from_value`: maps keyed by numbers (domain ids) are
            // JSON objects with string keys, which only the text deserializer reads back.
            Reply::Answered(v) => match serde_json::from_str(&v.to_string()) {
                Ok(t) => Decoded::Answered(t),
                Err(e) => Decoded::Failed(format!("the plugin's answer is not {what}: {e}")),
            },
        }
    }
}

impl Reply {
    /// A failure in words an administrator can act on: a host without the plugin is a host
    /// where dmheal is not installed (say how to install it); a host whose plugin could not
    /// run dmheal says its version.
    fn said_for(self, h: &PoolHost) -> Reply {
        match self {
            Reply::Failed { code, .. } if code.as_deref() == Some("XENAPI_MISSING_PLUGIN") => {
                Reply::Failed {
                    why: format!(
                        "dmheal is not installed on {} ({}): install it there (yum install ./dmheal-{}-1.x86_64.rpm) and ask again",
                        h.host_name,
                        h.version.as_deref().unwrap_or("version unknown"),
                        env!("CARGO_PKG_VERSION")
                    ),
                    code,
                }
            }
            other => other,
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
    // Hosts answer in any order: progress counts answers as they come (host n of N).
    let total = hosts.iter().filter(|h| h.asked()).count();
    let answered = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<Option<thread::JoinHandle<Reply>>> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if !h.asked() {
                return None;
            }
            let c = Xapi::new(client.endpoint.clone(), per_host).with_session(session.clone());
            let call = json!([h.host_ref, PLUGIN, function, args(i, h)]);
            let function = function.to_string();
            let (answered, name) = (answered.clone(), h.host_name.clone());
            Some(thread::spawn(move || {
                let Value::Array(params) = call else {
                    unreachable!()
                };
                let reply = c.call::<String>("host.call_plugin", params);
                let n = answered.fetch_add(1, Ordering::Relaxed) + 1;
                crate::progress::report("host", n, total, &format!("{name} answered"));
                match reply {
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
                        why: e.chain(),
                    },
                }
            }))
        })
        .collect();
    let replies: Vec<Reply> = hosts
        .iter()
        .zip(jobs)
        .map(|(h, job)| match job {
            None => Reply::Skipped("the host is down"),
            Some(job) => job
                .join()
                .unwrap_or_else(|_| Reply::Failed {
                    code: None,
                    why: "dmheal failed internally asking it".into(),
                })
                .said_for(h),
        })
        .collect();
    crate::progress::done();
    replies
}
