//! The OVN backend: Docker networks as Logical_Switches, endpoints as Logical_Switch_Ports,
//! and IPAM pools as Address_Sets, all in Northbound so every kuryr on every host sees the same
//! state and a kuryr that dies loses nothing.
//!
//! Every write is one transaction built from the replica with `wait` guards, so it is safe to
//! retry and safe against other hosts writing at the same time.
use crate::error::{OvnError, Result};
use crate::ipam::{self, PoolId};
use crate::keys;
use crate::reservations::Reservations;
use crate::routing::{self, RouterChoice};
use ipnet::IpNet;
use kuryr_ovsdb::datum::{self, Row};
use kuryr_ovsdb::txn::{self, eq};
use kuryr_ovsdb::{Client, Replica, Txn, TxnReply};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) const NB: &str = "OVN_Northbound";
pub(crate) const LS: &str = "Logical_Switch";
pub(crate) const LSP: &str = "Logical_Switch_Port";
pub(crate) const AS: &str = "Address_Set";

/// The Northbound tables the backend keeps in its replica.
pub const TABLES: &[&str] = &[
    LS,
    LSP,
    AS,
    routing::LR,
    routing::LRP,
    routing::LRSR,
    routing::PG,
    routing::ACL,
];

#[derive(Debug, Clone)]
pub struct OvnSettings {
    /// This host's name in Northbound marks (the chassis name).
    pub host: String,
    /// Where pools come from when `docker network create` gives no `--subnet`.
    pub default_pool_v4: IpNet,
    pub default_prefix_v4: u8,
    pub default_pool_v6: IpNet,
    pub default_prefix_v6: u8,
    /// How long a write may wait for Northbound (a Raft leader change takes about 3 s).
    pub write_timeout: Duration,
    /// Inside a VM: the VM's own port, the parent of every container port made here.
    pub parent_port: Option<String>,
    /// Inside a VM: at most this many container ports (VLAN tags 1-4094).
    pub nested_port_limit: u16,
    /// Inside a VM with the macvlan driver: the VM's own port, which carries the containers'
    /// addresses (see `macvlan.rs`).
    pub macvlan_parent: Option<String>,
    /// Where the addresses reserved and not yet settled by Docker are written (see
    /// `reservations.rs`); none: only this run's unknown outcomes are reclaimed.
    pub reservation_journal: Option<std::path::PathBuf>,
}

impl OvnSettings {
    pub fn new(host: &str) -> OvnSettings {
        OvnSettings {
            host: host.to_string(),
            default_pool_v4: "10.200.0.0/16".parse().unwrap_or_else(|_| unreachable!()),
            default_prefix_v4: 24,
            default_pool_v6: "fd6b:7572:7972::/48"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            default_prefix_v6: 64,
            write_timeout: Duration::from_secs(10),
            parent_port: None,
            nested_port_limit: 4094,
            macvlan_parent: None,
            reservation_journal: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PoolRequest {
    /// `--subnet`, or none for a default pool.
    pub pool: Option<IpNet>,
    /// `--ip-range`.
    pub subpool: Option<IpNet>,
    /// With no `pool`: the length of the default-pool subnet to choose.
    pub prefix_len: Option<u8>,
    pub v6: bool,
    /// `kuryr.pool.name`: pools of the same name are one pool, so two networks may share a CIDR.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGrant {
    pub pool_id: String,
    pub cidr: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    pub cidr: IpNet,
    pub gateway: Option<IpAddr>,
    /// `kuryr.pool.name` of this family's pool, if given.
    pub pool_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    ByName(String),
    ByUuid(Uuid),
}

#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub network_id: String,
    pub ipv4: Option<SubnetSpec>,
    pub ipv6: Option<SubnetSpec>,
    pub attach: Option<Attach>,
    /// The router the network's gateway is a port of.
    pub router: RouterChoice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub network_id: String,
    pub switch: String,
    pub switch_uuid: Uuid,
    pub subnet_v4: Option<IpNet>,
    pub gateway_v4: Option<IpAddr>,
    pub subnet_v6: Option<IpNet>,
    pub gateway_v6: Option<IpAddr>,
}

/// An endpoint to create: the same request whichever backend serves it.
pub use kuryr_core::EndpointSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub network_id: String,
    /// The Logical_Switch_Port name, which the host binds as `iface-id`.
    pub port: String,
    pub mac: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub gateway_v4: Option<IpAddr>,
    pub gateway_v6: Option<IpAddr>,
    pub host: Option<String>,
    /// Inside a VM: the VLAN tag ovn-northd gave the port.
    pub vlan: Option<u16>,
}

pub struct OvnBackend {
    nb: Client,
    settings: OvnSettings,
    /// Addresses this process is allocating right now, per pool, so parallel requests pick
    /// different addresses instead of colliding on the wait guard.
    pending: Mutex<HashMap<String, HashSet<IpAddr>>>,
    /// Default pools handed out recently: Docker asks again without releasing when it rejects one.
    offered: Mutex<Vec<(IpNet, Instant)>>,
    /// Where the next address search starts, per pool.
    cursors: Mutex<HashMap<String, IpAddr>>,
    /// Pools this process got Swarm-manager (serial) requests for: a release does not rewind.
    serial_pools: Mutex<HashSet<String>>,
    /// Addresses reserved for Docker and not settled yet, and those no one will settle.
    reservations: Reservations,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn short(id: &str) -> &str {
    id.get(..id.len().min(12)).unwrap_or(id)
}

/// A `wait` that fails the transaction if `column` of row `uuid` changed since it was read.
pub(crate) fn guard_column(t: &mut Txn, table: &str, row: &Row, column: &str) {
    let current = row.get(column).cloned().unwrap_or_else(datum::empty_set);
    t.wait(
        table,
        vec![txn::by_uuid(row.uuid)],
        &[column],
        true,
        vec![json!({ column: current })],
        0,
    );
}

/// A `wait` that fails the transaction if `ip` is already in the Address_Set.
fn guard_ip_free(t: &mut Txn, set: Uuid, ip: IpAddr) {
    t.wait(
        AS,
        vec![
            txn::by_uuid(set),
            txn::includes("addresses", ip.to_string()),
        ],
        &["_uuid"],
        true,
        vec![],
        0,
    );
}

/// Whether the Address_Set row holds `ip` (a hash lookup in the replica's index of large sets).
fn set_contains(rep: &Replica, row: &Row, ip: &IpAddr) -> bool {
    rep.table(AS)
        .set_contains(&row.uuid, "addresses", &json!(ip.to_string()))
}

fn parse_ips(row: &Row) -> HashSet<IpAddr> {
    row.strings("addresses")
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The endpoint's MAC: the one Docker asked for (`Err` with it when `in_use` says it is taken),
/// else one derived from its address, else a random one, never one `in_use`.
pub(crate) fn choose_mac(
    spec: &EndpointSpec,
    in_use: impl Fn(&str) -> bool,
) -> std::result::Result<String, String> {
    if let Some(m) = &spec.mac {
        let m = m.to_lowercase();
        return if in_use(&m) { Err(m) } else { Ok(m) };
    }
    let v4 = spec.ipv4.and_then(|n| match n.addr() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    });
    let v6 = spec.ipv6.and_then(|n| match n.addr() {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    });
    let mut m = ipam::mac_from_ip(v4, v6).unwrap_or_else(ipam::random_mac);
    while in_use(&m) {
        m = ipam::random_mac();
    }
    Ok(m)
}

/// An `addresses` entry: the MAC, then the endpoint's addresses.
pub(crate) fn address_entry(mac: &str, spec: &EndpointSpec) -> String {
    let mut entry = mac.to_string();
    for ip in [spec.ipv4, spec.ipv6].into_iter().flatten() {
        entry.push(' ');
        entry.push_str(&ip.addr().to_string());
    }
    entry
}

fn with_prefix(ip: IpAddr, cidr: &IpNet) -> IpNet {
    IpNet::new(ip, cidr.prefix_len()).unwrap_or_else(|_| IpNet::from(ip))
}

impl OvnBackend {
    /// Wraps a Northbound client whose replica holds [`TABLES`].
    pub fn new(nb: Client, settings: OvnSettings) -> OvnBackend {
        OvnBackend {
            nb,
            pending: Mutex::new(HashMap::new()),
            offered: Mutex::new(Vec::new()),
            cursors: Mutex::new(HashMap::new()),
            serial_pools: Mutex::new(HashSet::new()),
            reservations: Reservations::open(settings.reservation_journal.clone()),
            settings,
        }
    }

