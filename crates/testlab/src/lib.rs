//! What the tests of every crate share: real `ovsdb-server` processes in temporary directories.
mod ovsdb_server;

pub use ovsdb_server::*;
