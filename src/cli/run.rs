//! Runs a parsed command line. The operations of the contract become a `contract::Request`
//! (built from the flags, checked by the contract exactly as a JSON request is) and go through
//! `execute`; the rest (pool scan, hook, man page, call, contract) are the CLI's own.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Cli, Command, PoolCommand};
use crate::config::Overrides;
use crate::context::OpContext;
use crate::contract::{self, Request};
use crate::error::{Error, Result};
use crate::execute;
use crate::exit_codes::Exit;
use crate::results::ScanSummary;

/// What only an operator sets, from the global flags (and their environment variables).
pub fn operator_settings(cli: &Cli) -> Overrides {
    Overrides {
        xapi: cli.xapi.clone(),
        xapi_ca: cli.xapi_ca.clone(),
        host_uuid: cli.host_uuid.clone(),
        lvm_reader: cli.lvm_reader,
        ..Default::default()
    }
}

/// The contract's request for a subcommand that is one of its operations.
pub fn request_of(cli: &Cli) -> Result<Option<Request>> {
    let mut m = Map::new();
    let (op, specific): (&str, Vec<(&str, Value)>) = match &cli.command {
        Command::Inspect { target } => ("inspect", vec![("target", json!(target))]),
        Command::Scan => ("scan", vec![]),
        Command::Heal {
            all: true,
            apply,
            budget,
            ..
        } => (
            "heal_all",
            vec![
                ("apply", json!(apply)),
                ("budget", seconds("budget", *budget)?),
            ],
        ),
        Command::Heal {
            target,
            apply,
            record,
            activating,
            budget,
            ..
        } => (
            "heal",
            vec![
                ("target", json!(target)),
                ("apply", json!(apply)),
                ("record", json!(record)),
                ("activating", json!(activating)),
                ("budget", seconds("budget", *budget)?),
            ],
        ),
        Command::Journal => ("journal", vec![]),
        Command::Restore { id } => ("restore", vec![("id", json!(id))]),
        Command::Doctor {
            apply,
            host_timeout,
        } => (
            "doctor",
            vec![
                ("apply", json!(apply)),
                ("host_timeout", seconds("host-timeout", *host_timeout)?),
            ],
        ),
        Command::Survey => ("survey", vec![]),
        Command::Vm {
            vm,
            apply,
            host_timeout,
        } => (
            "vm",
            vec![
                ("vm", json!(vm)),
                ("apply", json!(apply)),
                ("host_timeout", seconds("host-timeout", *host_timeout)?),
            ],
        ),
        Command::Volumes { vdis, domid } => (
            "volumes",
            vec![("vdis", json!(vdis)), ("domid", json!(domid))],
        ),
        _ => return Ok(None),
    };
    m.insert("op".into(), json!(op));
    for (k, v) in specific {
        m.insert(k.into(), v);
    }
    let common = [
        (
            "journal",
            json!(cli.journal.as_ref().map(|p| p.to_string_lossy())),
        ),
        ("lock_timeout", seconds("lock-timeout", cli.lock_timeout)?),
        ("tool_timeout", seconds("tool-timeout", cli.tool_timeout)?),
        ("xapi_session", json!(cli.xapi_session)),
    ];
    for (k, v) in common {
        m.insert(k.into(), v);
    }
    Ok(Some(Request::from_map(&m)?))
}

/// A number of seconds from a flag, as the contract's JSON number. NaN and infinities have no
/// JSON form (serde_json would make them null: "not given"), so they are bad input here.
fn seconds(flag: &str, v: Option<f64>) -> Result<Value> {
    match v {
        None => Ok(Value::Null),
        Some(v) => serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| {
                crate::error::InputError::BadValue {
                    name: format!("--{flag}"),
                    why: format!(
                        "{v} is not a number of seconds from 0 to {}",
                        contract::MAX_SECONDS
                    ),
                }
                .into()
            }),
    }
}

