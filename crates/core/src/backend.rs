//! The control-plane side of every Docker call, in domain terms: no Docker wire types and no
//! client types (an OVSDB handle, an HTTP client) cross this boundary.
use crate::options::KuryrOptions;
use ipnet::IpNet;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a backend refused or failed; the message names the object and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Bad input from the user or Docker.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Taken: an address in use, a name that exists.
    #[error("{0}")]
    Conflict(String),
    /// A pool has no free address or subnet left.
    #[error("{0}")]
    Exhausted(String),
    /// The control plane failed or is unreachable while doing `context`.
    #[error("{context}")]
    Unavailable {
        context: String,
        #[source]
        source: BoxError,
    },
}

#[derive(Debug, Clone, Default)]
pub struct PoolRequest {
    /// `--subnet`, or none for a default pool.
    pub pool: Option<IpNet>,
    /// `--ip-range`.
    pub subpool: Option<IpNet>,
    /// With no `pool`: the length of the subnet to choose (Docker 29's `--subnet 0.0.0.0/24`);
    /// `None` takes the configured default length.
    pub prefix_len: Option<u8>,
    pub v6: bool,
    /// `--ipam-opt` options.
    pub options: KuryrOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGrant {
    pub pool_id: String,
    pub cidr: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRequest {
    pub pool_id: String,
    /// `--ip`, `--gateway`, `--aux-address`.
    pub preferred: Option<IpAddr>,
    /// The network's gateway rather than an endpoint's address.
    pub gateway: bool,
    /// Docker's MAC for the endpoint, when it sends one.
    pub mac: Option<String>,
    /// A Swarm manager's allocation (`com.docker.network.ipam.serial`): addresses in order,
    /// and an address the pool already holds is the manager's own earlier reservation.
    pub serial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    pub cidr: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub network_id: String,
    pub ipv4: Option<SubnetSpec>,
    pub ipv6: Option<SubnetSpec>,
    /// `-o` options.
    pub options: KuryrOptions,
    /// `--internal`: no way out of the network.
    pub internal: bool,
}

#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub network_id: String,
    pub endpoint_id: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    /// Docker's MAC (`--mac-address`), or none to have one chosen.
    pub mac: Option<String>,
}

/// An endpoint as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub network_id: String,
    /// The logical port the host binds (`iface-id`).
    pub port: String,
    pub mac: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub gateway_v4: Option<IpAddr>,
    pub gateway_v6: Option<IpAddr>,
    /// Routes to hand the container besides the default one (`host_routes`).
    pub routes: Vec<(IpNet, IpAddr)>,
    /// The network's MTU when the control plane knows it.
    pub mtu: Option<u32>,
    pub host: Option<String>,
    /// The VLAN tag of a container inside a VM: its port is a child of the VM's port and
    /// reaches it tagged (OVN `tag`, a Neutron trunk subport's segmentation id).
    pub vlan: Option<u16>,
}

/// What one IPAM pool holds, as the control plane says (for the metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolUsage {
    /// The pool's name where it has one (`kuryr.pool.name`, a Neutron subnet's name), else its
    /// CIDR.
    pub pool: String,
    pub cidr: IpNet,
    /// Addresses taken: endpoints, the gateway, and (Neutron) DHCP and router ports.
    pub in_use: u64,
}

impl PoolUsage {
    /// The addresses endpoints can still get: the pool's usable addresses less those in use.
    /// IPv4 leaves out the network and broadcast addresses (up to /30), IPv6 the
    /// subnet-router anycast address. A float: an IPv6 /64 holds 2^64.
    pub fn free(&self) -> f64 {
        let bits = |max: u8| f64::from(max - self.cidr.prefix_len()).exp2();
        let usable = match self.cidr {
            IpNet::V4(n) if n.prefix_len() <= 30 => bits(32) - 2.0,
            IpNet::V4(_) => bits(32),
            IpNet::V6(n) if n.prefix_len() < 128 => bits(128) - 1.0,
            IpNet::V6(_) => 1.0,
        };
        (usable - self.in_use as f64).max(0.0)
    }
}

/// One `--expose`d port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExposedPort {
    /// IP protocol number: 6 TCP, 17 UDP, 1 ICMP.
    pub protocol: u8,
    pub port: u16,
}

/// How this host carries a routed network's traffic (the OVN mode's routers): one of the
/// network's subnets goes via its router's address (of the same family) on the join network,
/// through the management port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostRoute {
    pub subnet: IpNet,
    pub via: IpAddr,
}

