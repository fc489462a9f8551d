//! Hostile IKE_SA_INIT requests at a responder (issue 18): each gets the answer RFC 7296 names and
//! an event the daemon logs, never silence and never a key exchange it need not make.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::{Event, PeerConfig};
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{ExchangeType, Header, Message, NotifyType, Payload};

/// Alice's first IKE_SA_INIT request, taken off the wire, and the simulation.
fn alice_request(bob: PeerConfig) -> (Sim, Vec<u8>) {
    let mut sim = null_cipher_pair(21, Link::default(), alice_psk(), bob);
    let request = intercept(&mut sim, |exchange, response, _| exchange == ExchangeType::IKE_SA_INIT && !response);
    initiate(&mut sim);
    sim.advance(Duration::from_millis(10));
    let r = request.borrow().clone().unwrap();
    (sim, r)
}

/// Bob's answer to `datagram` from Alice: its payloads, and the reason he gave himself.
fn bobs_answer(sim: &mut Sim, datagram: &[u8]) -> (Vec<String>, Option<String>) {
    let from = sim.log.len();
    let now = sim.now;
    sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), datagram);
    sim.advance(Duration::from_millis(10));
    let answer = sim.log.get(from).map(|(_, _, d)| payloads(d)).unwrap_or_default();
    let reason = sim.events(BOB_IP).iter().rev().find_map(|e| match e {
        Event::InitRejected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    (answer, reason)
}

/// The request with its payloads as `change` makes them, re-encoded under its own header.
fn changed(request: &[u8], change: impl FnOnce(&mut Vec<Payload>)) -> Vec<u8> {
    let msg = Message::parse(request).unwrap();
    let mut p = msg.parse_payloads().unwrap();
    change(&mut p);
    let h: Header = *msg.header();
    h.encode(&p).unwrap()
}

#[test]
fn duplicate_sa_ke_or_nonce_payloads_get_invalid_syntax() {
    for (name, pick) in [("SA", 0usize), ("KE", 1), ("No", 2)] {
        let (mut sim, request) = alice_request(bob_psk());
        let twice = changed(&request, |p| {
            let again = p[pick].clone();
            p.insert(pick + 1, again);
        });
        let (answer, reason) = bobs_answer(&mut sim, &twice);
        assert_eq!(answer, ["N(INVALID_SYNTAX)"], "a second {name}");
        assert!(reason.unwrap().contains("a second"), "{name}");
    }
}

#[test]
fn nat_detection_of_the_wrong_length_gets_invalid_syntax() {
    for len in [0usize, 19, 21, 32] {
        let (mut sim, request) = alice_request(bob_psk());
        let bad = changed(&request, |p| {
            for pl in p.iter_mut() {
                if let Payload::Notify(n) = pl
                    && n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP
                {
                    *n = NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![7; len]);
                }
            }
        });
        let (answer, reason) = bobs_answer(&mut sim, &bad);
        assert_eq!(answer, ["N(INVALID_SYNTAX)"], "{len} octets");
        assert!(reason.unwrap().contains("20-octet"), "{len}");
    }
}

#[test]
fn an_spi_in_an_ike_sa_init_proposal_gets_invalid_syntax() {
    let (mut sim, request) = alice_request(bob_psk());
    let bad = changed(&request, |p| {
        if let Payload::Sa(sa) = &mut p[0] {
            sa.proposals[0].spi = vec![1; 8];
        }
    });
    let (answer, reason) = bobs_answer(&mut sim, &bad);
    assert_eq!(answer, ["N(INVALID_SYNTAX)"]);
    assert!(reason.unwrap().contains("SPI"));
}

/// When every connection names its peers' addresses (`remote_addrs`) and none names the source,
/// the answer is NO_PROPOSAL_CHOSEN before any key exchange, as strongSwan's; a connection that
/// names it, or one open to any address, is served.
#[test]
fn a_source_no_connection_names_is_refused_before_the_key_exchange() {
    let elsewhere = PeerConfig { remote_addrs: vec!["192.0.2.99".parse().unwrap()], ..bob_psk() };
    let (mut sim, request) = alice_request(elsewhere);
    let (answer, reason) = bobs_answer(&mut sim, &request);
    assert_eq!(answer, ["N(NO_PROPOSAL_CHOSEN)"]);
    assert!(reason.unwrap().contains("remote_addrs"));
    assert_eq!(sim.ep(BOB_IP).sa_count(), 0);
    for bob in [PeerConfig { remote_addrs: vec![ALICE_IP.parse().unwrap()], ..bob_psk() }, bob_psk()] {
        let (mut sim, request) = alice_request(bob);
        let (answer, _) = bobs_answer(&mut sim, &request);
        assert!(answer.contains(&"KE".to_string()), "served: {answer:?}");
    }
}

