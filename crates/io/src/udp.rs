//! UDP with segmentation offload. One `sendmsg` carries a run of equal-sized datagrams to one peer
//! (`UDP_SEGMENT`, Linux 4.18) and one `recvmsg` returns a run the kernel coalesced (`UDP_GRO`,
//! Linux 5.0): the per-datagram cost of the socket layer is paid once per run.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrLike as _, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};

/// The most datagrams one GSO send may carry (the kernel's `UDP_MAX_SEGMENTS` is 64 or more).
pub const MAX_SEGMENTS: usize = 64;
/// The most octets one GSO send may carry: one IP datagram's payload.
pub const MAX_GSO_BYTES: usize = 65_000;

/// A UDP socket with batched sends and receives where the kernel offers them.
#[derive(Debug)]
pub struct UdpIo {
    sock: UdpSocket,
    gso: AtomicBool,
    gro: bool,
}

/// Space for the control messages of one receive (the GRO segment size).
#[derive(Debug)]
pub struct RecvScratch(Vec<u8>);

impl Default for RecvScratch {
    fn default() -> Self {
        Self(nix::cmsg_space!(i32))
    }
}

/// What one receive returned: `len` octets holding datagrams of `stride` octets each (the last may
/// be shorter) from `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagrams {
    /// Octets received.
    pub len: usize,
    /// The size of each datagram in the run; `len` when the kernel did not coalesce.
    pub stride: usize,
    /// The sender.
    pub from: SocketAddr,
}

impl UdpIo {
    /// Wraps a bound socket and asks the kernel to coalesce what it receives (UDP_GRO). GSO is
    /// used until the kernel refuses it once (EIO: the egress device cannot checksum).
    pub fn new(sock: UdpSocket) -> Self {
        let gro = setsockopt(&sock, sockopt::UdpGroSegment, &true).is_ok();
        Self { sock, gso: AtomicBool::new(true), gro }
    }

    /// The socket, for plain sends (IKE messages).
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Whether sends still use segmentation offload.
    pub fn gso(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    /// Whether receives may return coalesced runs.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Tries GSO again after it was turned off: a send refused because its segments exceeded a
    /// path MTU that has since been accounted for (the kernel answers EINVAL for that too) is not a
    /// device that cannot segment. If it is one, the next GSO send turns it off again.
    pub fn retry_gso(&self) {
        self.gso.store(true, Ordering::Relaxed);
    }

    /// Sends `data`, datagrams of `segment` octets back to back (the last may be shorter), to `dest`:
    /// one system call with GSO, else one per datagram.
    pub fn send_segments(&self, dest: SocketAddr, data: &[u8], segment: usize) -> io::Result<()> {
        if segment == 0 || data.is_empty() {
            return Ok(());
        }
        if data.len() <= segment {
            return self.sock.send_to(data, dest).map(drop);
        }
        if self.gso()
            && let Ok(seg) = u16::try_from(segment)
        {
            let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
            let addr = SockaddrStorage::from(dest);
            match sendmsg(self.sock.as_raw_fd(), &[IoSlice::new(data)], &cmsg, MsgFlags::empty(), Some(&addr)) {
                Ok(_) => return Ok(()),
                // EIO: the route's device cannot checksum segments; EINVAL/ENOPROTOOPT: no GSO.
                Err(e @ (Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)) => {
                    tracing::info!(target: "io", "UDP GSO to {dest} refused ({e}): one datagram per send from now on");
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut result = Ok(());
        for d in data.chunks(segment) {
            if let Err(e) = self.sock.send_to(d, dest) {
                result = Err(e);
            }
        }
        result
    }

    /// Receives into `buf`, waiting when `wait` (up to the socket's read timeout).
    pub fn recv(&self, buf: &mut [u8], scratch: &mut RecvScratch, wait: bool) -> io::Result<Datagrams> {
        let flags = if wait { MsgFlags::empty() } else { MsgFlags::MSG_DONTWAIT };
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(self.sock.as_raw_fd(), &mut iov, Some(&mut scratch.0), flags)?;
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "datagram larger than the buffer"));
        }
        let len = msg.bytes;
        let mut stride = len;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(s) = c {
                    stride = usize::try_from(s).ok().filter(|s| *s > 0 && *s < len).unwrap_or(len);
                }
            }
        }
        let from = msg.address.as_ref().and_then(to_std).ok_or_else(|| io::Error::other("no source address"))?;
        Ok(Datagrams { len, stride, from })
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if a.len() == 0 {
        return None;
    }
    a.as_sockaddr_in().map(|v4| SocketAddr::from(*v4)).or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
}

