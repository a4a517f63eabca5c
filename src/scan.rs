//! `dmheal scan`: every SR volume group's mapping on this host and every SR LV LVM knows,
//! decided in one pass per layer and handed on one by one (thousands of mappings, flat
//! memory); a ghost found tells the pool (a xapi message).

use std::collections::{BTreeSet, HashSet};

use crate::context::OpContext;
use crate::error::Result;
use crate::facts::gather::{self, XapiSource};
use crate::facts::KernelSearch;
use crate::ids::{DmName, LvName, Uuid};
use crate::lvm;
use crate::results::{Inspection, Scan, ScanCounts, ScanSummary};
use crate::verdict::Verdict;
use crate::xapi::messages::{self, Message};

impl OpContext {
    /// Every SR-VG mapping in the kernel and every SR LV LVM knows, one pass per layer.
    pub fn scan(&self) -> Result<Scan> {
        self.scan_keeping(&|_| true)
    }

    /// `scan`, keeping only the inspections `keep` wants (the counts are of every mapping):
    /// thousands of healthy mappings need not be held to find the ghosts among them.
    pub fn scan_keeping(&self, keep: &dyn Fn(&Inspection) -> bool) -> Result<Scan> {
        let mut mappings = Vec::new();
        let summary = self.scan_each(&mut |m| {
            if keep(&m) {
                mappings.push(m);
            }
            Ok(())
        })?;
        Ok(Scan {
            counts: summary.counts,
            mappings,
            inactive_lvs: summary.inactive_lvs,
            lvm_error: summary.lvm_error,
        })
    }

    /// `scan`, handing each mapping's inspection to `each` as soon as it is decided: memory
    /// stays flat at thousands of mappings (the CLI prints them as they come).
    pub fn scan_each(&self, each: &mut dyn FnMut(Inspection) -> Result<()>) -> Result<ScanSummary> {
        let clock = crate::logging::Stopwatch::start();
        let listing = self.dm.list()?;
        // With uuids in the list (Linux 5.15+), every LVM uuid the kernel carries is known
        // without asking it once per LV.
        let carried_by_kernel: Option<HashSet<String>> =
            listing.iter().all(|l| l.uuid.is_some()).then(|| {
                listing
                    .iter()
                    .filter_map(|l| l.uuid.as_deref())
                    .filter(|u| u.starts_with("LVM-"))
                    .map(str::to_string)
                    .collect()
            });
        let mut asked: Vec<gather::Asked> = Vec::new();
        for listed in listing {
            let Ok(name) = DmName::from_string(listed.name) else {
                continue; // not an LVM-charset name: certainly not an SR volume
            };
            if lvm::split_dm_name(&name).is_some_and(|n| lvm::sr_of_vg(&n.vg).is_some()) {
                asked.push(gather::Asked {
                    name,
                    listed: listed.uuid.map(|u| (listed.dev, u)),
                });
            }
        }
        clock.lap("scan: listed");
        let mut gathered = gather::prepare(
            &self.config,
            self.dm.as_ref(),
            XapiSource::Session(&self.xapi),
            asked,
            KernelSearch::HoldersWhereOpen,
            carried_by_kernel,
        )?;
        let lvm_error = gathered.report.failure.clone();

        // The SR LVs of those VGs that have no mapping: inactive, nothing to heal.
        let mapped: BTreeSet<&str> = gathered
            .mappings
            .iter()
            .map(|k| k.dm_name.as_str())
            .collect();
        let mut inactive_lvs = Vec::new();
        for r in &gathered.report.records {
            let (Ok(vg), Ok(lv)) = (crate::ids::VgName::new(&r.vg_name), LvName::new(&r.lv_name))
            else {
                continue;
            };
            if lvm::sr_of_vg(&vg).is_none() {
                continue;
            }
            if let Ok(name) = lvm::dm_name_for(&vg, &lv) {
                if !mapped.contains(name.as_str()) {
                    inactive_lvs.push(format!("/dev/{vg}/{lv}"));
                }
            }
        }
        let mut counts = ScanCounts {
            inactive_lvs: inactive_lvs.len(),
            ..Default::default()
        };
        let mut found = Vec::new();
        let (this_host, this_uuid) = (self.describe(), self.config.xapi.this_host());
        for k in std::mem::take(&mut gathered.mappings) {
            let f = gathered.complete(k)?;
            let m = Inspection::new(f.dm_name.to_string(), f);
            counts.add(m.verdict);
            if let (Verdict::Ghost, Some(vdi)) = (m.verdict, &m.facts.vdi) {
                found.push(ghost_found(&this_host, &this_uuid, vdi, &m.dm_name));
            }
            each(m)?;
        }
        clock.lap("scan: decided");
        drop(gathered);
        self.announce(&found);
        Ok(ScanSummary {
            counts,
            inactive_lvs,
            lvm_error,
        })
    }
}

