//! `kuryr router`: the OVN mode's logical routers. Every network's gateway is a port of one
//! (`kuryr-router` unless `-o kuryr.router=NAME` / `--router NAME` names another); networks of
//! one router are isolated from each other except for `--expose`d ports.
use super::conn::{runtime, Conn};
use crate::output::{table, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use kuryr_ovn::RouterInfo;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr router list
  kuryr router create blue
  docker network create -d kuryr --ipam-driver kuryr --subnet 10.20.0.0/24 -o kuryr.router=blue net-blue
  kuryr router show blue --format json
  kuryr router delete blue")]
pub struct Router {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a router networks can attach to with -o kuryr.router=NAME.
    #[command(after_help = "Examples:\n  kuryr router create blue")]
    Create {
        /// Letters, digits, '.', '_' and '-'; at most 48.
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the routers in Northbound with the kuryr networks attached.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  kuryr router list\n  kuryr router list --format json"
    )]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one router.
    #[command(after_help = "Examples:\n  kuryr router show kuryr-router --format json")]
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a router kuryr created; refuses while networks are attached.
    #[command(
        visible_alias = "rm",
        after_help = "Examples:\n  kuryr router delete blue"
    )]
    Delete { name: String },
}

#[derive(Serialize)]
struct NetworkView {
    name: String,
    subnets: Vec<String>,
}

#[derive(Serialize)]
struct RouterView {
    name: String,
    uuid: String,
    join_ip: Option<String>,
    created_by: &'static str,
    networks: Vec<NetworkView>,
}

fn view(r: &RouterInfo) -> RouterView {
    RouterView {
        name: r.name.clone(),
        uuid: r.uuid.to_string(),
        join_ip: r.join_ip.map(|i| i.to_string()),
        created_by: if r.owned { "kuryr" } else { "other" },
        networks: r
            .networks
            .iter()
            .map(|(n, s)| NetworkView {
                name: n.clone(),
                subnets: s.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}

fn find(routers: Vec<RouterInfo>, name: &str) -> anyhow::Result<RouterInfo> {
    routers
        .into_iter()
        .find(|r| r.name == name || r.uuid.to_string() == name)
        .ok_or_else(|| anyhow::anyhow!("no router is named {name:?}: see `kuryr router list`"))
}

impl Router {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let config = self.conn.config()?;
        let rt = runtime()?;
        rt.block_on(async move {
            let backend = self.conn.backend(&config).await?;
            match self.cmd {
                Cmd::Create { name, format } => {
                    let r = backend
                        .create_router(&name)
                        .await
                        .with_context(|| format!("create router {name}"))?;
                    match format {
                        Format::Table => println!("{}", r.uuid),
                        Format::Json => println!("{}", serde_json::to_string(&view(&r))?),
                    }
                }
                Cmd::List { format } => {
                    let all: Vec<RouterView> = backend.routers().iter().map(view).collect();
                    match format {
                        Format::Json => println!("{}", serde_json::to_string(&all)?),
                        Format::Table => {
                            let rows: Vec<Vec<String>> = all
                                .iter()
                                .map(|r| {
                                    vec![
                                        r.name.clone(),
                                        r.uuid.clone(),
                                        r.join_ip.clone().unwrap_or_else(|| "-".into()),
                                        r.networks.len().to_string(),
                                        r.created_by.to_string(),
                                    ]
                                })
                                .collect();
                            let header = ["NAME", "UUID", "JOIN IP", "NETWORKS", "CREATED BY"];
                            print!("{}", table(&header, &rows));
                        }
                    }
                }
                Cmd::Show { name, format } => {
                    let r = view(&find(backend.routers(), &name)?);
                    match format {
                        Format::Json => println!("{}", serde_json::to_string(&r)?),
                        Format::Table => {
                            let nets: Vec<String> = r
                                .networks
                                .iter()
                                .map(|n| format!("{} ({})", n.name, n.subnets.join(",")))
                                .collect();
                            let kv = vec![
                                vec!["name".into(), r.name.clone()],
                                vec!["uuid".into(), r.uuid.clone()],
                                vec![
                                    "join ip".into(),
                                    r.join_ip.clone().unwrap_or_else(|| "-".into()),
                                ],
                                vec!["created by".into(), r.created_by.into()],
                                vec!["networks".into(), nets.join(", ")],
                            ];
                            print!("{}", table(&["FIELD", "VALUE"], &kv));
                        }
                    }
                }
                Cmd::Delete { name } => {
                    backend
                        .delete_router(&name)
                        .await
                        .with_context(|| format!("delete router {name}"))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}
