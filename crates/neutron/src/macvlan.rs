//! Inside a VM: finding the VM's own port, and the macvlan driver (kuryr-libnetwork's
//! `nested`). With macvlan a container's frames leave through the VM's port with the
//! container's MAC and address, so the VM's port must allow them: each container adds its
//! `{ip_address, mac_address}` pairs to the port's `allowed_address_pairs`, and takes exactly
//! those away again. Both are read-modify-writes under `If-Match`, so containers started in
//! parallel never write over each other's pairs (a 412 re-reads the port and applies the
//! change again). Containers join the VM's own network; Neutron allows 10 pairs per port by
//! default (`max_allowed_address_pair`). ML2/OVN in Neutron 29 refuses any MAC other than a
//! VRRP one (00:00:5e:00:01:XX) in a bound port's pairs (measured), so there the driver gets
//! Neutron's 400 at the first container, passed on with what to use instead.
use crate::backend::{fail, NeutronBackend};
use crate::client::NeutronClient;
use crate::error::NeutronError;
use crate::types::{AddressPair, Port};
use kuryr_core::BackendError;
use serde_json::{json, Value};

/// The VM's own port: `parent` (an id or a unique name), else the one port of the
/// credentials' project with the VM NIC's MAC. The error says what to do.
pub async fn vm_port(
    client: &NeutronClient,
    parent: Option<&str>,
    nic: &str,
    mac: Option<&str>,
) -> Result<Port, NeutronError> {
    Ok(match (parent, mac) {
        (Some(p), _) if looks_like_uuid(p) => match client.port(p).await {
            Err(e) if e.is_not_found() => {
                return Err(NeutronError::Config(format!(
                    "the VM's port {p} ([binding] parent_port, or kuryr host init --parent-port) is not in Neutron, or not in the project of [neutron]'s credentials"
                )))
            }
            r => r?,
        },
        (Some(p), _) => one(client.ports(&[("name", p)]).await?, &format!("named {p}"))?,
        (None, Some(m)) => one(
            client.ports(&[("mac_address", m)]).await?,
            &format!("with the MAC {m} of the VM's NIC {nic}"),
        )?,
        (None, None) => {
            return Err(NeutronError::Config(format!(
                "the VM's NIC {nic} has no MAC to find the VM's port by: give the port with [binding] parent_port"
            )))
        }
    })
}

/// The VM's port whose allowed address pairs carry the containers (macvlan driver).
#[derive(Debug, Clone)]
pub struct VmPort {
    pub id: String,
    pub network_id: String,
}

impl VmPort {
    pub async fn find(
        client: &NeutronClient,
        parent: Option<&str>,
        nic: &str,
        mac: Option<&str>,
    ) -> Result<VmPort, NeutronError> {
        if !client.has_extension("allowed-address-pairs").await? {
            return Err(NeutronError::Config(
                "Neutron has no allowed-address-pairs extension, which the macvlan driver needs"
                    .into(),
            ));
        }
        let p = vm_port(client, parent, nic, mac).await?;
        Ok(VmPort {
            id: p.id,
            network_id: p.network_id,
        })
    }
}

/// The pairs a container's port needs on the VM's port: each of its addresses with its MAC.
fn pairs_of(port: &Port) -> Vec<(String, String)> {
    port.fixed_ips
        .iter()
        .map(|f| (f.ip_address.clone(), port.mac_address.to_ascii_lowercase()))
        .collect()
}

fn same(p: &AddressPair, (ip, mac): &(String, String)) -> bool {
    p.ip_address == *ip
        && p.mac_address
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
}

fn body(pairs: &[AddressPair], extra: &[(String, String)]) -> Value {
    let mut all: Vec<Value> = pairs
        .iter()
        .map(|p| match &p.mac_address {
            Some(m) => json!({"ip_address": p.ip_address, "mac_address": m}),
            None => json!({"ip_address": p.ip_address}),
        })
        .collect();
    all.extend(
        extra
            .iter()
            .map(|(ip, mac)| json!({"ip_address": ip, "mac_address": mac})),
    );
    json!({ "allowed_address_pairs": all })
}

impl NeutronBackend {
    /// Lets the VM's port carry `port`'s addresses and MAC (present already: nothing to do).
    pub(crate) async fn add_pairs(&self, vm: &VmPort, port: &Port) -> Result<(), BackendError> {
        let want = pairs_of(port);
        let what = format!(
            "add container port {}'s addresses to the allowed address pairs of the VM's port {}",
            port.id, vm.id
        );
        let current = self
            .client()
            .port(&vm.id)
            .await
            .map_err(|e| fail(what.clone(), e))?;
        if want
            .iter()
            .all(|w| current.allowed_address_pairs.iter().any(|p| same(p, w)))
        {
            return Ok(());
        }
        self.update_port(&current, &what, |p| {
            let missing: Vec<(String, String)> = want
                .iter()
                .filter(|w| !p.allowed_address_pairs.iter().any(|x| same(x, w)))
                .cloned()
                .collect();
            body(&p.allowed_address_pairs, &missing)
        })
        .await
        .map_err(|e| match e {
            BackendError::Invalid(m) if m.contains("VRRP") => BackendError::Invalid(format!(
                "{m} (ML2/OVN in Neutron 29 and later accepts no other MAC than a VRRP one in a bound port's allowed address pairs, so the macvlan driver cannot work with this Neutron: use the vlan driver, whose containers are trunk subports)"
            )),
            BackendError::Invalid(m) => BackendError::Invalid(format!(
                "{m} (Neutron allows [DEFAULT] max_allowed_address_pair pairs per port, 10 by default: a VM holds that many single-stack containers with the macvlan driver; raise it, or use the vlan driver)"
            )),
            e => e,
        })
        .map(|_| ())
    }

