//! The lab's Docker nodes (`make lab-nodes`, lab/node.sh): a command on node N, where `docker`
//! talks to that node's own dockerd, and the check that the nodes are up.
use std::process::{Command, Output};

pub fn node_sh() -> String {
    format!("{}/../../lab/node.sh", env!("CARGO_MANIFEST_DIR"))
}

/// `lab/node.sh exec N -- CMD...`.
pub fn on_node(n: u32, cmd: &[&str]) -> Output {
    Command::new(node_sh())
        .args(["exec", &n.to_string(), "--"])
        .args(cmd)
        .output()
        .unwrap_or_else(|e| panic!("lab/node.sh exec {n}: {e}"))
}

/// `CMD...` on node N, which must succeed: its standard output, trimmed.
pub fn on_node_ok(n: u32, cmd: &[&str]) -> String {
    super::succeeded(on_node(n, cmd), format!("node {n}: {}", cmd.join(" ")))
}

/// `lab/node.sh ARG` (`up`, `status`, ...).
pub fn node_sh_run(arg: &str) -> Output {
    Command::new(node_sh())
        .arg(arg)
        .output()
        .unwrap_or_else(|e| panic!("lab/node.sh {arg}: {e}"))
}

/// Fails the test when the Docker nodes are not up: these tests never skip.
pub fn require_nodes() {
    let status = node_sh_run("status");
    assert!(
        status.status.success(),
        "the Docker nodes are not up: run `make lab-nodes` (`make test` does):\n{}",
        String::from_utf8_lossy(&status.stdout)
    );
}
