//! Across hosts on one machine: a second chassis in a network namespace (lab/chassis.sh: its
//! own OVS and ovn-controller, a veth underlay between netdev bridges `br-phy`). A Docker
//! container on the main host and a network container on the other chassis, on one kuryr
//! network, ping each other over Geneve and then over VXLAN; a network container on another
//! network on that chassis cannot be reached. Run by `make test`.
mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CHASSIS_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab/chassis.sh");
const KURYR: &str = env!("CARGO_BIN_EXE_kuryr");
/// The first extra chassis of lab/chassis.sh: namespace, system-id, database, tunnel IP.
const CHASSIS: &str = "kuryr-chassis-1";
const CHASSIS_DB: &str = "unix:/run/kuryr-lab/chassis-1/db.sock";
const CHASSIS_TEP: &str = "172.31.250.11";
const MAIN_TEP: &str = "172.31.250.1";

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kuryr ARGS` on the main host.
fn kuryr(args: &[&str]) -> Output {
    run(Command::new(KURYR).args(args))
}

/// `kuryr ARGS` on the other chassis: inside its network namespace (veths are created
/// there) and against its Open_vSwitch database. `nsenter --net`, not `ip netns exec`: the
/// latter also gives the command a private mount namespace, so a namespace that `container
/// create --netns` makes inside it would vanish when kuryr exits.
fn kuryr_there(args: &[&str]) -> Output {
    run(Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{CHASSIS}"))
        .arg(KURYR)
        .args(args)
        .args(["--ovsdb", CHASSIS_DB]))
}

fn vsctl(db: &str, args: &[&str]) -> String {
    let out = run(Command::new("ovs-vsctl")
        .arg("--timeout=5")
        .arg(format!("--db={db}"))
        .args(args));
    ok(out, &format!("ovs-vsctl {}", args.join(" ")))
        .trim_matches('"')
        .to_string()
}

const MAIN_DB: &str = "unix:/var/run/openvswitch/db.sock";

/// The type of the tunnel port ovn-controller made in `db`'s br-int towards `remote`.
fn tunnel_type(db: &str, remote: &str) -> String {
    vsctl(
        db,
        &[
            "--bare",
            "--columns=type",
            "find",
            "Interface",
            &format!("options:remote_ip=\"{remote}\""),
        ],
    )
}

