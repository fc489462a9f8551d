//! Per-resource CHILD SAs (RFC 9611): a child with `per_cpu_sas` is first made as the fallback,
//! announced with SA_RESOURCE_INFO; when the peer answers in kind, the initiator makes one more pair
//! with the same selectors for each of its resources, each inbound SPI being its resource modulo
//! their number (how the daemon steers ESP to its workers), one at a time, with the selectors the
//! responder narrowed the fallback's to; the responder numbers its own pairs and refuses more than it
//! has resources with TS_MAX_QUEUE, which ends the initiator's asking, while TEMPORARY_FAILURE has it
//! ask again; a rekeyed pair keeps its resource; a peer without the extension gets one ordinary pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use oxswan_ike::child::TsConfig;
use oxswan_ike::{ChildSa, EndpointConfig, Event, PeerConfig, PerResource, SaHandle};
use oxswan_wire::ts::TrafficSelector;
use oxswan_wire::{ExchangeType, NotifyType, Payload};

fn per_cpu(mut peer: PeerConfig) -> PeerConfig {
    for c in &mut peer.children {
        c.per_cpu_sas = true;
    }
    peer
}

/// Alice and Bob with the null cipher (so the test reads every payload), each with `resources`.
fn sim(seed: u64, alice: (PeerConfig, u32), bob: (PeerConfig, u32)) -> Sim {
    let config = |resources| EndpointConfig { fragment_size: 65_535, resources, ..EndpointConfig::default() };
    let mut sim = Sim::new(seed, Link::default());
    sim.add_null_cipher(ALICE_IP, config(alice.1), vec![alice.0]);
    sim.add_null_cipher(BOB_IP, config(bob.1), vec![bob.0]);
    sim
}

/// The IKE SA a side's CHILD SAs were made on (the only one in these tests).
fn handle(sim: &Sim, ip: &str) -> SaHandle {
    sim.events(ip)
        .iter()
        .find_map(|e| match e {
            Event::ChildSaReady { sa, .. } => Some(*sa),
            _ => None,
        })
        .expect("a CHILD SA was made")
}

fn pairs(sim: &mut Sim, ip: &str) -> Vec<ChildSa> {
    let h = handle(sim, ip);
    sim.ep(ip).children(h)
}

fn places(pairs: &[ChildSa]) -> Vec<Option<PerResource>> {
    let mut v: Vec<_> = pairs.iter().map(|c| c.resource).collect();
    v.sort_by_key(|r| match r {
        None => (0, 0),
        Some(PerResource::Fallback) => (1, 0),
        Some(PerResource::Resource(k)) => (2, *k),
    });
    v
}

