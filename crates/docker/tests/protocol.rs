//! The plugin protocol end to end over a unix socket, with Docker's exact requests.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{docker_request, post, send, Failure, FakeDriver, Harness, Seen, EID, NID};
use kuryr_docker::{AddressKind, MacAddr, PluginServer, Protocol, ServerConfig, ServerError};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

#[tokio::test]
async fn activate_announces_both_apis() {
    let h = Harness::start().await;
    let r = h.post("/Plugin.Activate", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"Implements": ["NetworkDriver", "IpamDriver"]})
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.plugins.v1.2+json")
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_empty_body_on_a_call_with_arguments_says_why_it_happens() {
    // Docker's plugin client retries a call after a lost connection with the body already
    // consumed: the retry arrives empty. The error says so instead of "NetworkID \"\"".
    let h = Harness::start().await;
    for path in [
        "/NetworkDriver.CreateEndpoint",
        "/NetworkDriver.EndpointOperInfo",
        "/IpamDriver.RequestAddress",
    ] {
        let r = h.post(path, "").await;
        assert_eq!(r.status, 500, "{path}");
        let method = path.rsplit('.').next().unwrap_or_default();
        assert!(
            r.err()
                .starts_with(&format!("{method}: empty request body;")),
            "{path}: {}",
            r.err()
        );
    }
    assert!(h.driver.seen().is_empty());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn argument_less_calls_accept_empty_bodies() {
    let h = Harness::start().await;
    let cases = [
        (
            "/NetworkDriver.GetCapabilities",
            json!({"Scope": "local", "ConnectivityScope": "global"}),
        ),
        (
            "/IpamDriver.GetCapabilities",
            json!({"RequiresMACAddress": true, "RequiresRequestReplay": false}),
        ),
        (
            "/IpamDriver.GetDefaultAddressSpaces",
            json!({"LocalDefaultAddressSpace": "local_scope", "GlobalDefaultAddressSpace": "global_scope"}),
        ),
    ];
    for (path, want) in cases {
        let r = h.post(path, "").await;
        assert_eq!((r.status, &r.body), (200, &want), "{path}");
        // Some clients send no Content-Length at all for an empty POST.
        let mut stream = UnixStream::connect(&h.socket).await.unwrap();
        let raw = format!("POST {path} HTTP/1.1\r\nHost: \r\n\r\n");
        let r = send(&mut stream, raw.as_bytes()).await;
        assert_eq!(
            (r.status, &r.body),
            (200, &want),
            "{path} without Content-Length"
        );
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn docker_network_and_container_lifecycle() {
    let h = Harness::start().await;
    let mut conn = UnixStream::connect(&h.socket).await.unwrap();
    // (path, Docker's body, expected reply): one keep-alive connection, as Docker's client uses.
    let steps: Vec<(&str, Value, Value)> = vec![
        (
            "/Plugin.Activate",
            Value::Null,
            json!({"Implements": ["NetworkDriver", "IpamDriver"]}),
        ),
        (
            "/IpamDriver.RequestPool",
            json!({"AddressSpace": "local_scope", "Pool": "10.1.0.0/24", "SubPool": "", "Options": null, "V6": false}),
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Pool": "10.1.0.0/24", "Data": {}}),
        ),
        (
            "/IpamDriver.RequestAddress",
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Address": "10.1.0.1", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
            json!({"Address": "10.1.0.1/24", "Data": {}}),
        ),
        (
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": NID, "Options": {"com.docker.network.enable_ipv6": false,
                   "com.docker.network.generic": {"kuryr.net.name": "blue"}},
                   "IPv4Data": [{"AddressSpace": "local_scope", "Gateway": "10.1.0.1/24", "Pool": "10.1.0.0/24"}],
                   "IPv6Data": []}),
            json!({}),
        ),
        (
            "/IpamDriver.RequestAddress",
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Address": "", "Options": {"com.docker.network.endpoint.macaddress": "02:42:0a:01:00:02"}}),
            json!({"Address": "10.1.0.2/24", "Data": {}}),
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": NID, "EndpointID": EID,
                   "Interface": {"Address": "10.1.0.2/24", "AddressIPv6": "", "MacAddress": ""},
                   "Options": {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
                               "com.docker.network.endpoint.macaddress": "AkIKAQAC",
                               "com.docker.network.portmap": []}}),
            // The fake echoes the address Docker chose; only the MAC may reach Docker.
            json!({"Interface": {"MacAddress": "02:42:0a:01:00:02"}}),
        ),
        (
            "/NetworkDriver.Join",
            json!({"NetworkID": NID, "EndpointID": EID, "SandboxKey": "/var/run/docker/netns/5c1e0a9b", "Options": {}}),
            json!({"InterfaceName": {"SrcName": "t_c9e8f7a6b5c4", "DstPrefix": "eth"}, "Gateway": "10.1.0.1"}),
        ),
        (
            "/NetworkDriver.ProgramExternalConnectivity",
            json!({"NetworkID": NID, "EndpointID": EID, "Options": {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]}}),
            json!({}),
        ),
        (
            "/NetworkDriver.EndpointOperInfo",
            json!({"NetworkID": NID, "EndpointID": EID}),
            json!({"Value": {"port": "lsp-1"}}),
        ),
        (
            "/NetworkDriver.RevokeExternalConnectivity",
            json!({"NetworkID": NID, "EndpointID": EID}),
            json!({}),
        ),
        (
            "/NetworkDriver.Leave",
            json!({"NetworkID": NID, "EndpointID": EID}),
            json!({}),
        ),
        (
            "/NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": NID, "EndpointID": EID}),
            json!({}),
        ),
        (
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Address": "10.1.0.2"}),
            json!({}),
        ),
        (
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": "kuryrPool-10.1.0.0/24", "Address": "10.1.0.1"}),
            json!({}),
        ),
        (
            "/IpamDriver.ReleasePool",
            json!({"PoolID": "kuryrPool-10.1.0.0/24"}),
            json!({}),
        ),
        (
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": NID}),
            json!({}),
        ),
    ];
    for (path, body, want) in &steps {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let r = send(&mut conn, &docker_request(path, &body)).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(&r.body, want, "{path}");
    }

    let seen = h.driver.seen();
    let names: Vec<&str> = seen
        .iter()
        .map(|s| match s {
            Seen::CreateNetwork(_) => "CreateNetwork",
            Seen::DeleteNetwork(_) => "DeleteNetwork",
            Seen::CreateEndpoint(_) => "CreateEndpoint",
            Seen::EndpointOperInfo(_) => "EndpointOperInfo",
            Seen::DeleteEndpoint(_) => "DeleteEndpoint",
            Seen::Join(_) => "Join",
            Seen::Leave(_) => "Leave",
            Seen::Program(_) => "Program",
            Seen::Revoke(_) => "Revoke",
            Seen::RequestPool(_) => "RequestPool",
            Seen::ReleasePool(_) => "ReleasePool",
            Seen::RequestAddress(_) => "RequestAddress",
            Seen::ReleaseAddress(_) => "ReleaseAddress",
        })
        .collect();
    assert_eq!(
        names,
        [
            "RequestPool",
            "RequestAddress",
            "CreateNetwork",
            "RequestAddress",
            "CreateEndpoint",
            "Join",
            "Program",
            "EndpointOperInfo",
            "Revoke",
            "Leave",
            "DeleteEndpoint",
            "ReleaseAddress",
            "ReleaseAddress",
            "ReleasePool",
            "DeleteNetwork"
        ]
    );

    // What the driver received is the validated form of Docker's JSON.
    let Seen::RequestAddress(gw) = &seen[1] else {
        panic!("{:?}", seen[1])
    };
    assert_eq!(gw.kind, AddressKind::Gateway);
    assert_eq!(gw.address, Some("10.1.0.1".parse().unwrap()));
    let Seen::CreateNetwork(net) = &seen[2] else {
        panic!("{:?}", seen[2])
    };
    assert_eq!(net.network_id.as_str(), NID);
    assert_eq!(net.ipv4[0].gateway, Some("10.1.0.1/24".parse().unwrap()));
    assert_eq!(net.options.generic["kuryr.net.name"], "blue");
    let Seen::RequestAddress(ep_addr) = &seen[3] else {
        panic!("{:?}", seen[3])
    };
    assert_eq!(ep_addr.kind, AddressKind::Endpoint);
    assert_eq!(
        ep_addr.mac_address,
        Some("02:42:0a:01:00:02".parse().unwrap())
    );
    let Seen::CreateEndpoint(ep) = &seen[4] else {
        panic!("{:?}", seen[4])
    };
    assert_eq!(ep.endpoint_id.as_str(), EID);
    assert_eq!(
        ep.options.mac_address,
        Some(MacAddr([2, 0x42, 10, 1, 0, 2]))
    );
    assert_eq!(ep.options.exposed_ports[0].proto, Protocol::Tcp);
    let Seen::Join(join) = &seen[5] else {
        panic!("{:?}", seen[5])
    };
    assert_eq!(
        join.sandbox_key,
        PathBuf::from("/var/run/docker/netns/5c1e0a9b")
    );

    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn swarm_calls_use_the_default_no_ops_unless_overridden() {
    let h = Harness::start().await;
    let cases = [
        (
            "/NetworkDriver.DiscoverNew",
            json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.10", "self": true}}),
            json!({}),
        ),
        (
            "/NetworkDriver.DiscoverDelete",
            json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.10", "self": false}}),
            json!({}),
        ),
        (
            "/NetworkDriver.AllocateNetwork",
            json!({"NetworkID": NID, "Options": {"kuryr.net.name": "blue"},
                   "IPv4Data": [{"AddressSpace": "global_scope", "Pool": "10.2.0.0/16"}], "IPv6Data": null}),
            json!({"Options": {"kuryr.net.name": "blue", "kuryr.net.uuid": "ls-1"}}),
        ),
        (
            "/NetworkDriver.FreeNetwork",
            json!({"NetworkID": NID}),
            json!({}),
        ),
    ];
    for (path, body, want) in cases {
        let r = h.post(path, &body.to_string()).await;
        assert_eq!((r.status, &r.body), (200, &want), "{path}");
    }
    assert!(h.driver.seen().is_empty(), "{:?}", h.driver.seen());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_json_is_a_500_naming_the_problem() {
    let h = Harness::start().await;
    let cases = [
        (
            "/NetworkDriver.CreateNetwork",
            "{\"NetworkID\": ",
            "CreateNetwork: malformed JSON body: EOF while parsing",
        ),
        (
            "/NetworkDriver.Join",
            "[1, 2]",
            "Join: malformed JSON body: the body is not a JSON object",
        ),
        (
            "/IpamDriver.RequestPool",
            "{\"Pool\": \"10.1.0.0/24\"}}",
            "RequestPool: malformed JSON body: trailing characters",
        ),
    ];
    for (path, body, want) in cases {
        let r = h.post(path, body).await;
        assert_eq!(r.status, 500, "{path}");
        assert!(r.err().starts_with(want), "{path}: {}", r.err());
    }
    assert!(h.driver.seen().is_empty());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_types_and_invalid_values_are_500s_naming_the_field() {
    let h = Harness::start().await;
    let cases = [
        (
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": NID, "IPv4Data": [{"Pool": ["10.1.0.0/24"]}]}),
            "CreateNetwork: IPv4Data[0].Pool: invalid type: sequence, expected a string",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": "my-network"}),
            r#"CreateNetwork: NetworkID "my-network": not a Docker id (64 lowercase hex digits, or 25 lowercase letters and digits for a Swarm network)"#,
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": NID, "EndpointID": EID, "Interface": {"Address": "10.1.0.2"}}),
            r#"CreateEndpoint: Interface.Address "10.1.0.2": not an address in CIDR form"#,
        ),
        (
            "/NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": NID, "EndpointID": 42}),
            "DeleteEndpoint: EndpointID: invalid type: integer `42`, expected a string",
        ),
        (
            "/IpamDriver.RequestAddress",
            json!({"PoolID": "p", "Address": "10.1.0.300"}),
            r#"RequestAddress: Address "10.1.0.300": not an IP address"#,
        ),
        (
            "/IpamDriver.RequestPool",
            json!({"Pool": "10.1.0.0/24", "V6": "yes"}),
            r#"RequestPool: V6: invalid type: string "yes", expected a boolean"#,
        ),
    ];
    for (path, body, want) in cases {
        let r = h.post(path, &body.to_string()).await;
        assert_eq!(r.status, 500, "{path}");
        assert!(r.err().starts_with(want), "{path}: {}", r.err());
    }
    assert!(
        h.driver.seen().is_empty(),
        "invalid requests must not reach the driver"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_methods_are_404_with_an_err_body() {
    let h = Harness::start().await;
    for path in [
        "/NetworkDriver.GwAllocCheck",
        "/VolumeDriver.Create",
        "/",
        "/networkdriver.join",
    ] {
        let r = h.post(path, "{}").await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.err().contains("unknown plugin call"),
            "{path}: {}",
            r.err()
        );
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_http_methods_are_refused_with_a_json_body() {
    let h = Harness::start().await;
    let mut stream = UnixStream::connect(&h.socket).await.unwrap();
    let r = send(
        &mut stream,
        b"GET /Plugin.Activate HTTP/1.1\r\nHost: \r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    assert!(r.err().contains("plugin calls are POST"), "{}", r.err());
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn driver_errors_reach_docker_as_500_with_the_drivers_message() {
    let h = Harness::start().await;
    h.driver.fail(
        "RequestAddress",
        Failure::Message("address 10.1.0.5 in pool kuryrPool-10.1.0.0/24 is in use"),
    );
    h.driver.fail(
        "CreateNetwork",
        Failure::Backend(
            "create logical switch for network 3f2a6b1c0d9e",
            "connect to OVN northbound tcp:192.0.2.5:6641: connection refused",
        ),
    );
    let r = h
        .post(
            "/IpamDriver.RequestAddress",
            &json!({"PoolID": "kuryrPool-10.1.0.0/24", "Address": "10.1.0.5", "Options": {}})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        json!({"Err": "address 10.1.0.5 in pool kuryrPool-10.1.0.0/24 is in use"})
    );

    let r = h
        .post(
            "/NetworkDriver.CreateNetwork",
            &json!({"NetworkID": NID, "IPv4Data": [{"AddressSpace": "", "Pool": "10.1.0.0/24"}]})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.err(),
        "create logical switch for network 3f2a6b1c0d9e: connect to OVN northbound tcp:192.0.2.5:6641: connection refused"
    );
    assert_eq!(h.driver.seen().len(), 2, "both calls reached the driver");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn not_implemented_external_connectivity_is_a_404() {
    let h = Harness::start().await;
    h.driver
        .fail("ProgramExternalConnectivity", Failure::NotImplemented);
    let r = h
        .post(
            "/NetworkDriver.ProgramExternalConnectivity",
            &json!({"NetworkID": NID, "EndpointID": EID, "Options": null}).to_string(),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.err(),
        "NetworkDriver.ProgramExternalConnectivity is not implemented by this plugin"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn socket_is_mode_0600_and_removed_on_shutdown() {
    let h = Harness::start().await;
    let mode = std::fs::metadata(&h.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let parent = h.socket.parent().unwrap().to_owned();
    // Nothing but the socket is left in the directory (the private bind directory is gone).
    let entries: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["kuryr.sock"]);
    let socket = h.socket.clone();
    h.shutdown().await.unwrap();
    assert!(!socket.exists(), "socket file removed after shutdown");
}

#[tokio::test]
async fn a_live_socket_is_not_taken_over() {
    let h = Harness::start().await;
    let err = PluginServer::bind(&ServerConfig::unix(&h.socket))
        .await
        .expect_err("a second server on a live socket must be refused");
    assert!(matches!(err, ServerError::InUse { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is served by another process"),
        "{err}"
    );
    // The first server still answers.
    let r = h.post("/Plugin.Activate", "").await;
    assert_eq!(r.status, 200);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kuryr.sock");
    // A socket file nobody listens on, as a crashed daemon leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let server = PluginServer::bind(&ServerConfig::unix(&socket))
        .await
        .expect("a stale socket is replaced");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(Arc::new(FakeDriver::default()), async move {
        let _ = stopped.await;
    }));
    let r = post(&socket, "/Plugin.Activate", "").await;
    assert_eq!(r.status, 200);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kuryr.sock");
    std::fs::write(&path, "keep me").unwrap();
    let err = PluginServer::bind(&ServerConfig::unix(&path))
        .await
        .expect_err("a regular file is not replaced");
    assert!(matches!(err, ServerError::NotASocket { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[tokio::test]
async fn tcp_listener_serves_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kuryr.sock");
    let config = ServerConfig::unix(&socket).with_tcp("127.0.0.1:0".parse().unwrap());
    let server = PluginServer::bind(&config).await.unwrap();
    let addr = server.tcp_addr().expect("TCP address bound");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(Arc::new(FakeDriver::default()), async move {
        let _ = stopped.await;
    }));

    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&docker_request("/NetworkDriver.GetCapabilities", ""))
        .await
        .unwrap();
    let mut reader = BufReader::new(tcp);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("both listeners stop")
        .unwrap()
        .unwrap();
}
