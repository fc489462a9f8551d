//! IKE fragmentation (RFC 7383): fragments sized for the path's family so that each datagram fits
//! the configured size (§2.5.1), and the limits of reassembly (§2.6) at their edges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::time::Duration;

use common::*;
use oxswan_crypto::sk::protect_fragment;
use oxswan_ike::EndpointConfig;
use oxswan_wire::payloads::UnknownPayload;
use oxswan_wire::{ExchangeType, Flags, Header, Payload, PayloadType, emit_chain};

fn cert_peer(base: oxswan_ike::PeerConfig, ca: &pki::Ca, name: &str, dns: &str) -> oxswan_ike::PeerConfig {
    oxswan_ike::PeerConfig {
        local_auth: oxswan_ike::LocalAuth::Cert(ca.local(pki::Alg::Rsa2048, name, &[dns])),
        remote_auth: oxswan_ike::RemoteAuth::Cert(ca.trust()),
        ..base
    }
}

/// RSA certificates make IKE_AUTH longer than any fragment size here; IP fragments are dropped on
/// the link, so only IKE fragments get through. Every datagram — its IP header for the family, UDP
/// and the IKE message (no non-ESP marker: without a NAT IKE stays on port 500) — fits the
/// configured `fragment_size`, and the fragments use the room: IPv6 ones carry 20 octets less.
/// (The simulated link counts 28 octets of headers for its MTU whatever the family, so the MTU is
/// set out of the way here.)
#[test]
fn fragments_fit_the_configured_datagram_size_for_each_family() {
    let ca = pki::Ca::new("Test", pki::Alg::Rsa2048);
    let alice = cert_peer(alice_psk(), &ca, "alice", "alice.example");
    let bob = cert_peer(bob_psk(), &ca, "bob", "bob.example");
    let mut largest = Vec::new();
    for (a, b, ip_header) in [("192.0.2.1", "192.0.2.2", 20), ("2001:db8::1", "2001:db8::2", 40)] {
        for size in [0usize, 700, 1280] {
            let config = EndpointConfig { fragment_size: size, ..EndpointConfig::default() };
            let mut sim = Sim::new(7, Link { drop_ip_fragments: true, mtu: 9000, ..Link::default() });
            sim.add(a, config.clone(), vec![alice.clone()]);
            sim.add(b, config, vec![bob.clone()]);
            let now = sim.now;
            sim.ep(a).initiate(now, "to-bob", addr(a, 500), addr(b, 500)).unwrap();
            assert!(
                sim.run_until(Duration::from_secs(5), |s| up(s.events(a)) && up(s.events(b))),
                "{a}, fragment_size {size}"
            );
            let want = match size {
                0 if ip_header == 40 => 1280,
                0 => 576,
                n => n,
            };
            // IKE_AUTH and after: the IKE_SA_INIT pair is never fragmented (§2.5).
            let auth: Vec<usize> = sim.log[2..].iter().map(|(_, _, d)| ip_header + 8 + d.len()).collect();
            let max = *auth.iter().max().unwrap();
            assert!(max <= want, "{a}, fragment_size {size}: a datagram of {max} octets");
            // A fragment's data is sized for the worst suite's overhead (100 octets); with AES-GCM-16
            // a fragment takes 61 of them (IKE header 28, SKF header 8, IV 8, pad length 1, ICV
            // 16), so the full ones are 39 octets short of the size, whatever the family: over IPv6
            // their IKE messages are 20 octets shorter.
            assert_eq!(max, want - 39, "{a}, fragment_size {size}");
            assert!(auth.len() > 2, "IKE_AUTH went as fragments");
            largest.push((a, size, max));
        }
    }
    println!("largest datagram (IP + UDP + IKE) per family and fragment_size: {largest:?}");
}

