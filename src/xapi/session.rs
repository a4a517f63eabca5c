//! This host's one xapi session: made on first need, reused by every question an operation
//! asks (resolving a VDI, each volume's view), logged out when the operation ends (`Xapi`'s
//! Drop). A heal used to log in once per question and leave the sessions to expire.

use std::cell::OnceCell;
use std::time::Duration;

use super::{Xapi, XapiConfig};

/// What connecting gave.
pub enum Connection {
    /// Not a XenServer host and nothing configured: xapi is not part of the picture.
    None,
    /// xapi is expected and did not answer (the reason, as a sentence).
    Failed(String),
    /// Logged in. `this_host`: this host's uuid, when the inventory or settings give it.
    Up {
        client: Xapi,
        this_host: Option<String>,
    },
}

/// A lazily made session (one per operation; not shared between threads).
pub struct Session {
    config: XapiConfig,
    connection: OnceCell<Connection>,
}

impl Session {
    pub fn new(config: XapiConfig) -> Self {
        Session {
            config,
            connection: OnceCell::new(),
        }
    }

    /// The connection, made on first use. `budget`: what is left of the caller's time, which
    /// bounds the login and every later call on this session.
    pub fn connection(&self, budget: impl FnOnce(Duration) -> Duration) -> &Connection {
        self.connection.get_or_init(|| {
            let mut xc = self.config.clone();
            xc.timeout = budget(xc.timeout);
            match xc.connect() {
                Ok(None) => Connection::None,
                Err(e) => Connection::Failed(e.chain()),
                Ok(Some(client)) => Connection::Up {
                    client,
                    this_host: xc.this_host(),
                },
            }
        })
    }

    /// Where this host's uuid was looked for, for the message when it was not found.
    pub fn unknown_host_message(&self) -> String {
        format!(
            "this host's uuid is unknown (no INSTALLATION_UUID in {}; set DMHEAL_HOST_UUID)",
            self.config.inventory.display()
        )
    }
}
