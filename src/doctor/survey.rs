//! One host's side of the doctor (the `survey` operation; the doctor on the master asks every
//! host that is not down for it through the plugin): what this host's storage says about SRs
//! (`storage`), the domains it runs (`domains`) and the images its tapdisks serve.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domains::{self, Domains};
use crate::storage::{StorageSurvey, Surveyor};
use crate::tapdisk::{self, TapdiskView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// This host's uuid, when it is known (inventory or settings).
    pub host_uuid: Option<String>,
    pub domains: Domains,
    /// Image paths this host's tapdisks serve; None when tap-ctl could not be asked.
    pub tapdisk_paths: Option<Vec<String>>,
    pub storage: StorageSurvey,
}

/// The image paths tapdisk serves here; None when tap-ctl failed. No tap-ctl at all: not a
/// dom0, so no tapdisk serves anything here.
pub fn tapdisk_paths(config: &Config) -> Option<Vec<String>> {
    match tapdisk::list(&config.tap_ctl, config.within(config.tool_timeout)) {
        TapdiskView::Listed { tapdisks } => {
            Some(tapdisks.into_iter().filter_map(|t| t.path).collect())
        }
        TapdiskView::NotInstalled => Some(Vec::new()),
        TapdiskView::Failed { .. } => None,
    }
}

pub fn surveyor(config: &Config) -> Surveyor {
    let pvs_program = match config.lvs_program.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/pvs"),
        None => "pvs".into(),
    };
    Surveyor {
        pvs_program,
        dev_root: config.dev_root.clone(),
        sys_root: config.sys_root.clone(),
        proc_root: config.proc_root.clone(),
        timeout: config.within(config.tool_timeout),
    }
}

/// This host's survey.
pub fn survey(config: &Config) -> Survey {
    Survey {
        host_uuid: config.xapi.this_host(),
        domains: domains::read(config.within(config.tool_timeout)),
        tapdisk_paths: tapdisk_paths(config),
        storage: surveyor(config).survey(),
    }
}