    pub fn client(&self) -> &Client {
        &self.nb
    }

    pub fn settings(&self) -> &OvnSettings {
        &self.settings
    }

    pub(crate) fn reservations(&self) -> &Reservations {
        &self.reservations
    }

    /// Fails at once, with the reason, when Northbound is unreachable.
    fn check_connected(&self, what: &str) -> Result<()> {
        let state = self.nb.state();
        if state.connected {
            return Ok(());
        }
        Err(OvnError::Db {
            context: what.to_string(),
            source: Box::new(kuryr_ovsdb::Error::NotConnected {
                database: NB.into(),
                remotes: self
                    .nb
                    .config()
                    .remotes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                last_error: state.last_error,
            }),
        })
    }

    pub(crate) async fn write<F>(&self, what: &str, mut build: F) -> Result<Option<TxnReply>>
    where
        F: FnMut(&Replica) -> Result<Option<Txn>>,
    {
        self.check_connected(what)?;
        let mut user_err = None;
        let res = self
            .nb
            .transact_with(self.settings.write_timeout, |rep| match build(rep) {
                Ok(t) => Ok(t),
                Err(e) => {
                    user_err = Some(e);
                    Ok(None)
                }
            })
            .await;
        if let Some(e) = user_err {
            return Err(e);
        }
        res.map_err(OvnError::db(what))
    }

    // ---- IPAM -------------------------------------------------------------------------------

    /// RequestPool: validates the request and names the pool; the Address_Set is created on
    /// the first address request, so a pool Docker asks for and drops leaves nothing behind.
    pub fn request_pool(&self, req: &PoolRequest) -> Result<PoolGrant> {
        let cidr = match req.pool {
            Some(p) => {
                if p.addr().is_ipv6() != req.v6 {
                    let fam = if req.v6 { "IPv6" } else { "IPv4" };
                    return Err(OvnError::Invalid(format!(
                        "subnet {p} is not an {fam} subnet"
                    )));
                }
                p.trunc()
            }
            None => self.pick_default_pool(req.v6, req.prefix_len)?,
        };
        if let Some(sub) = &req.subpool {
            if sub.addr().is_ipv6() != cidr.addr().is_ipv6() || !cidr.contains(sub) {
                return Err(OvnError::Invalid(format!(
                    "ip-range {sub} is not inside subnet {cidr}"
                )));
            }
        }
        if let Some(name) = &req.name {
            if name.is_empty() || name.len() > 200 {
                return Err(OvnError::Invalid(format!(
                    "pool name {name:?} must have 1 to 200 characters"
                )));
            }
        }
        let set = ipam::pool_set_name(req.name.as_deref(), &cidr);
        if let Some(row) = self.nb.replica().table(AS).one_by_name(&set) {
            let existing = row.external_id(keys::POOL_CIDR).unwrap_or("?");
            if existing != cidr.to_string() {
                return Err(OvnError::Conflict(format!(
                    "pool {} is {existing}, not {cidr}: use the same subnet or another kuryr.pool.name",
                    req.name.as_deref().unwrap_or(&set)
                )));
            }
        }
        let pool_id = PoolId {
            set,
            cidr,
            subpool: req.subpool.map(|s| s.trunc()),
        }
        .to_string();
        Ok(PoolGrant { pool_id, cidr })
    }

    fn pick_default_pool(&self, v6: bool, prefix_len: Option<u8>) -> Result<IpNet> {
        let (base, default_prefix) = if v6 {
            (
                self.settings.default_pool_v6,
                self.settings.default_prefix_v6,
            )
        } else {
            (
                self.settings.default_pool_v4,
                self.settings.default_prefix_v4,
            )
        };
        let prefix = prefix_len.unwrap_or(default_prefix);
        if prefix < base.prefix_len() {
            return Err(OvnError::Invalid(format!(
                "a /{prefix} does not fit in the default pool {base}: ask for a longer prefix or set [ovn] default_pool_v{}",
                if v6 { 6 } else { 4 }
            )));
        }
        let mut offered = lock(&self.offered);
        offered.retain(|(_, at)| at.elapsed() < Duration::from_secs(120));
        let mut taken: Vec<IpNet> = offered.iter().map(|(n, _)| *n).collect();
        {
            let rep = self.nb.replica();
            taken.extend(
                rep.table(AS)
                    .by_external_key(keys::POOL_CIDR)
                    .iter()
                    .filter_map(|r| r.external_id(keys::POOL_CIDR)?.parse::<IpNet>().ok()),
            );
            for key in [keys::SUBNET_V4, keys::SUBNET_V6] {
                taken.extend(
                    rep.table(LS)
                        .by_external_key(key)
                        .iter()
                        .filter_map(|r| r.external_id(key)?.parse::<IpNet>().ok()),
                );
            }
        }
        let pick =
            kuryr_core::subnets::first_free_subnet(&base, prefix, &taken).ok_or_else(|| {
                OvnError::Exhausted(format!(
                    "no free /{prefix} left in the default pool {base}: give --subnet"
                ))
            })?;
        offered.push((pick, Instant::now()));
        Ok(pick)
    }

