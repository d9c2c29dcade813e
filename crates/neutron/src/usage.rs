//! How full the subnets of kuryr's networks are, for the IPAM metrics: one request for the
//! networks, one for their subnets, one per network for its ports.
use crate::backend::NeutronBackend;
use crate::names;
use crate::types::Port;
use ipnet::IpNet;
use kuryr_core::{BackendError, PoolUsage};
use std::collections::{HashMap, HashSet};

impl NeutronBackend {
    /// Every subnet of a network kuryr (or kuryr-libnetwork) made or took over, with the
    /// addresses its ports hold (DHCP and router ports too) and its gateway.
    pub(crate) async fn pool_usage(&self) -> Result<Vec<PoolUsage>, BackendError> {
        let unavailable = |what: &str, e| BackendError::Unavailable {
            context: format!("{what} for the IPAM metrics"),
            source: Box::new(e),
        };
        let networks = self
            .client()
            .networks(&[])
            .await
            .map_err(|e| unavailable("list networks", e))?;
        let ours: HashSet<String> = networks
            .into_iter()
            .filter(|n| n.tags.iter().any(|t| is_kuryr_network_tag(t)))
            .map(|n| n.id)
            .collect();
        if ours.is_empty() {
            return Ok(Vec::new());
        }
        let subnets = self
            .client()
            .subnets(&[])
            .await
            .map_err(|e| unavailable("list subnets", e))?;
        let mut ports_of: HashMap<String, Vec<Port>> = HashMap::new();
        for net in &ours {
            let ports = self
                .client()
                .ports(&[("network_id", net)])
                .await
                .map_err(|e| unavailable("list ports", e))?;
            ports_of.insert(net.clone(), ports);
        }
        let mut out: Vec<PoolUsage> = subnets
            .into_iter()
            .filter(|s| ours.contains(&s.network_id))
            .filter_map(|s| {
                let cidr: IpNet = s.cidr.parse().ok()?;
                let mut taken: HashSet<&str> = ports_of
                    .get(&s.network_id)
                    .into_iter()
                    .flatten()
                    .flat_map(|p| &p.fixed_ips)
                    .filter(|f| f.subnet_id == s.id)
                    .map(|f| f.ip_address.as_str())
                    .collect();
                // The gateway is reserved whether or not a router port holds it yet.
                if let Some(gw) = s.gateway_ip.as_deref() {
                    taken.insert(gw);
                }
                let in_use = taken.len() as u64;
                Some(PoolUsage {
                    pool: if s.name.is_empty() {
                        s.id.clone()
                    } else {
                        s.name.clone()
                    },
                    cidr,
                    in_use,
                })
            })
            .collect();
        out.sort_by(|a, b| a.pool.cmp(&b.pool));
        Ok(out)
    }
}

/// The tags kuryr puts on the Neutron networks of Docker networks: made (`lh`/`uh`) or taken
/// over (`kuryr.net.existing`).
fn is_kuryr_network_tag(tag: &str) -> bool {
    [names::LH, names::NET_EXISTING].iter().any(|k| {
        tag.strip_prefix(k)
            .is_some_and(|rest| rest.starts_with(':'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuryr_networks_are_known_by_their_tags() {
        assert!(is_kuryr_network_tag("kuryr.net.uuid.lh:0123"));
        assert!(is_kuryr_network_tag("kuryr.net.existing:abc"));
        assert!(!is_kuryr_network_tag("kuryr.net.uuid.uh:0123"));
        assert!(!is_kuryr_network_tag("kuryr.net.uuid.lhx"));
        assert!(!is_kuryr_network_tag("other"));
    }
}
