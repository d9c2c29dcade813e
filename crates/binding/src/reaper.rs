//! Deleting a veth pair takes the kernel 15-25 ms (unregistering a device waits for RCU
//! grace periods), and Docker waits for DeleteEndpoint. Once its OVS port is gone a veth
//! carries nothing, so unplugging marks it (alias [`RELEASED_ALIAS`]) and hands it to one
//! worker that deletes marked veths one at a time in the background. A veth a crash left
//! marked is deleted at the next start ([`sweep`]).
use kuryr_ovsdb::Client;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::netlink::{LinkFacts, Netlink};
use crate::ovs::Locks;

/// The alias of a host end waiting to be deleted: `kuryr:unplugged:<endpoint id>`.
pub(crate) const RELEASED_ALIAS: &str = "kuryr:unplugged:";

struct Job {
    endpoint: String,
    ifname: String,
}

/// Where unplugged veths go to be deleted. Dropping it lets the worker finish the queue and
/// stop.
pub(crate) struct Reaper {
    tx: mpsc::UnboundedSender<Job>,
}

impl Reaper {
    /// Starts the worker on its own netlink socket. `ovs` tells a veth that was plugged again
    /// meanwhile (its name back in the database) from one still waiting.
    pub(crate) fn start(ovs: Client, locks: Arc<Locks>) -> std::io::Result<Reaper> {
        let netlink = Netlink::open()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let _serial = locks.lock(&job.endpoint).await;
                delete_if_released(&netlink, &ovs, &job.ifname).await;
            }
        });
        Ok(Reaper { tx })
    }

    /// Marks `ifname` (the host end of `endpoint`'s veth, out of every bridge by now) and
    /// queues its deletion; `Ok(false)` when there is no such link. The mark is what a start
    /// after a crash goes by, so it is set before this returns.
    pub(crate) async fn defer(
        &self,
        netlink: &Netlink,
        endpoint: &str,
        ifname: &str,
    ) -> std::io::Result<bool> {
        if !netlink
            .set_alias(ifname, &format!("{RELEASED_ALIAS}{endpoint}"))
            .await?
        {
            return Ok(false);
        }
        let job = Job {
            endpoint: endpoint.to_string(),
            ifname: ifname.to_string(),
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            // The worker is gone (the runtime shutting down): delete it here.
            netlink.delete(&job.ifname).await?;
        }
        Ok(true)
    }
}

/// Deletes `ifname` if it is still [`released`].
async fn delete_if_released(netlink: &Netlink, ovs: &Client, ifname: &str) {
    let index = match netlink.link(ifname).await {
        Ok(Some(l)) if released(&l, ovs) => l.index,
        Ok(_) => {
            debug!(ifname, "gone, or plugged again before its deletion; kept");
            return;
        }
        Err(e) => {
            warn!(ifname, error = %e, "could not look up an unplugged veth; it is deleted at the next start");
            return;
        }
    };
    // By index: a plug taking the name meanwhile made a new link.
    match netlink.delete_index(index).await {
        Ok(existed) => debug!(ifname, existed, "veth deleted"),
        Err(e) => {
            warn!(ifname, error = %e, "could not delete an unplugged veth; it is deleted at the next start")
        }
    }
}

/// A veth carrying the mark and in no OVS port (a plug of the same endpoint replaces the
/// veth, and its alias, and puts it in a port).
fn released(l: &LinkFacts, ovs: &Client) -> bool {
    l.kind == "veth"
        && l.alias
            .as_deref()
            .is_some_and(|a| a.starts_with(RELEASED_ALIAS))
        && ovs.replica().table("Interface").by_name(&l.name).is_empty()
}

/// Deletes every veth a previous run marked and did not get to (killed with a queue), except
/// one plugged again since; returns their names.
pub(crate) async fn sweep(netlink: &Netlink, ovs: &Client) -> std::io::Result<Vec<String>> {
    let mut deleted = Vec::new();
    for l in netlink.links().await? {
        if !released(&l, ovs) {
            continue;
        }
        if netlink.delete_index(l.index).await? {
            info!(ifname = %l.name, "deleted a veth the previous run unplugged but did not delete");
            deleted.push(l.name);
        }
    }
    Ok(deleted)
}
