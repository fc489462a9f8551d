//! The transforms oxswan implements and their sizes (RFC 7296 §3.3.2, RFC 4106, RFC 5282, RFC 7634,
//! RFC 4868).

use crate::error::{CryptoError, Result};
use oxswan_wire::{EncrId, IntegId, KeId, PrfId};

/// An encryption transform with its key length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncrAlg {
    /// Transform ID.
    pub id: EncrId,
    /// Key length in bits, without the salt.
    pub key_bits: u16,
}

impl EncrAlg {
    /// Validates an ENCR transform: AES takes 128, 192 or 256 bit keys and needs the Key Length
    /// attribute (RFC 7296 §3.3.5); ChaCha20-Poly1305 has a fixed 256 bit key and must not carry one
    /// (RFC 7634 §2).
    pub fn new(id: EncrId, key_bits: Option<u16>) -> Result<Self> {
        match (id, key_bits) {
            (
                EncrId::AES_CBC | EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16,
                Some(bits @ (128 | 192 | 256)),
            ) => Ok(Self { id, key_bits: bits }),
            (EncrId::CHACHA20_POLY1305, None | Some(256)) => Ok(Self { id, key_bits: 256 }),
            _ => Err(CryptoError::UnsupportedEncr(id, key_bits.unwrap_or(0))),
        }
    }

    /// Whether this is a combined-mode (AEAD) cipher, which takes no integrity transform.
    pub fn is_aead(&self) -> bool {
        self.id != EncrId::AES_CBC
    }

    /// Key length in octets, without the salt.
    pub fn key_len(&self) -> usize {
        usize::from(self.key_bits / 8)
    }

    /// Salt octets taken from the key material after the key: 4 for AES-GCM (RFC 4106 §8.1, RFC 5282
    /// §7.1) and ChaCha20-Poly1305 (RFC 7634 §2), none for CBC.
    pub fn salt_len(&self) -> usize {
        if self.is_aead() { 4 } else { 0 }
    }

    /// Octets of key material this transform consumes from prf+ / KEYMAT: key plus salt.
    pub fn keymat_len(&self) -> usize {
        self.key_len().saturating_add(self.salt_len())
    }

    /// Explicit IV octets sent in each message or packet: 8 for the AEADs, the block size for CBC.
    pub fn iv_len(&self) -> usize {
        if self.is_aead() { 8 } else { 16 }
    }

    /// ICV octets appended by the AEAD, 0 for CBC (its ICV comes from the integrity transform).
    pub fn icv_len(&self) -> usize {
        match self.id {
            EncrId::AES_GCM_8 => 8,
            EncrId::AES_GCM_12 => 12,
            EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305 => 16,
            _ => 0,
        }
    }

    /// Block size the plaintext is padded to: 16 for CBC; AEADs are stream-like, and RFC 4303 §2.4 /
    /// RFC 7296 §3.14 only ask for 4-octet alignment of the ESP trailer, so 1 here.
    pub fn block_len(&self) -> usize {
        if self.is_aead() { 1 } else { 16 }
    }
}

/// A pseudorandom function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrfAlg(pub PrfId);

impl PrfAlg {
    /// Validates a PRF transform this implementation supports.
    pub fn new(id: PrfId) -> Result<Self> {
        match id {
            PrfId::HMAC_SHA1 | PrfId::HMAC_SHA2_256 | PrfId::HMAC_SHA2_384 | PrfId::HMAC_SHA2_512 => Ok(Self(id)),
            _ => Err(CryptoError::UnsupportedPrf(id)),
        }
    }

    /// Output length in octets, which is also the preferred key length (RFC 7296 §2.13; RFC 4868 §2.1.2
    /// for SHA-2).
    pub fn output_len(&self) -> usize {
        match self.0 {
            PrfId::HMAC_SHA1 => 20,
            PrfId::HMAC_SHA2_384 => 48,
            PrfId::HMAC_SHA2_512 => 64,
            _ => 32,
        }
    }

    /// Length of SK_d, SK_pi and SK_pr: the preferred key length of the PRF (RFC 7296 §2.14).
    pub fn key_len(&self) -> usize {
        self.output_len()
    }
}

