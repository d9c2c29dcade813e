//! Routing in the OVN mode: every network's gateway is a port of a distributed
//! Logical_Router, isolation between the networks of one router is a Port_Group with ACLs per
//! network, and `--expose`d ports are ACLs of their endpoint.
//!
//! Egress leaves through the host the container runs on ("local gateway"): each router has a
//! port on the join switch (`kuryr-join`, 169.254.100.0/24) whose default route points at the
//! management port `kuryr-mgmt`, a `localport` that every host binds to an interface of its
//! own (169.254.100.254). A localport is present on every chassis at once, so the router (run
//! on the chassis of the sending container) always delivers to that chassis' host, whose kernel
//! source-NATs the traffic and publishes ports. See docs/architecture.md.
use crate::backend::{guard_column, short, OvnBackend, LS, LSP, NB};
use crate::error::{OvnError, Result};
use crate::{ipam, keys};
use ipnet::{IpNet, Ipv4Net};
use kuryr_core::{ExposedPort, HostRoute};
use kuryr_ovsdb::datum::{self, Row};
use kuryr_ovsdb::txn::{self, eq};
use kuryr_ovsdb::{Replica, Txn};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use uuid::Uuid;

pub(crate) const LR: &str = "Logical_Router";
pub(crate) const LRP: &str = "Logical_Router_Port";
pub(crate) const LRSR: &str = "Logical_Router_Static_Route";
pub(crate) const PG: &str = "Port_Group";
pub(crate) const ACL: &str = "ACL";

/// Priorities of kuryr's ACLs: exposed ports above the network's own traffic above the drop.
const PRIO_EXPOSE: i64 = 1002;
const PRIO_ALLOW: i64 = 1001;
const PRIO_DROP: i64 = 1000;

/// Which router a new network's gateway is a port of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterChoice {
    /// `kuryr-router`, shared by every network that names none.
    Default,
    /// `-o kuryr.router=NAME`.
    Named(String),
    /// `-o kuryr.router=none` or `--internal`: no gateway, no egress, no published ports.
    None,
}

impl RouterChoice {
    /// From the `kuryr.router` option and Docker's `--internal`.
    pub fn from_option(option: Option<&str>, internal: bool) -> Result<RouterChoice> {
        match (option, internal) {
            (_, true) | (Some(keys::NO_ROUTER), _) => Ok(RouterChoice::None),
            (None, false) => Ok(RouterChoice::Default),
            (Some(n), false) => {
                validate_router_name(n)?;
                Ok(RouterChoice::Named(n.to_string()))
            }
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            RouterChoice::Default => Some(keys::DEFAULT_ROUTER),
            RouterChoice::Named(n) => Some(n),
            RouterChoice::None => None,
        }
    }
}

/// Router names become port names: letters, digits, `.`, `_` and `-`, at most 48.
pub fn validate_router_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !ok || name == keys::NO_ROUTER {
        return Err(OvnError::Invalid(format!(
            "router name {name:?} must have 1 to 48 letters, digits, '.', '_' or '-' (and not be {:?}, which means no router)",
            keys::NO_ROUTER
        )));
    }
    Ok(())
}

fn join_ip(octet: u8) -> Ipv4Addr {
    let [a, b, c] = keys::JOIN_NET;
    Ipv4Addr::new(a, b, c, octet)
}

fn join_ip6(octet: u8) -> Ipv6Addr {
    let [a, b, c] = keys::JOIN_NET_V6;
    Ipv6Addr::new(a, b, c, 0, 0, 0, 0, u16::from(octet))
}

/// The address every host's management interface has on the join network.
pub fn mgmt_ip() -> Ipv4Addr {
    join_ip(keys::MGMT_HOST_OCTET)
}

/// The same in IPv6.
pub fn mgmt_ip6() -> Ipv6Addr {
    join_ip6(keys::MGMT_HOST_OCTET)
}

