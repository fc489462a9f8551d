//! Key exchange methods: ECP and Curve25519 on aws-lc-rs, MODP on crypto-bigint, ML-KEM. STUB.

use crate::error::{CryptoError, Result};
use crate::provider::{KeProvider, KeyExchange};
use crate::secret::Secret;
use oxswan_wire::KeId;

/// The production key exchange provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultKe {
    /// Accept MODP 1024 (group 2), for old Windows clients only.
    pub allow_modp1024: bool,
}

impl KeProvider for DefaultKe {
    fn supports(&self, _group: KeId) -> bool {
        false
    }
    fn start(&self, group: KeId) -> Result<Box<dyn KeyExchange>> {
        Err(CryptoError::UnsupportedKe(group))
    }
    fn respond(&self, group: KeId, _peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
        Err(CryptoError::UnsupportedKe(group))
    }
}
