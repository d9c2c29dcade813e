//! Shared by the protocol tests: a fake driver that records what it is asked, a server on a unix
//! socket in a temporary directory, and a client that writes requests byte for byte as Docker
//! does (no Content-Type, empty bodies for argument-less calls, an empty Host header).
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuryr_docker::{
    AddressSpaces, AllocateNetwork, CreateEndpoint, CreateEndpointReply, CreateNetwork,
    DeleteEndpoint, DeleteNetwork, EndpointOperInfo, EndpointOperInfoReply, InterfaceName,
    IpamCapabilities, IpamDriver, Join, JoinReply, Leave, Limits, MacAddr, NetworkCapabilities,
    NetworkDriver, PluginError, PluginServer, ProgramExternalConnectivity, ReleaseAddress,
    ReleasePool, RequestAddress, RequestAddressReply, RequestPool, RequestPoolReply,
    RevokeExternalConnectivity, Scope, ServerConfig, ServerError,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NID: &str = "3f2a6b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
pub const EID: &str = "9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a3f2a6b1c0d";

/// A call the fake driver received, already validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    CreateNetwork(CreateNetwork),
    DeleteNetwork(DeleteNetwork),
    CreateEndpoint(CreateEndpoint),
    EndpointOperInfo(EndpointOperInfo),
    DeleteEndpoint(DeleteEndpoint),
    Join(Join),
    Leave(Leave),
    Program(ProgramExternalConnectivity),
    Revoke(RevokeExternalConnectivity),
    RequestPool(RequestPool),
    ReleasePool(ReleasePool),
    RequestAddress(RequestAddress),
    ReleaseAddress(ReleaseAddress),
}

/// How the fake answers one method.
pub enum Failure {
    Message(&'static str),
    Backend(&'static str, &'static str),
    NotImplemented,
}

#[derive(Default)]
pub struct FakeDriver {
    seen: Mutex<Vec<Seen>>,
    failures: Mutex<BTreeMap<&'static str, Failure>>,
}

impl FakeDriver {
    pub fn fail(&self, method: &'static str, failure: Failure) {
        self.failures.lock().unwrap().insert(method, failure);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn record<T>(
        &self,
        method: &'static str,
        seen: Seen,
        reply: T,
    ) -> impl Future<Output = Result<T, PluginError>> + Send
    where
        T: Send,
    {
        self.seen.lock().unwrap().push(seen);
        let result = match self.failures.lock().unwrap().get(method) {
            None => Ok(reply),
            Some(Failure::Message(msg)) => Err(PluginError::conflict(*msg)),
            Some(Failure::Backend(ctx, cause)) => Err(PluginError::backend(
                *ctx,
                io::Error::new(io::ErrorKind::ConnectionRefused, *cause),
            )),
            Some(Failure::NotImplemented) => Err(PluginError::NotImplemented),
        };
        async move { result }
    }
}

impl NetworkDriver for FakeDriver {
    fn network_capabilities(&self) -> NetworkCapabilities {
        NetworkCapabilities {
            scope: Scope::Local,
            connectivity_scope: Some(Scope::Global),
        }
    }

    fn create_network(
        &self,
        req: CreateNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("CreateNetwork", Seen::CreateNetwork(req), ())
    }

    fn delete_network(
        &self,
        req: DeleteNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("DeleteNetwork", Seen::DeleteNetwork(req), ())
    }

    fn create_endpoint(
        &self,
        req: CreateEndpoint,
    ) -> impl Future<Output = Result<CreateEndpointReply, PluginError>> + Send {
        // Answers with the full state, echoing the address Docker chose, plus a MAC of its own.
        let reply = CreateEndpointReply {
            address: req.address,
            address_ipv6: req.address_ipv6,
            mac_address: Some(
                req.requested_mac()
                    .unwrap_or(MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1])),
            ),
        };
        self.record("CreateEndpoint", Seen::CreateEndpoint(req), reply)
    }

    fn endpoint_oper_info(
        &self,
        req: EndpointOperInfo,
    ) -> impl Future<Output = Result<EndpointOperInfoReply, PluginError>> + Send {
        let reply = EndpointOperInfoReply {
            value: [("port".to_owned(), "lsp-1".to_owned())].into(),
        };
        self.record("EndpointOperInfo", Seen::EndpointOperInfo(req), reply)
    }

    fn delete_endpoint(
        &self,
        req: DeleteEndpoint,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("DeleteEndpoint", Seen::DeleteEndpoint(req), ())
    }