    /// Every kuryr pool (Address_Set) in Northbound and the addresses it holds, the gateway
    /// among them: read from the replica, no round trip.
    pub fn pool_usage(&self) -> Vec<kuryr_core::PoolUsage> {
        let rep = self.nb.replica();
        let mut pools: Vec<kuryr_core::PoolUsage> = rep
            .table(AS)
            .by_external_key(keys::POOL_CIDR)
            .iter()
            .filter(|r| r.external_id(keys::OWNER) == Some(keys::OWNER_VALUE))
            .filter_map(|r| {
                let cidr: IpNet = r.external_id(keys::POOL_CIDR)?.parse().ok()?;
                let name = r
                    .str("name")
                    .and_then(pool_name_of)
                    .unwrap_or_else(|| cidr.to_string());
                Some(kuryr_core::PoolUsage {
                    pool: name,
                    cidr,
                    in_use: r.strings("addresses").len() as u64,
                })
            })
            .collect();
        pools.sort_by(|a, b| a.pool.cmp(&b.pool));
        pools
    }

    /// ReleasePool: deletes the pool's Address_Set once no address (but the gateway) and no
    /// network uses it; a pool shared with another host or network stays.
    pub async fn release_pool(&self, pool_id: &str) -> Result<()> {
        let pid: PoolId = pool_id.parse()?;
        let what = format!("release pool {}", pid.cidr);
        let deadline = Instant::now() + self.settings.write_timeout;
        let mut changes = self.nb.watch_changes();
        let mut verified = false;
        loop {
            changes.borrow_and_update();
            self.gc_pool(&pid.set, false).await?;
            // Kept, maybe for an address another host released a moment ago.
            let kept = self.nb.replica().table(AS).one_by_name(&pid.set).is_some();
            if !kept {
                return Ok(());
            }
            if self
                .decision_stands(&pid, &what, &mut verified, deadline, &mut changes)
                .await?
            {
                self.reservations.pool_kept(&pid.set);
                return Ok(());
            }
        }
    }

    /// Deletes the pool's Address_Set once no network uses it and it holds no address but
    /// its gateway. A Swarm manager's pool (or any, with `orphans_too`: a Swarm network freed
    /// cluster-wide) goes with whatever addresses it still holds once no node has its
    /// network: the manager keeps its own record, and what is left are addresses a node
    /// reserved for itself before its dockerd died, which no one will ever release.
    pub(crate) async fn gc_pool(&self, set: &str, orphans_too: bool) -> Result<()> {
        self.write(&format!("delete unused pool {set}"), |rep| {
            let Some(row) = rep.table(AS).one_by_name(set) else {
                return Ok(None);
            };
            if row.external_id(keys::OWNER) != Some(keys::OWNER_VALUE) {
                return Ok(None);
            }
            let orphans_too =
                orphans_too || row.external_id(keys::POOL_SWARM) == Some("true");
            let gateway = row.external_id(keys::POOL_GATEWAY);
            let in_use = row
                .strings("addresses")
                .iter()
                .any(|a| Some(a.as_str()) != gateway);
            let referenced = [keys::POOL_V4, keys::POOL_V6]
                .iter()
                .any(|k| !rep.table(LS).by_external_id(k, set).is_empty());
            if (in_use && !orphans_too) || referenced {
                return Ok(None);
            }
            if in_use {
                tracing::info!(pool = set, addresses = ?row.strings("addresses"), "deleting a freed Swarm network's pool with the addresses nodes never released");
            }
            let mut t = Txn::new(NB);
            guard_column(&mut t, AS, &row, "addresses");
            t.delete(AS, vec![txn::by_uuid(row.uuid)]);
            Ok(Some(t))
        })
        .await
        .map(|_| ())
    }

    /// RequestAddress: the gateway (idempotent, shared by every network of the pool) or an
    /// endpoint address, the preferred one (`--ip`) or the lowest free one.
    ///
    /// `serial` is a Swarm manager's allocation: it marks the pool as the manager's, and in
    /// such a pool a preferred address already reserved is granted again (each node asks for
    /// the address the manager chose; a new leader asks again for every task's address).
    pub async fn request_address(
        &self,
        pool_id: &str,
        preferred: Option<IpAddr>,
        gateway: bool,
        serial: bool,
    ) -> Result<IpNet> {
        let pid: PoolId = pool_id.parse()?;
        let what = format!("reserve an address in pool {}", pid.cidr);
        self.check_connected(&what)?;
        if let Some(ip) = preferred {
            if !ipam::is_host_address(&pid.cidr, ip) {
                return Err(OvnError::Invalid(format!(
                    "address {ip} is not a usable address of subnet {}",
                    pid.cidr
                )));
            }
        }
        self.reservations.pool_in_use(&pid.set);
        let deadline = Instant::now() + self.settings.write_timeout;
        let mut changes = self.nb.watch_changes();
        let mut verified = false;
        if serial {
            lock(&self.serial_pools).insert(pid.set.clone());
        }
        loop {
            changes.borrow_and_update();
            let (t, ip, swarm) = match self.build_allocation(&pid, preferred, gateway, serial) {
                // Full, or the address taken, maybe by what another host released a moment ago.
                Err(e @ (OvnError::Exhausted(_) | OvnError::Conflict(_))) => {
                    if self
                        .decision_stands(&pid, &what, &mut verified, deadline, &mut changes)
                        .await?
                    {
                        return Err(e);
                    }
                    continue;
                }
                other => other?,
            };
            let Some(t) = t else {
                return Ok(with_prefix(ip, &pid.cidr));
            };
            // Docker settles an endpoint's address (CreateEndpoint or ReleaseAddress); a
            // Swarm manager's pool and a gateway are not Docker's to settle here.
            let recorded = !gateway && !serial && !swarm;
            let res = self.nb.transact(&t).await;
            if let Some(p) = lock(&self.pending).get_mut(&pid.set) {
                p.remove(&ip);
            }
            let err = match res {
                Ok(_) => {
                    if recorded {
                        self.reservations.handed_out(&pid.set, ip);
                    }
                    return Ok(with_prefix(ip, &pid.cidr));
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                if recorded && err.is_connection() {
                    self.reservations.unknown(&pid.set, ip);
                }
                return Err(OvnError::db(what)(err));
            }
            if err.is_conflict() {
                // Another request took it first: look again once our replica has its change.
                let _ = tokio::time::timeout(Duration::from_millis(500), changes.changed()).await;
            } else if err.is_connection() {
                // The outcome is unknown. Never report an address we cannot prove is ours: if
                // the reservation did commit, it stays reserved until it is reclaimed
                // (`reservations.rs`) rather than doubled.
                tracing::warn!(pool = %pid.cidr, %ip, error = %err, "Northbound connection lost while reserving an address; choosing again");
                let epoch = self.nb.state().epoch;
                let mut st = self.nb.watch_state();
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, st.wait_for(|s| s.connected && s.epoch > epoch))
                    .await
                    .is_err()
                {
                    if recorded {
                        self.reservations.unknown(&pid.set, ip);
                    }
                    return Err(OvnError::db(what)(err));
                }
                // Ours or not, the address is taken now if it committed; ask the replica.
                let taken = self
                    .nb
                    .replica()
                    .table(AS)
                    .one_by_name(&pid.set)
                    .is_some_and(|r| parse_ips(&r).contains(&ip));
                if taken && (gateway || preferred.is_some()) {
                    if recorded {
                        self.reservations.handed_out(&pid.set, ip);
                    }
                    return Ok(with_prefix(ip, &pid.cidr));
                }
                if taken && recorded {
                    // Another address goes to Docker; this one is released later if it
                    // stays unclaimed (see `reservations.rs`).
                    self.reservations.unknown(&pid.set, ip);
                }
            } else {
                return Err(OvnError::db(what)(err));
            }
        }
    }

