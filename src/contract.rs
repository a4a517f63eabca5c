//! The boundary between the core and its callers, defined once.
//!
//! Every operation Python (the facade, the SM hook, the xapi plugin) can ask of the core is
//! listed here with its parameters and their kinds. Both backends take the same request — a
//! JSON object `{"op": ..., <param>: <value>, ...}` — and give the same answer, one envelope:
//! `{"result": ...}` or `{"error": {"kind": ..., "message": ...}}`:
//! * in-process: `dmheal._core.call(request)` (src/python.rs);
//! * out of process: `dmheal call` with the request on stdin (what dom0's Python 3.6 uses).
//!
//! The CLI's subcommands build the same `Request` from their flags. Every value is validated
//! here, once, for all three (a number of seconds that is negative, not finite or absurd is
//! bad input, never a panic). `dmheal contract` and `_core.contract()` print this table; the
//! tests check the facade's signatures, `_core.pyi` and the CLI's flags against it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::InputError;
use crate::ids::{JournalId, Target};

/// What a parameter's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// true or false.
    Bool,
    /// A number of seconds, 0 to 3600.
    Seconds,
    /// A file path.
    Path,
    /// Free text (a xapi session reference).
    Text,
    /// A volume: `/dev/<vg>/<lv>`, `/dev/mapper/<name>`, a DM name, a VDI uuid (optionally
    /// prefixed `vdi:`, `lv:`, `dm:`).
    Target,
    /// A journal entry id: a positive integer (or its decimal text).
    EntryId,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    /// Given positionally on the command line (and required).
    pub positional: bool,
    pub doc: &'static str,
}

const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Param {
    Param {
        name,
        kind,
        positional: false,
        doc,
    }
}

const fn pos(name: &'static str, kind: Kind, doc: &'static str) -> Param {
    Param {
        name,
        kind,
        positional: true,
        doc,
    }
}

/// Parameters every operation takes.
pub const COMMON: [Param; 4] = [
    opt(
        "journal",
        Kind::Path,
        "the journal file (default: DMHEAL_JOURNAL, else /var/lib/dmheal/journal.jsonl)",
    ),
    opt(
        "lock_timeout",
        Kind::Seconds,
        "how long to wait for SM's lock and the journal lock (default 30)",
    ),
    opt(
        "tool_timeout",
        Kind::Seconds,
        "how long each external tool (lvs, tap-ctl) may take (default 20)",
    ),
    opt(
        "xapi_session",
        Kind::Text,
        "a xapi session to use instead of logging in (the plugin's)",
    ),
];

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Operation {
    pub name: &'static str,
    pub doc: &'static str,
    /// Its own parameters; `COMMON` come with every operation.
    pub params: &'static [Param],
}

impl Operation {
    /// Its own parameters, then the common ones.
    pub fn all_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().chain(COMMON.iter())
    }

    fn param(&self, name: &str) -> Option<&Param> {
        self.all_params().find(|p| p.name == name)
    }
}

const TARGET: Param = pos("target", Kind::Target, "the volume");

pub const OPERATIONS: [Operation; 6] = [
    Operation {
        name: "inspect",
        doc: "every layer's view of one volume, and the verdict",
        params: &[TARGET],
    },
    Operation {
        name: "scan",
        doc: "every SR-VG mapping and every SR LV on this host",
        params: &[],
    },
    Operation {
        name: "heal",
        doc: "remove a proven ghost (a dry run unless apply)",
        params: &[
            TARGET,
            opt("apply", Kind::Bool, "really remove it (journalled first)"),
            opt("record", Kind::Bool, "also journal a dry run or a refusal"),
            opt(
                "activating",
                Kind::Bool,
                "called from SM's own activation of the volume: SM's reference and xapi mark for this host are that activation's own",
            ),
            opt(
                "budget",
                Kind::Seconds,
                "the whole operation's deadline: every wait is cut to it, no removal starts after it",
            ),
            opt(
                "in_sm_process",
                Kind::Bool,
                "the caller runs inside an SM process (in-process calls only: SM's fcntl lock files are then never opened)",
            ),
        ],
    },
    Operation {
        name: "journal",
        doc: "the journal's entries, oldest first",
        params: &[],
    },
    Operation {
        name: "restore",
        doc: "recreate the mapping a journalled removal removed",
        params: &[pos("id", Kind::EntryId, "the removal's journal entry id")],
    },
    Operation {
        name: "doctor",
        doc: "cross-layer findings; apply carries out the safe subset",
        params: &[opt(
            "apply",
            Kind::Bool,
            "carry out the safe actions, each re-checked and journalled",
        )],
    },
];

pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// The contract as JSON (what `dmheal contract` and `_core.contract()` print).
pub fn describe() -> Value {
    let ops: Map<String, Value> = OPERATIONS
        .iter()
        .map(|o| {
            let params: Vec<Value> = o
                .all_params()
                .map(|p| json!({"name": p.name, "kind": p.kind, "positional": p.positional, "doc": p.doc}))
                .collect();
            (o.name.to_string(), json!({"doc": o.doc, "params": params}))
        })
        .collect();
    json!({"version": env!("CARGO_PKG_VERSION"), "operations": ops})
}

/// The largest number of seconds any wait may be given.
pub const MAX_SECONDS: f64 = 3600.0;

/// A number of seconds: finite, 0 to an hour. The one check for every caller (a negative,
/// NaN, infinite or huge value would panic in `Duration::from_secs_f64`).
pub fn seconds(name: &str, v: f64) -> Result<Duration, InputError> {
    if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(InputError::BadValue {
            name: name.to_string(),
            why: format!("{v} is not a number of seconds from 0 to {MAX_SECONDS}"),
        })
    }
}

/// Parse a journal entry id: a positive number.
pub fn entry_id(s: &str) -> Result<JournalId, InputError> {
    match s.parse::<u64>() {
        Ok(id) if id > 0 => Ok(JournalId(id)),
        _ => Err(InputError::BadJournalId(s.escape_default().to_string())),
    }
}

/// What an operation is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Inspect {
        target: Target,
    },
    Scan,
    Heal {
        target: Target,
        apply: bool,
        record: bool,
    },
    Journal,
    Restore {
        id: JournalId,
    },
    Doctor {
        apply: bool,
    },
}

/// How the operation runs (the settings the caller may give).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub journal: Option<PathBuf>,
    pub lock_timeout: Option<Duration>,
    pub tool_timeout: Option<Duration>,
    pub xapi_session: Option<String>,
    pub budget: Option<Duration>,
    pub activating: bool,
    pub in_sm_process: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub call: Call,
    pub options: Options,
}

/// The values of a request, checked against its operation.
struct Values<'a> {
    op: &'static Operation,
    map: &'a Map<String, Value>,
}

impl Values<'_> {
    fn bad(&self, name: &str, why: impl Into<String>) -> InputError {
        InputError::BadValue {
            name: format!("{}.{name}", self.op.name),
            why: why.into(),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        debug_assert!(
            self.op.param(name).is_some(),
            "{name} is not in the contract"
        );
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn flag(&self, name: &str) -> Result<bool, InputError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(name, format!("{v} is not true or false"))),
        }
    }

    fn text(&self, name: &str) -> Result<Option<String>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(name, format!("{v} is not a non-empty string"))),
        }
    }

    fn seconds(&self, name: &str) -> Result<Option<Duration>, InputError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let v = n.as_f64().ok_or_else(|| self.bad(name, "not a number"))?;
                seconds(name, v).map(Some)
            }
            Some(v) => Err(self.bad(name, format!("{v} is not a number of seconds"))),
        }
    }

    fn target(&self) -> Result<Target, InputError> {
        match self.get("target") {
            Some(Value::String(s)) => Target::parse(s),
            Some(v) => Err(self.bad("target", format!("{v} is not a volume"))),
            None => Err(self.bad("target", "missing")),
        }
    }

    fn entry_id(&self) -> Result<JournalId, InputError> {
        match self.get("id") {
            Some(Value::String(s)) => entry_id(s),
            Some(Value::Number(n)) => entry_id(&n.to_string()),
            Some(v) => Err(self.bad("id", format!("{v} is not a journal entry id"))),
            None => Err(self.bad("id", "missing")),
        }
    }
}

impl Request {
    /// Parse and check a JSON request. Unknown operations and parameters, values of the wrong
    /// kind and missing required values are bad input; nothing is done before this passes.
    pub fn from_json(text: &str) -> Result<Request, InputError> {
        let v: Value = serde_json::from_str(text).map_err(|e| InputError::BadValue {
            name: "request".into(),
            why: format!("not JSON: {e}"),
        })?;
        let Value::Object(map) = v else {
            return Err(InputError::BadValue {
                name: "request".into(),
                why: "not a JSON object".into(),
            });
        };
        Self::from_map(&map)
    }

