//! The AUTH payload: the signed octets and PSK authentication (RFC 7296 §2.15), signatures with the
//! classic methods (RFC 7296 §3.8, RFC 4754) and with Digital Signature, method 14 (RFC 7427, RFC 8420).
//!
//! - [`signed_octets`]: `message | peer nonce | prf(SK_p, RestOfIDData)`;
//! - [`psk_auth`] / [`verify_psk`]: `prf(prf(Shared Secret, "Key Pad for IKEv2"), octets)`;
//! - [`AwsSignature`]: the [`SignatureProvider`] on aws-lc-rs;
//! - [`encode_signature_auth`] / [`decode_signature_auth`]: RFC 7427 §3 Authentication Data;
//! - [`sign_auth`] / [`verify_auth`]: the AUTH payload for the engine;
//! - [`SIGNATURE_HASH_ALGORITHMS`]: what we announce in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use oxswan_wire::payloads::AuthPayload;
use oxswan_wire::{AuthMethod, HashAlgorithm};

use crate::alg::PrfAlg;
use crate::error::{CryptoError, Result};
use crate::provider::{EcdsaEncoding, KeyType, PrfProvider, SignatureProvider, SignatureScheme, SigningKey};
use crate::secret::Secret;

// ---------------------------------------------------------------------------------------------------
// Signed octets and PSK (RFC 7296 §2.15)
// ---------------------------------------------------------------------------------------------------

/// The pad string of PSK authentication, "Key Pad for IKEv2" without a terminating NUL (RFC 7296 §2.15).
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The octets an AUTH payload covers (RFC 7296 §2.15):
///
/// ```text
/// InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
/// ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
/// MACedIDForI = prf(SK_pi, RestOfInitIDPayload)
/// ```
///
/// `message` is our whole IKE_SA_INIT message as sent, `peer_nonce` the peer's Nonce Data, `sk_p` SK_pi
/// for the initiator and SK_pr for the responder, and `id_body` the ID payload body (ID Type, three
/// reserved octets, identification data; RestOfInitIDPayload / RestOfRespIDPayload).
pub fn signed_octets(
    message: &[u8],
    peer_nonce: &[u8],
    prf: &dyn PrfProvider,
    alg: PrfAlg,
    sk_p: &[u8],
    id_body: &[u8],
) -> Result<Vec<u8>> {
    let maced_id = prf.prf(alg, sk_p, &[id_body])?;
    let mut out = Vec::with_capacity(message.len().saturating_add(peer_nonce.len()).saturating_add(maced_id.len()));
    out.extend_from_slice(message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(maced_id.expose());
    Ok(out)
}

/// PSK Authentication Data (RFC 7296 §2.15): `prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)`.
pub fn psk_auth(prf: &dyn PrfProvider, alg: PrfAlg, psk: &[u8], octets: &[u8]) -> Result<Secret> {
    let key = prf.prf(alg, psk, &[KEY_PAD])?;
    prf.prf(alg, key.expose(), &[octets])
}

/// Checks the peer's PSK Authentication Data in constant time; [`CryptoError::BadSignature`] if it
/// differs (RFC 7296 §2.15; the engine answers AUTHENTICATION_FAILED, §2.21.2).
pub fn verify_psk(prf: &dyn PrfProvider, alg: PrfAlg, psk: &[u8], octets: &[u8], auth_data: &[u8]) -> Result<()> {
    let expected = psk_auth(prf, alg, psk, octets)?;
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.expose(), auth_data)
        .map_err(|_| CryptoError::BadSignature)
}

// ---------------------------------------------------------------------------------------------------
// Hash algorithms (RFC 7427 §4, RFC 8420 §2)
// ---------------------------------------------------------------------------------------------------

/// The hash algorithms we announce in the SIGNATURE_HASH_ALGORITHMS notification (RFC 7427 §4): SHA-2
/// only (no SHA-1), plus Identity for Ed25519 (RFC 8420 §2).
pub const SIGNATURE_HASH_ALGORITHMS: &[HashAlgorithm] =
    &[HashAlgorithm::SHA2_256, HashAlgorithm::SHA2_384, HashAlgorithm::SHA2_512, HashAlgorithm::IDENTITY];

/// The SIGNATURE_HASH_ALGORITHMS value a scheme hashes with (RFC 7427 §4; Identity for Ed25519, RFC 8420
/// §2).
pub fn scheme_hash(scheme: SignatureScheme) -> HashAlgorithm {
    match scheme {
        SignatureScheme::RsaPkcs1Sha1 => HashAlgorithm::SHA1,
        SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256 | SignatureScheme::EcdsaP256Sha256 => {
            HashAlgorithm::SHA2_256
        }
        SignatureScheme::RsaPkcs1Sha384 | SignatureScheme::RsaPssSha384 | SignatureScheme::EcdsaP384Sha384 => {
            HashAlgorithm::SHA2_384
        }
        SignatureScheme::RsaPkcs1Sha512 | SignatureScheme::RsaPssSha512 | SignatureScheme::EcdsaP521Sha512 => {
            HashAlgorithm::SHA2_512
        }
        _ => HashAlgorithm::IDENTITY,
    }
}

// ---------------------------------------------------------------------------------------------------
// RFC 7427 AlgorithmIdentifiers
// ---------------------------------------------------------------------------------------------------

/// sha1WithRSAEncryption with NULL parameters (RFC 7427 Appendix A.1.1).
const ALG_RSA_PKCS1_SHA1: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00];
/// sha256WithRSAEncryption with NULL parameters (RFC 7427 Appendix A.1.2).
const ALG_RSA_PKCS1_SHA256: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00];
/// sha384WithRSAEncryption with NULL parameters (RFC 7427 Appendix A.1.3).
const ALG_RSA_PKCS1_SHA384: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00];
/// sha512WithRSAEncryption with NULL parameters (RFC 7427 Appendix A.1.4).
const ALG_RSA_PKCS1_SHA512: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00];
/// RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt length 32 (RFC 7427 Appendix A.4.3; RFC 4055 §3.1
/// parameters, trailer field default).
const ALG_RSA_PSS_SHA256: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d,
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09,
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
    0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
];
/// RSASSA-PSS with SHA-384, MGF1 with SHA-384, salt length 48: the A.4.3 form with id-sha384 (RFC 4055
/// §2.1) and the SHA-384 output length.
const ALG_RSA_PSS_SHA384: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d,
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09,
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
    0x04, 0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
];
/// RSASSA-PSS with SHA-512, MGF1 with SHA-512, salt length 64.
const ALG_RSA_PSS_SHA512: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d,
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09,
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
    0x04, 0x02, 0x03, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x40,
];
/// ecdsa-with-SHA256, no parameters (RFC 7427 Appendix A.3.2; RFC 5758 §3.2).
const ALG_ECDSA_SHA256: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// ecdsa-with-SHA384 (RFC 7427 Appendix A.3.3).
const ALG_ECDSA_SHA384: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
/// ecdsa-with-SHA512 (RFC 7427 Appendix A.3.4).
const ALG_ECDSA_SHA512: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
/// id-Ed25519 (1.3.101.112), parameters absent (RFC 8420 §2, RFC 8410 §3).
const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

