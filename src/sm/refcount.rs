//! SM's persistent reference counts: /run/sm/refcount/lvm-<sr>/<vdi> holds "count binaryCount".
//! SM deletes the file when both reach zero, so an absent file means zero.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use serde::Serialize;

use crate::ids::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Refcount {
    Absent,
    Counts {
        count: u64,
        binary: u64,
    },
    Unreadable {
        why: String,
    },
    /// The LV is not a VDI of an SR (e.g. the SR's MGT volume): SM keeps no count for it.
    NotApplicable,
}

impl Refcount {
    pub fn is_zero(&self) -> bool {
        matches!(
            self,
            Refcount::Absent
                | Refcount::Counts {
                    count: 0,
                    binary: 0
                }
        )
    }
}

/// Read the count SM keeps for a VDI of an LVM SR.
pub fn read(base: &Path, sr: &Uuid, vdi: &Uuid) -> Refcount {
    let path = base.join(format!("lvm-{sr}")).join(vdi.as_str());
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text).unwrap_or_else(|| Refcount::Unreadable {
            why: format!("{} holds {:?}", path.display(), text.trim()),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Refcount::Absent,
        Err(e) => Refcount::Unreadable {
            why: format!("{}: {e}", path.display()),
        },
    }
}

/// Reads counts for many VDIs, listing each SR's directory once: at thousands of volumes one
/// directory read replaces thousands of failed opens (most VDIs have no file).
pub struct Reader<'a> {
    base: &'a Path,
    listed: HashMap<String, Option<HashSet<OsString>>>,
}

impl<'a> Reader<'a> {
    pub fn new(base: &'a Path) -> Self {
        Reader {
            base,
            listed: HashMap::new(),
        }
    }

    pub fn read(&mut self, sr: &Uuid, vdi: &Uuid) -> Refcount {
        let base = self.base;
        let files = self.listed.entry(sr.to_string()).or_insert_with(|| {
            match fs::read_dir(base.join(format!("lvm-{sr}"))) {
                Ok(entries) => Some(
                    entries
                        .filter_map(|e| e.ok().map(|e| e.file_name()))
                        .collect(),
                ),
                Err(e) if e.kind() == ErrorKind::NotFound => Some(HashSet::new()),
                Err(_) => None, // unlistable: ask file by file, which reports why
            }
        });
        match files {
            Some(names) if !names.contains(std::ffi::OsStr::new(vdi.as_str())) => Refcount::Absent,
            _ => read(base, sr, vdi),
        }
    }
}

/// Every count SM keeps for VDIs of LVM SRs on this host: (SR, VDI, count). Files that are not
/// named by uuids are not SM's and are skipped.
pub fn all(base: &Path) -> Vec<(Uuid, Uuid, Refcount)> {
    let mut out = Vec::new();
    let Ok(dirs) = fs::read_dir(base) else {
        return out;
    };
    for dir in dirs.filter_map(|e| e.ok()) {
        let name = dir.file_name();
        let Some(sr) = name
            .to_str()
            .and_then(|n| n.strip_prefix("lvm-"))
            .and_then(|u| Uuid::new(u).ok())
        else {
            continue;
        };
        let Ok(files) = fs::read_dir(dir.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            if let Some(vdi) = f.file_name().to_str().and_then(|u| Uuid::new(u).ok()) {
                let count = read(base, &sr, &vdi);
                out.push((sr.clone(), vdi, count));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// The file SM keeps the count of `vdi` in.
pub fn path_of(base: &Path, sr: &Uuid, vdi: &Uuid) -> std::path::PathBuf {
    base.join(format!("lvm-{sr}")).join(vdi.as_str())
}

/// Set the count as SM writes it ("count binary"); 0 0 removes the file, as SM does.
pub fn write(base: &Path, sr: &Uuid, vdi: &Uuid, count: u64, binary: u64) -> std::io::Result<()> {
    let path = path_of(base, sr, vdi);
    if count == 0 && binary == 0 {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&path, format!("{count} {binary}\n"))
}

fn parse(text: &str) -> Option<Refcount> {
    let mut nums = text.split_whitespace().map(|n| n.parse::<u64>());
    let count = nums.next()?.ok()?;
    let binary = nums.next()?.ok()?;
    Some(Refcount::Counts { count, binary })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_reader_agrees_with_the_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let sr = Uuid::new("9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b").unwrap();
        let other_sr = Uuid::new("aa3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b").unwrap();
        let vdi = |n: u8| Uuid::new(&format!("{n:08x}-4a5b-4c6d-8e7f-8091a2b3c4d5")).unwrap();
        let ns = dir.path().join(format!("lvm-{sr}"));
        fs::create_dir_all(&ns).unwrap();
        fs::write(ns.join(vdi(1).as_str()), "2 1\n").unwrap();
        fs::write(ns.join(vdi(2).as_str()), "0 0\n").unwrap();
        fs::write(ns.join(vdi(3).as_str()), "junk").unwrap();
        let mut reader = Reader::new(dir.path());
        for n in 1..=4 {
            assert_eq!(
                reader.read(&sr, &vdi(n)),
                read(dir.path(), &sr, &vdi(n)),
                "vdi {n}"
            );
            assert_eq!(reader.read(&other_sr, &vdi(n)), Refcount::Absent);
        }
        assert_eq!(
            reader.read(&sr, &vdi(1)),
            Refcount::Counts {
                count: 2,
                binary: 1
            }
        );
        assert_eq!(reader.read(&sr, &vdi(4)), Refcount::Absent);
    }

    #[test]
    fn reads_sm_refcount_files() {
        let dir = tempfile::tempdir().unwrap();
        let sr = Uuid::new("9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b").unwrap();
        let vdi = Uuid::new("0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5").unwrap();
        assert_eq!(read(dir.path(), &sr, &vdi), Refcount::Absent);
        let ns = dir.path().join(format!("lvm-{sr}"));
        fs::create_dir_all(&ns).unwrap();
        fs::write(ns.join(vdi.as_str()), "1 0\n").unwrap();
        let r = read(dir.path(), &sr, &vdi);
        assert_eq!(
            r,
            Refcount::Counts {
                count: 1,
                binary: 0
            }
        );
        assert!(!r.is_zero());
        fs::write(ns.join(vdi.as_str()), "0 0\n").unwrap();
        assert!(read(dir.path(), &sr, &vdi).is_zero());
        fs::write(ns.join(vdi.as_str()), "garbage").unwrap();
        assert!(matches!(
            read(dir.path(), &sr, &vdi),
            Refcount::Unreadable { .. }
        ));
    }
}
