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

/// Every Neutron port on a network.
pub fn ports_of(nid: &str) -> Vec<Value> {
    neutron_get(&format!("/ports?network_id={nid}"))["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
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
    conf: PathBuf,
    rust_log: String,
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
        let mut d = NeutronDaemon {
            socket: PathBuf::from(format!("/run/docker/plugins/{name}.sock")),
            log: dir.path().join("kuryr.log"),
            name,
            conf,
            rust_log: rust_log.to_string(),
            _dir: dir,
            child: None,
        };
        d.spawn();
        d
    }

    /// Starts the daemon (again) and waits until it answers.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .arg("daemon")
            .arg("--config")
            .arg(&self.conf)
            .arg("--socket")
            .arg(&self.socket)
            .env("RUST_LOG", &self.rust_log)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start kuryr daemon");
        self.child = Some(child);
        let start = Instant::now();
        while !(self.socket.exists()
            && post(&self.socket, "/Plugin.Activate", "").is_ok_and(|(s, _)| s == 200))
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("kuryr daemon exited with {status}:\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "kuryr daemon did not answer:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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

/// A TCP proxy in front of the lab's Neutron that the test can switch off and on (Neutron
/// "down" for this daemon only: other tests keep theirs) and that counts how many
/// connections were open at once.
pub struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The start of the next request whose answer is lost (see [`Proxy::lose_answer_to`]).
    lose: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// Copies `from` to `to` a chunk at a time, while `pass` lets each chunk through.
fn pump(
    from: &mut std::net::TcpStream,
    to: &mut std::net::TcpStream,
    mut pass: impl FnMut(&[u8]) -> bool,
) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !pass(&buf[..n]) || to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

impl Proxy {
    pub fn start() -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let p = Proxy {
            port,
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::new(AtomicUsize::new(0)),
            most: Arc::new(AtomicUsize::new(0)),
            conns: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
            lose: Arc::new(Mutex::new(None)),
        };
        let (up, open, most, conns, stop, lose) = (
            p.up.clone(),
            p.open.clone(),
            p.most.clone(),
            p.conns.clone(),
            p.stop.clone(),
            p.lose.clone(),
        );
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering::SeqCst;
            let mut listener = Some(listener);
            while !stop.load(SeqCst) {
                if !up.load(SeqCst) {
                    // Down: nobody listens, so connecting is refused.
                    listener = None;
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match std::net::TcpListener::bind(("127.0.0.1", port)) {
                        Ok(l) => listener.insert(l),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    },
                };
                let _ = l.set_nonblocking(true);
                let client = match l.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = std::net::TcpStream::connect("127.0.0.1:9696") else {
                    continue;
                };
                let now = open.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    if let Ok(mut v) = conns.lock() {
                        v.push(c2);
                        v.push(s2);
                    }
                }
                let (mut c_in, mut s_out) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let (mut s_in, mut c_out) = (server, client);
                let open = open.clone();
                let lose = lose.clone();
                let losing = Arc::new(AtomicBool::new(false));
                std::thread::spawn(move || {
                    let losing_back = losing.clone();
                    // Neutron's answers go back unless the connection is losing them:
                    // then the first is dropped and the connection cut, as when Neutron
                    // goes away right after replying.
                    let back = std::thread::spawn(move || {
                        pump(&mut s_in, &mut c_out, |_| !losing_back.load(SeqCst));
                        let _ = s_in.shutdown(std::net::Shutdown::Both);
                        let _ = c_out.shutdown(std::net::Shutdown::Both);
                    });
                    // The request awaited by `lose` still reaches Neutron, and marks the
                    // connection as losing its answer.
                    pump(&mut c_in, &mut s_out, |chunk| {
                        if let Ok(mut l) = lose.lock() {
                            if l.as_ref().is_some_and(|p| chunk.starts_with(p.as_bytes())) {
                                *l = None;
                                losing.store(true, SeqCst);
                            }
                        }
                        true
                    });
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                    let _ = back.join();
                    open.fetch_sub(1, SeqCst);
                });
            }
        });
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Neutron "goes down": connections in flight are cut, new ones refused.
    pub fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut v) = self.conns.lock() {
            for c in v.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    /// The next request whose first line starts with `request` (`"POST /v2.0/networks "`)
    /// reaches Neutron, which acts on it, but its answer is lost: the connection is cut.
    pub fn lose_answer_to(&self, request: &str) {
        if let Ok(mut l) = self.lose.lock() {
            *l = Some(request.to_string());
        }
    }

    /// Whether the answer [`Proxy::lose_answer_to`] awaits has been lost.
    pub fn answer_lost(&self) -> bool {
        self.lose.lock().map(|l| l.is_none()).unwrap_or(false)
    }

    pub fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn reset_most(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.most.store(self.open.load(SeqCst), SeqCst);
    }

    pub fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.up();
    }
}