/// A router's IPv6 join address, from its IPv4 one (the same last number).
fn router_ip6(v4: Ipv4Addr) -> Ipv6Addr {
    join_ip6(v4.octets()[3])
}

/// The join network, 169.254.100.0/24.
pub fn join_net() -> Ipv4Net {
    Ipv4Net::new(join_ip(0), keys::JOIN_PREFIX).unwrap_or_else(|_| unreachable!())
}

/// A router as `kuryr router list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInfo {
    pub name: String,
    pub uuid: Uuid,
    pub join_ip: Option<Ipv4Addr>,
    /// Attached switches by name, with their subnets.
    pub networks: Vec<(String, Vec<IpNet>)>,
    pub owned: bool,
}

fn subnets_of(ls: &Row) -> Vec<IpNet> {
    [keys::SUBNET_V4, keys::SUBNET_V6]
        .iter()
        .filter_map(|k| ls.external_id(k)?.parse().ok())
        .collect()
}

fn is_kuryr(row: &Row) -> bool {
    row.external_id(keys::OWNER) == Some(keys::OWNER_VALUE)
}

fn owner() -> Value {
    datum::map([(keys::OWNER, keys::OWNER_VALUE)])
}

fn acl(t: &mut Txn, named: &str, prio: i64, m: String, action: &str, ext: Value) {
    t.insert(
        ACL,
        json!({"direction": "to-lport", "priority": prio, "match": m, "action": action, "external_ids": ext}),
        Some(named),
    );
}

/// The ACLs that keep a network to itself: its own endpoints, the host (the management
/// address) and IPv6 neighbour discovery reach it; nothing else starts a connection to it.
/// Replies to what the endpoints started pass through connection tracking.
fn isolation_acls(t: &mut Txn, pg: &str) -> Vec<Value> {
    let out = format!("outport == @{pg}");
    let rules = [
        (
            PRIO_ALLOW,
            format!("{out} && ip4.src == ${pg}_ip4"),
            "allow-related",
        ),
        (
            PRIO_ALLOW,
            format!("{out} && ip6.src == ${pg}_ip6"),
            "allow-related",
        ),
        (
            PRIO_ALLOW,
            format!("{out} && ip4.src == {}", mgmt_ip()),
            "allow-related",
        ),
        (
            PRIO_ALLOW,
            format!("{out} && ip6.src == {}", mgmt_ip6()),
            "allow-related",
        ),
        (
            PRIO_ALLOW,
            format!("{out} && ip6.src == fe80::/10"),
            "allow-related",
        ),
        (PRIO_DROP, format!("{out} && ip"), "drop"),
    ];
    let mut refs = Vec::new();
    for (i, (prio, m, action)) in rules.into_iter().enumerate() {
        let named = format!("acl{i}");
        acl(t, &named, prio, m, action, owner());
        refs.push(datum::named_uuid(&named));
    }
    refs
}

fn expose_match(port: &str, p: &ExposedPort) -> Option<String> {
    let l4 = match p.protocol {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => return None,
    };
    Some(format!(
        "outport == \"{port}\" && {l4} && {l4}.dst == {}",
        p.port
    ))
}

impl OvnBackend {
    /// Makes a network's gateway a port of `router` (created, with the join switch and the
    /// management port, when it is the first), and its endpoints a Port_Group isolated by ACLs.
    /// Idempotent; refuses a subnet that overlaps another network of the router.
    pub(crate) async fn attach_router(&self, network_id: &str, router: &str) -> Result<()> {
        let key = keys::net_key(network_id);
        let what = format!("attach network {} to router {router}", short(network_id));
        self.write(&what, |rep| attach_txn(rep, &key, router))
            .await?;
        Ok(())
    }

