//! Post-quantum Preshared Keys (RFC 8784): USE_PPK both ways in IKE_SA_INIT, PPK_IDENTITY and
//! NO_PPK_AUTH in IKE_AUTH, SK_d and SK_pi/SK_pr mixed with the PPK; the fallback to NO_PPK_AUTH
//! when the responder lacks the PPK, and the failures when one side requires it or the PPKs differ.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oxswan_crypto::Secret;
use oxswan_ike::auth::SharedKeys;
use oxswan_ike::{DownReason, PeerConfig};
use oxswan_wire::{ExchangeType, NotifyType};

fn with_ppk(mut p: PeerConfig, id: Option<&str>, required: bool) -> PeerConfig {
    p.ppk_id = id.map(|i| i.as_bytes().to_vec());
    p.ppk_required = required;
    p
}

fn ppks(sim: &mut Sim, ip: &str, keys: &[(&str, &str)]) {
    let mut k = SharedKeys::new();
    for (id, secret) in keys {
        k.add_ppk(id.as_bytes(), Secret::from_slice(secret.as_bytes()));
    }
    sim.ep(ip).set_credentials(Arc::new(k));
}

fn notified(m: &Named, ty: &str) -> bool {
    m.3.contains(&format!("N({ty})"))
}

/// Alice initiates to Bob, each with these PPKs; the same seed makes the same nonces and shares.
fn run(seed: u64, alice: PeerConfig, bob: PeerConfig, alice_ppks: &[(&str, &str)], bob_ppks: &[(&str, &str)]) -> Sim {
    let mut sim = null_cipher_pair(seed, Link::default(), alice, bob);
    ppks(&mut sim, ALICE_IP, alice_ppks);
    ppks(&mut sim, BOB_IP, bob_ppks);
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(5), |s| both_up(s) || down(s.events(ALICE_IP)).is_some());
    sim
}

const PQ: (&str, &str) = ("pqk", "a post-quantum preshared key of some length");

#[test]
fn both_sides_with_the_ppk_mix_it_into_the_keys() {
    let mut sim = run(1, with_ppk(alice_psk(), Some("pqk"), false), with_ppk(bob_psk(), None, false), &[PQ], &[PQ]);
    assert!(both_up(&sim), "{:#?}", named_messages(&sim, 0));
    let m = named_messages(&sim, 0);
    assert!(notified(&m[0], "USE_PPK") && notified(&m[1], "USE_PPK"), "{m:#?}");
    assert_eq!(m[2].1, ExchangeType::IKE_AUTH);
    assert!(notified(&m[2], "PPK_IDENTITY") && notified(&m[2], "NO_PPK_AUTH"), "{:?}", m[2]);
    assert!(notified(&m[3], "PPK_IDENTITY"), "the responder used it: {:?}", m[3]);
    let (a, b) = (child(sim.events(ALICE_IP)).unwrap(), child(sim.events(BOB_IP)).unwrap());
    assert_eq!(a.encr_out.expose(), b.encr_in.expose());
    // The same exchange without PPKs: other CHILD SA keys, as SK_d' = prf+(PPK, SK_d).
    let plain = run(1, alice_psk(), bob_psk(), &[], &[]);
    let p = child(plain.events(ALICE_IP)).unwrap();
    assert_ne!(p.encr_out.expose(), a.encr_out.expose());
    for ip in [ALICE_IP, BOB_IP] {
        assert!(info(&mut sim, ip).ppk, "{ip} reports the PPK");
    }
}

/// Bob has a PPK (so he answers USE_PPK), but not the one Alice names: he checks her NO_PPK_AUTH.
const OTHER: (&str, &str) = ("another", "a PPK for somebody else");

#[test]
fn a_responder_without_the_ppk_checks_no_ppk_auth() {
    let mut sim = run(2, with_ppk(alice_psk(), Some("pqk"), false), with_ppk(bob_psk(), None, false), &[PQ], &[OTHER]);
    assert!(both_up(&sim), "{:#?}", named_messages(&sim, 0));
    let m = named_messages(&sim, 0);
    assert!(notified(&m[1], "USE_PPK"), "{:?}", m[1]);
    assert!(notified(&m[2], "PPK_IDENTITY") && notified(&m[2], "NO_PPK_AUTH"), "{:?}", m[2]);
    assert!(!notified(&m[3], "PPK_IDENTITY"), "no PPK used: {:?}", m[3]);
    assert!(!info(&mut sim, ALICE_IP).ppk);
    // Keys as without a PPK.
    let plain = run(2, alice_psk(), with_ppk(bob_psk(), None, false), &[], &[]);
    assert_eq!(
        child(plain.events(ALICE_IP)).unwrap().encr_out.expose(),
        child(sim.events(ALICE_IP)).unwrap().encr_out.expose()
    );
}

#[test]
fn an_initiator_that_requires_the_ppk_fails_with_a_responder_without_it() {
    let sim = run(3, with_ppk(alice_psk(), Some("pqk"), true), with_ppk(bob_psk(), None, false), &[PQ], &[OTHER]);
    let m = named_messages(&sim, 0);
    assert!(!notified(&m[2], "NO_PPK_AUTH"), "required: no way around it: {:?}", m[2]);
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED)));
    assert!(!up(sim.events(BOB_IP)));
}

#[test]
fn a_responder_that_requires_a_ppk_refuses_an_initiator_without_one() {
    let sim = run(4, alice_psk(), with_ppk(bob_psk(), None, true), &[], &[PQ]);
    let m = named_messages(&sim, 0);
    assert!(!notified(&m[1], "USE_PPK"), "only in answer to the initiator's: {:?}", m[1]);
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED)));
}

#[test]
fn different_ppks_fail_cleanly() {
    let other = ("pqk", "not the same key at all, but the same ID");
    let sim = run(5, with_ppk(alice_psk(), Some("pqk"), false), with_ppk(bob_psk(), None, false), &[PQ], &[other]);
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED)));
    assert!(!up(sim.events(BOB_IP)));
    assert!(
        has_event(sim.events(BOB_IP), |e| matches!(e, oxswan_ike::Event::AuthFailed { .. })),
        "{:?}",
        sim.events(BOB_IP)
    );
}

/// A required PPK the responder does not support at all (no PPK, no USE_PPK): the initiator fails
/// before IKE_AUTH, saying why.
#[test]
fn a_required_ppk_with_a_responder_without_ppks_fails_locally() {
    let sim = run(7, with_ppk(alice_psk(), Some("pqk"), true), bob_psk(), &[PQ], &[]);
    match down(sim.events(ALICE_IP)) {
        Some(DownReason::Protocol(why)) => assert!(why.contains("USE_PPK"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(named_messages(&sim, 0).iter().all(|m| m.1 == ExchangeType::IKE_SA_INIT));
}

/// An initiator whose connection requires a PPK it does not have fails before IKE_AUTH with a
/// reason naming it.
#[test]
fn a_required_ppk_that_is_missing_fails_locally() {
    let sim = run(6, with_ppk(alice_psk(), Some("pqk"), true), with_ppk(bob_psk(), None, false), &[], &[PQ]);
    match down(sim.events(ALICE_IP)) {
        Some(DownReason::Protocol(why)) => assert!(why.contains("PPK") && why.contains("pqk"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(named_messages(&sim, 0).iter().all(|m| m.1 == ExchangeType::IKE_SA_INIT));
}
