//! `kuryr config generate`, `kuryr config check` and `kuryr doctor` as an operator or a
//! deployment tool runs them: files written and their modes, exit codes, messages that name
//! the key or the check and the fix. The doctor runs against the lab are ignored in a plain
//! `cargo test` and run by `make test`.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KURYR: &str = env!("CARGO_BIN_EXE_kuryr");

/// Variables `config generate` reads: cleared so the caller's shell cannot change a result.
const ENV: &[&str] = &[
    "KURYR_BACKEND",
    "KURYR_NB",
    "KURYR_NEUTRON_URL",
    "KURYR_SCOPE",
    "KURYR_BRIDGE",
    "KURYR_URI",
    "KURYR_HOST",
    "OS_AUTH_URL",
    "OS_USERNAME",
    "OS_PASSWORD",
    "OS_PROJECT_NAME",
    "OS_USER_DOMAIN_NAME",
    "OS_PROJECT_DOMAIN_NAME",
    "OS_REGION_NAME",
    "OS_AUTH_TYPE",
    "OS_APPLICATION_CREDENTIAL_ID",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_CACERT",
    "KURYR_NB_PRIVATE_KEY",
    "KURYR_NB_CERTIFICATE",
    "KURYR_NB_CA_CERT",
];

/// Runs kuryr with `env`, killing it and failing the test after `limit`.
fn kuryr_env(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(KURYR);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A proxy from the caller's shell would stand between doctor and the local test servers.
    for k in ENV
        .iter()
        .chain(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
    {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start kuryr");
    while child.try_wait().expect("wait for kuryr").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("kuryr output");
            panic!(
                "kuryr {} still running after {limit:?}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("kuryr output")
}

fn kuryr(args: &[&str]) -> Output {
    kuryr_env(args, &[], Duration::from_secs(30))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn generate_from_the_environment_writes_a_private_conf_and_the_spec_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("etc/kuryr/kuryr.conf");
    let specs = dir.path().join("plugins");
    let out = kuryr_env(
        &[
            "config",
            "generate",
            "--output",
            conf.to_str().unwrap(),
            "--spec-dir",
            specs.to_str().unwrap(),
        ],
        &[
            ("KURYR_BACKEND", "neutron"),
            ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
            ("OS_USERNAME", "kuryr"),
            ("OS_PASSWORD", "Very-Secret-9"),
            ("OS_PROJECT_NAME", "service"),
            ("KURYR_URI", "http://127.0.0.1:23750"),
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Very-Secret-9"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("Very-Secret-9"), "{}", stdout(&out));
    assert_eq!(mode(&conf), 0o600, "a file with a password is private");
    let text = std::fs::read_to_string(&conf).expect("read kuryr.conf");
    for line in [
        "backend = neutron",
        "auth_type = password",
        "auth_url = http://127.0.0.1:5000/v3",
        "username = kuryr",
        "password = Very-Secret-9",
        "project_name = service",
        "kuryr_uri = http://127.0.0.1:23750",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert_eq!(
        std::fs::read_to_string(specs.join("kuryr.spec")).expect("read kuryr.spec"),
        "http://127.0.0.1:23750\n"
    );
    assert_eq!(mode(&specs.join("kuryr.spec")), 0o644);

    // What generate wrote, check accepts.
    let out = kuryr(&["config", "check", conf.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(": ok"), "{}", stdout(&out));

    // Without credentials the file is world-readable; to stdout without --output.
    let conf2 = dir.path().join("ovn.conf");
    let out = kuryr(&[
        "config",
        "generate",
        "--nb",
        "tcp:192.168.50.1:6641",
        "--output",
        conf2.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&conf2), 0o644);
    let out = kuryr(&["config", "generate", "--nb", "tcp:192.168.50.1:6641"]);
    assert!(stdout(&out).contains("ovn_nb_connection = tcp:192.168.50.1:6641"));
}

#[test]
fn generate_writes_an_application_credential_privately_and_never_prints_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    let out = kuryr_env(
        &["config", "generate", "--output", conf.to_str().unwrap()],
        &[
            ("KURYR_BACKEND", "neutron"),
            ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
            ("OS_APPLICATION_CREDENTIAL_ID", "6f1c2a"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "App-Secret-7"),
            ("OS_CACERT", "/etc/ssl/certs/keystone-ca.pem"),
            // What an openrc also sets; not needed, and not written, with an app credential.
            ("OS_PASSWORD", "Very-Secret-9"),
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for secret in ["App-Secret-7", "Very-Secret-9"] {
        assert!(!stderr(&out).contains(secret), "{}", stderr(&out));
        assert!(!stdout(&out).contains(secret), "{}", stdout(&out));
    }
    assert!(
        stderr(&out).contains("--password (OS_PASSWORD) ignored"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&conf), 0o600, "a file with a secret is private");
    let c = kuryr_daemon::config::Config::load(Some(&conf)).expect("the daemon reads it");
    assert_eq!(c.neutron.auth_type, "v3applicationcredential");
    assert_eq!(
        c.neutron.application_credential_id.as_deref(),
        Some("6f1c2a")
    );
    assert_eq!(
        c.neutron.application_credential_secret.as_deref(),
        Some("App-Secret-7")
    );
    assert_eq!(c.neutron.password, None);
    assert_eq!(
        c.neutron.cafile.as_deref(),
        Some(Path::new("/etc/ssl/certs/keystone-ca.pem"))
    );
    let out = kuryr(&["config", "check", conf.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // OS_AUTH_TYPE is honoured, and what that login lacks is named.
    let conf2 = dir.path().join("named.conf");
    let out = kuryr_env(
        &["config", "generate", "--output", conf2.to_str().unwrap()],
        &[
            ("KURYR_BACKEND", "neutron"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "kuryr-node"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "App-Secret-7"),
        ],
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "a credential name without its user");
    assert!(
        stderr(&out).contains("--username (or OS_USERNAME)"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("App-Secret-7"), "{}", stderr(&out));
    assert!(!conf2.exists(), "a refused file was written");
}

#[test]
fn generate_writes_northbound_tls_files_for_ssl_remotes_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    let tls = [
        ("KURYR_NB_PRIVATE_KEY", "/etc/kuryr/nb-privkey.pem"),
        ("KURYR_NB_CERTIFICATE", "/etc/kuryr/nb-cert.pem"),
        ("KURYR_NB_CA_CERT", "/etc/kuryr/nb-cacert.pem"),
    ];
    let mut env = vec![("KURYR_NB", "ssl:192.168.50.1:6641,ssl:192.168.50.2:6641")];
    env.extend_from_slice(&tls);
    let base = ["config", "generate", "--output", conf.to_str().unwrap()];
    let out = kuryr_env(&base, &env, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&conf), 0o644, "paths to the files are not secrets");
    let text = std::fs::read_to_string(&conf).expect("read kuryr.conf");
    for line in [
        "ovn_nb_connection = ssl:192.168.50.1:6641,ssl:192.168.50.2:6641",
        "ovn_nb_private_key = /etc/kuryr/nb-privkey.pem",
        "ovn_nb_certificate = /etc/kuryr/nb-cert.pem",
        "ovn_nb_ca_cert = /etc/kuryr/nb-cacert.pem",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    std::fs::remove_file(&conf).expect("remove kuryr.conf");

    for (args, needle) in [
        (
            &["--nb", "ssl:192.168.50.1:6641", "--nb-certificate", "/c.pem"][..],
            "missing: --nb-private-key (or KURYR_NB_PRIVATE_KEY), --nb-ca-cert (or KURYR_NB_CA_CERT)",
        ),
        (
            &["--nb", "tcp:192.168.50.1:6641", "--nb-ca-cert", "/ca.pem"][..],
            "--nb-ca-cert (KURYR_NB_CA_CERT) is only for ssl:",
        ),
        (
            &[
                "--nb",
                "ssl:192.168.50.1:6641",
                "--nb-private-key",
                "/k.pem",
                "--nb-certificate",
                "cert.pem",
                "--nb-ca-cert",
                "/ca.pem",
            ][..],
            "--nb-certificate (KURYR_NB_CERTIFICATE) = \"cert.pem\": must be an absolute path",
        ),
    ] {
        let mut a = base.to_vec();
        a.extend_from_slice(args);
        let out = kuryr(&a);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!conf.exists(), "{args:?}: a refused file was written");
    }
}

#[test]
fn generate_refuses_bad_values_naming_the_key_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    for (args, needle) in [
        (&["--nb", "http://nb:6641"][..], "[ovn] ovn_nb_connection"),
        (
            &["--kuryr-uri", "http://nowhere"][..],
            "[DEFAULT] kuryr_uri",
        ),
        (&["--backend", "neutron"][..], "--auth-url"),
        (&["--scope", "planet"][..], "--scope"),
    ] {
        let mut a = vec!["config", "generate", "--output", conf.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = kuryr(&a);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!conf.exists(), "{args:?}: a refused file was written");
    }
}

#[test]
fn check_names_the_key_and_exits_by_severity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().unwrap().to_string()
    };
    let bad = write("bad.conf", "[DEFAULT]\ncapability_scope = planet\n");
    let out = kuryr(&["config", "check", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[DEFAULT] capability_scope = \"planet\": expected local or global"),
        "{}",
        stdout(&out)
    );

    let creds = write(
        "creds.conf",
        "[neutron]\nauth_type = password\nauth_url = http://k:5000/v3\nusername = u\n",
    );
    let out = kuryr(&["config", "check", &creds]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[neutron] password is missing"),
        "{}",
        stdout(&out)
    );

    let warned = write("warn.conf", "[DEFAULT]\nbindir = /usr/libexec/kuryr\n");
    let out = kuryr(&["config", "check", &warned]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("warning: ") && stdout(&out).contains("[DEFAULT] bindir"),
        "{}",
        stdout(&out)
    );

    let out = kuryr(&["config", "check", "/nonexistent/kuryr.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("/nonexistent/kuryr.conf"));
}

/// doctor's checks as JSON: (check, status, detail, fix).
fn doctor(args: &[&str], limit: Duration) -> (Output, Vec<serde_json::Value>) {
    let mut a = vec!["doctor", "--format", "json"];
    a.extend_from_slice(args);
    let out = kuryr_env(&a, &[], limit);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("doctor output is not JSON ({e}): {}", stdout(&out)));
    let checks = v.as_array().cloned().expect("a JSON array of checks");
    (out, checks)
}

fn find<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:#?}"))
}

#[test]
fn doctor_does_not_hang_on_a_plugin_that_never_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("mute.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    // Accepts connections and never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let empty = dir.path().join("empty.conf");
    std::fs::write(&empty, "").expect("write");
    let start = Instant::now();
    let (out, checks) = doctor(
        &[
            "--config",
            empty.to_str().unwrap(),
            "--plugin",
            sock.to_str().unwrap(),
            "--ovsdb",
            "unix:/nonexistent/db.sock",
            "--nb",
            "unix:/nonexistent/nb.sock",
            "--timeout",
            "1",
        ],
        Duration::from_secs(30),
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let p = find(&checks, "plugin socket");
    assert_eq!(p["status"], "fail", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or("")
            .contains("does not answer"),
        "{p}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn doctor_passes_on_the_lab_with_a_running_daemon() {
    let d = common::Daemon::start(&[]);
    let empty = d.dir.path().join("none.conf");
    let (out, checks) = doctor(
        &[
            "--config",
            empty.to_str().unwrap(),
            "--plugin",
            d.socket.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    for c in &checks {
        assert_eq!(c["status"], "ok", "{c}\nall: {checks:#?}");
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(
        names,
        [
            "kuryr.conf",
            "docker",
            "plugin socket",
            "metrics",
            "docker sees driver",
            "ovs",
            "chassis settings",
            "ovn-controller",
            "southbound chassis",
            "northbound",
            "tunnel endpoint",
            "gateway"
        ]
    );
    // The table for people: one line per check plus the header, exit 0.
    let out = kuryr(&[
        "doctor",
        "--config",
        empty.to_str().unwrap(),
        "--plugin",
        d.socket.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).lines().count(),
        names.len() + 1,
        "{}",
        stdout(&out)
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn doctor_names_what_is_broken_and_the_fix() {
    common::require_lab();
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.conf");
    std::fs::write(&empty, "").expect("write");
    let (out, checks) = doctor(
        &[
            "--config",
            empty.to_str().unwrap(),
            "--plugin",
            "/nonexistent.sock",
            "--nb",
            "unix:/nonexistent",
            "--ovsdb",
            "unix:/nonexistent",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{checks:#?}");
    assert_eq!(
        find(&checks, "docker")["status"],
        "ok",
        "Docker is up in the lab"
    );
    for (check, detail, fix) in [
        (
            "plugin socket",
            "no socket at /nonexistent.sock",
            "kuryr daemon",
        ),
        ("ovs", "unix:/nonexistent", "--ovsdb"),
        ("northbound", "unix:/nonexistent", "--nb"),
    ] {
        let c = find(&checks, check);
        assert_eq!(c["status"], "fail", "{c}");
        assert!(c["detail"].as_str().unwrap_or("").contains(detail), "{c}");
        assert!(c["fix"].as_str().unwrap_or("").contains(fix), "{c}");
    }
    // What depends on a failed check is not guessed at.
    assert_eq!(find(&checks, "docker sees driver")["status"], "skip");
    assert_eq!(find(&checks, "chassis settings")["status"], "skip");

    // A bridge that does not exist in the lab's (working) OVS.
    let (out, checks) = doctor(
        &[
            "--config",
            empty.to_str().unwrap(),
            "--bridge",
            "br-nonexistent",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let c = find(&checks, "ovs");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap_or("")
            .contains("no bridge br-nonexistent"),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap_or("")
            .contains("kuryr host init --bridge br-nonexistent"),
        "{c}"
    );
}

#[test]
fn doctor_in_neutron_mode_checks_neutron_and_keystone_over_http() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    // A stand-in Keystone that answers every GET; Neutron's port is closed.
    let keystone = TcpListener::bind("127.0.0.1:0").expect("bind");
    let ks = keystone.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut s in keystone.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 300 Multiple Choices\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let neutron = closed.local_addr().expect("addr");
    drop(closed);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(
        &conf,
        format!(
            "[neutron]\nauth_type = password\nauth_url = http://{ks}/v3\nendpoint = http://{neutron}\nusername = u\npassword = p\nproject_name = s\n"
        ),
    )
    .expect("write");
    let (out, checks) = doctor(
        &["--config", conf.to_str().unwrap(), "--timeout", "2"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        checks.iter().all(|c| c["check"] != "northbound"),
        "Neutron mode does not check Northbound: {checks:#?}"
    );
    let k = find(&checks, "keystone");
    assert_eq!(k["status"], "ok", "{k}");
    assert!(
        k["detail"].as_str().unwrap_or("").contains("HTTP 300"),
        "{k}"
    );
    let n = find(&checks, "neutron");
    assert_eq!(n["status"], "fail", "{n}");
    assert!(
        n["detail"]
            .as_str()
            .unwrap_or("")
            .contains("[neutron] endpoint"),
        "{n}"
    );
    assert!(
        n["fix"]
            .as_str()
            .unwrap_or("")
            .contains("[neutron] endpoint"),
        "{n}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn doctor_in_neutron_mode_checks_that_a_chassis_has_the_binding_host_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    let neutron = "[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9696\n";
    std::fs::write(&conf, neutron).expect("write");
    let (_, checks) = doctor(
        &["--config", conf.to_str().unwrap(), "--timeout", "5"],
        Duration::from_secs(60),
    );
    let h = find(&checks, "neutron host");
    assert_eq!(
        h["status"], "ok",
        "the lab's chassis has this host's name: {h}"
    );
    let stranger = format!("nochassis-{}", std::process::id());
    std::fs::write(&conf, format!("[DEFAULT]\nhost = {stranger}\n{neutron}")).expect("write");
    let (out, checks) = doctor(
        &["--config", conf.to_str().unwrap(), "--timeout", "5"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let h = find(&checks, "neutron host");
    assert_eq!(h["status"], "fail", "{h}");
    assert!(
        h["detail"].as_str().unwrap_or("").contains(&stranger),
        "{h}"
    );
    assert!(
        h["fix"].as_str().unwrap_or("").contains("[DEFAULT] host"),
        "{h}"
    );
}
