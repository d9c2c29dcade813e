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
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The management interface's name on every host.
pub const MGMT_IFNAME: &str = "kuryr-mp0";
/// Marks the management port in the Open_vSwitch database (it is not an endpoint's port, so
/// it carries no `owner=kuryr` and reconciliation leaves it alone).
pub const MGMT_KEY: &str = "kuryr-mgmt";
const EEXIST: i32 = 17;
const ESRCH: i32 = 3;

/// What the management port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MgmtPort {
    /// The localport's name (`iface-id`).
    pub iface_id: String,
    pub mac: [u8; 6],
    pub address: Ipv4Addr,
    pub prefix: u8,
}

fn host_err(action: String) -> impl FnOnce(std::io::Error) -> BindingError {
    move |e| BindingError::Host {
        action,
        source: Box::new(e),
    }
}

/// `SUBNET via VIA` as a route message.
fn route_msg(
    subnet: ipnet::Ipv4Net,
    via: Ipv4Addr,
) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(subnet.network(), subnet.prefix_len())
        .gateway(via)
        .build()
}

impl OvsBinding {
    /// Creates the management port if it is missing and gives it its MAC and address.
    /// Idempotent, and safe when several kuryr processes of one host run it at once.
    pub async fn ensure_mgmt_port(&self, m: &MgmtPort) -> Result<(), BindingError> {
        let bridge = self.bridge().to_string();
        let mac_text = crate::names::format_mac(&m.mac);
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
                    .any(|a| matches!(a, LinkAttribute::Address(b) if b.as_slice() == m.mac));
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
                .address(m.mac.to_vec())
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
        let mut addrs = nl.address().get().set_link_index_filter(index).execute();
        let mut have = false;
        while let Some(a) = addrs
            .try_next()
            .await
            .map_err(netlink_io)
            .map_err(host_err(format!("read the addresses of {MGMT_IFNAME}")))?
        {
            have |= a.attributes.iter().any(
                |at| matches!(at, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == m.address),
            );
        }
        if !have {
            match nl
                .address()
                .add(index, IpAddr::V4(m.address), m.prefix)
                .execute()
                .await
                .map_err(netlink_io)
            {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(EEXIST) => {}
                Err(e) => {
                    return Err(host_err(format!(
                        "give {MGMT_IFNAME} the address {}/{}",
                        m.address, m.prefix
                    ))(e))
                }
            }
        }
        Ok(())
    }

    /// `ip route replace SUBNET via VIA`: the host reaches a routed network through its router.
    pub async fn route_subnet(
        &self,
        subnet: ipnet::Ipv4Net,
        via: Ipv4Addr,
    ) -> Result<(), BindingError> {
        let msg = route_msg(subnet, via);
        self.netlink_handle()
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(netlink_io)
            .map_err(host_err(format!("route {subnet} via {via}")))
    }

    /// Removes the route [`OvsBinding::route_subnet`] added; a route already gone is success.
    pub async fn unroute_subnet(
        &self,
        subnet: ipnet::Ipv4Net,
        via: Ipv4Addr,
    ) -> Result<(), BindingError> {
        let msg = route_msg(subnet, via);
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
