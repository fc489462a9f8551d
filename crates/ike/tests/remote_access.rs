//! Road warriors on one gateway (RFC 7296 §2.19, §3.15): virtual IPs lent from pools by identity,
//! DNS servers with them, the `dynamic` selectors narrowed to the virtual IP, the same address
//! again for the same identity, and INTERNAL_ADDRESS_FAILURE from an exhausted pool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use oxswan_ike::leases::{MemoryLeases, PoolAttributes};
use oxswan_ike::{DownReason, EndpointConfig, Event, PeerConfig, Unique};
use oxswan_pool::{AddrRange, Pool};
use oxswan_wire::NotifyType;

const GW: &str = "192.0.2.10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The gateway: one connection for any client with pools `rw4` (`v4`) and `rw6` (`fd10::/120`),
/// clients' selectors `dynamic`.
fn gateway(sim: &mut Sim, v4: &str) {
    gateway_unique(sim, v4, Unique::No);
}

fn gateway_unique(sim: &mut Sim, v4: &str, unique: Unique) {
    let mut gw = psk_peer("rw", "gw.example", "unused", "road warriors' key", "10.2.0.0/24", "0.0.0.0/0");
    gw.remote_id = None;
    gw.children[0] = child_config("net", &["10.2.0.0/24", "fd02::/64"], &["dynamic"]);
    gw.pools = vec!["rw4".into(), "rw6".into()];
    gw.unique = unique;
    sim.add_null_cipher(GW, wide(), vec![gw]);
    let mut leases = MemoryLeases::new();
    let attrs = PoolAttributes { dns: vec![ip("10.10.0.53")], ..Default::default() };
    leases.insert(Pool::new("rw4", AddrRange::parse(v4).unwrap(), Duration::from_secs(3600)), attrs);
    let attrs6 = PoolAttributes { dns: vec![ip("fd10::53")], ..Default::default() };
    leases.insert(Pool::new("rw6", AddrRange::parse("fd10::/120").unwrap(), Duration::from_secs(3600)), attrs6);
    sim.ep(GW).set_leases(Box::new(leases));
}

/// A client `id` asking for the virtual IPs `vips`.
fn client_config(id: &str, vips: &[&str]) -> PeerConfig {
    let mut p = psk_peer("to-gw", id, "gw.example", "road warriors' key", "10.1.0.0/16", "10.2.0.0/24");
    p.children[0] = child_config("net", &["dynamic"], &["10.2.0.0/24", "fd02::/64"]);
    p.vips = vips.iter().map(|v| ip(v)).collect();
    p
}

fn connect(sim: &mut Sim, at: &str) {
    let now = sim.now;
    sim.ep(at).initiate(now, "to-gw", addr(at, 500), addr(GW, 500)).unwrap();
}

fn settled(sim: &Sim, clients: &[&str]) -> bool {
    clients.iter().all(|c| child(sim.events(c)).is_some() || down(sim.events(c)).is_some())
}

fn up_info(sim: &mut Sim, at: &str) -> oxswan_ike::IkeSaInfo {
    info(sim, at)
}

#[test]
fn a_client_gets_a_virtual_ip_of_each_family_with_dns_and_narrowed_selectors() {
    let mut sim = null_cipher_pair_free(41);
    gateway(&mut sim, "10.10.0.0/24");
    sim.add_null_cipher(ALICE_IP, wide(), vec![client_config("alice.example", &["0.0.0.0", "::"])]);
    connect(&mut sim, ALICE_IP);
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &[ALICE_IP])), "{:?}", sim.events(ALICE_IP));

    // IKE_AUTH { ..., CP(CFG_REQUEST), SA, TSi, TSr } --> <-- { ..., CP(CFG_REPLY), SA, TSi, TSr }
    let auth: Vec<_> =
        named_messages(&sim, 0).into_iter().filter(|m| m.1 == oxswan_wire::ExchangeType::IKE_AUTH).collect();
    assert!(auth[0].3.contains(&"CP".to_string()), "{auth:?}");
    assert!(auth[1].3.contains(&"CP".to_string()), "{auth:?}");

    let client = up_info(&mut sim, ALICE_IP);
    assert_eq!(client.local_vips, vec![ip("10.10.0.1"), ip("fd10::1")], "the first address of each pool");
    assert_eq!(client.dns, vec![ip("10.10.0.53"), ip("fd10::53")]);
    let gw = up_info(&mut sim, GW);
    assert_eq!(gw.remote_vips, client.local_vips);

    // §2.9: the client offered 0.0.0.0/0 and ::/0 for itself; the gateway narrowed them to its
    // addresses.
    let c = child(sim.events(ALICE_IP)).unwrap();
    assert_eq!(c.local_ts, vec![ts("10.10.0.1/32"), ts("fd10::1/128")]);
    assert_eq!(c.remote_ts, vec![ts("10.2.0.0/24"), ts("fd02::/64")]);
    let g = child(sim.events(GW)).unwrap();
    assert_eq!(g.remote_ts, c.local_ts);
}

