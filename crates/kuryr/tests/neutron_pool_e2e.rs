//! Port pools (`[vif_pool]`) in the Neutron mode, end to end: real Docker, the lab's Neutron
//! 29 (ML2/OVN) and OVN (`make lab-openstack`). Run by `make test`; ignored by a bare
//! `cargo test`.
mod common;

use common::neutron::*;
use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

/// A host has one kuryr: a restarted one takes the free pool ports of its host as its own,
/// and these tests' daemons all bind to the lab's host. So they run one at a time.
fn one_kuryr_on_this_host() -> std::sync::MutexGuard<'static, ()> {
    static HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Neutron-mode kuryr.conf with pools of `min` ports, made `batch` at a time.
fn pool_conf(min: usize, batch: usize) -> String {
    format!(
        "[DEFAULT]\n[neutron]\nauth_type = none\nendpoint = {NEUTRON}\nvif_plugging_timeout = 20\n[vif_pool]\nports_pool_min = {min}\nports_pool_batch = {batch}\nports_pool_update_frequency = 2\n"
    )
}

fn neutron_id(net: &Network) -> String {
    let nets = neutron_network(&net.id);
    assert_eq!(nets.len(), 1, "{nets:?}");
    id_of(&nets[0])
}

/// The free pool ports of a network.
fn free_ports(nid: &str) -> Vec<Value> {
    ports_of(nid)
        .into_iter()
        .filter(|p| p["name"] == "available-port")
        .collect()
}

/// Waits until the network has exactly `n` free pool ports, all tagged.
fn wait_free(nid: &str, n: usize) -> Vec<Value> {
    wait_free_where(nid, n, |free| free == n)
}

