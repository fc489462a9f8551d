//! EAP in IKE_AUTH (RFC 7296 §2.16): the gateway authenticates with its certificate, the client
//! with EAP-MSCHAPv2 or EAP-MD5, and both final AUTH payloads come from the method's key; the users'
//! passwords are looked up by EAP identity; a wrong password or an unknown user fails with nothing
//! left behind; the lease belongs to the EAP identity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oxswan_crypto::Secret;
use oxswan_eap::MethodType;
use oxswan_ike::auth::{AuthError, SharedKeys};
use oxswan_ike::config::{EapClient, EapServer};
use oxswan_ike::leases::{MemoryLeases, PoolAttributes};
use oxswan_ike::{DownReason, EndpointConfig, Event, LocalAuth, PeerConfig, RemoteAuth};
use oxswan_pool::{AddrRange, Pool};
use oxswan_wire::ExchangeType;
use oxswan_wire::Identity;

const GW: &str = "192.0.2.10";

fn wide() -> EndpointConfig {
    EndpointConfig { fragment_size: 65_535, ..EndpointConfig::default() }
}

struct Setup {
    sim: Sim,
    ca: pki::Ca,
}

/// A gateway `vpn.example` with a certificate, running `methods` (asking for the EAP identity
/// when `ask_identity`), with the users alice and bob and a pool of IPv4 addresses.
fn gateway(seed: u64, methods: &[MethodType], ask_identity: bool) -> Setup {
    gateway_for(seed, methods, ask_identity, None)
}

/// [`gateway`] admitting only the EAP identity `identity`, if one is given.
fn gateway_for(seed: u64, methods: &[MethodType], ask_identity: bool, identity: Option<&str>) -> Setup {
    let mut sim = Sim::new(seed, Link::default());
    let ca = pki::Ca::new("Test CA", pki::Alg::P256);
    let mut gw = psk_peer("rw", "vpn.example", "unused", "unused", "10.2.0.0/24", "0.0.0.0/0");
    gw.remote_id = None;
    gw.local_auth = LocalAuth::Cert(ca.local(pki::Alg::P256, "vpn.example", &["vpn.example"]));
    gw.remote_auth = RemoteAuth::Eap(EapServer {
        methods: methods.to_vec(),
        ask_identity,
        identity: identity.map(str::to_owned),
        tls: None,
        eap_only: false,
    });
    gw.children[0] = child_config("net", &["10.2.0.0/24"], &["dynamic"]);
    gw.pools = vec!["rw4".into()];
    // Tickets only for clients that ask (RFC 5723 §4): the exchanges stay as they were for the others.
    gw.resumption = true;
    sim.add_null_cipher(GW, wide(), vec![gw]);
    let mut users = SharedKeys::new();
    users.add_eap("alice", Secret::from_slice(b"alice's password"));
    users.add_eap("bob", Secret::from_slice(b"bob's password"));
    sim.ep(GW).set_credentials(Arc::new(users));
    let mut leases = MemoryLeases::new();
    leases.insert(
        Pool::new("rw4", AddrRange::parse("10.10.0.0/24").unwrap(), Duration::from_secs(3600)),
        PoolAttributes { dns: vec!["10.10.0.53".parse().unwrap()], ..Default::default() },
    );
    sim.ep(GW).set_leases(Box::new(leases));
    Setup { sim, ca }
}

/// A client at `ip` with the IKE identity `id` (its address, as Windows sends), the EAP identity
/// `user` and `password`, accepting `methods`.
fn client(s: &mut Setup, ip: &str, user: &str, password: &str, methods: &[MethodType]) {
    client_contact(s, ip, user, password, methods, true);
}

/// [`client`], with or without INITIAL_CONTACT (off for a second device of a user).
fn client_contact(s: &mut Setup, ip: &str, user: &str, password: &str, methods: &[MethodType], initial_contact: bool) {
    client_with(s, ip, (user, password), methods, initial_contact, false);
}