// Object identifiers (content octets).
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_SHA1_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const OID_SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// The DER AlgorithmIdentifier RFC 7427 §3 puts in the Authentication Data for a scheme.
pub fn algorithm_identifier(scheme: SignatureScheme) -> &'static [u8] {
    match scheme {
        SignatureScheme::RsaPkcs1Sha1 => ALG_RSA_PKCS1_SHA1,
        SignatureScheme::RsaPkcs1Sha256 => ALG_RSA_PKCS1_SHA256,
        SignatureScheme::RsaPkcs1Sha384 => ALG_RSA_PKCS1_SHA384,
        SignatureScheme::RsaPkcs1Sha512 => ALG_RSA_PKCS1_SHA512,
        SignatureScheme::RsaPssSha256 => ALG_RSA_PSS_SHA256,
        SignatureScheme::RsaPssSha384 => ALG_RSA_PSS_SHA384,
        SignatureScheme::RsaPssSha512 => ALG_RSA_PSS_SHA512,
        SignatureScheme::EcdsaP256Sha256 => ALG_ECDSA_SHA256,
        SignatureScheme::EcdsaP384Sha384 => ALG_ECDSA_SHA384,
        SignatureScheme::EcdsaP521Sha512 => ALG_ECDSA_SHA512,
        _ => ALG_ED25519,
    }
}

/// Authentication Data of method 14 (RFC 7427 §3): `ASN.1 Length (1 octet) | AlgorithmIdentifier |
/// Signature Value`. ECDSA signatures here are DER `ECDSA-Sig-Value` (RFC 7427 §3, referring to RFC
/// 3279 §2.2.3).
pub fn encode_signature_auth(scheme: SignatureScheme, signature: &[u8]) -> Vec<u8> {
    let alg = algorithm_identifier(scheme);
    let mut out = Vec::with_capacity(alg.len().saturating_add(signature.len()).saturating_add(1));
    // Every AlgorithmIdentifier above is shorter than 256 octets.
    out.push(u8::try_from(alg.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(alg);
    out.extend_from_slice(signature);
    out
}

/// Parses method 14 Authentication Data (RFC 7427 §3) into the scheme and the signature value.
///
/// Recognized: sha1/sha256/sha384/sha512WithRSAEncryption (NULL or absent parameters), RSASSA-PSS with
/// SHA-256/384/512 where MGF1 uses the same hash and the salt is the hash length (RFC 4055 §3.1),
/// ecdsa-with-SHA256/384/512 (RFC 5758 §3.2) and Ed25519 (RFC 8420 §2). The ECDSA schemes are named by
/// their usual curve; [`verify_auth`] holds the key's curve to it. Anything else is
/// [`CryptoError::UnsupportedSignature`] naming the OID in dotted form.
pub fn decode_signature_auth(data: &[u8]) -> Result<(SignatureScheme, &[u8])> {
    let (&len, rest) = data.split_first().ok_or(CryptoError::Malformed("empty signature AUTH data"))?;
    let len = usize::from(len);
    let alg = rest.get(..len).ok_or(CryptoError::Malformed("AlgorithmIdentifier beyond AUTH data"))?;
    let signature = rest.get(len..).unwrap_or_default();
    if signature.is_empty() {
        return Err(CryptoError::Malformed("no signature value in AUTH data"));
    }
    Ok((parse_algorithm_identifier(alg)?, signature))
}

/// One DER TLV: (tag, contents, rest). Definite lengths only, in minimal form (X.690 §10.1).
fn der_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    const BAD: CryptoError = CryptoError::Malformed("bad DER");
    let (&tag, rest) = input.split_first().ok_or(BAD)?;
    let (&first, mut rest) = rest.split_first().ok_or(BAD)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return Err(BAD);
        }
        let bytes = rest.get(..n).ok_or(BAD)?;
        rest = rest.get(n..).ok_or(BAD)?;
        let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 || bytes.first() == Some(&0) {
            return Err(BAD);
        }
        len
    };
    let contents = rest.get(..len).ok_or(BAD)?;
    Ok((tag, contents, rest.get(len..).unwrap_or_default()))
}

/// Expects a TLV with `tag`; returns (contents, rest).
fn der_expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8])> {
    match der_tlv(input)? {
        (t, contents, rest) if t == tag => Ok((contents, rest)),
        _ => Err(CryptoError::Malformed("unexpected DER tag")),
    }
}

/// An OID's content octets in dotted form (X.690 §8.19), for error messages.
pub(crate) fn oid_dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<String> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = match value.checked_mul(128) {
            Some(v) => v | u64::from(b & 0x7f),
            None => return format!("(overlong OID {})", hex_string(oid)),
        };
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (first, second) = match value {
                    0..40 => (0, value),
                    40..80 => (1, value.saturating_sub(40)),
                    _ => (2, value.saturating_sub(80)),
                };
                arcs.push(first.to_string());
                arcs.push(second.to_string());
            } else {
                arcs.push(value.to_string());
            }
            value = 0;
        }
    }
    arcs.join(".")
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unsupported_oid(oid: &[u8]) -> CryptoError {
    CryptoError::UnsupportedSignature(format!("signature algorithm {}", oid_dotted(oid)))
}

/// Parses a DER AlgorithmIdentifier (RFC 5280 §4.1.1.2) for a signature.
fn parse_algorithm_identifier(der: &[u8]) -> Result<SignatureScheme> {
    let (seq, trailing) = der_expect(der, TAG_SEQUENCE)?;
    if !trailing.is_empty() {
        return Err(CryptoError::Malformed("octets after the AlgorithmIdentifier"));
    }
    let (oid, params) = der_expect(seq, TAG_OID)?;
    let rsa_pkcs1 = match oid {
        OID_SHA1_RSA => Some(SignatureScheme::RsaPkcs1Sha1),
        OID_SHA256_RSA => Some(SignatureScheme::RsaPkcs1Sha256),
        OID_SHA384_RSA => Some(SignatureScheme::RsaPkcs1Sha384),
        OID_SHA512_RSA => Some(SignatureScheme::RsaPkcs1Sha512),
        _ => None,
    };
    if let Some(scheme) = rsa_pkcs1 {
        // RFC 4055 §5 / RFC 8017 A.2.4: parameters NULL; tolerate them absent.
        return if null_or_absent(params) { Ok(scheme) } else { Err(unsupported_oid(oid)) };
    }
    let ecdsa = match oid {
        OID_ECDSA_SHA256 => Some(SignatureScheme::EcdsaP256Sha256),
        OID_ECDSA_SHA384 => Some(SignatureScheme::EcdsaP384Sha384),
        OID_ECDSA_SHA512 => Some(SignatureScheme::EcdsaP521Sha512),
        _ => None,
    };
    if let Some(scheme) = ecdsa {
        // RFC 5758 §3.2: the parameters MUST be omitted (a NULL is tolerated).
        return if null_or_absent(params) { Ok(scheme) } else { Err(unsupported_oid(oid)) };
    }
    match oid {
        // RFC 8410 §3: the parameters MUST be absent.
        OID_ED25519 if params.is_empty() => Ok(SignatureScheme::Ed25519),
        OID_RSASSA_PSS => parse_pss_params(params),
        _ => Err(unsupported_oid(oid)),
    }
}

