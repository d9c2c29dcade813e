//! The daemon's answers to the exact requests Docker sends (see DOCKER-PROTOCOL.md), against a
//! real kuryr daemon, posted by hand so every field and error text is ours to choose. Each test
//! gives the daemon a private Northbound (a standalone ovsdb-server in a temporary directory), so
//! the lab's Northbound is never touched and the server can be killed. Tests that plug endpoints
//! use the real Open vSwitch bridge br-int; the others give the daemon a private Open_vSwitch
//! database too, because every kuryr start reconciles the bridge it is given and removes the
//! kuryr ports whose endpoint its own Northbound does not know. Run by `make test` (ignored by a
//! bare `cargo test`: they need root and the lab).
mod common;

use common::*;
use kuryr_testlab::{Server, NB_SCHEMA, VSWITCH_SCHEMA};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tests that plug into the real br-int take this: a daemon starting on another private
/// Northbound would remove their ports as orphans.
static BR_INT: Mutex<()> = Mutex::new(());

fn br_int() -> std::sync::MutexGuard<'static, ()> {
    BR_INT.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private OVN Northbound: a standalone ovsdb-server on a unix socket in a temporary directory.
struct PrivateNb {
    server: Server,
    _dir: tempfile::TempDir,
}

impl PrivateNb {
    fn new() -> PrivateNb {
        kuryr_testlab::require_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::standalone(dir.path(), "nb", NB_SCHEMA);
        PrivateNb { server, _dir: dir }
    }

    fn remote(&self) -> String {
        self.server.unix_remote()
    }

    /// Every row of `table`, read with `ovsdb-client` (no ovn-nbctl defaults involved), but
    /// the routing skeleton a daemon makes at start and each network's gateway peer port.
    fn rows(&self, table: &str) -> Vec<serde_json::Map<String, Value>> {
        let skeleton = |name: &str| {
            name == "kuryr-join"
                || name == "kuryr-mgmt"
                || name.starts_with("kuryr-join-")
                || name.starts_with("kuryr-rtr-")
        };
        select(&self.remote(), "OVN_Northbound", table)
            .into_iter()
            .filter(|r| !r.get("name").and_then(Value::as_str).is_some_and(skeleton))
            .collect()
    }

    /// The addresses of every Address_Set, with the set's name.
    fn address_sets(&self) -> BTreeMap<String, Vec<String>> {
        self.rows("Address_Set")
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_string(),
                    set_atoms(&r["addresses"]),
                )
            })
            .collect()
    }

    fn names(&self, table: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .rows(table)
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    }
}

/// A private Open_vSwitch database with a br-int, for daemons that never plug a port: their
/// start-up reconciliation then sees no port of the real bridge.
struct PrivateOvs {
    server: Server,
    _dir: tempfile::TempDir,
}

impl PrivateOvs {
    fn new() -> PrivateOvs {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::standalone(dir.path(), "conf", VSWITCH_SCHEMA);
        let db = format!("--db={}", server.unix_remote());
        let out = run(Command::new("ovs-vsctl").args([
            &db,
            "--timeout=10",
            "--no-wait",
            "--",
            "init",
            "--",
            "add-br",
            "br-int",
            "--",
            "set",
            "Open_vSwitch",
            ".",
            "external_ids:ovn-encap-type=geneve",
        ]));
        assert!(
            out.status.success(),
            "set up a private Open_vSwitch database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PrivateOvs { server, _dir: dir }
    }
}

/// Selects every row of `table` over OVSDB's JSON-RPC, through `ovsdb-client transact`.
fn select(remote: &str, db: &str, table: &str) -> Vec<serde_json::Map<String, Value>> {
    let q = json!([db, {"op": "select", "table": table, "where": []}]).to_string();
    let out = run(Command::new("ovsdb-client").args(["--timeout=10", "transact", remote, &q]));
    assert!(
        out.status.success(),
        "ovsdb-client select {table}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ovsdb-client prints JSON");
    v[0]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("select {table}: {v}"))
        .iter()
        .map(|r| r.as_object().cloned().unwrap_or_default())
        .collect()
}