/// [`client_contact`], asking for session resumption tickets (RFC 5723) when `resumption`.
fn client_with(
    s: &mut Setup,
    ip: &str,
    (user, password): (&str, &str),
    methods: &[MethodType],
    initial_contact: bool,
    resumption: bool,
) {
    let mut p: PeerConfig = psk_peer("to-gw", "unused", "vpn.example", "unused", "10.1.0.0/16", "10.2.0.0/24");
    p.local_id = Identity::Ipv4(ip.parse().unwrap());
    p.local_auth = LocalAuth::Eap(EapClient { identity: Some(user.into()), methods: methods.to_vec(), tls: None });
    p.remote_auth = RemoteAuth::Cert(s.ca.trust());
    p.children[0] = child_config("net", &["dynamic"], &["10.2.0.0/24"]);
    p.vips = vec!["0.0.0.0".parse().unwrap()];
    p.initial_contact = initial_contact;
    p.resumption = resumption;
    s.sim.add_null_cipher(ip, wide(), vec![p]);
    let mut own = SharedKeys::new();
    own.add_eap(user, Secret::from_slice(password.as_bytes()));
    s.sim.ep(ip).set_credentials(Arc::new(own));
    let now = s.sim.now;
    s.sim.ep(ip).initiate(now, "to-gw", addr(ip, 500), addr(GW, 500)).unwrap();
}

fn settled(sim: &Sim, ip: &str) -> bool {
    child(sim.events(ip)).is_some() || down(sim.events(ip)).is_some()
}

