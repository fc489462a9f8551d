//! What the engine offers gateways that run as one cluster: SPIs that carry the node's number (so
//! a balancer can route by SPI) and ticket keys shared between gateways, so a client whose gateway
//! died resumes on another in one round trip (RFC 5723).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_crypto::Secret;
use oxswan_ike::{Event, PeerConfig};
use oxswan_wire::ExchangeType;

fn resuming(p: PeerConfig) -> PeerConfig {
    PeerConfig { resumption: true, ..p }
}

fn keys() -> ((u32, Secret), Option<(u32, Secret)>) {
    ((41, Secret::from_slice(&[7; 32])), Some((40, Secret::from_slice(&[6; 32]))))
}

/// Alice's IKE SA goes (her gateway is about to be replaced by another node); what the log
/// holds from then on belongs to the next attempt.
fn alice_leaves(sim: &mut Sim) {
    let now = sim.now;
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).delete_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(10), |s| down(s.events(ALICE_IP)).is_some()));
    sim.events.values_mut().for_each(Vec::clear);
}

#[test]
fn the_node_number_is_the_top_octet_of_every_spi_the_gateway_chooses() {
    let mut sim = pair(11, Link::default(), alice_psk(), bob_psk());
    sim.ep(BOB_IP).set_spi_tag(Some(0x2a));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let bob = info(&mut sim, BOB_IP);
    assert_eq!(bob.spi_r.0[0], 0x2a, "responder SPI {:02x?}", bob.spi_r.0);
    let child = child(sim.events(BOB_IP)).unwrap();
    assert_eq!(child.spi_in >> 24, 0x2a, "Bob's inbound ESP SPI {:08x}", child.spi_in);
    // Alice chose hers at random: her inbound SPI is Bob's outbound one.
    assert_ne!(child.spi_out >> 24, 0x2a, "Alice's SPI {:08x} (tagged by chance?)", child.spi_out);
    // A rekey of the IKE SA: Bob's new SPI is tagged too, whoever starts it.
    let now = sim.now;
    let sa = sim.ep(BOB_IP).established()[0];
    sim.ep(BOB_IP).rekey_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        s.events(BOB_IP).iter().any(|e| matches!(e, Event::IkeSaRekeyed { .. }))
    }));
    let new = sim
        .events(BOB_IP)
        .iter()
        .find_map(|e| match e {
            Event::IkeSaRekeyed { info, .. } => Some(info.clone()),
            _ => None,
        })
        .unwrap();
    let ours = if new.initiator { new.spi_i } else { new.spi_r };
    assert_ne!(ours, bob.spi_r);
    assert_eq!(ours.0[0], 0x2a, "{:02x?}", ours.0);
}

#[test]
fn a_gateway_with_the_shared_ticket_keys_resumes_anothers_ticket() {
    let mut sim = null_cipher_pair(12, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    let (cur, prev) = keys();
    sim.ep(BOB_IP).set_shared_ticket_keys(cur, prev);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let now = sim.now;
    assert!(sim.ep(ALICE_IP).has_ticket(now, "to-bob"));
    alice_leaves(&mut sim);
    // Another node of the cluster answers at the address now, with the cluster's keys and none
    // of the first one's state.
    let config = oxswan_ike::EndpointConfig { fragment_size: 65_535, ..Default::default() };
    sim.add_null_cipher(BOB_IP, config, vec![resuming(bob_psk())]);
    let (cur, prev) = keys();
    sim.ep(BOB_IP).set_shared_ticket_keys(cur, prev);
    assert_eq!(sim.ep(BOB_IP).ticket_key_id(), 41);
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let seen = messages_since(&sim, from);
    assert_eq!(seen[0].1, ExchangeType::IKE_SESSION_RESUME, "{seen:?}");
    assert_eq!(seen[1].1, ExchangeType::IKE_SESSION_RESUME, "{seen:?}");
    assert!(!seen[1].3.iter().any(|p| p == "N(TICKET_NACK)"), "{seen:?}");
    assert!(info(&mut sim, ALICE_IP).resumed);
    assert!(info(&mut sim, BOB_IP).resumed);
}

/// With real ciphers: the null cipher of the other tests authenticates nothing.
#[test]
fn without_the_shared_keys_another_gateway_refuses_the_ticket() {
    let mut sim = pair(13, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    let (cur, prev) = keys();
    sim.ep(BOB_IP).set_shared_ticket_keys(cur, prev);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    alice_leaves(&mut sim);
    let config = oxswan_ike::EndpointConfig { fragment_size: 65_535, ..Default::default() };
    sim.add(BOB_IP, config, vec![resuming(bob_psk())]);
    // Same key number, another key: not a ticket of this gateway's.
    sim.ep(BOB_IP).set_shared_ticket_keys((41, Secret::from_slice(&[9; 32])), None);
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    assert!(sim.log.len() > from);
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e,
        Event::InitRejected { notify: oxswan_wire::NotifyType::TICKET_NACK, reason, .. } if reason.contains("not a ticket of ours"))));
    assert!(!info(&mut sim, ALICE_IP).resumed);
}
