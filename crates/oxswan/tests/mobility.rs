//! Clients that move (issue 14): MOBIKE (RFC 4555) with charon and with oxswan as the moving
//! client, against an oxswan gateway. The client starts on its first uplink, through the NAT box
//! of the road-warrior network (common/lan.rs), and has a second one straight to the gateway; the
//! test removes the first uplink's address while a ping runs at 20 packets a second, and measures
//! how long the ping went unanswered. The same IKE SA must carry on from the new address within
//! 2 s, and the gateway's status must show it; an oxswan client keeps its CHILD SAs too (charon
//! rekeys its own, see below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../ike/tests/common/pki.rs"]
mod pki;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::lan::*;
use common::{CONNTRACK, ok, require};

/// Ping at 20/s for this long; the move happens a third of the way in.
const PINGS: u32 = 120;
const INTERVAL: Duration = Duration::from_millis(50);

fn pki() -> Pki {
    let ca = pki::Ca::new("mobility", pki::Alg::P256);
    let (cert, key) = ca.issue_gateway("vpn.example");
    Pki { root: ca.root_der.clone(), intermediate: ca.intermediate_der.clone(), cert, key }
}

/// The road-warrior network with one client, and its gateway running (EAP-MSCHAPv2, pool
/// 10.10.0.0/24); the client gets its second uplink when `second`.
fn gateway(p: &str, second: bool) -> (Lan, Pki) {
    let mut lan = Lan::new(p, 1);
    if second {
        lan.second_uplink(0);
    }
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    (lan, pki)
}

/// The gateway's one IKE SA: (remote address, SPIs, the inbound SPIs of its CHILD SAs).
fn gateway_sa(lan: &Lan) -> (String, String, Vec<String>) {
    let st = lan.status("gw");
    let sas = st["ike_sas"].as_array().unwrap();
    assert_eq!(sas.len(), 1, "one IKE SA at the gateway: {st}");
    let sa = &sas[0];
    let children =
        sa["children"].as_array().unwrap().iter().map(|c| c["spi_in"].as_str().unwrap().to_owned()).collect();
    (sa["remote"].as_str().unwrap().to_owned(), sa["spis"].as_str().unwrap().to_owned(), children)
}

/// What a ping stream saw: packets sent, answered, and the longest run of unanswered ones.
struct Stream {
    sent: u32,
    answered: u32,
    longest_gap: u32,
}

impl Stream {
    fn gap(&self) -> Duration {
        INTERVAL * self.longest_gap
    }
}

/// Pings `to` from `from` on client 0 at 20/s while `during` runs (after a third of the pings).
fn ping_through(lan: &Lan, from: &str, to: &str, during: impl FnOnce()) -> Stream {
    let child = Command::new("ip")
        .args(["netns", "exec", &lan.ns("c0"), "ping", "-n", "-c", &PINGS.to_string(), "-i", "0.05", "-W", "1"])
        .args(["-I", from, to])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(INTERVAL * (PINGS / 3));
    during();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seqs: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut longest_gap = 0;
    let mut prev = 0;
    for s in seqs.iter().copied().chain([PINGS + 1]) {
        longest_gap = longest_gap.max(s.saturating_sub(prev).saturating_sub(1));
        prev = s;
    }
    Stream { sent: PINGS, answered: seqs.len() as u32, longest_gap }
}

/// Prints the time to resume and the pings lost, and checks that traffic resumed within 2 s.
fn report(what: &str, from: &str, to: &str, stream: &Stream, log: impl Fn() -> String) {
    let gap = stream.gap();
    println!(
        "{what} {from} → {to}: {}/{} pings answered, longest gap {} ms",
        stream.answered,
        stream.sent,
        gap.as_millis()
    );
    assert!(gap <= Duration::from_secs(2), "traffic resumed within 2 s: {} ms\n{}", gap.as_millis(), log());
}

/// Removes client 0's address on its first uplink (its default route goes with it).
fn leave_first_uplink(lan: &Lan) {
    ok(&format!("ip -n {} addr del {}/24 dev {}c0", lan.ns("c0"), client_ip(0), lan.p));
}

