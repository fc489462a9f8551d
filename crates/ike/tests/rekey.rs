//! CHILD SA rekeying with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.8) on the simulated network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_crypto::proposal::parse_esp_proposals;
use oxswan_ike::child::ChildLifetime;
use oxswan_ike::{ChildSa, Event, PeerConfig};

fn rekeying(mut p: PeerConfig, secs: u64) -> PeerConfig {
    p.children[0].lifetime =
        ChildLifetime { rekey_time: Some(Duration::from_secs(secs)), rand_time: Duration::ZERO, life_time: None };
    p
}

fn with_esp(mut p: PeerConfig, esp: &str) -> PeerConfig {
    p.children[0].esp_proposals = parse_esp_proposals(esp).unwrap();
    p
}

fn ready(events: &[Event]) -> Vec<ChildSa> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaReady { child, .. } => Some((**child).clone()),
            _ => None,
        })
        .collect()
}

fn deleted(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

/// The two halves of a pair: same SPIs crosswise, same keys crosswise.
fn halves(a: &ChildSa, b: &ChildSa) -> bool {
    a.spi_in == b.spi_out
        && a.spi_out == b.spi_in
        && a.encr_in == b.encr_out
        && a.encr_out == b.encr_in
        && a.integ_in == b.integ_out
        && a.integ_out == b.integ_in
}

/// Whether, within `secs` seconds, both sides hold exactly one CHILD SA and they are the two halves
/// of one pair (an exchange may be in flight at the instant of asking).
fn settles_to_one_pair(sim: &mut Sim, secs: u64) -> bool {
    for _ in 0..=secs {
        let (a_sas, b_sas) = (sim.ep(ALICE_IP).established(), sim.ep(BOB_IP).established());
        if let (Some(x), Some(y)) = (a_sas.first(), b_sas.first()) {
            let a = sim.ep(ALICE_IP).children(*x).to_vec();
            let b = sim.ep(BOB_IP).children(*y).to_vec();
            if a.len() == 1 && b.len() == 1 && halves(&a[0], &b[0]) {
                return true;
            }
        }
        sim.advance(Duration::from_secs(1));
    }
    false
}

/// Each side's current children (from the endpoints), matched as pairs.
fn one_live_pair(sim: &mut Sim) -> (ChildSa, ChildSa) {
    let a_sa = sim.ep(ALICE_IP).established()[0];
    let b_sa = sim.ep(BOB_IP).established()[0];
    let a = sim.ep(ALICE_IP).children(a_sa).to_vec();
    let b = sim.ep(BOB_IP).children(b_sa).to_vec();
    assert_eq!((a.len(), b.len()), (1, 1), "exactly one CHILD SA on each side");
    assert!(halves(&a[0], &b[0]), "the two halves of one pair");
    (a[0].clone(), b[0].clone())
}

#[test]
fn child_sa_is_rekeyed_on_schedule_make_before_break() {
    // Only alice has a rekey_time: she initiates every rekey.
    let mut sim = pair(11, Link::default(), rekeying(alice_psk(), 10), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a0, b0) = one_live_pair(&mut sim);

    sim.advance(Duration::from_secs(11));
    /* CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } -->
    <-- CREATE_CHILD_SA { SA, Nr, TSi, TSr }
    INFORMATIONAL { D(old) } -->  <-- INFORMATIONAL { D(old) } */
    let (a1, b1) = one_live_pair(&mut sim);
    assert_ne!(a1.spi_in, a0.spi_in);
    assert_ne!(a1.encr_in, a0.encr_in, "new keys");
    assert_eq!(a1.replaces, Some(a0.spi_in));
    assert_eq!(b1.replaces, Some(b0.spi_in));
    assert_eq!((a1.local_ts.clone(), a1.remote_ts.clone()), (a0.local_ts.clone(), a0.remote_ts.clone()));

    // Make before break, in the order the data plane sees it.
    let a_ev = sim.events(ALICE_IP).to_vec();
    let b_ev = sim.events(BOB_IP).to_vec();
    let pos = |ev: &[Event], f: &dyn Fn(&Event) -> bool| ev.iter().position(f).unwrap();
    let a_new = pos(&a_ev, &|e| matches!(e, Event::ChildSaReady { child, .. } if child.spi_in == a1.spi_in));
    let a_old = pos(&a_ev, &|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if *spi_in == a0.spi_in));
    assert!(a_new < a_old, "the initiator installs the new pair before deleting the old");
    assert!(ready(&a_ev).last().unwrap().outbound, "and sends on it at once");
    let b_new = pos(&b_ev, &|e| matches!(e, Event::ChildSaReady { child, .. } if child.spi_in == b1.spi_in));
    let b_old = pos(&b_ev, &|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if *spi_in == b0.spi_in));
    let b_out = pos(&b_ev, &|e| matches!(e, Event::ChildSaOutbound { spi_in, .. } if *spi_in == b1.spi_in));
    assert!(!ready(&b_ev).last().unwrap().outbound, "the responder receives on the new pair first");
    assert!(b_new < b_out, "and sends on it once the initiator deletes the old one");
    assert_eq!(b_out + 1, b_old, "switching right before the old pair goes: no gap without an SA");

    // Every 10 s from then on: 6 more rekeys in a minute, one live pair each time.
    sim.advance(Duration::from_secs(60));
    let (a7, _) = one_live_pair(&mut sim);
    assert_eq!(ready(sim.events(ALICE_IP)).len(), 8, "the first CHILD SA and 7 rekeys");
    assert_eq!(deleted(sim.events(ALICE_IP)).len(), 7);
    assert_eq!(deleted(sim.events(BOB_IP)).len(), 7);
    assert_ne!(a7.spi_in, a1.spi_in);
}

