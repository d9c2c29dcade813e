//! The host binding chosen in config (`[binding] host_binding`, `default_driver`) or by how
//! `kuryr host init` set the host up, as one type the driver holds.
use crate::config::{BindingDriver, Config, HostBindingKind};
use kuryr_binding::{
    Binding, BindingError, MacvlanBinding, NestedVlanBinding, NullBinding, OvsBinding, PlugRequest,
    Plugged, PluggedPort,
};
use std::time::Duration;

pub enum HostBinding {
    Ovs(OvsBinding),
    /// Inside a VM: VLAN access ports on the VM's underlay bridge.
    Nested(NestedVlanBinding),
    /// Inside a VM: macvlan devices on the VM's NIC.
    Macvlan(MacvlanBinding),
    None(NullBinding),
}

/// What the daemon learns from the host binding at start.
pub struct HostFacts {
    pub binding: HostBinding,
    /// This host's name in the control plane (inside a VM: known once the VM's port is).
    pub host: String,
    /// The containers' MTU.
    pub mtu: u32,
    /// Inside a VM: how to find the VM's own port.
    pub vm: Option<VmFacts>,
}

/// Inside a VM: the VM's port as configured or recorded, else the MAC to find it by.
pub struct VmFacts {
    pub parent_port: Option<String>,
    /// The VM's NIC and its MAC, to find the VM's port by when it is not given.
    pub link_iface: String,
    pub link_mac: Option<String>,
}

/// The MTU of containers inside a VM: their frames cross the hypervisor's overlay (Geneve by
/// default), which the VM cannot see.
const NESTED_DEFAULT_MTU: u32 = 1442;

impl HostBinding {
    /// Connects the configured binding; the host name and MTU come from config, else from OVS.
    pub async fn connect(config: &Config) -> Result<HostFacts, crate::DaemonError> {
        match config.host_binding {
            HostBindingKind::None => {
                let host = config.host.clone().ok_or_else(|| {
                    crate::DaemonError::Other(
                        "[binding] host_binding = none needs [DEFAULT] host (or --host)".into(),
                    )
                })?;
                let mtu = if config.network_mtu != 0 {
                    config.network_mtu
                } else {
                    1442
                };
                Ok(HostFacts {
                    binding: HostBinding::None(NullBinding),
                    host,
                    mtu,
                    vm: None,
                })
            }
            HostBindingKind::Ovs if config.nested.driver == Some(BindingDriver::Macvlan) => {
                // No Open vSwitch needed in the VM.
                Self::connect_macvlan(config).await
            }
            HostBindingKind::Ovs => {
                let settings = kuryr_binding::host_settings(&config.ovs.ovsdb_connection).await?;
                if Self::driver(config, &settings) == BindingDriver::Vlan {
                    return Self::connect_nested(config, &settings).await;
                }
                let binding = OvsBinding::connect(
                    &config.ovs.ovsdb_connection,
                    &config.ovs.integration_bridge,
                )
                .await?;
                let host = match &config.host {
                    Some(h) => h.clone(),
                    None => binding.chassis_name()?,
                };
                // Reconciliation then only ever touches ports this host's kuryr plugged, for
                // this mode's control plane.
                binding.set_host(&host);
                binding.set_backend(config.backend_name());
                let mtu = if config.network_mtu != 0 {
                    config.network_mtu
                } else {
                    kuryr_binding::default_mtu(&binding.encaps()?, 1500).unwrap_or(1442)
                };
                Ok(HostFacts {
                    binding: HostBinding::Ovs(binding),
                    host,
                    mtu,
                    vm: None,
                })
            }
        }
    }

