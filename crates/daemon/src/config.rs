//! `kuryr.conf`: kuryr-libnetwork's INI file, read with its section and key names where they
//! exist, plus `[ovn]` and `[ovs]` for the OVN mode. Wrong values are fatal and name the key;
//! unknown keys are warned about, so a kuryr-libnetwork file with options this mode does not
//! use still starts.
mod nested;
mod vif_pool;

pub use nested::{BindingDriver, NestedSettings};
pub use vif_pool::VifPoolSettings;

use ini::{Ini, ParseOption};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONFIG: &str = "/etc/kuryr/kuryr.conf";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid INI file: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: [{section}] {key} = {value:?}: {problem}")]
    Value {
        path: String,
        section: String,
        key: String,
        value: String,
        problem: String,
    },
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Ovn,
    Neutron,
}

/// How endpoints reach the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBindingKind {
    /// A veth pair on the OVS integration bridge.
    Ovs,
    /// No host side at all: for measuring the control plane alone.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Local,
    Global,
}

#[derive(Debug, Clone)]
pub struct OvnSection {
    /// Comma-separated remotes (several: a Raft cluster).
    pub nb_connection: String,
    pub nb_private_key: Option<PathBuf>,
    pub nb_certificate: Option<PathBuf>,
    pub nb_ca_cert: Option<PathBuf>,
    pub default_pool_v4: IpNet,
    pub default_pool_v4_prefix: u8,
    pub default_pool_v6: IpNet,
    pub default_pool_v6_prefix: u8,
    pub write_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct OvsSection {
    pub ovsdb_connection: String,
    pub integration_bridge: String,
}

/// `[neutron]` as kuryr-libnetwork reads it (keystoneauth options plus its own), and the
/// `[DEFAULT]` keys only the Neutron mode uses.
#[derive(Clone, Default)]
pub struct NeutronSection {
    /// `none`, `password` or `v3applicationcredential`.
    pub auth_type: String,
    pub auth_url: Option<String>,
    pub endpoint: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub project_name: Option<String>,
    pub user_domain_name: String,
    pub project_domain_name: String,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<String>,
    pub region_name: Option<String>,
    pub endpoint_type: String,
    pub cafile: Option<PathBuf>,
    pub insecure: bool,
    pub timeout: Option<Duration>,
    pub enable_dhcp: bool,
    pub default_subnetpool_v4: String,
    pub default_subnetpool_v6: String,
    pub vif_plugging_is_fatal: bool,
    pub vif_plugging_timeout: Duration,
    /// `[DEFAULT] subnetpool_name_prefix`.
    pub subnetpool_name_prefix: String,
    /// `[DEFAULT] process_external_connectivity`.
    pub process_external_connectivity: bool,
}

impl std::fmt::Debug for NeutronSection {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeutronSection")
            .field("auth_type", &self.auth_type)
            .field("auth_url", &self.auth_url)
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("project_name", &self.project_name)
            .field("region_name", &self.region_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    pub backend: BackendKind,
    pub capability_scope: Scope,
    /// `connectivity_scope`: what Docker is told the network reaches; `None` reports the
    /// capability scope. `global` on a `--scope swarm` network gives service discovery
    /// across nodes.
    pub connectivity_scope: Option<Scope>,
    /// `serve_while_connecting`: bind the plugin socket before the control plane and the
    /// local Open vSwitch answer (and keep trying them) instead of exiting; what a managed
    /// plugin needs, since Docker disables one that is silent for ~10 s.
    pub serve_while_connecting: bool,
    /// Also serve the plugin API over TCP here (what a kuryr-libnetwork plugin spec points at).
    pub kuryr_uri: Option<SocketAddr>,
    /// `enable_ssl`: serve `kuryr_uri` over TLS with `ssl_cert_file` and `ssl_key_file`.
    pub tls: Option<kuryr_docker::TlsFiles>,
    pub plugin_socket: PathBuf,
    pub debug: bool,
    /// `[DEFAULT] log_file` (a relative one under `log_dir`): where the daemon logs instead of
    /// stderr; reopened on SIGHUP.
    pub log_file: Option<PathBuf>,
    /// `[DEFAULT] use_json`: one JSON object per log line.
    pub use_json: bool,
    /// `[DEFAULT] metrics_address`: serve Prometheus metrics at `http://ADDR/metrics`.
    pub metrics_address: Option<SocketAddr>,
    /// This host's name in Northbound; default: the OVS system-id.
    pub host: Option<String>,
    pub local_default_address_space: String,
    pub global_default_address_space: String,
    pub veth_dst_prefix: String,
    pub host_binding: HostBindingKind,
    /// Containers inside VMs: `[binding] default_driver`, `link_iface`, `parent_port`.
    pub nested: NestedSettings,
    /// `[vif_pool]`: ports made ahead of time (Neutron mode).
    pub vif_pool: VifPoolSettings,
    /// 0: from the tunnel encapsulation.
    pub network_mtu: u32,
    pub port_ready_timeout: Duration,
    pub ovn: OvnSection,
    pub ovs: OvsSection,
    pub neutron: NeutronSection,
    /// Keys this mode does not know: reported at start, not fatal.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            path: None,
            backend: BackendKind::Ovn,
            capability_scope: Scope::Local,
            connectivity_scope: None,
            serve_while_connecting: false,
            kuryr_uri: None,
            tls: None,
            plugin_socket: PathBuf::from("/run/docker/plugins/kuryr.sock"),
            debug: false,
            log_file: None,
            use_json: false,
            metrics_address: None,
            host: None,
            local_default_address_space: "no_address_space".into(),
            global_default_address_space: "no_address_space".into(),
            veth_dst_prefix: "eth".into(),
            host_binding: HostBindingKind::Ovs,
            nested: NestedSettings::default(),
            vif_pool: VifPoolSettings::default(),
            network_mtu: 0,
            port_ready_timeout: Duration::from_secs(30),
            ovn: OvnSection {
                nb_connection: "unix:/var/run/ovn/ovnnb_db.sock".into(),
                nb_private_key: None,
                nb_certificate: None,
                nb_ca_cert: None,
                default_pool_v4: "10.200.0.0/16".parse().unwrap_or_else(|_| unreachable!()),
                default_pool_v4_prefix: 24,
                default_pool_v6: "fd6b:7572:7972::/48"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
                default_pool_v6_prefix: 64,
                write_timeout: Duration::from_secs(10),
            },
            ovs: OvsSection {
                ovsdb_connection: "unix:/var/run/openvswitch/db.sock".into(),
                integration_bridge: "br-int".into(),
            },
            neutron: NeutronSection {
                auth_type: "password".into(),
                user_domain_name: "Default".into(),
                project_domain_name: "Default".into(),
                endpoint_type: "public".into(),
                enable_dhcp: true,
                default_subnetpool_v4: "kuryr".into(),
                default_subnetpool_v6: "kuryr6".into(),
                subnetpool_name_prefix: "kuryrPool".into(),
                process_external_connectivity: true,
                ..NeutronSection::default()
            },
            warnings: Vec::new(),
        }
    }
}

