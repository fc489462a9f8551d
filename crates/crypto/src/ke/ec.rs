//! Curve25519 (RFC 8031) and the ECP groups 19, 20, 21 (RFC 5903) on `aws_lc_rs::agreement`.

use aws_lc_rs::agreement::{self, Algorithm, ParsedPublicKey, PrivateKey, UnparsedPublicKey};
use subtle::ConstantTimeEq;

use super::invalid;
use crate::error::{CryptoError, Result};
use crate::provider::KeyExchange;
use crate::secret::Secret;
use oxswan_wire::KeId;

/// SEC 1 §2.3.3 tag of an uncompressed point, which IKEv2 leaves out (RFC 5903 §7).
const SEC1_UNCOMPRESSED: u8 = 0x04;

/// One curve's parameters.
#[derive(Debug, Clone, Copy)]
struct Curve {
    alg: &'static Algorithm,
    /// Octets of one field element: 32 for X25519 (RFC 8031 §2), ⌈bits/8⌉ for the ECP groups (RFC 5903
    /// §7: 32, 48, 66).
    field_len: usize,
    /// Whether KE data is x‖y (ECP, RFC 5903 §7) rather than a single u-coordinate (RFC 8031 §2).
    weierstrass: bool,
}

impl Curve {
    fn of(group: KeId) -> Result<Self> {
        let (alg, field_len, weierstrass) = match group {
            KeId::CURVE25519 => (&agreement::X25519, 32, false),
            KeId::ECP256 => (&agreement::ECDH_P256, 32, true),
            KeId::ECP384 => (&agreement::ECDH_P384, 48, true),
            KeId::ECP521 => (&agreement::ECDH_P521, 66, true),
            other => return Err(CryptoError::UnsupportedKe(other)),
        };
        Ok(Self { alg, field_len, weierstrass })
    }

    /// Octets of KE data: x‖y for ECP, u for X25519.
    fn public_len(&self) -> usize {
        if self.weierstrass { self.field_len.saturating_mul(2) } else { self.field_len }
    }
}

/// An ECDH / X25519 key pair waiting for the peer's value.
struct EcKe {
    group: KeId,
    curve: Curve,
    /// aws-lc frees (and cleanses) the key when it is dropped.
    key: PrivateKey,
    public: Vec<u8>,
}

impl core::fmt::Debug for EcKe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EcKe").field("group", &self.group).field("public_len", &self.public.len()).finish()
    }
}

impl EcKe {
    fn generate(group: KeId) -> Result<Self> {
        let curve = Curve::of(group)?;
        let key = PrivateKey::generate(curve.alg).map_err(|_| CryptoError::Internal("EC key generation"))?;
        Self::from_key(group, curve, key)
    }

    /// Imports a private key given as a fixed-length big-endian scalar (ECP) or as the 32 raw octets of an
    /// X25519 scalar, for known-answer tests.
    #[cfg(test)]
    fn from_private(group: KeId, scalar: &[u8]) -> Result<Self> {
        let curve = Curve::of(group)?;
        let key =
            PrivateKey::from_private_key(curve.alg, scalar).map_err(|_| CryptoError::InvalidKey("scalar".into()))?;
        Self::from_key(group, curve, key)
    }

    fn from_key(group: KeId, curve: Curve, key: PrivateKey) -> Result<Self> {
        let pk = key.compute_public_key().map_err(|_| CryptoError::Internal("EC public key"))?;
        let encoded = pk.as_ref();
        let public = if curve.weierstrass {
            // RFC 5903 §7: the KE data is x‖y, each coordinate the field size, without the SEC 1 tag that
            // aws-lc puts first.
            match encoded.split_first() {
                Some((&SEC1_UNCOMPRESSED, xy)) => xy.to_vec(),
                _ => return Err(CryptoError::Internal("EC public key encoding")),
            }
        } else {
            encoded.to_vec()
        };
        if public.len() != curve.public_len() {
            return Err(CryptoError::Internal("EC public key length"));
        }
        Ok(Self { group, curve, key, public })
    }

    fn agree(&self, peer: ParsedPublicKey) -> Result<Secret> {
        // aws-lc gives the x coordinate of the common point for ECDH, which is the IKE shared secret
        // (RFC 5903 §7), and the X25519 function output for Curve25519 (RFC 8031 §2.2).
        let x25519 = !self.curve.weierstrass;
        let secret = agreement::agree(&self.key, peer, (), |z| Ok(Secret::from_slice(z))).map_err(|()| {
            if x25519 {
                // aws-lc refuses an all-zero X25519 output itself.
                invalid(self.group, "low-order point: all-zero shared secret")
            } else {
                CryptoError::Internal("ECDH")
            }
        })?;
        // RFC 8031 §2.3 / RFC 7748 §6.1: the recipient MUST check that the shared secret is not all zeros,
        // in constant time; a peer sending a low-order point would otherwise fix the secret.
        if x25519 && bool::from(secret.expose().ct_eq(&[0u8; 32])) {
            return Err(invalid(self.group, "low-order point: all-zero shared secret"));
        }
        if secret.len() != self.curve.field_len {
            return Err(CryptoError::Internal("ECDH shared secret length"));
        }
        Ok(secret)
    }
}

