//! The command line end to end with the real Docker, OVS and OVN: the source document's
//! `ovn-container` workflow run as written with `kuryr` (net-create, endpoint-create,
//! container-create, `docker run --net=container:`, endpoint-delete, net-delete), and a
//! Docker network attaching to a CLI network by name.
mod common;

use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kuryr(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_kuryr")).args(args))
}

fn kuryr_ok(args: &[&str]) -> String {
    succeeded(kuryr(args), format!("kuryr {}", args.join(" ")))
}

fn kuryr_err(args: &[&str]) -> String {
    let out = kuryr(args);
    assert!(
        !out.status.success(),
        "kuryr {} succeeded but should have failed",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// An endpoint name whose first characters (which make its interface names) are unique.
fn ep_name(i: u32) -> String {
    let u = unique("e");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{i}{nanos:08x}{}", u.replace('-', ""))
}

/// A /24 no other test or run uses at the same time.
fn cidr() -> (String, String) {
    let n = std::process::id() % 200 + 20;
    // A start picked once per process, then one step per call: tests running side by side
    // in one process never get the same /24 (pools are named by CIDR and would be shared).
    let start = *CIDR_START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0)
    });
    let m = 100 + (start + SEQ2.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) % 100;
    (format!("10.{m}.{n}.0/24"), format!("10.{m}.{n}."))
}

