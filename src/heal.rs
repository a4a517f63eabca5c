//! The guarded action. A dry run (and a mapping whose kernel status already rules out a ghost)
//! is decided on the facts without any lock. With `apply`: xapi is asked, SM's lock and the
//! journal lock are taken, every local layer is read under them and decided on, the removal is
//! journalled and flushed, and exactly the device proven a ghost is removed — by a uuid (given
//! one if it had none), after comparing it field by field with what was journalled — without
//! force; then the name is checked gone. `restore` (its own module) undoes a journalled removal.

use serde::Serialize;
use tracing::{info, warn};

use crate::context::OpContext;
use crate::dm::DmDevice;
use crate::error::Result;
use crate::ids::{DmName, DmUuid, JournalId, Target};
use crate::journal::{Event, Journal};
use crate::results::Inspection;
use crate::sm::lock::{self, SmLockKind};
use crate::verdict::Verdict;
use crate::xapi::messages::{self, Message};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Absent or healthy: nothing to heal.
    NothingToDo,
    /// Dry run: a ghost that `--apply` would remove.
    WouldRemove,
    Removed,
    /// In use or suspicious (at planning or at the re-check): left untouched.
    Refused,
    /// The kernel refused the remove; the mapping is still there.
    Failed,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::NothingToDo,
        Action::WouldRemove,
        Action::Removed,
        Action::Refused,
        Action::Failed,
    ];
}

#[derive(Clone, Debug, Serialize)]
pub struct HealOutcome {
    pub action: Action,
    pub message: String,
    /// The journal entry of the removal, when one was written.
    pub journal_id: Option<JournalId>,
    /// The SM lock held around the re-check and remove.
    pub lock: Option<String>,
    /// The inspection the outcome rests on (the re-check's when there was one).
    pub inspection: Inspection,
}

fn outcome(action: Action, message: String, inspection: Inspection) -> HealOutcome {
    HealOutcome {
        action,
        message,
        journal_id: None,
        lock: None,
        inspection,
    }
}

/// `record`: also journal decisions that change nothing (dry runs, refusals). Absent and
/// healthy mappings are not recorded: the activation hot path never touches the journal.
pub fn heal(host: &OpContext, target: &Target, apply: bool, record: bool) -> Result<HealOutcome> {
    let o = decide_and_act(host, target, apply)?;
    if record && o.journal_id.is_none() && o.action != Action::NothingToDo {
        let mut o = o;
        let id = Journal::new(&host.config.journal)
            .writer(host.config.within(host.config.lock_timeout))?
            .append(Event::Decision {
                target: target.to_string(),
                dm_name: o.inspection.dm_name.clone(),
                verdict: o.inspection.verdict.as_str().into(),
                action: action_name(o.action).into(),
                summary: o.message.clone(),
            })?;
        o.journal_id = Some(id);
        return Ok(o);
    }
    Ok(o)
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::NothingToDo => "nothing-to-do",
        Action::WouldRemove => "would-remove",
        Action::Removed => "removed",
        Action::Refused => "refused",
        Action::Failed => "failed",
    }
}

/// Whether the kernel's status alone leaves room for a ghost: a mapping, idle, not suspended,
/// no deferred remove, no inactive table, a live table.
fn could_be_a_ghost(d: Option<&DmDevice>) -> bool {
    d.and_then(|d| d.status).is_some_and(|s| {
        s.open_count == 0 && !s.suspended && !s.deferred_remove && !s.inactive_table && s.live_table
    })
}

