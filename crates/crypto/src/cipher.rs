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
            Some(Box::new(DecryptingKey::ctr(unbound).map_err(|_| CryptoError::Internal("AES-CTR key"))?))
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
    /// Boxed: the key schedules it holds inline are about 500 octets, which every key with a full
    /// tag (none) would carry too; ESP holds two keys per CHILD SA, and a gateway many of them.
    ctr: Option<Box<DecryptingKey>>,
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
    if data.len().is_multiple_of(16) {
        Ok(())
    } else {
        Err(CryptoError::Malformed("CBC data not a multiple of 16 octets"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn gcm(id: EncrId, bits: u16) -> EncrAlg {
        EncrAlg::new(id, Some(bits)).unwrap()
    }

    /// (key, IV, plaintext, AAD, ciphertext, tag) from McGrew & Viega, "The Galois/Counter Mode of
    /// Operation (GCM)", test cases 2, 3, 4 (AES-128) and 14, 16 (AES-256).
    const GCM_CASES: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "00000000000000000000000000000000",
            "000000000000000000000000",
            "00000000000000000000000000000000",
            "",
            "0388dace60b6a392f328c2b971b2fe78",
            "ab6e47d42cec13bdf53a67b21257bddf",
        ),
        (
            "feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            "",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
            "4d5c2af327cd64a62cf35abd2ba6fab4",
        ),
        (
            "feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000",
            "00000000000000000000000000000000",
            "",
            "cea7403d4d606b6e074ec5d3baf39d18",
            "d0d1c8a799996bf0265b98b5d48ab919",
        ),
        (
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        ),
    ];

    #[test]
    fn gcm_known_answers_with_every_icv_length() {
        for (key, iv, pt, aad, ct, tag) in GCM_CASES {
            let (key, pt, aad, ct, tag) = (h(key), h(pt), h(aad), h(ct), h(tag));
            let nonce: [u8; 12] = h(iv).try_into().unwrap();
            let bits = u16::try_from(key.len() * 8).unwrap();
            for (id, len) in [(EncrId::AES_GCM_16, 16), (EncrId::AES_GCM_12, 12), (EncrId::AES_GCM_8, 8)] {
                let k = AwsCipher.aead(gcm(id, bits), &key).unwrap();
                assert_eq!(k.tag_len(), len);
                let mut data = pt.clone();
                let mut t = vec![0u8; len];
                k.seal_in_place(&nonce, &aad, &mut data, &mut t).unwrap();
                assert_eq!(data, ct);
                // RFC 4106 §6: the short ICVs are the leading octets of the full tag.
                assert_eq!(t, tag[..len]);
                k.open_in_place(&nonce, &aad, &mut data, &t).unwrap();
                assert_eq!(data, pt);
                // A wrong tag, or wrong AAD, fails and releases nothing.
                let mut data = ct.clone();
                let mut bad = t.clone();
                bad[len - 1] ^= 1;
                assert_eq!(k.open_in_place(&nonce, &aad, &mut data, &bad), Err(CryptoError::IntegrityCheckFailed));
                let mut data = ct.clone();
                assert_eq!(
                    k.open_in_place(&nonce, b"other aad", &mut data, &t),
                    Err(CryptoError::IntegrityCheckFailed)
                );
                if len < 16 {
                    assert!(data.iter().all(|&b| b == 0), "plaintext released after a failed check");
                }
            }
        }
    }

    /// RFC 8439 §2.8.2: the nonce's first 4 octets are the IKE/ESP salt, the other 8 the IV (RFC 7634 §2).
    #[test]
    fn chacha20_poly1305_rfc8439() {
        let key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce: [u8; 12] = h("070000004041424344454647").try_into().unwrap();
        let aad = h("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let ct = h(concat!(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b",
            "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc",
            "3ff4def08e4b7a9de576d26586cec64b6116"
        ));
        let tag = h("1ae10b594f09e26a7e902ecbd0600691");
        let alg = EncrAlg::new(EncrId::CHACHA20_POLY1305, None).unwrap();
        let k = AwsCipher.aead(alg, &key).unwrap();
        let mut data = pt.clone();
        let mut t = [0u8; 16];
        k.seal_in_place(&nonce, &aad, &mut data, &mut t).unwrap();
        assert_eq!((data.clone(), t.to_vec()), (ct, tag));
        k.open_in_place(&nonce, &aad, &mut data, &t).unwrap();
        assert_eq!(data, pt);
        t[0] ^= 0x80;
        assert_eq!(k.open_in_place(&nonce, &aad, &mut data, &t), Err(CryptoError::IntegrityCheckFailed));
    }

    /// RFC 3602 §4 cases 1 and 2.
    #[test]
    fn aes_cbc_rfc3602() {
        let cases = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                hex::encode(b"Single block msg"),
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".to_owned(),
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
        ];
        let alg = EncrAlg::new(EncrId::AES_CBC, Some(128)).unwrap();
        for (key, iv, pt, ct) in cases {
            let k = AwsCipher.cbc(alg, &h(key)).unwrap();
            let iv: [u8; 16] = h(iv).try_into().unwrap();
            let mut data = h(&pt);
            k.encrypt_in_place(&iv, &mut data).unwrap();
            assert_eq!(hex::encode(&data), ct);
            k.decrypt_in_place(&iv, &mut data).unwrap();
            assert_eq!(hex::encode(&data), pt);
        }
        let k = AwsCipher.cbc(alg, &[0; 16]).unwrap();
        assert!(k.encrypt_in_place(&[0; 16], &mut [0u8; 15]).is_err());
    }

    #[test]
    fn key_lengths_and_algorithms_are_checked() {
        let g = gcm(EncrId::AES_GCM_16, 256);
        assert!(matches!(AwsCipher.aead(g, &[0; 16]), Err(CryptoError::InvalidKeyLength { expected: 32, got: 16 })));
        assert!(AwsCipher.cbc(g, &[0; 32]).is_err());
        assert!(AwsCipher.aead(gcm(EncrId::AES_GCM_16, 192), &[0; 24]).is_ok());
        assert!(AwsCipher.cbc(EncrAlg::new(EncrId::AES_CBC, Some(256)).unwrap(), &[0; 32]).is_ok());
        let k = AwsCipher.aead(g, &[0; 32]).unwrap();
        assert!(k.seal_in_place(&[0; 12], b"", &mut [0u8; 4], &mut [0u8; 12]).is_err());
    }
}
