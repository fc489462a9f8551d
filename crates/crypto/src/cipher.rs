//! AEAD and CBC ciphers on aws-lc-rs. STUB: being written.

use crate::alg::EncrAlg;
use crate::error::{CryptoError, Result};
use crate::provider::{AeadKey, CbcKey, CipherProvider};

/// Ciphers on aws-lc-rs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsCipher;

impl CipherProvider for AwsCipher {
    fn aead(&self, alg: EncrAlg, _key: &[u8]) -> Result<Box<dyn AeadKey>> {
        Err(CryptoError::UnsupportedEncr(alg.id, alg.key_bits))
    }
    fn cbc(&self, alg: EncrAlg, _key: &[u8]) -> Result<Box<dyn CbcKey>> {
        Err(CryptoError::UnsupportedEncr(alg.id, alg.key_bits))
    }
}