/// Keys read by this version, per section; anything else is warned about.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "DEFAULT",
        &[
            "backend",
            "process_external_connectivity",
            "capability_scope",
            "connectivity_scope",
            "serve_while_connecting",
            "kuryr_uri",
            "enable_ssl",
            "ssl_cert_file",
            "ssl_key_file",
            "plugin_socket",
            "debug",
            "log_file",
            "log_dir",
            "use_json",
            "metrics_address",
            "host",
            "local_default_address_space",
            "global_default_address_space",
        ],
    ),
    (
        "binding",
        &[
            "veth_dst_prefix",
            "default_driver",
            "link_iface",
            "parent_port",
            "nested_port_limit",
            "network_mtu",
            "port_ready_timeout",
        ],
    ),
    (
        "ovn",
        &[
            "ovn_nb_connection",
            "ovn_nb_private_key",
            "ovn_nb_certificate",
            "ovn_nb_ca_cert",
            "default_pool_v4",
            "default_pool_v4_prefix",
            "default_pool_v6",
            "default_pool_v6_prefix",
            "write_timeout",
        ],
    ),
    ("ovs", &["ovsdb_connection", "integration_bridge"]),
];

/// Keys read in the Neutron mode only.
const KNOWN_NEUTRON: &[(&str, &[&str])] = &[
    (
        "DEFAULT",
        &[
            "subnetpool_name_prefix",
            "port_driver",
            "default_port_driver",
            "enabled_port_drivers",
        ],
    ),
    (
        "neutron",
        &[
            "auth_type",
            "auth_url",
            "endpoint",
            "username",
            "password",
            "project_name",
            "user_domain_name",
            "project_domain_name",
            "application_credential_id",
            "application_credential_name",
            "application_credential_secret",
            "region_name",
            "endpoint_type",
            "cafile",
            "insecure",
            "timeout",
            "enable_dhcp",
            "default_subnetpool_v4",
            "default_subnetpool_v6",
            "vif_plugging_is_fatal",
            "vif_plugging_timeout",
        ],
    ),
    (
        "vif_pool",
        &[
            "ports_pool_min",
            "ports_pool_max",
            "ports_pool_batch",
            "ports_pool_update_frequency",
        ],
    ),
];

/// Keys of kuryr-libnetwork's `[neutron]` section that mean "this file is for Neutron".
const NEUTRON_MARKERS: &[&str] = &[
    "auth_url",
    "auth_type",
    "endpoint",
    "username",
    "project_name",
    "token",
];

struct Reader<'a> {
    path: &'a str,
    values: BTreeMap<(String, String), String>,
    /// Keys set by an `OS_<SECTION>__<KEY>` environment variable: its name.
    from_env: BTreeMap<(String, String), String>,
}

