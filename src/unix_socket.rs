//! Connecting to a local unix stream socket (xapi's, SM's Fairlock servers) without ever
//! blocking in connect(): when a listener's queue is full, a blocking connect() waits with no
//! deadline, and a hook inside a VM start must not.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a full listen queue is tried again.
const RETRY: Duration = Duration::from_millis(20);

/// One non-blocking connection attempt: EAGAIN when the listener's queue is full,
/// ECONNREFUSED when nothing listens. The stream returned is non-blocking.
pub fn connect_nonblocking(path: &Path) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(path)?)?;
    Ok(UnixStream::from(fd))
}

/// A blocking stream connected to `path` by `deadline`: a full queue is retried until then
/// (then `TimedOut`); any other failure, such as nothing listening, is returned at once.
pub fn connect_until(path: &Path, deadline: Instant) -> std::io::Result<UnixStream> {
    loop {
        match connect_nonblocking(path) {
            Ok(s) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("{}: the listener's queue stayed full", path.display()),
                    ));
                }
                std::thread::sleep(left.min(RETRY));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_listen_queue_costs_the_deadline_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        // A listener with a backlog of 0 that never accepts: its queue fills at once.
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        nix::sys::socket::listen(&l, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
        let mut held = Vec::new();
        let start = Instant::now();
        let err = loop {
            match connect_until(&path, Instant::now() + Duration::from_millis(300)) {
                Ok(s) => held.push(s),
                Err(e) => break e,
            }
            assert!(held.len() < 64, "the queue never filled");
        };
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        // Nothing listening is said at once.
        drop(l);
        std::fs::remove_file(&path).unwrap();
        let refused = connect_until(&path, Instant::now() + Duration::from_secs(60)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::NotFound, "{refused}");
    }
}
