//! The HTTP side of the plugin: routes, error mapping, and the listening sockets.
//!
//! Docker sends `POST /<Iface>.<Method>` with no Content-Type and, for argument-less calls, an
//! empty body, so bodies are read as bytes and decoded here rather than by an extractor. Every
//! reply carries a JSON body; every failure becomes `{"Err": "..."}` in one function,
//! `error_response`.

use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tracing::{field, info, info_span, warn, Instrument, Span};

use crate::error::{chain_message, PluginError, RequestError};
use crate::request::{
    AllocateNetwork, CreateEndpoint, CreateNetwork, DeleteNetwork, EndpointRef, FreeNetwork, Join,
    ProgramExternalConnectivity, ReleaseAddress, ReleasePool, RequestAddress, RequestPool,
};
use crate::wire::{self, decode, Call};
use crate::{IpamDriver, NetworkDriver};
use kuryr_http::{self as listen, Limits};

/// Where Docker looks for a plugin named `kuryr`.
pub const DEFAULT_SOCKET_PATH: &str = "/run/docker/plugins/kuryr.sock";

/// Largest request body accepted; Docker's are a few kilobytes.
const MAX_BODY: usize = 4 << 20;

/// How long to wait for an existing socket to answer before calling it taken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the plugin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The unix socket Docker discovers, normally [`DEFAULT_SOCKET_PATH`].
    pub socket_path: PathBuf,
    /// An extra TCP address (e.g. `127.0.0.1:23750`, for a `kuryr.spec` file); it has no
    /// authentication, so keep it on loopback.
    pub tcp: Option<SocketAddr>,
    /// Serve the TCP address over TLS with this certificate (chain) and key, PEM files.
    pub tls: Option<TlsFiles>,
    /// Bounds on connections and on the time a request may take to arrive.
    pub limits: Limits,
}

/// PEM files of the TLS server on the TCP address (`enable_ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    /// Listen on the unix socket `path` only.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        ServerConfig {
            socket_path: path.into(),
            tcp: None,
            tls: None,
            limits: Limits::DEFAULT,
        }
    }

    /// Also listen on `addr`.
    pub fn with_tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = Some(addr);
        self
    }

    /// With these connection bounds instead of [`Limits::DEFAULT`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::unix(DEFAULT_SOCKET_PATH)
    }
}

