//! The client against a fake RADIUS server built on the crate's own encoder: EAP conversations,
//! answers that must be dropped, retransmission, fail-over, timeouts and accounting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use oxswan_radius::attribute::types;
use oxswan_radius::mppe::{self, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, VENDOR_MICROSOFT};
use oxswan_radius::{
    AccountingRecord, AcctStatus, Answer, Attribute, Code, DropReason, InvalidAnswer, Packet, RadiusClient,
    RadiusError, RequestId, ServerId, TerminateCause, Usage, station_id,
};
use oxswan_wire::payloads::EapCode;

fn send(client: &mut RadiusClient) -> (SocketAddr, Vec<u8>) {
    client.poll_transmit().expect("a datagram to send")
}

/// One request of the opening kind: sent, decoded by server 0.
fn open(client: &mut RadiusClient, now: Instant, random: &TestRandom) -> (RequestId, Packet) {
    let id = client.eap_request(now, &session(), &identity(), random).unwrap();
    let (to, bytes) = send(client);
    assert_eq!(to, server(0).auth);
    (id, decode_request(&secret(0), &bytes))
}

fn challenge_to(req: &Packet, state: &[u8]) -> Vec<u8> {
    let mut attrs =
        eap_attrs(&eap(EapCode::REQUEST, 1, &[4, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]));
    attrs.push(Attribute::State(state.to_vec()));
    respond(&secret(0), req, Code::ACCESS_CHALLENGE, attrs)
}

#[test]
fn access_request_carries_what_strongswan_sends() {
    let random = TestRandom::new(1);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let mut s = session();
    s.acct_session_id = Some("1700000000-7".into());
    client.eap_request(now, &s, &identity(), &random).unwrap();
    let (to, bytes) = send(&mut client);
    assert_eq!(to, server(0).auth);
    assert!(client.poll_transmit().is_none());
    let req = decode_request(&secret(0), &bytes);
    assert_eq!(req.code, Code::ACCESS_REQUEST);
    let ma = match req.attributes[0] {
        Attribute::MessageAuthenticator(m) => m,
        ref other => panic!("Message-Authenticator first, got {other:?}"),
    };
    assert_ne!(ma, [0; 16]);
    assert_eq!(
        req.attributes[1..],
        [
            Attribute::UserName(b"alice".to_vec()),
            Attribute::NasPortType(5),
            Attribute::ServiceType(2),
            Attribute::NasPort(7),
            Attribute::NasPortId(b"rw-eap".to_vec()),
            Attribute::NasIpAddress(Ipv4Addr::new(192, 0, 2, 1)),
            Attribute::CalledStationId(b"192.0.2.1[4500]".to_vec()),
            Attribute::CallingStationId(b"198.51.100.7[4500]".to_vec()),
            Attribute::AcctSessionId(b"1700000000-7".to_vec()),
            Attribute::EapMessage(eap_bytes(&identity())),
            Attribute::NasIdentifier(b"oxswan".to_vec()),
        ]
    );
    // A random Request Authenticator.
    assert_ne!(req.authenticator, [0; 16]);
}

#[test]
fn station_ids_are_written_as_strongswan_does() {
    assert_eq!(station_id("198.51.100.7:4500".parse().unwrap()), "198.51.100.7[4500]");
    assert_eq!(station_id("[2001:db8::7]:500".parse().unwrap()), "2001:db8::7[500]");
    assert_eq!(station_id("198.51.100.7:0".parse().unwrap()), "198.51.100.7");
}

#[test]
fn ipv6_nas_address_and_empty_values_left_out() {
    let random = TestRandom::new(2);
    let mut cfg = config(1, 3);
    cfg.nas_ip = Some(IpAddr::V6("2001:db8::1".parse().unwrap()));
    cfg.nas_identifier.clear();
    let mut client = RadiusClient::new(cfg);
    let s = oxswan_radius::EapSession::new(Vec::new(), String::new(), String::new());
    client.eap_request(Instant::now(), &s, &identity(), &random).unwrap();
    let req = decode_request(&secret(0), &send(&mut client).1);
    assert_eq!(
        req.attributes[1..],
        [
            Attribute::NasPortType(5),
            Attribute::ServiceType(2),
            Attribute::NasIpv6Address("2001:db8::1".parse().unwrap()),
            Attribute::EapMessage(eap_bytes(&identity())),
        ]
    );
}

