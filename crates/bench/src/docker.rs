//! End to end with the real Docker Engine: `docker run` on no network, the bridge driver, a
//! kuryr network and (when given) a kuryr-libnetwork network, alternated run by run.
use crate::stats::median;
use crate::BenchError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Instant;

pub const DOCKER: &str = "/usr/bin/docker";

#[derive(Debug, Clone)]
pub struct DockerBench {
    pub image: String,
    pub runs: usize,
    /// Network drivers to compare with `none` and `bridge`: (label, driver name, subnet).
    pub drivers: Vec<(String, String, String)>,
    pub parallel: usize,
    /// Also time each network with a published port (`LABEL -p`).
    pub publish: bool,
    /// The kuryr daemon's metrics address, to count its port pool hits and misses.
    pub pool_metrics: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerReport {
    pub runs: usize,
    /// Median seconds of `docker run --rm --net X IMAGE sh -c true`, per network.
    pub run_median_s: BTreeMap<String, f64>,
    /// Each network's median minus `none`'s.
    pub overhead_s: BTreeMap<String, f64>,
    /// Median seconds of `docker network create` / `rm`, per driver label.
    pub network_create_s: BTreeMap<String, f64>,
    pub network_rm_s: BTreeMap<String, f64>,
    /// Wall seconds of `parallel` runs started at once, per network, and the ratio to one run.
    pub parallel: usize,
    pub parallel_wall_s: BTreeMap<String, f64>,
    pub parallel_ratio: BTreeMap<String, f64>,
    /// Median seconds from `docker run` to the first ping reply from another container.
    pub first_ping_s: BTreeMap<String, f64>,
    /// The kuryr daemon's port pool hits and misses during the benchmark (with
    /// `--pool-metrics`).
    #[serde(default)]
    pub pool: Option<PoolCounts>,
}

fn docker(args: &[&str]) -> Result<Output, BenchError> {
    Command::new(DOCKER)
        .args(args)
        .output()
        .map_err(|e| BenchError::Other(format!("run docker: {e}")))
}

fn docker_ok(args: &[&str]) -> Result<String, BenchError> {
    let out = docker(args)?;
    if !out.status.success() {
        return Err(BenchError::Other(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn timed(args: &[&str]) -> Result<f64, BenchError> {
    let s = Instant::now();
    docker_ok(args)?;
    Ok(s.elapsed().as_secs_f64())
}

/// Networks and containers the benchmark made, removed even when it fails half way.
struct Cleanup {
    networks: Vec<String>,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The label of a user-defined bridge network in the report.
pub const USER_BRIDGE: &str = "bridge network";

pub fn run(cfg: &DockerBench) -> Result<DockerReport, BenchError> {
    let mut cleanup = Cleanup {
        networks: Vec::new(),
        containers: Vec::new(),
    };
    let mut report = DockerReport {
        runs: cfg.runs,
        run_median_s: BTreeMap::new(),
        overhead_s: BTreeMap::new(),
        network_create_s: BTreeMap::new(),
        network_rm_s: BTreeMap::new(),
        parallel: cfg.parallel,
        parallel_wall_s: BTreeMap::new(),
        parallel_ratio: BTreeMap::new(),
        first_ping_s: BTreeMap::new(),
        pool: None,
    };
    let pool_before = cfg.pool_metrics.as_deref().map(pool_counts).transpose()?;
    // Networks: (label, docker network name). A Docker without its bridge network (dockerd
    // --bridge none, as in the lab's VMs) runs `--net bridge` containers with no network at
    // all: leave it out rather than time that.
    let mut nets: Vec<(String, String)> = vec![("none".into(), "none".into())];
    if docker(&["network", "inspect", "bridge"])?.status.success() {
        nets.push(("bridge".into(), "bridge".into()));
        // A user-defined network of the bridge driver: like every kuryr network (and unlike
        // the default bridge) Docker gives its containers the embedded DNS server, which
        // costs a docker run some tens of milliseconds whatever the driver.
        let name = unique("kbench-br");
        docker_ok(&["network", "create", "-d", "bridge", &name])?;
        cleanup.networks.push(name.clone());
        nets.push((USER_BRIDGE.into(), name));
    } else {
        eprintln!("bench: this Docker has no bridge network (dockerd --bridge none): not measured");
    }
    for (label, driver, subnet) in &cfg.drivers {
        // An explicit gateway: kuryr-libnetwork fails `docker network create` without one.
        let gateway = crate::protocol::first_host(subnet).ok_or_else(|| {
            BenchError::Other(format!("--subnet {subnet}: not an IPv4 CIDR with hosts"))
        })?;
        let (mut creates, mut rms) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let name = unique("kbench-tmp");
            creates.push(timed(&[
                "network",
                "create",
                "-d",
                driver,
                "--ipam-driver",
                driver,
                "--subnet",
                subnet,
                "--gateway",
                &gateway,
                &name,
            ])?);
            rms.push(timed(&["network", "rm", &name])?);
        }
        report
            .network_create_s
            .insert(label.clone(), median(&creates));
        report.network_rm_s.insert(label.clone(), median(&rms));
        let name = unique("kbench");
        docker_ok(&[
            "network",
            "create",
            "-d",
            driver,
            "--ipam-driver",
            driver,
            "--subnet",
            subnet,
            "--gateway",
            &gateway,
            &name,
        ])?;
        cleanup.networks.push(name.clone());
        nets.push((label.clone(), name));
    }
    // Warm up each network once, then alternate run by run so drift hits all alike.
    for (_, net) in &nets {
        timed(&["run", "--rm", "--net", net, &cfg.image, "sh", "-c", "true"])?;
    }
    // Each network but none also with a published port (`LABEL -p`): the port's setup cost,
    // beside the bridge driver's own.
    let published: Vec<(String, String, String)> = nets
        .iter()
        .filter(|(l, _)| cfg.publish && l != "none")
        .enumerate()
        .map(|(i, (l, n))| {
            // Below the ephemeral range, where outgoing connections could hold the port.
            let port = 28000 + (std::process::id() % 500) as usize * 8 + i;
            (format!("{l} -p"), n.clone(), format!("{port}:80"))
        })
        .collect();
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..cfg.runs {
        for (label, net) in &nets {
            samples.entry(label.clone()).or_default().push(timed(&[
                "run", "--rm", "--net", net, &cfg.image, "sh", "-c", "true",
            ])?);
        }
        for (label, net, port) in &published {
            samples.entry(label.clone()).or_default().push(timed(&[
                "run", "--rm", "--net", net, "-p", port, &cfg.image, "sh", "-c", "true",
            ])?);
        }
    }
    for (label, v) in &samples {
        report.run_median_s.insert(label.clone(), median(v));
    }
    let none = report.run_median_s.get("none").copied().unwrap_or(0.0);
    for (label, m) in &report.run_median_s {
        report.overhead_s.insert(label.clone(), m - none);
    }
    // Parallel starts.
    for (label, net) in nets.iter().filter(|(l, _)| l != "none") {
        let s = Instant::now();
        let results: Vec<Result<f64, BenchError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cfg.parallel)
                .map(|_| {
                    scope.spawn(|| {
                        timed(&["run", "--rm", "--net", net, &cfg.image, "sh", "-c", "true"])
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BenchError::Other("a docker run thread panicked".into()))
                    })
                })
                .collect()
        });
        for r in results {
            r?;
        }
        let wall = s.elapsed().as_secs_f64();
        report.parallel_wall_s.insert(label.clone(), wall);
        let one = report.run_median_s.get(label).copied().unwrap_or(wall);
        report.parallel_ratio.insert(label.clone(), wall / one);
    }
    // First ping: a new container pings a running one until the first reply.
    for (label, net) in nets.iter().filter(|(l, _)| l != "none") {
        let peer = unique("kbench-peer");
        docker_ok(&[
            "run", "-d", "--name", &peer, "--net", net, &cfg.image, "sleep", "600",
        ])?;
        cleanup.containers.push(peer.clone());
        let fmt = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
        let ip = docker_ok(&["inspect", "-f", &fmt, &peer])?;
        if ip.is_empty() {
            return Err(BenchError::Other(format!(
                "the peer container on {label} got no IPv4 address"
            )));
        }
        // Bounded: a network that never answers fails the benchmark instead of hanging it.
        let script = format!(
            "i=0; until ping -c 1 -W 1 {ip} >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 60 ] || exit 1; done"
        );
        let mut v = Vec::new();
        for _ in 0..cfg.runs.clamp(1, 5) {
            v.push(timed(&[
                "run", "--rm", "--net", net, &cfg.image, "sh", "-c", &script,
            ])?);
        }
        report.first_ping_s.insert(label.clone(), median(&v));
    }
    if let (Some(addr), Some(before)) = (&cfg.pool_metrics, pool_before) {
        let after = pool_counts(addr)?;
        report.pool = Some(PoolCounts {
            hits: after.hits.saturating_sub(before.hits),
            misses: after.misses.saturating_sub(before.misses),
        });
    }
    drop(cleanup);
    Ok(report)
}

/// Port pool requests of a daemon, from its Prometheus endpoint (`[DEFAULT]
/// metrics_address`): `kuryr_port_pool_requests_total` by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCounts {
    pub hits: u64,
    pub misses: u64,
}

