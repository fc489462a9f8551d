//! Additional key exchanges when an IKE SA is set up (RFC 9370 §2.2.2), each in an IKE_INTERMEDIATE
//! exchange (RFC 9242) between IKE_SA_INIT and IKE_AUTH: both sides announce
//! INTERMEDIATE_EXCHANGE_SUPPORTED, make one exchange per ADDKE transform chosen (NONE skipped),
//! change all keys after each, and cover every IKE_INTERMEDIATE message by AUTH through IntAuth.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_crypto::proposal::parse_ike_proposals;
use oxswan_ike::init::{InitReply, InitRequestSent, InitResponse, ResponderParams, random_spi, respond};
use oxswan_ike::{DownReason, PeerConfig};
use oxswan_wire::{ExchangeType, KeId, Message, NotifyType, Payload};

const PQ: &str = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp384";

fn with_proposals(mut peer: PeerConfig, proposals: &str) -> PeerConfig {
    peer.ike_proposals = parse_ike_proposals(proposals).unwrap();
    peer
}

/// The KE payloads (method and length) of a message read through the null cipher.
fn kes(datagram: &[u8]) -> Vec<(KeId, usize)> {
    plain_payloads(datagram)
        .into_iter()
        .filter_map(|p| match p {
            Payload::Ke(k) => Some((k.group, k.data.len())),
            _ => None,
        })
        .collect()
}

fn header(datagram: &[u8]) -> (ExchangeType, bool, u32) {
    describe(datagram)
}

const SA_INIT: [&str; 9] = [
    "SA",
    "KE",
    "No",
    "N(NAT_DETECTION_SOURCE_IP)",
    "N(NAT_DETECTION_DESTINATION_IP)",
    "N(REDIRECT_SUPPORTED)",
    "N(SIGNATURE_HASH_ALGORITHMS)",
    "N(IKEV2_FRAGMENTATION_SUPPORTED)",
    "N(INTERMEDIATE_EXCHANGE_SUPPORTED)",
];

/// Bob's: CHILDLESS_IKEV2_SUPPORTED (RFC 6023) after NAT detection.
const SA_INIT_R: [&str; 9] = [
    "SA",
    "KE",
    "No",
    "N(NAT_DETECTION_SOURCE_IP)",
    "N(NAT_DETECTION_DESTINATION_IP)",
    "N(CHILDLESS_IKEV2_SUPPORTED)",
    "N(SIGNATURE_HASH_ALGORITHMS)",
    "N(IKEV2_FRAGMENTATION_SUPPORTED)",
    "N(INTERMEDIATE_EXCHANGE_SUPPORTED)",
];

#[test]
fn each_additional_key_exchange_runs_in_its_own_ike_intermediate_before_ike_auth() {
    let mut sim = null_cipher_pair(1, Link::default(), with_proposals(alice_psk(), PQ), with_proposals(bob_psk(), PQ));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let named = named_messages(&sim, 0);
    let (ii, ir) = (ExchangeType::IKE_INTERMEDIATE, ExchangeType::IKE_AUTH);
    assert_eq!(
        named[..6],
        [
            msg("alice", ExchangeType::IKE_SA_INIT, REQUEST, &SA_INIT),
            msg("bob", ExchangeType::IKE_SA_INIT, RESPONSE, &SA_INIT_R),
            msg("alice", ii, REQUEST, &["KE"]),
            msg("bob", ii, RESPONSE, &["KE"]),
            msg("alice", ii, REQUEST, &["KE"]),
            msg("bob", ii, RESPONSE, &["KE"]),
        ],
        "{named:#?}"
    );
    assert_eq!(named[6].1, ir);
    assert_eq!(named[7].1, ir);
    // ADDKE1 first, then ADDKE2, each with the real lengths of its method; message IDs 1 and 2, so
    // IKE_AUTH is message 3.
    let log: Vec<&[u8]> = sim.log.iter().map(|(_, _, d)| d.as_slice()).collect();
    assert_eq!(kes(log[2]), [(KeId::ML_KEM_768, 1184)]);
    assert_eq!(kes(log[3]), [(KeId::ML_KEM_768, 1088)]);
    assert_eq!(kes(log[4]), [(KeId::ECP384, 96)]);
    assert_eq!(kes(log[5]), [(KeId::ECP384, 96)]);
    let ids: Vec<_> = log[..8].iter().map(|d| header(d).2).collect();
    assert_eq!(ids, [0, 0, 1, 1, 2, 2, 3, 3]);
    // Both report what was negotiated, the additional key exchanges included.
    for ip in [ALICE_IP, BOB_IP] {
        assert_eq!(info(&mut sim, ip).proposal, PQ);
    }
}