fn failures(sim: &Sim, ip: &str) -> Vec<NotifyType> {
    sim.events(ip)
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaFailed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// Runs until nothing is queued any more on either side (all CREATE_CHILD_SA exchanges done).
fn settle(sim: &mut Sim) {
    assert!(sim.run_until(Duration::from_secs(10), both_up));
    sim.advance(Duration::from_secs(2));
}

const R: fn(u32) -> Option<PerResource> = |k| Some(PerResource::Resource(k));
const FALLBACK: Option<PerResource> = Some(PerResource::Fallback);

#[test]
fn a_pair_for_each_resource_after_the_fallback_with_spis_steered_to_it() {
    let mut sim = sim(81, (per_cpu(alice_psk()), 3), (per_cpu(bob_psk()), 3));
    initiate(&mut sim);
    settle(&mut sim);
    let alice = pairs(&mut sim, ALICE_IP);
    let bob = pairs(&mut sim, BOB_IP);
    assert_eq!(places(&alice), [FALLBACK, R(0), R(1), R(2)]);
    // Bob numbers his own pairs: the first is his fallback too, the others his resources in turn.
    assert_eq!(places(&bob), [FALLBACK, R(0), R(1), R(2)]);
    for (side, pairs) in [("alice", &alice), ("bob", &bob)] {
        for c in pairs {
            if let Some(PerResource::Resource(k)) = c.resource {
                assert_eq!(c.spi_in % 3, k, "{side}: inbound SPI {:#x} of resource {k}", c.spi_in);
            }
            // Identical selectors: the whole point is several pairs for one traffic.
            assert_eq!((&c.local_ts, &c.remote_ts), (&pairs[0].local_ts, &pairs[0].remote_ts), "{side}");
        }
    }
    // Each of Alice's pairs is one of Bob's, the other way round.
    for a in &alice {
        let b = bob.iter().find(|b| b.spi_in == a.spi_out).expect("the peer's half");
        assert_eq!(b.spi_out, a.spi_in);
    }
    // On the wire: SA_RESOURCE_INFO in IKE_AUTH both ways, then three CREATE_CHILD_SA with it.
    let msgs = messages_since(&sim, 0);
    let with_info = |exchange: ExchangeType, response: bool| {
        msgs.iter()
            .filter(|(_, x, r, p)| *x == exchange && *r == response && p.iter().any(|n| n == "N(SA_RESOURCE_INFO)"))
            .count()
    };
    assert_eq!(with_info(ExchangeType::IKE_AUTH, false), 1, "{msgs:?}");
    assert_eq!(with_info(ExchangeType::IKE_AUTH, true), 1, "{msgs:?}");
    assert_eq!(with_info(ExchangeType::CREATE_CHILD_SA, false), 3, "{msgs:?}");
    assert_eq!(with_info(ExchangeType::CREATE_CHILD_SA, true), 3, "{msgs:?}");
    assert_eq!(failures(&sim, ALICE_IP), []);
}

#[test]
fn the_responder_takes_no_more_than_its_resources_and_says_ts_max_queue() {
    let mut sim = sim(82, (per_cpu(alice_psk()), 4), (per_cpu(bob_psk()), 2));
    initiate(&mut sim);
    settle(&mut sim);
    // Alice has four resources; Bob took two besides the fallback and refused the third, after which
    // Alice asked for no more (RFC 9611 §4.2).
    assert_eq!(places(&pairs(&mut sim, BOB_IP)), [FALLBACK, R(0), R(1)]);
    assert_eq!(places(&pairs(&mut sim, ALICE_IP)), [FALLBACK, R(0), R(1)]);
    assert_eq!(failures(&sim, ALICE_IP), [NotifyType::TS_MAX_QUEUE]);
    let msgs = messages_since(&sim, 0);
    let refusals =
        msgs.iter().filter(|(_, x, r, p)| *x == ExchangeType::CREATE_CHILD_SA && *r && p == &["N(TS_MAX_QUEUE)"]);
    assert_eq!(refusals.count(), 1);
    let requests = msgs.iter().filter(|(_, x, r, _)| *x == ExchangeType::CREATE_CHILD_SA && !*r);
    assert_eq!(requests.count(), 3, "{msgs:?}");
    // The IKE SA and the pairs made stay up.
    assert!(both_up(&sim));
}

#[test]
fn a_peer_without_per_resource_sas_gets_one_ordinary_pair() {
    let mut sim = sim(83, (per_cpu(alice_psk()), 3), (bob_psk(), 3));
    initiate(&mut sim);
    settle(&mut sim);
    assert_eq!(places(&pairs(&mut sim, ALICE_IP)), [None]);
    assert_eq!(places(&pairs(&mut sim, BOB_IP)), [None]);
    let msgs = messages_since(&sim, 0);
    assert!(msgs.iter().all(|(_, x, _, _)| *x != ExchangeType::CREATE_CHILD_SA), "{msgs:?}");
    // Alice announced it; Bob, without per_cpu_sas, did not answer in kind.
    let announced = |response: bool| {
        msgs.iter().any(|(_, x, r, p)| {
            *x == ExchangeType::IKE_AUTH && *r == response && p.iter().any(|n| n == "N(SA_RESOURCE_INFO)")
        })
    };
    assert!(announced(false) && !announced(true), "{msgs:?}");
}

#[test]
fn one_resource_makes_the_fallback_only() {
    let mut sim = sim(84, (per_cpu(alice_psk()), 1), (per_cpu(bob_psk()), 4));
    initiate(&mut sim);
    settle(&mut sim);
    assert_eq!(places(&pairs(&mut sim, ALICE_IP)), [FALLBACK]);
    assert_eq!(places(&pairs(&mut sim, BOB_IP)), [FALLBACK]);
}

#[test]
fn a_rekeyed_pair_keeps_its_resource_on_both_sides() {
    let mut sim = sim(85, (per_cpu(alice_psk()), 3), (per_cpu(bob_psk()), 3));
    initiate(&mut sim);
    settle(&mut sim);
    let old = pairs(&mut sim, ALICE_IP).into_iter().find(|c| c.resource == R(1)).unwrap();
    let bob_old = pairs(&mut sim, BOB_IP).into_iter().find(|c| c.spi_in == old.spi_out).unwrap();
    let (h, now) = (handle(&sim, ALICE_IP), sim.now);
    sim.ep(ALICE_IP).rekey_child(now, h, old.spi_in).unwrap();
    sim.advance(Duration::from_secs(2));
    let alice = pairs(&mut sim, ALICE_IP);
    assert!(alice.iter().all(|c| c.spi_in != old.spi_in), "the old pair is gone");
    assert_eq!(places(&alice), [FALLBACK, R(0), R(1), R(2)]);
    let new = alice.iter().find(|c| c.resource == R(1)).unwrap();
    assert_eq!(new.spi_in % 3, 1);
    let bob_new = pairs(&mut sim, BOB_IP).into_iter().find(|c| c.spi_in == new.spi_out).unwrap();
    assert_eq!(bob_new.resource, bob_old.resource);
    assert_eq!(bob_new.spi_in % 3, bob_old.resource.and_then(PerResource::number).unwrap());
    assert_eq!(places(&pairs(&mut sim, BOB_IP)), [FALLBACK, R(0), R(1), R(2)]);
}

/// The selectors of a message's TSi and TSr payloads (null cipher).
fn selectors(datagram: &[u8]) -> Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)> {
    let p = plain_payloads(datagram);
    let tsi = p.iter().find_map(|p| match p {
        Payload::TsI(t) => Some(t.selectors.clone()),
        _ => None,
    })?;
    let tsr = p.iter().find_map(|p| match p {
        Payload::TsR(t) => Some(t.selectors.clone()),
        _ => None,
    })?;
    Some((tsi, tsr))
}

