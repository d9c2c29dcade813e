//! Address arithmetic for kuryr's IPAM: pool identifiers, the usable addresses of a pool,
//! picking a free address and a free default pool, and MAC addresses derived from IPs.
//! Pure functions; the Northbound side lives in `backend.rs`.
use crate::error::{OvnError, Result};
use ipnet::IpNet;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A pool as Docker names it (`<set>@<cidr>[@<ip-range>]`): the Address_Set holding its
/// allocations, the pool's CIDR (so the set can be created again if it is gone), and the
/// `--ip-range` sub-pool that endpoint addresses come from, if one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolId {
    pub set: String,
    pub cidr: IpNet,
    pub subpool: Option<IpNet>,
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.set, self.cidr)?;
        if let Some(sub) = &self.subpool {
            write!(f, "@{sub}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for PoolId {
    type Err = OvnError;

    fn from_str(s: &str) -> Result<PoolId> {
        let bad = || {
            OvnError::Invalid(format!(
                "pool id {s:?} is not one kuryr handed out (expected kuryr_...@CIDR)"
            ))
        };
        let mut parts = s.split('@');
        let set = parts.next().unwrap_or_default();
        let cidr: IpNet = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let subpool = match parts.next() {
            Some(sub) => Some(sub.parse::<IpNet>().map_err(|_| bad())?),
            None => None,
        };
        if parts.next().is_some()
            || !set.starts_with("kuryr_")
            || !set
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(bad());
        }
        Ok(PoolId {
            set: set.to_string(),
            cidr,
            subpool,
        })
    }
}

/// Escapes text into the characters an Address_Set name may hold (`[A-Za-z0-9_.]`),
/// reversibly: any other byte, and `_` itself, becomes `_` and two hex digits.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The Address_Set name of a pool: by its `kuryr.pool.name` when given (two networks with the
/// same CIDR), otherwise by its CIDR (every host asking for that CIDR shares it).
pub fn pool_set_name(name: Option<&str>, cidr: &IpNet) -> String {
    match name {
        Some(n) => format!("kuryr_n_{}", escape(n)),
        None => format!("kuryr_c_{}", escape(&cidr.trunc().to_string())),
    }
}