#[test]
fn rekey_with_pfs_runs_a_new_key_exchange() {
    let esp = "aes256gcm16-x25519";
    let mut sim = pair(12, Link::default(), rekeying(with_esp(alice_psk(), esp), 10), with_esp(bob_psk(), esp));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a0, _) = one_live_pair(&mut sim);
    assert!(!a0.proposal.contains("x25519"), "the IKE_AUTH child has no key exchange of its own: {}", a0.proposal);
    sim.advance(Duration::from_secs(11));
    let (a1, _) = one_live_pair(&mut sim);
    assert!(a1.proposal.contains("x25519"), "the rekey negotiated PFS: {}", a1.proposal);
}

#[test]
fn invalid_ke_payload_makes_the_rekey_start_again_with_the_responders_group() {
    // Alice guesses X25519; Bob accepts only MODP-2048 and names it (§1.3).
    let alice = rekeying(with_esp(alice_psk(), "aes256gcm16-x25519,aes256gcm16-modp2048"), 10);
    let mut sim = pair(13, Link::default(), alice, with_esp(bob_psk(), "aes256gcm16-modp2048"));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    sim.advance(Duration::from_secs(11));
    let (a1, _) = one_live_pair(&mut sim);
    assert!(a1.proposal.contains("modp2048"), "{}", a1.proposal);
    assert!(a1.replaces.is_some());
}

#[test]
fn both_peers_with_a_rekey_time_keep_one_pair() {
    // Both rekey every 10 s with up to 3 s of jitter; whoever is first rekeys, the other's timer is
    // for a pair that no longer exists.
    let jitter = |mut p: PeerConfig| {
        p.children[0].lifetime = ChildLifetime {
            rekey_time: Some(Duration::from_secs(10)),
            rand_time: Duration::from_secs(3),
            life_time: None,
        };
        p
    };
    let mut sim = pair(14, Link::default(), jitter(alice_psk()), jitter(bob_psk()));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    for _ in 0..6 {
        sim.advance(Duration::from_secs(8));
        assert!(settles_to_one_pair(&mut sim, 2), "one pair on both sides");
    }
    let rekeys = ready(sim.events(ALICE_IP)).len() - 1;
    assert!((5..=9).contains(&rekeys), "{rekeys} rekeys in 60 s at 7-10 s each");
}

#[test]
fn rekeys_converge_on_a_lossy_link() {
    let (mut failures, mut rekeyed) = (Vec::new(), 0);
    for seed in 0..50 {
        let link = Link { loss: 0.1, duplicate: 0.1, ..Link::default() };
        let mut sim = pair(seed, link, rekeying(alice_psk(), 10), bob_psk());
        initiate(&mut sim);
        if !sim.run_until(Duration::from_secs(60), both_up) {
            continue;
        }
        sim.advance(Duration::from_secs(45));
        if ready(sim.events(ALICE_IP)).len() >= 4 {
            rekeyed += 1;
        }
        // An exchange may be in flight at any instant: within the next seconds (between two rekeys)
        // the sides must agree, each pair alice has being the other half of one bob has.
        let mut agreed = false;
        for _ in 0..15 {
            let a_sas = sim.ep(ALICE_IP).established();
            let b_sas = sim.ep(BOB_IP).established();
            if a_sas.is_empty() && b_sas.is_empty() {
                agreed = true; // both gave up on the peer: consistent too
                break;
            }
            if let (Some(x), Some(y)) = (a_sas.first(), b_sas.first()) {
                let a = sim.ep(ALICE_IP).children(*x).to_vec();
                let b = sim.ep(BOB_IP).children(*y).to_vec();
                if !a.is_empty()
                    && a.iter().all(|x| b.iter().any(|y| halves(x, y)))
                    && b.iter().all(|y| a.iter().any(|x| halves(x, y)))
                {
                    agreed = true;
                    break;
                }
            }
            sim.advance(Duration::from_secs(1));
        }
        if !agreed {
            failures.push(seed);
        }
    }
    assert!(failures.is_empty(), "seeds where the two sides disagree: {failures:?}");
    assert!(rekeyed >= 40, "only {rekeyed} of 50 runs rekeyed at least 3 times");
}

