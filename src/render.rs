//! Human output: the layer table the seed incident was diagnosed with
//! (layer | state | what it means), and one line per mapping for a scan.
//!
//! Much of what is shown comes from others: VM, VDI, SR and host names anyone with a xapi
//! role can set, other hosts' answers, DM names. A terminal must show it, never obey it: each
//! such field is shown on one line with its control characters escaped (`one_line`), and the
//! whole text once more on its way out (`terminal_safe`).

use std::fmt::Write;

use crate::heal::HealOutcome;
use crate::journal::{Entry, Event};
use crate::restore::RestoreOutcome;
use crate::results::{Inspection, Scan};

/// Whether a character would steer a terminal or a reader rather than be shown: C0 and C1
/// controls, DEL, and the bidirectional and zero-width formatting characters that reorder or
/// hide text.
fn steers(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` as one line that shows what it holds: newlines, escapes and the like as `\n`, `\u{1b}`.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(steers) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if steers(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A whole rendered text, safe for a terminal: every steering character but the newlines
/// between lines escaped.
pub fn terminal_safe(text: &str) -> String {
    text.split('\n')
        .map(one_line)
        .collect::<Vec<_>>()
        .join("\n")
}

fn table(rows: &[[String; 3]]) -> String {
    let rows: Vec<[String; 3]> = rows
        .iter()
        .map(|r| r.clone().map(|c| one_line(&c).into_owned()))
        .collect();
    let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for r in &rows {
        let _ = writeln!(out, "  {:<w0$}  {:<w1$}  {}", r[0], r[1], r[2]);
    }
    out
}

pub fn inspection(i: &Inspection) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", one_line(i.dm_name.as_str()));
    if i.target != i.dm_name {
        let _ = writeln!(out, "  target: {}", one_line(&i.target.to_string()));
    }
    let _ = writeln!(
        out,
        "verdict: {} — {}\n",
        i.verdict.as_str().to_uppercase(),
        one_line(&i.summary)
    );
    let mut rows = vec![[
        "LAYER".to_string(),
        "STATE".to_string(),
        "WHAT IT MEANS".to_string(),
    ]];
    rows.extend(i.reasons.iter().map(|r| {
        [
            r.layer.as_str().to_string(),
            r.state.to_string(),
            r.message.to_string(),
        ]
    }));
    out.push_str(&table(&rows));
    out
}

pub fn heal(o: &HealOutcome) -> String {
    let mut out = inspection(&o.inspection);
    let _ = writeln!(out, "\n{}", one_line(&o.message));
    if let Some(lock) = &o.lock {
        let _ = writeln!(out, "lock: {lock}");
    }
    out
}

pub fn scan(s: &Scan) -> String {
    let c = &s.counts;
    let mut out = format!(
        "{} SR mappings: {} ghost, {} in use, {} suspicious, {} healthy; {} inactive SR LVs\n",
        c.mappings, c.ghost, c.in_use, c.suspicious, c.healthy, c.inactive_lvs
    );
    if let Some(e) = &s.lvm_error {
        let _ = writeln!(out, "warning: lvs failed: {e}");
    }
    if !s.mappings.is_empty() {
        out.push('\n');
        let mut rows = vec![[
            "VERDICT".to_string(),
            "MAPPING".to_string(),
            "WHY".to_string(),
        ]];
        rows.extend(s.mappings.iter().map(|m| {
            let why = m
                .reasons
                .iter()
                .find(|r| r.signal != crate::verdict::Signal::Clear)
                .map(|r| r.message.clone())
                .unwrap_or_else(|| "no layer uses it; LVM does not own it".into());
            [
                m.verdict.as_str().to_string(),
                m.dm_name.clone(),
                why.to_string(),
            ]
        }));
        out.push_str(&table(&rows));
    }
    let listed_healthy = s
        .mappings
        .iter()
        .filter(|m| m.verdict == crate::verdict::Verdict::Healthy)
        .count();
    if c.healthy > listed_healthy {
        let _ = writeln!(
            out,
            "\n{} healthy mappings (LVM's own, nothing to do) are not listed; --json lists every mapping",
            c.healthy - listed_healthy
        );
    }
    out
}

pub fn journal(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "the journal is empty\n".into();
    }
    let mut rows = vec![[
        "ID".to_string(),
        "TIME / HOST".to_string(),
        "EVENT".to_string(),
    ]];
    for e in entries {
        let what = match &e.event {
            Event::Removal {
                dm_name,
                uuid,
                dev,
                table,
                ..
            } => format!(
                "removal of {dm_name} ({dev}, uuid {}, {} table line(s))",
                if uuid.is_empty() { "none" } else { uuid },
                table.len()
            ),
            Event::Outcome { of, result, .. } => format!("entry {of}: {result}"),
            Event::Repaired { bytes, .. } => {
                format!("repaired: a torn last line of {bytes} bytes (an append cut short by a crash) was cut off")
            }
            Event::Restore { of, result, .. } => format!("restore of {of}: {result}"),
            Event::Decision {
                dm_name,
                verdict,
                action,
                ..
            } => format!("decision on {dm_name}: {verdict}, {action}"),
            Event::XapiAction {
                action,
                subject,
                result,
                ..
            }
            | Event::LocalAction {
                action,
                subject,
                result,
                ..
            } => format!("{action} on {subject}: {result}"),
        };
        rows.push([e.id.to_string(), format!("{} {}", e.time, e.host), what]);
    }
    table(&rows)
}

pub fn restore(r: &RestoreOutcome) -> String {
    let mut out = format!("{}\n", r.message);
    for line in r.table.iter().flatten() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "journal entry {}", r.journal_id);
    out
}

pub fn pool_scan(p: &crate::pool::PoolScan) -> String {
    let c = &p.counts;
    let mut out = String::new();
    for f in &p.findings {
        let _ = writeln!(
            out,
            "{:<10} on {} ({})",
            f.verdict.as_str().to_uppercase(),
            one_line(&f.host_name),
            one_line(&f.host_uuid)
        );
        let vdi = match (&f.vdi_uuid, &f.vdi_name) {
            (Some(v), Some(n)) => format!("VDI {v} \"{n}\""),
            (Some(v), None) => format!("VDI {v}"),
            (None, _) => "not a VDI's volume".into(),
        };
        let sr = f.sr_uuid.as_deref().unwrap_or("-");
        let _ = writeln!(out, "           {}, SR {}", one_line(&vdi), one_line(sr));
        if !f.vms.is_empty() {
            let vms: Vec<String> = f
                .vms
                .iter()
                .map(|v| format!("{} ({}, {})", v.name_label, v.uuid, v.power_state))
                .collect();
            let _ = writeln!(out, "           disk of VM {}", one_line(&vms.join(", ")));
        }
        let _ = writeln!(
            out,
            "           {}\n           {}",
            one_line(&f.dm_name),
            one_line(&f.summary)
        );
        if f.verdict == crate::verdict::Verdict::Ghost {
            if let Some(v) = &f.vdi_uuid {
                let _ = writeln!(
                    out,
                    "           heal: {}",
                    crate::commands::heal_through_plugin(&f.host_uuid, v)
                );
            }
        }
        out.push('\n');
    }
    let mut rows = vec![host_header("FINDINGS")];
    for h in &p.hosts {
        let findings = match (&h.answer, &h.error) {
            (Some(s), _) => format!(
                "{} mappings: {} ghost, {} in use, {} suspicious",
                s.counts.mappings, s.counts.ghost, s.counts.in_use, s.counts.suspicious
            ),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        rows.push(host_row(h, findings));
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "\n{} hosts: {} asked, {} skipped, {} failed; {} ghost, {} in use, {} suspicious",
        c.hosts.hosts,
        c.hosts.asked,
        c.hosts.skipped,
        c.hosts.failed,
        c.ghost,
        c.in_use,
        c.suspicious
    );
    out
}

fn findings(out: &mut String, findings: &[crate::doctor::Finding], offer_apply: bool) {
    for f in findings {
        let _ = writeln!(
            out,
            "{:<8} {:<24} {}\n         {}",
            format!("{:?}", f.severity).to_uppercase(),
            f.code,
            one_line(&f.subject),
            one_line(&f.summary)
        );
        for step in &f.plan {
            // Comments are said, commands are shown as commands.
            let prompt = if step.starts_with('#') { "" } else { "$ " };
            let _ = writeln!(out, "         {prompt}{}", one_line(step));
        }
        if offer_apply && f.safe_action.is_some() {
            let _ = writeln!(
                out,
                "         (safe: `dmheal doctor --apply` does this after re-checking)"
            );
        }
    }
}

/// The findings; after `--apply`, what was done (with the journal entry that undoes it) and
/// what still stands.
pub fn doctor(r: &crate::doctor::Report) -> String {
    let mut out = String::new();
    if r.applied.is_empty() {
        if r.findings.is_empty() {
            out.push_str("no findings\n");
        }
        findings(&mut out, &r.findings, true);
    } else {
        out.push_str("done:\n");
        for a in &r.applied {
            let undo = a
                .journal_id
                .map(|id| format!("  (journal entry {id}; `dmheal restore {id}` undoes it)"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {} on {}: {}{undo}",
                a.action,
                one_line(&a.subject),
                one_line(&a.result)
            );
        }
        if r.remaining.is_empty() {
            out.push_str("\nnothing remains\n");
        } else {
            out.push_str("\nstill standing:\n");
            findings(&mut out, &r.remaining, true);
        }
    }
    for u in &r.unchecked {
        let _ = writeln!(out, "not checked: {u}");
    }
    if r.hosts.len() > 1 {
        out.push('\n');
        let mut rows = vec![host_header("WHAT ITS STORAGE AND DOMAINS SAY")];
        for h in &r.hosts {
            let says = match (&h.answer, &h.error) {
                (Some(sv), _) => {
                    let vgs = sv
                        .storage
                        .pvs()
                        .map_or("LVM unreadable".to_string(), |pvs| {
                            let srs = pvs.iter().filter(|p| p.sr().is_some()).count();
                            format!("{} PVs ({srs} of SR volume groups)", pvs.len())
                        });
                    let domains = match &sv.domains {
                        crate::domains::Domains::Known { domids, .. } => {
                            format!("{} domains", domids.len())
                        }
                        crate::domains::Domains::Unknown { .. } => "domains unknown".into(),
                    };
                    format!("{vgs}, {} SR mounts, {domains}", sv.storage.mounts.len())
                }
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            };
            rows.push(host_row(h, says));
        }
        out.push_str(&table(&rows));
    }
    out
}

pub fn vm(r: &crate::vm::VmReport) -> String {
    let v = &r.vm;
    let mut out = format!(
        "VM {} ({}): {}",
        one_line(&v.name_label),
        one_line(&v.uuid),
        one_line(&v.power_state)
    );
    if let Some(h) = &v.resident_on {
        let _ = write!(
            out,
            " on {} ({})",
            one_line(&h.name_label),
            one_line(&h.uuid)
        );
    }
    out.push_str("\n\n");
    let mut rows = vec![["DISK".to_string(), "VDI".to_string(), "SR".to_string()]];
    for d in &r.disks {
        rows.push([
            d.device.clone(),
            format!("{} \"{}\"", d.vdi_uuid, d.vdi_name),
            format!("{} \"{}\" ({})", d.sr_uuid, d.sr_name, d.sr_type),
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    for a in &r.healed {
        let _ = writeln!(
            out,
            "HEAL     {} on {}: {} — {}",
            one_line(&a.vdi_uuid),
            one_line(&a.host_name),
            one_line(&a.action),
            one_line(&a.message)
        );
    }
    if !r.healed.is_empty() {
        out.push('\n');
    }
    for f in &r.findings {
        let sev = format!("{:?}", f.severity).to_uppercase();
        let _ = writeln!(out, "{sev:<8} {}", one_line(&f.summary));
        for step in &f.plan {
            match step.strip_prefix("# ") {
                Some(said) => {
                    let _ = writeln!(out, "         {}", one_line(said));
                }
                None => {
                    let _ = writeln!(out, "         $ {}", one_line(step));
                }
            }
        }
    }
    out.push('\n');
    let mut rows = vec![host_header("WHAT IT SAYS")];
    for h in &r.hosts {
        let says = match (&h.answer, &h.error) {
            (Some(view), _) => {
                let mut parts: Vec<String> = view
                    .volumes
                    .iter()
                    .filter(|x| x.verdict != crate::verdict::Verdict::Absent)
                    .map(|x| format!("{} {}", x.vdi_uuid, x.verdict.as_str()))
                    .collect();
                if let Some(d) = &view.domain {
                    parts.push(match d.present {
                        Some(true) => format!("domain {} running", d.domid),
                        Some(false) => format!("no domain {}", d.domid),
                        None => format!("domain {} unknown", d.domid),
                    });
                }
                if parts.is_empty() {
                    "no mapping of the VM's disks".to_string()
                } else {
                    parts.join("; ")
                }
            }
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        rows.push(host_row(h, says));
    }
    out.push_str(&table(&rows));
    out
}

/// The header of a table of hosts asked through the plugin.
fn host_header(last: &str) -> [String; 3] {
    ["HOST".into(), "STATUS".into(), last.into()]
}

/// One host of a pool-wide answer: name, uuid, version; asked/skipped/failed and its state
/// when that is not plain "live" (a skipped host is down, and its error says so); what it
/// said.
fn host_row<T>(h: &crate::xapi::fanout::HostAnswer<T>, says: String) -> [String; 3] {
    use crate::xapi::fanout::{AskStatus, HostState};
    let mut who = if h.host_name.contains(&h.host_uuid) {
        h.host_name.clone()
    } else {
        format!("{} ({})", h.host_name, h.host_uuid)
    };
    if let Some(v) = &h.version {
        let _ = write!(who, " {v}");
    }
    let mut status = format!("{:?}", h.status).to_lowercase();
    if h.state != HostState::Live && h.status != AskStatus::Skipped {
        let _ = write!(status, ", {}", h.state.said());
    }
    [who, status, says]
}

pub fn volumes(v: &crate::vm::local::LocalView) -> String {
    let mut rows = vec![[
        "VDI".to_string(),
        "VERDICT".to_string(),
        "SUMMARY".to_string(),
    ]];
    for x in &v.volumes {
        rows.push([
            x.vdi_uuid.clone(),
            x.verdict.as_str().to_string(),
            x.summary.clone(),
        ]);
    }
    let mut out = table(&rows);
    if let Some(d) = &v.domain {
        let _ = writeln!(
            out,
            "domain {}: {} ({})",
            d.domid,
            match d.present {
                Some(true) => "runs here",
                Some(false) => "not here",
                None => "unknown",
            },
            d.source
        );
    }
    out
}

/// A batch heal: one line per ghost (what became of it, and why), then the counts.
pub fn batch(b: &crate::heal_all::BatchOutcome) -> String {
    let mut out = String::new();
    if b.results.is_empty() {
        let _ = writeln!(out, "no ghost among {} mappings", b.counts.mappings);
        return out;
    }
    let mut rows = vec![[
        "MAPPING".to_string(),
        "ACTION".to_string(),
        "WHY".to_string(),
    ]];
    for r in &b.results {
        rows.push([
            r.dm_name.clone(),
            r.action.as_str().to_string(),
            r.message.clone(),
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    out.push_str(&batch_counts(&b.counts));
    if !b.apply && b.counts.would_remove > 0 {
        out.push_str("run again with --apply to remove them (each decided again, under SM's lock, and journalled)\n");
    }
    out
}

fn batch_counts(c: &crate::heal_all::BatchCounts) -> String {
    format!(
        "{} mappings, {} ghosts: {} removed, {} would be removed, {} refused at the re-check, {} already gone, {} failed\n",
        c.mappings, c.ghosts, c.removed, c.would_remove, c.refused, c.already_gone, c.failed
    )
}

/// A pool heal: each host's batch, then the hosts and the sums.
pub fn pool_heal(p: &crate::pool::PoolHeal) -> String {
    let mut out = String::new();
    for h in &p.hosts {
        let Some(b) = &h.answer else { continue };
        if b.results.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{} ({}):", one_line(&h.host_name), h.host_uuid);
        for r in &b.results {
            let _ = writeln!(out, "  {:<12} {}", r.action.as_str(), one_line(&r.dm_name));
        }
        out.push('\n');
    }
    let mut rows = vec![host_header("WHAT IT DID")];
    for h in &p.hosts {
        let says = match (&h.answer, &h.error) {
            (Some(b), _) => batch_counts(&b.counts).trim_end().to_string(),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        rows.push(host_row(h, says));
    }
    out.push_str(&table(&rows));
    let c = &p.counts;
    let _ = write!(
        out,
        "\n{} hosts: {} asked, {} skipped, {} failed; ",
        c.hosts.hosts, c.hosts.asked, c.hosts.skipped, c.hosts.failed
    );
    out.push_str(&batch_counts(&c.batch));
    if !p.apply && c.batch.would_remove > 0 {
        out.push_str("run again with --apply to remove them (each host decides again, under its own locks, and journals)\n");
    }
    out
}

/// A host's survey: its SR volume groups and where they are, SR mounts, udev locations,
/// domains and tapdisks.
pub fn survey(v: &crate::doctor::survey::Survey) -> String {
    use crate::storage::PvsView;
    let mut out = String::new();
    match &v.storage.lvm {
        PvsView::Read { pvs } => {
            let mut rows = vec![["PV".to_string(), "VG".to_string(), "NAMES".to_string()]];
            for pv in pvs {
                let mut names: Vec<String> = pv.names.iter().cloned().collect();
                names.extend(pv.scsi_ids.iter().map(|i| format!("SCSIid {i}")));
                rows.push([pv.device.clone(), pv.vg_name.clone(), names.join(" ")]);
            }
            if pvs.is_empty() {
                out.push_str("no PV on this host\n");
            } else {
                out.push_str(&table(&rows));
            }
        }
        PvsView::Unreadable { why } => {
            let _ = writeln!(out, "LVM could not be read: {why}");
        }
    }
    for m in &v.storage.mounts {
        let _ = writeln!(
            out,
            "SR {} mounted from {} ({})",
            m.sr_uuid, m.source, m.fstype
        );
    }
    for u in &v.storage.udev {
        let _ = writeln!(
            out,
            "{}: {}",
            u.location,
            if u.present {
                format!("{} devices", u.devices.len())
            } else {
                "absent".into()
            }
        );
    }
    match &v.domains {
        crate::domains::Domains::Known { domids, source, .. } => {
            let ids: Vec<String> = domids.iter().map(u32::to_string).collect();
            let _ = writeln!(out, "domains: {} ({source})", ids.join(" "));
        }
        crate::domains::Domains::Unknown { why } => {
            let _ = writeln!(out, "domains unknown: {why}");
        }
    }
    match &v.tapdisk_paths {
        Some(p) => {
            let _ = writeln!(out, "tapdisks serve {} images", p.len());
        }
        None => out.push_str("tap-ctl failed\n"),
    }
    terminal_safe(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_others_is_shown_never_obeyed() {
        let forged = "S-Domino\n\u{1b}[1A\u{1b}[2K\u{1b}[32mclear\u{1b}[8m\u{202e}x";
        let shown = one_line(forged);
        assert!(!shown.chars().any(steers), "{shown}");
        assert!(shown.starts_with("S-Domino\\n\\u{1b}[1A"), "{shown}");
        // Plain text is left as it is; a whole text keeps its own lines.
        assert_eq!(one_line("VM S-Domino (ünïcode)"), "VM S-Domino (ünïcode)");
        let text = format!("line one\nname {forged}\n");
        let safe = terminal_safe(&text);
        assert_eq!(safe.lines().count(), 3, "{safe}");
        assert!(!safe.contains('\u{1b}'));
        // Table cells too, aligned by characters.
        let t = table(&[
            ["a\nb".into(), "x".into(), "y".into()],
            ["é".into(), "x".into(), "y".into()],
        ]);
        assert_eq!(t.lines().count(), 2, "{t}");
    }
}
