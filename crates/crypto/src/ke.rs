//! Key exchange methods: ECP and Curve25519 on aws-lc-rs, MODP on crypto-bigint, ML-KEM on aws-lc-rs.
//!
//! - `ec`: Curve25519 (RFC 8031) and the ECP groups 19–21 (RFC 5903), through
//!   `aws_lc_rs::agreement`. KE data is the 32-octet u-coordinate, resp. x‖y without the SEC 1 `0x04`
//!   prefix; the shared secret is the X25519 output, resp. the x coordinate.
//! - `modp`: the MODP groups 14–16 (RFC 3526) and, only with [`DefaultKe::allow_modp1024`], group 2
//!   (RFC 2409 §6.2), with constant-time exponentiation from crypto-bigint.
//! - `mlkem`: ML-KEM-512/768/1024 (FIPS 203, draft-ietf-ipsecme-ikev2-mlkem, RFC 9370), through
//!   `aws_lc_rs::kem`: the initiator's KE data is the encapsulation key, the responder's the
//!   ciphertext.
//!
//! Every peer value is validated before it is used (RFC 7296 §2.12 / RFC 8247 §2.4: the Diffie-Hellman
//! checks of NIST SP 800-56A; RFC 5903 §7; RFC 8031 §2.3; FIPS 203 §7.2 and §7.3); a rejected value
//! gives [`CryptoError::InvalidPublicValue`].

mod ec;
mod mlkem;
mod modp;

use crate::alg::{SUPPORTED_KE, ke_is_kem};
use crate::error::{CryptoError, Result};
use crate::provider::{KeProvider, KeyExchange};
use crate::secret::Secret;
use oxswan_wire::KeId;

/// The production key exchange provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultKe {
    /// Accept MODP 1024 (group 2), for old Windows clients only.
    pub allow_modp1024: bool,
}

/// How a method is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Curve25519 and the ECP groups.
    Ec,
    /// Finite-field Diffie-Hellman.
    Modp,
    /// ML-KEM.
    Kem,
}

impl DefaultKe {
    /// The implementation family of `group`, or [`CryptoError::UnsupportedKe`] if this provider does not
    /// offer it (MODP 1024 without the opt-in, every other method outside [`SUPPORTED_KE`]).
    fn family(&self, group: KeId) -> Result<Family> {
        if !self.supports(group) {
            return Err(CryptoError::UnsupportedKe(group));
        }
        Ok(match group {
            KeId::MODP1024 | KeId::MODP2048 | KeId::MODP3072 | KeId::MODP4096 => Family::Modp,
            g if ke_is_kem(g) => Family::Kem,
            _ => Family::Ec,
        })
    }
}

impl KeProvider for DefaultKe {
    fn supports(&self, group: KeId) -> bool {
        // MODP 1024 offers about 80 bits of security; RFC 8247 §2.4 says it SHOULD NOT be used, so it is
        // only accepted with an explicit opt-in.
        SUPPORTED_KE.contains(&group) || (group == KeId::MODP1024 && self.allow_modp1024)
    }

    fn start(&self, group: KeId) -> Result<Box<dyn KeyExchange>> {
        match self.family(group)? {
            Family::Ec => ec::start(group),
            Family::Modp => modp::start(group),
            Family::Kem => mlkem::start(group),
        }
    }

    fn respond(&self, group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
        match self.family(group)? {
            Family::Ec => ec::respond(group, peer),
            Family::Modp => modp::respond(group, peer),
            Family::Kem => mlkem::respond(group, peer),
        }
    }
}

