//! Replies a driver returns, converted to the [`crate::wire`] types by the server.
//!
//! The types make the wrong reply hard to write: gateways are typed per family, addresses carry
//! their mask, and fields left `None` are omitted from the JSON the way Docker expects.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::request::CreateEndpoint;
use crate::types::MacAddr;
use crate::wire::{self, label};

/// Where Docker keeps a network's state, or how far its connectivity reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// One host: every daemon calls CreateNetwork itself.
    #[default]
    Local,
    /// The swarm: the manager allocates, workers receive the result.
    Global,
}

impl Scope {
    /// `"local"` or `"global"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Global => "global",
        }
    }
}

/// Answer to `NetworkDriver.GetCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkCapabilities {
    /// Data scope.
    pub scope: Scope,
    /// Connectivity scope; `None` means the same as `scope`.
    pub connectivity_scope: Option<Scope>,
}

impl From<NetworkCapabilities> for wire::CapabilitiesResponse {
    fn from(c: NetworkCapabilities) -> Self {
        wire::CapabilitiesResponse {
            scope: c.scope.as_str().to_owned(),
            connectivity_scope: c
                .connectivity_scope
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            gw_alloc_checker: false,
        }
    }
}

/// Answer to `IpamDriver.GetCapabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpamCapabilities {
    /// Ask Docker to send the endpoint's MAC with RequestAddress.
    pub requires_mac_address: bool,
    /// Ask Docker to replay RequestPool/RequestAddress after it restarts.
    pub requires_request_replay: bool,
}

impl From<IpamCapabilities> for wire::IpamCapabilitiesResponse {
    fn from(c: IpamCapabilities) -> Self {
        wire::IpamCapabilitiesResponse {
            requires_mac_address: c.requires_mac_address,
            requires_request_replay: c.requires_request_replay,
        }
    }
}

/// Answer to `IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSpaces {
    /// Address space for local-scope networks.
    pub local: String,
    /// Address space for global-scope networks.
    pub global: String,
}

impl From<AddressSpaces> for wire::AddressSpacesResponse {
    fn from(a: AddressSpaces) -> Self {
        wire::AddressSpacesResponse {
            local_default_address_space: a.local,
            global_default_address_space: a.global,
        }
    }
}

/// Answer to `NetworkDriver.CreateEndpoint`: the interface fields the driver fills in.
///
/// Fill only what Docker left empty (typically the MAC): Docker refuses a value for a field it
/// already set and rolls the endpoint back with DeleteEndpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateEndpointReply {
    /// IPv4 address with its mask.
    pub address: Option<IpNet>,
    /// IPv6 address with its mask.
    pub address_ipv6: Option<IpNet>,
    /// MAC address.
    pub mac_address: Option<MacAddr>,
}

impl CreateEndpointReply {
    /// Drops the fields that repeat what Docker sent in `req`, so a driver that answers with the
    /// endpoint's full state does not trip Docker's "driver modified interface" check. Differing
    /// values are kept: they are the driver's error, and Docker reports and rolls them back.
    pub fn without_echoes(mut self, req: &CreateEndpoint) -> Self {
        if self.address.is_some() && self.address == req.address {
            self.address = None;
        }
        if self.address_ipv6.is_some() && self.address_ipv6 == req.address_ipv6 {
            self.address_ipv6 = None;
        }
        if self.mac_address.is_some() && self.mac_address == req.mac_address {
            self.mac_address = None;
        }
        self
    }
}

impl From<CreateEndpointReply> for wire::CreateEndpointResponse {
    fn from(r: CreateEndpointReply) -> Self {
        let iface = wire::EndpointInterface {
            address: r.address.map(|a| a.to_string()).unwrap_or_default(),
            address_ipv6: r.address_ipv6.map(|a| a.to_string()).unwrap_or_default(),
            mac_address: r.mac_address.map(|m| m.to_string()).unwrap_or_default(),
        };
        wire::CreateEndpointResponse {
            interface: (!iface.is_empty()).then_some(iface),
        }
    }
}

/// Answer to `NetworkDriver.EndpointOperInfo`: data shown by `docker inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointOperInfoReply {
    /// Free-form key/value data.
    pub value: BTreeMap<String, String>,
}

impl From<EndpointOperInfoReply> for wire::EndpointOperInfoResponse {
    fn from(r: EndpointOperInfoReply) -> Self {
        wire::EndpointOperInfoResponse {
            value: r
                .value
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        }
    }
}

/// The interface Docker moves into the container after Join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName {
    /// Host-side name of the container end of the veth pair.
    pub src_name: String,
    /// Name prefix inside the container, normally `eth`.
    pub dst_prefix: String,
    /// The exact name inside the container, if the endpoint asked for one.
    pub dst_name: Option<String>,
}

/// Where a [`StaticRoute`]'s traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Through a router.
    Via(IpAddr),
    /// The destination is on the link.
    Connected,
}

/// A route Docker installs in the container after Join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    /// Destination network.
    pub destination: IpNet,
    /// Next hop.
    pub next_hop: NextHop,
}