/// Alice (as configured) and bob, who rekeys the CHILD SA after 10.05 s, up on a link with 50 ms of
/// latency. Bob installs the first pair one latency before alice, so his timer runs that much longer
/// and a request of alice's at 10 s is on the wire together with his.
fn crossing(seed: u64, alice: PeerConfig) -> Sim {
    let mut bob = bob_psk();
    bob.children[0].lifetime =
        ChildLifetime { rekey_time: Some(Duration::from_millis(10_050)), rand_time: Duration::ZERO, life_time: None };
    up_over_50ms(seed, alice, bob)
}

/// Alice and bob on a link with 50 ms latency, the first IKE SA and pair up.
fn up_over_50ms(seed: u64, alice: PeerConfig, bob: PeerConfig) -> Sim {
    let link = Link { latency: Duration::from_millis(50), ..Link::default() };
    let mut sim = pair(seed, link, alice, bob);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    sim
}

/// §2.8.1: both peers rekey the same pair at the same moment. Both exchanges complete; the pair made
/// by the exchange with the lowest nonce is deleted by its initiator, the old pair by the other
/// initiator, and one pair remains, the same on both sides. Over many seeds, as the nonces fall.
#[test]
fn simultaneous_rekeys_of_one_pair_leave_one_pair() {
    let mut collided = 0;
    for seed in 0..20 {
        let mut sim = crossing(seed, rekeying(alice_psk(), 10));
        sim.advance(Duration::from_secs(9));
        sim.advance(Duration::from_secs(2));
        assert!(settles_to_one_pair(&mut sim, 5), "seed {seed}: one pair after the collision");
        let a_ready = ready(sim.events(ALICE_IP)).len();
        let b_ready = ready(sim.events(BOB_IP)).len();
        if a_ready == 3 && b_ready == 3 {
            collided += 1;
        }
    }
    assert!(collided >= 10, "the rekeys collided in only {collided} of 20 runs");
}

