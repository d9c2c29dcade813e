//! The client against real `ovsdb-server` processes with the real OVN Northbound and
//! Open_vSwitch schemas. Run by `make test` (they are ignored by a bare `cargo test`).
use kuryr_testlab as support;

use kuryr_ovsdb::datum::{self, named_uuid};
use kuryr_ovsdb::txn::{self, eq};
use kuryr_ovsdb::{parse_remotes, Client, Config, Error, Txn};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use support::{require_tools, Cluster, Server, NB_SCHEMA, VSWITCH_SCHEMA};

const NB: &str = "OVN_Northbound";
const IGNORE: &str = "needs ovsdb-server and the OVN schemas (make test)";

fn nb_config(remotes: &str) -> Config {
    let mut c = Config::new(
        parse_remotes(remotes).unwrap(),
        NB,
        &["Logical_Switch", "Logical_Switch_Port", "NB_Global"],
    );
    c.connect_timeout = Duration::from_secs(2);
    c.inactivity_probe = Duration::from_secs(2);
    c
}

fn nb_server() -> (tempfile::TempDir, Server) {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::standalone(dir.path(), "nb", NB_SCHEMA);
    (dir, s)
}

fn add_switch(name: &str) -> Txn {
    let mut t = Txn::new(NB);
    t.wait_absent("Logical_Switch", vec![eq("name", name)]);
    t.insert(
        "Logical_Switch",
        json!({"name": name, "external_ids": datum::map([("owner", "test")])}),
        None,
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn every_operation_kind_against_northbound() {
    let _ = IGNORE;
    let (_dir, server) = nb_server();
    let nb = Client::connect(nb_config(&server.unix_remote()))
        .await
        .unwrap();

    // insert with uuid-name, referenced by named-uuid in the same transaction
    let mut t = Txn::new(NB);
    t.comment("kuryr test: insert a switch with one port");
    let lsp = t.insert(
        "Logical_Switch_Port",
        json!({"name": "p1", "addresses": datum::set([json!("0a:00:00:00:00:01 10.0.0.2")])}),
        Some("p1"),
    );
    let ls = t.insert(
        "Logical_Switch",
        json!({"name": "s1", "ports": datum::set([named_uuid("p1")])}),
        None,
    );
    let r = nb.transact(&t).await.unwrap();
    let (lsp_uuid, ls_uuid) = (r.uuid(lsp).unwrap(), r.uuid(ls).unwrap());
    {
        let rep = nb.replica();
        let sw = rep
            .table("Logical_Switch")
            .one_by_name("s1")
            .expect("switch in replica");
        assert_eq!(sw.uuid, ls_uuid);
        assert_eq!(sw.uuids("ports"), vec![lsp_uuid]);
    }

    // select
    let mut t = Txn::new(NB);
    let sel = t.select(
        "Logical_Switch_Port",
        vec![eq("name", "p1")],
        Some(&["name", "addresses"]),
    );
    let r = nb.transact(&t).await.unwrap();
    assert_eq!(r.rows(sel).len(), 1);
    assert_eq!(
        r.rows(sel)[0].strings("addresses"),
        vec!["0a:00:00:00:00:01 10.0.0.2"]
    );

    // update
    let mut t = Txn::new(NB);
    let up = t.update(
        "Logical_Switch_Port",
        vec![txn::by_uuid(lsp_uuid)],
        json!({"port_security": datum::set([json!("0a:00:00:00:00:01 10.0.0.2")])}),
    );
    assert_eq!(nb.transact(&t).await.unwrap().count(up), Some(1));
    assert_eq!(
        nb.replica()
            .table("Logical_Switch_Port")
            .get(&lsp_uuid)
            .unwrap()
            .strings("port_security")
            .len(),
        1
    );

    // mutate: map insert, then delete by key
    let mut t = Txn::new(NB);
    t.mutate(
        "Logical_Switch",
        vec![eq("name", "s1")],
        vec![txn::mutate_insert(
            "external_ids",
            datum::map([("kuryr.net", "n1"), ("other", "x")]),
        )],
    );
    nb.transact(&t).await.unwrap();
    assert_eq!(
        nb.replica()
            .table("Logical_Switch")
            .by_external_id("kuryr.net", "n1")
            .len(),
        1
    );
    let mut t = Txn::new(NB);
    t.mutate(
        "Logical_Switch",
        vec![eq("name", "s1")],
        vec![txn::mutate_delete(
            "external_ids",
            datum::set([json!("other")]),
        )],
    );
    nb.transact(&t).await.unwrap();
    assert_eq!(
        nb.replica()
            .table("Logical_Switch")
            .one_by_name("s1")
            .unwrap()
            .external_id("other"),
        None
    );

    // wait: holds, then fails with a typed conflict naming the table
    let mut t = Txn::new(NB);
    t.wait(
        "Logical_Switch",
        vec![eq("name", "s1")],
        &["name"],
        true,
        vec![json!({"name": "s1"})],
        0,
    );
    nb.transact(&t).await.unwrap();
    let err = nb.transact(&add_switch("s1")).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(
        err.to_string().contains("wait on table Logical_Switch"),
        "{err}"
    );

    // assert: fails without the lock, holds with it
    let mut t = Txn::new(NB);
    t.assert_lock("kuryr_test_lock");
    let err = nb.transact(&t).await.unwrap_err();
    assert!(err.to_string().contains("not owner"), "{err}");
    let locked = nb
        .request("lock", json!(["kuryr_test_lock"]))
        .await
        .unwrap();
    assert_eq!(locked["locked"], true);
    nb.transact(&t).await.unwrap();

    // a constraint the server enforces becomes a commit error, not a panic
    let mut t = Txn::new(NB);
    t.insert(
        "Logical_Switch",
        json!({"ports": datum::set([datum::uuid(uuid::Uuid::new_v4())])}),
        None,
    );
    let err = nb.transact(&t).await.unwrap_err();
    assert!(
        matches!(err, Error::Commit { .. } | Error::Operation { .. }),
        "{err:?}"
    );

    // delete: the port goes with the switch's reference removed
    let mut t = Txn::new(NB);
    let d = t.delete("Logical_Switch", vec![eq("name", "s1")]);
    t.delete("Logical_Switch_Port", vec![txn::by_uuid(lsp_uuid)]);
    assert_eq!(nb.transact(&t).await.unwrap().count(d), Some(1));
    assert!(nb.replica().table("Logical_Switch").is_empty());
    assert!(nb.replica().table("Logical_Switch_Port").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn replica_shows_a_transaction_when_its_reply_arrives() {
    let (_dir, server) = nb_server();
    let nb = Client::connect(nb_config(&server.tcp_remote()))
        .await
        .unwrap();
    for i in 0..200 {
        let name = format!("ls{i}");
        let r = nb.transact(&add_switch(&name)).await.unwrap();
        let uuid = r.uuid(1).unwrap();
        assert_eq!(
            nb.replica()
                .table("Logical_Switch")
                .one_by_name(&name)
                .map(|r| r.uuid),
            Some(uuid),
            "insert {i} not yet in the replica"
        );
        let mut t = Txn::new(NB);
        t.delete("Logical_Switch", vec![txn::by_uuid(uuid)]);
        nb.transact(&t).await.unwrap();
        assert!(
            nb.replica().table("Logical_Switch").get(&uuid).is_none(),
            "delete {i} not yet in the replica"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn monitor_sees_another_clients_write() {
    let (_dir, server) = nb_server();
    let a = Client::connect(nb_config(&server.unix_remote()))
        .await
        .unwrap();
    let b = Client::connect(nb_config(&server.tcp_remote()))
        .await
        .unwrap();
    a.transact(&add_switch("from-a")).await.unwrap();
    let seen = b
        .wait_for(Duration::from_secs(5), |r| {
            r.table("Logical_Switch")
                .one_by_name("from-a")
                .map(|row| row.external_id("owner").map(str::to_string))
        })
        .await
        .expect("b never saw a's switch");
    assert_eq!(seen.as_deref(), Some("test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn reconnects_after_the_server_restarts_and_resyncs() {
    let (_dir, mut server) = nb_server();
    let nb = Client::connect(nb_config(&server.unix_remote()))
        .await
        .unwrap();
    nb.transact(&add_switch("before")).await.unwrap();
    let epoch = nb.state().epoch;

    server.kill();
    // Calls fail fast while the server is down, with an error that names the database.
    let mut rx = nb.watch_state();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let started = std::time::Instant::now();
    let err = nb.transact(&add_switch("while-down")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "did not fail fast: {:?}",
        started.elapsed()
    );
    assert!(err.is_connection(), "{err}");
    assert!(err.to_string().contains("OVN_Northbound"), "{err}");

    // Another client writes while ours is away: our replica must show it after the resync.
    server.start();
    let other = Client::connect(nb_config(&server.tcp_remote()))
        .await
        .unwrap();
    other.transact(&add_switch("during")).await.unwrap();
    nb.wait_connected(Duration::from_secs(10)).await.unwrap();
    assert!(nb.state().epoch > epoch);
    nb.transact(&add_switch("after")).await.unwrap();
    let rep = nb.replica();
    let names: HashSet<String> = rep
        .table("Logical_Switch")
        .rows()
        .filter_map(|r| r.str("name").map(str::to_string))
        .collect();
    assert_eq!(
        names,
        ["before", "during", "after"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn open_vswitch_schema_bridge_port_interface() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path(), "conf", VSWITCH_SCHEMA);
    let mut cfg = Config::new(
        parse_remotes(&server.unix_remote()).unwrap(),
        "Open_vSwitch",
        &["Open_vSwitch", "Bridge", "Port", "Interface"],
    );
    cfg.connect_timeout = Duration::from_secs(2);
    let ovs = Client::connect(cfg).await.unwrap();
    let mut t = Txn::new("Open_vSwitch");
    t.insert("Open_vSwitch", json!({}), Some("root"));
    t.insert("Interface", json!({"name": "veth0", "external_ids": datum::map([("iface-id", "lsp1"), ("owner", "kuryr")])}), Some("i"));
    t.insert(
        "Port",
        json!({"name": "veth0", "interfaces": named_uuid("i"), "tag": 101}),
        Some("p"),
    );
    t.insert("Bridge", json!({"name": "br-int", "ports": datum::set([named_uuid("p")]), "datapath_type": "netdev"}), Some("b"));
    t.mutate(
        "Open_vSwitch",
        vec![],
        vec![txn::mutate_insert("bridges", datum::set([named_uuid("b")]))],
    );
    ovs.transact(&t).await.unwrap();
    let rep = ovs.replica();
    let iface = rep.table("Interface").by_external_id("iface-id", "lsp1");
    assert_eq!(iface.len(), 1);
    let port = rep.table("Port").one_by_name("veth0").unwrap();
    assert_eq!(port.int("tag"), Some(101));
    assert_eq!(port.uuids("interfaces"), vec![iface[0].uuid]);
    assert_eq!(
        rep.table("Bridge")
            .one_by_name("br-int")
            .unwrap()
            .str("datapath_type"),
        Some("netdev")
    );
}

/// A counter of Northbound's in this process's metrics.
fn counter(name: &str) -> f64 {
    let samples = kuryr_metrics::scrape::parse(&kuryr_metrics::encode()).expect("metrics parse");
    kuryr_metrics::scrape::sum(&samples, name, &[("database", NB)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn raft_leader_killed_while_writing_loses_and_doubles_nothing() {
    require_tools();
    let mut cluster = Cluster::new(NB_SCHEMA, NB);
    let mut cfg = nb_config(&cluster.remotes());
    cfg.request_timeout = Duration::from_secs(10);
    let nb = Client::connect(cfg).await.unwrap();
    let leader = cluster.leader().expect("a leader");
    assert_eq!(
        nb.state().remote.as_deref(),
        Some(cluster.members[leader].tcp_remote().as_str()),
        "connected to a follower"
    );

    const N: usize = 300;
    let writer = {
        let nb = nb.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let name = format!("raft-{i:03}");
                // Idempotent: skip when the switch already exists (a commit whose reply was lost).
                nb.transact_with(Duration::from_secs(30), |rep| {
                    Ok(
                        if rep.table("Logical_Switch").one_by_name(&name).is_some() {
                            None
                        } else {
                            Some(add_switch(&name))
                        },
                    )
                })
                .await
                .unwrap_or_else(|e| panic!("write {name}: {e}"));
            }
        })
    };
    // Kill the leader once the writer is well under way.
    nb.wait_for(Duration::from_secs(20), |r| {
        (r.table("Logical_Switch").len() >= N / 3).then_some(())
    })
    .await
    .expect("writer made no progress");
    let (changes, reconnects) = (
        counter("kuryr_ovsdb_leader_changes_total"),
        counter("kuryr_ovsdb_reconnects_total"),
    );
    cluster.members[leader].kill();
    assert!(
        !writer.is_finished(),
        "the writer finished before the leader was killed: the test proves nothing"
    );
    writer.await.unwrap();

    let state = nb.state();
    assert!(state.epoch >= 2, "the client never reconnected: {state:?}");
    let new_leader = cluster.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    assert_eq!(
        state.remote.as_deref(),
        Some(cluster.members[new_leader].tcp_remote().as_str())
    );
    assert!(
        state.resumed,
        "monitor was fully resynced instead of resumed"
    );
    // The metrics saw it (other tests of this binary may only add to them).
    assert!(counter("kuryr_ovsdb_leader_changes_total") > changes);
    assert!(counter("kuryr_ovsdb_reconnects_total") > reconnects);

    // Check against a fresh reader: exactly N switches, each once.
    let reader = Client::connect(nb_config(&cluster.remotes()))
        .await
        .unwrap();
    let rep = reader.replica();
    let names: Vec<String> = rep
        .table("Logical_Switch")
        .rows()
        .filter_map(|r| r.str("name").map(str::to_string))
        .collect();
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(names.len(), N, "lost or doubled writes");
    assert_eq!(unique.len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn ssl_remote_with_ovs_pki_certificates() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ovs-pki")
            .args(args)
            .arg(format!("--dir={}", pki.display()))
            .arg("--force")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovs-pki {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init"]);
    run(&["req+sign", "server", "controller"]);
    run(&["req+sign", "client", "switch"]);
    let port = support::free_port();
    let db = dir.path().join("nb.db");
    std::process::Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(NB_SCHEMA)
        .status()
        .unwrap();
    let mut child = std::process::Command::new("/usr/sbin/ovsdb-server")
        .arg(&db)
        .arg(format!("--remote=pssl:{port}:127.0.0.1"))
        .arg(format!(
            "--private-key={}",
            dir.path().join("server-privkey.pem").display()
        ))
        .arg(format!(
            "--certificate={}",
            dir.path().join("server-cert.pem").display()
        ))
        .arg(format!(
            "--ca-cert={}",
            pki.join("switchca/cacert.pem").display()
        ))
        .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
        .arg(format!("--pidfile={}", dir.path().join("pid").display()))
        .env("OVS_RUNDIR", dir.path())
        .env("OVS_LOGDIR", dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until("pssl listener", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let files = kuryr_ovsdb::TlsFiles {
        private_key: dir.path().join("client-privkey.pem"),
        certificate: dir.path().join("client-cert.pem"),
        ca_cert: pki.join("controllerca/cacert.pem"),
    };
    let mut cfg = nb_config(&format!("ssl:127.0.0.1:{port}"));
    cfg.tls = Some(files.clone());
    let result = Client::connect(cfg).await;
    let ok = match &result {
        Ok(nb) => nb.transact(&add_switch("over-tls")).await.map(|_| ()),
        Err(e) => Err(Error::Tls {
            remote: "ssl".into(),
            message: e.to_string(),
        }),
    };
    // A client that does not trust the server's CA is refused with a TLS error.
    let mut bad = nb_config(&format!("ssl:127.0.0.1:{port}"));
    bad.tls = Some(kuryr_ovsdb::TlsFiles {
        ca_cert: pki.join("switchca/cacert.pem"),
        ..files
    });
    bad.connect_timeout = Duration::from_secs(1);
    let refused = Client::connect(bad).await;
    let _ = child.kill();
    let _ = child.wait();
    ok.unwrap();
    let err = refused
        .err()
        .expect("connected without trusting the server's CA");
    assert!(
        err.to_string().contains("handshake") || err.to_string().contains("TLS"),
        "{err}"
    );
}