fn print_json(value: &impl serde::Serialize) {
    // Streamed: a scan of thousands of mappings is never held twice in memory.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
        .and_then(|_| out.flush());
    unwritten(written);
}

/// An answer for a terminal, printed; see `unwritten`.
fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    unwritten(out.write_all(text.as_bytes()).and_then(|_| out.flush()));
}

/// An answer stdout would not take (a full disk, a reader gone) is said on stderr; what was
/// done stays done, and the exit code is still the operation's.
fn unwritten(written: std::io::Result<()>) {
    if let Err(e) = written {
        eprintln!("dmheal: error: the answer could not be written to stdout: {e}");
    }
}

/// A scan as JSON, each mapping written as soon as it is decided (one per line), the summary
/// after them: the same object `Scan` serialises to, without holding every mapping at once.
fn scan_json(host: &OpContext) -> Result<ScanSummary> {
    let io = |e: std::io::Error| Error::Io("writing the scan".into(), e);
    // Megabytes of JSON, straight to the descriptor in 256 KiB writes: through stdout's own
    // line buffering each block would go out as two writes, split at its last newline.
    let stdout = std::os::fd::AsFd::as_fd(&std::io::stdout())
        .try_clone_to_owned()
        .map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(256 << 10, std::fs::File::from(stdout));
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

pub fn run(cli: &Cli) -> Result<Exit> {
    let base = operator_settings(cli);
    // On stderr, so JSON on stdout is untouched; shown only when stderr is a terminal.
    crate::progress::enable(cli.quiet);
    if let Some(req) = request_of(cli)? {
        if matches!(req.call, contract::Call::Scan) {
            let host = OpContext::open(execute::config_for(&req, base)?)?;
            if cli.json {
                let summary = scan_json(&host)?;
                return Ok(Exit::of_scan(&summary.counts));
            }
            // The table lists what needs a look; healthy mappings are counted (--json lists
            // every one), so forty ghosts are not lost among five thousand rows.
            let scan = host.scan_keeping(&|m| m.verdict != crate::verdict::Verdict::Healthy)?;
            print_text(&crate::render::terminal_safe(&crate::render::scan(&scan)));
            return Ok(Exit::of_scan(&scan.counts));
        }
        let answer = execute::execute(&req, base, false)?;
        if cli.json {
            print_json(&answer);
        } else {
            print_text(&crate::render::terminal_safe(&answer.render()));
        }
        return Ok(answer.exit());
    }
    match &cli.command {
        Command::Call => call(),
        Command::Contract => {
            print_json(&contract::describe());
            Ok(Exit::Ok)
        }
        Command::Hook { args } => hook(cli.json, args),
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
            let config = crate::config::Config::resolve(Overrides {
                journal: cli.journal.clone(),
                xapi_session: cli.xapi_session.clone(),
                ..base
            })?;
            let p = crate::pool::pool_scan(&config, Duration::from_secs_f64(*host_timeout))?;
            if cli.json {
                print_json(&p);
            } else {
                print_text(&crate::render::terminal_safe(&crate::render::pool_scan(&p)));
            }
            Ok(Exit::of_pool_scan(&p.counts))
        }
        Command::Pool {
            command:
                PoolCommand::Heal {
                    apply,
                    host_timeout,
                },
        } => {
            let config = crate::config::Config::resolve(Overrides {
                journal: cli.journal.clone(),
                xapi_session: cli.xapi_session.clone(),
                ..base
            })?;
            let p =
                crate::pool::pool_heal(&config, *apply, Duration::from_secs_f64(*host_timeout))?;
            if cli.json {
                print_json(&p);
            } else {
                print_text(&crate::render::terminal_safe(&crate::render::pool_heal(&p)));
            }
            Ok(Exit::of_pool_heal(&p))
        }
        other => unreachable!("{other:?} is an operation of the contract"),
    }
}

