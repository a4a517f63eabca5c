//! One operation's context: this host's settings, its device-mapper, and one xapi session that
//! every question of the operation reuses (logged out when the context is dropped); resolving
//! a target to the mappings it names. `inspect.rs` and `scan.rs` read the layers through it,
//! heal and restore act through it.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::dm::{DeviceMapper, KernelDm};
use crate::error::{Error, Result};
use crate::facts::gather;
use crate::ids::{DmName, LvName, Target, Uuid};
use crate::lvm;

/// The most time telling the pool may take (xapi messages): a VM start waits on the hook.
const MESSAGES_AT_MOST: std::time::Duration = std::time::Duration::from_secs(2);
use crate::xapi::session::Connection;
use crate::xapi::{self, XapiView};

/// This host for one operation: its configuration, its device-mapper and its xapi session.
pub struct OpContext {
    pub config: Config,
    pub dm: Box<dyn DeviceMapper>,
    pub(crate) xapi: xapi::Session,
}

impl OpContext {
    /// The real host: opens /dev/mapper/control.
    pub fn open(config: Config) -> Result<Self> {
        Ok(OpContext::new(config, Box::new(KernelDm::open()?)))
    }

    /// A host on the given device-mapper (the tests' fake kernel).
    pub fn new(config: Config, dm: Box<dyn DeviceMapper>) -> Self {
        let xapi = xapi::Session::new(config.xapi.clone());
        OpContext { config, dm, xapi }
    }

    /// Tell the pool (xapi messages on the VDIs), best effort and rate-limited: only where this
    /// operation already has a xapi session, and bounded by what is left of its time (at most
    /// two seconds: a VM start waits on the hook).
    pub fn announce(&self, messages: &[xapi::messages::Message]) {
        if messages.is_empty() || !self.config.xapi_messages || self.config.out_of_time() {
            return;
        }
        let Connection::Up { client, .. } = self.xapi.connection(|t| self.config.within(t)) else {
            return;
        };
        if client.session().is_none() {
            return;
        }
        let deadline = std::time::Instant::now() + self.config.within(MESSAGES_AT_MOST);
        let state = xapi::messages::state_path(&self.config.journal);
        xapi::messages::send(client, &state, messages, deadline);
    }

    /// This host, as a message names it.
    pub fn describe(&self) -> String {
        let name = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "this host".into());
        match self.config.xapi.this_host() {
            Some(uuid) => format!("{name} ({uuid})"),
            None => name,
        }
    }

    /// xapi's view of each VDI from this host, on the host's session.
    pub fn xapi_views(&self, vdis: &[Uuid]) -> BTreeMap<Uuid, XapiView> {
        gather::xapi_views(&self.config, &self.xapi, vdis)
    }

    /// `xapi_views` for many VDIs at once, from the pool's records read once (a batch).
    pub fn xapi_views_bulk(&self, vdis: &[Uuid]) -> BTreeMap<Uuid, XapiView> {
        let all = |v: XapiView| vdis.iter().map(|u| (u.clone(), v.clone())).collect();
        match self.xapi.connection(|t| self.config.within(t)) {
            Connection::None => all(XapiView::NotConfigured),
            Connection::Failed(why) => all(XapiView::Unreachable { why: why.clone() }),
            Connection::Up {
                this_host: None, ..
            } => all(XapiView::Unreachable {
                why: self.xapi.unknown_host_message(),
            }),
            Connection::Up {
                client,
                this_host: Some(host),
            } => {
                let asked: Vec<&str> = vdis.iter().map(Uuid::as_str).collect();
                let views =
                    crate::xapi::view::vdi_views(client, host, &asked, self.config.activating);
                vdis.iter()
                    .map(|u| {
                        let v = views
                            .get(u.as_str())
                            .cloned()
                            .unwrap_or(XapiView::VdiUnknown);
                        (u.clone(), v)
                    })
                    .collect()
            }
        }
    }

    /// The DM name a target stands for. A VDI uuid that more than one volume carries (the same
    /// VDI in two SRs: a copied LUN) stands for none of them: each is listed, with its verdict
    /// and the exact target that names it, and nothing is done.
    pub fn resolve(&self, target: &Target) -> Result<DmName> {
        let mut names = self.resolve_all(target)?;
        if names.len() == 1 {
            return Ok(names.remove(0));
        }
        let each: Vec<String> = names
            .iter()
            .map(|n| {
                let said = match self.inspect_name(n.to_string(), n) {
                    Ok(i) => format!("{}: {}", i.verdict.as_str(), i.summary),
                    Err(e) => format!("not inspected: {}", e.chain()),
                };
                format!("dm:{n} — {said}")
            })
            .collect();
        Err(crate::error::InputError::Ambiguous {
            target: target.to_string(),
            each: each.join("; "),
        }
        .into())
    }

    /// Every DM name a target stands for: one for a DM name or an LV path; for a VDI uuid,
    /// every volume named for it — its LV in the SR xapi says it is in, and every mapping in
    /// the kernel of a VDI volume with that uuid in any SR volume group — or, when neither
    /// xapi nor the kernel knows one, the LVs LVM knows.
    pub fn resolve_all(&self, target: &Target) -> Result<Vec<DmName>> {
        match target {
            Target::DmName(name) => Ok(vec![name.clone()]),
            Target::LvPath(vg, lv) => Ok(vec![lvm::dm_name_for(vg, lv)?]),
            Target::Vdi(vdi) => self.resolve_vdi(vdi),
        }
    }

    fn resolve_vdi(&self, vdi: &Uuid) -> Result<Vec<DmName>> {
        let mut found: Vec<DmName> = Vec::new();
        if let Connection::Up { client, .. } = self.xapi.connection(|t| self.config.within(t)) {
            match crate::xapi::view::vdi_location(client, vdi.as_str()) {
                Ok((sr_uuid, record)) => {
                    let vg =
                        crate::ids::VgName::new(&format!("{}{sr_uuid}", lvm::names::SR_VG_PREFIX))?;
                    let prefix = match record.sm_config.get("vdi_type").map(String::as_str) {
                        Some("aio") | Some("raw") => "LV-",
                        Some("qcow2") => "QCOW2-",
                        _ => "VHD-",
                    };
                    let lv = LvName::new(&format!("{prefix}{vdi}"))?;
                    found.push(lvm::dm_name_for(&vg, &lv)?);
                }
                Err(e) if e.code() == Some("UUID_INVALID") => {}
                Err(_) => {} // xapi not answering: resolve locally
            }
        }
        for listed in self.dm.list()? {
            let Ok(name) = DmName::new(&listed.name) else {
                continue;
            };
            if lvm::sr_volume(&name).is_some_and(|v| v.vdi.as_ref() == Some(vdi))
                && !found.contains(&name)
            {
                found.push(name);
            }
        }
        if !found.is_empty() {
            return Ok(found);
        }
        let records = self.config.lvs().all().map_err(|source| Error::Command {
            what: "listing logical volumes (lvs)",
            source,
        })?;
        for r in records {
            let (Ok(vg), Ok(lv)) = (crate::ids::VgName::new(&r.vg_name), LvName::new(&r.lv_name))
            else {
                continue;
            };
            let Ok(name) = lvm::dm_name_for(&vg, &lv) else {
                continue;
            };
            if lvm::sr_volume(&name).is_some_and(|v| v.vdi.as_ref() == Some(vdi))
                && !found.contains(&name)
            {
                found.push(name);
            }
        }
        if found.is_empty() {
            return Err(Error::VdiNotFound(vdi.to_string()));
        }
        Ok(found)
    }
}
