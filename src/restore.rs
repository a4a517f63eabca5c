//! `dmheal restore <id>`: undo a journalled change. For a removal, recreate the mapping — name,
//! uuid and table exactly — but only what the journal can be trusted to describe; for what
//! `doctor --apply` did, see `doctor::undo`.
//!
//! A journal entry says what to map; a forged or stale one could map anything anywhere. So a
//! removal is recreated only when, today:
//! * the entry did remove something (its outcome is not a refusal or a failure), and was not
//!   restored already;
//! * its name is the DM name of a VDI's LV in an SR volume group;
//! * every line of its table is linear and maps only extents that LVM's metadata, read from the
//!   PV now, gives that LV;
//! * every device it maps onto is still a PV of that VG (its label's PV uuid is one the VG
//!   lists) — not whatever now has the recorded device number;
//! * no mapping has its name.

use serde::Serialize;

use crate::config::Config;
use crate::context::OpContext;
use crate::dm::{DevNum, TableLine};
use crate::error::{Error, Result};
use crate::ids::{DmName, DmUuid, JournalId};
use crate::journal::{Event, Journal};
use crate::lvm;
use crate::lvm::metadata_text::VgMetadata;
use crate::sm::lock::{self, SmLockKind};

#[derive(Clone, Debug, Serialize)]
pub struct RestoreOutcome {
    pub restored: JournalId,
    /// A removal's mapping, recreated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dm_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<DmUuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<Vec<String>>,
    /// A doctor action, undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undid: Option<String>,
    pub journal_id: JournalId,
    pub message: String,
}

/// What a journal entry lets `restore` undo.
pub enum Restorable {
    Removal(Removed),
    /// `doctor --apply`'s action and what undoes it.
    DoctorAction {
        action: String,
        undo: serde_json::Value,
    },
}

/// Find entry `id`, check it changed something not yet undone, and say what undoes it.
pub fn find(config: &Config, id: JournalId) -> Result<Restorable> {
    let entries = Journal::new(&config.journal).entries()?;
    let refused = |why: String| Error::RestoreRefused { id, why };
    let found = entries
        .iter()
        .find(|e| e.id == id)
        .ok_or(Error::NoSuchEntry(id))?;
    let (what, done) = match &found.event {
        Event::Removal {
            dm_name,
            uuid,
            table,
            read_only,
            ..
        } => (
            Restorable::Removal(Removed {
                dm_name: dm_name.clone(),
                uuid: uuid.clone(),
                table: table.clone(),
                read_only: *read_only,
            }),
            "removed",
        ),
        Event::XapiAction { action, undo, .. } | Event::LocalAction { action, undo, .. } => (
            Restorable::DoctorAction {
                action: action.clone(),
                undo: undo.clone(),
            },
            "done",
        ),
        _ => return Err(Error::NoSuchEntry(id)),
    };
    let mut outcome = None;
    for e in &entries {
        match &e.event {
            Event::Outcome { of, result, .. } if *of == id && result != done => {
                return Err(refused(format!(
                    "it changed nothing (its outcome, entry {}, is {result:?})",
                    e.id
                )))
            }
            Event::Outcome { of, .. } if *of == id => outcome = Some(e.id),
            Event::Restore { of, result, .. } if *of == id && result.starts_with("restored") => {
                return Err(refused(format!("entry {} restored it already", e.id)))
            }
            _ => {}
        }
    }
    // Without an outcome it is not known that the entry changed anything (it was interrupted,
    // or its outcome could not be written): recreating what it describes could bring back a
    // mapping that was never removed by it. dmheal does not guess.
    if outcome.is_none() {
        return Err(refused(format!(
            "it has no outcome in the journal, so whether it {done} anything is unknown; its \
             record stays in the journal for a human to read"
        )));
    }
    Ok(what)
}

/// Undo journal entry `id`.
pub fn restore(config: Config, id: JournalId) -> Result<RestoreOutcome> {
    match find(&config, id)? {
        Restorable::Removal(_) => restore_mapping(&OpContext::open(config)?, id),
        Restorable::DoctorAction { action, undo } => {
            let message = crate::doctor::undo::undo(&config, id, &action, &undo)?;
            let journal_id = Journal::new(&config.journal)
                .writer(config.within(config.lock_timeout))?
                .append(Event::Restore {
                    of: id,
                    result: "restored".into(),
                    detail: message.clone(),
                })?;
            Ok(RestoreOutcome {
                restored: id,
                dm_name: None,
                uuid: None,
                table: None,
                undid: Some(action),
                journal_id,
                message,
            })
        }
    }
}

