//! `kuryr config`: write a cluster node's kuryr.conf and Docker plugin spec from flags or the
//! environment a deployment tool sets (`generate`), and check an existing file (`check`).
//! What `generate` writes is parsed back with the daemon's own reader before it touches the
//! disk, so a node never gets a file its daemon refuses.
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use kuryr_daemon::config::{BackendKind, Config, DEFAULT_CONFIG};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr config generate --nb tcp:192.168.50.1:6641 --output /etc/kuryr/kuryr.conf \\
      --spec-dir /etc/docker/plugins
  OS_AUTH_URL=http://keystone:5000/v3 OS_USERNAME=kuryr OS_PASSWORD=... OS_PROJECT_NAME=service \\
      kuryr config generate --backend neutron --output /etc/kuryr/kuryr.conf
  kuryr config check /etc/kuryr/kuryr.conf")]
pub struct ConfigCmd {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a node's kuryr.conf (and, with --spec-dir, Docker's plugin spec file).
    Generate(Box<Generate>),
    /// Check a kuryr.conf: errors name the key and exit 1; warnings exit 0.
    Check {
        /// The file to check.
        #[arg(default_value = DEFAULT_CONFIG)]
        file: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// OVN Northbound directly.
    Ovn,
    /// OpenStack Neutron (kuryr-libnetwork's keys).
    Neutron,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Local,
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SpecFormat {
    /// `kuryr.spec`: one URL, as kuryr-libnetwork ships it.
    Spec,
    /// `kuryr.json`: `{"Name", "Addr"}`.
    Json,
}

/// Every value can also come from the environment, as deployment tools pass it.
#[derive(Args, Debug, Clone)]
pub struct Generate {
    /// Control plane.
    #[arg(long, value_enum, env = "KURYR_BACKEND", default_value = "ovn")]
    pub backend: Backend,
    /// OVN Northbound remote(s), comma-separated (ovn mode).
    #[arg(long, value_name = "URL", env = "KURYR_NB")]
    pub nb: Option<String>,
    /// Private key (PEM) for ssl: Northbound remotes; with --nb-certificate and --nb-ca-cert.
    #[arg(long, value_name = "FILE", env = "KURYR_NB_PRIVATE_KEY")]
    pub nb_private_key: Option<PathBuf>,
    /// This node's certificate (PEM) for ssl: Northbound remotes.
    #[arg(long, value_name = "FILE", env = "KURYR_NB_CERTIFICATE")]
    pub nb_certificate: Option<PathBuf>,
    /// The CA certificate (PEM) Northbound's certificate is checked against.
    #[arg(long, value_name = "FILE", env = "KURYR_NB_CA_CERT")]
    pub nb_ca_cert: Option<PathBuf>,
    /// Neutron's URL; alone (no --auth-url), Neutron without authentication.
    #[arg(long, value_name = "URL", env = "KURYR_NEUTRON_URL")]
    pub neutron_url: Option<String>,
    /// Keystone v3 URL (password or application credential login).
    #[arg(long, value_name = "URL", env = "OS_AUTH_URL")]
    pub auth_url: Option<String>,
    /// password or v3applicationcredential (default: v3applicationcredential when an
    /// application credential is given, else password).
    #[arg(long, value_name = "TYPE", env = "OS_AUTH_TYPE")]
    pub auth_type: Option<String>,
    /// Keystone application credential id (auth_type v3applicationcredential).
    #[arg(long, value_name = "ID", env = "OS_APPLICATION_CREDENTIAL_ID")]
    pub application_credential_id: Option<String>,
    /// Application credential name, instead of its id: needs --username (its owner).
    #[arg(long, value_name = "NAME", env = "OS_APPLICATION_CREDENTIAL_NAME")]
    pub application_credential_name: Option<String>,
    /// Prefer OS_APPLICATION_CREDENTIAL_SECRET: a flag is visible to every user in `ps`.
    #[arg(
        long,
        value_name = "SECRET",
        env = "OS_APPLICATION_CREDENTIAL_SECRET",
        hide_env_values = true
    )]
    pub application_credential_secret: Option<String>,
    /// CA bundle (PEM) Keystone's and Neutron's HTTPS certificates are checked against.
    #[arg(long, value_name = "FILE", env = "OS_CACERT")]
    pub cafile: Option<PathBuf>,
    /// Keystone user kuryr logs in as.
    #[arg(long, env = "OS_USERNAME")]
    pub username: Option<String>,
    /// Prefer OS_PASSWORD: a flag is visible to every user in `ps`.
    #[arg(long, env = "OS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Keystone project of that user (project_name).
    #[arg(long, value_name = "NAME", env = "OS_PROJECT_NAME")]
    pub project: Option<String>,
    /// The user's Keystone domain (default Default).
    #[arg(long, value_name = "NAME", env = "OS_USER_DOMAIN_NAME")]
    pub user_domain: Option<String>,
    /// The project's Keystone domain (default Default).
    #[arg(long, value_name = "NAME", env = "OS_PROJECT_DOMAIN_NAME")]
    pub project_domain: Option<String>,
    /// Region whose Neutron endpoint the catalog gives.
    #[arg(long, value_name = "NAME", env = "OS_REGION_NAME")]
    pub region: Option<String>,
    /// Answered to Docker's GetCapabilities (global: Swarm-wide networks).
    #[arg(long, value_enum, env = "KURYR_SCOPE", default_value = "local")]
    pub scope: ScopeArg,
    /// The OVS integration bridge.
    #[arg(long, env = "KURYR_BRIDGE", default_value = "br-int")]
    pub bridge: String,
    /// Where the plugin API is also served over TCP (what the spec file points at).
    #[arg(
        long,
        value_name = "URL",
        env = "KURYR_URI",
        default_value = "http://127.0.0.1:23750"
    )]
    pub kuryr_uri: String,
    /// This host's name in the control plane (default: the OVS system-id).
    #[arg(long, env = "KURYR_HOST")]
    pub host: Option<String>,
    /// Write kuryr.conf here instead of stdout (mode 0600 when it holds credentials).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write Docker's plugin spec file here (e.g. /etc/docker/plugins).
    #[arg(long, value_name = "DIR")]
    pub spec_dir: Option<PathBuf>,
    /// Spec file form.
    #[arg(long, value_enum, default_value = "spec")]
    pub spec_format: SpecFormat,
}

