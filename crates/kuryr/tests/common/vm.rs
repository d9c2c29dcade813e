//! The VM lab (`lab/vm.sh`): "VMs" that are network and mount namespaces with their own OVS
//! and dockerd, whose NIC is a port of the host's br-int bound to `kuryr-vm-N`. A test holds
//! the lab for as long as it runs; it brings the lab up when it was down and takes it down
//! again when it made it.
use super::*;
use std::io::BufRead;

pub const VM_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab/vm.sh");
pub const KURYR: &str = env!("CARGO_BIN_EXE_kuryr");
const TEST_LOCK: &str = "/run/kuryr-lab/vm-test.lock";

/// The VM lab for the life of the value; tests of other processes wait for it.
pub struct VmLab {
    made: bool,
    lock: Child,
}

impl VmLab {
    pub fn ensure() -> VmLab {
        require_lab();
        std::fs::create_dir_all("/run/kuryr-lab").expect("create /run/kuryr-lab");
        let mut lock = Command::new("flock")
            .args(["-w", "900", TEST_LOCK, "sh", "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock (util-linux)");
        let mut line = String::new();
        if let Some(out) = lock.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(
            line.trim(),
            "locked",
            "another VM test held {TEST_LOCK} for 15 minutes"
        );
        let ready = Command::new(VM_SH)
            .arg("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        let mut lab = VmLab { made: false, lock };
        if !ready {
            lab.made = true;
            let start = Instant::now();
            let out = run(Command::new(VM_SH).arg("up").env("KURYR", KURYR));
            assert!(
                out.status.success(),
                "lab/vm.sh up failed (see /var/log/kuryr-lab/vm-*/):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("VM lab up in {:?}", start.elapsed());
        }
        lab
    }
}

impl Drop for VmLab {
    fn drop(&mut self) {
        if self.made {
            let out = Command::new(VM_SH).arg("down").output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "lab/vm.sh down failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("lab/vm.sh down: {e}"),
            }
        }
        let _ = self.lock.kill();
        let _ = self.lock.wait();
    }
}

/// `lab/vm.sh exec N -- ARGS...`.
pub fn in_vm(n: u8, args: &[&str]) -> Command {
    let mut c = Command::new(VM_SH);
    c.arg("exec").arg(n.to_string()).arg("--").args(args);
    c
}

/// `docker ARGS...` inside VM `n`.
pub fn vm_docker(n: u8, args: &[&str]) -> Output {
    let mut full = vec![DOCKER];
    full.extend_from_slice(args);
    run(&mut in_vm(n, &full))
}

pub fn vm_docker_ok(n: u8, args: &[&str]) -> String {
    succeeded(
        vm_docker(n, args),
        format!("VM {n}: docker {}", args.join(" ")),
    )
}

/// The VM's plugin socket as the host sees it.
fn host_path(n: u8, name: &str) -> PathBuf {
    PathBuf::from(format!("/run/kuryr-lab/vm-{n}/plugins/{name}.sock"))
}

/// A kuryr daemon inside VM `n`, serving the driver name `name` to the VM's Docker.
pub struct VmDaemon {
    pub vm: u8,
    pub name: String,
    pub log: PathBuf,
    pub conf: PathBuf,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl VmDaemon {
    /// With `conf` as its kuryr.conf (everything else as `kuryr host init --underlay` set
    /// the VM up).
    pub fn start(vm: u8, conf: &str) -> VmDaemon {
        let name = unique("kvmtest");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kuryr.conf");
        std::fs::write(&path, conf).expect("write kuryr.conf");
        let mut d = VmDaemon {
            vm,
            log: dir.path().join("kuryr.log"),
            conf: path,
            name,
            _dir: dir,
            child: None,
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let socket = format!("/run/docker/plugins/{}.sock", self.name);
        let conf = self.conf.to_string_lossy().to_string();
        let child = in_vm(
            self.vm,
            &[KURYR, "daemon", "--config", &conf, "--socket", &socket],
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kuryr daemon in the VM");
        self.child = Some(child);
        let start = Instant::now();
        let path = host_path(self.vm, &self.name);
        loop {
            if path.exists() && post(&path, "/Plugin.Activate", "").is_ok_and(|(s, _)| s == 200) {
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "kuryr daemon in VM {} exited with {status}:\n{}",
                    self.vm,
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "kuryr daemon in VM {} did not answer within 20 s:\n{}",
                self.vm,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_no_failed_calls(&self) {
        assert_no_failed_calls(&self.log_text());
    }

    /// `docker network create -d NAME --ipam-driver NAME EXTRA... <unique>` in the VM.
    pub fn network(&self, extra: &[&str]) -> VmNetwork {
        let name = unique("kvnet");
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
        vm_docker_ok(self.vm, &args);
        VmNetwork { vm: self.vm, name }
    }
}

impl Drop for VmDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
        let _ = std::fs::remove_file(host_path(self.vm, &self.name));
        if std::thread::panicking() {
            eprintln!(
                "---- kuryr daemon log (VM {}, {}) ----\n{}",
                self.vm,
                self.name,
                self.log_text()
            );
        }
    }
}

/// A Docker network of a VM, removed when dropped.
pub struct VmNetwork {
    pub vm: u8,
    pub name: String,
}

impl Drop for VmNetwork {
    fn drop(&mut self) {
        let _ = vm_docker(self.vm, &["network", "rm", &self.name]);
    }
}

/// A detached container in a VM, removed (with -f) when dropped.
pub struct VmContainer {
    pub vm: u8,
    pub name: String,
}

impl VmContainer {
    pub fn run(net: &VmNetwork, extra: &[&str]) -> VmContainer {
        let name = unique("kvc");
        let c = VmContainer {
            vm: net.vm,
            name: name.clone(),
        };
        let mut args = vec!["run", "-d", "--name", &name, "--net", &net.name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "600"]);
        vm_docker_ok(net.vm, &args);
        c
    }

    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", &self.name];
        args.extend_from_slice(cmd);
        vm_docker(self.vm, &args)
    }

    pub fn ip(&self, net: &VmNetwork) -> String {
        let fmt = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            net.name
        );
        vm_docker_ok(self.vm, &["inspect", "-f", &fmt, &self.name])
    }

    pub fn pings(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", ip])
            .status
            .success()
    }

    /// Pings from one of its addresses (`ping -I ADDRESS`).
    pub fn pings_from(&self, source: &str, ip: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", "-I", source, ip])
            .status
            .success()
    }
}

impl Drop for VmContainer {
    fn drop(&mut self) {
        let _ = vm_docker(self.vm, &["rm", "-f", &self.name]);
    }
}

/// The container ports of VM `n` in Northbound: (name, tag).
pub fn vm_children(n: u8) -> Vec<(String, Option<u16>)> {
    let out = run(Command::new("ovn-nbctl").args([
        "--timeout=10",
        "--format=csv",
        "--data=bare",
        "--no-headings",
        "--columns=name,tag",
        "find",
        "Logical_Switch_Port",
        &format!("parent_name=kuryr-vm-{n}"),
    ]));
    name_and_tag(&out)
        .into_iter()
        .map(|(name, tag)| (name, tag.trim().parse().ok()))
        .collect()
}

/// `name,tag` lines of a `--format=csv --columns=name,tag` listing that must have succeeded.
fn name_and_tag(out: &Output) -> Vec<(String, String)> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, tag) = l.split_once(',')?;
            Some((name.to_string(), tag.to_string()))
        })
        .collect()
}

