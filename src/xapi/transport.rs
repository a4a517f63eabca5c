//! One HTTP/1.1 POST to xapi, over its local unix socket (/var/lib/xcp/xapi), TCP, or TLS
//! (rustls, trusting only the pool certificate given). One deadline covers the whole exchange
//! — connect, write, every read — so a xapi that answers a byte at a time cannot stretch it.
//! xapi answers each request with a Content-Length body; `Connection: close` keeps the
//! exchange to one request per connection.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Where xapi listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path; dom0's is /var/lib/xcp/xapi.
    Unix(PathBuf),
    /// `http://host:port` (the test simulator on loopback; a pool member over plain HTTP).
    Http { host: String, port: u16 },
    /// `https://host[:port]`, trusting the certificate(s) in `ca` (a pool's own certificate is
    /// self-signed, so there is no public root to fall back on).
    Https {
        host: String,
        port: u16,
        ca: Option<PathBuf>,
    },
}

impl Endpoint {
    /// `unix:/path`, `/path`, `http://host[:port]` or `https://host[:port]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(path.into()));
        }
        if s.starts_with('/') {
            return Ok(Endpoint::Unix(s.into()));
        }
        let host_port = |rest: &str, default: u16| -> Result<(String, u16), String> {
            let hostport = rest.trim_end_matches('/');
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {s:?}"))?),
                None => (hostport, default),
            };
            if host.is_empty() || host.contains('/') {
                return Err(format!("bad host in {s:?}"));
            }
            Ok((host.to_string(), port))
        };
        if let Some(rest) = s.strip_prefix("http://") {
            let (host, port) = host_port(rest, 80)?;
            return Ok(Endpoint::Http { host, port });
        }
        if let Some(rest) = s.strip_prefix("https://") {
            let (host, port) = host_port(rest, 443)?;
            return Ok(Endpoint::Https {
                host,
                port,
                ca: None,
            });
        }
        Err(format!(
            "{s:?} is not an xapi endpoint (unix:/path, /path, http://host:port or https://host:port)"
        ))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Http { host, port } => write!(f, "http://{host}:{port}"),
            Endpoint::Https { host, port, .. } => write!(f, "https://{host}:{port}"),
        }
    }
}

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("cannot connect to xapi at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("xapi at {endpoint} did not answer within {} ({during})", crate::external_tool::time_given(*.seconds))]
    Timeout {
        endpoint: String,
        seconds: f64,
        /// What it was waited for at the deadline: resolving its name, connecting, the answer.
        during: String,
    },
    #[error("talking to xapi at {endpoint} failed")]
    Io {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("xapi at {endpoint} answered HTTP {status}")]
    Status { endpoint: String, status: u16 },
    #[error("xapi at {endpoint} sent a malformed HTTP response: {why}")]
    Malformed { endpoint: String, why: String },
}

/// A connection whose socket's timeouts can be shortened as the deadline nears.
trait Stream: Read + Write {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Stream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Stream for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.sock.set_timeouts(t)
    }
}

/// `host`'s addresses, by `deadline`. The C library's resolver blocks with no bound of ours
/// (a dead DNS server costs its own timeouts and retries), so it runs on a thread of its own
/// that is left behind at the deadline: it touches nothing but its own copy of the name.
fn resolve(host: &str, port: u16, deadline: Instant) -> std::io::Result<Vec<std::net::SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("dmheal-resolve".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })?;
    let left = left_until(deadline)?;
    match rx.recv_timeout(left) {
        Ok(answer) => answer,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "resolving the host name {host} did not finish within {}",
                crate::external_tool::time_given(left.as_secs_f64())
            ),
        )),
    }
}