fn null_or_absent(params: &[u8]) -> bool {
    params.is_empty() || params == [TAG_NULL, 0x00]
}

/// A hash AlgorithmIdentifier (with NULL or absent parameters, RFC 4055 §2.1) → (OID, output length).
fn parse_hash_alg(der: &[u8]) -> Result<(&[u8], usize)> {
    let (seq, rest) = der_expect(der, TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return Err(CryptoError::Malformed("octets after a hash AlgorithmIdentifier"));
    }
    let (oid, params) = der_expect(seq, TAG_OID)?;
    if !null_or_absent(params) {
        return Err(CryptoError::UnsupportedSignature(format!("hash {} with parameters", oid_dotted(oid))));
    }
    match oid {
        OID_SHA256 => Ok((OID_SHA256, 32)),
        OID_SHA384 => Ok((OID_SHA384, 48)),
        OID_SHA512 => Ok((OID_SHA512, 64)),
        _ => Err(CryptoError::UnsupportedSignature(format!("RSASSA-PSS with hash {}", oid_dotted(oid)))),
    }
}

/// RSASSA-PSS-params (RFC 4055 §3.1):
///
/// ```text
/// RSASSA-PSS-params ::= SEQUENCE {
///     hashAlgorithm      [0] HashAlgorithm DEFAULT sha1Identifier,
///     maskGenAlgorithm   [1] MaskGenAlgorithm DEFAULT mgf1SHA1Identifier,
///     saltLength         [2] INTEGER DEFAULT 20,
///     trailerField       [3] INTEGER DEFAULT 1 }
/// ```
///
/// Supported: SHA-256/384/512, MGF1 with the same hash, salt length the hash length, trailer 1 — the
/// only PSS variants aws-lc-rs verifies. The SHA-1 defaults are not supported.
fn parse_pss_params(params: &[u8]) -> Result<SignatureScheme> {
    let unsupported = |why: &str| CryptoError::UnsupportedSignature(format!("RSASSA-PSS {why}"));
    let (mut fields, rest) = der_expect(params, TAG_SEQUENCE).map_err(|_| unsupported("without parameters"))?;
    if !rest.is_empty() {
        return Err(CryptoError::Malformed("octets after RSASSA-PSS-params"));
    }
    let (mut hash, mut mgf, mut salt, mut trailer) = (None, None, None, None);
    while !fields.is_empty() {
        let (tag, contents, rest) = der_tlv(fields)?;
        fields = rest;
        match tag {
            0xa0 if hash.is_none() => hash = Some(parse_hash_alg(contents)?),
            0xa1 if mgf.is_none() => {
                let (seq, after) = der_expect(contents, TAG_SEQUENCE)?;
                let (oid, inner) = der_expect(seq, TAG_OID)?;
                if oid != OID_MGF1 || !after.is_empty() {
                    return Err(unsupported(&format!("with mask generation {}", oid_dotted(oid))));
                }
                mgf = Some(parse_hash_alg(inner)?.0);
            }
            0xa2 if salt.is_none() => salt = Some(der_small_uint(contents)?),
            0xa3 if trailer.is_none() => trailer = Some(der_small_uint(contents)?),
            _ => return Err(CryptoError::Malformed("bad RSASSA-PSS-params")),
        }
    }
    let (hash_oid, hash_len) = hash.ok_or_else(|| unsupported("with SHA-1"))?;
    if mgf != Some(hash_oid) {
        return Err(unsupported("with a different MGF1 hash"));
    }
    if salt != Some(hash_len) {
        return Err(unsupported("with a salt length other than the hash length"));
    }
    if trailer.is_some_and(|t| t != 1) {
        return Err(unsupported("with a trailer field other than 1"));
    }
    Ok(match hash_len {
        32 => SignatureScheme::RsaPssSha256,
        48 => SignatureScheme::RsaPssSha384,
        _ => SignatureScheme::RsaPssSha512,
    })
}

/// An explicitly tagged small non-negative INTEGER.
fn der_small_uint(explicit: &[u8]) -> Result<usize> {
    let (int, rest) = der_expect(explicit, TAG_INTEGER)?;
    if !rest.is_empty() || int.is_empty() || int.len() > 2 || int.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(CryptoError::Malformed("bad INTEGER in RSASSA-PSS-params"));
    }
    Ok(int.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
}

// ---------------------------------------------------------------------------------------------------
// Public keys
// ---------------------------------------------------------------------------------------------------

/// The kind of key a SubjectPublicKeyInfo holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicKeyKind {
    /// rsaEncryption.
    Rsa,
    /// id-ecPublicKey on P-256.
    EcdsaP256,
    /// id-ecPublicKey on P-384.
    EcdsaP384,
    /// id-ecPublicKey on P-521.
    EcdsaP521,
    /// id-Ed25519.
    Ed25519,
}

/// Reads the algorithm of a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7; RFC 5480 §2 for EC with named
/// curves; RFC 8410 §4 for Ed25519). The key itself is checked by aws-lc-rs when verifying.
pub fn spki_kind(spki: &[u8]) -> Result<PublicKeyKind> {
    let bad = |_| CryptoError::InvalidKey("not a DER SubjectPublicKeyInfo".into());
    let (seq, trailing) = der_expect(spki, TAG_SEQUENCE).map_err(bad)?;
    if !trailing.is_empty() {
        return Err(CryptoError::InvalidKey("octets after the SubjectPublicKeyInfo".into()));
    }
    let (alg, rest) = der_expect(seq, TAG_SEQUENCE).map_err(bad)?;
    let (_key, rest) = der_expect(rest, TAG_BIT_STRING).map_err(bad)?;
    if !rest.is_empty() {
        return Err(CryptoError::InvalidKey("octets after the public key".into()));
    }
    let (oid, params) = der_expect(alg, TAG_OID).map_err(bad)?;
    match oid {
        OID_RSA_ENCRYPTION => Ok(PublicKeyKind::Rsa),
        OID_ED25519 => Ok(PublicKeyKind::Ed25519),
        OID_EC_PUBLIC_KEY => {
            let (curve, _) = der_expect(params, TAG_OID).map_err(bad)?;
            match curve {
                OID_P256 => Ok(PublicKeyKind::EcdsaP256),
                OID_P384 => Ok(PublicKeyKind::EcdsaP384),
                OID_P521 => Ok(PublicKeyKind::EcdsaP521),
                other => Err(CryptoError::UnsupportedSignature(format!("EC curve {}", oid_dotted(other)))),
            }
        }
        other => Err(CryptoError::UnsupportedSignature(format!("public key algorithm {}", oid_dotted(other)))),
    }
}

