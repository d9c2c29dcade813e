//! Checks a network+IPAM plugin's answers against what Docker accepts: every call of both
//! APIs, malformed and empty bodies, missing, wrong and extra fields, unknown methods, and
//! Docker's retry patterns. "must" checks are what Docker needs to work; "should" checks are
//! what makes a plugin pleasant (Docker tolerates the failure, e.g. by only logging it).
use crate::client::{docker_id, PluginAddr, PluginClient, Reply};
use crate::BenchError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub must: bool,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub plugin: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn must_failures(&self) -> usize {
        self.checks.iter().filter(|c| c.must && !c.passed).count()
    }

    pub fn should_failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.must && !c.passed).count()
    }
}

struct Run {
    c: PluginClient,
    checks: Vec<Check>,
}

fn is_cidr(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(ip, p)| ip.parse::<std::net::IpAddr>().is_ok() && p.parse::<u8>().is_ok())
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
}

impl Run {
    fn check(&mut self, name: &str, must: bool, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_string(),
            must,
            passed,
            detail: detail.into(),
        });
    }

    async fn call(&mut self, method: &str, body: &Value) -> Result<Reply, BenchError> {
        let r = self.c.call(method, body).await?;
        if r.json.is_none() {
            let detail = format!(
                "{method}: HTTP {} with a body that is not JSON: {:?}",
                r.status,
                r.raw.chars().take(120).collect::<String>()
            );
            self.check("every reply is JSON", true, false, detail);
        }
        Ok(r)
    }

    /// The call must succeed (HTTP 200, no Err); records the check and returns the body.
    async fn expect_ok(
        &mut self,
        name: &str,
        method: &str,
        body: &Value,
    ) -> Result<Option<Value>, BenchError> {
        let r = self.call(method, body).await?;
        match r.error() {
            None => {
                self.check(name, true, true, format!("{method}: 200 {}", r.raw.trim()));
                Ok(Some(r.json.unwrap_or(Value::Null)))
            }
            Some(e) => {
                self.check(name, true, false, format!("{method}: {e}"));
                Ok(None)
            }
        }
    }

    /// The call must fail the way Docker reads a failure: an error status with `{"Err": "..."}`.
    async fn expect_err(
        &mut self,
        name: &str,
        method: &str,
        raw_body: &str,
    ) -> Result<(), BenchError> {
        let r = self.c.call_raw(method, raw_body).await?;
        let err = r
            .json
            .as_ref()
            .and_then(|j| j.get("Err"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let passed = r.status != 200 && !err.is_empty();
        self.check(
            name,
            true,
            passed,
            format!(
                "{method} with {:?}: HTTP {} Err {:?}",
                raw_body.chars().take(60).collect::<String>(),
                r.status,
                err
            ),
        );
        Ok(())
    }
}

pub async fn run(addr: &PluginAddr, subnet: &str) -> Result<Report, BenchError> {
    let mut r = Run {
        c: PluginClient::new(addr.clone()),
        checks: Vec::new(),
    };

    // Handshake and the argument-less calls, with empty bodies as Docker sends them.
    if let Some(v) = r
        .expect_ok("Plugin.Activate answers", "Plugin.Activate", &Value::Null)
        .await?
    {
        let implements: Vec<&str> = v["Implements"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        r.check(
            "Activate implements NetworkDriver and IpamDriver",
            true,
            implements.contains(&"NetworkDriver") && implements.contains(&"IpamDriver"),
            format!("{implements:?}"),
        );
    }
    if let Some(v) = r
        .expect_ok(
            "NetworkDriver.GetCapabilities with an empty body",
            "NetworkDriver.GetCapabilities",
            &Value::Null,
        )
        .await?
    {
        let scope = v["Scope"].as_str().unwrap_or_default().to_string();
        r.check(
            "Scope is local or global",
            true,
            scope == "local" || scope == "global",
            scope,
        );
    }
    if let Some(v) = r
        .expect_ok(
            "IpamDriver.GetCapabilities with an empty body",
            "IpamDriver.GetCapabilities",
            &Value::Null,
        )
        .await?
    {
        r.check(
            "IPAM capabilities are an object",
            true,
            v.is_object(),
            v.to_string(),
        );
    }
    if let Some(v) = r
        .expect_ok(
            "GetDefaultAddressSpaces with an empty body",
            "IpamDriver.GetDefaultAddressSpaces",
            &Value::Null,
        )
        .await?
    {
        r.check(
            "default address spaces are strings",
            true,
            v["LocalDefaultAddressSpace"].is_string() && v["GlobalDefaultAddressSpace"].is_string(),
            v.to_string(),
        );
    }

    // Bad requests: each must be refused with {"Err": ...}, never a hang, a crash or a 200.
    for method in [
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
    ] {
        r.expect_err(
            &format!("{method} refuses malformed JSON"),
            method,
            "{\"NetworkID\": ",
        )
        .await?;
        // Not checked for RequestPool: Docker never sends it empty, and plugins differ (kuryr
        // refuses it, as a retry that lost its body; others read it as `{}`, a default pool).
        if method != "IpamDriver.RequestPool" {
            r.expect_err(&format!("{method} refuses an empty body"), method, "")
                .await?;
        }
    }
    r.expect_err(
        "RequestPool refuses a wrong type",
        "IpamDriver.RequestPool",
        r#"{"AddressSpace": "", "Pool": 5, "V6": false}"#,
    )
    .await?;
    r.expect_err(
        "RequestPool refuses an invalid CIDR",
        "IpamDriver.RequestPool",
        r#"{"AddressSpace": "", "Pool": "10.1.0.0/33", "V6": false}"#,
    )
    .await?;
    r.expect_err(
        "CreateEndpoint refuses a missing EndpointID",
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": docker_id(), "Interface": {"Address": "10.1.0.2/24"}}).to_string(),
    )
    .await?;
    r.expect_err(
        "CreateEndpoint refuses an unknown network",
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": docker_id(), "EndpointID": docker_id(), "Interface": {"Address": "10.1.0.2/24"}, "Options": {}}).to_string(),
    )
    .await?;
    r.expect_err("Join refuses an unknown endpoint", "NetworkDriver.Join", &json!({"NetworkID": docker_id(), "EndpointID": docker_id(), "SandboxKey": "/x", "Options": {}}).to_string()).await?;
    let unknown = r.c.call_raw("NetworkDriver.Frobnicate", "{}").await?;
    r.check(
        "an unknown method gets 404",
        false,
        unknown.status == 404,
        format!("HTTP {}", unknown.status),
    );

    // A network's life, then a container's, with Docker's retries.
    let extra = r.call("IpamDriver.RequestPool", &json!({"AddressSpace": "", "Pool": subnet, "SubPool": "", "Options": {}, "V6": false, "SomethingNew": true})).await?;
    r.check(
        "unknown fields are ignored",
        false,
        extra.error().is_none(),
        extra.raw.trim().to_string(),
    );
    let Some(pool) = r
        .expect_ok(
            "RequestPool",
            "IpamDriver.RequestPool",
            &json!({"AddressSpace": "", "Pool": subnet, "SubPool": "", "Options": {}, "V6": false}),
        )
        .await?
    else {
        return Ok(Report {
            plugin: addr.to_string(),
            checks: r.checks,
        });
    };
    let pool_id = pool["PoolID"].as_str().unwrap_or_default().to_string();
    let cidr = pool["Pool"].as_str().unwrap_or_default().to_string();
    r.check(
        "RequestPool returns a PoolID and the pool in CIDR form",
        true,
        !pool_id.is_empty() && is_cidr(&cidr),
        pool.to_string(),
    );
    let gw = r
        .expect_ok("RequestAddress for the gateway", "IpamDriver.RequestAddress", &json!({"PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}))
        .await?
        .unwrap_or(Value::Null);
    let gateway = gw["Address"].as_str().unwrap_or_default().to_string();
    r.check(
        "addresses come in CIDR form",
        true,
        is_cidr(&gateway),
        gateway.clone(),
    );
    let network_id = docker_id();
    let created = r
        .expect_ok(
            "CreateNetwork",
            "NetworkDriver.CreateNetwork",
            &json!({"NetworkID": network_id, "Options": {"com.docker.network.generic": {}}, "IPv4Data": [{"AddressSpace": "", "Pool": cidr, "Gateway": gateway}], "IPv6Data": []}),
        )
        .await?;
    if created.is_some() {
        let a = r
            .expect_ok(
                "RequestAddress for an endpoint",
                "IpamDriver.RequestAddress",
                &json!({"PoolID": pool_id, "Address": "", "Options": {}}),
            )
            .await?
            .unwrap_or(Value::Null);
        let address = a["Address"].as_str().unwrap_or_default().to_string();
        let endpoint_id = docker_id();
        let create = json!({"NetworkID": network_id, "EndpointID": endpoint_id, "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
        if let Some(v) = r
            .expect_ok("CreateEndpoint", "NetworkDriver.CreateEndpoint", &create)
            .await?
        {
            let iface = &v["Interface"];
            r.check(
                "CreateEndpoint does not echo the address Docker gave",
                true,
                iface["Address"].as_str().unwrap_or_default().is_empty(),
                v.to_string(),
            );
            let mac = iface["MacAddress"].as_str().unwrap_or_default();
            r.check(
                "a MAC in CreateEndpoint's reply is aa:bb:cc:dd:ee:ff",
                true,
                mac.is_empty() || is_mac(mac),
                mac.to_string(),
            );
        }
        let again = r.call("NetworkDriver.CreateEndpoint", &create).await?;
        r.check(
            "the same CreateEndpoint again answers cleanly",
            false,
            again.json.is_some(),
            again.raw.trim().to_string(),
        );
        let ep_ref = json!({"NetworkID": network_id, "EndpointID": endpoint_id});
        if let Some(v) = r.expect_ok("Join", "NetworkDriver.Join", &json!({"NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": "/var/run/docker/netns/c0f0e0d0c0b0", "Options": {}})).await? {
            let src = v["InterfaceName"]["SrcName"].as_str().unwrap_or_default();
            let dst = v["InterfaceName"]["DstPrefix"].as_str().unwrap_or_default();
            r.check("Join names the interface to move (SrcName, DstPrefix)", true, !src.is_empty() && !dst.is_empty(), v.to_string());
            let gw = v["Gateway"].as_str().unwrap_or_default();
            r.check("Join's Gateway is a plain IP", true, gw.is_empty() || gw.parse::<std::net::IpAddr>().is_ok(), gw.to_string());
        }
        let p = r
            .call(
                "NetworkDriver.ProgramExternalConnectivity",
                &json!({"NetworkID": network_id, "EndpointID": endpoint_id, "Options": {}}),
            )
            .await?;
        r.check(
            "ProgramExternalConnectivity answers (200, or 404 for not implemented)",
            true,
            p.status == 404 || p.error().is_none(),
            p.raw.trim().to_string(),
        );
        let info = r.call("NetworkDriver.EndpointOperInfo", &ep_ref).await?;
        r.check(
            "EndpointOperInfo answers",
            false,
            info.error().is_none(),
            info.raw.trim().to_string(),
        );
        let rv = r
            .call("NetworkDriver.RevokeExternalConnectivity", &ep_ref)
            .await?;
        r.check(
            "RevokeExternalConnectivity answers (200, or 404)",
            true,
            rv.status == 404 || rv.error().is_none(),
            rv.raw.trim().to_string(),
        );
        r.expect_ok("Leave", "NetworkDriver.Leave", &ep_ref).await?;
        r.expect_ok("DeleteEndpoint", "NetworkDriver.DeleteEndpoint", &ep_ref)
            .await?;
        let twice = r.call("NetworkDriver.DeleteEndpoint", &ep_ref).await?;
        r.check(
            "DeleteEndpoint twice succeeds (Docker may retry)",
            false,
            twice.error().is_none(),
            twice.raw.trim().to_string(),
        );
        let unknown = r
            .call(
                "NetworkDriver.DeleteEndpoint",
                &json!({"NetworkID": network_id, "EndpointID": docker_id()}),
            )
            .await?;
        r.check(
            "DeleteEndpoint of an unknown endpoint succeeds",
            false,
            unknown.error().is_none(),
            unknown.raw.trim().to_string(),
        );
        let ip = address.split('/').next().unwrap_or_default().to_string();
        r.expect_ok(
            "ReleaseAddress",
            "IpamDriver.ReleaseAddress",
            &json!({"PoolID": pool_id, "Address": ip}),
        )
        .await?;
        let twice = r
            .call(
                "IpamDriver.ReleaseAddress",
                &json!({"PoolID": pool_id, "Address": ip}),
            )
            .await?;
        r.check(
            "ReleaseAddress twice succeeds",
            false,
            twice.error().is_none(),
            twice.raw.trim().to_string(),
        );
        r.expect_ok(
            "DeleteNetwork",
            "NetworkDriver.DeleteNetwork",
            &json!({"NetworkID": network_id}),
        )
        .await?;
    }
    let gw_ip = gateway.split('/').next().unwrap_or_default().to_string();
    r.expect_ok(
        "ReleaseAddress of the gateway",
        "IpamDriver.ReleaseAddress",
        &json!({"PoolID": pool_id, "Address": gw_ip}),
    )
    .await?;
    r.expect_ok(
        "ReleasePool",
        "IpamDriver.ReleasePool",
        &json!({"PoolID": pool_id}),
    )
    .await?;

    // No --subnet: Docker asks again without releasing when it rejects a pool.
    let a = r
        .call(
            "IpamDriver.RequestPool",
            &json!({"AddressSpace": "", "Pool": "", "SubPool": "", "Options": {}, "V6": false}),
        )
        .await?;
    let b = r
        .call(
            "IpamDriver.RequestPool",
            &json!({"AddressSpace": "", "Pool": "", "SubPool": "", "Options": {}, "V6": false}),
        )
        .await?;
    let (pa, pb) = (
        a.json.clone().unwrap_or_default(),
        b.json.clone().unwrap_or_default(),
    );
    let differ = a.error().is_none() && b.error().is_none() && pa["Pool"] != pb["Pool"];
    r.check(
        "without --subnet, a second RequestPool gets another pool",
        false,
        differ,
        format!("{} / {}", a.raw.trim(), b.raw.trim()),
    );
    for p in [pa, pb] {
        if let Some(id) = p["PoolID"].as_str() {
            let _ =
                r.c.call("IpamDriver.ReleasePool", &json!({"PoolID": id}))
                    .await;
        }
    }
    Ok(Report {
        plugin: addr.to_string(),
        checks: r.checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_cidr("10.0.0.1/24") && is_cidr("fd00::1/64"));
        assert!(!is_cidr("10.0.0.1") && !is_cidr("x/24"));
        assert!(
            is_mac("0a:58:0a:00:00:01")
                && !is_mac("0a:58:0a:00:00")
                && !is_mac("zz:58:0a:00:00:01")
        );
    }
}