fn decide_and_act(host: &OpContext, target: &Target, apply: bool) -> Result<HealOutcome> {
    let name = host.resolve(target)?;
    if apply && could_be_a_ghost(host.dm.status(&name)?.as_ref()) {
        // Decide under the locks, once, on every layer read there. xapi is asked first: SM's
        // lock does not order xapi's records, and a slow xapi must not hold up SM's LVM work.
        let vdi: Vec<_> = crate::lvm::split_dm_name(&name)
            .and_then(|n| crate::lvm::vdi_of_lv(&n.lv))
            .into_iter()
            .collect();
        let xapi = host.xapi_views(&vdi);
        return remove_guarded(host, target, &name, xapi);
    }
    // A dry run, or a mapping the kernel already shows cannot be a ghost: decided without
    // taking any lock (and said in full).
    let plan = host.inspect_name(target.to_string(), &name)?;
    match plan.verdict {
        Verdict::Absent | Verdict::Healthy => {
            let msg = match removed_before(host, &name) {
                Some(by) if apply => format!("{}; {by}", plan.summary),
                _ => plan.summary.clone(),
            };
            return Ok(outcome(Action::NothingToDo, msg, plan));
        }
        Verdict::InUse | Verdict::Suspicious => {
            let msg = format!("refused: {}", plan.summary);
            return Ok(outcome(Action::Refused, msg, plan));
        }
        Verdict::Ghost => {}
    }
    if !apply {
        let msg = format!(
            "dry run: would remove {name} ({}); run again with --apply",
            plan.summary
        );
        return Ok(outcome(Action::WouldRemove, msg, plan));
    }
    // The verdict changed since the kernel's first word (a ghost now): decide again, locked.
    let xapi = host.xapi_views(plan.facts.vdi.as_slice());
    remove_guarded(host, target, &name, xapi)
}

fn remove_guarded(
    host: &OpContext,
    target: &Target,
    name: &DmName,
    xapi: std::collections::BTreeMap<crate::ids::Uuid, crate::xapi::XapiView>,
) -> Result<HealOutcome> {
    let cfg = &host.config;
    let clock = crate::logging::Stopwatch::start();
    let kind = SmLockKind::detect(&cfg.fairlock_socket, &cfg.legacy_lock);
    let _sm_lock = lock::acquire(&kind, cfg.within(cfg.lock_timeout), cfg.in_sm_process)?;
    clock.lap("heal: SM's lock taken");
    // The journal's lock too, before deciding: where no SM lock exists (or another heal does
    // not take the same one), two heals of one ghost then decide one after the other, the
    // second on what the first left. Taking it writes nothing: a refusal leaves the journal
    // as it was.
    let journal = Journal::new(&cfg.journal).writer(cfg.within(cfg.lock_timeout))?;
    clock.lap("heal: journal locked");

    // Every local layer, under the locks, immediately before acting.
    let now = host.inspect_name_with(target.to_string(), name, Some(xapi))?;
    clock.lap("heal: inspected under the locks");
    let lock_name = Some(kind.describe());
    act_on_decision(host, name, now, journal, lock_name, _sm_lock)
}

