//! A Swarm of three Docker hosts (`make lab-nodes`: each a network, mount and UTS namespace
//! with its own dockerd, Open vSwitch and ovn-controller, and kuryr as the managed plugins
//! `kuryr` and `kuryr-neutron`), all managers, sharing the lab's Northbound (and, in the
//! Neutron mode, the lab's Neutron), in each mode: a dual-stack `--attachable` kuryr
//! network, a service of six tasks spread over the nodes, pings and service-name lookups
//! across nodes, `docker run --network` on another node, the leader's dockerd killed (a new
//! leader re-requests every address: granted, none doubled), a scale-down that leaves the
//! network to the last node, and `docker service rm` + `docker network rm` leaving the
//! control plane as before. Run by `make test` (which brings the nodes up).
mod common;

use common::neutron::{id_of, neutron, neutron_get, neutron_network, neutron_network_gone};
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

/// What a control plane shows of the Swarm network: the scenario's checks that differ.
trait Plane {
    /// The managed plugin serving this control plane on every node.
    fn plugin(&self) -> &'static str;
    fn v4(&self) -> &'static str;
    fn v6(&self) -> &'static str;
    /// Nothing of the test's subnets is there before it starts.
    fn nothing_there(&self);
    /// After `docker network create` on the manager, before any task.
    fn allocated(&self, _docker_id: &str) {}
    /// Every task has its address where it runs.
    fn placed(&self, _tasks: &[Member]) {}
    /// The ports holding the network's IPv4 addresses, one line each.
    fn ports(&self) -> Vec<String>;
    /// Down to one task (on `node`): the network stays, as the node left's.
    fn one_left(&self, node: u32);
    /// Nothing of the network is left.
    fn gone(&self) -> bool;
}

/// The OVN mode: the plugin `kuryr`, the lab's Northbound.
struct Ovn;

impl Plane for Ovn {
    fn plugin(&self) -> &'static str {
        "kuryr"
    }
    fn v4(&self) -> &'static str {
        "10.192.0.0/24"
    }
    fn v6(&self) -> &'static str {
        "fd00:192::/64"
    }
    fn nothing_there(&self) {
        let ls = nb_rows_with("Logical_Switch", self.v4());
        assert!(
            ls.is_empty(),
            "a switch of {} is already there: {ls:?}",
            self.v4()
        );
    }
    fn ports(&self) -> Vec<String> {
        nb_rows_with("Logical_Switch_Port", "10.192.0.")
    }
    fn one_left(&self, node: u32) {
        let ls = nb_rows_with("Logical_Switch", self.v4());
        assert_eq!(ls.len(), 1, "the switch went with the other nodes: {ls:?}");
        let mark: Vec<&str> = ls[0]
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|kv| kv.starts_with("kuryr:net."))
            .collect();
        assert_eq!(mark.len(), 1, "one mark for the network's one id: {ls:?}");
        assert!(
            mark[0].ends_with(&format!("=kuryr-node-{node}")),
            "the mark does not name only the node left: {mark:?}"
        );
    }
    fn gone(&self) -> bool {
        nb_rows_with("Logical_Switch", self.v4()).is_empty()
            && nb_rows_with("Logical_Switch_Port", "10.192.0.").is_empty()
            && nb_rows_with("Address_Set", "10.192.0.").is_empty()
            && nb_rows_with("Address_Set", "fd00:192::").is_empty()
    }
}

/// The Neutron mode: the plugin `kuryr-neutron`, the lab's Neutron (through the nodes'
/// forward to it).
#[derive(Default)]
struct Neutron {
    /// The Neutron network, once the manager allocated it.
    network: std::sync::Mutex<String>,
}