/// With real cryptography, the two sides agree on keys only if each additional exchange updates
/// them alike: IKE_AUTH would not decrypt, AUTH would not verify, and the CHILD SA keys (from the
/// last SK_d) would differ otherwise. ML-KEM-1024's 1,568-octet key share does not fit one datagram:
/// the IKE_INTERMEDIATE messages are fragmented (RFC 7383), and IntAuth covers them whole.
#[test]
fn real_keys_agree_after_fragmented_intermediate_exchanges() {
    let pq = "aes256gcm16-prfsha384-ecp256-ke1_mlkem1024-ke3_x25519";
    let mut sim = pair(2, Link::default(), with_proposals(alice_psk(), pq), with_proposals(bob_psk(), pq));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let a = child(sim.events(ALICE_IP)).unwrap();
    let b = child(sim.events(BOB_IP)).unwrap();
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
    assert_eq!(a.encr_out.expose(), b.encr_in.expose());
    assert_eq!(a.encr_in.expose(), b.encr_out.expose());
    let intermediate: Vec<_> = sim
        .log
        .iter()
        .filter(|(_, _, d)| header(d).0 == ExchangeType::IKE_INTERMEDIATE)
        .map(|(_, _, d)| Message::parse(d).unwrap().parse_payloads().unwrap())
        .collect();
    let fragments = intermediate.iter().filter(|p| matches!(p.last(), Some(Payload::Skf(_)))).count();
    assert!(fragments >= 4, "ML-KEM-1024's KE in fragments both ways: {fragments} of {}", intermediate.len());
    // Two exchanges (ADDKE1 and ADDKE3): IKE_AUTH is message 3.
    let auth = sim.log.iter().find(|(_, _, d)| header(d).0 == ExchangeType::IKE_AUTH).unwrap();
    assert_eq!(header(&auth.2).2, 3);
}

#[test]
fn an_additional_key_exchange_the_responder_makes_optional_is_skipped() {
    // Alice offers ML-KEM as ADDKE1 or nothing; Bob has no additional key exchange configured.
    let alice = with_proposals(alice_psk(), "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none");
    let mut sim = null_cipher_pair(3, Link::default(), alice, bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let exchanges: Vec<_> = sim.log.iter().map(|(_, _, d)| header(d).0).collect();
    assert!(!exchanges.contains(&ExchangeType::IKE_INTERMEDIATE), "{exchanges:?}");
    assert_eq!(info(&mut sim, ALICE_IP).proposal, "aes256gcm16-prfsha256-x25519");
}

#[test]
fn a_responder_that_requires_an_additional_key_exchange_refuses_an_initiator_without_one() {
    let bob = with_proposals(bob_psk(), PQ);
    let mut sim = null_cipher_pair(4, Link::default(), alice_psk(), bob);
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(5), |s| down(s.events(ALICE_IP)).is_some());
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::NO_PROPOSAL_CHOSEN)));
    assert!(!up(sim.events(BOB_IP)));
}

/// AUTH covers the IKE_INTERMEDIATE messages (RFC 9242 §3.3.2): Bob is given Alice's first
/// IKE_INTERMEDIATE request with one more (ignored) status notify inside, so his IntAuth differs
/// from hers, and he refuses her AUTH. The same request delivered unchanged is accepted: the
/// harness itself breaks nothing.
#[test]
fn auth_fails_when_an_intermediate_message_was_changed_on_the_way() {
    for change in [false, true] {
        let mut sim =
            null_cipher_pair(5, Link::default(), with_proposals(alice_psk(), PQ), with_proposals(bob_psk(), PQ));
        let taken = intercept(&mut sim, |exchange, response, id| {
            exchange == ExchangeType::IKE_INTERMEDIATE && !response && id == 1
        });
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), |_| taken.borrow().is_some()));
        let request = taken.borrow().clone().unwrap();
        let m = reseal(&request, |mut inner| {
            if change {
                inner.push(Payload::Notify(oxswan_wire::notify::NotifyPayload::new(NotifyType(40_000), Vec::new())));
            }
            inner
        });
        let now = sim.now;
        sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), &m);
        sim.run_until(Duration::from_secs(5), |s| both_up(s) || down(s.events(ALICE_IP)).is_some());
        if change {
            assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED)));
            assert!(!up(sim.events(BOB_IP)));
        } else {
            assert!(both_up(&sim), "{:#?}", named_messages(&sim, 0));
        }
    }
}