    fn join(&self, req: Join) -> impl Future<Output = Result<JoinReply, PluginError>> + Send {
        let reply = JoinReply {
            interface_name: Some(InterfaceName {
                src_name: format!("t_c{}", &req.endpoint_id.as_str()[..11]),
                dst_prefix: "eth".to_owned(),
                dst_name: None,
            }),
            gateway: Some("10.1.0.1".parse().unwrap()),
            ..Default::default()
        };
        self.record("Join", Seen::Join(req), reply)
    }

    fn leave(&self, req: Leave) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("Leave", Seen::Leave(req), ())
    }

    fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivity,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("ProgramExternalConnectivity", Seen::Program(req), ())
    }

    fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivity,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("RevokeExternalConnectivity", Seen::Revoke(req), ())
    }

    fn allocate_network(
        &self,
        req: AllocateNetwork,
    ) -> impl Future<Output = Result<kuryr_docker::AllocateNetworkReply, PluginError>> + Send {
        let mut options = req.options;
        options.insert("kuryr.net.uuid".to_owned(), "ls-1".to_owned());
        async move { Ok(kuryr_docker::AllocateNetworkReply { options }) }
    }
}

impl IpamDriver for FakeDriver {
    fn ipam_capabilities(&self) -> IpamCapabilities {
        IpamCapabilities {
            requires_mac_address: true,
            requires_request_replay: false,
        }
    }

    fn default_address_spaces(&self) -> AddressSpaces {
        AddressSpaces {
            local: "local_scope".to_owned(),
            global: "global_scope".to_owned(),
        }
    }

    fn request_pool(
        &self,
        req: RequestPool,
    ) -> impl Future<Output = Result<RequestPoolReply, PluginError>> + Send {
        let pool = req.pool.unwrap_or_else(|| "10.99.0.0/24".parse().unwrap());
        let reply = RequestPoolReply::new(format!("kuryrPool-{pool}"), pool);
        self.record("RequestPool", Seen::RequestPool(req), reply)
    }

    fn release_pool(
        &self,
        req: ReleasePool,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("ReleasePool", Seen::ReleasePool(req), ())
    }

    fn request_address(
        &self,
        req: RequestAddress,
    ) -> impl Future<Output = Result<RequestAddressReply, PluginError>> + Send {
        let addr = req.address.unwrap_or_else(|| "10.1.0.2".parse().unwrap());
        let reply = RequestAddressReply::new(ipnet::IpNet::new(addr, 24).unwrap());
        self.record("RequestAddress", Seen::RequestAddress(req), reply)
    }

    fn release_address(
        &self,
        req: ReleaseAddress,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        self.record("ReleaseAddress", Seen::ReleaseAddress(req), ())
    }
}

/// A running server and what is needed to talk to it and stop it.
pub struct Harness {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub driver: Arc<FakeDriver>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Limits::DEFAULT).await
    }

    /// A server with these connection bounds.
    pub async fn start_with(limits: Limits) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: the server must create it.
        let socket = dir.path().join("plugins").join("kuryr.sock");
        let driver = Arc::new(FakeDriver::default());
        let server = PluginServer::bind(&ServerConfig::unix(&socket).with_limits(limits))
            .await
            .expect("bind the plugin socket");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(Arc::clone(&driver), async move {
            let _ = stopped.await;
        }));
        Harness {
            _dir: dir,
            socket,
            driver,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        post(&self.socket, path, body).await
    }

    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("server stops within 10s")
            .expect("server task does not panic")
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn err(&self) -> &str {
        self.body["Err"].as_str().unwrap_or_else(|| {
            panic!("reply has no Err string: {:?}", self.body);
        })
    }
}

/// Writes a request the way Docker's plugin client does: Accept header, empty Host, no
/// Content-Type, a Content-Length, and the JSON body followed by a newline (empty for calls
/// without arguments).
pub fn docker_request(path: &str, body: &str) -> Vec<u8> {
    let body = if body.is_empty() {
        String::new()
    } else {
        format!("{body}\n")
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n\
         Accept-Encoding: gzip\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub async fn post(socket: &Path, path: &str, body: &str) -> Reply {
    let mut stream = UnixStream::connect(socket).await.expect("connect");
    send(&mut stream, &docker_request(path, body)).await
}

/// Sends one request on `stream` and reads one response, leaving the connection open.
pub async fn send(stream: &mut UnixStream, request: &[u8]) -> Reply {
    stream.write_all(request).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header line");
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("every reply has a Content-Length");
    let mut raw = vec![0; len];
    reader.read_exact(&mut raw).await.unwrap();
    let body = serde_json::from_slice(&raw).unwrap_or_else(|e| {
        panic!(
            "reply body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&raw)
        )
    });
    Reply {
        status,
        headers,
        body,
    }
}
