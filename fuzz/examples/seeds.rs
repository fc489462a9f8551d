//! Writes starting inputs for every fuzz target, one directory each under OUTDIR, from the
//! project's captured data and from conversations this program runs itself:
//!
//!     cargo run --release --manifest-path fuzz/Cargo.toml --example seeds -- OUTDIR
//!
//! They are raw material, not the committed corpus: fuzzing from them and minimizing with
//! libFuzzer's `-merge=1` makes `fuzz/seeds/TARGET` (see fuzz/README.md). The conversations use the
//! same configuration, provider seeds and calls as the targets, so the deterministic provider draws
//! the same SPIs, nonces and challenges, and an input recorded here means the same to the target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_crypto::test_provider::TestProvider;
use oxswan_eap::{EapPeer, EapSecrets, EapServer, MethodType, PeerStep, ServerStep};
use oxswan_ike::Endpoint;
use oxswan_radius::{
    AccountingRecord, AcctStatus, Attribute, ClientConfig, Code, EapSession, Packet, RadiusClient, ServerConfig,
};
use oxswan_wire::payloads::{EapCode, EapPayload};

/// Inputs by target, each a list of (name, bytes).
type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn add(seeds: &mut Seeds, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
    seeds.entry(target).or_default().push((name.into(), bytes));
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// --- captured data -------------------------------------------------------------------------------

/// The charon ↔ charon capture (crates/wire/tests/data/README.md): IKE messages (the non-ESP marker
/// already stripped), ESP packets, and the decrypted SK contents.
struct Capture {
    ike: Vec<(String, Vec<u8>)>,
    esp: Vec<(String, Vec<u8>)>,
    /// (message, the plaintext of its SK payload)
    sk_plain: Vec<(String, Vec<u8>, Vec<u8>)>,
}

fn capture() -> Capture {
    let dir = repo().join("crates/wire/tests/data");
    let mut c = Capture { ike: Vec::new(), esp: Vec::new(), sk_plain: Vec::new() };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    for n in &names {
        let bytes = std::fs::read(dir.join(n)).unwrap();
        if n.ends_with(".sk-plain.bin") {
            let message = std::fs::read(dir.join(n.replace(".sk-plain.bin", ".bin"))).unwrap();
            c.sk_plain.push((n.clone(), message, bytes));
        } else if n.contains("-esp-") {
            c.esp.push((n.clone(), bytes));
        } else {
            c.ike.push((n.clone(), bytes));
        }
    }
    assert!(!c.ike.is_empty() && !c.esp.is_empty() && !c.sk_plain.is_empty(), "no capture in {dir:?}");
    c
}

/// A captured message re-encrypted with the test provider's null cipher (the identity, an all-zero
/// ICV), so that sk_payload's decryption accepts it: header, SK payload header (RFC 7296 §3.14),
/// an 8-octet IV (AES-GCM, RFC 5282 §3.1), the inner payloads, padding and Pad Length, the ICV.
fn null_cipher_sk(message: &[u8], plain: &[u8], pad: usize) -> Vec<u8> {
    const HDR: usize = 28;
    // The captured messages' first payload is SK: its header says what the inner chain begins with.
    assert_eq!(message[16], 46, "SK is the first payload");
    let mut out = message[..HDR + 4].to_vec();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(plain);
    out.extend((1..=pad).map(|i| i as u8));
    out.push(pad as u8);
    out.extend_from_slice(&[0; 16]);
    let sk_len = u16::try_from(out.len() - HDR).unwrap();
    out[HDR + 2..HDR + 4].copy_from_slice(&sk_len.to_be_bytes());
    let total = u32::try_from(out.len()).unwrap();
    out[24..28].copy_from_slice(&total.to_be_bytes());
    out
}

fn swanctl_confs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("crates/oxswan/tests/data/swanctl"), repo().join("examples/strongswan")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "conf") {
                out.push((p.strip_prefix(repo()).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty());
    out
}

// --- endpoint: the same two endpoints as fuzz_targets/endpoint.rs --------------------------------

#[path = "../common/endpoint_pair.rs"]
mod endpoint_pair;
use endpoint_pair::{addr, exchange, next_record};

/// The target's two endpoints after their handshake, and the handshake's datagrams.
fn endpoints(now: Instant) -> ([Endpoint; 2], Vec<(usize, Vec<u8>)>) {
    let mut log = Vec::new();
    let eps = endpoint_pair::endpoints(now, |from, d| log.push((from, d.to_vec()))).unwrap();
    assert_eq!(eps[0].established().len(), 1, "the handshake completes");
    (eps, log)
}

/// One record of the endpoint target: to `to` on port 500, the clock advanced `secs` first.
fn record(out: &mut Vec<u8>, to: usize, secs: u8, datagram: &[u8]) {
    assert!(secs < 64);
    out.push(secs << 2 | to as u8);
    out.extend_from_slice(&u16::try_from(datagram.len()).unwrap().to_be_bytes());
    out.extend_from_slice(datagram);
}

/// Feeds `input` to fresh endpoints as the target does (without its clock), and returns how many
/// datagrams `b` dropped: the check that a recorded request means to `b` what it meant here.
fn replay_drops_at_b(input: &[u8]) -> u64 {
    let now = Instant::now();
    let (mut eps, _) = endpoints(now);
    let before = eps[1].stats().dropped;
    let mut rest = input;
    while let Some((target, datagram)) = next_record(&mut rest) {
        let to = usize::from(target & 1);
        eps[to].handle_datagram(now, addr(1 + to as u8, 500), addr(2 - to as u8, 500), datagram);
        exchange(&mut eps, now, |_, _| {});
    }
    eps[1].stats().dropped - before
}

/// What endpoint `a` starts after the handshake, each alone.
type Job = fn(&mut Endpoint, Instant, oxswan_ike::SaHandle);

fn endpoint_jobs() -> Vec<(&'static str, Job)> {
    vec![
        ("liveness", |e, now, sa| e.liveness(now, sa).unwrap()),
        ("rekey-child", |e, now, sa| {
            let spi = e.children(sa)[0].spi_in;
            e.rekey_child(now, sa, spi).unwrap();
        }),
        ("rekey-ike", |e, now, sa| e.rekey_ike(now, sa).unwrap()),
        ("delete-child", |e, now, sa| {
            let spi = e.children(sa)[0].spi_in;
            e.delete_child(now, sa, spi).unwrap();
        }),
        ("roam", |e, now, sa| {
            let paths = [(IpAddr::from([192, 0, 2, 11]), IpAddr::from([192, 0, 2, 2]))];
            e.set_local_addresses(vec![paths[0].0]);
            e.roam(now, sa, &paths).unwrap();
        }),
        ("delete-ike", |e, now, sa| e.delete_ike(now, sa).unwrap()),
    ]
}

fn endpoint_seeds(seeds: &mut Seeds, all_messages: &mut Vec<(String, Vec<u8>)>, cap: &Capture) {
    let now = Instant::now();
    let (_, handshake) = endpoints(now);
    // The deterministic provider gives every run the same SPIs, nonces and keys.
    assert_eq!(endpoints(now).1, handshake, "the handshake replays exactly");
    for (i, (from, d)) in handshake.iter().enumerate() {
        all_messages.push((format!("handshake-{i}"), d.clone()));
        // Each handshake message again: the retransmission caches, and a second IKE_SA_INIT.
        let mut r = Vec::new();
        record(&mut r, 1 - from, 0, d);
        add(seeds, "endpoint", format!("handshake-{i}-again"), r);
    }
    // Every job's requests delivered to b, alone, and all of them in a row with what a sends once
    // answered: b sees what it would have seen from a (in the target a drops b's answers, to
    // requests it did not send).
    let mut chain = Vec::new();
    let (mut eps_chain, _) = endpoints(now);
    for (name, job) in endpoint_jobs() {
        let (mut eps, _) = endpoints(now);
        let sa = eps[0].established()[0];
        job(&mut eps[0], now, sa);
        let mut r = Vec::new();
        while let Some(t) = eps[0].poll_transmit() {
            all_messages.push((format!("{name}-request"), t.payload.clone()));
            record(&mut r, 1, 0, &t.payload);
        }
        assert!(!r.is_empty(), "{name} sends a request");
        assert_eq!(replay_drops_at_b(&r), 0, "b takes {name}'s request");
        add(seeds, "endpoint", name, r);
        // The same job, answered, in the chain (the delete of the IKE SA ends it).
        if let Some(&sa) = eps_chain[0].established().first() {
            job(&mut eps_chain[0], now, sa);
            while let Some(t) = eps_chain[0].poll_transmit() {
                record(&mut chain, 1, 0, &t.payload);
                eps_chain[1].handle_datagram(now, t.remote, t.local, &t.payload);
            }
            let mut log = Vec::new();
            exchange(&mut eps_chain, now, |from, d| log.push((from, d.to_vec())));
            for (from, d) in log {
                // What a sends on its own once answered (the delete after a rekey) is b's too.
                if from == 0 {
                    record(&mut chain, 1, 0, &d);
                }
                all_messages.push((format!("{name}-{from}"), d));
            }
        }
    }
    assert_eq!(replay_drops_at_b(&chain), 0, "b takes every request of the chain");
    add(seeds, "endpoint", "all-jobs", chain);
    // Time passing: retransmissions, DPD, lifetimes.
    let mut r = Vec::new();
    for _ in 0..32 {
        record(&mut r, 0, 63, &[]);
    }
    add(seeds, "endpoint", "time", r);
    // strongSwan's messages (other SPIs, other IDs): b answers charon's IKE_SA_INIT as a responder.
    for (n, m) in &cap.ike {
        let mut r = Vec::new();
        record(&mut r, 1, 0, m);
        add(seeds, "endpoint", format!("charon-{n}"), r);
    }
}

// --- eap: the same server and peer as fuzz_targets/eap.rs ----------------------------------------

#[derive(Debug)]
struct Users;

impl EapSecrets for Users {
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        (identity == b"alice").then(|| Secret::from_slice(b"alice's password"))
    }
}