/// The inner payloads of an INFORMATIONAL request: `inner` octets of unknown, non-critical
/// payloads (skipped by the receiver, RFC 7296 §2.5), and the type of the first.
fn plain(inner: usize) -> (Vec<u8>, PayloadType) {
    // At most 60000 octets each (a payload's length is 16 bits).
    let mut payloads = Vec::new();
    let mut left = inner;
    while left > 0 {
        let len = left.min(60_000);
        assert!(len >= 4, "payload headers are 4 octets");
        payloads.push(Payload::Unknown(UnknownPayload {
            payload_type: PayloadType(222),
            critical: false,
            data: vec![0x5a; len - 4],
        }));
        left -= len;
    }
    let mut plain = Vec::new();
    let first = emit_chain(&payloads, PayloadType::NONE, &mut plain).unwrap();
    assert_eq!(plain.len(), inner);
    (plain, first)
}

type Spis = (oxswan_wire::IkeSpi, oxswan_wire::IkeSpi);

/// `parts` as SKF fragments 1..=n of `total` of a request from alice, sealed with the null cipher.
fn seal(message_id: u32, spi: Spis, first: PayloadType, parts: &[&[u8]], total: u16) -> Vec<Vec<u8>> {
    let (provider, keys) = null_keys();
    let h = Header::new(spi.0, spi.1, ExchangeType::INFORMATIONAL, Flags::INITIATOR, message_id);
    parts
        .iter()
        .zip(1u16..)
        .map(|(p, n)| {
            let next = if n == 1 { first } else { PayloadType::NONE };
            protect_fragment(&provider, &keys, &h, next, n, total, p).unwrap()
        })
        .collect()
}

/// A request of `inner` octets of payloads in `total` fragments of equal size.
fn fragments(message_id: u32, spi: Spis, inner: usize, total: u16) -> Vec<Vec<u8>> {
    let (plain, first) = plain(inner);
    let parts: Vec<&[u8]> = plain.chunks(inner.div_ceil(usize::from(total))).collect();
    assert_eq!(parts.len(), usize::from(total));
    seal(message_id, spi, first, &parts, total)
}

/// Feeds bob the datagrams; returns the message ID of his answer, if he answered.
fn feed(sim: &mut Sim, from: std::net::SocketAddr, to: std::net::SocketAddr, datagrams: &[Vec<u8>]) -> Option<u32> {
    let now = sim.now;
    let mut answer = None;
    for d in datagrams {
        sim.ep(BOB_IP).handle_datagram(now, to, from, d);
        while let Some(t) = sim.ep(BOB_IP).poll_transmit() {
            answer = Some(oxswan_wire::Header::parse(&t.payload).unwrap().message_id);
        }
    }
    answer
}