#[test]
fn challenge_challenge_accept_with_mppe_keys() {
    let random = TestRandom::new(3);
    let mut client = RadiusClient::new(config(2, 3));
    let now = Instant::now();
    let (id, req) = open(&mut client, now, &random);
    assert!(!req.attributes.iter().any(|a| a.kind() == types::STATE));

    // Challenge 1: an EAP-Request, State "s1".
    let (got, answer) = client.handle_datagram(now, server(0).auth, &challenge_to(&req, b"s1")).unwrap();
    assert_eq!(got, id);
    let Answer::Challenge { eap: e, state, server: srv } = answer else { panic!("{answer:?}") };
    assert_eq!(e.code, EapCode::REQUEST);
    assert_eq!(e.data[0], 4);
    assert_eq!(state.as_deref(), Some(&b"s1"[..]));
    assert_eq!(srv, ServerId::new(0));
    let mut s = session();
    s.challenged(srv, state);

    // Request 2: an EAP-Response of 600 octets, in 253 + 253 + 94 octets; State echoed.
    let big = eap(EapCode::RESPONSE, 1, &[vec![13u8, 0x80], vec![0x5a; 594]].concat());
    assert_eq!(eap_bytes(&big).len(), 600);
    let id2 = client.eap_request(now, &s, &big, &random).unwrap();
    let (to, bytes) = send(&mut client);
    assert_eq!(to, server(0).auth);
    let req2 = decode_request(&secret(0), &bytes);
    let (msg, pieces) = eap_of(&req2.attributes);
    assert_eq!((msg, pieces), (eap_bytes(&big), 3));
    let lens: Vec<usize> = req2
        .attributes
        .iter()
        .filter_map(|a| if let Attribute::EapMessage(v) = a { Some(v.len()) } else { None })
        .collect();
    assert_eq!(lens, [253, 253, 94]);
    assert_eq!(req2.attributes.last(), Some(&Attribute::State(b"s1".to_vec())));
    assert_ne!(req2.identifier, req.identifier);
    assert_ne!(req2.authenticator, req.authenticator);

    // Challenge 2: an EAP-Request of 700 octets in three attributes, State "s2".
    let big_request = eap(EapCode::REQUEST, 2, &[vec![13u8, 0xc0], vec![0xa5; 694]].concat());
    let mut attrs = eap_attrs(&big_request);
    attrs.push(Attribute::State(b"s2".to_vec()));
    let bytes = respond(&secret(0), &req2, Code::ACCESS_CHALLENGE, attrs);
    let (got, answer) = client.handle_datagram(now, server(0).auth, &bytes).unwrap();
    assert_eq!(got, id2);
    let Answer::Challenge { eap: e, state, server: srv } = answer else { panic!("{answer:?}") };
    assert_eq!(e, big_request);
    s.challenged(srv, state);

    // Request 3, then the Access-Accept with the keys, encrypted with its Request Authenticator.
    let id3 = client.eap_request(now, &s, &eap(EapCode::RESPONSE, 2, &[13]), &random).unwrap();
    let req3 = decode_request(&secret(0), &send(&mut client).1);
    assert_eq!(req3.attributes.last(), Some(&Attribute::State(b"s2".to_vec())));
    let recv: Vec<u8> = (0..32).collect();
    let send_key: Vec<u8> = (32..64).collect();
    let recv_c = mppe::encrypt_key(&recv, [0x80, 0x11], &secret(0), &req3.authenticator).unwrap();
    let send_c = mppe::encrypt_key(&send_key, [0x80, 0x22], &secret(0), &req3.authenticator).unwrap();
    let attrs = vec![
        Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_RECV_KEY, &recv_c).unwrap(),
        Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_SEND_KEY, &send_c).unwrap(),
        Attribute::EapMessage(eap_bytes(&eap(EapCode::SUCCESS, 2, &[]))),
        Attribute::Class(b"group=staff".to_vec()),
        Attribute::Class(b"\x00\x01binary".to_vec()),
        Attribute::FramedIpAddress(Ipv4Addr::new(10, 3, 0, 9)),
        Attribute::FramedIpv6Address("fd00::9".parse().unwrap()),
        Attribute::SessionTimeout(3600),
        Attribute::AcctInterimInterval(600),
    ];
    let bytes = respond(&secret(0), &req3, Code::ACCESS_ACCEPT, attrs.clone());
    let (got, answer) = client.handle_datagram(now, server(0).auth, &bytes).unwrap();
    assert_eq!(got, id3);
    let Answer::Accept { eap: e, msk, class, framed_ips, session_timeout, interim_interval, attributes } = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(e, Some(eap(EapCode::SUCCESS, 2, &[])));
    // MSK = MS-MPPE-Recv-Key | MS-MPPE-Send-Key (strongSwan's decrypt_msk()).
    let msk = msk.expect("an MSK");
    assert_eq!(msk.expose(), (0u8..64).collect::<Vec<u8>>().as_slice());
    assert_eq!(class, vec![b"group=staff".to_vec(), b"\x00\x01binary".to_vec()]);
    assert_eq!(
        framed_ips,
        vec![IpAddr::V4(Ipv4Addr::new(10, 3, 0, 9)), IpAddr::V6("fd00::9".parse::<Ipv6Addr>().unwrap())]
    );
    assert_eq!((session_timeout, interim_interval), (Some(3600), Some(600)));
    assert_eq!(attributes.len(), attrs.len() + 1);
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(client.stats().answers, 3);
    assert_eq!(client.stats().dropped, 0);
}

/// A conversation at its second request (the server bound to it), ready for the final answer.
fn second_request(client: &mut RadiusClient, now: Instant, random: &TestRandom) -> (RequestId, Packet) {
    let (_, req) = open(client, now, random);
    let Some((_, Answer::Challenge { server, state, .. })) =
        client.handle_datagram(now, server(0).auth, &challenge_to(&req, b"st"))
    else {
        panic!("a challenge")
    };
    let mut s = session();
    s.challenged(server, state);
    let id = client.eap_request(now, &s, &eap(EapCode::RESPONSE, 1, &[4, 1, 0]), random).unwrap();
    let (_, bytes) = send(client);
    (id, decode_request(&secret(0), &bytes))
}

