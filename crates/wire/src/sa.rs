//! Security Association payload (RFC 7296 §3.3): proposals, transforms and transform attributes.

use crate::error::{Context, Error, ErrorKind, Result};
use crate::reader::{PutExt, Reader, len_u16};
use crate::types::{AttributeType, EncrId, EsnId, IntegId, KeId, PayloadType, PrfId, ProtocolId, TransformType};

const CTX_PROPOSAL: Context = Context::Part(PayloadType::SA, "proposal");
const CTX_TRANSFORM: Context = Context::Part(PayloadType::SA, "transform");
const CTX_ATTRIBUTE: Context = Context::Part(PayloadType::SA, "transform attribute");

/// Last Substruc values (RFC 7296 §3.3.1, §3.3.2).
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
/// Attribute Format bit: set for TV (a 2-octet value), clear for TLV (RFC 7296 §3.3.5).
const AF_TV: u16 = 0x8000;

/// SA payload: one or more proposals, in the sender's order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    /// Proposals.
    pub proposals: Vec<Proposal>,
}

/// One proposal (RFC 7296 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proposal {
    /// Proposal Num: 1 for the first, then consecutive; a responder echoes the number it chose.
    pub number: u8,
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// The sender's inbound SPI: empty in an initial IKE_SA_INIT, 8 octets for an IKE rekey, 4 for AH/ESP.
    pub spi: Vec<u8>,
    /// Transforms; several of one type are alternatives (RFC 7296 §3.3.6).
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// The transforms of one type, in order.
    pub fn transforms_of(&self, ty: TransformType) -> impl Iterator<Item = &Transform> {
        self.transforms.iter().filter(move |t| t.transform_type == ty)
    }

    /// The SPI as a 32-bit value, for AH/ESP proposals.
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice()).ok().map(u32::from_be_bytes)
    }
}

/// One transform (RFC 7296 §3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform Type.
    pub transform_type: TransformType,
    /// Transform ID, in the namespace of the type ([`EncrId`], [`PrfId`], [`IntegId`], [`KeId`],
    /// [`EsnId`]).
    pub transform_id: u16,
    /// Attributes; in practice only Key Length.
    pub attributes: Vec<TransformAttribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: TransformType, transform_id: u16) -> Self {
        Self { transform_type, transform_id, attributes: Vec::new() }
    }

    /// An encryption transform, with a Key Length attribute in bits for variable-length ciphers.
    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Self {
        let mut t = Self::new(TransformType::ENCR, id.0);
        if let Some(bits) = key_bits {
            t.attributes.push(TransformAttribute {
                attribute_type: AttributeType::KEY_LENGTH,
                value: AttributeValue::Tv(bits),
            });
        }
        t
    }

    /// A PRF transform.
    pub fn prf(id: PrfId) -> Self {
        Self::new(TransformType::PRF, id.0)
    }

    /// An integrity transform.
    pub fn integ(id: IntegId) -> Self {
        Self::new(TransformType::INTEG, id.0)
    }

    /// A key exchange transform of type `ty` (KE, or ADDKE1..7 per RFC 9370).
    pub fn ke(ty: TransformType, id: KeId) -> Self {
        Self::new(ty, id.0)
    }

    /// An ESN transform.
    pub fn esn(id: EsnId) -> Self {
        Self::new(TransformType::ESN, id.0)
    }

    /// The Key Length attribute, in bits.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match (a.attribute_type, &a.value) {
            (AttributeType::KEY_LENGTH, AttributeValue::Tv(v)) => Some(*v),
            _ => None,
        })
    }

    fn parse(r: &mut Reader<'_>) -> Result<(Self, bool)> {
        let offset = r.offset();
        let last = r.u8()?;
        let _reserved = r.u8()?;
        let length = usize::from(r.u16()?);
        let mut body = r.sub(length.saturating_sub(4)).map_err(|_| {
            Error::new(
                CTX_TRANSFORM,
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "runs past its proposal" },
            )
        })?;
        if length < 8 {
            return Err(Error::new(
                CTX_TRANSFORM,
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "shorter than 8" },
            ));
        }
        let more = match last {
            LAST => false,
            MORE_TRANSFORMS => true,
            v => {
                return Err(Error::new(
                    CTX_TRANSFORM,
                    offset,
                    ErrorKind::InvalidValue { field: "Last Substruc", value: v.into() },
                ));
            }
        };
        let transform_type = TransformType(body.u8()?);
        let _reserved = body.u8()?;
        let transform_id = body.u16()?;
        let mut attributes = Vec::new();
        while !body.is_empty() {
            attributes.push(TransformAttribute::parse(&mut body)?);
        }
        Ok((Self { transform_type, transform_id, attributes }, more))
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.put_u8(if last { LAST } else { MORE_TRANSFORMS });
        out.put_u8(0);
        out.put_u16(0);
        out.put_u8(self.transform_type.0);
        out.put_u8(0);
        out.put_u16(self.transform_id);
        for a in &self.attributes {
            a.emit(out)?;
        }
        patch_len(out, start, CTX_TRANSFORM, "transform")
    }
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformAttribute {
    /// Attribute Type (15 bits).
    pub attribute_type: AttributeType,
    /// Its value, in the format it was sent in.
    pub value: AttributeValue,
}

