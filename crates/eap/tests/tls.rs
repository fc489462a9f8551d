//! Whole EAP-TLS conversations (RFC 5216 with TLS 1.2, RFC 9190 with TLS 1.3) between
//! [`EapServer`] and [`EapPeer`]: both versions, fragmentation, refused certificates and names,
//! the TLS 1.3 success indication, the caps on hostile fragments, and Nak negotiation with
//! MS-CHAPv2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use oxswan_crypto::provider::SecureRandom;
use oxswan_eap::tls::{MAX_MESSAGE_LEN, MAX_PACKETS};
use oxswan_eap::{
    EapError, EapPeer, EapSecrets, EapServer, MethodType, PeerConfig, PeerStep, Secret, ServerConfig, ServerStep,
    TlsPeerConfig, TlsServerConfig, TlsVersion,
};
use oxswan_wire::payloads::{EapCode, EapPayload};
use oxswan_wire::{Context, PayloadType, Reader};
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SanType, date_time_ymd,
};

/// splitmix64 over a counter (EAP Identifiers, MS-CHAPv2 challenges). NO SECURITY, tests only;
/// rustls draws its own randomness.
#[derive(Debug)]
struct TestRandom(AtomicU64);

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

fn rand(seed: u64) -> TestRandom {
    TestRandom(AtomicU64::new(seed))
}

#[derive(Debug, Default)]
struct Secrets(HashMap<Vec<u8>, Vec<u8>>);

impl EapSecrets for Secrets {
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        self.0.get(identity).map(|p| Secret::from_slice(p))
    }
}

fn alice_secrets() -> Secrets {
    Secrets(HashMap::from([(b"alice".to_vec(), b"correct horse".to_vec())]))
}

// ---------------------------------------------------------------------------------------------
// PKI

/// A CA (root and intermediate), the gateway's certificate and a client's.
struct Pki {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    server_cert: Vec<u8>,
    server_key: Vec<u8>,
    client_cert: Vec<u8>,
    client_key: Vec<u8>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "oxswan test");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    p
}

fn rsa() -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap()
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

impl Pki {
    /// RSA-2048 CAs and gateway (a chain of two certificates over 1024 octets, so that the
    /// server's flight needs several EAP packets), an ECDSA P-256 client.
    fn new(name: &str) -> Self {
        let root_key = rsa();
        let root_params = ca_params(&format!("{name} Root CA"));
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = rsa();
        let int_params = ca_params(&format!("{name} Intermediate CA"));
        let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let issuer = Issuer::new(int_params, int_key);
        let (server_cert, server_key) =
            issue(&issuer, rsa(), "vpn.example.org", &[SanType::DnsName("vpn.example.org".try_into().unwrap())], true);
        let (client_cert, client_key) =
            issue(&issuer, p256(), "alice", &[SanType::Rfc822Name("alice@example.org".try_into().unwrap())], false);
        Self {
            root: root.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            issuer,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    fn server(&self) -> TlsServerConfig {
        TlsServerConfig {
            cert_chain: vec![self.server_cert.clone(), self.intermediate.clone()],
            key: self.server_key.clone().into(),
            client_cas: vec![self.root.clone()],
            ..TlsServerConfig::default()
        }
    }

    fn peer(&self) -> TlsPeerConfig {
        TlsPeerConfig {
            cert_chain: vec![self.client_cert.clone(), self.intermediate.clone()],
            key: self.client_key.clone().into(),
            server_cas: vec![self.root.clone()],
            server_name: Some("vpn.example.org".into()),
            ..TlsPeerConfig::default()
        }
    }
}

fn issue(
    issuer: &Issuer<'static, KeyPair>,
    key: KeyPair,
    cn: &str,
    sans: &[SanType],
    server: bool,
) -> (Vec<u8>, Vec<u8>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.subject_alt_names = sans.to_vec();
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages =
        vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

/// The test PKI, made once (RSA key generation takes a while).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new("oxswan"))
}

/// Another CA that nobody trusts.
fn rogue() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new("rogue"))
}

fn server_config(methods: &[MethodType], tls: Option<TlsServerConfig>) -> ServerConfig {
    ServerConfig { methods: methods.to_vec(), ask_identity: true, identity: Some(b"ike-id".to_vec()), tls }
}

fn peer_config(methods: &[MethodType], tls: Option<TlsPeerConfig>) -> PeerConfig {
    PeerConfig { identity: b"alice".to_vec(), methods: methods.to_vec(), tls }
}

fn forced_server(v: TlsVersion) -> TlsServerConfig {
    TlsServerConfig { min_version: Some(v), max_version: Some(v), ..pki().server() }
}

// ---------------------------------------------------------------------------------------------
// Conversations

/// Emits and parses a packet as the IKE engine will.
fn wire(p: &EapPayload) -> EapPayload {
    let mut out = Vec::new();
    p.emit(&mut out).unwrap();
    EapPayload::parse(Reader::new(&out, Context::Payload(PayloadType::EAP))).unwrap()
}

