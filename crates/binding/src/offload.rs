//! Turning off transmit checksum offload on a veth end. The OVS userspace (netdev) datapath
//! reads packets from the host end with AF_PACKET and forwards them as they are: a packet the
//! container's kernel left with a partial checksum (for the NIC to finish) arrives with a wrong
//! one and the peer drops it. ICMP still works, TCP and UDP do not. Measured here: ping passes
//! and every TCP connection times out until `tx` offload is off on the container end.
use std::io;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// `ethtool -K <ifname> tx off`, in the calling thread's network namespace.
pub(crate) fn disable_tx_checksum(ifname: &str) -> io::Result<()> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {ifname:?}"),
        ));
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: a plain datagram socket, closed below; the ioctl reads `req` and the
    // `EthtoolValue` it points to, both alive for the duration of the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, &mut req as *mut IfReq);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// With the userspace datapath the kernel also receives what arrives on the bridge's end of a
/// veth (the datapath reads it through a packet socket beside the kernel's stack), and by
/// default answers an ARP request for any address of the host on any interface: a
/// container asking for its VM's or host's address got the veth's own MAC, before OVN's
/// answer, and then sent to a MAC nothing forwards. The bridge's end has no address, so
/// `arp_ignore = 1` (answer only for addresses of the interface itself) silences it.
pub fn ignore_arp(ifname: &str) -> std::io::Result<()> {
    crate::sysctl::write(&format!("net/ipv4/conf/{ifname}/arp_ignore"), "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_the_kernel_cannot_hold() {
        assert!(disable_tx_checksum("").is_err());
        assert!(disable_tx_checksum("a-name-longer-than-15").is_err());
        assert!(disable_tx_checksum("nul\0").is_err());
    }
}
