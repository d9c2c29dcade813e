//! Single-row inserts into OVN Northbound: this client (one at a time and many in flight) side
//! by side with `ovn-nbctl` (a process per call, and daemon mode) against the same private
//! ovsdb-server, in one run. Prints p50/p99 latency and transactions per second.
//!
//! `cargo run --release -p kuryr-ovsdb --example nb-bench -- [--n N] [--nbctl-n N] [--inflight K] [--json]`
use kuryr_testlab as support;

use futures::stream::{self, StreamExt};
use kuryr_ovsdb::txn::eq;
use kuryr_ovsdb::{parse_remotes, Client, Config, Txn};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

struct Row {
    mode: String,
    n: usize,
    p50_ms: f64,
    p99_ms: f64,
    tps: f64,
}

fn summarize(mode: &str, mut lat: Vec<Duration>, wall: Duration) -> Row {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    Row {
        mode: mode.to_string(),
        n: lat.len(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        tps: lat.len() as f64 / wall.as_secs_f64(),
    }
}

fn ls_add(name: &str) -> Txn {
    // What `ovn-nbctl ls-add` does: refuse a duplicate name, insert one row.
    let mut t = Txn::new("OVN_Northbound");
    t.wait_absent("Logical_Switch", vec![eq("name", name)]);
    t.insert("Logical_Switch", json!({"name": name}), None);
    t
}

fn arg(args: &[String], flag: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} takes a number, got {v}"))
        })
        .unwrap_or(default)
}

fn nbctl(db: &str, env: Option<(&str, &str)>, args: &[&str]) -> Duration {
    let mut cmd = Command::new("ovn-nbctl");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    } else {
        cmd.arg(format!("--db={db}"));
    }
    cmd.args(args);
    let start = Instant::now();
    let out = cmd.output().expect("run ovn-nbctl");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "ovn-nbctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--n", 2000);
    let nbctl_n = arg(&args, "--nbctl-n", 200);
    let inflight = arg(&args, "--inflight", 64);
    let as_json = args.iter().any(|a| a == "--json");

    support::require_tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = support::Server::standalone(dir.path(), "nb", support::NB_SCHEMA);
    let db = server.unix_remote();
    let mut rows = Vec::new();

    // ovn-nbctl, one process per call.
    let mut lat = Vec::new();
    let start = Instant::now();
    for i in 0..nbctl_n {
        lat.push(nbctl(&db, None, &["ls-add", &format!("nbctl-{i}")]));
    }
    rows.push(summarize(
        "ovn-nbctl (process per call)",
        lat,
        start.elapsed(),
    ));

    // ovn-nbctl daemon mode: a resident ovn-nbctl keeps the replica; each call is a thin client.
    let ctl = dir.path().join("nbctl.ctl");
    let out = Command::new("ovn-nbctl")
        .arg(format!("--db={db}"))
        .arg("--detach")
        .arg(format!(
            "--pidfile={}",
            dir.path().join("nbctl.pid").display()
        ))
        .arg(format!("--unixctl={}", ctl.display()))
        .arg(format!(
            "--log-file={}",
            dir.path().join("nbctl.log").display()
        ))
        .output()
        .expect("start ovn-nbctl daemon");
    assert!(
        out.status.success(),
        "ovn-nbctl --detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctl_s = ctl.display().to_string();
    let mut lat = Vec::new();
    let start = Instant::now();
    for i in 0..nbctl_n {
        lat.push(nbctl(
            &db,
            Some(("OVN_NB_DAEMON", &ctl_s)),
            &["ls-add", &format!("nbctld-{i}")],
        ));
    }
    rows.push(summarize("ovn-nbctl (daemon mode)", lat, start.elapsed()));
    let _ = Command::new("ovs-appctl")
        .arg("-t")
        .arg(&ctl)
        .arg("exit")
        .output();

    let config = Config::new(
        parse_remotes(&db).expect("remote"),
        "OVN_Northbound",
        &["Logical_Switch"],
    );
    let nb = Client::connect(config).await.expect("connect");

    // This client, one transaction at a time.
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = ls_add(&format!("seq-{i}"));
        let s = Instant::now();
        nb.transact(&t).await.expect("insert");
        lat.push(s.elapsed());
    }
    rows.push(summarize("kuryr-ovsdb (sequential)", lat, start.elapsed()));

    // This client, many transactions in flight on the one connection.
    let start = Instant::now();
    let lat: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let nb = nb.clone();
            async move {
                let t = ls_add(&format!("par-{i}"));
                let s = Instant::now();
                nb.transact(&t).await.expect("insert");
                s.elapsed()
            }
        })
        .buffer_unordered(inflight)
        .collect()
        .await;
    rows.push(summarize(
        &format!("kuryr-ovsdb ({inflight} in flight)"),
        lat,
        start.elapsed(),
    ));

    let total = nb.replica().table("Logical_Switch").len();
    assert_eq!(
        total,
        2 * nbctl_n + 2 * n,
        "rows missing after the benchmark"
    );

    let daemon_tps = rows[1].tps;
    if as_json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| json!({"mode": r.mode, "n": r.n, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "tps": r.tps,
                           "tps_vs_nbctl_daemon": r.tps / daemon_tps}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return;
    }
    println!("single-row Logical_Switch inserts into a private OVN Northbound ovsdb-server (unix socket)");
    println!(
        "{:<32} {:>6} {:>10} {:>10} {:>10} {:>16}",
        "mode", "n", "p50 ms", "p99 ms", "tx/s", "vs daemon"
    );
    for r in &rows {
        println!(
            "{:<32} {:>6} {:>10.3} {:>10.3} {:>10.0} {:>15.1}x",
            r.mode,
            r.n,
            r.p50_ms,
            r.p99_ms,
            r.tps,
            r.tps / daemon_tps
        );
    }
    println!("(vs daemon = this row's tx/s / ovn-nbctl daemon mode's tx/s)");
}