/// The length of an EAP packet on the wire.
fn wire_len(p: &EapPayload) -> usize {
    4 + p.data.len()
}

struct Ending {
    server: ServerStep,
    peer: PeerStep,
    /// Every packet: the server's, the peer's, the server's, ...
    transcript: Vec<EapPayload>,
    server_side: EapServer,
    peer_side: EapPeer,
}

fn converse(server_cfg: ServerConfig, peer_cfg: PeerConfig) -> Ending {
    let (srand, prand) = (rand(1), rand(2));
    let secrets = alice_secrets();
    let (mut server, first) = EapServer::start(server_cfg, &srand).unwrap();
    let mut peer = EapPeer::new(peer_cfg);
    let mut transcript = vec![wire(&first)];
    let mut request = first;
    for _ in 0..200 {
        let response = match peer.handle(&wire(&request), &secrets, &prand) {
            PeerStep::Respond(r) => r,
            other => panic!("peer ended early with {other:?}"),
        };
        assert_eq!(response.identifier, request.identifier);
        transcript.push(wire(&response));
        match server.handle(&wire(&response), &secrets, &srand) {
            ServerStep::Continue(next) => {
                assert_ne!(next.identifier, request.identifier);
                transcript.push(wire(&next));
                request = next;
            }
            end => {
                assert!(server.is_finished());
                let packet = match &end {
                    ServerStep::Success { packet, .. } | ServerStep::Failure { packet, .. } => packet.clone(),
                    ServerStep::Continue(_) => unreachable!(),
                };
                assert_eq!(packet.identifier, response.identifier);
                transcript.push(wire(&packet));
                let peer_end = peer.handle(&wire(&packet), &secrets, &prand);
                assert!(peer.is_finished());
                return Ending { server: end, peer: peer_end, transcript, server_side: server, peer_side: peer };
            }
        }
    }
    panic!("conversation did not end");
}

/// The EAP-TLS Flags of a packet, if it is one.
fn flags(p: &EapPayload) -> Option<u8> {
    (p.data.first() == Some(&13)).then(|| p.data.get(1).copied()).flatten()
}

/// The TLS data of an EAP-TLS packet.
fn tls_data(p: &EapPayload) -> &[u8] {
    match flags(p) {
        Some(f) if f & 0x80 != 0 => &p.data[6..],
        Some(_) => &p.data[2..],
        None => &[],
    }
}

fn is_ack(p: &EapPayload) -> bool {
    p.data == [13, 0]
}

fn assert_success(end: &Ending) -> Vec<u8> {
    let ServerStep::Success { identity, method, msk: Some(server_msk), .. } = &end.server else {
        panic!("server: {:?}", end.server)
    };
    let PeerStep::Success { method: peer_method, msk: Some(peer_msk) } = &end.peer else {
        panic!("peer: {:?}", end.peer)
    };
    assert_eq!((*method, *peer_method), (MethodType::Tls, MethodType::Tls));
    assert_eq!(identity, b"alice", "the EAP identity");
    assert_eq!(server_msk.len(), 64);
    assert_eq!(server_msk.expose(), peer_msk.expose());
    assert_ne!(server_msk.expose(), &[0u8; 64][..]);
    assert_eq!(end.server_side.peer_certificate(), Some(pki().client_cert.as_slice()));
    assert_eq!(end.peer_side.server_certificate(), Some(pki().server_cert.as_slice()));
    // Every packet fits the default fragment size.
    for p in &end.transcript {
        assert!(wire_len(p) <= 1024, "{} octets", wire_len(p));
    }
    server_msk.expose().to_vec()
}

/// The server's first flight (ServerHello ... ) went over several Requests: L and M on the first,
/// M on all but the last, each acknowledged by an empty Response.
fn assert_server_flight_fragmented(t: &[EapPayload]) {
    // t[0] Identity Request, t[1] Identity, t[2] Start, t[3] ClientHello, t[4..] the flight.
    assert_eq!(t[2].data, [13, 0x20], "EAP-TLS Start");
    assert_eq!(flags(&t[3]).map(|f| f & 0xc0), Some(0x80), "ClientHello whole, with its length");
    let first = &t[4];
    assert_eq!(flags(first), Some(0xc0), "first fragment: L and M");
    let total = u32::from_be_bytes(first.data[2..6].try_into().unwrap()) as usize;
    assert!(total > 1024);
    let mut got = tls_data(first).len();
    let mut i = 5;
    let mut fragments = 1;
    loop {
        assert!(is_ack(&t[i]), "the peer acknowledges each fragment");
        let next = &t[i + 1];
        got += tls_data(next).len();
        fragments += 1;
        i += 2;
        if flags(next).unwrap() & 0x40 == 0 {
            break;
        }
    }
    assert_eq!(got, total, "the fragments add up to the TLS Message Length");
    assert!(fragments >= 2);
}

