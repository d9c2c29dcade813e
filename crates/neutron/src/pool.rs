//! Port pools (`[vif_pool]`): Neutron ports made ahead of time on this host, so that a
//! container's start skips the port's create and bind, and its stop the delete.
//!
//! A pool port is created (in bulk) bound to this host (`binding:host_id`, `compute:kuryr`),
//! named [`names::POOL_PORT_NAME`] while it is free and tagged [`names::POOL_TAG`] for good.
//! RequestAddress takes a free one of the subnet (or the one holding `--ip`); CreateEndpoint
//! names it and sets its device id, as for any port; ReleaseAddress gives it back: its name,
//! device id, endpoint tags and security groups are reset in the background and it is free
//! again. A restart finds the free ones by name and host. A subnet's pool never holds more
//! than a quarter of the subnet's addresses (other hosts share the subnet), nor more than
//! `ports_pool_max`; `docker network rm` deletes the network's free ports first.
use crate::client::NeutronClient;
use crate::names::{self, DEVICE_OWNER, POOL_PORT_NAME, POOL_TAG};
use crate::types::{Port, Subnet};
use ipnet::IpNet;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

/// How the pools fared since the start (for `kuryr bench` and the metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub hits: u64,
    pub misses: u64,
    pub free: u64,
}

struct SubnetPool {
    subnet: Subnet,
    /// The largest number of free ports this pool keeps.
    cap: usize,
    free: Vec<Port>,
}

