//! RADIUS packets (RFC 2865 §3): the codec, the Request and Response Authenticators (RFC 2865 §3,
//! RFC 2866 §3) and the Message-Authenticator (RFC 3579 §3.2).

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::attribute::{Attribute, types};
pub use crate::code::Code;
use crate::error::{CodecError, DropReason};

/// Code, Identifier, Length and Authenticator.
pub const HEADER_LEN: usize = 20;
/// The largest packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;
/// Offset of the Authenticator in the packet.
const AUTH_RANGE: core::ops::Range<usize> = 4..20;

/// A received packet, checked for structure only: Length within 20..=4096 and no more than the
/// octets received (those past it are padding, RFC 2865 §3), and attributes that exactly fill it.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    data: &'a [u8],
}

impl<'a> RawPacket<'a> {
    /// Checks the structure of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, CodecError> {
        if data.len() < HEADER_LEN {
            return Err(CodecError::BadPacketLength(data.len()));
        }
        let length = match data.get(2..4) {
            Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err(CodecError::BadPacketLength(data.len())),
        };
        if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) || length > data.len() {
            return Err(CodecError::BadLengthField { length, available: data.len() });
        }
        let data = data.get(..length).ok_or(CodecError::BadLengthField { length, available: data.len() })?;
        let packet = RawPacket { data };
        let mut offset = HEADER_LEN;
        while offset < length {
            let len = data.get(offset.saturating_add(1)).map_or(0, |&l| usize::from(l));
            if len < 2 || offset.saturating_add(len) > length {
                return Err(CodecError::BadAttributeLength { offset, length: len });
            }
            offset = offset.saturating_add(len);
        }
        Ok(packet)
    }

    /// The Code.
    pub fn code(&self) -> Code {
        Code(self.data.first().copied().unwrap_or(0))
    }

    /// The Identifier.
    pub fn identifier(&self) -> u8 {
        self.data.get(1).copied().unwrap_or(0)
    }

    /// The Authenticator.
    pub fn authenticator(&self) -> [u8; 16] {
        self.data.get(AUTH_RANGE).and_then(|a| <[u8; 16]>::try_from(a).ok()).unwrap_or_default()
    }

    /// The packet's octets, up to its Length.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Each attribute as (offset of the value in the packet, Type, value).
    pub fn attributes(&self) -> RawAttributes<'a> {
        RawAttributes { data: self.data, offset: HEADER_LEN }
    }

    /// The attributes, typed.
    pub fn decode_attributes(&self) -> Vec<Attribute> {
        self.attributes().map(|(_, kind, value)| Attribute::decode(kind, value)).collect()
    }
}

/// The attributes of a [`RawPacket`].
#[derive(Debug, Clone)]
pub struct RawAttributes<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = (usize, u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let kind = *self.data.get(self.offset)?;
        let len = usize::from(*self.data.get(self.offset.saturating_add(1))?);
        let start = self.offset.saturating_add(2);
        let end = self.offset.saturating_add(len);
        let value = self.data.get(start..end)?;
        self.offset = end;
        Some((start, kind, value))
    }
}

