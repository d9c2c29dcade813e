//! The JSON Docker sends and expects, field for field.
//!
//! These types mirror moby's `drivers/remote/api` and `ipams/remote/api` packages. Decoding is
//! lenient the way Go's `encoding/json` is (missing fields and `null` take the zero value, unknown
//! fields are ignored); encoding leaves out the optional reply fields Docker wants absent.
//! Nothing here is validated: see [`crate::request`] for the checked types handed to a driver.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RequestError;

/// Content type of every reply (Docker ignores it, but it names the protocol version spoken).
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Name under which the network API is announced in `Plugin.Activate`.
pub const NETWORK_DRIVER: &str = "NetworkDriver";

/// Name under which the IPAM API is announced in `Plugin.Activate`.
pub const IPAM_DRIVER: &str = "IpamDriver";

/// Keys Docker uses in the `Options` maps and in IPAM `Data`.
pub mod label {
    /// CreateNetwork option holding the `-o key=value` options as a string map.
    pub const GENERIC: &str = "com.docker.network.generic";
    /// CreateNetwork option: IPv6 is enabled (bool).
    pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
    /// CreateNetwork option, Docker 28+: IPv4 is enabled (bool; absent means enabled).
    pub const ENABLE_IPV4: &str = "com.docker.network.enable_ipv4";
    /// CreateNetwork option: `--internal` (bool).
    pub const INTERNAL: &str = "com.docker.network.internal";
    /// Endpoint MAC: base64 bytes in CreateEndpoint's options, `aa:bb:..` text in RequestAddress's.
    pub const MAC_ADDRESS: &str = "com.docker.network.endpoint.macaddress";
    /// Endpoint option: `[{"Proto": 6, "Port": 80}]`.
    pub const EXPOSED_PORTS: &str = "com.docker.network.endpoint.exposedports";
    /// Endpoint option: published ports, `[{"Proto", "IP", "Port", "HostIP", "HostPort", "HostPortEnd"}]`.
    pub const PORT_MAP: &str = "com.docker.network.portmap";
    /// RequestAddress option naming the kind of address asked for.
    pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
    /// Value of [`REQUEST_ADDRESS_TYPE`] for the network's gateway, and the RequestPool `Data` key
    /// that hands Docker a gateway.
    pub const GATEWAY: &str = "com.docker.network.gateway";
    /// RequestAddress (and RequestPool) option a Swarm manager sends with every allocation
    /// (`"true"`): hand out addresses in order, not the one released last.
    pub const IPAM_SERIAL: &str = "com.docker.network.ipam.serial";
    /// Endpoint option, Docker 28+: the interface name asked for inside the container.
    pub const ENDPOINT_IFNAME: &str = "com.docker.network.endpoint.ifname";
    /// Endpoint option, Docker 27+: sysctls Docker itself sets on the interface.
    pub const ENDPOINT_SYSCTLS: &str = "com.docker.network.endpoint.sysctls";
    /// RequestAddress option, Docker 29+: the endpoint's (container's) name.
    pub const ENDPOINT_NAME: &str = "com.docker.network.endpoint.name";
}

/// One call of the plugin protocol, as named in the request path `/<Iface>.<Method>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `Plugin.Activate`.
    Activate,
    /// `NetworkDriver.GetCapabilities`.
    NetworkGetCapabilities,
    /// `NetworkDriver.CreateNetwork`.
    CreateNetwork,
    /// `NetworkDriver.DeleteNetwork`.
    DeleteNetwork,
    /// `NetworkDriver.CreateEndpoint`.
    CreateEndpoint,
    /// `NetworkDriver.EndpointOperInfo`.
    EndpointOperInfo,
    /// `NetworkDriver.DeleteEndpoint`.
    DeleteEndpoint,
    /// `NetworkDriver.Join`.
    Join,
    /// `NetworkDriver.Leave`.
    Leave,
    /// `NetworkDriver.ProgramExternalConnectivity`.
    ProgramExternalConnectivity,
    /// `NetworkDriver.RevokeExternalConnectivity`.
    RevokeExternalConnectivity,
    /// `NetworkDriver.DiscoverNew`.
    DiscoverNew,
    /// `NetworkDriver.DiscoverDelete`.
    DiscoverDelete,
    /// `NetworkDriver.AllocateNetwork`.
    AllocateNetwork,
    /// `NetworkDriver.FreeNetwork`.
    FreeNetwork,
    /// `IpamDriver.GetCapabilities`.
    IpamGetCapabilities,
    /// `IpamDriver.GetDefaultAddressSpaces`.
    GetDefaultAddressSpaces,
    /// `IpamDriver.RequestPool`.
    RequestPool,
    /// `IpamDriver.ReleasePool`.
    ReleasePool,
    /// `IpamDriver.RequestAddress`.
    RequestAddress,
    /// `IpamDriver.ReleaseAddress`.
    ReleaseAddress,
}