/// The resource number a CREATE_CHILD_SA request asks a pair for, from its SA_RESOURCE_INFO.
fn asked_resource(datagram: &[u8]) -> Option<Vec<u8>> {
    let (exchange, response, _) = describe(datagram);
    if exchange != ExchangeType::CREATE_CHILD_SA || response {
        return None;
    }
    plain_payloads(datagram).into_iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == NotifyType::SA_RESOURCE_INFO => Some(n.data),
        _ => None,
    })
}

#[test]
fn per_resource_pairs_ask_for_the_selectors_the_fallback_was_narrowed_to() {
    // Alice proposes 10.1.0.0/16 <=> 10.2.0.0/16; Bob's policy is narrower on both ends.
    let mut bob = per_cpu(bob_psk());
    bob.children[0].local_ts = vec![TsConfig::Selector(ts("10.2.7.0/24"))];
    bob.children[0].remote_ts = vec![TsConfig::Selector(ts("10.1.5.0/24"))];
    let mut sim = sim(86, (per_cpu(alice_psk()), 2), (bob, 2));
    initiate(&mut sim);
    settle(&mut sim);
    let alice = pairs(&mut sim, ALICE_IP);
    assert_eq!(places(&alice), [FALLBACK, R(0), R(1)]);
    let narrowed = (vec![ts("10.1.5.0/24")], vec![ts("10.2.7.0/24")]);
    for c in &alice {
        assert_eq!((c.local_ts.clone(), c.remote_ts.clone()), narrowed);
    }
    // On the wire, each per-resource request already carries the narrowed selectors.
    let asked: Vec<_> = sim.log.iter().filter(|(_, _, d)| asked_resource(d).is_some()).collect();
    assert_eq!(asked.len(), 2);
    for (_, _, d) in asked {
        assert_eq!(selectors(d), Some(narrowed.clone()));
    }
}

#[test]
fn a_per_resource_pair_refused_with_temporary_failure_is_asked_for_again() {
    let mut sim = sim(87, (per_cpu(alice_psk()), 2), (per_cpu(bob_psk()), 2));
    // The network loses Alice's first request for resource 0; in its place Bob seems to answer
    // TEMPORARY_FAILURE (§2.25), as he would while rekeying the IKE SA.
    let lost: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let keep = Rc::clone(&lost);
    sim.drop_filter = Some(Box::new(move |_, d| {
        if keep.borrow().is_none() && asked_resource(d) == Some(0u32.to_be_bytes().to_vec()) {
            *keep.borrow_mut() = Some(d.to_vec());
            return true;
        }
        false
    }));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(10), |_| lost.borrow().is_some()));
    let request = lost.borrow().clone().unwrap();
    let h = oxswan_wire::Header::parse(&request).unwrap();
    let (provider, keys) = null_keys();
    let answer = oxswan_wire::Header::new(
        h.spi_i,
        h.spi_r,
        ExchangeType::CREATE_CHILD_SA,
        oxswan_wire::Flags::RESPONSE,
        h.message_id,
    );
    let failure = Payload::Notify(oxswan_wire::notify::NotifyPayload::new(NotifyType::TEMPORARY_FAILURE, Vec::new()));
    let m = oxswan_crypto::sk::protect(&provider, &keys, &answer, &[failure]).unwrap();
    let now = sim.now;
    sim.ep(ALICE_IP).handle_datagram(now, addr(ALICE_IP, 500), addr(BOB_IP, 500), &m);
    // Bob is given an empty INFORMATIONAL with the lost request's message ID in its place, so that
    // the two windows stay in step (§2.3); Alice drops its answer, as she expects none.
    let liveness = oxswan_wire::Header::new(h.spi_i, h.spi_r, ExchangeType::INFORMATIONAL, h.flags, h.message_id);
    let m = oxswan_crypto::sk::protect(&provider, &keys, &liveness, &[]).unwrap();
    sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), &m);
    let refused_at = sim.log.len();
    // Nothing is asked for during the pause; then resource 0 again, and resource 1 after it.
    sim.advance(Duration::from_millis(1900));
    assert!(sim.log[refused_at..].iter().all(|(_, _, d)| asked_resource(d).is_none()));
    sim.advance(Duration::from_secs(3));
    let asked: Vec<_> = sim.log[refused_at..].iter().filter_map(|(_, _, d)| asked_resource(d)).collect();
    assert_eq!(
        asked,
        [0u32.to_be_bytes().to_vec(), 1u32.to_be_bytes().to_vec()],
        "{:?}",
        messages_since(&sim, refused_at)
    );
    assert_eq!(places(&pairs(&mut sim, ALICE_IP)), [FALLBACK, R(0), R(1)]);
    assert_eq!(places(&pairs(&mut sim, BOB_IP)), [FALLBACK, R(0), R(1)]);
    assert_eq!(failures(&sim, ALICE_IP), []);
}
