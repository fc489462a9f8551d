#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! `--ping` against a gateway made of oxswan's engine and oxswan-esp on a loopback UDP socket on
//! port 4500, in this process: the clients' echo requests arrive as ESP in UDP (RFC 3948) on the
//! CHILD SA of each, from its own address; the replies are counted only when they open and are the
//! answer to a request sent; forged, foreign and repeated ones are refused with their reason; no
//! reply fails the client.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_esp::{HEADROOM, InboundSa, OutboundSa, SaParams};
use oxswan_ike::{ChildSa, Endpoint, EndpointConfig, Event};
use oxswan_load::{Auth, GatewayAuth, Plan, parse_sources};

const PSK: &[u8] = b"ping test key";
/// A loopback address of its own, so that the gateway can have port 4500 on it.
const GW: &str = "127.77.0.1:4500";
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// The echo reply, once.
    Right,
    /// Before the reply: a copy with a broken ICV, a reply with another identifier, and after it
    /// the same reply again.
    WithForgeries,
    /// Nothing.
    Silent,
}

/// What the gateway saw of the pings: the inner source addresses and how many requests.
struct Seen {
    sources: BTreeSet<Ipv4Addr>,
    requests: u64,
}

struct Gateway {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Seen>,
}

/// The Internet checksum (RFC 1071), written again here so the test does not trust the tool's.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The echo reply a host sends to `request` (RFC 792), with identifier `id` instead of the
/// request's when given.
fn reply(request: &[u8], id: Option<u16>) -> Vec<u8> {
    let mut r = request.to_vec();
    let (src, dst) = (r[12..16].to_vec(), r[16..20].to_vec());
    r[12..16].copy_from_slice(&dst);
    r[16..20].copy_from_slice(&src);
    r[10..12].fill(0);
    let c = checksum(&r[..20]);
    r[10..12].copy_from_slice(&c.to_be_bytes());
    r[20] = 0;
    if let Some(id) = id {
        r[24..26].copy_from_slice(&id.to_be_bytes());
    }
    r[22..24].fill(0);
    let c = checksum(&r[20..]);
    r[22..24].copy_from_slice(&c.to_be_bytes());
    r
}

fn params(c: &ChildSa, out: bool) -> SaParams {
    let (spi, encr, integ) =
        if out { (c.spi_out, &c.encr_out, &c.integ_out) } else { (c.spi_in, &c.encr_in, &c.integ_in) };
    SaParams { spi, suite: c.suite, esn: c.esn, encr_key: encr.clone(), integ_key: integ.clone() }
}

fn gateway(answer: Answer) -> Gateway {
    let addr: SocketAddr = GW.parse().unwrap();
    let sock = UdpSocket::bind(addr).expect("port 4500 on 127.77.0.1 (is something else using it?)");
    sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let halt = stop.clone();
    let thread = thread::spawn(move || {
        let provider = oxswan_crypto::default_provider();
        let mut ep = Endpoint::new(
            EndpointConfig::default(),
            provider.clone(),
            vec![common::gateway_peer(PSK, false)],
            Instant::now(),
            0,
        )
        .unwrap();
        let mut sas: HashMap<u32, (InboundSa, OutboundSa)> = HashMap::new();
        let mut seen = Seen { sources: BTreeSet::new(), requests: 0 };
        let mut buf = vec![0u8; 65_535];
        let mut out = vec![0u8; 4096];
        while !halt.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if buf[..4] == [0; 4] {
                    // IKE behind the non-ESP marker (RFC 3948 §2.2).
                    ep.handle_datagram(Instant::now(), addr, from, &buf[4..n]);
                } else if let Some((inb, outb)) = sas.get(&u32::from_be_bytes(buf[..4].try_into().unwrap())) {
                    let opened = inb.open(&mut buf[..n]).unwrap();
                    assert_eq!(opened.next_header, 4);
                    let request = buf[opened.inner].to_vec();
                    assert_eq!((request[9], request[20]), (1, 8), "an ICMP echo request");
                    assert_eq!(&request[16..20], &TARGET.octets());
                    seen.sources.insert(Ipv4Addr::new(request[12], request[13], request[14], request[15]));
                    seen.requests += 1;
                    let id = u16::from_be_bytes([request[24], request[25]]);
                    let mut send = |inner: &[u8], spoil: bool| {
                        out[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
                        let r = outb.seal(&mut out, HEADROOM..HEADROOM + inner.len(), 4).unwrap();
                        let esp = &mut out[r];
                        if spoil {
                            *esp.last_mut().unwrap() ^= 1;
                        }
                        sock.send_to(esp, from).unwrap();
                    };
                    match answer {
                        Answer::Right => send(&reply(&request, None), false),
                        Answer::WithForgeries => {
                            send(&reply(&request, None), true);
                            send(&reply(&request, Some(id.wrapping_add(1))), false);
                            send(&reply(&request, None), false);
                            send(&reply(&request, None), false);
                        }
                        Answer::Silent => {}
                    }
                }
            }
            let now = Instant::now();
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
            while let Some(e) = ep.poll_event() {
                if let Event::ChildSaReady { child, .. } = e {
                    assert!(child.encap, "the client forced UDP encapsulation");
                    let inb = InboundSa::new(&provider, &params(&child, false), 64).unwrap();
                    let outb = OutboundSa::new(&provider, &params(&child, true)).unwrap();
                    sas.insert(child.spi_in, (inb, outb));
                }
            }
            while let Some(t) = ep.poll_transmit() {
                let mut d = if t.is_keepalive() { Vec::new() } else { vec![0; 4] };
                d.extend_from_slice(&t.payload);
                sock.send_to(&d, t.remote).unwrap();
            }
        }
        seen
    });
    Gateway { stop, thread }
}