const CALLS: [(Call, &str); 21] = [
    (Call::Activate, "Plugin.Activate"),
    (
        Call::NetworkGetCapabilities,
        "NetworkDriver.GetCapabilities",
    ),
    (Call::CreateNetwork, "NetworkDriver.CreateNetwork"),
    (Call::DeleteNetwork, "NetworkDriver.DeleteNetwork"),
    (Call::CreateEndpoint, "NetworkDriver.CreateEndpoint"),
    (Call::EndpointOperInfo, "NetworkDriver.EndpointOperInfo"),
    (Call::DeleteEndpoint, "NetworkDriver.DeleteEndpoint"),
    (Call::Join, "NetworkDriver.Join"),
    (Call::Leave, "NetworkDriver.Leave"),
    (
        Call::ProgramExternalConnectivity,
        "NetworkDriver.ProgramExternalConnectivity",
    ),
    (
        Call::RevokeExternalConnectivity,
        "NetworkDriver.RevokeExternalConnectivity",
    ),
    (Call::DiscoverNew, "NetworkDriver.DiscoverNew"),
    (Call::DiscoverDelete, "NetworkDriver.DiscoverDelete"),
    (Call::AllocateNetwork, "NetworkDriver.AllocateNetwork"),
    (Call::FreeNetwork, "NetworkDriver.FreeNetwork"),
    (Call::IpamGetCapabilities, "IpamDriver.GetCapabilities"),
    (
        Call::GetDefaultAddressSpaces,
        "IpamDriver.GetDefaultAddressSpaces",
    ),
    (Call::RequestPool, "IpamDriver.RequestPool"),
    (Call::ReleasePool, "IpamDriver.ReleasePool"),
    (Call::RequestAddress, "IpamDriver.RequestAddress"),
    (Call::ReleaseAddress, "IpamDriver.ReleaseAddress"),
];

impl Call {
    /// Every call, in protocol order.
    pub fn all() -> impl Iterator<Item = Call> {
        CALLS.iter().map(|(call, _)| *call)
    }

    /// Looks a call up by its full name (`"NetworkDriver.Join"`); the name is case-sensitive as
    /// in Docker.
    pub fn from_name(name: &str) -> Option<Call> {
        CALLS.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    /// Looks a call up by its request path (`"/NetworkDriver.Join"`).
    pub fn from_path(path: &str) -> Option<Call> {
        path.strip_prefix('/').and_then(Call::from_name)
    }

    /// Full name, `<Iface>.<Method>`, as in the request path.
    pub fn name(self) -> &'static str {
        CALLS
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, n)| n)
    }

    /// Method part of the name (`"Join"`), used in error messages.
    pub fn method(self) -> &'static str {
        let name = self.name();
        name.split_once('.').map_or(name, |(_, m)| m)
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes a request body the way Docker's peers must: an empty (or all-whitespace) body is `{}`.
///
/// Errors name `call` and, for a value of the wrong type, the path of the field
/// (`IPv4Data[0].Pool`).
pub fn decode<T: DeserializeOwned>(call: Call, body: &[u8]) -> Result<T, RequestError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let body: &[u8] = match start {
        None => b"{}",
        Some(i) if body[i] == b'{' => body,
        Some(_) => {
            return Err(RequestError::Malformed {
                call: call.method(),
                detail: "the body is not a JSON object".to_owned(),
            })
        }
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let decoded: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match decoded {
        // Trailing garbage after the object makes the body malformed too.
        Ok(value) => de
            .end()
            .map(|()| value)
            .map_err(|e| RequestError::Malformed {
                call: call.method(),
                detail: e.to_string(),
            }),
        Err(err) => {
            let field = err.path().to_string();
            let inner = err.into_inner();
            Err(if inner.is_data() && field != "." {
                RequestError::WrongType {
                    call: call.method(),
                    field,
                    detail: inner.to_string(),
                }
            } else {
                RequestError::Malformed {
                    call: call.method(),
                    detail: inner.to_string(),
                }
            })
        }
    }
}

/// Go's decoder gives `null` the zero value; serde's `default` only covers a missing field.
fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Free-form options (`map[string]interface{}` in Go).
pub type Options = Map<String, Value>;

/// String options (`map[string]string` in Go).
pub type StringOptions = BTreeMap<String, String>;

/// A body with no fields: the reply to most calls, `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The error reply, `{"Err": "..."}`, understood by both APIs when sent with a non-200 status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Message Docker shows to the user, after its own `<Iface>.<Method>: ` prefix.
    #[serde(rename = "Err", default, deserialize_with = "nullable")]
    pub err: String,
}

