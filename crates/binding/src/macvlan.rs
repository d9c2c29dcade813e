//! Inside a VM without VLANs: each container gets a macvlan device (bridge mode) on the VM's
//! NIC with the MAC of its port, which Docker moves into the container. The container's frames
//! leave through the VM's own port, so the control plane must let that port carry the
//! container's MAC and address (Neutron's allowed address pairs, or the addresses of the VM's
//! logical port in the OVN mode). The device's alias records the endpoint
//! (`kuryr:<endpoint id>`), so that reconciliation finds the devices of this binding after a
//! restart: a device still in the VM's namespace at a start is a plug Docker never got the
//! answer of (Docker moves it into the container at Join), and is undone. A macvlan device
//! cannot reach its lower device's own addresses: containers do not reach the VM they run in.
use crate::names::{container_ifname, parse_mac, validate_endpoint_id, CONTAINER_PREFIX};
use crate::netlink::Netlink;
use crate::{Binding, BindingError, PlugRequest, Plugged, PluggedBy, PluggedPort};
use std::time::Duration;

const EEXIST: i32 = 17;
const EOPNOTSUPP: i32 = 95;
const ALIAS_PREFIX: &str = "kuryr:";

pub struct MacvlanBinding {
    netlink: Netlink,
    /// The VM's NIC.
    link: String,
    mac: Option<String>,
}

impl MacvlanBinding {
    /// On the VM's NIC `link`, which must exist.
    pub async fn connect(link: &str) -> Result<MacvlanBinding, BindingError> {
        let netlink = Netlink::open().map_err(BindingError::NetlinkSocket)?;
        let facts = netlink
            .link(link)
            .await
            .map_err(BindingError::NetlinkList)?
            .ok_or_else(|| {
                BindingError::Config(format!(
                    "the VM's NIC {link} ([binding] link_iface) does not exist here"
                ))
            })?;
        Ok(MacvlanBinding {
            netlink,
            link: link.to_string(),
            mac: facts.mac,
        })
    }

    /// The VM's NIC and its MAC.
    pub fn link(&self) -> (&str, Option<&str>) {
        (&self.link, self.mac.as_deref())
    }

    fn err(&self, action: String, endpoint: &str, source: std::io::Error) -> BindingError {
        BindingError::Netlink {
            action,
            endpoint: endpoint.to_string(),
            source,
        }
    }
}

impl Binding for MacvlanBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        validate_endpoint_id(&req.endpoint_id)?;
        let eid = &req.endpoint_id;
        let name = container_ifname(eid)?;
        let mac = parse_mac(eid, &req.mac)?;
        let alias = format!("{ALIAS_PREFIX}{eid}");
        let plugged = Plugged {
            host_ifname: name.clone(),
            container_ifname: name.clone(),
        };
        // The NIC's index now: it may have been re-created since the start.
        let lower = self
            .netlink
            .link(&self.link)
            .await
            .map_err(|e| self.err(format!("look up the VM's NIC {}", self.link), eid, e))?
            .ok_or_else(|| {
                BindingError::Config(format!(
                    "the VM's NIC {} ([binding] link_iface) is gone",
                    self.link
                ))
            })?;
        let action = || format!("create macvlan {name} on {} (MTU {})", self.link, req.mtu);
        match self
            .netlink
            .create_macvlan(&name, lower.index, mac, req.mtu, &alias)
            .await
        {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(EEXIST) => {
                let there = self
                    .netlink
                    .link(&name)
                    .await
                    .map_err(|e| self.err(action(), eid, e))?;
                if there.as_ref().and_then(|l| l.alias.as_deref()) == Some(alias.as_str()) {
                    // A retried plug of this endpoint.
                    return Ok(plugged);
                }
                return Err(BindingError::Conflict {
                    endpoint: eid.clone(),
                    detail: format!("an interface named {name} exists and is not this endpoint's"),
                });
            }
            Err(e) => {
                let _ = self.netlink.delete(&name).await;
                return Err(self.err(action(), eid, e));
            }
        }
        // Partial checksums would arrive broken behind a userspace datapath (see offload.rs).
        // A macvlan device takes its lower device's offloads, and some kernels refuse to change
        // them on the macvlan itself (EOPNOTSUPP): then the NIC's setting applies.
        match crate::offload::disable_tx_checksum(&name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(EOPNOTSUPP) => {
                tracing::debug!(ifname = %name, nic = %self.link, "tx checksum offload follows the NIC's");
            }
            Err(e) => {
                let _ = self.netlink.delete(&name).await;
                return Err(self.err(format!("turn off tx checksum offload on {name}"), eid, e));
            }
        }
        Ok(plugged)
    }

    async fn wait_ready(&self, _endpoint_id: &str, _timeout: Duration) -> Result<(), BindingError> {
        // Nothing on this side installs anything: the device carries traffic at once.
        Ok(())
    }

    async fn unplug(&self, endpoint_id: &str) -> Result<(), BindingError> {
        let name = container_ifname(endpoint_id)?;
        // Gone already when its container's namespace went away.
        self.netlink
            .delete(&name)
            .await
            .map(|_| ())
            .map_err(|e| self.err(format!("delete macvlan {name}"), endpoint_id, e))
    }

    fn sees_running_endpoints(&self) -> bool {
        false
    }

    /// A device still here, not in a container: a plug whose answer Docker never got (at a
    /// start, nothing of this process has plugged anything yet).
    async fn interrupted_plug(&self, endpoint_id: &str) -> Result<bool, BindingError> {
        let name = container_ifname(endpoint_id)?;
        let alias = format!("{ALIAS_PREFIX}{endpoint_id}");
        let there = self
            .netlink
            .link(&name)
            .await
            .map_err(|e| self.err(format!("look up macvlan {name}"), endpoint_id, e))?;
        // Without an alias: killed between making the device and naming its endpoint.
        Ok(there
            .filter(|l| l.kind == "macvlan")
            .is_some_and(|l| l.alias.is_none() || l.alias.as_deref() == Some(alias.as_str())))
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        let links = self
            .netlink
            .links()
            .await
            .map_err(BindingError::NetlinkList)?;
        Ok(links
            .into_iter()
            .filter(|l| l.kind == "macvlan")
            .filter_map(|l| {
                let eid = match l.alias.as_deref() {
                    Some(a) => a.strip_prefix(ALIAS_PREFIX)?.to_string(),
                    // Made by a plug killed before it could set the alias: the name holds
                    // the start of the endpoint id, which is all unplug needs.
                    None => l.name.strip_prefix(CONTAINER_PREFIX)?.to_string(),
                };
                Some(PluggedPort {
                    endpoint_id: eid,
                    iface_id: String::new(),
                    mac: l.mac.unwrap_or_default(),
                    host_ifname: l.name,
                    bridge: None,
                    // Seen here, so in no container (Docker moves it in at Join): not the
                    // host side of a running container.
                    veth_exists: false,
                    ovn_installed: false,
                    plugged_by: PluggedBy::Kuryr,
                })
            })
            .collect())
    }
}
