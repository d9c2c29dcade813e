//! Addresses this host's Docker holds or is about to give back, and the reclaiming of those a
//! killed kuryr left Docker unable to give back.
//!
//! Docker's plugin client retries a call whose connection dropped with its body already
//! consumed, so when kuryr is killed during a call the retry reaching the restarted kuryr is
//! empty and refused. Two such calls leave an address reserved in the pool's Address_Set for
//! good: a RequestAddress whose reservation committed before the kill (Docker never gets the
//! address, so it never uses nor releases it), and a ReleaseAddress (Docker gives up on it).
//! Northbound does not say which host reserved an address, so each host keeps its own record:
//! a journal in `/run/kuryr` (see [`kuryr_core::journal`]) of the endpoint addresses that are
//! Docker's to settle, from the moment a reservation commits until CreateEndpoint claims it,
//! and from the moment DeleteEndpoint removed the port until ReleaseAddress frees it.
//! CreateNetwork settles what was reserved in its pools before it (`--aux-address`, which no
//! endpoint ever claims).
//!
//! What a killed run left in the journal is *stale*, and so is an address whose reservation
//! lost its Northbound connection (a Raft leader change) and that is reserved once the
//! connection is back: the commit may have been this one, and Docker gets another address. Docker's follow-up calls settle a stale
//! entry as usual; once [`GRACE`] has passed (longer than Docker retries a call) none can
//! come, and [`crate::OvnBackend::reclaim`] releases each stale address that is still
//! reserved and that no port of the pool's networks holds, seen so twice [`CONFIRM`] apart
//! (another host's reservation in flight is claimed within milliseconds). A Swarm network's
//! pools are left alone: the manager keeps its own record. A pool's gateway goes with it.
use crate::backend::{OvnBackend, AS, LS, LSP, NB};
use crate::keys;
use kuryr_core::journal::Journal;
use kuryr_ovsdb::{datum, txn, Replica, Txn};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a stale entry waits for Docker's follow-up before it is released: Docker's
/// plugin client retries a call for 30 s.
pub const GRACE: Duration = Duration::from_secs(60);

/// How long a stale address must stay unheld before it is released.
pub const CONFIRM: Duration = Duration::from_secs(5);

