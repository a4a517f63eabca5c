//! `dmheal`: a thin main. Parse, run, print the error chain once, map it to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use dmheal::cli::{self, Cli};

fn main() -> ExitCode {
    // SIGCHLD ignored by whoever started dmheal (the disposition survives exec) would have the
    // kernel reap every tool dmheal runs before dmheal could read its exit status.
    // SAFETY: sigaction to SIG_DFL installs no handler, and nothing here relies on the
    // disposition it replaces.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGCHLD,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse();
    dmheal::logging::init(cli.verbose);
    match cli::run(&cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            if cli.json {
                // Best effort: when stdout itself failed (a full disk, a reader gone), the
                // error still reaches stderr and the exit code.
                let _ = writeln!(std::io::stdout(), "{}", cli::error_json(&e));
            }
            eprintln!("dmheal: error: {}", e.chain());
            cli::exit_of(&e).into()
        }
    }
}
