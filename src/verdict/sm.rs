//! The SM layer: SM's reference count for the VDI. Above 0, SM believes the volume active —
//! except the one reference SM's own activation counted just before it activates the LV.

use super::{codes, reason, Reason, Signal};
use crate::facts::Facts;
use crate::sm::Refcount;

/// The SM layer's reason, when the volume is a VDI.
pub(super) fn reasons(f: &Facts) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    // SM.
    match &f.refcount {
        Refcount::NotApplicable => {}
        Refcount::Absent => rs.push(reason(&codes::SM_REFCOUNT_ABSENT, Clear, "no refcount",
            "SM holds no reference to this VDI")),
        Refcount::Counts { count, binary } if f.refcount.is_zero() => rs.push(reason(&codes::SM_REFCOUNT_ZERO, Clear, format!("refcount {count} {binary}"), "SM's reference count is zero")),
        Refcount::Counts { count, binary } if f.activating && count + binary == 1 => rs.push(reason(&codes::SM_REFCOUNT_ACTIVATING, Clear, format!("refcount {count} {binary}"),
            "SM's one reference is the activation in progress's own: LVMCache.activate counts the reference, then activates the LV only when the count has just become 1")),
        Refcount::Counts { count, binary } => rs.push(reason(&codes::SM_REFCOUNT_HELD, InUse,
            format!("refcount {count} {binary}"),
            format!("SM holds references to this VDI (count {count}, binary {binary}): it believes the volume active"))),
        Refcount::Unreadable { why } => rs.push(reason(&codes::SM_REFCOUNT_UNREADABLE, Suspicious, "unreadable",
            format!("SM's reference count cannot be read: {why}"))),
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Layer, Signal, Verdict};
    use crate::facts::Facts;
    use crate::sm::Refcount;

    fn counts(count: u64, binary: u64) -> Change {
        Box::new(move |f: &mut Facts| f.refcount = Refcount::Counts { count, binary })
    }

    #[test]
    fn a_reference_makes_it_in_use() {
        each_change_gives(
            Verdict::InUse,
            Signal::InUse,
            vec![
                ("sm_refcount_held", counts(1, 0)),
                ("sm_refcount_held", counts(0, 1)),
            ],
        );
    }

    #[test]
    fn an_unreadable_refcount_needs_a_human() {
        each_change_gives(
            Verdict::Suspicious,
            Signal::Suspicious,
            vec![(
                "sm_refcount_unreadable",
                Box::new(|f: &mut Facts| f.refcount = Refcount::Unreadable { why: "x".into() }),
            )],
        );
    }

    #[test]
    fn only_the_one_reference_of_sms_own_activation_is_discounted() {
        // SM's activate counts its reference, then activates the LV: that one reference is the
        // activation the hook runs inside, not a user.
        let mut f = ghost();
        f.activating = true;
        counts(1, 0)(&mut f);
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Ghost, "{d:#?}");
        assert_eq!(code_of(&d, Layer::Sm), "sm_refcount_activating");
        // A second reference is somebody else's.
        counts(2, 0)(&mut f);
        assert_eq!(from_facts(&f).verdict, Verdict::InUse);
        // Outside an activation, the one reference counts.
        f.activating = false;
        counts(1, 0)(&mut f);
        assert_eq!(from_facts(&f).verdict, Verdict::InUse);
    }
}
