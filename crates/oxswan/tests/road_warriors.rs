//! Road warriors on an oxswan gateway, and oxswan as a road warrior (issue 13): the stock clients
//! of Windows, macOS/iOS and Android emulated with strongSwan's charon (their proposals, identities
//! and EAP-MSCHAPv2 with virtual IPs), all behind one NAT box; a wrong password; an exhausted pool;
//! EAP-MD5; eight clients at once; oxswan as the client of a charon gateway with pools.
//!
//! Topology: the gateway `P-gw` (192.0.2.2, protected 10.2.0.1 and fd02::1 on lo) and the NAT box
//! `P-nat` (192.0.2.3 outside, masquerading with random ports) whose bridge joins the clients
//! `P-cN` (198.51.100.(10+N)). Needs root, strongSwan with libcharon-extauth-plugins, nftables
//! (`bash .ci/run` installs them); elsewhere each test says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../ike/tests/common/pki.rs"]
mod pki;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::lan::*;
use common::ok;

fn pki() -> Pki {
    gateway_pki(&pki::Ca::new("road warriors", pki::Alg::P256))
}

/// The gateway's certificate for vpn.example from `ca`, with the CA's certificates.
fn gateway_pki(ca: &pki::Ca) -> Pki {
    let (cert, key) = ca.issue_gateway("vpn.example");
    Pki { root: ca.root_der.clone(), intermediate: ca.intermediate_der.clone(), cert, key }
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn the_stock_clients_through_a_nat_box() {
    ready();
    let stocks = [WINDOWS, WINDOWS_SHA256, IOS, MACOS_ECP, ANDROID, ANDROID_MODP];
    let mut lan = Lan::new("rws", stocks.len());
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    let mut table = Vec::new();
    for (i, s) in stocks.iter().enumerate() {
        let user = USERS[i];
        let vips = connect(&mut lan, &pki, i, *s, user, &format!("{user}'s password")).unwrap_or_else(|e| {
            panic!("{}: {e}\n--- gateway\n{}\n--- charon\n{}", s.name, lan.log("gw"), lan.charon_log(&format!("c{i}")))
        });
        let v4 = vips
            .iter()
            .find(|v| v.contains('.'))
            .cloned()
            .unwrap_or_else(|| panic!("{}: no IPv4 virtual IP: {vips:?}", s.name));
        assert!(v4.starts_with("10.10.0."), "{}: {v4}", s.name);
        assert!(ping(&lan, i, &v4, "10.2.0.1"), "{}: ping from {v4}\n{}", s.name, lan.log("gw"));
        if s.vips.contains("::") {
            let v6 = vips
                .iter()
                .find(|v| v.contains(':'))
                .cloned()
                .unwrap_or_else(|| panic!("{}: no IPv6 virtual IP: {vips:?}", s.name));
            assert!(v6.starts_with("fd10::"), "{}: {v6}", s.name);
            assert!(ping(&lan, i, &v6, "fd02::1"), "{}: ping6 from {v6}\n{}", s.name, lan.log("gw"));
        }
        // The DNS servers reached charon (it has no resolver plugin and says it cannot apply them).
        let log = lan.charon_log(&format!("c{i}"));
        assert!(log.contains("INTERNAL_IP4_DNS"), "{}: no DNS attribute in the reply\n{log}", s.name);
        table.push(format!("| {:<20} | {:<58} | EAP-MSCHAPv2 | {} |", s.name, s.ike, vips.join(", ")));
    }
    let sas = gateway_sas(&lan);
    assert_eq!(sas.len(), stocks.len(), "{sas:?}");
    for (i, s) in stocks.iter().enumerate() {
        assert!(sas.iter().any(|(eap, vips)| eap == USERS[i] && !vips.is_empty()), "{}: {sas:?}", s.name);
    }
    let all: Vec<&String> = sas.iter().flat_map(|(_, v)| v).collect();
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(all.len(), distinct.len(), "every client its own addresses: {sas:?}");
    eprintln!("client emulation × method × virtual IPs:\n{}", table.join("\n"));
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn a_wrong_password_and_an_exhausted_pool_are_refused_and_leave_nothing() {
    ready();
    let mut lan = Lan::new("rwf", 3);
    let pki = pki();
    // One IPv4 address in the pool.
    let gw = gateway_config(&lan, &pki, "10.10.0.7-10.10.0.7", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    let vips = connect(&mut lan, &pki, 0, WINDOWS, "alice", "alice's password").unwrap();
    assert_eq!(vips, vec!["10.10.0.7"]);

    // A wrong password: charon gives up; the gateway logs which user failed and keeps nothing.
    let refused = connect(&mut lan, &pki, 1, WINDOWS, "bob", "not bob's password");
    assert!(refused.is_err(), "{refused:?}");
    assert!(wait(5, || lan.log("gw").contains("EAP for bob")), "the gateway names the user:\n{}", lan.log("gw"));
    // The pool is exhausted: INTERNAL_ADDRESS_FAILURE.
    let exhausted = connect(&mut lan, &pki, 2, WINDOWS, "carol", "carol's password");
    assert!(exhausted.is_err(), "{exhausted:?}");
    assert!(lan.charon_log("c2").contains("N(INT_ADDR_FAIL)"), "{}", lan.charon_log("c2"));
    assert!(lan.log("gw").contains("no virtual IP for carol"), "{}", lan.log("gw"));
    assert!(
        wait(40, || gateway_sas(&lan).len() == 1),
        "only alice's IKE SA stays: {:?}\n{}",
        gateway_sas(&lan),
        lan.log("gw")
    );
    assert_eq!(gateway_sas(&lan), vec![("alice".to_owned(), vec!["10.10.0.7".to_owned()])]);
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn eap_md5() {
    ready();
    let mut lan = Lan::new("rwm", 1);
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-md5");
    lan.oxswan("gw", &gw);
    let s = Stock { name: "charon EAP-MD5", method: "eap-md5", ..IOS };
    let vips = connect(&mut lan, &pki, 0, s, "alice", "alice's password")
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", lan.log("gw"), lan.charon_log("c0")));
    assert_eq!(vips, vec!["10.10.0.1"]);
    assert!(ping(&lan, 0, "10.10.0.1", "10.2.0.1"));
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn eight_clients_at_once() {
    ready();
    let n = 8;
    let mut lan = Lan::new("rw8", n);
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    for (i, user) in USERS.iter().enumerate().take(n) {
        let conf = client_conf(&lan, i, IOS, user, &format!("{user}'s password"));
        lan.charon(&format!("c{i}"), &conf, &[("x509ca/root.der", pki.root.clone())]);
    }
    // All initiate at once.
    let start = Instant::now();
    let pids: Vec<u32> = lan.charons.iter().map(|(_, c)| c.id()).collect();
    let initiations: Vec<_> = pids
        .iter()
        .map(|pid| {
            Command::new("sh")
                .args(["-c", &format!("nsenter -t {pid} -m -n swanctl --initiate --child net --timeout 30")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in initiations.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "client {i}: {}\n{}", String::from_utf8_lossy(&o.stdout), lan.log("gw"));
    }
    let elapsed = start.elapsed();
    for i in 0..n {
        let vips = charon_vips(&lan, &format!("c{i}"));
        assert_eq!(vips.len(), 1, "client {i}: {vips:?}");
        assert!(ping(&lan, i, &vips[0], "10.2.0.1"), "client {i} pings from {}", vips[0]);
    }
    assert_eq!(gateway_sas(&lan).len(), n);
    eprintln!(
        "{n} clients up (IKE_SA_INIT to CHILD SA, EAP-MSCHAPv2, through one NAT) in {:.2} s",
        elapsed.as_secs_f64()
    );
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn oxswan_as_the_client_of_a_charon_gateway_with_pools() {
    ready();
    let mut lan = Lan::new("rwo", 1);
    let pki = pki();
    // charon is the gateway, in the gateway's host.
    let conf = format!(
        "connections {{\n rw {{\n  version = 2\n  local_addrs = {GW_IP}\n  pools = rw4\n  proposals = aes256gcm16-prfsha256-x25519\n  \
         local {{\n   auth = pubkey\n   certs = cert.der\n   id = vpn.example\n  }}\n  \
         remote {{\n   auth = eap-mschapv2\n   eap_id = %any\n  }}\n  \
         children {{\n   net {{\n    local_ts = 10.2.0.0/24\n    esp_proposals = aes256gcm16\n   }}\n  }}\n }}\n}}\n\
         pools {{\n rw4 {{\n  addrs = 10.20.0.0/24\n  dns = 10.20.0.53\n }}\n}}\n\
         secrets {{\n eap-alice {{\n  id = alice\n  secret = \"alice's password\"\n }}\n}}\n"
    );
    lan.charon(
        "gw",
        &conf,
        &[
            ("x509/cert.der", pki.cert.clone()),
            ("x509/int.der", pki.intermediate.clone()),
            ("x509ca/root.der", pki.root.clone()),
            ("private/key.der", pki.key.clone()),
        ],
    );
    // The client's resolver: `ip netns exec` binds /etc/netns/NS/resolv.conf over /etc/resolv.conf.
    let etc = PathBuf::from(format!("/etc/netns/{}", lan.ns("c0")));
    std::fs::create_dir_all(&etc).unwrap();
    let original = "nameserver 198.51.100.53\n";
    std::fs::write(etc.join("resolv.conf"), original).unwrap();
    let client = oxswan_client_config(&lan, &pki.root, "dns = \"resolv.conf\"\n");
    lan.oxswan("c0", &client);
    let up = lan.ox("c0", "up home --timeout 20");
    assert!(
        up.status.success(),
        "{}\n--- oxswan\n{}\n--- charon\n{}",
        String::from_utf8_lossy(&up.stderr),
        lan.log("c0"),
        lan.charon_log("gw")
    );
    let st = lan.status("c0");
    let sa = &st["ike_sas"][0];
    assert_eq!(sa["local_vips"], serde_json::json!(["10.20.0.1"]), "{st}");
    assert_eq!(sa["dns"], serde_json::json!(["10.20.0.53"]), "{st}");
    let addrs = ok(&format!("ip -n {} addr show oxswan0", lan.ns("c0")));
    assert!(addrs.contains("10.20.0.1/32"), "the virtual IP is on the TUN device: {addrs}");
    assert!(ping(&lan, 0, "10.20.0.1", "10.2.0.1"), "{}", lan.log("c0"));
    let resolv = std::fs::read_to_string(etc.join("resolv.conf")).unwrap();
    assert!(resolv.lines().any(|l| l == "nameserver 10.20.0.53"), "{resolv}");
    assert!(resolv.find("10.20.0.53") < resolv.find("198.51.100.53"), "ours first: {resolv}");
    let text = String::from_utf8_lossy(&lan.ox("c0", "status").stdout).into_owned();
    assert!(text.contains("local virtual IPs 10.20.0.1") && text.contains("DNS 10.20.0.53"), "{text}");

    let down = lan.ox("c0", "down home");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(wait(5, || std::fs::read_to_string(etc.join("resolv.conf")).unwrap() == original), "resolv.conf restored");
    let addrs = ok(&format!("ip -n {} addr show oxswan0", lan.ns("c0")));
    assert!(!addrs.contains("10.20.0.1"), "the virtual IP is gone: {addrs}");
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn eap_tls_with_a_client_certificate() {
    ready();
    let mut lan = Lan::new("rwt", 2);
    let ca = pki::Ca::new("road warriors", pki::Alg::P256);
    let pki = gateway_pki(&ca);
    // The gateway checks the clients' certificates against the same CA.
    std::fs::write(lan.dir.join("root.der"), &pki.root).unwrap();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-tls").replace(
        "eap_id = \"%any\"\n",
        &format!("eap_id = \"%any\"\ncacerts = [\"{}/root.der\"]\n", lan.dir.display()),
    );
    lan.oxswan("gw", &gw);
    let client = |user: &str, cert_for: &str| {
        let (cert, key) = ca.issue(pki::Alg::P256, cert_for, &[cert_for], (2025, 2030));
        let conf = format!(
            "connections {{\n rw {{\n  version = 2\n  remote_addrs = {GW_IP}\n  vips = 0.0.0.0\n  proposals = aes256-sha256-modp2048\n  \
             local {{\n   auth = eap-tls\n   certs = client.der\n   id = {user}\n  }}\n  remote {{\n   auth = pubkey\n   id = vpn.example\n  }}\n  \
             children {{\n   net {{\n    remote_ts = 10.2.0.0/24\n    esp_proposals = aes256-sha256\n   }}\n  }}\n }}\n}}\n"
        );
        let files = vec![
            ("x509ca/root.der", pki.root.clone()),
            ("x509/int.der", pki.intermediate.clone()),
            ("x509/client.der", cert),
            ("private/client.der", key),
        ];
        (conf, files)
    };
    let (conf, files) = client("alice@example.org", "alice@example.org");
    lan.charon("c0", &conf, &files);
    let up = lan.swanctl("c0", "--initiate --child net --timeout 20");
    assert!(
        up.status.success(),
        "{}\n--- gateway\n{}\n--- charon\n{}",
        String::from_utf8_lossy(&up.stdout),
        lan.log("gw"),
        lan.charon_log("c0")
    );
    let vips = charon_vips(&lan, "c0");
    assert_eq!(vips, vec!["10.10.0.1"]);
    assert!(ping(&lan, 0, "10.10.0.1", "10.2.0.1"));
    assert_eq!(gateway_sas(&lan), vec![("alice@example.org".to_owned(), vips)]);
    eprintln!("| charon as EAP-TLS client | aes256-sha256-modp2048 | EAP-TLS | 10.10.0.1 |");

    // Only a certificate for bob, to log in as alice: charon has none to send for alice, and the
    // gateway refuses the client without one, naming the user.
    let (conf, files) = client("alice@example.org", "bob@example.org");
    lan.charon("c1", &conf, &files);
    let up = lan.swanctl("c1", "--initiate --child net --timeout 20");
    assert!(!up.status.success(), "{}", lan.log("gw"));
    assert!(
        wait(5, || lan.log("gw").contains("EAP for alice@example.org: EAP-TLS certificate refused")),
        "{}\n{}",
        lan.log("gw"),
        lan.charon_log("c1")
    );
    assert_eq!(gateway_sas(&lan).len(), 1);
}
