//! Runs a `contract::Request`: the one path behind the CLI's subcommands, `dmheal call` and
//! `dmheal._core.call`, so all three give the same answer and the same exit code.

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, Overrides};
use crate::context::OpContext;
use crate::contract::{Call, Request};
use crate::doctor::{survey::Survey, Report};
use crate::error::{Error, Result};
use crate::exit_codes::Exit;
use crate::heal::{self, HealOutcome};
use crate::journal::Entry;
use crate::journal::Journal;
use crate::restore::{self, RestoreOutcome};
use crate::results::{Inspection, Scan};
use crate::vm::{local::LocalView, VmReport};

/// How long each host may take to answer `vm` by default.
pub const DEFAULT_HOST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What an operation answered.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Inspection(Inspection),
    Scan(Scan),
    Heal(HealOutcome),
    HealAll(crate::heal_all::BatchOutcome),
    Journal(Vec<Entry>),
    Restore(RestoreOutcome),
    Doctor(Report),
    Vm(VmReport),
    Volumes(LocalView),
    Survey(Survey),
}

impl Answer {
    pub fn exit(&self) -> Exit {
        match self {
            Answer::Inspection(i) => Exit::of_verdict(i.verdict),
            Answer::Scan(s) => Exit::of_scan(&s.counts),
            Answer::Heal(o) => Exit::of_heal(o.action, o.inspection.verdict),
            Answer::HealAll(b) => Exit::of_batch(b),
            Answer::Journal(_) | Answer::Restore(_) => Exit::Ok,
            Answer::Doctor(r) => Exit::of_doctor(r),
            Answer::Vm(r) => Exit::of_vm(r),
            Answer::Volumes(_) | Answer::Survey(_) => Exit::Ok,
        }
    }

    pub fn render(&self) -> String {
        use crate::render;
        match self {
            Answer::Inspection(i) => render::inspection(i),
            Answer::Scan(s) => render::scan(s),
            Answer::Heal(o) => render::heal(o),
            Answer::HealAll(b) => render::batch(b),
            Answer::Journal(e) => render::journal(e),
            Answer::Restore(r) => render::restore(r),
            Answer::Doctor(r) => render::doctor(r),
            Answer::Vm(r) => render::vm(r),
            Answer::Volumes(v) => render::volumes(v),
            Answer::Survey(s) => render::survey(s),
        }
    }
}

/// The configuration for a request: `base` holds what only an operator sets (the CLI's xapi
/// endpoint and certificate, host uuid, LVM reader), the request the rest.
pub fn config_for(req: &Request, base: Overrides) -> Result<Config> {
    let o = &req.options;
    Config::resolve(Overrides {
        journal: o.journal.clone().or(base.journal),
        lock_timeout: o.lock_timeout.or(base.lock_timeout),
        tool_timeout: o.tool_timeout.or(base.tool_timeout),
        xapi_session: o.xapi_session.clone().or(base.xapi_session),
        budget: o.budget.or(base.budget),
        activating: o.activating || base.activating,
        in_sm_process: o.in_sm_process,
        ..base
    })
}

/// Run `req`. `in_process`: the caller is the native module (only then does `in_sm_process`
/// mean anything: a `dmheal` process is never SM's).
pub fn execute(req: &Request, base: Overrides, in_process: bool) -> Result<Answer> {
    let mut config = config_for(req, base)?;
    config.in_sm_process = in_process && req.options.in_sm_process;
    Ok(match &req.call {
        Call::Journal => Answer::Journal(Journal::new(&config.journal).entries()?),
        Call::Inspect { target } => Answer::Inspection(OpContext::open(config)?.inspect(target)?),
        Call::Scan => Answer::Scan(OpContext::open(config)?.scan()?),
        Call::Heal {
            target,
            apply,
            record,
        } => Answer::Heal(heal::heal(
            &OpContext::open(config)?,
            target,
            *apply,
            *record,
        )?),
        Call::HealAll { apply } => Answer::HealAll(crate::heal_all::heal_all(
            &OpContext::open(config)?,
            *apply,
        )?),
        Call::Restore { id } => Answer::Restore(restore::restore(config, *id)?),
        Call::Doctor {
            apply,
            host_timeout,
        } => Answer::Doctor(crate::doctor::doctor(
            &config,
            *apply,
            host_timeout.unwrap_or(DEFAULT_HOST_TIMEOUT),
        )?),
        Call::Survey => Answer::Survey(crate::doctor::survey::survey(&config)),
        Call::Vm {
            vm,
            apply,
            host_timeout,
        } => Answer::Vm(crate::vm::trace(
            &config,
            vm,
            *apply,
            host_timeout.unwrap_or(DEFAULT_HOST_TIMEOUT),
        )?),
        Call::Volumes { vdis, domid } => Answer::Volumes(crate::vm::local::local_view(
            &OpContext::open(config)?,
            vdis,
            *domid,
        )?),
    })
}

/// The envelope both backends answer with.
pub fn envelope(result: &Result<Answer>) -> Value {
    match result {
        Ok(a) => json!({ "result": a }),
        Err(e) => error_envelope(e.kind(), &e.chain()),
    }
}

pub fn error_envelope(kind: &str, message: &str) -> Value {
    json!({"error": {"kind": kind, "message": message}})
}

/// Parse and run one JSON request, never panicking across the boundary: the envelope and the
/// exit code (what `dmheal call` exits with).
pub fn call(request: &str, in_process: bool) -> (Value, Exit) {
    let run = || -> Result<Answer> {
        let req = Request::from_json(request)?;
        execute(&req, Overrides::default(), in_process)
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
    crate::lvm::isolated::reap_ended_readers();
    match outcome {
        Ok(result) => {
            let exit = match &result {
                Ok(a) => a.exit(),
                Err(e) => Exit::of_error(e),
            };
            (envelope(&result), exit)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            (
                error_envelope("internal", &format!("dmheal failed internally: {what}")),
                Exit::Error,
            )
        }
    }
}

/// An error as JSON, for the CLI's `--json`: `{"error": {"kind": ..., "message": ...}}`.
pub fn error_json(e: &Error) -> String {
    error_envelope(e.kind(), &e.chain()).to_string()
}
