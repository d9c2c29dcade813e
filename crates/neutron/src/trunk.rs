//! Containers inside a VM in the Neutron mode: the VM's port is the parent of a Neutron trunk
//! and each container's port one of its subports, whose VLAN the VM's bridge tags the
//! container's access port with. ML2/OVN makes each subport a child of the VM's logical port
//! (`parent_name`, `tag_request`), so the hypervisor's ovn-controller runs the container's
//! tagged frames through the container's own port: its addresses, port security and security
//! groups, not the VM's.
//!
//! Neutron allocates no VLANs: kuryr picks the lowest free one among the trunk's subports as
//! Neutron has them now, and Neutron's unique (trunk, VLAN) constraint settles a race with
//! another writer (409: taken; read again, pick again). Nothing a restart needs is kept in
//! memory: the trunk is the record. Subports get no `binding:host_id` or `binding:profile`
//! (admin- and service-only; a host that ML2/OVN does not know as a chassis would leave the
//! child unclaimed): a project member's credentials are enough.
use crate::client::{encode, NeutronClient};
use crate::error::NeutronError;
use crate::types::SubPort;
use kuryr_core::BackendError;
use reqwest::Method;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Tries of an attach whose VLAN another writer took meanwhile.
const ATTEMPTS: u32 = 10;

impl NeutronClient {
    /// The subports of a trunk, as Neutron has them now.
    pub async fn trunk_subports(&self, trunk_id: &str) -> Result<Vec<SubPort>, NeutronError> {
        let what = || format!("list the subports of trunk {trunk_id}");
        let v = self
            .request(
                Method::GET,
                &format!("/trunks/{}/get_subports", encode(trunk_id)),
                None,
                None,
                &what,
            )
            .await?;
        let mut v = v.unwrap_or_default();
        serde_json::from_value(crate::client::take_key(&mut v, "sub_ports")).map_err(|e| {
            NeutronError::Decode {
                what: what(),
                message: format!("sub_ports: {e}"),
            }
        })
    }

    /// Makes `port_id` a subport of the trunk on VLAN `vlan`.
    pub async fn add_subport(
        &self,
        trunk_id: &str,
        port_id: &str,
        vlan: u16,
    ) -> Result<(), NeutronError> {
        let what = || format!("add port {port_id} to trunk {trunk_id} on VLAN {vlan}");
        let body = json!({"sub_ports": [{"port_id": port_id, "segmentation_type": "vlan", "segmentation_id": vlan}]});
        self.request(
            Method::PUT,
            &format!("/trunks/{}/add_subports", encode(trunk_id)),
            Some(&body),
            None,
            &what,
        )
        .await
        .map(|_| ())
    }

