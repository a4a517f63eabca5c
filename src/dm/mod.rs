//! The kernel's device-mapper view, through the `devicemapper` crate (every ioctl but one goes
//! through its `DM::do_ioctl`; `list` issues the listing itself to get uuids, see `list.rs`).
//! Behind the `DeviceMapper` trait so the verdict and the heal can be exercised without a
//! kernel.

mod ioctl;
mod list;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devicemapper::{DevId, DmFlags, DmName as CrateDmName, DmOptions, DmUuid as CrateDmUuid, DM};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{DmName, DmUuid};

pub const CONTROL_PATH: &str = "/dev/mapper/control";

/// A block device number, as `major:minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    pub fn from_rdev(rdev: u64) -> Self {
        DevNum {
            major: libc::major(rdev),
            minor: libc::minor(rdev),
        }
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One line of a table, exactly as `dmsetup table` prints it: `start length target params`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLine {
    pub start: u64,
    pub length: u64,
    pub target: String,
    pub params: String,
}

impl fmt::Display for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.start, self.length, self.target, self.params
        )
    }
}

/// Everything DM_DEV_STATUS and DM_TABLE_STATUS tell about one mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmDevice {
    pub name: DmNameString,
    /// Empty when the mapping has no uuid (the seed ghost).
    pub uuid: DmUuid,
    pub dev: DevNum,
    /// The state DM_DEV_STATUS reports (its fields appear inline in JSON). `None` only in a
    /// host scan, for a mapping the kernel's list shows with exactly the uuid LVM gives its
    /// LV: LVM's own mapping whatever its state, so the scan does not ask (`inspect` does).
    #[serde(flatten)]
    pub status: Option<DmStatus>,
    /// The live table (empty when none is loaded); `None` when not read: a host scan reads
    /// tables only where a verdict or the LVM reader needs one (DM_DEV_STATUS carries no
    /// table and costs the kernel no parameter copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Vec<TableLine>>,
}

impl DmDevice {
    /// A mapping as the kernel's list shows it, before (or without) DM_DEV_STATUS.
    pub fn listed(name: &DmName, uuid: impl Into<DmUuid>, dev: DevNum) -> Self {
        DmDevice {
            name: name.to_string(),
            uuid: uuid.into(),
            dev,
            status: None,
            table: None,
        }
    }

    /// The kernel's open count; `None` when not asked (see `status`).
    pub fn open_count(&self) -> Option<i32> {
        self.status.as_ref().map(|s| s.open_count)
    }
}

/// What DM_DEV_STATUS says of a mapping besides its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmStatus {
    pub open_count: i32,
    pub event_nr: u32,
    pub suspended: bool,
    pub read_only: bool,
    pub live_table: bool,
    pub inactive_table: bool,
    pub deferred_remove: bool,
}

/// DM names as stored in facts and the journal (already validated when they came in).
pub type DmNameString = String;

/// A listed mapping: name, device number and uuid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub dev: DevNum,
    /// As the list reports it ("" for none); `None` when the kernel's list carries no uuids
    /// (dm ioctl before 4.45, Linux before 5.15).
    pub uuid: Option<String>,
}

/// The operations dmheal needs from device-mapper, no more.
pub trait DeviceMapper {
    fn list(&self) -> Result<Vec<Listed>>;
    /// `None` when no mapping has that name. With its table.
    fn device(&self, name: &DmName) -> Result<Option<DmDevice>>;
    /// `None` when no mapping carries that uuid. With its table. (The kernel keeps uuids
    /// unique, so this names one device for as long as it exists.)
    fn device_by_uuid(&self, uuid: &str) -> Result<Option<DmDevice>>;
    /// As `device`, without the table (one cheaper ioctl).
    fn status(&self, name: &DmName) -> Result<Option<DmDevice>>;
    /// Whether some mapping carries `uuid` (how LVM decides that an LV is active).
    fn has_uuid(&self, uuid: &str) -> Result<bool>;
    /// Give the mapping named `name`, which has no uuid, the uuid `uuid`. The kernel allows
    /// this exactly once per device and refuses (EINVAL) when it already has one.
    fn set_uuid(&self, name: &DmName, uuid: &str) -> Result<()>;
    /// Plain remove of the mapping carrying `uuid`: never forced, never deferred, no udev
    /// cookie to wait for. EBUSY (udev holding the node a moment) is retried until `deadline`.
    fn remove_by_uuid(&self, uuid: &str, deadline: Instant) -> Result<()>;
    /// Create `name` with `uuid`, load `table` and resume it.
    fn create(&self, name: &DmName, uuid: &str, table: &[TableLine], read_only: bool)
        -> Result<()>;
}

/// The real kernel, through /dev/mapper/control.
pub struct KernelDm {
    dm: DM,
    /// Where /dev is (its mapper/ directory holds the nodes a removal may leave behind).
    dev_root: PathBuf,
}

