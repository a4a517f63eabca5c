//! Telling the pool what dmheal did or found: a xapi message on the VDI (`message.create`), so
//! XenCenter's notifications and `xe message-list` show it beside xapi's own. XenCenter shows
//! a message of a name it does not know as a generic alert: its title is the name, its text
//! the body. Priorities as XenCenter reads them: 3 warning, 5 information.
//!
//! Rate-limited, so a scan every few minutes does not flood the pool: one message per name and
//! VDI per interval (a state file beside the journal, updated under a lock), and at most
//! `MAX_PER_RUN` per run. Best effort: a message that cannot be sent is logged, never an error
//! of the operation that found or healed the ghost.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::Xapi;

/// A ghost was removed (by the SM hook, a heal, `dmheal vm --apply`).
pub const GHOST_REMOVED: &str = "DMHEAL_GHOST_REMOVED";
/// A scan found a ghost that blocks the VDI's activation on a host.
pub const GHOST_FOUND: &str = "DMHEAL_GHOST_FOUND";

/// XenCenter's priorities (1 critical ... 5 information).
pub const PRIORITY_WARNING: i64 = 3;
pub const PRIORITY_INFO: i64 = 5;

/// The most messages one run creates (the rest are logged).
pub const MAX_PER_RUN: usize = 10;

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub name: &'static str,
    pub priority: i64,
    pub vdi_uuid: String,
    pub body: String,
}

impl Message {
    /// How long the same message about the same VDI is not sent again.
    fn interval(&self) -> Duration {
        match self.name {
            GHOST_REMOVED => Duration::from_secs(3600),
            _ => Duration::from_secs(24 * 3600),
        }
    }
}

/// The state file: when each (name, VDI) was last sent, seconds since the epoch.
pub fn state_path(journal: &Path) -> PathBuf {
    journal.with_file_name("messages.json")
}

/// Send what the rate limit allows by `deadline`; returns the messages sent. `client`: a
/// session on xapi. Nothing here waits past the deadline: the state file is never waited for
/// (another run holding it means this one sends nothing), and each call gets what is left.
pub fn send(client: &Xapi, state: &Path, messages: &[Message], deadline: Instant) -> Vec<Message> {
    let due = match claim(state, messages, SystemTime::now()) {
        Ok(due) => due,
        Err(e) => {
            // Without the state no limit can be kept: send nothing rather than flood.
            tracing::warn!(
                "xapi messages not sent: {} cannot be used: {e}",
                state.display()
            );
            return Vec::new();
        }
    };
    let mut sent = Vec::new();
    for m in due {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(vdi = %m.vdi_uuid, "xapi message {} not created: out of time", m.name);
            continue;
        }
        let r: Result<String, _> = client.call_within(
            "message.create",
            vec![
                json!(m.name),
                json!(m.priority),
                json!("VDI"),
                json!(m.vdi_uuid),
                json!(m.body),
            ],
            left,
        );
        match r {
            Ok(_) => sent.push(m),
            Err(e) => tracing::warn!(
                vdi = %m.vdi_uuid,
                "xapi message {} not created: {}",
                m.name,
                e.chain()
            ),
        }
    }
    sent
}

/// Which of `messages` are due at `now`, recorded as sent (under an exclusive lock on the state
/// file, so concurrent runs do not both send). At most MAX_PER_RUN. The state file is trusted
/// as the journal beside it is (a regular file of ours, no symlink, no FIFO); a lock held by
/// another run is not waited for.
fn claim(state: &Path, messages: &[Message], now: SystemTime) -> std::io::Result<Vec<Message>> {
    let mut file = crate::trusted_file::open_trusted_beside(state)?;
    let _lock = nix::fcntl::Flock::lock(
        file.try_clone()?,
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| match e {
        nix::errno::Errno::EWOULDBLOCK => std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another dmheal run is updating it",
        ),
        e => std::io::Error::from(e),
    })?;
    let mut text = String::new();
    // Bounded: a state of more than a megabyte is not one dmheal wrote.
    (&mut file).take(1 << 20).read_to_string(&mut text)?;
    // An unreadable state (torn by a crash) starts afresh: at worst one message is repeated.
    let mut sent: BTreeMap<String, u64> = serde_json::from_str(&text).unwrap_or_default();
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Forget what no longer limits anything, and any time in the future (a clock that was
    // wrong once must not silence a VDI until that date).
    sent.retain(|_, t| *t <= now_s && now_s - *t < 7 * 24 * 3600);
    let mut due = Vec::new();
    for m in messages {
        let key = format!("{}:{}", m.name, m.vdi_uuid);
        let recent = sent
            .get(&key)
            .is_some_and(|t| now_s.saturating_sub(*t) < m.interval().as_secs());
        if recent || due.len() >= MAX_PER_RUN || due.contains(m) {
            continue;
        }
        sent.insert(key, now_s);
        due.push(m.clone());
    }
    if messages.len() > due.len() {
        tracing::info!(
            "{} xapi message(s) not sent: sent recently, or over {MAX_PER_RUN} in one run",
            messages.len() - due.len()
        );
    }
    write_state(&mut file, &sent)?;
    Ok(due)
}