    /// Whether a decision made against the pool on this replica (an address refused, a pool
    /// kept) stands: the replica may be a moment behind another host's change. It stands once
    /// the server confirmed the replica current and the caller looked again (`verified`), or
    /// at `deadline`; until then this waits for the replica to change (at most 500 ms) and
    /// the caller looks again.
    async fn decision_stands(
        &self,
        pid: &PoolId,
        what: &str,
        verified: &mut bool,
        deadline: Instant,
        changes: &mut tokio::sync::watch::Receiver<u64>,
    ) -> Result<bool> {
        if *verified || Instant::now() >= deadline {
            return Ok(true);
        }
        if self.pool_is_current(pid, what).await? {
            *verified = true;
        } else {
            let _ = tokio::time::timeout(Duration::from_millis(500), changes.changed()).await;
        }
        Ok(false)
    }

    /// Whether the pool's addresses on the server are those this replica shows (a `wait` the
    /// server checks; a replica behind it fails the wait).
    async fn pool_is_current(&self, pid: &PoolId, what: &str) -> Result<bool> {
        let mut t = Txn::new(NB);
        {
            let rep = self.nb.replica();
            let Some(row) = rep.table(AS).one_by_name(&pid.set) else {
                return Ok(true);
            };
            guard_column(&mut t, AS, &row, "addresses");
        }
        match self.nb.transact(&t).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(OvnError::db(what.to_owned())(e)),
        }
    }

    /// The transaction reserving one address, the address, and whether the pool is a Swarm
    /// manager's; no transaction when the address is already reserved for this purpose (the
    /// pool's gateway asked for again).
    fn build_allocation(
        &self,
        pid: &PoolId,
        preferred: Option<IpAddr>,
        gateway: bool,
        serial: bool,
    ) -> Result<(Option<Txn>, IpAddr, bool)> {
        let rep = self.nb.replica();
        let row = rep.table(AS).one_by_name(&pid.set);
        let swarm = row
            .as_ref()
            .is_some_and(|r| r.external_id(keys::POOL_SWARM) == Some("true"));
        // A membership test scans the set's strings; building a parsed set of every address
        // on each call would cost as much again, per call, as the pool grows.
        let in_set = |ip: &IpAddr| row.as_ref().is_some_and(|r| set_contains(&rep, r, ip));
        let pool_gw: Option<IpAddr> = row
            .as_ref()
            .and_then(|r| r.external_id(keys::POOL_GATEWAY)?.parse().ok());
        let ip = if gateway {
            let ip = match (preferred, pool_gw) {
                (Some(p), Some(g)) if p != g => {
                    return Err(OvnError::Conflict(format!(
                        "pool {} already has gateway {g}, shared by every network using it: give --gateway {g} or another kuryr.pool.name",
                        pid.cidr
                    )))
                }
                (_, Some(g)) => return Ok((None, g, swarm)),
                (Some(p), None) => p,
                (None, None) => ipam::host_range(&pid.cidr).0,
            };
            if in_set(&ip) {
                return Err(OvnError::Conflict(format!(
                    "gateway address {ip} is already in use in pool {}",
                    pid.cidr
                )));
            }
            ip
        } else {
            let mut excluded: HashSet<IpAddr> = lock(&self.pending)
                .get(&pid.set)
                .cloned()
                .unwrap_or_default();
            excluded.extend(pool_gw);
            for key in [keys::POOL_V4, keys::POOL_V6] {
                for ls in rep.table(LS).by_external_id(key, &pid.set) {
                    let gk = if key == keys::POOL_V4 {
                        keys::GATEWAY_V4
                    } else {
                        keys::GATEWAY_V6
                    };
                    excluded.extend(ls.external_id(gk).and_then(|g| g.parse::<IpAddr>().ok()));
                }
            }
            match preferred {
                // The Swarm manager's reservation, asked for by the node running the task or
                // by the manager itself after a restart or a leader change.
                Some(ip) if (swarm || serial) && in_set(&ip) && !excluded.contains(&ip) => {
                    return Ok((None, ip, swarm));
                }
                Some(ip) if in_set(&ip) || excluded.contains(&ip) => {
                    return Err(OvnError::Conflict(format!(
                        "address {ip} is already in use in pool {}",
                        pid.cidr
                    )))
                }
                Some(ip) => ip,
                None => self
                    .next_free(&rep, pid, row.as_deref(), &excluded)
                    .ok_or_else(|| {
                        let range = pid
                            .subpool
                            .map(|s| format!(" (ip-range {s})"))
                            .unwrap_or_default();
                        OvnError::Exhausted(format!("pool {}{range} has no free address", pid.cidr))
                    })?,
            }
        };
        lock(&self.pending)
            .entry(pid.set.clone())
            .or_default()
            .insert(ip);
        if !gateway {
            if let Some(next) = ipam::next_address(ip) {
                lock(&self.cursors).insert(pid.set.clone(), next);
            }
        }
        let mut t = Txn::new(NB);
        match &row {
            Some(r) => {
                guard_ip_free(&mut t, r.uuid, ip);
                let mut muts = vec![txn::mutate_insert(
                    "addresses",
                    datum::set([json!(ip.to_string())]),
                )];
                if serial && !swarm {
                    muts.push(txn::mutate_insert(
                        "external_ids",
                        datum::map([(keys::POOL_SWARM, "true".to_string())]),
                    ));
                }
                if gateway {
                    muts.push(txn::mutate_insert(
                        "external_ids",
                        datum::map([(keys::POOL_GATEWAY, ip.to_string())]),
                    ));
                }
                t.mutate(AS, vec![txn::by_uuid(r.uuid)], muts);
            }
            None => {
                let mut ext = vec![
                    (keys::OWNER.to_string(), keys::OWNER_VALUE.to_string()),
                    (keys::POOL_CIDR.to_string(), pid.cidr.to_string()),
                ];
                if let Some(name) = pool_name_of(&pid.set) {
                    ext.push((keys::POOL_NAME.to_string(), name));
                }
                if gateway {
                    ext.push((keys::POOL_GATEWAY.to_string(), ip.to_string()));
                }
                if serial {
                    ext.push((keys::POOL_SWARM.to_string(), "true".to_string()));
                }
                t.wait_absent(AS, vec![eq("name", pid.set.as_str())]);
                t.insert(AS, json!({"name": pid.set, "addresses": datum::set([json!(ip.to_string())]), "external_ids": datum::map(ext)}), None);
            }
        }
        Ok((Some(t), ip, swarm))
    }

