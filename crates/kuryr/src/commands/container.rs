//! `kuryr container`: network containers, whose namespace holds endpoints' interfaces plumbed
//! exactly as the driver plumbs a Docker container's, so that `docker run --net=container:ID`
//! joins them. With Docker: a minimal container; without: a named network namespace.
use super::conn::{runtime, Conn};
use crate::netns::{self, IfaceSetup};
use crate::output::{table, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use kuryr_binding::{Binding, PlugRequest};
use kuryr_daemon::config::Config;
use kuryr_daemon::host::HostBinding;
use kuryr_ovn::{OvnBackend, PortInfo};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;
use tokio::sync::OnceCell;

pub const DOCKER: &str = "/usr/bin/docker";
const DEFAULT_IMAGE: &str = "kuryr-busybox:latest";
/// Label on the Docker containers `kuryr container create` starts.
const LABEL: &str = "kuryr.network-container";

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr container create --network ls0p0
  kuryr container create --network ls0p0 --network ls1p0 --image busybox
  kuryr container create --network ls0p1 --netns blue     # no Docker: a named namespace
  docker run -d --net=container:$(kuryr container create --network ls0p0) busybox sleep 1d
  kuryr container list
  kuryr container delete 3f2a9c0d1e4b")]
pub struct Container {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a network container holding these endpoints (eth0, eth1, ... in order).
    #[command(
        after_help = "Examples:\n  kuryr container create --network ls0p0\n  kuryr container create --network ls0p1 --netns blue"
    )]
    Create {
        /// Endpoint name (repeat for more interfaces).
        #[arg(long = "network", value_name = "EP", required = true)]
        networks: Vec<String>,
        /// Use a named network namespace (`ip netns`) instead of a Docker container.
        #[arg(long, value_name = "NAME")]
        netns: Option<String>,
        /// Image of the Docker container; it must have `sleep`.
        #[arg(long, env = "KURYR_CONTAINER_IMAGE", default_value = DEFAULT_IMAGE)]
        image: String,
        /// Name of the Docker container (default: kuryr-<first endpoint>).
        #[arg(long)]
        name: Option<String>,
        /// Seconds to wait for ovn-controller to install each port.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// List network containers and their endpoints.
    #[command(visible_alias = "ls")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a network container; its endpoints stay (unplugged).
    #[command(visible_alias = "rm")]
    Delete {
        /// Container id (or its first 12 characters) or namespace name.
        id: String,
    },
}

/// Where a network container lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Docker(String),
    Netns(String),
}

impl Holder {
    pub fn parse(mark: &str) -> Option<Holder> {
        if let Some(id) = mark.strip_prefix("docker:") {
            return Some(Holder::Docker(id.to_string()));
        }
        mark.strip_prefix("netns:")
            .map(|n| Holder::Netns(n.to_string()))
    }

    pub fn mark(&self) -> String {
        match self {
            Holder::Docker(id) => format!("docker:{id}"),
            Holder::Netns(n) => format!("netns:{n}"),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Holder::Docker(id) | Holder::Netns(id) => id,
        }
    }

    fn ns_path(&self) -> anyhow::Result<PathBuf> {
        match self {
            Holder::Netns(n) => Ok(PathBuf::from(format!("/var/run/netns/{n}"))),
            Holder::Docker(id) => {
                let pid = run_ok(
                    Command::new(DOCKER).args(["inspect", "-f", "{{.State.Pid}}", id]),
                    &format!("find the process of container {id}"),
                )?;
                match pid.parse::<u32>() {
                    Ok(p) if p > 0 => Ok(PathBuf::from(format!("/proc/{p}/ns/net"))),
                    _ => anyhow::bail!("container {id} is not running (pid {pid:?}): start it or delete it with `kuryr container delete {id}`"),
                }
            }
        }
    }

