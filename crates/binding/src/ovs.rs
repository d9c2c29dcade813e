//! The `ovs` binding: a veth pair per endpoint whose host end is a Port of the integration
//! bridge, written over OVSDB to the local `Open_vSwitch` database (no `ovs-vsctl` per call).
use kuryr_ovsdb::datum::{self, map, named_uuid, Row};
use kuryr_ovsdb::txn::{by_uuid, eq, includes, mutate_delete, mutate_insert};
use kuryr_ovsdb::{parse_remotes, Client, Config, Replica, Txn};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OwnedMutexGuard;
use tracing::{debug, info, warn, Instrument};

use crate::error::BindingError;
use crate::mtu::{parse_encaps, Encap};
use crate::names::{self, Checked};
use crate::netlink::Netlink;
use crate::reaper::{self, Reaper};
use crate::{Binding, PlugRequest, Plugged, PluggedBy, PluggedPort};

const DB: &str = "Open_vSwitch";
const TABLES: &[&str] = &["Open_vSwitch", "Bridge", "Port", "Interface"];
const OWNER_KEY: &str = "owner";
const OWNER: &str = "kuryr";
const HOST_KEY: &str = "kuryr-host";
/// The control plane a port's endpoint lives in (`ovn`, `neutron`).
const BACKEND_KEY: &str = "kuryr-backend";
/// Ports plugged before the mark existed are the OVN mode's.
const UNMARKED_BACKEND: &str = "ovn";
/// How long an OVSDB write keeps retrying through a reconnect of the local database.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
const EEXIST: i32 = 17;

/// The `ovs` binding. Cheap to clone; clones share one OVSDB connection and one netlink socket.
#[derive(Clone)]
pub struct OvsBinding {
    inner: Arc<Inner>,
}

struct Inner {
    ovs: Client,
    remote: String,
    bridge: String,
    /// The kuryr host (chassis) name this binding plugs for, recorded on every port so a
    /// kuryr of another host (or another Northbound) sharing this OVS leaves its ports alone.
    host: std::sync::OnceLock<String>,
    /// The control plane this binding plugs for, recorded on every port: each mode's
    /// reconciliation asks only its own control plane about only its own ports.
    backend: std::sync::OnceLock<String>,
    netlink: Netlink,
    locks: Arc<Locks>,
    /// Deletes unplugged veths in the background, once the daemon asks for it.
    reaper: std::sync::OnceLock<Reaper>,
}

impl OvsBinding {
    /// Connects to the local Open_vSwitch database at `ovs_db_remote` (e.g.
    /// `unix:/var/run/openvswitch/db.sock`) and checks that `bridge` exists.
    pub async fn connect(ovs_db_remote: &str, bridge: &str) -> Result<OvsBinding, BindingError> {
        let connect_err = |source| BindingError::Connect {
            remote: ovs_db_remote.to_string(),
            source: Box::new(source),
        };
        let mut config = Config::new(
            parse_remotes(ovs_db_remote).map_err(connect_err)?,
            DB,
            TABLES,
        );
        // A local unix socket answers at once or not at all.
        config.connect_timeout = Duration::from_secs(3);
        let ovs = Client::connect(config).await.map_err(connect_err)?;
        if ovs.replica().table("Bridge").one_by_name(bridge).is_none() {
            return Err(BindingError::BridgeMissing {
                bridge: bridge.to_string(),
                remote: ovs_db_remote.to_string(),
            });
        }
        let netlink = Netlink::open().map_err(BindingError::NetlinkSocket)?;
        Ok(OvsBinding {
            inner: Arc::new(Inner {
                ovs,
                remote: ovs_db_remote.to_string(),
                bridge: bridge.to_string(),
                host: std::sync::OnceLock::new(),
                backend: std::sync::OnceLock::new(),
                netlink,
                locks: Arc::default(),
                reaper: std::sync::OnceLock::new(),
            }),
        })
    }

    /// From now on an unplug returns once the OVS port is gone and the veth is marked, and
    /// the kernel's slow deletion of the veth runs in the background (see `reaper`): for a
    /// long-running process, which also calls [`Binding::sweep_unplugged`] at its start.
    pub fn delete_veths_in_background(&self) -> Result<(), BindingError> {
        if self.inner.reaper.get().is_none() {
            let reaper = Reaper::start(self.inner.ovs.clone(), self.inner.locks.clone())
                .map_err(BindingError::NetlinkSocket)?;
            let _ = self.inner.reaper.set(reaper);
        }
        Ok(())
    }