/// Reply to `Plugin.Activate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// APIs the plugin serves: `NetworkDriver`, `IpamDriver`.
    #[serde(rename = "Implements", default, deserialize_with = "nullable")]
    pub implements: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// NetworkDriver

/// Reply to `NetworkDriver.GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// `"local"` or `"global"`: where Docker keeps the network's state.
    #[serde(rename = "Scope", default, deserialize_with = "nullable")]
    pub scope: String,
    /// `"local"` or `"global"`; Docker uses `Scope` when empty.
    #[serde(
        rename = "ConnectivityScope",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub connectivity_scope: String,
    /// Docker 28+: the driver answers `GwAllocCheck`. Omitted when false.
    #[serde(
        rename = "GwAllocChecker",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub gw_alloc_checker: bool,
}

/// One address family's pool of a network (Go `driverapi.IPAMData`), all addresses in CIDR form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamData {
    /// Address space the pool came from.
    #[serde(rename = "AddressSpace", default, deserialize_with = "nullable")]
    pub address_space: String,
    /// The pool, e.g. `"10.1.0.0/24"`.
    #[serde(
        rename = "Pool",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub pool: String,
    /// The gateway with the pool's mask, e.g. `"10.1.0.1/24"`; absent when there is none.
    #[serde(
        rename = "Gateway",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway: String,
    /// Reserved addresses (`--aux-address name=ip`), CIDR form.
    #[serde(
        rename = "AuxAddresses",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

/// Body of `NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateNetworkRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// Network options: `com.docker.network.generic` (the `-o` options),
    /// `com.docker.network.enable_ipv6`, `com.docker.network.internal`, ...
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: Options,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data", default, deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data", default, deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpamData>,
}

/// Body of `NetworkDriver.DeleteNetwork` and `NetworkDriver.FreeNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
}

/// Addresses of an endpoint's interface, in CreateEndpoint's request and reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInterface {
    /// IPv4 address in CIDR form, e.g. `"10.1.0.2/24"`.
    #[serde(
        rename = "Address",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub address: String,
    /// IPv6 address in CIDR form.
    #[serde(
        rename = "AddressIPv6",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    /// MAC address as `aa:bb:cc:dd:ee:ff`.
    #[serde(
        rename = "MacAddress",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
}

impl EndpointInterface {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.address.is_empty() && self.address_ipv6.is_empty() && self.mac_address.is_empty()
    }
}

/// Body of `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateEndpointRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// Docker's endpoint id.
    #[serde(rename = "EndpointID", default, deserialize_with = "nullable")]
    pub endpoint_id: String,
    /// What Docker already decided about the interface; `null` in old daemons.
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
    /// Endpoint options: MAC (base64), exposed ports, port map, `--driver-opt` strings.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: Options,
}

/// Reply to `NetworkDriver.CreateEndpoint`: `{}` or the interface fields the driver filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEndpointResponse {
    /// Only the fields Docker left empty; absent when the driver fills nothing.
    #[serde(rename = "Interface", default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<EndpointInterface>,
}

/// Body of the calls naming one endpoint: DeleteEndpoint, EndpointOperInfo, Leave,
/// RevokeExternalConnectivity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// Docker's endpoint id.
    #[serde(rename = "EndpointID", default, deserialize_with = "nullable")]
    pub endpoint_id: String,
}

/// Reply to `NetworkDriver.EndpointOperInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointOperInfoResponse {
    /// Free-form operational data, shown by `docker inspect`; `{}` at least.
    #[serde(rename = "Value", default, deserialize_with = "nullable")]
    pub value: Options,
}

/// Body of `NetworkDriver.Join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// Docker's endpoint id.
    #[serde(rename = "EndpointID", default, deserialize_with = "nullable")]
    pub endpoint_id: String,
    /// The container's network namespace path, `/var/run/docker/netns/<id>`.
    #[serde(rename = "SandboxKey", default, deserialize_with = "nullable")]
    pub sandbox_key: String,
    /// Sandbox options (exposed ports, port map, ...).
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: Options,
}

/// The interface Docker moves into the container after Join.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceName {
    /// Host-side name of the container end of the veth pair.
    #[serde(rename = "SrcName", default, deserialize_with = "nullable")]
    pub src_name: String,
    /// Prefix Docker renames it to inside the container, `eth` -> `eth0`, `eth1`, ...
    #[serde(rename = "DstPrefix", default, deserialize_with = "nullable")]
    pub dst_prefix: String,
    /// The exact name inside the container, when the endpoint asked for one
    /// (`com.docker.network.endpoint.ifname`); Docker versions that do not read it use
    /// `DstPrefix`.
    #[serde(
        rename = "DstName",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub dst_name: String,
}

