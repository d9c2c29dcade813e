//! The Docker driver of the OVN mode: each Docker call is a thin sequence of backend
//! (Northbound) and binding (this host) steps, undone in reverse when a later step fails.
use crate::config::{Config, Scope};
use crate::options::KuryrOptions;
use kuryr_binding::{container_ifname, Binding, PlugRequest};
use kuryr_docker::request::{
    AddressKind, CreateEndpoint, CreateNetwork, DeleteEndpoint, DeleteNetwork, EndpointOperInfo,
    Join, Leave, ProgramExternalConnectivity, ReleaseAddress, ReleasePool, RequestAddress,
    RequestPool, RevokeExternalConnectivity,
};
use kuryr_docker::{
    AddressSpaces, CreateEndpointReply, EndpointOperInfoReply, InterfaceName, IpamCapabilities,
    IpamDriver, JoinReply, MacAddr, NetworkCapabilities, NetworkDriver, PluginError,
    RequestAddressReply, RequestPoolReply,
};
use kuryr_ovn::{Attach, EndpointSpec, NetworkSpec, OvnBackend, OvnError, PoolRequest, SubnetSpec};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

pub struct OvnDriver<B: Binding> {
    pub backend: OvnBackend,
    pub binding: B,
    scope: Scope,
    address_spaces: (String, String),
    dst_prefix: String,
    mtu: u32,
    ready_timeout: Duration,
}