/// RFC 7296 §1.3.2, §2.18: alice rekeys the IKE SA every 10 s. Each time both sides move to a new
/// IKE SA with new SPIs and keys (a liveness check over it is answered), the CHILD SA moves along
/// unchanged, and the old IKE SA ends as `Rekeyed` without taking the CHILD SA with it.
#[test]
fn ike_sa_is_rekeyed_and_keeps_its_child_sas() {
    let mut alice = alice_psk();
    alice.ike_lifetime.rekey_time = Some(Duration::from_secs(10));
    let mut sim = pair(21, Link::default(), alice, bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a0, _) = one_live_pair(&mut sim);
    let first = sim.ep(ALICE_IP).established();

    sim.advance(Duration::from_secs(11));
    /* CREATE_CHILD_SA { SA(IKE, new SPIi), Ni, KEi } -->  <-- CREATE_CHILD_SA { SA(IKE, new SPIr), Nr, KEr }
    INFORMATIONAL { D(IKE) } on the old SA -->  <-- INFORMATIONAL { } */
    let (a_sas, b_sas) = (sim.ep(ALICE_IP).established(), sim.ep(BOB_IP).established());
    assert_eq!((a_sas.len(), b_sas.len()), (1, 1), "one IKE SA on each side");
    assert_ne!(a_sas, first, "a new one");
    let (a_info, b_info) = (info(&mut sim, ALICE_IP), info(&mut sim, BOB_IP));
    assert_eq!((a_info.spi_i, a_info.spi_r), (b_info.spi_i, b_info.spi_r), "the same new SPIs");
    assert!(a_info.initiator && !b_info.initiator, "the rekey's initiator is the new SA's initiator");
    let (a1, _) = one_live_pair(&mut sim);
    assert_eq!(a1, a0, "the CHILD SA moved unchanged");
    for ip in [ALICE_IP, BOB_IP] {
        let ev = sim.events(ip);
        assert!(has_event(ev, |e| matches!(e, Event::IkeSaRekeyed { .. })), "{ip}");
        assert!(has_event(ev, |e| matches!(e, Event::IkeSaDown { reason: oxswan_ike::DownReason::Rekeyed, .. })));
        assert!(deleted(ev).is_empty(), "{ip}: no CHILD SA went with the old IKE SA");
    }
    // The new keys work: a liveness check over the new SA is answered.
    let now = sim.now;
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).liveness(now, sa).unwrap();
    let answered =
        |s: &Sim| has_event(s.events(ALICE_IP), |e| matches!(e, Event::LivenessConfirmed { sa: x } if *x == sa));
    assert!(sim.run_until(Duration::from_secs(2), answered), "liveness over the new IKE SA");

    // IKE and CHILD rekeys interleave for a minute: 5 more IKE rekeys, CHILD rekeys on whichever IKE
    // SA is current, and still one IKE SA and one pair.
    let mut sim2 = {
        let mut alice = rekeying(alice_psk(), 7);
        alice.ike_lifetime.rekey_time = Some(Duration::from_secs(10));
        pair(22, Link::default(), alice, bob_psk())
    };
    initiate(&mut sim2);
    assert!(sim2.run_until(Duration::from_secs(5), both_up));
    sim2.advance(Duration::from_secs(60));
    assert!(settles_to_one_pair(&mut sim2, 5));
    let ike_rekeys = sim2.events(ALICE_IP).iter().filter(|e| matches!(e, Event::IkeSaRekeyed { .. })).count();
    let child_rekeys = ready(sim2.events(ALICE_IP)).len() - 1;
    assert!(ike_rekeys >= 5, "{ike_rekeys} IKE rekeys");
    assert!(child_rekeys >= 7, "{child_rekeys} CHILD rekeys");
    assert_eq!(sim2.ep(BOB_IP).established().len(), 1);
}

fn ike_rekeying(mut p: PeerConfig, millis: u64) -> PeerConfig {
    p.ike_lifetime = oxswan_ike::IkeLifetime { rekey_time: Some(Duration::from_millis(millis)), ..Default::default() };
    p
}

