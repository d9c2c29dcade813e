//! Ports that RequestAddress made and no endpoint ever claimed: a kuryr killed after
//! Neutron made the port and before Docker got its address leaves one behind, and
//! Neutron keeps a subnet or network while it has ports. Docker removes a network only
//! once it has no endpoint on it, so when the pool or the network goes these go too.

use super::{short, NeutronBackend};
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
}
