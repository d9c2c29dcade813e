//! The OVN backend as the nodes of a Swarm call it, against a real (private) Northbound: one
//! Docker network id on every node, a manager that allocates every address (serial
//! requests), and nodes that ask again for the address the manager chose.
mod common;

use common::*;
use kuryr_ovn::{EndpointSpec, OvnBackend, OvnError, PoolRequest, TABLES};
use std::collections::BTreeSet;
use std::time::Duration;

fn id(tag: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:032x}{:032x}", tag, nanos)
}

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

async fn settle(b: &OvnBackend, what: &str, f: impl Fn(&kuryr_ovsdb::Replica) -> bool) {
    b.client()
        .wait_for(Duration::from_secs(5), |r| f(r).then_some(()))
        .await
        .unwrap_or_else(|| panic!("{what}: not seen within 5 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_swarm_network_lives_until_its_last_node_deletes_it() {
    let lab = lab();
    let manager = backend(&lab, "node-1").await;
    let worker = backend(&lab, "node-2").await;
    let before = snapshot(&manager);
    let net = id(1);

    // The manager: RequestPool, the gateway and one task's address, all serial.
    let grant = manager
        .request_pool(&PoolRequest {
            pool: Some("10.61.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let gw = manager
        .request_address(&grant.pool_id, None, true, true)
        .await
        .unwrap();
    let task = manager
        .request_address(&grant.pool_id, None, false, true)
        .await
        .unwrap();
    // A new leader asks again for the gateway and the task's address: granted, unchanged.
    let restarted = backend(&lab, "node-1").await;
    settle(&restarted, "the manager's pool", |r| {
        r.table("Address_Set").len() == manager.client().replica().table("Address_Set").len()
    })
    .await;
    assert_eq!(
        restarted
            .request_address(&grant.pool_id, Some(gw.addr()), true, true)
            .await
            .unwrap(),
        gw
    );
    assert_eq!(
        restarted
            .request_address(&grant.pool_id, Some(task.addr()), false, true)
            .await
            .unwrap(),
        task
    );

    // The worker: its own RequestPool and gateway, then the task's address as preferred.
    settle(&worker, "the manager's pool", |r| {
        r.table("Address_Set")
            .rows()
            .any(|s| s.external_id("kuryr:swarm") == Some("true"))
    })
    .await;
    let wgrant = worker
        .request_pool(&PoolRequest {
            pool: Some("10.61.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(wgrant.pool_id, grant.pool_id);
    assert_eq!(
        worker
            .request_address(&wgrant.pool_id, Some(gw.addr()), true, false)
            .await
            .unwrap(),
        gw
    );
    assert_eq!(
        worker
            .request_address(&wgrant.pool_id, Some(task.addr()), false, false)
            .await
            .unwrap(),
        task,
        "the node running the task could not have the manager's address"
    );
    // Both nodes create the network (one id), the worker runs the task.
    worker
        .create_network(&v4_network(&net, grant.cidr, gw.addr()))
        .await
        .unwrap();
    manager
        .create_network(&v4_network(&net, grant.cidr, gw.addr()))
        .await
        .unwrap();
    let ep = worker
        .create_endpoint(&EndpointSpec {
            network_id: net.clone(),
            endpoint_id: id(2),
            ipv4: Some(task),
            ipv6: None,
            mac: None,
        })
        .await
        .unwrap();
    let key = format!("kuryr:net.{net}");
    settle(&manager, "both nodes in the network's mark", |r| {
        r.table("Logical_Switch")
            .by_external_key(&key)
            .iter()
            .any(|ls| ls.external_id(&key) == Some("node-2,node-1"))
    })
    .await;
    assert_eq!(manager.networks().len(), 1);
    assert_eq!(worker.networks().len(), 1);

    // The manager loses its last task first: the switch and the worker's port stay.
    manager.delete_network(&net).await.unwrap();
    settle(&worker, "node-1 leaving the mark", |r| {
        r.table("Logical_Switch")
            .by_external_key(&key)
            .iter()
            .any(|ls| ls.external_id(&key) == Some("node-2"))
    })
    .await;
    assert!(
        worker
            .client()
            .replica()
            .table("Logical_Switch_Port")
            .one_by_name(&ep.port)
            .is_some(),
        "a node that left deleted the port of a task on another node"
    );
    assert!(manager.networks().is_empty());

    // A plain (non-Swarm) pool still refuses an address in use.
    let plain = worker
        .request_pool(&PoolRequest {
            pool: Some("10.62.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let taken = worker
        .request_address(&plain.pool_id, None, false, false)
        .await
        .unwrap();
    let err = worker
        .request_address(&plain.pool_id, Some(taken.addr()), false, false)
        .await
        .unwrap_err();
    assert!(matches!(err, OvnError::Conflict(_)), "{err}");
    worker
        .release_address(&plain.pool_id, taken.addr())
        .await
        .unwrap();
    worker.release_pool(&plain.pool_id).await.unwrap();

    // The last node: the task goes, then the network; the manager frees its reservations.
    worker.delete_endpoint(&ep.endpoint_id).await.unwrap();
    worker
        .release_address(&wgrant.pool_id, task.addr())
        .await
        .unwrap();
    worker.delete_network(&net).await.unwrap();
    manager
        .release_address(&grant.pool_id, task.addr())
        .await
        .unwrap();
    manager
        .release_address(&grant.pool_id, gw.addr())
        .await
        .unwrap();
    manager.release_pool(&grant.pool_id).await.unwrap();
    worker.release_pool(&wgrant.pool_id).await.unwrap();
    settle(&manager, "Northbound as before", |r| {
        r.table("Logical_Switch").is_empty() && r.table("Address_Set").is_empty()
    })
    .await;
    assert_eq!(snapshot(&manager), before, "Northbound differs from before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_prefix_only_subnet_is_a_free_subnet_of_that_length_from_the_default_pool() {
    let lab = lab();
    let b = backend(&lab, "node-1").await;
    let first = b
        .request_pool(&PoolRequest {
            prefix_len: Some(26),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(first.cidr.to_string(), "10.200.0.0/26");
    let v6 = b
        .request_pool(&PoolRequest {
            prefix_len: Some(56),
            v6: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(v6.cidr.prefix_len(), 56);
    assert!(v6.cidr.addr().is_ipv6());
    let err = b
        .request_pool(&PoolRequest {
            prefix_len: Some(8),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not fit in the default pool 10.200.0.0/16"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_managers_free_network_removes_what_a_crashed_node_left() {
    let lab = lab();
    let manager = backend(&lab, "node-1").await;
    let crashed = backend(&lab, "node-2").await;
    let before = snapshot(&manager);
    let net = id(3);
    let grant = manager
        .request_pool(&PoolRequest {
            pool: Some("10.63.0.0/24".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let gw = manager
        .request_address(&grant.pool_id, None, true, true)
        .await
        .unwrap();
    let task = manager
        .request_address(&grant.pool_id, None, false, true)
        .await
        .unwrap();
    for b in [&manager, &crashed] {
        b.create_network(&v4_network(&net, grant.cidr, gw.addr()))
            .await
            .unwrap();
    }
    let own = crashed
        .request_address(&grant.pool_id, None, false, false)
        .await
        .unwrap();
    assert_ne!(own, task);
    let ep = crashed
        .create_endpoint(&EndpointSpec {
            network_id: net.clone(),
            endpoint_id: id(4),
            ipv4: Some(task),
            ipv6: None,
            mac: None,
        })
        .await
        .unwrap();
    // node-2 also reserved an address for itself (the family the manager did not give its
    // task), then its dockerd dies and forgets the network: it never releases or deletes
    // anything. The
    // manager's own DeleteNetwork leaves the switch to node-2's mark.
    manager.delete_network(&net).await.unwrap();
    settle(&manager, "node-1 leaving the mark", |r| {
        r.table("Logical_Switch")
            .rows()
            .any(|ls| ls.external_id(&format!("kuryr:net.{net}")) == Some("node-2"))
    })
    .await;
    // `docker network rm` on the manager: FreeNetwork removes everything.
    manager.free_network(&net).await.unwrap();
    manager
        .release_address(&grant.pool_id, task.addr())
        .await
        .unwrap();
    manager
        .release_address(&grant.pool_id, gw.addr())
        .await
        .unwrap();
    manager.release_pool(&grant.pool_id).await.unwrap();
    settle(&manager, "Northbound as before", |r| {
        r.table("Logical_Switch").is_empty()
            && r.table("Logical_Switch_Port")
                .one_by_name(&ep.port)
                .is_none()
            && r.table("Address_Set").is_empty()
    })
    .await;
    assert_eq!(snapshot(&manager), before, "Northbound differs from before");
}
