//! Migrating a host between kuryr-libnetwork and kuryr-rs, both ways.
//!
//! From kuryr-libnetwork to kuryr-rs: kuryr-libnetwork 18 (from PyPI, the
//! lab's venv) creates a network and a running container; it is stopped and `kuryr daemon`
//! starts with the same kuryr.conf, serving the same `kuryr_uri` that the plugin spec points
//! at. The running container keeps its address and connectivity, a new container joins the
//! network, and removing both and the network through Docker leaves Neutron and the host
//! clean.
//!
//! Back from kuryr-rs to kuryr-libnetwork: the same with the roles swapped. Neutron ends
//! clean; on the host, the veth of the container kuryr-rs plugged is left (asserted, and
//! described in the README's migration section).
//!
//! Run by `make test` (which runs `make lab-kuryr-libnetwork`); ignored by a bare
//! `cargo test`.
//!
//! Each test runs a kuryr-libnetwork server of its own (its own kuryr.conf, loopback port and
//! plugin spec, so its own Docker driver name): the lab's shared `kuryr-libnetwork` plugin,
//! which benchmarks use, is never stopped or touched.
mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What `lab/kuryr-libnetwork.sh env` prints: where the lab installed kuryr-libnetwork.
fn lab_env() -> BTreeMap<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/kuryr-libnetwork.sh");
    let out = run(Command::new("bash").arg(&script).arg("env"));
    assert!(
        out.status.success(),
        "{} env: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn curl(args: &[&str]) -> std::process::Output {
    run(Command::new("curl").args(["-sS", "-m", "20"]).args(args))
}

/// A Neutron API as kuryr-libnetwork's config names it (the lab's process answering
/// `Connection: close`, on the lab's Neutron database).
struct Neutron(String);