/// A 28-octet datagram with major version 3 whose length field says what it is.
fn version_3(length: u32) -> Vec<u8> {
    let mut d = vec![0u8; 28];
    d[..8].copy_from_slice(&[1; 8]);
    d[17] = 0x30;
    d[18] = 34;
    d[19] = 0x08;
    d[24..28].copy_from_slice(&length.to_be_bytes());
    d
}

/// §2.5 and §2.21.4 answers go only to what parses as a header of its own length, and at most 20 a
/// second: a spoofed flood cannot make the gateway a reflector, and a peer that lost its SA still
/// hears INVALID_IKE_SPI.
#[test]
fn unauthenticated_answers_only_to_real_headers_and_at_a_bounded_rate() {
    let mut sim = null_cipher_pair(22, Link::default(), alice_psk(), bob_psk());
    let send = |sim: &mut Sim, d: &[u8]| {
        let from = sim.log.len();
        let now = sim.now;
        sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), d);
        sim.advance(Duration::from_millis(1));
        sim.log[from..].iter().map(|(_, _, d)| payloads(d)).collect::<Vec<_>>()
    };
    assert_eq!(send(&mut sim, &version_3(28)), [vec!["N(INVALID_MAJOR_VERSION)".to_string()]]);
    for lying in [29, 100, 27, 0] {
        assert!(send(&mut sim, &version_3(lying)).is_empty(), "length field {lying}");
    }
    let mut after_marker = vec![0u8; 4];
    after_marker.extend(version_3(28));
    assert!(send(&mut sim, &after_marker).is_empty(), "not a header at its start");
    // Requests for SAs Bob does not know: INVALID_IKE_SPI, 20 in a second, the rest dropped.
    let unknown = |n: u8| {
        let h = Header::new(
            oxswan_wire::IkeSpi([n; 8]),
            oxswan_wire::IkeSpi([9; 8]),
            ExchangeType::INFORMATIONAL,
            oxswan_wire::Flags::INITIATOR,
            1,
        );
        h.encode(&[]).unwrap()
    };
    sim.advance(Duration::from_secs(1));
    let answered: usize = (0..100u8).map(|n| send(&mut sim, &unknown(n)).len()).sum();
    assert_eq!(answered, 20, "20 INVALID_IKE_SPI in the second");
    sim.advance(Duration::from_secs(1));
    assert_eq!(send(&mut sim, &unknown(200)), [vec!["N(INVALID_IKE_SPI)".to_string()]], "the next second");
}

/// What the endpoint drops is counted by cause: not well-formed, for an SA it does not have,
/// failing its SA's integrity check (real ciphers), or well-formed but not now.
#[test]
fn drops_are_counted_by_cause() {
    let mut sim = pair(23, Link::default(), alice_psk(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let i = info(&mut sim, BOB_IP);
    let send = |sim: &mut Sim, d: &[u8]| {
        let now = sim.now;
        sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), d);
    };
    let before = sim.ep(BOB_IP).stats();
    send(&mut sim, &[0x42; 40]);
    let unknown = Header::new(
        oxswan_wire::IkeSpi([5; 8]),
        oxswan_wire::IkeSpi([6; 8]),
        ExchangeType::INFORMATIONAL,
        oxswan_wire::Flags::INITIATOR,
        1,
    );
    send(&mut sim, &unknown.encode(&[]).unwrap());
    // An INFORMATIONAL on the SA whose SK payload is garbage: its ICV fails.
    // Message ID 2: the next Bob expects of Alice, so the check reaches the ICV.
    let on_sa = Header::new(i.spi_i, i.spi_r, ExchangeType::INFORMATIONAL, oxswan_wire::Flags::INITIATOR, 2);
    let sk =
        Payload::Sk(oxswan_wire::sk::SkPayload { next_inner: oxswan_wire::PayloadType::NONE, data: vec![0x17; 48] });
    send(&mut sim, &on_sa.encode(&[sk]).unwrap());
    let d = sim.ep(BOB_IP).stats().drops;
    assert_eq!(
        (
            d.malformed - before.drops.malformed,
            d.unknown_spi - before.drops.unknown_spi,
            d.unauthenticated - before.drops.unauthenticated
        ),
        (1, 1, 1),
        "{d:?}"
    );
    assert_eq!(sim.ep(BOB_IP).stats().dropped - before.dropped, 3);
}
