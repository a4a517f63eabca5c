//! The decision: a pure function from `Facts` to a verdict, with one reason per layer in
//! machine form (`code`) and as a sentence (`message`). Each layer's rules live in their own
//! module, readable on one screen; this one combines them. No I/O here, so every rule is
//! tested without a kernel. Reason codes are part of the JSON contract: they do not change.

pub mod codes;
mod device_mapper;
mod lvm;
mod naming;
mod sm;
mod tapdisk;
mod users;
mod xapi;

#[cfg(test)]
mod testing;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::facts::Facts;

/// What dmheal concludes about a DM name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No mapping of that name: nothing to do.
    Absent,
    /// A live mapping LVM recognises as its own: nothing to do.
    Healthy,
    /// Unused, unknown to every layer, and in the way of `lvchange -ay`: removable.
    Ghost,
    /// Something uses it: never removed.
    InUse,
    /// Something is odd: a human must look. Never removed.
    Suspicious,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Absent,
        Verdict::Healthy,
        Verdict::Ghost,
        Verdict::InUse,
        Verdict::Suspicious,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Absent => "absent",
            Verdict::Healthy => "healthy",
            Verdict::Ghost => "ghost",
            Verdict::InUse => "in-use",
            Verdict::Suspicious => "suspicious",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Naming,
    DeviceMapper,
    Lvm,
    Tapdisk,
    Sm,
    Xapi,
    Holders,
    Openers,
    Mounts,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Naming => "naming",
            Layer::DeviceMapper => "device-mapper",
            Layer::Lvm => "lvm",
            Layer::Tapdisk => "tapdisk",
            Layer::Sm => "sm",
            Layer::Xapi => "xapi",
            Layer::Holders => "holders",
            Layer::Openers => "openers",
            Layer::Mounts => "mounts",
        }
    }
}

/// What one layer's evidence means for removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// Consistent with a ghost: this layer does not object.
    Clear,
    /// This layer owns the mapping legitimately.
    Healthy,
    /// This layer uses the mapping.
    InUse,
    /// This layer shows something a human must look at.
    Suspicious,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub layer: Layer,
    pub signal: Signal,
    /// Stable machine code, e.g. `dm_open`, `lvm_inactive`.
    pub code: &'static str,
    /// Short state for the table, e.g. `open 0, uuid none`. (Cow: most texts are fixed, and a
    /// scan holds thousands of reasons.)
    pub state: Cow<'static, str>,
    /// What it means, as a sentence.
    pub message: Cow<'static, str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub summary: String,
    pub reasons: Vec<Reason>,
}

/// A reason of `code`'s layer (every code is registered in `codes`).
fn reason(
    code: &'static codes::Code,
    signal: Signal,
    state: impl Into<Cow<'static, str>>,
    message: impl Into<Cow<'static, str>>,
) -> Reason {
    Reason {
        layer: code.layer,
        signal,
        code: code.code,
        state: state.into(),
        message: message.into(),
    }
}

/// Decide on the facts of one DM name.
pub fn from_facts(f: &Facts) -> Decision {
    let Some(dev) = &f.device else {
        return Decision {
            verdict: Verdict::Absent,
            summary: "no mapping of this name in the kernel: nothing to do".into(),
            reasons: vec![reason(
                &codes::DM_ABSENT,
                Signal::Clear,
                "absent",
                "the kernel has no mapping of this name; lvchange -ay can create it",
            )],
        };
    };
    let lvm_owned = lvm::owned(f, dev);
    let mut rs = naming::reasons(f);
    rs.extend(device_mapper::reasons(dev, lvm_owned));
    rs.extend(lvm::reasons(f, dev, lvm_owned));
    rs.extend(users::reasons(f, dev));
    rs.extend(tapdisk::reasons(f));
    rs.extend(sm::reasons(f));
    rs.extend(xapi::reasons(f));
    combine(rs, lvm_owned)
}