    /// Names the kuryr host this binding plugs for: ports get `external_ids:kuryr-host`, and
    /// [`Binding::list`] returns only this host's ports. Set once, before the first plug.
    pub fn set_host(&self, host: &str) {
        let _ = self.inner.host.set(host.to_string());
    }

    /// Names the control plane (`ovn`, `neutron`) whose endpoints this binding plugs: ports
    /// get `external_ids:kuryr-backend`, and [`Binding::list`] returns only that control
    /// plane's ports. Without it, a kuryr of the other mode on this OVS would find ports
    /// whose endpoints its control plane does not know and unplug them as orphans. Set once,
    /// before the first plug.
    pub fn set_backend(&self, backend: &str) {
        let _ = self.inner.backend.set(backend.to_string());
    }

    pub(crate) fn ovs_client(&self) -> &Client {
        &self.inner.ovs
    }

    pub(crate) fn netlink_handle(&self) -> &rtnetlink::Handle {
        self.inner.netlink.handle()
    }

    pub fn bridge(&self) -> &str {
        &self.inner.bridge
    }

    /// The bridge's `fail_mode` (`secure`, `standalone`), if set.
    pub fn bridge_fail_mode(&self) -> Option<String> {
        self.inner
            .ovs
            .replica()
            .table("Bridge")
            .one_by_name(&self.inner.bridge)
            .and_then(|b| b.strings("fail_mode").into_iter().next())
    }

    /// This host's OVN chassis name (`Open_vSwitch` `external_ids:system-id`).
    pub fn chassis_name(&self) -> Result<String, BindingError> {
        self.inner
            .host_setting("system-id")
            .ok_or_else(|| self.inner.not_configured("external_ids:system-id"))
    }

    /// The tunnel encapsulations this chassis offers (`external_ids:ovn-encap-type`, a
    /// comma-separated list such as `geneve` or `geneve,vxlan`).
    pub fn encaps(&self) -> Result<Vec<Encap>, BindingError> {
        let text = self
            .inner
            .host_setting("ovn-encap-type")
            .ok_or_else(|| self.inner.not_configured("external_ids:ovn-encap-type"))?;
        parse_encaps(&text).map_err(|reason| BindingError::BadHostSetting {
            key: "ovn-encap-type",
            value: text.clone(),
            remote: self.inner.remote.clone(),
            reason,
        })
    }

    /// Runs `work` on its own task, so that a caller giving up (Docker closing the connection
    /// drops the request's future) cannot stop a plug or unplug half way.
    async fn detached<T, F, Fut>(
        &self,
        action: &'static str,
        endpoint: &str,
        work: F,
    ) -> Result<T, BindingError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, BindingError>> + Send + 'static,
    {
        let span = tracing::info_span!("binding", action, endpoint = %endpoint);
        let fut = work(self.inner.clone()).instrument(span);
        tokio::spawn(fut).await.map_err(|e| BindingError::Task {
            action,
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?
    }
}

impl Binding for OvsBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        let checked = names::check(req)?;
        self.detached("plug", &req.endpoint_id, |inner| async move {
            inner.plug(&checked).await
        })
        .await
    }

    async fn wait_ready(&self, endpoint_id: &str, timeout: Duration) -> Result<(), BindingError> {
        let ifname = names::host_ifname(endpoint_id)?;
        // Read-only: a caller giving up may stop it anywhere.
        let span = tracing::info_span!("binding", action = "wait_ready", endpoint = %endpoint_id);
        self.inner
            .wait_ready(endpoint_id, &ifname, timeout)
            .instrument(span)
            .await
    }

    async fn unplug(&self, endpoint_id: &str) -> Result<(), BindingError> {
        let ifname = names::host_ifname(endpoint_id)?;
        let endpoint = endpoint_id.to_string();
        self.detached("unplug", endpoint_id, |inner| async move {
            inner.unplug(&endpoint, &ifname).await
        })
        .await
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        self.inner.list().await
    }

    async fn sweep_unplugged(&self) -> Result<Vec<String>, BindingError> {
        reaper::sweep(&self.inner.netlink, &self.inner.ovs)
            .await
            .map_err(|e| BindingError::Host {
                action: "delete the veths the previous run unplugged".into(),
                source: Box::new(e),
            })
    }

    async fn interrupted_plug(&self, endpoint_id: &str) -> Result<bool, BindingError> {
        let host = names::host_ifname(endpoint_id)?;
        let container = names::container_ifname(endpoint_id)?;
        if interface_named(&self.inner.ovs.replica(), &host).is_some() {
            return Ok(false);
        }
        let look = |name: String| async move {
            self.inner
                .netlink
                .link(&name)
                .await
                .map(|l| l.is_some_and(|l| l.kind == "veth"))
                .map_err(|e| {
                    self.inner
                        .netlink_err(format!("look up interface {name}"), endpoint_id, e)
                })
        };
        Ok(look(host).await? && look(container).await?)
    }
}

