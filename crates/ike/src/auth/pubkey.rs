//! Authentication with a certificate's key (RFC 7296 §2.15, RFC 7427 Digital Signature, RFC 4754 for
//! classic ECDSA): our signature over the signed octets, and the peer's checked against a chain to one
//! of our CAs whose subject or subjectAltName is its identity.

use oxswan_crypto::auth::{scheme_hash, sign_auth, sign_auth_with, verify_auth};
use oxswan_crypto::provider::{KeyType, SignatureScheme};
use oxswan_wire::payloads::{AuthPayload, CertPayload};
use oxswan_wire::{AuthMethod, CertEncoding};

use super::{AuthCtx, AuthError, Authenticator};
use crate::cert::{LocalCert, TrustStore, identity_string};

/// Our certificate's key and the CAs the peer's must chain to (either may be absent on a side that
/// authenticates the other way).
pub(crate) struct PubkeyAuth<'a> {
    pub local: Option<&'a LocalCert>,
    pub trust: Option<&'a TrustStore>,
    pub rsa_pss: bool,
}

impl Authenticator for PubkeyAuth<'_> {
    fn build(&self, ctx: &AuthCtx<'_>, octets: &[u8]) -> Result<AuthPayload, AuthError> {
        let cert = self.local.ok_or_else(|| AuthError::Signature("no private key".into()))?;
        // RFC 7427 §4: Digital Signature with a hash the peer announced; without the notify, or
        // without a common hash, the classic method of the key (RFC 4754 for ECDSA). aws-lc-rs makes
        // no SHA-1 signatures, so RSA and Ed25519 keys use Digital Signature with our preferred hash
        // either way.
        let key_type = cert.key.key_type();
        let announced = ctx
            .peer_hashes
            .and_then(|hashes| schemes_for(key_type, self.rsa_pss).iter().find(|s| hashes.contains(&scheme_hash(**s))));
        let key = cert.key.as_ref();
        let signed = match (announced, key_type) {
            (Some(scheme), _) => sign_auth_with(key, *scheme, octets),
            (None, KeyType::EcdsaP256) => sign_auth(key, AuthMethod::ECDSA_SHA256_P256, false, octets),
            (None, KeyType::EcdsaP384) => sign_auth(key, AuthMethod::ECDSA_SHA384_P384, false, octets),
            (None, KeyType::EcdsaP521) => sign_auth(key, AuthMethod::ECDSA_SHA512_P521, false, octets),
            (None, _) => sign_auth(key, AuthMethod::DIGITAL_SIGNATURE, self.rsa_pss, octets),
        };
        signed.map_err(|e| AuthError::Signature(format!("cannot sign: {e}")))
    }

    fn verify(
        &self,
        ctx: &AuthCtx<'_>,
        octets: &[u8],
        auth: &AuthPayload,
        certs: &[CertPayload],
    ) -> Result<(), AuthError> {
        let trust = self.trust.ok_or(AuthError::NoCertificate)?;
        if auth.method == AuthMethod::SHARED_KEY_MIC {
            return Err(AuthError::PskWhereCertificate);
        }
        let mut x509 = certs.iter().filter(|c| c.encoding == CertEncoding::X509_SIGNATURE);
        let end_entity = x509.next().ok_or(AuthError::NoCertificate)?;
        let intermediates: Vec<Vec<u8>> = x509.map(|c| c.data.clone()).collect();
        let cert = trust.verify(&end_entity.data, &intermediates, ctx.unix_now).map_err(AuthError::Certificate)?;
        let peer = ctx.peer.ok_or(AuthError::NoCertificate)?;
        if !cert.matches(peer) {
            return Err(AuthError::IdentityNotInCertificate(identity_string(peer)));
        }
        verify_auth(ctx.provider.signature.as_ref(), &cert.spki, auth, octets)
            .map_err(|e| AuthError::Signature(e.to_string()))
    }
}

/// The RFC 7427 schemes a key can sign with, our preference first.
fn schemes_for(key_type: KeyType, rsa_pss: bool) -> &'static [SignatureScheme] {
    use SignatureScheme as S;
    match key_type {
        KeyType::Rsa(_) if rsa_pss => &[S::RsaPssSha256, S::RsaPssSha384, S::RsaPssSha512],
        KeyType::Rsa(_) => &[S::RsaPkcs1Sha256, S::RsaPkcs1Sha384, S::RsaPkcs1Sha512],
        KeyType::EcdsaP256 => &[S::EcdsaP256Sha256],
        KeyType::EcdsaP384 => &[S::EcdsaP384Sha384],
        KeyType::EcdsaP521 => &[S::EcdsaP521Sha512],
        KeyType::Ed25519 => &[S::Ed25519],
    }
}
