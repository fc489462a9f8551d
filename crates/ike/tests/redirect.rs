//! Redirect (RFC 5685). The client's side: following a gateway's REDIRECT of an established IKE SA
//! (§5): the client answers the INFORMATIONAL, reports where to (an address; a gateway named by
//! FQDN cannot be followed), and, asked to follow, sets the SA up there with its CHILD SAs,
//! announcing REDIRECTED_FROM with the old gateway's address; the old SA goes once the new one is
//! up (make before break); a REDIRECT in IKE_SA_INIT (§4.1) or IKE_AUTH (§6) ends the attempt.
//! The gateway's side: Bob redirects Alice to Carol, a second gateway of the same identity, in
//! each of the three exchanges, and only when Alice said she follows redirects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use oxswan_ike::Event;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{ExchangeType, Flags, Header, NotifyType, Payload};

/// Bob's INFORMATIONAL request with N(REDIRECT) carrying `data`, on the established SA.
fn redirect(sim: &mut Sim, data: Vec<u8>, message_id: u32) {
    let i = info(sim, ALICE_IP);
    let h = Header::new(i.spi_i, i.spi_r, ExchangeType::INFORMATIONAL, Flags(0), message_id);
    let (provider, keys) = null_keys();
    let m = oxswan_crypto::sk::protect(
        &provider,
        &keys,
        &h,
        &[Payload::Notify(NotifyPayload::new(NotifyType::REDIRECT, data))],
    )
    .unwrap();
    let now = sim.now;
    sim.ep(ALICE_IP).handle_datagram(now, addr(ALICE_IP, 500), addr(BOB_IP, 500), &m);
    sim.advance(Duration::from_millis(10));
}

