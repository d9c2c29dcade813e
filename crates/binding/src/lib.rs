//! Host binding: plumbing a container endpoint into this host. The [`Binding`] trait is what
//! the daemon calls; [`OvsBinding`] implements it with a veth pair whose host end is a port of
//! the Open vSwitch integration bridge, bound to its OVN logical port by `iface-id`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kuryr_binding::BindingError> {
//! use kuryr_binding::{Binding, OvsBinding, PlugRequest};
//! use std::time::Duration;
//! let binding = OvsBinding::connect("unix:/var/run/openvswitch/db.sock", "br-int").await?;
//! let req = PlugRequest {
//!     endpoint_id: "3f2a9c0d1e4b".into(),
//!     iface_id: "lsp-3f2a9c0d1e4b".into(),
//!     mac: "0a:58:0a:00:00:05".into(),
//!     mtu: 1442,
//!     vlan: None,
//! };
//! let plugged = binding.plug(&req).await?; // tap3f2a9c0d1e4 in br-int, t_c3f2a9c0d1e4 for Docker
//! binding.wait_ready(&req.endpoint_id, Duration::from_secs(10)).await?;
//! binding.unplug(&req.endpoint_id).await?;
//! # let _ = plugged; Ok(()) }
//! ```
mod error;
mod macvlan;
mod mgmt;
mod mtu;
mod names;
mod nested;
mod netlink;
mod null;
mod offload;
mod ovs;
mod reaper;
pub mod sysctl;

use std::future::Future;
use std::time::Duration;

pub use error::BindingError;
pub use macvlan::MacvlanBinding;
pub use mgmt::{MgmtPort, MGMT_IFNAME, MGMT_KEY};
pub use mtu::{default_mtu, parse_encaps, Encap};
pub use names::{container_ifname, host_ifname, kuryr_libnetwork_host_ifname, MTU_RANGE};
pub use nested::{
    host_settings, NestedVlanBinding, MODE_KEY, PARENT_PORT_KEY, UNDERLAY_BRIDGE_KEY, VLAN_RANGE,
};
pub use null::NullBinding;
pub use ovs::OvsBinding;

/// What plugging an endpoint needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlugRequest {
    pub endpoint_id: String,
    /// The logical port this endpoint binds to (OVN `Logical_Switch_Port` name).
    pub iface_id: String,
    /// The container's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub mtu: u32,
    /// The VLAN tag of a container inside a VM (the access port's tag on the VM's underlay
    /// bridge); `None` on a hypervisor or bare host.
    pub vlan: Option<u16>,
}

/// The two ends of a plugged endpoint: the host end stays here, Docker moves the container end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugged {
    pub host_ifname: String,
    pub container_ifname: String,
}

/// A port this binding owns on this host, as found after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluggedPort {
    pub endpoint_id: String,
    pub iface_id: String,
    pub mac: String,
    pub host_ifname: String,
    /// The bridge that holds the port (`None` if it is in no bridge).
    pub bridge: Option<String>,
    /// Whether the host end of the veth exists.
    pub veth_exists: bool,
    /// Whether ovn-controller has installed the port's flows.
    pub ovn_installed: bool,
    pub plugged_by: PluggedBy,
}

/// Who plugged a port found on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluggedBy {
    /// kuryr (this binding): `tap<endpoint id>`, Port marked `owner=kuryr`.
    Kuryr,
    /// kuryr-libnetwork's veth driver, before this host moved to kuryr: `tap<Neutron port
    /// id>`, only the Interface marked `owner=kuryr`. Such a port belongs to a container that
    /// kuryr-libnetwork started; [`Binding::unplug`] removes it with its endpoint.
    KuryrLibnetwork,
}

/// Plugs container endpoints into this host's data plane.
pub trait Binding: Send + Sync + 'static {
    /// Creates the endpoint's interfaces and attaches them; plugging again the same way succeeds.
    fn plug(&self, req: &PlugRequest)
        -> impl Future<Output = Result<Plugged, BindingError>> + Send;

    /// Waits until ovn-controller has installed the port (Interface external_ids
    /// `ovn-installed=true`), at most `timeout`.
    fn wait_ready(
        &self,
        endpoint_id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), BindingError>> + Send;

    /// Idempotent: a missing veth or OVS port is success. Also removes the host end that
    /// kuryr-libnetwork plugged for this endpoint, if there is one.
    fn unplug(&self, endpoint_id: &str) -> impl Future<Output = Result<(), BindingError>> + Send;

    /// Every port this binding owns on this host (owner=kuryr), and those kuryr-libnetwork
    /// plugged, with whether its veth still exists, for reconciliation after a restart.
    fn list(&self) -> impl Future<Output = Result<Vec<PluggedPort>, BindingError>> + Send;

    /// Whether this host sees the host side of a running container's endpoint (a veth end,
    /// an OVS port). A macvlan device lives inside its container, out of sight: then an
    /// endpoint without anything on the host is no sign of trouble.
    fn sees_running_endpoints(&self) -> bool {
        true
    }

    /// Deletes what unplugs of a previous run left to be deleted later and did not get to
    /// (killed first); returns the interfaces deleted. Called once at start.
    fn sweep_unplugged(&self) -> impl Future<Output = Result<Vec<String>, BindingError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Whether a plug of this endpoint was cut short (the daemon killed half way): its veth
    /// pair is here with both ends, the container's never handed to Docker, and it is in no
    /// bridge. Docker got no answer for such an endpoint and will not use it.
    fn interrupted_plug(
        &self,
        _endpoint_id: &str,
    ) -> impl Future<Output = Result<bool, BindingError>> + Send {
        async { Ok(false) }
    }
}