/// An integrity algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntegAlg(pub IntegId);

impl IntegAlg {
    /// Validates an INTEG transform this implementation supports.
    pub fn new(id: IntegId) -> Result<Self> {
        match id {
            IntegId::HMAC_SHA1_96
            | IntegId::HMAC_SHA2_256_128
            | IntegId::HMAC_SHA2_384_192
            | IntegId::HMAC_SHA2_512_256 => Ok(Self(id)),
            _ => Err(CryptoError::UnsupportedInteg(id)),
        }
    }

    /// Key length in octets (RFC 2404 §3: 20 for SHA-1; RFC 4868 §2.1.1: the hash output length).
    pub fn key_len(&self) -> usize {
        match self.0 {
            IntegId::HMAC_SHA1_96 => 20,
            IntegId::HMAC_SHA2_384_192 => 48,
            IntegId::HMAC_SHA2_512_256 => 64,
            _ => 32,
        }
    }

    /// Truncated ICV length in octets.
    pub fn icv_len(&self) -> usize {
        match self.0 {
            IntegId::HMAC_SHA1_96 => 12,
            IntegId::HMAC_SHA2_384_192 => 24,
            IntegId::HMAC_SHA2_512_256 => 32,
            _ => 16,
        }
    }
}

/// Key exchange methods oxswan implements. MODP 1024 (group 2) is legacy and only accepted where the
/// configuration opts in ([`KeId::MODP1024`] is still parsed and named).
pub const SUPPORTED_KE: &[KeId] = &[
    KeId::MODP2048,
    KeId::MODP3072,
    KeId::MODP4096,
    KeId::ECP256,
    KeId::ECP384,
    KeId::ECP521,
    KeId::CURVE25519,
    KeId::ML_KEM_512,
    KeId::ML_KEM_768,
    KeId::ML_KEM_1024,
];

/// Whether a key exchange method is a KEM (RFC 9370 §2.2.2: the responder's KE data is a ciphertext, not
/// a public value of the same form as the initiator's).
pub fn ke_is_kem(id: KeId) -> bool {
    matches!(id, KeId::ML_KEM_512 | KeId::ML_KEM_768 | KeId::ML_KEM_1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let gcm = EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap();
        assert_eq!((gcm.key_len(), gcm.salt_len(), gcm.keymat_len(), gcm.iv_len(), gcm.icv_len()), (32, 4, 36, 8, 16));
        let gcm8 = EncrAlg::new(EncrId::AES_GCM_8, Some(128)).unwrap();
        assert_eq!(gcm8.icv_len(), 8);
        let cbc = EncrAlg::new(EncrId::AES_CBC, Some(192)).unwrap();
        assert_eq!(
            (cbc.key_len(), cbc.keymat_len(), cbc.iv_len(), cbc.block_len(), cbc.is_aead()),
            (24, 24, 16, 16, false)
        );
        let cc = EncrAlg::new(EncrId::CHACHA20_POLY1305, None).unwrap();
        assert_eq!((cc.key_len(), cc.keymat_len()), (32, 36));
        assert!(EncrAlg::new(EncrId::AES_CBC, None).is_err());
        assert!(EncrAlg::new(EncrId::AES_GCM_16, Some(512)).is_err());
        assert!(EncrAlg::new(EncrId::DES3, None).is_err());
        assert!(EncrAlg::new(EncrId::CHACHA20_POLY1305, Some(128)).is_err());
        assert_eq!(PrfAlg::new(PrfId::HMAC_SHA2_384).unwrap().output_len(), 48);
        assert!(PrfAlg::new(PrfId::HMAC_MD5).is_err());
        let i = IntegAlg::new(IntegId::HMAC_SHA2_512_256).unwrap();
        assert_eq!((i.key_len(), i.icv_len()), (64, 32));
        assert!(IntegAlg::new(IntegId::AES_XCBC_96).is_err());
        assert!(ke_is_kem(KeId::ML_KEM_768) && !ke_is_kem(KeId::CURVE25519));
    }
}
