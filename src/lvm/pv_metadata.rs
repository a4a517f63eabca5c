//! A VG's LVs read from the metadata on its PVs, without running LVM.
//!
//! Which devices: the ones the VG's mappings are built on (their tables name them as MAJ:MIN).
//! Every PV with a metadata area holds the whole VG's metadata, so one is enough; when several
//! are read, the copy with the highest seqno wins, as in LVM. A device that is not a PV of the
//! named VG, or whose metadata does not check out, is an error: the caller asks `lvs` then.
//!
//! Concurrency: LVM writes new metadata beside the committed copy and then switches the header
//! (one sector) to it, so a reader sees the old or the new copy whole; a read that races two
//! writes fails the text checksum and is retried once. This is also how LVM reads metadata that
//! another host of the pool writes on a shared SR, where no local lock could help.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::dm::{DevNum, TableLine};

use super::isolated::IsolatedDevice;
use super::metadata_text::{self, LvFilter, VgMetadata};
use super::ondisk::{self, OnDiskError};

/// The devices (MAJ:MIN) a mapping's table is built on.
pub fn table_devices(table: &[TableLine]) -> Vec<DevNum> {
    let mut out = Vec::new();
    for line in table {
        for word in line.params.split_whitespace() {
            if let Some((major, minor)) = word.split_once(':') {
                if let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) {
                    let d = DevNum { major, minor };
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
    }
    out
}

/// What reading some devices for a VG found.
#[derive(Debug, Default)]
pub struct Survey {
    /// The VG's metadata with the highest seqno among them.
    pub best: Option<VgMetadata>,
    /// The devices that are PVs of the VG, with their PV uuids (no dashes).
    pub pvs: Vec<(DevNum, String)>,
    /// What each other device is, or why it could not be read.
    pub why: Vec<(DevNum, String)>,
}

/// Where to find block devices: sysfs for names, /dev for nodes (tests point both elsewhere).
#[derive(Clone, Debug)]
pub struct PvReader {
    pub sys_root: PathBuf,
    pub dev_root: PathBuf,
    /// Reads that have not returned by then (a dead path under a multipath PV) give up: one
    /// deadline for every device read, however many there are.
    pub deadline: Instant,
}

impl PvReader {
    /// The metadata of VG `vg` from the first of `devices` that is one of its PVs, the highest
    /// seqno when several are.
    pub fn read_vg(
        &self,
        vg: &str,
        devices: &[DevNum],
        filter: Option<&LvFilter>,
    ) -> Result<VgMetadata, String> {
        self.read_vg_on(vg, devices, filter).map(|(m, _)| m)
    }

    /// `read_vg`, also saying which of `devices` are PVs of the VG, with their PV uuids (as
    /// their labels give them: no dashes).
    pub fn read_vg_on(
        &self,
        vg: &str,
        devices: &[DevNum],
        filter: Option<&LvFilter>,
    ) -> Result<(VgMetadata, Vec<(DevNum, String)>), String> {
        let s = self.survey(vg, devices, filter);
        match s.best {
            Some(b) => Ok((b, s.pvs)),
            None if devices.is_empty() => Err("no device under the VG's mappings to read".into()),
            None => Err(s
                .why
                .iter()
                .map(|(d, w)| format!("{d}: {w}"))
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    /// Every one of `devices` read: the VG's newest metadata among them, which of them are its
    /// PVs, and what each other one is (another VG's PV, no label, unreadable).
    pub fn survey(&self, vg: &str, devices: &[DevNum], filter: Option<&LvFilter>) -> Survey {
        let mut s = Survey::default();
        for dev in devices {
            match self.read_device(*dev, filter) {
                Ok((pv_uuid, copies)) => {
                    let mut of_vg = false;
                    for copy in copies {
                        if copy.name != vg {
                            s.why.push((*dev, format!("a PV of VG {}", copy.name)));
                            continue;
                        }
                        of_vg = true;
                        if s.best.as_ref().is_none_or(|b| copy.seqno > b.seqno) {
                            s.best = Some(copy);
                        }
                    }
                    if of_vg {
                        s.pvs.push((*dev, pv_uuid));
                    }
                }
                Err(e) => s.why.push((*dev, e)),
            }
        }
        s
    }

    /// The VG read as LVM reads it to activate one of its LVs: every PV of it found by a label
    /// scan of the devices LVM would scan (`scan::candidates`), the newest metadata among all
    /// their areas — so that "no LV has this uuid" is the VG's word, not an old copy's (a
    /// clone LUN, a disk the VG dropped). `first` is what the devices under the mappings gave,
    /// `known` those devices with their PV uuids (not read again). Err says why LVM's own
    /// choice is not certain — a PV's label on two devices, a PV of the VG on none, a device
    /// that could not be read, two copies of one seqno that differ — and the caller asks LVM.
    pub fn complete(
        &self,
        vg: &str,
        first: VgMetadata,
        known: &[(DevNum, String)],
        filter: Option<&LvFilter>,
    ) -> Result<(VgMetadata, Vec<(DevNum, String)>), String> {
        let clock = crate::logging::Stopwatch::start();
        // Every candidate's label: which PV uuid is on which devices.
        let mut by_pv: std::collections::HashMap<String, Vec<DevNum>> =
            std::collections::HashMap::new();
        let mut open: Vec<(DevNum, IsolatedDevice, ondisk::PvLabel)> = Vec::new();
        for (dev, pv) in known {
            by_pv.entry(pv.clone()).or_default().push(*dev);
        }
        for dev in super::scan::candidates(&self.sys_root) {
            if known.iter().any(|(d, _)| *d == dev) {
                continue;
            }
            match self.read_label_of(dev) {
                Ok(Some((file, label))) => {
                    by_pv.entry(label.pv_uuid.clone()).or_default().push(dev);
                    open.push((dev, file, label));
                }
                Ok(None) => {}
                Err(why) => {
                    return Err(format!(
                        "{dev} could not be read ({why}): whether it holds a copy of a PV of {vg} is unknown"
                    ))
                }
            }
        }
        clock.lap("pv: label scan");
        // The newest copy, and the other copies at its seqno (they must all be the same).
        // Moved, never cloned: a VG's metadata of thousands of LVs is megabytes of strings.
        let mut newest = first;
        let mut same_seqno: Vec<VgMetadata> = Vec::new();
        let mut read: std::collections::HashSet<DevNum> = known.iter().map(|(d, _)| *d).collect();
        // Twice at most: the newest copy may list PVs the first did not.
        for _ in 0..2 {
            let mut grew = false;
            for id in &newest.pv_ids.clone() {
                let id = id.replace('-', "");
                let devs = by_pv.get(&id).cloned().unwrap_or_default();
                match devs.len() {
                    0 => {
                        return Err(format!(
                            "PV {id} of {vg} is on no device here: the VG is incomplete"
                        ))
                    }
                    1 => {}
                    _ => {
                        return Err(format!(
                        "PV {id} of {vg} is on {} devices ({}): which one LVM uses is its guess",
                        devs.len(),
                        devs.iter()
                            .map(DevNum::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    }
                }
                let dev = devs[0];
                if !read.insert(dev) {
                    continue;
                }
                let Some((_, file, label)) = open.iter().find(|(d, _, _)| *d == dev) else {
                    continue;
                };
                for (start, _) in &label.metadata_areas {
                    let Some(copy) = read_area(file, dev, *start, filter)? else {
                        continue;
                    };
                    if copy.name != vg {
                        return Err(format!(
                            "{dev} carries PV {id} of {vg} but metadata of VG {}",
                            copy.name
                        ));
                    }
                    if copy.seqno > newest.seqno {
                        newest = copy;
                        same_seqno.clear();
                        grew = true;
                    } else if copy.seqno == newest.seqno {
                        same_seqno.push(copy);
                    }
                }
            }
            if !grew {
                break;
            }
        }
        clock.lap("pv: every PV's metadata read");
        if same_seqno.iter().any(|c| *c != newest) {
            return Err(format!(
                "two metadata copies of {vg} at seqno {} differ",
                newest.seqno
            ));
        }
        let pvs: Vec<(DevNum, String)> = newest
            .pv_ids
            .iter()
            .filter_map(|id| {
                let id = id.replace('-', "");
                by_pv.get(&id).map(|d| (d[0], id))
            })
            .collect();
        Ok((newest, pvs))
    }

    /// One candidate device's LVM label, the device kept open to read its metadata next.
    /// Ok(None): no label, or no medium (an empty drive); Err: it could not be read.
    fn read_label_of(
        &self,
        dev: DevNum,
    ) -> Result<Option<(IsolatedDevice, ondisk::PvLabel)>, String> {
        if self.holds_srs(dev).is_err() {
            return Ok(None);
        }
        let path = self.node_of(dev)?;
        let file = match IsolatedDevice::open(&path, self.deadline) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOMEDIUM) | Some(libc::ENXIO) | Some(libc::ENOENT)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if file.mode & libc::S_IFMT != libc::S_IFBLK || DevNum::from_rdev(file.rdev) != dev {
            return Err(format!("{} is not block device {dev}", path.display()));
        }
        match ondisk::read_label(&file) {
            Ok(Some(label)) => Ok(Some((file, label))),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Every VG metadata copy on one device whose label names it as a PV of that VG. The
    /// reads happen in a reader process: one stuck on dead storage costs the deadline and no
    /// more, and leaves this process free to exit (see `isolated`).
    fn read_device(
        &self,
        dev: DevNum,
        filter: Option<&LvFilter>,
    ) -> Result<(String, Vec<VgMetadata>), String> {
        self.holds_srs(dev)?;
        let path = self.node_of(dev)?;
        read_copies(&path, dev, self.deadline, filter)
    }

    /// Whether `dev` is a kind of device SM puts an SR's PV on (see `sr_pv_kind`).
    fn holds_srs(&self, dev: DevNum) -> Result<(), String> {
        let dm_uuid = self
            .sys_root
            .join("dev/block")
            .join(dev.to_string())
            .join("dm/uuid");
        let dm_uuid = std::fs::read_to_string(dm_uuid).ok(); // absent: not device-mapper
        sr_pv_kind(dev.major, dm_uuid.as_deref().map(str::trim))
    }

    /// /dev/<DEVNAME> for MAJ:MIN, from sysfs (udev's /dev/block links may be absent).
    fn node_of(&self, dev: DevNum) -> Result<PathBuf, String> {
        let uevent = self
            .sys_root
            .join("dev/block")
            .join(dev.to_string())
            .join("uevent");
        let text = std::fs::read_to_string(&uevent)
            .map_err(|e| format!("no block device {dev} ({}: {e})", uevent.display()))?;
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .ok_or_else(|| format!("{} has no DEVNAME", uevent.display()))?;
        if name.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(format!("unexpected DEVNAME {name:?} for {dev}"));
        }
        Ok(self.dev_root.join(name))
    }
}

fn read_copies(
    path: &Path,
    dev: DevNum,
    deadline: Instant,
    filter: Option<&LvFilter>,
) -> Result<(String, Vec<VgMetadata>), String> {
    let clock = crate::logging::Stopwatch::start();
    let file =
        IsolatedDevice::open(path, deadline).map_err(|e| format!("{}: {e}", path.display()))?;
    clock.lap("pv: reader started");
    // The node must be the device the table names, not a stale file of the same name.
    if file.mode & libc::S_IFMT != libc::S_IFBLK || DevNum::from_rdev(file.rdev) != dev {
        return Err(format!("{} is not block device {dev}", path.display()));
    }
    let label = match ondisk::read_label(&file).map_err(|e| e.to_string())? {
        Some(l) => l,
        None => return Err("no LVM label".into()),
    };
    clock.lap("pv: label read");
    let mut copies = Vec::new();
    let mut why = Vec::new();
    for (start, _) in &label.metadata_areas {
        let area = read_area(&file, dev, *start, filter);
        clock.lap("pv: metadata area read and parsed");
        match area {
            Ok(Some(vg)) => {
                let pv_listed = vg
                    .pv_ids
                    .iter()
                    .any(|id| id.replace('-', "") == label.pv_uuid);
                if pv_listed {
                    copies.push(vg);
                } else {
                    why.push(format!("VG {} does not list this PV", vg.name));
                }
            }
            Ok(None) => {}
            Err(e) => why.push(e),
        }
    }
    if copies.is_empty() {
        why.insert(0, "no usable metadata".into());
        return Err(why.join(": "));
    }
    Ok((label.pv_uuid, copies))
}

/// The last whole committed text this process read, by device and what the area's header
/// said of it. A scan reads the whole text; a batch heal then reads the same VG again for the
/// ghosts it found: the header — one sector, read every time — tells whether the text is
/// still the one read, so megabytes are not read twice. A text that changed has another
/// location or checksum, and is read afresh. A filtered read (a single heal, which keeps a few
/// LVs of thousands) is not cached: it never holds the whole text.
static LAST_TEXT: std::sync::Mutex<Option<CachedText>> = std::sync::Mutex::new(None);

/// A committed text, by the device and header location it was read from.
type CachedText = ((DevNum, ondisk::Committed), std::sync::Arc<String>);

/// One metadata area's committed VG, retrying once when the text changed while it was read.
fn read_area(
    file: &IsolatedDevice,
    dev: DevNum,
    start: u64,
    filter: Option<&LvFilter>,
) -> Result<Option<VgMetadata>, String> {
    let mut last = String::new();
    for _ in 0..2 {
        let clock = crate::logging::Stopwatch::start();
        let committed = match ondisk::read_committed(file, start) {
            Ok(None) => return Ok(None),
            Ok(Some(c)) => c,
            Err(OnDiskError::Io(e)) => return Err(format!("read error: {e}")),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let key = (dev, committed);
        let cached = LAST_TEXT.lock().ok().and_then(|l| {
            l.as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, t)| t.clone())
        });
        let text = match cached {
            Some(t) => t,
            None => {
                // Streamed and cut down as it comes (see `Reducer`): a metadata area is
                // megabytes, and each page held costs a page fault.
                let mut kept = metadata_text::Reducer::new(filter);
                match ondisk::stream_text(file, &committed, &mut |piece| kept.feed(piece)) {
                    Ok(()) => {}
                    Err(OnDiskError::Io(e)) => return Err(format!("read error: {e}")),
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                }
                let t = match kept.finish() {
                    Ok(t) => std::sync::Arc::new(t),
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                if filter.is_none() {
                    if let Ok(mut l) = LAST_TEXT.lock() {
                        *l = Some((key, t.clone()));
                    }
                }
                t
            }
        };
        clock.lap("pv: metadata text read");
        return metadata_text::volume_group_with(&text, filter).map(Some);
    }
    Err(last)
}

/// Whether a device of `major` (and, for a device-mapper device, `dm_uuid`) is a kind SM puts
/// an SR's PV on: a disk or a partition, an md array, a multipath map or a partition of one
/// (a local SR on a boot-from-SAN host). Not a loop device (a file's copy of a PV carries the
/// same label) nor any other device-mapper device (an LV, a snapshot, a linear map stacked on
/// the PV, an LV whose content a guest made a PV header: each shows a PV's label). LVM itself
/// chooses among such duplicates; dmheal does not guess, and leaves a VG seen only through one
/// of them to `lvs`.
fn sr_pv_kind(major: u32, dm_uuid: Option<&str>) -> Result<(), String> {
    const LOOP_MAJOR: u32 = 7;
    if major == LOOP_MAJOR {
        return Err("a loop device (a file's copy), not a disk an SR is on".into());
    }
    let Some(uuid) = dm_uuid else {
        return Ok(());
    };
    let multipath = uuid.starts_with("mpath-") || super::scan::is_partition_of_multipath(uuid);
    if multipath {
        return Ok(());
    }
    Err(format!(
        "a device-mapper device (uuid {uuid:?}) stacked on other storage, not a disk or \
         multipath map an SR is on"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line(params: &str) -> TableLine {
        TableLine {
            start: 0,
            length: 8,
            target: "linear".into(),
            params: params.into(),
        }
    }

    #[test]
    fn devices_come_from_linear_and_striped_tables() {
        let t = vec![
            line("8:16 2048"),
            line("2 128 8:32 0 253:4 0"),
            line("8:16 4096"),
        ];
        let got: Vec<String> = table_devices(&t).iter().map(|d| d.to_string()).collect();
        assert_eq!(got, vec!["8:16", "8:32", "253:4"]);
        assert!(table_devices(&[line("/dev/sda 0")]).is_empty());
    }

    #[test]
    fn a_missing_or_odd_device_is_an_error_not_a_guess() {
        let sys = tempfile::tempdir().unwrap();
        let r = PvReader {
            sys_root: sys.path().into(),
            dev_root: "/dev".into(),
            deadline: Instant::now() + Duration::from_secs(1),
        };
        let d = DevNum {
            major: 8,
            minor: 16,
        };
        let e = r.read_vg("VG_XenStorage-x", &[d], None).unwrap_err();
        assert!(e.contains("no block device 8:16"), "{e}");
        let dir = sys.path().join("dev/block/8:16");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("uevent"), "MAJOR=8\nDEVNAME=../etc/passwd\n").unwrap();
        let e = r.read_vg("VG_XenStorage-x", &[d], None).unwrap_err();
        assert!(e.contains("unexpected DEVNAME"), "{e}");
        // A regular file where the node should be is refused.
        let devdir = tempfile::tempdir().unwrap();
        std::fs::write(dir.join("uevent"), "DEVNAME=sdb\n").unwrap();
        std::fs::write(devdir.path().join("sdb"), vec![0u8; 8192]).unwrap();
        let r = PvReader {
            dev_root: devdir.path().into(),
            ..r
        };
        let e = r.read_vg("VG_XenStorage-x", &[d], None).unwrap_err();
        assert!(
            e.contains("not block device 8:16") || e.contains("sdb:"),
            "{e}"
        );
        assert!(r.read_vg("VG_XenStorage-x", &[], None).is_err());
    }

    #[test]
    fn only_disks_partitions_and_multipath_maps_hold_an_srs_pv() {
        for ok in [
            (8, None),   // sda
            (259, None), // nvme
            (9, None),   // md
            (254, Some("mpath-3600a098038303053453f463045727a41")),
            (254, Some("part3-mpath-3600a098038303053453f463045727a41")), // boot from SAN
        ] {
            assert_eq!(sr_pv_kind(ok.0, ok.1), Ok(()), "{ok:?}");
        }
        for bad in [
            (7, None),              // a loop device
            (254, Some("")),        // a uuid-less stacked map
            (254, Some("LVM-abc")), // an LV
            (254, Some("CRYPT-LUKS2-x")),
            (254, Some("part-mpath-x")),
            (254, Some("partx-mpath-x")),
            (254, Some("xmpath-3600")),
        ] {
            assert!(sr_pv_kind(bad.0, bad.1).is_err(), "{bad:?}");
        }
    }
}
