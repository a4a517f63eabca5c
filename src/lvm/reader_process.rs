//! The device reader's own side (see `isolated` for why reads happen in another process).
//!
//! How it starts: `clone(CLONE_VM)` — a new process that shares this process's memory but
//! nothing else (its own descriptor table, its own signal state, its own pid) — on a stack of
//! its own. Not fork: a fork copies the caller's page tables and makes every page of it
//! copy-on-write, and in the native module the caller is SM's Python (tens of milliseconds in
//! some kernels, then a fault for each page Python writes afterwards). Not glibc's `clone()`
//! either: the one in dom0's glibc 2.17 writes the new pid into the *caller's* thread
//! descriptor when CLONE_VM is set. The system call is made here, in assembly.
//!
//! Sharing memory with SM's Python is safe because the reader touches none of it:
//! - everything it reads or writes lives in one mapping made for it (`ReaderMemory`: guard page,
//!   stack, arguments, read buffer), which is unmapped only once the reader is known to be
//!   dead (reaped), and otherwise leaked, never reused;
//! - it makes raw system calls only: no libc (glibc's wrappers write `errno`, which is the
//!   thread-local of the thread that started it, and some read its thread descriptor), no
//!   allocation, no lock, nothing that can panic (no indexing, no unwrap);
//! - it starts with every signal blocked (blocked in the starting thread around the clone, so
//!   there is no instant in which one could run this process's handlers on its stack):
//!   SIGKILL, which cannot be blocked, is how it is ended.
//!
//! x86_64 only, as dom0 is.

use std::ffi::CStr;
use std::io;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the device reader makes raw x86_64 system calls (dom0 is x86_64)");

/// Largest read the reader does at once; bigger reads are split.
pub const CHUNK: usize = 256 << 10;
/// Longest device path (with its NUL), as the kernel's PATH_MAX.
const PATH_BYTES: usize = 4096;
const PAGE: usize = 4096;
/// The reader's stack. It needs a few hundred bytes; a guard page below ends it (SIGSEGV
/// cannot be blocked) rather than let it write below.
const STACK: usize = 64 << 10;

/// x86_64 system call numbers.
mod nr {
    pub const READ: i64 = 0;
    pub const WRITE: i64 = 1;
    pub const CLOSE: i64 = 3;
    pub const FSTAT: i64 = 5;
    pub const GETDENTS64: i64 = 217;
    pub const PREAD64: i64 = 17;
    pub const CLONE: i64 = 56;
    pub const EXIT: i64 = 60;
    pub const GETPID: i64 = 39;
    pub const OPENAT: i64 = 257;
    pub const CLOSE_RANGE: i64 = 436;
}