/// What a heal does with its decision, made under SM's lock and the journal's (held here):
/// nothing for absent or healthy (naming who removed it, if a heal did), a refusal for in use
/// or suspicious, and for a ghost: journal it, remove exactly it by uuid, journal the outcome,
/// release the locks, tell the pool. The single heal and the batch share it.
pub(crate) fn act_on_decision(
    host: &OpContext,
    name: &DmName,
    now: Inspection,
    mut journal: crate::journal::Writer,
    lock_name: Option<String>,
    sm_lock: lock::SmLock,
) -> Result<HealOutcome> {
    let cfg = &host.config;
    let clock = crate::logging::Stopwatch::start();
    let refused = |why: String, now: Inspection| {
        let mut o = outcome(Action::Refused, why, now);
        o.lock = lock_name.clone();
        Ok(o)
    };
    match now.verdict {
        Verdict::Ghost => {}
        Verdict::Absent | Verdict::Healthy => {
            let message = match removed_before(host, name) {
                Some(by) => format!("{}; {by}", now.summary),
                None => now.summary.clone(),
            };
            let mut o = outcome(Action::NothingToDo, message, now);
            o.lock = lock_name.clone();
            return Ok(o);
        }
        Verdict::InUse | Verdict::Suspicious => {
            let why = format!("refused: {}", now.summary);
            return refused(why, now);
        }
    }
    let Some(device) = now.facts.device.clone() else {
        unreachable!("a ghost verdict has a device");
    };
    // inspect reads every status and table; without them there is nothing to journal.
    let Some(status) = device.status else {
        let why = format!("refused: the status of {name} could not be read");
        return refused(why, now);
    };
    let Some(table) = device.table.clone() else {
        let why =
            format!("refused: the table of {name} could not be read, so it cannot be journalled");
        return refused(why, now);
    };
    if cfg.out_of_time() {
        let why = format!("refused: the time budget ran out before {name} could be removed");
        return refused(why, now);
    }
    let inspection_json = serde_json::to_value(&now).unwrap_or(serde_json::Value::Null);
    let id = journal.append(Event::Removal {
        dm_name: name.to_string(),
        uuid: device.uuid.clone(),
        dev: device.dev,
        read_only: status.read_only,
        table,
        inspection: inspection_json,
    })?;
    info!(dm_name = %name, journal_id = id.0, dev = %device.dev, "removing ghost mapping");
    clock.lap("heal: journalled");

    let removal = remove_exactly(host, name, &device, id);
    clock.lap("heal: removed");
    let (action, result, message, removed_uuid) = match removal {
        Removal::Removed { uuid } => (
            Action::Removed,
            "removed",
            format!(
                "removed ghost {name} (journal entry {id}; `dmheal restore {id}` recreates it)"
            ),
            Some(DmUuid::from(uuid)),
        ),
        Removal::Refused { why } => (
            Action::Refused,
            "refused",
            format!("refused: {why}; nothing was removed"),
            None,
        ),
        Removal::Failed { why } => (Action::Failed, "failed", why, None),
    };
    if action != Action::Removed {
        warn!(dm_name = %name, "{message}");
    }
    // What happened in the kernel has happened: a journal that cannot take the outcome (a full
    // disk) does not turn it into an error the caller would read as "nothing was done".
    let mut message = message;
    if let Err(e) = journal.append(Event::Outcome {
        of: id,
        result: result.into(),
        detail: message.clone(),
        removed_uuid,
    }) {
        warn!(dm_name = %name, journal_id = id.0, "the outcome could not be journalled: {}", e.chain());
        message = format!(
            "{message}; the outcome could not be journalled ({}), so `dmheal restore {id}` will refuse: the table to recreate it is in journal entry {id}",
            e.chain()
        );
    }
    // The locks go first: telling the pool must not hold up SM's LVM work.
    drop(journal);
    drop(sm_lock);
    if let (Action::Removed, Some(vdi)) = (action, &now.facts.vdi) {
        host.announce(&[Message {
            name: messages::GHOST_REMOVED,
            priority: messages::PRIORITY_INFO,
            vdi_uuid: vdi.to_string(),
            body: format!(
                "dmheal removed a ghost device-mapper mapping of this VDI on host {}: {name}. \
                 SM can activate the VDI there again. Journal entry {id} on that host holds \
                 what was removed; `dmheal restore {id}` there recreates it.",
                host.describe()
            ),
        }]);
    }
    Ok(HealOutcome {
        action,
        message,
        journal_id: Some(id),
        lock: lock_name,
        inspection: now,
    })
}