/// The two attribute formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// Type/Value: a 2-octet value (AF = 1).
    Tv(u16),
    /// Type/Length/Value (AF = 0).
    Tlv(Vec<u8>),
}

impl TransformAttribute {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut r2 = r.clone().context(CTX_ATTRIBUTE);
        let ty = r2.u16()?;
        let attribute_type = AttributeType(ty & !AF_TV);
        let value = if ty & AF_TV != 0 {
            AttributeValue::Tv(r2.u16()?)
        } else {
            let len = usize::from(r2.u16()?);
            AttributeValue::Tlv(r2.take(len)?.to_vec())
        };
        *r = r2.context(CTX_TRANSFORM);
        Ok(Self { attribute_type, value })
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let ty = self.attribute_type.0 & !AF_TV;
        match &self.value {
            AttributeValue::Tv(v) => {
                out.put_u16(ty | AF_TV);
                out.put_u16(*v);
            }
            AttributeValue::Tlv(v) => {
                out.put_u16(ty);
                out.put_u16(len_u16(v.len(), CTX_ATTRIBUTE, "attribute value")?);
                out.extend_from_slice(v);
            }
        }
        Ok(())
    }
}

impl SaPayload {
    /// Parses the body: at least one proposal; Last Substruc, lengths and transform counts must agree.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let mut proposals = Vec::new();
        loop {
            let (p, more) = Proposal::parse(&mut r)?;
            proposals.push(p);
            if !more {
                break;
            }
        }
        r.finish()?;
        Ok(Self { proposals })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.proposals.is_empty() {
            return Err(Error::new(
                Context::Payload(PayloadType::SA),
                out.len(),
                ErrorKind::InvalidValue { field: "number of proposals", value: 0 },
            ));
        }
        let n = self.proposals.len();
        for (i, p) in self.proposals.iter().enumerate() {
            p.emit(i.saturating_add(1) == n, out)?;
        }
        Ok(())
    }
}

impl Proposal {
    fn parse(r: &mut Reader<'_>) -> Result<(Self, bool)> {
        let offset = r.offset();
        let mut r0 = r.clone().context(CTX_PROPOSAL);
        let last = r0.u8()?;
        let _reserved = r0.u8()?;
        let length = usize::from(r0.u16()?);
        if length < 8 {
            return Err(Error::new(
                CTX_PROPOSAL,
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "shorter than 8" },
            ));
        }
        let mut body = r0.sub(length.saturating_sub(4)).map_err(|_| {
            Error::new(
                CTX_PROPOSAL,
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "runs past the SA payload" },
            )
        })?;
        let more = match last {
            LAST => false,
            MORE_PROPOSALS => true,
            v => {
                return Err(Error::new(
                    CTX_PROPOSAL,
                    offset,
                    ErrorKind::InvalidValue { field: "Last Substruc", value: v.into() },
                ));
            }
        };
        let number = body.u8()?;
        let protocol = ProtocolId(body.u8()?);
        let spi_size = usize::from(body.u8()?);
        let num_transforms = usize::from(body.u8()?);
        let spi = body.take(spi_size)?.to_vec();
        let mut transforms = Vec::with_capacity(num_transforms);
        let mut more_transforms = num_transforms > 0;
        while more_transforms && transforms.len() <= num_transforms {
            let mut tr = body.clone().context(CTX_TRANSFORM);
            let (t, more) = Transform::parse(&mut tr)?;
            body = tr.context(CTX_PROPOSAL);
            transforms.push(t);
            more_transforms = more;
        }
        if transforms.len() != num_transforms {
            return Err(Error::new(
                CTX_PROPOSAL,
                offset.saturating_add(7),
                ErrorKind::InvalidValue { field: "Num Transforms", value: num_transforms as u64 },
            ));
        }
        body.finish().map_err(|e| Error { context: CTX_PROPOSAL, ..e })?;
        *r = r0.context(Context::Payload(PayloadType::SA));
        Ok((Self { number, protocol, spi, transforms }, more))
    }

    fn emit(&self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.put_u8(if last { LAST } else { MORE_PROPOSALS });
        out.put_u8(0);
        out.put_u16(0);
        out.put_u8(self.number);
        out.put_u8(self.protocol.0);
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| {
            Error::new(CTX_PROPOSAL, start, ErrorKind::TooLong { field: "SPI", length: self.spi.len() })
        })?;
        let num = u8::try_from(self.transforms.len()).map_err(|_| {
            Error::new(
                CTX_PROPOSAL,
                start,
                ErrorKind::TooLong { field: "transform list", length: self.transforms.len() },
            )
        })?;
        out.put_u8(spi_size);
        out.put_u8(num);
        out.extend_from_slice(&self.spi);
        let n = self.transforms.len();
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(i.saturating_add(1) == n, out)?;
        }
        patch_len(out, start, CTX_PROPOSAL, "proposal")
    }
}

