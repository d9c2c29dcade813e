//! The end-to-end fixture: a kuryr daemon (the binary under test) serving a driver name of its
//! own, so a developer's kuryr and other test runs are never touched, plus helpers to drive the
//! real Docker Engine and inspect OVN and OVS. Everything a test creates carries a unique name
//! and is removed by a guard even when the test fails.
#![allow(dead_code)]

pub mod keystone;
pub mod neutron;
pub mod node;
pub mod outside;
pub mod vm;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/bin/docker";
pub const IMAGE: &str = "kuryr-busybox:latest";

/// Fails the test with the reason when the lab is missing: these tests never skip.
pub fn require_lab() {
    let root = unsafe_geteuid() == 0;
    assert!(
        root,
        "end-to-end tests need root (they create veths and OVS ports): run `make test` as root"
    );
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(
        ok(Command::new(DOCKER).arg("info")),
        "Docker is not running: run `make lab`"
    );
    assert!(
        ok(Command::new("ovn-nbctl").args(["--timeout=5", "show"])),
        "OVN Northbound is not running: run `make lab`"
    );
    assert!(
        ok(Command::new("ovs-vsctl").args(["--timeout=5", "br-exists", "br-int"])),
        "OVS bridge br-int is missing: run `make lab`"
    );
    assert!(
        ok(Command::new(DOCKER).args(["image", "inspect", IMAGE])),
        "test image {IMAGE} is missing: run `make lab`"
    );
}

