//! ML-KEM-512/768/1024 (FIPS 203) as IKEv2 key exchange methods 35, 36, 37
//! (draft-ietf-ipsecme-ikev2-mlkem, RFC 9370) on `aws_lc_rs::kem`.
//!
//! draft-ietf-ipsecme-ikev2-mlkem §2: the initiator generates a key pair and sends the encapsulation key
//! as its KE data; the responder encapsulates to it and sends the ciphertext; the initiator decapsulates.
//! The shared secret is the 32-octet ML-KEM shared key.

use aws_lc_rs::kem::{self, AlgorithmId, Ciphertext, DecapsulationKey, EncapsulationKey};

use super::invalid;
use crate::error::{CryptoError, Result};
use crate::provider::KeyExchange;
use crate::secret::Secret;
use oxswan_wire::KeId;

/// The ML-KEM prime q (FIPS 203 §2.4).
const Q: u16 = 3329;

/// One parameter set's sizes (FIPS 203 §8, Table 3).
#[derive(Debug, Clone, Copy)]
struct Params {
    alg: &'static kem::Algorithm<AlgorithmId>,
    /// Module rank k.
    k: usize,
    /// Encapsulation key octets: 384·k + 32.
    ek_len: usize,
    /// Ciphertext octets.
    ct_len: usize,
}

impl Params {
    fn of(group: KeId) -> Result<Self> {
        Ok(match group {
            KeId::ML_KEM_512 => Self { alg: &kem::ML_KEM_512, k: 2, ek_len: 800, ct_len: 768 },
            KeId::ML_KEM_768 => Self { alg: &kem::ML_KEM_768, k: 3, ek_len: 1184, ct_len: 1088 },
            KeId::ML_KEM_1024 => Self { alg: &kem::ML_KEM_1024, k: 4, ek_len: 1568, ct_len: 1568 },
            other => return Err(CryptoError::UnsupportedKe(other)),
        })
    }
}

/// FIPS 203 §7.2 encapsulation input checks, which the responder MUST do
/// (draft-ietf-ipsecme-ikev2-mlkem §2.2): the type check (the length, 384·k + 32) and the modulus check
/// (ByteEncode12(ByteDecode12(ek[0:384k])) = ek[0:384k], i.e. every 12-bit coefficient is below q).
fn check_encapsulation_key(group: KeId, p: &Params, ek: &[u8]) -> Result<()> {
    if ek.len() != p.ek_len {
        return Err(invalid(group, "wrong length"));
    }
    let t_len = p.k.saturating_mul(384);
    let t = ek.get(..t_len).ok_or(invalid(group, "wrong length"))?;
    // ByteDecode12 (FIPS 203 Algorithm 6): each 3 octets hold two little-endian 12-bit coefficients.
    for chunk in t.chunks_exact(3) {
        if let [b0, b1, b2] = *chunk {
            let c0 = u16::from(b0) | (u16::from(b1 & 0x0f) << 8);
            let c1 = u16::from(b1 >> 4) | (u16::from(b2) << 4);
            if c0 >= Q || c1 >= Q {
                return Err(invalid(group, "encapsulation key coefficient not below q"));
            }
        }
    }
    Ok(())
}

/// The initiator's decapsulation key, waiting for the responder's ciphertext.
struct MlKemKe {
    group: KeId,
    params: Params,
    /// aws-lc frees (and cleanses) the key when it is dropped.
    dk: DecapsulationKey<AlgorithmId>,
    ek: Vec<u8>,
}

impl core::fmt::Debug for MlKemKe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MlKemKe").field("group", &self.group).field("public_len", &self.ek.len()).finish()
    }
}

impl KeyExchange for MlKemKe {
    fn group(&self) -> KeId {
        self.group
    }

