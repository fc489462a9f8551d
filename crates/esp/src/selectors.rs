//! The traffic selectors of an SA applied to inner packets (RFC 4301 §4.4.1, §5.2): an inbound packet
//! that decrypted fine but lies outside what the SA was negotiated for is dropped and counted.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use oxswan_wire::ts::TrafficSelector;

/// What the selectors look at in an inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (IPv6: the first header after the fixed one).
    pub protocol: u8,
    /// Source and destination port for TCP, UDP, SCTP and UDP-Lite in a first fragment; `None`
    /// otherwise (RFC 4301 §4.4.1.1: ports of non-initial fragments are OPAQUE).
    pub ports: Option<(u16, u16)>,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const UDPLITE: u8 = 136;

fn ports(protocol: u8, l4: Option<&[u8]>) -> Option<(u16, u16)> {
    if !matches!(protocol, TCP | UDP | SCTP | UDPLITE) {
        return None;
    }
    match l4? {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

impl PacketInfo {
    /// Reads an IPv4 or IPv6 packet's addresses, protocol and ports; `None` if it is neither or too
    /// short.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        match packet.first()? >> 4 {
            4 => {
                let h: &[u8; 20] = packet.get(..20)?.try_into().ok()?;
                let ihl = usize::from(h[0] & 0x0f) * 4;
                let protocol = h[9];
                let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
                let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
                let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
                let l4 = if frag_offset == 0 { packet.get(ihl..) } else { None };
                Some(Self { src: src.into(), dst: dst.into(), protocol, ports: ports(protocol, l4) })
            }
            6 => {
                let h: &[u8; 40] = packet.get(..40)?.try_into().ok()?;
                let src: [u8; 16] = h[8..24].try_into().ok()?;
                let dst: [u8; 16] = h[24..40].try_into().ok()?;
                // Extension headers are not walked: their protocol is what the selectors see, with
                // OPAQUE ports, which only an any-port selector admits.
                let protocol = h[6];
                Some(Self {
                    src: Ipv6Addr::from(src).into(),
                    dst: Ipv6Addr::from(dst).into(),
                    protocol,
                    ports: ports(protocol, packet.get(40..)),
                })
            }
            _ => None,
        }
    }
}

fn port_ok(ts: &TrafficSelector, port: Option<u16>) -> bool {
    let any = ts.start_port == 0 && ts.end_port == u16::MAX;
    match port {
        _ if any => true,
        None => ts.is_opaque_ports(),
        Some(p) => ts.start_port <= p && p <= ts.end_port,
    }
}

fn matches(ts: &TrafficSelector, addr: IpAddr, protocol: u8, port: Option<u16>) -> bool {
    ts.contains_addr(addr) && (ts.ip_protocol == 0 || ts.ip_protocol == protocol) && port_ok(ts, port)
}

/// The selectors of a CHILD SA, from our side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    /// Our side's selectors (TSi for the initiator).
    pub local: Vec<TrafficSelector>,
    /// The peer's side's selectors.
    pub remote: Vec<TrafficSelector>,
}

impl Selectors {
    /// Whether a packet arriving through the SA may be delivered: from the peer's side to ours.
    pub fn allows_inbound(&self, p: &PacketInfo) -> bool {
        let (sport, dport) = p.ports.map_or((None, None), |(s, d)| (Some(s), Some(d)));
        self.remote.iter().any(|t| matches(t, p.src, p.protocol, sport))
            && self.local.iter().any(|t| matches(t, p.dst, p.protocol, dport))
    }

    /// Whether a packet from our side may be sent through the SA.
    pub fn allows_outbound(&self, p: &PacketInfo) -> bool {
        let (sport, dport) = p.ports.map_or((None, None), |(s, d)| (Some(s), Some(d)));
        self.local.iter().any(|t| matches(t, p.src, p.protocol, sport))
            && self.remote.iter().any(|t| matches(t, p.dst, p.protocol, dport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str, proto: u8, ports: (u16, u16)) -> TrafficSelector {
        let (a, l) = s.split_once('/').unwrap();
        TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap(), proto, ports.0, ports.1).unwrap()
    }

    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p
    }

    #[test]
    fn parse_v4_v6() {
        let p = PacketInfo::parse(&v4([10, 1, 0, 1], [10, 2, 0, 1], 6, 40000, 443)).unwrap();
        assert_eq!(p.src, "10.1.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((p.protocol, p.ports), (6, Some((40000, 443))));
        let mut frag = v4([10, 1, 0, 1], [10, 2, 0, 1], 17, 1, 2);
        frag[7] = 8; // a non-initial fragment
        assert_eq!(PacketInfo::parse(&frag).unwrap().ports, None);
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0, 53, 0x30, 0x39, 0, 8, 0, 0]);
        let p = PacketInfo::parse(&v6).unwrap();
        assert_eq!((p.protocol, p.ports), (17, Some((53, 12345))));
        assert!(PacketInfo::parse(&[]).is_none());
        assert!(PacketInfo::parse(&[0x45, 0]).is_none());
        assert!(PacketInfo::parse(&[0x20; 40]).is_none());
    }

    #[test]
    fn inbound_and_outbound() {
        let s =
            Selectors { local: vec![ts("10.1.0.0/16", 0, (0, 65535))], remote: vec![ts("10.2.0.0/16", 6, (443, 443))] };
        let inbound = PacketInfo::parse(&v4([10, 2, 0, 1], [10, 1, 0, 1], 6, 443, 40000)).unwrap();
        assert!(s.allows_inbound(&inbound));
        assert!(!s.allows_outbound(&inbound));
        let outbound = PacketInfo::parse(&v4([10, 1, 0, 1], [10, 2, 0, 1], 6, 40000, 443)).unwrap();
        assert!(s.allows_outbound(&outbound));
        // Wrong port, protocol, address.
        assert!(!s.allows_inbound(&PacketInfo::parse(&v4([10, 2, 0, 1], [10, 1, 0, 1], 6, 80, 1)).unwrap()));
        assert!(!s.allows_inbound(&PacketInfo::parse(&v4([10, 2, 0, 1], [10, 1, 0, 1], 17, 443, 1)).unwrap()));
        assert!(!s.allows_inbound(&PacketInfo::parse(&v4([10, 3, 0, 1], [10, 1, 0, 1], 6, 443, 1)).unwrap()));
        assert!(!s.allows_inbound(&PacketInfo::parse(&v4([10, 2, 0, 1], [10, 9, 0, 1], 6, 443, 1)).unwrap()));
    }
}
