//! The daemon's own account of how it is doing, from its metrics endpoint
//! (`[DEFAULT] metrics_address`): Docker calls and their errors per method, and whether its
//! OVSDB connections are up.
use super::{fail, ok, skip, warn, Check};
use kuryr_metrics::scrape::{self, Sample};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const CHECK: &str = "metrics";

/// Where a client reaches a daemon listening on `addr` (a wildcard address means loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

pub(super) async fn check(addr: Option<SocketAddr>, daemon_up: bool, limit: Duration) -> Check {
    let Some(addr) = addr else {
        return ok(
            CHECK,
            "off (set [DEFAULT] metrics_address, e.g. 127.0.0.1:9779, to see error rates here)",
        );
    };
    if !daemon_up {
        return skip(CHECK, "the plugin socket does not answer");
    }
    let url = format!("http://{}/metrics", reachable(addr));
    let text = match fetch(&url, limit).await {
        Ok(t) => t,
        Err(e) => {
            return fail(
                CHECK,
                format!("{url} does not answer: {e}"),
                "is the running kuryr daemon reading this kuryr.conf? Restart it to apply metrics_address",
            )
        }
    };
    match scrape::parse(&text) {
        Ok(samples) => summary(&samples),
        Err(e) => fail(
            CHECK,
            format!("{url} is not Prometheus text: {e}"),
            "is another program on that port? choose a free one for [DEFAULT] metrics_address",
        ),
    }
}

async fn fetch(url: &str, limit: Duration) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(limit)
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    resp.text().await.map_err(|e| e.to_string())
}

/// Calls and errors per method, the OVSDB connections, and a warning for calls kuryr failed.
fn summary(samples: &[Sample]) -> Check {
    let mut calls: BTreeMap<&str, f64> = BTreeMap::new();
    for s in samples {
        if s.name == "kuryr_docker_request_duration_seconds_count" {
            *calls.entry(s.label("method").unwrap_or("?")).or_default() += s.value;
        }
    }
    let total: f64 = calls.values().fold(0.0, |a, b| a + b);
    let refused = scrape::sum(
        samples,
        "kuryr_docker_request_errors_total",
        &[("kind", "refused")],
    );
    let failed = scrape::sum(
        samples,
        "kuryr_docker_request_errors_total",
        &[("kind", "failed")],
    );
    let mut failing: Vec<String> = calls
        .iter()
        .filter_map(|(method, n)| {
            let f = scrape::sum(
                samples,
                "kuryr_docker_request_errors_total",
                &[("method", method), ("kind", "failed")],
            );
            (f > 0.0).then(|| format!("{method} {f}/{n}"))
        })
        .collect();
    failing.sort();
    let pct = |n: f64| {
        if total > 0.0 {
            n * 100.0 / total
        } else {
            0.0
        }
    };
    let mut detail = format!(
        "{total} Docker calls since start: {failed} failed ({:.1}%), {refused} refused ({:.1}%)",
        pct(failed),
        pct(refused)
    );
    let down: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "kuryr_ovsdb_connected" && s.value == 0.0)
        .filter_map(|s| s.label("database"))
        .collect();
    let reconnects = scrape::sum(samples, "kuryr_ovsdb_reconnects_total", &[]);
    if reconnects > 0.0 {
        detail.push_str(&format!("; {reconnects} OVSDB reconnects"));
    }
    if !down.is_empty() {
        return warn(
            CHECK,
            format!("{detail}; not connected to {}", down.join(", ")),
            "the daemon reconnects by itself: check that the database server runs and is reachable",
        );
    }
    if failed > 0.0 {
        return warn(
            CHECK,
            format!("{detail}; failing: {}", failing.join(", ")),
            "look for \"plugin call failed\" in the kuryr daemon's log",
        );
    }
    ok(CHECK, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;

    fn samples(text: &str) -> Vec<Sample> {
        scrape::parse(text).expect("parses")
    }

    #[test]
    fn counts_calls_and_warns_on_failures_not_refusals() {
        let base = "kuryr_docker_request_duration_seconds_count{method=\"Join\",result=\"ok\"} 3\n\
                    kuryr_docker_request_duration_seconds_count{method=\"RequestAddress\",result=\"error\"} 1\n\
                    kuryr_docker_request_errors_total{method=\"RequestAddress\",kind=\"refused\"} 1\n\
                    kuryr_ovsdb_connected{database=\"OVN_Northbound\"} 1\n";
        let c = summary(&samples(base));
        assert_eq!(c.status, Status::Ok, "{}", c.detail);
        assert!(
            c.detail
                .starts_with("4 Docker calls since start: 0 failed (0.0%), 1 refused (25.0%)"),
            "{}",
            c.detail
        );

        let failing = format!(
            "{base}kuryr_docker_request_duration_seconds_count{{method=\"Join\",result=\"error\"}} 1\n\
             kuryr_docker_request_errors_total{{method=\"Join\",kind=\"failed\"}} 1\n"
        );
        let c = summary(&samples(&failing));
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("failing: Join 1/4"), "{}", c.detail);

        let down = base.replace("OVN_Northbound\"} 1", "OVN_Northbound\"} 0");
        let c = summary(&samples(&down));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("not connected to OVN_Northbound"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9779".parse().unwrap()),
            "127.0.0.1:9779".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:9779".parse().unwrap()),
            "[::1]:9779".parse().unwrap()
        );
        assert_eq!(
            reachable("10.0.0.1:9779".parse().unwrap()),
            "10.0.0.1:9779".parse().unwrap()
        );
    }
}
