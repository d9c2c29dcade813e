//! Validated requests handed to a driver, converted from the [`crate::wire`] types.
//!
//! Ids are checked, addresses and pools parsed, the option maps Docker fills picked apart. A
//! conversion fails with a [`RequestError`] naming the call, the field and the bad value.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::RequestError;
use crate::types::{DockerId, MacAddr, Protocol};
use crate::wire::{self, label, Call};

/// One address family's pool of a network, with its gateway and reserved addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamPool {
    /// Address space the pool came from.
    pub address_space: String,
    /// The pool, e.g. `10.1.0.0/24`.
    pub pool: IpNet,
    /// Gateway with the pool's mask, e.g. `10.1.0.1/24`.
    pub gateway: Option<IpNet>,
    /// Reserved addresses by name (`--aux-address name=ip`).
    pub aux_addresses: BTreeMap<String, IpNet>,
}

/// The options Docker passes to CreateNetwork, picked apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkOptions {
    /// The `-o key=value` options (`com.docker.network.generic`).
    pub generic: BTreeMap<String, String>,
    /// `false` only for an IPv6-only network (Docker 28+).
    pub enable_ipv4: bool,
    /// `--ipv6`.
    pub enable_ipv6: bool,
    /// `--internal`.
    pub internal: bool,
    /// Every other option: strings verbatim, other JSON values as compact JSON text.
    pub extra: BTreeMap<String, String>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            generic: BTreeMap::new(),
            enable_ipv4: true,
            enable_ipv6: false,
            internal: false,
            extra: BTreeMap::new(),
        }
    }
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateNetwork {
    /// Docker's network id.
    pub network_id: DockerId,
    /// IPv4 pools (usually one).
    pub ipv4: Vec<IpamPool>,
    /// IPv6 pools; empty unless IPv6 is enabled.
    pub ipv6: Vec<IpamPool>,
    /// Network options.
    pub options: NetworkOptions,
}

/// `NetworkDriver.DeleteNetwork`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteNetwork {
    /// Docker's network id.
    pub network_id: DockerId,
}

/// `NetworkDriver.FreeNetwork` (swarm manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeNetwork {
    /// Docker's network id.
    pub network_id: DockerId,
}

/// An exposed container port (`--expose`, `EXPOSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransportPort {
    /// IP protocol.
    pub proto: Protocol,
    /// Port number.
    pub port: u16,
}

/// A published port (`-p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding {
    /// IP protocol.
    pub proto: Protocol,
    /// Container address, when Docker set one.
    pub ip: Option<IpAddr>,
    /// Container port.
    pub port: u16,
    /// Host address, when bound to one.
    pub host_ip: Option<IpAddr>,
    /// First host port.
    pub host_port: u16,
    /// Last host port of a range; 0 when not a range.
    pub host_port_end: u16,
}

/// Endpoint and sandbox options, as sent in CreateEndpoint, Join and ProgramExternalConnectivity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOptions {
    /// `com.docker.network.endpoint.macaddress` (sent as base64 bytes).
    pub mac_address: Option<MacAddr>,
    /// `com.docker.network.endpoint.exposedports`.
    pub exposed_ports: Vec<TransportPort>,
    /// `com.docker.network.portmap`.
    pub port_map: Vec<PortBinding>,
    /// `com.docker.network.endpoint.ifname` (Docker 28+, `--network name=N,driver-opt=...` or
    /// Compose's `interface_name`): the name wanted inside the container.
    pub ifname: Option<String>,
    /// Every other option (`--driver-opt` strings among them): strings verbatim, other JSON values
    /// as compact JSON text.
    pub extra: BTreeMap<String, String>,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateEndpoint {
    /// Docker's network id.
    pub network_id: DockerId,
    /// Docker's endpoint id.
    pub endpoint_id: DockerId,
    /// IPv4 address from IPAM, with the pool's mask.
    pub address: Option<IpNet>,
    /// IPv6 address from IPAM, with the pool's mask.
    pub address_ipv6: Option<IpNet>,
    /// MAC Docker already chose (`--mac-address`); the driver must not return another.
    pub mac_address: Option<MacAddr>,
    /// Endpoint options.
    pub options: EndpointOptions,
}

impl CreateEndpoint {
    /// The MAC the user asked for, from the interface or from the options.
    pub fn requested_mac(&self) -> Option<MacAddr> {
        self.mac_address.or(self.options.mac_address)
    }
}

/// A request naming one endpoint and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRef {
    /// Docker's network id.
    pub network_id: DockerId,
    /// Docker's endpoint id.
    pub endpoint_id: DockerId,
}

/// `NetworkDriver.DeleteEndpoint`: may come twice, or after a crash.
pub type DeleteEndpoint = EndpointRef;
/// `NetworkDriver.EndpointOperInfo`.
pub type EndpointOperInfo = EndpointRef;
/// `NetworkDriver.Leave`: comes before Docker moves the interface back to the host.
pub type Leave = EndpointRef;
/// `NetworkDriver.RevokeExternalConnectivity`.
pub type RevokeExternalConnectivity = EndpointRef;

/// `NetworkDriver.Join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// Docker's network id.
    pub network_id: DockerId,
    /// Docker's endpoint id.
    pub endpoint_id: DockerId,
    /// The container's network namespace, `/var/run/docker/netns/<id>` (may not exist yet in
    /// Docker 20.10).
    pub sandbox_key: PathBuf,
    /// Sandbox options.
    pub options: EndpointOptions,
}

/// `NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramExternalConnectivity {
    /// Docker's network id.
    pub network_id: DockerId,
    /// Docker's endpoint id.
    pub endpoint_id: DockerId,
    /// Sandbox options (exposed ports and port map).
    pub options: EndpointOptions,
}

/// `NetworkDriver.DiscoverNew` / `DiscoverDelete` (swarm only).
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// 1 = node discovery.
    pub discovery_type: u32,
    /// Kind-specific data.
    pub data: Value,
}

/// `NetworkDriver.AllocateNetwork` (swarm manager, global scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateNetwork {
    /// Docker's network id.
    pub network_id: DockerId,
    /// Network options.
    pub options: BTreeMap<String, String>,
    /// IPv4 pools.
    pub ipv4: Vec<IpamPool>,
    /// IPv6 pools.
    pub ipv6: Vec<IpamPool>,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPool {
    /// Address space, from GetDefaultAddressSpaces.
    pub address_space: String,
    /// `--subnet`; `None` asks the driver to choose (and to choose differently on each retry).
    pub pool: Option<IpNet>,
    /// `--ip-range`, inside `pool`.
    pub sub_pool: Option<IpNet>,
    /// Docker 29's prefix-only subnet (`--subnet 0.0.0.0/24`, `::/56`): any free subnet of
    /// this length from the default pool; `pool` is then `None`.
    pub prefix_len: Option<u8>,
    /// An IPv6 pool is wanted: the family of `pool` when one is given (a Swarm manager always
    /// sends `V6: false`, IPv6 subnets included), else Docker's `V6`.
    pub v6: bool,
    /// `--ipam-opt` options.
    pub options: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePool {
    /// Id from RequestPool.
    pub pool_id: String,
}

/// What an address is requested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// The network's gateway (`RequestAddressType` = `com.docker.network.gateway`).
    Gateway,
    /// A container endpoint or an aux address.
    Endpoint,
}

