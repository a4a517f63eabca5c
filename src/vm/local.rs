//! One host's side of `dmheal vm`: its mappings of the VM's VDIs (each inspected as `inspect`
//! does, every layer) and whether the VM's domain runs here. The `volumes` operation; `vm`
//! asks every live host for it through the plugin.

use serde::{Deserialize, Serialize};

use crate::context::OpContext;
use crate::domains::{self, Domains};
use crate::error::{Error, Result};
use crate::ids::{Target, Uuid};
use crate::verdict::Verdict;

/// What this host says about some VDIs and a domain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalView {
    /// This host's uuid, when it is known (inventory or settings).
    pub host_uuid: Option<String>,
    pub volumes: Vec<LocalVolume>,
    /// The domain asked about, when one was.
    pub domain: Option<DomainHere>,
}

/// One VDI on this host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalVolume {
    // 0.1.0 members said `vdi`: a pool mid-upgrade still reads them.
    #[serde(alias = "vdi")]
    pub vdi_uuid: String,
    /// The DM name its LV has (None: the VDI could not be found on this host at all).
    pub dm_name: Option<String>,
    pub verdict: Verdict,
    pub summary: String,
    /// Every layer's reason, as `inspect` gives them.
    pub reasons: Vec<ReasonText>,
}

/// A verdict's reason as text (what crosses hosts).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReasonText {
    pub layer: String,
    pub code: String,
    pub state: String,
    pub message: String,
}

/// Whether a domain id runs on this host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainHere {
    pub domid: u32,
    /// None: neither xenstore nor xl could be asked.
    pub present: Option<bool>,
    /// `xl list`'s state column, where xl answered.
    pub state: Option<String>,
    /// Where that was read, or why it could not be.
    pub source: String,
}

/// This host's view of `vdis`, and of `domid` when given.
pub fn local_view(host: &OpContext, vdis: &[Uuid], domid: Option<u32>) -> Result<LocalView> {
    let mut volumes = Vec::with_capacity(vdis.len());
    for vdi in vdis {
        volumes.extend(volumes_of(host, vdi)?);
    }
    let domain = domid.map(|d| domain_here(d, domains::read(host.config.tool_timeout)));
    Ok(LocalView {
        host_uuid: host.config.xapi.this_host(),
        volumes,
        domain,
    })
}

/// Every volume of `vdi` on this host (more than one when the same VDI uuid is in two SRs: a
/// copied LUN), each inspected with every layer.
fn volumes_of(host: &OpContext, vdi: &Uuid) -> Result<Vec<LocalVolume>> {
    let names = match host.resolve_all(&Target::Vdi(vdi.clone())) {
        Ok(n) => n,
        // Neither xapi, a mapping nor an LV here names it: nothing of it on this host.
        Err(Error::VdiNotFound(_)) => {
            return Ok(vec![LocalVolume {
                vdi_uuid: vdi.to_string(),
                dm_name: None,
                verdict: Verdict::Absent,
                summary: "no mapping and no LV of this VDI on this host".into(),
                reasons: Vec::new(),
            }])
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let i = host.inspect_name(vdi.to_string(), &name)?;
        out.push(LocalVolume {
            vdi_uuid: vdi.to_string(),
            dm_name: Some(i.dm_name),
            verdict: i.verdict,
            summary: i.summary,
            reasons: i
                .reasons
                .into_iter()
                .map(|r| ReasonText {
                    layer: r.layer.as_str().into(),
                    code: r.code.into(),
                    state: r.state.into_owned(),
                    message: r.message.into_owned(),
                })
                .collect(),
        });
    }
    Ok(out)
}

fn domain_here(domid: u32, domains: Domains) -> DomainHere {
    match domains {
        Domains::Known {
            domids,
            states,
            source,
        } => DomainHere {
            domid,
            present: Some(domids.contains(&domid)),
            state: states.get(&domid).cloned(),
            source,
        },
        Domains::Unknown { why } => DomainHere {
            domid,
            present: None,
            state: None,
            source: why,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn a_domain_is_present_only_when_a_source_lists_it() {
        let known = |ids: &[u32]| Domains::Known {
            domids: ids.iter().copied().collect::<BTreeSet<_>>(),
            states: BTreeMap::from([(7, "-b----".to_string())]),
            source: "xl list".into(),
        };
        let d = domain_here(7, known(&[0, 7]));
        assert_eq!(
            (d.present, d.state.as_deref()),
            (Some(true), Some("-b----"))
        );
        assert_eq!(domain_here(9, known(&[0, 7])).present, Some(false));
        let unknown = domain_here(
            7,
            Domains::Unknown {
                why: "no xl".into(),
            },
        );
        assert_eq!(unknown.present, None);
    }
}
