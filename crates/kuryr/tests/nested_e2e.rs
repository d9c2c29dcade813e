//! Containers inside VMs, end to end in the OVN mode: real Docker Engines inside the lab's
//! "VMs" (`lab/vm.sh`: network and mount namespaces with their own OVS and dockerd, whose NIC
//! is bound on the host's br-int to the VM's logical port `kuryr-vm-N`), a kuryr daemon in
//! each VM with the vlan binding, and a kuryr daemon on the host. Run by `make test`.
mod common;

use common::vm::*;
use common::*;
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// A /24 of its own per test and process: 10.<base>.<pid-derived>.0/24.
fn subnet(base: u8) -> (String, String) {
    let n = std::process::id() % 200 + 20;
    (format!("10.{base}.{n}.0/24"), format!("10.{base}.{n}."))
}

/// A Docker network on the lab's switch of the VMs (`kuryr-vms`), in the upper half of its
/// /24, not routed: containers beside the VMs themselves.
const VMS_SWITCH: &[&str] = &[
    "--subnet",
    "172.31.251.0/24",
    "--ip-range",
    "172.31.251.128/25",
    "--gateway",
    "172.31.251.1",
    "-o",
    "kuryr.net.name=kuryr-vms",
    "-o",
    "kuryr.router=none",
];

