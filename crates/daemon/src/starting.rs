//! Serving Docker before the control plane answers (`[DEFAULT] serve_while_connecting`).
//!
//! Docker disables a managed plugin whose socket is silent for about 10 s after it starts,
//! and a node's plugins start before its network: the socket is bound at once, the
//! capabilities (known from kuryr.conf alone) are answered at once, and every other call
//! waits a moment for the driver, then fails saying what kuryr is still waiting for.
use kuryr_docker::request::{
    AllocateNetwork, CreateEndpoint, CreateNetwork, DeleteEndpoint, DeleteNetwork, Discovery,
    EndpointOperInfo, FreeNetwork, Join, Leave, ProgramExternalConnectivity, ReleaseAddress,
    ReleasePool, RequestAddress, RequestPool, RevokeExternalConnectivity,
};
use kuryr_docker::{
    AddressSpaces, AllocateNetworkReply, CreateEndpointReply, EndpointOperInfoReply,
    IpamCapabilities, IpamDriver, JoinReply, NetworkCapabilities, NetworkDriver, PluginError,
    RequestAddressReply, RequestPoolReply,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a call waits for the driver before it fails.
const CALL_WAIT: Duration = Duration::from_secs(5);

/// The plugin API while the driver is being built, and the driver's once it is.
pub struct Starting<D> {
    network: NetworkCapabilities,
    ipam: IpamCapabilities,
    spaces: AddressSpaces,
    ready: watch::Sender<Option<Arc<D>>>,
    /// What kuryr is waiting for, for the error a call gets meanwhile.
    status: Mutex<String>,
}

impl<D: NetworkDriver + IpamDriver> Starting<D> {
    pub fn new(
        network: NetworkCapabilities,
        ipam: IpamCapabilities,
        spaces: AddressSpaces,
        status: impl Into<String>,
    ) -> Self {
        Starting {
            network,
            ipam,
            spaces,
            ready: watch::Sender::new(None),
            status: Mutex::new(status.into()),
        }
    }

    /// The driver is built: calls go to it from now on.
    pub fn ready(&self, driver: Arc<D>) {
        self.ready.send_replace(Some(driver));
    }

    /// What the next refused call says kuryr is waiting for.
    pub fn set_status(&self, status: impl Into<String>) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status.into();
    }

    /// The driver, if it is built.
    pub fn current(&self) -> Option<Arc<D>> {
        self.ready.borrow().clone()
    }

    async fn driver(&self, call: &str) -> Result<Arc<D>, PluginError> {
        let mut rx = self.ready.subscribe();
        let waited = tokio::time::timeout(CALL_WAIT, rx.wait_for(Option::is_some)).await;
        if let Ok(Ok(d)) = waited {
            if let Some(d) = d.as_ref() {
                return Ok(d.clone());
            }
        }
        let status = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Err(PluginError::backend(
            format!("{call}: kuryr is still starting"),
            format!("{status}; the call can be retried once `kuryr` logs that it serves Docker's plugin API"),
        ))
    }
}

impl<D: NetworkDriver + IpamDriver> NetworkDriver for Starting<D> {
    fn network_capabilities(&self) -> NetworkCapabilities {
        self.network
    }

    async fn create_network(&self, req: CreateNetwork) -> Result<(), PluginError> {
        self.driver("CreateNetwork")
            .await?
            .create_network(req)
            .await
    }

    async fn delete_network(&self, req: DeleteNetwork) -> Result<(), PluginError> {
        self.driver("DeleteNetwork")
            .await?
            .delete_network(req)
            .await
    }

    async fn create_endpoint(
        &self,
        req: CreateEndpoint,
    ) -> Result<CreateEndpointReply, PluginError> {
        self.driver("CreateEndpoint")
            .await?
            .create_endpoint(req)
            .await
    }

    async fn endpoint_oper_info(
        &self,
        req: EndpointOperInfo,
    ) -> Result<EndpointOperInfoReply, PluginError> {
        self.driver("EndpointOperInfo")
            .await?
            .endpoint_oper_info(req)
            .await
    }

    async fn delete_endpoint(&self, req: DeleteEndpoint) -> Result<(), PluginError> {
        self.driver("DeleteEndpoint")
            .await?
            .delete_endpoint(req)
            .await
    }

    async fn join(&self, req: Join) -> Result<JoinReply, PluginError> {
        self.driver("Join").await?.join(req).await
    }

    async fn leave(&self, req: Leave) -> Result<(), PluginError> {
        self.driver("Leave").await?.leave(req).await
    }

    async fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivity,
    ) -> Result<(), PluginError> {
        self.driver("ProgramExternalConnectivity")
            .await?
            .program_external_connectivity(req)
            .await
    }

    async fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivity,
    ) -> Result<(), PluginError> {
        self.driver("RevokeExternalConnectivity")
            .await?
            .revoke_external_connectivity(req)
            .await
    }

    async fn discover_new(&self, req: Discovery) -> Result<(), PluginError> {
        self.driver("DiscoverNew").await?.discover_new(req).await
    }

    async fn discover_delete(&self, req: Discovery) -> Result<(), PluginError> {
        self.driver("DiscoverDelete")
            .await?
            .discover_delete(req)
            .await
    }

    async fn allocate_network(
        &self,
        req: AllocateNetwork,
    ) -> Result<AllocateNetworkReply, PluginError> {
        self.driver("AllocateNetwork")
            .await?
            .allocate_network(req)
            .await
    }

    async fn free_network(&self, req: FreeNetwork) -> Result<(), PluginError> {
        self.driver("FreeNetwork").await?.free_network(req).await
    }
}

impl<D: NetworkDriver + IpamDriver> IpamDriver for Starting<D> {
    fn ipam_capabilities(&self) -> IpamCapabilities {
        self.ipam
    }

    fn default_address_spaces(&self) -> AddressSpaces {
        self.spaces.clone()
    }

    async fn request_pool(&self, req: RequestPool) -> Result<RequestPoolReply, PluginError> {
        self.driver("RequestPool").await?.request_pool(req).await
    }

    async fn release_pool(&self, req: ReleasePool) -> Result<(), PluginError> {
        self.driver("ReleasePool").await?.release_pool(req).await
    }

    async fn request_address(
        &self,
        req: RequestAddress,
    ) -> Result<RequestAddressReply, PluginError> {
        self.driver("RequestAddress")
            .await?
            .request_address(req)
            .await
    }

    async fn release_address(&self, req: ReleaseAddress) -> Result<(), PluginError> {
        self.driver("ReleaseAddress")
            .await?
            .release_address(req)
            .await
    }
}
