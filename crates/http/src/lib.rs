//! Accepting HTTP connections with bounds, so that a broken or hostile client cannot stop
//! the others from being served (Docker's plugin calls, metrics scrapes).
//!
//! - At most [`Limits::max_connections`] connections are open at once; one more is closed as
//!   soon as it is accepted (logged), so the backlog never fills with them.
//! - A request's head must arrive within [`Limits::read_timeout`] of the connection becoming
//!   ready for one (after accept, or after the previous reply on a kept-alive connection):
//!   connections that send nothing, or a byte a second, are closed.
//! - A handler that reads a body bounds its time and size itself (the plugin API's does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

/// Bounds on a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once (Docker opens one per plugin call under way).
    pub max_connections: usize,
    /// Time for a request's head, and again for its body, to arrive.
    pub read_timeout: Duration,
}

impl Limits {
    /// The defaults: 1024 connections, 10 seconds.
    pub const DEFAULT: Limits = Limits {
        max_connections: 1024,
        read_timeout: Duration::from_secs(10),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Serves `app` on `listener` until `stop`'s sender is dropped, then lets the calls under way
/// finish (idle kept-alive connections are closed at once).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: Limits,
    name: &str,
    mut stop: watch::Receiver<()>,
) where
    L: Listener,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refused = AtomicU64::new(0);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    loop {
        let io = tokio::select! {
            (io, _) = listener.accept() => io,
            _ = stop.changed() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Logged once per 100 so that a flood does not become a flood of log lines too.
            let n = refused.fetch_add(1, Ordering::Relaxed);
            if n % 100 == 0 {
                warn!(
                    listener = name,
                    max_connections = limits.max_connections,
                    refused = n + 1,
                    "too many connections open; closing new ones until some end"
                );
            }
            drop(io);
            continue;
        };
        let conn =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Timeouts, resets and malformed requests end here; the peer sees the close.
                debug!(listener = %name, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
