//! Errors of the host binding. Each names the endpoint and the object being changed, because
//! the text ends up in the `Err` that Docker prints to the user.
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("invalid {field} {value:?} for endpoint {endpoint:?}: {reason}")]
    Invalid {
        endpoint: String,
        field: &'static str,
        value: String,
        reason: String,
    },

    #[error("connect to the Open_vSwitch database at {remote}: {source}")]
    Connect {
        remote: String,
        #[source]
        source: Box<kuryr_ovsdb::Error>,
    },

    #[error(
        "integration bridge {bridge} not found in {remote}: run `kuryr host init` or create it"
    )]
    BridgeMissing { bridge: String, remote: String },

    #[error("{what} is not set in the Open_vSwitch database at {remote}: run `kuryr host init`")]
    HostNotConfigured { what: &'static str, remote: String },

    #[error("external_ids:{key}={value:?} in the Open_vSwitch database at {remote}: {reason}")]
    BadHostSetting {
        key: &'static str,
        value: String,
        remote: String,
        reason: String,
    },

    /// Setting up the host's own side (the management port, its address and routes).
    #[error("{action}: {source}")]
    Host {
        action: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The binding cannot work with the host as it is set up; the text says how to fix it.
    #[error("{0}")]
    Config(String),

    /// The management port has no address on the way to `via` (ovs-vswitchd re-created the
    /// device, or someone removed the address): setting the port up again repairs it.
    #[error("route {subnet} via {via}: the management port has no address on {via}'s network (was it re-created?)")]
    MgmtUnreachable { subnet: String, via: String },

    #[error("open a netlink socket: {0}")]
    NetlinkSocket(#[source] std::io::Error),

    #[error("list the host's interfaces over netlink: {0}")]
    NetlinkList(#[source] std::io::Error),

    #[error("{action} for endpoint {endpoint}: {source}")]
    Netlink {
        action: String,
        endpoint: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{action} for endpoint {endpoint} in {remote}: {source}")]
    Ovsdb {
        action: String,
        endpoint: String,
        remote: String,
        #[source]
        source: Box<kuryr_ovsdb::Error>,
    },

    /// Something else already uses the names this endpoint needs.
    #[error("plug endpoint {endpoint}: {detail}")]
    Conflict { endpoint: String, detail: String },

    #[error("endpoint {endpoint} is not plugged on this host: no OVS interface {ifname}")]
    NotPlugged { endpoint: String, ifname: String },

    #[error(
        "endpoint {endpoint} (logical port {iface_id:?}, interface {ifname}) is not ready after {seconds:.1} s: \
         ovn-controller has not set ovn-installed on it; {cause}"
    )]
    NotReady {
        endpoint: String,
        iface_id: String,
        ifname: String,
        seconds: f64,
        cause: String,
    },

    #[error("unplug endpoint {endpoint}: {}", Joined(errors))]
    Unplug {
        endpoint: String,
        errors: Vec<BindingError>,
    },

    /// A plug failed and deleting the veth it had created failed too.
    #[error("{error}; the veth {ifname} it created could not be deleted: {undo}")]
    PlugUndo {
        error: Box<BindingError>,
        ifname: String,
        #[source]
        undo: std::io::Error,
    },

    #[error("{action} for endpoint {endpoint}: the task failed: {message}")]
    Task {
        action: &'static str,
        endpoint: String,
        message: String,
    },
}

struct Joined<'a>(&'a [BindingError]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A netlink error as the `errno` it carries, so callers can match on `NotFound`-like kinds
/// and the message reads like `ip`'s ("File exists").
pub(crate) fn netlink_io(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}
