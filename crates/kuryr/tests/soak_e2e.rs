//! A churn soak with leak accounting, in the OVN mode: container lifecycles of mixed shapes
//! (parallel `docker run`s, `--ip`, connect/disconnect, dual stack, network create/rm) with
//! `kill -9` of kuryr at random moments, then everything removed and compared with a baseline
//! taken before: Northbound rows, OVS ports and veths (the daemon's open files and memory are
//! printed, not compared).
//!
//! Built with the `soak` feature only (`make soak`, 400 lifecycles; `SOAK_LIFECYCLES` sets the
//! size, default 40): it is not in `make test` while longer runs still end with an address
//! left reserved (see the README's Reliability section). `SOAK_SEED` replays a run.
mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
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

fn veths() -> BTreeSet<String> {
    let out = run(std::process::Command::new("ip").args(["-o", "link", "show", "type", "veth"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
        .collect()
}

/// What must be back to its baseline once the soak has removed everything it made.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    switches: Vec<String>,
    ports: Vec<String>,
    address_sets: Vec<String>,
    ovs_ports: Vec<String>,
    veths: BTreeSet<String>,
}

fn footprint() -> Footprint {
    Footprint {
        switches: kuryr_rows("Logical_Switch"),
        ports: kuryr_rows("Logical_Switch_Port"),
        address_sets: kuryr_rows("Address_Set"),
        ovs_ports: ovs_ports(),
        veths: veths(),
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

fn lock(d: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default, Debug)]
struct Report {
    lifecycles: u64,
    containers: u64,
    kills: u64,
    failed_runs: BTreeMap<String, u64>,
}

/// A `docker run` that may fail while kuryr is down: the error is counted, then it is retried
/// until kuryr is back (a container that never starts is a failure of the soak).
fn run_counted(net: &Network, extra: &[&str], report: &mut Report) -> Container {
    let deadline = Instant::now() + Duration::from_secs(60);
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
        // The reason with ids and addresses blanked, so that alike failures count together.
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
        drop(c);
        assert!(
            Instant::now() < deadline,
            "docker run kept failing for 60 s: {err}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn churn_with_kills_leaks_nothing_and_never_doubles_an_address() {
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
    let mut rng = Rng(seed);
    let mut report = Report::default();

    // The baseline is taken with the daemon running: its start makes the host's management
    // port and default router, which stay.
    let d = Arc::new(Mutex::new(Daemon::start(&[])));
    let driver = lock(&d).name.clone();
    let pid = |d: &Arc<Mutex<Daemon>>| lock(d).pid();
    let before = footprint();
    let started = Instant::now();
    {
        let net = create_network(&driver, "ksoak", &["--subnet", "10.197.0.0/24"]);
        let other = create_network(&driver, "ksoak", &["--subnet", "10.198.0.0/24"]);
        let mut running: Vec<Container> = Vec::new();
        let mut warm: Option<(usize, u64)> = None;
        for i in 0..lifecycles {
            let at = format!("lifecycle {i}");
            // A kill at a random moment of one lifecycle in eight, from another thread, and a
            // restart right after (Docker's calls meanwhile fail or wait).
            let killer = (rng.below(8) == 0).then(|| {
                let delay = Duration::from_millis(rng.below(1500));
                let d = Arc::clone(&d);
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let mut d = lock(&d);
                    d.kill9();
                    std::thread::sleep(Duration::from_millis(200));
                    d.spawn();
                })
            });
            match rng.below(5) {
                // Three at once, one pair pinging.
                0 => {
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
                    let ip = three[1].ip(&net);
                    assert!(
                        three[0].pings(&ip),
                        "{at}: no traffic between new containers"
                    );
                    running.extend(three);
                }
                // A chosen address, free by construction (.200 + i % 50 is never handed out
                // by the soak otherwise: running containers stay below 60).
                1 => {
                    let ip = format!("10.197.0.{}", 200 + i % 50);
                    if running.iter().all(|c| c.ip(&net) != ip) {
                        let c = run_counted(&net, &["--ip", &ip], &mut report);
                        assert_eq!(c.ip(&net), ip, "{at}: --ip not honoured");
                        running.push(c);
                    }
                }
                // Connect to the other network and disconnect again.
                2 if !running.is_empty() => {
                    let c = &running[rng.below(running.len() as u64) as usize];
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let out = docker(&["network", "connect", &other.name, &c.name]);
                        if out.status.success() {
                            break;
                        }
                        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                        assert!(
                            Instant::now() < deadline,
                            "{at}: network connect kept failing: {err}"
                        );
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    docker_ok(&["network", "disconnect", &other.name, &c.name]);
                }
                // A dual-stack network of its own, used and removed.
                3 => {
                    let v4 = format!("10.199.{}.0/24", i % 250);
                    let v6 = format!("fd00:199:{:x}::/64", i);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let dual = loop {
                        let name = unique("ksoakds");
                        let out = docker(&[
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
                        ]);
                        if out.status.success() {
                            break Network {
                                name,
                                id: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                            };
                        }
                        assert!(
                            Instant::now() < deadline,
                            "{at}: network create kept failing: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        std::thread::sleep(Duration::from_millis(300));
                    };
                    let a = run_counted(&dual, &[], &mut report);
                    let b = run_counted(&dual, &[], &mut report);
                    assert!(a.pings(&b.ipv6(&dual)), "{at}: no IPv6 traffic");
                    drop((a, b));
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !docker(&["network", "rm", &dual.name]).status.success() {
                        assert!(Instant::now() < deadline, "{at}: network rm kept failing");
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    drop(dual);
                }
                // Remove some running containers.
                _ => {
                    let n = rng.below(running.len() as u64 + 1) as usize;
                    for _ in 0..n {
                        let k = rng.below(running.len() as u64) as usize;
                        drop(running.swap_remove(k));
                    }
                }
            }
            if let Some(t) = killer {
                t.join().expect("the killer thread");
                report.kills += 1;
            }
            while running.len() > 40 {
                drop(running.swap_remove(0));
            }
            assert_distinct(&net, &running, &at);
            report.lifecycles += 1;
            if i == 4 {
                warm = pid(&d).map(fds_and_rss);
            }
        }
        let end = pid(&d).map(fds_and_rss);
        println!("soak: daemon fds/RSS(kB) after warm-up {warm:?}, at the end {end:?}");
        drop(running);
        drop(other);
        drop(net);
    }
    let after = footprint();
    println!(
        "soak: {} lifecycles, {} containers, {} kills of kuryr in {:?}; failed docker runs (retried): {:?}",
        report.lifecycles,
        report.containers,
        report.kills,
        started.elapsed(),
        report.failed_runs
    );
    assert_eq!(after, before, "leaked (SOAK_SEED={seed})");
}
