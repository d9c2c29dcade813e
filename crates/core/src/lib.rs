//! The boundary between the Docker driver and a control plane: the [`Backend`] trait that the
//! OVN and Neutron backends implement, the domain types it speaks, and kuryr's `-o` options.
mod backend;
pub mod journal;
pub mod options;
pub mod subnets;

pub use backend::{
    AddressRequest, Backend, BackendError, BoxError, Endpoint, EndpointSpec, ExposedPort,
    HostRoute, NetworkSpec, PoolGrant, PoolRequest, PoolUsage, SubnetSpec,
};
pub use options::KuryrOptions;
