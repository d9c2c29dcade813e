//! The driver undoes what a Docker call did when a later step fails: with a host binding that
//! refuses to plug, CreateEndpoint leaves no logical port behind in a real Northbound.
use kuryr_binding::{Binding, BindingError, PlugRequest, Plugged, PluggedPort};
use kuryr_daemon::config::Config;
use kuryr_daemon::driver::Driver;
use kuryr_docker::request::{
    AddressKind, CreateEndpoint, CreateNetwork, EndpointOptions, IpamPool, NetworkOptions,
    RequestAddress, RequestPool,
};
use kuryr_docker::{IpamDriver, NetworkDriver};
use kuryr_ovn::{OvnBackend, OvnSettings, TABLES};
use kuryr_ovsdb::{parse_remotes, Client};
use kuryr_testlab::{require_tools, Server, NB_SCHEMA};
use std::collections::BTreeMap;
use std::time::Duration;

/// A binding whose plug always fails, as when the integration bridge vanished.
struct BrokenBinding;

impl Binding for BrokenBinding {
    async fn plug(&self, req: &PlugRequest) -> Result<Plugged, BindingError> {
        Err(BindingError::Invalid {
            endpoint: req.endpoint_id.clone(),
            field: "bridge",
            value: "br-int".into(),
            reason: "gone".into(),
        })
    }
    async fn wait_ready(&self, _: &str, _: Duration) -> Result<(), BindingError> {
        Ok(())
    }
    async fn unplug(&self, _: &str) -> Result<(), BindingError> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<PluggedPort>, BindingError> {
        Ok(Vec::new())
    }
}

fn id(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
async fn a_failed_plug_removes_the_logical_port_it_created() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path(), "nb", NB_SCHEMA);
    let nb = Client::connect(kuryr_ovsdb::Config::new(
        parse_remotes(&server.unix_remote()).unwrap(),
        "OVN_Northbound",
        TABLES,
    ))
    .await
    .unwrap();
    let driver = Driver::new(
        OvnBackend::new(nb.clone(), OvnSettings::new("host-a")),
        BrokenBinding,
        &Config::default(),
        1442,
    );

    let pool = driver
        .request_pool(RequestPool {
            address_space: String::new(),
            pool: Some("10.1.0.0/24".parse().unwrap()),
            sub_pool: None,
            prefix_len: None,
            v6: false,
            options: BTreeMap::new(),
        })
        .await
        .unwrap();
    let network_id = id('a');
    driver
        .create_network(CreateNetwork {
            network_id: network_id.parse().unwrap(),
            ipv4: vec![IpamPool {
                address_space: String::new(),
                pool: pool.pool,
                gateway: None,
                aux_addresses: BTreeMap::new(),
            }],
            ipv6: vec![],
            options: NetworkOptions::default(),
        })
        .await
        .unwrap();
    let address = driver
        .request_address(RequestAddress {
            pool_id: pool.pool_id.clone(),
            address: None,
            kind: AddressKind::Endpoint,
            mac_address: None,
            serial: false,
            options: BTreeMap::new(),
        })
        .await
        .unwrap();
    let err = driver
        .create_endpoint(CreateEndpoint {
            network_id: network_id.parse().unwrap(),
            endpoint_id: id('e').parse().unwrap(),
            address: Some(address.address),
            address_ipv6: None,
            mac_address: None,
            options: EndpointOptions::default(),
        })
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("plug endpoint eeeeeeeeeeee"), "{msg}");
    assert!(
        nb.replica().table("Logical_Switch_Port").is_empty(),
        "the logical port was left behind"
    );
    let ls = nb
        .replica()
        .table("Logical_Switch")
        .rows()
        .next()
        .cloned()
        .unwrap();
    assert!(ls.uuids("ports").is_empty());
}
