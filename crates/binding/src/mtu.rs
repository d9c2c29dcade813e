//! The default MTU of an overlay network: the underlay's MTU minus what the encapsulation adds.
//!
//! The figures follow Neutron (`neutron_lib.constants`, `type_tunnel.TunnelTypeDriver.get_mtu`):
//! MTU = underlay MTU - outer IP header (20 for IPv4, 40 for IPv6) - encapsulation overhead,
//! where the overhead counts UDP/TCP, the tunnel header and the inner Ethernet header.
use std::fmt;
use std::str::FromStr;

/// An OVN tunnel encapsulation, as `external_ids:ovn-encap-type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    Geneve,
    Vxlan,
    Stt,
}

/// The outer IP header Neutron subtracts (`IP_HEADER_LENGTH`).
pub const IPV4_HEADER: u32 = 20;
pub const IPV6_HEADER: u32 = 40;

impl Encap {
    /// Bytes the encapsulation adds besides the outer IP header.
    ///
    /// - Geneve: 38 = UDP 8 + Geneve 8 + OVN's 8-byte option (logical ports) + inner Ethernet 14.
    ///   Neutron's own minimum is 30 (`GENEVE_ENCAP_MIN_OVERHEAD`, no option); ML2/OVN requires
    ///   `[ml2_type_geneve] max_header_size = 38`, which is how its networks get 1442.
    /// - VXLAN: 30 = UDP 8 + VXLAN 8 + inner Ethernet 14 (`VXLAN_ENCAP_OVERHEAD`).
    /// - STT: 52 = TCP-like header 20 + STT frame header 18 (16 + 2 bytes of padding,
    ///   draft-davie-stt section 3.1) + inner Ethernet 14. Neutron has no STT type driver, so
    ///   this is derived from the draft rather than taken from Neutron.
    pub fn overhead(self) -> u32 {
        match self {
            Encap::Geneve => 38,
            Encap::Vxlan => 30,
            Encap::Stt => 52,
        }
    }

    /// The MTU for networks on this encapsulation over an IPv4 underlay of `underlay_mtu`
    /// (1500: geneve 1442, vxlan 1450, stt 1428).
    pub fn default_mtu(self, underlay_mtu: u32) -> u32 {
        underlay_mtu.saturating_sub(IPV4_HEADER + self.overhead())
    }

    /// The same over an IPv6 underlay (20 bytes less).
    pub fn default_mtu_ipv6(self, underlay_mtu: u32) -> u32 {
        underlay_mtu.saturating_sub(IPV6_HEADER + self.overhead())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encap::Geneve => "geneve",
            Encap::Vxlan => "vxlan",
            Encap::Stt => "stt",
        }
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Encap {
    type Err = String;

    fn from_str(s: &str) -> Result<Encap, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "geneve" => Ok(Encap::Geneve),
            "vxlan" => Ok(Encap::Vxlan),
            "stt" => Ok(Encap::Stt),
            other => Err(format!(
                "unknown encapsulation {other:?} (expected geneve, vxlan or stt)"
            )),
        }
    }
}

/// Parses `ovn-encap-type`, which may list several types (`geneve,vxlan`).
pub fn parse_encaps(s: &str) -> Result<Vec<Encap>, String> {
    let list: Vec<Encap> = s
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("no encapsulation type given".into());
    }
    Ok(list)
}

/// The MTU that fits every listed encapsulation: a chassis may reach its peers over any of
/// them, so the largest overhead decides. `None` for an empty list.
pub fn default_mtu(encaps: &[Encap], underlay_mtu: u32) -> Option<u32> {
    encaps.iter().map(|e| e.default_mtu(underlay_mtu)).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mtus_match_neutron_and_ovn() {
        for (encap, underlay, mtu) in [
            (Encap::Geneve, 1500, 1442),
            (Encap::Vxlan, 1500, 1450),
            (Encap::Stt, 1500, 1428),
            (Encap::Geneve, 9000, 8942),
            (Encap::Vxlan, 9000, 8950),
            (Encap::Geneve, 40, 0),
        ] {
            assert_eq!(encap.default_mtu(underlay), mtu, "{encap} over {underlay}");
        }
        assert_eq!(Encap::Geneve.default_mtu_ipv6(1500), 1422);
        assert_eq!(Encap::Vxlan.default_mtu_ipv6(1500), 1430);
    }

    #[test]
    fn encap_lists_parse_and_the_largest_overhead_wins() {
        assert_eq!(parse_encaps("geneve").unwrap(), vec![Encap::Geneve]);
        assert_eq!(
            parse_encaps("geneve, VXLAN").unwrap(),
            vec![Encap::Geneve, Encap::Vxlan]
        );
        assert!(parse_encaps("gre").unwrap_err().contains("\"gre\""));
        assert!(parse_encaps("").is_err());
        assert_eq!(
            default_mtu(&[Encap::Vxlan, Encap::Geneve], 1500),
            Some(1442)
        );
        assert_eq!(default_mtu(&[Encap::Vxlan], 1500), Some(1450));
        assert_eq!(default_mtu(&[], 1500), None);
        for e in [Encap::Geneve, Encap::Vxlan, Encap::Stt] {
            assert_eq!(e.to_string().parse::<Encap>().unwrap(), e);
        }
    }
}