/// A route Docker installs in the container after Join.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// Destination in CIDR form.
    #[serde(rename = "Destination", default, deserialize_with = "nullable")]
    pub destination: String,
    /// 0 = via `NextHop`, 1 = connected.
    #[serde(rename = "RouteType", default, deserialize_with = "nullable")]
    pub route_type: u8,
    /// Plain IP; absent for connected routes.
    #[serde(
        rename = "NextHop",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub next_hop: String,
}

/// Route type of a [`StaticRoute`] whose traffic goes via `NextHop`.
pub const ROUTE_TYPE_NEXT_HOP: u8 = 0;
/// Route type of a [`StaticRoute`] whose destination is on the link.
pub const ROUTE_TYPE_CONNECTED: u8 = 1;

/// Reply to `NetworkDriver.Join`; every field is omitted when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The interface to move into the container.
    #[serde(
        rename = "InterfaceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_name: Option<InterfaceName>,
    /// IPv4 default gateway, a plain IP.
    #[serde(
        rename = "Gateway",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway: String,
    /// IPv6 default gateway, a plain IP.
    #[serde(
        rename = "GatewayIPv6",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway_ipv6: String,
    /// Extra routes.
    #[serde(
        rename = "StaticRoutes",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub static_routes: Vec<StaticRoute>,
    /// Tells Docker not to attach the container to `docker_gwbridge`.
    #[serde(
        rename = "DisableGatewayService",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub disable_gateway_service: bool,
}

/// Body of `NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// Docker's endpoint id.
    #[serde(rename = "EndpointID", default, deserialize_with = "nullable")]
    pub endpoint_id: String,
    /// Sandbox options, as in Join.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: Options,
}

/// Body of `NetworkDriver.DiscoverNew` and `NetworkDriver.DiscoverDelete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryNotification {
    /// 1 = node discovery (the only kind Docker forwards).
    #[serde(rename = "DiscoveryType", default, deserialize_with = "nullable")]
    pub discovery_type: u32,
    /// Kind-specific data, e.g. `{"Address": "...", "self": true}`.
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: Value,
}

/// Body of `NetworkDriver.AllocateNetwork` (swarm manager, global scope).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkRequest {
    /// Docker's network id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// Network options, strings only here.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: StringOptions,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data", default, deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data", default, deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpamData>,
}

/// Reply to `NetworkDriver.AllocateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkResponse {
    /// Options the workers receive in their CreateNetwork.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: StringOptions,
}

/// An element of the `com.docker.network.endpoint.exposedports` option (Go `types.TransportPort`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportPort {
    /// IP protocol number: 1 icmp, 6 tcp, 17 udp, 132 sctp.
    #[serde(rename = "Proto", default, deserialize_with = "nullable")]
    pub proto: u8,
    /// Port number.
    #[serde(rename = "Port", default, deserialize_with = "nullable")]
    pub port: u16,
}

/// An element of the `com.docker.network.portmap` option (Go `types.PortBinding`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// IP protocol number.
    #[serde(rename = "Proto", default, deserialize_with = "nullable")]
    pub proto: u8,
    /// Container address, `""` when unset.
    #[serde(rename = "IP", default, deserialize_with = "nullable")]
    pub ip: String,
    /// Container port.
    #[serde(rename = "Port", default, deserialize_with = "nullable")]
    pub port: u16,
    /// Host address, `""` when unset.
    #[serde(rename = "HostIP", default, deserialize_with = "nullable")]
    pub host_ip: String,
    /// First host port.
    #[serde(rename = "HostPort", default, deserialize_with = "nullable")]
    pub host_port: u16,
    /// Last host port of a range, 0 when not a range.
    #[serde(rename = "HostPortEnd", default, deserialize_with = "nullable")]
    pub host_port_end: u16,
}

// ---------------------------------------------------------------------------------------------
// IpamDriver

/// Reply to `IpamDriver.GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamCapabilitiesResponse {
    /// Docker then sends the endpoint's MAC in RequestAddress's options.
    #[serde(rename = "RequiresMACAddress", default, deserialize_with = "nullable")]
    pub requires_mac_address: bool,
    /// Docker then replays RequestPool/RequestAddress after a restart.
    #[serde(
        rename = "RequiresRequestReplay",
        default,
        deserialize_with = "nullable"
    )]
    pub requires_request_replay: bool,
}

/// Reply to `IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSpacesResponse {
    /// Address space for local-scope networks.
    #[serde(
        rename = "LocalDefaultAddressSpace",
        default,
        deserialize_with = "nullable"
    )]
    pub local_default_address_space: String,
    /// Address space for global-scope networks.
    #[serde(
        rename = "GlobalDefaultAddressSpace",
        default,
        deserialize_with = "nullable"
    )]
    pub global_default_address_space: String,
}

