//! Gathering the facts: one pass per layer over every name asked about (device-mapper status,
//! sysfs holders, one /proc walk, one LVM read, one tap-ctl run, this host's xapi session), then
//! each name completed into its `Facts`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{Facts, KernelSearch, TapdiskFacts, UsersSearched};
use crate::config::Config;
use crate::dm::{DevNum, DeviceMapper, DmDevice};
use crate::error::Result;
use crate::ids::{DmName, Uuid, VgName};
use crate::kernel::{self, Holder, Mount, Opener};
use crate::lvm::{self, LvmView, SrVolume, TablePvs, VgReport};
use crate::sm::refcount::{self, Refcount};
use crate::tapdisk::{self, TapdiskView};
use crate::xapi::{self, session::Connection, XapiView};

/// Where xapi's view of each volume comes from.
pub enum XapiSource<'a> {
    /// This host's session, asked per VDI as each volume is completed.
    Session(&'a xapi::Session),
    /// Asked before, per VDI (a heal asks xapi before taking SM's lock: the lock does not order
    /// xapi's records, and xapi may be slow).
    Asked(BTreeMap<Uuid, XapiView>),
}

/// Gather the facts for each name, sharing one tap-ctl run, one LVM read and one /proc pass.
pub fn gather(
    config: &Config,
    dm: &dyn DeviceMapper,
    xapi: XapiSource<'_>,
    names: &[DmName],
    search: KernelSearch,
) -> Result<Vec<Facts>> {
    let asked = names.iter().map(|n| Asked::name(n.clone())).collect();
    let mut g = prepare(config, dm, xapi, asked, search, None)?;
    let mut all = Vec::with_capacity(g.mappings.len());
    for k in std::mem::take(&mut g.mappings) {
        all.push(g.complete(k)?);
    }
    Ok(all)
}

/// xapi's view of each VDI from this host, through its session.
pub fn xapi_views(
    config: &Config,
    session: &xapi::Session,
    vdis: &[Uuid],
) -> BTreeMap<Uuid, XapiView> {
    vdis.iter()
        .map(|v| (v.clone(), xapi_view(config, session, v)))
        .collect()
}

/// xapi's view of one VDI from this host.
fn xapi_view(config: &Config, session: &xapi::Session, vdi: &Uuid) -> XapiView {
    match session.connection(|t| config.within(t)) {
        Connection::None => XapiView::NotConfigured,
        Connection::Failed(why) => XapiView::Unreachable { why: why.clone() },
        Connection::Up {
            this_host: None, ..
        } => XapiView::Unreachable {
            why: session.unknown_host_message(),
        },
        Connection::Up {
            client,
            this_host: Some(host),
        } => xapi::view::vdi_view(client, host, vdi.as_str(), config.activating),
    }
}

/// One name to gather facts for.
pub struct Asked {
    pub name: DmName,
    /// Device number and uuid ("" for none) as the kernel's list gave them, when a host scan
    /// listed the name with uuids (Linux 5.15 and later).
    pub listed: Option<(DevNum, String)>,
}

impl Asked {
    pub fn name(name: DmName) -> Self {
        Asked { name, listed: None }
    }
}

/// The kernel's side of one name after the shared passes; `Gathered::complete` adds the other
/// layers. Kept small: a host scan holds one per mapping until each is decided in turn.
pub struct KernelFacts {
    pub dm_name: DmName,
    pub device: Option<DmDevice>,
    pub users_searched: UsersSearched,
    pub holders: Vec<Holder>,
    pub openers: Vec<Opener>,
    pub mounts: Vec<Mount>,
    pub holders_unreadable: Option<String>,
    pub proc_unreadable: Option<String>,
}

impl KernelFacts {
    /// A name with nothing known of it yet.
    pub fn named(dm_name: DmName) -> Self {
        KernelFacts {
            dm_name,
            device: None,
            users_searched: UsersSearched::Nothing,
            holders: Vec::new(),
            openers: Vec::new(),
            mounts: Vec::new(),
            holders_unreadable: None,
            proc_unreadable: None,
        }
    }

    fn sr_volume(&self) -> Option<SrVolume> {
        lvm::sr_volume(&self.dm_name)
    }

    fn open(&self) -> bool {
        self.device
            .as_ref()
            .and_then(|d| d.open_count())
            .is_some_and(|n| n > 0)
    }
}