/// The journal entry that removed a mapping of this name and stands (not restored since), in
/// words: what a heal that finds nothing left says (another heal got there first). Best
/// effort: a journal that cannot be read says nothing here.
fn removed_before(host: &OpContext, name: &DmName) -> Option<String> {
    let entries = Journal::new(&host.config.journal).entries().ok()?;
    let mut removals = entries
        .iter()
        .filter(|e| matches!(&e.event, Event::Removal { dm_name, .. } if dm_name == name.as_str()));
    let undone = |id: JournalId| {
        entries.iter().any(|e| matches!(&e.event, Event::Restore { of, result, .. } if *of == id && result.starts_with("restored")))
    };
    let removed = |id: JournalId| {
        entries.iter().any(|e| matches!(&e.event, Event::Outcome { of, result, .. } if *of == id && result == "removed"))
    };
    let last = removals.rfind(|e| removed(e.id) && !undone(e.id))?;
    Some(format!(
        "already removed by journal entry {} ({}, pid {} on {})",
        last.id, last.time, last.pid, last.host
    ))
}

/// What became of the removal of one proven ghost.
enum Removal {
    /// Gone; `uuid` is the identity it was removed by.
    Removed { uuid: String },
    /// Not the proven device any more, or not identifiable: left in place.
    Refused { why: String },
    /// The kernel refused, or the name is still registered.
    Failed { why: String },
}

/// A uuid nothing else carries, for a uuid-less ghost: the kernel lets a device without a uuid
/// receive one once, and a device is then named by it for as long as it exists.
fn stamp(journal_id: JournalId) -> String {
    let random = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|u| u.trim().replace('-', ""))
        .unwrap_or_else(|_| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!("{:x}{:x}", std::process::id(), t.as_nanos())
        });
    format!("{}{journal_id}-{random}", crate::dm::DMHEAL_STAMP_PREFIX)
}

/// Remove exactly `proven` (read under the locks and journalled as entry `id`), never what may
/// have taken its name since. A device number does not identify a device (the kernel reuses a
/// freed minor at once); a uuid does, so the removal goes by uuid, and a ghost without one is
/// first given a unique one. The device carrying it must then still be the proven one in
/// every respect, or nothing is removed.
fn remove_exactly(host: &OpContext, name: &DmName, proven: &DmDevice, id: JournalId) -> Removal {
    let cfg = &host.config;
    let uuid = if proven.uuid.is_empty() {
        let stamp = stamp(id);
        // If `name` now names another uuid-less device, it gets the stamp instead and the
        // comparison below refuses; a device that has a uuid by now refuses the stamp.
        if let Err(e) = host.dm.set_uuid(name, &stamp) {
            return Removal::Refused {
                why: format!(
                    "{name} could not be given a uuid to be removed by ({}): it changed since the re-check",
                    e.chain()
                ),
            };
        }
        stamp
    } else {
        proven.uuid.to_string()
    };
    let current = match host.dm.device_by_uuid(&uuid) {
        Ok(d) => d,
        Err(e) => {
            return Removal::Refused {
                why: format!(
                    "{name} could not be read again by uuid {uuid}: {}",
                    e.chain()
                ),
            }
        }
    };
    let stamped = proven.uuid.is_empty();
    if let Some(why) = not_the_proven(proven, current.as_ref(), &uuid, stamped) {
        let left = if proven.uuid.is_empty() && current.is_some() {
            format!(" (the device now carrying {uuid} keeps that uuid)")
        } else {
            String::new()
        };
        return Removal::Refused {
            why: format!("{name} is not the device proven a ghost any more: {why}{left}"),
        };
    }
    if cfg.out_of_time() {
        return Removal::Refused {
            why: format!("the time budget ran out before {name} could be removed"),
        };
    }
    // EBUSY (udev probing the node) is retried for at most a second, within the budget.
    let busy_until = std::time::Instant::now() + cfg.within(std::time::Duration::from_secs(1));
    if let Err(e) = host.dm.remove_by_uuid(&uuid, busy_until) {
        return Removal::Failed {
            why: format!("removing {name} failed: {}", e.chain()),
        };
    }
    match (host.dm.device(name), host.dm.device_by_uuid(&uuid)) {
        // Gone; the name may already be taken again (LVM activating the LV right after).
        (Ok(by_name), Ok(None)) if by_name.as_ref().is_none_or(|d| d.uuid != uuid) => {
            Removal::Removed { uuid }
        }
        (Ok(_), Ok(_)) => Removal::Failed {
            why: format!("the kernel accepted the remove of {name} but it is still registered"),
        },
        (Err(e), _) | (_, Err(e)) => Removal::Failed {
            why: format!(
                "{name} was removed, but reading it back failed: {}",
                e.chain()
            ),
        },
    }
}