fn auth_failures(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AuthFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn eap_mschapv2_with_the_identity_asked_for() {
    let mut s = gateway(51, &[MethodType::MsChapV2], true);
    client(&mut s, ALICE_IP, "alice", "alice's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)), "{:?}", s.sim.events(GW));
    assert!(child(s.sim.events(ALICE_IP)).is_some(), "{:?}\n{:?}", s.sim.events(ALICE_IP), s.sim.events(GW));

    let auth: Vec<(String, bool, Vec<String>)> = named_messages(&s.sim, 0)
        .into_iter()
        .filter(|m| m.1 == ExchangeType::IKE_AUTH)
        .map(|m| (m.0, m.2, m.3.into_iter().filter(|p| !p.starts_with("N(")).collect()))
        .collect();
    let round = |who: &str, response: bool, p: &[&str]| {
        (who.to_string(), response, p.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(
        auth,
        vec![
            // No AUTH: the client wants EAP (§2.16).
            round("alice", REQUEST, &["IDi", "CERTREQ", "IDr", "CP", "SA", "TSi", "TSr"]),
            round(GW, RESPONSE, &["IDr", "CERT", "CERT", "AUTH", "EAP"]),
            // EAP-Identity, MSCHAPv2 Challenge/Response, Success-Request/Response, EAP-Success.
            round("alice", REQUEST, &["EAP"]),
            round(GW, RESPONSE, &["EAP"]),
            round("alice", REQUEST, &["EAP"]),
            round(GW, RESPONSE, &["EAP"]),
            round("alice", REQUEST, &["EAP"]),
            round(GW, RESPONSE, &["EAP"]),
            // Both AUTH from the MSK; the CP and CHILD SA parts answered last.
            round("alice", REQUEST, &["AUTH"]),
            round(GW, RESPONSE, &["AUTH", "CP", "SA", "TSi", "TSr"]),
        ]
    );
    let gw = info(&mut s.sim, GW);
    assert_eq!(gw.eap_id.as_deref(), Some("alice"));
    assert_eq!(gw.remote_id, Identity::Ipv4(ALICE_IP.parse().unwrap()));
    assert_eq!(info(&mut s.sim, ALICE_IP).local_vips, vec!["10.10.0.1".parse::<std::net::IpAddr>().unwrap()]);
}

#[test]
fn eap_mschapv2_with_the_ike_identity_as_eap_identity() {
    // Without asking, the gateway takes the client's IKE identity as its EAP identity.
    let mut s = gateway(52, &[MethodType::MsChapV2], false);
    let mut users = SharedKeys::new();
    users.add_eap(ALICE_IP, Secret::from_slice(b"alice's password"));
    s.sim.ep(GW).set_credentials(Arc::new(users));
    client(&mut s, ALICE_IP, ALICE_IP, "alice's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    assert!(child(s.sim.events(ALICE_IP)).is_some(), "{:?}", s.sim.events(GW));
    assert_eq!(info(&mut s.sim, GW).eap_id.as_deref(), Some(ALICE_IP));
}

#[test]
fn a_wrong_password_fails_on_both_sides_naming_the_user() {
    let mut s = gateway(53, &[MethodType::MsChapV2], true);
    client(&mut s, ALICE_IP, "alice", "not alice's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| down(sim.events(ALICE_IP)).is_some()
        && down(sim.events(GW)).is_some()));
    let failures = auth_failures(s.sim.events(GW));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("alice"), "the log says which user failed: {failures:?}");
    assert!(
        matches!(down(s.sim.events(GW)), Some(DownReason::AuthFailed(AuthError::Eap { user: Some(u), .. })) if u == "alice")
    );
    assert!(
        matches!(down(s.sim.events(ALICE_IP)), Some(DownReason::AuthFailed(AuthError::Eap { .. }))),
        "{:?}",
        down(s.sim.events(ALICE_IP))
    );
    assert!(s.sim.ep(GW).established().is_empty() && s.sim.ep(ALICE_IP).established().is_empty());
    assert!(child(s.sim.events(GW)).is_none(), "no CHILD SA was made");
}

#[test]
fn an_unknown_user_fails() {
    let mut s = gateway(54, &[MethodType::MsChapV2], true);
    client(&mut s, ALICE_IP, "mallory", "whatever", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| down(sim.events(GW)).is_some()));
    let failures = auth_failures(s.sim.events(GW));
    assert!(failures.iter().any(|f| f.contains("mallory")), "{failures:?}");
    assert!(s.sim.ep(GW).established().is_empty());
}

#[test]
fn eap_md5_authenticates_with_sk_p_as_it_makes_no_key() {
    let mut s = gateway(55, &[MethodType::Md5], true);
    client(&mut s, ALICE_IP, "bob", "bob's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    assert!(child(s.sim.events(ALICE_IP)).is_some(), "{:?}", s.sim.events(GW));
    assert_eq!(info(&mut s.sim, GW).eap_id.as_deref(), Some("bob"));
}

#[test]
fn eap_dynamic_lets_the_client_pick_with_a_nak() {
    // The gateway proposes MD5 first; the client takes MSCHAPv2 only and answers with a Nak.
    let mut s = gateway(56, &[MethodType::Md5, MethodType::MsChapV2], true);
    client(&mut s, ALICE_IP, "alice", "alice's password", &[MethodType::MsChapV2]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    assert!(child(s.sim.events(ALICE_IP)).is_some(), "{:?}", s.sim.events(GW));
}

#[test]
fn no_common_method_fails() {
    let mut s = gateway(57, &[MethodType::Md5], true);
    client(&mut s, ALICE_IP, "alice", "alice's password", &[MethodType::MsChapV2]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| down(sim.events(GW)).is_some()));
    assert!(s.sim.ep(GW).established().is_empty());
}

#[test]
fn the_lease_belongs_to_the_eap_identity() {
    // Alice from two devices at once gets an address for each (two online devices of one user
    // must not share one, as with strongSwan's pools); bob has his own. When her first device
    // comes back from elsewhere, it gets her reserved address again.
    let mut s = gateway(58, &[MethodType::MsChapV2], true);
    client(&mut s, "192.0.2.1", "alice", "alice's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, "192.0.2.1")));
    client_contact(&mut s, "192.0.2.3", "alice", "alice's password", &[], false);
    client(&mut s, "192.0.2.4", "bob", "bob's password", &[]);
    let all = ["192.0.2.1", "192.0.2.3", "192.0.2.4"];
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| all.iter().all(|c| settled(sim, c))));
    let vip = |s: &mut Setup, c: &str| info(&mut s.sim, c).local_vips;
    let (phone, laptop, bob) = (vip(&mut s, "192.0.2.1"), vip(&mut s, "192.0.2.3"), vip(&mut s, "192.0.2.4"));
    assert_ne!(phone, laptop);
    assert!(bob != phone && bob != laptop);
    assert_eq!(s.sim.ep(GW).established().len(), 3);

    let now = s.sim.now;
    let sa = s.sim.ep("192.0.2.1").established()[0];
    s.sim.ep("192.0.2.1").delete_ike(now, sa).unwrap();
    assert!(s.sim.run_until(Duration::from_secs(5), |sim| down(sim.events("192.0.2.1")).is_some()));
    client_contact(&mut s, "192.0.2.9", "alice", "alice's password", &[], false);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, "192.0.2.9")));
    assert_eq!(vip(&mut s, "192.0.2.9"), phone);
}

