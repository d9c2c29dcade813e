//! `kuryr doctor`: walks the chain a container's network depends on, in the order a failure
//! propagates (Docker, the plugin, OVS, ovn-controller and its chassis, the control plane,
//! the tunnel endpoint), and says for each link what is wrong and how to fix it. Every check
//! has a deadline, so a dead daemon makes doctor report, never hang.
mod gateway;
mod metrics;
mod underlay;

use super::conn::runtime;
use crate::output::{table, Format};
use clap::Args;
use kuryr_daemon::config::{BackendKind, Config};
use kuryr_ovsdb::{parse_remotes, Client, TlsFiles};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{IpAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where Docker looks for v1 plugin spec files, after the socket directory.
const SPEC_DIRS: &[&str] = &["/etc/docker/plugins", "/usr/lib/docker/plugins"];
const SOCKET_DIRS: &[&str] = &["/run/docker/plugins", "/var/run/docker/plugins"];
const FIX_HOST_INIT: &str =
    "kuryr host init --bridge br-int --overlay --tep IP --sb URL (see `kuryr host init --help`)";

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr doctor
  kuryr doctor --format json
  kuryr doctor --config /etc/kuryr/kuryr.conf --plugin /run/docker/plugins/kuryr.sock

Exit status: 0 when every check is ok (warnings allowed), 1 when one FAILs.")]
pub struct Doctor {
    /// Configuration file (default /etc/kuryr/kuryr.conf when it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The plugin socket (default: [DEFAULT] plugin_socket).
    #[arg(long, value_name = "PATH")]
    plugin: Option<PathBuf>,
    /// OVN Northbound remote(s); overrides [ovn] ovn_nb_connection.
    #[arg(long, value_name = "URL")]
    nb: Option<String>,
    /// Local Open_vSwitch database; overrides [ovs] ovsdb_connection.
    #[arg(long, value_name = "URL")]
    ovsdb: Option<String>,
    /// Integration bridge; overrides [ovs] integration_bridge.
    #[arg(long)]
    bridge: Option<String>,
    /// Docker Engine API socket.
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    docker_socket: PathBuf,
    /// Seconds each check may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    timeout: u64,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not run: an earlier check it depends on failed.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn skip(check: &'static str, why: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Skip,
        detail: why.into(),
        fix: None,
    }
}

/// An HTTP/1.1 request over a unix socket with a deadline on every read and write; returns
/// the status and the body (chunked encoding undone).
fn unix_http(
    socket: &Path,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // As Docker calls a plugin: no Content-Type, an empty body.
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no complete answer in time",
            ));
        }
        match s.read(&mut buf)? {
            0 => break,
            n => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer")
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            out.push_str(rest.get(..n.min(rest.len())).unwrap_or(""));
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs an async check with a deadline.
async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, f).await.ok()
}

async fn ovsdb_client(
    remote: &str,
    db: &str,
    tables: &[&str],
    tls: Option<TlsFiles>,
    limit: Duration,
) -> Result<Client, String> {
    let remotes = parse_remotes(remote).map_err(|e| e.to_string())?;
    let mut cfg = kuryr_ovsdb::Config::new(remotes, db, tables);
    cfg.connect_timeout = limit;
    cfg.tls = tls;
    match within(limit + Duration::from_millis(500), Client::connect(cfg)).await {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("no answer within {} s", limit.as_secs())),
    }
}

/// What the local Open_vSwitch database says, for the checks after it.
#[derive(Default)]
struct OvsFacts {
    external_ids: BTreeMap<String, String>,
}

fn is_running(comm: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("comm"))
            .map(|c| c.trim() == comm)
            .unwrap_or(false)
    })
}

/// Whether `ip` is an address of this host: only then can a socket be bound to it.
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind((ip, 0)).is_ok()
}

