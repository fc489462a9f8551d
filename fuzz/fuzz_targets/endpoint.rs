//! Drives `Endpoint::handle_datagram` of two endpoints that completed a handshake with the
//! NO-SECURITY test provider (null cipher), so forged SK payloads get past the integrity check and
//! reach the exchange logic: IKE_AUTH, INFORMATIONAL, DELETE, retransmission caches.
//!
//! Input: records of `[target: u8][len: u16 BE][bytes]`. Bit 0 of `target` picks the endpoint, bit 1
//! the port (500/4500), bits 2.. advance the clock by that many seconds first. After every record the
//! endpoints' output is delivered to each other, as a network would.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use oxswan_crypto::Secret;
use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_crypto::test_provider::TestProvider;
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::{Endpoint, EndpointConfig, LocalAuth, PeerConfig, RemoteAuth, Retransmit};
use oxswan_wire::Identity;

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

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], port))
}

/// Delivers everything either endpoint wants to send to the other, until quiet.
fn exchange(eps: &mut [Endpoint; 2], now: Instant) {
    for _ in 0..16 {
        let mut moved = false;
        for from in 0..2 {
            while let Some(t) = eps[from].poll_transmit() {
                moved = true;
                eps[1 - from].handle_datagram(now, t.remote, t.local, &t.payload);
            }
            while eps[from].poll_event().is_some() {}
        }
        if !moved {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (Some(a), Some(b)) = (peer("a", "a.test", "b.test"), peer("b", "b.test", "a.test")) else { return };
    let mut now = Instant::now();
    let provider = |seed| TestProvider::new(seed).null_cipher().build();
    let (Ok(ea), Ok(eb)) = (
        Endpoint::new(EndpointConfig::default(), provider(1), vec![a], now, 1_795_478_400),
        Endpoint::new(EndpointConfig::default(), provider(2), vec![b], now, 1_795_478_400),
    ) else {
        return;
    };
    let mut eps = [ea, eb];
    if eps[0].initiate(now, "a", addr(1, 500), addr(2, 500)).is_err() {
        return;
    }
    exchange(&mut eps, now);
    let mut rest = data;
    while let [target, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_secs(u64::from(target >> 2));
        let to = usize::from(target & 1);
        let port = if target & 2 == 0 { 500 } else { 4500 };
        for ep in eps.iter_mut() {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        eps[to].handle_datagram(now, addr(1 + to as u8, port), addr(2 - to as u8, port), datagram);
        exchange(&mut eps, now);
    }
});
