//! A deterministic, **NO-SECURITY** crypto provider for simulations and fuzzing.
//!
//! Everything it produces follows from a seed, so a simulated handshake or a fuzz run replays exactly:
//! - randomness is SHA-256 in counter mode over the seed;
//! - key exchange is fake: every method produces KE data of the real length, and the shared secret is a
//!   hash of both parties' KE data — anyone who sees the exchange knows it; or, with
//!   [`TestProvider::real_ke`], X25519 and the ECP groups are the real ones on aws-lc-rs with private
//!   keys drawn from a stream of the seed of their own (MODP and ML-KEM stay fake: their real
//!   implementations take randomness from the operating system, which a seed cannot reach);
//! - PRFs, integrity algorithms and signatures are the real ones (they are deterministic already);
//! - ciphers are real, or with [`TestProvider::null_cipher`] the identity with an all-zero ICV, so that
//!   a fuzzer can forge SK payloads and reach the code behind decryption.
//!
//! Never use it outside tests: it is only compiled with the `test-provider` feature.

use std::sync::{Arc, Mutex};

use aws_lc_rs::agreement::{self, ParsedPublicKey, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::digest;

use crate::alg::{EncrAlg, ke_is_kem};
use crate::error::{CryptoError, Result};
use crate::provider::{AeadKey, CbcKey, CipherProvider, CryptoProvider, KeProvider, KeyExchange, SecureRandom};
use crate::secret::Secret;
use oxswan_wire::KeId;

/// Builder for the deterministic provider.
#[derive(Debug, Clone, Copy)]
pub struct TestProvider {
    seed: u64,
    null_cipher: bool,
    real_ke: bool,
}

impl TestProvider {
    /// A provider whose randomness and key exchanges follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, null_cipher: false, real_ke: false }
    }

    /// Real X25519 and ECP (groups 19–21) key exchanges, their private keys drawn from a stream of the
    /// seed separate from [`CryptoProvider::random`] (so that the KE takes nothing from the stream the
    /// nonces and SPIs come from). MODP and ML-KEM stay fake.
    #[must_use]
    pub fn real_ke(mut self) -> Self {
        self.real_ke = true;
        self
    }

    /// Replaces every cipher with the identity and an all-zero ICV.
    #[must_use]
    pub fn null_cipher(mut self) -> Self {
        self.null_cipher = true;
        self
    }

    /// The provider.
    pub fn build(self) -> CryptoProvider {
        let real = crate::provider::default_provider();
        let random = Arc::new(DeterministicRandom::new(self.seed));
        let ke: Arc<dyn KeProvider> = if self.real_ke {
            let stream = Arc::new(DeterministicRandom::with_label(self.seed, KE_LABEL));
            Arc::new(SeededKe { fake: FakeKe { random: stream.clone() }, random: stream })
        } else {
            Arc::new(FakeKe { random: random.clone() })
        };
        CryptoProvider {
            random,
            prf: real.prf,
            integ: real.integ,
            cipher: if self.null_cipher { Arc::new(NullCipher) } else { real.cipher },
            ke,
            signature: real.signature,
        }
    }
}

/// The label of [`CryptoProvider::random`]'s stream.
const RANDOM_LABEL: &[u8] = b"oxswan test rng";
/// The label of the private keys' stream of [`TestProvider::real_ke`].
const KE_LABEL: &[u8] = b"oxswan test ke";

/// SHA-256 in counter mode over a label and a seed.
#[derive(Debug)]
pub struct DeterministicRandom {
    label: &'static [u8],
    seed: u64,
    counter: Mutex<u64>,
}

impl DeterministicRandom {
    /// A generator starting at block 0 of `seed`'s stream.
    pub fn new(seed: u64) -> Self {
        Self::with_label(seed, RANDOM_LABEL)
    }

    /// A generator starting at block 0 of the stream of `label` and `seed`: streams of different
    /// labels are unrelated, for one seed as for several.
    pub fn with_label(seed: u64, label: &'static [u8]) -> Self {
        Self { label, seed, counter: Mutex::new(0) }
    }
}

impl SecureRandom for DeterministicRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<()> {
        let mut counter = self.counter.lock().map_err(|_| CryptoError::Internal("test RNG lock poisoned"))?;
        for chunk in dest.chunks_mut(32) {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(self.label);
            ctx.update(&self.seed.to_be_bytes());
            ctx.update(&counter.to_be_bytes());
            let block = ctx.finish();
            if let Some(src) = block.as_ref().get(..chunk.len()) {
                chunk.copy_from_slice(src);
            }
            *counter = counter.wrapping_add(1);
        }
        Ok(())
    }
}