/// An EAP packet's body as the target takes it (RFC 3748 §4: Code, Identifier, Length, Data).
fn eap_body(p: &EapPayload) -> Vec<u8> {
    let mut out = vec![p.code.0, p.identifier];
    out.extend_from_slice(&u16::try_from(p.data.len() + 4).unwrap().to_be_bytes());
    out.extend_from_slice(&p.data);
    out
}

fn eap_record(out: &mut Vec<u8>, who: u8, p: &EapPayload) {
    let body = eap_body(p);
    out.push(who);
    out.push(u8::try_from(body.len()).unwrap());
    out.extend_from_slice(&body);
}

/// A whole conversation in the target's order of calls: the peer's Responses to the server
/// (`who` 0) and the server's Requests to the peer (`who` 1). `server_methods` and the password
/// vary what it goes through; the target's server offers MSCHAPv2, then MD5.
fn eap_conversation(identity: &[u8], nak_to: Option<u8>) -> Vec<u8> {
    let provider = TestProvider::new(1).build();
    let random = provider.random.as_ref();
    let config = oxswan_eap::ServerConfig {
        methods: vec![MethodType::MsChapV2, MethodType::Md5],
        ask_identity: true,
        identity: None,
        tls: None,
    };
    let (mut server, first) = EapServer::start(config, random).unwrap();
    let mut peer = EapPeer::new(oxswan_eap::PeerConfig { identity: identity.to_vec(), methods: Vec::new(), tls: None });
    let mut out = Vec::new();
    let mut request = first;
    for _ in 0..8 {
        eap_record(&mut out, 1, &request);
        let response = match peer.handle(&request, &Users, random) {
            PeerStep::Respond(r) => r,
            PeerStep::Success { .. } | PeerStep::Failure(_) => break,
        };
        // A Nak (RFC 3748 §5.3.1) asking for another method instead of the peer's answer.
        let response = match nak_to {
            Some(m) if response.data.first().is_some_and(|t| *t == MethodType::MsChapV2.code()) => {
                EapPayload { code: EapCode::RESPONSE, identifier: response.identifier, data: vec![3, m] }
            }
            _ => response,
        };
        eap_record(&mut out, 0, &response);
        request = match server.handle(&response, &Users, random) {
            ServerStep::Continue(r) => r,
            ServerStep::Success { packet, .. } | ServerStep::Failure { packet, .. } => {
                eap_record(&mut out, 1, &packet);
                break;
            }
        };
    }
    out
}

