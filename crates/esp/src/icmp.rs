//! ICMP "fragmentation needed" (RFC 792, RFC 1191) and ICMPv6 "packet too big" (RFC 4443 §3.2) for
//! inner packets too big for the tunnel (issue 14), so that the sender's path MTU discovery
//! (RFC 1191, RFC 8201) learns what fits instead of its packets vanishing. Pure: the data plane
//! decides when a packet is too big, where the error goes (back on the TUN device) and how often.
//!
//! The rules of when not to answer are those of RFC 1122 §3.2.2, RFC 1812 §4.3.2.7 and
//! RFC 4443 §2.4 (e): never about an ICMP error, never about a non-first fragment, never to a source
//! that does not name one host.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest error [`too_big`] writes: an IPv6 packet of the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
pub const MAX_ERROR_LEN: usize = IPV6_MIN_MTU;

/// RFC 1812 §4.3.2.3: an ICMPv4 error quotes as much of the packet as fits in 576 octets.
const IPV4_ERROR_LEN: usize = 576;
/// RFC 8200 §5: every IPv6 link carries 1280 octets; RFC 4443 §2.4 (c): an error fits in it.
const IPV6_MIN_MTU: usize = 1280;
/// RFC 791: every IPv4 module forwards a 68-octet datagram without fragmenting it.
const IPV4_MIN_MTU: u16 = 68;

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
/// Destination unreachable, code 4: fragmentation needed and DF set (RFC 792, RFC 1191 §4).
const DEST_UNREACH: u8 = 3;
const FRAG_NEEDED: u8 = 4;
/// Packet too big (RFC 4443 §3.2).
const PACKET_TOO_BIG: u8 = 2;
/// The IPv4 Don't Fragment flag, in the flags-and-offset word.
const DF: u16 = 0x4000;
/// Internetwork control precedence (RFC 1812 §4.3.2.5, and what Linux sends errors with).
const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;
const TTL: u8 = 64;

/// Writes into `out` the ICMP error that tells the sender of the IPv4 or IPv6 `packet` it exceeds
/// `mtu`, the largest inner packet the tunnel carries; returns the error's length, or `None` when no
/// error is due:
/// - the packet fits (IPv4 never below 68 octets, RFC 791; IPv6 never below 1280, RFC 8200 §5: a
///   tunnel narrower than that must fragment below IPv6, so the caller forwards such packets);
/// - IPv4 without Don't Fragment (RFC 1191 §1: the router fragments; here the outer layer does);
/// - a non-first fragment, an ICMP error, a source that is not one host's unicast address, an IPv4
///   broadcast or multicast destination (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4 (e));
/// - a truncated or malformed header; `out` shorter than [`MAX_ERROR_LEN`]; or `source` has no
///   address of the packet's family to send from.
///
/// `source(sender, destination)` picks the error's source address once an error is due (so the
/// common case pays nothing for it).
pub fn too_big(
    packet: &[u8],
    mtu: u16,
    source: impl FnOnce(IpAddr, IpAddr) -> Option<IpAddr>,
    out: &mut [u8],
) -> Option<usize> {
    if out.len() < MAX_ERROR_LEN {
        return None;
    }
    match packet.first()? >> 4 {
        4 => v4(packet, mtu.max(IPV4_MIN_MTU), source, out),
        6 => v6(packet, mtu.max(IPV6_MIN_MTU as u16), source, out),
        _ => None,
    }
}