/// Bob answers an IKE_INTERMEDIATE request out of plan (another method than ADDKE1's) with
/// INVALID_SYNTAX and ends the setup.
#[test]
fn an_intermediate_request_with_another_method_is_refused() {
    let mut sim = null_cipher_pair(6, Link::default(), with_proposals(alice_psk(), PQ), with_proposals(bob_psk(), PQ));
    let taken = intercept(&mut sim, |exchange, response, _| exchange == ExchangeType::IKE_INTERMEDIATE && !response);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), |_| taken.borrow().is_some()));
    let request = taken.borrow().clone().unwrap();
    let h = *Message::parse(&request).unwrap().header();
    let ke = Payload::Ke(oxswan_wire::payloads::KePayload { group: KeId::ECP384, data: vec![7; 96] });
    let (provider, keys) = null_keys();
    let m = oxswan_crypto::sk::protect(&provider, &keys, &h, &[ke]).unwrap();
    let before = sim.log.len();
    let now = sim.now;
    sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), &m);
    sim.advance(Duration::from_millis(10));
    let answers: Vec<_> = sim.log[before..].iter().filter(|(src, _, _)| src.ip().to_string() == BOB_IP).collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(payloads(&answers[0].2), ["N(INVALID_SYNTAX)"]);
    assert!(matches!(down(sim.events(BOB_IP)), Some(DownReason::Protocol(_))), "{:?}", sim.events(BOB_IP));
}

/// An initiator that proposes additional key exchanges announces INTERMEDIATE_EXCHANGE_SUPPORTED;
/// a responder that chose them without it is not followed (RFC 9370 §2.2.1), and a responder asked
/// without the announcement refuses them.
#[test]
fn additional_key_exchanges_need_intermediate_exchange_supported_both_ways() {
    let provider = oxswan_crypto::default_provider();
    let ours = parse_ike_proposals(PQ).unwrap();
    let params = ResponderParams { proposals: &ours, prefer_initiator: false, extra: &[] };
    let strip = |datagram: &[u8]| {
        let msg = Message::parse(datagram).unwrap();
        let kept: Vec<Payload> = msg
            .parse_payloads()
            .unwrap()
            .into_iter()
            .filter(
                |p| !matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED),
            )
            .collect();
        msg.header().encode(&kept).unwrap()
    };
    // The responder's answer without the notify.
    let init = InitRequestSent::start(&provider, &ours, None, random_spi(&provider).unwrap(), Vec::new()).unwrap();
    assert!(payloads(init.request()).contains(&"N(INTERMEDIATE_EXCHANGE_SUPPORTED)".to_string()));
    let spi_r = random_spi(&provider).unwrap();
    let InitReply::Accepted { response, .. } = respond(&provider, &params, init.request(), spi_r).unwrap() else {
        panic!("rejected")
    };
    assert!(matches!(init.handle_response(&provider, &response), Ok(InitResponse::Established(_))));
    let err = init.handle_response(&provider, &strip(&response)).unwrap_err();
    assert!(err.to_string().contains("INTERMEDIATE_EXCHANGE_SUPPORTED"), "{err}");
    // The initiator's request without it.
    match respond(&provider, &params, &strip(init.request()), spi_r).unwrap() {
        InitReply::Rejected { notify, .. } => assert_eq!(notify, NotifyType::NO_PROPOSAL_CHOSEN),
        InitReply::Accepted { .. } => panic!("accepted additional key exchanges without IKE_INTERMEDIATE"),
    }
    // Without additional key exchanges, neither side announces it.
    let plain = parse_ike_proposals("aes256gcm16-prfsha256-x25519").unwrap();
    let init = InitRequestSent::start(&provider, &plain, None, random_spi(&provider).unwrap(), Vec::new()).unwrap();
    assert!(!payloads(init.request()).contains(&"N(INTERMEDIATE_EXCHANGE_SUPPORTED)".to_string()));
}