/// The largest request `dmheal call` reads.
const MAX_REQUEST: u64 = 1 << 20;

/// `dmheal call`: one JSON request on stdin, one envelope on stdout, whatever happens.
fn call() -> Result<Exit> {
    let mut text = String::new();
    let read = std::io::stdin().take(MAX_REQUEST).read_to_string(&mut text);
    let (envelope, exit) = match read {
        Ok(_) => execute::call(&text, false),
        Err(e) => (
            execute::error_envelope(
                "bad_input",
                &format!("the request is not readable text: {e}"),
            ),
            Exit::BadInput,
        ),
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &envelope)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
        .and_then(|_| out.flush());
    unwritten(written);
    Ok(exit)
}

/// The exit code of an error.
pub fn exit_of(e: &Error) -> Exit {
    Exit::of_error(e)
}

/// An error as JSON: `{"error": {"kind": ..., "message": ...}}`.
pub fn error_json(e: &Error) -> String {
    execute::error_json(e)
}

/// Where the RPM puts the Python package: outside every interpreter's own site-packages, so
/// that one package serves the Python SM runs on, whichever it is.
const PACKAGE_DIR: &str = "/usr/lib/dmheal/python";
/// SM's LVHD driver: its first line names the Python SM runs on.
const SM_DRIVER: &str = "/opt/xensource/sm/LVMSR";

/// The hook lives in the Python package (it runs inside SM's Python); this runs it with the
/// Python SM runs on — DMHEAL_PYTHON, else the interpreter SM's driver names (2.7 on Citrix
/// Hypervisor 8.2, python3 on 8.3 / 8.4), else python3 — with the RPM's package directory on
/// its path. `-c`, not `-m`: with the hook installed the module is imported at start-up, and
/// runpy would warn that it is already in sys.modules.
fn hook(json: bool, args: &[String]) -> Result<Exit> {
    let python = std::env::var("DMHEAL_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| interpreter_of(std::path::Path::new(SM_DRIVER)))
        .unwrap_or_else(|| "python3".into());
    let mut cmd = std::process::Command::new(&python);
    cmd.args([
        "-c",
        "import sys; import dmheal.hook_install as h; sys.exit(h.main(sys.argv[1:]))",
    ])
    .args(args);
    if json {
        cmd.arg("--json");
    }
    if std::path::Path::new(PACKAGE_DIR).is_dir() {
        let path = match std::env::var("PYTHONPATH") {
            Ok(p) if !p.is_empty() => format!("{PACKAGE_DIR}:{p}"),
            _ => PACKAGE_DIR.to_string(),
        };
        cmd.env("PYTHONPATH", path);
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Io(format!("cannot run {python} for dmheal.hook_install"), e))?;
    Ok(Exit::of_hook(status))
}

/// The interpreter a script's `#!` line names (`/usr/bin/env python3` gives `python3`).
fn interpreter_of(script: &std::path::Path) -> Option<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(script).ok()?;
    let mut first = String::new();
    std::io::BufReader::new(file).read_line(&mut first).ok()?;
    let words: Vec<&str> = first.strip_prefix("#!")?.split_whitespace().collect();
    let python = match words.as_slice() {
        [env, program, ..] if env.ends_with("/env") => *program,
        [program, ..] => *program,
        [] => return None,
    };
    python.contains("python").then(|| python.to_string())
}

#[cfg(test)]
mod tests {
    //! The CLI and a JSON request reach the same `Request` for every parameter the contract
    //! lists: a flag added to one and not the other fails here.
    use super::*;