impl Reader<'_> {
    fn raw(&self, section: &str, key: &str) -> Option<&str> {
        self.values
            .get(&(section.to_string(), key.to_string()))
            .map(String::as_str)
    }

    fn err(
        &self,
        section: &str,
        key: &str,
        value: &str,
        problem: impl Into<String>,
    ) -> ConfigError {
        let path = match self.from_env.get(&(section.to_string(), key.to_string())) {
            Some(var) => format!("environment variable {var}"),
            None => self.path.to_string(),
        };
        ConfigError::Value {
            path,
            section: section.into(),
            key: key.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    fn string(&self, section: &str, key: &str, target: &mut String) -> Result<(), ConfigError> {
        if let Some(v) = self.raw(section, key) {
            if v.is_empty() {
                return Err(self.err(section, key, v, "must not be empty"));
            }
            *target = v.to_string();
        }
        Ok(())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        section: &str,
        key: &str,
        expected: &str,
        target: &mut T,
    ) -> Result<(), ConfigError> {
        if let Some(v) = self.raw(section, key) {
            *target = v
                .parse()
                .map_err(|_| self.err(section, key, v, format!("expected {expected}")))?;
        }
        Ok(())
    }

    fn bool(&self, section: &str, key: &str, target: &mut bool) -> Result<(), ConfigError> {
        if let Some(v) = self.raw(section, key) {
            *target = match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => return Err(self.err(section, key, v, "expected true or false")),
            };
        }
        Ok(())
    }

    fn seconds(&self, section: &str, key: &str, target: &mut Duration) -> Result<(), ConfigError> {
        if let Some(v) = self.raw(section, key) {
            let s: f64 = v
                .parse()
                .map_err(|_| self.err(section, key, v, "expected a number of seconds"))?;
            if !(0.0..=86_400.0).contains(&s) {
                return Err(self.err(section, key, v, "expected 0 to 86400 seconds"));
            }
            *target = Duration::from_secs_f64(s);
        }
        Ok(())
    }

    fn path(&self, section: &str, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.raw(section, key) {
            Some("") => Ok(None),
            Some(v) if !v.starts_with('/') => {
                Err(self.err(section, key, v, "expected an absolute path"))
            }
            Some(v) => Ok(Some(PathBuf::from(v))),
            None => Ok(None),
        }
    }
}

