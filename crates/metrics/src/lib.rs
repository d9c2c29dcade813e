//! kuryr's Prometheus metrics.
//!
//! Every part of kuryr records into one process-wide set of families through the functions
//! here (a handful of atomic operations each, whether or not anything scrapes them); the
//! daemon serves them with [`server::serve`] when `[DEFAULT] metrics_address` is set, and
//! `kuryr doctor` reads them back with [`scrape`]. Label values come from a fixed set (call
//! names, database names, HTTP codes, pool CIDRs), never from request bodies, so a hostile
//! client cannot grow the registry.
pub mod scrape;
pub mod server;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::Duration;

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets: 0.5 ms doubling to 16 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Latency = Family<Vec<(&'static str, String)>, Histogram, fn() -> Histogram>;
type Count = Family<Vec<(&'static str, String)>, Counter>;
type Level = Family<Vec<(&'static str, String)>, Gauge<f64, AtomicU64>>;

/// Labels of a pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    cidr: String,
}

struct Metrics {
    docker: Latency,
    docker_errors: Count,
    port_wait: Latency,
    ovsdb_txn: Latency,
    ovsdb_connected: Level,
    ovsdb_reconnects: Count,
    ovsdb_leader_changes: Count,
    neutron: Latency,
    keystone: Latency,
    ipam_in_use: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    ipam_free: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    reconcile_runs: Count,
    reconcile_endpoints: Count,
    port_pool: Count,
    port_pool_free: Gauge<f64, AtomicU64>,
    build_info: Level,
    registry: Registry,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        docker: Family::new_with_constructor(latency),
        docker_errors: Count::default(),
        port_wait: Family::new_with_constructor(latency),
        ovsdb_txn: Family::new_with_constructor(latency),
        ovsdb_connected: Level::default(),
        ovsdb_reconnects: Count::default(),
        ovsdb_leader_changes: Count::default(),
        neutron: Family::new_with_constructor(latency),
        keystone: Family::new_with_constructor(latency),
        ipam_in_use: Family::default(),
        ipam_free: Family::default(),
        reconcile_runs: Count::default(),
        reconcile_endpoints: Count::default(),
        port_pool: Count::default(),
        port_pool_free: Gauge::default(),
        build_info: Level::default(),
        registry: Registry::default(),
    };
    let mut r = Registry::with_prefix("kuryr");
    r.register(
        "docker_request_duration_seconds",
        "Docker plugin calls by method and result (ok or error)",
        m.docker.clone(),
    );
    r.register(
        "docker_request_errors",
        "Docker plugin calls that failed, by method and kind: refused (the request was wrong or not allowed, 4xx) or failed (kuryr or its control plane could not do it, 5xx)",
        m.docker_errors.clone(),
    );
    r.register(
        "port_wait_duration_seconds",
        "Join's wait for the control plane to report the endpoint's port up, by result (up, timeout, error)",
        m.port_wait.clone(),
    );
    r.register(
        "ovsdb_transaction_duration_seconds",
        "OVSDB transactions by database and result (ok or error)",
        m.ovsdb_txn.clone(),
    );
    r.register(
        "ovsdb_connected",
        "1 while the OVSDB client is connected (to the leader of a clustered database) and synchronized",
        m.ovsdb_connected.clone(),
    );
    r.register(
        "ovsdb_reconnects",
        "OVSDB connections made again after the first",
        m.ovsdb_reconnects.clone(),
    );
    r.register(
        "ovsdb_leader_changes",
        "Connections of a clustered database that went to another member than the previous one (a new Raft leader)",
        m.ovsdb_leader_changes.clone(),
    );
    r.register(
        "neutron_request_duration_seconds",
        "Neutron API requests by HTTP method, resource and status code (error: no answer)",
        m.neutron.clone(),
    );
    r.register(
        "keystone_request_duration_seconds",
        "Keystone token requests by status code (error: no answer)",
        m.keystone.clone(),
    );
    r.register(
        "ipam_addresses_in_use",
        "Addresses taken in each IPAM pool (endpoints and the gateway), read from the control plane at scrape time",
        m.ipam_in_use.clone(),
    );
    r.register(
        "ipam_addresses_free",
        "Addresses left in each IPAM pool, read from the control plane at scrape time",
        m.ipam_free.clone(),
    );
    r.register(
        "reconcile_runs",
        "Start-up reconciliations by result (ok or error)",
        m.reconcile_runs.clone(),
    );
    r.register(
        "reconcile_endpoints",
        "Endpoints reconciliation acted on, by outcome (removed, missing_host_side, kept_kuryr_libnetwork)",
        m.reconcile_endpoints.clone(),
    );
    r.register(
        "port_pool_requests",
        "Addresses asked of the port pools ([vif_pool]), by result: hit (a ready port) or miss (a port made for the request)",
        m.port_pool.clone(),
    );
    r.register(
        "port_pool_free",
        "Ready ports in this host's port pools",
        m.port_pool_free.clone(),
    );
    r.register(
        "build_info",
        "1, labelled with the version, commit, target and compiler of this build and the daemon's mode",
        m.build_info.clone(),
    );
    Metrics { registry: r, ..m }
});

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// How a Docker call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The request was wrong or not allowed (Docker got a 4xx).
    Refused,
    /// kuryr or its control plane could not do it (Docker got a 5xx).
    Failed,
}