    /// What a host needs to carry a network's traffic in and out: each of its subnets via
    /// the router's address of that family on the join network; none without a router.
    pub fn host_routes_of(&self, network_id: &str) -> Vec<HostRoute> {
        let rep = self.client().replica();
        let Some(ls) = rep
            .table(LS)
            .by_external_key(&keys::net_key(network_id))
            .into_iter()
            .next()
        else {
            return Vec::new();
        };
        let via: Option<Ipv4Addr> = ls.external_id(keys::ROUTER).and_then(|router| {
            let lr = rep
                .table(LR)
                .by_name(router)
                .into_iter()
                .find(|r| is_kuryr(r))?;
            lr.external_id(keys::JOIN_IP)?.parse().ok()
        });
        let Some(via) = via else {
            return Vec::new();
        };
        subnets_of(&ls)
            .into_iter()
            .map(|subnet| HostRoute {
                subnet,
                via: match subnet {
                    IpNet::V4(_) => IpAddr::V4(via),
                    IpNet::V6(_) => IpAddr::V6(router_ip6(via)),
                },
            })
            .collect()
    }

    /// `--expose` and published ports: lets anyone reach exactly these ports of the endpoint.
    /// Replaces what was opened before; a network without a router has nothing to open.
    pub async fn expose_ports(&self, endpoint_id: &str, ports: &[ExposedPort]) -> Result<()> {
        let what = format!("open exposed ports of endpoint {}", short(endpoint_id));
        self.write(&what, |rep| {
            let Some(p) = rep.table(LSP).one_by_name(endpoint_id) else {
                return Err(OvnError::NotFound(format!(
                    "endpoint {} has no logical port: was it created on this host?",
                    short(endpoint_id)
                )));
            };
            let Some(pg) = port_group_of_port(rep, &p) else {
                return Ok(None);
            };
            let mut t = Txn::new(NB);
            let old = endpoint_acls(rep, &pg, endpoint_id);
            let mut new = Vec::new();
            for (i, port) in ports.iter().enumerate() {
                let Some(m) = expose_match(endpoint_id, port) else {
                    continue;
                };
                let named = format!("x{i}");
                let ext = datum::map([
                    (keys::OWNER, keys::OWNER_VALUE),
                    (keys::ENDPOINT_ID, endpoint_id),
                ]);
                acl(&mut t, &named, PRIO_EXPOSE, m, "allow-related", ext);
                new.push(datum::named_uuid(&named));
            }
            if old.is_empty() && new.is_empty() {
                return Ok(None);
            }
            drop_acls(&mut t, &pg, old);
            if !new.is_empty() {
                t.mutate(
                    PG,
                    vec![txn::by_uuid(pg.uuid)],
                    vec![txn::mutate_insert("acls", datum::set(new))],
                );
            }
            Ok(Some(t))
        })
        .await?;
        Ok(())
    }

    /// Closes what [`OvnBackend::expose_ports`] opened; idempotent.
    pub async fn unexpose_ports(&self, endpoint_id: &str) -> Result<()> {
        let what = format!("close exposed ports of endpoint {}", short(endpoint_id));
        self.write(&what, |rep| {
            let Some(p) = rep.table(LSP).one_by_name(endpoint_id) else {
                return Ok(None);
            };
            let Some(pg) = port_group_of_port(rep, &p) else {
                return Ok(None);
            };
            let old = endpoint_acls(rep, &pg, endpoint_id);
            if old.is_empty() {
                return Ok(None);
            }
            let mut t = Txn::new(NB);
            drop_acls(&mut t, &pg, old);
            Ok(Some(t))
        })
        .await?;
        Ok(())
    }

