//! IKEv2 and ESP cryptography for oxswan.
//!
//! - [`alg`]: the transforms oxswan negotiates, by IANA ID, with their key, IV and ICV sizes;
//!   [`proposal`]: strongSwan proposal strings (`aes256gcm16-prfsha256-x25519`) to wire proposals.
//! - [`provider`]: the [`CryptoProvider`], a struct of trait objects for randomness, PRFs, integrity,
//!   ciphers, key exchange and signatures; [`provider::default_provider`] implements them on aws-lc-rs
//!   (MODP groups on crypto-bigint); with the `test-provider` feature, `test_provider` gives a
//!   deterministic, NO-SECURITY one for simulations and fuzzing.
//! - [`keys`]: prf+, SKEYSEED and the SK_* keys, CHILD SA KEYMAT, rekeying (RFC 7296 §2.13–2.18,
//!   RFC 9370); [`sk`]: protecting and unprotecting SK payloads (RFC 7296 §3.14, RFC 5282);
//!   [`auth`]: the AUTH payload (RFC 7296 §2.15, RFC 7427).
//!
//! Every secret is a [`Secret`]: zeroized on drop, never printed.
#![forbid(unsafe_code)]

pub mod alg;
pub mod auth;
pub mod cipher;
pub mod error;
pub mod hash;
pub mod ke;
pub mod keys;
pub mod mac;
pub mod proposal;
pub mod provider;
pub mod secret;
pub mod sk;
#[cfg(feature = "test-provider")]
pub mod test_provider;

pub use error::{CryptoError, Result};
pub use provider::{CryptoProvider, default_provider, default_provider_with};
pub use secret::Secret;
