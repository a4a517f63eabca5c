//! SM's serialisation of LVM and dmsetup work, taken around dmheal's re-check and remove.
//!
//! * XenServer 8.4 / XCP-ng 8.3: "Fairlock devicemapper", a unix stream socket. The server
//!   accepts one connection at a time and writes `LOCK\0` to it; the lock is held until the
//!   socket closes. Connecting only queues: the lock is ours once `LOCK\0` arrives.
//! * XenServer 8.2: a POSIX fcntl lock on /var/lock/sm/.nil/lvm.
//!
//! This code runs in its own process (CLI, plugin). Code inside an SM process must not open
//! and close SM's fcntl lock files: any close() by that process drops SM's own lock.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

pub const FAIRLOCK_SOCKET: &str = "/run/fairlock/devicemapper";
pub const LEGACY_LOCK: &str = "/var/lock/sm/.nil/lvm";

const POLL: Duration = Duration::from_millis(20);

/// Which SM lock a host uses, decided by what exists on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum SmLockKind {
    Fairlock(PathBuf),
    Fcntl(PathBuf),
    /// Neither exists: not an SM host (or SM is not installed); nothing to serialise with.
    None,
}

impl SmLockKind {
    pub fn detect(fairlock: &Path, legacy: &Path) -> Self {
        if fairlock.exists() {
            SmLockKind::Fairlock(fairlock.to_path_buf())
        } else if legacy.parent().is_some_and(Path::exists) {
            SmLockKind::Fcntl(legacy.to_path_buf())
        } else {
            SmLockKind::None
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SmLockKind::Fairlock(p) => format!("Fairlock {}", p.display()),
            SmLockKind::Fcntl(p) => format!("fcntl {}", p.display()),
            SmLockKind::None => "no SM lock on this host".into(),
        }
    }
}

/// A held SM lock; dropping it releases the lock.
#[derive(Debug)]
pub enum SmLock {
    // Held, never read: the connection and the file are the locks while they are open.
    Fairlock(#[allow(dead_code)] UnixStream),
    Fcntl(#[allow(dead_code)] File),
    None,
}

/// Take the SM lock of `kind`, giving up after `timeout`. `in_sm_process`: the caller runs
/// inside SM, where opening SM's fcntl lock file is forbidden (closing it drops SM's lock).
pub fn acquire(kind: &SmLockKind, timeout: Duration, in_sm_process: bool) -> Result<SmLock> {
    let deadline = Instant::now() + timeout;
    match kind {
        SmLockKind::Fairlock(path) => fairlock(path, deadline, timeout),
        SmLockKind::Fcntl(path) if in_sm_process => Err(Error::NeedsOwnProcess(format!(
            "SM's lock here is the fcntl lock {}: opening it from inside an SM process is \
             refused (closing it would drop SM's own lock); a separate process must take it",
            path.display()
        ))),
        SmLockKind::Fcntl(path) => fcntl_lock(path, deadline, timeout),
        SmLockKind::None => Ok(SmLock::None),
    }
}

fn timed_out(kind: String, timeout: Duration) -> Error {
    Error::LockTimeout {
        lock: kind,
        seconds: timeout.as_secs_f64(),
    }
}

fn fairlock(path: &Path, deadline: Instant, timeout: Duration) -> Result<SmLock> {
    let name = format!("Fairlock {}", path.display());
    let lock_err = |source| Error::Lock {
        lock: name.clone(),
        source,
    };
    // Connecting only queues us. When the server's listen queue (64) is full a blocking
    // connect() would wait with no deadline: connect without blocking and retry until ours.
    let mut stream = loop {
        match crate::unix_socket::connect_nonblocking(path) {
            Ok(s) => break s,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN) | Some(libc::ECONNREFUSED)
                ) && Instant::now() < deadline =>
            {
                thread::sleep(POLL)
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN) | Some(libc::ECONNREFUSED)
                ) =>
            {
                return Err(timed_out(name, timeout))
            }
            Err(e) => return Err(lock_err(e)),
        }
    };
    stream.set_nonblocking(false).map_err(lock_err)?;
    // Who we are, for the server's syslog lines (SM's client sends "<pid> - <time>").
    let _ = stream.write_all(format!("{} - dmheal", std::process::id()).as_bytes());
    let mut got = Vec::with_capacity(5);
    while got.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(name, timeout));
        }
        stream.set_read_timeout(Some(left)).map_err(lock_err)?;
        let mut buf = [0u8; 5];
        match stream.read(&mut buf[..5 - got.len()]) {
            Ok(0) => {
                return Err(lock_err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the Fairlock server closed the connection before granting the lock",
                )))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out(name, timeout))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(lock_err(e)),
        }
    }
    if got != b"LOCK\0" {
        return Err(lock_err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "unexpected Fairlock greeting {:?}",
                String::from_utf8_lossy(&got)
            ),
        )));
    }
    Ok(SmLock::Fairlock(stream))
}

