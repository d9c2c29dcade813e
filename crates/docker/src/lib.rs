//! Docker's libnetwork remote network driver and IPAM driver protocol.
//!
//! A daemon implements [`NetworkDriver`] and [`IpamDriver`] on one type and hands it to
//! [`PluginServer`], which answers Docker on a unix socket (and optionally TCP): it parses each
//! request from [`wire`] JSON into a validated [`request`] type, calls the driver, and turns the
//! [`reply`] or the error into the JSON Docker expects.
//!
//! ```no_run
//! # async fn run<D: kuryr_docker::NetworkDriver + kuryr_docker::IpamDriver>(driver: D)
//! # -> Result<(), kuryr_docker::ServerError> {
//! use std::sync::Arc;
//! use kuryr_docker::{PluginServer, ServerConfig};
//!
//! let config = ServerConfig::unix("/run/docker/plugins/kuryr.sock");
//! let server = PluginServer::bind(&config).await?;
//! server
//!     .serve(Arc::new(driver), async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await
//! # }
//! ```

use std::future::Future;

pub mod error;
pub mod reply;
pub mod request;
pub mod server;
mod tls;
pub mod types;
pub mod wire;

pub use error::{PluginError, RequestError};
pub use kuryr_http::Limits;
pub use reply::{
    AddressSpaces, AllocateNetworkReply, CreateEndpointReply, EndpointOperInfoReply, InterfaceName,
    IpamCapabilities, JoinReply, NetworkCapabilities, NextHop, RequestAddressReply,
    RequestPoolReply, Scope, StaticRoute,
};
pub use request::{
    AddressKind, AllocateNetwork, CreateEndpoint, CreateNetwork, DeleteEndpoint, DeleteNetwork,
    Discovery, EndpointOperInfo, EndpointOptions, EndpointRef, FreeNetwork, IpamPool, Join, Leave,
    NetworkOptions, PortBinding, ProgramExternalConnectivity, ReleaseAddress, ReleasePool,
    RequestAddress, RequestPool, RevokeExternalConnectivity, TransportPort,
};
pub use server::{router, PluginServer, ServerConfig, ServerError, TlsFiles};
pub use types::{DockerId, MacAddr, Protocol};

/// The network half of the plugin: Docker's `NetworkDriver` API.
///
/// Calls for different containers arrive concurrently; Docker serializes CreateEndpoint per
/// network and Join/Leave per container.
pub trait NetworkDriver: Send + Sync + 'static {
    /// Scope reported by `GetCapabilities`.
    fn network_capabilities(&self) -> NetworkCapabilities;

    /// Creates the network. Never replayed after a Docker restart.
    fn create_network(
        &self,
        req: CreateNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Deletes the network; Docker deletes its side even if this fails.
    fn delete_network(
        &self,
        req: DeleteNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Creates an endpoint, returning only the interface fields Docker left empty.
    fn create_endpoint(
        &self,
        req: CreateEndpoint,
    ) -> impl Future<Output = Result<CreateEndpointReply, PluginError>> + Send;

    /// Operational data for `docker inspect`; Docker ignores errors.
    fn endpoint_oper_info(
        &self,
        req: EndpointOperInfo,
    ) -> impl Future<Output = Result<EndpointOperInfoReply, PluginError>> + Send;

    /// Deletes an endpoint; must be idempotent (Docker may call it twice or after a crash).
    fn delete_endpoint(
        &self,
        req: DeleteEndpoint,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Attaches the endpoint to a container, naming the interface Docker moves in.
    fn join(&self, req: Join) -> impl Future<Output = Result<JoinReply, PluginError>> + Send;

    /// Detaches the endpoint; comes before Docker moves the interface back to the host.
    fn leave(&self, req: Leave) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Opens exposed and published ports. Returning [`PluginError::NotImplemented`] answers 404,
    /// which Docker accepts.
    fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivity,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Undoes `program_external_connectivity`. [`PluginError::NotImplemented`] answers 404.
    fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivity,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// A swarm node appeared; nothing to do unless the driver tracks nodes.
    fn discover_new(
        &self,
        _req: Discovery,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }

    /// A swarm node left; nothing to do unless the driver tracks nodes.
    fn discover_delete(
        &self,
        _req: Discovery,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }

    /// Swarm manager, global scope: reserves the network cluster-wide. The default passes the
    /// options on to the workers unchanged.
    fn allocate_network(
        &self,
        req: AllocateNetwork,
    ) -> impl Future<Output = Result<AllocateNetworkReply, PluginError>> + Send {
        async move {
            Ok(AllocateNetworkReply {
                options: req.options,
            })
        }
    }

    /// Swarm manager, global scope: releases what `allocate_network` reserved.
    fn free_network(
        &self,
        _req: FreeNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }
}

/// The address-management half of the plugin: Docker's `IpamDriver` API.
pub trait IpamDriver: Send + Sync + 'static {
    /// Capabilities reported by `GetCapabilities`.
    fn ipam_capabilities(&self) -> IpamCapabilities;

    /// Names of the default local and global address spaces.
    fn default_address_spaces(&self) -> AddressSpaces;

    /// Reserves a pool. Pool ids must be stable; with no `pool` asked for, hand out a different
    /// pool on each call, because Docker asks again without releasing when one overlaps a route.
    fn request_pool(
        &self,
        req: RequestPool,
    ) -> impl Future<Output = Result<RequestPoolReply, PluginError>> + Send;

    /// Releases a pool.
    fn release_pool(
        &self,
        req: ReleasePool,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Reserves an address (the gateway's or an endpoint's) in a pool.
    fn request_address(
        &self,
        req: RequestAddress,
    ) -> impl Future<Output = Result<RequestAddressReply, PluginError>> + Send;

    /// Releases an address; Docker only logs errors.
    fn release_address(
        &self,
        req: ReleaseAddress,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;
}
