//! MODP Diffie-Hellman groups on crypto-bigint: 2048, 3072 and 4096 bits (groups 14, 15, 16, RFC 3526
//! §3–§5) and, for legacy peers only, 1024 bits (group 2, RFC 2409 §6.2). The generator is 2 for all.
//!
//! Private exponents are 512 random bits with the top bit set (so 511 bits of entropy, and 2^511 ≤ x <
//! 2^512 < q = (p−1)/2). RFC 3526 §1 asks for an exponent with twice the entropy of the group's
//! strength; its §8 estimates at most 240 bits for the 4096-bit group (exponent 480 bits), and NIST SP
//! 800-57 gives 112/128/≈150 bits for 2048/3072/4096, so 2·s ≤ 304. SP 800-56A §5.6.1.1.4 allows any
//! x in [1, min(2^N, q) − 1] with N ≥ 2·s. One exponent size for all groups keeps the code simple and
//! the exponentiation cost independent of x.
//!
//! Exponentiation is constant-time in the exponent (crypto-bigint `FixedMontyForm::pow`, a fixed window
//! over all 512 exponent bits). Private exponents and shared-secret intermediates are zeroized.

use aws_lc_rs::rand;
use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U512, U1024, U2048, U3072, U4096, Uint};
use zeroize::Zeroize;

use super::invalid;
use crate::error::{CryptoError, Result};
use crate::provider::KeyExchange;
use crate::secret::Secret;
use oxswan_wire::KeId;

/// RFC 2409 §6.2, the Second Oakley Group: 2^1024 − 2^960 − 1 + 2^64 · ([2^894 π] + 129093).
pub(super) const P1024: Odd<U1024> = Odd::<U1024>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381",
    "FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §3, group 14: 2^2048 − 2^1984 − 1 + 2^64 · ([2^1918 π] + 124476).
pub(super) const P2048: Odd<U2048> = Odd::<U2048>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §4, group 15: 2^3072 − 2^3008 − 1 + 2^64 · ([2^2942 π] + 1690314).
pub(super) const P3072: Odd<U3072> = Odd::<U3072>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64",
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B",
    "F12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31",
    "43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
));

/// RFC 3526 §5, group 16: 2^4096 − 2^4032 − 1 + 2^64 · ([2^3966 π] + 240904).
pub(super) const P4096: Odd<U4096> = Odd::<U4096>::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64",
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B",
    "F12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31",
    "43DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA",
    "2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6",
    "287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED",
    "1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199",
    "FFFFFFFFFFFFFFFF",
));

/// The generator of every MODP group (RFC 2409 §6.2, RFC 3526).
const GENERATOR: u64 = 2;

/// Octets of a private exponent (see the module documentation).
const EXPONENT_LEN: usize = 64;

/// A fresh private exponent: 512 random bits with the top bit set.
fn random_exponent() -> Result<U512> {
    let mut bytes = [0u8; EXPONENT_LEN];
    rand::fill(&mut bytes).map_err(|_| CryptoError::Internal("random"))?;
    if let Some(top) = bytes.first_mut() {
        *top |= 0x80;
    }
    let x = U512::from_be_slice(&bytes);
    bytes.zeroize();
    Ok(x)
}

/// Checks the peer's value (RFC 8247 §2.4, NIST SP 800-56A §5.6.2.3.1): exactly the modulus length,
/// left-padded with zeros (RFC 7296 §3.4, RFC 3526), and 1 < y < p − 1. That excludes 0, 1 and p − 1, the
/// elements of order 1 and 2; the other elements of these safe-prime groups have order q or 2q.
fn parse_peer<const L: usize>(group: KeId, p: &Odd<Uint<L>>, peer: &[u8]) -> Result<Uint<L>> {
    if peer.len() != Uint::<L>::BYTES {
        return Err(invalid(group, "wrong length"));
    }
    let y = Uint::<L>::from_be_slice(peer);
    let p_minus_1 = p.as_ref().wrapping_sub(&Uint::ONE);
    if y <= Uint::ONE {
        return Err(invalid(group, "y <= 1"));
    }
    if y >= p_minus_1 {
        return Err(invalid(group, "y >= p - 1"));
    }
    Ok(y)
}

/// A MODP key pair waiting for the peer's value.
struct ModpKe<const L: usize> {
    group: KeId,
    p: Odd<Uint<L>>,
    params: FixedMontyParams<L>,
    x: U512,
    public: Vec<u8>,
}