#[test]
fn a_connection_for_one_eap_identity_refuses_others() {
    let mut s = gateway_for(60, &[MethodType::MsChapV2], true, Some("alice"));
    client(&mut s, "192.0.2.1", "bob", "bob's password", &[]);
    client(&mut s, "192.0.2.3", "alice", "alice's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| down(sim.events("192.0.2.1")).is_some()
        && settled(sim, "192.0.2.3")));
    assert!(child(s.sim.events("192.0.2.3")).is_some(), "alice is in");
    assert!(
        auth_failures(s.sim.events(GW)).iter().any(|f| f.contains("bob") && f.contains("alice only")),
        "{:?}",
        auth_failures(s.sim.events(GW))
    );
}

#[test]
fn a_client_that_skips_eap_is_refused() {
    // The client sends AUTH with a PSK to a gateway that requires EAP: no connection fits.
    let mut s = gateway(59, &[MethodType::MsChapV2], true);
    let mut p = psk_peer("to-gw", "alice.example", "vpn.example", "a key", "10.1.0.0/16", "10.2.0.0/24");
    p.remote_auth = RemoteAuth::Cert(s.ca.trust());
    s.sim.add_null_cipher(ALICE_IP, wide(), vec![p]);
    let now = s.sim.now;
    s.sim.ep(ALICE_IP).initiate(now, "to-gw", addr(ALICE_IP, 500), addr(GW, 500)).unwrap();
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| down(sim.events(GW)).is_some()));
    assert!(matches!(down(s.sim.events(GW)), Some(DownReason::AuthFailed(AuthError::NoConnection { .. }))));
}

/// A gateway that passes EAP to an authentication server (RADIUS, RFC 3579, in the daemon): here
/// the test plays the server with a local EAP-MSCHAPv2 server, answering each
/// [`Event::EapRelay`] after `delay` of virtual time, as a server on the network would.
fn relayed(seed: u64, ask_identity: bool, password: &str, delay: Duration, silent: bool) -> (Setup, Vec<Vec<u8>>) {
    let mut s = gateway(seed, &[MethodType::MsChapV2], ask_identity);
    let mut gw = psk_peer("rw", "vpn.example", "unused", "unused", "10.2.0.0/24", "0.0.0.0/0");
    gw.remote_id = None;
    gw.local_auth = LocalAuth::Cert(s.ca.local(pki::Alg::P256, "vpn.example", &["vpn.example"]));
    gw.remote_auth =
        RemoteAuth::EapRelay(oxswan_ike::config::EapRelay { ask_identity, identity: None, wait: Duration::ZERO });
    gw.children[0] = child_config("net", &["10.2.0.0/24"], &["dynamic"]);
    gw.pools = vec!["rw4".into()];
    s.sim.ep(GW).set_peers(vec![gw]);
    // The gateway itself knows no passwords: only the "server" does.
    s.sim.ep(GW).set_credentials(Arc::new(SharedKeys::new()));
    let user = if ask_identity { "alice" } else { ALICE_IP };
    client(&mut s, ALICE_IP, user, password, &[]);
    let mut server_users = SharedKeys::new();
    server_users.add_eap(user, Secret::from_slice(b"alice's password"));
    let secrets = ServerSecrets(server_users);
    let random = oxswan_crypto::default_provider().random;
    let mut server: Option<oxswan_eap::EapServer> = None;
    let mut identities = Vec::new();
    let mut seen = 0;
    let mut due: Vec<(std::time::Instant, oxswan_ike::SaHandle, oxswan_ike::RelayAnswer)> = Vec::new();
    let deadline = s.sim.now + Duration::from_secs(60);
    while s.sim.now < deadline && !(settled(&s.sim, ALICE_IP) && due.is_empty()) {
        let events = s.sim.events(GW)[seen..].to_vec();
        seen += events.len();
        for e in events {
            let Event::EapRelay { sa, identity, eap, peer, .. } = e else { continue };
            assert_eq!(peer.ip().to_string(), ALICE_IP);
            identities.push(identity.clone());
            let server = server.get_or_insert_with(|| {
                let config = oxswan_eap::ServerConfig {
                    methods: vec![MethodType::MsChapV2],
                    ask_identity: false,
                    identity: Some(identity.clone()),
                    tls: None,
                };
                // The first request the server would send after the identity response.
                let (server, first) = oxswan_eap::EapServer::start(config, random.as_ref()).unwrap();
                due.push((s.sim.now + delay, sa, oxswan_ike::RelayAnswer::Challenge(first)));
                server
            });
            if eap.data.first() == Some(&1) {
                continue; // the identity response started the server above
            }
            let answer = match server.handle(&eap, &secrets, random.as_ref()) {
                oxswan_eap::ServerStep::Continue(r) => oxswan_ike::RelayAnswer::Challenge(r),
                oxswan_eap::ServerStep::Success { packet, msk, .. } => {
                    oxswan_ike::RelayAnswer::Accept { eap: Some(packet), msk, identity: None }
                }
                oxswan_eap::ServerStep::Failure { packet, .. } => {
                    oxswan_ike::RelayAnswer::Reject { eap: Some(packet), reason: "Access-Reject".into() }
                }
            };
            due.push((s.sim.now + delay, sa, answer));
        }
        if silent {
            due.clear();
        }
        let next_due = due.iter().map(|(at, ..)| *at).min();
        match (next_due, s.sim.next_event_at()) {
            (Some(d), n) if n.is_none_or(|n| d <= n) => {
                s.sim.now = s.sim.now.max(d);
                let now = s.sim.now;
                let (ready, later): (Vec<_>, Vec<_>) = due.drain(..).partition(|(at, ..)| *at <= now);
                due = later;
                for (_, sa, answer) in ready {
                    s.sim.ep(GW).relay_answer(now, sa, answer).unwrap();
                }
            }
            (_, Some(_)) => {
                s.sim.step();
            }
            _ => break,
        }
    }
    (s, identities)
}

