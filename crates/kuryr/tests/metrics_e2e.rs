//! The daemon's Prometheus endpoint against the real Docker Engine, OVS and OVN: what a scrape
//! counts after real `docker run`s is what happened. Run by `make test`.
mod common;

use common::*;
use kuryr_metrics::scrape::Sample;
use std::process::Command;
use std::time::{Duration, Instant};

const CALLS: &str = "kuryr_docker_request_duration_seconds_count";
const ERRORS: &str = "kuryr_docker_request_errors_total";

fn calls(s: &[Sample], method: &str, result: &str) -> f64 {
    metric(s, CALLS, &[("method", method), ("result", result)])
}

/// Scrapes until `done` holds (Docker returns from `docker rm` before its last calls end).
fn scrape_until(port: u16, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(port);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within 20 s; last scrape:\n{s:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_scrape_counts_what_docker_did() {
    let port = free_tcp_port(7);
    let d = Daemon::start_with_conf(
        &format!("[DEFAULT]\nmetrics_address = 127.0.0.1:{port}\n"),
        &[],
    );
    let s = scrape(port);
    assert_eq!(
        metric(
            &s,
            "kuryr_build_info",
            &[("mode", "ovn"), ("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0,
        "build info: {s:#?}"
    );
    assert_eq!(
        metric(
            &s,
            "kuryr_ovsdb_connected",
            &[("database", "OVN_Northbound")]
        ),
        1.0
    );
    assert_eq!(
        metric(&s, "kuryr_reconcile_runs_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(calls(&s, "NetworkDriver.CreateEndpoint", "ok"), 0.0);

    let net = d.network(&["--subnet", "10.91.0.0/29"]);
    for _ in 0..2 {
        docker_ok(&["run", "--rm", "--net", &net.name, IMAGE, "true"]);
    }
    let kept = Container::run(&net, &[]);
    // Refused: the running container's address. Docker asks kuryr, kuryr says taken.
    let taken = kept.ip(&net);
    let err = Container::run_fails(&net, &["--ip", &taken]);
    assert!(
        err.contains("in use") || err.contains("taken") || err.contains(&taken),
        "{err}"
    );

    let s = scrape_until(port, "the two --rm containers' endpoints deleted", |s| {
        calls(s, "NetworkDriver.DeleteEndpoint", "ok") >= 2.0
            && calls(s, "IpamDriver.ReleaseAddress", "ok") >= 2.0
    });
    for (method, ok) in [
        ("NetworkDriver.CreateNetwork", 1.0),
        ("NetworkDriver.CreateEndpoint", 3.0),
        ("NetworkDriver.Join", 3.0),
        ("NetworkDriver.Leave", 2.0),
        ("NetworkDriver.DeleteEndpoint", 2.0),
        // The gateway and three containers; the refused one is an error.
        ("IpamDriver.RequestAddress", 4.0),
        ("IpamDriver.ReleaseAddress", 2.0),
    ] {
        assert_eq!(calls(&s, method, "ok"), ok, "{method} ok: {s:#?}");
    }
    assert_eq!(calls(&s, "IpamDriver.RequestAddress", "error"), 1.0);
    assert_eq!(
        metric(
            &s,
            ERRORS,
            &[("method", "IpamDriver.RequestAddress"), ("kind", "refused")]
        ),
        1.0
    );
    assert_eq!(metric(&s, ERRORS, &[("kind", "failed")]), 0.0, "{s:#?}");
    // Every call is in a bucket at or below +Inf, and the sum of times is positive.
    assert_eq!(
        metric(
            &s,
            "kuryr_docker_request_duration_seconds_bucket",
            &[
                ("method", "NetworkDriver.Join"),
                ("result", "ok"),
                ("le", "+Inf")
            ]
        ),
        3.0
    );
    assert!(
        metric(
            &s,
            "kuryr_docker_request_duration_seconds_sum",
            &[("method", "NetworkDriver.Join")]
        ) > 0.0
    );
    assert_eq!(
        metric(
            &s,
            "kuryr_port_wait_duration_seconds_count",
            &[("result", "up")]
        ),
        3.0
    );
    assert!(
        metric(
            &s,
            "kuryr_ovsdb_transaction_duration_seconds_count",
            &[("database", "OVN_Northbound"), ("result", "ok")]
        ) >= 6.0,
        "a network, three endpoints and their deletion are Northbound transactions"
    );
    // The /29: 6 usable addresses, the gateway and the running container hold two.
    let pool = [("cidr", "10.91.0.0/29")];
    assert_eq!(
        metric(&s, "kuryr_ipam_addresses_in_use", &pool),
        2.0,
        "{s:#?}"
    );
    assert_eq!(metric(&s, "kuryr_ipam_addresses_free", &pool), 4.0);

    // kuryr doctor reads the same endpoint and shows the refusal.
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["doctor", "--format", "json", "--config"])
        .arg(d.dir.path().join("none.conf"))
        .arg("--plugin")
        .arg(&d.socket)
        .output()
        .expect("run kuryr doctor");
    let checks: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor --format json");
    let row = checks
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == "metrics"))
        .unwrap_or_else(|| panic!("no metrics check: {checks:#}"))
        .clone();
    assert_eq!(row["status"], "ok", "{row:#}");
    let detail = row["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("0 failed (0.0%), 1 refused"), "{detail}");

    drop(kept);
    // The pool follows: once the container is gone only the gateway holds an address.
    scrape_until(port, "the pool to show the gateway alone", |s| {
        metric(s, "kuryr_ipam_addresses_in_use", &pool) == 1.0
    });
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_taken_metrics_port_fails_the_start_and_says_which() {
    require_lab();
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = held.local_addr().expect("its address").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["daemon", "--config", "/dev/null", "--metrics-address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--socket")
        .arg(dir.path().join("k.sock"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run kuryr daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("serve metrics on 127.0.0.1:{port}"))
            && err.contains("[DEFAULT] metrics_address"),
        "{err}"
    );
    assert!(!dir.path().join("k.sock").exists(), "no socket is left");
}

#[test]
fn a_bad_metrics_address_is_refused_before_anything_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args([
            "daemon",
            "--config",
            "/dev/null",
            "--metrics-address",
            "9779",
        ])
        .output()
        .expect("run kuryr daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--metrics-address \"9779\"") && err.contains("expected IP:PORT"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn neutron_mode_counts_requests_and_reads_pools_from_neutron() {
    let port = free_tcp_port(9);
    let d = common::neutron::NeutronDaemon::start(&format!("metrics_address = 127.0.0.1:{port}"));
    let net = d.network(&["--subnet", "10.92.0.0/29", "--gateway", "10.92.0.1"]);
    let pool = [("cidr", "10.92.0.0/29")];
    let before = scrape(port);
    // Neutron holds the gateway, and with DHCP or metadata ports maybe more.
    let held = metric(&before, "kuryr_ipam_addresses_in_use", &pool);
    assert!(held >= 1.0, "{before:#?}");
    assert_eq!(
        metric(&before, "kuryr_ipam_addresses_free", &pool),
        6.0 - held
    );
    let posts = |s: &[Sample]| {
        metric(
            s,
            "kuryr_neutron_request_duration_seconds_count",
            &[("method", "POST"), ("resource", "ports"), ("code", "201")],
        )
    };
    let c = Container::run(&net, &[]);
    let s = scrape(port);
    assert_eq!(metric(&s, "kuryr_ipam_addresses_in_use", &pool), held + 1.0);
    assert_eq!(posts(&s) - posts(&before), 1.0, "one port created: {s:#?}");
    assert_eq!(calls(&s, "NetworkDriver.Join", "ok"), 1.0);
    assert_eq!(
        metric(
            &s,
            "kuryr_port_wait_duration_seconds_count",
            &[("result", "up")]
        ),
        1.0
    );
    drop(c);
    d.assert_no_failed_calls();
}
