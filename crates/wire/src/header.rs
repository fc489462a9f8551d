//! The IKE header (RFC 7296 §3.1) and the zero-copy view of a whole message.

use crate::error::{Context, Error, ErrorKind, Result};
use crate::payload::{Payload, Payloads, emit_chain};
use crate::reader::{PutExt, Reader};
use crate::types::{ExchangeType, PayloadType};

/// An IKE SA SPI (RFC 7296 §3.1): eight octets, zero meaning "not yet chosen" for the responder's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IkeSpi(pub [u8; 8]);

impl IkeSpi {
    /// The responder SPI of a first IKE_SA_INIT request.
    pub const ZERO: Self = Self([0; 8]);

    /// Whether this is the all-zero SPI.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }
}

impl core::fmt::Debug for IkeSpi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl core::fmt::Display for IkeSpi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// Header flags (RFC 7296 §3.1): bits other than I, V and R are reserved, sent as zero and ignored on
/// receipt, but kept so that a parsed header re-emits unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I: set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: Self = Self(0x08);
    /// V: the sender can speak a higher major version.
    pub const VERSION: Self = Self(0x10);
    /// R: this message is a response.
    pub const RESPONSE: Self = Self(0x20);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both.
    #[must_use]
    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// I flag.
    pub fn initiator(self) -> bool {
        self.contains(Self::INITIATOR)
    }

    /// R flag.
    pub fn response(self) -> bool {
        self.contains(Self::RESPONSE)
    }
}

impl core::fmt::Debug for Flags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut names = Vec::new();
        for (flag, name) in [(Self::INITIATOR, "I"), (Self::VERSION, "V"), (Self::RESPONSE, "R")] {
            if self.contains(flag) {
                names.push(name);
            }
        }
        write!(f, "Flags({:#04x} {})", self.0, names.join("|"))
    }
}

