//! The host binding chosen in config (`[binding] host_binding`), as one type the driver holds.
use crate::config::{Config, HostBindingKind};
use kuryr_binding::{
    Binding, BindingError, NullBinding, OvsBinding, PlugRequest, Plugged, PluggedPort,
};
use std::time::Duration;

pub enum HostBinding {
    Ovs(OvsBinding),
    None(NullBinding),
}

/// What the daemon learns from the host binding at start.
pub struct HostFacts {
    pub binding: HostBinding,
    /// This host's name in the control plane.
    pub host: String,
    /// The containers' MTU.
    pub mtu: u32,
}

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
                })
            }
            HostBindingKind::Ovs => {
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
                })
            }
        }
    }
}

impl Binding for HostBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        match self {
            HostBinding::Ovs(b) => b.plug(req).await,
            HostBinding::None(b) => b.plug(req).await,
        }
    }

    async fn wait_ready(&self, endpoint_id: &str, timeout: Duration) -> Result<(), BindingError> {
        match self {
            HostBinding::Ovs(b) => b.wait_ready(endpoint_id, timeout).await,
            HostBinding::None(b) => b.wait_ready(endpoint_id, timeout).await,
        }
    }

    async fn unplug(&self, endpoint_id: &str) -> Result<(), BindingError> {
        match self {
            HostBinding::Ovs(b) => b.unplug(endpoint_id).await,
            HostBinding::None(b) => b.unplug(endpoint_id).await,
        }
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        match self {
            HostBinding::Ovs(b) => b.list().await,
            HostBinding::None(b) => b.list().await,
        }
    }
}
