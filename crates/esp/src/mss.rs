//! TCP MSS clamping for tunnelled SYNs (issue 14): a TCP connection through the tunnel must not
//! negotiate segments that, with the ESP and UDP overhead, exceed the path, or its packets are
//! dropped as too big somewhere no ICMP comes back from ("connected but no Internet"). The SYN's
//! Maximum Segment Size option (RFC 9293 §3.7.1) is lowered to what fits, and the TCP checksum is
//! updated incrementally (RFC 1624), in place, with no allocation. Pure: the data plane decides
//! where it applies.

/// TCP option kinds (RFC 9293 §3.2).
const END: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
/// IP protocol number of TCP.
const TCP: u8 = 6;
/// The SYN flag in TCP's flags octet.
const SYN: u8 = 0x02;

/// Lowers the MSS option of a TCP SYN in the IPv4 or IPv6 packet `packet` to `max_mss` if it is
/// larger; returns whether the packet changed. Anything else (not TCP, not a SYN, a fragment, an
/// IPv6 extension header before TCP, a truncated or malformed header) is left as it is.
pub fn clamp_mss(packet: &mut [u8], max_mss: u16) -> bool {
    let Some(tcp) = tcp_offset(packet) else { return false };
    let Some(seg) = packet.get_mut(tcp..) else { return false };
    let (Some(&off), Some(&flags)) = (seg.get(12), seg.get(13)) else { return false };
    if flags & SYN == 0 {
        return false;
    }
    let header_len = usize::from(off >> 4) * 4;
    if header_len < 20 || header_len > seg.len() {
        return false;
    }
    let mut i = 20;
    while i < header_len {
        let Some(&kind) = seg.get(i) else { return false };
        match kind {
            END => return false,
            NOP => i += 1,
            _ => {
                let Some(&len) = seg.get(i + 1) else { return false };
                let len = usize::from(len);
                if len < 2 || i + len > header_len {
                    return false;
                }
                if kind == MSS && len == 4 {
                    let (Some(&hi), Some(&lo)) = (seg.get(i + 2), seg.get(i + 3)) else { return false };
                    let old = u16::from_be_bytes([hi, lo]);
                    if old <= max_mss {
                        return false;
                    }
                    let [nh, nl] = max_mss.to_be_bytes();
                    if let Some([a, b]) = seg.get_mut(i + 2..i + 4) {
                        *a = nh;
                        *b = nl;
                    }
                    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), the MSS value being 16-bit aligned
                    // (option offsets of a well-formed header start it on an even octet or not:
                    // the word it sits in is what the sum sees).
                    update_checksum(seg, i + 2, old, max_mss);
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

/// Where the TCP header starts, for an unfragmented IPv4 packet or an IPv6 packet whose next
/// header is TCP.
fn tcp_offset(p: &[u8]) -> Option<usize> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]);
            // A non-first fragment has no TCP header; a first one (MF set, offset 0) does.
            (ihl >= 20 && frag & 0x1fff == 0 && *p.get(9)? == TCP).then_some(ihl)
        }
        6 => (*p.get(6)? == TCP && p.len() >= 40).then_some(40),
        _ => None,
    }
}