impl<const L: usize> Drop for ModpKe<L> {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl<const L: usize> core::fmt::Debug for ModpKe<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModpKe").field("group", &self.group).field("public_len", &self.public.len()).finish()
    }
}

impl<const L: usize> ModpKe<L> {
    fn generate(group: KeId, p: Odd<Uint<L>>) -> Result<Self> {
        let x = random_exponent()?;
        Ok(Self::with_exponent(group, p, x))
    }

    fn with_exponent(group: KeId, p: Odd<Uint<L>>, x: U512) -> Self {
        // The modulus is public, so the variable-time set-up of the Montgomery parameters is fine.
        let params = FixedMontyParams::new_vartime(p);
        let g = FixedMontyForm::new(&Uint::from_u64(GENERATOR), &params);
        // g^x mod p, written as a fixed-length big-endian integer (RFC 7296 §3.4: left-padded with zeros
        // to the length of the modulus).
        let y = g.pow(&x).retrieve();
        let public = y.to_be_bytes().as_ref().to_vec();
        Self { group, p, params, x, public }
    }

    /// y^x mod p, left-padded to the modulus length (RFC 7296 §2.14).
    fn agree(&self, y: &Uint<L>) -> Result<Secret> {
        let mut z_monty = FixedMontyForm::new(y, &self.params).pow(&self.x);
        let mut z = z_monty.retrieve();
        z_monty.zeroize();
        // SP 800-56A §5.7.1.1: abort if Z = 1. Not reachable after the range check (x < q), kept as a
        // guard against a wrong group or exponent.
        let is_one = z == Uint::ONE;
        let mut bytes = z.to_be_bytes();
        z.zeroize();
        let secret = Secret::from_slice(bytes.as_ref());
        bytes.zeroize();
        if is_one {
            return Err(CryptoError::Internal("MODP shared secret is 1"));
        }
        Ok(secret)
    }
}

