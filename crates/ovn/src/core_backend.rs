//! The OVN backend behind kuryr's [`Backend`] trait: kuryr's options become the OVN-specific
//! requests (`kuryr.net.name` attaches to a switch, `kuryr.pool.name` names the Address_Set).
use crate::backend::{Attach, OvnBackend, PoolRequest as OvnPool, SubnetSpec as OvnSubnet};
use crate::error::OvnError;
use crate::NetworkSpec as OvnNetwork;
use crate::RouterChoice;
use ipnet::IpNet;
use kuryr_core::{
    AddressRequest, Backend, BackendError, Endpoint, EndpointSpec, ExposedPort, HostRoute,
    KuryrOptions, NetworkSpec, PoolGrant, PoolRequest, PoolUsage,
};
use std::net::IpAddr;
use std::time::Duration;

impl From<OvnError> for BackendError {
    fn from(e: OvnError) -> BackendError {
        match e {
            OvnError::Invalid(m) => BackendError::Invalid(m),
            OvnError::NotFound(m) => BackendError::NotFound(m),
            OvnError::Conflict(m) => BackendError::Conflict(m),
            OvnError::Exhausted(m) => BackendError::Exhausted(m),
            OvnError::Db { context, source } => BackendError::Unavailable { context, source },
        }
    }
}

fn no_pool_uuid(options: &KuryrOptions) -> Result<(), BackendError> {
    if options.get("kuryr.pool.uuid").is_some() || options.get("kuryr.pool.v6.uuid").is_some() {
        return Err(BackendError::Invalid(
            "kuryr.pool.uuid names a Neutron subnet pool; in the OVN mode name pools with kuryr.pool.name".into(),
        ));
    }
    Ok(())
}

fn attach(options: &KuryrOptions) -> Result<Option<Attach>, BackendError> {
    match (options.get("kuryr.net.uuid"), options.get("kuryr.net.name")) {
        (Some(_), Some(_)) => Err(BackendError::Invalid(
            "give kuryr.net.uuid or kuryr.net.name, not both".into(),
        )),
        (Some(u), None) => u
            .parse()
            .map(|u| Some(Attach::ByUuid(u)))
            .map_err(|_| BackendError::Invalid(format!("kuryr.net.uuid {u:?} is not a uuid"))),
        (None, Some(n)) => Ok(Some(Attach::ByName(n.to_string()))),
        (None, None) => Ok(None),
    }
}

fn endpoint(e: crate::Endpoint) -> Endpoint {
    Endpoint {
        endpoint_id: e.endpoint_id,
        network_id: e.network_id,
        port: e.port,
        mac: e.mac,
        ipv4: e.ipv4,
        ipv6: e.ipv6,
        gateway_v4: e.gateway_v4,
        gateway_v6: e.gateway_v6,
        routes: Vec::new(),
        mtu: None,
        host: e.host,
        vlan: e.vlan,
    }
}

impl Backend for OvnBackend {
    fn name(&self) -> &'static str {
        "ovn"
    }

    async fn request_pool(&self, req: &PoolRequest) -> Result<PoolGrant, BackendError> {
        no_pool_uuid(&req.options)?;
        let grant = OvnBackend::request_pool(
            self,
            &OvnPool {
                pool: req.pool,
                subpool: req.subpool,
                prefix_len: req.prefix_len,
                v6: req.v6,
                name: req.options.pool_name(req.v6).map(str::to_string),
            },
        )?;
        Ok(PoolGrant {
            pool_id: grant.pool_id,
            cidr: grant.cidr,
        })
    }

    async fn release_pool(&self, pool_id: &str) -> Result<(), BackendError> {
        Ok(OvnBackend::release_pool(self, pool_id).await?)
    }

    async fn request_address(&self, req: &AddressRequest) -> Result<IpNet, BackendError> {
        Ok(
            OvnBackend::request_address(self, &req.pool_id, req.preferred, req.gateway, req.serial)
                .await?,
        )
    }

    async fn release_address(&self, pool_id: &str, address: IpAddr) -> Result<(), BackendError> {
        Ok(OvnBackend::release_address(self, pool_id, address).await?)
    }

    async fn reclaim(&self) {
        OvnBackend::reclaim(self).await
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), BackendError> {
        no_pool_uuid(&spec.options)?;
        let subnet = |s: &Option<kuryr_core::SubnetSpec>, v6: bool| {
            s.as_ref().map(|s| OvnSubnet {
                cidr: s.cidr,
                gateway: s.gateway,
                pool_name: spec.options.pool_name(v6).map(str::to_string),
            })
        };
        let net = OvnNetwork {
            network_id: spec.network_id.clone(),
            ipv4: subnet(&spec.ipv4, false),
            ipv6: subnet(&spec.ipv6, true),
            attach: attach(&spec.options)?,
            router: RouterChoice::from_option(spec.options.get("kuryr.router"), spec.internal)?,
        };
        let created = OvnBackend::create_network(self, &net).await?;
        tracing::info!(network = %&spec.network_id[..spec.network_id.len().min(12)], switch = %created.switch, "network ready");
        Ok(())
    }

    async fn delete_network(&self, network_id: &str) -> Result<(), BackendError> {
        Ok(OvnBackend::delete_network(self, network_id).await?)
    }

    async fn free_network(&self, network_id: &str) -> Result<(), BackendError> {
        Ok(OvnBackend::free_network(self, network_id).await?)
    }

    async fn create_endpoint(&self, spec: &EndpointSpec) -> Result<Endpoint, BackendError> {
        let ep = OvnBackend::create_endpoint(self, spec).await?;
        Ok(endpoint(ep))
    }

    async fn endpoint(&self, endpoint_id: &str) -> Result<Option<Endpoint>, BackendError> {
        Ok(OvnBackend::endpoint(self, endpoint_id).map(endpoint))
    }

    async fn delete_endpoint(&self, endpoint_id: &str) -> Result<(), BackendError> {
        Ok(OvnBackend::delete_endpoint(self, endpoint_id).await?)
    }

    async fn wait_active(&self, endpoint_id: &str, timeout: Duration) -> Result<(), BackendError> {
        // On a host the binding waits for ovn-controller's `ovn-installed`, which is what
        // matters for a first packet. Inside a VM no ovn-controller runs: Northbound's `up`
        // says the hypervisor has the port.
        if self.settings().parent_port.is_some() {
            self.wait_nested_up(endpoint_id, timeout).await?;
        }
        Ok(())
    }

    async fn local_endpoints(&self) -> Result<Vec<Endpoint>, BackendError> {
        Ok(OvnBackend::local_endpoints(self)
            .into_iter()
            .map(endpoint)
            .collect())
    }

    fn endpoints_holding(&self, address: std::net::IpAddr) -> Vec<String> {
        OvnBackend::endpoints_holding(self, address)
    }

    async fn expose(&self, endpoint_id: &str, ports: &[ExposedPort]) -> Result<(), BackendError> {
        Ok(OvnBackend::expose_ports(self, endpoint_id, ports).await?)
    }

    async fn unexpose(&self, endpoint_id: &str) -> Result<(), BackendError> {
        Ok(OvnBackend::unexpose_ports(self, endpoint_id).await?)
    }

    fn host_routes(&self, network_id: &str) -> Vec<HostRoute> {
        self.host_routes_of(network_id)
    }

    async fn ipam_usage(&self) -> Result<Vec<PoolUsage>, BackendError> {
        Ok(self.pool_usage())
    }
}
