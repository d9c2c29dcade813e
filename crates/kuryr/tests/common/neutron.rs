//! The Neutron-mode fixture: a kuryr daemon started from a kuryr.conf as kuryr-libnetwork
//! reads it, against the lab's Neutron (`make lab-openstack`), and reads of Neutron's state
//! through its noauth API.
use super::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lab's Neutron without authentication (for reading what kuryr did).
pub const NEUTRON: &str = "http://127.0.0.1:9696";

/// GET on the lab's noauth Neutron.
pub fn neutron_get(path: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "-m", "20", &format!("{NEUTRON}/v2.0{path}")])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "GET {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "GET {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn require_neutron() {
    require_lab();
    let ok = Command::new("curl")
        .args([
            "-fsS",
            "-m",
            "10",
            "-o",
            "/dev/null",
            &format!("{NEUTRON}/v2.0/networks?limit=1"),
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "Neutron does not answer at {NEUTRON}: run `make lab-openstack`"
    );
}

/// A kuryr daemon in the Neutron mode, started from a kuryr.conf, serving a driver name of
/// its own.
pub struct NeutronDaemon {
    pub name: String,
    pub socket: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NeutronDaemon {
    /// Against the lab's Neutron without authentication; `extra_default` goes into
    /// `[DEFAULT]`.
    pub fn start(extra_default: &str) -> NeutronDaemon {
        NeutronDaemon::start_with(
            &format!(
                "[DEFAULT]\n{extra_default}\n[neutron]\nauth_type = none\nendpoint = {NEUTRON}\nvif_plugging_timeout = 20\n"
            ),
            "info,kuryr_neutron=debug",
        )
    }

    /// From exactly this kuryr.conf, logging with this `RUST_LOG`.
    pub fn start_with(conf_text: &str, rust_log: &str) -> NeutronDaemon {
        require_neutron();
        let name = unique("kuryrneu");
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("kuryr.conf");
        std::fs::write(&conf, conf_text).expect("write kuryr.conf");
        let socket = PathBuf::from(format!("/run/docker/plugins/{name}.sock"));
        let log = dir.path().join("kuryr.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .arg("daemon")
            .arg("--config")
            .arg(&conf)
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start kuryr daemon");
        let mut d = NeutronDaemon {
            name,
            socket,
            log,
            _dir: dir,
            child: Some(child),
        };
        let start = Instant::now();
        while !(d.socket.exists()
            && post(&d.socket, "/Plugin.Activate", "").is_ok_and(|(s, _)| s == 200))
        {
            if let Some(Ok(Some(status))) = d.child.as_mut().map(|c| c.try_wait()) {
                panic!("kuryr daemon exited with {status}:\n{}", d.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "kuryr daemon did not answer:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn network(&self, extra: &[&str]) -> Network {
        let name = unique("kneu");
        let mut args = vec![
            "network",
            "create",
            "-d",
            &self.name,
            "--ipam-driver",
            &self.name,
        ];
        args.extend_from_slice(extra);
        args.push(&name);
        let id = docker_ok(&args);
        Network { name, id }
    }
}

impl Drop for NeutronDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
        if std::thread::panicking() {
            eprintln!(
                "---- kuryr daemon log ({}) ----\n{}",
                self.name,
                self.log_text()
            );
        }
    }
}

/// The Neutron networks kuryr made for a Docker network, found by kuryr-libnetwork's tags.
pub fn neutron_network(docker_id: &str) -> Vec<Value> {
    let tags = format!(
        "kuryr.net.uuid.lh:{},kuryr.net.uuid.uh:{}",
        &docker_id[..32],
        &docker_id[32..]
    );
    neutron_get(&format!("/networks?tags={tags}"))["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
