//! Childless IKE SAs (RFC 6023) with strongSwan's `childless` policies: the responder announces
//! CHILDLESS_IKEV2_SUPPORTED in IKE_SA_INIT; an initiator with `prefer` or `force` then sends
//! IKE_AUTH without SA and selectors and makes its CHILD SAs with CREATE_CHILD_SA; `force` without
//! the announcement fails before IKE_AUTH; a responder refuses what its connection's policy forbids
//! with INVALID_SYNTAX, as strongSwan does; an IKE SA without CHILD SAs gets them on demand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::{Childless, DownReason, PeerConfig};
use oxswan_wire::{ExchangeType, NotifyType};

fn with(mut p: PeerConfig, childless: Childless) -> PeerConfig {
    p.childless = childless;
    p
}

fn has_notify(payloads: &[String], ty: &str) -> bool {
    payloads.iter().any(|p| p == &format!("N({ty})"))
}

#[test]
fn a_preferred_childless_ike_sa_makes_its_child_with_create_child_sa() {
    let mut sim =
        null_cipher_pair(1, Link::default(), with(alice_psk(), Childless::Prefer), with(bob_psk(), Childless::Allow));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), |s| both_up(s) && child(s.events(ALICE_IP)).is_some()));
    let m = named_messages(&sim, 0);
    assert!(!has_notify(&m[0].3, "CHILDLESS_IKEV2_SUPPORTED"), "only the responder announces it: {:?}", m[0]);
    assert!(has_notify(&m[1].3, "CHILDLESS_IKEV2_SUPPORTED"), "{:?}", m[1]);
    let (auth_req, auth_resp) = (&m[2], &m[3]);
    assert_eq!((auth_req.1, auth_resp.1), (ExchangeType::IKE_AUTH, ExchangeType::IKE_AUTH));
    for p in [auth_req, auth_resp] {
        for absent in ["SA", "TSi", "TSr"] {
            assert!(!p.3.contains(&absent.to_string()), "no {absent} in a childless IKE_AUTH: {p:?}");
        }
    }
    assert_eq!(
        m[4..6],
        [
            msg("alice", ExchangeType::CREATE_CHILD_SA, REQUEST, &["SA", "No", "TSi", "TSr"]),
            msg("bob", ExchangeType::CREATE_CHILD_SA, RESPONSE, &["SA", "No", "TSi", "TSr"]),
        ]
    );
    let (a, b) = (child(sim.events(ALICE_IP)).unwrap(), child(sim.events(BOB_IP)).unwrap());
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
    assert_eq!(a.encr_out.expose(), b.encr_in.expose());
}

#[test]
fn allow_makes_the_child_in_ike_auth_even_when_the_responder_supports_childless() {
    let mut sim = null_cipher_pair(2, Link::default(), alice_psk(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let m = named_messages(&sim, 0);
    assert!(has_notify(&m[1].3, "CHILDLESS_IKEV2_SUPPORTED"));
    assert!(m[2].3.contains(&"SA".to_string()), "{:?}", m[2]);
    assert!(child(sim.events(ALICE_IP)).is_some());
}

#[test]
fn force_fails_before_ike_auth_when_the_responder_does_not_announce_childless() {
    let mut sim =
        null_cipher_pair(3, Link::default(), with(alice_psk(), Childless::Force), with(bob_psk(), Childless::Never));
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(5), |s| down(s.events(ALICE_IP)).is_some());
    let m = named_messages(&sim, 0);
    assert!(!has_notify(&m[1].3, "CHILDLESS_IKEV2_SUPPORTED"), "never: not announced");
    match down(sim.events(ALICE_IP)) {
        Some(DownReason::Protocol(why)) => assert!(why.contains("childless"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(m.iter().all(|x| x.1 == ExchangeType::IKE_SA_INIT), "no IKE_AUTH went: {m:#?}");
}

#[test]
fn a_responder_with_force_refuses_a_child_in_ike_auth() {
    let mut sim = null_cipher_pair(4, Link::default(), alice_psk(), with(bob_psk(), Childless::Force));
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(5), |s| down(s.events(ALICE_IP)).is_some());
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::INVALID_SYNTAX)));
    assert!(!up(sim.events(BOB_IP)));
}

/// Bob announces childless IKE SAs (his other connection allows them), but the connection Alice
/// authenticates for says `never`: her childless IKE_AUTH is refused.
#[test]
fn a_responder_with_never_refuses_a_childless_ike_auth() {
    let carol = psk_peer("to-carol", "bob.example", "carol.example", "other secret", "10.2.0.0/16", "10.3.0.0/16");
    let mut sim = Sim::new(5, Link::default());
    let config = oxswan_ike::EndpointConfig { fragment_size: 65_535, ..Default::default() };
    sim.add_null_cipher(ALICE_IP, config.clone(), vec![with(alice_psk(), Childless::Force)]);
    sim.add_null_cipher(BOB_IP, config, vec![with(bob_psk(), Childless::Never), carol]);
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(5), |s| down(s.events(ALICE_IP)).is_some());
    let m = named_messages(&sim, 0);
    assert!(has_notify(&m[1].3, "CHILDLESS_IKEV2_SUPPORTED"));
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::INVALID_SYNTAX)));
    assert!(!up(sim.events(BOB_IP)));
}

/// An IKE SA left without CHILD SAs gets the connection's children again on demand
/// (`Endpoint::add_children`, what `oxswan up` does for it), from either side.
#[test]
fn an_ike_sa_without_children_gets_them_on_demand() {
    for (seed, side) in [(6, ALICE_IP), (7, BOB_IP)] {
        let mut sim = null_cipher_pair(seed, Link::default(), alice_psk(), bob_psk());
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), both_up));
        let sa = sim.ep(ALICE_IP).established()[0];
        let spi = sim.ep(ALICE_IP).children(sa)[0].spi_in;
        let now = sim.now;
        sim.ep(ALICE_IP).delete_child(now, sa, spi).unwrap();
        sim.advance(Duration::from_millis(500));
        assert!(sim.ep(ALICE_IP).children(sa).is_empty());
        let h = sim.ep(side).established()[0];
        let from = sim.log.len();
        let now = sim.now;
        sim.ep(side).add_children(now, h).unwrap();
        // Asked again while they are being made: still one of each.
        sim.ep(side).add_children(now, h).unwrap();
        sim.advance(Duration::from_millis(500));
        let requests =
            named_messages(&sim, from).iter().filter(|m| m.1 == ExchangeType::CREATE_CHILD_SA && !m.2).count();
        assert_eq!(requests, 1, "{side}");
        let m = named_messages(&sim, from);
        assert_eq!(m[0].1, ExchangeType::CREATE_CHILD_SA, "{m:#?}");
        for ip in [ALICE_IP, BOB_IP] {
            let h = sim.ep(ip).established()[0];
            assert_eq!(sim.ep(ip).children(h).len(), 1, "{ip}");
        }
    }
}
