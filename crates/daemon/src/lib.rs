//! The kuryr daemon: reads `kuryr.conf`, connects to the control plane and the local Open
//! vSwitch, reconciles what a previous run left, and serves Docker's plugin API.
pub mod config;
pub mod driver;
pub mod host;
pub mod reconcile;

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
    let HostFacts { binding, host, mtu } = HostBinding::connect(config).await?;
    let mut settings = OvnSettings::new(&host);
    settings.default_pool_v4 = config.ovn.default_pool_v4;
    settings.default_prefix_v4 = config.ovn.default_pool_v4_prefix;
    settings.default_pool_v6 = config.ovn.default_pool_v6;
    settings.default_prefix_v6 = config.ovn.default_pool_v6_prefix;
    settings.write_timeout = config.ovn.write_timeout;
    tracing::info!(host = %host, mtu, bridge = %config.ovs.integration_bridge, "OVN mode");
    Ok(Driver::new(
        OvnBackend::new(nb, settings),
        binding,
        config,
        mtu,
    ))
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if config.backend == BackendKind::Neutron {
        return Err(DaemonError::Unsupported("neutron"));
    }
    let driver = ovn_driver(&config).await?;
    let report = reconcile::reconcile(&driver.backend, &driver.binding).await;
    tracing::info!(
        removed = report.removed.len(),
        missing = report.missing_host_side.len(),
        "reconciled with the previous run"
    );
    let mut server_config = ServerConfig::unix(&config.plugin_socket);
    if let Some(addr) = config.kuryr_uri {
        server_config = server_config.with_tcp(addr);
    }
    let server = PluginServer::bind(&server_config).await?;
    tracing::info!(socket = %config.plugin_socket.display(), tcp = ?config.kuryr_uri, "serving Docker's network and IPAM plugin API");
    server.serve(Arc::new(driver), shutdown).await?;
    Ok(())
}
