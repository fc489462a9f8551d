//! The AUTH payload: PSK (RFC 7296 §2.15) and signatures (RFC 7427 and the classic methods). STUB.

use std::sync::Arc;

use crate::error::{CryptoError, Result};
use crate::provider::{EcdsaEncoding, SignatureProvider, SignatureScheme, SigningKey};

/// Signatures on aws-lc-rs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsSignature;

impl SignatureProvider for AwsSignature {
    fn load_private_key(&self, _der: &[u8]) -> Result<Arc<dyn SigningKey>> {
        Err(CryptoError::UnsupportedSignature("not yet".into()))
    }
    fn verify(&self, _s: SignatureScheme, _e: EcdsaEncoding, _spki: &[u8], _m: &[u8], _sig: &[u8]) -> Result<()> {
        Err(CryptoError::UnsupportedSignature("not yet".into()))
    }
}
