//! `kuryr host` against a private Open_vSwitch database (no ovs-vswitchd needed to check what
//! is written): init on a fresh database and on an existing bridge, the set-* verbs, show.
use kuryr_testlab::{require_tools, Server, VSWITCH_SCHEMA};
use std::process::{Command, Output};

fn kuryr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(args)
        .output()
        .expect("run kuryr")
}

fn ok(args: &[&str]) -> String {
    let out = kuryr(args);
    assert!(
        out.status.success(),
        "kuryr {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn vsctl(db: &str, args: &[&str]) -> String {
    let out = Command::new("ovs-vsctl")
        .arg(format!("--db={db}"))
        .arg("--no-wait")
        .args(args)
        .output()
        .expect("ovs-vsctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_matches('"')
        .to_string()
}

#[test]
#[ignore = "needs ovsdb-server and the OVS schema (make test)"]
fn host_init_creates_the_bridge_and_sets_the_chassis() {
    require_tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::standalone(dir.path(), "vswitch", VSWITCH_SCHEMA);
    let db = server.unix_remote();

    // Overlay without a tunnel endpoint is refused, naming the fix.
    let out = kuryr(&["host", "init", "--ovsdb", &db, "--overlay"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tep"));
    let out = kuryr(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--overlay",
        "--tep",
        "127.0.0.1",
        "--encap",
        "gre",
    ]);
    assert!(!out.status.success(), "an unknown encapsulation is refused");

    ok(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--bridge",
        "br-t",
        "--overlay",
        "--tep",
        "127.0.0.1",
        "--encap",
        "geneve",
        "--nb",
        "unix:/run/nb.sock",
        "--sb",
        "unix:/run/sb.sock",
        "--datapath",
        "netdev",
        "--system-id",
        "chassis-t",
    ]);
    assert_eq!(
        vsctl(&db, &["get", "Bridge", "br-t", "fail_mode"]),
        "secure"
    );
    assert_eq!(
        vsctl(&db, &["get", "Bridge", "br-t", "datapath_type"]),
        "netdev"
    );
    assert_eq!(
        vsctl(
            &db,
            &["get", "Bridge", "br-t", "other_config:disable-in-band"]
        ),
        "true"
    );
    for (k, v) in [
        ("system-id", "chassis-t"),
        ("ovn-remote", "unix:/run/sb.sock"),
        ("ovn-encap-ip", "127.0.0.1"),
        ("ovn-encap-type", "geneve"),
        ("ovn-bridge", "br-t"),
        ("ovn-bridge-datapath-type", "netdev"),
        ("kuryr-nb-remote", "unix:/run/nb.sock"),
    ] {
        assert_eq!(
            vsctl(
                &db,
                &["get", "Open_vSwitch", ".", &format!("external_ids:{k}")]
            ),
            v,
            "{k}"
        );
    }

    // Again: idempotent, and the existing bridge keeps its datapath.
    ok(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--bridge",
        "br-t",
        "--overlay",
    ]);
    assert_eq!(vsctl(&db, &["list-br"]), "br-t");
    assert_eq!(
        vsctl(&db, &["get", "Bridge", "br-t", "datapath_type"]),
        "netdev"
    );

    ok(&["host", "set-tep", "--ovsdb", &db, "127.0.0.2"]);
    ok(&["host", "set-encap", "--ovsdb", &db, "vxlan"]);
    ok(&["host", "set-nb", "--ovsdb", &db, "tcp:127.0.0.1:6641"]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["host", "show", "--ovsdb", &db, "--format", "json"]))
            .expect("json");
    assert_eq!(shown["encap_ip"], "127.0.0.2");
    assert_eq!(shown["encap_type"], "vxlan");
    assert_eq!(shown["nb_remote"], "tcp:127.0.0.1:6641");
    assert_eq!(shown["system_id"], "chassis-t");
    assert_eq!(shown["bridge_exists"], true);
    assert_eq!(shown["mode"], "overlay");
    let table = ok(&["host", "show", "--ovsdb", &db]);
    assert!(
        table.contains("tunnel endpoint") && table.contains("127.0.0.2"),
        "{table}"
    );
    let bad = kuryr(&["host", "set-encap", "--ovsdb", &db, "ipsec"]);
    assert!(!bad.status.success());
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        for word in ["network", "endpoint", "container", "host"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
}

#[test]
#[ignore = "needs ovsdb-server and the OVS schema (make test)"]
fn host_init_underlay_records_the_vm_settings_and_keeps_the_bridge_switching() {
    require_tools();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::standalone(dir.path(), "vswitch", VSWITCH_SCHEMA);
    let db = server.unix_remote();
    vsctl(&db, &["init"]);
    let err = |args: &[&str]| {
        let out = kuryr(args);
        assert!(!out.status.success(), "kuryr {} succeeded", args.join(" "));
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    // No bridge yet: the message names the command that makes it.
    let e = err(&["host", "init", "--ovsdb", &db, "--underlay"]);
    assert!(
        e.contains("breth0 does not exist") && e.contains("nics-to-bridge"),
        "{e}"
    );
    // A VM is no chassis.
    let e = err(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--underlay",
        "--tep",
        "10.0.0.5",
    ]);
    assert!(e.contains("--tep sets up an OVN chassis"), "{e}");
    let e = err(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--overlay",
        "--tep",
        "10.0.0.5",
        "--parent-port",
        "p",
    ]);
    assert!(e.contains("--underlay"), "{e}");

    // What nics-to-bridge leaves: a standalone bridge with the VM's NIC.
    vsctl(
        &db,
        &["add-br", "breth0", "--", "add-port", "breth0", "eth0"],
    );
    // A secure bridge would drop everything with nobody to program it.
    vsctl(
        &db,
        &["add-br", "brsec", "--", "set-fail-mode", "brsec", "secure"],
    );
    let e = err(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--underlay",
        "--bridge",
        "brsec",
    ]);
    assert!(e.contains("fail mode secure"), "{e}");

    ok(&[
        "host",
        "init",
        "--ovsdb",
        &db,
        "--underlay",
        "--parent-port",
        "vm1-port",
        "--nb",
        "unix:/var/run/ovn/ovnnb_db.sock",
    ]);
    let get = |col: &str| {
        vsctl(
            &db,
            &["get", "Open_vSwitch", ".", &format!("external_ids:{col}")],
        )
    };
    assert_eq!(get("kuryr-mode"), "underlay");
    assert_eq!(get("kuryr-bridge"), "breth0");
    assert_eq!(get("kuryr-parent-port"), "vm1-port");
    assert_eq!(get("kuryr-nb-remote"), "unix:/var/run/ovn/ovnnb_db.sock");
    assert_eq!(
        vsctl(&db, &["get", "Port", "breth0", "vlan_mode"]),
        "access"
    );
    assert_eq!(vsctl(&db, &["get", "Bridge", "breth0", "fail_mode"]), "[]");
    // Nothing of a chassis is written.
    let ext = vsctl(&db, &["get", "Open_vSwitch", ".", "external_ids"]);
    assert!(
        !ext.contains("ovn-remote") && !ext.contains("ovn-encap"),
        "{ext}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["host", "show", "--ovsdb", &db, "--format", "json"]))
            .expect("json");
    assert_eq!(shown["mode"], "underlay");
    assert_eq!(shown["bridge"], "breth0");
    assert_eq!(shown["bridge_exists"], true);
    assert_eq!(shown["parent_port"], "vm1-port");

    // Again without --parent-port: the VM's port is found by MAC at start, the old name goes.
    ok(&["host", "init", "--ovsdb", &db, "--underlay"]);
    let ext = vsctl(&db, &["get", "Open_vSwitch", ".", "external_ids"]);
    assert!(!ext.contains("kuryr-parent-port"), "{ext}");
}
