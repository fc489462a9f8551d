//! The simulation harness itself: a seed replays a run byte for byte, nonces can be steered, and the
//! payloads inside SK can be read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use oxswan_crypto::proposal::parse_esp_proposals;
use oxswan_ike::child::ChildLifetime;
use oxswan_ike::{Event, IkeLifetime, PeerConfig};
use oxswan_wire::ExchangeType;

/// Everything that went on the wire, in order: when, from, to, the octets.
type Wire = Vec<(Duration, std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)>;

fn wire(sim: &Sim) -> Wire {
    sim.log.iter().zip(&sim.log_at).map(|((f, t, d), at)| (*at, *f, *t, d.clone())).collect()
}

/// A run that draws on every kind of randomness the engine has: SPIs, nonces, X25519 key exchanges
/// (IKE_SA_INIT and PFS rekeys), IVs, rekey jitter on both sides, on a link that loses, duplicates and
/// reorders (the network's generator). Two minutes of CHILD and IKE rekeys, a liveness check, a delete.
fn eventful_run(seed: u64) -> (Wire, Sim) {
    let rekeying = |mut p: PeerConfig, child_secs: u64| {
        p.children[0].esp_proposals = parse_esp_proposals("aes256gcm16-x25519").unwrap();
        p.children[0].lifetime = ChildLifetime {
            rekey_time: Some(Duration::from_secs(child_secs)),
            rand_time: Duration::from_secs(3),
            life_time: None,
        };
        p.ike_lifetime = IkeLifetime {
            rekey_time: Some(Duration::from_secs(35)),
            rand_time: Duration::from_secs(5),
            ..Default::default()
        };
        p
    };
    let link = Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(15),
        loss: 0.05,
        duplicate: 0.05,
        ..Link::default()
    };
    let mut sim = pair(seed, link, rekeying(alice_psk(), 10), rekeying(bob_psk(), 13));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(60), both_up), "seed {seed}: up");
    sim.advance(Duration::from_secs(120));
    let sa = sim.ep(ALICE_IP).established()[0];
    let now = sim.now;
    sim.ep(ALICE_IP).liveness(now, sa).unwrap();
    sim.advance(Duration::from_secs(5));
    let sa = sim.ep(BOB_IP).established()[0];
    let now = sim.now;
    sim.ep(BOB_IP).delete_ike(now, sa).unwrap();
    sim.run();
    (wire(&sim), sim)
}

/// A seed replays its run exactly: the same datagrams, octet for octet, at the same times, between the
/// same addresses; another seed gives other octets from the very first message on (its SPI and nonce
/// and KE data follow the seed). This fails if any endpoint draws from the operating system's
/// generator, as the real provider does.
#[test]
fn a_seed_replays_the_run_octet_for_octet() {
    let (first, sim) = eventful_run(7);
    let (again, _) = eventful_run(7);
    let (other, _) = eventful_run(8);

    // The run did what it is meant to exercise.
    let count = |e: ExchangeType| sim.log.iter().filter(|(_, _, d)| describe(d).0 == e).count();
    assert!(count(ExchangeType::CREATE_CHILD_SA) >= 20, "rekeys: {}", count(ExchangeType::CREATE_CHILD_SA));
    assert!(count(ExchangeType::INFORMATIONAL) >= 6, "deletes and the liveness check");
    assert!(has_event(sim.events(ALICE_IP), |e| matches!(e, Event::IkeSaRekeyed { .. })), "IKE rekeys");
    assert!(sim.lost > 0, "the link lost datagrams");

    assert_eq!(first.len(), again.len(), "as many datagrams");
    for (i, (a, b)) in first.iter().zip(&again).enumerate() {
        assert_eq!(a, b, "datagram {i} differs between two runs of seed 7");
    }
    assert_ne!(first[0].3, other[0].3, "seed 8's first IKE_SA_INIT differs from seed 7's");
    assert_ne!(first, other);
}

