//! After a restart: host ports whose endpoint no longer exists in the control plane are
//! removed; an endpoint whose plug the previous run did not finish (its veth pair here, in
//! no bridge, its container end never handed out) is removed with its veth, since Docker got
//! no answer for it; other endpoints of this host whose host side is gone are reported. Ports that
//! kuryr-libnetwork plugged (a host that moved from it) are kept: their containers run on,
//! and DeleteEndpoint removes them when Docker deletes the endpoint.
use kuryr_binding::{Binding, PluggedBy};
use kuryr_core::Backend;
use std::collections::HashSet;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Host ends of veths the previous run unplugged and had not deleted yet, now deleted.
    pub swept: Vec<String>,
    /// Endpoint ids whose orphaned host ports were removed.
    pub removed: Vec<String>,
    /// Endpoint ids of this host whose veth or OVS port is missing.
    pub missing_host_side: Vec<String>,
    /// Endpoint ids whose plug a crash cut short, removed with their veth.
    pub interrupted: Vec<String>,
    /// Endpoint ids whose host ports kuryr-libnetwork plugged, left as they are.
    pub kept_kuryr_libnetwork: Vec<String>,
    pub errors: Vec<String>,
}

/// How long a plug must stay half done before reconciliation takes it for one a crash cut
/// short (a plug completes in milliseconds).
const INTERRUPTED_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

