//! PKCS#12 bundles (RFC 7292) of a client's certificate, its key and the CA, for the clients that
//! import an identity as one file: Windows (`Import-PfxCertificate`), Apple (a profile's
//! `com.apple.security.pkcs12` payload) and strongSwan for Android.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey, PrivateKeyChain,
};

use crate::ProfileError;

/// How the bundle is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs12Kind {
    /// pbeWithSHAAnd3-KeyTripleDES-CBC for the key and the certificates and an HMAC-SHA-1 MAC
    /// (RFC 7292 appendix C): what iOS, macOS, Android's key store and Windows before 10 1709 import.
    /// OpenSSL 3 reads it only with `-legacy`.
    Legacy,
    /// PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA-256, and an HMAC-SHA-256 MAC (RFC 8018).
    Modern,
}

/// Iterations of the password-based key derivation (OpenSSL's default is 2048; more costs an
/// attacker more, and phones import the file once).
const ITERATIONS: u32 = 10_000;

/// A bundle of `cert` (DER) with its `key` (PKCS#8 DER) and the `ca` (DER), under `password`;
/// `name` is the friendly name importers show.
pub fn pkcs12(
    cert: &[u8],
    key: &[u8],
    ca: &[u8],
    name: &str,
    password: &str,
    kind: Pkcs12Kind,
) -> Result<Vec<u8>, ProfileError> {
    let e = |e: p12_keystore::error::Error| ProfileError::Pkcs12(e.to_string());
    let leaf = Certificate::from_der(cert).map_err(e)?;
    let ca = Certificate::from_der(ca).map_err(e)?;
    let key = PrivateKey::from_der(key).map_err(e)?;
    // The local key ID ties the key to its certificate (RFC 7292 §4.2); the certificate's DER
    // hash is what OpenSSL uses too, but any value shared by the two bags will do.
    let id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert);
    let chain = PrivateKeyChain::new(id.as_ref(), key, [leaf, ca]);
    let mut store = KeyStore::new();
    store.add_entry(name, KeyStoreEntry::PrivateKeyChain(chain));
    let (enc, mac) = match kind {
        Pkcs12Kind::Legacy => (EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc, MacAlgorithm::HmacSha1),
        Pkcs12Kind::Modern => (EncryptionAlgorithm::PbeWithHmacSha256AndAes256, MacAlgorithm::HmacSha256),
    };
    store
        .writer(password)
        .encryption_algorithm(enc)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(e)
}
