//! CHILD SAs with additional key exchanges (RFC 9370 §2.2.4): an ESP proposal with `keN_` makes its
//! first key exchange in CREATE_CHILD_SA and each ADDKE in an IKE_FOLLOWUP_KE exchange after it,
//! for new and for rekeyed pairs, from either side; the pair is made after the last, with KEYMAT
//! from all the secrets. The CHILD SA of IKE_AUTH has no key exchange, additional ones included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_crypto::proposal::parse_esp_proposals;
use oxswan_ike::{ChildSa, Childless, PeerConfig};
use oxswan_wire::ExchangeType;

const ESP: &str = "aes256gcm16-x25519-ke1_mlkem768-ke2_ecp384";

fn pq_esp(mut p: PeerConfig) -> PeerConfig {
    for c in &mut p.children {
        c.esp_proposals = parse_esp_proposals(ESP).unwrap();
    }
    p
}

fn halves(a: &ChildSa, b: &ChildSa) -> bool {
    a.spi_in == b.spi_out && a.spi_out == b.spi_in && a.encr_in == b.encr_out && a.encr_out == b.encr_in
}

/// The one pair each side holds, with its keys.
fn pair_of(sim: &mut Sim) -> (ChildSa, ChildSa) {
    let (a, b) = (sim.ep(ALICE_IP).established()[0], sim.ep(BOB_IP).established()[0]);
    let (a, b) = (sim.installed(ALICE_IP, a), sim.installed(BOB_IP, b));
    assert_eq!((a.len(), b.len()), (1, 1));
    (a[0].clone(), b[0].clone())
}

/// Messages, not datagrams (ML-KEM's key share may go in IKE fragments), with who sent them.
fn exchanges_since(sim: &Sim, from: usize, alice_first: bool) -> Vec<(bool, ExchangeType, bool)> {
    let mut v: Vec<_> = sim.log[from..]
        .iter()
        .map(|(src, _, d)| {
            let (e, r, id) = describe(d);
            ((src.ip().to_string() == ALICE_IP) == alice_first, e, r, id)
        })
        .collect();
    v.dedup();
    v.into_iter().map(|(a, e, r, _)| (a, e, r)).collect()
}

const CCS: ExchangeType = ExchangeType::CREATE_CHILD_SA;
const FU: ExchangeType = ExchangeType::IKE_FOLLOWUP_KE;

/// A childless IKE SA (RFC 6023), so that the one CHILD SA comes by CREATE_CHILD_SA with its key
/// exchanges; real cryptography, so the pair works only if both sides mixed every secret alike.
#[test]
fn a_new_child_makes_its_additional_key_exchanges_in_ike_followup_ke() {
    let mut alice = pq_esp(alice_psk());
    alice.childless = Childless::Force;
    let mut sim = pair(1, Link::default(), alice, pq_esp(bob_psk()));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), |s| child(s.events(ALICE_IP)).is_some()
        && child(s.events(BOB_IP)).is_some()));
    let ccs_at = sim.log.iter().position(|(_, _, d)| describe(d).0 == CCS).unwrap();
    assert_eq!(
        exchanges_since(&sim, ccs_at, true),
        [
            (true, CCS, false),
            (false, CCS, true),
            (true, FU, false),
            (false, FU, true),
            (true, FU, false),
            (false, FU, true)
        ]
    );
    let (a, b) = pair_of(&mut sim);
    assert!(halves(&a, &b), "both sides derived the same keys");
    assert_eq!(a.proposal, ESP.to_string() + "-noesn");
}

#[test]
fn the_ike_auth_child_ignores_the_additional_key_exchanges() {
    let mut sim = pair(2, Link::default(), pq_esp(alice_psk()), pq_esp(bob_psk()));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    sim.advance(Duration::from_millis(200));
    let exchanges: Vec<_> = sim.log.iter().map(|(_, _, d)| describe(d).0).collect();
    assert!(!exchanges.contains(&FU), "{exchanges:?}");
    let (a, b) = pair_of(&mut sim);
    assert!(halves(&a, &b));
    assert_eq!(a.proposal, "aes256gcm16-noesn", "no key exchange in IKE_AUTH");
}

/// A rekey of the pair (from each side) makes the key exchanges again; the new pair replaces the
/// old one, make before break, and both halves agree.
#[test]
fn a_child_rekey_makes_them_again_from_either_side() {
    for (seed, rekeyer) in [(3, ALICE_IP), (4, BOB_IP)] {
        let mut sim = pair(seed, Link::default(), pq_esp(alice_psk()), pq_esp(bob_psk()));
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), both_up));
        let (old_a, _) = pair_of(&mut sim);
        let sa = sim.ep(rekeyer).established()[0];
        let spi = sim.ep(rekeyer).children(sa)[0].spi_in;
        let from = sim.log.len();
        let now = sim.now;
        sim.ep(rekeyer).rekey_child(now, sa, spi).unwrap();
        sim.advance(Duration::from_secs(2));
        let got = exchanges_since(&sim, from, rekeyer == ALICE_IP);
        assert_eq!(
            got[..6],
            [
                (true, CCS, false),
                (false, CCS, true),
                (true, FU, false),
                (false, FU, true),
                (true, FU, false),
                (false, FU, true)
            ],
            "{rekeyer}: {got:?}"
        );
        let (a, b) = pair_of(&mut sim);
        assert!(halves(&a, &b), "{rekeyer}");
        assert_ne!(a.spi_in, old_a.spi_in, "a new pair");
        assert_eq!(a.proposal, ESP.to_string() + "-noesn");
    }
}

/// The followup echoes the responder's link; one that does not, or one for no pending CHILD SA, is
/// answered STATE_NOT_FOUND and nothing is installed.
#[test]
fn a_child_followup_with_another_link_gets_state_not_found() {
    let mut alice = pq_esp(alice_psk());
    alice.childless = Childless::Force;
    let mut sim = null_cipher_pair(5, Link::default(), alice, pq_esp(bob_psk()));
    let taken = intercept(&mut sim, |exchange, response, _| exchange == FU && !response);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), |_| taken.borrow().is_some()));
    let request = taken.borrow().clone().unwrap();
    let m = reseal(&request, other_link);
    let before = sim.log.len();
    let now = sim.now;
    sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), &m);
    sim.advance(Duration::from_millis(100));
    let answer = sim.log[before..].iter().find(|(src, _, _)| src.ip().to_string() == BOB_IP).unwrap();
    assert_eq!(payloads(&answer.2), ["N(STATE_NOT_FOUND)"]);
    let h = sim.ep(BOB_IP).established()[0];
    assert!(sim.ep(BOB_IP).children(h).is_empty(), "nothing installed");
}