/// Why the plugin server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket's directory could not be created.
    #[error("create plugin socket directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Another process answers on the socket.
    #[error(
        "plugin socket {} is served by another process; stop it or choose another socket path",
        path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket sits at the socket path.
    #[error(
        "plugin socket path {} exists and is not a socket; remove it or choose another path",
        path.display()
    )]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The existing socket file could not be checked or removed.
    #[error("replace stale plugin socket {}", path.display())]
    Stale {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Binding the unix socket failed.
    #[error("listen on plugin socket {}", path.display())]
    BindUnix {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("TLS for the plugin API: {0}")]
    Tls(String),
    /// Binding the TCP address failed.
    #[error("listen on {addr}")]
    BindTcp {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// Serving stopped with an I/O error.
    #[error("serve plugin API on {listener}")]
    Serve {
        /// The socket path or TCP address.
        listener: String,
        /// The cause.
        source: io::Error,
    },
}

/// The plugin API's listeners, bound and ready; [`PluginServer::serve`] starts answering.
///
/// Binding first lets the caller report a taken socket before it announces readiness. The unix
/// socket file is removed when the server is dropped, if it is still the one created here.
pub struct PluginServer {
    unix: UnixListener,
    /// The socket's path, for logs.
    path: PathBuf,
    /// The socket file this process created (removed on drop); `None` for a socket inherited
    /// from the service manager, which owns it.
    socket: Option<SocketFile>,
    tcp: Option<TcpListener>,
    tls: Option<openssl::ssl::SslAcceptor>,
    limits: Limits,
}

impl std::fmt::Debug for PluginServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginServer")
            .field("unix", &self.unix)
            .field("path", &self.path)
            .field("inherited", &self.socket.is_none())
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl PluginServer {
    /// Creates the unix socket (mode 0600, parent directory created, a stale socket replaced)
    /// and the optional TCP listener.
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        let (unix, socket) = bind_unix(&config.socket_path).await?;
        Self::with_unix(unix, config.socket_path.clone(), Some(socket), config).await
    }

    /// Serves on a unix socket the service manager bound and passed down (socket activation):
    /// it is neither created nor removed here, so Docker's calls wait in its backlog while
    /// kuryr restarts. The TCP listener, if configured, is bound as usual.
    pub async fn adopt(
        listener: std::os::unix::net::UnixListener,
        config: &ServerConfig,
    ) -> Result<Self, ServerError> {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_else(|| config.socket_path.clone());
        let adopt_err = |source| ServerError::BindUnix {
            path: path.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(adopt_err)?;
        let unix = UnixListener::from_std(listener).map_err(adopt_err)?;
        Self::with_unix(unix, path, None, config).await
    }

    async fn with_unix(
        unix: UnixListener,
        path: PathBuf,
        socket: Option<SocketFile>,
        config: &ServerConfig,
    ) -> Result<Self, ServerError> {
        let tcp = match config.tcp {
            None => None,
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    warn!(%addr, "the plugin API has no authentication; anyone who can reach this address can drive it");
                }
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::BindTcp { addr, source })?;
                Some(listener)
            }
        };
        let tls = match &config.tls {
            Some(files) if tcp.is_some() => Some(crate::tls::acceptor(files)?),
            _ => None,
        };
        Ok(PluginServer {
            unix,
            path,
            socket,
            tcp,
            tls,
            limits: config.limits,
        })
    }

    /// The unix socket path.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Answers Docker until `shutdown` completes, then finishes the calls under way and returns.
    pub async fn serve<D, F>(self, driver: Arc<D>, shutdown: F) -> Result<(), ServerError>
    where
        D: NetworkDriver + IpamDriver,
        F: Future<Output = ()> + Send + 'static,
    {
        let PluginServer {
            unix,
            path,
            socket,
            tcp,
            tls,
            limits,
        } = self;
        let app = router_with(driver, limits);
        let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        info!(socket = %path.display(), inherited = socket.is_none(), tcp = ?tcp_addr, tls = tls.is_some(), max_connections = limits.max_connections, read_timeout = ?limits.read_timeout, "serving the Docker plugin API");

        // Dropping the sender tells every listener to stop.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let signal = async move {
            shutdown.await;
            drop(stop_tx);
        };
        let unix_name = path.display().to_string();
        let unix_task = listen::serve(unix, app.clone(), limits, &unix_name, stop_rx.clone());
        let tcp_task = async move {
            let name = tcp_addr.map_or_else(|| "tcp".to_owned(), |a| a.to_string());
            match (tcp, tls) {
                (None, _) => {}
                (Some(listener), None) => {
                    listen::serve(listener, app, limits, &name, stop_rx).await
                }
                (Some(listener), Some(acceptor)) => {
                    let listener = crate::tls::TlsListener::new(listener, acceptor);
                    listen::serve(listener, app, limits, &name, stop_rx).await
                }
            }
        };
        tokio::join!(signal, unix_task, tcp_task);
        info!(socket = %path.display(), "stopped serving the Docker plugin API");
        drop(socket);
        Ok(())
    }
}

/// The unix socket file this process created; removed on drop unless replaced meanwhile.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Tells apart concurrent binds in one process for the private directory's name.
static BIND_SEQ: AtomicU32 = AtomicU32::new(0);

async fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), ServerError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|source| ServerError::CreateDir {
        path: parent.clone(),
        source,
    })?;
    remove_if_stale(path).await?;

    // Bind inside a private directory, set the mode, then link the socket into place: the socket
    // is never reachable with looser permissions, and the link fails rather than replacing a
    // socket another process created in the meantime.
    let bind_err = |source| ServerError::BindUnix {
        path: path.to_path_buf(),
        source,
    };
    let seq = BIND_SEQ.fetch_add(1, Ordering::Relaxed);
    let private = parent.join(format!(".{:x}-{seq}.tmp", std::process::id()));
    if private.exists() {
        fs::remove_dir_all(&private).map_err(bind_err)?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(bind_err)?;
    let tmp = private.join("s");
    let linked = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        fs::hard_link(&tmp, path)?;
        Ok::<_, io::Error>(listener)
    })();
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_dir(&private);
    let listener = linked.map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            ServerError::InUse {
                path: path.to_path_buf(),
            }
        } else {
            bind_err(source)
        }
    })?;
    let meta = fs::symlink_metadata(path).map_err(bind_err)?;
    let socket = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    listener.set_nonblocking(true).map_err(bind_err)?;
    let listener = UnixListener::from_std(listener).map_err(bind_err)?;
    Ok((listener, socket))
}

/// Removes a socket file nobody answers on; refuses when someone does or when it is no socket.
async fn remove_if_stale(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::FileTypeExt;

    let stale = |source| ServerError::Stale {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(stale(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        // A listener that accepts, or one too busy to accept in time, is alive.
        Ok(Ok(_)) | Err(_) => Err(ServerError::InUse {
            path: path.to_path_buf(),
        }),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!(socket = %path.display(), "removing stale plugin socket");
            match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(stale(e)),
            }
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(Err(e)) => Err(stale(e)),
    }
}

/// The plugin API as an axum router, for callers that run their own listener (TLS, tests).
pub fn router<D>(driver: Arc<D>) -> Router
where
    D: NetworkDriver + IpamDriver,
{
    router_with(driver, Limits::DEFAULT)
}

fn router_with<D>(driver: Arc<D>, limits: Limits) -> Router
where
    D: NetworkDriver + IpamDriver,
{
    let state = Served {
        driver,
        read_timeout: limits.read_timeout,
    };
    Router::new().fallback(handle::<D>).with_state(state)
}

/// What every call's handler gets.
struct Served<D> {
    driver: Arc<D>,
    /// How long the body may take to arrive once the head is in.
    read_timeout: Duration,
}

impl<D> Clone for Served<D> {
    fn clone(&self) -> Self {
        Served {
            driver: Arc::clone(&self.driver),
            read_timeout: self.read_timeout,
        }
    }
}

/// Ids of the call as Docker sent them, for the span and the log line.
#[derive(Default)]
struct CallIds {
    network: Option<String>,
    endpoint: Option<String>,
}

impl CallIds {
    fn note(&mut self, network: &str, endpoint: Option<&str>) {
        let span = Span::current();
        let network = quoted_prefix(network);
        span.record("network_id", network.as_str());
        self.network = Some(network);
        if let Some(endpoint) = endpoint {
            let endpoint = quoted_prefix(endpoint);
            span.record("endpoint_id", endpoint.as_str());
            self.endpoint = Some(endpoint);
        }
    }
}

/// Caps a value from the request at a length fit for a log line (ids are 64 characters).
fn quoted_prefix(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

async fn handle<D>(State(served): State<Served<D>>, req: Request) -> Response
where
    D: NetworkDriver + IpamDriver,
{
    let started = Instant::now();
    let path = quoted_prefix(req.uri().path());
    let call = Call::from_path(&path);
    let method = call.map_or_else(|| path.clone(), |c| c.name().to_owned());
    let span = info_span!(
        "docker_call",
        method = %method,
        network_id = field::Empty,
        endpoint_id = field::Empty
    );
    let mut ids = CallIds::default();
    let result = async {
        let call = call.ok_or_else(|| CallError::UnknownMethod(path.clone()))?;
        if req.method() != Method::POST {
            return Err(CallError::NotPost(call, req.method().clone()));
        }
        let body = read_body(call, req, served.read_timeout).await?;
        if body.iter().all(u8::is_ascii_whitespace) && takes_arguments(call) {
            return Err(CallError::EmptyBody(call));
        }
        dispatch(&*served.driver, call, &body, &mut ids).await
    }
    .instrument(span)
    .await;

    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let network_id = ids.network.as_deref();
    let endpoint_id = ids.endpoint.as_deref();
    // A path Docker does not send counts as `unknown`: paths are not a label's values.
    let metric_method = call.map_or("unknown", |c| c.name());
    match result {
        Ok(body) => {
            kuryr_metrics::docker_call(metric_method, kuryr_metrics::Outcome::Ok, elapsed);
            info!(
                method,
                network_id,
                endpoint_id,
                outcome = "ok",
                duration_ms,
                "plugin call"
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, wire::CONTENT_TYPE)],
                Body::from(body),
            )
                .into_response()
        }
        Err(err) => {
            let response = error_response(&err);
            let status = response.status().as_u16();
            let error = err.to_string();
            // Docker gets 500 for both; what tells them apart is whose fault it is.
            let failed = err.is_failure();
            let outcome = if failed {
                kuryr_metrics::Outcome::Failed
            } else {
                kuryr_metrics::Outcome::Refused
            };
            kuryr_metrics::docker_call(metric_method, outcome, elapsed);
            if failed {
                warn!(
                    method,
                    network_id,
                    endpoint_id,
                    outcome = "error",
                    status,
                    error,
                    duration_ms,
                    "plugin call failed"
                );
            } else {
                info!(
                    method,
                    network_id,
                    endpoint_id,
                    outcome = "error",
                    status,
                    error,
                    duration_ms,
                    "plugin call refused"
                );
            }
            response
        }
    }
}