/// A generated kuryr.conf: its text and whether it holds a secret.
#[derive(Debug)]
pub struct Generated {
    pub text: String,
    pub secret: bool,
    pub config: Config,
}

fn flag_value(what: &str, v: &str) -> anyhow::Result<()> {
    if v.contains(['\n', '\r']) {
        anyhow::bail!("{what}: a line break cannot be written into kuryr.conf");
    }
    if v != v.trim() {
        anyhow::bail!("{what}: leading or trailing spaces would be lost in kuryr.conf");
    }
    Ok(())
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// `v`, or an error saying that `why` needs `flag` (or `env`); never prints the value.
fn need(v: &Option<String>, why: &str, flag: &str, env: &str) -> anyhow::Result<String> {
    let v = given(v)
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{why} needs {flag} (or {env})"))?;
    flag_value(flag, &v)?;
    Ok(v)
}

/// A file path for kuryr.conf: absolute (the daemon does not run from here) and one line.
fn abs_path(p: &Path, flag: &str, env: &str) -> anyhow::Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{flag} ({env}): not a UTF-8 path"))?;
    flag_value(flag, s)?;
    if !s.starts_with('/') {
        anyhow::bail!("{flag} ({env}) = {s:?}: must be an absolute path (the daemon does not run from this directory)");
    }
    Ok(s.to_string())
}

/// How the Neutron mode logs in to Keystone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Password,
    ApplicationCredential,
}

impl Auth {
    fn key(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Password => "password",
            Auth::ApplicationCredential => "v3applicationcredential",
        }
    }
}

