//! Traffic Selector payloads TSi/TSr (RFC 7296 §3.13). STUB: being written.

use crate::error::Result;
use crate::reader::Reader;

/// TSi or TSr payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsPayload {
    /// Raw body until the real parser lands.
    pub selectors: Vec<u8>,
}

impl TsPayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        Ok(Self { selectors: r.rest().to_vec() })
    }
    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.selectors);
        Ok(())
    }
}
