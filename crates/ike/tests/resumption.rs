//! Session resumption (RFC 5723) between two endpoints: the client asks for a ticket in IKE_AUTH
//! (TICKET_REQUEST) and gets one (TICKET_LT_OPAQUE); once its IKE SA is gone, starting the
//! connection again presents it in IKE_SESSION_RESUME instead of IKE_SA_INIT (no key exchange),
//! and IKE_AUTH authenticates with the resumed keys alone. A ticket the gateway cannot take (used
//! before, altered, sealed by a gateway that restarted) gets TICKET_NACK, and the client sets the SA
//! up in full.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::{Event, PeerConfig};
use oxswan_wire::{ExchangeType, NotifyType};

fn resuming(p: PeerConfig) -> PeerConfig {
    PeerConfig { resumption: true, ..p }
}

/// Alice up with Bob, a ticket in hand, then her IKE SA deleted: what the log holds from then on
/// belongs to the next attempt.
fn up_then_down(sim: &mut Sim) {
    initiate(sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let now = sim.now;
    assert!(sim.ep(ALICE_IP).has_ticket(now, "to-bob"), "Alice kept the ticket Bob gave");
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).delete_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| down(s.events(ALICE_IP)).is_some()
        && s.ep_ref(BOB_IP).established().is_empty()));
    sim.events.values_mut().for_each(Vec::clear);
}

fn exchanges(sim: &Sim, from: usize) -> Vec<(String, ExchangeType, Vec<String>)> {
    named_messages(sim, from).into_iter().map(|(who, e, _, p)| (who, e, p)).collect()
}

#[test]
fn a_client_resumes_with_its_ticket_without_a_key_exchange() {
    let mut sim = null_cipher_pair(1, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let auth = exchanges(&sim, 0);
    assert!(auth[2].2.contains(&"N(TICKET_REQUEST)".to_string()), "{auth:?}");
    assert!(auth[3].2.contains(&"N(TICKET_LT_OPAQUE)".to_string()), "{auth:?}");
    assert!(!info(&mut sim, ALICE_IP).resumed);
    let now = sim.now;
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).delete_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| down(s.events(ALICE_IP)).is_some()
        && s.ep_ref(BOB_IP).established().is_empty()));
    sim.events.values_mut().for_each(Vec::clear);

    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let seen = exchanges(&sim, from);
    let (alice, bob) = ("alice".to_string(), "bob".to_string());
    assert_eq!(
        seen[0],
        (
            alice.clone(),
            ExchangeType::IKE_SESSION_RESUME,
            vec![
                "No".into(),
                "N(TICKET_OPAQUE)".into(),
                "N(NAT_DETECTION_SOURCE_IP)".into(),
                "N(NAT_DETECTION_DESTINATION_IP)".into(),
                "N(REDIRECT_SUPPORTED)".into(),
                "N(SIGNATURE_HASH_ALGORITHMS)".into(),
                "N(IKEV2_FRAGMENTATION_SUPPORTED)".into(),
            ]
        ),
        "no SA, no KE: {seen:?}"
    );
    assert_eq!(seen[1].0, bob);
    assert_eq!(seen[1].1, ExchangeType::IKE_SESSION_RESUME);
    assert!(!seen[1].2.contains(&"KE".to_string()), "{seen:?}");
    assert_eq!((seen[2].0.as_str(), seen[2].1), ("alice", ExchangeType::IKE_AUTH));
    assert!(seen[2].2.starts_with(&["IDi".to_string()]) && seen[2].2.contains(&"AUTH".to_string()), "{seen:?}");
    assert!(seen.iter().all(|m| m.1 != ExchangeType::IKE_SA_INIT), "no IKE_SA_INIT: {seen:?}");
    for ip in [ALICE_IP, BOB_IP] {
        let i = info(&mut sim, ip);
        assert!(i.resumed, "{ip} shows the SA as resumed");
        let h = sim.ep(ip).established()[0];
        assert_eq!(sim.ep(ip).children(h).len(), 1, "with its CHILD SA");
    }
    // A new ticket came with the resumed IKE_AUTH: resumption works again.
    let now = sim.now;
    assert!(sim.ep(ALICE_IP).has_ticket(now, "to-bob"));
}