fn eap_seeds(seeds: &mut Seeds) {
    add(seeds, "eap", "alice-mschapv2", eap_conversation(b"alice", None));
    add(seeds, "eap", "alice-nak-md5", eap_conversation(b"alice", Some(MethodType::Md5.code())));
    add(seeds, "eap", "bob-unknown", eap_conversation(b"bob", None));
}

// --- radius: the same client as fuzz_targets/radius.rs -------------------------------------------

/// The target's client with its two requests out: (client, the Access-Request, the
/// Accounting-Request) as sent.
fn radius_client() -> (Vec<u8>, Vec<u8>) {
    let provider = TestProvider::new(2).build();
    let random = provider.random.as_ref();
    let server: SocketAddr = ([10, 0, 0, 5], 1812).into();
    let mut client = RadiusClient::new(ClientConfig {
        servers: vec![ServerConfig {
            auth: server,
            acct: ([10, 0, 0, 5], 1813).into(),
            secret: Secret::from_slice(b"s"),
        }],
        timeout: Duration::from_secs(1),
        tries: 2,
        nas_identifier: "fuzz".into(),
        nas_ip: None,
    });
    let now = Instant::now();
    let eap = EapPayload { code: EapCode::RESPONSE, identifier: 1, data: b"\x01alice".to_vec() };
    let session = EapSession::new(b"alice".to_vec(), "192.0.2.1[4500]".into(), "192.0.2.2[4500]".into());
    client.eap_request(now, &session, &eap, random).unwrap();
    client.accounting(now, &AccountingRecord::new(AcctStatus::Start, "1".into(), b"alice".to_vec()), random).unwrap();
    let (_, access) = client.poll_transmit().unwrap();
    let (_, acct) = client.poll_transmit().unwrap();
    assert_eq!(access[0], Code::ACCESS_REQUEST.0);
    assert_eq!(acct[0], Code::ACCOUNTING_REQUEST.0);
    (access, acct)
}

