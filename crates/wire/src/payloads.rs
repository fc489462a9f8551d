//! The payloads whose body is a small header and opaque data: KE, CERT, CERTREQ, AUTH, Nonce,
//! Vendor ID, EAP, and payloads of unknown type.

use crate::error::{ErrorKind, Result};
use crate::reader::{PutExt, Reader};
use crate::types::{AuthMethod, CertEncoding, KeId, PayloadType};

/// Key Exchange payload (RFC 7296 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    /// Key Exchange Method (Diffie-Hellman Group Num).
    pub group: KeId,
    /// The public value or KEM data.
    pub data: Vec<u8>,
}

impl KePayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let group = KeId(r.u16()?);
        let _reserved = r.u16()?;
        Ok(Self { group, data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u16(self.group.0);
        out.put_u16(0);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Certificate payload (RFC 7296 §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPayload {
    /// Certificate Encoding.
    pub encoding: CertEncoding,
    /// Certificate Data (DER for [`CertEncoding::X509_SIGNATURE`]).
    pub data: Vec<u8>,
}

impl CertPayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let encoding = CertEncoding(r.u8()?);
        Ok(Self { encoding, data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u8(self.encoding.0);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Certificate Request payload (RFC 7296 §3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReqPayload {
    /// Certificate Encoding.
    pub encoding: CertEncoding,
    /// Certification Authority: for X.509, a concatenation of 20-octet SHA-1 hashes of trusted CAs'
    /// SubjectPublicKeyInfo.
    pub data: Vec<u8>,
}

impl CertReqPayload {
    /// Length of one CA key hash for X.509 encodings (RFC 7296 §3.7).
    pub const SHA1_LEN: usize = 20;

    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let encoding = CertEncoding(r.u8()?);
        Ok(Self { encoding, data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u8(self.encoding.0);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// The CA key hashes of an X.509 request; trailing octets that do not make a whole hash are ignored,
    /// as strongSwan does.
    pub fn ca_key_hashes(&self) -> impl Iterator<Item = &[u8]> {
        self.data.chunks_exact(Self::SHA1_LEN)
    }
}

/// Authentication payload (RFC 7296 §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    /// Auth Method.
    pub method: AuthMethod,
    /// Authentication Data (for [`AuthMethod::DIGITAL_SIGNATURE`], an RFC 7427 ASN.1 length, the
    /// AlgorithmIdentifier and the signature).
    pub data: Vec<u8>,
}

impl AuthPayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let method = AuthMethod(r.u8()?);
        let _reserved = r.take(3)?;
        Ok(Self { method, data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u8(self.method.0);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Nonce payload (RFC 7296 §3.9). The size rule (16 to 256 octets, at least half the PRF key size,
/// §2.10) is the engine's to enforce.
#[derive(Clone, PartialEq, Eq)]
pub struct NoncePayload {
    /// Nonce Data.
    pub data: Vec<u8>,
}

impl core::fmt::Debug for NoncePayload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "NoncePayload({} octets)", self.data.len())
    }
}

impl NoncePayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        Ok(Self { data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Vendor ID payload (RFC 7296 §3.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorIdPayload {
    /// Vendor ID.
    pub data: Vec<u8>,
}

impl VendorIdPayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        Ok(Self { data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

wire_enum! {
    /// EAP Code (RFC 3748 §4).
    pub struct EapCode(u8) {
        REQUEST = 1,
        RESPONSE = 2,
        SUCCESS = 3,
        FAILURE = 4,
    }
}

/// EAP payload (RFC 7296 §3.16): one EAP message (RFC 3748 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapPayload {
    /// Code.
    pub code: EapCode,
    /// Identifier.
    pub identifier: u8,
    /// For Request and Response, the Type octet followed by Type-Data; empty for Success and Failure.
    pub data: Vec<u8>,
}

impl EapPayload {
    /// Parses the body: the EAP Length field must equal the body length, and Request/Response must
    /// carry a Type octet.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let total = r.remaining();
        let code = EapCode(r.u8()?);
        let identifier = r.u8()?;
        let length = usize::from(r.u16()?);
        if length != total {
            return Err(r.error(ErrorKind::BadLength { length, reason: "EAP length differs from the payload" }));
        }
        let data = r.rest().to_vec();
        if matches!(code, EapCode::REQUEST | EapCode::RESPONSE) && data.is_empty() {
            return Err(r.error(ErrorKind::Truncated { needed: 1, available: 0 }));
        }
        Ok(Self { code, identifier, data })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let len = crate::reader::len_u16(
            self.data.len().saturating_add(4),
            crate::Context::Payload(PayloadType::EAP),
            "EAP message",
        )?;
        out.put_u8(self.code.0);
        out.put_u8(self.identifier);
        out.put_u16(len);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// The EAP method type of a Request or Response.
    pub fn eap_type(&self) -> Option<u8> {
        match self.code {
            EapCode::REQUEST | EapCode::RESPONSE => self.data.first().copied(),
            _ => None,
        }
    }
}

/// A payload of a type this crate does not parse (kept verbatim so it survives a round trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPayload {
    /// Its type.
    pub payload_type: PayloadType,
    /// Its critical bit.
    pub critical: bool,
    /// Its body.
    pub data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Payload, Payloads};

    fn one(ty: PayloadType, hex_chain: &str) -> Result<Payload> {
        let bytes = hex::decode(hex_chain).unwrap();
        let raw = Payloads::new(ty, &bytes, 0).next().unwrap()?;
        Payload::parse(&raw)
    }

    fn round_trip(ty: PayloadType, hex_chain: &str) -> Payload {
        let p = one(ty, hex_chain).unwrap();
        let mut out = Vec::new();
        p.emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(hex::encode(&out), hex_chain);
        p
    }

    #[test]
    fn ke() {
        let p = round_trip(PayloadType::KE, "0000000c001f0000aabbccdd");
        assert_eq!(p, Payload::Ke(KePayload { group: KeId::CURVE25519, data: vec![0xaa, 0xbb, 0xcc, 0xdd] }));
        let e = one(PayloadType::KE, "00000007001f00").unwrap_err();
        assert_eq!(e.context, Context::Payload(PayloadType::KE));
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn cert_certreq_auth_nonce_vid() {
        assert_eq!(
            round_trip(PayloadType::CERT, "0000000804308201"),
            Payload::Cert(CertPayload { encoding: CertEncoding::X509_SIGNATURE, data: vec![0x30, 0x82, 0x01] })
        );
        let hashes = "11".repeat(20) + &"22".repeat(20);
        let p = round_trip(PayloadType::CERTREQ, &format!("0000002d04{hashes}"));
        let Payload::CertReq(cr) = p else { panic!() };
        assert_eq!(cr.ca_key_hashes().count(), 2);
        assert_eq!(
            round_trip(PayloadType::AUTH, "0000000a02000000abcd"),
            Payload::Auth(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: vec![0xab, 0xcd] })
        );
        assert!(one(PayloadType::AUTH, "0000000602000000").is_err());
        assert!(matches!(round_trip(PayloadType::NONCE, "00000008deadbeef"), Payload::Nonce(n) if n.data.len() == 4));
        assert!(matches!(round_trip(PayloadType::VENDOR_ID, "000000050a"), Payload::VendorId(_)));
    }

    #[test]
    fn eap() {
        // EAP-Response/Identity "a".
        let p = round_trip(PayloadType::EAP, "0000000a020700060161");
        let Payload::Eap(eap) = p else { panic!() };
        assert_eq!((eap.code, eap.identifier, eap.eap_type()), (EapCode::RESPONSE, 7, Some(1)));
        // Success carries no type.
        assert!(matches!(round_trip(PayloadType::EAP, "0000000803070004"), Payload::Eap(e) if e.eap_type().is_none()));
        // EAP length disagreeing with the payload.
        let e = one(PayloadType::EAP, "0000000a020700070161").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 7, .. }));
        // A Request without a Type.
        assert!(one(PayloadType::EAP, "0000000801070004").is_err());
    }
}
