//! IKE_SA_INIT between an initiator and a responder in process, with the real and the deterministic
//! crypto providers. Each step names the message it carries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::payloads;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::proposal::parse_ike_proposals;
use oxswan_crypto::test_provider::TestProvider;
use oxswan_ike::IkeError;
use oxswan_ike::init::{InitReply, InitRequestSent, InitResponse, ResponderParams, random_spi, respond};
use oxswan_wire::sa::Proposal;
use oxswan_wire::{IkeSpi, KeId, Message, NotifyType, Payload};

fn proposals(s: &str) -> Vec<Proposal> {
    parse_ike_proposals(s).unwrap()
}

const SPI_R: IkeSpi = IkeSpi([0x52; 8]);

/// IKE_SA_INIT without the NAT detection notifies, which the endpoint adds: `{ SA, KE, No, N(HASH_ALG),
/// N(FRAG_SUP) }`.
const SA_INIT: [&str; 5] = ["SA", "KE", "No", "N(SIGNATURE_HASH_ALGORITHMS)", "N(IKEV2_FRAGMENTATION_SUPPORTED)"];

fn providers() -> Vec<(&'static str, CryptoProvider, CryptoProvider)> {
    vec![
        ("aws-lc", oxswan_crypto::default_provider(), oxswan_crypto::default_provider()),
        ("test", TestProvider::new(1).build(), TestProvider::new(2).build()),
    ]
}

#[test]
fn both_sides_derive_the_same_keys() {
    for (name, pi, pr) in providers() {
        for suite in [
            "aes256gcm16-prfsha256-x25519",
            "aes128-sha256-modp2048",
            "aes256-sha384-ecp384",
            "chacha20poly1305-prfsha256-x25519",
            "aes256gcm16-prfsha384-mlkem768",
        ] {
            let ours = proposals(suite);
            /* IKE_SA_INIT { SA, KE, No, N(HASH_ALG), N(FRAG_SUP) } --> (no NAT detection: no addresses given) */
            let init = InitRequestSent::start(&pi, &ours, None, random_spi(&pi).unwrap(), Vec::new()).unwrap();
            assert_eq!(payloads(init.request()), SA_INIT, "{name} {suite}");
            let params = ResponderParams { proposals: &ours, prefer_initiator: false, extra: &[] };
            let InitReply::Accepted { response, sa: r } = respond(&pr, &params, init.request(), SPI_R).unwrap() else {
                panic!("{name} {suite}: rejected")
            };
            /* <-- IKE_SA_INIT { SA, KE, No, N(HASH_ALG), N(FRAG_SUP) } */
            assert_eq!(payloads(&response), SA_INIT, "{name} {suite}");
            let InitResponse::Established(i) = init.handle_response(&pi, &response).unwrap() else {
                panic!("{name} {suite}: not established")
            };
            assert_eq!((i.spi_i, i.spi_r), (r.spi_i, r.spi_r));
            assert_eq!(i.spi_r, SPI_R);
            assert_eq!(i.keys.sk_d, r.keys.sk_d, "{name} {suite}");
            assert_eq!(i.keys.sk_ei, r.keys.sk_ei);
            assert_eq!(i.keys.sk_er, r.keys.sk_er);
            assert_eq!(i.keys.sk_ai, r.keys.sk_ai);
            assert_eq!(i.keys.sk_pi, r.keys.sk_pi);
            assert_eq!(i.keys.sk_pr, r.keys.sk_pr);
            assert_ne!(i.keys.sk_ei, i.keys.sk_er);
            assert_eq!((i.ni.len(), i.nr.len()), (32, 32));
            assert_eq!((&i.request, &i.response), (&r.request, &r.response));
            assert_eq!(i.suite, r.suite);
            // The response announces what the request did.
            let notifies: Vec<_> = Message::parse(&response)
                .unwrap()
                .parse_payloads()
                .unwrap()
                .into_iter()
                .filter_map(|p| if let Payload::Notify(n) = p { Some(n.notify_type) } else { None })
                .collect();
            assert!(notifies.contains(&NotifyType::SIGNATURE_HASH_ALGORITHMS));
            assert!(notifies.contains(&NotifyType::IKEV2_FRAGMENTATION_SUPPORTED));
        }
    }
}

