//! Containers inside VMs (OVN's "Containers" columns of Logical_Switch_Port): a container's
//! port is a child of the VM's own port (`parent_name`) and ovn-northd gives it a VLAN tag
//! unique among that parent's children (`tag_request = 0`, then `tag`). The hypervisor's
//! ovn-controller pops the tag of frames arriving through the VM's port and runs them through
//! the child's own port (its own port security, ACLs and conntrack zone).
//!
//! Trust: Northbound has no access control, so a VM that can write it controls every logical
//! network. The OVN mode's nesting is for VMs trusted like hypervisors.
use crate::backend::{OvnBackend, LSP};
use crate::error::{OvnError, Result};
use crate::keys;
use kuryr_ovsdb::datum::Row;
use kuryr_ovsdb::Replica;
use serde_json::{json, Value};
use std::time::Duration;

/// The tag of a container port, once ovn-northd has written it.
pub(crate) fn tag_of(p: &Row) -> Option<u16> {
    if p.str("parent_name").is_none_or(str::is_empty) {
        return None;
    }
    // `int` reads both a bare atom and a one-element set (how a diff leaves it).
    p.int("tag")
        .and_then(|t| u16::try_from(t).ok())
        .filter(|t| (1..=4094).contains(t))
}

/// Adds `pair` to an OVSDB map datum (`["map", [[k, v], ...]]`).
fn push_pair(map: &mut Value, key: &str, value: &str) {
    if let Some(pairs) = map.get_mut(1).and_then(Value::as_array_mut) {
        pairs.push(json!([key, value]));
    }
}

impl OvnBackend {
    /// The columns that make a new Logical_Switch_Port (`lsp`, the insert's row) a child of
    /// this VM's port; nothing on a host that is not a VM. Refused when the VM already holds
    /// its limit of containers.
    pub(crate) fn nest(&self, rep: &Replica, lsp: &mut Value) -> Result<()> {
        let Some(parent) = self.settings().parent_port.as_deref() else {
            return Ok(());
        };
        let children = rep.table(LSP).by_external_id(keys::PARENT, parent).len();
        let limit = usize::from(self.settings().nested_port_limit);
        if children >= limit {
            return Err(OvnError::Exhausted(format!(
                "the VM of port {parent} already holds {children} containers, the most it may ({}): remove one first",
                if limit == 4094 {
                    "4094 VLAN tags per VM".to_string()
                } else {
                    format!("[binding] nested_port_limit = {limit}")
                }
            )));
        }
        lsp["parent_name"] = json!(parent);
        lsp["tag_request"] = json!(0);
        if let Some(ext) = lsp.get_mut("external_ids") {
            push_pair(ext, keys::PARENT, parent);
        }
        Ok(())
    }

    /// Waits until ovn-northd has given the new container port its tag (a round trip through
    /// Southbound, about 20 ms on an idle Northbound). ovn-northd never gives a new port a tag
    /// another child of the parent holds.
    pub(crate) async fn wait_for_tag(&self, endpoint_id: &str) -> Result<u16> {
        let timeout = self.settings().write_timeout;
        let found = self
            .client()
            .wait_for(timeout, |rep| {
                tag_of(&*rep.table(LSP).one_by_name(endpoint_id)?)
            })
            .await;
        found.ok_or_else(|| {
            timed_out(
                format!(
                    "container port {} of VM port {}: is ovn-northd running?",
                    crate::backend::short(endpoint_id),
                    self.settings().parent_port.as_deref().unwrap_or("?"),
                ),
                "its VLAN tag from ovn-northd",
                timeout,
            )
        })
    }

    /// Join's wait: a container port inside a VM is up once the VM's own port is bound on
    /// its hypervisor (ovn-controller claims the children with the parent); it says nothing
    /// about the container end, which the VM's bridge carries at once.
    pub(crate) async fn wait_nested_up(&self, endpoint_id: &str, timeout: Duration) -> Result<()> {
        let up = self
            .client()
            .wait_for(timeout, |rep| {
                let p = rep.table(LSP).one_by_name(endpoint_id)?;
                (p.bool("up") == Some(true)).then_some(())
            })
            .await;
        up.ok_or_else(|| {
            timed_out(
                format!(
                    "container port {}: its VM's port {} is not bound on a hypervisor (is the VM's NIC on the hypervisor's br-int with external_ids:iface-id set, and ovn-controller running there?)",
                    crate::backend::short(endpoint_id),
                    self.settings().parent_port.as_deref().unwrap_or("?")
                ),
                "up in Northbound",
                timeout,
            )
        })
    }
}

/// Northbound did not show `what` within `waited`; `context` says what to check.
fn timed_out(context: String, what: &str, waited: Duration) -> OvnError {
    OvnError::Db {
        context,
        source: Box::new(kuryr_ovsdb::Error::Timeout {
            what: what.to_string(),
            seconds: waited.as_secs_f64(),
        }),
    }
}

/// The VM's own port: the one plain (type "") logical port whose MAC is `mac`.
pub fn parent_by_mac(rep: &Replica, mac: &str) -> Result<String> {
    let mac = mac.to_ascii_lowercase();
    let found: Vec<String> = rep
        .table(LSP)
        .rows()
        .filter(|p| p.str("type").is_none_or(str::is_empty))
        .filter(|p| p.str("parent_name").is_none_or(str::is_empty))
        .filter(|p| {
            p.strings("addresses").iter().any(|a| {
                a.split_whitespace()
                    .next()
                    .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
            })
        })
        .filter_map(|p| p.str("name").map(str::to_string))
        .collect();
    match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(OvnError::NotFound(format!(
                "no logical switch port has MAC {mac}: give the VM's port with `kuryr host init --underlay --parent-port NAME` or [binding] parent_port"
            ))),
            many => Err(OvnError::Conflict(format!(
                "{} logical switch ports have MAC {mac} ({}): give the VM's port with [binding] parent_port",
                many.len(),
                many.join(", ")
            ))),
        }
}

/// At start: the parent exists and can have children (a plain port, not a child itself).
pub fn check_parent(rep: &Replica, parent: &str) -> Result<()> {
    let p = rep.table(LSP).one_by_name(parent).ok_or_else(|| {
            OvnError::NotFound(format!(
                "the VM's port {parent} is not in Northbound: check [binding] parent_port or `kuryr host init --parent-port`"
            ))
        })?;
    if p.str("type").is_some_and(|t| !t.is_empty()) {
        return Err(OvnError::Invalid(format!(
            "the VM's port {parent} is of type {:?}: only a plain VIF port can carry containers",
            p.str("type").unwrap_or_default()
        )));
    }
    if p.str("parent_name").is_some_and(|n| !n.is_empty()) {
        return Err(OvnError::Invalid(format!(
            "{parent} is itself a container port: give the VM's own port"
        )));
    }
    Ok(())
}