fn tcp(host: &str, port: u16, deadline: Instant) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for addr in resolve(host, port, deadline)? {
        let left = left_until(deadline)?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The time left before `deadline`; `TimedOut` when there is none.
fn left_until(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

/// A TLS client trusting only the certificates in `ca` (PEM).
fn tls(host: &str, ca: Option<&Path>, sock: TcpStream) -> std::io::Result<Box<dyn Stream>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let ca = ca.ok_or_else(|| {
        invalid(
            "an https endpoint needs the pool's certificate: give --xapi-ca (or DMHEAL_XAPI_CA)"
                .into(),
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).map_err(|e| invalid(format!("{}: {e}", ca.display())))?
    {
        let cert = cert.map_err(|e| invalid(format!("{}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| invalid(format!("{}: {e}", ca.display())))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| invalid(e.to_string()))?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, sock)))
}

fn connect(endpoint: &Endpoint, deadline: Instant) -> std::io::Result<Box<dyn Stream>> {
    match endpoint {
        Endpoint::Unix(path) => Ok(Box::new(crate::unix_socket::connect_until(path, deadline)?)),
        Endpoint::Http { host, port } => Ok(Box::new(tcp(host, *port, deadline)?)),
        Endpoint::Https { host, port, ca } => tls(host, ca.as_deref(), tcp(host, *port, deadline)?),
    }
}

/// Write all of `bytes` by `deadline`.
fn write_within(
    stream: &mut dyn Stream,
    mut bytes: &[u8],
    deadline: Instant,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.set_timeouts(left_until(deadline)?)?;
        match stream.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}

/// POST `body` to `path` and return the response body.
pub fn post(
    endpoint: &Endpoint,
    path: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, TransportError> {
    let name = endpoint.to_string();
    let io_err = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            TransportError::Timeout {
                endpoint: name.clone(),
                seconds: timeout.as_secs_f64(),
                during: "waiting for its answer".into(),
            }
        } else {
            TransportError::Io {
                endpoint: name.clone(),
                source,
            }
        }
    };
    let deadline = Instant::now() + timeout;
    let mut stream = connect(endpoint, deadline).map_err(|source| match source.kind() {
        std::io::ErrorKind::TimedOut => TransportError::Timeout {
            endpoint: name.clone(),
            seconds: timeout.as_secs_f64(),
            during: format!("connecting: {source}"),
        },
        _ => TransportError::Connect {
            endpoint: name.clone(),
            source,
        },
    })?;
    let host = match endpoint {
        Endpoint::Unix(_) => "localhost".to_string(),
        Endpoint::Http { host, .. } | Endpoint::Https { host, .. } => host.clone(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dmheal/{}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    write_within(stream.as_mut(), head.as_bytes(), deadline).map_err(&io_err)?;
    write_within(stream.as_mut(), body, deadline).map_err(&io_err)?;
    let mut response = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        stream
            .set_timeouts(left_until(deadline).map_err(&io_err)?)
            .map_err(&io_err)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A TLS peer that closes without close_notify: the body's Content-Length, checked
            // by parse_response, tells a complete answer from a truncated one.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
                break
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    parse_response(&name, &response)
}

fn parse_response(endpoint: &str, raw: &[u8]) -> Result<Vec<u8>, TransportError> {
    let malformed = |why: &str| TransportError::Malformed {
        endpoint: endpoint.to_string(),
        why: why.to_string(),
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| malformed("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("no status line"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    if status != 200 {
        return Err(TransportError::Status {
            endpoint: endpoint.to_string(),
            status,
        });
    }
    let body = &raw[split + 4..];
    if chunked {
        return dechunk(body).ok_or_else(|| malformed("bad chunked body"));
    }
    match length {
        Some(n) if n <= body.len() => Ok(body[..n].to_vec()),
        Some(_) => Err(malformed("body shorter than Content-Length")),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("/var/lib/xcp/xapi").unwrap(),
            Endpoint::Unix("/var/lib/xcp/xapi".into())
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/").unwrap(),
            Endpoint::Http {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(
            Endpoint::parse("https://pool.example").unwrap(),
            Endpoint::Https {
                host: "pool.example".into(),
                port: 443,
                ca: None
            }
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://:1").is_err());
    }

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokXX";
        assert_eq!(parse_response("x", r).unwrap(), b"ok");
        let c =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1\r\n!\r\n0\r\n\r\n";
        assert_eq!(parse_response("x", c).unwrap(), b"ok!");
        assert!(matches!(
            parse_response("x", b"HTTP/1.1 500 Oops\r\n\r\n"),
            Err(TransportError::Status { status: 500, .. })
        ));
    }

    #[test]
    fn a_xapi_answering_a_byte_at_a_time_costs_the_deadline_and_no_more() {
        // Each byte arrives well within any per-read timeout; only a deadline on the whole
        // exchange stops it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                .iter()
                .cycle()
            {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let endpoint = Endpoint::Http {
            host: "127.0.0.1".into(),
            port,
        };
        let start = Instant::now();
        let r = post(
            &endpoint,
            "/jsonrpc",
            "application/json",
            b"{}",
            Duration::from_secs(1),
        );
        assert!(matches!(r, Err(TransportError::Timeout { .. })), "{r:?}");
        let took = start.elapsed();
        assert!(took < Duration::from_millis(1800), "took {took:?}");
    }
}
