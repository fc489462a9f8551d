#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Complete IKE_SA_INIT + IKE_AUTH handshakes (with the first CHILD SA) in process, one core: two
//! endpoints hand their datagrams to each other directly. Printed next to the cost of the
//! cryptography alone that a handshake cannot avoid (the key exchange of both sides, and for
//! certificates the two signatures and the verifications of AUTH and chain), so the ratio shows what
//! the engine adds.
//!
//! A session resumption (RFC 5723: IKE_SESSION_RESUME with a ticket, IKE_AUTH with the resumed
//! keys) is printed next to the full PSK handshake it replaces.
//!
//! Run with `cargo bench -p oxswan-ike --bench handshake`; about twelve seconds.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_crypto::auth::{sign_auth, verify_auth};
use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::{Endpoint, EndpointConfig, Event, LocalAuth, PeerConfig, RemoteAuth, Retransmit};
use oxswan_wire::{AuthMethod, Identity, KeId};

#[path = "../tests/common/pki.rs"]
mod pki;

const TARGET: Duration = Duration::from_secs(2);

fn rate(mut op: impl FnMut()) -> f64 {
    op();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < TARGET {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn peer(name: &str, local: &str, remote: &str, local_auth: LocalAuth, remote_auth: RemoteAuth) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        ike_proposals: parse_ike_proposals("aes256gcm16-prfsha256-x25519").unwrap(),
        prefer_initiator: false,
        local_id: Identity::Fqdn(local.into()),
        remote_id: Some(Identity::Fqdn(remote.into())),
        local_auth,
        remote_auth,
        rsa_pss: false,
        children: vec![ChildConfig {
            per_cpu_sas: false,
            name: "net".into(),
            esp_proposals: parse_esp_proposals("aes256gcm16").unwrap(),
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
    }
}

const A: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 500);
const B: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)), 500);

/// Hands every datagram either endpoint sends to the other until both are quiet; counts the CHILD
/// SAs reported ready.
fn pump(eps: &mut [Endpoint; 2], now: Instant) -> usize {
    let mut children = 0;
    loop {
        let mut moved = false;
        for from in 0..2 {
            while let Some(t) = eps[from].poll_transmit() {
                moved = true;
                eps[1 - from].handle_datagram(now, t.remote, t.local, &t.payload);
            }
            while let Some(e) = eps[from].poll_event() {
                children += usize::from(matches!(e, Event::ChildSaReady { .. }));
            }
        }
        if !moved {
            return children;
        }
    }
}

/// One handshake between fresh SAs of two long-lived endpoints, then a DELETE so that the SAs go
/// away again (the DELETE exchange is part of the measured cost).
fn handshake(eps: &mut [Endpoint; 2], now: Instant) {
    let sa = eps[0].initiate(now, "a", A, B).unwrap();
    assert_eq!(pump(eps, now), 2, "both sides have the child");
    eps[0].delete_ike(now, sa).unwrap();
    black_box(pump(eps, now));
}

fn endpoints(a: PeerConfig, b: PeerConfig) -> [Endpoint; 2] {
    let now = Instant::now();
    let unlimited = EndpointConfig {
        cookie_threshold: usize::MAX,
        cookie_threshold_per_peer: usize::MAX,
        block_threshold_per_peer: usize::MAX,
        half_open_limit: usize::MAX,
        ..EndpointConfig::default()
    };
    let p = oxswan_crypto::default_provider;
    [
        Endpoint::new(unlimited.clone(), p(), vec![a], now, 1_795_478_400).unwrap(),
        Endpoint::new(unlimited, p(), vec![b], now, 1_795_478_400).unwrap(),
    ]
}