#[test]
fn accept_without_or_with_partial_keys_has_no_msk() {
    let random = TestRandom::new(4);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (_, req) = second_request(&mut client, now, &random);
    let recv_c = mppe::encrypt_key(&[1; 32], [0x80, 1], &secret(0), &req.authenticator).unwrap();
    let bytes = respond(
        &secret(0),
        &req,
        Code::ACCESS_ACCEPT,
        vec![
            Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_RECV_KEY, &recv_c).unwrap(),
            Attribute::FramedIpAddress(Ipv4Addr::new(255, 255, 255, 254)),
        ],
    );
    let Some((_, Answer::Accept { eap, msk, framed_ips, .. })) = client.handle_datagram(now, server(0).auth, &bytes)
    else {
        panic!("an accept")
    };
    assert_eq!((eap, msk, framed_ips), (None, None, vec![]));
}

#[test]
fn short_mppe_keys_are_padded_to_64_octets() {
    let random = TestRandom::new(5);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (_, req) = second_request(&mut client, now, &random);
    let recv_c = mppe::encrypt_key(&[1; 16], [0x80, 1], &secret(0), &req.authenticator).unwrap();
    let send_c = mppe::encrypt_key(&[2; 16], [0x80, 2], &secret(0), &req.authenticator).unwrap();
    // Both keys in one Vendor-Specific attribute.
    let mut data = vec![MS_MPPE_SEND_KEY, (send_c.len() + 2) as u8];
    data.extend_from_slice(&send_c);
    data.extend_from_slice(&[MS_MPPE_RECV_KEY, (recv_c.len() + 2) as u8]);
    data.extend_from_slice(&recv_c);
    let bytes = respond(
        &secret(0),
        &req,
        Code::ACCESS_ACCEPT,
        vec![Attribute::VendorSpecific { vendor_id: VENDOR_MICROSOFT, data }],
    );
    let Some((_, Answer::Accept { msk: Some(msk), .. })) = client.handle_datagram(now, server(0).auth, &bytes) else {
        panic!("an accept with an MSK")
    };
    assert_eq!(msk.expose(), [vec![1u8; 16], vec![2u8; 16], vec![0u8; 32]].concat().as_slice());
}

#[test]
fn reject_carries_eap_failure_and_reply_messages() {
    let random = TestRandom::new(6);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (id, req) = second_request(&mut client, now, &random);
    let bytes = respond(
        &secret(0),
        &req,
        Code::ACCESS_REJECT,
        vec![
            Attribute::EapMessage(eap_bytes(&eap(EapCode::FAILURE, 1, &[]))),
            Attribute::ReplyMessage(b"wrong password".to_vec()),
            Attribute::ReplyMessage(b"try again".to_vec()),
        ],
    );
    let (got, answer) = client.handle_datagram(now, server(0).auth, &bytes).unwrap();
    assert_eq!(got, id);
    assert_eq!(
        answer,
        Answer::Reject {
            eap: Some(eap(EapCode::FAILURE, 1, &[])),
            reply_message: Some("wrong password\ntry again".into())
        }
    );
}

#[test]
fn reject_without_message_authenticator_or_eap_is_taken() {
    let random = TestRandom::new(7);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (id, req) = open(&mut client, now, &random);
    let bytes = respond_raw(&secret(0), &req, Code::ACCESS_REJECT, vec![]);
    assert_eq!(
        client.handle_datagram(now, server(0).auth, &bytes),
        Some((id, Answer::Reject { eap: None, reply_message: None }))
    );
}

#[test]
fn accept_to_the_opening_request_is_refused() {
    let random = TestRandom::new(8);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (id, req) = open(&mut client, now, &random);
    let bytes = respond(&secret(0), &req, Code::ACCESS_ACCEPT, vec![]);
    assert_eq!(
        client.handle_datagram(now, server(0).auth, &bytes),
        Some((id, Answer::Invalid(InvalidAnswer::AcceptWithoutChallenge)))
    );
}

#[test]
fn unusable_authenticated_answers_end_the_request() {
    let random = TestRandom::new(9);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();

    let (id, req) = open(&mut client, now, &random);
    let bytes = respond(&secret(0), &req, Code::ACCESS_CHALLENGE, vec![Attribute::State(b"x".to_vec())]);
    assert_eq!(
        client.handle_datagram(now, server(0).auth, &bytes),
        Some((id, Answer::Invalid(InvalidAnswer::MissingEap)))
    );

    let (id, req) = open(&mut client, now, &random);
    let bytes = respond(&secret(0), &req, Code::ACCESS_CHALLENGE, vec![Attribute::EapMessage(vec![1, 2, 0, 9, 4])]);
    assert!(matches!(
        client.handle_datagram(now, server(0).auth, &bytes),
        Some((got, Answer::Invalid(InvalidAnswer::BadEap(_)))) if got == id
    ));

    let (id, req) = open(&mut client, now, &random);
    let bytes = respond(&secret(0), &req, Code::ACCESS_CHALLENGE, eap_attrs(&eap(EapCode::SUCCESS, 1, &[])));
    assert_eq!(
        client.handle_datagram(now, server(0).auth, &bytes),
        Some((id, Answer::Invalid(InvalidAnswer::UnexpectedEap { code: Code::ACCESS_CHALLENGE, eap: 3 })))
    );

    let (id, req) = second_request(&mut client, now, &random);
    let bytes = respond(&secret(0), &req, Code::ACCESS_ACCEPT, eap_attrs(&eap(EapCode::FAILURE, 1, &[])));
    assert_eq!(
        client.handle_datagram(now, server(0).auth, &bytes),
        Some((id, Answer::Invalid(InvalidAnswer::UnexpectedEap { code: Code::ACCESS_ACCEPT, eap: 4 })))
    );
    assert_eq!(client.in_flight(), 0);
}

