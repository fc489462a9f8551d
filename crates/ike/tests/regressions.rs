//! Bugs found by reading the engine, each pinned by a test that failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use oxswan_crypto::CryptoProvider;
use oxswan_crypto::provider::SecureRandom;
use oxswan_crypto::test_provider::{DeterministicRandom, TestProvider};
use oxswan_ike::child::ChildLifetime;
use oxswan_ike::{ChildSa, Endpoint, EndpointConfig, Event, IkeLifetime, PeerConfig};
use oxswan_wire::{ExchangeType, Header, Payload, PayloadType, emit_chain, parse_chain};

/// Two endpoints joined by a lossless wire with no delay, where a test may rewrite any datagram.
struct Duo {
    now: Instant,
    a: Endpoint,
    b: Endpoint,
    ev_a: Vec<Event>,
    ev_b: Vec<Event>,
    /// Called with (towards alice?, datagram); returns the datagram to deliver.
    rewrite: Box<dyn FnMut(bool, Vec<u8>) -> Vec<u8>>,
}

impl Duo {
    fn new(alice: PeerConfig, bob: PeerConfig, provider: impl Fn(u64) -> CryptoProvider) -> Self {
        let now = Instant::now();
        let a = Endpoint::new(EndpointConfig::default(), provider(1), vec![alice], now, UNIX_EPOCH_AT_START).unwrap();
        let b = Endpoint::new(EndpointConfig::default(), provider(2), vec![bob], now, UNIX_EPOCH_AT_START).unwrap();
        Self { now, a, b, ev_a: Vec::new(), ev_b: Vec::new(), rewrite: Box::new(|_, d| d) }
    }

    /// Delivers everything in flight until both sides are quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                let d = (self.rewrite)(false, t.payload);
                self.b.handle_datagram(self.now, t.remote, t.local, &d);
                moved = true;
            }
            while let Some(t) = self.b.poll_transmit() {
                let d = (self.rewrite)(true, t.payload);
                self.a.handle_datagram(self.now, t.remote, t.local, &d);
                moved = true;
            }
            while let Some(e) = self.a.poll_event() {
                self.ev_a.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.ev_b.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Lets `d` of virtual time pass, handling every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.a.handle_timeout(self.now);
                    }
                    if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.b.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn only_child(ep: &Endpoint) -> ChildSa {
        let sas = ep.established();
        assert_eq!(sas.len(), 1, "one IKE SA");
        let children = ep.children(sas[0]);
        assert_eq!(children.len(), 1, "one CHILD SA: {children:?}");
        children[0].clone()
    }
}

/// With the test provider's null cipher an SK payload's body is IV (8 octets for AES-GCM), the inner
/// payloads, padding, the pad length and an all-zero ICV (16): rewrites the inner payloads.
fn rewrite_inner(datagram: &[u8], f: impl FnOnce(Vec<Payload>) -> Vec<Payload>) -> Vec<u8> {
    const IV: usize = 8;
    const ICV: usize = 16;
    let header = &datagram[..Header::LEN];
    assert_eq!(datagram[16], PayloadType::SK.0, "one SK payload");
    let first = PayloadType(datagram[Header::LEN]);
    let body = &datagram[Header::LEN + 4..];
    let plain = &body[IV..body.len() - ICV];
    let pad = usize::from(*plain.last().unwrap());
    let inner = parse_chain(first, &plain[..plain.len() - 1 - pad], 0).unwrap();
    let mut chain = Vec::new();
    let first = emit_chain(&f(inner), PayloadType::NONE, &mut chain).unwrap();
    chain.push(0);
    let sk_len = 4 + IV + chain.len() + ICV;
    let mut out = header.to_vec();
    out[24..28].copy_from_slice(&u32::try_from(Header::LEN + sk_len).unwrap().to_be_bytes());
    out.push(first.0);
    out.push(0);
    out.extend_from_slice(&u16::try_from(sk_len).unwrap().to_be_bytes());
    out.extend_from_slice(&body[..IV]);
    out.extend_from_slice(&chain);
    out.extend_from_slice(&[0; ICV]);
    out
}

