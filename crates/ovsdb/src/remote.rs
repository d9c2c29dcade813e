//! OVSDB remotes (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`) and opening a stream to one.
use crate::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
    Ssl { host: String, port: u16 },
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = |f: &mut fmt::Formatter<'_>, scheme: &str, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "{scheme}:[{host}]:{port}")
            } else {
                write!(f, "{scheme}:{host}:{port}")
            }
        };
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp { host, port } => hp(f, "tcp", host, *port),
            Remote::Ssl { host, port } => hp(f, "ssl", host, *port),
        }
    }
}

impl std::str::FromStr for Remote {
    type Err = Error;

    fn from_str(s: &str) -> Result<Remote, Error> {
        let bad = |reason: &str| Error::BadRemote {
            remote: s.to_string(),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Remote::Unix(PathBuf::from(path)));
        }
        let (scheme, rest) = s.split_once(':').ok_or_else(|| bad("no scheme"))?;
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, tail) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in address"))?;
            (
                host,
                tail.strip_prefix(':')
                    .ok_or_else(|| bad("no port after the address"))?,
            )
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("no port"))?
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        let host = host.to_string();
        match scheme {
            "tcp" => Ok(Remote::Tcp { host, port }),
            "ssl" => Ok(Remote::Ssl { host, port }),
            _ => Err(bad("unknown scheme")),
        }
    }
}

/// Parses a comma-separated list of remotes, as `ovn-nbctl --db` takes them.
pub fn parse_remotes(list: &str) -> Result<Vec<Remote>, Error> {
    let remotes: Vec<Remote> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if remotes.is_empty() {
        return Err(Error::BadRemote {
            remote: list.to_string(),
            reason: "no remote given".into(),
        });
    }
    Ok(remotes)
}

/// Private key, certificate and CA certificate for `ssl:` remotes (PEM files, as OVS uses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) async fn open(
    remote: &Remote,
    tls: Option<&TlsFiles>,
    timeout: Duration,
) -> Result<Box<dyn Io>, Error> {
    let what = remote.to_string();
    let connect = async {
        let io_err = |source| Error::Connect {
            remote: what.clone(),
            source,
        };
        Ok::<Box<dyn Io>, Error>(match remote {
            Remote::Unix(path) => Box::new(UnixStream::connect(path).await.map_err(io_err)?),
            Remote::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_err)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            Remote::Ssl { host, port } => {
                let tls = tls.ok_or_else(|| Error::Tls {
                    remote: what.clone(),
                    message:
                        "an ssl: remote needs a private key, a certificate and a CA certificate"
                            .into(),
                })?;
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_err)?;
                let _ = s.set_nodelay(true);
                Box::new(tls_handshake(&what, host, s, tls).await?)
            }
        })
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            what: format!("connect to {what}"),
            seconds: timeout.as_secs_f64(),
        }),
    }
}

async fn tls_handshake(
    what: &str,
    host: &str,
    tcp: TcpStream,
    files: &TlsFiles,
) -> Result<tokio_openssl::SslStream<TcpStream>, Error> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
    let err = |stage: &str, e: &dyn fmt::Display| Error::Tls {
        remote: what.to_string(),
        message: format!("{stage}: {e}"),
    };
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| err("TLS setup", &e))?;
    b.set_private_key_file(&files.private_key, SslFiletype::PEM)
        .map_err(|e| err(&format!("private key {}", files.private_key.display()), &e))?;
    b.set_certificate_chain_file(&files.certificate)
        .map_err(|e| err(&format!("certificate {}", files.certificate.display()), &e))?;
    b.set_ca_file(&files.ca_cert)
        .map_err(|e| err(&format!("CA certificate {}", files.ca_cert.display()), &e))?;
    b.set_verify(SslVerifyMode::PEER);
    // OVS authenticates peers by CA only: its certificates carry no host names to check.
    let mut cfg = b.build().configure().map_err(|e| err("TLS setup", &e))?;
    cfg.set_verify_hostname(false);
    cfg.set_use_server_name_indication(false);
    let ssl = cfg.into_ssl(host).map_err(|e| err("TLS setup", &e))?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| err("TLS setup", &e))?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| err("handshake", &e))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "unix:/run/ovn/nb.sock".parse::<Remote>().unwrap(),
            Remote::Unix("/run/ovn/nb.sock".into())
        );
        assert_eq!(
            "tcp:127.0.0.1:6641".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "127.0.0.1".into(),
                port: 6641
            }
        );
        assert_eq!(
            "ssl:[::1]:6641".parse::<Remote>().unwrap(),
            Remote::Ssl {
                host: "::1".into(),
                port: 6641
            }
        );
        assert_eq!(
            "ssl:[::1]:6641".parse::<Remote>().unwrap().to_string(),
            "ssl:[::1]:6641"
        );
        assert_eq!(parse_remotes("tcp:a:1, tcp:b:2").unwrap().len(), 2);
    }

    #[test]
    fn rejects_bad_remotes_with_a_reason() {
        for bad in [
            "",
            "unix:",
            "tcp:host",
            "tcp::1",
            "tcp:h:0",
            "tcp:h:99999",
            "http:h:80",
            "ssl:[::1",
            "nothing",
        ] {
            let err = parse_remotes(bad).unwrap_err().to_string();
            assert!(err.contains("expected unix:PATH"), "{bad}: {err}");
        }
    }
}
