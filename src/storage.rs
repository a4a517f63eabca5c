//! What this host's storage says about SRs, read where the data is — never from xapi's
//! records, which are what is inconsistent after a botched upgrade:
//! * LVM-based SRs keep their data in a volume group named for the SR (`VG_XenStorage-<sr>`;
//!   EXT and XFS local SRs `XSLocalEXT-<sr>`, LargeBlock SRs `XSLocalLargeBlock-<sr>`): LVM's
//!   own `pvs` says which VG each PV belongs to, and the PV's names under /dev (its kernel
//!   name, /dev/disk/by-*, /dev/mapper) and SCSI ids say which device-config names it;
//! * file SRs are mounted at /run/sr-mount/<sr> from their own `<sr>` directory on the
//!   export (/proc/self/mountinfo says from where);
//! * udev SRs are this host's device directories (/dev/xapi/cd, /dev/xapi/block).
//!
//! The doctor (on the master) matches every SR record against every host's survey
//! (`doctor::identity`).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dm::DevNum;
use crate::external_tool;

/// The VG name prefixes SM gives an SR's volume group, and the SR types each serves.
pub const SR_VG_PREFIXES: [(&str, VgKind); 3] = [
    ("VG_XenStorage-", VgKind::Lvm),
    ("XSLocalEXT-", VgKind::Ext),
    ("XSLocalLargeBlock-", VgKind::LargeBlock),
];

/// Which family of SR a volume group is named for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VgKind {
    /// `VG_XenStorage-<sr>`: lvm, lvmoiscsi, lvmohba, lvmofcoe (and their lvhd names).
    Lvm,
    /// `XSLocalEXT-<sr>`: ext and xfs local SRs (one LV named `<sr>`).
    Ext,
    /// `XSLocalLargeBlock-<sr>`: largeblock local SRs.
    LargeBlock,
}

impl VgKind {
    /// The VG kind an SR type keeps its data in, if it keeps it in a VG.
    pub fn of_sr_type(kind: &str) -> Option<VgKind> {
        match kind {
            "lvm" | "lvhd" | "lvmoiscsi" | "lvhdoiscsi" | "lvmohba" | "lvhdohba" | "lvmofcoe"
            | "lvhdofcoe" => Some(VgKind::Lvm),
            "ext" | "xfs" => Some(VgKind::Ext),
            "largeblock" => Some(VgKind::LargeBlock),
            _ => None,
        }
    }

    pub fn prefix(self) -> &'static str {
        SR_VG_PREFIXES
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(p, _)| *p)
            .unwrap_or_default()
    }

    /// The VG an SR of this kind keeps its data in.
    pub fn vg_of(self, sr_uuid: &str) -> String {
        format!("{}{sr_uuid}", self.prefix())
    }
}

/// The SR a VG name is named for: (kind, SR uuid), if it is SR-shaped.
pub fn sr_of_vg_name(vg: &str) -> Option<(VgKind, String)> {
    SR_VG_PREFIXES.iter().find_map(|(prefix, kind)| {
        let uuid = vg.strip_prefix(prefix)?;
        crate::ids::Uuid::is_well_formed(uuid).then(|| (*kind, uuid.to_ascii_lowercase()))
    })
}

/// A physical volume LVM sees on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalVolume {
    /// The device LVM reads it on.
    pub device: String,
    /// Every name under /dev that is this device (kernel name, /dev/disk/by-*, /dev/mapper).
    pub names: BTreeSet<String>,
    /// SCSI ids that name it (/dev/disk/by-scsid/<id>, by-id/scsi-<id>, a multipath map's
    /// wwid): what an iSCSI or HBA SR's device-config SCSIid says.
    pub scsi_ids: BTreeSet<String>,
    pub pv_uuid: String,
    /// Its volume group ("" for a PV in none).
    pub vg_name: String,
    pub vg_uuid: String,
}

impl PhysicalVolume {
    /// The SR whose volume group it is in, if the VG is SR-shaped.
    pub fn sr(&self) -> Option<(VgKind, String)> {
        sr_of_vg_name(&self.vg_name)
    }
}

/// An SR's file system mounted here (/run/sr-mount/<sr>).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrMount {
    pub sr_uuid: String,
    pub mount_point: String,
    /// Where it is mounted from (`server:/path/<sr>`, `//server/share/<sr>`, a device).
    pub source: String,
    pub fstype: String,
}

/// A udev SR location on this host (/dev/xapi/cd, /dev/xapi/block).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdevLocation {
    pub location: String,
    pub present: bool,
    /// The devices in it (what the SR's VDIs stand for).
    pub devices: Vec<String>,
}

