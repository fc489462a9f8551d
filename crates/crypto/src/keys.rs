//! Key derivation (RFC 7296 §2.13–2.18, RFC 9370 §2.2.4).
//!
//! Everything goes through a [`PrfProvider`] so that a deterministic provider can be swapped in:
//!
//! - [`prf_plus`]: the prf+ expansion (RFC 7296 §2.13);
//! - [`skeyseed`] and [`IkeSaKeys::derive`]: SKEYSEED and SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi,
//!   SK_pr of a new IKE SA (RFC 7296 §2.14);
//! - [`IkeSaKeys::additional_ke`]: the update after each additional key exchange (RFC 9370 §2.2.4);
//! - [`IkeSaKeys::rekey`]: the keys of an IKE SA rekeyed with CREATE_CHILD_SA (RFC 7296 §2.18,
//!   RFC 9370 §2.2.4);
//! - [`ChildSaKeys::derive`]: the KEYMAT of a Child SA and its cut into keys (RFC 7296 §2.17,
//!   RFC 9370 §2.2.4).

use crate::alg::{EncrAlg, IntegAlg, PrfAlg};
use crate::error::{CryptoError, Result};
use crate::provider::PrfProvider;
use crate::secret::Secret;
use zeroize::Zeroizing;

/// The most prf+ iterations: the counter is a single octet (RFC 7296 §2.13: "this function is not
/// defined beyond 255 times the size of the prf output").
const PRF_PLUS_MAX_ROUNDS: u8 = 255;