/// The shared passes done, the per-volume layers still to do: a host scan completes, decides
/// and prints one mapping at a time, so thousands of verdicts are never all held at once.
pub struct Gathered<'a> {
    config: &'a Config,
    dm: &'a dyn DeviceMapper,
    /// The mappings asked about, in order, each to be `complete`d into its `Facts`.
    pub mappings: Vec<KernelFacts>,
    /// LVM's view of the VGs concerned (a host scan lists their unmapped LVs from it).
    pub report: VgReport,
    /// LVM uuids the kernel carries; `carried_all`: every mapping's, from the kernel's list
    /// (otherwise only the ones asked about, and the kernel is asked for the others).
    carried: HashSet<String>,
    carried_all: bool,
    taps: TapdiskView,
    /// Which of `taps` name which volume, indexed once.
    tap_index: TapIndex,
    xapi: XapiSource<'a>,
    refcounts: refcount::Reader<'a>,
}

/// Everything shared by the mappings asked about: DM status, holders, one /proc pass, one LVM
/// read, one tap-ctl run, one xapi connection. `carried_by_kernel`: every LVM uuid the kernel
/// carries, when a scan's listing reported them all.
pub fn prepare<'a>(
    config: &'a Config,
    dm: &'a dyn DeviceMapper,
    xapi: XapiSource<'a>,
    asked: Vec<Asked>,
    search: KernelSearch,
    carried_by_kernel: Option<HashSet<String>>,
) -> Result<Gathered<'a>> {
    let clock = crate::logging::Stopwatch::start();
    let phase = |what: &str| clock.lap(what);
    let mut all: Vec<KernelFacts> = Vec::with_capacity(asked.len());
    for Asked { name, listed } in asked {
        let mut k = KernelFacts::named(name);
        k.device = match (search, listed) {
            // Inspect and heal read status and table (journal, re-check).
            (KernelSearch::AllWhereOpen, _) => dm.device(&k.dm_name)?,
            // Listed with an LVM uuid: whether it is exactly its LV's is known once LVM is
            // read; only then is the kernel asked, and only if it is not.
            (KernelSearch::HoldersWhereOpen, Some((dev, uuid)))
                if uuid.starts_with("LVM-") && k.sr_volume().is_some() =>
            {
                Some(DmDevice::listed(&k.dm_name, uuid, dev))
            }
            // Listed with no LVM uuid: status and table in one call; the table is what a
            // possible ghost's verdict reads, and a scan keeps it of idle mappings only.
            (KernelSearch::HoldersWhereOpen, Some(_)) if k.sr_volume().is_some() => {
                dm.device(&k.dm_name)?.map(|mut d| {
                    if d.open_count().is_none_or(|n| n > 0) {
                        d.table = None;
                    }
                    d
                })
            }
            (KernelSearch::HoldersWhereOpen, _) => dm.status(&k.dm_name)?,
        };
        all.push(k);
    }

    // Only mappings that exist and belong to an SR need the other layers: the common case in
    // the activation path (no mapping) costs one ioctl and nothing more.
    let wanted: Vec<usize> = (0..all.len())
        .filter(|i| all[*i].device.is_some() && all[*i].sr_volume().is_some())
        .collect();
    if search == KernelSearch::HoldersWhereOpen {
        read_needed_tables(dm, &mut all, &wanted)?;
    }
    let present: BTreeSet<DevNum> = all
        .iter()
        .filter(|k| k.open())
        .filter_map(|k| k.device.as_ref().map(|d| d.dev))
        .filter(|_| search == KernelSearch::AllWhereOpen)
        .collect();

    phase("device-mapper status");
    // Kernel: holders per device; openers and mounts in one /proc pass.
    let usage = kernel::scan(&config.proc_root, &present);
    phase("/proc openers and mounts");
    for k in all.iter_mut() {
        if k.open() {
            search_users(config, k, search, &usage);
        }
    }
    phase("sysfs holders");
    if wanted.is_empty() {
        return Ok(Gathered {
            config,
            dm,
            mappings: all,
            report: VgReport::default(),
            carried: HashSet::new(),
            carried_all: false,
            taps: TapdiskView::NotInstalled,
            tap_index: TapIndex::default(),
            xapi,
            refcounts: refcount::Reader::new(&config.refcount_dir),
        });
    }

    // LVM: each VG read from the devices its mappings are built on.
    let mut vgs: BTreeMap<VgName, lvm::source::VgMappings> = BTreeMap::new();
    for i in &wanted {
        let (Some(n), Some(d)) = (all[*i].sr_volume(), &all[*i].device) else {
            continue;
        };
        let m = vgs.entry(n.vg).or_default();
        for dev in lvm::table_devices(d.table.as_deref().unwrap_or_default()) {
            if !m.devices.contains(&dev) {
                m.devices.push(dev);
            }
        }
        if d.uuid.starts_with("LVM-") {
            m.lvm_uuids.push(d.uuid.to_string());
        }
    }
    // Inspect and heal ask about a few volumes: only their LVs are read out of the metadata
    // (by name, and by id for a mapping that carries an LVM uuid), not the VG's thousands. A
    // host scan wants every LV (the inactive ones are listed).
    let filter = (search == KernelSearch::AllWhereOpen).then(|| {
        let mut f = lvm::metadata_text::LvFilter::default();
        for i in &wanted {
            let (Some(n), Some(d)) = (all[*i].sr_volume(), &all[*i].device) else {
                continue;
            };
            f.names.insert(n.lv.to_string());
            if let Some(id) = d.uuid.strip_prefix("LVM-").filter(|u| u.len() == 64) {
                f.ids.insert(id[32..].to_string());
            }
        }
        f
    });
    // tap-ctl runs while LVM is read (each is a process of its own; neither waits on the other).
    let tap_ctl = tapdisk::start(&config.tap_ctl, config.within(config.tool_timeout));
    let report = lvm::source::read(
        config.lvm_reader,
        &config.pv_reader(),
        &|| config.lvs(),
        &vgs,
        filter.as_ref(),
    );
    phase("lvm");
    if search == KernelSearch::HoldersWhereOpen {
        // A mapping listed with an LVM uuid that is not its LV's today (a stale mapping of a
        // removed or re-created LV), and an idle one whose status showed such a uuid, may be
        // ghosts too: their status and table now, and their holders if they are open.
        for i in &wanted {
            let k = &mut all[*i];
            let (Some(d), Some(n)) = (&k.device, k.sr_volume()) else {
                continue;
            };
            let not_lvms =
                report.expected_dm_uuid(&n.vg, &n.lv).as_deref() != Some(d.uuid.as_str());
            let idle_or_unknown = d.open_count().is_none_or(|n| n == 0);
            if not_lvms && d.table.is_none() && idle_or_unknown {
                k.device = dm.device(&k.dm_name)?;
                if k.open() && k.users_searched == UsersSearched::Nothing {
                    search_users(config, k, search, &usage);
                }
            }
        }
    }
    // Which LVM uuids the kernel carries, for metadata records (lvs works it out itself).
    let carried_all = carried_by_kernel.is_some();
    let carried: HashSet<String> = carried_by_kernel.unwrap_or_else(|| {
        all.iter()
            .filter_map(|k| k.device.as_ref().map(|d| d.uuid.to_string()))
            .filter(|u| u.starts_with("LVM-"))
            .collect()
    });
    // tapdisk.
    let taps = tapdisk::collect(&config.tap_ctl, tap_ctl);
    phase("tap-ctl");
    Ok(Gathered {
        config,
        dm,
        mappings: all,
        report,
        carried,
        carried_all,
        tap_index: TapIndex::of(&taps),
        taps,
        xapi,
        refcounts: refcount::Reader::new(&config.refcount_dir),
    })
}

