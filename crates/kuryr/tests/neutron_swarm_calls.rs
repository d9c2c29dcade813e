//! A Swarm's calls to a Neutron-mode kuryr (global scope), replayed as a Swarm manager and a
//! node running a task send them (see SWARM.md: the manager asks every address before any
//! node creates the network, each task address is asked and released twice, every node
//! creates and deletes the network, only the manager frees it), against the lab's Neutron and
//! br-int. One daemon plays both parts, with port pools on. Run by `make test` (root, the lab
//! and its Neutron); `swarm_e2e` runs the same with real Docker hosts.
mod common;

use common::neutron::*;
use common::*;
use serde_json::{json, Value};

const V4: &str = "10.190.0.0/24";

fn conf() -> String {
    format!(
        "[DEFAULT]\ncapability_scope = global\n[neutron]\nauth_type = none\nendpoint = {NEUTRON}\n[vif_pool]\nports_pool_min = 2\nports_pool_batch = 2\nports_pool_update_frequency = 2\n"
    )
}

fn ok(d: &Daemon, path: &str, body: &Value) -> Value {
    let (status, reply) = d.call(path, &format!("{body}\n"));
    assert_eq!(status, 200, "{path} {body}: {reply}\n{}", d.log_text());
    reply
}

fn address(reply: &Value) -> String {
    reply["Address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// The network's free pool ports, made ready (tagged, which is the last step before their
/// pool holds them).
fn pool_ports(nid: &str) -> usize {
    neutron_get(&format!(
        "/ports?network_id={nid}&name=available-port&tags=kuryr.port.pool"
    ))["ports"]
        .as_array()
        .map_or(0, Vec::len)
}

fn ports_holding(nid: &str, ip: &str) -> Vec<Value> {
    neutron_get(&format!(
        "/ports?network_id={nid}&fixed_ips=ip_address={ip}"
    ))["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Removes the Neutron network (its ports first) and the subnet pool even when the test
/// fails.
#[derive(Default)]
struct Cleanup {
    network: String,
    pool: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.network.is_empty() {
            let ports = neutron_get(&format!("/ports?network_id={}", self.network));
            for p in ports["ports"].as_array().into_iter().flatten() {
                if p["device_owner"]
                    .as_str()
                    .is_some_and(|o| !o.starts_with("network:"))
                {
                    let _ = neutron("DELETE", &format!("/ports/{}", id_of(p)), None);
                }
            }
            let _ = neutron("DELETE", &format!("/networks/{}", self.network), None);
        }
        if !self.pool.is_empty() {
            let _ = neutron("DELETE", &format!("/subnetpools/{}", self.pool), None);
        }
    }
}

#[test]
#[ignore = "needs root, the lab and its Neutron (make test)"]
fn a_manager_allocates_nodes_bind_and_only_free_network_removes_the_network() {
    // Dropped after the daemon has stopped: its pool refills no more.
    let mut c = Cleanup::default();
    let mut d = Daemon::start_with_conf(&conf(), &[]);
    let serial = json!({"com.docker.network.ipam.serial": "true"});
    // The manager: its pool and gateway.
    let pool = ok(
        &d,
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "GlobalDefault", "Pool": V4, "SubPool": "", "Options": serial, "V6": false}),
    )["PoolID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let net = docker_id();
    c.pool = pool.clone();
    let gw = ok(
        &d,
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": pool, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway", "com.docker.network.ipam.serial": "true"}}),
    )["Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(gw, "10.190.0.1/24");

    // AllocateNetwork: the Neutron network and subnet, before any node's CreateNetwork.
    let alloc = json!({"NetworkID": net, "Options": {}, "IPv4Data": [{"AddressSpace": "", "Pool": V4, "Gateway": gw}], "IPv6Data": null});
    let reply = ok(&d, "/NetworkDriver.AllocateNetwork", &alloc);
    assert_eq!(reply["Options"], json!({}), "{reply}");
    let nets = neutron_network(&net);
    assert_eq!(nets.len(), 1, "{nets:?}");
    let nid = id_of(&nets[0]);
    c.network = nid.clone();
    assert!(
        nets[0]["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "kuryr.net.swarm")),
        "{}",
        nets[0]
    );
    // Again (a new leader restores its networks): the same network.
    ok(&d, "/NetworkDriver.AllocateNetwork", &alloc);
    assert_eq!(neutron_network(&net).len(), 1);

    // The manager's address for a task: a port nobody has bound yet, not one of the pool
    // ready on this host.
    wait_until(
        "two free pool ports on the network",
        std::time::Duration::from_secs(60),
        || pool_ports(&nid) >= 2,
    );
    let task = address(&ok(
        &d,
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": pool, "Address": "", "Options": serial}),
    ));
    let held = ports_holding(&nid, &task);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["binding:host_id"], "", "{}", held[0]);
    assert_eq!(held[0]["name"], "kuryr-unbound-port", "{}", held[0]);

    // The node running the task: the network again, the manager's address as preference.
    let create = json!({"NetworkID": net, "Options": {"com.docker.network.generic": {}}, "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": V4, "Gateway": gw}], "IPv6Data": []});
    ok(&d, "/NetworkDriver.CreateNetwork", &create);
    assert_eq!(neutron_network(&net).len(), 1);
    let node_pool = ok(
        &d,
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "LocalDefault", "Pool": V4, "SubPool": "", "Options": {}, "V6": false}),
    )["PoolID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(node_pool, pool);
    let again = address(&ok(
        &d,
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": pool, "Address": task, "Options": {}}),
    ));
    assert_eq!(again, task);
    let ep = docker_id();
    let _host = HostSide(vec![ep.clone()]);
    ok(
        &d,
        "/NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": format!("{task}/24"), "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
    );
    let bound = ports_holding(&nid, &task);
    assert_eq!(bound.len(), 1, "the node made a second port: {bound:?}");
    assert_eq!(bound[0]["id"], held[0]["id"], "{bound:?}");
    assert_eq!(bound[0]["device_id"], ep.as_str(), "{}", bound[0]);

    // Another task, on another node: the manager's address, bound there.
    let other = address(&ok(
        &d,
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": pool, "Address": "", "Options": serial}),
    ));
    let other_port = ports_holding(&nid, &other);
    assert_eq!(other_port.len(), 1, "{other_port:?}");
    let other_ep = docker_id();
    let (status, v) = neutron(
        "PUT",
        &format!("/ports/{}", id_of(&other_port[0])),
        Some(&json!({"port": {"device_id": other_ep, "name": format!("{other_ep}-port")}})),
    );
    assert_eq!(status, 200, "{v}");

    // A manager restarted (or a new leader) asks again for the addresses it holds: granted.
    d.kill9();
    d.spawn();
    ok(
        &d,
        "/IpamDriver.RequestPool",
        &json!({"AddressSpace": "GlobalDefault", "Pool": V4, "SubPool": "", "Options": serial, "V6": false}),
    );
    for a in [&task, &other] {
        let restored = address(&ok(
            &d,
            "/IpamDriver.RequestAddress",
            &json!({"PoolID": pool, "Address": a, "Options": serial}),
        ));
        assert_eq!(&restored, a);
    }
    // The manager's release may come before the other node's: the port bound there stays.
    ok(
        &d,
        "/IpamDriver.ReleaseAddress",
        &json!({"PoolID": pool, "Address": other}),
    );
    assert_eq!(
        ports_holding(&nid, &other).len(),
        1,
        "the manager's release deleted another node's running task's port"
    );
    // The node: the task stops; its release deletes the port.
    let ep_body = json!({"NetworkID": net, "EndpointID": ep});
    ok(&d, "/NetworkDriver.Leave", &ep_body);
    ok(&d, "/NetworkDriver.DeleteEndpoint", &ep_body);
    ok(
        &d,
        "/IpamDriver.ReleaseAddress",
        &json!({"PoolID": pool, "Address": task}),
    );
    assert!(
        ports_holding(&nid, &task).is_empty(),
        "the task's port stayed"
    );

    // The node's last task gone: its DeleteNetwork and ReleasePool leave the network to the
    // other nodes.
    ok(
        &d,
        "/NetworkDriver.DeleteNetwork",
        &json!({"NetworkID": net}),
    );
    ok(&d, "/IpamDriver.ReleasePool", &json!({"PoolID": pool}));
    assert!(
        !neutron_network_gone(&nid),
        "a node's DeleteNetwork removed it"
    );
    assert_eq!(pool_ports(&nid), 0, "this host's pool ports stayed");
    let pools = neutron_get(&format!("/subnetpools/{pool}"));
    assert_eq!(pools["subnetpool"]["id"], pool.as_str(), "{pools}");

    // An address the manager gave a task that never started, then `docker network rm`:
    // FreeNetwork removes the network with that port and the other node's (a node that
    // died never deletes its own); the pool goes with ReleasePool.
    let never = address(&ok(
        &d,
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": pool, "Address": "", "Options": serial}),
    ));
    assert_eq!(ports_holding(&nid, &never).len(), 1);
    ok(&d, "/NetworkDriver.FreeNetwork", &json!({"NetworkID": net}));
    assert!(neutron_network_gone(&nid), "FreeNetwork left the network");
    ok(
        &d,
        "/IpamDriver.ReleaseAddress",
        &json!({"PoolID": pool, "Address": "10.190.0.1"}),
    );
    ok(&d, "/IpamDriver.ReleasePool", &json!({"PoolID": pool}));
    assert_no_pool(V4);
    assert_no_failed_calls(&d.log_text());
}
