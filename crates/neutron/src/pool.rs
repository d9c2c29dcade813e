//! Port pools (`[vif_pool]`): Neutron ports made ahead of time on this host, so that a
//! container's start skips the port's create and bind, and its stop the delete.
//!
//! A pool port is created (in bulk) bound to this host (`binding:host_id`, `compute:kuryr`)
//! or, inside a VM, described as the VM's trunk's and attached to the trunk as a subport,
//! named [`names::POOL_PORT_NAME`] while it is free and tagged [`names::POOL_TAG`] for good.
//! RequestAddress takes a free one of the subnet (or the one holding `--ip`); CreateEndpoint
//! names it and sets its device id, as for any port; ReleaseAddress gives it back: its name,
//! device id, endpoint tags and security groups are reset in the background and it is free
//! again. A restart finds the free ones by name and host. A subnet's pool never holds more
//! than a quarter of the subnet's addresses (other hosts share the subnet), nor more than
//! `ports_pool_max`; `docker network rm` deletes the network's free ports first.

use crate::client::NeutronClient;
use crate::names::{self, DEVICE_OWNER, POOL_PORT_NAME, POOL_TAG};
use crate::trunk::Trunk;
use crate::types::{Port, Subnet};
use ipnet::IpNet;
use kuryr_core::journal::Journal;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, RwLock};

/// `[vif_pool]`, as the daemon read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Free ports each subnet's pool keeps (at most its share of the subnet).
    pub min: usize,
    /// Free ports a pool keeps at most; 0: only the subnet's share limits it.
    pub max: usize,
    /// Ports made in one request.
    pub batch: usize,
    pub update_frequency: Duration,
    /// Where the ports handed out and not yet claimed are written (see `kuryr_core::journal`); none:
    /// not written (a restart may then hand such a port out again).
    pub journal: Option<std::path::PathBuf>,
}

struct SubnetPool {
    subnet: Subnet,
    /// The largest number of free ports this pool keeps.
    cap: usize,
    free: Vec<Port>,
    /// The security groups Neutron gave the pool's ports when they were made.
    groups: Option<Vec<String>>,
}

/// Whose ports a pool holds.
pub(crate) enum Scope {
    /// A host's: bound to it (`binding:host_id`, `compute:kuryr`).
    Host(String),
    /// A VM's: subports of its trunk (no host, no device owner of kuryr's), described as the
    /// trunk's so that a port made before a kill and not yet attached is known again.
    Trunk(Arc<Trunk>),
}

pub(crate) struct Pools {
    client: Arc<NeutronClient>,
    scope: Scope,
    settings: PoolSettings,
    /// Subnet id -> its pool on this host.
    pools: Mutex<HashMap<String, SubnetPool>>,
    /// Every port id this process made, found or handed out for a pool and not deleted: a
    /// port by the pool's name that is not among them is a stray of a killed run.
    known: Mutex<HashSet<String>>,
    wake: Notify,
    /// Held (shared) by every refill and return under way; a drain takes it alone, so that
    /// no port of a network being removed is still being made or given back.
    work: Arc<RwLock<()>>,
    journal: Option<Journal>,
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn address_of(port: &Port, subnet_id: &str) -> Option<IpAddr> {
    port.fixed_ips
        .iter()
        .find(|f| f.subnet_id == subnet_id)
        .and_then(|f| f.ip_address.parse().ok())
}

/// A quarter of the subnet's addresses (less the network, broadcast and gateway ones), at
/// most `max` when set: a /29 lends one port to a pool, a /24 63.
fn share(cidr: &str, max: usize) -> usize {
    let quarter = match cidr.parse::<IpNet>() {
        Ok(IpNet::V4(n)) => {
            let size = 1u64 << (32 - u32::from(n.prefix_len()));
            (size.saturating_sub(3) / 4) as usize
        }
        Ok(IpNet::V6(n)) if n.prefix_len() >= 64 + 54 => {
            let size = 1u64 << (128 - u32::from(n.prefix_len()));
            (size.saturating_sub(2) / 4) as usize
        }
        Ok(IpNet::V6(_)) => usize::MAX,
        Err(_) => 0,
    };
    if max == 0 {
        quarter
    } else {
        quarter.min(max)
    }
}

impl Pools {
    pub(crate) fn new(client: Arc<NeutronClient>, scope: Scope, settings: PoolSettings) -> Pools {
        let journal = Journal::open_or_warn(
            settings.journal.clone(),
            "pool journal",
            "a restart may find a port handed out as free",
        );
        Pools {
            journal,
            client,
            scope,
            settings,
            pools: Mutex::new(HashMap::new()),
            known: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            work: Arc::new(RwLock::new(())),
        }
    }

