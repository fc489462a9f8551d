//! The responder's IKE_SA_INIT key exchange handed out to other threads
//! (`EndpointConfig::offload_key_exchange`, `Endpoint::poll_work` / `handle_work`): the exchange
//! comes out as without it, a request waits unanswered while its work is out, its retransmissions
//! make no second one, it holds its half-open place, and a result nobody waits for any more is
//! dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use oxswan_crypto::proposal::parse_ike_proposals;
use oxswan_ike::{Endpoint, EndpointConfig, Event};
use oxswan_wire::{ExchangeType, NotifyType};

fn offloading() -> EndpointConfig {
    EndpointConfig { offload_key_exchange: true, ..EndpointConfig::default() }
}

/// The datagrams Bob sent, as (exchange, response, message ID).
fn from_bob(sim: &Sim) -> Vec<(ExchangeType, bool, u32)> {
    sim.log.iter().filter(|(from, _, _)| from.ip().to_string() == BOB_IP).map(|(_, _, d)| describe(d)).collect()
}

#[test]
fn a_handshake_waits_for_its_key_exchange_and_retransmissions_make_no_second_one() {
    let mut sim = Sim::new(71, Link::default());
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice_psk()]);
    sim.add(BOB_IP, offloading(), vec![bob_psk()]);
    sim.hold_work = true;
    initiate(&mut sim);
    // Alice's request and her retransmissions (after 4 s, 7.2 s more, ...): Bob answers none of
    // them while the one key exchange is out, and counts it as a half-open SA.
    sim.run_until(Duration::from_secs(12), |_| false);
    let requests = sim.log.iter().filter(|(_, _, d)| describe(d) == (ExchangeType::IKE_SA_INIT, false, 0)).count();
    assert!(requests >= 3, "{:?}", sim.log_at);
    // The last one lands too (10 ms on the link).
    sim.advance(Duration::from_millis(50));
    assert_eq!(from_bob(&sim), []);
    assert_eq!(sim.held_work.len(), 1);
    assert_eq!((sim.ep(BOB_IP).work_pending(), sim.ep(BOB_IP).half_open_count(), sim.ep(BOB_IP).sa_count()), (1, 1, 0));
    assert_eq!(sim.ep(BOB_IP).sa_counts().half_open, 1);
    // Computed (here, as on another thread) and given back: the response goes out, and the
    // handshake completes as it would without the offload.
    let (ip, work) = sim.held_work.pop().unwrap();
    assert_eq!(ip.to_string(), BOB_IP);
    let done = std::thread::spawn(move || work.run()).join().unwrap();
    let now = sim.now;
    sim.ep(BOB_IP).handle_work(now, done);
    sim.hold_work = false;
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    assert_eq!(
        from_bob(&sim),
        [(ExchangeType::IKE_SA_INIT, true, 0), (ExchangeType::IKE_AUTH, true, 1)],
        "one response to IKE_SA_INIT for {requests} requests"
    );
    assert_eq!((sim.ep(BOB_IP).work_pending(), sim.ep(BOB_IP).half_open_count()), (0, 0));
    assert_eq!(info(&mut sim, BOB_IP).name, "to-alice");
}

#[test]
fn key_exchanges_out_hold_their_half_open_places() {
    // Two half-open SAs per address at most: the third to fifth requests are refused while the
    // first two key exchanges are out, as they would be with two half-open SAs.
    let strict = EndpointConfig { cookie_threshold_per_peer: 100, block_threshold_per_peer: 2, ..offloading() };
    let mut sim = Sim::new(72, Link::default());
    sim.add(BOB_IP, strict, vec![bob_psk()]);
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice_psk()]);
    sim.hold_work = true;
    for _ in 0..5 {
        let now = sim.now;
        sim.ep(ALICE_IP).initiate(now, "to-bob", addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    }
    sim.drop_filter = Some(Box::new(|_, d| describe(d) != (ExchangeType::IKE_SA_INIT, false, 0)));
    sim.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(sim.held_work.len(), 2);
    assert_eq!(sim.ep(BOB_IP).stats().half_open_refused, 3);
    // Given back, they become the two half-open SAs; the count does not double.
    for (_, work) in std::mem::take(&mut sim.held_work) {
        let now = sim.now;
        sim.ep(BOB_IP).handle_work(now, work.run());
    }
    assert_eq!((sim.ep(BOB_IP).work_pending(), sim.ep(BOB_IP).half_open_count(), sim.ep(BOB_IP).sa_count()), (0, 2, 2));
    // And when they time out (30 s), the address may start again.
    sim.hold_work = false;
    sim.advance(Duration::from_secs(40));
    assert_eq!(sim.ep(BOB_IP).half_open_count(), 0);
    let now = sim.now;
    sim.ep(ALICE_IP).initiate(now, "to-bob", addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    sim.drop_filter = None;
    assert!(sim.run_until(Duration::from_secs(5), both_up));
}

#[test]
fn a_refusal_computed_elsewhere_is_sent_and_frees_the_place() {
    // Bob accepts only ECP-256: Alice's X25519-only request gets NO_PROPOSAL_CHOSEN, from the work.
    let mut bob = bob_psk();
    bob.ike_proposals = parse_ike_proposals("aes256gcm16-prfsha256-ecp256").unwrap();
    let mut sim = Sim::new(73, Link::default());
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice_psk()]);
    sim.add(BOB_IP, offloading(), vec![bob]);
    sim.hold_work = true;
    // Without state kept for a refusal (§2.21.1), each retransmission would get one too: only the
    // first request goes through.
    sim.drop_filter = Some(Box::new(|i, d| i > 0 && describe(d) == (ExchangeType::IKE_SA_INIT, false, 0)));
    initiate(&mut sim);
    sim.run_until(Duration::from_millis(100), |_| false);
    assert_eq!(sim.ep(BOB_IP).half_open_count(), 1);
    let (_, work) = sim.held_work.pop().unwrap();
    let now = sim.now;
    sim.ep(BOB_IP).handle_work(now, work.run());
    sim.hold_work = false;
    sim.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(from_bob(&sim), [(ExchangeType::IKE_SA_INIT, true, 0)]);
    let refused = sim
        .events(BOB_IP)
        .iter()
        .any(|e| matches!(e, Event::InitRejected { notify, .. } if *notify == NotifyType::NO_PROPOSAL_CHOSEN));
    assert!(refused, "{:?}", sim.events(BOB_IP));
    assert_eq!((sim.ep(BOB_IP).work_pending(), sim.ep(BOB_IP).half_open_count(), sim.ep(BOB_IP).sa_count()), (0, 0, 0));
    assert!(down(sim.events(ALICE_IP)).is_some(), "Alice gives up on the refusal");
}