/// What the database already holds under an endpoint's interface name.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    Nothing,
    /// A Port and Interface of ours for this very endpoint, logical port and MAC.
    Same,
    /// Something else uses the name; the text says what.
    Other(String),
}

impl Inner {
    fn host_setting(&self, key: &str) -> Option<String> {
        let replica = self.ovs.replica();
        let row = replica.table("Open_vSwitch").rows().next().cloned()?;
        row.external_id(key).map(str::to_string)
    }

    /// Fixes the offload of a veth just created, or deletes it: a plug that fails leaves nothing.
    async fn offload_or_undo(&self, c: &Checked) -> Result<(), BindingError> {
        let res = self.fix_offload(c);
        if res.is_err() {
            let _ = self.netlink.delete(&c.host_ifname).await;
        }
        res
    }

    /// The userspace datapath cannot finish checksums the container's kernel left to the NIC:
    /// turn transmit checksum offload off on both ends; and keep the kernel from answering
    /// ARP on the bridge's end (see `offload.rs`).
    fn fix_offload(&self, c: &Checked) -> Result<(), BindingError> {
        let userspace = self
            .ovs
            .replica()
            .table("Bridge")
            .one_by_name(&self.bridge)
            .is_some_and(|b| b.str("datapath_type") == Some("netdev"));
        if !userspace {
            return Ok(());
        }
        for ifname in [&c.container_ifname, &c.host_ifname] {
            crate::offload::disable_tx_checksum(ifname).map_err(|e| {
                self.netlink_err(
                    format!("turn off tx checksum offload on {ifname}"),
                    &c.endpoint_id,
                    e,
                )
            })?;
        }
        crate::offload::ignore_arp(&c.host_ifname).map_err(|e| {
            self.netlink_err(
                format!("set arp_ignore on {}", c.host_ifname),
                &c.endpoint_id,
                e,
            )
        })
    }

    fn not_configured(&self, what: &'static str) -> BindingError {
        BindingError::HostNotConfigured {
            what,
            remote: self.remote.clone(),
        }
    }

    fn ovsdb_err(
        &self,
        action: String,
        endpoint: &str,
        source: kuryr_ovsdb::Error,
    ) -> BindingError {
        BindingError::Ovsdb {
            action,
            endpoint: endpoint.to_string(),
            remote: self.remote.clone(),
            source: Box::new(source),
        }
    }

    fn netlink_err(&self, action: String, endpoint: &str, source: std::io::Error) -> BindingError {
        BindingError::Netlink {
            action,
            endpoint: endpoint.to_string(),
            source,
        }
    }

    async fn plug(&self, c: &Checked) -> Result<Plugged, BindingError> {
        let _serial = self.locks.lock(&c.endpoint_id).await;
        let start = Instant::now();
        let plugged = Plugged {
            host_ifname: c.host_ifname.clone(),
            container_ifname: c.container_ifname.clone(),
        };
        // 1. Look at what is there: a retried plug finds its own port; a name collision (another
        //    endpoint with the same 11-character prefix, or a foreign port) stops here, before
        //    anything is changed. The bridge itself was checked by connect(); the transaction
        //    below guards against it having gone since.
        let existing = classify(&self.ovs.replica(), c, &self.bridge);
        match existing {
            Existing::Other(detail) => {
                return Err(BindingError::Conflict {
                    endpoint: c.endpoint_id.clone(),
                    detail,
                })
            }
            Existing::Same => {
                let veth = self.netlink.link(&c.host_ifname).await.map_err(|e| {
                    self.netlink_err(
                        format!("look up interface {}", c.host_ifname),
                        &c.endpoint_id,
                        e,
                    )
                })?;
                if veth.is_none() {
                    // The port survived (the database outlives a reboot) but the veth did not.
                    info!(ifname = %c.host_ifname, "OVS port present without its veth; recreating the veth");
                    self.create_veth(c).await?;
                }
                debug!("already plugged");
                return Ok(plugged);
            }
            Existing::Nothing => {}
        }
        // 2. The veth pair.
        self.create_veth(c).await?;
        // 3. The OVS Port and Interface, in one guarded transaction.
        if let Err(e) = self.add_port(c).await {
            // 4. Leave nothing behind: the veth goes with the failed transaction.
            if let Err(undo) = self.netlink.delete(&c.host_ifname).await {
                warn!(ifname = %c.host_ifname, error = %undo, "could not delete the veth after a failed plug");
                return Err(BindingError::PlugUndo {
                    error: Box::new(e),
                    ifname: c.host_ifname.clone(),
                    undo,
                });
            }
            return Err(e);
        }
        info!(
            ifname = %c.host_ifname,
            iface_id = %c.iface_id,
            bridge = %self.bridge,
            ms = start.elapsed().as_millis() as u64,
            "plugged"
        );
        Ok(plugged)
    }