/// Holders (and, everywhere, openers and mounts) of one existing mapping.
fn search_users(config: &Config, k: &mut KernelFacts, search: KernelSearch, usage: &kernel::Usage) {
    let Some(d) = &k.device else {
        return;
    };
    k.users_searched = match search {
        KernelSearch::AllWhereOpen => UsersSearched::All,
        KernelSearch::HoldersWhereOpen => UsersSearched::Holders,
    };
    match kernel::holders_of(&config.sys_root, d.dev) {
        Ok(h) => k.holders = h,
        Err(why) => k.holders_unreadable = Some(why),
    }
    if search == KernelSearch::AllWhereOpen {
        k.openers = usage.openers.get(&d.dev).cloned().unwrap_or_default();
        k.mounts = usage.mounts.get(&d.dev).cloned().unwrap_or_default();
        k.proc_unreadable = usage.unreadable.clone();
    }
}

impl Gathered<'_> {
    /// The kernel's side of one name read again now (status, table; holders, openers and
    /// mounts if it is open): what a batch re-decides each mapping on, under SM's lock, with
    /// the batch's shared layers (LVM, tapdisk, xapi) as they were read at its start.
    pub fn refresh(&self, name: &DmName) -> Result<KernelFacts> {
        let mut k = KernelFacts::named(name.clone());
        k.device = self.dm.device(name)?;
        if k.open() {
            let dev: BTreeSet<DevNum> = k.device.as_ref().map(|d| d.dev).into_iter().collect();
            let usage = kernel::scan(&self.config.proc_root, &dev);
            search_users(self.config, &mut k, KernelSearch::AllWhereOpen, &usage);
        }
        Ok(k)
    }

    /// All the facts of one mapping: the kernel's side, and the per-volume layers when it
    /// exists and is an SR volume.
    pub fn complete(&mut self, k: KernelFacts) -> Result<Facts> {
        let lvm_name = lvm::split_dm_name(&k.dm_name);
        let sr = lvm_name.as_ref().and_then(|n| lvm::sr_of_vg(&n.vg));
        let volume = lvm::sr_volume(&k.dm_name);
        let vdi = volume.as_ref().and_then(|v| v.vdi.clone());
        let stores = volume.map(|v| v.stores);
        let mut f = Facts {
            dm_name: k.dm_name,
            lvm_name,
            sr,
            vdi,
            stores,
            device: k.device,
            users_searched: k.users_searched,
            holders: k.holders,
            openers: k.openers,
            mounts: k.mounts,
            holders_unreadable: k.holders_unreadable,
            proc_unreadable: k.proc_unreadable,
            lvm: None,
            uuid_owner: None,
            table_pvs: TablePvs::NotChecked,
            tapdisk: TapdiskFacts::NotChecked,
            refcount: Refcount::NotApplicable,
            xapi: XapiView::NotApplicable,
            activating: self.config.activating,
        };
        if f.device.is_none() || !f.is_sr_volume() {
            return Ok(f);
        }
        let Some(n) = f.lvm_name.clone() else {
            return Ok(f);
        };
        let (report, carried, dm, config) = (&self.report, &self.carried, self.dm, self.config);
        let (taps, tap_index, refcounts) = (&self.taps, &self.tap_index, &mut self.refcounts);
        let mut view = report.view(&n.vg, &n.lv);
        if let LvmView::Lv(lv) = &mut view {
            if lv.read_from == lvm::ReadFrom::Metadata {
                let uuid = lv.expected_dm_uuid();
                lv.active = carried.contains(&uuid) || (!self.carried_all && dm.has_uuid(&uuid)?);
            }
        }
        f.lvm = Some(view);
        f.uuid_owner = f
            .device
            .as_ref()
            .and_then(|d| report.other_owner(&d.uuid, &n.vg, &n.lv));
        let owned = matches!(&f.lvm, Some(LvmView::Lv(lv))
            if f.device.as_ref().is_some_and(|d| lv.expected_dm_uuid() == d.uuid));
        f.table_pvs = match f.device.as_ref().and_then(|d| d.table.as_deref()) {
            Some(table) if !owned => report.table_on_vg(&n.vg, table),
            _ => TablePvs::NotChecked,
        };
        f.tapdisk = match &taps {
            TapdiskView::Listed { tapdisks } => TapdiskFacts::Listed {
                naming_this: tap_index
                    .naming(&n, &f.dm_name, f.vdi.as_ref())
                    .into_iter()
                    .map(|i| tapdisks[i].clone())
                    .collect(),
            },
            TapdiskView::NotInstalled => TapdiskFacts::NotInstalled,
            TapdiskView::Failed { why } => TapdiskFacts::Failed { why: why.clone() },
        };
        f.refcount = match (&f.sr, &f.vdi) {
            (Some(sr), Some(vdi)) => refcounts.read(sr, vdi),
            _ => Refcount::NotApplicable,
        };
        f.xapi = match (&f.vdi, &self.xapi) {
            (None, _) => XapiView::NotApplicable,
            (Some(vdi), XapiSource::Session(session)) => xapi_view(config, session, vdi),
            (Some(vdi), XapiSource::Asked(views)) => {
                views.get(vdi).cloned().unwrap_or(XapiView::NotConfigured)
            }
        };
        Ok(f)
    }
}