/// Recomputes the Response Authenticator of `bytes` as answer to `req` after a change, so that only
/// the Message-Authenticator is wrong.
fn resign_response_authenticator(bytes: &mut [u8], req: &Packet, secret: &[u8]) {
    use md5::Digest;
    bytes[4..20].copy_from_slice(&req.authenticator);
    let mut h = md5::Md5::new();
    h.update(&*bytes);
    h.update(secret);
    let d: [u8; 16] = h.finalize().into();
    bytes[4..20].copy_from_slice(&d);
}

#[test]
fn tampered_answers_are_dropped_and_the_real_one_still_taken() {
    let random = TestRandom::new(10);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (id, req) = open(&mut client, now, &random);
    let good = challenge_to(&req, b"s1");

    // The Response Authenticator changed.
    let mut bad = good.clone();
    bad[10] ^= 0x01;
    assert_eq!(client.handle_datagram(now, server(0).auth, &bad), None);
    assert_eq!(client.last_drop(), Some(&DropReason::BadResponseAuthenticator));

    // An attribute changed (the State's last octet).
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    assert_eq!(client.handle_datagram(now, server(0).auth, &bad), None);
    assert_eq!(client.last_drop(), Some(&DropReason::BadResponseAuthenticator));

    // Signed with another secret.
    let other = respond(b"not the secret", &req, Code::ACCESS_CHALLENGE, vec![Attribute::State(b"s1".to_vec())]);
    assert_eq!(client.handle_datagram(now, server(0).auth, &other), None);
    assert_eq!(client.last_drop(), Some(&DropReason::BadResponseAuthenticator));

    // A wrong Message-Authenticator under a Response Authenticator that verifies.
    let mut bad = good.clone();
    assert_eq!(bad[20], types::MESSAGE_AUTHENTICATOR);
    bad[22] ^= 0x80;
    resign_response_authenticator(&mut bad, &req, &secret(0));
    assert_eq!(client.handle_datagram(now, server(0).auth, &bad), None);
    assert_eq!(client.last_drop(), Some(&DropReason::BadMessageAuthenticator));

    // No Message-Authenticator at all, with EAP-Message.
    let mut attrs = eap_attrs(&eap(EapCode::REQUEST, 1, &[4, 1, 0]));
    attrs.push(Attribute::State(b"s1".to_vec()));
    let bare = respond_raw(&secret(0), &req, Code::ACCESS_CHALLENGE, attrs);
    assert_eq!(client.handle_datagram(now, server(0).auth, &bare), None);
    assert_eq!(client.last_drop(), Some(&DropReason::MissingMessageAuthenticator));

    // Two.
    let mut attrs = vec![Attribute::MessageAuthenticator([0; 16])];
    attrs.extend(eap_attrs(&eap(EapCode::REQUEST, 1, &[4, 1, 0])));
    let two = respond(&secret(0), &req, Code::ACCESS_CHALLENGE, attrs);
    assert_eq!(client.handle_datagram(now, server(0).auth, &two), None);
    assert_eq!(client.last_drop(), Some(&DropReason::DuplicateMessageAuthenticator));

    // Padding past Length is ignored (RFC 2865 §3): the real answer, padded, is taken.
    assert_eq!(client.stats().dropped, 6);
    assert_eq!(client.stats().dropped_unauthenticated, 6);
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 7]);
    let (got, answer) = client.handle_datagram(now, server(0).auth, &padded).unwrap();
    assert_eq!(got, id);
    assert!(matches!(answer, Answer::Challenge { .. }));

    // Once answered, the same answer again is a duplicate.
    assert_eq!(client.handle_datagram(now, server(0).auth, &good), None);
    assert_eq!(client.last_drop(), Some(&DropReason::UnknownIdentifier(req.identifier)));
}

#[test]
fn accept_without_message_authenticator_is_dropped() {
    let random = TestRandom::new(11);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let (_, req) = second_request(&mut client, now, &random);
    let bytes = respond_raw(&secret(0), &req, Code::ACCESS_ACCEPT, vec![Attribute::Class(b"c".to_vec())]);
    assert_eq!(client.handle_datagram(now, server(0).auth, &bytes), None);
    assert_eq!(client.last_drop(), Some(&DropReason::MissingMessageAuthenticator));
    assert_eq!(client.in_flight(), 1);
}

