//! Everything the doctor decides on, gathered once: every xapi record it reads; from every
//! host that is not down, its survey (what its storage says about SRs, its domains, what its
//! tapdisks serve: this host's read directly, the others' through the plugin); SM's refcounts
//! and the volumes mapped here. Checks are pure functions of this.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::survey::Survey;
use crate::domains::Domains;
use crate::sm::Refcount;
use crate::xapi::fanout::{self, AskStatus, HostAnswer, HostState, PoolHost};
use crate::xapi::records::{Host, HostMetrics, Message, Pbd, Pool, Ref, Sr, Vbd, Vdi, Vm};
use crate::xapi::{Xapi, XapiError};

/// What one host told the doctor about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HostSurvey {
    /// Its survey (this host's, read directly).
    Answered(Survey),
    /// Not asked: the host is down.
    Skipped { why: String },
    /// Asked, and it, xapi or the plugin failed, or it did not answer in time.
    Failed { why: String },
}

impl HostSurvey {
    pub fn survey(&self) -> Option<&Survey> {
        match self {
            HostSurvey::Answered(s) => Some(s),
            _ => None,
        }
    }

    /// Why there is no survey, if there is none.
    pub fn why_not(&self) -> Option<&str> {
        match self {
            HostSurvey::Answered(_) => None,
            HostSurvey::Skipped { why } | HostSurvey::Failed { why } => Some(why),
        }
    }
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
    /// Each host's state (live, disabled but live, down, unknown).
    pub states: BTreeMap<Ref, HostState>,
    pub srs: BTreeMap<Ref, Sr>,
    pub pbds: BTreeMap<Ref, Pbd>,
    pub vdis: BTreeMap<Ref, Vdi>,
    pub vbds: BTreeMap<Ref, Vbd>,
    pub vms: BTreeMap<Ref, Vm>,
    /// xapi's messages (alarms among them); empty when they could not be read.
    #[serde(skip)]
    pub messages: BTreeMap<Ref, Message>,
    /// Why the messages could not be read, if they could not.
    #[serde(skip)]
    pub messages_unread: Option<String>,
    /// This host's domains; None when this host is unknown to xapi.
    #[serde(skip)]
    pub domains: Option<Domains>,
    /// Image paths this host's tapdisks serve; None when tapdisk could not be asked.
    #[serde(skip)]
    pub tapdisk_paths: Option<Vec<String>>,
    /// Every other host's survey, and this host's, by host ref.
    #[serde(skip)]
    pub surveys: BTreeMap<Ref, HostSurvey>,
    /// Every host as asked: state, version, and its survey or why there is none (the report's
    /// hosts, in the shape pool scan and `vm` give them).
    #[serde(skip)]
    pub asked: Vec<HostAnswer<Survey>>,
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

    /// Whether any tapdisk on this host serves this VDI (its uuid in an image path). None:
    /// unknown.
    pub fn tapdisk_serves(&self, vdi_uuid: &str) -> Option<bool> {
        self.tapdisk_paths
            .as_ref()
            .map(|paths| paths.iter().any(|p| p.contains(vdi_uuid)))
    }

    /// Whether any tapdisk on `host` serves this VDI. None: unknown.
    pub fn tapdisk_serves_on(&self, host: &str, vdi_uuid: &str) -> Option<bool> {
        if Some(host) == self.this_host.as_deref() {
            return self.tapdisk_serves(vdi_uuid);
        }
        let paths = self.surveys.get(host)?.survey()?.tapdisk_paths.as_ref()?;
        Some(paths.iter().any(|p| p.contains(vdi_uuid)))
    }

    /// `host`'s domains, when they are known.
    pub fn domains_on(&self, host: &str) -> Option<&Domains> {
        if Some(host) == self.this_host.as_deref() {
            return self.domains.as_ref();
        }
        self.surveys.get(host)?.survey().map(|s| &s.domains)
    }

    /// A host's name as it is shown.
    pub fn host_name(&self, host: &str) -> String {
        self.hosts
            .get(host)
            .map(Host::display_name)
            .unwrap_or_else(|| "<not in database>".into())
    }