fn v4(p: &[u8], mtu: u16, source: impl FnOnce(IpAddr, IpAddr) -> Option<IpAddr>, out: &mut [u8]) -> Option<usize> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl || p.len() <= usize::from(mtu) {
        return None;
    }
    let flags = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]);
    // RFC 1191 §1: only a datagram that may not be fragmented gets the error. RFC 1812 §4.3.2.7:
    // none about a fragment other than the first.
    if flags & DF == 0 || flags & 0x1fff != 0 {
        return None;
    }
    if *p.get(9)? == ICMP && !icmp_informational(*p.get(ihl)?, false) {
        return None;
    }
    let sender = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(12..16)?).ok()?);
    let dest = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(16..20)?).ok()?);
    if !v4_one_host(sender) || dest.is_broadcast() || dest.is_multicast() {
        return None;
    }
    let IpAddr::V4(src) = source(IpAddr::V4(sender), IpAddr::V4(dest))? else { return None };
    let quoted = p.len().min(IPV4_ERROR_LEN - 28);
    let total = 28 + quoted;
    let o = out.get_mut(..total)?;
    let total16 = u16::try_from(total).ok()?.to_be_bytes();
    o.get_mut(..20)?.copy_from_slice(&[
        0x45,
        TOS_INTERNETWORK_CONTROL,
        total16[0],
        total16[1],
        0,
        0,
        0,
        0,
        TTL,
        ICMP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    o.get_mut(12..16)?.copy_from_slice(&src.octets());
    o.get_mut(16..20)?.copy_from_slice(&sender.octets());
    let sum = checksum(0, o.get(..20)?).to_be_bytes();
    o.get_mut(10..12)?.copy_from_slice(&sum);
    // RFC 1191 §4: type 3 code 4, unused 16 bits, then the next-hop MTU in the low 16 bits.
    let m = mtu.to_be_bytes();
    o.get_mut(20..28)?.copy_from_slice(&[DEST_UNREACH, FRAG_NEEDED, 0, 0, 0, 0, m[0], m[1]]);
    o.get_mut(28..)?.copy_from_slice(p.get(..quoted)?);
    let sum = checksum(0, o.get(20..)?).to_be_bytes();
    o.get_mut(22..24)?.copy_from_slice(&sum);
    Some(total)
}

/// Whether an IPv4 source names one host: not 0.0.0.0/8, broadcast, multicast, class E or loopback.
fn v4_one_host(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    first != 0 && first != 127 && first < 224
}

fn v6(p: &[u8], mtu: u16, source: impl FnOnce(IpAddr, IpAddr) -> Option<IpAddr>, out: &mut [u8]) -> Option<usize> {
    if p.len() < 40 || p.len() <= usize::from(mtu) {
        return None;
    }
    if !v6_error_allowed(p)? {
        return None;
    }
    let sender = Ipv6Addr::from(<[u8; 16]>::try_from(p.get(8..24)?).ok()?);
    let dest = Ipv6Addr::from(<[u8; 16]>::try_from(p.get(24..40)?).ok()?);
    // RFC 4443 §2.4 (e.4): not to a source that does not identify one node. (e.3: Packet Too Big
    // is the exception that is sent even for a multicast destination.)
    if sender.is_unspecified() || sender.is_multicast() || sender.is_loopback() {
        return None;
    }
    let IpAddr::V6(src) = source(IpAddr::V6(sender), IpAddr::V6(dest))? else { return None };
    // RFC 4443 §3.2: as much of the invoking packet as fits without exceeding the minimum MTU.
    let quoted = p.len().min(IPV6_MIN_MTU - 48);
    let icmp_len = 8 + quoted;
    let total = 40 + icmp_len;
    let o = out.get_mut(..total)?;
    let plen = u16::try_from(icmp_len).ok()?.to_be_bytes();
    o.get_mut(..8)?.copy_from_slice(&[0x60, 0, 0, 0, plen[0], plen[1], ICMPV6, TTL]);
    o.get_mut(8..24)?.copy_from_slice(&src.octets());
    o.get_mut(24..40)?.copy_from_slice(&sender.octets());
    let m = u32::from(mtu).to_be_bytes();
    o.get_mut(40..48)?.copy_from_slice(&[PACKET_TOO_BIG, 0, 0, 0, m[0], m[1], m[2], m[3]]);
    o.get_mut(48..)?.copy_from_slice(p.get(..quoted)?);
    // RFC 4443 §2.3: the checksum covers the pseudo-header of RFC 8200 §8.1.
    let mut pseudo = [0u8; 40];
    pseudo.get_mut(..16)?.copy_from_slice(&src.octets());
    pseudo.get_mut(16..32)?.copy_from_slice(&sender.octets());
    pseudo.get_mut(32..36)?.copy_from_slice(&u32::try_from(icmp_len).ok()?.to_be_bytes());
    *pseudo.get_mut(39)? = ICMPV6;
    let sum = checksum(sum_words(0, &pseudo), o.get(40..)?).to_be_bytes();
    o.get_mut(42..44)?.copy_from_slice(&sum);
    Some(total)
}

/// Walks the IPv6 extension headers (RFC 8200 §4) to the upper layer: `Some(false)` for a
/// non-first fragment or an ICMPv6 error, `None` for a truncated chain.
fn v6_error_allowed(p: &[u8]) -> Option<bool> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const DEST_OPTS: u8 = 60;
    let mut next = *p.get(6)?;
    let mut at = 40usize;
    // A chain longer than this is not one a host sends; stop rather than loop on hostile input.
    for _ in 0..8 {
        match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                next = *p.get(at)?;
                at = at.checked_add((usize::from(*p.get(at + 1)?) + 1) * 8)?;
            }
            FRAGMENT => {
                let offset = u16::from_be_bytes([*p.get(at + 2)?, *p.get(at + 3)?]) & 0xfff8;
                if offset != 0 {
                    return Some(false);
                }
                next = *p.get(at)?;
                at = at.checked_add(8)?;
            }
            ICMPV6 => return Some(icmp_informational(*p.get(at)?, true)),
            _ => return Some(true),
        }
    }
    Some(true)
}

