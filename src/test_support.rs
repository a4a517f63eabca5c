//! Fixtures the unit tests share: a mapping's kernel state, and a host configuration whose `lvs`
//! is a stand-in script printing given records (the rest points at empty scratch paths).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::{Config, Overrides};
use crate::dm::{DmStatus, TableLine};

/// An unsuspended mapping with a live table and `open_count` opens.
pub fn status(open_count: i32) -> DmStatus {
    DmStatus {
        open_count,
        event_nr: 0,
        suspended: false,
        read_only: false,
        live_table: true,
        inactive_table: false,
        deferred_remove: false,
    }
}

/// One linear segment of `length` sectors on 98:0 (the user-mode kernel's first ubd disk).
pub fn linear_table(length: u64) -> Vec<TableLine> {
    vec![TableLine {
        start: 0,
        length,
        target: "linear".into(),
        params: "98:0 2048".into(),
    }]
}

/// A configuration for `dir`: journal, refcounts, sysfs and locks there, no xapi, no tap-ctl,
/// and an `lvs` that prints `lv_records` (JSON objects, comma-separated) as its report.
pub fn config(dir: &Path, lv_records: &str) -> Config {
    let lvs = dir.join("lvs");
    std::fs::write(
        &lvs,
        format!("#!/bin/sh\ncat <<'EOF'\n{{\"report\":[{{\"lv\":[{lv_records}]}}]}}\nEOF\n"),
    )
    .unwrap();
    std::fs::set_permissions(&lvs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = Config::resolve(Overrides {
        journal: Some(dir.join("journal.jsonl")),
        xapi: Some("none".into()),
        ..Default::default()
    })
    .unwrap();
    config.lvs_program = lvs.to_string_lossy().into_owned();
    config.tap_ctl = "dmheal-no-tap-ctl".into();
    config.refcount_dir = dir.join("refcount");
    config.sys_root = dir.join("sys");
    config.fairlock_socket = dir.join("no-fairlock");
    config.legacy_lock = dir.join("no-sm/lvm");
    config
}
