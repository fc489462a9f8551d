//! MOBIKE (RFC 4555) and NAT rebinding seen in ESP (RFC 7296 §2.23) on the simulated network: the
//! IKE SA and its CHILD SAs move, keeping their SPIs and keys, and nothing is negotiated again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use oxswan_ike::{ChildSa, Event, IkeError, SaHandle};
use oxswan_wire::ExchangeType;

/// Alice's second uplink.
const ALICE_NEW: &str = "198.51.100.20";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn established(sim: &mut Sim, at: &str) -> SaHandle {
    let sas = sim.ep(at).established();
    assert_eq!(sas.len(), 1, "one IKE SA at {at}");
    sas[0]
}

fn path_changes(events: &[Event]) -> Vec<(SocketAddr, SocketAddr, Vec<u32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PathChanged { local, remote, spis_in, .. } => Some((*local, *remote, spis_in.clone())),
            _ => None,
        })
        .collect()
}

/// Alice's and Bob's PSK connections with MOBIKE on (as the configuration's default).
fn mobile() -> (oxswan_ike::PeerConfig, oxswan_ike::PeerConfig) {
    let (mut a, mut b) = (alice_psk(), bob_psk());
    a.mobike = true;
    b.mobike = true;
    (a, b)
}

fn ike_ups(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::IkeSaUp { .. })).count()
}

/// Alice and Bob up, both with MOBIKE, Alice's second address reachable at the endpoint too.
fn up_with_mobike(seed: u64) -> (Sim, SaHandle, SaHandle, ChildSa) {
    let mut sim = {
        let (a, b) = mobile();
        pair(seed, Link::default(), a, b)
    };
    sim.aliases.insert(ip(ALICE_NEW), ip(ALICE_IP));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a, b) = (established(&mut sim, ALICE_IP), established(&mut sim, BOB_IP));
    assert!(sim.ep(ALICE_IP).info(a).unwrap().mobike, "alice agreed on MOBIKE");
    assert!(sim.ep(BOB_IP).info(b).unwrap().mobike, "bob agreed on MOBIKE");
    let child = sim.ep(BOB_IP).children(b)[0].clone();
    (sim, a, b, child)
}

/// RFC 4555 §3.5: Alice's first address goes away; she sends UPDATE_SA_ADDRESSES from the second,
/// and both sides move the IKE SA and the CHILD SA there within one round trip: same SPIs, no new
/// IKE SA, no new CHILD SA.
#[test]
fn the_initiator_moves_to_another_address_and_keeps_its_sas() {
    let (mut sim, a, b, child) = up_with_mobike(1);
    let (ups_a, ups_b) = (ike_ups(sim.events(ALICE_IP)), ike_ups(sim.events(BOB_IP)));
    let info_before = sim.ep(BOB_IP).info(b).unwrap();
    let (from_a, from_b) = (sim.events(ALICE_IP).len(), sim.events(BOB_IP).len());
    let log_from = sim.log.len();
    sim.unreachable.insert(ip(ALICE_IP));
    let now = sim.now;
    sim.ep(ALICE_IP).roam(now, a, &[(ip(ALICE_NEW), ip(BOB_IP))]).unwrap();
    let start = sim.now;
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        !path_changes(&s.events(ALICE_IP)[from_a..]).is_empty() && !path_changes(&s.events(BOB_IP)[from_b..]).is_empty()
    }));
    let took = sim.now - start;
    assert!(took < Duration::from_millis(500), "one round trip, not a retransmission: {took:?}");
    let moved_to = addr(ALICE_NEW, 4500);
    assert_eq!(
        path_changes(&sim.events(BOB_IP)[from_b..]),
        vec![(addr(BOB_IP, 4500), moved_to, vec![child.spi_in])],
        "bob's IKE SA and CHILD SA go to alice's new address"
    );
    assert_eq!(path_changes(&sim.events(ALICE_IP)[from_a..])[0].0, moved_to, "alice sends from her new address");
    let info = sim.ep(BOB_IP).info(b).unwrap();
    assert_eq!((info.spi_i, info.spi_r), (info_before.spi_i, info_before.spi_r), "the same IKE SA");
    assert_eq!(info.remote, moved_to);
    let children = sim.ep(BOB_IP).children(b);
    assert_eq!(children.len(), 1);
    assert_eq!((children[0].spi_in, children[0].spi_out), (child.spi_in, child.spi_out), "the same CHILD SA");
    assert_eq!(children[0].remote, moved_to);
    assert_eq!((ike_ups(sim.events(ALICE_IP)), ike_ups(sim.events(BOB_IP))), (ups_a, ups_b), "nothing set up anew");
    // The update was one INFORMATIONAL exchange, on the new path.
    let exchanges: Vec<(SocketAddr, ExchangeType, bool)> = sim.log[log_from..]
        .iter()
        .map(|(from, _, d)| {
            let (x, response, _) = describe(d);
            (*from, x, response)
        })
        .collect();
    assert_eq!(
        exchanges,
        vec![(moved_to, ExchangeType::INFORMATIONAL, false), (addr(BOB_IP, 4500), ExchangeType::INFORMATIONAL, true)]
    );
    // And the SA lives on there: a liveness check goes and comes back on the new path.
    let now = sim.now;
    sim.ep(ALICE_IP).liveness(now, a).unwrap();
    assert!(sim.run_until(Duration::from_secs(2), |s| {
        s.events(ALICE_IP).iter().any(|e| matches!(e, Event::LivenessConfirmed { .. }))
    }));
}