impl Gateway {
    fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn plan(sources: &str) -> Plan {
    let mut p = Plan::new(
        vec![GW.parse().unwrap()],
        parse_sources(sources).unwrap(),
        Auth::Psk(Secret::from_slice(PSK)),
        GatewayAuth::Psk(Secret::from_slice(PSK)),
    );
    // This gateway lends no addresses: the clients ping from their own.
    p.virtual_ip = false;
    p.identity = "c{n}@load.test".into();
    p.ping = Some(TARGET);
    p.ping_wait = Duration::from_millis(500);
    p
}

fn run(p: &Plan) -> oxswan_load::Report {
    let stop = Arc::new(AtomicBool::new(false));
    oxswan_load::run(p, &stop, Duration::from_millis(100), |_, _| {}).unwrap()
}

/// One gateway on the port at a time: the tests take turns.
static PORT: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_client_pings_through_its_child_sa_from_its_own_address() {
    let _turn = PORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let gw = gateway(Answer::Right);
    let mut p = plan("127.0.0.1-127.0.0.4");
    p.clients = 12;
    p.in_flight = 6;
    p.threads = 2;
    let r = run(&p);
    let seen = gw.stop();
    assert_eq!((r.established, r.pinged), (12, Some(12)), "{r}");
    assert_eq!((r.ping_requests, r.ping_replies), (36, 36), "{r}");
    assert!(r.ping_failures.is_empty() && r.ping_rejected.is_empty(), "{r}");
    assert_eq!(seen.requests, 36, "every request reached the gateway in ESP");
    let want: BTreeSet<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    assert_eq!(seen.sources, want, "from each client's own address");
    assert_eq!((r.deleted, r.refused_sends), (12, 0), "{r}");
    assert!(0.0 < r.ping_rtt_ms.p50 && r.ping_rtt_ms.p50 <= r.ping_rtt_ms.max, "{r}");
    assert!(r.to_string().contains("pinged                   12 of 12 (10.2.0.1)"), "{r}");
}

#[test]
fn forged_foreign_and_repeated_replies_are_refused_and_only_the_reply_counts() {
    let _turn = PORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let gw = gateway(Answer::WithForgeries);
    let mut p = plan("127.0.0.1");
    p.clients = 4;
    p.in_flight = 4;
    p.pings = 2;
    let r = run(&p);
    gw.stop();
    assert_eq!((r.established, r.pinged), (4, Some(4)), "{r}");
    assert_eq!((r.ping_requests, r.ping_replies), (8, 8), "{r}");
    let rejected: Vec<(&str, u64)> = r.ping_rejected.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        rejected,
        vec![
            ("ESP: integrity check failed", 8),
            ("a second reply to one request", 8),
            ("not the echo reply: NotOurs", 8),
        ],
        "{r}"
    );
}

#[test]
fn a_client_without_a_reply_is_not_pinged() {
    let _turn = PORT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let gw = gateway(Answer::Silent);
    let mut p = plan("127.0.0.1");
    p.clients = 3;
    p.in_flight = 3;
    p.pings = 2;
    let started = Instant::now();
    let r = run(&p);
    let seen = gw.stop();
    assert_eq!((r.established, r.pinged, r.ping_requests, r.ping_replies), (3, Some(0), 6, 0), "{r}");
    assert_eq!(seen.requests, 6);
    assert_eq!(r.ping_failures.get("no echo reply within 500ms"), Some(&3), "{r}");
    // The deletes waited for the pings: two requests 200 ms apart, then 500 ms for replies.
    assert!(started.elapsed() >= Duration::from_millis(700), "{:?}", started.elapsed());
    assert_eq!(r.deleted, 3, "{r}");
}
