//! Network creates that failed after their POST may have made the Neutron network: Neutron
//! made it but its answer never came (Neutron cut off), or kuryr was killed before it had
//! tagged it or made its subnets. Docker's network create then failed, so Docker never
//! deletes that network, and ReleasePool cannot find it (no subnet of the pool is on it).
//!
//! Each create of a new network is noted in a journal (`/run/kuryr/<socket>.network-journal`)
//! before its POST, and settled when CreateNetwork succeeds. A create that failed, or that the
//! previous run left noted, is looked up by its name once [`SETTLE`] has passed: a network kuryr
//! made under that name for that Docker network (or untagged) goes, with what kuryr left on it.
use super::unclaimed::made_by_kuryr;
use super::{short, NeutronBackend};
use crate::names;
use kuryr_core::journal::Journal;
use kuryr_core::BackendError;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after a create failed (or after the start, for the previous run's) its network is
/// looked for: longer than Neutron takes to finish a POST whose answer was lost.
pub const SETTLE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    /// Docker network ids whose CreateNetwork is running in this process.
    running: HashSet<String>,
    /// Docker network ids whose create failed or was cut short, with when.
    failed: HashMap<String, Instant>,
}

#[derive(Default)]
pub(crate) struct Creates {
    journal: Option<Journal>,
    state: Mutex<State>,
}

impl Creates {
    /// Opens the journal at `path`; the creates it still has noted are the previous run's,
    /// failed as of now. Without a path only this run's failures are looked after.
    pub(crate) fn open(path: Option<PathBuf>) -> Creates {
        let journal = Journal::open_or_warn(
            path,
            "network journal",
            "a network whose create a kill cut short stays in Neutron",
        );
        let now = Instant::now();
        let failed: HashMap<String, Instant> = journal
            .iter()
            .flat_map(Journal::pending)
            .map(|id| (id, now))
            .collect();
        if !failed.is_empty() {
            tracing::info!(
                networks = failed.len(),
                "network creates the previous run did not finish: their Neutron networks are deleted in {} s",
                SETTLE.as_secs()
            );
        }
        Creates {
            journal,
            state: Mutex::new(State {
                running: HashSet::new(),
                failed,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A create of Docker network `id`'s Neutron network is about to be sent. Unless
    /// [`Create::succeeded`] is called, the create counts as failed when the guard goes (the
    /// call returned an error, or Docker hung up and the call was dropped).
    pub(crate) fn begin(&self, id: &str) -> Create<'_> {
        {
            let mut s = self.lock();
            s.running.insert(id.to_string());
            s.failed.remove(id);
        }
        if let Some(j) = &self.journal {
            j.taken(id);
        }
        Create {
            creates: self,
            id: id.to_string(),
            done: false,
        }
    }

    /// The failed creates due for a look: [`SETTLE`] old and not running again.
    fn due(&self) -> Vec<String> {
        let s = self.lock();
        s.failed
            .iter()
            .filter(|(id, at)| at.elapsed() >= SETTLE && !s.running.contains(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Nothing is left of the create of `id`.
    fn resolved(&self, id: &str) {
        let settled = {
            let mut s = self.lock();
            s.failed.remove(id).is_some() && !s.running.contains(id)
        };
        if settled {
            if let Some(j) = &self.journal {
                j.settled(id);
            }
        }
    }

    #[cfg(test)]
    fn failed_since(&self, id: &str, at: Instant) {
        self.lock().failed.insert(id.to_string(), at);
    }
}

/// A create under way (see [`Creates::begin`]).
pub(crate) struct Create<'a> {
    creates: &'a Creates,
    id: String,
    done: bool,
}

impl Create<'_> {
    /// The network and its subnets are made and Docker gets its answer.
    pub(crate) fn succeeded(mut self) {
        self.done = true;
        self.creates.lock().running.remove(&self.id);
        if let Some(j) = &self.creates.journal {
            j.settled(&self.id);
        }
    }
}

impl Drop for Create<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut s = self.creates.lock();
        s.running.remove(&self.id);
        s.failed.insert(self.id.clone(), Instant::now());
    }
}

impl NeutronBackend {
    /// Deletes the networks of failed creates (see the module's documentation). Neutron
    /// unreachable: tried again at the next call.
    pub(super) async fn reclaim_failed_creates(&self) {
        for id in self.creates.due() {
            let name = names::network_name(&id);
            let nets = match self.client.networks(&[("name", &name)]).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(docker_network = %short(&id), error = %e, "cannot look for the network of a failed create yet");
                    continue;
                }
            };
            let mut left = false;
            for net in nets.into_iter().filter(|n| {
                n.tags.is_empty()
                    || (made_by_kuryr(n) && names::docker_id_of(&n.tags).as_deref() == Some(&id))
            }) {
                let net_id = net.id.clone();
                match self.remove_network(&id, net).await {
                    Ok(()) => {
                        tracing::info!(network = %net_id, docker_network = %short(&id), "deleted the network of a network create Docker gave up on")
                    }
                    Err(BackendError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(network = %net_id, docker_network = %short(&id), error = %e, "cannot delete the network of a network create Docker gave up on; trying again");
                        left = true;
                    }
                }
            }
            if !left {
                self.creates.resolved(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "238f873bd8206acac4673b8d6a86cba8a27f6f28afc68a79dc3460ad4a21bd99";

    #[test]
    fn a_create_that_succeeds_is_settled_and_never_due() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kuryr.sock.network-journal");
        let c = Creates::open(Some(path.clone()));
        let g = c.begin(ID);
        assert!(path.exists(), "noted before the POST");
        g.succeeded();
        assert!(!path.exists(), "nothing pending, no file");
        assert!(c.lock().failed.is_empty());
    }

    #[test]
    fn a_failed_create_is_due_after_settle_and_not_while_it_runs_again() {
        let c = Creates::open(None);
        drop(c.begin(ID));
        assert!(c.due().is_empty(), "not before SETTLE");
        let long_ago = Instant::now() - SETTLE - Duration::from_secs(1);
        c.failed_since(ID, long_ago);
        assert_eq!(c.due(), vec![ID.to_string()]);
        let again = c.begin(ID);
        c.failed_since(ID, long_ago);
        assert!(c.due().is_empty(), "a create running again is left alone");
        again.succeeded();
        c.resolved(ID);
        assert!(c.due().is_empty());
    }

    #[test]
    fn the_previous_runs_unfinished_creates_are_failed_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kuryr.sock.network-journal");
        {
            let c = Creates::open(Some(path.clone()));
            std::mem::forget(c.begin(ID));
        }
        let c = Creates::open(Some(path.clone()));
        assert!(c.lock().failed.contains_key(ID));
        c.resolved(ID);
        assert!(!path.exists(), "settled once resolved");
        assert!(Creates::open(Some(path)).lock().failed.is_empty());
    }
}
