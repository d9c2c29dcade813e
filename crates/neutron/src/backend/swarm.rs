//! Swarm networks (global scope). A Swarm manager asks for every task's address before any
//! node has created the network, so its AllocateNetwork makes the Neutron network and subnet
//! (tagged [`names::NET_SWARM`]) and the nodes' CreateNetwork find them. A node's
//! DeleteNetwork and ReleasePool (its last task gone) leave them to the manager's FreeNetwork,
//! which deletes what is left on the network, including ports of nodes that died.
//!
//! Each task address is asked twice, by the manager (Docker's `ipam.serial` option set, no
//! preference) and by the node running the task (the manager's address as preference), and
//! released twice. The manager's port is the node's to bind; a manager asking again for an
//! address it holds (after a restart or a leader change) gets it; a release of a port whose
//! endpoint another node (or this one) still has leaves it to that endpoint's release.

use super::{fail, short, NeutronBackend};
use crate::names;
use crate::types::{Network, Port};
use kuryr_core::{BackendError, NetworkSpec};

pub(super) fn is_swarm(net: &Network) -> bool {
    net.tags.iter().any(|t| t == names::NET_SWARM)
}

impl NeutronBackend {
    /// AllocateNetwork: the network and its subnets, as CreateNetwork makes them, marked as
    /// the Swarm's. Asked again after a leader change: the same network.
    pub(super) async fn allocate_swarm_network(
        &self,
        spec: &NetworkSpec,
    ) -> Result<(), BackendError> {
        use kuryr_core::Backend;
        self.create_network(spec).await?;
        let id = &spec.network_id;
        let Some(mut net) = self.network(id).await? else {
            return Err(BackendError::NotFound(format!(
                "the Neutron network of Swarm network {} is gone right after its creation",
                short(id)
            )));
        };
        if !is_swarm(&net) {
            self.client
                .add_tag("networks", &net.id, names::NET_SWARM)
                .await
                .map_err(|e| fail(format!("mark network {} as a Swarm's", net.id), e))?;
            net.tags.push(names::NET_SWARM.into());
            self.cache().networks.insert(id.clone(), net);
        }
        Ok(())
    }

    /// A node's DeleteNetwork of a Swarm network: only this host's free pool ports on it go.
    pub(super) async fn leave_swarm_network(&self, net: &Network) -> Result<(), BackendError> {
        if let Some(pools) = &self.pools {
            pools.drain(&net.id, None).await.map_err(|e| {
                fail(
                    format!("delete this host's pool ports on network {}", net.id),
                    e,
                )
            })?;
        }
        tracing::info!(network = %net.id, "Swarm network kept for the other nodes (the manager's FreeNetwork removes it)");
        Ok(())
    }

    /// Whether the network of `network_id` (Neutron's id) is a Swarm's: from memory, else
    /// asked once and remembered as its Docker network's (a network that is gone is not).
    pub(super) async fn is_swarm_network(&self, network_id: &str) -> Result<bool, BackendError> {
        let cached = self
            .cache()
            .networks
            .values()
            .find(|n| n.id == network_id)
            .map(is_swarm);
        if let Some(s) = cached {
            return Ok(s);
        }
        match self.client.network(network_id).await {
            Ok(n) => {
                let swarm = is_swarm(&n);
                if let Some(id) = names::docker_id_of(&n.tags) {
                    self.cache().networks.entry(id).or_insert(n);
                }
                Ok(swarm)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(fail(format!("read network {network_id}"), e)),
        }
    }

    /// A release in a Swarm network: whether the port stays because an endpoint this process
    /// did not delete holds it (another node's task, or the manager's late release of an
    /// address given out again).
    pub(super) fn kept_for_its_endpoint(&self, port: &Port) -> bool {
        if port.device_id.is_empty() {
            return false;
        }
        !self.cache().released_endpoints.contains(&port.device_id)
    }

    /// The port of an endpoint deleted here is gone: nothing more to remember.
    pub(super) fn port_deleted(&self, port: &Port) {
        if !port.device_id.is_empty() {
            self.cache().released_endpoints.remove(&port.device_id);
        }
    }
}
