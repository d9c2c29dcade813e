//! A churn soak with leak accounting, in the OVN mode and in the Neutron mode: container
//! lifecycles of mixed shapes (parallel `docker run`s, `--ip`, connect/disconnect, dual stack,
//! network create/rm) with faults at random moments (`kill -9` of kuryr; dockerd restarted
//! with and without live-restore; ovs-vswitchd and ovn-controller killed and started again;
//! the Northbound (OVN mode) killed and started again, or Neutron unreachable for a while
//! (Neutron mode)), then everything removed and compared with a baseline taken before: the
//! control plane's objects, OVS ports and veths; the daemon's open files and memory must not
//! grow with the lifecycles.
//!
//! `make test` runs 40 lifecycles per mode (`SOAK_LIFECYCLES` sets the size); `make soak`
//! runs 400. `SOAK_SEED` replays a run.
mod common;

use common::neutron::{neutron_get, NeutronDaemon, Proxy};
use common::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn kuryr_rows(table: &str) -> Vec<String> {
    nb_rows(table)
        .into_iter()
        .filter(|r| r.contains("kuryr"))
        .collect()
}

fn veths() -> Vec<String> {
    let out = run(std::process::Command::new("ip").args(["-o", "link", "show", "type", "veth"]));
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

/// What must be back to its baseline once the soak has removed everything it made, by kind.
type Footprint = BTreeMap<&'static str, Vec<String>>;

/// The ids of every Neutron object of a kind (`networks`, `ports`, ...).
fn neutron_ids(kind: &str) -> Vec<String> {
    let mut ids: Vec<String> = neutron_get(&format!("/{kind}?fields=id"))[kind]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// A control plane the soak runs against: its daemon, what it leaves, its own faults.
trait Plane: Send + Sync {
    fn driver(&self) -> String;
    fn pid(&self) -> Option<u32>;
    /// `kill -9` of kuryr, started again 200 ms later.
    fn kill_and_restart(&self);
    fn footprint(&self) -> Footprint;
    /// The faults injected, in turn.
    fn faults(&self) -> Vec<Fault>;
    /// The soak's networks are 10.B.0.0/24, 10.(B+1).0.0/24 and 10.(B+2).x.0/24.
    fn second_octet(&self) -> u8;
    /// Neutron unreachable for `d` (the Neutron mode's own fault).
    fn unreachable_for(&self, _d: Duration) {}
}

struct Ovn(Mutex<Daemon>);

impl Plane for Ovn {
    fn driver(&self) -> String {
        lock(&self.0).name.clone()
    }
    fn pid(&self) -> Option<u32> {
        lock(&self.0).pid()
    }
    fn kill_and_restart(&self) {
        let mut d = lock(&self.0);
        d.kill9();
        std::thread::sleep(Duration::from_millis(200));
        d.spawn();
    }
    fn footprint(&self) -> Footprint {
        Footprint::from([
            ("switches", kuryr_rows("Logical_Switch")),
            ("ports", kuryr_rows("Logical_Switch_Port")),
            ("address sets", kuryr_rows("Address_Set")),
            ("OVS ports", ovs_ports()),
            ("veths", veths()),
        ])
    }
    fn faults(&self) -> Vec<Fault> {
        vec![
            Fault::KillKuryr,
            Fault::Dockerd,
            Fault::DockerdNoLiveRestore,
            Fault::OvsVswitchd,
            Fault::OvnController,
            Fault::Northbound,
        ]
    }
    fn second_octet(&self) -> u8 {
        197
    }
}

/// The Neutron mode, reaching the lab's Neutron through a proxy the soak can switch off.
struct Neutron {
    d: Mutex<NeutronDaemon>,
    proxy: Proxy,
}

impl Plane for Neutron {
    fn driver(&self) -> String {
        lock(&self.d).name.clone()
    }
    fn pid(&self) -> Option<u32> {
        lock(&self.d).pid()
    }
    fn kill_and_restart(&self) {
        let mut d = lock(&self.d);
        d.kill9();
        std::thread::sleep(Duration::from_millis(200));
        d.spawn();
    }
    fn footprint(&self) -> Footprint {
        Footprint::from([
            ("networks", neutron_ids("networks")),
            ("subnets", neutron_ids("subnets")),
            ("subnet pools", neutron_ids("subnetpools")),
            ("ports", neutron_ids("ports")),
            ("security groups", neutron_ids("security-groups")),
            ("OVS ports", ovs_ports()),
            ("veths", veths()),
        ])
    }
    fn faults(&self) -> Vec<Fault> {
        vec![
            Fault::KillKuryr,
            Fault::Dockerd,
            Fault::DockerdNoLiveRestore,
            Fault::OvsVswitchd,
            Fault::OvnController,
            Fault::NeutronUnreachable,
        ]
    }
    fn second_octet(&self) -> u8 {
        211
    }
    fn unreachable_for(&self, d: Duration) {
        self.proxy.down();
        std::thread::sleep(d);
        self.proxy.up();
    }
}

/// Open file descriptors and resident memory (kB) of a process.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    (fds, rss)
}

/// Every running container's address on `net` must differ (one `docker inspect` for all).
fn assert_distinct(net: &Network, containers: &[Container], at: &str) {
    if containers.is_empty() {
        return;
    }
    let fmt = format!(
        "{{{{.Name}}}} {{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
        net.name
    );
    let mut args = vec!["inspect", "-f", fmt.as_str()];
    args.extend(containers.iter().map(|c| c.name.as_str()));
    let out = docker_ok(&args);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for line in out.lines() {
        let Some((name, ip)) = line.split_once(' ') else {
            continue;
        };
        if ip.is_empty() {
            continue;
        }
        if let Some(other) = seen.insert(ip.to_owned(), name.to_owned()) {
            panic!("{at}: {ip} handed to both {other} and {name}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a fault does to the host; each is injected several times, in an order the seed
/// shuffles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `kill -9` of kuryr, started again 200 ms later.
    KillKuryr,
    /// dockerd stopped (SIGTERM) and started again; live-restore keeps the containers.
    Dockerd,
    /// dockerd without live-restore stopped: its containers stop (Docker takes their
    /// endpoints and addresses back), then the soak removes them.
    DockerdNoLiveRestore,
    /// ovs-vswitchd killed and started again (the data path is down meanwhile).
    OvsVswitchd,
    /// ovn-controller killed and started again.
    OvnController,
    /// The Northbound ovsdb-server killed and started again (calls meanwhile fail).
    Northbound,
    /// Neutron unreachable for 3 s: connections cut, new ones refused.
    NeutronUnreachable,
}

fn lab_restart(name: &str, env: &[(&str, &str)]) {
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab/lab.sh");
    let out = run(std::process::Command::new("bash")
        .args([lab, "restart", name])
        .envs(env.iter().copied())
        // Docker looks for the plugin of every network it knows at start.
        .env("LAB_WAIT", "300"));
    succeeded(out, format!("lab.sh restart {name}"));
}

impl Fault {
    fn inject(self, plane: &dyn Plane) {
        match self {
            Fault::KillKuryr => plane.kill_and_restart(),
            Fault::NeutronUnreachable => plane.unreachable_for(Duration::from_secs(3)),
            Fault::Dockerd => lab_restart("dockerd", &[]),
            Fault::DockerdNoLiveRestore => {
                // The running dockerd has live-restore: first one without it, whose stop
                // then stops the containers, then the lab's again.
                lab_restart("dockerd", &[("LAB_LIVE_RESTORE", "no")]);
                lab_restart("dockerd", &[]);
            }
            Fault::OvsVswitchd => lab_restart("ovs-vswitchd", &[]),
            Fault::OvnController => lab_restart("ovn-controller", &[]),
            Fault::Northbound => lab_restart("ovn-nb", &[]),
        }
    }
}

/// A fault under way in another thread, from a random moment of a lifecycle on.
struct Injected {
    fault: Fault,
    thread: std::thread::JoinHandle<()>,
}

fn inject(fault: Fault, delay: Duration, plane: &Arc<dyn Plane>) -> Injected {
    let plane = Arc::clone(plane);
    let thread = std::thread::spawn(move || {
        std::thread::sleep(delay);
        fault.inject(plane.as_ref());
    });
    Injected { fault, thread }
}

#[derive(Default, Debug)]
struct Report {
    lifecycles: u64,
    containers: u64,
    faults: BTreeMap<Fault, u64>,
    failed_runs: BTreeMap<String, u64>,
    /// The longest time running containers took to reach each other again after a fault.
    longest_recovery: BTreeMap<Fault, Duration>,
    /// Containers whose start raced a dockerd stop, which stopped them.
    stopped_by_dockerd: u64,
}

/// A `docker` command retried while a fault keeps it from succeeding (kuryr, dockerd or the
/// Northbound away), for at most two minutes; its stdout.
fn docker_retried(args: &[&str], at: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = docker(args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert!(
            Instant::now() < deadline,
            "{at}: docker {args:?} kept failing for 2 minutes: {err}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Removes a container for good (`docker rm -f` retried while dockerd restarts).
fn remove(c: Container, at: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = docker(&["rm", "-f", &c.name]);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("No such container") {
            std::mem::forget(c);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{at}: docker rm -f {} kept failing: {err}",
            c.name
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A `docker run` that may fail while a fault lasts: the error is counted, then it is
/// retried (a container that never starts within two minutes is a failure of the soak).
fn run_counted(net: &Network, extra: &[&str], report: &mut Report) -> Container {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let name = unique("ksoak");
        let mut args = vec!["run", "-d", "--name", &name, "--net", &net.name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "600"]);
        let c = Container { name: name.clone() };
        let out = docker(&args);
        if out.status.success() {
            report.containers += 1;
            return c;
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        // The reason with the client's timestamped lines, ids and addresses left out, so
        // that alike failures count together.
        let err: String = err
            .lines()
            .filter(|l| !l.starts_with("time=") && !l.starts_with("See '"))
            .collect::<Vec<_>>()
            .join(" ");
        let reason: String = err
            .split_inclusive(|c: char| !c.is_ascii_hexdigit() && c != '.')
            .map(|w| {
                let core = w.trim_end_matches(|c: char| !c.is_ascii_hexdigit() && c != '.');
                if core.len() >= 7 && core.chars().any(|c| c.is_ascii_digit()) {
                    w.replacen(core, "<id>", 1)
                } else {
                    w.to_owned()
                }
            })
            .collect();
        *report.failed_runs.entry(reason).or_default() += 1;
        remove(c, "a failed docker run");
        assert!(
            Instant::now() < deadline,
            "docker run kept failing for 2 minutes: {err}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits for a fault to end; then two running containers must reach each other within
/// 30 s (the time it took is recorded). After a dockerd stop without live-restore the
/// running containers are stopped: they are removed.
fn settle(
    fault: &mut Option<Injected>,
    net: &Network,
    running: &mut Vec<Container>,
    report: &mut Report,
    at: &str,
) {
    let Some(Injected { fault, thread }) = fault.take() else {
        return;
    };
    thread.join().expect("the fault's thread");
    *report.faults.entry(fault).or_default() += 1;
    if fault == Fault::DockerdNoLiveRestore {
        for c in running.drain(..) {
            remove(c, at);
        }
        return;
    }
    // A container whose start raced dockerd's stop is stopped by it, live-restore or not;
    // any other fault must leave every container running.
    let mut args = vec!["inspect", "-f", "{{.State.Running}}"];
    args.extend(running.iter().map(|c| c.name.as_str()));
    let states: Vec<bool> = if running.is_empty() {
        Vec::new()
    } else {
        docker_retried(&args, at)
            .lines()
            .map(|l| l.trim() == "true")
            .collect()
    };
    assert_eq!(states.len(), running.len(), "{at}: docker inspect {args:?}");
    let mut kept = Vec::new();
    for (c, up) in running.drain(..).zip(states) {
        if up {
            kept.push(c);
        } else {
            assert_eq!(
                fault,
                Fault::Dockerd,
                "{at}: container {} stopped during {fault:?}",
                c.name
            );
            report.stopped_by_dockerd += 1;
            remove(c, at);
        }
    }
    *running = kept;
    if running.len() < 2 {
        return;
    }
    let (a, b) = (&running[0], &running[running.len() - 1]);
    let ip = docker_retried(
        &[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                net.name
            ),
            &b.name,
        ],
        at,
    );
    let start = Instant::now();
    loop {
        let ping = a.exec(&["ping", "-c", "1", "-W", "2", &ip]);
        if ping.status.success() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let state = |c: &Container| {
                let out = docker(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{.State.Error}}",
                    &c.name,
                ]);
                let addr = c.exec(&["ip", "-o", "addr"]);
                format!(
                    "{}: {} {}",
                    c.name,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&addr.stdout).trim()
                )
            };
            panic!(
                "{at}: {} and {} ({ip}) have not reached each other for 30 s after {fault:?}: {} {}\n{}\n{}",
                a.name,
                b.name,
                String::from_utf8_lossy(&ping.stdout).trim(),
                String::from_utf8_lossy(&ping.stderr).trim(),
                state(a),
                state(b)
            );
        }
    }
    let took = report.longest_recovery.entry(fault).or_default();
    *took = (*took).max(start.elapsed());
}

/// The soaks restart the lab's daemons: one at a time.
static ONE_SOAK: Mutex<()> = Mutex::new(());

#[test]
#[ignore = "needs root and the lab (make test)"]
fn churn_with_faults_leaks_nothing_and_never_doubles_an_address() {
    let _one = lock(&ONE_SOAK);
    soak(Arc::new(Ovn(Mutex::new(Daemon::start(&[])))));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn churn_with_faults_in_the_neutron_mode_leaks_nothing_and_never_doubles_an_address() {
    let _one = lock(&ONE_SOAK);
    let proxy = Proxy::start();
    let d = NeutronDaemon::start_via("", &proxy.url());
    soak(Arc::new(Neutron {
        d: Mutex::new(d),
        proxy,
    }));
}

fn soak(plane: Arc<dyn Plane>) {
    let lifecycles: u64 = std::env::var("SOAK_LIFECYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x9e37_79b9)
        });
    println!("soak: {lifecycles} lifecycles, SOAK_SEED={seed}");
    let started_by_lab = std::fs::read_to_string("/run/kuryr-lab/started").unwrap_or_default();
    for name in ["dockerd", "ovs-vswitchd", "ovn-controller", "ovn-nb"] {
        assert!(
            started_by_lab.lines().any(|l| l.trim() == name),
            "the soak restarts {name}, so it must be the lab's: run `make lab`"
        );
    }
    let mut rng = Rng(seed);
    let mut report = Report::default();
    // One fault in three lifecycles, the kinds in turn (shuffled by the seed), so that a
    // short run still injects each several times.
    let mut order = plane.faults();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut next_fault = order.iter().copied().cycle();

    // The baseline is taken with the daemon running: its start makes the host's management
    // port and default router, which stay.
    let driver = plane.driver();
    let before = plane.footprint();
    let b = plane.second_octet();
    let started = Instant::now();
    {
        let net = create_network(&driver, "ksoak", &["--subnet", &format!("10.{b}.0.0/24")]);
        let other = create_network(
            &driver,
            "ksoak",
            &["--subnet", &format!("10.{}.0.0/24", b + 1)],
        );
        let mut running: Vec<Container> = Vec::new();
        let mut warm: Option<(usize, u64)> = None;
        for i in 0..lifecycles {
            let at = format!("lifecycle {i}");
            let planned = (rng.below(3) == 0).then(|| next_fault.next()).flatten();
            let delay = Duration::from_millis(rng.below(1500));
            let mut fault = None;
            let start_fault = |fault: &mut Option<Injected>| {
                *fault = planned.map(|f| inject(f, delay, &plane));
            };
            match rng.below(5) {
                // Three at once, one pair pinging.
                0 => {
                    start_fault(&mut fault);
                    let mut three: Vec<Container> = Vec::new();
                    std::thread::scope(|s| {
                        let handles: Vec<_> = (0..3)
                            .map(|_| {
                                let net = &net;
                                s.spawn(move || {
                                    let mut r = Report::default();
                                    (run_counted(net, &[], &mut r), r)
                                })
                            })
                            .collect();
                        for h in handles {
                            let (c, r) = h.join().expect("a docker run thread");
                            report.containers += r.containers;
                            for (k, v) in r.failed_runs {
                                *report.failed_runs.entry(k).or_default() += v;
                            }
                            three.push(c);
                        }
                    });
                    running.extend(three);
                    settle(&mut fault, &net, &mut running, &mut report, &at);
                    if running.len() >= 3 {
                        let n = running.len();
                        let ip = running[n - 2].ip(&net);
                        assert!(
                            running[n - 1].pings(&ip),
                            "{at}: no traffic between new containers"
                        );
                    }
                }
                // A chosen address, when no running container holds it (the OVN mode hands
                // out the lowest free address, Neutron one at random anywhere in the subnet).
                1 => {
                    let ip = format!("10.{b}.0.{}", 200 + i % 50);
                    if running.iter().all(|c| c.ip(&net) != ip) {
                        start_fault(&mut fault);
                        let c = run_counted(&net, &["--ip", &ip], &mut report);
                        let name = c.name.clone();
                        running.push(c);
                        settle(&mut fault, &net, &mut running, &mut report, &at);
                        if let Some(c) = running.iter().find(|c| c.name == name) {
                            assert_eq!(c.ip(&net), ip, "{at}: --ip not honoured");
                        }
                    }
                }
                // Connect to the other network and disconnect again.
                2 if !running.is_empty() => {
                    let c = running[rng.below(running.len() as u64) as usize]
                        .name
                        .clone();
                    start_fault(&mut fault);
                    docker_retried(&["network", "connect", &other.name, &c], &at);
                    docker_retried(&["network", "disconnect", &other.name, &c], &at);
                }
                // A dual-stack network of its own, used and removed.
                3 => {
                    start_fault(&mut fault);
                    let v4 = format!("10.{}.{}.0/24", b + 2, i % 250);
                    let v6 = format!("fd00:{}:{:x}::/64", b + 2, i);
                    let name = unique("ksoakds");
                    let id = docker_retried(
                        &[
                            "network",
                            "create",
                            "-d",
                            &driver,
                            "--ipam-driver",
                            &driver,
                            "--subnet",
                            &v4,
                            "--ipv6",
                            "--subnet",
                            &v6,
                            &name,
                        ],
                        &at,
                    );
                    let dual = Network { name, id };
                    let a = run_counted(&dual, &[], &mut report);
                    let b = run_counted(&dual, &[], &mut report);
                    settle(&mut fault, &net, &mut running, &mut report, &at);
                    let up = docker_retried(
                        &["inspect", "-f", "{{.State.Running}}", &a.name, &b.name],
                        &at,
                    );
                    if up == "true\ntrue" {
                        assert!(a.pings(&b.ipv6(&dual)), "{at}: no IPv6 traffic");
                    }
                    remove(a, &at);
                    remove(b, &at);
                    docker_retried(&["network", "rm", &dual.name], &at);
                    std::mem::forget(dual);
                }
                // Remove some running containers.
                _ => {
                    start_fault(&mut fault);
                    let n = rng.below(running.len() as u64 + 1) as usize;
                    for _ in 0..n {
                        let k = rng.below(running.len() as u64) as usize;
                        remove(running.swap_remove(k), &at);
                    }
                }
            }
            settle(&mut fault, &net, &mut running, &mut report, &at);
            while running.len() > 40 {
                remove(running.swap_remove(0), &at);
            }
            assert_distinct(&net, &running, &at);
            report.lifecycles += 1;
            if i == 4 {
                warm = plane.pid().map(fds_and_rss);
            }
        }
        let end = plane.pid().map(fds_and_rss);
        println!("soak: daemon fds/RSS(kB) after warm-up {warm:?}, at the end {end:?}");
        if let (Some((fds0, rss0)), Some((fds1, rss1))) = (warm, end) {
            // A restarted daemon starts afresh; one that ran the whole soak must not grow
            // with it (a leaked connection, task or cache entry per container would).
            assert!(fds1 <= fds0 + 8, "open files grew from {fds0} to {fds1}");
            assert!(
                rss1 <= rss0 * 3 / 2 + 8 * 1024,
                "resident memory grew from {rss0} kB to {rss1} kB"
            );
        }
        for c in running.drain(..) {
            remove(c, "the end");
        }
        docker_retried(&["network", "rm", &other.name], "the end");
        docker_retried(&["network", "rm", &net.name], "the end");
        std::mem::forget((other, net));
    }
    // An address reserved just before a kill is released once Docker can no longer claim it
    // (a minute after the restart), and a pool Docker released meanwhile with it.
    let deadline = Instant::now() + kuryr_ovn::reservations::GRACE + Duration::from_secs(20);
    let mut after = plane.footprint();
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        after = plane.footprint();
    }
    println!(
        "soak: {} lifecycles, {} containers, faults {:?} in {:?}; longest recovery of running containers' traffic after a fault {:?}; containers whose start raced a dockerd stop (stopped by it): {}; failed docker runs (retried): {:?}",
        report.lifecycles,
        report.containers,
        report.faults,
        started.elapsed(),
        report.longest_recovery,
        report.stopped_by_dockerd,
        report.failed_runs
    );
    assert_eq!(after, before, "leaked (SOAK_SEED={seed})");
}