impl Neutron {
    fn get(&self, path: &str) -> Value {
        let out = curl(&[&format!("{}/v2.0{path}", self.0)]);
        assert!(
            out.status.success(),
            "GET {path} on Neutron {}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "GET {path} on Neutron {}: not JSON ({e}): {}",
                self.0,
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The objects of a list call (`/ports?...` -> its `ports`).
    fn list(&self, path: &str) -> Vec<Value> {
        let key = path
            .trim_start_matches('/')
            .split(['?', '/'])
            .next()
            .unwrap_or_default()
            .replace("security-groups", "security_groups");
        self.get(path)[key.as_str()]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Best effort, for cleanup after a failure: never panics.
    fn delete(&self, path: &str) {
        let _ = Command::new("curl")
            .args(["-sS", "-m", "20", "-o", "/dev/null", "-X", "DELETE"])
            .arg(format!("{}/v2.0{path}", self.0))
            .status();
    }

    fn answers(&self) -> bool {
        curl(&[
            "-f",
            "-o",
            "/dev/null",
            &format!("{}/v2.0/networks?limit=1", self.0),
        ])
        .status
        .success()
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// A free loopback TCP port (the kernel's choice; free again when this returns).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

/// Whether a plugin answers Docker's handshake at `url`.
fn plugin_answers(url: &str) -> bool {
    let out = curl(&[
        "-f",
        "-m",
        "5",
        "-X",
        "POST",
        &format!("{url}/Plugin.Activate"),
    ]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("NetworkDriver")
}

fn ip_links() -> Vec<String> {
    let out = run(Command::new("ip").args(["-o", "link", "show"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect()
}

/// `name external_ids` of the OVS interfaces whose external_ids hold `key=value`.
fn ovs_interfaces_with(key: &str, value: &str) -> Vec<String> {
    let out = run(Command::new("ovs-vsctl").args([
        "--timeout=10",
        "--format=csv",
        "--data=bare",
        "--no-headings",
        "--columns=name,external_ids",
        "find",
        "Interface",
        &format!("external_ids:{key}=\"{value}\""),
    ]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Program {
    KuryrLibnetwork,
    KuryrRs,
}

/// Everything one migration creates, removed in Drop in the order that works even after a
/// failure half way: containers and the network through Docker (with a plugin serving the
/// driver name, started again if none does), the plugin process, the spec file, then
/// whatever Neutron or the host still hold of this test's network and endpoints.
struct Migration {
    /// The Docker driver name: the spec file's name.
    name: String,
    dir: tempfile::TempDir,
    conf: PathBuf,
    url: String,
    spec: PathBuf,
    venv: PathBuf,
    neutron: Neutron,
    cidr: String,
    gateway: String,
    plugin: Option<(Program, Child)>,
    network: Option<(String, String)>,
    /// The Docker network's id, kept after it is removed (for the cleanup of leftovers).
    docker_net_id: Option<String>,
    containers: Vec<String>,
    /// Endpoint ids and Neutron port ids seen, for the cleanup of leftovers.
    endpoints: Vec<String>,
    ports: Vec<String>,
}

impl Migration {
    fn new() -> Migration {
        require_lab();
        let env = lab_env();
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("lab/kuryr-libnetwork.sh env printed no {k}"))
        };
        let venv = PathBuf::from(get("KURYR_LIBNETWORK_VENV"));
        let neutron = Neutron(get("KURYR_LIBNETWORK_NEUTRON"));
        assert!(
            venv.join("bin/kuryr-server").exists() && venv.join("libexec/kuryr/ovs").exists(),
            "kuryr-libnetwork is not installed in {}: run `make lab-kuryr-libnetwork`",
            venv.display()
        );
        assert!(
            neutron.answers(),
            "kuryr-libnetwork's Neutron API does not answer at {}: run `make lab-kuryr-libnetwork`",
            neutron.0
        );
        let name = unique("kmig");
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://127.0.0.1:{}", free_port());
        let (cidr, gateway) = Self::free_cidr(&neutron);
        let conf = dir.path().join("kuryr.conf");
        // What a kuryr-libnetwork host has in /etc/kuryr/kuryr.conf, with its own URI and log.
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\n\
                 kuryr_uri = {url}\n\
                 bindir = {bindir}\n\
                 capability_scope = local\n\
                 process_external_connectivity = True\n\
                 port_driver = kuryr_libnetwork.port_driver.drivers.veth\n\
                 log_file = {log}\n\
                 [neutron]\n\
                 auth_type = none\n\
                 endpoint = {neutron}\n\
                 vif_plugging_timeout = 20\n\
                 [binding]\n\
                 default_driver = kuryr.lib.binding.drivers.veth\n",
                bindir = venv.join("libexec/kuryr").display(),
                log = dir.path().join("kuryr-libnetwork.log").display(),
                neutron = neutron.0,
            ),
        )
        .expect("write kuryr.conf");
        let spec = PathBuf::from(format!("/etc/docker/plugins/{name}.spec"));
        let m = Migration {
            name,
            dir,
            conf,
            url,
            spec,
            venv,
            neutron,
            cidr,
            gateway,
            plugin: None,
            network: None,
            docker_net_id: None,
            containers: Vec::new(),
            endpoints: Vec::new(),
            ports: Vec::new(),
        };
        std::fs::create_dir_all("/etc/docker/plugins").expect("create /etc/docker/plugins");
        std::fs::write(&m.spec, format!("{}\n", m.url)).expect("write the plugin spec");
        m
    }

    /// A /24 no Neutron subnet or kuryr pool uses yet, outside the other tests' ranges.
    fn free_cidr(neutron: &Neutron) -> (String, String) {
        let seed = std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        for i in 0..32u64 {
            let h = seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i * 7919)
                >> 20;
            let cidr = format!("10.{}.{}.0/24", 128 + h % 64, (h >> 6) % 256);
            let used = !neutron
                .list(&format!("/subnetpools?name=kuryrPool-{cidr}"))
                .is_empty()
                || !neutron.list(&format!("/subnets?cidr={cidr}")).is_empty();
            if !used {
                let gw = cidr.replace(".0/24", ".1");
                return (cidr, gw);
            }
        }
        panic!("no free 10.128.0.0/10 /24 found in Neutron after 32 tries");
    }

    fn log(&self, program: Program) -> PathBuf {
        self.dir.path().join(match program {
            Program::KuryrLibnetwork => "kuryr-libnetwork.out",
            Program::KuryrRs => "kuryr.log",
        })
    }

    /// What the program wrote to stderr and to kuryr.conf's `log_file`, which both honour (it
    /// holds the lines of both programs; each test's checks look for one program's words).
    fn log_text(&self, program: Program) -> String {
        let mut text = std::fs::read_to_string(self.log(program)).unwrap_or_default();
        text += &std::fs::read_to_string(self.dir.path().join("kuryr-libnetwork.log"))
            .unwrap_or_default();
        text
    }

    fn spawn(&self, program: Program) -> std::io::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(program))?;
        let mut cmd = match program {
            Program::KuryrLibnetwork => {
                let mut c = Command::new(self.venv.join("bin/kuryr-server"));
                c.arg("--config-file").arg(&self.conf);
                c
            }
            Program::KuryrRs => {
                // The same kuryr.conf. Only the unix socket is moved out of
                // /run/docker/plugins, where `kuryr.sock` may be another kuryr's on this
                // shared machine: Docker reaches this daemon through the spec's kuryr_uri.
                let mut c = Command::new(env!("CARGO_BIN_EXE_kuryr"));
                c.arg("daemon")
                    .arg("--config")
                    .arg(&self.conf)
                    .arg("--socket")
                    .arg(self.dir.path().join("kuryr.sock"))
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1");
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    /// Starts `program` and waits until it answers on the spec's URL.
    fn start(&mut self, program: Program) {
        assert!(self.plugin.is_none(), "a plugin is already running");
        let child = self
            .spawn(program)
            .unwrap_or_else(|e| panic!("start {program:?}: {e}"));
        self.plugin = Some((program, child));
        let start = Instant::now();
        while !plugin_answers(&self.url) {
            if let Some((_, c)) = self.plugin.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.plugin = None;
                    panic!(
                        "{program:?} exited with {status} before answering on {}:\n{}",
                        self.url,
                        self.log_text(program)
                    );
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{program:?} did not answer on {} within 60 s:\n{}",
                self.url,
                self.log_text(program)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "{program:?} answers on {} after {:.1} s",
            self.url,
            start.elapsed().as_secs_f64()
        );
    }

    /// SIGTERM, as an init system stops a service; SIGKILL after 10 s.
    fn stop(&mut self) -> Option<Program> {
        let (program, mut child) = self.plugin.take()?;
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Some(program)
    }

    fn create_network(&mut self) -> String {
        let net = unique("kmignet");
        let id = docker_ok(&[
            "network",
            "create",
            "-d",
            &self.name,
            "--ipam-driver",
            &self.name,
            "--subnet",
            &self.cidr,
            "--gateway",
            &self.gateway,
            &net,
        ]);
        self.network = Some((net, id.clone()));
        self.docker_net_id = Some(id.clone());
        id
    }

    fn net_name(&self) -> String {
        self.network
            .as_ref()
            .map(|n| n.0.clone())
            .unwrap_or_default()
    }

    /// `docker run -d` a sleeping container on the network; returns its name, address,
    /// endpoint id and Neutron port.
    fn run_container(&mut self) -> (String, String, String, Value) {
        let name = unique("kmigctr");
        let net = self.net_name();
        self.containers.push(name.clone());
        docker_ok(&[
            "run", "-d", "--name", &name, "--net", &net, "--expose", "8080", IMAGE, "sleep", "600",
        ]);
        let field = |f: &str| {
            docker_ok(&[
                "inspect",
                "-f",
                &format!("{{{{(index .NetworkSettings.Networks \"{net}\").{f}}}}}"),
                &name,
            ])
        };
        let ip = field("IPAddress");
        let eid = field("EndpointID");
        assert_eq!(eid.len(), 64, "endpoint id of {name}: {eid:?}");
        self.endpoints.push(eid.clone());
        let ports = self.neutron.list(&format!("/ports?device_id={eid}"));
        assert_eq!(ports.len(), 1, "Neutron ports of endpoint {eid}: {ports:?}");
        let port = ports[0].clone();
        self.ports.push(id_of(&port));
        (name, ip, eid, port)
    }

    fn exec(&self, container: &str, cmd: &[&str]) -> std::process::Output {
        let mut args = vec!["exec", container];
        args.extend_from_slice(cmd);
        docker(&args)
    }

    fn pings(&self, container: &str, ip: &str) -> bool {
        // Three tries: the first packet after a port comes up may meet flows not yet there.
        (0..3).any(|_| {
            self.exec(container, &["ping", "-c", "1", "-W", "2", ip])
                .status
                .success()
        })
    }

    fn eth0_addresses(&self, container: &str) -> String {
        let out = self.exec(container, &["ip", "-4", "addr", "show", "eth0"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn remove_container(&mut self, name: &str) {
        docker_ok(&["rm", "-f", name]);
        self.containers.retain(|c| c != name);
    }

    fn remove_network(&mut self) {
        let net = self.net_name();
        docker_ok(&["network", "rm", &net]);
        self.network = None;
    }

    /// What Neutron still holds of this test's network, one line per object; empty when clean.
    /// Step 3 of both tests: `old` still has its address on eth0, a new container joins the
    /// same Neutron network (an address of `prefix`), and the two ping each other both ways.
    fn new_container_joins(
        &mut self,
        old: &str,
        old_ip: &str,
        prefix: &str,
        nid: &str,
    ) -> (String, String, Value) {
        assert!(
            self.eth0_addresses(old).contains(&format!("{old_ip}/24")),
            "the old container lost its address: {}",
            self.eth0_addresses(old)
        );
        let (new, new_ip, new_eid, new_port) = self.run_container();
        assert!(
            new_ip.starts_with(prefix) && new_ip != old_ip,
            "{new_ip} (old {old_ip})"
        );
        assert_eq!(new_port["network_id"], nid, "{new_port}");
        assert!(
            self.pings(&new, old_ip),
            "the new container cannot ping the old one at {old_ip}"
        );
        assert!(
            self.pings(old, &new_ip),
            "the old container cannot ping the new one at {new_ip}"
        );
        (new, new_eid, new_port)
    }

    fn neutron_has_network(&self, nid: &str) -> bool {
        self.neutron
            .get(&format!("/networks/{nid}"))
            .get("network")
            .is_some()
    }

    fn neutron_leftovers(&self, docker_net_id: &str) -> Vec<String> {
        let mut left = Vec::new();
        let n = &self.neutron;
        let tags = format!(
            "kuryr.net.uuid.lh:{},kuryr.net.uuid.uh:{}",
            &docker_net_id[..32],
            &docker_net_id[32..]
        );
        for net in n.list(&format!("/networks?tags={tags}")) {
            left.push(format!("network {} (kuryr tags): {net}", id_of(&net)));
        }
        for net in n.list(&format!("/networks?name=kuryr-net-{}", &docker_net_id[..8])) {
            left.push(format!("network {} (kuryr name): {net}", id_of(&net)));
        }
        for s in n.list(&format!("/subnets?name=kuryr-subnet-{}", self.cidr)) {
            left.push(format!("subnet {}: {s}", id_of(&s)));
        }
        for p in n.list(&format!("/subnetpools?name=kuryrPool-{}", self.cidr)) {
            left.push(format!("subnet pool {}: {p}", id_of(&p)));
        }
        for eid in &self.endpoints {
            for p in n.list(&format!("/ports?device_id={eid}")) {
                left.push(format!("port {} of endpoint {eid}: {p}", id_of(&p)));
            }
        }
        for pid in &self.ports {
            if n.get(&format!("/ports/{pid}")).get("port").is_some() {
                left.push(format!("port {pid}"));
            }
            for sg in n.list(&format!("/security-groups?name={pid}-exposed_ports")) {
                left.push(format!(
                    "security group {pid}-exposed_ports ({})",
                    id_of(&sg)
                ));
            }
        }
        left
    }

    /// What the host still holds of an endpoint: veths and OVS interfaces.
    fn host_leftovers(&self, eid: &str, port_id: &str) -> Vec<String> {
        let links = ip_links();
        let mut left: Vec<String> = [
            format!("tap{}", &eid[..11]),
            format!("tap{}", &port_id[..11]),
            format!("t_c{}", &eid[..11]),
            format!("t_c{}", &port_id[..11]),
        ]
        .into_iter()
        .filter(|n| links.contains(n))
        .map(|n| format!("interface {n}"))
        .collect();
        for i in ovs_interfaces_with("vm-uuid", eid) {
            left.push(format!("OVS interface of endpoint {eid}: {i}"));
        }
        for i in ovs_interfaces_with("iface-id", port_id) {
            left.push(format!("OVS interface of port {port_id}: {i}"));
        }
        left
    }
}

impl Drop for Migration {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            for p in [Program::KuryrLibnetwork, Program::KuryrRs] {
                eprintln!("---- {p:?} log ({}) ----\n{}", self.name, self.log_text(p));
            }
        }
        // Docker needs a plugin on the driver name to delete endpoints and the network.
        let docker_holds_some = !self.containers.is_empty() || self.network.is_some();
        if docker_holds_some && !plugin_answers(&self.url) {
            let _ = self.stop();
            if let Ok(child) = self.spawn(Program::KuryrLibnetwork) {
                self.plugin = Some((Program::KuryrLibnetwork, child));
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline && !plugin_answers(&self.url) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        for c in std::mem::take(&mut self.containers) {
            let _ = docker(&["rm", "-f", &c]);
        }
        if let Some((net, _)) = self.network.take() {
            let _ = docker(&["network", "rm", &net]);
        }
        let _ = self.stop();
        let _ = std::fs::remove_file(&self.spec);
        // Whatever a failed run left in Neutron and on the host: only this test's objects.
        let n = &self.neutron;
        for pid in &self.ports {
            n.delete(&format!("/ports/{pid}"));
        }
        let mut nets: Vec<String> = Vec::new();
        if let Some(id) = &self.docker_net_id {
            let tags = format!(
                "kuryr.net.uuid.lh:{},kuryr.net.uuid.uh:{}",
                &id[..32],
                &id[32..]
            );
            nets.extend(n.list(&format!("/networks?tags={tags}")).iter().map(id_of));
        }
        let pools = n.list(&format!("/subnetpools?name=kuryrPool-{}", self.cidr));
        for pool in &pools {
            for s in n.list(&format!("/subnets?subnetpool_id={}", id_of(pool))) {
                nets.push(s["network_id"].as_str().unwrap_or_default().to_string());
            }
        }
        nets.sort();
        nets.dedup();
        for net in nets.iter().filter(|n| !n.is_empty()) {
            for p in n.list(&format!(
                "/ports?network_id={net}&device_owner=compute:kuryr"
            )) {
                n.delete(&format!("/ports/{}", id_of(&p)));
            }
            n.delete(&format!("/networks/{net}"));
        }
        for pool in &pools {
            n.delete(&format!("/subnetpools/{}", id_of(pool)));
        }
        for pid in &self.ports {
            for sg in n.list(&format!("/security-groups?name={pid}-exposed_ports")) {
                n.delete(&format!("/security-groups/{}", id_of(&sg)));
            }
        }
        let links = ip_links();
        for eid in &self.endpoints {
            // kuryr-rs's veth of this endpoint, which kuryr-libnetwork's DeleteEndpoint leaves.
            let tap = format!("tap{}", &eid[..11]);
            if links.contains(&tap) {
                let _ = Command::new("ovs-vsctl")
                    .args(["--timeout=10", "--if-exists", "del-port", &tap])
                    .status();
                let _ = Command::new("ip").args(["link", "del", &tap]).status();
            }
            for line in ovs_interfaces_with("vm-uuid", eid) {
                let ifname = line.split(',').next().unwrap_or_default().to_string();
                if !ifname.is_empty() {
                    let _ = Command::new("ovs-vsctl")
                        .args(["--timeout=10", "--if-exists", "del-port", &ifname])
                        .status();
                    let _ = Command::new("ip").args(["link", "del", &ifname]).status();
                }
            }
        }
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_kuryr_libnetwork_host_moves_to_kuryr_rs_with_its_network_and_running_container() {
    let t0 = Instant::now();
    let mut m = Migration::new();

    // 1. kuryr-libnetwork: a network and a running container.
    m.start(Program::KuryrLibnetwork);
    let net_id = m.create_network();
    let nets = m.neutron.list(&format!(
        "/networks?tags=kuryr.net.uuid.lh:{},kuryr.net.uuid.uh:{}",
        &net_id[..32],
        &net_id[32..]
    ));
    assert_eq!(
        nets.len(),
        1,
        "kuryr-libnetwork's Neutron network: {nets:?}"
    );
    let nid = id_of(&nets[0]);
    let (old, old_ip, old_eid, old_port) = m.run_container();
    let old_pid = id_of(&old_port);
    let prefix = m.cidr.trim_end_matches("0/24").to_string();
    assert!(old_ip.starts_with(&prefix), "{old_ip} not in {}", m.cidr);
    assert!(
        m.eth0_addresses(&old).contains(&format!("{old_ip}/24")),
        "{}",
        m.eth0_addresses(&old)
    );
    // kuryr-lib's naming: the host end is tap<port id>, in br-int, bound by iface-id.
    let old_tap = format!("tap{}", &old_pid[..11]);
    assert!(
        ovs_ports().contains(&old_tap),
        "kuryr-libnetwork's {old_tap} is not a port of br-int: {:?}",
        ovs_ports()
    );
    assert_eq!(old_port["device_owner"], "compute:kuryr", "{old_port}");
    eprintln!(
        "kuryr-libnetwork: network and container after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // 2. kuryr-libnetwork stops; kuryr-rs starts with the same kuryr.conf on the same URI.
    assert_eq!(m.stop(), Some(Program::KuryrLibnetwork));
    m.start(Program::KuryrRs);
    // Its reconciliation left kuryr-libnetwork's live port alone and knows it as present.
    assert!(
        ovs_ports().contains(&old_tap),
        "kuryr-rs removed kuryr-libnetwork's {old_tap} at start:\n{}",
        m.log_text(Program::KuryrRs)
    );
    let log = m.log_text(Program::KuryrRs);
    assert!(
        log.lines()
            .any(|l| l.contains(&old_eid)
                && l.contains("kept the host port kuryr-libnetwork plugged")),
        "kuryr-rs did not recognise kuryr-libnetwork's port of the running container:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains(&old_eid) && l.contains("no veth or OVS port")),
        "kuryr-rs reports the running container's endpoint as missing its host side:\n{log}"
    );

    // 3. The old container keeps its address; a new one joins; they ping both ways.
    let (new, new_eid, new_port) = m.new_container_joins(&old, &old_ip, &prefix, &nid);
    let new_pid = id_of(&new_port);
    // --expose under kuryr-rs: the security group kuryr-libnetwork would name.
    let sg = format!("{new_pid}-exposed_ports");
    assert_eq!(
        m.neutron.list(&format!("/security-groups?name={sg}")).len(),
        1,
        "no security group {sg} for the new container's --expose"
    );
    eprintln!(
        "kuryr-rs: new container pings the old one after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // 4. Removing both and the network through Docker, now served by kuryr-rs.
    m.remove_container(&old);
    let left = m.host_leftovers(&old_eid, &old_pid);
    assert!(
        left.is_empty(),
        "kuryr-libnetwork's host side of the old container is left after docker rm:\n{}\n{}",
        left.join("\n"),
        m.log_text(Program::KuryrRs)
    );
    m.remove_container(&new);
    let left = m.host_leftovers(&new_eid, &new_pid);
    assert!(
        left.is_empty(),
        "host side of the new container left:\n{}",
        left.join("\n")
    );
    m.remove_network();
    let left = m.neutron_leftovers(&net_id);
    assert!(
        left.is_empty(),
        "Neutron still holds:\n{}\n{}",
        left.join("\n"),
        m.log_text(Program::KuryrRs)
    );
    assert!(
        !m.neutron_has_network(&nid),
        "Neutron network {nid} is left"
    );
    // Docker only logs a driver's error on removal: every call kuryr-rs served succeeded.
    let log = m.log_text(Program::KuryrRs);
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin call") && l.contains("outcome=\"error\""))
        .collect();
    assert!(
        failed.is_empty(),
        "kuryr-rs failed calls:\n{}",
        failed.join("\n")
    );
    assert_eq!(m.stop(), Some(Program::KuryrRs));
    eprintln!("migration test done in {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_kuryr_rs_host_goes_back_to_kuryr_libnetwork_with_its_network_and_running_container() {
    let t0 = Instant::now();
    let mut m = Migration::new();

    // 1. kuryr-rs: a network and a running container.
    m.start(Program::KuryrRs);
    let net_id = m.create_network();
    let nets = m.neutron.list(&format!(
        "/networks?tags=kuryr.net.uuid.lh:{},kuryr.net.uuid.uh:{}",
        &net_id[..32],
        &net_id[32..]
    ));
    assert_eq!(nets.len(), 1, "kuryr-rs's Neutron network: {nets:?}");
    let nid = id_of(&nets[0]);
    let (old, old_ip, old_eid, old_port) = m.run_container();
    let old_pid = id_of(&old_port);
    let prefix = m.cidr.trim_end_matches("0/24").to_string();
    assert!(old_ip.starts_with(&prefix), "{old_ip} not in {}", m.cidr);
    // kuryr-rs's naming: the host end is tap<endpoint id>, in br-int, bound by iface-id.
    let old_tap = format!("tap{}", &old_eid[..11]);
    assert!(
        ovs_ports().contains(&old_tap),
        "kuryr-rs's {old_tap} is not a port of br-int: {:?}",
        ovs_ports()
    );
    assert_eq!(old_port["device_owner"], "compute:kuryr", "{old_port}");
    // What kuryr-libnetwork finds and releases a port by: its name and the compute:kuryr tag.
    assert_eq!(old_port["name"], format!("{old_eid}-port"), "{old_port}");
    assert!(
        old_port["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "compute:kuryr")),
        "{old_port}"
    );
    let old_sg = format!("{old_pid}-exposed_ports");
    assert_eq!(
        m.neutron
            .list(&format!("/security-groups?name={old_sg}"))
            .len(),
        1,
        "no security group {old_sg} for the old container's --expose"
    );
    eprintln!(
        "kuryr-rs: network and container after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // 2. kuryr-rs stops; kuryr-libnetwork starts with the same kuryr.conf on the same URI.
    assert_eq!(m.stop(), Some(Program::KuryrRs));
    m.start(Program::KuryrLibnetwork);
    assert!(
        ovs_ports().contains(&old_tap),
        "{old_tap} left br-int when kuryr-rs stopped or kuryr-libnetwork started"
    );

    // 3. The old container keeps its address; a new one joins; they ping both ways.
    let (new, new_eid, new_port) = m.new_container_joins(&old, &old_ip, &prefix, &nid);
    let new_pid = id_of(&new_port);
    let new_tap = format!("tap{}", &new_pid[..11]);
    assert!(
        ovs_ports().contains(&new_tap),
        "kuryr-libnetwork's {new_tap} is not a port of br-int: {:?}",
        ovs_ports()
    );
    eprintln!(
        "kuryr-libnetwork: new container pings the old one after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // 4. Removing both and the network through Docker, now served by kuryr-libnetwork.
    m.remove_container(&old);
    // kuryr-libnetwork's DeleteEndpoint runs its `ovs` unbind script, which finds the
    // Interface by iface-id and owner=kuryr and deletes the OVS port, then looks up the veth
    // by its own naming, tap<port id[:11]>; the lab's pyroute2 raises a TypeError on that
    // missing name, so the call fails (Docker logs it and removes the container anyway).
    // kuryr-rs's veth tap<endpoint id[:11]> is left, with its peer (Docker moved it back
    // out of the container).
    let old_veth = [
        format!("interface tap{}", &old_eid[..11]),
        format!("interface t_c{}", &old_eid[..11]),
    ];
    let left = m.host_leftovers(&old_eid, &old_pid);
    assert_eq!(
        left, old_veth,
        "host side of kuryr-rs's container after kuryr-libnetwork removed it"
    );
    let log = m.log_text(Program::KuryrLibnetwork);
    assert!(
        log.lines()
            .any(|l| l.contains("POST /NetworkDriver.DeleteEndpoint HTTP") && l.contains(" 500 ")),
        "kuryr-libnetwork's DeleteEndpoint of kuryr-rs's endpoint did not fail as expected:\n{log}"
    );
    m.remove_container(&new);
    let left_new = m.host_leftovers(&new_eid, &new_pid);
    assert!(
        left_new.is_empty(),
        "host side of the new container left:\n{}",
        left_new.join("\n")
    );
    m.remove_network();
    let mut left = m.neutron_leftovers(&net_id);
    for p in m.neutron.list(&format!(
        "/ports?network_id={nid}&device_owner=compute:kuryr"
    )) {
        left.push(format!("compute:kuryr port {}: {p}", id_of(&p)));
    }
    assert!(
        left.is_empty(),
        "Neutron still holds:\n{}\n{}",
        left.join("\n"),
        m.log_text(Program::KuryrLibnetwork)
    );
    assert!(
        !m.neutron_has_network(&nid),
        "Neutron network {nid} is left"
    );
    // 5. kuryr-rs started again does not remove the veth: with no OVS port left, its
    // reconciliation (which starts from OVS ports) never sees it. `ip link del` does.
    assert_eq!(m.stop(), Some(Program::KuryrLibnetwork));
    m.start(Program::KuryrRs);
    assert_eq!(
        m.host_leftovers(&old_eid, &old_pid),
        old_veth,
        "kuryr-rs's start changed the leftover veth: update the README"
    );
    assert_eq!(m.stop(), Some(Program::KuryrRs));
    let tap = format!("tap{}", &old_eid[..11]);
    let out = run(Command::new("ip").args(["link", "del", &tap]));
    assert!(
        out.status.success(),
        "ip link del {tap}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = m.host_leftovers(&old_eid, &old_pid);
    assert!(left.is_empty(), "after ip link del {tap}: {left:?}");
    eprintln!(
        "going back test done in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
