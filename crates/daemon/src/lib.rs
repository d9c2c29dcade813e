//! The kuryr daemon: reads `kuryr.conf`, connects to the control plane and the local Open
//! vSwitch, reconciles what a previous run left, and serves Docker's plugin API.
pub mod config;
pub mod driver;
pub mod gateway;
pub mod host;
pub mod reconcile;
pub mod starting;
pub mod systemd;

use config::{BackendKind, Config};
use driver::Driver;
use host::{HostBinding, HostFacts};
use kuryr_docker::{PluginServer, ServerConfig};
use kuryr_ovn::{OvnBackend, OvnSettings};
use kuryr_ovsdb::{parse_remotes, Client, TlsFiles};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot reach OVN Northbound at {remotes}: {source}. Check that ovsdb-server serves it there (`ovn-ctl start_northd`), or set [ovn] ovn_nb_connection (or --nb)")]
    Northbound {
        remotes: String,
        #[source]
        source: kuryr_ovsdb::Error,
    },
    #[error("local Open vSwitch: {0}")]
    Ovs(#[from] kuryr_binding::BindingError),
    #[error("serve the plugin API: {0}")]
    Serve(#[from] kuryr_docker::ServerError),
    #[error("{0}")]
    Other(String),
    #[error("Neutron: {0}")]
    Neutron(kuryr_neutron::NeutronError),
    #[error("the {0} backend is not available in this version: set [DEFAULT] backend = ovn")]
    Unsupported(&'static str),
}

/// Connects to Northbound as the OVN backend needs it.
pub async fn connect_northbound(config: &Config) -> Result<Client, DaemonError> {
    let remotes = config.ovn.nb_connection.clone();
    let nb_err = |source| DaemonError::Northbound {
        remotes: remotes.clone(),
        source,
    };
    let mut c = kuryr_ovsdb::Config::new(
        parse_remotes(&remotes).map_err(nb_err)?,
        "OVN_Northbound",
        kuryr_ovn::TABLES,
    );
    if let (Some(k), Some(cert), Some(ca)) = (
        &config.ovn.nb_private_key,
        &config.ovn.nb_certificate,
        &config.ovn.nb_ca_cert,
    ) {
        c.tls = Some(TlsFiles {
            private_key: k.clone(),
            certificate: cert.clone(),
            ca_cert: ca.clone(),
        });
    }
    c.connect_timeout = Duration::from_secs(3);
    Client::connect(c).await.map_err(nb_err)
}

/// Builds the OVN-mode driver: Northbound, the host binding and the MTU of the overlay.
pub async fn ovn_driver(config: &Config) -> Result<Driver<OvnBackend, HostBinding>, DaemonError> {
    let nb = connect_northbound(config).await?;
    let HostFacts {
        binding,
        mut host,
        mtu,
        vm,
    } = HostBinding::connect(config).await?;
    let mut parent_port = None;
    let mut macvlan_parent = None;
    if let (Some(vm), HostBinding::Macvlan(_)) = (&vm, &binding) {
        // Inside a VM with macvlan: the VM's own port carries the containers' addresses.
        let parent = resolve_parent(&nb, vm).map_err(DaemonError::Other)?;
        host = config.host.clone().unwrap_or_else(|| parent.clone());
        macvlan_parent = Some(parent);
    }
    if let (Some(vm), HostBinding::Nested(nested)) = (&vm, &binding) {
        // Inside a VM: every container port is a child of the VM's own port.
        let parent = resolve_parent(&nb, vm).map_err(DaemonError::Other)?;
        host = config.host.clone().unwrap_or_else(|| parent.clone());
        nested.ovs().set_host(&host);
        parent_port = Some(parent);
    }
    let mut settings = OvnSettings::new(&host);
    settings.parent_port = parent_port;
    settings.macvlan_parent = macvlan_parent;
    settings.nested_port_limit = config.nested.port_limit;
    settings.default_pool_v4 = config.ovn.default_pool_v4;
    settings.default_prefix_v4 = config.ovn.default_pool_v4_prefix;
    settings.default_pool_v6 = config.ovn.default_pool_v6;
    settings.default_prefix_v6 = config.ovn.default_pool_v6_prefix;
    settings.write_timeout = config.ovn.write_timeout;
    settings.reservation_journal = Some(run_file(&config.plugin_socket, "address-journal"));
    let bridge = match &binding {
        HostBinding::Nested(n) => n.ovs().bridge().to_string(),
        HostBinding::Macvlan(m) => m.link().0.to_string(),
        _ => config.ovs.integration_bridge.clone(),
    };
    tracing::info!(host = %host, mtu, bridge = %bridge, parent = ?settings.parent_port, macvlan_parent = ?settings.macvlan_parent, "OVN mode");
    // Routed networks leave through this host: its management port, forwarding and NAT.
    let gateway = match &binding {
        HostBinding::Ovs(ovs) => {
            let g = gateway::HostGateway::new(ovs.clone());
            g.ensure_base().await.map_err(|e| {
                DaemonError::Other(format!(
                    "set up this host's gateway for routed networks: {e} (kuryr needs root, iptables and ovs-vswitchd)"
                ))
            })?;
            Some(g)
        }
        // Inside a VM the hypervisor's kuryr is the gateway of routed networks.
        HostBinding::Nested(_) | HostBinding::Macvlan(_) | HostBinding::None(_) => None,
    };
    let backend = OvnBackend::new(nb, settings);
    if gateway.is_some() {
        // There before the first network, so `kuryr router list` shows what networks join.
        if let Err(e) = backend.ensure_router(kuryr_ovn::keys::DEFAULT_ROUTER).await {
            tracing::warn!(error = %e, "could not create the default router; the first routed network will");
        }
    }
    let driver = Driver::new(backend, binding, config, mtu);
    Ok(match gateway {
        Some(g) => driver.with_gateway(g),
        None => driver,
    })
}

/// Inside a VM: the VM's own logical port, as recorded or configured, else the one plain
/// port whose MAC is the VM NIC's; checked to exist and be able to carry containers.
pub fn resolve_parent(nb: &Client, vm: &host::VmFacts) -> Result<String, String> {
    let rep = nb.replica();
    let parent = match &vm.parent_port {
        Some(p) => p.clone(),
        None => {
            let mac = vm.link_mac.as_deref().ok_or_else(|| {
                format!(
                    "the VM's NIC {} has no MAC in Open vSwitch yet: give the VM's port with [binding] parent_port",
                    vm.link_iface
                )
            })?;
            let found = kuryr_ovn::nested::parent_by_mac(&rep, mac).map_err(|e| e.to_string())?;
            tracing::info!(parent = %found, nic = %vm.link_iface, %mac, "found the VM's port by its NIC's MAC");
            found
        }
    };
    kuryr_ovn::nested::check_parent(&rep, &parent).map_err(|e| e.to_string())?;
    Ok(parent)
}

/// Inside a VM in the Neutron mode with the vlan driver: the trunk of the VM's port (as
/// configured or recorded, else the one port with the NIC's MAC).
pub async fn neutron_trunk(
    client: &kuryr_neutron::NeutronClient,
    vm: &host::VmFacts,
    config: &Config,
) -> Result<kuryr_neutron::Trunk, kuryr_neutron::NeutronError> {
    kuryr_neutron::Trunk::find(
        client,
        vm.parent_port.as_deref(),
        &vm.link_iface,
        vm.link_mac.as_deref(),
        config.nested.port_limit,
    )
    .await
}

/// Inside a VM in the Neutron mode with the macvlan driver: the VM's port, found the same way.
pub async fn neutron_vm_port(
    client: &kuryr_neutron::NeutronClient,
    vm: &host::VmFacts,
) -> Result<kuryr_neutron::VmPort, kuryr_neutron::NeutronError> {
    kuryr_neutron::VmPort::find(
        client,
        vm.parent_port.as_deref(),
        &vm.link_iface,
        vm.link_mac.as_deref(),
    )
    .await
}

/// The Neutron client as `[neutron]` describes it.
pub fn neutron_client(
    config: &Config,
) -> Result<kuryr_neutron::NeutronClient, kuryr_neutron::NeutronError> {
    use kuryr_neutron::{AuthSettings, Credentials, HttpSettings, NeutronError};
    let n = &config.neutron;
    let need = |v: &Option<String>, key: &str| {
        v.clone().ok_or_else(|| {
            NeutronError::Config(format!(
                "[neutron] {key} is needed with auth_type = {}",
                n.auth_type
            ))
        })
    };
    let credentials = match n.auth_type.as_str() {
        "none" | "noauth" => Credentials::None,
        "v3applicationcredential" => Credentials::ApplicationCredential {
            // Keystone finds the credential by id, or by name among the user's.
            id: match (&n.application_credential_id, &n.application_credential_name, &n.username) {
                (None, None, _) => return Err(NeutronError::Config(
                    "[neutron] application_credential_id (or application_credential_name with username) is needed with auth_type = v3applicationcredential".into(),
                )),
                (None, Some(_), None) => return Err(NeutronError::Config(
                    "[neutron] username is needed with application_credential_name (or give application_credential_id instead)".into(),
                )),
                (id, _, _) => id.clone(),
            },
            name: n.application_credential_name.clone(),
            username: n.username.clone(),
            user_domain_name: n.user_domain_name.clone(),
            secret: need(
                &n.application_credential_secret,
                "application_credential_secret",
            )?,
        },
        _ => Credentials::Password {
            username: need(&n.username, "username")?,
            password: need(&n.password, "password")?,
            user_domain_name: n.user_domain_name.clone(),
            project_name: need(&n.project_name, "project_name")?,
            project_domain_name: n.project_domain_name.clone(),
        },
    };
    let auth = AuthSettings {
        auth_url: match credentials {
            Credentials::None => None,
            _ => Some(need(&n.auth_url, "auth_url")?),
        },
        credentials,
        endpoint: n.endpoint.clone(),
        region_name: n.region_name.clone(),
        interface: n.endpoint_type.clone(),
    };
    let http = HttpSettings {
        ca_file: n.cafile.clone(),
        insecure: n.insecure,
        timeout: n.timeout,
    };
    kuryr_neutron::NeutronClient::new(auth, http)
}

/// Builds the Neutron-mode driver: the Neutron client, the local OVS, this host's name.
pub async fn neutron_driver(
    config: &Config,
) -> Result<Driver<kuryr_neutron::NeutronBackend, HostBinding>, DaemonError> {
    let client = neutron_client(config).map_err(DaemonError::Neutron)?;
    // Fail at start, not at the first docker run: Neutron must answer and have tags.
    match client.has_extension("standard-attr-tag").await {
        Ok(true) => {}
        Ok(false) => return Err(DaemonError::Neutron(kuryr_neutron::NeutronError::Config(
            "Neutron lacks the standard-attr-tag extension, which kuryr needs to find its networks"
                .into(),
        ))),
        Err(e) => return Err(DaemonError::Neutron(e)),
    }
    let HostFacts {
        binding, mtu, vm, ..
    } = HostBinding::connect(config).await?;
    // kuryr-libnetwork binds ports to the host name (not the OVS system-id); ML2/OVN then
    // requests the chassis of that host name.
    let host = match &config.host {
        Some(h) => h.clone(),
        None => hostname(),
    };
    let mut trunk = None;
    if let (Some(vm), HostBinding::Nested(nested)) = (&vm, &binding) {
        // Inside a VM: every container port is a subport of the VM port's trunk.
        let t = neutron_trunk(&client, vm, config)
            .await
            .map_err(DaemonError::Neutron)?;
        tracing::info!(trunk = %t.id, parent = %t.parent, nic = %vm.link_iface, "inside a VM: containers' ports are subports of the VM's trunk");
        nested.ovs().set_host(&t.parent);
        trunk = Some(t);
    }
    let mut vm_port = None;
    if let (Some(vm), HostBinding::Macvlan(_)) = (&vm, &binding) {
        // Inside a VM with macvlan: the VM's port carries the containers' addresses.
        let p = neutron_vm_port(&client, vm)
            .await
            .map_err(DaemonError::Neutron)?;
        tracing::info!(port = %p.id, network = %p.network_id, nic = %vm.link_iface, "inside a VM: containers on macvlan devices, their addresses allowed on the VM's port");
        vm_port = Some(p);
    }
    let n = &config.neutron;
    let mut settings = kuryr_neutron::NeutronSettings::new(&host);
    settings.pool_prefix = n.subnetpool_name_prefix.clone();
    settings.enable_dhcp = n.enable_dhcp;
    settings.default_pool_v4 = n.default_subnetpool_v4.clone();
    settings.default_pool_v6 = n.default_subnetpool_v6.clone();
    settings.vif_plugging_timeout = n.vif_plugging_timeout;
    settings.vif_plugging_is_fatal = n.vif_plugging_is_fatal;
    tracing::info!(
        host = %host,
        neutron = n.endpoint.as_deref().unwrap_or("the Keystone catalog's network endpoint"),
        auth = %n.auth_type,
        "Neutron mode"
    );
    let mut backend = kuryr_neutron::NeutronBackend::new(std::sync::Arc::new(client), settings)
        .with_network_journal(run_file(&config.plugin_socket, "network-journal"));
    if let Some(t) = trunk {
        backend = backend.with_trunk(t);
    }
    if let Some(p) = vm_port {
        backend = backend.with_vm_port(p);
    }
    let pool = &config.vif_pool;
    if pool.enabled() {
        backend = backend.with_pools(kuryr_neutron::PoolSettings {
            min: pool.min,
            max: pool.max,
            batch: pool.batch,
            update_frequency: pool.update_frequency,
            journal: Some(run_file(&config.plugin_socket, "pool-journal")),
        });
        match backend.recover_pools().await {
            Ok(n) => tracing::info!(
                free_ports = n,
                min = pool.min,
                max = pool.max,
                batch = pool.batch,
                "port pools on ([vif_pool])"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not find the pool ports of the previous run; they are deleted with their network")
            }
        }
        if let Some(refills) = backend.pool_refills() {
            tokio::spawn(refills);
        }
    }
    Ok(Driver::new(backend, binding, config, mtu))
}

/// Where a daemon notes what it handed out to Docker and Docker has not settled yet:
/// `/run/kuryr/<socket name>.<what>` (the Neutron pools' `pool-journal` and network creates'
/// `network-journal`, the OVN mode's `address-journal`), one per daemon (several may serve one host under different driver
/// names).
fn run_file(socket: &std::path::Path, what: &str) -> std::path::PathBuf {
    let name = socket
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kuryr.sock".into());
    std::path::Path::new("/run/kuryr").join(format!("{name}.{what}"))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// What a start does with the driver before Docker's calls reach it: the background veth
/// deletion, the reconciliation with the previous run, the routes of routed networks.
async fn prepare<Bk: kuryr_core::Backend>(
    driver: Driver<Bk, HostBinding>,
) -> Result<Arc<Driver<Bk, HostBinding>>, DaemonError> {
    driver.binding.delete_veths_in_background()?;
    let report = reconcile::reconcile(&driver.backend, &driver.binding).await;
    kuryr_metrics::reconciled(
        report.errors.is_empty(),
        report.removed.len() + report.interrupted.len(),
        report.missing_host_side.len(),
        report.kept_kuryr_libnetwork.len(),
    );
    tracing::info!(
        removed = report.removed.len(),
        swept = report.swept.len(),
        interrupted = report.interrupted.len(),
        missing = report.missing_host_side.len(),
        kept_kuryr_libnetwork = report.kept_kuryr_libnetwork.len(),
        "reconciled with the previous run"
    );
    let routed = driver.restore_routes().await;
    if routed > 0 {
        tracing::info!(networks = routed, "routed networks on this host");
    }
    Ok(Arc::new(driver))
}

/// Binds the plugin socket (or adopts the one the service manager passed) and the TCP
/// listener, and tells the service manager kuryr is ready.
async fn bind(config: &Config) -> Result<PluginServer, DaemonError> {
    let mut server_config = ServerConfig::unix(&config.plugin_socket);
    if let Some(addr) = config.kuryr_uri {
        server_config = server_config.with_tcp(addr);
        server_config.tls = config.tls.clone();
    }
    let server = match systemd::listen_socket().map_err(DaemonError::Other)? {
        Some(listener) => {
            tracing::info!("serving the socket the service manager passed (socket activation)");
            PluginServer::adopt(listener, &server_config).await?
        }
        None => PluginServer::bind(&server_config).await?,
    };
    match systemd::notify("READY=1\nSTATUS=serving Docker's plugin API") {
        Ok(true) => tracing::info!("told the service manager kuryr is ready"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not notify the service manager (NOTIFY_SOCKET)")
        }
    }
    Ok(server)
}

/// The tasks that run beside a built driver: the management port's watchdog and the
/// metrics endpoint (on a listener bound earlier, so a taken port fails the start).
fn spawn_helpers<Bk: kuryr_core::Backend>(
    driver: &Arc<Driver<Bk, HostBinding>>,
    metrics: Option<tokio::net::TcpListener>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    {
        let driver = driver.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECLAIM_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                driver.backend.reclaim().await;
            }
        }));
    }
    // ovs-vswitchd re-creates the management port without its address when it restarts,
    // and the kernel drops the routes through it: put them back within seconds.
    if let Some(g) = driver.host_gateway() {
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(GATEWAY_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match g.repair_if_needed().await {
                    Ok(true) => tracing::info!("management port and its routes set up again"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "could not repair the management port"),
                }
            }
        }));
    }
    if let Some(listener) = metrics {
        let refresh = ipam_refresh(driver.clone());
        let mut stop = stop;
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            if let Err(e) = kuryr_metrics::server::serve(listener, refresh, stopped).await {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        }));
    }
    tasks
}