#[test]
fn invalid_ke_payload_is_retried_once_with_the_responders_group() {
    let p = oxswan_crypto::default_provider();
    let initiator = proposals("aes256gcm16-prfsha256-x25519-ecp256");
    let responder = proposals("aes256gcm16-prfsha256-ecp256");
    let params = ResponderParams { proposals: &responder, prefer_initiator: false, extra: &[] };
    /* IKE_SA_INIT { SA, KE(x25519), No, N(HASH_ALG), N(FRAG_SUP) } --> */
    let first = InitRequestSent::start(&p, &initiator, None, random_spi(&p).unwrap(), Vec::new()).unwrap();
    assert_eq!(payloads(first.request()), SA_INIT);
    let InitReply::Rejected { response, error, .. } = respond(&p, &params, first.request(), SPI_R).unwrap() else {
        panic!("accepted a group it does not allow")
    };
    assert!(matches!(error, IkeError::InvalidKePayload(KeId::ECP256)));
    /* <-- IKE_SA_INIT { N(INVAL_KE, ecp256) } */
    assert_eq!(payloads(&response), ["N(INVALID_KE_PAYLOAD)"]);
    let InitResponse::RetryWithGroup(g) = first.handle_response(&p, &response).unwrap() else { panic!() };
    assert_eq!(g, KeId::ECP256);
    /* IKE_SA_INIT { SA, KE(ecp256), No, N(HASH_ALG), N(FRAG_SUP) } --> */
    let spi_before = first.spi_i();
    let second = first.retry_with_group(&p, g).unwrap();
    assert_eq!(payloads(second.request()), SA_INIT);
    assert_eq!(second.spi_i(), spi_before, "the retry keeps the SPI");
    let InitReply::Accepted { response, sa: r } = respond(&p, &params, second.request(), SPI_R).unwrap() else {
        panic!()
    };
    /* <-- IKE_SA_INIT { SA, KE(ecp256), No, N(HASH_ALG), N(FRAG_SUP) } */
    assert_eq!(payloads(&response), SA_INIT);
    let InitResponse::Established(i) = second.handle_response(&p, &response).unwrap() else { panic!() };
    assert_eq!(i.keys.sk_d, r.keys.sk_d);
}

#[test]
fn responder_uses_the_sent_group_when_it_is_acceptable() {
    let p = oxswan_crypto::default_provider();
    // We prefer ecp256 but accept x25519; the initiator sent x25519: no extra round trip.
    let responder = proposals("aes256gcm16-prfsha256-ecp256-x25519");
    let initiator = proposals("aes256gcm16-prfsha256-x25519-ecp256");
    let init = InitRequestSent::start(&p, &initiator, None, random_spi(&p).unwrap(), Vec::new()).unwrap();
    let params = ResponderParams { proposals: &responder, prefer_initiator: false, extra: &[] };
    let InitReply::Accepted { response, sa } = respond(&p, &params, init.request(), SPI_R).unwrap() else { panic!() };
    assert!(matches!(init.handle_response(&p, &response).unwrap(), InitResponse::Established(_)));
    assert_eq!(sa.proposal.transforms_of(oxswan_wire::TransformType::KE).next().unwrap().transform_id, 31);
}

#[test]
fn no_proposal_chosen_on_both_sides() {
    let p = oxswan_crypto::default_provider();
    let init = InitRequestSent::start(
        &p,
        &proposals("aes256gcm16-prfsha256-x25519"),
        None,
        random_spi(&p).unwrap(),
        Vec::new(),
    )
    .unwrap();
    let responder = proposals("aes128-sha256-modp2048");
    let params = ResponderParams { proposals: &responder, prefer_initiator: false, extra: &[] };
    let InitReply::Rejected { response, error, .. } = respond(&p, &params, init.request(), SPI_R).unwrap() else {
        panic!()
    };
    assert!(matches!(error, IkeError::NoProposalChosen));
    // No state: the error response carries a zero responder SPI.
    assert!(Message::parse(&response).unwrap().header().spi_r.is_zero());
    /* <-- IKE_SA_INIT { N(NO_PROP) } */
    assert_eq!(payloads(&response), ["N(NO_PROPOSAL_CHOSEN)"]);
    assert!(matches!(init.handle_response(&p, &response), Err(IkeError::PeerNotify(NotifyType::NO_PROPOSAL_CHOSEN))));
}

