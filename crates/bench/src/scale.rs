//! N endpoints on one network, created then deleted, against a kuryr daemon this benchmark
//! starts itself with no host binding, so what is measured is kuryr's own cost per call
//! (protocol, IPAM, Northbound) and the daemon's memory as the network grows.
use crate::client::{PluginAddr, PluginClient};
use crate::protocol::{create_network, delete_network, start_endpoint, stop_endpoint, Timings};
use crate::stats::{summarize, Summary};
use crate::BenchError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    /// Endpoints on the network at the end of this batch.
    pub endpoints: usize,
    /// Per endpoint: RequestAddress + CreateEndpoint (or DeleteEndpoint + ReleaseAddress).
    pub latency: Summary,
    pub daemon_rss_mb: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleReport {
    pub endpoints: usize,
    pub batch: usize,
    pub create: Vec<Batch>,
    pub delete: Vec<Batch>,
    /// Last create batch's p50 over the first's.
    pub create_p50_growth: f64,
    pub daemon_rss_start_mb: f64,
    pub daemon_rss_peak_mb: f64,
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Runs the scale benchmark: `kuryr` is the binary to start as the daemon, `nb` its Northbound.
pub async fn run(
    kuryr: &Path,
    nb: &str,
    endpoints: usize,
    batch: usize,
    subnet: &str,
) -> Result<ScaleReport, BenchError> {
    let dir = std::env::temp_dir().join(format!("kuryr-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::Other(format!("create {}: {e}", dir.display())))?;
    let conf = dir.join("kuryr.conf");
    std::fs::write(&conf, "")
        .map_err(|e| BenchError::Other(format!("write {}: {e}", conf.display())))?;
    let socket = dir.join("scale.sock");
    let log = std::fs::File::create(dir.join("daemon.log"))
        .map_err(|e| BenchError::Other(format!("log file: {e}")))?;
    let host = format!("kuryr-bench-{:08x}", rand::random::<u32>());
    let child = Command::new(kuryr)
        .arg("daemon")
        .arg("--config")
        .arg(&conf)
        .arg("--socket")
        .arg(&socket)
        .args([
            "--nb",
            nb,
            "--host",
            &host,
            "--binding",
            "none",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| BenchError::Other(format!("start {}: {e}", kuryr.display())))?;
    let mut daemon = Daemon { child };
    let pid = daemon.child.id();
    let addr = PluginAddr::Unix(socket.clone());
    let mut c = PluginClient::new(addr);
    let start = Instant::now();
    loop {
        if socket.exists()
            && c.call("Plugin.Activate", &serde_json::Value::Null)
                .await
                .is_ok()
        {
            break;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            let text = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            return Err(BenchError::Other(format!(
                "the benchmark's kuryr daemon exited with {status}: {}",
                text.trim()
            )));
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(BenchError::Other(
                "the benchmark's kuryr daemon did not answer within 20 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_start = rss_mb(pid);
    let mut t = Timings::new();
    let net = create_network(&mut c, &mut t, subnet, json!({})).await?;
    let mut eps = Vec::with_capacity(endpoints);
    let (mut create, mut delete) = (Vec::new(), Vec::new());
    let mut peak = rss_start;
    let mut lat = Vec::with_capacity(batch);
    let result: Result<(), BenchError> = async {
        for i in 0..endpoints {
            let s = Instant::now();
            let (ep, _) = start_endpoint(&mut c, &mut t, &net, false).await?;
            lat.push(s.elapsed());
            eps.push(ep);
            if (i + 1) % batch == 0 || i + 1 == endpoints {
                let rss = rss_mb(pid);
                peak = peak.max(rss);
                create.push(Batch {
                    endpoints: i + 1,
                    latency: summarize(&lat),
                    daemon_rss_mb: rss,
                });
                lat.clear();
            }
        }
        Ok(())
    }
    .await;
    // Delete what exists even when creating failed half way.
    let total = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let s = Instant::now();
        stop_endpoint(&mut c, &mut t, &net, ep, false).await?;
        lat.push(s.elapsed());
        if (i + 1) % batch == 0 || i + 1 == total {
            delete.push(Batch {
                endpoints: total - i - 1,
                latency: summarize(&lat),
                daemon_rss_mb: rss_mb(pid),
            });
            lat.clear();
        }
    }
    delete_network(&mut c, &mut t, &net).await?;
    result?;
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    let growth = match (create.first(), create.last()) {
        (Some(a), Some(b)) if a.latency.p50_ms > 0.0 => b.latency.p50_ms / a.latency.p50_ms,
        _ => 0.0,
    };
    Ok(ScaleReport {
        endpoints,
        batch,
        create,
        delete,
        create_p50_growth: growth,
        daemon_rss_start_mb: rss_start,
        daemon_rss_peak_mb: peak,
    })
}
