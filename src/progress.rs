//! Progress on stderr for work that takes more than a second — mapping n of N, host n of N —
//! when stderr is a terminal and the command line has not said `--quiet`. Nothing otherwise:
//! SMlog, scripts and the native module never see it, and JSON on stdout is untouched. One line, rewritten in place,
//! cleared when the work is done.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// After this long, progress is worth showing.
const AFTER: Duration = Duration::from_secs(1);

struct State {
    started: Instant,
    shown: bool,
}

static ENABLED: Mutex<Option<State>> = Mutex::new(None);

/// Show progress from now on, if stderr is a terminal and not `quiet` (the CLI's choice).
pub fn enable(quiet: bool) {
    if !quiet && std::io::stderr().is_terminal() {
        if let Ok(mut e) = ENABLED.lock() {
            *e = Some(State {
                started: Instant::now(),
                shown: false,
            });
        }
    }
}

/// `what` n of `total` (counting from 1), about `item`; shown once the work has taken a
/// second.
pub fn report(what: &str, n: usize, total: usize, item: &str) {
    let Ok(mut e) = ENABLED.lock() else { return };
    let Some(state) = e.as_mut() else { return };
    if state.started.elapsed() < AFTER {
        return;
    }
    state.shown = true;
    // Long names differ at their end (a DM name's LV part): keep the end.
    // One line of printable text: a name is never a terminal's escape sequence.
    let item: Vec<char> = item
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let item: String = match item.len() {
        n if n > 60 => "..."
            .chars()
            .chain(item[n - 57..].iter().copied())
            .collect(),
        _ => item.into_iter().collect(),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{what} {n} of {total}: {item}");
    let _ = err.flush();
}

/// Clear the progress line if one is shown (before a log line); the next report draws it again.
pub fn clear_line() {
    let Ok(mut e) = ENABLED.lock() else { return };
    if let Some(state) = e.as_mut().filter(|s| s.shown) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
        state.shown = false;
    }
}

/// The work is done: clear the line if one was shown, and start the clock again.
pub fn done() {
    let Ok(mut e) = ENABLED.lock() else { return };
    if let Some(state) = e.as_mut() {
        if state.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
        state.shown = false;
        state.started = Instant::now();
    }
}
