//! tapdisk's view: `tap-ctl list`. Its non-tty output is one line per tapdisk:
//! `pid=123 minor=0 state=0 args=vhd:/dev/VG_XenStorage-<sr>/VHD-<vdi>` (fields optional).

use std::time::Duration;

use serde::Serialize;

use crate::external_tool::{self, CommandError};

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

/// Parse `tap-ctl list` output: lines of `key=value` fields (pid, minor, state, args; each
/// optional, as tap-ctl prints only what it knows). Anything else — a word that is not a field,
/// an unknown key, a number that is not one — is an error, never "no tapdisk": output dmheal
/// cannot read proves nothing about what tapdisk serves.
pub fn parse(text: &str) -> Result<Vec<Tapdisk>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| {
            format!(
                "line {}: {why}: {:?}",
                n + 1,
                line.escape_default().to_string()
            )
        };
        let mut t = Tapdisk {
            pid: None,
            minor: None,
            state: None,
            kind: None,
            path: None,
        };
        for field in line.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                return Err(bad(format!("{field:?} is not a key=value field")));
            };
            let number = || {
                parse_number(value).ok_or_else(|| bad(format!("{key}={value:?} is not a number")))
            };
            match key {
                "pid" => t.pid = Some(number()?),
                "minor" => t.minor = Some(number()?),
                "state" => t.state = Some(number()?),
                "args" => {
                    let (kind, path) = value.split_once(':').unwrap_or(("", value));
                    t.kind = Some(kind.to_string()).filter(|k| !k.is_empty());
                    t.path = Some(path.to_string());
                }
                _ => return Err(bad(format!("unknown field {key:?}"))),
            }
        }
        out.push(t);
    }
    Ok(out)
}

/// Run `tap-ctl list`.
pub fn list(program: &str, timeout: Duration) -> TapdiskView {
    collect(program, start(program, timeout))
}

/// `tap-ctl list` started, to run while other layers are read (`collect` it after).
pub fn start(program: &str, timeout: Duration) -> Result<external_tool::Running, CommandError> {
    external_tool::start(program, &["list"], timeout)
}

/// What a started `tap-ctl list` says.
pub fn collect(
    program: &str,
    started: Result<external_tool::Running, CommandError>,
) -> TapdiskView {
    match started
        .and_then(external_tool::Running::finish)
        .and_then(|o| o.success(program))
    {
        Ok(out) => match parse(&out.stdout) {
            Ok(tapdisks) => TapdiskView::Listed { tapdisks },
            Err(why) => TapdiskView::Failed {
                why: format!("{program} list printed output dmheal cannot read ({why})"),
            },
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
        let t = parse(text).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].pid, Some(1234));
        assert!(!t[0].paused());
        assert_eq!(t[0].path.as_deref(), Some("/dev/VG_XenStorage-a/VHD-b"));
        assert_eq!(t[1].kind.as_deref(), Some("vhd"));
        assert!(t[1].paused());
        assert_eq!(t[2].path, None);
    }

    #[test]
    fn output_that_cannot_be_read_is_an_error_not_an_empty_list() {
        for bad in [
            "Error: no such thing\n",
            "pid=12 minor=x\n",
            "tapdisk 1234 0 0 vhd /dev/x\n",
            "pid=1 colour=blue\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("\n  \n").unwrap(), vec![]);
    }

    #[test]
    fn a_tap_ctl_that_prints_nonsense_is_a_failed_layer() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tap-ctl");
        std::fs::write(&tool, "#!/bin/sh\necho 'garbage from a newer tap-ctl'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            list(tool.to_str().unwrap(), Duration::from_secs(5)),
            TapdiskView::Failed { .. }
        ));
    }

    #[test]
    fn missing_tool_is_not_an_error() {
        assert_eq!(
            list("dmheal-no-tap-ctl", Duration::from_secs(1)),
            TapdiskView::NotInstalled
        );
    }
}