#[derive(Debug)]
struct ServerSecrets(SharedKeys);

impl oxswan_eap::EapSecrets for ServerSecrets {
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        oxswan_ike::auth::Credentials::eap_secret(&self.0, identity)
    }
}

#[test]
fn eap_relayed_to_an_authentication_server_that_answers_later() {
    // The server takes 5 s per answer, longer than the client's first retransmission (after 4 s):
    // the gateway ignores the retransmissions and answers each request once, when the server did.
    for ask_identity in [true, false] {
        let (mut s, identities) = relayed(61, ask_identity, "alice's password", Duration::from_secs(5), false);
        let auth: Vec<_> = s
            .sim
            .log
            .iter()
            .map(|(src, _, d)| (src.ip().to_string(), describe(d)))
            .filter(|(_, (x, ..))| *x == ExchangeType::IKE_AUTH)
            .collect();
        let requests = auth.iter().filter(|(who, (_, response, _))| who == ALICE_IP && !response).count();
        let mut ids: Vec<u32> = auth.iter().filter(|(who, _)| who == ALICE_IP).map(|(_, (_, _, id))| *id).collect();
        ids.dedup();
        let responses = auth.iter().filter(|(who, (_, response, _))| who == GW && *response).count();
        assert!(requests > ids.len(), "{ask_identity}: the client retransmitted: {auth:?}");
        assert_eq!(responses, ids.len(), "{ask_identity}: one response per request: {auth:?}");
        assert!(
            child(s.sim.events(ALICE_IP)).is_some(),
            "{ask_identity}: {:?}\n{:?}",
            s.sim.events(ALICE_IP),
            s.sim.events(GW)
        );
        let want: &[u8] = if ask_identity { b"alice" } else { ALICE_IP.as_bytes() };
        assert!(identities.iter().all(|i| i == want), "{identities:?}");
        let gw = info(&mut s.sim, GW);
        assert_eq!(gw.eap_id.as_deref().map(str::as_bytes), Some(want));
        assert_eq!(info(&mut s.sim, ALICE_IP).local_vips, vec!["10.10.0.1".parse::<std::net::IpAddr>().unwrap()]);
    }
}