#[test]
fn cookie_request_is_surfaced() {
    let p = oxswan_crypto::default_provider();
    let init = InitRequestSent::start(
        &p,
        &proposals("aes256gcm16-prfsha256-x25519"),
        None,
        random_spi(&p).unwrap(),
        Vec::new(),
    )
    .unwrap();
    let header = oxswan_wire::Header::new(
        init.spi_i(),
        IkeSpi::ZERO,
        oxswan_wire::ExchangeType::IKE_SA_INIT,
        oxswan_wire::Flags::RESPONSE,
        0,
    );
    let cookie = vec![0xc0; 20];
    let response = header
        .encode(&[Payload::Notify(oxswan_wire::notify::NotifyPayload::new(NotifyType::COOKIE, cookie.clone()))])
        .unwrap();
    let InitResponse::RetryWithCookie(c) = init.handle_response(&p, &response).unwrap() else { panic!() };
    assert_eq!(c, cookie);
    // The retry carries the cookie as its first payload (RFC 7296 §2.6).
    let before = Message::parse(init.request()).unwrap().parse_payloads().unwrap();
    let retry = init.with_cookie(&c).unwrap();
    let mut after = Message::parse(retry.request()).unwrap().parse_payloads().unwrap();
    let first = after.remove(0);
    assert!(matches!(first, Payload::Notify(n) if n.notify_type == NotifyType::COOKIE && n.data == cookie));
    assert_eq!(after, before, "all other payloads unchanged");
}

#[test]
fn tampered_responses_are_rejected() {
    let p = oxswan_crypto::default_provider();
    let ours = proposals("aes256gcm16-prfsha256-x25519");
    let params = ResponderParams { proposals: &ours, prefer_initiator: false, extra: &[] };
    let fresh = || InitRequestSent::start(&p, &ours, None, random_spi(&p).unwrap(), Vec::new()).unwrap();

    // Wrong initiator SPI.
    let init = fresh();
    let InitReply::Accepted { mut response, .. } = respond(&p, &params, init.request(), SPI_R).unwrap() else {
        panic!()
    };
    response[0] ^= 1;
    assert!(matches!(init.handle_response(&p, &response), Err(IkeError::Unexpected(_))));

    // A responder that picks a proposal we did not offer.
    let init = fresh();
    let other = proposals("aes128gcm16-prfsha256-x25519");
    let evil = ResponderParams { proposals: &other, prefer_initiator: false, extra: &[] };
    let mut req = Message::parse(init.request()).unwrap().parse_payloads().unwrap();
    if let Payload::Sa(sa) = &mut req[0] {
        sa.proposals = other.clone();
    }
    let forged_req = Message::parse(init.request()).unwrap().header().encode(&req).unwrap();
    let InitReply::Accepted { response, .. } = respond(&p, &evil, &forged_req, SPI_R).unwrap() else { panic!() };
    assert!(matches!(init.handle_response(&p, &response), Err(IkeError::NoProposalChosen)));

    // Our own request is not a response.
    let init = fresh();
    let req = init.request().to_vec();
    assert!(init.handle_response(&p, &req).is_err());
}

#[test]
fn malformed_requests_are_dropped_or_answered() {
    let p = oxswan_crypto::default_provider();
    let ours = proposals("aes256gcm16-prfsha256-x25519");
    let params = ResponderParams { proposals: &ours, prefer_initiator: false, extra: &[] };
    let init = InitRequestSent::start(&p, &ours, None, random_spi(&p).unwrap(), Vec::new()).unwrap();
    // A truncated datagram is dropped.
    assert!(respond(&p, &params, &init.request()[..20], SPI_R).is_err());
    // Without a nonce: INVALID_SYNTAX.
    let mut payloads = Message::parse(init.request()).unwrap().parse_payloads().unwrap();
    payloads.retain(|p| !matches!(p, Payload::Nonce(_)));
    let bytes = Message::parse(init.request()).unwrap().header().encode(&payloads).unwrap();
    let InitReply::Rejected { response, error, .. } = respond(&p, &params, &bytes, SPI_R).unwrap() else { panic!() };
    assert!(matches!(error, IkeError::MissingPayload(oxswan_wire::PayloadType::NONCE)));
    let n = Message::parse(&response).unwrap().parse_payloads().unwrap().remove(0);
    assert!(matches!(n, Payload::Notify(n) if n.notify_type == NotifyType::INVALID_SYNTAX));
    // Every truncation with fixed-up length: never a panic.
    let req = init.request().to_vec();
    for cut in 28..req.len() {
        let mut b = req[..cut].to_vec();
        b[24..28].copy_from_slice(&u32::try_from(cut).unwrap().to_be_bytes());
        let _ = respond(&p, &params, &b, SPI_R);
    }
}