fn ns_pings(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "2", ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The chassis a logical port is bound to, from the Southbound.
fn bound_chassis(port: &str) -> String {
    let sb = |args: &[&str]| {
        ok(
            run(Command::new("ovn-sbctl")
                .args([
                    "--timeout=5",
                    "--db=unix:/var/run/ovn/ovnsb_db.sock",
                    "--bare",
                ])
                .args(args)),
            "ovn-sbctl",
        )
    };
    let uuid = sb(&[
        "--columns=chassis",
        "find",
        "Port_Binding",
        &format!("logical_port=\"{port}\""),
    ]);
    if uuid.is_empty() {
        return String::new();
    }
    sb(&["--columns=name", "list", "Chassis", &uuid])
}

/// The chassis lab, brought up by this test when it was not running and then taken down
/// again (also when the test fails); left alone when someone else brought it up. Runs of
/// this test in other processes (another `make test` on the machine) wait for the lock, so
/// one never takes the lab down under another or switches its encapsulation.
struct ChassisLab {
    made: bool,
    _lock: TestLock,
}

/// An exclusive lock held by a `flock ... cat` child for as long as this value lives (or,
/// if the test process dies, until the child sees its stdin close).
struct TestLock(Child);

const TEST_LOCK: &str = "/run/kuryr-lab/chassis/test.lock";

impl TestLock {
    fn take() -> TestLock {
        std::fs::create_dir_all("/run/kuryr-lab/chassis").expect("create /run/kuryr-lab/chassis");
        let mut child = Command::new("flock")
            .args(["-w", "600", TEST_LOCK, "sh", "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock (util-linux)");
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let lock = TestLock(child);
        assert_eq!(
            line.trim(),
            "locked",
            "another multi-chassis test held {TEST_LOCK} for 10 minutes"
        );
        lock
    }
}

impl Drop for TestLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChassisLab {
    fn ensure() -> ChassisLab {
        let lock = TestLock::take();
        let ready = Command::new(CHASSIS_SH)
            .arg("status")
            .env("LAB_CHASSIS", "1")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ready {
            return ChassisLab {
                made: false,
                _lock: lock,
            };
        }
        let start = Instant::now();
        let lab = ChassisLab {
            made: true,
            _lock: lock,
        };
        let out = run(Command::new(CHASSIS_SH).arg("up").env("KURYR", KURYR));
        ok(out, "lab/chassis.sh up (see /var/log/kuryr-lab/chassis-1/)");
        eprintln!("chassis lab up in {:?}", start.elapsed());
        lab
    }
}

impl Drop for ChassisLab {
    fn drop(&mut self) {
        if self.made {
            let problem = match Command::new(CHASSIS_SH).arg("down").output() {
                Ok(o) if o.status.success() => return,
                Ok(o) => format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => e.to_string(),
            };
            // A half-taken-down chassis lab breaks the next run: fail this one, unless it
            // is failing already.
            if std::thread::panicking() {
                eprintln!("lab/chassis.sh down failed: {problem}");
            } else {
                panic!("lab/chassis.sh down failed, the chassis lab is left half up: {problem}");
            }
        }
    }
}

/// Puts both chassis' encapsulation back as it was found.
struct EncapGuard {
    main: String,
    there: String,
}

impl EncapGuard {
    fn new() -> EncapGuard {
        let get = |db| {
            vsctl(
                db,
                &["get", "Open_vSwitch", ".", "external_ids:ovn-encap-type"],
            )
        };
        EncapGuard {
            main: get(MAIN_DB),
            there: get(CHASSIS_DB),
        }
    }
}

impl Drop for EncapGuard {
    fn drop(&mut self) {
        let _ = kuryr(&["host", "set-encap", &self.main]);
        let _ = kuryr(&["host", "set-encap", &self.there, "--ovsdb", CHASSIS_DB]);
    }
}

/// What the test made with the command line, removed even when it fails: the network
/// containers on the other chassis (unplugged there), then the networks with --force.
struct Cleanup {
    netns: Vec<String>,
    networks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in &self.netns {
            let _ = kuryr_there(&["container", "delete", ns]);
            if std::path::Path::new(&format!("/var/run/netns/{ns}")).exists() {
                let _ = Command::new("ip").args(["netns", "delete", ns]).output();
            }
        }
        for n in &self.networks {
            let _ = kuryr(&["network", "delete", "--force", n]);
        }
    }
}

/// An endpoint name whose first 11 characters (they make interface names) are unique.
fn ep_name(i: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("m{i}{nanos:08x}{}", std::process::id())
}

/// Two /24s no other test uses at the same time: 10.M.N.0/24 and 10.M.N+1.0/24.
fn cidrs() -> [(String, String); 2] {
    let n = std::process::id() % 100 * 2 + 20;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let m = 100 + (nanos / 1000) % 100;
    [n, n + 1].map(|k| (format!("10.{m}.{k}.0/24"), format!("10.{m}.{k}.")))
}

/// The address part of `endpoint create`'s answer (`NAME IP/LEN MAC`).
fn endpoint_ip(created: &str) -> String {
    created
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("endpoint create printed no address: {created:?}"))
        .to_string()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn containers_on_two_chassis_ping_over_geneve_and_vxlan_and_other_networks_stay_apart() {
    require_lab();
    let _lab = ChassisLab::ensure();
    let _encap = EncapGuard::new();
    let d = Daemon::start(&[]);
    let [(subnet, _), (subnet2, _)] = cidrs();
    let (net, other) = (unique("mc"), unique("mco"));
    let (ep, ep2) = (ep_name(0), ep_name(1));
    let (ns, ns2) = (unique("kmc"), unique("kmco"));
    let _cleanup = Cleanup {
        netns: vec![ns.clone(), ns2.clone()],
        networks: vec![net.clone(), other.clone()],
    };

    // The network, and a Docker container on it on the main host.
    ok(
        kuryr(&["network", "create", &net, &subnet]),
        "network create",
    );
    let dnet = d.network(&["--subnet", &subnet, "-o", &format!("kuryr.net.name={net}")]);
    let c = Container::run(&dnet, &[]);
    let cip = c.ip(&dnet);

    // A network container on the other chassis, plugged into that chassis' br-int.
    let ip = endpoint_ip(&ok(
        kuryr_there(&["endpoint", "create", &net, &ep]),
        "endpoint create on the other chassis",
    ));
    let start = Instant::now();
    ok(
        kuryr_there(&["container", "create", "--network", &ep, "--netns", &ns]),
        "container create on the other chassis",
    );
    eprintln!("network container on {CHASSIS} in {:?}", start.elapsed());
    assert_eq!(bound_chassis(&ep), CHASSIS, "the port is bound there");

    // Geneve (what both chassis start with).
    ok(kuryr(&["host", "set-encap", "geneve"]), "set-encap geneve");
    ok(
        kuryr(&["host", "set-encap", "geneve", "--ovsdb", CHASSIS_DB]),
        "set-encap geneve there",
    );
    wait_until("geneve tunnels", Duration::from_secs(20), || {
        tunnel_type(MAIN_DB, CHASSIS_TEP) == "geneve"
            && tunnel_type(CHASSIS_DB, MAIN_TEP) == "geneve"
    });
    let start = Instant::now();
    wait_until(
        "the Docker container pings the other chassis over geneve",
        Duration::from_secs(20),
        || c.pings(&ip),
    );
    eprintln!("first ping over geneve after {:?}", start.elapsed());
    assert!(
        ns_pings(&ns, &cip),
        "the other chassis pings the Docker container over geneve"
    );

    // VXLAN: both chassis switched with `kuryr host set-encap`.
    ok(kuryr(&["host", "set-encap", "vxlan"]), "set-encap vxlan");
    ok(
        kuryr(&["host", "set-encap", "vxlan", "--ovsdb", CHASSIS_DB]),
        "set-encap vxlan there",
    );
    wait_until("vxlan tunnels", Duration::from_secs(20), || {
        tunnel_type(MAIN_DB, CHASSIS_TEP) == "vxlan" && tunnel_type(CHASSIS_DB, MAIN_TEP) == "vxlan"
    });
    let start = Instant::now();
    wait_until(
        "the Docker container pings the other chassis over vxlan",
        Duration::from_secs(20),
        || c.pings(&ip),
    );
    eprintln!("first ping over vxlan after {:?}", start.elapsed());
    assert!(
        ns_pings(&ns, &cip),
        "the other chassis pings the Docker container over vxlan"
    );

    // Another network on the other chassis: its container is up and bound there, and
    // neither side reaches the other.
    ok(
        kuryr(&["network", "create", &other, &subnet2]),
        "network create",
    );
    let ip2 = endpoint_ip(&ok(
        kuryr_there(&["endpoint", "create", &other, &ep2]),
        "endpoint create on the other chassis",
    ));
    ok(
        kuryr_there(&["container", "create", "--network", &ep2, "--netns", &ns2]),
        "container create on the other chassis",
    );
    assert_eq!(bound_chassis(&ep2), CHASSIS);
    assert!(!c.pings(&ip2), "a container on another network was reached");
    assert!(
        !ns_pings(&ns2, &cip),
        "a container on another network reached the Docker container"
    );
    // ... while the first network still works across the tunnel.
    assert!(c.pings(&ip), "the same network stopped working");

    // Deleting the network containers on that chassis leaves nothing of them there.
    ok(
        kuryr_there(&["container", "delete", &ns]),
        "container delete",
    );
    ok(
        kuryr_there(&["container", "delete", &ns2]),
        "container delete",
    );
    for e in [&ep, &ep2] {
        let left = vsctl(
            CHASSIS_DB,
            &[
                "--bare",
                "--columns=name",
                "find",
                "Interface",
                &format!("external_ids:iface-id=\"{e}\""),
            ],
        );
        assert!(left.is_empty(), "port {left} of {e} is left on {CHASSIS}");
    }
}

/// A kuryr daemon on the other chassis (in its network namespace, on its Open_vSwitch),
/// driven over the plugin protocol as that host's Docker would drive it; stopped on drop.
struct DaemonThere {
    child: Child,
    socket: std::path::PathBuf,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl DaemonThere {
    fn start() -> DaemonThere {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("kuryr.conf");
        std::fs::write(&conf, "").expect("conf");
        let socket = dir.path().join("kuryr.sock");
        let log = dir.path().join("kuryr.log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{CHASSIS}"))
            .arg(KURYR)
            .args(["daemon", "--ovsdb", CHASSIS_DB, "--config"])
            .arg(&conf)
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start kuryr daemon on the other chassis");
        let d = DaemonThere {
            child,
            socket,
            log,
            _dir: dir,
        };
        wait_until(
            "the other chassis' kuryr to answer",
            Duration::from_secs(20),
            || post(&d.socket, "/Plugin.Activate", "").is_ok_and(|(s, _)| s == 200),
        );
        d
    }

    fn call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, text) = post(&self.socket, path, &body.to_string())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            status,
            200,
            "{path} {body}: {text}\n---- log ----\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        v
    }
}

