//! IKE over TCP (RFC 9329) on the simulated network: the initiator falls back to TCP when UDP
//! gets no answer (`tcp = fallback`), starts on TCP (`always`) or never uses it (`no`); an SA set
//! up over TCP stays there, with its CHILD SAs' ESP on the stream and no NAT keepalives; when the
//! stream breaks the initiator opens a new one and the responder follows it, and the responder
//! never opens one itself (§6).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::{DownReason, EndpointConfig, Event, PeerConfig, TcpConfig, TcpMode, Transport};
use oxswan_wire::ExchangeType;

fn with_tcp(mut p: PeerConfig, mode: TcpMode) -> PeerConfig {
    p.tcp = TcpConfig { mode, port: 4500 };
    p
}

/// What went on the wire: (seconds since the start, transport, exchange, response?).
fn sent(sim: &Sim) -> Vec<(f64, Transport, ExchangeType, bool)> {
    sim.log
        .iter()
        .zip(&sim.log_at)
        .zip(&sim.log_transport)
        .filter(|(((_, _, d), _), _)| d.len() > 1)
        .map(|(((_, _, d), at), t)| {
            let (x, r, _) = describe(d);
            (at.as_secs_f64(), *t, x, r)
        })
        .collect()
}

fn transports(sim: &mut Sim) -> (Transport, Transport) {
    (info(sim, ALICE_IP).transport, info(sim, BOB_IP).transport)
}

#[test]
fn fallback_to_tcp_when_udp_gets_no_answer() {
    let mut sim = pair(1, Link::default(), with_tcp(alice_psk(), TcpMode::Fallback), bob_psk());
    sim.block_udp = true;
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(60), both_up), "up over TCP");
    let wire = sent(&sim);
    // IKE_SA_INIT twice over UDP (0 s, 4 s), unanswered; then the same request over TCP at 11.2 s.
    let udp: Vec<_> = wire.iter().filter(|w| w.1 == Transport::Udp).collect();
    assert_eq!(udp.len(), 2, "{wire:?}");
    assert!(udp.iter().all(|w| w.2 == ExchangeType::IKE_SA_INIT && !w.3));
    let first_tcp = wire.iter().find(|w| w.1 == Transport::Tcp).unwrap();
    assert_eq!((first_tcp.2, first_tcp.3), (ExchangeType::IKE_SA_INIT, false));
    assert!((first_tcp.0 - 11.2).abs() < 0.01, "{wire:?}");
    // Everything after goes over TCP, both ways: IKE_SA_INIT and IKE_AUTH, request and response.
    let tcp: Vec<_> = wire.iter().filter(|w| w.1 == Transport::Tcp).map(|w| (w.2, w.3)).collect();
    assert_eq!(
        tcp,
        [
            (ExchangeType::IKE_SA_INIT, false),
            (ExchangeType::IKE_SA_INIT, true),
            (ExchangeType::IKE_AUTH, false),
            (ExchangeType::IKE_AUTH, true)
        ]
    );
    assert_eq!(sim.streams_opened, 1);
    assert_eq!(transports(&mut sim), (Transport::Tcp, Transport::Tcp));
    // The CHILD SA's ESP goes on the stream too (§3.2), to the responder's TCP port from alice.
    let a = child(sim.events(ALICE_IP)).unwrap();
    let b = child(sim.events(BOB_IP)).unwrap();
    assert_eq!((a.transport, b.transport), (Transport::Tcp, Transport::Tcp));
    assert_eq!(a.remote, addr(BOB_IP, 4500));
    assert_eq!(b.remote.ip(), ALICE_IP.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(b.remote.port(), *sim.streams.values().next().unwrap(), "bob sends to alice's end of the stream");
    // Alice did not float to 4500 over TCP and is not behind a NAT; bob's view of alice's source
    // hash (made with alice's UDP port) says NAT, which changes nothing over TCP.
    let ai = info(&mut sim, ALICE_IP);
    assert!(!ai.nat.any(), "{:?}", ai.nat);
}