#[test]
fn tls13_conversation_with_fragmented_flights() {
    let end = converse(
        server_config(&[MethodType::Tls], Some(forced_server(TlsVersion::Tls13))),
        peer_config(&[MethodType::Tls], Some(pki().peer())),
    );
    assert_success(&end);
    let t = &end.transcript;
    assert_server_flight_fragmented(t);
    // RFC 9190 §2.5: the last Request carries the success indication (one protected record), and
    // the peer answers it with an empty Response before EAP-Success.
    let n = t.len();
    assert_eq!(t[n - 1].code, EapCode::SUCCESS);
    assert!(is_ack(&t[n - 2]));
    let indication = tls_data(&t[n - 3]);
    assert_eq!(indication[0], 23, "an application data record");
    assert!(indication.len() < 64);
}

#[test]
fn tls12_conversation_with_fragmented_flights() {
    let end = converse(
        server_config(&[MethodType::Tls], Some(forced_server(TlsVersion::Tls12))),
        peer_config(&[MethodType::Tls], Some(pki().peer())),
    );
    assert_success(&end);
    let t = &end.transcript;
    assert_server_flight_fragmented(t);
    // RFC 5216 §2.1.1: the server's ChangeCipherSpec and Finished, an empty Response, Success.
    let n = t.len();
    assert!(is_ack(&t[n - 2]));
    assert_eq!(tls_data(&t[n - 3])[0], 20, "ChangeCipherSpec");
}

#[test]
fn versions_forced_on_the_peer_and_by_default() {
    // The peer alone forces TLS 1.2.
    let peer = TlsPeerConfig { max_version: Some(TlsVersion::Tls12), ..pki().peer() };
    let end = converse(server_config(&[MethodType::Tls], Some(pki().server())), peer_config(&[], Some(peer)));
    assert_success(&end);
    assert_eq!(tls_data(&end.transcript[end.transcript.len() - 3])[0], 20);
    // By default both sides take TLS 1.3.
    let end = converse(server_config(&[MethodType::Tls], Some(pki().server())), peer_config(&[], Some(pki().peer())));
    assert_success(&end);
    assert_eq!(tls_data(&end.transcript[end.transcript.len() - 3])[0], 23);
    // Versions that do not meet fail the handshake.
    let peer = TlsPeerConfig { max_version: Some(TlsVersion::Tls12), ..pki().peer() };
    let end = converse(
        server_config(&[MethodType::Tls], Some(forced_server(TlsVersion::Tls13))),
        peer_config(&[], Some(peer)),
    );
    assert!(matches!(end.server, ServerStep::Failure { error: EapError::Tls(_), .. }), "{:?}", end.server);
    assert!(matches!(end.peer, PeerStep::Failure(_)));
}

#[test]
fn msks_differ_between_conversations() {
    let a = assert_success(&converse(
        server_config(&[MethodType::Tls], Some(pki().server())),
        peer_config(&[], Some(pki().peer())),
    ));
    let b = assert_success(&converse(
        server_config(&[MethodType::Tls], Some(pki().server())),
        peer_config(&[], Some(pki().peer())),
    ));
    assert_ne!(a, b);
}

#[test]
fn small_fragments_on_both_sides() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let server = TlsServerConfig { fragment_size: Some(200), ..forced_server(v) };
        let peer = TlsPeerConfig { fragment_size: Some(100), ..pki().peer() };
        let end = converse(server_config(&[MethodType::Tls], Some(server)), peer_config(&[], Some(peer)));
        assert_success(&end);
        let t = &end.transcript;
        for (i, p) in t.iter().enumerate() {
            let limit = if i % 2 == 0 { 200 } else { 100 };
            assert!(wire_len(p) <= limit, "packet {i}: {} > {limit}", wire_len(p));
        }
        // The peer's certificate flight is fragmented too: a Response with L and M.
        assert!(t.iter().skip(1).step_by(2).any(|p| flags(p) == Some(0xc0)));
        assert!(t.len() > 40);
    }
}

#[test]
fn client_certificate_of_an_unknown_ca_is_refused() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let rogue = rogue();
        let peer = TlsPeerConfig {
            cert_chain: vec![rogue.client_cert.clone(), rogue.intermediate.clone()],
            key: rogue.client_key.clone().into(),
            ..pki().peer()
        };
        let end = converse(server_config(&[MethodType::Tls], Some(forced_server(v))), peer_config(&[], Some(peer)));
        let ServerStep::Failure { error: EapError::Certificate(why), identity, .. } = &end.server else {
            panic!("{v:?}: {:?}", end.server)
        };
        assert!(why.contains("UnknownIssuer"), "{why}");
        assert_eq!(identity.as_deref(), Some(&b"alice"[..]));
        // RFC 5216 §2.1.3: the server's alert went out, the peer answered it with an empty
        // Response, then EAP-Failure; the peer reports the alert.
        let n = end.transcript.len();
        assert!(is_ack(&end.transcript[n - 2]));
        let PeerStep::Failure(EapError::Tls(alert)) = &end.peer else { panic!("{v:?}: {:?}", end.peer) };
        assert!(alert.contains("alert"), "{alert}");
        assert_eq!(end.server_side.peer_certificate(), None);
    }
}

