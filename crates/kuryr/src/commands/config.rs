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
    /// Neutron's URL; alone (no --auth-url), Neutron without authentication.
    #[arg(long, value_name = "URL", env = "KURYR_NEUTRON_URL")]
    pub neutron_url: Option<String>,
    /// Keystone v3 URL (password login).
    #[arg(long, value_name = "URL", env = "OS_AUTH_URL")]
    pub auth_url: Option<String>,
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

fn need(v: &Option<String>, flag: &str, env: &str) -> anyhow::Result<String> {
    v.clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--backend neutron with --auth-url needs {flag} (or {env})"))
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
            }
            Backend::Neutron => {
                let _ = writeln!(t, "\n[neutron]");
                if let Some(u) = &self.neutron_url {
                    flag_value("--neutron-url", u)?;
                }
                match (&self.auth_url, &self.neutron_url) {
                    (None, None) => anyhow::bail!(
                        "--backend neutron needs --auth-url (or OS_AUTH_URL) for a Keystone login, or --neutron-url (or KURYR_NEUTRON_URL) for Neutron without authentication"
                    ),
                    (None, Some(u)) => {
                        let _ = writeln!(t, "auth_type = none\nendpoint = {u}");
                    }
                    (Some(a), endpoint) => {
                        flag_value("--auth-url", a)?;
                        let username = need(&self.username, "--username", "OS_USERNAME")?;
                        let password = need(&self.password, "--password", "OS_PASSWORD")?;
                        let project = need(&self.project, "--project", "OS_PROJECT_NAME")?;
                        flag_value("--username", &username)?;
                        flag_value("--password", &password)?;
                        flag_value("--project", &project)?;
                        let _ = writeln!(t, "auth_type = password\nauth_url = {a}");
                        if let Some(u) = endpoint {
                            let _ = writeln!(t, "endpoint = {u}");
                        }
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
                }
                if let Some(r) = &self.region {
                    flag_value("--region", r)?;
                    let _ = writeln!(t, "region_name = {r}");
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
        if secret && config.neutron.password != self.password {
            // The value is never printed: it is a credential.
            anyhow::bail!("--password (OS_PASSWORD) does not read back unchanged from kuryr.conf: avoid leading/trailing spaces and comment characters");
        }
        Ok(Generated {
            text: t,
            secret,
            config,
        })
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
                    if g.secret {
                        ", mode 0600: it holds a password"
                    } else {
                        ""
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
