//! A client for Docker's plugin protocol that sends requests exactly as Docker does (POST, no
//! Content-Type, JSON body plus newline, the plugin Accept header) over one kept-alive
//! connection, to a unix socket or an `http://host:port` URL.
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::{TcpStream, UnixStream};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to the plugin at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP with the plugin at {addr}: {message}")]
    Http { addr: String, message: String },
    #[error("{call}: no answer within {0:?}", .timeout)]
    Timeout { call: String, timeout: Duration },
    #[error("plugin address {0:?}: expected a unix socket path or http://HOST:PORT")]
    BadAddress(String),
}

/// Where the plugin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginAddr {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for PluginAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginAddr::Unix(p) => write!(f, "{}", p.display()),
            PluginAddr::Tcp(hp) => write!(f, "http://{hp}"),
        }
    }
}

impl std::str::FromStr for PluginAddr {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<PluginAddr, ClientError> {
        if let Some(rest) = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("tcp://"))
        {
            let hp = rest.trim_end_matches('/');
            if hp.is_empty() || !hp.contains(':') {
                return Err(ClientError::BadAddress(s.to_string()));
            }
            return Ok(PluginAddr::Tcp(hp.to_string()));
        }
        let path = s.strip_prefix("unix://").unwrap_or(s);
        if path.is_empty() || !path.starts_with('/') {
            return Err(ClientError::BadAddress(s.to_string()));
        }
        Ok(PluginAddr::Unix(PathBuf::from(path)))
    }
}

/// A reply: the HTTP status, the body parsed as JSON (or `None` when it is not JSON), the raw
/// body, and how long the call took.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub json: Option<Value>,
    pub raw: String,
    pub took: Duration,
}

impl Reply {
    /// Docker's reading: a non-200 status, or an `Err`/`Error` field, is an error.
    pub fn error(&self) -> Option<String> {
        let err = self
            .json
            .as_ref()
            .and_then(|j| j.get("Err").or_else(|| j.get("Error")))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        if self.status != 200 {
            return Some(
                err.unwrap_or_else(|| format!("HTTP {} {}", self.status, self.raw.trim())),
            );
        }
        err
    }
}

pub struct PluginClient {
    addr: PluginAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub timeout: Duration,
}

impl PluginClient {
    pub fn new(addr: PluginAddr) -> PluginClient {
        PluginClient {
            addr,
            sender: None,
            timeout: Duration::from_secs(120),
        }
    }

    pub fn addr(&self) -> &PluginAddr {
        &self.addr
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let addr = self.addr.to_string();
            let io_err = |source| ClientError::Connect {
                addr: addr.clone(),
                source,
            };
            let http_err = |e: hyper::Error| ClientError::Http {
                addr: addr.clone(),
                message: e.to_string(),
            };
            let sender = match &self.addr {
                PluginAddr::Unix(p) => {
                    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(
                        UnixStream::connect(p).await.map_err(io_err)?,
                    ))
                    .await
                    .map_err(http_err)?;
                    tokio::spawn(conn);
                    s
                }
                PluginAddr::Tcp(hp) => {
                    let stream = TcpStream::connect(hp).await.map_err(io_err)?;
                    let _ = stream.set_nodelay(true);
                    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(http_err)?;
                    tokio::spawn(conn);
                    s
                }
            };
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| ClientError::Http {
            addr: self.addr.to_string(),
            message: "no connection".into(),
        })
    }

    fn request(
        &self,
        method: &str,
        body: &str,
    ) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
        let host = match &self.addr {
            PluginAddr::Unix(_) => String::new(),
            PluginAddr::Tcp(hp) => hp.clone(),
        };
        hyper::Request::post(format!("/{method}"))
            .header("Host", host)
            .header("Accept", "application/vnd.docker.plugins.v1.2+json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ClientError::Http {
                addr: self.addr.to_string(),
                message: e.to_string(),
            })
    }

    /// `POST /<method>` with `body` sent as raw bytes (so malformed bodies can be sent too).
    /// A kept-alive connection the server has closed meanwhile is opened again, once.
    pub async fn call_raw(&mut self, method: &str, body: &str) -> Result<Reply, ClientError> {
        let addr = self.addr.to_string();
        let timeout = self.timeout;
        let start = Instant::now();
        let mut attempt = 0;
        let resp = loop {
            let req = self.request(method, body)?;
            let sender = self.connect().await?;
            match tokio::time::timeout(timeout, sender.send_request(req)).await {
                Err(_) => {
                    self.sender = None;
                    return Err(ClientError::Timeout {
                        call: method.to_string(),
                        timeout,
                    });
                }
                Ok(Ok(resp)) => break resp,
                // Not sent: the connection was closed under us.
                Ok(Err(e))
                    if attempt == 0
                        && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) =>
                {
                    self.sender = None;
                    attempt += 1;
                }
                Ok(Err(e)) => {
                    self.sender = None;
                    return Err(ClientError::Http {
                        addr,
                        message: e.to_string(),
                    });
                }
            }
        };
        let status = resp.status().as_u16();
        let bytes = match tokio::time::timeout(timeout, resp.into_body().collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                return Err(ClientError::Http {
                    addr,
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    call: method.to_string(),
                    timeout,
                })
            }
        };
        let took = start.elapsed();
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).ok();
        Ok(Reply {
            status,
            json,
            raw,
            took,
        })
    }

    /// `POST /<method>` with a JSON body, as Docker sends it (with a trailing newline);
    /// `Value::Null` sends an empty body, as Docker does for argument-less calls.
    pub async fn call(&mut self, method: &str, body: &Value) -> Result<Reply, ClientError> {
        let text = if body.is_null() {
            String::new()
        } else {
            format!("{body}\n")
        };
        self.call_raw(method, &text).await
    }
}

/// A random Docker object id: 64 lowercase hex digits.
pub fn docker_id() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "/run/docker/plugins/kuryr.sock"
                .parse::<PluginAddr>()
                .unwrap(),
            PluginAddr::Unix("/run/docker/plugins/kuryr.sock".into())
        );
        assert_eq!(
            "unix:///x.sock".parse::<PluginAddr>().unwrap(),
            PluginAddr::Unix("/x.sock".into())
        );
        assert_eq!(
            "http://127.0.0.1:23750".parse::<PluginAddr>().unwrap(),
            PluginAddr::Tcp("127.0.0.1:23750".into())
        );
        for bad in ["", "relative.sock", "http://", "http://host"] {
            assert!(bad.parse::<PluginAddr>().is_err(), "{bad}");
        }
        assert_eq!(docker_id().len(), 64);
    }

    #[test]
    fn docker_reads_errors_from_status_and_err() {
        let r = |status, body: &str| Reply {
            status,
            json: serde_json::from_str(body).ok(),
            raw: body.into(),
            took: Duration::ZERO,
        };
        assert_eq!(r(200, "{}").error(), None);
        assert_eq!(r(200, r#"{"Err":""}"#).error(), None);
        assert_eq!(r(200, r#"{"Err":"x"}"#).error().as_deref(), Some("x"));
        assert_eq!(r(200, r#"{"Error":"y"}"#).error().as_deref(), Some("y"));
        assert_eq!(r(500, r#"{"Err":"z"}"#).error().as_deref(), Some("z"));
        assert!(r(404, "not found").error().unwrap().contains("404"));
    }
}
