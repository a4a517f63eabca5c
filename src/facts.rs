//! An immutable picture of what every local layer says about some mappings. Gathered first,
//! decided on afterwards (`verdict`), acted on last (`heal`): a dry run is "stop after deciding".

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use tracing::debug;

use crate::config::Config;
use crate::dm::{DevNum, DeviceMapper, DmDevice};
use crate::error::Result;
use crate::ids::{DmName, Uuid, VgName};
use crate::kernel::{self, Holder, Mount, Opener};
use crate::lvm::{self, LvmDmName, LvmView, VgReport};
use crate::sm::refcount::{self, Refcount};
use crate::tapdisk::{self, Tapdisk, TapdiskView};
use crate::xapi::{self, XapiView};

/// tapdisk's layer, reduced to what concerns this volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TapdiskFacts {
    /// tap-ctl answered; these tapdisks name this volume (paused or not).
    Listed {
        naming_this: Vec<Tapdisk>,
    },
    NotInstalled,
    Failed {
        why: String,
    },
    /// Not asked: no mapping, or not an SR volume.
    NotChecked,
}

/// Everything known about one DM name.
#[derive(Clone, Debug, Serialize)]
pub struct Facts {
    pub dm_name: DmName,
    /// The name split back into VG / LV (None when it is not LVM-shaped).
    pub lvm_name: Option<LvmDmName>,
    pub sr: Option<Uuid>,
    pub vdi: Option<Uuid>,
    /// The mapping in the kernel; None: no mapping of that name.
    pub device: Option<DmDevice>,
    /// What was searched for users (see `KernelSearch`).
    pub users_searched: UsersSearched,
    pub holders: Vec<Holder>,
    pub openers: Vec<Opener>,
    pub mounts: Vec<Mount>,
    /// LVM's view; None when not asked (no mapping, or not an SR volume).
    pub lvm: Option<LvmView>,
    /// Another LV (`vg/lv`) whose LVM DM uuid this mapping carries, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid_owner: Option<String>,
    pub tapdisk: TapdiskFacts,
    pub refcount: Refcount,
    pub xapi: XapiView,
}

impl Facts {
    /// Whether this name is an SR volume that dmheal may consider at all.
    pub fn is_sr_volume(&self) -> bool {
        self.sr.is_some() && self.lvm_name.as_ref().is_some_and(|n| n.layer.is_none())
    }
}

/// Where to look for holders, openers and mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelSearch {
    /// Every mapping, whatever its open count: inspect, heal and heal's re-check.
    Everywhere,
    /// A host scan: sysfs holders only, and only for mappings the kernel counts as open. An
    /// opener, a mount and a stacked holder all raise the open count, so with a count of 0
    /// none can exist; an open mapping is in use by its count alone. /proc is not walked
    /// (thousands of kernel threads on a busy host); `inspect` names the processes.
    HoldersWhereOpen,
}

/// What was searched for users of one mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsersSearched {
    /// Holders, openers and mounts.
    All,
    /// Holders only (host scan, open mapping).
    Holders,
    /// Nothing: the open count is 0 (host scan).
    Nothing,
}

/// Gather the facts for each name, sharing one tap-ctl run, one LVM read and one /proc pass.
pub fn gather(
    config: &Config,
    dm: &dyn DeviceMapper,
    names: &[DmName],
    search: KernelSearch,
) -> Result<Vec<Facts>> {
    gather_with_lvm(config, dm, names, search).map(|(facts, _)| facts)
}

/// `gather`, also handing back LVM's view of the VGs concerned.
pub fn gather_with_lvm(
    config: &Config,
    dm: &dyn DeviceMapper,
    names: &[DmName],
    search: KernelSearch,
) -> Result<(Vec<Facts>, VgReport)> {
    let mut g = prepare(config, dm, names, search)?;
    let mut all = std::mem::take(&mut g.facts);
    for f in all.iter_mut() {
        g.complete(f)?;
    }
    Ok((all, g.report))
}

/// The shared passes done, the per-volume layers still to do: a host scan completes, decides
/// and prints one mapping at a time, so thousands of verdicts are never all held at once.
pub struct Gathered<'a> {
    config: &'a Config,
    dm: &'a dyn DeviceMapper,
    /// The mappings asked about; the SR volumes among them still lack their LVM, tapdisk,
    /// SM and xapi facts until `complete`d.
    pub facts: Vec<Facts>,
    /// LVM's view of the VGs concerned (a host scan lists their unmapped LVs from it).
    pub report: VgReport,
    carried: HashSet<String>,
    taps: TapdiskView,
    xapi_conn: XapiConnection,
    refcounts: refcount::Reader<'a>,
}

