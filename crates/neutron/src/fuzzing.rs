//! Entry point for the fuzz target in `fuzz/` and for replaying its corpus in tests: a body as
//! Neutron or Keystone might answer, through everything kuryr reads out of one. Must never
//! panic whatever the bytes.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::types::{Network, Port, SecurityGroup, Subnet, SubnetPool};

fn decode<T: DeserializeOwned>(v: &Value, one: &str, many: &str) {
    let _ = crate::client::NeutronClient::decode::<T>(Some(v.clone()), one, &|| one.to_owned());
    let _ =
        crate::client::NeutronClient::decode::<Vec<T>>(Some(v.clone()), many, &|| many.to_owned());
}

/// Reads `data` as an error body, a Keystone token body and each Neutron resource kuryr asks for.
pub fn reply(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::client::error_message(&text);
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = crate::auth::token_lifetime(&v);
    let _ = crate::auth::catalog_endpoint(&v, "public", None);
    let _ = crate::auth::catalog_endpoint(&v, "internalURL", Some("RegionOne"));
    decode::<Network>(&v, "network", "networks");
    decode::<Subnet>(&v, "subnet", "subnets");
    decode::<SubnetPool>(&v, "subnetpool", "subnetpools");
    decode::<Port>(&v, "port", "ports");
    decode::<SecurityGroup>(&v, "security_group", "security_groups");
}
