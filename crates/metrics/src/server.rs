//! The scrape endpoint: `GET /metrics` over plain HTTP on `[DEFAULT] metrics_address`.
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Brings the gauges read at scrape time (IPAM pools) up to date before a scrape is answered.
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How long a scrape waits for [`Refresh`]; a control plane that does not answer in time
/// leaves the previous values (and a warning), never a hanging scrape.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the endpoint; a clear error when the address is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    if !addr.ip().is_loopback() {
        tracing::info!(%addr, "metrics are served without authentication on a non-loopback address");
    }
    TcpListener::bind(addr).await.map_err(|e| {
        format!("serve metrics on {addr} ([DEFAULT] metrics_address): {e}; choose a free address or port")
    })
}

/// Answers scrapes on `listener` until `shutdown` completes, with the plugin API's bounds
/// ([`kuryr_http::Limits::DEFAULT`]).
pub async fn serve(
    listener: TcpListener,
    refresh: Refresh,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, refresh, kuryr_http::Limits::DEFAULT, shutdown).await
}

/// [`serve`] with other bounds.
pub async fn serve_with(
    listener: TcpListener,
    refresh: Refresh,
    limits: kuryr_http::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let refresh = refresh.clone();
                async move {
                    if tokio::time::timeout(REFRESH_TIMEOUT, refresh()).await.is_err() {
                        tracing::warn!("the control plane did not answer for the IPAM gauges within 5 s: serving their previous values");
                    }
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, crate::CONTENT_TYPE)],
                        crate::encode(),
                    )
                }
            }),
        )
        .route(
            "/",
            get(|| async { "kuryr: metrics are at /metrics\n".into_response() }),
        );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    // A scraper (or anyone who can reach the address) that opens connections and sends
    // nothing, or a byte at a time, cannot stop the scrapes.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stop_tx);
    });
    kuryr_http::serve(listener, app, limits, "metrics", stop_rx).await;
    Ok(())
}