/// `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAddress {
    /// Id from RequestPool.
    pub pool_id: String,
    /// The preferred address (`--ip`, `--gateway`, aux address); `None` lets the driver choose.
    pub address: Option<IpAddr>,
    /// Gateway or endpoint.
    pub kind: AddressKind,
    /// The endpoint's MAC, sent when the driver requires it.
    pub mac_address: Option<MacAddr>,
    /// `com.docker.network.ipam.serial`: a Swarm manager's allocation, which wants addresses
    /// handed out in order rather than the one released last.
    pub serial: bool,
    /// All options as sent (including the ones above).
    pub options: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAddress {
    /// Id from RequestPool.
    pub pool_id: String,
    /// The address to give back.
    pub address: IpAddr,
}

// ---------------------------------------------------------------------------------------------
// Conversions

fn docker_id(call: Call, field: &str, value: &str) -> Result<DockerId, RequestError> {
    value.parse().map_err(|e: crate::types::ParseError| {
        RequestError::invalid(call.method(), field, value, e.to_string())
    })
}

fn cidr(call: Call, field: &str, value: &str) -> Result<IpNet, RequestError> {
    value.parse().map_err(|_| {
        RequestError::invalid(
            call.method(),
            field,
            value,
            "not an address in CIDR form (e.g. 10.1.0.0/24 or fd00::/64)",
        )
    })
}

fn optional_cidr(call: Call, field: &str, value: &str) -> Result<Option<IpNet>, RequestError> {
    if value.is_empty() {
        Ok(None)
    } else {
        cidr(call, field, value).map(Some)
    }
}

fn check_family(call: Call, field: &str, net: &IpNet, v6: bool) -> Result<(), RequestError> {
    match (net, v6) {
        (IpNet::V4(_), false) | (IpNet::V6(_), true) => Ok(()),
        (IpNet::V4(_), true) => Err(RequestError::invalid(
            call.method(),
            field,
            net.to_string(),
            "an IPv4 address where IPv6 is expected",
        )),
        (IpNet::V6(_), false) => Err(RequestError::invalid(
            call.method(),
            field,
            net.to_string(),
            "an IPv6 address where IPv4 is expected",
        )),
    }
}

fn non_empty(call: Call, field: &str, value: String) -> Result<String, RequestError> {
    if value.is_empty() {
        Err(RequestError::invalid(
            call.method(),
            field,
            value,
            "must not be empty",
        ))
    } else {
        Ok(value)
    }
}

/// A plain IP; the CIDR form is tolerated and its prefix length ignored.
fn ip(call: Call, field: &str, value: &str) -> Result<IpAddr, RequestError> {
    value
        .parse::<IpAddr>()
        .or_else(|_| value.parse::<IpNet>().map(|net| net.addr()))
        .map_err(|_| RequestError::invalid(call.method(), field, value, "not an IP address"))
}

fn ipam_pools(
    call: Call,
    field: &str,
    data: Vec<wire::IpamData>,
    v6: bool,
) -> Result<Vec<IpamPool>, RequestError> {
    data.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let pool_field = format!("{field}[{i}].Pool");
            if d.pool.is_empty() {
                return Err(RequestError::invalid(
                    call.method(),
                    pool_field,
                    "",
                    "missing pool",
                ));
            }
            let pool = cidr(call, &pool_field, &d.pool)?;
            check_family(call, &pool_field, &pool, v6)?;
            let gw_field = format!("{field}[{i}].Gateway");
            let gateway = optional_cidr(call, &gw_field, &d.gateway)?;
            if let Some(gw) = &gateway {
                check_family(call, &gw_field, gw, v6)?;
            }
            let aux_addresses = d
                .aux_addresses
                .into_iter()
                .map(|(name, addr)| {
                    let aux_field = format!("{field}[{i}].AuxAddresses[{name}]");
                    let net = cidr(call, &aux_field, &addr)?;
                    check_family(call, &aux_field, &net, v6)?;
                    Ok((name, net))
                })
                .collect::<Result<_, RequestError>>()?;
            Ok(IpamPool {
                address_space: d.address_space,
                pool,
                gateway,
                aux_addresses,
            })
        })
        .collect()
}

/// Option values Docker stores as `interface{}`: strings verbatim, the rest as JSON text.
fn option_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A boolean option; Go's `strconv.ParseBool` spellings are accepted for string values.
fn option_bool(call: Call, key: &str, value: &Value) -> Result<Option<bool>, RequestError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
            _ => Err(RequestError::invalid(
                call.method(),
                format!("Options[{key}]"),
                s,
                "not a boolean",
            )),
        },
        other => Err(RequestError::invalid(
            call.method(),
            format!("Options[{key}]"),
            other.to_string(),
            "not a boolean",
        )),
    }
}

/// Decodes one option's JSON value into a wire type; `null` is the type's default.
fn option_value<T: DeserializeOwned + Default>(
    call: Call,
    key: &str,
    value: &Value,
) -> Result<T, RequestError> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(value.clone()).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        RequestError::WrongType {
            call: call.method(),
            field: format!("Options[{key}]{path}"),
            detail: err.into_inner().to_string(),
        }
    })
}

fn optional_ip(call: Call, field: String, value: &str) -> Result<Option<IpAddr>, RequestError> {
    if value.is_empty() {
        Ok(None)
    } else {
        value
            .parse()
            .map(Some)
            .map_err(|_| RequestError::invalid(call.method(), field, value, "not an IP address"))
    }
}

fn network_options(call: Call, options: wire::Options) -> Result<NetworkOptions, RequestError> {
    let mut out = NetworkOptions::default();
    for (key, value) in options {
        match key.as_str() {
            label::GENERIC => {
                let map = match value {
                    Value::Null => continue,
                    Value::Object(map) => map,
                    other => {
                        return Err(RequestError::invalid(
                            call.method(),
                            format!("Options[{key}]"),
                            other.to_string(),
                            "not a map of strings",
                        ))
                    }
                };
                for (k, v) in map {
                    let text = match v {
                        Value::Null => String::new(),
                        Value::Array(_) | Value::Object(_) => {
                            return Err(RequestError::invalid(
                                call.method(),
                                format!("Options[{key}][{k}]"),
                                v.to_string(),
                                "not a string",
                            ))
                        }
                        scalar => option_text(&scalar),
                    };
                    out.generic.insert(k, text);
                }
            }
            label::ENABLE_IPV4 => {
                out.enable_ipv4 = option_bool(call, &key, &value)?.unwrap_or(true);
            }
            label::ENABLE_IPV6 => {
                out.enable_ipv6 = option_bool(call, &key, &value)?.unwrap_or(false);
            }
            label::INTERNAL => {
                out.internal = option_bool(call, &key, &value)?.unwrap_or(false);
            }
            _ => {
                out.extra.insert(key, option_text(&value));
            }
        }
    }
    Ok(out)
}