/// Replaces the 16-bit value at `at` (relative to the TCP header) from `old` to `new` in the TCP
/// checksum (bytes 16–17) by one's-complement arithmetic (RFC 1624 §3).
fn update_checksum(seg: &mut [u8], at: usize, old: u16, new: u16) {
    let (Some(&c0), Some(&c1)) = (seg.get(16), seg.get(17)) else { return };
    // An odd offset puts the value across two 16-bit words: swap its octets for the sum.
    let (old, new) = if at.is_multiple_of(2) { (old, new) } else { (old.swap_bytes(), new.swap_bytes()) };
    let hc = u16::from_be_bytes([c0, c1]);
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let [h, l] = (!(sum as u16)).to_be_bytes();
    if let Some([a, b]) = seg.get_mut(16..18) {
        *a = h;
        *b = l;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The TCP checksum over the IPv4 pseudo-header and the segment, from scratch.
    fn checksum_v4(p: &[u8]) -> u16 {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let seg = &p[ihl..];
        let mut words: Vec<u8> = Vec::new();
        words.extend_from_slice(&p[12..20]);
        words.extend_from_slice(&[0, TCP]);
        words.extend_from_slice(&u16::try_from(seg.len()).unwrap().to_be_bytes());
        let mut s = seg.to_vec();
        s[16] = 0;
        s[17] = 0;
        words.extend_from_slice(&s);
        if words.len() % 2 == 1 {
            words.push(0);
        }
        let mut sum: u32 = words.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// An IPv4 TCP segment with these flags and options, its checksum correct.
    fn syn(options: &[u8], flags: u8) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, TCP, 0, 0, 10, 10, 0, 1, 10, 2, 0, 1];
        let total = u16::try_from(20 + tcp_len).unwrap().to_be_bytes();
        p[2] = total[0];
        p[3] = total[1];
        let mut tcp = vec![0xc3, 0x50, 0x00, 0x50, 1, 2, 3, 4, 0, 0, 0, 0];
        tcp.push(u8::try_from(tcp_len / 4).unwrap() << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
        tcp.extend_from_slice(options);
        p.extend_from_slice(&tcp);
        let c = checksum_v4(&p).to_be_bytes();
        p[20 + 16] = c[0];
        p[20 + 17] = c[1];
        p
    }

    fn mss_of(p: &[u8]) -> u16 {
        let at = p.windows(2).position(|w| w == [MSS, 4]).unwrap();
        u16::from_be_bytes([p[at + 2], p[at + 3]])
    }

    #[test]
    fn a_syn_s_mss_is_lowered_and_its_checksum_stays_right() {
        // The MSS first (even offset), and after a NOP (odd offset).
        for options in [&[MSS, 4, 0x05, 0xb4, NOP, NOP, NOP, NOP][..], &[NOP, MSS, 4, 0x05, 0xb4, NOP, NOP, NOP][..]] {
            let mut p = syn(options, SYN);
            assert!(clamp_mss(&mut p, 1360));
            assert_eq!(mss_of(&p), 1360);
            let c = u16::from_be_bytes([p[36], p[37]]);
            assert_eq!(c, checksum_v4(&p), "{options:?}");
        }
    }

    #[test]
    fn what_is_not_a_large_mss_in_a_syn_stays() {
        let mut small = syn(&[MSS, 4, 0x04, 0x00], SYN);
        assert!(!clamp_mss(&mut small, 1360), "already smaller");
        let mut ack = syn(&[MSS, 4, 0x05, 0xb4], 0x10);
        assert!(!clamp_mss(&mut ack, 1360), "not a SYN");
        let mut none = syn(&[NOP, NOP, NOP, NOP], SYN);
        assert!(!clamp_mss(&mut none, 1360), "no MSS option");
        let mut udp = syn(&[MSS, 4, 0x05, 0xb4], SYN);
        udp[9] = 17;
        assert!(!clamp_mss(&mut udp, 1360), "not TCP");
        let mut frag = syn(&[MSS, 4, 0x05, 0xb4], SYN);
        frag[7] = 1;
        assert!(!clamp_mss(&mut frag, 1360), "a non-first fragment");
    }

    #[test]
    fn hostile_headers_never_panic() {
        let base = syn(&[MSS, 4, 0x05, 0xb4, NOP, NOP, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, NOP, NOP], SYN);
        for cut in 0..base.len() {
            let mut p = base[..cut].to_vec();
            let _ = clamp_mss(&mut p, 1000);
        }
        for i in 0..base.len() {
            for v in [0u8, 1, 2, 4, 0x0f, 0x50, 0xff] {
                let mut p = base.clone();
                p[i] = v;
                let _ = clamp_mss(&mut p, 1000);
            }
        }
        let mut v6 = vec![0x60, 0, 0, 0, 0, 24, TCP, 64];
        v6.extend_from_slice(&[0; 32]);
        v6.extend_from_slice(&base[20..]);
        assert!(clamp_mss(&mut v6, 1220));
        assert_eq!(mss_of(&v6), 1220);
    }
}
