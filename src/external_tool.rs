//! Running the platform's tools (lvs, tap-ctl, xl) as list-argv commands — never a shell — with
//! a deadline that holds whatever the tool does, keeping stderr when they fail.
//!
//! Every wait here ends by the deadline:
//! * the tool runs in a process group of its own, and at the deadline the whole group is
//!   killed (a tool that forked a helper leaves nothing behind that keeps our pipes open);
//! * output is read with poll() against the deadline in this thread, not by reader threads
//!   that would be joined: a tool that exits while a child of its still holds stdout is done
//!   once what it wrote is drained, and that child is killed with the group;
//! * a killed tool that cannot die (stuck in D state on dead storage) is not waited for: a
//!   detached thread reaps it whenever the kernel lets it go, so this process stays free to
//!   return — and to exit.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CommandError {
    #[error("{program} is not installed (not found on PATH)")]
    NotFound { program: String },
    #[error("{program} could not be started")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// Something else in this process collected the tool's exit status (SIGCHLD ignored by
    /// the program around the native module, or its own wait for any child): whether it
    /// succeeded is unknown, so its answer is not used.
    #[error("{program} ran, but its exit status was collected by something else in this process (SIGCHLD ignored, or a wait for any child); its answer is not used")]
    StatusLost { program: String },
    #[error("{program} did not finish within {} and was killed", crate::external_tool::time_given(*.seconds))]
    Timeout { program: String, seconds: f64 },
    /// Output past the limit is read and dropped, so what was kept is not the whole answer:
    /// never parsed as if it were (a cut `tap-ctl list` would hide the tapdisks after the cut).
    #[error("{program} printed more than {limit} bytes; its output is not read as complete")]
    TooMuchOutput { program: String, limit: usize },
    #[error("{program} exited with status {status}: {stderr}")]
    Failed {
        program: String,
        status: i32,
        stderr: String,
    },
}

/// What a finished command printed.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

/// How often a running tool is checked for having exited while its pipes are quiet.
const TICK: Duration = Duration::from_millis(5);
/// Largest output kept from one tool; more is read and dropped (a runaway tool cannot make
/// this process grow without bound), and the run is then an error.
const MAX_OUTPUT: usize = 64 << 20;

/// Run `program args...` with a deadline. Non-zero exit is returned as `Output`, not an error,
/// because some tools (lvs) exit non-zero with useful output; use `Output::success` to insist.
/// The time a wait was given, in words: a wait given almost nothing was cut by the operation's
/// time budget, spent before it started — not a sign of dead storage or a hung tool.
pub fn time_given(seconds: f64) -> String {
    if seconds < 0.25 {
        format!(
            "the {seconds:.2} s left of the operation's time budget (the budget was spent before it started)"
        )
    } else {
        format!("{seconds:.1} s")
    }
}

pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
    start(program, args, timeout)?.finish()
}

/// A tool started and not yet waited for: it runs while the caller does other work (its
/// deadline counts from the start). Output beyond the pipe's buffer waits for `finish`.
pub struct Running {
    program: String,
    /// The tool itself, where the kernel can name it (Linux 5.3+): readable once it has
    /// exited, so its end is noticed at once instead of at the next tick. Only ever polled,
    /// never signalled: if something else reaped the tool before it was opened (SIGCHLD
    /// ignored), the worst it can name is a stranger whose exit wakes us early.
    pidfd: Option<std::os::fd::OwnedFd>,
    /// The tool and its stdout and stderr, taken by `finish`; a `Running` dropped unfinished
    /// (its caller gave up early) kills the tool's group rather than leave it behind.
    tool: Option<(Child, [Pipe; 2])>,
    group: Pid,
    deadline: Instant,
    timeout: Duration,
}

/// Start `program args...`; `Running::finish` collects it by the deadline.
pub fn start(program: &str, args: &[&str], timeout: Duration) -> Result<Running, CommandError> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: the deadline kills the tool and everything it started.
        .process_group(0)
        .spawn()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                CommandError::NotFound {
                    program: program.to_string(),
                }
            } else {
                CommandError::Spawn {
                    program: program.to_string(),
                    source,
                }
            }
        })?;
    let group = Pid::from_raw(child.id() as i32);
    let pidfd = pidfd_of(group.as_raw());
    let pipes = [
        Pipe::new(child.stdout.take().expect("piped").into()),
        Pipe::new(child.stderr.take().expect("piped").into()),
    ];
    for p in &pipes {
        if let Err(source) = set_nonblocking(p.fd()) {
            abandon(child, group, true);
            return Err(CommandError::Spawn {
                program: program.to_string(),
                source,
            });
        }
    }
    Ok(Running {
        program: program.to_string(),
        pidfd,
        tool: Some((child, pipes)),
        group,
        deadline,
        timeout,
    })
}