    pub fn state(&self, host: &str) -> Option<HostState> {
        self.states.get(host).copied()
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

/// Read the pool from xapi; this host's survey (`local`, read directly), and every other host's
/// that is not down, through the plugin, each bounded by `per_host`.
pub fn gather(
    xapi: &Xapi,
    this_host_uuid: Option<&str>,
    local: Survey,
    per_host: Duration,
) -> Result<Snapshot, XapiError> {
    let hosts: BTreeMap<Ref, Host> = xapi.call("host.get_all_records", vec![])?;
    let metrics: BTreeMap<Ref, HostMetrics> = xapi.call("host_metrics.get_all_records", vec![])?;
    let states: BTreeMap<Ref, HostState> = hosts
        .iter()
        .map(|(r, h)| (r.clone(), HostState::of(h, &metrics)))
        .collect();
    let live = states
        .iter()
        .map(|(r, s)| {
            (
                r.clone(),
                matches!(s, HostState::Live | HostState::Disabled),
            )
        })
        .collect();
    let this_host = this_host_uuid.and_then(|u| {
        hosts
            .iter()
            .find(|(_, h)| h.uuid == u)
            .map(|(r, _)| r.clone())
    });
    let all: Vec<PoolHost> = hosts
        .iter()
        .map(|(r, h)| PoolHost {
            host_ref: r.clone(),
            host_uuid: h.uuid.clone(),
            host_name: h.display_name(),
            state: states[r],
            version: h.product_version(),
        })
        .collect();
    let others: Vec<PoolHost> = all
        .iter()
        .filter(|h| Some(&h.host_ref) != this_host.as_ref())
        .cloned()
        .collect();
    let replies = fanout::call_each(xapi, &others, "survey", &|_, _| BTreeMap::new(), per_host);
    let mut answers: BTreeMap<Ref, HostAnswer<Survey>> = others
        .into_iter()
        .zip(replies)
        .map(|(h, reply)| (h.host_ref.clone(), HostAnswer::of(h, reply, "a survey")))
        .collect();
    if let Some(me) = all.iter().find(|h| Some(&h.host_ref) == this_host.as_ref()) {
        answers.insert(
            me.host_ref.clone(),
            HostAnswer {
                host_uuid: me.host_uuid.clone(),
                host_name: me.host_name.clone(),
                state: me.state,
                version: me.version.clone(),
                status: AskStatus::Asked,
                error: None,
                answer: Some(local.clone()),
            },
        );
    }
    let surveys: BTreeMap<Ref, HostSurvey> = answers
        .iter()
        .map(|(r, a)| {
            let s = match (&a.answer, a.status) {
                (Some(sv), _) => HostSurvey::Answered(sv.clone()),
                (None, AskStatus::Skipped) => HostSurvey::Skipped {
                    why: a.error.clone().unwrap_or_default(),
                },
                (None, _) => HostSurvey::Failed {
                    why: a.error.clone().unwrap_or_default(),
                },
            };
            (r.clone(), s)
        })
        .collect();
    let mut asked: Vec<HostAnswer<Survey>> = answers.into_values().collect();
    asked.sort_by(|a, b| a.host_name.cmp(&b.host_name));
    let (domains, tapdisk_paths) = (Some(local.domains), local.tapdisk_paths);
    // Alarms: best effort — a doctor without them says so, and checks the rest.
    let (messages, messages_unread) =
        match xapi.call::<BTreeMap<Ref, Message>>("message.get_all_records", vec![]) {
            Ok(m) => (m, None),
            Err(e) => (BTreeMap::new(), Some(e.chain())),
        };
    Ok(Snapshot {
        this_host,
        pools: xapi.call("pool.get_all_records", vec![])?,
        hosts,
        live,
        states,
        srs: xapi.call("SR.get_all_records", vec![])?,
        pbds: xapi.call("PBD.get_all_records", vec![])?,
        vdis: xapi.call("VDI.get_all_records", vec![])?,
        vbds: xapi.call("VBD.get_all_records", vec![])?,
        vms: xapi.call("VM.get_all_records", vec![])?,
        messages,
        messages_unread,
        domains,
        tapdisk_paths,
        surveys,
        asked,
        refcounts: Vec::new(),
        mappings: None,
    })
}