    /// The `description` of a VM's pool ports.
    fn trunk_description(t: &Trunk) -> String {
        format!("kuryr pool of trunk {}", t.id)
    }

    /// Whether a port by the pool's name is one of this scope's.
    fn mine(&self, port: &Port) -> bool {
        match &self.scope {
            Scope::Host(h) => {
                port.host_id.as_deref() == Some(h.as_str()) && port.device_owner == DEVICE_OWNER
            }
            Scope::Trunk(t) => port.description == Self::trunk_description(t),
        }
    }

    /// Ports by the pool's name, of this scope, on `network` (or anywhere).
    async fn named_ports(&self, network: Option<&str>) -> Result<Vec<Port>, crate::NeutronError> {
        let mut filters = vec![("name", POOL_PORT_NAME)];
        if let Some(n) = network {
            filters.push(("network_id", n));
        }
        if let Scope::Host(h) = &self.scope {
            filters.push(("binding:host_id", h.as_str()));
        }
        let ports = self.client.ports(&filters).await?;
        Ok(ports.into_iter().filter(|p| self.mine(p)).collect())
    }

    /// Deletes a pool port (a subport comes off the trunk first).
    async fn delete(&self, port_id: &str) -> Result<(), crate::NeutronError> {
        if let Scope::Trunk(t) = &self.scope {
            self.client.remove_subport(&t.id, port_id).await?;
        }
        self.client.delete_port(port_id).await?;
        self.forget(port_id);
        Ok(())
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, HashMap<String, SubnetPool>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pool port deleted by someone else (a release above the pool's size).
    pub(crate) fn forget(&self, port_id: &str) {
        self.settled(port_id);
        self.known().remove(port_id);
    }

    fn settled(&self, port_id: &str) {
        if let Some(j) = &self.journal {
            j.settled(port_id);
        }
    }

    fn target(&self, p: &SubnetPool) -> usize {
        self.settings.min.min(p.cap)
    }

    fn publish_free(&self) {
        kuryr_metrics::port_pool_free(self.pools().values().map(|p| p.free.len() as u64).sum());
    }

    /// Keeps a pool for `subnet` from now on (refilled in the background).
    pub(crate) fn activate(&self, subnet: &Subnet) {
        let mut pools = self.pools();
        if pools.contains_key(&subnet.id) {
            return;
        }
        let cap = share(&subnet.cidr, self.settings.max);
        if cap == 0 {
            return;
        }
        pools.insert(
            subnet.id.clone(),
            SubnetPool {
                subnet: subnet.clone(),
                cap,
                free: Vec::new(),
                groups: None,
            },
        );
        drop(pools);
        self.wake.notify_one();
    }

    /// A free port of the subnet, or the one holding `ip` when given; `None` is a miss.
    pub(crate) fn take(&self, subnet: &Subnet, ip: Option<IpAddr>) -> Option<Port> {
        self.activate(subnet);
        let port = {
            let mut pools = self.pools();
            let p = pools.get_mut(&subnet.id)?;
            let i = match ip {
                Some(ip) => p
                    .free
                    .iter()
                    .position(|port| address_of(port, &subnet.id) == Some(ip)),
                // The oldest first: ports are used in the order they were made ready.
                None => (!p.free.is_empty()).then_some(0),
            };
            i.map(|i| p.free.remove(i))
        };
        match &port {
            Some(p) => {
                if let Some(j) = &self.journal {
                    j.taken(&p.id);
                }
                kuryr_metrics::port_pool("hit");
            }
            None if ip.is_none() => kuryr_metrics::port_pool("miss"),
            None => {}
        }
        self.publish_free();
        self.wake.notify_one();
        port
    }

    /// An endpoint now holds `port_id`: if a pool still lists it as free (a port taken
    /// just before a restart, which the restart found free), it no longer does.
    pub(crate) fn claimed(&self, port_id: &str) {
        self.settled(port_id);
        let mut pools = self.pools();
        for p in pools.values_mut() {
            if let Some(i) = p.free.iter().position(|f| f.id == port_id) {
                p.free.swap_remove(i);
                tracing::info!(port = %port_id, "a port taken before the restart was claimed: out of the pool");
            }
        }
        drop(pools);
        self.wake.notify_one();
    }

    /// Waits for the refills and returns under way: their ports hold addresses Neutron
    /// counts as taken until they are free in a pool.
    pub(crate) async fn settle(&self) {
        drop(self.work.write().await);
    }

    /// Whether `port` (ours, of the pool's kind, its endpoint gone) goes back to a pool: then
    /// it is cleaned up in the background and the caller must leave it alone; otherwise the
    /// caller deletes it.
    pub(crate) fn give_back(self: &Arc<Self>, port: Port) -> bool {
        let mine = match &self.scope {
            Scope::Host(h) => port.host_id.as_deref() == Some(h.as_str()),
            Scope::Trunk(t) => t.holds(&port.id),
        };
        if !port.tags.iter().any(|t| t == POOL_TAG) || !mine || port.fixed_ips.len() != 1 {
            return false;
        }
        let subnet_id = port.fixed_ips[0].subnet_id.clone();
        {
            let pools = self.pools();
            match pools.get(&subnet_id) {
                // Free already: taken before a restart that found it free, and released
                // after it without an endpoint ever holding it.
                Some(p) if p.free.iter().any(|f| f.id == port.id) => {
                    drop(pools);
                    self.settled(&port.id);
                    return true;
                }
                Some(p) if p.free.len() < p.cap => {}
                _ => return false,
            }
        }
        // Counted as under way from here: a drain now waits for it. With a drain already
        // waiting, the caller deletes the port itself.
        let Ok(work) = self.work.clone().try_read_owned() else {
            return false;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _work = work;
            let id = port.id.clone();
            match this.clean(port).await {
                Ok(clean) => {
                    let mut pools = this.pools();
                    match pools.get_mut(&subnet_id) {
                        Some(p) if p.free.len() < p.cap => {
                            p.free.push(clean);
                            drop(pools);
                            this.settled(&id);
                            this.publish_free();
                            return;
                        }
                        _ => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(port = %id, error = %e, "could not give a port back to its pool; deleting it")
                }
            }
            if let Err(e) = this.delete(&id).await {
                tracing::warn!(port = %id, error = %e, "could not delete a port of a pool");
            }
        });
        true
    }

    /// A used port as a free one: named again, no device id, no endpoint tags, the security
    /// groups it was made with (no exposed-ports group of the last container).
    async fn clean(&self, port: Port) -> Result<Port, crate::NeutronError> {
        let body = json!({
            "name": POOL_PORT_NAME,
            "device_id": "",
            "security_groups": self.default_groups(&port),
        });
        let mut clean = self.client.update_port(&port.id, body, None).await?;
        let tags = pool_tags();
        if clean.tags != tags {
            self.client.set_tags("ports", &clean.id, &tags).await?;
            clean.tags = tags;
            // A change of tags is a new revision (the claim's If-Match expects it).
            clean.revision_number += 1;
        }
        Ok(clean)
    }

    /// The security groups a pool port had when it was made (as its pool recorded them when
    /// it made or found ports), else the port's own.
    fn default_groups(&self, port: &Port) -> Vec<String> {
        let subnet = port.fixed_ips.first().map(|f| f.subnet_id.as_str());
        let pools = self.pools();
        subnet
            .and_then(|s| pools.get(s))
            .and_then(|p| p.groups.clone())
            .unwrap_or_else(|| port.security_groups.clone())
    }

    /// Adds made or found ports to the subnet's pool (recording their security groups); those
    /// of a pool that is gone are handed back.
    fn add_free(&self, subnet_id: &str, ports: Vec<Port>) -> Vec<Port> {
        let mut pools = self.pools();
        match pools.get_mut(subnet_id) {
            Some(p) => {
                if p.groups.is_none() {
                    p.groups = ports.first().map(|f| f.security_groups.clone());
                }
                for port in ports {
                    if !p.free.iter().any(|f| f.id == port.id) {
                        p.free.push(port);
                    }
                }
                Vec::new()
            }
            None => ports,
        }
    }

    /// Deletes the free ports of `network_id`'s pools (only `subnet_id`'s, when given) and
    /// forgets them, after the refills and returns under way; before the subnet or network
    /// goes (Neutron refuses while ports remain). Free pool ports of this host there that no
    /// pool holds (a previous run's, when finding them at start failed) go too.
    pub(crate) async fn drain(
        &self,
        network_id: &str,
        subnet_id: Option<&str>,
    ) -> Result<usize, crate::NeutronError> {
        let in_scope = |sid: &str| subnet_id.is_none_or(|s| s == sid);
        let _quiet = self.work.write().await;
        let mut drained: Vec<String> = {
            let mut pools = self.pools();
            let subnets: Vec<String> = pools
                .iter()
                .filter(|(id, p)| p.subnet.network_id == network_id && in_scope(id))
                .map(|(id, _)| id.clone())
                .collect();
            subnets
                .iter()
                .filter_map(|s| pools.remove(s))
                .flat_map(|p| p.free)
                .map(|p| p.id)
                .collect()
        };
        let strays = self.named_ports(Some(network_id)).await?;
        for p in strays {
            let here = p.fixed_ips.iter().any(|f| in_scope(&f.subnet_id));
            if p.device_id.is_empty() && here && !drained.contains(&p.id) {
                drained.push(p.id);
            }
        }
        let n = drained.len();
        self.publish_free();
        let mut first_error = None;
        for id in drained {
            if let Err(e) = self.delete(&id).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// After a restart: the free ports this host's (or VM's) pools had, found by name and
    /// host (or description), each pool active again. Untagged ones (a crash between their
    /// create and their tags) get tags; a VM's not yet on the trunk are attached.
    pub(crate) async fn recover(&self) -> Result<usize, crate::NeutronError> {
        let ports = self.named_ports(None).await?;
        let pending = self
            .journal
            .as_ref()
            .map(Journal::pending)
            .unwrap_or_default();
        let mut n = 0;
        let mut subnets: HashMap<String, Subnet> = HashMap::new();
        for mut port in ports {
            if !port.device_id.is_empty() || port.fixed_ips.len() != 1 {
                continue;
            }
            let sid = port.fixed_ips[0].subnet_id.clone();
            if !subnets.contains_key(&sid) {
                match self.client.subnet(&sid).await {
                    Ok(s) => {
                        subnets.insert(sid.clone(), s);
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
            let Some(subnet) = subnets.get(&sid) else {
                continue;
            };
            self.activate(subnet);
            self.known().insert(port.id.clone());
            if pending.contains(&port.id) {
                // Handed out before the restart: its container's claim or release settles it.
                tracing::info!(port = %port.id, "a pool port handed out before the restart stays out of the pool");
                continue;
            }
            if !self.ready(&mut port).await? {
                continue;
            }
            if self.add_free(&sid, vec![port]).is_empty() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Refills the pools below their target, now and whenever a port is taken or
    /// `update_frequency` has passed. Runs for the daemon's life.
    /// Every `update_frequency` without a take, ports a killed run made (their create came
    /// through after this run started) are taken into a pool short of ports.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.refill_once().await;
            let wait = tokio::time::timeout(self.settings.update_frequency, self.wake.notified());
            if wait.await.is_err() {
                self.sweep_strays().await;
            }
        }
    }

    /// Free ports of this scope by the pool's name that this process does not know: taken
    /// into their pool where it is short of its target, deleted where it is full; those of a
    /// subnet without a pool are left for `docker network rm`, which deletes them.
    async fn sweep_strays(&self) {
        let _work = self.work.read().await;
        let listed: HashSet<String> = self
            .pools()
            .values()
            .flat_map(|p| p.free.iter().map(|f| f.id.clone()))
            .collect();
        let ports = match self.named_ports(None).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "could not look for stray pool ports");
                return;
            }
        };
        // A port the pools listed as free before that read and that Neutron no longer has
        // free was taken outside them: out of the pools.
        let free_now: HashSet<&str> = ports
            .iter()
            .filter(|p| p.device_id.is_empty())
            .map(|p| p.id.as_str())
            .collect();
        for p in self.pools().values_mut() {
            p.free.retain(|f| {
                let gone = listed.contains(&f.id) && !free_now.contains(f.id.as_str());
                if gone {
                    tracing::info!(port = %f.id, "a free pool port is no longer free in Neutron: out of the pool");
                }
                !gone
            });
        }
        for mut port in ports {
            if !port.device_id.is_empty()
                || port.fixed_ips.len() != 1
                || self.known().contains(&port.id)
            {
                continue;
            }
            let sid = port.fixed_ips[0].subnet_id.clone();
            let short_of = {
                let pools = self.pools();
                pools
                    .get(&sid)
                    .map(|p| self.target(p).saturating_sub(p.free.len()))
            };
            let kept = match short_of {
                // No pool: its network is going, and its removal deletes the port.
                None => continue,
                // A full pool does without it: it would only hold an address.
                Some(0) => {
                    match self.delete(&port.id).await {
                        Ok(()) => {
                            tracing::info!(port = %port.id, subnet = %short(&sid), "deleted a pool port a killed run made: its pool is full")
                        }
                        Err(e) => {
                            tracing::debug!(port = %port.id, error = %e, "could not delete a stray pool port")
                        }
                    }
                    continue;
                }
                Some(_) => {
                    self.known().insert(port.id.clone());
                    match self.ready(&mut port).await {
                        Ok(true) => self.add_free(&sid, vec![port]).is_empty(),
                        Ok(false) => false,
                        Err(e) => {
                            self.forget(&port.id);
                            tracing::debug!(error = %e, "could not make a stray pool port ready");
                            false
                        }
                    }
                }
            };
            tracing::info!(subnet = %short(&sid), kept, "found a pool port a killed run made");
        }
        self.publish_free();
    }

    /// The pools below their target and how many ports each lacks (at most a batch).
    fn wanted(&self) -> Vec<(Subnet, usize)> {
        self.pools()
            .values()
            .filter_map(|p| {
                let missing = self.target(p).saturating_sub(p.free.len());
                (missing > 0).then(|| (p.subnet.clone(), missing.min(self.settings.batch)))
            })
            .collect()
    }

    async fn refill_once(&self) {
        if self.wanted().is_empty() {
            return;
        }
        // Ports a killed run made count first.
        self.sweep_strays().await;
        for (subnet, n) in self.wanted() {
            let _work = self.work.read().await;
            match self.make(&subnet, n).await {
                Ok(made) => {
                    tracing::debug!(subnet = %short(&subnet.id), ports = made, "pool refilled");
                }
                Err(e) if e.is_conflict() => {
                    tracing::debug!(subnet = %short(&subnet.id), error = %e, "pool not refilled: the subnet is full")
                }
                Err(e) => {
                    tracing::warn!(subnet = %short(&subnet.id), error = %e, "could not refill a port pool; retrying later")
                }
            }
        }
    }

    /// A port by the pool's name made ready: tagged, and on the VM's trunk. `Ok(false)`:
    /// it could not go on the trunk (full) and was deleted.
    async fn ready(&self, port: &mut Port) -> Result<bool, crate::NeutronError> {
        let tags = pool_tags();
        if port.tags != tags {
            self.client.set_tags("ports", &port.id, &tags).await?;
            port.tags = tags;
            port.revision_number += 1;
        }
        if let Scope::Trunk(t) = &self.scope {
            if !t.holds(&port.id) {
                if let Err(e) = t.attach(&self.client, &port.id).await {
                    tracing::warn!(port = %port.id, trunk = %t.id, error = %e, "could not put a pool port on the VM's trunk; deleting it");
                    self.delete(&port.id).await?;
                    return Ok(false);
                }
                // The trunk made it a subport: a new revision and device owner.
                *port = self.client.port(&port.id).await?;
            }
        }
        Ok(true)
    }

    /// `n` free ports in `subnet` in one request (bound to this host, or described as the
    /// VM's trunk's), each in the pool as soon as it is ready; returns how many.
    async fn make(&self, subnet: &Subnet, n: usize) -> Result<usize, crate::NeutronError> {
        let body = |_| -> Value {
            let mut b = json!({
                "network_id": subnet.network_id,
                "fixed_ips": [{"subnet_id": subnet.id}],
                "name": POOL_PORT_NAME,
                "admin_state_up": true,
            });
            match &self.scope {
                Scope::Host(h) => {
                    b["device_owner"] = json!(DEVICE_OWNER);
                    b["binding:host_id"] = json!(h);
                }
                Scope::Trunk(t) => b["description"] = json!(Self::trunk_description(t)),
            }
            b
        };
        let made = self.client.create_ports((0..n).map(body).collect()).await?;
        self.known().extend(made.iter().map(|p| p.id.clone()));
        let mut ready = 0;
        for mut p in made {
            match self.ready(&mut p).await {
                Ok(true) => {
                    let id = p.id.clone();
                    if self.add_free(&subnet.id, vec![p]).is_empty() {
                        ready += 1;
                        self.publish_free();
                    } else if let Err(e) = self.delete(&id).await {
                        // Drained meanwhile: the port goes too.
                        tracing::warn!(port = %id, error = %e, "could not delete a pool port of a drained pool");
                    }
                }
                Ok(false) => {}
                // Found by name at the next refill (as unknown) or start; made ready then.
                Err(e) => {
                    self.forget(&p.id);
                    tracing::warn!(port = %p.id, error = %e, "could not make a pool port ready")
                }
            }
        }
        Ok(ready)
    }
}

/// A pool port's tags: the pool's, and kuryr-libnetwork's `compute:kuryr` (which its
/// ReleaseAddress goes by).
fn pool_tags() -> Vec<String> {
    vec![POOL_TAG.to_string(), names::DEVICE_OWNER.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_takes_at_most_a_quarter_of_its_subnet() {
        assert_eq!(share("10.0.0.0/29", 0), 1);
        assert_eq!(share("10.0.0.0/30", 0), 0);
        assert_eq!(share("10.0.0.0/28", 0), 3);
        assert_eq!(share("10.0.0.0/24", 0), 63);
        assert_eq!(share("10.0.0.0/24", 10), 10);
        assert_eq!(share("fd00::/64", 0), usize::MAX);
        assert_eq!(share("fd00::/64", 20), 20);
        assert_eq!(share("fd00::/120", 0), 63);
        assert_eq!(share("not a cidr", 0), 0);
    }
}
