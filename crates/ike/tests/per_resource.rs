//! Per-resource CHILD SAs (RFC 9611): a child with `per_cpu_sas` is first made as the fallback,
//! announced with SA_RESOURCE_INFO; when the peer answers in kind, the initiator makes one more pair
//! with the same selectors for each of its resources, each inbound SPI being its resource modulo
//! their number (how the daemon steers ESP to its workers); the responder numbers its own pairs and
//! refuses more than it has resources with TS_MAX_QUEUE; a rekeyed pair keeps its resource; a peer
//! without the extension gets one ordinary pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::{ChildSa, EndpointConfig, Event, PeerConfig, PerResource, SaHandle};
use oxswan_wire::{ExchangeType, NotifyType};

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
    // Alice asked for four; Bob took two besides the fallback and refused the other two.
    assert_eq!(places(&pairs(&mut sim, BOB_IP)), [FALLBACK, R(0), R(1)]);
    assert_eq!(places(&pairs(&mut sim, ALICE_IP)).len(), 3);
    assert_eq!(failures(&sim, ALICE_IP), [NotifyType::TS_MAX_QUEUE, NotifyType::TS_MAX_QUEUE]);
    let refusals = messages_since(&sim, 0)
        .into_iter()
        .filter(|(_, x, r, p)| *x == ExchangeType::CREATE_CHILD_SA && *r && p == &["N(TS_MAX_QUEUE)"])
        .count();
    assert_eq!(refusals, 2);
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
