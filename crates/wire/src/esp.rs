//! ESP packet framing (RFC 4303 §2): the header, and the trailer inside the encrypted part.
//!
//! Works in caller-owned buffers with no allocation: this is the per-packet path of the data plane.

use crate::error::{Context, Error, ErrorKind, Result};

/// SPI and Sequence Number.
pub const HEADER_LEN: usize = 8;

/// Next Header for a tunnelled IPv4 packet (IP protocol 4).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next Header for a tunnelled IPv6 packet (IP protocol 41).
pub const NEXT_HEADER_IPV6: u8 = 41;
/// Next Header of a dummy packet for traffic flow confidentiality, to be dropped (RFC 4303 §2.6).
pub const NEXT_HEADER_NONE: u8 = 59;

fn err(offset: usize, kind: ErrorKind) -> Error {
    Error::new(Context::Esp, offset, kind)
}

/// The ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspHeader {
    /// Security Parameters Index.
    pub spi: u32,
    /// Sequence Number (the low 32 bits with ESN).
    pub sequence_number: u32,
}

impl EspHeader {
    /// Writes the header into the first [`HEADER_LEN`] octets of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let available = buf.len();
        let out =
            buf.get_mut(..HEADER_LEN).ok_or_else(|| err(0, ErrorKind::Truncated { needed: HEADER_LEN, available }))?;
        let (spi, seq) = out.split_at_mut(4);
        spi.copy_from_slice(&self.spi.to_be_bytes());
        seq.copy_from_slice(&self.sequence_number.to_be_bytes());
        Ok(())
    }
}

/// A checked view of an ESP packet: once [`EspPacket::new_checked`] succeeded, no accessor can panic.
#[derive(Debug, Clone, Copy)]
pub struct EspPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Checks that `buf` holds an ESP header with a usable SPI.
    ///
    /// RFC 4303 §2.1: SPI 0 is reserved for local use and never sent (on UDP port 4500 it is the non-ESP
    /// marker, RFC 3948 §2.2); 1–255 are reserved by IANA. Both are rejected.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        let header: [u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| err(0, ErrorKind::Truncated { needed: HEADER_LEN, available: b.len() }))?;
        let spi = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if spi <= 255 {
            return Err(err(0, ErrorKind::InvalidValue { field: "SPI", value: spi.into() }));
        }
        Ok(Self { buf })
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        self.buf.as_ref().get(..HEADER_LEN).and_then(|h| h.try_into().ok()).unwrap_or([0; HEADER_LEN])
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        let h = self.header();
        u32::from_be_bytes([h[0], h[1], h[2], h[3]])
    }

    /// Sequence Number.
    pub fn sequence_number(&self) -> u32 {
        let h = self.header();
        u32::from_be_bytes([h[4], h[5], h[6], h[7]])
    }

    /// The header fields.
    pub fn repr(&self) -> EspHeader {
        EspHeader { spi: self.spi(), sequence_number: self.sequence_number() }
    }

    /// The octets after the header: IV ‖ ciphertext ‖ ICV.
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The header octets (the AAD of an AEAD without ESN, RFC 4106 §5).
    pub fn header_bytes(&self) -> &[u8] {
        self.buf.as_ref().get(..HEADER_LEN).unwrap_or(&[])
    }

    /// The whole packet.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// The octets after the header, for decrypting in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
    }

    /// Sets the Sequence Number.
    pub fn set_sequence_number(&mut self, seq: u32) {
        if let Some(f) = self.buf.as_mut().get_mut(4..HEADER_LEN) {
            f.copy_from_slice(&seq.to_be_bytes());
        }
    }
}

/// Padding octets needed after `payload_len` octets so that payload ‖ padding ‖ Pad Length ‖ Next Header
/// fills whole blocks of `block_size` — and always ends on a 4-octet boundary (RFC 4303 §2.4).
pub fn pad_len(payload_len: usize, block_size: usize) -> usize {
    let align = block_size.max(4);
    let used = payload_len.saturating_add(2).checked_rem(align).unwrap_or(0);
    if used == 0 { 0 } else { align.saturating_sub(used) }
}

/// Writes padding (the default 1, 2, 3, ... of RFC 4303 §2.4), Pad Length and Next Header after the
/// first `payload_len` octets of `buf`, returning the length of payload plus trailer.
pub fn write_trailer(buf: &mut [u8], payload_len: usize, pad_len: usize, next_header: u8) -> Result<usize> {
    let pad = u8::try_from(pad_len)
        .map_err(|_| err(0, ErrorKind::InvalidValue { field: "Pad Length", value: pad_len as u64 }))?;
    let total = payload_len.saturating_add(pad_len).saturating_add(2);
    let available = buf.len();
    let trailer = buf
        .get_mut(payload_len..total)
        .ok_or_else(|| err(payload_len, ErrorKind::Truncated { needed: total, available }))?;
    let (padding, tail) = trailer.split_at_mut(pad_len);
    for (i, b) in padding.iter_mut().enumerate() {
        *b = (i as u8).wrapping_add(1);
    }
    if let [pl, nh] = tail {
        *pl = pad;
        *nh = next_header;
    }
    Ok(total)
}