/// Waits until the gateway's SA is at `second_ip(0)`, and checks it is the same IKE SA as `before`
/// and, when `same_children`, the same CHILD SAs (their SPIs); returns where it is now.
fn moved_and_same(
    lan: &Lan,
    before: &(String, String, Vec<String>),
    same_children: bool,
    log: impl Fn() -> String,
) -> String {
    let new = format!("{}:", second_ip(0));
    assert!(
        wait(10, || gateway_sa(lan).0.starts_with(&new)),
        "the gateway still sends to {}\n{}",
        gateway_sa(lan).0,
        log()
    );
    let after = gateway_sa(lan);
    assert_eq!(after.1, before.1, "the same IKE SA (SPIs) after the move\n{}", log());
    if same_children {
        assert_eq!(after.2, before.2, "the same CHILD SAs (SPIs) after the move\n{}", log());
    } else {
        assert_eq!(after.2.len(), before.2.len(), "as many CHILD SAs after the move\n{}", log());
    }
    after.0
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn a_charon_client_moves_to_its_other_uplink_and_keeps_its_ike_sa() {
    ready();
    let (mut lan, pki) = gateway("mbc", true);
    let vips = connect(&mut lan, &pki, 0, IOS, "alice", "alice's password")
        .unwrap_or_else(|e| panic!("{e}\n--- gateway\n{}\n--- charon\n{}", lan.log("gw"), lan.charon_log("c0")));
    let vip = vips.iter().find(|v| v.contains('.')).cloned().unwrap();
    assert!(lan.status("gw")["ike_sas"][0]["mobike"].as_bool().unwrap(), "MOBIKE agreed with charon");
    assert!(ping(&lan, 0, &vip, "10.2.0.1"), "{}", lan.log("gw"));
    let before = gateway_sa(&lan);
    assert!(before.0.starts_with(NAT_OUT), "through the NAT box first: {}", before.0);
    let stream = ping_through(&lan, &vip, "10.2.0.1", || leave_first_uplink(&lan));
    let log = || format!("--- gateway\n{}\n--- charon\n{}", lan.log("gw"), lan.charon_log("c0"));
    // charon's kernel-libipsec cannot change an installed SA's addresses (its update_sa returns
    // NOT_SUPPORTED), so charon rekeys its CHILD SAs after every MOBIKE update; with the kernel's
    // XFRM it would keep them. The IKE SA stays; the new pair comes from charon's rekey.
    let now = moved_and_same(&lan, &before, false, log);
    assert!(lan.charon_log("c0").contains("UPD_SA_ADDR"), "charon moved with MOBIKE\n{}", log());
    report("charon client moved", &before.0, &now, &stream, log);
    assert!(lan.log("gw").contains("the peer moved"), "{}", log());
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn an_oxswan_client_moves_to_its_other_uplink_and_keeps_its_sas() {
    ready();
    let (mut lan, pki) = gateway("mbo", true);
    let client = oxswan_client_config(&lan, &pki.root, "");
    lan.oxswan("c0", &client);
    let up = lan.ox("c0", "up home --timeout 20");
    let log = || format!("--- gateway\n{}\n--- client\n{}", lan.log("gw"), lan.log("c0"));
    assert!(up.status.success(), "{}\n{}", String::from_utf8_lossy(&up.stderr), log());
    let st = lan.status("c0");
    assert!(st["ike_sas"][0]["mobike"].as_bool().unwrap(), "MOBIKE agreed: {st}");
    let vip = st["ike_sas"][0]["local_vips"][0].as_str().unwrap().to_owned();
    assert!(ping(&lan, 0, &vip, "10.2.0.1"), "{}", log());
    let before = gateway_sa(&lan);
    assert!(before.0.starts_with(NAT_OUT), "through the NAT box first: {}", before.0);
    let stream = ping_through(&lan, &vip, "10.2.0.1", || leave_first_uplink(&lan));
    let now = moved_and_same(&lan, &before, true, log);
    let client_side = lan.status("c0");
    let local = client_side["ike_sas"][0]["local"].as_str().unwrap().to_owned();
    assert!(local.starts_with(&second_ip(0)), "the client's status shows its new address: {local}");
    report("oxswan client moved", &before.0, &now, &stream, log);
    assert!(lan.log("c0").contains("MOBIKE: moving"), "{}", log());
}

/// RFC 7296 §2.23: the NAT box in front of the client forgets its mappings mid-stream (conntrack
/// flushed, and a new random port from then on). The client's next ESP arrives from the new mapping;
/// the gateway follows it at once (the data plane reports authentic ESP from a new source) instead
/// of waiting for the client's next IKE message, so its answers reach the client again without a
/// new IKE SA.
#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_conntrack)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, conntrack"
)]
fn a_flushed_nat_mapping_is_followed_without_a_new_sa() {
    ready();
    require(&[&CONNTRACK]);
    let (mut lan, pki) = gateway("mbn", false);
    let vips = connect(&mut lan, &pki, 0, IOS, "alice", "alice's password")
        .unwrap_or_else(|e| panic!("{e}\n--- gateway\n{}\n--- charon\n{}", lan.log("gw"), lan.charon_log("c0")));
    let vip = vips.iter().find(|v| v.contains('.')).cloned().unwrap();
    let before = gateway_sa(&lan);
    let nat = lan.ns("nat");
    let stream = ping_through(&lan, &vip, "10.2.0.1", || {
        ok(&format!("ip netns exec {nat} conntrack -F 2>/dev/null || true"));
    });
    let log = || format!("--- gateway\n{}\n--- charon\n{}", lan.log("gw"), lan.charon_log("c0"));
    let after = gateway_sa(&lan);
    assert_ne!(after.0, before.0, "a new mapping: the test did not test a move\n{}", log());
    assert_eq!((&after.1, &after.2), (&before.1, &before.2), "the same IKE SA and CHILD SAs\n{}", log());
    assert!(lan.log("gw").contains("the peer moved"), "the gateway followed the new mapping\n{}", log());
    report("NAT mapping flushed", &before.0, &after.0, &stream, log);
}
