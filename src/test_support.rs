//! Fixtures the unit tests share: a mapping's kernel state, and a host configuration whose `lvs`
//! is a stand-in script printing given records (the rest points at empty scratch paths).

use std::cell::{Cell, RefCell};
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
    // `pvs` beside it: 98:0 (the disk `linear_table` maps) is a PV of every VG in the records.
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&format!("[{lv_records}]")).unwrap_or_default();
    let mut vgs: Vec<&str> = records
        .iter()
        .filter_map(|r| r["vg_name"].as_str())
        .collect();
    vgs.sort_unstable();
    vgs.dedup();
    let rows: Vec<String> = vgs
        .iter()
        .map(|vg| format!("{{\"pv_major\":\"98\",\"pv_minor\":\"0\",\"vg_name\":\"{vg}\"}}"))
        .collect();
    let pvs = dir.join("pvs");
    std::fs::write(
        &pvs,
        format!(
            "#!/bin/sh\ncat <<'EOF'\n{{\"report\":[{{\"pv\":[{}]}}]}}\nEOF\n",
            rows.join(",")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pvs, std::fs::Permissions::from_mode(0o755)).unwrap();
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

/// A change the fake kernel makes to its own mappings (an adversary racing dmheal).
pub type Change = Box<dyn Fn(&mut Vec<DmDevice>)>;

/// A kernel holding mappings that records every name or uuid it is asked about. Its list
/// carries uuids when `uuids_listed` (Linux 5.15 and later). It keeps the kernel's rules that
/// matter to a removal: uuids are unique, a uuid can be set only on a device without one, a
/// device is removed by uuid, an open one refuses (EBUSY). `after_read(n, change)` makes
/// `change` right after the n-th read of a device by name, as a racing process would.
pub struct FakeKernel {
    pub uuids_listed: bool,
    pub devices: Rc<RefCell<Vec<DmDevice>>>,
    pub asked: Rc<RefCell<Vec<String>>>,
    reads: Cell<u32>,
    change: RefCell<Option<(u32, Change)>>,
    /// What was removed, in order.
    pub removed: Rc<RefCell<Vec<DmDevice>>>,
}

impl FakeKernel {
    pub fn new(devices: Vec<DmDevice>, uuids_listed: bool) -> Self {
        FakeKernel {
            uuids_listed,
            devices: Rc::new(RefCell::new(devices)),
            asked: Rc::new(RefCell::new(Vec::new())),
            reads: Cell::new(0),
            change: RefCell::new(None),
            removed: Rc::new(RefCell::new(Vec::new())),
        }
    }

    pub fn after_read(self, n: u32, change: Change) -> Self {
        *self.change.borrow_mut() = Some((n, change));
        self
    }

    fn find(&self, name: &DmName) -> Option<DmDevice> {
        self.asked.borrow_mut().push(name.to_string());
        let found = self
            .devices
            .borrow()
            .iter()
            .find(|d| d.name == name.as_str())
            .cloned();
        self.reads.set(self.reads.get() + 1);
        if let Some((n, change)) = self.change.borrow().as_ref() {
            if *n == self.reads.get() {
                change(&mut self.devices.borrow_mut());
            }
        }
        found
    }

    fn errno(op: &'static str, name: &str, e: i32) -> crate::error::Error {
        crate::error::Error::DmIoctl {
            operation: op,
            name: name.to_string(),
            source: std::io::Error::from_raw_os_error(e),
        }
    }
}

impl DeviceMapper for FakeKernel {
    fn list(&self) -> Result<Vec<Listed>> {
        Ok(self
            .devices
            .borrow()
            .iter()
            .map(|d| Listed {
                name: d.name.clone(),
                dev: d.dev,
                uuid: self.uuids_listed.then(|| d.uuid.to_string()),
            })
            .collect())
    }
    fn device(&self, name: &DmName) -> Result<Option<DmDevice>> {
        Ok(self.find(name))
    }
    fn device_by_uuid(&self, uuid: &str) -> Result<Option<DmDevice>> {
        self.asked.borrow_mut().push(uuid.to_string());
        Ok(self
            .devices
            .borrow()
            .iter()
            .find(|d| !uuid.is_empty() && d.uuid == uuid)
            .cloned())
    }
    fn status(&self, name: &DmName) -> Result<Option<DmDevice>> {
        Ok(self.find(name).map(|d| DmDevice { table: None, ..d }))
    }
    fn has_uuid(&self, uuid: &str) -> Result<bool> {
        self.asked.borrow_mut().push(uuid.to_string());
        Ok(self.devices.borrow().iter().any(|d| d.uuid == uuid))
    }
    fn set_uuid(&self, name: &DmName, uuid: &str) -> Result<()> {
        let mut devices = self.devices.borrow_mut();
        if devices.iter().any(|d| d.uuid == uuid) {
            return Err(Self::errno("set uuid", name.as_str(), libc::EBUSY));
        }
        match devices.iter_mut().find(|d| d.name == name.as_str()) {
            None => Err(Self::errno("set uuid", name.as_str(), libc::ENXIO)),
            Some(d) if !d.uuid.is_empty() => {
                Err(Self::errno("set uuid", name.as_str(), libc::EINVAL))
            }
            Some(d) => {
                // As the kernel: a rename (of name or uuid) is a table event.
                d.uuid = uuid.into();
                if let Some(st) = d.status.as_mut() {
                    st.event_nr += 1;
                }
                Ok(())
            }
        }
    }
    fn remove_by_uuid(&self, uuid: &str, _deadline: std::time::Instant) -> Result<()> {
        let mut devices = self.devices.borrow_mut();
        let Some(at) = devices.iter().position(|d| d.uuid == uuid) else {
            return Err(Self::errno("remove", uuid, libc::ENXIO));
        };
        if devices[at].open_count().is_some_and(|n| n > 0) {
            return Err(Self::errno("remove", uuid, libc::EBUSY));
        }
        self.removed.borrow_mut().push(devices.remove(at));
        Ok(())
    }
    fn create(&self, _: &DmName, _: &str, _: &[TableLine], _: bool) -> Result<()> {
        unreachable!("this fake kernel creates nothing")
    }
}