/// The tags of VM `n`'s container ports, checked distinct and in 1-4094.
fn distinct_tags(n: u8) -> Vec<u16> {
    let children = vm_children(n);
    let tags: Vec<u16> = children
        .iter()
        .map(|(name, tag)| tag.unwrap_or_else(|| panic!("{name} has no tag: {children:?}")))
        .collect();
    let set: HashSet<u16> = tags.iter().copied().collect();
    assert_eq!(set.len(), tags.len(), "a tag given twice: {children:?}");
    assert!(tags.iter().all(|t| (1..=4094).contains(t)), "{tags:?}");
    tags
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn containers_in_vms_reach_the_host_each_other_and_their_vm_and_nothing_else() {
    let _lab = VmLab::ensure();
    assert!(
        vm_children(1).is_empty() && vm_children(2).is_empty(),
        "VM ports left by someone: {:?} {:?}",
        vm_children(1),
        vm_children(2)
    );
    let host = Daemon::start(&[]);
    let (vm1, vm2) = (VmDaemon::start(1, ""), VmDaemon::start(2, ""));
    let (cidr, prefix) = subnet(97);
    let ls = unique("knest");
    let attach = format!("kuryr.net.name={ls}");
    let shared = ["--subnet", cidr.as_str(), "-o", attach.as_str()];
    let net_h = host.network(&shared);
    let (net1, net2) = (vm1.network(&shared), vm2.network(&shared));

    let h = Container::run(&net_h, &[]);
    let a = VmContainer::run(&net1, &["--cap-add", "NET_ADMIN"]);
    let b = VmContainer::run(&net2, &[]);
    let (ih, ia, ib) = (h.ip(&net_h), a.ip(&net1), b.ip(&net2));
    for ip in [&ih, &ia, &ib] {
        assert!(ip.starts_with(&prefix), "{ip} not in {cidr}");
    }
    // Container in a VM <-> container on the host, <-> container in another VM.
    assert!(a.pings(&ih), "VM 1's container cannot reach the host's");
    assert!(h.pings(&ia), "the host's container cannot reach VM 1's");
    assert!(a.pings(&ib), "VM 1's container cannot reach VM 2's");
    assert!(b.pings(&ia), "VM 2's container cannot reach VM 1's");
    // TCP too (the VM's datapath and the hypervisor's are both userspace: checksums matter).
    let tcp = h.exec(&[
        "sh",
        "-c",
        "echo nested-hello | nc -l -p 7001 -w 10 & sleep 0.3; true",
    ]);
    assert!(tcp.status.success());
    let got = a.exec(&["sh", "-c", &format!("sleep 0.5; nc -w 5 {ih} 7001")]);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "nested-hello",
        "TCP from VM 1's container to the host's"
    );

    // The VM cannot see the hypervisor's overlay: Geneve's MTU unless configured.
    let mtu = a.exec(&["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(String::from_utf8_lossy(&mtu.stdout).trim(), "1442");

    // Each container port is a child of its VM's port, with a tag the VM's bridge uses.
    let kids = vm_children(1);
    assert_eq!(kids.len(), 1, "{kids:?}");
    let ports = vm_kuryr_ports(1);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(
        Some(ports[0].1.parse::<u16>().expect("tag")),
        kids[0].1,
        "OVS access port tag vs Northbound tag"
    );
    distinct_tags(1);

    // The VM itself, through a container on the VM's own switch (the hypervisor hairpins it).
    let own = vm1.network(VMS_SWITCH);
    let c = VmContainer::run(&own, &[]);
    let ic = c.ip(&own);
    assert!(
        c.pings("172.31.251.11"),
        "a container cannot reach its own VM"
    );
    assert!(
        c.pings("172.31.251.12"),
        "a container cannot reach another VM"
    );
    assert!(
        run(&mut in_vm(1, &["ping", "-c", "1", "-W", "2", &ic]))
            .status
            .success(),
        "the VM cannot reach its container"
    );
    distinct_tags(1);

    // kuryr doctor inside the VM knows it is a VM: its bridge and its port, no chassis.
    let socket = format!("/run/docker/plugins/{}.sock", vm1.name);
    let (passed, checks) = doctor_in_vm(1, "/dev/null", &socket);
    assert_eq!(check(&checks, "vm bridge")["status"], "ok", "{checks:#}");
    assert_eq!(check(&checks, "vm port")["status"], "ok", "{checks:#}");
    assert!(
        check(&checks, "ovn-controller").is_null(),
        "a VM has no ovn-controller to check: {checks:#}"
    );
    assert!(passed, "{checks:#}");

    // Another network stays apart.
    let (other_cidr, _) = subnet(98);
    let other = vm1.network(&["--subnet", &other_cidr]);
    let d = VmContainer::run(&other, &[]);
    let id = d.ip(&other);
    assert!(
        !d.pings(&ih),
        "a container on another network reached the host's container"
    );
    assert!(
        !h.pings(&id),
        "the host's container reached another network's container in a VM"
    );

    // Spoofing: another address, then another MAC, are dropped by the container's port security.
    let fake = format!("{prefix}250");
    assert!(a
        .exec(&["ip", "addr", "add", &format!("{fake}/24"), "dev", "eth0"])
        .status
        .success());
    assert!(
        !a.pings_from(&fake, &ih),
        "a spoofed source address got through"
    );
    assert!(a.pings_from(&ia, &ih), "the real address must still work");
    let mac = a.exec(&["cat", "/sys/class/net/eth0/address"]);
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
    assert!(a
        .exec(&["ip", "link", "set", "eth0", "address", "0a:58:0a:ff:ff:01"])
        .status
        .success());
    assert!(!a.pings(&ih), "a spoofed MAC got through");
    assert!(a
        .exec(&["ip", "link", "set", "eth0", "address", &mac])
        .status
        .success());
    assert!(a.pings(&ih), "back on its own MAC it works again");

    // docker rm releases the tags and the access ports.
    drop((a, b, c, d));
    wait_until(
        "VM 1's container ports and access ports gone",
        Duration::from_secs(20),
        || vm_children(1).is_empty() && vm_kuryr_ports(1).is_empty() && vm_veths(1).is_empty(),
    );
    assert!(vm_children(2).is_empty() && vm_kuryr_ports(2).is_empty());
    drop((own, other, net1, net2));
    // The lab's switch of the VMs keeps nothing of kuryr's.
    let vms = nb_rows("Logical_Switch");
    let row = vms
        .iter()
        .find(|r| r.contains(",kuryr-vms,"))
        .cloned()
        .unwrap_or_default();
    assert!(
        !row.contains("kuryr:"),
        "kuryr's marks left on kuryr-vms: {row}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn fifty_docker_runs_at_once_in_a_vm_get_distinct_tags_and_all_reach_the_host() {
    let _lab = VmLab::ensure();
    let host = Daemon::start(&[]);
    let vm1 = VmDaemon::start(1, "");
    let (cidr, _) = subnet(99);
    let attach = format!("kuryr.net.name={}", unique("kfifty"));
    let shared = ["--subnet", cidr.as_str(), "-o", attach.as_str()];
    let net_h = host.network(&shared);
    let net1 = vm1.network(&shared);
    let h = Container::run(&net_h, &[]);
    let ih = h.ip(&net_h);

    let start = Instant::now();
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let net = VmNetwork {
                vm: 1,
                name: net1.name.clone(),
            };
            std::thread::spawn(move || {
                let c = VmContainer::run(&net, &[]);
                std::mem::forget(net); // the shared network is removed once, below
                c
            })
        })
        .collect();
    let containers: Vec<VmContainer> = threads
        .into_iter()
        .map(|t| t.join().expect("docker run thread"))
        .collect();
    eprintln!("50 parallel docker runs in a VM: {:?}", start.elapsed());
    let tags = distinct_tags(1);
    assert_eq!(tags.len(), 50, "{tags:?}");
    assert_eq!(vm_kuryr_ports(1).len(), 50);
    let pings: Vec<_> = containers
        .iter()
        .map(|c| {
            let (vm, name, ih) = (c.vm, c.name.clone(), ih.clone());
            std::thread::spawn(move || {
                (0..3).any(|_| {
                    vm_docker(vm, &["exec", &name, "ping", "-c", "1", "-W", "2", &ih])
                        .status
                        .success()
                })
            })
        })
        .collect();
    let reached = pings
        .into_iter()
        .map(|p| p.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(
        reached, 50,
        "only {reached} of 50 containers reached the host's container"
    );
    drop(containers);
    wait_until(
        "the 50 container ports released",
        Duration::from_secs(60),
        || vm_children(1).is_empty() && vm_kuryr_ports(1).is_empty() && vm_veths(1).is_empty(),
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_vm_holds_at_most_its_limit_of_containers_and_says_so() {
    let _lab = VmLab::ensure();
    // Without a recorded parent the daemon finds the VM's port by its NIC's MAC.
    let _parent = ForgetParent::new(2);
    let vm2 = VmDaemon::start(2, "[binding]\nnested_port_limit = 2\n");
    let log = vm2.log_text();
    assert!(
        log.contains("found the VM's port by its NIC's MAC") && log.contains("parent=kuryr-vm-2"),
        "{log}"
    );
    let (cidr, _) = subnet(100);
    let net = vm2.network(&["--subnet", &cidr]);
    let _a = VmContainer::run(&net, &[]);
    let _b = VmContainer::run(&net, &[]);
    let msg = vm_run_refused(2, &net.name, "kvc");
    assert!(
        msg.contains("the VM of port kuryr-vm-2 already holds 2 containers, the most it may ([binding] nested_port_limit = 2)"),
        "{msg}"
    );
    assert_eq!(vm_children(2).len(), 2, "the refused container left a port");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn kill_9_during_twenty_runs_in_a_vm_leaks_nothing_after_a_restart() {
    let _lab = VmLab::ensure();
    let mut vm1 = VmDaemon::start(1, "");
    let (cidr, _) = subnet(101);
    let net = vm1.network(&["--subnet", &cidr]);
    let names: Vec<String> = (0..20).map(|_| unique("kvk")).collect();
    let threads = run_all(1, &names, &net.name);
    // Kill it while the runs are under way.
    wait_until("a few container ports", Duration::from_secs(30), || {
        vm_children(1).len() >= 3
    });
    vm1.kill9();
    std::thread::sleep(Duration::from_millis(500));
    vm1.spawn();
    // Some runs fail (the daemon died under them), the others succeed; either way Docker
    // and kuryr together must leave nothing once the containers are gone.
    let started = count_started(threads);
    eprintln!("{started} of 20 docker runs succeeded across the kill");
    for name in &names {
        let _ = vm_docker(1, &["rm", "-f", name]);
    }
    drop(net);
    wait_until(
        "nothing of the 20 runs left",
        Duration::from_secs(30),
        || vm_children(1).is_empty() && vm_kuryr_ports(1).is_empty() && vm_veths(1).is_empty(),
    );
}

/// `kuryr ARGS...` inside VM `n`, which must succeed: its stdout.
fn kuryr_in_vm(n: u8, args: &[&str]) -> String {
    let mut full = vec![KURYR];
    full.extend_from_slice(args);
    succeeded(
        run(&mut in_vm(n, &full)),
        format!("VM {n}: kuryr {}", args.join(" ")),
    )
}

/// Removes what the workflow made with the command line, even when the test fails.
struct CliCleanup {
    network: String,
    netns: String,
    containers: Vec<String>,
}

impl Drop for CliCleanup {
    fn drop(&mut self) {
        for c in self.containers.iter().chain([&self.netns]) {
            let _ = run(&mut in_vm(1, &[KURYR, "container", "delete", c]));
        }
        let _ = run(&mut in_vm(
            1,
            &[KURYR, "network", "delete", "--force", &self.network],
        ));
        let _ = run(&mut in_vm(1, &["ip", "netns", "delete", &self.netns]));
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn the_source_documents_underlay_workflow_runs_inside_a_vm() {
    // Seed 001's underlay mode: `ovn-integrate nics-to-bridge eth0` and `ovn-container init
    // --bridge breth0 --underlay-mode` (lab/vm.sh ran `kuryr host nics-to-bridge` and `kuryr
    // host init --underlay`), then net-create, endpoint-create and container-create in the VM.
    let _lab = VmLab::ensure();
    let (cidr, prefix) = subnet(102);
    let net = unique("kuw");
    // Interface names come from an endpoint's first 11 characters: they differ at once.
    let pid = std::process::id();
    let (ep0, ep1, ns) = (format!("u0{pid}w"), format!("u1{pid}w"), unique("kuwns"));
    let mut guard = CliCleanup {
        network: net.clone(),
        netns: ns.clone(),
        containers: Vec::new(),
    };
    let shown = kuryr_in_vm(1, &["host", "show", "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("host show json");
    assert_eq!(shown["mode"], "underlay", "{shown}");
    assert_eq!(shown["bridge"], "breth0", "{shown}");
    kuryr_in_vm(1, &["network", "create", &net, &cidr]);
    let created = kuryr_in_vm(1, &["endpoint", "create", &net, &ep0]);
    assert!(created.starts_with(&format!("{ep0} {prefix}")), "{created}");
    kuryr_in_vm(1, &["endpoint", "create", &net, &ep1]);
    // The VM's endpoints are children of its port, with their tags.
    let kids = vm_children(1);
    for ep in [&ep0, &ep1] {
        assert!(
            kids.iter().any(|(n, t)| n == ep && t.is_some()),
            "{ep}: {kids:?}"
        );
    }
    assert_eq!(
        kuryr_in_vm(
            1,
            &["container", "create", "--network", &ep0, "--netns", &ns]
        ),
        ns
    );
    let ctr = kuryr_in_vm(1, &["container", "create", "--network", &ep1]);
    guard.containers.push(ctr.clone());
    let ip1 = format!("{prefix}3");
    assert!(
        run(&mut in_vm(
            1,
            &["ip", "netns", "exec", &ns, "ping", "-c", "1", "-W", "2", &ip1]
        ))
        .status
        .success(),
        "the namespace container cannot reach the Docker one in the same VM"
    );
    // docker run --net=container:<network container> joins it.
    let out = vm_docker(
        1,
        &[
            "run",
            "--rm",
            &format!("--net=container:{ctr}"),
            IMAGE,
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            &format!("{prefix}2"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = kuryr_in_vm(1, &["container", "list"]);
    assert!(
        list.contains("kuryr-vm-1") && list.contains(&ep0) && list.contains(&ep1),
        "{list}"
    );
    drop(guard);
    assert!(
        vm_children(1).is_empty() && vm_kuryr_ports(1).is_empty(),
        "{:?}",
        vm_children(1)
    );
}

/// The `addresses` entries of VM `n`'s own logical port other than the VM's.
fn vm_port_extra_addresses(n: u8) -> Vec<String> {
    let out = run(Command::new("ovn-nbctl").args([
        "--timeout=10",
        "--bare",
        "--columns=addresses",
        "list",
        "Logical_Switch_Port",
        &format!("kuryr-vm-{n}"),
    ]));
    assert!(out.status.success());
    let own = format!("02:6b:76:6d:00:{n:02x}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // `--bare` prints the set's strings space-separated: split on the MACs.
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut entries: Vec<Vec<&str>> = Vec::new();
    for w in words {
        if w.matches(':').count() == 5 && w.len() == 17 {
            entries.push(vec![w]);
        } else if let Some(e) = entries.last_mut() {
            e.push(w);
        }
    }
    entries
        .into_iter()
        .filter(|e| e[0] != own)
        .map(|e| e.join(" "))
        .collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn macvlan_containers_ride_on_the_vms_own_port() {
    let _lab = VmLab::ensure();
    assert!(
        vm_port_extra_addresses(1).is_empty(),
        "addresses left on kuryr-vm-1: {:?}",
        vm_port_extra_addresses(1)
    );
    // kuryr-libnetwork's nested (macvlan) spelling; no Open vSwitch is used in the VM.
    let mut vm1 = VmDaemon::start(
        1,
        "[DEFAULT]\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.nested\n[binding]\ndefault_driver = kuryr.lib.binding.drivers.macvlan\nlink_iface = eth0\n",
    );
    let own = vm1.network(VMS_SWITCH);
    let a = VmContainer::run(&own, &["--cap-add", "NET_ADMIN"]);
    let ia = a.ip(&own);
    assert!(
        a.pings("172.31.251.12"),
        "a macvlan container cannot reach VM 2"
    );
    assert!(
        run(&mut in_vm(2, &["ping", "-c", "1", "-W", "2", &ia]))
            .status
            .success(),
        "VM 2 cannot reach VM 1's macvlan container"
    );
    let mac = a.exec(&["cat", "/sys/class/net/eth0/address"]);
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
    assert_eq!(vm_port_extra_addresses(1), vec![format!("{mac} {ia}")]);
    assert!(
        vm_children(1).is_empty(),
        "macvlan containers have no port of their own"
    );
    // The device is in the container (Docker moved it), none is left in the VM.
    assert!(vm_macvlans(1).is_empty(), "{:?}", vm_macvlans(1));
    // kuryr doctor in the VM: the NIC and the VM's port, no Open vSwitch checks.
    let socket = format!("/run/docker/plugins/{}.sock", vm1.name);
    let (_, checks) = doctor_in_vm(1, &vm1.conf.to_string_lossy(), &socket);
    assert_eq!(check(&checks, "vm nic")["status"], "ok", "{checks:#}");
    assert_eq!(check(&checks, "vm port")["status"], "ok", "{checks:#}");
    assert!(
        check(&checks, "vm port")
            .to_string()
            .contains("kuryr-vm-1 carries 1 containers"),
        "{checks:#}"
    );
    assert!(
        check(&checks, "ovs").is_null(),
        "no OVS check with macvlan: {checks:#}"
    );
    // A macvlan device never reaches its lower device's own addresses (documented).
    assert!(
        !a.pings("172.31.251.11"),
        "a macvlan container reached its VM"
    );
    // Another address is not the VM port's to send from.
    assert!(a
        .exec(&["ip", "addr", "add", "172.31.251.250/24", "dev", "eth0"])
        .status
        .success());
    assert!(
        !a.pings_from("172.31.251.250", "172.31.251.12"),
        "a spoofed address got through"
    );
    assert!(a.pings_from(&ia, "172.31.251.12"));

    // Ten at once, and a kill -9 of the VM's kuryr under them, then a restart: the VM's port
    // holds exactly the running containers' entries, and nothing is left once they are gone.
    let names: Vec<String> = (0..10).map(|_| unique("kvm")).collect();
    let threads = run_all(1, &names, &own.name);
    wait_until("a few more containers", Duration::from_secs(30), || {
        vm_port_extra_addresses(1).len() >= 4
    });
    vm1.kill9();
    std::thread::sleep(Duration::from_millis(500));
    vm1.spawn();
    let started = count_started(threads);
    eprintln!("{started} of 10 docker runs succeeded across the kill");
    let running = vm_docker_ok(
        1,
        &["ps", "-q", "--filter", &format!("network={}", own.name)],
    );
    let running = running.lines().count();
    // Each running container has its entry (a create a kill cut short may have left one more,
    // until Docker releases its address or the network goes).
    assert!(
        vm_port_extra_addresses(1).len() >= running,
        "{running} running, entries {:?}",
        vm_port_extra_addresses(1)
    );
    for name in &names {
        let _ = vm_docker(1, &["rm", "-f", name]);
    }
    drop(a);
    drop(own);
    let start = std::time::Instant::now();
    while !(vm_port_extra_addresses(1).is_empty() && vm_macvlans(1).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left on the VM's port: {:?}; macvlans in the VM: {:?}",
            vm_port_extra_addresses(1),
            vm_macvlans(1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
