//! What Docker 25 to 29 and a Swarm manager send that Docker 20.10 (the lab's) never does,
//! replayed byte for byte against a real daemon on the lab's Northbound and br-int (see
//! SWARM.md's protocol section): Docker 29's prefix-only subnets, `enable_ipv4` and IPv6-only
//! networks (28), endpoint `sysctls` (27) and `ifname` (28), the endpoint name in
//! RequestAddress (29), a manager's serial allocations with IPv6 pools sent as `V6: false`
//! and in `IPv4Data`, and the `GwAllocCheck` call kuryr never advertises. Run by
//! `make test` (root and the lab).
mod common;

use common::*;
use serde_json::{json, Value};

/// Posts the exact bytes (Docker ends its JSON bodies with a newline) and expects 200.
fn ok(d: &Daemon, path: &str, body: &str) -> Value {
    let (status, reply) = d.call(path, body);
    assert_eq!(status, 200, "{path} {body}: {reply}");
    assert!(
        reply.get("Err").is_none(),
        "{path}: 200 with an error: {reply}"
    );
    reply
}

fn fails(d: &Daemon, path: &str, body: &str) -> (u16, String) {
    let (status, reply) = d.call(path, body);
    assert_ne!(status, 200, "{path} {body}: {reply}");
    (
        status,
        reply["Err"].as_str().unwrap_or_default().to_string(),
    )
}

/// Removes what the test made even when it fails: endpoints, then networks, then pools.
struct Cleanup<'a> {
    d: &'a Daemon,
    endpoints: Vec<(String, String)>,
    networks: Vec<String>,
    addresses: Vec<(String, String)>,
    pools: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (net, ep) in &self.endpoints {
            let body = json!({"NetworkID": net, "EndpointID": ep});
            let _ = self.d.call("/NetworkDriver.Leave", &format!("{body}\n"));
            let _ = self
                .d
                .call("/NetworkDriver.DeleteEndpoint", &format!("{body}\n"));
        }
        for net in &self.networks {
            let body = json!({"NetworkID": net});
            let _ = self
                .d
                .call("/NetworkDriver.DeleteNetwork", &format!("{body}\n"));
        }
        for (pool, addr) in &self.addresses {
            let body = json!({"PoolID": pool, "Address": addr});
            let _ = self
                .d
                .call("/IpamDriver.ReleaseAddress", &format!("{body}\n"));
        }
        for pool in &self.pools {
            let body = json!({"PoolID": pool});
            let _ = self.d.call("/IpamDriver.ReleasePool", &format!("{body}\n"));
        }
    }
}