impl Generate {
    /// The kuryr.conf for these settings, checked by parsing it back.
    pub fn render(&self) -> anyhow::Result<Generated> {
        let mut t = String::new();
        let mut secret = false;
        let backend = match self.backend {
            Backend::Ovn => "ovn",
            Backend::Neutron => "neutron",
        };
        let scope = match self.scope {
            ScopeArg::Local => "local",
            ScopeArg::Global => "global",
        };
        let _ = writeln!(
            t,
            "# kuryr.conf written by `kuryr config generate`; `kuryr config check` validates it."
        );
        let _ = writeln!(
            t,
            "[DEFAULT]\nbackend = {backend}\ncapability_scope = {scope}"
        );
        flag_value("--kuryr-uri", &self.kuryr_uri)?;
        let _ = writeln!(t, "kuryr_uri = {}", self.kuryr_uri);
        if let Some(h) = &self.host {
            flag_value("--host", h)?;
            let _ = writeln!(t, "host = {h}");
        }
        match self.backend {
            Backend::Ovn => {
                let nb = self
                    .nb
                    .clone()
                    .unwrap_or_else(|| Config::default().ovn.nb_connection);
                flag_value("--nb", &nb)?;
                let _ = writeln!(t, "\n[ovn]\novn_nb_connection = {nb}");
                let tls = [
                    (
                        "--nb-private-key",
                        "KURYR_NB_PRIVATE_KEY",
                        "ovn_nb_private_key",
                        &self.nb_private_key,
                    ),
                    (
                        "--nb-certificate",
                        "KURYR_NB_CERTIFICATE",
                        "ovn_nb_certificate",
                        &self.nb_certificate,
                    ),
                    (
                        "--nb-ca-cert",
                        "KURYR_NB_CA_CERT",
                        "ovn_nb_ca_cert",
                        &self.nb_ca_cert,
                    ),
                ];
                let ssl = nb.split(',').any(|r| r.trim().starts_with("ssl:"));
                if ssl {
                    let missing: Vec<String> = tls
                        .iter()
                        .filter(|(.., v)| v.is_none())
                        .map(|(flag, env, ..)| format!("{flag} (or {env})"))
                        .collect();
                    if !missing.is_empty() {
                        anyhow::bail!(
                            "--nb {nb} has an ssl: remote, which needs --nb-private-key, --nb-certificate and --nb-ca-cert; missing: {}",
                            missing.join(", ")
                        );
                    }
                } else if let Some((flag, env, ..)) = tls.iter().find(|(.., v)| v.is_some()) {
                    anyhow::bail!(
                        "{flag} ({env}) is only for ssl: Northbound remotes, and --nb {nb} has none: use ssl:HOST:PORT or drop the TLS files"
                    );
                }
                for (flag, env, key, v) in tls {
                    if let Some(p) = v {
                        let p = abs_path(p, flag, env)?;
                        let _ = writeln!(t, "{key} = {p}");
                    }
                }
            }
            Backend::Neutron => {
                let _ = writeln!(t, "\n[neutron]");
                if let Some(u) = &self.neutron_url {
                    flag_value("--neutron-url", u)?;
                }
                let auth = self.auth()?;
                let why = format!("--backend neutron with auth_type = {}", auth.key());
                let _ = writeln!(t, "auth_type = {}", auth.key());
                if auth == Auth::None {
                    let u = need(
                        &self.neutron_url,
                        &why,
                        "--neutron-url",
                        "KURYR_NEUTRON_URL",
                    )?;
                    let _ = writeln!(t, "endpoint = {u}");
                } else {
                    let a = need(&self.auth_url, &why, "--auth-url", "OS_AUTH_URL")?;
                    let _ = writeln!(t, "auth_url = {a}");
                    if let Some(u) = &self.neutron_url {
                        let _ = writeln!(t, "endpoint = {u}");
                    }
                }
                match auth {
                    Auth::None => {}
                    Auth::Password => {
                        let username = need(&self.username, &why, "--username", "OS_USERNAME")?;
                        let password = need(&self.password, &why, "--password", "OS_PASSWORD")?;
                        let project = need(&self.project, &why, "--project", "OS_PROJECT_NAME")?;
                        let _ = writeln!(
                            t,
                            "username = {username}\npassword = {password}\nproject_name = {project}"
                        );
                        secret = true;
                        for (flag, key, v) in [
                            ("--user-domain", "user_domain_name", &self.user_domain),
                            (
                                "--project-domain",
                                "project_domain_name",
                                &self.project_domain,
                            ),
                        ] {
                            let v = v.clone().unwrap_or_else(|| "Default".into());
                            flag_value(flag, &v)?;
                            let _ = writeln!(t, "{key} = {v}");
                        }
                    }
                    Auth::ApplicationCredential => {
                        let id = given(&self.application_credential_id);
                        let name = given(&self.application_credential_name);
                        if id.is_none() && name.is_none() {
                            anyhow::bail!("{why} needs --application-credential-id (or OS_APPLICATION_CREDENTIAL_ID), or --application-credential-name (or OS_APPLICATION_CREDENTIAL_NAME) with --username");
                        }
                        if let Some(id) = id {
                            flag_value("--application-credential-id", id)?;
                            let _ = writeln!(t, "application_credential_id = {id}");
                        }
                        if let Some(name) = name {
                            flag_value("--application-credential-name", name)?;
                            // Keystone looks a credential up by name among its user's.
                            let username = need(
                                &self.username,
                                "--application-credential-name (OS_APPLICATION_CREDENTIAL_NAME)",
                                "--username",
                                "OS_USERNAME",
                            )?;
                            let domain =
                                self.user_domain.clone().unwrap_or_else(|| "Default".into());
                            flag_value("--user-domain", &domain)?;
                            let _ = writeln!(
                                t,
                                "application_credential_name = {name}\nusername = {username}\nuser_domain_name = {domain}"
                            );
                        }
                        let s = need(
                            &self.application_credential_secret,
                            &why,
                            "--application-credential-secret",
                            "OS_APPLICATION_CREDENTIAL_SECRET",
                        )?;
                        let _ = writeln!(t, "application_credential_secret = {s}");
                        secret = true;
                    }
                }
                if let Some(r) = &self.region {
                    flag_value("--region", r)?;
                    let _ = writeln!(t, "region_name = {r}");
                }
                if let Some(f) = &self.cafile {
                    let f = abs_path(f, "--cafile", "OS_CACERT")?;
                    let _ = writeln!(t, "cafile = {f}");
                }
            }
        }
        flag_value("--bridge", &self.bridge)?;
        let _ = writeln!(t, "\n[ovs]\nintegration_bridge = {}", self.bridge);

        // The daemon's reader is the judge: its message names the key, and here the flag.
        let config = Config::parse(&t, "generated kuryr.conf").map_err(|e| {
            anyhow::anyhow!("{e} (from the flags or environment given to `kuryr config generate`)")
        })?;
        let want = match self.backend {
            Backend::Ovn => BackendKind::Ovn,
            Backend::Neutron => BackendKind::Neutron,
        };
        if config.backend != want {
            anyhow::bail!("generated kuryr.conf reads back as the {} mode, not {backend}: report this as a bug", config.backend_name());
        }
        if let Some(w) = config.warnings.first() {
            anyhow::bail!("generated kuryr.conf has a key the daemon would ignore: {w}");
        }
        // Values are never printed: they are credentials.
        let n = &config.neutron;
        if n.auth_type == "password" && n.password != self.password {
            anyhow::bail!("--password (OS_PASSWORD) does not read back unchanged from kuryr.conf: avoid leading/trailing spaces and comment characters");
        }
        if n.auth_type == "v3applicationcredential"
            && n.application_credential_secret != self.application_credential_secret
        {
            anyhow::bail!("--application-credential-secret (OS_APPLICATION_CREDENTIAL_SECRET) does not read back unchanged from kuryr.conf: avoid leading/trailing spaces and comment characters");
        }
        Ok(Generated {
            text: t,
            secret,
            config,
        })
    }