pub(crate) struct Pools {
    client: Arc<NeutronClient>,
    host: String,
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
    hits: AtomicU64,
    misses: AtomicU64,
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
    pub(crate) fn new(client: Arc<NeutronClient>, host: &str, settings: PoolSettings) -> Pools {
        Pools {
            client,
            host: host.to_string(),
            settings,
            pools: Mutex::new(HashMap::new()),
            known: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            work: Arc::new(RwLock::new(())),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, HashMap<String, SubnetPool>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pool port deleted by someone else (a release above the pool's size).
    pub(crate) fn forget(&self, port_id: &str) {
        self.known().remove(port_id);
    }

    fn target(&self, p: &SubnetPool) -> usize {
        self.settings.min.min(p.cap)
    }

    fn publish_free(&self) {
        kuryr_metrics::port_pool_free(self.pools().values().map(|p| p.free.len() as u64).sum());
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            free: self.pools().values().map(|p| p.free.len() as u64).sum(),
        }
    }

    /// Keeps a pool for `subnet` from now on (refilled in the background).
    pub(crate) fn activate(&self, subnet: &Subnet) {
        let cap = share(&subnet.cidr, self.settings.max);
        if cap == 0 {
            return;
        }
        let added = {
            let mut pools = self.pools();
            let fresh = !pools.contains_key(&subnet.id);
            pools
                .entry(subnet.id.clone())
                .or_insert_with(|| SubnetPool {
                    subnet: subnet.clone(),
                    cap,
                    free: Vec::new(),
                });
            fresh
        };
        if added {
            self.wake.notify_one();
        }
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
                None => p.free.len().checked_sub(1),
            };
            i.map(|i| p.free.swap_remove(i))
        };
        match &port {
            Some(_) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                kuryr_metrics::port_pool("hit");
            }
            None if ip.is_none() => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                kuryr_metrics::port_pool("miss");
            }
            None => {}
        }
        self.publish_free();
        self.wake.notify_one();
        port
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
        if !port.tags.iter().any(|t| t == POOL_TAG)
            || port.host_id.as_deref() != Some(self.host.as_str())
            || port.fixed_ips.len() != 1
        {
            return false;
        }
        let subnet_id = port.fixed_ips[0].subnet_id.clone();
        {
            let pools = self.pools();
            match pools.get(&subnet_id) {
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
            match this.client.delete_port(&id).await {
                Ok(()) => this.forget(&id),
                Err(e) => {
                    tracing::warn!(port = %id, error = %e, "could not delete a port of a pool")
                }
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

    /// The security groups a pool port had when it was made: those of a free port of its
    /// pool, else the port's own less kuryr's exposed-ports groups.
    fn default_groups(&self, port: &Port) -> Vec<String> {
        let subnet = port.fixed_ips.first().map(|f| f.subnet_id.as_str());
        let pools = self.pools();
        if let Some(free) = subnet
            .and_then(|s| pools.get(s))
            .and_then(|p| p.free.first())
        {
            return free.security_groups.clone();
        }
        port.security_groups.clone()
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
        let strays = self
            .client
            .ports(&[
                ("network_id", network_id),
                ("name", POOL_PORT_NAME),
                ("binding:host_id", &self.host),
            ])
            .await?;
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
            match self.client.delete_port(&id).await {
                Ok(()) => self.forget(&id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// After a restart: the free ports this host's pools had (by name and host), each pool
    /// active again. Untagged ones (a crash between their create and their tags) get tags.
    pub(crate) async fn recover(&self) -> Result<usize, crate::NeutronError> {
        let ports = self
            .client
            .ports(&[
                ("name", POOL_PORT_NAME),
                ("binding:host_id", &self.host),
                ("device_owner", DEVICE_OWNER),
            ])
            .await?;
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
            let tags = pool_tags();
            if port.tags != tags {
                self.client.set_tags("ports", &port.id, &tags).await?;
                port.tags = tags;
                port.revision_number += 1;
            }
            self.activate(subnet);
            self.known().insert(port.id.clone());
            let mut pools = self.pools();
            if let Some(p) = pools.get_mut(&sid) {
                p.free.push(port);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Refills the pools below their target, now and whenever a port is taken or
    /// `update_frequency` has passed. Runs for the daemon's life.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.refill_once().await;
            let _ =
                tokio::time::timeout(self.settings.update_frequency, self.wake.notified()).await;
        }
    }

    async fn refill_once(&self) {
        let wanted: Vec<(Subnet, usize)> = self
            .pools()
            .values()
            .filter_map(|p| {
                let missing = self.target(p).saturating_sub(p.free.len());
                (missing > 0).then(|| (p.subnet.clone(), missing.min(self.settings.batch)))
            })
            .collect();
        for (subnet, n) in wanted {
            let _work = self.work.read().await;
            let adopted = match self.adopt_strays(&subnet, n).await {
                Ok(ports) => ports,
                Err(e) => {
                    tracing::warn!(subnet = %short(&subnet.id), error = %e, "could not look for stray pool ports");
                    Vec::new()
                }
            };
            let n = n.saturating_sub(adopted.len());
            if !adopted.is_empty() {
                tracing::info!(subnet = %short(&subnet.id), ports = adopted.len(), "pool ports a killed run made, in the pool again");
                if let Some(p) = self.pools().get_mut(&subnet.id) {
                    p.free.extend(adopted);
                }
            }
            if n == 0 {
                self.publish_free();
                continue;
            }
            match self.make(&subnet, n).await {
                Ok(made) => {
                    let n = made.len();
                    let unwanted = {
                        let mut pools = self.pools();
                        match pools.get_mut(&subnet.id) {
                            Some(p) => {
                                p.free.extend(made);
                                Vec::new()
                            }
                            // Drained meanwhile: these go too.
                            None => made,
                        }
                    };
                    tracing::debug!(subnet = %short(&subnet.id), ports = n, "pool refilled");
                    self.publish_free();
                    for port in unwanted {
                        let _ = self.client.delete_port(&port.id).await;
                    }
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

    /// Free ports of the pool's name in `subnet` on this host that this process does not
    /// know: made by a run killed before it could record them. Up to `want` of them are
    /// tagged and known from now; the rest are deleted.
    async fn adopt_strays(
        &self,
        subnet: &Subnet,
        want: usize,
    ) -> Result<Vec<Port>, crate::NeutronError> {
        let ports = self
            .client
            .ports(&[
                ("network_id", &subnet.network_id),
                ("name", POOL_PORT_NAME),
                ("binding:host_id", &self.host),
            ])
            .await?;
        let mut out = Vec::new();
        for mut port in ports {
            let ours = port.device_id.is_empty()
                && port.fixed_ips.len() == 1
                && port.fixed_ips[0].subnet_id == subnet.id
                && !self.known().contains(&port.id);
            if !ours {
                continue;
            }
            if out.len() >= want {
                self.client.delete_port(&port.id).await?;
                continue;
            }
            let tags = pool_tags();
            if port.tags != tags {
                self.client.set_tags("ports", &port.id, &tags).await?;
                port.tags = tags;
                port.revision_number += 1;
            }
            self.known().insert(port.id.clone());
            out.push(port);
        }
        Ok(out)
    }

    /// `n` free ports in `subnet`, bound to this host, in one request, then tagged.
    async fn make(&self, subnet: &Subnet, n: usize) -> Result<Vec<Port>, crate::NeutronError> {
        let body = |_| -> Value {
            json!({
                "network_id": subnet.network_id,
                "fixed_ips": [{"subnet_id": subnet.id}],
                "name": POOL_PORT_NAME,
                "admin_state_up": true,
                "device_owner": DEVICE_OWNER,
                "binding:host_id": self.host,
            })
        };
        let mut ports = self.client.create_ports((0..n).map(body).collect()).await?;
        self.known().extend(ports.iter().map(|p| p.id.clone()));
        let tags = pool_tags();
        for p in &mut ports {
            if let Err(e) = self.client.set_tags("ports", &p.id, &tags).await {
                // Still found by name at the next start; tagged then.
                tracing::warn!(port = %p.id, error = %e, "could not tag a pool port");
                continue;
            }
            p.tags = tags.clone();
            p.revision_number += 1;
        }
        Ok(ports)
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