/// Both sides rekey the IKE SA every 10 s, timed to cross; the SA up, its pair, and its info.
fn ike_crossing(seed: u64) -> (Sim, (ChildSa, ChildSa), oxswan_ike::IkeSaInfo) {
    // Bob's IKE SA is up one latency before alice's: his timer runs that much longer.
    let mut sim = up_over_50ms(seed, ike_rekeying(alice_psk(), 10_000), ike_rekeying(bob_psk(), 10_050));
    let pair = one_live_pair(&mut sim);
    let first = info(&mut sim, ALICE_IP);
    (sim, pair, first)
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// Whether both sides hold exactly one IKE SA, the same one (same SPIs).
fn one_ike_sa(sim: &mut Sim) -> bool {
    let (a, b) = (sim.ep(ALICE_IP).established(), sim.ep(BOB_IP).established());
    if a.len() != 1 || b.len() != 1 {
        return false;
    }
    let (x, y) = (info(sim, ALICE_IP), info(sim, BOB_IP));
    (x.spi_i, x.spi_r) == (y.spi_i, y.spi_r) && x.initiator != y.initiator
}

/// §2.8.2: both peers rekey the IKE SA at the same moment. Both exchanges complete, so each side
/// briefly holds two new IKE SAs; the one made by the exchange with the lowest nonce is deleted by its
/// initiator, the old one by the other initiator, and the CHILD SA ends on the survivor on both sides,
/// unchanged, without a CHILD SA lost. Over many seeds, as the nonces fall either way.
#[test]
fn simultaneous_ike_rekeys_leave_one_ike_sa_with_the_children() {
    let (mut collided, mut ours_won, mut theirs_won) = (0, 0, 0);
    for seed in 0..24 {
        let (mut sim, (a0, b0), first) = ike_crossing(seed);
        sim.advance(Duration::from_secs(11));
        assert!(one_ike_sa(&mut sim), "seed {seed}: one IKE SA, the same on both sides");
        let now = info(&mut sim, ALICE_IP);
        assert_ne!(now.spi_i, first.spi_i, "seed {seed}: a new IKE SA");
        let (a1, b1) = one_live_pair(&mut sim);
        assert_eq!((a1, b1), (a0, b0), "seed {seed}: the CHILD SA moved along unchanged");
        for ip in [ALICE_IP, BOB_IP] {
            assert!(deleted(sim.events(ip)).is_empty(), "seed {seed} {ip}: no CHILD SA lost");
            assert!(
                !has_event(sim.events(ip), |e| matches!(
                    e,
                    Event::IkeSaDown { reason, .. } if *reason != oxswan_ike::DownReason::Rekeyed
                )),
                "seed {seed} {ip}: {:?}",
                sim.events(ip)
                    .iter()
                    .filter(|e| matches!(e, Event::IkeSaDown { .. } | Event::IkeSaRekeyed { .. }))
                    .collect::<Vec<_>>()
            );
        }
        // Three IKE SAs ended as `Rekeyed` on a side when both new ones were made: the old one and
        // the redundant one.
        let ended = count(sim.events(ALICE_IP), |e| {
            matches!(e, Event::IkeSaDown { reason: oxswan_ike::DownReason::Rekeyed, .. })
        });
        if ended == 2 {
            collided += 1;
            if now.initiator {
                ours_won += 1;
            } else {
                theirs_won += 1;
            }
        }
        // The survivor works: a liveness check over it is answered.
        let t = sim.now;
        let sa = sim.ep(BOB_IP).established()[0];
        sim.ep(BOB_IP).liveness(t, sa).unwrap();
        let answered =
            |s: &Sim| has_event(s.events(BOB_IP), |e| matches!(e, Event::LivenessConfirmed { sa: x } if *x == sa));
        assert!(sim.run_until(Duration::from_secs(2), answered), "seed {seed}: liveness over the survivor");
    }
    println!("{collided} of 24 collided: alice's SA survived {ours_won} times, bob's {theirs_won}");
    assert!(collided >= 12, "the IKE rekeys collided in only {collided} of 24 runs");
    assert!(ours_won > 0 && theirs_won > 0, "both outcomes of the nonce rule: {ours_won} / {theirs_won}");
}

/// §2.8.2 with a loss: the IKE SA rekeys cross, and alice's answer to bob's request is lost. When
/// alice's own SA wins she deletes the old SA, and bob, who never got her answer, drops his exchange:
/// the SA alice made for it is redundant and nobody will delete it for her. She ends it herself
/// after a grace period; whichever SA wins, both sides end with one IKE SA and the CHILD SA.
#[test]
fn simultaneous_ike_rekeys_with_a_lost_answer_leave_one_ike_sa() {
    let (mut ours_won, mut theirs_won) = (0, 0);
    for seed in 0..16 {
        let (mut sim, (a0, b0), first) = ike_crossing(seed);
        let mut dropped = false;
        // Alice is the original initiator: her messages carry the Initiator flag.
        sim.drop_filter = Some(Box::new(move |_, d| {
            let Ok(h) = oxswan_wire::Header::parse(d) else { return false };
            let hit = !dropped
                && h.exchange_type == oxswan_wire::ExchangeType::CREATE_CHILD_SA
                && h.flags.response()
                && h.flags.initiator();
            dropped |= hit;
            hit
        }));
        sim.advance(Duration::from_secs(11));
        sim.advance(Duration::from_secs(30));
        assert!(one_ike_sa(&mut sim), "seed {seed}: one IKE SA, the same on both sides");
        let now = info(&mut sim, ALICE_IP);
        assert_ne!(now.spi_i, first.spi_i, "seed {seed}: a new IKE SA");
        assert_eq!(one_live_pair(&mut sim), (a0, b0), "seed {seed}: the CHILD SA moved along unchanged");
        for ip in [ALICE_IP, BOB_IP] {
            assert!(deleted(sim.events(ip)).is_empty(), "seed {seed} {ip}: no CHILD SA lost");
            let other_down =
                |e: &Event| matches!(e, Event::IkeSaDown { reason, .. } if *reason != oxswan_ike::DownReason::Rekeyed);
            assert!(!has_event(sim.events(ip), other_down), "seed {seed} {ip}: only rekeyed SAs ended");
        }
        if now.initiator { ours_won += 1 } else { theirs_won += 1 }
    }
    println!("alice's SA survived {ours_won} times, bob's {theirs_won}");
    assert!(ours_won > 0 && theirs_won > 0, "both outcomes of the nonce rule: {ours_won} / {theirs_won}");
}

/// §2.25: alice rekeys the IKE SA while bob rekeys the CHILD SA. Whichever request is refused with
/// TEMPORARY_FAILURE is retried; in the end one IKE SA and one pair, the IKE SA new.
#[test]
fn ike_rekey_colliding_with_a_child_rekey_converges() {
    let mut ike_rekeyed = 0;
    for seed in 0..12 {
        let mut sim = crossing(seed, ike_rekeying(alice_psk(), 10_000));
        let first = info(&mut sim, ALICE_IP);
        sim.advance(Duration::from_secs(15));
        assert!(settles_to_one_pair(&mut sim, 5), "seed {seed}: one pair");
        assert!(one_ike_sa(&mut sim), "seed {seed}: one IKE SA");
        if info(&mut sim, ALICE_IP).spi_i != first.spi_i {
            ike_rekeyed += 1;
        }
        assert!(ready(sim.events(ALICE_IP)).len() >= 2, "seed {seed}: the CHILD SA was rekeyed");
        for ip in [ALICE_IP, BOB_IP] {
            let downs = count(
                sim.events(ip),
                |e| matches!(e, Event::IkeSaDown { reason, .. } if *reason != oxswan_ike::DownReason::Rekeyed),
            );
            assert_eq!(downs, 0, "seed {seed} {ip}: no IKE SA went down otherwise");
        }
    }
    assert_eq!(ike_rekeyed, 12, "the IKE SA was rekeyed in every run");
}

/// §2.25.1: alice rekeys the CHILD SA while bob deletes it. Both sides end without it and without a
/// stray new pair; the IKE SA stays up.
#[test]
fn child_rekey_colliding_with_its_delete_leaves_nothing_behind() {
    for seed in 0..12 {
        let mut sim = up_over_50ms(seed, rekeying(alice_psk(), 10), bob_psk());
        let (_, b) = one_live_pair(&mut sim);
        // Bob's DELETE leaves as alice's timer fires: the two requests cross.
        sim.advance(Duration::from_millis(9_980));
        let (t, sa) = (sim.now, sim.ep(BOB_IP).established()[0]);
        sim.ep(BOB_IP).delete_child(t, sa, b.spi_in).unwrap();
        sim.advance(Duration::from_secs(6));
        let (a_sa, b_sa) = (sim.ep(ALICE_IP).established(), sim.ep(BOB_IP).established());
        assert_eq!((a_sa.len(), b_sa.len()), (1, 1), "seed {seed}: the IKE SA stays");
        let a_kids = sim.ep(ALICE_IP).children(a_sa[0]).len();
        let b_kids = sim.ep(BOB_IP).children(b_sa[0]).len();
        assert_eq!((a_kids, b_kids), (0, 0), "seed {seed}: no CHILD SA left on either side");
        for ip in [ALICE_IP, BOB_IP] {
            let made = ready(sim.events(ip)).len();
            let gone = deleted(sim.events(ip)).len();
            assert_eq!(made, gone, "seed {seed} {ip}: every CHILD SA made was deleted");
        }
    }
}

/// Hard lifetimes: a CHILD SA without a rekey time is deleted at its `life_time`; an IKE SA whose
/// rekey cannot happen (the peer went silent) is deleted `over_time` after the rekey was due, well
/// before the retransmissions would give up. The rekey times fall within `rand_time`.
#[test]
fn lifetimes_expire_and_rekeys_fall_within_rand_time() {
    let mut alice = alice_psk();
    alice.children[0].lifetime =
        ChildLifetime { rekey_time: None, rand_time: Duration::ZERO, life_time: Some(Duration::from_secs(5)) };
    let mut sim = pair(5, Link::default(), alice, bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(2), both_up));
    let up_at = sim.now;
    sim.advance(Duration::from_millis(4_800));
    assert!(deleted(sim.events(ALICE_IP)).is_empty(), "not before its life_time");
    sim.advance(Duration::from_millis(400));
    assert_eq!(deleted(sim.events(ALICE_IP)).len(), 1, "deleted at its life_time");
    assert_eq!(deleted(sim.events(BOB_IP)).len(), 1, "with a DELETE the peer acted on");
    assert!(sim.now.duration_since(up_at) < Duration::from_secs(6));

    let mut alice = alice_psk();
    alice.ike_lifetime = oxswan_ike::IkeLifetime {
        rekey_time: Some(Duration::from_secs(10)),
        over_time: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let mut sim = pair(6, Link::default(), alice, bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(2), both_up));
    sim.advance(Duration::from_secs(5));
    sim.link.loss = 1.0;
    sim.advance(Duration::from_secs(7));
    assert_eq!(down(sim.events(ALICE_IP)), None, "not before rekey_time + over_time");
    sim.advance(Duration::from_secs(2));
    assert_eq!(down(sim.events(ALICE_IP)), Some(oxswan_ike::DownReason::Expired));

    // rand_time: the rekey comes between rekey_time - rand_time and rekey_time, spread out.
    let mut at = Vec::new();
    for seed in 0..16 {
        let mut alice = alice_psk();
        alice.children[0].lifetime = ChildLifetime {
            rekey_time: Some(Duration::from_secs(20)),
            rand_time: Duration::from_secs(5),
            life_time: None,
        };
        let mut sim = pair(100 + seed, Link::default(), alice, bob_psk());
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(2), both_up));
        let t0 = sim.now;
        let rekeyed = |s: &Sim| ready(s.events(ALICE_IP)).len() >= 2;
        assert!(sim.run_until(Duration::from_secs(25), rekeyed));
        at.push(sim.now.duration_since(t0).as_secs_f64());
    }
    let (lo, hi) = at.iter().fold((f64::MAX, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
    println!("CHILD rekeys after {lo:.2}..{hi:.2} s (rekey_time 20 s, rand_time 5 s)");
    assert!(lo >= 14.9 && hi <= 20.1, "within [15, 20]: {at:?}");
    assert!(hi - lo > 1.0, "spread by the jitter: {at:?}");
}

/// A second child (another pair of subnets) on both sides, with PFS.
fn two_children(mut alice: PeerConfig, mut bob: PeerConfig) -> (PeerConfig, PeerConfig) {
    let mut a2 = child_config("net2", &["10.11.0.0/16"], &["10.12.0.0/16"]);
    a2.esp_proposals = parse_esp_proposals("aes128gcm16-x25519").unwrap();
    let mut b2 = child_config("net2", &["10.12.0.0/16"], &["10.11.0.0/16"]);
    b2.esp_proposals = parse_esp_proposals("aes128gcm16-x25519").unwrap();
    alice.children.push(a2);
    bob.children.push(b2);
    (alice, bob)
}

/// Each side's children of its single IKE SA, as pairs matched by SPI: all must pair up.
fn matched_pairs(sim: &mut Sim) -> Vec<(ChildSa, ChildSa)> {
    let a_sa = sim.ep(ALICE_IP).established()[0];
    let b_sa = sim.ep(BOB_IP).established()[0];
    let a = sim.ep(ALICE_IP).children(a_sa).to_vec();
    let b = sim.ep(BOB_IP).children(b_sa).to_vec();
    assert_eq!(a.len(), b.len(), "as many CHILD SAs on each side");
    a.into_iter()
        .map(|x| {
            let y = b.iter().find(|y| y.spi_in == x.spi_out).cloned().expect("the other half");
            assert!(halves(&x, &y), "the two halves of one pair");
            (x, y)
        })
        .collect()
}

/// §1.3.1: a connection with two children: the first rides on IKE_AUTH, the second comes with a
/// CREATE_CHILD_SA of its own, with a new key exchange (its ESP proposal names x25519). Both are
/// rekeyed on schedule and stay two.
#[test]
fn a_second_child_is_created_with_create_child_sa_and_rekeyed() {
    let (alice, bob) = two_children(rekeying(alice_psk(), 10), bob_psk());
    let mut alice = alice;
    alice.children[1].lifetime =
        ChildLifetime { rekey_time: Some(Duration::from_secs(7)), rand_time: Duration::ZERO, life_time: None };
    let mut sim = pair(31, Link::default(), alice, bob);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(3), both_up));
    sim.advance(Duration::from_secs(1));
    let pairs = matched_pairs(&mut sim);
    let names: Vec<&str> = pairs.iter().map(|(a, _)| a.name.as_str()).collect();
    assert_eq!(names, ["net", "net2"]);
    let (net2, _) = &pairs[1];
    assert_eq!(net2.local_ts, vec![ts("10.11.0.0/16")]);
    assert_eq!(net2.remote_ts, vec![ts("10.12.0.0/16")]);
    assert!(net2.encr_in != pairs[0].0.encr_in, "keys of its own");
    // The exchange that made it: CREATE_CHILD_SA with a KE payload (PFS).
    let creates =
        sim.log.iter().filter(|(_, _, d)| describe(d).0 == oxswan_wire::ExchangeType::CREATE_CHILD_SA).count();
    assert_eq!(creates, 2, "one request and its answer");

    sim.advance(Duration::from_secs(30));
    let pairs = matched_pairs(&mut sim);
    assert_eq!(pairs.len(), 2, "still two pairs after the rekeys");
    let net_rekeys = ready(sim.events(ALICE_IP)).iter().filter(|c| c.name == "net").count() - 1;
    let net2_rekeys = ready(sim.events(ALICE_IP)).iter().filter(|c| c.name == "net2").count() - 1;
    assert!(net_rekeys >= 3 && net2_rekeys >= 4, "rekeys: net {net_rekeys}, net2 {net2_rekeys}");
}