    /// The next free address after the pool's cursor: a few membership tests when the pool is
    /// allocated in order, a full scan only when those find nothing (a pool nearly full).
    fn next_free(
        &self,
        rep: &Replica,
        pid: &PoolId,
        row: Option<&Row>,
        excluded: &HashSet<IpAddr>,
    ) -> Option<IpAddr> {
        let from = lock(&self.cursors).get(&pid.set).copied();
        let free =
            |ip: &IpAddr| !excluded.contains(ip) && !row.is_some_and(|r| set_contains(rep, r, ip));
        if let Some(ip) = ipam::candidates(&pid.cidr, pid.subpool.as_ref(), from)
            .take(64)
            .find(free)
        {
            return Some(ip);
        }
        let used = row.map(parse_ips).unwrap_or_default();
        ipam::candidates(&pid.cidr, pid.subpool.as_ref(), from)
            .find(|ip| !used.contains(ip) && !excluded.contains(ip))
    }

    /// ReleaseAddress: frees an endpoint address; the pool's gateway stays reserved while the
    /// pool exists (other networks and hosts may share it).
    pub async fn release_address(&self, pool_id: &str, ip: IpAddr) -> Result<()> {
        let pid: PoolId = pool_id.parse()?;
        // Decided on the server, not on this replica: the address may have been reserved by
        // another host a moment ago and not be in this replica yet.
        self.release_in_set(&pid.set, ip, &pid.cidr.to_string())
            .await?;
        self.reservations.settled(&pid.set, ip);
        // The next search starts at the lowest address this process gave back, so a freed
        // address is handed out again first, as Docker's own IPAM does; a Swarm manager's
        // pool goes on in order (an address freed there may still be on its old task's node).
        if lock(&self.serial_pools).contains(&pid.set) {
            return Ok(());
        }
        let mut cursors = lock(&self.cursors);
        let cur = cursors.entry(pid.set.clone()).or_insert(ip);
        if ip.is_ipv6() == cur.is_ipv6() && ip < *cur {
            *cur = ip;
        }
        Ok(())
    }

    // ---- networks ---------------------------------------------------------------------------

    /// CreateNetwork: a new Logical_Switch, or a mark on an existing one (`kuryr.net.name` /
    /// `kuryr.net.uuid`), which is how one logical network spans hosts. A name that does not
    /// exist yet is created, so the first host to ask creates it and the others attach.
    pub async fn create_network(&self, spec: &NetworkSpec) -> Result<Network> {
        let key = keys::net_key(&spec.network_id);
        let what = format!(
            "create logical switch for network {}",
            short(&spec.network_id)
        );
        self.write(&what, |rep| {
            let t = rep.table(LS);
            if let Some(ls) = t.by_external_key(&key).into_iter().next() {
                // Another node of a Swarm created this network id already: add this host.
                let value = ls.external_id(&key).unwrap_or_default();
                let marked = keys::mark_with(value, &self.settings.host);
                if marked == value {
                    return Ok(None);
                }
                let mut txn = Txn::new(NB);
                guard_column(&mut txn, LS, &ls, "external_ids");
                txn.mutate(
                    LS,
                    vec![txn::by_uuid(ls.uuid)],
                    vec![
                        txn::mutate_delete("external_ids", datum::set([json!(key)])),
                        txn::mutate_insert("external_ids", datum::map([(key.clone(), marked)])),
                    ],
                );
                return Ok(Some(txn));
            }
            let target = match &spec.attach {
                Some(Attach::ByUuid(u)) => Some(t.get(u).ok_or_else(|| {
                    OvnError::NotFound(format!("no logical switch has uuid {u} (kuryr.net.uuid): check `ovn-nbctl ls-list`"))
                })?),
                Some(Attach::ByName(n)) => {
                    let found = t.by_name(n);
                    if found.len() > 1 {
                        return Err(OvnError::Conflict(format!(
                            "{} logical switches are named {n:?}: attach by kuryr.net.uuid instead",
                            found.len()
                        )));
                    }
                    found.into_iter().next()
                }
                None => None,
            };
            let mut ext: Vec<(String, String)> = vec![(key.clone(), self.settings.host.clone())];
            for (sub, keys3) in [
                (&spec.ipv4, (keys::SUBNET_V4, keys::GATEWAY_V4, keys::POOL_V4)),
                (&spec.ipv6, (keys::SUBNET_V6, keys::GATEWAY_V6, keys::POOL_V6)),
            ] {
                let Some(sub) = sub else { continue };
                let cidr = sub.cidr.trunc();
                if let Some(existing) = target.as_ref().and_then(|ls| ls.external_id(keys3.0)) {
                    if existing != cidr.to_string() {
                        return Err(OvnError::Conflict(format!(
                            "logical switch {} has subnet {existing}, but this network asks for {cidr}: use --subnet {existing}",
                            target.as_ref().and_then(|ls| ls.str("name")).unwrap_or("?")
                        )));
                    }
                    continue;
                }
                ext.push((keys3.0.to_string(), cidr.to_string()));
                if let Some(gw) = sub.gateway {
                    ext.push((keys3.1.to_string(), gw.to_string()));
                }
                ext.push((keys3.2.to_string(), ipam::pool_set_name(sub.pool_name.as_deref(), &cidr)));
            }
            let mut txn = Txn::new(NB);
            match target {
                Some(ls) => {
                    txn.mutate(LS, vec![txn::by_uuid(ls.uuid)], vec![txn::mutate_insert("external_ids", datum::map(ext))]);
                }
                None => {
                    let name = match &spec.attach {
                        Some(Attach::ByName(n)) => n.clone(),
                        _ => keys::switch_name(&spec.network_id),
                    };
                    ext.push((keys::OWNER.to_string(), keys::OWNER_VALUE.to_string()));
                    txn.wait_absent(LS, vec![eq("name", name.as_str())]);
                    txn.insert(LS, json!({"name": name, "external_ids": datum::map(ext)}), None);
                }
            }
            Ok(Some(txn))
        })
        .await?;
        // What Docker reserved in the pools before creating the network (`--aux-address`)
        // is the network's: no endpoint will ever claim it.
        for set in self.pool_sets(&spec.network_id).into_iter().flatten() {
            self.reservations.settle_pool(&set);
        }
        if let Some(router) = spec.router.name() {
            if let Err(e) = self.attach_router(&spec.network_id, router).await {
                // Leave nothing half made: the network goes again.
                if let Err(undo) = self.delete_network(&spec.network_id).await {
                    tracing::error!(network = %short(&spec.network_id), error = %undo, "could not remove the network after its router attachment failed");
                }
                return Err(e);
            }
        }
        self.network(&spec.network_id).ok_or_else(|| {
            OvnError::NotFound(format!(
                "network {} vanished right after it was created",
                short(&spec.network_id)
            ))
        })
    }