/// Body of `IpamDriver.RequestPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolRequest {
    /// Address space, from GetDefaultAddressSpaces.
    #[serde(rename = "AddressSpace", default, deserialize_with = "nullable")]
    pub address_space: String,
    /// `--subnet`, CIDR, or `""` to let the driver choose.
    #[serde(rename = "Pool", default, deserialize_with = "nullable")]
    pub pool: String,
    /// `--ip-range`, CIDR, or `""`.
    #[serde(rename = "SubPool", default, deserialize_with = "nullable")]
    pub sub_pool: String,
    /// `--ipam-opt` options; `null` when none.
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: StringOptions,
    /// An IPv6 pool is wanted.
    #[serde(rename = "V6", default, deserialize_with = "nullable")]
    pub v6: bool,
}

/// Reply to `IpamDriver.RequestPool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolResponse {
    /// Stable id Docker stores and sends back.
    #[serde(rename = "PoolID", default, deserialize_with = "nullable")]
    pub pool_id: String,
    /// The pool, CIDR.
    #[serde(rename = "Pool", default, deserialize_with = "nullable")]
    pub pool: String,
    /// Pool metadata, e.g. `com.docker.network.gateway`.
    #[serde(rename = "Data", default, deserialize_with = "nullable")]
    pub data: StringOptions,
}

/// Body of `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePoolRequest {
    /// Id from RequestPool.
    #[serde(rename = "PoolID", default, deserialize_with = "nullable")]
    pub pool_id: String,
}

/// Body of `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressRequest {
    /// Id from RequestPool.
    #[serde(rename = "PoolID", default, deserialize_with = "nullable")]
    pub pool_id: String,
    /// Preferred address as a plain IP (`--ip`, `--gateway`), or `""`.
    #[serde(rename = "Address", default, deserialize_with = "nullable")]
    pub address: String,
    /// `RequestAddressType`, the endpoint's MAC, ...
    #[serde(rename = "Options", default, deserialize_with = "nullable")]
    pub options: StringOptions,
}

/// Reply to `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressResponse {
    /// The address in CIDR form (mandatory), e.g. `"10.1.0.5/24"`.
    #[serde(rename = "Address", default, deserialize_with = "nullable")]
    pub address: String,
    /// Address metadata.
    #[serde(rename = "Data", default, deserialize_with = "nullable")]
    pub data: StringOptions,
}

