//! `[daemon] metrics` (issue 15): an oxswan gateway with pools serves Prometheus text while an
//! oxswan road warrior connects with EAP-MSCHAPv2, sends traffic, rekeys and leaves, and another
//! is refused for a wrong password. Each scrape is read for the values and checked by
//! `promtool check metrics` (Debian's `prometheus`).
//!
//! Topology: `common::lan` (the gateway `oxme1-gw` at 192.0.2.2, a NAT box, clients `oxme1-c0`,
//! `oxme1-c1`). Needs root, nftables and promtool (`bash .ci/run` installs them); elsewhere the
//! test says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../ike/tests/common/pki.rs"]
mod pki;

use std::net::SocketAddr;

use common::lan::*;
use common::scrape::*;
use common::{NETNS, NFT, PROMTOOL, require, sh};

fn ready() {
    require(&[&NETNS, &NFT, &PROMTOOL]);
}

const ESTABLISHED: &str = "oxswan_ike_sas{state=\"established\"}";
const CHILD_SAS: &str = "oxswan_child_sas";
const BYTES_IN: &str = "oxswan_child_sa_bytes_total{direction=\"in\"}";
const BYTES_OUT: &str = "oxswan_child_sa_bytes_total{direction=\"out\"}";
const PACKETS_IN: &str = "oxswan_child_sa_packets_total{direction=\"in\"}";
const PACKETS_OUT: &str = "oxswan_child_sa_packets_total{direction=\"out\"}";
const ONLINE: &str = "oxswan_pool_leases{pool=\"rw4\",state=\"online\"}";
const OFFLINE: &str = "oxswan_pool_leases{pool=\"rw4\",state=\"offline\"}";

