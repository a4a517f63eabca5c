//! `dmheal heal --all`: every mapping a host scan proves a ghost, healed in one run — after a
//! bad upgrade there are rarely fewer than dozens. Each is re-decided under SM's lock and the
//! journal's, and removed by its stamped uuid, exactly as a single heal is
//! (`heal::act_on_decision`); what is the same for all of them is read once for the batch (the
//! VGs' metadata, tap-ctl, xapi's records of the pool), what is each one's own (its kernel
//! status, table, users, SM's refcount) for each, under the locks. SM's lock is taken per
//! mapping, never across the batch: SM's own LVM work goes on between two removals.

use serde::Serialize;

use crate::context::OpContext;
use crate::error::Result;
use crate::facts::{gather, KernelSearch};
use crate::heal::{self, Action};
use crate::ids::{DmName, JournalId, Target};
use crate::journal::Journal;
use crate::results::Inspection;
use crate::sm::lock::{self, SmLockKind};
use crate::verdict::Verdict;

/// What a batch did with one ghost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchAction {
    Removed,
    /// A dry run: `--apply` would remove it.
    WouldRemove,
    /// Not a ghost any more at its turn (in use, suspicious, LVM's own), or its locks could
    /// not be had: left alone, with the reason.
    Refused,
    /// Gone by its turn (another heal, or SM, got there first).
    AlreadyGone,
    /// The kernel refused the remove; the mapping is still there.
    Failed,
}

impl BatchAction {
    pub const ALL: [BatchAction; 5] = [
        BatchAction::Removed,
        BatchAction::WouldRemove,
        BatchAction::Refused,
        BatchAction::AlreadyGone,
        BatchAction::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchAction::Removed => "removed",
            BatchAction::WouldRemove => "would-remove",
            BatchAction::Refused => "refused",
            BatchAction::AlreadyGone => "already-gone",
            BatchAction::Failed => "failed",
        }
    }
}