#[test]
fn a_relayed_wrong_password_and_a_silent_server_fail() {
    let (s, _) = relayed(62, true, "not alice's password", Duration::from_millis(50), false);
    assert!(
        matches!(down(s.sim.events(GW)), Some(DownReason::AuthFailed(AuthError::Eap { user: Some(u), .. })) if u == "alice"),
        "{:?}",
        down(s.sim.events(GW))
    );
    assert!(s.sim.ep_ref(GW).established().is_empty());

    // The server never answers: the gateway gives the client up after its round's wait.
    let (s, _) = relayed(63, true, "alice's password", Duration::from_millis(50), true);
    assert!(child(s.sim.events(ALICE_IP)).is_none());
    assert_eq!(down(s.sim.events(GW)), Some(DownReason::HalfOpenTimeout), "{:?}", s.sim.events(GW));
    assert!(s.sim.ep_ref(GW).established().is_empty());
}

/// A gateway running EAP-TLS with its IKE certificate as the TLS server's, and a client with a
/// certificate for `cert_for` from `client_ca` using the EAP identity `user`.
fn eap_tls(seed: u64, user: &str, cert_for: &str, client_ca: Option<&pki::Ca>) -> Setup {
    let mut s = gateway(seed, &[MethodType::Tls], true);
    let provider = oxswan_crypto::default_provider();
    let (gw_cert, gw_key) = s.ca.issue(pki::Alg::P256, "vpn.example", &["vpn.example"], (2025, 2030));
    let chain = vec![gw_cert, s.ca.intermediate_der.clone()];
    let mut gw = psk_peer("rw", "vpn.example", "unused", "unused", "10.2.0.0/24", "0.0.0.0/0");
    gw.remote_id = None;
    gw.local_auth =
        LocalAuth::Cert(Arc::new(oxswan_ike::cert::LocalCert::new(&provider, chain.clone(), &gw_key).unwrap()));
    gw.remote_auth = RemoteAuth::Eap(EapServer {
        methods: vec![MethodType::Tls],
        ask_identity: true,
        identity: None,
        tls: Some(oxswan_eap::TlsServerConfig {
            cert_chain: chain,
            key: gw_key.into(),
            client_cas: vec![s.ca.root_der.clone()],
            ..Default::default()
        }),
        eap_only: true,
    });
    gw.children[0] = child_config("net", &["10.2.0.0/24"], &["dynamic"]);
    gw.pools = vec!["rw4".into()];
    s.sim.ep(GW).set_peers(vec![gw]);
    let issuer = client_ca.unwrap_or(&s.ca);
    let (cert, key) = issuer.issue(pki::Alg::P256, cert_for, &[cert_for], (2025, 2030));
    let tls = oxswan_eap::TlsPeerConfig {
        cert_chain: vec![cert, issuer.intermediate_der.clone()],
        key: key.into(),
        server_cas: vec![s.ca.root_der.clone()],
        server_name: Some("vpn.example".into()),
        ..Default::default()
    };
    let mut p: PeerConfig = psk_peer("to-gw", "unused", "vpn.example", "unused", "10.1.0.0/16", "10.2.0.0/24");
    p.local_id = Identity::Ipv4(ALICE_IP.parse().unwrap());
    p.local_auth =
        LocalAuth::Eap(EapClient { identity: Some(user.into()), methods: vec![MethodType::Tls], tls: Some(tls) });
    p.remote_auth = RemoteAuth::Cert(s.ca.trust());
    p.children[0] = child_config("net", &["dynamic"], &["10.2.0.0/24"]);
    p.vips = vec!["0.0.0.0".parse().unwrap()];
    s.sim.add_null_cipher(ALICE_IP, wide(), vec![p]);
    let now = s.sim.now;
    s.sim.ep(ALICE_IP).initiate(now, "to-gw", addr(ALICE_IP, 500), addr(GW, 500)).unwrap();
    s.sim.run_until(Duration::from_secs(20), |sim| {
        settled(sim, ALICE_IP) && (child(sim.events(ALICE_IP)).is_some() || down(sim.events(GW)).is_some())
    });
    s
}

