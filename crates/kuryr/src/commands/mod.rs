//! One module per subcommand; each is a clap struct with an `exec()`.
pub mod bench;
pub mod completions;
pub mod config;
pub mod conn;
pub mod container;
pub mod daemon;
pub mod doctor;
pub mod endpoint;
pub mod host;
pub mod man;
pub mod network;
pub mod router;
pub mod version;

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Measure a network+IPAM plugin: protocol level, scale, and end to end with Docker.
    Bench(bench::Bench),
    /// Check a network+IPAM plugin's answers against what Docker accepts.
    Conformance(bench::Conformance),
    /// Serve Docker's network and IPAM plugin API (the driver).
    Daemon(daemon::Daemon),
    /// Print the version and the git commit this binary was built from.
    Version(version::Version),
    /// Logical networks in OVN Northbound: create, list, show, delete.
    Network(network::Network),
    /// Logical routers: the networks' gateways, egress and published ports (OVN mode).
    Router(router::Router),
    /// Endpoints (logical ports with addresses) on those networks.
    Endpoint(endpoint::Endpoint),
    /// Network containers holding endpoints, for `docker run --net=container:ID`.
    Container(container::Container),
    /// Make this host an OVN chassis: integration bridge, tunnel endpoint, encapsulation.
    Host(host::Host),
    /// Print a shell completion script.
    Completions(completions::Completions),
    /// Write the man pages (kuryr.1, kuryr-COMMAND.1) into a folder.
    Man(man::Man),
    /// Write a node's kuryr.conf and Docker plugin spec, or check a kuryr.conf.
    Config(config::ConfigCmd),
    /// Check Docker, the plugin, OVS, OVN (or Neutron) and the tunnel endpoint; say what to fix.
    Doctor(doctor::Doctor),
}

impl Command {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Bench(cmd) => cmd.exec(),
            Command::Conformance(cmd) => cmd.exec(),
            Command::Daemon(cmd) => cmd.exec(),
            Command::Version(cmd) => cmd.exec(),
            Command::Network(cmd) => cmd.exec(),
            Command::Router(cmd) => cmd.exec(),
            Command::Endpoint(cmd) => cmd.exec(),
            Command::Container(cmd) => cmd.exec(),
            Command::Host(cmd) => cmd.exec(),
            Command::Completions(cmd) => cmd.exec(),
            Command::Man(cmd) => cmd.exec(),
            Command::Config(cmd) => cmd.exec(),
            Command::Doctor(cmd) => cmd.exec(),
        }
    }
}
