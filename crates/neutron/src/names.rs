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

/// The Docker network id [`id_tags`] wrote into `tags`; none when the tags name no Docker
/// network, or several (a Neutron network several Docker networks use).
pub fn docker_id_of(tags: &[String]) -> Option<String> {
    let half = |key: &str| -> Option<Option<&str>> {
        let mut found = tags
            .iter()
            .filter_map(|t| t.strip_prefix(key)?.strip_prefix(':'));
        match (found.next(), found.next()) {
            (first, None) => Some(first),
            _ => None,
        }
    };
    let (lh, uh) = (half(LH)??, half(UH)?);
    Some(format!("{lh}{}", uh.unwrap_or_default()))
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

    #[test]
    fn the_docker_id_comes_back_from_its_tags() {
        let mut tags = id_tags(ID);
        tags.push(NET_SWARM.to_string());
        assert_eq!(docker_id_of(&tags).as_deref(), Some(ID));
        let swarm = "xt8ufuhcfeqpq9q2qlhcokada";
        assert_eq!(docker_id_of(&id_tags(swarm)).as_deref(), Some(swarm));
        assert_eq!(docker_id_of(&[NET_SWARM.to_string()]), None);
        // Two Docker networks on one Neutron network: neither.
        tags.extend(id_tags(swarm));
        assert_eq!(docker_id_of(&tags), None);
    }
}
