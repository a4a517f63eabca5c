//! Fixtures the unit tests share: a mapping's kernel state, and a host configuration whose `lvs`
//! is a stand-in script printing given records (the rest points at empty scratch paths).

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;

use crate::config::{Config, Overrides};
use crate::dm::{DeviceMapper, DmDevice, DmStatus, Listed, TableLine};
use crate::error::Result;
use crate::ids::DmName;

/// An unsuspended mapping with a live table and `open_count` opens.
pub fn status(open_count: i32) -> DmStatus {
    DmStatus {
        open_count,
        event_nr: 0,
        suspended: false,
        read_only: false,
        live_table: true,
        inactive_table: false,
        deferred_remove: false,
    }
}

/// One linear segment of `length` sectors on 98:0 (the user-mode kernel's first ubd disk).
pub fn linear_table(length: u64) -> Vec<TableLine> {
    vec![TableLine {
        start: 0,
        length,
        target: "linear".into(),
        params: "98:0 2048".into(),
    }]
}

/// A configuration for `dir`: journal, refcounts, sysfs and locks there, no xapi, no tap-ctl,
/// and an `lvs` that prints `lv_records` (JSON objects, comma-separated) as its report.
pub fn config(dir: &Path, lv_records: &str) -> Config {
    let lvs = dir.join("lvs");
    std::fs::write(
        &lvs,
        format!("#!/bin/sh\ncat <<'EOF'\n{{\"report\":[{{\"lv\":[{lv_records}]}}]}}\nEOF\n"),
    )
    .unwrap();
    std::fs::set_permissions(&lvs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = Config::resolve(Overrides {
        journal: Some(dir.join("journal.jsonl")),
        xapi: Some("none".into()),
        ..Default::default()
    })
    .unwrap();
    config.lvs_program = lvs.to_string_lossy().into_owned();
    config.tap_ctl = "dmheal-no-tap-ctl".into();
    config.refcount_dir = dir.join("refcount");
    config.sys_root = dir.join("sys");
    config.fairlock_socket = dir.join("no-fairlock");
    config.legacy_lock = dir.join("no-sm/lvm");
    config
}

/// A kernel holding fixed mappings that records every name or uuid it is asked about. Its list
/// carries uuids when `uuids_listed` (Linux 5.15 and later); it removes and creates nothing.
pub struct FakeKernel {
    pub uuids_listed: bool,
    pub devices: Vec<DmDevice>,
    pub asked: Rc<RefCell<Vec<String>>>,
}

impl FakeKernel {
    pub fn new(devices: Vec<DmDevice>, uuids_listed: bool) -> Self {
        FakeKernel {
            uuids_listed,
            devices,
            asked: Rc::new(RefCell::new(Vec::new())),
        }
    }

    fn find(&self, name: &DmName) -> Option<&DmDevice> {
        self.asked.borrow_mut().push(name.to_string());
        self.devices.iter().find(|d| d.name == name.as_str())
    }
}

impl DeviceMapper for FakeKernel {
    fn list(&self) -> Result<Vec<Listed>> {
        Ok(self
            .devices
            .iter()
            .map(|d| Listed {
                name: d.name.clone(),
                dev: d.dev,
                uuid: self.uuids_listed.then(|| d.uuid.clone()),
            })
            .collect())
    }
    fn device(&self, name: &DmName) -> Result<Option<DmDevice>> {
        Ok(self.find(name).cloned())
    }
    fn status(&self, name: &DmName) -> Result<Option<DmDevice>> {
        Ok(self.find(name).map(|d| DmDevice {
            table: None,
            ..d.clone()
        }))
    }
    fn has_uuid(&self, uuid: &str) -> Result<bool> {
        self.asked.borrow_mut().push(uuid.to_string());
        Ok(self.devices.iter().any(|d| d.uuid == uuid))
    }
    fn remove(&self, _: &DmName) -> Result<()> {
        unreachable!("this fake kernel removes nothing")
    }
    fn create(&self, _: &DmName, _: &str, _: &[TableLine], _: bool) -> Result<()> {
        unreachable!("this fake kernel creates nothing")
    }
}
