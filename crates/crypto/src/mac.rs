//! HMAC-based PRFs and integrity algorithms, and the system RNG, on aws-lc-rs.

use aws_lc_rs::{constant_time, hmac, rand};

use crate::alg::{IntegAlg, PrfAlg};
use crate::error::{CryptoError, Result};
use crate::provider::{IntegKey, IntegProvider, PrfProvider, SecureRandom};
use crate::secret::Secret;
use oxswan_wire::{IntegId, PrfId};

/// The operating system's RNG through aws-lc-rs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsRandom;

impl SecureRandom for AwsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<()> {
        rand::fill(dest).map_err(|_| CryptoError::Internal("random"))
    }
}

/// HMAC PRFs (RFC 2104, RFC 4868) and truncated-HMAC integrity algorithms.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsMac;

fn prf_algorithm(id: PrfId) -> Result<hmac::Algorithm> {
    Ok(match id {
        PrfId::HMAC_SHA1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        PrfId::HMAC_SHA2_256 => hmac::HMAC_SHA256,
        PrfId::HMAC_SHA2_384 => hmac::HMAC_SHA384,
        PrfId::HMAC_SHA2_512 => hmac::HMAC_SHA512,
        other => return Err(CryptoError::UnsupportedPrf(other)),
    })
}

fn integ_algorithm(id: IntegId) -> Result<hmac::Algorithm> {
    Ok(match id {
        IntegId::HMAC_SHA1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        IntegId::HMAC_SHA2_256_128 => hmac::HMAC_SHA256,
        IntegId::HMAC_SHA2_384_192 => hmac::HMAC_SHA384,
        IntegId::HMAC_SHA2_512_256 => hmac::HMAC_SHA512,
        other => return Err(CryptoError::UnsupportedInteg(other)),
    })
}

fn hmac_parts(alg: hmac::Algorithm, key: &[u8], data: &[&[u8]]) -> hmac::Tag {
    let key = hmac::Key::new(alg, key);
    let mut ctx = hmac::Context::with_key(&key);
    for d in data {
        ctx.update(d);
    }
    ctx.sign()
}

impl PrfProvider for AwsMac {
    fn prf(&self, alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Result<Secret> {
        let tag = hmac_parts(prf_algorithm(alg.0)?, key, data);
        Ok(Secret::from_slice(tag.as_ref()))
    }
}

impl AwsMac {
    fn icv(alg: IntegAlg, key: &[u8], data: &[&[u8]]) -> Result<Vec<u8>> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::InvalidKeyLength { expected: alg.key_len(), got: key.len() });
        }
        let tag = hmac_parts(integ_algorithm(alg.0)?, key, data);
        tag.as_ref().get(..alg.icv_len()).map(<[u8]>::to_vec).ok_or(CryptoError::Internal("ICV longer than HMAC"))
    }
}

impl IntegProvider for AwsMac {
    fn sign(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]]) -> Result<Vec<u8>> {
        Self::icv(alg, key, data)
    }

    fn verify(&self, alg: IntegAlg, key: &[u8], data: &[&[u8]], icv: &[u8]) -> Result<()> {
        let expected = Self::icv(alg, key, data)?;
        constant_time::verify_slices_are_equal(&expected, icv).map_err(|_| CryptoError::IntegrityCheckFailed)
    }

    fn key(&self, alg: IntegAlg, key: &[u8]) -> Result<Box<dyn IntegKey>> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::InvalidKeyLength { expected: alg.key_len(), got: key.len() });
        }
        Ok(Box::new(AwsIntegKey { key: hmac::Key::new(integ_algorithm(alg.0)?, key), icv_len: alg.icv_len() }))
    }
}

/// An HMAC key with its precomputed pads.
struct AwsIntegKey {
    key: hmac::Key,
    icv_len: usize,
}

impl AwsIntegKey {
    fn tag(&self, data: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for d in data {
            ctx.update(d);
        }
        ctx.sign()
    }
}

impl IntegKey for AwsIntegKey {
    fn icv_len(&self) -> usize {
        self.icv_len
    }

