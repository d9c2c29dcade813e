//! The Neutron mode end to end: real Docker, a kuryr daemon reading a kuryr-libnetwork style
//! kuryr.conf, the lab's real Neutron 29 (ML2/OVN) and OVN (`make lab-openstack`). Run by
//! `make test`; ignored by a bare `cargo test`.
mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NEUTRON: &str = "http://127.0.0.1:9696";

/// GET on the lab's noauth Neutron.
fn neutron_get(path: &str) -> Value {
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

fn require_neutron() {
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

/// A kuryr daemon in the Neutron mode, started from a kuryr.conf as kuryr-libnetwork reads it.
struct NeutronDaemon {
    name: String,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NeutronDaemon {
    fn start(extra_conf: &str) -> NeutronDaemon {
        require_neutron();
        let name = unique("kuryrneu");
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("kuryr.conf");
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\n{extra_conf}\n[neutron]\nauth_type = none\nendpoint = {NEUTRON}\nvif_plugging_timeout = 20\n"
            ),
        )
        .expect("write kuryr.conf");
        let socket = PathBuf::from(format!("/run/docker/plugins/{name}.sock"));
        let log = dir.path().join("kuryr.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .arg("daemon")
            .arg("--config")
            .arg(&conf)
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", "info,kuryr_neutron=debug")
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

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn network(&self, extra: &[&str]) -> Network {
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

/// The Neutron network kuryr made for a Docker network, found by kuryr-libnetwork's tags.
fn neutron_network(docker_id: &str) -> Vec<Value> {
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

#[test]
#[ignore = "needs root and the lab (make test)"]
fn two_containers_ping_over_a_neutron_network_named_and_tagged_as_kuryr_libnetwork_does() {
    let d = NeutronDaemon::start("");
    let net = d.network(&["--subnet", "10.71.0.0/24", "--gateway", "10.71.0.1"]);
    let nets = neutron_network(&net.id);
    assert_eq!(nets.len(), 1, "{nets:?}");
    let nid = nets[0]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(nets[0]["name"], format!("kuryr-net-{}", &net.id[..8]));
    let pools = neutron_get("/subnetpools?name=kuryrPool-10.71.0.0/24")["subnetpools"].clone();
    assert_eq!(pools.as_array().map(Vec::len), Some(1), "{pools}");
    let subnets = neutron_get(&format!("/subnets?network_id={nid}"))["subnets"].clone();
    assert_eq!(subnets[0]["name"], "kuryr-subnet-10.71.0.0/24", "{subnets}");
    assert_eq!(subnets[0]["subnetpool_id"], pools[0]["id"], "{subnets}");

    {
        let a = Container::run(&net, &[]);
        let b = Container::run(&net, &[]);
        let (ia, ib) = (a.ip(&net), b.ip(&net));
        assert!(
            ia.starts_with("10.71.0.") && ib.starts_with("10.71.0.") && ia != ib,
            "{ia} {ib}"
        );
        assert!(a.pings(&ib), "a cannot ping b\n{}", d.log_text());
        assert!(b.pings(&ia), "b cannot ping a");
        // The ports: bound to this host, compute:kuryr, the endpoint's id and tags.
        let ports = neutron_get(&format!(
            "/ports?network_id={nid}&device_owner=compute:kuryr"
        ))["ports"]
            .clone();
        let ports = ports.as_array().cloned().unwrap_or_default();
        assert_eq!(ports.len(), 2, "{ports:?}");
        for p in &ports {
            assert_eq!(p["name"], "kuryr-unbound-port");
            assert_eq!(p["device_id"].as_str().map(str::len), Some(64), "{p}");
            assert!(
                !p["binding:host_id"].as_str().unwrap_or_default().is_empty(),
                "{p}"
            );
            let eid = p["device_id"].as_str().unwrap_or_default();
            let tag = format!("kuryr.net.uuid.lh:{}", &eid[..32.min(eid.len())]);
            assert!(
                p["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == &Value::from(tag.clone()))),
                "{p}"
            );
        }
        // The MTU of the Neutron network reaches the container.
        let link =
            String::from_utf8_lossy(&a.exec(&["ip", "link", "show", "eth0"]).stdout).to_string();
        let mtu = nets[0]["mtu"].as_u64().unwrap_or_default();
        assert!(
            link.contains(&format!("mtu {mtu}")),
            "{link} (network MTU {mtu})"
        );
    }
    // Containers gone: their ports are gone.
    wait_until(
        "the containers' ports to be deleted",
        Duration::from_secs(20),
        || {
            neutron_get(&format!(
                "/ports?network_id={nid}&device_owner=compute:kuryr"
            ))["ports"]
                .as_array()
                .is_some_and(Vec::is_empty)
        },
    );
    drop(net);
    // Network gone: nothing of it is left in Neutron.
    wait_until(
        "the Neutron network to be deleted",
        Duration::from_secs(20),
        || {
            neutron_get(&format!("/networks/{nid}"))
                .get("network")
                .is_none()
        },
    );
    let pools = neutron_get("/subnetpools?name=kuryrPool-10.71.0.0/24")["subnetpools"].clone();
    assert_eq!(
        pools.as_array().map(Vec::len),
        Some(0),
        "pool left behind: {pools}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn neutron_down_gives_a_clear_error_naming_neutron() {
    require_neutron();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    // A loopback port nobody listens on.
    std::fs::write(
        &conf,
        "[neutron]\nauth_type = none\nendpoint = http://127.0.0.1:9\n",
    )
    .expect("write");
    let socket = format!("/run/docker/plugins/{}.sock", unique("kuryrneu"));
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["daemon", "--config"])
        .arg(&conf)
        .args(["--socket", &socket])
        .env("NO_COLOR", "1")
        .output()
        .expect("run kuryr daemon");
    let _ = std::fs::remove_file(&socket);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Neutron at http://127.0.0.1:9"),
        "{err}"
    );
}