/// Whether a key of `kind` can make or check signatures of `scheme`.
fn scheme_fits(scheme: SignatureScheme, kind: PublicKeyKind) -> bool {
    matches!(
        (scheme, kind),
        (
            SignatureScheme::RsaPkcs1Sha1
                | SignatureScheme::RsaPkcs1Sha256
                | SignatureScheme::RsaPkcs1Sha384
                | SignatureScheme::RsaPkcs1Sha512
                | SignatureScheme::RsaPssSha256
                | SignatureScheme::RsaPssSha384
                | SignatureScheme::RsaPssSha512,
            PublicKeyKind::Rsa
        ) | (SignatureScheme::EcdsaP256Sha256, PublicKeyKind::EcdsaP256)
            | (SignatureScheme::EcdsaP384Sha384, PublicKeyKind::EcdsaP384)
            | (SignatureScheme::EcdsaP521Sha512, PublicKeyKind::EcdsaP521)
            | (SignatureScheme::Ed25519, PublicKeyKind::Ed25519)
    )
}

fn kind_of(key_type: KeyType) -> PublicKeyKind {
    match key_type {
        KeyType::Rsa(_) => PublicKeyKind::Rsa,
        KeyType::EcdsaP256 => PublicKeyKind::EcdsaP256,
        KeyType::EcdsaP384 => PublicKeyKind::EcdsaP384,
        KeyType::EcdsaP521 => PublicKeyKind::EcdsaP521,
        KeyType::Ed25519 => PublicKeyKind::Ed25519,
    }
}

fn mismatch(scheme: SignatureScheme, kind: PublicKeyKind) -> CryptoError {
    CryptoError::UnsupportedSignature(format!("{scheme:?} with a {kind:?} key"))
}

// ---------------------------------------------------------------------------------------------------
// The aws-lc-rs provider
// ---------------------------------------------------------------------------------------------------

/// Signatures on aws-lc-rs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsSignature;

/// The verification algorithm for a scheme and ECDSA encoding. RSA keys must have 2048 to 8192 bits;
/// PSS salts are the hash length (RFC 7427 Appendix A.4.3 parameters).
fn verification_algorithm(scheme: SignatureScheme, ecdsa: EcdsaEncoding) -> &'static dyn sig::VerificationAlgorithm {
    use EcdsaEncoding::{Asn1, Fixed};
    match (scheme, ecdsa) {
        (SignatureScheme::RsaPkcs1Sha1, _) => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (SignatureScheme::RsaPkcs1Sha256, _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (SignatureScheme::RsaPkcs1Sha384, _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (SignatureScheme::RsaPkcs1Sha512, _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (SignatureScheme::RsaPssSha256, _) => &sig::RSA_PSS_2048_8192_SHA256,
        (SignatureScheme::RsaPssSha384, _) => &sig::RSA_PSS_2048_8192_SHA384,
        (SignatureScheme::RsaPssSha512, _) => &sig::RSA_PSS_2048_8192_SHA512,
        (SignatureScheme::EcdsaP256Sha256, Fixed) => &sig::ECDSA_P256_SHA256_FIXED,
        (SignatureScheme::EcdsaP256Sha256, Asn1) => &sig::ECDSA_P256_SHA256_ASN1,
        (SignatureScheme::EcdsaP384Sha384, Fixed) => &sig::ECDSA_P384_SHA384_FIXED,
        (SignatureScheme::EcdsaP384Sha384, Asn1) => &sig::ECDSA_P384_SHA384_ASN1,
        (SignatureScheme::EcdsaP521Sha512, Fixed) => &sig::ECDSA_P521_SHA512_FIXED,
        (SignatureScheme::EcdsaP521Sha512, Asn1) => &sig::ECDSA_P521_SHA512_ASN1,
        _ => &sig::ED25519,
    }
}

impl SignatureProvider for AwsSignature {
    fn load_private_key(&self, der: &[u8]) -> Result<Arc<dyn SigningKey>> {
        Ok(Arc::new(AwsSigningKey::from_der(der)?))
    }

    fn verify(
        &self,
        scheme: SignatureScheme,
        ecdsa: EcdsaEncoding,
        spki: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        let kind = spki_kind(spki)?;
        if !scheme_fits(scheme, kind) {
            return Err(mismatch(scheme, kind));
        }
        sig::UnparsedPublicKey::new(verification_algorithm(scheme, ecdsa), spki)
            .verify(message, signature)
            .map_err(|_| CryptoError::BadSignature)
    }
}

enum Inner {
    Rsa(sig::RsaKeyPair),
    /// The same key twice: aws-lc-rs binds the signature encoding to the key pair.
    Ecdsa {
        fixed: sig::EcdsaKeyPair,
        asn1: sig::EcdsaKeyPair,
    },
    Ed25519(sig::Ed25519KeyPair),
}

/// A private key loaded by [`AwsSignature`]. `Debug` shows the key type only.
pub struct AwsSigningKey {
    inner: Inner,
    key_type: KeyType,
    spki: Vec<u8>,
}

impl core::fmt::Debug for AwsSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AwsSigningKey({:?})", self.key_type)
    }
}

type EcAlgs = (&'static sig::EcdsaSigningAlgorithm, &'static sig::EcdsaSigningAlgorithm, KeyType);

const EC_CURVES: [EcAlgs; 3] = [
    (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &sig::ECDSA_P256_SHA256_ASN1_SIGNING, KeyType::EcdsaP256),
    (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, &sig::ECDSA_P384_SHA384_ASN1_SIGNING, KeyType::EcdsaP384),
    (&sig::ECDSA_P521_SHA512_FIXED_SIGNING, &sig::ECDSA_P521_SHA512_ASN1_SIGNING, KeyType::EcdsaP521),
];

fn spki_of<K>(public: &K) -> Result<Vec<u8>>
where
    K: AsDer<aws_lc_rs::encoding::PublicKeyX509Der<'static>>,
{
    Ok(public.as_der().map_err(|_| CryptoError::Internal("public key encoding"))?.as_ref().to_vec())
}

impl AwsSigningKey {
    /// Loads a private key: PKCS#8 (RFC 5208 / RFC 5958) for RSA, ECDSA P-256/384/521 and Ed25519, or
    /// the traditional RSAPrivateKey (RFC 8017 A.1.2) and ECPrivateKey (RFC 5915) forms.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if let Ok(kp) = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let spki = spki_of(kp.public_key())?;
            return Ok(Self { inner: Inner::Ed25519(kp), key_type: KeyType::Ed25519, spki });
        }
        if let Ok(kp) = sig::RsaKeyPair::from_pkcs8(der).or_else(|_| sig::RsaKeyPair::from_der(der)) {
            let spki = spki_of(kp.public_key())?;
            let bits = kp.public_modulus_len().saturating_mul(8);
            return Ok(Self { inner: Inner::Rsa(kp), key_type: KeyType::Rsa(bits), spki });
        }
        for (fixed_alg, asn1_alg, key_type) in EC_CURVES {
            let (Ok(fixed), Ok(asn1)) = (
                sig::EcdsaKeyPair::from_private_key_der(fixed_alg, der),
                sig::EcdsaKeyPair::from_private_key_der(asn1_alg, der),
            ) else {
                continue;
            };
            let spki = spki_of(fixed.public_key())?;
            return Ok(Self { inner: Inner::Ecdsa { fixed, asn1 }, key_type, spki });
        }
        Err(CryptoError::InvalidKey("not a supported PKCS#8, RSAPrivateKey or ECPrivateKey DER key".into()))
    }
}

