//! `kuryr host`: make this host an OVN chassis (the `ovn-integrate` set), over OVSDB against
//! the local Open_vSwitch database (`--ovsdb` points at another one, e.g. a chassis in a
//! network namespace).
use super::conn::{hostname, runtime};
use crate::output::{table, Format};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use kuryr_ovsdb::datum::{self, Row};
use kuryr_ovsdb::txn::{self, by_uuid};
use kuryr_ovsdb::{parse_remotes, Client, Config, Txn};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod nics_to_bridge;
mod underlay;

const DB: &str = "Open_vSwitch";
const TABLES: &[&str] = &["Open_vSwitch", "Bridge", "Port", "Interface"];
const DEFAULT_OVSDB: &str = "unix:/var/run/openvswitch/db.sock";
/// Where this host's kuryr finds Northbound (ovn-controller ignores the key).
pub const NB_KEY: &str = "kuryr-nb-remote";
/// `overlay` or `underlay`, as `host init` was told.
pub const MODE_KEY: &str = kuryr_binding::MODE_KEY;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr host init --bridge br-int --overlay --tep 192.168.50.10 --encap geneve \\
      --nb tcp:192.168.50.1:6641 --sb tcp:192.168.50.1:6642
  kuryr host nics-to-bridge eth0 && kuryr host init --underlay --bridge breth0 --parent-port vm1-port
  kuryr host set-tep 192.168.50.11
  kuryr host set-encap vxlan
  kuryr host show --format json
  kuryr host show --ovsdb unix:/run/kuryr-lab/chassis-1/db.sock
  kuryr host nics-to-bridge eth0                # eth0's addresses and routes onto breth0")]
pub struct Host {
    #[command(subcommand)]
    cmd: Cmd,
    /// The Open_vSwitch database to configure.
    #[arg(long, value_name = "URL", global = true, default_value = DEFAULT_OVSDB)]
    ovsdb: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Datapath {
    /// The kernel datapath (needs the openvswitch module).
    System,
    /// The userspace datapath.
    Netdev,
}

impl Datapath {
    fn as_str(self) -> &'static str {
        match self {
            Datapath::System => "system",
            Datapath::Netdev => "netdev",
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the integration bridge and set this chassis' OVN settings.
    #[command(
        after_help = "Examples:\n  kuryr host init --bridge br-int --overlay --tep 192.168.50.10 --sb tcp:192.168.50.1:6642\n  kuryr host init --bridge br-int --overlay --tep 10.0.0.5 --encap vxlan --datapath netdev\n  kuryr host init --underlay --bridge breth0 --parent-port vm1-port   # inside a VM, after nics-to-bridge"
    )]
    Init {
        /// The bridge: with --overlay the integration bridge (created fail-mode secure,
        /// in-band control off; default br-int); with --underlay the VM's bridge that
        /// `nics-to-bridge` made (default breth0).
        #[arg(long)]
        bridge: Option<String>,
        /// Containers on OVN logical networks across hosts over tunnels.
        #[arg(
            long,
            conflicts_with = "underlay",
            required_unless_present = "underlay"
        )]
        overlay: bool,
        /// Containers inside this VM, joined through the VM's own port (no ovn-controller
        /// here: the hypervisor's carries them).
        #[arg(long)]
        underlay: bool,
        /// With --underlay: the VM's own port (OVN: its logical switch port name); default:
        /// the port whose MAC is the VM NIC's, found when kuryr starts.
        #[arg(long, value_name = "PORT")]
        parent_port: Option<String>,
        /// This chassis' tunnel endpoint (ovn-encap-ip); required for --overlay unless set.
        #[arg(long, value_name = "IP")]
        tep: Option<IpAddr>,
        /// Tunnel encapsulation(s), comma-separated (ovn-encap-type).
        #[arg(long, default_value = "geneve")]
        encap: String,
        /// Where kuryr finds OVN Northbound (recorded as external_ids:kuryr-nb-remote).
        #[arg(long, value_name = "URL")]
        nb: Option<String>,
        /// Where ovn-controller finds OVN Southbound (ovn-remote).
        #[arg(long, value_name = "URL")]
        sb: Option<String>,
        /// Datapath of the bridge (default: the existing bridge's, else system).
        #[arg(long, value_enum)]
        datapath: Option<Datapath>,
        /// The chassis name (system-id; default: the existing one, else the hostname).
        #[arg(long)]
        system_id: Option<String>,
    },
    /// Set the tunnel endpoint address (ovn-encap-ip).
    SetTep { ip: IpAddr },
    /// Set the tunnel encapsulation (ovn-encap-type): geneve, vxlan or stt.
    SetEncap { encap: String },
    /// Set where kuryr finds OVN Northbound.
    SetNb { url: String },
    /// Set where ovn-controller finds OVN Southbound (ovn-remote).
    SetSb { url: String },
    /// Move a NIC into an OVS bridge with its addresses and routes (all or nothing).
    #[command(
        after_help = "Examples:\n  kuryr host nics-to-bridge eth0                 # creates breth0\n  kuryr host nics-to-bridge eth1 --bridge br-phy --datapath netdev"
    )]
    NicsToBridge {
        /// The NIC whose addresses and routes move.
        nic: String,
        /// The bridge to create (default: br<NIC>).
        #[arg(long)]
        bridge: Option<String>,
        /// Datapath of the bridge (default: system if the kernel has the openvswitch module, else netdev).
        #[arg(long, value_enum)]
        datapath: Option<Datapath>,
        /// Fail on purpose after this step, to check that the NIC is restored.
        #[arg(long, value_enum, hide = true)]
        fail_after: Option<nics_to_bridge::Step>,
    },
    /// Show this chassis' settings.
    Show {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

async fn connect(remote: &str) -> anyhow::Result<Client> {
    let mut cfg = Config::new(
        parse_remotes(remote).map_err(|e| anyhow::anyhow!("--ovsdb {remote}: {e}"))?,
        DB,
        TABLES,
    );
    cfg.connect_timeout = Duration::from_secs(3);
    Client::connect(cfg).await.with_context(|| {
        format!("cannot reach the Open_vSwitch database at {remote}: start Open vSwitch (`ovs-ctl start`) or give --ovsdb")
    })
}

fn root(rep: &kuryr_ovsdb::Replica) -> Option<Arc<Row>> {
    rep.table("Open_vSwitch").rows().next().cloned()
}

fn check_encap(encap: &str) -> anyhow::Result<()> {
    kuryr_binding::parse_encaps(encap)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("--encap {encap}: {e}"))
}