#[test]
fn wrong_source_identifier_or_code_is_dropped() {
    let random = TestRandom::new(12);
    let mut client = RadiusClient::new(config(2, 3));
    let now = Instant::now();
    let (id, req) = open(&mut client, now, &random);
    let good = challenge_to(&req, b"s1");

    let stranger: SocketAddr = "127.0.0.99:1812".parse().unwrap();
    assert_eq!(client.handle_datagram(now, stranger, &good), None);
    assert_eq!(client.last_drop(), Some(&DropReason::UnexpectedSource(stranger)));
    // The right host, the wrong port.
    assert_eq!(client.handle_datagram(now, "127.0.0.10:1645".parse().unwrap(), &good), None);
    assert!(matches!(client.last_drop(), Some(DropReason::UnexpectedSource(_))));
    // Another configured server, or this server's accounting address: no such request there.
    assert_eq!(client.handle_datagram(now, server(1).auth, &good), None);
    assert_eq!(client.last_drop(), Some(&DropReason::UnknownIdentifier(req.identifier)));
    assert_eq!(client.handle_datagram(now, server(0).acct, &good), None);
    assert_eq!(client.last_drop(), Some(&DropReason::UnknownIdentifier(req.identifier)));
    // Another identifier.
    let mut bad = good.clone();
    bad[1] = bad[1].wrapping_add(1);
    assert_eq!(client.handle_datagram(now, server(0).auth, &bad), None);
    assert_eq!(client.last_drop(), Some(&DropReason::UnknownIdentifier(bad[1])));
    // An Accounting-Response to an Access-Request, and a request code.
    let acct = respond(&secret(0), &req, Code::ACCOUNTING_RESPONSE, vec![]);
    assert_eq!(client.handle_datagram(now, server(0).auth, &acct), None);
    assert_eq!(client.last_drop(), Some(&DropReason::WrongCode(Code::ACCOUNTING_RESPONSE)));
    let mut bad = good.clone();
    bad[0] = 1;
    assert_eq!(client.handle_datagram(now, server(0).auth, &bad), None);
    assert_eq!(client.last_drop(), Some(&DropReason::NotAnAnswer(Code::ACCESS_REQUEST)));
    // Malformed.
    assert_eq!(client.handle_datagram(now, server(0).auth, &good[..19]), None);
    assert!(matches!(client.last_drop(), Some(DropReason::Malformed(_))));
    assert_eq!(client.stats().dropped, 8);
    assert_eq!(client.stats().dropped_unauthenticated, 0);

    assert_eq!(client.handle_datagram(now, server(0).auth, &good).map(|(r, _)| r), Some(id));
}

#[test]
fn access_requests_are_retransmitted_unchanged_then_fail_over_then_time_out() {
    let random = TestRandom::new(13);
    let mut client = RadiusClient::new(config(2, 3));
    let t0 = Instant::now();
    let s = |n: u64| t0 + Duration::from_secs(n);
    let id = client.eap_request(t0, &session(), &identity(), &random).unwrap();
    let (to, first) = send(&mut client);
    assert_eq!(to, server(0).auth);
    assert_eq!(client.poll_timeout(), Some(s(2)));

    // Not yet.
    assert!(client.handle_timeout(s(1)).is_empty());
    assert!(client.poll_transmit().is_none());

    // Two retransmissions of the very same packet, 2 s apart (RFC 5080 §2.2.1).
    for k in [2, 4] {
        assert!(client.handle_timeout(s(k)).is_empty());
        assert_eq!(send(&mut client), (server(0).auth, first.clone()));
        assert!(client.poll_transmit().is_none());
        assert_eq!(client.poll_timeout(), Some(s(k + 2)));
    }

    // After 3 sends: server 1, a new identifier and Request Authenticator, its own secret.
    assert!(client.handle_timeout(s(6)).is_empty());
    let (to, moved) = send(&mut client);
    assert_eq!(to, server(1).auth);
    let moved_req = decode_request(&secret(1), &moved);
    let first_req = Packet::decode(&first).unwrap();
    assert_ne!(moved_req.authenticator, first_req.authenticator);
    assert_eq!(moved_req.attributes[1..], first_req.attributes[1..]);
    for k in [8, 10] {
        assert!(client.handle_timeout(s(k)).is_empty());
        assert_eq!(send(&mut client), (server(1).auth, moved.clone()));
    }
    assert_eq!(client.handle_timeout(s(12)), vec![(id, Answer::Timeout)]);
    assert!(client.poll_transmit().is_none());
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(client.in_flight(), 0);
    let st = client.stats();
    assert_eq!((st.retransmissions, st.failovers, st.timeouts), (4, 1, 1));

    // Server 0 did not answer: new conversations start with server 1.
    client.eap_request(s(12), &session(), &identity(), &random).unwrap();
    assert_eq!(send(&mut client).0, server(1).auth);
}

#[test]
fn a_late_answer_from_the_first_server_is_still_taken_after_fail_over() {
    let random = TestRandom::new(14);
    let mut client = RadiusClient::new(config(2, 1));
    let t0 = Instant::now();
    let id = client.eap_request(t0, &session(), &identity(), &random).unwrap();
    let (_, first) = send(&mut client);
    let req = decode_request(&secret(0), &first);
    client.handle_timeout(t0 + Duration::from_secs(2));
    assert_eq!(send(&mut client).0, server(1).auth);
    let (got, answer) = client.handle_datagram(t0, server(0).auth, &challenge_to(&req, b"late")).unwrap();
    assert_eq!(got, id);
    let Answer::Challenge { server, .. } = answer else { panic!() };
    assert_eq!(server, ServerId::new(0));
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.poll_timeout(), None);
}

