#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Cross-check of key derivation and PSK AUTH against a real strongSwan 5.9.8 charon-to-charon IKEv2
//! exchange (aes256gcm16-prfsha256-x25519, PSK, ESP aes256gcm16): the key material charon logged with
//! `ike = 4` (tests/data/charon-psk-x25519-aes256gcm.txt, captured by scripts/capture-charon.sh).

use std::collections::HashMap;

use oxswan_crypto::alg::{EncrAlg, PrfAlg};
use oxswan_crypto::auth::{KEY_PAD, psk_auth, signed_octets, verify_psk};
use oxswan_crypto::keys::{ChildSaKeys, ChildSuite, IkeSaKeys, IkeSuite, skeyseed};
use oxswan_crypto::mac::AwsMac;
use oxswan_crypto::provider::PrfProvider;
use oxswan_wire::{EncrId, PrfId};

mod common;
use common::{get, values};

fn spi(v: &HashMap<String, Vec<u8>>, name: &str) -> [u8; 8] {
    get(v, name).try_into().unwrap()
}

fn suite() -> IkeSuite {
    IkeSuite {
        encr: EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap(),
        integ: None,
        prf: PrfAlg::new(PrfId::HMAC_SHA2_256).unwrap(),
    }
}

#[test]
fn skeyseed_and_sk_keys_match_charon() {
    let v = values();
    let suite = suite();
    let (ni, nr) = (get(&v, "ni"), get(&v, "nr"));
    let seed = skeyseed(&AwsMac, suite.prf, ni, nr, get(&v, "g_ir")).unwrap();
    assert_eq!(hex::encode(seed.expose()), hex::encode(get(&v, "skeyseed")));

    let keys = IkeSaKeys::derive(&AwsMac, &suite, seed.expose(), ni, nr, spi(&v, "spi_i"), spi(&v, "spi_r")).unwrap();
    assert_eq!(keys.sk_d.expose(), get(&v, "sk_d"));
    assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
    assert_eq!(keys.sk_ei.expose(), get(&v, "sk_ei"));
    assert_eq!(keys.sk_er.expose(), get(&v, "sk_er"));
    assert_eq!(keys.sk_pi.expose(), get(&v, "sk_pi"));
    assert_eq!(keys.sk_pr.expose(), get(&v, "sk_pr"));

    let again =
        IkeSaKeys::from_ike_sa_init(&AwsMac, &suite, get(&v, "g_ir"), ni, nr, spi(&v, "spi_i"), spi(&v, "spi_r"))
            .unwrap();
    assert_eq!(again, keys);
}

#[test]
fn child_keymat_matches_charon() {
    let v = values();
    let suite = suite();
    let (ni, nr) = (get(&v, "ni"), get(&v, "nr"));
    // The first Child SA uses the IKE_SA_INIT nonces and no key exchange (RFC 7296 §2.17).
    let mut seed = ni.to_vec();
    seed.extend_from_slice(nr);
    assert_eq!(seed, get(&v, "child_seed"));
    let child = ChildSuite { encr: suite.encr, integ: None };
    let keys = ChildSaKeys::derive(&AwsMac, suite.prf, get(&v, "sk_d"), &child, &[], ni, nr).unwrap();
    assert_eq!(keys.encr_i.expose(), get(&v, "child_encr_i"));
    assert_eq!(keys.encr_r.expose(), get(&v, "child_encr_r"));
    assert!(keys.integ_i.is_empty() && keys.integ_r.is_empty());
}

#[test]
fn psk_auth_matches_charon() {
    let v = values();
    let prf = suite().prf;
    let psk = get(&v, "psk");
    let (ni, nr) = (get(&v, "ni"), get(&v, "nr"));
    // prf(Shared Secret, "Key Pad for IKEv2"), the key of the PSK AUTH computation (RFC 7296 §2.15).
    let pad_key = AwsMac.prf(prf, psk, &[KEY_PAD]).unwrap();
    assert_eq!(pad_key.expose(), get(&v, "auth_i_psk_key"));
    assert_eq!(pad_key.expose(), get(&v, "auth_r_psk_key"));
    for (who, sk_p, peer_nonce) in [("i", "sk_pi", nr), ("r", "sk_pr", ni)] {
        let octets_logged = get(&v, &format!("auth_{who}_octets"));
        // The logged octets are our IKE_SA_INIT message | the peer's nonce | prf(SK_p, IDx'), RFC 7296
        // §2.15; rebuild them from the message part.
        let message_len = octets_logged.len() - peer_nonce.len() - prf.output_len();
        let message = &octets_logged[..message_len];
        assert_eq!(&octets_logged[message_len..message_len + peer_nonce.len()], peer_nonce);
        let octets =
            signed_octets(message, peer_nonce, &AwsMac, prf, get(&v, sk_p), get(&v, &format!("auth_{who}_idx")))
                .unwrap();
        assert_eq!(hex::encode(&octets), hex::encode(octets_logged), "{who}");

        let auth = psk_auth(&AwsMac, prf, psk, &octets).unwrap();
        assert_eq!(hex::encode(auth.expose()), hex::encode(get(&v, &format!("auth_{who}"))), "{who}");
        verify_psk(&AwsMac, prf, psk, &octets, get(&v, &format!("auth_{who}"))).unwrap();
        assert!(verify_psk(&AwsMac, prf, b"wrong", &octets, get(&v, &format!("auth_{who}"))).is_err());
    }
}
