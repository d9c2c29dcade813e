//! The OVN mode's routing end to end, with the real Docker Engine, OVS, OVN and this host's
//! kernel: the gateway answers, containers reach "the outside" (a namespace the host reaches
//! only by ordinary routing) source-NATed to the host, `-p` answers from there, `--internal`
//! stays closed, networks of one router are isolated except for `--expose`d ports, and
//! `docker network rm` leaves Northbound, routes and NAT rules as they were. Run by
//! `make test` (ignored by a bare `cargo test`: they need root and the lab).
mod common;

use common::outside::Outside;
use common::*;
use std::process::Command;
use std::sync::RwLock;
use std::time::Duration;

/// The before/after test takes this exclusively.
static LAB: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LAB.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    LAB.write().unwrap_or_else(|e| e.into_inner())
}

/// A container that serves "served-by-<name>" over HTTP on each port.
fn web(net: &Network, ports: &[u16], extra: &[&str]) -> Container {
    let name = unique("kweb");
    let mut script = String::from("mkdir -p /www && echo served > /www/index.html");
    for p in ports {
        script.push_str(&format!(" && httpd -p {p} -h /www"));
    }
    script.push_str(" && sleep 600");
    let mut args = vec!["run", "-d", "--name", &name, "--net", &net.name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sh", "-c", &script]);
    let c = Container { name: name.clone() };
    docker_ok(&args);
    c
}

/// An HTTP GET from a container: the answer's text, empty when nothing answered.
fn get_from(c: &Container, ip: &str, port: u16) -> String {
    let out = c.exec(&[
        "sh",
        "-c",
        &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}"),
    ]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn nat_rules(chain: &str) -> Vec<String> {
    nat_rules_of("iptables", chain)
}

fn nat_rules_of(bin: &str, chain: &str) -> Vec<String> {
    let out = run(Command::new(bin).args(["-w", "-t", "nat", "-S", chain]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host's IPv4 and IPv6 routes through the management port.
fn routes() -> Vec<String> {
    ["-4", "-6"]
        .iter()
        .flat_map(|f| {
            let out = run(Command::new("ip").args([f, "route", "show", "dev", "kuryr-mp0"]));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn the_gateway_answers_and_egress_leaves_as_the_host() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let out = Outside::new();
    let net = d.network(&["--subnet", "10.111.0.0/24"]);
    let c = Container::run(&net, &[]);
    assert!(c.pings("10.111.0.1"), "the gateway does not answer ping");
    let listener = out.accept_one(9000, Duration::from_secs(15));
    let said = c.exec(&["sh", "-c", &format!("nc -w 5 {} 9000 </dev/null", out.ip)]);
    let peer = listener.join().expect("listener thread");
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        "hello",
        "no answer from the outside: {}",
        String::from_utf8_lossy(&said.stderr)
    );
    let peer = peer.expect("the outside saw no connection");
    assert_eq!(
        peer.ip().to_string(),
        out.host_ip.to_string(),
        "egress must be source-NATed to the host's address"
    );
    // The host reaches the container by its address.
    let ping = run(Command::new("ping").args(["-c", "1", "-W", "2", &c.ip(&net)]));
    assert!(ping.status.success(), "the host cannot reach its container");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn ipv6_egress_leaves_as_the_host_too() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let out = Outside::new();
    let net = d.network(&[
        "--subnet",
        "10.122.0.0/24",
        "--ipv6",
        "--subnet",
        "fd7a:1::/64",
    ]);
    let c = Container::run(&net, &[]);
    assert!(
        c.pings("fd7a:1::1"),
        "the IPv6 gateway does not answer ping"
    );
    let listener = out.accept_one_on("::".parse().expect("::"), 9001, Duration::from_secs(15));
    let said = c.exec(&["sh", "-c", &format!("nc -w 5 {} 9001 </dev/null", out.ip6)]);
    let peer = listener.join().expect("listener thread");
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        "hello",
        "no IPv6 answer from the outside: {}",
        String::from_utf8_lossy(&said.stderr)
    );
    assert_eq!(
        peer.map(|p| p.ip().to_string()),
        Some(out.host_ip6.to_string()),
        "IPv6 egress must be source-NATed to the host's address"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_published_port_answers_from_outside_and_closes_with_the_container() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let out = Outside::new();
    let net = d.network(&["--subnet", "10.112.0.0/24"]);
    let port = free_tcp_port(1);
    let publish = format!("{port}:80");
    let c = web(&net, &[80], &["-p", &publish]);
    let mut last = Err(String::new());
    wait_until(
        "the published port to answer",
        Duration::from_secs(15),
        || {
            last = out.http_get(out.host_ip, port);
            last.as_ref().is_ok_and(|b| b.contains("served"))
        },
    );
    // The same host port again is refused, naming the port.
    let again = Container::run_fails(&net, &["-p", &publish]);
    assert!(
        again.contains(&format!("host port {port}/tcp is already in use")),
        "{again}"
    );
    // A host port Docker's bridge driver published (its proxy holds it) is refused too.
    let bridged = free_tcp_port(6);
    let bridge_name = unique("kbr");
    let _bridge = Container {
        name: bridge_name.clone(),
    };
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &bridge_name,
        "-p",
        &format!("{bridged}:80"),
        IMAGE,
        "sleep",
        "600",
    ]);
    let taken = Container::run_fails(&net, &["-p", &format!("{bridged}:80")]);
    assert!(
        taken.contains(&format!(
            "host port {bridged}/tcp is already in use on this host"
        )),
        "{taken}"
    );
    // A container port without a host port cannot be told back to Docker: refused.
    let random = Container::run_fails(&net, &["-p", "80"]);
    assert!(random.contains("has no host port"), "{random}");
    // Published on one host address only: still answers there.
    let port2 = free_tcp_port(2);
    let on_ip = format!("{}:{port2}:80", out.host_ip);
    let c2 = web(&net, &[80], &["-p", &on_ip]);
    wait_until(
        "the port published on one address",
        Duration::from_secs(15),
        || {
            out.http_get(out.host_ip, port2)
                .is_ok_and(|b| b.contains("served"))
        },
    );
    drop(c2);
    drop(c);
    let gone = out.http_get(out.host_ip, port);
    assert!(
        gone.is_err(),
        "port {port} still answers after docker rm: {gone:?}"
    );
    assert!(
        !nat_rules("KURYR-DNAT")
            .iter()
            .any(|r| r.contains(&format!("--dport {port} "))),
        "the DNAT rule is left: {:?}",
        nat_rules("KURYR-DNAT")
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn an_internal_network_reaches_nothing_outside() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let out = Outside::new();
    let net = d.network(&["--internal", "--subnet", "10.113.0.0/24"]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    assert!(
        a.pings(&b.ip(&net)),
        "containers of an internal network reach each other"
    );
    assert!(!a.pings("10.113.0.1"), "an internal network has no gateway");
    assert!(
        !a.pings(&out.ip.to_string()),
        "an internal network has no egress"
    );
    // Docker does not ask to publish on an internal network (as with its bridge driver):
    // the port stays closed.
    let port = free_tcp_port(3);
    let _web = web(&net, &[80], &["-p", &format!("{port}:80")]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        out.http_get(out.host_ip, port).is_err(),
        "a port of an internal network answers"
    );
    assert!(
        !nat_rules("KURYR-DNAT")
            .iter()
            .any(|r| r.contains(&format!("--dport {port} "))),
        "an internal network's container got a DNAT rule"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn networks_of_one_router_are_isolated_except_exposed_ports() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let n1 = d.network(&["--subnet", "10.114.0.0/24"]);
    let n2 = d.network(&["--subnet", "10.115.0.0/24"]);
    let server = web(&n1, &[8080, 8081], &["--expose", "8080"]);
    let peer = Container::run(&n1, &[]);
    let client = Container::run(&n2, &[]);
    let sip = server.ip(&n1);
    wait_until("the server to listen", Duration::from_secs(15), || {
        get_from(&peer, &sip, 8081).contains("served")
    });
    assert!(
        !client.pings(&sip),
        "a container of another network pings across the router"
    );
    assert!(
        get_from(&client, &sip, 8080).contains("served"),
        "--expose 8080 does not let another network in"
    );
    assert!(
        get_from(&client, &sip, 8081).is_empty(),
        "port 8081 is open to another network without --expose"
    );
    // Both networks' gateways answer their own containers.
    assert!(client.pings("10.115.0.1"));
    assert!(peer.pings("10.114.0.1"));
    // Overlapping subnets cannot share a router: the error says what to do.
    let err = create_network_fails(
        &d.name,
        &[
            "--subnet",
            "10.114.0.0/24",
            "--ipam-opt",
            "kuryr.pool.name=overlap",
            "-o",
            "kuryr.pool.name=overlap",
        ],
    );
    assert!(
        err.contains("overlaps 10.114.0.0/24") && err.contains("kuryr.router"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn network_rm_leaves_routing_as_before() {
    let _g = exclusive();
    let d = Daemon::start(&[]);
    let kuryr = |t: &str| -> Vec<String> {
        nb_rows(t)
            .into_iter()
            .filter(|r| r.contains("kuryr"))
            .collect()
    };
    let snapshot = || {
        (
            kuryr("Logical_Router"),
            kuryr("Logical_Router_Port"),
            kuryr("Logical_Switch"),
            nb_rows("Port_Group")
                .into_iter()
                .filter(|r| r.contains("kuryr_"))
                .collect::<Vec<_>>(),
            kuryr("ACL"),
            routes(),
            nat_rules("KURYR-POSTROUTING"),
            nat_rules_of("ip6tables", "KURYR-POSTROUTING"),
            nat_rules("KURYR-DNAT"),
            ovs_ports(),
        )
    };
    let before = snapshot();
    {
        let net = d.network(&[
            "--subnet",
            "10.116.0.0/24",
            "--ipv6",
            "--subnet",
            "fd7a:2::/64",
        ]);
        let c = web(
            &net,
            &[80],
            &["-p", &format!("{}:80", free_tcp_port(4)), "--expose", "81"],
        );
        assert!(c.pings("10.116.0.1"));
        assert_ne!(snapshot(), before, "the network is routed");
        drop(c);
        drop(net);
    }
    assert_eq!(
        snapshot(),
        before,
        "routing state differs from before the network"
    );
}

fn kuryr_cli(args: &[&str]) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_kuryr")).args(args))
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_named_router_from_the_cli_routes_its_networks_and_goes_when_empty() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let out = Outside::new();
    let router = unique("krt");
    let made = kuryr_cli(&["router", "create", &router]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = kuryr_cli(&["router", "delete", &self.0]);
        }
    }
    let _gone = Gone(router.clone());
    let on = format!("kuryr.router={router}");
    let net = d.network(&["--subnet", "10.117.0.0/24", "-o", &on]);
    let other = d.network(&["--subnet", "10.118.0.0/24"]);
    let c = Container::run(&net, &[]);
    let o = Container::run(&other, &[]);
    assert!(
        c.pings("10.117.0.1"),
        "the named router's gateway does not answer"
    );
    assert!(
        c.pings(&out.ip.to_string()),
        "no egress through the named router"
    );
    assert!(
        !o.pings(&c.ip(&net)),
        "networks of two routers reach each other"
    );
    let show = kuryr_cli(&["router", "show", &router, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("router show JSON");
    assert_eq!(v["networks"][0]["subnets"][0], "10.117.0.0/24", "{v}");
    let busy = kuryr_cli(&["router", "delete", &router]);
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("remove them first"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    // A router that does not exist is named in Docker's error.
    let err = create_network_fails(
        &d.name,
        &[
            "--subnet",
            "10.119.0.0/24",
            "-o",
            "kuryr.router=no-such-router",
        ],
    );
    assert!(err.contains("kuryr router create no-such-router"), "{err}");
    drop(c);
    drop(net);
    let del = kuryr_cli(&["router", "delete", &router]);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    let list = kuryr_cli(&["router", "list", "--format", "json"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&router));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn process_external_connectivity_false_keeps_exposed_and_published_ports_closed() {
    let _g = shared();
    let closed = Daemon::start_with_conf("[DEFAULT]\nprocess_external_connectivity = false\n", &[]);
    let out = Outside::new();
    let n1 = closed.network(&["--subnet", "10.120.0.0/24"]);
    let n2 = closed.network(&["--subnet", "10.121.0.0/24"]);
    let port = free_tcp_port(5);
    let server = web(
        &n1,
        &[8080],
        &["--expose", "8080", "-p", &format!("{port}:8080")],
    );
    let peer = Container::run(&n1, &[]);
    let client = Container::run(&n2, &[]);
    let sip = server.ip(&n1);
    wait_until("the server to listen", Duration::from_secs(15), || {
        get_from(&peer, &sip, 8080).contains("served")
    });
    assert!(
        get_from(&client, &sip, 8080).is_empty(),
        "--expose opened a port"
    );
    assert!(
        out.http_get(out.host_ip, port).is_err(),
        "-p published a port"
    );
    drop((server, peer, client));
    drop((n1, n2));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_subnet_the_host_routes_itself_is_refused_and_the_hosts_route_kept() {
    let _g = shared();
    let d = Daemon::start(&[]);
    let out = Outside::new();
    // The outside's link is one of the host's own: a network on that subnet must not take
    // the route over.
    let subnet = format!("{}/30", out.host_ip);
    let link_route = || {
        let shown = run(Command::new("ip").args(["route", "show", "exact", &subnet]));
        String::from_utf8_lossy(&shown.stdout).trim().to_string()
    };
    let before = link_route();
    assert!(!before.is_empty(), "the outside link has no route");
    let net = d.network(&["--subnet", &subnet, "--gateway", &out.ip.to_string()]);
    let err = Container::run_fails(&net, &[]);
    assert!(err.contains("this host already routes"), "{err}");
    assert_eq!(link_route(), before, "the host's own route changed");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_network_container_from_the_cli_has_egress_and_its_route_goes_with_it() {
    let _g = shared();
    let out = Outside::new();
    let (net, ep, ns) = (unique("kcli"), unique("kep"), unique("kns"));
    // Endpoint names make interface names: the first 11 characters must be unique.
    let ep: String = ep.chars().rev().take(11).collect();
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = kuryr_cli(&["network", "delete", "--force", &self.0]);
            let _ = run(Command::new("ip").args(["netns", "delete", &self.1]));
        }
    }
    let _gone = Gone(net.clone(), ns.clone());
    let ok = |args: &[&str]| {
        let o = kuryr_cli(args);
        assert!(
            o.status.success(),
            "kuryr {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&["network", "create", &net, "10.123.0.0/24"]);
    ok(&["endpoint", "create", &net, &ep]);
    ok(&["container", "create", "--network", &ep, "--netns", &ns]);
    assert!(
        routes()
            .iter()
            .any(|r| r.starts_with("10.123.0.0/24 via 169.254.100.")),
        "no route for the CLI network: {:?}",
        routes()
    );
    let ping = run(Command::new("ip").args([
        "netns",
        "exec",
        &ns,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        &out.ip.to_string(),
    ]));
    assert!(ping.status.success(), "the network container has no egress");
    ok(&["network", "delete", "--force", &net]);
    assert!(
        !routes().iter().any(|r| r.starts_with("10.123.0.0/24")),
        "the route stayed after the network went: {:?}",
        routes()
    );
    assert!(
        !nat_rules("KURYR-POSTROUTING")
            .iter()
            .any(|r| r.contains("10.123.0.0/24")),
        "the NAT rule stayed"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_management_port_that_lost_its_address_gets_it_back_with_its_routes() {
    // What an ovs-vswitchd restart does to an internal port: the device comes back bare, and
    // the kernel drops every route through it.
    let _g = exclusive();
    let d = Daemon::start(&[]);
    let net = d.network(&["--subnet", "10.123.40.0/24"]);
    let a = Container::run(&net, &[]);
    let ia = a.ip(&net);
    let has_route = |subnet: &str| routes().iter().any(|r| r.starts_with(subnet));
    assert!(has_route("10.123.40.0/24"), "{:?}", routes());
    let out = run(Command::new("ip").args(["-4", "addr", "flush", "dev", "kuryr-mp0"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!has_route("10.123.40.0/24"), "the kernel kept the route");
    // The daemon notices by itself within seconds.
    let start = std::time::Instant::now();
    while !has_route("10.123.40.0/24") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the route did not come back: {:?}\n{}",
            routes(),
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let addrs = run(Command::new("ip").args(["-4", "-o", "addr", "show", "dev", "kuryr-mp0"]));
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains("169.254.100.254/24"),
        "the management port did not get its address back"
    );
    let ping = run(Command::new("ping").args(["-c", "1", "-W", "2", &ia]));
    assert!(ping.status.success(), "the host cannot reach its container");
    assert!(
        d.log_text().contains("lost its address"),
        "{}",
        d.log_text()
    );
    // Lost again right before a new network's first container: that container's route
    // repairs it at once.
    let out = run(Command::new("ip").args(["-4", "addr", "flush", "dev", "kuryr-mp0"]));
    assert!(out.status.success());
    let other = d.network(&["--subnet", "10.123.41.0/24"]);
    let b = Container::run(&other, &[]);
    assert!(b.pings("10.123.41.1"), "the gateway does not answer ping");
    assert!(
        has_route("10.123.40.0/24") && has_route("10.123.41.0/24"),
        "{:?}",
        routes()
    );
}
