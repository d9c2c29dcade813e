//! Interface names and the validation of a plug request, both pure so they are tested without
//! root.
use crate::error::BindingError;
use crate::PlugRequest;

/// How many characters of the endpoint id go into an interface name: `tap` + 11 = 14, inside
/// the kernel's 15-character limit, as kuryr-libnetwork does (`NIC_NAME_LEN = 14`).
pub const ID_CHARS_IN_NAME: usize = 11;
pub const HOST_PREFIX: &str = "tap";
pub const CONTAINER_PREFIX: &str = "t_c";

/// Longest endpoint id accepted (Docker's are 64 hex characters).
const MAX_ID_LEN: usize = 255;

/// The host end of an endpoint's veth pair, which is also its OVS Port and Interface name.
pub fn host_ifname(endpoint_id: &str) -> Result<String, BindingError> {
    validate_endpoint_id(endpoint_id)?;
    Ok(format!("{HOST_PREFIX}{}", id_part(endpoint_id)))
}

/// The host end kuryr-libnetwork's veth driver (kuryr-lib) creates: named after the Neutron
/// port, not the endpoint (`tap<port id>` cut to 14 characters). A host that moved from
/// kuryr-libnetwork still has these for the containers it started.
pub fn kuryr_libnetwork_host_ifname(port_id: &str) -> String {
    let id: String = port_id.chars().take(ID_CHARS_IN_NAME).collect();
    format!("{HOST_PREFIX}{id}")
}

/// The container end of an endpoint's veth pair (Docker renames it inside the container).
pub fn container_ifname(endpoint_id: &str) -> Result<String, BindingError> {
    validate_endpoint_id(endpoint_id)?;
    Ok(format!("{CONTAINER_PREFIX}{}", id_part(endpoint_id)))
}

fn id_part(endpoint_id: &str) -> &str {
    // Validated as ASCII, so byte slicing is on character boundaries.
    &endpoint_id[..endpoint_id.len().min(ID_CHARS_IN_NAME)]
}

