//! Which block devices LVM would scan for PV labels on dom0: every disk, partition, md array
//! and NVMe namespace, and every multipath map (and partition of one) — but not the paths a
//! multipath map is built on (LVM's multipath component detection skips them: each carries
//! the same label as the map), nor loop, ram, nbd or optical devices, nor other device-mapper
//! devices (LVs, snapshots, maps stacked on a PV: LVM's dom0 configuration does not scan them,
//! and `pv_metadata::sr_pv_kind` never takes one for a PV).
//!
//! Read from sysfs without touching the thousands of LV mappings a big SR has: a path's
//! holders are listed, and only a device with a single holder can be a multipath component
//! (the map is its only holder; LVs stack on the map).

use std::path::{Path, PathBuf};

use crate::dm::DevNum;

/// Block device names LVM never holds a PV on here.
const NOT_SCANNED: [&str; 7] = ["loop", "ram", "zram", "nbd", "sr", "fd", "dm-"];

/// The devices LVM would read labels from, as found under `sys_root`.
pub fn candidates(sys_root: &Path) -> Vec<DevNum> {
    let class = sys_root.join("class/block");
    let mut out = Vec::new();
    let mut maps = Vec::new();
    let Ok(entries) = std::fs::read_dir(&class) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if NOT_SCANNED.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dir = class.join(&name);
        match multipath_holder(sys_root, &dir) {
            // A path of a multipath map: the map is scanned instead.
            Some(map) => {
                if !maps.contains(&map) {
                    maps.push(map);
                }
            }
            None => out.extend(dev_of(&dir)),
        }
    }
    for map in maps {
        let dir = class.join(&map);
        out.extend(dev_of(&dir));
        // A partitioned LUN (a boot-from-SAN local SR): its partition maps hold the PVs.
        for holder in few_holders(&dir, 16) {
            if dm_uuid(&class.join(&holder)).is_some_and(|u| is_partition_of_multipath(&u)) {
                out.extend(dev_of(&class.join(&holder)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn dev_of(dir: &Path) -> Option<DevNum> {
    let text = std::fs::read_to_string(dir.join("dev")).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some(DevNum {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

fn dm_uuid(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("dm/uuid"))
        .ok()
        .map(|u| u.trim().to_string())
}

/// The holders of a device, when there are at most `max` of them (more: an LV-laden PV,
/// whose holders are LVs, not partitions or a multipath map).
fn few_holders(dir: &Path, max: usize) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("holders")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if out.len() == max {
            return Vec::new();
        }
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out
}

/// The multipath map (`dm-N`) a device is a path of, if it is one: its only holder is a
/// device-mapper device whose uuid is `mpath-...`.
fn multipath_holder(sys_root: &Path, dir: &Path) -> Option<String> {
    let holders = few_holders(dir, 1);
    let [holder] = holders.as_slice() else {
        return None;
    };
    let holder_dir: PathBuf = sys_root.join("class/block").join(holder);
    dm_uuid(&holder_dir)
        .filter(|u| u.starts_with("mpath-"))
        .map(|_| holder.clone())
}

/// `part<N>-mpath-...`: kpartx's partition of a multipath map.
pub fn is_partition_of_multipath(uuid: &str) -> bool {
    uuid.strip_prefix("part").is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with("-mpath-")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs tree: `(name, dev, dm uuid, holders)`.
    fn sysfs(devices: &[(&str, &str, Option<&str>, &[&str])]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (name, dev, uuid, holders) in devices {
            let dir = root.path().join("class/block").join(name);
            std::fs::create_dir_all(dir.join("holders")).unwrap();
            std::fs::write(dir.join("dev"), format!("{dev}\n")).unwrap();
            if let Some(u) = uuid {
                std::fs::create_dir_all(dir.join("dm")).unwrap();
                std::fs::write(dir.join("dm/uuid"), format!("{u}\n")).unwrap();
            }
            for h in *holders {
                std::fs::create_dir_all(dir.join("holders").join(h)).unwrap();
            }
        }
        root
    }

    fn names(root: &tempfile::TempDir) -> Vec<String> {
        candidates(root.path())
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn disks_partitions_and_multipath_maps_are_scanned_not_their_paths() {
        let lvs: Vec<String> = (10..40).map(|i| format!("dm-{i}")).collect();
        let lv_refs: Vec<&str> = lvs.iter().map(String::as_str).collect();
        let root = sysfs(&[
            ("sda", "8:0", None, &[]),
            ("sda3", "8:3", None, &[]),
            ("sdb", "8:16", None, &["dm-0"]),
            ("sdc", "8:32", None, &["dm-0"]),
            ("dm-0", "254:0", Some("mpath-3600a098"), &lv_refs),
            ("sdd", "8:48", None, &lv_refs), // a PV under thirty LVs
            ("dm-1", "254:1", Some("LVM-abc"), &[]),
            ("loop0", "7:0", None, &[]),
            ("sr0", "11:0", None, &[]),
            ("md0", "9:0", None, &[]),
            ("nvme0n1", "259:0", None, &[]),
        ]);
        assert_eq!(
            names(&root),
            vec!["8:0", "8:3", "8:48", "9:0", "254:0", "259:0"]
        );
    }

    #[test]
    fn a_partitioned_multipath_lun_is_scanned_with_its_partition_maps() {
        let root = sysfs(&[
            ("sdb", "8:16", None, &["dm-0"]),
            ("dm-0", "254:0", Some("mpath-3600a098"), &["dm-1", "dm-2"]),
            ("dm-1", "254:1", Some("part1-mpath-3600a098"), &[]),
            ("dm-2", "254:2", Some("part3-mpath-3600a098"), &[]),
        ]);
        assert_eq!(names(&root), vec!["254:0", "254:1", "254:2"]);
        // A disk whose single holder is an LV is a PV, not a path.
        let root = sysfs(&[
            ("sdb", "8:16", None, &["dm-5"]),
            ("dm-5", "254:5", Some("LVM-x"), &[]),
        ]);
        assert_eq!(names(&root), vec!["8:16"]);
        assert!(is_partition_of_multipath("part12-mpath-x"));
        assert!(!is_partition_of_multipath("part-mpath-x"));
        assert!(!is_partition_of_multipath("mpath-x"));
    }
}
