//! The append-only journal: one JSON object per line. A removal is written and flushed to disk
//! BEFORE the mapping is removed, with everything `restore` needs to recreate it exactly.
//! Writers serialise on an exclusive flock of the journal file itself.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::dm::{DevNum, TableLine};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub host: String,
    pub pid: u32,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// About to remove this mapping. Written and fsynced before the ioctl.
    Removal {
        dm_name: String,
        uuid: String,
        dev: DevNum,
        read_only: bool,
        table: Vec<TableLine>,
        /// The whole inspection the removal was decided on (verdict, reasons, facts).
        inspection: serde_json::Value,
    },
    /// What became of removal `of`.
    Outcome {
        of: u64,
        result: String,
        detail: String,
    },
    /// A decision that changed nothing (a dry run or a refusal), recorded on request — the SM
    /// hook records every decision it makes about an existing mapping.
    Decision {
        target: String,
        dm_name: String,
        verdict: String,
        action: String,
        summary: String,
    },
    /// A xapi action the doctor carried out (SR.forget, VM.power_state_reset).
    XapiAction {
        action: String,
        subject: String,
        evidence: serde_json::Value,
        result: String,
    },
    /// Removal `of` was undone.
    Restore {
        of: u64,
        result: String,
        detail: String,
    },
}

pub struct Journal {
    path: PathBuf,
}

/// The journal, locked for writing.
pub struct Writer {
    file: Flock<File>,
    next_id: u64,
}

impl Journal {
    pub fn new(path: &Path) -> Self {
        Journal {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Journal {
            path: self.path.clone(),
            source,
        }
    }

    /// Every entry, oldest first: the rotated files logrotate leaves (`journal.jsonl.N`,
    /// highest N oldest) and then the journal itself. A journal that does not exist yet is
    /// empty. Reading the rotated files keeps ids unique and old removals restorable.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for rotated in self.rotated().iter().rev() {
            entries.extend(self.parse_path(rotated)?);
        }
        entries.extend(self.parse_path(&self.path)?);
        Ok(entries)
    }

    /// journal.jsonl.1, .2, ... as far as they go (logrotate's numbering, uncompressed).
    fn rotated(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for n in 1.. {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            let p = PathBuf::from(name);
            if !p.exists() {
                break;
            }
            found.push(p);
        }
        found
    }

    fn parse_path(&self, path: &Path) -> Result<Vec<Entry>> {
        match File::open(path) {
            Ok(file) => Journal::new(path).parse(&file),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.err()(e)),
        }
    }

    fn parse(&self, file: &File) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(self.err())?;
            if line.trim().is_empty() {
                continue;
            }
            let entry: Entry = serde_json::from_str(&line).map_err(|e| Error::JournalCorrupt {
                path: self.path.clone(),
                line: i + 1,
                why: e.to_string(),
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Lock the journal for appending (creating it, 0600, in a 0700 directory, if needed).
    /// Fails — before anything has been changed — if the journal cannot be read or written.
    pub fn writer(&self, timeout: Duration) -> Result<Writer> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(self.err())?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(self.err())?;
        let deadline = Instant::now() + timeout;
        let mut file = file;
        let locked = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => break locked,
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = f;
                    thread::sleep(Duration::from_millis(20));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(Error::LockTimeout {
                        lock: format!("journal {}", self.path.display()),
                        seconds: timeout.as_secs_f64(),
                    })
                }
                Err((_, errno)) => return Err(self.err()(errno.into())),
            }
        };
        let mut entries = self.parse(&locked)?;
        for rotated in self.rotated() {
            entries.extend(self.parse_path(&rotated)?);
        }
        let next_id = entries.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        Ok(Writer {
            file: locked,
            next_id,
        })
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl Writer {
    /// Append one event and flush it to disk; returns its id.
    pub fn append(&mut self, event: Event) -> std::io::Result<u64> {
        let entry = Entry {
            id: self.next_id,
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            host: hostname(),
            pid: std::process::id(),
            event,
        };
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_all()?;
        self.next_id += 1;
        Ok(entry.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal() -> Event {
        Event::Removal {
            dm_name: "vg-lv".into(),
            uuid: String::new(),
            dev: DevNum {
                major: 254,
                minor: 0,
            },
            read_only: false,
            table: vec![TableLine {
                start: 0,
                length: 8,
                target: "linear".into(),
                params: "98:0 2048".into(),
            }],
            inspection: serde_json::json!({"verdict": "ghost"}),
        }
    }

    #[test]
    fn appends_survive_and_ids_grow() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(&dir.path().join("sub/journal.jsonl"));
        assert!(j.entries().unwrap().is_empty());
        let a = j
            .writer(Duration::from_secs(1))
            .unwrap()
            .append(removal())
            .unwrap();
        let b = j
            .writer(Duration::from_secs(1))
            .unwrap()
            .append(Event::Outcome {
                of: a,
                result: "removed".into(),
                detail: String::new(),
            })
            .unwrap();
        assert_eq!((a, b), (1, 2));
        let entries = j.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].event, removal());
    }

    #[test]
    fn ids_continue_across_logrotate_and_rotated_entries_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(&path);
        j.writer(Duration::from_secs(1))
            .unwrap()
            .append(removal())
            .unwrap();
        j.writer(Duration::from_secs(1))
            .unwrap()
            .append(removal())
            .unwrap();
        // logrotate: rename to .1, start an empty file.
        fs::rename(&path, dir.path().join("journal.jsonl.1")).unwrap();
        fs::write(&path, "").unwrap();
        let id = j
            .writer(Duration::from_secs(1))
            .unwrap()
            .append(removal())
            .unwrap();
        assert_eq!(id, 3);
        let ids: Vec<u64> = j.entries().unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn a_second_writer_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(&dir.path().join("journal.jsonl"));
        let _held = j.writer(Duration::from_secs(1)).unwrap();
        let err = j.writer(Duration::from_millis(100)).err().unwrap();
        assert!(matches!(err, Error::LockTimeout { .. }));
    }

    #[test]
    fn a_corrupt_journal_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, "{\"id\":1}\nnot json\n").unwrap();
        let err = Journal::new(&path)
            .writer(Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::JournalCorrupt { line: 1, .. }),
            "{err}"
        );
    }
}
