//! Alarms xapi has already raised about storage and networking, grouped per object and
//! de-duplicated (one finding per object and kind, with how many and the newest): a
//! multipath alert is often the first sign of the storage trouble dmheal is about. Xen
//! Orchestra's "Alarms" shows ALARM, MULTIPATH_PERIODIC_ALERT and BOND_STATUS_CHANGED; dmheal
//! also reads SM's garbage collector running out of space and PBDs that failed to plug at
//! start-up, and leaves out alarms about VMs (perfmon's cpu or memory use of a guest).

use std::collections::BTreeMap;

use serde_json::json;

use super::{sr_label, Finding, Severity};
use crate::doctor::snapshot::Snapshot;
use crate::xapi::records::Message;

/// The message names read, and what each is.
pub const ALARM_NAMES: [(&str, &str); 5] = [
    (
        "ALARM",
        "a perfmon alarm (an SR's use, a host's I/O or network)",
    ),
    ("MULTIPATH_PERIODIC_ALERT", "multipath paths down"),
    ("BOND_STATUS_CHANGED", "a bond's links down or back"),
    (
        "SM_GC_NO_SPACE",
        "SM's garbage collector has no room to coalesce",
    ),
    (
        "PBD_PLUG_FAILED_ON_SERVER_START",
        "a PBD failed to plug when its host started",
    ),
];

/// One object's alarms of one kind.
struct Group<'a> {
    name: &'a str,
    subject: String,
    messages: Vec<&'a Message>,
    /// For a multipath alert: the path's current and maximum path counts, newest first.
    paths: Option<(u32, u32)>,
}

/// `[time] host=..; host-name=".."; pbd=<uuid>; scsi_id=<id>; current=N; max=M` lines.
fn multipath_lines(body: &str) -> Vec<(String, String, u32, u32)> {
    let field = |line: &str, key: &str| -> Option<String> {
        line.split(';')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(key).map(|v| v.trim_matches('"').to_string()))
    };
    body.lines()
        .filter_map(|l| {
            let pbd = field(l, "pbd=").or_else(|| field(l, "root=").map(|_| "root".to_string()))?;
            let scsi = field(l, "scsi_id=").unwrap_or_default();
            let current = field(l, "current=")?.parse().ok()?;
            let max = field(l, "max=")?.parse().ok()?;
            Some((pbd, scsi, current, max))
        })
        .collect()
}

fn object_label(s: &Snapshot, m: &Message) -> String {
    match m.cls.as_str() {
        "SR" => s
            .srs
            .iter()
            .find(|(_, x)| x.uuid == m.obj_uuid)
            .map(|(r, _)| sr_label(s, r))
            .unwrap_or_else(|| format!("SR {}", m.obj_uuid)),
        "Host" => s
            .hosts
            .values()
            .find(|h| h.uuid == m.obj_uuid)
            .map(|h| format!("host {} ({})", h.uuid, h.display_name()))
            .unwrap_or_else(|| format!("host {}", m.obj_uuid)),
        other => format!("{} {}", other.to_ascii_lowercase(), m.obj_uuid),
    }
}

