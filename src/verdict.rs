//! The decision: a pure function from `Facts` to a verdict, with one reason per layer in
//! machine form (`code`) and as a sentence (`message`). No I/O here, so every rule is tested
//! without a kernel.

use serde::Serialize;

use crate::dm::{DmDevice, DmStatus};
use crate::facts::{Facts, TapdiskFacts, UsersSearched};
use std::borrow::Cow;

use crate::lvm::LvmView;
use crate::sm::Refcount;
use crate::xapi::XapiView;

/// What dmheal concludes about a DM name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

fn reason(
    layer: Layer,
    signal: Signal,
    code: &'static str,
    state: impl Into<Cow<'static, str>>,
    message: impl Into<Cow<'static, str>>,
) -> Reason {
    Reason {
        layer,
        signal,
        code,
        state: state.into(),
        message: message.into(),
    }
}

/// Decide on the facts of one DM name.
pub fn decide(f: &Facts) -> Decision {
    use Signal::*;
    let Some(dev) = &f.device else {
        return Decision {
            verdict: Verdict::Absent,
            summary: "no mapping of this name in the kernel: nothing to do".into(),
            reasons: vec![reason(
                Layer::DeviceMapper,
                Clear,
                "dm_absent",
                "absent",
                "the kernel has no mapping of this name; lvchange -ay can create it",
            )],
        };
    };

    let mut rs: Vec<Reason> = Vec::new();

    // Naming: dmheal only ever considers plain LVs of SR volume groups.
    match &f.lvm_name {
        None => rs.push(reason(
            Layer::Naming,
            Suspicious,
            "not_lvm",
            "not an LVM name",
            "the name is not vg-lv shaped: not an LVM volume, dmheal never touches it",
        )),
        Some(n) if n.layer.is_some() => rs.push(reason(
            Layer::Naming,
            Suspicious,
            "lvm_layer",
            format!("LVM sub-device -{}", n.layer.as_deref().unwrap_or_default()),
            "an LVM internal layer (snapshot, pool); never a VDI's ghost",
        )),
        Some(n) if f.sr.is_none() => rs.push(reason(
            Layer::Naming,
            Suspicious,
            "foreign_vg",
            format!("VG {}", n.vg),
            format!(
                "VG {} is not an SR's (VG_XenStorage-<sr>, XSLocalEXT-<sr>): never touched",
                n.vg
            ),
        )),
        Some(n) if f.vdi.is_none() => rs.push(reason(
            Layer::Naming,
            Suspicious,
            "not_a_vdi",
            format!("LV {}", n.lv),
            format!(
                "LV {} of SR volume group {} is not a VDI's volume ({}<vdi uuid>): its SM, xapi and tapdisk layers cannot be asked, so it is never healed",
                n.lv,
                n.vg,
                crate::lvm::names::VDI_LV_PREFIXES.join("<vdi uuid>, ")
            ),
        )),
        Some(n) => rs.push(reason(
            Layer::Naming,
            Clear,
            "sr_volume",
            format!(
                "SR {}",
                f.sr.as_ref().map(|s| s.as_str()).unwrap_or_default()
            ),
            match &f.vdi {
                Some(v) => format!("LV {} of SR volume group {} stores VDI {v}", n.lv, n.vg),
                None => format!("LV {} of SR volume group {}", n.lv, n.vg),
            },
        )),
    }

    // LVM's own mapping: it carries exactly the uuid LVM gives its LV (healthy whatever else).
    let lvm_owned = matches!(&f.lvm, Some(LvmView::Lv(lv)) if lv.expected_dm_uuid() == dev.uuid);

    // Device-mapper.
    let uuid_text = if dev.uuid.is_empty() {
        "none".to_string()
    } else {
        dev.uuid.clone()
    };
    match &dev.status {
        // A host scan lists LVM's own mappings without asking their status: nothing here can
        // prove a mapping unused, so anything but LVM's own uuid (checked below) is not clear.
        None => {
            let state = format!("{} uuid {}, status not read", dev.dev, uuid_text);
            rs.push(if lvm_owned {
                reason(
                    Layer::DeviceMapper,
                    Clear,
                    "dm_listed",
                    state,
                    "listed by the kernel with the uuid LVM gives this LV; a host scan does not ask its open count (`dmheal inspect` does)",
                )
            } else {
                reason(
                    Layer::DeviceMapper,
                    Suspicious,
                    "dm_status_unknown",
                    state,
                    "the kernel's status of this mapping was not read: nothing is proven about its use",
                )
            });
        }
        Some(st) => rs.push(status_reason(dev, st, &uuid_text)),
    }

    // LVM.
    match &f.lvm {
        None => {}
        Some(LvmView::Lv(lv)) => {
            let expected = lv.expected_dm_uuid();
            if lvm_owned {
                rs.push(reason(
                    Layer::Lvm,
                    Healthy,
                    "lvm_owns",
                    lv.state(),
                    "the mapping carries the uuid LVM gives this LV: it is LVM's own, live mapping",
                ));
            } else if dev.uuid.starts_with(&expected) {
                rs.push(reason(
                    Layer::Lvm,
                    Suspicious,
                    "lvm_sub_uuid",
                    format!("uuid {}", dev.uuid),
                    "the uuid is LVM's for this LV plus a suffix: an LVM internal layer",
                ));
            } else if let Some(owner) = &f.uuid_owner {
                rs.push(reason(
                    Layer::Lvm,
                    Suspicious,
                    "lvm_other_lv",
                    "uuid of another LV",
                    format!(
                        "the mapping carries the identity of LV {owner}: a rename in progress?"
                    ),
                ));
            } else if lv.active {
                rs.push(reason(
                    Layer::Lvm,
                    Suspicious,
                    "lvm_active_elsewhere",
                    lv.state(),
                    "LVM reports the LV active, yet not through this mapping",
                ));
            } else {
                rs.push(reason(Layer::Lvm, Clear, "lvm_inactive", lv.state(),
                    format!("LVM says the LV is inactive; it would create this name with uuid {expected}, which the kernel refuses while this mapping exists")));
            }
        }
        Some(LvmView::LvMissing) => rs.push(reason(
            Layer::Lvm,
            Clear,
            "lvm_no_lv",
            "no such LV",
            "the VG has no LV of this name any more: the mapping outlived its volume",
        )),
        Some(LvmView::VgMissing) => rs.push(reason(
            Layer::Lvm,
            Suspicious,
            "lvm_no_vg",
            "VG not found",
            "LVM does not see this VG on this host: nothing can be proven from LVM",
        )),
        Some(LvmView::Unreadable { why }) => rs.push(reason(
            Layer::Lvm,
            Suspicious,
            "lvm_unreadable",
            "unreadable",
            format!("LVM could not be read: {why}"),
        )),
    }

    // Kernel users.
    if f.users_searched == UsersSearched::Nothing && dev.status.is_none() {
        rs.push(reason(
            Layer::Holders,
            Clear,
            "not_searched",
            "not searched",
            "a host scan does not look for the users of LVM's own mappings",
        ));
    } else if f.users_searched == UsersSearched::Nothing {
        rs.push(reason(
            Layer::Holders,
            Clear,
            "not_open",
            "open count 0",
            "the kernel's own count of users is 0: no opener, mmap, mount, stacked device, swap or loop device holds it (the count is authoritative; users are searched only to name them)",
        ));
    } else {
        rs.push(if let Some(why) = &f.holders_unreadable {
            reason(
                Layer::Holders,
                Suspicious,
                "holders_unreadable",
                "not looked at",
                format!("stacked devices could not be looked for: {why}"),
            )
        } else if f.holders.is_empty() {
            reason(
                Layer::Holders,
                Clear,
                "no_holders",
                "none",
                "no device is stacked on it",
            )
        } else {
            let names: Vec<String> = f.holders.iter().map(|h| h.name.clone()).collect();
            reason(
                Layer::Holders,
                InUse,
                "holders",
                names.join(", "),
                format!("stacked under {}", names.join(", ")),
            )
        });
        if f.users_searched == UsersSearched::Holders {
            rs.push(reason(
                Layer::Openers,
                Clear,
                "openers_not_searched",
                "not searched",
                "a host scan does not walk /proc; `dmheal inspect` names the processes",
            ));
        } else if let Some(why) = &f.proc_unreadable {
            for (layer, code, what) in [
                (
                    Layer::Openers,
                    "openers_unreadable",
                    "processes holding it open",
                ),
                (Layer::Mounts, "mounts_unreadable", "mounts of it"),
            ] {
                rs.push(reason(
                    layer,
                    Suspicious,
                    code,
                    "not looked at",
                    format!("{what} could not be looked for: {why}"),
                ));
            }
        } else {
            rs.push(if f.openers.is_empty() {
                reason(
                    Layer::Openers,
                    Clear,
                    "no_openers",
                    "none",
                    "no process has it open",
                )
            } else {
                let who: Vec<String> = f
                    .openers
                    .iter()
                    .map(|o| format!("pid {} ({})", o.pid, o.command))
                    .collect();
                reason(
                    Layer::Openers,
                    InUse,
                    "openers",
                    who.join(", "),
                    format!("held open by {}", who.join(", ")),
                )
            });
            rs.push(if f.mounts.is_empty() {
                reason(
                    Layer::Mounts,
                    Clear,
                    "no_mounts",
                    "none",
                    "not mounted in any mount namespace",
                )
            } else {
                let at: Vec<String> = f
                    .mounts
                    .iter()
                    .map(|m| format!("{} (ns of pid {})", m.mount_point, m.pid))
                    .collect();
                reason(
                    Layer::Mounts,
                    InUse,
                    "mounted",
                    at.join(", "),
                    format!("mounted at {}", at.join(", ")),
                )
            });
        }
    }

    // tapdisk.
    match &f.tapdisk {
        TapdiskFacts::NotChecked => {}
        TapdiskFacts::NotInstalled => rs.push(reason(
            Layer::Tapdisk,
            Clear,
            "no_tap_ctl",
            "no tap-ctl",
            "tap-ctl is not installed: no tapdisk facts on this host",
        )),
        TapdiskFacts::Failed { why } => rs.push(reason(
            Layer::Tapdisk,
            Suspicious,
            "tap_ctl_failed",
            "tap-ctl failed",
            format!("tapdisk could not be asked: {why}"),
        )),
        TapdiskFacts::Listed { naming_this } if naming_this.is_empty() => rs.push(reason(
            Layer::Tapdisk,
            Clear,
            "no_tapdisk",
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
            rs.push(reason(Layer::Tapdisk, InUse, if paused { "tapdisk_paused" } else { "tapdisk" }, who.join(", "),
                if paused {
                    format!("tapdisk {} is paused: it has closed the device and will reopen it, so open count 0 proves nothing", who.join(", "))
                } else {
                    format!("tapdisk {} serves this volume", who.join(", "))
                }));
        }
    }

    // SM.
    match &f.refcount {
        Refcount::NotApplicable => {}
        Refcount::Absent => rs.push(reason(Layer::Sm, Clear, "refcount_absent", "no refcount",
            "SM holds no reference to this VDI")),
        Refcount::Counts { count, binary } if f.refcount.is_zero() => rs.push(reason(Layer::Sm, Clear,
            "refcount_zero", format!("refcount {count} {binary}"), "SM's reference count is zero")),
        Refcount::Counts { count, binary } if f.activating && count + binary == 1 => rs.push(reason(Layer::Sm, Clear,
            "refcount_activating", format!("refcount {count} {binary}"),
            "SM's one reference is the activation in progress's own: LVMCache.activate counts the reference, then activates the LV only when the count has just become 1")),
        Refcount::Counts { count, binary } => rs.push(reason(Layer::Sm, InUse, "refcount",
            format!("refcount {count} {binary}"),
            format!("SM holds references to this VDI (count {count}, binary {binary}): it believes the volume active"))),
        Refcount::Unreadable { why } => rs.push(reason(Layer::Sm, Suspicious, "refcount_unreadable", "unreadable",
            format!("SM's reference count cannot be read: {why}"))),
    }

    // xapi: available facts count; an unreachable xapi is reported and does not block.
    match &f.xapi {
        XapiView::NotApplicable => {}
        XapiView::NotConfigured => rs.push(reason(
            Layer::Xapi,
            Clear,
            "no_xapi",
            "not asked",
            "no xapi on this host (no /var/lib/xcp/xapi) and none configured",
        )),
        XapiView::Unreachable { why } => rs.push(reason(
            Layer::Xapi,
            Clear,
            "xapi_unreachable",
            "unreachable",
            format!("xapi unreachable ({why}); the local layers decide"),
        )),
        XapiView::VdiUnknown => rs.push(reason(
            Layer::Xapi,
            Clear,
            "xapi_no_vdi",
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
                    Layer::Xapi,
                    InUse,
                    "xapi_attached",
                    format!("attached: {}", here.len()),
                    format!(
                        "xapi has the VDI attached on this host: {}",
                        here.join(", ")
                    ),
                ));
            }
            if v.paused {
                rs.push(reason(
                    Layer::Xapi,
                    InUse,
                    "xapi_paused",
                    "paused",
                    "sm-config paused: SM paused the VDI's tapdisk and will unpause it",
                ));
            }
            if v.relinking {
                rs.push(reason(
                    Layer::Xapi,
                    Suspicious,
                    "xapi_relinking",
                    "relinking",
                    "sm-config relinking: a coalesce is relinking this VDI's chain",
                ));
            }
            match (&v.host_key, v.activating) {
                (Some(mode), false) => rs.push(reason(
                    Layer::Xapi,
                    InUse,
                    "xapi_host_key",
                    format!("host key {mode}"),
                    format!("sm-config records the VDI as activated on this host ({mode})"),
                )),
                (Some(mode), true) => rs.push(reason(
                    Layer::Xapi,
                    Clear,
                    "xapi_activating",
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
                    Layer::Xapi,
                    Clear,
                    "xapi_free_here",
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

    // The summary names every blocking layer, so a log line says who holds the mapping.
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

/// The device-mapper layer's reason, from DM_DEV_STATUS.
fn status_reason(dev: &DmDevice, st: &DmStatus, uuid_text: &str) -> Reason {
    use Signal::*;
    let dm_state = format!("{} open {}, uuid {}", dev.dev, st.open_count, uuid_text);
    if st.open_count > 0 {
        reason(
            Layer::DeviceMapper,
            InUse,
            "dm_open",
            dm_state,
            format!(
                "the kernel counts {} open(s) of this mapping",
                st.open_count
            ),
        )
    } else if st.suspended {
        reason(
            Layer::DeviceMapper,
            Suspicious,
            "dm_suspended",
            format!("{dm_state}, suspended"),
            "the mapping is suspended: someone is in the middle of changing it",
        )
    } else if st.deferred_remove {
        reason(
            Layer::DeviceMapper,
            Suspicious,
            "dm_deferred_remove",
            format!("{dm_state}, deferred remove"),
            "a deferred remove is already pending on this mapping",
        )
    } else if st.inactive_table {
        reason(
            Layer::DeviceMapper,
            Suspicious,
            "dm_inactive_table",
            format!("{dm_state}, inactive table"),
            "an inactive table is loaded: a reload is in progress",
        )
    } else if !st.live_table {
        reason(
            Layer::DeviceMapper,
            Suspicious,
            "dm_no_table",
            format!("{dm_state}, no table"),
            "the mapping has no live table",
        )
    } else {
        reason(
            Layer::DeviceMapper,
            Clear,
            "dm_idle",
            dm_state,
            "registered in the kernel, open count 0, live table, not suspended",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::{DevNum, DmDevice, DmStatus};
    use crate::ids::DmName;
    use crate::kernel::{Holder, Mount, Opener};
    use crate::lvm::{dm_name_for, split_dm_name, LvRecord};
    use crate::tapdisk::Tapdisk;

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    fn lv_record(attr: &str) -> LvRecord {
        LvRecord {
            vg_name: format!("VG_XenStorage-{SR}"),
            lv_name: format!("VHD-{VDI}"),
            lv_uuid: "X4HzXT-jZRq".into(),
            vg_uuid: "K2BweQ-UkrI".into(),
            lv_attr: Some(attr.into()),
            active: attr.chars().nth(4) == Some('a'),
            read_from: crate::lvm::ReadFrom::Lvs,
        }
    }

    /// The seed ghost: SR volume, idle mapping with no uuid, LV inactive, nothing else.
    fn ghost() -> Facts {
        let vg = crate::ids::VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = crate::ids::LvName::new(&format!("VHD-{VDI}")).unwrap();
        let name = dm_name_for(&vg, &lv).unwrap();
        Facts {
            lvm_name: split_dm_name(&name),
            sr: Some(crate::ids::Uuid::new(SR).unwrap()),
            vdi: Some(crate::ids::Uuid::new(VDI).unwrap()),
            device: Some(DmDevice {
                name: name.to_string(),
                uuid: String::new(),
                dev: DevNum {
                    major: 254,
                    minor: 0,
                },
                status: Some(crate::test_support::status(0)),
                table: Some(crate::test_support::linear_table(16384)),
            }),
            dm_name: name,
            users_searched: UsersSearched::All,
            holders: vec![],
            openers: vec![],
            mounts: vec![],
            holders_unreadable: None,
            proc_unreadable: None,
            lvm: Some(LvmView::Lv(lv_record("-wi-------"))),
            uuid_owner: None,
            tapdisk: TapdiskFacts::Listed {
                naming_this: vec![],
            },
            refcount: Refcount::Absent,
            xapi: XapiView::NotConfigured,
            activating: false,
        }
    }

    /// A named change to the ghost's facts.
    type Change = Box<dyn Fn(&mut Facts)>;

    fn device(f: &mut Facts) -> &mut DmDevice {
        f.device.as_mut().unwrap()
    }

    fn status(f: &mut Facts) -> &mut DmStatus {
        device(f).status.as_mut().unwrap()
    }

    fn code_of(d: &Decision, layer: Layer) -> &'static str {
        d.reasons.iter().find(|r| r.layer == layer).unwrap().code
    }

    #[test]
    fn the_seed_ghost_is_a_ghost() {
        let d = decide(&ghost());
        assert_eq!(d.verdict, Verdict::Ghost, "{d:#?}");
        assert_eq!(code_of(&d, Layer::Lvm), "lvm_inactive");
        assert!(d.reasons.iter().all(|r| r.signal == Signal::Clear));
    }

    #[test]
    fn absent_mapping_is_absent() {
        let mut f = ghost();
        f.device = None;
        assert_eq!(decide(&f).verdict, Verdict::Absent);
    }

    #[test]
    fn lvms_own_mapping_is_healthy_even_when_open() {
        let mut f = ghost();
        f.lvm = Some(LvmView::Lv(lv_record("-wi-ao----")));
        device(&mut f).uuid = "LVM-K2BweQUkrIX4HzXTjZRq".into();
        status(&mut f).open_count = 1;
        assert_eq!(decide(&f).verdict, Verdict::Healthy);
    }

    #[test]
    fn each_user_makes_it_in_use() {
        let cases: Vec<(&str, Change)> = vec![
            (
                "dm_open",
                Box::new(|f: &mut Facts| status(f).open_count = 1),
            ),
            (
                "holders",
                Box::new(|f: &mut Facts| {
                    f.holders = vec![Holder {
                        name: "dm-1".into(),
                        dev: None,
                        depth: 1,
                    }]
                }),
            ),
            (
                "openers",
                Box::new(|f: &mut Facts| {
                    f.openers = vec![Opener {
                        pid: 42,
                        command: "qemu".into(),
                        fd: 3,
                        path: "/dev/dm-0".into(),
                    }]
                }),
            ),
            (
                "mounted",
                Box::new(|f: &mut Facts| {
                    f.mounts = vec![Mount {
                        pid: 1,
                        command: "init".into(),
                        mount_point: "/mnt".into(),
                        namespace: "mnt:[1]".into(),
                    }]
                }),
            ),
            (
                "tapdisk_paused",
                Box::new(|f: &mut Facts| {
                    f.tapdisk = TapdiskFacts::Listed {
                        naming_this: vec![Tapdisk {
                            pid: Some(7),
                            minor: Some(0),
                            state: Some(0x20),
                            kind: Some("vhd".into()),
                            path: Some("/dev/x".into()),
                        }],
                    }
                }),
            ),
            (
                "tapdisk",
                Box::new(|f: &mut Facts| {
                    f.tapdisk = TapdiskFacts::Listed {
                        naming_this: vec![Tapdisk {
                            pid: Some(7),
                            minor: Some(0),
                            state: Some(0),
                            kind: Some("vhd".into()),
                            path: Some("/dev/x".into()),
                        }],
                    }
                }),
            ),
            (
                "refcount",
                Box::new(|f: &mut Facts| {
                    f.refcount = Refcount::Counts {
                        count: 1,
                        binary: 0,
                    }
                }),
            ),
        ];
        for (code, change) in cases {
            let mut f = ghost();
            change(&mut f);
            let d = decide(&f);
            assert_eq!(d.verdict, Verdict::InUse, "{code}");
            assert!(
                d.reasons
                    .iter()
                    .any(|r| r.code == code && r.signal == Signal::InUse),
                "{code}: {d:#?}"
            );
        }
    }

    #[test]
    fn oddities_make_it_suspicious() {
        let cases: Vec<(&str, Change)> = vec![
            (
                "dm_suspended",
                Box::new(|f: &mut Facts| status(f).suspended = true),
            ),
            (
                "dm_deferred_remove",
                Box::new(|f: &mut Facts| status(f).deferred_remove = true),
            ),
            (
                "dm_inactive_table",
                Box::new(|f: &mut Facts| status(f).inactive_table = true),
            ),
            (
                "dm_no_table",
                Box::new(|f: &mut Facts| status(f).live_table = false),
            ),
            (
                "lvm_no_vg",
                Box::new(|f: &mut Facts| f.lvm = Some(LvmView::VgMissing)),
            ),
            (
                "lvm_unreadable",
                Box::new(|f: &mut Facts| f.lvm = Some(LvmView::Unreadable { why: "x".into() })),
            ),
            (
                "lvm_active_elsewhere",
                Box::new(|f: &mut Facts| f.lvm = Some(LvmView::Lv(lv_record("-wi-a-----")))),
            ),
            (
                "lvm_sub_uuid",
                Box::new(|f: &mut Facts| device(f).uuid = "LVM-K2BweQUkrIX4HzXTjZRq-real".into()),
            ),
            (
                "lvm_other_lv",
                Box::new(|f: &mut Facts| {
                    device(f).uuid = "LVM-other".into();
                    f.uuid_owner = Some("vg/other".into());
                }),
            ),
            (
                "tap_ctl_failed",
                Box::new(|f: &mut Facts| f.tapdisk = TapdiskFacts::Failed { why: "x".into() }),
            ),
            (
                "refcount_unreadable",
                Box::new(|f: &mut Facts| f.refcount = Refcount::Unreadable { why: "x".into() }),
            ),
        ];
        for (code, change) in cases {
            let mut f = ghost();
            change(&mut f);
            let d = decide(&f);
            assert_eq!(d.verdict, Verdict::Suspicious, "{code}: {d:#?}");
            assert!(d.reasons.iter().any(|r| r.code == code), "{code}: {d:#?}");
        }
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
        let d = decide(&f);
        assert!(
            d.summary.contains("1 open(s)") && d.summary.contains("pid 42 (qemu)"),
            "{}",
            d.summary
        );
    }

    fn xapi_vdi() -> crate::xapi::XapiVdi {
        crate::xapi::XapiVdi {
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
        let attached = crate::xapi::view::AttachedVbd {
            vbd: "b".into(),
            device: "xvda".into(),
            vm_uuid: "vm".into(),
            vm_name: "web".into(),
            on_this_host: true,
        };
        let cases: Vec<(&str, Verdict, crate::xapi::XapiVdi)> = vec![
            (
                "xapi_attached",
                Verdict::InUse,
                crate::xapi::XapiVdi {
                    attached: vec![attached.clone()],
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_free_here",
                Verdict::Ghost,
                crate::xapi::XapiVdi {
                    attached: vec![crate::xapi::view::AttachedVbd {
                        on_this_host: false,
                        ..attached
                    }],
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_paused",
                Verdict::InUse,
                crate::xapi::XapiVdi {
                    paused: true,
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_relinking",
                Verdict::Suspicious,
                crate::xapi::XapiVdi {
                    relinking: true,
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_host_key",
                Verdict::InUse,
                crate::xapi::XapiVdi {
                    host_key: Some("RW".into()),
                    ..xapi_vdi()
                },
            ),
            (
                "xapi_activating",
                Verdict::Ghost,
                crate::xapi::XapiVdi {
                    host_key: Some("RW".into()),
                    activating: true,
                    ..xapi_vdi()
                },
            ),
        ];
        for (code, verdict, v) in cases {
            let mut f = ghost();
            f.xapi = XapiView::Known(v);
            let d = decide(&f);
            assert_eq!(d.verdict, verdict, "{code}: {d:#?}");
            assert!(d.reasons.iter().any(|r| r.code == code), "{code}: {d:#?}");
        }
        let mut f = ghost();
        f.xapi = XapiView::Unreachable { why: "dead".into() };
        assert_eq!(
            decide(&f).verdict,
            Verdict::Ghost,
            "an unreachable xapi does not block"
        );
    }

    #[test]
    fn a_mapping_listed_without_status_is_healthy_only_if_it_is_lvms_own() {
        // A host scan on Linux 5.15+ lists LVM's own mappings and does not ask their status.
        let mut f = ghost();
        let expected = match &f.lvm {
            Some(LvmView::Lv(lv)) => lv.expected_dm_uuid(),
            _ => unreachable!(),
        };
        f.users_searched = UsersSearched::Nothing;
        device(&mut f).status = None;
        device(&mut f).uuid = expected;
        let d = decide(&f);
        assert_eq!(d.verdict, Verdict::Healthy, "{d:#?}");
        assert_eq!(code_of(&d, Layer::DeviceMapper), "dm_listed");
        assert_eq!(code_of(&d, Layer::Holders), "not_searched");
        // The same without LVM's uuid: nothing is proven, so never a ghost.
        device(&mut f).uuid = String::new();
        let d = decide(&f);
        assert_eq!(d.verdict, Verdict::Suspicious, "{d:#?}");
        assert_eq!(code_of(&d, Layer::DeviceMapper), "dm_status_unknown");
    }

    #[test]
    fn an_unopened_mapping_not_searched_is_still_a_ghost_and_says_why() {
        let mut f = ghost();
        f.users_searched = UsersSearched::Nothing;
        let d = decide(&f);
        assert_eq!(d.verdict, Verdict::Ghost);
        assert_eq!(code_of(&d, Layer::Holders), "not_open");
        assert!(!d.reasons.iter().any(|r| r.layer == Layer::Openers));
    }

    #[test]
    fn in_use_outranks_suspicious() {
        let mut f = ghost();
        status(&mut f).suspended = true;
        f.refcount = Refcount::Counts {
            count: 0,
            binary: 1,
        };
        assert_eq!(decide(&f).verdict, Verdict::InUse);
    }

    #[test]
    fn foreign_vg_is_never_a_ghost() {
        let mut f = ghost();
        let name = DmName::new("vg_data-lv_home").unwrap();
        f.lvm_name = split_dm_name(&name);
        f.dm_name = name;
        f.sr = None;
        let d = decide(&f);
        assert_eq!(d.verdict, Verdict::Suspicious);
        assert_eq!(code_of(&d, Layer::Naming), "foreign_vg");
    }

    #[test]
    fn deleted_lv_and_missing_tap_ctl_still_allow_a_ghost() {
        let mut f = ghost();
        f.lvm = Some(LvmView::LvMissing);
        f.tapdisk = TapdiskFacts::NotInstalled;
        f.refcount = Refcount::Counts {
            count: 0,
            binary: 0,
        };
        assert_eq!(decide(&f).verdict, Verdict::Ghost);
    }
}
