//! Neutron's objects, with the fields kuryr reads; everything else is ignored.
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub shared: bool,
    #[serde(default)]
    pub revision_number: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub network_id: String,
    pub cidr: String,
    pub ip_version: u8,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub subnetpool_id: Option<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub enable_dhcp: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SubnetPool {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub ip_version: u8,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub network_id: String,
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub revision_number: u64,
    #[serde(default, rename = "binding:host_id")]
    pub host_id: Option<String>,
    #[serde(default, rename = "binding:vif_type")]
    pub vif_type: Option<String>,
    /// Of a trunk's parent port (the `trunk-details` extension).
    #[serde(default)]
    pub trunk_details: Option<TrunkDetails>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
}

/// An address (and MAC) a port may send from besides its own (`allowed-address-pairs`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AddressPair {
    pub ip_address: String,
    #[serde(default)]
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TrunkDetails {
    pub trunk_id: String,
    #[serde(default)]
    pub sub_ports: Vec<SubPort>,
}

/// A port of a trunk other than its parent, with the VLAN its traffic carries on the parent.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SubPort {
    pub port_id: String,
    #[serde(default)]
    pub segmentation_type: String,
    pub segmentation_id: u16,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<u16>,
    #[serde(default)]
    pub port_range_max: Option<u16>,
}
