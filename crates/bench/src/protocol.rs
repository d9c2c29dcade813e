//! Docker's call sequences replayed at the protocol level against any network+IPAM plugin.
use crate::client::{docker_id, PluginClient, Reply};
use crate::stats::{summarize, Summary};
use crate::BenchError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A network created through the protocol, as `docker network create --subnet` does.
#[derive(Debug, Clone)]
pub struct ProtoNetwork {
    pub network_id: String,
    pub pool_id: String,
    pub pool: String,
    pub gateway: String,
}

fn ok(call: &str, r: Reply) -> Result<Value, BenchError> {
    match r.error() {
        None => Ok(r.json.unwrap_or(Value::Null)),
        Some(e) => Err(BenchError::Call {
            call: call.to_string(),
            error: e,
        }),
    }
}

/// Records one call's latency under its name.
pub type Timings = BTreeMap<String, Vec<Duration>>;

async fn timed(
    c: &mut PluginClient,
    t: &mut Timings,
    method: &str,
    body: Value,
) -> Result<Value, BenchError> {
    let r = c.call(method, &body).await?;
    t.entry(method.to_string()).or_default().push(r.took);
    ok(method, r)
}

/// The first host address of an IPv4 CIDR (`10.1.0.0/24` -> `10.1.0.1`), the gateway
/// `docker network create --gateway` would name; `None` for anything else.
pub fn first_host(cidr: &str) -> Option<String> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if len >= 31 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some(std::net::Ipv4Addr::from((u32::from(addr) & mask) + 1).to_string())
}

/// RequestPool, the gateway's RequestAddress and CreateNetwork.
pub async fn create_network(
    c: &mut PluginClient,
    t: &mut Timings,
    subnet: &str,
    options: Value,
) -> Result<ProtoNetwork, BenchError> {
    let pool = timed(
        c,
        t,
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "", "Pool": subnet, "SubPool": "", "Options": options, "V6": false}),
    )
    .await?;
    let pool_id = pool["PoolID"].as_str().unwrap_or_default().to_string();
    let cidr = pool["Pool"].as_str().unwrap_or(subnet).to_string();
    // `docker network create --subnet S --gateway <S's first host>`: kuryr-libnetwork cannot
    // pick a gateway before its subnet exists, so an empty Address fails there.
    let gw = timed(
        c,
        t,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": first_host(&cidr).unwrap_or_default(), "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    )
    .await?;
    let gateway = gw["Address"].as_str().unwrap_or_default().to_string();
    let network_id = docker_id();
    timed(
        c,
        t,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": network_id, "Options": {"com.docker.network.generic": options, "com.docker.network.enable_ipv6": false},
               "IPv4Data": [{"AddressSpace": "", "Pool": cidr, "Gateway": gateway, "AuxAddresses": {}}], "IPv6Data": []}),
    )
    .await?;
    Ok(ProtoNetwork {
        network_id,
        pool_id,
        pool: cidr,
        gateway,
    })
}

/// `docker network rm`: DeleteNetwork, the gateway's ReleaseAddress, ReleasePool.
pub async fn delete_network(
    c: &mut PluginClient,
    t: &mut Timings,
    n: &ProtoNetwork,
) -> Result<(), BenchError> {
    // Docker's order (libnetwork's network.delete): the driver first, then the IPAM
    // releases. kuryr-libnetwork deletes its subnet in DeleteNetwork, so a ReleasePool
    // before it fails with "Subnet pool has existing allocations".
    timed(
        c,
        t,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": n.network_id}),
    )
    .await?;
    let gw = n.gateway.split('/').next().unwrap_or_default();
    timed(
        c,
        t,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": n.pool_id, "Address": gw}),
    )
    .await?;
    timed(c, t, "IpamDriver.ReleasePool", json!({"PoolID": n.pool_id})).await?;
    Ok(())
}

/// An endpoint created by [`start_endpoint`].
#[derive(Debug, Clone)]
pub struct ProtoEndpoint {
    pub endpoint_id: String,
    pub address: String,
}

/// `docker run`'s calls: RequestAddress, CreateEndpoint, and (with `join`) Join,
/// ProgramExternalConnectivity, EndpointOperInfo. Returns the endpoint and, with `join`, the
/// time from CreateEndpoint until Join returned (the port is installed by then).
pub async fn start_endpoint(
    c: &mut PluginClient,
    t: &mut Timings,
    n: &ProtoNetwork,
    join: bool,
) -> Result<(ProtoEndpoint, Duration), BenchError> {
    let a = timed(
        c,
        t,
        "IpamDriver.RequestAddress",
        json!({"PoolID": n.pool_id, "Address": "", "Options": {}}),
    )
    .await?;
    let address = a["Address"].as_str().unwrap_or_default().to_string();
    let endpoint_id = docker_id();
    let start = Instant::now();
    timed(
        c,
        t,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": n.network_id, "EndpointID": endpoint_id, "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
    )
    .await?;
    let ep_ref = json!({"NetworkID": n.network_id, "EndpointID": endpoint_id});
    if join {
        timed(
            c,
            t,
            "NetworkDriver.Join",
            json!({"NetworkID": n.network_id, "EndpointID": endpoint_id, "SandboxKey": "/var/run/docker/netns/b0e0c0d0a0f0", "Options": {}}),
        )
        .await?;
    }
    let ready = start.elapsed();
    if join {
        timed(
            c,
            t,
            "NetworkDriver.ProgramExternalConnectivity",
            json!({"NetworkID": n.network_id, "EndpointID": endpoint_id, "Options": {}}),
        )
        .await?;
        timed(c, t, "NetworkDriver.EndpointOperInfo", ep_ref).await?;
    }
    Ok((
        ProtoEndpoint {
            endpoint_id,
            address,
        },
        ready,
    ))
}