/// The round trip of each answer to a request sent once, by kind; none for one sent again, which
/// may answer any of its copies (Karn's rule, RFC 6298 §3).
#[test]
fn round_trips_are_measured_for_requests_sent_once() {
    let random = TestRandom::new(15);
    let mut client = RadiusClient::new(config(1, 3));
    let t0 = Instant::now();
    let (id, req) = open(&mut client, t0, &random);
    let later = t0 + Duration::from_millis(37);
    assert_eq!(client.handle_datagram(later, server(0).auth, &challenge_to(&req, b"s")).map(|a| a.0), Some(id));
    assert_eq!(
        client.stats().last_round_trip,
        Some(oxswan_radius::RoundTrip { accounting: false, time: Duration::from_millis(37) })
    );

    let record = AccountingRecord::new(AcctStatus::Start, "1700000000-1".into(), b"alice".to_vec());
    let acct = client.accounting(later, &record, &random).unwrap();
    let req = decode_request(&secret(0), &send(&mut client).1);
    let answer = respond_raw(&secret(0), &req, Code::ACCOUNTING_RESPONSE, vec![]);
    let done = later + Duration::from_millis(5);
    assert_eq!(client.handle_datagram(done, server(0).acct, &answer), Some((acct, Answer::AccountingDone)));
    assert_eq!(
        client.stats().last_round_trip,
        Some(oxswan_radius::RoundTrip { accounting: true, time: Duration::from_millis(5) })
    );

    // Sent twice: the answer is taken, but it is no sample.
    let (id, req) = open(&mut client, done, &random);
    let again = done + Duration::from_secs(2);
    assert!(client.handle_timeout(again).is_empty());
    assert!(client.poll_transmit().is_some(), "retransmitted");
    let got = client.handle_datagram(again + Duration::from_millis(1), server(0).auth, &challenge_to(&req, b"t"));
    assert_eq!(got.map(|a| a.0), Some(id));
    assert_eq!(client.stats().last_round_trip, None);
}

#[test]
fn a_challenged_conversation_stays_with_its_server() {
    let random = TestRandom::new(15);
    let mut client = RadiusClient::new(config(2, 2));
    let t0 = Instant::now();
    let mut s = session();
    s.challenged(ServerId::new(1), Some(b"st".to_vec()));
    let id = client.eap_request(t0, &s, &eap(EapCode::RESPONSE, 1, &[4, 1, 0]), &random).unwrap();
    assert_eq!(send(&mut client).0, server(1).auth);
    assert!(client.handle_timeout(t0 + Duration::from_secs(2)).is_empty());
    assert_eq!(send(&mut client).0, server(1).auth);
    assert_eq!(client.handle_timeout(t0 + Duration::from_secs(4)), vec![(id, Answer::Timeout)]);
    assert!(client.poll_transmit().is_none());
    assert_eq!(client.stats().failovers, 0);

    s.server = Some(ServerId::new(2));
    assert_eq!(client.eap_request(t0, &s, &identity(), &random), Err(RadiusError::UnknownServer));
}

#[test]
fn cancel_forgets_the_request() {
    let random = TestRandom::new(16);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let id = client.eap_request(now, &session(), &identity(), &random).unwrap();
    let other = client.eap_request(now, &session(), &identity(), &random).unwrap();
    client.cancel(id);
    // Its datagram, not yet sent, is gone too.
    let (_, bytes) = send(&mut client);
    assert!(client.poll_transmit().is_none());
    let req = decode_request(&secret(0), &bytes);
    assert_eq!(client.in_flight(), 1);
    client.cancel(other);
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(client.handle_datagram(now, server(0).auth, &challenge_to(&req, b"x")), None);
    assert_eq!(client.last_drop(), Some(&DropReason::UnknownIdentifier(req.identifier)));
    client.cancel(other);
}

#[test]
fn identifiers_are_distinct_and_256_per_server() {
    let random = TestRandom::new(17);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..256 {
        client.eap_request(now, &session(), &identity(), &random).unwrap();
        ids.insert(send(&mut client).1[1]);
    }
    assert_eq!(ids.len(), 256);
    assert_eq!(client.eap_request(now, &session(), &identity(), &random), Err(RadiusError::IdentifiersExhausted));
    // Accounting goes to another address, with identifiers of its own.
    let record = AccountingRecord::new(AcctStatus::Start, "s".into(), b"alice".to_vec());
    assert!(client.accounting(now, &record, &random).is_ok());

    // With a second server, the 257th goes there.
    let mut client = RadiusClient::new(config(2, 3));
    for _ in 0..256 {
        client.eap_request(now, &session(), &identity(), &random).unwrap();
        assert_eq!(send(&mut client).0, server(0).auth);
    }
    client.eap_request(now, &session(), &identity(), &random).unwrap();
    assert_eq!(send(&mut client).0, server(1).auth);
}

