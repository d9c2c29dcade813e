//! The Docker driver: each Docker call is a thin sequence of control-plane steps (a
//! [`Backend`]) and host steps (a [`Binding`]), undone in reverse when a later step fails.
use crate::config::{Config, Scope};
use crate::gateway::{GatewayError, HostGateway};
use kuryr_binding::{container_ifname, Binding, PlugRequest};
use kuryr_core::{
    AddressRequest, Backend, BackendError, EndpointSpec, ExposedPort, KuryrOptions, NetworkSpec,
    PoolRequest, SubnetSpec,
};
use kuryr_docker::request::{
    AddressKind, AllocateNetwork, CreateEndpoint, CreateNetwork, DeleteEndpoint, DeleteNetwork,
    EndpointOperInfo, FreeNetwork, Join, Leave, ProgramExternalConnectivity, ReleaseAddress,
    ReleasePool, RequestAddress, RequestPool, RevokeExternalConnectivity,
};
use kuryr_docker::{
    AddressSpaces, AllocateNetworkReply, CreateEndpointReply, EndpointOperInfoReply, InterfaceName,
    IpamCapabilities, IpamDriver, JoinReply, MacAddr, NetworkCapabilities, NetworkDriver, NextHop,
    PluginError, RequestAddressReply, RequestPoolReply, StaticRoute,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct Driver<Bk: Backend, Bd: Binding> {
    pub backend: Bk,
    pub binding: Bd,
    scope: Scope,
    connectivity_scope: Option<Scope>,
    address_spaces: (String, String),
    dst_prefix: String,
    /// The containers' MTU when the backend does not know the network's.
    mtu: u32,
    ready_timeout: Duration,
    /// `[DEFAULT] process_external_connectivity`: whether `--expose` and `-p` open ports.
    external_connectivity: bool,
    /// The host side of routed networks (OVN mode with the OVS binding), if any.
    gateway: Option<Arc<HostGateway>>,
    /// Interface names endpoints asked for (`com.docker.network.endpoint.ifname`), from
    /// CreateEndpoint until DeleteEndpoint, handed to Docker at Join as `DstName`.
    ifnames: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

fn gateway_err(context: String) -> impl FnOnce(GatewayError) -> PluginError {
    move |e| match e {
        GatewayError::Conflict(m) => PluginError::Conflict(m),
        GatewayError::Invalid(m) => PluginError::InvalidArgument(m),
        GatewayError::Host(m) => PluginError::backend(context, m),
    }
}

/// Maps a backend error to what Docker shows, keeping its message.
fn plugin_err(e: BackendError) -> PluginError {
    match e {
        BackendError::Invalid(m) => PluginError::InvalidArgument(m),
        BackendError::NotFound(m) => PluginError::NotFound(m),
        BackendError::Conflict(m) | BackendError::Exhausted(m) => PluginError::Conflict(m),
        BackendError::Unavailable { context, source } => PluginError::Backend { context, source },
    }
}

/// What GetCapabilities reports for `[DEFAULT] capability_scope` and `connectivity_scope`.
pub fn network_capabilities(scope: Scope, connectivity: Option<Scope>) -> NetworkCapabilities {
    let docker = |s: Scope| match s {
        Scope::Local => kuryr_docker::Scope::Local,
        Scope::Global => kuryr_docker::Scope::Global,
    };
    NetworkCapabilities {
        scope: docker(scope),
        connectivity_scope: connectivity.map(docker),
    }
}

/// No replay: allocations live in the control plane and survive a Docker restart as they
/// are. A MAC is not needed to choose an address.
pub const IPAM_CAPABILITIES: IpamCapabilities = IpamCapabilities {
    requires_mac_address: false,
    requires_request_replay: false,
};

fn short(id: &str) -> &str {
    id.get(..id.len().min(12)).unwrap_or(id)
}

fn subnet(
    pools: &[kuryr_docker::IpamPool],
    family: &str,
) -> Result<Option<SubnetSpec>, PluginError> {
    match pools {
        [] => Ok(None),
        [p] => Ok(Some(SubnetSpec { cidr: p.pool, gateway: p.gateway.map(|g| g.addr()) })),
        _ => Err(PluginError::invalid(format!(
            "kuryr networks have one {family} subnet; this request has {}: give one --subnet per address family",
            pools.len()
        ))),
    }
}

impl<Bk: Backend, Bd: Binding> Driver<Bk, Bd> {
    pub fn new(backend: Bk, binding: Bd, config: &Config, mtu: u32) -> Driver<Bk, Bd> {
        Driver {
            backend,
            binding,
            scope: config.capability_scope,
            connectivity_scope: config.connectivity_scope,
            address_spaces: (
                config.local_default_address_space.clone(),
                config.global_default_address_space.clone(),
            ),
            dst_prefix: config.veth_dst_prefix.clone(),
            mtu,
            ready_timeout: config.port_ready_timeout,
            external_connectivity: config.neutron.process_external_connectivity,
            gateway: None,
            ifnames: Default::default(),
        }
    }

    fn ifnames_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.ifnames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host gateway of routed networks, if this host has one.
    pub fn host_gateway(&self) -> Option<Arc<HostGateway>> {
        self.gateway.clone()
    }

    /// Routed networks get their host side (routes, NAT, published ports) from `gateway`.
    pub fn with_gateway(mut self, gateway: HostGateway) -> Self {
        self.gateway = Some(Arc::new(gateway));
        self
    }

    /// Routes and source-NATs every routed network with an endpoint here (after a restart or
    /// a reboot), and removes ports published for endpoints that are gone (a kill -9 between
    /// a container's stop and its DeleteEndpoint); what fails is logged and the rest goes on.
    pub async fn restore_routes(&self) -> usize {
        let Some(g) = &self.gateway else { return 0 };
        match g.published_endpoints().await {
            Ok(eps) => {
                for ep in eps {
                    if matches!(self.backend.endpoint(&ep).await, Ok(None)) {
                        match g.unpublish(&ep).await {
                            Ok(n) => {
                                tracing::info!(endpoint = %short(&ep), rules = n, "removed ports published for an endpoint that is gone")
                            }
                            Err(e) => {
                                tracing::warn!(endpoint = %short(&ep), error = %e, "could not remove stale published ports")
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the published ports"),
        }
        let mut n = 0;
        for r in crate::gateway::routes_in_use(&self.backend, &self.binding).await {
            match g.ensure_route(r).await {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::error!(subnet = %r.subnet, error = %e, "could not route a network on this host")
                }
            }
        }
        n
    }

    /// A binding whose devices live in their containers (macvlan) sees those Docker gave back
    /// after a DeleteEndpoint that reached no kuryr (one killed and not yet back): at each
    /// ReleaseAddress and DeleteNetwork, devices here whose endpoint is gone are removed.
    async fn sweep_orphans(&self) {
        let Ok(plugged) = self.binding.list().await else {
            return;
        };
        for p in plugged {
            if matches!(self.backend.endpoint(&p.endpoint_id).await, Ok(None)) {
                match self.binding.unplug(&p.endpoint_id).await {
                    Ok(()) => {
                        tracing::info!(endpoint = %short(&p.endpoint_id), ifname = %p.host_ifname, "removed the device of an endpoint that is gone")
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %short(&p.endpoint_id), error = %e, "could not remove the device of an endpoint that is gone")
                    }
                }
            }
        }
    }

    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    async fn known_endpoint(&self, id: &str) -> Result<kuryr_core::Endpoint, PluginError> {
        self.backend
            .endpoint(id)
            .await
            .map_err(plugin_err)?
            .ok_or_else(|| {
                PluginError::not_found(format!(
                    "endpoint {} is not known to kuryr: was it created on this host?",
                    short(id)
                ))
            })
    }
}

impl<Bk: Backend, Bd: Binding> NetworkDriver for Driver<Bk, Bd> {
    fn network_capabilities(&self) -> NetworkCapabilities {
        network_capabilities(self.scope, self.connectivity_scope)
    }

    async fn create_network(&self, req: CreateNetwork) -> Result<(), PluginError> {
        let spec = NetworkSpec {
            network_id: req.network_id.as_str().to_string(),
            ipv4: subnet(&req.ipv4, "IPv4")?,
            ipv6: subnet(&req.ipv6, "IPv6")?,
            options: KuryrOptions::parse(&req.options.generic)
                .map_err(PluginError::InvalidArgument)?,
            internal: req.options.internal,
        };
        self.backend.create_network(&spec).await.map_err(plugin_err)
    }

    async fn allocate_network(
        &self,
        req: AllocateNetwork,
    ) -> Result<AllocateNetworkReply, PluginError> {
        let spec = NetworkSpec {
            network_id: req.network_id.as_str().to_string(),
            ipv4: subnet(&req.ipv4, "IPv4")?,
            ipv6: subnet(&req.ipv6, "IPv6")?,
            options: KuryrOptions::parse(&req.options).map_err(PluginError::InvalidArgument)?,
            internal: false,
        };
        self.backend
            .allocate_network(&spec)
            .await
            .map_err(plugin_err)?;
        // The workers get the options as they came.
        Ok(AllocateNetworkReply {
            options: req.options,
        })
    }

    async fn free_network(&self, req: FreeNetwork) -> Result<(), PluginError> {
        self.backend
            .free_network(req.network_id.as_str())
            .await
            .map_err(plugin_err)
    }

    async fn delete_network(&self, req: DeleteNetwork) -> Result<(), PluginError> {
        let id = req.network_id.as_str();
        let routes = self.backend.host_routes(id);
        self.backend.delete_network(id).await.map_err(plugin_err)?;
        if !self.binding.sees_running_endpoints() {
            self.sweep_orphans().await;
        }
        if let Some(g) = &self.gateway {
            // Another Docker network of this host on the same logical network keeps them.
            let kept = crate::gateway::routes_in_use(&self.backend, &self.binding).await;
            for r in routes.into_iter().filter(|r| !kept.contains(r)) {
                if let Err(e) = g.remove_route(r).await {
                    tracing::warn!(network = %short(id), subnet = %r.subnet, error = %e, "could not remove the network's host route and NAT rule");
                }
            }
        }
        Ok(())
    }

    async fn create_endpoint(
        &self,
        req: CreateEndpoint,
    ) -> Result<CreateEndpointReply, PluginError> {
        let id = req.endpoint_id.as_str().to_string();
        if req.address.is_none() && req.address_ipv6.is_none() {
            return Err(PluginError::invalid(format!(
                "endpoint {}: Docker sent no address; use --ipam-driver with this driver",
                short(&id)
            )));
        }
        let spec = EndpointSpec {
            network_id: req.network_id.as_str().to_string(),
            endpoint_id: id.clone(),
            ipv4: req.address,
            ipv6: req.address_ipv6,
            mac: req.requested_mac().map(|m| m.to_string()),
        };
        // 1. The logical port in the control plane.
        let ep = self
            .backend
            .create_endpoint(&spec)
            .await
            .map_err(plugin_err)?;
        // 2. The host side; on failure the logical port goes again.
        let plug = PlugRequest {
            endpoint_id: id.clone(),
            iface_id: ep.port.clone(),
            mac: ep.mac.clone(),
            mtu: ep.mtu.unwrap_or(self.mtu),
            vlan: ep.vlan,
        };
        if let Err(e) = self.binding.plug(&plug).await {
            if let Err(undo) = self.backend.delete_endpoint(&id).await {
                tracing::error!(endpoint = %short(&id), error = %undo, "could not remove the logical port after a failed plug");
            }
            return Err(PluginError::backend(
                format!("plug endpoint {} into the integration bridge", short(&id)),
                e,
            ));
        }
        // 3. Routed networks: the host's route and source NAT (once per network).
        if let Some(g) = &self.gateway {
            let mut failed = None;
            for route in self.backend.host_routes(&spec.network_id) {
                if let Err(e) = g.ensure_route(route).await {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(e) = failed {
                if let Err(undo) = self.binding.unplug(&id).await {
                    tracing::error!(endpoint = %short(&id), error = %undo, "could not unplug after a failed route");
                }
                if let Err(undo) = self.backend.delete_endpoint(&id).await {
                    tracing::error!(endpoint = %short(&id), error = %undo, "could not remove the logical port after a failed route");
                }
                return Err(gateway_err(format!(
                    "route network {} on this host",
                    short(&spec.network_id)
                ))(e));
            }
        }
        let mac: MacAddr = ep.mac.parse().map_err(|e| {
            PluginError::backend(
                format!("endpoint {}: MAC {}", short(&id), ep.mac),
                format!("{e}"),
            )
        })?;
        if let Some(name) = &req.options.ifname {
            self.ifnames_lock().insert(id.clone(), name.clone());
        }
        Ok(CreateEndpointReply {
            address: None,
            address_ipv6: None,
            mac_address: Some(mac),
        }
        .without_echoes(&req))
    }

    async fn endpoint_oper_info(
        &self,
        req: EndpointOperInfo,
    ) -> Result<EndpointOperInfoReply, PluginError> {
        let ep = self.known_endpoint(req.endpoint_id.as_str()).await?;
        let mut value = BTreeMap::new();
        value.insert("logical_port".into(), ep.port);
        value.insert("mac_address".into(), ep.mac);
        if let Some(h) = ep.host {
            value.insert("host".into(), h);
        }
        Ok(EndpointOperInfoReply { value })
    }

    async fn delete_endpoint(&self, req: DeleteEndpoint) -> Result<(), PluginError> {
        let id = req.endpoint_id.as_str();
        self.ifnames_lock().remove(id);
        // 1. The host side (published ports, veth and OVS port); 2. the logical port. All run;
        // all are idempotent.
        if let Some(g) = &self.gateway {
            if let Err(e) = g.unpublish(id).await {
                tracing::warn!(endpoint = %short(id), error = %e, "could not remove published ports");
            }
        }
        let host = self.binding.unplug(id).await;
        let logical = self.backend.delete_endpoint(id).await;
        match (host, logical) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(h), Ok(())) => Err(PluginError::backend(
                format!("unplug endpoint {}", short(id)),
                h,
            )),
            (Ok(()), Err(l)) => Err(plugin_err(l)),
            (Err(h), Err(l)) => Err(PluginError::backend(
                format!("delete endpoint {}: unplug failed ({h}) and", short(id)),
                l,
            )),
        }
    }

    async fn join(&self, req: Join) -> Result<JoinReply, PluginError> {
        let id = req.endpoint_id.as_str();
        let ep = self.known_endpoint(id).await?;
        let ctx = || format!("join endpoint {}", short(id));
        // A container's first packet must not be dropped: wait until the host and the
        // control plane both have the port up.
        let waiting = std::time::Instant::now();
        let waited = async {
            self.binding
                .wait_ready(id, self.ready_timeout)
                .await
                .map_err(|e| PluginError::backend(ctx(), e))?;
            self.backend
                .wait_active(id, self.ready_timeout)
                .await
                .map_err(plugin_err)
        }
        .await;
        let elapsed = waiting.elapsed();
        let result = match &waited {
            Ok(()) => "up",
            Err(_) if elapsed >= self.ready_timeout => "timeout",
            Err(_) => "error",
        };
        kuryr_metrics::port_wait(result, elapsed);
        waited?;
        let src_name = container_ifname(id).map_err(|e| PluginError::backend(ctx(), e))?;
        let v4 = |ip: Option<IpAddr>| match ip {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let v6 = |ip: Option<IpAddr>| match ip {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        Ok(JoinReply {
            interface_name: Some(InterfaceName {
                src_name,
                dst_prefix: self.dst_prefix.clone(),
                dst_name: self.ifnames_lock().get(id).cloned(),
            }),
            gateway: if ep.ipv4.is_some() {
                v4(ep.gateway_v4)
            } else {
                None
            },
            gateway_ipv6: if ep.ipv6.is_some() {
                v6(ep.gateway_v6)
            } else {
                None
            },
            static_routes: ep
                .routes
                .iter()
                .map(|(dst, via)| StaticRoute {
                    destination: *dst,
                    next_hop: NextHop::Via(*via),
                })
                .collect(),
            disable_gateway_service: true,
        })
    }

    async fn leave(&self, _req: Leave) -> Result<(), PluginError> {
        // Docker moves the interface back after Leave; the veth goes in DeleteEndpoint.
        Ok(())
    }

    async fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivity,
    ) -> Result<(), PluginError> {
        if !self.external_connectivity {
            // kuryr.conf turned it off: exposed ports stay closed, as the operator asked.
            return Ok(());
        }
        let id = req.endpoint_id.as_str();
        // A published container port is open to everyone, as an exposed one is.
        let mut ports: Vec<ExposedPort> = req
            .options
            .exposed_ports
            .iter()
            .map(|p| ExposedPort {
                protocol: p.proto.number(),
                port: p.port,
            })
            .chain(req.options.port_map.iter().map(|b| ExposedPort {
                protocol: b.proto.number(),
                port: b.port,
            }))
            .collect();
        ports.sort();
        ports.dedup();
        let port_map = &req.options.port_map;
        let mut published = false;
        if !port_map.is_empty() {
            match &self.gateway {
                None => {
                    tracing::warn!(endpoint = %short(id), "published ports (-p) are not supported by kuryr in this mode (the OVN mode publishes them); ignored");
                }
                Some(g) => {
                    if self.backend.host_routes(req.network_id.as_str()).is_empty() {
                        return Err(PluginError::invalid(format!(
                            "endpoint {}: -p needs a network with a router; this one is --internal or has -o kuryr.router=none",
                            short(id)
                        )));
                    }
                    let ep = self.known_endpoint(id).await?;
                    let Some(IpAddr::V4(ip)) = ep.ipv4.map(|n| n.addr()) else {
                        return Err(PluginError::invalid(format!(
                            "endpoint {}: -p needs an IPv4 address on the network",
                            short(id)
                        )));
                    };
                    let done = g
                        .publish(id, ip, port_map)
                        .await
                        .map_err(gateway_err(format!(
                            "publish ports of endpoint {}",
                            short(id)
                        )))?;
                    published = true;
                    tracing::info!(endpoint = %short(id), ports = done.len(), "published");
                }
            }
        }
        if ports.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.backend.expose(id, &ports).await {
            if let (true, Some(g)) = (published, &self.gateway) {
                if let Err(undo) = g.unpublish(id).await {
                    tracing::error!(endpoint = %short(id), error = %undo, "could not remove published ports after a failure");
                }
            }
            return Err(plugin_err(e));
        }
        Ok(())
    }

    async fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivity,
    ) -> Result<(), PluginError> {
        if !self.external_connectivity {
            return Ok(());
        }
        let id = req.endpoint_id.as_str();
        if let Some(g) = &self.gateway {
            g.unpublish(id).await.map_err(gateway_err(format!(
                "remove published ports of endpoint {}",
                short(id)
            )))?;
        }
        self.backend.unexpose(id).await.map_err(plugin_err)
    }
}

impl<Bk: Backend, Bd: Binding> IpamDriver for Driver<Bk, Bd> {
    fn ipam_capabilities(&self) -> IpamCapabilities {
        IPAM_CAPABILITIES
    }

    fn default_address_spaces(&self) -> AddressSpaces {
        AddressSpaces {
            local: self.address_spaces.0.clone(),
            global: self.address_spaces.1.clone(),
        }
    }

    async fn request_pool(&self, req: RequestPool) -> Result<RequestPoolReply, PluginError> {
        let options = KuryrOptions::parse(&req.options).map_err(PluginError::InvalidArgument)?;
        let grant = self
            .backend
            .request_pool(&PoolRequest {
                pool: req.pool,
                subpool: req.sub_pool,
                prefix_len: req.prefix_len,
                v6: req.v6,
                options,
            })
            .await
            .map_err(plugin_err)?;
        Ok(RequestPoolReply::new(grant.pool_id, grant.cidr))
    }

    async fn release_pool(&self, req: ReleasePool) -> Result<(), PluginError> {
        self.backend
            .release_pool(&req.pool_id)
            .await
            .map_err(plugin_err)
    }

    async fn request_address(
        &self,
        req: RequestAddress,
    ) -> Result<RequestAddressReply, PluginError> {
        let r = AddressRequest {
            pool_id: req.pool_id,
            preferred: req.address,
            gateway: req.kind == AddressKind::Gateway,
            mac: req.mac_address.map(|m| m.to_string()),
            serial: req.serial,
        };
        let ip = self.backend.request_address(&r).await.map_err(plugin_err)?;
        Ok(RequestAddressReply::new(ip))
    }

    async fn release_address(&self, req: ReleaseAddress) -> Result<(), PluginError> {
        for id in self.backend.endpoints_holding(req.address) {
            // Docker gave up on this endpoint without deleting it (see endpoints_holding).
            tracing::info!(endpoint = %short(&id), address = %req.address, "removing an endpoint whose address Docker released: its creation never reached Docker");
            if let Err(e) = self.binding.unplug(&id).await {
                tracing::warn!(endpoint = %short(&id), error = %e, "could not unplug the endpoint");
            }
            if let Err(e) = self.backend.delete_endpoint(&id).await {
                tracing::warn!(endpoint = %short(&id), error = %e, "could not delete the endpoint");
            }
        }
        self.backend
            .release_address(&req.pool_id, req.address)
            .await
            .map_err(plugin_err)?;
        if !self.binding.sees_running_endpoints() {
            self.sweep_orphans().await;
        }
        Ok(())
    }
}
