//! Runs a parsed command line: calls the operation, prints JSON or tables, picks the exit code.

use std::time::Duration;

use serde::Serialize;

use crate::cli::{parse_id, Cli, Command, PoolCommand};
use crate::config::{Config, Overrides};
use crate::error::{Error, Result};
use crate::exit_codes::Exit;
use crate::heal;
use crate::ids::Target;
use crate::ops::{self, Host};
use crate::render;

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        // Streamed: a scan of thousands of mappings is never held twice in memory.
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
        let _ = serde_json::to_writer_pretty(&mut out, value)
            .and_then(|_| writeln!(out).map_err(serde_json::Error::io));
        let _ = out.flush();
    } else {
        print!("{}", human(value));
    }
}

/// A scan as JSON, each mapping written as soon as it is decided (one per line), the summary
/// after them: the same object `Scan` serialises to, without holding every mapping at once.
fn scan_json(host: &Host) -> Result<ops::ScanSummary> {
    use std::io::Write;
    let io = |e: std::io::Error| Error::Io("writing the scan".into(), e);
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    out.write_all(b"{\"mappings\": [").map_err(io)?;
    let mut first = true;
    let summary = host.scan_each(&mut |m| {
        out.write_all(if first { b"\n" } else { b",\n" })
            .and_then(|_| serde_json::to_writer(&mut out, &m).map_err(std::io::Error::from))
            .map_err(io)?;
        first = false;
        Ok(())
    })?;
    let tail = serde_json::to_string(&summary).expect("a summary always serialises");
    // `{"counts":...}` continues the object: drop its opening brace.
    write!(out, "\n],\n{}\n", &tail[1..])
        .and_then(|_| out.flush())
        .map_err(io)?;
    Ok(summary)
}

pub fn config_of(cli: &Cli) -> Result<Config> {
    Config::resolve(Overrides {
        journal: cli.journal.clone(),
        lock_timeout: cli.lock_timeout.map(Duration::from_secs_f64),
        tool_timeout: cli.tool_timeout.map(Duration::from_secs_f64),
        in_sm_process: false,
        activating: cli.activating,
        xapi: cli.xapi.clone(),
        xapi_ca: cli.xapi_ca.clone(),
        xapi_session: cli.xapi_session.clone(),
        host_uuid: cli.host_uuid.clone(),
        lvm_reader: cli.lvm_reader,
        budget: None,
    })
}

pub fn run(cli: &Cli) -> Result<Exit> {
    let config = config_of(cli)?;
    match &cli.command {
        Command::Journal => {
            let entries = ops::journal_entries(&config)?;
            print(cli.json, &entries, |e| render::journal(e));
            Ok(Exit::Ok)
        }
        Command::Inspect { target } => {
            let target = Target::parse(target)?;
            let i = Host::open(config)?.inspect(&target)?;
            print(cli.json, &i, render::inspection);
            Ok(Exit::of_verdict(i.verdict))
        }
        Command::Scan => {
            let host = Host::open(config)?;
            let counts = if cli.json {
                scan_json(&host)?.counts
            } else {
                let s = host.scan()?;
                print!("{}", render::scan(&s));
                s.counts
            };
            Ok(if counts.ghost > 0 {
                Exit::GhostFound
            } else if counts.suspicious > 0 {
                Exit::Suspicious
            } else {
                Exit::Ok
            })
        }
        Command::Heal {
            target,
            apply,
            record,
        } => {
            let target = Target::parse(target)?;
            let o = heal::heal(&Host::open(config)?, &target, *apply, *record)?;
            print(cli.json, &o, render::heal);
            Ok(Exit::of_heal(o.action, o.inspection.verdict))
        }
        Command::Hook { args } => hook(cli.json, args),
        Command::Doctor { apply } => {
            let r = crate::doctor::doctor(&config, *apply)?;
            print(cli.json, &r, render::doctor);
            let open = r
                .findings
                .iter()
                .any(|f| f.severity > crate::doctor::Severity::Info);
            Ok(if open && !*apply {
                Exit::GhostFound
            } else {
                Exit::Ok
            })
        }
        Command::Manpage => {
            use clap::CommandFactory;
            let mut out = std::io::stdout();
            clap_mangen::Man::new(Cli::command().name("dmheal"))
                .section("8")
                .render(&mut out)
                .map_err(|e| Error::Io("writing the man page".into(), e))?;
            Ok(Exit::Ok)
        }
        Command::Pool {
            command: PoolCommand::Scan { host_timeout },
        } => {
            let p = crate::pool::pool_scan(&config, Duration::from_secs_f64(*host_timeout))?;
            print(cli.json, &p, render::pool_scan);
            Ok(if p.counts.ghost > 0 {
                Exit::GhostFound
            } else {
                Exit::Ok
            })
        }
        Command::Restore { id } => {
            let id = parse_id(id)?;
            crate::restore::find_removal(&config, id)?;
            let r = crate::restore::restore(&Host::open(config)?, id)?;
            print(cli.json, &r, render::restore);
            Ok(Exit::Ok)
        }
    }
}

/// The exit code of an error.
pub fn exit_of(e: &Error) -> Exit {
    match e {
        Error::Input(_) => Exit::BadInput,
        _ => Exit::Error,
    }
}

/// An error as JSON: `{"error": {"kind": ..., "message": ...}}`.
pub fn error_json(e: &Error) -> String {
    serde_json::json!({"error": {"kind": e.kind(), "message": e.chain()}}).to_string()
}

/// The hook lives in the Python package (it runs inside SM's Python); this forwards to it with
/// the Python named by DMHEAL_PYTHON (default python3).
fn hook(json: bool, args: &[String]) -> Result<Exit> {
    let python = std::env::var("DMHEAL_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = std::process::Command::new(&python);
    cmd.args(["-m", "dmheal.sm_hook"]).args(args);
    if json {
        cmd.arg("--json");
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Io(format!("cannot run {python} -m dmheal.sm_hook"), e))?;
    Ok(if status.success() {
        Exit::Ok
    } else {
        Exit::Error
    })
}
