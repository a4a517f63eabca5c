//! A block device read by a child process, so that a read that never returns costs the
//! deadline and nothing else.
//!
//! A read of a dead path (a suspended PV, a lost multipath) sleeps uninterruptibly (D state)
//! until the I/O completes. On a thread, that is not enough: a process whose thread is in D
//! state cannot finish exiting, so the `dmheal` binary — and with it the SM hook that waits for
//! it inside a VM start — would hang on exit. Here the reads happen in a child process: at the
//! deadline it is sent SIGKILL and left behind (reaped without waiting, once it has ended, or
//! by init after this process exits), and this process carries on and exits normally. In the
//! native module this runs inside SM's Python, so the child does nothing but async-signal-safe
//! system calls on memory prepared before the fork: open, fstat, read, pread, write, close,
//! _exit.
//!
//! Protocol: the child waits for one byte (the parent has named it by pidfd), sends its pid (a
//! sign it runs, before its open can hang), then answers the open with
//! `[i64 rc][u64 st_mode][u64 st_rdev]` (rc < 0: -errno), then serves requests `[u64 offset][u64 len]` (aligned, at most CHUNK) with `[i64 rc]` followed
//! by rc bytes.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::ondisk::ReadAt;
use crate::external_tool::still_ours;

/// Largest read the child does at once; bigger reads are split.
const CHUNK: usize = 256 << 10;
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
        // Everything the child touches exists before the fork (its read buffer it maps itself),
        // including the list of descriptors it must close where close_range is missing.
        let inherited = open_descriptors();
        let (req_r, req_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (rep_r, rep_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // A pipe as large as a chunk: a chunk crosses in one write and one read instead of
        // sixteen 64 KiB round trips between the two processes. Best effort (the default
        // size works, slower).
        let _ = nix::fcntl::fcntl(&rep_w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
        let fds = ChildFds {
            inherited: inherited.as_ptr(),
            inherited_len: inherited.len(),
            path: c_path.as_ptr(),
            flags: libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | direct,
            req_r: req_r.as_raw_fd(),
            rep_w: rep_w.as_raw_fd(),
        };
        // SAFETY: fork() is a syscall with no memory effects on this process. In the child
        // only `serve` runs, which makes async-signal-safe system calls on memory prepared
        // above (the path, the pipes, the aligned buffer) and ends in _exit: no allocation,
        // no lock, no return into Rust or Python code of the parent.
        let child = unsafe { libc::fork() };
        if child < 0 {
            return Err(io::Error::last_os_error());
        }
        if child == 0 {
            // SAFETY: as above.
            unsafe { serve(&fds) }
        }
        // One fork, not two: forking a big process (SM's Python) costs a copy of its page
        // tables each time. The reader stays this process's child until it is reaped.
        let pidfd = pidfd_of(child);
        reap_readers();
        drop((req_r, rep_w));
        let mut dev = IsolatedDevice {
            requests: File::from(req_w),
            replies: File::from(rep_r),
            pid: child,
            pidfd,
            deadline,
            mode: 0,
            rdev: 0,
        };
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

    /// One aligned read of `out.len()` bytes (at most CHUNK) at `offset`, into `out`.
    fn read_chunk(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let started = Instant::now();
        self.request(offset, out.len(), started)?;
        self.read_reply_into(out, started)
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

/// Ask the kernel to back `buf` with memory now, in one call, instead of one page fault per
/// page as it is first written (a metadata area is megabytes; some kernels — user-mode Linux —
/// make every fault costly). Advice only: a kernel without MADV_POPULATE_WRITE (Linux < 5.14)
/// says EINVAL and the pages come by faults as usual.
fn populate(buf: &mut [u8]) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let page = 4096usize;
    let start = (buf.as_mut_ptr() as usize).div_ceil(page) * page;
    let end = (buf.as_mut_ptr() as usize + buf.len()) / page * page;
    if end > start {
        // SAFETY: madvise on whole pages inside `buf`, which this function borrows mutably;
        // MADV_POPULATE_WRITE only pre-faults those pages, it changes no byte of them.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, MADV_POPULATE_WRITE);
        }
    }
}

impl ReadAt for IsolatedDevice {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let a = ALIGN as u64;
        let first = offset / a * a;
        let end = (offset + len as u64).div_ceil(a) * a;
        // One buffer, filled in place chunk by chunk (a metadata area is megabytes).
        let mut data = vec![0u8; (end - first) as usize];
        populate(&mut data);
        let mut at = 0usize;
        while at < data.len() {
            let n = (data.len() - at).min(CHUNK);
            self.read_chunk(first + at as u64, &mut data[at..at + n])?;
            at += n;
        }
        let from = (offset - first) as usize;
        data.truncate(from + len);
        data.drain(..from);
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
            };
            reader.kill();
            if let Ok(mut pending) = UNREAPED.lock() {
                pending.push(reader);
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
}

/// A descriptor naming process `pid` (close-on-exec), or None where the kernel has no
/// pidfd_open.
fn pidfd_of(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no memory; it returns a new descriptor that
    // nothing else owns, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: as above, the descriptor is new and owned here alone.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
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
        // Ended and reaped, or not ours to reap any more (ECHILD): either way done with.
        !matches!(status, Ok(WaitStatus::StillAlive))
    }
}

/// Readers killed and not yet reaped.
static UNREAPED: std::sync::Mutex<Vec<Reader>> = std::sync::Mutex::new(Vec::new());

/// Reap every killed reader that has ended, without waiting for any.
fn reap_readers() {
    if let Ok(mut pending) = UNREAPED.lock() {
        pending.retain(|r| !r.reaped());
    }
}

/// This process's open descriptors (from /proc/self/fd), for a kernel without close_range.
fn open_descriptors() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What the reader process works with, all prepared before the fork.
struct ChildFds {
    /// Descriptors open before the fork (for closing without close_range).
    inherited: *const i32,
    inherited_len: usize,
    path: *const libc::c_char,
    flags: libc::c_int,
    req_r: i32,
    rep_w: i32,
}

/// Write all of `len` bytes at `p` to `fd`, or exit.
///
/// # Safety
/// `p..p+len` must be readable. Async-signal-safe: write and _exit only.
unsafe fn put(fd: i32, p: *const u8, len: usize) {
    let mut done = 0;
    while done < len {
        let n = libc::write(fd, p.add(done).cast(), len - done);
        if n <= 0 {
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            libc::_exit(1);
        }
        done += n as usize;
    }
}

/// Read exactly `len` bytes into `p` from `fd`; false at end of file.
///
/// # Safety
/// `p..p+len` must be writable. Async-signal-safe: read only.
unsafe fn take(fd: i32, p: *mut u8, len: usize) -> bool {
    let mut done = 0;
    while done < len {
        let n = libc::read(fd, p.add(done).cast(), len - done);
        if n == 0 {
            return false;
        }
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

/// Close every descriptor but `keep`: close_range (Linux 5.9+) around them, else the list read
/// before the fork.
///
/// # Safety
/// Only in the reader process; system calls only.
unsafe fn close_all_but(f: &ChildFds, keep: [i32; 2]) {
    let (lo, hi) = (keep[0].min(keep[1]) as u32, keep[0].max(keep[1]) as u32);
    let ranges = [
        (0u32, lo.wrapping_sub(1)),
        (lo + 1, hi - 1),
        (hi + 1, u32::MAX),
    ];
    let mut supported = true;
    for (first, last) in ranges {
        if first > last || (first == 0 && lo == 0) {
            continue;
        }
        if libc::syscall(libc::SYS_close_range, first, last, 0) != 0 {
            supported = false;
            break;
        }
    }
    if !supported {
        for i in 0..f.inherited_len {
            let fd = *f.inherited.add(i);
            if fd != keep[0] && fd != keep[1] {
                libc::close(fd);
            }
        }
    }
}

/// The reader process: open, report, serve reads until the request pipe closes. (mmap is on
/// the list of async-signal-safe calls in practice on Linux: a system call, no lock.)
///
/// # Safety
/// Only in a freshly forked child, with `f` prepared before the fork. Never returns.
unsafe fn serve(f: &ChildFds) -> ! {
    // Keep nothing of the parent's but the two pipe ends: a reader stuck on dead storage must
    // not hold SM's Fairlock connection, the journal's flock, or the stdout a caller waits on.
    close_all_but(f, [f.req_r, f.rep_w]);
    // Nothing that could end this process before the parent has named it by pidfd: a reader
    // that exited at once could be reaped by something else (SIGCHLD ignored) and its pid
    // reused before the parent names it.
    let mut go = 0u8;
    if !take(f.req_r, &mut go as *mut u8, 1) {
        libc::_exit(0);
    }
    let pid = libc::getpid() as u64;
    put(f.rep_w, (&pid as *const u64).cast(), 8);
    let fd = libc::open(f.path, f.flags);
    let mut hello = [0u64; 3];
    if fd < 0 {
        hello[0] = (-(*libc::__errno_location() as i64)) as u64;
        put(f.rep_w, hello.as_ptr().cast(), 24);
        libc::_exit(0);
    }
    let mut st: libc::stat = std::mem::zeroed();
    if libc::fstat(fd, &mut st) < 0 {
        hello[0] = (-(*libc::__errno_location() as i64)) as u64;
        put(f.rep_w, hello.as_ptr().cast(), 24);
        libc::_exit(0);
    }
    hello[1] = st.st_mode as u64;
    hello[2] = st.st_rdev;
    // Its read buffer: mapped here (no copy-on-write of the parent's heap), page-aligned as
    // O_DIRECT wants, and populated at once.
    let buffer = libc::mmap(
        std::ptr::null_mut(),
        CHUNK,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
        -1,
        0,
    );
    if buffer == libc::MAP_FAILED {
        hello[0] = (-(*libc::__errno_location() as i64)) as u64;
        put(f.rep_w, hello.as_ptr().cast(), 24);
        libc::_exit(0);
    }
    let buffer = buffer.cast::<u8>();
    put(f.rep_w, hello.as_ptr().cast(), 24);
    let mut req = [0u64; 2];
    while take(f.req_r, req.as_mut_ptr().cast(), 16) {
        let len = (req[1] as usize).min(CHUNK);
        let n = libc::pread(fd, buffer.cast(), len, req[0] as libc::off_t);
        let rc: i64 = if n < 0 {
            -(*libc::__errno_location() as i64)
        } else {
            n as i64
        };
        put(f.rep_w, (&rc as *const i64).cast(), 8);
        if rc > 0 {
            put(f.rep_w, buffer, rc as usize);
        }
    }
    libc::_exit(0)
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
    fn streamed_reads_hand_over_exactly_the_bytes_read_at_gives() {
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
            assert_eq!(pieces.concat(), dev.read_at(offset, len).unwrap());
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
        for r in [Reader { pid, pidfd }, Reader { pid, pidfd: None }] {
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
