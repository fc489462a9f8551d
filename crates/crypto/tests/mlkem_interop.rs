//! ML-KEM cross-implementation check: our key exchange (aws-lc) against RustCrypto's independent `ml-kem`
//! implementation of FIPS 203, in both roles, for every parameter set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use ml_kem::kem::{Decapsulate, Encapsulate, KeyExport};
use ml_kem::{Ciphertext, Key, Seed};
use oxswan_crypto::default_provider;
use oxswan_wire::KeId;

/// Both roles against RustCrypto for one parameter set.
macro_rules! check {
    ($group:expr, $kem:ty, $dk:ty, $ek:ty, $seed:expr) => {{
        let ke = default_provider().ke;

        // The peer (RustCrypto) initiates with a deterministic key from a FIPS 203 seed (d ‖ z); we respond
        // by encapsulating to its encapsulation key.
        let dk = <$dk>::from_seed(Seed::from([$seed; 64]));
        let ek = dk.encapsulation_key().to_bytes();
        let (ct, our_secret) = ke.respond($group, ek.as_slice()).unwrap();
        let ct = Ciphertext::<$kem>::try_from(ct.as_slice()).unwrap();
        let their_secret = dk.decapsulate(&ct);
        assert_eq!(our_secret.expose(), their_secret.as_slice(), "we encapsulate, they decapsulate");

        // We initiate; the peer encapsulates to our key and we decapsulate.
        let ours = ke.start($group).unwrap();
        let ek = <$ek>::new(&Key::<$ek>::try_from(ours.public_value()).unwrap()).unwrap();
        let (ct, their_secret) = ek.encapsulate();
        let our_secret = ours.complete(ct.as_slice()).unwrap();
        assert_eq!(our_secret.expose(), their_secret.as_slice(), "they encapsulate, we decapsulate");

        // A ciphertext for another key decapsulates to an unrelated secret (implicit rejection), not an error.
        let other = <$dk>::from_seed(Seed::from([$seed ^ 0xff; 64]));
        let (ct, their_secret) = other.encapsulation_key().encapsulate();
        let ours = ke.start($group).unwrap();
        assert_ne!(ours.complete(ct.as_slice()).unwrap().expose(), their_secret.as_slice());
    }};
}

#[test]
fn ml_kem_512_interoperates_with_rustcrypto() {
    check!(KeId::ML_KEM_512, ml_kem::MlKem512, ml_kem::DecapsulationKey512, ml_kem::EncapsulationKey512, 1);
}

#[test]
fn ml_kem_768_interoperates_with_rustcrypto() {
    check!(KeId::ML_KEM_768, ml_kem::MlKem768, ml_kem::DecapsulationKey768, ml_kem::EncapsulationKey768, 2);
}

#[test]
fn ml_kem_1024_interoperates_with_rustcrypto() {
    check!(KeId::ML_KEM_1024, ml_kem::MlKem1024, ml_kem::DecapsulationKey1024, ml_kem::EncapsulationKey1024, 3);
}
