//! The append-only journal: one JSON object per line. A removal is written and flushed to disk
//! BEFORE the mapping is removed, with everything `restore` needs to recreate it exactly.
//! Writers serialise on an exclusive flock of the journal's directory, not of the file: logrotate
//! renames the file (`create`), and two writers locking the old and the new inode would both
//! take the same next id.
//!
//! It survives faults: an append is a whole line or nothing (a failed write or flush is rolled
//! back by truncating to the previous length, so a full disk leaves no torn line); a torn last
//! line left by a crash is recognised, reported and skipped by readers, and cut off — with a
//! `repaired` entry saying so — by the next writer; ids never wrap; the directory is flushed
//! when the journal is created in it.
//!
//! It is trusted only when it can be: the journal, its rotated copies and its directory must be
//! owned by root (or by the user dmheal runs as), not writable by group or others, reached
//! without a symlink, and the journal a regular file (a FIFO or a device is refused before it
//! is read). `restore` recreates what an entry says, so a journal anyone else could write
//! would let them choose what dmheal maps.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::dm::{DevNum, TableLine};
use crate::error::{Error, Result};
use crate::ids::{DmUuid, JournalId};
use crate::trusted_file::{create_dir, open_trusted};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: JournalId,
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
    /// About to remove this mapping. Written and fsynced before anything changes.
    Removal {
        dm_name: String,
        uuid: DmUuid,
        dev: DevNum,
        read_only: bool,
        table: Vec<TableLine>,
        /// The whole inspection the removal was decided on (verdict, reasons, facts).
        inspection: serde_json::Value,
    },
    /// What became of removal `of`.
    Outcome {
        of: JournalId,
        result: String,
        detail: String,
        /// The uuid the mapping was removed by: its own, or the unique one dmheal gave a ghost
        /// that had none (the removal entry keeps the original, which `restore` recreates).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removed_uuid: Option<DmUuid>,
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
    /// A xapi action the doctor carries out (SR.forget, VM.power_state_reset,
    /// VDI.remove_from_sm_config): written before the change, with what it takes to undo it;
    /// an `outcome` entry follows.
    XapiAction {
        action: String,
        subject: String,
        evidence: serde_json::Value,
        result: String,
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        undo: serde_json::Value,
    },
    /// A change the doctor makes to this host's own state (an SM refcount reset), journalled as
    /// a xapi action is.
    LocalAction {
        action: String,
        subject: String,
        evidence: serde_json::Value,
        result: String,
        undo: serde_json::Value,
    },
    /// Removal `of` was undone.
    Restore {
        of: JournalId,
        result: String,
        detail: String,
    },
    /// A torn last line (an append cut short by a crash) was cut off the journal.
    Repaired { bytes: u64, torn: String },
}

pub struct Journal {
    path: PathBuf,
}

/// The journal, locked for appending.
pub struct Writer {
    file: File,
    /// The directory's lock, held as long as the writer lives.
    _lock: Flock<File>,
    path: PathBuf,
    next_id: Option<JournalId>,
}

/// What one journal file holds.
struct Parsed {
    entries: Vec<Entry>,
    /// Length of the complete lines; less than the file's when the last line is torn.
    complete: u64,
    /// The torn last line, when there is one.
    torn: Option<Vec<u8>>,
    /// The last entry's id, when only that was read (`last_id`).
    last: Option<JournalId>,
}

/// What the end of a journal file says about its last id.
enum Tail {
    /// Its last line is a complete entry with this id (None: the file is empty).
    Read(Option<JournalId>),
    /// A torn last line, a blank one, or one that is not an entry: read the whole file.
    Unclear,
}

/// The id of the last entry of `file`, read from its end only.
fn last_id(file: &mut File) -> std::io::Result<Tail> {
    const STEP: u64 = 64 << 10;
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Tail::Read(None));
    }
    // Read backwards until the line before the last one ends (or the file starts).
    let mut tail: Vec<u8> = Vec::new();
    let mut start = len;
    loop {
        let from = start.saturating_sub(STEP);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
        if tail.last() != Some(&b'\n') {
            return Ok(Tail::Unclear);
        }
        let body = &tail[..tail.len() - 1];
        if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
            return Ok(parse_last(&body[i + 1..]));
        }
        if start == 0 {
            return Ok(parse_last(body));
        }
    }
}

fn parse_last(line: &[u8]) -> Tail {
    match serde_json::from_slice::<Entry>(line) {
        Ok(e) => Tail::Read(Some(e.id)),
        Err(_) => Tail::Unclear,
    }
}

impl Journal {
    pub fn new(path: &Path) -> Self {
        Journal {
            path: path.to_path_buf(),
        }
    }

