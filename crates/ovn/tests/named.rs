//! Networks and endpoints by name (`kuryr network` / `kuryr endpoint`) against a real
//! private Northbound: pools and gateways, refusals, and a Docker network attaching to a CLI
//! network by name.
mod common;

use common::*;
use kuryr_ovn::{Attach, NamedNetworkSpec, NetworkSpec, OvnError, SubnetSpec};

fn spec(name: &str, v4: &str, v6: Option<&str>) -> NamedNetworkSpec {
    NamedNetworkSpec {
        name: name.into(),
        ipv4: Some((v4.parse().unwrap(), None)),
        ipv6: v6.map(|c| (c.parse().unwrap(), None)),
        router: kuryr_ovn::RouterChoice::Default,
    }
}

/// Waits until `f` holds: another client's write reaches this replica a moment later.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn network_and_endpoint_lifecycle_by_name() {
    let lab = lab();
    let b = backend(&lab, "host-a").await;
    let net = b
        .create_named_network(&spec("ls0", "192.168.1.0/24", Some("fd00:1::/64")))
        .await
        .unwrap();
    assert_eq!(net.name, "ls0");
    assert!(net.cli_id.as_deref().unwrap().starts_with("cli-"));
    assert_eq!(net.gateway_v4.unwrap().to_string(), "192.168.1.1");
    assert_eq!(net.gateway_v6.unwrap().to_string(), "fd00:1::1");
    assert_eq!(b.logical_networks().len(), 1);

    // A second network of that name is refused.
    let err = b
        .create_named_network(&spec("ls0", "192.168.2.0/24", None))
        .await
        .unwrap_err();
    assert!(matches!(err, OvnError::Conflict(_)), "{err}");

    let p0 = b
        .create_named_endpoint("ls0", Some("ls0p0"), None, None)
        .await
        .unwrap();
    assert_eq!(p0.ipv4.unwrap().to_string(), "192.168.1.2/24");
    assert_eq!(p0.ipv6.unwrap().to_string(), "fd00:1::2/64");
    assert_eq!(p0.mac, "0a:58:c0:a8:01:02");
    let p1 = b
        .create_named_endpoint(
            "ls0",
            Some("ls0p1"),
            Some("192.168.1.50".parse().unwrap()),
            Some("02:00:00:00:00:50"),
        )
        .await
        .unwrap();
    assert_eq!(p1.ipv4.unwrap().to_string(), "192.168.1.50/24");
    assert_eq!(p1.mac, "02:00:00:00:00:50");
    // Generated names are valid interface-name material.
    let p2 = b
        .create_named_endpoint("ls0", None, None, None)
        .await
        .unwrap();
    assert_eq!(p2.name.len(), 32);

    // Refusals name the object and the fix.
    let taken = b
        .create_named_endpoint(
            "ls0",
            Some("x1"),
            Some("192.168.1.50".parse().unwrap()),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("192.168.1.50 is already in use"),
        "{taken}"
    );
    let outside = b
        .create_named_endpoint("ls0", Some("x2"), Some("10.0.0.5".parse().unwrap()), None)
        .await
        .unwrap_err();
    assert!(
        outside
            .to_string()
            .contains("not inside a subnet of network ls0"),
        "{outside}"
    );
    b.create_named_endpoint("ls0", Some("abcdefghijk1"), None, None)
        .await
        .unwrap();
    let same_prefix = b
        .create_named_endpoint("ls0", Some("abcdefghijk2"), None, None)
        .await
        .unwrap_err();
    assert!(
        same_prefix.to_string().contains("same 11 characters"),
        "{same_prefix}"
    );
    b.delete_named_endpoint("abcdefghijk1").await.unwrap();
    let bad = b
        .create_named_endpoint("ls0", Some("bad name"), None, None)
        .await
        .unwrap_err();
    assert!(matches!(bad, OvnError::Invalid(_)), "{bad}");
    let nonet = b
        .create_named_endpoint("nope", None, None, None)
        .await
        .unwrap_err();
    assert!(nonet.to_string().contains("kuryr network list"), "{nonet}");

    assert_eq!(b.ports(Some("ls0")).unwrap().len(), 3);
    let busy = b.delete_named_network("ls0").await.unwrap_err();
    assert!(busy.to_string().contains("--force"), "{busy}");

    // The container mark and host follow the endpoint.
    b.set_port_container("ls0p0", Some("netns:blue"))
        .await
        .unwrap();
    assert_eq!(
        b.port("ls0p0").unwrap().container.as_deref(),
        Some("netns:blue")
    );
    b.set_port_container("ls0p0", None).await.unwrap();
    assert_eq!(b.port("ls0p0").unwrap().container, None);

    // Deleting an endpoint gives its address back: the next one gets it again.
    b.delete_named_endpoint("ls0p0").await.unwrap();
    let again = b
        .create_named_endpoint("ls0", Some("again"), None, None)
        .await
        .unwrap();
    assert_eq!(again.ipv4.unwrap().to_string(), "192.168.1.2/24");

    for n in ["again", "ls0p1", &p2.name] {
        b.delete_named_endpoint(n).await.unwrap();
    }
    b.delete_named_network("ls0").await.unwrap();
    // What stays is the default router's skeleton: the join switch with the management
    // localport and the router's peer port.
    assert_eq!(rows(&b, "Logical_Switch"), 1);
    assert_eq!(rows(&b, "Logical_Switch_Port"), 2);
    assert_eq!(rows(&b, "Logical_Router_Port"), 1);
    assert_eq!(rows(&b, "Port_Group"), 0);
    assert_eq!(rows(&b, "ACL"), 0);
    assert_eq!(rows(&b, "Address_Set"), 0, "the pools go with the network");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_docker_network_attaches_to_a_cli_network_by_name() {
    let lab = lab();
    let cli = backend(&lab, "host-a").await;
    let docker = backend(&lab, "host-b").await;
    cli.create_named_network(&spec("shared", "10.77.0.0/24", None))
        .await
        .unwrap();
    let ep = cli
        .create_named_endpoint("shared", Some("clip0"), None, None)
        .await
        .unwrap();
    assert_eq!(ep.ipv4.unwrap().to_string(), "10.77.0.2/24");

    // What the driver does for `docker network create --subnet 10.77.0.0/24 -o kuryr.net.name=shared`.
    let grant = docker
        .request_pool(&kuryr_ovn::PoolRequest {
            pool: Some("10.77.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let gw = docker
        .request_address(&grant.pool_id, None, true, false)
        .await
        .unwrap();
    assert_eq!(
        gw.addr().to_string(),
        "10.77.0.1",
        "the pool's gateway is shared"
    );
    let docker_id = format!("{:064x}", 0xd0c4e7u64);
    docker
        .create_network(&NetworkSpec {
            network_id: docker_id.clone(),
            ipv4: Some(SubnetSpec {
                cidr: "10.77.0.0/24".parse().unwrap(),
                gateway: Some(gw.addr()),
                pool_name: None,
            }),
            ipv6: None,
            attach: Some(Attach::ByName("shared".into())),
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap();
    let addr = docker
        .request_address(&grant.pool_id, None, false, false)
        .await
        .unwrap();
    assert_eq!(
        addr.to_string(),
        "10.77.0.3/24",
        "one pool: the CLI's address is taken"
    );
    until("the CLI to see the Docker network", || {
        cli.logical_networks()
            .first()
            .is_some_and(|n| n.docker_networks.len() == 1)
    })
    .await;
    let nets = cli.logical_networks();
    assert_eq!(nets.len(), 1, "one switch");
    assert_eq!(nets[0].docker_networks.len(), 1);

    // The CLI network goes; the switch stays for Docker, then goes with it.
    cli.delete_named_endpoint("clip0").await.unwrap();
    cli.delete_named_network("shared").await.unwrap();
    // The switch, still routed, and the router's join switch.
    assert_eq!(rows(&cli, "Logical_Switch"), 2);
    assert_eq!(rows(&cli, "Port_Group"), 1);
    docker
        .release_address(&grant.pool_id, addr.addr())
        .await
        .unwrap();
    docker.delete_network(&docker_id).await.unwrap();
    docker.release_pool(&grant.pool_id).await.unwrap();
    until("the switch, its port group and pool to go", || {
        rows(&cli, "Logical_Switch") == 1
            && rows(&cli, "Port_Group") == 0
            && rows(&cli, "Address_Set") == 0
    })
    .await;

    // A Docker-only network is not the CLI's to delete.
    let only = format!("{:064x}", 0xd0c4e8u64);
    docker
        .create_network(&NetworkSpec {
            network_id: only.clone(),
            ipv4: Some(SubnetSpec {
                cidr: "10.78.0.0/24".parse().unwrap(),
                gateway: None,
                pool_name: None,
            }),
            ipv6: None,
            attach: None,
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap();
    until("the CLI to see the Docker-only network", || {
        !cli.logical_networks().is_empty()
    })
    .await;
    let name = cli.logical_networks()[0].name.clone();
    let err = cli.delete_named_network(&name).await.unwrap_err();
    assert!(err.to_string().contains("docker network rm"), "{err}");
    docker.delete_network(&only).await.unwrap();
}
