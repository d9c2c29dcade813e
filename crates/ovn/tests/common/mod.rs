//! What the backend's tests share: a private Northbound ovsdb-server in a temporary folder,
//! and backends (one per simulated host) connected to it.
#![allow(dead_code)]
use kuryr_ovn::{NetworkSpec, OvnBackend, OvnSettings, SubnetSpec, TABLES};
use kuryr_ovsdb::{parse_remotes, Client, Config};
use kuryr_testlab::{require_tools, Server, NB_SCHEMA};
use std::time::Duration;

pub struct Lab {
    _dir: tempfile::TempDir,
    pub server: Server,
}

pub fn lab() -> Lab {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path(), "nb", NB_SCHEMA);
    Lab { _dir: dir, server }
}

/// A backend of host `host` on the lab's Northbound.
pub async fn backend(lab: &Lab, host: &str) -> OvnBackend {
    backend_with(lab, OvnSettings::new(host)).await
}

/// A backend with these settings on the lab's Northbound.
pub async fn backend_with(lab: &Lab, settings: OvnSettings) -> OvnBackend {
    let mut cfg = Config::new(
        parse_remotes(&lab.server.unix_remote()).unwrap(),
        "OVN_Northbound",
        TABLES,
    );
    cfg.connect_timeout = Duration::from_secs(2);
    OvnBackend::new(Client::connect(cfg).await.unwrap(), settings)
}

/// How many rows of `table` this backend's replica holds.
pub fn rows(b: &OvnBackend, table: &str) -> usize {
    b.client().replica().table(table).len()
}

/// A Docker network of one IPv4 subnet (no router, not attached).
pub fn v4_network(network_id: &str, cidr: ipnet::IpNet, gateway: std::net::IpAddr) -> NetworkSpec {
    NetworkSpec {
        network_id: network_id.to_string(),
        ipv4: Some(SubnetSpec {
            cidr,
            gateway: Some(gateway),
            pool_name: None,
        }),
        ipv6: None,
        attach: None,
        router: kuryr_ovn::RouterChoice::None,
    }
}
