//! kuryr's [`Backend`] over Neutron, with kuryr-libnetwork's names and tags (see [`crate::names`]).
//!
//! Neutron is the IPAM: a Docker pool is a subnet pool, an address is a port
//! (`kuryr-unbound-port`, `compute:kuryr`) created in RequestAddress and bound to this host in
//! CreateEndpoint (named `<endpoint id>-port` and tagged `compute:kuryr` there, as
//! kuryr-libnetwork finds and releases ports). What never changes (a network's id and MTU, a
//! subnet's CIDR and gateway, the port an address belongs to) is cached so that a container
//! start and stop costs a handful of Neutron calls; every read-modify-write of a port carries
//! `If-Match` on its revision.
use crate::client::NeutronClient;
use crate::error::NeutronError;
use crate::macvlan::VmPort;
use crate::names::{self, DEVICE_OWNER, POOL_EXISTING, PORT_EXISTING};
use crate::pool::{PoolSettings, Pools, Scope};
use crate::trunk::Trunk;
use crate::types::{Network, Port, Subnet, SubnetPool};
use ipnet::IpNet;
use kuryr_core::{
    AddressRequest, Backend, BackendError, Endpoint, EndpointSpec, ExposedPort, KuryrOptions,
    NetworkSpec, PoolGrant, PoolRequest,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod addresses;
mod creates;
mod releases;
mod swarm;
mod unclaimed;

pub use creates::SETTLE as CREATE_SETTLE;

/// What the Neutron backend needs besides the client (kuryr.conf's `[neutron]` and `[DEFAULT]`).
#[derive(Debug, Clone)]
pub struct NeutronSettings {
    /// `binding:host_id` of the ports this host binds.
    pub host: String,
    /// `subnetpool_name_prefix` (`kuryrPool`).
    pub pool_prefix: String,
    pub enable_dhcp: bool,
    /// Subnet pools used when Docker gives no `--subnet`.
    pub default_pool_v4: String,
    pub default_pool_v6: String,
    /// How long Join waits for the port to be ACTIVE; zero: not at all.
    pub vif_plugging_timeout: Duration,
    /// Whether a port that does not become ACTIVE in time fails the Join.
    pub vif_plugging_is_fatal: bool,
}

impl NeutronSettings {
    pub fn new(host: &str) -> NeutronSettings {
        NeutronSettings {
            host: host.to_string(),
            pool_prefix: names::DEFAULT_POOL_PREFIX.into(),
            enable_dhcp: true,
            default_pool_v4: "kuryr".into(),
            default_pool_v6: "kuryr6".into(),
            vif_plugging_timeout: Duration::ZERO,
            vif_plugging_is_fatal: false,
        }
    }
}

#[derive(Default)]
struct Cache {
    /// Docker network id -> Neutron network.
    networks: HashMap<String, Network>,
    /// Subnet pool id -> the CIDR Docker asked for.
    pool_cidrs: HashMap<String, IpNet>,
    /// Subnet pool id -> its subnet (the one kuryr uses for that pool).
    pool_subnets: HashMap<String, Subnet>,
    subnets: HashMap<String, Subnet>,
    /// Address -> the port holding it, from RequestAddress until ReleaseAddress.
    ports_by_ip: HashMap<IpAddr, Port>,
    /// Endpoint id -> its (bound) port.
    endpoints: HashMap<String, Port>,
    /// Subnet id -> the pool ids kuryr tagged it with (subnets kuryr did not create).
    pool_tags: HashMap<String, Vec<String>>,
    /// Endpoints this process bound, and those of them it gave an exposed-ports group: for
    /// the others RevokeExternalConnectivity has nothing to look up.
    bound_here: HashSet<String>,
    exposed: HashSet<String>,
    /// Endpoints of Swarm networks whose DeleteEndpoint ran here: their ReleaseAddress
    /// deletes the port (see [`swarm`]).
    released_endpoints: HashSet<String>,
}

pub struct NeutronBackend {
    client: Arc<NeutronClient>,
    settings: NeutronSettings,
    cache: Mutex<Cache>,
    /// Inside a VM: the VM's trunk, whose subports the containers' ports are.
    trunk: Option<Arc<Trunk>>,
    /// Inside a VM with the macvlan driver: the VM's port, which carries the containers'
    /// addresses as allowed address pairs.
    macvlan: Option<VmPort>,
    /// `[vif_pool]`: ports made ahead of time on this host (see [`crate::pool`]).
    pools: Option<Arc<Pools>>,
    /// Network creates that may have left a network Docker does not know (see [`creates`]).
    creates: creates::Creates,
    /// ReleaseAddress calls Neutron missed, sent again (see [`releases`]).
    releases: releases::Releases,
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Neutron's refusal or failure, as a backend error that says what was being done.
pub(crate) fn fail(context: impl Into<String>, e: NeutronError) -> BackendError {
    let context = context.into();
    match e.status() {
        Some(404) => BackendError::NotFound(format!("{context}: {e}")),
        Some(409)
            if e.to_string().contains("IpAddressGenerationFailure")
                || e.to_string().contains("No more IP addresses") =>
        {
            BackendError::Exhausted(format!("{context}: {e}"))
        }
        Some(409) => BackendError::Conflict(format!("{context}: {e}")),
        Some(400) => BackendError::Invalid(format!("{context}: {e}")),
        _ => BackendError::Unavailable {
            context,
            source: Box::new(e),
        },
    }
}

/// Two endpoints for one port: Docker was handed an address again while a container still
/// held it (a pool port taken just before a restart, then handed out again).
fn taken_by_another(port: &Port, eid: &str) -> BackendError {
    BackendError::Conflict(format!(
        "port {} holding {} belongs to endpoint {}, not {}: start the container again to get another address",
        port.id,
        port.fixed_ips
            .iter()
            .map(|f| f.ip_address.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        short(&port.device_id),
        short(eid)
    ))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn with_prefix(ip: IpAddr, cidr: &str) -> Result<IpNet, BackendError> {
    let net: IpNet = cidr.parse().map_err(|_| {
        BackendError::Invalid(format!("Neutron subnet CIDR {cidr:?} is not a CIDR"))
    })?;
    IpNet::new(ip, net.prefix_len())
        .map_err(|e| BackendError::Invalid(format!("address {ip} with the prefix of {cidr}: {e}")))
}

fn pool_keys(v6: bool) -> (&'static str, &'static str) {
    if v6 {
        ("kuryr.pool.v6.uuid", "kuryr.pool.v6.name")
    } else {
        ("kuryr.pool.uuid", "kuryr.pool.name")
    }
}

fn subnet_keys(v6: bool) -> (&'static str, &'static str) {
    if v6 {
        ("kuryr.subnet.v6.uuid", "kuryr.subnet.v6.name")
    } else {
        ("kuryr.subnet.uuid", "kuryr.subnet.name")
    }
}

/// Contiguous ports of one protocol merged into ranges, as kuryr-libnetwork does.
pub fn port_ranges(ports: &[ExposedPort]) -> Vec<(u8, u16, u16)> {
    let mut sorted: Vec<ExposedPort> = ports.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut out: Vec<(u8, u16, u16)> = Vec::new();
    for p in sorted {
        match out.last_mut() {
            Some((proto, _, max)) if *proto == p.protocol && max.checked_add(1) == Some(p.port) => {
                *max = p.port
            }
            _ => out.push((p.protocol, p.port, p.port)),
        }
    }
    out
}

impl NeutronBackend {
    pub fn new(client: Arc<NeutronClient>, settings: NeutronSettings) -> NeutronBackend {
        NeutronBackend {
            client,
            settings,
            cache: Mutex::new(Cache::default()),
            trunk: None,
            macvlan: None,
            pools: None,
            creates: creates::Creates::default(),
            releases: releases::Releases::default(),
        }
    }

    /// Notes each network create in `path` until it succeeds, so that a restart finds the
    /// networks of creates a kill cut short (see [`creates`]).
    pub fn with_network_journal(mut self, path: std::path::PathBuf) -> NeutronBackend {
        self.creates = creates::Creates::open(Some(path));
        self
    }

    /// Keeps pools of ready ports on this host, or inside a VM on its trunk (see
    /// [`crate::pool`]); not with the macvlan driver. Call after [`Self::with_trunk`].
    pub fn with_pools(mut self, settings: PoolSettings) -> NeutronBackend {
        let scope = match &self.trunk {
            _ if self.macvlan.is_some() => return self,
            Some(t) => Scope::Trunk(t.clone()),
            None => Scope::Host(self.settings.host.clone()),
        };
        self.pools = Some(Arc::new(Pools::new(self.client.clone(), scope, settings)));
        self
    }

    /// The pools' refill loop, for the daemon to run beside the API; `None` without pools.
    pub fn pool_refills(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.pools.clone().map(|p| p.run())
    }

    /// At start: the free pool ports a previous run made, in their pools again.
    pub async fn recover_pools(&self) -> Result<usize, BackendError> {
        match &self.pools {
            Some(p) => p
                .recover()
                .await
                .map_err(|e| fail("find this host's pool ports", e)),
            None => Ok(0),
        }
    }

    /// The address of a pool port for `req` (the one holding `--ip`, or any free one), now
    /// the request's; `None`: a miss, or no pools, or a MAC asked for (a fresh port).
    fn pool_hit(
        &self,
        req: &AddressRequest,
        subnet: &Subnet,
    ) -> Option<Result<IpNet, BackendError>> {
        // Not the Swarm manager's (serial) requests: their ports are bound where the task runs.
        let pools = self
            .pools
            .as_ref()
            .filter(|_| req.mac.is_none() && !req.serial)?;
        let port = pools.take(subnet, req.preferred)?;
        let ip = port
            .fixed_ips
            .iter()
            .find(|f| f.subnet_id == subnet.id)
            .and_then(|f| parse_ip(&f.ip_address))?;
        self.cache().ports_by_ip.insert(ip, port);
        Some(with_prefix(ip, &subnet.cidr))
    }

    /// Inside a VM with the macvlan driver (see [`crate::macvlan`]).
    pub fn with_vm_port(mut self, vm: VmPort) -> NeutronBackend {
        self.macvlan = Some(vm);
        self
    }

    /// Inside a VM: the containers' ports are bound to no host.
    fn nested(&self) -> bool {
        self.trunk.is_some() || self.macvlan.is_some()
    }

    /// Inside a VM: containers' ports become subports of the VM's trunk instead of ports
    /// bound to a host (see [`crate::trunk`]).
    pub fn with_trunk(mut self, trunk: Trunk) -> NeutronBackend {
        self.trunk = Some(Arc::new(trunk));
        self
    }

    /// A port kuryr made for an address. Inside a VM such a port has no device owner of
    /// kuryr's (Neutron lets a project member delete a `compute:*` port only with the admin
    /// role, measured on Neutron 29), then the trunk's, then none again: its name says it.
    fn is_ours(&self, port: &Port) -> bool {
        port.device_owner == DEVICE_OWNER
            || (self.nested()
                && (port.name == names::UNBOUND_PORT_NAME
                    || port.name == names::port_name(&port.device_id)))
    }

    pub fn client(&self) -> &Arc<NeutronClient> {
        &self.client
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subnet pool named by `--ipam-opt`/`-o`, if any.
    async fn named_pool(
        &self,
        options: &KuryrOptions,
        v6: bool,
    ) -> Result<Option<SubnetPool>, BackendError> {
        let (uuid_key, name_key) = pool_keys(v6);
        if let Some(id) = options.get(uuid_key) {
            let p = self
                .client
                .subnetpool(id)
                .await
                .map_err(|e| fail(format!("subnet pool {id} given with {uuid_key}"), e))?;
            return Ok(Some(p));
        }
        if let Some(name) = options.get(name_key) {
            return self.pool_by_name(name, name_key).await.map(Some);
        }
        Ok(None)
    }

    async fn pool_by_name(&self, name: &str, key: &str) -> Result<SubnetPool, BackendError> {
        let mut pools = self
            .client
            .subnetpools(&[("name", name)])
            .await
            .map_err(|e| fail(format!("find subnet pool {name}"), e))?;
        match pools.len() {
            1 => Ok(pools.remove(0)),
            0 => Err(BackendError::NotFound(format!(
                "no Neutron subnet pool is named {name} ({key}): create it or give its uuid"
            ))),
            n => Err(BackendError::Conflict(format!(
                "{n} Neutron subnet pools are named {name}: give one by uuid (neutron.pool.uuid)"
            ))),
        }
    }

    /// The subnet of a pool: from the cache, else the one subnet Neutron has with that pool.
    async fn pool_subnet(
        &self,
        pool_id: &str,
        address: Option<IpAddr>,
    ) -> Result<Option<Subnet>, BackendError> {
        if let Some(s) = self.cache().pool_subnets.get(pool_id) {
            return Ok(Some(s.clone()));
        }
        let mut subnets = self
            .client
            .subnets(&[("subnetpool_id", pool_id)])
            .await
            .map_err(|e| fail(format!("find the subnet of pool {pool_id}"), e))?;
        if subnets.is_empty() {
            // A subnet not made from the pool (an existing network's) carries its id as a tag.
            subnets = self
                .client
                .subnets(&[("tags", pool_id)])
                .await
                .map_err(|e| fail(format!("find the subnet tagged with pool {pool_id}"), e))?;
            for s in &subnets {
                self.note_pool_tag(&s.id, pool_id);
            }
        }
        // Only a pool with one subnet maps to it for good; otherwise the address decides.
        let single = subnets.len() == 1;
        let chosen = match (subnets.len(), address, self.cache().pool_cidrs.get(pool_id)) {
            (0, _, _) => return Ok(None),
            (1, _, _) => subnets.into_iter().next(),
            (_, Some(ip), _) => subnets
                .into_iter()
                .find(|s| s.cidr.parse::<IpNet>().is_ok_and(|n| n.contains(&ip))),
            (_, None, Some(cidr)) => {
                let cidr = cidr.to_string();
                subnets.into_iter().find(|s| s.cidr == cidr)
            }
            (_, None, None) => subnets.into_iter().next(),
        };
        if let Some(s) = &chosen {
            let mut c = self.cache();
            if single {
                c.pool_subnets.insert(pool_id.to_string(), s.clone());
            }
            c.subnets.insert(s.id.clone(), s.clone());
        }
        Ok(chosen)
    }

    /// Remembers that kuryr tagged `subnet` with `pool_id`, to take the tag back in
    /// DeleteNetwork (Docker releases the pool before it deletes the network).
    fn note_pool_tag(&self, subnet: &str, pool_id: &str) {
        let mut c = self.cache();
        let tags = c.pool_tags.entry(subnet.to_string()).or_default();
        if !tags.iter().any(|t| t == pool_id) {
            tags.push(pool_id.to_string());
        }
    }

    async fn subnet(&self, id: &str) -> Result<Subnet, BackendError> {
        if let Some(s) = self.cache().subnets.get(id) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .subnet(id)
            .await
            .map_err(|e| fail(format!("show subnet {id}"), e))?;
        self.cache().subnets.insert(id.to_string(), s.clone());
        Ok(s)
    }

    /// The Neutron network of a Docker network: cached, else found by kuryr's lh/uh tags.
    async fn network(&self, docker_id: &str) -> Result<Option<Network>, BackendError> {
        if let Some(n) = self.cache().networks.get(docker_id) {
            return Ok(Some(n.clone()));
        }
        let tags = names::id_tags(docker_id).join(",");
        let mut nets = self
            .client
            .networks(&[("tags", &tags)])
            .await
            .map_err(|e| {
                fail(
                    format!(
                        "find the Neutron network of Docker network {}",
                        short(docker_id)
                    ),
                    e,
                )
            })?;
        if nets.len() > 1 {
            return Err(BackendError::Conflict(format!(
                "{} Neutron networks carry the tags of Docker network {}: remove the tags {tags} from all but one",
                nets.len(),
                short(docker_id)
            )));
        }
        let net = nets.pop();
        if let Some(n) = &net {
            self.cache()
                .networks
                .insert(docker_id.to_string(), n.clone());
        }
        Ok(net)
    }

    /// The port holding `ip` on `network_id`: cached from RequestAddress, else looked up.
    async fn port_by_ip(&self, network_id: &str, ip: IpAddr) -> Result<Option<Port>, BackendError> {
        if let Some(p) = self.cache().ports_by_ip.get(&ip) {
            if p.network_id == network_id {
                return Ok(Some(p.clone()));
            }
        }
        let filter = format!("ip_address={ip}");
        let mut ports = self
            .client
            .ports(&[("network_id", network_id), ("fixed_ips", &filter)])
            .await
            .map_err(|e| fail(format!("find the port of address {ip}"), e))?;
        Ok(ports.pop())
    }

    async fn endpoint_port(&self, endpoint_id: &str) -> Result<Option<Port>, BackendError> {
        if let Some(p) = self.cache().endpoints.get(endpoint_id) {
            return Ok(Some(p.clone()));
        }
        let mut ports = self
            .client
            .ports(&[("device_id", endpoint_id)])
            .await
            .map_err(|e| {
                fail(
                    format!("find the port of endpoint {}", short(endpoint_id)),
                    e,
                )
            })?;
        Ok(ports.pop())
    }

    /// A read-modify-write of a port under `If-Match`: `body` builds the update from the
    /// port as last read. When someone changed the port meanwhile (Neutron itself does: ML2/OVN
    /// sets the status when ovn-controller binds or releases the port, which is exactly when
    /// CreateEndpoint and DeleteEndpoint update it), the port is read again and the update
    /// built anew from it, a few times at most, so nobody's change is written over.
    pub(crate) async fn update_port(
        &self,
        port: &Port,
        what: &str,
        body: impl Fn(&Port) -> Value,
    ) -> Result<Port, BackendError> {
        const ATTEMPTS: u32 = 5;
        let mut current = port.clone();
        let mut attempt = 1;
        loop {
            match self
                .client
                .update_port(&current.id, body(&current), Some(current.revision_number))
                .await
            {
                Err(e) if e.is_precondition_failed() && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    current = self
                        .client
                        .port(&port.id)
                        .await
                        .map_err(|e| fail(format!("{what}: read port {} again", port.id), e))?;
                    attempt += 1;
                }
                r => {
                    return r.map_err(|e| {
                        fail(
                            if attempt > 1 {
                                format!("{what} ({attempt} attempts, the port kept changing)")
                            } else {
                                what.to_string()
                            },
                            e,
                        )
                    })
                }
            }
        }
    }

    async fn to_endpoint(
        &self,
        endpoint_id: &str,
        docker_net: &str,
        port: &Port,
    ) -> Result<Endpoint, BackendError> {
        let vlan = match &self.trunk {
            Some(t) => t.vlan_of(&self.client, &port.id).await?,
            None => None,
        };
        let mut ep = Endpoint {
            endpoint_id: endpoint_id.to_string(),
            network_id: docker_net.to_string(),
            port: port.id.clone(),
            mac: port.mac_address.clone(),
            ipv4: None,
            ipv6: None,
            gateway_v4: None,
            gateway_v6: None,
            routes: Vec::new(),
            mtu: self.cache().networks.get(docker_net).and_then(|n| n.mtu),
            host: port.host_id.clone().filter(|h| !h.is_empty()),
            vlan,
        };
        for fip in &port.fixed_ips {
            let Some(ip) = parse_ip(&fip.ip_address) else {
                continue;
            };
            let subnet = self.subnet(&fip.subnet_id).await?;
            let addr = with_prefix(ip, &subnet.cidr)?;
            let gw = subnet.gateway_ip.as_deref().and_then(parse_ip);
            if ip.is_ipv4() {
                ep.ipv4 = Some(addr);
                ep.gateway_v4 = gw;
            } else {
                ep.ipv6 = Some(addr);
                ep.gateway_v6 = gw;
            }
            for r in &subnet.host_routes {
                if let (Ok(dst), Some(via)) = (r.destination.parse::<IpNet>(), parse_ip(&r.nexthop))
                {
                    ep.routes.push((dst, via));
                }
            }
        }
        Ok(ep)
    }

    /// The endpoint a port of it stands for (its Docker network found through the cache, or
    /// the Neutron network's kuryr tags).
    async fn endpoint_of_port(
        &self,
        endpoint_id: &str,
        port: Port,
    ) -> Result<Endpoint, BackendError> {
        let docker_net = self
            .cache()
            .networks
            .iter()
            .find(|(_, n)| n.id == port.network_id)
            .map(|(d, _)| d.clone());
        let docker_net = match docker_net {
            Some(d) => d,
            None => {
                let net = self
                    .client
                    .network(&port.network_id)
                    .await
                    .map_err(|e| fail(format!("show network {}", port.network_id), e))?;
                let d = Self::docker_id_of(&net).unwrap_or_default();
                if !d.is_empty() {
                    self.cache().networks.insert(d.clone(), net);
                }
                d
            }
        };
        self.cache()
            .endpoints
            .insert(endpoint_id.to_string(), port.clone());
        self.to_endpoint(endpoint_id, &docker_net, &port).await
    }

    /// The endpoints whose ports are among `ports` (those with a Docker endpoint id).
    async fn endpoints_of_ports(&self, ports: Vec<Port>) -> Result<Vec<Endpoint>, BackendError> {
        let mut out = Vec::new();
        for p in ports.into_iter().filter(|p| p.device_id.len() == 64) {
            let id = p.device_id.clone();
            out.push(self.endpoint_of_port(&id, p).await?);
        }
        Ok(out)
    }

    /// The Docker network id a Neutron network carries in its lh/uh tags.
    fn docker_id_of(net: &Network) -> Option<String> {
        let lh = net
            .tags
            .iter()
            .find_map(|t| t.strip_prefix(&format!("{}:", names::LH)))?;
        let uh = net
            .tags
            .iter()
            .find_map(|t| t.strip_prefix(&format!("{}:", names::UH)))
            .unwrap_or("");
        Some(format!("{lh}{uh}"))
    }

    /// The subnet pool a Docker subnet's addresses come from: the one named by
    /// `neutron.pool[.v6].uuid|name`, else the `<prefix>-<cidr>` pool kuryr's IPAM made.
    async fn subnet_pool_id(
        &self,
        cidr: &IpNet,
        options: &KuryrOptions,
    ) -> Result<String, BackendError> {
        if let Some(p) = self.named_pool(options, cidr.addr().is_ipv6()).await? {
            return Ok(p.id);
        }
        let name = names::pool_name(&self.settings.pool_prefix, cidr);
        Ok(self
            .pool_by_name(&name, "the pool kuryr's IPAM created")
            .await?
            .id)
    }

    /// The subnet of a Docker subnet, its pool and whether this call created it. A subnet
    /// kuryr did not create (named with `neutron.subnet.*`, or an existing network's subnet of
    /// the same CIDR) is tagged with the pool's id, as kuryr-libnetwork does, so that the
    /// pool's addresses are found in it.
    async fn create_subnet(
        &self,
        net: &Network,
        spec: &kuryr_core::SubnetSpec,
        options: &KuryrOptions,
        existing_net: bool,
    ) -> Result<(Subnet, bool, String), BackendError> {
        let v6 = spec.cidr.addr().is_ipv6();
        let (sub_uuid, sub_name) = subnet_keys(v6);
        let cidr = spec.cidr.to_string();
        let pool_id = self.subnet_pool_id(&spec.cidr, options).await?;
        let found = if let Some(id) = options.get(sub_uuid) {
            Some(self.subnet(id).await?)
        } else if let Some(name) = options.get(sub_name) {
            let mut found = self
                .client
                .subnets(&[("name", name), ("network_id", &net.id)])
                .await
                .map_err(|e| fail(format!("find subnet {name}"), e))?;
            match found.pop() {
                Some(s) => Some(s),
                None => {
                    return Err(BackendError::NotFound(format!(
                        "network {} has no subnet named {name} ({sub_name})",
                        net.id
                    )))
                }
            }
        } else if existing_net {
            let mut same = self
                .client
                .subnets(&[("network_id", &net.id), ("cidr", &cidr)])
                .await
                .map_err(|e| fail(format!("find subnet {cidr} of network {}", net.id), e))?;
            same.pop()
        } else {
            None
        };
        if let Some(mut s) = found {
            if s.subnetpool_id.as_deref() != Some(pool_id.as_str()) && !s.tags.contains(&pool_id) {
                self.client
                    .add_tag("subnets", &s.id, &pool_id)
                    .await
                    .map_err(|e| fail(format!("tag subnet {} with pool {pool_id}", s.id), e))?;
                s.tags.push(pool_id.clone());
            }
            self.note_pool_tag(&s.id, &pool_id);
            return Ok((s, false, pool_id));
        }
        let mut body = json!({
            "network_id": net.id,
            "ip_version": if v6 { 6 } else { 4 },
            "cidr": cidr,
            "subnetpool_id": pool_id,
            "name": names::subnet_name(&spec.cidr),
            "enable_dhcp": self.settings.enable_dhcp,
        });
        if let Some(gw) = spec.gateway {
            body["gateway_ip"] = json!(gw.to_string());
        }
        let s = self.client.create_subnet(body).await.map_err(|e| {
            if e.to_string().contains("Cannot allocate requested subnet") {
                // The pool is shared by CIDR name: another network already has this range.
                return BackendError::Conflict(format!(
                    "create subnet {cidr} on network {}: another network already uses {cidr} from pool {pool_id}; choose another --subnet, or give each network its own pool (--ipam-opt neutron.pool.name=... -o neutron.pool.name=...) to overlap",
                    net.id
                ));
            }
            fail(format!("create subnet {cidr} on network {}", net.id), e)
        })?;
        // kuryr-libnetwork tags its subnets with the pool's id.
        self.client
            .add_tag("subnets", &s.id, &pool_id)
            .await
            .map_err(|e| fail(format!("tag subnet {}", s.id), e))?;
        Ok((s, true, pool_id))
    }
}

impl NeutronBackend {
    /// `[neutron] default_subnetpool_v4` (or `_v6`): where pools come from without `--subnet`.
    async fn default_pool(&self, v6: bool) -> Result<SubnetPool, BackendError> {
        let name = if v6 {
            &self.settings.default_pool_v6
        } else {
            &self.settings.default_pool_v4
        };
        self.pool_by_name(name, "[neutron] default_subnetpool_v4/_v6")
            .await
    }

    /// Docker 29's prefix-only subnet (`--subnet 0.0.0.0/24`): the first subnet of that
    /// length in the default subnet pool's prefixes that overlaps no Neutron subnet of the
    /// same family and no kuryr subnet pool.
    async fn free_default_subnet(&self, v6: bool, len: u8) -> Result<IpNet, BackendError> {
        let pool = self.default_pool(v6).await?;
        let version = if v6 { "6" } else { "4" };
        let mut taken: Vec<IpNet> = self
            .client
            .subnets(&[("ip_version", version)])
            .await
            .map_err(|e| fail("list subnets to choose a free one".to_string(), e))?
            .iter()
            .filter_map(|s| s.cidr.parse().ok())
            .collect();
        let prefix = format!("{}-", self.settings.pool_prefix);
        taken.extend(
            self.client
                .subnetpools(&[("ip_version", version)])
                .await
                .map_err(|e| fail("list subnet pools to choose a free subnet".to_string(), e))?
                .iter()
                .filter(|p| p.name.starts_with(&prefix))
                .flat_map(|p| p.prefixes.iter().filter_map(|c| c.parse::<IpNet>().ok())),
        );
        let bases = pool.prefixes.iter().filter_map(|p| p.parse::<IpNet>().ok());
        if let Some(free) = bases
            .into_iter()
            .find_map(|base| kuryr_core::subnets::first_free_subnet(&base, len, &taken))
        {
            return Ok(free);
        }
        Err(BackendError::Exhausted(format!(
            "no free /{len} left in the default subnet pool {} ({}): give --subnet",
            pool.name,
            pool.prefixes.join(", ")
        )))
    }
}

impl NeutronBackend {
    /// Deletes kuryr's ports on `network_id` that match `filters` (Neutron's) and `wanted`,
    /// and forgets them; returns them.
    async fn delete_ours_where(
        &self,
        network_id: &str,
        filters: &[(&str, &str)],
        what: &str,
        wanted: impl Fn(&Port) -> bool,
    ) -> Result<Vec<Port>, BackendError> {
        let mut all = vec![("network_id", network_id)];
        all.extend_from_slice(filters);
        let ports = self
            .client
            .ports(&all)
            .await
            .map_err(|e| fail(what.to_string(), e))?;
        let mut deleted = Vec::new();
        for p in ports.iter().filter(|p| self.is_ours(p) && wanted(p)) {
            self.delete_any_port(p)
                .await
                .map_err(|e| fail(format!("{what}: port {}", p.id), e))?;
            self.cache()
                .ports_by_ip
                .retain(|_, cached| cached.id != p.id);
            deleted.push(p.clone());
        }
        Ok(deleted)
    }

    /// Deletes a port; a subport comes off the VM's trunk first.
    pub(super) async fn delete_any_port(&self, p: &Port) -> Result<(), NeutronError> {
        match (self.client.delete_port(&p.id).await, &self.trunk) {
            (Err(e), Some(t)) if e.is_conflict() => {
                if let Err(d) = t.detach(&self.client, &p.id).await {
                    tracing::warn!(port = %p.id, error = %d, "could not take a port off the VM's trunk");
                    return Err(e);
                }
                self.client.delete_port(&p.id).await
            }
            (r, _) => r,
        }
    }

    /// Deletes the Neutron network kuryr made for a Docker network (or takes back kuryr's
    /// subnets and tags from one it was given).
    async fn remove_network(&self, network_id: &str, net: Network) -> Result<(), BackendError> {
        let what = format!(
            "delete network {} (Docker network {})",
            net.id,
            short(network_id)
        );
        if let Some(pools) = &self.pools {
            // The network's free pool ports first: Neutron keeps a network that has ports.
            let n = pools
                .drain(&net.id, None)
                .await
                .map_err(|e| fail(format!("{what}: delete its pool ports"), e))?;
            if n > 0 {
                tracing::info!(network = %net.id, ports = n, "pool ports deleted with the network");
            }
        }
        let existing_tag = names::existing_network_tag(network_id);
        if net.tags.contains(&existing_tag) {
            // Not kuryr's: take back only kuryr's subnets and tags. Another Docker network
            // (another host's) may use the same Neutron network: what it still uses stays.
            let fresh = self
                .client
                .network(&net.id)
                .await
                .map_err(|e| fail(what.clone(), e))?;
            let mut tags = names::id_tags(network_id);
            tags.push(existing_tag);
            tags.push(names::NET_SWARM.into());
            let others = fresh
                .tags
                .iter()
                .any(|t| t.starts_with(names::NET_EXISTING) && !tags.contains(t));
            let subnets = self
                .client
                .subnets(&[("network_id", &net.id)])
                .await
                .map_err(|e| fail(what.clone(), e))?;
            for s in &subnets {
                if s.name.starts_with(names::SUBNET_NAME_PREFIX) {
                    match self.client.delete_subnet(&s.id).await {
                        Err(e) if e.is_conflict() => {
                            tracing::info!(subnet = %s.id, "subnet still has ports; kept")
                        }
                        r => r.map_err(|e| fail(what.clone(), e))?,
                    }
                } else if !others {
                    // The last Docker network on it: the pool tags kuryr added go too.
                    let pools = self.cache().pool_tags.remove(&s.id).unwrap_or_default();
                    for p in pools.iter().filter(|p| s.tags.contains(p)) {
                        self.client
                            .remove_tag("subnets", &s.id, p)
                            .await
                            .map_err(|e| fail(what.clone(), e))?;
                    }
                }
            }
            for t in tags.iter().filter(|t| fresh.tags.contains(t)) {
                self.client
                    .remove_tag("networks", &net.id, t)
                    .await
                    .map_err(|e| fail(what.clone(), e))?;
            }
        } else {
            // Kuryr made it (not an adopted network): every port of kuryr's left on it that is
            // this host's or no host's, the unclaimed ones among them.
            self.delete_left_behind(&net.id, None).await?;
            self.client
                .delete_network(&net.id)
                .await
                .map_err(|e| fail(what, e))?;
        }
        let mut c = self.cache();
        c.networks.remove(network_id);
        c.pool_subnets.retain(|_, s| s.network_id != net.id);
        c.subnets.retain(|_, s| s.network_id != net.id);
        Ok(())
    }
}

impl Backend for NeutronBackend {
    async fn ipam_usage(&self) -> Result<Vec<kuryr_core::PoolUsage>, BackendError> {
        self.pool_usage().await
    }

    async fn reclaim(&self) {
        self.reclaim_failed_creates().await;
        self.retry_failed_releases().await;
    }

    fn name(&self) -> &'static str {
        "neutron"
    }

    async fn request_pool(&self, req: &PoolRequest) -> Result<PoolGrant, BackendError> {
        let cidr = req.subpool.or(req.pool);
        if let Some(pool) = self.named_pool(&req.options, req.v6).await? {
            if !pool.tags.iter().any(|t| t == POOL_EXISTING) {
                self.client
                    .add_tag("subnetpools", &pool.id, POOL_EXISTING)
                    .await
                    .map_err(|e| fail(format!("tag subnet pool {}", pool.id), e))?;
            }
            let cidr = match cidr {
                Some(c) => c,
                None => first_prefix(&pool)?,
            };
            self.cache().pool_cidrs.insert(pool.id.clone(), cidr);
            return Ok(PoolGrant {
                pool_id: pool.id,
                cidr,
            });
        }
        let cidr = match (cidr, req.prefix_len) {
            (None, Some(len)) => Some(self.free_default_subnet(req.v6, len).await?),
            (c, _) => c,
        };
        let Some(cidr) = cidr else {
            let pool = self.default_pool(req.v6).await?;
            let cidr = first_prefix(&pool)?;
            self.cache().pool_cidrs.insert(pool.id.clone(), cidr);
            return Ok(PoolGrant {
                pool_id: pool.id,
                cidr,
            });
        };
        let cidr = cidr.trunc();
        let name = names::pool_name(&self.settings.pool_prefix, &cidr);
        let mut found = self
            .client
            .subnetpools(&[("name", &name)])
            .await
            .map_err(|e| fail(format!("find subnet pool {name}"), e))?;
        let pool = match found.len() {
            0 => self
                .client
                .create_subnetpool(json!({
                    "name": name,
                    "prefixes": [cidr.to_string()],
                    "default_prefixlen": cidr.prefix_len(),
                    "min_prefixlen": cidr.prefix_len(),
                }))
                .await
                .map_err(|e| fail(format!("create subnet pool {name}"), e))?,
            1 => found.remove(0),
            n => {
                return Err(BackendError::Conflict(format!(
                    "{n} Neutron subnet pools are named {name}: give one with --ipam-opt neutron.pool.uuid=<id>"
                )))
            }
        };
        self.cache().pool_cidrs.insert(pool.id.clone(), cidr);
        Ok(PoolGrant {
            pool_id: pool.id,
            cidr,
        })
    }

    async fn release_pool(&self, pool_id: &str) -> Result<(), BackendError> {
        let pool = match self.client.subnetpool(pool_id).await {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(fail(format!("release pool {pool_id}"), e)),
        };
        {
            let mut c = self.cache();
            c.pool_cidrs.remove(pool_id);
            c.pool_subnets.remove(pool_id);
        }
        if pool.tags.iter().any(|t| t == POOL_EXISTING) {
            return self
                .client
                .remove_tag("subnetpools", pool_id, POOL_EXISTING)
                .await
                .map_err(|e| fail(format!("release pool {pool_id}"), e));
        }
        let subnets = self
            .client
            .subnets(&[("subnetpool_id", pool_id)])
            .await
            .map_err(|e| fail(format!("release pool {pool_id}: list its subnets"), e))?;
        for s in &subnets {
            if self.is_swarm_network(&s.network_id).await? {
                // A node's last task left; the manager's FreeNetwork and ReleasePool remove it.
                tracing::info!(pool = %pool.name, network = %s.network_id, "subnet pool of a Swarm network kept for the other nodes");
                return Ok(());
            }
        }
        for s in subnets
            .iter()
            .filter(|s| s.name.starts_with(names::SUBNET_NAME_PREFIX))
        {
            // On a network kuryr made, every port of kuryr's this host or no host has left
            // (the unclaimed ones among them); on an adopted one, only the unclaimed ones.
            let made = match self.client.network(&s.network_id).await {
                Ok(net) => unclaimed::made_by_kuryr(&net),
                Err(e) if e.is_not_found() => false,
                Err(e) => {
                    return Err(fail(
                        format!("release pool {pool_id}: look up network {}", s.network_id),
                        e,
                    ))
                }
            };
            if made {
                self.delete_left_behind(&s.network_id, Some(&s.id)).await?;
            } else {
                self.delete_unclaimed(&s.network_id, Some(&s.id)).await?;
            }
            if let Some(pools) = &self.pools {
                // Docker may release the pool before it deletes the network: the subnet's
                // free pool ports go first (Neutron keeps a subnet with ports).
                pools.drain(&s.network_id, Some(&s.id)).await.map_err(|e| {
                    fail(
                        format!(
                            "release pool {pool_id}: delete the pool ports of subnet {}",
                            s.id
                        ),
                        e,
                    )
                })?;
            }
            self.client.delete_subnet(&s.id).await.map_err(|e| {
                fail(
                    format!(
                        "release pool {pool_id}: delete subnet {} ({})",
                        s.id, s.cidr
                    ),
                    e,
                )
            })?;
            self.cache().subnets.remove(&s.id);
        }
        let networks: std::collections::BTreeSet<&str> = subnets
            .iter()
            .filter(|s| s.name.starts_with(names::SUBNET_NAME_PREFIX))
            .map(|s| s.network_id.as_str())
            .collect();
        for net_id in networks {
            self.delete_if_emptied(net_id).await?;
        }
        if pool
            .name
            .starts_with(&format!("{}-", self.settings.pool_prefix))
        {
            match self.client.delete_subnetpool(pool_id).await {
                // Another network (another host's, or a kuryr-libnetwork one) still uses it.
                Err(e) if e.is_conflict() => {
                    tracing::info!(pool = %pool.name, "subnet pool still in use; kept")
                }
                r => r.map_err(|e| fail(format!("delete subnet pool {}", pool.name), e))?,
            }
        }
        Ok(())
    }

    async fn request_address(&self, req: &AddressRequest) -> Result<IpNet, BackendError> {
        let ip = self.request_address_now(req).await?;
        // Docker has the address again: a release of it that Neutron missed is void.
        self.releases.handed_out(&req.pool_id, ip.addr());
        Ok(ip)
    }

    async fn release_address(&self, pool_id: &str, address: IpAddr) -> Result<(), BackendError> {
        let r = self.release_address_now(pool_id, address).await;
        match &r {
            // Docker does not send it again: kuryr does, once Neutron answers.
            Err(BackendError::Unavailable { .. }) => self.releases.failed(pool_id, address),
            _ => self.releases.done(pool_id, address),
        }
        r
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), BackendError> {
        let id = &spec.network_id;
        let o = &spec.options;
        if o.get("kuryr.router").is_some() {
            return Err(BackendError::Invalid(
                "kuryr.router is the OVN mode's option; in the Neutron mode attach the network's subnet to a Neutron router (openstack router add subnet)".into(),
            ));
        }
        let existing = match (o.get("kuryr.net.uuid"), o.get("kuryr.net.name")) {
            (Some(_), Some(_)) => {
                return Err(BackendError::Invalid(
                    "give neutron.net.uuid or neutron.net.name, not both".into(),
                ))
            }
            (Some(u), None) => Some(
                self.client
                    .network(u)
                    .await
                    .map_err(|e| fail(format!("network {u} given with neutron.net.uuid"), e))?,
            ),
            (None, Some(n)) => {
                let mut nets = self
                    .client
                    .networks(&[("name", n)])
                    .await
                    .map_err(|e| fail(format!("find network {n}"), e))?;
                match nets.len() {
                    1 => nets.pop(),
                    0 => {
                        return Err(BackendError::NotFound(format!(
                            "no Neutron network is named {n} (neutron.net.name)"
                        )))
                    }
                    k => {
                        return Err(BackendError::Conflict(format!(
                            "{k} Neutron networks are named {n}: give one with -o neutron.net.uuid=<id>"
                        )))
                    }
                }
            }
            (None, None) => match &self.macvlan {
                // As kuryr-libnetwork's nested driver: the VM's own network.
                Some(vm) => Some(
                    self.client
                        .network(&vm.network_id)
                        .await
                        .map_err(|e| fail(format!("the VM's network {}", vm.network_id), e))?,
                ),
                None => None,
            },
        };
        let tags = names::id_tags(id);
        let mut create = None;
        let (net, reused) = match existing {
            Some(mut net) => {
                let mut want = tags.clone();
                want.push(names::existing_network_tag(id));
                for t in want {
                    if !net.tags.contains(&t) {
                        self.client
                            .add_tag("networks", &net.id, &t)
                            .await
                            .map_err(|e| fail(format!("tag network {}", net.id), e))?;
                        net.tags.push(t);
                    }
                }
                (net, true)
            }
            None => match self.network(id).await? {
                Some(net) => (net, true),
                None => {
                    let shared = o
                        .get("kuryr.net.shared")
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                    create = Some(self.creates.begin(id));
                    let mut net = self
                        .client
                        .create_network(json!({
                            "name": names::network_name(id),
                            "admin_state_up": true,
                            "shared": shared,
                        }))
                        .await
                        .map_err(|e| {
                            fail(format!("create network {}", names::network_name(id)), e)
                        })?;
                    if let Err(e) = self.client.set_tags("networks", &net.id, &tags).await {
                        let _ = self.client.delete_network(&net.id).await;
                        return Err(fail(format!("tag network {}", net.id), e));
                    }
                    net.tags = tags.clone();
                    (net, false)
                }
            },
        };
        self.cache().networks.insert(id.clone(), net.clone());
        let mut created = Vec::new();
        for sub in [&spec.ipv4, &spec.ipv6].into_iter().flatten() {
            match self.create_subnet(&net, sub, o, reused).await {
                Ok((s, new, pool_id)) => {
                    if new {
                        created.push(s.id.clone());
                    }
                    if let Some(pools) = &self.pools {
                        // Ready ports before the first container asks.
                        pools.activate(&s);
                    }
                    let mut c = self.cache();
                    c.pool_subnets.insert(pool_id, s.clone());
                    c.subnets.insert(s.id.clone(), s);
                }
                Err(e) => {
                    // Undo: what this call created goes again.
                    for s in &created {
                        let _ = self.client.delete_subnet(s).await;
                    }
                    if !reused {
                        let _ = self.client.delete_network(&net.id).await;
                        self.cache().networks.remove(id);
                    }
                    return Err(e);
                }
            }
        }
        if let Some(c) = create {
            c.succeeded();
        }
        Ok(())
    }

    async fn allocate_network(&self, spec: &NetworkSpec) -> Result<(), BackendError> {
        self.allocate_swarm_network(spec).await
    }

    async fn free_network(&self, network_id: &str) -> Result<(), BackendError> {
        let Some(net) = self.network(network_id).await? else {
            return Ok(());
        };
        // Every port of kuryr's left on it: no task is left in the Swarm, so these are of
        // nodes that died or of addresses never used.
        let what = format!("delete the ports left on Swarm network {}", net.id);
        let left = self
            .delete_ours_where(&net.id, &[], &what, |_| true)
            .await?;
        tracing::info!(network = %net.id, ports_left = left.len(), "Swarm network freed");
        self.remove_network(network_id, net).await
    }

    async fn delete_network(&self, network_id: &str) -> Result<(), BackendError> {
        let Some(net) = self.network(network_id).await? else {
            return Ok(());
        };
        if swarm::is_swarm(&net) {
            return self.leave_swarm_network(&net).await;
        }
        self.remove_network(network_id, net).await
    }

    async fn create_endpoint(&self, spec: &EndpointSpec) -> Result<Endpoint, BackendError> {
        let eid = &spec.endpoint_id;
        let net = self.network(&spec.network_id).await?.ok_or_else(|| {
            BackendError::NotFound(format!(
                "Docker network {} has no Neutron network (no network carries its kuryr tags)",
                short(&spec.network_id)
            ))
        })?;
        let mut ports: Vec<Port> = Vec::new();
        for ip in [spec.ipv4, spec.ipv6].into_iter().flatten() {
            let port = self.port_by_ip(&net.id, ip.addr()).await?.ok_or_else(|| {
                BackendError::NotFound(format!(
                    "no Neutron port holds {} on network {}: was the address requested from kuryr's IPAM (--ipam-driver kuryr)?",
                    ip.addr(),
                    net.id
                ))
            })?;
            if !ports.iter().any(|p| p.id == port.id) {
                ports.push(port);
            }
        }
        let Some(mut port) = ports.first().cloned() else {
            return Err(BackendError::Invalid(format!(
                "endpoint {} has no address",
                short(eid)
            )));
        };
        if let Some(vm) = &self.macvlan {
            if port.network_id != vm.network_id {
                return Err(BackendError::Invalid(format!(
                    "with the macvlan driver containers join the VM's own network {}: create the Docker network without neutron.net options, or with -o neutron.net.uuid={}",
                    vm.network_id, vm.network_id
                )));
            }
        }
        let done = match (&self.trunk, &self.macvlan) {
            (Some(t), _) => {
                port.device_id == *eid && t.vlan_of(&self.client, &port.id).await?.is_some()
            }
            (None, Some(vm)) if port.device_id == *eid => {
                self.add_pairs(vm, &port).await?;
                true
            }
            (None, Some(_)) => false,
            (None, None) => {
                port.device_id == *eid
                    && port.host_id.as_deref() == Some(self.settings.host.as_str())
            }
        };
        if done {
            // Created already (a retry): return it as it is.
            self.cache().endpoints.insert(eid.clone(), port.clone());
            return self.to_endpoint(eid, &spec.network_id, &port).await;
        }
        let what = match &self.trunk {
            Some(t) => format!(
                "give port {} to endpoint {} on the VM's trunk {}",
                port.id,
                short(eid),
                t.id
            ),
            None => format!(
                "bind port {} to endpoint {} on host {}",
                port.id,
                short(eid),
                self.settings.host
            ),
        };
        let second = ports.get(1);
        if let Some(second) = second {
            // Dual stack: IPAM made one port per family; the endpoint keeps one port with both.
            if !self.is_ours(second) || second.tags.iter().any(|t| t == PORT_EXISTING) {
                return Err(BackendError::Conflict(format!(
                    "addresses of endpoint {} are on two ports ({} and {}) and {} is not kuryr's: give --ip and --ip6 of one port",
                    short(eid), port.id, second.id, second.id
                )));
            }
            self.client
                .delete_port(&second.id)
                .await
                .map_err(|e| fail(what.clone(), e))?;
        }
        // Inside a VM the port becomes a subport first (Neutron refuses a port with a device
        // id), and keeps the device owner the trunk gives it and no host (module trunk).
        if let Some(t) = &self.trunk {
            t.attach(&self.client, &port.id).await?;
            port = self
                .client
                .port(&port.id)
                .await
                .map_err(|e| fail(what.clone(), e))?;
        }
        if !port.device_id.is_empty() && port.device_id != *eid {
            return Err(taken_by_another(&port, eid));
        }
        let new_mac = spec
            .mac
            .as_ref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(&port.mac_address));
        if new_mac && !self.nested() && port.host_id.as_deref().is_some_and(|h| !h.is_empty()) {
            // `--mac-address` on a pool port: Neutron changes no bound port's MAC, so it is
            // unbound here and bound again with the MAC below.
            port = self
                .client
                .update_port(&port.id, json!({"binding:host_id": ""}), None)
                .await
                .map_err(|e| fail(format!("{what}: unbind it to change its MAC"), e))?;
        }
        // Set when a re-read (under If-Match) finds another endpoint's device id.
        let stolen = std::sync::atomic::AtomicBool::new(false);
        let bind = |p: &Port| {
            if !p.device_id.is_empty() && p.device_id != *eid {
                stolen.store(true, std::sync::atomic::Ordering::Relaxed);
                // A write of what is there: changes nothing, and the caller refuses.
                return json!({"device_id": p.device_id});
            }
            let mut body = json!({
                "device_id": eid,
                "admin_state_up": true,
            });
            let bound_here = p.host_id.as_deref() == Some(self.settings.host.as_str())
                && p.device_owner == DEVICE_OWNER;
            if !self.nested() && !bound_here {
                body["binding:host_id"] = json!(self.settings.host);
                body["device_owner"] = json!(DEVICE_OWNER);
            }
            if !p.tags.iter().any(|t| t == PORT_EXISTING) {
                // kuryr-libnetwork finds the port of an endpoint for `--expose` (Program and
                // RevokeExternalConnectivity) by this name only: with it, a host gone back to
                // kuryr-libnetwork removes the security group kuryr made for a running container.
                body["name"] = json!(names::port_name(eid));
            }
            if let Some(mac) = &spec.mac {
                if !mac.eq_ignore_ascii_case(&p.mac_address) {
                    body["mac_address"] = json!(mac);
                }
            }
            if let Some(second) = second {
                // Dual stack: the other family's address moves onto this port.
                let mut fixed: Vec<Value> = p
                    .fixed_ips
                    .iter()
                    .chain(second.fixed_ips.iter())
                    .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
                    .collect();
                fixed.dedup();
                body["fixed_ips"] = json!(fixed);
            }
            body
        };
        port = match self.update_port(&port, &what, bind).await {
            Ok(p) if stolen.load(std::sync::atomic::Ordering::Relaxed) => {
                return Err(taken_by_another(&p, eid));
            }
            Ok(p) => {
                if let Some(pools) = &self.pools {
                    pools.claimed(&p.id);
                }
                p
            }
            Err(e) => {
                if let Some(t) = &self.trunk {
                    if let Err(undo) = t.detach(&self.client, &port.id).await {
                        tracing::warn!(port = %port.id, error = %undo, "take the port off the VM's trunk again");
                    }
                }
                return Err(e);
            }
        };
        if port.vif_type.as_deref() == Some("binding_failed") {
            // Undo: the port goes back to unbound, the address stays reserved for Docker
            // to release.
            let undo = json!({"binding:host_id": "", "device_id": ""});
            if let Err(e) = self.client.update_port(&port.id, undo, None).await {
                tracing::warn!(port = %port.id, error = %e, "unbind the port Neutron could not bind");
            }
            return Err(BackendError::Invalid(format!(
                "Neutron could not bind port {} to host {:?} (binding:vif_type binding_failed): no mechanism driver accepts that host; with ML2/OVN, ovn-controller must run here under the name Neutron knows ([DEFAULT] host, default: the hostname)",
                port.id, self.settings.host
            )));
        }
        let mut tags = port.tags.clone();
        let mut add = names::id_tags(eid);
        if !tags.iter().any(|t| t == PORT_EXISTING) {
            // kuryr-libnetwork tags the ports it creates `compute:kuryr` and its ReleaseAddress
            // deletes only ports with that tag (or named `<endpoint id>-port`): without it, a
            // host gone back to kuryr-libnetwork keeps this port and cannot remove the network.
            add.push(DEVICE_OWNER.to_string());
        }
        add.retain(|t| !tags.contains(t));
        if !add.is_empty() {
            tags.extend(add);
            // One request for all tags; the port is ours (bound to this endpoint) from here on.
            self.client
                .set_tags("ports", &port.id, &tags)
                .await
                .map_err(|e| fail(format!("tag port {}", port.id), e))?;
            port.tags = tags;
            port.revision_number += 1;
        }
        if let Some(vm) = &self.macvlan {
            // The port stays the endpoint's; Docker's ReleaseAddress deletes it on failure.
            self.add_pairs(vm, &port).await?;
        }
        {
            let mut c = self.cache();
            for f in &port.fixed_ips {
                if let Some(ip) = parse_ip(&f.ip_address) {
                    c.ports_by_ip.insert(ip, port.clone());
                }
            }
            c.endpoints.insert(eid.clone(), port.clone());
            c.bound_here.insert(eid.clone());
        }
        self.to_endpoint(eid, &spec.network_id, &port).await
    }

    async fn endpoint(&self, endpoint_id: &str) -> Result<Option<Endpoint>, BackendError> {
        let Some(port) = self.endpoint_port(endpoint_id).await? else {
            return Ok(None);
        };
        self.endpoint_of_port(endpoint_id, port).await.map(Some)
    }

    async fn delete_endpoint(&self, endpoint_id: &str) -> Result<(), BackendError> {
        let Some(port) = self.endpoint_port(endpoint_id).await? else {
            return Ok(());
        };
        {
            let mut c = self.cache();
            c.endpoints.remove(endpoint_id);
            c.bound_here.remove(endpoint_id);
            c.exposed.remove(endpoint_id);
        }
        if port.device_id != endpoint_id {
            return Ok(());
        }
        if self.is_swarm_network(&port.network_id).await? {
            self.cache()
                .released_endpoints
                .insert(endpoint_id.to_string());
        }
        let pooled = self.pools.is_some() && port.tags.iter().any(|t| t == names::POOL_TAG);
        if let (Some(t), false) = (&self.trunk, pooled) {
            // Before ReleaseAddress deletes the port: Neutron refuses to delete a subport. A
            // pool port stays on the trunk for the next container (ReleaseAddress detaches
            // it if it is deleted instead).
            t.detach(&self.client, &port.id).await?;
        }
        if let Some(vm) = &self.macvlan {
            self.remove_pairs(vm, &port).await?;
        }
        if !port.tags.iter().any(|t| t == PORT_EXISTING) {
            // kuryr's own port: Docker's ReleaseAddress, which follows DeleteEndpoint at once,
            // deletes it. Unbinding it first cost a full ML2/OVN port update (about 0.6 s of a
            // 2.4 s `docker run --rm`, measured) for a state that lasts milliseconds. Only an
            // adopted port is unbound here, and given back in ReleaseAddress.
            return Ok(());
        }
        let what = format!("unbind port {} of endpoint {}", port.id, short(endpoint_id));
        // A write of fixed values, not a read-modify-write, so no If-Match: Neutron itself
        // changes the port's revision as OVN reports it down, which would refuse it for
        // nothing. Nobody else can hold the port meanwhile: its device_id is this endpoint's.
        let body = json!({"binding:host_id": "", "device_id": ""});
        let unbound = match self.client.update_port(&port.id, body, None).await {
            Err(e) if e.is_not_found() => return Ok(()),
            r => r.map_err(|e| fail(what.clone(), e))?,
        };
        let eps = names::id_tags(endpoint_id);
        for t in &eps {
            self.client
                .remove_tag("ports", &port.id, t)
                .await
                .map_err(|e| fail(what.clone(), e))?;
        }
        let mut tags = unbound.tags.clone();
        tags.retain(|t| !eps.contains(t));
        let mut c = self.cache();
        for f in &unbound.fixed_ips {
            if let Some(ip) = parse_ip(&f.ip_address) {
                if let Some(p) = c.ports_by_ip.get_mut(&ip) {
                    *p = unbound.clone();
                    p.tags = tags.clone();
                }
            }
        }
        Ok(())
    }

    async fn wait_active(&self, endpoint_id: &str, timeout: Duration) -> Result<(), BackendError> {
        let limit = self.settings.vif_plugging_timeout.min(timeout);
        if limit.is_zero() {
            return Ok(());
        }
        let Some(port) = self.endpoint_port(endpoint_id).await? else {
            return Err(BackendError::NotFound(format!(
                "endpoint {} has no port",
                short(endpoint_id)
            )));
        };
        let deadline = Instant::now() + limit;
        // ML2/OVN marks the port ACTIVE some 100-300 ms after ovn-controller claims it: look
        // often at first, then every 250 ms.
        let mut pause = Duration::from_millis(50);
        loop {
            let p = self
                .client
                .port(&port.id)
                .await
                .map_err(|e| fail(format!("wait for port {} to be ACTIVE", port.id), e))?;
            if p.status == "ACTIVE" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let msg = format!(
                    "port {} of endpoint {} is {} after {:?} ([neutron] vif_plugging_timeout)",
                    port.id,
                    short(endpoint_id),
                    p.status,
                    limit
                );
                if self.settings.vif_plugging_is_fatal {
                    return Err(BackendError::Unavailable {
                        context: msg,
                        source: "port not ACTIVE".into(),
                    });
                }
                tracing::warn!("{msg}; continuing ([neutron] vif_plugging_is_fatal = false)");
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// The endpoints this process knows (bound here, or found at start) whose port holds
    /// `address`; DeleteEndpoint forgets an endpoint, so in Docker's order none is left.
    fn endpoints_holding(&self, address: IpAddr) -> Vec<String> {
        self.cache()
            .endpoints
            .iter()
            .filter(|(_, p)| {
                p.fixed_ips
                    .iter()
                    .any(|f| parse_ip(&f.ip_address) == Some(address))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn local_endpoints(&self) -> Result<Vec<Endpoint>, BackendError> {
        if let Some(t) = &self.trunk {
            // Inside a VM: the containers' ports are the trunk's subports.
            let ids: HashSet<String> = t
                .subports(&self.client)
                .await?
                .into_iter()
                .map(|sp| sp.port_id)
                .collect();
            let mut ports = self
                .client
                .ports(&[("device_owner", "trunk:subport")])
                .await
                .map_err(|e| fail(format!("list the subports of trunk {}", t.id), e))?;
            ports.retain(|p| ids.contains(&p.id));
            return self.endpoints_of_ports(ports).await;
        }
        if let Some(vm) = &self.macvlan {
            let ports = self.paired_ports(vm).await?;
            return self.endpoints_of_ports(ports).await;
        }
        let ports = self
            .client
            .ports(&[
                ("binding:host_id", &self.settings.host),
                ("device_owner", DEVICE_OWNER),
            ])
            .await
            .map_err(|e| {
                fail(
                    format!("list the ports bound to host {}", self.settings.host),
                    e,
                )
            })?;
        self.endpoints_of_ports(ports).await
    }

    async fn expose(&self, endpoint_id: &str, ports: &[ExposedPort]) -> Result<(), BackendError> {
        let port = self.endpoint_port(endpoint_id).await?.ok_or_else(|| {
            BackendError::NotFound(format!(
                "endpoint {} has no Neutron port",
                short(endpoint_id)
            ))
        })?;
        let name = names::security_group_name(&port.id);
        let sg = self
            .client
            .create_security_group(&name, "kuryr: ports exposed by the container")
            .await
            .map_err(|e| fail(format!("create security group {name}"), e))?;
        let families: Vec<&str> = {
            let mut f = Vec::new();
            if port.fixed_ips.iter().any(|x| x.ip_address.contains('.')) {
                f.push("IPv4");
            }
            if port.fixed_ips.iter().any(|x| x.ip_address.contains(':')) {
                f.push("IPv6");
            }
            f
        };
        let mut rules = Vec::new();
        for (proto, min, max) in port_ranges(ports) {
            for fam in &families {
                // Named as kuryr-libnetwork names them; others by number.
                let protocol = match proto {
                    1 => "icmp".to_string(),
                    6 => "tcp".to_string(),
                    17 => "udp".to_string(),
                    n => n.to_string(),
                };
                let mut r = json!({"security_group_id": sg.id, "direction": "ingress",
                    "ethertype": fam, "protocol": protocol});
                if proto == 6 || proto == 17 {
                    r["port_range_min"] = json!(min);
                    r["port_range_max"] = json!(max);
                }
                rules.push(r);
            }
        }
        let undo = |e: BackendError| async {
            let _ = self.client.delete_security_group(&sg.id).await;
            e
        };
        if !rules.is_empty() {
            if let Err(e) = self.client.create_security_group_rules(rules).await {
                return Err(undo(fail(format!("add rules to security group {name}"), e)).await);
            }
        }
        let fresh = match self.client.port(&port.id).await {
            Ok(p) => p,
            Err(e) => return Err(undo(fail(format!("show port {}", port.id), e)).await),
        };
        let add = |p: &Port| {
            let mut groups = p.security_groups.clone();
            groups.push(sg.id.clone());
            json!({ "security_groups": groups })
        };
        match self
            .update_port(
                &fresh,
                &format!("add security group {name} to port {}", port.id),
                add,
            )
            .await
        {
            Ok(p) => {
                let mut c = self.cache();
                c.endpoints.insert(endpoint_id.to_string(), p);
                c.exposed.insert(endpoint_id.to_string());
                Ok(())
            }
            Err(e) => Err(undo(e).await),
        }
    }

    async fn unexpose(&self, endpoint_id: &str) -> Result<(), BackendError> {
        {
            let c = self.cache();
            if c.bound_here.contains(endpoint_id) && !c.exposed.contains(endpoint_id) {
                return Ok(());
            }
        }
        let Some(port) = self.endpoint_port(endpoint_id).await? else {
            return Ok(());
        };
        let name = names::security_group_name(&port.id);
        let sgs = self
            .client
            .security_groups(&[("name", &name)])
            .await
            .map_err(|e| fail(format!("find security group {name}"), e))?;
        if sgs.is_empty() {
            return Ok(());
        }
        let fresh = self
            .client
            .port(&port.id)
            .await
            .map_err(|e| fail(format!("show port {}", port.id), e))?;
        let ours = |g: &String| sgs.iter().any(|s| &s.id == g);
        if fresh.security_groups.iter().any(ours) {
            let remove = |p: &Port| {
                let groups: Vec<&String> = p.security_groups.iter().filter(|g| !ours(g)).collect();
                json!({ "security_groups": groups })
            };
            let p = self
                .update_port(
                    &fresh,
                    &format!("remove security group {name} from port {}", port.id),
                    remove,
                )
                .await?;
            self.cache().endpoints.insert(endpoint_id.to_string(), p);
        }
        for sg in sgs {
            self.client
                .delete_security_group(&sg.id)
                .await
                .map_err(|e| fail(format!("delete security group {name}"), e))?;
        }
        self.cache().exposed.remove(endpoint_id);
        Ok(())
    }
}

impl NeutronBackend {
    async fn pool_cidr(&self, pool_id: &str) -> Result<IpNet, BackendError> {
        if let Some(c) = self.cache().pool_cidrs.get(pool_id) {
            return Ok(*c);
        }
        let pool = self
            .client
            .subnetpool(pool_id)
            .await
            .map_err(|e| fail(format!("show subnet pool {pool_id}"), e))?;
        let cidr = first_prefix(&pool)?;
        self.cache().pool_cidrs.insert(pool_id.to_string(), cidr);
        Ok(cidr)
    }
}

fn first_prefix(pool: &SubnetPool) -> Result<IpNet, BackendError> {
    pool.prefixes
        .first()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            BackendError::Invalid(format!(
                "subnet pool {} ({}) has no prefix",
                pool.name, pool.id
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports_merge_into_ranges_per_protocol() {
        let p = |protocol, port| ExposedPort { protocol, port };
        assert_eq!(
            port_ranges(&[
                p(6, 8081),
                p(6, 8080),
                p(17, 53),
                p(6, 8082),
                p(6, 9000),
                p(6, 8080)
            ]),
            vec![(6, 8080, 8082), (6, 9000, 9000), (17, 53, 53)]
        );
        assert_eq!(
            port_ranges(&[p(6, 65535), p(6, 65534)]),
            vec![(6, 65534, 65535)]
        );
    }
}
