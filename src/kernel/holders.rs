//! Stacked devices: /sys/dev/block/MAJ:MIN/holders, followed recursively so a whole stack
//! (dm on dm on dm) is named.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::dm::DevNum;

/// A block device stacked on top of the mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Kernel name, e.g. `dm-3`.
    pub name: String,
    /// Its device number, when sysfs tells it.
    pub dev: Option<DevNum>,
    /// How many levels above the mapping (1 = directly on it).
    pub depth: usize,
}

/// All holders of `dev`, nearest first; an error when sysfs does not show the device at all
/// (sysfs not mounted, or the device gone), so "no holders" is only said after looking.
pub fn holders_of(sys_root: &Path, dev: DevNum) -> Result<Vec<Holder>, String> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let start = sys_root.join(format!("dev/block/{dev}/holders"));
    // Read first, asked why only when it fails: a host scan reads hundreds of these.
    let Ok(entries) = fs::read_dir(&start) else {
        return Err(if sys_root.join("dev/block").is_dir() {
            format!("sysfs has no {}", start.display())
        } else {
            format!("{} is not mounted (no dev/block)", sys_root.display())
        });
    };
    walk_entries(sys_root, entries, 1, &mut seen, &mut found);
    Ok(found)
}

fn walk(
    sys_root: &Path,
    dir: &Path,
    depth: usize,
    seen: &mut BTreeSet<String>,
    found: &mut Vec<Holder>,
) {
    if let Ok(entries) = fs::read_dir(dir) {
        walk_entries(sys_root, entries, depth, seen, found);
    }
}

fn walk_entries(
    sys_root: &Path,
    entries: fs::ReadDir,
    depth: usize,
    seen: &mut BTreeSet<String>,
    found: &mut Vec<Holder>,
) {
    // A stack deeper than this is a loop or a sysfs oddity; stop rather than spin.
    const MAX_DEPTH: usize = 16;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        let block = sys_root.join("class/block").join(&name);
        let dev = fs::read_to_string(block.join("dev"))
            .ok()
            .and_then(|s| parse_devnum(s.trim()));
        found.push(Holder {
            name: name.clone(),
            dev,
            depth,
        });
        if depth < MAX_DEPTH {
            walk(sys_root, &block.join("holders"), depth + 1, seen, found);
        }
    }
}

/// Parse `MAJ:MIN`.
pub fn parse_devnum(s: &str) -> Option<DevNum> {
    let (major, minor) = s.split_once(':')?;
    Some(DevNum {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_a_stack_recursively() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path();
        let mk = |name: &str, dev: &str| {
            let d = sys.join("class/block").join(name);
            fs::create_dir_all(d.join("holders")).unwrap();
            fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
        };
        mk("dm-0", "254:0");
        mk("dm-1", "254:1");
        mk("dm-2", "254:2");
        fs::create_dir_all(sys.join("dev/block")).unwrap();
        symlink(sys.join("class/block/dm-0"), sys.join("dev/block/254:0")).unwrap();
        symlink(
            sys.join("class/block/dm-1"),
            sys.join("class/block/dm-0/holders/dm-1"),
        )
        .unwrap();
        symlink(
            sys.join("class/block/dm-2"),
            sys.join("class/block/dm-1/holders/dm-2"),
        )
        .unwrap();
        let h = holders_of(
            sys,
            DevNum {
                major: 254,
                minor: 0,
            },
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].name.as_str(), h[0].depth), ("dm-1", 1));
        assert_eq!((h[1].name.as_str(), h[1].depth), ("dm-2", 2));
        assert_eq!(
            h[1].dev,
            Some(DevNum {
                major: 254,
                minor: 2
            })
        );
        // A device sysfs does not show, and a sysfs that is not there: said, not guessed.
        let nine = DevNum {
            major: 254,
            minor: 9,
        };
        assert!(holders_of(sys, nine).unwrap_err().contains("sysfs has no"));
        let empty = tempfile::tempdir().unwrap();
        assert!(holders_of(empty.path(), nine)
            .unwrap_err()
            .contains("not mounted"));
    }
}