/// A packet: header and typed attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The Code.
    pub code: Code,
    /// The Identifier.
    pub identifier: u8,
    /// The Authenticator as it stands in the packet (ignored and computed by the `encode_*` that
    /// sign, except for an Access-Request's, which is the caller's random Request Authenticator).
    pub authenticator: [u8; 16],
    /// The attributes, in order.
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// A packet without attributes and with a zero Authenticator.
    pub fn new(code: Code, identifier: u8) -> Self {
        Self { code, identifier, authenticator: [0; 16], attributes: Vec::new() }
    }

    /// Decodes a packet (structure checked as by [`RawPacket::parse`]). Does not verify anything.
    pub fn decode(data: &[u8]) -> Result<Self, CodecError> {
        let raw = RawPacket::parse(data)?;
        Ok(Self {
            code: raw.code(),
            identifier: raw.identifier(),
            authenticator: raw.authenticator(),
            attributes: raw.decode_attributes(),
        })
    }

    /// Encodes the packet as it is, with `authenticator` as the Authenticator; also returns the
    /// offset of the first Message-Authenticator's value.
    fn encode_with(&self, authenticator: &[u8; 16]) -> Result<(Vec<u8>, Option<usize>), CodecError> {
        let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(self.attributes.len().saturating_mul(8)));
        out.push(self.code.0);
        out.push(self.identifier);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(authenticator);
        let mut message_authenticator = None;
        for a in &self.attributes {
            if message_authenticator.is_none() && matches!(a, Attribute::MessageAuthenticator(_)) {
                message_authenticator = Some(out.len().saturating_add(2));
            }
            a.encode(&mut out)?;
            if out.len() > MAX_PACKET_LEN {
                return Err(CodecError::TooLarge(out.len()));
            }
        }
        let len = u16::try_from(out.len()).map_err(|_| CodecError::TooLarge(out.len()))?;
        if let Some(l) = out.get_mut(2..4) {
            l.copy_from_slice(&len.to_be_bytes());
        }
        Ok((out, message_authenticator))
    }

    /// Encodes the packet as it is: nothing is computed.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        self.encode_with(&self.authenticator).map(|(out, _)| out)
    }

    /// Encodes and signs a request with the shared `secret`: an Access-Request keeps
    /// `self.authenticator` as its Request Authenticator (RFC 2865 §3: random and unpredictable);
    /// an Accounting-Request's is computed (RFC 2866 §3: MD5 over the packet with 16 zero
    /// octets in its place, then the secret). A Message-Authenticator attribute, whatever its value,
    /// is computed (RFC 3579 §3.2: HMAC-MD5 keyed with the secret over the packet with that
    /// attribute's value zero).
    pub fn encode_request(&self, secret: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self.code {
            Code::ACCESS_REQUEST => self.sign(secret, &self.authenticator, false),
            Code::ACCOUNTING_REQUEST => self.sign(secret, &[0; 16], true),
            other => Err(CodecError::WrongCodeForSigning(other)),
        }
    }

    /// Encodes and signs an answer to the request whose Request Authenticator was
    /// `request_authenticator` (what a server does; for tests and tools): the Message-Authenticator,
    /// if present, is computed with the Request Authenticator in place (RFC 3579 §3.2), then the
    /// Response Authenticator `MD5(Code | Identifier | Length | RequestAuth | Attributes | Secret)`
    /// (RFC 2865 §3).
    pub fn encode_response(&self, request_authenticator: &[u8; 16], secret: &[u8]) -> Result<Vec<u8>, CodecError> {
        if self.code.is_request() {
            return Err(CodecError::WrongCodeForSigning(self.code));
        }
        self.sign(secret, request_authenticator, true)
    }

    fn sign(&self, secret: &[u8], authenticator: &[u8; 16], hashed: bool) -> Result<Vec<u8>, CodecError> {
        let (mut out, ma) = self.encode_with(authenticator)?;
        if let Some(at) = ma {
            let range = at..at.saturating_add(16);
            if let Some(v) = out.get_mut(range.clone()) {
                v.fill(0);
            }
            let mac = message_authenticator(secret, &out);
            if let Some(v) = out.get_mut(range) {
                v.copy_from_slice(&mac);
            }
        }
        if hashed {
            let digest = md5_of(&[&out, secret]);
            if let Some(a) = out.get_mut(AUTH_RANGE) {
                a.copy_from_slice(&digest);
            }
        }
        Ok(out)
    }
}

/// MD5 over the concatenation of `parts`.
pub(crate) fn md5_of(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-MD5 keyed with `secret` over `data` (RFC 3579 §3.2).
pub(crate) fn message_authenticator(secret: &[u8], data: &[u8]) -> [u8; 16] {
    match <Hmac<Md5> as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length: this cannot happen, and a zero MAC never verifies
        // against a real one.
        Err(_) => [0; 16],
    }
}