/// What a journalled removal recorded: enough to recreate the mapping exactly.
pub struct Removed {
    pub dm_name: String,
    pub uuid: DmUuid,
    pub table: Vec<TableLine>,
    pub read_only: bool,
}

/// Find removal `id` in the journal and check that it removed something not yet restored
/// (needs no device-mapper, so it is checked first).
pub fn find_removal(config: &Config, id: JournalId) -> Result<Removed> {
    match find(config, id)? {
        Restorable::Removal(r) => Ok(r),
        Restorable::DoctorAction { .. } => Err(Error::NoSuchEntry(id)),
    }
}

/// Recreate the mapping journal entry `id` removed: same name, uuid and table.
pub fn restore_mapping(host: &OpContext, id: JournalId) -> Result<RestoreOutcome> {
    let cfg = &host.config;
    let Removed {
        dm_name,
        uuid,
        table,
        read_only,
    } = find_removal(cfg, id)?;
    let refused = |why: String| Error::RestoreRefused { id, why };
    let name = DmName::new(&dm_name)?;
    let (vg, lv) = match lvm::sr_volume(&name) {
        Some(v) if v.known() => (v.vg, v.lv),
        _ => {
            return Err(refused(format!(
                "{name} is not the DM name of a VDI's LV in an SR volume group"
            )))
        }
    };

    let kind = SmLockKind::detect(&cfg.fairlock_socket, &cfg.legacy_lock);
    let _sm_lock = lock::acquire(&kind, cfg.within(cfg.lock_timeout), cfg.in_sm_process)?;
    let mut writer = Journal::new(&cfg.journal).writer(cfg.within(cfg.lock_timeout))?;
    if host.dm.device(&name)?.is_some() {
        return Err(refused(format!(
            "a mapping named {name} exists now (LVM may have activated the LV); restoring would collide"
        )));
    }
    // What LVM says today about the devices and extents the table maps.
    let devices = lvm::table_devices(&table);
    // The LV, and the LV whose id the entry's uuid names (if any): it must not be another's.
    let filter = crate::lvm::metadata_text::LvFilter {
        names: [lv.to_string()].into(),
        ids: uuid_lv_part(&uuid).into_iter().collect(),
    };
    let (metadata, pvs) = cfg
        .pv_reader()
        .read_vg_on(vg.as_str(), &devices, Some(&filter))
        .map_err(|why| {
            refused(format!(
                "VG {vg}'s metadata could not be read from the devices the entry maps onto: {why}"
            ))
        })?;
    check_table(&metadata, lv.as_str(), &pvs, &table).map_err(refused)?;
    check_uuid(&metadata, lv.as_str(), &uuid).map_err(refused)?;
    // And they must be the PVs LVM itself uses for the VG today: a copy of the PV (a clone
    // LUN, an old disk, a PV the VG has dropped) carries the same label, and a mapping onto
    // it would take the VM's writes.
    let lvm_pvs = cfg
        .lvs()
        .pv_devices()
        .map_err(|why| refused(format!("the PVs LVM uses could not be listed (pvs): {why}")))?;
    if let Some(d) = devices
        .iter()
        .find(|d| !lvm_pvs.get(vg.as_str()).is_some_and(|s| s.contains(d)))
    {
        return Err(refused(format!(
            "the entry maps {d}, which LVM does not use as a PV of VG {vg} today (pvs): a copy \
             of the PV, or a PV the VG has dropped"
        )));
    }

    // Journalled before the kernel is touched: a mapping dmheal made is never unrecorded.
    let started = writer.append(Event::Restore {
        of: id,
        result: "restoring".into(),
        detail: format!("recreating {name} as journal entry {id} recorded it"),
    })?;
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
    let (journal_id, message) = match writer.append(Event::Restore {
        of: id,
        result: if exact {
            "restored"
        } else {
            "restored-differently"
        }
        .into(),
        detail: message.clone(),
    }) {
        Ok(j) => (j, message),
        // The mapping exists either way; entry `started` says it was being made.
        Err(e) => (
            started,
            format!(
                "{message}; its outcome could not be journalled ({}): entry {started} records the restore",
                e.chain()
            ),
        ),
    };
    Ok(RestoreOutcome {
        restored: id,
        dm_name: Some(name.to_string()),
        uuid: Some(uuid),
        table: Some(table.iter().map(|l| l.to_string()).collect()),
        undid: None,
        journal_id,
        message,
    })
}