static CIDR_START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
static SEQ2: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Removes what a test made with the command line even when it fails: the network with
/// --force (its endpoints and their containers), then namespaces and containers by name.
struct Cleanup {
    network: String,
    containers: Vec<String>,
    netns: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = kuryr(&["network", "delete", "--force", &self.network]);
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "delete", n]).output();
        }
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn the_ovn_container_workflow_runs_as_written_with_kuryr() {
    require_lab();
    let net = unique("ls0");
    let (subnet, prefix) = cidr();
    let (ep0, ep1) = (ep_name(0), ep_name(1));
    let ns = unique("kns");
    let app = unique("kapp");
    let mut guard = Cleanup {
        network: net.clone(),
        containers: vec![app.clone()],
        netns: vec![ns.clone()],
    };

    // ovn-container net-create ls0 192.168.1.0/24 (returns a uuid)
    let uuid = kuryr_ok(&["network", "create", &net, &subnet]);
    assert_eq!(uuid.len(), 36, "a uuid: {uuid}");
    // net-list
    let list = kuryr_ok(&["network", "list"]);
    assert!(
        list.lines().any(|l| l.starts_with(&format!("{net} "))),
        "{list}"
    );
    assert!(list.starts_with("NAME "), "a table with a header: {list}");

    // endpoint-create ls0 ls0p0 (returns its id, IP and MAC)
    let created = kuryr_ok(&["endpoint", "create", &net, &ep0]);
    assert_eq!(
        created,
        format!("{ep0} {prefix}2/24 0a:58:0a:{}", mac_tail(&prefix, 2)),
    );
    kuryr_ok(&["endpoint", "create", &net, &ep1]);
    // endpoint-list
    let eps = kuryr_ok(&["endpoint", "list"]);
    assert!(eps.contains(&ep0) && eps.contains(&ep1), "{eps}");

    // container-create --network=ls0p0 (returns the network container's id)
    let start = Instant::now();
    let ctr = kuryr_ok(&["container", "create", &format!("--network={ep0}")]);
    eprintln!("container create (Docker) took {:?}", start.elapsed());
    guard.containers.push(ctr.clone());
    // A second one without Docker: a named namespace.
    let nsid = kuryr_ok(&["container", "create", "--network", &ep1, "--netns", &ns]);
    assert_eq!(nsid, ns);

    // docker run -d --net=container:$NETWORK_CONTAINER ...
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &app,
        &format!("--net=container:{ctr}"),
        IMAGE,
        "sleep",
        "600",
    ]);
    let addr = docker_ok(&["exec", &app, "ip", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{prefix}2/24")), "{addr}");
    let link = docker_ok(&["exec", &app, "ip", "-o", "link", "show", "eth0"]);
    assert!(
        link.contains(&format!("0a:58:0a:{}", mac_tail(&prefix, 2))),
        "{link}"
    );
    assert!(
        link.contains("mtu 1442") || link.contains("mtu 1450"),
        "{link}"
    );
    let ping = docker(&[
        "exec",
        &app,
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        &format!("{prefix}3"),
    ]);
    assert!(
        ping.status.success(),
        "the app container reaches the namespace's endpoint: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let back = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            &format!("{prefix}2"),
        ])
        .output()
        .expect("ip netns exec");
    assert!(back.status.success(), "and back");
    let containers = kuryr_ok(&["container", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&containers).expect("json");
    assert!(
        v.as_array()
            .is_some_and(|a| a.iter().any(|c| c["id"] == ctr.as_str())),
        "{containers}"
    );

    // A network with endpoints is not deleted by accident.
    let err = kuryr_err(&["network", "delete", &net]);
    assert!(err.contains("--force") && err.contains(&ep0), "{err}");

    // endpoint-delete ls0p0: the network container goes with its last endpoint.
    docker_ok(&["rm", "-f", &app]);
    kuryr_ok(&["endpoint", "delete", &ep0]);
    assert!(
        !docker(&["inspect", &ctr]).status.success(),
        "network container {ctr} was deleted with its last endpoint"
    );
    kuryr_ok(&["endpoint", "delete", &ep1]);
    assert!(
        !std::path::Path::new(&format!("/var/run/netns/{ns}")).exists(),
        "namespace {ns} was deleted with its last endpoint"
    );
    let ports = ovs_ports();
    for ep in [&ep0, &ep1] {
        let tap = format!("tap{}", &ep[..11]);
        assert!(!ports.contains(&tap), "OVS port {tap} is gone: {ports:?}");
    }

    // net-delete ls0
    kuryr_ok(&["network", "delete", &net]);
    assert!(!kuryr_ok(&["network", "list"]).contains(&net));
    assert!(!nb_rows("Logical_Switch").iter().any(|r| r.contains(&net)));
    assert!(
        !nb_rows("Address_Set").iter().any(|r| r.contains(&subnet)),
        "the pool went with the network"
    );
    std::mem::forget(guard);
}

/// The MAC's last three octets for `prefix` + `host` (`0a:58:` + the IPv4 octets).
fn mac_tail(prefix: &str, host: u8) -> String {
    let o: Vec<u8> = prefix
        .trim_end_matches('.')
        .split('.')
        .filter_map(|x| x.parse().ok())
        .collect();
    format!("{:02x}:{:02x}:{:02x}", o[1], o[2], host)
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_docker_network_attaches_to_a_cli_network_by_name() {
    let daemon = Daemon::start(&[]);
    let net = unique("ls1");
    let (subnet, prefix) = cidr();
    let ep = ep_name(2);
    let _guard = Cleanup {
        network: net.clone(),
        containers: vec![],
        netns: vec![],
    };
    kuryr_ok(&["network", "create", &net, &subnet]);
    kuryr_ok(&["endpoint", "create", &net, &ep]);
    let ctr = kuryr_ok(&["container", "create", "--network", &ep]);

    let dnet = daemon.network(&["--subnet", &subnet, "-o", &format!("kuryr.net.name={net}")]);
    let c = Container::run(&dnet, &[]);
    assert_eq!(
        c.ip(&dnet),
        format!("{prefix}3"),
        "one pool: .2 is the CLI endpoint's"
    );
    wait_until(
        "the Docker container reaches the network container",
        Duration::from_secs(10),
        || c.pings(&format!("{prefix}2")),
    );
    let shown = kuryr_ok(&["network", "show", &net, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(v["docker_networks"][0], dnet.id.as_str(), "{shown}");
    drop(c);
    drop(dnet);
    kuryr_ok(&["endpoint", "delete", &ep]);
    assert!(!docker(&["inspect", &ctr]).status.success());
    kuryr_ok(&["network", "delete", &net]);
}
