//! The pool's own settings: its default SR. After a botched upgrade and a round of
//! `sr-forget`, `pool.default_SR` can point at nothing, or at one host's local storage — every
//! VM created or imported without an SR then lands on one host (or fails). Xen Orchestra's
//! "Local default SRs" and "Pools with no default SR".

use serde_json::json;

use super::{sr_label, Finding, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::xapi::records::NULL_REF;

/// A pool whose default SR is unset or names no SR in the database. Must not fire when it
/// names an SR xapi has.
pub fn no_default_sr(s: &Snapshot) -> Vec<Finding> {
    s.pools
        .values()
        .filter(|p| p.default_sr.is_empty() || p.default_sr == NULL_REF || !s.srs.contains_key(&p.default_sr))
        .map(|p| {
            let unset = p.default_sr.is_empty() || p.default_sr == NULL_REF;
            Finding {
                code: "no_default_sr",
                severity: Severity::Warning,
                subject: format!("pool {}", p.uuid),
                summary: if unset {
                    "the pool has no default SR: a VM created or imported without one has nowhere to go, and xe sr-list shows none as default".into()
                } else {
                    format!("the pool's default SR {} is not in the database (forgotten?)", p.default_sr)
                },
                evidence: json!({"default_SR": p.default_sr}),
                plan: vec![
                    "xe sr-list shared=true params=uuid,name-label,type   # choose a shared SR".into(),
                    format!("xe pool-param-set uuid={} default-SR=<the SR's uuid>", p.uuid),
                ],
                safe_action: None,
            }
        })
        .collect()
}

/// A pool of more than one host whose default SR is not shared (one host's local storage),
/// as Xen Orchestra judges it: writable (not ISO, a size known) and `shared` false. Must not
/// fire for a single-host pool, or a shared default SR.
pub fn local_default_sr(s: &Snapshot) -> Vec<Finding> {
    if s.hosts.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in s.pools.values() {
        let Some(sr) = s.srs.get(&p.default_sr) else {
            continue;
        };
        if sr.shared || sr.content_type == "iso" || sr.physical_size <= 0 {
            continue;
        }
        out.push(Finding {
            code: "default_sr_local",
            severity: Severity::Warning,
            subject: format!("pool {}", p.uuid),
            summary: format!(
                "the default SR of this {}-host pool is {}, which is not shared: VMs created without an SR land on one host's storage and cannot move",
                s.hosts.len(),
                sr_label(s, &p.default_sr)
            ),
            evidence: json!({"default_SR": sr.uuid, "type": sr.kind, "shared": sr.shared}),
            plan: vec![
                "xe sr-list shared=true params=uuid,name-label,type   # choose a shared SR".into(),
                format!("xe pool-param-set uuid={} default-SR=<the shared SR's uuid>", p.uuid),
            ],
            safe_action: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;

    #[test]
    fn the_default_sr_must_exist_and_on_a_pool_of_several_hosts_be_shared() {
        let mut s = pool();
        assert_eq!(no_default_sr(&s).len(), 1, "the fixture pool has none");
        let a = this_host(&s);
        let (local, _) = add_sr(
            &mut s,
            "Local storage",
            "lvm",
            &[(&a, "device=/dev/sda3", true)],
        );
        s.srs.get_mut(&local).unwrap().physical_size = 1 << 30;
        s.pools.values_mut().next().unwrap().default_sr = local.clone();
        assert!(no_default_sr(&s).is_empty());
        assert!(local_default_sr(&s).is_empty(), "one host: local is fine");
        add_host(&mut s, "xcp-b", true);
        assert_eq!(local_default_sr(&s).len(), 1);
        s.srs.get_mut(&local).unwrap().shared = true;
        assert!(local_default_sr(&s).is_empty());
        s.pools.values_mut().next().unwrap().default_sr = "OpaqueRef:forgotten".into();
        assert!(no_default_sr(&s)[0].summary.contains("not in the database"));
    }
}