impl Config {
    /// Reads `path`, or the default file if it exists, or uses the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, std::iter::empty())
    }

    /// As [`Config::load`], then `OS_<SECTION>__<KEY>` variables among `vars` override the
    /// file's keys, as oslo.config reads them (`OS_DEFAULT__CAPABILITY_SCOPE=global`,
    /// `OS_OVN__OVN_NB_CONNECTION=tcp:10.0.0.5:6641`); empty values are ignored. This is
    /// how `docker plugin set` and container images configure kuryr.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let overrides = env_overrides(vars);
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None if overrides.is_empty() => return Ok(Config::default()),
            None => return Config::parse_with_env("", DEFAULT_CONFIG, &overrides),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut c = Config::parse_with_env(&text, &path.display().to_string(), &overrides)?;
        c.path = Some(path);
        Ok(c)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, origin, &[])
    }

    fn parse_with_env(
        text: &str,
        origin: &str,
        overrides: &[EnvOverride],
    ) -> Result<Config, ConfigError> {
        let opt = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ParseOption::default()
        };
        let ini = Ini::load_from_str_opt(text, opt).map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut values = BTreeMap::new();
        let mut warnings = Vec::new();
        for (section, props) in ini.iter() {
            let section = section.unwrap_or("DEFAULT");
            for (k, v) in props.iter() {
                values.insert((section.to_string(), k.to_string()), v.trim().to_string());
            }
        }
        let mut from_env = BTreeMap::new();
        for o in overrides {
            let at = (o.section.clone(), o.key.clone());
            values.insert(at.clone(), o.value.trim().to_string());
            from_env.insert(at, o.var.clone());
        }
        let r = Reader {
            path: origin,
            values,
            from_env,
        };
        let mut c = Config::default();

        // The backend: explicit, else Neutron for a kuryr-libnetwork file, else OVN.
        let has_neutron = NEUTRON_MARKERS
            .iter()
            .any(|k| r.raw("neutron", k).is_some());
        let has_ovn = r.values.keys().any(|(s, _)| s == "ovn");
        c.backend = match r.raw("DEFAULT", "backend") {
            Some("ovn") => BackendKind::Ovn,
            Some("neutron") => BackendKind::Neutron,
            Some(v) => return Err(r.err("DEFAULT", "backend", v, "expected ovn or neutron")),
            None if has_neutron && !has_ovn => BackendKind::Neutron,
            None => BackendKind::Ovn,
        };

        c.capability_scope = match r.raw("DEFAULT", "capability_scope") {
            None | Some("local") => Scope::Local,
            Some("global") => Scope::Global,
            Some(v) => {
                return Err(r.err("DEFAULT", "capability_scope", v, "expected local or global"))
            }
        };
        c.connectivity_scope = match r.raw("DEFAULT", "connectivity_scope") {
            None | Some("") => None,
            Some("local") => Some(Scope::Local),
            Some("global") => Some(Scope::Global),
            Some(v) => {
                return Err(r.err(
                    "DEFAULT",
                    "connectivity_scope",
                    v,
                    "expected local or global",
                ))
            }
        };
        r.bool(
            "DEFAULT",
            "serve_while_connecting",
            &mut c.serve_while_connecting,
        )?;
        if let Some(v) = r.raw("DEFAULT", "kuryr_uri") {
            c.kuryr_uri = Some(parse_uri(v).map_err(|p| r.err("DEFAULT", "kuryr_uri", v, p))?);
        }
        if let Some(v) = r
            .raw("DEFAULT", "metrics_address")
            .filter(|v| !v.is_empty())
        {
            c.metrics_address = Some(
                parse_metrics_address(v).map_err(|p| r.err("DEFAULT", "metrics_address", v, p))?,
            );
        }
        let mut enable_ssl = false;
        r.bool("DEFAULT", "enable_ssl", &mut enable_ssl)?;
        if enable_ssl {
            // kuryr-libnetwork's defaults.
            let cert = r
                .path("DEFAULT", "ssl_cert_file")?
                .unwrap_or_else(|| PathBuf::from("/var/lib/kuryr/certs/cert.pem"));
            let key = r
                .path("DEFAULT", "ssl_key_file")?
                .unwrap_or_else(|| PathBuf::from("/var/lib/kuryr/certs/key.pem"));
            for (k, f) in [("ssl_cert_file", &cert), ("ssl_key_file", &key)] {
                if !f.is_file() {
                    return Err(r.err(
                        "DEFAULT",
                        k,
                        &f.display().to_string(),
                        "no such file (enable_ssl = true needs it)",
                    ));
                }
            }
            if c.kuryr_uri.is_none() {
                return Err(r.err(
                    "DEFAULT",
                    "enable_ssl",
                    "true",
                    "TLS is served on kuryr_uri: set kuryr_uri too",
                ));
            }
            c.tls = Some(kuryr_docker::TlsFiles { cert, key });
        }
        if let Some(p) = r.path("DEFAULT", "plugin_socket")? {
            c.plugin_socket = p;
        }
        r.bool("DEFAULT", "debug", &mut c.debug)?;
        r.bool("DEFAULT", "use_json", &mut c.use_json)?;
        // oslo.log's meaning: log_dir is the base of a relative log_file; alone it does nothing.
        let log_dir = r.path("DEFAULT", "log_dir")?;
        c.log_file = match (r.raw("DEFAULT", "log_file"), log_dir) {
            (None | Some(""), _) => None,
            (Some(f), _) if f.starts_with('/') => Some(PathBuf::from(f)),
            (Some(f), Some(dir)) => Some(dir.join(f)),
            (Some(f), None) => {
                return Err(r.err(
                    "DEFAULT",
                    "log_file",
                    f,
                    "a relative log_file needs log_dir; or give an absolute path",
                ))
            }
        };
        if let Some(h) = r.raw("DEFAULT", "host") {
            if h.is_empty() || h.len() > 253 || h.chars().any(|ch| ch.is_whitespace()) {
                return Err(r.err("DEFAULT", "host", h, "expected a host name without spaces"));
            }
            c.host = Some(h.to_string());
        }
        r.string(
            "DEFAULT",
            "local_default_address_space",
            &mut c.local_default_address_space,
        )?;
        r.string(
            "DEFAULT",
            "global_default_address_space",
            &mut c.global_default_address_space,
        )?;

        r.string("binding", "veth_dst_prefix", &mut c.veth_dst_prefix)?;
        if c.veth_dst_prefix.len() > 12
            || !c
                .veth_dst_prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(r.err(
                "binding",
                "veth_dst_prefix",
                &c.veth_dst_prefix,
                "expected up to 12 letters, digits, '_' or '-'",
            ));
        }
        c.nested = nested::read(&r)?;
        c.vif_pool = vif_pool::read(&r)?;
        c.host_binding = match r.raw("binding", "host_binding") {
            None | Some("ovs") => HostBindingKind::Ovs,
            Some("none") => HostBindingKind::None,
            Some(v) => return Err(r.err("binding", "host_binding", v, "expected ovs or none")),
        };
        r.parse(
            "binding",
            "network_mtu",
            "a number (0 = from the encapsulation)",
            &mut c.network_mtu,
        )?;
        if c.network_mtu != 0 && !(1280..=9216).contains(&c.network_mtu) {
            return Err(r.err(
                "binding",
                "network_mtu",
                &c.network_mtu.to_string(),
                "expected 0 or 1280 to 9216",
            ));
        }
        r.seconds("binding", "port_ready_timeout", &mut c.port_ready_timeout)?;

        r.string("ovn", "ovn_nb_connection", &mut c.ovn.nb_connection)?;
        kuryr_ovsdb::parse_remotes(&c.ovn.nb_connection).map_err(|e| {
            r.err(
                "ovn",
                "ovn_nb_connection",
                &c.ovn.nb_connection,
                e.to_string(),
            )
        })?;
        c.ovn.nb_private_key = r.path("ovn", "ovn_nb_private_key")?;
        c.ovn.nb_certificate = r.path("ovn", "ovn_nb_certificate")?;
        c.ovn.nb_ca_cert = r.path("ovn", "ovn_nb_ca_cert")?;
        let uses_ssl = c
            .ovn
            .nb_connection
            .split(',')
            .any(|s| s.trim().starts_with("ssl:"));
        if uses_ssl
            && (c.ovn.nb_private_key.is_none()
                || c.ovn.nb_certificate.is_none()
                || c.ovn.nb_ca_cert.is_none())
        {
            return Err(r.err(
                "ovn",
                "ovn_nb_connection",
                &c.ovn.nb_connection,
                "ssl: needs ovn_nb_private_key, ovn_nb_certificate and ovn_nb_ca_cert in [ovn]",
            ));
        }
        r.parse(
            "ovn",
            "default_pool_v4",
            "an IPv4 CIDR",
            &mut c.ovn.default_pool_v4,
        )?;
        r.parse(
            "ovn",
            "default_pool_v4_prefix",
            "a prefix length",
            &mut c.ovn.default_pool_v4_prefix,
        )?;
        r.parse(
            "ovn",
            "default_pool_v6",
            "an IPv6 CIDR",
            &mut c.ovn.default_pool_v6,
        )?;
        r.parse(
            "ovn",
            "default_pool_v6_prefix",
            "a prefix length",
            &mut c.ovn.default_pool_v6_prefix,
        )?;
        for (key, pool, prefix, v6, max) in [
            (
                "default_pool_v4",
                c.ovn.default_pool_v4,
                c.ovn.default_pool_v4_prefix,
                false,
                30u8,
            ),
            (
                "default_pool_v6",
                c.ovn.default_pool_v6,
                c.ovn.default_pool_v6_prefix,
                true,
                126u8,
            ),
        ] {
            if pool.addr().is_ipv6() != v6 {
                return Err(r.err(
                    "ovn",
                    key,
                    &pool.to_string(),
                    if v6 {
                        "expected an IPv6 CIDR"
                    } else {
                        "expected an IPv4 CIDR"
                    },
                ));
            }
            if prefix < pool.prefix_len() || prefix > max {
                return Err(r.err(
                    "ovn",
                    &format!("{key}_prefix"),
                    &prefix.to_string(),
                    format!(
                        "expected {} to {max} (pools are carved out of {pool})",
                        pool.prefix_len()
                    ),
                ));
            }
        }
        r.seconds("ovn", "write_timeout", &mut c.ovn.write_timeout)?;

        r.string("ovs", "ovsdb_connection", &mut c.ovs.ovsdb_connection)?;
        kuryr_ovsdb::parse_remotes(&c.ovs.ovsdb_connection).map_err(|e| {
            r.err(
                "ovs",
                "ovsdb_connection",
                &c.ovs.ovsdb_connection,
                e.to_string(),
            )
        })?;
        r.string("ovs", "integration_bridge", &mut c.ovs.integration_bridge)?;

        // Both modes: whether --expose and -p open anything.
        r.bool(
            "DEFAULT",
            "process_external_connectivity",
            &mut c.neutron.process_external_connectivity,
        )?;
        if c.backend == BackendKind::Neutron {
            read_neutron(&r, &mut c.neutron)?;
        }

        for (section, key) in r.values.keys() {
            let neutron_keys = if c.backend == BackendKind::Neutron {
                KNOWN_NEUTRON
            } else {
                &[]
            };
            let known = KNOWN
                .iter()
                .chain(neutron_keys)
                .any(|(s, keys)| s == section && keys.contains(&key.as_str()));
            if !known {
                let from = match r.from_env.get(&(section.clone(), key.clone())) {
                    Some(var) => format!("environment variable {var}"),
                    None => origin.to_string(),
                };
                warnings.push(format!(
                    "{from}: [{section}] {key} is not used by the {} mode; ignored",
                    c.backend_name()
                ));
            }
        }
        c.warnings = warnings;
        Ok(c)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            BackendKind::Ovn => "ovn",
            BackendKind::Neutron => "neutron",
        }
    }
}

