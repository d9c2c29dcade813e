//! Names and `external_ids` keys kuryr writes in Northbound. They are the stored contract: a
//! kuryr of a later version, or on another host, must read them back, so they change only on
//! purpose (and the README's "Northbound objects" table with them).

/// On rows kuryr created (Logical_Switch, Logical_Switch_Port, Address_Set): value `kuryr`.
pub const OWNER: &str = "kuryr:owner";
pub const OWNER_VALUE: &str = "kuryr";
/// Prefix of the per-Docker-network mark on a Logical_Switch: `kuryr:net.<docker network id>`
/// = the host (chassis) whose Docker network uses the switch. One switch may carry several
/// (the same logical network on several hosts).
pub const NET_PREFIX: &str = "kuryr:net.";
/// Logical_Switch: the subnets, gateways and pools (Address_Set names) of the network.
pub const SUBNET_V4: &str = "kuryr:subnet_v4";
pub const SUBNET_V6: &str = "kuryr:subnet_v6";
pub const GATEWAY_V4: &str = "kuryr:gateway_v4";
pub const GATEWAY_V6: &str = "kuryr:gateway_v6";
pub const POOL_V4: &str = "kuryr:pool_v4";
pub const POOL_V6: &str = "kuryr:pool_v6";
/// Logical_Switch_Port: the Docker endpoint and network ids and the host it is plugged on.
/// `ENDPOINT_ID` also marks an ACL with the endpoint whose `--expose`d or published port it
/// opens.
pub const ENDPOINT_ID: &str = "kuryr:endpoint_id";
pub const NETWORK_ID: &str = "kuryr:network_id";
pub const HOST: &str = "kuryr:host";
/// A container port inside a VM: the VM's port (also its `parent_name`), indexed so a VM's
/// containers are counted without a scan.
pub const PARENT: &str = "kuryr:parent";
/// Logical_Switch_Port: its MAC, indexed so a duplicate is found without reading every port.
pub const MAC: &str = "kuryr:mac";
/// Address_Set (an IPAM pool): its CIDR, its name given with `kuryr.pool.name`, and its gateway.
pub const POOL_CIDR: &str = "kuryr:cidr";
pub const POOL_NAME: &str = "kuryr:pool_name";
pub const POOL_GATEWAY: &str = "kuryr:gateway";
/// Address_Set: `"true"` once a Swarm manager allocated from the pool
/// (`com.docker.network.ipam.serial`). The manager is then the pool's one allocator, and
/// every node asks again for the address the manager chose: such a request is granted.
pub const POOL_SWARM: &str = "kuryr:swarm";

/// The mark key of one Docker network.
pub fn net_key(network_id: &str) -> String {
    format!("{NET_PREFIX}{network_id}")
}

/// The hosts a network mark's value names. A Swarm network has one Docker network id on
/// every node, so each node that creates it adds its name: `host-a,host-b`.
pub fn mark_hosts(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').filter(|h| !h.is_empty())
}

/// The mark's value with `host` added (unchanged when it is there).
pub fn mark_with(value: &str, host: &str) -> String {
    if mark_hosts(value).any(|h| h == host) {
        return value.to_string();
    }
    mark_hosts(value)
        .chain(std::iter::once(host))
        .collect::<Vec<_>>()
        .join(",")
}

/// The mark's value without `host`; `None` when no host is left.
pub fn mark_without(value: &str, host: &str) -> Option<String> {
    let left: Vec<&str> = mark_hosts(value).filter(|h| *h != host).collect();
    (!left.is_empty()).then(|| left.join(","))
}

/// The name of a Logical_Switch kuryr creates for a Docker network.
pub fn switch_name(network_id: &str) -> String {
    format!("kuryr-net-{}", &network_id[..network_id.len().min(12)])
}

/// Network ids of logical networks created with `kuryr network create` start with this; the
/// switch carries the mark `kuryr:net.cli-<uuid>` = host like a Docker network's, so Docker
/// networks attach to it with `-o kuryr.net.name=NAME` and the switch stays while either uses it.
pub const CLI_NETWORK_PREFIX: &str = "cli-";
/// Logical_Switch_Port: the network container holding the endpoint's interface,
/// `docker:<container id>` or `netns:<namespace name>`.
pub const CONTAINER: &str = "kuryr:container";

/// Logical_Switch: the Logical_Router the network is attached to (its gateway is a port of
/// it), and the Port_Group that holds the network's endpoints for isolation ACLs.
pub const ROUTER: &str = "kuryr:router";
pub const PORT_GROUP: &str = "kuryr:port_group";
/// Logical_Router: its address on the join switch, where every host's management port is.
pub const JOIN_IP: &str = "kuryr:join_ip";

/// The router networks attach to unless `-o kuryr.router` names another.
pub const DEFAULT_ROUTER: &str = "kuryr-router";
/// `-o kuryr.router=none`: no router, no gateway, no egress (what `--internal` gets).
pub const NO_ROUTER: &str = "none";
/// The switch between every router and the hosts' management ports.
pub const JOIN_SWITCH: &str = "kuryr-join";
/// The `localport` on the join switch each host binds its management interface to: it is on
/// every chassis at once, so a container's egress always leaves through its own host.
pub const MGMT_PORT: &str = "kuryr-mgmt";
/// The join network: routers take .1 upwards, every host's management port is .254.
pub const JOIN_PREFIX: u8 = 24;
pub const JOIN_NET: [u8; 3] = [169, 254, 100];
pub const MGMT_HOST_OCTET: u8 = 254;
pub const MGMT_MAC: &str = "0a:58:a9:fe:64:fe";
/// The join network's IPv6 prefix (a /64): a router's address ends in the same number as its
/// IPv4 one, the management port's in `::fe`.
pub const JOIN_NET_V6: [u16; 3] = [0xfd69, 0x6b75, 0x7279];
pub const JOIN_PREFIX_V6: u8 = 64;

/// The Logical_Router_Port that is a network's gateway, and its peer on the switch.
pub fn gateway_lrp_name(switch: uuid::Uuid) -> String {
    format!("kuryr-lrp-{switch}")
}
pub fn gateway_lsp_name(switch: uuid::Uuid) -> String {
    format!("kuryr-rtr-{switch}")
}
/// A router's port on the join switch, and its peer.
pub fn join_lrp_name(router: &str) -> String {
    format!("kuryr-join-{router}")
}
pub fn join_lsp_name(router: &str) -> String {
    format!("kuryr-join-{router}-peer")
}
/// The Port_Group of a network's endpoints (OVN names allow letters, digits and `_`).
pub fn port_group_name(switch: uuid::Uuid) -> String {
    format!("kuryr_{}", switch.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_mark_names_each_host_once() {
        assert_eq!(mark_with("a", "a"), "a");
        assert_eq!(mark_with("a", "b"), "a,b");
        assert_eq!(mark_with("a,b", "b"), "a,b");
        assert_eq!(mark_with("", "b"), "b");
        assert_eq!(mark_without("a,b", "a").as_deref(), Some("b"));
        assert_eq!(mark_without("a", "a"), None);
        assert_eq!(mark_without("a", "c").as_deref(), Some("a"));
        assert_eq!(mark_hosts("a,b").collect::<Vec<_>>(), ["a", "b"]);
    }
}