    async fn create_veth(&self, c: &Checked) -> Result<(), BindingError> {
        let action = || {
            format!(
                "create veth pair {}/{} (MTU {})",
                c.host_ifname, c.container_ifname, c.mtu
            )
        };
        let create = || {
            self.netlink
                .create_veth(&c.host_ifname, &c.container_ifname, c.mtu, c.mac)
        };
        let err = match create().await {
            Ok(()) => return self.offload_or_undo(c).await,
            Err(e) if e.raw_os_error() == Some(EEXIST) => e,
            Err(e) => return Err(self.netlink_err(action(), &c.endpoint_id, e)),
        };
        // The name is derived from this endpoint's id and no OVS port of ours has it, so a veth
        // by that name is what an interrupted plug of this endpoint left: replace it. Anything
        // else with the name is not ours to delete.
        let existing = self.netlink.link(&c.host_ifname).await.map_err(|e| {
            self.netlink_err(
                format!("look up interface {}", c.host_ifname),
                &c.endpoint_id,
                e,
            )
        })?;
        match existing {
            Some(l) if l.kind == "veth" => {
                info!(ifname = %c.host_ifname, "replacing a veth left by an interrupted plug");
                self.netlink.delete(&c.host_ifname).await.map_err(|e| {
                    self.netlink_err(format!("delete stale veth {}", c.host_ifname), &c.endpoint_id, e)
                })?;
                create()
                    .await
                    .map_err(|e| self.netlink_err(action(), &c.endpoint_id, e))?;
                self.offload_or_undo(c).await
            }
            Some(l) => Err(BindingError::Conflict {
                endpoint: c.endpoint_id.clone(),
                detail: format!(
                    "interface {} already exists on this host and is a {} device, not a veth of kuryr's",
                    c.host_ifname,
                    if l.kind.is_empty() { "physical" } else { &l.kind }
                ),
            }),
            // The host end is free, so the container end's name is taken.
            None => Err(BindingError::Conflict {
                endpoint: c.endpoint_id.clone(),
                detail: format!(
                    "interface {} already exists on this host ({err})",
                    c.container_ifname
                ),
            }),
        }
    }

    async fn add_port(&self, c: &Checked) -> Result<(), BindingError> {
        let mut refused: Option<BindingError> = None;
        let result = self
            .ovs
            .transact_with(WRITE_DEADLINE, |replica| {
                refused = None;
                match classify(replica, c, &self.bridge) {
                    Existing::Nothing => {}
                    // Committed before a lost connection: nothing left to do.
                    Existing::Same => return Ok(None),
                    Existing::Other(detail) => {
                        refused = Some(BindingError::Conflict {
                            endpoint: c.endpoint_id.clone(),
                            detail,
                        });
                        return Ok(None);
                    }
                }
                if replica.table("Bridge").one_by_name(&self.bridge).is_none() {
                    refused = Some(BindingError::BridgeMissing {
                        bridge: self.bridge.clone(),
                        remote: self.remote.clone(),
                    });
                    return Ok(None);
                }
                Ok(Some(add_port_txn(
                    c,
                    &self.bridge,
                    self.host.get().map(String::as_str),
                    self.backend.get().map(String::as_str),
                )))
            })
            .await;
        if let Some(e) = refused {
            return Err(e);
        }
        result.map(|_| ()).map_err(|e| {
            self.ovsdb_err(
                format!("add port {} to bridge {}", c.host_ifname, self.bridge),
                &c.endpoint_id,
                e,
            )
        })
    }

