//! Addresses whose call a kill of kuryr cut short, against a real (private) Northbound: a
//! restart releases, once the grace has passed, an address Docker never got and one whose
//! endpoint was deleted but whose ReleaseAddress never came, and a pool Docker released that
//! only such addresses kept; an address Docker claims after the restart, an `--aux-address`,
//! another host's and a live endpoint's stay.
mod common;

use common::*;
use kuryr_ovn::{EndpointSpec, OvnBackend, OvnSettings, PoolRequest};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const AS: &str = "Address_Set";

/// A backend of host `host` that keeps its address journal at `journal`, as the daemon does.
async fn journaled(lab: &Lab, host: &str, journal: &Path) -> OvnBackend {
    let mut settings = OvnSettings::new(host);
    settings.reservation_journal = Some(journal.to_path_buf());
    backend_with(lab, settings).await
}

/// The addresses of the pool's Address_Set in `b`'s replica (`None`: no set).
fn reserved(b: &OvnBackend, set: &str) -> Option<BTreeSet<String>> {
    let rep = b.client().replica();
    let row = rep.table(AS).one_by_name(set)?;
    Some(row.strings("addresses").into_iter().collect())
}

/// Waits (5 s at most) until the pool's addresses satisfy `f`: another host's write reaches
/// `b`'s replica a moment later.
async fn until(
    b: &OvnBackend,
    set: &str,
    what: &str,
    f: impl Fn(Option<&BTreeSet<String>>) -> bool,
) {
    let ok = b
        .client()
        .wait_for(Duration::from_secs(5), |_| {
            f(reserved(b, set).as_ref()).then_some(())
        })
        .await;
    assert!(
        ok.is_some(),
        "{what}: the pool holds {:?}",
        reserved(b, set)
    );
}