/// LVM's view of this host's PVs, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PvsView {
    Read {
        pvs: Vec<PhysicalVolume>,
    },
    /// `pvs` failed, timed out, printed what cannot be read, or saw a PV's label on two
    /// devices (then which one is the PV is LVM's guess): nothing is proven from it.
    Unreadable {
        why: String,
    },
}

/// Everything this host's storage says about SRs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageSurvey {
    pub lvm: PvsView,
    pub mounts: Vec<SrMount>,
    pub udev: Vec<UdevLocation>,
}

impl StorageSurvey {
    /// The PVs, when LVM could be read.
    pub fn pvs(&self) -> Option<&[PhysicalVolume]> {
        match &self.lvm {
            PvsView::Read { pvs } => Some(pvs),
            PvsView::Unreadable { .. } => None,
        }
    }
}

/// Where the survey reads (the roots are settable for tests).
#[derive(Clone, Debug)]
pub struct Surveyor {
    pub pvs_program: String,
    pub dev_root: PathBuf,
    pub sys_root: PathBuf,
    pub proc_root: PathBuf,
    pub timeout: Duration,
}

/// The udev SR locations xapi creates on every host.
pub const UDEV_LOCATIONS: [&str; 2] = ["/dev/xapi/cd", "/dev/xapi/block"];

impl Surveyor {
    pub fn survey(&self) -> StorageSurvey {
        StorageSurvey {
            lvm: self.pvs(),
            mounts: self.mounts(),
            udev: self.udev(),
        }
    }

    fn pvs(&self) -> PvsView {
        let args = [
            "--reportformat",
            "json",
            "-o",
            "pv_name,pv_uuid,vg_name,vg_uuid,pv_major,pv_minor",
        ];
        let out = match external_tool::run(&self.pvs_program, &args, self.timeout)
            .and_then(|o| o.success(&self.pvs_program))
        {
            Ok(o) => o,
            Err(e) => return PvsView::Unreadable { why: e.to_string() },
        };
        if let Some(why) = crate::lvm::report::duplicate_pvs(&out.stderr) {
            return PvsView::Unreadable { why };
        }
        match parse_pvs(&out.stdout) {
            Ok(rows) => {
                let names = self.device_names();
                PvsView::Read {
                    pvs: rows
                        .into_iter()
                        .map(|(dev, mut pv)| {
                            if let Some(n) = names.get(&dev) {
                                pv.names.extend(n.names.iter().cloned());
                                pv.scsi_ids.extend(n.scsi_ids.iter().cloned());
                            }
                            let ids: Vec<String> =
                                pv.names.iter().filter_map(|n| scsi_id_in_name(n)).collect();
                            pv.scsi_ids.extend(ids);
                            pv
                        })
                        .collect(),
                }
            }
            Err(why) => PvsView::Unreadable { why },
        }
    }

    /// Every name under /dev/disk and /dev/mapper, by the device it is, with the SCSI ids
    /// those names and the device-mapper uuid carry.
    fn device_names(&self) -> BTreeMap<DevNum, Names> {
        let mut out: BTreeMap<DevNum, Names> = BTreeMap::new();
        let mut add = |path: &Path, scsi_id: Option<String>| {
            let Some(dev) = block_device(path) else {
                return;
            };
            let n = out.entry(dev).or_default();
            n.names.insert(self.shown(path));
            if let Some(id) = scsi_id {
                n.scsi_ids.insert(id);
            }
        };
        let disk = self.dev_root.join("disk");
        for dir in ["by-id", "by-path", "by-uuid", "by-partuuid", "by-label"] {
            for path in entries(&disk.join(dir)) {
                let id = (dir == "by-id")
                    .then(|| file_name(&path).strip_prefix("scsi-").map(str::to_string))
                    .flatten();
                add(&path, id);
            }
        }
        // SM's names: /dev/disk/by-scsid/<SCSIid>/<path device> (its udev rules), and
        // /dev/disk/mpInuse/<SCSIid> for a multipathed LUN in use.
        for path in entries(&disk.join("mpInuse")) {
            let id = file_name(&path).to_string();
            add(&path, Some(id));
        }
        for id_dir in entries(&disk.join("by-scsid")) {
            let id = file_name(&id_dir).to_string();
            for path in entries(&id_dir) {
                add(&path, Some(id.clone()));
            }
        }
        for path in entries(&self.dev_root.join("mapper")) {
            add(&path, None);
        }
        // Kernel names, and multipath maps' wwids (their DM uuid is `mpath-<wwid>`).
        for class in entries(&self.sys_root.join("class/block")) {
            let name = file_name(&class).to_string();
            let node = self.dev_root.join(&name);
            let wwid = std::fs::read_to_string(class.join("dm/uuid"))
                .ok()
                .and_then(|u| u.trim().strip_prefix("mpath-").map(str::to_string));
            add(&node, wwid);
        }
        out
    }

