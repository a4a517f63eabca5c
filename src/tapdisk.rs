//! tapdisk's view: `tap-ctl list`. Its non-tty output is one line per tapdisk:
//! `pid=123 minor=0 state=0 args=vhd:/dev/VG_XenStorage-<sr>/VHD-<vdi>` (fields optional).

use std::time::Duration;

use serde::Serialize;

use crate::command::{self, CommandError};

/// tapdisk's "paused" state bit: the device is closed, so an open count of 0 proves nothing.
pub const STATE_PAUSED: u32 = 0x20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tapdisk {
    pub pid: Option<u32>,
    pub minor: Option<u32>,
    pub state: Option<u32>,
    /// Image type, e.g. `vhd` or `aio`.
    pub kind: Option<String>,
    pub path: Option<String>,
}

impl Tapdisk {
    pub fn paused(&self) -> bool {
        self.state.is_some_and(|s| s & STATE_PAUSED != 0)
    }
}

/// What tapdisk told us, or why it told us nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TapdiskView {
    Listed {
        tapdisks: Vec<Tapdisk>,
    },
    /// No tap-ctl on this host: not a XenServer dom0, so no tapdisk can hold anything.
    NotInstalled,
    /// tap-ctl exists but failed: nothing can be proven from this layer.
    Failed {
        why: String,
    },
}

fn parse_number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parse `tap-ctl list` output. Unknown fields are ignored; a line with no field is skipped.
pub fn parse(text: &str) -> Vec<Tapdisk> {
    text.lines()
        .filter_map(|line| {
            let mut t = Tapdisk {
                pid: None,
                minor: None,
                state: None,
                kind: None,
                path: None,
            };
            let mut any = false;
            for field in line.split_whitespace() {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                any = true;
                match key {
                    "pid" => t.pid = parse_number(value),
                    "minor" => t.minor = parse_number(value),
                    "state" => t.state = parse_number(value),
                    "args" => {
                        let (kind, path) = value.split_once(':').unwrap_or(("", value));
                        t.kind = Some(kind.to_string()).filter(|k| !k.is_empty());
                        t.path = Some(path.to_string());
                    }
                    _ => {}
                }
            }
            any.then_some(t)
        })
        .collect()
}

/// Run `tap-ctl list`.
pub fn list(program: &str, timeout: Duration) -> TapdiskView {
    match command::run(program, &["list"], timeout).and_then(|o| o.success(program)) {
        Ok(out) => TapdiskView::Listed {
            tapdisks: parse(&out.stdout),
        },
        Err(CommandError::NotFound { .. }) => TapdiskView::NotInstalled,
        Err(e) => TapdiskView::Failed { why: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_running_and_paused_tapdisks() {
        let text = "pid=1234 minor=0 state=0 args=vhd:/dev/VG_XenStorage-a/VHD-b\n\
                    pid=1300 minor=3 state=0x20 args=vhd:/dev/VG_XenStorage-a/VHD-c\n\
                    pid=1400\n\n";
        let t = parse(text);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].pid, Some(1234));
        assert!(!t[0].paused());
        assert_eq!(t[0].path.as_deref(), Some("/dev/VG_XenStorage-a/VHD-b"));
        assert_eq!(t[1].kind.as_deref(), Some("vhd"));
        assert!(t[1].paused());
        assert_eq!(t[2].path, None);
    }

    #[test]
    fn missing_tool_is_not_an_error() {
        assert_eq!(
            list("dmheal-no-tap-ctl", Duration::from_secs(1)),
            TapdiskView::NotInstalled
        );
    }
}