/// One Docker plugin call; `method` is the call's name (`CreateEndpoint`) or `unknown`.
pub fn docker_call(method: &str, outcome: Outcome, elapsed: Duration) {
    let m = &*METRICS;
    let result = if outcome == Outcome::Ok {
        "ok"
    } else {
        "error"
    };
    m.docker
        .get_or_create(&vec![
            ("method", method.to_string()),
            ("result", result.to_string()),
        ])
        .observe(seconds(elapsed));
    let kind = match outcome {
        Outcome::Ok => return,
        Outcome::Refused => "refused",
        Outcome::Failed => "failed",
    };
    m.docker_errors
        .get_or_create(&vec![
            ("method", method.to_string()),
            ("kind", kind.to_string()),
        ])
        .inc();
}

/// An address asked of a port pool: `hit` or `miss`.
pub fn port_pool(result: &'static str) {
    METRICS
        .port_pool
        .get_or_create(&vec![("result", result.to_string())])
        .inc();
}

/// Ready ports in this host's pools.
pub fn port_pool_free(n: u64) {
    METRICS.port_pool_free.set(n as f64);
}

/// Join's wait for the port: `up`, `timeout` or `error`.
pub fn port_wait(result: &'static str, elapsed: Duration) {
    METRICS
        .port_wait
        .get_or_create(&vec![("result", result.to_string())])
        .observe(seconds(elapsed));
}

fn db(database: &str) -> Vec<(&'static str, String)> {
    vec![("database", database.to_string())]
}

/// One OVSDB transaction.
pub fn ovsdb_transaction(database: &str, ok: bool, elapsed: Duration) {
    let result = if ok { "ok" } else { "error" };
    METRICS
        .ovsdb_txn
        .get_or_create(&vec![
            ("database", database.to_string()),
            ("result", result.to_string()),
        ])
        .observe(seconds(elapsed));
}

/// The OVSDB client connected (and synchronized) or lost its connection.
pub fn ovsdb_connection(database: &str, connected: bool) {
    METRICS
        .ovsdb_connected
        .get_or_create(&db(database))
        .set(if connected { 1.0 } else { 0.0 });
}

/// The OVSDB client connected again after a lost connection.
pub fn ovsdb_reconnect(database: &str) {
    METRICS.ovsdb_reconnects.get_or_create(&db(database)).inc();
}

/// The OVSDB client of a clustered database connected to another member than before.
pub fn ovsdb_leader_change(database: &str) {
    METRICS
        .ovsdb_leader_changes
        .get_or_create(&db(database))
        .inc();
}

fn code_label(code: Option<u16>) -> String {
    code.map_or_else(|| "error".to_string(), |c| c.to_string())
}

/// One Neutron request: HTTP method, resource (`ports`, `subnets`, ...), status code (`None`:
/// no answer).
pub fn neutron_request(method: &str, resource: &str, code: Option<u16>, elapsed: Duration) {
    METRICS
        .neutron
        .get_or_create(&vec![
            ("method", method.to_string()),
            ("resource", resource.to_string()),
            ("code", code_label(code)),
        ])
        .observe(seconds(elapsed));
}