/// The message a scan's ghost gives: warning, with the command that heals it.
fn ghost_found(host: &str, host_uuid: &Option<String>, vdi: &Uuid, dm_name: &str) -> Message {
    let heal = match host_uuid {
        Some(h) => crate::commands::heal_through_plugin(h, vdi.as_str()),
        None => format!(
            "{} (on that host)",
            crate::commands::heal_here(vdi.as_str())
        ),
    };
    Message {
        name: messages::GHOST_FOUND,
        priority: messages::PRIORITY_WARNING,
        vdi_uuid: vdi.to_string(),
        body: format!(
            "dmheal found a ghost device-mapper mapping of this VDI on host {host}: {dm_name}. \
             Activating the VDI there fails (Device or resource busy, SR_BACKEND_FAILURE_46) \
             until it is removed: {heal}"
        ),
    }
}

#[cfg(test)]
mod tests {
    //! A host scan against a fake kernel whose list does, or does not, carry uuids: the same
    //! verdicts either way, and with uuids LVM's own mappings cost no status ioctl.
    use std::rc::Rc;

    use super::*;
    use crate::dm::{DevNum, DmDevice};
    use crate::ids::{LvName, VgName};
    use crate::test_support::{self, FakeKernel};
    use crate::verdict::Verdict;

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
    const VG_UUID: &str = "K2BweQ";

    /// (role, open count, uuid the mapping carries). "stale": an LVM uuid that is not its LV's.
    const MAPPINGS: [(&str, i32, &str); 5] = [
        ("stale", 0, "LVM-K2BweQold1"),
        ("owned", 0, "LVM-K2BweQLV1"),
        ("ghost", 0, ""),
        ("open", 1, ""),
        ("stale-open", 2, "LVM-K2BweQold2"),
    ];

    fn vdi(i: usize) -> String {
        format!("0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d{i}")
    }

    fn dm_name(i: usize) -> DmName {
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = LvName::new(&format!("VHD-{}", vdi(i))).unwrap();
        lvm::dm_name_for(&vg, &lv).unwrap()
    }

    /// The kernel of MAPPINGS.
    fn kernel(uuids_listed: bool) -> FakeKernel {
        let devices = MAPPINGS
            .iter()
            .enumerate()
            .map(|(i, (_, open, uuid))| DmDevice {
                name: dm_name(i).to_string(),
                uuid: (*uuid).into(),
                dev: DevNum {
                    major: 254,
                    minor: i as u32,
                },
                status: Some(test_support::status(*open)),
                table: Some(test_support::linear_table(8)),
            })
            .collect();
        FakeKernel::new(devices, uuids_listed)
    }