#[test]
fn peer_without_a_certificate_is_refused() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let peer = TlsPeerConfig { cert_chain: Vec::new(), key: Vec::new().into(), ..pki().peer() };
        let end = converse(server_config(&[MethodType::Tls], Some(forced_server(v))), peer_config(&[], Some(peer)));
        assert!(
            matches!(&end.server, ServerStep::Failure { error: EapError::Certificate(why), .. } if why.contains("no certificate")),
            "{v:?}: {:?}",
            end.server
        );
        assert!(matches!(end.peer, PeerStep::Failure(EapError::Tls(_))), "{:?}", end.peer);
    }
}

#[test]
fn wrong_server_name_is_refused_by_the_peer() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let peer = TlsPeerConfig { server_name: Some("other.example.org".into()), ..pki().peer() };
        let end = converse(server_config(&[MethodType::Tls], Some(forced_server(v))), peer_config(&[], Some(peer)));
        let PeerStep::Failure(EapError::Certificate(why)) = &end.peer else { panic!("{v:?}: {:?}", end.peer) };
        assert!(why.contains("not valid for name"), "{why}");
        // The peer told the server with an alert; the server ended with EAP-Failure.
        assert!(
            matches!(&end.server, ServerStep::Failure { error: EapError::Tls(a), .. } if a.contains("alert")),
            "{:?}",
            end.server
        );
    }
    // An IP address is a name too, and the certificate has none.
    let peer = TlsPeerConfig { server_name: Some("192.0.2.1".into()), ..pki().peer() };
    let end = converse(server_config(&[MethodType::Tls], Some(pki().server())), peer_config(&[], Some(peer)));
    assert!(matches!(end.peer, PeerStep::Failure(EapError::Certificate(_))));
    // Without a name, any certificate of the server CAs does.
    let peer = TlsPeerConfig { server_name: None, ..pki().peer() };
    assert_success(&converse(server_config(&[MethodType::Tls], Some(pki().server())), peer_config(&[], Some(peer))));
}

#[test]
fn server_certificate_of_an_unknown_ca_is_refused() {
    let peer = TlsPeerConfig { server_cas: vec![rogue().root.clone()], ..pki().peer() };
    let end = converse(server_config(&[MethodType::Tls], Some(pki().server())), peer_config(&[], Some(peer)));
    assert!(
        matches!(&end.peer, PeerStep::Failure(EapError::Certificate(why)) if why.contains("UnknownIssuer")),
        "{:?}",
        end.peer
    );
    assert!(matches!(end.server, ServerStep::Failure { .. }));
    assert_eq!(end.peer_side.server_certificate(), None);
}

#[test]
fn expired_client_certificate_is_refused() {
    let p = pki();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn("old");
    params.not_before = date_time_ymd(2001, 1, 1);
    params.not_after = date_time_ymd(2002, 1, 1);
    let key = p256();
    let cert = params.signed_by(&key, &p.issuer).unwrap();
    let peer = TlsPeerConfig {
        cert_chain: vec![cert.der().to_vec(), p.intermediate.clone()],
        key: key.serialize_der().into(),
        ..p.peer()
    };
    let end = converse(server_config(&[MethodType::Tls], Some(p.server())), peer_config(&[], Some(peer)));
    assert!(
        matches!(&end.server, ServerStep::Failure { error: EapError::Certificate(why), .. } if why.contains("expired")),
        "{:?}",
        end.server
    );
}

// ---------------------------------------------------------------------------------------------
// The TLS 1.3 success indication

/// Runs a TLS 1.3 conversation until the server's Request carrying the success indication (the
/// one after the peer's last flight), without giving it to the peer.
fn to_indication() -> (EapServer, EapPeer, EapPayload, TestRandom, TestRandom) {
    let (srand, prand) = (rand(1), rand(2));
    let secrets = alice_secrets();
    let (mut server, mut request) =
        EapServer::start(server_config(&[MethodType::Tls], Some(forced_server(TlsVersion::Tls13))), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config(&[], Some(pki().peer())));
    let mut last_peer_data = false;
    for _ in 0..100 {
        let PeerStep::Respond(response) = peer.handle(&request, &secrets, &prand) else { panic!() };
        let peer_data = !tls_data(&response).is_empty();
        let ServerStep::Continue(next) = server.handle(&response, &secrets, &srand) else { panic!() };
        // The indication answers the peer's last (Finished) fragment; it is not an acknowledgement.
        if peer_data && flags(&response).unwrap() & 0x40 == 0 && last_peer_data && !tls_data(&next).is_empty() {
            return (server, peer, next, srand, prand);
        }
        last_peer_data = last_peer_data || peer_data && request.data != [13, 0x20];
        request = next;
    }
    panic!("no indication");
}