#[test]
#[cfg_attr(not(all(have_netns, have_nft, have_promtool)), ignore = "needs root with ip, ping, iperf3, nft, promtool")]
fn a_gateway_scraped_through_a_road_warriors_visit_and_a_refused_one() {
    ready();
    let mut lan = Lan::new("oxme1", 2);
    let ca = pki::Ca::new("metrics", pki::Alg::P256);
    let (cert, key) = ca.issue_gateway("vpn.example");
    let pki = Pki { root: ca.root_der.clone(), intermediate: ca.intermediate_der.clone(), cert, key };
    let gw_at: SocketAddr = "127.0.0.1:9101".parse().unwrap();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-mschapv2")
        .replace("[daemon]\n", &format!("[daemon]\nmetrics = \"{gw_at}\"\n"));
    lan.oxswan("gw", &gw);
    assert!(lan.log("gw").contains(&format!("Prometheus metrics on http://{gw_at}/metrics")), "{}", lan.log("gw"));
    let gw_ns = lan.ns("gw");

    // Nothing yet; the pools' sizes are known (a /24 without its network and last address) from
    // the first snapshot on, published as the IKE thread starts.
    let s = scrape_until(&gw_ns, gw_at, 2, |s| s.samples.contains_key("oxswan_pool_addresses{pool=\"rw4\"}"));
    promtool(&s);
    for (series, want) in [
        (ESTABLISHED, 0.0),
        (CHILD_SAS, 0.0),
        ("oxswan_ike_handshakes_total", 0.0),
        ("oxswan_ike_half_open_sas", 0.0),
        ("oxswan_ike_cookie_mode", 0.0),
        ("oxswan_ike_cookies_sent_total", 0.0),
        ("oxswan_pool_addresses{pool=\"rw4\"}", 254.0),
        ("oxswan_pool_addresses{pool=\"rw6\"}", 254.0),
        (ONLINE, 0.0),
        (BYTES_IN, 0.0),
    ] {
        assert_eq!(s.get(series), want, "{series}");
    }
    // Anything but GET /metrics is refused.
    let a = ask(&gw_ns, gw_at, "GET / HTTP/1.1\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 404 Not Found\r\n"), "{a}");

    // The road warrior: EAP-MSCHAPv2, a virtual IP from rw4, its own metrics on IPv6 loopback.
    let c0_at: SocketAddr = "[::1]:9101".parse().unwrap();
    let client = oxswan_client_config(&lan, &pki.root, &format!("dns = \"none\"\nmetrics = \"{c0_at}\""));
    lan.oxswan("c0", &client);
    let up = lan.ox("c0", "up home --timeout 20");
    assert!(up.status.success(), "{}\n--- gateway\n{}", String::from_utf8_lossy(&up.stderr), lan.log("gw"));
    // 20 pings of 1000 octets of data: 1028-octet IP packets each way.
    let (n, size) = (20u32, 1028.0);
    let ping = sh(&format!("ip netns exec {} ping -c {n} -s 1000 -i 0.05 -W 2 -I 10.10.0.1 10.2.0.1", lan.ns("c0")));
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    let sent = f64::from(n) * size;
    let s = scrape_until(&gw_ns, gw_at, 5, |s| s.get(BYTES_IN) >= sent && s.get(BYTES_OUT) >= sent);
    promtool(&s);
    for (series, want) in
        [(ESTABLISHED, 1.0), (CHILD_SAS, 1.0), ("oxswan_ike_handshakes_total", 1.0), (ONLINE, 1.0), (OFFLINE, 0.0)]
    {
        assert_eq!(s.get(series), want, "{series}\n{}", s.text);
    }
    assert!(s.get(PACKETS_IN) >= f64::from(n) && s.get(PACKETS_OUT) >= f64::from(n), "{}", s.text);
    // The client's side counts the same traffic the other way round.
    let c = scrape_until(&lan.ns("c0"), c0_at, 5, |s| s.get(BYTES_OUT) >= sent);
    promtool(&c);
    assert_eq!((c.get(ESTABLISHED), c.get(CHILD_SAS)), (1.0, 1.0), "{}", c.text);
    assert!(c.get(BYTES_IN) >= sent, "{}", c.text);
    assert!(!c.text.contains("oxswan_pool_"), "a client has no pools:\n{}", c.text);

    // A wrong password: the gateway counts a failed handshake under its reason, the client too.
    let wrong = oxswan_client_config(&lan, &pki.root, "dns = \"none\"\nmetrics = \"127.0.0.1:9101\"")
        .replace("secret = \"alice's password\"", "secret = \"not alice's password\"");
    lan.oxswan("c1", &wrong);
    let up = lan.ox("c1", "up home --timeout 20");
    assert!(!up.status.success(), "a wrong password is refused");
    let failed = "oxswan_ike_handshake_failures_total{reason=\"auth_failed\"}";
    let s = scrape_until(&gw_ns, gw_at, 5, |s| s.samples.contains_key(failed));
    promtool(&s);
    assert_eq!(s.get(failed), 1.0, "{}", s.text);
    assert_eq!((s.get("oxswan_ike_handshakes_total"), s.get(ESTABLISHED)), (1.0, 1.0), "{}", s.text);
    // The client's EAP-MSCHAPv2 ends in the gateway's failure message: its own authentication failed.
    let c1 = scrape_until(&lan.ns("c1"), "127.0.0.1:9101".parse().unwrap(), 5, |s| s.samples.contains_key(failed));
    promtool(&c1);
    assert_eq!((c1.get(failed), c1.get("oxswan_ike_handshakes_total")), (1.0, 0.0), "{}", c1.text);

    // A CHILD SA rekey and the end of the IKE SA: the totals keep the traffic of the pairs that
    // are gone; the lease stays reserved for alice, offline.
    let before = (s.get(BYTES_IN), s.get(BYTES_OUT), s.get(PACKETS_IN));
    let rekey = lan.ox("c0", "rekey home");
    assert!(rekey.status.success(), "{}", String::from_utf8_lossy(&rekey.stderr));
    let s =
        scrape_until(&gw_ns, gw_at, 10, |s| s.get("oxswan_child_sa_rekeys_total") == 1.0 && s.get(CHILD_SAS) == 1.0);
    assert!(s.get(BYTES_IN) >= before.0 && s.get(BYTES_OUT) >= before.1, "{}", s.text);
    // The new pair's traffic comes on top of the old one's.
    let ping = sh(&format!("ip netns exec {} ping -c 5 -s 1000 -i 0.05 -W 2 -I 10.10.0.1 10.2.0.1", lan.ns("c0")));
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    let more = before.0 + 5.0 * size;
    scrape_until(&gw_ns, gw_at, 5, |s| s.get(BYTES_IN) >= more && s.get(BYTES_OUT) >= before.1 + 5.0 * size);
    let before = (more, before.1 + 5.0 * size, before.2 + 5.0);
    let down = lan.ox("c0", "down home");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let s = scrape_until(&gw_ns, gw_at, 10, |s| s.get(ESTABLISHED) == 0.0 && s.get(CHILD_SAS) == 0.0);
    promtool(&s);
    assert!(
        s.get(BYTES_IN) >= before.0 && s.get(BYTES_OUT) >= before.1 && s.get(PACKETS_IN) >= before.2,
        "the totals never go back: {before:?}\n{}",
        s.text
    );
    assert_eq!((s.get(ONLINE), s.get(OFFLINE)), (0.0, 1.0), "{}", s.text);
    assert_eq!(s.get("oxswan_ike_handshakes_total"), 1.0, "{}", s.text);
    eprintln!(
        "gateway: {} octets in, {} out through {} CHILD SAs (one rekeyed), {} handshake(s), failures: {:?}",
        s.get(BYTES_IN),
        s.get(BYTES_OUT),
        1.0 + s.get("oxswan_child_sa_rekeys_total"),
        s.get("oxswan_ike_handshakes_total"),
        s.samples.iter().filter(|(k, _)| k.contains("failures")).collect::<Vec<_>>()
    );
}