/// prf+ (RFC 7296 §2.13): `T1 | T2 | T3 | ...` cut to `len` octets, where
///
/// ```text
/// T1 = prf (K, S | 0x01)
/// T2 = prf (K, T1 | S | 0x02)
/// Tn = prf (K, Tn-1 | S | n)
/// ```
///
/// The seed `S` is `seed[0] | seed[1] | ...` (so that secret parts need not be copied into one
/// buffer). More than 255 iterations are not defined: asking for more than `255 * output_len` octets
/// fails with [`CryptoError::InvalidKeyLength`] (with `expected` the maximum).
pub fn prf_plus(prf: &dyn PrfProvider, alg: PrfAlg, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Secret> {
    let max = alg.output_len().saturating_mul(usize::from(PRF_PLUS_MAX_ROUNDS));
    if len > max {
        return Err(CryptoError::InvalidKeyLength { expected: max, got: len });
    }
    let mut previous = Secret::default();
    let mut counter: u8 = 1;
    // Wiped if a round fails; reserved up front so that growing never leaves copies behind.
    let mut acc = Zeroizing::new(Vec::with_capacity(len.saturating_add(alg.output_len())));
    while acc.len() < len {
        // The input of each round: Tn-1 (empty for T1) | S | n.
        let counter_octet = [counter];
        let mut data: Vec<&[u8]> = Vec::with_capacity(seed.len().saturating_add(2));
        data.push(previous.expose());
        data.extend_from_slice(seed);
        data.push(&counter_octet);
        let t = prf.prf(alg, key, &data)?;
        if t.is_empty() {
            return Err(CryptoError::Internal("PRF returned no output"));
        }
        acc.extend_from_slice(t.expose());
        previous = t;
        counter = match counter.checked_add(1) {
            Some(c) => c,
            // Only reachable after round 255, when `acc` already holds `max` >= `len` octets.
            None if acc.len() >= len => break,
            None => return Err(CryptoError::InvalidKeyLength { expected: max, got: len }),
        };
    }
    acc.truncate(len);
    Ok(Secret::new(core::mem::take(&mut *acc)))
}

/// SKEYSEED of a new IKE SA (RFC 7296 §2.14): `prf(Ni | Nr, g^ir)`.
///
/// The key is the whole `Ni | Nr`: every PRF implemented here is HMAC, which takes keys of any length
/// (the first-64-bit rule of §2.14 only concerns AES-XCBC-PRF-128 and AES-CMAC-PRF-128). `g_ir` is the
/// shared secret of the IKE_SA_INIT key exchange, in the fixed length of the group.
pub fn skeyseed(prf: &dyn PrfProvider, alg: PrfAlg, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Result<Secret> {
    let mut key = Vec::with_capacity(ni.len().saturating_add(nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf.prf(alg, &key, &[g_ir])
}

/// The transforms of an IKE SA that shape its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    /// Encryption (for an AEAD, with its salt, RFC 5282 §7.1).
    pub encr: EncrAlg,
    /// Integrity: `None` with an AEAD (RFC 5282 §8), required otherwise.
    pub integ: Option<IntegAlg>,
    /// The PRF.
    pub prf: PrfAlg,
}

/// Length of an integrity key: none for an AEAD, the integrity transform's otherwise. An AEAD with an
/// integrity transform, or a non-AEAD cipher without one, is rejected (RFC 7296 §3.3.3: a combined-mode
/// cipher takes no integrity transform; RFC 5282 §8).
fn integ_key_len(encr: EncrAlg, integ: Option<IntegAlg>) -> Result<usize> {
    match (encr.is_aead(), integ) {
        (true, None) => Ok(0),
        (false, Some(i)) => Ok(i.key_len()),
        (true, Some(_)) => Err(CryptoError::InvalidProposal {
            proposal: format!("{encr:?} with {integ:?}"),
            reason: "a combined-mode cipher takes no integrity algorithm".into(),
        }),
        (false, None) => Err(CryptoError::InvalidProposal {
            proposal: format!("{encr:?}"),
            reason: "a non-AEAD cipher needs an integrity algorithm".into(),
        }),
    }
}

/// Takes the next `n` octets of key material (RFC 7296 §2.14 / §2.17: keys are taken in order).
fn take(material: &mut Secret, n: usize) -> Result<Secret> {
    material.take_prefix(n).ok_or(CryptoError::Internal("key material shorter than requested"))
}

/// The seven secrets of an IKE SA (RFC 7296 §2.14).
///
/// With an AEAD `sk_ai` and `sk_ar` are empty and `sk_ei` / `sk_er` are the key followed by the 4-octet
/// salt (RFC 5282 §7.1). `Debug` shows lengths only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaKeys {
    /// Derives Child SA keys and the keys of a rekeyed IKE SA.
    pub sk_d: Secret,
    /// Integrity key for messages from the original initiator (empty for an AEAD).
    pub sk_ai: Secret,
    /// Integrity key for messages from the original responder (empty for an AEAD).
    pub sk_ar: Secret,
    /// Encryption key (and salt) for messages from the original initiator.
    pub sk_ei: Secret,
    /// Encryption key (and salt) for messages from the original responder.
    pub sk_er: Secret,
    /// Key of the initiator's AUTH computation (RFC 7296 §2.15).
    pub sk_pi: Secret,
    /// Key of the responder's AUTH computation.
    pub sk_pr: Secret,
}

impl IkeSaKeys {
    /// The keys from SKEYSEED (RFC 7296 §2.14):
    ///
    /// ```text
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
    /// ```
    ///
    /// SK_d, SK_pi and SK_pr have the preferred key length of the PRF; SK_a* the integrity key length;
    /// SK_e* the cipher's key length plus its salt (RFC 5282 §7.1).
    pub fn derive(
        prf: &dyn PrfProvider,
        suite: &IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: [u8; 8],
        spi_r: [u8; 8],
    ) -> Result<Self> {
        let prf_key = suite.prf.key_len();
        let integ = integ_key_len(suite.encr, suite.integ)?;
        let encr = suite.encr.keymat_len();
        let total =
            prf_key.saturating_mul(3).saturating_add(integ.saturating_mul(2)).saturating_add(encr.saturating_mul(2));
        let mut material = prf_plus(prf, suite.prf, skeyseed, &[ni, nr, &spi_i, &spi_r], total)?;
        // Taken in order (RFC 7296 §2.14).
        Ok(Self {
            sk_d: take(&mut material, prf_key)?,
            sk_ai: take(&mut material, integ)?,
            sk_ar: take(&mut material, integ)?,
            sk_ei: take(&mut material, encr)?,
            sk_er: take(&mut material, encr)?,
            sk_pi: take(&mut material, prf_key)?,
            sk_pr: take(&mut material, prf_key)?,
        })
    }

    /// SKEYSEED and the keys of a new IKE SA after IKE_SA_INIT: [`skeyseed`] then [`IkeSaKeys::derive`].
    pub fn from_ike_sa_init(
        prf: &dyn PrfProvider,
        suite: &IkeSuite,
        g_ir: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: [u8; 8],
        spi_r: [u8; 8],
    ) -> Result<Self> {
        let seed = skeyseed(prf, suite.prf, ni, nr, g_ir)?;
        Self::derive(prf, suite, seed.expose(), ni, nr, spi_i, spi_r)
    }

    /// The keys after the n-th additional key exchange (IKE_INTERMEDIATE or IKE_FOLLOWUP_KE), RFC 9370
    /// §2.2.4:
    ///
    /// ```text
    /// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
    /// {SK_d(n) | SK_ai(n) | ... | SK_pr(n)} = prf+ (SKEYSEED(n), Ni | Nr | SPIi | SPIr)
    /// ```
    ///
    /// `self` holds the keys of step n-1; `sk_n` is the shared secret of the n-th exchange; Ni, Nr and
    /// the SPIs are those of IKE_SA_INIT, unchanged.
    #[allow(clippy::too_many_arguments)]
    pub fn additional_ke(
        &self,
        prf: &dyn PrfProvider,
        suite: &IkeSuite,
        sk_n: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: [u8; 8],
        spi_r: [u8; 8],
    ) -> Result<Self> {
        let seed = prf.prf(suite.prf, self.sk_d.expose(), &[sk_n, ni, nr])?;
        Self::derive(prf, suite, seed.expose(), ni, nr, spi_i, spi_r)
    }

    /// The keys of the IKE SA that replaces this one in a CREATE_CHILD_SA exchange (RFC 7296 §2.18):
    ///
    /// ```text
    /// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
    /// ```
    ///
    /// computed with `old_prf`, the PRF of this (old) IKE SA ("because the rekeying exchange belongs to
    /// the old IKE SA, it is the old IKE SA's PRF that is used to generate SKEYSEED"); the keys are then
    /// derived as in §2.14 with the new suite's PRF, the nonces of the CREATE_CHILD_SA exchange and the
    /// new SPIs. With additional key exchanges (RFC 9370 §2.2.4) `shared` is `SK(0), SK(1), ...` in the
    /// order of the exchanges and enters as `SK(0) | Ni | Nr | SK(1) | ... | SK(n)` (the additional
    /// secrets after the nonces, as strongSwan computes it too); otherwise it holds the one g^ir.
    #[allow(clippy::too_many_arguments)]
    pub fn rekey(
        &self,
        prf: &dyn PrfProvider,
        old_prf: PrfAlg,
        new_suite: &IkeSuite,
        shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        spi_i: [u8; 8],
        spi_r: [u8; 8],
    ) -> Result<Self> {
        rekey_keys(prf, (old_prf, &self.sk_d), new_suite, shared, (ni, nr), (spi_i, spi_r))
    }
}

/// [`IkeSaKeys::rekey`] from the old IKE SA's PRF and SK_d alone, which is all an established SA
/// keeps of its keys.
pub fn rekey_keys(
    prf: &dyn PrfProvider,
    (old_prf, old_sk_d): (PrfAlg, &Secret),
    new_suite: &IkeSuite,
    shared: &[&[u8]],
    (ni, nr): (&[u8], &[u8]),
    (spi_i, spi_r): ([u8; 8], [u8; 8]),
) -> Result<IkeSaKeys> {
    if shared.is_empty() {
        // §2.18: "implementations MUST perform a new Diffie-Hellman exchange when rekeying the IKE SA".
        return Err(CryptoError::Internal("IKE SA rekey without a key exchange"));
    }
    let seed = prf.prf(old_prf, old_sk_d.expose(), &mix(shared, ni, nr))?;
    IkeSaKeys::derive(prf, new_suite, seed.expose(), ni, nr, spi_i, spi_r)
}

/// The seed of a rekey's SKEYSEED or a CHILD SA's KEYMAT: `SK(0) | Ni | Nr | SK(1) | ... | SK(n)`
/// (RFC 9370 §2.2.4; `Ni | Nr` alone without a key exchange, `g^ir | Ni | Nr` with one, RFC 7296
/// §2.17, §2.18).
fn mix<'a>(shared: &[&'a [u8]], ni: &'a [u8], nr: &'a [u8]) -> Vec<&'a [u8]> {
    let (first, more) = shared.split_first().map_or((None, &[][..]), |(f, m)| (Some(*f), m));
    first.into_iter().chain([ni, nr]).chain(more.iter().copied()).collect()
}