/// Whether a send failed because the datagram exceeds the path MTU the kernel knows (EMSGSIZE).
pub fn is_too_big(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::EMSGSIZE as i32)
}

/// The path MTU the kernel knows from `local` to `remote`: the route's MTU, or the smaller one path
/// MTU discovery learned since from ICMP "fragmentation needed" or ICMPv6 "packet too big" for any
/// socket's datagrams to that peer (RFC 1191, RFC 8201: the kernel keeps it per destination). Read
/// with `IP_MTU` from a UDP socket connected to the peer; connecting sends nothing. (`IP_MTU` at the
/// IP level answers for IPv6 sockets too: it reads the socket's route, whatever its family.)
pub fn path_mtu(local: IpAddr, remote: SocketAddr) -> io::Result<u16> {
    let any: IpAddr = if remote.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let bind = if local.is_ipv4() == remote.is_ipv4() { local } else { any };
    let sock = UdpSocket::bind(SocketAddr::new(bind, 0))?;
    sock.connect(remote)?;
    let mtu = nix::sys::socket::getsockopt(&sock, sockopt::IpMtu)?;
    Ok(u16::try_from(mtu).unwrap_or(u16::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn pair() -> (UdpIo, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        (UdpIo::new(a), b)
    }

    #[test]
    fn the_path_mtu_is_the_route_s() {
        // Loopback's MTU is 65536: capped at what a u16 holds.
        let v4 = path_mtu("127.0.0.1".parse().unwrap(), "127.0.0.1:4500".parse().unwrap()).unwrap();
        assert_eq!(v4, u16::MAX);
        match path_mtu("::1".parse().unwrap(), "[::1]:4500".parse().unwrap()) {
            Ok(v6) => assert_eq!(v6, u16::MAX),
            Err(e) => eprintln!("no IPv6 loopback here: {e}"),
        }
    }

    #[test]
    fn segments_arrive_as_separate_datagrams() {
        let (a, b) = pair();
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        a.send_segments(b.local_addr().unwrap(), &data, 300).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2000];
        for _ in 0..4 {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(from, a.socket().local_addr().unwrap());
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [300, 300, 300, 100]);
        assert_eq!(got.concat(), data);
    }

    #[test]
    fn receive_reports_source_and_a_stride_that_tiles_the_run() {
        let (a, b) = pair();
        let rx = UdpIo::new(b);
        let dest = rx.socket().local_addr().unwrap();
        let data = vec![7u8; 5 * 200 + 50];
        a.send_segments(dest, &data, 200).unwrap();
        let (mut total, mut buf, mut scratch) = (0, vec![0u8; 65536], RecvScratch::default());
        while total < data.len() {
            let d = rx.recv(&mut buf, &mut scratch, true).unwrap();
            assert_eq!(d.from, a.socket().local_addr().unwrap());
            assert!(d.stride == 200 || (d.len == 50 && d.stride == 50), "{d:?}");
            total += d.len;
        }
        assert_eq!(total, data.len());
        // Nothing more: a non-waiting receive says so instead of blocking.
        let e = rx.recv(&mut buf, &mut scratch, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_datagram_larger_than_the_buffer_is_an_error_not_a_short_packet() {
        let (a, b) = pair();
        let rx = UdpIo::new(b);
        a.socket().send_to(&[1u8; 100], rx.socket().local_addr().unwrap()).unwrap();
        let mut small = [0u8; 10];
        let e = rx.recv(&mut small, &mut RecvScratch::default(), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
