//! The floor a host scan is measured against (BENCHMARKS.md): one DM_LIST_DEVICES with uuids,
//! dmheal's own `dm::list`, and nothing else. Prints `{"mappings": n, "seconds": t}` for the
//! call alone; the benchmark times the whole process too (a scan is one process).
//!
//! usage: dm_list

use std::time::Instant;

use dmheal::dm::{DeviceMapper, KernelDm};

fn main() {
    let dm = KernelDm::open().unwrap_or_else(|e| {
        eprintln!("dm_list: {e}");
        std::process::exit(1)
    });
    let started = Instant::now();
    let listed = dm.list().unwrap_or_else(|e| {
        eprintln!("dm_list: {e}");
        std::process::exit(1)
    });
    let seconds = started.elapsed().as_secs_f64();
    println!("{{\"mappings\": {}, \"seconds\": {seconds}}}", listed.len());
}