    /// The network of a Docker network id, from the replica.
    pub fn network(&self, network_id: &str) -> Option<Network> {
        let rep = self.nb.replica();
        let ls = rep
            .table(LS)
            .by_external_key(&keys::net_key(network_id))
            .into_iter()
            .next()?;
        Some(network_of(&ls, network_id))
    }

    /// Every Docker network this host has on Northbound.
    pub fn networks(&self) -> Vec<Network> {
        let rep = self.nb.replica();
        let mut out = Vec::new();
        for ls in rep.table(LS).rows() {
            for (k, v) in ls.string_map("external_ids") {
                if let Some(id) = k.strip_prefix(keys::NET_PREFIX) {
                    if keys::mark_hosts(&v).any(|h| h == self.settings.host) {
                        out.push(network_of(ls, id));
                    }
                }
            }
        }
        out
    }

    /// DeleteNetwork: removes this network's mark; the switch goes when it was kuryr's and no
    /// other network uses it, along with any port Docker left behind; then the pools go if unused.
    pub async fn delete_network(&self, network_id: &str) -> Result<()> {
        self.remove_network(network_id, false).await
    }

    /// FreeNetwork from a Swarm manager: the network id's mark goes for every host at once
    /// (a node whose dockerd crashed never deletes its side), with every port of it; the
    /// switch goes unless another network id (`kuryr.net.name`) still uses it.
    pub async fn free_network(&self, network_id: &str) -> Result<()> {
        self.remove_network(network_id, true).await
    }

    async fn remove_network(&self, network_id: &str, every_host: bool) -> Result<()> {
        if let Some(parent) = &self.settings.macvlan_parent {
            // As a switch's ports go with it: entries a killed kuryr left on the VM's port.
            self.forget_macvlan_network(parent, network_id).await?;
        }
        let key = keys::net_key(network_id);
        let mut pools = Vec::new();
        self.write(
            &format!("delete logical switch of network {}", short(network_id)),
            |rep| {
                let Some(ls) = rep.table(LS).by_external_key(&key).into_iter().next() else {
                    return Ok(None);
                };
                let ext = ls.string_map("external_ids");
                let host = self.settings.host.as_str();
                if let Some(left) = ext
                    .get(&key)
                    .filter(|_| !every_host)
                    .filter(|v| keys::mark_hosts(v).any(|h| h == host))
                    .and_then(|v| keys::mark_without(v, host))
                {
                    // Other nodes of a Swarm still have this network: only this host's
                    // mark and the ports it left go.
                    return Ok(Some(
                        self.leave_shared_network(rep, &ls, &key, left, network_id),
                    ));
                }
                pools = [keys::POOL_V4, keys::POOL_V6]
                    .iter()
                    .filter_map(|k| ext.get(*k).cloned())
                    .collect();
                let others = ext
                    .keys()
                    .filter(|k| k.starts_with(keys::NET_PREFIX) && **k != key)
                    .count();
                let ports: Vec<Arc<Row>> = ls
                    .uuids("ports")
                    .iter()
                    .filter_map(|u| rep.table(LSP).get(u))
                    .collect();
                let mut stale: Vec<Uuid> = ports
                    .iter()
                    .filter(|p| p.external_id(keys::NETWORK_ID) == Some(network_id))
                    .map(|p| p.uuid)
                    .collect();
                let router_peers: Vec<Uuid> = ports
                    .iter()
                    .filter(|p| routing::is_router_peer(p))
                    .map(|p| p.uuid)
                    .collect();
                let owned = ext.get(keys::OWNER).map(String::as_str) == Some(keys::OWNER_VALUE);
                let mut t = Txn::new(NB);
                // Another host changing the marks at the same time makes this fail and run again,
                // so the last network to leave always sees that it is the last.
                guard_column(&mut t, LS, &ls, "external_ids");
                if others == 0 {
                    // The last network of the switch takes its gateway port with it.
                    routing::detach_ops(rep, &mut t, &ls);
                    stale.extend(router_peers);
                }
                if others == 0 && owned && stale.len() == ports.len() {
                    t.delete(LS, vec![txn::by_uuid(ls.uuid)]);
                } else {
                    let mut drop_keys = vec![json!(key)];
                    if others == 0 {
                        for k in [
                            keys::SUBNET_V4,
                            keys::SUBNET_V6,
                            keys::GATEWAY_V4,
                            keys::GATEWAY_V6,
                            keys::POOL_V4,
                            keys::POOL_V6,
                            keys::ROUTER,
                            keys::PORT_GROUP,
                        ] {
                            drop_keys.push(json!(k));
                        }
                    }
                    t.mutate(
                        LS,
                        vec![txn::by_uuid(ls.uuid)],
                        vec![txn::mutate_delete("external_ids", datum::set(drop_keys))],
                    );
                    if !stale.is_empty() {
                        t.mutate(
                            LS,
                            vec![txn::by_uuid(ls.uuid)],
                            vec![txn::mutate_delete(
                                "ports",
                                datum::set(stale.iter().map(|u| datum::uuid(*u))),
                            )],
                        );
                    }
                }
                for u in &stale {
                    t.delete(LSP, vec![txn::by_uuid(*u)]);
                }
                Ok(Some(t))
            },
        )
        .await?;
        for set in pools {
            self.gc_pool(&set, every_host).await?;
        }
        Ok(())
    }

