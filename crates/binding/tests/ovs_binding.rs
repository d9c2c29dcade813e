//! The `ovs` binding against the real kernel, Open vSwitch and OVN of the lab. Run as root by
//! `make test`; a bare `cargo test` lists them as ignored, and without root or without the lab
//! they fail saying what is missing.
mod support;

use kuryr_binding::{Binding, BindingError, OvsBinding, PlugRequest};
use std::time::{Duration, Instant};
use support::*;

async fn binding() -> OvsBinding {
    OvsBinding::connect(OVS_DB, BRIDGE)
        .await
        .expect("connect to the local Open_vSwitch database")
}

fn request(endpoint_id: &str, iface_id: &str, mac: &str, mtu: u32) -> PlugRequest {
    PlugRequest {
        endpoint_id: endpoint_id.to_string(),
        iface_id: iface_id.to_string(),
        mac: mac.to_string(),
        mtu,
        vlan: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn plug_creates_veth_and_port_and_unplug_removes_both() {
    require_ovs();
    let b = binding().await;
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let mac = mac();
    let iface_id = format!("lsp-{}", suffix());
    let req = request(&ep, &iface_id, &mac.to_uppercase(), 1442);

    let plugged = b.plug(&req).await.expect("plug");
    assert_eq!(plugged.host_ifname, format!("tap{}", &ep[..11]));
    assert_eq!(plugged.container_ifname, format!("t_c{}", &ep[..11]));

    // The veth pair: both ends, MTU on both, the MAC on the container end, the host end up.
    let host = link(&plugged.host_ifname).expect("host end exists");
    let cont = link(&plugged.container_ifname).expect("container end exists");
    assert_eq!(host["linkinfo"]["info_kind"], "veth", "{host}");
    assert_eq!(
        host["link"],
        plugged.container_ifname.as_str(),
        "peers: {host}"
    );
    assert_eq!(host["mtu"], 1442);
    assert_eq!(cont["mtu"], 1442);
    assert_eq!(cont["address"], mac.as_str());
    let flags: Vec<&str> = host["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(flags.contains(&"UP"), "host end not up: {flags:?}");

    // The OVS port: in br-int, exactly these external_ids, and the MTU.
    assert_eq!(
        run("ovs-vsctl", &["port-to-br", &plugged.host_ifname]),
        BRIDGE
    );
    let ext = ovs_map(&ovs_column("Interface", &plugged.host_ifname, "external_ids").unwrap());
    let want: std::collections::BTreeMap<String, String> = [
        ("attached-mac", mac.as_str()),
        ("iface-id", iface_id.as_str()),
        ("iface-status", "active"),
        ("owner", "kuryr"),
        ("vm-uuid", ep.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(ext, want);
    let port_ext = ovs_map(&ovs_column("Port", &plugged.host_ifname, "external_ids").unwrap());
    assert_eq!(port_ext.get("owner").map(String::as_str), Some("kuryr"));
    assert_eq!(port_ext.len(), 1, "{port_ext:?}");
    wait_until(
        "ovs-vswitchd to report the interface's MTU",
        Duration::from_secs(10),
        || ovs_column("Interface", &plugged.host_ifname, "mtu") == Some(serde_json::json!(1442)),
    );
    let ofport = ovs_column("Interface", &plugged.host_ifname, "ofport").unwrap();
    assert!(ofport.as_i64().is_some_and(|p| p > 0), "ofport {ofport}");

    // Docker retries: the same plug again is success; a different one for the name is refused.
    assert_eq!(b.plug(&req).await.expect("plug again"), plugged);
    let other = request(&ep, &iface_id, &support::mac(), 1442);
    let err = b.plug(&other).await.unwrap_err();
    assert!(matches!(err, BindingError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains(&plugged.host_ifname), "{err}");

    // list() reports it.
    let listed = b.list().await.unwrap();
    let mine = listed.iter().find(|p| p.endpoint_id == ep).expect("listed");
    assert_eq!(mine.host_ifname, plugged.host_ifname);
    assert_eq!(mine.iface_id, iface_id);
    assert_eq!(mine.mac, mac);
    assert_eq!(mine.bridge.as_deref(), Some(BRIDGE));
    assert!(mine.veth_exists);
    assert!(!mine.ovn_installed);

    b.unplug(&ep).await.expect("unplug");
    assert!(!link_exists(&plugged.host_ifname));
    assert!(!link_exists(&plugged.container_ifname));
    assert!(!ovs_row_exists("Port", &plugged.host_ifname));
    assert!(!ovs_row_exists("Interface", &plugged.host_ifname));
    assert!(!b.list().await.unwrap().iter().any(|p| p.endpoint_id == ep));

    b.unplug(&ep).await.expect("unplug twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn unplug_after_the_veth_was_deleted_by_hand_succeeds() {
    require_ovs();
    let b = binding().await;
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let plugged = b
        .plug(&request(&ep, &format!("lsp-{}", suffix()), &mac(), 1500))
        .await
        .unwrap();
    run("ip", &["link", "del", &plugged.host_ifname]);
    assert!(!link_exists(&plugged.container_ifname));

    let listed = b.list().await.unwrap();
    let mine = listed.iter().find(|p| p.endpoint_id == ep).expect("listed");
    assert!(!mine.veth_exists, "{mine:?}");

    b.unplug(&ep).await.expect("unplug without the veth");
    assert!(!ovs_row_exists("Port", &plugged.host_ifname));
    b.unplug(&ep).await.expect("unplug again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn list_shows_only_the_ports_of_its_own_host() {
    require_ovs();
    let (mine, theirs) = (binding().await, binding().await);
    mine.set_host(&format!("host-a-{}", suffix()));
    theirs.set_host(&format!("host-b-{}", suffix()));
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    mine.plug(&request(&ep, &format!("lsp-{}", suffix()), &mac(), 1500))
        .await
        .unwrap();
    assert!(mine
        .list()
        .await
        .unwrap()
        .iter()
        .any(|p| p.endpoint_id == ep));
    // Another kuryr on this OVS (another host name, another Northbound) must not see it,
    // or its reconciliation would unplug a container that is not its own.
    assert!(!theirs
        .list()
        .await
        .unwrap()
        .iter()
        .any(|p| p.endpoint_id == ep));
    mine.unplug(&ep).await.unwrap();
}

/// Plugs a host end the way kuryr-libnetwork's veth driver and kuryr-lib's `ovs` script do:
/// `tap<port id[:11]>`/`t_c<port id[:11]>`, added to br-int with only the Interface marked.
fn plug_as_kuryr_libnetwork(endpoint: &str, port_id: &str, mac: &str) -> (String, String) {
    let host = kuryr_binding::kuryr_libnetwork_host_ifname(port_id);
    let cont = format!("t_c{}", &port_id[..11]);
    run(
        "ip",
        &["link", "add", &host, "type", "veth", "peer", "name", &cont],
    );
    run("ip", &["link", "set", &host, "up"]);
    run(
        "ovs-vsctl",
        &[
            "--",
            "--may-exist",
            "add-port",
            BRIDGE,
            &host,
            "--",
            "set",
            "interface",
            &host,
            &format!("external_ids:attached-mac={mac}"),
            &format!("external_ids:iface-id={port_id}"),
            &format!("external_ids:vm-uuid={endpoint}"),
            "external_ids:iface-status=active",
            "external_ids:owner=kuryr",
        ],
    );
    (host, cont)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn unplug_removes_the_port_kuryr_libnetwork_plugged_for_the_endpoint_only() {
    require_ovs();
    let b = binding().await;
    b.set_host(&format!("host-{}", suffix()));
    let (ep, other_ep) = (endpoint_id(), endpoint_id());
    let (port_id, other_port) = (
        uuid::Uuid::new_v4().hyphenated().to_string(),
        uuid::Uuid::new_v4().hyphenated().to_string(),
    );
    let _cleanup = EndpointCleanup {
        host_ifname: kuryr_binding::kuryr_libnetwork_host_ifname(&port_id),
    };
    let _cleanup_other = EndpointCleanup {
        host_ifname: kuryr_binding::kuryr_libnetwork_host_ifname(&other_port),
    };
    let mac = mac();
    let (host, cont) = plug_as_kuryr_libnetwork(&ep, &port_id, &mac);
    let (other_host, _) = plug_as_kuryr_libnetwork(&other_ep, &other_port, &support::mac());

    // list() reports it, whatever host name this binding has: kuryr-libnetwork marks none.
    let listed = b.list().await.unwrap();
    let found = listed
        .iter()
        .find(|p| p.endpoint_id == ep)
        .expect("kuryr-libnetwork's port listed");
    assert_eq!(found.plugged_by, kuryr_binding::PluggedBy::KuryrLibnetwork);
    assert_eq!(found.host_ifname, host);
    assert_eq!(found.iface_id, port_id);
    assert_eq!(found.mac, mac);
    assert_eq!(found.bridge.as_deref(), Some(BRIDGE));
    assert!(found.veth_exists, "{found:?}");

    // Unplugging the endpoint (DeleteEndpoint) removes its OVS port and veth, and no other.
    b.unplug(&ep).await.expect("unplug");
    assert!(!ovs_row_exists("Port", &host));
    assert!(!ovs_row_exists("Interface", &host));
    assert!(!link_exists(&host));
    assert!(!link_exists(&cont));
    assert!(ovs_row_exists("Port", &other_host));
    assert!(link_exists(&other_host));
    b.unplug(&ep).await.expect("unplug again");
    assert!(!b.list().await.unwrap().iter().any(|p| p.endpoint_id == ep));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn list_shows_only_the_ports_of_its_own_control_plane() {
    require_ovs();
    let host = format!("host-{}", suffix());
    let (neutron, ovn, unmarked) = (binding().await, binding().await, binding().await);
    for b in [&neutron, &ovn, &unmarked] {
        b.set_host(&host);
    }
    neutron.set_backend("neutron");
    ovn.set_backend("ovn");
    let (ep_n, ep_old) = (endpoint_id(), endpoint_id());
    let _cleanup = EndpointCleanup::new(&ep_n);
    let _cleanup_old = EndpointCleanup::new(&ep_old);
    neutron
        .plug(&request(&ep_n, &format!("lsp-{}", suffix()), &mac(), 1500))
        .await
        .unwrap();
    // A port plugged by a kuryr from before the mark: the OVN mode's.
    unmarked
        .plug(&request(
            &ep_old,
            &format!("lsp-{}", suffix()),
            &mac(),
            1500,
        ))
        .await
        .unwrap();
    let port_ext = ovs_map(
        &ovs_column(
            "Port",
            &kuryr_binding::host_ifname(&ep_n).unwrap(),
            "external_ids",
        )
        .unwrap(),
    );
    assert_eq!(
        port_ext.get("kuryr-backend").map(String::as_str),
        Some("neutron")
    );
    let listed = |b: &OvsBinding| {
        let b = b.clone();
        async move {
            b.list()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.endpoint_id)
                .collect::<Vec<_>>()
        }
    };
    // Both modes on one host (a host being moved, or this lab): the OVN mode's
    // reconciliation must not see the Neutron mode's ports, whose endpoints Northbound does
    // not know, nor the other way round.
    let (n, o) = (listed(&neutron).await, listed(&ovn).await);
    assert!(n.contains(&ep_n) && !n.contains(&ep_old), "{n:?}");
    assert!(o.contains(&ep_old) && !o.contains(&ep_n), "{o:?}");
    neutron.unplug(&ep_n).await.unwrap();
    unmarked.unplug(&ep_old).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn plug_again_recreates_a_veth_that_vanished() {
    require_ovs();
    let b = binding().await;
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let mac = mac();
    let req = request(&ep, &format!("lsp-{}", suffix()), &mac, 1400);
    let plugged = b.plug(&req).await.unwrap();
    // What a reboot does: the OVS database keeps the port, the veth is gone.
    run("ip", &["link", "del", &plugged.host_ifname]);

    b.plug(&req).await.expect("plug again repairs");
    let cont = link(&plugged.container_ifname).expect("container end recreated");
    assert_eq!(cont["address"], mac.as_str());
    assert_eq!(cont["mtu"], 1400);
    assert!(ovs_row_exists("Port", &plugged.host_ifname));
    b.unplug(&ep).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn concurrent_plugs_all_land_and_a_doubled_plug_makes_one_port() {
    require_ovs();
    let b = binding().await;
    let eps: Vec<String> = (0..8).map(|_| endpoint_id()).collect();
    let _cleanups: Vec<EndpointCleanup> = eps.iter().map(|e| EndpointCleanup::new(e)).collect();
    let reqs: Vec<PlugRequest> = eps
        .iter()
        .map(|e| request(e, &format!("lsp-{}", suffix()), &mac(), 1442))
        .collect();
    // Every endpoint twice at once, as a Docker retry racing the first call would.
    let tasks: Vec<_> = reqs
        .iter()
        .chain(reqs.iter())
        .map(|r| {
            let (b, r) = (b.clone(), r.clone());
            tokio::spawn(async move { b.plug(&r).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("concurrent plug");
    }
    for e in &eps {
        let host = kuryr_binding::host_ifname(e).unwrap();
        assert!(link_exists(&host), "{host}");
        let ports = run(
            "ovs-vsctl",
            &["--columns=name", "find", "Port", &format!("name={host}")],
        );
        assert_eq!(
            ports.lines().filter(|l| l.contains(&host)).count(),
            1,
            "{ports}"
        );
    }
    let tasks: Vec<_> = eps
        .iter()
        .map(|e| {
            let (b, e) = (b.clone(), e.clone());
            tokio::spawn(async move { b.unplug(&e).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("concurrent unplug");
    }
    for e in &eps {
        let host = kuryr_binding::host_ifname(e).unwrap();
        assert!(
            !link_exists(&host) && !ovs_row_exists("Port", &host),
            "{host} left"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn a_plug_whose_caller_gives_up_still_completes() {
    require_ovs();
    let b = binding().await;
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let host = kuryr_binding::host_ifname(&ep).unwrap();
    let req = request(&ep, &format!("lsp-{}", suffix()), &mac(), 1500);
    // What axum does when Docker closes the connection: the handler's future is dropped.
    let gave_up = tokio::time::timeout(Duration::from_micros(1), b.plug(&req)).await;
    assert!(gave_up.is_err(), "plug finished within a microsecond");
    wait_until(
        "the abandoned plug to finish",
        Duration::from_secs(5),
        || link_exists(&host) && ovs_row_exists("Port", &host),
    );
    b.unplug(&ep).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn connect_names_a_missing_bridge_and_the_fix() {
    require_ovs();
    let name = format!("kt{}", suffix());
    let err = match OvsBinding::connect(OVS_DB, &name).await {
        Ok(_) => panic!("connected to a bridge that does not exist"),
        Err(e) => e,
    };
    assert_eq!(
        err.to_string(),
        format!(
            "integration bridge {name} not found in {OVS_DB}: run `kuryr host init` or create it"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn plug_onto_a_bridge_that_vanished_leaves_no_veth() {
    require_ovs();
    let bridge = TestBridge::new();
    let b = OvsBinding::connect(OVS_DB, &bridge.name).await.unwrap();
    run("ovs-vsctl", &["del-br", &bridge.name]);
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let host = kuryr_binding::host_ifname(&ep).unwrap();
    let cont = kuryr_binding::container_ifname(&ep).unwrap();

    // The veth is created first (the bridge was there at connect), then the transaction finds
    // the bridge gone: the veth must go too.
    let err = b
        .plug(&request(&ep, &format!("lsp-{}", suffix()), &mac(), 1500))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&bridge.name),
        "the error should name the bridge: {err}"
    );
    assert!(!link_exists(&host), "{host} left behind after: {err}");
    assert!(!link_exists(&cont), "{cont} left behind after: {err}");
    assert!(!ovs_row_exists("Port", &host));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn plug_refuses_a_port_of_the_same_name_and_creates_nothing() {
    require_ovs();
    let b = binding().await;
    let ep = endpoint_id();
    let host = kuryr_binding::host_ifname(&ep).unwrap();
    let cont = kuryr_binding::container_ifname(&ep).unwrap();
    let _foreign = ForeignPort::new(BRIDGE, &host, &host);
    let _cleanup = EndpointCleanup::new(&ep);

    let err = b
        .plug(&request(&ep, &format!("lsp-{}", suffix()), &mac(), 1500))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::Conflict { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "OVS port {host} already exists on bridge {BRIDGE}"
        )) && msg.contains("(owner test)"),
        "{msg}"
    );
    assert!(
        !link_exists(&host) && !link_exists(&cont),
        "a veth was created: {msg}"
    );

    // unplug leaves a port that is not kuryr's alone, and says so.
    let err = b.unplug(&ep).await.unwrap_err();
    assert!(err.to_string().contains("not unplugging it"), "{err}");
    assert!(ovs_row_exists("Port", &host));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn plug_refuses_an_interface_of_the_same_name_in_another_port() {
    require_ovs();
    let b = binding().await;
    let ep = endpoint_id();
    let host = kuryr_binding::host_ifname(&ep).unwrap();
    let cont = kuryr_binding::container_ifname(&ep).unwrap();
    // An Interface with our name inside a port with another name.
    let _foreign = ForeignPort::new(BRIDGE, &format!("kt{}", suffix()), &host);
    let _cleanup = EndpointCleanup::new(&ep);

    let err = b
        .plug(&request(&ep, &format!("lsp-{}", suffix()), &mac(), 1500))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("OVS interface {host} already exists")),
        "{err}"
    );
    assert!(
        !link_exists(&host) && !link_exists(&cont),
        "veth left behind after: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn wait_ready_without_a_logical_port_times_out_and_says_why() {
    require_ovn();
    let b = binding().await;
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let iface_id = format!("lsp-missing-{}", suffix());
    b.plug(&request(&ep, &iface_id, &mac(), 1442))
        .await
        .unwrap();

    let start = Instant::now();
    let err = b.wait_ready(&ep, Duration::from_secs(2)).await.unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, BindingError::NotReady { .. }), "{err}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let msg = err.to_string();
    for part in [
        ep.as_str(),
        iface_id.as_str(),
        "Logical_Switch_Port",
        "ovn-controller",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }

    // And an endpoint that was never plugged is named as such at once.
    let never = endpoint_id();
    let err = b
        .wait_ready(&never, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, BindingError::NotPlugged { .. }), "{err}");
    b.unplug(&ep).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn wait_ready_returns_once_the_logical_port_exists() {
    require_ovn();
    let b = binding().await;
    let ls = Switch::new();
    let ep = endpoint_id();
    let _cleanup = EndpointCleanup::new(&ep);
    let mac = mac();
    let lsp = format!("{}-late", ls.name);
    b.plug(&request(&ep, &lsp, &mac, 1442)).await.unwrap();

    // The logical port appears while wait_ready is already waiting.
    let waiter = {
        let b = b.clone();
        let ep = ep.clone();
        tokio::spawn(async move { b.wait_ready(&ep, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "ready before the logical port existed"
    );
    run("ovn-nbctl", &["lsp-add", &ls.name, &lsp]);
    run("ovn-nbctl", &["lsp-set-addresses", &lsp, &mac]);
    waiter.await.unwrap().expect("ready once the LSP exists");

    let ext = ovs_map(
        &ovs_column(
            "Interface",
            &kuryr_binding::host_ifname(&ep).unwrap(),
            "external_ids",
        )
        .unwrap(),
    );
    assert_eq!(ext.get("ovn-installed").map(String::as_str), Some("true"));
    assert!(b
        .list()
        .await
        .unwrap()
        .iter()
        .any(|p| p.endpoint_id == ep && p.ovn_installed));
    b.unplug(&ep).await.unwrap();
}

/// Two endpoints, plugged and moved into namespaces of their own like Docker does, with their
/// logical ports on `switch_a` and `switch_b`. Returns whether A pings B.
async fn ping_between(b: &OvsBinding, switch_a: &Switch, switch_b: &Switch) -> bool {
    let (ep_a, ep_b) = (endpoint_id(), endpoint_id());
    let _clean_a = EndpointCleanup::new(&ep_a);
    let _clean_b = EndpointCleanup::new(&ep_b);
    let (mac_a, mac_b) = (mac(), mac());
    let (ip_a, ip_b) = ("10.251.0.11", "10.251.0.12");
    let lsp_a = switch_a.add_port(&format!("{mac_a} {ip_a}"));
    let lsp_b = switch_b.add_port(&format!("{mac_b} {ip_b}"));
    let ns_a = Netns::new();
    let ns_b = Netns::new();

    let a = b.plug(&request(&ep_a, &lsp_a, &mac_a, 1442)).await.unwrap();
    let bb = b.plug(&request(&ep_b, &lsp_b, &mac_b, 1442)).await.unwrap();
    ns_a.take(&a.container_ifname, &format!("{ip_a}/24"));
    ns_b.take(&bb.container_ifname, &format!("{ip_b}/24"));
    b.wait_ready(&ep_a, Duration::from_secs(20)).await.unwrap();
    b.wait_ready(&ep_b, Duration::from_secs(20)).await.unwrap();

    let ok = ns_a.ping(ip_b);

    // Unplug while the container ends are still inside the namespaces (Docker 20.10's order).
    b.unplug(&ep_a).await.unwrap();
    b.unplug(&ep_b).await.unwrap();
    assert!(
        !status(
            "ip",
            &["-n", &ns_a.name, "link", "show", &a.container_ifname]
        ),
        "container end survived unplug"
    );
    assert!(!link_exists(&a.host_ifname) && !link_exists(&bb.host_ifname));
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn endpoints_on_one_logical_switch_ping_each_other() {
    require_ovn();
    let b = binding().await;
    let ls = Switch::new();
    assert!(
        ping_between(&b, &ls, &ls).await,
        "no ping between two ports of one logical switch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn endpoints_on_different_logical_switches_do_not_ping() {
    require_ovn();
    let b = binding().await;
    let (ls1, ls2) = (Switch::new(), Switch::new());
    assert!(
        !ping_between(&b, &ls1, &ls2).await,
        "ping crossed from one logical switch to another"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn host_facts_come_from_the_local_open_vswitch() {
    require_ovs();
    let b = binding().await;
    let system_id = run(
        "ovs-vsctl",
        &["get", "Open_vSwitch", ".", "external_ids:system-id"],
    );
    assert_eq!(b.chassis_name().unwrap(), system_id.trim_matches('"'));
    let encap = run(
        "ovs-vsctl",
        &["get", "Open_vSwitch", ".", "external_ids:ovn-encap-type"],
    );
    let want = kuryr_binding::parse_encaps(encap.trim_matches('"')).unwrap();
    assert_eq!(b.encaps().unwrap(), want);
    assert_eq!(b.bridge(), BRIDGE);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the lab (make test)"]
async fn plug_and_wait_ready_timings() {
    require_ovn();
    const N: usize = 20;
    let b = binding().await;
    let ls = Switch::new();
    let mut cleanups = Vec::new();
    let (mut plug_t, mut ready_t, mut unplug_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut eps = Vec::new();
    for _ in 0..N {
        let ep = endpoint_id();
        cleanups.push(EndpointCleanup::new(&ep));
        let mac = mac();
        let lsp = ls.add_port(&mac);
        let t = Instant::now();
        b.plug(&request(&ep, &lsp, &mac, 1442)).await.unwrap();
        plug_t.push(t.elapsed());
        let t = Instant::now();
        b.wait_ready(&ep, Duration::from_secs(20)).await.unwrap();
        ready_t.push(t.elapsed());
        eps.push(ep);
    }
    for ep in &eps {
        let t = Instant::now();
        b.unplug(ep).await.unwrap();
        unplug_t.push(t.elapsed());
    }
    let max = |v: &Vec<Duration>| *v.iter().max().unwrap();
    eprintln!(
        "{N} endpoints: plug median {:?} (max {:?}), wait_ready median {:?} (max {:?}), unplug median {:?} (max {:?})",
        median(plug_t.clone()),
        max(&plug_t),
        median(ready_t.clone()),
        max(&ready_t),
        median(unplug_t.clone()),
        max(&unplug_t),
    );
}
