//! The host side of routing in the OVN mode ("local gateway"): the management port into the
//! join switch, a route per routed network, source NAT for egress and DNAT for published
//! ports, all in this host's kernel. iptables is driven the way Docker drives it (its own
//! chains, jumped to from the built-in ones), so both coexist on one host.
use ipnet::IpNet;
use kuryr_binding::Binding;
use kuryr_binding::{MgmtPort, OvsBinding, MGMT_IFNAME};
use kuryr_core::{Backend, HostRoute};
use kuryr_docker::request::PortBinding;
use kuryr_docker::Protocol;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use tokio::process::Command;

/// kuryr's chains: forwarding to and from the management port, egress NAT, published ports.
pub const CHAIN_FORWARD: &str = "KURYR-FORWARD";
pub const CHAIN_POSTROUTING: &str = "KURYR-POSTROUTING";
pub const CHAIN_DNAT: &str = "KURYR-DNAT";

/// Why the host side could not be set up; the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Host(String),
}

/// One published port, as kuryr writes it into [`CHAIN_DNAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub proto: Protocol,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

pub struct HostGateway {
    binding: OvsBinding,
    /// Subnets routed and source-NATed on this host: after the first container of a network,
    /// the others pay nothing.
    routed: tokio::sync::Mutex<HashSet<HostRoute>>,
    /// Serializes this process' iptables changes (check, then change).
    iptables: tokio::sync::Mutex<()>,
    /// Endpoints with published ports (read back from iptables at start), so stopping a
    /// container without any costs no iptables call.
    published: std::sync::Mutex<HashSet<String>>,
}

fn comment(endpoint_id: &str) -> String {
    format!("kuryr:{endpoint_id}")
}

/// The iptables of each address family.
const V4: &str = "iptables";
const V6: &str = "ip6tables";

fn family(subnet: &IpNet) -> &'static str {
    match subnet {
        IpNet::V4(_) => V4,
        IpNet::V6(_) => V6,
    }
}

/// `BIN -w ARGS` (BIN: [`V4`] or [`V6`]), whatever its exit status.
async fn run_iptables(bin: &str, args: &[&str]) -> Result<std::process::Output, GatewayError> {
    Command::new(bin)
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| GatewayError::Host(format!("run {bin} (is it installed?): {e}")))
}

