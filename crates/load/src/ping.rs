//! The inner packets of `--ping`: ICMP echo requests (RFC 792) in IPv4 (RFC 791) from a client's
//! address to the ping target, and the check of what comes back. They travel inside the client's
//! CHILD SA, sealed and opened by the driver; nothing here touches a socket.

use std::net::Ipv4Addr;

use oxswan_esp::icmp::internet_checksum as checksum;

/// IPv4 header without options (RFC 791 §3.1).
const IP_HEADER: usize = 20;
/// ICMP echo header: type, code, checksum, identifier, sequence number (RFC 792).
const ICMP_HEADER: usize = 8;
/// IP protocol number of ICMP.
const PROTO_ICMP: u8 = 1;
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
/// The echo data: a fixed text and the client's number, so a reply that carries another client's
/// (or a stale run's) data is told apart.
const TAG: &[u8; 12] = b"oxswan load ";
/// Octets of echo data.
pub(crate) const DATA: usize = TAG.len() + 8;
/// Octets of one echo request, IPv4 header included.
pub(crate) const REQUEST_LEN: usize = IP_HEADER + ICMP_HEADER + DATA;

/// One client's echo: who sends, to whom, and the identifier that marks its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Echo {
    /// The client's inner address (its virtual IP, or its own address).
    pub src: Ipv4Addr,
    /// The ping target.
    pub dst: Ipv4Addr,
    /// The ICMP identifier.
    pub id: u16,
    /// The client's number, echoed in the data.
    pub client: u64,
}

/// Why an opened packet is not the reply a client waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// Not a whole IPv4 packet, or a fragment, or its header checksum is wrong.
    NotIpv4,
    /// Not ICMP, or not an echo reply (an ICMP error, for instance).
    NotEchoReply,
    /// From another address than the target, or to another than the client's.
    Addresses,
    /// The ICMP checksum is wrong.
    Checksum,
    /// Another identifier, or data that is not what the client sent.
    NotOurs,
}

impl Echo {
    /// The echo data of this client's requests.
    fn data(&self) -> [u8; DATA] {
        let mut d = [0u8; DATA];
        let (tag, n) = d.split_at_mut(TAG.len());
        tag.copy_from_slice(TAG);
        n.copy_from_slice(&self.client.to_be_bytes());
        d
    }

    /// Writes echo request `seq` into `out` and returns its length; `None` if `out` is too small.
    pub(crate) fn request(&self, seq: u16, out: &mut [u8]) -> Option<usize> {
        let p = out.get_mut(..REQUEST_LEN)?;
        let total = REQUEST_LEN as u16;
        let (ip, icmp) = p.split_at_mut(IP_HEADER);
        // Version 4, IHL 5; no TOS; total length; the sequence number as the IP identification (it
        // only has to differ between datagrams, RFC 6864 §4.1); no fragmentation flags; TTL 64.
        ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTO_ICMP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ip.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
        ip.get_mut(4..6)?.copy_from_slice(&seq.to_be_bytes());
        ip.get_mut(12..16)?.copy_from_slice(&self.src.octets());
        ip.get_mut(16..20)?.copy_from_slice(&self.dst.octets());
        let c = checksum(ip);
        ip.get_mut(10..12)?.copy_from_slice(&c.to_be_bytes());
        let (head, data) = icmp.split_at_mut(ICMP_HEADER);
        head.copy_from_slice(&[ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 0]);
        head.get_mut(4..6)?.copy_from_slice(&self.id.to_be_bytes());
        head.get_mut(6..8)?.copy_from_slice(&seq.to_be_bytes());
        data.copy_from_slice(&self.data());
        let c = checksum(icmp);
        icmp.get_mut(2..4)?.copy_from_slice(&c.to_be_bytes());
        Some(REQUEST_LEN)
    }