/// Everything shared by the mappings asked about: DM status, holders, one /proc pass, one LVM
/// read, one tap-ctl run, one xapi connection.
pub fn prepare<'a>(
    config: &'a Config,
    dm: &'a dyn DeviceMapper,
    names: &[DmName],
    search: KernelSearch,
) -> Result<Gathered<'a>> {
    let clock = std::time::Instant::now();
    let phase = |what: &str| {
        debug!(
            phase = what,
            ms = clock.elapsed().as_millis() as u64,
            "facts"
        )
    };
    let mut all: Vec<Facts> = Vec::with_capacity(names.len());
    for name in names {
        let lvm_name = lvm::split_dm_name(name);
        let sr = lvm_name.as_ref().and_then(|n| lvm::sr_of_vg(&n.vg));
        let vdi = lvm_name.as_ref().and_then(|n| lvm::vdi_of_lv(&n.lv));
        all.push(Facts {
            dm_name: name.clone(),
            // Inspect and heal read the table (journal, re-check); a host scan reads it below
            // only where it matters.
            device: match search {
                KernelSearch::Everywhere => dm.device(name)?,
                KernelSearch::HoldersWhereOpen => dm.status(name)?,
            },
            users_searched: UsersSearched::Nothing,
            lvm_name,
            sr,
            vdi,
            holders: Vec::new(),
            openers: Vec::new(),
            mounts: Vec::new(),
            lvm: None,
            uuid_owner: None,
            tapdisk: TapdiskFacts::NotChecked,
            refcount: Refcount::NotApplicable,
            xapi: XapiView::NotApplicable,
        });
    }

    // Only mappings that exist and belong to an SR need the other layers: the common case in
    // the activation path (no mapping) costs one ioctl and nothing more.
    let wanted: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].device.is_some() && all[*i].is_sr_volume())
        .collect();
    if search == KernelSearch::HoldersWhereOpen {
        read_needed_tables(dm, &mut all, &wanted)?;
    }
    let searched = |d: &DmDevice| search == KernelSearch::Everywhere || d.open_count > 0;
    let present: BTreeSet<DevNum> = all
        .iter()
        .filter_map(|f| f.device.as_ref().filter(|d| searched(d)).map(|d| d.dev))
        .filter(|_| search == KernelSearch::Everywhere)
        .collect();

    phase("device-mapper status");
    // Kernel: holders per device; openers and mounts in one /proc pass.
    let usage = kernel::scan(&config.proc_root, &present);
    phase("/proc openers and mounts");
    for f in all.iter_mut() {
        if let Some(d) = f.device.as_ref().filter(|d| searched(d)) {
            f.users_searched = match search {
                KernelSearch::Everywhere => UsersSearched::All,
                KernelSearch::HoldersWhereOpen => UsersSearched::Holders,
            };
            f.holders = kernel::holders_of(&config.sys_root, d.dev);
            f.openers = usage.openers.get(&d.dev).cloned().unwrap_or_default();
            f.mounts = usage.mounts.get(&d.dev).cloned().unwrap_or_default();
        }
    }
    phase("sysfs holders");
    if wanted.is_empty() {
        return Ok(Gathered {
            config,
            dm,
            facts: all,
            report: VgReport::default(),
            carried: HashSet::new(),
            taps: TapdiskView::NotInstalled,
            xapi_conn: XapiConnection::None,
            refcounts: refcount::Reader::new(&config.refcount_dir),
        });
    }

    // LVM: each VG read from the devices its mappings are built on.
    let mut vgs: BTreeMap<VgName, Vec<DevNum>> = BTreeMap::new();
    for i in &wanted {
        let (Some(n), Some(d)) = (&all[*i].lvm_name, &all[*i].device) else {
            continue;
        };
        let devices = vgs.entry(n.vg.clone()).or_default();
        for dev in lvm::table_devices(d.table.as_deref().unwrap_or_default()) {
            if !devices.contains(&dev) {
                devices.push(dev);
            }
        }
    }
    let report = lvm::source::read(config.lvm_reader, &config.pv_reader(), &config.lvs(), &vgs);
    phase("lvm");
    if search == KernelSearch::HoldersWhereOpen {
        // Idle mappings with an LVM uuid that is not their LV's today (a stale LVM mapping of
        // a removed or re-created LV) may be ghosts too: their tables as well.
        for i in &wanted {
            let f = &mut all[*i];
            let (Some(d), Some(n)) = (&f.device, &f.lvm_name) else {
                continue;
            };
            let stale = d.table.is_none()
                && d.open_count == 0
                && report.expected_dm_uuid(&n.vg, &n.lv).as_deref() != Some(d.uuid.as_str());
            if stale {
                f.device = dm.device(&f.dm_name)?;
            }
        }
    }
    // Which LVM uuids the kernel carries, for metadata records (lvs works it out itself).
    let carried: HashSet<String> = all
        .iter()
        .filter_map(|f| f.device.as_ref().map(|d| d.uuid.clone()))
        .filter(|u| u.starts_with("LVM-"))
        .collect();
    // tapdisk.
    let taps = tapdisk::list(&config.tap_ctl, config.tool_timeout);
    phase("tap-ctl");
    // xapi: one connection for all the VDIs asked about.
    let xapi_conn = xapi_connection(config);
    phase("xapi");
    Ok(Gathered {
        config,
        dm,
        facts: all,
        report,
        carried,
        taps,
        xapi_conn,
        refcounts: refcount::Reader::new(&config.refcount_dir),
    })
}