/// The KE data lengths of the real methods, so length checks elsewhere see realistic values.
fn ke_lengths(group: KeId) -> Option<(usize, usize)> {
    // (initiator's KE data, responder's KE data)
    Some(match group {
        KeId::MODP1024 => (128, 128),
        KeId::MODP2048 => (256, 256),
        KeId::MODP3072 => (384, 384),
        KeId::MODP4096 => (512, 512),
        KeId::ECP256 => (64, 64),
        KeId::ECP384 => (96, 96),
        KeId::ECP521 => (132, 132),
        KeId::CURVE25519 => (32, 32),
        KeId::ML_KEM_512 => (800, 768),
        KeId::ML_KEM_768 => (1184, 1088),
        KeId::ML_KEM_1024 => (1568, 1568),
        _ => return None,
    })
}

/// Fake key exchange: KE data is random octets of the right length; the shared secret is
/// SHA-256(group ‖ initiator data ‖ responder data) for KEMs, and over the two values in sorted order for
/// DH (where both sides send the same kind of value and either may be "first").
#[derive(Debug)]
struct FakeKe {
    random: Arc<DeterministicRandom>,
}

fn fake_secret(group: KeId, a: &[u8], b: &[u8]) -> Secret {
    let (first, second) = if ke_is_kem(group) || a <= b { (a, b) } else { (b, a) };
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&group.0.to_be_bytes());
    ctx.update(first);
    ctx.update(second);
    Secret::from_slice(ctx.finish().as_ref())
}

impl FakeKe {
    fn value(&self, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.random.fill(&mut v)?;
        Ok(v)
    }
}

fn check_len(group: KeId, peer: &[u8], expected: usize) -> Result<()> {
    if peer.len() == expected { Ok(()) } else { Err(CryptoError::InvalidPublicValue { group, reason: "wrong length" }) }
}

impl KeProvider for FakeKe {
    fn supports(&self, group: KeId) -> bool {
        ke_lengths(group).is_some()
    }

    fn start(&self, group: KeId) -> Result<Box<dyn KeyExchange>> {
        let (ours, theirs) = ke_lengths(group).ok_or(CryptoError::UnsupportedKe(group))?;
        Ok(Box::new(FakeExchange { group, public: self.value(ours)?, peer_len: theirs }))
    }

    fn respond(&self, group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
        let (theirs, ours) = ke_lengths(group).ok_or(CryptoError::UnsupportedKe(group))?;
        check_len(group, peer, theirs)?;
        let public = self.value(ours)?;
        let secret = fake_secret(group, peer, &public);
        Ok((public, secret))
    }
}

#[derive(Debug)]
struct FakeExchange {
    group: KeId,
    public: Vec<u8>,
    peer_len: usize,
}

impl KeyExchange for FakeExchange {
    fn group(&self) -> KeId {
        self.group
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret> {
        check_len(self.group, peer, self.peer_len)?;
        Ok(fake_secret(self.group, &self.public, peer))
    }
}

/// Real X25519 and ECP key exchanges whose private keys come from a seeded stream; every other
/// method is [`FakeKe`]'s. Peer values are checked as the production provider checks them: the length,
/// a point on the curve (ECP), a shared secret that is not all zeros (X25519).
#[derive(Debug)]
struct SeededKe {
    random: Arc<DeterministicRandom>,
    fake: FakeKe,
}

/// aws-lc's algorithm, the private key length and whether the KE data is x‖y (RFC 5903 §7) rather than a
/// u-coordinate (RFC 8031 §2).
fn curve(group: KeId) -> Option<(&'static agreement::Algorithm, usize, bool)> {
    Some(match group {
        KeId::CURVE25519 => (&agreement::X25519, 32, false),
        KeId::ECP256 => (&agreement::ECDH_P256, 32, true),
        KeId::ECP384 => (&agreement::ECDH_P384, 48, true),
        KeId::ECP521 => (&agreement::ECDH_P521, 66, true),
        _ => return None,
    })
}

/// A real EC key pair from the seeded stream.
struct SeededEc {
    group: KeId,
    key: PrivateKey,
    public: Vec<u8>,
}

impl core::fmt::Debug for SeededEc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SeededEc").field("group", &self.group).finish_non_exhaustive()
    }
}