    async fn unplug(&self, endpoint: &str, ifname: &str) -> Result<(), BindingError> {
        let _serial = self.locks.lock(endpoint).await;
        let mut errors = Vec::new();
        // 1. Detach the Port from its bridge and delete the Port and its Interface, in one
        //    transaction. None there is success. A port of that name that is not this
        //    endpoint's (another endpoint sharing the 11-character prefix, or not kuryr's) is
        //    left alone, and so is the veth, which has the same name. The host end that
        //    kuryr-libnetwork plugged for this endpoint (a container it started before the
        //    host moved to kuryr) goes in the same transaction.
        let mut foreign: Option<String> = None;
        let mut legacy: Vec<String> = Vec::new();
        let result = self
            .ovs
            .transact_with(WRITE_DEADLINE, |replica| {
                foreign = None;
                let ports = replica.table("Port").by_name(ifname);
                let legacy_ports: Vec<Arc<Row>> = replica
                    .table("Interface")
                    .by_external_id("vm-uuid", endpoint)
                    .iter()
                    .filter_map(|i| kuryr_libnetwork_port(replica, i))
                    .collect();
                legacy = legacy_ports
                    .iter()
                    .filter_map(|p| p.str("name").map(str::to_string))
                    .collect();
                if ports.is_empty() && legacy_ports.is_empty() {
                    return Ok(None);
                }
                let mut t = Txn::new(DB);
                t.comment(&format!("kuryr: unplug endpoint {endpoint} ({ifname})"));
                for port in &ports {
                    let ifaces = port_interfaces(replica, port);
                    let ours = port.external_id(OWNER_KEY) == Some(OWNER)
                        && ifaces
                            .iter()
                            .all(|i| i.external_id("vm-uuid") == Some(endpoint));
                    if !ours {
                        foreign = Some(describe_port(replica, port, &ifaces));
                        return Ok(None);
                    }
                    delete_port_ops(&mut t, port, &ifaces);
                }
                for port in &legacy_ports {
                    delete_port_ops(&mut t, port, &port_interfaces(replica, port));
                }
                Ok(Some(t))
            })
            .await;
        if let Some(detail) = foreign {
            return Err(BindingError::Conflict {
                endpoint: endpoint.to_string(),
                detail: format!("{detail}; not unplugging it"),
            });
        }
        if let Err(e) = result {
            let names = std::iter::once(ifname.to_string())
                .chain(
                    legacy
                        .iter()
                        .map(|n| format!("{n} (plugged by kuryr-libnetwork)")),
                )
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(self.ovsdb_err(
                format!("remove port {names} from the Open_vSwitch database"),
                endpoint,
                e,
            ));
        }
        // 2. Delete the veth by its host end, in the background if asked (see reaper); the kernel
        //    removes the peer with it wherever it is. Docker 20.10 calls Leave before it moves
        //    the container end back, so at DeleteEndpoint the peer may still be inside the
        //    container's namespace, or gone. When the port could not be removed the veth
        //    goes at once, as the reaper keeps veths that are in a port.
        let deleted = match self.reaper.get() {
            Some(reaper) if errors.is_empty() => {
                reaper.defer(&self.netlink, endpoint, ifname).await
            }
            _ => self.netlink.delete(ifname).await,
        };
        match deleted {
            Ok(existed) => debug!(ifname, existed, "veth deleted or queued for deletion"),
            Err(e) => errors.push(self.netlink_err(format!("delete veth {ifname}"), endpoint, e)),
        }
        // kuryr-libnetwork's veth, named after the Neutron port; only a veth is deleted.
        for name in &legacy {
            match self.netlink.link(name).await {
                Ok(Some(l)) if l.kind == "veth" => match self.netlink.delete(name).await {
                    Ok(_) => {
                        info!(ifname = %name, "removed the veth kuryr-libnetwork plugged for this endpoint")
                    }
                    Err(e) => errors.push(self.netlink_err(
                        format!("delete veth {name} (plugged by kuryr-libnetwork)"),
                        endpoint,
                        e,
                    )),
                },
                Ok(Some(l)) => {
                    warn!(ifname = %name, kind = %l.kind, "left interface in place: kuryr-libnetwork's OVS port had its name, but it is not a veth")
                }
                Ok(None) => {}
                Err(e) => errors.push(self.netlink_err(
                    format!("look up interface {name} (plugged by kuryr-libnetwork)"),
                    endpoint,
                    e,
                )),
            }
        }
        if errors.is_empty() {
            info!(ifname, "unplugged");
            Ok(())
        } else {
            Err(BindingError::Unplug {
                endpoint: endpoint.to_string(),
                errors,
            })
        }
    }