/// A signed answer to `request` without the octet 0xFE, which the target splits its input at:
/// the Reply-Message is varied until the authenticators have none.
fn radius_answer(request: &[u8], code: Code, attrs: &[Attribute]) -> Vec<u8> {
    let req = Packet::decode(request).unwrap();
    for i in 0..1000u32 {
        let mut p = Packet::new(code, req.identifier);
        p.attributes = attrs.to_vec();
        p.attributes.push(Attribute::ReplyMessage(format!("seed {i}").into_bytes()));
        let bytes = p.encode_response(&req.authenticator, b"s").unwrap();
        if !bytes.contains(&0xfe) {
            return bytes;
        }
    }
    panic!("no answer without 0xfe");
}

fn radius_seeds(seeds: &mut Seeds) {
    let (access, acct) = radius_client();
    let eap_request = |id: u8, data: &[u8]| {
        let mut b = vec![EapCode::REQUEST.0, id];
        b.extend_from_slice(&u16::try_from(data.len() + 4).unwrap().to_be_bytes());
        b.extend_from_slice(data);
        b
    };
    let ma = Attribute::MessageAuthenticator([0; 16]);
    let challenge = radius_answer(
        &access,
        Code::ACCESS_CHALLENGE,
        &[
            Attribute::EapMessage(eap_request(2, b"\x04\x100123456789abcdefserver")),
            Attribute::State(b"state-1".to_vec()),
            ma.clone(),
        ],
    );
    let accept = radius_answer(
        &access,
        Code::ACCESS_ACCEPT,
        &[Attribute::EapMessage(vec![3, 2, 0, 4]), Attribute::UserName(b"alice".to_vec()), ma.clone()],
    );
    let reject = radius_answer(&access, Code::ACCESS_REJECT, &[Attribute::EapMessage(vec![4, 2, 0, 4]), ma]);
    let acct_response = radius_answer(&acct, Code::ACCOUNTING_RESPONSE, &[]);
    add(seeds, "radius", "challenge", challenge.clone());
    add(seeds, "radius", "accept", accept.clone());
    add(seeds, "radius", "reject", reject);
    add(seeds, "radius", "accounting-response", acct_response.clone());
    let join = |parts: &[&[u8]]| parts.join(&0xfe);
    add(seeds, "radius", "challenge-then-accounting", join(&[&challenge, &acct_response]));
    add(seeds, "radius", "accept-late", join(&[&[], &[], &[], &accept]));
}

// --- the stateless targets -------------------------------------------------------------------------

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP SYN with an MSS option (RFC 9293 §3.2), over IPv4 or IPv6, `extra` octets of payload.
fn tcp_syn(v6: bool, mss: u16, extra: usize) -> Vec<u8> {
    let mut tcp = vec![0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0];
    tcp.extend_from_slice(&[2, 4]);
    tcp.extend_from_slice(&mss.to_be_bytes());
    tcp.extend(std::iter::repeat_n(0x61, extra));
    ip_packet(v6, 6, &tcp)
}