impl Doctor {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let rt = runtime()?;
        let format = self.format;
        let checks = rt.block_on(self.run());
        match format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
            Format::Table => {
                let rows: Vec<Vec<String>> = checks
                    .iter()
                    .map(|c| {
                        let mut d = c.detail.clone();
                        if let Some(f) = &c.fix {
                            d.push_str(" -> fix: ");
                            d.push_str(f);
                        }
                        vec![c.status.label().to_string(), c.check.to_string(), d]
                    })
                    .collect();
                print!("{}", table(&["STATUS", "CHECK", "DETAIL"], &rows));
            }
        }
        Ok(if checks.iter().any(|c| c.status == Status::Fail) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Every check, in order.
    pub async fn run(self) -> Vec<Check> {
        let limit = Duration::from_secs(self.timeout.max(1));
        let mut out = Vec::new();

        // 0. The configuration everything below reads.
        let mut config = match Config::load_with_env(
            self.config.as_deref(),
            kuryr_daemon::config::process_env(),
        ) {
            Ok(c) => {
                let name = c
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "no kuryr.conf: defaults".into());
                out.push(if c.warnings.is_empty() {
                    ok("kuryr.conf", format!("{name} ({} mode)", c.backend_name()))
                } else {
                    warn(
                        "kuryr.conf",
                        format!("{name}: {}", c.warnings.join("; ")),
                        "remove or correct the keys named (`kuryr config check`)",
                    )
                });
                c
            }
            Err(e) => {
                out.push(fail(
                    "kuryr.conf",
                    e.to_string(),
                    "correct the key named; `kuryr config check FILE` lists every problem",
                ));
                Config::default()
            }
        };
        let mut flag_errors = Vec::new();
        if let Some(nb) = &self.nb {
            match kuryr_daemon::config::check_remotes(nb) {
                Ok(()) => config.ovn.nb_connection = nb.clone(),
                Err(e) => flag_errors.push(format!("--nb {nb}: {e}")),
            }
        }
        if let Some(o) = &self.ovsdb {
            match kuryr_daemon::config::check_remotes(o) {
                Ok(()) => config.ovs.ovsdb_connection = o.clone(),
                Err(e) => flag_errors.push(format!("--ovsdb {o}: {e}")),
            }
        }
        if let Some(b) = &self.bridge {
            config.ovs.integration_bridge = b.clone();
        }
        if !flag_errors.is_empty() {
            out.push(fail(
                "flags",
                flag_errors.join("; "),
                "give remotes as unix:PATH, tcp:IP:PORT or ssl:IP:PORT",
            ));
        }
        let plugin = self.plugin.clone().unwrap_or(config.plugin_socket.clone());

        // 1. Docker answers.
        let docker_ok = match unix_http(&self.docker_socket, "GET", "/version", limit) {
            Ok((200, body)) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                out.push(ok(
                    "docker",
                    format!(
                        "Docker {} answers on {}",
                        v["Version"].as_str().unwrap_or("?"),
                        self.docker_socket.display()
                    ),
                ));
                true
            }
            Ok((status, body)) => {
                out.push(fail(
                    "docker",
                    format!(
                        "{} answered HTTP {status}: {}",
                        self.docker_socket.display(),
                        body.trim()
                    ),
                    "check dockerd's log (journalctl -u docker)",
                ));
                false
            }
            Err(e) => {
                out.push(fail(
                    "docker",
                    format!("no Docker Engine at {}: {e}", self.docker_socket.display()),
                    "start Docker (systemctl start docker) or give --docker-socket",
                ));
                false
            }
        };

        // 2. The plugin socket answers Plugin.Activate.
        let plugin_ok = if !plugin.exists() {
            out.push(fail(
                "plugin socket",
                format!("no socket at {}", plugin.display()),
                "start the driver: `kuryr daemon` (systemctl start kuryr), or give --plugin PATH",
            ));
            false
        } else {
            match unix_http(&plugin, "POST", "/Plugin.Activate", limit) {
                Ok((200, body)) => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let implements: Vec<&str> = v["Implements"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    if implements.contains(&"NetworkDriver") && implements.contains(&"IpamDriver") {
                        out.push(ok(
                            "plugin socket",
                            format!("{} implements {}", plugin.display(), implements.join(", ")),
                        ));
                        true
                    } else {
                        out.push(fail(
                            "plugin socket",
                            format!(
                                "{} answered Plugin.Activate with {body}: not a network and IPAM driver",
                                plugin.display()
                            ),
                            "another program owns this socket: stop it and start `kuryr daemon`",
                        ));
                        false
                    }
                }
                Ok((status, body)) => {
                    out.push(fail(
                        "plugin socket",
                        format!(
                            "{} answered Plugin.Activate with HTTP {status}: {}",
                            plugin.display(),
                            body.trim()
                        ),
                        "look at the kuryr daemon's log",
                    ));
                    false
                }
                Err(e) => {
                    out.push(fail(
                        "plugin socket",
                        format!("{} does not answer: {e}", plugin.display()),
                        "a stale socket from a stopped daemon: restart `kuryr daemon` (systemctl restart kuryr)",
                    ));
                    false
                }
            }
        };
        // 2b. What the daemon counts: its calls' error rates and its connections.
        out.push(metrics::check(config.metrics_address, plugin_ok, limit).await);

        // 3. Docker can find the driver by name.
        let name = plugin
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kuryr".into());
        if !docker_ok || !plugin_ok {
            out.push(skip(
                "docker sees driver",
                "needs Docker and the plugin socket",
            ));
        } else {
            out.push(docker_sees(&self.docker_socket, &plugin, &name, limit));
        }

        // Inside a VM with macvlan: no Open vSwitch here, the VM's NIC and port instead.
        if config.nested.driver == Some(kuryr_daemon::config::BindingDriver::Macvlan) {
            out.extend(underlay::macvlan_checks(&config, limit).await);
            return out;
        }

        // 4. OVS answers and the integration bridge exists (inside a VM: its underlay bridge).
        let mut bridge = config.ovs.integration_bridge.clone();
        let mut underlay = config.nested.driver == Some(kuryr_daemon::config::BindingDriver::Vlan);
        let ovs_remote = config.ovs.ovsdb_connection.clone();
        let facts = match ovsdb_client(
            &ovs_remote,
            "Open_vSwitch",
            &["Open_vSwitch", "Bridge"],
            None,
            limit,
        )
        .await
        {
            Err(e) => {
                out.push(fail(
                    "ovs",
                    format!("the Open_vSwitch database at {ovs_remote} does not answer: {e}"),
                    "start Open vSwitch (/usr/share/openvswitch/scripts/ovs-ctl start), or set [ovs] ovsdb_connection / --ovsdb",
                ));
                None
            }
            Ok(client) => {
                let rep = client.replica();
                let root = rep.table("Open_vSwitch").rows().next().cloned();
                let ext = root
                    .map(|r| r.string_map("external_ids"))
                    .unwrap_or_default();
                if config.nested.driver.is_none()
                    && ext.get(kuryr_binding::MODE_KEY).map(String::as_str) == Some("underlay")
                {
                    underlay = true;
                }
                if underlay {
                    bridge = ext
                        .get(kuryr_binding::UNDERLAY_BRIDGE_KEY)
                        .cloned()
                        .unwrap_or_else(|| "breth0".to_string());
                }
                match rep.table("Bridge").one_by_name(&bridge) {
                    Some(b) => {
                        let dp = b
                            .str("datapath_type")
                            .filter(|s| !s.is_empty())
                            .unwrap_or("system")
                            .to_string();
                        out.push(ok(
                            "ovs",
                            format!("{ovs_remote} answers; bridge {bridge} exists, datapath {dp}"),
                        ));
                    }
                    None => out.push(fail(
                        "ovs",
                        format!("{ovs_remote} answers but has no bridge {bridge}"),
                        FIX_HOST_INIT.replace("br-int", &bridge),
                    )),
                }
                Some(OvsFacts { external_ids: ext })
            }
        };

        if underlay {
            // A VM: its hypervisor is the chassis and the gateway.
            match &facts {
                Some(_) => out.extend(underlay::checks(&config, limit).await),
                None => out.push(skip("vm bridge", "needs the Open_vSwitch database")),
            }
            return out;
        }

        // 5. The chassis settings ovn-controller reads.
        let get = |k: &str| {
            facts
                .as_ref()
                .and_then(|f| f.external_ids.get(k).cloned())
                .filter(|v| !v.is_empty())
        };
        let system_id = get("system-id");
        let ovn_remote = get("ovn-remote");
        let encap_ip = get("ovn-encap-ip");
        if facts.is_none() {
            out.push(skip("chassis settings", "needs the Open_vSwitch database"));
        } else {
            let keys = ["system-id", "ovn-remote", "ovn-encap-type", "ovn-encap-ip"];
            let missing: Vec<&str> = keys.iter().copied().filter(|k| get(k).is_none()).collect();
            if missing.is_empty() {
                out.push(ok(
                    "chassis settings",
                    keys.iter()
                        .map(|k| format!("{k}={}", get(k).unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
            } else {
                out.push(fail(
                    "chassis settings",
                    format!("Open_vSwitch external_ids lack {}", missing.join(", ")),
                    FIX_HOST_INIT.replace("br-int", &bridge),
                ));
            }
        }

        // 6. ovn-controller runs and its chassis is in Southbound.
        let controller = is_running("ovn-controller");
        out.push(if controller {
            ok("ovn-controller", "running")
        } else {
            fail(
                "ovn-controller",
                "no ovn-controller process on this host",
                "start it: /usr/share/ovn/scripts/ovn-ctl start_controller (or systemctl start ovn-controller)",
            )
        });
        // The hostnames of Southbound's chassis: ML2/OVN binds a port to the chassis whose
        // hostname is the port's binding:host_id.
        let mut chassis_hosts: Option<Vec<String>> = None;
        match (&system_id, &ovn_remote) {
            (Some(id), Some(sb)) if sb.split(',').all(|r| r.trim().starts_with("ssl:")) => out
                .push(warn(
                    "southbound chassis",
                    format!("{sb} is ssl: not checked for chassis {id}"),
                    format!("check by hand: ovn-sbctl --db={sb} find Chassis name={id}"),
                )),
            (Some(id), Some(sb)) => {
                match ovsdb_client(sb, "OVN_Southbound", &["Chassis"], None, limit).await {
                    Err(e) => out.push(fail(
                        "southbound chassis",
                        format!("Southbound at {sb} (ovn-remote) does not answer: {e}"),
                        "start the OVN central databases, or correct ovn-remote: kuryr host set-sb URL",
                    )),
                    Ok(client) => {
                        let replica = client.replica();
                        let found = replica
                            .table("Chassis")
                            .rows()
                            .any(|r| r.str("name") == Some(id.as_str()));
                        chassis_hosts = Some(
                            replica
                                .table("Chassis")
                                .rows()
                                .filter_map(|r| r.str("hostname").map(str::to_string))
                                .collect(),
                        );
                        out.push(if found {
                            ok(
                                "southbound chassis",
                                format!("chassis {id} is registered in {sb}"),
                            )
                        } else {
                            fail(
                                "southbound chassis",
                                format!("chassis {id} is not registered in Southbound at {sb}"),
                                if controller {
                                    "ovn-controller runs but has not registered: read its log (/var/log/ovn/ovn-controller.log)"
                                } else {
                                    "start ovn-controller; it registers the chassis"
                                },
                            )
                        });
                    }
                }
            }
            _ => out.push(skip(
                "southbound chassis",
                "needs system-id and ovn-remote in Open_vSwitch external_ids",
            )),
        }

        // 7. The control plane.
        match config.backend {
            BackendKind::Ovn => {
                let nb = config.ovn.nb_connection.clone();
                let tls = match (
                    &config.ovn.nb_private_key,
                    &config.ovn.nb_certificate,
                    &config.ovn.nb_ca_cert,
                ) {
                    (Some(k), Some(c), Some(ca)) => Some(TlsFiles {
                        private_key: k.clone(),
                        certificate: c.clone(),
                        ca_cert: ca.clone(),
                    }),
                    _ => None,
                };
                out.push(
                    match ovsdb_client(&nb, "OVN_Northbound", &["NB_Global"], tls, limit).await {
                        Ok(_) => ok("northbound", format!("{nb} answers")),
                        Err(e) => fail(
                            "northbound",
                            format!("OVN Northbound at {nb} does not answer: {e}"),
                            "start ovn-northd's databases (ovn-ctl start_northd), or correct [ovn] ovn_nb_connection / --nb",
                        ),
                    },
                );
            }
            BackendKind::Neutron => {
                let n = &config.neutron;
                let targets = [
                    ("neutron", n.endpoint.clone(), "[neutron] endpoint"),
                    ("keystone", n.auth_url.clone(), "[neutron] auth_url"),
                ];
                for (check, url, key) in targets {
                    match url {
                        None => out.push(skip(check, format!("{key} not set"))),
                        Some(u) => {
                            out.push(http_reachable(check, &u, key, n.insecure, limit).await)
                        }
                    }
                }
                // The daemon's own client: a Keystone login (if any), the catalog, one
                // Neutron request, as `kuryr daemon` does at start.
                let api = "neutron api";
                out.push(match kuryr_daemon::neutron_client(&config) {
                    Err(e) => fail(api, e.to_string(), "set the [neutron] key it names"),
                    Ok(client) => {
                        match within(limit * 2, client.has_extension("standard-attr-tag")).await {
                            None => fail(
                                api,
                                format!("no answer from Keystone/Neutron in {:?}", limit * 2),
                                "check that Keystone and Neutron run and answer (curl the URLs above)",
                            ),
                            Some(Ok(true)) => ok(
                                api,
                                if client.logins() > 0 {
                                    format!(
                                        "logged in to Keystone ({}); Neutron answers and has tags",
                                        n.auth_type
                                    )
                                } else {
                                    "Neutron answers and has tags (auth_type = none)".to_string()
                                },
                            ),
                            Some(Ok(false)) => fail(
                                api,
                                "Neutron lacks the standard-attr-tag extension kuryr finds its networks by",
                                "enable it in Neutron (ML2 has it by default)",
                            ),
                            Some(Err(e)) => fail(
                                api,
                                e.to_string(),
                                "correct what the message names, then run kuryr doctor again",
                            ),
                        }
                    }
                });
                let host = config.host.clone().unwrap_or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string())
                        .unwrap_or_default()
                });
                out.push(match &chassis_hosts {
                    None => skip("neutron host", "needs the Southbound chassis list"),
                    Some(hosts) if hosts.contains(&host) => ok(
                        "neutron host",
                        format!("ports are bound to host {host}, the hostname of a chassis"),
                    ),
                    Some(hosts) => fail(
                        "neutron host",
                        format!(
                            "no chassis has hostname {host} (the binding:host_id kuryr gives ports); chassis hostnames: {}",
                            if hosts.is_empty() { "none".to_string() } else { hosts.join(", ") }
                        ),
                        "set [DEFAULT] host to this chassis' hostname (ovn-sbctl list Chassis), or the host's hostname to it",
                    ),
                });
            }
        }

        // 8. The tunnel endpoint is an address of this host.
        match encap_ip {
            None => out.push(skip("tunnel endpoint", "needs ovn-encap-ip")),
            Some(ips) => {
                let mut bad = Vec::new();
                for s in ips.split(',').map(str::trim) {
                    match s.parse::<IpAddr>() {
                        Ok(ip) if is_local(ip) => {}
                        _ => bad.push(s.to_string()),
                    }
                }
                out.push(if bad.is_empty() {
                    ok(
                        "tunnel endpoint",
                        format!("{ips} is assigned to a local interface"),
                    )
                } else {
                    fail(
                        "tunnel endpoint",
                        format!(
                            "ovn-encap-ip {} is not an address of this host",
                            bad.join(", ")
                        ),
                        "add the address to the interface other hosts reach (ip addr add IP/LEN dev DEV), or kuryr host set-tep IP",
                    )
                });
            }
        }

        // 9. The OVN mode's host gateway (egress, published ports).
        if config.backend == BackendKind::Ovn {
            out.push(gateway::check());
        }
        out
    }
}