/// Waits until the network's free pool ports, all tagged, are so many that `enough` says so.
fn wait_free_where(nid: &str, n: usize, enough: impl Fn(usize) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let free = free_ports(nid);
        let tagged = free
            .iter()
            .all(|p| sorted(&p["tags"]) == ["compute:kuryr", "kuryr.port.pool"]);
        if enough(free.len()) && tagged {
            return free;
        }
        let brief: Vec<String> = free
            .iter()
            .map(|p| format!("{} {:?}", id_of(p), sorted(&p["tags"])))
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "no {n} free tagged pool ports on network {nid} within 60 s: {brief:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The port holding `ip` on the network.
fn port_with(nid: &str, ip: &str) -> Value {
    ports_of(nid)
        .into_iter()
        .find(|p| {
            p["fixed_ips"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["ip_address"] == ip))
        })
        .unwrap_or_else(|| panic!("no port holds {ip} on {nid}"))
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// OVS interfaces bound to any of `port_ids`.
fn ovs_interfaces_of(port_ids: &HashSet<String>) -> Vec<String> {
    let out = run(Command::new("ovs-vsctl").args([
        "--timeout=10",
        "--format=csv",
        "--no-headings",
        "--columns=name,external_ids",
        "list",
        "Interface",
    ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| port_ids.iter().any(|id| l.contains(id.as_str())))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn pool_ports_are_taken_refilled_given_back_clean_and_deleted_with_the_network() {
    let _host = one_kuryr_on_this_host();
    let mut d = Daemon::start_with_conf(&pool_conf(3, 3), &[]);
    let net = d.network(&["--subnet", "10.87.0.0/24", "--gateway", "10.87.0.1"]);
    let nid = neutron_id(&net);
    // Ready before the first container: bound to this host, tagged, no device.
    let ready = wait_free(&nid, 3);
    for p in &ready {
        assert!(
            !p["binding:host_id"].as_str().unwrap_or_default().is_empty(),
            "{p}"
        );
        assert_eq!(p["device_owner"], "compute:kuryr", "{p}");
        assert_eq!(p["device_id"], "", "{p}");
        assert_eq!(
            sorted(&p["tags"]),
            ["compute:kuryr", "kuryr.port.pool"],
            "{p}"
        );
    }
    let ready_ids: HashSet<String> = ready.iter().map(id_of).collect();
    let default_groups = sorted(&ready[0]["security_groups"]);

    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let (ia, ib) = (a.ip(&net), b.ip(&net));
    assert!(a.pings(&ib), "a cannot ping b\n{}", d.log_text());
    let pa = port_with(&nid, &ia);
    assert!(
        ready_ids.contains(&id_of(&pa)),
        "a did not get a pool port: {pa}"
    );
    let eid = pa["device_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(eid.len(), 64, "{pa}");
    assert_eq!(pa["name"], format!("{eid}-port"), "{pa}");
    assert_eq!(pa["status"], "ACTIVE", "{pa}");
    // Refilled to 3 in the background.
    wait_free(&nid, 3);

    // A container with an exposed port gives its port back clean.
    let c = Container::run(&net, &["--expose", "8080"]);
    let pc = port_with(&nid, &c.ip(&net));
    let pc_id = id_of(&pc);
    assert_ne!(sorted(&pc["security_groups"]), default_groups, "{pc}");
    drop(c);
    wait_until(
        "the exposed container's port back in its pool",
        Duration::from_secs(30),
        || {
            free_ports(&nid)
                .iter()
                .any(|p| id_of(p) == pc_id && sorted(&p["tags"]).len() == 2)
        },
    );
    let back = neutron_get(&format!("/ports/{pc_id}"))["port"].clone();
    assert_eq!(back["device_id"], "", "{back}");
    assert_eq!(
        sorted(&back["tags"]),
        ["compute:kuryr", "kuryr.port.pool"],
        "{back}"
    );
    assert_eq!(sorted(&back["security_groups"]), default_groups, "{back}");

    // --ip of a free pool port's address gets that very port.
    let free = free_ports(&nid);
    let wanted = free[0]["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let e = Container::run(&net, &["--ip", &wanted]);
    assert_eq!(e.ip(&net), wanted);
    assert_eq!(id_of(&port_with(&nid, &wanted)), id_of(&free[0]));
    assert!(e.pings(&ia), "the --ip container cannot ping a");

    // --mac-address: Docker asks the address without the MAC, so a ready port is taken and
    // gets the MAC (unbound and bound again); the container works with it.
    let m = Container::run(&net, &["--mac-address", "02:42:0a:57:00:99"]);
    let pm = port_with(&nid, &m.ip(&net));
    assert_eq!(pm["mac_address"], "02:42:0a:57:00:99", "{pm}");
    assert_eq!(pm["status"], "ACTIVE", "{pm}");
    assert!(m.pings(&ia), "the --mac-address container cannot ping a");

    // A restart finds the ready ports again; the next container takes one of them.
    let before: HashSet<String> = wait_free_where(&nid, 3, |n| n >= 3)
        .iter()
        .map(id_of)
        .collect();
    d.kill9();
    d.spawn();
    let f = Container::run(&net, &[]);
    let pf = port_with(&nid, &f.ip(&net));
    assert!(
        before.contains(&id_of(&pf)),
        "after the restart the container got no ready port: {pf}"
    );
    assert!(f.pings(&ia), "after the restart f cannot ping a");

    drop((a, b, e, m, f));
    drop(net);
    assert!(
        neutron_network_gone(&nid),
        "the Neutron network (or its pool ports) stayed: {:?}",
        ports_of(&nid)
    );
    assert_no_failed_calls(&d.log_text());
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_pool_takes_one_port_of_a_29_which_still_holds_its_five_containers() {
    let _host = one_kuryr_on_this_host();
    let d = Daemon::start_with_conf(&pool_conf(5, 5), &[]);
    let net = d.network(&["--subnet", "10.87.1.0/29", "--gateway", "10.87.1.1"]);
    let nid = neutron_id(&net);
    // A quarter of the /29's five addresses: one port.
    wait_free(&nid, 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        free_ports(&nid).len(),
        1,
        "the pool took more than its share"
    );
    let cs: Vec<Container> = (0..5).map(|_| Container::run(&net, &[])).collect();
    let ips: HashSet<String> = cs.iter().map(|c| c.ip(&net)).collect();
    assert_eq!(ips.len(), 5, "{ips:?}");
    assert!(ips.iter().all(|ip| ip.starts_with("10.87.1.")), "{ips:?}");
    let err = Container::run_fails(&net, &[]);
    // The subnet is full: Neutron's reason, with the subnet kuryr asked.
    assert!(
        err.contains("10.87.1.0/29")
            && (err.contains("No more IP addresses") || err.contains("IpAddressGenerationFailure")),
        "{err}"
    );
    drop(cs);
    drop(net);
    assert!(neutron_network_gone(&nid), "{:?}", ports_of(&nid));
    wait_pool_gone("10.87.1.0/29");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn pools_survive_kill_9_while_refilling_and_while_containers_start() {
    let _host = one_kuryr_on_this_host();
    let mut d = Daemon::start_with_conf(&pool_conf(4, 4), &[]);
    let net = d.network(&["--subnet", "10.87.2.0/24", "--gateway", "10.87.2.1"]);
    let nid = neutron_id(&net);
    let mut seen: HashSet<String> = HashSet::new();
    // 1. Killed while the pool is being made (right after the network came).
    d.kill9();
    seen.extend(ports_of(&nid).iter().map(id_of));
    d.spawn();
    // A container takes a port (or makes one), and the pool is whole again.
    let first = Container::run(&net, &[]);
    // (Ports of the killed run's create that come through later fill the pool or are deleted.)
    wait_free_where(&nid, 4, |free| free >= 4);
    seen.extend(ports_of(&nid).iter().map(id_of));
    // 2. Killed while six containers start at once.
    let names: Vec<String> = (0..6).map(|_| unique("kpoolc")).collect();
    let runs: Vec<std::thread::JoinHandle<bool>> = names
        .iter()
        .map(|n| {
            let (n, netname) = (n.clone(), net.name.clone());
            std::thread::spawn(move || {
                docker(&[
                    "run", "-d", "--name", &n, "--net", &netname, IMAGE, "sleep", "600",
                ])
                .status
                .success()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    d.kill9();
    seen.extend(ports_of(&nid).iter().map(id_of));
    d.spawn();
    let started: Vec<bool> = runs
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .collect();
    let running: Vec<Container> = names
        .iter()
        .zip(&started)
        .filter(|(_, ok)| **ok)
        .map(|(n, _)| Container { name: n.clone() })
        .collect();
    for (n, ok) in names.iter().zip(&started) {
        if !ok {
            let _ = docker(&["rm", "-f", n]);
        }
    }
    // No address twice, and every running container reaches the first one.
    let ia = first.ip(&net);
    let mut ips: Vec<String> = running.iter().map(|c| c.ip(&net)).collect();
    ips.push(ia.clone());
    let unique_ips: HashSet<&String> = ips.iter().collect();
    assert_eq!(unique_ips.len(), ips.len(), "an address twice: {ips:?}");
    for c in &running {
        assert!(
            c.pings(&ia),
            "{} cannot ping {ia}\n{}",
            c.name,
            d.log_text()
        );
    }
    // Ports of starts the kill cut short came back: the pool may hold more than its minimum.
    wait_free_where(&nid, 4, |free| free >= 4);
    seen.extend(ports_of(&nid).iter().map(id_of));
    // Everything goes with the containers and the network: no Neutron port, no OVS port.
    drop(running);
    drop(first);
    drop(net);
    assert!(
        neutron_network_gone(&nid),
        "the network stayed: {:?}",
        ports_of(&nid)
    );
    wait_pool_gone("10.87.2.0/24");
    let left: Vec<String> = seen
        .iter()
        .filter(|id| neutron("GET", &format!("/ports/{id}"), None).0 != 404)
        .cloned()
        .collect();
    assert!(left.is_empty(), "Neutron ports left: {left:?}");
    wait_until(
        "no OVS port of the test's ports",
        Duration::from_secs(10),
        || ovs_interfaces_of(&seen).is_empty(),
    );
}

/// RequestAddress as Docker sends it; the address without its prefix.
fn request_address(d: &Daemon, pool: &str) -> String {
    let (status, v) = d.call(
        "/IpamDriver.RequestAddress",
        &format!("{{\"PoolID\":\"{pool}\",\"Address\":\"\",\"Options\":{{}}}}\n"),
    );
    assert_eq!(status, 200, "{v}");
    let a = v["Address"].as_str().unwrap_or_default();
    a.split('/').next().unwrap_or_default().to_string()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_port_handed_out_just_before_a_kill_is_not_handed_out_again() {
    let _host = one_kuryr_on_this_host();
    let mut d = Daemon::start_with_conf(&pool_conf(2, 2), &[]);
    let net = d.network(&["--subnet", "10.87.3.0/24", "--gateway", "10.87.3.1"]);
    let nid = neutron_id(&net);
    wait_free(&nid, 2);
    let pools = neutron_get("/subnetpools?name=kuryrPool-10.87.3.0/24")["subnetpools"].clone();
    let pool = id_of(&pools[0]);
    // The address of a container start the kill cuts short: its port keeps the free name.
    let first = request_address(&d, &pool);
    let port = id_of(&port_with(&nid, &first));
    assert!(
        free_ports(&nid).iter().any(|p| id_of(p) == port),
        "the handed out port is named free until CreateEndpoint"
    );
    d.kill9();
    d.spawn();
    // Not handed out again while Docker may still use it.
    let mut others = Vec::new();
    for _ in 0..3 {
        let a = request_address(&d, &pool);
        assert_ne!(
            a, first,
            "a port handed out before the kill was handed out again"
        );
        others.push(a);
    }
    // Docker's release of the first address settles it: the port is a pool's again.
    let release = |ip: &str| {
        let (status, v) = d.call(
            "/IpamDriver.ReleaseAddress",
            &format!("{{\"PoolID\":\"{pool}\",\"Address\":\"{ip}\"}}\n"),
        );
        assert_eq!(status, 200, "{v}");
    };
    release(&first);
    for a in &others {
        release(a);
    }
    drop(net);
    assert!(neutron_network_gone(&nid), "{:?}", ports_of(&nid));
}