/// An IPv4 (DF set) or IPv6 packet from 10.0.0.1 / fd00::1 to 10.0.0.2 / fd00::2.
fn ip_packet(v6: bool, protocol: u8, body: &[u8]) -> Vec<u8> {
    if v6 {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        p.extend_from_slice(&[protocol, 64]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(body);
        p
    } else {
        let total = u16::try_from(20 + body.len()).unwrap().to_be_bytes();
        let mut p = vec![0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let sum = ipv4_checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(body);
        p
    }
}

fn inner_packet_seeds(seeds: &mut Seeds) {
    // [MTU][MSS] then the packet.
    let mut cases = Vec::new();
    for v6 in [false, true] {
        let fam = if v6 { "v6" } else { "v4" };
        cases.push((format!("{fam}-syn-clamped"), 1400u16, 1360u16, tcp_syn(v6, 1460, 0)));
        cases.push((format!("{fam}-syn-kept"), 1400, 1460, tcp_syn(v6, 1200, 0)));
        let mut udp = vec![0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0];
        udp.extend(std::iter::repeat_n(0x62, 1472));
        let len = u16::try_from(udp.len()).unwrap().to_be_bytes();
        udp[4..6].copy_from_slice(&len);
        cases.push((format!("{fam}-udp-too-big"), 1280, 1360, ip_packet(v6, 17, &udp)));
        cases.push((format!("{fam}-syn-too-big"), 1000, 1360, tcp_syn(v6, 1460, 1200)));
    }
    for (name, mtu, mss, p) in cases {
        let mut input = mtu.to_be_bytes().to_vec();
        input.extend_from_slice(&mss.to_be_bytes());
        input.extend_from_slice(&p);
        add(seeds, "inner_packet", name, input);
    }
}

/// An ESP packet in the clear, as the trailer parser sees it after decryption: SPI, sequence
/// number, the inner packet, padding 1, 2, …, Pad Length, Next Header (RFC 4303 §2).
fn esp_plain(inner: &[u8], next_header: u8, pad: u8) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1];
    p.extend_from_slice(inner);
    p.extend(1..=pad);
    p.push(pad);
    p.push(next_header);
    p
}

fn stateless_seeds(seeds: &mut Seeds, cap: &Capture, messages: &[(String, Vec<u8>)]) {
    for (n, m) in cap.ike.iter().chain(messages) {
        add(seeds, "ike_message", n.clone(), m.clone());
        let mut marked = vec![0; 4];
        marked.extend_from_slice(m);
        add(seeds, "udp_encap", n.clone(), marked);
        // Both sides of a stream: the opener's with the prefix (mode bit 0 set), the acceptor's
        // answer without; bits 1.. cut the reads.
        for (mode, prefix) in [(1u8, &b"IKETCP"[..]), (0x10, &b""[..])] {
            let mut s = vec![mode];
            s.extend_from_slice(prefix);
            oxswan_tcp::push_ike(&mut s, m).unwrap();
            add(seeds, "tcp_stream", format!("{n}-{mode}"), s);
        }
    }
    for (n, m) in messages {
        // The endpoint's messages are under the null cipher already.
        add(seeds, "sk_payload", n.clone(), m.clone());
    }
    for (n, message, plain) in &cap.sk_plain {
        for pad in [0, 3] {
            add(seeds, "sk_payload", format!("{n}-pad{pad}"), null_cipher_sk(message, plain, pad));
        }
    }
    let inner = tcp_syn(false, 1460, 0);
    let plain = [esp_plain(&inner, 4, 2), esp_plain(&tcp_syn(true, 1460, 0), 41, 0), esp_plain(&[], 59, 4)];
    for (n, e) in
        cap.esp.iter().cloned().chain(plain.iter().enumerate().map(|(i, p)| (format!("plain-{i}"), p.clone())))
    {
        add(seeds, "esp_packet", n.clone(), e.clone());
        add(seeds, "udp_encap", n.clone(), e.clone());
        let mut s = vec![0x20];
        oxswan_tcp::push_esp(&mut s, &e).unwrap();
        add(seeds, "tcp_stream", n.clone(), s);
    }
    add(seeds, "udp_encap", "keepalive", vec![0xff]);
    // A stream of several frames, read 97 octets at a time: a keepalive frame, IKE, ESP.
    let mut s = vec![1];
    s.extend_from_slice(b"IKETCP");
    oxswan_tcp::push_esp(&mut s, &[0xff]).unwrap();
    oxswan_tcp::push_ike(&mut s, &cap.ike[0].1).unwrap();
    oxswan_tcp::push_esp(&mut s, &cap.esp[0].1).unwrap();
    add(seeds, "tcp_stream", "several", s);
    for (n, c) in swanctl_confs() {
        add(seeds, "swanctl_settings", n, c);
    }
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: seeds OUTDIR"));
    let cap = capture();
    let mut seeds = Seeds::new();
    let mut messages = Vec::new();
    endpoint_seeds(&mut seeds, &mut messages, &cap);
    stateless_seeds(&mut seeds, &cap, &messages);
    inner_packet_seeds(&mut seeds);
    eap_seeds(&mut seeds);
    radius_seeds(&mut seeds);
    for (target, inputs) in &seeds {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, (name, bytes)) in inputs.iter().enumerate() {
            let file: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
            std::fs::write(dir.join(format!("{i:03}-{}", file.trim_start_matches('_'))), bytes).unwrap();
        }
        println!("{target}: {} inputs", inputs.len());
    }
}