    /// Checks that `packet` (an inner packet as ESP delivered it, RFC 4303 §2.3) is the echo reply
    /// to one of this client's requests, and returns that request's sequence number.
    pub(crate) fn check_reply(&self, packet: &[u8]) -> Result<u16, Mismatch> {
        let be16 =
            |b: &[u8], at: usize| b.get(at..at + 2).and_then(|w| <[u8; 2]>::try_from(w).ok()).map(u16::from_be_bytes);
        let (&vihl, _) = packet.split_first().ok_or(Mismatch::NotIpv4)?;
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < IP_HEADER {
            return Err(Mismatch::NotIpv4);
        }
        // The inner packet may be followed by TFC padding (RFC 4303 §2.7): the IP total length
        // says where it ends.
        let total = usize::from(be16(packet, 2).ok_or(Mismatch::NotIpv4)?);
        let ip = packet.get(..total).ok_or(Mismatch::NotIpv4)?;
        let header = ip.get(..ihl).ok_or(Mismatch::NotIpv4)?;
        // A header whose checksum field is right sums to zero (RFC 1071 §1).
        if checksum(header) != 0 {
            return Err(Mismatch::NotIpv4);
        }
        // More Fragments or a fragment offset: a piece of a packet, not an echo reply to check.
        if be16(header, 6).ok_or(Mismatch::NotIpv4)? & 0x3fff != 0 {
            return Err(Mismatch::NotIpv4);
        }
        let addr = |at: usize| header.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(Ipv4Addr::from);
        if header.get(9) != Some(&PROTO_ICMP) {
            return Err(Mismatch::NotEchoReply);
        }
        if addr(12) != Some(self.dst) || addr(16) != Some(self.src) {
            return Err(Mismatch::Addresses);
        }
        let icmp = ip.get(ihl..).ok_or(Mismatch::NotIpv4)?;
        if icmp.len() < ICMP_HEADER || icmp.first() != Some(&ECHO_REPLY) || icmp.get(1) != Some(&0) {
            return Err(Mismatch::NotEchoReply);
        }
        if checksum(icmp) != 0 {
            return Err(Mismatch::Checksum);
        }
        // RFC 792: the reply returns the request's identifier, sequence number and data.
        if be16(icmp, 4) != Some(self.id) || icmp.get(ICMP_HEADER..) != Some(&self.data()[..]) {
            return Err(Mismatch::NotOurs);
        }
        be16(icmp, 6).ok_or(Mismatch::NotEchoReply)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn echo() -> Echo {
        Echo { src: Ipv4Addr::new(10, 96, 0, 7), dst: Ipv4Addr::new(10, 2, 0, 1), id: 0x1234, client: 41 }
    }

    /// Recomputes both checksums of an IPv4 ICMP packet without options.
    fn fix(mut r: Vec<u8>) -> Vec<u8> {
        r[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&r[..20]);
        r[10..12].copy_from_slice(&c.to_be_bytes());
        r[22..24].copy_from_slice(&[0, 0]);
        let c = checksum(&r[20..]);
        r[22..24].copy_from_slice(&c.to_be_bytes());
        r
    }

    /// What a host answering `request` sends (RFC 792): addresses swapped, type 0, checksums
    /// recomputed, the rest as it came.
    fn answer(request: &[u8]) -> Vec<u8> {
        let mut r = request.to_vec();
        let (src, dst) = (r[12..16].to_vec(), r[16..20].to_vec());
        r[12..16].copy_from_slice(&dst);
        r[16..20].copy_from_slice(&src);
        r[8] = 63;
        r[20] = ECHO_REPLY;
        fix(r)
    }

    #[test]
    fn a_request_is_a_valid_ipv4_icmp_echo_request() {
        let mut b = [0u8; 64];
        let n = echo().request(9, &mut b).unwrap();
        let p = &b[..n];
        assert_eq!(n, 48);
        assert_eq!((p[0], p[9], u16::from_be_bytes([p[2], p[3]])), (0x45, 1, 48));
        assert_eq!(&p[12..16], &[10, 96, 0, 7]);
        assert_eq!(&p[16..20], &[10, 2, 0, 1]);
        assert_eq!(checksum(&p[..20]), 0, "IPv4 header checksum");
        assert_eq!((p[20], p[21]), (ECHO_REQUEST, 0));
        assert_eq!(checksum(&p[20..]), 0, "ICMP checksum");
        assert_eq!(u16::from_be_bytes([p[24], p[25]]), 0x1234);
        assert_eq!(u16::from_be_bytes([p[26], p[27]]), 9);
        assert_eq!(&p[28..40], TAG);
        assert_eq!(&p[40..48], &41u64.to_be_bytes());
        assert_eq!(echo().request(1, &mut [0u8; 47]), None, "too small a buffer");
    }

    #[test]
    fn the_reply_to_a_request_is_accepted_with_its_sequence_number() {
        let mut b = [0u8; 64];
        let n = echo().request(3, &mut b).unwrap();
        let reply = answer(&b[..n]);
        assert_eq!(echo().check_reply(&reply), Ok(3));
        // TFC padding after the packet (RFC 4303 §2.7) is not part of it.
        let mut padded = reply.clone();
        padded.extend_from_slice(&[0; 13]);
        assert_eq!(echo().check_reply(&padded), Ok(3));
    }

    #[test]
    fn anything_but_our_reply_is_refused_with_the_reason() {
        let mut b = [0u8; 64];
        let n = echo().request(3, &mut b).unwrap();
        let good = answer(&b[..n]);
        assert_eq!(echo().check_reply(&good), Ok(3));
        type Change = fn(&mut Vec<u8>);
        // Well-formed packets (checksums made right after the change) that are not our reply.
        let wellformed: Vec<(Change, Mismatch)> = vec![
            // A reply the wrong way round: from us to the target.
            (|p| *p = answer(p), Mismatch::Addresses),
            (|p| p[15] = 9, Mismatch::Addresses),
            (|p| p[19] = 8, Mismatch::Addresses),
            (|p| p[0] = 0x65, Mismatch::NotIpv4),
            (|p| p[0] = 0x44, Mismatch::NotIpv4),
            (|p| p[6] |= 0x20, Mismatch::NotIpv4),
            (|p| p[7] = 1, Mismatch::NotIpv4),
            (|p| p[2..4].copy_from_slice(&60u16.to_be_bytes()), Mismatch::NotIpv4),
            (|p| p[9] = 17, Mismatch::NotEchoReply),
            // An ICMP error (destination unreachable) or the request itself, not a reply.
            (|p| p[20] = 3, Mismatch::NotEchoReply),
            (|p| p[20] = ECHO_REQUEST, Mismatch::NotEchoReply),
            (|p| p[21] = 1, Mismatch::NotEchoReply),
            (|p| p[25] ^= 1, Mismatch::NotOurs),
            (|p| p[47] ^= 1, Mismatch::NotOurs),
        ];
        for (change, want) in wellformed {
            let mut p = good.clone();
            change(&mut p);
            let p = fix(p);
            assert_eq!(echo().check_reply(&p), Err(want), "{p:02x?}");
        }
        // Damage the checksums do not hide.
        let damaged: Vec<(Change, Mismatch)> = vec![
            (|p| p.truncate(30), Mismatch::NotIpv4),
            (|p| p.clear(), Mismatch::NotIpv4),
            (|p| p[8] ^= 1, Mismatch::NotIpv4),
            (|p| p[15] ^= 1, Mismatch::NotIpv4),
            (|p| p[44] ^= 0xff, Mismatch::Checksum),
            (|p| p[22] ^= 1, Mismatch::Checksum),
        ];
        for (change, want) in damaged {
            let mut p = good.clone();
            change(&mut p);
            assert_eq!(echo().check_reply(&p), Err(want), "{p:02x?}");
        }
        // The replies other clients get: from another target, to another address, with another
        // identifier or another client's data.
        let other = |e: Echo| {
            let mut b = [0u8; 64];
            let n = e.request(3, &mut b).unwrap();
            answer(&b[..n])
        };
        let wrong = [
            (Echo { dst: Ipv4Addr::new(10, 2, 0, 9), ..echo() }, Mismatch::Addresses),
            (Echo { src: Ipv4Addr::new(10, 96, 0, 8), ..echo() }, Mismatch::Addresses),
            (Echo { id: 0x4321, ..echo() }, Mismatch::NotOurs),
            (Echo { client: 42, ..echo() }, Mismatch::NotOurs),
        ];
        for (e, want) in wrong {
            assert_eq!(echo().check_reply(&other(e)), Err(want), "{e:?}");
        }
    }
}
