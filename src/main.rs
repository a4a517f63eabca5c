//! `dmheal`: a thin main. Parse, run, print the error chain once, map it to an exit code.

use std::process::ExitCode;

use clap::Parser;

use dmheal::app;
use dmheal::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    dmheal::logging::init(cli.verbose);
    match app::run(&cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            if cli.json {
                println!("{}", app::error_json(&e));
            }
            eprintln!("dmheal: error: {}", e.chain());
            app::exit_of(&e).into()
        }
    }
}
