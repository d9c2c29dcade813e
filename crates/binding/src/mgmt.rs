//! The host's management port: an OVS internal interface on the integration bridge bound to
//! the join switch's `localport`, with the join network's host address. Routed networks reach
//! the host's kernel through it (egress, published ports) and the host reaches them back
//! through routes via their router's join address.
use crate::error::{netlink_io, BindingError};
use crate::ovs::OvsBinding;
use futures::TryStreamExt;
use kuryr_ovsdb::datum::{self, map, named_uuid};
use kuryr_ovsdb::txn::{eq, mutate_insert};
use kuryr_ovsdb::Txn;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The management interface's name on every host.
pub const MGMT_IFNAME: &str = "kuryr-mp0";
/// Marks the management port in the Open_vSwitch database (it is not an endpoint's port, so
/// it carries no `owner=kuryr` and reconciliation leaves it alone).
pub const MGMT_KEY: &str = "kuryr-mgmt";
const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const ENETUNREACH: i32 = 101;

/// What the management port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MgmtPort {
    /// The localport's name (`iface-id`).
    pub iface_id: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The IPv6 address, added without duplicate address detection (it is on every host,
    /// each on its own localport).
    pub address6: Ipv6Addr,
    pub prefix6: u8,
}

fn host_err(action: String) -> impl FnOnce(std::io::Error) -> BindingError {
    move |e| BindingError::Host {
        action,
        source: Box::new(e),
    }
}

/// `SUBNET via VIA` as a route message; both of one address family.
fn route_msg(
    subnet: ipnet::IpNet,
    via: IpAddr,
) -> Result<rtnetlink::packet_route::route::RouteMessage, BindingError> {
    match (subnet, via) {
        (ipnet::IpNet::V4(n), IpAddr::V4(v)) => Ok(RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(n.network(), n.prefix_len())
            .gateway(v)
            .build()),
        (ipnet::IpNet::V6(n), IpAddr::V6(v)) => Ok(RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(n.network(), n.prefix_len())
            .gateway(v)
            .build()),
        _ => Err(BindingError::Host {
            action: format!("route {subnet} via {via}"),
            source: "the subnet and the next hop are of different address families".into(),
        }),
    }
}