    async fn wait_ready(
        &self,
        endpoint: &str,
        ifname: &str,
        timeout: Duration,
    ) -> Result<(), BindingError> {
        let start = Instant::now();
        let outcome = self
            .ovs
            .wait_for(timeout, |replica| {
                let iface = interface_named(replica, ifname);
                match iface {
                    None => Some(Err(())),
                    Some(i) if i.external_id("ovn-installed") == Some("true") => Some(Ok(())),
                    Some(_) => None,
                }
            })
            .await;
        match outcome {
            Some(Ok(())) => {
                debug!(
                    ifname,
                    ms = start.elapsed().as_millis() as u64,
                    "ovn-installed"
                );
                Ok(())
            }
            Some(Err(())) => Err(BindingError::NotPlugged {
                endpoint: endpoint.to_string(),
                ifname: ifname.to_string(),
            }),
            None => Err(self.not_ready(endpoint, ifname, start.elapsed())),
        }
    }

    /// Why a port is not installed, as far as the local database can tell.
    fn not_ready(&self, endpoint: &str, ifname: &str, waited: Duration) -> BindingError {
        let replica = self.ovs.replica();
        let iface = interface_named(&replica, ifname);
        let iface_id = iface
            .as_ref()
            .and_then(|i| i.external_id("iface-id").map(str::to_string))
            .unwrap_or_default();
        let ovs_error = iface
            .as_ref()
            .and_then(|i| i.str("error").map(str::to_string));
        let ovn_bridge = replica
            .table("Open_vSwitch")
            .rows()
            .next()
            .and_then(|r| r.external_id("ovn-bridge").map(str::to_string))
            .unwrap_or_else(|| "br-int".to_string());
        let cause = if let Some(err) = ovs_error.filter(|e| !e.is_empty()) {
            format!("Open vSwitch could not attach the interface: {err}")
        } else if ovn_bridge != self.bridge {
            format!(
                "ovn-controller is bound to bridge {ovn_bridge} (external_ids:ovn-bridge), not {}",
                self.bridge
            )
        } else {
            format!(
                "either there is no Logical_Switch_Port named {iface_id:?} in the OVN Northbound \
                 database (or its requested-chassis is another host), or ovn-controller is not \
                 running or not bound to bridge {}",
                self.bridge
            )
        };
        BindingError::NotReady {
            endpoint: endpoint.to_string(),
            iface_id,
            ifname: ifname.to_string(),
            seconds: waited.as_secs_f64(),
            cause,
        }
    }

    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        let mut ports: Vec<PluggedPort> = {
            let replica = self.ovs.replica();
            let bridge_of = |port: &Row| {
                replica
                    .table("Bridge")
                    .rows()
                    .find(|b| b.uuids("ports").contains(&port.uuid))
                    .and_then(|b| b.str("name").map(str::to_string))
            };
            let describe = |port: &Row, iface: &Row, plugged_by| {
                let ext = |k: &str| iface.external_id(k).unwrap_or_default().to_string();
                PluggedPort {
                    endpoint_id: ext("vm-uuid"),
                    iface_id: ext("iface-id"),
                    mac: ext("attached-mac"),
                    host_ifname: port.str("name").unwrap_or_default().to_string(),
                    bridge: bridge_of(port),
                    veth_exists: false,
                    ovn_installed: iface.external_id("ovn-installed") == Some("true"),
                    plugged_by,
                }
            };
            let mut found: Vec<PluggedPort> = replica
                .table("Port")
                .by_external_id(OWNER_KEY, OWNER)
                .into_iter()
                .filter(|port| match self.host.get() {
                    Some(h) => port.external_id(HOST_KEY) == Some(h.as_str()),
                    None => true,
                })
                .filter(|port| match self.backend.get() {
                    Some(b) => port.external_id(BACKEND_KEY).unwrap_or(UNMARKED_BACKEND) == b,
                    None => true,
                })
                .filter_map(|port| {
                    let iface = port
                        .uuids("interfaces")
                        .iter()
                        .find_map(|u| replica.table("Interface").get(u))?;
                    Some(describe(&port, &iface, PluggedBy::Kuryr))
                })
                .collect();
            // kuryr-libnetwork marks no host: on this OVS they are this host's.
            for iface in replica.table("Interface").by_external_id(OWNER_KEY, OWNER) {
                if let Some(port) = kuryr_libnetwork_port(&replica, &iface) {
                    found.push(describe(&port, &iface, PluggedBy::KuryrLibnetwork));
                }
            }
            found
        };
        let names = self
            .netlink
            .names()
            .await
            .map_err(BindingError::NetlinkList)?;
        for p in &mut ports {
            p.veth_exists = names.contains(&p.host_ifname);
        }
        ports.sort_by(|a, b| a.host_ifname.cmp(&b.host_ifname));
        Ok(ports)
    }
}

