//! A Swarm of three Docker hosts (`make lab-nodes`: each a network, mount and UTS namespace
//! with its own dockerd, Open vSwitch and ovn-controller, and kuryr as the managed plugin
//! `kuryr`), all managers, sharing the lab's Northbound: a dual-stack `--attachable` kuryr
//! network, a service of six tasks spread over the nodes, pings and service-name lookups
//! across nodes, `docker run --network` on another node, the leader's dockerd killed (a new
//! leader re-requests every address: granted, none doubled), a scale-down that leaves the
//! switch to the last node, and `docker service rm` + `docker network rm` leaving Northbound
//! as before. Run by `make test` (which brings the nodes up).
mod common;

use common::node::*;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const NODES: [u32; 3] = [1, 2, 3];
const IMAGE: &str = "kuryr-busybox:latest";

/// `docker ARGS` on node `n` (its own dockerd).
fn on(n: u32, args: &[&str]) -> Output {
    on_node(n, &[&["docker"], args].concat())
}

fn on_ok(n: u32, args: &[&str]) -> String {
    on_node_ok(n, &[&["docker"], args].concat())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Northbound rows of `table` that mention `needle`, one line each.
fn nb_rows_with(table: &str, needle: &str) -> Vec<String> {
    let out = Command::new("ovn-nbctl")
        .args([
            "--timeout=10",
            "--format=csv",
            "--data=bare",
            "--no-headings",
            "list",
            table,
        ])
        .output()
        .expect("ovn-nbctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|r| r.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A task or container: node, container id, IPv4, IPv6.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    node: u32,
    id: String,
    v4: String,
    v6: String,
}

fn members(net: &str, filter: &str) -> Vec<Member> {
    members_on(&NODES, net, filter)
}

/// The members on `nodes` only (a node whose dockerd is down cannot be asked).
fn members_on(nodes: &[u32], net: &str, filter: &str) -> Vec<Member> {
    let fmt = format!(
        "{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}} {{{{(index .NetworkSettings.Networks \"{net}\").GlobalIPv6Address}}}}"
    );
    let mut out = Vec::new();
    for &n in nodes {
        let ids = on_ok(n, &["ps", "-q", "--filter", filter]);
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let addrs = on_ok(n, &["inspect", "-f", &fmt, id]);
            let mut it = addrs.split_whitespace();
            out.push(Member {
                node: n,
                id: id.to_string(),
                v4: it.next().unwrap_or_default().to_string(),
                v6: it.next().unwrap_or_default().to_string(),
            });
        }
    }
    out.sort();
    out
}

/// A ping from `from` that gets an answer within 10 s: the first packet over a tunnel the
/// userspace datapath has not used yet may go unanswered.
fn pings(from: &Member, ip: &str) -> bool {
    let ping = if ip.contains(':') { "ping6" } else { "ping" };
    let start = Instant::now();
    loop {
        if on(
            from.node,
            &["exec", &from.id, ping, "-c", "1", "-W", "2", ip],
        )
        .status
        .success()
        {
            return true;
        }
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
    }
}

fn leader() -> Option<u32> {
    NODES.into_iter().find(|n| {
        on(
            *n,
            &["node", "inspect", "self", "-f", "{{.ManagerStatus.Leader}}"],
        )
        .stdout
        .starts_with(b"true")
    })
}

/// Leaves the swarm on every node and removes what the test made, even when it fails.
struct Swarm {
    service: String,
    network: String,
    extra: Vec<(u32, String)>,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        // A node whose dockerd the test killed would never delete its side of the network.
        let _ = node_sh_run("up");
        for (n, c) in &self.extra {
            let _ = on(*n, &["rm", "-f", c]);
        }
        for n in NODES {
            let _ = on(n, &["service", "rm", &self.service]);
        }
        for n in NODES {
            let _ = on(n, &["network", "rm", &self.network]);
        }
        for n in NODES.into_iter().rev() {
            let _ = on(n, &["swarm", "leave", "--force"]);
        }
    }
}