/// A container's stop: RevokeExternalConnectivity, Leave, DeleteEndpoint, ReleaseAddress.
pub async fn stop_endpoint(
    c: &mut PluginClient,
    t: &mut Timings,
    n: &ProtoNetwork,
    e: &ProtoEndpoint,
    joined: bool,
) -> Result<(), BenchError> {
    let ep_ref = json!({"NetworkID": n.network_id, "EndpointID": e.endpoint_id});
    if joined {
        timed(
            c,
            t,
            "NetworkDriver.RevokeExternalConnectivity",
            ep_ref.clone(),
        )
        .await?;
        timed(c, t, "NetworkDriver.Leave", ep_ref.clone()).await?;
    }
    timed(c, t, "NetworkDriver.DeleteEndpoint", ep_ref).await?;
    let ip = e.address.split('/').next().unwrap_or_default();
    timed(
        c,
        t,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": n.pool_id, "Address": ip}),
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Level {
    pub concurrency: usize,
    pub lifecycles: usize,
    pub lifecycles_per_s: f64,
    /// One container's start and stop, every call.
    pub lifecycle: Summary,
    /// The lifecycle without Join (Join waits for the host port to be installed).
    pub lifecycle_without_ready_wait: Summary,
    /// From CreateEndpoint until Join returned: the port is installed.
    pub ready: Summary,
    pub calls: BTreeMap<String, Summary>,
}

/// `lifecycles` container starts and stops, `concurrency` at a time, each on its own connection.
pub async fn lifecycles(
    addr: &crate::client::PluginAddr,
    n: &ProtoNetwork,
    concurrency: usize,
    lifecycles: usize,
) -> Result<Level, BenchError> {
    let per_worker = lifecycles.div_ceil(concurrency.max(1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let count = per_worker.min(lifecycles.saturating_sub(w * per_worker));
        let (addr, n) = (addr.clone(), n.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = PluginClient::new(addr);
            let mut t = Timings::new();
            let (mut whole, mut no_join, mut ready) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..count {
                let s = Instant::now();
                let mut local = Timings::new();
                let (ep, r) = start_endpoint(&mut c, &mut local, &n, true).await?;
                stop_endpoint(&mut c, &mut local, &n, &ep, true).await?;
                whole.push(s.elapsed());
                let join: Duration = local
                    .get("NetworkDriver.Join")
                    .map(|v| v.iter().sum())
                    .unwrap_or_default();
                no_join.push(s.elapsed().saturating_sub(join));
                ready.push(r);
                for (k, v) in local {
                    t.entry(k).or_default().extend(v);
                }
            }
            Ok::<_, BenchError>((t, whole, no_join, ready))
        }));
    }
    let mut all = Timings::new();
    let (mut whole, mut no_join, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for task in tasks {
        let (t, w, nj, r) = task
            .await
            .map_err(|e| BenchError::Other(format!("worker: {e}")))??;
        for (k, v) in t {
            all.entry(k).or_default().extend(v);
        }
        whole.extend(w);
        no_join.extend(nj);
        ready.extend(r);
    }
    let wall = start.elapsed();
    Ok(Level {
        concurrency,
        lifecycles: whole.len(),
        lifecycles_per_s: whole.len() as f64 / wall.as_secs_f64(),
        lifecycle: summarize(&whole),
        lifecycle_without_ready_wait: summarize(&no_join),
        ready: summarize(&ready),
        calls: all.iter().map(|(k, v)| (k.clone(), summarize(v))).collect(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolReport {
    pub plugin: String,
    pub network_create: Summary,
    pub network_delete: Summary,
    pub levels: Vec<Level>,
}

/// The whole protocol benchmark: network create/delete `networks` times, then the endpoint
/// lifecycle at each concurrency level on one network.
pub async fn run(
    addr: &crate::client::PluginAddr,
    subnet: &str,
    levels: &[usize],
    lifecycles_per_level: usize,
    networks: usize,
) -> Result<ProtocolReport, BenchError> {
    let mut c = PluginClient::new(addr.clone());
    let (mut creates, mut deletes) = (Vec::new(), Vec::new());
    for _ in 0..networks {
        let mut t = Timings::new();
        let s = Instant::now();
        let n = create_network(&mut c, &mut t, subnet, json!({})).await?;
        creates.push(s.elapsed());
        let s = Instant::now();
        delete_network(&mut c, &mut t, &n).await?;
        deletes.push(s.elapsed());
    }
    let mut t = Timings::new();
    let n = create_network(&mut c, &mut t, subnet, json!({})).await?;
    let mut out = Vec::new();
    let mut failure = None;
    for &level in levels {
        match lifecycles(addr, &n, level, lifecycles_per_level).await {
            Ok(l) => out.push(l),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    delete_network(&mut c, &mut t, &n).await?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(ProtocolReport {
        plugin: addr.to_string(),
        network_create: summarize(&creates),
        network_delete: summarize(&deletes),
        levels: out,
    })
}

#[cfg(test)]
mod first_host_tests {
    use super::first_host;

    #[test]
    fn first_host_of_a_cidr() {
        assert_eq!(first_host("10.241.0.0/24").as_deref(), Some("10.241.0.1"));
        assert_eq!(first_host("10.240.7.9/16").as_deref(), Some("10.240.0.1"));
        assert_eq!(first_host("0.0.0.0/0").as_deref(), Some("0.0.0.1"));
        assert_eq!(first_host("10.0.0.0/31"), None);
        assert_eq!(first_host("fd00::/64"), None);
        assert_eq!(first_host("nonsense"), None);
    }
}