/// A first IKE_SA_INIT request from `from`, made by an initiator endpoint and handed to `bob`
/// directly (no simulated network: the source is whatever the caller says).
fn request(bob: &mut Endpoint, at: Instant, from: SocketAddr) {
    let mut alice = Endpoint::new(
        EndpointConfig::default(),
        oxswan_crypto::default_provider(),
        vec![alice_psk()],
        at,
        UNIX_EPOCH_AT_START,
    )
    .unwrap();
    alice.initiate(at, "to-bob", from, addr(BOB_IP, 500)).unwrap();
    let t = alice.poll_transmit().unwrap();
    bob.handle_datagram(at, addr(BOB_IP, 500), from, &t.payload);
}

#[test]
fn key_exchanges_a_driver_lost_are_forgotten_and_their_late_results_dropped() {
    let now = Instant::now();
    // Five half-open places per address; no cookies in the way.
    let config = EndpointConfig { cookie_threshold_per_peer: 100, block_threshold_per_peer: 5, ..offloading() };
    let mut bob =
        Endpoint::new(config, oxswan_crypto::default_provider(), vec![bob_psk()], now, UNIX_EPOCH_AT_START).unwrap();
    let from = addr("198.51.100.8", 500);
    // Five key exchanges out from one address; the driver keeps one and loses the rest. The
    // address has used its places: a sixth request is refused.
    for _ in 0..5 {
        request(&mut bob, now, from);
    }
    let kept = bob.poll_work().unwrap();
    while bob.poll_work().is_some() {}
    request(&mut bob, now, from);
    assert_eq!((bob.work_pending(), bob.stats().half_open_refused), (5, 1));
    // Within a half-open SA's lifetime (30 s) nothing is forgotten, and the address stays full.
    request(&mut bob, now + Duration::from_secs(29), from);
    assert_eq!((bob.work_pending(), bob.stats().half_open_refused), (5, 2));
    // Past it, the next request sweeps the lost ones out, with their places, and is admitted.
    let later = now + Duration::from_secs(31);
    request(&mut bob, later, from);
    assert_eq!((bob.work_pending(), bob.half_open_count(), bob.stats().half_open_refused), (1, 1, 2));
    // The kept one comes back too late: dropped, no answer, no SA.
    let dropped = bob.stats().dropped;
    bob.handle_work(later, kept.run());
    assert_eq!(bob.stats().dropped, dropped + 1);
    assert!(bob.poll_transmit().is_none());
    assert_eq!(bob.sa_count(), 0);
    // The live one completes.
    let work = bob.poll_work().unwrap();
    bob.handle_work(later, work.run());
    assert_eq!((bob.work_pending(), bob.half_open_count(), bob.sa_count()), (0, 1, 1));
    assert_eq!(describe(&bob.poll_transmit().unwrap().payload), (ExchangeType::IKE_SA_INIT, true, 0));
}

#[test]
fn the_offload_can_be_turned_off_and_on_between_requests() {
    let mut sim = Sim::new(76, Link::default());
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice_psk()]);
    sim.add(BOB_IP, offloading(), vec![bob_psk()]);
    sim.hold_work = true;
    // Off: Bob answers the first request himself, and the handshake completes without any work.
    sim.ep(BOB_IP).set_offload_key_exchange(false);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    assert!(sim.held_work.is_empty());
    // On again: the next handshake's key exchange is handed out and waits for it.
    sim.ep(BOB_IP).set_offload_key_exchange(true);
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(sim.held_work.len(), 1);
    assert_eq!(sim.ep(BOB_IP).work_pending(), 1);
}
