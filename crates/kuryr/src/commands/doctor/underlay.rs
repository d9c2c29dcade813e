//! Inside a VM (`kuryr host init --underlay`): no ovn-controller, no tunnel endpoint, no host
//! gateway here; what matters is the VM's bridge and the VM's own port, which the
//! hypervisor's ovn-controller must have bound.
use super::{fail, ok, ovsdb_client, Check};
use kuryr_daemon::config::Config;
use kuryr_ovn::{OvnBackend, OvnSettings};
use std::collections::BTreeMap;
use std::time::Duration;

/// The bridge and the NIC on it; the VM's port and whether it is bound.
pub(super) async fn checks(
    config: &Config,
    external_ids: &BTreeMap<String, String>,
    bridge: &str,
    limit: Duration,
) -> Vec<Check> {
    let mut out = Vec::new();
    let fix_bridge =
        "kuryr host nics-to-bridge eth0, then kuryr host init --underlay --bridge breth0";
    let binding =
        match kuryr_binding::NestedVlanBinding::connect(&config.ovs.ovsdb_connection, bridge).await
        {
            Ok(b) => b,
            Err(e) => {
                out.push(fail("vm bridge", e.to_string(), fix_bridge));
                return out;
            }
        };
    let nic = match &config.nested.link_iface {
        Some(n) => Ok((n.clone(), binding.mac_of(n))),
        None => binding.uplink(),
    };
    let (nic, mac) = match nic {
        Ok(found) => found,
        Err(e) => {
            out.push(fail("vm bridge", e.to_string(), fix_bridge));
            return out;
        }
    };
    out.push(ok(
        "vm bridge",
        format!(
            "{bridge} switches on its own and holds the VM's NIC {nic} ({})",
            mac.as_deref().unwrap_or("MAC unknown")
        ),
    ));
    let nb = config.ovn.nb_connection.clone();
    let client = match ovsdb_client(&nb, "OVN_Northbound", kuryr_ovn::TABLES, None, limit).await {
        Ok(c) => c,
        Err(e) => {
            out.push(fail(
                "northbound",
                format!("OVN Northbound at {nb} does not answer: {e}"),
                "check that the VM reaches Northbound there, or correct [ovn] ovn_nb_connection / --nb",
            ));
            return out;
        }
    };
    out.push(ok("northbound", format!("{nb} answers")));
    let backend = OvnBackend::new(client.clone(), OvnSettings::new("doctor"));
    let parent = match config
        .nested
        .parent_port
        .clone()
        .or_else(|| external_ids.get(kuryr_binding::PARENT_PORT_KEY).cloned())
    {
        Some(p) => Ok(p),
        None => match &mac {
            Some(m) => backend.parent_by_mac(m).map_err(|e| e.to_string()),
            None => Err(format!(
                "{nic} has no MAC in Open vSwitch to find the VM's port by"
            )),
        },
    };
    let fix_parent = "give the VM's port: kuryr host init --underlay --parent-port NAME (or [binding] parent_port)";
    let parent = match parent.and_then(|p| {
        backend
            .check_parent(&p)
            .map(|_| p)
            .map_err(|e| e.to_string())
    }) {
        Ok(p) => p,
        Err(e) => {
            out.push(fail("vm port", e, fix_parent));
            return out;
        }
    };
    let rep = client.replica();
    let up = rep
        .table("Logical_Switch_Port")
        .one_by_name(&parent)
        .and_then(|p| p.bool("up"))
        == Some(true);
    let children = rep
        .table("Logical_Switch_Port")
        .by_external_id(kuryr_ovn::keys::PARENT, &parent)
        .len();
    out.push(if up {
        ok(
            "vm port",
            format!("{parent} is bound on a hypervisor; {children} container ports are its children"),
        )
    } else {
        fail(
            "vm port",
            format!("{parent} is not up: no hypervisor has bound it, so its containers cannot reach anything"),
            "on the hypervisor: the VM's NIC must be a port of br-int with external_ids:iface-id set to this name, and ovn-controller must run there",
        )
    });
    out
}
