//! The OVN mode's host gateway: the management port kuryr's daemon makes at start, IPv4
//! forwarding and the iptables jumps into kuryr's chains. Without them routed networks'
//! gateways answer but nothing leaves the host and no published port answers.
use super::{fail, ok, warn, Check};
use kuryr_binding::MGMT_IFNAME;
use kuryr_daemon::gateway::{CHAIN_DNAT, CHAIN_FORWARD, CHAIN_POSTROUTING};
use std::process::Command;

const CHECK: &str = "gateway";
const FIX_RESTART: &str = "restart kuryr daemon: it sets the host's gateway up at start";

fn iptables_has(table: &str, chain: &str, jump: &str) -> bool {
    Command::new("iptables")
        .args(["-w", "-t", table, "-S", chain])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.ends_with(&format!("-j {jump}")))
        })
        .unwrap_or(false)
}

pub(super) fn check() -> Check {
    if !std::path::Path::new(&format!("/sys/class/net/{MGMT_IFNAME}")).exists() {
        return warn(
            CHECK,
            format!("the management port {MGMT_IFNAME} does not exist yet: routed networks have no egress and no published ports"),
            "start kuryr daemon (it makes the port at start; ovs-vswitchd must be running)",
        );
    }
    let want = kuryr_ovn::routing::mgmt_ip().to_string();
    let addrs = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", MGMT_IFNAME])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if !addrs.contains(&format!("inet {want}/")) {
        return fail(
            CHECK,
            format!("{MGMT_IFNAME} lacks its address {want}"),
            FIX_RESTART,
        );
    }
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    if !forwarding {
        return fail(
            CHECK,
            "IPv4 forwarding is off (net.ipv4.ip_forward = 0): containers cannot leave the host",
            "sysctl -w net.ipv4.ip_forward=1, or restart kuryr daemon",
        );
    }
    let missing: Vec<&str> = [
        ("filter", "FORWARD", CHAIN_FORWARD),
        ("nat", "POSTROUTING", CHAIN_POSTROUTING),
        ("nat", "PREROUTING", CHAIN_DNAT),
    ]
    .into_iter()
    .filter(|(t, c, j)| !iptables_has(t, c, j))
    .map(|(_, _, j)| j)
    .collect();
    if !missing.is_empty() {
        return fail(
            CHECK,
            format!("iptables does not jump to {}", missing.join(", ")),
            FIX_RESTART,
        );
    }
    ok(
        CHECK,
        format!("{MGMT_IFNAME} has {want}, forwarding is on, kuryr's iptables chains are in place"),
    )
}
