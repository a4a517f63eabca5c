//! A block device read by a child process, so that a read that never returns costs the
//! deadline and nothing else.
//!
//! A read of a dead path (a suspended PV, a lost multipath) sleeps uninterruptibly (D state)
//! until the I/O completes. On a thread, that is not enough: a process whose thread is in D
//! state cannot finish exiting, so the `dmheal` binary — and with it the SM hook that waits for
//! it inside a VM start — would hang on exit. Here the reads happen in a reader process
//! (`reader_process`: it shares this process's memory but touches only a mapping of its own):
//! at the deadline it is sent SIGKILL and left behind (reaped without waiting, once it has
//! ended, or by init after this process exits), and this process carries on and exits
//! normally.
//!
//! Protocol: the reader waits for one byte (the parent has named it by pidfd), sends its pid (a
//! sign it runs, before its open can hang), then answers the open with
//! `[i64 rc][u64 st_mode][u64 st_rdev]` (rc < 0: -errno), then serves requests `[u64 offset][u64 len]` (aligned, at most CHUNK) with `[i64 rc]` followed
//! by rc bytes.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::ondisk::ReadAt;
use super::reader_process::{self, ReaderMemory, CHUNK};
use crate::external_tool::{pidfd_of, still_ours};
/// O_DIRECT wants offsets, lengths and memory aligned to the logical sector; 4 KiB covers
/// 512-byte and 4K-native devices alike.
const ALIGN: usize = 4096;

/// A device opened O_DIRECT by a reader process.
pub struct IsolatedDevice {
    requests: File,
    replies: File,
    pid: libc::pid_t,
    /// The reader itself, where the kernel can name it (Linux 5.3+): see `Reader`.
    pidfd: Option<OwnedFd>,
    /// The reader's stack and buffer: released once it is reaped, never before.
    memory: Option<ReaderMemory>,
    deadline: Instant,
    /// What the child's fstat said: file type bits and the device number.
    pub mode: u32,
    pub rdev: u64,
}

fn timed_out(deadline: Instant, started: Instant) -> io::Error {
    let given = deadline.saturating_duration_since(started).as_secs_f64();
    let why = if given < 0.25 {
        "the operation's time budget was spent before it could answer"
    } else {
        "dead or hung storage?"
    };
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no answer from the device within {} ({why}); the reader was abandoned",
            crate::external_tool::time_given(given)
        ),
    )
}

impl IsolatedDevice {
    /// Open `path` for O_DIRECT reads in a reader process; every answer must come by
    /// `deadline`.
    pub fn open(path: &Path, deadline: Instant) -> io::Result<Self> {
        // Around the page cache, as LVM reads: on a shared SR another host (the pool master)
        // writes the metadata, and a cached copy could be stale.
        Self::open_with(path, deadline, libc::O_DIRECT)
    }

