//! A XenAPI client speaking JSON-RPC (`POST /jsonrpc`), which xapi serves on the same HTTP
//! server as XML-RPC. It can log in, or reuse a session handed to it (the plugin's).

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use thiserror::Error;

use super::transport::{self, Endpoint, TransportError};

#[derive(Debug, Error)]
pub enum XapiError {
    #[error("xapi unreachable")]
    Unreachable(#[source] TransportError),
    #[error("xapi error {code} {params:?}")]
    Api { code: String, params: Vec<String> },
    #[error("unexpected answer from xapi to {method}: {why}")]
    Protocol { method: String, why: String },
}

impl XapiError {
    /// The error and every cause under it, one line ("xapi unreachable: connect: ...").
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    }

    /// What an operation says when xapi fails it: `what` it was doing, and the chain.
    pub fn failing(what: &'static str) -> impl Fn(XapiError) -> crate::error::Error + Copy {
        move |e| crate::error::Error::Xapi {
            what,
            why: e.chain(),
        }
    }
}

impl XapiError {
    /// The API error code, when xapi answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            XapiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub struct Xapi {
    pub endpoint: Endpoint,
    /// Each call's bound, cut to what is left before `deadline`.
    pub timeout: Duration,
    /// The operation's deadline: no call, nor the logout, outlasts it.
    deadline: Option<Instant>,
    session: Option<String>,
    /// The session was made by `login` (and is logged out when this client goes); a session
    /// handed over (the plugin's) belongs to whoever made it.
    owned: bool,
}

impl Xapi {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Self {
        Xapi {
            endpoint,
            timeout,
            deadline: None,
            session: None,
            owned: false,
        }
    }

    /// Keep every call, and the logout, within `deadline`.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// This call's bound: the client's timeout, or less when the deadline is nearer; None when
    /// the deadline has passed.
    fn bound(&self, timeout: Duration) -> Option<Duration> {
        let t = match self.deadline {
            Some(d) => timeout.min(d.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        (!t.is_zero()).then_some(t)
    }

    /// Use a session someone else opened (xapi hands plugins one).
    pub fn with_session(mut self, session: String) -> Self {
        self.session = Some(session);
        self
    }

    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// `session.login_with_password`; a local root process may use ("root", "") on dom0 — on a
    /// pool member too: over the unix socket xapi trusts root without a password, keeps the
    /// session in the master's database and forwards every other call to the master. Over the
    /// network a member answers HOST_IS_SLAVE [master address], said here in plain words.
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), XapiError> {
        let r = match self.raw_call(
            "session.login_with_password",
            vec![json!(user), json!(password), json!("1.0"), json!("dmheal")],
        ) {
            Err(XapiError::Api { code, params }) if code == "HOST_IS_SLAVE" => {
                let master = params.first().cloned().unwrap_or_default();
                return Err(XapiError::Protocol {
                    method: "session.login_with_password".into(),
                    why: format!(
                        "{} is a pool member, which takes password logins only through its local \
                         socket; use that socket (/var/lib/xcp/xapi) on the member, or the master \
                         at {master}",
                        self.endpoint
                    ),
                });
            }
            other => other?,
        };
        self.session = Some(as_string("session.login_with_password", r)?);
        self.owned = true;
        Ok(())
    }

    /// A call with the session prepended, its result decoded into `T`.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<T, XapiError> {
        let session = self.session.clone().ok_or_else(|| XapiError::Protocol {
            method: method.into(),
            why: "no session: log in first".into(),
        })?;
        let mut params = vec![json!(session)];
        params.extend(args);
        let value = self.raw_call(method, params)?;
        serde_json::from_value(value).map_err(|e| XapiError::Protocol {
            method: method.into(),
            why: e.to_string(),
        })
    }

    /// `call`, bounded by `timeout` instead of the client's own.
    pub fn call_within<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<T, XapiError> {
        let bounded = Xapi {
            endpoint: self.endpoint.clone(),
            timeout,
            deadline: self.deadline,
            session: self.session.clone(),
            owned: false,
        };
        bounded.call(method, args)
    }

    fn raw_call(&self, method: &str, params: Vec<Value>) -> Result<Value, XapiError> {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let timeout = self.bound(self.timeout).ok_or_else(|| {
            XapiError::Unreachable(transport::TransportError::Timeout {
                endpoint: self.endpoint.to_string(),
                seconds: 0.0,
                during: format!("not asked {method}: xapi's share of the time was spent"),
            })
        })?;
        let raw = transport::post(
            &self.endpoint,
            "/jsonrpc",
            "application/json",
            body.to_string().as_bytes(),
            timeout,
        )
        .map_err(XapiError::Unreachable)?;
        decode_response(method, &raw)
    }
}