struct Stale {
    since: Instant,
    /// When it was first seen reserved and held by no port.
    unheld_since: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Reservations {
    journal: Option<Journal>,
    /// The previous run's unsettled entries, by pool (its Address_Set name) and address.
    stale: Mutex<HashMap<(String, IpAddr), Stale>>,
    /// Pools Docker released that stale entries kept: deleted once those are released,
    /// unless Docker asks for the pool again meanwhile.
    kept_pools: Mutex<HashSet<String>>,
}

fn entry(set: &str, ip: IpAddr) -> String {
    format!("{set} {ip}")
}

/// A journal line's pool and address; set names have no spaces, addresses none either.
fn parse(entry: &str) -> Option<(String, IpAddr)> {
    let (set, ip) = entry.rsplit_once(' ')?;
    Some((set.to_string(), ip.parse().ok()?))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reservations {
    /// Opens the journal at `path`; what it still has pending is the previous run's, stale
    /// from now. Without a path (or when the file cannot be kept) nothing outlives the
    /// process: only this run's unknown outcomes are reclaimed.
    pub(crate) fn open(path: Option<PathBuf>) -> Reservations {
        let journal = Journal::open_or_warn(
            path,
            "address journal",
            "an address whose call a kill cut short stays reserved",
        );
        let now = Instant::now();
        let stale: HashMap<_, _> = journal
            .iter()
            .flat_map(Journal::pending)
            .filter_map(|e| parse(&e))
            .map(|k| {
                let s = Stale {
                    since: now,
                    unheld_since: None,
                };
                (k, s)
            })
            .collect();
        if !stale.is_empty() {
            tracing::info!(
                addresses = stale.len(),
                "addresses the previous run left for Docker to settle: released in {} s unless Docker settles them",
                GRACE.as_secs()
            );
        }
        Reservations {
            journal,
            stale: Mutex::new(stale),
            kept_pools: Mutex::new(HashSet::new()),
        }
    }

    /// `ip` in pool `set` is Docker's to settle: reserved for an endpoint, or its endpoint
    /// deleted (ReleaseAddress comes next).
    pub(crate) fn handed_out(&self, set: &str, ip: IpAddr) {
        lock(&self.stale).remove(&(set.to_string(), ip));
        if let Some(j) = &self.journal {
            j.taken(&entry(set, ip));
        }
    }

    /// The reservation of `ip` lost its connection and the address is reserved now: it may
    /// be this one, which Docker never gets. Stale from now (released after [`GRACE`] if it
    /// stays unheld), and noted, so a restart does not forget it.
    pub(crate) fn unknown(&self, set: &str, ip: IpAddr) {
        if let Some(j) = &self.journal {
            j.taken(&entry(set, ip));
        }
        let s = Stale {
            since: Instant::now(),
            unheld_since: None,
        };
        lock(&self.stale).insert((set.to_string(), ip), s);
    }

    /// Docker settled the address: an endpoint holds it, or it was released.
    pub(crate) fn settled(&self, set: &str, ip: IpAddr) {
        lock(&self.stale).remove(&(set.to_string(), ip));
        if let Some(j) = &self.journal {
            j.settled(&entry(set, ip));
        }
    }

    /// Everything of pool `set` is settled (CreateNetwork: what Docker reserved before it
    /// is the network's own, like `--aux-address`).
    pub(crate) fn settle_pool(&self, set: &str) {
        lock(&self.stale).retain(|(s, _), _| s != set);
        if let Some(j) = &self.journal {
            for e in j.pending() {
                if parse(&e).is_some_and(|(s, _)| s == set) {
                    j.settled(&e);
                }
            }
        }
    }

    /// Stale entries older than `grace`.
    fn due(&self, grace: Duration) -> Vec<(String, IpAddr)> {
        lock(&self.stale)
            .iter()
            .filter(|(_, s)| s.since.elapsed() >= grace)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether a stale address, seen unheld now, has been unheld for `confirm`.
    fn unheld_for(&self, set: &str, ip: IpAddr, confirm: Duration) -> bool {
        let mut stale = lock(&self.stale);
        let Some(s) = stale.get_mut(&(set.to_string(), ip)) else {
            return false;
        };
        s.unheld_since.get_or_insert_with(Instant::now).elapsed() >= confirm
    }

    /// Docker released pool `set` and it was kept: deleted later if a stale entry is what
    /// keeps it.
    pub(crate) fn pool_kept(&self, set: &str) {
        if lock(&self.stale).keys().any(|(s, _)| s == set) {
            lock(&self.kept_pools).insert(set.to_string());
        }
    }

    /// Docker uses pool `set` again: it is no longer this module's to delete.
    pub(crate) fn pool_in_use(&self, set: &str) {
        let mut kept = lock(&self.kept_pools);
        if !kept.is_empty() {
            kept.remove(set);
        }
    }
}

/// Whether a port of a network using pool `set` has `ip` in its addresses.
fn held_in_pool(rep: &Replica, set: &str, ip: IpAddr) -> bool {
    let ip = ip.to_string();
    [keys::POOL_V4, keys::POOL_V6].iter().any(|k| {
        rep.table(LS).by_external_id(k, set).iter().any(|ls| {
            ls.uuids("ports")
                .iter()
                .filter_map(|u| rep.table(LSP).get(u))
                .any(|p| {
                    p.strings("addresses")
                        .iter()
                        .any(|a| a.split_whitespace().skip(1).any(|w| w == ip))
                })
        })
    })
}

impl OvnBackend {
    /// DeleteEndpoint removed the port holding `ip` in pool `set`: Docker's ReleaseAddress
    /// comes next, unless the pool is a Swarm manager's (the manager releases its own).
    pub(crate) fn endpoint_deleted(&self, set: &str, ip: IpAddr) {
        let swarm = self
            .client()
            .replica()
            .table(AS)
            .one_by_name(set)
            .is_some_and(|r| r.external_id(keys::POOL_SWARM) == Some("true"));
        if !swarm {
            self.reservations().handed_out(set, ip);
        }
    }

    /// The pools of network `network_id`, IPv4 first.
    pub(crate) fn pool_sets(&self, network_id: &str) -> [Option<String>; 2] {
        let rep = self.client().replica();
        let key = keys::net_key(network_id);
        let ls = rep.table(LS).by_external_key(&key).into_iter().next();
        [keys::POOL_V4, keys::POOL_V6].map(|k| {
            ls.as_ref()
                .and_then(|ls| ls.external_id(k))
                .map(str::to_string)
        })
    }

    /// Releases the stale entries whose [`GRACE`] has passed (see the module's text). The
    /// daemon calls it every few seconds; it costs a lock when nothing is stale.
    pub async fn reclaim(&self) {
        self.reclaim_with(GRACE, CONFIRM).await;
    }

    /// Releases the stale entries older than `grace` whose address is still reserved and has
    /// been held by no port for `confirm`, then deletes the pools Docker released that only
    /// they kept. Returns how many addresses it released.
    pub async fn reclaim_with(&self, grace: Duration, confirm: Duration) -> usize {
        let r = self.reservations();
        let mut released = 0;
        let mut pools = HashSet::new();
        for (set, ip) in r.due(grace) {
            let (reserved, swarm, held) = {
                let rep = self.client().replica();
                let row = rep.table(AS).one_by_name(&set);
                let reserved = row
                    .as_ref()
                    .is_some_and(|r| r.strings("addresses").contains(&ip.to_string()));
                let swarm = row
                    .as_ref()
                    .is_some_and(|r| r.external_id(keys::POOL_SWARM) == Some("true"));
                (reserved, swarm, held_in_pool(&rep, &set, ip))
            };
            if !reserved || swarm || held || !self.endpoints_holding(ip).is_empty() {
                r.settled(&set, ip);
                continue;
            }
            if !r.unheld_for(&set, ip, confirm) {
                continue;
            }
            match self.release_in_set(&set, ip, &set).await {
                Ok(()) => {
                    tracing::info!(pool = %set, %ip, "released an address Docker could no longer settle (kuryr was killed during its call)");
                    r.settled(&set, ip);
                    released += 1;
                    pools.insert(set);
                }
                Err(e) => {
                    tracing::warn!(pool = %set, %ip, error = %e, "could not release an address Docker could no longer settle; trying again later")
                }
            }
        }
        for set in pools {
            if !lock(&r.kept_pools).contains(&set) {
                continue;
            }
            match self.gc_pool(&set, false).await {
                Ok(()) => {
                    lock(&r.kept_pools).remove(&set);
                }
                Err(e) => {
                    tracing::warn!(pool = %set, error = %e, "could not delete a pool Docker released; trying again later")
                }
            }
        }
        released
    }

    /// Frees `ip` in pool `set`, decided on the server (an absent address is no change; the
    /// pool's gateway is left alone). `pool` names the pool in an error.
    pub(crate) async fn release_in_set(
        &self,
        set: &str,
        ip: IpAddr,
        pool: &str,
    ) -> crate::Result<()> {
        self.write(&format!("release address {ip} in pool {pool}"), |_| {
            let mut t = Txn::new(NB);
            t.mutate(
                AS,
                vec![
                    txn::eq("name", set),
                    txn::excludes(
                        "external_ids",
                        datum::map([(keys::POOL_GATEWAY, ip.to_string())]),
                    ),
                ],
                vec![txn::mutate_delete(
                    "addresses",
                    datum::set([json!(ip.to_string())]),
                )],
            );
            Ok(Some(t))
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn what_a_killed_run_left_unsettled_is_stale_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kuryr.sock.address-journal");
        let r = Reservations::open(Some(path.clone()));
        r.handed_out("kuryr_c_10.1.0.0_2F24", ip("10.1.0.5"));
        r.handed_out("kuryr_c_10.1.0.0_2F24", ip("10.1.0.6"));
        r.handed_out("kuryr_c_fd00_3A_3A_2F64", ip("fd00::7"));
        r.settled("kuryr_c_10.1.0.0_2F24", ip("10.1.0.6"));
        assert!(r.due(Duration::ZERO).is_empty(), "this run's are not stale");
        drop(r);
        let r = Reservations::open(Some(path));
        let mut due = r.due(Duration::ZERO);
        due.sort();
        assert_eq!(
            due,
            vec![
                ("kuryr_c_10.1.0.0_2F24".to_string(), ip("10.1.0.5")),
                ("kuryr_c_fd00_3A_3A_2F64".to_string(), ip("fd00::7")),
            ]
        );
        assert!(r.due(GRACE).is_empty(), "nothing is due before the grace");
        r.settled("kuryr_c_fd00_3A_3A_2F64", ip("fd00::7"));
        assert_eq!(r.due(Duration::ZERO).len(), 1);
        r.settle_pool("kuryr_c_10.1.0.0_2F24");
        assert!(r.due(Duration::ZERO).is_empty());
    }

    #[test]
    fn a_stale_address_is_released_only_once_it_stayed_unheld() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j");
        Reservations::open(Some(path.clone())).handed_out("s", ip("10.0.0.9"));
        let r = Reservations::open(Some(path));
        assert!(!r.unheld_for("s", ip("10.0.0.9"), Duration::from_secs(60)));
        assert!(r.unheld_for("s", ip("10.0.0.9"), Duration::ZERO));
        assert!(
            !r.unheld_for("s", ip("10.0.0.10"), Duration::ZERO),
            "not stale"
        );
    }

    #[test]
    fn journal_lines_that_are_not_entries_are_ignored() {
        assert_eq!(
            parse("kuryr_x 10.0.0.1"),
            Some(("kuryr_x".into(), ip("10.0.0.1")))
        );
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("kuryr_x notanip"), None);
    }
}
