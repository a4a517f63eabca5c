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
use crate::ids::{JournalId, Target, Uuid};

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
    /// A VM: its uuid or its name-label.
    Vm,
    /// VDI uuids: a list, or their text separated by commas (as xapi's plugin arguments).
    VdiList,
    /// A Xen domain id: 0 to 65535 (or its decimal text).
    DomId,
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

pub const OPERATIONS: [Operation; 10] = [
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
        name: "heal_all",
        doc: "every ghost a scan of this host proves, each re-decided under SM's lock and removed as heal does (a dry run unless apply)",
        params: &[
            opt("apply", Kind::Bool, "really remove them (each journalled first)"),
            opt(
                "budget",
                Kind::Seconds,
                "the whole batch's deadline: no removal starts after it",
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
        doc: "cross-layer findings, pool-wide; apply carries out what restore undoes exactly",
        params: &[
            opt(
                "apply",
                Kind::Bool,
                "carry out the actions restore undoes exactly, each re-checked and journalled",
            ),
            opt(
                "host_timeout",
                Kind::Seconds,
                "how long each other host may take to answer its survey (default 30)",
            ),
        ],
    },
    Operation {
        name: "survey",
        doc: "what this host's storage says about SRs, its domains and its tapdisks (what doctor asks each host)",
        params: &[],
    },
    Operation {
        name: "vm",
        doc: "why a VM will not start: its disks, every host's mappings of them, its domain; the blocking finding first",
        params: &[
            pos("vm", Kind::Vm, "the VM's uuid or name-label"),
            opt(
                "apply",
                Kind::Bool,
                "heal the proven ghosts, each on the host that holds it (that host decides and journals)",
            ),
            opt(
                "host_timeout",
                Kind::Seconds,
                "how long each host may take to answer (default 30)",
            ),
        ],
    },
    Operation {
        name: "volumes",
        doc: "this host's mappings of some VDIs, and whether a domain runs here (what `vm` asks each host)",
        params: &[
            pos("vdis", Kind::VdiList, "the VDIs"),
            opt(
                "domid",
                Kind::DomId,
                "a domain id to look for on this host",
            ),
        ],
    },
];

/// The most VDIs one `volumes` request may name (a VM has at most 255 VBDs).
pub const MAX_VDIS: usize = 256;

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
    // The reason codes a verdict can give, with their layer and meaning: what a caller may
    // match on (`inspection.reasons[].code`).
    let codes: Vec<Value> = crate::verdict::codes::ALL
        .iter()
        .map(|c| json!({"code": c.code, "layer": c.layer, "meaning": c.meaning}))
        .collect();
    // And the words answers are made of: what a caller compares `verdict` and `action` with.
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "operations": ops,
        "reason_codes": codes,
        "verdicts": crate::verdict::Verdict::ALL,
        "heal_actions": crate::heal::Action::ALL,
        "batch_actions": crate::heal_all::BatchAction::ALL,
    })
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
/// Only the plain decimal form the journal writes ("12"): not "+12", "012" or " 12", so one
/// entry has one spelling.
pub fn entry_id(s: &str) -> Result<JournalId, InputError> {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    match s.parse::<u64>() {
        Ok(id) if plain => Ok(JournalId(id)),
        _ => Err(InputError::BadJournalId(crate::ids::shown(s))),
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
    HealAll {
        apply: bool,
    },
    Journal,
    Restore {
        id: JournalId,
    },
    Doctor {
        apply: bool,
        host_timeout: Option<Duration>,
    },
    Survey,
    Vm {
        vm: String,
        apply: bool,
        host_timeout: Option<Duration>,
    },
    Volumes {
        vdis: Vec<Uuid>,
        domid: Option<u32>,
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

    /// A VM's uuid or name-label: any non-empty text of a sane length without control
    /// characters (name-labels are free text; it is only ever compared, never run).
    fn vm(&self) -> Result<String, InputError> {
        match self.get("vm") {
            Some(Value::String(s))
                if !s.trim().is_empty() && s.len() <= 1024 && !s.chars().any(char::is_control) =>
            {
                Ok(s.clone())
            }
            Some(v) => Err(self.bad(
                "vm",
                format!(
                    "{v} is not a VM uuid or name-label (non-empty text, no control characters)"
                ),
            )),
            None => Err(self.bad("vm", "missing")),
        }
    }

    /// `may_be_empty`: a domain is asked about, so no VDI is fine.
    fn vdis(&self, may_be_empty: bool) -> Result<Vec<Uuid>, InputError> {
        let items: Vec<String> = match self.get("vdis") {
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.bad("vdis", format!("{other} is not a VDI uuid"))),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => Err(self.bad("vdis", format!("{v} is not a list of VDI uuids")))?,
            None => return Err(self.bad("vdis", "missing")),
        };
        if items.len() > MAX_VDIS {
            return Err(self.bad("vdis", format!("more than {MAX_VDIS} VDIs")));
        }
        let mut vdis: Vec<Uuid> = items
            .iter()
            .filter(|x| !x.is_empty())
            .map(|x| Uuid::new(x))
            .collect::<Result<_, _>>()?;
        let mut seen = std::collections::HashSet::new();
        vdis.retain(|v| seen.insert(v.clone()));
        if vdis.is_empty() && !may_be_empty {
            return Err(self.bad("vdis", "no VDI given"));
        }
        Ok(vdis)
    }

    fn domid(&self) -> Result<Option<u32>, InputError> {
        let n = match self.get("domid") {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if n <= 65535 => Ok(Some(n as u32)),
            _ => Err(self.bad("domid", "not a domain id (0 to 65535)")),
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

/// A JSON value in which no object names a key twice, at any depth.
struct NoDuplicateKeys(Value);

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys(Value::Bool(b)))
            }
            fn visit_i64<E: Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys(n.into()))
            }
            fn visit_u64<E: Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys(n.into()))
            }
            fn visit_f64<E: Error>(self, n: f64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys(
                    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys(Value::String(s.to_owned())))
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(NoDuplicateKeys(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(NoDuplicateKeys(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    let NoDuplicateKeys(v) = map.next_value()?;
                    if out.insert(k.clone(), v).is_some() {
                        return Err(A::Error::custom(format!(
                            "the key {:?} is given twice",
                            k.escape_default().to_string()
                        )));
                    }
                }
                Ok(NoDuplicateKeys(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

impl Request {
    /// Parse and check a JSON request. Unknown operations and parameters, values of the wrong
    /// kind and missing required values are bad input; nothing is done before this passes.
    pub fn from_json(text: &str) -> Result<Request, InputError> {
        // A key given twice is ambiguous (serde_json would keep the last silently): bad input.
        let v = serde_json::from_str::<NoDuplicateKeys>(text)
            .map_err(|e| InputError::BadValue {
                name: "request".into(),
                why: format!("not JSON: {e}"),
            })?
            .0;
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
                    why: format!("missing (one of {})", OPERATIONS.map(|o| o.name).join(", ")),
                })
            }
        };
        let op = operation(name).ok_or_else(|| InputError::BadValue {
            name: "op".into(),
            why: format!("unknown operation \"{}\"", crate::ids::shown(name)),
        })?;
        if let Some(k) = map.keys().find(|k| *k != "op" && op.param(k).is_none()) {
            return Err(InputError::BadValue {
                name: format!("{}.{}", op.name, crate::ids::shown(k)),
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
            "heal_all" => Call::HealAll {
                apply: v.flag("apply")?,
            },
            "journal" => Call::Journal,
            "restore" => Call::Restore { id: v.entry_id()? },
            "doctor" => Call::Doctor {
                apply: v.flag("apply")?,
                host_timeout: v.seconds("host_timeout")?,
            },
            "survey" => Call::Survey,
            "vm" => Call::Vm {
                vm: v.vm()?,
                apply: v.flag("apply")?,
                host_timeout: v.seconds("host_timeout")?,
            },
            "volumes" => {
                let domid = v.domid()?;
                Call::Volumes {
                    vdis: v.vdis(domid.is_some())?,
                    domid,
                }
            }
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
                budget: if heal || op.name == "heal_all" {
                    v.seconds("budget")?
                } else {
                    None
                },
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
        // A key given twice is ambiguous, whichever copy would win.
        for twice in [
            r#"{"op":"heal","target":"dm:x","apply":false,"apply":true}"#,
            r#"{"op":"inspect","target":"dm:x","op":"heal","apply":true}"#,
            r#"{"op":"volumes","vdis":[{"a":1,"a":2}]}"#,
        ] {
            let e = Request::from_json(twice).unwrap_err().to_string();
            assert!(e.contains("given twice"), "{twice}: {e}");
        }
        assert!(Request::from_json(r#"{"op":"heal","target":"dm:x","apply":true}"#).is_ok());
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

    #[test]
    fn a_vms_volumes_are_a_list_of_uuids_and_a_domain_id() {
        let r =
            req(json!({"op": "volumes", "vdis": format!("{VDI}, {VDI},"), "domid": "7"})).unwrap();
        assert_eq!(
            r.call,
            Call::Volumes {
                vdis: vec![Uuid::new(VDI).unwrap()],
                domid: Some(7)
            }
        );
        let list = req(json!({"op": "volumes", "vdis": [VDI]})).unwrap();
        assert!(matches!(list.call, Call::Volumes { domid: None, .. }));
        for bad in [
            json!({"op": "volumes", "vdis": "not-a-uuid"}),
            json!({"op": "volumes", "vdis": ""}),
            json!({"op": "volumes", "vdis": [1]}),
            json!({"op": "volumes", "vdis": VDI, "domid": "-1"}),
            json!({"op": "volumes", "vdis": VDI, "domid": 70000}),
            json!({"op": "volumes", "vdis": vec![VDI; MAX_VDIS + 1].join(",")}),
            json!({"op": "vm", "vm": ""}),
            json!({"op": "vm", "vm": "a\nb"}),
            json!({"op": "vm", "vm": "x", "host_timeout": -1}),
        ] {
            assert!(req(bad.clone()).is_err(), "{bad}");
        }
        let vm = req(json!({"op": "vm", "vm": "S-Domino", "apply": true})).unwrap();
        assert_eq!(
            vm.call,
            Call::Vm {
                vm: "S-Domino".into(),
                apply: true,
                host_timeout: None
            }
        );
    }

    #[test]
    fn a_journal_entry_has_one_spelling() {
        assert_eq!(entry_id("12"), Ok(JournalId(12)));
        for bad in [
            "",
            "0",
            "012",
            "+12",
            " 12",
            "12 ",
            "-1",
            "1e3",
            "18446744073709551616",
        ] {
            assert!(entry_id(bad).is_err(), "{bad:?}");
        }
    }
}