    /// Best effort and idempotent: a holder already gone is success.
    pub fn remove(&self) -> anyhow::Result<()> {
        match self {
            Holder::Docker(id) => {
                let out = Command::new(DOCKER)
                    .args(["rm", "-f", id])
                    .output()
                    .context("run docker rm")?;
                let err = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() && !err.contains("No such container") {
                    anyhow::bail!("remove container {id}: {}", err.trim());
                }
            }
            Holder::Netns(n) => {
                if std::path::Path::new(&format!("/var/run/netns/{n}")).exists() {
                    run_ok(
                        Command::new("ip").args(["netns", "delete", n]),
                        &format!("delete network namespace {n}"),
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        anyhow::bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn docker_available() -> bool {
    Command::new(DOCKER)
        .args(["info", "--format", "{{.ID}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The local data plane, connected on first use (network and endpoint commands that touch
/// no container never need OVS).
pub struct Host {
    config: Config,
    /// The binding (on a host: the integration bridge; inside a VM: VLAN access ports of
    /// the VM's bridge) and the containers' MTU.
    binding: OnceCell<(HostBinding, u32)>,
}

impl Host {
    pub fn new(config: &Config) -> Host {
        Host {
            config: config.clone(),
            binding: OnceCell::new(),
        }
    }

    pub async fn binding(&self, host: &str) -> anyhow::Result<&HostBinding> {
        Ok(&self.connected(host).await?.0)
    }

    async fn connected(&self, host: &str) -> anyhow::Result<&(HostBinding, u32)> {
        self.binding
            .get_or_try_init(|| async {
                // The host name is the backend's (inside a VM: the VM's port).
                let mut config = self.config.clone();
                config.host = Some(host.to_string());
                let facts = HostBinding::connect(&config)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                match &facts.binding {
                    HostBinding::Ovs(b) => b.set_host(host),
                    HostBinding::Nested(b) => b.ovs().set_host(host),
                    HostBinding::Macvlan(_) | HostBinding::None(_) => {}
                }
                Ok::<_, anyhow::Error>((facts.binding, facts.mtu))
            })
            .await
    }

    async fn mtu(&self, host: &str) -> anyhow::Result<u32> {
        Ok(self.connected(host).await?.1)
    }
}

/// Unplugs a container's endpoint from this host and clears its container mark; the
/// network's route goes when no endpoint plugged here needs it any more.
pub async fn unplug(backend: &OvnBackend, host: &Host, port: &PortInfo) -> anyhow::Result<()> {
    let b = host.binding(&backend.settings().host).await?;
    let routes = kuryr_core::Backend::host_routes(backend, &port.endpoint.network_id);
    b.unplug(&port.endpoint.endpoint_id)
        .await
        .with_context(|| format!("unplug endpoint {}", port.endpoint.port))?;
    backend
        .set_port_container(&port.endpoint.port, None)
        .await?;
    // Routes are the host gateway's: a hypervisor's, never a VM's.
    let HostBinding::Ovs(ovs) = b else {
        return Ok(());
    };
    kuryr_daemon::gateway::unroute_unused(backend, ovs, routes)
        .await
        .with_context(|| {
            format!(
                "remove the route of endpoint {}'s network",
                port.endpoint.port
            )
        })?;
    Ok(())
}

/// Removes a network container once none of kuryr's endpoints is in it any more.
pub async fn remove_if_empty(backend: &OvnBackend, mark: &str) -> anyhow::Result<bool> {
    let left = backend
        .ports(None)?
        .into_iter()
        .any(|p| p.container.as_deref() == Some(mark));
    if left {
        return Ok(false);
    }
    if let Some(h) = Holder::parse(mark) {
        h.remove()?;
    }
    Ok(true)
}

#[derive(Serialize)]
struct ContainerView {
    id: String,
    kind: &'static str,
    host: String,
    endpoints: Vec<String>,
}

fn containers(backend: &OvnBackend) -> anyhow::Result<Vec<ContainerView>> {
    let mut by: BTreeMap<String, ContainerView> = BTreeMap::new();
    for p in backend.ports(None)? {
        let Some(mark) = p.container.clone() else {
            continue;
        };
        let Some(h) = Holder::parse(&mark) else {
            continue;
        };
        let v = by.entry(mark).or_insert_with(|| ContainerView {
            id: h.id().to_string(),
            kind: match h {
                Holder::Docker(_) => "docker",
                Holder::Netns(_) => "netns",
            },
            host: p.endpoint.host.clone().unwrap_or_default(),
            endpoints: Vec::new(),
        });
        v.endpoints.push(p.endpoint.port.clone());
    }
    Ok(by.into_values().collect())
}

impl Container {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let config = self.conn.config()?;
        let rt = runtime()?;
        rt.block_on(async move {
            let backend = self.conn.backend(&config).await?;
            let host = Host::new(&config);
            match self.cmd {
                Cmd::Create {
                    networks,
                    netns,
                    image,
                    name,
                    wait,
                } => {
                    let id = create(&backend, &host, &networks, netns, &image, name, wait).await?;
                    println!("{id}");
                }
                Cmd::List { format } => {
                    let list = containers(&backend)?;
                    match format {
                        Format::Json => println!("{}", serde_json::to_string(&list)?),
                        Format::Table => {
                            let rows: Vec<Vec<String>> = list
                                .iter()
                                .map(|c| {
                                    vec![
                                        c.id.clone(),
                                        c.kind.to_string(),
                                        c.host.clone(),
                                        c.endpoints.join(","),
                                    ]
                                })
                                .collect();
                            print!("{}", table(&["CONTAINER", "KIND", "HOST", "ENDPOINTS"], &rows));
                        }
                    }
                }
                Cmd::Delete { id } => {
                    let ports: Vec<PortInfo> = backend
                        .ports(None)?
                        .into_iter()
                        .filter(|p| {
                            p.container
                                .as_deref()
                                .and_then(Holder::parse)
                                .is_some_and(|h| h.id() == id || (id.len() >= 12 && h.id().starts_with(&id)))
                        })
                        .collect();
                    let Some(mark) = ports.first().and_then(|p| p.container.clone()) else {
                        anyhow::bail!("no network container {id:?} holds a kuryr endpoint: see `kuryr container list`");
                    };
                    for p in &ports {
                        unplug(&backend, &host, p).await?;
                    }
                    remove_if_empty(&backend, &mark).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}

async fn create(
    backend: &OvnBackend,
    host: &Host,
    endpoints: &[String],
    netns: Option<String>,
    image: &str,
    name: Option<String>,
    wait: u64,
) -> anyhow::Result<String> {
    // 1. Validate everything before changing anything.
    let mut ports = Vec::new();
    for ep in endpoints {
        let p = backend.port(ep)?;
        if let Some(c) = &p.container {
            anyhow::bail!("endpoint {ep} is already in network container {c}: delete that first (`kuryr container delete`)");
        }
        if ports
            .iter()
            .any(|q: &PortInfo| q.endpoint.port == p.endpoint.port)
        {
            anyhow::bail!("endpoint {ep} is given twice");
        }
        ports.push(p);
    }
    let hostname = backend.settings().host.clone();
    let binding = host.binding(&hostname).await?;
    let mtu = host.mtu(&hostname).await?;
    // 2. The holder.
    let holder = match netns {
        Some(n) => {
            run_ok(
                Command::new("ip").args(["netns", "add", &n]),
                &format!("create network namespace {n}"),
            )?;
            Holder::Netns(n)
        }
        None if docker_available() => {
            let name = name.unwrap_or_else(|| format!("kuryr-{}", ports[0].endpoint.port));
            let id = run_ok(
                Command::new(DOCKER).args([
                    "run", "-d", "--net", "none", "--name", &name, "--label", LABEL,
                    image, "sleep", "infinity",
                ]),
                &format!("start network container {name} from image {image} (set --image or KURYR_CONTAINER_IMAGE)"),
            )?;
            Holder::Docker(id)
        }
        None => {
            let n = format!("kuryr-{}", ports[0].endpoint.port);
            run_ok(
                Command::new("ip").args(["netns", "add", &n]),
                &format!("create network namespace {n} (Docker is not running)"),
            )?;
            Holder::Netns(n)
        }
    };
    // 3. Plug each endpoint; undo everything on a failure.
    let mut plugged: Vec<&PortInfo> = Vec::new();
    let res = async {
        let ns = netns::open(&holder.ns_path()?)?;
        let mut setup = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let ep = &p.endpoint;
            let req = PlugRequest {
                endpoint_id: ep.endpoint_id.clone(),
                iface_id: ep.port.clone(),
                mac: ep.mac.clone(),
                mtu,
                vlan: ep.vlan,
            };
            let out = binding
                .plug(&req)
                .await
                .with_context(|| format!("plug endpoint {}", ep.port))?;
            plugged.push(p);
            backend
                .set_port_container(&ep.port, Some(&holder.mark()))
                .await?;
            netns::move_into(&out.container_ifname, &ns).await?;
            setup.push(IfaceSetup {
                from: out.container_ifname,
                name: format!("eth{i}"),
                addresses: [ep.ipv4, ep.ipv6].into_iter().flatten().collect(),
                gateways: if i == 0 {
                    [ep.gateway_v4, ep.gateway_v6]
                        .into_iter()
                        .flatten()
                        .collect()
                } else {
                    Vec::new()
                },
            });
        }
        netns::configure(&ns, setup)?;
        // Routed networks: this host's route and NAT, as the daemon adds them for Docker.
        let mut networks: Vec<&str> = ports
            .iter()
            .map(|p| p.endpoint.network_id.as_str())
            .collect();
        networks.sort_unstable();
        networks.dedup();
        if let HostBinding::Ovs(ovs) = binding {
            kuryr_daemon::gateway::route_networks(backend, ovs, &networks)
                .await
                .context("route the containers' networks on this host")?;
        } else {
            // Inside a VM the container's port is up once the VM's port is bound.
            for p in &ports {
                kuryr_core::Backend::wait_active(
                    backend,
                    &p.endpoint.endpoint_id,
                    Duration::from_secs(wait),
                )
                .await
                .with_context(|| format!("endpoint {}", p.endpoint.port))?;
            }
        }
        for p in &ports {
            binding
                .wait_ready(&p.endpoint.endpoint_id, Duration::from_secs(wait))
                .await
                .with_context(|| format!("endpoint {}", p.endpoint.port))?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = res {
        for p in plugged.iter().rev() {
            if let Err(u) = unplug(backend, host, p).await {
                tracing::warn!(error = %u, "undo plug");
            }
        }
        let _ = holder.remove();
        return Err(e);
    }
    Ok(holder.id().to_string())
}
