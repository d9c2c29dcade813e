//! Small value types of the protocol: Docker ids, MAC addresses, IP protocols.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

/// Why a text value could not be parsed into one of this module's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(&'static str);

/// A Docker network or endpoint id: 64 lowercase hex digits, or a Swarm network's id
/// (25 lowercase letters and digits, which Docker uses as the network's id on every node).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DockerId(String);

impl DockerId {
    /// Length of an id Docker makes.
    pub const LEN: usize = 64;
    /// Length of an id Swarm makes (base 36, zero-padded).
    pub const SWARM_LEN: usize = 25;

    /// The id as Docker spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, as `docker network ls` shows them.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

const NOT_AN_ID: &str =
    "not a Docker id (64 lowercase hex digits, or 25 lowercase letters and digits for a Swarm network)";

impl FromStr for DockerId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let docker =
            s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let swarm =
            s.len() == Self::SWARM_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z'));
        if docker || swarm {
            Ok(DockerId(s.to_owned()))
        } else {
            Err(ParseError(NOT_AN_ID))
        }
    }
}

impl fmt::Display for DockerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DockerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DockerId({})", self.0)
    }
}

impl AsRef<str> for DockerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An Ethernet (EUI-48) address; displayed as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six octets.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Decodes the form Docker puts in CreateEndpoint's options: a Go `net.HardwareAddr`
    /// marshalled by `encoding/json`, i.e. standard base64 of the six bytes (`"AkIKAQAC"`).
    pub fn from_base64(s: &str) -> Result<Self, ParseError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| ParseError("not a MAC address (neither aa:bb:cc:dd:ee:ff nor base64)"))?;
        <[u8; 6]>::try_from(bytes.as_slice())
            .map(MacAddr)
            .map_err(|_| ParseError("not a MAC address (base64 of other than 6 bytes)"))
    }

    /// Accepts either form Docker uses: `aa:bb:cc:dd:ee:ff` text or base64 bytes.
    pub fn parse_any(s: &str) -> Result<Self, ParseError> {
        s.parse().or_else(|_| MacAddr::from_base64(s))
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: ParseError = ParseError("not a MAC address (aa:bb:cc:dd:ee:ff)");
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for octet in &mut out {
            let part = parts.next().ok_or(BAD)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BAD);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| BAD)?;
        }
        if parts.next().is_some() {
            return Err(BAD);
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// An IP protocol number as Docker sends it in exposed ports and port maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// 1.
    Icmp,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// 132.
    Sctp,
    /// Any other number.
    Other(u8),
}

impl Protocol {
    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Other(n) => n,
        }
    }
}

impl From<u8> for Protocol {
    fn from(n: u8) -> Self {
        match n {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            n => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Sctp => f.write_str("sctp"),
            Protocol::Other(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "d1b2f5e3c7a94f0e8b6a3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

    #[test]
    fn docker_id_accepts_64_lowercase_hex() {
        let id: DockerId = ID.parse().unwrap();
        assert_eq!(id.as_str(), ID);
        assert_eq!(id.short(), "d1b2f5e3c7a9");
        assert_eq!(id.to_string(), ID);
    }

    #[test]
    fn docker_id_rejects_everything_else() {
        let upper = ID.to_uppercase();
        let long = format!("{ID}0");
        let non_hex = format!("{}g", &ID[..63]);
        let cases: [&str; 6] = [
            "",
            &ID[..63],
            &long,
            &upper,
            &non_hex,
            "../../../../etc/passwd",
        ];
        for case in cases {
            assert_eq!(
                case.parse::<DockerId>(),
                Err(ParseError(NOT_AN_ID)),
                "{case:?}"
            );
        }
        // A Swarm network's id, as `docker network ls` shows it on every node.
        let swarm = "gkzaw7yvz44bz55fsblivfw3u".parse::<DockerId>().unwrap();
        assert_eq!(swarm.short(), "gkzaw7yvz44b");
        for bad in [
            "gkzaw7yvz44bz55fsblivfw3",
            "Gkzaw7yvz44bz55fsblivfw3u",
            "gkzaw7yvz44bz55fsblivfw3-",
        ] {
            assert!(bad.parse::<DockerId>().is_err(), "{bad}");
        }
        // Multi-byte characters must not trip the length check into slicing mid-char.
        let wide = "é".repeat(32);
        assert!(wide.parse::<DockerId>().is_err());
    }

    #[test]
    fn mac_parses_text_forms_and_displays_lowercase() {
        let cases = [
            ("02:42:0a:01:00:02", [0x02, 0x42, 0x0a, 0x01, 0x00, 0x02]),
            ("02:42:AC:11:00:FF", [0x02, 0x42, 0xac, 0x11, 0x00, 0xff]),
            ("fa-16-3e-00-00-01", [0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01]),
        ];
        for (text, octets) in cases {
            let mac: MacAddr = text.parse().unwrap();
            assert_eq!(mac.octets(), octets, "{text}");
            assert_eq!(mac.to_string(), text.to_lowercase().replace('-', ":"));
        }
    }

    #[test]
    fn mac_rejects_malformed_text() {
        for text in [
            "",
            "02:42:0a:01:00",
            "02:42:0a:01:00:02:03",
            "02:42:0a:01:00:2",
            "02:42:0a:01:00:0g",
            "0242.0a01.0002",
            "02:42:0a:01:00:+2",
            "02:42-0a:01:00:02",
        ] {
            assert!(text.parse::<MacAddr>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn mac_decodes_go_hardware_addr_base64() {
        // encoding/json of net.HardwareAddr{0x02, 0x42, 0x0a, 0x01, 0x00, 0x02}.
        let mac = MacAddr::from_base64("AkIKAQAC").unwrap();
        assert_eq!(mac.to_string(), "02:42:0a:01:00:02");
        assert_eq!(MacAddr::parse_any("AkIKAQAC").unwrap(), mac);
        assert_eq!(MacAddr::parse_any("02:42:0a:01:00:02").unwrap(), mac);
    }

    #[test]
    fn mac_base64_of_wrong_length_or_garbage_is_refused() {
        for text in ["AkIKAQ==", "AkIKAQACAw==", "not base64!", ""] {
            assert!(MacAddr::parse_any(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn protocol_numbers_round_trip() {
        for n in 0..=255u8 {
            assert_eq!(Protocol::from(n).number(), n);
        }
        assert_eq!(Protocol::from(6).to_string(), "tcp");
        assert_eq!(Protocol::from(17).to_string(), "udp");
        assert_eq!(Protocol::from(47).to_string(), "47");
    }
}
