//! Files dmheal trusts: the journal (`restore` recreates what it says, so a journal anyone else
//! could write would let them choose what dmheal maps) and the state kept beside it. Owned by
//! root or by the user dmheal runs as, writable by no one else, reached without a symlink, a
//! regular file (a FIFO or a device is refused before a byte is read), in a directory that is
//! trusted the same way; created 0600 in a 0700 directory, each new entry flushed to disk.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Create `dir` (and missing parents) 0700, and flush each new entry into its parent.
pub(crate) fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while fs::symlink_metadata(at).is_err() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for d in missing.iter().rev() {
        sync_parent(d)?;
    }
    Ok(())
}

/// Flush the directory entry of `path` (a created file or directory) to disk.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

fn untrusted(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::PermissionDenied,
        format!("refusing to trust {}: {why}", path.display()),
    )
}

/// Owned by root or by the user running dmheal, and writable by no one else.
fn check_owner_and_mode(path: &Path, meta: &fs::Metadata) -> std::io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(untrusted(path, &format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            path,
            &format!(
                "writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Open a journal file (read and append), checking that it and its directory can be trusted.
/// `None`: it does not exist and `create` is false. Never follows a symlink; never blocks on
/// a FIFO; refuses anything but a regular file before reading a byte.
pub(crate) fn open_trusted(path: &Path, create: bool) -> std::io::Result<Option<File>> {
    open_trusted_as(path, create, true)
}

/// A file dmheal keeps beside its journal (read and write, not append), trusted as the
/// journal is: the same checks of it and its directory.
pub(crate) fn open_trusted_beside(path: &Path) -> std::io::Result<File> {
    open_trusted_as(path, true, false)?.ok_or_else(|| std::io::Error::from(ErrorKind::NotFound))
}

fn open_trusted_as(path: &Path, create: bool, append: bool) -> std::io::Result<Option<File>> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dmeta = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound && !create => return Ok(None),
        other => other?,
    };
    if dmeta.file_type().is_symlink() {
        return Err(untrusted(dir, "the journal's directory is a symlink"));
    }
    if !dmeta.is_dir() {
        return Err(untrusted(dir, "not a directory"));
    }
    check_owner_and_mode(dir, &dmeta)?;
    let open = |create_new: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .write(true)
            .append(append)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .mode(0o600);
        if create_new {
            o.create_new(true);
        }
        o.open(path)
    };
    let file = match open(false) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound && create => match open(true) {
            Ok(f) => {
                sync_parent(path)?;
                f
            }
            // Created by another writer in between: open what it made.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => open(false)?,
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(untrusted(path, "it is a symlink"))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(untrusted(path, "not a regular file"));
    }
    check_owner_and_mode(path, &meta)?;
    // Back to blocking for reads and writes of a regular file (O_NONBLOCK only mattered for
    // the open of something that was not one).
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL)?);
    fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(Some(file))
}
