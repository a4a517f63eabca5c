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
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