    /// DeleteNetwork on one node of a network other nodes still have (one Docker network id
    /// on several hosts, as in a Swarm): drops this host from the mark and deletes the ports
    /// of this network it left behind.
    fn leave_shared_network(
        &self,
        rep: &Replica,
        ls: &Row,
        key: &str,
        left: String,
        network_id: &str,
    ) -> Txn {
        let stale: Vec<Uuid> = ls
            .uuids("ports")
            .iter()
            .filter_map(|u| rep.table(LSP).get(u))
            .filter(|p| {
                p.external_id(keys::NETWORK_ID) == Some(network_id)
                    && p.external_id(keys::HOST) == Some(self.settings.host.as_str())
            })
            .map(|p| p.uuid)
            .collect();
        let mut t = Txn::new(NB);
        guard_column(&mut t, LS, ls, "external_ids");
        let mut muts = vec![
            txn::mutate_delete("external_ids", datum::set([json!(key)])),
            txn::mutate_insert("external_ids", datum::map([(key.to_string(), left)])),
        ];
        if !stale.is_empty() {
            muts.push(txn::mutate_delete(
                "ports",
                datum::set(stale.iter().map(|u| datum::uuid(*u))),
            ));
        }
        t.mutate(LS, vec![txn::by_uuid(ls.uuid)], muts);
        for u in &stale {
            t.delete(LSP, vec![txn::by_uuid(*u)]);
        }
        t
    }

    // ---- endpoints --------------------------------------------------------------------------

    /// CreateEndpoint: one Logical_Switch_Port with the endpoint's MAC and addresses in
    /// `addresses` and `port_security`. Creating the same endpoint again returns it.
    /// The addresses it holds are settled (see `reservations.rs`).
    pub async fn create_endpoint(&self, spec: &EndpointSpec) -> Result<Endpoint> {
        let ep = match &self.settings.macvlan_parent {
            Some(parent) => self.create_macvlan_endpoint(parent, spec).await?,
            None => self.create_port_endpoint(spec).await?,
        };
        let [v4, v6] = self.pool_sets(&spec.network_id);
        for (set, ip) in [(v4, spec.ipv4), (v6, spec.ipv6)] {
            if let (Some(set), Some(ip)) = (set, ip) {
                self.reservations.settled(&set, ip.addr());
            }
        }
        Ok(ep)
    }

    async fn create_port_endpoint(&self, spec: &EndpointSpec) -> Result<Endpoint> {
        let key = keys::net_key(&spec.network_id);
        let ep_short = short(&spec.endpoint_id).to_string();
        self.write(&format!("create logical switch port for endpoint {ep_short}"), |rep| {
            let ls = rep.table(LS).by_external_key(&key).into_iter().next().ok_or_else(|| {
                OvnError::NotFound(format!(
                    "network {} is not known to kuryr (no logical switch is marked {key}): recreate the Docker network",
                    short(&spec.network_id)
                ))
            })?;
            if let Some(p) = rep.table(LSP).one_by_name(&spec.endpoint_id) {
                if p.external_id(keys::NETWORK_ID) == Some(spec.network_id.as_str()) {
                    return Ok(None);
                }
                return Err(OvnError::Conflict(format!("a logical switch port named {} already exists on another network", spec.endpoint_id)));
            }
            // Through the MAC index, so the check does not grow with the network; only a MAC
            // found elsewhere costs a look at this switch's ports.
            let mac_in_use = |m: &str| {
                let holders = rep.table(LSP).by_external_id(keys::MAC, m);
                !holders.is_empty() && {
                    let ports: HashSet<Uuid> = ls.uuids("ports").into_iter().collect();
                    holders.iter().any(|p| ports.contains(&p.uuid))
                }
            };
            let mac = choose_mac(spec, mac_in_use).map_err(|m| {
                OvnError::Conflict(format!("MAC address {m} is already used on network {}", short(&spec.network_id)))
            })?;
            let addr = address_entry(&mac, spec);
            let ext = datum::map([
                (keys::OWNER, keys::OWNER_VALUE),
                (keys::ENDPOINT_ID, spec.endpoint_id.as_str()),
                (keys::NETWORK_ID, spec.network_id.as_str()),
                (keys::HOST, self.settings.host.as_str()),
                (keys::MAC, mac.as_str()),
            ]);
            let mut t = Txn::new(NB);
            // The schema's unique index on the port name refuses a duplicate at commit: no
            // `wait` guard, which would make ovsdb-server scan every port of Northbound.
            let mut lsp = json!({"name": spec.endpoint_id, "addresses": addr, "port_security": addr, "external_ids": ext});
            self.nest(rep, &mut lsp)?;
            t.insert(LSP, lsp, Some("lsp"));
            t.mutate(LS, vec![txn::by_uuid(ls.uuid)], vec![txn::mutate_insert("ports", datum::set([datum::named_uuid("lsp")]))]);
            routing::join_port_group(rep, &mut t, &ls, "lsp");
            Ok(Some(t))
        })
        .await?;
        if self.settings.parent_port.is_some() {
            // Inside a VM the port is of no use without its tag: on failure it goes again.
            if let Err(e) = self.wait_for_tag(&spec.endpoint_id).await {
                if let Err(undo) = self.delete_endpoint(&spec.endpoint_id).await {
                    tracing::error!(endpoint = %ep_short, error = %undo, "could not remove a container port that got no tag");
                }
                return Err(e);
            }
        }
        self.endpoint(&spec.endpoint_id).ok_or_else(|| {
            OvnError::NotFound(format!(
                "endpoint {ep_short}: its logical switch was deleted at the same time"
            ))
        })
    }

    /// The endpoint of a Docker endpoint id, from the replica.
    pub fn endpoint(&self, endpoint_id: &str) -> Option<Endpoint> {
        if let Some(parent) = &self.settings.macvlan_parent {
            return self.macvlan_endpoint(parent, endpoint_id);
        }
        let rep = self.nb.replica();
        let p = rep.table(LSP).one_by_name(endpoint_id)?;
        endpoint_of(&rep, &p)
    }

    /// Every endpoint kuryr placed on this host.
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        if let Some(parent) = &self.settings.macvlan_parent {
            return self.macvlan_endpoints(parent);
        }
        let rep = self.nb.replica();
        rep.table(LSP)
            .by_external_id(keys::HOST, &self.settings.host)
            .iter()
            .filter_map(|p| endpoint_of(&rep, p))
            .collect()
    }