fn interface_named(replica: &Replica, ifname: &str) -> Option<Arc<Row>> {
    replica
        .table("Interface")
        .by_name(ifname)
        .into_iter()
        .next()
}

fn port_interfaces(replica: &Replica, port: &Row) -> Vec<Arc<Row>> {
    port.uuids("interfaces")
        .iter()
        .filter_map(|u| replica.table("Interface").get(u))
        .collect()
}

/// Detaches `port` from its bridge and deletes it with its interfaces.
fn delete_port_ops(t: &mut Txn, port: &Row, ifaces: &[Arc<Row>]) {
    let port_ref = datum::uuid(port.uuid);
    t.mutate(
        "Bridge",
        vec![includes("ports", port_ref.clone())],
        vec![mutate_delete("ports", datum::set([port_ref]))],
    );
    t.delete("Port", vec![by_uuid(port.uuid)]);
    for iface in ifaces {
        t.delete("Interface", vec![by_uuid(iface.uuid)]);
    }
}

/// The Port of `iface` if kuryr-libnetwork's veth driver plugged it: kuryr-lib's `ovs` script
/// adds the host end `tap<Neutron port id[:11]>` as a Port of the same name and marks only the
/// Interface (`owner=kuryr`, `iface-id=<port id>`, `vm-uuid=<endpoint id>`, `attached-mac`).
/// kuryr marks its Ports too, so its own never match.
fn kuryr_libnetwork_port(replica: &Replica, iface: &Row) -> Option<Arc<Row>> {
    if iface.external_id(OWNER_KEY) != Some(OWNER) {
        return None;
    }
    let name = iface.str("name")?;
    let port_id = iface.external_id("iface-id").filter(|p| !p.is_empty())?;
    if name != names::kuryr_libnetwork_host_ifname(port_id) {
        return None;
    }
    let ports = replica.table("Port").by_name(name);
    let [port] = ports.as_slice() else {
        return None;
    };
    (port.external_id(OWNER_KEY).is_none() && port.uuids("interfaces") == [iface.uuid])
        .then(|| port.clone())
}

/// The VLAN of an access port (`tag`, an optional integer).
fn port_tag(port: &Row) -> Option<u16> {
    port.int("tag").and_then(|t| u16::try_from(t).ok())
}

/// Compares what the database holds under `c.host_ifname` with what `c` would write.
fn classify(replica: &Replica, c: &Checked, bridge: &str) -> Existing {
    let name = c.host_ifname.as_str();
    let ports = replica.table("Port").by_name(name);
    let Some(port) = ports.first() else {
        return match interface_named(replica, name) {
            None => Existing::Nothing,
            Some(iface) => {
                let holder = replica
                    .table("Port")
                    .rows()
                    .find(|p| p.uuids("interfaces").contains(&iface.uuid))
                    .and_then(|p| p.str("name").map(str::to_string))
                    .unwrap_or_else(|| "no port".into());
                Existing::Other(format!(
                    "OVS interface {name} already exists (in port {holder}) in the Open_vSwitch database"
                ))
            }
        };
    };
    let ifaces: Vec<Arc<Row>> = port
        .uuids("interfaces")
        .iter()
        .filter_map(|u| replica.table("Interface").get(u))
        .collect();
    let on_bridge = replica
        .table("Bridge")
        .rows()
        .find(|b| b.uuids("ports").contains(&port.uuid))
        .and_then(|b| b.str("name").map(str::to_string));
    let same = ports.len() == 1
        && port.external_id(OWNER_KEY) == Some(OWNER)
        && on_bridge.as_deref() == Some(bridge)
        && ifaces.len() == 1
        && ifaces[0].str("name") == Some(name)
        && ifaces[0].external_id(OWNER_KEY) == Some(OWNER)
        && ifaces[0].external_id("vm-uuid") == Some(c.endpoint_id.as_str())
        && ifaces[0].external_id("iface-id") == Some(c.iface_id.as_str())
        && ifaces[0]
            .external_id("attached-mac")
            .is_some_and(|m| m.eq_ignore_ascii_case(&c.mac_text))
        && port_tag(port) == c.vlan;
    if same {
        Existing::Same
    } else {
        Existing::Other(describe_port(replica, port, &ifaces))
    }
}

