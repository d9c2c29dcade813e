//! `kuryr host nics-to-bridge` on a veth inside network namespaces this test creates (never on
//! a real NIC), with an Open vSwitch of its own running in that namespace: addresses and routes
//! move onto the bridge and traffic still flows; a failure forced half way leaves the NIC
//! exactly as it was.
mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

const KURYR: &str = env!("CARGO_BIN_EXE_kuryr");

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A namespace `ns` holding an OVS (ovsdb-server + ovs-vswitchd with their files in `dir`)
/// and a veth `nic` whose peer sits in namespace `peer` at `.2` of a /24, with routes through
/// that peer. Everything is removed when dropped, also when the test fails.
struct Lab {
    ns: String,
    peer: String,
    nic: String,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    net: String,
}

impl Lab {
    fn new() -> Lab {
        require_lab();
        let tag = unique("n");
        let short = format!(
            "{:x}",
            tag.bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let lab = Lab {
            ns: format!("knb-{tag}"),
            peer: format!("knbp-{tag}"),
            nic: format!("nb{}", &short[..short.len().min(8)]),
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
            net: format!("10.250.{}", std::process::id() % 200 + 20),
        };
        let sh = |script: &str| {
            ok(
                run(Command::new("sh").arg("-ec").arg(script)),
                &format!("set up: {script}"),
            )
        };
        let (ns, peer, nic, d, net) = (
            &lab.ns,
            &lab.peer,
            &lab.nic,
            lab.dir.display().to_string(),
            &lab.net,
        );
        sh(&format!(
            "ip netns add {ns}; ip netns add {peer}
             ip -n {ns} link set lo up; ip -n {peer} link set lo up
             ip link add {nic} netns {ns} type veth peer name {nic}p netns {peer}
             ip -n {ns} link set {nic} up; ip -n {peer} link set {nic}p up
             ip -n {ns} addr add {net}.1/24 dev {nic}
             ip -n {ns} addr add fd00:250::1/64 dev {nic} nodad
             ip -n {peer} addr add {net}.2/24 dev {nic}p
             ip -n {peer} addr add fd00:250::2/64 dev {nic}p nodad
             ip -n {peer} addr add 10.251.0.1/32 dev lo
             ip -n {ns} route add 10.251.0.0/16 via {net}.2 metric 50
             ip -n {ns} route add default via {net}.2 proto static
             ovsdb-tool create {d}/conf.db /usr/share/openvswitch/vswitch.ovsschema
             export OVS_RUNDIR={d}
             ip netns exec {ns} ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock \
                --pidfile={d}/ovsdb-server.pid --unixctl={d}/ovsdb-server.ctl \
                --log-file={d}/ovsdb-server.log --detach 2>/dev/null
             ovs-vsctl --db=unix:{d}/db.sock --no-wait init
             ip netns exec {ns} ovs-vswitchd unix:{d}/db.sock --pidfile={d}/ovs-vswitchd.pid \
                --unixctl={d}/ovs-vswitchd.ctl --log-file={d}/ovs-vswitchd.log --detach 2>/dev/null"
        ));
        lab
    }

    fn db(&self) -> String {
        format!("unix:{}/db.sock", self.dir.display())
    }

    fn bridge(&self) -> String {
        format!("br{}", self.nic)
    }

    /// `kuryr host nics-to-bridge NIC ARGS` inside the namespace, against its OVS.
    fn move_nic(&self, args: &[&str]) -> Output {
        run(Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.ns))
            .args([
                KURYR,
                "host",
                "nics-to-bridge",
                &self.nic,
                "--ovsdb",
                &self.db(),
            ])
            .args(args))
    }

    fn ip(&self, args: &[&str]) -> String {
        ok(
            run(Command::new("ip").args(["-n", &self.ns]).args(args)),
            &format!("ip {}", args.join(" ")),
        )
    }

    /// What must not change when a move fails: the NIC's addresses and MAC, every route.
    fn state(&self) -> String {
        [
            self.ip(&["-br", "addr", "show", "dev", &self.nic]),
            self.ip(&["-br", "link", "show", "dev", &self.nic]),
            self.ip(&["-4", "route", "show", "table", "all"]),
            self.ip(&["-6", "route", "show", "table", "main"]),
        ]
        .join("\n")
    }

    fn pings(&self, ip: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-c", "1", "-W", "2", ip])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn vsctl(&self, args: &[&str]) -> Output {
        run(Command::new("ovs-vsctl")
            .arg("--timeout=5")
            .arg(format!("--db={}", self.db()))
            .args(args))
    }

    fn bridge_gone(&self) -> bool {
        !self.vsctl(&["br-exists", &self.bridge()]).status.success()
            && !Command::new("ip")
                .args(["-n", &self.ns, "link", "show", "dev", &self.bridge()])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // 1. The daemons, by their pid files. 2. The namespaces (the veth goes with them).
        for daemon in ["ovs-vswitchd", "ovsdb-server"] {
            let pidfile = self.dir.join(format!("{daemon}.pid"));
            if let Ok(pid) = std::fs::read_to_string(&pidfile) {
                let _ = Command::new("kill").arg(pid.trim()).output();
            }
        }
        for ns in [&self.ns, &self.peer] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn nics_to_bridge_moves_addresses_and_routes_and_traffic_keeps_flowing() {
    let lab = Lab::new();
    let mac = lab.ip(&["-br", "link", "show", "dev", &lab.nic]);
    let mac = mac
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(lab.pings("10.251.0.1"), "the routed address answers before");

    let said = ok(lab.move_nic(&[]), "nics-to-bridge");
    assert!(said.contains(&lab.bridge()), "{said}");

    let br = lab.bridge();
    let on_br = lab.ip(&["-br", "addr", "show", "dev", &br]);
    assert!(
        on_br.contains(&format!("{}.1/24", lab.net)) && on_br.contains("fd00:250::1/64"),
        "addresses on {br}: {on_br}"
    );
    let on_nic = lab.ip(&["-br", "addr", "show", "dev", &lab.nic]);
    assert!(
        !on_nic.contains(&lab.net) && !on_nic.contains("fd00:250::1"),
        "addresses left on {}: {on_nic}",
        lab.nic
    );
    let routes = lab.ip(&["-4", "route", "show"]);
    assert!(
        routes.contains(&format!("default via {}.2 dev {br} proto static", lab.net))
            && routes.contains(&format!(
                "10.251.0.0/16 via {}.2 dev {br} metric 50",
                lab.net
            ))
            && !routes.contains(&format!("dev {} ", lab.nic)),
        "{routes}"
    );
    // The bridge took the NIC's MAC, and the NIC is its port.
    let br_link = lab.ip(&["-br", "link", "show", "dev", &br]);
    assert!(br_link.contains(&mac), "{br_link} vs {mac}");
    let ports = ok(lab.vsctl(&["list-ports", &br]), "list-ports");
    assert_eq!(ports, lab.nic);
    wait_until(
        "traffic through the bridge",
        Duration::from_secs(10),
        || lab.pings("10.251.0.1") && lab.pings(&format!("{}.2", lab.net)),
    );
    assert!(lab.pings("fd00:250::2"), "IPv6 through the bridge");
    // The NIC, still a kernel interface beside the userspace bridge, answers no more.
    let read = |path: String| {
        ok(
            run(Command::new("ip").args(["netns", "exec", &lab.ns, "cat", &path])),
            &path,
        )
    };
    for key in [
        "ipv4/conf/{}/arp_ignore",
        "ipv4/conf/{}/rp_filter",
        "ipv6/conf/{}/disable_ipv6",
    ] {
        let path = format!("/proc/sys/net/{}", key.replace("{}", &lab.nic));
        assert_eq!(read(path.clone()), "1", "{path}");
    }
    let from_peer = run(Command::new("ip").args([
        "netns",
        "exec",
        &lab.peer,
        "ping",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        &format!("{}.1", lab.net),
    ]));
    let said = String::from_utf8_lossy(&from_peer.stdout);
    assert!(
        from_peer.status.success() && !said.contains("DUP"),
        "{said}"
    );

    // A second run refuses: the NIC is a port already.
    let again = lab.move_nic(&[]);
    assert!(!again.status.success());
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(why.contains("already"), "{why}");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_failure_half_way_restores_the_nic_as_it_was() {
    let lab = Lab::new();
    let before = lab.state();
    for step in ["bridge", "addresses", "routes"] {
        let out = lab.move_nic(&["--fail-after", step]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "--fail-after {step} succeeded");
        assert!(
            err.contains("forced failure") && err.contains("restored as it was"),
            "--fail-after {step}: {err}"
        );
        wait_until("the bridge to go away", Duration::from_secs(10), || {
            lab.bridge_gone()
        });
        // ovs-vswitchd clears the promiscuous flag it set on the NIC a moment after it lets
        // the port go.
        let settle = std::time::Instant::now() + Duration::from_secs(10);
        while lab.state() != before && std::time::Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(lab.state(), before, "after a failure at {step}");
        assert!(lab.pings("10.251.0.1"), "traffic after a failure at {step}");
    }
    // A bridge name taken by another interface is refused before anything changes.
    let out = lab.move_nic(&["--bridge", "lo"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(lab.state(), before);
    // And after all that, the real move works.
    ok(lab.move_nic(&[]), "nics-to-bridge after failed attempts");
}
