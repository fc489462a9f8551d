//! What the kernel says about this host's addresses and routes (rtnetlink, RFC 3549), for MOBIKE:
//! the daemon only needs to hear that something changed; it then asks the routing table which
//! source reaches each peer (RFC 4555 §3.5: the initiator picks the new path).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

// The rtnetlink multicast groups (linux/rtnetlink.h): addresses and routes of both families.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// A subscription to address and route changes.
#[derive(Debug)]
pub struct Watcher {
    sock: Socket,
    buf: Vec<u8>,
}

impl Watcher {
    /// Joins the address and route groups of IPv4 and IPv6.
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE;
        sock.bind(&SocketAddr::new(0, groups))?;
        Ok(Self { sock, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Blocks until the kernel reports a change, then lets the rest of its burst arrive for `settle`
    /// (an address going away removes its routes too, one message each) and reads it all: one
    /// return per burst.
    pub fn wait(&mut self, settle: Duration) -> io::Result<()> {
        self.buf.clear();
        match self.sock.recv(&mut self.buf, 0) {
            Ok(_) => {}
            // The kernel dropped messages (ENOBUFS): a change still happened; the subscription stays.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {}
            Err(e) => return Err(e),
        }
        std::thread::sleep(settle);
        self.sock.set_non_blocking(true)?;
        let drained = loop {
            self.buf.clear();
            match self.sock.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                // The kernel dropped messages (ENOBUFS): a change still happened.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.sock.set_non_blocking(false)?;
        drained
    }
}

/// This host's addresses that can carry IKE, with their interfaces: every interface address but
/// those of loopback devices and link-local and unspecified ones, each once.
pub fn addresses() -> io::Result<Vec<(String, IpAddr)>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        // Addresses on a loopback device (a protected subnet's address on `lo`) reach no peer.
        if ifa.flags.contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK) {
            continue;
        }
        let Some(a) = ifa.address else { continue };
        let ip = if let Some(v4) = a.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = a.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if !(ip.is_loopback() || ip.is_unspecified() || link_local || out.iter().any(|(_, a)| *a == ip)) {
            out.push((ifa.interface_name, ip));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_leave_out_loopback() {
        let all = super::addresses().unwrap();
        assert!(all.iter().all(|(_, a)| !a.is_loopback()), "{all:?}");
    }
}
