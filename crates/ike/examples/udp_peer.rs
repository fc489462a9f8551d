#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! A minimal IKE peer over real UDP sockets, for trying the engine against strongSwan by hand before
//! the daemon exists (issue 4). No ESP: it negotiates, prints the events and answers the peer.
//!
//! ```text
//! udp_peer LOCAL_IP REMOTE_IP LOCAL_ID REMOTE_ID PSK|cert:DIR LOCAL_TS REMOTE_TS [initiate] [seconds]
//! ```
//!
//! With `cert:DIR`, DIR holds local.pem (our chain), local.der (our PKCS#8 key) and ca.pem.
//!
//! It binds LOCAL_IP:500 and LOCAL_IP:4500 (with the non-ESP marker there, RFC 3948 §2.2), runs for
//! `seconds` (default 20), deletes what it established and exits.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_ike::cert::{LocalCert, TrustStore, parse_certificates};
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::{Endpoint, EndpointConfig, LocalAuth, PeerConfig, RemoteAuth, Retransmit};
use oxswan_wire::Identity;
use oxswan_wire::ts::TrafficSelector;
use oxswan_wire::udp_encap::{Udp4500, classify, with_non_esp_marker};

fn ts(s: &str) -> TsConfig {
    let (a, len) = s.split_once('/').unwrap();
    TsConfig::Selector(TrafficSelector::from_prefix(a.parse().unwrap(), len.parse().unwrap(), 0, 0, u16::MAX).unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 8 {
        eprintln!("usage: udp_peer LOCAL_IP REMOTE_IP LOCAL_ID REMOTE_ID PSK LOCAL_TS REMOTE_TS [initiate] [seconds]");
        std::process::exit(2);
    }
    let local: IpAddr = args[1].parse().unwrap();
    let remote: IpAddr = args[2].parse().unwrap();
    let initiate = args.get(8).is_some_and(|a| a == "initiate");
    let seconds: u64 = args.last().and_then(|a| a.parse().ok()).unwrap_or(20);
    // PSK, or `cert:DIR` with DIR/local.pem (our chain), DIR/local.der (PKCS#8 key), DIR/ca.pem.
    let psk = || Secret::from_slice(args[5].as_bytes());
    let (local_auth, remote_auth) = match args[5].strip_prefix("cert:") {
        Some(dir) => {
            let read = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap();
            let chain = parse_certificates(&read("local.pem")).unwrap();
            let provider = oxswan_crypto::default_provider();
            let local = LocalCert::new(&provider, chain, &read("local.der")).unwrap();
            let trust = TrustStore::new(&parse_certificates(&read("ca.pem")).unwrap()).unwrap();
            (LocalAuth::Cert(std::sync::Arc::new(local)), RemoteAuth::Cert(trust))
        }
        None => (LocalAuth::Psk(psk()), RemoteAuth::Psk(psk())),
    };
    let peer = PeerConfig {
        name: "peer".into(),
        ike_proposals: parse_ike_proposals("aes256gcm16-prfsha256-x25519,aes128-sha256-modp2048").unwrap(),
        prefer_initiator: false,
        local_id: Identity::Fqdn(args[3].clone()),
        remote_id: Some(Identity::Fqdn(args[4].clone())),
        local_auth,
        remote_auth,
        rsa_pss: false,
        children: vec![ChildConfig {
            per_cpu_sas: false,
            name: "net".into(),
            esp_proposals: parse_esp_proposals("aes256gcm16,aes128-sha256").unwrap(),
            local_ts: vec![ts(&args[6])],
            remote_ts: vec![ts(&args[7])],
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
    };
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let start = Instant::now();
    let mut ep =
        Endpoint::new(EndpointConfig::default(), oxswan_crypto::default_provider(), vec![peer], start, unix).unwrap();
    let socks: Vec<UdpSocket> = [500u16, 4500]
        .iter()
        .map(|p| {
            let s = UdpSocket::bind(SocketAddr::new(local, *p)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            s
        })
        .collect();
    if initiate {
        ep.initiate(Instant::now(), "peer", SocketAddr::new(local, 500), SocketAddr::new(remote, 500)).unwrap();
    }
    let mut deleted = false;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        if now - start > Duration::from_secs(seconds) && !deleted {
            deleted = true;
            for sa in ep.established() {
                println!("deleting {sa:?}");
                ep.delete_ike(now, sa).unwrap();
            }
        }
        if now - start > Duration::from_secs(seconds + 3) {
            break;
        }
        while let Some(t) = ep.poll_transmit() {
            let sock = if t.local.port() == 4500 { &socks[1] } else { &socks[0] };
            let data = if t.local.port() == 4500 { with_non_esp_marker(&t.payload) } else { t.payload.clone() };
            sock.send_to(&data, t.remote).unwrap();
        }
        while let Some(e) = ep.poll_event() {
            println!("event: {e:?}");
        }
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        for (i, sock) in socks.iter().enumerate() {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            let data = &buf[..n];
            let local_addr = sock.local_addr().unwrap();
            if i == 1 {
                match classify(data) {
                    Ok(Udp4500::Ike(ike)) => ep.handle_datagram(Instant::now(), local_addr, from, ike),
                    Ok(Udp4500::Esp(_)) => println!("ESP from {from} (no data plane here)"),
                    _ => {}
                }
            } else {
                ep.handle_datagram(Instant::now(), local_addr, from, data);
            }
        }
    }
    while let Some(e) = ep.poll_event() {
        println!("event: {e:?}");
    }
    println!("stats: {:?}", ep.stats());
}