/// One Keystone request (a login or the version discovery before it).
pub fn keystone_request(code: Option<u16>, elapsed: Duration) {
    METRICS
        .keystone
        .get_or_create(&vec![("code", code_label(code))])
        .observe(seconds(elapsed));
}

/// Replaces the IPAM gauges with `pools`, as the control plane reports them (pools gone since
/// the last call disappear).
pub fn set_ipam(pools: &[kuryr_core::PoolUsage]) {
    let m = &*METRICS;
    m.ipam_in_use.clear();
    m.ipam_free.clear();
    for p in pools {
        let labels = PoolLabels {
            pool: p.pool.clone(),
            cidr: p.cidr.to_string(),
        };
        m.ipam_in_use.get_or_create(&labels).set(p.in_use as f64);
        m.ipam_free.get_or_create(&labels).set(p.free());
    }
}

/// One start-up reconciliation and what it did.
pub fn reconciled(
    ok: bool,
    removed: usize,
    missing_host_side: usize,
    kept_kuryr_libnetwork: usize,
) {
    let m = &*METRICS;
    let result = if ok { "ok" } else { "error" };
    m.reconcile_runs
        .get_or_create(&vec![("result", result.to_string())])
        .inc();
    for (outcome, n) in [
        ("removed", removed),
        ("missing_host_side", missing_host_side),
        ("kept_kuryr_libnetwork", kept_kuryr_libnetwork),
    ] {
        m.reconcile_endpoints
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc_by(n as u64);
    }
}

/// What `kuryr_build_info` says about this build and the daemon's mode.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    pub commit: String,
    pub target: String,
    pub rustc: String,
    /// `ovn` or `neutron`.
    pub mode: String,
}

/// Sets `kuryr_build_info` (once per process; a second call replaces the first).
pub fn build_info(info: &BuildInfo) {
    let m = &*METRICS;
    m.build_info.clear();
    m.build_info
        .get_or_create(&vec![
            ("version", info.version.clone()),
            ("commit", info.commit.clone()),
            ("target", info.target.clone()),
            ("rustc", info.rustc.clone()),
            ("mode", info.mode.clone()),
        ])
        .set(1.0);
}

/// Every metric in the OpenMetrics text format.
pub fn encode() -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry) {
        // Writing into a String cannot fail; keep what was written and say so.
        tracing::warn!(error = %e, "encoding the metrics failed part way");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_calls_show_up_in_the_text_format() {
        docker_call("UnitTestCall", Outcome::Ok, Duration::from_micros(300));
        docker_call("UnitTestCall", Outcome::Ok, Duration::from_millis(3));
        docker_call("UnitTestCall", Outcome::Refused, Duration::from_millis(1));
        ovsdb_transaction("UnitTestDb", true, Duration::from_millis(2));
        set_ipam(&[kuryr_core::PoolUsage {
            pool: "unit-pool".into(),
            cidr: "10.9.9.0/29".parse().expect("cidr"),
            in_use: 2,
        }]);
        let text = encode();
        let s = scrape::parse(&text).expect("our own output parses");
        let count = |name: &str, labels: &[(&str, &str)]| scrape::sum(&s, name, labels);
        assert_eq!(
            count(
                "kuryr_docker_request_duration_seconds_count",
                &[("method", "UnitTestCall"), ("result", "ok")]
            ),
            2.0,
            "{text}"
        );
        // The 0.5 ms bucket holds the 0.3 ms call only; +Inf holds both.
        assert_eq!(
            count(
                "kuryr_docker_request_duration_seconds_bucket",
                &[
                    ("method", "UnitTestCall"),
                    ("result", "ok"),
                    ("le", "0.0005")
                ]
            ),
            1.0
        );
        assert_eq!(
            count(
                "kuryr_docker_request_duration_seconds_bucket",
                &[("method", "UnitTestCall"), ("result", "ok"), ("le", "+Inf")]
            ),
            2.0
        );
        assert_eq!(
            count(
                "kuryr_docker_request_errors_total",
                &[("method", "UnitTestCall"), ("kind", "refused")]
            ),
            1.0
        );
        assert_eq!(
            count(
                "kuryr_ovsdb_transaction_duration_seconds_count",
                &[("database", "UnitTestDb")]
            ),
            1.0
        );
        assert_eq!(
            count("kuryr_ipam_addresses_free", &[("cidr", "10.9.9.0/29")]),
            4.0
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
