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

/// Binds up to `n` UDP sockets to `addr` as one `SO_REUSEPORT` group: the kernel spreads what
/// arrives over them by a hash of the 4-tuple, so each peer's datagrams (and so each SA's, and
/// the IKE messages behind the non-ESP marker on the same port) always reach the same socket, in
/// order. Only sockets of the same user may join a group; the daemon binds its IKE port without
/// the option first, so a second instance still fails there. When the kernel refuses the option,
/// one socket bound as usual, with a log line; when a later bind fails, the ones bound so far.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    if n <= 1 {
        return UdpSocket::bind(addr).map(|s| vec![s]);
    }
    let mut all: Vec<UdpSocket> = Vec::with_capacity(n);
    for _ in 0..n {
        match reuseport_socket(addr) {
            Ok(s) => all.push(s),
            Err(e) if all.is_empty() && e.kind() != io::ErrorKind::AddrInUse => {
                tracing::info!(target: "io", "UDP {addr}: no SO_REUSEPORT ({e}); one socket, one receive worker");
                return UdpSocket::bind(addr).map(|s| vec![s]);
            }
            Err(e) if all.is_empty() => return Err(e),
            Err(e) => {
                tracing::info!(target: "io", "UDP {addr}: {} socket(s), not {n}: {e}", all.len());
                break;
            }
        }
    }
    Ok(all)
}

/// Makes socket 0 of a [`bind_reuseport`] group on the NAT-T port the one IKE arrives on, apart from
/// ESP: a classic BPF program picks the socket of each datagram (`SO_ATTACH_REUSEPORT_CBPF`). A
/// payload that starts with four zero octets (the non-ESP marker, RFC 3948 §2.2) or is shorter than
/// four (a NAT keepalive, §2.3) goes to socket 0, so IKE never queues behind a burst of ESP. ESP
/// goes to socket 1 + (SPI modulo the ESP sockets): all of one SA's packets (and so each inner
/// flow's, which one SA carries) to one socket and one worker, in the order they came, whatever
/// address the peer sends from (RFC 4555, NAT rebinding); and a peer's per-resource SAs (RFC 9611),
/// whose inbound SPIs the engine draws as their resource modulo the workers, each to its own
/// worker. UDP GRO coalesces datagrams of one 4-tuple, so a coalesced run goes where its first
/// datagram does, whole: a peer that sends one SA per run (as oxswan's workers do) keeps them
/// apart, and any mixing stays within the replay window. A group of one is left alone.
pub fn steer_ike_apart(group: &[UdpSocket]) -> io::Result<()> {
    let (Some(first), Ok(esp)) = (group.first(), u32::try_from(group.len().saturating_sub(1))) else {
        return Ok(());
    };
    if esp == 0 {
        return Ok(());
    }
    let mut prog = steering_program(esp);
    let fprog = nix::libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::other("BPF program too long"))?,
        filter: prog.as_mut_ptr(),
    };
    setsockopt(first, sockopt::AttachReusePortCbpf, &fprog)?;
    Ok(())
}

/// The socket [`steer_ike_apart`] gives ESP with `spi` among `esp` ESP sockets (1 to `esp`).
pub fn esp_socket_of(spi: u32, esp: u32) -> u32 {
    spi.checked_rem(esp).unwrap_or(0).saturating_add(1)
}

/// The program of [`steer_ike_apart`] for `esp` ESP sockets (1 to `esp` in the group), as
/// [`esp_socket_of`] computes it.
fn steering_program(esp: u32) -> Vec<nix::libc::sock_filter> {
    // Classic BPF (linux/filter.h). A reuseport program runs with the data at the UDP payload; a
    // load past its end ends the program with 0, so a keepalive's single octet picks socket 0.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const MOD_K: u16 = 0x94;
    const ADD_K: u16 = 0x04;
    const RET_A: u16 = 0x16;
    const RET_K: u16 = 0x06;
    let op = |code: u16, k: u32| nix::libc::sock_filter { code, jt: 0, jf: 0, k };
    // A = the first word (the SPI, in network order as loads are); zero: to the last instruction.
    let mut to_ike = op(JEQ_K, 0);
    to_ike.jt = 3;
    vec![op(LD_W_ABS, 0), to_ike, op(MOD_K, esp), op(ADD_K, 1), op(RET_A, 0), op(RET_K, 0)]
}