#[test]
fn fallback_is_not_taken_when_udp_answers() {
    let mut sim = pair(2, Link::default(), with_tcp(alice_psk(), TcpMode::Fallback), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(60), both_up));
    assert!(sent(&sim).iter().all(|w| w.1 == Transport::Udp));
    assert_eq!(transports(&mut sim), (Transport::Udp, Transport::Udp));
    assert_eq!(sim.streams_opened, 0);
}

#[test]
fn always_starts_on_tcp() {
    let mut sim = pair(3, Link::default(), with_tcp(alice_psk(), TcpMode::Always), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up), "up at once, no UDP waited for");
    let wire = sent(&sim);
    assert!(wire.iter().all(|w| w.1 == Transport::Tcp), "{wire:?}");
    assert_eq!(wire.len(), 4, "{wire:?}");
    // The first message went to the TCP port at once.
    assert_eq!(sim.log[0].1, addr(BOB_IP, 4500));
    assert_eq!(sim.log_at[0], Duration::ZERO);
    assert_eq!(transports(&mut sim), (Transport::Tcp, Transport::Tcp));
}

#[test]
fn no_never_uses_tcp() {
    let mut sim = pair(4, Link::default(), with_tcp(alice_psk(), TcpMode::No), bob_psk());
    sim.block_udp = true;
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(300), |s| down(s.events(ALICE_IP)).is_some());
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::Timeout));
    let wire = sent(&sim);
    assert_eq!(wire.len(), 6, "the request and its five retransmissions: {wire:?}");
    assert!(wire.iter().all(|w| w.1 == Transport::Udp));
    assert_eq!(sim.streams_opened, 0);
}

/// A responder that does not listen on TCP: the fallback's retransmissions run out like UDP's.
#[test]
fn fallback_to_a_responder_without_tcp_times_out() {
    let mut sim = pair(5, Link::default(), with_tcp(alice_psk(), TcpMode::Fallback), bob_psk());
    sim.block_udp = true;
    sim.tcp_port = None;
    initiate(&mut sim);
    sim.run_until(Duration::from_secs(600), |s| down(s.events(ALICE_IP)).is_some());
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::Timeout));
    let wire = sent(&sim);
    assert_eq!(wire.iter().filter(|w| w.1 == Transport::Udp).count(), 2);
    assert_eq!(wire.iter().filter(|w| w.1 == Transport::Tcp).count(), 6, "{wire:?}");
}

/// The stream breaks: the initiator, told so as the daemon tells it, opens a new one at once with
/// a liveness check, from a new port, and the responder's IKE SA and its CHILD SA's ESP move there
/// (`PathChanged`). The responder never opens a stream (§6): its own request, lost with the old
/// stream, goes again on the new one as soon as the initiator's message arrived on it, before any
/// retransmission would be due.
#[test]
fn a_broken_stream_is_reopened_by_the_initiator_and_the_responder_follows() {
    let mut sim = pair(6, Link::default(), with_tcp(alice_psk(), TcpMode::Always), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let old_port = *sim.streams.values().next().unwrap();
    let t0 = sim.now;
    // Bob's liveness check is on its way when the stream breaks: lost with it.
    let bob_sa = sim.ep(BOB_IP).established()[0];
    sim.ep(BOB_IP).liveness(t0, bob_sa).unwrap();
    sim.break_streams();
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.streams_opened, 2, "alice opened one stream again, bob none");
    let new_port = *sim.streams.values().next().unwrap();
    assert_ne!(new_port, old_port);
    assert!(has_event(sim.events(ALICE_IP), |e| matches!(e, Event::LivenessConfirmed { .. })));
    let moved = sim.events(BOB_IP).iter().find_map(|e| match e {
        Event::PathChanged { remote, spis_in, .. } => Some((*remote, spis_in.clone())),
        _ => None,
    });
    let (remote, spis) = moved.expect("bob follows the new stream");
    assert_eq!(remote, addr(ALICE_IP, new_port));
    assert_eq!(spis, [child(sim.events(BOB_IP)).unwrap().spi_in]);
    assert_eq!(info(&mut sim, BOB_IP).remote, addr(ALICE_IP, new_port));
    // Bob's check went again on the new stream within that second (its retransmission was due
    // at 4 s).
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e, Event::LivenessConfirmed { .. })), "{:?}", sent(&sim));
    assert!(down(sim.events(ALICE_IP)).is_none() && down(sim.events(BOB_IP)).is_none());
}

