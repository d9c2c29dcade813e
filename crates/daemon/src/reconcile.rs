//! After a restart: host ports whose endpoint no longer exists in Northbound are removed, and
//! endpoints of this host whose host side is gone are reported.
use kuryr_binding::Binding;
use kuryr_core::Backend;
use std::collections::HashSet;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Endpoint ids whose orphaned host ports were removed.
    pub removed: Vec<String>,
    /// Endpoint ids of this host whose veth or OVS port is missing.
    pub missing_host_side: Vec<String>,
    pub errors: Vec<String>,
}

pub async fn reconcile<Bk: Backend, B: Binding>(backend: &Bk, binding: &B) -> Report {
    let mut report = Report::default();
    let plugged = match binding.list().await {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("list host ports: {e}"));
            return report;
        }
    };
    let mut present = HashSet::new();
    for port in plugged {
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
            for ep in eps {
                if !present.contains(&ep.endpoint_id) {
                    report.missing_host_side.push(ep.endpoint_id);
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
    for id in &report.missing_host_side {
        tracing::warn!(endpoint = %id, "endpoint has no veth or OVS port on this host: restart its container or `docker network disconnect` it");
    }
    for e in &report.errors {
        tracing::error!(error = %e, "reconciliation");
    }
    report
}