/// Each endpoint has a stream of its own: alice's and bob's differ, and a host that restarts at the
/// same address draws anew instead of repeating its SPIs and nonces.
#[test]
fn endpoints_and_restarts_draw_from_streams_of_their_own() {
    let alice: IpAddr = ALICE_IP.parse().unwrap();
    let bob: IpAddr = BOB_IP.parse().unwrap();
    assert_ne!(endpoint_seed(1, alice, 0), endpoint_seed(1, bob, 0));
    assert_ne!(endpoint_seed(1, alice, 0), endpoint_seed(1, alice, 1));
    assert_ne!(endpoint_seed(1, alice, 0), endpoint_seed(2, alice, 0));

    let mut sim = pair(3, Link::default(), alice_psk(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a, b) = (sim.nonces_drawn(ALICE_IP), sim.nonces_drawn(BOB_IP));
    // Each drew its cookie secret (at creation) and then its nonce, which went on the wire.
    assert_eq!((a.len(), b.len()), (2, 2));
    assert_eq!(nonce_of(&sim.log[0].2).as_ref(), Some(&a[1]));
    assert_eq!(nonce_of(&sim.log[1].2).as_ref(), Some(&b[1]));
    assert_ne!(a, b);
    let first_init = sim.log[0].2.clone();
    // Alice restarts: a new endpoint at her address.
    let before = sim.log.len();
    sim.add(ALICE_IP, oxswan_ike::EndpointConfig::default(), vec![alice_psk()]);
    initiate(&mut sim);
    sim.advance(Duration::from_millis(1));
    let again = &sim.log[before].2;
    assert_eq!(describe(again), (ExchangeType::IKE_SA_INIT, false, 0));
    assert_ne!(again[..8], first_init[..8], "a new IKE SPI");
    assert_ne!(nonce_of(again), nonce_of(&first_init), "a new nonce");
}

/// Steering sets the first octet of the endpoint's next nonces and nothing else: the queued octets
/// one nonce each, then the standing one. The rest of each nonce, and every other draw, is what the
/// same seed gives unsteered.
#[test]
fn steering_sets_the_first_octet_of_the_next_nonces_only() {
    let run = |steer: bool| {
        let mut sim = null_cipher_pair(5, Link::default(), alice_psk(), bob_psk());
        if steer {
            sim.steer_nonces(ALICE_IP, &[0x11, 0x22]);
            sim.steer_all_nonces(ALICE_IP, Some(0x33));
        }
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), both_up));
        for _ in 0..2 {
            let (now, sa) = (sim.now, sim.ep(ALICE_IP).established()[0]);
            let spi = sim.ep(ALICE_IP).children(sa)[0].spi_in;
            sim.ep(ALICE_IP).rekey_child(now, sa, spi).unwrap();
            sim.advance(Duration::from_secs(1));
        }
        let (now, sa) = (sim.now, sim.ep(ALICE_IP).established()[0]);
        sim.ep(ALICE_IP).rekey_ike(now, sa).unwrap();
        sim.advance(Duration::from_secs(1));
        sim
    };
    let (plain, steered) = (run(false), run(true));
    let (a, b) = (nonces_of(&plain, ALICE_IP), nonces_of(&steered, ALICE_IP));
    assert_eq!(b.len(), 4, "IKE_SA_INIT, two CHILD rekeys, an IKE rekey");
    assert_eq!(b.iter().map(|n| n[0]).collect::<Vec<_>>(), [0x11, 0x22, 0x33, 0x33]);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[1..], y[1..], "only the first octet changes");
    }
    // What went on the wire is the same otherwise: same lengths, same SPIs in the SA payloads.
    assert_eq!(plain.log.len(), steered.log.len());
    let spis = |sim: &Sim| sim.log.iter().map(|(_, _, d)| proposal_spi(d)).collect::<Vec<_>>();
    assert_eq!(spis(&plain), spis(&steered));
    // The draws as handed out: the cookie secret drawn at creation, before the steering, then the
    // four nonces.
    let drawn = steered.nonces_drawn(ALICE_IP);
    assert_eq!(drawn[1..], b[..]);
    // Bob was not steered.
    assert_eq!(nonces_of(&plain, BOB_IP), nonces_of(&steered, BOB_IP));
}

fn nonces_of(sim: &Sim, ip: &str) -> Vec<Vec<u8>> {
    sim.log.iter().filter(|(f, _, _)| f.ip().to_string() == ip).filter_map(|(_, _, d)| nonce_of(d)).collect()
}

/// The payload reader sees inside SK only for the null cipher: a message sealed with the real cipher
/// is refused, not misread.
#[test]
fn payloads_read_inside_sk_with_the_null_cipher_only() {
    let mut readable = null_cipher_pair(6, Link::default(), alice_psk(), bob_psk());
    initiate(&mut readable);
    assert!(readable.run_until(Duration::from_secs(5), both_up));
    assert_eq!(payloads(&readable.log[3].2), ["IDr", "AUTH", "SA", "TSi", "TSr"]);
    use oxswan_wire::PayloadType as P;
    assert_eq!(payload_types(&readable.log[3].2), [P::IDR, P::AUTH, P::SA, P::TSI, P::TSR]);
    let mut sealed = pair(6, Link::default(), alice_psk(), bob_psk());
    initiate(&mut sealed);
    assert!(sealed.run_until(Duration::from_secs(5), both_up));
    // IKE_SA_INIT is not encrypted: readable either way.
    assert_eq!(payloads(&sealed.log[1].2), payloads(&readable.log[1].2));
    let auth = sealed.log[3].2.clone();
    assert!(std::panic::catch_unwind(|| payloads(&auth)).is_err(), "a real ICV is not all zeros");
}
