//! The images `make images` builds, run for real: the agent image (`kuryr daemon` in a
//! container on the host's network, the way kuryr-libnetwork's image runs) serving this
//! host's Docker, and the node image (Open vSwitch and ovn-controller in a container) on a
//! Docker node of `make lab-nodes`, registering its chassis and binding a port. Run by
//! `make test` (which builds the images and brings the nodes up).
mod common;

use common::node::*;
use common::*;
use std::process::Command;
use std::time::Duration;

/// The agent container, stopped (kuryr removes its socket on SIGTERM) and removed when
/// dropped; the socket file goes too if it was killed instead.
struct Running {
    name: String,
    socket: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = docker(&["stop", "-t", "10", &self.name]);
        let _ = docker(&["rm", "-f", &self.name]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn image_exists(name: &str) -> bool {
    docker(&["image", "inspect", name]).status.success()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn the_agent_image_serves_docker_from_a_container_on_the_hosts_network() {
    require_lab();
    assert!(
        image_exists("kuryr/agent:latest"),
        "no kuryr/agent image: run `make images` (`make test` does)"
    );
    let driver = unique("kagent");
    let socket = format!("/run/docker/plugins/{driver}.sock");
    let agent = Running {
        name: unique("kuryr-agent"),
        socket: socket.clone(),
    };
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &agent.name,
        "--net=host",
        "--cap-add",
        "NET_ADMIN",
        "-v",
        "/run/docker/plugins:/run/docker/plugins",
        "-v",
        "/var/run/openvswitch:/var/run/openvswitch",
        "-v",
        "/var/run/ovn:/var/run/ovn",
        "-v",
        "/proc/sys:/host/proc/sys",
        // kuryr-libnetwork's image variables, as its users set them.
        "-e",
        "CAPABILITY_SCOPE=local",
        "-e",
        "LOG_LEVEL=INFO",
        "kuryr/agent:latest",
        "--socket",
        &socket,
    ]);
    wait_until("the agent's socket", Duration::from_secs(20), || {
        std::path::Path::new(&socket).exists()
            && post(std::path::Path::new(&socket), "/Plugin.Activate", "")
                .is_ok_and(|(s, _)| s == 200)
    });
    let net = create_network(&driver, "kagentnet", &["--subnet", "10.193.0.0/24"]);
    let a = Container::run(&net, &[]);
    let b = Container::run(&net, &[]);
    let (ia, ib) = (a.ip(&net), b.ip(&net));
    assert!(
        ia.starts_with("10.193.0.") && ib.starts_with("10.193.0.") && ia != ib,
        "{ia} {ib}"
    );
    assert!(a.pings(&ib), "a cannot ping b through the agent's network");
    assert!(b.pings(&ia), "b cannot ping a through the agent's network");
    drop((a, b));
    drop(net);
    let logs = docker_ok(&["logs", &agent.name]);
    let err = String::from_utf8_lossy(&docker(&["logs", &agent.name]).stderr).to_string();
    assert!(
        err.contains("serving Docker's network and IPAM plugin API")
            || logs.contains("serving Docker's"),
        "the agent did not log that it serves:\n{err}"
    );
    assert!(
        !err.contains("\u{1b}["),
        "colour codes in a container's log:\n{err}"
    );
}

/// Undoes what the node-image test made on node 3 and in OVN.
struct NodeImageRun {
    container: String,
    chassis: String,
    switch: String,
    veth: String,
}

impl Drop for NodeImageRun {
    fn drop(&mut self) {
        let _ = on_node(3, &["docker", "rm", "-f", &self.container]);
        let _ = Command::new("ovn-sbctl")
            .args(["--timeout=10", "chassis-del", &self.chassis])
            .output();
        let _ = Command::new("ovn-nbctl")
            .args(["--timeout=10", "--if-exists", "ls-del", &self.switch])
            .output();
    }
}

#[test]
#[ignore = "needs root, the lab and its Docker nodes (make test)"]
fn the_node_image_runs_ovs_and_ovn_controller_and_binds_a_port() {
    require_lab();
    assert!(
        image_exists("kuryr/node:latest"),
        "no kuryr/node image: run `make images` (`make test` does)"
    );
    require_nodes();
    // The node's Docker has no registry either: the image goes over by save and load.
    let copy = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{DOCKER} save kuryr/node:latest | {} exec 3 -- docker load -q",
                node_sh()
            ),
        ])
        .output()
        .expect("save | load");
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let tag = unique("img");
    let run = NodeImageRun {
        container: format!("kuryr-node-{tag}"),
        chassis: format!("kuryr-node-image-{tag}"),
        switch: format!("kuryr-imgtest-{tag}"),
        veth: format!("kimg{}", &tag[tag.len() - 5..]),
    };
    let rundir = format!("/run/kuryr-node-image-{tag}");
    on_node_ok(3, &["mkdir", "-p", &rundir]);
    on_node_ok(
        3,
        &[
            "docker",
            "run",
            "-d",
            "--name",
            &run.container,
            // Its own network namespace: node 3's Open vSwitch already holds the userspace
            // datapath's device there (deployments use --net=host on a host without one).
            "--net=none",
            // What --privileged gives, less what this machine's sandbox withholds from it.
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "NET_RAW",
            "--cap-add",
            "SYS_NICE",
            "--device",
            "/dev/net/tun",
            "-v",
            &format!("{rundir}:/var/run/openvswitch"),
            "-v",
            "/var/run/ovn:/var/run/ovn",
            "-e",
            "OVN_REMOTE=unix:/var/run/ovn/ovnsb_db.sock",
            // Chassis need distinct tunnel addresses; node 3's own has .13.
            "-e",
            "OVN_ENCAP_IP=172.31.252.99",
            "-e",
            &format!("SYSTEM_ID={}", run.chassis),
            "-e",
            "OVN_BRIDGE=br-img",
            "-e",
            "DATAPATH_TYPE=netdev",
            "kuryr/node:latest",
        ],
    );
    let db = format!("--db=unix:{rundir}/db.sock");
    wait_until(
        "the chassis in the Southbound",
        Duration::from_secs(30),
        || {
            Command::new("ovn-sbctl")
                .args([
                    "--timeout=10",
                    "--bare",
                    "--columns=name",
                    "list",
                    "Chassis",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&run.chassis))
        },
    );
    wait_until(
        "ovn-controller's bridge br-img",
        Duration::from_secs(30),
        || {
            on_node(3, &["ovs-vsctl", &db, "--timeout=5", "br-exists", "br-img"])
                .status
                .success()
        },
    );
    // A port bound through the image's Open vSwitch.
    let lsp = format!("{}-p", run.switch);
    for args in [
        vec!["ls-add", run.switch.as_str()],
        vec!["lsp-add", run.switch.as_str(), lsp.as_str()],
        vec![
            "lsp-set-addresses",
            lsp.as_str(),
            "0a:58:0a:c1:00:05 10.194.0.5",
        ],
    ] {
        let out = Command::new("ovn-nbctl")
            .arg("--timeout=10")
            .args(&args)
            .output()
            .expect("ovn-nbctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let peer = format!("{}p", run.veth);
    let in_container = |cmd: &[&str]| {
        let mut args = vec!["docker", "exec", run.container.as_str()];
        args.extend_from_slice(cmd);
        on_node_ok(3, &args)
    };
    in_container(&[
        "ip", "link", "add", &run.veth, "type", "veth", "peer", "name", &peer,
    ]);
    in_container(&["ip", "link", "set", &run.veth, "up"]);
    on_node_ok(
        3,
        &[
            "ovs-vsctl",
            &db,
            "--timeout=10",
            "add-port",
            "br-img",
            &run.veth,
            "--",
            "set",
            "Interface",
            &run.veth,
            &format!("external_ids:iface-id={lsp}"),
        ],
    );
    wait_until(
        "the port bound by the image's ovn-controller",
        Duration::from_secs(30),
        || {
            let out = on_node(
                3,
                &[
                    "ovs-vsctl",
                    &db,
                    "--timeout=5",
                    "get",
                    "Interface",
                    &run.veth,
                    "external_ids:ovn-installed",
                ],
            );
            String::from_utf8_lossy(&out.stdout).contains("true")
        },
    );
    let chassis = Command::new("ovn-sbctl")
        .args([
            "--timeout=10",
            "--bare",
            "--columns=chassis",
            "find",
            "Port_Binding",
            &format!("logical_port={lsp}"),
        ])
        .output()
        .expect("ovn-sbctl");
    let chassis_uuid = String::from_utf8_lossy(&chassis.stdout).trim().to_string();
    let name = Command::new("ovn-sbctl")
        .args([
            "--timeout=10",
            "--bare",
            "--columns=name",
            "list",
            "Chassis",
            &chassis_uuid,
        ])
        .output()
        .expect("ovn-sbctl");
    assert_eq!(
        String::from_utf8_lossy(&name.stdout).trim(),
        run.chassis,
        "the port is bound to another chassis"
    );
}
