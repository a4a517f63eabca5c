//! The xapi layer: a JSON-RPC client for the local xapi, typed records, and xapi's view of a
//! VDI from this host.

pub mod client;
pub mod fanout;
pub mod messages;
pub mod records;
pub mod session;
pub mod transport;
pub mod view;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use client::{Xapi, XapiError};
pub use session::Session;
pub use transport::Endpoint;
pub use view::XapiView;

pub const LOCAL_SOCKET: &str = "/var/lib/xcp/xapi";
pub const INVENTORY: &str = "/etc/xensource-inventory";

/// How to reach xapi, and who we are in the pool.
#[derive(Clone, Debug)]
pub struct XapiConfig {
    /// None: not a XenServer host (no local socket) and nothing configured.
    pub endpoint: Option<Endpoint>,
    /// A session to reuse (the plugin's); otherwise log in as `user` with `password`.
    pub session: Option<String>,
    pub user: String,
    pub password: String,
    /// This host's uuid; otherwise INSTALLATION_UUID from `inventory`.
    pub host_uuid: Option<String>,
    pub inventory: PathBuf,
    pub timeout: Duration,
    /// The operation's deadline (its budget), which every call and the logout keep to.
    pub deadline: Option<Instant>,
}

impl XapiConfig {
    /// A connected client, or why there is none.
    pub fn connect(&self) -> Result<Option<Xapi>, XapiError> {
        let Some(endpoint) = self.endpoint.clone() else {
            return Ok(None);
        };
        let mut xapi = Xapi::new(endpoint, self.timeout).with_deadline(self.deadline);
        match &self.session {
            Some(s) => xapi = xapi.with_session(s.clone()),
            None => xapi.login(&self.user, &self.password)?,
        }
        Ok(Some(xapi))
    }

    /// A connected client for an operation that cannot work without xapi (pool scan, doctor).
    pub fn require(&self, what: &'static str) -> crate::error::Result<Xapi> {
        self.connect()
            .map_err(|e| crate::error::Error::Xapi {
                what,
                why: e.chain(),
            })?
            .ok_or(crate::error::Error::Xapi {
                what,
                why: "no xapi on this host: run it in dom0 or give --xapi".into(),
            })
    }

    pub fn this_host(&self) -> Option<String> {
        self.host_uuid
            .clone()
            .or_else(|| view::inventory_host_uuid(&self.inventory))
    }
}