    fn public_value(&self) -> &[u8] {
        &self.ek
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret> {
        // FIPS 203 §7.3 ciphertext type check. A ciphertext of the right length is never refused:
        // ML-KEM.Decaps rejects implicitly, returning a pseudorandom key the responder does not share,
        // so the exchange fails later at the AUTH payload.
        if peer.len() != self.params.ct_len {
            return Err(invalid(self.group, "wrong length"));
        }
        let ss =
            self.dk.decapsulate(Ciphertext::from(peer)).map_err(|_| CryptoError::Internal("ML-KEM decapsulation"))?;
        Ok(Secret::from_slice(ss.as_ref()))
    }
}

/// A new decapsulation key as the initiator; the encapsulation key is the KE data.
pub(super) fn start(group: KeId) -> Result<Box<dyn KeyExchange>> {
    let params = Params::of(group)?;
    let dk = DecapsulationKey::generate(params.alg).map_err(|_| CryptoError::Internal("ML-KEM key generation"))?;
    let ek = dk
        .encapsulation_key()
        .and_then(|ek| ek.key_bytes())
        .map_err(|_| CryptoError::Internal("ML-KEM encapsulation key"))?
        .as_ref()
        .to_vec();
    if ek.len() != params.ek_len {
        return Err(CryptoError::Internal("ML-KEM encapsulation key length"));
    }
    Ok(Box::new(MlKemKe { group, params, dk, ek }))
}

/// The responder: checks the encapsulation key and encapsulates; returns (ciphertext, shared key).
pub(super) fn respond(group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
    let params = Params::of(group)?;
    check_encapsulation_key(group, &params, peer)?;
    let ek = EncapsulationKey::new(params.alg, peer).map_err(|_| invalid(group, "encapsulation key rejected"))?;
    let (ct, ss) = ek.encapsulate().map_err(|_| invalid(group, "encapsulation key rejected"))?;
    if ct.as_ref().len() != params.ct_len {
        return Err(CryptoError::Internal("ML-KEM ciphertext length"));
    }
    Ok((ct.as_ref().to_vec(), Secret::from_slice(ss.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [KeId; 3] = [KeId::ML_KEM_512, KeId::ML_KEM_768, KeId::ML_KEM_1024];

    #[test]
    fn round_trips() {
        for g in ALL {
            let p = Params::of(g).unwrap();
            let i = start(g).unwrap();
            assert_eq!(i.public_value().len(), p.ek_len);
            check_encapsulation_key(g, &p, i.public_value()).unwrap();
            let (ct, s_r) = respond(g, i.public_value()).unwrap();
            assert_eq!(ct.len(), p.ct_len);
            assert_eq!(s_r.len(), 32);
            assert_eq!(i.complete(&ct).unwrap(), s_r, "{g:?}");
        }
    }

    #[test]
    fn wrong_lengths_rejected() {
        for g in ALL {
            let p = Params::of(g).unwrap();
            let i = start(g).unwrap();
            let ek = i.public_value().to_vec();
            for n in [0, p.ek_len - 1, p.ek_len + 1, p.ct_len - 1] {
                let mut bad = ek.clone();
                bad.resize(n, 0);
                assert!(matches!(respond(g, &bad), Err(CryptoError::InvalidPublicValue { .. })), "{g:?} {n}");
            }
            let (ct, _) = respond(g, &ek).unwrap();
            for n in [0, p.ct_len - 1, p.ct_len + 1, p.ek_len] {
                if n == p.ct_len {
                    continue;
                }
                let mut bad = ct.clone();
                bad.resize(n, 0);
                let i = start(g).unwrap();
                assert!(matches!(i.complete(&bad), Err(CryptoError::InvalidPublicValue { .. })), "{g:?} {n}");
            }
        }
    }

    /// FIPS 203 §7.2 modulus check: a coefficient ≥ q makes the key invalid.
    #[test]
    fn modulus_check() {
        for g in ALL {
            let i = start(g).unwrap();
            let mut ek = i.public_value().to_vec();
            // First coefficient := 0xfff (4095 ≥ q).
            ek[0] = 0xff;
            ek[1] |= 0x0f;
            assert!(matches!(respond(g, &ek), Err(CryptoError::InvalidPublicValue { .. })), "{g:?}");
            // Last coefficient of t := q exactly (q = 0xd01: high 8 bits 0xd0, low nibble 1).
            let mut ek = i.public_value().to_vec();
            let t_len = Params::of(g).unwrap().k * 384;
            ek[t_len - 2] = (ek[t_len - 2] & 0x0f) | 0x10;
            ek[t_len - 1] = 0xd0;
            assert!(matches!(respond(g, &ek), Err(CryptoError::InvalidPublicValue { .. })), "{g:?}");
            // q − 1 is fine, and ρ (the last 32 octets) is not checked.
            ek[t_len - 2] &= 0x0f;
            ek[t_len - 1] = 0xd0;
            let last = ek.len() - 1;
            ek[last] ^= 0xff;
            assert!(respond(g, &ek).is_ok(), "{g:?}");
        }
    }

    /// FIPS 203 §6.3 implicit rejection: a tampered ciphertext decapsulates without error to a different
    /// key.
    #[test]
    fn tampered_ciphertext_gives_other_secret() {
        for g in ALL {
            let i = start(g).unwrap();
            let (mut ct, s_r) = respond(g, i.public_value()).unwrap();
            ct[10] ^= 0x01;
            let s_i = i.complete(&ct).unwrap();
            assert_eq!(s_i.len(), 32);
            assert_ne!(s_i, s_r, "{g:?}");
        }
    }
}
