//! The guarded action. Plan on the facts; with `apply`, take SM's lock and the journal lock,
//! gather every fact again and decide again, require that the device has not moved (same dev_t,
//! uuid and event number), journal the removal and flush it, remove without force, and verify
//! the name is gone. `restore` undoes a journalled removal exactly.

use serde::Serialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::dm::{DmDevice, TableLine};
use crate::error::{Error, Result};
use crate::ids::{DmName, Target};
use crate::journal::{Event, Journal};
use crate::ops::{Host, Inspection};
use crate::sm::lock::{self, SmLockKind};
use crate::verdict::Verdict;

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

#[derive(Clone, Debug, Serialize)]
pub struct HealOutcome {
    pub action: Action,
    pub message: String,
    /// The journal entry of the removal, when one was written.
    pub journal_id: Option<u64>,
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

/// Why a re-read device is not the one the plan was made on, if it is not.
fn moved(plan: &DmDevice, now: &DmDevice) -> Option<String> {
    if plan.dev != now.dev {
        return Some(format!(
            "its device number changed from {} to {}",
            plan.dev, now.dev
        ));
    }
    if plan.uuid != now.uuid {
        return Some(format!(
            "its uuid changed from {:?} to {:?}",
            plan.uuid, now.uuid
        ));
    }
    let (was, is) = (
        plan.status.map(|s| s.event_nr),
        now.status.map(|s| s.event_nr),
    );
    if was != is {
        let show = |n: Option<u32>| n.map_or("unknown".to_string(), |n| n.to_string());
        return Some(format!(
            "its event number changed from {} to {} (a table was loaded)",
            show(was),
            show(is)
        ));
    }
    if plan.table != now.table {
        return Some("its table changed".into());
    }
    None
}

/// `record`: also journal decisions that change nothing (dry runs, refusals). Absent and
/// healthy mappings are not recorded: the activation hot path never touches the journal.
pub fn heal(host: &Host, target: &Target, apply: bool, record: bool) -> Result<HealOutcome> {
    let o = decide_and_act(host, target, apply)?;
    if record && o.journal_id.is_none() && o.action != Action::NothingToDo {
        let mut o = o;
        let id = Journal::new(&host.config.journal)
            .writer(host.config.lock_timeout)?
            .append(Event::Decision {
                target: target.to_string(),
                dm_name: o.inspection.dm_name.clone(),
                verdict: o.inspection.verdict.as_str().into(),
                action: action_name(o.action).into(),
                summary: o.message.clone(),
            })
            .map_err(|source| Error::Journal {
                path: host.config.journal.clone(),
                source,
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

fn decide_and_act(host: &Host, target: &Target, apply: bool) -> Result<HealOutcome> {
    let name = host.resolve(target)?;
    let plan = host.inspect_name(target.to_string(), &name)?;
    match plan.verdict {
        Verdict::Absent | Verdict::Healthy => {
            let msg = plan.summary.clone();
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
    remove_guarded(host, target, &name, plan)
}

fn remove_guarded(
    host: &Host,
    target: &Target,
    name: &DmName,
    plan: Inspection,
) -> Result<HealOutcome> {
    let cfg = &host.config;
    let kind = SmLockKind::detect(&cfg.fairlock_socket, &cfg.legacy_lock);
    let _sm_lock = lock::acquire(&kind, cfg.lock_timeout, cfg.in_sm_process)?;
    let mut journal = Journal::new(&cfg.journal).writer(cfg.lock_timeout)?;

    // Everything again, under the locks, immediately before acting.
    let now = host.inspect_name(target.to_string(), name)?;
    let lock_name = Some(kind.describe());
    let refused = |why: String, now: Inspection| {
        let mut o = outcome(Action::Refused, why, now);
        o.lock = lock_name.clone();
        Ok(o)
    };
    if now.verdict != Verdict::Ghost {
        let why = format!("refused at the re-check under the lock: {}", now.summary);
        return refused(why, now);
    }
    let (Some(planned), Some(device)) = (&plan.facts.device, now.facts.device.clone()) else {
        unreachable!("a ghost verdict has a device");
    };
    if let Some(why) = moved(planned, &device) {
        let why =
            format!("refused: {name} changed between planning and the re-check: {why}; run again");
        return refused(why, now);
    }
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
    let inspection_json = serde_json::to_value(&now).unwrap_or(serde_json::Value::Null);
    let id = journal
        .append(Event::Removal {
            dm_name: name.to_string(),
            uuid: device.uuid.clone(),
            dev: device.dev,
            read_only: status.read_only,
            table,
            inspection: inspection_json,
        })
        .map_err(|source| Error::Journal {
            path: cfg.journal.clone(),
            source,
        })?;
    info!(dm_name = %name, journal_id = id, dev = %device.dev, "removing ghost mapping");

    let removal = host.dm.remove(name);
    let still_there = host.dm.device(name)?;
    let (action, result, message) = match (&removal, &still_there) {
        (Ok(()), None) => (
            Action::Removed,
            "removed",
            format!(
                "removed ghost {name} (journal entry {id}; `dmheal restore {id}` recreates it)"
            ),
        ),
        (Ok(()), Some(_)) => (
            Action::Failed,
            "failed",
            format!("the kernel accepted the remove of {name} but the name is still registered"),
        ),
        (Err(e), _) => (
            Action::Failed,
            "failed",
            format!("removing {name} failed: {}", e.chain()),
        ),
    };
    if action == Action::Failed {
        warn!(dm_name = %name, "{message}");
    }
    journal
        .append(Event::Outcome {
            of: id,
            result: result.into(),
            detail: message.clone(),
        })
        .map_err(|source| Error::Journal {
            path: cfg.journal.clone(),
            source,
        })?;
    Ok(HealOutcome {
        action,
        message,
        journal_id: Some(id),
        lock: lock_name,
        inspection: now,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreOutcome {
    pub restored: u64,
    pub dm_name: String,
    pub uuid: String,
    pub table: Vec<String>,
    pub journal_id: u64,
    pub message: String,
}

/// What a journalled removal recorded: enough to recreate the mapping exactly.
pub struct Removed {
    pub dm_name: String,
    pub uuid: String,
    pub table: Vec<TableLine>,
    pub read_only: bool,
}

/// Find removal `id` in the journal (needs no device-mapper, so it is checked first).
pub fn find_removal(config: &Config, id: u64) -> Result<Removed> {
    Journal::new(&config.journal)
        .entries()?
        .into_iter()
        .find(|e| e.id == id)
        .and_then(|e| match e.event {
            Event::Removal {
                dm_name,
                uuid,
                table,
                read_only,
                ..
            } => Some(Removed {
                dm_name,
                uuid,
                table,
                read_only,
            }),
            _ => None,
        })
        .ok_or(Error::NoSuchEntry(id))
}

/// Recreate the mapping journal entry `id` removed: same name, uuid and table.
pub fn restore(host: &Host, id: u64) -> Result<RestoreOutcome> {
    let cfg = &host.config;
    let Removed {
        dm_name,
        uuid,
        table,
        read_only,
    } = find_removal(cfg, id)?;
    let journal = Journal::new(&cfg.journal);
    let name = DmName::new(&dm_name)?;

    let kind = SmLockKind::detect(&cfg.fairlock_socket, &cfg.legacy_lock);
    let _sm_lock = lock::acquire(&kind, cfg.lock_timeout, cfg.in_sm_process)?;
    let mut writer = journal.writer(cfg.lock_timeout)?;
    if host.dm.device(&name)?.is_some() {
        return Err(Error::RestoreRefused {
            id,
            why: format!("a mapping named {name} exists now (LVM may have activated the LV); restoring would collide"),
        });
    }
    host.dm.create(&name, &uuid, &table, read_only)?;
    let made = host.dm.device(&name)?;
    let exact = made
        .as_ref()
        .is_some_and(|d| d.table.as_ref() == Some(&table) && d.uuid == uuid);
    let message = if exact {
        format!("recreated {name} exactly as journal entry {id} recorded it")
    } else {
        format!(
            "recreated {name}, but the kernel reports a different table or uuid than entry {id}"
        )
    };
    let journal_id = writer
        .append(Event::Restore {
            of: id,
            result: if exact {
                "restored"
            } else {
                "restored-differently"
            }
            .into(),
            detail: message.clone(),
        })
        .map_err(|source| Error::Journal {
            path: cfg.journal.clone(),
            source,
        })?;
    Ok(RestoreOutcome {
        restored: id,
        dm_name: name.to_string(),
        uuid,
        table: table.iter().map(|l| l.to_string()).collect(),
        journal_id,
        message,
    })
}

#[cfg(test)]
mod tests {
    //! The guarded removal's refusal paths, with a fake device-mapper (the real kernel paths
    //! are in tests/test_kernel_scenarios.py): a mapping that changes between planning and the
    //! re-check under the lock is not removed, and a remove the kernel refuses is journalled
    //! as failed after the removal entry that was written first.

    use super::*;
    use crate::dm::{DevNum, DeviceMapper, DmStatus, Listed};
    use crate::journal::Journal;
    use crate::test_support;
    use std::cell::Cell;

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    /// A ghost-shaped mapping (a device number nothing on this machine uses) whose event number advances on every read when `moving`, and
    /// whose removal the "kernel" refuses when `refuse`.
    struct FakeDm {
        reads: Cell<u32>,
        moving: bool,
        refuse: bool,
        removed: Cell<bool>,
    }

    impl DeviceMapper for FakeDm {
        fn list(&self) -> Result<Vec<Listed>> {
            Ok(Vec::new())
        }
        fn device(&self, name: &DmName) -> Result<Option<DmDevice>> {
            if self.removed.get() {
                return Ok(None);
            }
            self.reads.set(self.reads.get() + 1);
            Ok(Some(DmDevice {
                name: name.to_string(),
                uuid: String::new(),
                dev: DevNum {
                    major: 4095,
                    minor: 1048575,
                },
                status: Some(DmStatus {
                    event_nr: if self.moving { self.reads.get() } else { 0 },
                    ..test_support::status(0)
                }),
                table: Some(test_support::linear_table(8)),
            }))
        }
        fn status(&self, name: &DmName) -> Result<Option<DmDevice>> {
            self.device(name)
        }
        fn has_uuid(&self, _uuid: &str) -> Result<bool> {
            Ok(false)
        }
        fn remove(&self, name: &DmName) -> Result<()> {
            if self.refuse {
                return Err(Error::Io(
                    format!("removing {name}"),
                    std::io::Error::from_raw_os_error(libc::EBUSY),
                ));
            }
            self.removed.set(true);
            Ok(())
        }
        fn create(&self, _: &DmName, _: &str, _: &[TableLine], _: bool) -> Result<()> {
            unreachable!("not used here")
        }
    }

    fn host(dir: &std::path::Path, moving: bool, refuse: bool) -> Host {
        // A stand-in lvs: LVM knows the LV and calls it inactive.
        let config = test_support::config(
            dir,
            &format!(
                "{{\"vg_name\":\"VG_XenStorage-{SR}\",\"lv_name\":\"VHD-{VDI}\",\
                 \"lv_uuid\":\"X4HzXT\",\"vg_uuid\":\"K2BweQ\",\"lv_attr\":\"-wi-------\"}}"
            ),
        );
        Host {
            config,
            dm: Box::new(FakeDm {
                reads: Cell::new(0),
                moving,
                refuse,
                removed: Cell::new(false),
            }),
        }
    }

    fn target() -> Target {
        Target::parse(&format!("/dev/VG_XenStorage-{SR}/VHD-{VDI}")).unwrap()
    }

    #[test]
    fn a_still_ghost_is_removed_and_journalled() {
        let dir = tempfile::tempdir().unwrap();
        let o = heal(&host(dir.path(), false, false), &target(), true, false).unwrap();
        assert_eq!(o.action, Action::Removed, "{}", o.message);
        let events: Vec<String> = Journal::new(&dir.path().join("journal.jsonl"))
            .entries()
            .unwrap()
            .iter()
            .map(|e| serde_json::to_value(&e.event).unwrap()["event"].to_string())
            .collect();
        assert_eq!(events, ["\"removal\"", "\"outcome\""]);
    }

    #[test]
    fn a_mapping_that_moved_since_planning_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path(), true, false);
        let o = heal(&h, &target(), true, false).unwrap();
        assert_eq!(o.action, Action::Refused);
        assert!(
            o.message
                .contains("changed between planning and the re-check"),
            "{}",
            o.message
        );
        assert!(o.message.contains("event number"), "{}", o.message);
        assert!(
            h.dm.device(&DmName::new("x").unwrap()).unwrap().is_some(),
            "it was removed"
        );
        assert!(Journal::new(&dir.path().join("journal.jsonl"))
            .entries()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_refused_remove_is_journalled_after_the_removal_entry() {
        let dir = tempfile::tempdir().unwrap();
        let o = heal(&host(dir.path(), false, true), &target(), true, false).unwrap();
        assert_eq!(o.action, Action::Failed);
        let entries = Journal::new(&dir.path().join("journal.jsonl"))
            .entries()
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(entries[0].event, Event::Removal { .. }));
        assert!(
            matches!(&entries[1].event, Event::Outcome { of, result, .. } if *of == entries[0].id && result == "failed")
        );
    }
}