fn endpoint_options(call: Call, options: wire::Options) -> Result<EndpointOptions, RequestError> {
    let mut out = EndpointOptions::default();
    for (key, value) in options {
        match key.as_str() {
            label::MAC_ADDRESS => match &value {
                Value::Null => {}
                Value::String(s) if s.is_empty() => {}
                Value::String(s) => {
                    let mac = MacAddr::parse_any(s).map_err(|e| {
                        RequestError::invalid(
                            call.method(),
                            format!("Options[{key}]"),
                            s,
                            e.to_string(),
                        )
                    })?;
                    out.mac_address = Some(mac);
                }
                other => {
                    return Err(RequestError::invalid(
                        call.method(),
                        format!("Options[{key}]"),
                        other.to_string(),
                        "not a MAC address (base64 or aa:bb:cc:dd:ee:ff)",
                    ))
                }
            },
            label::EXPOSED_PORTS => {
                let ports: Vec<wire::TransportPort> = option_value(call, &key, &value)?;
                out.exposed_ports = ports
                    .into_iter()
                    .map(|p| TransportPort {
                        proto: p.proto.into(),
                        port: p.port,
                    })
                    .collect();
            }
            label::PORT_MAP => {
                let bindings: Vec<wire::PortBinding> = option_value(call, &key, &value)?;
                out.port_map = bindings
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| {
                        Ok(PortBinding {
                            proto: b.proto.into(),
                            ip: optional_ip(call, format!("Options[{key}][{i}].IP"), &b.ip)?,
                            port: b.port,
                            host_ip: optional_ip(
                                call,
                                format!("Options[{key}][{i}].HostIP"),
                                &b.host_ip,
                            )?,
                            host_port: b.host_port,
                            host_port_end: b.host_port_end,
                        })
                    })
                    .collect::<Result<_, RequestError>>()?;
            }
            label::ENDPOINT_IFNAME => {
                let name = option_text(&value);
                if !name.is_empty() {
                    check_ifname(&name).map_err(|why| {
                        RequestError::invalid(call.method(), format!("Options[{key}]"), &name, why)
                    })?;
                    out.ifname = Some(name);
                }
            }
            _ => {
                out.extra.insert(key, option_text(&value));
            }
        }
    }
    Ok(out)
}

/// A Linux interface name the kernel accepts: 1-15 bytes, no `/`, `:` or white space, not
/// `.` or `..`.
fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.len() > 15 {
        return Err("an interface name has at most 15 characters");
    }
    if name == "." || name == ".." {
        return Err("not a usable interface name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err("an interface name has no '/', ':' or white space");
    }
    Ok(())
}

impl TryFrom<wire::CreateNetworkRequest> for CreateNetwork {
    type Error = RequestError;

    fn try_from(w: wire::CreateNetworkRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::CreateNetwork;
        Ok(CreateNetwork {
            network_id: docker_id(CALL, "NetworkID", &w.network_id)?,
            ipv4: ipam_pools(CALL, "IPv4Data", w.ipv4_data, false)?,
            ipv6: ipam_pools(CALL, "IPv6Data", w.ipv6_data, true)?,
            options: network_options(CALL, w.options)?,
        })
    }
}

impl DeleteNetwork {
    /// Validates a `NetworkDriver.DeleteNetwork` body.
    pub fn from_wire(w: wire::NetworkRequest) -> Result<Self, RequestError> {
        Ok(DeleteNetwork {
            network_id: docker_id(Call::DeleteNetwork, "NetworkID", &w.network_id)?,
        })
    }
}

impl FreeNetwork {
    /// Validates a `NetworkDriver.FreeNetwork` body.
    pub fn from_wire(w: wire::NetworkRequest) -> Result<Self, RequestError> {
        Ok(FreeNetwork {
            network_id: docker_id(Call::FreeNetwork, "NetworkID", &w.network_id)?,
        })
    }
}

impl TryFrom<wire::CreateEndpointRequest> for CreateEndpoint {
    type Error = RequestError;

    fn try_from(w: wire::CreateEndpointRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::CreateEndpoint;
        let network_id = docker_id(CALL, "NetworkID", &w.network_id)?;
        let endpoint_id = docker_id(CALL, "EndpointID", &w.endpoint_id)?;
        let iface = w.interface.unwrap_or_default();
        let address = optional_cidr(CALL, "Interface.Address", &iface.address)?;
        if let Some(a) = &address {
            check_family(CALL, "Interface.Address", a, false)?;
        }
        let address_ipv6 = optional_cidr(CALL, "Interface.AddressIPv6", &iface.address_ipv6)?;
        if let Some(a) = &address_ipv6 {
            check_family(CALL, "Interface.AddressIPv6", a, true)?;
        }
        let mac_address = if iface.mac_address.is_empty() {
            None
        } else {
            Some(
                iface
                    .mac_address
                    .parse()
                    .map_err(|e: crate::types::ParseError| {
                        RequestError::invalid(
                            CALL.method(),
                            "Interface.MacAddress",
                            &iface.mac_address,
                            e.to_string(),
                        )
                    })?,
            )
        };
        Ok(CreateEndpoint {
            network_id,
            endpoint_id,
            address,
            address_ipv6,
            mac_address,
            options: endpoint_options(CALL, w.options)?,
        })
    }
}

impl EndpointRef {
    /// Validates the body of a call naming one endpoint (`call` is used in error messages).
    pub fn from_wire(call: Call, w: wire::EndpointRequest) -> Result<Self, RequestError> {
        Ok(EndpointRef {
            network_id: docker_id(call, "NetworkID", &w.network_id)?,
            endpoint_id: docker_id(call, "EndpointID", &w.endpoint_id)?,
        })
    }
}

impl TryFrom<wire::JoinRequest> for Join {
    type Error = RequestError;

    fn try_from(w: wire::JoinRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::Join;
        Ok(Join {
            network_id: docker_id(CALL, "NetworkID", &w.network_id)?,
            endpoint_id: docker_id(CALL, "EndpointID", &w.endpoint_id)?,
            sandbox_key: non_empty(CALL, "SandboxKey", w.sandbox_key)?.into(),
            options: endpoint_options(CALL, w.options)?,
        })
    }
}

impl TryFrom<wire::ProgramExternalConnectivityRequest> for ProgramExternalConnectivity {
    type Error = RequestError;

    fn try_from(w: wire::ProgramExternalConnectivityRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::ProgramExternalConnectivity;
        Ok(ProgramExternalConnectivity {
            network_id: docker_id(CALL, "NetworkID", &w.network_id)?,
            endpoint_id: docker_id(CALL, "EndpointID", &w.endpoint_id)?,
            options: endpoint_options(CALL, w.options)?,
        })
    }
}