    fn open_with(path: &Path, deadline: Instant, direct: libc::c_int) -> io::Result<Self> {
        let started = Instant::now();
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a device path"))?;
        let (req_r, req_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (rep_r, rep_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // A pipe as large as a chunk: a chunk crosses in one write and one read instead of
        // sixteen 64 KiB round trips between the two processes. Best effort (the default
        // size works, slower).
        let _ = nix::fcntl::fcntl(&rep_w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
        let memory = ReaderMemory::new(
            &c_path,
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | direct,
            req_r.as_raw_fd(),
            rep_w.as_raw_fd(),
        )?;
        // SAFETY: the memory goes into the device right away, and from there only to the
        // queue of readers not yet reaped, which releases it once the reader is reaped.
        let child = match unsafe { reader_process::start(&memory) } {
            Ok(pid) => pid,
            Err(e) => {
                // SAFETY: no reader was started on it.
                unsafe { memory.release() };
                return Err(e);
            }
        };
        drop((req_r, rep_w));
        let mut dev = IsolatedDevice {
            requests: File::from(req_w),
            replies: File::from(rep_r),
            pid: child,
            pidfd: None,
            memory: Some(memory),
            deadline,
            mode: 0,
            rdev: 0,
        };
        dev.pidfd = pidfd_of(child);
        reap_readers();
        // Named (pidfd) before it may do anything that ends it: go.
        (&dev.requests).write_all(&[1])?;
        // The reader says its pid first: it runs, whatever its open does next.
        dev.read_reply(8, started)?;
        let hello = dev.read_reply(24, started)?;
        let word = |i: usize| u64::from_ne_bytes(hello[i * 8..i * 8 + 8].try_into().expect("8"));
        let rc = word(0) as i64;
        if rc < 0 {
            return Err(io::Error::from_raw_os_error((-rc) as i32));
        }
        dev.mode = word(1) as u32;
        dev.rdev = word(2);
        Ok(dev)
    }

    /// Read exactly `n` bytes from the child by the deadline.
    fn read_reply(&self, n: usize, started: Instant) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; n];
        self.read_reply_into(&mut out, started)?;
        Ok(out)
    }

    /// Fill `out` from the child by the deadline.
    fn read_reply_into(&self, out: &mut [u8], started: Instant) -> io::Result<()> {
        let n = out.len();
        let mut got = 0;
        while got < n {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out(self.deadline, started));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&self.replies),
                PollFlags::POLLIN,
            )];
            if poll(&mut fds, PollTimeout::from(ms))? == 0 {
                continue;
            }
            match (&self.replies).read(&mut out[got..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the device reader died",
                    ))
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ask for an aligned read of `len` bytes (at most CHUNK) at `offset`; Ok once the reader
    /// said it read all of them, which follow on the reply pipe.
    fn request(&self, offset: u64, len: usize, started: Instant) -> io::Result<()> {
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&offset.to_ne_bytes());
        req[8..].copy_from_slice(&(len as u64).to_ne_bytes());
        (&self.requests).write_all(&req)?;
        let rc = i64::from_ne_bytes(self.read_reply(8, started)?.try_into().expect("8"));
        if rc < 0 {
            return Err(io::Error::from_raw_os_error((-rc) as i32));
        }
        let rc = rc as usize;
        if rc > len {
            return Err(io::Error::other(
                "the device reader answered more than asked",
            ));
        }
        if rc < len {
            // The rc bytes read are still sent; nothing reads them: the reader is dropped.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short read at {offset}: {rc} of {len} bytes"),
            ));
        }
        Ok(())
    }
}

/// How much of a streamed read is held at once. Small on purpose: every page of a buffer is a
/// page fault the first time it is written (costly in some kernels: user-mode Linux), and a
/// metadata area is megabytes of which a heal keeps a few hundred bytes.
const PIECE: usize = 64 << 10;

impl ReadAt for IsolatedDevice {
    /// Labels and headers (a sector or so); the metadata text itself is streamed.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(len);
        self.read_each(offset, len, &mut |piece| data.extend_from_slice(piece))?;
        Ok(data)
    }

    fn read_each(&self, offset: u64, len: usize, each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let a = ALIGN as u64;
        let first = offset / a * a;
        let end = (offset + len as u64).div_ceil(a) * a;
        // Bytes of the aligned range before `offset` and after offset + len: not handed on.
        let (mut skip, mut left) = ((offset - first) as usize, len);
        let mut piece = vec![0u8; PIECE.min((end - first) as usize)];
        let mut at = first;
        while at < end {
            let started = Instant::now();
            let n = ((end - at) as usize).min(CHUNK);
            self.request(at, n, started)?;
            let mut got = 0;
            while got < n {
                let k = (n - got).min(piece.len());
                self.read_reply_into(&mut piece[..k], started)?;
                got += k;
                let wanted = &piece[skip.min(k)..k];
                let wanted = &wanted[..wanted.len().min(left)];
                skip = skip.saturating_sub(k);
                left -= wanted.len();
                if !wanted.is_empty() {
                    each(wanted);
                }
            }
            at += n as u64;
        }
        Ok(())
    }
}

impl Drop for IsolatedDevice {
    fn drop(&mut self) {
        // EOF on its request pipe ends an idle reader; a reader stuck in D state dies when
        // its I/O returns. Either way nothing here waits for it: it is reaped now if it is
        // already gone, else when the next reader starts (or by init once this process ends).
        if self.pid > 0 {
            let reader = Reader {
                pid: self.pid,
                pidfd: self.pidfd.take(),
                memory: self.memory.take(),
            };
            reader.kill();
            match UNREAPED.lock() {
                Ok(mut pending) => pending.push(reader),
                // Its memory may still be written by a read that returns late: leaked.
                Err(_) => std::mem::forget(reader),
            }
            reap_readers();
        }
    }
}