/// The atoms of an OVSDB set column: a lone atom, or `["set", [...]]`.
fn set_atoms(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.first() == Some(&json!("set")) => a[1]
            .as_array()
            .map(|x| {
                x.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The pairs of an OVSDB map column: `["map", [[k, v], ...]]`.
fn map_atoms(v: &Value) -> BTreeMap<String, String> {
    v[1].as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A kuryr daemon on `nb`, with its own host name; on the real br-int unless `ovs` is given.
fn daemon(nb: &PrivateNb, ovs: Option<&PrivateOvs>) -> Daemon {
    let host = unique("kuryr-proto-host");
    let nb = nb.remote();
    let mut args = vec![
        "--nb",
        nb.as_str(),
        "--bridge",
        "br-int",
        "--host",
        host.as_str(),
    ];
    let ovsdb = ovs.map(|o| o.server.unix_remote());
    if let Some(o) = &ovsdb {
        args.extend(["--ovsdb", o.as_str()]);
    }
    Daemon::start(&args)
}

/// Posts `body` (a JSON value, sent with Docker's trailing newline) and expects 200.
fn ok(d: &Daemon, path: &str, body: Value) -> Value {
    let (status, reply) = d.call(path, &format!("{body}\n"));
    assert_eq!(status, 200, "{path} {body}: {reply}");
    assert!(
        reply.get("Err").is_none() && reply.get("Error").is_none(),
        "{path}: 200 with an error: {reply}"
    );
    reply
}

/// Posts a raw body and expects HTTP 500 with a non-empty `Err`; returns it.
fn fails(d: &Daemon, path: &str, body: &str) -> String {
    let (status, reply) = d.call(path, body);
    assert_eq!(status, 500, "{path} {body}: {reply}");
    let err = reply["Err"].as_str().unwrap_or_default().to_string();
    assert!(!err.is_empty(), "{path} {body}: no Err in {reply}");
    err
}

fn request_pool(d: &Daemon, pool: &str) -> String {
    let r = ok(
        d,
        "/IpamDriver.RequestPool",
        json!({"AddressSpace": "no_address_space", "Pool": pool, "SubPool": "", "Options": {}, "V6": false}),
    );
    assert_eq!(r["Pool"], pool, "{r}");
    r["PoolID"]
        .as_str()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| panic!("no PoolID: {r}"))
        .to_string()
}

fn request_gateway(d: &Daemon, pool_id: &str) -> String {
    let r = ok(
        d,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    r["Address"].as_str().unwrap_or_default().to_string()
}

fn request_address(d: &Daemon, pool_id: &str, preferred: &str) -> String {
    let r = ok(
        d,
        "/IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": preferred, "Options": null}),
    );
    r["Address"].as_str().unwrap_or_default().to_string()
}

/// A pool of `cidr`, its gateway and the network `network_id` on it: the pool's id.
fn pool_and_network(d: &Daemon, network_id: &str, cidr: &str) -> String {
    let pool = request_pool(d, cidr);
    let gw = request_gateway(d, &pool);
    create_network(d, network_id, cidr, &gw);
    pool
}

/// A network on a new pool of `cidr`, and an endpoint of it with an address from that pool:
/// the pool id and the address.
fn endpoint_on_new_network(
    d: &Daemon,
    network_id: &str,
    endpoint_id: &str,
    cidr: &str,
) -> (String, String) {
    let pool = pool_and_network(d, network_id, cidr);
    let address = request_address(d, &pool, "");
    ok(
        d,
        "/NetworkDriver.CreateEndpoint",
        create_endpoint_body(network_id, endpoint_id, &address),
    );
    (pool, address)
}

/// Runs a command that must succeed (its stderr is the failure message).
fn must(args: &[&str]) {
    let out = run(Command::new(args[0]).args(&args[1..]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create_network(d: &Daemon, network_id: &str, pool: &str, gateway: &str) {
    let r = ok(
        d,
        "/NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": network_id,
            "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": "no_address_space", "Pool": pool, "Gateway": gateway, "AuxAddresses": null}],
            "IPv6Data": []
        }),
    );
    assert_eq!(r, json!({}));
}

/// CreateEndpoint as Docker sends it for `docker run` without `--mac-address`.
fn create_endpoint_body(network_id: &str, endpoint_id: &str, address: &str) -> Value {
    json!({
        "NetworkID": network_id,
        "EndpointID": endpoint_id,
        "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""},
        "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}
    })
}

fn endpoint_ref(network_id: &str, endpoint_id: &str) -> Value {
    json!({"NetworkID": network_id, "EndpointID": endpoint_id})
}

/// The host side kuryr creates for an endpoint: its veth's host end, also its OVS port name.
fn link_exists(ifname: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", ifname])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// OVS Interfaces that record `endpoint_id` as theirs, in any bridge.
fn ovs_interfaces_of(endpoint_id: &str) -> Vec<String> {
    let out = run(Command::new("ovs-vsctl").args([
        "--timeout=10",
        "--bare",
        "--columns=name",
        "find",
        "Interface",
        &format!("external_ids:vm-uuid={endpoint_id}"),
    ]));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

// ---- discovery ------------------------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn activate_and_both_get_capabilities_answer_empty_bodies_as_promised() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));
    let (status, v) = d.call("/Plugin.Activate", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
    let (status, v) = d.call("/NetworkDriver.GetCapabilities", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Scope"], "local", "{v}");
    let (status, v) = d.call("/IpamDriver.GetCapabilities", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["RequiresRequestReplay"], false, "{v}");
    assert_eq!(v["RequiresMACAddress"], false, "{v}");
    let (status, v) = d.call("/IpamDriver.GetDefaultAddressSpaces", "");
    assert_eq!(status, 200, "{v}");
    assert!(
        v["LocalDefaultAddressSpace"].is_string() && v["GlobalDefaultAddressSpace"].is_string(),
        "{v}"
    );
}

// ---- a whole Docker sequence ---------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn network_create_run_stop_and_rm_by_hand_leave_northbound_and_br_int_as_before() {
    require_lab();
    let _g = br_int();
    let nb = PrivateNb::new();
    let d = daemon(&nb, None);
    let (net, ep) = (docker_id(), docker_id());
    let tap = host_ifname(&ep);
    let before = ovs_ports();
    let _host = HostSide(vec![ep.clone()]);

    // docker network create --subnet 10.171.0.0/24
    let pool_id = request_pool(&d, "10.171.0.0/24");
    let gateway = request_gateway(&d, &pool_id);
    assert_eq!(gateway, "10.171.0.1/24");
    create_network(&d, &net, "10.171.0.0/24", &gateway);
    let ls = nb.rows("Logical_Switch");
    assert_eq!(ls.len(), 1, "one logical switch: {ls:?}");
    let ext = map_atoms(&ls[0]["external_ids"]);
    assert_eq!(
        ext.get("kuryr:subnet_v4").map(String::as_str),
        Some("10.171.0.0/24"),
        "{ext:?}"
    );
    // Docker sends the gateway in CIDR form; the switch keeps the plain address.
    assert_eq!(
        ext.get("kuryr:gateway_v4").map(String::as_str),
        Some("10.171.0.1"),
        "{ext:?}"
    );

    // docker run --net
    let address = request_address(&d, &pool_id, "");
    assert_eq!(address, "10.171.0.2/24", "the lowest free address");
    let reply = ok(
        &d,
        "/NetworkDriver.CreateEndpoint",
        create_endpoint_body(&net, &ep, &address),
    );
    // Only MacAddress, which Docker left empty: echoing the address would make Docker fail.
    assert_eq!(
        reply,
        json!({"Interface": {"MacAddress": "0a:58:0a:ab:00:02"}}),
        "CreateEndpoint reply"
    );
    let lsp = nb.rows("Logical_Switch_Port");
    assert_eq!(lsp.len(), 1, "{lsp:?}");
    assert_eq!(lsp[0]["name"], ep.as_str());
    assert_eq!(
        set_atoms(&lsp[0]["addresses"]),
        ["0a:58:0a:ab:00:02 10.171.0.2"]
    );
    assert!(ovs_ports().contains(&tap), "{tap} is not a port of br-int");
    assert!(link_exists(&tap), "veth {tap} does not exist");
    let info = ok(
        &d,
        "/NetworkDriver.EndpointOperInfo",
        endpoint_ref(&net, &ep),
    );
    assert_eq!(info["Value"]["logical_port"], ep.as_str(), "{info}");
    assert_eq!(info["Value"]["mac_address"], "0a:58:0a:ab:00:02", "{info}");

    // container stop: DeleteEndpoint may come twice.
    for _ in 0..2 {
        let r = ok(&d, "/NetworkDriver.DeleteEndpoint", endpoint_ref(&net, &ep));
        assert_eq!(r, json!({}));
    }
    assert!(!ovs_ports().contains(&tap), "{tap} is still on br-int");
    // The kernel deletes the veth in the background.
    wait_until(
        &format!("veth {tap} deleted"),
        Duration::from_secs(5),
        || !link_exists(&tap),
    );
    assert!(nb.rows("Logical_Switch_Port").is_empty());
    let r = ok(
        &d,
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": "10.171.0.2"}),
    );
    assert_eq!(r, json!({}));

    // docker network rm
    let r = ok(
        &d,
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": "10.171.0.1"}),
    );
    assert_eq!(r, json!({}));
    assert_eq!(
        ok(&d, "/IpamDriver.ReleasePool", json!({"PoolID": pool_id})),
        json!({})
    );
    assert_eq!(
        ok(
            &d,
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": net})
        ),
        json!({})
    );

    assert!(
        nb.names("Logical_Switch").is_empty(),
        "{:?}",
        nb.rows("Logical_Switch")
    );
    assert!(nb.rows("Logical_Switch_Port").is_empty());
    assert!(nb.address_sets().is_empty(), "{:?}", nb.address_sets());
    // Other runs may plug and unplug on br-int meanwhile: judge only what this test created.
    let after = ovs_ports();
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        !after.contains(&tap) && ovs_interfaces_of(&ep).is_empty(),
        "br-int kept this test's port {tap}; ports new since the start: {new:?}"
    );
}

// ---- bad requests ---------------------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn malformed_requests_get_500_naming_the_call_and_field() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));

    let err = fails(&d, "/IpamDriver.RequestPool", "{\"Pool\": \n");
    assert!(err.contains("RequestPool: malformed JSON"), "{err}");

    let err = fails(&d, "/IpamDriver.RequestPool", "{\"Pool\": 5}\n");
    assert!(
        err.starts_with("RequestPool: Pool: invalid type: integer `5`"),
        "{err}"
    );

    let err = fails(
        &d,
        "/IpamDriver.RequestPool",
        "{\"AddressSpace\":\"\",\"Pool\":\"10.1.0.0/33\",\"SubPool\":\"\",\"Options\":{},\"V6\":false}\n",
    );
    assert!(
        err.contains("RequestPool: Pool \"10.1.0.0/33\": not an address in CIDR form"),
        "{err}"
    );

    let body = json!({
        "NetworkID": "not-a-docker-id",
        "Options": {},
        "IPv4Data": [{"AddressSpace": "", "Pool": "10.173.0.0/24", "Gateway": "10.173.0.1/24"}],
        "IPv6Data": []
    });
    let err = fails(&d, "/NetworkDriver.CreateNetwork", &format!("{body}\n"));
    assert!(
        err.contains("CreateNetwork: NetworkID \"not-a-docker-id\""),
        "{err}"
    );
    assert!(nb.names("Logical_Switch").is_empty(), "nothing was created");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn requests_about_objects_kuryr_does_not_know_get_500_naming_them() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));
    let (net, ep) = (docker_id(), docker_id());

    let body = create_endpoint_body(&net, &ep, "10.174.0.2/24");
    let err = fails(&d, "/NetworkDriver.CreateEndpoint", &format!("{body}\n"));
    assert!(
        err.contains(&format!("network {} is not known to kuryr", &net[..12])),
        "{err}"
    );

    let join = json!({"NetworkID": net, "EndpointID": ep, "SandboxKey": "/var/run/docker/netns/0123456789ab", "Options": {}});
    let err = fails(&d, "/NetworkDriver.Join", &format!("{join}\n"));
    assert!(
        err.contains(&format!("endpoint {} is not known to kuryr", &ep[..12])),
        "{err}"
    );
    let err = fails(
        &d,
        "/NetworkDriver.EndpointOperInfo",
        &format!("{}\n", endpoint_ref(&net, &ep)),
    );
    assert!(
        err.contains(&format!("endpoint {} is not known", &ep[..12])),
        "{err}"
    );

    let body = json!({"PoolID": "default@10.0.0.0/8", "Address": "", "Options": {}});
    let err = fails(&d, "/IpamDriver.RequestAddress", &format!("{body}\n"));
    assert!(
        err.contains("pool id \"default@10.0.0.0/8\" is not one kuryr handed out"),
        "{err}"
    );

    // A typo in a kuryr option must not silently create a network without it.
    let body = json!({
        "NetworkID": net,
        "Options": {"com.docker.network.generic": {"kuryr.net.nmae": "blue"}},
        "IPv4Data": [{"AddressSpace": "", "Pool": "10.174.0.0/24", "Gateway": "10.174.0.1/24"}],
        "IPv6Data": []
    });
    let err = fails(&d, "/NetworkDriver.CreateNetwork", &format!("{body}\n"));
    assert!(err.contains("unknown option kuryr.net.nmae"), "{err}");
    assert!(nb.names("Logical_Switch").is_empty(), "nothing was created");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn addresses_kuryr_cannot_hand_out_get_500_with_the_reason() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));
    let pool = request_pool(&d, "10.175.0.0/24");

    for outside in ["10.99.0.5", "10.175.0.255", "10.175.0.0"] {
        let body = json!({"PoolID": pool, "Address": outside, "Options": {}});
        let err = fails(&d, "/IpamDriver.RequestAddress", &format!("{body}\n"));
        assert!(
            err.contains(&format!(
                "address {outside} is not a usable address of subnet 10.175.0.0/24"
            )),
            "{err}"
        );
    }

    assert_eq!(request_address(&d, &pool, "10.175.0.5"), "10.175.0.5/24");
    let body = json!({"PoolID": pool, "Address": "10.175.0.5", "Options": {}});
    let err = fails(&d, "/IpamDriver.RequestAddress", &format!("{body}\n"));
    assert!(
        err.contains("address 10.175.0.5 is already in use in pool 10.175.0.0/24"),
        "{err}"
    );

    // A /30 has two host addresses.
    let small = request_pool(&d, "10.175.1.0/30");
    assert_eq!(request_address(&d, &small, ""), "10.175.1.1/30");
    assert_eq!(request_address(&d, &small, ""), "10.175.1.2/30");
    let body = json!({"PoolID": small, "Address": "", "Options": {}});
    let err = fails(&d, "/IpamDriver.RequestAddress", &format!("{body}\n"));
    assert!(
        err.contains("pool 10.175.1.0/30 has no free address"),
        "{err}"
    );
    let sets = nb.address_sets();
    let held: Vec<&String> = sets.values().flatten().collect();
    assert_eq!(
        held.len(),
        3,
        "only the granted addresses are held: {sets:?}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn an_unknown_method_gets_404_with_a_json_body() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));
    let (status, v) = d.call("/NetworkDriver.Frobnicate", "{}\n");
    assert_eq!(status, 404, "{v}");
    let err = v["Err"].as_str().unwrap_or_default();
    assert!(err.contains("NetworkDriver.Frobnicate"), "{v}");
}

