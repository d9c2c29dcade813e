//! `kuryr host nics-to-bridge NIC`: move a NIC into an OVS bridge together with its addresses
//! and routes, all or nothing.
//!
//! The order keeps the host reachable at every step: the bridge (with the NIC's MAC, the NIC
//! as its port) comes first, then the NIC's addresses are added to the bridge, then its
//! routes are switched over with `ip route replace`, and only then are the addresses taken
//! off the NIC. Each step records its undo; a failure anywhere runs them newest first, so
//! the NIC ends up as it was found. Addresses and routes go through iproute2 because its
//! text form round-trips every attribute a route may carry (metric, proto, src, pref, ...).
use super::{connect, root, DB};
use anyhow::{bail, Context};
use kuryr_ovsdb::txn::{self, by_uuid};
use kuryr_ovsdb::{datum, Client, Txn};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// The steps after which a test may force a failure (`--fail-after`), to prove the undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    Bridge,
    Addresses,
    Routes,
}

/// One address as `ip addr add` takes it (without the device).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr {
    args: Vec<String>,
}

#[derive(Debug)]
struct Nic {
    mac: String,
    mtu: u64,
    addrs: Vec<Addr>,
    /// `ip route` lines (without `dev`), IPv4 then IPv6.
    routes: Vec<(&'static str, String)>,
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run ip (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

/// The NIC as it is now: MAC, MTU, addresses (not the IPv6 link-local ones the kernel makes
/// by itself) and routes (not the ones the kernel derives from addresses).
fn snapshot(nic: &str) -> anyhow::Result<Nic> {
    let text = ip(&["-j", "addr", "show", "dev", nic])
        .with_context(|| format!("read NIC {nic}: check the name with `ip link`"))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("parse `ip -j addr show dev {nic}`"))?;
    let Some(link) = v.as_array().and_then(|a| a.first()) else {
        bail!("NIC {nic} not found: check the name with `ip link`");
    };
    if link["link_type"].as_str() == Some("loopback") {
        bail!("{nic} is a loopback device: give a NIC");
    }
    let mac = link["address"]
        .as_str()
        .with_context(|| format!("NIC {nic} has no MAC address: give an Ethernet NIC"))?
        .to_string();
    let mtu = link["mtu"].as_u64().unwrap_or(1500);
    let mut addrs = Vec::new();
    for a in link["addr_info"].as_array().into_iter().flatten() {
        let family = a["family"].as_str().unwrap_or("");
        let scope = a["scope"].as_str().unwrap_or("global");
        let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
            continue;
        };
        if family == "inet6" && scope == "link" {
            continue;
        }
        let mut args = vec![format!("{local}/{len}")];
        if let Some(b) = a["broadcast"].as_str() {
            args.extend(["brd".to_string(), b.to_string()]);
        }
        args.extend(["scope".to_string(), scope.to_string()]);
        if family == "inet6" {
            // The address only moves between two interfaces of this host: no need to wait
            // for duplicate address detection, which would leave it tentative for a while.
            args.push("nodad".to_string());
        }
        addrs.push(Addr { args });
    }
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        for line in ip(&[fam, "route", "show", "dev", nic])?.lines() {
            let line = line.trim();
            if line.is_empty() || line.contains("proto kernel") {
                continue;
            }
            // Flags `ip route show` prints but `ip route add` does not take.
            let kept: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !matches!(*w, "linkdown" | "dead" | "offload" | "trap" | "rt_offload"))
                .collect();
            routes.push((fam, kept.join(" ")));
        }
    }
    Ok(Nic {
        mac,
        mtu,
        addrs,
        routes,
    })
}

fn default_datapath() -> &'static str {
    if std::path::Path::new("/sys/module/openvswitch").exists() {
        "system"
    } else {
        "netdev"
    }
}