fn check_remote(what: &str, url: &str) -> anyhow::Result<()> {
    kuryr_daemon::config::check_remotes(url).map_err(|e| anyhow::anyhow!("{what} {url}: {e}"))
}

/// Sets `keys` in the Open_vSwitch row's external_ids (creating the row, as `ovs-vsctl
/// init` does, on a fresh database).
fn set_keys(t: &mut Txn, root: Option<&Row>, keys: &BTreeMap<String, String>) {
    let drop = datum::set(keys.keys().map(|k| json!(k)));
    let add = datum::map(keys.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match root {
        Some(r) => {
            t.mutate(
                DB,
                vec![by_uuid(r.uuid)],
                vec![txn::mutate_delete("external_ids", drop)],
            );
            t.mutate(
                DB,
                vec![by_uuid(r.uuid)],
                vec![txn::mutate_insert("external_ids", add)],
            );
        }
        None => {
            t.insert(DB, json!({ "external_ids": add }), Some("root"));
        }
    }
}

async fn set_only(client: &Client, keys: BTreeMap<String, String>) -> anyhow::Result<()> {
    client
        .transact_with(Duration::from_secs(10), |rep| {
            let mut t = Txn::new(DB);
            set_keys(&mut t, root(rep).as_deref(), &keys);
            Ok(Some(t))
        })
        .await
        .context("write Open_vSwitch external_ids")?;
    Ok(())
}

#[derive(Serialize, Default)]
struct Shown {
    system_id: Option<String>,
    bridge: Option<String>,
    bridge_exists: bool,
    datapath_type: Option<String>,
    fail_mode: Option<String>,
    in_band_disabled: bool,
    mode: Option<String>,
    /// Inside a VM: the VM's own port.
    parent_port: Option<String>,
    ovn_remote: Option<String>,
    nb_remote: Option<String>,
    encap_type: Option<String>,
    encap_ip: Option<String>,
}

fn show(client: &Client) -> Shown {
    let rep = client.replica();
    let Some(r) = root(&rep) else {
        return Shown::default();
    };
    let ext = r.string_map("external_ids");
    let get = |k: &str| ext.get(k).cloned();
    let underlay = get(MODE_KEY).as_deref() == Some("underlay");
    let bridge = if underlay {
        get(kuryr_binding::UNDERLAY_BRIDGE_KEY).unwrap_or_else(|| "breth0".to_string())
    } else {
        get("ovn-bridge").unwrap_or_else(|| "br-int".to_string())
    };
    let b = rep.table("Bridge").one_by_name(&bridge);
    Shown {
        system_id: get("system-id"),
        bridge_exists: b.is_some(),
        datapath_type: b
            .as_ref()
            .and_then(|b| b.str("datapath_type").map(str::to_string))
            .filter(|s| !s.is_empty()),
        fail_mode: b
            .as_ref()
            .and_then(|b| b.strings("fail_mode").into_iter().next()),
        in_band_disabled: b
            .as_ref()
            .and_then(|b| {
                b.map_value("other_config", "disable-in-band")
                    .map(|v| v == "true")
            })
            .unwrap_or(false),
        bridge: Some(bridge),
        mode: get(MODE_KEY),
        parent_port: get(kuryr_binding::PARENT_PORT_KEY),
        ovn_remote: get("ovn-remote"),
        nb_remote: get(NB_KEY),
        encap_type: get("ovn-encap-type"),
        encap_ip: get("ovn-encap-ip"),
    }
}

impl Host {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let rt = runtime()?;
        let remote = self.ovsdb.clone();
        rt.block_on(async move {
            if let Cmd::NicsToBridge {
                nic,
                bridge,
                datapath,
                fail_after,
            } = self.cmd
            {
                let done = nics_to_bridge::exec(
                    &remote,
                    &nic,
                    bridge,
                    datapath.map(Datapath::as_str),
                    fail_after,
                )
                .await?;
                println!("{done}");
                return Ok(ExitCode::SUCCESS);
            }
            let client = connect(&remote).await?;
            let one = |k: &str, v: String| BTreeMap::from([(k.to_string(), v)]);
            match self.cmd {
                Cmd::Init {
                    bridge,
                    overlay,
                    underlay,
                    parent_port,
                    tep,
                    encap,
                    nb,
                    sb,
                    datapath,
                    system_id,
                } => {
                    check_encap(&encap)?;
                    if let Some(u) = &nb {
                        check_remote("--nb", u)?;
                    }
                    if !underlay && parent_port.is_some() {
                        anyhow::bail!("--parent-port names a VM's own port: it goes with --underlay");
                    }
                    if underlay {
                        let chassis_only = [
                            ("--tep", tep.is_some()),
                            ("--sb", sb.is_some()),
                            ("--datapath", datapath.is_some()),
                            ("--system-id", system_id.is_some()),
                            ("--encap", encap != "geneve"),
                        ];
                        if let Some((flag, _)) = chassis_only.iter().find(|(_, given)| *given) {
                            anyhow::bail!("{flag} sets up an OVN chassis; with --underlay this host is a VM whose hypervisor is the chassis: leave it out");
                        }
                        if let Some(p) = &parent_port {
                            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                                anyhow::bail!("--parent-port {p:?}: expected a port name without spaces");
                            }
                        }
                        let bridge = bridge.unwrap_or_else(|| "breth0".to_string());
                        underlay::init(&client, &remote, &bridge, parent_port, nb).await?;
                        print_show(&show(&client), Format::Table)?;
                        return Ok(ExitCode::SUCCESS);
                    }
                    let bridge = bridge.unwrap_or_else(|| "br-int".to_string());
                    if let Some(u) = &sb {
                        check_remote("--sb", u)?;
                    }
                    init(
                        &client, &remote, &bridge, overlay, tep, &encap, nb, sb, datapath,
                        system_id,
                    )
                    .await?;
                    print_show(&show(&client), Format::Table)?;
                }
                Cmd::SetTep { ip } => {
                    set_only(&client, one("ovn-encap-ip", ip.to_string())).await?
                }
                Cmd::SetEncap { encap } => {
                    check_encap(&encap)?;
                    set_only(&client, one("ovn-encap-type", encap)).await?
                }
                Cmd::SetNb { url } => {
                    check_remote("set-nb", &url)?;
                    set_only(&client, one(NB_KEY, url)).await?
                }
                Cmd::SetSb { url } => {
                    check_remote("set-sb", &url)?;
                    set_only(&client, one("ovn-remote", url)).await?
                }
                Cmd::Show { format } => print_show(&show(&client), format)?,
                Cmd::NicsToBridge { .. } => unreachable!("handled above"),
            }
            Ok(ExitCode::SUCCESS)
        })
    }
}

