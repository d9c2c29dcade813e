//! Property tests of address management: arbitrary interleavings of allocations (lowest free,
//! a chosen address, two hosts at once), releases and daemon restarts across two hosts
//! sharing one real Northbound never hand out one address twice and never lose one. Each
//! case runs on a pool of its own; `PROPTEST_CASES` runs more of them.
mod common;

use common::*;
use kuryr_ovn::{OvnBackend, PoolRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    /// Host h asks for any address.
    Alloc(usize),
    /// Host h asks for the n-th endpoint address of the pool (`--ip`).
    AllocAt(usize, u8),
    /// Both hosts ask for any address at the same time.
    AllocBoth,
    /// Host h releases the n-th address held (whoever reserved it).
    Release(usize, usize),
    /// Host h's daemon restarts: a new client, nothing kept in memory.
    Restart(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Alloc),
        2 => (0..2usize, any::<u8>()).prop_map(|(h, n)| Op::AllocAt(h, n)),
        2 => Just(Op::AllocBoth),
        3 => (0..2usize, any::<usize>()).prop_map(|(h, n)| Op::Release(h, n)),
        1 => (0..2usize).prop_map(Op::Restart),
    ]
}

/// A /28: 14 host addresses, one the gateway, so that cases run the pool dry.
const CAPACITY: usize = 13;
static NEXT_POOL: AtomicU8 = AtomicU8::new(0);

/// The pool's addresses as the Northbound has them, once `observer` has caught up to `want`
/// (or after 5 s, whatever it has then).
async fn addresses_in_nb(
    observer: &OvnBackend,
    set: &str,
    want: &BTreeSet<IpAddr>,
) -> BTreeSet<IpAddr> {
    let read = |r: &kuryr_ovsdb::Replica| -> BTreeSet<IpAddr> {
        r.table("Address_Set")
            .one_by_name(set)
            .map(|row| {
                row.strings("addresses")
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let got = observer
        .client()
        .wait_for(Duration::from_secs(5), |r| {
            let have = read(r);
            (&have == want).then_some(have)
        })
        .await;
    got.unwrap_or_else(|| read(&observer.client().replica()))
}

async fn run_case(lab: &Lab, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let n = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
    let cidr: ipnet::IpNet = format!("10.195.{n}.0/28").parse().unwrap();
    let mut hosts = [backend(lab, "prop-0").await, backend(lab, "prop-1").await];
    let observer = backend(lab, "prop-observer").await;
    let grant = hosts[0]
        .request_pool(&PoolRequest {
            pool: Some(cidr),
            ..Default::default()
        })
        .map_err(|e| TestCaseError::fail(format!("RequestPool {cidr}: {e}")))?;
    let pool = grant.pool_id.clone();
    let set = pool_set(&pool);
    let gateway = hosts[0]
        .request_address(&pool, None, true, false)
        .await
        .map_err(|e| TestCaseError::fail(format!("gateway: {e}")))?
        .addr();
    let endpoint = |k: u8| -> IpAddr {
        let IpAddr::V4(gw) = gateway else {
            unreachable!("a v4 pool")
        };
        IpAddr::V4(Ipv4Addr::from(
            u32::from(gw) + 1 + u32::from(k) % CAPACITY as u32,
        ))
    };
    let mut held: BTreeSet<IpAddr> = BTreeSet::new();

    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step} {op:?} (held {held:?})");
        match *op {
            Op::Alloc(h) => match hosts[h].request_address(&pool, None, false, false).await {
                Ok(ip) => {
                    let ip = ip.addr();
                    prop_assert!(ip != gateway, "{at}: handed out the gateway");
                    prop_assert!(held.insert(ip), "{at}: {ip} handed out twice");
                }
                Err(e) => prop_assert!(held.len() == CAPACITY, "{at}: refused with room left: {e}"),
            },
            Op::AllocAt(h, k) => {
                let ip = endpoint(k);
                let r = hosts[h]
                    .request_address(&pool, Some(ip), false, false)
                    .await;
                if held.contains(&ip) {
                    prop_assert!(r.is_err(), "{at}: {ip} granted while held");
                } else {
                    let got = r.map_err(|e| {
                        TestCaseError::fail(format!("{at}: free {ip} refused: {e}"))
                    })?;
                    prop_assert_eq!(got.addr(), ip, "{}", at);
                    held.insert(ip);
                }
            }
            Op::AllocBoth => {
                let (a, b) = tokio::join!(
                    hosts[0].request_address(&pool, None, false, false),
                    hosts[1].request_address(&pool, None, false, false)
                );
                let free = CAPACITY - held.len();
                let granted: Vec<IpAddr> = [a, b]
                    .into_iter()
                    .filter_map(|r| r.ok())
                    .map(|n| n.addr())
                    .collect();
                prop_assert_eq!(granted.len(), free.min(2), "{}: granted {:?}", at, granted);
                for ip in granted {
                    prop_assert!(held.insert(ip), "{at}: {ip} handed out twice");
                }
            }
            Op::Release(h, k) => {
                if let Some(&ip) = held.iter().nth(k % held.len().max(1)) {
                    hosts[h]
                        .release_address(&pool, ip)
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{at}: release {ip}: {e}")))?;
                    held.remove(&ip);
                }
            }
            Op::Restart(h) => {
                hosts[h] = backend(lab, &format!("prop-{h}")).await;
            }
        }
        let mut want = held.clone();
        want.insert(gateway);
        let nb = addresses_in_nb(&observer, &set, &want).await;
        prop_assert_eq!(&nb, &want, "{}: the Northbound disagrees", at);
    }

    // Everything back, by the host that releases the pool as Docker's calls come from one
    // daemon: the pool goes, and with it every row the case made.
    for ip in std::mem::take(&mut held) {
        hosts[0]
            .release_address(&pool, ip)
            .await
            .map_err(|e| TestCaseError::fail(format!("final release {ip}: {e}")))?;
    }
    hosts[0]
        .release_pool(&pool)
        .await
        .map_err(|e| TestCaseError::fail(format!("ReleasePool: {e}")))?;
    let gone = observer
        .client()
        .wait_for(Duration::from_secs(5), |r| {
            r.table("Address_Set")
                .one_by_name(&set)
                .is_none()
                .then_some(())
        })
        .await;
    prop_assert!(gone.is_some(), "pool {} left behind", set);
    Ok(())
}

/// The Address_Set a pool id (`<set>@<cidr>`) names.
fn pool_set(pool_id: &str) -> String {
    pool_id.split('@').next().unwrap_or(pool_id).to_owned()
}

#[test]
#[ignore = "needs ovsdb-server and the OVN schemas (make test)"]
fn two_hosts_never_hand_out_an_address_twice_nor_lose_one() {
    let lab = lab();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        // Each shrink step is a run against the Northbound: keep failures quick to report.
        max_shrink_iters: 64,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        rt.block_on(run_case(&lab, ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