/// Why `now` (the device carrying `uuid`) is not `proven`, if it is not. Every field the
/// journal recorded must be equal, and the state must still be removable: open count 0, not
/// suspended, no inactive table, no deferred remove, a live table. `stamped`: dmheal gave it
/// `uuid` just now — a rename, which the kernel counts as one table event (dm_hash_rename
/// calls dm_table_event), so its event number may be one more than proven, never more.
fn not_the_proven(
    proven: &DmDevice,
    now: Option<&DmDevice>,
    uuid: &str,
    stamped: bool,
) -> Option<String> {
    let Some(now) = now else {
        return Some(format!("no device carries uuid {uuid}"));
    };
    if now.name != proven.name {
        return Some(format!("uuid {uuid} is on {} now", now.name));
    }
    if now.dev != proven.dev {
        return Some(format!(
            "its device number changed from {} to {}",
            proven.dev, now.dev
        ));
    }
    let (Some(was), Some(is)) = (proven.status, now.status) else {
        return Some("its status could not be read".into());
    };
    let ours = u32::from(stamped);
    if is.event_nr != was.event_nr && is.event_nr != was.event_nr.wrapping_add(ours) {
        return Some(format!(
            "its event number changed from {} to {} (a table event{})",
            was.event_nr,
            is.event_nr,
            if stamped {
                " besides the uuid dmheal gave it"
            } else {
                ""
            }
        ));
    }
    if is.open_count != 0 {
        return Some(format!("it is open now ({} opens)", is.open_count));
    }
    if is.suspended {
        return Some("it is suspended now".into());
    }
    if is.inactive_table {
        return Some("an inactive table is loaded now".into());
    }
    if is.deferred_remove {
        return Some("a deferred remove is pending now".into());
    }
    if !is.live_table {
        return Some("it has no live table now".into());
    }
    if is.read_only != was.read_only {
        return Some("its read-only flag changed".into());
    }
    if now.table != proven.table {
        return Some("its table changed".into());
    }
    None
}

#[cfg(test)]
mod tests {
    //! The guarded removal against a fake kernel that keeps the kernel's rules (unique uuids,
    //! a uuid set once, removal by uuid, open devices refuse): a ghost is removed by a uuid it
    //! was given, and every change a racing process can make after the re-check — LVM's own
    //! activation in its place, a reloaded table, a suspend, another mapping under its name, an
    //! opener — leaves the mapping then under the name in place. (The same on the real kernel:
    //! tests/test_heal_races_kernel.py.)

    use super::*;
    use crate::dm::{DevNum, DmStatus};
    use crate::journal::Journal;
    use crate::test_support::{self, Change, FakeKernel};
    use std::rc::Rc;

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";
    const DEV: DevNum = DevNum {
        major: 4095,
        minor: 1048575,
    };

    fn name() -> DmName {
        let vg = crate::ids::VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = crate::ids::LvName::new(&format!("VHD-{VDI}")).unwrap();
        crate::lvm::dm_name_for(&vg, &lv).unwrap()
    }

    /// The seed ghost: no uuid, open 0, a live table (a device number nothing here uses).
    fn ghost() -> DmDevice {
        DmDevice {
            name: name().to_string(),
            uuid: DmUuid::default(),
            dev: DEV,
            status: Some(test_support::status(0)),
            table: Some(test_support::linear_table(8)),
        }
    }