    fn io(&self) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Journal {
            path: self.path.clone(),
            source,
        }
    }

    /// Every entry, oldest first: the rotated files logrotate leaves (`journal.jsonl.N`,
    /// highest N oldest) and then the journal itself. A journal that does not exist yet is
    /// empty; a torn last line is reported and skipped.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for rotated in self.rotated().iter().rev() {
            if let Some(file) = open_trusted(rotated, false).map_err(self.io())? {
                entries.extend(self.parse(rotated, file)?.entries);
            }
        }
        if let Some(file) = open_trusted(&self.path, false).map_err(self.io())? {
            let parsed = self.parse(&self.path, file)?;
            if let Some(torn) = &parsed.torn {
                tracing::warn!(
                    journal = %self.path.display(),
                    bytes = torn.len(),
                    "the journal's last line is torn (an append cut short by a crash); skipped"
                );
            }
            entries.extend(parsed.entries);
        }
        Ok(entries)
    }

    /// journal.jsonl.1, .2, ... as far as they go (logrotate's numbering, uncompressed).
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for n in 1.. {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            let p = PathBuf::from(name);
            if fs::symlink_metadata(&p).is_err() {
                break;
            }
            found.push(p);
        }
        found
    }

    fn parse(&self, path: &Path, mut file: File) -> Result<Parsed> {
        let io = |source| Error::Journal {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let torn = (complete < bytes.len()).then(|| bytes[complete..].to_vec());
        let mut entries = Vec::new();
        for (i, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry: Entry = serde_json::from_slice(line).map_err(|e| Error::JournalCorrupt {
                path: path.to_path_buf(),
                line: i + 1,
                why: e.to_string(),
            })?;
            entries.push(entry);
        }
        Ok(Parsed {
            entries,
            complete: complete as u64,
            torn,
            last: None,
        })
    }

    /// Lock the journal for appending (creating it, 0600, in a 0700 directory, if needed).
    /// Fails — before anything has been changed — if the journal cannot be trusted, read or
    /// written.
    pub fn writer(&self, timeout: Duration) -> Result<Writer> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if fs::symlink_metadata(dir).is_err() {
            create_dir(dir).map_err(self.io())?;
        }
        // Trusted (and created) before anything else is done; opened again below, under the
        // lock, so that what is appended to is the journal of now, not one logrotate renamed.
        drop(open_trusted(&self.path, true).map_err(self.io())?);
        // The directory, not the journal, is locked: it is the same before and after logrotate
        // renames the journal.
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(dir)
                .map_err(self.io())?
        };
        let deadline = Instant::now() + timeout;
        let lock = loop {
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
                Err((_, errno)) => return Err(self.io()(errno.into())),
            }
        };
        let mut locked = open_trusted(&self.path, true)
            .map_err(self.io())?
            .expect("created when missing");
        // The next id follows the last entry. Entries are appended in id order under this
        // lock, so the last complete line of each generation holds its highest id: only that
        // line is read — a heal inside a VM start, or the thousandth of a batch, must not
        // parse the whole history. A torn tail, or a last line that is not an entry, is read
        // the whole way (and a torn tail repaired below); readers always parse every line.
        let mut dup = locked.try_clone().map_err(self.io())?;
        let parsed = match last_id(&mut dup).map_err(self.io())? {
            Tail::Read(last) => Parsed {
                entries: Vec::new(),
                complete: 0,
                torn: None,
                last,
            },
            Tail::Unclear => self.parse(&self.path, dup)?,
        };
        let mut ids: Vec<JournalId> = parsed.entries.iter().map(|e| e.id).collect();
        ids.extend(parsed.last);
        for rotated in self.rotated() {
            if let Some(mut file) = open_trusted(&rotated, false).map_err(self.io())? {
                match last_id(&mut file).map_err(self.io())? {
                    Tail::Read(id) => ids.extend(id),
                    Tail::Unclear => {
                        ids.extend(self.parse(&rotated, file)?.entries.iter().map(|e| e.id))
                    }
                }
            }
        }
        // No id can follow u64::MAX: appends then fail rather than wrap to an id in use.
        let next_id = ids
            .iter()
            .max()
            .map_or(Some(JournalId::FIRST), |max| max.next());
        let mut writer = Writer {
            file: {
                // Appends go to the end whatever the offset; the repair below truncates.
                locked.seek(SeekFrom::End(0)).map_err(self.io())?;
                locked
            },
            _lock: lock,
            path: self.path.clone(),
            next_id,
        };
        if let Some(torn) = parsed.torn {
            writer.cut_to(parsed.complete)?;
            writer.append(Event::Repaired {
                bytes: torn.len() as u64,
                torn: String::from_utf8_lossy(&torn).into_owned(),
            })?;
        }
        Ok(writer)
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl Writer {
    fn io(&self) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Journal {
            path: self.path.clone(),
            source,
        }
    }

    /// Truncate the journal to `len` bytes and flush that.
    fn cut_to(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(self.io())?;
        self.file.sync_all().map_err(self.io())
    }

    /// Append one event as one whole line and flush it to disk; returns its id. On failure
    /// (a full disk, an I/O error) the journal is cut back to what it was: no torn line.
    pub fn append(&mut self, event: Event) -> Result<JournalId> {
        let id = self.next_id.ok_or_else(|| Error::Journal {
            path: self.path.clone(),
            source: std::io::Error::other("journal ids are exhausted (an entry has id u64::MAX)"),
        })?;
        let entry = Entry {
            id,
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            host: hostname(),
            pid: std::process::id(),
            event,
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| self.io()(e.into()))?;
        line.push('\n');
        let before = self.file.metadata().map_err(self.io())?.len();
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_all());
        if let Err(e) = written {
            // Best effort: a disk that refused the line still takes a truncation.
            let _ = self.file.set_len(before);
            let _ = self.file.sync_all();
            return Err(self.io()(e));
        }
        self.next_id = id.next();
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn removal() -> Event {
        Event::Removal {
            dm_name: "vg-lv".into(),
            uuid: DmUuid::default(),
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

    fn outcome(of: JournalId) -> Event {
        Event::Outcome {
            of,
            result: "removed".into(),
            detail: String::new(),
            removed_uuid: None,
        }
    }

    fn append(j: &Journal, e: Event) -> Result<JournalId> {
        j.writer(Duration::from_secs(1))?.append(e)
    }

    #[test]
    fn appends_survive_and_ids_grow() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(&dir.path().join("sub/journal.jsonl"));
        assert!(j.entries().unwrap().is_empty());
        let a = append(&j, removal()).unwrap();
        let b = append(&j, outcome(a)).unwrap();
        assert_eq!((a.0, b.0), (1, 2));
        let entries = j.entries().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].event, removal());
        let mode = fs::metadata(dir.path().join("sub")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = fs::metadata(j.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// What logrotate's `create` does: the journal renamed to `.1`, a new empty one (0600).
    fn rotate(path: &Path) {
        let mut rotated = path.to_path_buf().into_os_string();
        rotated.push(".1");
        fs::rename(path, &rotated).unwrap();
        std::os::unix::fs::OpenOptionsExt::mode(
            OpenOptions::new().write(true).create_new(true),
            0o600,
        )
        .open(path)
        .unwrap();
    }

    #[test]
    fn ids_continue_across_logrotate_and_rotated_entries_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(&path);
        append(&j, removal()).unwrap();
        append(&j, removal()).unwrap();
        rotate(&path);
        assert_eq!(append(&j, removal()).unwrap(), 3);
        let ids: Vec<JournalId> = j.entries().unwrap().iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            vec![1, 2, 3].into_iter().map(JournalId).collect::<Vec<_>>()
        );
    }

    /// The next id comes from the last line alone — whatever its length (an entry longer than
    /// one read of the tail) — and readers still parse, and refuse, every line.
    #[test]
    fn the_next_id_is_read_from_the_last_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(&path);
        append(&j, removal()).unwrap();
        let big = Event::Outcome {
            of: JournalId(1),
            result: "removed".into(),
            detail: "x".repeat(200 << 10),
            removed_uuid: None,
        };
        assert_eq!(append(&j, big).unwrap(), 2);
        assert_eq!(append(&j, outcome(JournalId(1))).unwrap(), 3);
        // A damaged line before the last: appends go on (the last entry says the next id);
        // `journal` and `restore` read every line and name the damaged one.
        let text = fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[0] = "not json";
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        assert_eq!(append(&j, outcome(JournalId(1))).unwrap(), 4);
        assert!(matches!(
            j.entries().unwrap_err(),
            Error::JournalCorrupt { line: 1, .. }
        ));
        // A rotated generation ahead of the current file (a hand-made copy): the highest wins.
        fs::copy(&path, dir.path().join("journal.jsonl.1")).unwrap();
        fs::write(&path, "").unwrap();
        assert_eq!(append(&j, outcome(JournalId(1))).unwrap(), 5);
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
    fn a_corrupt_complete_line_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, "not json\n{}\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = Journal::new(&path)
            .writer(Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::JournalCorrupt { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_torn_last_line_is_skipped_by_readers_and_repaired_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(&path);
        let id = append(&j, removal()).unwrap();
        // A crash in the middle of the next append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":2,"time":"2026-11-29T00:00:00Z","host":"h","pid":1,"ev"#)
            .unwrap();
        drop(f);
        let entries = j.entries().unwrap();
        assert_eq!(entries.len(), 1, "the good entry stays readable");
        assert_eq!(entries[0].id, id);
        let next = append(&j, outcome(id)).unwrap();
        let entries = j.entries().unwrap();
        let kinds: Vec<String> = entries
            .iter()
            .map(|e| serde_json::to_value(&e.event).unwrap()["event"].to_string())
            .collect();
        assert_eq!(kinds, ["\"removal\"", "\"repaired\"", "\"outcome\""]);
        assert!(
            matches!(&entries[1].event, Event::Repaired { torn, .. } if torn.ends_with("\"ev"))
        );
        assert_eq!(next, entries[2].id);
        assert!(fs::read_to_string(&path).unwrap().ends_with('\n'));
    }

    #[test]
    fn ids_do_not_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let line = serde_json::to_string(&Entry {
            id: JournalId(u64::MAX),
            time: "2026-11-29T00:00:00Z".into(),
            host: "h".into(),
            pid: 1,
            event: outcome(JournalId(1)),
        })
        .unwrap();
        fs::write(&path, line + "\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let before = fs::read(&path).unwrap();
        let err = append(&Journal::new(&path), removal()).unwrap_err();
        assert!(err.chain().contains("exhausted"), "{}", err.chain());
        assert_eq!(fs::read(&path).unwrap(), before, "nothing was written");
    }

    /// A failed append leaves the journal as it was (the full-disk case, on /dev/full: every
    /// write fails with ENOSPC).
    #[test]
    fn a_failed_write_leaves_no_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(&path);
        append(&j, removal()).unwrap();
        let before = fs::read(&path).unwrap();
        let mut w = j.writer(Duration::from_secs(1)).unwrap();
        // Swap the writer's file for one whose writes fail, keeping the real one's length
        // bookkeeping honest: /dev/full accepts the open and refuses every write.
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let real = std::mem::replace(&mut w.file, full);
        assert!(w.append(removal()).is_err());
        drop(real);
        drop(w);
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(append(&j, removal()).unwrap(), 2);
    }

    #[test]
    fn a_writer_waits_across_logrotate_and_ids_stay_unique() {
        // logrotate (`create`) renames the journal while a heal holds the writer: a second
        // writer must still wait for it, then continue after its entries, never reuse an id.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let j = Journal::new(&path);
        append(&j, removal()).unwrap();
        let mut first = j.writer(Duration::from_secs(1)).unwrap();
        rotate(&path);
        assert!(matches!(
            j.writer(Duration::from_millis(100)),
            Err(Error::LockTimeout { .. })
        ));
        assert_eq!(first.append(removal()).unwrap(), 2);
        drop(first);
        assert_eq!(append(&j, removal()).unwrap(), 3);
        let ids: Vec<u64> = j.entries().unwrap().iter().map(|e| e.id.0).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(
            ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
            3
        );
    }

    #[test]
    fn untrusted_journals_are_refused_before_they_are_read() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = d.join("good.jsonl");
        append(&Journal::new(&good), removal()).unwrap();
        let refused = |p: &Path| {
            let e = Journal::new(p).entries().unwrap_err();
            assert!(e.chain().contains("refusing to trust"), "{}", e.chain());
            let e = Journal::new(p)
                .writer(Duration::from_millis(100))
                .err()
                .unwrap();
            assert!(e.chain().contains("refusing to trust"), "{}", e.chain());
        };
        // A symlink to a good journal, and a dangling one (which must not create its target).
        symlink(&good, d.join("link.jsonl")).unwrap();
        refused(&d.join("link.jsonl"));
        symlink(d.join("elsewhere.jsonl"), d.join("dangling.jsonl")).unwrap();
        refused(&d.join("dangling.jsonl"));
        assert!(!d.join("elsewhere.jsonl").exists());
        // World-writable journal.
        let loose = d.join("loose.jsonl");
        fs::copy(&good, &loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o666)).unwrap();
        refused(&loose);
        // A FIFO (would hang a reader) and a device (/dev/zero would never end).
        let fifo = d.join("fifo.jsonl");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        refused(&fifo);
        let e = Journal::new(Path::new("/dev/zero")).entries().unwrap_err();
        assert!(e.chain().contains("refusing to trust"), "{}", e.chain());
        // A group-writable directory, and a directory reached through a symlink.
        let open_dir = d.join("open");
        fs::create_dir(&open_dir).unwrap();
        fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o775)).unwrap();
        refused(&open_dir.join("j.jsonl"));
        let real = d.join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
        symlink(&real, d.join("via")).unwrap();
        refused(&d.join("via/j.jsonl"));
    }
}