/// `OVS port tapX already exists on bridge br-int for endpoint E, logical port L, MAC M (owner O)`.
fn describe_port(replica: &Replica, port: &Row, ifaces: &[Arc<Row>]) -> String {
    let name = port.str("name").unwrap_or_default();
    let bridge = replica
        .table("Bridge")
        .rows()
        .find(|b| b.uuids("ports").contains(&port.uuid))
        .and_then(|b| b.str("name").map(str::to_string))
        .unwrap_or_else(|| "(none)".into());
    let iface = ifaces.first();
    let ext = |k: &str| {
        iface
            .and_then(|i| i.external_id(k))
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "OVS port {name} already exists on bridge {bridge} for endpoint {}, logical port {}, MAC {} (owner {})",
        ext("vm-uuid"),
        ext("iface-id"),
        ext("attached-mac"),
        port.external_id(OWNER_KEY).unwrap_or("-"),
    )
}

/// The transaction that adds the host end to `bridge`. The `wait`s make it safe to retry and
/// to race with other writers: it commits only if the name is still free and the bridge there.
fn add_port_txn(c: &Checked, bridge: &str, host: Option<&str>, backend: Option<&str>) -> Txn {
    let name = c.host_ifname.as_str();
    let mut t = Txn::new(DB);
    t.comment(&format!(
        "kuryr: plug endpoint {} ({name}, logical port {})",
        c.endpoint_id, c.iface_id
    ));
    t.wait_absent("Port", vec![eq("name", name)]);
    t.wait_absent("Interface", vec![eq("name", name)]);
    t.wait(
        "Bridge",
        vec![eq("name", bridge)],
        &["name"],
        true,
        vec![json!({ "name": bridge })],
        0,
    );
    t.insert(
        "Interface",
        json!({
            "name": name,
            "mtu_request": c.mtu,
            "external_ids": map([
                ("iface-id", c.iface_id.as_str()),
                ("attached-mac", c.mac_text.as_str()),
                ("vm-uuid", c.endpoint_id.as_str()),
                ("iface-status", "active"),
                (OWNER_KEY, OWNER),
            ]),
        }),
        Some("iface"),
    );
    let mut port_ids = vec![(OWNER_KEY, OWNER)];
    if let Some(h) = host {
        port_ids.push((HOST_KEY, h));
    }
    if let Some(b) = backend {
        port_ids.push((BACKEND_KEY, b));
    }
    let mut port = json!({
        "name": name,
        "interfaces": datum::set([named_uuid("iface")]),
        "external_ids": map(port_ids),
    });
    if let Some(tag) = c.vlan {
        // An access port: frames leave the VM's trunk with this tag, and only frames with it
        // come in.
        port["tag"] = json!(tag);
        port["vlan_mode"] = json!("access");
    }
    t.insert("Port", port, Some("port"));
    t.mutate(
        "Bridge",
        vec![eq("name", bridge)],
        vec![mutate_insert("ports", datum::set([named_uuid("port")]))],
    );
    t
}

/// Serializes operations on one endpoint inside this process (Docker may retry a call while
/// the first is still running); entries go away when nobody holds or waits for them.
#[derive(Default)]
pub(crate) struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

pub(crate) struct EndpointGuard {
    locks: Arc<Locks>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Locks {
    pub(crate) async fn lock(self: &Arc<Self>, key: &str) -> EndpointGuard {
        let m = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let guard = m.lock_owned().await;
        EndpointGuard {
            locks: self.clone(),
            key: key.to_string(),
            guard: Some(guard),
        }
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        self.guard.take();
        // Only the map's own reference left: nobody holds or waits for this endpoint.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked() -> Checked {
        names::check(&PlugRequest {
            endpoint_id: "ep0123456789abcdef".into(),
            iface_id: "lsp1".into(),
            mac: "0a:58:0a:00:00:05".into(),
            mtu: 1442,
            vlan: None,
        })
        .unwrap()
    }

    #[test]
    fn the_plug_transaction_guards_the_name_and_the_bridge() {
        let t = add_port_txn(&checked(), "br-int", Some("chassis-1"), Some("neutron"));
        // comment, 3 waits, 2 inserts, 1 mutate
        assert_eq!(t.len(), 7);
        let text = format!("{t:?}");
        for needle in [
            "tapep012345678",
            "iface-id",
            "lsp1",
            "attached-mac",
            "0a:58:0a:00:00:05",
            "vm-uuid",
            "ep0123456789abcdef",
            "iface-status",
            "active",
            "owner",
            "kuryr",
            "mtu_request",
            "br-int",
            "kuryr-host",
            "chassis-1",
            "kuryr-backend",
            "neutron",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[tokio::test]
    async fn endpoint_locks_serialize_and_are_released() {
        let locks = Arc::new(Locks::default());
        let g = locks.lock("a").await;
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock("a").await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(g);
        waiter.await.unwrap();
        assert!(locks.0.lock().unwrap().is_empty());
    }
}