    #[test]
    fn sms_interpreter_is_read_from_its_drivers_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("LVMSR");
        for (line, want) in [
            ("#!/usr/bin/python\n", Some("/usr/bin/python")),
            ("#!/usr/bin/python3\n", Some("/usr/bin/python3")),
            ("#!/usr/bin/env python3\n", Some("python3")),
            ("#!/bin/sh\n", None),
            ("import x\n", None),
        ] {
            std::fs::write(&script, line).unwrap();
            assert_eq!(interpreter_of(&script).as_deref(), want, "{line}");
        }
        assert_eq!(interpreter_of(&dir.path().join("none")), None);
    }
    use clap::Parser;

    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    /// A sample value per kind: the CLI argument(s) and the JSON value.
    fn sample(kind: contract::Kind) -> (Option<&'static str>, Value) {
        use contract::Kind::*;
        match kind {
            Bool => (None, json!(true)),
            Seconds => (Some("7.5"), json!(7.5)),
            Path => (Some("/run/dmheal/j.jsonl"), json!("/run/dmheal/j.jsonl")),
            Text => (Some("OpaqueRef:s"), json!("OpaqueRef:s")),
            Target => (Some(VDI), json!(VDI)),
            EntryId => (Some("4"), json!("4")),
            Vm => (Some("S-Domino"), json!("S-Domino")),
            VdiList => (Some(VDI), json!(VDI)),
            DomId => (Some("7"), json!("7")),
        }
    }

    #[test]
    fn every_contract_parameter_is_a_cli_flag_with_the_same_meaning() {
        for op in contract::OPERATIONS {
            for p in op.all_params() {
                if p.positional || p.name == "in_sm_process" {
                    continue; // positional: given in every argv below; in_sm_process: in-process only
                }
                // heal_all is `heal --all` on the command line.
                let words: &[&str] = match op.name {
                    "heal_all" => &["heal", "--all"],
                    name => &[name][..],
                };
                let mut argv = vec!["dmheal".to_string()];
                argv.extend(words.iter().map(|w| w.to_string()));
                let mut json_req = Map::new();
                json_req.insert("op".into(), json!(op.name));
                for q in op.params.iter().filter(|q| q.positional) {
                    let (cli_value, v) = sample(q.kind);
                    argv.push(cli_value.unwrap().into());
                    json_req.insert(q.name.into(), v);
                }
                let (cli_value, v) = sample(p.kind);
                argv.push(format!("--{}", p.name.replace('_', "-")));
                if let Some(c) = cli_value {
                    argv.push(c.into());
                }
                json_req.insert(p.name.into(), v);
                let cli = Cli::try_parse_from(&argv)
                    .unwrap_or_else(|e| panic!("{argv:?}: the CLI has no such flag: {e}"));
                let from_cli = request_of(&cli).unwrap().unwrap();
                let from_json = Request::from_map(&json_req).unwrap();
                assert_eq!(from_cli, from_json, "{argv:?}");
                assert_ne!(
                    from_json,
                    Request::from_map(&{
                        let mut m = json_req.clone();
                        m.remove(p.name);
                        m
                    })
                    .unwrap(),
                    "{}.{} changes nothing",
                    op.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn every_cli_operation_is_in_the_contract() {
        use clap::CommandFactory;
        let own = ["pool", "hook", "manpage", "call", "contract", "help"];
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            assert!(
                own.contains(&name) || contract::operation(name).is_some(),
                "{name} is neither an operation of the contract nor the CLI's own"
            );
        }
    }

    #[test]
    fn seconds_with_no_json_form_are_bad_input_not_absent() {
        for v in ["nan", "NaN", "inf", "-inf", "infinity"] {
            for flag in ["--budget", "--lock-timeout", "--tool-timeout"] {
                let arg = format!("{flag}={v}");
                let cli = Cli::try_parse_from(["dmheal", "heal", VDI, "--apply", &arg]).unwrap();
                let e = request_of(&cli).unwrap_err();
                assert_eq!(Exit::of_error(&e), Exit::BadInput, "{flag} {v}: {e}");
            }
        }
        let cli = Cli::try_parse_from(["dmheal", "vm", "x", "--host-timeout", "nan"]).unwrap();
        assert!(request_of(&cli).is_err());
    }
}
