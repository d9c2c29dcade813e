//! Containers inside VMs in the Neutron mode, end to end. The test plays Nova for the lab's
//! VM 1 (`lab/vm.sh`): a Neutron port with the VM NIC's MAC and address, bound to this host,
//! the NIC re-bound to it on br-int, and a trunk on it made by a project member. The kuryr
//! inside the VM starts from kuryr-libnetwork's vlan-driver kuryr.conf with that member's
//! credentials (no admin role anywhere), finds the VM's port by its NIC's MAC, and makes each
//! container's port a subport of the trunk. A kuryr on the host (the lab's admin-role user of
//! the same project) runs containers on the same Neutron network. Run by `make test`.
mod common;

use common::keystone::*;
use common::neutron::*;
use common::vm::*;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

/// A /24 of its own per test and process.
fn subnet(base: u8) -> (String, String) {
    let n = std::process::id() % 200 + 20;
    (format!("10.{base}.{n}.0/24"), format!("10.{base}.{n}."))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// The lab's project member: its token and project id, checked to hold no admin role.
struct Member {
    env: HashMap<String, String>,
    token: String,
    project: String,
}

impl Member {
    fn login() -> Member {
        let env = require_keystone_lab();
        let (token, body) = password_token(
            &env["KURYR_LAB_KEYSTONE"],
            &env["KURYR_LAB_MEMBER_USER"],
            &env["KURYR_LAB_MEMBER_PASSWORD"],
            &env["KURYR_LAB_PROJECT"],
        );
        let roles: Vec<&str> = body["token"]["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            roles.contains(&"member") && !roles.contains(&"admin"),
            "the lab's member user must be a plain member: {roles:?}"
        );
        let project = body["token"]["project"]["id"]
            .as_str()
            .expect("project id")
            .to_string();
        Member {
            env,
            token,
            project,
        }
    }

    /// A kuryr.conf as kuryr-libnetwork 18's vlan driver reads it, with this member's
    /// credentials, plus `extra` lines in `[binding]`.
    fn vlan_conf(&self, extra_binding: &str) -> String {
        format!(
            "[DEFAULT]\nsubnetpool_name_prefix = {pool}\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.vlan\nenabled_port_drivers = kuryr_libnetwork.port_driver.drivers.vlan\n\
             [binding]\ndefault_driver = kuryr.lib.binding.drivers.vlan\nenabled_drivers = kuryr.lib.binding.drivers.vlan\nlink_iface = eth0\n{extra_binding}\n\
             [neutron]\nauth_url = {url}\nauth_type = password\nusername = {user}\npassword = {password}\nproject_name = {project}\nuser_domain_name = Default\nproject_domain_name = Default\n",
            pool = unique("kvnPool"),
            url = self.env["KURYR_LAB_KEYSTONE"],
            user = self.env["KURYR_LAB_MEMBER_USER"],
            password = self.env["KURYR_LAB_MEMBER_PASSWORD"],
            project = self.env["KURYR_LAB_PROJECT"],
        )
    }

    /// The host's kuryr: the lab's user with the admin role in the same project (binding a
    /// port to a host is admin-only), through Keystone.
    fn host_daemon(&self) -> NeutronDaemon {
        NeutronDaemon::start_with(
            &format!(
                "[DEFAULT]\nsubnetpool_name_prefix = {}\n[neutron]\nauth_url = {}\nauth_type = password\nusername = {}\npassword = {}\nproject_name = {}\nuser_domain_name = Default\nproject_domain_name = Default\nvif_plugging_timeout = 20\n",
                unique("khnPool"),
                self.env["KURYR_LAB_KEYSTONE"],
                self.env["KURYR_LAB_USER"],
                self.env["KURYR_LAB_PASSWORD"],
                self.env["KURYR_LAB_PROJECT"],
            ),
            "info,kuryr_neutron=debug",
        )
    }

    /// A request to Neutron behind Keystone with the member's token.
    fn neutron(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, text) = http(
            method,
            &format!("{NEUTRON_KEYSTONE}/v2.0{path}"),
            Some(&self.token),
            body,
        );
        (status, common::keystone::body(&text))
    }
}

fn require_keystone_lab() -> HashMap<String, String> {
    require_neutron();
    lab_env()
}