/// The update's INFORMATIONAL carries UPDATE_SA_ADDRESSES, both NAT detection notifies and COOKIE2,
/// and the answer NAT detection and the same COOKIE2 (RFC 4555 §3.5, §3.8).
#[test]
fn the_update_carries_nat_detection_and_cookie2_which_comes_back() {
    let mut sim = {
        let (a, b) = mobile();
        null_cipher_pair(2, Link::default(), a, b)
    };
    sim.aliases.insert(ip(ALICE_NEW), ip(ALICE_IP));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let a = established(&mut sim, ALICE_IP);
    let from = sim.log.len();
    let now = sim.now;
    sim.ep(ALICE_IP).roam(now, a, &[(ip(ALICE_NEW), ip(BOB_IP))]).unwrap();
    sim.advance(Duration::from_secs(1));
    let request = plain_payloads(&sim.log[from].2);
    let response = plain_payloads(&sim.log[from + 1].2);
    let names = |p: &[oxswan_wire::Payload]| p.iter().map(payload_name).collect::<Vec<_>>();
    for want in
        ["N(UPDATE_SA_ADDRESSES)", "N(NAT_DETECTION_SOURCE_IP)", "N(NAT_DETECTION_DESTINATION_IP)", "N(COOKIE2)"]
    {
        assert!(names(&request).iter().any(|n| n == want), "{want} in {:?}", names(&request));
    }
    assert!(names(&request).iter().any(|n| n == "N(NO_ADDITIONAL_ADDRESSES)"), "{:?}", names(&request));
    let cookie = |p: &[oxswan_wire::Payload]| {
        p.iter().find_map(|p| match p {
            oxswan_wire::Payload::Notify(n) if n.notify_type == oxswan_wire::NotifyType::COOKIE2 => {
                Some(n.data.clone())
            }
            _ => None,
        })
    };
    assert_eq!(cookie(&request).unwrap().len(), 16);
    assert_eq!(cookie(&response), cookie(&request), "COOKIE2 echoed");
    assert!(names(&response).iter().any(|n| n == "N(NAT_DETECTION_SOURCE_IP)"), "{:?}", names(&response));
}

/// A request already in flight when the address goes is sent again on the new path at once instead
/// of waiting out its retransmissions on a dead one (§3.7), and the update follows it.
#[test]
fn a_request_in_flight_follows_the_move_at_once() {
    let (mut sim, a, b, _) = up_with_mobike(3);
    sim.unreachable.insert(ip(ALICE_IP));
    let now = sim.now;
    sim.ep(ALICE_IP).liveness(now, a).unwrap();
    sim.advance(Duration::from_millis(100));
    let now = sim.now;
    sim.ep(ALICE_IP).roam(now, a, &[(ip(ALICE_NEW), ip(BOB_IP))]).unwrap();
    let start = sim.now;
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        s.events(ALICE_IP).iter().any(|e| matches!(e, Event::LivenessConfirmed { .. }))
            && !path_changes(s.events(BOB_IP)).is_empty()
    }));
    assert!(sim.now - start < Duration::from_secs(1), "no wait for a retransmission timer: {:?}", sim.now - start);
    assert_eq!(sim.ep(BOB_IP).info(b).unwrap().remote, addr(ALICE_NEW, 4500));
}

/// The peer's other addresses (ADDITIONAL_IP4_ADDRESS, §3.4) are a way out when its own goes: Alice
/// moves to Bob's second address, and Bob's SA answers from there.
#[test]
fn the_peers_additional_addresses_are_a_path_too() {
    const BOB_SECOND: &str = "203.0.113.2";
    let mut sim = {
        let (a, b) = mobile();
        pair(4, Link::default(), a, b)
    };
    sim.aliases.insert(ip(BOB_SECOND), ip(BOB_IP));
    sim.ep(BOB_IP).set_local_addresses(vec![ip(BOB_IP), ip(BOB_SECOND), ip("127.0.0.1"), ip("fe80::1")]);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a, b) = (established(&mut sim, ALICE_IP), established(&mut sim, BOB_IP));
    // Loopback and link-local addresses are not announced.
    assert_eq!(sim.ep(ALICE_IP).peer_addresses(a), vec![ip(BOB_IP), ip(BOB_SECOND)]);
    sim.unreachable.insert(ip(BOB_IP));
    let now = sim.now;
    sim.ep(ALICE_IP).roam(now, a, &[(ip(ALICE_IP), ip(BOB_SECOND))]).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        !path_changes(s.events(BOB_IP)).is_empty() && !path_changes(s.events(ALICE_IP)).is_empty()
    }));
    let info = sim.ep(BOB_IP).info(b).unwrap();
    assert_eq!(info.local, addr(BOB_SECOND, 4500), "bob's SA is on his second address now");
    assert_eq!(sim.ep(ALICE_IP).info(a).unwrap().remote, addr(BOB_SECOND, 4500));
}