/// Storage and network alarms, one finding per object and kind. Must not fire for a
/// message of another name, or an ALARM about a VM.
pub fn raised(s: &Snapshot) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for m in s.messages.values() {
        if !ALARM_NAMES.iter().any(|(n, _)| *n == m.name) {
            continue;
        }
        if m.name == "ALARM" && !matches!(m.cls.as_str(), "SR" | "Host") {
            continue;
        }
        if m.name == "MULTIPATH_PERIODIC_ALERT" {
            // Per path (PBD), not per pool: each line says one path's state.
            for (pbd, scsi, current, max) in multipath_lines(&m.body) {
                let subject = s
                    .pbds
                    .values()
                    .find(|p| p.uuid == pbd)
                    .map(|p| format!("PBD {} of {} (SCSIid {scsi})", p.uuid, sr_label(s, &p.sr)))
                    .unwrap_or_else(|| format!("PBD {pbd} (SCSIid {scsi})"));
                let g = groups
                    .entry((m.name.clone(), subject.clone()))
                    .or_insert_with(|| Group {
                        name: "MULTIPATH_PERIODIC_ALERT",
                        subject,
                        messages: Vec::new(),
                        paths: None,
                    });
                let newer = g.messages.iter().all(|o| o.timestamp <= m.timestamp);
                g.messages.push(m);
                if newer {
                    g.paths = Some((current, max));
                }
            }
            continue;
        }
        let subject = object_label(s, m);
        groups
            .entry((m.name.clone(), subject.clone()))
            .or_insert_with(|| Group {
                name: ALARM_NAMES
                    .iter()
                    .find(|(n, _)| *n == m.name)
                    .map(|(n, _)| *n)
                    .unwrap_or("ALARM"),
                subject,
                messages: Vec::new(),
                paths: None,
            })
            .messages
            .push(m);
    }
    groups
        .into_values()
        .map(|mut g| {
            g.messages.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
            let newest = g.messages[0];
            let what = ALARM_NAMES
                .iter()
                .find(|(n, _)| *n == g.name)
                .map(|(_, w)| *w)
                .unwrap_or_default();
            let (severity, state) = match (g.name, g.paths) {
                ("MULTIPATH_PERIODIC_ALERT", Some((c, m))) if c < m => {
                    (Severity::Warning, format!("{c} of {m} paths up at the newest"))
                }
                ("MULTIPATH_PERIODIC_ALERT", Some((c, m))) => {
                    (Severity::Info, format!("{c} of {m} paths up again at the newest"))
                }
                ("BOND_STATUS_CHANGED", _) => (
                    Severity::Warning,
                    newest.body.lines().next().unwrap_or_default().to_string(),
                ),
                _ => (
                    Severity::Warning,
                    newest.body.lines().next().unwrap_or_default().chars().take(160).collect(),
                ),
            };
            let uuids: Vec<&str> = g.messages.iter().map(|m| m.uuid.as_str()).collect();
            Finding {
                code: "alarm",
                severity,
                subject: g.subject.clone(),
                summary: format!(
                    "{} ({what}): {} message(s), the newest at {}: {state}",
                    g.name,
                    g.messages.len(),
                    newest.timestamp
                ),
                evidence: json!({"name": g.name, "count": g.messages.len(),
                                 "newest": newest.timestamp, "newest_body": newest.body,
                                 "messages": uuids, "paths": g.paths}),
                plan: vec![
                    format!(
                        "xe message-list name={} obj-uuid={}   # all of them",
                        g.name, newest.obj_uuid
                    ),
                    match g.name {
                        "MULTIPATH_PERIODIC_ALERT" => {
                            "multipath -ll   # on the host the alert names: which paths are down".into()
                        }
                        "SM_GC_NO_SPACE" => {
                            "# free space on the SR (delete unneeded snapshots), then xe sr-scan".into()
                        }
                        "PBD_PLUG_FAILED_ON_SERVER_START" => {
                            "# dmheal doctor's pbd_unplugged finding says which PBD, and xe pbd-plug".into()
                        }
                        _ => "# once handled: xe message-destroy uuid=<each>".into(),
                    },
                ],
                safe_action: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::checks::fixtures::*;

    fn message(s: &mut Snapshot, name: &str, cls: &str, obj: &str, time: &str, body: &str) {
        let n = s.messages.len();
        s.messages.insert(
            format!("OpaqueRef:message-{n}"),
            Message {
                uuid: format!("m{n}"),
                name: name.into(),
                priority: 3,
                cls: cls.into(),
                obj_uuid: obj.into(),
                timestamp: time.into(),
                body: body.into(),
            },
        );
    }

    #[test]
    fn alarms_are_grouped_per_object_with_the_newest() {
        let mut s = pool();
        let a = this_host(&s);
        let (sr, pbds) = add_sr(&mut s, "iSCSI", "lvmoiscsi", &[(&a, "SCSIid=3600a", true)]);
        let sr_uuid = s.srs[&sr].uuid.clone();
        let pbd = s.pbds[&pbds[0]].uuid.clone();
        let host = s.hosts[&a].uuid.clone();
        let line = |t: &str, c: u32| {
            format!("Unhealthy paths:\n[{t}] host={host}; host-name=\"xcp-a\"; pbd={pbd}; scsi_id=3600a; current={c}; max=2\n")
        };
        message(
            &mut s,
            "MULTIPATH_PERIODIC_ALERT",
            "Pool",
            "p",
            "20261201T10:00:00Z",
            &line("20261201T10:00:00Z", 2),
        );
        message(
            &mut s,
            "MULTIPATH_PERIODIC_ALERT",
            "Pool",
            "p",
            "20261201T10:02:00Z",
            &line("20261201T10:02:00Z", 1),
        );
        message(&mut s, "ALARM", "SR", &sr_uuid, "20261201T09:00:00Z",
                "value: 0.912345\nconfig:\n<variable>\n<name value=\"physical_utilisation\"/>\n</variable>");
        message(
            &mut s,
            "ALARM",
            "SR",
            &sr_uuid,
            "20261201T11:00:00Z",
            "value: 0.95\nconfig:\n",
        );
        message(
            &mut s,
            "ALARM",
            "VM",
            "vm-uuid",
            "20261201T11:00:00Z",
            "value: 0.99\nconfig:\n",
        );
        message(
            &mut s,
            "VM_STARTED",
            "VM",
            "vm-uuid",
            "20261201T11:00:00Z",
            "",
        );
        message(
            &mut s,
            "BOND_STATUS_CHANGED",
            "Host",
            &host,
            "20261201T08:00:00Z",
            "The status of the eth0+eth1 bond changed: 1/2 up (was 2/2)",
        );
        let f = raised(&s);
        assert_eq!(f.len(), 3, "{f:#?}");
        let mp = f
            .iter()
            .find(|x| x.evidence["name"] == "MULTIPATH_PERIODIC_ALERT")
            .unwrap();
        assert!(
            mp.subject.contains(&pbd) && mp.summary.contains("1 of 2 paths up"),
            "{}",
            mp.summary
        );
        assert_eq!(
            (mp.evidence["count"].as_u64(), mp.severity),
            (Some(2), Severity::Warning)
        );
        let sr_alarm = f.iter().find(|x| x.evidence["name"] == "ALARM").unwrap();
        assert_eq!(sr_alarm.evidence["count"], 2);
        assert_eq!(sr_alarm.evidence["newest"], "20261201T11:00:00Z");
        assert!(f.iter().any(|x| x.summary.contains("eth0+eth1")));
    }
}