// ---- Docker's retries -----------------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn create_endpoint_sent_twice_leaves_one_logical_port_and_one_ovs_port() {
    require_lab();
    let _g = br_int();
    let nb = PrivateNb::new();
    let d = daemon(&nb, None);
    let (net, ep) = (docker_id(), docker_id());
    let tap = host_ifname(&ep);
    let _host = HostSide(vec![ep.clone()]);
    let pool = pool_and_network(&d, &net, "10.176.0.0/24");
    let address = request_address(&d, &pool, "");
    let body = format!("{}\n", create_endpoint_body(&net, &ep, &address));

    let (s1, r1) = d.call("/NetworkDriver.CreateEndpoint", &body);
    assert_eq!(s1, 200, "{r1}");
    let (s2, r2) = d.call("/NetworkDriver.CreateEndpoint", &body);
    match s2 {
        200 => assert_eq!(r2, r1, "the retry answers as the first call did"),
        500 => assert!(r2["Err"].as_str().is_some_and(|e| !e.is_empty()), "{r2}"),
        other => panic!("second CreateEndpoint answered {other}: {r2}"),
    }
    assert_eq!(
        nb.names("Logical_Switch_Port"),
        [ep.as_str()],
        "logical ports in Northbound"
    );
    assert_eq!(
        ovs_interfaces_of(&ep),
        [tap.as_str()],
        "OVS ports of the endpoint"
    );
    assert_eq!(
        ovs_ports().iter().filter(|p| **p == tap).count(),
        1,
        "{tap} on br-int"
    );
    assert!(link_exists(&tap));

    ok(&d, "/NetworkDriver.DeleteEndpoint", endpoint_ref(&net, &ep));
    assert!(
        ovs_interfaces_of(&ep).is_empty(),
        "the port went with DeleteEndpoint"
    );
    wait_until(
        "the veth going after DeleteEndpoint",
        Duration::from_secs(5),
        || !link_exists(&tap),
    );
    ok(
        &d,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn delete_endpoint_of_an_endpoint_never_created_answers_empty() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));
    let (net, ep) = (docker_id(), docker_id());
    let r = ok(&d, "/NetworkDriver.DeleteEndpoint", endpoint_ref(&net, &ep));
    assert_eq!(r, json!({}));
}