/// Verifies an answer to the request whose Request Authenticator was `request_authenticator`:
/// the Response Authenticator (RFC 2865 §3; RFC 2866 §3 for Accounting-Response) and, if present,
/// the Message-Authenticator (RFC 3579 §3.2, computed with the Request Authenticator in place).
/// Both comparisons take constant time. Returns whether a Message-Authenticator was present; it is
/// for the caller to require one.
pub fn verify_response(
    packet: &RawPacket<'_>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<bool, DropReason> {
    let received = packet.authenticator();
    let mut buf = packet.bytes().to_vec();
    buf.get_mut(AUTH_RANGE).ok_or(DropReason::BadResponseAuthenticator)?.copy_from_slice(request_authenticator);
    let expected = md5_of(&[&buf, secret]);
    if !bool::from(expected.ct_eq(&received)) {
        return Err(DropReason::BadResponseAuthenticator);
    }
    let mut found = None;
    for (at, kind, value) in packet.attributes() {
        if kind == types::MESSAGE_AUTHENTICATOR {
            if found.is_some() {
                return Err(DropReason::DuplicateMessageAuthenticator);
            }
            let mac = <[u8; 16]>::try_from(value).map_err(|_| DropReason::BadMessageAuthenticator)?;
            found = Some((at, mac));
        }
    }
    let Some((at, mac)) = found else { return Ok(false) };
    buf.get_mut(at..at.saturating_add(16)).ok_or(DropReason::BadMessageAuthenticator)?.fill(0);
    let expected = message_authenticator(secret, &buf);
    if bool::from(expected.ct_eq(&mac)) { Ok(true) } else { Err(DropReason::BadMessageAuthenticator) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    // RFC 2865 §7.1, "User Telnet to Specified Host": shared secret "xyzzy5461", the
    // Access-Request's Request Authenticator and the Access-Accept the server sends back.
    const RFC2865_SECRET: &[u8] = b"xyzzy5461";
    const RFC2865_REQUEST_AUTH: &str = "0f403f9473978057bd83d5cb98f4227a";
    const RFC2865_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";

    #[test]
    fn rfc2865_response_authenticator_verifies() {
        let accept = unhex(RFC2865_ACCEPT);
        let req_auth: [u8; 16] = unhex(RFC2865_REQUEST_AUTH).try_into().unwrap();
        let raw = RawPacket::parse(&accept).unwrap();
        assert_eq!(raw.code(), Code::ACCESS_ACCEPT);
        assert_eq!(verify_response(&raw, &req_auth, RFC2865_SECRET), Ok(false));
        assert_eq!(verify_response(&raw, &req_auth, b"xyzzy5460"), Err(DropReason::BadResponseAuthenticator));
        let mut other = req_auth;
        other[0] ^= 1;
        assert_eq!(verify_response(&raw, &other, RFC2865_SECRET), Err(DropReason::BadResponseAuthenticator));
    }

    #[test]
    fn rfc2865_accept_is_rebuilt_bit_for_bit() {
        let accept = unhex(RFC2865_ACCEPT);
        let req_auth: [u8; 16] = unhex(RFC2865_REQUEST_AUTH).try_into().unwrap();
        let packet = Packet::decode(&accept).unwrap();
        assert_eq!(
            packet.attributes,
            vec![
                Attribute::ServiceType(1),
                Attribute::Other { kind: 15, value: vec![0, 0, 0, 0] },
                Attribute::Other { kind: 14, value: vec![192, 168, 1, 3] },
            ]
        );
        assert_eq!(packet.encode().unwrap(), accept);
        assert_eq!(packet.encode_response(&req_auth, RFC2865_SECRET).unwrap(), accept);
    }

    // Computed independently (Python's hashlib and hmac) for this packet: an Access-Request, id 7,
    // Request Authenticator 00 01 .. 0f, User-Name "alice", EAP-Message 02 01 00 0a 01 "alice",
    // Message-Authenticator; secret "testing123".
    const MA_REQUEST: &str = "01 07 00 39 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
        01 07 61 6c 69 63 65 4f 0c 02 01 00 0a 01 61 6c 69 63 65 50 12
        bb c5 6e 9b e8 a4 b8 8b 24 97 b2 d4 76 17 eb 81";

    #[test]
    fn message_authenticator_matches_an_independent_computation() {
        let mut p = Packet::new(Code::ACCESS_REQUEST, 7);
        p.authenticator = core::array::from_fn(|i| i as u8);
        p.attributes = vec![
            Attribute::UserName(b"alice".to_vec()),
            Attribute::EapMessage(vec![2, 1, 0, 10, 1, b'a', b'l', b'i', b'c', b'e']),
            Attribute::MessageAuthenticator([0xff; 16]),
        ];
        assert_eq!(hex::encode(p.encode_request(b"testing123").unwrap()), hex::encode(unhex(MA_REQUEST)));
    }

    // Also computed with Python: the Accounting-Request authenticator (RFC 2866 §3) of an
    // Accounting-Request, id 3, Acct-Status-Type Start, Acct-Session-Id "1-1"; secret "testing123".
    const ACCT_REQUEST: &str = "04 03 00 1f a2 09 21 2b 7f 78 69 79 36 0a 4d 7a ca c1 72 b7
        28 06 00 00 00 01 2c 05 31 2d 31";

    #[test]
    fn accounting_request_authenticator_matches_an_independent_computation() {
        let mut p = Packet::new(Code::ACCOUNTING_REQUEST, 3);
        p.authenticator = [0xaa; 16];
        p.attributes = vec![Attribute::AcctStatusType(1), Attribute::AcctSessionId(b"1-1".to_vec())];
        assert_eq!(hex::encode(p.encode_request(b"testing123").unwrap()), hex::encode(unhex(ACCT_REQUEST)));
    }

    #[test]
    fn responses_with_message_authenticator_verify_and_tampering_is_caught() {
        let req_auth = [0x42; 16];
        let mut p = Packet::new(Code::ACCESS_CHALLENGE, 9);
        p.attributes = vec![
            Attribute::MessageAuthenticator([0; 16]),
            Attribute::EapMessage(vec![1, 2, 0, 6, 4, 0]),
            Attribute::State(b"s1".to_vec()),
        ];
        let bytes = p.encode_response(&req_auth, b"secret").unwrap();
        let raw = RawPacket::parse(&bytes).unwrap();
        assert_eq!(verify_response(&raw, &req_auth, b"secret"), Ok(true));
        assert_eq!(verify_response(&raw, &req_auth, b"secreT"), Err(DropReason::BadResponseAuthenticator));

        // A Message-Authenticator that does not verify, under a Response Authenticator that does
        // (as a server holding the secret would never send, but the check must stand alone).
        let mut q = p.clone();
        q.attributes[0] = Attribute::MessageAuthenticator([1; 16]);
        let (mut forged, _) = q.encode_with(&req_auth).unwrap();
        let digest = md5_of(&[&forged, b"secret"]);
        forged[4..20].copy_from_slice(&digest);
        let raw = RawPacket::parse(&forged).unwrap();
        assert_eq!(verify_response(&raw, &req_auth, b"secret"), Err(DropReason::BadMessageAuthenticator));

        // Two Message-Authenticators.
        let mut q = p.clone();
        q.attributes.push(Attribute::MessageAuthenticator([0; 16]));
        let bytes = q.encode_response(&req_auth, b"secret").unwrap();
        let raw = RawPacket::parse(&bytes).unwrap();
        assert_eq!(verify_response(&raw, &req_auth, b"secret"), Err(DropReason::DuplicateMessageAuthenticator));

        // A Message-Authenticator of the wrong length.
        let mut q = p;
        q.attributes[0] = Attribute::Other { kind: 80, value: vec![0; 15] };
        let bytes = q.encode_response(&req_auth, b"secret").unwrap();
        let raw = RawPacket::parse(&bytes).unwrap();
        assert_eq!(verify_response(&raw, &req_auth, b"secret"), Err(DropReason::BadMessageAuthenticator));
    }

    #[test]
    fn structure_is_checked() {
        assert_eq!(RawPacket::parse(&[2; 19]).unwrap_err(), CodecError::BadPacketLength(19));
        let mut p = vec![2, 0, 0, 20];
        p.extend_from_slice(&[0; 16]);
        assert!(RawPacket::parse(&p).is_ok());
        // Octets past Length are padding (RFC 2865 §3).
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(RawPacket::parse(&p).unwrap().bytes().len(), 20);
        // Length beyond what arrived, or below 20.
        p[3] = 30;
        assert!(matches!(RawPacket::parse(&p), Err(CodecError::BadLengthField { length: 30, .. })));
        p[3] = 19;
        assert!(matches!(RawPacket::parse(&p), Err(CodecError::BadLengthField { length: 19, .. })));
        // Attributes that do not fill the packet exactly.
        let mut p = vec![2, 0, 0, 23];
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&[1, 3, b'a']);
        assert!(RawPacket::parse(&p).is_ok());
        p[21] = 4;
        assert!(matches!(RawPacket::parse(&p), Err(CodecError::BadAttributeLength { offset: 20, length: 4 })));
        p[21] = 1;
        assert!(matches!(RawPacket::parse(&p), Err(CodecError::BadAttributeLength { offset: 20, length: 1 })));
        let mut p = vec![2, 0, 0, 21];
        p.extend_from_slice(&[0; 16]);
        p.push(1);
        assert!(matches!(RawPacket::parse(&p), Err(CodecError::BadAttributeLength { offset: 20, length: 0 })));
        // Over 4096.
        let mut p = vec![2, 0, 0x10, 0x01];
        p.resize(4097, 0);
        assert!(matches!(RawPacket::parse(&p), Err(CodecError::BadLengthField { length: 4097, .. })));
    }

    #[test]
    fn encoding_refuses_more_than_4096_octets() {
        let mut p = Packet::new(Code::ACCESS_REQUEST, 0);
        p.attributes = vec![Attribute::EapMessage(vec![0; 253]); 16];
        assert_eq!(p.encode(), Err(CodecError::TooLarge(20 + 16 * 255)));
        p.attributes.truncate(15);
        p.attributes.push(Attribute::State(vec![0; 249]));
        assert_eq!(p.encode().unwrap().len(), 4096);
        p.attributes.push(Attribute::Class(vec![]));
        assert_eq!(p.encode(), Err(CodecError::TooLarge(4098)));
        assert_eq!(
            Packet::new(Code::ACCESS_ACCEPT, 0).encode_request(b"s"),
            Err(CodecError::WrongCodeForSigning(Code::ACCESS_ACCEPT))
        );
        assert_eq!(
            Packet::new(Code::ACCESS_REQUEST, 0).encode_response(&[0; 16], b"s"),
            Err(CodecError::WrongCodeForSigning(Code::ACCESS_REQUEST))
        );
        assert_eq!(format!("{:?}", Code(99)), "Code(99)");
        assert_eq!(format!("{:?}", Code::ACCESS_CHALLENGE), "Access-Challenge");
    }
}