/// `reauth_time`: the IKE SA is replaced by a new one from IKE_SA_INIT on, with both CHILD SAs made
/// again, before the old one is deleted (make before break); the peer sees no INITIAL_CONTACT, so
/// it keeps the old SA until then.
#[test]
fn reauthentication_replaces_the_ike_sa_and_its_children_make_before_break() {
    let (mut alice, bob) = two_children(alice_psk(), bob_psk());
    alice.ike_lifetime = oxswan_ike::IkeLifetime {
        reauth_time: Some(Duration::from_secs(10)),
        over_time: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let mut sim = pair(41, Link::default(), alice, bob);
    let first = initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(3), both_up));
    sim.advance(Duration::from_secs(1));
    let before: Vec<u32> = matched_pairs(&mut sim).iter().map(|(a, _)| a.spi_in).collect();
    let due = |s: &Sim| has_event(s.events(ALICE_IP), |e| matches!(e, Event::ReauthDue { .. }));
    assert!(sim.run_until(Duration::from_secs(11), due));
    let now = sim.now;
    let new = sim.ep(ALICE_IP).reauthenticate(now, first, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    // While the new SA is being made, the old one and its CHILD SAs stay on both sides.
    assert_eq!(sim.ep(ALICE_IP).children(first).len(), 2);
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.ep(ALICE_IP).established(), vec![new], "only the new IKE SA");
    assert_eq!(sim.ep(BOB_IP).established().len(), 1, "bob too");
    let after = matched_pairs(&mut sim);
    assert_eq!(after.len(), 2, "both CHILD SAs made again");
    assert!(after.iter().all(|(a, _)| !before.contains(&a.spi_in)), "new ones");
    assert_eq!(down(sim.events(ALICE_IP)), Some(oxswan_ike::DownReason::Reauthenticated));
    // The new CHILD SAs were ready before the old ones were deleted.
    let ev = sim.events(ALICE_IP);
    let last_ready = ev.iter().rposition(|e| matches!(e, Event::ChildSaReady { .. })).unwrap();
    let first_delete = ev.iter().position(|e| matches!(e, Event::ChildSaDeleted { .. })).unwrap();
    assert!(last_ready < first_delete, "make before break");
    let auth_requests = sim
        .log
        .iter()
        .filter(|(_, _, d)| describe(d).0 == oxswan_wire::ExchangeType::IKE_AUTH && !describe(d).1)
        .count();
    assert_eq!(auth_requests, 2, "two IKE_AUTH requests: the first and the reauthentication");
    assert!(
        !has_event(sim.events(BOB_IP), |e| matches!(
            e,
            Event::IkeSaDown { reason: oxswan_ike::DownReason::PeerRestarted, .. }
        )),
        "the reauthentication did not look like a restart to bob"
    );
}