/// The transforms of a Child SA (ESP) that shape its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildSuite {
    /// Encryption (for an AEAD, with its salt: RFC 4106 §8.1, RFC 7634 §2).
    pub encr: EncrAlg,
    /// Integrity: `None` with an AEAD, required otherwise.
    pub integ: Option<IntegAlg>,
}

/// The keys of an ESP Child SA pair (RFC 7296 §2.17). Encryption keys of AEADs include the salt;
/// integrity keys are empty for AEADs. `Debug` shows lengths only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaKeys {
    /// Encryption key (and salt) of the initiator-to-responder SA.
    pub encr_i: Secret,
    /// Integrity key of the initiator-to-responder SA.
    pub integ_i: Secret,
    /// Encryption key (and salt) of the responder-to-initiator SA.
    pub encr_r: Secret,
    /// Integrity key of the responder-to-initiator SA.
    pub integ_r: Secret,
}

impl ChildSaKeys {
    /// KEYMAT and its cut (RFC 7296 §2.17):
    ///
    /// ```text
    /// KEYMAT = prf+(SK_d, Ni | Nr)                              no key exchange
    /// KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)                 with PFS
    /// KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))  several exchanges (RFC 9370 §2.2.4)
    /// ```
    ///
    /// `shared` holds the shared secrets in that order (empty without PFS). Ni and Nr are the nonces of
    /// the CREATE_CHILD_SA exchange, or of IKE_SA_INIT for the Child SA created with IKE_AUTH. Keys of
    /// the initiator-to-responder SA come first; within an SA the encryption key (with salt) precedes
    /// the integrity key (§2.17, citing RFC 4301: "the encryption key (if any) MUST be
    /// taken from the first bits and the integrity key (if any) MUST be taken from the remaining bits").
    pub fn derive(
        prf: &dyn PrfProvider,
        prf_alg: PrfAlg,
        sk_d: &[u8],
        suite: &ChildSuite,
        shared: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
    ) -> Result<Self> {
        let integ = integ_key_len(suite.encr, suite.integ)?;
        let encr = suite.encr.keymat_len();
        let per_direction = encr.saturating_add(integ);
        let mut keymat = prf_plus(prf, prf_alg, sk_d, &mix(shared, ni, nr), per_direction.saturating_mul(2))?;
        Ok(Self {
            encr_i: take(&mut keymat, encr)?,
            integ_i: take(&mut keymat, integ)?,
            encr_r: take(&mut keymat, encr)?,
            integ_r: take(&mut keymat, integ)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::AwsMac;
    use oxswan_wire::{EncrId, IntegId, PrfId};

    fn sha256() -> PrfAlg {
        PrfAlg::new(PrfId::HMAC_SHA2_256).unwrap()
    }

    fn gcm256() -> EncrAlg {
        EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap()
    }

    fn cbc128_sha256() -> IkeSuite {
        IkeSuite {
            encr: EncrAlg::new(EncrId::AES_CBC, Some(128)).unwrap(),
            integ: Some(IntegAlg::new(IntegId::HMAC_SHA2_256_128).unwrap()),
            prf: sha256(),
        }
    }

    /// prf+ against its definition, with HMAC-SHA-256 (checked against RFC 4231 in `mac`) and the RFC
    /// 4231 test case 2 key "Jefe".
    #[test]
    fn prf_plus_structure() {
        let alg = sha256();
        let key = b"Jefe";
        let seed: &[u8] = b"what do ya want for nothing?";
        let out = prf_plus(&AwsMac, alg, key, &[&seed[..10], &seed[10..]], 80).unwrap();
        let t1 = AwsMac.prf(alg, key, &[seed, &[1]]).unwrap();
        let t2 = AwsMac.prf(alg, key, &[t1.expose(), seed, &[2]]).unwrap();
        let t3 = AwsMac.prf(alg, key, &[t2.expose(), seed, &[3]]).unwrap();
        assert_eq!(out.len(), 80);
        assert_eq!(&out.expose()[..32], t1.expose());
        assert_eq!(&out.expose()[32..64], t2.expose());
        assert_eq!(&out.expose()[64..], &t3.expose()[..16]);
        // A shorter request is a prefix.
        let short = prf_plus(&AwsMac, alg, key, &[seed], 5).unwrap();
        assert_eq!(short.expose(), &t1.expose()[..5]);
        assert!(prf_plus(&AwsMac, alg, key, &[seed], 0).unwrap().is_empty());
    }

    #[test]
    fn prf_plus_limit() {
        let alg = sha256();
        let max = prf_plus(&AwsMac, alg, b"k", &[b"s"], 255 * 32).unwrap();
        assert_eq!(max.len(), 255 * 32);
        // The last block is T255.
        let out = max.expose();
        let t254 = &out[253 * 32..254 * 32];
        let t255 = AwsMac.prf(alg, b"k", &[t254, b"s", &[255]]).unwrap();
        assert_eq!(&out[254 * 32..], t255.expose());
        assert_eq!(
            prf_plus(&AwsMac, alg, b"k", &[b"s"], 255 * 32 + 1),
            Err(CryptoError::InvalidKeyLength { expected: 255 * 32, got: 255 * 32 + 1 })
        );
    }

    #[test]
    fn skeyseed_is_prf_of_nonces() {
        let alg = sha256();
        let s = skeyseed(&AwsMac, alg, b"nonce-i", b"nonce-r", b"shared").unwrap();
        assert_eq!(s, AwsMac.prf(alg, b"nonce-inonce-r", &[b"shared"]).unwrap());
    }

    #[test]
    fn ike_lengths_and_order() {
        let ni = [1u8; 32];
        let nr = [2u8; 32];
        let (spi_i, spi_r) = ([3u8; 8], [4u8; 8]);
        // CBC + HMAC: every key has a length; the cut follows the order of §2.14.
        let suite = cbc128_sha256();
        let k = IkeSaKeys::derive(&AwsMac, &suite, b"seed", &ni, &nr, spi_i, spi_r).unwrap();
        let lens =
            [k.sk_d.len(), k.sk_ai.len(), k.sk_ar.len(), k.sk_ei.len(), k.sk_er.len(), k.sk_pi.len(), k.sk_pr.len()];
        assert_eq!(lens, [32, 32, 32, 16, 16, 32, 32]);
        let all = prf_plus(&AwsMac, sha256(), b"seed", &[&ni, &nr, &spi_i, &spi_r], 192).unwrap();
        let concat: Vec<u8> = [&k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr]
            .iter()
            .flat_map(|s| s.expose().to_vec())
            .collect();
        assert_eq!(concat, all.expose());

        // AES-GCM-256 with SHA-384: no SK_a*, SK_e* = 32 + 4 salt, SK_d/pi/pr 48.
        let suite = IkeSuite { encr: gcm256(), integ: None, prf: PrfAlg::new(PrfId::HMAC_SHA2_384).unwrap() };
        let k = IkeSaKeys::derive(&AwsMac, &suite, b"seed", &ni, &nr, spi_i, spi_r).unwrap();
        let lens =
            [k.sk_d.len(), k.sk_ai.len(), k.sk_ar.len(), k.sk_ei.len(), k.sk_er.len(), k.sk_pi.len(), k.sk_pr.len()];
        assert_eq!(lens, [48, 0, 0, 36, 36, 48, 48]);

        // ChaCha20-Poly1305 with SHA-512, SHA-1 with AES-192-CBC and HMAC-SHA-512-256.
        let suite = IkeSuite {
            encr: EncrAlg::new(EncrId::CHACHA20_POLY1305, None).unwrap(),
            integ: None,
            prf: PrfAlg::new(PrfId::HMAC_SHA2_512).unwrap(),
        };
        let k = IkeSaKeys::derive(&AwsMac, &suite, b"seed", &ni, &nr, spi_i, spi_r).unwrap();
        assert_eq!((k.sk_d.len(), k.sk_ei.len(), k.sk_pr.len()), (64, 36, 64));
        let suite = IkeSuite {
            encr: EncrAlg::new(EncrId::AES_CBC, Some(192)).unwrap(),
            integ: Some(IntegAlg::new(IntegId::HMAC_SHA2_512_256).unwrap()),
            prf: PrfAlg::new(PrfId::HMAC_SHA1).unwrap(),
        };
        let k = IkeSaKeys::derive(&AwsMac, &suite, b"seed", &ni, &nr, spi_i, spi_r).unwrap();
        assert_eq!((k.sk_d.len(), k.sk_ai.len(), k.sk_ei.len(), k.sk_pi.len()), (20, 64, 24, 20));

        // Inconsistent suites.
        let bad = IkeSuite { encr: gcm256(), integ: cbc128_sha256().integ, prf: sha256() };
        assert!(IkeSaKeys::derive(&AwsMac, &bad, b"seed", &ni, &nr, spi_i, spi_r).is_err());
        let bad = IkeSuite { integ: None, ..cbc128_sha256() };
        assert!(IkeSaKeys::derive(&AwsMac, &bad, b"seed", &ni, &nr, spi_i, spi_r).is_err());
    }

    #[test]
    fn ike_inputs_matter() {
        let suite = IkeSuite { encr: gcm256(), integ: None, prf: sha256() };
        let base = IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"gir", b"ni", b"nr", [1; 8], [2; 8]).unwrap();
        let variants = [
            IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"giR", b"ni", b"nr", [1; 8], [2; 8]).unwrap(),
            IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"gir", b"nI", b"nr", [1; 8], [2; 8]).unwrap(),
            IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"gir", b"ni", b"nR", [1; 8], [2; 8]).unwrap(),
            IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"gir", b"ni", b"nr", [9; 8], [2; 8]).unwrap(),
            IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"gir", b"ni", b"nr", [1; 8], [9; 8]).unwrap(),
            // Swapping the nonces changes both the PRF key and the prf+ seed.
            IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"gir", b"nr", b"ni", [1; 8], [2; 8]).unwrap(),
        ];
        for v in &variants {
            assert_ne!(v.sk_d, base.sk_d);
            assert_ne!(v.sk_ei, base.sk_ei);
            assert_ne!(v.sk_pr, base.sk_pr);
        }
        // All seven differ from each other.
        assert_ne!(base.sk_ei, base.sk_er);
        assert_ne!(base.sk_pi, base.sk_pr);
        assert_ne!(base.sk_d, base.sk_pi);
        // Debug never shows bytes.
        assert!(format!("{base:?}").contains("REDACTED"));
    }

    #[test]
    fn additional_ke_and_rekey_formulas() {
        let alg = sha256();
        let suite = IkeSuite { encr: gcm256(), integ: None, prf: alg };
        let k0 = IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, b"g0", b"ni", b"nr", [1; 8], [2; 8]).unwrap();
        // RFC 9370 §2.2.4: SKEYSEED(1) = prf(SK_d(0), SK(1) | Ni | Nr).
        let k1 = k0.additional_ke(&AwsMac, &suite, b"sk1", b"ni", b"nr", [1; 8], [2; 8]).unwrap();
        let seed1 = AwsMac.prf(alg, k0.sk_d.expose(), &[b"sk1ninr"]).unwrap();
        let expect = IkeSaKeys::derive(&AwsMac, &suite, seed1.expose(), b"ni", b"nr", [1; 8], [2; 8]).unwrap();
        assert_eq!(k1, expect);
        assert_ne!(k1.sk_d, k0.sk_d);

        // RFC 7296 §2.18 with the old PRF for SKEYSEED, the new suite for the keys.
        let new_suite = cbc128_sha256();
        let old_prf = PrfAlg::new(PrfId::HMAC_SHA2_512).unwrap();
        let r = k1.rekey(&AwsMac, old_prf, &new_suite, &[b"gnew"], b"Ni", b"Nr", [5; 8], [6; 8]).unwrap();
        let seed = AwsMac.prf(old_prf, k1.sk_d.expose(), &[b"gnewNiNr"]).unwrap();
        assert_eq!(seed.len(), 64);
        let expect = IkeSaKeys::derive(&AwsMac, &new_suite, seed.expose(), b"Ni", b"Nr", [5; 8], [6; 8]).unwrap();
        assert_eq!(r, expect);
        // RFC 9370 §2.2.4: SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1) | SK(2)).
        let r2 = k1.rekey(&AwsMac, alg, &suite, &[b"g0", b"g1", b"g2"], b"Ni", b"Nr", [5; 8], [6; 8]).unwrap();
        let seed = AwsMac.prf(alg, k1.sk_d.expose(), &[b"g0NiNrg1g2"]).unwrap();
        let expect = IkeSaKeys::derive(&AwsMac, &suite, seed.expose(), b"Ni", b"Nr", [5; 8], [6; 8]).unwrap();
        assert_eq!(r2, expect);
        assert!(k1.rekey(&AwsMac, alg, &suite, &[], b"Ni", b"Nr", [5; 8], [6; 8]).is_err());
    }

    #[test]
    fn child_keymat() {
        let alg = sha256();
        let sk_d = [7u8; 32];
        // AES-GCM-256: 36 octets per direction, initiator first.
        let suite = ChildSuite { encr: gcm256(), integ: None };
        let k = ChildSaKeys::derive(&AwsMac, alg, &sk_d, &suite, &[], b"ni", b"nr").unwrap();
        let keymat = prf_plus(&AwsMac, alg, &sk_d, &[b"ninr"], 72).unwrap();
        assert_eq!(k.encr_i.expose(), &keymat.expose()[..36]);
        assert_eq!(k.encr_r.expose(), &keymat.expose()[36..]);
        assert!(k.integ_i.is_empty() && k.integ_r.is_empty());

        // AES-CBC-128 + HMAC-SHA-256-128: encr_i | integ_i | encr_r | integ_r.
        let suite = ChildSuite { encr: cbc128_sha256().encr, integ: cbc128_sha256().integ };
        let k = ChildSaKeys::derive(&AwsMac, alg, &sk_d, &suite, &[b"gir"], b"ni", b"nr").unwrap();
        let keymat = prf_plus(&AwsMac, alg, &sk_d, &[b"girninr"], 96).unwrap();
        let m = keymat.expose();
        assert_eq!(k.encr_i.expose(), &m[..16]);
        assert_eq!(k.integ_i.expose(), &m[16..48]);
        assert_eq!(k.encr_r.expose(), &m[48..64]);
        assert_eq!(k.integ_r.expose(), &m[64..]);

        // PFS and additional key exchanges change the keys; the order of SK(i) matters.
        let none = ChildSaKeys::derive(&AwsMac, alg, &sk_d, &suite, &[], b"ni", b"nr").unwrap();
        let two = ChildSaKeys::derive(&AwsMac, alg, &sk_d, &suite, &[b"gir", b"sk1"], b"ni", b"nr").unwrap();
        let swapped = ChildSaKeys::derive(&AwsMac, alg, &sk_d, &suite, &[b"sk1", b"gir"], b"ni", b"nr").unwrap();
        assert_ne!(none.encr_i, k.encr_i);
        assert_ne!(two.encr_i, k.encr_i);
        assert_ne!(two.encr_i, swapped.encr_i);
        // RFC 9370 §2.2.4: KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
        let keymat = prf_plus(&AwsMac, alg, &sk_d, &[b"girninrsk1"], 96).unwrap();
        assert_eq!(two.encr_i.expose(), &keymat.expose()[..16]);
        let bad = ChildSuite { encr: gcm256(), integ: suite.integ };
        assert!(ChildSaKeys::derive(&AwsMac, alg, &sk_d, &bad, &[], b"ni", b"nr").is_err());
    }
}
