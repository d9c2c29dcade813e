//! The OVN backend against a real (private) Northbound ovsdb-server: IPAM, networks and
//! endpoints, including two backends (two hosts) sharing one Northbound.
mod common;

use common::*;
use futures::future::join_all;
use kuryr_ovn::{
    Attach, EndpointSpec, NetworkSpec, OvnBackend, OvnError, PoolRequest, SubnetSpec, TABLES,
};
use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn id(n: u32) -> String {
    format!("{:064x}", 0xabc0_0000u64 + n as u64 + rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000 * 1_000_000)
        .unwrap_or(0)
}

/// Every row of the NB tables kuryr writes, as comparable text.
fn snapshot(b: &OvnBackend) -> BTreeSet<String> {
    let rep = b.client().replica();
    let mut out = BTreeSet::new();
    for t in TABLES {
        for r in rep.table(t).rows() {
            out.insert(format!("{t} {} {:?}", r.uuid, r.columns));
        }
    }
    out
}

fn v4(s: &str) -> Option<SubnetSpec> {
    Some(SubnetSpec {
        cidr: s.parse().unwrap(),
        gateway: None,
        pool_name: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn pool_gateway_addresses_and_exhaustion() {
    let lab = lab();
    let b = backend(&lab, "host-a").await;
    let grant = b
        .request_pool(&PoolRequest {
            pool: Some("10.1.0.0/29".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(grant.cidr.to_string(), "10.1.0.0/29");
    let gw = b
        .request_address(&grant.pool_id, None, true, false)
        .await
        .unwrap();
    assert_eq!(gw.to_string(), "10.1.0.1/29");
    // The gateway asked for again (another host, or Docker's replay) is the same address.
    assert_eq!(
        b.request_address(&grant.pool_id, None, true, false)
            .await
            .unwrap(),
        gw
    );
    let wanted: IpAddr = "10.1.0.5".parse().unwrap();
    assert_eq!(
        b.request_address(&grant.pool_id, Some(wanted), false, false)
            .await
            .unwrap()
            .to_string(),
        "10.1.0.5/29"
    );
    let err = b
        .request_address(&grant.pool_id, Some(wanted), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OvnError::Conflict(_))
            && err.to_string().contains("10.1.0.5 is already in use"),
        "{err}"
    );
    let bad = b
        .request_address(
            &grant.pool_id,
            Some("10.1.0.7".parse().unwrap()),
            false,
            false,
        )
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a usable address"), "{bad}");
    let mut got = HashSet::new();
    for _ in 0..4 {
        got.insert(
            b.request_address(&grant.pool_id, None, false, false)
                .await
                .unwrap()
                .addr(),
        );
    }
    assert_eq!(got.len(), 4);
    assert!(!got.contains(&gw.addr()) && !got.contains(&wanted));
    let err = b
        .request_address(&grant.pool_id, None, false, false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "pool 10.1.0.0/29 has no free address");
    // Release one; it is handed out again. Releasing twice is fine.
    let one = *got.iter().next().unwrap();
    b.release_address(&grant.pool_id, one).await.unwrap();
    b.release_address(&grant.pool_id, one).await.unwrap();
    assert_eq!(
        b.request_address(&grant.pool_id, None, false, false)
            .await
            .unwrap()
            .addr(),
        one
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn two_hosts_allocating_from_one_pool_never_collide() {
    let lab = lab();
    let a = Arc::new(backend(&lab, "host-a").await);
    let b = Arc::new(backend(&lab, "host-b").await);
    let grant = a
        .request_pool(&PoolRequest {
            pool: Some("10.2.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..120 {
        let be = if i % 2 == 0 { a.clone() } else { b.clone() };
        let pool = grant.pool_id.clone();
        calls.push(tokio::spawn(async move {
            be.request_address(&pool, None, false, false).await
        }));
    }
    let results: Vec<IpAddr> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().addr())
        .collect();
    let unique: HashSet<_> = results.iter().collect();
    assert_eq!(unique.len(), 120, "an address was handed out twice");
    // Northbound holds exactly those addresses. Host b's last writes reach a's replica
    // a moment after b's calls return: wait for them, then compare the whole set.
    let stored = a
        .client()
        .wait_for(Duration::from_secs(5), |r| {
            let set = r.table("Address_Set").rows().next()?.strings("addresses");
            (set.len() >= 120).then_some(set)
        })
        .await
        .expect("the pool's Address_Set in host a's replica never held 120 addresses");
    let stored: HashSet<IpAddr> = stored.iter().map(|a| a.parse().unwrap()).collect();
    assert_eq!(stored, unique.into_iter().copied().collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn network_and_endpoints_lifecycle_leaves_northbound_as_it_was() {
    let lab = lab();
    let b = backend(&lab, "host-a").await;
    let before = snapshot(&b);
    let net = id(1);
    let grant = b
        .request_pool(&PoolRequest {
            pool: Some("10.3.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let gw = b
        .request_address(
            &grant.pool_id,
            Some("10.3.0.1".parse().unwrap()),
            true,
            false,
        )
        .await
        .unwrap();
    let n = b
        .create_network(&NetworkSpec {
            network_id: net.clone(),
            ipv4: Some(SubnetSpec {
                cidr: grant.cidr,
                gateway: Some(gw.addr()),
                pool_name: None,
            }),
            ipv6: None,
            attach: None,
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap();
    assert_eq!(n.switch, format!("kuryr-net-{}", &net[..12]));
    assert_eq!(n.gateway_v4, Some(gw.addr()));
    // Idempotent.
    assert_eq!(
        b.create_network(&NetworkSpec {
            network_id: net.clone(),
            ipv4: v4("10.3.0.0/24"),
            ipv6: None,
            attach: None,
            router: kuryr_ovn::RouterChoice::None
        })
        .await
        .unwrap(),
        n
    );

    let mut eps = Vec::new();
    for i in 0..3 {
        let ip = b
            .request_address(&grant.pool_id, None, false, false)
            .await
            .unwrap();
        let ep = b
            .create_endpoint(&EndpointSpec {
                network_id: net.clone(),
                endpoint_id: id(100 + i),
                ipv4: Some(ip),
                ipv6: None,
                mac: None,
            })
            .await
            .unwrap();
        assert_eq!(ep.ipv4, Some(ip));
        assert_eq!(ep.gateway_v4, Some(gw.addr()));
        assert_eq!(ep.host.as_deref(), Some("host-a"));
        eps.push(ep);
    }
    assert_eq!(eps[0].mac, "0a:58:0a:03:00:02");
    // Docker's MAC is honoured; a duplicate on the same network is refused.
    let ip = b
        .request_address(&grant.pool_id, None, false, false)
        .await
        .unwrap();
    let dup = b
        .create_endpoint(&EndpointSpec {
            network_id: net.clone(),
            endpoint_id: id(200),
            ipv4: Some(ip),
            ipv6: None,
            mac: Some(eps[0].mac.clone()),
        })
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("already used"), "{dup}");
    let mine = b
        .create_endpoint(&EndpointSpec {
            network_id: net.clone(),
            endpoint_id: id(201),
            ipv4: Some(ip),
            ipv6: None,
            mac: Some("02:AA:bb:cc:dd:01".into()),
        })
        .await
        .unwrap();
    assert_eq!(mine.mac, "02:aa:bb:cc:dd:01");
    {
        let rep = b.client().replica();
        let lsp = rep
            .table("Logical_Switch_Port")
            .one_by_name(&mine.port)
            .unwrap();
        assert_eq!(
            lsp.strings("addresses"),
            vec![format!("02:aa:bb:cc:dd:01 {}", ip.addr())]
        );
        assert_eq!(lsp.strings("port_security"), lsp.strings("addresses"));
    }
    assert_eq!(b.local_endpoints().len(), 4);

    // Tear down in Docker's order, one endpoint left behind as after a crash.
    for ep in &eps[1..] {
        b.delete_endpoint(&ep.endpoint_id).await.unwrap();
        b.delete_endpoint(&ep.endpoint_id).await.unwrap();
        b.release_address(&grant.pool_id, ep.ipv4.unwrap().addr())
            .await
            .unwrap();
    }
    for a in [eps[0].ipv4.unwrap().addr(), ip.addr()] {
        b.release_address(&grant.pool_id, a).await.unwrap();
    }
    b.release_address(&grant.pool_id, gw.addr()).await.unwrap();
    b.release_pool(&grant.pool_id).await.unwrap();
    b.delete_network(&net).await.unwrap();
    b.delete_network(&net).await.unwrap();
    assert_eq!(
        snapshot(&b),
        before,
        "Northbound differs from before the test"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn one_logical_network_shared_by_two_hosts() {
    let lab = lab();
    let a = backend(&lab, "host-a").await;
    let b = backend(&lab, "host-b").await;
    let before = snapshot(&a);
    let (net_a, net_b) = (id(1), id(2));
    let attach = Some(Attach::ByName("shared-net".into()));
    let na = a
        .create_network(&NetworkSpec {
            network_id: net_a.clone(),
            ipv4: v4("10.4.0.0/24"),
            ipv6: None,
            attach: attach.clone(),
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap();
    b.client()
        .wait_for(Duration::from_secs(5), |r| {
            r.table("Logical_Switch")
                .one_by_name("shared-net")
                .map(|_| ())
        })
        .await
        .unwrap();
    let nb = b
        .create_network(&NetworkSpec {
            network_id: net_b.clone(),
            ipv4: v4("10.4.0.0/24"),
            ipv6: None,
            attach: attach.clone(),
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap();
    assert_eq!(
        na.switch_uuid, nb.switch_uuid,
        "host b did not attach to host a's switch"
    );
    // A different subnet on the same logical network is refused, naming the fix.
    let err = b
        .create_network(&NetworkSpec {
            network_id: id(3),
            ipv4: v4("10.5.0.0/24"),
            ipv6: None,
            attach,
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("use --subnet 10.4.0.0/24"),
        "{err}"
    );
    // Attaching by an unknown uuid is a clear error.
    let err = a
        .create_network(&NetworkSpec {
            network_id: id(4),
            ipv4: None,
            ipv6: None,
            attach: Some(Attach::ByUuid(uuid::Uuid::new_v4())),
            router: kuryr_ovn::RouterChoice::None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kuryr.net.uuid"), "{err}");

    a.delete_network(&net_a).await.unwrap();
    assert!(
        b.client()
            .wait_for(Duration::from_secs(5), |r| r
                .table("Logical_Switch")
                .one_by_name("shared-net")
                .map(|_| ()))
            .await
            .is_some(),
        "host a removed the switch host b still uses"
    );
    let key_a = format!("kuryr:net.{net_a}");
    b.client()
        .wait_for(Duration::from_secs(5), |r| {
            r.table("Logical_Switch")
                .one_by_name("shared-net")
                .filter(|ls| ls.external_id(&key_a).is_none())
                .map(|_| ())
        })
        .await
        .expect("host a's mark was not removed");
    b.delete_network(&net_b).await.unwrap();
    a.client()
        .wait_for(Duration::from_secs(5), |r| {
            r.table("Logical_Switch").is_empty().then_some(())
        })
        .await;
    assert_eq!(snapshot(&a), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn same_cidr_in_two_named_pools_and_default_pools() {
    let lab = lab();
    let b = backend(&lab, "host-a").await;
    let req = |name: &str| PoolRequest {
        pool: Some("10.6.0.0/24".parse().unwrap()),
        name: Some(name.into()),
        ..Default::default()
    };
    let p1 = b.request_pool(&req("blue")).unwrap();
    let p2 = b.request_pool(&req("green")).unwrap();
    assert_ne!(p1.pool_id, p2.pool_id);
    let a1 = b
        .request_address(&p1.pool_id, Some("10.6.0.9".parse().unwrap()), false, false)
        .await
        .unwrap();
    let a2 = b
        .request_address(&p2.pool_id, Some("10.6.0.9".parse().unwrap()), false, false)
        .await
        .unwrap();
    assert_eq!(a1, a2, "the same address in two named pools");
    // A named pool keeps its CIDR.
    let err = b
        .request_pool(&PoolRequest {
            pool: Some("10.7.0.0/24".parse().unwrap()),
            name: Some("blue".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("pool blue is 10.6.0.0/24"),
        "{err}"
    );

    // No --subnet: a default pool, a different one each time Docker asks again.
    let d1 = b.request_pool(&PoolRequest::default()).unwrap();
    let d2 = b.request_pool(&PoolRequest::default()).unwrap();
    assert_ne!(d1.cidr, d2.cidr);
    assert!(d1.cidr.to_string().starts_with("10.200."), "{}", d1.cidr);
    let d6 = b
        .request_pool(&PoolRequest {
            v6: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(d6.cidr.prefix_len(), 64);
    // ip-range must be inside the subnet; a v4 subnet for a v6 request is refused.
    let err = b
        .request_pool(&PoolRequest {
            pool: Some("10.8.0.0/24".parse().unwrap()),
            subpool: Some("10.9.0.0/25".parse().unwrap()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("not inside subnet"), "{err}");
    let err = b
        .request_pool(&PoolRequest {
            pool: Some("10.8.0.0/24".parse().unwrap()),
            v6: true,
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("not an IPv6 subnet"), "{err}");
    // ip-range restricts endpoint addresses.
    let sub = b
        .request_pool(&PoolRequest {
            pool: Some("10.8.0.0/24".parse().unwrap()),
            subpool: Some("10.8.0.128/25".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    b.request_address(&sub.pool_id, None, true, false)
        .await
        .unwrap();
    assert_eq!(
        b.request_address(&sub.pool_id, None, false, false)
            .await
            .unwrap()
            .to_string(),
        "10.8.0.128/24"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn northbound_down_fails_fast_then_recovers() {
    let mut lab = lab();
    let b = backend(&lab, "host-a").await;
    let grant = b
        .request_pool(&PoolRequest {
            pool: Some("10.9.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    lab.server.kill();
    let mut st = b.client().watch_state();
    tokio::time::timeout(Duration::from_secs(5), st.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let t = std::time::Instant::now();
    let err = b
        .request_address(&grant.pool_id, None, false, false)
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        err.to_string().contains("OVN_Northbound is not reachable"),
        "{err}"
    );
    lab.server.start();
    b.client()
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    b.request_address(&grant.pool_id, None, false, false)
        .await
        .unwrap();
}