/// What became of one mapping of the batch.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BatchItem {
    pub dm_name: String,
    pub sr_uuid: Option<String>,
    pub vdi_uuid: Option<String>,
    pub action: BatchAction,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_id: Option<JournalId>,
}

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct BatchCounts {
    /// Mappings the scan looked at.
    pub mappings: usize,
    /// Ghosts it proved.
    pub ghosts: usize,
    pub removed: usize,
    pub would_remove: usize,
    /// Not a ghost any more at the re-check under the locks (in use or suspicious now).
    pub refused: usize,
    /// Gone by the time its turn came (another heal, or SM, got there first).
    pub already_gone: usize,
    /// The kernel refused the remove.
    pub failed: usize,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BatchOutcome {
    pub apply: bool,
    /// One result per ghost the scan proved, in the scan's order.
    pub results: Vec<BatchItem>,
    pub counts: BatchCounts,
    /// The SM lock each removal was made under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
}

impl BatchCounts {
    /// Add another batch's counts (a pool's hosts).
    pub fn add(&mut self, o: &BatchCounts) {
        self.mappings += o.mappings;
        self.ghosts += o.ghosts;
        self.removed += o.removed;
        self.would_remove += o.would_remove;
        self.refused += o.refused;
        self.already_gone += o.already_gone;
        self.failed += o.failed;
    }
}

impl BatchOutcome {
    fn count(&mut self) {
        let n = |a: BatchAction| self.results.iter().filter(|r| r.action == a).count();
        self.counts.removed = n(BatchAction::Removed);
        self.counts.would_remove = n(BatchAction::WouldRemove);
        self.counts.refused = n(BatchAction::Refused);
        self.counts.already_gone = n(BatchAction::AlreadyGone);
        self.counts.failed = n(BatchAction::Failed);
    }
}

/// What one ghost's turn came to: decided and acted on as a single heal, or left alone because
/// the device under its name is not the one the scan proved.
enum Turn {
    Decided(Box<heal::HealOutcome>),
    Changed(String),
}

fn shown(uuid: &str) -> &str {
    if uuid.is_empty() {
        "none"
    } else {
        uuid
    }
}

/// Heal every ghost a scan of this host proves; `apply`: really (else a dry run).
pub fn heal_all(host: &OpContext, apply: bool) -> Result<BatchOutcome> {
    let clock = crate::logging::Stopwatch::start();
    let scan = host.scan_keeping(&|m| m.verdict == Verdict::Ghost)?;
    clock.lap("batch: scanned");
    let ghosts: Vec<(DmName, Inspection)> = scan
        .mappings
        .into_iter()
        .filter(|m| m.verdict == Verdict::Ghost)
        .filter_map(|m| Some((DmName::new(&m.dm_name).ok()?, m)))
        .collect();
    let mut out = BatchOutcome {
        apply,
        results: Vec::with_capacity(ghosts.len()),
        counts: BatchCounts {
            mappings: scan.counts.mappings,
            ghosts: ghosts.len(),
            ..Default::default()
        },
        lock: None,
    };
    let item = |name: &DmName, i: &Inspection, action, message: String, id| BatchItem {
        dm_name: name.to_string(),
        sr_uuid: i.facts.sr.as_ref().map(|s| s.to_string()),
        vdi_uuid: i.facts.vdi.as_ref().map(|v| v.to_string()),
        action,
        message,
        journal_id: id,
    };
    if !apply || ghosts.is_empty() {
        for (name, i) in &ghosts {
            let message = format!("dry run: would remove {name} ({})", i.summary);
            out.results
                .push(item(name, i, BatchAction::WouldRemove, message, None));
        }
        out.count();
        return Ok(out);
    }
    // What is the same for every ghost, read once: xapi's records, then one pass of every
    // layer (LVM's metadata, tap-ctl) over all of them.
    let cfg = &host.config;
    let vdis: Vec<_> = ghosts
        .iter()
        .filter_map(|(_, i)| i.facts.vdi.clone())
        .collect();
    let views = host.xapi_views_bulk(&vdis);
    clock.lap("batch: xapi read");
    let names: Vec<gather::Asked> = ghosts
        .iter()
        .map(|(n, _)| gather::Asked::name(n.clone()))
        .collect();
    let mut g = gather::prepare(
        cfg,
        host.dm.as_ref(),
        gather::XapiSource::Asked(views),
        names,
        KernelSearch::AllWhereOpen,
        None,
    )?;
    clock.lap("batch: shared layers read");
    let kind = SmLockKind::detect(&cfg.fairlock_socket, &cfg.legacy_lock);
    out.lock = Some(kind.describe());
    let total = ghosts.len();
    for (n, (name, scanned)) in ghosts.iter().enumerate() {
        crate::progress::report("mapping", n + 1, total, name.as_str());
        if cfg.out_of_time() {
            let why = "the time budget ran out before its turn".to_string();
            out.results
                .push(item(name, scanned, BatchAction::Refused, why, None));
            continue;
        }
        // Its own facts, under SM's lock and the journal's, exactly as a single heal. A lock
        // that stays busy, or a journal that cannot be written, refuses this one mapping and
        // the batch goes on: the next may find SM idle again, and every refusal is reported.
        let one = |g: &mut gather::Gathered| -> Result<Turn> {
            let sm_lock = lock::acquire(&kind, cfg.within(cfg.lock_timeout), cfg.in_sm_process)?;
            let journal = Journal::new(&cfg.journal).writer(cfg.within(cfg.lock_timeout))?;
            let kernel = g.refresh(name)?;
            // LVM's side was read once for the batch, for the devices the scan saw. A device
            // under this name that is not the one the scan proved a ghost — an LV removed and
            // created again, another LV's mapping renamed here — carries a uuid that read
            // knows nothing of, and would be taken for a removed LV's: left alone, for a new
            // run (or a single heal) to judge with LVM read afresh.
            if let (Some(was), Some(now)) = (scanned.facts.device.as_ref(), kernel.device.as_ref())
            {
                if was.uuid != now.uuid || was.dev != now.dev {
                    return Ok(Turn::Changed(format!(
                        "left alone: changed since the scan (uuid {} dev {} then, uuid {} dev {} now); \
                         run heal --all again to judge it afresh",
                        shown(was.uuid.as_str()),
                        was.dev,
                        shown(now.uuid.as_str()),
                        now.dev
                    )));
                }
            }
            let now = Inspection::new(
                Target::DmName(name.clone()).to_string(),
                g.complete(kernel)?,
            );
            heal::act_on_decision(host, name, now, journal, out.lock.clone(), sm_lock)
                .map(|o| Turn::Decided(Box::new(o)))
        };
        match one(&mut g) {
            Ok(Turn::Changed(why)) => {
                out.results
                    .push(item(name, scanned, BatchAction::Refused, why, None));
            }
            Ok(Turn::Decided(o)) => {
                let o = *o;
                let action = match o.action {
                    Action::Removed => BatchAction::Removed,
                    Action::NothingToDo if o.inspection.facts.device.is_none() => {
                        BatchAction::AlreadyGone
                    }
                    Action::NothingToDo | Action::Refused => BatchAction::Refused,
                    Action::Failed => BatchAction::Failed,
                    Action::WouldRemove => BatchAction::WouldRemove,
                };
                let message = match o.action {
                    Action::NothingToDo if action == BatchAction::Refused => {
                        format!("left alone: not a ghost any more ({})", o.message)
                    }
                    _ => o.message,
                };
                out.results
                    .push(item(name, &o.inspection, action, message, o.journal_id));
            }
            Err(e) => {
                let why = format!("not touched: {e}");
                out.results
                    .push(item(name, scanned, BatchAction::Refused, why, None));
            }
        }
    }
    crate::progress::done();
    clock.lap("batch: every ghost decided and acted on");
    out.count();
    Ok(out)
}