/// A Neutron network of the member's project with one subnet; removed by `undo`.
fn project_network(undo: &mut Cleanup, project: &str, cidr: &str, gateway: Value) -> String {
    let net = neutron_create(
        "network",
        json!({"name": unique("kvn-net"), "project_id": project}),
    );
    let id = id_of(&net);
    undo.delete(format!("/networks/{id}"));
    neutron_create(
        "subnet",
        json!({"network_id": id, "cidr": cidr, "ip_version": 4, "project_id": project,
               "gateway_ip": gateway, "name": unique("kvn-sub")}),
    );
    id
}

/// VM `n` plugged as Nova would: its Neutron port (the NIC's MAC and address, bound to this
/// host), the NIC's host end re-bound to it, and a trunk the member makes on it. Undone when
/// dropped (the NIC goes back to the lab's logical port `kuryr-vm-N`).
struct NovaVm {
    parent: String,
    trunk: String,
    _undo: Cleanup,
    _forget: ForgetParent,
}

impl NovaVm {
    fn plug(n: u8, member: &Member, vm_net: &str) -> NovaVm {
        NovaVm::plug_with(n, member, vm_net, true)
    }

    /// With `trunk` false the VM's port gets no trunk (the macvlan driver).
    fn plug_with(n: u8, member: &Member, vm_net: &str, trunk: bool) -> NovaVm {
        let mut undo = Cleanup::default();
        let port = neutron_create(
            "port",
            json!({"network_id": vm_net, "project_id": member.project,
                   "name": format!("kuryr-vm-{n}-nova"),
                   "mac_address": format!("02:6b:76:6d:00:{n:02x}"),
                   "fixed_ips": [{"ip_address": format!("172.31.251.{}", 10 + n)}],
                   "binding:host_id": hostname(), "device_owner": "compute:nova",
                   "device_id": unique("kvn-instance")}),
        );
        let parent = id_of(&port);
        undo.delete(format!("/ports/{parent}"));
        let vif = format!("kvm{n}-vif");
        let set = |id: &str| {
            let out = run(Command::new("ovs-vsctl").args([
                "--timeout=10",
                "set",
                "Interface",
                &vif,
                &format!("external_ids:iface-id={id}"),
            ]));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        set(&parent);
        let lab_port = format!("kuryr-vm-{n}");
        let vif2 = vif.clone();
        undo.then(move || {
            let _ = run(Command::new("ovs-vsctl").args([
                "--timeout=10",
                "set",
                "Interface",
                &vif2,
                &format!("external_ids:iface-id={lab_port}"),
            ]));
        });
        let trunk = if trunk {
            let (status, t) = member.neutron(
                "POST",
                "/trunks",
                Some(&json!({"trunk": {"port_id": parent, "name": unique("kvn-trunk")}})),
            );
            assert_eq!(status, 201, "the member creates the VM's trunk: {t}");
            let trunk = t["trunk"]["id"].as_str().expect("trunk id").to_string();
            undo.delete(format!("/trunks/{trunk}"));
            trunk
        } else {
            String::new()
        };
        wait_until("the VM's port ACTIVE", Duration::from_secs(30), || {
            neutron_get(&format!("/ports/{parent}"))["port"]["status"] == "ACTIVE"
        });
        NovaVm {
            parent,
            trunk,
            _undo: undo,
            // The lab recorded its OVN port's name: the kuryr in the VM must find the Neutron
            // port by the NIC's MAC, as kuryr-libnetwork does.
            _forget: ForgetParent::new(n),
        }
    }

    /// (port id, VLAN) of the trunk's subports.
    fn subports(&self) -> Vec<(String, u16)> {
        let v = neutron_get(&format!("/trunks/{}/get_subports", self.trunk));
        v["sub_ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        (
                            s["port_id"].as_str().unwrap_or_default().to_string(),
                            s["segmentation_id"].as_u64().unwrap_or(0) as u16,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The VLANs of the trunk equal the VM's access port tags, each once.
fn assert_vlans_match(vm: &NovaVm, n: u8) -> Vec<u16> {
    let mut trunk: Vec<u16> = vm.subports().iter().map(|(_, v)| *v).collect();
    let mut ovs: Vec<u16> = vm_kuryr_ports(n)
        .iter()
        .map(|(name, t)| {
            t.parse()
                .unwrap_or_else(|_| panic!("access port {name} has no tag"))
        })
        .collect();
    trunk.sort_unstable();
    ovs.sort_unstable();
    assert_eq!(trunk, ovs, "trunk VLANs vs the VM's access port tags");
    let set: HashSet<u16> = trunk.iter().copied().collect();
    assert_eq!(set.len(), trunk.len(), "a VLAN given twice: {trunk:?}");
    trunk
}

fn assert_nothing_left(vm: &NovaVm, n: u8) {
    wait_until(
        "the VM's subports, access ports and veths gone",
        Duration::from_secs(30),
        || vm.subports().is_empty() && vm_kuryr_ports(n).is_empty() && vm_veths(n).is_empty(),
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_vms_containers_are_trunk_subports_under_a_members_credentials() {
    let _lab = VmLab::ensure();
    let member = Member::login();
    let mut undo = Cleanup::default();
    let vm_net = project_network(&mut undo, &member.project, "172.31.251.0/24", Value::Null);
    let (cidr, prefix) = subnet(93);
    let shared = project_network(&mut undo, &member.project, &cidr, Value::Null);
    let vm = NovaVm::plug(1, &member, &vm_net);
    let vm2 = NovaVm::plug(2, &member, &vm_net);

    let host = member.host_daemon();
    let inside = VmDaemon::start(1, &member.vlan_conf(""));
    let inside2 = VmDaemon::start(2, &member.vlan_conf(""));
    let log = inside.log_text();
    assert!(
        log.contains(&vm.parent) && log.contains(&vm.trunk),
        "the VM's port and trunk found by the NIC's MAC: {log}"
    );
    let on = format!("neutron.net.uuid={shared}");
    let net_h = host.network(&["--subnet", &cidr, "-o", &on]);
    let net_v = inside.network(&["--subnet", &cidr, "-o", &on]);
    let h = Container::run(&net_h, &[]);
    let a = VmContainer::run(&net_v, &["--cap-add", "NET_ADMIN"]);
    let (ih, ia) = (h.ip(&net_h), a.ip(&net_v));
    assert!(
        ih.starts_with(&prefix) && ia.starts_with(&prefix),
        "{ih} {ia}"
    );
    assert!(a.pings(&ih), "the VM's container cannot reach the host's");
    assert!(h.pings(&ia), "the host's container cannot reach the VM's");
    // A container in another VM, on its own VM's trunk.
    let net_v2 = inside2.network(&["--subnet", &cidr, "-o", &on]);
    let b = VmContainer::run(&net_v2, &[]);
    let ib = b.ip(&net_v2);
    assert!(a.pings(&ib), "VM 1's container cannot reach VM 2's");
    assert!(b.pings(&ia), "VM 2's container cannot reach VM 1's");
    assert_eq!(vm2.subports().len(), 1, "{:?}", vm2.subports());

    // The container's port is a subport: unbound (no host, no profile of kuryr's), owned by
    // the trunk, the VM's access port tagged with its VLAN; in OVN a child of the VM's port.
    let subs = vm.subports();
    assert_eq!(subs.len(), 1, "{subs:?}");
    let port = neutron_get(&format!("/ports/{}", subs[0].0))["port"].clone();
    assert_eq!(port["binding:host_id"], "", "{port:#}");
    assert_eq!(port["device_owner"], "trunk:subport", "{port:#}");
    assert_eq!(port["fixed_ips"][0]["ip_address"], ia.as_str(), "{port:#}");
    assert_eq!(assert_vlans_match(&vm, 1), vec![subs[0].1]);
    let lsp = run(Command::new("ovn-nbctl").args([
        "--timeout=10",
        "--bare",
        "--columns=parent_name,tag",
        "find",
        "Logical_Switch_Port",
        &format!("name={}", subs[0].0),
    ]));
    let lsp = String::from_utf8_lossy(&lsp.stdout).to_string();
    let lsp: Vec<&str> = lsp.split_whitespace().collect();
    assert_eq!(
        lsp,
        vec![vm.parent.as_str(), &subs[0].1.to_string()],
        "the subport's logical port: a child of the VM's port with the VLAN as its tag"
    );

    // kuryr doctor inside the VM finds the same port and trunk, bound.
    let socket = format!("/run/docker/plugins/{}.sock", inside.name);
    let (_, checks) = doctor_in_vm(1, &inside.conf.to_string_lossy(), &socket);
    let port_check = check(&checks, "vm port");
    assert_eq!(port_check["status"], "ok", "{checks:#}");
    let detail = port_check.to_string();
    assert!(
        detail.contains(&vm.parent) && detail.contains(&vm.trunk) && detail.contains("ACTIVE"),
        "{checks:#}"
    );

    // The VM itself, through a container on the VM's own network.
    let own_opt = format!("neutron.net.uuid={vm_net}");
    let own = inside.network(&["--subnet", "172.31.251.0/24", "-o", &own_opt]);
    let c = VmContainer::run(&own, &[]);
    let ic = c.ip(&own);
    assert!(c.pings("172.31.251.11"), "a container cannot reach its VM");
    assert!(
        run(&mut in_vm(1, &["ping", "-c", "1", "-W", "2", &ic]))
            .status
            .success(),
        "the VM cannot reach its container"
    );
    assert_vlans_match(&vm, 1);

    // Another network stays apart.
    let (other_cidr, _) = subnet(94);
    let other = inside.network(&["--subnet", &other_cidr]);
    let d = VmContainer::run(&other, &[]);
    assert!(
        !d.pings(&ih),
        "another network's container reached the host's"
    );

    // A spoofed source address is dropped by the subport's port security. Neutron hands out
    // addresses at random, so the spoofed one is one no port on the network holds: were it the
    // host container's, the ping would never leave the VM's container.
    let taken = addresses_on(&shared);
    let fake = (200..=254)
        .rev()
        .map(|i| format!("{prefix}{i}"))
        .find(|ip| !taken.contains(ip))
        .expect("a free address on the shared network");
    assert!(a
        .exec(&["ip", "addr", "add", &format!("{fake}/24"), "dev", "eth0"])
        .status
        .success());
    assert!(
        !a.pings_from(&fake, &ih),
        "a spoofed address ({fake}) got through to {ih}; the network's addresses: {taken:?}"
    );
    assert!(a.pings_from(&ia, &ih), "the real address must still work");

    // docker rm: subports off the trunk, ports deleted, nothing left in the VM.
    let ports: Vec<String> = vm.subports().into_iter().map(|(p, _)| p).collect();
    assert_eq!(ports.len(), 3);
    drop((a, b, c, d));
    assert_nothing_left(&vm, 1);
    assert_nothing_left(&vm2, 2);
    for p in &ports {
        let (status, _) = neutron("GET", &format!("/ports/{p}"), None);
        assert_eq!(
            status, 404,
            "port {p} of a removed container is still there"
        );
    }
    drop((own, other, net_v, net_v2));
    inside.assert_no_failed_calls();
    inside2.assert_no_failed_calls();
    drop(h);
    drop(net_h);
    host.assert_no_failed_calls();
    assert_eq!(ports_on(&shared), Vec::<String>::new(), "ports left");
    let mut left = ports_on(&vm_net);
    left.sort();
    let mut parents = vec![vm.parent.clone(), vm2.parent.clone()];
    parents.sort();
    assert_eq!(left, parents, "ports left");
}

/// The fixed addresses of the Neutron ports on a network.
fn addresses_on(network: &str) -> Vec<String> {
    ports_of(network)
        .iter()
        .flat_map(|p| p["fixed_ips"].as_array().cloned().unwrap_or_default())
        .filter_map(|ip| ip["ip_address"].as_str().map(str::to_string))
        .collect()
}

/// Neutron ports left on a network.
fn ports_on(network: &str) -> Vec<String> {
    ports_of(network).iter().map(id_of).collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn two_writers_of_one_trunk_a_kill_9_and_the_port_limit() {
    let _lab = VmLab::ensure();
    let member = Member::login();
    let mut undo = Cleanup::default();
    let vm_net = project_network(&mut undo, &member.project, "172.31.251.0/24", Value::Null);
    let (cidr, _) = subnet(95);
    let shared = project_network(&mut undo, &member.project, &cidr, Value::Null);
    let vm = NovaVm::plug(1, &member, &vm_net);
    // Two kuryr daemons in one VM: two writers of one trunk, each unaware of the other's
    // attaches under way, so Neutron's 409 settles who gets a VLAN.
    let mut a = VmDaemon::start(1, &member.vlan_conf(""));
    let b = VmDaemon::start(1, &member.vlan_conf(""));
    let on = format!("neutron.net.uuid={shared}");
    let net_a = a.network(&["--subnet", &cidr, "-o", &on]);
    let net_b = b.network(&["--subnet", &cidr, "-o", &on]);
    let names: Vec<String> = (0..24).map(|_| unique("kvnp")).collect();
    let mut rm = Cleanup::default();
    let all = names.clone();
    rm.then(move || {
        for n in &all {
            let _ = vm_docker(1, &["rm", "-f", n]);
        }
    });
    let mut threads = run_all(1, &names[..8], &net_a.name);
    threads.extend(run_all(1, &names[8..16], &net_b.name));
    let started = count_started(threads);
    assert_eq!(started, 16, "every run of the two writers starts");
    assert_eq!(assert_vlans_match(&vm, 1).len(), 16);
    a.assert_no_failed_calls();
    b.assert_no_failed_calls();

    // kill -9 of one writer while 8 more runs go to it; then a restart.
    let threads = run_all(1, &names[16..], &net_a.name);
    wait_until("a few more subports", Duration::from_secs(60), || {
        vm.subports().len() >= 18
    });
    a.kill9();
    std::thread::sleep(Duration::from_millis(500));
    a.spawn();
    let started = count_started(threads);
    eprintln!("{started} of 8 docker runs succeeded across the kill");
    assert_vlans_match(&vm, 1);
    drop(rm);
    assert_nothing_left(&vm, 1);
    wait_until(
        "every container's Neutron port deleted",
        Duration::from_secs(30),
        || ports_on(&shared).is_empty(),
    );
    drop((net_a, net_b));

    // The limit counts the trunk's subports: the third container of a VM limited to two is
    // refused with the reason, and leaves nothing.
    let c = VmDaemon::start(1, &member.vlan_conf("nested_port_limit = 2"));
    let net_c = c.network(&["--subnet", &cidr, "-o", &on]);
    let x = VmContainer::run(&net_c, &[]);
    let y = VmContainer::run(&net_c, &[]);
    let msg = vm_run_refused(1, &net_c.name, "kvnl");
    assert!(
        msg.contains(&format!(
            "the VM's trunk {} (port {}) carries 2 containers, as many as [binding] nested_port_limit = 2 allows",
            vm.trunk, vm.parent
        )),
        "{msg}"
    );
    assert_eq!(
        vm.subports().len(),
        2,
        "the refused container left a subport"
    );
    wait_until(
        "the refused container's port deleted",
        Duration::from_secs(20),
        || ports_on(&shared).len() == 2,
    );
    drop((x, y, net_c));
    assert_nothing_left(&vm, 1);
    assert_eq!(ports_on(&shared), Vec::<String>::new(), "ports left");
    assert_eq!(ports_on(&vm_net), vec![vm.parent.clone()], "ports left");
}

/// The (address, MAC) pairs the VM's port allows.
fn pairs_of(port: &str) -> Vec<(String, String)> {
    neutron_get(&format!("/ports/{port}"))["port"]["allowed_address_pairs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["ip_address"].as_str().unwrap_or_default().to_string(),
                        p["mac_address"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn macvlan_with_neutron_29s_ml2_ovn_is_refused_with_the_reason_and_leaves_nothing() {
    let _lab = VmLab::ensure();
    let member = Member::login();
    let mut undo = Cleanup::default();
    let vm_net = project_network(&mut undo, &member.project, "172.31.251.0/24", Value::Null);
    let vm = NovaVm::plug_with(1, &member, &vm_net, false);
    // kuryr-libnetwork's nested (macvlan) kuryr.conf: no OVS needed in the VM.
    let conf = member
        .vlan_conf("")
        .replace(
            "kuryr_libnetwork.port_driver.drivers.vlan",
            "kuryr_libnetwork.port_driver.drivers.nested",
        )
        .replace(
            "kuryr.lib.binding.drivers.vlan",
            "kuryr.lib.binding.drivers.macvlan",
        );
    let inside = VmDaemon::start(1, &conf);
    assert!(
        inside.log_text().contains(&vm.parent),
        "{}",
        inside.log_text()
    );
    // No neutron.net option: the VM's own network, as kuryr-libnetwork's nested driver does.
    let net_v = inside.network(&["--subnet", "172.31.251.0/24"]);
    let tags = tags_of(&neutron_get(&format!("/networks/{vm_net}"))["network"]);
    assert!(
        tags.iter().any(|t| t.starts_with("kuryr.net.existing:")),
        "the VM's network is used as an existing one: {tags:?}"
    );
    // ML2/OVN (Neutron 29) accepts only VRRP MACs in a bound port's allowed address pairs.
    let msg = vm_run_refused(1, &net_v.name, "kvnm");
    assert!(
        msg.contains("allowed address pairs of the VM's port")
            && msg.contains("use the vlan driver"),
        "{msg}"
    );
    // Refused, so nothing stays: no pair, no container port, no macvlan device.
    assert!(
        pairs_of(&vm.parent).is_empty(),
        "{:?}",
        pairs_of(&vm.parent)
    );
    wait_until(
        "the refused container's port deleted",
        Duration::from_secs(20),
        || ports_on(&vm_net) == vec![vm.parent.clone()],
    );
    assert!(vm_macvlans(1).is_empty(), "{:?}", vm_macvlans(1));
    drop(net_v);
    let tags = tags_of(&neutron_get(&format!("/networks/{vm_net}"))["network"]);
    assert!(
        !tags.iter().any(|t| t.starts_with("kuryr.")),
        "the VM's network keeps kuryr's tags: {tags:?}"
    );
    inside.assert_no_failed_calls();
}

/// The trunk's subports that are free pool ports (named `available-port`, no device).
fn free_subports(vm: &NovaVm) -> Vec<String> {
    vm.subports()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            let port = neutron_get(&format!("/ports/{p}"))["port"].clone();
            port["name"] == "available-port" && port["device_id"] == ""
        })
        .collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_vms_port_pool_keeps_subports_ready_on_its_trunk() {
    let _lab = VmLab::ensure();
    let member = Member::login();
    let mut undo = Cleanup::default();
    let vm_net = project_network(&mut undo, &member.project, "172.31.251.0/24", Value::Null);
    let (cidr, prefix) = subnet(96);
    let shared = project_network(&mut undo, &member.project, &cidr, Value::Null);
    let vm = NovaVm::plug(1, &member, &vm_net);
    let conf = format!(
        "{}[vif_pool]\nports_pool_min = 2\nports_pool_batch = 2\nports_pool_update_frequency = 2\n",
        member.vlan_conf("")
    );
    let inside = VmDaemon::start(1, &conf);
    let on = format!("neutron.net.uuid={shared}");
    let net = inside.network(&["--subnet", &cidr, "-o", &on]);
    // Two ports ready on the trunk before the first container, made by the member.
    wait_until("two ready subports", Duration::from_secs(60), || {
        free_subports(&vm).len() == 2
    });
    let ready: HashSet<String> = free_subports(&vm).into_iter().collect();
    for p in &ready {
        let port = neutron_get(&format!("/ports/{p}"))["port"].clone();
        assert_eq!(port["device_owner"], "trunk:subport", "{port:#}");
        assert_eq!(port["binding:host_id"], "", "{port:#}");
        assert_eq!(
            port["description"],
            format!("kuryr pool of trunk {}", vm.trunk),
            "{port:#}"
        );
    }
    let a = VmContainer::run(&net, &[]);
    let b = VmContainer::run(&net, &[]);
    let (ia, ib) = (a.ip(&net), b.ip(&net));
    assert!(
        ia.starts_with(&prefix) && ib.starts_with(&prefix),
        "{ia} {ib}"
    );
    assert!(a.pings(&ib), "a cannot ping b");
    // Each container got one of the ready subports.
    let port_of = |ip: &str| -> String {
        vm.subports()
            .into_iter()
            .map(|(p, _)| p)
            .find(|p| {
                neutron_get(&format!("/ports/{p}"))["port"]["fixed_ips"][0]["ip_address"] == ip
            })
            .unwrap_or_else(|| panic!("no subport holds {ip}: {:?}", vm.subports()))
    };
    let (pa, pb) = (port_of(&ia), port_of(&ib));
    assert!(
        ready.contains(&pa) && ready.contains(&pb),
        "the containers did not get the ready subports: {pa} {pb} {ready:?}"
    );
    // The VM's access ports are tagged with those two subports' VLANs (the trunk carries
    // the free ones too).
    let vlans: HashMap<String, u16> = vm.subports().into_iter().collect();
    let mut want = vec![vlans[&pa], vlans[&pb]];
    want.sort_unstable();
    let mut tags: Vec<u16> = vm_kuryr_ports(1)
        .iter()
        .map(|(_, t)| t.parse().unwrap_or(0))
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, want, "access port tags vs the containers' subports");
    // Two more made ready meanwhile.
    wait_until("the pool refilled", Duration::from_secs(60), || {
        free_subports(&vm).len() >= 2
    });
    // A stopped container's port stays on the trunk, free again.
    drop(a);
    wait_until("a's port back in the pool", Duration::from_secs(30), || {
        free_subports(&vm).contains(&pa)
    });
    drop(b);
    drop(net);
    // docker network rm: every pool port off the trunk and deleted.
    assert_nothing_left(&vm, 1);
    assert_eq!(ports_on(&shared), Vec::<String>::new(), "ports left");
    inside.assert_no_failed_calls();
}