// ---- two daemons, one Northbound ------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn two_daemons_on_one_northbound_never_hand_out_the_same_address() {
    require_lab();
    let nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let (a, b) = (daemon(&nb, Some(&ovs)), daemon(&nb, Some(&ovs)));
    let pool = request_pool(&a, "10.177.0.0/24");
    assert_eq!(request_pool(&b, "10.177.0.0/24"), pool, "the same PoolID");
    let gw = request_gateway(&a, &pool);
    assert_eq!(request_gateway(&b, &pool), gw, "the pool's one gateway");

    // Both threads start together, so the daemons race for the same lowest free addresses.
    let go = std::sync::Barrier::new(2);
    let take = |d: &Daemon| -> Vec<String> {
        go.wait();
        (0..60).map(|_| request_address(d, &pool, "")).collect()
    };
    let (from_a, from_b) = std::thread::scope(|s| {
        let (ta, tb) = (s.spawn(|| take(&a)), s.spawn(|| take(&b)));
        (ta.join().expect("thread a"), tb.join().expect("thread b"))
    });
    let all: Vec<&String> = from_a.iter().chain(&from_b).collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        120,
        "duplicates between the daemons: a={from_a:?} b={from_b:?}"
    );
    assert!(!distinct.contains(&gw), "the gateway was handed out");

    let sets = nb.address_sets();
    assert_eq!(sets.len(), 1, "{sets:?}");
    let held: HashSet<String> = sets.values().flatten().cloned().collect();
    let mut expected: HashSet<String> = all
        .iter()
        .map(|a| a.trim_end_matches("/24").to_string())
        .collect();
    expected.insert(gw.trim_end_matches("/24").to_string());
    assert_eq!(held.len(), 121, "Address_Set holds {}", held.len());
    assert_eq!(held, expected);
}