fn measure_pair(mut eps: [Endpoint; 2]) -> f64 {
    // Virtual time: each handshake 1 ms after the previous one, so that deleted SAs, which linger
    // 10 s to answer retransmissions, are swept out and memory stays flat.
    let mut now = Instant::now();
    let r = rate(|| {
        now += Duration::from_millis(1);
        handshake(&mut eps, now);
        for ep in eps.iter_mut() {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
    });
    let held = eps[0].sa_count() + eps[1].sa_count();
    assert!(held < 30_000, "{held} SAs held: deleted SAs are not swept");
    r
}

/// [`measure_pair`] with every handshake but the first resumed with the ticket the one before left
/// (RFC 5723: IKE_SESSION_RESUME in place of IKE_SA_INIT, no key exchange, no signature).
fn measure_resumed(mut eps: [Endpoint; 2]) -> f64 {
    let mut now = Instant::now();
    handshake(&mut eps, now);
    rate(|| {
        now += Duration::from_millis(1);
        assert!(eps[0].has_ticket(now, "a"), "each handshake leaves a ticket for the next");
        handshake(&mut eps, now);
        for ep in eps.iter_mut() {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
    })
}

fn main() {
    let provider = oxswan_crypto::default_provider();
    let psk = || Secret::from_slice(b"benchmark pre-shared key");
    let psk_rate = measure_pair(endpoints(
        peer("a", "a.test", "b.test", LocalAuth::Psk(psk()), RemoteAuth::Psk(psk())),
        peer("b", "b.test", "a.test", LocalAuth::Psk(psk()), RemoteAuth::Psk(psk())),
    ));
    let resuming = |p: PeerConfig| PeerConfig { resumption: true, ..p };
    let resumed_rate = measure_resumed(endpoints(
        resuming(peer("a", "a.test", "b.test", LocalAuth::Psk(psk()), RemoteAuth::Psk(psk()))),
        resuming(peer("b", "b.test", "a.test", LocalAuth::Psk(psk()), RemoteAuth::Psk(psk()))),
    ));
    // The unavoidable crypto of a PSK handshake: X25519 on both sides.
    let x25519 = || {
        let i = provider.ke.start(KeId::CURVE25519).unwrap();
        let (r, _) = provider.ke.respond(KeId::CURVE25519, i.public_value()).unwrap();
        black_box(i.complete(&r).unwrap());
    };
    let ke_rate = rate(x25519);

    // ECDSA P-256 certificates through one intermediate, sent and validated on both sides.
    let ca = pki::Ca::new("Bench", pki::Alg::P256);
    let (a_cert, b_cert) = (ca.local(pki::Alg::P256, "a", &["a.test"]), ca.local(pki::Alg::P256, "b", &["b.test"]));
    let cert_rate = measure_pair(endpoints(
        peer("a", "a.test", "b.test", LocalAuth::Cert(a_cert.clone()), RemoteAuth::Cert(ca.trust())),
        peer("b", "b.test", "a.test", LocalAuth::Cert(b_cert.clone()), RemoteAuth::Cert(ca.trust())),
    ));
    let cert_resumed_rate = measure_resumed(endpoints(
        resuming(peer("a", "a.test", "b.test", LocalAuth::Cert(a_cert.clone()), RemoteAuth::Cert(ca.trust()))),
        resuming(peer("b", "b.test", "a.test", LocalAuth::Cert(b_cert.clone()), RemoteAuth::Cert(ca.trust()))),
    ));
    // Its unavoidable crypto: X25519 on both sides, two AUTH signatures, and on each side the chain
    // validation and the AUTH verification.
    let trust = ca.trust();
    let octets = vec![0x5a; 600];
    let cert_crypto_rate = rate(|| {
        x25519();
        for signer in [&a_cert, &b_cert] {
            let auth = sign_auth(signer.key.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, &octets).unwrap();
            let peer = trust.verify(&signer.chain[0], &signer.chain[1..], 1_795_478_400).unwrap();
            verify_auth(provider.signature.as_ref(), &peer.spki, &auth, &octets).unwrap();
        }
    });

    println!("handshakes per second, one core (IKE_SA_INIT + IKE_AUTH + first CHILD SA + DELETE, both sides):");
    println!(
        "  PSK, aes256gcm16-prfsha256-x25519:        {psk_rate:>7.0}/s   its key exchanges alone: {ke_rate:>7.0}/s   ratio {:.2}",
        psk_rate / ke_rate
    );
    println!(
        "  PSK, resumed with a ticket (RFC 5723):    {resumed_rate:>7.0}/s   the full PSK handshake above: {psk_rate:>7.0}/s   ratio {:.2}",
        resumed_rate / psk_rate
    );
    println!(
        "  ECDSA P-256 certificates, same proposal:  {cert_rate:>7.0}/s   its crypto and chain checks alone: {cert_crypto_rate:>7.0}/s   ratio {:.2}",
        cert_rate / cert_crypto_rate
    );
    println!(
        "  certificates, resumed with a ticket:      {cert_resumed_rate:>7.0}/s   the full certificate handshake above: {cert_rate:>7.0}/s   ratio {:.2}",
        cert_resumed_rate / cert_rate
    );
}
