//! Traffic Selector payloads TSi and TSr (RFC 7296 §3.13).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::reader::{PutExt, Reader, len_u16};
use crate::types::{PayloadType, TsType};

const CTX: Context = Context::Part(PayloadType::TSI, "traffic selector");

/// TSi or TSr payload: the selectors in the sender's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsPayload {
    /// Traffic selectors.
    pub selectors: Vec<TrafficSelector>,
}

/// The address range of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TsAddrs {
    /// TS_IPV4_ADDR_RANGE.
    V4 {
        /// Starting Address.
        start: Ipv4Addr,
        /// Ending Address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    V6 {
        /// Starting Address.
        start: Ipv6Addr,
        /// Ending Address.
        end: Ipv6Addr,
    },
    /// A TS type this crate does not interpret, kept so it survives a round trip (RFC 7296 §3.13.1
    /// allows new types; a responder ignores selectors it does not understand).
    Unknown {
        /// TS Type.
        ts_type: TsType,
        /// Everything after the Selector Length field.
        data: Vec<u8>,
    },
}

/// One traffic selector (RFC 7296 §3.13.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP Protocol ID; 0 means any protocol. Ignored for unknown TS types.
    pub ip_protocol: u8,
    /// Start Port; 0 to 65535 means any port, 65535 to 0 means OPAQUE.
    pub start_port: u16,
    /// End Port.
    pub end_port: u16,
    /// The address range.
    pub addrs: TsAddrs,
}

impl TrafficSelector {
    /// Every IPv4 address, protocol and port.
    pub fn any_v4() -> Self {
        Self {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            addrs: TsAddrs::V4 { start: Ipv4Addr::UNSPECIFIED, end: Ipv4Addr::BROADCAST },
        }
    }

    /// Every IPv6 address, protocol and port.
    pub fn any_v6() -> Self {
        Self {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            addrs: TsAddrs::V6 { start: Ipv6Addr::UNSPECIFIED, end: Ipv6Addr::from(u128::MAX) },
        }
    }

