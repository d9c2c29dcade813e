//! What each fuzz target in `fuzz/` runs on its input, in one place, so that the targets (built
//! by cargo-fuzz) and the replay of their corpora in `cargo test` (stable Rust, no fuzzer) run
//! the same code. Every function takes arbitrary bytes and must not panic; where something must
//! hold whatever the input, it asserts it.

mod docker;

pub use docker::docker_call;

/// OVSDB's JSON-RPC framing: the same messages whatever the split (first byte picks it).
pub fn ovsdb_framing(data: &[u8]) {
    kuryr_ovsdb::fuzzing::framing(data);
}

/// OVSDB update notifications into the replica, then every index read back.
pub fn ovsdb_update(data: &[u8]) {
    kuryr_ovsdb::fuzzing::update(data);
}

/// `kuryr.conf` text through the whole parse and validation.
pub fn kuryr_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = kuryr_daemon::config::Config::parse(&text, "fuzz.conf") {
        // Every refusal says where.
        let message = e.to_string();
        assert!(!message.is_empty());
    }
}

/// A Neutron or Keystone answer through everything kuryr reads out of one.
pub fn neutron_reply(data: &[u8]) {
    kuryr_neutron::fuzzing::reply(data);
}

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call them.
pub const TARGETS: [(&str, Target); 5] = [
    ("docker_call", docker_call),
    ("ovsdb_framing", ovsdb_framing),
    ("ovsdb_update", ovsdb_update),
    ("kuryr_conf", kuryr_conf),
    ("neutron_reply", neutron_reply),
];
