//! The xapi layer: a VBD attached here, SM's sm-config marks (`host_<this host>`, `paused`,
//! `relinking`). Facts xapi gives count; an unreachable xapi is reported and does not block.

use super::{codes, reason, Reason, Signal};
use crate::facts::Facts;
use crate::xapi::XapiView;

/// The xapi layer's reasons.
pub(super) fn reasons(f: &Facts) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    // xapi: available facts count; an unreachable xapi is reported and does not block.
    match &f.xapi {
        XapiView::NotApplicable => {}
        XapiView::NotConfigured => rs.push(reason(
            &codes::XAPI_NOT_ASKED,
            Clear,
            "not asked",
            "no xapi on this host (no /var/lib/xcp/xapi) and none configured",
        )),
        XapiView::Unreachable { why } => rs.push(reason(
            &codes::XAPI_UNREACHABLE,
            Clear,
            "unreachable",
            format!("xapi unreachable ({why}); the local layers decide"),
        )),
        XapiView::VdiUnknown => rs.push(reason(
            &codes::XAPI_NO_VDI,
            Clear,
            "no such VDI",
            "xapi has no VDI with this uuid",
        )),
        XapiView::Known(v) => {
            let here: Vec<String> = v
                .attached
                .iter()
                .filter(|a| a.on_this_host)
                .map(|a| format!("VBD {} of VM {} ({})", a.vbd, a.vm_name, a.vm_uuid))
                .collect();
            if !here.is_empty() {
                rs.push(reason(
                    &codes::XAPI_ATTACHED,
                    InUse,
                    format!("attached: {}", here.len()),
                    format!(
                        "xapi has the VDI attached on this host: {}",
                        here.join(", ")
                    ),
                ));
            }
            if v.paused {
                rs.push(reason(
                    &codes::XAPI_PAUSED,
                    InUse,
                    "paused",
                    "sm-config paused: SM paused the VDI's tapdisk and will unpause it",
                ));
            }
            if v.relinking {
                rs.push(reason(
                    &codes::XAPI_RELINKING,
                    Suspicious,
                    "relinking",
                    "sm-config relinking: a coalesce is relinking this VDI's chain",
                ));
            }
            match (&v.host_key, v.activating) {
                (Some(mode), false) => rs.push(reason(
                    &codes::XAPI_HOST_KEY,
                    InUse,
                    format!("host key {mode}"),
                    format!("sm-config records the VDI as activated on this host ({mode})"),
                )),
                (Some(mode), true) => rs.push(reason(
                    &codes::XAPI_ACTIVATING,
                    Clear,
                    format!("host key {mode}"),
                    "sm-config's mark for this host belongs to the activation in progress",
                )),
                (None, _) => {}
            }
            if here.is_empty()
                && !v.paused
                && !v.relinking
                && (v.host_key.is_none() || v.activating)
            {
                let elsewhere = v.attached.iter().filter(|a| !a.on_this_host).count();
                rs.push(reason(
                    &codes::XAPI_FREE_HERE,
                    Clear,
                    if elsewhere > 0 {
                        format!("attached elsewhere: {elsewhere}")
                    } else {
                        "not attached".into()
                    },
                    format!(
                        "xapi knows VDI {} ({:?}) and has it in use nowhere on this host",
                        v.vdi_uuid, v.name_label
                    ),
                ));
            }
        }
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Verdict};
    use crate::xapi::view::AttachedVbd;
    use crate::xapi::view::XapiVdi;
    use crate::xapi::XapiView;

    fn xapi_vdi() -> XapiVdi {
        XapiVdi {
            vdi_uuid: VDI.into(),
            vdi_ref: "OpaqueRef:v".into(),
            name_label: "disk".into(),
            sr_uuid: SR.into(),
            this_host: "h".into(),
            attached: vec![],
            host_key: None,
            paused: false,
            relinking: false,
            activating: false,
            sm_config_activating: false,
        }
    }

    #[test]
    fn xapi_facts_join_the_verdict() {
        let attached = AttachedVbd {
            vbd: "b".into(),
            device: "xvda".into(),
            vm_uuid: "vm".into(),
            vm_name: "web".into(),
            on_this_host: true,
        };
        let cases: Vec<(&str, Verdict, XapiVdi)> = vec![
            (
                "xapi_attached",
                Verdict::InUse,
                XapiVdi {
                    attached: vec![attached.clone()],
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_free_here",
                Verdict::Ghost,
                XapiVdi {
                    attached: vec![AttachedVbd {
                        on_this_host: false,
                        ..attached
                    }],
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_paused",
                Verdict::InUse,
                XapiVdi {
                    paused: true,
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_relinking",
                Verdict::Suspicious,
                XapiVdi {
                    relinking: true,
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_host_key",
                Verdict::InUse,
                XapiVdi {
                    host_key: Some("RW".into()),
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_activating",
                Verdict::Ghost,
                XapiVdi {
                    host_key: Some("RW".into()),
                    activating: true,
                    ..xapi_vdi()
                },
            ),
        ];
        for (code, verdict, v) in cases {
            let mut f = ghost();
            f.xapi = XapiView::Known(v);
            let d = from_facts(&f);
            assert_eq!(d.verdict, verdict, "{code}: {d:#?}");
            assert!(d.reasons.iter().any(|r| r.code == code), "{code}: {d:#?}");
        }
    }

    #[test]
    fn an_unreachable_xapi_is_reported_and_does_not_block() {
        let mut f = ghost();
        f.xapi = XapiView::Unreachable { why: "dead".into() };
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Ghost);
        assert!(d.reasons.iter().any(|r| r.code == "xapi_unreachable"));
    }
}
