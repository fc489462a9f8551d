//! AEAD and CBC ciphers on aws-lc-rs: AES-GCM (RFC 4106, RFC 5282) with 16-, 12- and 8-octet ICVs,
//! ChaCha20-Poly1305 (RFC 7634) and AES-CBC without padding (RFC 3602).

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::constant_time;
use aws_lc_rs::iv::FixedLength;
use oxswan_wire::EncrId;
use zeroize::Zeroize;

use crate::alg::EncrAlg;
use crate::error::{CryptoError, Result};
use crate::provider::{AeadKey, CbcKey, CipherProvider};

/// Ciphers on aws-lc-rs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsCipher;

/// Full GCM/Poly1305 tag length.
const FULL_TAG: usize = 16;

fn check_key(alg: EncrAlg, key: &[u8]) -> Result<()> {
    if key.len() == alg.key_len() {
        Ok(())
    } else {
        Err(CryptoError::InvalidKeyLength { expected: alg.key_len(), got: key.len() })
    }
}

fn block_cipher(alg: EncrAlg) -> Result<&'static aws_lc_rs::cipher::Algorithm> {
    Ok(match alg.key_bits {
        128 => &AES_128,
        192 => &AES_192,
        256 => &AES_256,
        _ => return Err(CryptoError::UnsupportedEncr(alg.id, alg.key_bits)),
    })
}

impl CipherProvider for AwsCipher {
    fn aead(&self, alg: EncrAlg, key: &[u8]) -> Result<Box<dyn AeadKey>> {
        check_key(alg, key)?;
        let (algorithm, tag_len) = match (alg.id, alg.key_bits) {
            (EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16, 128) => (&aead::AES_128_GCM, alg.icv_len()),
            (EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16, 192) => (&aead::AES_192_GCM, alg.icv_len()),
            (EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16, 256) => (&aead::AES_256_GCM, alg.icv_len()),
            (EncrId::CHACHA20_POLY1305, 256) => (&aead::CHACHA20_POLY1305, FULL_TAG),
            _ => return Err(CryptoError::UnsupportedEncr(alg.id, alg.key_bits)),
        };
        let aead_key = LessSafeKey::new(
            UnboundKey::new(algorithm, key).map_err(|_| CryptoError::UnsupportedEncr(alg.id, alg.key_bits))?,
        );
        // A truncated GCM tag cannot be checked by the AEAD API, which wants all 16 octets: keep a CTR
        // key to recover the plaintext and recompute the tag (see `open_truncated`).
        let ctr = if tag_len < FULL_TAG {
            let unbound = UnboundCipherKey::new(block_cipher(alg)?, key)
                .map_err(|_| CryptoError::UnsupportedEncr(alg.id, alg.key_bits))?;
            Some(DecryptingKey::ctr(unbound).map_err(|_| CryptoError::Internal("AES-CTR key"))?)
        } else {
            None
        };
        Ok(Box::new(AwsAead { key: aead_key, tag_len, ctr }))
    }

    fn cbc(&self, alg: EncrAlg, key: &[u8]) -> Result<Box<dyn CbcKey>> {
        check_key(alg, key)?;
        if alg.id != EncrId::AES_CBC {
            return Err(CryptoError::UnsupportedEncr(alg.id, alg.key_bits));
        }
        let make = || {
            UnboundCipherKey::new(block_cipher(alg)?, key)
                .map_err(|_| CryptoError::UnsupportedEncr(alg.id, alg.key_bits))
        };
        Ok(Box::new(AwsCbc {
            enc: EncryptingKey::cbc(make()?).map_err(|_| CryptoError::Internal("AES-CBC key"))?,
            dec: DecryptingKey::cbc(make()?).map_err(|_| CryptoError::Internal("AES-CBC key"))?,
        }))
    }
}

struct AwsAead {
    key: LessSafeKey,
    tag_len: usize,
    ctr: Option<DecryptingKey>,
}

impl AwsAead {
    /// Opens with a truncated GCM tag (RFC 4106 §6 allows 8 and 12 octets): decrypt with AES-CTR from
    /// inc32(J0) = nonce ‖ 2 (NIST SP 800-38D §7.2), re-seal the plaintext to recompute the full tag, and
    /// compare its prefix in constant time. Re-encrypting gives back the very ciphertext that was
    /// authenticated, so the recomputed tag is the sender's.
    fn open_truncated(
        &self,
        ctr: &DecryptingKey,
        nonce: &[u8; 12],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        let mut counter = [0u8; 16];
        for (c, n) in counter.iter_mut().zip(nonce) {
            *c = *n;
        }
        if let Some(last) = counter.last_mut() {
            *last = 2;
        }
        let ciphertext = in_out.to_vec();
        ctr.decrypt(in_out, DecryptionContext::Iv128(FixedLength::from(counter)))
            .map_err(|_| CryptoError::Internal("AES-CTR"))?;
        let mut check = in_out.to_vec();
        let full = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut check)
            .map_err(|_| CryptoError::Internal("AES-GCM seal"))?;
        let ok = check == ciphertext
            && full
                .as_ref()
                .get(..self.tag_len)
                .is_some_and(|t| constant_time::verify_slices_are_equal(t, tag).is_ok());
        check.zeroize();
        if ok {
            Ok(())
        } else {
            in_out.zeroize();
            Err(CryptoError::IntegrityCheckFailed)
        }
    }
}

impl AeadKey for AwsAead {
    fn tag_len(&self) -> usize {
        self.tag_len
    }

    fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8], tag: &mut [u8]) -> Result<()> {
        if tag.len() != self.tag_len {
            return Err(CryptoError::Malformed("tag buffer of the wrong length"));
        }
        let full = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
            .map_err(|_| CryptoError::Internal("AEAD seal"))?;
        // RFC 4106 §6 / RFC 5282: a shorter ICV is the leading octets of the full tag.
        let src = full.as_ref().get(..self.tag_len).ok_or(CryptoError::Internal("tag length"))?;
        tag.copy_from_slice(src);
        Ok(())
    }

    fn open_in_place(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8], tag: &[u8]) -> Result<()> {
        if tag.len() != self.tag_len {
            return Err(CryptoError::IntegrityCheckFailed);
        }
        match &self.ctr {
            Some(ctr) => self.open_truncated(ctr, nonce, aad, in_out, tag),
            None => self
                .key
                .open_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), tag, in_out)
                .map(|_| ())
                .map_err(|_| CryptoError::IntegrityCheckFailed),
        }
    }
}

struct AwsCbc {
    enc: EncryptingKey,
    dec: DecryptingKey,
}

fn whole_blocks(data: &[u8]) -> Result<()> {
    if data.len() % 16 == 0 { Ok(()) } else { Err(CryptoError::Malformed("CBC data not a multiple of 16 octets")) }
}

impl CbcKey for AwsCbc {
    fn encrypt_in_place(&self, iv: &[u8; 16], in_out: &mut [u8]) -> Result<()> {
        whole_blocks(in_out)?;
        self.enc
            .less_safe_encrypt(in_out, EncryptionContext::Iv128(FixedLength::from(*iv)))
            .map(|_| ())
            .map_err(|_| CryptoError::Internal("AES-CBC encrypt"))
    }

    fn decrypt_in_place(&self, iv: &[u8; 16], in_out: &mut [u8]) -> Result<()> {
        whole_blocks(in_out)?;
        self.dec
            .decrypt(in_out, DecryptionContext::Iv128(FixedLength::from(*iv)))
            .map(|_| ())
            .map_err(|_| CryptoError::Internal("AES-CBC decrypt"))
    }
}
