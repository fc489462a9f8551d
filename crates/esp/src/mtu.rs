//! What fits the tunnel (issue 14): the largest inner packet that, sealed into ESP and carried in
//! UDP (RFC 3948), still fits an outer path MTU. Pure arithmetic; the data plane applies it per SA.
//!
//! An ESP-in-UDP datagram is (RFC 4303 §2, RFC 3948 §2.1):
//!
//! ```text
//! | outer IP (20 / 40) | UDP (8) | SPI, Seq (8) | IV | inner | padding | pad len, next hdr (2) | ICV |
//! ```
//!
//! where the padding brings inner ‖ padding ‖ 2 to a multiple of the cipher's block size, and at
//! least of 4 octets (RFC 4303 §2.4).

use oxswan_wire::esp::HEADER_LEN;

/// The outer IPv4 header without options.
pub const IPV4_HEADER: usize = 20;
/// The outer IPv6 header without extension headers.
pub const IPV6_HEADER: usize = 40;
/// The UDP header of ESP in UDP (RFC 3948 §2.1).
pub const UDP_HEADER: usize = 8;
/// The most ESP adds with any suite we implement, padding included: header 8, IV 16 (CBC), padding
/// up to 15 (16-octet blocks), trailer 2, ICV 32 (HMAC-SHA2-512-256).
pub const MAX_ESP_OVERHEAD: usize = HEADER_LEN + 16 + 15 + 2 + 32;

/// The per-packet sizes of one ESP suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSizes {
    /// IV octets on the wire.
    pub iv: usize,
    /// ICV octets on the wire.
    pub icv: usize,
    /// The cipher's block size (1 for AEADs in counter mode); padding aligns to at least 4.
    pub block: usize,
}

/// The largest inner packet that fits `outer_mtu` once sealed with `sizes` and carried in UDP over
/// IPv6 (`outer_v6`) or IPv4; 0 if nothing fits.
pub fn inner_mtu(outer_mtu: u16, outer_v6: bool, sizes: EspSizes) -> u16 {
    let ip = if outer_v6 { IPV6_HEADER } else { IPV4_HEADER };
    let fixed = ip + UDP_HEADER + HEADER_LEN + sizes.iv + sizes.icv;
    let align = sizes.block.max(4);
    // inner + padding + 2 is a multiple of `align` (RFC 4303 §2.4): the room left for it, rounded
    // down to a multiple, less the trailer's 2 octets.
    let room = usize::from(outer_mtu).saturating_sub(fixed);
    let inner = (room / align * align).saturating_sub(2);
    u16::try_from(inner).unwrap_or(u16::MAX)
}

/// The inner MTU that fits `outer_mtu` whatever the suite: for the TUN device, which all SAs share.
pub fn worst_inner_mtu(outer_mtu: u16, outer_v6: bool) -> u16 {
    let ip = if outer_v6 { IPV6_HEADER } else { IPV4_HEADER };
    u16::try_from(usize::from(outer_mtu).saturating_sub(ip + UDP_HEADER + MAX_ESP_OVERHEAD)).unwrap_or(0)
}

/// The TCP MSS that fits an inner MTU (RFC 9293 §3.7.1: the MSS counts the data only): the MTU less
/// the IPv4 and TCP headers (40), or the IPv6 and TCP headers (60).
pub fn mss_for(inner_mtu: u16, ipv6: bool) -> u16 {
    inner_mtu.saturating_sub(if ipv6 { 60 } else { 40 })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use oxswan_wire::esp::pad_len;
    use proptest::prelude::*;

    use super::*;

    const GCM16: EspSizes = EspSizes { iv: 8, icv: 16, block: 1 };
    const CBC_SHA256: EspSizes = EspSizes { iv: 16, icv: 16, block: 16 };

    /// The outer datagram's length for an inner packet of `len`, counted field by field.
    fn outer(len: usize, v6: bool, s: EspSizes) -> usize {
        let ip = if v6 { 40 } else { 20 };
        ip + 8 + 8 + s.iv + len + pad_len(len, s.block) + 2 + s.icv
    }

    #[test]
    fn known_figures() {
        // AES-GCM-16 over IPv4 at 1500: 20 + 8 + 8 + 8 + 1438 + 0 + 2 + 16 = 1500.
        assert_eq!(inner_mtu(1500, false, GCM16), 1438);
        assert_eq!(outer(1438, false, GCM16), 1500);
        // IPv6 outer costs 20 more.
        assert_eq!(inner_mtu(1500, true, GCM16), 1418);
        // A 1280 link (the e2e test's): 1218 inner.
        assert_eq!(inner_mtu(1280, false, GCM16), 1218);
        // AES-CBC with HMAC-SHA2-256-128: 16-octet blocks.
        assert_eq!(inner_mtu(1500, false, CBC_SHA256), 1422);
        assert_eq!(outer(1422, false, CBC_SHA256), 1492, "the ciphertext is whole blocks: 8 octets unused");
        assert!(outer(1423, false, CBC_SHA256) > 1500);
        assert_eq!(inner_mtu(10, false, GCM16), 0);
        assert_eq!(worst_inner_mtu(1500, false), 1399);
        assert_eq!(worst_inner_mtu(1500, true), 1379);
        assert_eq!(mss_for(1218, false), 1178);
        assert_eq!(mss_for(1218, true), 1158);
    }

    proptest! {
        /// The inner MTU fits, and one octet more does not (for every suite shape and family).
        #[test]
        fn the_largest_that_fits(mtu in 0u16..=9000, v6: bool, iv in 0usize..=16, icv in 0usize..=32,
                                 block in prop::sample::select(vec![1usize, 4, 8, 16])) {
            let s = EspSizes { iv, icv, block };
            let m = usize::from(inner_mtu(mtu, v6, s));
            if m > 0 {
                prop_assert!(outer(m, v6, s) <= usize::from(mtu));
            }
            // One octet more would not fit.
            prop_assert!(outer(m + 1, v6, s) > usize::from(mtu));
            let w = usize::from(worst_inner_mtu(mtu, v6));
            if w > 0 {
                prop_assert!(outer(w, v6, s) <= usize::from(mtu), "the worst case fits every suite");
            }
        }
    }
}
