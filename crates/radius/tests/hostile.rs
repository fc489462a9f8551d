//! Hostile input: random datagrams, mutations of valid answers and random sequences of events
//! never make the client panic, and nothing but the genuine answer is ever taken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use oxswan_radius::mppe::{self, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, VENDOR_MICROSOFT};
use oxswan_radius::{Answer, Attribute, Code, Packet, RadiusClient, RawPacket, verify_response};
use oxswan_wire::payloads::EapCode;
use proptest::prelude::*;

/// A client with one Access-Request in flight to server 0, and that request as server 0 read it.
fn in_flight(seed: u64) -> (RadiusClient, Packet) {
    let random = TestRandom::new(seed);
    let mut client = RadiusClient::new(config(2, 3));
    let mut s = session();
    // Bound to server 0, so that an Accept is not refused as opening the conversation.
    s.challenged(oxswan_radius::ServerId::new(0), Some(b"st".to_vec()));
    client.eap_request(Instant::now(), &s, &identity(), &random).unwrap();
    let (_, bytes) = client.poll_transmit().unwrap();
    (client, decode_request(&secret(0), &bytes))
}

/// Valid answers to `req`: a Challenge, an Accept with keys and a Reject.
fn answers(req: &Packet) -> Vec<Vec<u8>> {
    let mut challenge = eap_attrs(&eap(EapCode::REQUEST, 1, &[4, 16, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]));
    challenge.push(Attribute::State(b"state".to_vec()));
    let recv = mppe::encrypt_key(&[1; 32], [0x80, 1], &secret(0), &req.authenticator).unwrap();
    let send = mppe::encrypt_key(&[2; 32], [0x80, 2], &secret(0), &req.authenticator).unwrap();
    let accept = vec![
        Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_RECV_KEY, &recv).unwrap(),
        Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_SEND_KEY, &send).unwrap(),
        Attribute::EapMessage(eap_bytes(&eap(EapCode::SUCCESS, 1, &[]))),
        Attribute::Class(b"c".to_vec()),
        Attribute::FramedIpAddress("10.0.0.1".parse().unwrap()),
        Attribute::FramedIpv6Prefix { prefix_len: 64, prefix: "fd00::".parse().unwrap() },
    ];
    let reject =
        vec![Attribute::EapMessage(eap_bytes(&eap(EapCode::FAILURE, 1, &[]))), Attribute::ReplyMessage(b"no".to_vec())];
    vec![
        respond(&secret(0), req, Code::ACCESS_CHALLENGE, challenge),
        respond(&secret(0), req, Code::ACCESS_ACCEPT, accept),
        respond(&secret(0), req, Code::ACCESS_REJECT, reject),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::Extend),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..20))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    if data.is_empty() {
        return;
    }
    let n = data.len();
    match m {
        Mutation::Flip { at, mask } => data[at % n] ^= mask,
        Mutation::Set { at, value } => data[at % n] = *value,
        Mutation::Truncate(at) => data.truncate(at % n),
        Mutation::Extend(bytes) => data.extend_from_slice(bytes),
        Mutation::Insert { at, bytes } => {
            let at = at % n;
            data.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            data.drain(at..end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Random octets from a server with a request in flight: never an answer, never a panic.
    #[test]
    fn random_datagrams_are_dropped(seed in any::<u64>(), data in prop::collection::vec(any::<u8>(), 0..4200)) {
        let (mut client, req) = in_flight(seed);
        let mut data = data;
        // Often give them the right code, identifier and a consistent length, to go deeper.
        if data.len() >= 20 && seed % 2 == 0 {
            data[0] = [2u8, 3, 11][(seed % 3) as usize];
            data[1] = req.identifier;
            let len = data.len().min(4096) as u16;
            data[2..4].copy_from_slice(&len.to_be_bytes());
        }
        prop_assert_eq!(client.handle_datagram(Instant::now(), server(0).auth, &data), None);
        prop_assert_eq!(client.in_flight(), 1);
        prop_assert_eq!(client.stats().dropped, 1);
        prop_assert!(client.last_drop().is_some());
    }

    /// Mutations of valid answers: dropped, unless the packet up to its Length is untouched
    /// (octets past Length are padding, RFC 2865 §3).
    #[test]
    fn mutated_answers_are_dropped(
        seed in any::<u64>(),
        which in 0usize..3,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (mut client, req) = in_flight(seed);
        let original = answers(&req).swap_remove(which);
        let mut data = original.clone();
        for m in &mutations {
            apply(&mut data, m);
        }
        let result = client.handle_datagram(Instant::now(), server(0).auth, &data);
        let untouched = data.len() >= original.len() && data[..original.len()] == original[..];
        if untouched {
            prop_assert!(result.is_some());
        } else {
            prop_assert!(result.is_none(), "a mutated answer was taken: {:?}", result);
            prop_assert_eq!(client.in_flight(), 1);
        }
    }

    /// The codec on random octets: never a panic; what decodes encodes back to the same octets.
    #[test]
    fn codec_never_panics(data in prop::collection::vec(any::<u8>(), 0..4200)) {
        if let Ok(raw) = RawPacket::parse(&data) {
            let _ = verify_response(&raw, &[0; 16], b"secret");
            let p = Packet::decode(&data).unwrap();
            for a in &p.attributes {
                let _ = a.vendor_sub_attributes();
            }
            // Encoding gives back the octets up to Length, but for the canonical forms of
            // Framed-IPv6-Prefix.
            if !p.attributes.iter().any(|a| matches!(a, Attribute::FramedIpv6Prefix { .. })) {
                prop_assert_eq!(p.encode().unwrap(), raw.bytes().to_vec());
            }
        }
    }

    /// Attributes of any type and value: decode never panics and typed values encode back.
    #[test]
    fn attributes_never_panic(kind in any::<u8>(), value in prop::collection::vec(any::<u8>(), 0..253)) {
        let a = Attribute::decode(kind, &value);
        prop_assert_eq!(a.kind(), kind);
        let mut out = Vec::new();
        a.encode(&mut out).unwrap();
        let back = Attribute::decode(out[0], &out[2..]);
        prop_assert_eq!(back, a);
        let _ = mppe::decrypt_key(&value, b"secret", &[7; 16]);
    }

    /// Random sequences of requests, timeouts and datagrams: never a panic; a timer exactly when a
    /// request is in flight; every request ends once.
    #[test]
    fn random_event_sequences(seed in any::<u64>(), events in prop::collection::vec((0u8..6, any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)), 1..60)) {
        let random = TestRandom::new(seed);
        let mut client = RadiusClient::new(config(3, 2));
        let t0 = Instant::now();
        let mut now = t0;
        let mut open = std::collections::BTreeSet::new();
        let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for (kind, n, bytes) in events {
            match kind {
                0 => {
                    let mut s = session();
                    if n % 3 == 0 {
                        s.challenged(oxswan_radius::ServerId::new((n % 4) as usize), Some(bytes.clone()));
                    }
                    if let Ok(id) = client.eap_request(now, &s, &identity(), &random) {
                        prop_assert!(open.insert(id));
                    }
                }
                1 => {
                    let record = oxswan_radius::AccountingRecord::new(oxswan_radius::AcctStatus::Start, "s".into(), bytes.clone());
                    if let Ok(id) = client.accounting(now, &record, &random) {
                        prop_assert!(open.insert(id));
                    }
                }
                2 => {
                    now += Duration::from_millis(n % 5000);
                    for (id, answer) in client.handle_timeout(now) {
                        prop_assert_eq!(answer, Answer::Timeout);
                        prop_assert!(open.remove(&id));
                    }
                }
                3 => {
                    // A genuine answer to something sent, or a corrupted one.
                    if !sent.is_empty() {
                        let (to, bytes_sent) = sent[(n as usize) % sent.len()].clone();
                        let i = (to.ip().to_string().rsplit('.').next().unwrap().parse::<usize>().unwrap()) - 10;
                        let req = Packet::decode(&bytes_sent).unwrap();
                        let code = if req.code == Code::ACCOUNTING_REQUEST { Code::ACCOUNTING_RESPONSE } else { Code::ACCESS_REJECT };
                        let mut answer = respond(&secret(i), &req, code, vec![]);
                        let corrupt = n % 2 == 1 && !bytes.is_empty();
                        if corrupt {
                            let at = bytes[0] as usize % answer.len();
                            answer[at] ^= 1 | bytes.get(1).copied().unwrap_or(0);
                        }
                        let result = client.handle_datagram(now, to, &answer);
                        if corrupt {
                            prop_assert!(result.is_none());
                        }
                        if let Some((id, _)) = result {
                            prop_assert!(open.remove(&id));
                        }
                    }
                }
                4 => {
                    if let Some(&id) = open.iter().nth((n as usize) % open.len().max(1)) {
                        client.cancel(id);
                        open.remove(&id);
                    }
                }
                _ => {
                    let from = server((n % 3) as usize).auth;
                    prop_assert!(client.handle_datagram(now, from, &bytes).is_none());
                }
            }
            while let Some(t) = client.poll_transmit() {
                sent.push(t);
            }
            prop_assert_eq!(client.in_flight(), open.len());
            prop_assert_eq!(client.poll_timeout().is_some(), !open.is_empty());
            if let Some(t) = client.poll_timeout() {
                prop_assert!(t > now);
            }
        }
    }
}