    fn host(dir: &std::path::Path, kernel: FakeKernel) -> OpContext {
        // A stand-in lvs: every LV inactive but LV1's ("owned" carries its uuid).
        let lvs: Vec<String> = (0..MAPPINGS.len())
            .map(|i| {
                format!(
                    "{{\"vg_name\":\"VG_XenStorage-{SR}\",\"lv_name\":\"VHD-{}\",\"lv_uuid\":\"LV{i}\",\
                     \"vg_uuid\":\"{VG_UUID}\",\"lv_attr\":\"-wi-{}-----\"}}",
                    vdi(i),
                    if i == 1 { "a" } else { "-" }
                )
            })
            .collect();
        let config = test_support::config(dir, &lvs.join(","));
        OpContext::new(config, Box::new(kernel))
    }

    /// The scan's mappings, and every name or uuid the fake kernel was asked about.
    fn scan_with(uuids_listed: bool) -> (Vec<Inspection>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let kernel = kernel(uuids_listed);
        let asked = Rc::clone(&kernel.asked);
        let host = host(dir.path(), kernel);
        let scan = host.scan().unwrap();
        let asked = asked.borrow().clone();
        (scan.mappings, asked)
    }

    fn verdicts(ms: &[Inspection]) -> Vec<(String, Verdict)> {
        let role = |name: &str| {
            (0..MAPPINGS.len())
                .find(|i| dm_name(*i).as_str() == name)
                .map(|i| MAPPINGS[i].0.to_string())
                .unwrap()
        };
        let mut v: Vec<_> = ms.iter().map(|m| (role(&m.dm_name), m.verdict)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn listed_uuids_change_no_verdict() {
        let (with, _) = scan_with(true);
        let (without, _) = scan_with(false);
        let expected = vec![
            ("ghost".to_string(), Verdict::Ghost),
            ("open".to_string(), Verdict::InUse),
            ("owned".to_string(), Verdict::Healthy),
            ("stale".to_string(), Verdict::Ghost),
            ("stale-open".to_string(), Verdict::InUse),
        ];
        assert_eq!(verdicts(&with), expected);
        assert_eq!(verdicts(&without), expected);
    }

    #[test]
    fn with_listed_uuids_lvms_own_mapping_costs_no_ioctl() {
        let owned = dm_name(1).to_string();
        let (with, asked) = scan_with(true);
        assert!(!asked.contains(&owned), "asked {asked:?}");
        // Nor is the kernel asked by uuid: the list said which LVM uuids it carries.
        assert!(
            !asked.iter().any(|a| a.starts_with("LVM-")),
            "asked {asked:?}"
        );
        let m = with.iter().find(|m| m.dm_name == owned).unwrap();
        let device = m.facts.device.as_ref().unwrap();
        assert!(device.status.is_none());
        assert_eq!(device.uuid, "LVM-K2BweQLV1");
        // The stale ones were asked after LVM was read; the open one's holders searched.
        let stale_open = with
            .iter()
            .find(|m| m.dm_name == dm_name(4).as_str())
            .unwrap();
        assert_eq!(
            stale_open.facts.device.as_ref().unwrap().open_count(),
            Some(2)
        );
        assert_eq!(
            stale_open.facts.users_searched,
            crate::facts::UsersSearched::Holders
        );

        // Without uuids in the list every mapping is asked, as before.
        let (without, asked) = scan_with(false);
        assert!(asked.contains(&owned), "asked {asked:?}");
        let m = without.iter().find(|m| m.dm_name == owned).unwrap();
        assert_eq!(m.facts.device.as_ref().unwrap().open_count(), Some(0));
    }

    #[test]
    fn a_scan_read_back_by_the_pool_is_the_same_json() {
        let dir = tempfile::tempdir().unwrap();
        let scan = host(dir.path(), kernel(true)).scan().unwrap();
        let sent = serde_json::to_value(&scan).unwrap();
        let read: crate::results::ScanAnswer = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(read.counts, scan.counts);
        assert_eq!(read.mappings.len(), MAPPINGS.len());
        assert!(read
            .mappings
            .iter()
            .all(|m| m.facts.sr.as_deref() == Some(SR)));
        assert_eq!(serde_json::to_value(&read).unwrap(), sent);
    }
}