    pub fn from_map(map: &Map<String, Value>) -> Result<Request, InputError> {
        let name = match map.get("op") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                return Err(InputError::BadValue {
                    name: "op".into(),
                    why: "missing (one of inspect, scan, heal, journal, restore, doctor)".into(),
                })
            }
        };
        let op = operation(name).ok_or_else(|| InputError::BadValue {
            name: "op".into(),
            why: format!("unknown operation {:?}", name.escape_default().to_string()),
        })?;
        if let Some(k) = map.keys().find(|k| *k != "op" && op.param(k).is_none()) {
            return Err(InputError::BadValue {
                name: format!("{}.{}", op.name, k.escape_default()),
                why: format!(
                    "unknown parameter (it takes {})",
                    op.all_params()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let v = Values { op, map };
        let call = match op.name {
            "inspect" => Call::Inspect {
                target: v.target()?,
            },
            "scan" => Call::Scan,
            "heal" => Call::Heal {
                target: v.target()?,
                apply: v.flag("apply")?,
                record: v.flag("record")?,
            },
            "journal" => Call::Journal,
            "restore" => Call::Restore { id: v.entry_id()? },
            "doctor" => Call::Doctor {
                apply: v.flag("apply")?,
            },
            other => unreachable!("operation {other} has no call"),
        };
        let heal = op.name == "heal";
        Ok(Request {
            call,
            options: Options {
                journal: v.text("journal")?.map(PathBuf::from),
                lock_timeout: v.seconds("lock_timeout")?,
                tool_timeout: v.seconds("tool_timeout")?,
                xapi_session: v.text("xapi_session")?,
                budget: if heal { v.seconds("budget")? } else { None },
                activating: heal && v.flag("activating")?,
                in_sm_process: heal && v.flag("in_sm_process")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Result<Request, InputError> {
        Request::from_json(&v.to_string())
    }

    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    #[test]
    fn a_heal_request_becomes_a_typed_call() {
        let r = req(
            json!({"op": "heal", "target": VDI, "apply": true, "activating": true,
                           "budget": 8.5, "lock_timeout": 5, "journal": "/tmp/j"}),
        )
        .unwrap();
        assert_eq!(
            r.call,
            Call::Heal {
                target: Target::parse(VDI).unwrap(),
                apply: true,
                record: false
            }
        );
        assert_eq!(r.options.budget, Some(Duration::from_millis(8500)));
        assert_eq!(r.options.lock_timeout, Some(Duration::from_secs(5)));
        assert!(r.options.activating && !r.options.in_sm_process);
        assert_eq!(r.options.journal, Some(PathBuf::from("/tmp/j")));
        // null is "not given".
        let r = req(json!({"op": "scan", "journal": null})).unwrap();
        assert_eq!(r.options, Options::default());
        let r = req(json!({"op": "restore", "id": 12})).unwrap();
        assert_eq!(r.call, Call::Restore { id: JournalId(12) });
    }

    /// Every hostile number for every Seconds parameter: bad input, never a panic.
    #[test]
    fn hostile_numbers_are_bad_input() {
        for name in ["lock_timeout", "tool_timeout", "budget"] {
            for bad in [
                json!(-1),
                json!(1e300),
                json!(3600.5),
                json!("5"),
                json!(true),
                json!([]),
            ] {
                let e = req(json!({"op": "heal", "target": VDI, name: bad}));
                assert!(
                    matches!(e, Err(InputError::BadValue { .. })),
                    "{name}={bad}: {e:?}"
                );
            }
        }
        // NaN and infinity are not JSON; Rust's own f64 path is checked directly.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5, 1e300] {
            assert!(seconds("x", v).is_err(), "{v}");
        }
        assert_eq!(seconds("x", 0.0).unwrap(), Duration::ZERO);
    }

    #[test]
    fn unknown_and_misshapen_requests_are_bad_input() {
        for bad in [
            json!({}),
            json!({"op": "remove"}),
            json!({"op": "scan", "apply": true}),
            json!({"op": "heal"}),
            json!({"op": "heal", "target": "a;b"}),
            json!({"op": "heal", "target": VDI, "apply": "yes"}),
            json!({"op": "restore", "id": 0}),
            json!({"op": "restore", "id": "-3"}),
            json!({"op": "inspect", "target": VDI, "journal": ""}),
            json!([1]),
        ] {
            assert!(req(bad.clone()).is_err(), "{bad} accepted");
        }
        assert!(Request::from_json("{not json").is_err());
    }

    #[test]
    fn the_contract_lists_every_operation_with_its_parameters() {
        let d = describe();
        let heal = &d["operations"]["heal"]["params"];
        let names: Vec<&str> = heal
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "target",
                "apply",
                "record",
                "activating",
                "budget",
                "in_sm_process",
                "journal",
                "lock_timeout",
                "tool_timeout",
                "xapi_session"
            ]
        );
        assert_eq!(d["operations"].as_object().unwrap().len(), OPERATIONS.len());
    }
}