/// An IKE SA with additional key exchanges is rekeyed with them (RFC 9370 §2.2.4): CREATE_CHILD_SA
/// makes the first, then one IKE_FOLLOWUP_KE exchange per ADDKE, each echoing the responder's link;
/// the new SA's keys work (real cryptography: a liveness check over it is answered), and the CHILD
/// SA moves along. Either side may rekey.
#[test]
fn an_ike_rekey_makes_the_additional_key_exchanges_in_ike_followup_ke() {
    for (seed, rekeyer, other) in [(7, ALICE_IP, BOB_IP), (8, BOB_IP, ALICE_IP)] {
        let mut sim = pair(seed, Link::default(), with_proposals(alice_psk(), PQ), with_proposals(bob_psk(), PQ));
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), both_up));
        let old = sim.ep(rekeyer).established()[0];
        let from = sim.log.len();
        let now = sim.now;
        sim.ep(rekeyer).rekey_ike(now, old).unwrap();
        let rekeyed = |s: &Sim| {
            [ALICE_IP, BOB_IP]
                .iter()
                .all(|ip| has_event(s.events(ip), |e| matches!(e, oxswan_ike::Event::IkeSaRekeyed { .. })))
        };
        assert!(sim.run_until(Duration::from_secs(5), rekeyed));
        sim.advance(Duration::from_millis(500));
        // Messages, not datagrams: ML-KEM-768's KE goes in two IKE fragments.
        let mut exchanges: Vec<_> = sim.log[from..]
            .iter()
            .map(|(src, _, d)| (src.ip().to_string() == rekeyer, header(d).0, header(d).1, header(d).2))
            .collect();
        exchanges.dedup();
        let exchanges: Vec<_> = exchanges.into_iter().map(|(a, b, c, _)| (a, b, c)).collect();
        let (ccs, fu, inf) =
            (ExchangeType::CREATE_CHILD_SA, ExchangeType::IKE_FOLLOWUP_KE, ExchangeType::INFORMATIONAL);
        assert_eq!(
            exchanges,
            [
                (true, ccs, false),
                (false, ccs, true),
                (true, fu, false),
                (false, fu, true),
                (true, fu, false),
                (false, fu, true),
                (true, inf, false),
                (false, inf, true),
            ],
            "{rekeyer} rekeys"
        );
        for ip in [rekeyer, other] {
            assert_eq!(sim.ep(ip).established().len(), 1, "{ip}");
            assert_eq!(info(&mut sim, ip).proposal, PQ);
        }
        let new = sim.ep(rekeyer).established()[0];
        assert_ne!(new, old);
        let now = sim.now;
        sim.ep(rekeyer).liveness(now, new).unwrap();
        let answered = |s: &Sim| {
            has_event(s.events(rekeyer), |e| matches!(e, oxswan_ike::Event::LivenessConfirmed { sa } if *sa == new))
        };
        assert!(sim.run_until(Duration::from_secs(2), answered), "liveness over the new IKE SA");
        let h = sim.ep(rekeyer).established()[0];
        assert_eq!(sim.ep(rekeyer).children(h).len(), 1, "the CHILD SA moved to the new IKE SA");
    }
}

/// The followup echoes the responder's link; one that does not is answered STATE_NOT_FOUND and the
/// rekey ends with the old IKE SA in place.
#[test]
fn an_ike_followup_ke_with_another_link_gets_state_not_found() {
    let mut sim = null_cipher_pair(9, Link::default(), with_proposals(alice_psk(), PQ), with_proposals(bob_psk(), PQ));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let taken = intercept(&mut sim, |exchange, response, _| exchange == ExchangeType::IKE_FOLLOWUP_KE && !response);
    let old = sim.ep(ALICE_IP).established()[0];
    let now = sim.now;
    sim.ep(ALICE_IP).rekey_ike(now, old).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |_| taken.borrow().is_some()));
    let request = taken.borrow().clone().unwrap();
    let m = reseal(&request, other_link);
    let before = sim.log.len();
    let now = sim.now;
    sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), &m);
    sim.advance(Duration::from_secs(1));
    let answer = sim.log[before..].iter().find(|(src, _, _)| src.ip().to_string() == BOB_IP).unwrap();
    assert_eq!(payloads(&answer.2), ["N(STATE_NOT_FOUND)"]);
    assert_eq!(sim.ep(BOB_IP).established().len(), 1);
    assert_eq!(sim.ep(ALICE_IP).established(), [old], "Alice keeps the old IKE SA");
}

/// A path from Bob that carries no datagram over 600 octets: his IKE_INTERMEDIATE answer (ML-KEM-
/// 1024's ciphertext, in fragments of the configured size) is lost until it goes in the smaller
/// fragments of RFC 7383 §2.5.2, cut again after his keys changed: with the keys it first went out
/// with, and Alice's request, cut again too, still opened with the keys it came with.
#[test]
fn an_intermediate_answer_cut_again_after_the_keys_changed_still_gets_through() {
    let pq = "aes256gcm16-prfsha256-x25519-ke1_mlkem1024";
    let mut sim = pair(10, Link::default(), with_proposals(alice_psk(), pq), with_proposals(bob_psk(), pq));
    sim.drop_filter = Some(Box::new(|_, d| {
        let (exchange, response, _) = describe(d);
        exchange == ExchangeType::IKE_INTERMEDIATE && response && d.len() > 600
    }));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(40), both_up), "{:#?}", named_messages(&sim, 0));
    let a = child(sim.events(ALICE_IP)).unwrap();
    let b = child(sim.events(BOB_IP)).unwrap();
    assert_eq!(a.encr_out.expose(), b.encr_in.expose());
}
