//! `kuryr host init --underlay`: a VM whose containers join logical networks through the VM's
//! own port. The VM is no OVN chassis (no ovn-controller, no tunnel endpoint): its bridge
//! (`breth0`, made by `kuryr host nics-to-bridge eth0`) keeps switching on its own, containers
//! become VLAN access ports of it, and the VM's own stack stays on VLAN 0.
use super::{root, set_keys, DB, NB_KEY};
use anyhow::Context;
use kuryr_binding::{MODE_KEY, PARENT_PORT_KEY, UNDERLAY_BRIDGE_KEY};
use kuryr_ovsdb::txn::by_uuid;
use kuryr_ovsdb::{Client, Txn};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) async fn init(
    client: &Client,
    remote: &str,
    bridge: &str,
    parent_port: Option<String>,
    nb: Option<String>,
) -> anyhow::Result<()> {
    let mut keys = BTreeMap::new();
    keys.insert(MODE_KEY.to_string(), "underlay".to_string());
    keys.insert(UNDERLAY_BRIDGE_KEY.to_string(), bridge.to_string());
    if let Some(p) = &parent_port {
        keys.insert(PARENT_PORT_KEY.to_string(), p.clone());
    }
    if let Some(u) = &nb {
        keys.insert(NB_KEY.to_string(), u.clone());
    }
    let mut missing = false;
    let mut secure = false;
    client
        .transact_with(Duration::from_secs(10), |rep| {
            missing = false;
            secure = false;
            let Some(br) = rep.table("Bridge").one_by_name(bridge) else {
                missing = true;
                return Ok(None);
            };
            if br.strings("fail_mode").iter().any(|m| m == "secure") {
                secure = true;
                return Ok(None);
            }
            let r = root(rep);
            let mut t = Txn::new(DB);
            set_keys(&mut t, r.as_deref(), &keys);
            // The VM's own interface takes untagged frames only: the containers' VLANs never
            // reach the VM's stack.
            if let Some(local) = rep.table("Port").one_by_name(bridge) {
                t.update(
                    "Port",
                    vec![by_uuid(local.uuid)],
                    json!({"vlan_mode": "access", "tag": ["set", []]}),
                );
            }
            if parent_port.is_none() {
                // A parent recorded by an earlier init goes: it would name another VM's port.
                if let Some(r) = &r {
                    t.mutate(
                        DB,
                        vec![by_uuid(r.uuid)],
                        vec![kuryr_ovsdb::txn::mutate_delete(
                            "external_ids",
                            kuryr_ovsdb::datum::set([json!(PARENT_PORT_KEY)]),
                        )],
                    );
                }
            }
            Ok(Some(t))
        })
        .await
        .with_context(|| format!("record the underlay settings in {remote}"))?;
    if missing {
        anyhow::bail!(
            "bridge {bridge} does not exist in {remote}: run `kuryr host nics-to-bridge eth0` first (it makes br<NIC> holding the VM's NIC and addresses)"
        );
    }
    if secure {
        anyhow::bail!(
            "bridge {bridge} is in fail mode secure (an integration bridge for ovn-controller?): inside a VM containers need a bridge that switches on its own, such as the one `kuryr host nics-to-bridge` makes"
        );
    }
    Ok(())
}
