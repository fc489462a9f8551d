//! The two endpoints of the `endpoint` fuzz target, shared with the seed generator
//! (`examples/seeds.rs`), whose recorded requests only mean something to endpoints made exactly so:
//! the deterministic test provider with the null cipher, so forged SK payloads get past the
//! integrity check, and one PSK connection each way.

use std::net::SocketAddr;
use std::time::Instant;

use oxswan_crypto::Secret;
use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_crypto::test_provider::TestProvider;
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::{Endpoint, EndpointConfig, LocalAuth, PeerConfig, RemoteAuth, Retransmit};
use oxswan_wire::Identity;

/// The Unix time both endpoints start at.
const UNIX_AT_START: u64 = 1_795_478_400;

fn peer(name: &str, local: &str, remote: &str) -> Option<PeerConfig> {
    Some(PeerConfig {
        name: name.into(),
        ike_proposals: parse_ike_proposals("aes256gcm16-prfsha256-x25519").ok()?,
        prefer_initiator: false,
        local_id: Identity::Fqdn(local.into()),
        remote_id: Some(Identity::Fqdn(remote.into())),
        local_auth: LocalAuth::Psk(Secret::from_slice(b"fuzz")),
        remote_auth: RemoteAuth::Psk(Secret::from_slice(b"fuzz")),
        rsa_pss: false,
        children: vec![ChildConfig {
            per_cpu_sas: false,
            name: "c".into(),
            esp_proposals: parse_esp_proposals("aes256gcm16").ok()?,
            local_ts: vec![TsConfig::Dynamic],
            remote_ts: vec![TsConfig::Dynamic],
            mode: Mode::Tunnel,
            lifetime: Default::default(),
            volume: Default::default(),
        }],
        retransmit: Retransmit::default(),
        ike_lifetime: Default::default(),
        initial_contact: true,
        force_encap: false,
        dpd_delay: None,
        pools: Vec::new(),
        vips: Vec::new(),
        unique: Default::default(),
        fragmentation: true,
        tcp: oxswan_ike::TcpConfig::NO,
        mobike: true,
        childless: Default::default(),
        ppk_id: None,
        ppk_required: false,
        redirect: None,
        resumption: false,
        remote_addrs: Vec::new(),
    })
}

/// Endpoint `last` (1 or 2) on `port`.
pub fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], port))
}

/// Delivers everything either endpoint wants to send to the other, until quiet; `sent` sees each
/// datagram with its sender's index.
pub fn exchange(eps: &mut [Endpoint; 2], now: Instant, mut sent: impl FnMut(usize, &[u8])) {
    for _ in 0..16 {
        let mut moved = false;
        for from in 0..2 {
            while let Some(t) = eps[from].poll_transmit() {
                moved = true;
                sent(from, &t.payload);
                eps[1 - from].handle_datagram(now, t.remote, t.local, &t.payload);
            }
            while eps[from].poll_event().is_some() {}
        }
        if !moved {
            break;
        }
    }
}

/// The two endpoints after their handshake (`a` initiated), with `sent` seeing its datagrams.
pub fn endpoints(now: Instant, sent: impl FnMut(usize, &[u8])) -> Option<[Endpoint; 2]> {
    let provider = |seed| TestProvider::new(seed).null_cipher().build();
    let a =
        Endpoint::new(EndpointConfig::default(), provider(1), vec![peer("a", "a.test", "b.test")?], now, UNIX_AT_START);
    let b =
        Endpoint::new(EndpointConfig::default(), provider(2), vec![peer("b", "b.test", "a.test")?], now, UNIX_AT_START);
    let mut eps = [a.ok()?, b.ok()?];
    eps[0].initiate(now, "a", addr(1, 500), addr(2, 500)).ok()?;
    exchange(&mut eps, now, sent);
    Some(eps)
}

/// Takes the next record of the target's input, `[target: u8][len: u16 BE][bytes]` (a length past
/// the end takes what is there).
pub fn next_record<'a>(rest: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let [target, hi, lo, tail @ ..] = *rest else { return None };
    let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
    let (datagram, next) = tail.split_at(len);
    *rest = next;
    Some((*target, datagram))
}
