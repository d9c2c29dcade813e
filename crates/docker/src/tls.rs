//! TLS on the plugin API's TCP address (kuryr.conf `enable_ssl`), for plugin spec files that
//! give Docker a `TLSConfig`.
use crate::server::{ServerError, TlsFiles};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;
use tracing::warn;

/// A client that does not finish its handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of TLS from PEM files, checked now so that a bad file stops the start.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<SslAcceptor, ServerError> {
    let err = |what: &str, path: &std::path::Path, e: openssl::error::ErrorStack| {
        ServerError::Tls(format!(
            "{what} {}: {e} (check [DEFAULT] ssl_cert_file / ssl_key_file)",
            path.display()
        ))
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| ServerError::Tls(format!("set up TLS: {e}")))?;
    b.set_certificate_chain_file(&files.cert)
        .map_err(|e| err("certificate", &files.cert, e))?;
    b.set_private_key_file(&files.key, SslFiletype::PEM)
        .map_err(|e| err("private key", &files.key, e))?;
    b.check_private_key().map_err(|e| {
        ServerError::Tls(format!(
            "private key {} does not match certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    Ok(b.build())
}

/// Accepts TCP connections and hands axum those that complete a TLS handshake; handshakes
/// run side by side, so a slow client does not hold up Docker.
pub(crate) struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(SslStream<TcpStream>, SocketAddr)>,
    addr: std::io::Result<SocketAddr>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, acceptor: SslAcceptor) -> TlsListener {
        let addr = tcp.local_addr();
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        warn!(error = %e, "accept on the plugin API's TLS address");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let ctx = acceptor.context().to_owned();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let stream = Ssl::new(&ctx).and_then(|ssl| SslStream::new(ssl, tcp));
                    let mut stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            warn!(%addr, error = %e, "TLS session for a plugin API client");
                            return;
                        }
                    };
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept())
                        .await
                    {
                        Ok(Ok(())) => {
                            let _ = tx.send((stream, addr)).await;
                        }
                        Ok(Err(e)) => {
                            warn!(%addr, error = %e, "TLS handshake with a plugin API client failed")
                        }
                        Err(_) => warn!(%addr, "TLS handshake with a plugin API client timed out"),
                    }
                });
            }
        });
        TlsListener {
            ready,
            addr,
            accepting,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task is gone (only when dropped): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.addr {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