impl From<wire::DiscoveryNotification> for Discovery {
    fn from(w: wire::DiscoveryNotification) -> Self {
        Discovery {
            discovery_type: w.discovery_type,
            data: w.discovery_data,
        }
    }
}

impl TryFrom<wire::AllocateNetworkRequest> for AllocateNetwork {
    type Error = RequestError;

    fn try_from(w: wire::AllocateNetworkRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::AllocateNetwork;
        // A Swarm manager puts every subnet it was given in IPv4Data, IPv6 ones included:
        // each goes by its own family.
        let (v4_data, mut v6_data): (Vec<_>, Vec<_>) = w
            .ipv4_data
            .into_iter()
            .partition(|d| !d.pool.parse::<IpNet>().is_ok_and(|p| p.addr().is_ipv6()));
        v6_data.extend(w.ipv6_data);
        Ok(AllocateNetwork {
            network_id: docker_id(CALL, "NetworkID", &w.network_id)?,
            options: w.options,
            ipv4: ipam_pools(CALL, "IPv4Data", v4_data, false)?,
            ipv6: ipam_pools(CALL, "IPv6Data", v6_data, true)?,
        })
    }
}

impl TryFrom<wire::RequestPoolRequest> for RequestPool {
    type Error = RequestError;

    fn try_from(w: wire::RequestPoolRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::RequestPool;
        let mut pool = optional_cidr(CALL, "Pool", &w.pool)?;
        // Docker's own IPAM goes by the pool's family when one is given; a Swarm manager
        // relies on that (its V6 is always false).
        let v6 = pool.map_or(w.v6, |p| p.addr().is_ipv6());
        let mut prefix_len = None;
        if let Some(p) = pool.filter(|p| p.addr().is_unspecified()) {
            // Docker 29: `--subnet 0.0.0.0/24` asks for any /24 of the default pool.
            let (min, max) = if v6 { (8, 126) } else { (8, 30) };
            if !(min..=max).contains(&p.prefix_len()) {
                return Err(RequestError::invalid(
                    CALL.method(),
                    "Pool",
                    &w.pool,
                    format!("a prefix-only subnet needs a length from /{min} to /{max}"),
                ));
            }
            prefix_len = Some(p.prefix_len());
            pool = None;
        }
        let sub_pool = optional_cidr(CALL, "SubPool", &w.sub_pool)?;
        if let Some(sub) = &sub_pool {
            check_family(CALL, "SubPool", sub, v6)?;
            match &pool {
                None => {
                    return Err(RequestError::invalid(
                        CALL.method(),
                        "SubPool",
                        &w.sub_pool,
                        "given without a Pool",
                    ))
                }
                Some(p) if !p.contains(sub) => {
                    return Err(RequestError::invalid(
                        CALL.method(),
                        "SubPool",
                        &w.sub_pool,
                        format!("not inside Pool {p}"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(RequestPool {
            address_space: w.address_space,
            pool,
            sub_pool,
            prefix_len,
            v6,
            options: w.options,
        })
    }
}

impl TryFrom<wire::ReleasePoolRequest> for ReleasePool {
    type Error = RequestError;

    fn try_from(w: wire::ReleasePoolRequest) -> Result<Self, Self::Error> {
        Ok(ReleasePool {
            pool_id: non_empty(Call::ReleasePool, "PoolID", w.pool_id)?,
        })
    }
}

impl TryFrom<wire::RequestAddressRequest> for RequestAddress {
    type Error = RequestError;

    fn try_from(w: wire::RequestAddressRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::RequestAddress;
        let pool_id = non_empty(CALL, "PoolID", w.pool_id)?;
        let address = if w.address.is_empty() {
            None
        } else {
            Some(ip(CALL, "Address", &w.address)?)
        };
        let kind = match w
            .options
            .get(label::REQUEST_ADDRESS_TYPE)
            .map(String::as_str)
        {
            Some(label::GATEWAY) => AddressKind::Gateway,
            _ => AddressKind::Endpoint,
        };
        let mac_address = match w.options.get(label::MAC_ADDRESS) {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(MacAddr::parse_any(s).map_err(|e| {
                RequestError::invalid(
                    CALL.method(),
                    format!("Options[{}]", label::MAC_ADDRESS),
                    s,
                    e.to_string(),
                )
            })?),
        };
        let serial = w
            .options
            .get(label::IPAM_SERIAL)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        Ok(RequestAddress {
            pool_id,
            address,
            kind,
            mac_address,
            serial,
            options: w.options,
        })
    }
}

impl TryFrom<wire::ReleaseAddressRequest> for ReleaseAddress {
    type Error = RequestError;

    fn try_from(w: wire::ReleaseAddressRequest) -> Result<Self, Self::Error> {
        const CALL: Call = Call::ReleaseAddress;
        let pool_id = non_empty(CALL, "PoolID", w.pool_id)?;
        let address = ip(CALL, "Address", &w.address)?;
        Ok(ReleaseAddress { pool_id, address })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode;
    use serde_json::json;

    const NID: &str = "3f2a6b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
    const EID: &str = "9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a3f2a6b1c0d";

    fn raw(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    /// Decodes and validates `body` the way the server does for `call`.
    fn check(call: Call, body: &Value) -> Result<(), RequestError> {
        let b = raw(body);
        match call {
            Call::CreateNetwork => {
                CreateNetwork::try_from(decode::<wire::CreateNetworkRequest>(call, &b)?).map(drop)
            }
            Call::DeleteNetwork => DeleteNetwork::from_wire(decode(call, &b)?).map(drop),
            Call::FreeNetwork => FreeNetwork::from_wire(decode(call, &b)?).map(drop),
            Call::CreateEndpoint => {
                CreateEndpoint::try_from(decode::<wire::CreateEndpointRequest>(call, &b)?).map(drop)
            }
            Call::DeleteEndpoint
            | Call::EndpointOperInfo
            | Call::Leave
            | Call::RevokeExternalConnectivity => {
                EndpointRef::from_wire(call, decode(call, &b)?).map(drop)
            }
            Call::Join => Join::try_from(decode::<wire::JoinRequest>(call, &b)?).map(drop),
            Call::ProgramExternalConnectivity => {
                ProgramExternalConnectivity::try_from(decode::<
                    wire::ProgramExternalConnectivityRequest,
                >(call, &b)?)
                .map(drop)
            }
            Call::AllocateNetwork => {
                AllocateNetwork::try_from(decode::<wire::AllocateNetworkRequest>(call, &b)?)
                    .map(drop)
            }
            Call::RequestPool => {
                RequestPool::try_from(decode::<wire::RequestPoolRequest>(call, &b)?).map(drop)
            }
            Call::ReleasePool => {
                ReleasePool::try_from(decode::<wire::ReleasePoolRequest>(call, &b)?).map(drop)
            }
            Call::RequestAddress => {
                RequestAddress::try_from(decode::<wire::RequestAddressRequest>(call, &b)?).map(drop)
            }
            Call::ReleaseAddress => {
                ReleaseAddress::try_from(decode::<wire::ReleaseAddressRequest>(call, &b)?).map(drop)
            }
            other => panic!("no validation for {other}"),
        }
    }

    fn network(pool: Value) -> Value {
        json!({"NetworkID": NID, "Options": {}, "IPv4Data": [pool], "IPv6Data": []})
    }

    fn endpoint(iface: Value, options: Value) -> Value {
        json!({"NetworkID": NID, "EndpointID": EID, "Interface": iface, "Options": options})
    }

    #[test]
    fn invalid_requests_are_refused_naming_call_field_and_value() {
        let cases: Vec<(Call, Value, &str)> = vec![
            (
                Call::CreateNetwork,
                json!({"NetworkID": "abc"}),
                r#"CreateNetwork: NetworkID "abc": not a Docker id (64 lowercase hex digits, or 25 lowercase letters and digits for a Swarm network)"#,
            ),
            (
                Call::CreateNetwork,
                json!({"NetworkID": NID.to_uppercase()}),
                r#"CreateNetwork: NetworkID "3F2A6B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A": not a Docker id"#,
            ),
            (
                Call::CreateNetwork,
                json!({}),
                r#"CreateNetwork: NetworkID "": not a Docker id"#,
            ),
            (
                Call::CreateNetwork,
                network(json!({"Pool": "10.1.0.0"})),
                r#"CreateNetwork: IPv4Data[0].Pool "10.1.0.0": not an address in CIDR form"#,
            ),
            (
                Call::CreateNetwork,
                network(json!({"Pool": "10.1.0.0/33"})),
                r#"CreateNetwork: IPv4Data[0].Pool "10.1.0.0/33": not an address in CIDR form"#,
            ),
            (
                Call::CreateNetwork,
                network(json!({"AddressSpace": "x"})),
                r#"CreateNetwork: IPv4Data[0].Pool "": missing pool"#,
            ),
            (
                Call::CreateNetwork,
                network(json!({"Pool": "fd00::/64"})),
                r#"CreateNetwork: IPv4Data[0].Pool "fd00::/64": an IPv6 address where IPv4 is expected"#,
            ),
            (
                Call::CreateNetwork,
                network(json!({"Pool": "10.1.0.0/24", "Gateway": "10.1.0.1"})),
                r#"CreateNetwork: IPv4Data[0].Gateway "10.1.0.1": not an address in CIDR form"#,
            ),
            (
                Call::CreateNetwork,
                network(json!({"Pool": "10.1.0.0/24", "AuxAddresses": {"rtr": "ten"}})),
                r#"CreateNetwork: IPv4Data[0].AuxAddresses[rtr] "ten": not an address in CIDR form"#,
            ),
            (
                Call::CreateNetwork,
                json!({"NetworkID": NID, "IPv6Data": [{"Pool": "10.1.0.0/24"}]}),
                r#"CreateNetwork: IPv6Data[0].Pool "10.1.0.0/24": an IPv4 address where IPv6 is expected"#,
            ),
            (
                Call::CreateNetwork,
                json!({"NetworkID": NID, "Options": {"com.docker.network.generic": "x"}}),
                r#"CreateNetwork: Options[com.docker.network.generic] "\"x\"": not a map of strings"#,
            ),
            (
                Call::CreateNetwork,
                json!({"NetworkID": NID, "Options": {"com.docker.network.generic": {"k": {"a": 1}}}}),
                r#"CreateNetwork: Options[com.docker.network.generic][k] "{\"a\":1}": not a string"#,
            ),
            (
                Call::CreateNetwork,
                json!({"NetworkID": NID, "Options": {"com.docker.network.enable_ipv6": "maybe"}}),
                r#"CreateNetwork: Options[com.docker.network.enable_ipv6] "maybe": not a boolean"#,
            ),
            (
                Call::CreateNetwork,
                json!({"NetworkID": NID, "Options": {"com.docker.network.internal": 1}}),
                r#"CreateNetwork: Options[com.docker.network.internal] "1": not a boolean"#,
            ),
            (
                Call::DeleteNetwork,
                json!({"NetworkID": "n1"}),
                r#"DeleteNetwork: NetworkID "n1": not a Docker id"#,
            ),
            (
                Call::FreeNetwork,
                json!({"NetworkID": ""}),
                r#"FreeNetwork: NetworkID "": not a Docker id"#,
            ),
            (
                Call::AllocateNetwork,
                json!({"NetworkID": "n1"}),
                r#"AllocateNetwork: NetworkID "n1": not a Docker id"#,
            ),
            (
                Call::CreateEndpoint,
                json!({"NetworkID": NID, "EndpointID": "e1"}),
                r#"CreateEndpoint: EndpointID "e1": not a Docker id"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(json!({"Address": "10.1.0.2"}), json!({})),
                r#"CreateEndpoint: Interface.Address "10.1.0.2": not an address in CIDR form"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(json!({"AddressIPv6": "10.1.0.2/24"}), json!({})),
                r#"CreateEndpoint: Interface.AddressIPv6 "10.1.0.2/24": an IPv4 address where IPv6 is expected"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(json!({"MacAddress": "zz:42:0a:01:00:02"}), json!({})),
                r#"CreateEndpoint: Interface.MacAddress "zz:42:0a:01:00:02": not a MAC address"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.endpoint.macaddress": "!!"}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.macaddress] "!!": not a MAC address"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.endpoint.macaddress": "AkIKAQ=="}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.macaddress] "AkIKAQ==": not a MAC address (base64 of other than 6 bytes)"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.endpoint.macaddress": 5}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.macaddress] "5": not a MAC address"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.endpoint.exposedports": [{"Proto": "tcp", "Port": 80}]}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.exposedports][0].Proto: invalid type: string "tcp", expected u8"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 70000}]}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.exposedports][0].Port: invalid value: integer `70000`, expected u16"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.endpoint.exposedports": {"Proto": 6}}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.exposedports]: invalid type: map, expected a sequence"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!(null),
                    json!({"com.docker.network.portmap": [{"Proto": 6, "IP": "bad", "Port": 80}]}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.portmap][0].IP "bad": not an IP address"#,
            ),
            (
                Call::Join,
                json!({"NetworkID": NID, "EndpointID": EID}),
                r#"Join: SandboxKey "": must not be empty"#,
            ),
            (
                Call::Join,
                json!({"NetworkID": NID, "EndpointID": "x", "SandboxKey": "/k"}),
                r#"Join: EndpointID "x": not a Docker id"#,
            ),
            (
                Call::Leave,
                json!({"NetworkID": "x", "EndpointID": EID}),
                r#"Leave: NetworkID "x": not a Docker id"#,
            ),
            (
                Call::DeleteEndpoint,
                json!({"NetworkID": NID, "EndpointID": "y"}),
                r#"DeleteEndpoint: EndpointID "y": not a Docker id"#,
            ),
            (
                Call::EndpointOperInfo,
                json!({"NetworkID": NID}),
                r#"EndpointOperInfo: EndpointID "": not a Docker id"#,
            ),
            (
                Call::RevokeExternalConnectivity,
                json!({"NetworkID": "z", "EndpointID": EID}),
                r#"RevokeExternalConnectivity: NetworkID "z": not a Docker id"#,
            ),
            (
                Call::ProgramExternalConnectivity,
                json!({"NetworkID": NID, "EndpointID": EID, "Options": {"com.docker.network.portmap": [{"HostIP": "::g"}]}}),
                r#"ProgramExternalConnectivity: Options[com.docker.network.portmap][0].HostIP "::g": not an IP address"#,
            ),
            (
                Call::RequestPool,
                json!({"Pool": "10.1.0.0/24/8"}),
                r#"RequestPool: Pool "10.1.0.0/24/8": not an address in CIDR form"#,
            ),
            (
                Call::RequestPool,
                json!({"SubPool": "10.1.0.0/25"}),
                r#"RequestPool: SubPool "10.1.0.0/25": given without a Pool"#,
            ),
            (
                Call::RequestPool,
                json!({"Pool": "10.1.0.0/24", "SubPool": "10.2.0.0/25"}),
                r#"RequestPool: SubPool "10.2.0.0/25": not inside Pool 10.1.0.0/24"#,
            ),
            (
                Call::RequestPool,
                json!({"Pool": "10.1.0.0/24", "SubPool": "fd00::/64"}),
                r#"RequestPool: SubPool "fd00::/64": an IPv6 address where IPv4 is expected"#,
            ),
            (
                Call::RequestPool,
                json!({"Pool": "0.0.0.0/31"}),
                r#"RequestPool: Pool "0.0.0.0/31": a prefix-only subnet needs a length from /8 to /30"#,
            ),
            (
                Call::RequestPool,
                json!({"Pool": "0.0.0.0/24", "SubPool": "10.0.0.0/25"}),
                r#"RequestPool: SubPool "10.0.0.0/25": given without a Pool"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!({"Address": "10.1.0.2/24"}),
                    json!({"com.docker.network.endpoint.ifname": "a-much-too-long-name"}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.ifname] "a-much-too-long-name": an interface name has at most 15 characters"#,
            ),
            (
                Call::CreateEndpoint,
                endpoint(
                    json!({"Address": "10.1.0.2/24"}),
                    json!({"com.docker.network.endpoint.ifname": "eth/1"}),
                ),
                r#"CreateEndpoint: Options[com.docker.network.endpoint.ifname] "eth/1": an interface name has no '/', ':' or white space"#,
            ),
            (
                Call::ReleasePool,
                json!({}),
                r#"ReleasePool: PoolID "": must not be empty"#,
            ),
            (
                Call::RequestAddress,
                json!({"Address": "10.1.0.5"}),
                r#"RequestAddress: PoolID "": must not be empty"#,
            ),
            (
                Call::RequestAddress,
                json!({"PoolID": "p", "Address": "10.1.0.999"}),
                r#"RequestAddress: Address "10.1.0.999": not an IP address"#,
            ),
            (
                Call::RequestAddress,
                json!({"PoolID": "p", "Options": {"com.docker.network.endpoint.macaddress": "02:42"}}),
                r#"RequestAddress: Options[com.docker.network.endpoint.macaddress] "02:42": not a MAC address"#,
            ),
            (
                Call::ReleaseAddress,
                json!({"PoolID": "p", "Address": ""}),
                r#"ReleaseAddress: Address "": not an IP address"#,
            ),
            (
                Call::ReleaseAddress,
                json!({"PoolID": "p", "Address": "host.example"}),
                r#"ReleaseAddress: Address "host.example": not an IP address"#,
            ),
        ];
        for (call, body, want) in cases {
            let err = check(call, &body).expect_err(&format!("{call} {body} should be refused"));
            let got = err.to_string();
            assert!(
                got.starts_with(want),
                "{call} {body}:\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn create_network_is_parsed() {
        let body = json!({
            "NetworkID": NID,
            "Options": {
                "com.docker.network.enable_ipv6": true,
                "com.docker.network.generic": {"kuryr.net.name": "blue", "mtu": 1400, "flag": true, "empty": null},
                "com.docker.network.internal": "false",
                "com.docker.network.bridge.name": "br0",
                "com.docker.network.something": {"nested": [1]}
            },
            "IPv4Data": [{"AddressSpace": "local_scope", "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24",
                          "AuxAddresses": {"router": "10.1.0.5/24"}}],
            "IPv6Data": [{"AddressSpace": "local_scope", "Pool": "fd00:1::/64", "Gateway": "fd00:1::1/64"}]
        });
        let req = CreateNetwork::try_from(
            decode::<wire::CreateNetworkRequest>(Call::CreateNetwork, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.network_id.as_str(), NID);
        assert_eq!(
            req.ipv4,
            vec![IpamPool {
                address_space: "local_scope".into(),
                pool: "10.1.0.0/24".parse().unwrap(),
                gateway: Some("10.1.0.1/24".parse().unwrap()),
                aux_addresses: [("router".to_owned(), "10.1.0.5/24".parse().unwrap())].into(),
            }]
        );
        assert_eq!(
            req.ipv6[0].gateway.unwrap().addr(),
            "fd00:1::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(req.ipv6[0].gateway.unwrap().prefix_len(), 64);
        let o = &req.options;
        assert!(o.enable_ipv4, "absent enable_ipv4 means IPv4 is on");
        assert!(o.enable_ipv6);
        assert!(!o.internal);
        assert_eq!(o.generic["kuryr.net.name"], "blue");
        assert_eq!(o.generic["mtu"], "1400");
        assert_eq!(o.generic["flag"], "true");
        assert_eq!(o.generic["empty"], "");
        assert_eq!(o.extra["com.docker.network.bridge.name"], "br0");
        assert_eq!(o.extra["com.docker.network.something"], r#"{"nested":[1]}"#);
        assert!(!o.extra.contains_key(label::GENERIC));
    }

    #[test]
    fn create_network_with_null_options_and_no_ipv6() {
        let body = json!({"NetworkID": NID, "Options": null, "IPv4Data": [{"AddressSpace": "", "Pool": "10.1.0.0/24"}], "IPv6Data": null});
        let req = CreateNetwork::try_from(
            decode::<wire::CreateNetworkRequest>(Call::CreateNetwork, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.options, NetworkOptions::default());
        assert_eq!(req.ipv4[0].gateway, None);
        assert!(req.ipv6.is_empty());
    }

    #[test]
    fn ipv6_only_network_option_is_read() {
        let body = json!({"NetworkID": NID, "Options": {"com.docker.network.enable_ipv4": false, "com.docker.network.enable_ipv6": true}});
        let req = CreateNetwork::try_from(
            decode::<wire::CreateNetworkRequest>(Call::CreateNetwork, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert!(!req.options.enable_ipv4);
        assert!(req.options.enable_ipv6);
    }

    #[test]
    fn create_endpoint_is_parsed_with_base64_mac_ports_and_driver_opts() {
        let body = endpoint(
            json!({"Address": "10.1.0.2/24", "AddressIPv6": "fd00:1::2/64", "MacAddress": ""}),
            json!({
                "com.docker.network.endpoint.macaddress": "AkIKAQAC",
                "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 53}],
                "com.docker.network.portmap": [
                    {"Proto": 6, "IP": "", "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8080, "HostPortEnd": 8080},
                    {"Proto": 17, "IP": "10.1.0.2", "Port": 53, "HostIP": "::", "HostPort": 5300, "HostPortEnd": 5310}
                ],
                "kuryr.port.vnic_type": "normal"
            }),
        );
        let req = CreateEndpoint::try_from(
            decode::<wire::CreateEndpointRequest>(Call::CreateEndpoint, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.endpoint_id.as_str(), EID);
        assert_eq!(req.address, Some("10.1.0.2/24".parse().unwrap()));
        assert_eq!(req.address_ipv6, Some("fd00:1::2/64".parse().unwrap()));
        assert_eq!(req.mac_address, None);
        let mac = "02:42:0a:01:00:02".parse::<MacAddr>().unwrap();
        assert_eq!(req.options.mac_address, Some(mac));
        assert_eq!(req.requested_mac(), Some(mac));
        assert_eq!(
            req.options.exposed_ports,
            vec![
                TransportPort {
                    proto: Protocol::Tcp,
                    port: 80
                },
                TransportPort {
                    proto: Protocol::Udp,
                    port: 53
                }
            ]
        );
        assert_eq!(
            req.options.port_map,
            vec![
                PortBinding {
                    proto: Protocol::Tcp,
                    ip: None,
                    port: 80,
                    host_ip: Some("0.0.0.0".parse().unwrap()),
                    host_port: 8080,
                    host_port_end: 8080,
                },
                PortBinding {
                    proto: Protocol::Udp,
                    ip: Some("10.1.0.2".parse().unwrap()),
                    port: 53,
                    host_ip: Some("::".parse().unwrap()),
                    host_port: 5300,
                    host_port_end: 5310,
                },
            ]
        );
        assert_eq!(req.options.extra.len(), 1);
        assert_eq!(req.options.extra["kuryr.port.vnic_type"], "normal");
    }

    #[test]
    fn create_endpoint_with_docker_chosen_mac_and_null_lists() {
        let body = endpoint(
            json!({"Address": "10.1.0.2/24", "MacAddress": "02:42:0A:01:00:09"}),
            json!({"com.docker.network.endpoint.exposedports": null, "com.docker.network.portmap": null}),
        );
        let req = CreateEndpoint::try_from(
            decode::<wire::CreateEndpointRequest>(Call::CreateEndpoint, &raw(&body)).unwrap(),
        )
        .unwrap();
        let mac = "02:42:0a:01:00:09".parse::<MacAddr>().unwrap();
        assert_eq!(req.mac_address, Some(mac));
        assert_eq!(req.requested_mac(), Some(mac));
        assert!(req.options.exposed_ports.is_empty());
        assert!(req.options.port_map.is_empty());
        assert!(req.options.extra.is_empty());
    }

    #[test]
    fn create_endpoint_without_interface() {
        let body = endpoint(json!(null), json!(null));
        let req = CreateEndpoint::try_from(
            decode::<wire::CreateEndpointRequest>(Call::CreateEndpoint, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (req.address, req.address_ipv6, req.mac_address),
            (None, None, None)
        );
        assert_eq!(req.options, EndpointOptions::default());
    }

    #[test]
    fn join_and_program_external_connectivity_are_parsed() {
        let body = json!({"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/var/run/docker/netns/5c1e", "Options": {
            "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 443}]
        }});
        let req =
            Join::try_from(decode::<wire::JoinRequest>(Call::Join, &raw(&body)).unwrap()).unwrap();
        assert_eq!(req.sandbox_key, PathBuf::from("/var/run/docker/netns/5c1e"));
        assert_eq!(req.options.exposed_ports[0].port, 443);

        let body = json!({"NetworkID": NID, "EndpointID": EID, "Options": {
            "com.docker.network.endpoint.exposedports": [{"Proto": 1, "Port": 0}],
            "com.docker.network.endpoint.noproxy6to4": true
        }});
        let req = ProgramExternalConnectivity::try_from(
            decode::<wire::ProgramExternalConnectivityRequest>(
                Call::ProgramExternalConnectivity,
                &raw(&body),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(req.options.exposed_ports[0].proto, Protocol::Icmp);
        assert_eq!(
            req.options.extra["com.docker.network.endpoint.noproxy6to4"],
            "true"
        );
    }

    #[test]
    fn endpoint_ref_is_parsed() {
        let body = json!({"NetworkID": NID, "EndpointID": EID});
        let req =
            EndpointRef::from_wire(Call::Leave, decode(Call::Leave, &raw(&body)).unwrap()).unwrap();
        assert_eq!(
            (req.network_id.as_str(), req.endpoint_id.as_str()),
            (NID, EID)
        );
    }

    #[test]
    fn request_pool_is_parsed() {
        let cases: Vec<(Value, Option<&str>, Option<&str>, bool)> = vec![
            (
                json!({"AddressSpace": "local_scope", "Pool": "", "SubPool": "", "Options": null, "V6": false}),
                None,
                None,
                false,
            ),
            // A Swarm manager: V6 is always false, the pool's family decides.
            (
                json!({"AddressSpace": "local_scope", "Pool": "fd00:7::/64", "V6": false}),
                Some("fd00:7::/64"),
                None,
                true,
            ),
            (
                json!({"AddressSpace": "local_scope", "Pool": "10.7.0.0/24", "V6": true}),
                Some("10.7.0.0/24"),
                None,
                false,
            ),
            (
                json!({"AddressSpace": "local_scope", "Pool": "10.1.0.0/16", "SubPool": "10.1.4.0/24", "V6": false}),
                Some("10.1.0.0/16"),
                Some("10.1.4.0/24"),
                false,
            ),
            (
                json!({"AddressSpace": "local_scope", "Pool": "fd00:1::/64", "V6": true}),
                Some("fd00:1::/64"),
                None,
                true,
            ),
            (
                json!({"AddressSpace": "local_scope", "V6": true}),
                None,
                None,
                true,
            ),
        ];
        for (body, pool, sub_pool, v6) in cases {
            let req = RequestPool::try_from(
                decode::<wire::RequestPoolRequest>(Call::RequestPool, &raw(&body)).unwrap(),
            )
            .unwrap();
            assert_eq!(req.address_space, "local_scope");
            assert_eq!(req.pool, pool.map(|p| p.parse().unwrap()), "{body}");
            assert_eq!(req.sub_pool, sub_pool.map(|p| p.parse().unwrap()), "{body}");
            assert_eq!(req.v6, v6);
        }
        let body = json!({"Pool": "10.1.0.0/24", "Options": {"neutron.pool.name": "shared"}});
        let req = RequestPool::try_from(
            decode::<wire::RequestPoolRequest>(Call::RequestPool, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.options["neutron.pool.name"], "shared");
    }

    #[test]
    fn request_address_tells_gateway_from_endpoint() {
        let cases: Vec<(Value, Option<&str>, AddressKind, Option<&str>)> = vec![
            (
                json!({"PoolID": "p", "Address": "10.1.0.1", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
                Some("10.1.0.1"),
                AddressKind::Gateway,
                None,
            ),
            (
                json!({"PoolID": "p", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
                None,
                AddressKind::Gateway,
                None,
            ),
            (
                json!({"PoolID": "p", "Address": "", "Options": {"com.docker.network.endpoint.macaddress": "02:42:0a:01:00:02"}}),
                None,
                AddressKind::Endpoint,
                Some("02:42:0a:01:00:02"),
            ),
            (
                json!({"PoolID": "p", "Address": "10.1.0.7", "Options": null}),
                Some("10.1.0.7"),
                AddressKind::Endpoint,
                None,
            ),
            (
                json!({"PoolID": "p", "Address": "fd00:1::7"}),
                Some("fd00:1::7"),
                AddressKind::Endpoint,
                None,
            ),
            // The CIDR form is not what Docker sends, but it is unambiguous.
            (
                json!({"PoolID": "p", "Address": "10.1.0.8/24"}),
                Some("10.1.0.8"),
                AddressKind::Endpoint,
                None,
            ),
            (
                json!({"PoolID": "p", "Options": {"RequestAddressType": "something.else"}}),
                None,
                AddressKind::Endpoint,
                None,
            ),
        ];
        for (body, address, kind, mac) in cases {
            let req = RequestAddress::try_from(
                decode::<wire::RequestAddressRequest>(Call::RequestAddress, &raw(&body)).unwrap(),
            )
            .unwrap();
            assert_eq!(req.pool_id, "p");
            assert_eq!(req.address, address.map(|a| a.parse().unwrap()), "{body}");
            assert_eq!(req.kind, kind, "{body}");
            assert_eq!(req.mac_address, mac.map(|m| m.parse().unwrap()), "{body}");
        }
    }

    #[test]
    fn release_calls_are_parsed() {
        let body = json!({"PoolID": "p1", "Address": "10.1.0.5"});
        let req = ReleaseAddress::try_from(
            decode::<wire::ReleaseAddressRequest>(Call::ReleaseAddress, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            req,
            ReleaseAddress {
                pool_id: "p1".into(),
                address: "10.1.0.5".parse().unwrap()
            }
        );
        let body = json!({"PoolID": "p1"});
        let req = ReleasePool::try_from(
            decode::<wire::ReleasePoolRequest>(Call::ReleasePool, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.pool_id, "p1");
    }

    #[test]
    fn allocate_network_keeps_options_and_parses_pools() {
        let body = json!({"NetworkID": NID, "Options": {"kuryr.net.name": "blue"},
            "IPv4Data": [{"AddressSpace": "GlobalDefault", "Pool": "10.2.0.0/16", "Gateway": "10.2.0.1/16"}], "IPv6Data": null});
        let req = AllocateNetwork::try_from(
            decode::<wire::AllocateNetworkRequest>(Call::AllocateNetwork, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.options["kuryr.net.name"], "blue");
        assert_eq!(req.ipv4[0].pool, "10.2.0.0/16".parse::<IpNet>().unwrap());
        assert!(req.ipv6.is_empty());
    }

    #[test]
    fn allocate_network_sorts_a_swarm_managers_ipv6_pools_out_of_ipv4data() {
        let body = json!({"NetworkID": NID, "Options": {},
            "IPv4Data": [{"Pool": "10.2.0.0/24", "Gateway": "10.2.0.1/24"},
                         {"Pool": "fd00:2::/64", "Gateway": "fd00:2::1/64"}], "IPv6Data": null});
        let req = AllocateNetwork::try_from(
            decode::<wire::AllocateNetworkRequest>(Call::AllocateNetwork, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.ipv4.len(), 1);
        assert_eq!(req.ipv4[0].pool, "10.2.0.0/24".parse::<IpNet>().unwrap());
        assert_eq!(req.ipv6.len(), 1);
        assert_eq!(req.ipv6[0].pool, "fd00:2::/64".parse::<IpNet>().unwrap());
        assert_eq!(req.ipv6[0].gateway, Some("fd00:2::1/64".parse().unwrap()));
    }

    #[test]
    fn a_prefix_only_subnet_asks_for_any_subnet_of_that_length() {
        for (pool, len, v6) in [("0.0.0.0/24", 24, false), ("::/56", 56, true)] {
            let body = json!({"AddressSpace": "local_scope", "Pool": pool, "V6": false});
            let req = RequestPool::try_from(
                decode::<wire::RequestPoolRequest>(Call::RequestPool, &raw(&body)).unwrap(),
            )
            .unwrap();
            assert_eq!(req.pool, None, "{pool}");
            assert_eq!(req.prefix_len, Some(len), "{pool}");
            assert_eq!(req.v6, v6, "{pool}");
        }
    }

    #[test]
    fn serial_allocation_and_the_endpoint_name_are_read_from_request_address() {
        let body = json!({"PoolID": "p", "Address": "", "Options": {"com.docker.network.ipam.serial": "true"}});
        let req = RequestAddress::try_from(
            decode::<wire::RequestAddressRequest>(Call::RequestAddress, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert!(req.serial);
        let body = json!({"PoolID": "p", "Address": "", "Options": {"com.docker.network.endpoint.name": "web-1"}});
        let req = RequestAddress::try_from(
            decode::<wire::RequestAddressRequest>(Call::RequestAddress, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert!(!req.serial);
        assert_eq!(req.options[label::ENDPOINT_NAME], "web-1");
    }

    #[test]
    fn the_interface_name_option_is_kept_and_sysctls_pass_through() {
        let body = endpoint(
            json!({"Address": "10.1.0.2/24"}),
            json!({"com.docker.network.endpoint.ifname": "data0",
                   "com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.forwarding=1"}),
        );
        let req = CreateEndpoint::try_from(
            decode::<wire::CreateEndpointRequest>(Call::CreateEndpoint, &raw(&body)).unwrap(),
        )
        .unwrap();
        assert_eq!(req.options.ifname.as_deref(), Some("data0"));
        assert_eq!(
            req.options.extra[label::ENDPOINT_SYSCTLS],
            "net.ipv4.conf.IFNAME.forwarding=1"
        );
    }

    #[test]
    fn discovery_passes_data_through() {
        let body =
            json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.1", "self": false}});
        let req: Discovery = decode::<wire::DiscoveryNotification>(Call::DiscoverNew, &raw(&body))
            .unwrap()
            .into();
        assert_eq!(req.discovery_type, 1);
        assert_eq!(req.data["Address"], "192.0.2.1");
    }
}
