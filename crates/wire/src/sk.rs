//! Encrypted payloads SK (RFC 7296 §3.14) and SKF (RFC 7383 §2.5). STUB: being written.

use crate::error::Result;
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
    /// Parses the body.
    pub fn parse(next_inner: PayloadType, mut r: Reader<'_>) -> Result<Self> {
        let fragment_number = r.u16()?;
        let total_fragments = r.u16()?;
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
