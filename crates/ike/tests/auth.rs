//! Shared keys looked up by the pair of identities when authenticating (RFC 7296 §2.15): one `%any`
//! connection on a gateway serves several peers, each with a key of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use oxswan_crypto::Secret;
use oxswan_ike::auth::{AuthError, SharedKeys};
use oxswan_ike::{DownReason, EndpointConfig, Event, LocalAuth, RemoteAuth};
use oxswan_wire::Identity;

const GW: &str = "192.0.2.10";

fn fqdn(s: &str) -> Identity {
    Identity::Fqdn(s.into())
}

/// A road warrior `id` at `ip` with its own key, to the gateway.
fn client(sim: &mut Sim, ip: &str, id: &str, key: &str) {
    let mut p = psk_peer("to-gw", id, "gw.example", key, &format!("{ip}/32"), "10.9.0.0/16");
    p.children[0] = child_config("net", &["dynamic"], &["10.9.0.0/16"]);
    sim.add(ip, EndpointConfig::default(), vec![p]);
}

fn connect(sim: &mut Sim, ip: &str) {
    let now = sim.now;
    sim.ep(ip).initiate(now, "to-gw", addr(ip, 500), addr(GW, 500)).unwrap();
}

#[test]
fn a_gateway_for_any_peer_finds_each_peers_own_key() {
    let mut sim = Sim::new(31, Link::default());
    // The gateway's one connection takes any peer identity; the keys live in its credentials.
    let mut gw = psk_peer("rw", "gw.example", "unused", "unused", "10.9.0.0/16", "0.0.0.0/0");
    gw.remote_id = None;
    gw.local_auth = LocalAuth::SharedKey;
    gw.remote_auth = RemoteAuth::SharedKey;
    gw.children[0] = child_config("net", &["10.9.0.0/16"], &["dynamic"]);
    sim.add(GW, EndpointConfig::default(), vec![gw]);
    let mut keys = SharedKeys::new();
    keys.add(vec![fqdn("gw.example"), fqdn("alice.example")], Secret::from_slice(b"alice's own key, 32 chars long"));
    keys.add(vec![fqdn("gw.example"), fqdn("carol.example")], Secret::from_slice(b"carol's own key, 32 chars long"));
    sim.ep(GW).set_credentials(Arc::new(keys));

    client(&mut sim, "192.0.2.1", "alice.example", "alice's own key, 32 chars long");
    client(&mut sim, "192.0.2.3", "carol.example", "carol's own key, 32 chars long");
    // No key names dave: as in strongSwan, a key that names the gateway alone still matches (here
    // alice's, the first), and dave's MAC does not verify with it. eve uses carol's key under her own
    // name, which finds alice's the same way.
    client(&mut sim, "192.0.2.4", "dave.example", "dave's own key, 32 characters");
    client(&mut sim, "192.0.2.5", "eve.example", "carol's own key, 32 chars long");
    for ip in ["192.0.2.1", "192.0.2.3", "192.0.2.4", "192.0.2.5"] {
        connect(&mut sim, ip);
    }
    sim.run_until(Duration::from_secs(10), |s| {
        ["192.0.2.1", "192.0.2.3", "192.0.2.4", "192.0.2.5"]
            .iter()
            .all(|ip| up(s.events(ip)) || down(s.events(ip)).is_some())
    });

    assert!(up(sim.events("192.0.2.1")) && child(sim.events("192.0.2.1")).is_some(), "alice is in");
    assert!(up(sim.events("192.0.2.3")) && child(sim.events("192.0.2.3")).is_some(), "carol is in");
    for ip in ["192.0.2.4", "192.0.2.5"] {
        assert_eq!(
            down(sim.events(ip)),
            Some(DownReason::PeerNotify(oxswan_wire::NotifyType::AUTHENTICATION_FAILED)),
            "{ip} is refused"
        );
    }
    let refusals: Vec<String> = sim
        .events(GW)
        .iter()
        .filter_map(|e| match e {
            Event::AuthFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(refusals, vec!["PSK authentication data does not verify (wrong PSK?)"; 2]);
    let ids: Vec<Identity> =
        sim.ep(GW).established().iter().filter_map(|sa| sim.ep(GW).info(*sa)).map(|i| i.remote_id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&fqdn("alice.example")) && ids.contains(&fqdn("carol.example")));
}

#[test]
fn a_peer_without_any_key_is_refused_and_told_authentication_failed() {
    let mut sim = Sim::new(32, Link::default());
    let mut gw = psk_peer("rw", "gw.example", "unused", "unused", "10.9.0.0/16", "0.0.0.0/0");
    gw.remote_id = None;
    gw.local_auth = LocalAuth::SharedKey;
    gw.remote_auth = RemoteAuth::SharedKey;
    sim.add(GW, EndpointConfig::default(), vec![gw]);
    client(&mut sim, "192.0.2.1", "alice.example", "alice's own key, 32 chars long");
    connect(&mut sim, "192.0.2.1");
    sim.run_until(Duration::from_secs(10), |s| down(s.events("192.0.2.1")).is_some());
    assert_eq!(
        down(sim.events("192.0.2.1")),
        Some(DownReason::PeerNotify(oxswan_wire::NotifyType::AUTHENTICATION_FAILED))
    );
    assert_eq!(
        down(sim.events(GW)),
        Some(DownReason::AuthFailed(AuthError::NoSharedKey {
            ours: "gw.example".into(),
            peer: "alice.example".into()
        }))
    );
}
