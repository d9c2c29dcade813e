//! What the Northbound commands (`network`, `endpoint`, `container`) share: where Northbound
//! and the local Open vSwitch are (kuryr.conf, overridden by flags), and this host's name.
use anyhow::Context;
use clap::Args;
use kuryr_daemon::config::Config;
use kuryr_ovn::{OvnBackend, OvnSettings};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Configuration file (default /etc/kuryr/kuryr.conf when it exists).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// OVN Northbound remote(s), comma-separated; overrides [ovn] ovn_nb_connection.
    #[arg(long, value_name = "URL", global = true)]
    pub nb: Option<String>,
    /// Local Open_vSwitch database; overrides [ovs] ovsdb_connection.
    #[arg(long, value_name = "URL", global = true)]
    pub ovsdb: Option<String>,
    /// Integration bridge; overrides [ovs] integration_bridge.
    #[arg(long, global = true)]
    pub bridge: Option<String>,
    /// This host's name in Northbound (default: [DEFAULT] host, else the OVS system-id).
    #[arg(long, global = true)]
    pub host: Option<String>,
}

impl Conn {
    /// kuryr.conf with the flags applied.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config =
            Config::load_with_env(self.config.as_deref(), kuryr_daemon::config::process_env())?;
        if let Some(nb) = &self.nb {
            kuryr_daemon::config::check_remotes(nb)
                .map_err(anyhow::Error::msg)
                .context("--nb")?;
            config.ovn.nb_connection = nb.clone();
        }
        if let Some(ovsdb) = &self.ovsdb {
            kuryr_daemon::config::check_remotes(ovsdb)
                .map_err(anyhow::Error::msg)
                .context("--ovsdb")?;
            config.ovs.ovsdb_connection = ovsdb.clone();
        }
        if let Some(b) = &self.bridge {
            config.ovs.integration_bridge = b.clone();
        }
        if let Some(h) = &self.host {
            config.host = Some(h.clone());
        }
        Ok(config)
    }

    /// The OVN backend over Northbound, with this host's name. Inside a VM (`kuryr host
    /// init --underlay`) its endpoints are children of the VM's port, as the daemon's are.
    pub async fn backend(&self, config: &Config) -> anyhow::Result<OvnBackend> {
        use kuryr_daemon::config::{BindingDriver, HostBindingKind};
        use kuryr_daemon::host::HostBinding;
        let nb = kuryr_daemon::connect_northbound(config).await?;
        // What `kuryr host init` recorded; nothing when the local Open vSwitch does not
        // answer (commands that only talk to Northbound work there).
        let settings = kuryr_binding::host_settings(&config.ovs.ovsdb_connection)
            .await
            .unwrap_or_default();
        let parent = if config.host_binding == HostBindingKind::Ovs
            && HostBinding::driver(config, &settings) == BindingDriver::Vlan
        {
            let facts = HostBinding::connect_nested(config, &settings)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match &facts.vm {
                Some(vm) => {
                    Some(kuryr_daemon::resolve_parent(&nb, vm).map_err(anyhow::Error::msg)?)
                }
                None => None,
            }
        } else {
            None
        };
        let host = config
            .host
            .clone()
            .or_else(|| parent.clone())
            .or_else(|| settings.get("system-id").cloned())
            .unwrap_or_else(hostname);
        let mut settings = OvnSettings::new(&host);
        settings.write_timeout = config.ovn.write_timeout;
        settings.parent_port = parent;
        settings.nested_port_limit = config.nested.port_limit;
        Ok(OvnBackend::new(nb, settings))
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// The runtime one command runs its Northbound and OVSDB work on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}
