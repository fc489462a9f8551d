//! Encrypted payloads SK (RFC 7296 §3.14) and SKF (RFC 7383 §2.5), still encrypted. The crypto crate
//! decrypts them (it needs the offsets in the message, which [`crate::RawPayload`] carries).

use crate::error::{ErrorKind, Result};
use crate::reader::Reader;
use crate::types::PayloadType;

/// SK payload, still encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkPayload {
    /// Type of the first encrypted payload (the SK's Next Payload field).
    pub next_inner: PayloadType,
    /// IV, ciphertext and ICV.
    pub data: Vec<u8>,
}

impl SkPayload {
    /// Parses the body.
    pub fn parse(next_inner: PayloadType, mut r: Reader<'_>) -> Result<Self> {
        Ok(Self { next_inner, data: r.rest().to_vec() })
    }
    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// SKF payload, still encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkfPayload {
    /// Type of the first encrypted payload; non-zero only in fragment 1.
    pub next_inner: PayloadType,
    /// Fragment Number, from 1.
    pub fragment_number: u16,
    /// Total Fragments.
    pub total_fragments: u16,
    /// IV, ciphertext and ICV.
    pub data: Vec<u8>,
}

impl SkfPayload {
    /// Parses the body and checks the fragment numbering of RFC 7383 §2.5: 1 ≤ Fragment Number ≤
    /// Total Fragments, and only the first fragment names the first inner payload.
    pub fn parse(next_inner: PayloadType, mut r: Reader<'_>) -> Result<Self> {
        let fragment_number = r.u16()?;
        let total_fragments = r.u16()?;
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(r.error(ErrorKind::InvalidValue { field: "Fragment Number", value: fragment_number.into() }));
        }
        if fragment_number != 1 && next_inner != PayloadType::NONE {
            return Err(r.error(ErrorKind::InvalidValue {
                field: "Next Payload of a later fragment",
                value: next_inner.0.into(),
            }));
        }
        Ok(Self { next_inner, fragment_number, total_fragments, data: r.rest().to_vec() })
    }
    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.fragment_number.to_be_bytes());
        out.extend_from_slice(&self.total_fragments.to_be_bytes());
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Payloads};

    fn skf(next: u8, number: u16, total: u16) -> Result<Payload> {
        let mut bytes = vec![next, 0, 0, 12];
        bytes.extend_from_slice(&number.to_be_bytes());
        bytes.extend_from_slice(&total.to_be_bytes());
        bytes.extend_from_slice(&[0xaa; 4]);
        let raw = Payloads::new(PayloadType::SKF, &bytes, 28).next().unwrap()?;
        Payload::parse(&raw)
    }

    #[test]
    fn fragment_numbering() {
        let Payload::Skf(f) = skf(35, 1, 3).unwrap() else { panic!() };
        assert_eq!((f.next_inner, f.fragment_number, f.total_fragments, f.data.len()), (PayloadType::IDI, 1, 3, 4));
        assert!(skf(0, 3, 3).is_ok());
        assert!(skf(0, 0, 3).is_err());
        assert!(skf(0, 4, 3).is_err());
        assert!(skf(0, 1, 0).is_err());
        assert!(skf(35, 2, 3).is_err());
        let mut out = Vec::new();
        Payload::Skf(f.clone()).emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(out[0], 35, "SKF names its first inner payload, not the next outer one");
    }
}
