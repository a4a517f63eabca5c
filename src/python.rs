//! `dmheal._core`: the contract's in-process backend. One entry point, `call(request)`, takes
//! the same JSON request `dmheal call` reads on stdin and returns the same envelope it prints —
//! `{"result": ...}` or `{"error": {"kind", "message"}}` — so the two backends cannot drift.
//! It never raises for the core's errors (they are in the envelope) and never lets a panic
//! cross into Python (`execute::call` catches it).

use pyo3::prelude::*;

/// Run one request (JSON text) in this process; the envelope as JSON text. The GIL is
/// released while the core works.
#[pyfunction]
fn call(py: Python<'_>, request: &str) -> String {
    let request = request.to_owned();
    py.detach(move || crate::execute::call(&request, true).0.to_string())
}

/// The operations and parameters `call` accepts, as JSON text (the same as `dmheal contract`).
#[pyfunction]
fn contract() -> String {
    crate::contract::describe().to_string()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(call, m)?)?;
    m.add_function(wrap_pyfunction!(contract, m)?)?;
    Ok(())
}