/// RFC 9329 §7.2: TCP retransmits, so IKE does not on a live stream. A request the responder never
/// answers goes once; the SA is given up after the same schedule as over UDP.
#[test]
fn no_retransmissions_on_a_live_stream() {
    let mut sim = pair(9, Link::default(), with_tcp(alice_psk(), TcpMode::Always), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let before = sim.log.len();
    let t0 = sim.now;
    // Bob hangs: what reaches him is dropped; the stream stays.
    sim.nodes.remove(&BOB_IP.parse().unwrap());
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).liveness(t0, sa).unwrap();
    sim.run_until(Duration::from_secs(600), |s| down(s.events(ALICE_IP)).is_some());
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::Timeout));
    let took = sim.now - t0;
    let wire: Vec<_> = sent(&sim).into_iter().skip(before).collect();
    assert_eq!(wire.len(), 1, "sent once: {wire:?}");
    assert_eq!((wire[0].1, wire[0].2), (Transport::Tcp, ExchangeType::INFORMATIONAL));
    // strongSwan's schedule (4 s × 1.8^n, five retransmissions, then one more wait): 165.5 s.
    assert!((took.as_secs_f64() - 165.5).abs() < 1.0, "given up after {took:?}");
    assert_eq!(sim.streams_opened, 1);
}

/// An IKE rekey over TCP keeps the stream (§6: a rekey's new IKE SA may share it); so does a
/// reauthentication's new IKE SA start on TCP, even with `fallback`.
#[test]
fn rekey_and_reauthentication_stay_on_tcp() {
    let mut sim = pair(7, Link::default(), with_tcp(alice_psk(), TcpMode::Fallback), bob_psk());
    sim.block_udp = true;
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(60), both_up));
    let sa = sim.ep(ALICE_IP).established()[0];
    let now = sim.now;
    sim.ep(ALICE_IP).rekey_ike(now, sa).unwrap();
    sim.advance(Duration::from_secs(2));
    let rekeyed = sim.events(ALICE_IP).iter().any(|e| matches!(e, Event::IkeSaRekeyed { .. }));
    assert!(rekeyed);
    let new = sim.ep(ALICE_IP).established()[0];
    assert_ne!(new, sa);
    assert_eq!(sim.ep(ALICE_IP).info(new).unwrap().transport, Transport::Tcp);
    assert_eq!(transports(&mut sim), (Transport::Tcp, Transport::Tcp));
    let before = sim.log.len();
    let now = sim.now;
    let reauth = sim.ep(ALICE_IP).reauthenticate(now, new, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    sim.advance(Duration::from_secs(2));
    assert!(sim.log_transport[before..].iter().all(|t| *t == Transport::Tcp), "no UDP tried again");
    assert_eq!(sim.ep(ALICE_IP).info(reauth).unwrap().transport, Transport::Tcp);
    assert_eq!(sim.streams_opened, 1, "one stream for all of them");
}

/// No NAT keepalives over TCP (§6), where UDP behind the same NAT would send them.
#[test]
fn no_keepalives_over_tcp() {
    let keepalive = EndpointConfig { keepalive: Some(Duration::from_secs(20)), ..EndpointConfig::default() };
    for mode in [TcpMode::No, TcpMode::Always] {
        let mut sim = Sim::new(8, Link::default());
        sim.add(ALICE_IP, keepalive.clone(), vec![with_tcp(alice_psk(), mode)]);
        sim.add(BOB_IP, keepalive.clone(), vec![bob_psk()]);
        // Alice claims a NAT in front of her (`encap`), so over UDP she keeps it open.
        let mut a = with_tcp(alice_psk(), mode);
        a.force_encap = true;
        sim.add(ALICE_IP, keepalive.clone(), vec![a]);
        initiate(&mut sim);
        assert!(sim.run_until(Duration::from_secs(5), both_up));
        sim.advance(Duration::from_secs(65));
        let keepalives = sim.log.iter().filter(|(_, _, d)| d.as_slice() == [0xff]).count();
        match mode {
            TcpMode::No => assert!(keepalives >= 3, "{keepalives}"),
            _ => assert_eq!(keepalives, 0),
        }
    }
}