/// One socket of a [`bind_reuseport`] group.
fn reuseport_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, bind, socket};
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    if addr.is_ipv6() {
        // As std binds: an IPv6 socket takes IPv6 only, the IPv4 address has its own.
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(UdpSocket::from(fd))
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

/// Local addresses a [`PathMtuProbe`] keeps a socket for; past that it starts again, so addresses
/// that came and went (MOBIKE, DHCP) do not pile up.
const PROBE_SOCKETS: usize = 64;

/// [`path_mtu`] without a socket per question: one socket per local address, connected anew to each
/// destination (a UDP socket may be connected again, which only looks up the route). A profile of
/// 10,000 handshakes found the socket, bind and close of `path_mtu` at 6% of the IKE thread, once per
/// CHILD SA installed.
#[derive(Debug, Default)]
pub struct PathMtuProbe {
    sockets: std::sync::Mutex<std::collections::HashMap<IpAddr, UdpSocket>>,
}

impl PathMtuProbe {
    /// The path MTU from `local` to `remote`, as [`path_mtu`].
    pub fn path_mtu(&self, local: IpAddr, remote: SocketAddr) -> io::Result<u16> {
        let any: IpAddr = if remote.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        let bind = if local.is_ipv4() == remote.is_ipv4() { local } else { any };
        let mut sockets = self.sockets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A kept socket may have lost its address (it went away and came back): one fresh try.
        if let Some(sock) = sockets.get(&bind) {
            match sock.connect(remote).and_then(|()| Ok(nix::sys::socket::getsockopt(sock, sockopt::IpMtu)?)) {
                Ok(mtu) => return Ok(u16::try_from(mtu).unwrap_or(u16::MAX)),
                Err(_) => {
                    sockets.remove(&bind);
                }
            }
        }
        let sock = UdpSocket::bind(SocketAddr::new(bind, 0))?;
        sock.connect(remote)?;
        let mtu = nix::sys::socket::getsockopt(&sock, sockopt::IpMtu)?;
        if sockets.len() >= PROBE_SOCKETS {
            sockets.clear();
        }
        sockets.insert(bind, sock);
        Ok(u16::try_from(mtu).unwrap_or(u16::MAX))
    }
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
    fn a_probe_answers_as_a_fresh_socket_does() {
        let probe = PathMtuProbe::default();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        // Twice to each of two destinations: the kept socket is connected again each time.
        for remote in ["127.0.0.1:4500", "127.0.0.2:500", "127.0.0.1:4500", "127.0.0.2:500"] {
            let remote: SocketAddr = remote.parse().unwrap();
            assert_eq!(probe.path_mtu(lo, remote).unwrap(), path_mtu(lo, remote).unwrap());
        }
        assert_eq!(probe.sockets.lock().unwrap().len(), 1);
        // A local address this host does not have fails as path_mtu does, and keeps nothing.
        let other: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(probe.path_mtu(other, "127.0.0.1:4500".parse().unwrap()).is_err());
        assert_eq!(probe.sockets.lock().unwrap().len(), 1);
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
    fn a_reuseport_group_shares_one_port_and_each_sender_sticks_to_one_socket() {
        let group = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        // Port 0 gives each socket its own port; a group needs one port for all.
        let port = group[0].local_addr().unwrap().port();
        drop(group);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let group = bind_reuseport(addr, 3).unwrap();
        assert_eq!(group.len(), 3);
        for s in &group {
            assert_eq!(s.local_addr().unwrap(), addr);
            s.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        }
        // A socket outside the group cannot take the port.
        assert_eq!(UdpSocket::bind(addr).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        // Every sender's datagrams land on one socket of the group (the 4-tuple hash), all of them.
        let mut buf = [0u8; 16];
        for _ in 0..8 {
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..5u8 {
                tx.send_to(&[i], addr).unwrap();
            }
            let counts: Vec<usize> =
                group.iter().map(|s| std::iter::from_fn(|| s.recv_from(&mut buf).ok()).take(5).count()).collect();
            assert_eq!(counts.iter().sum::<usize>(), 5, "{counts:?}");
            assert_eq!(counts.iter().filter(|c| **c > 0).count(), 1, "{counts:?}");
        }
        // One socket asked for: bound as usual.
        drop(group);
        let one = bind_reuseport(addr, 1).unwrap();
        assert_eq!(one.len(), 1);
    }

    /// A group on a free port of `ip`, of `n` sockets, each with a short read timeout.
    fn group_on(ip: &str, n: usize) -> (SocketAddr, Vec<UdpSocket>) {
        let ip: IpAddr = ip.parse().unwrap();
        let port = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::new(ip, port);
        let group = bind_reuseport(addr, n).unwrap();
        for s in &group {
            s.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        }
        (addr, group)
    }

    /// How many datagrams each socket of `group` holds (reading them all).
    fn drain(group: &[UdpSocket]) -> Vec<usize> {
        let mut buf = [0u8; 64];
        group.iter().map(|s| std::iter::from_fn(|| s.recv_from(&mut buf).ok()).count()).collect()
    }

    fn steering(ip: &str) {
        let (addr, group) = group_on(ip, 4);
        steer_ike_apart(&group).unwrap();
        let mut used = std::collections::HashSet::new();
        for n in 0..16u32 {
            // Each SPI's ESP on the socket esp_socket_of names, from whichever sender; IKE behind
            // the non-ESP marker and a NAT keepalive on socket 0.
            let spi = 0x1234_5600 + n * 7;
            for _ in 0..2 {
                let tx = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).unwrap();
                for i in 0..3u8 {
                    let mut esp = spi.to_be_bytes().to_vec();
                    esp.extend([0, 0, 0, i + 1]);
                    tx.send_to(&esp, addr).unwrap();
                }
                tx.send_to(&[0, 0, 0, 0, 0xaa, 0xbb], addr).unwrap();
                tx.send_to(&[0xff], addr).unwrap();
            }
            let counts = drain(&group);
            assert_eq!(counts[0], 4, "IKE and the keepalives on socket 0: {counts:?}");
            let want = esp_socket_of(spi, 3) as usize;
            assert_eq!(counts[want], 6, "SPI {spi:#x}: both senders on socket {want}: {counts:?}");
            assert_eq!(counts.iter().sum::<usize>(), 10, "{counts:?}");
            used.insert(want);
        }
        assert_eq!(used.len(), 3, "16 SPIs over the three ESP sockets: {used:?}");
    }

    #[test]
    fn ike_arrives_apart_from_esp_and_each_spi_on_its_socket() {
        steering("127.0.0.1");
        // The daemon's IPv6 tests need ::1 too: a machine without it fails here rather than
        // leaving the IPv6 program untried.
        steering("::1");
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