/// The limits of reassembly (`MAX_FRAGMENTS` 128 and `MAX_REASSEMBLED` 64 KiB of inner payloads,
/// in ike_sa/receive.rs): at the limit a message is reassembled and answered; one over, it is
/// refused, and nothing of it stays behind to be completed by later fragments.
#[test]
fn reassembly_limits_at_their_edge() {
    let config = EndpointConfig { fragment_size: 65_535, ..EndpointConfig::default() };
    let mut sim = Sim::new(3, Link::default());
    sim.add_null_cipher(ALICE_IP, config.clone(), vec![alice_psk()]);
    sim.add_null_cipher(BOB_IP, config, vec![bob_psk()]);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let auth = Header::parse(&sim.log[2].2).unwrap();
    let (from, to) = (sim.log[2].0, sim.log[2].1);
    let spi = (auth.spi_i, auth.spi_r);

    // 128 fragments: answered. 129: refused at the first fragment.
    /* INFORMATIONAL { SKF(1/128) } ... { SKF(128/128) } -->  <-- INFORMATIONAL { } */
    assert_eq!(feed(&mut sim, from, to, &fragments(2, spi, 128 * 16, 128)), Some(2), "128 fragments");
    /* INFORMATIONAL { SKF(1/129) } ... { SKF(129/129) } -->  (nothing) */
    assert_eq!(feed(&mut sim, from, to, &fragments(3, spi, 129 * 16, 129)), None, "129 fragments");

    // 64 KiB of inner payloads in 128 fragments: answered; one octet more: refused.
    assert_eq!(feed(&mut sim, from, to, &fragments(3, spi, 65_536, 128)), Some(3), "65536 octets");
    assert_eq!(feed(&mut sim, from, to, &fragments(4, spi, 65_537, 128)), None, "65537 octets");

    // No state left behind: fragments 2..=128 of a 64 KiB request (512 octets each) wait for
    // fragment 1; a fragment 1 of 513 octets takes the message one octet over, and is refused.
    let (whole, first) = plain(65_536);
    let parts: Vec<&[u8]> = whole.chunks(512).collect();
    let fit = seal(4, spi, first, &parts, 128);
    assert_eq!(feed(&mut sim, from, to, &fit[1..]), None, "fragments 2..=128: waiting for the first");
    let mut long_first = parts[0].to_vec();
    long_first.push(0);
    let over = seal(4, spi, first, &[&long_first], 128);
    assert_eq!(feed(&mut sim, from, to, &over), None, "one octet over");
    // Had the 127 fragments stayed, the right fragment 1 would complete the message now; they
    // went with the refusal, so it starts a new reassembly instead.
    assert_eq!(feed(&mut sim, from, to, &fit[..1]), None, "fragment 1 alone completes nothing");
    // The rest sent again completes it: at the limit exactly, and the SA unharmed.
    assert_eq!(feed(&mut sim, from, to, &fit[1..]), Some(4), "the whole message within the limits");
}

/// IKE_AUTH datagrams after IKE_SA_INIT, as (seconds since the start, from alice?, response?,
/// datagram length with IPv4 and UDP headers).
fn auth_datagrams(sim: &Sim) -> Vec<(f64, bool, bool, usize)> {
    sim.log
        .iter()
        .zip(&sim.log_at)
        .filter(|((_, _, d), _)| describe(d).0 == ExchangeType::IKE_AUTH)
        .map(|((from, _, d), at)| (at.as_secs_f64(), from.ip() == addr(ALICE_IP, 0).ip(), describe(d).1, 28 + d.len()))
        .collect()
}

/// Certificates both ways, fragments of 1280 octets, and a path that carries 576 and drops IP
/// fragments (RFC 7383 §2.5.2): the first two IKE_AUTH requests (0 s and 4 s) are lost; the third
/// (11.2 s) goes in fragments of IPv4's minimum, 576, and gets through; the answer comes in
/// fragments no longer than the request's, which the path carried.
#[test]
fn a_path_narrower_than_the_fragments_gets_smaller_ones_after_two_tries() {
    let ca = pki::Ca::new("Test", pki::Alg::Rsa2048);
    let alice = cert_peer(alice_psk(), &ca, "alice", "alice.example");
    let bob = cert_peer(bob_psk(), &ca, "bob", "bob.example");
    let mut sim = pair(21, Link { drop_ip_fragments: true, mtu: 576, ..Link::default() }, alice, bob);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(30), both_up), "up through the narrow path");
    let auth = auth_datagrams(&sim);
    let round = |t0: f64, t1: f64| {
        auth.iter().filter(|a| a.1 && !a.2 && a.0 >= t0 && a.0 < t1).map(|a| a.3).collect::<Vec<_>>()
    };
    let (first, second, third) = (round(0.0, 1.0), round(3.9, 5.0), round(11.1, 12.0));
    assert!(first.iter().any(|l| *l > 576) && first.iter().all(|l| *l <= 1280), "{auth:?}");
    assert_eq!(first, second, "the second try is the same datagrams: {auth:?}");
    assert!(third.len() > first.len() && third.iter().all(|l| *l <= 576), "smaller fragments: {auth:?}");
    let answer: Vec<usize> = auth.iter().filter(|a| !a.1 && a.2).map(|a| a.3).collect();
    assert!(answer.len() > 1 && answer.iter().all(|l| *l <= 576), "bob's answer fits too: {auth:?}");
    println!(
        "IKE_AUTH through a 576-octet path: {} fragments of up to {} octets twice, then {} of up to {}; answered in {} of up to {}",
        first.len(),
        first.iter().max().unwrap(),
        third.len(),
        third.iter().max().unwrap(),
        answer.len(),
        answer.iter().max().unwrap()
    );
}