    /// A path as dom0 spells it (under /dev), whatever root the survey reads.
    fn shown(&self, path: &Path) -> String {
        match path.strip_prefix(&self.dev_root) {
            Ok(rest) => format!("/dev/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }

    fn mounts(&self) -> Vec<SrMount> {
        let text =
            std::fs::read_to_string(self.proc_root.join("self/mountinfo")).unwrap_or_default();
        parse_sr_mounts(&text)
    }

    fn udev(&self) -> Vec<UdevLocation> {
        UDEV_LOCATIONS
            .iter()
            .map(|loc| {
                let path = self.dev_root.join(loc.trim_start_matches("/dev/"));
                let mut devices: Vec<String> =
                    entries(&path).iter().map(|p| self.shown(p)).collect();
                devices.sort();
                UdevLocation {
                    location: loc.to_string(),
                    present: path.exists(),
                    devices,
                }
            })
            .collect()
    }
}

#[derive(Default)]
struct Names {
    names: BTreeSet<String>,
    scsi_ids: BTreeSet<String>,
}

/// The SCSI id a device name carries, in the names SM and udev give LUNs on dom0:
/// /dev/disk/by-scsid/<id>/<path>, /dev/disk/by-id/scsi-<id>, /dev/disk/mpInuse/<id>, and a
/// multipath map /dev/mapper/<id> (a wwid: no dash, unlike an LV's DM name).
pub fn scsi_id_in_name(name: &str) -> Option<String> {
    let id = if let Some(rest) = name.strip_prefix("/dev/disk/by-scsid/") {
        rest.split('/').next()
    } else if let Some(rest) = name.strip_prefix("/dev/disk/by-id/scsi-") {
        Some(rest)
    } else if let Some(rest) = name.strip_prefix("/dev/disk/mpInuse/") {
        Some(rest)
    } else {
        name.strip_prefix("/dev/mapper/")
            .filter(|id| id.len() >= 8 && id.chars().all(|c| c.is_ascii_alphanumeric()))
    }?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// The block device a path is (following symlinks), if it is one.
fn block_device(path: &Path) -> Option<DevNum> {
    let m = std::fs::metadata(path).ok()?;
    m.file_type()
        .is_block_device()
        .then(|| DevNum::from_rdev(m.rdev()))
}

#[derive(Deserialize)]
struct PvsReport {
    report: Vec<PvsSection>,
}

#[derive(Deserialize)]
struct PvsSection {
    #[serde(default)]
    pv: Vec<PvsRow>,
}

#[derive(Deserialize)]
struct PvsRow {
    pv_name: String,
    #[serde(default)]
    pv_uuid: String,
    #[serde(default)]
    vg_name: String,
    #[serde(default)]
    vg_uuid: String,
    pv_major: String,
    pv_minor: String,
}

/// `pvs --reportformat json -o pv_name,pv_uuid,vg_name,vg_uuid,pv_major,pv_minor`.
fn parse_pvs(json: &str) -> Result<Vec<(DevNum, PhysicalVolume)>, String> {
    let report: PvsReport =
        serde_json::from_str(json).map_err(|e| format!("unexpected pvs JSON: {e}"))?;
    report
        .report
        .into_iter()
        .flat_map(|s| s.pv)
        .map(|row| {
            let (Ok(major), Ok(minor)) = (row.pv_major.trim().parse(), row.pv_minor.trim().parse())
            else {
                return Err(format!(
                    "pvs printed device {:?}:{:?}",
                    row.pv_major, row.pv_minor
                ));
            };
            Ok((
                DevNum { major, minor },
                PhysicalVolume {
                    names: BTreeSet::from([row.pv_name.clone()]),
                    device: row.pv_name,
                    scsi_ids: BTreeSet::new(),
                    pv_uuid: row.pv_uuid,
                    vg_name: row.vg_name,
                    vg_uuid: row.vg_uuid,
                },
            ))
        })
        .collect()
}

/// The SR mounts in a mountinfo text: mount points /run/sr-mount/<uuid> (or /var/run/...).
/// mountinfo: `id parent maj:min root mount-point options [optional...] - fstype source ...`,
/// with spaces and other bytes in paths written as octal escapes.
pub fn parse_sr_mounts(text: &str) -> Vec<SrMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(fstype), Some(source)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 2))
        else {
            continue;
        };
        let point = unescape(point);
        let uuid = ["/run/sr-mount/", "/var/run/sr-mount/"]
            .iter()
            .find_map(|base| point.strip_prefix(base))
            .filter(|u| crate::ids::Uuid::is_well_formed(u));
        if let Some(uuid) = uuid {
            out.push(SrMount {
                sr_uuid: uuid.to_ascii_lowercase(),
                mount_point: point.clone(),
                source: unescape(source),
                fstype: fstype.to_string(),
            });
        }
    }
    out
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";

