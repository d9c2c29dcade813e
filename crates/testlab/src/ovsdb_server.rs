//! Real `ovsdb-server` processes for tests and benchmarks: standalone or a 3-member Raft cluster,
//! each in its own temporary directory, killed when dropped.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Fails the calling test with a clear message when the lab's binaries are missing.
pub fn require_tools() {
    for tool in ["ovsdb-server", "ovsdb-tool", "ovs-appctl"] {
        let found = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .chain([PathBuf::from("/usr/sbin")])
                    .any(|d| d.join(tool).exists())
            })
            .unwrap_or(false);
        assert!(found, "{tool} is not installed: run `make lab` (Debian packages openvswitch-switch, ovn-central)");
    }
    for schema in [NB_SCHEMA, VSWITCH_SCHEMA] {
        assert!(
            Path::new(schema).exists(),
            "{schema} is missing: run `make lab`"
        );
    }
}

fn sbin(tool: &str) -> String {
    let p = Path::new("/usr/sbin").join(tool);
    if p.exists() {
        p.display().to_string()
    } else {
        tool.to_string()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One ovsdb-server process serving one database file.
pub struct Server {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub sock: PathBuf,
    pub ctl: PathBuf,
    pub tcp_port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// A standalone database from `schema`, listening on a unix socket and a loopback port.
    pub fn standalone(dir: &Path, name: &str, schema: &str) -> Server {
        let db = dir.join(format!("{name}.db"));
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(schema));
        Self::spawn_new(dir, name, db, Vec::new())
    }

    fn spawn_new(dir: &Path, name: &str, db: PathBuf, extra_args: Vec<String>) -> Server {
        let mut s = Server {
            dir: dir.to_path_buf(),
            sock: dir.join(format!("{name}.sock")),
            ctl: dir.join(format!("{name}.ctl")),
            db,
            tcp_port: free_port(),
            extra_args,
            child: None,
        };
        s.start();
        s
    }

    pub fn unix_remote(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    pub fn tcp_remote(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.tcp_port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let _ = std::fs::remove_file(&self.sock);
        let name = self
            .db
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log =
            std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("create log file");
        let child = Command::new(sbin("ovsdb-server"))
            .arg(&self.db)
            .arg(format!("--remote=punix:{}", self.sock.display()))
            .arg(format!("--remote=ptcp:{}:127.0.0.1", self.tcp_port))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .arg(format!(
                "--pidfile={}",
                self.dir.join(format!("{name}.pid")).display()
            ))
            .arg("--no-chdir")
            .args(&self.extra_args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ovsdb-server");
        self.child = Some(child);
        let sock = self.sock.clone();
        let port = self.tcp_port;
        wait_until("ovsdb-server to listen", Duration::from_secs(10), || {
            sock.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn appctl(&self, args: &[&str]) -> String {
        let out = Command::new("ovs-appctl")
            .arg("-t")
            .arg(&self.ctl)
            .args(args)
            .output()
            .expect("run ovs-appctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 3-member Raft cluster of one database on loopback ports.
pub struct Cluster {
    pub members: Vec<Server>,
    pub database: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new(schema: &str, database: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let raft: Vec<String> = (0..3)
            .map(|_| format!("tcp:127.0.0.1:{}", free_port()))
            .collect();
        let mut members = Vec::new();
        for (i, addr) in raft.iter().enumerate() {
            let name = format!("m{}", i + 1);
            let db = dir.path().join(format!("{name}.db"));
            if i == 0 {
                run(Command::new("ovsdb-tool")
                    .arg("create-cluster")
                    .arg(&db)
                    .arg(schema)
                    .arg(addr));
            } else {
                run(Command::new("ovsdb-tool")
                    .arg("join-cluster")
                    .arg(&db)
                    .arg(database)
                    .arg(addr)
                    .arg(&raft[0]));
            }
            members.push(Server::spawn_new(dir.path(), &name, db, Vec::new()));
        }
        let c = Cluster {
            members,
            database: database.to_string(),
            _dir: dir,
        };
        wait_until(
            "the cluster to elect a leader with all members joined",
            Duration::from_secs(20),
            || {
                c.leader().is_some()
                    && c.members.iter().all(|m| {
                        m.appctl(&["cluster/status", database])
                            .contains("Status: cluster member")
                    })
            },
        );
        c
    }

    /// Comma-separated tcp remotes of every member, as a client would be configured.
    pub fn remotes(&self) -> String {
        self.members
            .iter()
            .map(Server::tcp_remote)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the member that reports itself leader.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.is_running()
                && m.appctl(&["cluster/status", &self.database])
                    .contains("Role: leader")
        })
    }
}
