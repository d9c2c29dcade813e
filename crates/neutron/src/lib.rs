//! The Neutron control plane: a Neutron v2 REST client with Keystone v3 authentication
//! ([`NeutronClient`]), and [`NeutronBackend`], kuryr's [`kuryr_core::Backend`] over Neutron with
//! kuryr-libnetwork's names and tags, so that both share state.
mod auth;
mod backend;
mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod macvlan;
pub mod names;
mod pool;
mod trunk;
pub mod types;
mod usage;

pub use auth::{AuthSettings, Credentials};
pub use backend::{NeutronBackend, NeutronSettings, CREATE_SETTLE};
pub use client::{HttpSettings, NeutronClient};
pub use error::NeutronError;
pub use macvlan::VmPort;
pub use pool::PoolSettings;
pub use trunk::Trunk;
