//! SM's reference counts on this host that nothing backs. `LVMCache.activate` activates an LV
//! only when its count has just become 1, so a count left above 0 after a crash or a failed
//! detach makes every later activation skip `lvchange -ay` — and with it the SM hook, which
//! therefore never even sees a ghost under that LV.

use serde_json::json;

use super::{Finding, SafeAction, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::sm::Refcount;

/// Counts above 0 for a VDI that no tapdisk serves, whose mapping here is not open, and that no
/// VM resident on this host has attached: resetting them (journalled) is safe. Must not fire
/// when any of those facts is unknown (tapdisk or device-mapper not asked, this host unknown).
pub fn stale(s: &Snapshot) -> Vec<Finding> {
    let Some(this) = &s.this_host else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (sr, vdi, count) in &s.refcounts {
        let Refcount::Counts { count: c, binary } = count else {
            continue;
        };
        if c + binary == 0
            || s.tapdisk_serves(vdi) != Some(false)
            || s.mapping_open(vdi) != Some(false)
        {
            continue;
        }
        let vdi_ref = s.vdis.iter().find(|(_, v)| &v.uuid == vdi).map(|(r, _)| r);
        if vdi_ref.is_some_and(|r| !s.attached_on(r, this).is_empty()) {
            continue;
        }
        let mapped = s
            .mappings
            .as_ref()
            .and_then(|m| m.get(vdi))
            .cloned()
            .unwrap_or_default();
        out.push(Finding {
            code: "stale_sm_refcount",
            severity: Severity::Warning,
            subject: format!("VDI {vdi}"),
            summary: format!(
                "SM counts {c} {binary} reference(s) on this host, but no tapdisk serves it, no mapping of it is open and no VM here has it attached: SM's next activation would skip lvchange -ay (and the SM hook with it)"
            ),
            evidence: json!({"sr": sr, "count": c, "binary": binary, "tapdisk": false,
                             "mappings": mapped}),
            plan: vec![
                "dmheal doctor --apply   # resets it (journalled; `dmheal restore` puts it back)".into(),
                format!("# by hand: rm /var/run/sm/refcount/lvm-{sr}/{vdi}"),
            ],
            safe_action: Some(SafeAction::ResetRefcount {
                sr: sr.clone(),
                vdi: vdi.clone(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;
    use crate::doctor::snapshot::LocalMapping;

    #[test]
    fn a_count_nothing_backs_is_stale_and_anything_using_the_vdi_keeps_it() {
        let mut s = pool();
        let a = this_host(&s);
        let (sr, _) = add_sr(&mut s, "local", "lvm", &[(&a, "device=/dev/sda3", true)]);
        let vdi = add_vdi(&mut s, &sr, "disk");
        let (sr_uuid, vdi_uuid) = (s.srs[&sr].uuid.clone(), s.vdis[&vdi].uuid.clone());
        s.refcounts = vec![(
            sr_uuid,
            vdi_uuid.clone(),
            Refcount::Counts {
                count: 1,
                binary: 0,
            },
        )];
        assert_eq!(stale(&s).len(), 1);
        s.tapdisk_paths = Some(vec![format!("/dev/x/VHD-{vdi_uuid}")]);
        assert!(stale(&s).is_empty(), "a tapdisk serves it");
        s.tapdisk_paths = Some(vec![]);
        let open = LocalMapping {
            dm_name: "x".into(),
            open_count: Some(1),
            verdict: "healthy".into(),
        };
        s.mappings = Some([(vdi_uuid.clone(), vec![open])].into());
        assert!(stale(&s).is_empty(), "its mapping is open");
        s.mappings = None;
        assert!(stale(&s).is_empty(), "device-mapper not scanned");
        s.mappings = Some(Default::default());
        let vm = add_vm(&mut s, "web", "Running", Some((&a, 4)));
        add_vbd(&mut s, &vm, &vdi, true);
        assert!(stale(&s).is_empty(), "attached to a VM here");
    }
}
