//! Log set-up: tracing to stderr. The `tracing-log` bridge carries the devicemapper crate's
//! `log` records (its EBUSY retries among them) into the same stream.

use tracing_subscriber::EnvFilter;

/// `verbose`: 0 warnings, 1 info, 2 debug, 3+ trace. `RUST_LOG` wins when set.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A log line first clears a progress line, so neither is written into the other.
        .with_writer(|| {
            crate::progress::clear_line();
            std::io::stderr()
        })
        .with_target(false)
        .try_init();
}

/// Debug timings of a long operation: milliseconds and minor page faults since it began, per
/// phase. Faults are worth logging: in the user-mode kernel the benchmarks run in, a first
/// touch of a page costs as much as a hundred-odd system calls.
pub struct Stopwatch {
    start: std::time::Instant,
    faults: u64,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            start: std::time::Instant::now(),
            faults: minor_faults(),
        }
    }

    /// Logs `what` with the time and faults so far (debug level; free when it is off).
    pub fn lap(&self, what: &str) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                ms = self.start.elapsed().as_millis() as u64,
                faults = minor_faults().saturating_sub(self.faults),
                "{what}"
            );
        }
    }
}

fn minor_faults() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u.minor_page_faults() as u64)
}