#[test]
fn the_same_identity_gets_the_same_address_again_and_others_get_their_own() {
    let mut sim = null_cipher_pair_free(42);
    gateway(&mut sim, "10.10.0.0/24");
    let clients = ["192.0.2.1", "192.0.2.3", "192.0.2.4"];
    for (c, id) in clients.iter().zip(["alice.example", "bob.example", "carol.example"]) {
        sim.add_null_cipher(c, wide(), vec![client_config(id, &["0.0.0.0"])]);
        connect(&mut sim, c);
    }
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &clients)));
    let vips: Vec<IpAddr> = clients.iter().map(|c| up_info(&mut sim, c).local_vips[0]).collect();
    let mut distinct = vips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one address each: {vips:?}");

    // Alice goes and comes back from another address: the lease is hers.
    let now = sim.now;
    let sa = sim.ep(clients[0]).established()[0];
    sim.ep(clients[0]).delete_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| down(s.events(clients[0])).is_some()));
    sim.add_null_cipher("192.0.2.9", wide(), vec![client_config("alice.example", &["0.0.0.0"])]);
    connect(&mut sim, "192.0.2.9");
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &["192.0.2.9"])));
    assert_eq!(up_info(&mut sim, "192.0.2.9").local_vips, vec![vips[0]]);
}

#[test]
fn an_exhausted_pool_answers_internal_address_failure_and_keeps_nothing() {
    let mut sim = null_cipher_pair_free(43);
    // One address only.
    gateway(&mut sim, "10.10.0.7-10.10.0.7");
    sim.add_null_cipher(ALICE_IP, wide(), vec![client_config("alice.example", &["0.0.0.0"])]);
    connect(&mut sim, ALICE_IP);
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &[ALICE_IP])));
    assert_eq!(up_info(&mut sim, ALICE_IP).local_vips, vec![ip("10.10.0.7")]);

    sim.add_null_cipher("192.0.2.3", wide(), vec![client_config("bob.example", &["0.0.0.0"])]);
    connect(&mut sim, "192.0.2.3");
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &["192.0.2.3"])));
    assert_eq!(
        down(sim.events("192.0.2.3")),
        Some(DownReason::PeerNotify(NotifyType::INTERNAL_ADDRESS_FAILURE)),
        "the client is told why"
    );
    assert!(
        sim.events(GW).iter().any(|e| matches!(e, Event::AddressFailure { owner, .. } if owner == "bob.example")),
        "the gateway says whom it could not serve"
    );
    assert!(
        sim.events(GW).iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::AddressFailure(_), .. })),
        "{:?}",
        sim.events(GW)
    );
    assert_eq!(sim.ep(GW).established().len(), 1, "only alice's SA stays");
}

#[test]
fn a_gateway_without_an_address_for_the_client_is_left_by_the_client() {
    // The gateway has no pools: it ignores CP (§3.15), and the client, which needs an address,
    // gives up the IKE SA.
    let mut sim = null_cipher_pair_free(44);
    let mut gw = psk_peer("rw", "gw.example", "unused", "road warriors' key", "10.2.0.0/24", "0.0.0.0/0");
    gw.remote_id = None;
    gw.children[0] = child_config("net", &["10.2.0.0/24"], &["0.0.0.0/0"]);
    sim.add_null_cipher(GW, wide(), vec![gw]);
    sim.add_null_cipher(ALICE_IP, wide(), vec![client_config("alice.example", &["0.0.0.0"])]);
    connect(&mut sim, ALICE_IP);
    assert!(sim.run_until(Duration::from_secs(10), |s| down(s.events(ALICE_IP)).is_some()));
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::NoVirtualIp));
    assert!(sim.run_until(Duration::from_secs(5), |s| down(s.events(GW)).is_some()), "the gateway's SA goes too");
}