#[test]
fn tls13_success_before_the_indication_is_refused() {
    let (_server, mut peer, indication, _srand, prand) = to_indication();
    assert_eq!(tls_data(&indication)[0], 23);
    let success = EapPayload { code: EapCode::SUCCESS, identifier: indication.identifier, data: Vec::new() };
    match peer.handle(&success, &alice_secrets(), &prand) {
        PeerStep::Failure(EapError::Unexpected(why)) => assert!(why.contains("indication"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(peer.is_finished());
}

#[test]
fn tls13_indication_then_success() {
    let (mut server, mut peer, indication, srand, prand) = to_indication();
    let secrets = alice_secrets();
    let PeerStep::Respond(ack) = peer.handle(&indication, &secrets, &prand) else { panic!() };
    assert_eq!(ack.data, [13, 0]);
    let ServerStep::Success { packet, msk: Some(server_msk), .. } = server.handle(&ack, &secrets, &srand) else {
        panic!()
    };
    let PeerStep::Success { msk: Some(peer_msk), .. } = peer.handle(&packet, &secrets, &prand) else { panic!() };
    assert_eq!(server_msk, peer_msk);
}

#[test]
fn server_waits_for_the_peer_before_success() {
    // An empty Response before the handshake ends is no success.
    let (srand, prand) = (rand(1), rand(2));
    let secrets = alice_secrets();
    let (mut server, start) = EapServer::start(
        ServerConfig { ask_identity: false, ..server_config(&[MethodType::Tls], Some(pki().server())) },
        &srand,
    )
    .unwrap();
    let ack = EapPayload { code: EapCode::RESPONSE, identifier: start.identifier, data: vec![13, 0] };
    assert!(matches!(server.handle(&ack, &secrets, &srand), ServerStep::Failure { error: EapError::Tls(_), .. }));
    assert!(server.is_finished());
    let _ = prand;
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/// A server that has sent its Start (the peer's ClientHello is expected), without EAP-Identity.
fn started_server() -> (EapServer, EapPayload, TestRandom) {
    let srand = rand(1);
    let (server, start) = EapServer::start(
        ServerConfig { ask_identity: false, ..server_config(&[MethodType::Tls], Some(pki().server())) },
        &srand,
    )
    .unwrap();
    (server, start, srand)
}

/// A peer that has answered the Start with its ClientHello.
fn started_peer() -> (EapPeer, EapPayload, TestRandom) {
    let prand = rand(2);
    let mut peer = EapPeer::new(peer_config(&[], Some(pki().peer())));
    let start = EapPayload { code: EapCode::REQUEST, identifier: 7, data: vec![13, 0x20] };
    let PeerStep::Respond(_) = peer.handle(&start, &alice_secrets(), &prand) else { panic!() };
    (peer, start, prand)
}

fn tls_packet(code: EapCode, identifier: u8, type_data: &[u8]) -> EapPayload {
    let mut data = vec![13];
    data.extend_from_slice(type_data);
    EapPayload { code, identifier, data }
}

#[test]
fn length_above_the_cap_is_refused() {
    let too_long = u32::try_from(MAX_MESSAGE_LEN + 1).unwrap().to_be_bytes();
    let td = [&[0xc0][..], &too_long, &[22; 100]].concat();
    let (mut server, start, srand) = started_server();
    match server.handle(&tls_packet(EapCode::RESPONSE, start.identifier, &td), &alice_secrets(), &srand) {
        ServerStep::Failure { error: EapError::TooLarge(_), .. } => {}
        other => panic!("{other:?}"),
    }
    assert!(server.is_finished());
    let (mut peer, _, prand) = started_peer();
    assert!(matches!(
        peer.handle(&tls_packet(EapCode::REQUEST, 8, &td), &alice_secrets(), &prand),
        PeerStep::Failure(EapError::TooLarge(_))
    ));
    assert!(peer.is_finished());
    // At the cap it is taken (and acknowledged).
    let at_cap = u32::try_from(MAX_MESSAGE_LEN).unwrap().to_be_bytes();
    let td = [&[0xc0][..], &at_cap, &[22; 100]].concat();
    let (mut server, start, srand) = started_server();
    let ServerStep::Continue(ack) =
        server.handle(&tls_packet(EapCode::RESPONSE, start.identifier, &td), &alice_secrets(), &srand)
    else {
        panic!()
    };
    assert_eq!(ack.data, [13, 0]);
}

#[test]
fn endless_fragment_train_is_capped() {
    // 1000-octet fragments without a length: the reassembly cap.
    let (mut server, start, srand) = started_server();
    let mut identifier = start.identifier;
    let fragment = [&[0x40][..], &[22u8; 1000]].concat();
    let mut acks = 0;
    loop {
        match server.handle(&tls_packet(EapCode::RESPONSE, identifier, &fragment), &alice_secrets(), &srand) {
            ServerStep::Continue(ack) => {
                assert_eq!(ack.data, [13, 0]);
                identifier = ack.identifier;
                acks += 1;
                assert!(acks <= MAX_MESSAGE_LEN / 1000);
            }
            ServerStep::Failure { error: EapError::TooLarge(_), .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(server.is_finished());
    assert_eq!(acks, MAX_MESSAGE_LEN / 1000);
    // One-octet fragments: the packet count cap.
    let (mut server, start, srand) = started_server();
    let mut identifier = start.identifier;
    let mut acks = 0;
    loop {
        match server.handle(&tls_packet(EapCode::RESPONSE, identifier, &[0x40, 22]), &alice_secrets(), &srand) {
            ServerStep::Continue(ack) => {
                identifier = ack.identifier;
                acks += 1;
                assert!(acks <= MAX_PACKETS);
            }
            ServerStep::Failure { error: EapError::TooLarge(_), .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(acks, MAX_PACKETS, "every packet up to the cap is taken");
    // The peer alike.
    let (mut peer, _, prand) = started_peer();
    let mut ended = false;
    for id in 0..=u8::MAX {
        match peer.handle(&tls_packet(EapCode::REQUEST, id, &[0x40, 22, 3, 3]), &alice_secrets(), &prand) {
            PeerStep::Respond(ack) => assert_eq!(ack.data, [13, 0]),
            PeerStep::Failure(EapError::TooLarge(_)) => {
                ended = true;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(ended && peer.is_finished());
}

#[test]
fn malformed_packets_are_refused_without_harm() {
    let (mut server, start, srand) = started_server();
    let id = start.identifier;
    let secrets = alice_secrets();
    for td in [
        &[][..],
        &[0x80, 0, 0],              // L without the whole length
        &[0x40],                    // a fragment without data
        &[0x20],                    // Start in a Response
        &[0x80, 0, 0, 0, 1, 22, 3], // more data than the length
        &[0x80, 0, 0, 0, 9, 22, 3], // less data than the length, no M
        &[0x80, 0, 0, 0, 5],        // a length, no data
    ] {
        let step = server.handle(&tls_packet(EapCode::RESPONSE, id, td), &secrets, &srand);
        assert!(matches!(step, ServerStep::Failure { error: EapError::Malformed(_), .. }), "{td:?}: {step:?}");
        assert!(!server.is_finished(), "{td:?}");
    }
    let (mut peer, _, prand) = started_peer();
    for td in [&[][..], &[0x80, 0], &[0x40], &[0x20], &[0x80, 0, 0, 0, 1, 22, 3]] {
        let step = peer.handle(&tls_packet(EapCode::REQUEST, 8, td), &secrets, &prand);
        assert!(
            matches!(step, PeerStep::Failure(EapError::Malformed(_) | EapError::Unexpected(_))),
            "{td:?}: {step:?}"
        );
        assert!(!peer.is_finished(), "{td:?}");
    }
    // A peer that has seen no Start takes no other EAP-TLS Request.
    let mut fresh = EapPeer::new(peer_config(&[], Some(pki().peer())));
    let step = fresh.handle(&tls_packet(EapCode::REQUEST, 8, &[0x00, 22, 3, 3]), &secrets, &prand);
    assert!(matches!(step, PeerStep::Failure(EapError::Unexpected(_))), "{step:?}");
    // TLS records that are not TLS end the conversation with a TLS error, no panic.
    let (mut server, start, srand) = started_server();
    let step =
        server.handle(&tls_packet(EapCode::RESPONSE, start.identifier, &[0, 22, 3, 3, 0, 2, 1, 0]), &secrets, &srand);
    assert!(matches!(step, ServerStep::Failure { .. } | ServerStep::Continue(_)));
}

/// Delivers `variant` to the side that would receive `step`'s packet in a live conversation;
/// if it was refused without ending that side, the genuine packet goes on and the conversation
/// must still succeed.
fn live_with_variant(step: usize, mutate: &dyn Fn(&EapPayload) -> Vec<EapPayload>, v: TlsVersion) -> usize {
    let (srand, prand) = (rand(1), rand(2));
    let secrets = alice_secrets();
    let (mut server, first) =
        EapServer::start(server_config(&[MethodType::Tls], Some(forced_server(v))), &srand).unwrap();
    let mut peer = EapPeer::new(peer_config(&[], Some(pki().peer())));
    let mut packet = first;
    let mut tried = 0;
    for i in 0..200 {
        // Even steps go to the peer, odd to the server.
        if i == step {
            for variant in mutate(&packet) {
                tried += 1;
                let refused = if i % 2 == 0 {
                    matches!(peer.handle(&variant, &secrets, &prand), PeerStep::Failure(_)) && !peer.is_finished()
                } else {
                    matches!(server.handle(&variant, &secrets, &srand), ServerStep::Failure { .. })
                        && !server.is_finished()
                };
                if !refused {
                    return tried; // taken: the conversation went elsewhere
                }
            }
        }
        if i % 2 == 0 {
            match peer.handle(&packet, &secrets, &prand) {
                PeerStep::Respond(r) => packet = r,
                PeerStep::Success { .. } => return tried,
                other => panic!("step {step}: peer {other:?}"),
            }
        } else {
            match server.handle(&packet, &secrets, &srand) {
                ServerStep::Continue(r) => packet = r,
                ServerStep::Success { packet: p, .. } => {
                    let end = peer.handle(&p, &secrets, &prand);
                    assert!(matches!(end, PeerStep::Success { .. }), "step {step}: {end:?}");
                    return tried;
                }
                other => panic!("step {step}: server {other:?}"),
            }
        }
    }
    panic!("no end");
}

fn variants(p: &EapPayload) -> Vec<EapPayload> {
    let mut out = Vec::new();
    let len = p.data.len();
    let mut cuts: Vec<usize> = (0..len.min(12)).collect();
    cuts.extend([len / 2, len.saturating_sub(1)]);
    for n in cuts {
        out.push(EapPayload { data: p.data[..n.min(len)].to_vec(), ..p.clone() });
    }
    let mut longer = p.clone();
    longer.data.extend_from_slice(&[0xff; 7]);
    out.push(longer);
    let mut positions: Vec<usize> = (0..len.min(10)).collect();
    positions.extend([len / 3, len / 2, len.saturating_sub(1)].into_iter().filter(|&i| i < len));
    for i in positions {
        for x in [0x00, 0xff, 0x01, 0x80, 0x40, 0x20] {
            let mut m = p.clone();
            m.data[i] ^= x;
            if m.data != p.data {
                out.push(m);
            }
        }
    }
    out
}

/// Live conversations of both versions, each packet replaced by truncated, extended and
/// bit-flipped variants first: nothing panics, and a refused variant leaves the conversation able
/// to succeed (a variant taken by rustls may end it: TLS cannot be rolled back).
#[test]
fn mutated_packets_never_panic() {
    for v in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let mut step = 0;
        let mut tried = 0;
        // Up to the end of the transcript (a step beyond it just runs the whole conversation).
        while step < 40 {
            tried += live_with_variant(step, &variants, v);
            step += 1;
        }
        assert!(tried > 100, "{tried}");
    }
}

/// A forged EAP-TLS packet: random Flags and length, random data.
fn hostile_tls() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|d| [&[13u8][..], &d].concat()),
        (any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(f, l, d)| [
            &[13u8, f | 0x80][..],
            &l.to_be_bytes(),
            &d
        ]
        .concat()),
        // Something that looks like TLS records.
        (0u8..=0x40, 20u8..=24, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(f, ct, d)| {
            let mut td = vec![13, f & 0x40, ct, 3, 3];
            td.extend_from_slice(&u16::try_from(d.len()).unwrap().to_be_bytes());
            td.extend(d);
            td
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random EAP-TLS packets at several stages of both sides never panic.
    #[test]
    fn random_packets_never_panic(packets in proptest::collection::vec(hostile_tls(), 1..8), stage in 0usize..8) {
        let (srand, prand) = (rand(1), rand(2));
        let secrets = alice_secrets();
        let (mut server, first) = EapServer::start(
            server_config(&[MethodType::Tls, MethodType::MsChapV2], Some(pki().server())),
            &srand,
        ).unwrap();
        let mut peer = EapPeer::new(peer_config(&[], Some(pki().peer())));
        let mut request = first;
        for _ in 0..stage {
            let PeerStep::Respond(resp) = peer.handle(&request, &secrets, &prand) else { break };
            let ServerStep::Continue(next) = server.handle(&resp, &secrets, &srand) else { break };
            request = next;
        }
        for data in packets {
            for code in [EapCode::REQUEST, EapCode::RESPONSE] {
                let p = EapPayload { code, identifier: request.identifier, data: data.clone() };
                let _ = server.handle(&p, &secrets, &srand);
                let _ = peer.handle(&p, &secrets, &prand);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Negotiation and configuration

#[test]
fn nak_from_tls_to_mschapv2_and_back() {
    // The server prefers EAP-TLS; the peer takes only MS-CHAPv2.
    let end = converse(
        server_config(&[MethodType::Tls, MethodType::MsChapV2], Some(pki().server())),
        peer_config(&[MethodType::MsChapV2], Some(pki().peer())),
    );
    let t = &end.transcript;
    assert_eq!(t[2].data, [13, 0x20]);
    assert_eq!(t[3].data, [3, 26], "Nak naming MS-CHAPv2");
    assert!(matches!(end.server, ServerStep::Success { method: MethodType::MsChapV2, msk: Some(_), .. }));
    assert!(matches!(end.peer, PeerStep::Success { method: MethodType::MsChapV2, msk: Some(_) }));
    assert_eq!(end.server_side.peer_certificate(), None);
    // The server prefers MS-CHAPv2; the peer takes only EAP-TLS.
    let end = converse(
        server_config(&[MethodType::MsChapV2, MethodType::Tls], Some(pki().server())),
        peer_config(&[MethodType::Tls], Some(pki().peer())),
    );
    assert_eq!(end.transcript[2].eap_type(), Some(26));
    assert_eq!(end.transcript[3].data, [3, 13], "Nak naming EAP-TLS");
    assert_eq!(end.transcript[4].data, [13, 0x20]);
    assert_success(&end);
}

#[test]
fn peer_without_certificates_naks_tls() {
    let end =
        converse(server_config(&[MethodType::Tls, MethodType::MsChapV2], Some(pki().server())), peer_config(&[], None));
    assert_eq!(end.transcript[3].data, [3, 26, 4], "Nak naming MS-CHAPv2 and MD5, not EAP-TLS");
    assert!(matches!(end.server, ServerStep::Success { method: MethodType::MsChapV2, .. }));
    // Only EAP-TLS, and no certificates: a Nak naming nothing.
    let end = converse(server_config(&[MethodType::Tls], Some(pki().server())), peer_config(&[MethodType::Tls], None));
    assert_eq!(end.transcript[3].data, [3, 0]);
    assert!(matches!(end.server, ServerStep::Failure { error: EapError::NoCommonMethod, .. }));
}

#[test]
fn configuration_is_checked_at_the_start() {
    let r = rand(1);
    let start = |tls: Option<TlsServerConfig>| EapServer::start(server_config(&[MethodType::Tls], tls), &r).err();
    assert!(matches!(start(None), Some(EapError::Config(_))));
    assert!(matches!(
        start(Some(TlsServerConfig { client_cas: Vec::new(), ..pki().server() })),
        Some(EapError::Config(_))
    ));
    assert!(matches!(
        start(Some(TlsServerConfig { cert_chain: Vec::new(), ..pki().server() })),
        Some(EapError::Config(_))
    ));
    assert!(matches!(
        start(Some(TlsServerConfig { key: vec![1, 2, 3].into(), ..pki().server() })),
        Some(EapError::Config(_))
    ));
    // A key that is not the certificate's.
    assert!(matches!(
        start(Some(TlsServerConfig { key: pki().client_key.clone().into(), ..pki().server() })),
        Some(EapError::Tls(_))
    ));
    assert!(matches!(
        start(Some(TlsServerConfig { fragment_size: Some(20), ..pki().server() })),
        Some(EapError::Config(_))
    ));
    assert!(matches!(
        start(Some(TlsServerConfig {
            min_version: Some(TlsVersion::Tls13),
            max_version: Some(TlsVersion::Tls12),
            ..pki().server()
        })),
        Some(EapError::Config(_))
    ));
    // Without EAP-TLS among the methods the TLS configuration is not needed.
    assert!(EapServer::start(server_config(&[MethodType::MsChapV2], None), &r).is_ok());
    // The peer's configuration is checked when the server proposes EAP-TLS.
    let prand = rand(2);
    let start = EapPayload { code: EapCode::REQUEST, identifier: 1, data: vec![13, 0x20] };
    let mut peer =
        EapPeer::new(peer_config(&[], Some(TlsPeerConfig { server_name: Some("not a name!".into()), ..pki().peer() })));
    assert!(matches!(peer.handle(&start, &alice_secrets(), &prand), PeerStep::Failure(EapError::Config(_))));
    let mut peer = EapPeer::new(peer_config(&[], Some(TlsPeerConfig { server_cas: Vec::new(), ..pki().peer() })));
    assert!(matches!(peer.handle(&start, &alice_secrets(), &prand), PeerStep::Failure(EapError::Config(_))));
}

#[test]
fn keys_are_not_printed_and_method_flags() {
    let s = format!("{:?} {:?}", pki().server(), pki().peer());
    assert!(s.contains("redacted"));
    let key_hex: String = pki().server_key[..16].iter().map(|b| format!("{b}, ")).collect();
    assert!(!s.contains(&key_hex));
    assert!(MethodType::Tls.is_implemented() && MethodType::Tls.is_mutual() && MethodType::Tls.is_key_generating());
    let e = EapError::Certificate("invalid peer certificate: UnknownIssuer".into());
    assert_eq!(e.to_string(), "EAP-TLS certificate refused: invalid peer certificate: UnknownIssuer");
    assert_eq!(EapError::TooLarge("TLS Message Length").to_string(), "TLS Message Length over its limit");
}