/// Whether an ICMP type is not an error: ICMPv6 errors are types 0–127 (RFC 4443 §2.1); the ICMPv4
/// errors are destination unreachable, source quench, redirect, time exceeded and parameter
/// problem (RFC 1122 §3.2.2).
fn icmp_informational(kind: u8, v6: bool) -> bool {
    if v6 { kind >= 128 } else { !matches!(kind, 3 | 4 | 5 | 11 | 12) }
}

/// RFC 1071: the one's complement sum of 16-bit words, `initial` carried in.
fn sum_words(initial: u32, data: &[u8]) -> u32 {
    let mut sum = initial;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [a, b] = w {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([*a, *b])));
        }
    }
    if let [last] = words.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The Internet checksum (RFC 1071) of `data` with `initial` (a pseudo-header's sum) carried in.
fn checksum(initial: u32, data: &[u8]) -> u16 {
    !(sum_words(initial, data) as u16)
}

/// The Internet checksum (RFC 1071) of `data`: an IPv4 header's, or an ICMPv4 message's. Over
/// data whose checksum field is right it is zero.
pub fn internet_checksum(data: &[u8]) -> u16 {
    checksum(0, data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use proptest::prelude::*;

    use super::*;

    /// The Internet checksum, written out independently: every word summed in a u64, folded once.
    fn reference_sum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut total: u64 = 0;
        for i in (0..bytes.len()).step_by(2) {
            let hi = u64::from(bytes[i]);
            let lo = u64::from(*bytes.get(i + 1).unwrap_or(&0));
            total += (hi << 8) | lo;
        }
        while total >> 16 != 0 {
            total = (total & 0xffff) + (total >> 16);
        }
        !(total as u16)
    }

    fn v4_packet(len: usize, df: bool, proto: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        if df {
            p[6] = 0x40;
        }
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        for (i, b) in p.iter_mut().enumerate().skip(20) {
            *b = i as u8;
        }
        if proto == ICMP {
            p[20] = 8; // echo request
        }
        p
    }

    fn v6_packet(len: usize, next: u8, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&u16::try_from(len - 40).unwrap().to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        for (i, b) in p.iter_mut().enumerate().skip(40) {
            *b = i as u8;
        }
        if next == ICMPV6 {
            p[40] = 128; // echo request
        }
        p
    }

    const SENDER: [u8; 4] = [10, 1, 0, 1];
    const DEST: [u8; 4] = [10, 2, 0, 1];

    fn from_dest(_: IpAddr, dest: IpAddr) -> Option<IpAddr> {
        Some(dest)
    }

    fn v4_error(p: &[u8], mtu: u16) -> Option<Vec<u8>> {
        let mut out = [0u8; MAX_ERROR_LEN];
        too_big(p, mtu, from_dest, &mut out).map(|n| out[..n].to_vec())
    }

    #[test]
    fn fragmentation_needed_for_a_df_packet() {
        let p = v4_packet(1400, true, 6, SENDER, DEST);
        let e = v4_error(&p, 1218).unwrap();
        // 576 octets: header, ICMP header, and 548 octets of the packet (RFC 1812 §4.3.2.3).
        assert_eq!(e.len(), 576);
        assert_eq!(&e[..4], &[0x45, 0xc0, 0x02, 0x40]);
        assert_eq!(e[9], ICMP);
        assert_eq!(&e[12..16], &DEST, "from the address the sender tried to reach");
        assert_eq!(&e[16..20], &SENDER, "to the sender");
        assert_eq!(reference_sum(&[&e[..20]]), 0, "IP header checksum");
        assert_eq!(&e[20..24], &[3, 4, e[22], e[23]]);
        assert_eq!(u16::from_be_bytes([e[26], e[27]]), 1218, "next-hop MTU (RFC 1191 §4)");
        assert_eq!(&e[24..26], &[0, 0]);
        assert_eq!(&e[28..], &p[..548], "the original header and as much data as fits");
        // Recomputed from scratch over the ICMP message with its checksum zeroed.
        let mut icmp = e[20..].to_vec();
        let sent = u16::from_be_bytes([icmp[2], icmp[3]]);
        icmp[2] = 0;
        icmp[3] = 0;
        assert_eq!(sent, reference_sum(&[&icmp]));
        // A short packet is quoted whole (RFC 792: at least the header and 64 bits).
        let small = v4_packet(100, true, 17, SENDER, DEST);
        let e = v4_error(&small, 80).unwrap();
        assert_eq!((e.len(), &e[28..]), (128, &small[..]));
        assert_eq!(reference_sum(&[&e[20..]]), 0);
    }

    #[test]
    fn no_error_where_the_rfcs_forbid_one() {
        assert!(v4_error(&v4_packet(1400, true, 6, SENDER, DEST), 1400).is_none(), "fits");
        assert!(v4_error(&v4_packet(1400, false, 6, SENDER, DEST), 1218).is_none(), "no DF: fragment");
        let mut frag = v4_packet(1400, true, 6, SENDER, DEST);
        frag[7] = 0x10;
        assert!(v4_error(&frag, 1218).is_none(), "a non-first fragment");
        let mut first = v4_packet(1400, true, 6, SENDER, DEST);
        first[6] = 0x60; // DF and MF, offset 0: a first fragment gets its error
        assert!(v4_error(&first, 1218).is_some());
        let mut err = v4_packet(1400, true, ICMP, SENDER, DEST);
        err[20] = 3;
        assert!(v4_error(&err, 1218).is_none(), "an ICMP error");
        assert!(v4_error(&v4_packet(1400, true, ICMP, SENDER, DEST), 1218).is_some(), "an echo request");
        assert!(v4_error(&v4_packet(1400, true, 6, [0, 0, 0, 0], DEST), 1218).is_none(), "unspecified source");
        assert!(v4_error(&v4_packet(1400, true, 6, [224, 0, 0, 1], DEST), 1218).is_none(), "multicast source");
        assert!(v4_error(&v4_packet(1400, true, 17, SENDER, [239, 1, 1, 1]), 1218).is_none(), "multicast dest");
        assert!(v4_error(&v4_packet(1400, true, 17, SENDER, [255; 4]), 1218).is_none(), "broadcast dest");
        // Below the IPv4 minimum the tunnel fragments (RFC 791: 68).
        assert_eq!(
            u16::from_be_bytes({
                let e = v4_error(&v4_packet(100, true, 6, SENDER, DEST), 20).unwrap();
                [e[26], e[27]]
            }),
            68
        );
        let p = v4_packet(1400, true, 6, SENDER, DEST);
        let mut out = [0u8; MAX_ERROR_LEN];
        assert!(too_big(&p, 1218, |_, _| None, &mut out).is_none(), "no source address");
        let v6 = |_: IpAddr, _: IpAddr| Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(too_big(&p, 1218, v6, &mut out).is_none(), "a source of the other family");
        assert!(too_big(&p, 1218, from_dest, &mut [0u8; 600]).is_none(), "out too short");
    }

    const S6: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 1);
    const D6: Ipv6Addr = Ipv6Addr::new(0xfd02, 0, 0, 0, 0, 0, 0, 1);
    const OURS6: Ipv6Addr = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 0xfe);

    fn v6_error(p: &[u8], mtu: u16) -> Option<Vec<u8>> {
        let mut out = [0u8; MAX_ERROR_LEN];
        let mut asked = None;
        let n = too_big(
            p,
            mtu,
            |s, d| {
                asked = Some((s, d));
                Some(IpAddr::V6(OURS6))
            },
            &mut out,
        )?;
        assert_eq!(asked, Some((IpAddr::V6(S6), IpAddr::V6(D6))), "asked with the sender and the destination");
        Some(out[..n].to_vec())
    }

    #[test]
    fn the_internet_checksum_is_rfc_1071s() {
        // RFC 1071 §3's example: the words 0001 f203 f4f5 f6f7 sum to ddf2, whose complement is 220d.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
        // An odd octet counts as the high half of a last word.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2]), !0xf201);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn packet_too_big_with_its_pseudo_header_checksum() {
        let p = v6_packet(1400, 6, S6, D6);
        let e = v6_error(&p, 1300).unwrap();
        assert_eq!(e.len(), 1280, "as much as fits the minimum MTU (RFC 4443 §3.2)");
        assert_eq!(e[0] >> 4, 6);
        assert_eq!(usize::from(u16::from_be_bytes([e[4], e[5]])), 1240);
        assert_eq!(e[6], ICMPV6);
        assert_eq!(&e[8..24], &OURS6.octets(), "from an address of ours (RFC 4443 §2.2)");
        assert_eq!(&e[24..40], &S6.octets());
        assert_eq!((e[40], e[41]), (2, 0));
        assert_eq!(u32::from_be_bytes([e[44], e[45], e[46], e[47]]), 1300);
        assert_eq!(&e[48..], &p[..1232]);
        // The checksum recomputed over the pseudo-header (RFC 8200 §8.1) and the message.
        let mut icmp = e[40..].to_vec();
        let sent = u16::from_be_bytes([icmp[2], icmp[3]]);
        icmp[2] = 0;
        icmp[3] = 0;
        let len = u32::try_from(icmp.len()).unwrap().to_be_bytes();
        assert_eq!(sent, reference_sum(&[&OURS6.octets(), &S6.octets(), &len, &[0, 0, 0, ICMPV6], &icmp]));
        // An error for a packet to a multicast group is allowed (RFC 4443 §2.4 (e.3)).
        let mc = v6_packet(1400, 17, S6, "ff0e::1".parse().unwrap());
        let mut out = [0u8; MAX_ERROR_LEN];
        assert!(too_big(&mc, 1300, |_, _| Some(IpAddr::V6(OURS6)), &mut out).is_some());
    }

    #[test]
    fn ipv6_rules() {
        // Below 1280 the tunnel fragments underneath (RFC 8200 §5): a 1280 packet passes, a larger
        // one hears of 1280.
        assert!(v6_error(&v6_packet(1280, 6, S6, D6), 1218).is_none());
        let e = v6_error(&v6_packet(1400, 6, S6, D6), 1218).unwrap();
        assert_eq!(u32::from_be_bytes([e[44], e[45], e[46], e[47]]), 1280);
        // An ICMPv6 error is never answered; an echo request is.
        let mut err = v6_packet(1400, ICMPV6, S6, D6);
        err[40] = 1;
        assert!(v6_error(&err, 1300).is_none());
        assert!(v6_error(&v6_packet(1400, ICMPV6, S6, D6), 1300).is_some());
        // Behind extension headers: hop-by-hop (8 octets), then an ICMPv6 error.
        let mut hbh = v6_packet(1400, 0, S6, D6);
        hbh[40] = ICMPV6;
        hbh[41] = 0;
        hbh[48] = 1;
        assert!(v6_error(&hbh, 1300).is_none());
        hbh[48] = 129;
        assert!(v6_error(&hbh, 1300).is_some());
        // A fragment header: the first fragment gets the error, the others do not.
        let mut frag = v6_packet(1400, 44, S6, D6);
        frag[40] = 6;
        frag[42] = 0;
        frag[43] = 0x01; // offset 0, M set: the first fragment
        assert!(v6_error(&frag, 1300).is_some());
        frag[43] = 0x08; // offset 1 (in 8-octet units)
        assert!(v6_error(&frag, 1300).is_none());
        let mut out = [0u8; MAX_ERROR_LEN];
        let unspecified = v6_packet(1400, 6, Ipv6Addr::UNSPECIFIED, D6);
        assert!(too_big(&unspecified, 1300, |_, _| Some(IpAddr::V6(OURS6)), &mut out).is_none());
        let multicast = v6_packet(1400, 6, "ff02::1".parse().unwrap(), D6);
        assert!(too_big(&multicast, 1300, |_, _| Some(IpAddr::V6(OURS6)), &mut out).is_none());
    }

    proptest! {
        /// Arbitrary bytes never panic; whatever comes out is a well-formed error with a valid checksum
        /// about a packet bigger than the MTU.
        #[test]
        fn arbitrary_input_never_panics(mut p in prop::collection::vec(any::<u8>(), 0..1600), mtu: u16,
                                        v6: bool, df: bool) {
            if let Some(first) = p.first_mut() {
                *first = (*first & 0x0f) | if v6 { 0x60 } else { 0x40 };
            }
            if !v6 && df
                && let Some(f) = p.get_mut(6) { *f |= 0x40; }
            let mut out = [0u8; MAX_ERROR_LEN];
            let ours = |s: IpAddr, d: IpAddr| Some(if s.is_ipv4() { d } else { IpAddr::V6(OURS6) });
            if let Some(n) = too_big(&p, mtu, ours, &mut out) {
                prop_assert!(n <= MAX_ERROR_LEN && p.len() > usize::from(mtu));
                let e = &out[..n];
                if v6 {
                    prop_assert_eq!(e[6], ICMPV6);
                    prop_assert_eq!(reference_sum(&[&e[8..40], &u32::try_from(n - 40).unwrap().to_be_bytes(),
                                                    &[0, 0, 0, ICMPV6], &e[40..]]), 0);
                } else {
                    prop_assert_eq!(reference_sum(&[&e[..20]]), 0);
                    prop_assert_eq!(reference_sum(&[&e[20..]]), 0);
                    prop_assert!(n <= 576);
                }
            }
        }
    }
}
