//! The `vlan` binding for containers inside a VM (the underlay mode): the VM's NIC is a trunk
//! port of an Open vSwitch bridge in the VM (`breth0`, made by `kuryr host nics-to-bridge`),
//! and each container's veth is an access port of that bridge tagged with its logical port's
//! VLAN. The hypervisor's ovn-controller pops the tag and runs the frame through the
//! container's own logical port, so the VM needs no ovn-controller and no kernel VLAN devices.
//!
//! The bridge is plain NORMAL switching (fail mode standalone); what keeps a container on its
//! own VLAN is the access port's tag, and what keeps the VM's own stack off the containers'
//! VLANs is the bridge's LOCAL port in access mode on VLAN 0 (`kuryr host init --underlay`).
use crate::error::BindingError;
use crate::ovs::OvsBinding;
use crate::{Binding, PlugRequest, Plugged, PluggedPort};
use std::time::Duration;

/// `Open_vSwitch` external_ids `kuryr host init` writes: `overlay` or `underlay`.
pub const MODE_KEY: &str = "kuryr-mode";
/// The underlay bridge in the VM (`breth0`).
pub const UNDERLAY_BRIDGE_KEY: &str = "kuryr-bridge";
/// The VM's own port in the control plane (OVN: its Logical_Switch_Port name; Neutron: its
/// port id), the parent of every container port of this VM.
pub const PARENT_PORT_KEY: &str = "kuryr-parent-port";

/// The tags a parent port can give its containers: 802.1Q reserves 0 and 4095.
pub const VLAN_RANGE: std::ops::RangeInclusive<u16> = 1..=4094;

/// Containers inside a VM, on VLAN access ports of the VM's underlay bridge.
#[derive(Clone)]
pub struct NestedVlanBinding {
    ovs: OvsBinding,
}

impl NestedVlanBinding {
    /// Plugs into `bridge` of the VM's Open_vSwitch database at `ovs_db_remote`. The bridge
    /// must exist and switch on its own (not fail mode secure: nothing programs it).
    pub async fn connect(
        ovs_db_remote: &str,
        bridge: &str,
    ) -> Result<NestedVlanBinding, BindingError> {
        let ovs = OvsBinding::connect(ovs_db_remote, bridge).await?;
        if ovs.bridge_fail_mode().as_deref() == Some("secure") {
            return Err(BindingError::Config(format!(
                "bridge {bridge} is in fail mode secure: nothing programs it in a VM, so it would drop every frame; `kuryr host init --underlay --bridge {bridge}` sets it up"
            )));
        }
        Ok(NestedVlanBinding { ovs })
    }

    /// The OVS binding underneath (host name and control-plane marks, encapsulation).
    pub fn ovs(&self) -> &OvsBinding {
        &self.ovs
    }

    /// The VM's NIC on the underlay bridge (the one system interface of the bridge that is
    /// neither the bridge's own port nor a container's) and its MAC, from Open vSwitch.
    pub fn uplink(&self) -> Result<(String, Option<String>), BindingError> {
        let bridge = self.ovs.bridge();
        let rep = self.ovs.ovs_client().replica();
        let br = rep.table("Bridge").one_by_name(bridge).ok_or_else(|| {
            BindingError::Config(format!(
                "bridge {bridge} is gone from the Open_vSwitch database"
            ))
        })?;
        let mut found = Vec::new();
        for port in br.uuids("ports") {
            let Some(port) = rep.table("Port").get(&port) else {
                continue;
            };
            if port.str("name") == Some(bridge) || port.external_id("owner") == Some("kuryr") {
                continue;
            }
            for iface in port.uuids("interfaces") {
                let Some(i) = rep.table("Interface").get(&iface) else {
                    continue;
                };
                if i.str("type").is_none_or(str::is_empty) {
                    let mac = i.strings("mac_in_use").into_iter().next();
                    found.push((i.str("name").unwrap_or_default().to_string(), mac));
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(BindingError::Config(format!(
                "bridge {bridge} holds no NIC: run `kuryr host nics-to-bridge eth0` (or set [binding] link_iface)"
            ))),
            _ => Err(BindingError::Config(format!(
                "bridge {bridge} holds several NICs ({}): name the VM's NIC with [binding] link_iface",
                found.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The MAC of interface `name` of the bridge (its `mac_in_use`).
    pub fn mac_of(&self, name: &str) -> Option<String> {
        let rep = self.ovs.ovs_client().replica();
        rep.table("Interface")
            .one_by_name(name)
            .and_then(|i| i.strings("mac_in_use").into_iter().next())
    }
}

/// The `Open_vSwitch` row's external_ids of the database at `remote`: what `kuryr host init`
/// recorded (`kuryr-mode`, `kuryr-bridge`, `kuryr-parent-port`, ...).
pub async fn host_settings(
    remote: &str,
) -> Result<std::collections::BTreeMap<String, String>, BindingError> {
    let connect_err = |source| BindingError::Connect {
        remote: remote.to_string(),
        source: Box::new(source),
    };
    let mut config = kuryr_ovsdb::Config::new(
        kuryr_ovsdb::parse_remotes(remote).map_err(connect_err)?,
        "Open_vSwitch",
        &["Open_vSwitch"],
    );
    config.connect_timeout = Duration::from_secs(3);
    let client = kuryr_ovsdb::Client::connect(config)
        .await
        .map_err(connect_err)?;
    let settings = client
        .replica()
        .table("Open_vSwitch")
        .rows()
        .next()
        .map(|r| r.string_map("external_ids"))
        .unwrap_or_default();
    Ok(settings)
}

impl Binding for NestedVlanBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        match req.vlan {
            Some(tag) if VLAN_RANGE.contains(&tag) => self.ovs.plug(req).await,
            Some(tag) => Err(BindingError::Config(format!(
                "endpoint {}: VLAN {tag} is outside 1-4094",
                req.endpoint_id
            ))),
            None => Err(BindingError::Config(format!(
                "endpoint {}: its logical port has no VLAN tag; a container inside a VM needs one (is the VM's parent port set?)",
                req.endpoint_id
            ))),
        }
    }

    /// No ovn-controller runs in a VM: the hypervisor's has the container's flows as soon as
    /// the VM's own port is bound there, which the control plane reports (the driver waits
    /// for that next).
    async fn wait_ready(&self, _endpoint_id: &str, _timeout: Duration) -> Result<(), BindingError> {
        Ok(())
    }

    async fn unplug(&self, endpoint_id: &str) -> Result<(), BindingError> {
        self.ovs.unplug(endpoint_id).await
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        self.ovs.list().await
    }

    async fn sweep_unplugged(&self) -> Result<Vec<String>, BindingError> {
        self.ovs.sweep_unplugged().await
    }

    async fn interrupted_plug(&self, endpoint_id: &str) -> Result<bool, BindingError> {
        self.ovs.interrupted_plug(endpoint_id).await
    }
}