    fn host(dir: &std::path::Path, kernel: FakeKernel) -> OpContext {
        // A stand-in lvs: LVM knows the LV and calls it inactive.
        let config = test_support::config(
            dir,
            &format!(
                "{{\"vg_name\":\"VG_XenStorage-{SR}\",\"lv_name\":\"VHD-{VDI}\",\
                 \"lv_uuid\":\"X4HzXT\",\"vg_uuid\":\"K2BweQ\",\"lv_attr\":\"-wi-------\"}}"
            ),
        );
        OpContext::new(config, Box::new(kernel))
    }

    fn target() -> Target {
        Target::parse(&format!("/dev/VG_XenStorage-{SR}/VHD-{VDI}")).unwrap()
    }

    fn events(dir: &std::path::Path) -> Vec<String> {
        Journal::new(&dir.join("journal.jsonl"))
            .entries()
            .unwrap()
            .iter()
            .map(|e| serde_json::to_value(&e.event).unwrap()["event"].to_string())
            .collect()
    }

    /// Heal with a kernel that makes `change` after its `nth` read by name; the outcome and
    /// the kernel's mappings afterwards.
    fn heal_racing(nth: u32, change: Change) -> (HealOutcome, Vec<DmDevice>, Vec<DmDevice>) {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(vec![ghost()], false).after_read(nth, change);
        let (devices, removed) = (Rc::clone(&kernel.devices), Rc::clone(&kernel.removed));
        let h = host(dir.path(), kernel);
        let o = heal(&h, &target(), true, false).unwrap();
        let (left, removed) = (devices.borrow().clone(), removed.borrow().clone());
        (o, left, removed)
    }