impl Drop for DaemonThere {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn docker_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_container_on_another_chassis_has_egress_and_a_published_port_through_its_own_host() {
    require_lab();
    let _lab = ChassisLab::ensure();
    let _main = Daemon::start(&[]);
    let [(subnet, prefix), _] = cidrs();
    let net = unique("mcr");
    let ns = unique("kmcr");
    let _cleanup = Cleanup {
        netns: vec![],
        networks: vec![net.clone()],
    };
    ok(
        kuryr(&["network", "create", &net, &subnet]),
        "network create",
    );
    let there = DaemonThere::start();
    let out = common::outside::Outside::new_on(Some(CHASSIS));

    // What that host's Docker would send for `docker run --net N -p PORT:80`.
    let (nid, eid) = (docker_id(), docker_id());
    let pool = there.call(
        "/IpamDriver.RequestPool",
        serde_json::json!({"AddressSpace": "", "Pool": subnet, "SubPool": "", "Options": {}, "V6": false}),
    );
    let pool_id = pool["PoolID"].as_str().expect("PoolID").to_string();
    let gw = format!("{prefix}1");
    there.call(
        "/NetworkDriver.CreateNetwork",
        serde_json::json!({"NetworkID": nid, "Options": {"com.docker.network.generic": {"kuryr.net.name": net}},
            "IPv4Data": [{"AddressSpace": "", "Pool": subnet, "Gateway": format!("{gw}/24")}], "IPv6Data": []}),
    );
    /// Docker's calls when the container and the network go, in Docker's order; the
    /// address (once requested) is released, or its pool would stay behind.
    struct Teardown<'a>(
        &'a DaemonThere,
        String,
        String,
        String,
        String,
        std::cell::RefCell<Option<String>>,
    );
    impl Drop for Teardown<'_> {
        fn drop(&mut self) {
            let (d, nid, eid, pool, ns) = (self.0, &self.1, &self.2, &self.3, &self.4);
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
            let release = self.5.borrow().as_ref().map(|addr| {
                (
                    "/IpamDriver.ReleaseAddress",
                    serde_json::json!({"PoolID": pool, "Address": addr.split('/').next().unwrap_or(addr)}),
                )
            });
            for (path, body) in [
                (
                    "/NetworkDriver.RevokeExternalConnectivity",
                    serde_json::json!({"NetworkID": nid, "EndpointID": eid}),
                ),
                (
                    "/NetworkDriver.Leave",
                    serde_json::json!({"NetworkID": nid, "EndpointID": eid}),
                ),
                (
                    "/NetworkDriver.DeleteEndpoint",
                    serde_json::json!({"NetworkID": nid, "EndpointID": eid}),
                ),
            ]
            .into_iter()
            .chain(release)
            .chain([
                (
                    "/NetworkDriver.DeleteNetwork",
                    serde_json::json!({"NetworkID": nid}),
                ),
                (
                    "/IpamDriver.ReleasePool",
                    serde_json::json!({"PoolID": pool}),
                ),
            ]) {
                let _ = post(&d.socket, path, &body.to_string());
            }
        }
    }
    let _teardown = Teardown(
        &there,
        nid.clone(),
        eid.clone(),
        pool_id.clone(),
        ns.clone(),
        std::cell::RefCell::new(None),
    );
    let addr = there.call(
        "/IpamDriver.RequestAddress",
        serde_json::json!({"PoolID": pool_id, "Address": "", "Options": {}}),
    )["Address"]
        .as_str()
        .expect("Address")
        .to_string();
    *_teardown.5.borrow_mut() = Some(addr.clone());
    there.call(
        "/NetworkDriver.CreateEndpoint",
        serde_json::json!({"NetworkID": nid, "EndpointID": eid, "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
    );
    let join = there.call(
        "/NetworkDriver.Join",
        serde_json::json!({"NetworkID": nid, "EndpointID": eid, "SandboxKey": format!("/var/run/netns/{ns}"), "Options": {}}),
    );
    let src = join["InterfaceName"]["SrcName"]
        .as_str()
        .expect("SrcName")
        .to_string();
    assert_eq!(join["Gateway"], gw.as_str(), "{join}");
    // Docker's part: the container end into the container, with its address and route.
    let ip = |args: &[&str]| {
        ok(
            run(Command::new("ip").args(args)),
            &format!("ip {}", args.join(" ")),
        )
    };
    ip(&["netns", "add", &ns]);
    ip(&["-n", CHASSIS, "link", "set", &src, "netns", &ns]);
    ip(&["-n", &ns, "addr", "add", &addr, "dev", &src]);
    ip(&["-n", &ns, "link", "set", &src, "up"]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&["-n", &ns, "route", "add", "default", "via", &gw]);
    let port = 21000 + (std::process::id() % 1000) as u16;
    there.call(
        "/NetworkDriver.ProgramExternalConnectivity",
        serde_json::json!({"NetworkID": nid, "EndpointID": eid, "Options": {
            "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
            "com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": port, "HostPortEnd": port}]}}),
    );

    // Egress: leaves through that chassis, source-NATed to its address.
    let listener = out.accept_one(9000, Duration::from_secs(20));
    let target = out.ip;
    let said = common::outside::in_netns(&ns, move || {
        let start = Instant::now();
        loop {
            match std::net::TcpStream::connect_timeout(
                &(target, 9000).into(),
                Duration::from_secs(2),
            ) {
                Ok(mut s) => {
                    let mut buf = String::new();
                    let _ = std::io::Read::read_to_string(&mut s, &mut buf);
                    return buf;
                }
                Err(e) if start.elapsed() > Duration::from_secs(15) => return e.to_string(),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    })
    .join()
    .expect("container thread");
    let peer = listener.join().expect("listener");
    assert_eq!(said.trim(), "hello", "egress from the other chassis failed");
    assert_eq!(
        peer.map(|p| p.ip().to_string()),
        Some(out.host_ip.to_string()),
        "egress must leave as the other chassis' own address"
    );

    // The published port answers on that chassis' address.
    let www = tempfile::tempdir().expect("www");
    std::fs::write(www.path().join("index.html"), "served-there\n").expect("index");
    let mut httpd = Command::new("ip")
        .args([
            "netns", "exec", &ns, "busybox", "httpd", "-f", "-p", "80", "-h",
        ])
        .arg(www.path())
        .spawn()
        .expect("httpd");
    let mut last = Err(String::new());
    let ok_get = (0..50).any(|_| {
        last = out.http_get(out.host_ip, port);
        let hit = last.as_ref().is_ok_and(|b| b.contains("served-there"));
        if !hit {
            std::thread::sleep(Duration::from_millis(200));
        }
        hit
    });
    let _ = httpd.kill();
    let _ = httpd.wait();
    assert!(
        ok_get,
        "the port published on the other chassis does not answer: {last:?}"
    );
    // Docker's teardown and the network's deletion leave no pool behind.
    drop(_teardown);
    drop(_cleanup);
    let set = format!("kuryr_c_{}", subnet.replace('/', "_2F"));
    let sets = nb_rows("Address_Set");
    assert!(
        !sets.iter().any(|r| r.contains(&set)),
        "pool {set} is left: {sets:?}"
    );
}
