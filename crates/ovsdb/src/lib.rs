//! An OVSDB (RFC 7047) client for the OVN Northbound and Open_vSwitch databases: typed
//! transactions, a monitored in-memory replica, and Raft-cluster leader following.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kuryr_ovsdb::Error> {
//! use kuryr_ovsdb::{Client, Config, Txn, parse_remotes};
//! use serde_json::json;
//! let config = Config::new(parse_remotes("unix:/var/run/ovn/ovnnb_db.sock")?, "OVN_Northbound", &["Logical_Switch"]);
//! let nb = Client::connect(config).await?;
//! let mut txn = Txn::new("OVN_Northbound");
//! txn.insert("Logical_Switch", json!({"name": "net1"}), None);
//! nb.transact(&txn).await?;
//! assert!(nb.replica().table("Logical_Switch").one_by_name("net1").is_some());
//! # Ok(()) }
//! ```
mod client;
mod codec;
pub mod datum;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod remote;
mod replica;
mod schema;
pub mod txn;

pub use client::{Client, Config, ConnState};
pub use datum::Row;
pub use error::{Error, Result};
pub use remote::{parse_remotes, Remote, TlsFiles};
pub use replica::{Replica, Table};
pub use schema::{ColumnKind, Schema};
pub use txn::{Txn, TxnReply};
