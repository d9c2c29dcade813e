//! Inside a VM with the macvlan driver: a container's frames leave through the VM's own port
//! with the container's MAC and address, so that port carries them. Each container adds its
//! `"MAC IP..."` entry to the VM's Logical_Switch_Port `addresses` (the switch then forwards
//! the container's MAC to the VM and answers ARP for its address) and `port_security` (the VM
//! may send from it), plus a record `kuryr:macvlan:<endpoint id>` = `<network id> <MAC> <IP>...`
//! in its external_ids: one transaction of set mutations, which ovsdb-server applies to the
//! row as it is, so containers started at once never write over each other. Containers join
//! the VM's own logical switch and have no port of their own: no ACLs or conntrack zone of
//! their own, and they do not reach the VM they run in (macvlan never hands a frame to its
//! lower device's addresses).
use crate::backend::{
    address_entry, choose_mac, ips_of, network_by_id, Endpoint, EndpointSpec, OvnBackend,
};
use crate::error::{OvnError, Result};
use crate::keys;
use kuryr_ovsdb::datum::{self, Row};
use kuryr_ovsdb::txn;
use kuryr_ovsdb::{Replica, Txn};
use serde_json::json;
use std::sync::Arc;

const LS: &str = "Logical_Switch";
const LSP: &str = "Logical_Switch_Port";
const NB: &str = "OVN_Northbound";
/// The external_ids key of a container's record on the VM's port.
pub const RECORD_PREFIX: &str = "kuryr:macvlan:";

fn record_key(endpoint_id: &str) -> String {
    format!("{RECORD_PREFIX}{endpoint_id}")
}

/// The `addresses` entry a record stands for: its words after the network id.
fn entry_of(record: &str) -> &str {
    record.split_once(' ').map_or("", |(_, rest)| rest)
}

fn endpoint_from(rep: &Replica, vm: &Row, endpoint_id: &str, record: &str) -> Option<Endpoint> {
    let mut words = record.split_whitespace();
    let network_id = words.next()?.to_string();
    let mac = words.next()?.to_string();
    let net = network_by_id(rep, &network_id);
    let (ipv4, ipv6) = ips_of(words, net.as_ref());
    let vm_name = vm.str("name").unwrap_or_default().to_string();
    Some(Endpoint {
        endpoint_id: endpoint_id.to_string(),
        network_id,
        port: vm_name.clone(),
        mac,
        ipv4,
        ipv6,
        gateway_v4: net.as_ref().and_then(|n| n.gateway_v4),
        gateway_v6: net.as_ref().and_then(|n| n.gateway_v6),
        host: Some(vm_name),
        vlan: None,
    })
}

impl OvnBackend {
    fn vm_port(&self, rep: &Replica, parent: &str) -> Result<Arc<Row>> {
        rep.table(LSP).one_by_name(parent).ok_or_else(|| {
            OvnError::NotFound(format!(
                "the VM's port {parent} is no longer in Northbound: the VM's containers have nowhere to be"
            ))
        })
    }

    pub(crate) async fn create_macvlan_endpoint(
        &self,
        parent: &str,
        spec: &EndpointSpec,
    ) -> Result<Endpoint> {
        let key = record_key(&spec.endpoint_id);
        let net_key = keys::net_key(&spec.network_id);
        let mut record = String::new();
        self.write(
            &format!("allow endpoint {} on the VM's port {parent}", crate::backend::short(&spec.endpoint_id)),
            |rep| {
                let ls = rep.table(LS).by_external_key(&net_key).into_iter().next().ok_or_else(|| {
                    OvnError::NotFound(format!(
                        "network {} is not known to kuryr (no logical switch is marked {net_key}): recreate the Docker network",
                        crate::backend::short(&spec.network_id)
                    ))
                })?;
                let vm = self.vm_port(rep, parent)?;
                if let Some(r) = vm.external_id(&key) {
                    // A retry: made already.
                    record = r.to_string();
                    return Ok(None);
                }
                if !ls.uuids("ports").contains(&vm.uuid) {
                    let vm_switch = rep
                        .table(LS)
                        .rows()
                        .into_iter()
                        .find(|s| s.uuids("ports").contains(&vm.uuid))
                        .and_then(|s| s.str("name").map(str::to_string))
                        .unwrap_or_else(|| "(none)".into());
                    return Err(OvnError::Invalid(format!(
                        "with the macvlan driver containers join the VM's own logical switch {vm_switch}: create the Docker network with -o kuryr.net.name={vm_switch}"
                    )));
                }
                let held = vm
                    .string_map("external_ids")
                    .keys()
                    .filter(|k| k.starts_with(RECORD_PREFIX))
                    .count();
                let limit = usize::from(self.settings().nested_port_limit);
                if held >= limit {
                    return Err(OvnError::Exhausted(format!(
                        "the VM of port {parent} already holds {held} containers, the most it may ([binding] nested_port_limit = {limit}): remove one first"
                    )));
                }
                let taken = |m: &str| {
                    vm.strings("addresses")
                        .iter()
                        .any(|a| a.split_whitespace().next().is_some_and(|x| x.eq_ignore_ascii_case(m)))
                };
                let mac = choose_mac(spec, taken).map_err(|m| {
                    OvnError::Conflict(format!("MAC address {m} is already on the VM's port {parent}"))
                })?;
                let entry = address_entry(&mac, spec);
                record = format!("{} {entry}", spec.network_id);
                let mut t = Txn::new(NB);
                // The VM's port must still be there: a mutation of no row would succeed.
                t.wait(LSP, vec![txn::by_uuid(vm.uuid)], &["name"], true, vec![json!({"name": parent})], 0);
                t.mutate(
                    LSP,
                    vec![txn::by_uuid(vm.uuid)],
                    vec![
                        txn::mutate_insert("addresses", datum::set([json!(entry)])),
                        txn::mutate_insert("port_security", datum::set([json!(entry)])),
                        txn::mutate_insert("external_ids", datum::map([(key.as_str(), record.as_str())])),
                    ],
                );
                Ok(Some(t))
            },
        )
        .await?;
        let rep = self.client().replica();
        let vm = self.vm_port(&rep, parent)?;
        endpoint_from(&rep, &vm, &spec.endpoint_id, &record).ok_or_else(|| {
            OvnError::NotFound(format!(
                "endpoint {}: its network was deleted at the same time",
                crate::backend::short(&spec.endpoint_id)
            ))
        })
    }