impl Neutron {
    fn network(&self) -> String {
        self.network
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn port_list(&self) -> Vec<serde_json::Value> {
        neutron_get(&format!(
            "/ports?network_id={}&device_owner=compute:kuryr",
            self.network()
        ))["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
    fn pools(&self) -> usize {
        [self.v4(), self.v6()]
            .iter()
            .map(|c| {
                neutron_get(&format!("/subnetpools?name=kuryrPool-{c}"))["subnetpools"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .sum()
    }
}

impl Plane for Neutron {
    fn plugin(&self) -> &'static str {
        "kuryr-neutron"
    }
    fn v4(&self) -> &'static str {
        "10.189.0.0/24"
    }
    fn v6(&self) -> &'static str {
        "fd00:189::/64"
    }
    fn nothing_there(&self) {
        assert_eq!(
            self.pools(),
            0,
            "a subnet pool of {} or {} is already there",
            self.v4(),
            self.v6()
        );
    }
    fn allocated(&self, docker_id: &str) {
        // The manager's AllocateNetwork made it, before any node's CreateNetwork (the
        // manager allocates once `docker network create` has stored the network).
        let mut nets = Vec::new();
        wait_for(
            "the manager's Neutron network",
            Duration::from_secs(30),
            || {
                nets = neutron_network(docker_id);
                // Marked as the Swarm's right after it is made.
                nets.len() > 1
                    || nets.first().is_some_and(|n| {
                        n["tags"]
                            .as_array()
                            .is_some_and(|t| t.iter().any(|x| x == "kuryr.net.swarm"))
                    })
            },
        );
        assert_eq!(nets.len(), 1, "{nets:?}");
        *self.network.lock().unwrap_or_else(|e| e.into_inner()) = id_of(&nets[0]);
    }
    fn placed(&self, tasks: &[Member]) {
        // Bound to the host the task runs on, and up (as ML2/OVN reports it, a moment later).
        let wrong = || -> Vec<String> {
            let ports = self.port_list();
            tasks
                .iter()
                .filter_map(|t| {
                    let p = ports.iter().find(|p| {
                        p["fixed_ips"]
                            .as_array()
                            .is_some_and(|f| f.iter().any(|f| f["ip_address"] == t.v4.as_str()))
                    });
                    match p {
                        None => Some(format!("no port holds {} (node {})", t.v4, t.node)),
                        Some(p)
                            if p["binding:host_id"]
                                != format!("kuryr-node-{}", t.node).as_str()
                                || p["status"] != "ACTIVE" =>
                        {
                            Some(format!("{} (node {}): {p}", t.v4, t.node))
                        }
                        Some(_) => None,
                    }
                })
                .collect()
        };
        let start = Instant::now();
        let mut left = wrong();
        while !left.is_empty() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(500));
            left = wrong();
        }
        assert!(
            left.is_empty(),
            "ports not bound where their task runs, or not up: {left:#?}"
        );
    }
    fn ports(&self) -> Vec<String> {
        self.port_list()
            .iter()
            .filter(|p| {
                p["fixed_ips"].as_array().is_some_and(|f| {
                    f.iter().any(|f| {
                        f["ip_address"]
                            .as_str()
                            .is_some_and(|a| a.starts_with("10.189.0."))
                    })
                })
            })
            .map(|p| format!("{} {} {}", id_of(p), p["binding:host_id"], p["fixed_ips"]))
            .collect()
    }
    fn one_left(&self, node: u32) {
        let ports = self.ports();
        assert!(
            ports[0].contains(&format!("\"kuryr-node-{node}\"")),
            "the port left is not node {node}'s: {ports:?}"
        );
        let (status, _) = neutron("GET", &format!("/networks/{}", self.network()), None);
        assert_eq!(status, 200, "the network went with the other nodes");
    }
    fn gone(&self) -> bool {
        neutron_network_gone(&self.network()) && self.pools() == 0
    }
}

/// Docker 20.10's dockerd sometimes keeps its network database's port 7946 bound after
/// `docker swarm leave`; joining a Swarm again, it cannot start the database ("bind: address
/// already in use"), so service names of other nodes' tasks never resolve there. Such a
/// node's dockerd is restarted (`lab/node.sh up` starts it again).
fn fresh_network_db() {
    let mut restarted = false;
    for n in NODES {
        let held = on_node(n, &["ss", "-Hltn", "sport = :7946"]);
        if held.stdout.iter().any(|b| !b.is_ascii_whitespace()) {
            let pid = std::fs::read_to_string(format!("/run/kuryr-lab/node-{n}/run/docker.pid"))
                .unwrap_or_default();
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            restarted = true;
        }
    }
    if restarted {
        let up = node_sh_run("up");
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
    }
}

/// One Swarm at a time on the nodes.
fn one_swarm() -> std::sync::MutexGuard<'static, ()> {
    static SWARM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SWARM.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
#[ignore = "needs root, the lab and its Docker nodes (make test)"]
fn a_swarm_service_on_a_kuryr_network_spans_three_nodes_and_survives_a_leader_change() {
    service_across_three_nodes(&Ovn);
}

/// The same in the Neutron mode: the manager's AllocateNetwork makes the Neutron network and
/// subnets before it asks any task's address; the nodes bind the manager's ports.
#[test]
#[ignore = "needs root, the lab, its Neutron and its Docker nodes (make test)"]
fn in_the_neutron_mode_too() {
    service_across_three_nodes(&Neutron::default());
}

/// The scenario, on the control plane `plane`.
fn service_across_three_nodes(plane: &dyn Plane) {
    let _one = one_swarm();
    common::require_lab();
    require_nodes();
    let (plugin_name, v4_net, v6_net) = (plane.plugin(), plane.v4(), plane.v6());
    let v4_prefix = v4_net.trim_end_matches("0/24");
    let v6_prefix = v6_net.trim_end_matches("/64");
    for n in NODES {
        let plugin = on(n, &["plugin", "inspect", "-f", "{{.Enabled}}", plugin_name]);
        assert_eq!(
            String::from_utf8_lossy(&plugin.stdout).trim(),
            "true",
            "node {n}: the {plugin_name} plugin is not enabled (kuryr-neutron needs `make lab-openstack` before `make lab-nodes`): {}",
            String::from_utf8_lossy(&plugin.stderr)
        );
        // A swarm a failed run left behind.
        let _ = on(n, &["swarm", "leave", "--force"]);
    }
    fresh_network_db();
    let s = Swarm {
        service: common::unique("ksvc"),
        network: common::unique("kswarm"),
        extra: Vec::new(),
    };
    plane.nothing_there();

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

    let driver = format!("{plugin_name}:latest");
    let driver = driver.as_str();
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
            v4_net,
            "--subnet",
            v6_net,
            "--ipv6",
            "--attachable",
            &s.network,
        ],
    );
    let docker_id = on_ok(1, &["network", "inspect", "-f", "{{.Id}}", &s.network]);
    plane.allocated(&docker_id);
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
            .all(|t| t.v4.starts_with(v4_prefix) && t.v6.starts_with(v6_prefix)),
        "{tasks:?}"
    );
    plane.placed(&tasks);

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
    // Other nodes' tasks reach the node's DNS through Docker's gossip, a moment after they
    // run: asked again until every task is there.
    let mut lookup = String::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let out = on(2, &["exec", &on2.id, "nslookup", &s.service]);
        lookup = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if tasks.iter().all(|t| lookup.contains(&t.v4)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for t in &tasks {
        assert!(
            lookup.contains(&t.v4),
            "{} not in the lookup of {} within 30 s:\n{lookup}",
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
        let ports = plane.ports();
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
    plane.one_left(one[0].node);

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
        "nothing of the network left in the control plane",
        Duration::from_secs(30),
        || plane.gone(),
    );
}
