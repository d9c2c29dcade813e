//! The Neutron mode end to end: real Docker, a kuryr daemon reading a kuryr-libnetwork style
//! kuryr.conf, the lab's real Neutron 29 (ML2/OVN) and OVN (`make lab-openstack`). Run by
//! `make test`; ignored by a bare `cargo test`.
mod common;

use common::neutron::*;
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

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
            assert_eq!(p["name"], "kuryr-unbound-port");
            assert_eq!(p["device_id"].as_str().map(str::len), Some(64), "{p}");
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
    let pools = neutron_get("/subnetpools?name=kuryrPool-10.71.0.0/24")["subnetpools"].clone();
    assert_eq!(
        pools.as_array().map(Vec::len),
        Some(0),
        "pool left behind: {pools}"
    );
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