    /// The endpoints of this host whose `addresses` entry holds `ip`: a look at the strings of
    /// the replica's rows, no endpoint built (ReleaseAddress asks it for every container).
    pub fn endpoints_holding(&self, ip: IpAddr) -> Vec<String> {
        let ip = ip.to_string();
        let holds = |entry: &str| entry.split_whitespace().skip(1).any(|w| w == ip);
        if let Some(parent) = &self.settings.macvlan_parent {
            return self.macvlan_endpoints_holding(parent, holds);
        }
        let rep = self.nb.replica();
        rep.table(LSP)
            .by_external_id(keys::HOST, &self.settings.host)
            .iter()
            .filter(|p| p.strings("addresses").first().is_some_and(|a| holds(a)))
            .filter_map(|p| {
                p.external_id(keys::ENDPOINT_ID)
                    .or_else(|| p.str("name"))
                    .map(str::to_string)
            })
            .collect()
    }

    /// DeleteEndpoint: removes the port; a port already gone is success. Its addresses are
    /// Docker's to release next (see `reservations.rs`).
    pub async fn delete_endpoint(&self, endpoint_id: &str) -> Result<()> {
        let ep = self.endpoint(endpoint_id);
        match &self.settings.macvlan_parent {
            Some(parent) => self.delete_macvlan_endpoint(parent, endpoint_id).await?,
            None => self.delete_port_endpoint(endpoint_id).await?,
        }
        if let Some(ep) = ep {
            let [v4, v6] = self.pool_sets(&ep.network_id);
            for (set, ip) in [(v4, ep.ipv4), (v6, ep.ipv6)] {
                if let (Some(set), Some(ip)) = (set, ip) {
                    self.endpoint_deleted(&set, ip.addr());
                }
            }
        }
        Ok(())
    }

    async fn delete_port_endpoint(&self, endpoint_id: &str) -> Result<()> {
        self.write(
            &format!(
                "delete logical switch port of endpoint {}",
                short(endpoint_id)
            ),
            |rep| {
                let Some(p) = rep.table(LSP).one_by_name(endpoint_id) else {
                    return Ok(None);
                };
                if p.external_id(keys::OWNER) != Some(keys::OWNER_VALUE) {
                    return Err(OvnError::Conflict(format!(
                        "logical switch port {endpoint_id} was not created by kuryr; leaving it"
                    )));
                }
                let mut t = Txn::new(NB);
                t.mutate(
                    LS,
                    vec![txn::includes("ports", datum::uuid(p.uuid))],
                    vec![txn::mutate_delete(
                        "ports",
                        datum::set([datum::uuid(p.uuid)]),
                    )],
                );
                t.delete(LSP, vec![txn::by_uuid(p.uuid)]);
                Ok(Some(t))
            },
        )
        .await
        .map(|_| ())
    }
}

/// The name a pool was given with `kuryr.pool.name`, decoded from its set name.
fn pool_name_of(set: &str) -> Option<String> {
    let enc = set.strip_prefix("kuryr_n_")?;
    let bytes = enc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = enc.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn network_of(ls: &Row, network_id: &str) -> Network {
    let ext: BTreeMap<String, String> = ls.string_map("external_ids");
    let get = |k: &str| ext.get(k).and_then(|v| v.parse().ok());
    Network {
        network_id: network_id.to_string(),
        switch: ls.str("name").unwrap_or_default().to_string(),
        switch_uuid: ls.uuid,
        subnet_v4: get(keys::SUBNET_V4),
        gateway_v4: ext.get(keys::GATEWAY_V4).and_then(|v| v.parse().ok()),
        subnet_v6: get(keys::SUBNET_V6),
        gateway_v6: ext.get(keys::GATEWAY_V6).and_then(|v| v.parse().ok()),
    }
}

/// The network of a Docker network id, from the switch that carries its mark.
pub(crate) fn network_by_id(rep: &Replica, network_id: &str) -> Option<Network> {
    rep.table(LS)
        .by_external_key(&keys::net_key(network_id))
        .into_iter()
        .next()
        .map(|ls| network_of(&ls, network_id))
}

/// The IPv4 and IPv6 addresses among `words` (an `addresses` entry after its MAC), each with
/// its network's prefix (a host prefix when the network is unknown).
pub(crate) fn ips_of<'a>(
    words: impl Iterator<Item = &'a str>,
    net: Option<&Network>,
) -> (Option<IpNet>, Option<IpNet>) {
    let (mut ipv4, mut ipv6) = (None, None);
    for w in words {
        match w.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V4(_)) => {
                let subnet = net
                    .and_then(|n| n.subnet_v4)
                    .unwrap_or_else(|| IpNet::from(ip));
                ipv4 = Some(with_prefix(ip, &subnet));
            }
            Ok(ip @ IpAddr::V6(_)) => {
                let subnet = net
                    .and_then(|n| n.subnet_v6)
                    .unwrap_or_else(|| IpNet::from(ip));
                ipv6 = Some(with_prefix(ip, &subnet));
            }
            Err(_) => {}
        }
    }
    (ipv4, ipv6)
}

pub(crate) fn endpoint_of(rep: &Replica, p: &Row) -> Option<Endpoint> {
    let network_id = p.external_id(keys::NETWORK_ID)?.to_string();
    let net = network_by_id(rep, &network_id);
    let addresses = p.strings("addresses");
    let mut words = addresses
        .first()
        .map(|a| a.split_whitespace())
        .into_iter()
        .flatten();
    let mac = words.next()?.to_string();
    let (ipv4, ipv6) = ips_of(words, net.as_ref());
    Some(Endpoint {
        endpoint_id: p
            .external_id(keys::ENDPOINT_ID)
            .unwrap_or_else(|| p.str("name").unwrap_or_default())
            .to_string(),
        network_id,
        port: p.str("name").unwrap_or_default().to_string(),
        mac,
        ipv4,
        ipv6,
        gateway_v4: net.as_ref().and_then(|n| n.gateway_v4),
        gateway_v6: net.as_ref().and_then(|n| n.gateway_v6),
        host: p.external_id(keys::HOST).map(str::to_string),
        vlan: crate::nested::tag_of(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_decode_from_set_names() {
        for name in ["plain", "with space/and-dash", "ünï", "a_b"] {
            let set = ipam::pool_set_name(Some(name), &"10.0.0.0/24".parse().unwrap());
            assert_eq!(pool_name_of(&set).as_deref(), Some(name));
        }
        assert_eq!(pool_name_of("kuryr_c_10.0.0.0_2F24"), None);
    }
}