/// Reads the pool counters of the daemon serving metrics at `addr` (`HOST:PORT`).
pub fn pool_counts(addr: &str) -> Result<PoolCounts, BenchError> {
    use std::io::{Read, Write};
    let err = |e: std::io::Error| BenchError::Other(format!("read metrics at {addr}: {e}"));
    let mut s = std::net::TcpStream::connect(addr).map_err(err)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(err)?;
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(err)?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(err)?;
    Ok(parse_pool_counts(&text))
}

fn parse_pool_counts(text: &str) -> PoolCounts {
    let mut c = PoolCounts::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("kuryr_port_pool_requests_total{") else {
            continue;
        };
        let n = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if rest.contains("result=\"hit\"") {
            c.hits = n;
        } else if rest.contains("result=\"miss\"") {
            c.misses = n;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_counters_are_read_from_prometheus_text() {
        let text = "# HELP x\nkuryr_port_pool_requests_total{result=\"hit\"} 12\nkuryr_port_pool_requests_total{result=\"miss\"} 3\nkuryr_port_pool_free 7\n";
        assert_eq!(
            parse_pool_counts(text),
            PoolCounts {
                hits: 12,
                misses: 3
            }
        );
        assert_eq!(parse_pool_counts(""), PoolCounts::default());
    }
}
