//! The crypto provider: one struct of trait objects, so that tests and fuzzers can swap a deterministic
//! implementation in for the real one (the shape of rustls' `CryptoProvider`).

use std::sync::Arc;

use crate::alg::{EncrAlg, IntegAlg, PrfAlg};
use crate::error::Result;
use crate::secret::Secret;
use oxswan_wire::KeId;

/// Every cryptographic capability the IKE engine and the ESP data plane use.
#[derive(Clone, Debug)]
pub struct CryptoProvider {
    /// Randomness for SPIs, nonces, IVs and padding.
    pub random: Arc<dyn SecureRandom>,
    /// PRFs by algorithm.
    pub prf: Arc<dyn PrfProvider>,
    /// Integrity algorithms by algorithm.
    pub integ: Arc<dyn IntegProvider>,
    /// Ciphers (AEAD and CBC) by algorithm.
    pub cipher: Arc<dyn CipherProvider>,
    /// Key exchange methods.
    pub ke: Arc<dyn KeProvider>,
    /// Signature creation and verification for AUTH.
    pub signature: Arc<dyn SignatureProvider>,
}

/// The production provider: aws-lc-rs, with MODP groups on crypto-bigint; MODP 1024 refused.
pub fn default_provider() -> CryptoProvider {
    default_provider_with(false)
}

/// The production provider, with MODP 1024 (group 2) accepted when `allow_modp1024` (for old
/// Windows clients; RFC 8247 §2.4: it SHOULD NOT be used). A daemon passes
/// `oxswan_config::Config::needs_modp1024()`, true only where a proposal names `modp1024`.
pub fn default_provider_with(allow_modp1024: bool) -> CryptoProvider {
    CryptoProvider {
        random: Arc::new(crate::mac::AwsRandom),
        prf: Arc::new(crate::mac::AwsMac),
        integ: Arc::new(crate::mac::AwsMac),
        cipher: Arc::new(crate::cipher::AwsCipher),
        ke: Arc::new(crate::ke::DefaultKe { allow_modp1024 }),
        signature: Arc::new(crate::auth::AwsSignature),
    }
}

/// A cryptographically secure random number generator.
pub trait SecureRandom: Send + Sync + core::fmt::Debug {
    /// Fills `dest` with random octets.
    fn fill(&self, dest: &mut [u8]) -> Result<()>;
}

/// Computes a PRF (RFC 7296 §2.13).
pub trait PrfProvider: Send + Sync + core::fmt::Debug {
    /// `prf(key, data[0] | data[1] | ...)`. HMAC takes keys of any length.
    fn prf(&self, alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Result<Secret>;
}

/// Computes and checks integrity check values (truncated HMACs).
pub trait IntegProvider: Send + Sync + core::fmt::Debug {
    /// The truncated ICV over `data[0] | data[1] | ...`.
    fn sign(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]]) -> Result<Vec<u8>>;
    /// Checks `icv` in constant time; [`crate::CryptoError::IntegrityCheckFailed`] if it differs.
    fn verify(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]], icv: &[u8]) -> Result<()>;
    /// A keyed instance for the per-packet path (ESP): the key schedule is computed once and nothing
    /// is allocated per call.
    fn key(&self, alg: IntegAlg, key: &[u8]) -> Result<Box<dyn IntegKey>>;
}

/// A keyed integrity algorithm (HMAC truncated to the ICV length, RFC 4868, RFC 2404).
pub trait IntegKey: Send + Sync {
    /// ICV length in octets.
    fn icv_len(&self) -> usize;
    /// Writes the ICV over `data[0] | data[1] | ...` into `icv` (exactly `icv_len()` octets).
    fn sign_into(&self, data: &[&[u8]], icv: &mut [u8]) -> Result<()>;
    /// Checks `icv` in constant time; [`crate::CryptoError::IntegrityCheckFailed`] if it differs.
    fn verify(&self, data: &[&[u8]], icv: &[u8]) -> Result<()>;
}

/// Creates cipher instances for keys.
pub trait CipherProvider: Send + Sync + core::fmt::Debug {
    /// An AEAD keyed with `key` (the key only: the salt is part of each nonce).
    fn aead(&self, alg: EncrAlg, key: &[u8]) -> Result<Box<dyn AeadKey>>;
    /// A CBC block cipher keyed with `key`.
    fn cbc(&self, alg: EncrAlg, key: &[u8]) -> Result<Box<dyn CbcKey>>;
}