fn plain(cidr_address: &str) -> &str {
    cidr_address.split('/').next().unwrap_or(cidr_address)
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn requests_of_docker_25_to_29_and_of_a_swarm_manager_are_served() {
    let d = Daemon::start(&[]);
    let mut c = Cleanup {
        d: &d,
        endpoints: Vec::new(),
        networks: Vec::new(),
        addresses: Vec::new(),
        pools: Vec::new(),
    };

    // Docker 29, `--subnet 0.0.0.0/24`: any free /24 of the default pool, not 0.0.0.0/24.
    let r = ok(
        &d,
        "/IpamDriver.RequestPool",
        "{\"AddressSpace\":\"no_address_space\",\"Pool\":\"0.0.0.0/24\",\"SubPool\":\"\",\"Options\":{},\"V6\":false}\n",
    );
    let v4: ipnet::IpNet = r["Pool"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .expect("a CIDR");
    assert_eq!(v4.prefix_len(), 24, "{r}");
    assert!(
        "10.200.0.0/16"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&v4),
        "not from the default pool: {r}"
    );
    let v4_pool = r["PoolID"].as_str().unwrap_or_default().to_string();
    c.pools.push(v4_pool.clone());
    // A Swarm manager: an IPv6 pool with V6 false.
    let r = ok(
        &d,
        "/IpamDriver.RequestPool",
        "{\"AddressSpace\":\"no_address_space\",\"Pool\":\"fd00:187::/64\",\"SubPool\":\"\",\"Options\":{\"com.docker.network.ipam.serial\":\"true\"},\"V6\":false}\n",
    );
    assert_eq!(r["Pool"], "fd00:187::/64", "{r}");
    let v6_pool = r["PoolID"].as_str().unwrap_or_default().to_string();
    c.pools.push(v6_pool.clone());
    // Gateways as a manager asks for them (serial).
    let gw_body = |pool: &str| {
        format!(
            "{{\"PoolID\":\"{pool}\",\"Address\":\"\",\"Options\":{{\"RequestAddressType\":\"com.docker.network.gateway\",\"com.docker.network.ipam.serial\":\"true\"}}}}\n"
        )
    };
    let gw4 = ok(&d, "/IpamDriver.RequestAddress", &gw_body(&v4_pool))["Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let gw6 = ok(&d, "/IpamDriver.RequestAddress", &gw_body(&v6_pool))["Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(gw6, "fd00:187::1/64");

    // AllocateNetwork from a manager: the IPv6 subnet arrives in IPv4Data.
    let net = docker_id();
    let alloc = format!(
        "{{\"NetworkID\":\"{net}\",\"Options\":{{}},\"IPv4Data\":[{{\"AddressSpace\":\"\",\"Pool\":\"{v4}\",\"Gateway\":\"{gw4}\",\"AuxAddresses\":null}},{{\"AddressSpace\":\"\",\"Pool\":\"fd00:187::/64\",\"Gateway\":\"{gw6}\",\"AuxAddresses\":null}}],\"IPv6Data\":null}}\n"
    );
    ok(&d, "/NetworkDriver.AllocateNetwork", &alloc);

    // CreateNetwork, Docker 28+: enable_ipv4 always present.
    let create = format!(
        "{{\"NetworkID\":\"{net}\",\"Options\":{{\"com.docker.network.enable_ipv4\":true,\"com.docker.network.enable_ipv6\":true,\"com.docker.network.generic\":{{}}}},\"IPv4Data\":[{{\"AddressSpace\":\"no_address_space\",\"Pool\":\"{v4}\",\"Gateway\":\"{gw4}\",\"AuxAddresses\":null}}],\"IPv6Data\":[{{\"AddressSpace\":\"no_address_space\",\"Pool\":\"fd00:187::/64\",\"Gateway\":\"{gw6}\",\"AuxAddresses\":null}}]}}\n"
    );
    ok(&d, "/NetworkDriver.CreateNetwork", &create);
    c.networks.push(net.clone());

    // Docker 29: the endpoint's name in RequestAddress.
    let addr_body = |pool: &str| {
        format!(
            "{{\"PoolID\":\"{pool}\",\"Address\":\"\",\"Options\":{{\"com.docker.network.endpoint.name\":\"web-1\"}}}}\n"
        )
    };
    let a4 = ok(&d, "/IpamDriver.RequestAddress", &addr_body(&v4_pool))["Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.addresses.push((v4_pool.clone(), plain(&a4).to_string()));
    let a6 = ok(&d, "/IpamDriver.RequestAddress", &addr_body(&v6_pool))["Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.addresses.push((v6_pool.clone(), plain(&a6).to_string()));

    // CreateEndpoint with Docker 27's sysctls and Docker 28's ifname.
    let ep = docker_id();
    let _host = HostSide(vec![ep.clone()]);
    let bad = format!(
        "{{\"NetworkID\":\"{net}\",\"EndpointID\":\"{ep}\",\"Interface\":{{\"Address\":\"{a4}\",\"AddressIPv6\":\"{a6}\",\"MacAddress\":\"\"}},\"Options\":{{\"com.docker.network.endpoint.ifname\":\"data 0\"}}}}\n"
    );
    let (status, err) = fails(&d, "/NetworkDriver.CreateEndpoint", &bad);
    assert_eq!(status, 500);
    assert!(
        err.contains("com.docker.network.endpoint.ifname") && err.contains("white space"),
        "{err}"
    );
    let body = format!(
        "{{\"NetworkID\":\"{net}\",\"EndpointID\":\"{ep}\",\"Interface\":{{\"Address\":\"{a4}\",\"AddressIPv6\":\"{a6}\",\"MacAddress\":\"\"}},\"Options\":{{\"com.docker.network.endpoint.exposedports\":[],\"com.docker.network.endpoint.ifname\":\"data0\",\"com.docker.network.endpoint.sysctls\":\"net.ipv4.conf.IFNAME.log_martians=1\",\"com.docker.network.portmap\":[]}}}}\n"
    );
    ok(&d, "/NetworkDriver.CreateEndpoint", &body);
    c.endpoints.push((net.clone(), ep.clone()));
    let join = format!(
        "{{\"NetworkID\":\"{net}\",\"EndpointID\":\"{ep}\",\"SandboxKey\":\"/var/run/docker/netns/0123456789ab\",\"Options\":{{}}}}\n"
    );
    let r = ok(&d, "/NetworkDriver.Join", &join);
    assert_eq!(r["InterfaceName"]["DstName"], "data0", "{r}");
    assert_eq!(r["InterfaceName"]["DstPrefix"], "eth", "{r}");
    assert_eq!(r["Gateway"], plain(&gw4), "{r}");
    assert_eq!(r["GatewayIPv6"], plain(&gw6), "{r}");

    // Docker 28's GwAllocCheck is only sent to drivers that advertise it; kuryr does not.
    let caps = ok(&d, "/NetworkDriver.GetCapabilities", "");
    assert!(caps.get("GwAllocChecker").is_none(), "{caps}");
    let (status, _) = fails(
        &d,
        "/NetworkDriver.GwAllocCheck",
        "{\"Options\":{\"com.docker.network.enable_ipv4\":true}}\n",
    );
    assert_eq!(status, 404);

    // Docker 28's IPv6-only network: no IPv4 pool at all, enable_ipv4 false.
    let net6 = docker_id();
    let create6 = format!(
        "{{\"NetworkID\":\"{net6}\",\"Options\":{{\"com.docker.network.enable_ipv4\":false,\"com.docker.network.enable_ipv6\":true,\"com.docker.network.generic\":{{\"kuryr.pool.name\":\"v6only\"}}}},\"IPv4Data\":null,\"IPv6Data\":[{{\"AddressSpace\":\"no_address_space\",\"Pool\":\"fd00:188::/64\",\"Gateway\":\"fd00:188::1/64\",\"AuxAddresses\":null}}]}}\n"
    );
    ok(&d, "/NetworkDriver.CreateNetwork", &create6);
    c.networks.push(net6.clone());
}