impl Running {
    /// Wait for the tool until the deadline (then its whole group is killed) and return what
    /// it printed.
    pub fn finish(mut self) -> Result<Output, CommandError> {
        let (mut child, mut pipes) = self.tool.take().expect("a Running is finished once");
        let group = self.group;
        let program = std::mem::take(&mut self.program);
        let (deadline, timeout) = (self.deadline, self.timeout);
        let spawn_err = |source| CommandError::Spawn {
            program: program.clone(),
            source,
        };
        let status = loop {
            // Whether it is done first: a tool started before other work (tap-ctl while LVM
            // is read) may have finished long before it is collected, deadline or not.
            for p in pipes.iter_mut() {
                p.drain();
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(source) => {
                    let held = pipes.iter().any(|p| !p.eof);
                    abandon(child, group, held);
                    return Err(if source.raw_os_error() == Some(libc::ECHILD) {
                        CommandError::StatusLost { program }
                    } else {
                        spawn_err(source)
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let held = pipes.iter().any(|p| !p.eof);
                abandon(child, group, held);
                return Err(CommandError::Timeout {
                    program,
                    seconds: timeout.as_secs_f64(),
                });
            }
            wait_readable(&mut pipes, self.pidfd.as_ref(), TICK.min(deadline - now));
        };
        // The tool has exited: everything it wrote is in the pipes. Drain it; a pipe that is
        // not at end of file is held by something the tool left running, which goes with the
        // group.
        for p in pipes.iter_mut() {
            p.drain();
        }
        if pipes.iter().any(|p| !p.eof) {
            let _ = killpg(group, Signal::SIGKILL);
        }
        let [out, err] = pipes;
        if out.dropped {
            return Err(CommandError::TooMuchOutput {
                program,
                limit: MAX_OUTPUT,
            });
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.data).into_owned(),
            stderr: String::from_utf8_lossy(&err.data).into_owned(),
            status: status.code().unwrap_or(-1),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((child, pipes)) = self.tool.take() {
            let held = pipes.iter().any(|p| !p.eof);
            abandon(child, self.group, held);
        }
    }
}

/// One of the tool's output pipes, read without blocking.
struct Pipe {
    reader: std::fs::File,
    data: Vec<u8>,
    eof: bool,
    /// Output past MAX_OUTPUT was dropped.
    dropped: bool,
}

impl Pipe {
    fn new(fd: std::os::fd::OwnedFd) -> Self {
        Pipe {
            reader: fd.into(),
            data: Vec::new(),
            eof: false,
            dropped: false,
        }
    }

    fn fd(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Read whatever is there now; never blocks (the pipe is non-blocking).
    fn drain(&mut self) {
        let mut buf = [0u8; 16384];
        while !self.eof {
            match self.reader.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) if self.data.len() + n <= MAX_OUTPUT => {
                    self.data.extend_from_slice(&buf[..n])
                }
                Ok(_) => self.dropped = true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.eof = true,
            }
        }
    }
}

fn set_nonblocking(fd: i32) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fd = borrow_fd(fd);
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A borrowed descriptor for nix calls. The pipes outlive every use (they are owned by the
/// `Pipe`s of the same `run` call), which is what `BorrowedFd` promises.
fn borrow_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: `fd` is one of this call's pipe descriptors; it stays open until `run` returns,
    // and the borrow is used only within `run`.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Sleep until a pipe has data (or is closed), the tool has exited (`pidfd`), or `wait`
/// passes.
fn wait_readable(pipes: &mut [Pipe; 2], pidfd: Option<&std::os::fd::OwnedFd>, wait: Duration) {
    let mut fds: Vec<PollFd> = pipes
        .iter()
        .filter(|p| !p.eof)
        .map(|p| PollFd::new(borrow_fd(p.fd()), PollFlags::POLLIN))
        .collect();
    fds.extend(pidfd.map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)));
    let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
    if fds.is_empty() {
        thread::sleep(wait);
        return;
    }
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

/// A descriptor naming process `pid` (close-on-exec), or None where the kernel has no
/// pidfd_open. `pid` must be an unreaped child of ours, so that it names no one else.
pub(crate) fn pidfd_of(pid: libc::pid_t) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags, no memory; it returns a new descriptor that
    // nothing else owns, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: as above, the descriptor is new and owned here alone.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Kill the tool's whole group and stop waiting for it: a process stuck in uninterruptible
/// sleep cannot die until its I/O returns, and nothing here may wait for that.
///
/// The group id is safe to signal while it cannot have been given to anyone else: while the
/// tool, its leader, is an unreaped child of ours, or while something still holds the tool's
/// output pipes (`pipes_held`: a process it started, in its group, which keeps the group id
/// taken). With neither — the leader reaped elsewhere and its group empty — the id may be
/// another group's by now, and nothing is sent.
fn abandon(mut child: Child, group: Pid, pipes_held: bool) {
    if still_ours(group) || pipes_held {
        let _ = killpg(group, Signal::SIGKILL);
    }
    for _ in 0..10 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    // Reaped in the background whenever the kernel lets it go (a blocked wait4 does not keep
    // this process from exiting).
    let _ = thread::Builder::new().name("reap".into()).spawn(move || {
        let _ = child.wait();
    });
}

/// Whether `pid` is a child of this process not yet reaped, running or ended (asked without
/// reaping): then neither its pid nor, for a group leader, its group id can have been given
/// to another process, and signalling them reaches only it. Not so when something else reaped
/// it first (SIGCHLD set to SIG_IGN by the program around the native module, or its own
/// waitpid(-1)): they may be anyone's by now. The PV reader's guard too (`lvm::isolated`).
pub(crate) fn still_ours(pid: Pid) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    waitid(Id::Pid(pid), flags).is_ok()
}

impl Output {
    /// The output if the command exited 0, else a `Failed` error carrying its stderr.
    pub fn success(self, program: &str) -> Result<Output, CommandError> {
        if self.status == 0 {
            Ok(self)
        } else {
            Err(CommandError::Failed {
                program: program.to_string(),
                status: self.status,
                stderr: self.stderr.trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool's group is killed only while the tool is an unreaped child of ours (running or
    /// ended): once something else has reaped it, its group id may be another process's.
    #[test]
    fn a_tool_reaped_elsewhere_leaves_its_group_id_alone() {
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let leader = Pid::from_raw(child.id() as i32);
        assert!(still_ours(leader), "a running tool");
        nix::sys::signal::kill(leader, Signal::SIGKILL).unwrap();
        // Ended, not yet reaped: its ids are still reserved.
        let until = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{leader}/stat")).exists()
            && !std::fs::read_to_string(format!("/proc/{leader}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
            && Instant::now() < until
        {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(still_ours(leader), "an ended, unreaped tool");
        child.wait().unwrap();
        assert!(!still_ours(leader), "a reaped tool taken for ours");
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = run("dmheal-no-such-tool", &[], Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(matches!(err, CommandError::NotFound { .. }));
    }

    #[test]
    fn slow_program_is_killed_at_the_deadline() {
        let start = Instant::now();
        let err = run("sleep", &["5"], Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(matches!(err, CommandError::Timeout { .. }));
        assert!(start.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn failure_keeps_stderr() {
        let out = run(
            "sh",
            &["-c", "echo oops >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap();
        let err = out.success("sh").err().unwrap();
        assert_eq!(err.to_string(), "sh exited with status 3: oops");
    }

    #[test]
    fn a_tool_that_exits_while_its_child_holds_stdout_is_done_at_once() {
        // tap-ctl-like: prints, leaves a child holding stdout for a minute, exits 0.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "sleep 60 & echo $! > {}; echo pid=7 minor=0; exit 0",
            pidfile.display()
        );
        let start = Instant::now();
        let out = run("sh", &["-c", &script], Duration::from_secs(10)).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(out.status, 0);
        assert_eq!(out.stdout.trim(), "pid=7 minor=0");
        // The straggler went with the group.
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = exits_soon(pid);
        assert!(gone, "the child holding stdout is still alive");
    }

    /// Whether process `pid` is gone (or a zombie) within two seconds.
    fn exits_soon(pid: i32) -> bool {
        (0..200).any(|_| {
            thread::sleep(Duration::from_millis(10));
            nix::sys::signal::kill(Pid::from_raw(pid), None).is_err()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        })
    }

    #[test]
    fn a_started_tool_runs_meanwhile_and_one_given_up_on_is_killed_with_its_group() {
        // Collected after other work: its output is all there — even when that work took
        // longer than the tool's deadline, since the tool was done well within it.
        let t = start("sh", &["-c", "echo listed"], Duration::from_millis(300)).unwrap();
        thread::sleep(Duration::from_millis(600));
        assert_eq!(t.finish().unwrap().stdout, "listed\n");
        // Dropped unfinished (the caller returned early): the tool and its children go.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let t = start("sh", &["-c", &script], Duration::from_secs(60)).unwrap();
        let pid = (0..500)
            .find_map(|_| {
                thread::sleep(Duration::from_millis(10));
                std::fs::read_to_string(&pidfile)
                    .ok()?
                    .trim()
                    .parse::<i32>()
                    .ok()
            })
            .expect("the tool started its child");
        drop(t);
        let gone = exits_soon(pid);
        assert!(gone, "a tool given up on outlived its caller's interest");
    }

    #[test]
    fn a_deadline_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let err = run("sh", &["-c", &script], Duration::from_millis(300))
            .err()
            .unwrap();
        assert!(matches!(err, CommandError::Timeout { .. }));
        assert!(start.elapsed() < Duration::from_secs(3));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = exits_soon(pid);
        assert!(gone, "the grandchild survived the deadline");
    }

    #[test]
    fn large_output_is_read_whole() {
        let out = run("sh", &["-c", "seq 1 200000"], Duration::from_secs(20)).unwrap();
        assert_eq!(out.stdout.lines().count(), 200000);
    }

    #[test]
    fn output_past_the_limit_is_an_error_not_a_cut_answer() {
        // 64 MiB of lines, then the line that matters: never parsed without it.
        let script = "head -c 67108864 /dev/zero | tr '\\0' x; echo; echo the-last-line";
        match run("sh", &["-c", script], Duration::from_secs(60)) {
            Err(CommandError::TooMuchOutput { limit, .. }) => assert_eq!(limit, MAX_OUTPUT),
            other => panic!("{:?}", other.map(|o| o.stdout.len())),
        }
    }
}
