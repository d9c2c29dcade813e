//! What a kuryr killed during a call leaves that no Docker object claims (Docker retries the
//! call with its body consumed; kuryr refuses the empty retry and Docker gives up):
//! - ports that RequestAddress made before Docker got their address: Neutron keeps a subnet
//!   or network while it has ports, and Docker removes a network only once it has no
//!   endpoint on it, so when the pool or the network goes these go too;
//! - a network CreateNetwork made before Docker got the answer: Docker never sends its
//!   DeleteNetwork, only the ReleasePool of the failed `docker network create`, after which
//!   the network has no subnet of kuryr's left; it goes then.

use super::{fail, short, swarm, NeutronBackend};
use crate::names;
use kuryr_core::BackendError;

impl NeutronBackend {
    /// Deletes kuryr's endpoint-less `kuryr-unbound-port`s on `network_id` (only those in
    /// `subnet_id`, when given); returns how many.
    pub(super) async fn delete_unclaimed(
        &self,
        network_id: &str,
        subnet_id: Option<&str>,
    ) -> Result<usize, BackendError> {
        let what = format!("delete the unclaimed ports of network {network_id}");
        let ids = self
            .delete_ours_where(
                network_id,
                &[("name", names::UNBOUND_PORT_NAME)],
                &what,
                |p| {
                    p.device_id.is_empty()
                        && subnet_id.is_none_or(|s| p.fixed_ips.iter().any(|f| f.subnet_id == s))
                },
            )
            .await?;
        for id in &ids {
            tracing::info!(port = %id, network = %short(network_id), "deleted a port no endpoint claimed");
        }
        Ok(ids.len())
    }

    /// After ReleasePool deleted its subnets: deletes Neutron network `net_id` if kuryr made
    /// it for a Docker network (named and tagged so, not an existing network kuryr adopted,
    /// not a Swarm network) and it has no subnet left. Docker 29 sends ReleasePool before
    /// DeleteNetwork, which then finds nothing to do.
    pub(super) async fn delete_if_emptied(&self, net_id: &str) -> Result<(), BackendError> {
        let net = match self.client.network(net_id).await {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(fail(format!("look up network {net_id}"), e)),
        };
        let made_by_kuryr = net.name.starts_with(names::NET_NAME_PREFIX)
            && !net.tags.iter().any(|t| t.starts_with(names::NET_EXISTING));
        if !made_by_kuryr || swarm::is_swarm(&net) || !net.subnets.is_empty() {
            return Ok(());
        }
        let Some(docker_id) = names::docker_id_of(&net.tags) else {
            return Ok(());
        };
        tracing::info!(network = %net.id, docker_network = %short(&docker_id), "deleting a network its pools left without subnets (a network create Docker gave up on, or Docker 29 releasing the pool first)");
        self.remove_network(&docker_id, net).await
    }
}
