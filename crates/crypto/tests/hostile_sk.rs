//! Hostile input behind the encryption: with the test provider's NO-SECURITY null cipher every forged
//! ICV verifies, so arbitrary plaintexts reach the padding and inner-payload parsers — which must fail
//! cleanly, never panic.
#![cfg(feature = "test-provider")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use oxswan_crypto::alg::EncrAlg;
use oxswan_crypto::secret::Secret;
use oxswan_crypto::sk::{SkKeys, decrypt, unprotect};
use oxswan_crypto::test_provider::TestProvider;
use oxswan_wire::{EncrId, ExchangeType, Flags, Header, IkeSpi, Message, PayloadType};
use proptest::prelude::*;

/// An IKE header, an SK generic header naming `first`, an 8-octet IV, `plain` and a zero ICV.
fn forged(first: u8, plain: &[u8]) -> Vec<u8> {
    let sk_len = 4 + 8 + plain.len() + 16;
    let header = Header {
        next_payload: PayloadType::SK,
        length: u32::try_from(28 + sk_len).unwrap(),
        ..Header::new(IkeSpi([1; 8]), IkeSpi([2; 8]), ExchangeType::IKE_AUTH, Flags::INITIATOR, 1)
    };
    let mut out = Vec::new();
    header.emit(&mut out);
    out.extend_from_slice(&[first, 0]);
    out.extend_from_slice(&u16::try_from(sk_len).unwrap().to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(plain);
    out.extend_from_slice(&[0; 16]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn forged_plaintexts_never_panic(first in prop_oneof![Just(35u8), Just(41), Just(46), any::<u8>()], plain in prop::collection::vec(any::<u8>(), 0..300)) {
        let provider = TestProvider::new(0).null_cipher().build();
        let encr = EncrAlg::new(EncrId::AES_GCM_16, Some(128)).unwrap();
        let keys = SkKeys::new(encr, None, Secret::new(vec![0; 20]), Secret::default()).unwrap();
        let bytes = forged(first, &plain);
        let msg = Message::parse(&bytes).unwrap();
        // The ICV "verifies", so decryption reaches the Pad Length check.
        match decrypt(&provider, &keys, &msg) {
            Ok(d) => prop_assert!(d.data.len() < plain.len()),
            Err(_) => prop_assert!(plain.is_empty() || usize::from(*plain.last().unwrap()) >= plain.len()),
        }
        let _ = unprotect(&provider, &keys, &msg);
    }
}
