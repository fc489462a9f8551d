//! The data plane's counters, fed to the engine (`Endpoint::handle_usage`), and the protocol rules
//! they drive: volume limits, dead peer detection (RFC 7296 §2.4), and when a new pair starts
//! sending (make before break, §2.8, §2.8.3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::volume::{ChildUsage, VolumeLimits};
use oxswan_ike::{ChildSa, Event};
use oxswan_wire::ExchangeType;

const CCS: ExchangeType = ExchangeType::CREATE_CHILD_SA;
const INFO: ExchangeType = ExchangeType::INFORMATIONAL;

fn sent(packets: u64) -> ChildUsage {
    ChildUsage {
        packets_out: packets,
        bytes_out: packets * 100,
        seq: packets,
        seq_limit: u64::from(u32::MAX),
        ..Default::default()
    }
}

fn received(packets: u64) -> ChildUsage {
    ChildUsage { packets_in: packets, bytes_in: packets * 100, seq_limit: u64::from(u32::MAX), ..Default::default() }
}

fn the_pair(sim: &mut Sim, ip: &str) -> (oxswan_ike::SaHandle, ChildSa) {
    let sa = sim.ep(ip).established()[0];
    let children = sim.ep(ip).children(sa);
    assert_eq!(children.len(), 1, "{ip}: one pair");
    (sa, children[0].clone())
}

/// `rekey_packets` rekeys the pair, `life_packets` deletes it, each once, and a pair that crossed
/// both between two reports is rekeyed before it is deleted.
#[test]
fn volume_limits_rekey_then_delete() {
    let mut bob = bob_psk();
    bob.children[0].volume = VolumeLimits { rekey_packets: 100, life_packets: 120, ..Default::default() };
    let mut sim = null_cipher_pair(51, Link::default(), alice_psk(), bob);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (sa, first) = the_pair(&mut sim, BOB_IP);
    let from = sim.log.len();
    let now = sim.now;
    sim.ep(BOB_IP).handle_usage(now, sa, first.spi_in, sent(99)).unwrap();
    sim.advance(Duration::from_secs(1));
    assert_eq!(named_messages(&sim, from), [], "below the soft limit: nothing");
    let now = sim.now;
    sim.ep(BOB_IP).handle_usage(now, sa, first.spi_in, sent(100)).unwrap();
    sim.ep(BOB_IP).handle_usage(now, sa, first.spi_in, sent(101)).unwrap();
    sim.advance(Duration::from_secs(1));
    assert_eq!(
        named_messages(&sim, from),
        [
            /* CREATE_CHILD_SA { N(REKEY_SA), SA, No, TSi, TSr } --> */
            msg("bob", CCS, REQUEST, &["N(REKEY_SA)", "SA", "No", "TSi", "TSr"]),
            /* <-- CREATE_CHILD_SA { SA, No, TSi, TSr } */
            msg("alice", CCS, RESPONSE, &["SA", "No", "TSi", "TSr"]),
            /* INFORMATIONAL { D(ESP) } --> the old pair */
            msg("bob", INFO, REQUEST, &["D(ESP)"]),
            /* <-- INFORMATIONAL { D(ESP) } */
            msg("alice", INFO, RESPONSE, &["D(ESP)"]),
        ],
        "one rekey at the soft limit, however often it is reported"
    );
    // The new pair crosses both limits between two reports: rekeyed first, then deleted.
    let (sa, second) = the_pair(&mut sim, BOB_IP);
    let from = sim.log.len();
    let now = sim.now;
    sim.ep(BOB_IP).handle_usage(now, sa, second.spi_in, sent(125)).unwrap();
    sim.ep(BOB_IP).handle_usage(now, sa, second.spi_in, sent(126)).unwrap();
    sim.advance(Duration::from_secs(1));
    let m = named_messages(&sim, from);
    assert_eq!(m[0], msg("bob", CCS, REQUEST, &["N(REKEY_SA)", "SA", "No", "TSi", "TSr"]), "{m:?}");
    let deletes = m.iter().filter(|x| x.0 == "bob" && x.1 == INFO && !x.2).count();
    assert_eq!(deletes, 1, "the rekey's DELETE of the old pair; the life limit's is skipped: {m:?}");
    let (_, third) = the_pair(&mut sim, BOB_IP);
    assert_ne!(third.spi_in, second.spi_in);
}