    /// Routers in Northbound: kuryr's and any other, with the kuryr networks attached.
    pub fn routers(&self) -> Vec<RouterInfo> {
        let rep = self.client().replica();
        let mut out: Vec<RouterInfo> = rep
            .table(LR)
            .rows()
            .map(|lr| {
                let name = lr.str("name").unwrap_or_default().to_string();
                let mut networks: Vec<(String, Vec<IpNet>)> = rep
                    .table(LS)
                    .by_external_id(keys::ROUTER, &name)
                    .iter()
                    .map(|ls| {
                        (
                            ls.str("name").unwrap_or_default().to_string(),
                            subnets_of(ls),
                        )
                    })
                    .collect();
                networks.sort();
                RouterInfo {
                    uuid: lr.uuid,
                    join_ip: lr.external_id(keys::JOIN_IP).and_then(|s| s.parse().ok()),
                    owned: is_kuryr(lr),
                    networks,
                    name,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `kuryr router create`: a router networks attach to with `-o kuryr.router=NAME`.
    pub async fn create_router(&self, name: &str) -> Result<RouterInfo> {
        validate_router_name(name)?;
        if !self.client().replica().table(LR).by_name(name).is_empty() {
            return Err(OvnError::Conflict(format!(
                "a logical router named {name:?} already exists: see `kuryr router list`"
            )));
        }
        self.ensure_router(name).await?;
        self.routers()
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| {
                OvnError::NotFound(format!("router {name} vanished right after it was created"))
            })
    }

    /// Creates the router (with the join switch) unless it exists; the daemon makes the
    /// default one at start, so it is there before the first network.
    pub async fn ensure_router(&self, name: &str) -> Result<()> {
        validate_router_name(name)?;
        self.write(&format!("create router {name}"), |rep| {
            let mut t = Txn::new(NB);
            let mut join_ports = Vec::new();
            if ensure_router(rep, &mut t, name, &mut join_ports, vec![])?.is_some() {
                return Ok(None);
            }
            finish_join(rep, &mut t, join_ports);
            Ok(Some(t))
        })
        .await?;
        Ok(())
    }

    /// `kuryr router delete`: refuses while networks are attached.
    pub async fn delete_router(&self, name: &str) -> Result<()> {
        self.write(&format!("delete router {name}"), |rep| {
            let routers = rep.table(LR).by_name(name);
            let Some(lr) = routers.into_iter().next() else {
                return Err(OvnError::NotFound(format!(
                    "no router is named {name:?}: see `kuryr router list`"
                )));
            };
            if !is_kuryr(&lr) {
                return Err(OvnError::Conflict(format!(
                    "router {name} was not created by kuryr; leaving it"
                )));
            }
            let attached: Vec<String> = rep
                .table(LS)
                .by_external_id(keys::ROUTER, name)
                .iter()
                .map(|ls| ls.str("name").unwrap_or_default().to_string())
                .collect();
            if !attached.is_empty() {
                return Err(OvnError::Conflict(format!(
                    "router {name} is the gateway of network(s) {}: remove them first",
                    attached.join(", ")
                )));
            }
            let mut t = Txn::new(NB);
            guard_column(&mut t, LR, &lr, "ports");
            t.delete(LR, vec![txn::by_uuid(lr.uuid)]);
            if let Some(peer) = rep.table(LSP).one_by_name(&keys::join_lsp_name(name)) {
                t.mutate(
                    LS,
                    vec![txn::includes("ports", datum::uuid(peer.uuid))],
                    vec![txn::mutate_delete(
                        "ports",
                        datum::set([datum::uuid(peer.uuid)]),
                    )],
                );
            }
            Ok(Some(t))
        })
        .await?;
        Ok(())
    }
}

/// The Port_Group of the switch that holds the port.
fn port_group_of_port(rep: &Replica, p: &Row) -> Option<Arc<Row>> {
    // Through the network's mark (an index), not a scan of every switch's ports.
    let network = p.external_id(keys::NETWORK_ID)?;
    let ls = rep
        .table(LS)
        .by_external_key(&keys::net_key(network))
        .into_iter()
        .next()?;
    let pg = ls.external_id(keys::PORT_GROUP)?;
    rep.table(PG).one_by_name(pg)
}

/// Takes ACLs off a port group (they go with it: an ACL is not a root row).
fn drop_acls(t: &mut Txn, pg: &Row, acls: Vec<Uuid>) {
    if acls.is_empty() {
        return;
    }
    t.mutate(
        PG,
        vec![txn::by_uuid(pg.uuid)],
        vec![txn::mutate_delete(
            "acls",
            datum::set(acls.into_iter().map(datum::uuid)),
        )],
    );
}

fn endpoint_acls(rep: &Replica, pg: &Row, endpoint_id: &str) -> Vec<Uuid> {
    pg.uuids("acls")
        .into_iter()
        .filter(|u| {
            rep.table(ACL)
                .get(u)
                .is_some_and(|a| a.external_id(keys::ENDPOINT_ID) == Some(endpoint_id))
        })
        .collect()
}

/// Returns the router when it exists; otherwise adds its creation to `t`, with `ports` as its
/// first ports besides the one on the join switch, and returns `None`. Ports for the join
/// switch are collected in `join_ports` (see [`finish_join`]).
fn ensure_router(
    rep: &Replica,
    t: &mut Txn,
    name: &str,
    join_ports: &mut Vec<Value>,
    ports: Vec<Value>,
) -> Result<Option<Arc<Row>>> {
    let found = rep.table(LR).by_name(name);
    if let Some(lr) = found.into_iter().next() {
        if !is_kuryr(&lr) || lr.external_id(keys::JOIN_IP).is_none() {
            return Err(OvnError::Conflict(format!(
                "logical router {name} was not created by kuryr: name another router, or create one with `kuryr router create`"
            )));
        }
        return Ok(Some(lr));
    }
    let used: Vec<Ipv4Addr> = rep
        .table(LR)
        .rows()
        .filter_map(|r| r.external_id(keys::JOIN_IP)?.parse().ok())
        .collect();
    let ip = (1..keys::MGMT_HOST_OCTET)
        .map(join_ip)
        .find(|ip| !used.contains(ip))
        .ok_or_else(|| {
            OvnError::Exhausted(format!(
                "the join network {} has no address left for router {name}: delete unused routers (`kuryr router list`)",
                join_net()
            ))
        })?;
    let lrp = keys::join_lrp_name(name);
    t.wait_absent(LR, vec![eq("name", name)]);
    t.insert(
        LRP,
        json!({"name": lrp, "mac": ipam::mac_from_ip(Some(ip), None).unwrap_or_else(ipam::random_mac),
               "networks": datum::set(join_networks(ip).into_iter().map(|n| json!(n))), "external_ids": owner()}),
        Some("joinlrp"),
    );
    default_routes(t, "defroute");
    t.insert(
        LR,
        json!({"name": name, "ports": datum::set(std::iter::once(datum::named_uuid("joinlrp")).chain(ports)),
               "static_routes": datum::set([datum::named_uuid("defroute4"), datum::named_uuid("defroute6")]),
               "external_ids": datum::map([(keys::OWNER, keys::OWNER_VALUE), (keys::JOIN_IP, &ip.to_string())])}),
        Some("router"),
    );
    t.insert(
        LSP,
        json!({"name": keys::join_lsp_name(name), "type": "router", "addresses": "router",
               "options": datum::map([("router-port", lrp.as_str())]), "external_ids": owner()}),
        Some("joinpeer"),
    );
    join_ports.push(datum::named_uuid("joinpeer"));
    Ok(None)
}

/// Puts the collected ports on the join switch, creating it (with the management localport)
/// when it does not exist yet.
fn finish_join(rep: &Replica, t: &mut Txn, mut ports: Vec<Value>) {
    if ports.is_empty() {
        return;
    }
    match rep.table(LS).one_by_name(keys::JOIN_SWITCH) {
        Some(join) => {
            guard_column(t, LS, &join, "ports");
            t.mutate(
                LS,
                vec![txn::by_uuid(join.uuid)],
                vec![txn::mutate_insert("ports", datum::set(ports))],
            );
        }
        None => {
            t.insert(
                LSP,
                json!({"name": keys::MGMT_PORT, "type": "localport",
                       "addresses": mgmt_addresses(), "external_ids": owner()}),
                Some("mgmt"),
            );
            ports.push(datum::named_uuid("mgmt"));
            t.wait_absent(LS, vec![eq("name", keys::JOIN_SWITCH)]);
            t.insert(
                LS,
                json!({"name": keys::JOIN_SWITCH, "ports": datum::set(ports), "external_ids": owner()}),
                None,
            );
        }
    }
}

/// A router's addresses on the join network.
fn join_networks(ip: Ipv4Addr) -> Vec<String> {
    vec![
        format!("{ip}/{}", keys::JOIN_PREFIX),
        format!("{}/{}", router_ip6(ip), keys::JOIN_PREFIX_V6),
    ]
}

fn mgmt_addresses() -> String {
    format!("{} {} {}", keys::MGMT_MAC, mgmt_ip(), mgmt_ip6())
}

/// Inserts a router's default routes (named `NAMED4`, `NAMED6`) towards the management port.
fn default_routes(t: &mut Txn, named: &str) {
    for (suffix, prefix, hop) in [
        ("4", "0.0.0.0/0", IpAddr::V4(mgmt_ip())),
        ("6", "::/0", IpAddr::V6(mgmt_ip6())),
    ] {
        t.insert(
            LRSR,
            json!({"ip_prefix": prefix, "nexthop": hop.to_string(), "external_ids": owner()}),
            Some(&format!("{named}{suffix}")),
        );
    }
}

fn attach_txn(rep: &Replica, key: &str, router: &str) -> Result<Option<Txn>> {
    let ls = rep
        .table(LS)
        .by_external_key(key)
        .into_iter()
        .next()
        .ok_or_else(|| OvnError::NotFound(format!("no logical switch is marked {key}")))?;
    let switch = ls.str("name").unwrap_or_default().to_string();
    if let Some(r) = ls.external_id(keys::ROUTER) {
        if r == router {
            return Ok(None);
        }
        return Err(OvnError::Conflict(format!(
            "network {switch} is attached to router {r} already: use -o kuryr.router={r}"
        )));
    }
    let gw = |s: &str, g: &str| -> Option<String> {
        let sub: IpNet = ls.external_id(s)?.parse().ok()?;
        let gw: IpAddr = ls.external_id(g)?.parse().ok()?;
        Some(format!("{gw}/{}", sub.prefix_len()))
    };
    let networks: Vec<String> = [
        gw(keys::SUBNET_V4, keys::GATEWAY_V4),
        gw(keys::SUBNET_V6, keys::GATEWAY_V6),
    ]
    .into_iter()
    .flatten()
    .collect();
    if networks.is_empty() {
        // No gateway address: nothing can route for this network.
        return Ok(None);
    }
    let mine = subnets_of(&ls);
    for other in rep.table(LS).by_external_id(keys::ROUTER, router) {
        if other.uuid == ls.uuid {
            continue;
        }
        for a in &mine {
            if let Some(b) = subnets_of(&other)
                .iter()
                .find(|b| kuryr_core::subnets::overlaps(a, b))
            {
                return Err(OvnError::Conflict(format!(
                    "subnet {a} overlaps {b} of network {} on router {router}: networks of one router need distinct subnets; give this one its own router with -o kuryr.router=NAME, or none with -o kuryr.router=none",
                    other.str("name").unwrap_or("?")
                )));
            }
        }
    }
    if router != keys::DEFAULT_ROUTER && rep.table(LR).by_name(router).is_empty() {
        return Err(OvnError::NotFound(format!(
            "no router is named {router:?}: create it with `kuryr router create {router}`"
        )));
    }
    let mut t = Txn::new(NB);
    // The gateway port; its MAC derives from the gateway address like an endpoint's.
    let v4 = ls
        .external_id(keys::GATEWAY_V4)
        .and_then(|g| g.parse().ok());
    let v6 = ls
        .external_id(keys::GATEWAY_V6)
        .and_then(|g| g.parse().ok());
    let lrp = keys::gateway_lrp_name(ls.uuid);
    t.insert(
        LRP,
        json!({"name": lrp, "mac": ipam::mac_from_ip(v4, v6).unwrap_or_else(ipam::random_mac),
               "networks": datum::set(networks.iter().map(|n| json!(n))), "external_ids": owner()}),
        Some("gwlrp"),
    );
    let mut join_ports = Vec::new();
    let gw_port = vec![datum::named_uuid("gwlrp")];
    if let Some(lr) = ensure_router(rep, &mut t, router, &mut join_ports, gw_port.clone())? {
        // Guarded, so two networks attaching at once see each other's subnets.
        guard_column(&mut t, LR, &lr, "ports");
        t.mutate(
            LR,
            vec![txn::by_uuid(lr.uuid)],
            vec![txn::mutate_insert("ports", datum::set(gw_port))],
        );
    }
    finish_join(rep, &mut t, join_ports);
    t.insert(
        LSP,
        json!({"name": keys::gateway_lsp_name(ls.uuid), "type": "router", "addresses": "router",
               "options": datum::map([("router-port", lrp.as_str())]), "external_ids": owner()}),
        Some("gwlsp"),
    );
    // The network's endpoints (already there when a Docker network attaches to a switch made
    // with `kuryr network create`) join the port group.
    let members: Vec<Value> = ls
        .uuids("ports")
        .into_iter()
        .filter(|u| {
            rep.table(LSP)
                .get(u)
                .is_some_and(|p| p.external_id(keys::ENDPOINT_ID).is_some())
        })
        .map(datum::uuid)
        .collect();
    let pg = keys::port_group_name(ls.uuid);
    let acls = isolation_acls(&mut t, &pg);
    t.insert(
        PG,
        json!({"name": pg, "ports": datum::set(members), "acls": datum::set(acls), "external_ids": owner()}),
        None,
    );
    guard_column(&mut t, LS, &ls, "ports");
    guard_column(&mut t, LS, &ls, "external_ids");
    t.mutate(
        LS,
        vec![txn::by_uuid(ls.uuid)],
        vec![
            txn::mutate_insert("ports", datum::set([datum::named_uuid("gwlsp")])),
            txn::mutate_insert(
                "external_ids",
                datum::map([(keys::ROUTER, router), (keys::PORT_GROUP, pg.as_str())]),
            ),
        ],
    );
    Ok(Some(t))
}

/// Whether a switch port is the peer kuryr made for a router port.
pub(crate) fn is_router_peer(p: &Row) -> bool {
    is_kuryr(p) && p.str("type") == Some("router")
}

/// Adds to `t` the removal of a network's gateway port and port group (its router stays for
/// other networks). The switch's peer port is the caller's to remove with the switch's ports.
pub(crate) fn detach_ops(rep: &Replica, t: &mut Txn, ls: &Row) {
    if ls.external_id(keys::ROUTER).is_none() {
        return;
    }
    if let Some(lrp) = rep.table(LRP).one_by_name(&keys::gateway_lrp_name(ls.uuid)) {
        t.mutate(
            LR,
            vec![txn::includes("ports", datum::uuid(lrp.uuid))],
            vec![txn::mutate_delete(
                "ports",
                datum::set([datum::uuid(lrp.uuid)]),
            )],
        );
    }
    if let Some(pg) = ls.external_id(keys::PORT_GROUP) {
        t.delete(PG, vec![eq("name", pg)]);
    }
}

/// Adds the new endpoint port (`named`, inserted in `t`) to its network's port group.
pub(crate) fn join_port_group(rep: &Replica, t: &mut Txn, ls: &Row, named: &str) {
    let Some(pg) = ls.external_id(keys::PORT_GROUP) else {
        return;
    };
    if rep.table(PG).one_by_name(pg).is_some() {
        t.mutate(
            PG,
            vec![eq("name", pg)],
            vec![txn::mutate_insert(
                "ports",
                datum::set([datum::named_uuid(named)]),
            )],
        );
    }
}