/// A host scan's tables, before LVM is read: those of possible ghosts (idle, not carrying an LVM
/// uuid: the table is what a heal would journal), and one LVM-owned mapping's per VG, whose
/// table names a PV the VG's metadata can be read from.
fn read_needed_tables(
    dm: &dyn DeviceMapper,
    all: &mut [KernelFacts],
    wanted: &[usize],
) -> Result<()> {
    let mut vg_covered: HashSet<VgName> = HashSet::new();
    for i in wanted {
        let k = &mut all[*i];
        let (Some(d), Some(n)) = (&k.device, k.sr_volume()) else {
            continue;
        };
        let lvm_owned = d.uuid.starts_with("LVM-");
        let candidate = d.open_count() == Some(0) && !lvm_owned;
        let finds_pv = lvm_owned && !vg_covered.contains(&n.vg);
        if (candidate || finds_pv) && d.table.is_none() {
            k.device = dm.device(&k.dm_name)?;
        }
        if finds_pv && k.device.as_ref().is_some_and(|d| d.table.is_some()) {
            vg_covered.insert(n.vg);
        }
    }
    Ok(())
}

/// Which tapdisks name which volume, read once from tap-ctl's list: a host scan asks about
/// thousands of volumes, and a path search per volume and tapdisk was most of its time.
///
/// A tapdisk names a volume by its image path: `/dev/<vg>/<lv>`, `/dev/mapper/<dm name>`, or
/// — erring on the side of "in use" — any path containing the VDI's uuid at all (SM's
/// `/dev/sm/backend/<sr>/<vdi>`, a path dmheal does not know). A VDI uuid is 36 characters in
/// the 8-4-4-4-12 form, so a path contains it exactly when one of its well-formed 36-character
/// windows is it: those windows are the index.
#[derive(Default)]
struct TapIndex {
    by_path: HashMap<String, Vec<usize>>,
    by_uuid: HashMap<String, Vec<usize>>,
}

