//! Configuration payload (RFC 7296 §3.15). STUB: being written.

use crate::error::Result;
use crate::reader::Reader;

/// CP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpPayload {
    /// Raw body until the real parser lands.
    pub attributes: Vec<u8>,
}

impl CpPayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        Ok(Self { attributes: r.rest().to_vec() })
    }
    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.attributes);
        Ok(())
    }
}