    /// Takes `port_id` off the trunk; a port that is no subport of it is success.
    pub async fn remove_subport(&self, trunk_id: &str, port_id: &str) -> Result<(), NeutronError> {
        let what = || format!("remove port {port_id} from trunk {trunk_id}");
        let body = json!({"sub_ports": [{"port_id": port_id}]});
        match self
            .request(
                Method::PUT,
                &format!("/trunks/{}/remove_subports", encode(trunk_id)),
                Some(&body),
                None,
                &what,
            )
            .await
        {
            // SubPortNotFound; a trunk that is gone holds nothing either.
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

/// The trunk of the VM this kuryr runs in.
#[derive(Debug)]
pub struct Trunk {
    pub id: String,
    /// The VM's own port, the trunk's parent.
    pub parent: String,
    /// At most this many subports (`[binding] nested_port_limit`, 1-4094).
    limit: u16,
    /// VLANs this process is attaching right now.
    reserved: Mutex<HashSet<u16>>,
    /// Port id -> VLAN of the subports this process attached or read.
    vlans: Mutex<HashMap<String, u16>>,
}

impl Trunk {
    pub fn new(id: &str, parent: &str, limit: u16) -> Trunk {
        Trunk {
            id: id.to_string(),
            parent: parent.to_string(),
            limit: limit.clamp(1, 4094),
            reserved: Mutex::default(),
            vlans: Mutex::default(),
        }
    }

    /// The trunk whose parent is the VM's port: `parent` (an id or a unique name), else the
    /// one port with the VM NIC's MAC. The error says what to do.
    pub async fn find(
        client: &NeutronClient,
        parent: Option<&str>,
        nic: &str,
        mac: Option<&str>,
        limit: u16,
    ) -> Result<Trunk, NeutronError> {
        let port = crate::macvlan::vm_port(client, parent, nic, mac).await?;
        let Some(details) = &port.trunk_details else {
            if !client.has_extension("trunk").await? {
                return Err(NeutronError::Config(
                    "Neutron has no trunk service plugin (extension `trunk`): containers inside VMs need it ([DEFAULT] service_plugins = ...,trunk in neutron.conf)".into(),
                ));
            }
            return Err(NeutronError::Config(format!(
                "the VM's port {} is no trunk's parent: create its trunk as the VM's project (openstack network trunk create --parent-port {} NAME)",
                port.id, port.id
            )));
        };
        let t = Trunk::new(&details.trunk_id, &port.id, limit);
        t.remember(&details.sub_ports);
        Ok(t)
    }

    fn remember(&self, subports: &[SubPort]) {
        let mut v = self.vlans.lock().unwrap_or_else(|e| e.into_inner());
        v.clear();
        v.extend(
            subports
                .iter()
                .map(|s| (s.port_id.clone(), s.segmentation_id)),
        );
    }

    /// The trunk's subports now (and remembered for [`Trunk::vlan_of`]).
    pub async fn subports(&self, client: &NeutronClient) -> Result<Vec<SubPort>, BackendError> {
        let subports = client
            .trunk_subports(&self.id)
            .await
            .map_err(|e| crate::backend::fail(format!("read trunk {}", self.id), e))?;
        self.remember(&subports);
        Ok(subports)
    }

    /// The VLAN of a subport, `None` when the port is none of this trunk's.
    pub async fn vlan_of(
        &self,
        client: &NeutronClient,
        port_id: &str,
    ) -> Result<Option<u16>, BackendError> {
        if let Some(v) = self.known_vlan(port_id) {
            return Ok(Some(v));
        }
        self.subports(client).await?;
        Ok(self.known_vlan(port_id))
    }

    /// Whether `port_id` is a subport of this trunk, as last read or attached here.
    pub(crate) fn holds(&self, port_id: &str) -> bool {
        self.known_vlan(port_id).is_some()
    }

    fn known_vlan(&self, port_id: &str) -> Option<u16> {
        self.vlans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(port_id)
            .copied()
    }

    /// A VLAN neither a subport nor another attach of this process holds, reserved: the
    /// lowest at the first try; after another writer took the one picked, one at random
    /// among the lowest few free, so that writers picking at once stop colliding.
    fn pick(&self, used: &HashSet<u16>, attempt: u32) -> Option<u16> {
        let mut r = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() + r.len() >= usize::from(self.limit) {
            return None;
        }
        let mut free = (1..=4094u16).filter(|v| !used.contains(v) && !r.contains(v));
        let vlan = if attempt <= 1 {
            free.next()?
        } else {
            let spread: Vec<u16> = free.take(8 * attempt as usize).collect();
            *spread.get(rand::random_range(0..spread.len().max(1)))?
        };
        r.insert(vlan);
        Some(vlan)
    }

    fn unreserve(&self, vlan: u16) {
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&vlan);
    }

    /// Makes `port_id` a subport on a free VLAN and returns the VLAN (the one it has when it
    /// is a subport already).
    pub async fn attach(&self, client: &NeutronClient, port_id: &str) -> Result<u16, BackendError> {
        let mut attempt = 1;
        loop {
            let subports = self.subports(client).await?;
            if let Some(s) = subports.iter().find(|s| s.port_id == port_id) {
                return Ok(s.segmentation_id);
            }
            let used: HashSet<u16> = subports.iter().map(|s| s.segmentation_id).collect();
            let Some(vlan) = self.pick(&used, attempt) else {
                return Err(BackendError::Exhausted(format!(
                    "the VM's trunk {} (port {}) carries {} containers, as many as [binding] nested_port_limit = {} allows: remove containers, or raise the limit (at most 4094)",
                    self.id,
                    self.parent,
                    used.len(),
                    self.limit
                )));
            };
            let r = client.add_subport(&self.id, port_id, vlan).await;
            self.unreserve(vlan);
            match r {
                Ok(()) => {
                    self.vlans
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(port_id.to_string(), vlan);
                    return Ok(vlan);
                }
                // DuplicateSubPort: another writer took the VLAN since the read.
                Err(e)
                    if e.is_conflict()
                        && e.to_string().contains("already in use on trunk")
                        && attempt < ATTEMPTS =>
                {
                    tracing::debug!(trunk = %self.id, vlan, attempt, "VLAN taken meanwhile: reading the trunk again");
                    let pause = rand::random_range(10..50u64 * u64::from(attempt));
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(crate::backend::fail(
                        format!("attach port {port_id} to the VM's trunk {}", self.id),
                        e,
                    ))
                }
            }
        }
    }

    /// Takes `port_id` off the trunk (done when it is not on it).
    pub async fn detach(&self, client: &NeutronClient, port_id: &str) -> Result<(), BackendError> {
        client
            .remove_subport(&self.id, port_id)
            .await
            .map_err(|e| {
                crate::backend::fail(
                    format!("detach port {port_id} from the VM's trunk {}", self.id),
                    e,
                )
            })?;
        self.vlans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(port_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_lowest_free_vlan_and_never_one_reserved() {
        let t = Trunk::new("t", "p", 4094);
        let used: HashSet<u16> = [1, 2, 4].into();
        assert_eq!(t.pick(&used, 1), Some(3));
        // Reserved by a concurrent attach: the next one gets another.
        assert_eq!(t.pick(&used, 1), Some(5));
        t.unreserve(3);
        assert_eq!(t.pick(&used, 1), Some(3));
        // After a conflict: one of the lowest few free, never a used or reserved one.
        for _ in 0..100 {
            let v = t.pick(&used, 2).expect("free");
            assert!(!used.contains(&v) && v != 3 && v != 5 && v <= 21, "{v}");
            t.unreserve(v);
        }
    }

    #[test]
    fn the_limit_counts_subports_and_attaches_under_way() {
        let t = Trunk::new("t", "p", 3);
        let used: HashSet<u16> = [1].into();
        assert_eq!(t.pick(&used, 1), Some(2));
        assert_eq!(t.pick(&used, 1), Some(3));
        assert_eq!(t.pick(&used, 1), None);
        let full: HashSet<u16> = (1..=4094).collect();
        assert_eq!(Trunk::new("t", "p", 4094).pick(&full, 1), None);
        assert_eq!(Trunk::new("t", "p", 4094).pick(&full, 3), None);
    }
}