/// The ports kuryr plugged on VM `n`'s bridge: (name, tag).
pub fn vm_kuryr_ports(n: u8) -> Vec<(String, String)> {
    let out = run(&mut in_vm(
        n,
        &[
            "ovs-vsctl",
            "--timeout=10",
            "--format=csv",
            "--data=bare",
            "--no-headings",
            "--columns=name,tag",
            "find",
            "Port",
            "external_ids:owner=kuryr",
        ],
    ));
    name_and_tag(&out)
}

/// The veths kuryr names (`tap*`, `t_c*`) in VM `n`'s network namespace.
pub fn vm_veths(n: u8) -> Vec<String> {
    let out = run(&mut in_vm(n, &["ip", "-o", "link", "show"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .filter(|s| s.starts_with("tap") || s.starts_with("t_c"))
        .collect()
}

/// Takes `kuryr-parent-port` out of VM `n`'s settings for the life of the value.
pub struct ForgetParent(u8);

impl ForgetParent {
    pub fn new(n: u8) -> ForgetParent {
        let out = run(&mut in_vm(
            n,
            &[
                "ovs-vsctl",
                "remove",
                "Open_vSwitch",
                ".",
                "external_ids",
                "kuryr-parent-port",
            ],
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ForgetParent(n)
    }
}

impl Drop for ForgetParent {
    fn drop(&mut self) {
        let key = format!("external_ids:kuryr-parent-port=kuryr-vm-{}", self.0);
        let _ = run(&mut in_vm(
            self.0,
            &["ovs-vsctl", "set", "Open_vSwitch", ".", &key],
        ));
    }
}

/// `docker run -d --name NAME --net NET` in VM `n` for each name, all at once.
pub fn run_all(n: u8, names: &[String], net: &str) -> Vec<std::thread::JoinHandle<bool>> {
    names
        .iter()
        .map(|name| {
            let (name, net) = (name.clone(), net.to_string());
            std::thread::spawn(move || {
                vm_docker(
                    n,
                    &[
                        "run", "-d", "--name", &name, "--net", &net, IMAGE, "sleep", "600",
                    ],
                )
                .status
                .success()
            })
        })
        .collect()
}

/// How many of [`run_all`]'s runs started.
pub fn count_started(threads: Vec<std::thread::JoinHandle<bool>>) -> usize {
    threads
        .into_iter()
        .map(|t| t.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count()
}

/// The macvlan devices in VM `n`'s own namespace (not in a container).
pub fn vm_macvlans(n: u8) -> Vec<String> {
    let out = run(&mut in_vm(
        n,
        &["ip", "-o", "link", "show", "type", "macvlan"],
    ));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .collect()
}

/// `kuryr doctor --format json --config CONF --plugin SOCKET` in VM `n`: whether it passed,
/// and its checks.
pub fn doctor_in_vm(n: u8, conf: &str, socket: &str) -> (bool, serde_json::Value) {
    let out = run(&mut in_vm(
        n,
        &[
            KURYR, "doctor", "--format", "json", "--config", conf, "--plugin", socket,
        ],
    ));
    let checks = serde_json::from_slice(&out.stdout).expect("doctor --format json");
    (out.status.success(), checks)
}

/// One of doctor's checks by name (null when it did not run).
pub fn check(checks: &serde_json::Value, name: &str) -> serde_json::Value {
    checks
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == name))
        .cloned()
        .unwrap_or_default()
}

/// `docker run -d` on VM `n`'s network `net` that must fail: Docker's error text (the
/// container it made is removed).
pub fn vm_run_refused(n: u8, net: &str, prefix: &str) -> String {
    let name = unique(prefix);
    let out = vm_docker(
        n,
        &[
            "run", "-d", "--name", &name, "--net", net, IMAGE, "sleep", "600",
        ],
    );
    let _ = vm_docker(n, &["rm", "-f", &name]);
    assert!(
        !out.status.success(),
        "docker run on {net} in VM {n} should have been refused"
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}