impl SeededEc {
    fn generate(group: KeId, random: &DeterministicRandom) -> Result<Self> {
        let (alg, len, weierstrass) = curve(group).ok_or(CryptoError::UnsupportedKe(group))?;
        // A scalar that is zero or not below the group order is refused: draw again (for P-256 that
        // happens about once in 2^32 draws).
        for _ in 0..64 {
            let mut scalar = vec![0u8; len];
            random.fill(&mut scalar)?;
            if group == KeId::ECP521 {
                // 521 bits in 66 octets.
                if let Some(top) = scalar.first_mut() {
                    *top &= 0x01;
                }
            }
            let Ok(key) = PrivateKey::from_private_key(alg, &scalar) else { continue };
            let Ok(public) = key.compute_public_key() else { continue };
            let public = match (weierstrass, public.as_ref().split_first()) {
                (false, _) => public.as_ref().to_vec(),
                (true, Some((0x04, xy))) => xy.to_vec(),
                (true, _) => return Err(CryptoError::Internal("EC public key encoding")),
            };
            return Ok(Self { group, key, public });
        }
        Err(CryptoError::Internal("no valid EC scalar drawn"))
    }

    fn agree(&self, peer: &[u8]) -> Result<Secret> {
        let (alg, _, weierstrass) = curve(self.group).ok_or(CryptoError::UnsupportedKe(self.group))?;
        let invalid = |reason| CryptoError::InvalidPublicValue { group: self.group, reason };
        if peer.len() != self.public.len() {
            return Err(invalid("wrong length"));
        }
        let encoded = if weierstrass { [&[0x04][..], peer].concat() } else { peer.to_vec() };
        let parsed = ParsedPublicKey::try_from(UnparsedPublicKey::new(alg, &encoded))
            .map_err(|_| invalid("not a point on the curve"))?;
        let secret = agreement::agree(&self.key, parsed, (), |z| Ok(Secret::from_slice(z)))
            .map_err(|()| invalid("low-order point: all-zero shared secret"))?;
        if secret.expose().iter().all(|&b| b == 0) {
            return Err(invalid("low-order point: all-zero shared secret"));
        }
        Ok(secret)
    }
}

impl KeyExchange for SeededEc {
    fn group(&self) -> KeId {
        self.group
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret> {
        self.agree(peer)
    }
}

impl KeProvider for SeededKe {
    fn supports(&self, group: KeId) -> bool {
        self.fake.supports(group)
    }

    fn start(&self, group: KeId) -> Result<Box<dyn KeyExchange>> {
        if curve(group).is_some() {
            Ok(Box::new(SeededEc::generate(group, &self.random)?))
        } else {
            self.fake.start(group)
        }
    }

    fn respond(&self, group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
        if curve(group).is_some() {
            let ours = SeededEc::generate(group, &self.random)?;
            let secret = ours.agree(peer)?;
            Ok((ours.public, secret))
        } else {
            self.fake.respond(group, peer)
        }
    }
}

/// Identity "encryption" with an all-zero ICV.
#[derive(Debug)]
struct NullCipher;

struct NullAead {
    tag_len: usize,
}

impl CipherProvider for NullCipher {
    fn aead(&self, alg: EncrAlg, key: &[u8]) -> Result<Box<dyn AeadKey>> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::InvalidKeyLength { expected: alg.key_len(), got: key.len() });
        }
        Ok(Box::new(NullAead { tag_len: alg.icv_len() }))
    }

    fn cbc(&self, alg: EncrAlg, key: &[u8]) -> Result<Box<dyn CbcKey>> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::InvalidKeyLength { expected: alg.key_len(), got: key.len() });
        }
        Ok(Box::new(NullCbc))
    }
}

impl AeadKey for NullAead {
    fn tag_len(&self) -> usize {
        self.tag_len
    }

    fn seal_in_place(&self, _nonce: &[u8; 12], _aad: &[u8], _in_out: &mut [u8], tag: &mut [u8]) -> Result<()> {
        tag.fill(0);
        Ok(())
    }

    fn open_in_place(&self, _nonce: &[u8; 12], _aad: &[u8], _in_out: &mut [u8], tag: &[u8]) -> Result<()> {
        if tag.len() == self.tag_len && tag.iter().all(|&b| b == 0) {
            Ok(())
        } else {
            Err(CryptoError::IntegrityCheckFailed)
        }
    }
}

struct NullCbc;

impl CbcKey for NullCbc {
    fn encrypt_in_place(&self, _iv: &[u8; 16], in_out: &mut [u8]) -> Result<()> {
        block_multiple(in_out)
    }

    fn decrypt_in_place(&self, _iv: &[u8; 16], in_out: &mut [u8]) -> Result<()> {
        block_multiple(in_out)
    }
}

