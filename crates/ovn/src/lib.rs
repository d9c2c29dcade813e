//! The OVN control plane of kuryr: Docker networks, endpoints and IPAM pools kept in the OVN
//! Northbound database, shared by every kuryr on every host.
mod backend;
mod core_backend;
mod error;
pub mod ipam;
pub mod keys;
pub mod macvlan;
mod named;
pub mod nested;
pub mod reservations;
pub mod routing;

pub use backend::{
    Attach, Endpoint, EndpointSpec, Network, NetworkSpec, OvnBackend, OvnSettings, PoolGrant,
    PoolRequest, SubnetSpec, TABLES,
};
pub use error::{OvnError, Result};
pub use named::{LogicalNetwork, NamedEndpoint, NamedNetworkSpec, PortInfo};
pub use routing::{RouterChoice, RouterInfo};
