//! VM power state in xapi against the domains each host runs, in both directions, pool-wide
//! (this host's domains read here, every other host's from its survey): xapi says Running or
//! Paused and no domain exists; xapi says Paused and the domain runs (or is paused, as a failed
//! migration leaves it). Both are printed plans: a power-state reset cannot be undone through
//! xapi, so `--apply` never does it.

use serde_json::json;

use super::{Finding, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::domains::Domains;
use crate::xapi::records::Vm;

fn disks(s: &Snapshot, vm: &Vm) -> Vec<String> {
    vm.vbds
        .iter()
        .filter_map(|b| s.vbds.get(b))
        .filter_map(|b| s.vdis.get(&b.vdi))
        .map(|v| v.uuid.clone())
        .collect()
}

fn label(vm: &Vm) -> String {
    format!("VM {} ({:?})", vm.uuid, vm.name_label)
}

/// The VMs xapi calls Running or Paused, with the host they are resident on.
fn resident(s: &Snapshot) -> impl Iterator<Item = (&Vm, &str)> {
    s.vms
        .values()
        .filter(|vm| !vm.is_control_domain && !vm.is_a_template && !vm.is_a_snapshot)
        .filter(|vm| matches!(vm.power_state.as_str(), "Running" | "Paused"))
        .map(|vm| (vm, vm.resident_on.as_str()))
}

/// "this host" or the host's name.
fn on(s: &Snapshot, host: &str) -> String {
    if Some(host) == s.this_host.as_deref() {
        "this host".into()
    } else {
        s.host_name(host)
    }
}

/// VMs xapi calls Running or Paused on a host whose domain does not exist there, and whose
/// disks no tapdisk there serves. Must not fire: the domain exists; that host's domains are
/// unknown (down, not answering, no xenstore and no xl); a tapdisk serves one of its disks, or
/// that host's tapdisks cannot be asked. Hosts that could not be asked are said in the
/// report's "not checked".
pub fn without_domain(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for (vm, host) in resident(s) {
        let Some(Domains::Known { domids, source, .. }) = s.domains_on(host) else {
            continue;
        };
        let domid: Option<u32> = vm.domid.parse().ok();
        if domid.is_some_and(|d| domids.contains(&d)) {
            continue;
        }
        let disks = disks(s, vm);
        if disks
            .iter()
            .any(|d| s.tapdisk_serves_on(host, d) != Some(false))
        {
            continue;
        }
        let host_uuid = s.hosts.get(host).map(|h| h.uuid.clone());
        out.push(Finding {
            code: "vm_without_domain",
            severity: Severity::Critical,
            subject: label(vm),
            summary: format!(
                "xapi says {} on {} with domid {}, but no such domain exists there and no tapdisk there serves its disks",
                vm.power_state,
                on(s, host),
                vm.domid
            ),
            evidence: json!({"power_state": vm.power_state, "domid": vm.domid, "host": s.host_name(host),
                             "host_uuid": host_uuid, "domains": domids,
                             "domains_from": source, "disks": disks}),
            plan: vec![
                format!(
                    "# confirm on {}: xl list; tap-ctl list   (the domain is gone, nothing serves its disks)",
                    s.host_name(host)
                ),
                format!("xe vm-reset-powerstate uuid={} --force", vm.uuid),
            ],
            safe_action: None,
        });
    }
    out
}

/// VMs xapi calls Paused on a host while their domain there exists and is not paused in xl's
/// eyes, or is paused where xapi's records say a migration left it: the two disagree and a
/// human must say which is right. Never acted on. Must not fire: xapi says Running; the domain
/// does not exist (`without_domain`); xl's states there are unknown.
pub fn paused_with_a_domain(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for (vm, host) in resident(s) {
        if vm.power_state != "Paused" {
            continue;
        }
        let Some(Domains::Known { states, source, .. }) = s.domains_on(host) else {
            continue;
        };
        let Some(state) = vm.domid.parse::<u32>().ok().and_then(|d| states.get(&d)) else {
            continue;
        };
        let (what, plan) = if state.contains('p') {
            (
                "is paused too (as an interrupted migration leaves it)",
                vec![
                    format!("xl list {}   # confirm the domain is this VM's", vm.domid),
                    format!("xe vm-unpause uuid={}   # if it should run", vm.uuid),
                ],
            )
        } else {
            (
                "is running",
                vec![
                    format!("xl list {}   # confirm the domain is this VM's", vm.domid),
                    format!(
                        "xe vm-unpause uuid={}   # xapi then takes the domain's state again",
                        vm.uuid
                    ),
                ],
            )
        };
        out.push(Finding {
            code: "vm_paused_with_domain",
            severity: Severity::Warning,
            subject: label(vm),
            summary: format!(
                "xapi says Paused on {}, but domain {} {what}",
                on(s, host),
                vm.domid
            ),
            evidence: json!({"power_state": vm.power_state, "domid": vm.domid, "xl_state": state,
                             "host": s.host_name(host),
                             "domains_from": source, "disks": disks(s, vm)}),
            plan,
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
    fn running_without_a_domain_is_reset_only_when_nothing_serves_its_disks() {
        let mut s = pool();
        let a = this_host(&s);
        let (sr, _) = add_sr(&mut s, "local", "lvm", &[(&a, "device=/dev/sda3", true)]);
        let vdi = add_vdi(&mut s, &sr, "disk");
        let vm = add_vm(&mut s, "web", "Running", Some((&a, 7)));
        add_vbd(&mut s, &vm, &vdi, true);
        assert_eq!(without_domain(&s).len(), 1);
        let uuid = s.vdis[&vdi].uuid.clone();
        s.tapdisk_paths = Some(vec![format!("/dev/VG_XenStorage-x/VHD-{uuid}")]);
        assert!(without_domain(&s).is_empty());
        s.tapdisk_paths = None;
        assert!(without_domain(&s).is_empty(), "tapdisk unknown");
        s.tapdisk_paths = Some(vec![]);
        domains(&mut s, &[(0, "r-----"), (7, "-b----")]);
        assert!(without_domain(&s).is_empty(), "the domain exists");
    }

    #[test]
    fn paused_in_xapi_while_the_domain_runs_or_is_paused() {
        let mut s = pool();
        let a = this_host(&s);
        let vm = add_vm(&mut s, "db", "Paused", Some((&a, 8)));
        domains(&mut s, &[(0, "r-----"), (8, "-b----")]);
        let f = paused_with_a_domain(&s);
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("is running") && f[0].safe_action.is_none());
        domains(&mut s, &[(0, "r-----"), (8, "--p---")]);
        assert!(paused_with_a_domain(&s)[0].summary.contains("paused too"));
        // No domain: the other check's case, not this one's.
        domains(&mut s, &[(0, "r-----")]);
        assert!(paused_with_a_domain(&s).is_empty());
        assert_eq!(without_domain(&s).len(), 1);
        s.vms.get_mut(&vm).unwrap().power_state = "Running".into();
        domains(&mut s, &[(0, "r-----"), (8, "-b----")]);
        assert!(paused_with_a_domain(&s).is_empty());
    }
}
