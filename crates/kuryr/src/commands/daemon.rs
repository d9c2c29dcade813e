//! `kuryr daemon`: serves Docker's network and IPAM plugin API.
use anyhow::Context;
use clap::Args;
use kuryr_daemon::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kuryr daemon\n  kuryr daemon --config /etc/kuryr/kuryr.conf\n  kuryr daemon --nb tcp:10.0.0.5:6641 --bridge br-int"
)]
pub struct Daemon {
    /// Configuration file (default /etc/kuryr/kuryr.conf when it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// OVN Northbound remote(s), comma-separated; overrides [ovn] ovn_nb_connection.
    #[arg(long, value_name = "URL")]
    nb: Option<String>,
    /// Local Open_vSwitch database; overrides [ovs] ovsdb_connection.
    #[arg(long, value_name = "URL")]
    ovsdb: Option<String>,
    /// Integration bridge; overrides [ovs] integration_bridge.
    #[arg(long)]
    bridge: Option<String>,
    /// Plugin socket; overrides [DEFAULT] plugin_socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// This host's name in Northbound; overrides [DEFAULT] host (default: the OVS system-id).
    #[arg(long)]
    host: Option<String>,
    /// Host binding: ovs (a veth on the integration bridge) or none (no host side, for
    /// measuring the control plane alone); overrides [binding] host_binding.
    #[arg(long, value_name = "KIND", value_parser = ["ovs", "none"])]
    binding: Option<String>,
    /// Log filter (tracing syntax, e.g. info or kuryr=debug); RUST_LOG also works.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log lines as text or as JSON objects; overrides [DEFAULT] use_json.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9779); overrides
    /// [DEFAULT] metrics_address.
    #[arg(long, value_name = "ADDR")]
    metrics_address: Option<String>,
}

impl Daemon {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let mut config =
            Config::load_with_env(self.config.as_deref(), kuryr_daemon::config::process_env())?;
        if let Some(nb) = self.nb {
            kuryr_ovsdb_check(&nb).context("--nb")?;
            config.ovn.nb_connection = nb;
        }
        if let Some(ovsdb) = self.ovsdb {
            kuryr_ovsdb_check(&ovsdb).context("--ovsdb")?;
            config.ovs.ovsdb_connection = ovsdb;
        }
        if let Some(b) = self.bridge {
            config.ovs.integration_bridge = b;
        }
        if let Some(s) = self.socket {
            config.plugin_socket = s;
        }
        match self.binding.as_deref() {
            Some("none") => config.host_binding = kuryr_daemon::config::HostBindingKind::None,
            Some(_) => config.host_binding = kuryr_daemon::config::HostBindingKind::Ovs,
            None => {}
        }
        if let Some(h) = self.host {
            config.host = Some(h);
        }
        if let Some(a) = self.metrics_address {
            config.metrics_address = Some(
                kuryr_daemon::config::parse_metrics_address(&a)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("--metrics-address {a:?}"))?,
            );
        }
        kuryr_metrics::build_info(&kuryr_metrics::BuildInfo {
            version: crate::commands::version::VERSION.into(),
            commit: crate::commands::version::COMMIT.into(),
            target: env!("KURYR_TARGET").into(),
            rustc: env!("KURYR_RUSTC").into(),
            mode: match config.backend {
                kuryr_daemon::config::BackendKind::Ovn => "ovn",
                kuryr_daemon::config::BackendKind::Neutron => "neutron",
            }
            .into(),
        });
        let default = if config.debug { "debug" } else { "info" };
        let filter = self
            .log_level
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| default.to_string());
        let filter = tracing_subscriber::EnvFilter::try_new(&filter)
            .with_context(|| format!("--log-level {filter:?}"))?;
        let json = match self.log_format.as_deref() {
            Some(f) => f == "json",
            None => config.use_json,
        };
        let log_file = crate::logging::init(filter, json, config.log_file.as_deref())
            .with_context(|| {
                format!(
                    "open the log file {} ([DEFAULT] log_file)",
                    config
                        .log_file
                        .as_deref()
                        .unwrap_or(std::path::Path::new(""))
                        .display()
                )
            })?;

        let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
        runtime.block_on(async move {
            // logrotate moves the file and sends SIGHUP: write to a fresh one from then on.
            if let Some(lf) = log_file {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(mut hup) => {
                        tokio::spawn(async move {
                            while hup.recv().await.is_some() {
                                match lf.reopen() {
                                    Ok(()) => tracing::info!(file = %lf.path().display(), "log file reopened"),
                                    Err(e) => eprintln!("kuryr: reopen the log file {}: {e}", lf.path().display()),
                                }
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "no SIGHUP handler: the log file is not reopened for logrotate"),
                }
            }
            let shutdown = async {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => return std::future::pending().await,
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("shutting down");
            };
            kuryr_daemon::run(config, shutdown).await
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

fn kuryr_ovsdb_check(remotes: &str) -> anyhow::Result<()> {
    kuryr_daemon::config::check_remotes(remotes).map_err(anyhow::Error::msg)
}