/// MOBIKE over TCP (RFC 4555 with RFC 9329): Alice's address changes under an SA on TCP. Her
/// UPDATE_SA_ADDRESSES opens a stream from the new address, Bob moves the SA and its CHILD SA's ESP
/// to that stream, and both keep their SPIs and stay on TCP.
#[test]
fn mobike_moves_an_sa_on_tcp_to_a_stream_from_the_new_address() {
    let new: std::net::IpAddr = "198.51.100.20".parse().unwrap();
    let mut alice = with_tcp(alice_psk(), TcpMode::Always);
    let mut bob = bob_psk();
    alice.mobike = true;
    bob.mobike = true;
    let mut sim = pair(10, Link::default(), alice, bob);
    sim.aliases.insert(new, ALICE_IP.parse().unwrap());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let (a, b) = (sim.ep(ALICE_IP).established()[0], sim.ep(BOB_IP).established()[0]);
    assert!(sim.ep(BOB_IP).info(b).unwrap().mobike);
    let spi_in = child(sim.events(BOB_IP)).unwrap().spi_in;
    let now = sim.now;
    sim.ep(ALICE_IP).roam(now, a, &[(new, BOB_IP.parse().unwrap())]).unwrap();
    sim.advance(Duration::from_secs(1));
    let moved = sim.events(BOB_IP).iter().find_map(|e| match e {
        Event::PathChanged { remote, spis_in, .. } => Some((*remote, spis_in.clone())),
        _ => None,
    });
    let (remote, spis) = moved.expect("bob moved the SA");
    assert_eq!((remote.ip(), spis), (new, vec![spi_in]));
    assert!(sim.events(ALICE_IP).iter().any(|e| matches!(e, Event::PathChanged { local, .. } if local.ip() == new)));
    assert_eq!(sim.streams_opened, 2, "a stream from the new address");
    let info = sim.ep(BOB_IP).info(b).unwrap();
    assert_eq!((info.transport, info.remote.ip()), (Transport::Tcp, new));
    assert_eq!(sim.ep(ALICE_IP).info(a).unwrap().transport, Transport::Tcp);
    assert_eq!(sim.ep(BOB_IP).established(), [b], "the same IKE SA");
}

/// The stream breaks while Bob's answer to Alice's request is on its way. Alice, who opened the
/// stream, sends the request again at once on a new one; Bob answers it from his cache, which moves
/// nothing (a replay must not move an SA), so Alice follows it with a liveness check, a new request,
/// and Bob's SA and ESP move to the new stream.
#[test]
fn an_answer_lost_with_the_stream_is_sent_again_and_the_responder_follows() {
    let mut sim = pair(11, Link::default(), with_tcp(alice_psk(), TcpMode::Always), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let old_port = *sim.streams.values().next().unwrap();
    let a = sim.ep(ALICE_IP).established()[0];
    let before = sim.log.len();
    let now = sim.now;
    sim.ep(ALICE_IP).liveness(now, a).unwrap();
    let bob: std::net::IpAddr = BOB_IP.parse().unwrap();
    assert!(
        sim.run_until(Duration::from_secs(1), |s| s.log[before..]
            .iter()
            .any(|(f, _, d)| f.ip() == bob && describe(d).1))
    );
    let t0 = sim.elapsed();
    sim.break_streams();
    sim.advance(Duration::from_secs(1));
    let confirmed = sim.events(ALICE_IP).iter().filter(|e| matches!(e, Event::LivenessConfirmed { .. })).count();
    assert_eq!(confirmed, 2, "the request sent again, then the liveness check: {:?}", sent(&sim));
    let moved = sim.events(BOB_IP).iter().find_map(|e| match e {
        Event::PathChanged { remote, .. } => Some(*remote),
        _ => None,
    });
    let remote = moved.expect("bob follows the new stream");
    assert_ne!(remote.port(), old_port);
    assert_eq!(info(&mut sim, BOB_IP).remote, remote);
    // All within a round trip or two, not at a retransmission time (4 s).
    let last = *sim.log_at.last().unwrap();
    assert!((last - t0).as_secs_f64() < 0.5, "{:?}", sent(&sim));
}