/// Writes the length of the structure that starts at `start` into its bytes 2..4.
fn patch_len(out: &mut [u8], start: usize, ctx: Context, field: &'static str) -> Result<()> {
    let len = len_u16(out.len().saturating_sub(start), ctx, field)?;
    if let Some(f) = out.get_mut(start.saturating_add(2)..start.saturating_add(4)) {
        f.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Payloads};

    fn one(hex_chain: &str) -> Result<Payload> {
        let bytes = hex::decode(hex_chain).unwrap();
        let raw = Payloads::new(PayloadType::SA, &bytes, 0).next().unwrap()?;
        Payload::parse(&raw)
    }

    /// aes256gcm16-prfsha256-x25519 as an IKE proposal, as strongSwan sends it.
    const IKE_GCM: &str = concat!(
        "00000030", // generic header, length 48
        "0000002c", "01010004", // last proposal, len 44, #1, IKE, no SPI, 4 transforms
        "0300000c", "01000014", "800e0100", // ENCR AES_GCM_16, key length 256
        "03000008", "02000005", // PRF HMAC_SHA2_256
        "03000008", "0400001f", // KE Curve25519
        "00000008", "0600001f", // ADDKE1 Curve25519 (as an unusual but valid ADDKE)
    );

    #[test]
    fn ike_proposal_round_trip() {
        let p = one(IKE_GCM).unwrap();
        let Payload::Sa(sa) = &p else { panic!() };
        let prop = &sa.proposals[0];
        assert_eq!((prop.number, prop.protocol, prop.spi.len()), (1, ProtocolId::IKE, 0));
        assert_eq!(prop.transforms[0], Transform::encr(EncrId::AES_GCM_16, Some(256)));
        assert_eq!(prop.transforms[0].key_length(), Some(256));
        assert_eq!(prop.transforms[3].transform_type.additional_ke_index(), Some(1));
        let mut out = Vec::new();
        p.emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(hex::encode(out), IKE_GCM);
    }

    #[test]
    fn esp_proposal_with_spi_and_two_proposals() {
        let sa = SaPayload {
            proposals: vec![
                Proposal {
                    number: 1,
                    protocol: ProtocolId::ESP,
                    spi: vec![0xc0, 0, 0, 1],
                    transforms: vec![Transform::encr(EncrId::AES_GCM_16, Some(128)), Transform::esn(EsnId::NO_ESN)],
                },
                Proposal {
                    number: 2,
                    protocol: ProtocolId::ESP,
                    spi: vec![0xc0, 0, 0, 1],
                    transforms: vec![
                        Transform::encr(EncrId::AES_CBC, Some(128)),
                        Transform::integ(IntegId::HMAC_SHA2_256_128),
                        Transform::esn(EsnId::NO_ESN),
                    ],
                },
            ],
        };
        let mut out = Vec::new();
        Payload::Sa(sa.clone()).emit(PayloadType::NONE, &mut out).unwrap();
        // First proposal says "more" (2), the second "last" (0).
        assert_eq!(out[4], 2);
        let back = one(&hex::encode(&out)).unwrap();
        assert_eq!(back, Payload::Sa(sa.clone()));
        assert_eq!(sa.proposals[0].spi_u32(), Some(0xc000_0001));
    }

    #[test]
    fn bad_structures() {
        // Num Transforms says 5 but there are 4.
        let bad = IKE_GCM.replacen("01010004", "01010005", 1);
        assert!(matches!(one(&bad).unwrap_err().kind, ErrorKind::InvalidValue { field: "Num Transforms", .. }));
        // Last transform claims more follow.
        let bad = IKE_GCM.replacen("00000008", "03000008", 1);
        assert!(one(&bad).is_err());
        // Proposal length past the payload.
        let bad = IKE_GCM.replacen("0000002c", "00000034", 1);
        let e = one(&bad).unwrap_err();
        assert_eq!(e.context, CTX_PROPOSAL);
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 52, .. }));
        // Transform length shorter than its header.
        let bad = IKE_GCM.replacen("03000008", "03000004", 1);
        assert!(one(&bad).is_err());
        // Bad Last Substruc value on a proposal.
        let bad = IKE_GCM.replacen("0000002c", "0100002c", 1);
        assert!(matches!(one(&bad).unwrap_err().kind, ErrorKind::InvalidValue { field: "Last Substruc", .. }));
        // Empty SA payload.
        assert!(one("00000004").is_err());
        // A TLV attribute longer than the transform.
        let bad = IKE_GCM.replacen("800e0100", "000e0100", 1);
        assert!(one(&bad).is_err());
    }
}