/// §2.25.2: alice rekeys the IKE SA while bob deletes it. The delete wins on both sides: no IKE SA
/// and no CHILD SA remain, and no new IKE SA is left behind by the rekey.
#[test]
fn ike_rekey_colliding_with_its_delete_leaves_nothing_behind() {
    for seed in 0..12 {
        let mut sim = up_over_50ms(seed, ike_rekeying(alice_psk(), 10_000), bob_psk());
        sim.advance(Duration::from_millis(9_980));
        let (t, sa) = (sim.now, sim.ep(BOB_IP).established()[0]);
        sim.ep(BOB_IP).delete_ike(t, sa).unwrap();
        sim.advance(Duration::from_secs(40));
        let crossed = sim.log.iter().any(|(f, _, d)| {
            f.ip().to_string() == ALICE_IP && describe(d) == (oxswan_wire::ExchangeType::CREATE_CHILD_SA, false, 2)
        });
        assert!(crossed, "seed {seed}: alice's rekey request was on the wire with bob's DELETE");
        for ip in [ALICE_IP, BOB_IP] {
            assert!(sim.ep(ip).established().is_empty(), "seed {seed} {ip}: no IKE SA left");
            assert_eq!(sim.ep(ip).sa_count(), 0, "seed {seed} {ip}: nothing half-made either");
            let made = ready(sim.events(ip)).len();
            assert_eq!(made, deleted(sim.events(ip)).len(), "seed {seed} {ip}: every CHILD SA deleted");
        }
    }
}