fn write_state(file: &mut File, sent: &BTreeMap<String, u64>) -> std::io::Result<()> {
    let text = serde_json::to_string(sent).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &'static str, vdi: &str) -> Message {
        Message {
            name,
            priority: PRIORITY_WARNING,
            vdi_uuid: vdi.into(),
            body: "b".into(),
        }
    }

    #[test]
    fn the_same_message_is_not_sent_again_within_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("messages.json");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let found = m(GHOST_FOUND, "v1");
        assert_eq!(
            claim(&state, std::slice::from_ref(&found), t0)
                .unwrap()
                .len(),
            1
        );
        assert!(claim(
            &state,
            std::slice::from_ref(&found),
            t0 + Duration::from_secs(3600)
        )
        .unwrap()
        .is_empty());
        // Another VDI, or another name, is its own message.
        assert_eq!(
            claim(&state, &[m(GHOST_FOUND, "v2"), m(GHOST_REMOVED, "v1")], t0)
                .unwrap()
                .len(),
            2
        );
        // A day later it is due again.
        let later = t0 + Duration::from_secs(24 * 3600 + 1);
        assert_eq!(claim(&state, &[found], later).unwrap().len(), 1);
    }

    #[test]
    fn one_run_sends_at_most_its_share_and_a_torn_state_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("messages.json");
        std::fs::write(&state, "{\"torn").unwrap();
        let many: Vec<Message> = (0..25).map(|i| m(GHOST_FOUND, &format!("v{i}"))).collect();
        let now = SystemTime::now();
        assert_eq!(claim(&state, &many, now).unwrap().len(), MAX_PER_RUN);
        // The next run sends the next ones.
        assert_eq!(claim(&state, &many, now).unwrap().len(), MAX_PER_RUN);
    }

    #[test]
    fn a_time_in_the_future_does_not_silence_a_vdi() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("messages.json");
        // Left by a clock set to 2100 once, then fixed.
        std::fs::write(&state, format!("{{\"{GHOST_FOUND}:v1\":4102444800}}")).unwrap();
        assert_eq!(
            claim(&state, &[m(GHOST_FOUND, "v1")], SystemTime::now())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_state_file_that_is_not_ours_or_is_locked_sends_nothing_and_waits_for_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let state = dir.path().join("messages.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, &state).unwrap();
        assert!(claim(&state, &[m(GHOST_FOUND, "v1")], SystemTime::now()).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_file(&state).unwrap();
        // A FIFO is refused without blocking in open.
        nix::unistd::mkfifo(&state, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(claim(&state, &[m(GHOST_FOUND, "v1")], SystemTime::now()).is_err());
        std::fs::remove_file(&state).unwrap();
        // Writable by others: not trusted.
        std::fs::write(&state, "{}").unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(claim(&state, &[m(GHOST_FOUND, "v1")], SystemTime::now()).is_err());
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Held by another run: not waited for.
        let held = nix::fcntl::Flock::lock(
            std::fs::File::open(&state).unwrap(),
            nix::fcntl::FlockArg::LockExclusive,
        )
        .unwrap();
        let e = claim(&state, &[m(GHOST_FOUND, "v1")], SystemTime::now()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        drop(held);
        assert_eq!(
            claim(&state, &[m(GHOST_FOUND, "v1")], SystemTime::now())
                .unwrap()
                .len(),
            1
        );
    }
}
