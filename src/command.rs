//! Running the platform's tools (lvs, tap-ctl) as list-argv commands — never a shell — with a
//! deadline, keeping stderr when they fail.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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
    #[error("{program} did not finish within {seconds} s and was killed")]
    Timeout { program: String, seconds: f64 },
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

/// Run `program args...` with a deadline. Non-zero exit is returned as `Output`, not an error,
/// because some tools (lvs) exit non-zero with useful output; use `Output::success` to insist.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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

    // Drain both pipes on their own threads so a chatty tool cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Timeout {
                    program: program.to_string(),
                    seconds: timeout.as_secs_f64(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(source) => {
                return Err(CommandError::Spawn {
                    program: program.to_string(),
                    source,
                })
            }
        }
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    Ok(Output {
        stdout,
        stderr,
        status: status.code().unwrap_or(-1),
    })
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
}
