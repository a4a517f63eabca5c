//! Who has a mapping open, and where it is mounted, from /proc: every process's open files
//! and every mount namespace's mountinfo. One pass serves any number of devices.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::Serialize;

use crate::dm::DevNum;

use super::holders::parse_devnum;

/// A process holding the device open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Opener {
    pub pid: u32,
    pub command: String,
    pub fd: u32,
    pub path: String,
}

/// A mount of the device, in some mount namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// A process in that namespace (the first one found).
    pub pid: u32,
    pub command: String,
    pub mount_point: String,
    /// The namespace, as /proc/PID/ns/mnt names it.
    pub namespace: String,
}

/// Openers and mounts per device.
#[derive(Debug, Default)]
pub struct Usage {
    pub openers: BTreeMap<DevNum, Vec<Opener>>,
    pub mounts: BTreeMap<DevNum, Vec<Mount>>,
    /// Why /proc could not be searched at all (not mounted, not readable): then no opener or
    /// mount was looked for, and none may be reported absent.
    pub unreadable: Option<String>,
}

fn command_of(proc_root: &Path, pid: u32) -> String {
    fs::read_to_string(proc_root.join(format!("{pid}/comm")))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Every pid in /proc; an error when /proc cannot be listed or is not procfs (no entry for
/// this very process: an empty directory where procfs is not mounted).
fn pids(proc_root: &Path) -> Result<Vec<u32>, String> {
    let entries = fs::read_dir(proc_root)
        .map_err(|e| format!("{} cannot be read: {e}", proc_root.display()))?;
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    if pids.is_empty() {
        return Err(format!(
            "{} is not mounted (no process listed)",
            proc_root.display()
        ));
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Scan /proc once for the given devices.
///
/// Openers: an fd is stat()ed only when its link points into /dev, where devtmpfs lives —
/// stat() on a FUSE or hung NFS path could block, and this runs inside VM start. A device
/// node elsewhere is still counted by the kernel's open count, which the verdict requires
/// to be zero; this scan exists to name who holds it.
pub fn scan(proc_root: &Path, devs: &BTreeSet<DevNum>) -> Usage {
    let mut usage = Usage::default();
    if devs.is_empty() {
        return usage;
    }
    let mut namespaces_seen: HashSet<String> = HashSet::new();
    let own_pid = std::process::id();
    let pids = match pids(proc_root) {
        Ok(p) => p,
        Err(why) => {
            usage.unreadable = Some(why);
            return usage;
        }
    };
    for pid in pids {
        let base = proc_root.join(pid.to_string());
        if pid != own_pid {
            scan_fds(proc_root, &base, pid, devs, &mut usage);
        }
        let ns = fs::read_link(base.join("ns/mnt"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("pid {pid}"));
        if namespaces_seen.insert(ns.clone()) {
            scan_mountinfo(proc_root, &base, pid, &ns, devs, &mut usage);
        }
    }
    usage
}

fn scan_fds(proc_root: &Path, base: &Path, pid: u32, devs: &BTreeSet<DevNum>, usage: &mut Usage) {
    let Ok(fds) = fs::read_dir(base.join("fd")) else {
        return; // the process exited, or is not ours to read
    };
    for fd in fds.filter_map(|e| e.ok()) {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if !target.starts_with("/dev/") {
            continue;
        }
        let Ok(meta) = fs::metadata(fd.path()) else {
            continue;
        };
        if !meta.file_type().is_block_device() {
            continue;
        }
        let dev = DevNum::from_rdev(meta.rdev());
        if devs.contains(&dev) {
            usage.openers.entry(dev).or_default().push(Opener {
                pid,
                command: command_of(proc_root, pid),
                fd: fd.file_name().to_string_lossy().parse().unwrap_or(0),
                path: target,
            });
        }
    }
}

fn scan_mountinfo(
    proc_root: &Path,
    base: &Path,
    pid: u32,
    ns: &str,
    devs: &BTreeSet<DevNum>,
    usage: &mut Usage,
) {
    let Ok(text) = fs::read_to_string(base.join("mountinfo")) else {
        return;
    };
    for (dev, mount_point) in parse_mountinfo(&text) {
        if devs.contains(&dev) {
            usage.mounts.entry(dev).or_default().push(Mount {
                pid,
                command: command_of(proc_root, pid),
                mount_point,
                namespace: ns.to_string(),
            });
        }
    }
}

/// (device, mount point) of each line of a mountinfo file.
pub fn parse_mountinfo(text: &str) -> Vec<(DevNum, String)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let dev = parse_devnum(fields.nth(2)?)?;
            let _root = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            Some((dev, mount_point))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_device_and_mount_point() {
        let text = "36 35 98:0 / /mnt/data rw,noatime shared:1 - ext4 /dev/ubda rw\n\
                    37 35 254:3 / /run/sr\\040mount rw - ext3 /dev/dm-3 rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1].0,
            DevNum {
                major: 254,
                minor: 3
            }
        );
        assert_eq!(m[1].1, "/run/sr mount");
    }

    #[test]
    fn scan_finds_nothing_for_an_unused_number() {
        let devs: BTreeSet<DevNum> = [DevNum {
            major: 4095,
            minor: 1048575,
        }]
        .into();
        let u = scan(Path::new("/proc"), &devs);
        assert!(u.openers.is_empty());
        assert!(u.mounts.is_empty());
        assert_eq!(u.unreadable, None);
    }

    #[test]
    fn an_unmounted_proc_is_reported_not_read_as_empty() {
        let devs: BTreeSet<DevNum> = [DevNum {
            major: 254,
            minor: 0,
        }]
        .into();
        let empty = tempfile::tempdir().unwrap();
        let u = scan(empty.path(), &devs);
        assert!(
            u.unreadable
                .as_deref()
                .is_some_and(|w| w.contains("not mounted")),
            "{u:?}"
        );
        let u = scan(&empty.path().join("missing"), &devs);
        assert!(u.unreadable.is_some());
    }
}