impl OvsBinding {
    /// Creates the management port if it is missing and gives it its MAC and address.
    /// Idempotent, and safe when several kuryr processes of one host run it at once.
    pub async fn ensure_mgmt_port(&self, m: &MgmtPort) -> Result<(), BindingError> {
        let bridge = self.bridge().to_string();
        let mac = crate::names::parse_mac(MGMT_IFNAME, &m.mac)?;
        let mac_text = crate::names::format_mac(&mac);
        self.ovs_client()
            .transact_with(Duration::from_secs(10), |rep| {
                if rep.table("Interface").one_by_name(MGMT_IFNAME).is_some() {
                    return Ok(None);
                }
                let mut t = Txn::new("Open_vSwitch");
                t.comment("kuryr: the host's management port");
                t.wait_absent("Interface", vec![eq("name", MGMT_IFNAME)]);
                t.insert(
                    "Interface",
                    json!({"name": MGMT_IFNAME, "type": "internal",
                           "external_ids": map([("iface-id", m.iface_id.as_str()),
                                                ("attached-mac", mac_text.as_str()),
                                                (MGMT_KEY, "true")])}),
                    Some("iface"),
                );
                t.insert(
                    "Port",
                    json!({"name": MGMT_IFNAME, "interfaces": datum::set([named_uuid("iface")]),
                           "external_ids": map([(MGMT_KEY, "true")])}),
                    Some("port"),
                );
                t.mutate(
                    "Bridge",
                    vec![eq("name", bridge.as_str())],
                    vec![mutate_insert("ports", datum::set([named_uuid("port")]))],
                );
                Ok(Some(t))
            })
            .await
            .map_err(|e| BindingError::Host {
                action: format!("add the management port {MGMT_IFNAME} to bridge {bridge}"),
                source: Box::new(e),
            })?;
        // ovs-vswitchd creates the device a moment after the transaction.
        let nl = self.netlink_handle();
        let deadline = Instant::now() + Duration::from_secs(10);
        let index = loop {
            let mut links = nl
                .link()
                .get()
                .match_name(MGMT_IFNAME.to_string())
                .execute();
            if let Ok(Some(msg)) = links.try_next().await {
                let mac_ok = msg
                    .attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::Address(b) if b.as_slice() == mac));
                break (msg.header.index, mac_ok);
            }
            if Instant::now() > deadline {
                return Err(BindingError::Host {
                    action: format!("wait for ovs-vswitchd to create {MGMT_IFNAME}"),
                    source: "no such device after 10 s: check ovs-vswitchd's log".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (index, mac_ok) = index;
        if !mac_ok {
            let msg = LinkUnspec::new_with_index(index)
                .address(mac.to_vec())
                .build();
            nl.link()
                .set(msg)
                .execute()
                .await
                .map_err(netlink_io)
                .map_err(host_err(format!("set the MAC of {MGMT_IFNAME}")))?;
        }
        nl.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink_io)
            .map_err(host_err(format!("set {MGMT_IFNAME} up")))?;
        // An address shared by every host must not wait for (or fail) duplicate detection.
        let dad = format!("net/ipv6/conf/{MGMT_IFNAME}/accept_dad");
        if let Err(e) = crate::sysctl::write(&dad, "0") {
            tracing::warn!(error = %e, "could not turn off duplicate address detection on {MGMT_IFNAME}");
        }
        let have = self.mgmt_addresses(index).await?;
        for (ip, prefix) in [
            (IpAddr::V4(m.address), m.prefix),
            (IpAddr::V6(m.address6), m.prefix6),
        ] {
            if have.contains(&ip) {
                continue;
            }
            match nl
                .address()
                .add(index, ip, prefix)
                .execute()
                .await
                .map_err(netlink_io)
            {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(EEXIST) => {}
                Err(e) if ip.is_ipv6() => {
                    // A host without IPv6 still routes IPv4.
                    tracing::warn!(error = %e, "could not give {MGMT_IFNAME} its IPv6 address {ip}/{prefix}: no IPv6 egress");
                }
                Err(e) => {
                    return Err(host_err(format!(
                        "give {MGMT_IFNAME} the address {ip}/{prefix}"
                    ))(e))
                }
            }
        }
        Ok(())
    }

    /// Whether the management port exists and holds `ip` (ovs-vswitchd re-creates internal
    /// ports without their addresses when it restarts).
    pub async fn mgmt_has_address(&self, ip: IpAddr) -> Result<bool, BindingError> {
        let nl = self.netlink_handle();
        let mut links = nl
            .link()
            .get()
            .match_name(MGMT_IFNAME.to_string())
            .execute();
        let index = match links.try_next().await {
            Ok(Some(msg)) => msg.header.index,
            _ => return Ok(false),
        };
        Ok(self.mgmt_addresses(index).await?.contains(&ip))
    }

    /// The addresses of the management port (link `index`).
    async fn mgmt_addresses(&self, index: u32) -> Result<Vec<IpAddr>, BindingError> {
        let mut have = Vec::new();
        let nl = self.netlink_handle();
        let mut addrs = nl.address().get().set_link_index_filter(index).execute();
        while let Some(a) = addrs
            .try_next()
            .await
            .map_err(netlink_io)
            .map_err(host_err(format!("read the addresses of {MGMT_IFNAME}")))?
        {
            for at in a.attributes {
                if let AddressAttribute::Address(ip) = at {
                    have.push(ip);
                }
            }
        }
        Ok(have)
    }

    /// `ip route add SUBNET via VIA`: the host reaches a routed network through its router.
    /// The same route already there is success; another route to exactly that subnet (one of
    /// the host's own links, or another router) is left alone and refused, so a network never
    /// takes over a route the host depends on.
    pub async fn route_subnet(
        &self,
        subnet: ipnet::IpNet,
        via: IpAddr,
    ) -> Result<(), BindingError> {
        let msg = route_msg(subnet, via)?;
        let added = self
            .netlink_handle()
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(netlink_io);
        match added {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(EEXIST) => match self.route_gateway(subnet).await? {
                Some(gw) if gw == via => Ok(()),
                other => Err(BindingError::Host {
                    action: format!("route {subnet} via {via}"),
                    source: format!(
                        "this host already routes {subnet}{}: give the network a subnet the host does not use, or no router (-o kuryr.router=none)",
                        other.map(|g| format!(" via {g}")).unwrap_or_else(|| " on a link of its own".into())
                    )
                    .into(),
                }),
            },
            Err(e) if e.raw_os_error() == Some(ENETUNREACH) => Err(BindingError::MgmtUnreachable {
                subnet: subnet.to_string(),
                via: via.to_string(),
            }),
            Err(e) => Err(host_err(format!("route {subnet} via {via}"))(e)),
        }
    }

    /// The gateway of the main table's route to exactly `subnet`, if there is one with a
    /// gateway (`None` for none, or for a link route).
    async fn route_gateway(&self, subnet: ipnet::IpNet) -> Result<Option<IpAddr>, BindingError> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        const MAIN_TABLE: u8 = 254;
        let query = match subnet {
            ipnet::IpNet::V4(_) => RouteMessageBuilder::<Ipv4Addr>::new().build(),
            ipnet::IpNet::V6(_) => RouteMessageBuilder::<Ipv6Addr>::new().build(),
        };
        let mut routes = self.netlink_handle().route().get(query).execute();
        let ip = |a: &RouteAddress| match a {
            RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
            RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
            _ => None,
        };
        while let Some(r) = routes
            .try_next()
            .await
            .map_err(netlink_io)
            .map_err(host_err(format!("read the host's routes to {subnet}")))?
        {
            if r.header.table != MAIN_TABLE
                || r.header.destination_prefix_length != subnet.prefix_len()
            {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => ip(d),
                _ => None,
            });
            if dst != Some(subnet.network()) {
                continue;
            }
            return Ok(r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => ip(g),
                _ => None,
            }));
        }
        Ok(None)
    }

    /// Removes the route [`OvsBinding::route_subnet`] added; a route already gone is success.
    pub async fn unroute_subnet(
        &self,
        subnet: ipnet::IpNet,
        via: IpAddr,
    ) -> Result<(), BindingError> {
        let msg = route_msg(subnet, via)?;
        match self
            .netlink_handle()
            .route()
            .del(msg)
            .execute()
            .await
            .map_err(netlink_io)
        {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(ESRCH) => Ok(()),
            Err(e) => Err(host_err(format!("remove the route to {subnet} via {via}"))(
                e,
            )),
        }
    }
}