fn redirects(sim: &Sim) -> Vec<Result<std::net::IpAddr, String>> {
    sim.events(ALICE_IP)
        .iter()
        .filter_map(|e| match e {
            Event::Redirect { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_redirect_of_an_established_sa_is_followed_make_before_break() {
    let mut sim = null_cipher_pair(1, Link::default(), alice_psk(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    // The request announced REDIRECT_SUPPORTED.
    assert!(payloads(&sim.log[0].2).contains(&"N(REDIRECT_SUPPORTED)".to_string()));
    let old = sim.ep(ALICE_IP).established()[0];
    // To an FQDN: reported, not followable. To an address: reported.
    redirect(&mut sim, [&[3u8, 11][..], b"gw2.example"].concat(), 0);
    assert!(matches!(redirects(&sim).as_slice(), [Err(why)] if why.contains("gw2.example")), "{:?}", redirects(&sim));
    // Bob is at 192.0.2.2: the "new" gateway is Bob again, so the test can follow it.
    let bob: std::net::IpAddr = BOB_IP.parse().unwrap();
    let std::net::IpAddr::V4(v4) = bob else { panic!() };
    redirect(&mut sim, [&[1u8, 4][..], &v4.octets()].concat(), 1);
    assert_eq!(redirects(&sim).last(), Some(&Ok(bob)));
    let from = sim.log.len();
    let now = sim.now;
    let new = sim.ep(ALICE_IP).follow_redirect(now, old, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap();
    sim.advance(Duration::from_secs(3));
    let init = sim.log[from..].iter().find(|(_, _, d)| describe(d).0 == ExchangeType::IKE_SA_INIT).unwrap();
    let notifies: Vec<NotifyPayload> = plain_payloads(&init.2)
        .into_iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
        .collect();
    let from_n = notifies.iter().find(|n| n.notify_type == NotifyType::REDIRECTED_FROM).expect("REDIRECTED_FROM");
    assert_eq!(from_n.data, [&[1u8, 4][..], &v4.octets()].concat(), "the old gateway's address");
    assert!(!notifies.iter().any(|n| n.notify_type == NotifyType::REDIRECT_SUPPORTED), "REDIRECTED_FROM in its place");
    assert_eq!(sim.ep(ALICE_IP).established(), [new], "the old SA went once the new one was up");
    assert!(info(&mut sim, ALICE_IP).redirected);
    let h = sim.ep(ALICE_IP).established()[0];
    assert_eq!(sim.ep(ALICE_IP).children(h).len(), 1, "with its CHILD SA");
}

/// RFC 5685 §4.1: a REDIRECT in the IKE_SA_INIT response counts only with our nonce as its Nonce
/// Data (anyone on the path could send one otherwise): without it Alice waits for the genuine
/// response; with it she reports where to and ends the attempt.
#[test]
fn a_redirect_in_ike_sa_init_needs_our_nonce() {
    use std::cell::RefCell;
    use std::rc::Rc;
    for genuine in [false, true] {
        let mut sim = null_cipher_pair(2, Link::default(), alice_psk(), bob_psk());
        let request: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
        let keep = Rc::clone(&request);
        // Bob never answers: the test answers for him.
        sim.drop_filter = Some(Box::new(move |_, d| {
            let (exchange, response, _) = describe(d);
            if exchange == ExchangeType::IKE_SA_INIT && !response {
                keep.borrow_mut().get_or_insert_with(|| d.to_vec());
                return true;
            }
            false
        }));
        initiate(&mut sim);
        sim.advance(Duration::from_millis(10));
        let req = request.borrow().clone().unwrap();
        let ni = plain_payloads(&req)
            .into_iter()
            .find_map(|p| match p {
                Payload::Nonce(n) => Some(n.data),
                _ => None,
            })
            .unwrap();
        let nonce = if genuine { ni } else { vec![0; 32] };
        let h = Header::parse(&req).unwrap();
        let answer = Header::new(h.spi_i, oxswan_wire::IkeSpi::ZERO, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0);
        let data = [&[1u8, 4, 192, 0, 2, 9][..], &nonce].concat();
        let m = answer.encode(&[Payload::Notify(NotifyPayload::new(NotifyType::REDIRECT, data))]).unwrap();
        let now = sim.now;
        sim.ep(ALICE_IP).handle_datagram(now, addr(ALICE_IP, 500), addr(BOB_IP, 500), &m);
        sim.advance(Duration::from_millis(10));
        if genuine {
            assert_eq!(redirects(&sim), [Ok("192.0.2.9".parse().unwrap())]);
            assert_eq!(down(sim.events(ALICE_IP)), Some(oxswan_ike::DownReason::Redirected));
        } else {
            assert!(redirects(&sim).is_empty(), "a forged REDIRECT is ignored");
            assert_eq!(down(sim.events(ALICE_IP)), None, "still waiting for the genuine response");
        }
    }
}

/// RFC 5685 §6: a REDIRECT in the IKE_AUTH response, after the gateway authenticated: Alice
/// reports it, deletes the IKE SA and makes no CHILD SA.
#[test]
fn a_redirect_in_ike_auth_ends_the_ike_sa() {
    let mut sim = null_cipher_pair(3, Link::default(), alice_psk(), bob_psk());
    let answer = intercept(&mut sim, |exchange, response, _| exchange == ExchangeType::IKE_AUTH && response);
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), |_| answer.borrow().is_some()));
    let a = answer.borrow().clone().unwrap();
    let m = reseal(&a, |mut inner| {
        inner.push(Payload::Notify(NotifyPayload::new(NotifyType::REDIRECT, vec![1, 4, 192, 0, 2, 9])));
        inner
    });
    let from = sim.log.len();
    let now = sim.now;
    sim.ep(ALICE_IP).handle_datagram(now, addr(ALICE_IP, 500), addr(BOB_IP, 500), &m);
    sim.advance(Duration::from_millis(10));
    assert_eq!(redirects(&sim), [Ok("192.0.2.9".parse().unwrap())]);
    assert_eq!(down(sim.events(ALICE_IP)), Some(oxswan_ike::DownReason::Redirected));
    assert!(child(sim.events(ALICE_IP)).is_none(), "no CHILD SA");
    let sent = named_messages(&sim, from);
    assert!(sent.iter().any(|m| m.0 == "alice" && m.1 == ExchangeType::INFORMATIONAL && m.3 == ["D(IKE)"]), "{sent:?}");
}

const CAROL_IP: &str = "192.0.2.3";

fn carol() -> oxswan_ike::Gateway {
    oxswan_ike::Gateway::parse(CAROL_IP).unwrap()
}

/// Alice and Bob, and Carol, who serves Alice as Bob does; Bob's endpoint redirects with
/// `bob_config`'s `redirect`, his connection with `bob`'s.
fn three(seed: u64, bob_config: oxswan_ike::EndpointConfig, bob: oxswan_ike::PeerConfig) -> Sim {
    let wide = oxswan_ike::EndpointConfig { fragment_size: 65_535, ..Default::default() };
    let mut sim = Sim::new(seed, Link::default());
    sim.add_null_cipher(ALICE_IP, wide.clone(), vec![alice_psk()]);
    sim.add_null_cipher(BOB_IP, oxswan_ike::EndpointConfig { fragment_size: 65_535, ..bob_config }, vec![bob]);
    sim.add_null_cipher(CAROL_IP, wide, vec![bob_psk()]);
    sim
}

/// Alice follows the redirect her last attempt ended with, to Carol, and Carol serves her.
fn follow_to_carol(sim: &mut Sim) {
    assert_eq!(redirects(sim).last(), Some(&Ok(CAROL_IP.parse().unwrap())));
    let now = sim.now;
    let bob = BOB_IP.parse().unwrap();
    sim.ep(ALICE_IP).initiate_redirected(now, "to-bob", (addr(ALICE_IP, 500), addr(CAROL_IP, 500)), bob).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| up(s.events(CAROL_IP))));
    let h = sim.ep(CAROL_IP).established()[0];
    let at_carol = sim.ep(CAROL_IP).info(h).unwrap();
    assert!(at_carol.redirected, "Carol sees the client came from another gateway");
    assert_eq!(sim.ep(CAROL_IP).children(h).len(), 1);
}

/// §4.1: with the endpoint's `redirect`, Bob answers Alice's IKE_SA_INIT with N(REDIRECT) to
/// Carol and her nonce, and makes no SA; she follows to Carol.
#[test]
fn a_gateway_redirects_new_clients_in_ike_sa_init() {
    let config = oxswan_ike::EndpointConfig { redirect: Some(carol()), ..Default::default() };
    let mut sim = three(11, config, bob_psk());
    initiate(&mut sim);
    sim.advance(Duration::from_secs(1));
    let answer = sim.log.iter().find(|(from, _, _)| from.ip().to_string() == BOB_IP).unwrap();
    let h = Header::parse(&answer.2).unwrap();
    assert_eq!((h.exchange_type, h.spi_r), (ExchangeType::IKE_SA_INIT, oxswan_wire::IkeSpi::ZERO));
    let ni = nonce_of(&sim.log[0].2).unwrap();
    let inner = plain_payloads(&answer.2);
    let [Payload::Notify(n)] = inner.as_slice() else { panic!("{:?}", payloads(&answer.2)) };
    assert_eq!((n.notify_type, n.data.clone()), (NotifyType::REDIRECT, [&[1u8, 4, 192, 0, 2, 3][..], &ni].concat()));
    assert_eq!(down(sim.events(ALICE_IP)), Some(oxswan_ike::DownReason::Redirected));
    assert_eq!(sim.ep(BOB_IP).sa_count(), 0, "no SA, no key exchange at Bob");
    assert_eq!(sim.ep(BOB_IP).stats().redirects_sent, 1);
    follow_to_carol(&mut sim);
}

/// §3, §4: an initiator that did not announce REDIRECT_SUPPORTED is served where it lands, and so
/// is one that says it comes from the gateway Bob would send it to (the loop of two gateways).
#[test]
fn a_gateway_serves_clients_that_do_not_follow_or_came_from_the_target() {
    let from_carol = NotifyPayload::new(NotifyType::REDIRECTED_FROM, vec![1, 4, 192, 0, 2, 3]);
    for replacement in [None, Some(from_carol)] {
        let config = oxswan_ike::EndpointConfig { redirect: Some(carol()), ..Default::default() };
        let mut sim = three(12, config, bob_psk());
        let request = intercept(&mut sim, |exchange, response, _| exchange == ExchangeType::IKE_SA_INIT && !response);
        initiate(&mut sim);
        sim.advance(Duration::from_millis(10));
        let req = request.borrow().clone().unwrap();
        let h = Header::parse(&req).unwrap();
        let changed: Vec<Payload> = plain_payloads(&req)
            .into_iter()
            .filter_map(|p| match p {
                Payload::Notify(n) if n.notify_type == NotifyType::REDIRECT_SUPPORTED => {
                    replacement.clone().map(Payload::Notify)
                }
                p => Some(p),
            })
            .collect();
        let m = h.encode(&changed).unwrap();
        let from = sim.log.len();
        let now = sim.now;
        sim.ep(BOB_IP).handle_datagram(now, addr(BOB_IP, 500), addr(ALICE_IP, 500), &m);
        sim.advance(Duration::from_millis(10));
        let answer = &sim.log[from].2;
        assert!(payloads(answer).contains(&"KE".to_string()), "served: {:?}", payloads(answer));
        assert_eq!(sim.ep(BOB_IP).stats().redirects_sent, 0);
    }
}

/// §6: the connection's `redirect` sends Alice on after Bob authenticated her: his IKE_AUTH
/// response has IDr, AUTH and N(REDIRECT) but no CHILD SA or virtual IP, both ends drop the SA, and
/// she follows to Carol.
#[test]
fn a_gateway_redirects_in_ike_auth_after_authentication() {
    let bob = oxswan_ike::PeerConfig { redirect: Some(carol()), ..bob_psk() };
    let mut sim = three(13, Default::default(), bob);
    initiate(&mut sim);
    sim.advance(Duration::from_secs(2));
    let auth = named_messages(&sim, 0).into_iter().find(|m| m.0 == "bob" && m.1 == ExchangeType::IKE_AUTH).unwrap();
    assert_eq!(auth.3, ["IDr", "AUTH", "N(REDIRECT)"], "{auth:?}");
    assert_eq!(down(sim.events(ALICE_IP)), Some(oxswan_ike::DownReason::Redirected));
    assert_eq!(down(sim.events(BOB_IP)), Some(oxswan_ike::DownReason::Redirected));
    assert!(!up(sim.events(BOB_IP)) && child(sim.events(BOB_IP)).is_none());
    assert_eq!(sim.ep(BOB_IP).stats().redirects_sent, 1);
    follow_to_carol(&mut sim);
}

/// §5: `Endpoint::redirect` of an established client: Bob's INFORMATIONAL with N(REDIRECT), Alice's
/// answer (RedirectAcknowledged), her new SA at Carol and her DELETE of the one at Bob. Alice, who
/// started her SA, cannot redirect Bob.
#[test]
fn a_gateway_redirects_an_established_client() {
    let mut sim = three(14, Default::default(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let at_bob = sim.ep(BOB_IP).established()[0];
    let at_alice = sim.ep(ALICE_IP).established()[0];
    let now = sim.now;
    assert!(matches!(
        sim.ep(ALICE_IP).redirect(now, at_alice, carol()),
        Err(oxswan_ike::IkeError::RedirectUnsupported)
    ));
    let from = sim.log.len();
    sim.ep(BOB_IP).redirect(now, at_bob, carol()).unwrap();
    sim.advance(Duration::from_millis(100));
    let sent = named_messages(&sim, from);
    assert_eq!(sent.first().map(|m| m.3.clone()), Some(vec!["N(REDIRECT)".to_string()]), "{sent:?}");
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e, Event::RedirectAcknowledged { sa } if *sa == at_bob)));
    assert_eq!(sim.ep(BOB_IP).stats().redirects_sent, 1);
    let now = sim.now;
    sim.ep(ALICE_IP).follow_redirect(now, at_alice, addr(ALICE_IP, 500), addr(CAROL_IP, 500)).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| up(s.events(CAROL_IP)) && s.ep_ref(BOB_IP).sa_count() == 0));
    assert_eq!(down(sim.events(BOB_IP)), Some(oxswan_ike::DownReason::PeerDeleted), "Alice deleted it");
    let h = sim.ep(CAROL_IP).established()[0];
    assert!(sim.ep(CAROL_IP).info(h).unwrap().redirected);
    assert_eq!(sim.ep(ALICE_IP).established().len(), 1);
}

/// §5 across an IKE SA rekey: Bob's redirect queued behind his rekey goes out on the new IKE SA,
/// which the answer acknowledges.
#[test]
fn a_redirect_queued_behind_a_rekey_goes_on_the_new_ike_sa() {
    let mut sim = three(15, Default::default(), bob_psk());
    initiate(&mut sim);
    assert!(sim.run_until(Duration::from_secs(5), both_up));
    let old = sim.ep(BOB_IP).established()[0];
    let now = sim.now;
    sim.ep(BOB_IP).rekey_ike(now, old).unwrap();
    sim.ep(BOB_IP).redirect(now, old, carol()).unwrap();
    sim.advance(Duration::from_secs(1));
    let new = sim.ep(BOB_IP).established()[0];
    assert_ne!(new, old, "rekeyed");
    assert!(has_event(sim.events(BOB_IP), |e| matches!(e, Event::RedirectAcknowledged { sa } if *sa == new)));
    assert_eq!(redirects(&sim).last(), Some(&Ok(CAROL_IP.parse().unwrap())));
}