/// One system call, its raw result (-errno on failure); touches no memory of its own.
///
/// # Safety
/// As the call itself: pointers among `a` must be valid for what call `n` does with them.
#[inline(always)]
unsafe fn syscall(n: i64, a: [i64; 4]) -> i64 {
    let ret: i64;
    // SAFETY: the syscall instruction clobbers rcx and r11 and returns in rax; the caller
    // vouches for the arguments.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// What the reader works with, written into its mapping before it starts.
#[repr(C)]
struct Args {
    req_r: i32,
    rep_w: i32,
    flags: i32,
    /// The device path, NUL-terminated.
    path: [u8; PATH_BYTES],
    /// Close descriptors by walking /proc/self/fd even where close_range works (tests: the
    /// walk is what a 4.19 dom0 runs).
    walk_fds: bool,
    /// CHUNK bytes, page-aligned (O_DIRECT).
    buffer: *mut u8,
}

/// The reader's one mapping: [guard page][stack][arguments, descriptor list][read buffer].
/// Never unmapped by a drop: `release` is called once the reader is known dead, and a
/// `ReaderMemory` dropped otherwise is leaked (a reader stuck in a read may write into its
/// buffer whenever the I/O returns).
pub struct ReaderMemory {
    pub(super) base: *mut u8,
    len: usize,
    args: *mut Args,
    stack_top: *mut u8,
}

// SAFETY: a plain region of this process's memory, owned by whoever holds this (moved between
// threads in the queue of readers not yet reaped); nothing in it is tied to a thread.
unsafe impl Send for ReaderMemory {}

impl ReaderMemory {
    /// A mapping with everything the reader of `path` needs, written in.
    pub fn new(path: &CStr, flags: libc::c_int, req_r: i32, rep_w: i32) -> io::Result<Self> {
        let path = path.to_bytes_with_nul();
        if path.len() > PATH_BYTES {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        let args_len = std::mem::size_of::<Args>().div_ceil(PAGE) * PAGE;
        let len = PAGE + STACK + args_len + CHUNK;
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        let memory = ReaderMemory {
            base,
            len,
            // SAFETY (these three): offsets inside the mapping just made.
            args: unsafe { base.add(PAGE + STACK) }.cast(),
            stack_top: unsafe { base.add(PAGE + STACK) },
        };
        // SAFETY: the first page of our own mapping.
        if unsafe { libc::mprotect(base.cast(), PAGE, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: no reader was started on it.
            unsafe { memory.release() };
            return Err(e);
        }
        // SAFETY: args, then the buffer: both inside the mapping (sized above), which nothing
        // else uses yet.
        unsafe {
            let mut a = Args {
                req_r,
                rep_w,
                flags,
                path: [0; PATH_BYTES],
                walk_fds: false,
                buffer: base.add(PAGE + STACK + args_len),
            };
            a.path[..path.len()].copy_from_slice(path);
            memory.args.write(a);
        }
        Ok(memory)
    }

    /// Make the reader close descriptors by walking /proc/self/fd, as where close_range is
    /// missing.
    #[cfg(test)]
    pub(super) fn walk_fds(&self) {
        // SAFETY: the arguments `new` wrote; no reader runs on them yet (tests call this
        // before `start`).
        unsafe { (*self.args).walk_fds = true };
    }

    /// Unmap it.
    ///
    /// # Safety
    /// No reader may run on it any more: never started, or ended and reaped.
    pub unsafe fn release(self) {
        // SAFETY: the mapping `new` made, which the caller says nothing uses.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Start the reader on `memory`: its pid.
///
/// # Safety
/// `memory` must outlive the reader: released only once it has been reaped.
pub unsafe fn start(memory: &ReaderMemory) -> io::Result<libc::pid_t> {
    // Every signal blocked in this thread across the clone, so the reader starts with all of
    // them blocked (the raw call: glibc's sigprocmask leaves its own two open).
    let all: u64 = !0;
    let mut old: u64 = 0;
    let sigsetsize = 8i64;
    // SAFETY: rt_sigprocmask with two 8-byte sets on this stack.
    let blocked = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            &mut old as *mut u64,
            sigsetsize,
        )
    };
    if blocked != 0 {
        return Err(io::Error::last_os_error());
    }
    let ret: i64;
    // SAFETY: clone(CLONE_VM | SIGCHLD) onto the reader's own stack. In this process the call
    // returns (the pid, or -errno) and execution goes on at label 2 with only rax, rcx and r11
    // changed. In the reader, rax is 0, rsp is the top of its stack (16-byte aligned, so the
    // call below enters `reader_main` as the ABI wants), r12 and r13 still hold the arguments
    // and the function: it calls `reader_main`, which never returns, and exits if it did.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const nr::EXIT,
            inlateout("rax") nr::CLONE => ret,
            in("rdi") (libc::CLONE_VM | libc::SIGCHLD) as i64,
            in("rsi") memory.stack_top,
            in("rdx") 0i64,
            in("r10") 0i64,
            in("r8") 0i64,
            in("r12") memory.args,
            in("r13") reader_main as *const (),
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    // SAFETY: as above, restoring the mask saved.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old as *const u64,
            std::ptr::null_mut::<u64>(),
            sigsetsize,
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as libc::pid_t)
}

/// End the reader (exit status `code`).
fn exit(code: i64) -> ! {
    // SAFETY: exit ends this process; it takes no memory.
    unsafe { syscall(nr::EXIT, [code, 0, 0, 0]) };
    #[allow(clippy::empty_loop)]
    loop {} // exit does not return
}

/// Move exactly `len` bytes between `p` and `fd` with `call` (read or write): false at end of
/// file or on an error.
///
/// # Safety
/// `p..p+len` must be valid for what `call` does with it.
unsafe fn transfer(call: i64, fd: i32, p: *const u8, len: usize) -> bool {
    let mut done = 0;
    while done < len {
        // SAFETY: the caller's range.
        let n = unsafe {
            syscall(
                call,
                [fd as i64, p.add(done) as i64, (len - done) as i64, 0],
            )
        };
        if n == -(libc::EINTR as i64) {
            continue;
        }
        if n <= 0 {
            return false;
        }
        done = done.wrapping_add(n as usize);
    }
    true
}

/// Write all of `len` bytes at `p` to `fd`, or end the reader.
///
/// # Safety
/// `p..p+len` must be readable.
unsafe fn put(fd: i32, p: *const u8, len: usize) {
    // SAFETY: the caller's range, read by write.
    if !unsafe { transfer(nr::WRITE, fd, p, len) } {
        exit(1);
    }
}

/// Read exactly `len` bytes into `p` from `fd`; false at end of file or on an error.
///
/// # Safety
/// `p..p+len` must be writable.
unsafe fn take(fd: i32, p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller's range, written by read.
    unsafe { transfer(nr::READ, fd, p, len) }
}

/// Close every descriptor but `keep` (in the reader's own table, copied at the clone):
/// close_range (Linux 5.9+) around them, else each one /proc/self/fd lists (XenServer 8's
/// 4.19), which is exactly the table this reader holds, whatever other threads of the caller
/// opened until the clone.
///
/// # Safety
/// In the reader only, with `a` its arguments, before its buffer is used for reads.
unsafe fn close_all_but(a: &Args, keep: [i32; 2]) {
    let (lo, hi) = (keep[0].min(keep[1]) as u32, keep[0].max(keep[1]) as u32);
    let ranges = [
        (0u32, lo.wrapping_sub(1)),
        (lo.wrapping_add(1), hi.wrapping_sub(1)),
        (hi.wrapping_add(1), u32::MAX),
    ];
    let mut supported = !a.walk_fds;
    for (first, last) in ranges {
        if !supported || first > last || (first == 0 && lo == 0) {
            continue;
        }
        // SAFETY: close_range takes numbers only.
        if unsafe { syscall(nr::CLOSE_RANGE, [first as i64, last as i64, 0, 0]) } != 0 {
            supported = false;
        }
    }
    if !supported {
        // SAFETY: in the reader, its buffer free.
        unsafe { close_listed_but(a, keep) };
    }
}

/// Close every descriptor /proc/self/fd lists but `keep` (and the directory's own).
///
/// # Safety
/// In the reader only; uses its buffer.
unsafe fn close_listed_but(a: &Args, keep: [i32; 2]) {
    let dir_path = b"/proc/self/fd\0";
    let flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as i64;
    // SAFETY: a NUL-terminated path in this binary's read-only data.
    let dir = unsafe {
        syscall(
            nr::OPENAT,
            [libc::AT_FDCWD as i64, dir_path.as_ptr() as i64, flags, 0],
        )
    };
    if dir < 0 {
        return;
    }
    loop {
        // SAFETY: at most CHUNK bytes of directory entries into the buffer of our mapping.
        let n = unsafe { syscall(nr::GETDENTS64, [dir, a.buffer as i64, CHUNK as i64, 0]) };
        if n <= 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then the name
            // (NUL-terminated inside reclen). procfs names descriptors in decimal.
            // SAFETY: entries the kernel wrote, each inside the n bytes read.
            let entry = unsafe { a.buffer.add(at) };
            let reclen = unsafe { std::ptr::read_unaligned(entry.add(16).cast::<u16>()) } as usize;
            if reclen == 0 {
                break;
            }
            let mut fd: i64 = 0;
            let mut digits = 0usize;
            loop {
                // SAFETY: inside the entry, whose name ends in a NUL.
                let c = unsafe { *entry.add(19 + digits) };
                if c == 0 {
                    break;
                }
                if !c.is_ascii_digit() || digits == 9 {
                    digits = 0; // ".", "..", or nothing a descriptor is called
                    break;
                }
                fd = fd.wrapping_mul(10).wrapping_add((c - b'0') as i64);
                digits = digits.wrapping_add(1);
            }
            if digits > 0 && fd != dir && fd != keep[0] as i64 && fd != keep[1] as i64 {
                // SAFETY: close takes a number only.
                unsafe { syscall(nr::CLOSE, [fd, 0, 0, 0]) };
            }
            at = at.wrapping_add(reclen);
        }
    }
    // SAFETY: close takes a number only.
    unsafe { syscall(nr::CLOSE, [dir, 0, 0, 0]) };
}

/// Send `[rc][mode][rdev]`, the answer to the open.
///
/// # Safety
/// In the reader only.
unsafe fn hello(rep_w: i32, rc: i64, mode: u64, rdev: u64) {
    let words = [rc as u64, mode, rdev];
    // SAFETY: 24 bytes on this stack.
    unsafe { put(rep_w, words.as_ptr().cast(), 24) };
}

/// The reader: wait for the go byte, say its pid, open, report, serve reads until the request
/// pipe closes (protocol in `isolated`).
///
/// # Safety
/// Only as the entry of a reader started by `start`, `args` in its own mapping.
unsafe extern "C" fn reader_main(args: *const Args) -> i32 {
    // SAFETY: written by `ReaderMemory::new` before the start, never written again.
    let a = unsafe { &*args };
    // Keep nothing of the caller's but the two pipe ends: a reader stuck on dead storage must
    // not hold SM's Fairlock connection, the journal's flock, or the stdout a caller waits on.
    // SAFETY: in the reader.
    unsafe { close_all_but(a, [a.req_r, a.rep_w]) };
    // Nothing that could end this process before the caller has named it by pidfd: a reader
    // that exited at once could be reaped by something else (SIGCHLD ignored) and its pid
    // reused before it is named.
    let mut go = 0u8;
    // SAFETY: one byte on this stack.
    if !unsafe { take(a.req_r, &mut go, 1) } {
        exit(0);
    }
    // SAFETY: getpid takes nothing; then 8 bytes on this stack.
    let pid = unsafe { syscall(nr::GETPID, [0; 4]) } as u64;
    unsafe { put(a.rep_w, (&pid as *const u64).cast(), 8) };
    // SAFETY: a NUL-terminated path in our mapping.
    let fd = unsafe {
        syscall(
            nr::OPENAT,
            [
                libc::AT_FDCWD as i64,
                a.path.as_ptr() as i64,
                a.flags as i64,
                0,
            ],
        )
    };
    if fd < 0 {
        // SAFETY: in the reader.
        unsafe { hello(a.rep_w, fd, 0, 0) };
        exit(0);
    }
    // x86_64's `struct stat` is the kernel's.
    // SAFETY: a zeroed plain C struct, then fstat into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { syscall(nr::FSTAT, [fd, (&mut st as *mut libc::stat) as i64, 0, 0]) };
    if rc < 0 {
        unsafe { hello(a.rep_w, rc, 0, 0) };
        exit(0);
    }
    unsafe { hello(a.rep_w, 0, st.st_mode as u64, st.st_rdev) };
    let mut req = [0u64; 2];
    // SAFETY: 16 bytes on this stack.
    while unsafe { take(a.req_r, req.as_mut_ptr().cast(), 16) } {
        let len = (req[1] as usize).min(CHUNK);
        // SAFETY: at most CHUNK bytes into the buffer of our mapping.
        let rc = unsafe {
            syscall(
                nr::PREAD64,
                [fd, a.buffer as i64, len as i64, req[0] as i64],
            )
        };
        unsafe { put(a.rep_w, (&rc as *const i64).cast(), 8) };
        if rc > 0 {
            // SAFETY: the rc bytes just read into the buffer.
            unsafe { put(a.rep_w, a.buffer, rc as usize) };
        }
    }
    exit(0)
}
