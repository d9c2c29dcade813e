//! The lab as the binding's tests see it: commands run against the real OVS, OVN and kernel,
//! unique names, and guards that remove what a test created even when it fails.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

pub const OVS_DB: &str = "unix:/var/run/openvswitch/db.sock";
pub const BRIDGE: &str = "br-int";

/// Runs a command and returns its stdout; panics with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program} {args:?}: {e} (is it installed? `make lab`)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a command for its exit status only (cleanup, expected failures).
pub fn status(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test, loudly, unless it runs as root with OVS and `br-int` up.
pub fn require_ovs() {
    let uid = run("id", &["-u"]);
    assert_eq!(
        uid, "0",
        "these tests create veth pairs and OVS ports: run them as root with the lab up (`make test`)"
    );
    assert!(
        status("ovs-vsctl", &["--timeout=5", "br-exists", BRIDGE]),
        "Open vSwitch with bridge {BRIDGE} is not running: run `make lab` (or `bash lab/lab.sh up`)"
    );
}

/// As [`require_ovs`], and OVN (Northbound and a connected ovn-controller) too.
pub fn require_ovn() {
    require_ovs();
    assert!(
        status("ovn-nbctl", &["--timeout=5", "show"]),
        "the OVN Northbound database does not answer: run `make lab` (or `bash lab/lab.sh up`)"
    );
    let conn = Command::new("ovn-appctl")
        .args(["-t", "ovn-controller", "connection-status"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(
        conn, "connected",
        "ovn-controller is not running or not connected to the Southbound database: run `make lab`"
    );
}

/// A Docker-like endpoint id (64 hex characters) whose first 11 characters are random.
pub fn endpoint_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A short unique suffix for names of our own (switches, namespaces, bridges).
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// A locally administered unicast MAC, random.
pub fn mac() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!(
        "0a:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// `ip -d -j link show dev NAME` in the host namespace, or `None` if there is no such link.
pub fn link(name: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["-d", "-j", "link", "show", "dev", name])
        .output()
        .expect("run ip");
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    v.as_array().and_then(|a| a.first()).cloned()
}

pub fn link_exists(name: &str) -> bool {
    link(name).is_some()
}

/// One column of the OVS row `table`/`name` in `ovs-vsctl --format=json --data=json` form.
pub fn ovs_column(table: &str, name: &str, column: &str) -> Option<Value> {
    let out = Command::new("ovs-vsctl")
        .args([
            "--format=json",
            "--data=json",
            &format!("--columns={column}"),
            "find",
            table,
            &format!("name={name}"),
        ])
        .output()
        .expect("run ovs-vsctl");
    assert!(
        out.status.success(),
        "ovs-vsctl find {table}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ovs-vsctl prints JSON");
    v["data"].as_array()?.first()?.as_array()?.first().cloned()
}

pub fn ovs_row_exists(table: &str, name: &str) -> bool {
    ovs_column(table, name, "_uuid").is_some()
}

/// An OVSDB map datum (`["map", [[k, v], ...]]`) as a sorted map.
pub fn ovs_map(v: &Value) -> BTreeMap<String, String> {
    v[1].as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv[0].as_str()?.to_string(), kv[1].as_str()?.to_string())))
        .collect()
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes an endpoint's veth and OVS port when dropped, whatever the binding did, using the
/// stock tools so a bug in the binding cannot leave things behind.
pub struct EndpointCleanup {
    pub host_ifname: String,
}

impl EndpointCleanup {
    pub fn new(endpoint_id: &str) -> EndpointCleanup {
        EndpointCleanup {
            host_ifname: kuryr_binding::host_ifname(endpoint_id).unwrap(),
        }
    }
}

impl Drop for EndpointCleanup {
    fn drop(&mut self) {
        status("ovs-vsctl", &["--if-exists", "del-port", &self.host_ifname]);
        status("ip", &["link", "del", &self.host_ifname]);
    }
}

/// A logical switch of the test's own, deleted with its ports when dropped.
pub struct Switch {
    pub name: String,
}

impl Switch {
    pub fn new() -> Switch {
        let name = format!("kuryr-test-{}", suffix());
        run("ovn-nbctl", &["ls-add", &name]);
        Switch { name }
    }

    /// Adds a logical port with `addresses` ("MAC IP" or "MAC") and returns its name.
    pub fn add_port(&self, addresses: &str) -> String {
        let lsp = format!("{}-p{}", self.name, suffix());
        run("ovn-nbctl", &["lsp-add", &self.name, &lsp]);
        run("ovn-nbctl", &["lsp-set-addresses", &lsp, addresses]);
        lsp
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        status("ovn-nbctl", &["--if-exists", "ls-del", &self.name]);
    }
}

/// A network namespace of the test's own, deleted when dropped (with any veth end inside).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = format!("kt-{}", suffix());
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Moves `ifname` in and gives it `cidr`, up.
    pub fn take(&self, ifname: &str, cidr: &str) {
        run("ip", &["link", "set", ifname, "netns", &self.name]);
        run(
            "ip",
            &["-n", &self.name, "addr", "add", cidr, "dev", ifname],
        );
        run("ip", &["-n", &self.name, "link", "set", ifname, "up"]);
    }

    pub fn ping(&self, ip: &str) -> bool {
        status(
            "ip",
            &["netns", "exec", &self.name, "ping", "-c1", "-W2", ip],
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        status("ip", &["netns", "del", &self.name]);
    }
}

/// An OVS bridge of the test's own (userspace datapath), deleted when dropped.
pub struct TestBridge {
    pub name: String,
}

impl TestBridge {
    pub fn new() -> TestBridge {
        let name = format!("kt{}", suffix());
        run(
            "ovs-vsctl",
            &[
                "add-br",
                &name,
                "--",
                "set",
                "Bridge",
                &name,
                "datapath_type=netdev",
            ],
        );
        TestBridge { name }
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        status("ovs-vsctl", &["--if-exists", "del-br", &self.name]);
    }
}

/// An OVS port added by the test (not by the binding), deleted when dropped.
pub struct ForeignPort {
    pub name: String,
}

impl ForeignPort {
    /// A port `name` on `bridge` whose interface is called `iface`, with no device behind it.
    pub fn new(bridge: &str, name: &str, iface: &str) -> ForeignPort {
        run(
            "ovs-vsctl",
            &[
                "add-port",
                bridge,
                name,
                "--",
                "set",
                "Interface",
                name,
                &format!("name={iface}"),
                "--",
                "set",
                "Port",
                name,
                "external_ids:owner=test",
            ],
        );
        ForeignPort {
            name: name.to_string(),
        }
    }
}

impl Drop for ForeignPort {
    fn drop(&mut self) {
        status("ovs-vsctl", &["--if-exists", "del-port", &self.name]);
    }
}