fn is_child_rekey_response(d: &[u8]) -> bool {
    let (exchange, response, _) = describe(d);
    exchange == ExchangeType::CREATE_CHILD_SA && response
}

/// A CHILD rekey answer that authenticates but cannot be used (here: its Nonce is missing, §1.3.3).
/// Before the fix the initiator dropped the answer and returned: the child's rekey timer was already
/// gone, so it was never rekeyed by time again, and the pair the responder had installed was never
/// deleted. Now the initiator deletes the responder's half-made pair and tries again later.
#[test]
fn a_malformed_rekey_answer_deletes_the_peers_pair_and_retries() {
    let mut alice = alice_psk();
    alice.children[0].lifetime =
        ChildLifetime { rekey_time: Some(Duration::from_secs(30)), rand_time: Duration::ZERO, life_time: None };
    alice.ike_lifetime = IkeLifetime { rekey_time: None, reauth_time: None, ..Default::default() };
    let mut bob = bob_psk();
    bob.children[0].lifetime = ChildLifetime { rekey_time: None, rand_time: Duration::ZERO, life_time: None };
    bob.ike_lifetime = IkeLifetime { rekey_time: None, reauth_time: None, ..Default::default() };
    let mut duo = Duo::new(alice, bob, |seed| TestProvider::new(seed).null_cipher().build());
    let mut spoiled = 0;
    duo.rewrite = Box::new(move |to_alice, d| {
        if to_alice && is_child_rekey_response(&d) && spoiled == 0 {
            spoiled += 1;
            return rewrite_inner(&d, |p| p.into_iter().filter(|p| !matches!(p, Payload::Nonce(_))).collect());
        }
        d
    });
    let now = duo.now;
    duo.a.initiate(now, "to-bob", addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    duo.pump();
    let first = Duo::only_child(&duo.a);
    assert_eq!(Duo::only_child(&duo.b).spi_out, first.spi_in);

    // The rekey at 30 s gets the spoiled answer; bob had installed the new pair.
    duo.advance(Duration::from_secs(31));
    let made_by_bob: Vec<ChildSa> = duo
        .ev_b
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaReady { child, .. } if child.replaces.is_some() => Some((**child).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(made_by_bob.len(), 1, "bob answered one rekey");
    let orphan = &made_by_bob[0];
    let deleted_by_bob = |duo: &Duo| {
        duo.ev_b.iter().any(|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if *spi_in == orphan.spi_in))
    };
    assert!(deleted_by_bob(&duo), "alice deleted the pair bob made for the answer she could not use");
    let sa = duo.a.established()[0];
    assert!(duo.a.rekey_time(sa, first.spi_in).is_some(), "the old pair is scheduled for another rekey");

    // The retry succeeds: each side ends with one pair, the two halves of one another, not the first.
    duo.advance(Duration::from_secs(10));
    let a = Duo::only_child(&duo.a);
    let b = Duo::only_child(&duo.b);
    assert_ne!(a.spi_in, first.spi_in, "rekeyed");
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
    assert_eq!(a.encr_out, b.encr_in);
}

/// A random source whose four-octet draws (ESP SPIs, and rekey jitter) take one of only four values,
/// while everything else is the seeded stream.
#[derive(Debug)]
struct FewSpis(DeterministicRandom);

impl SecureRandom for FewSpis {
    fn fill(&self, dest: &mut [u8]) -> oxswan_crypto::Result<()> {
        self.0.fill(dest)?;
        if dest.len() == 4 {
            let v = 0x1000 + u32::from(dest[3] % 4);
            dest.copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }
}

/// Inbound SPIs identify an SA to the data plane (RFC 4303 §2.1): two CHILD SAs of one endpoint
/// must never share one. Before the fix they were drawn at random with no check, and with this
/// random source two of bob's four children collided (one would silently replace the other in the
/// data plane).
#[test]
fn inbound_esp_spis_are_unique_within_an_endpoint() {
    let mut alice = alice_psk();
    let mut bob = bob_psk();
    for (i, net) in ["10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"].iter().enumerate() {
        let theirs = net.replace("10.1", "10.2");
        alice.children.push(child_config(&format!("net{i}"), &[net], &[&theirs]));
        bob.children.push(child_config(&format!("net{i}"), &[&theirs], &[net]));
    }
    let mut sim = Sim::new(7, Link::default());
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice]);
    let mut provider = oxswan_crypto::default_provider();
    provider.random = Arc::new(FewSpis(DeterministicRandom::new(7)));
    sim.add_with(BOB_IP, EndpointConfig::default(), vec![bob], provider);
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(30), |s| {
        s.events(ALICE_IP).iter().filter(|e| matches!(e, Event::ChildSaReady { .. })).count() == 4
    });
    let spis: Vec<u32> = sim
        .events(BOB_IP)
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaReady { child, .. } => Some(child.spi_in),
            _ => None,
        })
        .collect();
    assert_eq!(spis.len(), 4, "four CHILD SAs at bob: {:?}", sim.events(BOB_IP));
    let mut unique = spis.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), spis.len(), "bob's inbound SPIs {spis:x?} collide");
}