/// The first and last address endpoints may get in `net`: IPv4 leaves out the network and
/// broadcast addresses (for prefixes up to /30), IPv6 the subnet-router anycast address.
pub fn host_range(net: &IpNet) -> (IpAddr, IpAddr) {
    match net {
        IpNet::V4(n) if n.prefix_len() <= 30 => {
            let first = u32::from(n.network()) + 1;
            let last = u32::from(n.broadcast()) - 1;
            (
                IpAddr::V4(Ipv4Addr::from(first)),
                IpAddr::V4(Ipv4Addr::from(last)),
            )
        }
        IpNet::V4(n) => (IpAddr::V4(n.network()), IpAddr::V4(n.broadcast())),
        IpNet::V6(n) if n.prefix_len() < 128 => {
            let first = u128::from(n.network()) + 1;
            (IpAddr::V6(Ipv6Addr::from(first)), IpAddr::V6(n.broadcast()))
        }
        IpNet::V6(n) => (IpAddr::V6(n.network()), IpAddr::V6(n.network())),
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// Whether `ip` is an address an endpoint or gateway may have in `pool`.
pub fn is_host_address(pool: &IpNet, ip: IpAddr) -> bool {
    let (first, last) = host_range(pool);
    pool.contains(&ip) && to_u128(ip) >= to_u128(first) && to_u128(ip) <= to_u128(last)
}

/// Every address endpoints may get in `pool` (restricted to `subpool`), starting at `from`
/// (when inside the range) and wrapping around to the start: a rolling allocator, as Docker's
/// own IPAM does, so an allocation does not rescan the addresses taken before it.
pub fn candidates(
    pool: &IpNet,
    subpool: Option<&IpNet>,
    from: Option<IpAddr>,
) -> impl Iterator<Item = IpAddr> {
    let (mut first, mut last) = host_range(pool);
    if let Some(sub) = subpool {
        if to_u128(sub.network()) > to_u128(first) {
            first = sub.network();
        }
        if to_u128(sub.broadcast()) < to_u128(last) {
            last = sub.broadcast();
        }
    }
    let v6 = pool.addr().is_ipv6();
    let (lo, hi) = (to_u128(first), to_u128(last));
    let start = from
        .map(to_u128)
        .filter(|s| *s >= lo && *s <= hi)
        .unwrap_or(lo);
    // An empty range (a sub-pool outside the pool) yields nothing.
    let upper = (lo <= hi).then_some(start..=hi).into_iter().flatten();
    let lower = (lo <= hi && start > lo)
        .then(|| lo..=start - 1)
        .into_iter()
        .flatten();
    upper.chain(lower).map(move |v| from_u128(v, v6))
}

/// The address after `ip`, if there is one.
pub fn next_address(ip: IpAddr) -> Option<IpAddr> {
    let v = to_u128(ip).checked_add(1)?;
    match ip {
        IpAddr::V4(_) if v > u32::MAX as u128 => None,
        _ => Some(from_u128(v, ip.is_ipv6())),
    }
}

/// The lowest address of `pool` (restricted to `subpool`) that is neither used nor excluded.
pub fn free_address(
    pool: &IpNet,
    subpool: Option<&IpNet>,
    used: &HashSet<IpAddr>,
    excluded: &HashSet<IpAddr>,
) -> Option<IpAddr> {
    let (mut first, mut last) = host_range(pool);
    if let Some(sub) = subpool {
        let (sf, sl) = (sub.network(), sub.broadcast());
        if to_u128(sf) > to_u128(first) {
            first = sf;
        }
        if to_u128(sl) < to_u128(last) {
            last = sl;
        }
    }
    let v6 = pool.addr().is_ipv6();
    let (mut cur, end) = (to_u128(first), to_u128(last));
    // At most used+excluded+1 steps: every step past a free address returns.
    while cur <= end {
        let ip = from_u128(cur, v6);
        if !used.contains(&ip) && !excluded.contains(&ip) {
            return Some(ip);
        }
        cur += 1;
    }
    None
}

/// A MAC derived from the endpoint's IPv4 address (`0a:58:` + the four octets, as OVN
/// Kubernetes does), else from the low 32 bits of its IPv6 address: unique on a network
/// because its addresses are, and stable across retries.
pub fn mac_from_ip(ipv4: Option<Ipv4Addr>, ipv6: Option<Ipv6Addr>) -> Option<String> {
    let tail: [u8; 4] = match (ipv4, ipv6) {
        (Some(a), _) => a.octets(),
        (None, Some(a)) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
        (None, None) => return None,
    };
    Some(format!(
        "0a:58:{:02x}:{:02x}:{:02x}:{:02x}",
        tail[0], tail[1], tail[2], tail[3]
    ))
}

/// A random locally administered unicast MAC.
pub fn random_mac() -> String {
    let mut b: [u8; 6] = rand::random();
    b[0] = (b[0] & 0xfe) | 0x02;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pool_ids_round_trip_and_reject_foreign_ids() {
        for id in [
            PoolId {
                set: pool_set_name(None, &net("10.1.0.0/24")),
                cidr: net("10.1.0.0/24"),
                subpool: None,
            },
            PoolId {
                set: pool_set_name(Some("my pool/1"), &net("10.1.0.0/24")),
                cidr: net("10.1.0.0/24"),
                subpool: Some(net("10.1.0.128/25")),
            },
            PoolId {
                set: pool_set_name(None, &net("fd00:1::/64")),
                cidr: net("fd00:1::/64"),
                subpool: None,
            },
        ] {
            assert_eq!(id.to_string().parse::<PoolId>().unwrap(), id);
        }
        for bad in [
            "",
            "abc",
            "kuryr_x",
            "kuryr_x@notacidr",
            "kuryr_a-b@10.0.0.0/8",
            "other_c@10.0.0.0/8",
            "kuryr_x@10.0.0.0/8@10.0.0.0/9@x",
        ] {
            assert!(bad.parse::<PoolId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn set_names_are_valid_address_set_names_and_distinct() {
        let names = [
            pool_set_name(None, &net("10.1.0.0/24")),
            pool_set_name(None, &net("10.1.0.0/25")),
            pool_set_name(Some("a_b"), &net("10.1.0.0/24")),
            pool_set_name(Some("a-b"), &net("10.1.0.0/24")),
            pool_set_name(None, &net("fd00::/64")),
        ];
        let set: HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        for n in &names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
                "{n}"
            );
        }
        // A host address given as the pool is truncated to its network.
        assert_eq!(pool_set_name(None, &net("10.1.0.7/24")), names[0]);
    }

    #[test]
    fn host_ranges() {
        assert_eq!(
            host_range(&net("10.1.0.0/24")),
            (ip("10.1.0.1"), ip("10.1.0.254"))
        );
        assert_eq!(
            host_range(&net("10.1.0.0/31")),
            (ip("10.1.0.0"), ip("10.1.0.1"))
        );
        assert_eq!(
            host_range(&net("fd00::/120")),
            (ip("fd00::1"), ip("fd00::ff"))
        );
        assert!(!is_host_address(&net("10.1.0.0/24"), ip("10.1.0.255")));
        assert!(!is_host_address(&net("10.1.0.0/24"), ip("10.1.0.0")));
        assert!(!is_host_address(&net("10.1.0.0/24"), ip("10.2.0.5")));
        assert!(is_host_address(&net("10.1.0.0/24"), ip("10.1.0.5")));
    }

    #[test]
    fn free_address_skips_used_and_honours_the_subpool() {
        let pool = net("10.1.0.0/29");
        let mut used = HashSet::new();
        let none = HashSet::new();
        assert_eq!(
            free_address(&pool, None, &used, &none),
            Some(ip("10.1.0.1"))
        );
        used.insert(ip("10.1.0.1"));
        used.insert(ip("10.1.0.2"));
        assert_eq!(
            free_address(&pool, None, &used, &none),
            Some(ip("10.1.0.3"))
        );
        let excl: HashSet<_> = [ip("10.1.0.3")].into();
        assert_eq!(
            free_address(&pool, None, &used, &excl),
            Some(ip("10.1.0.4"))
        );
        assert_eq!(
            free_address(&pool, Some(&net("10.1.0.4/30")), &used, &none),
            Some(ip("10.1.0.4"))
        );
        for i in 1..=6 {
            used.insert(ip(&format!("10.1.0.{i}")));
        }
        assert_eq!(
            free_address(&pool, None, &used, &none),
            None,
            "a /29 has six host addresses"
        );
        assert_eq!(
            free_address(&net("fd00::/64"), None, &HashSet::new(), &none),
            Some(ip("fd00::1"))
        );
    }

    #[test]
    fn candidates_roll_from_the_hint_and_wrap() {
        let pool = net("10.1.0.0/29");
        let all: Vec<IpAddr> = candidates(&pool, None, None).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], ip("10.1.0.1"));
        let rolled: Vec<IpAddr> = candidates(&pool, None, Some(ip("10.1.0.5"))).collect();
        assert_eq!(
            rolled,
            ["10.1.0.5", "10.1.0.6", "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"].map(ip)
        );
        // A hint outside the range starts at the beginning; a sub-pool bounds it.
        assert_eq!(
            candidates(&pool, None, Some(ip("10.9.9.9"))).next(),
            Some(ip("10.1.0.1"))
        );
        let sub: Vec<IpAddr> =
            candidates(&net("10.1.0.0/24"), Some(&net("10.1.0.128/30")), None).collect();
        assert_eq!(
            sub,
            ["10.1.0.128", "10.1.0.129", "10.1.0.130", "10.1.0.131"].map(ip)
        );
        assert_eq!(next_address(ip("10.1.0.255")), Some(ip("10.1.1.0")));
        assert_eq!(next_address(ip("255.255.255.255")), None);
    }

    #[test]
    fn macs() {
        assert_eq!(
            mac_from_ip(Some("10.1.0.5".parse().unwrap()), None).unwrap(),
            "0a:58:0a:01:00:05"
        );
        assert_eq!(
            mac_from_ip(None, Some("fd00::1:2".parse().unwrap())).unwrap(),
            "0a:58:00:01:00:02"
        );
        let m = random_mac();
        let first = u8::from_str_radix(&m[..2], 16).unwrap();
        assert_eq!(
            first & 0x03,
            0x02,
            "{m} must be unicast and locally administered"
        );
    }
}