/// The keys really are the resumed ones: the CHILD SA the resumed IKE SA makes has the same keys on
/// both sides (their data planes would not talk otherwise), and real ciphers protect IKE_AUTH.
#[test]
fn a_resumed_sa_has_matching_keys_with_real_ciphers() {
    let mut sim = pair(2, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    up_then_down(&mut sim);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let a = child(sim.events(ALICE_IP)).unwrap();
    let b = child(sim.events(BOB_IP)).unwrap();
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in));
    let (ha, hb) = (sim.ep(ALICE_IP).established()[0], sim.ep(BOB_IP).established()[0]);
    let (ka, kb) = (sim.installed(ALICE_IP, ha), sim.installed(BOB_IP, hb));
    assert_eq!(ka.len(), 1);
    assert!(!ka[0].encr_out.is_empty());
    assert_eq!(ka[0].encr_out, kb[0].encr_in, "one key each way");
    assert_eq!(ka[0].encr_in, kb[0].encr_out);
    assert!(info(&mut sim, BOB_IP).resumed);
}

/// RFC 5723 §4: a gateway that restarted (new ticket keys) refuses the ticket with TICKET_NACK, and
/// the client goes on with a full IKE_SA_INIT on the same attempt.
#[test]
fn a_refused_ticket_falls_back_to_a_full_handshake() {
    let mut sim = null_cipher_pair(3, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    up_then_down(&mut sim);
    let config = oxswan_ike::EndpointConfig { fragment_size: 65_535, ..Default::default() };
    sim.add_null_cipher(BOB_IP, config, vec![resuming(bob_psk())]);
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let seen = exchanges(&sim, from);
    assert_eq!(seen[1], ("bob".into(), ExchangeType::IKE_SESSION_RESUME, vec!["N(TICKET_NACK)".into()]), "{seen:?}");
    assert_eq!(seen[2].1, ExchangeType::IKE_SA_INIT, "{seen:?}");
    assert!(!info(&mut sim, ALICE_IP).resumed);
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e,
        Event::InitRejected { notify: NotifyType::TICKET_NACK, reason, .. } if reason.contains("not a ticket of ours"))));
}