#[test]
fn an_ike_rekey_keeps_the_lease_and_the_last_sa_gives_it_back() {
    let mut sim = null_cipher_pair_free(45);
    gateway(&mut sim, "10.10.0.7-10.10.0.7");
    sim.add_null_cipher(ALICE_IP, wide(), vec![client_config("alice.example", &["0.0.0.0"])]);
    connect(&mut sim, ALICE_IP);
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &[ALICE_IP])));
    let now = sim.now;
    let sa = sim.ep(GW).established()[0];
    sim.ep(GW).rekey_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        s.events(GW).iter().any(|e| matches!(e, Event::IkeSaDown { reason: DownReason::Rekeyed, .. }))
    }));
    let gw = up_info(&mut sim, GW);
    assert_eq!(gw.remote_vips, vec![ip("10.10.0.7")], "the new IKE SA holds the address");

    // While alice holds it, bob cannot have the one address.
    sim.add_null_cipher("192.0.2.3", wide(), vec![client_config("bob.example", &["0.0.0.0"])]);
    connect(&mut sim, "192.0.2.3");
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &["192.0.2.3"])));
    assert_eq!(down(sim.events("192.0.2.3")), Some(DownReason::PeerNotify(NotifyType::INTERNAL_ADDRESS_FAILURE)));

    // Alice goes: the old IKE SA gave back its reference at the rekey, the new one now. After the
    // grace time the address is free for someone else.
    let now = sim.now;
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).delete_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| s.ep_ref(GW).established().is_empty()));
    sim.advance(Duration::from_secs(3601));
    sim.add_null_cipher("192.0.2.4", wide(), vec![client_config("carol.example", &["0.0.0.0"])]);
    connect(&mut sim, "192.0.2.4");
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &["192.0.2.4"])));
    assert_eq!(up_info(&mut sim, "192.0.2.4").local_vips, vec![ip("10.10.0.7")], "{:?}", sim.events("192.0.2.4"));
}

/// What metrics read: the SAs by state on both sides, and each pool's size and leases online and
/// offline, through a client's connection and its departure.
#[test]
fn sa_counts_and_pool_usage_follow_a_client() {
    use oxswan_ike::SaCounts;
    use oxswan_ike::leases::PoolUsage;
    let mut sim = null_cipher_pair_free(46);
    gateway(&mut sim, "10.10.0.0/24");
    let usage = |sim: &Sim| sim.ep_ref(GW).pool_usage();
    let pool = |name: &str, online, offline| PoolUsage { pool: name.into(), size: 254, online, offline };
    assert_eq!(usage(&sim), vec![pool("rw4", 0, 0), pool("rw6", 0, 0)]);
    sim.add_null_cipher(ALICE_IP, wide(), vec![client_config("alice.example", &["0.0.0.0"])]);
    connect(&mut sim, ALICE_IP);
    assert_eq!(sim.ep_ref(ALICE_IP).sa_counts(), SaCounts { connecting: 1, ..SaCounts::default() });
    assert_eq!(sim.ep_ref(GW).sa_counts(), SaCounts::default());
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &[ALICE_IP])));
    for at in [ALICE_IP, GW] {
        assert_eq!(sim.ep_ref(at).sa_counts(), SaCounts { established: 1, ..SaCounts::default() }, "{at}");
    }
    assert_eq!(usage(&sim), vec![pool("rw4", 1, 0), pool("rw6", 0, 0)], "an IPv4 address only");

    let now = sim.now;
    let sa = sim.ep(ALICE_IP).established()[0];
    sim.ep(ALICE_IP).delete_ike(now, sa).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| s.ep_ref(GW).established().is_empty()));
    assert_eq!(usage(&sim), vec![pool("rw4", 0, 1), pool("rw6", 0, 0)], "kept for alice, offline");
    let gw = sim.ep_ref(GW).sa_counts();
    assert_eq!((gw.established, gw.connecting, gw.half_open), (0, 0, 0), "{gw:?}");
    // Closed SAs linger for retransmissions, then go.
    sim.advance(Duration::from_secs(11));
    assert_eq!(sim.ep_ref(GW).sa_counts(), SaCounts::default());
    assert_eq!(sim.ep_ref(ALICE_IP).sa_counts(), SaCounts::default());
}

/// Whole messages (no IKE fragments), so that the named payloads can be read.
fn wide() -> EndpointConfig {
    EndpointConfig { fragment_size: 65_535, ..EndpointConfig::default() }
}

fn null_cipher_pair_free(seed: u64) -> Sim {
    Sim::new(seed, Link::default())
}

/// Alice connects from `first`, then again from `second` (with INITIAL_CONTACT as a client sends
/// on its first connection, or without as on another device of hers), to a gateway with `unique`.
fn twice(seed: u64, unique: Unique, first: &str, second: &str, initial_contact: bool) -> Sim {
    let mut sim = null_cipher_pair_free(seed);
    gateway_unique(&mut sim, "10.10.0.0/24", unique);
    // The first connection's INITIAL_CONTACT finds nothing; the flag matters for the second, which
    // may come from the same endpoint.
    let mut c = client_config("alice.example", &["0.0.0.0"]);
    c.initial_contact = initial_contact;
    sim.add_null_cipher(first, wide(), vec![c]);
    connect(&mut sim, first);
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &[first])));
    if second != first {
        let mut c = client_config("alice.example", &["0.0.0.0"]);
        c.initial_contact = initial_contact;
        sim.add_null_cipher(second, wide(), vec![c]);
    }
    let now = sim.now;
    sim.ep(second).initiate(now, "to-gw", addr(second, 4500), addr(GW, 500)).unwrap();
    sim.run_until(Duration::from_secs(10), |s| {
        s.events(second).iter().filter(|e| matches!(e, Event::ChildSaReady { .. })).count()
            >= if second == first { 2 } else { 1 }
    });
    sim.run_until(Duration::from_secs(5), |_| false);
    sim
}