/// §2.4: with `dpd_delay`, a silent peer is asked whether it is alive once the delay has passed
/// since anything came from it; inbound ESP counts as a sign of life.
#[test]
fn dead_peer_detection_follows_what_comes_from_the_peer() {
    let mut alice = alice_psk();
    alice.dpd_delay = Some(Duration::from_secs(5));
    let mut sim = null_cipher_pair(52, Link::default(), alice, bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (sa, pair) = the_pair(&mut sim, ALICE_IP);
    let from = sim.log.len();
    sim.advance(Duration::from_secs(11));
    assert_eq!(
        named_messages(&sim, from),
        [
            /* INFORMATIONAL { } --> after 5 s of silence */
            msg("alice", INFO, REQUEST, &[]),
            /* <-- INFORMATIONAL { } */
            msg("bob", INFO, RESPONSE, &[]),
            /* INFORMATIONAL { } --> 5 s after the answer */
            msg("alice", INFO, REQUEST, &[]),
            msg("bob", INFO, RESPONSE, &[]),
        ]
    );
    // Traffic from the peer every second: no checks at all.
    let from = sim.log.len();
    for n in 1..=20 {
        let now = sim.now;
        sim.ep(ALICE_IP).handle_usage(now, sa, pair.spi_in, received(n)).unwrap();
        sim.advance(Duration::from_secs(1));
    }
    assert_eq!(named_messages(&sim, from), [], "ESP from the peer shows it alive");
    // Counters that do not move are silence again.
    let from = sim.log.len();
    for _ in 0..6 {
        let now = sim.now;
        sim.ep(ALICE_IP).handle_usage(now, sa, pair.spi_in, received(20)).unwrap();
        sim.advance(Duration::from_secs(1));
    }
    assert_eq!(named_messages(&sim, from), [msg("alice", INFO, REQUEST, &[]), msg("bob", INFO, RESPONSE, &[])]);
}

/// §2.8: the responder of a CHILD rekey starts sending on the new pair as soon as the peer sends on
/// it (the peer has it installed), not only when the peer's DELETE of the old pair comes; the
/// DELETE then changes nothing more.
#[test]
fn the_rekey_responder_sends_on_the_new_pair_once_the_peer_does() {
    let link = Link { latency: Duration::from_millis(300), ..Link::default() };
    let mut sim = null_cipher_pair(53, link, alice_psk(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (sa_b, old_b) = the_pair(&mut sim, BOB_IP);
    let now = sim.now;
    sim.ep(BOB_IP).rekey_child(now, sa_b, old_b.spi_in).unwrap();
    // Alice answers bob's rekey: she holds the new pair back.
    let answered = |s: &Sim| {
        has_event(s.events(ALICE_IP), |e| matches!(e, Event::ChildSaReady { child, .. } if child.replaces.is_some()))
    };
    assert!(sim.run_until(Duration::from_secs(2), answered));
    let new_a = sim
        .events(ALICE_IP)
        .iter()
        .find_map(|e| match e {
            Event::ChildSaReady { child, .. } if child.replaces.is_some() => Some((**child).clone()),
            _ => None,
        })
        .unwrap();
    assert!(!new_a.outbound, "held until the peer has it");
    // The first packet from bob on it, before his DELETE of the old pair is there.
    let sa_a = sim.ep(ALICE_IP).established()[0];
    let now = sim.now;
    sim.ep(ALICE_IP).handle_usage(now, sa_a, new_a.spi_in, received(1)).unwrap();
    assert_eq!(switched_to(sim.events(ALICE_IP)), Vec::<u32>::new(), "events not collected yet");
    sim.advance(Duration::from_millis(1));
    assert_eq!(switched_to(sim.events(ALICE_IP)), vec![new_a.spi_in]);
    let deleted_old = |s: &Sim| has_event(s.events(ALICE_IP), |e| matches!(e, Event::ChildSaDeleted { .. }));
    assert!(!deleted_old(&sim), "before the DELETE");
    sim.advance(Duration::from_secs(2));
    assert!(deleted_old(&sim));
    assert_eq!(switched_to(sim.events(ALICE_IP)), vec![new_a.spi_in], "once");
}

/// §2.8.3: the responder of a reauthentication holds each new pair back while its twin in the old
/// IKE SA carries the traffic, and sends on it right before the twin goes (or when the peer sends
/// on it first).
#[test]
fn a_reauthentications_responder_holds_new_pairs_until_the_old_ones_go() {
    for peer_sends_first in [false, true] {
        let mut sim = null_cipher_pair(54, Link::default(), alice_psk(), bob_psk());
        let first = initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), both_up));
        let (_, old_b) = the_pair(&mut sim, BOB_IP);
        let events_before = sim.events(BOB_IP).len();
        let now = sim.now;
        sim.ep(ALICE_IP).reauthenticate(now, first, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
        let made = |s: &Sim| s.events(BOB_IP)[events_before..].iter().any(|e| matches!(e, Event::ChildSaReady { .. }));
        assert!(sim.run_until(Duration::from_secs(2), made));
        let new_b = sim.events(BOB_IP)[events_before..]
            .iter()
            .find_map(|e| match e {
                Event::ChildSaReady { child, .. } => Some((**child).clone()),
                _ => None,
            })
            .unwrap();
        assert!(!new_b.outbound, "held while the old pair carries the traffic");
        if peer_sends_first {
            let sa = sim.ep(BOB_IP).established().into_iter().max().unwrap();
            let now = sim.now;
            sim.ep(BOB_IP).handle_usage(now, sa, new_b.spi_in, received(1)).unwrap();
        }
        sim.advance(Duration::from_secs(3));
        let ev = &sim.events(BOB_IP)[events_before..];
        let outbound =
            ev.iter().position(|e| matches!(e, Event::ChildSaOutbound { spi_in, .. } if *spi_in == new_b.spi_in));
        let gone = ev.iter().position(|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if *spi_in == old_b.spi_in));
        let (Some(outbound), Some(gone)) = (outbound, gone) else { panic!("{peer_sends_first}: {ev:?}") };
        if peer_sends_first {
            assert!(outbound < gone, "the peer's first packet started it, long before the old pair went");
        } else {
            assert_eq!(outbound + 1, gone, "right before the old pair goes");
        }
        assert_eq!(switched_to(ev), vec![new_b.spi_in], "{peer_sends_first}: once");
    }
}