/// Validates the peer's KE data: its length, and that it is a point on the curve.
fn parse_peer(group: KeId, curve: Curve, peer: &[u8]) -> Result<ParsedPublicKey> {
    if peer.len() != curve.public_len() {
        return Err(invalid(group, "wrong length"));
    }
    let parsed = if curve.weierstrass {
        // RFC 5903 §7: x‖y; restore the SEC 1 tag for aws-lc, which then checks that both coordinates are
        // below the field prime and that the point is on the curve (SP 800-56A §5.6.2.3.4 partial public
        // key validation; the ECP groups have cofactor 1, so that is full validation, as RFC 8247 §2.4
        // asks).
        let mut sec1 = Vec::with_capacity(peer.len().saturating_add(1));
        sec1.push(SEC1_UNCOMPRESSED);
        sec1.extend_from_slice(peer);
        ParsedPublicKey::try_from(UnparsedPublicKey::new(curve.alg, &sec1))
    } else {
        // RFC 8031 §2 / RFC 7748 §5: every 32-octet string is a u-coordinate (the top bit is masked);
        // low-order points are caught by the all-zero check after the agreement.
        ParsedPublicKey::try_from(UnparsedPublicKey::new(curve.alg, peer))
    };
    parsed.map_err(|_| invalid(group, "not a point on the curve"))
}

impl KeyExchange for EcKe {
    fn group(&self) -> KeId {
        self.group
    }

    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret> {
        let parsed = parse_peer(self.group, self.curve, peer)?;
        self.agree(parsed)
    }
}

/// A new key pair as the initiator.
pub(super) fn start(group: KeId) -> Result<Box<dyn KeyExchange>> {
    Ok(Box::new(EcKe::generate(group)?))
}