fn endpoint(network_id: &str, n: u32, ip: ipnet::IpNet) -> EndpointSpec {
    EndpointSpec {
        network_id: network_id.to_string(),
        endpoint_id: format!("{n:064x}"),
        ipv4: Some(ip),
        ipv6: None,
        mac: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn what_a_kill_left_unsettled_is_released_after_a_restart_and_nothing_else() {
    let lab = lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("kuryr.sock.address-journal");
    let network_id = format!("{:064x}", 0x5e5e_u64);

    let a = journaled(&lab, "host-1", &journal).await;
    let grant = a
        .request_pool(&PoolRequest {
            pool: Some("10.164.0.0/24".parse().expect("cidr")),
            ..Default::default()
        })
        .expect("RequestPool");
    let pool_id = grant.pool_id.clone();
    let set = pool_id.split('@').next().expect("a set").to_string();
    let gw = a
        .request_address(&pool_id, None, true, false)
        .await
        .expect("the gateway");
    // Docker reserves an `--aux-address` before CreateNetwork; no endpoint ever claims it.
    let aux = reserve(&a, &pool_id).await;
    let cidr = "10.164.0.0/24".parse().expect("cidr");
    a.create_network(&v4_network(&network_id, cidr, gw.addr()))
        .await
        .expect("CreateNetwork");
    // A running container.
    let held = reserve(&a, &pool_id).await;
    a.create_endpoint(&endpoint(&network_id, 1, held))
        .await
        .expect("CreateEndpoint");
    // The kill came before Docker got this one.
    let lost = reserve(&a, &pool_id).await;
    // Docker got this one; its CreateEndpoint reaches the restarted kuryr.
    let claimed_later = reserve(&a, &pool_id).await;
    // A container removed: its endpoint deleted, then the kill before ReleaseAddress.
    let unreleased = reserve(&a, &pool_id).await;
    a.create_endpoint(&endpoint(&network_id, 3, unreleased))
        .await
        .expect("CreateEndpoint");
    a.delete_endpoint(&format!("{:064x}", 3))
        .await
        .expect("DeleteEndpoint");
    // The kill: `a` goes without a word.
    drop(a);

    let lines = std::fs::read_to_string(&journal).expect("the journal outlives the kill");
    let noted = |ip: &ipnet::IpNet| lines.contains(&format!("take {set} {}\n", ip.addr()));
    for ip in [&lost, &claimed_later, &unreleased] {
        assert!(noted(ip), "{ip} unsettled: {lines}");
    }
    for ip in [&held, &aux] {
        assert!(!noted(ip), "{ip} settled: {lines}");
    }

    // Another host's reservation in flight in the same pool: not this host's to release.
    let other = backend(&lab, "host-2").await;
    let others = reserve(&other, &pool_id).await;

    let b = journaled(&lab, "host-1", &journal).await;
    assert_eq!(
        b.reclaim_with(Duration::from_secs(3600), Duration::ZERO)
            .await,
        0,
        "nothing is released before the grace has passed"
    );
    b.create_endpoint(&endpoint(&network_id, 2, claimed_later))
        .await
        .expect("CreateEndpoint after the restart");
    let ip = |n: &ipnet::IpNet| n.addr().to_string();
    let all = [&lost, &claimed_later, &held, &others, &aux, &unreleased];
    until(&b, &set, "six addresses reserved", |r| {
        r.is_some_and(|r| all.iter().all(|a| r.contains(&ip(a))))
    })
    .await;
    assert_eq!(
        b.reclaim_with(Duration::ZERO, Duration::from_secs(3600))
            .await,
        0,
        "an address is released only once it stayed unheld"
    );
    assert_eq!(
        b.reclaim_with(Duration::ZERO, Duration::ZERO).await,
        2,
        "the address Docker never got and the one it never released are released"
    );
    let kept = [&claimed_later, &held, &others, &aux];
    until(&b, &set, "two released, the others kept", |r| {
        r.is_some_and(|r| {
            !r.contains(&ip(&lost))
                && !r.contains(&ip(&unreleased))
                && kept.iter().all(|a| r.contains(&ip(a)))
        })
    })
    .await;
    assert_eq!(
        b.reclaim_with(Duration::ZERO, Duration::ZERO).await,
        0,
        "done once"
    );

    // Docker removes everything: the endpoints, their addresses, the network, the pool.
    for (n, a) in [(1, held), (2, claimed_later)] {
        b.delete_endpoint(&format!("{n:064x}"))
            .await
            .expect("DeleteEndpoint");
        b.release_address(&pool_id, a.addr())
            .await
            .expect("ReleaseAddress");
    }
    b.delete_network(&network_id).await.expect("DeleteNetwork");
    b.release_address(&pool_id, aux.addr())
        .await
        .expect("ReleaseAddress of the aux address");
    other
        .release_address(&pool_id, others.addr())
        .await
        .expect("the other host's ReleaseAddress");
    b.release_pool(&pool_id).await.expect("ReleasePool");
    until(&b, &set, "the pool gone", |r| r.is_none()).await;
    assert!(!journal.exists(), "nothing pending: no journal file left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_pool_docker_released_while_a_lost_reservation_held_it_goes_once_that_is_released() {
    let lab = lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("kuryr.sock.address-journal");
    let a = journaled(&lab, "host-1", &journal).await;
    let grant = a
        .request_pool(&PoolRequest {
            pool: Some("10.165.0.0/24".parse().expect("cidr")),
            ..Default::default()
        })
        .expect("RequestPool");
    let set = grant.pool_id.split('@').next().expect("a set").to_string();
    a.request_address(&grant.pool_id, None, true, false)
        .await
        .expect("the gateway");
    let lost = reserve(&a, &grant.pool_id).await.addr().to_string();
    drop(a);

    let b = journaled(&lab, "host-1", &journal).await;
    // `docker network create` failed after the kill, so Docker releases the pool at once.
    b.release_pool(&grant.pool_id).await.expect("ReleasePool");
    until(&b, &set, "the pool kept by the lost address", |r| {
        r.is_some_and(|r| r.contains(&lost))
    })
    .await;
    assert_eq!(b.reclaim_with(Duration::ZERO, Duration::ZERO).await, 1);
    until(&b, &set, "the pool gone with it", |r| r.is_none()).await;
}

/// RequestAddress of any free endpoint address.
async fn reserve(b: &OvnBackend, pool_id: &str) -> ipnet::IpNet {
    b.request_address(pool_id, None, false, false)
        .await
        .expect("an address")
}

/// A Swarm network's addresses are the manager's: a node's reservation of the manager's
/// address, its endpoint and the endpoint's deletion note nothing, so a restart releases
/// nothing there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_swarm_pool_is_left_to_its_manager() {
    let lab = lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("kuryr.sock.address-journal");
    let network_id = format!("{:064x}", 0x5a5a_u64);
    let cidr: ipnet::IpNet = "10.166.0.0/24".parse().expect("cidr");
    let manager = backend(&lab, "manager").await;
    let grant = manager
        .request_pool(&PoolRequest {
            pool: Some(cidr),
            ..Default::default()
        })
        .expect("RequestPool");
    let set = grant.pool_id.split('@').next().expect("a set").to_string();
    let gw = manager
        .request_address(&grant.pool_id, None, true, true)
        .await
        .expect("the manager's gateway");
    let task = manager
        .request_address(&grant.pool_id, None, false, true)
        .await
        .expect("the manager's task address");

    let node = journaled(&lab, "node-1", &journal).await;
    until(&node, &set, "the manager's pool seen by the node", |r| {
        r.is_some_and(|r| r.contains(&task.addr().to_string()))
    })
    .await;
    assert_eq!(
        node.request_address(&grant.pool_id, Some(task.addr()), false, false)
            .await
            .expect("the node asks for the task's address"),
        task
    );
    node.create_network(&v4_network(&network_id, cidr, gw.addr()))
        .await
        .expect("CreateNetwork");
    node.create_endpoint(&endpoint(&network_id, 7, task))
        .await
        .expect("CreateEndpoint");
    node.delete_endpoint(&format!("{:064x}", 7))
        .await
        .expect("DeleteEndpoint");
    drop(node);
    assert!(!journal.exists(), "a Swarm pool's address was noted");

    let node = journaled(&lab, "node-1", &journal).await;
    assert_eq!(node.reclaim_with(Duration::ZERO, Duration::ZERO).await, 0);
    until(&node, &set, "the task's address still the manager's", |r| {
        r.is_some_and(|r| r.contains(&task.addr().to_string()))
    })
    .await;
}