/// An AEAD key (AES-GCM per RFC 4106/5282, ChaCha20-Poly1305 per RFC 7634).
///
/// The nonce is the 4-octet salt followed by the 8-octet explicit IV. Tags may be truncated (AES-GCM
/// with 8 or 12 octet ICVs): `tag_len()` octets are written and checked.
pub trait AeadKey: Send + Sync {
    /// ICV length in octets.
    fn tag_len(&self) -> usize;
    /// Encrypts `in_out` in place and writes the tag into `tag` (exactly `tag_len()` octets).
    fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8], tag: &mut [u8]) -> Result<()>;
    /// Checks `tag` and decrypts `in_out` in place; on failure `in_out` content is unspecified and
    /// [`crate::CryptoError::IntegrityCheckFailed`] is returned.
    fn open_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8], tag: &[u8]) -> Result<()>;
}

/// A CBC-mode key (AES-CBC, RFC 3602), without padding: lengths must be multiples of the block size.
pub trait CbcKey: Send + Sync {
    /// Encrypts in place with the given IV.
    fn encrypt_in_place(&self, iv: &[u8; 16], in_out: &mut [u8]) -> Result<()>;
    /// Decrypts in place with the given IV.
    fn decrypt_in_place(&self, iv: &[u8; 16], in_out: &mut [u8]) -> Result<()>;
}

/// Key exchange methods (RFC 7296 §1.2 Diffie-Hellman, RFC 9370 KEMs).
pub trait KeProvider: Send + Sync + core::fmt::Debug {
    /// Whether this provider implements `group` (given the legacy opt-ins it was built with).
    fn supports(&self, group: KeId) -> bool;
    /// Starts an exchange as the party that sends first (the initiator): a DH key pair, or a KEM key
    /// pair whose encapsulation key is the KE data.
    fn start(&self, group: KeId) -> Result<Box<dyn KeyExchange>>;
    /// Answers a peer's KE data as the responder: for DH a new key pair and the shared secret, for a KEM
    /// the ciphertext and the encapsulated secret. Returns (our KE data, shared secret). Peer values are
    /// validated (length, point on curve, 1 < y < p-1) first.
    fn respond(&self, group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)>;
}

/// One side of a key exchange in progress.
pub trait KeyExchange: Send + core::fmt::Debug {
    /// The method.
    fn group(&self) -> KeId;
    /// Our KE payload data.
    fn public_value(&self) -> &[u8];
    /// Completes with the peer's KE data (validated), giving the shared secret (for DH, g^ir in the
    /// fixed length of the group, RFC 7296 §2.14; for a KEM, the decapsulated secret). Takes `&self`:
    /// a forged IKE_SA_INIT response with a bad value must not cost the initiator its key pair, so it
    /// can still complete with the genuine response that follows.
    fn complete(&self, peer: &[u8]) -> Result<Secret>;
}

/// Signature schemes for AUTH (RFC 7296 §3.8 classic methods and RFC 7427).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-1 (classic method 1 and RFC 7427 for old peers).
    RsaPkcs1Sha1,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, salt the hash length.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512.
    RsaPssSha512,
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384Sha384,
    /// ECDSA on P-521 with SHA-512.
    EcdsaP521Sha512,
    /// Ed25519 (RFC 8420).
    Ed25519,
}

/// How an ECDSA signature is encoded: classic methods 9–11 use r‖s of fixed length (RFC 4754 §7),
/// RFC 7427 uses the DER `ECDSA-Sig-Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcdsaEncoding {
    /// r‖s, each the size of the curve order.
    Fixed,
    /// ASN.1 DER SEQUENCE { r INTEGER, s INTEGER }.
    Asn1,
}

/// Signature creation and verification.
pub trait SignatureProvider: Send + Sync + core::fmt::Debug {
    /// Loads a private key (PKCS#8 DER, or for RSA/EC also the traditional PKCS#1 / SEC1 DER).
    fn load_private_key(&self, der: &[u8]) -> Result<Arc<dyn SigningKey>>;
    /// Verifies `signature` over `message` with the public key in `spki` (DER SubjectPublicKeyInfo).
    fn verify(
        &self,
        scheme: SignatureScheme,
        ecdsa: EcdsaEncoding,
        spki: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<()>;
}

/// Kinds of private keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA, with its modulus size in bits.
    Rsa(usize),
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// ECDSA on P-521.
    EcdsaP521,
    /// Ed25519.
    Ed25519,
}

/// A private key that signs AUTH octets.
pub trait SigningKey: Send + Sync + core::fmt::Debug {
    /// The key's type.
    fn key_type(&self) -> KeyType;
    /// The public key as DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> Vec<u8>;
    /// Signs `message` with `scheme`, which must suit the key type.
    fn sign(&self, scheme: SignatureScheme, ecdsa: EcdsaEncoding, message: &[u8]) -> Result<Vec<u8>>;
}
