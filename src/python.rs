//! `dmheal._core`: the same operations as the CLI, returning the same JSON the CLI prints with
//! `--json`. Errors become `dmheal._core.CoreError(kind, message)`; the Python facade turns
//! them into `dmheal.DmhealError`, as it does for the binary's JSON errors.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use serde::Serialize;

use crate::config::{Config, Overrides};
use crate::error::Result;
use crate::heal as guarded;
use crate::ids::Target;
use crate::ops::{self, Host};

create_exception!(_core, CoreError, PyException);

fn to_py<T: Serialize>(result: Result<T>) -> PyResult<String> {
    match result {
        Ok(v) => Ok(serde_json::to_string(&v).expect("results always serialise")),
        Err(e) => Err(CoreError::new_err((e.kind(), e.chain()))),
    }
}

fn config(journal: Option<PathBuf>, lock_timeout: Option<f64>) -> Result<Config> {
    Config::resolve(Overrides {
        journal,
        lock_timeout: lock_timeout.map(Duration::from_secs_f64),
        ..Default::default()
    })
}

fn target(s: &str) -> Result<Target> {
    Ok(Target::parse(s)?)
}

/// Every layer's view of one volume and the verdict, as JSON.
#[pyfunction]
#[pyo3(signature = (target, journal=None))]
fn inspect(py: Python<'_>, target: &str, journal: Option<PathBuf>) -> PyResult<String> {
    let t = self::target(target);
    to_py(py.detach(|| {
        let t = t?;
        Host::open(config(journal, None)?)?.inspect(&t)
    }))
}

/// Every SR-VG mapping and SR LV on this host, as JSON.
#[pyfunction]
#[pyo3(signature = (journal=None))]
fn scan(py: Python<'_>, journal: Option<PathBuf>) -> PyResult<String> {
    to_py(py.detach(|| Host::open(config(journal, None)?)?.scan()))
}

/// Heal one volume (dry run unless `apply`), as JSON. `record` journals dry runs and
/// refusals too; `in_sm_process` marks a caller inside SM (never open SM's fcntl lock file);
/// `tool_timeout` bounds each external tool.
#[pyfunction]
#[pyo3(signature = (target, apply=false, journal=None, lock_timeout=None, record=false, in_sm_process=false, tool_timeout=None, activating=false))]
#[allow(clippy::too_many_arguments)]
fn heal(
    py: Python<'_>,
    target: &str,
    apply: bool,
    journal: Option<PathBuf>,
    lock_timeout: Option<f64>,
    record: bool,
    in_sm_process: bool,
    tool_timeout: Option<f64>,
    activating: bool,
) -> PyResult<String> {
    let t = self::target(target);
    to_py(py.detach(|| {
        let t = t?;
        let mut cfg = config(journal, lock_timeout)?;
        cfg.activating = activating;
        cfg.in_sm_process = in_sm_process;
        if let Some(s) = tool_timeout {
            cfg.tool_timeout = Duration::from_secs_f64(s);
        }
        let host = Host::open(cfg)?;
        guarded::heal(&host, &t, apply, record)
    }))
}

/// The journal's entries, as JSON.
#[pyfunction]
#[pyo3(signature = (journal=None))]
fn journal(py: Python<'_>, journal: Option<PathBuf>) -> PyResult<String> {
    to_py(py.detach(|| ops::journal_entries(&config(journal, None)?)))
}

/// Recreate the mapping journal entry `id` removed, as JSON.
#[pyfunction]
#[pyo3(signature = (id, journal=None, lock_timeout=None))]
fn restore(
    py: Python<'_>,
    id: &str,
    journal: Option<PathBuf>,
    lock_timeout: Option<f64>,
) -> PyResult<String> {
    to_py(py.detach(|| {
        let id = crate::cli::parse_id(id)?;
        let config = config(journal, lock_timeout)?;
        crate::restore::find_removal(&config, id)?;
        crate::restore::restore(&Host::open(config)?, id)
    }))
}

/// The cross-layer doctor, as JSON; `apply` carries out the safe subset.
#[pyfunction]
#[pyo3(signature = (apply=false, journal=None))]
fn doctor(py: Python<'_>, apply: bool, journal: Option<PathBuf>) -> PyResult<String> {
    to_py(py.detach(|| crate::doctor::doctor(&config(journal, None)?, apply)))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(heal, m)?)?;
    m.add_function(wrap_pyfunction!(journal, m)?)?;
    m.add_function(wrap_pyfunction!(restore, m)?)?;
    m.add_function(wrap_pyfunction!(doctor, m)?)?;
    Ok(())
}