/// The responder: validates the peer's value first, then generates a key pair and agrees.
pub(super) fn respond(group: KeId, peer: &[u8]) -> Result<(Vec<u8>, Secret)> {
    let curve = Curve::of(group)?;
    let parsed = parse_peer(group, curve, peer)?;
    let ke = EcKe::generate(group)?;
    let secret = ke.agree(parsed)?;
    Ok((ke.public, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /// X25519(k, u) through the agreement API: k imported as an X25519 private key.
    fn x25519(k: &[u8], u: &[u8]) -> Result<Secret> {
        let ke = EcKe::from_private(KeId::CURVE25519, k)?;
        ke.complete(u)
    }

    /// RFC 7748 §5.2, the two single-step test vectors (the second has the top bit of u set, which the
    /// function must mask, RFC 7748 §5).
    #[test]
    fn rfc7748_5_2_vectors() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (k, u, out) in cases {
            assert_eq!(hex::encode(x25519(&h(k), &h(u)).unwrap().expose()), out);
        }
    }

    /// RFC 7748 §5.2, the iterated test: k = u = 9, then repeatedly k, u = X25519(k, u), k; after 1 and
    /// 1000 iterations.
    #[test]
    fn rfc7748_5_2_iterated() {
        let mut k = h("0900000000000000000000000000000000000000000000000000000000000000");
        let mut u = k.clone();
        for i in 1..=1000 {
            let out = x25519(&k, &u).unwrap().expose().to_vec();
            u = core::mem::replace(&mut k, out);
            if i == 1 {
                assert_eq!(hex::encode(&k), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
            }
        }
        assert_eq!(hex::encode(&k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
    }

    /// RFC 7748 §6.1: Alice's and Bob's public values from their private keys, and the shared secret.
    #[test]
    fn rfc7748_6_1_alice_bob() {
        let alice = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let alice_pub = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let bob = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let bob_pub = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

        let a = EcKe::from_private(KeId::CURVE25519, &alice).unwrap();
        let b = EcKe::from_private(KeId::CURVE25519, &bob).unwrap();
        assert_eq!(hex::encode(a.public_value()), alice_pub);
        assert_eq!(hex::encode(b.public_value()), bob_pub);
        assert_eq!(hex::encode(a.complete(&h(bob_pub)).unwrap().expose()), k);
        assert_eq!(hex::encode(b.complete(&h(alice_pub)).unwrap().expose()), k);
    }

    /// RFC 8031 §2.3 / RFC 7748 §6.1: low-order points give an all-zero secret and are refused.
    #[test]
    fn x25519_low_order_points_rejected() {
        let mut one = [0u8; 32];
        one[0] = 1;
        // u = 0 and u = 1 have small order; so does p (which reduces to 0).
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        for u in [[0u8; 32], one, p] {
            let ke = start(KeId::CURVE25519).unwrap();
            match ke.complete(&u) {
                Err(CryptoError::InvalidPublicValue { group: KeId::CURVE25519, .. }) => {}
                other => panic!("{}: {other:?}", hex::encode(u)),
            }
            assert!(matches!(respond(KeId::CURVE25519, &u), Err(CryptoError::InvalidPublicValue { .. })));
        }
    }

    struct Rfc5903 {
        group: KeId,
        i: &'static str,
        gix: &'static str,
        giy: &'static str,
        r: &'static str,
        grx: &'static str,
        gry: &'static str,
        girx: &'static str,
    }

    /// RFC 5903 §8.1, §8.2, §8.3.
    const RFC5903: [Rfc5903; 3] = [
        Rfc5903 {
            group: KeId::ECP256,
            i: "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
            gix: "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
            giy: "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
            r: "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
            grx: "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
            gry: "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
            girx: "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
        },
        Rfc5903 {
            group: KeId::ECP384,
            i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
                E35B5380 41E649EE 3FAEF896 783AB194",
            gix: "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
                  DE3AC808 ACB4BDB4 C88732AE E95F41AA",
            giy: "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
                  EB9FCFF3 C2C947DA E69B4C63 4573A81C",
            r: "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
                E0308312 916B8ED2 960E4BD5 5A7448FC",
            grx: "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
                  0D1AC43A 0336DEF9 6FDA41D0 774A3571",
            gry: "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
                  F83FA401 42209DFF 5EAAD96D B9E6386C",
            girx: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
                   D6031355 69B9E9D0 9CF5D4A2 70F59746",
        },
        Rfc5903 {
            group: KeId::ECP521,
            i: "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0
                95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D
                4A52",
            gix: "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE
                  E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C
                  ED3E",
            giy: "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A
                  D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F
                  9582",
            r: "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E
                9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168
                5EB9",
            grx: "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21
                  9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9
                  460F",
            gry: "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87
                  220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F
                  C56A",
            girx: "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04
                   D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3
                   DDEA",
        },
    ];

    /// RFC 5903 §8: the private scalars give the published x‖y, and each side the shared x coordinate.
    #[test]
    fn rfc5903_vectors() {
        for v in &RFC5903 {
            let gi = [h(v.gix), h(v.giy)].concat();
            let gr = [h(v.grx), h(v.gry)].concat();
            let i = EcKe::from_private(v.group, &h(v.i)).unwrap();
            let r = EcKe::from_private(v.group, &h(v.r)).unwrap();
            assert_eq!(i.public_value(), &gi[..], "{:?} g^i", v.group);
            assert_eq!(r.public_value(), &gr[..], "{:?} g^r", v.group);
            assert_eq!(i.complete(&gr).unwrap().expose(), &h(v.girx)[..], "{:?} initiator", v.group);
            assert_eq!(r.complete(&gi).unwrap().expose(), &h(v.girx)[..], "{:?} responder", v.group);
        }
    }

    /// Points off the curve, with the 0x04 prefix, and with coordinates ≥ p are rejected as invalid public
    /// values.
    #[test]
    fn ecp_invalid_points_rejected() {
        for v in &RFC5903 {
            let g = v.group;
            let gr = [h(v.grx), h(v.gry)].concat();
            let mut off_curve = gr.clone();
            *off_curve.last_mut().unwrap() ^= 1;
            let mut with_tag = vec![SEC1_UNCOMPRESSED];
            with_tag.extend_from_slice(&gr);
            let all_ones = vec![0xff; gr.len()];
            for (what, bad) in [("off curve", &off_curve), ("0x04 prefix", &with_tag), ("x, y ≥ p", &all_ones)] {
                let i = EcKe::from_private(g, &h(v.i)).unwrap();
                match i.complete(bad) {
                    Err(CryptoError::InvalidPublicValue { group, .. }) => assert_eq!(group, g),
                    other => panic!("{g:?} {what}: {other:?}"),
                }
                assert!(matches!(respond(g, bad), Err(CryptoError::InvalidPublicValue { .. })), "{g:?} {what}");
            }
            // A point of another curve has the wrong length.
            let other = start(if g == KeId::ECP256 { KeId::ECP384 } else { KeId::ECP256 }).unwrap();
            assert!(matches!(respond(g, other.public_value()), Err(CryptoError::InvalidPublicValue { .. })));
        }
    }
}
