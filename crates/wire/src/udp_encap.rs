//! UDP encapsulation of ESP and IKE on port 4500 (RFC 3948).
//!
//! On port 4500 three kinds of datagrams share the socket: IKE messages behind a four-octet zero
//! non-ESP marker (§2.2), ESP packets (whose SPI is never zero, §2.1), and one-octet NAT keepalives
//! (§2.3).

use crate::error::{Context, Error, ErrorKind, Result};

/// The non-ESP marker in front of IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// A NAT-keepalive datagram (RFC 3948 §2.3).
pub const KEEPALIVE: [u8; 1] = [0xff];

/// What a datagram received on port 4500 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// A NAT keepalive: ignore it.
    Keepalive,
    /// An IKE message, the non-ESP marker removed.
    Ike(&'a [u8]),
    /// An ESP packet (from its SPI on).
    Esp(&'a [u8]),
}

/// Classifies a datagram received on port 4500.
///
/// A datagram shorter than an ESP header that is not a keepalive, or a non-ESP marker with nothing
/// behind it, is malformed and dropped.
pub fn classify(buf: &[u8]) -> Result<Udp4500<'_>> {
    match buf {
        [0xff] => Ok(Udp4500::Keepalive),
        [0, 0, 0, 0, ike @ ..] if !ike.is_empty() => Ok(Udp4500::Ike(ike)),
        [0, 0, 0, 0] => Err(Error::new(Context::UdpEncap, 4, ErrorKind::Truncated { needed: 1, available: 0 })),
        esp if esp.len() >= crate::esp::HEADER_LEN => Ok(Udp4500::Esp(esp)),
        short => Err(Error::new(
            Context::UdpEncap,
            0,
            ErrorKind::Truncated { needed: crate::esp::HEADER_LEN, available: short.len() },
        )),
    }
}

/// An IKE message with the non-ESP marker in front, for sending on port 4500.
pub fn with_non_esp_marker(ike: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ike.len().saturating_add(NON_ESP_MARKER.len()));
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(ike);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Disposition, Message};

    const ESP: &[u8] = include_bytes!("../tests/data/charon-psk-esp-2-r2i.bin");
    const IKE: &[u8] = include_bytes!("../tests/data/charon-psk-ike_auth-req.bin");

    #[test]
    fn classifies_captured_traffic() {
        let ike = with_non_esp_marker(IKE);
        assert_eq!(&ike[..4], &NON_ESP_MARKER);
        match classify(&ike).unwrap() {
            Udp4500::Ike(m) => assert!(Message::parse(m).is_ok()),
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(ESP).unwrap(), Udp4500::Esp(ESP));
        assert_eq!(classify(&KEEPALIVE).unwrap(), Udp4500::Keepalive);
    }

    #[test]
    fn malformed_datagrams_are_dropped() {
        for bad in [&[][..], &[0xfe], &[0, 0, 0, 0], &[1, 2, 3, 4, 5, 6, 7], &[0xff, 0xff]] {
            let e = classify(bad).unwrap_err();
            assert_eq!(e.disposition(), Disposition::Drop, "{bad:?}");
        }
        // Eight octets starting with a non-zero SPI are an ESP header.
        assert!(matches!(classify(&[0, 0, 1, 0, 0, 0, 0, 1]), Ok(Udp4500::Esp(_))));
        // A marker followed by garbage is handed to the IKE parser, which rejects it.
        match classify(&[0, 0, 0, 0, 1]).unwrap() {
            Udp4500::Ike(m) => assert!(Message::parse(m).is_err()),
            other => panic!("{other:?}"),
        }
    }
}
