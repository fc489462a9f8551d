//! Errors of the crypto crate.

use oxswan_wire::{EncrId, IntegId, KeId, PrfId};

/// Result of a cryptographic operation.
pub type Result<T, E = CryptoError> = core::result::Result<T, E>;

/// Why a cryptographic operation failed. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A proposal string names a keyword this implementation does not know.
    #[error("unknown algorithm keyword '{keyword}' in proposal '{proposal}'")]
    UnknownKeyword {
        /// The keyword.
        keyword: String,
        /// The whole proposal string.
        proposal: String,
    },
    /// A proposal string is not usable as written (missing or misplaced transforms).
    #[error("invalid proposal '{proposal}': {reason}")]
    InvalidProposal {
        /// The proposal string.
        proposal: String,
        /// What is wrong.
        reason: String,
    },
    /// An encryption algorithm or key length this provider does not implement.
    #[error("unsupported encryption algorithm {0:?} with {1} bit key")]
    UnsupportedEncr(EncrId, u16),
    /// A PRF this provider does not implement.
    #[error("unsupported PRF {0:?}")]
    UnsupportedPrf(PrfId),
    /// An integrity algorithm this provider does not implement.
    #[error("unsupported integrity algorithm {0:?}")]
    UnsupportedInteg(IntegId),
    /// A key exchange method this provider does not implement (or that needs an explicit opt-in).
    #[error("unsupported key exchange method {0:?}")]
    UnsupportedKe(KeId),
    /// A signature scheme or key type this provider does not implement.
    #[error("unsupported signature scheme: {0}")]
    UnsupportedSignature(String),
    /// The peer's key exchange data is invalid: wrong length, not on the curve, out of range.
    #[error("invalid public value for {group:?}: {reason}")]
    InvalidPublicValue {
        /// The key exchange method.
        group: KeId,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key has the wrong length for its algorithm.
    #[error("invalid key length {got}, expected {expected}")]
    InvalidKeyLength {
        /// Expected octets.
        expected: usize,
        /// Given octets.
        got: usize,
    },
    /// Integrity check or AEAD tag verification failed (RFC 7296 §2.21.2: drop the message).
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// Decrypted content is malformed (e.g. a pad length beyond the plaintext).
    #[error("malformed decrypted data: {0}")]
    Malformed(&'static str),
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A key could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The wire codec rejected a structure.
    #[error(transparent)]
    Wire(#[from] oxswan_wire::Error),
    /// The underlying library failed where it should not (e.g. the system RNG).
    #[error("crypto library failure: {0}")]
    Internal(&'static str),
}