#[test]
#[ignore = "needs root, the lab and its Docker nodes (make test)"]
fn a_swarm_service_on_a_kuryr_network_spans_three_nodes_and_survives_a_leader_change() {
    common::require_lab();
    require_nodes();
    for n in NODES {
        let plugin = on_ok(n, &["plugin", "inspect", "-f", "{{.Enabled}}", "kuryr"]);
        assert_eq!(plugin, "true", "node {n}: the kuryr plugin is not enabled");
        // A swarm a failed run left behind.
        let _ = on(n, &["swarm", "leave", "--force"]);
    }
    let s = Swarm {
        service: common::unique("ksvc"),
        network: common::unique("kswarm"),
        extra: Vec::new(),
    };
    let before_ls = nb_rows_with("Logical_Switch", "10.192.0.0/24");
    assert!(
        before_ls.is_empty(),
        "a switch of 10.192.0.0/24 is already there: {before_ls:?}"
    );

    on_ok(1, &["swarm", "init", "--advertise-addr", "172.31.252.11"]);
    let token = on_ok(1, &["swarm", "join-token", "-q", "manager"]);
    for n in [2, 3] {
        on_ok(
            n,
            &["swarm", "join", "--token", &token, "172.31.252.11:2377"],
        );
    }
    wait_for("three Ready nodes", Duration::from_secs(30), || {
        on_ok(1, &["node", "ls", "--format", "{{.Status}}"])
            .lines()
            .filter(|l| *l == "Ready")
            .count()
            == 3
    });

    let driver = "kuryr:latest";
    on_ok(
        1,
        &[
            "network",
            "create",
            "-d",
            driver,
            "--ipam-driver",
            driver,
            "--subnet",
            "10.192.0.0/24",
            "--subnet",
            "fd00:192::/64",
            "--ipv6",
            "--attachable",
            &s.network,
        ],
    );
    on_ok(
        1,
        &[
            "service",
            "create",
            "--detach=false",
            "-q",
            "--name",
            &s.service,
            "--replicas",
            "6",
            "--network",
            &s.network,
            "--endpoint-mode",
            "dnsrr",
            "--stop-grace-period",
            "1s",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    let filter = format!("name={}", s.service);
    let tasks = members(&s.network, &filter);
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    let per_node: BTreeSet<u32> = tasks.iter().map(|t| t.node).collect();
    assert_eq!(
        per_node.len(),
        3,
        "tasks are not on all three nodes: {tasks:?}"
    );
    let v4: BTreeSet<&str> = tasks.iter().map(|t| t.v4.as_str()).collect();
    let v6: BTreeSet<&str> = tasks.iter().map(|t| t.v6.as_str()).collect();
    assert_eq!(v4.len(), 6, "an IPv4 address twice: {tasks:?}");
    assert_eq!(v6.len(), 6, "an IPv6 address twice: {tasks:?}");
    assert!(
        tasks
            .iter()
            .all(|t| t.v4.starts_with("10.192.0.") && t.v6.starts_with("fd00:192::")),
        "{tasks:?}"
    );

    // Across nodes, both families.
    let first = tasks
        .iter()
        .find(|t| t.node == 1)
        .expect("a task on node 1");
    for t in tasks.iter().filter(|t| t.node != 1) {
        assert!(
            pings(first, &t.v4),
            "node 1's task cannot ping {} on node {}",
            t.v4,
            t.node
        );
        assert!(
            pings(first, &t.v6),
            "node 1's task cannot ping {} on node {}",
            t.v6,
            t.node
        );
    }
    // The service's name gives every task's address, on any node.
    let on2 = tasks
        .iter()
        .find(|t| t.node == 2)
        .expect("a task on node 2");
    let lookup = on_ok(2, &["exec", &on2.id, "nslookup", &s.service]);
    for t in &tasks {
        assert!(
            lookup.contains(&t.v4),
            "{} not in the lookup of {}:\n{lookup}",
            t.v4,
            s.service
        );
    }

    // docker run --network on another node (the network is attachable).
    let mut s = s;
    let run3 = common::unique("kswarmrun");
    s.extra.push((3, run3.clone()));
    on_ok(
        3,
        &[
            "run",
            "-d",
            "--name",
            &run3,
            "--network",
            &s.network,
            IMAGE,
            "sleep",
            "600",
        ],
    );
    let attached = members(&s.network, &format!("name={run3}"));
    assert_eq!(attached.len(), 1);
    assert!(
        !v4.contains(attached[0].v4.as_str()),
        "the attached container got a task's address"
    );
    assert!(
        pings(&attached[0], &first.v4),
        "a container run on node 3 cannot ping node 1's task"
    );

    // Down to one task: the switch stays, marked by the one node left.
    for (n, c) in s.extra.drain(..) {
        on_ok(n, &["rm", "-f", &c]);
    }
    on_ok(
        1,
        &[
            "service",
            "scale",
            "--detach=false",
            &format!("{}=1", s.service),
        ],
    );
    let mut one = Vec::new();
    wait_for("one task left running", Duration::from_secs(60), || {
        one = members(&s.network, &filter);
        one.len() == 1
    });
    let start = Instant::now();
    loop {
        let ports = nb_rows_with("Logical_Switch_Port", "10.192.0.");
        if ports.len() == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the other nodes' ports are still there after 60 s (task on node {}): {ports:#?}",
            one[0].node
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ls = nb_rows_with("Logical_Switch", "10.192.0.0/24");
    assert_eq!(ls.len(), 1, "the switch went with the other nodes: {ls:?}");
    let mark: Vec<&str> = ls[0]
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|kv| kv.starts_with("kuryr:net."))
        .collect();
    assert_eq!(mark.len(), 1, "one mark for the network's one id: {ls:?}");
    assert!(
        mark[0].ends_with(&format!("=kuryr-node-{}", one[0].node)),
        "the mark does not name only the node left: {mark:?}"
    );

    // Back to six (the leader change below re-requests these addresses).
    on_ok(
        1,
        &[
            "service",
            "scale",
            "--detach=false",
            &format!("{}=6", s.service),
        ],
    );
    let mut tasks = Vec::new();
    wait_for("six tasks again", Duration::from_secs(60), || {
        tasks = members(&s.network, &filter);
        tasks.len() == 6
    });
    let v4: BTreeSet<String> = tasks.iter().map(|t| t.v4.clone()).collect();
    assert_eq!(v4.len(), 6, "an address twice: {tasks:?}");

    // The leader's dockerd dies: another manager leads and re-requests every address.
    let old = leader().expect("a leader");
    let pid = std::fs::read_to_string(format!("/run/kuryr-lab/node-{old}/run/docker.pid"))
        .expect("the leader's dockerd pid file");
    let kill = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let mut new = None;
    wait_for("a new leader", Duration::from_secs(60), || {
        new = NODES.into_iter().filter(|n| *n != old).find(|n| {
            on(
                *n,
                &["node", "inspect", "self", "-f", "{{.ManagerStatus.Leader}}"],
            )
            .stdout
            .starts_with(b"true")
        });
        new.is_some()
    });
    let new = new.unwrap_or_default();
    let survivors: Vec<&Member> = tasks.iter().filter(|t| t.node != old).collect();
    let (a, b) = (survivors[0], survivors[survivors.len() - 1]);
    assert!(
        pings(a, &b.v4),
        "tasks lost connectivity after the leader change"
    );
    on_ok(
        new,
        &[
            "service",
            "scale",
            "--detach=false",
            &format!("{}=8", s.service),
        ],
    );
    let alive: Vec<u32> = NODES.into_iter().filter(|n| *n != old).collect();
    let after = members_on(&alive, &s.network, &filter);
    let addrs: BTreeMap<&str, &Member> = after.iter().map(|t| (t.v4.as_str(), t)).collect();
    assert_eq!(
        addrs.len(),
        after.len(),
        "an address twice after the leader change: {after:?}"
    );
    for t in tasks.iter().filter(|t| t.node != old) {
        assert_eq!(
            addrs.get(t.v4.as_str()).map(|m| &m.id),
            Some(&t.id),
            "a running task lost its address: {t:?}"
        );
    }
    assert!(
        after.len() > survivors.len(),
        "the scale-up ran nothing: {after:?}"
    );
    let newest = after
        .iter()
        .find(|t| !tasks.contains(t))
        .expect("a new task");
    assert!(
        pings(newest, &a.v4),
        "a task started by the new leader cannot ping"
    );

    // The old leader's node comes back (`lab/node.sh up` restarts its dockerd).
    let up = node_sh_run("up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    wait_for(
        "the old leader's node Ready again",
        Duration::from_secs(60),
        || {
            on_ok(new, &["node", "ls", "--format", "{{.Status}}"])
                .lines()
                .filter(|l| *l == "Ready")
                .count()
                == 3
        },
    );

    // Gone: Northbound as before.
    on_ok(new, &["service", "rm", &s.service]);
    wait_for("the last task gone", Duration::from_secs(60), || {
        members(&s.network, &filter).is_empty()
    });
    on_ok(new, &["network", "rm", &s.network]);
    wait_for(
        "no switch, pool or port of the network left",
        Duration::from_secs(30),
        || {
            nb_rows_with("Logical_Switch", "10.192.0.0/24").is_empty()
                && nb_rows_with("Logical_Switch_Port", "10.192.0.").is_empty()
                && nb_rows_with("Address_Set", "10.192.0.").is_empty()
                && nb_rows_with("Address_Set", "fd00:192::").is_empty()
        },
    );
}
