//! A binding that plugs nothing: endpoints exist only in the control plane. For measuring the
//! control plane alone (`kuryr bench scale`); containers started with it get no connectivity.
use crate::{
    container_ifname, host_ifname, Binding, BindingError, PlugRequest, Plugged, PluggedPort,
};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct NullBinding;

impl Binding for NullBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        Ok(Plugged {
            host_ifname: host_ifname(&req.endpoint_id)?,
            container_ifname: container_ifname(&req.endpoint_id)?,
        })
    }

    async fn wait_ready(&self, _endpoint_id: &str, _timeout: Duration) -> Result<(), BindingError> {
        Ok(())
    }

    async fn unplug(&self, _endpoint_id: &str) -> Result<(), BindingError> {
        Ok(())
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        Ok(Vec::new())
    }
}
