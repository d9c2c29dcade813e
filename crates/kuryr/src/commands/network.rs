//! `kuryr network`: logical networks in Northbound (the `ovn-container net-*` set).
use super::conn::{runtime, Conn};
use crate::output::{table, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use ipnet::IpNet;
use kuryr_ovn::{LogicalNetwork, NamedNetworkSpec, RouterChoice};
use serde::Serialize;
use std::net::IpAddr;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr network create ls0 192.168.1.0/24
  kuryr network create ls1 10.20.0.0/24 --gateway 10.20.0.254 --ipv6 fd00:20::/64
  kuryr network list
  kuryr network show ls0 --format json
  kuryr network delete ls0
  docker network create -d kuryr --ipam-driver kuryr --subnet 192.168.1.0/24 -o kuryr.net.name=ls0 ls0")]
pub struct Network {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a logical network (an OVN Logical_Switch with its address pool).
    #[command(
        after_help = "Examples:\n  kuryr network create ls0 192.168.1.0/24\n  kuryr network create ls1 10.20.0.0/24 --gateway 10.20.0.254 --ipv6 fd00:20::/64"
    )]
    Create {
        /// The network's name (the Logical_Switch name; Docker attaches with -o kuryr.net.name=NAME).
        name: String,
        /// IPv4 (or IPv6) subnet, e.g. 192.168.1.0/24.
        cidr: IpNet,
        /// Gateway address (default: the subnet's first address, or the pool's existing gateway).
        #[arg(long, value_name = "IP")]
        gateway: Option<IpAddr>,
        /// Also an IPv6 subnet (dual stack).
        #[arg(long, value_name = "CIDR")]
        ipv6: Option<IpNet>,
        /// The router whose port is the gateway (default kuryr-router; `none`: no router).
        #[arg(long, value_name = "NAME", conflicts_with = "internal")]
        router: Option<String>,
        /// No router: no gateway, no egress, no published ports.
        #[arg(long)]
        internal: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the networks kuryr knows (created here or by Docker).
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  kuryr network list\n  kuryr network list --format json"
    )]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one network and its endpoints.
    #[command(
        after_help = "Examples:\n  kuryr network show ls0\n  kuryr network show ls0 --format json"
    )]
    Show {
        /// Network name or Logical_Switch uuid.
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a network created with `kuryr network create`; refuses while it has endpoints.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  kuryr network delete ls0\n  kuryr network delete ls0 --force   # deletes its endpoints (and their containers) first"
    )]
    Delete {
        name: String,
        /// Delete the network's endpoints first (and network containers left without one).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Serialize)]
struct NetworkView {
    name: String,
    uuid: String,
    created_by: &'static str,
    subnet_v4: Option<String>,
    gateway_v4: Option<String>,
    subnet_v6: Option<String>,
    gateway_v6: Option<String>,
    docker_networks: Vec<String>,
    endpoints: Vec<String>,
}

fn view(n: &LogicalNetwork) -> NetworkView {
    let s = |v: Option<String>| v;
    NetworkView {
        name: n.name.clone(),
        uuid: n.uuid.to_string(),
        created_by: if n.cli_id.is_some() {
            "kuryr"
        } else {
            "docker"
        },
        subnet_v4: s(n.subnet_v4.map(|x| x.to_string())),
        gateway_v4: s(n.gateway_v4.map(|x| x.to_string())),
        subnet_v6: s(n.subnet_v6.map(|x| x.to_string())),
        gateway_v6: s(n.gateway_v6.map(|x| x.to_string())),
        docker_networks: n.docker_networks.iter().map(|(id, _)| id.clone()).collect(),
        endpoints: n.ports.clone(),
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_string())
}

fn rows(nets: &[NetworkView]) -> Vec<Vec<String>> {
    nets.iter()
        .map(|n| {
            let subnets = [&n.subnet_v4, &n.subnet_v6]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            let gws = [&n.gateway_v4, &n.gateway_v6]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            vec![
                n.name.clone(),
                n.uuid.clone(),
                if subnets.is_empty() {
                    "-".into()
                } else {
                    subnets
                },
                if gws.is_empty() { "-".into() } else { gws },
                n.endpoints.len().to_string(),
                n.created_by.to_string(),
            ]
        })
        .collect()
}

const HEADER: &[&str] = &[
    "NAME",
    "UUID",
    "SUBNET",
    "GATEWAY",
    "ENDPOINTS",
    "CREATED BY",
];

impl Network {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let config = self.conn.config()?;
        let rt = runtime()?;
        rt.block_on(async move {
            let backend = self.conn.backend(&config).await?;
            match self.cmd {
                Cmd::Create {
                    name,
                    cidr,
                    gateway,
                    ipv6,
                    router,
                    internal,
                    format,
                } => {
                    if let Some(v6) = ipv6 {
                        if !v6.addr().is_ipv6() {
                            anyhow::bail!("--ipv6 {v6}: not an IPv6 subnet");
                        }
                    }
                    let (v4, v6) = if cidr.addr().is_ipv6() {
                        if ipv6.is_some() {
                            anyhow::bail!("network {name}: CIDR {cidr} is IPv6 and --ipv6 is given too: give an IPv4 CIDR first");
                        }
                        (None, Some((cidr, gateway)))
                    } else {
                        (Some((cidr, gateway)), ipv6.map(|c| (c, None)))
                    };
                    if let Some(gw) = gateway {
                        if gw.is_ipv6() != cidr.addr().is_ipv6() || !cidr.contains(&gw) {
                            anyhow::bail!("--gateway {gw} is not inside {cidr}");
                        }
                    }
                    let router = RouterChoice::from_option(router.as_deref(), internal)?;
                    let net = backend
                        .create_named_network(&NamedNetworkSpec {
                            name: name.clone(),
                            ipv4: v4,
                            ipv6: v6,
                            router,
                        })
                        .await
                        .with_context(|| format!("create network {name}"))?;
                    match format {
                        Format::Table => println!("{}", net.uuid),
                        Format::Json => println!("{}", serde_json::to_string(&view(&net))?),
                    }
                }
                Cmd::List { format } => {
                    let nets: Vec<NetworkView> =
                        backend.logical_networks().iter().map(view).collect();
                    match format {
                        Format::Table => print!("{}", table(HEADER, &rows(&nets))),
                        Format::Json => println!("{}", serde_json::to_string(&nets)?),
                    }
                }
                Cmd::Show { name, format } => {
                    let net = view(&backend.logical_network(&name)?);
                    match format {
                        Format::Json => println!("{}", serde_json::to_string(&net)?),
                        Format::Table => {
                            let kv = vec![
                                vec!["name".into(), net.name.clone()],
                                vec!["uuid".into(), net.uuid.clone()],
                                vec!["created by".into(), net.created_by.into()],
                                vec!["subnet (IPv4)".into(), or_dash(&net.subnet_v4)],
                                vec!["gateway (IPv4)".into(), or_dash(&net.gateway_v4)],
                                vec!["subnet (IPv6)".into(), or_dash(&net.subnet_v6)],
                                vec!["gateway (IPv6)".into(), or_dash(&net.gateway_v6)],
                                vec!["docker networks".into(), net.docker_networks.join(",")],
                                vec!["endpoints".into(), net.endpoints.join(",")],
                            ];
                            print!("{}", table(&["FIELD", "VALUE"], &kv));
                        }
                    }
                }
                Cmd::Delete { name, force } => {
                    let net = backend.logical_network(&name)?;
                    if force && net.cli_id.is_some() {
                        let binding = super::container::Host::new(&config);
                        for port in &net.ports {
                            super::endpoint::delete(&backend, &binding, port)
                                .await
                                .with_context(|| format!("network {name} --force"))?;
                        }
                    }
                    backend
                        .delete_named_network(&name)
                        .await
                        .with_context(|| format!("delete network {name}"))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}
