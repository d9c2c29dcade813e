//! `kuryr bench` and `kuryr conformance` run against a real kuryr daemon and print what they
//! promise. They check that the tools work and their output parses, never how fast anything is.
mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn kuryr(args: &[&str]) -> (bool, String, String) {
    let out = run(Command::new(env!("CARGO_BIN_EXE_kuryr")).args(args));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn conformance_passes_against_kuryr_and_reports_json() {
    let d = Daemon::start(&[]);
    let sock = d.socket.display().to_string();
    let (ok, out, err) = kuryr(&[
        "conformance",
        "--plugin",
        &sock,
        "--subnet",
        "10.75.0.0/24",
        "--format",
        "json",
    ]);
    assert!(ok, "conformance failed:\n{out}\n{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON report");
    let checks = v["checks"].as_array().expect("checks");
    assert!(checks.len() > 40, "{} checks", checks.len());
    let failed: Vec<&Value> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn bench_protocol_and_scale_run_and_print_json_that_parses() {
    let d = Daemon::start(&[]);
    let sock = d.socket.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("bench.json");
    let (ok, out, err) = kuryr(&[
        "bench",
        "protocol",
        "--plugin",
        &sock,
        "--subnet",
        "10.76.0.0/24",
        "--concurrency",
        "1,2",
        "--lifecycles",
        "4",
        "--networks",
        "2",
        "--json",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(ok, "bench protocol failed:\n{out}\n{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON report");
    let levels = v["protocol"]["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[1]["concurrency"], 2);
    assert_eq!(levels[0]["lifecycles"], 4);
    assert!(levels[0]["calls"]["NetworkDriver.Join"]["p50_ms"]
        .as_f64()
        .is_some());

    let (ok, out, err) = kuryr(&[
        "bench",
        "scale",
        "--endpoints",
        "30",
        "--batch",
        "10",
        "--scale-subnet",
        "10.77.0.0/24",
        "--svg-dir",
        dir.path().to_str().unwrap(),
        "--compare",
        out_file.to_str().unwrap(),
    ]);
    assert!(ok, "bench scale failed:\n{out}\n{err}");
    assert!(out.contains("scale: 30 endpoints"), "{out}");
    assert!(out.contains("compared with"), "{out}");
    let svg = std::fs::read_to_string(dir.path().join("scale.svg")).expect("scale.svg");
    assert!(svg.starts_with("<svg"));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn bench_docker_runs_end_to_end_and_prints_its_table() {
    let d = Daemon::start(&[]);
    let (ok, out, err) = kuryr(&[
        "bench",
        "docker",
        "--driver",
        &d.name,
        "--runs",
        "1",
        "--parallel",
        "2",
        "--json",
    ]);
    assert!(ok, "bench docker failed:\n{out}\n{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON report");
    for net in ["none", "bridge", "kuryr"] {
        assert!(
            v["docker"]["run_median_s"][net]
                .as_f64()
                .is_some_and(|s| s > 0.0),
            "{net}: {v}"
        );
    }
    assert!(v["docker"]["first_ping_s"]["kuryr"].as_f64().is_some());
}