/// The LV id part of an LVM DM uuid (`LVM-<32 VG id chars><LV id>`), as the metadata filter
/// takes it.
fn uuid_lv_part(uuid: &str) -> Option<String> {
    uuid.strip_prefix("LVM-")
        .filter(|u| u.len() > 32 && u.is_char_boundary(32))
        .map(|u| u[32..].to_string())
}

/// Whether the entry's uuid may be given back: none (a ghost without one), dmheal's own stamp,
/// or an LVM uuid of this VG that is this LV's own or no LV's (a removed LV's: what heal
/// accepts as a ghost) — never another LV's identity, any LV's layer (uuid plus "-real",
/// "-cow"…, which LVM adopts as that LV's), a uuid of another VG or another subsystem, which
/// would make LVM or something else believe a volume active through extents not its own.
pub fn check_uuid(metadata: &VgMetadata, lv: &str, uuid: &str) -> Result<(), String> {
    if uuid.is_empty() || crate::dm::is_dmheal_stamp(uuid) {
        return Ok(());
    }
    let Some((rest, layer)) = crate::lvm::names::lv_of_dm_uuid(uuid, &metadata.id) else {
        return Err(format!(
            "the entry's uuid {uuid} is not an LVM uuid of VG {}",
            metadata.name
        ));
    };
    if layer.is_some() {
        return Err(format!(
            "the entry's uuid {uuid} is an LVM layer's (an LV's uuid plus a suffix), which LVM \
             would take for that LV's: not given back"
        ));
    }
    match metadata.lvs.iter().find(|l| l.id.replace('-', "") == rest) {
        Some(other) if other.name != lv => Err(format!(
            "the entry's uuid {uuid} is LV {}'s identity, not {lv}'s",
            other.name
        )),
        _ => Ok(()),
    }
}

