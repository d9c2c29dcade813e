//! The names and tags kuryr-libnetwork writes into Neutron; kuryr writes and finds the same,
//! so that a host can switch between the two and keep its networks.
use ipnet::IpNet;

pub const NET_NAME_PREFIX: &str = "kuryr-net-";
pub const SUBNET_NAME_PREFIX: &str = "kuryr-subnet-";
/// kuryr-libnetwork's default `subnetpool_name_prefix`.
pub const DEFAULT_POOL_PREFIX: &str = "kuryrPool";
pub const UNBOUND_PORT_NAME: &str = "kuryr-unbound-port";
pub const DEVICE_OWNER: &str = "compute:kuryr";
pub const LH: &str = "kuryr.net.uuid.lh";
pub const UH: &str = "kuryr.net.uuid.uh";
pub const NET_EXISTING: &str = "kuryr.net.existing";
pub const PORT_EXISTING: &str = "kuryr.port.existing";
pub const POOL_EXISTING: &str = "kuryr.subnetpool.existing";
pub const SG_SUFFIX: &str = "exposed_ports";
/// The name of a free port of a pool (kuryr-kubernetes' name for its pool ports).
pub const POOL_PORT_NAME: &str = "available-port";
/// Every port made for a pool, free or in use: given back to a pool when released.
pub const POOL_TAG: &str = "kuryr.port.pool";
/// A network a Swarm manager's AllocateNetwork made (kuryr's own): every node of the Swarm
/// uses it, so only the manager's FreeNetwork removes it.
pub const NET_SWARM: &str = "kuryr.net.swarm";

/// `kuryr-net-<dockerid[:8]>`.
pub fn network_name(docker_id: &str) -> String {
    format!("{NET_NAME_PREFIX}{}", prefix(docker_id, 8))
}

/// The lh/uh tags of a Docker network or endpoint id (64 hex characters).
pub fn id_tags(docker_id: &str) -> Vec<String> {
    let mut tags = vec![format!("{LH}:{}", prefix(docker_id, 32))];
    if docker_id.len() > 32 {
        tags.push(format!("{UH}:{}", &docker_id[32..docker_id.len().min(64)]));
    }
    tags
}

/// `kuryr.net.existing:<dockerid[:12]>`.
pub fn existing_network_tag(docker_id: &str) -> String {
    format!("{NET_EXISTING}:{}", prefix(docker_id, 12))
}

/// `<prefix>-<cidr>`, e.g. `kuryrPool-10.1.0.0/24`.
pub fn pool_name(prefix_: &str, cidr: &IpNet) -> String {
    format!("{prefix_}-{cidr}")
}

/// `kuryr-subnet-<pool cidr>`.
pub fn subnet_name(cidr: &IpNet) -> String {
    format!("{SUBNET_NAME_PREFIX}{cidr}")
}

/// `<endpoint id>-port`: the name kuryr-libnetwork looks an endpoint's port up by.
pub fn port_name(endpoint_id: &str) -> String {
    format!("{endpoint_id}-port")
}

/// `<port id>-exposed_ports`.
pub fn security_group_name(port_id: &str) -> String {
    format!("{port_id}-{SG_SUFFIX}")
}

fn prefix(s: &str, n: usize) -> &str {
    // Docker ids are ASCII hex; a char boundary check keeps odd input from panicking.
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c0d1e4b5a6978877665544332211ffeeddccbbaa0099887766554433221";

    #[test]
    fn names_and_tags_are_kuryr_libnetworks() {
        assert_eq!(network_name(ID), "kuryr-net-3f2a9c0d");
        assert_eq!(id_tags(ID)[0], format!("kuryr.net.uuid.lh:{}", &ID[..32]));
        assert_eq!(id_tags(ID)[1], format!("kuryr.net.uuid.uh:{}", &ID[32..]));
        assert_eq!(existing_network_tag(ID), "kuryr.net.existing:3f2a9c0d1e4b");
        let cidr: IpNet = "10.1.0.0/24".parse().unwrap();
        assert_eq!(
            pool_name(DEFAULT_POOL_PREFIX, &cidr),
            "kuryrPool-10.1.0.0/24"
        );
        assert_eq!(subnet_name(&cidr), "kuryr-subnet-10.1.0.0/24");
        assert_eq!(security_group_name("p1"), "p1-exposed_ports");
        assert_eq!(port_name("e1"), "e1-port");
        assert_eq!(
            id_tags("short"),
            vec!["kuryr.net.uuid.lh:short".to_string()]
        );
    }
}