fn invalid(endpoint: &str, field: &'static str, value: &str, reason: &str) -> BindingError {
    BindingError::Invalid {
        endpoint: endpoint.to_string(),
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

pub fn validate_endpoint_id(id: &str) -> Result<(), BindingError> {
    let bad = |reason| invalid(id, "endpoint id", id, reason);
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(bad("it is longer than 255 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad("only letters, digits, '_' and '-' are allowed"));
    }
    Ok(())
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case) into bytes; only unicast, non-zero addresses can be
/// given to an interface.
pub fn parse_mac(endpoint: &str, mac: &str) -> Result<[u8; 6], BindingError> {
    let bad = |reason| invalid(endpoint, "MAC address", mac, reason);
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad(
            "expected six two-digit hex bytes like 02:42:ac:11:00:02",
        ));
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = u8::from_str_radix(p, 16).map_err(|_| bad("not hexadecimal"))?;
    }
    if out[0] & 1 == 1 {
        return Err(bad("it is a multicast address"));
    }
    if out == [0; 6] {
        return Err(bad("it is all zeros"));
    }
    Ok(out)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The MTU range a veth accepts (IPv4's minimum of 68 up to the kernel's 65535 for veth).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// A plug request with its MAC parsed and every field checked, before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    pub endpoint_id: String,
    pub iface_id: String,
    pub mac: [u8; 6],
    /// Lower case, as OVN and Docker write it.
    pub mac_text: String,
    pub mtu: u32,
    pub host_ifname: String,
    pub container_ifname: String,
    pub vlan: Option<u16>,
}

pub(crate) fn check(req: &PlugRequest) -> Result<Checked, BindingError> {
    let ep = req.endpoint_id.as_str();
    let host_ifname = host_ifname(ep)?;
    let container_ifname = container_ifname(ep)?;
    if req.iface_id.is_empty() {
        return Err(invalid(
            ep,
            "iface-id",
            &req.iface_id,
            "the logical switch port name is empty",
        ));
    }
    if req
        .iface_id
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            ep,
            "iface-id",
            &req.iface_id,
            "it contains whitespace or control characters",
        ));
    }
    let mac = parse_mac(ep, &req.mac)?;
    if !MTU_RANGE.contains(&req.mtu) {
        return Err(invalid(
            ep,
            "MTU",
            &req.mtu.to_string(),
            "it must be from 68 to 65535",
        ));
    }
    Ok(Checked {
        endpoint_id: ep.to_string(),
        iface_id: req.iface_id.clone(),
        mac,
        mac_text: format_mac(&mac),
        mtu: req.mtu,
        host_ifname,
        container_ifname,
        vlan: req.vlan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(endpoint_id: &str, iface_id: &str, mac: &str, mtu: u32) -> PlugRequest {
        PlugRequest {
            endpoint_id: endpoint_id.into(),
            iface_id: iface_id.into(),
            mac: mac.into(),
            mtu,
            vlan: None,
        }
    }

    #[test]
    fn names_take_eleven_id_characters_and_fit_the_kernel_limit() {
        let id = "3f2a9c0d1e4b5a6978877665544332211000ffeeddccbbaa9988776655443322";
        let cases = [
            (id, "tap3f2a9c0d1e4", "t_c3f2a9c0d1e4"),
            ("abc", "tapabc", "t_cabc"),
            ("ep_1-x", "tapep_1-x", "t_cep_1-x"),
            ("0123456789a", "tap0123456789a", "t_c0123456789a"),
        ];
        for (id, host, cont) in cases {
            assert_eq!(host_ifname(id).unwrap(), host, "{id}");
            assert_eq!(container_ifname(id).unwrap(), cont, "{id}");
            assert!(host.len() <= 15 && cont.len() <= 15);
        }
    }

    #[test]
    fn kuryr_libnetwork_names_its_host_end_after_the_neutron_port() {
        assert_eq!(
            kuryr_libnetwork_host_ifname("5c7a4ef1-93d2-4b0e-9f5e-1f2a3b4c5d6e"),
            "tap5c7a4ef1-93"
        );
        assert_eq!(kuryr_libnetwork_host_ifname("ab"), "tapab");
        // A Neutron port id has a '-' in its first 11 characters, a Docker endpoint id never
        // does: the two namings cannot collide.
        assert!(kuryr_libnetwork_host_ifname("5c7a4ef1-93d2").contains('-'));
    }

    #[test]
    fn endpoint_ids_are_checked() {
        for bad in ["", "a b", "ép", "x/y", "a.b", &"a".repeat(256)] {
            let err = host_ifname(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    BindingError::Invalid {
                        field: "endpoint id",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
        assert!(host_ifname(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn macs_are_parsed_and_bad_ones_named() {
        assert_eq!(
            parse_mac("e", "02:42:AC:11:00:02").unwrap(),
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
        );
        for (bad, why) in [
            ("", "six two-digit"),
            ("02:42:ac:11:00", "six two-digit"),
            ("02:42:ac:11:00:02:03", "six two-digit"),
            ("02-42-ac-11-00-02", "six two-digit"),
            ("2:42:ac:11:00:02", "six two-digit"),
            ("02:42:ac:11:00:g2", "six two-digit"),
            ("01:00:5e:00:00:01", "multicast"),
            ("ff:ff:ff:ff:ff:ff", "multicast"),
            ("00:00:00:00:00:00", "all zeros"),
        ] {
            let msg = parse_mac("ep1", bad).unwrap_err().to_string();
            assert!(msg.contains(why) && msg.contains("ep1"), "{bad:?}: {msg}");
        }
        assert_eq!(format_mac(&[0x0a, 0, 0, 0, 0xbc, 1]), "0a:00:00:00:bc:01");
    }

    #[test]
    fn requests_are_validated_before_anything_changes() {
        let ok = check(&req("ep1", "lsp-1", "0A:58:0A:00:00:05", 1442)).unwrap();
        assert_eq!(ok.mac_text, "0a:58:0a:00:00:05");
        assert_eq!(ok.host_ifname, "tapep1");
        assert_eq!(ok.container_ifname, "t_cep1");
        for (r, field) in [
            (req("", "l", "0a:58:0a:00:00:05", 1500), "endpoint id"),
            (req("e", "", "0a:58:0a:00:00:05", 1500), "iface-id"),
            (req("e", "a b", "0a:58:0a:00:00:05", 1500), "iface-id"),
            (req("e", "l", "nope", 1500), "MAC address"),
            (req("e", "l", "0a:58:0a:00:00:05", 67), "MTU"),
            (req("e", "l", "0a:58:0a:00:00:05", 65536), "MTU"),
        ] {
            match check(&r) {
                Err(BindingError::Invalid { field: f, .. }) => assert_eq!(f, field, "{r:?}"),
                other => panic!("{r:?}: expected invalid {field}, got {other:?}"),
            }
        }
        for mtu in [68, 1500, 9000, 65535] {
            assert!(check(&req("e", "l", "0a:58:0a:00:00:05", mtu)).is_ok());
        }
    }
}
