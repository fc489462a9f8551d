//! Cross-check of SK payload protection against a real strongSwan 5.9.8 exchange (AES-256-GCM-16): the
//! captured IKE_AUTH and INFORMATIONAL messages decrypt with the SK_e keys charon logged to exactly the
//! inner payloads charon logged, and sealing charon's plaintext with its IV reproduces its ciphertext.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use oxswan_crypto::alg::EncrAlg;
use oxswan_crypto::default_provider;
use oxswan_crypto::secret::Secret;
use oxswan_crypto::sk::{SkKeys, decrypt, unprotect};
use oxswan_wire::{EncrId, Message, parse_chain};
use std::collections::HashMap;

mod common;
use common::values;

const MESSAGES: [(&str, &[u8], &[u8]); 4] = [
    (
        "ike_auth_req",
        include_bytes!("../../wire/tests/data/charon-psk-ike_auth-req.bin"),
        include_bytes!("../../wire/tests/data/charon-psk-ike_auth-req.sk-plain.bin"),
    ),
    (
        "ike_auth_resp",
        include_bytes!("../../wire/tests/data/charon-psk-ike_auth-resp.bin"),
        include_bytes!("../../wire/tests/data/charon-psk-ike_auth-resp.sk-plain.bin"),
    ),
    (
        "informational_req",
        include_bytes!("../../wire/tests/data/charon-psk-informational-req.bin"),
        include_bytes!("../../wire/tests/data/charon-psk-informational-req.sk-plain.bin"),
    ),
    (
        "informational_resp",
        include_bytes!("../../wire/tests/data/charon-psk-informational-resp.bin"),
        include_bytes!("../../wire/tests/data/charon-psk-informational-resp.sk-plain.bin"),
    ),
];

fn gcm() -> EncrAlg {
    EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap()
}

fn keys_for(v: &HashMap<String, Vec<u8>>, msg: &Message<'_>) -> SkKeys {
    // The I flag says who sent the message; each direction has its own SK_e (RFC 7296 §2.14).
    let name = if msg.header().flags.initiator() { "sk_ei" } else { "sk_er" };
    SkKeys::new(gcm(), None, Secret::from_slice(&v[name]), Secret::new(Vec::new())).unwrap()
}

#[test]
fn charons_messages_decrypt_to_charons_plaintext() {
    let v = values();
    let provider = default_provider();
    for (name, bytes, plain) in MESSAGES {
        let msg = Message::parse(bytes).unwrap();
        let keys = keys_for(&v, &msg);
        let d = decrypt(&provider, &keys, &msg).unwrap();
        assert_eq!(d.data, plain, "{name}");
        assert_eq!(d.fragment, None);
        let payloads = unprotect(&provider, &keys, &msg).unwrap();
        assert_eq!(payloads, parse_chain(d.next_inner, plain, 0).unwrap(), "{name}");

        // The other direction's key must not open it.
        let name_other = if msg.header().flags.initiator() { "sk_er" } else { "sk_ei" };
        let wrong = SkKeys::new(gcm(), None, Secret::from_slice(&v[name_other]), Secret::new(Vec::new())).unwrap();
        assert!(decrypt(&provider, &wrong, &msg).is_err(), "{name} opened with the wrong key");
    }
}

#[test]
fn sealing_charons_plaintext_reproduces_its_ciphertext() {
    let v = values();
    let provider = default_provider();
    for (name, bytes, _) in MESSAGES {
        let msg = Message::parse(bytes).unwrap();
        let sk_e = &v[if msg.header().flags.initiator() { "sk_ei" } else { "sk_er" }];
        let (key, salt) = sk_e.split_at(32);
        let get = |f: &str| v[&format!("sk_{name}_{f}")].clone();
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(salt);
        nonce[4..].copy_from_slice(&get("iv"));
        // Plaintext ‖ padding ‖ Pad Length, as charon encrypted it.
        let mut data = get("plain");
        data.extend_from_slice(&get("padding"));
        let aead = provider.cipher.aead(gcm(), key).unwrap();
        let mut tag = [0u8; 16];
        aead.seal_in_place(&nonce, &get("aad"), &mut data, &mut tag).unwrap();
        assert_eq!(data, get("ciphertext"), "{name}");
        assert_eq!(tag.to_vec(), get("icv"), "{name}");
        // And the AAD charon used is the start of the captured message.
        assert_eq!(&bytes[..32], get("aad").as_slice(), "{name}");
    }
}