/// Maps a backend error to what Docker shows, keeping its message.
fn plugin_err(context: &str) -> impl FnOnce(OvnError) -> PluginError + '_ {
    move |e| match e {
        OvnError::Invalid(m) => PluginError::InvalidArgument(m),
        OvnError::NotFound(m) => PluginError::NotFound(m),
        OvnError::Conflict(m) | OvnError::Exhausted(m) => PluginError::Conflict(m),
        e @ OvnError::Db { .. } => PluginError::backend(context.to_string(), e),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl<B: Binding> OvnDriver<B> {
    pub fn new(backend: OvnBackend, binding: B, config: &Config, mtu: u32) -> OvnDriver<B> {
        OvnDriver {
            backend,
            binding,
            scope: config.capability_scope,
            address_spaces: (
                config.local_default_address_space.clone(),
                config.global_default_address_space.clone(),
            ),
            dst_prefix: config.veth_dst_prefix.clone(),
            mtu,
            ready_timeout: config.port_ready_timeout,
        }
    }

    pub fn mtu(&self) -> u32 {
        self.mtu
    }
}

fn subnet(
    pools: &[kuryr_docker::IpamPool],
    family: &str,
    pool_name: Option<&str>,
) -> Result<Option<SubnetSpec>, PluginError> {
    match pools {
        [] => Ok(None),
        [p] => Ok(Some(SubnetSpec { cidr: p.pool, gateway: p.gateway.map(|g| g.addr()), pool_name: pool_name.map(str::to_string) })),
        _ => Err(PluginError::invalid(format!(
            "kuryr networks have one {family} subnet; this request has {}: give one --subnet per address family",
            pools.len()
        ))),
    }
}

impl<B: Binding> NetworkDriver for OvnDriver<B> {
    fn network_capabilities(&self) -> NetworkCapabilities {
        let scope = match self.scope {
            Scope::Local => kuryr_docker::Scope::Local,
            Scope::Global => kuryr_docker::Scope::Global,
        };
        NetworkCapabilities {
            scope,
            connectivity_scope: None,
        }
    }

    async fn create_network(&self, req: CreateNetwork) -> Result<(), PluginError> {
        let opts =
            KuryrOptions::parse(&req.options.generic).map_err(PluginError::InvalidArgument)?;
        if opts.get("kuryr.pool.uuid").is_some() || opts.get("kuryr.pool.v6.uuid").is_some() {
            return Err(PluginError::invalid("kuryr.pool.uuid names a Neutron subnet pool; in the OVN mode name pools with kuryr.pool.name"));
        }
        let attach = match (opts.get("kuryr.net.uuid"), opts.get("kuryr.net.name")) {
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid(
                    "give kuryr.net.uuid or kuryr.net.name, not both",
                ))
            }
            (Some(u), None) => Some(Attach::ByUuid(u.parse().map_err(|_| {
                PluginError::invalid(format!("kuryr.net.uuid {u:?} is not a uuid"))
            })?)),
            (None, Some(n)) => Some(Attach::ByName(n.to_string())),
            (None, None) => None,
        };
        let spec = NetworkSpec {
            network_id: req.network_id.as_str().to_string(),
            ipv4: subnet(&req.ipv4, "IPv4", opts.pool_name(false))?,
            ipv6: subnet(&req.ipv6, "IPv6", opts.pool_name(true))?,
            attach,
        };
        let net = self
            .backend
            .create_network(&spec)
            .await
            .map_err(plugin_err("create network"))?;
        tracing::info!(network = %short(&spec.network_id), switch = %net.switch, "network ready");
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetwork) -> Result<(), PluginError> {
        self.backend
            .delete_network(req.network_id.as_str())
            .await
            .map_err(plugin_err("delete network"))
    }

    async fn create_endpoint(
        &self,
        req: CreateEndpoint,
    ) -> Result<CreateEndpointReply, PluginError> {
        let id = req.endpoint_id.as_str().to_string();
        if req.address.is_none() && req.address_ipv6.is_none() {
            return Err(PluginError::invalid(format!(
                "endpoint {}: Docker sent no address; use --ipam-driver kuryr",
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
        // 1. The logical port in Northbound.
        let ep = self
            .backend
            .create_endpoint(&spec)
            .await
            .map_err(plugin_err("create endpoint"))?;
        // 2. The host side; on failure the logical port goes again.
        let plug = PlugRequest {
            endpoint_id: id.clone(),
            iface_id: ep.port.clone(),
            mac: ep.mac.clone(),
            mtu: self.mtu,
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
        let mac: MacAddr = ep.mac.parse().map_err(|e| {
            PluginError::backend(
                format!("endpoint {}: MAC {}", short(&id), ep.mac),
                format!("{e}"),
            )
        })?;
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
        let id = req.endpoint_id.as_str();
        let ep = self.backend.endpoint(id).ok_or_else(|| {
            PluginError::not_found(format!("endpoint {} is not known", short(id)))
        })?;
        let mut value = BTreeMap::new();
        value.insert("logical_switch_port".into(), ep.port);
        value.insert("mac_address".into(), ep.mac);
        if let Some(h) = ep.host {
            value.insert("host".into(), h);
        }
        Ok(EndpointOperInfoReply { value })
    }

    async fn delete_endpoint(&self, req: DeleteEndpoint) -> Result<(), PluginError> {
        let id = req.endpoint_id.as_str();
        // 1. The host side (veth and OVS port); 2. the logical port. Both run; both are idempotent.
        let host = self.binding.unplug(id).await;
        let logical = self.backend.delete_endpoint(id).await;
        match (host, logical) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(h), Ok(())) => Err(PluginError::backend(
                format!("unplug endpoint {}", short(id)),
                h,
            )),
            (Ok(()), Err(l)) => Err(plugin_err("delete endpoint")(l)),
            (Err(h), Err(l)) => Err(PluginError::backend(
                format!("delete endpoint {}: unplug failed ({h}) and", short(id)),
                l,
            )),
        }
    }

    async fn join(&self, req: Join) -> Result<JoinReply, PluginError> {
        let id = req.endpoint_id.as_str();
        let ep = self.backend.endpoint(id).ok_or_else(|| {
            PluginError::not_found(format!(
                "endpoint {} is not known to kuryr: was it created on this host?",
                short(id)
            ))
        })?;
        // A container's first packet must not be dropped: wait until ovn-controller installed the port.
        self.binding
            .wait_ready(id, self.ready_timeout)
            .await
            .map_err(|e| PluginError::backend(format!("join endpoint {}", short(id)), e))?;
        let src_name = container_ifname(id)
            .map_err(|e| PluginError::backend(format!("join endpoint {}", short(id)), e))?;
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
            static_routes: Vec::new(),
            disable_gateway_service: true,
        })
    }

    async fn leave(&self, _req: Leave) -> Result<(), PluginError> {
        // Docker moves the interface back after Leave; the veth goes in DeleteEndpoint.
        Ok(())
    }

    async fn program_external_connectivity(
        &self,
        _req: ProgramExternalConnectivity,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    async fn revoke_external_connectivity(
        &self,
        _req: RevokeExternalConnectivity,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

impl<B: Binding> IpamDriver for OvnDriver<B> {
    fn ipam_capabilities(&self) -> IpamCapabilities {
        // No replay: allocations live in Northbound and survive a Docker restart as they are.
        IpamCapabilities {
            requires_mac_address: false,
            requires_request_replay: false,
        }
    }

    fn default_address_spaces(&self) -> AddressSpaces {
        AddressSpaces {
            local: self.address_spaces.0.clone(),
            global: self.address_spaces.1.clone(),
        }
    }

    async fn request_pool(&self, req: RequestPool) -> Result<RequestPoolReply, PluginError> {
        let opts = KuryrOptions::parse(&req.options).map_err(PluginError::InvalidArgument)?;
        if opts.get("kuryr.pool.uuid").is_some() || opts.get("kuryr.pool.v6.uuid").is_some() {
            return Err(PluginError::invalid("kuryr.pool.uuid names a Neutron subnet pool; in the OVN mode name pools with kuryr.pool.name"));
        }
        let grant = self
            .backend
            .request_pool(&PoolRequest {
                pool: req.pool,
                subpool: req.sub_pool,
                v6: req.v6,
                name: opts.pool_name(req.v6).map(str::to_string),
            })
            .map_err(plugin_err("request pool"))?;
        Ok(RequestPoolReply::new(grant.pool_id, grant.cidr))
    }

    async fn release_pool(&self, req: ReleasePool) -> Result<(), PluginError> {
        self.backend
            .release_pool(&req.pool_id)
            .await
            .map_err(plugin_err("release pool"))
    }

    async fn request_address(
        &self,
        req: RequestAddress,
    ) -> Result<RequestAddressReply, PluginError> {
        let gateway = req.kind == AddressKind::Gateway;
        let ip = self
            .backend
            .request_address(&req.pool_id, req.address, gateway)
            .await
            .map_err(plugin_err("request address"))?;
        Ok(RequestAddressReply::new(ip))
    }

    async fn release_address(&self, req: ReleaseAddress) -> Result<(), PluginError> {
        self.backend
            .release_address(&req.pool_id, req.address)
            .await
            .map_err(plugin_err("release address"))
    }
}