/// A ticket is taken once (RFC 5723 §5). Alice's IKE_SESSION_RESUME, sent again after it was used (by an
/// attacker who recorded it), gets TICKET_NACK; and so does a ticket with one octet changed.
#[test]
fn a_ticket_is_taken_once_and_only_unaltered() {
    let mut sim = pair(4, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    up_then_down(&mut sim);
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let request = sim.log[from].2.clone();
    assert_eq!(describe(&request).0, ExchangeType::IKE_SESSION_RESUME);
    // The same datagram again, from another port so that it is no retransmission of the attempt.
    let ticket = plain_payloads(&request)
        .into_iter()
        .find_map(|p| match p {
            oxswan_wire::Payload::Notify(n) if n.notify_type == NotifyType::TICKET_OPAQUE => Some(n.data),
            _ => None,
        })
        .unwrap();
    let at = request.windows(ticket.len()).position(|w| w == ticket.as_slice()).unwrap();
    let mut altered = request.clone();
    altered[at + ticket.len() / 2] ^= 1;
    for (port, datagram) in [(1500, request), (1501, altered)] {
        let from = sim.log.len();
        let now = sim.now;
        sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, port), &datagram);
        sim.advance(Duration::from_millis(10));
        let answer = &sim.log[from].2;
        assert_eq!(message(answer), (ExchangeType::IKE_SESSION_RESUME, true, vec!["N(TICKET_NACK)".to_string()]));
    }
    let reasons: Vec<String> = sim
        .events(BOB_IP)
        .iter()
        .filter_map(|e| match e {
            Event::InitRejected { notify: NotifyType::TICKET_NACK, reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(reasons[0].contains("already used") && reasons[1].contains("not a ticket of ours"), "{reasons:?}");
    assert_eq!(sim.ep(BOB_IP).established().len(), 1, "the resumed SA stays");
}

/// A gateway whose connection does not allow resumption gives no ticket (TICKET_NACK to the
/// request), and the client keeps none.
#[test]
fn no_ticket_from_a_connection_without_resumption() {
    let mut sim = null_cipher_pair(5, Link::default(), resuming(alice_psk()), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let seen = exchanges(&sim, 0);
    assert!(seen[3].2.contains(&"N(TICKET_NACK)".to_string()), "{seen:?}");
    let now = sim.now;
    assert!(!sim.ep(ALICE_IP).has_ticket(now, "to-bob"));
}

/// Under cookies (RFC 7296 §2.6) the gateway answers IKE_SESSION_RESUME with a COOKIE in the same
/// exchange, and the client presents the ticket again with it.
#[test]
fn resumption_under_cookies() {
    let wide = oxswan_ike::EndpointConfig { fragment_size: 65_535, ..Default::default() };
    let strict = oxswan_ike::EndpointConfig { force_cookies: true, ..wide.clone() };
    let mut sim = Sim::new(6, Link::default());
    sim.add_null_cipher(ALICE_IP, wide, vec![resuming(alice_psk())]);
    sim.add_null_cipher(BOB_IP, strict, vec![resuming(bob_psk())]);
    up_then_down(&mut sim);
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let seen = exchanges(&sim, from);
    assert_eq!(seen[1], ("bob".into(), ExchangeType::IKE_SESSION_RESUME, vec!["N(COOKIE)".into()]), "{seen:?}");
    assert_eq!((seen[2].1, seen[2].2[0].as_str()), (ExchangeType::IKE_SESSION_RESUME, "N(COOKIE)"), "{seen:?}");
    assert!(info(&mut sim, BOB_IP).resumed);
}

/// RFC 5723 §4 with a gateway that never answers IKE_SESSION_RESUME (a middlebox drops it): after
/// two transmissions the same attempt goes on as IKE_SA_INIT.
#[test]
fn an_unanswered_resumption_goes_on_as_ike_sa_init() {
    let mut sim = null_cipher_pair(7, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    up_then_down(&mut sim);
    sim.drop_filter = Some(Box::new(|_, d| describe(d).0 == ExchangeType::IKE_SESSION_RESUME));
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(30), both_up));
    let seen = exchanges(&sim, from);
    let kinds: Vec<ExchangeType> = seen.iter().map(|m| m.1).take(3).collect();
    assert_eq!(
        kinds,
        [ExchangeType::IKE_SESSION_RESUME, ExchangeType::IKE_SESSION_RESUME, ExchangeType::IKE_SA_INIT],
        "{seen:?}"
    );
    assert!(!info(&mut sim, ALICE_IP).resumed);
}

/// The gateway takes a ticket only while the connection would still admit what it holds: after
/// a reload without the ticket's proposal it refuses (TICKET_NACK) and the client sets the SA up
/// in full with what is offered now.
#[test]
fn a_ticket_the_connection_no_longer_admits_is_refused() {
    let mut sim = null_cipher_pair(8, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    up_then_down(&mut sim);
    let both = oxswan_crypto::proposal::parse_ike_proposals("aes128gcm16-prfsha256-x25519").unwrap();
    let alice = PeerConfig { ike_proposals: both.clone(), ..resuming(alice_psk()) };
    let bob = PeerConfig { ike_proposals: both, ..resuming(bob_psk()) };
    sim.ep(ALICE_IP).set_peers(vec![alice]);
    sim.ep(BOB_IP).set_peers(vec![bob]);
    let from = sim.log.len();
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    assert_eq!(exchanges(&sim, from)[1].2, ["N(TICKET_NACK)"]);
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e,
        Event::InitRejected { reason, .. } if reason.contains("no longer accepts the ticket's proposal"))));
    assert!(info(&mut sim, BOB_IP).proposal.starts_with("aes128gcm16"));
}

/// A gateway being drained (`redirect` set) refuses the ticket of a client that follows
/// redirects, so that its full IKE_SA_INIT is redirected (RFC 5685 §4.1).
#[test]
fn a_draining_gateway_refuses_tickets_and_redirects() {
    let mut sim = null_cipher_pair(9, Link::default(), resuming(alice_psk()), resuming(bob_psk()));
    up_then_down(&mut sim);
    let carol = oxswan_ike::Gateway::parse("192.0.2.3").unwrap();
    sim.ep(BOB_IP).set_redirect(Some(carol));
    let from = sim.log.len();
    initiate(&mut sim);
    sim.advance(Duration::from_secs(2));
    let seen = exchanges(&sim, from);
    assert_eq!(seen[1].2, ["N(TICKET_NACK)"], "{seen:?}");
    assert_eq!(
        (seen[2].1, seen[3].2.clone()),
        (ExchangeType::IKE_SA_INIT, vec!["N(REDIRECT)".to_string()]),
        "{seen:?}"
    );
    assert!(has_event(
        sim.events(ALICE_IP),
        |e| matches!(e, Event::Redirect { to: Ok(a), .. } if a.to_string() == "192.0.2.3")
    ));
}