fn unsafe_geteuid() -> u32 {
    // Read from /proc to avoid a libc dependency for one number.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A Docker object id: 64 lowercase hex digits, random so interface names never collide.
pub fn docker_id() -> String {
    let half = || {
        std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .expect("read a random uuid")
            .trim()
            .replace('-', "")
    };
    let id = format!("{}{}", half(), half());
    assert_eq!(id.len(), 64);
    id
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos % 0xfffff)
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

pub fn docker(args: &[&str]) -> Output {
    run(Command::new(DOCKER).args(args))
}

/// The trimmed stdout of a command that must have succeeded; else the test fails with
/// `what` and its stderr.
pub fn succeeded(out: Output, what: impl std::fmt::Display) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs docker and returns its trimmed stdout, failing the test with stderr on error.
pub fn docker_ok(args: &[&str]) -> String {
    succeeded(docker(args), format!("docker {}", args.join(" ")))
}

/// Runs docker expecting failure; returns stderr.
pub fn docker_err(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        !out.status.success(),
        "docker {} succeeded but should have failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A TCP port free on every address now, below the kernel's ephemeral range (32768 and up) so
/// no outgoing connection takes it meanwhile; `n` tells apart a test's ports.
pub fn free_tcp_port(n: u16) -> u16 {
    let slot = (std::process::id() % 600) as u16 * 20 + n;
    (0..6u16)
        .map(|k| 20000 + (slot + k * 2000) % 12000)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .unwrap_or(20000 + slot % 12000)
}

/// A kuryr daemon under test, serving the driver name `name`.
pub struct Daemon {
    pub name: String,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    /// The kuryr.conf it reads (empty: every default).
    conf: String,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        Daemon::start_with_conf("", extra)
    }

    /// A daemon reading `conf` as its kuryr.conf.
    pub fn start_with_conf(conf: &str, extra: &[&str]) -> Daemon {
        require_lab();
        let name = unique("kuryrtest");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            socket: PathBuf::from(format!("/run/docker/plugins/{name}.sock")),
            log: dir.path().join("kuryr.log"),
            name,
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            conf: conf.to_string(),
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        std::fs::write(self.dir.path().join("none.conf"), &self.conf).expect("write the config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .arg("daemon")
            .arg("--config")
            .arg(self.dir.path().join("none.conf"))
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("KURYR_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kuryr daemon");
        self.child = Some(child);
        let start = Instant::now();
        while !self.answers() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("kuryr daemon exited with {status}:\n{}", self.log_text());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "kuryr daemon did not answer within 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        self.socket.exists()
            && post(&self.socket, "/Plugin.Activate", "")
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `docker network create` with this driver for both the network and IPAM.
    pub fn network(&self, extra: &[&str]) -> Network {
        create_network(&self.name, "knet", extra)
    }

    pub fn call(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (status, text) =
            post(&self.socket, path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: reply is not JSON ({e}): {text}"));
        (status, v)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        shut_down(self.child.take(), &self.socket, &self.name, &self.log);
    }
}

/// One HTTP/1.1 POST over a unix socket, exactly as Docker sends it: no Content-Type.
pub fn post(socket: &Path, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: \r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // The server may answer with chunked encoding; take the JSON object out of it.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b >= a => body[a..=b].to_string(),
        _ => body,
    };
    Ok((status, body))
}

/// SIGTERM, as an init system stops a service; SIGKILL when it has not exited in 5 s.
pub fn stop(c: &mut Child) {
    let _ = Command::new("kill").arg(c.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// A daemon under test goes: SIGTERM first so it removes its socket, then the socket file
/// anyway; its log is printed when the test is failing.
/// Where the daemon serving `socket` keeps a journal, named after its socket: the Neutron
/// pools' (`pool-journal`) and network creates' (`network-journal`), the OVN mode's
/// addresses (`address-journal`).
pub fn journal_of(socket: &Path, what: &str) -> PathBuf {
    let name = socket.file_name().unwrap_or_default().to_string_lossy();
    Path::new("/run/kuryr").join(format!("{name}.{what}"))
}

pub fn shut_down(child: Option<Child>, socket: &Path, name: &str, log: &Path) {
    if let Some(mut c) = child {
        stop(&mut c);
    }
    let _ = std::fs::remove_file(socket);
    // The journals a daemon keeps (left when the test ends with what Docker never settled).
    for what in ["pool-journal", "network-journal", "address-journal"] {
        let _ = std::fs::remove_file(journal_of(socket, what));
    }
    if std::thread::panicking() {
        eprintln!(
            "---- kuryr daemon log ({name}) ----\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// `docker network create -d DRIVER --ipam-driver DRIVER EXTRA... <unique name>`.
pub fn create_network(driver: &str, prefix: &str, extra: &[&str]) -> Network {
    let name = unique(prefix);
    let mut args = vec!["network", "create", "-d", driver, "--ipam-driver", driver];
    args.extend_from_slice(extra);
    args.push(&name);
    let id = docker_ok(&args);
    Network { name, id }
}

/// `docker network create -d DRIVER --ipam-driver DRIVER EXTRA... <unique name>` that must
/// fail: Docker's error.
pub fn create_network_fails(driver: &str, extra: &[&str]) -> String {
    let name = unique("knetfail");
    let mut args = vec!["network", "create", "-d", driver, "--ipam-driver", driver];
    args.extend_from_slice(extra);
    args.push(&name);
    docker_err(&args)
}

/// A Docker network, removed when dropped.
pub struct Network {
    pub name: String,
    pub id: String,
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// A detached container, removed (with -f) when dropped.
pub struct Container {
    pub name: String,
}

impl Container {
    pub fn run(net: &Network, extra: &[&str]) -> Container {
        let name = unique("kctr");
        let mut args = vec!["run", "-d", "--name", &name, "--net", &net.name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "600"]);
        // The guard first: a failed `docker run` leaves a created container behind, which
        // its drop removes when docker_ok fails the test.
        let container = Container { name: name.clone() };
        docker_ok(&args);
        container
    }

    /// A `docker run -d` on `net` that must fail: its error (the created container is removed).
    pub fn run_fails(net: &Network, extra: &[&str]) -> String {
        let name = unique("kctr");
        let mut args = vec!["run", "-d", "--name", &name, "--net", &net.name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "600"]);
        let _container = Container { name: name.clone() };
        docker_err(&args)
    }

    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", &self.name];
        args.extend_from_slice(cmd);
        docker(&args)
    }

    /// The container's IPv4 address on `net`.
    pub fn ip(&self, net: &Network) -> String {
        let fmt = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            net.name
        );
        docker_ok(&["inspect", "-f", &fmt, &self.name])
    }

    pub fn ipv6(&self, net: &Network) -> String {
        let fmt = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").GlobalIPv6Address}}}}",
            net.name
        );
        docker_ok(&["inspect", "-f", &fmt, &self.name])
    }

    pub fn pings(&self, ip: &str) -> bool {
        let ping = if ip.contains(':') { "ping6" } else { "ping" };
        self.exec(&[ping, "-c", "1", "-W", "2", ip])
            .status
            .success()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// Rows of a Northbound table: `uuid name external_ids`, one string each.
pub fn nb_rows(table: &str) -> Vec<String> {
    let out = run(Command::new("ovn-nbctl").args([
        "--timeout=10",
        "--format=csv",
        "--data=bare",
        "--no-headings",
        "--columns=_uuid,name,external_ids",
        "list",
        table,
    ]));
    assert!(
        out.status.success(),
        "ovn-nbctl list {table}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

/// Names of the ports of br-int.
pub fn ovs_ports() -> Vec<String> {
    let out = run(Command::new("ovs-vsctl").args(["--timeout=10", "list-ports", "br-int"]));
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET http://127.0.0.1:PORT/metrics`: the samples a daemon's metrics endpoint serves.
pub fn scrape(port: u16) -> Vec<kuryr_metrics::scrape::Sample> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to the metrics endpoint on port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: kuryr\r\nConnection: close\r\n\r\n")
        .expect("send the scrape");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the scrape");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    kuryr_metrics::scrape::parse(body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// The sum of the samples named `name` with all of `labels`.
pub fn metric(
    samples: &[kuryr_metrics::scrape::Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    kuryr_metrics::scrape::sum(samples, name, labels)
}

/// Every Docker call a daemon logged succeeded (Docker ignores some failures, e.g. of
/// DeleteEndpoint, so a passing `docker rm` does not prove it).
pub fn assert_no_failed_calls(log: &str) {
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin call failed"))
        .collect();
    assert!(
        failed.is_empty(),
        "failed plugin calls:\n{}",
        failed.join("\n")
    );
}

/// The host-side veth name of an endpoint (kuryr's `tap<id[:11]>`).
pub fn host_ifname(endpoint_id: &str) -> String {
    format!("tap{}", &endpoint_id[..11])
}

/// Removes the br-int port and veth of each endpoint a test plugged, if the test failed before
/// DeleteEndpoint did it; only these names are touched, never another run's ports.
pub struct HostSide(pub Vec<String>);

impl Drop for HostSide {
    fn drop(&mut self) {
        for id in &self.0 {
            let ifname = host_ifname(id);
            let _ = Command::new("ovs-vsctl")
                .args(["--timeout=10", "--if-exists", "del-port", "br-int", &ifname])
                .output();
            let _ = Command::new("ip").args(["link", "del", &ifname]).output();
        }
    }
}