impl Gathered<'_> {
    /// The per-volume layers of one mapping (nothing to add unless it exists and is an SR
    /// volume).
    pub fn complete(&mut self, f: &mut Facts) -> Result<()> {
        if f.device.is_none() || !f.is_sr_volume() {
            return Ok(());
        }
        let Some(n) = f.lvm_name.clone() else {
            return Ok(());
        };
        let (report, carried, dm, config) = (&self.report, &self.carried, self.dm, self.config);
        let (taps, xapi_conn, refcounts) = (&self.taps, &self.xapi_conn, &mut self.refcounts);
        let mut view = report.view(&n.vg, &n.lv);
        if let LvmView::Lv(lv) = &mut view {
            if lv.read_from == lvm::ReadFrom::Metadata {
                let uuid = lv.expected_dm_uuid();
                lv.active = carried.contains(&uuid) || dm.has_uuid(&uuid)?;
            }
        }
        f.lvm = Some(view);
        f.uuid_owner = f
            .device
            .as_ref()
            .and_then(|d| report.other_owner(&d.uuid, &n.vg, &n.lv));
        f.tapdisk = match &taps {
            TapdiskView::Listed { tapdisks } => {
                // The paths that would name this volume, formatted once per volume.
                let lv_path = format!("/dev/{}/{}", n.vg, n.lv);
                let mapper_path = format!("/dev/mapper/{}", f.dm_name);
                let vdi = f.vdi.as_ref().map(|v| v.as_str());
                TapdiskFacts::Listed {
                    naming_this: tapdisks
                        .iter()
                        .filter(|t| {
                            t.path
                                .as_deref()
                                .is_some_and(|p| names_volume(p, Some(&lv_path), &mapper_path, vdi))
                        })
                        .cloned()
                        .collect(),
                }
            }
            TapdiskView::NotInstalled => TapdiskFacts::NotInstalled,
            TapdiskView::Failed { why } => TapdiskFacts::Failed { why: why.clone() },
        };
        f.refcount = match (&f.sr, &f.vdi) {
            (Some(sr), Some(vdi)) => refcounts.read(sr, vdi),
            _ => Refcount::NotApplicable,
        };
        f.xapi = match (&f.vdi, &xapi_conn) {
            (None, _) => XapiView::NotApplicable,
            (Some(_), XapiConnection::None) => XapiView::NotConfigured,
            (Some(_), XapiConnection::Failed(why)) => XapiView::Unreachable { why: why.clone() },
            (Some(vdi), XapiConnection::Up(client, host)) => {
                xapi::view::vdi_view(client, host, vdi.as_str(), config.activating)
            }
        };
        Ok(())
    }
}

/// A host scan's tables, before LVM is read: those of possible ghosts (idle, not carrying an LVM
/// uuid: the table is what a heal would journal), and one LVM-owned mapping's per VG, whose
/// table names a PV the VG's metadata can be read from.
fn read_needed_tables(dm: &dyn DeviceMapper, all: &mut [Facts], wanted: &[usize]) -> Result<()> {
    let mut vg_covered: HashSet<VgName> = HashSet::new();
    for i in wanted {
        let f = &mut all[*i];
        let (Some(d), Some(n)) = (&f.device, &f.lvm_name) else {
            continue;
        };
        let lvm_owned = d.uuid.starts_with("LVM-");
        let candidate = d.open_count == 0 && !lvm_owned;
        let finds_pv = lvm_owned && !vg_covered.contains(&n.vg);
        if candidate || finds_pv {
            let vg = n.vg.clone();
            f.device = dm.device(&f.dm_name)?;
            if finds_pv && f.device.as_ref().is_some_and(|d| d.table.is_some()) {
                vg_covered.insert(vg);
            }
        }
    }
    Ok(())
}

enum XapiConnection {
    None,
    Failed(String),
    Up(xapi::Xapi, String),
}

fn xapi_connection(config: &Config) -> XapiConnection {
    match config.xapi.connect() {
        Ok(None) => XapiConnection::None,
        Err(e) => XapiConnection::Failed(xapi::view::error_chain(&e)),
        Ok(Some(client)) => match config.xapi.this_host() {
            Some(host) => XapiConnection::Up(client, host),
            None => XapiConnection::Failed(format!(
                "this host's uuid is unknown (no INSTALLATION_UUID in {}; set DMHEAL_HOST_UUID)",
                config.xapi.inventory.display()
            )),
        },
    }
}

/// Whether a tapdisk's image path names this volume: by /dev/<vg>/<lv>, by /dev/mapper/<dm>,
/// or — erring on the side of "in use" — by containing the VDI's uuid at all.
fn names_volume(path: &str, lv_path: Option<&str>, mapper_path: &str, vdi: Option<&str>) -> bool {
    Some(path) == lv_path || path == mapper_path || vdi.is_some_and(|v| path.contains(v))
}