/// Reads the trailer at the end of a decrypted ESP payload: returns the length of the inner packet and
/// the Next Header. The Pad Length must fit and the padding must be the default 1, 2, 3, ...
/// (RFC 4303 §2.4: the receiver SHOULD check it; a mismatch means a bad or forged packet).
pub fn parse_trailer(plaintext: &[u8]) -> Result<(usize, u8)> {
    let n = plaintext.len();
    let (&next_header, rest) =
        plaintext.split_last().ok_or_else(|| err(0, ErrorKind::Truncated { needed: 2, available: n }))?;
    let (&pad, rest) = rest.split_last().ok_or_else(|| err(0, ErrorKind::Truncated { needed: 2, available: n }))?;
    let pad = usize::from(pad);
    let payload_len = rest.len().checked_sub(pad).ok_or_else(|| {
        err(n.saturating_sub(2), ErrorKind::BadLength { length: pad, reason: "Pad Length beyond the payload" })
    })?;
    let padding = rest.get(payload_len..).unwrap_or(&[]);
    if padding.iter().enumerate().any(|(i, &b)| usize::from(b) != i.saturating_add(1)) {
        return Err(err(payload_len, ErrorKind::InvalidValue { field: "padding", value: pad as u64 }));
    }
    Ok((payload_len, next_header))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &[u8] = include_bytes!("../tests/data/charon-psk-esp-1-i2r.bin");

    #[test]
    fn captured_packet() {
        let p = EspPacket::new_checked(CAPTURED).unwrap();
        assert!(p.spi() > 255);
        // charon's first packet on a new SA carries sequence number 1 (RFC 4303 §3.3.3).
        assert_eq!(p.sequence_number(), 1);
        // 8-octet IV, at least the trailer, and the 16-octet ICV of AES-GCM-16.
        assert!(p.payload().len() >= 8 + 4 + 16);
        assert_eq!(p.header_bytes(), &CAPTURED[..8]);
    }

    #[test]
    fn header_round_trip_and_checks() {
        let mut buf = [0u8; 24];
        EspHeader { spi: 0xc000_0001, sequence_number: 7 }.emit(&mut buf).unwrap();
        let mut p = EspPacket::new_checked(&mut buf[..]).unwrap();
        assert_eq!(p.repr(), EspHeader { spi: 0xc000_0001, sequence_number: 7 });
        p.set_sequence_number(8);
        assert_eq!(p.sequence_number(), 8);
        p.payload_mut()[0] = 0xaa;
        assert_eq!(p.payload()[0], 0xaa);
        assert_eq!(p.payload().len(), 16);
        assert!(EspHeader { spi: 1, sequence_number: 1 }.emit(&mut [0u8; 7]).is_err());
        // Short, SPI 0 (non-ESP marker), reserved SPIs.
        assert!(EspPacket::new_checked(&[1u8, 2, 3, 4, 5, 6, 7][..]).is_err());
        assert!(EspPacket::new_checked(&[0u8; 8][..]).is_err());
        assert!(EspPacket::new_checked(&[0, 0, 0, 255, 0, 0, 0, 1][..]).is_err());
        assert!(EspPacket::new_checked(&[0, 0, 1, 0, 0, 0, 0, 1][..]).is_ok());
        assert_eq!(EspPacket::new_checked(&[0u8; 3][..]).unwrap_err().disposition(), crate::Disposition::Drop);
    }

    #[test]
    fn trailer_alignment() {
        // AEAD: 4-octet alignment only.
        assert_eq!(pad_len(84, 1), 2); // 84 + 2 + 2 = 88
        assert_eq!(pad_len(86, 4), 0);
        // AES-CBC: 16-octet blocks.
        assert_eq!(pad_len(84, 16), 10); // 84 + 10 + 2 = 96
        assert_eq!(pad_len(14, 16), 0);
        for len in 0..100 {
            for block in [1, 4, 8, 16] {
                let total = len + pad_len(len, block) + 2;
                assert_eq!(total % block.max(4), 0);
                assert!(pad_len(len, block) < block.max(4));
            }
        }
    }

    #[test]
    fn trailer_round_trip_and_checks() {
        let mut buf = [0xeeu8; 32];
        let pad = pad_len(5, 16);
        let total = write_trailer(&mut buf, 5, pad, NEXT_HEADER_IPV4).unwrap();
        assert_eq!(total, 16);
        assert_eq!(&buf[5..16], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 4]);
        assert_eq!(parse_trailer(&buf[..total]).unwrap(), (5, NEXT_HEADER_IPV4));
        // No padding at all.
        assert_eq!(parse_trailer(&[0x45, 0, 41]).unwrap(), (1, NEXT_HEADER_IPV6));
        // Wrong padding content.
        let mut bad = buf;
        bad[7] = 0;
        assert!(parse_trailer(&bad[..total]).is_err());
        // Pad Length beyond the payload.
        assert!(parse_trailer(&[1, 2, 5, 4]).is_err());
        // Too short.
        assert!(parse_trailer(&[4]).is_err());
        assert!(parse_trailer(&[]).is_err());
        // Not enough room for the trailer; a Pad Length over 255.
        assert!(write_trailer(&mut [0u8; 8], 5, 3, 4).is_err());
        assert!(write_trailer(&mut [0u8; 400], 5, 256, 4).is_err());
    }
}
