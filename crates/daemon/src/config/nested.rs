//! `[binding]` keys for containers inside VMs: which binding plugs them (`default_driver`, and
//! kuryr-libnetwork's `[DEFAULT] default_port_driver` spelling), the VM's NIC (`link_iface`),
//! the VM's own port (`parent_port`) and how many containers one VM may hold.
use super::{ConfigError, Reader};

/// How this host plugs containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingDriver {
    /// A veth pair on the integration bridge of a hypervisor or bare host.
    Veth,
    /// Inside a VM: a veth on the VM's underlay bridge, an access port tagged with the VLAN of
    /// the container's logical port (a child of the VM's port).
    Vlan,
    /// Inside a VM: a macvlan device on the VM's NIC; the VM's own port carries the
    /// container's MAC and address (kuryr-libnetwork's `nested` driver).
    Macvlan,
}

/// The nested (VM) settings of `[binding]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedSettings {
    /// `None`: as `kuryr host init` set the host up (`--underlay` means [`BindingDriver::Vlan`]).
    pub driver: Option<BindingDriver>,
    /// The VM's NIC (kuryr-libnetwork's `link_iface`): the VM's port is the one with its MAC.
    pub link_iface: Option<String>,
    /// The VM's own port, when not the one `kuryr host init --parent-port` recorded or the one
    /// found by `link_iface`'s MAC.
    pub parent_port: Option<String>,
    /// At most this many containers in this VM (1-4094, the VLAN tags of one VM).
    pub port_limit: u16,
}

impl Default for NestedSettings {
    fn default() -> NestedSettings {
        NestedSettings {
            driver: None,
            link_iface: None,
            parent_port: None,
            port_limit: 4094,
        }
    }
}

/// The driver a value names, in kuryr's spelling or kuryr-libnetwork's and kuryr-lib's.
fn driver_of(value: &str) -> Result<BindingDriver, String> {
    let last = value.rsplit('.').next().unwrap_or(value);
    match last {
        "veth" => Ok(BindingDriver::Veth),
        "vlan" => Ok(BindingDriver::Vlan),
        "nested" | "macvlan" => Ok(BindingDriver::Macvlan),
        "ipvlan" => Err("the ipvlan driver has no equivalent (kuryr-libnetwork refuses it with its nested driver too): use macvlan or vlan".into()),
        "sriov" => Err("the SR-IOV driver has no equivalent in this version: keep kuryr-libnetwork on this host".into()),
        _ => Err("expected veth, vlan or macvlan (or kuryr-libnetwork's kuryr_libnetwork.port_driver.drivers.veth|vlan|nested)".into()),
    }
}

pub(super) fn read(r: &Reader<'_>) -> Result<NestedSettings, ConfigError> {
    let mut n = NestedSettings::default();
    let mut chosen: Option<(&str, &str, BindingDriver)> = None;
    // kuryr-libnetwork sets both: `[binding] default_driver` (kuryr-lib's binding) and
    // `[DEFAULT] default_port_driver` (or the older `port_driver`).
    for (section, key) in [
        ("binding", "default_driver"),
        ("DEFAULT", "default_port_driver"),
        ("DEFAULT", "port_driver"),
    ] {
        let Some(v) = r.raw(section, key).filter(|v| !v.is_empty()) else {
            continue;
        };
        let d = driver_of(v).map_err(|p| r.err(section, key, v, p))?;
        if let Some((s0, k0, d0)) = chosen {
            if d0 != d {
                return Err(r.err(
                    section,
                    key,
                    v,
                    format!("it names another driver than [{s0}] {k0}: make them agree"),
                ));
            }
        }
        chosen = Some((section, key, d));
    }
    n.driver = chosen.map(|(_, _, d)| d);
    for (key, target) in [
        ("link_iface", &mut n.link_iface),
        ("parent_port", &mut n.parent_port),
    ] {
        if let Some(v) = r.raw("binding", key).filter(|v| !v.is_empty()) {
            if v.len() > 255 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(r.err("binding", key, v, "expected a name without spaces"));
            }
            *target = Some(v.to_string());
        }
    }
    r.parse(
        "binding",
        "nested_port_limit",
        "a number from 1 to 4094",
        &mut n.port_limit,
    )?;
    if !(1..=4094).contains(&n.port_limit) {
        return Err(r.err(
            "binding",
            "nested_port_limit",
            &n.port_limit.to_string(),
            "expected 1 to 4094 (the VLAN tags of one VM)",
        ));
    }
    Ok(n)
}