fn gateway_downs(sim: &Sim) -> Vec<DownReason> {
    sim.events(GW)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn unique_no_lets_initial_contact_replace_the_stale_sa() {
    let mut sim = twice(46, Unique::No, ALICE_IP, "192.0.2.3", true);
    assert_eq!(gateway_downs(&sim), vec![DownReason::PeerRestarted]);
    assert_eq!(sim.ep_ref(GW).established().len(), 1);
    // The restarted client takes its address over from the SA it replaces.
    assert_eq!(up_info(&mut sim, "192.0.2.3").local_vips, up_info(&mut sim, ALICE_IP).local_vips);
    // Another device, no INITIAL_CONTACT: an address of its own (checked below: both stay).
    // Without INITIAL_CONTACT (another device of alice's) both stay.
    let mut sim = twice(51, Unique::No, ALICE_IP, "192.0.2.3", false);
    assert_eq!(gateway_downs(&sim), Vec::new());
    assert_eq!(sim.ep_ref(GW).established().len(), 2);
    assert_ne!(up_info(&mut sim, "192.0.2.3").local_vips, up_info(&mut sim, ALICE_IP).local_vips);
}

#[test]
fn unique_never_keeps_both_even_with_initial_contact() {
    let sim = twice(47, Unique::Never, ALICE_IP, "192.0.2.3", true);
    assert_eq!(gateway_downs(&sim), Vec::new());
    assert_eq!(sim.ep_ref(GW).established().len(), 2);
}

#[test]
fn unique_replace_deletes_the_old_sa() {
    let sim = twice(48, Unique::Replace, ALICE_IP, "192.0.2.3", false);
    assert_eq!(gateway_downs(&sim), vec![DownReason::Replaced]);
    assert_eq!(sim.ep_ref(GW).established().len(), 1);
    assert_eq!(down(sim.events(ALICE_IP)), Some(DownReason::PeerDeleted), "the old one is told");
}

#[test]
fn unique_keep_refuses_a_second_sa_from_elsewhere_but_not_from_the_same_host() {
    let sim = twice(49, Unique::Keep, ALICE_IP, "192.0.2.3", false);
    assert_eq!(gateway_downs(&sim), vec![DownReason::Duplicate]);
    assert_eq!(sim.ep_ref(GW).established().len(), 1);
    assert!(
        matches!(down(sim.events("192.0.2.3")), Some(DownReason::PeerDeleted)),
        "{:?}",
        down(sim.events("192.0.2.3"))
    );
    assert!(down(sim.events(ALICE_IP)).is_none(), "the first stays");

    // From the address of the first: taken for a reauthentication, both stay.
    let sim = twice(50, Unique::Keep, ALICE_IP, ALICE_IP, false);
    assert_eq!(gateway_downs(&sim), Vec::new());
    assert_eq!(sim.ep_ref(GW).established().len(), 2);

    // INITIAL_CONTACT still replaces the stale SA, as strongSwan.
    let sim = twice(52, Unique::Keep, ALICE_IP, "192.0.2.3", true);
    assert_eq!(gateway_downs(&sim), vec![DownReason::PeerRestarted]);
    assert_eq!(sim.ep_ref(GW).established().len(), 1);
}

#[test]
fn a_dual_stack_client_on_an_ipv4_only_gateway_gets_its_ipv4_address() {
    let mut sim = null_cipher_pair_free(53);
    gateway(&mut sim, "10.10.0.0/24");
    let mut gw = psk_peer("rw", "gw.example", "unused", "road warriors' key", "10.2.0.0/24", "0.0.0.0/0");
    gw.remote_id = None;
    gw.children[0] = child_config("net", &["10.2.0.0/24"], &["dynamic"]);
    gw.pools = vec!["rw4".into()];
    sim.ep(GW).set_peers(vec![gw]);
    let mut c = client_config("alice.example", &["0.0.0.0", "::"]);
    c.children[0] = child_config("net", &["dynamic"], &["10.2.0.0/24"]);
    sim.add_null_cipher(ALICE_IP, wide(), vec![c]);
    connect(&mut sim, ALICE_IP);
    assert!(sim.run_until(Duration::from_secs(10), |s| settled(s, &[ALICE_IP])));
    assert_eq!(up_info(&mut sim, ALICE_IP).local_vips, vec![ip("10.10.0.1")], "{:?}", sim.events(GW));
    assert_eq!(child(sim.events(ALICE_IP)).unwrap().local_ts, vec![ts("10.10.0.1/32")]);
}
