//! Inside a VM (`kuryr host init --underlay`): no ovn-controller, no tunnel endpoint, no host
//! gateway here; what matters is the VM's bridge and the VM's own port, which the
//! hypervisor's ovn-controller must have bound.
use super::{fail, ok, ovsdb_client, Check};
use kuryr_daemon::config::Config;
use kuryr_daemon::host::{HostBinding, HostFacts};
use std::time::Duration;

/// The bridge and the NIC on it; the VM's port and whether it is bound: what the daemon
/// finds at start, found the same way.
pub(super) async fn checks(config: &Config, limit: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    let fix_bridge =
        "kuryr host nics-to-bridge eth0, then kuryr host init --underlay --bridge breth0";
    let (bridge, vm) = match HostBinding::connect(config).await {
        Ok(HostFacts {
            binding: HostBinding::Nested(b),
            vm: Some(vm),
            ..
        }) => (b.ovs().bridge().to_string(), vm),
        Ok(_) => {
            out.push(fail(
                "vm bridge",
                "[binding] default_driver chooses the host binding, not the vlan one",
                "remove [binding] default_driver = veth inside a VM",
            ));
            return out;
        }
        Err(e) => {
            out.push(fail("vm bridge", e.to_string(), fix_bridge));
            return out;
        }
    };
    out.push(ok(
        "vm bridge",
        format!(
            "{bridge} switches on its own and holds the VM's NIC {} ({})",
            vm.link_iface,
            vm.link_mac.as_deref().unwrap_or("MAC unknown")
        ),
    ));
    if config.backend == kuryr_daemon::config::BackendKind::Neutron {
        out.push(neutron_vm_port(config, &vm).await);
        return out;
    }
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
    let parent = match kuryr_daemon::resolve_parent(&client, &vm) {
        Ok(p) => p,
        Err(e) => {
            out.push(fail(
                "vm port",
                e,
                "give the VM's port: kuryr host init --underlay --parent-port NAME (or [binding] parent_port)",
            ));
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

/// Inside a VM with the macvlan driver: the NIC the devices hang off, and the VM's port that
/// carries the containers' addresses, found as the daemon finds them.
pub(super) async fn macvlan_checks(config: &Config, limit: Duration) -> Vec<Check> {
    let fix = "set [binding] link_iface to the VM's NIC (e.g. eth0)";
    let vm = match HostBinding::connect(config).await {
        Ok(HostFacts { vm: Some(vm), .. }) => vm,
        Ok(_) => return vec![fail("vm nic", "no VM NIC known", fix)],
        Err(e) => return vec![fail("vm nic", e.to_string(), fix)],
    };
    let mut out = vec![ok(
        "vm nic",
        format!(
            "macvlan devices on {} ({})",
            vm.link_iface,
            vm.link_mac.as_deref().unwrap_or("MAC unknown")
        ),
    )];
    let port_fix = "give the VM's port with [binding] parent_port";
    if config.backend == kuryr_daemon::config::BackendKind::Neutron {
        let found = match kuryr_daemon::neutron_client(config) {
            Ok(client) => kuryr_daemon::neutron_vm_port(&client, &vm)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.push(match found {
            Ok(p) => ok(
                "vm port",
                format!(
                    "{} on network {} carries the containers' addresses",
                    p.id, p.network_id
                ),
            ),
            Err(e) => fail("vm port", e, port_fix),
        });
        return out;
    }
    let nb = config.ovn.nb_connection.clone();
    match ovsdb_client(&nb, "OVN_Northbound", kuryr_ovn::TABLES, None, limit).await {
        Err(e) => out.push(fail(
            "northbound",
            format!("OVN Northbound at {nb} does not answer: {e}"),
            "check that the VM reaches Northbound there, or correct [ovn] ovn_nb_connection",
        )),
        Ok(client) => out.push(match kuryr_daemon::resolve_parent(&client, &vm) {
            Ok(p) => {
                let rep = client.replica();
                let held = rep
                    .table("Logical_Switch_Port")
                    .one_by_name(&p)
                    .map(|r| {
                        r.string_map("external_ids")
                            .keys()
                            .filter(|k| k.starts_with(kuryr_ovn::macvlan::RECORD_PREFIX))
                            .count()
                    })
                    .unwrap_or(0);
                ok(
                    "vm port",
                    format!("{p} carries {held} containers' addresses"),
                )
            }
            Err(e) => fail("vm port", e, port_fix),
        }),
    }
    out
}

/// The Neutron mode: the VM's port (as the daemon finds it), its trunk, and whether the
/// hypervisor bound it.
async fn neutron_vm_port(config: &Config, vm: &kuryr_daemon::host::VmFacts) -> Check {
    let fix = "make the VM's port a trunk parent as the VM's project (openstack network trunk create --parent-port PORT NAME), or give the port with [binding] parent_port";
    let client = match kuryr_daemon::neutron_client(config) {
        Ok(c) => c,
        Err(e) => return fail("vm port", e.to_string(), "correct [neutron] in kuryr.conf"),
    };
    let trunk = match kuryr_daemon::neutron_trunk(&client, vm, config).await {
        Ok(t) => t,
        Err(e) => return fail("vm port", e.to_string(), fix),
    };
    let port = match client.port(&trunk.parent).await {
        Ok(p) => p,
        Err(e) => return fail("vm port", e.to_string(), fix),
    };
    let subports = port.trunk_details.map_or(0, |d| d.sub_ports.len());
    if port.status == "ACTIVE" {
        ok(
            "vm port",
            format!(
                "{} is ACTIVE, parent of trunk {} with {subports} subports",
                trunk.parent, trunk.id
            ),
        )
    } else {
        fail(
            "vm port",
            format!(
                "{} (parent of trunk {}) is {}: no hypervisor has bound it, so its containers cannot reach anything",
                trunk.parent, trunk.id, port.status
            ),
            "on the hypervisor: Nova/Neutron must have bound the VM's port (binding:host_id) and plugged the VM's NIC into br-int with external_ids:iface-id set to the port id",
        )
    }
}
