//! What a kuryr killed during a call leaves that no Docker object claims (Docker retries the
//! call with its body consumed; kuryr refuses the empty retry and Docker gives up):
//! - ports that RequestAddress made before Docker got their address: Neutron keeps a subnet
//!   or network while it has ports, and Docker removes a network only once it has no
//!   endpoint on it, so when the pool or the network goes these go too;
//! - a port a failed CreateEndpoint left bound (Neutron applied the binding, the answer was
//!   lost) whose ReleaseAddress failed too (Neutron unreachable): Docker forgets it; it goes
//!   with the network, which Docker removes only once it has no endpoint;
//! - a network CreateNetwork made before Docker got the answer: Docker never sends its
//!   DeleteNetwork, only the ReleasePool of the failed `docker network create`, after which
//!   the network has no subnet of kuryr's left; it goes then.

use super::{fail, short, swarm, NeutronBackend};
use crate::names;
use crate::types::Port;
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
        let deleted = self
            .delete_ours_where(
                network_id,
                &[("name", names::UNBOUND_PORT_NAME)],
                &what,
                |p| unclaimed(p) && in_subnet(p, subnet_id),
            )
            .await?;
        log_deleted(&deleted, network_id);
        Ok(deleted.len())
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
        if !made_by_kuryr(&net) || !net.subnets.is_empty() {
            return Ok(());
        }
        let Some(docker_id) = names::docker_id_of(&net.tags) else {
            return Ok(());
        };
        tracing::info!(network = %net.id, docker_network = %short(&docker_id), "deleting a network its pools left without subnets (a network create Docker gave up on, or Docker 29 releasing the pool first)");
        self.remove_network(&docker_id, net).await
    }

    /// At DeleteNetwork or ReleasePool of a network kuryr made for one Docker network:
    /// deletes kuryr's ports on it (in `subnet_id`, when given) that are bound to this host
    /// or to none. Docker deletes a network, and releases its pool, only once no endpoint of
    /// this host is on it, so these are what failed calls left; another host's stay.
    pub(super) async fn delete_left_behind(
        &self,
        net_id: &str,
        subnet_id: Option<&str>,
    ) -> Result<(), BackendError> {
        let host = self.settings.host.as_str();
        let what = format!("delete the ports failed calls left on network {net_id}");
        let deleted = self
            .delete_ours_where(net_id, &[], &what, |p| {
                p.host_id
                    .as_deref()
                    .is_none_or(|h| h.is_empty() || h == host)
                    && in_subnet(p, subnet_id)
            })
            .await?;
        log_deleted(&deleted, net_id);
        Ok(())
    }
}

/// A port RequestAddress made that no endpoint claimed.
fn unclaimed(p: &Port) -> bool {
    p.name == names::UNBOUND_PORT_NAME && p.device_id.is_empty()
}

fn in_subnet(p: &Port, subnet_id: Option<&str>) -> bool {
    subnet_id.is_none_or(|s| p.fixed_ips.iter().any(|f| f.subnet_id == s))
}

fn log_deleted(ports: &[Port], network_id: &str) {
    for p in ports {
        if unclaimed(p) {
            tracing::info!(port = %p.id, network = %short(network_id), "deleted a port no endpoint claimed");
        } else {
            tracing::info!(port = %p.id, network = %short(network_id), "deleted a port a failed call left");
        }
    }
}

/// A network kuryr made for one Docker network: named and tagged so, not an existing network
/// kuryr adopted, not a Swarm network (whose ports are every node's).
pub(super) fn made_by_kuryr(net: &crate::types::Network) -> bool {
    net.name.starts_with(names::NET_NAME_PREFIX)
        && !net.tags.iter().any(|t| t.starts_with(names::NET_EXISTING))
        && !swarm::is_swarm(net)
}