impl KernelDm {
    pub fn open() -> Result<Self> {
        // Check the control node ourselves first: the crate's error would only say "context".
        if let Err(source) = std::fs::File::open(Path::new(CONTROL_PATH)) {
            return Err(Error::NoDeviceMapper {
                path: CONTROL_PATH.into(),
                source,
            });
        }
        let dm = DM::new().map_err(|source| Error::Dm {
            operation: "open",
            name: CONTROL_PATH.into(),
            source,
        })?;
        Ok(KernelDm {
            dm,
            dev_root: "/dev".into(),
        })
    }

    fn errno_err(operation: &'static str, name: &str, errno: nix::errno::Errno) -> Error {
        Error::DmIoctl {
            operation,
            name: name.to_string(),
            source: errno.into(),
        }
    }

    /// After a removal without a udev cookie: a /dev/mapper node that libdevmapper made itself
    /// (a block node, not udev's symlink) for exactly the removed device is removed too, as
    /// libdevmapper's own fallback does; udev's symlinks are udev's to remove on the uevent.
    fn forget_node(&self, name: &str, dev: DevNum) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let node = self.dev_root.join("mapper").join(name);
        if let Ok(meta) = std::fs::symlink_metadata(&node) {
            if meta.file_type().is_block_device() && DevNum::from_rdev(meta.rdev()) == dev {
                let _ = std::fs::remove_file(&node);
            }
        }
    }

    /// Resume `name` (activate its loaded table) without a udev cookie.
    fn resume(&self, name: &DmName) -> Result<()> {
        let mut req = ioctl::Request::new(0)
            .name(name.as_str())
            .map_err(|e| Self::errno_err("resume", name.as_str(), e))?;
        ioctl::issue(self.dm.file(), ioctl::Cmd::DevSuspend, &mut req)
            .map_err(|e| Self::errno_err("resume", name.as_str(), e))
    }
}

/// Pause between retries of a remove the kernel calls busy (udev probing the node).
const BUSY_RETRY: Duration = Duration::from_millis(100);

fn crate_name(name: &DmName) -> &CrateDmName {
    // Our DmName is a strict subset of what the crate accepts (LVM charset, <= 127 bytes).
    CrateDmName::new(name.as_str()).expect("validated DM name")
}

/// True when a devicemapper error is the kernel's ENXIO: no such device.
fn is_no_such_device(err: &devicemapper::DmError) -> bool {
    errno_of(err) == Some(nix::errno::Errno::ENXIO)
}

fn to_device(
    name: &DmName,
    info: &devicemapper::DeviceInfo,
    table: Option<Vec<TableLine>>,
) -> DmDevice {
    let flags = info.flags();
    let dev = info.device();
    DmDevice {
        name: name.to_string(),
        uuid: info
            .uuid()
            .map(|u| u.to_string())
            .unwrap_or_default()
            .into(),
        dev: DevNum {
            major: dev.major,
            minor: dev.minor,
        },
        status: Some(DmStatus {
            open_count: info.open_count(),
            event_nr: info.event_nr(),
            suspended: flags.contains(DmFlags::DM_SUSPEND),
            read_only: flags.contains(DmFlags::DM_READONLY),
            live_table: flags.contains(DmFlags::DM_ACTIVE_PRESENT),
            inactive_table: flags.contains(DmFlags::DM_INACTIVE_PRESENT),
            deferred_remove: flags.contains(DmFlags::DM_DEFERRED_REMOVE),
        }),
        table,
    }
}

fn table_lines(table: Vec<(u64, u64, String, String)>) -> Vec<TableLine> {
    table
        .into_iter()
        .map(|(start, length, target, params)| TableLine {
            start,
            length,
            target,
            params,
        })
        .collect()
}

fn errno_of(err: &devicemapper::DmError) -> Option<nix::errno::Errno> {
    use devicemapper::{errors::Error as CoreError, DmError};
    match err {
        DmError::Core(CoreError::Ioctl(_, _, _, errno)) => Some(**errno),
        _ => None,
    }
}

impl DeviceMapper for KernelDm {
    fn list(&self) -> Result<Vec<Listed>> {
        list::list(self.dm.file()).map_err(|e| Error::DmList(e.to_string()))
    }

    fn device(&self, name: &DmName) -> Result<Option<DmDevice>> {
        let id = DevId::Name(crate_name(name));
        let status = self.dm.table_status(
            &id,
            DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
        );
        match status {
            Ok((info, table)) => Ok(Some(to_device(name, &info, Some(table_lines(table))))),
            Err(e) if is_no_such_device(&e) => Ok(None),
            Err(source) => Err(Error::Dm {
                operation: "table status",
                name: name.to_string(),
                source,
            }),
        }
    }