fn fcntl_lock(path: &Path, deadline: Instant, timeout: Duration) -> Result<SmLock> {
    let name = format!("fcntl {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| Error::Lock {
            lock: name.clone(),
            source,
        })?;
    let request = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    loop {
        match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLK(&request)) {
            Ok(_) => return Ok(SmLock::Fcntl(file)),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES)
                if Instant::now() < deadline =>
            {
                thread::sleep(POLL)
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                return Err(timed_out(name, timeout))
            }
            Err(errno) => {
                return Err(Error::Lock {
                    lock: name,
                    source: errno.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A Fairlock server written from the protocol: accept, write LOCK\0, wait for close.
    fn serve_one(listener: UnixListener, hold: Duration) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            thread::sleep(hold);
            conn.write_all(b"LOCK\0").unwrap();
            let mut said = Vec::new();
            let _ = conn.read_to_end(&mut said);
            said
        })
    }

    #[test]
    fn fairlock_is_held_after_the_greeting_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("devicemapper");
        let server = serve_one(
            UnixListener::bind(&sock).unwrap(),
            Duration::from_millis(50),
        );
        let kind = SmLockKind::detect(&sock, Path::new("/nonexistent/x"));
        assert_eq!(kind, SmLockKind::Fairlock(sock.clone()));
        let lock = acquire(&kind, Duration::from_secs(5), false).unwrap();
        assert!(matches!(lock, SmLock::Fairlock(_)));
        drop(lock);
        let said = server.join().unwrap();
        assert!(String::from_utf8_lossy(&said).ends_with("- dmheal"));
    }

    #[test]
    fn fairlock_held_by_someone_else_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("devicemapper");
        // The server never accepts: we sit in the queue and must give up at the deadline.
        let _listener = UnixListener::bind(&sock).unwrap();
        let start = Instant::now();
        let err = acquire(
            &SmLockKind::Fairlock(sock),
            Duration::from_millis(300),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    /// A server that never accepts, whose listen queue is full: a blocking connect() would
    /// wait forever; the lock gives up at its deadline.
    #[test]
    fn a_full_fairlock_queue_times_out_instead_of_blocking() {
        use nix::sys::socket::{
            bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
        };
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("devicemapper");
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &UnixAddr::new(&sock).unwrap(),
        )
        .unwrap();
        listen(&fd, Backlog::new(0).unwrap()).unwrap();
        // Fill the queue (a backlog of 0 still admits one; connect until it refuses).
        let mut queued = Vec::new();
        while let Ok(s) = crate::unix_socket::connect_nonblocking(&sock) {
            queued.push(s);
            assert!(queued.len() < 1000, "the queue never filled");
        }
        let start = Instant::now();
        let err = acquire(
            &SmLockKind::Fairlock(sock),
            Duration::from_millis(300),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn fcntl_lock_conflicts_with_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lvm");
        std::fs::write(&path, "").unwrap();
        // Another process holds a write lock (POSIX locks do not conflict within one process).
        let mut holder = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
                path.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = [0u8; 4];
        holder
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        let err = acquire(
            &SmLockKind::Fcntl(path.clone()),
            Duration::from_millis(200),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert!(matches!(
            acquire(
                &SmLockKind::Fcntl(path.clone()),
                Duration::from_secs(2),
                false
            )
            .unwrap(),
            SmLock::Fcntl(_)
        ));
    }

    #[test]
    fn inside_sm_the_fcntl_lock_file_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lvm");
        let err = acquire(
            &SmLockKind::Fcntl(path.clone()),
            Duration::from_secs(1),
            true,
        )
        .unwrap_err();
        assert!(matches!(err, Error::NeedsOwnProcess(_)), "{err}");
        assert_eq!(err.kind(), "needs_own_process");
        assert!(!path.exists(), "the lock file was created");
    }

    #[test]
    fn no_sm_means_no_lock() {
        let kind = SmLockKind::detect(Path::new("/nonexistent/a"), Path::new("/nonexistent/b/c"));
        assert_eq!(kind, SmLockKind::None);
        assert!(matches!(
            acquire(&kind, Duration::from_millis(10), true).unwrap(),
            SmLock::None
        ));
    }
}