/// This process's environment variables that are valid UTF-8 (`std::env::vars` would panic
/// on any other), for [`Config::load_with_env`].
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// One `OS_<SECTION>__<KEY>=value` environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EnvOverride {
    var: String,
    section: String,
    key: String,
    value: String,
}

/// The `OS_<SECTION>__<KEY>` variables with a value: section `DEFAULT` as is, other sections
/// and keys in lower case (`OS_VIF_POOL__PORTS_POOL_MIN` is `[vif_pool] ports_pool_min`).
fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<EnvOverride> {
    let mut out: Vec<EnvOverride> = vars
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix("OS_")?;
            let (section, key) = rest.split_once("__")?;
            if section.is_empty() || key.is_empty() {
                return None;
            }
            let section = if section == "DEFAULT" {
                section.to_string()
            } else {
                section.to_ascii_lowercase()
            };
            Some(EnvOverride {
                section,
                key: key.to_ascii_lowercase(),
                value,
                var,
            })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

fn read_neutron(r: &Reader<'_>, n: &mut NeutronSection) -> Result<(), ConfigError> {
    let opt = |key: &str| {
        r.raw("neutron", key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    r.string("neutron", "auth_type", &mut n.auth_type)?;
    if ![
        "none",
        "noauth",
        "password",
        "v3password",
        "v3applicationcredential",
    ]
    .contains(&n.auth_type.as_str())
    {
        return Err(r.err(
            "neutron",
            "auth_type",
            &n.auth_type,
            "expected none, password or v3applicationcredential",
        ));
    }
    n.auth_url = opt("auth_url");
    n.endpoint = opt("endpoint");
    n.username = opt("username");
    n.password = opt("password");
    n.project_name = opt("project_name");
    r.string("neutron", "user_domain_name", &mut n.user_domain_name)?;
    r.string("neutron", "project_domain_name", &mut n.project_domain_name)?;
    n.application_credential_id = opt("application_credential_id");
    n.application_credential_name = opt("application_credential_name");
    n.application_credential_secret = opt("application_credential_secret");
    n.region_name = opt("region_name");
    r.string("neutron", "endpoint_type", &mut n.endpoint_type)?;
    n.cafile = r.path("neutron", "cafile")?;
    r.bool("neutron", "insecure", &mut n.insecure)?;
    let mut timeout = Duration::ZERO;
    r.seconds("neutron", "timeout", &mut timeout)?;
    n.timeout = (!timeout.is_zero()).then_some(timeout);
    r.bool("neutron", "enable_dhcp", &mut n.enable_dhcp)?;
    r.string(
        "neutron",
        "default_subnetpool_v4",
        &mut n.default_subnetpool_v4,
    )?;
    r.string(
        "neutron",
        "default_subnetpool_v6",
        &mut n.default_subnetpool_v6,
    )?;
    r.bool(
        "neutron",
        "vif_plugging_is_fatal",
        &mut n.vif_plugging_is_fatal,
    )?;
    r.seconds(
        "neutron",
        "vif_plugging_timeout",
        &mut n.vif_plugging_timeout,
    )?;
    r.string(
        "DEFAULT",
        "subnetpool_name_prefix",
        &mut n.subnetpool_name_prefix,
    )?;
    for url in ["auth_url", "endpoint"] {
        if let Some(v) = r.raw("neutron", url).filter(|v| !v.is_empty()) {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(r.err("neutron", url, v, "expected an http:// or https:// URL"));
            }
        }
    }
    Ok(())
}

/// `http://127.0.0.1:23750` (kuryr-libnetwork's form) or `tcp://...` or `HOST:PORT`.
fn parse_uri(v: &str) -> Result<SocketAddr, String> {
    // The scheme does not choose TLS (`enable_ssl` does, as in kuryr-libnetwork).
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .or_else(|| v.strip_prefix("tcp://"))
        .unwrap_or(v)
        .trim_end_matches('/');
    let rest = rest.replace("localhost", "127.0.0.1");
    rest.parse()
        .map_err(|_| "expected http://IP:PORT".to_string())
}

/// `IP:PORT` (`[::1]:9779` for IPv6) or `:PORT` for every address.
pub fn parse_metrics_address(v: &str) -> Result<SocketAddr, String> {
    let bad = || "expected IP:PORT, e.g. 127.0.0.1:9779 (or :9779 for every address)".to_string();
    let full = match v.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => v.replace("localhost", "127.0.0.1"),
    };
    let addr: SocketAddr = full.parse().map_err(|_| bad())?;
    if addr.port() == 0 {
        return Err("port 0 would pick a different port at every start: give a fixed port, e.g. 127.0.0.1:9779".into());
    }
    Ok(addr)
}

/// Checks a comma-separated list of OVSDB remotes, for flags that override the file.
pub fn check_remotes(remotes: &str) -> Result<(), String> {
    kuryr_ovsdb::parse_remotes(remotes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let c = Config::parse("", "kuryr.conf").unwrap();
        assert_eq!(c.backend, BackendKind::Ovn);
        assert_eq!(c.ovn.nb_connection, "unix:/var/run/ovn/ovnnb_db.sock");
        assert_eq!(c.ovs.integration_bridge, "br-int");
        assert_eq!(c.capability_scope, Scope::Local);
        assert!(c.kuryr_uri.is_none());
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn a_kuryr_libnetwork_file_selects_neutron_and_an_explicit_key_overrides() {
        let file = "[DEFAULT]\nkuryr_uri = http://127.0.0.1:23750\ncapability_scope = global\n\n[neutron]\nauth_url = http://127.0.0.1:5000/v3\nauth_type = password\n";
        let c = Config::parse(file, "k.conf").unwrap();
        assert_eq!(c.backend, BackendKind::Neutron);
        assert_eq!(c.kuryr_uri, Some("127.0.0.1:23750".parse().unwrap()));
        assert_eq!(c.capability_scope, Scope::Global);
        let c = Config::parse(&format!("{file}\n[DEFAULT]\nbackend = ovn\n"), "k.conf").unwrap();
        assert_eq!(c.backend, BackendKind::Ovn);
        assert!(
            c.warnings.iter().any(|w| w.contains("[neutron] auth_url")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn neutron_keys_are_read_and_bad_ones_name_the_key() {
        let file = "[DEFAULT]\nsubnetpool_name_prefix = myPool\n[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9696\nvif_plugging_timeout = 20\nvif_plugging_is_fatal = true\nenable_dhcp = false\npassword = s3cret\n";
        let c = Config::parse(file, "k.conf").unwrap();
        assert_eq!(c.backend, BackendKind::Neutron);
        assert_eq!(c.neutron.auth_type, "none");
        assert_eq!(c.neutron.endpoint.as_deref(), Some("http://127.0.0.1:9696"));
        assert_eq!(c.neutron.vif_plugging_timeout, Duration::from_secs(20));
        assert!(c.neutron.vif_plugging_is_fatal && !c.neutron.enable_dhcp);
        assert_eq!(c.neutron.subnetpool_name_prefix, "myPool");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = Config::parse(
            "[neutron]\nauth_type = none\nvif_plugging_timeout = soon\n",
            "k.conf",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("vif_plugging_timeout"), "{e}");
        let e = Config::parse("[neutron]\nauth_type = token\n", "k.conf")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth_type"), "{e}");
        let c = Config::parse(
            "[neutron]\nauth_type = none\nendpoint = http://x\nfrobnicate = 1\n",
            "k.conf",
        )
        .unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("[neutron] frobnicate")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn ovn_keys_are_read() {
        let c = Config::parse(
            "[ovn]\novn_nb_connection = tcp:127.0.0.1:6641,tcp:127.0.0.1:6642\nwrite_timeout = 2.5\ndefault_pool_v4 = 172.30.0.0/16\ndefault_pool_v4_prefix = 26\n[ovs]\nintegration_bridge = br-test\n[binding]\nnetwork_mtu = 1400\nport_ready_timeout = 5\n",
            "k.conf",
        )
        .unwrap();
        assert_eq!(c.ovn.write_timeout, Duration::from_millis(2500));
        assert_eq!(c.ovn.default_pool_v4_prefix, 26);
        assert_eq!(c.ovs.integration_bridge, "br-test");
        assert_eq!(c.network_mtu, 1400);
        assert_eq!(c.port_ready_timeout, Duration::from_secs(5));
    }

    #[test]
    fn metrics_address_forms() {
        let addr = |v: &str| {
            Config::parse(&format!("[DEFAULT]\nmetrics_address = {v}\n"), "kuryr.conf")
                .expect("parse")
                .metrics_address
        };
        assert_eq!(
            addr("127.0.0.1:9779"),
            Some("127.0.0.1:9779".parse().unwrap())
        );
        assert_eq!(
            addr("localhost:9779"),
            Some("127.0.0.1:9779".parse().unwrap())
        );
        assert_eq!(addr("[::1]:9779"), Some("[::1]:9779".parse().unwrap()));
        assert_eq!(addr(":9779"), Some("0.0.0.0:9779".parse().unwrap()));
        assert_eq!(addr(""), None);
        assert_eq!(Config::default().metrics_address, None);
    }

    #[test]
    fn os_section_key_variables_override_the_file_as_oslo_config_reads_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("kuryr.conf");
        std::fs::write(
            &conf,
            "[DEFAULT]\ncapability_scope = local\n[ovn]\novn_nb_connection = unix:/a.sock\n",
        )
        .expect("write");
        let vars = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = Config::load_with_env(
            Some(&conf),
            vars(&[
                ("OS_DEFAULT__CAPABILITY_SCOPE", "global"),
                ("OS_OVN__OVN_NB_CONNECTION", "tcp:10.0.0.5:6641"),
                ("OS_VIF_POOL__PORTS_POOL_MAX", ""),
                ("PATH", "/usr/bin"),
                ("OS_NOSEPARATOR", "x"),
            ]),
        )
        .expect("load");
        assert_eq!(c.capability_scope, Scope::Global);
        assert_eq!(c.ovn.nb_connection, "tcp:10.0.0.5:6641");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let err = Config::load_with_env(
            Some(&conf),
            vars(&[("OS_DEFAULT__CONNECTIVITY_SCOPE", "swarm")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "environment variable OS_DEFAULT__CONNECTIVITY_SCOPE: [DEFAULT] connectivity_scope = \"swarm\": expected local or global"
        );
        let c = Config::load_with_env(Some(&conf), vars(&[("OS_OVN__NO_SUCH_KEY", "1")]))
            .expect("load");
        assert_eq!(
            c.warnings,
            ["environment variable OS_OVN__NO_SUCH_KEY: [ovn] no_such_key is not used by the ovn mode; ignored"]
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, needle) in [
            (
                "[DEFAULT]\ncapability_scope = planet\n",
                "[DEFAULT] capability_scope = \"planet\": expected local or global",
            ),
            (
                "[DEFAULT]\nconnectivity_scope = swarm\n",
                "[DEFAULT] connectivity_scope = \"swarm\": expected local or global",
            ),
            ("[DEFAULT]\nbackend = docker\n", "[DEFAULT] backend"),
            (
                "[DEFAULT]\nkuryr_uri = http://127.0.0.1:23750\nenable_ssl = true\nssl_cert_file = /nonexistent/cert.pem\n",
                "[DEFAULT] ssl_cert_file = \"/nonexistent/cert.pem\": no such file",
            ),
            (
                "[DEFAULT]\nenable_ssl = true\nssl_cert_file = /etc/hostname\nssl_key_file = /etc/hostname\n",
                "set kuryr_uri too",
            ),
            ("[DEFAULT]\nenable_ssl = yes please\n", "[DEFAULT] enable_ssl"),
            ("[DEFAULT]\ndebug = maybe\n", "expected true or false"),
            (
                "[DEFAULT]\nkuryr_uri = http://nowhere\n",
                "[DEFAULT] kuryr_uri",
            ),
            (
                "[DEFAULT]\nmetrics_address = 9779\n",
                "[DEFAULT] metrics_address = \"9779\": expected IP:PORT",
            ),
            (
                "[DEFAULT]\nmetrics_address = 127.0.0.1:0\n",
                "give a fixed port",
            ),
            (
                "[ovn]\novn_nb_connection = http://x\n",
                "[ovn] ovn_nb_connection",
            ),
            (
                "[ovn]\novn_nb_connection = ssl:127.0.0.1:6641\n",
                "needs ovn_nb_private_key",
            ),
            ("[ovn]\nwrite_timeout = soon\n", "[ovn] write_timeout"),
            (
                "[ovn]\ndefault_pool_v4 = fd00::/48\n",
                "expected an IPv4 CIDR",
            ),
            (
                "[ovn]\ndefault_pool_v4_prefix = 8\n",
                "[ovn] default_pool_v4_prefix",
            ),
            ("[binding]\nnetwork_mtu = 100\n", "[binding] network_mtu"),
            (
                "[binding]\nveth_dst_prefix = a/b\n",
                "[binding] veth_dst_prefix",
            ),
            (
                "[binding]\ndefault_driver = kuryr.lib.binding.drivers.ipvlan\n",
                "the ipvlan driver",
            ),
            (
                "[DEFAULT]\nplugin_socket = relative.sock\n",
                "absolute path",
            ),
        ] {
            let err = Config::parse(text, "k.conf").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.starts_with("k.conf"), "{err}");
        }
    }

    #[test]
    fn kuryr_libnetworks_port_drivers_map_to_bindings_or_are_refused() {
        let base = "[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9696\n";
        let veth =
            format!("[DEFAULT]\nport_driver = kuryr_libnetwork.port_driver.drivers.veth\n{base}");
        let c = Config::parse(&veth, "k.conf").unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.nested.driver, Some(BindingDriver::Veth));
        // kuryr-libnetwork's vlan driver: containers inside VMs as trunk subports.
        let nested =
            format!("[DEFAULT]\nport_driver = kuryr_libnetwork.port_driver.drivers.vlan\n{base}");
        let c = Config::parse(&nested, "k.conf").unwrap();
        assert_eq!(c.nested.driver, Some(BindingDriver::Vlan));
        let macvlan = format!(
            "[DEFAULT]\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.nested\nenabled_port_drivers = kuryr_libnetwork.port_driver.drivers.nested\n{base}"
        );
        let c = Config::parse(&macvlan, "k.conf").unwrap();
        assert_eq!(c.nested.driver, Some(BindingDriver::Macvlan));
    }

    #[test]
    fn the_vlan_driver_and_its_keys_in_the_ovn_mode() {
        let c = Config::parse(
            "[binding]\ndefault_driver = kuryr.lib.binding.drivers.vlan\nlink_iface = eth0\nparent_port = vm1-port\nnested_port_limit = 10\n",
            "k.conf",
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.nested.driver, Some(BindingDriver::Vlan));
        assert_eq!(c.nested.link_iface.as_deref(), Some("eth0"));
        assert_eq!(c.nested.parent_port.as_deref(), Some("vm1-port"));
        assert_eq!(c.nested.port_limit, 10);
        // kuryr's own short names, and both spellings agreeing.
        let c = Config::parse(
            "[DEFAULT]\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.vlan\n[binding]\ndefault_driver = vlan\n",
            "k.conf",
        )
        .unwrap();
        assert_eq!(c.nested.driver, Some(BindingDriver::Vlan));
        assert_eq!(Config::default().nested.driver, None);
        assert_eq!(Config::default().nested.port_limit, 4094);
        for (text, needle) in [
            (
                "[DEFAULT]\ndefault_port_driver = veth\n[binding]\ndefault_driver = vlan\n",
                "names another driver than",
            ),
            (
                "[binding]\ndefault_driver = tap\n",
                "expected veth, vlan or macvlan",
            ),
            (
                "[binding]\nnested_port_limit = 4095\n",
                "expected 1 to 4094",
            ),
            ("[binding]\nnested_port_limit = 0\n", "expected 1 to 4094"),
            ("[binding]\nparent_port = a b\n", "[binding] parent_port"),
        ] {
            let err = Config::parse(text, "k.conf").unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn log_file_is_under_log_dir_when_relative() {
        let c = Config::parse(
            "[DEFAULT]\nlog_dir = /var/log/kuryr\nlog_file = kuryr.log\nuse_json = true\n",
            "k.conf",
        )
        .unwrap();
        assert_eq!(c.log_file, Some(PathBuf::from("/var/log/kuryr/kuryr.log")));
        assert!(c.use_json && c.warnings.is_empty(), "{:?}", c.warnings);
        let c = Config::parse("[DEFAULT]\nlog_file = /tmp/k.log\n", "k.conf").unwrap();
        assert_eq!(c.log_file, Some(PathBuf::from("/tmp/k.log")));
        let err = Config::parse("[DEFAULT]\nlog_file = k.log\n", "k.conf")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[DEFAULT] log_file") && err.contains("log_dir"),
            "{err}"
        );
        // log_dir alone logs to stderr, as oslo.log does.
        let c = Config::parse("[DEFAULT]\nlog_dir = /var/log/kuryr\n", "k.conf").unwrap();
        assert_eq!(c.log_file, None);
    }

    #[test]
    fn unknown_keys_warn_and_do_not_fail() {
        let c = Config::parse(
            "[DEFAULT]\nfrobnicate = 1\n[binding]\nveth_dst_prefix = eth\n",
            "k.conf",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("[DEFAULT] frobnicate"));
    }
}