/// Alice moves from a public address to one behind a NAT: the update's NAT detection shows it to
/// both sides (§3.5), so Bob sends to the mapping and Alice starts NAT keepalives.
#[test]
fn moving_behind_a_nat_is_detected_by_the_update() {
    const PRIVATE: &str = "10.9.0.2";
    let mut sim = {
        let (a, b) = mobile();
        pair(5, Link::default(), a, b)
    };
    sim.aliases.insert(ip(PRIVATE), ip(ALICE_IP));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a, b) = (established(&mut sim, ALICE_IP), established(&mut sim, BOB_IP));
    assert!(!sim.ep(BOB_IP).info(b).unwrap().nat.any(), "no NAT at first");
    sim.nat = Some(Nat::new(PRIVATE, "198.51.100.99"));
    sim.unreachable.insert(ip(ALICE_IP));
    let now = sim.now;
    sim.ep(ALICE_IP).roam(now, a, &[(ip(PRIVATE), ip(BOB_IP))]).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        !path_changes(s.events(BOB_IP)).is_empty() && !path_changes(s.events(ALICE_IP)).is_empty()
    }));
    let bob = sim.ep(BOB_IP).info(b).unwrap();
    assert!(bob.nat.remote_behind_nat, "bob sees alice behind a NAT: {:?}", bob.nat);
    assert_eq!(bob.remote, addr("198.51.100.99", 40000), "bob sends to the mapping");
    assert!(sim.ep(ALICE_IP).info(a).unwrap().nat.local_behind_nat, "alice knows she is behind one");
}

/// A peer without MOBIKE: nothing is agreed, and a move is refused instead of sent.
#[test]
fn without_mobike_on_either_side_nothing_moves() {
    let (alice, mut bob) = mobile();
    bob.mobike = false;
    let mut sim = pair(6, Link::default(), alice, bob);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a, b) = (established(&mut sim, ALICE_IP), established(&mut sim, BOB_IP));
    assert!(!sim.ep(ALICE_IP).info(a).unwrap().mobike);
    assert!(!sim.ep(BOB_IP).info(b).unwrap().mobike);
    let sent = sim.log.len();
    let now = sim.now;
    assert!(matches!(sim.ep(ALICE_IP).roam(now, a, &[(ip(ALICE_NEW), ip(BOB_IP))]), Err(IkeError::NoMobike)));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.log.len(), sent, "no update sent");
}

/// RFC 7296 §2.23 seen in ESP: the NAT in front of Alice gave her a new mapping, and Bob's data plane
/// opened authentic ESP from it. Bob (not behind a NAT) follows at once; Alice, behind the NAT, never
/// follows an address that ESP claims.
#[test]
fn esp_from_a_new_nat_mapping_moves_the_responder_only() {
    let mut sim = Sim::new(7, Link::default());
    sim.nat = Some(Nat::new("10.0.0.2", "198.51.100.1"));
    sim.add("10.0.0.2", oxswan_ike::EndpointConfig::default(), vec![mobile().0]);
    sim.add(BOB_IP, oxswan_ike::EndpointConfig::default(), vec![mobile().1]);
    let now = sim.now;
    sim.ep("10.0.0.2").initiate(now, "to-bob", addr("10.0.0.2", 500), addr(BOB_IP, 500)).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| up(s.events("10.0.0.2")) && up(s.events(BOB_IP))));
    let b = established(&mut sim, BOB_IP);
    let bob_child = sim.ep(BOB_IP).children(b)[0].clone();
    let new_mapping = addr("198.51.100.1", 41234);
    let now = sim.now;
    assert!(sim.ep(BOB_IP).esp_moved(now, bob_child.spi_in, new_mapping), "bob follows");
    sim.advance(Duration::from_millis(10));
    assert_eq!(path_changes(sim.events(BOB_IP)), vec![(addr(BOB_IP, 4500), new_mapping, vec![bob_child.spi_in])]);
    assert_eq!(sim.ep(BOB_IP).info(b).unwrap().remote, new_mapping, "IKE follows ESP");
    // The same mapping again changes nothing; an unknown SPI neither.
    let now = sim.now;
    assert!(!sim.ep(BOB_IP).esp_moved(now, bob_child.spi_in, new_mapping));
    assert!(!sim.ep(BOB_IP).esp_moved(now, bob_child.spi_in ^ 0x5a5a_5a5a, addr("198.51.100.1", 999)));
    // Alice is behind the NAT: she does not follow.
    let a = established(&mut sim, "10.0.0.2");
    let alice_child = sim.ep("10.0.0.2").children(a)[0].clone();
    let now = sim.now;
    assert!(!sim.ep("10.0.0.2").esp_moved(now, alice_child.spi_in, addr("192.0.2.66", 4500)));
    assert!(path_changes(sim.events("10.0.0.2")).is_empty());
}