impl<const L: usize> KeyExchange for ModpKe<L> {
    fn group(&self) -> KeId {
        self.group
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret> {
        let y = parse_peer(self.group, &self.p, peer)?;
        self.agree(&y)
    }
}

fn respond_in<const L: usize>(group: KeId, p: Odd<Uint<L>>, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
    // Validate before spending an exponentiation on our own key pair.
    let y = parse_peer(group, &p, peer)?;
    let mut ke = ModpKe::generate(group, p)?;
    let secret = ke.agree(&y)?;
    Ok((core::mem::take(&mut ke.public), secret))
}

/// A new key pair as the initiator.
pub(super) fn start(group: KeId) -> Result<Box<dyn KeyExchange>> {
    Ok(match group {
        KeId::MODP1024 => Box::new(ModpKe::generate(group, P1024)?),
        KeId::MODP2048 => Box::new(ModpKe::generate(group, P2048)?),
        KeId::MODP3072 => Box::new(ModpKe::generate(group, P3072)?),
        KeId::MODP4096 => Box::new(ModpKe::generate(group, P4096)?),
        other => return Err(CryptoError::UnsupportedKe(other)),
    })
}

/// The responder: validates the peer's value, then generates a key pair and computes g^ir.
pub(super) fn respond(group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
    match group {
        KeId::MODP1024 => respond_in(group, P1024, peer),
        KeId::MODP2048 => respond_in(group, P2048, peer),
        KeId::MODP3072 => respond_in(group, P3072, peer),
        KeId::MODP4096 => respond_in(group, P4096, peer),
        other => Err(CryptoError::UnsupportedKe(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fermat test: a^(n−1) ≡ 1 (mod n).
    fn fermat<const L: usize>(n: &Odd<Uint<L>>, base: u64) -> bool {
        let params = FixedMontyParams::new_vartime(*n);
        let e = n.as_ref().wrapping_sub(&Uint::ONE);
        FixedMontyForm::new(&Uint::from_u64(base), &params).pow_vartime(&e).retrieve() == Uint::ONE
    }

    /// Checks a typed-in prime by properties that a typo would break: its size, the top and bottom 64 bits
    /// all ones (RFC 2409 §6.2 / RFC 3526 construction), and p and q = (p−1)/2 both passing Fermat tests
    /// to bases 2 and 3 (p is a safe prime).
    fn check_prime<const L: usize>(p: &Odd<Uint<L>>, bits: u32) {
        assert_eq!(Uint::<L>::BITS, bits);
        assert_eq!(p.as_ref().bit_width(), bits);
        let bytes = p.as_ref().to_be_bytes();
        let bytes = bytes.as_ref();
        assert!(bytes[..8].iter().all(|&b| b == 0xff), "{bits}: top 64 bits");
        assert!(bytes[bytes.len() - 8..].iter().all(|&b| b == 0xff), "{bits}: bottom 64 bits");
        let q: Odd<Uint<L>> = Option::from(Odd::new(p.as_ref().shr_vartime(1))).unwrap();
        for base in [2, 3] {
            assert!(fermat(p, base), "{bits}: p, base {base}");
            assert!(fermat(&q, base), "{bits}: q, base {base}");
        }
        // The test can fail: 2^14 mod 15 = 4.
        let fifteen: Odd<Uint<L>> = Option::from(Odd::new(Uint::from_u64(15))).unwrap();
        assert!(!fermat(&fifteen, 2));
    }

    #[test]
    fn primes_are_right() {
        check_prime(&P1024, 1024);
        check_prime(&P2048, 2048);
        check_prime(&P3072, 3072);
        check_prime(&P4096, 4096);
    }

    #[test]
    fn exponent_has_top_bit() {
        let x = random_exponent().unwrap();
        assert_eq!(x.bit_width(), 512);
        assert_ne!(x, random_exponent().unwrap());
    }

    /// Two parties with known small exponents: (g^a)^b = (g^b)^a, the public value is g^a left-padded,
    /// and both derive the same modulus-length secret.
    #[test]
    fn round_trip_known_exponents() {
        let a = ModpKe::with_exponent(KeId::MODP2048, P2048, U512::from_u64(3));
        // g^3 = 8, left-padded to 256 octets.
        let mut eight = vec![0u8; 256];
        eight[255] = 8;
        assert_eq!(a.public, eight);
        let b = ModpKe::with_exponent(KeId::MODP2048, P2048, U512::from_u64(5));
        let mut thirty_two = vec![0u8; 256];
        thirty_two[255] = 32;
        assert_eq!(b.public, thirty_two);
        let ab = a.complete(&thirty_two).unwrap();
        let ba = b.complete(&eight).unwrap();
        assert_eq!(ab, ba);
        // 2^15 = 32768.
        let mut expected = vec![0u8; 256];
        expected[254] = 0x80;
        assert_eq!(ab.expose(), &expected[..]);
    }

    #[test]
    fn round_trip_random() {
        for (g, p) in [(KeId::MODP1024, 128), (KeId::MODP2048, 256), (KeId::MODP3072, 384), (KeId::MODP4096, 512)] {
            let a = start(g).unwrap();
            let (kr, s_r) = respond(g, a.public_value()).unwrap();
            assert_eq!(kr.len(), p);
            let s_i = a.complete(&kr).unwrap();
            assert_eq!(s_i.len(), p);
            assert_eq!(s_i, s_r);
        }
    }

    /// RFC 8247 §2.4 / SP 800-56A §5.6.2.3.1: 0, 1, p − 1, p, values ≥ p and wrong lengths are refused;
    /// 2 and p − 2 are accepted.
    #[test]
    fn peer_range() {
        let p = P2048.as_ref().to_be_bytes().as_ref().to_vec();
        let from = |v: Uint<{ U2048::LIMBS }>| v.to_be_bytes().as_ref().to_vec();
        let pm1 = from(P2048.as_ref().wrapping_sub(&Uint::ONE));
        let pm2 = from(P2048.as_ref().wrapping_sub(&Uint::from_u64(2)));
        let zero = vec![0u8; 256];
        let one = from(Uint::ONE);
        let two = from(Uint::from_u64(2));
        let all_ones = vec![0xffu8; 256];
        for bad in [&zero, &one, &pm1, &p, &all_ones] {
            assert!(matches!(
                respond(KeId::MODP2048, bad),
                Err(CryptoError::InvalidPublicValue { group: KeId::MODP2048, .. })
            ));
            let a = start(KeId::MODP2048).unwrap();
            assert!(matches!(a.complete(bad), Err(CryptoError::InvalidPublicValue { .. })));
        }
        // Not left-padded: 2 as one octet.
        assert!(matches!(respond(KeId::MODP2048, &[2]), Err(CryptoError::InvalidPublicValue { .. })));
        // A 3072-bit value for a 2048-bit group.
        assert!(matches!(respond(KeId::MODP2048, &[1; 384]), Err(CryptoError::InvalidPublicValue { .. })));
        for good in [&two, &pm2] {
            assert!(respond(KeId::MODP2048, good).is_ok());
        }
    }
}