    /// The Keystone login: `--auth-type` (OS_AUTH_TYPE) when set, as openstack clients read
    /// it; else an application credential when one is given, a password login with
    /// --auth-url, no authentication with --neutron-url alone.
    pub fn auth(&self) -> anyhow::Result<Auth> {
        if let Some(t) = given(&self.auth_type) {
            return match t {
                "none" | "noauth" => Ok(Auth::None),
                "password" | "v3password" => Ok(Auth::Password),
                "v3applicationcredential" => Ok(Auth::ApplicationCredential),
                _ => anyhow::bail!("--auth-type (OS_AUTH_TYPE) = {t:?}: expected password or v3applicationcredential (or none, with --neutron-url)"),
            };
        }
        if [
            &self.application_credential_id,
            &self.application_credential_name,
            &self.application_credential_secret,
        ]
        .into_iter()
        .any(|v| given(v).is_some())
        {
            return Ok(Auth::ApplicationCredential);
        }
        match (&self.auth_url, &self.neutron_url) {
            (Some(_), _) => Ok(Auth::Password),
            (None, Some(_)) => Ok(Auth::None),
            (None, None) => anyhow::bail!(
                "--backend neutron needs --auth-url (or OS_AUTH_URL) for a Keystone login, or --neutron-url (or KURYR_NEUTRON_URL) for Neutron without authentication"
            ),
        }
    }

