//! The tapdisk layer: a tapdisk naming the volume uses it — paused ones included, since a paused
//! tapdisk has closed the device and will reopen it (open count 0 proves nothing then).

use super::{codes, reason, Reason, Signal};
use crate::facts::{Facts, TapdiskFacts};

/// The tapdisk layer's reason, when tapdisk was asked.
pub(super) fn reasons(f: &Facts) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    // tapdisk.
    match &f.tapdisk {
        TapdiskFacts::NotChecked => {}
        TapdiskFacts::NotInstalled => rs.push(reason(
            &codes::TAPDISK_NO_TAP_CTL,
            Clear,
            "no tap-ctl",
            "tap-ctl is not installed: no tapdisk facts on this host",
        )),
        TapdiskFacts::Failed { why } => rs.push(reason(
            &codes::TAPDISK_UNREADABLE,
            Suspicious,
            "tap-ctl failed",
            format!("tapdisk could not be asked: {why}"),
        )),
        TapdiskFacts::Listed { naming_this } if naming_this.is_empty() => rs.push(reason(
            &codes::TAPDISK_NONE,
            Clear,
            "not listed",
            "no tapdisk serves this volume",
        )),
        TapdiskFacts::Listed { naming_this } => {
            let who: Vec<String> = naming_this
                .iter()
                .map(|t| {
                    let pid = t.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
                    if t.paused() {
                        format!("pid {pid} (paused)")
                    } else {
                        format!("pid {pid}")
                    }
                })
                .collect();
            let paused = naming_this.iter().any(|t| t.paused());
            rs.push(reason(if paused { &codes::TAPDISK_PAUSED } else { &codes::TAPDISK_SERVING }, InUse, who.join(", "),
                if paused {
                    format!("tapdisk {} is paused: it has closed the device and will reopen it, so open count 0 proves nothing", who.join(", "))
                } else {
                    format!("tapdisk {} serves this volume", who.join(", "))
                }));
        }
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Layer, Signal, Verdict};
    use crate::facts::{Facts, TapdiskFacts};
    use crate::tapdisk::Tapdisk;

    fn naming_this(state: u32) -> Change {
        Box::new(move |f: &mut Facts| {
            f.tapdisk = TapdiskFacts::Listed {
                naming_this: vec![Tapdisk {
                    pid: Some(7),
                    minor: Some(0),
                    state: Some(state),
                    kind: Some("vhd".into()),
                    path: Some("/dev/x".into()),
                }],
            }
        })
    }

    #[test]
    fn a_tapdisk_naming_the_volume_uses_it_even_paused() {
        each_change_gives(
            Verdict::InUse,
            Signal::InUse,
            vec![
                ("tapdisk_serving", naming_this(0)),
                ("tapdisk_paused", naming_this(0x20)),
            ],
        );
    }

    #[test]
    fn a_failed_tap_ctl_needs_a_human_and_a_missing_one_does_not() {
        each_change_gives(
            Verdict::Suspicious,
            Signal::Suspicious,
            vec![(
                "tapdisk_unreadable",
                Box::new(|f: &mut Facts| f.tapdisk = TapdiskFacts::Failed { why: "x".into() }),
            )],
        );
        let mut f = ghost();
        f.tapdisk = TapdiskFacts::NotInstalled;
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Ghost);
        assert_eq!(code_of(&d, Layer::Tapdisk), "tapdisk_no_tap_ctl");
    }
}
