//! Encrypted messages with the NO-SECURITY null cipher of the test provider, so the fuzzer gets past
//! the integrity check and reaches the padding and inner-payload parsers behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxswan_crypto::alg::EncrAlg;
use oxswan_crypto::secret::Secret;
use oxswan_crypto::sk::{SkKeys, decrypt, unprotect};
use oxswan_crypto::test_provider::TestProvider;
use oxswan_wire::{EncrId, Message};

fuzz_target!(|data: &[u8]| {
    let provider = TestProvider::new(0).null_cipher().build();
    let Ok(encr) = EncrAlg::new(EncrId::AES_GCM_16, Some(128)) else { return };
    let Ok(keys) = SkKeys::new(encr, None, Secret::new(vec![0; 20]), Secret::default()) else { return };
    let Ok(msg) = Message::parse(data) else { return };
    if let Ok(d) = decrypt(&provider, &keys, &msg) {
        assert!(d.data.len() <= data.len());
    }
    let _ = unprotect(&provider, &keys, &msg);
});