impl SigningKey for AwsSigningKey {
    fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn public_key_spki(&self) -> Vec<u8> {
        self.spki.clone()
    }

    fn sign(&self, scheme: SignatureScheme, ecdsa: EcdsaEncoding, message: &[u8]) -> Result<Vec<u8>> {
        let kind = kind_of(self.key_type);
        if !scheme_fits(scheme, kind) {
            return Err(mismatch(scheme, kind));
        }
        let failed = |_| CryptoError::Internal("signing failed");
        match &self.inner {
            Inner::Rsa(kp) => {
                let encoding: &'static dyn sig::RsaEncoding = match scheme {
                    SignatureScheme::RsaPkcs1Sha256 => &sig::RSA_PKCS1_SHA256,
                    SignatureScheme::RsaPkcs1Sha384 => &sig::RSA_PKCS1_SHA384,
                    SignatureScheme::RsaPkcs1Sha512 => &sig::RSA_PKCS1_SHA512,
                    SignatureScheme::RsaPssSha256 => &sig::RSA_PSS_SHA256,
                    SignatureScheme::RsaPssSha384 => &sig::RSA_PSS_SHA384,
                    SignatureScheme::RsaPssSha512 => &sig::RSA_PSS_SHA512,
                    // aws-lc-rs does not sign with SHA-1.
                    other => return Err(CryptoError::UnsupportedSignature(format!("signing with {other:?}"))),
                };
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(encoding, &SystemRandom::new(), message, &mut out).map_err(failed)?;
                Ok(out)
            }
            Inner::Ecdsa { fixed, asn1 } => {
                let kp = match ecdsa {
                    EcdsaEncoding::Fixed => fixed,
                    EcdsaEncoding::Asn1 => asn1,
                };
                Ok(kp.sign(&SystemRandom::new(), message).map_err(failed)?.as_ref().to_vec())
            }
            Inner::Ed25519(kp) => Ok(kp.try_sign(message).map_err(failed)?.as_ref().to_vec()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// AUTH payloads
// ---------------------------------------------------------------------------------------------------

/// The RFC 7427 scheme we sign with for a key type: RSA → PKCS#1 v1.5 with SHA-256, or RSASSA-PSS with
/// SHA-256 if `rsa_pss`; ECDSA → the hash of the curve's size (as RFC 4754 pairs them); Ed25519 → Ed25519.
pub fn default_scheme(key_type: KeyType, rsa_pss: bool) -> SignatureScheme {
    match key_type {
        KeyType::Rsa(_) if rsa_pss => SignatureScheme::RsaPssSha256,
        KeyType::Rsa(_) => SignatureScheme::RsaPkcs1Sha256,
        KeyType::EcdsaP256 => SignatureScheme::EcdsaP256Sha256,
        KeyType::EcdsaP384 => SignatureScheme::EcdsaP384Sha384,
        KeyType::EcdsaP521 => SignatureScheme::EcdsaP521Sha512,
        KeyType::Ed25519 => SignatureScheme::Ed25519,
    }
}

/// The scheme and ECDSA encoding of a classic method (RFC 7296 §3.8: method 1 is RSASSA-PKCS1-v1_5
/// with SHA-1; RFC 4754 §3, §7: methods 9, 10, 11 are ECDSA with fixed r‖s), with the key kind each
/// requires.
fn classic_method(method: AuthMethod) -> Option<(SignatureScheme, EcdsaEncoding, PublicKeyKind)> {
    match method {
        AuthMethod::RSA_DIGITAL_SIGNATURE => {
            Some((SignatureScheme::RsaPkcs1Sha1, EcdsaEncoding::Fixed, PublicKeyKind::Rsa))
        }
        AuthMethod::ECDSA_SHA256_P256 => {
            Some((SignatureScheme::EcdsaP256Sha256, EcdsaEncoding::Fixed, PublicKeyKind::EcdsaP256))
        }
        AuthMethod::ECDSA_SHA384_P384 => {
            Some((SignatureScheme::EcdsaP384Sha384, EcdsaEncoding::Fixed, PublicKeyKind::EcdsaP384))
        }
        AuthMethod::ECDSA_SHA512_P521 => {
            Some((SignatureScheme::EcdsaP521Sha512, EcdsaEncoding::Fixed, PublicKeyKind::EcdsaP521))
        }
        _ => None,
    }
}

/// Signs the AUTH octets (see [`signed_octets`]) with `key`.
///
/// With [`AuthMethod::DIGITAL_SIGNATURE`] (RFC 7427) the scheme is [`default_scheme`]; with a classic
/// method (1, 9, 10, 11) the key must be of the method's type and curve. Classic method 1 (SHA-1) is
/// refused for signing: aws-lc-rs does not create SHA-1 signatures.
pub fn sign_auth(key: &dyn SigningKey, method: AuthMethod, rsa_pss: bool, octets: &[u8]) -> Result<AuthPayload> {
    if method == AuthMethod::DIGITAL_SIGNATURE {
        return sign_auth_with(key, default_scheme(key.key_type(), rsa_pss), octets);
    }
    let (scheme, encoding, kind) = classic_method(method)
        .ok_or_else(|| CryptoError::UnsupportedSignature(format!("signing with AUTH method {method:?}")))?;
    let key_kind = kind_of(key.key_type());
    if key_kind != kind {
        return Err(CryptoError::UnsupportedSignature(format!("AUTH method {method:?} with a {key_kind:?} key")));
    }
    Ok(AuthPayload { method, data: key.sign(scheme, encoding, octets)? })
}

/// Signs the AUTH octets with Digital Signature (method 14, RFC 7427 §3) and an explicit scheme, e.g.
/// one the peer announced in SIGNATURE_HASH_ALGORITHMS.
pub fn sign_auth_with(key: &dyn SigningKey, scheme: SignatureScheme, octets: &[u8]) -> Result<AuthPayload> {
    let signature = key.sign(scheme, EcdsaEncoding::Asn1, octets)?;
    Ok(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data: encode_signature_auth(scheme, &signature) })
}

/// Verifies a signature AUTH payload over `octets` with the peer's public key (DER SubjectPublicKeyInfo).
///
/// Methods 1 (RSA, PKCS#1 v1.5 SHA-1, RFC 7296 §3.8), 9, 10, 11 (ECDSA with fixed r‖s on P-256,
/// P-384, P-521, RFC 4754 §3, §7) and 14 (RFC 7427 §3, DER ECDSA signatures). The key type must match the
/// method, and for ECDSA the curve (RFC 4754 §3; for method 14 the scheme's curve). Errors:
/// [`CryptoError::BadSignature`] if the signature does not verify; [`CryptoError::UnsupportedSignature`]
/// for other methods, unknown algorithms or mismatched keys; [`CryptoError::Malformed`] for bad data.
pub fn verify_auth(provider: &dyn SignatureProvider, spki: &[u8], auth: &AuthPayload, octets: &[u8]) -> Result<()> {
    let key_kind = spki_kind(spki)?;
    if auth.method == AuthMethod::DIGITAL_SIGNATURE {
        let (scheme, signature) = decode_signature_auth(&auth.data)?;
        if !scheme_fits(scheme, key_kind) {
            return Err(mismatch(scheme, key_kind));
        }
        return provider.verify(scheme, EcdsaEncoding::Asn1, spki, octets, signature);
    }
    let (scheme, encoding, kind) = classic_method(auth.method)
        .ok_or_else(|| CryptoError::UnsupportedSignature(format!("AUTH method {:?}", auth.method)))?;
    if key_kind != kind {
        return Err(CryptoError::UnsupportedSignature(format!(
            "AUTH method {:?} with a {key_kind:?} key",
            auth.method
        )));
    }
    provider.verify(scheme, encoding, spki, octets, &auth.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    #[test]
    fn oid_dotted_form() {
        assert_eq!(oid_dotted(OID_ED25519), "1.3.101.112");
        assert_eq!(oid_dotted(OID_SHA256_RSA), "1.2.840.113549.1.1.11");
        assert_eq!(oid_dotted(OID_P384), "1.3.132.0.34");
        assert_eq!(oid_dotted(OID_SHA512), "2.16.840.1.101.3.4.2.3");
    }

    #[test]
    fn unknown_algorithm_named() {
        // md5WithRSAEncryption, 1.2.840.113549.1.1.4.
        let alg = h("300d06092a864886f70d0101040500");
        let mut data = vec![alg.len() as u8];
        data.extend_from_slice(&alg);
        data.extend_from_slice(b"sig");
        match decode_signature_auth(&data) {
            Err(CryptoError::UnsupportedSignature(s)) => assert!(s.contains("1.2.840.113549.1.1.4"), "{s}"),
            other => panic!("{other:?}"),
        }
        // Ed25519 with parameters, RSA PKCS#1 with odd parameters.
        for alg in ["300706032b65700500", "300f06092a864886f70d01010b0402abcd"] {
            let alg = h(alg);
            let mut data = vec![alg.len() as u8];
            data.extend_from_slice(&alg);
            data.push(0);
            assert!(matches!(decode_signature_auth(&data), Err(CryptoError::UnsupportedSignature(_))), "{alg:02x?}");
        }
    }

    #[test]
    fn malformed_auth_data() {
        assert!(decode_signature_auth(&[]).is_err());
        // Length beyond the data.
        assert!(decode_signature_auth(&[20, 0x30, 0x05]).is_err());
        // No signature value.
        let mut d = vec![ALG_ED25519.len() as u8];
        d.extend_from_slice(ALG_ED25519);
        assert!(matches!(decode_signature_auth(&d), Err(CryptoError::Malformed(_))));
        // Length octet shorter than the AlgorithmIdentifier.
        let mut d = vec![4];
        d.extend_from_slice(ALG_ED25519);
        assert!(decode_signature_auth(&d).is_err());
        // Non-minimal long-form length.
        assert!(der_tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn pss_parameter_variants() {
        // RSASSA-PSS with empty parameters (SHA-1 defaults): unsupported.
        let empty = h("300d06092a864886f70d01010a3000");
        assert!(matches!(parse_algorithm_identifier(&empty), Err(CryptoError::UnsupportedSignature(_))));
        // Absent parameters.
        assert!(parse_algorithm_identifier(&h("300b06092a864886f70d01010a")).is_err());
        // SHA-256 with salt 10 (the form of Chromium's rsa-pss-sha256-salt10 test data): unsupported.
        let salt10 = h(
            "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a20302010a",
        );
        assert!(matches!(parse_algorithm_identifier(&salt10), Err(CryptoError::UnsupportedSignature(_))));
        // SHA-256 hash, SHA-1 MGF (mgf1 default): unsupported.
        let mgf_default = h("302306092a864886f70d01010a3016a00f300d06096086480165030402010500a203020120");
        assert!(matches!(parse_algorithm_identifier(&mgf_default), Err(CryptoError::UnsupportedSignature(_))));
        // Hash parameters absent instead of NULL, explicit trailer 1: accepted.
        let lax = h(
            "304206092a864886f70d01010a3035a00d300b0609608648016503040201a11a301806092a864886f70d010108300b0609608648016503040201a203020120a303020101",
        );
        assert_eq!(parse_algorithm_identifier(&lax).unwrap(), SignatureScheme::RsaPssSha256);
    }

    use crate::mac::AwsMac;
    use aws_lc_rs::encoding::{EcPrivateKeyRfc5915Der, Pkcs8V1Der};
    use oxswan_wire::PrfId;

    fn load(der: &[u8]) -> Arc<dyn SigningKey> {
        AwsSignature.load_private_key(der).unwrap()
    }

    fn rsa2048() -> Arc<dyn SigningKey> {
        let kp = sig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der<'static> = kp.as_der().unwrap();
        load(der.as_ref())
    }

    fn ecdsa(alg: &'static sig::EcdsaSigningAlgorithm) -> Arc<dyn SigningKey> {
        let kp = sig::EcdsaKeyPair::generate(alg).unwrap();
        load(kp.to_pkcs8v1().unwrap().as_ref())
    }

    fn ed25519() -> Arc<dyn SigningKey> {
        load(sig::Ed25519KeyPair::generate().unwrap().to_pkcs8().unwrap().as_ref())
    }

    /// RFC 8032 §7.1 TEST 1 (empty message) and TEST 2 (one octet 0x72): public key from the secret key,
    /// deterministic signature, verification through the provider.
    #[test]
    fn ed25519_rfc8032_vectors() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (secret, public, message, signature) in cases {
            let kp = sig::Ed25519KeyPair::from_seed_unchecked(&h(secret)).unwrap();
            let key = load(kp.to_pkcs8().unwrap().as_ref());
            assert_eq!(key.key_type(), KeyType::Ed25519);
            // SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 §4): the algorithm and the raw key.
            let spki = key.public_key_spki();
            assert_eq!(hex::encode(&spki), format!("302a300506032b6570032100{public}"));
            assert_eq!(spki_kind(&spki).unwrap(), PublicKeyKind::Ed25519);
            let out = key.sign(SignatureScheme::Ed25519, EcdsaEncoding::Asn1, &h(message)).unwrap();
            assert_eq!(out, h(signature));
            AwsSignature.verify(SignatureScheme::Ed25519, EcdsaEncoding::Asn1, &spki, &h(message), &out).unwrap();
            // Through AUTH method 14.
            let auth = sign_auth(key.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, &h(message)).unwrap();
            let mut expected = vec![7];
            expected.extend_from_slice(&h("300506032b6570"));
            expected.extend_from_slice(&h(signature));
            assert_eq!(auth.data, expected);
            verify_auth(&AwsSignature, &spki, &auth, &h(message)).unwrap();
        }
    }

    /// The AlgorithmIdentifiers of RFC 7427 Appendix A (A.1.1–A.1.4 PKCS#1 v1.5, A.3.2–A.3.4 ECDSA,
    /// A.4.3 RSASSA-PSS with SHA-256) and id-Ed25519 (RFC 8410 §3), each encoded and decoded.
    #[test]
    fn rfc7427_algorithm_identifiers() {
        let cases = [
            (SignatureScheme::RsaPkcs1Sha1, "300d 0609 2a86 4886 f70d 0101 0505 00"),
            (SignatureScheme::RsaPkcs1Sha256, "300d 0609 2a86 4886 f70d 0101 0b05 00"),
            (SignatureScheme::RsaPkcs1Sha384, "300d 0609 2a86 4886 f70d 0101 0c05 00"),
            (SignatureScheme::RsaPkcs1Sha512, "300d 0609 2a86 4886 f70d 0101 0d05 00"),
            (SignatureScheme::EcdsaP256Sha256, "300a 0608 2a86 48ce 3d04 0302"),
            (SignatureScheme::EcdsaP384Sha384, "300a 0608 2a86 48ce 3d04 0303"),
            (SignatureScheme::EcdsaP521Sha512, "300a 0608 2a86 48ce 3d04 0304"),
            (
                SignatureScheme::RsaPssSha256,
                "3041 0609 2a86 4886 f70d 0101 0a30 34a0
                 0f30 0d06 0960 8648 0165 0304 0201 0500
                 a11c 301a 0609 2a86 4886 f70d 0101 0830
                 0d06 0960 8648 0165 0304 0201 0500 a203
                 0201 20",
            ),
            (SignatureScheme::Ed25519, "3005 0603 2b65 70"),
        ];
        for (scheme, der) in cases {
            let der = h(der);
            assert_eq!(algorithm_identifier(scheme), der, "{scheme:?}");
            let data = encode_signature_auth(scheme, b"SIG");
            assert_eq!(usize::from(data[0]), der.len());
            assert_eq!(&data[1..=der.len()], der);
            assert_eq!(decode_signature_auth(&data).unwrap(), (scheme, &b"SIG"[..]));
        }
        // PSS with SHA-384 and SHA-512 round-trip too.
        for scheme in [SignatureScheme::RsaPssSha384, SignatureScheme::RsaPssSha512] {
            let data = encode_signature_auth(scheme, b"S");
            assert_eq!(decode_signature_auth(&data).unwrap().0, scheme);
        }
        // PKCS#1 v1.5 with absent parameters is tolerated.
        let mut data = vec![13];
        data.extend_from_slice(&h("300b 0609 2a86 4886 f70d 0101 0b"));
        data.push(1);
        assert_eq!(decode_signature_auth(&data).unwrap().0, SignatureScheme::RsaPkcs1Sha256);
    }

    /// Sign → verify through method 14 for every scheme, and the failures: other key, altered octets,
    /// altered signature.
    #[test]
    fn signature_round_trips() {
        let rsa = rsa2048();
        assert_eq!(rsa.key_type(), KeyType::Rsa(2048));
        let p256 = ecdsa(&sig::ECDSA_P256_SHA256_ASN1_SIGNING);
        let p384 = ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING);
        let p521 = ecdsa(&sig::ECDSA_P521_SHA512_ASN1_SIGNING);
        let ed = ed25519();
        assert_eq!(
            (p256.key_type(), p384.key_type(), p521.key_type()),
            (KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::EcdsaP521)
        );
        let other_rsa = rsa2048();
        type Case<'a> = (&'a Arc<dyn SigningKey>, SignatureScheme, Arc<dyn SigningKey>);
        let cases: Vec<Case<'_>> = vec![
            (&rsa, SignatureScheme::RsaPkcs1Sha256, other_rsa.clone()),
            (&rsa, SignatureScheme::RsaPkcs1Sha384, other_rsa.clone()),
            (&rsa, SignatureScheme::RsaPkcs1Sha512, other_rsa.clone()),
            (&rsa, SignatureScheme::RsaPssSha256, other_rsa.clone()),
            (&rsa, SignatureScheme::RsaPssSha384, other_rsa.clone()),
            (&rsa, SignatureScheme::RsaPssSha512, other_rsa.clone()),
            (&p256, SignatureScheme::EcdsaP256Sha256, ecdsa(&sig::ECDSA_P256_SHA256_ASN1_SIGNING)),
            (&p384, SignatureScheme::EcdsaP384Sha384, ecdsa(&sig::ECDSA_P384_SHA384_ASN1_SIGNING)),
            (&p521, SignatureScheme::EcdsaP521Sha512, ecdsa(&sig::ECDSA_P521_SHA512_ASN1_SIGNING)),
            (&ed, SignatureScheme::Ed25519, ed25519()),
        ];
        let octets = b"IKE_SA_INIT message | Nr | prf(SK_pi, IDi')";
        for (key, scheme, other) in cases {
            let spki = key.public_key_spki();
            let auth = sign_auth_with(key.as_ref(), scheme, octets).unwrap();
            assert_eq!(auth.method, AuthMethod::DIGITAL_SIGNATURE);
            verify_auth(&AwsSignature, &spki, &auth, octets).unwrap();
            assert_eq!(
                verify_auth(&AwsSignature, &other.public_key_spki(), &auth, octets),
                Err(CryptoError::BadSignature),
                "{scheme:?} other key"
            );
            assert_eq!(verify_auth(&AwsSignature, &spki, &auth, b"other octets"), Err(CryptoError::BadSignature));
            let mut bad = auth.clone();
            let last = bad.data.len() - 1;
            bad.data[last] ^= 0x01;
            assert_eq!(verify_auth(&AwsSignature, &spki, &bad, octets), Err(CryptoError::BadSignature), "{scheme:?}");
        }
        // Defaults of sign_auth: RSA PKCS#1 SHA-256 or PSS, ECDSA by curve.
        let auth = sign_auth(rsa.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, octets).unwrap();
        assert_eq!(decode_signature_auth(&auth.data).unwrap().0, SignatureScheme::RsaPkcs1Sha256);
        assert_eq!(decode_signature_auth(&auth.data).unwrap().1.len(), 256);
        let auth = sign_auth(rsa.as_ref(), AuthMethod::DIGITAL_SIGNATURE, true, octets).unwrap();
        assert_eq!(decode_signature_auth(&auth.data).unwrap().0, SignatureScheme::RsaPssSha256);
        let auth = sign_auth(p384.as_ref(), AuthMethod::DIGITAL_SIGNATURE, true, octets).unwrap();
        let (scheme, signature) = decode_signature_auth(&auth.data).unwrap();
        assert_eq!(scheme, SignatureScheme::EcdsaP384Sha384);
        assert_eq!(signature[0], 0x30, "RFC 7427 ECDSA signatures are DER");
        // Debug shows no key material.
        assert_eq!(format!("{rsa:?}"), "AwsSigningKey(Rsa(2048))");
    }

    /// Classic ECDSA methods 9, 10, 11 with fixed r‖s (RFC 4754 §7), and the key-type checks.
    #[test]
    fn classic_methods_and_mismatches() {
        let octets = b"signed octets";
        let keys = [
            (ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING), AuthMethod::ECDSA_SHA256_P256, 64),
            (ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING), AuthMethod::ECDSA_SHA384_P384, 96),
            (ecdsa(&sig::ECDSA_P521_SHA512_FIXED_SIGNING), AuthMethod::ECDSA_SHA512_P521, 132),
        ];
        for (key, method, len) in &keys {
            let auth = sign_auth(key.as_ref(), *method, false, octets).unwrap();
            assert_eq!((auth.method, auth.data.len()), (*method, *len));
            verify_auth(&AwsSignature, &key.public_key_spki(), &auth, octets).unwrap();
            let mut bad = auth.clone();
            bad.data[0] ^= 0x80;
            assert_eq!(
                verify_auth(&AwsSignature, &key.public_key_spki(), &bad, octets),
                Err(CryptoError::BadSignature)
            );
        }
        let (p256, p384) = (&keys[0].0, &keys[1].0);
        // A P-256 key cannot sign or verify method 10 (P-384).
        assert!(matches!(
            sign_auth(p256.as_ref(), AuthMethod::ECDSA_SHA384_P384, false, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        let auth = sign_auth(p256.as_ref(), AuthMethod::ECDSA_SHA256_P256, false, octets).unwrap();
        let relabeled = AuthPayload { method: AuthMethod::ECDSA_SHA384_P384, data: auth.data.clone() };
        assert!(matches!(
            verify_auth(&AwsSignature, &p256.public_key_spki(), &relabeled, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        assert!(matches!(
            verify_auth(&AwsSignature, &p384.public_key_spki(), &auth, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        // Method 14 with an ECDSA-P256 AlgorithmIdentifier against a P-384 key, or RSA against EC.
        let auth14 = sign_auth(p256.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, octets).unwrap();
        assert!(matches!(
            verify_auth(&AwsSignature, &p384.public_key_spki(), &auth14, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        let rsa = rsa2048();
        let rsa_auth = sign_auth(rsa.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, octets).unwrap();
        assert!(matches!(
            verify_auth(&AwsSignature, &p256.public_key_spki(), &rsa_auth, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        // Method 1 (RSA, SHA-1): an EC key is refused; an RSA key checks the signature; signing is not
        // available with aws-lc-rs.
        let m1 = AuthPayload { method: AuthMethod::RSA_DIGITAL_SIGNATURE, data: vec![0; 256] };
        assert!(matches!(
            verify_auth(&AwsSignature, &p256.public_key_spki(), &m1, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        assert_eq!(verify_auth(&AwsSignature, &rsa.public_key_spki(), &m1, octets), Err(CryptoError::BadSignature));
        assert!(sign_auth(rsa.as_ref(), AuthMethod::RSA_DIGITAL_SIGNATURE, false, octets).is_err());
        // Schemes that do not suit the key.
        assert!(rsa.sign(SignatureScheme::Ed25519, EcdsaEncoding::Asn1, octets).is_err());
        assert!(p256.sign(SignatureScheme::EcdsaP384Sha384, EcdsaEncoding::Asn1, octets).is_err());
        // PSK and NULL are not signature methods.
        let psk = AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: vec![0; 32] };
        assert!(matches!(
            verify_auth(&AwsSignature, &p256.public_key_spki(), &psk, octets),
            Err(CryptoError::UnsupportedSignature(_))
        ));
        // Garbage public keys.
        assert!(matches!(verify_auth(&AwsSignature, b"junk", &auth, octets), Err(CryptoError::InvalidKey(_))));
    }

    /// Traditional key forms: SEC1 ECPrivateKey (RFC 5915); junk is rejected.
    #[test]
    fn key_loading() {
        let kp = sig::EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        let sec1: EcPrivateKeyRfc5915Der<'static> = kp.private_key().as_der().unwrap();
        let key = load(sec1.as_ref());
        assert_eq!(key.key_type(), KeyType::EcdsaP384);
        let spki = key.public_key_spki();
        assert_eq!(spki_kind(&spki).unwrap(), PublicKeyKind::EcdsaP384);
        let auth = sign_auth(key.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, b"x").unwrap();
        verify_auth(&AwsSignature, &spki, &auth, b"x").unwrap();
        assert!(matches!(AwsSignature.load_private_key(b"not a key"), Err(CryptoError::InvalidKey(_))));
        assert_eq!(spki_kind(&rsa2048().public_key_spki()).unwrap(), PublicKeyKind::Rsa);
    }

    /// PSK AUTH (RFC 7296 §2.15) against its definition, and mismatches.
    #[test]
    fn psk_round_trip() {
        let alg = PrfAlg::new(PrfId::HMAC_SHA2_256).unwrap();
        let octets = signed_octets(b"message", b"nonce", &AwsMac, alg, b"sk_pi", b"\x02\0\0\0host").unwrap();
        let maced = AwsMac.prf(alg, b"sk_pi", &[b"\x02\0\0\0host"]).unwrap();
        assert_eq!(&octets[..12], b"messagenonce");
        assert_eq!(&octets[12..], maced.expose());
        let auth = psk_auth(&AwsMac, alg, b"secret", &octets).unwrap();
        let pad_key = AwsMac.prf(alg, b"secret", &[b"Key Pad for IKEv2"]).unwrap();
        assert_eq!(auth, AwsMac.prf(alg, pad_key.expose(), &[&octets]).unwrap());
        verify_psk(&AwsMac, alg, b"secret", &octets, auth.expose()).unwrap();
        assert_eq!(verify_psk(&AwsMac, alg, b"Secret", &octets, auth.expose()), Err(CryptoError::BadSignature));
        assert_eq!(verify_psk(&AwsMac, alg, b"secret", b"other", auth.expose()), Err(CryptoError::BadSignature));
        assert_eq!(verify_psk(&AwsMac, alg, b"secret", &octets, &auth.expose()[..31]), Err(CryptoError::BadSignature));
    }

    #[test]
    fn scheme_hashes() {
        assert_eq!(scheme_hash(SignatureScheme::RsaPssSha384), HashAlgorithm::SHA2_384);
        assert_eq!(scheme_hash(SignatureScheme::EcdsaP521Sha512), HashAlgorithm::SHA2_512);
        assert_eq!(scheme_hash(SignatureScheme::Ed25519), HashAlgorithm::IDENTITY);
        assert!(!SIGNATURE_HASH_ALGORITHMS.contains(&HashAlgorithm::SHA1));
    }
}
