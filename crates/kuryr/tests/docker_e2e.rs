//! End to end with the real Docker Engine, Open vSwitch and OVN: `docker network create -d
//! kuryr`, `docker run --net`, traffic that passes and traffic that does not. Run by
//! `make test` (ignored by a bare `cargo test`: they need root and the lab).
mod common;

use common::*;
use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

/// Tests that compare all of Northbound/OVS before and after take this exclusively.
static LAB: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LAB.read().unwrap_or_else(|e| e.into_inner())
}

/// The rows of a Northbound table that are kuryr's (named or marked by kuryr): other users of
/// the lab's Northbound, such as Neutron's own maintenance, may change theirs meanwhile.
fn kuryr_rows(table: &str) -> Vec<String> {
    nb_rows(table)
        .into_iter()
        .filter(|r| r.contains("kuryr"))
        .collect()
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    LAB.write().unwrap_or_else(|e| e.into_inner())
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn two_containers_ping_each_other() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.61.0.0/24"]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let (ia, ib) = (a.ip(&net), b.ip(&net));
    assert!(
        ia.starts_with("10.61.0.") && ib.starts_with("10.61.0.") && ia != ib,
        "{ia} {ib}"
    );
    assert!(a.pings(&ib), "a cannot ping b");
    assert!(b.pings(&ia), "b cannot ping a");
    // The overlay MTU reaches the container.
    let link = String::from_utf8_lossy(&a.exec(&["ip", "link", "show", "eth0"]).stdout).to_string();
    assert!(link.contains("mtu 1442"), "{link}");
    // A TCP connection goes through, and one to a closed port is refused.
    let serve = b.exec(&[
        "sh",
        "-c",
        "mkdir -p /www && echo hello > /www/index.html && httpd -p 8080 -h /www",
    ]);
    assert!(
        serve.status.success(),
        "httpd: {}",
        String::from_utf8_lossy(&serve.stderr)
    );
    // busybox's static wget crashes resolving names under Docker's DNS; nc speaks HTTP fine.
    let get = |port: u16| {
        a.exec(&[
            "sh",
            "-c",
            &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ib} {port}"),
        ])
    };
    // httpd daemonizes; give it a moment to listen.
    wait_until("an HTTP answer from b", Duration::from_secs(10), || {
        String::from_utf8_lossy(&get(8080).stdout).contains("hello")
    });
    let refused = get(8081);
    let why = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        !refused.status.success() && why.contains("refused"),
        "closed port: {why}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn containers_on_two_networks_cannot_reach_each_other() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let n1 = d.network(&["--subnet", "10.62.0.0/24"]);
    let n2 = d.network(&["--subnet", "10.62.1.0/24"]);
    let a = Container::run(&n1, &[]);
    let a2 = Container::run(&n1, &[]);
    let b = Container::run(&n2, &[]);
    assert!(a.pings(&a2.ip(&n1)), "same network must work");
    assert!(
        !a.pings(&b.ip(&n2)),
        "a reached a container on another network"
    );
    assert!(
        !b.pings(&a.ip(&n1)),
        "b reached a container on another network"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn ip_and_mac_address_are_honoured() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.63.0.0/24", "--gateway", "10.63.0.254"]);
    let a = Container::run(
        &net,
        &["--ip", "10.63.0.77", "--mac-address", "02:42:ac:11:00:77"],
    );
    let addr = String::from_utf8_lossy(&a.exec(&["ip", "addr", "show", "eth0"]).stdout).to_string();
    assert!(addr.contains("inet 10.63.0.77/24"), "{addr}");
    assert!(addr.contains("link/ether 02:42:ac:11:00:77"), "{addr}");
    let route = String::from_utf8_lossy(&a.exec(&["ip", "route"]).stdout).to_string();
    assert!(route.contains("default via 10.63.0.254"), "{route}");
    // The logical port carries the same MAC and IP, and port security enforces them.
    let lsp = nb_rows("Logical_Switch_Port").join("\n");
    assert!(lsp.contains("kuryr:network_id"), "{lsp}");
    let out = run(std::process::Command::new("ovn-nbctl").args([
        "--bare",
        "--columns=addresses,port_security",
        "find",
        "Logical_Switch_Port",
        "addresses=\"02:42:ac:11:00:77 10.63.0.77\"",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("02:42:ac:11:00:77 10.63.0.77").count(),
        2,
        "{text}"
    );
    // The same address again is refused with kuryr's reason.
    let err = docker_err(&[
        "run",
        "--rm",
        "--net",
        &net.name,
        "--ip",
        "10.63.0.77",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("10.63.0.77 is already in use"), "{err}");
    let b = Container::run(&net, &[]);
    assert!(b.pings("10.63.0.77"));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn dual_stack_ping_over_ipv6() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let net = d.network(&[
        "--subnet",
        "10.64.0.0/24",
        "--ipv6",
        "--subnet",
        "fd64:6b75::/64",
    ]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let (a6, b6) = (a.ipv6(&net), b.ipv6(&net));
    assert!(
        a6.starts_with("fd64:6b75::") && b6.starts_with("fd64:6b75::") && a6 != b6,
        "{a6} {b6}"
    );
    // IPv6 duplicate address detection runs first; give it a moment.
    wait_until("IPv6 ping from a to b", Duration::from_secs(10), || {
        a.pings(&b6)
    });
    assert!(b.pings(&a.ip(&net)), "IPv4 on the dual-stack network");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn same_cidr_on_two_networks_with_pool_names() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let opts = |p: &str| {
        vec![
            "--subnet".to_string(),
            "10.65.0.0/24".into(),
            "-o".into(),
            format!("kuryr.pool.name={p}"),
            "--ipam-opt".into(),
            format!("kuryr.pool.name={p}"),
        ]
    };
    let (p1, p2) = (unique("blue"), unique("green"));
    let o1 = opts(&p1);
    // Overlapping subnets cannot share a router: the second network has none.
    let mut o2 = opts(&p2);
    o2.extend(["-o".to_string(), "kuryr.router=none".into()]);
    let n1 = d.network(&o1.iter().map(String::as_str).collect::<Vec<_>>());
    let n2 = d.network(&o2.iter().map(String::as_str).collect::<Vec<_>>());
    let a1 = Container::run(&n1, &[]);
    let b1 = Container::run(&n1, &[]);
    let a2 = Container::run(&n2, &[]);
    let b2 = Container::run(&n2, &[]);
    assert_eq!(
        a1.ip(&n1),
        a2.ip(&n2),
        "both pools start at the same address"
    );
    assert!(a1.pings(&b1.ip(&n1)));
    assert!(a2.pings(&b2.ip(&n2)));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn exhausted_pool_gives_kuryrs_error() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.66.0.0/29"]);
    // A /29 has six host addresses; the gateway takes one.
    let _c: Vec<Container> = (0..5).map(|_| Container::run(&net, &[])).collect();
    let err = docker_err(&["run", "--rm", "--net", &net.name, IMAGE, "true"]);
    assert!(
        err.contains("pool 10.66.0.0/29 has no free address"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn network_connect_and_disconnect_a_running_container() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let n1 = d.network(&["--subnet", "10.67.0.0/24"]);
    let n2 = d.network(&["--subnet", "10.67.1.0/24"]);
    let a = Container::run(&n1, &[]);
    let b = Container::run(&n2, &[]);
    let bip = b.ip(&n2);
    assert!(!a.pings(&bip));
    docker_ok(&["network", "connect", &n2.name, &a.name]);
    assert!(
        a.pings(&bip),
        "connected container cannot reach the second network"
    );
    docker_ok(&["network", "disconnect", &n2.name, &a.name]);
    assert!(
        !a.pings(&bip),
        "disconnected container still reaches the second network"
    );
    let links = String::from_utf8_lossy(&a.exec(&["ip", "-o", "link"]).stdout).to_string();
    assert!(!links.contains("eth1"), "{links}");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn twenty_containers_started_in_parallel_get_distinct_addresses_and_reach_each_other() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.68.0.0/24"]);
    let names: Vec<String> = (0..20).map(|_| unique("kpar")).collect();
    let guards: Vec<Container> = names
        .iter()
        .map(|n| Container { name: n.clone() })
        .collect();
    std::thread::scope(|s| {
        for n in &names {
            let net = &net.name;
            s.spawn(move || {
                docker_ok(&[
                    "run", "-d", "--name", n, "--net", net, IMAGE, "sleep", "600",
                ])
            });
        }
    });
    let ips: Vec<String> = guards.iter().map(|c| c.ip(&net)).collect();
    let unique_ips: HashSet<&String> = ips.iter().collect();
    assert_eq!(unique_ips.len(), 20, "{ips:?}");
    for from in [0usize, 19] {
        for (i, ip) in ips.iter().enumerate() {
            if i != from {
                assert!(guards[from].pings(ip), "container {from} cannot reach {ip}");
            }
        }
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn kuryr_killed_and_restarted_between_network_create_and_run() {
    let _g = shared();
    let mut d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.69.0.0/24"]);
    let a = Container::run(&net, &[]);
    d.kill9();
    d.spawn();
    // Docker never replays CreateNetwork: the new process serves the network from Northbound.
    let b = Container::run(&net, &[]);
    assert!(b.pings(&a.ip(&net)), "no traffic after the restart");
    assert_ne!(a.ip(&net), b.ip(&net));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn network_rm_leaves_northbound_and_ovs_as_before() {
    let _g = exclusive();
    // Started first: a daemon's start makes the host's management port and the default
    // router, which stay for every later network.
    let d = Daemon::start(&[]);
    let before = (
        kuryr_rows("Logical_Switch"),
        kuryr_rows("Logical_Switch_Port"),
        kuryr_rows("Address_Set"),
        ovs_ports(),
    );
    {
        let net = d.network(&[
            "--subnet",
            "10.70.0.0/24",
            "--ipv6",
            "--subnet",
            "fd70::/64",
        ]);
        let a = Container::run(&net, &[]);
        let b = Container::run(&net, &[]);
        assert!(a.pings(&b.ip(&net)));
        assert_ne!(ovs_ports(), before.3, "the containers' ports are on br-int");
        drop(a);
        drop(b);
        drop(net);
    }
    let after = (
        kuryr_rows("Logical_Switch"),
        kuryr_rows("Logical_Switch_Port"),
        kuryr_rows("Address_Set"),
        ovs_ports(),
    );
    assert_eq!(
        after, before,
        "Northbound or OVS differ from before the test"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn dockerd_restarted_under_running_containers_keeps_their_addresses_and_connectivity() {
    let _g = exclusive();
    let info = docker_ok(&["info", "--format", "{{.LiveRestoreEnabled}}"]);
    assert_eq!(
        info, "true",
        "dockerd runs without --live-restore: run `make lab` (its dockerd has it)"
    );
    let started = std::fs::read_to_string("/run/kuryr-lab/started").unwrap_or_default();
    assert!(
        started.lines().any(|l| l.trim() == "dockerd"),
        "this test restarts dockerd, so it must be the lab's: stop your dockerd and run `make lab`"
    );
    let d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.72.0.0/24"]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let (ia, ib) = (a.ip(&net), b.ip(&net));
    assert!(a.pings(&ib));

    // Restart dockerd the way an upgrade does: TERM, wait for it to exit, start it again.
    let pid = std::fs::read_to_string("/var/run/docker.pid")
        .expect("dockerd pid file")
        .trim()
        .to_string();
    assert!(
        run(std::process::Command::new("kill").args(["-TERM", &pid]))
            .status
            .success()
    );
    wait_until("dockerd to exit", Duration::from_secs(30), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab/lab.sh");
    // Docker looks for the plugin of every network it knows at start, ~15 s per plugin that is
    // gone (networks a killed test run left behind): give it time.
    let up = run(std::process::Command::new("bash")
        .args([lab, "up"])
        .env("LAB_WAIT", "300"));
    assert!(
        up.status.success(),
        "lab.sh up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    assert_eq!(
        (a.ip(&net), b.ip(&net)),
        (ia.clone(), ib.clone()),
        "addresses changed across the restart"
    );
    assert!(
        a.pings(&ib) && b.pings(&ia),
        "no traffic after dockerd restarted"
    );
    // The network still works for new containers (Docker activates the plugin again).
    let c = Container::run(&net, &[]);
    assert!(c.pings(&ia));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn aux_addresses_are_reserved() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let net = d.network(&[
        "--subnet",
        "10.73.0.0/24",
        "--aux-address",
        "router=10.73.0.5",
    ]);
    let err = docker_err(&[
        "run",
        "--rm",
        "--net",
        &net.name,
        "--ip",
        "10.73.0.5",
        IMAGE,
        "true",
    ]);
    assert!(err.contains("10.73.0.5 is already in use"), "{err}");
    let a = Container::run(&net, &["--ip", "10.73.0.6"]);
    assert_eq!(a.ip(&net), "10.73.0.6");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn two_docker_networks_attached_to_one_logical_network_by_name_reach_each_other() {
    let _g = shared();
    // What two hosts do to share a network, done twice on this host: each Docker network
    // attaches to the logical switch named by kuryr.net.name, with one shared pool.
    let d = Daemon::start(&[]);
    let shared_name = unique("shared");
    let opts = [
        "--subnet",
        "10.74.0.0/24",
        "-o",
        &format!("kuryr.net.name={shared_name}"),
    ];
    let n1 = d.network(&opts);
    let n2 = d.network(&opts);
    let a = Container::run(&n1, &[]);
    let b = Container::run(&n2, &[]);
    assert_ne!(a.ip(&n1), b.ip(&n2), "one pool for both networks");
    assert!(
        a.pings(&b.ip(&n2)),
        "containers of the two Docker networks cannot reach each other"
    );
    let switches = |name: &str| {
        nb_rows("Logical_Switch")
            .iter()
            .filter(|r| r.contains(&format!(",{name},")))
            .count()
    };
    assert_eq!(switches(&shared_name), 1);
    // Removing one Docker network leaves the logical network to the other...
    drop(a);
    drop(n1);
    assert_eq!(switches(&shared_name), 1);
    let c = Container::run(&n2, &[]);
    assert!(c.pings(&b.ip(&n2)));
    // ...and removing the last one removes it.
    drop(b);
    drop(c);
    drop(n2);
    assert_eq!(
        switches(&shared_name),
        0,
        "the logical switch outlived its last network"
    );
}