    #[test]
    fn a_still_ghost_is_removed_by_a_uuid_it_was_given_and_journalled() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(vec![ghost()], false);
        let (devices, removed) = (Rc::clone(&kernel.devices), Rc::clone(&kernel.removed));
        let h = host(dir.path(), kernel);
        let o = heal(&h, &target(), true, false).unwrap();
        assert_eq!(o.action, Action::Removed, "{}", o.message);
        assert_eq!(events(dir.path()), ["\"removal\"", "\"outcome\""]);
        let entries = Journal::new(&dir.path().join("journal.jsonl"))
            .entries()
            .unwrap();
        // The removal entry keeps the ghost as it was (no uuid: what restore recreates); the
        // outcome says which uuid it was removed by.
        assert!(matches!(&entries[0].event, Event::Removal { uuid, .. } if uuid.is_empty()));
        let Event::Outcome {
            removed_uuid: Some(u),
            ..
        } = &entries[1].event
        else {
            panic!("{:?}", entries[1].event)
        };
        assert!(u.starts_with("DMHEAL-1-"), "{u}");
        assert!(devices.borrow().is_empty());
        assert_eq!(removed.borrow()[0].uuid, *u);
    }

    /// Each change a racing process can make after the re-check read the device: the mapping
    /// then under the name stays, nothing is removed, and the journal says why.
    #[test]
    fn changes_after_the_re_check_remove_nothing() {
        let lvm_uuid = "LVM-K2BweQX4HzXT";
        let cases: Vec<(&str, Change)> = vec![
            (
                "LVM's own activation in its place (same device number)",
                Box::new(move |d: &mut Vec<DmDevice>| {
                    d[0] = DmDevice {
                        uuid: lvm_uuid.into(),
                        ..ghost()
                    }
                }),
            ),
            (
                "a reloaded table",
                Box::new(|d: &mut Vec<DmDevice>| {
                    d[0].table = Some(test_support::linear_table(16));
                    d[0].status.as_mut().unwrap().event_nr += 1;
                }),
            ),
            (
                "suspended",
                Box::new(|d: &mut Vec<DmDevice>| d[0].status.as_mut().unwrap().suspended = true),
            ),
            (
                "another mapping under its name",
                Box::new(|d: &mut Vec<DmDevice>| {
                    d[0] = DmDevice {
                        uuid: "CRYPT-other".into(),
                        table: Some(test_support::linear_table(4)),
                        ..ghost()
                    }
                }),
            ),
            (
                "another uuid-less mapping under its name",
                Box::new(|d: &mut Vec<DmDevice>| {
                    d[0] = DmDevice {
                        table: Some(test_support::linear_table(4)),
                        ..ghost()
                    }
                }),
            ),
            (
                "opened",
                Box::new(|d: &mut Vec<DmDevice>| d[0].status.as_mut().unwrap().open_count = 1),
            ),
            (
                "an inactive table loaded",
                Box::new(|d: &mut Vec<DmDevice>| {
                    d[0].status.as_mut().unwrap().inactive_table = true
                }),
            ),
        ];
        // Read 1: the kernel's first word (status); read 2: the inspection under the locks.
        // The change comes right after that read.
        for (what, change) in cases {
            let (o, left, removed) = heal_racing(2, change);
            assert_eq!(o.action, Action::Refused, "{what}: {}", o.message);
            assert!(
                o.message.contains("nothing was removed"),
                "{what}: {}",
                o.message
            );
            assert!(removed.is_empty(), "{what}: removed {removed:?}");
            assert_eq!(left.len(), 1, "{what}");
        }
    }

    /// Opened between the kernel's first word (one status ioctl, no lock) and the inspection
    /// under the locks: the inspection sees it, nothing is journalled or removed.
    #[test]
    fn a_mapping_opened_before_the_locked_inspection_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(vec![ghost()], false).after_read(
            1,
            Box::new(|d: &mut Vec<DmDevice>| d[0].status.as_mut().unwrap().open_count = 1),
        );
        let devices = Rc::clone(&kernel.devices);
        let h = host(dir.path(), kernel);
        let o = heal(&h, &target(), true, false).unwrap();
        assert_eq!(o.action, Action::Refused);
        assert_eq!(o.inspection.verdict, Verdict::InUse, "{}", o.message);
        assert_eq!(devices.borrow().len(), 1);
        assert!(events(dir.path()).is_empty());
    }

    #[test]
    fn a_remove_the_kernel_refuses_is_journalled_after_the_removal_entry() {
        // Opened between the last comparison and the ioctl: the kernel says EBUSY.
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(
            vec![DmDevice {
                uuid: "DMHEAL-7-left".into(),
                ..ghost()
            }],
            false,
        );
        let devices = Rc::clone(&kernel.devices);
        let h = host(dir.path(), kernel);
        let plan = h.inspect_name("t".into(), &name()).unwrap();
        assert_eq!(plan.verdict, Verdict::Ghost, "{plan:#?}");
        // Opened after the last look: the comparison sees it (and the kernel would refuse).
        devices.borrow_mut()[0].status = Some(DmStatus {
            open_count: 1,
            ..test_support::status(0)
        });
        let proven = ghost();
        let proven = DmDevice {
            uuid: "DMHEAL-7-left".into(),
            ..proven
        };
        match remove_exactly(&h, &name(), &proven, JournalId(1)) {
            Removal::Refused { why } => assert!(why.contains("open"), "{why}"),
            _ => panic!("removed an open device"),
        }
        assert_eq!(devices.borrow().len(), 1);
    }

    /// With the budget spent, every layer that waits is cut off (and so unreadable) and no
    /// removal starts: the mapping stays and nothing is journalled.
    #[test]
    fn no_removal_starts_after_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new(vec![ghost()], false);
        let devices = Rc::clone(&kernel.devices);
        let mut h = host(dir.path(), kernel);
        h.config.deadline = Some(std::time::Instant::now());
        let o = heal(&h, &target(), true, false).unwrap();
        assert_eq!(o.action, Action::Refused, "{}", o.message);
        assert!(
            o.message.contains("the budget was spent before it started"),
            "{}",
            o.message
        );
        assert_eq!(devices.borrow().len(), 1);
        assert!(events(dir.path()).is_empty());
    }
}
