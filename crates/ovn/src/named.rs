//! Logical networks and endpoints by name, as `kuryr network` and `kuryr endpoint` manage them
//! (the `ovn-container net-*`/`endpoint-*` set). A CLI network is a Logical_Switch named by
//! the user carrying the mark `kuryr:net.cli-<uuid>`, so it is a network like any Docker one:
//! Docker networks attach to it with `-o kuryr.net.name=NAME`, share its pool (the
//! Address_Set of its CIDR) and its gateway, and the switch stays while either still uses it.
use crate::backend::endpoint_of;
use crate::error::{OvnError, Result};
use crate::ipam::PoolId;
use crate::keys;
use crate::{Attach, Endpoint, EndpointSpec, NetworkSpec, OvnBackend, PoolRequest, SubnetSpec};
use ipnet::IpNet;
use kuryr_ovsdb::datum::{self, Row};
use kuryr_ovsdb::txn;
use kuryr_ovsdb::Txn;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use uuid::Uuid;

const NB: &str = "OVN_Northbound";
const LS: &str = "Logical_Switch";
const LSP: &str = "Logical_Switch_Port";

/// How many leading characters of an endpoint name become its interface names
/// (`tap<name[:11]>`): two endpoints must differ in them.
const IFNAME_CHARS: usize = 11;

/// `kuryr network create NAME CIDR [--gateway IP] [--ipv6 CIDR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedNetworkSpec {
    pub name: String,
    pub ipv4: Option<(IpNet, Option<IpAddr>)>,
    pub ipv6: Option<(IpNet, Option<IpAddr>)>,
    /// The router its gateway is a port of (`--router`, `--internal`).
    pub router: crate::RouterChoice,
}

/// A Logical_Switch that kuryr knows (it carries at least one `kuryr:net.*` mark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalNetwork {
    pub name: String,
    pub uuid: Uuid,
    /// The network id of `kuryr network create`, when the CLI made it.
    pub cli_id: Option<String>,
    /// Docker networks using the switch (network id, host).
    pub docker_networks: Vec<(String, String)>,
    pub subnet_v4: Option<IpNet>,
    pub gateway_v4: Option<IpAddr>,
    pub subnet_v6: Option<IpNet>,
    pub gateway_v6: Option<IpAddr>,
    pub pool_v4: Option<String>,
    pub pool_v6: Option<String>,
    /// Names of the switch's ports.
    pub ports: Vec<String>,
}

impl LogicalNetwork {
    /// The network id endpoints of this switch are created under.
    pub fn network_id(&self) -> Option<&str> {
        self.cli_id
            .as_deref()
            .or_else(|| self.docker_networks.first().map(|(id, _)| id.as_str()))
    }
}

/// A kuryr-owned logical port and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub endpoint: Endpoint,
    /// The Logical_Switch holding the port.
    pub network: String,
    /// `docker:<id>` or `netns:<name>` when a network container holds it.
    pub container: Option<String>,
}

/// What `kuryr endpoint create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEndpoint {
    pub name: String,
    pub uuid: Uuid,
    pub network: String,
    pub mac: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
}

fn logical_network_of(ls: &Row) -> Option<LogicalNetwork> {
    let ext: BTreeMap<String, String> = ls.string_map("external_ids");
    let mut cli_id = None;
    let mut docker_networks = Vec::new();
    for (k, v) in &ext {
        if let Some(id) = k.strip_prefix(keys::NET_PREFIX) {
            if id.starts_with(keys::CLI_NETWORK_PREFIX) {
                cli_id = Some(id.to_string());
            } else {
                docker_networks.push((id.to_string(), v.clone()));
            }
        }
    }
    if cli_id.is_none() && docker_networks.is_empty() {
        return None;
    }
    let parse = |k: &str| ext.get(k).and_then(|v| v.parse().ok());
    Some(LogicalNetwork {
        name: ls.str("name").unwrap_or_default().to_string(),
        uuid: ls.uuid,
        cli_id,
        docker_networks,
        subnet_v4: parse(keys::SUBNET_V4),
        gateway_v4: ext.get(keys::GATEWAY_V4).and_then(|v| v.parse().ok()),
        subnet_v6: parse(keys::SUBNET_V6),
        gateway_v6: ext.get(keys::GATEWAY_V6).and_then(|v| v.parse().ok()),
        pool_v4: ext.get(keys::POOL_V4).cloned(),
        pool_v6: ext.get(keys::POOL_V6).cloned(),
        ports: Vec::new(),
    })
}

