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

/// One request to the lab's noauth Neutron: the status and the JSON answer (null when empty).
pub fn neutron(method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-m", "30", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
    }
    let out = cmd
        .arg(format!("{NEUTRON}/v2.0{path}"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status: u16 = status.trim().parse().unwrap_or(0);
    let value = if json.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {json}"))
    };
    (status, value)
}

/// GET on the lab's noauth Neutron.
pub fn neutron_get(path: &str) -> Value {
    let (status, v) = neutron("GET", path, None);
    assert!(status == 200 || status == 404, "GET {path}: {status} {v}");
    v
}

/// Creates a Neutron object (`network`, `subnet`, `port`, ...) and returns it.
pub fn neutron_create(kind: &str, body: Value) -> Value {
    let path = if kind == "subnetpool" {
        "/subnetpools".to_string()
    } else if kind == "security_group_rule" {
        "/security-group-rules".to_string()
    } else if kind == "security_group" {
        "/security-groups".to_string()
    } else {
        format!("/{kind}s")
    };
    let (status, v) = neutron("POST", &path, Some(&serde_json::json!({ kind: body })));
    assert_eq!(status, 201, "create {kind}: {v}");
    v[kind].clone()
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// Undo steps run in reverse order when dropped, also when the test fails: Neutron objects
/// the test made itself.
#[derive(Default)]
pub struct Cleanup(Vec<Box<dyn FnOnce()>>);

impl Cleanup {
    pub fn delete(&mut self, path: String) {
        self.0.push(Box::new(move || {
            let _ = neutron("DELETE", &path, None);
        }));
    }
    pub fn then(&mut self, f: impl FnOnce() + 'static) {
        self.0.push(Box::new(f));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(f) = self.0.pop() {
            f();
        }
    }
}

pub fn tags_of(v: &Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
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

    /// Like [`NeutronDaemon::start`], reaching Neutron at `endpoint` (a proxy in front of
    /// the lab's).
    pub fn start_via(extra_default: &str, endpoint: &str) -> NeutronDaemon {
        NeutronDaemon::start_with(
            &format!(
                "[DEFAULT]\n{extra_default}\n[neutron]\nauth_type = none\nendpoint = {endpoint}\nvif_plugging_timeout = 20\n"
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

    /// Neutron requests the daemon has sent so far (its debug log has one line each).
    pub fn neutron_requests(&self) -> usize {
        self.log_text().matches("Neutron request").count()
    }

    /// Every Docker call so far succeeded (Docker ignores some failures, e.g. of
    /// DeleteEndpoint, so a passing `docker rm` does not prove it).
    pub fn assert_no_failed_calls(&self) {
        assert_no_failed_calls(&self.log_text());
    }

    pub fn network(&self, extra: &[&str]) -> Network {
        create_network(&self.name, "kneu", extra)
    }
}

impl Drop for NeutronDaemon {
    fn drop(&mut self) {
        shut_down(self.child.take(), &self.socket, &self.name, &self.log);
    }
}

/// No subnet pool named `kuryrPool-<cidr>` is left.
pub fn assert_no_pool(cidr: &str) {
    let pools = neutron_get(&format!("/subnetpools?name=kuryrPool-{cidr}"))["subnetpools"].clone();
    assert_eq!(
        pools.as_array().map(Vec::len),
        Some(0),
        "pool kuryrPool-{cidr} left behind: {pools}"
    );
}

/// The Neutron networks kuryr made for a Docker network, found by kuryr-libnetwork's tags
/// (a Swarm network's id, 25 characters, has only the first).
pub fn neutron_network(docker_id: &str) -> Vec<Value> {
    let tags = match (docker_id.get(..32), docker_id.get(32..)) {
        (Some(lh), Some(uh)) if !uh.is_empty() => {
            format!("kuryr.net.uuid.lh:{lh},kuryr.net.uuid.uh:{uh}")
        }
        _ => format!("kuryr.net.uuid.lh:{docker_id}"),
    };
    neutron_get(&format!("/networks?tags={tags}"))["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Docker releases the IPAM pool after `docker network rm` has returned: wait for kuryr's
/// ReleasePool, then no subnet pool may be left.
pub fn wait_pool_gone(cidr: &str) {
    let name = format!("/subnetpools?name=kuryrPool-{cidr}");
    let _ = std::panic::catch_unwind(|| {
        wait_until(
            &format!("pool {cidr} released"),
            Duration::from_secs(20),
            || {
                neutron_get(&name)["subnetpools"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
            },
        )
    });
    assert_no_pool(cidr);
}

pub fn neutron_network_gone(nid: &str) -> bool {
    let (status, _) = neutron("GET", &format!("/networks/{nid}"), None);
    status == 404
}
