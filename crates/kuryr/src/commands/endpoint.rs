//! `kuryr endpoint`: logical ports with addresses from their network's pool (the
//! `ovn-container endpoint-*` set).
use super::conn::{runtime, Conn};
use super::container::{remove_if_empty, unplug, Host};
use crate::output::{table, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use kuryr_ovn::{OvnBackend, PortInfo};
use serde::Serialize;
use std::net::IpAddr;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr endpoint create ls0 ls0p0
  kuryr endpoint create ls0 web --ip 192.168.1.50 --mac 0a:58:c0:a8:01:32
  kuryr endpoint list --network ls0
  kuryr endpoint delete ls0p0")]
pub struct Endpoint {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an endpoint (a Logical_Switch_Port) with an address and MAC; prints name, IP, MAC.
    #[command(
        after_help = "Examples:\n  kuryr endpoint create ls0 ls0p0\n  kuryr endpoint create ls0 --ip 192.168.1.50"
    )]
    Create {
        /// Network name (or Logical_Switch uuid).
        network: String,
        /// Endpoint name (default: a generated id); letters, digits, '_' and '-'.
        name: Option<String>,
        /// This address instead of the lowest free one.
        #[arg(long)]
        ip: Option<IpAddr>,
        /// This MAC instead of one derived from the address.
        #[arg(long)]
        mac: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List endpoints.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  kuryr endpoint list\n  kuryr endpoint list --network ls0 --format json"
    )]
    List {
        /// Only the endpoints of this network.
        #[arg(long, value_name = "NET")]
        network: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete an endpoint; a network container left without endpoints is deleted too.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  kuryr endpoint delete ls0p0"
    )]
    Delete { name: String },
}

#[derive(Serialize)]
struct EndpointView {
    name: String,
    network: String,
    mac: String,
    ipv4: Option<String>,
    ipv6: Option<String>,
    host: Option<String>,
    container: Option<String>,
}

fn view(p: &PortInfo) -> EndpointView {
    EndpointView {
        name: p.endpoint.port.clone(),
        network: p.network.clone(),
        mac: p.endpoint.mac.clone(),
        ipv4: p.endpoint.ipv4.map(|a| a.to_string()),
        ipv6: p.endpoint.ipv6.map(|a| a.to_string()),
        host: p.endpoint.host.clone(),
        container: p.container.clone(),
    }
}

/// Deletes an endpoint: out of its container (which goes when it was the last), then
/// from Northbound with its addresses.
pub async fn delete(backend: &OvnBackend, host: &Host, name: &str) -> anyhow::Result<()> {
    let port = backend.port(name)?;
    if let Some(mark) = port.container.clone() {
        unplug(backend, host, &port).await?;
        backend
            .delete_named_endpoint(name)
            .await
            .with_context(|| format!("delete endpoint {name}"))?;
        remove_if_empty(backend, &mark).await?;
        return Ok(());
    }
    backend
        .delete_named_endpoint(name)
        .await
        .with_context(|| format!("delete endpoint {name}"))?;
    Ok(())
}

impl Endpoint {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let config = self.conn.config()?;
        let rt = runtime()?;
        rt.block_on(async move {
            let backend = self.conn.backend(&config).await?;
            match self.cmd {
                Cmd::Create {
                    network,
                    name,
                    ip,
                    mac,
                    format,
                } => {
                    let ep = backend
                        .create_named_endpoint(&network, name.as_deref(), ip, mac.as_deref())
                        .await
                        .with_context(|| format!("create endpoint on network {network}"))?;
                    let port = backend.port(&ep.name)?;
                    match format {
                        Format::Json => println!("{}", serde_json::to_string(&view(&port))?),
                        Format::Table => {
                            let addrs = [ep.ipv4, ep.ipv6]
                                .iter()
                                .flatten()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(",");
                            println!("{} {} {}", ep.name, addrs, ep.mac);
                        }
                    }
                }
                Cmd::List { network, format } => {
                    let list: Vec<EndpointView> = backend
                        .ports(network.as_deref())?
                        .iter()
                        .map(view)
                        .collect();
                    match format {
                        Format::Json => println!("{}", serde_json::to_string(&list)?),
                        Format::Table => {
                            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                            let rows: Vec<Vec<String>> = list
                                .iter()
                                .map(|e| {
                                    vec![
                                        e.name.clone(),
                                        e.network.clone(),
                                        dash(&e.ipv4),
                                        dash(&e.ipv6),
                                        e.mac.clone(),
                                        dash(&e.host),
                                        dash(&e.container),
                                    ]
                                })
                                .collect();
                            print!(
                                "{}",
                                table(
                                    &[
                                        "NAME",
                                        "NETWORK",
                                        "IPV4",
                                        "IPV6",
                                        "MAC",
                                        "HOST",
                                        "CONTAINER"
                                    ],
                                    &rows
                                )
                            );
                        }
                    }
                }
                Cmd::Delete { name } => {
                    let host = Host::new(&config);
                    delete(&backend, &host, &name).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}
