//! Snapshots built record by record for the checks' unit tests.

use std::collections::{BTreeMap, BTreeSet};

use crate::doctor::snapshot::{HostSurvey, Snapshot};
use crate::doctor::survey::Survey;
use crate::domains::Domains;
use crate::storage::{PhysicalVolume, PvsView, StorageSurvey, UdevLocation};
use crate::xapi::fanout::HostState;
use crate::xapi::records::{Host, HostMetrics, Pbd, Pool, Ref, Sr, Vbd, Vdi, Vm, NULL_REF};

fn uuid(n: usize) -> String {
    format!("{n:08}-0000-4000-8000-{n:012}")
}

fn next(s: &Snapshot) -> usize {
    100 + s.srs.len() + s.pbds.len() + s.vdis.len() + s.vbds.len() + s.vms.len() + s.hosts.len()
}

/// A pool with one live host, xcp-a, which is this host; no domains but dom0; tapdisk serving
/// nothing; nothing mapped.
pub fn pool() -> Snapshot {
    let mut s = Snapshot {
        domains: Some(Domains::Known {
            domids: [0].into(),
            states: [(0, "r-----".to_string())].into(),
            source: "fixture".into(),
        }),
        tapdisk_paths: Some(Vec::new()),
        mappings: Some(BTreeMap::new()),
        ..Default::default()
    };
    s.pools.insert(
        "OpaqueRef:pool".into(),
        Pool {
            uuid: uuid(1),
            default_sr: NULL_REF.into(),
            suspend_image_sr: NULL_REF.into(),
            crash_dump_sr: NULL_REF.into(),
            ..Default::default()
        },
    );
    let a = add_host(&mut s, "xcp-a", true);
    s.this_host = Some(a);
    s
}

pub fn this_host(s: &Snapshot) -> Ref {
    s.this_host.clone().unwrap()
}

pub fn add_host(s: &mut Snapshot, name: &str, live: bool) -> Ref {
    let r = format!("OpaqueRef:host-{name}");
    let n = next(s);
    s.hosts.insert(
        r.clone(),
        Host {
            uuid: uuid(n),
            name_label: name.into(),
            enabled: Some(true),
            metrics: format!("OpaqueRef:hm-{name}"),
            suspend_image_sr: NULL_REF.into(),
            crash_dump_sr: NULL_REF.into(),
            ..Default::default()
        },
    );
    s.live.insert(r.clone(), live);
    s.states.insert(
        r.clone(),
        if live {
            HostState::Live
        } else {
            HostState::Down
        },
    );
    let _ = HostMetrics::default();
    r
}

/// What `host` answered to its survey: PVs (device, VG name, SCSI id) LVM sees there, nothing
/// else (no domains but dom0, no tapdisk, /dev/xapi/cd present and empty).
pub fn surveyed(s: &mut Snapshot, host: &str, pvs: &[(&str, &str, Option<&str>)]) {
    let pvs = pvs
        .iter()
        .map(|(dev, vg, scsi)| PhysicalVolume {
            device: dev.to_string(),
            names: BTreeSet::from([dev.to_string()]),
            scsi_ids: scsi.iter().map(|x| x.to_string()).collect(),
            pv_uuid: format!("pv-{dev}"),
            vg_name: vg.to_string(),
            vg_uuid: format!("vg-{vg}"),
        })
        .collect();
    s.surveys.insert(
        host.to_string(),
        HostSurvey::Answered(Survey {
            host_uuid: s.hosts.get(host).map(|h| h.uuid.clone()),
            domains: Domains::Known {
                domids: [0].into(),
                states: [(0, "r-----".to_string())].into(),
                source: "fixture".into(),
            },
            tapdisk_paths: Some(Vec::new()),
            storage: StorageSurvey {
                lvm: PvsView::Read { pvs },
                mounts: Vec::new(),
                udev: vec![UdevLocation {
                    location: "/dev/xapi/cd".into(),
                    present: true,
                    devices: Vec::new(),
                }],
            },
        }),
    );
}

/// A host that could not be surveyed (`why`).
pub fn not_surveyed(s: &mut Snapshot, host: &str, why: &str) {
    s.surveys
        .insert(host.to_string(), HostSurvey::Failed { why: why.into() });
}

/// An SR with PBDs (host, "key=value", plugged).
pub fn add_sr(
    s: &mut Snapshot,
    name: &str,
    kind: &str,
    pbds: &[(&str, &str, bool)],
) -> (Ref, Vec<Ref>) {
    let n = next(s);
    let r = format!("OpaqueRef:sr-{n}");
    let mut refs = Vec::new();
    for (i, (host, config, plugged)) in pbds.iter().enumerate() {
        let p = format!("OpaqueRef:pbd-{n}-{i}");
        let (k, v) = config.split_once('=').unwrap();
        s.pbds.insert(
            p.clone(),
            Pbd {
                uuid: uuid(n * 10 + i),
                host: host.to_string(),
                sr: r.clone(),
                device_config: [(k.to_string(), v.to_string())].into(),
                currently_attached: *plugged,
                ..Default::default()
            },
        );
        refs.push(p);
    }
    s.srs.insert(
        r.clone(),
        Sr {
            uuid: uuid(n),
            name_label: name.into(),
            kind: kind.into(),
            content_type: "user".into(),
            pbds: refs.clone(),
            ..Default::default()
        },
    );
    (r, refs)
}

pub fn add_vdi(s: &mut Snapshot, sr: &str, name: &str) -> Ref {
    let n = next(s);
    let r = format!("OpaqueRef:vdi-{n}");
    s.vdis.insert(
        r.clone(),
        Vdi {
            uuid: uuid(n),
            name_label: name.into(),
            sr: sr.into(),
            kind: "user".into(),
            managed: true,
            snapshot_of: NULL_REF.into(),
            virtual_size: "8388608".into(),
            ..Default::default()
        },
    );
    s.srs.get_mut(sr).unwrap().vdis.push(r.clone());
    r
}

pub fn add_vm(s: &mut Snapshot, name: &str, power: &str, resident: Option<(&str, u32)>) -> Ref {
    let n = next(s);
    let r = format!("OpaqueRef:vm-{n}");
    s.vms.insert(
        r.clone(),
        Vm {
            uuid: uuid(n),
            name_label: name.into(),
            power_state: power.into(),
            resident_on: resident.map_or(NULL_REF.to_string(), |(h, _)| h.to_string()),
            domid: resident.map_or("-1".into(), |(_, d)| d.to_string()),
            suspend_vdi: NULL_REF.into(),
            ..Default::default()
        },
    );
    r
}

pub fn add_vbd(s: &mut Snapshot, vm: &str, vdi: &str, attached: bool) -> Ref {
    let n = next(s);
    let r = format!("OpaqueRef:vbd-{n}");
    s.vbds.insert(
        r.clone(),
        Vbd {
            uuid: uuid(n),
            vm: vm.into(),
            vdi: vdi.into(),
            device: "xvda".into(),
            currently_attached: attached,
            ..Default::default()
        },
    );
    s.vms.get_mut(vm).unwrap().vbds.push(r.clone());
    s.vdis.get_mut(vdi).unwrap().vbds.push(r.clone());
    r
}

/// Domains this host runs, with xl's state column.
pub fn domains(s: &mut Snapshot, doms: &[(u32, &str)]) {
    s.domains = Some(Domains::Known {
        domids: doms.iter().map(|(d, _)| *d).collect::<BTreeSet<u32>>(),
        states: doms.iter().map(|(d, st)| (*d, st.to_string())).collect(),
        source: "fixture".into(),
    });
}