/// strongSwan's real IKE_SA_INIT request (crates/wire/tests/data) is accepted by our responder, which
/// selects its proposal and answers with an X25519 value.
#[test]
fn answers_strongswans_request() {
    let p = oxswan_crypto::default_provider();
    let request = include_bytes!("../../wire/tests/data/charon-psk-ike_sa_init-req.bin");
    let ours = proposals("aes256gcm16-prfsha256-x25519");
    let params = ResponderParams { proposals: &ours, prefer_initiator: false, extra: &[] };
    let InitReply::Accepted { response, sa } = respond(&p, &params, request, SPI_R).unwrap() else { panic!() };
    assert_eq!(sa.ni.len(), 32);
    let msg = Message::parse(&response).unwrap();
    assert_eq!(msg.header().spi_i, Message::parse(request).unwrap().header().spi_i);
    assert!(
        msg.parse_payloads()
            .unwrap()
            .iter()
            .any(|p| matches!(p, Payload::Ke(k) if k.group == KeId::CURVE25519 && k.data.len() == 32))
    );
}

/// Issue 18's corpus of malformed KE payloads: an X25519 value of 0, 1, 31, 33, 64, 1000 or 60,000
/// octets, an all-zero share, and a KE payload of 2 octets. Each is answered (never silence, which
/// left the initiator retransmitting for minutes): NO_PROPOSAL_CHOSEN for a value that is not one
/// of the group's, as strongSwan answers ("applying DH public value failed"), INVALID_SYNTAX for a
/// payload too short to hold its group (RFC 7296 §3.4).
#[test]
fn malformed_ke_payloads_are_answered() {
    let p = oxswan_crypto::default_provider();
    let ours = proposals("aes256gcm16-prfsha256-x25519");
    let params = ResponderParams { proposals: &ours, prefer_initiator: false, extra: &[] };
    let init = InitRequestSent::start(&p, &ours, None, random_spi(&p).unwrap(), Vec::new()).unwrap();
    let msg = Message::parse(init.request()).unwrap();
    let header = *msg.header();
    let answer = |bytes: &[u8]| {
        let InitReply::Rejected { response, notify, .. } = respond(&p, &params, bytes, SPI_R).unwrap() else {
            panic!("accepted")
        };
        let first = Message::parse(&response).unwrap().parse_payloads().unwrap().remove(0);
        assert!(matches!(&first, Payload::Notify(n) if n.notify_type == notify), "{first:?}");
        notify
    };
    for len in [0usize, 1, 31, 33, 64, 1000, 60_000] {
        let mut payloads = msg.parse_payloads().unwrap();
        for pl in &mut payloads {
            if let Payload::Ke(ke) = pl {
                ke.data = vec![0x42; len];
            }
        }
        let bytes = header.encode(&payloads).unwrap();
        assert_eq!(answer(&bytes), NotifyType::NO_PROPOSAL_CHOSEN, "X25519 value of {len} octets");
    }
    let mut payloads = msg.parse_payloads().unwrap();
    for pl in &mut payloads {
        if let Payload::Ke(ke) = pl {
            ke.data = vec![0; 32];
        }
    }
    assert_eq!(answer(&header.encode(&payloads).unwrap()), NotifyType::NO_PROPOSAL_CHOSEN, "all-zero share");
    // A KE payload of 2 octets: its generic header (4) and half of the group field, the payload
    // length saying 6; the message and header lengths fixed up to match.
    let bytes = init.request().to_vec();
    let ke_at = {
        // The SA payload comes first, right after the 28-octet header; KE follows it.
        let sa_len = usize::from(u16::from_be_bytes([bytes[30], bytes[31]]));
        28 + sa_len
    };
    let ke_len = usize::from(u16::from_be_bytes([bytes[ke_at + 2], bytes[ke_at + 3]]));
    let mut short = bytes[..ke_at].to_vec();
    short.extend_from_slice(&[bytes[ke_at], 0, 0, 6, 0, 31]);
    short.extend_from_slice(&bytes[ke_at + ke_len..]);
    let total = u32::try_from(short.len()).unwrap();
    short[24..28].copy_from_slice(&total.to_be_bytes());
    assert_eq!(answer(&short), NotifyType::INVALID_SYNTAX, "a 2-octet KE payload");
}