pub async fn reconcile<Bk: Backend, B: Binding>(backend: &Bk, binding: &B) -> Report {
    let mut report = Report::default();
    match binding.sweep_unplugged().await {
        Ok(swept) => report.swept = swept,
        Err(e) => report.errors.push(e.to_string()),
    }
    let plugged = match binding.list().await {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("list host ports: {e}"));
            return report;
        }
    };
    let mut present = HashSet::new();
    for port in plugged {
        if port.plugged_by == PluggedBy::KuryrLibnetwork {
            if port.veth_exists {
                present.insert(port.endpoint_id.clone());
            }
            report.kept_kuryr_libnetwork.push(port.endpoint_id);
            continue;
        }
        let known = match backend.endpoint(&port.endpoint_id).await {
            Ok(ep) => ep.is_some(),
            Err(e) => {
                // Without an answer, leave the port alone: it may well be in use.
                report
                    .errors
                    .push(format!("look up endpoint {}: {e}", port.endpoint_id));
                continue;
            }
        };
        if !known {
            match binding.unplug(&port.endpoint_id).await {
                Ok(()) => report.removed.push(port.endpoint_id),
                Err(e) => report
                    .errors
                    .push(format!("remove orphaned port {}: {e}", port.host_ifname)),
            }
        } else if port.veth_exists {
            present.insert(port.endpoint_id);
        }
    }
    match backend.local_endpoints().await {
        Ok(eps) => {
            let mut suspects = Vec::new();
            for ep in eps {
                if present.contains(&ep.endpoint_id) {
                    continue;
                }
                match binding.interrupted_plug(&ep.endpoint_id).await {
                    Ok(true) => suspects.push(ep),
                    Ok(false) if binding.sees_running_endpoints() => {
                        report.missing_host_side.push(ep.endpoint_id)
                    }
                    Ok(false) => {}
                    Err(e) => {
                        report.errors.push(format!(
                            "look at endpoint {}'s interfaces: {e}",
                            ep.endpoint_id
                        ));
                        report.missing_host_side.push(ep.endpoint_id);
                    }
                }
            }
            // A plug under way in another process of this host (a network container from
            // the command line) looks the same for a moment: only what stays so is undone.
            if !suspects.is_empty() {
                tokio::time::sleep(INTERRUPTED_GRACE).await;
            }
            for ep in suspects {
                let id = ep.endpoint_id;
                if !matches!(binding.interrupted_plug(&id).await, Ok(true)) {
                    continue;
                }
                if ep
                    .network_id
                    .starts_with(kuryr_ovn::keys::CLI_NETWORK_PREFIX)
                {
                    // An endpoint of `kuryr endpoint create` outlives its plugs: only the
                    // stray veth goes; `kuryr container create` plugs it again.
                    if let Err(e) = binding.unplug(&id).await {
                        report
                            .errors
                            .push(format!("remove the stray veth of endpoint {id}: {e}"));
                    }
                    report.missing_host_side.push(id);
                    continue;
                }
                let undone = match binding.unplug(&id).await {
                    Ok(()) => backend
                        .delete_endpoint(&id)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match undone {
                    Ok(()) => report.interrupted.push(id),
                    Err(e) => report
                        .errors
                        .push(format!("remove the interrupted plug of endpoint {id}: {e}")),
                }
            }
        }
        Err(e) => report
            .errors
            .push(format!("list this host's endpoints: {e}")),
    }
    for id in &report.removed {
        tracing::info!(endpoint = %id, "removed the host port of an endpoint that no longer exists");
    }
    for id in &report.interrupted {
        tracing::info!(endpoint = %id, "removed an endpoint whose plug the previous run did not finish (Docker got no answer for it)");
    }
    for id in &report.kept_kuryr_libnetwork {
        tracing::info!(endpoint = %id, "kept the host port kuryr-libnetwork plugged for this endpoint; it goes when Docker deletes the endpoint");
    }
    for id in &report.missing_host_side {
        tracing::warn!(endpoint = %id, "endpoint has no veth or OVS port on this host: restart its container or `docker network disconnect` it");
    }
    for e in &report.errors {
        tracing::error!(error = %e, "reconciliation");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuryr_binding::{BindingError, PlugRequest, Plugged, PluggedPort};
    use kuryr_core::{
        AddressRequest, BackendError, Endpoint, EndpointSpec, ExposedPort, NetworkSpec, PoolGrant,
        PoolRequest,
    };
    use std::net::IpAddr;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A control plane that knows the endpoints `known`, all of them this host's; records
    /// what is deleted.
    struct Known(Vec<&'static str>, Mutex<Vec<String>>);

    fn known(ids: Vec<&'static str>) -> Known {
        Known(ids, Mutex::new(Vec::new()))
    }

    fn endpoint(id: &str) -> Endpoint {
        Endpoint {
            endpoint_id: id.into(),
            network_id: if id.starts_with("cli-") {
                "cli-0123".into()
            } else {
                "n".into()
            },
            port: format!("port-{id}"),
            mac: "0a:58:0a:00:00:05".into(),
            ipv4: None,
            ipv6: None,
            gateway_v4: None,
            gateway_v6: None,
            routes: Vec::new(),
            mtu: None,
            host: Some("h".into()),
            vlan: None,
        }
    }

    fn unused<T>() -> Result<T, BackendError> {
        Err(BackendError::Invalid("not used by reconciliation".into()))
    }

    impl Backend for Known {
        fn name(&self) -> &'static str {
            "fake"
        }
        async fn request_pool(&self, _: &PoolRequest) -> Result<PoolGrant, BackendError> {
            unused()
        }
        async fn release_pool(&self, _: &str) -> Result<(), BackendError> {
            unused()
        }
        async fn request_address(&self, _: &AddressRequest) -> Result<ipnet::IpNet, BackendError> {
            unused()
        }
        async fn release_address(&self, _: &str, _: IpAddr) -> Result<(), BackendError> {
            unused()
        }
        async fn create_network(&self, _: &NetworkSpec) -> Result<(), BackendError> {
            unused()
        }
        async fn delete_network(&self, _: &str) -> Result<(), BackendError> {
            unused()
        }
        async fn create_endpoint(&self, _: &EndpointSpec) -> Result<Endpoint, BackendError> {
            unused()
        }
        async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>, BackendError> {
            Ok(self.0.contains(&id).then(|| endpoint(id)))
        }
        async fn delete_endpoint(&self, id: &str) -> Result<(), BackendError> {
            self.1
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id.to_string());
            Ok(())
        }
        async fn wait_active(&self, _: &str, _: Duration) -> Result<(), BackendError> {
            unused()
        }
        async fn local_endpoints(&self) -> Result<Vec<Endpoint>, BackendError> {
            Ok(self.0.iter().map(|id| endpoint(id)).collect())
        }
        async fn expose(&self, _: &str, _: &[ExposedPort]) -> Result<(), BackendError> {
            unused()
        }
        async fn unexpose(&self, _: &str) -> Result<(), BackendError> {
            unused()
        }
    }

    /// A host with the ports `ports` and the veth pairs of plugs cut short `interrupted`;
    /// records what is unplugged.
    struct Host {
        ports: Vec<PluggedPort>,
        interrupted: Vec<&'static str>,
        unplugged: Mutex<Vec<String>>,
    }

    fn port(endpoint: &str, by: PluggedBy) -> PluggedPort {
        PluggedPort {
            endpoint_id: endpoint.into(),
            iface_id: format!("port-{endpoint}"),
            mac: "0a:58:0a:00:00:05".into(),
            host_ifname: format!("tap{endpoint}"),
            bridge: Some("br-int".into()),
            veth_exists: true,
            ovn_installed: true,
            plugged_by: by,
        }
    }

    impl Binding for Host {
        async fn plug(&self, _: &PlugRequest) -> Result<Plugged, BindingError> {
            unreachable!("reconciliation never plugs")
        }
        async fn wait_ready(&self, _: &str, _: Duration) -> Result<(), BindingError> {
            Ok(())
        }
        async fn unplug(&self, id: &str) -> Result<(), BindingError> {
            self.unplugged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id.to_string());
            Ok(())
        }
        async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
            Ok(self.ports.clone())
        }
        async fn interrupted_plug(&self, id: &str) -> Result<bool, BindingError> {
            Ok(self.interrupted.contains(&id))
        }
    }

    #[tokio::test]
    async fn kuryr_libnetworks_ports_are_kept_and_count_as_the_host_side() {
        // "old": a running container kuryr-libnetwork started (known to the control plane);
        // "gone": a kuryr-libnetwork port of an endpoint the control plane does not know
        // (another kuryr's, or one removed while no plugin ran): kept all the same;
        // "orphan": kuryr's own port of a deleted endpoint: removed;
        // "mine": kuryr's own live port; "lost": an endpoint without a host side.
        let backend = known(vec!["old", "mine", "lost"]);
        let host = Host {
            ports: vec![
                port("old", PluggedBy::KuryrLibnetwork),
                port("gone", PluggedBy::KuryrLibnetwork),
                port("orphan", PluggedBy::Kuryr),
                port("mine", PluggedBy::Kuryr),
            ],
            interrupted: Vec::new(),
            unplugged: Mutex::new(Vec::new()),
        };
        let report = reconcile(&backend, &host).await;
        assert_eq!(report.removed, vec!["orphan".to_string()]);
        assert_eq!(*host.unplugged.lock().unwrap(), vec!["orphan".to_string()]);
        assert_eq!(report.kept_kuryr_libnetwork, vec!["old", "gone"]);
        assert_eq!(report.missing_host_side, vec!["lost".to_string()]);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }

    #[tokio::test]
    async fn a_plug_cut_short_is_removed_with_its_endpoint_and_a_lost_one_is_reported() {
        // "cut": the previous run died between the veth and the OVS port (its pair is here,
        // in no bridge); "lost": no veth at all (its container is gone).
        // "cli-cut": the same for an endpoint of `kuryr endpoint create`, which stays.
        let backend = known(vec!["cut", "lost", "cli-cut"]);
        let host = Host {
            ports: Vec::new(),
            interrupted: vec!["cut", "cli-cut"],
            unplugged: Mutex::new(Vec::new()),
        };
        let report = reconcile(&backend, &host).await;
        assert_eq!(report.interrupted, vec!["cut".to_string()]);
        assert_eq!(
            *host.unplugged.lock().unwrap(),
            vec!["cut".to_string(), "cli-cut".to_string()]
        );
        assert_eq!(*backend.1.lock().unwrap(), vec!["cut".to_string()]);
        assert_eq!(
            report.missing_host_side,
            vec!["lost".to_string(), "cli-cut".to_string()]
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
}