    /// The plugin spec file's name and contents.
    pub fn spec(&self) -> anyhow::Result<(&'static str, String)> {
        let uri = self.kuryr_uri.replace("tcp://", "http://");
        Ok(match self.spec_format {
            SpecFormat::Spec => ("kuryr.spec", format!("{uri}\n")),
            SpecFormat::Json => (
                "kuryr.json",
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "Name": "kuryr",
                        "Addr": uri,
                    }))?
                ),
            ),
        })
    }

    fn exec(self) -> anyhow::Result<ExitCode> {
        if self.backend == Backend::Ovn && (self.auth_url.is_some() || self.neutron_url.is_some()) {
            eprintln!("kuryr: note: --auth-url/--neutron-url (or OS_AUTH_URL/KURYR_NEUTRON_URL) ignored: --backend is ovn");
        }
        if self.backend == Backend::Neutron {
            if let Ok(auth) = self.auth() {
                let ignored: &[(&str, bool)] = match auth {
                    Auth::ApplicationCredential => &[
                        ("--password (OS_PASSWORD)", self.password.is_some()),
                        ("--project (OS_PROJECT_NAME)", self.project.is_some()),
                    ],
                    Auth::Password => &[(
                        "--application-credential-* (OS_APPLICATION_CREDENTIAL_*)",
                        self.application_credential_id.is_some()
                            || self.application_credential_name.is_some()
                            || self.application_credential_secret.is_some(),
                    )],
                    Auth::None => &[],
                };
                for (what, _) in ignored.iter().filter(|(_, set)| *set) {
                    eprintln!("kuryr: note: {what} ignored: auth_type is {}", auth.key());
                }
            }
        }
        let g = self.render()?;
        let spec = match &self.spec_dir {
            Some(dir) => Some((dir, self.spec()?)),
            None => None,
        };
        match &self.output {
            Some(path) => {
                write_file(path, &g.text, if g.secret { 0o600 } else { 0o644 })?;
                eprintln!(
                    "kuryr: wrote {} ({} mode{})",
                    path.display(),
                    g.config.backend_name(),
                    match (g.secret, g.config.neutron.auth_type.as_str()) {
                        (false, _) => "",
                        (true, "v3applicationcredential") =>
                            ", mode 0600: it holds an application credential secret",
                        (true, _) => ", mode 0600: it holds a password",
                    }
                );
            }
            None => print!("{}", g.text),
        }
        if let Some((dir, (name, text))) = spec {
            let path = dir.join(name);
            write_file(&path, &text, 0o644)?;
            eprintln!("kuryr: wrote {}", path.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes `text` to `path` with `mode` through a temporary file in the same directory, so a
/// reader never sees half a file and a secret is never readable by others, even briefly.
fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("create directory {} for {}", dir.display(), path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have removed bits; set exactly what was asked.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("write {}", path.display()));
    }
    Ok(())
}

/// Problems the reader does not make fatal but that stop the daemon or a login later.
pub fn semantic_problems(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let origin = c
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "kuryr.conf".into());
    if c.backend == BackendKind::Neutron {
        let n = &c.neutron;
        match n.auth_type.as_str() {
            "none" | "noauth" if n.endpoint.is_none() => out.push(format!(
                "{origin}: [neutron] endpoint is missing: auth_type = {} needs Neutron's URL there",
                n.auth_type
            )),
            "password" | "v3password" => {
                for (key, v) in [
                    ("auth_url", &n.auth_url),
                    ("username", &n.username),
                    ("password", &n.password),
                    ("project_name", &n.project_name),
                ] {
                    if v.is_none() {
                        out.push(format!(
                            "{origin}: [neutron] {key} is missing: auth_type = password needs auth_url, username, password and project_name"
                        ));
                    }
                }
            }
            "v3applicationcredential" => {
                if n.auth_url.is_none() {
                    out.push(format!("{origin}: [neutron] auth_url is missing: auth_type = v3applicationcredential needs Keystone's URL"));
                }
                if n.application_credential_secret.is_none() {
                    out.push(format!(
                        "{origin}: [neutron] application_credential_secret is missing"
                    ));
                }
                if n.application_credential_id.is_none() && n.application_credential_name.is_none()
                {
                    out.push(format!(
                        "{origin}: [neutron] application_credential_id (or _name) is missing"
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// The result of `config check`: fatal errors and warnings, each one line naming the key.
pub fn check_file(path: &Path) -> (Vec<String>, Vec<String>) {
    let c = match Config::load(Some(path)) {
        Ok(c) => c,
        Err(e) => return (vec![e.to_string()], Vec::new()),
    };
    let mut warnings = c.warnings.clone();
    if let Some(p) = &c.path {
        if (c.neutron.password.is_some() || c.neutron.application_credential_secret.is_some())
            && std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o077 != 0)
                .unwrap_or(false)
        {
            warnings.push(format!(
                "{}: holds a credential but others may read it: chmod 600 {}",
                p.display(),
                p.display()
            ));
        }
    }
    (semantic_problems(&c), warnings)
}

impl ConfigCmd {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        match self.cmd {
            Cmd::Generate(g) => g.exec(),
            Cmd::Check { file } => {
                let (errors, warnings) = check_file(&file);
                for w in &warnings {
                    println!("warning: {w}");
                }
                for e in &errors {
                    println!("error: {e}");
                }
                if errors.is_empty() {
                    println!(
                        "{}: ok{}",
                        file.display(),
                        if warnings.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} warning(s))", warnings.len())
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                } else {
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        g: Generate,
    }

    /// Held by every test that parses flags: clap also reads the environment, which one test sets.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn gen_unlocked(args: &[&str]) -> anyhow::Result<Generated> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v)?.g.render()
    }

    fn gen(args: &[&str]) -> anyhow::Result<Generated> {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        gen_unlocked(args)
    }

    #[test]
    fn ovn_round_trips_through_the_daemon_reader() {
        let g = gen(&[
            "--backend",
            "ovn",
            "--nb",
            "tcp:192.168.50.1:6641,tcp:192.168.50.2:6641",
            "--scope",
            "global",
            "--bridge",
            "br-x",
            "--kuryr-uri",
            "http://127.0.0.1:23751",
            "--host",
            "node-1",
        ])
        .unwrap();
        let c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(c.backend, BackendKind::Ovn);
        assert_eq!(
            c.ovn.nb_connection,
            "tcp:192.168.50.1:6641,tcp:192.168.50.2:6641"
        );
        assert_eq!(c.ovs.integration_bridge, "br-x");
        assert_eq!(c.capability_scope, kuryr_daemon::config::Scope::Global);
        assert_eq!(c.kuryr_uri, Some("127.0.0.1:23751".parse().unwrap()));
        assert_eq!(c.host.as_deref(), Some("node-1"));
        assert!(!g.secret);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn neutron_password_login_round_trips_and_is_secret() {
        let g = gen(&[
            "--backend",
            "neutron",
            "--auth-url",
            "http://keystone:5000/v3",
            "--username",
            "kuryr",
            "--password",
            "s3cret!",
            "--project",
            "service",
            "--region",
            "RegionOne",
        ])
        .unwrap();
        assert!(g.secret);
        let c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(c.backend, BackendKind::Neutron);
        assert_eq!(c.neutron.auth_type, "password");
        assert_eq!(c.neutron.password.as_deref(), Some("s3cret!"));
        assert_eq!(c.neutron.project_name.as_deref(), Some("service"));
        assert_eq!(c.neutron.user_domain_name, "Default");
        assert_eq!(c.neutron.region_name.as_deref(), Some("RegionOne"));
        assert!(semantic_problems(&c).is_empty());
    }

    #[test]
    fn neutron_without_auth_uses_the_endpoint() {
        let g = gen(&[
            "--backend",
            "neutron",
            "--neutron-url",
            "http://127.0.0.1:9696",
        ])
        .unwrap();
        let c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(c.neutron.auth_type, "none");
        assert_eq!(c.neutron.endpoint.as_deref(), Some("http://127.0.0.1:9696"));
        assert!(!g.secret);
    }

    #[test]
    fn environment_variables_are_read() {
        // One test touches the environment, so parallel tests do not see each other's values.
        let vars = [
            ("KURYR_BACKEND", "neutron"),
            ("OS_AUTH_URL", "http://keystone:5000/v3"),
            ("OS_USERNAME", "envuser"),
            ("OS_PASSWORD", "envpass"),
            ("OS_PROJECT_NAME", "envproject"),
            ("OS_USER_DOMAIN_NAME", "dom"),
            ("KURYR_SCOPE", "global"),
            ("OS_CACERT", "/etc/ssl/ca.pem"),
        ];
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in vars {
            // Every test here that reads these variables holds ENV.
            std::env::set_var(k, v);
        }
        let g = gen_unlocked(&[]);
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        let g = g.unwrap();
        let c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(c.backend, BackendKind::Neutron);
        assert_eq!(c.neutron.username.as_deref(), Some("envuser"));
        assert_eq!(c.neutron.password.as_deref(), Some("envpass"));
        assert_eq!(c.neutron.user_domain_name, "dom");
        assert_eq!(
            c.neutron.cafile.as_deref(),
            Some(Path::new("/etc/ssl/ca.pem"))
        );
        assert_eq!(c.capability_scope, kuryr_daemon::config::Scope::Global);
    }

    #[test]
    fn bad_values_name_the_key_or_flag_and_never_the_password() {
        for (args, needle) in [
            (&["--nb", "http://x"][..], "[ovn] ovn_nb_connection"),
            (
                &["--kuryr-uri", "http://nowhere"][..],
                "[DEFAULT] kuryr_uri",
            ),
            (&["--host", "a b"][..], "[DEFAULT] host"),
            (&["--backend", "neutron"][..], "--auth-url"),
            (
                &["--backend", "neutron", "--neutron-url", "ftp://x"][..],
                "[neutron] endpoint",
            ),
            (
                &[
                    "--backend",
                    "neutron",
                    "--auth-url",
                    "http://k:5000/v3",
                    "--username",
                    "u",
                    "--project",
                    "p",
                ][..],
                "--password (or OS_PASSWORD)",
            ),
            (&["--nb", "tcp:1.2.3.4:6641\nx=y"][..], "--nb"),
        ] {
            let err = gen(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let err = gen(&[
            "--backend",
            "neutron",
            "--auth-url",
            "http://k:5000/v3",
            "--username",
            "u",
            "--project",
            "p",
            "--password",
            " pw-secret",
        ])
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(err.contains("--password"), "{err}");
        assert!(!err.contains("pw-secret"), "{err}");
    }

    #[test]
    fn ssl_northbound_needs_all_three_absolute_tls_files() {
        let ssl = ["--nb", "tcp:10.0.0.2:6641,ssl:10.0.0.1:6641"];
        let files = [
            "--nb-private-key",
            "/etc/kuryr/nb-key.pem",
            "--nb-certificate",
            "/etc/kuryr/nb-cert.pem",
            "--nb-ca-cert",
            "/etc/kuryr/nb-ca.pem",
        ];
        let g = gen(&[&ssl[..], &files[..]].concat()).unwrap();
        assert!(!g.secret, "paths are not secrets");
        let c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(
            c.ovn.nb_private_key.as_deref(),
            Some(Path::new("/etc/kuryr/nb-key.pem"))
        );
        assert_eq!(
            c.ovn.nb_certificate.as_deref(),
            Some(Path::new("/etc/kuryr/nb-cert.pem"))
        );
        assert_eq!(
            c.ovn.nb_ca_cert.as_deref(),
            Some(Path::new("/etc/kuryr/nb-ca.pem"))
        );

        let err = gen(&[&ssl[..], &files[2..4]].concat())
            .unwrap_err()
            .to_string();
        for needle in [
            "--nb-private-key (or KURYR_NB_PRIVATE_KEY)",
            "--nb-ca-cert (or KURYR_NB_CA_CERT)",
        ] {
            assert!(err.contains(needle), "{err}");
        }
        assert!(!err.contains("--nb-certificate (or"), "{err}");

        let err = gen(&[&["--nb", "tcp:10.0.0.1:6641"][..], &files[..]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("only for ssl:"), "{err}");

        let mut rel = files;
        rel[5] = "nb-ca.pem";
        let err = gen(&[&ssl[..], &rel[..]].concat()).unwrap_err().to_string();
        assert!(
            err.contains("--nb-ca-cert") && err.contains("absolute"),
            "{err}"
        );
    }

    const APP: [&str; 6] = [
        "--backend",
        "neutron",
        "--auth-url",
        "http://keystone:5000/v3",
        "--application-credential-secret",
        "app-S3cret",
    ];

    #[test]
    fn an_application_credential_id_selects_v3applicationcredential() {
        let g = gen(&[
            &APP[..],
            &[
                "--application-credential-id",
                "0123abcd",
                "--cafile",
                "/etc/ssl/keystone-ca.pem",
            ],
        ]
        .concat())
        .unwrap();
        assert!(g.secret);
        let mut c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(c.neutron.auth_type, "v3applicationcredential");
        assert_eq!(
            c.neutron.application_credential_id.as_deref(),
            Some("0123abcd")
        );
        assert_eq!(
            c.neutron.application_credential_secret.as_deref(),
            Some("app-S3cret")
        );
        assert_eq!(c.neutron.password, None);
        assert_eq!(
            c.neutron.cafile.as_deref(),
            Some(Path::new("/etc/ssl/keystone-ca.pem"))
        );
        assert!(
            semantic_problems(&c).is_empty(),
            "{:?}",
            semantic_problems(&c)
        );
        // The client reads the CA file, which does not exist here; the credentials are what counts.
        c.neutron.cafile = None;
        kuryr_daemon::neutron_client(&c).expect("the daemon accepts these credentials");
    }

    #[test]
    fn an_application_credential_name_goes_with_its_user() {
        let by_name = [&APP[..], &["--application-credential-name", "kuryr-node"]].concat();
        let err = gen(&by_name).unwrap_err().to_string();
        assert!(err.contains("--username (or OS_USERNAME)"), "{err}");
        let g = gen(&[
            &by_name[..],
            &["--username", "kuryr", "--user-domain", "ops"],
        ]
        .concat())
        .unwrap();
        let c = Config::parse(&g.text, "k").unwrap();
        assert_eq!(c.neutron.auth_type, "v3applicationcredential");
        assert_eq!(
            c.neutron.application_credential_name.as_deref(),
            Some("kuryr-node")
        );
        assert_eq!(c.neutron.username.as_deref(), Some("kuryr"));
        assert_eq!(c.neutron.user_domain_name, "ops");
        kuryr_daemon::neutron_client(&c).expect("the daemon accepts these credentials");
    }

    #[test]
    fn auth_type_chooses_the_login_and_names_what_it_lacks() {
        let password = [
            "--backend",
            "neutron",
            "--auth-url",
            "http://k:5000/v3",
            "--username",
            "u",
            "--password",
            "pw-Secret",
            "--project",
            "p",
        ];
        // An explicit password login ignores a stray application credential.
        let g = gen(&[
            &password[..],
            &[
                "--auth-type",
                "password",
                "--application-credential-id",
                "abc",
                "--application-credential-secret",
                "app-S3cret",
            ],
        ]
        .concat())
        .unwrap();
        assert!(g.text.contains("auth_type = password\n"), "{}", g.text);
        assert!(!g.text.contains("app-S3cret"), "{}", g.text);
        // And v3applicationcredential leaves the password out of the file.
        let err = gen(&[&password[..], &["--auth-type", "v3applicationcredential"]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--application-credential-id"), "{err}");
        let g = gen(&[
            &password[..],
            &[
                "--auth-type",
                "v3applicationcredential",
                "--application-credential-id",
                "abc",
                "--application-credential-secret",
                "app-S3cret",
            ],
        ]
        .concat())
        .unwrap();
        assert!(!g.text.contains("pw-Secret"), "{}", g.text);
        for (args, needle) in [
            (
                &[&APP[..2], &["--auth-type", "v3applicationcredential"]].concat(),
                "--auth-url (or OS_AUTH_URL)",
            ),
            (
                &[&APP[..4], &["--application-credential-id", "abc"]].concat(),
                "--application-credential-secret (or OS_APPLICATION_CREDENTIAL_SECRET)",
            ),
            (&APP.to_vec(), "--application-credential-id"),
            (
                &[&APP[..], &["--auth-type", "password"]].concat(),
                "--username (or OS_USERNAME)",
            ),
            (
                &[&APP[..], &["--auth-type", "token"]].concat(),
                "--auth-type (OS_AUTH_TYPE)",
            ),
            (
                &[
                    &APP[..],
                    &["--application-credential-id", "a", "--cafile", "ca.pem"],
                ]
                .concat(),
                "--cafile (OS_CACERT)",
            ),
            (
                &[
                    &APP[..4],
                    &[
                        "--application-credential-id",
                        "a",
                        "--application-credential-secret",
                        "app-S3cret ",
                    ],
                ]
                .concat(),
                "--application-credential-secret",
            ),
        ] {
            let err = gen(args).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains("app-S3cret"), "{err}");
        }
    }

    #[test]
    fn spec_file_points_at_kuryr_uri() {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let t = T::try_parse_from(["t", "--kuryr-uri", "http://127.0.0.1:23750"]).unwrap();
        assert_eq!(
            t.g.spec().unwrap(),
            ("kuryr.spec", "http://127.0.0.1:23750\n".to_string())
        );
        let t = T::try_parse_from(["t", "--spec-format", "json"]).unwrap();
        let (name, text) = t.g.spec().unwrap();
        assert_eq!(name, "kuryr.json");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["Name"], "kuryr");
        assert_eq!(v["Addr"], "http://127.0.0.1:23750");
    }

    #[test]
    fn written_files_get_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/kuryr.conf");
        write_file(&p, "x", 0o600).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_file(&p, "y", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "y");
    }

    #[test]
    fn check_reports_missing_credentials_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.conf");
        std::fs::write(
            &p,
            "[neutron]\nauth_type = password\nauth_url = http://k:5000/v3\nusername = u\n",
        )
        .unwrap();
        let (errors, _) = check_file(&p);
        assert!(
            errors.iter().any(|e| e.contains("[neutron] password")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("[neutron] project_name")),
            "{errors:?}"
        );
    }
}