/// The error for a rejected peer value.
fn invalid(group: KeId, reason: &'static str) -> CryptoError {
    CryptoError::InvalidPublicValue { group, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method, the legacy one included.
    fn all() -> Vec<KeId> {
        crate::alg::SUPPORTED_KE.iter().copied().chain([KeId::MODP1024]).collect()
    }

    fn legacy() -> DefaultKe {
        DefaultKe { allow_modp1024: true }
    }

    #[test]
    fn supports_and_opt_in() {
        let ke = DefaultKe::default();
        for g in SUPPORTED_KE {
            assert!(ke.supports(*g), "{g:?}");
        }
        assert!(!ke.supports(KeId::MODP1024));
        assert_eq!(ke.start(KeId::MODP1024).err(), Some(CryptoError::UnsupportedKe(KeId::MODP1024)));
        assert_eq!(ke.respond(KeId::MODP1024, &[0; 128]).err(), Some(CryptoError::UnsupportedKe(KeId::MODP1024)));
        assert!(legacy().supports(KeId::MODP1024));
        for g in [KeId::NONE, KeId::MODP768, KeId::MODP1536, KeId::MODP8192, KeId::ECP192, KeId::CURVE448] {
            assert!(!legacy().supports(g), "{g:?}");
            assert_eq!(legacy().start(g).err(), Some(CryptoError::UnsupportedKe(g)));
            assert_eq!(legacy().respond(g, &[1; 32]).err(), Some(CryptoError::UnsupportedKe(g)));
        }
        // The providers the daemon builds: MODP 1024 only when asked for.
        assert!(!crate::default_provider().ke.supports(KeId::MODP1024));
        assert!(!crate::default_provider_with(false).ke.supports(KeId::MODP1024));
        assert!(crate::default_provider_with(true).ke.supports(KeId::MODP1024));
        assert!(crate::default_provider_with(true).ke.start(KeId::MODP1024).is_ok());
    }

    /// start / respond / complete agree for every method, and public values have the wire sizes.
    #[test]
    fn round_trip_every_group() {
        let sizes = [
            (KeId::MODP1024, 128, 128, 128),
            (KeId::MODP2048, 256, 256, 256),
            (KeId::MODP3072, 384, 384, 384),
            (KeId::MODP4096, 512, 512, 512),
            (KeId::ECP256, 64, 64, 32),
            (KeId::ECP384, 96, 96, 48),
            (KeId::ECP521, 132, 132, 66),
            (KeId::CURVE25519, 32, 32, 32),
            (KeId::ML_KEM_512, 800, 768, 32),
            (KeId::ML_KEM_768, 1184, 1088, 32),
            (KeId::ML_KEM_1024, 1568, 1568, 32),
        ];
        assert_eq!(sizes.len(), all().len());
        let ke = legacy();
        for (g, i_len, r_len, s_len) in sizes {
            let initiator = ke.start(g).unwrap();
            assert_eq!(initiator.group(), g);
            assert_eq!(initiator.public_value().len(), i_len, "{g:?} KEi");
            let (ker, responder_secret) = ke.respond(g, initiator.public_value()).unwrap();
            assert_eq!(ker.len(), r_len, "{g:?} KEr");
            let initiator_secret = initiator.complete(&ker).unwrap();
            assert_eq!(initiator_secret.len(), s_len, "{g:?} secret");
            assert_eq!(initiator_secret, responder_secret, "{g:?}");
            // A second exchange gives a different secret.
            let other = ke.start(g).unwrap();
            let (_, other_secret) = ke.respond(g, other.public_value()).unwrap();
            assert_ne!(other_secret, responder_secret, "{g:?}");
            // Debug output never holds key material.
            let dbg = format!("{other:?}");
            assert!(dbg.len() < 200, "{g:?}: {dbg}");
        }
    }

    /// Peer values of a wrong length or out of range are rejected by `respond` and `complete`.
    #[test]
    fn invalid_peer_values_every_group() {
        let ke = legacy();
        let reject = |g: KeId, what: &str, r: Result<Secret>| match r {
            Err(CryptoError::InvalidPublicValue { group, .. }) => assert_eq!(group, g),
            other => panic!("{g:?} {what}: {other:?}"),
        };
        for g in all() {
            let good = ke.start(g).unwrap();
            let i_len = good.public_value().len();
            let r_len = ke.respond(g, good.public_value()).unwrap().0.len();
            let bad = |n: usize| {
                let mut v: Vec<Vec<u8>> = vec![vec![], vec![0; n - 1], vec![0; n + 1]];
                if !ke_is_kem(g) {
                    // All zeros: y = 0 (MODP), not a point (ECP), a low-order point (X25519).
                    v.push(vec![0; n]);
                }
                v
            };
            for b in bad(i_len) {
                reject(g, &format!("respond({} octets)", b.len()), ke.respond(g, &b).map(|(_, s)| s));
            }
            for b in bad(r_len) {
                let initiator = ke.start(g).unwrap();
                reject(g, &format!("complete({} octets)", b.len()), initiator.complete(&b));
            }
        }
    }
}
