//! `dmheal`: a thin main. Parse, run, print the error chain once, map it to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use dmheal::cli::{self, Cli};

fn main() -> ExitCode {
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