    /// The range covered by `addr/prefix_len`, or `None` if the prefix is longer than the address.
    pub fn from_prefix(addr: IpAddr, prefix_len: u8, ip_protocol: u8, start_port: u16, end_port: u16) -> Option<Self> {
        let addrs = match addr {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
                if prefix_len > 32 {
                    return None;
                }
                let a = u32::from(a);
                TsAddrs::V4 { start: Ipv4Addr::from(a & !host), end: Ipv4Addr::from(a | host) }
            }
            IpAddr::V6(a) => {
                let host = u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
                if prefix_len > 128 {
                    return None;
                }
                let a = u128::from(a);
                TsAddrs::V6 { start: Ipv6Addr::from(a & !host), end: Ipv6Addr::from(a | host) }
            }
        };
        Some(Self { ip_protocol, start_port, end_port, addrs })
    }

    /// The TS Type on the wire.
    pub fn ts_type(&self) -> TsType {
        match &self.addrs {
            TsAddrs::V4 { .. } => TsType::TS_IPV4_ADDR_RANGE,
            TsAddrs::V6 { .. } => TsType::TS_IPV6_ADDR_RANGE,
            TsAddrs::Unknown { ts_type, .. } => *ts_type,
        }
    }

    /// Whether the ports are OPAQUE: start 65535, end 0 (RFC 7296 §3.13.1, for fragments whose ports
    /// are not visible).
    pub fn is_opaque_ports(&self) -> bool {
        self.start_port == u16::MAX && self.end_port == 0
    }

    /// Whether `addr` lies in the address range.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match (&self.addrs, addr) {
            (TsAddrs::V4 { start, end }, IpAddr::V4(a)) => *start <= a && a <= *end,
            (TsAddrs::V6 { start, end }, IpAddr::V6(a)) => *start <= a && a <= *end,
            _ => false,
        }
    }

    /// The selector covering what both cover, if anything: same family, protocols equal or one of them
    /// 0 (any), overlapping ports and addresses. The narrowing of RFC 7296 §2.9 picks from these.
    /// OPAQUE and unknown selectors do not intersect with anything here.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let ip_protocol = match (self.ip_protocol, other.ip_protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        if self.is_opaque_ports() || other.is_opaque_ports() {
            return None;
        }
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        if start_port > end_port {
            return None;
        }
        let addrs = match (&self.addrs, &other.addrs) {
            (TsAddrs::V4 { start: s1, end: e1 }, TsAddrs::V4 { start: s2, end: e2 }) => {
                let (start, end) = ((*s1).max(*s2), (*e1).min(*e2));
                if start > end {
                    return None;
                }
                TsAddrs::V4 { start, end }
            }
            (TsAddrs::V6 { start: s1, end: e1 }, TsAddrs::V6 { start: s2, end: e2 }) => {
                let (start, end) = ((*s1).max(*s2), (*e1).min(*e2));
                if start > end {
                    return None;
                }
                TsAddrs::V6 { start, end }
            }
            _ => return None,
        };
        Some(Self { ip_protocol, start_port, end_port, addrs })
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let offset = r.offset();
        let mut hdr = r.clone().context(CTX);
        let ts_type = TsType(hdr.u8()?);
        let ip_protocol = hdr.u8()?;
        let length = usize::from(hdr.u16()?);
        let expected = match ts_type {
            TsType::TS_IPV4_ADDR_RANGE => Some(16),
            TsType::TS_IPV6_ADDR_RANGE => Some(40),
            _ => None,
        };
        if expected.is_some_and(|e| e != length) || length < 4 {
            return Err(Error::new(
                CTX,
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "Selector Length is wrong for the TS type" },
            ));
        }
        // The whole selector, header included, must lie inside the payload.
        let mut body = r.sub(length).map_err(|_| {
            Error::new(CTX, offset.saturating_add(2), ErrorKind::BadLength { length, reason: "runs past the payload" })
        })?;
        body = body.context(CTX);
        body.take(4)?;
        let sel = match ts_type {
            TsType::TS_IPV4_ADDR_RANGE | TsType::TS_IPV6_ADDR_RANGE => {
                let start_port = body.u16()?;
                let end_port = body.u16()?;
                let addrs = if ts_type == TsType::TS_IPV4_ADDR_RANGE {
                    TsAddrs::V4 { start: Ipv4Addr::from(body.array::<4>()?), end: Ipv4Addr::from(body.array::<4>()?) }
                } else {
                    TsAddrs::V6 { start: Ipv6Addr::from(body.array::<16>()?), end: Ipv6Addr::from(body.array::<16>()?) }
                };
                Self { ip_protocol, start_port, end_port, addrs }
            }
            _ => Self {
                ip_protocol,
                start_port: 0,
                end_port: 0,
                addrs: TsAddrs::Unknown { ts_type, data: body.rest().to_vec() },
            },
        };
        body.finish()?;
        Ok(sel)
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u8(self.ts_type().0);
        out.put_u8(self.ip_protocol);
        match &self.addrs {
            TsAddrs::V4 { start, end } => {
                out.put_u16(16);
                out.put_u16(self.start_port);
                out.put_u16(self.end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TsAddrs::V6 { start, end } => {
                out.put_u16(40);
                out.put_u16(self.start_port);
                out.put_u16(self.end_port);
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TsAddrs::Unknown { data, .. } => {
                out.put_u16(len_u16(data.len().saturating_add(4), CTX, "traffic selector")?);
                out.extend_from_slice(data);
            }
        }
        Ok(())
    }
}

impl core::fmt::Display for TrafficSelector {
    /// strongSwan's notation: `10.1.0.0/24`, or `10.1.0.1..10.1.0.9`, with `[proto/port]` when not any.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        fn prefix(start: u128, end: u128, bits: u32) -> Option<u32> {
            let host = start ^ end;
            let len = bits.checked_sub(128u32.saturating_sub(host.leading_zeros()))?;
            (host.count_ones() == bits.saturating_sub(len) && start & host == 0).then_some(len)
        }
        match &self.addrs {
            TsAddrs::V4 { start, end } => match prefix(u32::from(*start).into(), u32::from(*end).into(), 32) {
                Some(len) => write!(f, "{start}/{len}")?,
                None => write!(f, "{start}..{end}")?,
            },
            TsAddrs::V6 { start, end } => match prefix(u128::from(*start), u128::from(*end), 128) {
                Some(len) => write!(f, "{start}/{len}")?,
                None => write!(f, "{start}..{end}")?,
            },
            TsAddrs::Unknown { ts_type, data } => return write!(f, "{ts_type}({} octets)", data.len()),
        }
        let any_ports = self.start_port == 0 && self.end_port == u16::MAX;
        match (self.ip_protocol, any_ports) {
            (0, true) => Ok(()),
            (p, true) => write!(f, "[{p}]"),
            (p, false) if self.start_port == self.end_port => write!(f, "[{p}/{}]", self.start_port),
            (p, false) => write!(f, "[{p}/{}-{}]", self.start_port, self.end_port),
        }
    }
}