/// The request is short (PSK) and gets through; the answer (a certificate) goes in 1280-octet
/// fragments that the path drops. The retransmitted requests are answered from the cache, and at
/// the second retransmission (11.2 s) the cached answer goes in fragments of 576.
#[test]
fn a_lost_fragmented_answer_goes_smaller_at_the_second_retransmission() {
    let ca = pki::Ca::new("Test", pki::Alg::Rsa2048);
    let bob = cert_peer(bob_psk(), &ca, "bob", "bob.example");
    let alice = oxswan_ike::PeerConfig { remote_auth: oxswan_ike::RemoteAuth::Cert(ca.trust()), ..alice_psk() };
    let bob = oxswan_ike::PeerConfig { remote_auth: bob_psk().remote_auth, ..bob };
    let mut sim = pair(22, Link { drop_ip_fragments: true, mtu: 576, ..Link::default() }, alice, bob);
    initiate(&mut sim);
    let ok = sim.run_until(Duration::from_secs(30), both_up);
    let auth = auth_datagrams(&sim);
    assert!(ok, "up through the narrow path: {auth:?} {:?} {:?}", sim.events(ALICE_IP), sim.events(BOB_IP));
    let requests = auth.iter().filter(|a| a.1 && !a.2).count();
    assert_eq!(requests, 3, "{auth:?}");
    let late: Vec<usize> = auth.iter().filter(|a| !a.1 && a.2 && a.0 > 11.0).map(|a| a.3).collect();
    let early: Vec<usize> = auth.iter().filter(|a| !a.1 && a.2 && a.0 < 11.0).map(|a| a.3).collect();
    assert!(early.iter().any(|l| *l > 576), "{auth:?}");
    assert!(late.len() > early.len() / 2 && late.iter().all(|l| *l <= 576), "{auth:?}");
}

/// The request's 1280-octet fragments get through but the answer's do not (a path narrower one
/// way): the requester cuts its request again into smaller fragments (11.2 s), a new form of the
/// request bob already answered; bob knows it for a retransmission by its authentic fragment 1
/// with more Total Fragments, and answers from the cache in fragments as small.
#[test]
fn a_request_cut_again_is_answered_from_the_cache_in_smaller_fragments() {
    let ca = pki::Ca::new("Test", pki::Alg::Rsa2048);
    let alice = cert_peer(alice_psk(), &ca, "alice", "alice.example");
    let bob = cert_peer(bob_psk(), &ca, "bob", "bob.example");
    let mut sim = pair(23, Link { mtu: 9000, ..Link::default() }, alice, bob);
    // Bob's long datagrams are lost: responses over 548 octets of IKE.
    sim.drop_filter = Some(Box::new(|_, d| {
        let (x, response, _) = describe(d);
        x == ExchangeType::IKE_AUTH && response && d.len() + 28 > 576
    }));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(30), both_up), "up");
    let auth = auth_datagrams(&sim);
    let third: Vec<usize> = auth.iter().filter(|a| a.1 && !a.2 && a.0 > 11.0).map(|a| a.3).collect();
    assert!(!third.is_empty() && third.iter().all(|l| *l <= 576), "{auth:?}");
    let answered: Vec<usize> = auth.iter().filter(|a| !a.1 && a.2 && a.0 > 11.0).map(|a| a.3).collect();
    assert!(!answered.is_empty() && answered.iter().all(|l| *l <= 576), "{auth:?}");
    // Bob answered the request once: the SA came up once on his side.
    assert_eq!(sim.events(BOB_IP).iter().filter(|e| matches!(e, oxswan_ike::Event::IkeSaUp { .. })).count(), 1);
}
