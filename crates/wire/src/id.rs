//! Identification payloads IDi/IDr (RFC 7296 §3.5). STUB: being written.

use crate::error::Result;
use crate::reader::Reader;

/// IDi or IDr payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// Raw body until the real parser lands.
    pub data: Vec<u8>,
}

impl IdPayload {
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