fn block_multiple(data: &[u8]) -> Result<()> {
    if data.len().is_multiple_of(16) { Ok(()) } else { Err(CryptoError::Malformed("CBC input not a multiple of 16")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomness_is_reproducible_per_seed() {
        let (a, b, c) = (TestProvider::new(7).build(), TestProvider::new(7).build(), TestProvider::new(8).build());
        let mut x = [0u8; 40];
        let mut y = [0u8; 40];
        let mut z = [0u8; 40];
        a.random.fill(&mut x).unwrap();
        b.random.fill(&mut y).unwrap();
        c.random.fill(&mut z).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        // The stream moves on.
        a.random.fill(&mut y).unwrap();
        assert_ne!(x, y);
    }

    #[test]
    fn fake_key_exchange_agrees_and_checks_lengths() {
        let p = TestProvider::new(1).build();
        for group in [KeId::CURVE25519, KeId::ECP384, KeId::MODP2048, KeId::ML_KEM_768] {
            let i = p.ke.start(group).unwrap();
            let (r_pub, r_secret) = p.ke.respond(group, i.public_value()).unwrap();
            let i_secret = i.complete(&r_pub).unwrap();
            assert_eq!(i_secret, r_secret, "{group:?}");
            assert!(p.ke.respond(group, &[0; 3]).is_err());
        }
        assert_eq!(p.ke.start(KeId::ML_KEM_768).unwrap().public_value().len(), 1184);
        assert!(!p.ke.supports(KeId::CURVE448));
    }

    #[test]
    fn real_ke_is_reproducible_real_and_checked() {
        for group in [KeId::CURVE25519, KeId::ECP256, KeId::ECP384, KeId::ECP521, KeId::MODP2048, KeId::ML_KEM_768] {
            let (a, b, c) = (
                TestProvider::new(3).real_ke().build(),
                TestProvider::new(3).real_ke().build(),
                TestProvider::new(4).real_ke().build(),
            );
            let (x, y, z) = (a.ke.start(group).unwrap(), b.ke.start(group).unwrap(), c.ke.start(group).unwrap());
            assert_eq!(x.public_value(), y.public_value(), "{group:?}: the seed fixes the key");
            assert_ne!(x.public_value(), z.public_value(), "{group:?}: another seed, another key");
            let (r_pub, r_secret) = c.ke.respond(group, x.public_value()).unwrap();
            assert_eq!(x.complete(&r_pub).unwrap(), r_secret, "{group:?}: both sides agree");
            assert!(a.ke.respond(group, &[0; 3]).is_err(), "{group:?}");
        }
        // X25519 and ECP are the real ones: the production provider agrees with them.
        let real = crate::provider::default_provider();
        for group in [KeId::CURVE25519, KeId::ECP256, KeId::ECP384, KeId::ECP521] {
            let seeded = TestProvider::new(5).real_ke().build();
            let i = seeded.ke.start(group).unwrap();
            let (r_pub, r_secret) = real.ke.respond(group, i.public_value()).unwrap();
            assert_eq!(i.complete(&r_pub).unwrap(), r_secret, "{group:?}");
            let j = real.ke.start(group).unwrap();
            let (s_pub, s_secret) = seeded.ke.respond(group, j.public_value()).unwrap();
            assert_eq!(j.complete(&s_pub).unwrap(), s_secret, "{group:?}");
            // An invalid point and the all-zero X25519 value are refused.
            assert!(seeded.ke.respond(group, &vec![0; i.public_value().len()]).is_err(), "{group:?}");
        }
        // The key stream is not the nonce stream: drawing keys leaves `random` where it was.
        let p = TestProvider::new(6).real_ke().build();
        let q = TestProvider::new(6).real_ke().build();
        p.ke.start(KeId::CURVE25519).unwrap();
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        p.random.fill(&mut x).unwrap();
        q.random.fill(&mut y).unwrap();
        assert_eq!(x, y);
    }

    #[test]
    fn null_cipher_accepts_only_zero_tags() {
        let p = TestProvider::new(1).null_cipher().build();
        let alg = EncrAlg::new(oxswan_wire::EncrId::AES_GCM_16, Some(256)).unwrap();
        let key = p.cipher.aead(alg, &[0; 32]).unwrap();
        let mut data = *b"plaintext";
        let mut tag = [1u8; 16];
        key.seal_in_place(&[0; 12], b"", &mut data, &mut tag).unwrap();
        assert_eq!((&data, tag), (b"plaintext", [0; 16]));
        key.open_in_place(&[0; 12], b"", &mut data, &tag).unwrap();
        tag[3] = 1;
        assert_eq!(key.open_in_place(&[0; 12], b"", &mut data, &tag), Err(CryptoError::IntegrityCheckFailed));
    }
}