    #[test]
    fn sr_shaped_vg_names_say_their_sr() {
        assert_eq!(
            sr_of_vg_name(&format!("VG_XenStorage-{SR}")),
            Some((VgKind::Lvm, SR.into()))
        );
        assert_eq!(
            sr_of_vg_name(&format!("XSLocalEXT-{SR}")),
            Some((VgKind::Ext, SR.into()))
        );
        assert_eq!(
            sr_of_vg_name(&format!("XSLocalLargeBlock-{SR}")),
            Some((VgKind::LargeBlock, SR.into()))
        );
        assert_eq!(sr_of_vg_name("VG_XenStorage-not-a-uuid"), None);
        assert_eq!(sr_of_vg_name("vg0"), None);
        assert_eq!(VgKind::of_sr_type("xfs"), Some(VgKind::Ext));
        assert_eq!(VgKind::of_sr_type("nfs"), None);
    }

    #[test]
    fn pvs_rows_are_read_and_bad_devices_refused() {
        let json = format!(
            r#"{{"report":[{{"pv":[{{"pv_name":"/dev/sda3","pv_uuid":"abc","vg_name":"VG_XenStorage-{SR}","vg_uuid":"def","pv_major":"8","pv_minor":"3"}},
            {{"pv_name":"/dev/sdb","pv_uuid":"x","vg_name":"","vg_uuid":"","pv_major":"8","pv_minor":"16"}}]}}]}}"#
        );
        let rows = parse_pvs(&json).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, DevNum { major: 8, minor: 3 });
        assert_eq!(rows[0].1.sr(), Some((VgKind::Lvm, SR.into())));
        assert_eq!(rows[1].1.sr(), None);
        assert!(parse_pvs(
            r#"{"report":[{"pv":[{"pv_name":"x","pv_major":"?","pv_minor":"1"}]}]}"#
        )
        .is_err());
        assert!(parse_pvs("not json").is_err());
    }

    #[test]
    fn scsi_ids_are_read_from_the_names_sm_and_udev_give_luns() {
        let id = "360a98000383035537824474d3936556a";
        for name in [
            format!("/dev/disk/by-scsid/{id}/sdc"),
            format!("/dev/disk/by-id/scsi-{id}"),
            format!("/dev/disk/mpInuse/{id}"),
            format!("/dev/mapper/{id}"),
        ] {
            assert_eq!(scsi_id_in_name(&name).as_deref(), Some(id), "{name}");
        }
        assert_eq!(scsi_id_in_name("/dev/mapper/VG_XenStorage--x-MGT"), None);
        assert_eq!(scsi_id_in_name("/dev/sdc"), None);
        assert_eq!(scsi_id_in_name("/dev/disk/by-id/wwn-0x5000"), None);
    }

    #[test]
    fn sr_mounts_are_found_in_mountinfo_with_their_sources() {
        let text = format!(
            "36 25 0:32 / /run/sr-mount/{SR} rw,relatime shared:20 - nfs 192.0.2.9:/export/{SR} rw,vers=3\n\
             37 25 0:33 / /run/sr-mount/not-a-uuid rw - nfs x:/y rw\n\
             38 25 0:34 / /mnt/with\\040space rw - tmpfs tmpfs rw\n\
             39 25 0:35 / /var/run/sr-mount/{SR} rw - cifs //srv/share\\040x/{SR} rw\n"
        );
        let m = parse_sr_mounts(&text);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].source, format!("192.0.2.9:/export/{SR}"));
        assert_eq!(m[0].fstype, "nfs");
        assert_eq!(m[1].source, format!("//srv/share x/{SR}"));
    }

    #[test]
    fn names_under_a_dev_root_are_found_by_device() {
        let dir = tempfile::tempdir().unwrap();
        // No block devices can be made here without privileges: the walk must simply find
        // nothing, and never fail.
        let s = Surveyor {
            pvs_program: "/nonexistent/pvs".into(),
            dev_root: dir.path().into(),
            sys_root: dir.path().join("sys"),
            proc_root: dir.path().join("proc"),
            timeout: Duration::from_secs(1),
        };
        let survey = s.survey();
        assert!(matches!(survey.lvm, PvsView::Unreadable { .. }));
        assert!(survey.mounts.is_empty());
        assert_eq!(survey.udev.len(), 2);
        assert!(survey.udev.iter().all(|u| !u.present));
    }
}