/// Answer to `NetworkDriver.Join`.
///
/// Without a gateway, a default route or `disable_gateway_service`, Docker adds a
/// `docker_gwbridge` interface to the container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinReply {
    /// The interface to move into the container.
    pub interface_name: Option<InterfaceName>,
    /// IPv4 default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    pub gateway_ipv6: Option<Ipv6Addr>,
    /// Extra routes.
    pub static_routes: Vec<StaticRoute>,
    /// Keep the container off `docker_gwbridge`.
    pub disable_gateway_service: bool,
}

impl From<JoinReply> for wire::JoinResponse {
    fn from(r: JoinReply) -> Self {
        wire::JoinResponse {
            interface_name: r.interface_name.map(|i| wire::InterfaceName {
                src_name: i.src_name,
                dst_prefix: i.dst_prefix,
                dst_name: i.dst_name.unwrap_or_default(),
            }),
            gateway: r.gateway.map(|g| g.to_string()).unwrap_or_default(),
            gateway_ipv6: r.gateway_ipv6.map(|g| g.to_string()).unwrap_or_default(),
            static_routes: r
                .static_routes
                .into_iter()
                .map(|route| match route.next_hop {
                    NextHop::Via(hop) => wire::StaticRoute {
                        destination: route.destination.to_string(),
                        route_type: wire::ROUTE_TYPE_NEXT_HOP,
                        next_hop: hop.to_string(),
                    },
                    NextHop::Connected => wire::StaticRoute {
                        destination: route.destination.to_string(),
                        route_type: wire::ROUTE_TYPE_CONNECTED,
                        next_hop: String::new(),
                    },
                })
                .collect(),
            disable_gateway_service: r.disable_gateway_service,
        }
    }
}

/// Answer to `NetworkDriver.AllocateNetwork`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocateNetworkReply {
    /// Options the workers receive in their CreateNetwork.
    pub options: BTreeMap<String, String>,
}

impl From<AllocateNetworkReply> for wire::AllocateNetworkResponse {
    fn from(r: AllocateNetworkReply) -> Self {
        wire::AllocateNetworkResponse { options: r.options }
    }
}

/// Answer to `IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPoolReply {
    /// Stable id Docker stores and sends back in every later IPAM call.
    pub pool_id: String,
    /// The pool.
    pub pool: IpNet,
    /// Pool metadata.
    pub data: BTreeMap<String, String>,
}

impl RequestPoolReply {
    /// A reply with no metadata.
    pub fn new(pool_id: impl Into<String>, pool: IpNet) -> Self {
        RequestPoolReply {
            pool_id: pool_id.into(),
            pool,
            data: BTreeMap::new(),
        }
    }

    /// Tells Docker to use `gateway` (with the pool's mask) instead of asking for one.
    pub fn with_gateway(mut self, gateway: IpNet) -> Self {
        self.data
            .insert(label::GATEWAY.to_owned(), gateway.to_string());
        self
    }
}

impl From<RequestPoolReply> for wire::RequestPoolResponse {
    fn from(r: RequestPoolReply) -> Self {
        wire::RequestPoolResponse {
            pool_id: r.pool_id,
            pool: r.pool.to_string(),
            data: r.data,
        }
    }
}

/// Answer to `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAddressReply {
    /// The address with the pool's mask (Docker requires the CIDR form).
    pub address: IpNet,
    /// Address metadata.
    pub data: BTreeMap<String, String>,
}

impl RequestAddressReply {
    /// A reply with no metadata.
    pub fn new(address: IpNet) -> Self {
        RequestAddressReply {
            address,
            data: BTreeMap::new(),
        }
    }
}