/// The fixed 28-octet IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub spi_i: IkeSpi,
    /// IKE SA Responder's SPI (zero in a first IKE_SA_INIT request).
    pub spi_r: IkeSpi,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major version; 2 for IKEv2.
    pub major_version: u8,
    /// Minor version; 0 for RFC 7296, and ignored on receipt.
    pub minor_version: u8,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// I, V and R flags.
    pub flags: Flags,
    /// Message ID (RFC 7296 §2.2).
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// Size of the header on the wire.
    pub const LEN: usize = 28;

    /// A version 2.0 header for a message of `exchange_type`; `next_payload` and `length` are filled in
    /// by [`Header::encode`].
    pub fn new(spi_i: IkeSpi, spi_r: IkeSpi, exchange_type: ExchangeType, flags: Flags, message_id: u32) -> Self {
        Self {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            major_version: 2,
            minor_version: 0,
            exchange_type,
            flags,
            message_id,
            length: Self::LEN as u32,
        }
    }

    /// Reads the header fields without judging them: an engine needs the SPIs and message ID of a message
    /// with a bad version to answer INVALID_MAJOR_VERSION (RFC 7296 §2.5).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, Context::Header);
        let spi_i = IkeSpi(r.array()?);
        let spi_r = IkeSpi(r.array()?);
        let next_payload = PayloadType(r.u8()?);
        let version = r.u8()?;
        let exchange_type = ExchangeType(r.u8()?);
        let flags = Flags(r.u8()?);
        let message_id = r.u32()?;
        let length = r.u32()?;
        Ok(Self {
            spi_i,
            spi_r,
            next_payload,
            major_version: version >> 4,
            minor_version: version & 0x0f,
            exchange_type,
            flags,
            message_id,
            length,
        })
    }

    /// Appends the 28 header octets.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.0);
        out.extend_from_slice(&self.spi_r.0);
        out.put_u8(self.next_payload.0);
        out.put_u8((self.major_version << 4) | (self.minor_version & 0x0f));
        out.put_u8(self.exchange_type.0);
        out.put_u8(self.flags.0);
        out.put_u32(self.message_id);
        out.put_u32(self.length);
    }

    /// Encodes a whole unencrypted message: this header, with `next_payload` and `length` set from
    /// `payloads`, followed by the payload chain.
    pub fn encode(&self, payloads: &[Payload]) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut body)?;
        let mut out = Vec::with_capacity(Self::LEN.saturating_add(body.len()));
        let total = Self::LEN.saturating_add(body.len());
        let length = u32::try_from(total)
            .map_err(|_| Error::new(Context::Header, 24, ErrorKind::TooLong { field: "message", length: total }))?;
        Header { next_payload: first, length, ..*self }.emit(&mut out);
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// A checked view of one IKE message.
///
/// [`Message::parse`] verifies the header length and the major version; the payload chain is walked
/// lazily by [`Message::payloads`], which reports its own errors.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    header: Header,
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Checks the header of the message in `buf` (one UDP payload, without a non-ESP marker).
    ///
    /// RFC 7296 §3.1: the Length field must equal the datagram's length; a major version other than 2
    /// is answered with INVALID_MAJOR_VERSION.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let header = Header::parse(buf)?;
        if header.major_version != 2 {
            return Err(Error::new(Context::Header, 17, ErrorKind::InvalidMajorVersion(header.major_version)));
        }
        let length = header.length as usize;
        if length < Header::LEN || length != buf.len() {
            return Err(Error::new(
                Context::Header,
                24,
                ErrorKind::BadLength { length, reason: "does not match the datagram length" },
            ));
        }
        Ok(Self { header, bytes: buf })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The whole message, header included (the octets signed in AUTH, RFC 7296 §2.15).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The payload chain that follows the header.
    pub fn payloads(&self) -> Payloads<'a> {
        Payloads::new(self.header.next_payload, self.bytes.get(Header::LEN..).unwrap_or(&[]), Header::LEN)
    }

    /// Parses every payload into its owned form. An SK or SKF payload ends the chain and is returned as
    /// [`Payload::Sk`] / [`Payload::Skf`] with its body still encrypted.
    pub fn parse_payloads(&self) -> Result<Vec<Payload>> {
        self.payloads().map(|raw| raw.and_then(|raw| Payload::parse(&raw))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::NoncePayload;

    #[test]
    fn header_round_trip_and_checks() {
        let h =
            Header::new(IkeSpi([1, 2, 3, 4, 5, 6, 7, 8]), IkeSpi::ZERO, ExchangeType::IKE_SA_INIT, Flags::INITIATOR, 0);
        let msg = h.encode(&[Payload::Nonce(NoncePayload { data: vec![0xab; 16] })]).unwrap();
        assert_eq!(msg.len(), 28 + 4 + 16);
        assert_eq!(
            hex::encode(&msg[..28]),
            concat!("0102030405060708", "0000000000000000", "28", "20", "22", "08", "00000000", "00000030")
        );
        let m = Message::parse(&msg).unwrap();
        assert_eq!(m.header().next_payload, PayloadType::NONCE);
        assert_eq!(m.header().length, 48);
        assert!(m.header().flags.initiator());
        assert!(!m.header().flags.response());

        // Truncated header: dropped.
        let e = Message::parse(&msg[..27]).unwrap_err();
        assert_eq!(e.disposition(), crate::Disposition::Drop);
        // Length field that disagrees with the datagram.
        let e = Message::parse(&msg[..40]).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 48, .. }));
        // Major version 3.
        let mut v3 = msg.clone();
        v3[17] = 0x30;
        let e = Message::parse(&v3).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidMajorVersion(3));
        assert_eq!(e.disposition(), crate::Disposition::Notify(crate::NotifyType::INVALID_MAJOR_VERSION));
        // ... but the header can still be read to answer it.
        assert_eq!(Header::parse(&v3).unwrap().spi_i, IkeSpi([1, 2, 3, 4, 5, 6, 7, 8]));
    }
}