/// Decodes, validates and runs one call, returning the JSON reply body.
async fn dispatch<D>(
    driver: &D,
    call: Call,
    body: &[u8],
    ids: &mut CallIds,
) -> Result<Vec<u8>, CallError>
where
    D: NetworkDriver + IpamDriver,
{
    let driver_err = |e| CallError::Driver(call, e);
    match call {
        Call::Activate => encode(
            call,
            &wire::ActivateResponse {
                implements: vec![
                    wire::NETWORK_DRIVER.to_owned(),
                    wire::IPAM_DRIVER.to_owned(),
                ],
            },
        ),
        Call::NetworkGetCapabilities => encode(
            call,
            &wire::CapabilitiesResponse::from(driver.network_capabilities()),
        ),
        Call::CreateNetwork => {
            let w: wire::CreateNetworkRequest = decode(call, body)?;
            ids.note(&w.network_id, None);
            let req = CreateNetwork::try_from(w)?;
            driver.create_network(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::DeleteNetwork => {
            let w: wire::NetworkRequest = decode(call, body)?;
            ids.note(&w.network_id, None);
            let req = DeleteNetwork::from_wire(w)?;
            driver.delete_network(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::CreateEndpoint => {
            let w: wire::CreateEndpointRequest = decode(call, body)?;
            ids.note(&w.network_id, Some(&w.endpoint_id));
            let req = CreateEndpoint::try_from(w)?;
            let reply = driver
                .create_endpoint(req.clone())
                .await
                .map_err(driver_err)?;
            encode(
                call,
                &wire::CreateEndpointResponse::from(reply.without_echoes(&req)),
            )
        }
        Call::EndpointOperInfo => {
            let req = endpoint_ref(call, body, ids)?;
            let reply = driver.endpoint_oper_info(req).await.map_err(driver_err)?;
            encode(call, &wire::EndpointOperInfoResponse::from(reply))
        }
        Call::DeleteEndpoint => {
            let req = endpoint_ref(call, body, ids)?;
            driver.delete_endpoint(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::Join => {
            let w: wire::JoinRequest = decode(call, body)?;
            ids.note(&w.network_id, Some(&w.endpoint_id));
            let req = Join::try_from(w)?;
            let reply = driver.join(req).await.map_err(driver_err)?;
            encode(call, &wire::JoinResponse::from(reply))
        }
        Call::Leave => {
            let req = endpoint_ref(call, body, ids)?;
            driver.leave(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::ProgramExternalConnectivity => {
            let w: wire::ProgramExternalConnectivityRequest = decode(call, body)?;
            ids.note(&w.network_id, Some(&w.endpoint_id));
            let req = ProgramExternalConnectivity::try_from(w)?;
            driver
                .program_external_connectivity(req)
                .await
                .map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::RevokeExternalConnectivity => {
            let req = endpoint_ref(call, body, ids)?;
            driver
                .revoke_external_connectivity(req)
                .await
                .map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::DiscoverNew => {
            let w: wire::DiscoveryNotification = decode(call, body)?;
            driver.discover_new(w.into()).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::DiscoverDelete => {
            let w: wire::DiscoveryNotification = decode(call, body)?;
            driver.discover_delete(w.into()).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::AllocateNetwork => {
            let w: wire::AllocateNetworkRequest = decode(call, body)?;
            ids.note(&w.network_id, None);
            let req = AllocateNetwork::try_from(w)?;
            let reply = driver.allocate_network(req).await.map_err(driver_err)?;
            encode(call, &wire::AllocateNetworkResponse::from(reply))
        }
        Call::FreeNetwork => {
            let w: wire::NetworkRequest = decode(call, body)?;
            ids.note(&w.network_id, None);
            let req = FreeNetwork::from_wire(w)?;
            driver.free_network(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::IpamGetCapabilities => encode(
            call,
            &wire::IpamCapabilitiesResponse::from(driver.ipam_capabilities()),
        ),
        Call::GetDefaultAddressSpaces => encode(
            call,
            &wire::AddressSpacesResponse::from(driver.default_address_spaces()),
        ),
        Call::RequestPool => {
            let w: wire::RequestPoolRequest = decode(call, body)?;
            let req = RequestPool::try_from(w)?;
            let reply = driver.request_pool(req).await.map_err(driver_err)?;
            encode(call, &wire::RequestPoolResponse::from(reply))
        }
        Call::ReleasePool => {
            let w: wire::ReleasePoolRequest = decode(call, body)?;
            let req = ReleasePool::try_from(w)?;
            driver.release_pool(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
        Call::RequestAddress => {
            let w: wire::RequestAddressRequest = decode(call, body)?;
            let req = RequestAddress::try_from(w)?;
            let reply = driver.request_address(req).await.map_err(driver_err)?;
            encode(call, &wire::RequestAddressResponse::from(reply))
        }
        Call::ReleaseAddress => {
            let w: wire::ReleaseAddressRequest = decode(call, body)?;
            let req = ReleaseAddress::try_from(w)?;
            driver.release_address(req).await.map_err(driver_err)?;
            encode(call, &wire::Empty {})
        }
    }
}

/// Whether Docker sends `call` with a JSON body (every call but the argument-less ones).
fn takes_arguments(call: Call) -> bool {
    !matches!(
        call,
        Call::Activate
            | Call::NetworkGetCapabilities
            | Call::IpamGetCapabilities
            | Call::GetDefaultAddressSpaces
    )
}

/// The request body, within `MAX_BODY` bytes and `timeout`.
async fn read_body(call: Call, req: Request, timeout: Duration) -> Result<Bytes, CallError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(CallError::TooLarge(call));
    }
    match tokio::time::timeout(timeout, to_bytes(req.into_body(), MAX_BODY)).await {
        Err(_) => Err(CallError::BodyTimeout(call, timeout)),
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) if is_length_limit(&e) => Err(CallError::TooLarge(call)),
        Ok(Err(e)) => Err(CallError::Body(call, chain_message(&e))),
    }
}

/// Whether reading a body failed because it passed the limit given to `to_bytes`.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn endpoint_ref(call: Call, body: &[u8], ids: &mut CallIds) -> Result<EndpointRef, CallError> {
    let w: wire::EndpointRequest = decode(call, body)?;
    ids.note(&w.network_id, Some(&w.endpoint_id));
    Ok(EndpointRef::from_wire(call, w)?)
}

fn encode<T: Serialize>(call: Call, reply: &T) -> Result<Vec<u8>, CallError> {
    serde_json::to_vec(reply).map_err(|e| CallError::Encode(call, e))
}

/// Everything that can go wrong with one call.
#[derive(Debug)]
enum CallError {
    UnknownMethod(String),
    NotPost(Call, Method),
    Body(Call, String),
    TooLarge(Call),
    BodyTimeout(Call, Duration),
    EmptyBody(Call),
    Request(RequestError),
    Driver(Call, PluginError),
    Encode(Call, serde_json::Error),
}

impl From<RequestError> for CallError {
    fn from(e: RequestError) -> Self {
        CallError::Request(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::UnknownMethod(path) => write!(f, "unknown plugin call {path:?}"),
            CallError::NotPost(call, method) => {
                write!(
                    f,
                    "{call}: method {method} not allowed, plugin calls are POST"
                )
            }
            CallError::Body(call, detail) => {
                write!(f, "{}: read request body: {detail}", call.method())
            }
            CallError::EmptyBody(call) => write!(
                f,
                "{}: empty request body; Docker sends one when it retries a call after losing \
                 its connection to the plugin (kuryr restarted during the call): run the \
                 command again",
                call.method()
            ),
            CallError::TooLarge(call) => write!(
                f,
                "{}: request body larger than {} bytes; Docker's requests are a few kilobytes",
                call.method(),
                MAX_BODY
            ),
            CallError::BodyTimeout(call, timeout) => write!(
                f,
                "{}: request body not received within {timeout:?}",
                call.method()
            ),
            CallError::Request(e) => write!(f, "{e}"),
            CallError::Driver(call, PluginError::NotImplemented) => {
                write!(f, "{call} is not implemented by this plugin")
            }
            // Docker prefixes the call name itself; the driver's message goes through as is.
            CallError::Driver(_, e) => f.write_str(&chain_message(e)),
            CallError::Encode(call, e) => write!(f, "{}: encode reply: {e}", call.method()),
        }
    }
}

impl CallError {
    /// Whether kuryr or a dependency (control plane, OVS, the kernel) failed, as opposed to a
    /// request that was malformed, unsupported or clashed with existing state (refused).
    fn is_failure(&self) -> bool {
        matches!(
            self,
            CallError::Driver(_, PluginError::Backend { .. }) | CallError::Encode(..)
        )
    }
}

impl IntoResponse for CallError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

/// The one place a failure becomes the protocol's error shape: a status and `{"Err": msg}`.
///
/// 404 means "no such call" to Docker, which it accepts for the optional external-connectivity
/// calls; everything else is 500, which both APIs read as an error.
fn error_response(err: &CallError) -> Response {
    let status = match err {
        CallError::UnknownMethod(_) | CallError::Driver(_, PluginError::NotImplemented) => {
            StatusCode::NOT_FOUND
        }
        CallError::NotPost(..) => StatusCode::METHOD_NOT_ALLOWED,
        CallError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        CallError::BodyTimeout(..) => StatusCode::REQUEST_TIMEOUT,
        CallError::Body(..)
        | CallError::EmptyBody(_)
        | CallError::Request(_)
        | CallError::Driver(..)
        | CallError::Encode(..) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = wire::ErrorResponse {
        err: err.to_string(),
    };
    // An ErrorResponse always encodes; the fallback keeps the body JSON regardless.
    let body =
        serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"Err":"internal error"}"#.to_vec());
    (
        status,
        [(header::CONTENT_TYPE, wire::CONTENT_TYPE)],
        Body::from(body),
    )
        .into_response()
}