/// RFC 7296 §2.23: behind a NAT the peer's address is where its latest authenticated message came
/// from. Before the fix a NAT rebinding moved the IKE SA but not its CHILD SAs, and nothing told the
/// data plane, which kept sending ESP to the old mapping. Now the CHILD SAs follow and
/// `Event::PathChanged` says where to.
#[test]
fn a_nat_rebinding_moves_the_child_sas_and_is_reported() {
    let mut sim = Sim::new(23, Link::default());
    sim.nat = Some(Nat::new("10.0.0.2", "198.51.100.1"));
    sim.add("10.0.0.2", EndpointConfig::default(), vec![alice_psk()]);
    sim.add(BOB_IP, EndpointConfig::default(), vec![bob_psk()]);
    let now = sim.now;
    sim.ep("10.0.0.2").initiate(now, "to-bob", addr("10.0.0.2", 500), addr(BOB_IP, 500)).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| up(s.events("10.0.0.2")) && up(s.events(BOB_IP))));
    let before = child(sim.events(BOB_IP)).unwrap().remote;
    assert_eq!(before.ip(), "198.51.100.1".parse::<std::net::IpAddr>().unwrap());

    // The NAT restarts with another public address: alice's next message comes from a new mapping.
    sim.nat = Some(Nat::new("10.0.0.2", "198.51.100.7"));
    let alice_sa = sim.ep("10.0.0.2").established()[0];
    let now = sim.now;
    sim.ep("10.0.0.2").liveness(now, alice_sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        has_event(s.events("10.0.0.2"), |e| matches!(e, Event::LivenessConfirmed { .. }))
    }));
    let moved: Vec<(std::net::SocketAddr, std::net::SocketAddr)> = sim
        .events(BOB_IP)
        .iter()
        .filter_map(|e| match e {
            Event::PathChanged { local, remote, spis_in, .. } => {
                assert_eq!(spis_in.len(), 1, "the one CHILD SA moves");
                Some((*local, *remote))
            }
            _ => None,
        })
        .collect();
    // The new NAT maps alice's port 4500 to the first port it hands out.
    let after = addr("198.51.100.7", 40000);
    assert_eq!(moved, vec![(addr(BOB_IP, 4500), after)], "one path change, to the new mapping");
    let bob_sa = sim.ep(BOB_IP).established()[0];
    assert_eq!(sim.ep(BOB_IP).info(bob_sa).unwrap().remote, after);
    let children = sim.ep(BOB_IP).children(bob_sa);
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].remote, after, "the CHILD SA's ESP goes to the new mapping");
}