/// An undo step, run newest first when a later step fails.
enum Undo {
    Bridge(String),
    BridgeAddr(String, Addr),
    Route(&'static str, String, String),
    NicAddr(String, Addr),
}

async fn add_bridge(
    client: &Client,
    nic: &str,
    bridge: &str,
    mac: &str,
    datapath: &str,
) -> anyhow::Result<()> {
    let (nic, bridge, mac, datapath) = (
        nic.to_string(),
        bridge.to_string(),
        mac.to_string(),
        datapath.to_string(),
    );
    client
        .transact_with(Duration::from_secs(10), |rep| {
            // Checked before; a row gone since means a database being reset: change nothing.
            let Some(r) = root(rep) else {
                return Ok(None);
            };
            let mut t = Txn::new(DB);
            t.wait_absent("Bridge", vec![txn::eq("name", bridge.as_str())]);
            t.wait_absent("Port", vec![txn::eq("name", nic.as_str())]);
            t.insert(
                "Interface",
                json!({"name": bridge, "type": "internal"}),
                Some("bi"),
            );
            t.insert(
                "Port",
                json!({"name": bridge, "interfaces": datum::named_uuid("bi")}),
                Some("bp"),
            );
            t.insert("Interface", json!({"name": nic}), Some("ni"));
            t.insert(
                "Port",
                json!({"name": nic, "interfaces": datum::named_uuid("ni")}),
                Some("np"),
            );
            t.insert(
                "Bridge",
                json!({"name": bridge, "datapath_type": datapath,
                       "ports": datum::set([datum::named_uuid("bp"), datum::named_uuid("np")]),
                       "other_config": datum::map([("hwaddr", mac.as_str())]),
                       "external_ids": datum::map([("kuryr-nic", nic.as_str())])}),
                Some("br"),
            );
            t.mutate(
                DB,
                vec![by_uuid(r.uuid)],
                vec![txn::mutate_insert(
                    "bridges",
                    datum::set([datum::named_uuid("br")]),
                )],
            );
            Ok(Some(t))
        })
        .await
        .with_context(|| format!("create OVS bridge {bridge} with port {nic}"))?;
    Ok(())
}

async fn del_bridge(client: &Client, bridge: &str) -> anyhow::Result<()> {
    let name = bridge.to_string();
    client
        .transact_with(Duration::from_secs(10), |rep| {
            let (Some(r), Some(b)) = (root(rep), rep.table("Bridge").one_by_name(&name)) else {
                return Ok(None);
            };
            let mut t = Txn::new(DB);
            t.mutate(
                DB,
                vec![by_uuid(r.uuid)],
                vec![txn::mutate_delete(
                    "bridges",
                    datum::set([json!(["uuid", b.uuid.to_string()])]),
                )],
            );
            Ok(Some(t))
        })
        .await
        .with_context(|| format!("delete OVS bridge {bridge}"))?;
    Ok(())
}

async fn undo(client: &Client, steps: Vec<Undo>) -> Vec<String> {
    let mut errors = Vec::new();
    for s in steps.into_iter().rev() {
        let res = match &s {
            Undo::Bridge(b) => match del_bridge(client, b).await {
                // ovs-vswitchd releases the NIC (and its promiscuous mode) when it removes
                // the bridge's interface: wait for that, so the NIC is back when we return.
                Ok(()) => {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while link_exists(b) && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Undo::BridgeAddr(dev, a) | Undo::NicAddr(dev, a) => {
                let verb = if matches!(s, Undo::BridgeAddr(..)) {
                    "del"
                } else {
                    "add"
                };
                let mut args = vec!["addr", verb];
                args.extend(
                    a.args
                        .iter()
                        .map(String::as_str)
                        .filter(|w| *w != "nodad" || verb == "add"),
                );
                args.extend(["dev", dev]);
                ip(&args).map(|_| ())
            }
            Undo::Route(fam, route, nic) => {
                let mut args = vec![*fam, "route", "replace"];
                args.extend(route.split_whitespace());
                args.extend(["dev", nic]);
                ip(&args).map(|_| ())
            }
        };
        if let Err(e) = res {
            errors.push(format!("{e:#}"));
        }
    }
    errors
}

/// Moves `nic` into `bridge`; on any failure puts everything back and says what failed.
/// With the userspace datapath the NIC stays a live kernel interface beside the bridge, and
/// the kernel would answer for the bridge's addresses on it too (every ping doubled): it
/// answers ARP only for addresses of its own (none now), drops what arrives on it for an
/// address routed elsewhere (strict reverse-path filter), and takes no part in IPv6.
fn quiet(nic: &str) {
    for (path, value) in [
        (format!("/proc/sys/net/ipv4/conf/{nic}/arp_ignore"), "1"),
        (format!("/proc/sys/net/ipv4/conf/{nic}/rp_filter"), "1"),
        (format!("/proc/sys/net/ipv6/conf/{nic}/disable_ipv6"), "1"),
    ] {
        if let Err(e) = std::fs::write(&path, value) {
            tracing::warn!(error = %e, "could not set {path} = {value}: the host may answer twice on {nic}");
        }
    }
}

pub async fn exec(
    remote: &str,
    nic: &str,
    bridge: Option<String>,
    datapath: Option<&'static str>,
    fail_after: Option<Step>,
) -> anyhow::Result<String> {
    let bridge = bridge.unwrap_or_else(|| format!("br{nic}"));
    // 1. Validate everything before changing anything.
    if bridge.is_empty()
        || bridge.len() > 15
        || bridge.contains('/')
        || bridge.contains(char::is_whitespace)
    {
        bail!("bridge name {bridge:?} is not a valid interface name (1-15 characters, no '/' or spaces): give --bridge NAME");
    }
    let state = snapshot(nic)?;
    let client = connect(remote).await?;
    {
        let rep = client.replica();
        if root(&rep).is_none() {
            bail!("the Open_vSwitch database at {remote} has no Open_vSwitch row: run `kuryr host init` (or `ovs-vsctl init`) first");
        }
        if rep.table("Bridge").one_by_name(&bridge).is_some() {
            bail!("OVS bridge {bridge} already exists in {remote}: give another --bridge, or `ovs-vsctl del-br {bridge}` if it is left over");
        }
        if rep.table("Port").one_by_name(nic).is_some() {
            bail!("{nic} is already a port of an OVS bridge in {remote} (`ovs-vsctl port-to-br {nic}`): nothing to move");
        }
    }
    if link_exists(&bridge) {
        bail!("an interface named {bridge} already exists: give another --bridge");
    }
    let datapath = datapath.unwrap_or_else(default_datapath);
    let mut done: Vec<Undo> = Vec::new();
    let res: anyhow::Result<()> = async {
        // 2. The bridge, with the NIC's MAC so neighbours' ARP caches stay right.
        add_bridge(&client, nic, &bridge, &state.mac, datapath).await?;
        done.push(Undo::Bridge(bridge.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !link_exists(&bridge) {
            if Instant::now() > deadline {
                bail!("the interface of bridge {bridge} did not appear within 10 s: is ovs-vswitchd running for {remote}? (datapath {datapath}; give --datapath netdev where the kernel has no openvswitch module)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ip(&["link", "set", "dev", &bridge, "mtu", &state.mtu.to_string(), "up"])?;
        ip(&["link", "set", "dev", nic, "up"])?;
        if fail_after == Some(Step::Bridge) {
            bail!("forced failure after creating bridge {bridge} (--fail-after bridge)");
        }
        // 3. The addresses on the bridge too.
        for a in &state.addrs {
            let mut args = vec!["addr", "add"];
            args.extend(a.args.iter().map(String::as_str));
            args.extend(["dev", &bridge]);
            ip(&args)?;
            done.push(Undo::BridgeAddr(bridge.clone(), a.clone()));
        }
        if fail_after == Some(Step::Addresses) {
            bail!("forced failure after adding the addresses to {bridge} (--fail-after addresses)");
        }
        // 4. The routes through the bridge.
        for (i, (fam, r)) in state.routes.iter().enumerate() {
            let mut args = vec![*fam, "route", "replace"];
            args.extend(r.split_whitespace());
            args.extend(["dev", &bridge]);
            ip(&args)?;
            done.push(Undo::Route(fam, r.clone(), nic.to_string()));
            if fail_after == Some(Step::Routes) && i + 1 == state.routes.len().div_ceil(2) {
                bail!("forced failure half way through moving routes to {bridge} (--fail-after routes)");
            }
        }
        // 5. Only now the addresses leave the NIC.
        for a in &state.addrs {
            let mut args = vec!["addr", "del"];
            args.extend(a.args.iter().map(String::as_str).filter(|w| *w != "nodad"));
            args.extend(["dev", nic]);
            ip(&args)?;
            done.push(Undo::NicAddr(nic.to_string(), a.clone()));
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        let errors = undo(&client, done).await;
        if errors.is_empty() {
            return Err(e.context(format!(
                "move {nic} into bridge {bridge}; {nic} was restored as it was"
            )));
        }
        return Err(e.context(format!(
            "move {nic} into bridge {bridge}; restoring {nic} failed too ({}): check `ip addr show {nic}`, `ip route` and `ovs-vsctl show`",
            errors.join("; ")
        )));
    }
    if datapath == "netdev" {
        quiet(nic);
    }
    Ok(format!(
        "{nic} is now a port of {bridge} ({datapath}); moved {} address(es) and {} route(s)",
        state.addrs.len(),
        state.routes.len()
    ))
}