    fn device_by_uuid(&self, uuid: &str) -> Result<Option<DmDevice>> {
        let Ok(id) = CrateDmUuid::new(uuid) else {
            return Ok(None); // not a uuid the kernel could hold
        };
        let status = self.dm.table_status(
            &DevId::Uuid(id),
            DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
        );
        match status {
            Ok((info, table)) => {
                let Some(name) = info.name().and_then(|n| DmName::new(&n.to_string()).ok()) else {
                    return Err(Error::DmList(format!(
                        "the mapping with uuid {uuid} has a name dmheal cannot handle"
                    )));
                };
                Ok(Some(to_device(&name, &info, Some(table_lines(table)))))
            }
            Err(e) if is_no_such_device(&e) => Ok(None),
            Err(source) => Err(Error::Dm {
                operation: "table status by uuid",
                name: uuid.to_string(),
                source,
            }),
        }
    }

    fn status(&self, name: &DmName) -> Result<Option<DmDevice>> {
        match self.dm.device_info(&DevId::Name(crate_name(name))) {
            Ok(info) => Ok(Some(to_device(name, &info, None))),
            Err(e) if is_no_such_device(&e) => Ok(None),
            Err(source) => Err(Error::Dm {
                operation: "status",
                name: name.to_string(),
                source,
            }),
        }
    }

    fn has_uuid(&self, uuid: &str) -> Result<bool> {
        let Ok(id) = CrateDmUuid::new(uuid) else {
            return Ok(false); // not a uuid the kernel could hold
        };
        match self.dm.device_info(&DevId::Uuid(id)) {
            Ok(_) => Ok(true),
            Err(e) if is_no_such_device(&e) => Ok(false),
            Err(source) => Err(Error::Dm {
                operation: "info by uuid",
                name: uuid.to_string(),
                source,
            }),
        }
    }

    fn set_uuid(&self, name: &DmName, uuid: &str) -> Result<()> {
        let err = |e| Self::errno_err("set uuid", name.as_str(), e);
        let mut req = ioctl::Request::new(0)
            .name(name.as_str())
            .map_err(err)?
            .flags(ioctl::UUID_FLAG)
            .data_cstr(uuid)
            .map_err(err)?;
        ioctl::issue(self.dm.file(), ioctl::Cmd::DevRename, &mut req).map_err(err)
    }

    fn remove_by_uuid(&self, uuid: &str, deadline: Instant) -> Result<()> {
        // No DM_DEFERRED_REMOVE flag and no forced remove (that would swap in an error table).
        let err = |e| Self::errno_err("remove", uuid, e);
        let before = self.device_by_uuid(uuid)?;
        loop {
            let mut req = ioctl::Request::new(0).uuid(uuid).map_err(err)?;
            match ioctl::issue(self.dm.file(), ioctl::Cmd::DevRemove, &mut req) {
                Ok(()) => break,
                Err(nix::errno::Errno::EBUSY) if Instant::now() + BUSY_RETRY < deadline => {
                    tracing::debug!(uuid, "remove: device busy, retrying");
                    std::thread::sleep(BUSY_RETRY);
                }
                Err(e) => return Err(err(e)),
            }
        }
        if let Some(d) = before {
            self.forget_node(&d.name, d.dev);
        }
        Ok(())
    }

    fn create(
        &self,
        name: &DmName,
        uuid: &str,
        table: &[TableLine],
        read_only: bool,
    ) -> Result<()> {
        let dm_err = |operation: &'static str| {
            let name = name.to_string();
            move |source| Error::Dm {
                operation,
                name,
                source,
            }
        };
        let uuid = if uuid.is_empty() {
            None
        } else {
            Some(CrateDmUuid::new(uuid).map_err(dm_err("create"))?)
        };
        let flags = if read_only {
            DmFlags::DM_READONLY
        } else {
            DmFlags::empty()
        };
        self.dm
            .device_create(
                crate_name(name),
                uuid,
                DmOptions::default().set_flags(flags),
            )
            .map_err(dm_err("create"))?;
        let id = DevId::Name(crate_name(name));
        let targets: Vec<(u64, u64, String, String)> = table
            .iter()
            .map(|l| (l.start, l.length, l.target.clone(), l.params.clone()))
            .collect();
        let loaded = self
            .dm
            .table_load(&id, &targets, DmOptions::default().set_flags(flags))
            .map_err(dm_err("load table"))
            .and_then(|_| self.resume(name));
        if let Err(e) = loaded {
            // Leave nothing half-made behind: the empty device we just created goes again
            // (by name: it was made a moment ago, and a failed load leaves it unusable).
            let mut req = ioctl::Request::new(0)
                .name(name.as_str())
                .map_err(|e| Self::errno_err("remove", name.as_str(), e))?;
            let _ = ioctl::issue(self.dm.file(), ioctl::Cmd::DevRemove, &mut req);
            return Err(e);
        }
        Ok(())
    }
}

/// The uuid prefix dmheal stamps on a uuid-less ghost to remove it by uuid (`heal`).
pub const DMHEAL_STAMP_PREFIX: &str = "DMHEAL-";

/// Whether a DM uuid is a stamp dmheal gave a ghost (left on it when a removal was refused
/// after the stamp): the mapping is still the uuid-less ghost it was.
pub fn is_dmheal_stamp(uuid: &str) -> bool {
    uuid.starts_with(DMHEAL_STAMP_PREFIX)
}
