//! What the tests share: a deterministic random source, configurations and a fake RADIUS server
//! built on the crate's own encoder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oxswan_crypto::provider::SecureRandom;
use oxswan_radius::{Attribute, ClientConfig, Code, EapSession, Packet, Secret, ServerConfig};
use oxswan_wire::payloads::{EapCode, EapPayload};

/// A deterministic random source: splitmix64 over a counter. NO SECURITY, tests only.
#[derive(Debug)]
pub struct TestRandom(AtomicU64);

impl TestRandom {
    pub fn new(seed: u64) -> Self {
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
pub struct BrokenRandom;

impl SecureRandom for BrokenRandom {
    fn fill(&self, _dest: &mut [u8]) -> oxswan_crypto::Result<()> {
        Err(oxswan_crypto::CryptoError::UnsupportedSignature("no randomness".into()))
    }
}

/// Server `i`'s shared secret.
pub fn secret(i: usize) -> Vec<u8> {
    format!("secret-{i}").into_bytes()
}

/// Server `i`'s addresses: 127.0.0.(10+i), ports 1812 and 1813.
pub fn server(i: usize) -> ServerConfig {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i as u8));
    ServerConfig { auth: SocketAddr::new(ip, 1812), acct: SocketAddr::new(ip, 1813), secret: Secret::new(secret(i)) }
}

/// `n` servers, 2 s timeout, `tries` sends each, NAS-Identifier "oxswan", NAS-IP 192.0.2.1.
pub fn config(n: usize, tries: u32) -> ClientConfig {
    ClientConfig {
        servers: (0..n).map(server).collect(),
        timeout: Duration::from_secs(2),
        tries,
        nas_identifier: "oxswan".into(),
        nas_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
    }
}

/// The opening of alice's conversation.
pub fn session() -> EapSession {
    let mut s = EapSession::new(b"alice".to_vec(), "198.51.100.7[4500]".to_string(), "192.0.2.1[4500]".to_string());
    s.nas_port = Some(7);
    s.nas_port_id = Some("rw-eap".into());
    s
}

pub fn eap(code: EapCode, identifier: u8, data: &[u8]) -> EapPayload {
    EapPayload { code, identifier, data: data.to_vec() }
}

pub fn eap_bytes(e: &EapPayload) -> Vec<u8> {
    let mut out = Vec::new();
    e.emit(&mut out).unwrap();
    out
}

/// The EAP-Response/Identity "alice".
pub fn identity() -> EapPayload {
    eap(EapCode::RESPONSE, 0, b"\x01alice")
}

/// What the fake server does with a request: decodes it and checks that it is signed exactly as
/// RFC 2865/2866/3579 say, by signing the decoded packet again with the secret.
pub fn decode_request(secret: &[u8], bytes: &[u8]) -> Packet {
    let p = Packet::decode(bytes).unwrap();
    assert!(p.code == Code::ACCESS_REQUEST || p.code == Code::ACCOUNTING_REQUEST);
    assert_eq!(p.encode_request(secret).unwrap(), bytes, "request not signed as the RFCs say");
    p
}

/// An answer to `req` with a Message-Authenticator first and `attrs`, signed with `secret`.
pub fn respond(secret: &[u8], req: &Packet, code: Code, attrs: Vec<Attribute>) -> Vec<u8> {
    let mut all = vec![Attribute::MessageAuthenticator([0; 16])];
    all.extend(attrs);
    respond_raw(secret, req, code, all)
}

/// An answer to `req` with exactly `attrs`, signed with `secret`.
pub fn respond_raw(secret: &[u8], req: &Packet, code: Code, attrs: Vec<Attribute>) -> Vec<u8> {
    Packet { code, identifier: req.identifier, authenticator: [0; 16], attributes: attrs }
        .encode_response(&req.authenticator, secret)
        .unwrap()
}

/// The EAP-Message attributes of `attrs`, concatenated, and how many there were.
pub fn eap_of(attrs: &[Attribute]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut n = 0;
    for a in attrs {
        if let Attribute::EapMessage(v) = a {
            out.extend_from_slice(v);
            n += 1;
        }
    }
    (out, n)
}

/// EAP-Message attributes of 253 octets at most for `e`.
pub fn eap_attrs(e: &EapPayload) -> Vec<Attribute> {
    eap_bytes(e).chunks(253).map(|c| Attribute::EapMessage(c.to_vec())).collect()
}
