//! Docker's libnetwork remote network driver and IPAM driver protocol.
//!
//! [`wire`] holds the JSON Docker sends and expects, [`request`] the validated requests a driver
//! receives, and [`reply`] the typed answers it gives.

pub mod error;
pub mod reply;
pub mod request;
pub mod types;
pub mod wire;

pub use error::RequestError;
pub use types::{DockerId, MacAddr, Protocol};
