//! ReleaseAddress calls that failed because Neutron could not be reached. Docker does not send
//! a failed ReleaseAddress again: it takes the address as free, so a `docker run --ip` of it
//! later would be refused for good ("in use by port ...") while the port stays. kuryr sends
//! the release again itself, at each `Backend::reclaim`, until Neutron answers; a
//! RequestAddress that hands the address out again in the meantime voids it.
use super::{short, NeutronBackend};
use kuryr_core::BackendError;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Releases(Mutex<HashSet<(String, IpAddr)>>);

impl Releases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, IpAddr)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The release of `address` in pool `pool_id` did not reach Neutron.
    pub(crate) fn failed(&self, pool_id: &str, address: IpAddr) {
        self.lock().insert((pool_id.to_string(), address));
    }

    /// The release was carried out, or Neutron refused it for a reason a retry won't change.
    pub(crate) fn done(&self, pool_id: &str, address: IpAddr) {
        let mut s = self.lock();
        if !s.is_empty() {
            s.remove(&(pool_id.to_string(), address));
        }
    }

    /// Docker was handed `address` again: whatever release of it is pending is void.
    pub(crate) fn handed_out(&self, pool_id: &str, address: IpAddr) {
        self.done(pool_id, address);
    }

    fn pending(&self) -> Vec<(String, IpAddr)> {
        self.lock().iter().cloned().collect()
    }

    fn is_pending(&self, pool_id: &str, address: IpAddr) -> bool {
        self.lock().contains(&(pool_id.to_string(), address))
    }
}

impl NeutronBackend {
    /// Sends again the releases Neutron missed (see the module's documentation).
    pub(super) async fn retry_failed_releases(&self) {
        for (pool_id, address) in self.releases.pending() {
            // Handed out again since this list was taken: not Docker's to release anymore.
            if !self.releases.is_pending(&pool_id, address) {
                continue;
            }
            match self.release_address_now(&pool_id, address).await {
                Ok(()) => {
                    tracing::info!(%address, pool = %short(&pool_id), "released an address whose ReleaseAddress could not reach Neutron");
                    self.releases.done(&pool_id, address);
                }
                Err(BackendError::Unavailable { .. }) => {}
                Err(e) => {
                    tracing::warn!(%address, pool = %short(&pool_id), error = %e, "gave up releasing an address whose ReleaseAddress could not reach Neutron");
                    self.releases.done(&pool_id, address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_pending_until_done_or_the_address_is_handed_out_again() {
        let r = Releases::default();
        let a: IpAddr = "10.0.0.5".parse().expect("address");
        r.failed("pool", a);
        assert!(r.is_pending("pool", a));
        assert!(!r.is_pending("other", a));
        r.handed_out("pool", a);
        assert!(!r.is_pending("pool", a));
        r.failed("pool", a);
        r.done("pool", a);
        assert!(r.pending().is_empty());
    }
}
