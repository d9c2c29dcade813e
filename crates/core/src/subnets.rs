//! Subnet arithmetic both backends use to choose a free subnet.
use ipnet::IpNet;

/// Whether two subnets share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first `len`-long subnet of `base` that overlaps none of `taken`.
pub fn first_free_subnet(base: &IpNet, len: u8, taken: &[IpNet]) -> Option<IpNet> {
    base.subnets(len)
        .ok()?
        .find(|candidate| !taken.iter().any(|t| overlaps(t, candidate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_free_subnet_skips_overlapping_ones() {
        let base = net("10.200.0.0/16");
        assert_eq!(
            first_free_subnet(&base, 24, &[]),
            Some(net("10.200.0.0/24"))
        );
        let taken = [
            net("10.200.0.0/24"),
            net("10.200.1.0/25"),
            net("10.0.0.0/8"),
        ];
        assert_eq!(
            first_free_subnet(&base, 24, &taken[..2]),
            Some(net("10.200.2.0/24"))
        );
        assert_eq!(first_free_subnet(&base, 24, &taken), None);
    }
}