impl TsPayload {
    /// Parses the body: Number of TSs, 3 reserved octets, then exactly that many selectors.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let count = usize::from(r.u8()?);
        r.take(3)?;
        let mut selectors = Vec::with_capacity(count);
        for _ in 0..count {
            selectors.push(TrafficSelector::parse(&mut r)?);
        }
        r.finish()?;
        Ok(Self { selectors })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let count = u8::try_from(self.selectors.len()).map_err(|_| {
            Error::new(CTX, out.len(), ErrorKind::TooLong { field: "selector list", length: self.selectors.len() })
        })?;
        out.put_u8(count);
        out.extend_from_slice(&[0; 3]);
        for s in &self.selectors {
            s.emit(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Payloads};

    fn one(hex_chain: &str) -> Result<Payload> {
        let bytes = hex::decode(hex_chain).unwrap();
        let raw = Payloads::new(PayloadType::TSI, &bytes, 0).next().unwrap()?;
        Payload::parse(&raw)
    }

    fn round_trip(hex_chain: &str) -> TsPayload {
        let p = one(hex_chain).unwrap();
        let mut out = Vec::new();
        p.emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(hex::encode(&out), hex_chain);
        match p {
            Payload::TsI(ts) => ts,
            other => panic!("{other:?}"),
        }
    }

    /// 10.1.0.1/32 any protocol and port, as strongSwan sends it.
    const V4_HOST: &str = concat!("00000018", "01000000", "07000010", "0000ffff", "0a010001", "0a010001");

    #[test]
    fn ipv4_selector() {
        let ts = round_trip(V4_HOST);
        let s = &ts.selectors[0];
        assert_eq!(s, &TrafficSelector::from_prefix("10.1.0.1".parse().unwrap(), 32, 0, 0, 65535).unwrap());
        assert_eq!(s.to_string(), "10.1.0.1/32");
        assert!(s.contains_addr("10.1.0.1".parse().unwrap()));
        assert!(!s.contains_addr("10.1.0.2".parse().unwrap()));
        assert!(!s.contains_addr("::1".parse().unwrap()));
    }

    #[test]
    fn ipv6_and_unknown_selectors_round_trip() {
        // Two selectors: TCP port 443 on 2001:db8::/32, and an unknown type 200 with 2 data octets.
        let v6 =
            concat!("08060028", "01bb01bb", "20010db8000000000000000000000000", "20010db8ffffffffffffffffffffffff");
        let hex = format!("00000036{}{}{}", "02000000", v6, "c8000006abcd");
        let ts = round_trip(&hex);
        assert_eq!(ts.selectors[0].to_string(), "2001:db8::/32[6/443]");
        assert_eq!(ts.selectors[1].ts_type(), TsType(200));
        assert_eq!(ts.selectors[1].addrs, TsAddrs::Unknown { ts_type: TsType(200), data: vec![0xab, 0xcd] });
    }

    #[test]
    fn bad_selectors() {
        // Selector Length 15 for IPv4.
        let e = one(&V4_HOST.replacen("07000010", "0700000f", 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 15, .. }));
        // Count says 2, one present.
        let e = one(&V4_HOST.replacen("01000000", "02000000", 1)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
        // Count says 0, one present: trailing bytes.
        let e = one(&V4_HOST.replacen("01000000", "00000000", 1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TrailingBytes(16));
        // An IPv6 type with an IPv4 length.
        assert!(one(&V4_HOST.replacen("07000010", "08000010", 1)).is_err());
        // Unknown type whose length runs past the payload.
        assert!(one("0000000c01000000c8000010").is_err());
        // Truncated payload header.
        assert!(one("0000000601ff").is_err());
    }

    #[test]
    fn opaque_ports_parse_and_do_not_intersect() {
        let ts = round_trip(&V4_HOST.replacen("0000ffff", "ffff0000", 1));
        assert!(ts.selectors[0].is_opaque_ports());
        assert_eq!(ts.selectors[0].intersect(&TrafficSelector::any_v4()), None);
    }

    #[test]
    fn intersections() {
        let net =
            |s: &str, len, proto, sp, ep| TrafficSelector::from_prefix(s.parse().unwrap(), len, proto, sp, ep).unwrap();
        // Any ∩ 10.1.0.0/16 = 10.1.0.0/16.
        let a = net("10.1.0.0", 16, 0, 0, 65535);
        assert_eq!(TrafficSelector::any_v4().intersect(&a), Some(a.clone()));
        // 10.1.0.0/16 ∩ 10.1.2.0/24 (TCP 80-90) = the /24 with TCP 80-90.
        let b = net("10.1.2.0", 24, 6, 80, 90);
        assert_eq!(a.intersect(&b), Some(b.clone()));
        assert_eq!(b.intersect(&a), Some(b.clone()));
        // Overlapping ranges that are not prefixes.
        let c = TrafficSelector {
            addrs: TsAddrs::V4 { start: "10.1.2.128".parse().unwrap(), end: "10.1.3.5".parse().unwrap() },
            ..TrafficSelector::any_v4()
        };
        let i = b.intersect(&c).unwrap();
        assert_eq!(i.to_string(), "10.1.2.128/25[6/80-90]");
        // Different protocols, disjoint ports, disjoint addresses, different families: nothing.
        assert_eq!(b.intersect(&net("10.1.2.0", 24, 17, 0, 65535)), None);
        assert_eq!(b.intersect(&net("10.1.2.0", 24, 6, 91, 100)), None);
        assert_eq!(a.intersect(&net("10.2.0.0", 16, 0, 0, 65535)), None);
        assert_eq!(a.intersect(&TrafficSelector::any_v6()), None);
        // Prefix helpers.
        assert!(TrafficSelector::from_prefix("10.0.0.0".parse().unwrap(), 33, 0, 0, 0).is_none());
        assert_eq!(net("10.9.9.9", 0, 0, 0, 65535), TrafficSelector::any_v4());
        assert_eq!(
            TrafficSelector::from_prefix("::".parse().unwrap(), 0, 0, 0, 65535),
            Some(TrafficSelector::any_v6())
        );
        assert_eq!(net("192.0.2.7", 31, 0, 0, 65535).to_string(), "192.0.2.6/31");
        let range = TrafficSelector {
            addrs: TsAddrs::V4 { start: "10.0.0.1".parse().unwrap(), end: "10.0.0.9".parse().unwrap() },
            ..TrafficSelector::any_v4()
        };
        assert_eq!(range.to_string(), "10.0.0.1..10.0.0.9");
    }
}