#[test]
fn identifiers_freed_by_an_answer_are_used_again() {
    let random = TestRandom::new(18);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();
    for _ in 0..300 {
        let (id, req) = open(&mut client, now, &random);
        let r = respond(&secret(0), &req, Code::ACCESS_REJECT, vec![]);
        assert_eq!(client.handle_datagram(now, server(0).auth, &r).map(|(r, _)| r), Some(id));
    }
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn requests_that_cannot_be_built_are_refused() {
    let random = TestRandom::new(19);
    let now = Instant::now();
    let mut client = RadiusClient::new(config(0, 3));
    assert_eq!(client.eap_request(now, &session(), &identity(), &random), Err(RadiusError::NoServers));
    let mut cfg = config(1, 3);
    cfg.nas_identifier.clear();
    cfg.nas_ip = None;
    let mut client = RadiusClient::new(cfg);
    assert_eq!(client.eap_request(now, &session(), &identity(), &random), Err(RadiusError::NoNasIdentification));

    let mut client = RadiusClient::new(config(1, 3));
    assert!(matches!(client.eap_request(now, &session(), &identity(), &BrokenRandom), Err(RadiusError::Random(_))));
    let mut s = session();
    s.user_name = vec![b'a'; 254];
    assert!(matches!(
        client.eap_request(now, &s, &identity(), &random),
        Err(RadiusError::Codec(oxswan_radius::CodecError::ValueTooLong { kind: 1, length: 254 }))
    ));
    // An EAP message that does not fit in 4096 octets.
    let huge = eap(EapCode::RESPONSE, 1, &vec![13; 4000]);
    assert!(matches!(
        client.eap_request(now, &session(), &huge, &random),
        Err(RadiusError::Codec(oxswan_radius::CodecError::TooLarge(_)))
    ));
    assert_eq!(client.in_flight(), 0);
    assert!(client.poll_transmit().is_none());
}

fn acct_attrs(req: &Packet) -> Vec<Attribute> {
    req.attributes.clone()
}

#[test]
fn accounting_start_interim_and_stop() {
    let random = TestRandom::new(20);
    let mut client = RadiusClient::new(config(1, 3));
    let now = Instant::now();

    let mut start = AccountingRecord::new(AcctStatus::Start, "1700000000-7".into(), b"alice".to_vec());
    start.framed_ips = vec![IpAddr::V4(Ipv4Addr::new(10, 3, 0, 9)), IpAddr::V6("fd00::9".parse().unwrap())];
    start.framed_ipv6_prefix = Some(("fd00:1::".parse().unwrap(), 64));
    start.class = vec![b"group=staff".to_vec()];
    start.calling_station = "198.51.100.7[4500]".into();
    start.called_station = "192.0.2.1[4500]".into();
    start.nas_port = Some(7);
    start.nas_port_id = Some("rw-eap".into());
    // Ignored but for Stop.
    start.terminate_cause = Some(TerminateCause::USER_REQUEST);
    let id = client.accounting(now, &start, &random).unwrap();
    let (to, bytes) = send(&mut client);
    assert_eq!(to, server(0).acct);
    let req = decode_request(&secret(0), &bytes);
    assert_eq!(req.code, Code::ACCOUNTING_REQUEST);
    let nas = [
        Attribute::NasPortType(5),
        Attribute::ServiceType(2),
        Attribute::NasPort(7),
        Attribute::NasPortId(b"rw-eap".to_vec()),
        Attribute::NasIpAddress(Ipv4Addr::new(192, 0, 2, 1)),
        Attribute::CalledStationId(b"192.0.2.1[4500]".to_vec()),
        Attribute::CallingStationId(b"198.51.100.7[4500]".to_vec()),
        Attribute::UserName(b"alice".to_vec()),
        Attribute::FramedIpAddress(Ipv4Addr::new(10, 3, 0, 9)),
        Attribute::FramedIpv6Address("fd00::9".parse().unwrap()),
        Attribute::FramedIpv6Prefix { prefix_len: 64, prefix: "fd00:1::".parse().unwrap() },
    ];
    let mut expected = vec![
        Attribute::AcctStatusType(1),
        Attribute::AcctSessionId(b"1700000000-7".to_vec()),
        Attribute::Class(b"group=staff".to_vec()),
    ];
    expected.extend_from_slice(&nas);
    expected.push(Attribute::NasIdentifier(b"oxswan".to_vec()));
    assert_eq!(acct_attrs(&req), expected);
    let answer = respond_raw(&secret(0), &req, Code::ACCOUNTING_RESPONSE, vec![]);
    assert_eq!(client.handle_datagram(now, server(0).acct, &answer), Some((id, Answer::AccountingDone)));

    // Interim-Update with counters past 2^32 (RFC 2869 gigawords).
    let mut interim = start.clone();
    interim.status = AcctStatus::InterimUpdate;
    interim.usage =
        Some(Usage { input_octets: (5 << 32) + 7, output_octets: 3, input_packets: 11, output_packets: (1 << 32) + 2 });
    interim.session_time = Some(600);
    let id = client.accounting(now, &interim, &random).unwrap();
    let req = decode_request(&secret(0), &send(&mut client).1);
    let mut expected = vec![
        Attribute::AcctStatusType(3),
        Attribute::AcctSessionId(b"1700000000-7".to_vec()),
        Attribute::Class(b"group=staff".to_vec()),
    ];
    expected.extend_from_slice(&nas);
    expected.extend([
        Attribute::AcctOutputOctets(3),
        Attribute::AcctOutputPackets(2),
        Attribute::AcctInputOctets(7),
        Attribute::AcctInputGigawords(5),
        Attribute::AcctInputPackets(11),
        Attribute::AcctSessionTime(600),
        Attribute::NasIdentifier(b"oxswan".to_vec()),
    ]);
    assert_eq!(acct_attrs(&req), expected);
    // An Accounting-Response with a Message-Authenticator is taken too.
    let answer = respond(&secret(0), &req, Code::ACCOUNTING_RESPONSE, vec![]);
    assert_eq!(client.handle_datagram(now, server(0).acct, &answer), Some((id, Answer::AccountingDone)));

    // Stop, with the cause.
    let mut stop = interim.clone();
    stop.status = AcctStatus::Stop;
    stop.usage = Some(Usage { input_octets: 1, output_octets: (2 << 32) + 1, input_packets: 1, output_packets: 1 });
    stop.session_time = Some(700);
    stop.terminate_cause = Some(TerminateCause::LOST_CARRIER);
    let id = client.accounting(now, &stop, &random).unwrap();
    let req = decode_request(&secret(0), &send(&mut client).1);
    let got = acct_attrs(&req);
    assert_eq!(got[0], Attribute::AcctStatusType(2));
    let tail: Vec<Attribute> = got[3 + nas.len()..].to_vec();
    assert_eq!(
        tail,
        [
            Attribute::AcctOutputOctets(1),
            Attribute::AcctOutputGigawords(2),
            Attribute::AcctOutputPackets(1),
            Attribute::AcctInputOctets(1),
            Attribute::AcctInputPackets(1),
            Attribute::AcctSessionTime(700),
            Attribute::AcctTerminateCause(2),
            Attribute::NasIdentifier(b"oxswan".to_vec()),
        ]
    );
    // A tampered Accounting-Response is dropped; an Access-Accept is the wrong code.
    let mut bad = respond_raw(&secret(0), &req, Code::ACCOUNTING_RESPONSE, vec![]);
    bad[5] ^= 1;
    assert_eq!(client.handle_datagram(now, server(0).acct, &bad), None);
    assert_eq!(client.last_drop(), Some(&DropReason::BadResponseAuthenticator));
    let wrong = respond(&secret(0), &req, Code::ACCESS_ACCEPT, vec![]);
    assert_eq!(client.handle_datagram(now, server(0).acct, &wrong), None);
    assert_eq!(client.last_drop(), Some(&DropReason::WrongCode(Code::ACCESS_ACCEPT)));
    let answer = respond_raw(&secret(0), &req, Code::ACCOUNTING_RESPONSE, vec![]);
    assert_eq!(client.handle_datagram(now, server(0).acct, &answer), Some((id, Answer::AccountingDone)));
}

#[test]
fn accounting_retransmissions_carry_acct_delay_time_and_new_identifiers() {
    let random = TestRandom::new(21);
    let mut client = RadiusClient::new(config(2, 2));
    let t0 = Instant::now();
    let s = |n: u64| t0 + Duration::from_secs(n);
    let record = AccountingRecord::new(AcctStatus::Start, "sid".into(), b"alice".to_vec());
    let id = client.accounting(t0, &record, &random).unwrap();
    let first = decode_request(&secret(0), &send(&mut client).1);
    assert!(!first.attributes.iter().any(|a| a.kind() == types::ACCT_DELAY_TIME));

    // The retransmission: Acct-Delay-Time 2, a new identifier, so a new authenticator.
    assert!(client.handle_timeout(s(2)).is_empty());
    let (to, bytes) = send(&mut client);
    assert_eq!(to, server(0).acct);
    let second = decode_request(&secret(0), &bytes);
    assert_ne!(second.identifier, first.identifier);
    assert_ne!(second.authenticator, first.authenticator);
    assert_eq!(second.attributes.last(), Some(&Attribute::AcctDelayTime(2)));
    assert_eq!(second.attributes[..second.attributes.len() - 1], first.attributes[..]);

    // Fail-over to server 1's accounting address, the delay still counted from the first send.
    assert!(client.handle_timeout(s(4)).is_empty());
    let (to, bytes) = send(&mut client);
    assert_eq!(to, server(1).acct);
    let third = decode_request(&secret(1), &bytes);
    assert_eq!(third.attributes.last(), Some(&Attribute::AcctDelayTime(4)));

    // The first server's answer to the first packet still counts.
    let answer = respond_raw(&secret(0), &first, Code::ACCOUNTING_RESPONSE, vec![]);
    assert_eq!(client.handle_datagram(s(5), server(0).acct, &answer), Some((id, Answer::AccountingDone)));
    assert_eq!(client.poll_timeout(), None);

    // And a record nobody answers times out after both servers.
    let id = client.accounting(s(10), &record, &random).unwrap();
    let mut sends = 0;
    let mut timed_out = Vec::new();
    for k in 10..=20 {
        timed_out.extend(client.handle_timeout(s(k)));
        while client.poll_transmit().is_some() {
            sends += 1;
        }
    }
    assert_eq!(sends, 4);
    assert_eq!(timed_out, vec![(id, Answer::Timeout)]);
}

#[test]
fn timers_of_many_requests_fire_in_order() {
    let random = TestRandom::new(22);
    let mut client = RadiusClient::new(config(1, 1));
    let t0 = Instant::now();
    let a = client.eap_request(t0, &session(), &identity(), &random).unwrap();
    let b = client.eap_request(t0 + Duration::from_millis(500), &session(), &identity(), &random).unwrap();
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    assert_eq!(client.handle_timeout(t0 + Duration::from_secs(2)), vec![(a, Answer::Timeout)]);
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_millis(2500)));
    assert_eq!(client.handle_timeout(t0 + Duration::from_secs(10)), vec![(b, Answer::Timeout)]);
}
