//! Routing in Northbound against a real (private) ovsdb-server: a network's gateway port,
//! port group and ACLs; `--expose` ACLs; the overlap check holding when two hosts attach at
//! once; and a network's removal taking exactly its own routing rows with it.
mod common;

use common::*;
use kuryr_core::ExposedPort;
use kuryr_ovn::{keys, EndpointSpec, NetworkSpec, OvnError, RouterChoice, SubnetSpec};

fn net(n: u64, cidr: &str, gw: &str, router: RouterChoice) -> NetworkSpec {
    NetworkSpec {
        // Docker's ids are random: switch names (the first 12 digits) differ.
        network_id: format!("{:012x}{:052x}", 0x5eed_0000u64 + n, 0),
        ipv4: Some(SubnetSpec {
            cidr: cidr.parse().unwrap(),
            gateway: Some(gw.parse().unwrap()),
            pool_name: None,
        }),
        ipv6: None,
        attach: None,
        router,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_network_gets_a_gateway_port_isolation_acls_and_loses_them_with_it() {
    let lab = lab();
    let b = backend(&lab, "host-a").await;
    b.ensure_router(keys::DEFAULT_ROUTER).await.unwrap();
    let skeleton = (
        rows(&b, "Logical_Switch"),
        rows(&b, "Logical_Switch_Port"),
        rows(&b, "Logical_Router_Port"),
        rows(&b, "Logical_Router_Static_Route"),
    );
    assert_eq!(
        skeleton,
        (1, 2, 1, 2),
        "join switch, localport, router peer, join port, 2 routes"
    );

    let spec = net(1, "10.9.0.0/24", "10.9.0.1", RouterChoice::Default);
    let n = b.create_network(&spec).await.unwrap();
    {
        let rep = b.client().replica();
        let lrp = rep
            .table("Logical_Router_Port")
            .one_by_name(&keys::gateway_lrp_name(n.switch_uuid))
            .expect("the gateway port");
        assert_eq!(lrp.strings("networks"), vec!["10.9.0.1/24".to_string()]);
    }
    assert_eq!(rows(&b, "ACL"), 6, "the network's isolation ACLs");

    let ep = b
        .create_endpoint(&EndpointSpec {
            network_id: spec.network_id.clone(),
            endpoint_id: format!("{:064x}", 0xe9u64),
            ipv4: Some("10.9.0.5/24".parse().unwrap()),
            ipv6: None,
            mac: None,
        })
        .await
        .unwrap();
    let pg_ports = || {
        let rep = b.client().replica();
        rep.table("Port_Group")
            .one_by_name(&keys::port_group_name(n.switch_uuid))
            .map(|pg| pg.uuids("ports").len())
    };
    assert_eq!(
        pg_ports(),
        Some(1),
        "the endpoint joins its network's port group"
    );
    let tcp = |port| ExposedPort { protocol: 6, port };
    b.expose_ports(&ep.endpoint_id, &[tcp(8080), tcp(9090)])
        .await
        .unwrap();
    assert_eq!(rows(&b, "ACL"), 8);
    // Exposing again replaces, never adds up.
    b.expose_ports(&ep.endpoint_id, &[tcp(8080)]).await.unwrap();
    assert_eq!(rows(&b, "ACL"), 7);
    b.unexpose_ports(&ep.endpoint_id).await.unwrap();
    assert_eq!(rows(&b, "ACL"), 6);

    // A second network with an overlapping subnet on the same router is refused and leaves
    // nothing behind.
    let before = rows(&b, "Logical_Switch");
    let clash = net(2, "10.9.0.128/25", "10.9.0.129", RouterChoice::Default);
    let err = b.create_network(&clash).await.unwrap_err();
    assert!(
        matches!(&err, OvnError::Conflict(m) if m.contains("overlaps 10.9.0.0/24") && m.contains("kuryr.router")),
        "{err}"
    );
    assert_eq!(
        rows(&b, "Logical_Switch"),
        before,
        "the refused network's switch is gone"
    );

    b.delete_endpoint(&ep.endpoint_id).await.unwrap();
    b.delete_network(&spec.network_id).await.unwrap();
    assert_eq!(
        (
            rows(&b, "Logical_Switch"),
            rows(&b, "Logical_Switch_Port"),
            rows(&b, "Logical_Router_Port"),
            rows(&b, "Logical_Router_Static_Route"),
        ),
        skeleton,
        "the network took exactly its own routing rows"
    );
    assert_eq!((rows(&b, "Port_Group"), rows(&b, "ACL")), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn two_hosts_attaching_overlapping_subnets_at_once_never_both_succeed() {
    let lab = lab();
    let (a, b) = (backend(&lab, "host-a").await, backend(&lab, "host-b").await);
    a.ensure_router(keys::DEFAULT_ROUTER).await.unwrap();
    for round in 0..10u64 {
        let cidr = format!("10.{}.0.0/24", 20 + round);
        let gw = format!("10.{}.0.1", 20 + round);
        let sa = net(100 + round * 2, &cidr, &gw, RouterChoice::Default);
        let sb = net(101 + round * 2, &cidr, &gw, RouterChoice::Default);
        let (ra, rb) = tokio::join!(a.create_network(&sa), b.create_network(&sb));
        let won = [ra.is_ok(), rb.is_ok()];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: exactly one of two overlapping networks attaches ({ra:?} / {rb:?})"
        );
        let refused = if won[0] { &rb } else { &ra };
        assert!(
            matches!(refused, Err(OvnError::Conflict(m)) if m.contains("overlaps")),
            "round {round}: refused for its overlap: {refused:?}"
        );
        for (ok, s, be) in [(won[0], &sa, &a), (won[1], &sb, &b)] {
            if ok {
                be.delete_network(&s.network_id).await.unwrap();
            }
        }
    }
}