// ---- Northbound down and back ---------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn northbound_down_fails_fast_and_kuryr_recovers_when_it_returns() {
    require_lab();
    let mut nb = PrivateNb::new();
    let ovs = PrivateOvs::new();
    let d = daemon(&nb, Some(&ovs));
    let pool = request_pool(&d, "10.178.0.0/24");
    let first = request_address(&d, &pool, "");

    nb.server.kill();
    let body = format!(
        "{}\n",
        json!({"PoolID": pool, "Address": "", "Options": {}})
    );
    let start = Instant::now();
    let (status, reply) = d.call("/IpamDriver.RequestAddress", &body);
    let took = start.elapsed();
    assert_eq!(status, 500, "{reply}");
    let err = reply["Err"].as_str().unwrap_or_default();
    // A call racing the kill may find the connection already down or lose it while waiting
    // for its reply: either way the error names the database and where it was.
    let down = err.contains("OVN_Northbound is not reachable")
        || err.contains("connection to OVN_Northbound at");
    assert!(down && err.contains(&nb.remote()), "{err}");
    assert!(took < Duration::from_secs(1), "the error took {took:?}");

    nb.server.start();
    let start = Instant::now();
    let second = loop {
        let (status, reply) = d.call("/IpamDriver.RequestAddress", &body);
        if status == 200 {
            break reply["Address"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "kuryr did not recover within 10 s of Northbound's return: {reply}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(
        second, first,
        "the address granted before the outage is still held"
    );
}

// ---- crash and restart ----------------------------------------------------------------------

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_daemon_killed_with_sigkill_and_restarted_serves_the_networks_created_before() {
    require_lab();
    let _g = br_int();
    let nb = PrivateNb::new();
    let mut d = daemon(&nb, None);
    let (net, ep) = (docker_id(), docker_id());
    let _host = HostSide(vec![ep.clone()]);
    let pool = pool_and_network(&d, &net, "10.179.0.0/24");
    let before_crash = request_address(&d, &pool, "");

    d.kill9();
    d.spawn();

    // Docker never replays CreateNetwork: the new process finds the network in Northbound.
    let address = request_address(&d, &pool, "");
    assert_ne!(
        address, before_crash,
        "the address granted before the crash is still held"
    );
    let reply = ok(
        &d,
        "/NetworkDriver.CreateEndpoint",
        create_endpoint_body(&net, &ep, &address),
    );
    assert!(reply["Interface"]["MacAddress"].is_string(), "{reply}");
    assert_eq!(ovs_interfaces_of(&ep), [host_ifname(&ep)]);
    ok(&d, "/NetworkDriver.DeleteEndpoint", endpoint_ref(&net, &ep));
    ok(
        &d,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
    assert!(ovs_interfaces_of(&ep).is_empty());
    assert!(nb.names("Logical_Switch").is_empty());
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn restart_reconciliation_removes_only_this_hosts_orphaned_ports_and_reports_missing_ones() {
    require_lab();
    let _g = br_int();
    let (nb1, nb2) = (PrivateNb::new(), PrivateNb::new());
    let mut d1 = daemon(&nb1, None);
    let (net, gone, broken) = (docker_id(), docker_id(), docker_id());
    let _host = HostSide(vec![gone.clone(), broken.clone()]);
    let pool = pool_and_network(&d1, &net, "10.180.0.0/24");
    for ep in [&gone, &broken] {
        let address = request_address(&d1, &pool, "");
        ok(
            &d1,
            "/NetworkDriver.CreateEndpoint",
            create_endpoint_body(&net, ep, &address),
        );
    }

    // Another kuryr (another host, another Northbound) starting on this OVS leaves them alone.
    let d2 = daemon(&nb2, None);
    assert_eq!(
        ovs_interfaces_of(&gone),
        [host_ifname(&gone)],
        "a foreign kuryr unplugged our port"
    );
    drop(d2);

    // While kuryr is down, one endpoint vanishes from Northbound and another loses its veth.
    d1.kill9();
    let out = run(std::process::Command::new("ovn-nbctl")
        .arg(format!("--db={}", nb1.remote()))
        .args(["lsp-del", &gone]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(std::process::Command::new("ip").args(["link", "del", &host_ifname(&broken)]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d1.spawn();

    assert!(
        ovs_interfaces_of(&gone).is_empty(),
        "the orphaned port is still on br-int"
    );
    assert!(
        !link_exists(&host_ifname(&gone)),
        "the orphaned veth is still there"
    );
    let log = d1.log_text();
    assert!(
        log.contains("endpoint has no veth or OVS port") && log.contains(&broken),
        "{log}"
    );
    ok(
        &d1,
        "/NetworkDriver.DeleteEndpoint",
        endpoint_ref(&net, &broken),
    );
    assert!(ovs_interfaces_of(&broken).is_empty());
    // The network goes too, and with it its route on this host.
    ok(
        &d1,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_plug_a_crash_cut_short_is_undone_at_the_next_start() {
    require_lab();
    let _g = br_int();
    let nb = PrivateNb::new();
    let mut d = daemon(&nb, None);
    let (net, cut) = (docker_id(), docker_id());
    let _host = HostSide(vec![cut.clone()]);
    endpoint_on_new_network(&d, &net, &cut, "10.181.0.0/24");
    // What a kill between the veth and the OVS port leaves: the logical port and a veth pair
    // with both ends on the host, in no bridge. Docker got no answer and will never use it.
    d.kill9();
    must(&["ovs-vsctl", "--timeout=10", "del-port", &host_ifname(&cut)]);
    assert!(link_exists(&host_ifname(&cut)));
    d.spawn();
    assert!(
        !link_exists(&host_ifname(&cut)),
        "the veth of the interrupted plug is still there"
    );
    assert!(
        !nb.names("Logical_Switch_Port").contains(&cut),
        "the logical port of the interrupted plug is still there"
    );
    assert!(d.log_text().contains("did not finish"), "{}", d.log_text());
    ok(
        &d,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_veth_unplugged_but_not_yet_deleted_by_a_killed_daemon_goes_at_the_next_start() {
    require_lab();
    let _g = br_int();
    let nb = PrivateNb::new();
    let mut d = daemon(&nb, None);
    let (net, ep, foreign) = (docker_id(), docker_id(), docker_id());
    let _host = HostSide(vec![ep.clone(), foreign.clone()]);
    endpoint_on_new_network(&d, &net, &ep, "10.183.0.0/24");
    // What a kill between a finished DeleteEndpoint and the background deletion of its veth
    // leaves: no OVS port, no logical port, the veth marked for deletion. Beside it a veth
    // of the same shape without the mark, which is not kuryr's to delete.
    d.kill9();
    let tap = host_ifname(&ep);
    must(&["ovs-vsctl", "--timeout=10", "del-port", "br-int", &tap]);
    let mark = format!("kuryr:unplugged:{ep}");
    must(&["ip", "link", "set", "dev", &tap, "alias", &mark]);
    let nbdb = format!("--db={}", nb.remote());
    must(&["ovn-nbctl", &nbdb, "lsp-del", &ep]);
    let other = host_ifname(&foreign);
    let other_peer = format!("t_c{}", &foreign[..11]);
    must(&[
        "ip",
        "link",
        "add",
        &other,
        "type",
        "veth",
        "peer",
        "name",
        &other_peer,
    ]);
    d.spawn();
    assert!(!link_exists(&tap), "the marked veth is still there");
    // (Any kuryr starting on this host sweeps it: other tests' daemons may be first.)
    assert!(link_exists(&other), "the unmarked veth was deleted");
    // Docker's DeleteEndpoint retry and the network's removal still answer.
    ok(&d, "/NetworkDriver.DeleteEndpoint", endpoint_ref(&net, &ep));
    ok(
        &d,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn an_endpoint_whose_address_docker_releases_without_deleting_it_goes() {
    // A CreateEndpoint kuryr finished but whose answer Docker never got (kuryr killed at that
    // moment; Docker's retry arrives with an empty body and is refused): Docker gives up on
    // the endpoint and releases its address, and never sends DeleteEndpoint.
    require_lab();
    let _g = br_int();
    let nb = PrivateNb::new();
    let d = daemon(&nb, None);
    let (net, ep) = (docker_id(), docker_id());
    let _host = HostSide(vec![ep.clone()]);
    let (pool, address) = endpoint_on_new_network(&d, &net, &ep, "10.182.0.0/24");
    assert!(link_exists(&host_ifname(&ep)));
    let ip = address.split('/').next().unwrap_or_default();
    ok(
        &d,
        "/IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": ip}),
    );
    assert!(
        !nb.names("Logical_Switch_Port").contains(&ep),
        "the logical port of the endpoint is still there"
    );
    assert!(
        !link_exists(&host_ifname(&ep)),
        "the veth of the endpoint is still there"
    );
    assert!(
        d.log_text().contains("whose address Docker released"),
        "{}",
        d.log_text()
    );
    // The address is free again.
    assert_eq!(request_address(&d, &pool, ip), address);
    ok(
        &d,
        "/NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net}),
    );
}