/// A CHILD rekey whose timer fires while our IKE rekey is in flight waits in the queue; the IKE
/// rekey's answer hands the CHILD SAs to the new IKE SA. Before the fix the queue was cleared and the
/// job lost with its timer spent, so the pair was never rekeyed by time again.
#[test]
fn a_child_rekey_queued_behind_an_ike_rekey_goes_to_the_new_ike_sa() {
    let mut alice = alice_psk();
    alice.ike_lifetime = IkeLifetime { rekey_time: Some(Duration::from_secs(10)), ..Default::default() };
    alice.children[0].lifetime =
        ChildLifetime { rekey_time: Some(Duration::from_millis(10_500)), rand_time: Duration::ZERO, life_time: None };
    let mut sim = Sim::new(61, Link { latency: Duration::from_millis(600), ..Link::default() });
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice]);
    let mut bob = bob_psk();
    bob.ike_lifetime = IkeLifetime { rekey_time: None, reauth_time: None, ..Default::default() };
    bob.children[0].lifetime = ChildLifetime { rekey_time: None, rand_time: Duration::ZERO, life_time: None };
    sim.add(BOB_IP, EndpointConfig::default(), vec![bob]);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let first_child = child(sim.events(ALICE_IP)).unwrap();
    // The IKE rekey leaves at ~10 s and is answered at ~11.2 s; the CHILD rekey falls due at ~10.5 s.
    sim.advance(Duration::from_secs(9));
    let from = sim.events(ALICE_IP).len();
    sim.advance(Duration::from_secs(6));
    let ev = &sim.events(ALICE_IP)[from..];
    assert!(ev.iter().any(|e| matches!(e, Event::IkeSaRekeyed { .. })), "the IKE SA was rekeyed: {ev:?}");
    let rekeyed =
        ev.iter().any(|e| matches!(e, Event::ChildSaReady { child, .. } if child.replaces == Some(first_child.spi_in)));
    assert!(rekeyed, "the queued CHILD rekey ran on the new IKE SA: {ev:?}");
}

/// A half-open SA that timed out lingers (to answer retransmissions of what closed it), and a
/// retransmitted IKE_SA_INIT that came in then was answered from its cache: the initiator went on
/// to an IKE_AUTH that nothing was left to take, and gave up minutes later. Found by the 1,000-seed
/// lossy run (`stress.rs`, seed 54), which now explains every failure. The retransmission starts a
/// new responder SA instead.
#[test]
fn an_ike_sa_init_retransmitted_after_the_half_open_sa_expired_starts_afresh() {
    // Lossless and without jitter, so the datagrams come in a fixed order: alice's IKE_SA_INIT at
    // 0 s, 4 s (both lost), 11.2 s (bob's half-open SA is made, its answer lost), 24.2 s (answered
    // from the cache, lost), then 47.5 s, after the half-open SA expired at 41.2 s but while it
    // lingers: that answer gets through.
    let mut sim = pair(1, Link::default(), alice_psk(), bob_psk());
    sim.drop_filter = Some(Box::new(|i, _| [0, 1, 3, 5].contains(&i)));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(120), both_up), "{:?}", sim.events(ALICE_IP));
    let inits: Vec<(Duration, Vec<u8>)> = sim
        .log
        .iter()
        .zip(&sim.log_at)
        .filter(|((f, _, d), _)| f.ip().to_string() == BOB_IP && describe(d) == (ExchangeType::IKE_SA_INIT, true, 0))
        .map(|((_, _, d), at)| (*at, d[8..16].to_vec()))
        .collect();
    assert!(inits.len() == 3 && inits[0].1 == inits[1].1 && inits[2].1 != inits[0].1, "{inits:?}");
    assert!(inits[2].0 > Duration::from_secs(41), "{inits:?}");
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e, Event::IkeSaDown { .. })));
}