fn print_show(s: &Shown, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string(s)?),
        Format::Table => {
            let d = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let rows = vec![
                vec!["system-id".into(), d(&s.system_id)],
                vec![
                    "bridge".into(),
                    format!(
                        "{}{}",
                        d(&s.bridge),
                        if s.bridge_exists { "" } else { " (missing)" }
                    ),
                ],
                vec!["datapath".into(), d(&s.datapath_type)],
                vec!["fail-mode".into(), d(&s.fail_mode)],
                vec![
                    "in-band control".into(),
                    if s.in_band_disabled {
                        "off".into()
                    } else {
                        "on".into()
                    },
                ],
                vec!["mode".into(), d(&s.mode)],
                vec!["parent port".into(), d(&s.parent_port)],
                vec!["southbound (ovn-remote)".into(), d(&s.ovn_remote)],
                vec!["northbound".into(), d(&s.nb_remote)],
                vec!["encap".into(), d(&s.encap_type)],
                vec!["tunnel endpoint".into(), d(&s.encap_ip)],
            ];
            print!("{}", table(&["SETTING", "VALUE"], &rows));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn init(
    client: &Client,
    remote: &str,
    bridge: &str,
    overlay: bool,
    tep: Option<IpAddr>,
    encap: &str,
    nb: Option<String>,
    sb: Option<String>,
    datapath: Option<Datapath>,
    system_id: Option<String>,
) -> anyhow::Result<()> {
    let existing = show(client);
    if overlay && tep.is_none() && existing.encap_ip.is_none() {
        anyhow::bail!("--overlay needs this host's tunnel endpoint: give --tep IP (the address other hosts reach this one at)");
    }
    let br_name = bridge.to_string();
    client
        .transact_with(Duration::from_secs(10), |rep| {
            let r = root(rep);
            let ext = r.as_ref().map(|r| r.string_map("external_ids")).unwrap_or_default();
            let sysid = system_id
                .clone()
                .or_else(|| ext.get("system-id").cloned())
                .unwrap_or_else(hostname);
            let br = rep.table("Bridge").one_by_name(&br_name);
            let dp = datapath
                .map(|d| d.as_str().to_string())
                .or_else(|| br.as_ref().and_then(|b| b.str("datapath_type").map(str::to_string)).filter(|s| !s.is_empty()))
                .unwrap_or_else(|| "system".to_string());
            let mut keys = BTreeMap::new();
            keys.insert("system-id".to_string(), sysid);
            keys.insert("ovn-bridge".to_string(), br_name.clone());
            keys.insert("ovn-bridge-datapath-type".to_string(), dp.clone());
            keys.insert("ovn-encap-type".to_string(), encap.to_string());
            keys.insert(MODE_KEY.to_string(), if overlay { "overlay" } else { "underlay" }.to_string());
            if let Some(ip) = tep {
                keys.insert("ovn-encap-ip".to_string(), ip.to_string());
            }
            if let Some(u) = &sb {
                keys.insert("ovn-remote".to_string(), u.clone());
            }
            if let Some(u) = &nb {
                keys.insert(NB_KEY.to_string(), u.clone());
            }
            let mut t = Txn::new(DB);
            set_keys(&mut t, r.as_deref(), &keys);
            match &br {
                Some(b) => {
                    t.update(
                        "Bridge",
                        vec![by_uuid(b.uuid)],
                        json!({"fail_mode": "secure", "datapath_type": dp}),
                    );
                    t.mutate(
                        "Bridge",
                        vec![by_uuid(b.uuid)],
                        vec![
                            txn::mutate_delete("other_config", datum::set([json!("disable-in-band")])),
                        ],
                    );
                    t.mutate(
                        "Bridge",
                        vec![by_uuid(b.uuid)],
                        vec![txn::mutate_insert("other_config", datum::map([("disable-in-band", "true")]))],
                    );
                }
                None => {
                    t.wait_absent("Bridge", vec![txn::eq("name", br_name.as_str())]);
                    t.insert("Interface", json!({"name": br_name, "type": "internal"}), Some("iface"));
                    t.insert("Port", json!({"name": br_name, "interfaces": datum::named_uuid("iface")}), Some("port"));
                    t.insert(
                        "Bridge",
                        json!({"name": br_name, "ports": datum::named_uuid("port"), "fail_mode": "secure",
                               "datapath_type": dp, "other_config": datum::map([("disable-in-band", "true")])}),
                        Some("br"),
                    );
                    let cond = match &r {
                        Some(r) => vec![by_uuid(r.uuid)],
                        None => vec![],
                    };
                    if r.is_some() {
                        t.mutate(DB, cond, vec![txn::mutate_insert("bridges", datum::set([datum::named_uuid("br")]))]);
                    } else {
                        // The Open_vSwitch row is inserted above as "root" in this transaction.
                        t.mutate(DB, vec![json!(["_uuid", "==", datum::named_uuid("root")])], vec![txn::mutate_insert("bridges", datum::set([datum::named_uuid("br")]))]);
                    }
                }
            }
            Ok(Some(t))
        })
        .await
        .with_context(|| format!("configure bridge {bridge} and the OVN settings in {remote}"))?;
    // Check the result as the database holds it now.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = show(client);
        let ok = s.bridge_exists
            && s.fail_mode.as_deref() == Some("secure")
            && s.in_band_disabled
            && (tep.is_none() || s.encap_ip == tep.map(|i| i.to_string()));
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("bridge {bridge} in {remote} does not show the settings just written: check `ovs-vsctl show`");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