impl TapIndex {
    fn of(view: &TapdiskView) -> Self {
        let mut index = TapIndex::default();
        let TapdiskView::Listed { tapdisks } = view else {
            return index;
        };
        for (i, path) in tapdisks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, t.path.as_deref()?)))
        {
            index.by_path.entry(path.to_string()).or_default().push(i);
            for (at, _) in path.char_indices() {
                let Some(window) = path.get(at..at + 36) else {
                    continue;
                };
                if Uuid::is_well_formed(window) {
                    let naming = index.by_uuid.entry(window.to_string()).or_default();
                    if naming.last() != Some(&i) {
                        naming.push(i);
                    }
                }
            }
        }
        index
    }

    /// The tapdisks (indices into the list, in its order) that name volume `lv` of mapping
    /// `dm_name`, storing `vdi`.
    fn naming(&self, lv: &lvm::LvmDmName, dm_name: &DmName, vdi: Option<&Uuid>) -> Vec<usize> {
        if self.by_path.is_empty() {
            return Vec::new();
        }
        let paths = [
            format!("/dev/{}/{}", lv.vg, lv.lv),
            format!("/dev/mapper/{dm_name}"),
        ];
        let mut found: Vec<usize> = paths
            .iter()
            .filter_map(|p| self.by_path.get(p))
            .chain(vdi.and_then(|v| self.by_uuid.get(v.as_str())))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::DevNum;
    use crate::ids::{LvName, VgName};
    use crate::lvm::metadata_text::{LvMetadata, VgMetadata};
    use crate::tapdisk::Tapdisk;
    use crate::test_support::{self, FakeKernel};

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    /// Whether the LV of a ghost-shaped mapping comes out active, read from metadata records
    /// (where the kernel decides "active"), given what the kernel is known to carry; and
    /// what the kernel was asked.
    fn active_given(carried: &[&str], carried_all: bool) -> (bool, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let config = test_support::config(dir.path(), "");
        let kernel = FakeKernel::new(Vec::new(), true);
        let asked = std::rc::Rc::clone(&kernel.asked);
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = LvName::new(&format!("VHD-{VDI}")).unwrap();
        let name = lvm::dm_name_for(&vg, &lv).unwrap();
        let metadata = VgMetadata {
            name: vg.to_string(),
            id: "K2BweQ".into(),
            seqno: 1,
            pv_ids: Vec::new(),
            pvs: Vec::new(),
            extent_size: 8,
            lvs: vec![LvMetadata {
                name: lv.to_string(),
                id: "LV1".into(),
                visible: true,
                segments: Vec::new(),
            }],
        };
        let mut g = Gathered {
            config: &config,
            dm: &kernel,
            mappings: Vec::new(),
            report: VgReport::combine(vec![metadata], None),
            carried: carried.iter().map(|u| u.to_string()).collect(),
            carried_all,
            taps: TapdiskView::NotInstalled,
            tap_index: TapIndex::default(),
            xapi: XapiSource::Asked(BTreeMap::new()),
            refcounts: refcount::Reader::new(&config.refcount_dir),
        };
        let device = DmDevice {
            status: Some(test_support::status(0)),
            ..DmDevice::listed(
                &name,
                String::new(),
                DevNum {
                    major: 254,
                    minor: 0,
                },
            )
        };
        let k = KernelFacts {
            device: Some(device),
            ..KernelFacts::named(name)
        };
        let f = g.complete(k).unwrap();
        let Some(LvmView::Lv(lv)) = f.lvm else {
            panic!("no LV record: {:?}", f.lvm)
        };
        let asked = asked.borrow().clone();
        (lv.active, asked)
    }

    /// The rule the index answers: a path names a volume by its LV path, its mapper path, or
    /// by containing the VDI's uuid anywhere.
    fn names_by_search(path: &str, lv_path: &str, mapper_path: &str, vdi: Option<&str>) -> bool {
        path == lv_path || path == mapper_path || vdi.is_some_and(|v| path.contains(v))
    }

    #[test]
    fn the_tapdisk_index_finds_what_a_search_of_every_path_finds() {
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = LvName::new(&format!("VHD-{VDI}")).unwrap();
        let other_vdi = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d6";
        let other = LvName::new(&format!("LV-{other_vdi}")).unwrap();
        let paths = [
            format!("/dev/{vg}/{lv}"),
            format!("/dev/mapper/{}", lvm::dm_name_for(&vg, &other).unwrap()),
            format!("/dev/sm/backend/{SR}/{VDI}"),
            format!("/run/sr-mount/{SR}/{VDI}.vhd"),
            format!("/x/{}/{VDI}{VDI}", VDI.to_uppercase()),
            "/dev/sm/backend/not-a-uuid/0c1d2e3f-4a5b-4c6d".to_string(),
            format!("/dév/ü{VDI}é"),
            format!("/dev/{vg}/{lv}"),
        ];
        let mut tapdisks: Vec<Tapdisk> = paths
            .iter()
            .map(|p| Tapdisk {
                pid: Some(1),
                minor: Some(0),
                state: Some(0),
                kind: Some("vhd".into()),
                path: Some(p.clone()),
            })
            .collect();
        tapdisks.push(Tapdisk {
            path: None,
            ..tapdisks[0].clone()
        });
        let index = TapIndex::of(&TapdiskView::Listed {
            tapdisks: tapdisks.clone(),
        });
        for (lv, vdi) in [(&lv, Some(VDI)), (&other, Some(other_vdi)), (&lv, None)] {
            let name = lvm::dm_name_for(&vg, lv).unwrap();
            let split = lvm::split_dm_name(&name).unwrap();
            let vdi = vdi.map(|v| Uuid::new(v).unwrap());
            let found = index.naming(&split, &name, vdi.as_ref());
            let lv_path = format!("/dev/{vg}/{lv}");
            let mapper_path = format!("/dev/mapper/{name}");
            let searched: Vec<usize> = (0..tapdisks.len())
                .filter(|i| {
                    tapdisks[*i].path.as_deref().is_some_and(|p| {
                        names_by_search(p, &lv_path, &mapper_path, vdi.as_ref().map(|v| v.as_str()))
                    })
                })
                .collect();
            assert_eq!(found, searched, "{lv} {vdi:?}");
        }
        // Named by its LV path (twice), its backend path, its file and an embedded uuid.
        let vdi = Uuid::new(VDI).unwrap();
        let name = lvm::dm_name_for(&vg, &lv).unwrap();
        let split = lvm::split_dm_name(&name).unwrap();
        assert_eq!(
            index.naming(&split, &name, Some(&vdi)),
            vec![0, 2, 3, 4, 6, 7]
        );
    }

    #[test]
    fn a_complete_listing_answers_whether_an_lv_is_active_without_asking_the_kernel() {
        let uuid = "LVM-K2BweQLV1";
        assert_eq!(active_given(&[uuid], true), (true, vec![]));
        assert_eq!(active_given(&[], true), (false, vec![]));
        // Without the whole listing the kernel is asked by uuid (and the fake carries none).
        assert_eq!(active_given(&[], false), (false, vec![uuid.to_string()]));
        assert_eq!(active_given(&[uuid], false), (true, vec![]));
    }
}
