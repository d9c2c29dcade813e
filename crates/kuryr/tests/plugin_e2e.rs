//! kuryr as a managed (v2) Docker plugin on this host's real Docker: `make plugin`'s
//! directory, `docker plugin create`/`set`/`enable`, containers that ping each other, and the
//! plugin killed under running containers. Run by `make test` (which builds the plugin first).
mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// `make plugin`'s output (or KURYR_PLUGIN_DIR).
fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("KURYR_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugin/kuryr")
        });
    assert!(
        dir.join("config.json").is_file() && dir.join("rootfs/usr/bin/kuryr").is_file(),
        "no plugin in {}: run `make plugin` first (`make test` does)",
        dir.display()
    );
    dir
}

/// An installed plugin, disabled and removed when dropped.
struct Plugin {
    name: String,
}

impl Plugin {
    fn install(settings: &[&str]) -> Plugin {
        let dir = plugin_dir();
        let plugin = Plugin {
            name: unique("kuryrv2"),
        };
        docker_ok(&["plugin", "create", &plugin.name, &dir.display().to_string()]);
        if !settings.is_empty() {
            let mut args = vec!["plugin", "set", &plugin.name];
            args.extend_from_slice(settings);
            docker_ok(&args);
        }
        docker_ok(&["plugin", "enable", &plugin.name]);
        plugin
    }

    /// The name networks use: Docker 20.10 finds a managed plugin by name and tag.
    fn driver(&self) -> String {
        format!("{}:latest", self.name)
    }

    fn pid(&self) -> Option<u32> {
        let id = docker_ok(&["plugin", "inspect", "-f", "{{.Id}}", &self.name]);
        // The plugin runs as a containerd task of namespace plugins.moby named by its id.
        std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cgroup =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                cmd.starts_with(b"/usr/bin/kuryr\0daemon") && cgroup.contains(&id)
            })
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = docker(&["plugin", "disable", "-f", &self.name]);
        let _ = docker(&["plugin", "rm", "-f", &self.name]);
    }
}

/// The `addresses` of every logical switch port, one line each.
fn port_addresses() -> Vec<String> {
    let out = run(std::process::Command::new("ovn-nbctl").args([
        "--timeout=10",
        "--bare",
        "--columns=addresses",
        "list",
        "Logical_Switch_Port",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn the_managed_plugin_serves_docker_like_the_legacy_one_and_survives_being_killed() {
    require_lab();
    // A kuryr.conf directory of the test's own (the `conf` mount's source must exist, and
    // the host's /etc/kuryr is not the test's to create).
    let conf = tempfile::tempdir().expect("tempdir");
    let conf_source = format!("conf.source={}", conf.path().display());
    let plugin = Plugin::install(&["RUST_LOG=info", &conf_source]);
    let caps = docker_ok(&[
        "plugin",
        "inspect",
        "-f",
        "{{.Enabled}} {{.Config.Interface.Socket}}",
        &plugin.name,
    ]);
    assert_eq!(caps, "true kuryr.sock");
    let driver = plugin.driver();
    let net = create_network(&driver, "kv2net", &["--subnet", "10.186.0.0/24"]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let (ia, ib) = (a.ip(&net), b.ip(&net));
    assert!(
        ia.starts_with("10.186.0.") && ib.starts_with("10.186.0.") && ia != ib,
        "{ia} {ib}"
    );
    assert!(a.pings(&ib), "a cannot ping b through the plugin's network");
    assert!(b.pings(&ia), "b cannot ping a through the plugin's network");
    // The logical ports are in Northbound as the legacy plugin makes them.
    let ports = port_addresses();
    for ip in [&ia, &ib] {
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(" {ip}"))),
            "no logical port holds {ip}"
        );
    }
    // `--ip` and a refused clash, through the plugin.
    let c = Container::run(&net, &["--ip", "10.186.0.77"]);
    assert_eq!(c.ip(&net), "10.186.0.77");
    let err = Container::run_fails(&net, &["--ip", "10.186.0.77"]);
    assert!(err.contains("10.186.0.77"), "{err}");

    // Killed: Docker starts it again; running containers never noticed, new ones join.
    let pid = plugin.pid().expect("the plugin's kuryr process");
    let _ = run(std::process::Command::new("kill").args(["-9", &pid.to_string()]));
    assert!(a.pings(&ib), "traffic stopped while the plugin was down");
    wait_until(
        "Docker restarts the plugin",
        Duration::from_secs(30),
        || plugin.pid().is_some_and(|p| p != pid),
    );
    let d = Container::run(&net, &[]);
    let id = d.ip(&net);
    assert!(
        d.pings(&ia),
        "a container started after the restart cannot ping a"
    );
    assert!(
        a.pings(&id),
        "a cannot ping the container started after the restart"
    );
    drop((a, b, c, d));
    drop(net);
    let left: Vec<String> = port_addresses()
        .into_iter()
        .filter(|p| p.contains("10.186.0."))
        .collect();
    assert!(left.is_empty(), "ports left behind: {left:?}");
}