/// A reader process, by pid and, where the kernel has them, by pidfd.
///
/// Normally the reader is this process's child until this process reaps it, so its pid
/// cannot name another process. Two things break that: SIGCHLD set to SIG_IGN by the program
/// around the native module (the kernel then reaps every child as it exits), and that program
/// reaping any child itself (`os.waitpid(-1, ...)`). Then the pid may already belong to
/// someone else. A pidfd names the process itself, so nothing else is ever signalled or
/// reaped through it; without one (Linux < 5.3, XenServer 8's 4.19) the pid is checked to be
/// an unreaped child of ours first, which leaves only the instant between check and kill.
struct Reader {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    /// Released once the reader is reaped (a dropped `ReaderMemory` is leaked, not unmapped).
    memory: Option<ReaderMemory>,
}

impl Reader {
    /// SIGKILL to the reader, and to nothing else.
    fn kill(&self) {
        match &self.pidfd {
            Some(fd) => {
                // SAFETY: pidfd_send_signal with a pidfd we own, no siginfo (null) and no
                // flags: it signals that process or fails (ESRCH once it has been reaped).
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                }
            }
            None if still_ours(nix::unistd::Pid::from_raw(self.pid)) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            None => {}
        }
    }

    /// Reaped now if it has ended; false while it runs.
    fn reaped(&self) -> bool {
        use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        let by_pid = || {
            waitpid(
                nix::unistd::Pid::from_raw(self.pid),
                Some(WaitPidFlag::WNOHANG),
            )
        };
        let status = match &self.pidfd {
            // P_PIDFD came in Linux 5.4, a release after pidfd_open: EINVAL before it.
            Some(fd) => match waitid(Id::PIDFd(fd.as_fd()), flags) {
                Err(nix::errno::Errno::EINVAL) => by_pid(),
                other => other,
            },
            None => by_pid(),
        };
        // Ended and reaped, or reaped by something else (ECHILD): either way it is dead. Any
        // other answer (EINTR, ...) says nothing: it may still run, and use its memory.
        match status {
            Ok(WaitStatus::StillAlive) => false,
            Ok(_) | Err(nix::errno::Errno::ECHILD) => true,
            Err(_) => false,
        }
    }
}

/// Readers killed and not yet reaped.
static UNREAPED: std::sync::Mutex<Vec<Reader>> = std::sync::Mutex::new(Vec::new());

/// Reap every reader that was let go and has ended since, without waiting for any: at the
/// end of each operation, so that the last one of a call is not left a zombie until the next
/// call starts a reader (SM's process may make no other).
pub fn reap_ended_readers() {
    reap_readers();
}