impl Drop for Xapi {
    /// Log out a session this client made: xapi keeps sessions until they are logged out or
    /// expire, and a host running the hook at every VM start would pile them up.
    fn drop(&mut self) {
        if let (true, Some(session)) = (self.owned, self.session.take()) {
            // Within what is left of the operation's time: a VM start waits on the hook, and
            // xapi expires a session it was not told to end.
            let Some(timeout) = self.bound(self.timeout.min(Duration::from_secs(2))) else {
                tracing::debug!("xapi session not logged out: out of time");
                return;
            };
            let quick = Xapi {
                endpoint: self.endpoint.clone(),
                timeout,
                deadline: self.deadline,
                session: None,
                owned: false,
            };
            if let Err(e) = quick.raw_call("session.logout", vec![json!(session)]) {
                tracing::debug!("xapi logout failed: {e}");
            }
        }
    }
}

fn as_string(method: &str, v: Value) -> Result<String, XapiError> {
    v.as_str().map(str::to_string).ok_or(XapiError::Protocol {
        method: method.into(),
        why: format!("expected a string, got {v}"),
    })
}

/// Decode a JSON-RPC response: v2 `{"result": ...}` or `{"error": {"code", "message", "data"}}`
/// where xapi puts the error code in `message` and its parameters in `data`; v1 errors as a
/// list `[code, params...]` are accepted too.
pub fn decode_response(method: &str, raw: &[u8]) -> Result<Value, XapiError> {
    let protocol = |why: String| XapiError::Protocol {
        method: method.into(),
        why,
    };
    let v: Value = serde_json::from_slice(raw).map_err(|e| protocol(e.to_string()))?;
    match (v.get("result"), v.get("error")) {
        (Some(r), None) | (Some(r), Some(Value::Null)) => Ok(r.clone()),
        (_, Some(Value::Object(e))) => {
            let code = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("UNKNOWN_ERROR")
                .to_string();
            let params = match e.get("data") {
                Some(Value::Array(a)) => a.iter().map(value_text).collect(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![value_text(other)],
            };
            Err(XapiError::Api { code, params })
        }
        (_, Some(Value::Array(a))) if !a.is_empty() => Err(XapiError::Api {
            code: value_text(&a[0]),
            params: a[1..].iter().map(value_text).collect(),
        }),
        _ => Err(protocol(format!("neither result nor error in {v}"))),
    }
}

fn value_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_results_and_xapi_errors() {
        assert_eq!(
            decode_response("m", br#"{"jsonrpc":"2.0","result":"OpaqueRef:1","id":1}"#).unwrap(),
            json!("OpaqueRef:1")
        );
        let e = decode_response(
            "m",
            br#"{"jsonrpc":"2.0","error":{"code":1,"message":"UUID_INVALID","data":["VDI","x"]},"id":1}"#,
        )
        .unwrap_err();
        assert!(
            matches!(e, XapiError::Api { ref code, ref params } if code == "UUID_INVALID" && params == &["VDI", "x"])
        );
        let v1 = decode_response(
            "m",
            br#"{"result":null,"error":["SESSION_INVALID","r"],"id":1}"#,
        )
        .unwrap_err();
        assert_eq!(v1.code(), Some("SESSION_INVALID"));
        assert!(decode_response("m", b"<html>").is_err());
    }

    #[test]
    fn no_call_outlasts_the_operations_deadline() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // A xapi that takes connections and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        let endpoint = Endpoint::Http {
            host: "127.0.0.1".into(),
            port,
        };
        let start = Instant::now();
        let x = Xapi::new(endpoint, Duration::from_secs(10))
            .with_deadline(Some(start + Duration::from_millis(300)))
            .with_session("OpaqueRef:s".into());
        let r: Result<String, _> = x.call("VDI.get_record", vec![]);
        assert!(matches!(r, Err(XapiError::Unreachable(_))), "{r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // Past the deadline a call fails at once, without asking xapi.
        let asked = accepted.load(Ordering::SeqCst);
        let again = Instant::now();
        let r: Result<String, _> = x.call("VDI.get_record", vec![]);
        assert!(r.is_err());
        assert!(again.elapsed() < Duration::from_millis(100));
        assert_eq!(accepted.load(Ordering::SeqCst), asked);
    }
}