#[test]
fn eap_tls_with_a_client_certificate() {
    let mut s = eap_tls(64, "alice@example.org", "alice@example.org", None);
    assert!(child(s.sim.events(ALICE_IP)).is_some(), "{:?}\n{:?}", s.sim.events(ALICE_IP), s.sim.events(GW));
    assert_eq!(info(&mut s.sim, GW).eap_id.as_deref(), Some("alice@example.org"));
    // The TLS flights are larger than one EAP packet: several rounds carry them.
    let auth: Vec<_> = named_messages(&s.sim, 0).into_iter().filter(|m| m.1 == ExchangeType::IKE_AUTH).collect();
    assert!(auth.len() >= 8, "{} IKE_AUTH messages", auth.len());
    // RFC 5998: the client offered EAP-only authentication and EAP-TLS is mutual: the gateway's
    // first answer has neither CERT nor AUTH; EAP-TLS authenticates it, the last AUTH is the MSK's.
    assert!(auth[0].3.contains(&"N(EAP_ONLY_AUTHENTICATION)".to_string()), "{:?}", auth[0]);
    let first: Vec<&str> = auth[1].3.iter().map(String::as_str).collect();
    assert_eq!(first, ["IDr", "EAP"], "{first:?}");
    assert!(auth.last().unwrap().3.contains(&"AUTH".to_string()));
}

#[test]
fn eap_tls_refuses_a_certificate_of_another_user_or_ca() {
    // A certificate for bob, used with alice's EAP identity.
    let s = eap_tls(65, "alice@example.org", "bob@example.org", None);
    assert!(child(s.sim.events(ALICE_IP)).is_none(), "{:?}", s.sim.events(GW));
    let failures = auth_failures(s.sim.events(GW));
    assert!(
        failures.iter().any(|f| f.contains("alice@example.org") && f.contains("not for its EAP identity")),
        "{failures:?}"
    );
    assert!(s.sim.ep_ref(GW).established().is_empty());

    // A certificate from a CA the gateway does not trust.
    let other = pki::Ca::new("Other CA", pki::Alg::P256);
    let s = eap_tls(66, "alice@example.org", "alice@example.org", Some(&other));
    assert!(child(s.sim.events(ALICE_IP)).is_none());
    assert!(!auth_failures(s.sim.events(GW)).is_empty(), "{:?}", s.sim.events(GW));
    assert!(s.sim.ep_ref(GW).established().is_empty());
}

#[test]
fn eap_only_is_not_taken_with_a_method_that_does_not_authenticate_the_gateway() {
    // The client could run EAP-TLS and offers EAP-only, but the gateway runs MSCHAPv2: it proves
    // itself with its certificate as usual.
    let mut s = gateway(67, &[MethodType::MsChapV2], true);
    let mut p: PeerConfig = psk_peer("to-gw", "unused", "vpn.example", "unused", "10.1.0.0/16", "10.2.0.0/24");
    p.local_id = Identity::Ipv4(ALICE_IP.parse().unwrap());
    let (cert, key) = s.ca.issue(pki::Alg::P256, "alice@example.org", &["alice@example.org"], (2025, 2030));
    let tls = oxswan_eap::TlsPeerConfig {
        cert_chain: vec![cert],
        key: key.into(),
        server_cas: vec![s.ca.root_der.clone()],
        ..Default::default()
    };
    p.local_auth = LocalAuth::Eap(EapClient { identity: Some("alice".into()), methods: vec![], tls: Some(tls) });
    p.remote_auth = RemoteAuth::Cert(s.ca.trust());
    p.children[0] = child_config("net", &["dynamic"], &["10.2.0.0/24"]);
    p.vips = vec!["0.0.0.0".parse().unwrap()];
    s.sim.add_null_cipher(ALICE_IP, wide(), vec![p]);
    let mut own = SharedKeys::new();
    own.add_eap("alice", Secret::from_slice(b"alice's password"));
    s.sim.ep(ALICE_IP).set_credentials(Arc::new(own));
    let now = s.sim.now;
    s.sim.ep(ALICE_IP).initiate(now, "to-gw", addr(ALICE_IP, 500), addr(GW, 500)).unwrap();
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    assert!(child(s.sim.events(ALICE_IP)).is_some(), "{:?}", s.sim.events(GW));
    let auth: Vec<_> = named_messages(&s.sim, 0).into_iter().filter(|m| m.1 == ExchangeType::IKE_AUTH).collect();
    assert!(auth[0].3.contains(&"N(EAP_ONLY_AUTHENTICATION)".to_string()));
    assert!(auth[1].3.contains(&"AUTH".to_string()) && auth[1].3.contains(&"CERT".to_string()), "{:?}", auth[1]);
}