    /// Takes exactly `port`'s pairs (address and MAC) off the VM's port.
    pub(crate) async fn remove_pairs(&self, vm: &VmPort, port: &Port) -> Result<(), BackendError> {
        let gone = pairs_of(port);
        let what = format!(
            "remove container port {}'s addresses from the allowed address pairs of the VM's port {}",
            port.id, vm.id
        );
        let current = match self.client().port(&vm.id).await {
            Err(e) if e.is_not_found() => return Ok(()),
            r => r.map_err(|e| fail(what.clone(), e))?,
        };
        if !current
            .allowed_address_pairs
            .iter()
            .any(|p| gone.iter().any(|g| same(p, g)))
        {
            return Ok(());
        }
        self.update_port(&current, &what, |p| {
            let keep: Vec<AddressPair> = p
                .allowed_address_pairs
                .iter()
                .filter(|x| !gone.iter().any(|g| same(x, g)))
                .cloned()
                .collect();
            body(&keep, &[])
        })
        .await
        .map(|_| ())
    }

    /// The container ports whose pairs the VM's port carries.
    pub(crate) async fn paired_ports(&self, vm: &VmPort) -> Result<Vec<Port>, BackendError> {
        let current = self
            .client()
            .port(&vm.id)
            .await
            .map_err(|e| fail(format!("read the VM's port {}", vm.id), e))?;
        let macs: Vec<String> = current
            .allowed_address_pairs
            .iter()
            .filter_map(|p| p.mac_address.as_deref().map(str::to_ascii_lowercase))
            .collect();
        let mut out = self
            .client()
            .ports(&[("network_id", &vm.network_id)])
            .await
            .map_err(|e| {
                fail(
                    format!("list the ports of the VM's network {}", vm.network_id),
                    e,
                )
            })?;
        out.retain(|p| p.id != vm.id && macs.contains(&p.mac_address.to_ascii_lowercase()));
        Ok(out)
    }
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn one(mut ports: Vec<Port>, what: &str) -> Result<Port, NeutronError> {
    match ports.len() {
        1 => Ok(ports.remove(0)),
        0 => Err(NeutronError::Config(format!(
            "no Neutron port {what} (in the project of [neutron]'s credentials): give the VM's port with [binding] parent_port"
        ))),
        _ => Err(NeutronError::Config(format!(
            "{} Neutron ports {what} ({}): give the VM's port with [binding] parent_port",
            ports.len(),
            ports
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(mac: &str, ips: &[&str]) -> Port {
        serde_json::from_value(json!({
            "id": "p", "network_id": "n", "mac_address": mac,
            "fixed_ips": ips.iter().map(|ip| json!({"subnet_id": "s", "ip_address": ip})).collect::<Vec<_>>(),
        }))
        .expect("port")
    }

    #[test]
    fn a_pair_matches_on_address_and_mac_both() {
        let p = port("FA:16:3E:00:00:01", &["10.0.0.5", "fd00::5"]);
        let want = pairs_of(&p);
        assert_eq!(want.len(), 2);
        let pair = |ip: &str, mac: Option<&str>| AddressPair {
            ip_address: ip.into(),
            mac_address: mac.map(str::to_string),
        };
        assert!(same(&pair("10.0.0.5", Some("fa:16:3e:00:00:01")), &want[0]));
        // Another container's MAC on a reused address, or a pair without a MAC, is not ours.
        assert!(!same(
            &pair("10.0.0.5", Some("fa:16:3e:00:00:02")),
            &want[0]
        ));
        assert!(!same(&pair("10.0.0.5", None), &want[0]));
    }

    #[test]
    fn the_body_keeps_the_pairs_there_and_adds_the_new_ones() {
        let there = vec![AddressPair {
            ip_address: "10.0.0.9".into(),
            mac_address: None,
        }];
        let b = body(&there, &[("10.0.0.5".into(), "fa:16:3e:00:00:01".into())]);
        assert_eq!(
            b,
            json!({"allowed_address_pairs": [
                {"ip_address": "10.0.0.9"},
                {"ip_address": "10.0.0.5", "mac_address": "fa:16:3e:00:00:01"}]})
        );
    }

    #[test]
    fn a_vm_port_is_found_by_exactly_one_match() {
        assert!(one(Vec::new(), "with the MAC x")
            .unwrap_err()
            .to_string()
            .contains("parent_port"));
    }
}