fn docker_sees(docker: &Path, plugin: &Path, name: &str, limit: Duration) -> Check {
    const CHECK: &str = "docker sees driver";
    // Docker lists a v1 plugin once it activated it; before first use discovery decides.
    let listed = unix_http(docker, "GET", "/info", limit)
        .ok()
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
        .map(|v| {
            v["Plugins"]["Network"]
                .as_array()
                .map(|a| a.iter().any(|x| x.as_str() == Some(name)))
                .unwrap_or(false)
        })
        .unwrap_or(false);
    let filter = format!("%7B%22driver%22%3A%7B%22{name}%22%3Atrue%7D%7D");
    let networks = unix_http(docker, "GET", &format!("/networks?filters={filter}"), limit)
        .ok()
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v.as_array().map(Vec::len));
    let nets = networks
        .map(|n| format!("; {n} network(s) use it"))
        .unwrap_or_default();
    if listed {
        return ok(
            CHECK,
            format!("docker info lists network driver {name}{nets}"),
        );
    }
    let parent = plugin.parent().map(Path::to_path_buf).unwrap_or_default();
    let in_socket_dir = SOCKET_DIRS
        .iter()
        .any(|d| parent == Path::new(d) || parent == Path::new(d).join(name));
    if in_socket_dir {
        return ok(
            CHECK,
            format!(
                "driver {name}: Docker finds {} by discovery (activated on first use){nets}",
                plugin.display()
            ),
        );
    }
    for dir in SPEC_DIRS {
        for ext in ["spec", "json"] {
            let spec = Path::new(dir).join(format!("{name}.{ext}"));
            if spec.exists() {
                return ok(
                    CHECK,
                    format!(
                        "driver {name}: Docker finds it through {}{nets}",
                        spec.display()
                    ),
                );
            }
        }
    }
    fail(
        CHECK,
        format!(
            "Docker cannot find a plugin named {name}: {} is outside {} and there is no {name}.spec in {}",
            plugin.display(),
            SOCKET_DIRS[0],
            SPEC_DIRS.join(" or ")
        ),
        "serve the socket in /run/docker/plugins ([DEFAULT] plugin_socket), or write a spec: kuryr config generate --spec-dir /etc/docker/plugins",
    )
}

async fn http_reachable(
    check: &'static str,
    url: &str,
    key: &str,
    insecure: bool,
    limit: Duration,
) -> Check {
    let client = match reqwest::Client::builder()
        .timeout(limit)
        .connect_timeout(limit)
        .danger_accept_invalid_certs(insecure)
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(check, format!("HTTP client: {e}"), "report this as a bug"),
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_server_error() => fail(
            check,
            format!("{url} ({key}) answers HTTP {}", r.status()),
            format!("{check} is up but failing: read its log"),
        ),
        Ok(r) => ok(check, format!("{url} answers HTTP {}", r.status().as_u16())),
        Err(e) => fail(
            check,
            format!("{url} ({key}) does not answer: {e}"),
            format!("start {check} or correct {key} in kuryr.conf"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"), "{\"a\":1}");
        assert_eq!(dechunk("zz\r\n"), "");
    }

    #[test]
    fn loopback_is_local_and_a_documentation_address_is_not() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(!is_local("192.0.2.77".parse().unwrap()));
    }
}
