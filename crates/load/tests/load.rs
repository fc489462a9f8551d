#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! The load tester against a gateway made of oxswan's engine on a loopback UDP socket, in this
//! process: every client comes up from its own identity and the sources named, failures are
//! reported by reason, and the clients are deleted at the end.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_ike::{Endpoint, EndpointConfig, Event};
use oxswan_load::{Auth, GatewayAuth, Plan, parse_sources};

/// What the gateway saw: the identities and source addresses of the IKE SAs that came up, and how
/// many it holds when stopped.
struct Seen {
    identities: BTreeSet<String>,
    sources: BTreeSet<IpAddr>,
    up_at_stop: usize,
}

struct Gateway {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Seen>,
}

fn gateway(psk: &[u8]) -> Gateway {
    let peer = common::gateway_peer(psk, true);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let halt = stop.clone();
    let thread = thread::spawn(move || {
        let mut ep =
            Endpoint::new(EndpointConfig::default(), oxswan_crypto::default_provider(), vec![peer], Instant::now(), 0)
                .unwrap();
        let mut seen = Seen { identities: BTreeSet::new(), sources: BTreeSet::new(), up_at_stop: 0 };
        let mut buf = vec![0u8; 65_535];
        while !halt.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                ep.handle_datagram(Instant::now(), addr, from, &buf[..n]);
            }
            let now = Instant::now();
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
            while let Some(e) = ep.poll_event() {
                if let Event::IkeSaUp { info, .. } = e {
                    seen.identities.insert(format!("{:?}", info.remote_id));
                    seen.sources.insert(info.remote.ip());
                }
            }
            while let Some(t) = ep.poll_transmit() {
                sock.send_to(&t.payload, t.remote).unwrap();
            }
        }
        seen.up_at_stop = ep.established().len();
        seen
    });
    Gateway { addr, stop, thread }
}

impl Gateway {
    fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn plan(target: SocketAddr, psk: &[u8], sources: &str) -> Plan {
    let mut p = Plan::new(
        vec![target],
        parse_sources(sources).unwrap(),
        Auth::Psk(Secret::from_slice(psk)),
        GatewayAuth::Psk(Secret::from_slice(psk)),
    );
    // This gateway lends no addresses.
    p.virtual_ip = false;
    p.identity = "c{n}@load.test".into();
    p
}

fn run(p: &Plan) -> oxswan_load::Report {
    let stop = Arc::new(AtomicBool::new(false));
    oxswan_load::run(p, &stop, Duration::from_millis(100), |_, _| {}).unwrap()
}

#[test]
fn every_client_comes_up_from_its_own_identity_and_the_sources_then_is_deleted() {
    let gw = gateway(b"load test key");
    let mut p = plan(gw.addr, b"load test key", "127.0.0.1-127.0.0.4");
    p.clients = 40;
    p.in_flight = 8;
    p.threads = 2;
    p.hold = Duration::from_millis(300);
    let r = run(&p);
    let seen = gw.stop();
    assert_eq!((r.established, r.failed), (40, 0), "{r}");
    assert_eq!(r.deleted, 40, "{r}");
    assert_eq!((r.refused_sends, r.lost, r.cut_off), (0, 0, 0), "{r}");
    assert_eq!(seen.identities.len(), 40, "one identity per client: {:?}", seen.identities);
    assert!(seen.identities.contains("Email(\"c39@load.test\")"), "{:?}", seen.identities);
    let want: BTreeSet<IpAddr> = parse_sources("127.0.0.1-127.0.0.4").unwrap().into_iter().collect();
    assert_eq!(seen.sources, want);
    assert_eq!(seen.up_at_stop, 0, "the deletes reached the gateway");
    let pct = r.setup_ms;
    assert!(0.0 < pct.p50 && pct.p50 <= pct.p90 && pct.p90 <= pct.p99 && pct.p99 <= pct.max, "{pct:?}");
    assert!(r.rate > 0.0 && r.tenths.is_some());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["established"], 40);
    assert_eq!(json["setup_ms"]["p50"].as_f64(), Some(pct.p50));
}

#[test]
fn without_delete_the_gateway_keeps_every_client() {
    let gw = gateway(b"k");
    let mut p = plan(gw.addr, b"k", "127.0.0.1");
    p.clients = 10;
    p.in_flight = 3;
    p.delete = false;
    let r = run(&p);
    let seen = gw.stop();
    assert_eq!((r.established, r.deleted), (10, 0), "{r}");
    assert_eq!(seen.up_at_stop, 10);
}

#[test]
fn a_wrong_key_fails_every_client_with_the_gateways_reason() {
    let gw = gateway(b"the gateway's key");
    let mut p = plan(gw.addr, b"another key", "127.0.0.1");
    p.clients = 5;
    p.in_flight = 5;
    let r = run(&p);
    gw.stop();
    assert_eq!((r.established, r.failed), (0, 5), "{r}");
    let (why, n) = r.failures.iter().next().unwrap();
    assert_eq!(*n, 5);
    assert!(why.contains("AUTHENTICATION_FAILED"), "{why}");
}

#[test]
fn a_silent_target_times_out_and_the_run_ends_by_itself() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut p = plan(silent.local_addr().unwrap(), b"k", "127.0.0.1");
    p.clients = 3;
    p.in_flight = 2;
    p.timeout = Duration::from_millis(600);
    let started = Instant::now();
    let r = run(&p);
    assert_eq!((r.established, r.failed), (0, 3), "{r}");
    assert_eq!(r.failures.get("no complete handshake within 600ms"), Some(&3), "{r}");
    // Two rounds of 600 ms: the third client starts when one of the first two gives up.
    assert!(started.elapsed() >= Duration::from_millis(1200), "{:?}", started.elapsed());
    let mut buf = [0u8; 2048];
    silent.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let (n, _) = silent.recv_from(&mut buf).unwrap();
    assert!(n > 28, "the silent target did receive IKE_SA_INIT requests");
}

#[test]
fn a_stop_ends_the_run_early_and_deletes_what_is_up() {
    let gw = gateway(b"k");
    let mut p = plan(gw.addr, b"k", "127.0.0.1");
    p.clients = 100_000;
    p.in_flight = 4;
    p.rate = Some(50.0);
    let stop = Arc::new(AtomicBool::new(false));
    let halt = stop.clone();
    let r = oxswan_load::run(&p, &stop, Duration::from_millis(50), move |progress, elapsed| {
        if elapsed >= Duration::from_millis(500) || progress.established.load(Ordering::Relaxed) >= 10 {
            halt.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    let seen = gw.stop();
    assert!(r.established >= 1 && r.established < 1000, "{r}");
    assert_eq!(r.deleted, r.established, "{r}");
    assert_eq!(seen.up_at_stop, 0);
    // Starts at least 20 ms apart (50/s): n handshakes span at least (n - 1) × 20 ms.
    assert!(r.setup_seconds >= (r.established - 1) as f64 * 0.020, "{r}");
}