    /// How this host plugs containers: `[binding] default_driver`, else as `kuryr host init`
    /// recorded in the local Open vSwitch (`settings`): `--underlay` means inside a VM.
    pub fn driver(
        config: &Config,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> BindingDriver {
        let underlay =
            settings.get(kuryr_binding::MODE_KEY).map(String::as_str) == Some("underlay");
        config.nested.driver.unwrap_or(if underlay {
            BindingDriver::Vlan
        } else {
            BindingDriver::Veth
        })
    }

    /// Inside a VM with the macvlan driver: the VM's NIC (`[binding] link_iface`) and its MAC.
    pub async fn connect_macvlan(config: &Config) -> Result<HostFacts, crate::DaemonError> {
        let link = config.nested.link_iface.clone().ok_or_else(|| {
            crate::DaemonError::Other(
                "the macvlan driver needs the VM's NIC: set [binding] link_iface (e.g. eth0)"
                    .into(),
            )
        })?;
        let binding = MacvlanBinding::connect(&link).await?;
        let link_mac = binding.link().1.map(str::to_string);
        let mtu = if config.network_mtu != 0 {
            config.network_mtu
        } else {
            NESTED_DEFAULT_MTU
        };
        tracing::info!(nic = %link, mac = ?link_mac, parent = ?config.nested.parent_port, "inside a VM: containers on macvlan devices of the VM's NIC");
        Ok(HostFacts {
            binding: HostBinding::Macvlan(binding),
            host: String::new(),
            mtu,
            vm: Some(VmFacts {
                parent_port: config.nested.parent_port.clone(),
                link_iface: link,
                link_mac,
            }),
        })
    }

    /// Inside a VM: the underlay bridge `kuryr host init --underlay` recorded (else
    /// `breth0`), the VM's NIC on it, and the VM's port if it is known without asking the
    /// control plane.
    pub async fn connect_nested(
        config: &Config,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<HostFacts, crate::DaemonError> {
        let bridge = settings
            .get(kuryr_binding::UNDERLAY_BRIDGE_KEY)
            .cloned()
            .unwrap_or_else(|| "breth0".to_string());
        let binding = NestedVlanBinding::connect(&config.ovs.ovsdb_connection, &bridge).await?;
        let (link_iface, link_mac) = match &config.nested.link_iface {
            Some(name) => (name.clone(), binding.mac_of(name)),
            None => binding.uplink()?,
        };
        let parent_port = config
            .nested
            .parent_port
            .clone()
            .or_else(|| settings.get(kuryr_binding::PARENT_PORT_KEY).cloned());
        binding.ovs().set_backend(config.backend_name());
        let mtu = if config.network_mtu != 0 {
            config.network_mtu
        } else {
            NESTED_DEFAULT_MTU
        };
        tracing::info!(bridge = %bridge, nic = %link_iface, parent = ?parent_port, "inside a VM: containers on VLAN access ports of the underlay bridge");
        Ok(HostFacts {
            binding: HostBinding::Nested(binding),
            host: String::new(),
            mtu,
            vm: Some(VmFacts {
                parent_port,
                link_iface,
                link_mac,
            }),
        })
    }
}

impl HostBinding {
    /// For the daemon: unplugs leave the kernel's slow veth deletion to a background worker
    /// (see `OvsBinding::delete_veths_in_background`).
    pub fn delete_veths_in_background(&self) -> Result<(), BindingError> {
        match self {
            HostBinding::Ovs(b) => b.delete_veths_in_background(),
            HostBinding::Nested(b) => b.ovs().delete_veths_in_background(),
            HostBinding::Macvlan(_) | HostBinding::None(_) => Ok(()),
        }
    }
}

impl Binding for HostBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        match self {
            HostBinding::Ovs(b) => b.plug(req).await,
            HostBinding::Nested(b) => b.plug(req).await,
            HostBinding::Macvlan(b) => b.plug(req).await,
            HostBinding::None(b) => b.plug(req).await,
        }
    }

    async fn wait_ready(&self, endpoint_id: &str, timeout: Duration) -> Result<(), BindingError> {
        match self {
            HostBinding::Ovs(b) => b.wait_ready(endpoint_id, timeout).await,
            HostBinding::Nested(b) => b.wait_ready(endpoint_id, timeout).await,
            HostBinding::Macvlan(b) => b.wait_ready(endpoint_id, timeout).await,
            HostBinding::None(b) => b.wait_ready(endpoint_id, timeout).await,
        }
    }

    async fn unplug(&self, endpoint_id: &str) -> Result<(), BindingError> {
        match self {
            HostBinding::Ovs(b) => b.unplug(endpoint_id).await,
            HostBinding::Nested(b) => b.unplug(endpoint_id).await,
            HostBinding::Macvlan(b) => b.unplug(endpoint_id).await,
            HostBinding::None(b) => b.unplug(endpoint_id).await,
        }
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        match self {
            HostBinding::Ovs(b) => b.list().await,
            HostBinding::Nested(b) => b.list().await,
            HostBinding::Macvlan(b) => b.list().await,
            HostBinding::None(b) => b.list().await,
        }
    }

    fn sees_running_endpoints(&self) -> bool {
        match self {
            HostBinding::Ovs(b) => b.sees_running_endpoints(),
            HostBinding::Nested(b) => b.sees_running_endpoints(),
            HostBinding::Macvlan(b) => b.sees_running_endpoints(),
            HostBinding::None(b) => b.sees_running_endpoints(),
        }
    }

    async fn sweep_unplugged(&self) -> Result<Vec<String>, BindingError> {
        match self {
            HostBinding::Ovs(b) => b.sweep_unplugged().await,
            HostBinding::Nested(b) => b.sweep_unplugged().await,
            HostBinding::Macvlan(b) => b.sweep_unplugged().await,
            HostBinding::None(b) => b.sweep_unplugged().await,
        }
    }

    async fn interrupted_plug(&self, endpoint_id: &str) -> Result<bool, BindingError> {
        match self {
            HostBinding::Ovs(b) => b.interrupted_plug(endpoint_id).await,
            HostBinding::Nested(b) => b.interrupted_plug(endpoint_id).await,
            HostBinding::Macvlan(b) => b.interrupted_plug(endpoint_id).await,
            HostBinding::None(b) => b.interrupted_plug(endpoint_id).await,
        }
    }
}
