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
pub const ENDPOINT_ID: &str = "kuryr:endpoint_id";
pub const NETWORK_ID: &str = "kuryr:network_id";
pub const HOST: &str = "kuryr:host";
/// Logical_Switch_Port: its MAC, indexed so a duplicate is found without reading every port.
pub const MAC: &str = "kuryr:mac";
/// Address_Set (an IPAM pool): its CIDR, its name given with `kuryr.pool.name`, and its gateway.
pub const POOL_CIDR: &str = "kuryr:cidr";
pub const POOL_NAME: &str = "kuryr:pool_name";
pub const POOL_GATEWAY: &str = "kuryr:gateway";

/// The mark key of one Docker network.
pub fn net_key(network_id: &str) -> String {
    format!("{NET_PREFIX}{network_id}")
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