    fn sign_into(&self, data: &[&[u8]], icv: &mut [u8]) -> Result<()> {
        let tag = self.tag(data);
        let t = tag.as_ref().get(..self.icv_len).ok_or(CryptoError::Internal("ICV longer than HMAC"))?;
        if icv.len() != t.len() {
            return Err(CryptoError::Internal("ICV buffer length"));
        }
        icv.copy_from_slice(t);
        Ok(())
    }

    fn verify(&self, data: &[&[u8]], icv: &[u8]) -> Result<()> {
        let tag = self.tag(data);
        let t = tag.as_ref().get(..self.icv_len).ok_or(CryptoError::Internal("ICV longer than HMAC"))?;
        constant_time::verify_slices_are_equal(t, icv).map_err(|_| CryptoError::IntegrityCheckFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 4231 test case 2 ("Jefe") for the three SHA-2 PRFs.
    #[test]
    fn rfc4231_case2() {
        let key = b"Jefe";
        let data: &[&[u8]] = &[b"what do ya want ", b"for nothing?"];
        let cases = [
            (PrfId::HMAC_SHA2_256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (
                PrfId::HMAC_SHA2_384,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                PrfId::HMAC_SHA2_512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (id, expected) in cases {
            let out = AwsMac.prf(PrfAlg::new(id).unwrap(), key, data).unwrap();
            assert_eq!(hex::encode(out.expose()), expected, "{id:?}");
        }
    }

    /// RFC 4231 test case 1 and RFC 4868 §2.7.2.1 truncation: HMAC-SHA-256-128 is the first 16 octets.
    #[test]
    fn rfc4231_case1_truncated_icv() {
        let key = h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        let alg = IntegAlg::new(IntegId::HMAC_SHA2_256_128).unwrap();
        let icv = AwsMac.sign(alg, &key, &[b"Hi There"]).unwrap();
        // RFC 4868 §2.7.2.1 PRF-SHA-256 test case 1 with a 32-octet key: 198a607e b44bfbc6 9903a0f1 cf2bbdc5 ...
        assert_eq!(hex::encode(&icv), "198a607eb44bfbc69903a0f1cf2bbdc5");
        AwsMac.verify(alg, &key, &[b"Hi ", b"There"], &icv).unwrap();
        // The keyed instance gives the same ICV and checks it.
        let k = AwsMac.key(alg, &key).unwrap();
        let mut out = [0u8; 16];
        k.sign_into(&[b"Hi", b" There"], &mut out).unwrap();
        assert_eq!(out[..], icv[..]);
        k.verify(&[b"Hi There"], &icv).unwrap();
        assert!(k.verify(&[b"Hi there"], &icv).is_err());
        assert!(k.sign_into(&[b"x"], &mut [0u8; 12]).is_err());
        assert!(AwsMac.key(alg, &key[..31]).is_err());
        let mut bad = icv.clone();
        bad[0] ^= 1;
        assert_eq!(AwsMac.verify(alg, &key, &[b"Hi There"], &bad), Err(CryptoError::IntegrityCheckFailed));
        assert!(AwsMac.sign(alg, &key[..20], &[b"x"]).is_err());
    }

    /// RFC 2202 test case 1 for HMAC-SHA-1 (PRF) and its 96-bit truncation (RFC 2404).
    #[test]
    fn rfc2202_sha1() {
        let key = [0x0b; 20];
        let out = AwsMac.prf(PrfAlg::new(PrfId::HMAC_SHA1).unwrap(), &key, &[b"Hi There"]).unwrap();
        assert_eq!(hex::encode(out.expose()), "b617318655057264e28bc0b6fb378c8ef146be00");
        let icv = AwsMac.sign(IntegAlg::new(IntegId::HMAC_SHA1_96).unwrap(), &key, &[b"Hi There"]).unwrap();
        assert_eq!(hex::encode(icv), "b617318655057264e28bc0b6");
    }

    #[test]
    fn random_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        AwsRandom.fill(&mut a).unwrap();
        AwsRandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