/// `BIN -w ARGS`; the error holds iptables' own words.
async fn iptables(bin: &str, args: &[&str]) -> Result<std::process::Output, GatewayError> {
    let out = run_iptables(bin, args).await?;
    if out.status.success() {
        return Ok(out);
    }
    Err(GatewayError::Host(format!(
        "{bin} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Whether the command (`-C`, `-S CHAIN`) succeeds: the rule or chain exists.
async fn has_rule(bin: &str, args: &[&str]) -> Result<bool, GatewayError> {
    Ok(run_iptables(bin, args).await?.status.success())
}

/// The rules of one IPv4 chain as `iptables -S` prints them.
async fn rules(table: &str, chain: &str) -> Result<Vec<String>, GatewayError> {
    let out = iptables(V4, &["-t", table, "-S", chain]).await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect())
}

async fn ensure_rule(
    bin: &str,
    table: &str,
    chain: &str,
    rule: &[&str],
    first: bool,
) -> Result<(), GatewayError> {
    let mut check = vec!["-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if has_rule(bin, &check).await? {
        return Ok(());
    }
    let mut add = vec!["-t", table];
    if first {
        add.extend(["-I", chain, "1"]);
    } else {
        add.extend(["-A", chain]);
    }
    add.extend_from_slice(rule);
    iptables(bin, &add).await.map(|_| ())
}

async fn ensure_chain(bin: &str, table: &str, chain: &str) -> Result<(), GatewayError> {
    if has_rule(bin, &["-t", table, "-S", chain]).await? {
        return Ok(());
    }
    match iptables(bin, &["-t", table, "-N", chain]).await {
        Ok(_) => Ok(()),
        // Another kuryr of this host made it meanwhile.
        Err(_) if has_rule(bin, &["-t", table, "-S", chain]).await? => Ok(()),
        Err(e) => Err(e),
    }
}

/// Forwarding to and from the management port and the egress NAT chain, in one family.
async fn forward_and_nat_chains(bin: &str) -> Result<(), GatewayError> {
    ensure_chain(bin, "filter", CHAIN_FORWARD).await?;
    ensure_chain(bin, "nat", CHAIN_POSTROUTING).await?;
    ensure_rule(bin, "filter", "FORWARD", &["-j", CHAIN_FORWARD], true).await?;
    for dir in ["-i", "-o"] {
        let rule = [dir, MGMT_IFNAME, "-j", "ACCEPT"];
        ensure_rule(bin, "filter", CHAIN_FORWARD, &rule, false).await?;
    }
    ensure_rule(bin, "nat", "POSTROUTING", &["-j", CHAIN_POSTROUTING], true).await
}

fn masquerade_rule(subnet: &IpNet) -> Vec<String> {
    vec![
        "-s".into(),
        subnet.to_string(),
        "!".into(),
        "-o".into(),
        MGMT_IFNAME.into(),
        "-j".into(),
        "MASQUERADE".into(),
    ]
}

fn dnat_rule(p: &Published, endpoint_id: &str) -> Vec<String> {
    let proto = p.proto.to_string();
    let mut r = vec!["-p".to_string(), proto.clone()];
    if let Some(ip) = p.host_ip {
        r.extend(["-d".into(), format!("{ip}/32")]);
    }
    r.extend([
        "-m".into(),
        proto,
        "--dport".into(),
        p.host_port.to_string(),
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        comment(endpoint_id),
        "-j".into(),
        "DNAT".into(),
        "--to-destination".into(),
        format!("{}:{}", p.container_ip, p.container_port),
    ]);
    r
}

/// A published port found in [`CHAIN_DNAT`]: protocol, host address, host port, endpoint.
fn parse_dnat(line: &str) -> Option<(String, Option<String>, u16, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .map(|s| s.trim_matches('"').to_string())
    };
    let proto = after("-p")?;
    let port = after("--dport")?.parse().ok()?;
    let ep = after("--comment")?.strip_prefix("kuryr:")?.to_string();
    let host = after("-d").map(|d| d.trim_end_matches("/32").to_string());
    Some((proto, host, port, ep))
}

/// Whether something on this host holds the port (a listening process, or Docker's own
/// proxy for a port the bridge driver published).
fn port_in_use(proto: Protocol, ip: Option<Ipv4Addr>, port: u16) -> bool {
    let addr = (ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    let e = match proto {
        Protocol::Tcp => std::net::TcpListener::bind(addr).err(),
        Protocol::Udp => std::net::UdpSocket::bind(addr).err(),
        _ => None,
    };
    matches!(e, Some(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

impl HostGateway {
    pub fn new(binding: OvsBinding) -> HostGateway {
        HostGateway {
            binding,
            routed: tokio::sync::Mutex::new(HashSet::new()),
            iptables: tokio::sync::Mutex::new(()),
            published: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// The management port, forwarding and kuryr's chains. Idempotent: run at every start.
    pub async fn ensure_base(&self) -> Result<(), GatewayError> {
        self.binding
            .ensure_mgmt_port(&MgmtPort {
                iface_id: kuryr_ovn::keys::MGMT_PORT.to_string(),
                mac: kuryr_ovn::keys::MGMT_MAC.to_string(),
                address: kuryr_ovn::routing::mgmt_ip(),
                prefix: kuryr_ovn::keys::JOIN_PREFIX,
                address6: kuryr_ovn::routing::mgmt_ip6(),
                prefix6: kuryr_ovn::keys::JOIN_PREFIX_V6,
            })
            .await
            .map_err(|e| GatewayError::Host(e.to_string()))?;
        kuryr_binding::sysctl::write("net/ipv4/ip_forward", "1").map_err(|e| {
            GatewayError::Host(format!(
                "turn on IPv4 forwarding (net.ipv4.ip_forward): {e}"
            ))
        })?;
        let _g = self.iptables.lock().await;
        // IPv4: forwarding, egress NAT and published ports.
        forward_and_nat_chains(V4).await?;
        ensure_chain(V4, "nat", CHAIN_DNAT).await?;
        let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN_DNAT];
        ensure_rule(V4, "nat", "PREROUTING", &local, true).await?;
        let mut out = vec!["!", "-d", "127.0.0.0/8"];
        out.extend(local);
        ensure_rule(V4, "nat", "OUTPUT", &out, true).await?;
        // IPv6: egress only. A host without IPv6 filtering still serves IPv4.
        if let Err(e) = forward_and_nat_chains(V6).await {
            tracing::warn!(error = %e, "no IPv6 egress for routed networks on this host");
        }
        Ok(())
    }

    /// The route and source NAT of one routed network; free after the first call.
    pub async fn ensure_route(&self, route: HostRoute) -> Result<(), GatewayError> {
        let mut routed = self.routed.lock().await;
        if routed.contains(&route) {
            return Ok(());
        }
        if route.subnet.addr().is_ipv6() {
            // Only once an IPv6 network is routed here: forwarding turns off the host's
            // acceptance of router advertisements where accept_ra is 1 (see the README).
            kuryr_binding::sysctl::write("net/ipv6/conf/all/forwarding", "1").map_err(|e| {
                GatewayError::Host(format!(
                    "turn on IPv6 forwarding (net.ipv6.conf.all.forwarding): {e}"
                ))
            })?;
        }
        let mut routed_now = self.binding.route_subnet(route.subnet, route.via).await;
        if let Err(kuryr_binding::BindingError::MgmtUnreachable { .. }) = &routed_now {
            // The port lost its address (ovs-vswitchd re-creates internal ports when it
            // restarts): set it up again, once, with the routes the kernel dropped with it.
            self.repair(&routed).await?;
            routed_now = self.binding.route_subnet(route.subnet, route.via).await;
        }
        routed_now.map_err(|e| GatewayError::Host(e.to_string()))?;
        let rule = masquerade_rule(&route.subnet);
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        {
            let _g = self.iptables.lock().await;
            ensure_rule(
                family(&route.subnet),
                "nat",
                CHAIN_POSTROUTING,
                &rule,
                false,
            )
            .await?;
        }
        routed.insert(route);
        Ok(())
    }

    /// Sets the management port up again and re-adds the routes through it (`routed`, held
    /// by the caller): the kernel drops them with the port's address.
    async fn repair(&self, routed: &HashSet<HostRoute>) -> Result<(), GatewayError> {
        tracing::warn!(
            port = kuryr_binding::MGMT_IFNAME,
            routes = routed.len(),
            "the management port lost its address; setting it up again with its routes"
        );
        self.ensure_base().await?;
        for r in routed {
            self.binding
                .route_subnet(r.subnet, r.via)
                .await
                .map_err(|e| GatewayError::Host(e.to_string()))?;
        }
        Ok(())
    }

    /// Checks that the management port still holds its address and repairs it (and the
    /// routes through it) when not; `true` when it had to.
    pub async fn repair_if_needed(&self) -> Result<bool, GatewayError> {
        let routed = self.routed.lock().await;
        let ok = self
            .binding
            .mgmt_has_address(IpAddr::V4(kuryr_ovn::routing::mgmt_ip()))
            .await
            .map_err(|e| GatewayError::Host(e.to_string()))?;
        if ok {
            return Ok(false);
        }
        self.repair(&routed).await?;
        Ok(true)
    }

    /// Removes what [`HostGateway::ensure_route`] added; what is already gone is success.
    pub async fn remove_route(&self, route: HostRoute) -> Result<(), GatewayError> {
        let mut routed = self.routed.lock().await;
        routed.remove(&route);
        self.binding
            .unroute_subnet(route.subnet, route.via)
            .await
            .map_err(|e| GatewayError::Host(e.to_string()))?;
        let bin = family(&route.subnet);
        let rule = masquerade_rule(&route.subnet);
        let mut check = vec!["-t", "nat", "-C", CHAIN_POSTROUTING];
        check.extend(rule.iter().map(String::as_str));
        let _g = self.iptables.lock().await;
        if has_rule(bin, &check).await? {
            check[2] = "-D";
            iptables(bin, &check).await?;
        }
        Ok(())
    }

    /// `-p`: DNAT from the host's ports to the container. A host port another endpoint
    /// published, or that something on the host holds, is refused; a failure part way takes
    /// back what this call added.
    pub async fn publish(
        &self,
        endpoint_id: &str,
        container_ip: Ipv4Addr,
        bindings: &[PortBinding],
    ) -> Result<Vec<Published>, GatewayError> {
        let short: String = endpoint_id.chars().take(12).collect();
        let _g = self.iptables.lock().await;
        let existing: Vec<_> = rules("nat", CHAIN_DNAT)
            .await?
            .iter()
            .filter_map(|l| parse_dnat(l))
            .collect();
        let mut plan = Vec::new();
        for b in bindings {
            let proto = b.proto;
            if !matches!(proto, Protocol::Tcp | Protocol::Udp | Protocol::Sctp) {
                return Err(GatewayError::Invalid(format!(
                    "endpoint {short}: kuryr publishes tcp, udp and sctp ports, not protocol {proto}"
                )));
            }
            let host_ip = match b.host_ip {
                None => None,
                Some(IpAddr::V4(ip)) if ip.is_unspecified() => None,
                Some(IpAddr::V4(ip)) => Some(ip),
                Some(IpAddr::V6(ip)) => {
                    tracing::warn!(endpoint = %short, host_ip = %ip, "published ports on IPv6 host addresses are not supported by kuryr; skipped");
                    continue;
                }
            };
            if b.host_port == 0 {
                return Err(GatewayError::Invalid(format!(
                    "endpoint {short}: -p {}/{proto} has no host port; kuryr cannot tell Docker a port it chose: give one, as in -p 8080:{}",
                    b.port, b.port
                )));
            }
            let last = b.host_port_end.max(b.host_port);
            let taken = |port: u16| {
                existing.iter().any(|(p, ip, hp, ep)| {
                    *p == proto.to_string()
                        && *hp == port
                        && ep != endpoint_id
                        && (ip.is_none()
                            || host_ip.is_none()
                            || ip.as_deref() == host_ip.map(|h| h.to_string()).as_deref())
                }) || plan
                    .iter()
                    .any(|q: &Published| q.proto == proto && q.host_port == port)
                    || port_in_use(proto, host_ip, port)
            };
            let Some(port) = (b.host_port..=last).find(|p| !taken(*p)) else {
                let range = if last > b.host_port {
                    format!("{}-{last}", b.host_port)
                } else {
                    b.host_port.to_string()
                };
                let by = existing
                    .iter()
                    .find(|(p, _, hp, _)| *p == proto.to_string() && *hp == b.host_port)
                    .map(|(_, _, _, ep)| {
                        format!(" by endpoint {}", ep.chars().take(12).collect::<String>())
                    })
                    .unwrap_or_else(|| " by a process or another network's -p".into());
                return Err(GatewayError::Conflict(format!(
                    "endpoint {short}: host port {range}/{proto} is already in use on this host{by}: publish another host port"
                )));
            };
            plan.push(Published {
                proto,
                host_ip,
                host_port: port,
                container_ip,
                container_port: b.port,
            });
        }
        if !plan.is_empty() {
            // Recorded first: a failure part way still leaves something to take back.
            self.published_set().insert(endpoint_id.to_string());
        }
        for (i, p) in plan.iter().enumerate() {
            let rule = dnat_rule(p, endpoint_id);
            let mut add = vec!["-t", "nat", "-A", CHAIN_DNAT];
            add.extend(rule.iter().map(String::as_str));
            if let Err(e) = iptables(V4, &add).await.map(|_| ()) {
                for done in &plan[..i] {
                    let rule = dnat_rule(done, endpoint_id);
                    let mut del = vec!["-t", "nat", "-D", CHAIN_DNAT];
                    del.extend(rule.iter().map(String::as_str));
                    if let Err(undo) = iptables(V4, &del).await {
                        tracing::error!(endpoint = %short, error = %undo, "could not remove a published port after a failure");
                    }
                }
                return Err(e);
            }
        }
        Ok(plan)
    }

    /// Removes every port the endpoint published; idempotent.
    pub async fn unpublish(&self, endpoint_id: &str) -> Result<usize, GatewayError> {
        if !self.published_set().contains(endpoint_id) {
            return Ok(0);
        }
        let _g = self.iptables.lock().await;
        let mut removed = 0;
        for line in rules("nat", CHAIN_DNAT).await? {
            if parse_dnat(&line).is_none_or(|(.., ep)| ep != endpoint_id) {
                continue;
            }
            let words: Vec<&str> = line
                .split_whitespace()
                .map(|w| w.trim_matches('"'))
                .collect();
            let mut del = vec!["-t", "nat", "-D"];
            del.extend(words.iter().skip(1));
            iptables(V4, &del).await?;
            removed += 1;
        }
        self.published_set().remove(endpoint_id);
        Ok(removed)
    }

    fn published_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Endpoints with published ports on this host (read from iptables, and remembered),
    /// for reconciliation at start.
    pub async fn published_endpoints(&self) -> Result<HashSet<String>, GatewayError> {
        let eps: HashSet<String> = rules("nat", CHAIN_DNAT)
            .await?
            .iter()
            .filter_map(|l| parse_dnat(l).map(|(_, _, _, ep)| ep))
            .collect();
        self.published_set().extend(eps.iter().cloned());
        Ok(eps)
    }
}

/// The routes this host needs: those of the networks of the endpoints plugged here (by the
/// driver for Docker, or by `kuryr container create`).
pub async fn routes_in_use<Bk: Backend, Bd: Binding>(backend: &Bk, binding: &Bd) -> Vec<HostRoute> {
    let plugged = match binding.list().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the ports plugged on this host");
            return Vec::new();
        }
    };
    let mut networks = HashSet::new();
    for p in plugged {
        if let Ok(Some(ep)) = backend.endpoint(&p.endpoint_id).await {
            networks.insert(ep.network_id);
        }
    }
    let mut out: Vec<HostRoute> = networks
        .iter()
        .flat_map(|n| backend.host_routes(n))
        .collect();
    out.sort_by_key(|r| (r.subnet, r.via));
    out.dedup();
    out
}

/// For the command line, which plugs endpoints without a daemon: the host's gateway and the
/// routes of the networks, as the driver adds them for Docker's endpoints.
pub async fn route_networks<Bk: Backend>(
    backend: &Bk,
    binding: &OvsBinding,
    network_ids: &[&str],
) -> Result<(), GatewayError> {
    let routes: Vec<HostRoute> = network_ids
        .iter()
        .flat_map(|n| backend.host_routes(n))
        .collect();
    if routes.is_empty() {
        return Ok(());
    }
    let g = HostGateway::new(binding.clone());
    g.ensure_base().await?;
    for r in routes {
        g.ensure_route(r).await?;
    }
    Ok(())
}

/// For the command line: removes `routes` (a network's, read before its endpoint went) that no
/// endpoint plugged on this host needs any more.
pub async fn unroute_unused<Bk: Backend>(
    backend: &Bk,
    binding: &OvsBinding,
    routes: Vec<HostRoute>,
) -> Result<(), GatewayError> {
    if routes.is_empty() {
        return Ok(());
    }
    let kept = routes_in_use(backend, binding).await;
    let g = HostGateway::new(binding.clone());
    for r in routes.into_iter().filter(|r| !kept.contains(r)) {
        g.remove_route(r).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_read_back_from_iptables_save_lines() {
        let p = Published {
            proto: Protocol::Tcp,
            host_ip: Some("192.0.2.2".parse().unwrap()),
            host_port: 8080,
            container_ip: "10.1.0.2".parse().unwrap(),
            container_port: 80,
        };
        let line = format!("-A {CHAIN_DNAT} {}", dnat_rule(&p, "abc").join(" "));
        assert_eq!(
            parse_dnat(&line),
            Some(("tcp".into(), Some("192.0.2.2".into()), 8080, "abc".into()))
        );
        // iptables prints the comment quoted when it likes.
        let quoted = "-A KURYR-DNAT -p udp -m udp --dport 53 -m comment --comment \"kuryr:e1\" -j DNAT --to-destination 10.1.0.3:53";
        assert_eq!(
            parse_dnat(quoted),
            Some(("udp".into(), None, 53, "e1".into()))
        );
        assert_eq!(parse_dnat("-A KURYR-DNAT -j RETURN"), None);
    }
}