#[test]
fn an_ike_rekey_keeps_the_eap_identity() {
    // The new IKE SA is still alice's (§2.18): `status`, accounting and the uniqueness policy,
    // which looks for a client's other SAs by EAP identity, go by it.
    let mut s = gateway(59, &[MethodType::MsChapV2], true);
    client(&mut s, ALICE_IP, "alice", "alice's password", &[]);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    let now = s.sim.now;
    let sa = s.sim.ep(ALICE_IP).established()[0];
    s.sim.ep(ALICE_IP).rekey_ike(now, sa).unwrap();
    let rekeyed = |sim: &Sim| {
        sim.events(GW).iter().find_map(|e| match e {
            Event::IkeSaRekeyed { new, info, .. } => Some((*new, info.eap_id.clone())),
            _ => None,
        })
    };
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| rekeyed(sim).is_some()), "{:?}", s.sim.events(GW));
    let (new, eap_id) = rekeyed(&s.sim).unwrap();
    assert_eq!(eap_id.as_deref(), Some("alice"));
    assert_eq!(s.sim.ep(GW).info(new).unwrap().eap_id.as_deref(), Some("alice"));
}

/// Session resumption (RFC 5723) after EAP: the resumed IKE SA needs neither EAP nor the gateway's
/// certificate, two round trips in all, and the client is still its EAP identity, with the same
/// virtual IP.
#[test]
fn an_eap_client_resumes_without_eap_and_keeps_its_virtual_ip() {
    let mut s = gateway(58, &[MethodType::MsChapV2], true);
    client_with(&mut s, ALICE_IP, ("alice", "alice's password"), &[], true, true);
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    let first = s.sim.ep(GW).established()[0];
    let vip = s.sim.ep(GW).info(first).unwrap().remote_vips;
    assert_eq!(vip.len(), 1);
    let now = s.sim.now;
    let sa = s.sim.ep(ALICE_IP).established()[0];
    s.sim.ep(ALICE_IP).delete_ike(now, sa).unwrap();
    assert!(s.sim.run_until(Duration::from_secs(5), |sim| down(sim.events(ALICE_IP)).is_some()
        && sim.ep_ref(GW).established().is_empty()));
    s.sim.events.values_mut().for_each(Vec::clear);

    let from = s.sim.log.len();
    let now = s.sim.now;
    s.sim.ep(ALICE_IP).initiate(now, "to-gw", addr(ALICE_IP, 500), addr(GW, 500)).unwrap();
    assert!(s.sim.run_until(Duration::from_secs(10), |sim| settled(sim, ALICE_IP)));
    assert!(
        child(s.sim.events(ALICE_IP)).is_some(),
        "{:?}\n{:?}\n{:?}",
        s.sim.events(ALICE_IP),
        s.sim.events(GW),
        named_messages(&s.sim, from)
    );
    let seen: Vec<(String, ExchangeType, Vec<String>)> = named_messages(&s.sim, from)
        .into_iter()
        .map(|m| (m.0, m.1, m.3.into_iter().filter(|p| !p.starts_with("N(")).collect()))
        .collect();
    let m = |who: &str, e, p: &[&str]| (who.to_string(), e, p.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(
        seen,
        vec![
            m("alice", ExchangeType::IKE_SESSION_RESUME, &["No"]),
            m(GW, ExchangeType::IKE_SESSION_RESUME, &["No"]),
            m("alice", ExchangeType::IKE_AUTH, &["IDi", "IDr", "AUTH", "CP", "SA", "TSi", "TSr"]),
            m(GW, ExchangeType::IKE_AUTH, &["IDr", "AUTH", "CP", "SA", "TSi", "TSr"]),
        ]
    );
    let h = s.sim.ep(GW).established()[0];
    let info = s.sim.ep(GW).info(h).unwrap();
    assert!(info.resumed);
    assert_eq!(info.eap_id.as_deref(), Some("alice"), "still the EAP identity");
    assert_eq!(info.remote_vips, vip, "the same virtual IP");
}