/// Whether `table` maps only extents LVM's `metadata` gives LV `lv`, on devices that are PVs
/// of the VG (`pvs`: device and PV uuid, as the labels say today).
pub fn check_table(
    metadata: &VgMetadata,
    lv: &str,
    pvs: &[(DevNum, String)],
    table: &[TableLine],
) -> Result<(), String> {
    let record = metadata
        .lvs
        .iter()
        .find(|l| l.name == lv)
        .ok_or_else(|| format!("VG {} has no LV {lv} today", metadata.name))?;
    if table.is_empty() {
        return Err("the entry's table is empty".into());
    }
    let es = metadata.extent_size;
    for line in table {
        let mut words = line.params.split_whitespace();
        let (Some(dev), Some(offset), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "table line \"{line}\" is not linear MAJ:MIN OFFSET"
            ));
        };
        if line.target != "linear" {
            return Err(format!("table line \"{line}\" is not linear"));
        }
        let dev = crate::kernel::holders::parse_devnum(dev)
            .ok_or_else(|| format!("table line \"{line}\" names no MAJ:MIN device"))?;
        let offset: u64 = offset
            .parse()
            .map_err(|_| format!("table line \"{line}\" has no sector offset"))?;
        let pv_uuid = pvs
            .iter()
            .find(|(d, _)| *d == dev)
            .map(|(_, u)| u)
            .ok_or_else(|| format!("device {dev} is not a PV of VG {} today", metadata.name))?;
        let pv = metadata
            .pvs
            .iter()
            .position(|p| p.id.replace('-', "") == *pv_uuid)
            .ok_or_else(|| {
                format!(
                    "device {dev} carries PV {pv_uuid}, which VG {} does not list",
                    metadata.name
                )
            })?;
        let pe_start = metadata.pvs[pv].pe_start;
        let end = offset
            .checked_add(line.length)
            .ok_or_else(|| format!("table line \"{line}\" overflows"))?;
        let inside = record.segments.iter().any(|s| match s.linear {
            Some((p, pe)) if p == pv => {
                let from = pe_start + pe * es;
                let to = from + s.extent_count * es;
                offset >= from && end <= to
            }
            _ => false,
        });
        if !inside {
            return Err(format!(
                "table line \"{line}\" maps sectors {offset}..{end} of {dev}, which LVM does not give LV {lv} today"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::metadata_text::{LvMetadata, PvMetadata, Segment};

    fn vg() -> VgMetadata {
        VgMetadata {
            name: "VG_XenStorage-x".into(),
            id: "vg".into(),
            seqno: 3,
            pv_ids: vec!["pv-0".into()],
            pvs: vec![PvMetadata {
                name: "pv0".into(),
                id: "pv-0".into(),
                pe_start: 2048,
            }],
            extent_size: 8192,
            lvs: vec![
                LvMetadata {
                    name: "VHD-a".into(),
                    id: "a".into(),
                    visible: true,
                    segments: vec![Segment {
                        start_extent: 0,
                        extent_count: 2,
                        linear: Some((0, 1)),
                    }],
                },
                LvMetadata {
                    name: "VHD-b".into(),
                    id: "b".into(),
                    visible: true,
                    segments: vec![Segment {
                        start_extent: 0,
                        extent_count: 1,
                        linear: Some((0, 0)),
                    }],
                },
            ],
        }
    }

    const DEV: DevNum = DevNum {
        major: 98,
        minor: 0,
    };

    fn line(length: u64, params: &str) -> TableLine {
        TableLine {
            start: 0,
            length,
            target: "linear".into(),
            params: params.into(),
        }
    }

    #[test]
    fn a_table_within_the_lvs_extents_on_its_pv_is_restorable() {
        let pvs = vec![(DEV, "pv0".to_string())];
        // VHD-a: extents 1..3 of pv0 = sectors 2048+8192 .. 2048+3*8192.
        assert_eq!(
            check_table(&vg(), "VHD-a", &pvs, &[line(16384, "98:0 10240")]),
            Ok(())
        );
        assert_eq!(
            check_table(&vg(), "VHD-a", &pvs, &[line(8, "98:0 10240")]),
            Ok(())
        );
    }

    #[test]
    fn forged_or_stale_tables_are_refused_with_the_reason() {
        let pvs = vec![(DEV, "pv0".to_string())];
        let cases = [
            ("VHD-a", line(16384, "98:0 2048"), "does not give"), // VHD-b's extent
            ("VHD-a", line(1_000_000, "98:0 0"), "does not give"), // the whole PV
            ("VHD-a", line(16384, "98:16 10240"), "not a PV"),
            ("VHD-gone", line(8, "98:0 10240"), "no LV"),
            ("VHD-a", line(8, "98:0"), "not linear"),
            ("VHD-a", line(8, "/dev/sda 0"), "MAJ:MIN"),
        ];
        for (lv, l, why) in cases {
            let e = check_table(&vg(), lv, &pvs, std::slice::from_ref(&l)).unwrap_err();
            assert!(e.contains(why), "{l:?}: {e}");
        }
        let striped = TableLine {
            target: "striped".into(),
            ..line(8, "98:0 10240")
        };
        assert!(check_table(&vg(), "VHD-a", &pvs, &[striped]).is_err());
        // The device's label names a PV the VG does not list (another VG's PV now).
        let e = check_table(
            &vg(),
            "VHD-a",
            &[(DEV, "other".to_string())],
            &[line(8, "98:0 10240")],
        )
        .unwrap_err();
        assert!(e.contains("does not list"), "{e}");
        assert!(check_table(&vg(), "VHD-a", &pvs, &[]).is_err());
    }

    #[test]
    fn only_no_uuid_or_this_lvs_own_or_a_stale_one_of_the_vg_is_given_back() {
        let m = vg();
        for ok in ["", "LVM-vga", "LVM-vgstale", "DMHEAL-1-abc"] {
            assert_eq!(check_uuid(&m, "VHD-a", ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("LVM-vgb", "VHD-b"),
            ("LVM-vgb-real", "layer"),
            ("LVM-vga-cow", "layer"),
            ("LVM-othera", "not an LVM uuid of VG"),
            ("mpath-3600", "not an LVM uuid of VG"),
        ] {
            let e = check_uuid(&m, "VHD-a", bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
