//! The Neutron mode end to end: real Docker, a kuryr daemon reading a kuryr-libnetwork style
//! kuryr.conf, the lab's real Neutron 29 (ML2/OVN) and OVN (`make lab-openstack`). Run by
//! `make test`; ignored by a bare `cargo test`.
mod common;

use common::neutron::*;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs root and the lab (make test)"]
fn two_containers_ping_over_a_neutron_network_named_and_tagged_as_kuryr_libnetwork_does() {
    let d = NeutronDaemon::start("");
    let net = d.network(&["--subnet", "10.71.0.0/24", "--gateway", "10.71.0.1"]);
    let nets = neutron_network(&net.id);
    assert_eq!(nets.len(), 1, "{nets:?}");
    let nid = nets[0]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(nets[0]["name"], format!("kuryr-net-{}", &net.id[..8]));
    let pools = neutron_get("/subnetpools?name=kuryrPool-10.71.0.0/24")["subnetpools"].clone();
    assert_eq!(pools.as_array().map(Vec::len), Some(1), "{pools}");
    let subnets = neutron_get(&format!("/subnets?network_id={nid}"))["subnets"].clone();
    assert_eq!(subnets[0]["name"], "kuryr-subnet-10.71.0.0/24", "{subnets}");
    assert_eq!(subnets[0]["subnetpool_id"], pools[0]["id"], "{subnets}");

    {
        let a = Container::run(&net, &[]);
        let b = Container::run(&net, &[]);
        let (ia, ib) = (a.ip(&net), b.ip(&net));
        assert!(
            ia.starts_with("10.71.0.") && ib.starts_with("10.71.0.") && ia != ib,
            "{ia} {ib}"
        );
        assert!(a.pings(&ib), "a cannot ping b\n{}", d.log_text());
        assert!(b.pings(&ia), "b cannot ping a");
        // The ports: bound to this host, compute:kuryr, the endpoint's id and tags.
        let ports = neutron_get(&format!(
            "/ports?network_id={nid}&device_owner=compute:kuryr"
        ))["ports"]
            .clone();
        let ports = ports.as_array().cloned().unwrap_or_default();
        assert_eq!(ports.len(), 2, "{ports:?}");
        for p in &ports {
            assert_eq!(p["device_id"].as_str().map(str::len), Some(64), "{p}");
            // Named and tagged as kuryr-libnetwork finds and releases its ports.
            assert_eq!(
                p["name"],
                format!("{}-port", p["device_id"].as_str().unwrap_or_default()),
                "{p}"
            );
            assert!(
                p["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "compute:kuryr")),
                "{p}"
            );
            assert!(
                !p["binding:host_id"].as_str().unwrap_or_default().is_empty(),
                "{p}"
            );
            let eid = p["device_id"].as_str().unwrap_or_default();
            let tag = format!("kuryr.net.uuid.lh:{}", &eid[..32.min(eid.len())]);
            assert!(
                p["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == &Value::from(tag.clone()))),
                "{p}"
            );
        }
        // The MTU of the Neutron network reaches the container.
        let link =
            String::from_utf8_lossy(&a.exec(&["ip", "link", "show", "eth0"]).stdout).to_string();
        let mtu = nets[0]["mtu"].as_u64().unwrap_or_default();
        assert!(
            link.contains(&format!("mtu {mtu}")),
            "{link} (network MTU {mtu})"
        );
    }
    // Containers gone: their ports are gone.
    wait_until(
        "the containers' ports to be deleted",
        Duration::from_secs(20),
        || {
            neutron_get(&format!(
                "/ports?network_id={nid}&device_owner=compute:kuryr"
            ))["ports"]
                .as_array()
                .is_some_and(Vec::is_empty)
        },
    );
    drop(net);
    // Network gone: nothing of it is left in Neutron.
    wait_until(
        "the Neutron network to be deleted",
        Duration::from_secs(20),
        || {
            neutron_get(&format!("/networks/{nid}"))
                .get("network")
                .is_none()
        },
    );
    assert_no_pool("10.71.0.0/24");
    d.assert_no_failed_calls();
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn neutron_down_gives_a_clear_error_naming_neutron() {
    require_neutron();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    // A loopback port nobody listens on.
    std::fs::write(
        &conf,
        "[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9\n",
    )
    .expect("write");
    let socket = format!("/run/docker/plugins/{}.sock", unique("kuryrneu"));
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["daemon", "--config"])
        .arg(&conf)
        .args(["--socket", &socket])
        .env("NO_COLOR", "1")
        .output()
        .expect("run kuryr daemon");
    let _ = std::fs::remove_file(&socket);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Neutron at http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn an_existing_neutron_network_is_used_by_uuid_and_by_name_and_left_as_it_was() {
    let d = NeutronDaemon::start("");
    let mut undo = Cleanup::default();
    let name = unique("kneu-ext");
    let net = neutron_create("network", serde_json::json!({"name": name}));
    let nid = id_of(&net);
    undo.delete(format!("/networks/{nid}"));
    let sub = neutron_create(
        "subnet",
        serde_json::json!({"network_id": nid, "cidr": "10.72.0.0/24", "ip_version": 4,
            "name": unique("kneu-ext-sub"),
            "host_routes": [{"destination": "192.168.72.0/24", "nexthop": "10.72.0.254"}]}),
    );
    let sid = id_of(&sub);
    let sub_name = sub["name"].as_str().unwrap_or_default().to_string();

    for option in [
        format!("neutron.net.uuid={nid}"),
        format!("neutron.net.name={name}"),
        // Its subnet named too (what a network with several subnets of the CIDR needs).
        format!("neutron.net.uuid={nid},neutron.subnet.name={sub_name}"),
    ] {
        let mut args = vec!["--subnet", "10.72.0.0/24"];
        for o in option.split(',') {
            args.extend_from_slice(&["-o", o]);
        }
        let docker_net = d.network(&args);
        let tags = tags_of(&neutron_get(&format!("/networks/{nid}"))["network"]);
        for want in [
            format!("kuryr.net.uuid.lh:{}", &docker_net.id[..32]),
            format!("kuryr.net.uuid.uh:{}", &docker_net.id[32..]),
            format!("kuryr.net.existing:{}", &docker_net.id[..12]),
        ] {
            assert!(tags.contains(&want), "{option}: {want} not in {tags:?}");
        }
        // The network's own subnet is used, not a new kuryr-subnet.
        let subnets = neutron_get(&format!("/subnets?network_id={nid}"))["subnets"].clone();
        assert_eq!(subnets.as_array().map(Vec::len), Some(1), "{subnets}");
        {
            let a = Container::run(&docker_net, &[]);
            let b = Container::run(&docker_net, &["--mac-address", "02:42:0a:48:00:99"]);
            let (ia, ib) = (a.ip(&docker_net), b.ip(&docker_net));
            assert!(
                ia.starts_with("10.72.0.") && ib.starts_with("10.72.0."),
                "{ia} {ib}"
            );
            // The subnet's gateway and host routes reach the container.
            let routes = String::from_utf8_lossy(&a.exec(&["ip", "route"]).stdout).to_string();
            assert!(routes.contains("default via 10.72.0.1"), "{routes}");
            assert!(
                routes.contains("192.168.72.0/24 via 10.72.0.254"),
                "{routes}"
            );
            // Docker's MAC is the port's.
            let b_port = port_with_ip(&nid, &ib);
            assert_eq!(b_port["mac_address"], "02:42:0a:48:00:99", "{b_port}");
            assert!(a.pings(&ib), "{option}: a cannot ping b\n{}", d.log_text());
            let ports = neutron_get(&format!(
                "/ports?network_id={nid}&device_owner=compute:kuryr"
            ))["ports"]
                .clone();
            assert_eq!(ports.as_array().map(Vec::len), Some(2), "{ports}");
            assert!(
                ports
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|p| p["fixed_ips"][0]["subnet_id"] == sid.as_str()),
                "{ports}"
            );
        }
        drop(docker_net);
        // The network and its subnet stay; kuryr's tags and ports go.
        let left = neutron_get(&format!("/networks/{nid}"))["network"].clone();
        assert_eq!(
            left["id"],
            nid.as_str(),
            "{option}: the existing network was deleted"
        );
        assert!(tags_of(&left).is_empty(), "{option}: tags left: {left}");
        let subnet = neutron_get(&format!("/subnets/{sid}"))["subnet"].clone();
        assert_eq!(
            subnet["id"],
            sid.as_str(),
            "{option}: its subnet was deleted"
        );
        assert!(
            tags_of(&subnet).is_empty(),
            "{option}: subnet tags left: {subnet}"
        );
        let ports = neutron_get(&format!(
            "/ports?network_id={nid}&device_owner=compute:kuryr"
        ))["ports"]
            .clone();
        assert_eq!(ports.as_array().map(Vec::len), Some(0), "{option}: {ports}");
    }

    // Two Docker networks on the one Neutron network (as two hosts have): the first going
    // leaves what the second uses; the second going leaves the network as it was found.
    let uuid = format!("neutron.net.uuid={nid}");
    let first = d.network(&["--subnet", "10.72.0.0/24", "-o", &uuid]);
    let second = d.network(&["--subnet", "10.72.0.0/24", "-o", &uuid]);
    let second_tag = format!("kuryr.net.existing:{}", &second.id[..12]);
    drop(first);
    let net_tags = tags_of(&neutron_get(&format!("/networks/{nid}"))["network"]);
    assert!(net_tags.contains(&second_tag), "{net_tags:?}");
    let sub_tags = tags_of(&neutron_get(&format!("/subnets/{sid}"))["subnet"]);
    assert_eq!(
        sub_tags.len(),
        1,
        "the pool tag the second network needs: {sub_tags:?}"
    );
    drop(second);
    let net_tags = tags_of(&neutron_get(&format!("/networks/{nid}"))["network"]);
    assert!(net_tags.is_empty(), "{net_tags:?}");
    let sub_tags = tags_of(&neutron_get(&format!("/subnets/{sid}"))["subnet"]);
    assert!(
        sub_tags.is_empty(),
        "pool tag left on the subnet: {sub_tags:?}"
    );

    d.assert_no_failed_calls();
    assert_no_pool("10.72.0.0/24");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn docker_run_ip_adopts_an_unowned_port_and_hands_it_back_intact() {
    let d = NeutronDaemon::start("");
    let net = d.network(&["--subnet", "10.73.0.0/24", "--gateway", "10.73.0.1"]);
    // Its ports go before the Docker network does (Neutron keeps a network with ports).
    let mut undo = Cleanup::default();
    let docker_id = net.id.clone();
    let nid = id_of(&neutron_network(&net.id)[0]);
    let port = neutron_create(
        "port",
        serde_json::json!({"network_id": nid, "name": unique("kneu-adopt"),
            "fixed_ips": [{"ip_address": "10.73.0.50"}]}),
    );
    let pid = id_of(&port);
    undo.delete(format!("/ports/{pid}"));
    // A port some other service owns is not taken.
    let dhcp_like = neutron_create(
        "port",
        serde_json::json!({"network_id": nid, "name": unique("kneu-owned"),
            "device_owner": "network:kuryr-test", "fixed_ips": [{"ip_address": "10.73.0.60"}]}),
    );
    undo.delete(format!("/ports/{}", id_of(&dhcp_like)));
    let err = Container::run_fails(&net, &["--ip", "10.73.0.60"]);
    assert!(
        err.contains("10.73.0.60") && err.contains("network:kuryr-test"),
        "{err}"
    );

    {
        let a = Container::run(&net, &["--ip", "10.73.0.50"]);
        let b = Container::run(&net, &[]);
        assert_eq!(a.ip(&net), "10.73.0.50");
        let mac = docker_ok(&[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").MacAddress}}}}",
                net.name
            ),
            &a.name,
        ]);
        assert_eq!(
            mac,
            port["mac_address"].as_str().unwrap_or_default(),
            "the port's MAC"
        );
        let used = neutron_get(&format!("/ports/{pid}"))["port"].clone();
        assert_eq!(used["device_owner"], "compute:kuryr", "{used}");
        assert_eq!(used["device_id"].as_str().map(str::len), Some(64), "{used}");
        assert!(
            tags_of(&used).contains(&"kuryr.port.existing".to_string()),
            "{used}"
        );
        assert!(
            b.pings("10.73.0.50"),
            "b cannot ping the adopted port\n{}",
            d.log_text()
        );
        // Its address is taken while it is in use.
        let err = Container::run_fails(&net, &["--ip", "10.73.0.50"]);
        assert!(
            err.contains("10.73.0.50") && err.contains("in use"),
            "{err}"
        );
    }
    let back = neutron_get(&format!("/ports/{pid}"))["port"].clone();
    for key in [
        "id",
        "name",
        "mac_address",
        "fixed_ips",
        "security_groups",
        "admin_state_up",
        "tags",
    ] {
        assert_eq!(back[key], port[key], "{key} changed: {back}");
    }
    for key in ["device_owner", "device_id", "binding:host_id"] {
        assert_eq!(back[key], "", "{key} not given back: {back}");
    }
    // With the test's own ports gone, the network leaves nothing behind.
    drop(undo);
    drop(net);
    assert_eq!(neutron_network(&docker_id), Vec::<Value>::new());
    assert_no_pool("10.73.0.0/24");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn overlapping_cidrs_live_in_named_pools() {
    let d = NeutronDaemon::start("");
    let mut undo = Cleanup::default();
    let mut pools = Vec::new();
    for _ in 0..2 {
        let name = unique("kneu-pool");
        let p = neutron_create(
            "subnetpool",
            serde_json::json!({"name": name, "prefixes": ["10.74.0.0/16"], "default_prefixlen": 24}),
        );
        undo.delete(format!("/subnetpools/{}", id_of(&p)));
        pools.push((name, id_of(&p)));
    }
    let mut nets = Vec::new();
    for (i, (name, id)) in pools.iter().enumerate() {
        // One pool by name, the other by uuid.
        let opt = if i == 0 {
            format!("neutron.pool.name={name}")
        } else {
            format!("neutron.pool.uuid={id}")
        };
        nets.push(d.network(&["--subnet", "10.74.1.0/24", "--ipam-opt", &opt, "-o", &opt]));
    }
    {
        let a1 = Container::run(&nets[0], &[]);
        let a2 = Container::run(&nets[0], &[]);
        let b1 = Container::run(&nets[1], &[]);
        let (ia1, ia2, ib1) = (a1.ip(&nets[0]), a2.ip(&nets[0]), b1.ip(&nets[1]));
        for ip in [&ia1, &ia2, &ib1] {
            assert!(ip.starts_with("10.74.1."), "{ip}");
        }
        assert!(a1.pings(&ia2), "a1 cannot ping a2\n{}", d.log_text());
        // Each network's subnet comes from its own pool.
        for (net, (_, pool_id)) in nets.iter().zip(&pools) {
            let nid = id_of(&neutron_network(&net.id)[0]);
            let subnets = neutron_get(&format!("/subnets?network_id={nid}"))["subnets"].clone();
            assert_eq!(subnets[0]["subnetpool_id"], pool_id.as_str(), "{subnets}");
            assert_eq!(subnets[0]["cidr"], "10.74.1.0/24", "{subnets}");
        }
        // The other network's identical address range is not reachable.
        if ib1 != ia2 {
            assert!(!b1.pings(&ia2), "b1 reached {ia2} on the other network");
        }
    }
    nets.clear();
    for (name, id) in &pools {
        let p = neutron_get(&format!("/subnetpools/{id}"))["subnetpool"].clone();
        assert_eq!(p["name"], name.as_str(), "pool {name} was deleted: {p}");
        assert!(tags_of(&p).is_empty(), "pool {name} kept kuryr's tag: {p}");
        let subnets = neutron_get(&format!("/subnets?subnetpool_id={id}"))["subnets"].clone();
        assert_eq!(subnets.as_array().map(Vec::len), Some(0), "{subnets}");
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn dual_stack_containers_ping_over_ipv4_and_ipv6_with_one_port_each() {
    let d = NeutronDaemon::start("");
    let net = d.network(&[
        "--ipv6",
        "--subnet",
        "10.75.0.0/24",
        "--gateway",
        "10.75.0.1",
        "--subnet",
        "fd75:0:0:1::/64",
        "--gateway",
        "fd75:0:0:1::1",
    ]);
    let nid = id_of(&neutron_network(&net.id)[0]);
    {
        let a = Container::run(&net, &[]);
        let b = Container::run(&net, &[]);
        let (a4, b4, a6, b6) = (a.ip(&net), b.ip(&net), a.ipv6(&net), b.ipv6(&net));
        assert!(
            a4.starts_with("10.75.0.") && b4.starts_with("10.75.0."),
            "{a4} {b4}"
        );
        assert!(
            a6.starts_with("fd75:0:0:1:") && b6.starts_with("fd75:0:0:1:"),
            "{a6} {b6}"
        );
        assert!(a.pings(&b4), "IPv4 ping failed\n{}", d.log_text());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !a.pings(&b6) {
            assert!(
                Instant::now() < deadline,
                "IPv6 ping failed\n{}",
                d.log_text()
            );
        }
        let ports = neutron_get(&format!(
            "/ports?network_id={nid}&device_owner=compute:kuryr"
        ))["ports"]
            .clone();
        let ports = ports.as_array().cloned().unwrap_or_default();
        assert_eq!(ports.len(), 2, "one port per container: {ports:?}");
        for p in &ports {
            assert_eq!(p["fixed_ips"].as_array().map(Vec::len), Some(2), "{p}");
        }
    }
    wait_until("the ports to go", Duration::from_secs(20), || {
        neutron_get(&format!(
            "/ports?network_id={nid}&device_owner=compute:kuryr"
        ))["ports"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    drop(net);
    d.assert_no_failed_calls();
    for cidr in ["10.75.0.0/24", "fd75:0:0:1::/64"] {
        assert_no_pool(cidr);
    }
}

/// A container serving HTTP on 8080 and 8081, exposing `expose`.
fn web_server(net: &Network, expose: &[&str]) -> Container {
    let name = unique("kweb");
    let mut args = vec!["run", "-d", "--name", &name, "--net", &net.name];
    for e in expose {
        args.extend_from_slice(&["--expose", e]);
    }
    args.extend_from_slice(&[
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo ok >/www/index.html && httpd -p 8080 -h /www && httpd -p 8081 -h /www && sleep 600",
    ]);
    docker_ok(&args);
    Container { name }
}

/// Whether `client` gets the page on `ip:port` (a connection that is not let through times out).
fn fetches(client: &Container, ip: &str, port: u16) -> bool {
    // busybox nc, not wget: the static busybox's wget crashes resolving even an address.
    let request = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}");
    let out = client.exec(&["sh", "-c", &request]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).lines().last() == Some("ok")
}

/// The kuryr port of the only container with an address on Neutron network `nid` matching `ip`.
fn port_with_ip(nid: &str, ip: &str) -> Value {
    let ports = neutron_get(&format!(
        "/ports?network_id={nid}&fixed_ips=ip_address%3D{ip}"
    ))["ports"]
        .clone();
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");
    ports[0].clone()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn expose_opens_8080_to_a_client_behind_a_router_and_not_8081() {
    let d = NeutronDaemon::start("");
    let mut sgs = Cleanup::default();
    let srv_net = d.network(&["--subnet", "10.76.1.0/24", "--gateway", "10.76.1.1"]);
    let cli_net = d.network(&["--subnet", "10.76.2.0/24", "--gateway", "10.76.2.1"]);
    let srv_nid = id_of(&neutron_network(&srv_net.id)[0]);
    let cli_nid = id_of(&neutron_network(&cli_net.id)[0]);
    // A Neutron router joins the two networks; it goes before the networks do.
    let mut routing = Cleanup::default();
    let router = neutron_create("router", serde_json::json!({"name": unique("kneu-rtr")}));
    let rid = id_of(&router);
    routing.delete(format!("/routers/{rid}"));
    for nid in [&srv_nid, &cli_nid] {
        let subnet = id_of(&neutron_get(&format!("/subnets?network_id={nid}"))["subnets"][0]);
        let body = serde_json::json!({ "subnet_id": subnet });
        let (status, v) = neutron(
            "PUT",
            &format!("/routers/{rid}/add_router_interface"),
            Some(&body),
        );
        assert_eq!(status, 200, "add router interface: {v}");
        let rid = rid.clone();
        routing.then(move || {
            let _ = neutron(
                "PUT",
                &format!("/routers/{rid}/remove_router_interface"),
                Some(&body),
            );
        });
    }
    // The client's own security group: it lets everything out and nothing in.
    let client_sg = neutron_create(
        "security_group",
        serde_json::json!({"name": unique("kneu-client-sg")}),
    );
    sgs.delete(format!("/security-groups/{}", id_of(&client_sg)));

    let server_port_id;
    {
        let server = web_server(&srv_net, &["8080/tcp"]);
        let client = Container::run(&cli_net, &[]);
        let srv_ip = server.ip(&srv_net);
        let server_port = port_with_ip(&srv_nid, &srv_ip);
        server_port_id = id_of(&server_port);
        let exposed = format!("{server_port_id}-exposed_ports");
        let sg =
            neutron_get(&format!("/security-groups?name={exposed}"))["security_groups"][0].clone();
        assert_eq!(sg["name"], exposed.as_str(), "no {exposed}: {sg}");
        assert!(
            server_port["security_groups"]
                .as_array()
                .is_some_and(|g| g.contains(&sg["id"])),
            "{server_port}"
        );
        let rules: Vec<&Value> = sg["security_group_rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["direction"] == "ingress")
            .collect();
        assert_eq!(rules.len(), 1, "{sg}");
        assert_eq!(
            (
                &rules[0]["protocol"],
                &rules[0]["port_range_min"],
                &rules[0]["port_range_max"]
            ),
            (&Value::from("tcp"), &Value::from(8080), &Value::from(8080)),
            "{sg}"
        );
        let client_port = port_with_ip(&cli_nid, &client.ip(&cli_net));
        let body = serde_json::json!({"port": {"security_groups": [id_of(&client_sg)]}});
        let (status, v) = neutron(
            "PUT",
            &format!("/ports/{}", id_of(&client_port)),
            Some(&body),
        );
        assert_eq!(status, 200, "move the client to its own group: {v}");

        let deadline = Instant::now() + Duration::from_secs(30);
        while !fetches(&client, &srv_ip, 8080) {
            assert!(
                Instant::now() < deadline,
                "the client cannot reach exposed 8080 on {srv_ip}\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(
            !fetches(&client, &srv_ip, 8081),
            "8081 is open but was not exposed"
        );
        // The server listens on 8081 indeed: it answers itself.
        assert!(
            fetches(&server, "127.0.0.1", 8081),
            "the server does not serve 8081"
        );
    }
    // Revoked with the container: the group is gone.
    let left = neutron_get(&format!(
        "/security-groups?name={server_port_id}-exposed_ports"
    ))["security_groups"]
        .clone();
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{left}");
    drop(routing);
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn process_external_connectivity_false_leaves_exposed_ports_closed() {
    let d = NeutronDaemon::start("process_external_connectivity = false");
    let net = d.network(&["--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1"]);
    let nid = id_of(&neutron_network(&net.id)[0]);
    let server = web_server(&net, &["8080/tcp"]);
    let port = port_with_ip(&nid, &server.ip(&net));
    let sgs = neutron_get(&format!(
        "/security-groups?name={}-exposed_ports",
        id_of(&port)
    ))["security_groups"]
        .clone();
    assert_eq!(sgs.as_array().map(Vec::len), Some(0), "{sgs}");
    assert_eq!(
        port["security_groups"].as_array().map(Vec::len),
        Some(1),
        "{port}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn neutron_down_for_a_moment_fails_calls_clearly_then_they_work_again() {
    let proxy = Proxy::start();
    let d = NeutronDaemon::start_via("", &proxy.url());
    let net = d.network(&["--subnet", "10.79.0.0/24", "--gateway", "10.79.0.1"]);
    let nid = id_of(&neutron_network(&net.id)[0]);
    let a = Container::run(&net, &[]);
    proxy.down();
    let err = Container::run_fails(&net, &[]);
    assert!(
        err.contains("Neutron") && err.contains(&proxy.url()),
        "the error does not say Neutron at {} cannot be reached: {err}",
        proxy.url()
    );
    proxy.up();
    let b = Container::run(&net, &[]);
    assert!(
        a.pings(&b.ip(&net)),
        "a cannot ping b after Neutron came back\n{}",
        d.log_text()
    );
    // The failed run left no port behind.
    let ports = neutron_get(&format!(
        "/ports?network_id={nid}&device_owner=compute:kuryr"
    ))["ports"]
        .clone();
    assert_eq!(ports.as_array().map(Vec::len), Some(2), "{ports}");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn parallel_docker_runs_reach_neutron_in_parallel() {
    let proxy = Proxy::start();
    let d = NeutronDaemon::start_via("", &proxy.url());
    let net = d.network(&["--subnet", "10.80.0.0/24", "--gateway", "10.80.0.1"]);
    let net_name = net.name.clone();
    proxy.reset_most();
    let started = Instant::now();
    let names: Vec<String> = (0..4).map(|_| unique("kctr")).collect();
    let runs: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let net_name = net_name.clone();
            std::thread::spawn(move || {
                docker(&[
                    "run", "-d", "--name", &name, "--net", &net_name, IMAGE, "sleep", "600",
                ])
            })
        })
        .collect();
    let outs: Vec<_> = runs.into_iter().map(|h| h.join()).collect();
    let containers: Vec<Container> = names.into_iter().map(|name| Container { name }).collect();
    let parallel = started.elapsed();
    for out in outs {
        let out = out.expect("docker run thread");
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "4 parallel docker runs: {parallel:?}, at most {} Neutron connections at once",
        proxy.most()
    );
    assert!(
        proxy.most() >= 2,
        "kuryr never had two Neutron requests in flight at once: the runs were serialized"
    );
    let ips: std::collections::HashSet<String> = containers.iter().map(|c| c.ip(&net)).collect();
    assert_eq!(ips.len(), 4, "{ips:?}");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn enable_ssl_serves_kuryr_uri_over_tls_to_docker() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let d = NeutronDaemon::start(&format!(
        "kuryr_uri = http://127.0.0.1:{port}\nenable_ssl = true\nssl_cert_file = {}\nssl_key_file = {}\n",
        cert.display(),
        key.display()
    ));
    // Plain HTTP is not answered; HTTPS with the certificate is.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "5",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{port}/Plugin.Activate"),
        ])
        .output()
        .expect("curl");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("Implements"));
    // Docker finds the driver through a .json spec carrying a TLSConfig, as with kuryr-libnetwork.
    let name = unique("kuryrtls");
    let spec = PathBuf::from(format!("/etc/docker/plugins/{name}.json"));
    std::fs::create_dir_all("/etc/docker/plugins").expect("mkdir /etc/docker/plugins");
    std::fs::write(
        &spec,
        serde_json::json!({"Name": name, "Addr": format!("https://127.0.0.1:{port}"),
            "TLSConfig": {"InsecureSkipVerify": false, "CAFile": cert.display().to_string(),
                "CertFile": "", "KeyFile": ""}})
        .to_string(),
    )
    .expect("write the plugin spec");
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _spec = Remove(spec);
    let net_name = unique("kneu");
    let id = docker_ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--subnet",
        "10.81.0.0/24",
        "--gateway",
        "10.81.0.1",
        &net_name,
    ]);
    let net = Network { name: net_name, id };
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    assert!(
        a.pings(&b.ip(&net)),
        "no ping over a network served through TLS\n{}",
        d.log_text()
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_container_start_and_stop_costs_a_handful_of_neutron_calls() {
    let d = NeutronDaemon::start("");
    let net = d.network(&[
        "--subnet",
        "10.82.0.0/24",
        "--gateway",
        "10.82.0.1",
        "-o",
        "neutron.net.shared=true",
    ]);
    let shared = neutron_network(&net.id)[0]["shared"].clone();
    assert_eq!(shared, Value::Bool(true), "neutron.net.shared=true");
    // The first run fills the caches (network, subnet); the next ones show the steady state.
    docker_ok(&["run", "--rm", "--net", &net.name, IMAGE, "true"]);
    let (mut work, mut polls) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let before = d.log_text().len();
        docker_ok(&["run", "--rm", "--net", &net.name, IMAGE, "true"]);
        // DeleteEndpoint and ReleaseAddress may still be under way when docker returns.
        let mut after = d.neutron_requests();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            let now = d.neutron_requests();
            if now == after {
                break;
            }
            after = now;
        }
        let log = d.log_text();
        let requests: Vec<&str> = log[before..]
            .lines()
            .filter(|l| l.contains("Neutron request"))
            .collect();
        // Join's status polls (GET /ports/<id>) depend on how fast Neutron marks the port
        // ACTIVE, so on the machine's load; the rest is fixed.
        let (p, w): (Vec<&str>, Vec<&str>) = requests
            .iter()
            .partition(|l| l.contains("method=GET path=\"/ports/"));
        work.push(w.len());
        polls.push(p.len());
        assert_eq!(
            w.len(),
            4,
            "POST port, PUT bind, PUT tags, DELETE port; got:\n{}",
            w.join("\n")
        );
        assert!(
            !p.is_empty(),
            "Join did not wait for ACTIVE:\n{}",
            requests.join("\n")
        );
    }
    eprintln!(
        "Neutron requests per docker run --rm (start and stop): {work:?} + ACTIVE polls {polls:?}; kuryr-libnetwork 18: 24"
    );
    d.assert_no_failed_calls();
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_host_neutron_cannot_bind_to_gets_a_clear_error_and_keeps_nothing() {
    let host = unique("kuryr-nochassis");
    let d = NeutronDaemon::start(&format!("host = {host}"));
    let net = d.network(&["--subnet", "10.83.0.0/24", "--gateway", "10.83.0.1"]);
    let nid = id_of(&neutron_network(&net.id)[0]);
    let err = Container::run_fails(&net, &[]);
    assert!(
        err.contains("binding_failed") && err.contains(&host),
        "{err}"
    );
    // Docker released the address: no port is left, and no host port either.
    wait_until("the port to be released", Duration::from_secs(20), || {
        neutron_get(&format!(
            "/ports?network_id={nid}&device_owner=compute:kuryr"
        ))["ports"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    assert!(
        !ovs_ports()
            .iter()
            .any(|p| d.log_text().contains(p.as_str()) && p.starts_with("tap")),
        "a host port was left: {:?}",
        ovs_ports()
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn published_ports_are_ignored_with_a_warning() {
    let d = NeutronDaemon::start("");
    let net = d.network(&["--subnet", "10.84.0.0/24", "--gateway", "10.84.0.1"]);
    // The container starts: -p is not an error, as with kuryr-libnetwork.
    let c = Container::run(&net, &["-p", "127.0.0.1::8080"]);
    assert!(c.ip(&net).starts_with("10.84.0."));
    wait_until("the -p warning in the log", Duration::from_secs(10), || {
        d.log_text()
            .contains("published ports (-p) are not supported by kuryr")
    });
    d.assert_no_failed_calls();
    // The OVN mode's router option is refused, naming Neutron's way.
    let err = create_network_fails(
        &d.name,
        &["--subnet", "10.85.0.0/24", "-o", "kuryr.router=blue"],
    );
    assert!(err.contains("openstack router add subnet"), "{err}");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_prefix_only_subnet_is_a_free_one_of_that_length_in_the_default_subnet_pool() {
    require_neutron();
    let mut undo = Cleanup::default();
    let default = unique("kneu-default");
    let p = neutron_create(
        "subnetpool",
        serde_json::json!({"name": default, "prefixes": ["10.86.0.0/16"], "default_prefixlen": 24}),
    );
    undo.delete(format!("/subnetpools/{}", id_of(&p)));
    let d = NeutronDaemon::start_with(
        &format!(
            "[DEFAULT]\n[neutron]\nauth_type = none\nendpoint = {NEUTRON}\ndefault_subnetpool_v4 = {default}\n"
        ),
        "info",
    );
    // Docker 29's `--subnet 0.0.0.0/26`, twice: two different free /26s of the default pool.
    let body = r#"{"AddressSpace":"","Pool":"0.0.0.0/26","SubPool":"","Options":{},"V6":false}"#;
    let mut got = Vec::new();
    for _ in 0..2 {
        let (status, reply) =
            post(&d.socket, "/IpamDriver.RequestPool", body).expect("RequestPool");
        assert_eq!(status, 200, "{reply}\n{}", d.log_text());
        let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON");
        let pool_id = reply["PoolID"].as_str().unwrap_or_default().to_string();
        let cidr = reply["Pool"].as_str().unwrap_or_default().to_string();
        // The subnet pool kuryr made, deleted in Neutron should the test fail before its
        // ReleasePool below (the daemon is stopped before this guard runs).
        let made = neutron_get(&format!("/subnetpools?name=kuryrPool-{cidr}"))["subnetpools"]
            .as_array()
            .and_then(|a| a.first())
            .map(id_of);
        if let Some(id) = made {
            undo.delete(format!("/subnetpools/{id}"));
        }
        got.push((pool_id, cidr));
    }
    let cidrs: Vec<&str> = got.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(cidrs, ["10.86.0.0/26", "10.86.0.64/26"], "{}", d.log_text());
    for (pool_id, cidr) in &got {
        let (status, reply) = post(
            &d.socket,
            "/IpamDriver.ReleasePool",
            &format!(r#"{{"PoolID":"{pool_id}"}}"#),
        )
        .expect("ReleasePool");
        assert_eq!(status, 200, "{reply}");
        let left = neutron_get(&format!("/subnetpools?name=kuryrPool-{cidr}"));
        assert_eq!(
            left["subnetpools"],
            serde_json::json!([]),
            "ReleasePool left {left}"
        );
    }
}
