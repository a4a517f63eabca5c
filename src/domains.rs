//! Xen's domains on this host, from xenstore (/local/domain) and the toolstack (`xl list`):
//! what "the VM's domain exists" is judged on (doctor, `dmheal vm`, the survey).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::external_tool;

/// The domains running on this host, or why that is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Domains {
    Known {
        domids: BTreeSet<u32>,
        /// `xl list`'s state column per domain (r running, b blocked, p paused, ...), where
        /// xl answered.
        #[serde(deserialize_with = "states_by_domid")]
        states: BTreeMap<u32, String>,
        source: String,
    },
    /// Neither xenstore nor xl could be asked: no VM may be called domain-less.
    Unknown { why: String },
}

/// `states` read back from JSON, whose object keys are text: inside an internally tagged enum
/// serde buffers the map and no longer turns "7" into 7 by itself.
fn states_by_domid<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<u32, String>, D::Error> {
    let text: BTreeMap<String, String> = Deserialize::deserialize(d)?;
    text.into_iter()
        .map(|(k, v)| {
            k.parse()
                .map(|k| (k, v))
                .map_err(|_| serde::de::Error::custom(format!("{k:?} is not a domain id")))
        })
        .collect()
}

/// This host's domains from xenstore's /local/domain and from the toolstack (`xl list`). A
/// domain either source lists exists: a VM is called domain-less only when every source that
/// answered lacks it.
pub fn read(timeout: Duration) -> Domains {
    let xenstore = external_tool::run("xenstore-list", &["/local/domain"], timeout)
        .and_then(|o| o.success("xenstore-list"))
        .map(|o| {
            o.stdout
                .split_whitespace()
                .filter_map(|d| d.parse().ok())
                .collect()
        });
    let xl = external_tool::run("xl", &["list"], timeout)
        .and_then(|o| o.success("xl"))
        .map(|o| parse_xl_states(&o.stdout));
    merge_domains(xenstore, xl)
}

fn merge_domains(
    xenstore: Result<BTreeSet<u32>, external_tool::CommandError>,
    xl: Result<BTreeMap<u32, String>, external_tool::CommandError>,
) -> Domains {
    match (xenstore, xl) {
        (Ok(a), Ok(b)) => Domains::Known {
            domids: a.union(&b.keys().copied().collect()).copied().collect(),
            states: b,
            source: "xenstore /local/domain and xl list".into(),
        },
        (Ok(a), Err(_)) => Domains::Known {
            domids: a,
            states: BTreeMap::new(),
            source: "xenstore /local/domain (xl unavailable)".into(),
        },
        (Err(_), Ok(b)) => Domains::Known {
            domids: b.keys().copied().collect(),
            states: b,
            source: "xl list (xenstore unavailable)".into(),
        },
        (Err(e1), Err(e2)) => Domains::Unknown {
            why: format!("{e1}; {e2}"),
        },
    }
}

/// Domain ids and states from `xl list` (header, then `Name ID Mem VCPUs State Time(s)`;
/// names may contain spaces, so the id is the fifth field from the end, the state the second).
pub fn parse_xl_states(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let id = f.len().checked_sub(5).and_then(|i| f[i].parse().ok())?;
            Some((id, f[f.len() - 2].to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_either_source_lists_exists() {
        fn none<T>() -> Result<T, external_tool::CommandError> {
            Err(external_tool::CommandError::NotFound {
                program: "x".into(),
            })
        }
        let xl = |ids: &[u32]| -> Result<BTreeMap<u32, String>, external_tool::CommandError> {
            Ok(ids.iter().map(|i| (*i, "r-----".to_string())).collect())
        };
        let d = merge_domains(Ok([0, 7].into()), xl(&[0, 8]));
        assert!(matches!(d, Domains::Known { ref domids, .. } if *domids == [0, 7, 8].into()));
        assert!(matches!(
            merge_domains(none(), xl(&[0])),
            Domains::Known { .. }
        ));
        assert!(matches!(
            merge_domains(none(), none()),
            Domains::Unknown { .. }
        ));
    }

    #[test]
    fn domains_read_back_from_json() {
        let d = Domains::Known {
            domids: [0, 7].into(),
            states: [(7, "-b----".to_string())].into(),
            source: "xl".into(),
        };
        let back: Domains = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(serde_json::from_value::<Domains>(v).unwrap(), d);
    }

    #[test]
    fn xl_list_gives_domids_and_states() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                    Domain-0                                     0  4096     8     r-----    1234.5\n\
                    my web vm                                    7  2048     2     --p---      12.0\n";
        let states = parse_xl_states(text);
        assert_eq!(states.keys().copied().collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!(states[&7], "--p---");
    }
}