/// Names the binding turns into interface names: letters, digits, `_` and `-`.
pub fn validate_endpoint_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 {
        return Err(OvnError::Invalid(format!(
            "endpoint name {name:?} must have 1 to 64 characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(OvnError::Invalid(format!(
            "endpoint name {name:?} may only hold letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

fn validate_network_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(|c| c.is_control()) {
        return Err(OvnError::Invalid(format!(
            "network name {name:?} must have 1 to 200 printable characters"
        )));
    }
    Ok(())
}

fn pool_id(set: &str, cidr: IpNet) -> String {
    PoolId {
        set: set.to_string(),
        cidr,
        subpool: None,
    }
    .to_string()
}

impl OvnBackend {
    /// Every Logical_Switch kuryr knows, CLI and Docker networks alike, sorted by name.
    pub fn logical_networks(&self) -> Vec<LogicalNetwork> {
        let rep = self.client().replica();
        let mut out: Vec<LogicalNetwork> = rep
            .table(LS)
            .rows()
            .filter_map(|ls| {
                let mut n = logical_network_of(ls)?;
                n.ports = ls
                    .uuids("ports")
                    .iter()
                    .filter_map(|u| rep.table(LSP).get(u))
                    .filter(|p| !crate::routing::is_router_peer(p))
                    .filter_map(|p| p.str("name").map(str::to_string))
                    .collect();
                n.ports.sort();
                Some(n)
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A network by switch name or uuid.
    pub fn logical_network(&self, name: &str) -> Result<LogicalNetwork> {
        let all = self.logical_networks();
        let found: Vec<LogicalNetwork> = all
            .into_iter()
            .filter(|n| n.name == name || n.uuid.to_string() == name)
            .collect();
        match found.len() {
            1 => Ok(found.into_iter().next().unwrap_or_else(|| unreachable!())),
            0 => Err(OvnError::NotFound(format!(
                "no kuryr network is named {name:?}: see `kuryr network list`"
            ))),
            n => Err(OvnError::Conflict(format!(
                "{n} networks are named {name:?}: give its uuid (`kuryr network list`)"
            ))),
        }
    }

    /// `kuryr network create`: reserves the pools' gateways, then creates the switch; a
    /// failure part way releases what was reserved.
    pub async fn create_named_network(&self, spec: &NamedNetworkSpec) -> Result<LogicalNetwork> {
        validate_network_name(&spec.name)?;
        if spec.ipv4.is_none() && spec.ipv6.is_none() {
            return Err(OvnError::Invalid(format!(
                "network {}: give a subnet (CIDR)",
                spec.name
            )));
        }
        if !self
            .client()
            .replica()
            .table(LS)
            .by_name(&spec.name)
            .is_empty()
        {
            return Err(OvnError::Conflict(format!(
                "a logical switch named {:?} already exists: choose another name, or attach Docker networks to it with -o kuryr.net.name={}",
                spec.name, spec.name
            )));
        }
        let mut subnets: [Option<SubnetSpec>; 2] = [None, None];
        let mut granted = Vec::new();
        for (i, fam) in [spec.ipv4, spec.ipv6].iter().enumerate() {
            let Some((cidr, gw)) = fam else { continue };
            let v6 = i == 1;
            let res = async {
                let grant = self.request_pool(&PoolRequest {
                    pool: Some(*cidr),
                    subpool: None,
                    prefix_len: None,
                    v6,
                    name: None,
                })?;
                let gw = self
                    .request_address(&grant.pool_id, *gw, true, false)
                    .await?;
                Ok::<_, OvnError>((grant, gw))
            }
            .await;
            match res {
                Ok((grant, gw)) => {
                    subnets[i] = Some(SubnetSpec {
                        cidr: grant.cidr,
                        gateway: Some(gw.addr()),
                        pool_name: None,
                    });
                    granted.push(grant.pool_id);
                }
                Err(e) => {
                    self.release_pools(&granted).await;
                    return Err(e);
                }
            }
        }
        let [ipv4, ipv6] = subnets;
        let net = NetworkSpec {
            network_id: format!("{}{}", keys::CLI_NETWORK_PREFIX, Uuid::new_v4().simple()),
            ipv4,
            ipv6,
            attach: Some(Attach::ByName(spec.name.clone())),
            router: spec.router.clone(),
        };
        if let Err(e) = self.create_network(&net).await {
            self.release_pools(&granted).await;
            return Err(e);
        }
        self.logical_network(&spec.name)
    }

    async fn release_pools(&self, pool_ids: &[String]) {
        for p in pool_ids {
            if let Err(e) = self.release_pool(p).await {
                tracing::warn!(pool = %p, error = %e, "release a pool after a failed network create");
            }
        }
    }

    /// `kuryr network delete`: refuses while the switch has ports (delete the endpoints
    /// first); a switch Docker networks still use stays for them.
    pub async fn delete_named_network(&self, name: &str) -> Result<()> {
        let net = self.logical_network(name)?;
        let Some(id) = net.cli_id.clone() else {
            let ids: Vec<&str> = net
                .docker_networks
                .iter()
                .map(|(id, _)| &id[..id.len().min(12)])
                .collect();
            return Err(OvnError::Conflict(format!(
                "network {name} belongs to Docker network {}: remove it with `docker network rm`",
                ids.join(", ")
            )));
        };
        if !net.ports.is_empty() {
            return Err(OvnError::Conflict(format!(
                "network {name} still has {} endpoint(s) ({}): delete them with `kuryr endpoint delete`, or use --force",
                net.ports.len(),
                net.ports.join(", ")
            )));
        }
        self.delete_network(&id).await
    }

    /// kuryr's logical ports, all or those of one network (switch name or uuid), by name.
    pub fn ports(&self, network: Option<&str>) -> Result<Vec<PortInfo>> {
        let only = network.map(|n| self.logical_network(n)).transpose()?;
        let rep = self.client().replica();
        let mut switch_of: HashMap<Uuid, String> = HashMap::new();
        for ls in rep.table(LS).rows() {
            for u in ls.uuids("ports") {
                switch_of.insert(u, ls.str("name").unwrap_or_default().to_string());
            }
        }
        let mut out: Vec<PortInfo> = rep
            .table(LSP)
            .by_external_id(keys::OWNER, keys::OWNER_VALUE)
            .iter()
            .filter(|p| match &only {
                Some(n) => n
                    .ports
                    .iter()
                    .any(|name| Some(name.as_str()) == p.str("name")),
                None => true,
            })
            .filter_map(|p| {
                Some(PortInfo {
                    endpoint: endpoint_of(&rep, p)?,
                    network: switch_of.get(&p.uuid).cloned().unwrap_or_default(),
                    container: p.external_id(keys::CONTAINER).map(str::to_string),
                })
            })
            .collect();
        out.sort_by(|a, b| a.endpoint.port.cmp(&b.endpoint.port));
        Ok(out)
    }

    /// One of kuryr's logical ports by name.
    pub fn port(&self, name: &str) -> Result<PortInfo> {
        self.ports(None)?
            .into_iter()
            .find(|p| p.endpoint.port == name)
            .ok_or_else(|| {
                OvnError::NotFound(format!(
                    "no kuryr endpoint is named {name:?}: see `kuryr endpoint list`"
                ))
            })
    }

    /// `kuryr endpoint create`: addresses from the network's pools (`ip` reserved as given),
    /// then the logical port; a failure part way gives the addresses back.
    pub async fn create_named_endpoint(
        &self,
        network: &str,
        name: Option<&str>,
        ip: Option<IpAddr>,
        mac: Option<&str>,
    ) -> Result<NamedEndpoint> {
        let net = self.logical_network(network)?;
        let network_id = net.network_id().unwrap_or_default().to_string();
        let name = match name {
            Some(n) => n.to_string(),
            None => Uuid::new_v4().simple().to_string(),
        };
        validate_endpoint_name(&name)?;
        {
            let rep = self.client().replica();
            if !rep.table(LSP).by_name(&name).is_empty() {
                return Err(OvnError::Conflict(format!(
                    "a logical port named {name:?} already exists: choose another endpoint name"
                )));
            }
            let prefix = &name[..name.len().min(IFNAME_CHARS)];
            if let Some(other) = rep
                .table(LSP)
                .by_external_id(keys::OWNER, keys::OWNER_VALUE)
                .iter()
                .filter_map(|p| p.str("name").map(str::to_string))
                .find(|n| n[..n.len().min(IFNAME_CHARS)] == *prefix)
            {
                return Err(OvnError::Conflict(format!(
                    "endpoint name {name:?} starts with the same {IFNAME_CHARS} characters as endpoint {other:?}, and interface names are made of them: choose a name that differs earlier"
                )));
            }
        }
        if let Some(ip) = ip {
            let fits = match ip {
                IpAddr::V4(_) => net.subnet_v4.is_some_and(|s| s.contains(&ip)),
                IpAddr::V6(_) => net.subnet_v6.is_some_and(|s| s.contains(&ip)),
            };
            if !fits {
                return Err(OvnError::Invalid(format!(
                    "address {ip} is not inside a subnet of network {network} ({})",
                    [net.subnet_v4, net.subnet_v6]
                        .iter()
                        .flatten()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut reserved: Vec<(String, IpAddr)> = Vec::new();
        let mut addrs: [Option<IpNet>; 2] = [None, None];
        for (i, (subnet, pool)) in [
            (net.subnet_v4, net.pool_v4.as_deref()),
            (net.subnet_v6, net.pool_v6.as_deref()),
        ]
        .into_iter()
        .enumerate()
        {
            let (Some(cidr), Some(set)) = (subnet, pool) else {
                continue;
            };
            let pid = pool_id(set, cidr);
            let preferred = ip.filter(|a| a.is_ipv6() == (i == 1));
            match self.request_address(&pid, preferred, false, false).await {
                Ok(a) => {
                    reserved.push((pid, a.addr()));
                    addrs[i] = Some(a);
                }
                Err(e) => {
                    self.release_addresses(&reserved).await;
                    return Err(e);
                }
            }
        }
        let [ipv4, ipv6] = addrs;
        let spec = EndpointSpec {
            network_id,
            endpoint_id: name.clone(),
            ipv4,
            ipv6,
            mac: mac.map(str::to_string),
        };
        let ep = match self.create_endpoint(&spec).await {
            Ok(ep) => ep,
            Err(e) => {
                self.release_addresses(&reserved).await;
                return Err(e);
            }
        };
        let uuid = self
            .client()
            .replica()
            .table(LSP)
            .one_by_name(&name)
            .map(|r| r.uuid)
            .unwrap_or_default();
        Ok(NamedEndpoint {
            name,
            uuid,
            network: net.name,
            mac: ep.mac,
            ipv4: ep.ipv4,
            ipv6: ep.ipv6,
        })
    }

    async fn release_addresses(&self, reserved: &[(String, IpAddr)]) {
        for (pid, ip) in reserved {
            if let Err(e) = self.release_address(pid, *ip).await {
                tracing::warn!(pool = %pid, %ip, error = %e, "give an address back");
            }
        }
    }

    /// `kuryr endpoint delete` (Northbound side): the logical port, then its addresses.
    pub async fn delete_named_endpoint(&self, name: &str) -> Result<()> {
        let port = self.port(name)?;
        let net = self.logical_network(&port.network).ok();
        self.delete_endpoint(name).await?;
        if let Some(net) = net {
            let mut give_back = Vec::new();
            for (addr, subnet, pool) in [
                (port.endpoint.ipv4, net.subnet_v4, net.pool_v4.as_deref()),
                (port.endpoint.ipv6, net.subnet_v6, net.pool_v6.as_deref()),
            ] {
                if let (Some(a), Some(cidr), Some(set)) = (addr, subnet, pool) {
                    give_back.push((pool_id(set, cidr), a.addr()));
                }
            }
            for (pid, ip) in &give_back {
                self.release_address(pid, *ip).await?;
            }
        }
        Ok(())
    }

    /// Records (or, with `None`, clears) the network container holding an endpoint, and that
    /// this host now holds it.
    pub async fn set_port_container(&self, name: &str, container: Option<&str>) -> Result<()> {
        let host = self.settings().host.clone();
        self.write(&format!("mark endpoint {name} with its container"), |rep| {
            let p = rep.table(LSP).one_by_name(name).ok_or_else(|| {
                OvnError::NotFound(format!(
                    "no kuryr endpoint is named {name:?}: see `kuryr endpoint list`"
                ))
            })?;
            let mut t = Txn::new(NB);
            let drop = datum::set([json!(keys::CONTAINER), json!(keys::HOST)]);
            t.mutate(
                LSP,
                vec![txn::by_uuid(p.uuid)],
                vec![txn::mutate_delete("external_ids", drop)],
            );
            let mut add = vec![(keys::HOST, host.as_str())];
            if let Some(c) = container {
                add.push((keys::CONTAINER, c));
            }
            t.mutate(
                LSP,
                vec![txn::by_uuid(p.uuid)],
                vec![txn::mutate_insert("external_ids", datum::map(add))],
            );
            Ok(Some(t))
        })
        .await
        .map(|_| ())
    }
}