    pub(crate) fn macvlan_endpoint(&self, parent: &str, endpoint_id: &str) -> Option<Endpoint> {
        let rep = self.client().replica();
        let vm = rep.table(LSP).one_by_name(parent)?;
        let record = vm.external_id(&record_key(endpoint_id))?.to_string();
        endpoint_from(&rep, &vm, endpoint_id, &record)
    }

    pub(crate) fn macvlan_endpoints(&self, parent: &str) -> Vec<Endpoint> {
        let rep = self.client().replica();
        let Some(vm) = rep.table(LSP).one_by_name(parent) else {
            return Vec::new();
        };
        vm.string_map("external_ids")
            .iter()
            .filter_map(|(k, v)| {
                let eid = k.strip_prefix(RECORD_PREFIX)?;
                endpoint_from(&rep, &vm, eid, v)
            })
            .collect()
    }

    /// The endpoints whose entry on the VM's port `holds` says so.
    pub(crate) fn macvlan_endpoints_holding(
        &self,
        parent: &str,
        holds: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let rep = self.client().replica();
        let Some(vm) = rep.table(LSP).one_by_name(parent) else {
            return Vec::new();
        };
        vm.string_map("external_ids")
            .iter()
            .filter(|(k, v)| k.starts_with(RECORD_PREFIX) && holds(entry_of(v)))
            .filter_map(|(k, _)| k.strip_prefix(RECORD_PREFIX).map(str::to_string))
            .collect()
    }

    /// The records of a network being deleted (a killed kuryr's leftovers Docker never
    /// released), as a switch's ports go with the switch.
    pub(crate) async fn forget_macvlan_network(
        &self,
        parent: &str,
        network_id: &str,
    ) -> Result<()> {
        self.forget_macvlan_records(
            parent,
            &format!("network {}", crate::backend::short(network_id)),
            |record| record.split_whitespace().next() == Some(network_id),
        )
        .await
    }

    async fn forget_macvlan_records(
        &self,
        parent: &str,
        what: &str,
        stale: impl Fn(&str) -> bool,
    ) -> Result<()> {
        self.write(
            &format!("forget the entries of {what} on the VM's port {parent}"),
            |rep| {
                let Some(vm) = rep.table(LSP).one_by_name(parent) else {
                    return Ok(None);
                };
                let found: Vec<(String, String)> = vm
                    .string_map("external_ids")
                    .into_iter()
                    .filter(|(k, v)| k.starts_with(RECORD_PREFIX) && stale(v))
                    .collect();
                if found.is_empty() {
                    return Ok(None);
                }
                for (k, _) in &found {
                    tracing::info!(endpoint = %k.trim_start_matches(RECORD_PREFIX), of = %what, "removing the VM port's entry of an endpoint whose creation was cut short");
                }
                let entries: Vec<_> = found.iter().map(|(_, v)| json!(entry_of(v))).collect();
                let keys: Vec<_> = found.iter().map(|(k, _)| json!(k)).collect();
                let mut t = Txn::new(NB);
                t.mutate(
                    LSP,
                    vec![txn::by_uuid(vm.uuid)],
                    vec![
                        txn::mutate_delete("addresses", datum::set(entries.clone())),
                        txn::mutate_delete("port_security", datum::set(entries)),
                        txn::mutate_delete("external_ids", datum::set(keys)),
                    ],
                );
                Ok(Some(t))
            },
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn delete_macvlan_endpoint(
        &self,
        parent: &str,
        endpoint_id: &str,
    ) -> Result<()> {
        let key = record_key(endpoint_id);
        self.write(
            &format!(
                "take endpoint {} off the VM's port {parent}",
                crate::backend::short(endpoint_id)
            ),
            |rep| {
                let Some(vm) = rep.table(LSP).one_by_name(parent) else {
                    return Ok(None);
                };
                let Some(record) = vm.external_id(&key) else {
                    return Ok(None);
                };
                let entry = entry_of(record).to_string();
                let mut t = Txn::new(NB);
                t.mutate(
                    LSP,
                    vec![txn::by_uuid(vm.uuid)],
                    vec![
                        txn::mutate_delete("addresses", datum::set([json!(entry)])),
                        txn::mutate_delete("port_security", datum::set([json!(entry)])),
                        txn::mutate_delete("external_ids", datum::set([json!(key)])),
                    ],
                );
                Ok(Some(t))
            },
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_network_then_the_addresses_entry() {
        let r = "net1 0a:58:0a:00:00:05 10.0.0.5 fd00::5";
        assert_eq!(entry_of(r), "0a:58:0a:00:00:05 10.0.0.5 fd00::5");
        assert_eq!(record_key("abc"), "kuryr:macvlan:abc");
    }
}
