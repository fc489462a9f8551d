//! Whole EAP conversations between [`EapServer`] and [`EapPeer`]: every method, Nak negotiation,
//! EAP-Identity, wrong and unknown passwords, and hostile packets at every step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use oxswan_crypto::provider::SecureRandom;
use oxswan_eap::{
    EapError, EapPeer, EapSecrets, EapServer, MethodType, PeerConfig, PeerStep, Secret, ServerConfig, ServerStep,
    mschapv2,
};
use oxswan_wire::payloads::{EapCode, EapPayload};
use oxswan_wire::{Context, PayloadType, Reader};
use proptest::prelude::*;

/// A deterministic random source: splitmix64 over a counter. NO SECURITY, tests only.
#[derive(Debug)]
struct TestRandom(AtomicU64);

impl TestRandom {
    fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl SecureRandom for TestRandom {
    fn fill(&self, dest: &mut [u8]) -> oxswan_crypto::Result<()> {
        for chunk in dest.chunks_mut(8) {
            let mut z = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// A random source that always fails.
#[derive(Debug)]
struct BrokenRandom;

impl SecureRandom for BrokenRandom {
    fn fill(&self, _dest: &mut [u8]) -> oxswan_crypto::Result<()> {
        Err(oxswan_crypto::CryptoError::UnsupportedSignature("no randomness".into()))
    }
}

/// Passwords (and NT hashes) by identity.
#[derive(Debug, Default)]
struct Secrets {
    passwords: HashMap<Vec<u8>, Vec<u8>>,
    nt_hashes: HashMap<Vec<u8>, Vec<u8>>,
}

impl Secrets {
    fn with(pairs: &[(&str, &str)]) -> Self {
        let mut s = Self::default();
        for (id, pw) in pairs {
            s.passwords.insert(id.as_bytes().to_vec(), pw.as_bytes().to_vec());
        }
        s
    }
}

impl EapSecrets for Secrets {
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        self.passwords.get(identity).map(|p| Secret::from_slice(p))
    }
    fn eap_nt_hash(&self, identity: &[u8]) -> Option<Secret> {
        self.nt_hashes.get(identity).map(|p| Secret::from_slice(p))
    }
}

fn server_config(methods: &[MethodType], ask: bool, identity: Option<&str>) -> ServerConfig {
    ServerConfig {
        methods: methods.to_vec(),
        ask_identity: ask,
        identity: identity.map(|i| i.as_bytes().to_vec()),
        tls: None,
    }
}

fn peer_config(identity: &str, methods: &[MethodType]) -> PeerConfig {
    PeerConfig { identity: identity.as_bytes().to_vec(), methods: methods.to_vec(), tls: None }
}

/// Emits and parses a packet as the IKE engine will, so that everything we make is valid on the
/// wire.
fn wire(p: &EapPayload) -> EapPayload {
    let mut out = Vec::new();
    p.emit(&mut out).unwrap();
    EapPayload::parse(Reader::new(&out, Context::Payload(PayloadType::EAP))).unwrap()
}

/// The end of a conversation.
#[derive(Debug)]
struct Ending {
    server: ServerStep,
    peer: PeerStep,
    /// Every packet, in order: server's, peer's, server's, ...
    transcript: Vec<EapPayload>,
    /// The server's pending error just before its last step.
    pending_before_end: Option<EapError>,
}

/// Runs a conversation to its end.
fn converse(
    server_cfg: ServerConfig,
    peer_cfg: PeerConfig,
    server_secrets: &Secrets,
    peer_secrets: &Secrets,
) -> Ending {
    let (srand, prand) = (TestRandom::new(1), TestRandom::new(2));
    let (mut server, first) = EapServer::start(server_cfg, &srand).unwrap();
    let mut peer = EapPeer::new(peer_cfg);
    let mut transcript = vec![wire(&first)];
    let mut request = first;
    for _ in 0..20 {
        let response = match peer.handle(&wire(&request), peer_secrets, &prand) {
            PeerStep::Respond(r) => r,
            other => panic!("peer ended early with {other:?} after {transcript:?}"),
        };
        transcript.push(wire(&response));
        let pending_before_end = server.pending_error().cloned();
        match server.handle(&wire(&response), server_secrets, &srand) {
            ServerStep::Continue(next) => {
                assert_ne!(next.identifier, request.identifier, "each Request gets a new Identifier");
                assert_eq!(next.code, EapCode::REQUEST);
                transcript.push(wire(&next));
                request = next;
            }
            end => {
                assert!(server.is_finished());
                let packet = match &end {
                    ServerStep::Success { packet, .. } | ServerStep::Failure { packet, .. } => packet.clone(),
                    ServerStep::Continue(_) => unreachable!(),
                };
                // RFC 3748 §4.2: Success/Failure carries the Identifier of the Response.
                assert_eq!(packet.identifier, response.identifier);
                transcript.push(wire(&packet));
                let peer_end = peer.handle(&wire(&packet), peer_secrets, &prand);
                assert!(peer.is_finished());
                return Ending { server: end, peer: peer_end, transcript, pending_before_end };
            }
        }
    }
    panic!("conversation did not end: {transcript:?}");
}

fn alice() -> Secrets {
    Secrets::with(&[("alice", "correct horse")])
}

/// The MS-CHAPv2 OpCode of a packet.
fn opcode(p: &EapPayload) -> Option<u8> {
    (p.data.first() == Some(&26)).then(|| p.data[1])
}

#[test]
fn mschapv2_with_identity_request_succeeds_and_msks_match() {
    let end =
        converse(server_config(&[MethodType::MsChapV2], true, None), peer_config("alice", &[]), &alice(), &alice());
    let ServerStep::Success { identity, method, msk: Some(server_msk), packet } = end.server else {
        panic!("{:?}", end.server)
    };
    assert_eq!((identity.as_slice(), method, packet.code), (&b"alice"[..], MethodType::MsChapV2, EapCode::SUCCESS));
    let PeerStep::Success { method: MethodType::MsChapV2, msk: Some(peer_msk) } = end.peer else {
        panic!("{:?}", end.peer)
    };
    assert_eq!(server_msk, peer_msk);
    assert_eq!(server_msk.len(), mschapv2::MSK_LEN);
    assert_eq!(&server_msk.expose()[32..], &[0u8; 32][..]);

    let t = &end.transcript;
    let shape: Vec<(EapCode, Option<u8>, Option<u8>)> = t.iter().map(|p| (p.code, p.eap_type(), opcode(p))).collect();
    use EapCode as C;
    assert_eq!(
        shape,
        [
            (C::REQUEST, Some(1), None),
            (C::RESPONSE, Some(1), None),
            (C::REQUEST, Some(26), Some(1)),
            (C::RESPONSE, Some(26), Some(2)),
            (C::REQUEST, Some(26), Some(3)),
            (C::RESPONSE, Some(26), Some(3)),
            (C::SUCCESS, None, None),
        ]
    );
    assert_eq!(t[0].data, [1]);
    assert_eq!(t[1].data, b"\x01alice");
    // Challenge: MS-CHAPv2-ID = EAP Identifier, MS-Length = EAP Length - 5, Value-Size 16, name.
    let ch = &t[2].data;
    assert_eq!(ch[2], t[2].identifier);
    assert_eq!(usize::from(u16::from_be_bytes([ch[3], ch[4]])), ch.len() - 1);
    assert_eq!(ch[5], 16);
    assert_eq!(&ch[22..], b"oxswan");
    // Response: Value-Size 49, reserved and flags zero, name.
    let rs = &t[3].data;
    assert_eq!((rs[2], rs[5]), (ch[2], 49));
    assert_eq!(usize::from(u16::from_be_bytes([rs[3], rs[4]])), rs.len() - 1);
    assert_eq!(&rs[22..30], &[0u8; 8]);
    assert_eq!(rs[54], 0);
    assert_eq!(&rs[55..], b"alice");
    // Success-Request: "S=<40 hex> M=...".
    let text = std::str::from_utf8(&t[4].data[5..]).unwrap();
    assert!(text.starts_with("S=") && text.as_bytes()[42..].starts_with(b" M="), "{text}");
    assert!(text[2..42].bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    // Success-Response is the OpCode alone.
    assert_eq!(t[5].data, [26, 3]);
}

#[test]
fn mschapv2_without_identity_request_uses_the_configured_identity() {
    let end = converse(
        server_config(&[MethodType::MsChapV2], false, Some("alice")),
        peer_config("alice", &[MethodType::MsChapV2]),
        &alice(),
        &alice(),
    );
    assert!(matches!(end.server, ServerStep::Success { ref identity, .. } if identity == b"alice"));
    assert!(matches!(end.peer, PeerStep::Success { msk: Some(_), .. }));
    assert_eq!(end.transcript[0].eap_type(), Some(26));
}

#[test]
fn mschapv2_domain_user_hashes_only_the_user_part() {
    let secrets = Secrets::with(&[("CORP\\alice", "pw")]);
    let end = converse(
        server_config(&[MethodType::MsChapV2], true, None),
        peer_config("CORP\\alice", &[]),
        &secrets,
        &secrets,
    );
    assert!(matches!(end.server, ServerStep::Success { ref identity, .. } if identity == b"CORP\\alice"));
    assert!(matches!(end.peer, PeerStep::Success { .. }));
}

#[test]
fn mschapv2_with_stored_nt_hash() {
    let mut server_secrets = Secrets::default();
    server_secrets.nt_hashes.insert(b"alice".to_vec(), mschapv2::nt_password_hash(b"correct horse").to_vec());
    let end = converse(
        server_config(&[MethodType::MsChapV2], true, None),
        peer_config("alice", &[]),
        &server_secrets,
        &alice(),
    );
    let (ServerStep::Success { msk: Some(a), .. }, PeerStep::Success { msk: Some(b), .. }) = (&end.server, &end.peer)
    else {
        panic!("{end:?}")
    };
    assert_eq!(a, b);
}

#[test]
fn mschapv2_wrong_password_fails_naming_the_user() {
    let end = converse(
        server_config(&[MethodType::MsChapV2], true, None),
        peer_config("alice", &[]),
        &alice(),
        &Secrets::with(&[("alice", "wrong")]),
    );
    let ServerStep::Failure { identity, error, packet } = &end.server else { panic!("{:?}", end.server) };
    assert_eq!(error, &EapError::WrongSecret("alice".into()));
    assert_eq!(error.identity(), Some("alice"));
    assert_eq!(identity.as_deref(), Some(&b"alice"[..]));
    assert_eq!(packet.code, EapCode::FAILURE);
    assert_eq!(end.pending_before_end, Some(EapError::WrongSecret("alice".into())));
    assert!(matches!(end.peer, PeerStep::Failure(EapError::PeerFailure)));
    // Failure-Request, then the Failure-Response (the OpCode alone), then EAP-Failure.
    let t = &end.transcript;
    let fr = &t[t.len() - 3];
    assert_eq!(opcode(fr), Some(4));
    let text = std::str::from_utf8(&fr.data[5..]).unwrap();
    assert!(text.starts_with("E=691 R=0 C=") && text.contains(" V=3 M="), "{text}");
    assert_eq!(t[t.len() - 2].data, [26, 4]);
    assert_eq!(t[t.len() - 1].code, EapCode::FAILURE);
    // The error and Debug output carry no password.
    assert!(!format!("{end:?}").contains("correct horse") && !format!("{end:?}").contains("wrong\""));
}

#[test]
fn mschapv2_unknown_user_fails_like_a_wrong_password() {
    let server = alice();
    let mallory = Secrets::with(&[("mallory", "guess")]);
    let end =
        converse(server_config(&[MethodType::MsChapV2], true, None), peer_config("mallory", &[]), &server, &mallory);
    assert!(matches!(&end.server, ServerStep::Failure { error: EapError::UnknownUser(u), .. } if u == "mallory"));
    let wrong = converse(
        server_config(&[MethodType::MsChapV2], true, None),
        peer_config("alice", &[]),
        &server,
        &Secrets::with(&[("alice", "guess")]),
    );
    // The peer sees the same Failure-Request either way, so it cannot probe user names.
    let fr = |e: &Ending| e.transcript[e.transcript.len() - 3].data[..17].to_vec();
    assert_eq!(fr(&end), fr(&wrong));
}

#[test]
fn peer_without_its_own_secret_fails() {
    let (srand, prand) = (TestRandom::new(1), TestRandom::new(2));
    let (_server, challenge) =
        EapServer::start(server_config(&[MethodType::MsChapV2], false, Some("bob")), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config("bob", &[]));
    let step = peer.handle(&challenge, &alice(), &prand);
    assert!(matches!(step, PeerStep::Failure(EapError::UnknownUser(ref u)) if u == "bob"), "{step:?}");
}

#[test]
fn md5_succeeds_without_msk() {
    let end = converse(server_config(&[MethodType::Md5], true, None), peer_config("alice", &[]), &alice(), &alice());
    assert!(matches!(end.server, ServerStep::Success { method: MethodType::Md5, msk: None, .. }));
    assert!(matches!(end.peer, PeerStep::Success { method: MethodType::Md5, msk: None }));
    // Request: Value-Size 16 and the challenge; Response: MD5(Identifier | secret | challenge).
    let (req, resp) = (&end.transcript[2], &end.transcript[3]);
    assert_eq!((req.data[0], req.data[1], req.data.len()), (4, 16, 18));
    let value = oxswan_eap::md5::response_value(req.identifier, b"correct horse", &req.data[2..18]);
    assert_eq!(resp.data[..2], [4, 16]);
    assert_eq!(&resp.data[2..], &value);
}

#[test]
fn md5_wrong_and_unknown() {
    let end = converse(
        server_config(&[MethodType::Md5], true, None),
        peer_config("alice", &[]),
        &alice(),
        &Secrets::with(&[("alice", "nope")]),
    );
    assert!(matches!(&end.server, ServerStep::Failure { error: EapError::WrongSecret(u), .. } if u == "alice"));
    assert!(matches!(end.peer, PeerStep::Failure(EapError::PeerFailure)));
    let end = converse(
        server_config(&[MethodType::Md5], false, Some("eve")),
        peer_config("eve", &[]),
        &alice(),
        &Secrets::with(&[("eve", "x")]),
    );
    assert!(matches!(&end.server, ServerStep::Failure { error: EapError::UnknownUser(u), identity: Some(i), .. }
        if u == "eve" && i == b"eve"));
}

#[test]
fn nak_switches_from_md5_to_mschapv2() {
    let end = converse(
        server_config(&[MethodType::Md5, MethodType::MsChapV2], true, None),
        peer_config("alice", &[MethodType::MsChapV2]),
        &alice(),
        &alice(),
    );
    let t = &end.transcript;
    assert_eq!(t[2].eap_type(), Some(4));
    assert_eq!(t[3].data, [3, 26], "Nak naming MS-CHAPv2");
    assert_eq!(t[4].eap_type(), Some(26));
    assert!(matches!(end.server, ServerStep::Success { method: MethodType::MsChapV2, msk: Some(_), .. }));
    assert!(matches!(end.peer, PeerStep::Success { method: MethodType::MsChapV2, msk: Some(_) }));
}

#[test]
fn nak_without_common_method_fails() {
    let end = converse(
        server_config(&[MethodType::Md5], true, None),
        peer_config("alice", &[MethodType::MsChapV2]),
        &alice(),
        &alice(),
    );
    assert!(matches!(end.server, ServerStep::Failure { error: EapError::NoCommonMethod, .. }));
    assert!(matches!(end.peer, PeerStep::Failure(EapError::PeerFailure)));
    // A peer that accepts only what we do not implement Naks with 0 ("none", RFC 3748 §5.3.1).
    let end = converse(
        server_config(&[MethodType::MsChapV2], false, Some("alice")),
        peer_config("alice", &[MethodType::Tls]),
        &alice(),
        &alice(),
    );
    assert_eq!(end.transcript[1].data, [3, 0]);
    assert!(matches!(end.server, ServerStep::Failure { error: EapError::NoCommonMethod, .. }));
}

#[test]
fn peer_naks_unknown_types_with_all_it_accepts() {
    let prand = TestRandom::new(2);
    let mut peer = EapPeer::new(peer_config("alice", &[]));
    let otp = EapPayload { code: EapCode::REQUEST, identifier: 9, data: vec![5, b'?'] };
    let PeerStep::Respond(nak) = peer.handle(&otp, &alice(), &prand) else { panic!() };
    assert_eq!((nak.code, nak.identifier, nak.data.as_slice()), (EapCode::RESPONSE, 9, &[3u8, 26, 4][..]));
    // Notification is acknowledged (RFC 3748 §5.2).
    let note = EapPayload { code: EapCode::REQUEST, identifier: 10, data: b"\x02hello".to_vec() };
    let PeerStep::Respond(ack) = peer.handle(&note, &alice(), &prand) else { panic!() };
    assert_eq!(ack.data, [2]);
}

/// Drives a server to the MS-CHAPv2 Challenge and the peer's Response to it.
fn to_response(methods: &[MethodType]) -> (EapServer, EapPeer, EapPayload, EapPayload, TestRandom, TestRandom) {
    let (srand, prand) = (TestRandom::new(1), TestRandom::new(2));
    let (server, challenge) = EapServer::start(server_config(methods, false, Some("alice")), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config("alice", &[MethodType::MsChapV2]));
    let PeerStep::Respond(response) = peer.handle(&challenge, &alice(), &prand) else { panic!() };
    (server, peer, challenge, response, srand, prand)
}

#[test]
fn server_refuses_wrong_identifier_code_and_type_and_keeps_its_state() {
    let (mut server, mut peer, _challenge, response, srand, prand) = to_response(&[MethodType::MsChapV2]);
    let secrets = alice();
    let mut wrong_id = response.clone();
    wrong_id.identifier = wrong_id.identifier.wrapping_add(1);
    let mut as_request = response.clone();
    as_request.code = EapCode::REQUEST;
    let mut other_type = response.clone();
    other_type.data[0] = 4;
    let truncated = EapPayload { data: response.data[..20].to_vec(), ..response.clone() };
    let empty = EapPayload { data: vec![], ..response.clone() };
    for (bad, what) in [
        (wrong_id, "identifier"),
        (as_request, "code"),
        (other_type, "type"),
        (truncated, "truncated"),
        (empty, "empty"),
        (EapPayload { code: EapCode::SUCCESS, identifier: response.identifier, data: vec![] }, "success"),
    ] {
        match server.handle(&bad, &secrets, &srand) {
            ServerStep::Failure { error: EapError::Unexpected(_) | EapError::Malformed(_), packet, .. } => {
                assert_eq!(packet.code, EapCode::FAILURE, "{what}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(!server.is_finished(), "{what}");
    }
    // The genuine Response still works, and the conversation completes.
    let ServerStep::Continue(success_request) = server.handle(&response, &secrets, &srand) else { panic!() };
    // A Nak once the method has begun is refused (RFC 3748 §5.3.1: only in answer to its first
    // Request).
    let nak = EapPayload { code: EapCode::RESPONSE, identifier: success_request.identifier, data: vec![3, 4] };
    assert!(matches!(
        server.handle(&nak, &secrets, &srand),
        ServerStep::Failure { error: EapError::Unexpected(_), .. }
    ));
    assert!(!server.is_finished());
    // A retransmission of the old Response is refused without harm.
    assert!(matches!(
        server.handle(&response, &secrets, &srand),
        ServerStep::Failure { error: EapError::Unexpected(_), .. }
    ));
    let PeerStep::Respond(ack) = peer.handle(&success_request, &secrets, &prand) else { panic!() };
    assert!(matches!(server.handle(&ack, &secrets, &srand), ServerStep::Success { .. }));
    // After the end, everything is refused.
    assert!(matches!(
        server.handle(&ack, &secrets, &srand),
        ServerStep::Failure { error: EapError::Unexpected(_), .. }
    ));
}

#[test]
fn second_nak_is_refused() {
    let srand = TestRandom::new(1);
    let (mut server, first) =
        EapServer::start(server_config(&[MethodType::Md5, MethodType::MsChapV2], false, Some("alice")), &srand)
            .unwrap();
    let nak = EapPayload { code: EapCode::RESPONSE, identifier: first.identifier, data: vec![3, 26] };
    let ServerStep::Continue(challenge) = server.handle(&nak, &alice(), &srand) else { panic!() };
    assert_eq!(challenge.eap_type(), Some(26));
    assert_eq!(server.method(), Some(MethodType::MsChapV2));
    let again = EapPayload { code: EapCode::RESPONSE, identifier: challenge.identifier, data: vec![3, 4] };
    assert!(matches!(
        server.handle(&again, &alice(), &srand),
        ServerStep::Failure { error: EapError::Unexpected(_), .. }
    ));
    assert!(!server.is_finished());
}

#[test]
fn peer_answers_a_retransmitted_request_alike() {
    let (_server, mut peer, challenge, response, _srand, prand) = to_response(&[MethodType::MsChapV2]);
    let PeerStep::Respond(again) = peer.handle(&challenge, &alice(), &prand) else { panic!() };
    assert_eq!(again, response);
}

#[test]
fn peer_refuses_premature_or_forged_success() {
    let prand = TestRandom::new(2);
    let success = EapPayload { code: EapCode::SUCCESS, identifier: 0, data: vec![] };
    // Before any method.
    let mut peer = EapPeer::new(peer_config("alice", &[]));
    assert!(matches!(peer.handle(&success, &alice(), &prand), PeerStep::Failure(EapError::Unexpected(_))));
    // After the Response, before the Success-Request proved the server.
    let (_server, mut peer, _challenge, response, _srand, prand) = to_response(&[MethodType::MsChapV2]);
    let success = EapPayload { identifier: response.identifier, ..success };
    assert!(matches!(peer.handle(&success, &alice(), &prand), PeerStep::Failure(EapError::Unexpected(_))));
    assert!(peer.is_finished());

    // A Success-Request whose authenticator response is wrong (here: flipped digit).
    let (mut server, mut peer, _challenge, response, srand, prand) = to_response(&[MethodType::MsChapV2]);
    let ServerStep::Continue(mut sr) = server.handle(&response, &alice(), &srand) else { panic!() };
    sr.data[7] = if sr.data[7] == b'0' { b'1' } else { b'0' };
    assert!(matches!(peer.handle(&sr, &alice(), &prand), PeerStep::Failure(EapError::ServerNotAuthenticated)));

    // A Success-Request without S=.
    let (mut server, mut peer, _challenge, response, srand, prand) = to_response(&[MethodType::MsChapV2]);
    let ServerStep::Continue(mut sr) = server.handle(&response, &alice(), &srand) else { panic!() };
    sr.data.truncate(5);
    sr.data.extend_from_slice(b"M=hello");
    assert!(matches!(peer.handle(&sr, &alice(), &prand), PeerStep::Failure(EapError::ServerNotAuthenticated)));
}

#[test]
fn peer_abort_after_success_request() {
    let (mut server, _peer, _challenge, response, srand, _prand) = to_response(&[MethodType::MsChapV2]);
    let ServerStep::Continue(sr) = server.handle(&response, &alice(), &srand) else { panic!() };
    let abort = EapPayload { code: EapCode::RESPONSE, identifier: sr.identifier, data: vec![26, 4] };
    assert!(matches!(server.handle(&abort, &alice(), &srand),
        ServerStep::Failure { error: EapError::PeerAborted(ref u), .. } if u == "alice"));
}

#[test]
fn identity_response_empty_falls_back_to_the_configured_identity() {
    let srand = TestRandom::new(1);
    let (mut server, req) = EapServer::start(server_config(&[MethodType::Md5], true, Some("ike-id")), &srand).unwrap();
    let empty = EapPayload { code: EapCode::RESPONSE, identifier: req.identifier, data: vec![1] };
    assert!(matches!(server.handle(&empty, &alice(), &srand), ServerStep::Continue(_)));
    assert_eq!(server.identity(), Some(&b"ike-id"[..]));
    let (mut server, req) = EapServer::start(server_config(&[MethodType::Md5], true, None), &srand).unwrap();
    assert_eq!(server.identity(), None);
    let empty = EapPayload { code: EapCode::RESPONSE, identifier: req.identifier, data: vec![1] };
    assert!(matches!(
        server.handle(&empty, &alice(), &srand),
        ServerStep::Failure { error: EapError::Malformed(_), .. }
    ));
    let nak = EapPayload { code: EapCode::RESPONSE, identifier: req.identifier, data: vec![3, 4] };
    assert!(matches!(
        server.handle(&nak, &alice(), &srand),
        ServerStep::Failure { error: EapError::Unexpected(_), .. }
    ));
}

#[test]
fn start_checks_the_configuration() {
    let r = TestRandom::new(1);
    assert!(matches!(EapServer::start(server_config(&[], true, None), &r), Err(EapError::Config(_))));
    assert!(matches!(EapServer::start(server_config(&[MethodType::Tls], true, None), &r), Err(EapError::Config(_))));
    assert!(matches!(EapServer::start(server_config(&[MethodType::Md5], false, None), &r), Err(EapError::Config(_))));
    assert!(matches!(
        EapServer::start(server_config(&[MethodType::Md5], true, None), &BrokenRandom),
        Err(EapError::Random)
    ));
}

#[test]
fn random_failure_during_the_method() {
    let srand = TestRandom::new(1);
    let (_server, challenge) =
        EapServer::start(server_config(&[MethodType::MsChapV2], false, Some("alice")), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config("alice", &[]));
    assert!(matches!(peer.handle(&challenge, &alice(), &BrokenRandom), PeerStep::Failure(EapError::Random)));
}

#[test]
fn peer_identity_too_long_for_a_packet() {
    let srand = TestRandom::new(1);
    let long = "a".repeat(65_530);
    let secrets = Secrets::with(&[(long.as_str(), "pw")]);
    let (_server, challenge) =
        EapServer::start(server_config(&[MethodType::MsChapV2], false, Some("x")), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config(&long, &[]));
    assert!(matches!(peer.handle(&challenge, &secrets, &srand), PeerStep::Failure(EapError::Config(_))));
}

/// Every packet of a genuine conversation, truncated, extended and with single octets changed,
/// is fed to the side that would receive it at that point: nothing panics, and a refused packet
/// leaves the conversation able to finish.
#[test]
fn mutated_packets_never_panic() {
    let genuine = converse(
        server_config(&[MethodType::Md5, MethodType::MsChapV2], true, None),
        peer_config("alice", &[MethodType::MsChapV2]),
        &alice(),
        &alice(),
    )
    .transcript;
    for step in 0..genuine.len() {
        let original = &genuine[step];
        let mut variants: Vec<EapPayload> = Vec::new();
        for n in 0..original.data.len() {
            variants.push(EapPayload { data: original.data[..n].to_vec(), ..original.clone() });
        }
        let mut longer = original.clone();
        longer.data.extend_from_slice(&[0xff; 7]);
        variants.push(longer);
        for i in 0..original.data.len() {
            for v in [0x00, 0xff, original.data[i] ^ 0x01, original.data[i].wrapping_add(1)] {
                let mut m = original.clone();
                m.data[i] = v;
                variants.push(m);
            }
        }
        for code in [0, 1, 2, 3, 4, 5, 255] {
            variants.push(EapPayload { code: EapCode(code), ..original.clone() });
        }
        variants.push(EapPayload { identifier: original.identifier.wrapping_add(1), ..original.clone() });
        for variant in variants {
            replay_with(&genuine, step, &variant);
        }
    }
}

/// Replays `genuine` up to `step`, delivers `variant` in its place, and, if the receiver refused it
/// (a Failure that did not end its side), goes on with the genuine packets: the conversation must
/// then succeed as if the variant had never come.
fn replay_with(genuine: &[EapPayload], step: usize, variant: &EapPayload) {
    let (srand, prand) = (TestRandom::new(1), TestRandom::new(2));
    let secrets = alice();
    let (mut server, _first) =
        EapServer::start(server_config(&[MethodType::Md5, MethodType::MsChapV2], true, None), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config("alice", &[MethodType::MsChapV2]));
    let (mut server_last, mut peer_last) = (None, None);
    for (i, packet) in genuine.iter().enumerate() {
        // Even indices are the server's packets (for the peer), odd the peer's (for the server).
        if i == step {
            let refused = if i % 2 == 0 {
                matches!(peer.handle(variant, &secrets, &prand), PeerStep::Failure(_)) && !peer.is_finished()
            } else {
                matches!(server.handle(variant, &secrets, &srand), ServerStep::Failure { .. }) && !server.is_finished()
            };
            if !refused {
                return; // taken, or the end: the conversation went elsewhere
            }
        }
        if i % 2 == 0 {
            peer_last = Some(peer.handle(packet, &secrets, &prand));
        } else {
            server_last = Some(server.handle(packet, &secrets, &srand));
        }
    }
    assert!(matches!(server_last, Some(ServerStep::Success { .. })), "step {step} {variant:?}: {server_last:?}");
    assert!(matches!(peer_last, Some(PeerStep::Success { .. })), "step {step} {variant:?}: {peer_last:?}");
}

fn hostile_payload() -> impl Strategy<Value = EapPayload> {
    let data = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        (prop::sample::select(vec![1u8, 2, 3, 4, 13, 26, 254]), proptest::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(t, rest)| {
                let mut d = vec![t];
                d.extend(rest);
                d
            }),
        (1u8..=4, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..70)).prop_map(|(op, id, rest)| {
            let mut d = vec![26, op, id];
            d.extend_from_slice(&u16::try_from(rest.len() + 4).unwrap().to_be_bytes());
            d.extend(rest);
            d
        }),
    ];
    (prop::sample::select(vec![1u8, 2, 3, 4, 0, 9]), any::<u8>(), data)
        .prop_map(|(code, identifier, data)| EapPayload { code: EapCode(code), identifier, data })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random packets at each stage of both sides never panic.
    #[test]
    fn random_packets_never_panic(packets in proptest::collection::vec(hostile_payload(), 1..6), stage in 0usize..4) {
        let (srand, prand) = (TestRandom::new(1), TestRandom::new(2));
        let secrets = alice();
        let (mut server, first) = EapServer::start(
            server_config(&[MethodType::Md5, MethodType::MsChapV2], stage % 2 == 0, Some("alice")),
            &srand,
        ).unwrap();
        let mut peer = EapPeer::new(peer_config("alice", &[]));
        // Advance both sides a few genuine steps before the hostile packets arrive.
        let mut request = first;
        for _ in 0..stage {
            let PeerStep::Respond(resp) = peer.handle(&request, &secrets, &prand) else { break };
            let ServerStep::Continue(next) = server.handle(&resp, &secrets, &srand) else { break };
            request = next;
        }
        for p in &packets {
            let _ = server.handle(p, &secrets, &srand);
            let _ = peer.handle(p, &secrets, &prand);
            let mut with_id = p.clone();
            with_id.identifier = request.identifier;
            let _ = server.handle(&with_id, &secrets, &srand);
            let _ = peer.handle(&with_id, &secrets, &prand);
        }
    }
}

#[test]
fn sides_are_send_and_sync_and_errors_name_the_user() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EapServer>();
    assert_send_sync::<EapPeer>();
    assert_send_sync::<ServerStep>();
    assert_send_sync::<PeerStep>();
    assert_eq!(EapError::UnknownUser("bob".into()).identity(), Some("bob"));
    assert_eq!(EapError::PeerAborted("bob".into()).identity(), Some("bob"));
    assert_eq!(EapError::NoCommonMethod.identity(), None);
    assert_eq!(EapError::WrongSecret("bob".into()).to_string(), "EAP authentication of 'bob' failed: wrong secret");
    // Control characters in a hostile identity cannot forge log lines.
    let end = converse(
        server_config(&[MethodType::Md5], true, None),
        peer_config("evil\nuser", &[]),
        &alice(),
        &Secrets::with(&[("evil\nuser", "x")]),
    );
    assert!(matches!(&end.server, ServerStep::Failure { error: EapError::UnknownUser(u), .. } if u == "evil?user"));
}