/// Reap every killed reader that has ended, without waiting for any.
fn reap_readers() {
    if let Ok(mut pending) = UNREAPED.lock() {
        pending.retain_mut(|r| {
            if !r.reaped() {
                return true;
            }
            if let Some(memory) = r.memory.take() {
                // SAFETY: reaped: the reader has ended and nothing runs on its memory.
                unsafe { memory.release() };
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The aligned chunking returns exactly the bytes asked for, across chunk boundaries.
    /// (O_DIRECT itself needs a block device — the kernel tests read real PVs — and this
    /// machine's filesystems refuse it on plain files; the arithmetic and protocol are the
    /// same without it.)
    #[test]
    fn reads_return_exactly_the_bytes_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk");
        let data: Vec<u8> = (0..CHUNK * 2 + 3 * ALIGN)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        let dev =
            IsolatedDevice::open_with(&p, Instant::now() + Duration::from_secs(20), 0).unwrap();
        assert_eq!(dev.mode & libc::S_IFMT, libc::S_IFREG);
        for (offset, len) in [
            (5000, 7000),
            (0, 512),
            (4096, 4096),
            (4095, 2),
            (16383, 1),
            (100, CHUNK + 5000),
            (CHUNK as u64 - 3, 10),
        ] {
            let got = dev.read_at(offset, len).unwrap();
            assert_eq!(
                got,
                &data[offset as usize..offset as usize + len],
                "{offset} {len}"
            );
        }
        // Past the end: a short read is an error, not a silent truncation.
        assert!(dev.read_at(data.len() as u64 - 10, 100).is_err());
    }

    #[test]
    fn streamed_reads_hand_over_exactly_the_bytes_asked_for_in_bounded_pieces() {
        let data: Vec<u8> = (0..CHUNK * 2 + 3 * ALIGN)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &data).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let dev = IsolatedDevice::open_with(f.path(), deadline, 0).unwrap();
        for (offset, len) in [
            (0u64, 512usize),
            (100, CHUNK + 5000),
            (CHUNK as u64 - 3, 10),
            (ALIGN as u64 + 1, 2 * CHUNK),
            (5, PIECE * 3 + 17),
        ] {
            let mut pieces = Vec::new();
            dev.read_each(offset, len, &mut |p| pieces.push(p.to_vec()))
                .unwrap();
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= PIECE));
            let o = offset as usize;
            assert_eq!(pieces.concat(), data[o..o + len], "{offset} {len}");
        }
    }

    #[test]
    fn a_missing_device_is_the_readers_errno() {
        let e = IsolatedDevice::open(
            Path::new("/nonexistent/dmheal-disk"),
            Instant::now() + Duration::from_secs(5),
        )
        .err()
        .unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    /// The reader keeps no descriptor of ours: one stuck on dead storage must not hold a lock
    /// we hold (here an flock on a file), or a pipe someone waits on.
    #[test]
    fn the_reader_holds_none_of_our_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        let f = File::create(&locked).unwrap();
        let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let fifo = dir.path().join("dead");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // The reader blocks forever opening the FIFO; it must not keep our flock.
        let e = IsolatedDevice::open(&fifo, Instant::now() + Duration::from_millis(200)).err();
        assert!(e.is_some());
        drop(held);
        let again = File::open(&locked).unwrap();
        assert!(
            nix::fcntl::Flock::lock(again, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok(),
            "the abandoned reader still holds the lock"
        );
    }

    /// The reader's descriptor table is its two pipe ends and nothing else, whether it closes
    /// the rest with close_range or by walking /proc/self/fd (a 4.19 dom0): here with many of
    /// ours open, an flock among them.
    #[test]
    fn the_reader_keeps_exactly_its_two_pipe_ends_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let held = nix::fcntl::Flock::lock(
            File::create(dir.path().join("locked")).unwrap(),
            nix::fcntl::FlockArg::LockExclusive,
        )
        .unwrap();
        let many: Vec<File> = (0..300)
            .map(|i| File::create(dir.path().join(format!("f{i}"))).unwrap())
            .collect();
        for walk in [false, true] {
            let (req_r, req_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            let (rep_r, rep_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            // A FIFO nobody writes: its open blocks, so the reader stays to be looked at.
            let fifo = dir.path().join(format!("dead-{walk}"));
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            let path = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
            let memory =
                ReaderMemory::new(&path, libc::O_RDONLY, req_r.as_raw_fd(), rep_w.as_raw_fd())
                    .unwrap();
            if walk {
                memory.walk_fds();
            }
            let pid = unsafe { reader_process::start(&memory) }.unwrap();
            let reader = Reader {
                pid,
                pidfd: pidfd_of(pid),
                memory: Some(memory),
            };
            // It closes before it waits for its go byte, and says its pid after: once the pid
            // is here, its table is final.
            (&File::from(req_w)).write_all(&[1]).unwrap();
            let mut said = [0u8; 8];
            (&File::from(rep_r)).read_exact(&mut said).unwrap();
            assert_eq!(i64::from_ne_bytes(said), pid as i64);
            let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
                .collect();
            fds.sort();
            let mut pipes = vec![req_r.as_raw_fd(), rep_w.as_raw_fd()];
            pipes.sort();
            assert_eq!(fds, pipes, "walk {walk}");
            reader.kill();
            UNREAPED.lock().unwrap().push(reader);
        }
        drop((held, many));
    }

    /// Whether `pid` is still in the process table (running, or a zombie nobody reaped).
    fn in_process_table(pid: libc::pid_t) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// A reader is this process's child: once killed it is reaped, never left a zombie (nor
    /// waited for while it runs).
    #[test]
    fn a_dropped_reader_is_reaped_not_left_a_zombie() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk");
        std::fs::write(&p, vec![7u8; 2 * ALIGN]).unwrap();
        let fifo = dir.path().join("dead");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let idle =
            IsolatedDevice::open_with(&p, Instant::now() + Duration::from_secs(20), 0).unwrap();
        let pids = [idle.pid];
        assert!(in_process_table(pids[0]));
        drop(idle);
        // One stuck opening a FIFO nobody writes, abandoned at its deadline.
        assert!(IsolatedDevice::open(&fifo, Instant::now() + Duration::from_millis(200)).is_err());
        let until = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|p| in_process_table(*p)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            reap_readers();
        }
        assert!(
            !pids.iter().any(|p| in_process_table(*p)),
            "a killed reader was left in the process table"
        );
    }

    /// The `name:` line of /proc/<pid>/status, as a hex mask.
    fn status_mask(pid: &str, name: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    }

    /// Whether a mapping starts at `addr` in this process.
    fn mapped_at(addr: usize) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .any(|l| l.split('-').next() == Some(&format!("{addr:x}")))
    }

    /// The reader shares our memory, so none of our signal handlers may ever run in it: it
    /// runs with every signal blocked (SIGKILL ends it), and the thread that started it gets
    /// its own mask back.
    #[test]
    fn the_reader_runs_with_every_signal_blocked_and_ours_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk");
        std::fs::write(&p, vec![7u8; 2 * ALIGN]).unwrap();
        let before = status_mask("thread-self", "SigBlk:");
        let dev =
            IsolatedDevice::open_with(&p, Instant::now() + Duration::from_secs(20), 0).unwrap();
        assert_eq!(status_mask("thread-self", "SigBlk:"), before);
        // The kernel never shows SIGKILL and SIGSTOP blocked: everything else is.
        let unblockable = (1u64 << (libc::SIGKILL - 1)) | (1u64 << (libc::SIGSTOP - 1));
        assert_eq!(status_mask(&dev.pid.to_string(), "SigBlk:"), !unblockable);
        // A signal sent to it waits, blocked; it still reads.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(dev.pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert_eq!(dev.read_at(0, 512).unwrap(), vec![7u8; 512]);
        assert_ne!(status_mask(&dev.pid.to_string(), "ShdPnd:"), 0);
    }

    /// The reader's stack and buffer stay mapped while it may still run — a read that comes
    /// back late would write into them — and are unmapped once it is reaped.
    #[test]
    fn the_readers_memory_outlives_it_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("dead");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A reader stuck opening a FIFO, as on dead storage; it is abandoned at the deadline.
        let (req_r, _req_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (_rep_r, rep_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let path = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        let memory =
            ReaderMemory::new(&path, libc::O_RDONLY, req_r.as_raw_fd(), rep_w.as_raw_fd()).unwrap();
        let base = memory.base as usize;
        assert!(mapped_at(base));
        let pid = unsafe { reader_process::start(&memory) }.unwrap();
        let reader = Reader {
            pid,
            pidfd: pidfd_of(pid),
            memory: Some(memory),
        };
        UNREAPED.lock().unwrap().push(reader);
        // Not killed yet (it waits for its go byte): still running, still mapped.
        reap_readers();
        assert!(in_process_table(pid) && mapped_at(base));
        UNREAPED
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.pid == pid)
            .unwrap()
            .kill();
        let until = Instant::now() + Duration::from_secs(10);
        while mapped_at(base) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            reap_readers();
        }
        assert!(!mapped_at(base) && !in_process_table(pid));
    }

    /// A child that waits for a signal (`pause`), or ends at once.
    fn child(wait: bool) -> libc::pid_t {
        // SAFETY: the child only calls pause and _exit (async-signal-safe), then ends.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                if wait {
                    libc::pause();
                }
                libc::_exit(0)
            }
        }
        pid
    }

    fn reaped_within(r: &Reader, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while !r.reaped() {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// A running reader is killed and reaped, through its pidfd or (older kernels) its pid.
    #[test]
    fn a_running_reader_is_killed_and_reaped_by_pidfd_or_pid() {
        for with_pidfd in [true, false] {
            let pid = child(true);
            assert!(still_ours(nix::unistd::Pid::from_raw(pid)));
            let r = Reader {
                pid,
                pidfd: if with_pidfd { pidfd_of(pid) } else { None },
                memory: None,
            };
            assert!(!r.reaped(), "a running reader taken for ended");
            r.kill();
            assert!(reaped_within(&r, Duration::from_secs(10)), "{with_pidfd}");
            assert!(!in_process_table(pid));
        }
    }

    /// A reader something else reaped first (SIGCHLD ignored, the host program's own wait):
    /// its pid may be another process's by now, so it is neither signalled nor reaped by it.
    #[test]
    fn a_reader_reaped_elsewhere_is_not_signalled_through_its_old_pid() {
        let pid = child(false);
        let pidfd = pidfd_of(pid);
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert!(
            !still_ours(nix::unistd::Pid::from_raw(pid)),
            "the guard takes a reaped pid for our child"
        );
        let readers = [
            Reader {
                pid,
                pidfd,
                memory: None,
            },
            Reader {
                pid,
                pidfd: None,
                memory: None,
            },
        ];
        for r in readers {
            r.kill();
            assert!(r.reaped());
        }
    }

    #[test]
    fn a_read_that_never_answers_costs_the_deadline_only() {
        // A FIFO with no writer: the reader's open blocks forever, as a dead path would.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("dead");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let start = Instant::now();
        let e = IsolatedDevice::open(&fifo, Instant::now() + Duration::from_millis(300))
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