/// Body of `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAddressRequest {
    /// Id from RequestPool.
    #[serde(rename = "PoolID", default, deserialize_with = "nullable")]
    pub pool_id: String,
    /// The address, plain IP.
    #[serde(rename = "Address", default, deserialize_with = "nullable")]
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NID: &str = "3f2a6b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
    const EID: &str = "9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a3f2a6b1c0d";

    fn body(v: serde_json::Value) -> Vec<u8> {
        // Docker's client uses json.Encoder, which ends the body with a newline.
        let mut b = serde_json::to_vec(&v).unwrap();
        b.push(b'\n');
        b
    }

    #[test]
    fn call_names_and_paths_round_trip() {
        assert_eq!(Call::all().count(), 21);
        for call in Call::all() {
            assert_eq!(Call::from_name(call.name()), Some(call));
            assert_eq!(Call::from_path(&format!("/{}", call.name())), Some(call));
            assert!(!call.method().contains('.'), "{call}");
        }
        assert_eq!(Call::CreateNetwork.method(), "CreateNetwork");
        assert_eq!(
            Call::from_path("/IpamDriver.GetCapabilities"),
            Some(Call::IpamGetCapabilities)
        );
        assert_eq!(
            Call::from_path("/NetworkDriver.GetCapabilities"),
            Some(Call::NetworkGetCapabilities)
        );
        for unknown in [
            "/NetworkDriver.GwAllocCheck",
            "/networkdriver.join",
            "NetworkDriver.Join",
            "/",
            "",
        ] {
            assert_eq!(Call::from_path(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn empty_and_whitespace_bodies_decode_as_empty_objects() {
        for raw in [&b""[..], b"\n", b"  \r\n\t"] {
            let req: CreateNetworkRequest = decode(Call::CreateNetwork, raw).unwrap();
            assert_eq!(req, CreateNetworkRequest::default());
            let _: Empty = decode(Call::Activate, raw).unwrap();
        }
    }

    #[test]
    fn create_network_decodes_dockers_body() {
        let raw = body(json!({
            "NetworkID": NID,
            "Options": {
                "com.docker.network.enable_ipv6": false,
                "com.docker.network.generic": {"kuryr.net.name": "blue", "neutron.pool.uuid": "p1"},
                "com.docker.network.internal": true
            },
            "IPv4Data": [{
                "AddressSpace": "global_scope",
                "Pool": "10.1.0.0/24",
                "Gateway": "10.1.0.1/24",
                "AuxAddresses": {"router": "10.1.0.5/24"}
            }],
            "IPv6Data": []
        }));
        let req: CreateNetworkRequest = decode(Call::CreateNetwork, &raw).unwrap();
        assert_eq!(req.network_id, NID);
        assert_eq!(req.ipv4_data.len(), 1);
        assert_eq!(req.ipv4_data[0].address_space, "global_scope");
        assert_eq!(req.ipv4_data[0].pool, "10.1.0.0/24");
        assert_eq!(req.ipv4_data[0].gateway, "10.1.0.1/24");
        assert_eq!(req.ipv4_data[0].aux_addresses["router"], "10.1.0.5/24");
        assert!(req.ipv6_data.is_empty());
        assert_eq!(req.options["com.docker.network.internal"], json!(true));
        assert_eq!(req.options[label::GENERIC]["kuryr.net.name"], json!("blue"));
    }

    #[test]
    fn nulls_and_missing_fields_take_go_zero_values() {
        // Go encodes nil maps and slices as null; an IPAMData without a gateway has no key.
        let raw = body(json!({
            "NetworkID": NID,
            "Options": null,
            "IPv4Data": [{"AddressSpace": "", "Pool": "10.1.0.0/24"}],
            "IPv6Data": null
        }));
        let req: CreateNetworkRequest = decode(Call::CreateNetwork, &raw).unwrap();
        assert!(req.options.is_empty());
        assert!(req.ipv6_data.is_empty());
        assert_eq!(req.ipv4_data[0].gateway, "");
        assert!(req.ipv4_data[0].aux_addresses.is_empty());

        let raw = body(
            json!({"AddressSpace": "local", "Pool": "", "SubPool": "", "Options": null, "V6": false}),
        );
        let req: RequestPoolRequest = decode(Call::RequestPool, &raw).unwrap();
        assert!(req.options.is_empty());
        assert_eq!(req.address_space, "local");

        let raw =
            body(json!({"NetworkID": NID, "EndpointID": EID, "Interface": null, "Options": null}));
        let req: CreateEndpointRequest = decode(Call::CreateEndpoint, &raw).unwrap();
        assert_eq!(req.interface, None);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let raw = body(json!({
            "NetworkID": NID, "EndpointID": EID, "SandboxKey": "/var/run/docker/netns/abc",
            "Options": {}, "SomethingNewInDocker30": {"x": [1, 2]}
        }));
        let req: JoinRequest = decode(Call::Join, &raw).unwrap();
        assert_eq!(req.sandbox_key, "/var/run/docker/netns/abc");
    }

    #[test]
    fn endpoint_calls_decode_dockers_bodies() {
        let raw = body(json!({
            "NetworkID": NID,
            "EndpointID": EID,
            "Interface": {"Address": "10.1.0.2/24", "AddressIPv6": "", "MacAddress": ""},
            "Options": {
                "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
                "com.docker.network.endpoint.macaddress": "AkIKAQAC",
                "com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]
            }
        }));
        let req: CreateEndpointRequest = decode(Call::CreateEndpoint, &raw).unwrap();
        let iface = req.interface.unwrap();
        assert_eq!(iface.address, "10.1.0.2/24");
        assert_eq!(iface.mac_address, "");
        assert_eq!(req.options[label::MAC_ADDRESS], json!("AkIKAQAC"));

        for call in [
            Call::DeleteEndpoint,
            Call::EndpointOperInfo,
            Call::Leave,
            Call::RevokeExternalConnectivity,
        ] {
            let raw = body(json!({"NetworkID": NID, "EndpointID": EID}));
            let req: EndpointRequest = decode(call, &raw).unwrap();
            assert_eq!(
                (req.network_id.as_str(), req.endpoint_id.as_str()),
                (NID, EID)
            );
        }

        let raw = body(
            json!({"NetworkID": NID, "EndpointID": EID, "Options": {"com.docker.network.endpoint.exposedports": [{"Proto": 17, "Port": 53}]}}),
        );
        let req: ProgramExternalConnectivityRequest =
            decode(Call::ProgramExternalConnectivity, &raw).unwrap();
        assert_eq!(req.options[label::EXPOSED_PORTS][0]["Proto"], json!(17));
    }

    #[test]
    fn swarm_calls_decode_dockers_bodies() {
        let raw = body(
            json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.10", "self": true}}),
        );
        let req: DiscoveryNotification = decode(Call::DiscoverNew, &raw).unwrap();
        assert_eq!(req.discovery_type, 1);
        assert_eq!(req.discovery_data["Address"], json!("192.0.2.10"));

        let raw = body(json!({
            "NetworkID": NID, "Options": {"kuryr.net.name": "blue"},
            "IPv4Data": [{"AddressSpace": "GlobalDefault", "Pool": "10.2.0.0/16", "Gateway": "10.2.0.1/16"}],
            "IPv6Data": null
        }));
        let req: AllocateNetworkRequest = decode(Call::AllocateNetwork, &raw).unwrap();
        assert_eq!(req.options["kuryr.net.name"], "blue");
        assert_eq!(req.ipv4_data[0].pool, "10.2.0.0/16");

        let raw = body(json!({"NetworkID": NID}));
        let req: NetworkRequest = decode(Call::FreeNetwork, &raw).unwrap();
        assert_eq!(req.network_id, NID);
    }

    #[test]
    fn ipam_calls_decode_dockers_bodies() {
        let raw = body(
            json!({"AddressSpace": "local_scope", "Pool": "10.1.0.0/24", "SubPool": "10.1.0.128/25", "Options": {"kuryr.pool.name": "p"}, "V6": false}),
        );
        let req: RequestPoolRequest = decode(Call::RequestPool, &raw).unwrap();
        assert_eq!(req.pool, "10.1.0.0/24");
        assert_eq!(req.sub_pool, "10.1.0.128/25");
        assert_eq!(req.options["kuryr.pool.name"], "p");

        let raw = body(
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Address": "10.1.0.1", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
        );
        let req: RequestAddressRequest = decode(Call::RequestAddress, &raw).unwrap();
        assert_eq!(req.address, "10.1.0.1");
        assert_eq!(req.options[label::REQUEST_ADDRESS_TYPE], label::GATEWAY);

        let raw = body(json!({"PoolID": "p1"}));
        let req: ReleasePoolRequest = decode(Call::ReleasePool, &raw).unwrap();
        assert_eq!(req.pool_id, "p1");

        let raw = body(json!({"PoolID": "p1", "Address": "10.1.0.5"}));
        let req: ReleaseAddressRequest = decode(Call::ReleaseAddress, &raw).unwrap();
        assert_eq!(req.address, "10.1.0.5");
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_call_named() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"{",
                "CreateNetwork: malformed JSON body: EOF while parsing",
            ),
            (
                b"not json",
                "CreateNetwork: malformed JSON body: the body is not a JSON object",
            ),
            (
                b"[]",
                "CreateNetwork: malformed JSON body: the body is not a JSON object",
            ),
            (
                b"{\"NetworkID\": \"x\"} trailing",
                "CreateNetwork: malformed JSON body: trailing characters",
            ),
            (
                b"{\"NetworkID\" \"x\"}",
                "CreateNetwork: malformed JSON body: expected `:`",
            ),
        ];
        for (raw, want) in cases {
            let err = decode::<CreateNetworkRequest>(Call::CreateNetwork, raw).unwrap_err();
            assert!(
                matches!(err, RequestError::Malformed { .. }),
                "{:?}: {err:?}",
                String::from_utf8_lossy(raw)
            );
            assert!(
                err.to_string().starts_with(want),
                "{:?}: got {err}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn wrong_json_types_name_the_field_and_the_value() {
        let cases = [
            (
                Call::CreateNetwork,
                json!({"NetworkID": 5}),
                "CreateNetwork: NetworkID: invalid type: integer `5`, expected a string",
            ),
            (
                Call::CreateNetwork,
                json!({"IPv4Data": [{"Pool": 10}]}),
                "CreateNetwork: IPv4Data[0].Pool: invalid type: integer `10`",
            ),
            (
                Call::CreateNetwork,
                json!({"Options": "yes"}),
                "CreateNetwork: Options: invalid type: string \"yes\", expected a map",
            ),
            (
                Call::RequestPool,
                json!({"V6": "true"}),
                "RequestPool: V6: invalid type: string \"true\", expected a boolean",
            ),
            (
                Call::RequestPool,
                json!({"Options": {"a": 1}}),
                "RequestPool: Options.a: invalid type: integer `1`, expected a string",
            ),
        ];
        for (call, value, want) in cases {
            let raw = body(value.clone());
            let err = match call {
                Call::CreateNetwork => decode::<CreateNetworkRequest>(call, &raw).map(drop),
                _ => decode::<RequestPoolRequest>(call, &raw).map(drop),
            }
            .unwrap_err();
            assert!(
                matches!(err, RequestError::WrongType { .. }),
                "{value}: {err:?}"
            );
            assert!(err.to_string().starts_with(want), "{value}: got {err}");
        }
    }

    #[test]
    fn replies_encode_exactly_as_docker_expects() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (serde_json::to_value(Empty {}).unwrap(), "{}"),
            (
                serde_json::to_value(ErrorResponse { err: "boom".into() }).unwrap(),
                r#"{"Err":"boom"}"#,
            ),
            (
                serde_json::to_value(ActivateResponse {
                    implements: vec![NETWORK_DRIVER.into(), IPAM_DRIVER.into()],
                })
                .unwrap(),
                r#"{"Implements":["NetworkDriver","IpamDriver"]}"#,
            ),
            (
                serde_json::to_value(CapabilitiesResponse {
                    scope: "local".into(),
                    ..Default::default()
                })
                .unwrap(),
                r#"{"Scope":"local"}"#,
            ),
            (
                serde_json::to_value(CapabilitiesResponse {
                    scope: "global".into(),
                    connectivity_scope: "global".into(),
                    gw_alloc_checker: false,
                })
                .unwrap(),
                r#"{"ConnectivityScope":"global","Scope":"global"}"#,
            ),
            (
                serde_json::to_value(CreateEndpointResponse::default()).unwrap(),
                "{}",
            ),
            (
                serde_json::to_value(CreateEndpointResponse {
                    interface: Some(EndpointInterface {
                        mac_address: "02:42:0a:01:00:02".into(),
                        ..Default::default()
                    }),
                })
                .unwrap(),
                r#"{"Interface":{"MacAddress":"02:42:0a:01:00:02"}}"#,
            ),
            (
                serde_json::to_value(EndpointOperInfoResponse::default()).unwrap(),
                r#"{"Value":{}}"#,
            ),
            (
                serde_json::to_value(JoinResponse {
                    interface_name: Some(InterfaceName {
                        src_name: "t_c1234".into(),
                        dst_prefix: "eth".into(),
                        dst_name: String::new(),
                    }),
                    ..Default::default()
                })
                .unwrap(),
                r#"{"InterfaceName":{"DstPrefix":"eth","SrcName":"t_c1234"}}"#,
            ),
            (
                serde_json::to_value(JoinResponse {
                    interface_name: None,
                    gateway: "10.1.0.1".into(),
                    gateway_ipv6: "fd00::1".into(),
                    static_routes: vec![
                        StaticRoute {
                            destination: "10.9.0.0/16".into(),
                            route_type: ROUTE_TYPE_NEXT_HOP,
                            next_hop: "10.1.0.254".into(),
                        },
                        StaticRoute {
                            destination: "10.8.0.0/16".into(),
                            route_type: ROUTE_TYPE_CONNECTED,
                            next_hop: String::new(),
                        },
                    ],
                    disable_gateway_service: true,
                })
                .unwrap(),
                r#"{"DisableGatewayService":true,"Gateway":"10.1.0.1","GatewayIPv6":"fd00::1","StaticRoutes":[{"Destination":"10.9.0.0/16","NextHop":"10.1.0.254","RouteType":0},{"Destination":"10.8.0.0/16","RouteType":1}]}"#,
            ),
            (
                serde_json::to_value(IpamCapabilitiesResponse {
                    requires_mac_address: true,
                    requires_request_replay: false,
                })
                .unwrap(),
                r#"{"RequiresMACAddress":true,"RequiresRequestReplay":false}"#,
            ),
            (
                serde_json::to_value(AddressSpacesResponse {
                    local_default_address_space: "local_scope".into(),
                    global_default_address_space: "global_scope".into(),
                })
                .unwrap(),
                r#"{"GlobalDefaultAddressSpace":"global_scope","LocalDefaultAddressSpace":"local_scope"}"#,
            ),
            (
                serde_json::to_value(RequestPoolResponse {
                    pool_id: "p1".into(),
                    pool: "10.1.0.0/24".into(),
                    data: StringOptions::new(),
                })
                .unwrap(),
                r#"{"Data":{},"Pool":"10.1.0.0/24","PoolID":"p1"}"#,
            ),
            (
                serde_json::to_value(RequestAddressResponse {
                    address: "10.1.0.5/24".into(),
                    data: StringOptions::new(),
                })
                .unwrap(),
                r#"{"Address":"10.1.0.5/24","Data":{}}"#,
            ),
            (
                serde_json::to_value(AllocateNetworkResponse {
                    options: [("a".to_owned(), "b".to_owned())].into(),
                })
                .unwrap(),
                r#"{"Options":{"a":"b"}}"#,
            ),
        ];
        // Compared as JSON values: key order is irrelevant, a missing or extra key is not.
        for (value, want) in cases {
            let want: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(value, want);
        }
    }

    #[test]
    fn join_reply_without_gateway_has_no_gateway_key() {
        let text = serde_json::to_string(&JoinResponse::default()).unwrap();
        assert_eq!(text, "{}");
    }
}