/// A control plane: where networks, endpoints and address pools live.
///
/// Calls for different containers arrive concurrently, and several hosts may share one
/// control plane: every method is safe to run in parallel and to retry.
pub trait Backend: Send + Sync + 'static {
    /// The backend's name in logs and errors (`ovn`, `neutron`).
    fn name(&self) -> &'static str;

    fn request_pool(
        &self,
        req: &PoolRequest,
    ) -> impl Future<Output = Result<PoolGrant, BackendError>> + Send;
    fn release_pool(&self, pool_id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// An address with the pool's prefix length.
    fn request_address(
        &self,
        req: &AddressRequest,
    ) -> impl Future<Output = Result<IpNet, BackendError>> + Send;
    fn release_address(
        &self,
        pool_id: &str,
        address: IpAddr,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    fn create_network(
        &self,
        spec: &NetworkSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Idempotent: an unknown network is success.
    fn delete_network(
        &self,
        network_id: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// A Swarm manager's AllocateNetwork (`docker network create` of a Swarm network, before
    /// any task's address is asked): what the network's addresses need cluster-wide. Nodes'
    /// CreateNetwork then find it, and their DeleteNetwork leave it to FreeNetwork. The
    /// default does nothing (the OVN mode's pools need no switch).
    fn allocate_network(
        &self,
        _spec: &NetworkSpec,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }

    /// A Swarm manager's FreeNetwork (`docker network rm` of a Swarm network, after every
    /// task and container left it): the network is gone on every node, including what
    /// nodes that crashed or left the Swarm never deleted. The default does nothing.
    fn free_network(
        &self,
        _network_id: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }

    /// Creating the same endpoint again returns it.
    fn create_endpoint(
        &self,
        spec: &EndpointSpec,
    ) -> impl Future<Output = Result<Endpoint, BackendError>> + Send;
    fn endpoint(
        &self,
        endpoint_id: &str,
    ) -> impl Future<Output = Result<Option<Endpoint>, BackendError>> + Send;
    /// Idempotent: an unknown endpoint is success.
    fn delete_endpoint(
        &self,
        endpoint_id: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Waits until the control plane reports the endpoint's port up, at most `timeout`.
    fn wait_active(
        &self,
        endpoint_id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Endpoints this host plugged, for reconciliation after a restart.
    fn local_endpoints(&self) -> impl Future<Output = Result<Vec<Endpoint>, BackendError>> + Send;

    /// `--expose`: lets other networks reach these ports of the endpoint.
    fn expose(
        &self,
        endpoint_id: &str,
        ports: &[ExposedPort],
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Takes back what `expose` opened; idempotent.
    fn unexpose(&self, endpoint_id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The routes (one per address family) this host needs for a network whose egress and
    /// published ports leave through this host; none where the control plane routes by
    /// itself (Neutron) or the network has no router.
    fn host_routes(&self, _network_id: &str) -> Vec<HostRoute> {
        Vec::new()
    }

    /// Endpoints of this host that still hold `address`. Docker releases an address after
    /// its endpoint is deleted, or after a CreateEndpoint that failed for Docker, possibly one
    /// that kuryr finished but whose answer never reached Docker (kuryr killed at that
    /// moment): an endpoint still holding the address then is such a leftover. Answered from
    /// memory (OVN: the replica; Neutron: the endpoints the process knows); the default
    /// knows none.
    fn endpoints_holding(&self, _address: IpAddr) -> Vec<String> {
        Vec::new()
    }

    /// Gives back what this host reserved for Docker and Docker will never claim nor release
    /// (an address reserved just before kuryr was killed). The daemon calls it every few
    /// seconds, so it must be cheap when there is nothing to do; the default does nothing.
    fn reclaim(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The IPAM pools kuryr manages in this control plane and how full they are (read at
    /// every metrics scrape, so it must be cheap).
    fn ipam_usage(&self) -> impl Future<Output = Result<Vec<PoolUsage>, BackendError>> + Send {
        async { Ok(Vec::new()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(cidr: &str, in_use: u64) -> f64 {
        PoolUsage {
            pool: cidr.into(),
            cidr: cidr.parse().expect("cidr"),
            in_use,
        }
        .free()
    }

    #[test]
    fn free_addresses_leave_out_what_no_endpoint_can_have() {
        // A /29 has 6 usable addresses: the gateway and one endpoint leave 4.
        assert_eq!(free("10.0.0.0/29", 2), 4.0);
        assert_eq!(free("10.0.0.0/31", 0), 2.0);
        assert_eq!(free("10.0.0.0/24", 300), 0.0);
        assert_eq!(free("fd00::/120", 1), 254.0);
        assert_eq!(free("fd00::/64", 0), 2f64.powi(64) - 1.0);
    }
}