/// Builds the driver (retried in the background with `serve_while_connecting`), then serves
/// Docker until `shutdown` completes.
async fn serve<Bk, F, Fut>(
    config: &Config,
    connecting: String,
    build: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError>
where
    Bk: kuryr_core::Backend,
    F: Fn(Config) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Driver<Bk, HostBinding>, DaemonError>> + Send,
{
    // Bound before READY=1: a taken metrics port fails the start, not the first scrape.
    let metrics = match config.metrics_address {
        Some(addr) => Some(
            kuryr_metrics::server::bind(addr)
                .await
                .map_err(DaemonError::Other)?,
        ),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let serving = "serving Docker's network and IPAM plugin API";
    let socket = config.plugin_socket.display().to_string();
    if !config.serve_while_connecting {
        let driver = prepare(build(config.clone()).await?).await?;
        let server = bind(config).await?;
        tracing::info!(socket = %socket, tcp = ?config.kuryr_uri, tls = config.tls.is_some(), "{serving}");
        let tasks = spawn_helpers(&driver, metrics, stop_rx);
        let served = server.serve(driver, shutdown).await;
        tasks.iter().for_each(|t| t.abort());
        return Ok(served?);
    }
    // The socket first: calls wait for (or are refused until) the driver is built.
    let starting = Arc::new(starting::Starting::new(
        driver::network_capabilities(config.capability_scope, config.connectivity_scope),
        driver::IPAM_CAPABILITIES,
        kuryr_docker::AddressSpaces {
            local: config.local_default_address_space.clone(),
            global: config.global_default_address_space.clone(),
        },
        connecting,
    ));
    let server = bind(config).await?;
    tracing::info!(socket = %socket, tcp = ?config.kuryr_uri, "answering Docker while connecting to the control plane ([DEFAULT] serve_while_connecting)");
    let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let builder = {
        let (starting, tasks, config) = (starting.clone(), tasks.clone(), config.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            let mut metrics = metrics;
            loop {
                let built = match build(config.clone()).await {
                    Ok(d) => prepare(d).await,
                    Err(e) => Err(e),
                };
                match built {
                    Ok(driver) => {
                        let helpers = spawn_helpers(&driver, metrics.take(), stop_rx.clone());
                        tasks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(helpers);
                        starting.ready(driver);
                        tracing::info!(socket = %socket, tcp = ?config.kuryr_uri, tls = config.tls.is_some(), "{serving}");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?wait, "not ready to serve Docker yet");
                        starting.set_status(e.to_string());
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    };
    let served = server.serve(starting, shutdown).await;
    builder.abort();
    for t in tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        t.abort();
    }
    Ok(served?)
}

/// How often the daemon gives back what Docker will never claim (see `Backend::reclaim`).
const RECLAIM_CHECK: Duration = Duration::from_secs(5);

/// How often the daemon checks that the management port still holds its address.
const GATEWAY_CHECK: Duration = Duration::from_secs(5);

/// Reads the IPAM pools from the control plane into the metrics before each scrape.
fn ipam_refresh<Bk: kuryr_core::Backend>(
    driver: Arc<Driver<Bk, HostBinding>>,
) -> kuryr_metrics::server::Refresh {
    Arc::new(move || {
        let driver = driver.clone();
        Box::pin(async move {
            match driver.backend.ipam_usage().await {
                Ok(pools) => kuryr_metrics::set_ipam(&pools),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the IPAM pools for the metrics: serving their previous values")
                }
            }
        })
    })
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let ovs = &config.ovs.ovsdb_connection;
    if config.backend == BackendKind::Neutron {
        let neutron = config
            .neutron
            .endpoint
            .as_deref()
            .unwrap_or("the Keystone catalog's network endpoint");
        return serve(
            &config,
            format!("connecting to Neutron at {neutron} and to Open vSwitch at {ovs}"),
            |c: Config| async move { neutron_driver(&c).await },
            shutdown,
        )
        .await;
    }
    serve(
        &config,
        format!(
            "connecting to OVN Northbound at {} and to Open vSwitch at {ovs}",
            config.ovn.nb_connection
        ),
        |c: Config| async move { ovn_driver(&c).await },
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_error(neutron: &str) -> String {
        let c = Config::parse(&format!("[neutron]\n{neutron}"), "kuryr.conf").expect("parse");
        match neutron_client(&c) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn application_credentials_need_an_id_or_a_name_with_its_user() {
        let base = "auth_type = v3applicationcredential\nauth_url = http://k:5000/v3\napplication_credential_secret = s3cret\n";
        let e = client_error(base);
        assert!(e.contains("application_credential_id"), "{e}");
        let e = client_error(&format!("{base}application_credential_name = kuryr\n"));
        assert!(e.contains("[neutron] username"), "{e}");
        assert_eq!(
            client_error(&format!(
                "{base}application_credential_name = kuryr\nusername = u\n"
            )),
            ""
        );
        assert_eq!(
            client_error(&format!("{base}application_credential_id = abc\n")),
            ""
        );
        let e = client_error(
            "auth_type = v3applicationcredential\nauth_url = http://k:5000/v3\napplication_credential_id = abc\n",
        );
        assert!(e.contains("application_credential_secret"), "{e}");
    }
}