/// RFC 3948 §2.3: behind a NAT the engine sends a one-octet keepalive to the peer's NAT-T port at
/// the configured interval; without a NAT, or without the setting, none.
#[test]
fn nat_keepalives_hold_the_mapping() {
    for (behind_nat, keepalive, expected) in [(true, Some(20), 2), (false, Some(20), 0), (true, None, 0)] {
        let mut sim = Sim::new(55, Link::default());
        let alice_ip = if behind_nat { "10.0.0.2" } else { ALICE_IP };
        if behind_nat {
            sim.nat = Some(Nat::new("10.0.0.2", "198.51.100.1"));
        }
        let config = oxswan_ike::EndpointConfig { keepalive: keepalive.map(Duration::from_secs), ..Default::default() };
        sim.add(alice_ip, config, vec![alice_psk()]);
        sim.add(BOB_IP, oxswan_ike::EndpointConfig::default(), vec![bob_psk()]);
        let now = sim.now;
        sim.ep(alice_ip).initiate(now, "to-bob", addr(alice_ip, 500), addr(BOB_IP, 500)).unwrap();
        assert!(sim.run_until(Duration::from_secs(5), |s| up(s.events(alice_ip)) && up(s.events(BOB_IP))));
        let from = sim.log.len();
        sim.advance(Duration::from_secs(45));
        let keepalives: Vec<_> = sim.log[from..].iter().filter(|(_, _, d)| d.as_slice() == [0xff]).collect();
        assert_eq!(keepalives.len(), expected, "behind a NAT {behind_nat}, keepalive {keepalive:?}");
        assert!(keepalives.iter().all(|(_, to, _)| *to == addr(BOB_IP, 4500)), "to the NAT-T port");
        assert_eq!(sim.log.len() - from, expected, "nothing else was sent");
    }
}

/// §2.8.3 with two CHILD SAs: the second one, which the reauthenticating peer makes with
/// CREATE_CHILD_SA after IKE_AUTH, is held back like the first until its twin goes.
#[test]
fn a_reauthentications_responder_holds_every_new_pair() {
    let (mut alice, mut bob) = (alice_psk(), bob_psk());
    alice.children.push(child_config("net2", &["10.1.9.0/24"], &["10.2.9.0/24"]));
    bob.children.push(child_config("net2", &["10.2.9.0/24"], &["10.1.9.0/24"]));
    let mut sim = null_cipher_pair(56, Link::default(), alice, bob);
    let first = initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        s.events(BOB_IP).iter().filter(|e| matches!(e, Event::ChildSaReady { .. })).count() == 2
    }));
    let sa = sim.ep(BOB_IP).established()[0];
    let old: Vec<u32> = sim.ep(BOB_IP).children(sa).iter().map(|c| c.spi_in).collect();
    let events_before = sim.events(BOB_IP).len();
    let now = sim.now;
    sim.ep(ALICE_IP).reauthenticate(now, first, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    sim.advance(Duration::from_secs(3));
    let ev = &sim.events(BOB_IP)[events_before..];
    let made: Vec<ChildSa> = ev
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaReady { child, .. } => Some((**child).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(made.len(), 2, "{ev:?}");
    assert!(made.iter().all(|c| !c.outbound), "both held: {made:?}");
    for c in &made {
        let outbound =
            ev.iter().position(|e| matches!(e, Event::ChildSaOutbound { spi_in, .. } if *spi_in == c.spi_in));
        let Some(outbound) = outbound else { panic!("{} never sends: {ev:?}", c.name) };
        assert!(
            matches!(&ev[outbound + 1], Event::ChildSaDeleted { spi_in, .. } if old.contains(spi_in)),
            "{} starts right before its twin goes: {ev:?}",
            c.name
        );
    }
}
