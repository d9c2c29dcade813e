//! Docker's requests through the plugin API's router: the path, the body's decoding and every
//! request's validation, up to a driver that accepts whatever reaches it.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kuryr_docker::wire::Call;
use kuryr_docker::*;
use tower::ServiceExt;

/// Accepts every validated request, answering with what the request carried.
struct AcceptAll;

fn ok<T: Send>(v: T) -> impl Future<Output = Result<T, PluginError>> + Send {
    std::future::ready(Ok(v))
}

impl NetworkDriver for AcceptAll {
    fn network_capabilities(&self) -> NetworkCapabilities {
        NetworkCapabilities {
            scope: Scope::Local,
            connectivity_scope: Some(Scope::Global),
        }
    }
    fn create_network(
        &self,
        _: CreateNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
    fn delete_network(
        &self,
        _: DeleteNetwork,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
    fn create_endpoint(
        &self,
        req: CreateEndpoint,
    ) -> impl Future<Output = Result<CreateEndpointReply, PluginError>> + Send {
        ok(CreateEndpointReply {
            address: req.address,
            address_ipv6: req.address_ipv6,
            mac_address: Some(
                req.requested_mac()
                    .unwrap_or(MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1])),
            ),
        })
    }
    fn endpoint_oper_info(
        &self,
        _: EndpointOperInfo,
    ) -> impl Future<Output = Result<EndpointOperInfoReply, PluginError>> + Send {
        ok(EndpointOperInfoReply::default())
    }
    fn delete_endpoint(
        &self,
        _: DeleteEndpoint,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
    fn join(&self, _: Join) -> impl Future<Output = Result<JoinReply, PluginError>> + Send {
        ok(JoinReply {
            interface_name: Some(InterfaceName {
                src_name: "tfuzz0".to_owned(),
                dst_prefix: "eth".to_owned(),
                dst_name: None,
            }),
            ..Default::default()
        })
    }
    fn leave(&self, _: Leave) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
    fn program_external_connectivity(
        &self,
        _: ProgramExternalConnectivity,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
    fn revoke_external_connectivity(
        &self,
        _: RevokeExternalConnectivity,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
}

impl IpamDriver for AcceptAll {
    fn ipam_capabilities(&self) -> IpamCapabilities {
        IpamCapabilities {
            requires_mac_address: true,
            requires_request_replay: false,
        }
    }
    fn default_address_spaces(&self) -> AddressSpaces {
        AddressSpaces {
            local: "local_scope".to_owned(),
            global: "global_scope".to_owned(),
        }
    }
    fn request_pool(
        &self,
        req: RequestPool,
    ) -> impl Future<Output = Result<RequestPoolReply, PluginError>> + Send {
        let pool = req.pool.unwrap_or(ipnet::IpNet::V4(
            ipnet::Ipv4Net::new([10, 99, 0, 0].into(), 24).unwrap_or_default(),
        ));
        ok(RequestPoolReply::new(format!("kuryrPool-{pool}"), pool))
    }
    fn release_pool(&self, _: ReleasePool) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
    fn request_address(
        &self,
        req: RequestAddress,
    ) -> impl Future<Output = Result<RequestAddressReply, PluginError>> + Send {
        let addr = req.address.unwrap_or([10, 99, 0, 2].into());
        let len = if addr.is_ipv4() { 24 } else { 64 };
        ok(RequestAddressReply::new(
            ipnet::IpNet::new(addr, len).unwrap_or_default(),
        ))
    }
    fn release_address(
        &self,
        _: ReleaseAddress,
    ) -> impl Future<Output = Result<(), PluginError>> + Send {
        ok(())
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
}

/// The first byte picks the call (one value past the last is a path Docker never sends), the
/// rest is the body. The reply must be JSON: `{}`-like on success, `{"Err": "..."}` with a
/// non-empty message otherwise.
pub fn docker_call(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let calls: Vec<Call> = Call::all().collect();
    let path = match calls.get(usize::from(pick) % (calls.len() + 1)) {
        Some(call) => format!("/{}", call.name()),
        None => format!("/{}", String::from_utf8_lossy(&body[..body.len().min(16)])),
    };
    let Ok(uri) = path.parse::<axum::http::Uri>() else {
        return;
    };
    let request = Request::post(uri)
        .body(Body::from(body.to_vec()))
        .expect("a POST with a valid URI builds");
    let app = router(Arc::new(AcceptAll));
    let (status, reply) = RUNTIME.with(|rt| {
        rt.block_on(async move {
            let response = app
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            (status, bytes)
        })
    });
    let reply: serde_json::Value = match serde_json::from_slice(&reply) {
        Ok(v) => v,
        Err(e) => panic!("{path}: reply is not JSON ({e}): {reply:?}"),
    };
    if status != StatusCode::OK {
        let err = reply["Err"].as_str().unwrap_or_default();
        assert!(
            !err.is_empty(),
            "{path}: {status} without an Err message: {reply}"
        );
    }
}