/// The verdict from every layer's reasons: a naming objection leaves it alone, LVM's own
/// mapping is healthy, any use makes it in use, any oddity suspicious; otherwise a ghost. The
/// summary names every blocking layer, so a log line says who holds the mapping.
fn combine(rs: Vec<Reason>, lvm_owned: bool) -> Decision {
    use Signal::*;
    let all = |s: Signal| {
        rs.iter()
            .filter(|r| r.signal == s)
            .map(|r| r.message.as_ref())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let naming_blocks = rs
        .iter()
        .any(|r| r.layer == Layer::Naming && r.signal == Suspicious);
    let (in_use, odd) = (all(InUse), all(Suspicious));
    let (verdict, summary) = if naming_blocks {
        (
            Verdict::Suspicious,
            "not a plain LV of an SR volume group: left alone".into(),
        )
    } else if lvm_owned {
        (
            Verdict::Healthy,
            "LVM's own live mapping: nothing to do".into(),
        )
    } else if !in_use.is_empty() {
        (Verdict::InUse, format!("in use: {in_use}"))
    } else if !odd.is_empty() {
        (Verdict::Suspicious, format!("needs a human: {odd}"))
    } else {
        (Verdict::Ghost, "registered in the kernel, used by nothing, not LVM's: removing it lets lvchange -ay succeed".into())
    };
    Decision {
        verdict,
        summary,
        reasons: rs,
    }
}

#[cfg(test)]
mod tests {
    //! Cross-layer rules: how the layers' reasons combine.
    use super::testing::*;
    use super::*;
    use crate::kernel::Opener;
    use crate::lvm::LvmView;
    use crate::sm::Refcount;

    #[test]
    fn the_seed_ghost_is_a_ghost() {
        let d = from_facts(&ghost());
        assert_eq!(d.verdict, Verdict::Ghost, "{d:#?}");
        assert_eq!(code_of(&d, Layer::Lvm), "lvm_inactive");
        assert!(d.reasons.iter().all(|r| r.signal == Signal::Clear));
    }

    #[test]
    fn absent_mapping_is_absent() {
        let mut f = ghost();
        f.device = None;
        assert_eq!(from_facts(&f).verdict, Verdict::Absent);
    }

    #[test]
    fn lvms_own_mapping_is_healthy_even_when_open() {
        let mut f = ghost();
        f.lvm = Some(LvmView::Lv(lv_record("-wi-ao----")));
        device(&mut f).uuid = "LVM-K2BweQUkrIX4HzXTjZRq".into();
        status(&mut f).open_count = 1;
        assert_eq!(from_facts(&f).verdict, Verdict::Healthy);
    }

    #[test]
    fn the_summary_names_every_user() {
        let mut f = ghost();
        status(&mut f).open_count = 1;
        f.openers = vec![Opener {
            pid: 42,
            command: "qemu".into(),
            fd: 3,
            path: "/dev/dm-0".into(),
        }];
        let d = from_facts(&f);
        assert!(
            d.summary.contains("1 open(s)") && d.summary.contains("pid 42 (qemu)"),
            "{}",
            d.summary
        );
    }

    #[test]
    fn in_use_outranks_suspicious() {
        let mut f = ghost();
        status(&mut f).suspended = true;
        f.refcount = Refcount::Counts {
            count: 0,
            binary: 1,
        };
        assert_eq!(from_facts(&f).verdict, Verdict::InUse);
    }

    #[test]
    fn a_naming_objection_outranks_everything() {
        // Even LVM's own, open mapping is left alone when it is not an SR volume's VDI LV.
        let mut f = ghost();
        f.lvm = Some(LvmView::Lv(lv_record("-wi-ao----")));
        device(&mut f).uuid = "LVM-K2BweQUkrIX4HzXTjZRq".into();
        f.vdi = None;
        f.stores = Some(crate::lvm::Stores::Other);
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Suspicious, "{d:#?}");
    }

    #[test]
    fn deleted_lv_and_missing_tap_ctl_still_allow_a_ghost() {
        let mut f = ghost();
        f.lvm = Some(LvmView::LvMissing);
        f.tapdisk = crate::facts::TapdiskFacts::NotInstalled;
        f.refcount = Refcount::Counts {
            count: 0,
            binary: 0,
        };
        assert_eq!(from_facts(&f).verdict, Verdict::Ghost);
    }
}
