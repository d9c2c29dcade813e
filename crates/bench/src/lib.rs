//! Benchmarks and a conformance checker for Docker network/IPAM plugins. They speak Docker's
//! plugin protocol to any plugin (a unix socket or an `http://` URL), so kuryr-rs and
//! kuryr-libnetwork are measured the same way, and drive the real Docker Engine end to end.
pub mod client;
pub mod conformance;
pub mod docker;
pub mod protocol;
pub mod report;
pub mod scale;
pub mod stats;

pub use client::{PluginAddr, PluginClient};
pub use report::BenchReport;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("{call} failed: {error}")]
    Call { call: String, error: String },
    #[error("{0}")]
    Other(String),
}