impl From<RequestAddressReply> for wire::RequestAddressResponse {
    fn from(r: RequestAddressReply) -> Self {
        wire::RequestAddressResponse {
            address: r.address.to_string(),
            data: r.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::EndpointOptions;
    use serde_json::{json, Value};

    fn to_json(v: impl serde::Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn endpoint_request(address: Option<&str>, mac: Option<&str>) -> CreateEndpoint {
        CreateEndpoint {
            network_id: "a".repeat(64).parse().unwrap(),
            endpoint_id: "b".repeat(64).parse().unwrap(),
            address: address.map(|a| a.parse().unwrap()),
            address_ipv6: None,
            mac_address: mac.map(|m| m.parse().unwrap()),
            options: EndpointOptions::default(),
        }
    }

    #[test]
    fn capabilities_encode_scope_and_omit_an_unset_connectivity_scope() {
        let local = NetworkCapabilities::default();
        assert_eq!(
            to_json(wire::CapabilitiesResponse::from(local)),
            json!({"Scope": "local"})
        );
        let global = NetworkCapabilities {
            scope: Scope::Global,
            connectivity_scope: Some(Scope::Local),
        };
        assert_eq!(
            to_json(wire::CapabilitiesResponse::from(global)),
            json!({"Scope": "global", "ConnectivityScope": "local"})
        );
        let ipam = IpamCapabilities {
            requires_mac_address: true,
            requires_request_replay: false,
        };
        assert_eq!(
            to_json(wire::IpamCapabilitiesResponse::from(ipam)),
            json!({"RequiresMACAddress": true, "RequiresRequestReplay": false})
        );
    }

    #[test]
    fn create_endpoint_reply_is_empty_when_nothing_is_filled() {
        assert_eq!(
            to_json(wire::CreateEndpointResponse::from(
                CreateEndpointReply::default()
            )),
            json!({})
        );
        let reply = CreateEndpointReply {
            mac_address: Some("fa:16:3e:00:00:01".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            to_json(wire::CreateEndpointResponse::from(reply)),
            json!({"Interface": {"MacAddress": "fa:16:3e:00:00:01"}})
        );
    }

    #[test]
    fn echoes_of_what_docker_set_are_dropped_and_conflicts_kept() {
        let req = endpoint_request(Some("10.1.0.2/24"), Some("02:42:0a:01:00:02"));
        let echo = CreateEndpointReply {
            address: req.address,
            address_ipv6: None,
            mac_address: req.mac_address,
        };
        assert_eq!(echo.without_echoes(&req), CreateEndpointReply::default());

        let conflicting = CreateEndpointReply {
            address: Some("10.1.0.3/24".parse().unwrap()),
            address_ipv6: None,
            mac_address: req.mac_address,
        };
        assert_eq!(
            conflicting.without_echoes(&req),
            CreateEndpointReply {
                address: Some("10.1.0.3/24".parse().unwrap()),
                ..Default::default()
            }
        );

        let fills_mac = CreateEndpointReply {
            mac_address: Some("fa:16:3e:00:00:01".parse().unwrap()),
            ..Default::default()
        };
        let req = endpoint_request(Some("10.1.0.2/24"), None);
        assert_eq!(fills_mac.without_echoes(&req), fills_mac);
    }

    #[test]
    fn join_reply_encodes_plain_gateways_and_route_types() {
        let reply = JoinReply {
            interface_name: Some(InterfaceName {
                src_name: "t_c3f2a6b1c0d".into(),
                dst_prefix: "eth".into(),
                dst_name: None,
            }),
            gateway: Some("10.1.0.1".parse().unwrap()),
            gateway_ipv6: Some("fd00:1::1".parse().unwrap()),
            static_routes: vec![
                StaticRoute {
                    destination: "10.9.0.0/16".parse().unwrap(),
                    next_hop: NextHop::Via("10.1.0.254".parse().unwrap()),
                },
                StaticRoute {
                    destination: "10.8.0.0/16".parse().unwrap(),
                    next_hop: NextHop::Connected,
                },
            ],
            disable_gateway_service: true,
        };
        assert_eq!(
            to_json(wire::JoinResponse::from(reply)),
            json!({
                "InterfaceName": {"SrcName": "t_c3f2a6b1c0d", "DstPrefix": "eth"},
                "Gateway": "10.1.0.1",
                "GatewayIPv6": "fd00:1::1",
                "StaticRoutes": [
                    {"Destination": "10.9.0.0/16", "RouteType": 0, "NextHop": "10.1.0.254"},
                    {"Destination": "10.8.0.0/16", "RouteType": 1}
                ],
                "DisableGatewayService": true
            })
        );
        let bare = JoinReply {
            interface_name: Some(InterfaceName {
                src_name: "t_c1".into(),
                dst_prefix: "eth".into(),
                dst_name: Some("data0".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            to_json(wire::JoinResponse::from(bare)),
            json!({"InterfaceName": {"SrcName": "t_c1", "DstPrefix": "eth", "DstName": "data0"}})
        );
    }

    #[test]
    fn ipam_replies_use_cidr_forms() {
        let pool = RequestPoolReply::new("kuryrPool-10.1.0.0/24", "10.1.0.0/24".parse().unwrap())
            .with_gateway("10.1.0.1/24".parse().unwrap());
        assert_eq!(
            to_json(wire::RequestPoolResponse::from(pool)),
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Pool": "10.1.0.0/24",
                   "Data": {"com.docker.network.gateway": "10.1.0.1/24"}})
        );
        let addr = RequestAddressReply::new("fd00:1::5/64".parse().unwrap());
        assert_eq!(
            to_json(wire::RequestAddressResponse::from(addr)),
            json!({"Address": "fd00:1::5/64", "Data": {}})
        );
        let spaces = AddressSpaces {
            local: "local_scope".into(),
            global: "global_scope".into(),
        };
        assert_eq!(
            to_json(wire::AddressSpacesResponse::from(spaces)),
            json!({"LocalDefaultAddressSpace": "local_scope", "GlobalDefaultAddressSpace": "global_scope"})
        );
        let info = EndpointOperInfoReply {
            value: [("port".to_owned(), "3c1e".to_owned())].into(),
        };
        assert_eq!(
            to_json(wire::EndpointOperInfoResponse::from(info)),
            json!({"Value": {"port": "3c1e"}})
        );
    }
}
