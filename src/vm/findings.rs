//! From what xapi and every host say about a VM to what blocks it, blocking first, each with the
//! exact next step. Pure: tested on built answers.

use serde::Serialize;

use super::{Disk, HostView, VmInfo};
use crate::verdict::Verdict;
use crate::xapi::fanout::AskStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Stops the VM from starting (or migrating) until it is dealt with.
    Blocking,
    /// Leaves something unknown or odd that may block it.
    Warning,
    Info,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable machine code: ghost, needs_human, in_use_elsewhere, no_domain, resident_host_down,
    /// domain_unknown, host_unanswered, host_skipped, not_lvm, clear.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vdi_uuid: Option<String>,
    pub summary: String,
    /// What to run plan, in order (commands; a line starting with '#' says why).
    pub plan: Vec<String>,
}

fn running(vm: &VmInfo) -> bool {
    matches!(vm.power_state.as_str(), "Running" | "Paused")
}

/// Every finding, blocking first (ghosts first among them).
pub fn derive(vm: &VmInfo, disks: &[Disk], hosts: &[HostView]) -> Vec<Finding> {
    let mut out = Vec::new();
    let lvm_disks: Vec<&Disk> = disks.iter().filter(|d| d.lvm).collect();
    let disk_of = |vdi: &str| disks.iter().find(|d| d.vdi_uuid == vdi);
    let resident = vm.resident_on.as_ref();
    for h in hosts {
        let finding =
            |severity, code, vdi: Option<&str>, summary: String, next: Vec<String>| Finding {
                severity,
                code,
                host_uuid: Some(h.host_uuid.clone()),
                host_name: Some(h.host_name.clone()),
                vdi_uuid: vdi.map(str::to_string),
                summary,
                plan: next,
            };
        let is_resident = resident.is_some_and(|r| r.uuid == h.host_uuid);
        match (&h.status, &h.answer) {
            (AskStatus::Skipped, _) => {
                if is_resident && running(vm) {
                    out.push(finding(
                        Severity::Blocking,
                        "resident_host_down",
                        None,
                        format!(
                            "xapi says VM {} is {} on {}, which is {}",
                            vm.name_label,
                            vm.power_state,
                            h.host_name,
                            h.error.as_deref().unwrap_or("not asked")
                        ),
                        vec![
                            format!(
                                "# only once {} is really off (fenced or powered down):",
                                h.host_name
                            ),
                            format!("xe vm-reset-powerstate uuid={} --force", vm.uuid),
                        ],
                    ));
                } else {
                    out.push(finding(
                        Severity::Info,
                        "host_skipped",
                        None,
                        format!(
                            "{} was not asked ({})",
                            h.host_name,
                            h.error.as_deref().unwrap_or("down")
                        ),
                        Vec::new(),
                    ));
                }
            }
            (AskStatus::Failed, _) | (AskStatus::Asked, None) => {
                if lvm_disks.is_empty() && !is_resident {
                    continue;
                }
                let mut next: Vec<String> = lvm_disks
                    .iter()
                    .map(|d| format!("# on {}: dmheal inspect {}", h.host_name, d.vdi_uuid))
                    .collect();
                next.push(format!(
                    "xe host-call-plugin host-uuid={} plugin=dmheal fn=version",
                    h.host_uuid
                ));
                out.push(finding(
                    Severity::Warning,
                    "host_unanswered",
                    None,
                    format!(
                        "{} could not be asked ({}): a ghost of the VM's disks there would not be seen",
                        h.host_name,
                        h.error.as_deref().unwrap_or("no answer")
                    ),
                    next,
                ));
            }
            (AskStatus::Asked, Some(view)) => {
                for vol in &view.volumes {
                    let disk = disk_of(&vol.vdi_uuid);
                    let what = match disk {
                        Some(d) => format!(
                            "VDI \"{}\" ({}, device {} of the VM)",
                            d.vdi_name, d.vdi_uuid, d.device
                        ),
                        None => format!("VDI {}", vol.vdi_uuid),
                    };
                    let dm = vol.dm_name.as_deref().unwrap_or("-");
                    match vol.verdict {
                        Verdict::Ghost => out.push(finding(
                            Severity::Blocking,
                            "ghost",
                            Some(&vol.vdi_uuid),
                            format!(
                                "{what} has a ghost mapping on {}: {dm}. Activating the VDI there fails \
                                 \"Device or resource busy\" (SR_BACKEND_FAILURE_46)",
                                h.host_name
                            ),
                            vec![
                                crate::commands::heal_through_plugin(&h.host_uuid, &vol.vdi_uuid),
                                format!(
                                    "# or on {}: {}",
                                    h.host_name,
                                    crate::commands::heal_here(&vol.vdi_uuid)
                                ),
                                format!("# or for every ghost of this VM at once: dmheal vm {} --apply", vm.uuid),
                            ],
                        )),
                        Verdict::Suspicious => out.push(finding(
                            Severity::Blocking,
                            "needs_human",
                            Some(&vol.vdi_uuid),
                            format!(
                                "{what} has a mapping on {} that needs a human: {}",
                                h.host_name, vol.summary
                            ),
                            vec![format!("# on {}: dmheal inspect {}", h.host_name, vol.vdi_uuid)],
                        )),
                        Verdict::InUse if is_resident && running(vm) => {}
                        Verdict::InUse => out.push(finding(
                            if running(vm) {
                                Severity::Warning
                            } else {
                                Severity::Blocking
                            },
                            "in_use_elsewhere",
                            Some(&vol.vdi_uuid),
                            format!(
                                "{what} is in use on {}{}: {}",
                                h.host_name,
                                if running(vm) { ", where the VM does not run" } else { " while the VM is not running" },
                                vol.summary
                            ),
                            vec![format!(
                                "# on {}: dmheal inspect {}   (names the user: a tapdisk, a process, a VBD)",
                                h.host_name, vol.vdi_uuid
                            )],
                        )),
                        Verdict::Healthy | Verdict::Absent => {}
                    }
                }
                if let (true, Some(d)) = (is_resident && running(vm), &view.domain) {
                    match d.present {
                        Some(false) => out.push(finding(
                            Severity::Blocking,
                            "no_domain",
                            None,
                            format!(
                                "xapi says VM {} is {} on {} as domain {}, but {} has no such domain ({})",
                                vm.name_label, vm.power_state, h.host_name, d.domid, h.host_name, d.source
                            ),
                            vec![
                                format!("# on {}: xl list   (confirm domain {} is gone)", h.host_name, d.domid),
                                format!("xe vm-reset-powerstate uuid={} --force", vm.uuid),
                            ],
                        )),
                        None => out.push(finding(
                            Severity::Warning,
                            "domain_unknown",
                            None,
                            format!(
                                "whether domain {} runs on {} is unknown: {}",
                                d.domid, h.host_name, d.source
                            ),
                            vec![format!("# on {}: xl list", h.host_name)],
                        )),
                        Some(true) => {}
                    }
                }
            }
        }
    }
    let not_lvm: Vec<&Disk> = disks.iter().filter(|d| !d.lvm).collect();
    if !not_lvm.is_empty() {
        let names: Vec<String> = not_lvm
            .iter()
            .map(|d| format!("{} (SR type {})", d.vdi_uuid, d.sr_type))
            .collect();
        out.push(Finding {
            severity: Severity::Info,
            code: "not_lvm",
            host_uuid: None,
            host_name: None,
            vdi_uuid: None,
            summary: format!(
                "not on an LVM-based SR, so no device-mapper ghost can block them: {}",
                names.join(", ")
            ),
            plan: Vec::new(),
        });
    }
    if !out.iter().any(|f| f.severity == Severity::Blocking) {
        out.push(Finding {
            severity: Severity::Info,
            code: "clear",
            host_uuid: None,
            host_name: None,
            vdi_uuid: None,
            summary: "no host that answered holds a ghost or a stray user of the VM's disks".into(),
            plan: Vec::new(),
        });
    }
    out.sort_by_key(|f| (f.severity, f.code != "ghost"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::local::{DomainHere, LocalView, LocalVolume};
    use crate::vm::HostName;
    use crate::xapi::fanout::HostState;

    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    fn vm(power: &str, resident: Option<&str>) -> VmInfo {
        VmInfo {
            uuid: "vm-1".into(),
            name_label: "S-Domino".into(),
            power_state: power.into(),
            resident_on: resident.map(|h| HostName {
                uuid: h.into(),
                name_label: h.into(),
            }),
            domid: Some(7),
        }
    }

    fn disk() -> Disk {
        Disk {
            device: "0".into(),
            vdi_uuid: VDI.into(),
            vdi_name: "system".into(),
            sr_uuid: "sr".into(),
            sr_name: "shared iSCSI".into(),
            sr_type: "lvmoiscsi".into(),
            lvm: true,
        }
    }

    fn host(name: &str, verdict: Verdict, domain: Option<bool>) -> HostView {
        HostView {
            host_uuid: name.into(),
            host_name: name.into(),
            state: HostState::Live,
            version: None,
            status: AskStatus::Asked,
            error: None,
            answer: Some(LocalView {
                host_uuid: Some(name.into()),
                volumes: vec![LocalVolume {
                    vdi_uuid: VDI.into(),
                    dm_name: Some("VG-VHD".into()),
                    verdict,
                    summary: "x".into(),
                    reasons: Vec::new(),
                }],
                domain: domain.map(|p| DomainHere {
                    domid: 7,
                    present: Some(p),
                    state: None,
                    source: "xl list".into(),
                }),
            }),
        }
    }

    fn failed(name: &str) -> HostView {
        HostView {
            host_uuid: name.into(),
            host_name: name.into(),
            state: HostState::Live,
            version: None,
            status: AskStatus::Failed,
            error: Some("did not answer within 5 s".into()),
            answer: None,
        }
    }

    fn codes(f: &[Finding]) -> Vec<(&str, Option<&str>)> {
        f.iter().map(|f| (f.code, f.host_name.as_deref())).collect()
    }

    #[test]
    fn a_ghost_on_the_destination_comes_first_with_the_heal_command() {
        let hosts = [
            failed("c"),
            host("a", Verdict::Absent, None),
            host("b", Verdict::Ghost, None),
        ];
        let f = derive(&vm("Halted", None), &[disk()], &hosts);
        assert_eq!(
            codes(&f),
            vec![("ghost", Some("b")), ("host_unanswered", Some("c"))]
        );
        assert!(f[0].plan[0].contains("host-uuid=b plugin=dmheal fn=heal"));
        assert!(f[0].plan[0].contains(&format!("args:vdi_uuid={VDI} args:apply=true")));
    }

    #[test]
    fn the_vm_using_its_disk_where_it_runs_is_no_finding() {
        let f = derive(
            &vm("Running", Some("a")),
            &[disk()],
            &[host("a", Verdict::InUse, Some(true))],
        );
        assert_eq!(codes(&f), vec![("clear", None)]);
    }

    #[test]
    fn a_running_vm_without_its_domain_and_a_user_elsewhere_are_said() {
        let f = derive(
            &vm("Running", Some("a")),
            &[disk()],
            &[
                host("a", Verdict::Absent, Some(false)),
                host("b", Verdict::InUse, None),
            ],
        );
        assert_eq!(
            codes(&f),
            vec![("no_domain", Some("a")), ("in_use_elsewhere", Some("b"))]
        );
        assert_eq!(f[1].severity, Severity::Warning);
        // A halted VM's disk held somewhere blocks its start.
        let f = derive(
            &vm("Halted", None),
            &[disk()],
            &[host("b", Verdict::InUse, None)],
        );
        assert_eq!(f[0].severity, Severity::Blocking);
    }

    #[test]
    fn a_running_vm_on_a_host_that_is_down_blocks() {
        let mut down = failed("a");
        down.status = AskStatus::Skipped;
        down.state = HostState::Down;
        down.error = Some("down".into());
        let f = derive(&vm("Running", Some("a")), &[disk()], &[down]);
        assert_eq!(codes(&f), vec![("resident_host_down", Some("a"))]);
    }

    #[test]
    fn disks_off_lvm_are_said_and_block_nothing() {
        let mut d = disk();
        d.lvm = false;
        d.sr_type = "nfs".into();
        let f = derive(&vm("Halted", None), &[d], &[]);
        assert_eq!(codes(&f), vec![("not_lvm", None), ("clear", None)]);
    }
}
