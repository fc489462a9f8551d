//! Issue 14, IPv6: IKE and ESP over IPv6 outside, IPv6 through the tunnel, and both mixed (IPv4
//! inside IPv6 and IPv6 inside IPv4), between two oxswan daemons and against strongSwan's charon in
//! both roles. Each host has both families on its link (192.0.2.x and 2001:db8::x) and inside
//! (10.x.0.1 and fd0x::1 on lo); nftables counters on the link prove which family carried IKE and
//! ESP. Needs root, iperf3, nftables and, for charon, strongSwan (`bash .ci/run` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;

const PSK: &str = "correct horse battery staple 42";

/// The family of the outer packets: the addresses IKE and ESP use between the hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outer {
    V4,
    V6,
}

impl Outer {
    fn addr(self, side: &str) -> &'static str {
        match (self, side) {
            (Outer::V4, "left") => "192.0.2.1",
            (Outer::V4, _) => "192.0.2.2",
            (Outer::V6, "left") => "2001:db8::1",
            (Outer::V6, _) => "2001:db8::2",
        }
    }

    fn nft(self) -> &'static str {
        match self {
            Outer::V4 => "ipv4",
            Outer::V6 => "ipv6",
        }
    }
}

/// Two hosts on one link with both families outside and inside, and counters of the UDP datagrams
/// to and from ports 500 and 4500 the left's link carried, per family.
fn dual_stack(p: &str) -> Hosts {
    let h = Hosts::new(p);
    let (l, r) = (h.ns("left"), h.ns("right"));
    ok(&format!(
        "ip -n {l} addr add 2001:db8::1/64 dev {p}l0 nodad && ip -n {r} addr add 2001:db8::2/64 dev {p}r0 nodad && \
         ip -n {l} addr add fd01::1/128 dev lo && ip -n {r} addr add fd02::1/128 dev lo"
    ));
    nft(
        &l,
        &format!(
            "table inet t {{\n counter ipv4 {{}}\n counter ipv6 {{}}\n chain io {{\n  type filter hook output priority 0;\n  \
             oifname \"{p}l0\" meta nfproto ipv4 udp dport {{ 500, 4500 }} counter name ipv4\n  \
             oifname \"{p}l0\" meta nfproto ipv6 udp dport {{ 500, 4500 }} counter name ipv6\n }}\n}}\n"
        ),
    );
    h
}

fn nft(ns: &str, rules: &str) {
    ok(&format!("printf '%s' '{rules}' | ip netns exec {ns} nft -f -"));
}

/// Datagrams the left sent to port 500 or 4500 over `family`.
fn sent_over(h: &Hosts, family: Outer) -> u64 {
    let out = ok(&format!("ip netns exec {} nft list counter inet t {}", h.ns("left"), family.nft()));
    out.split_whitespace().skip_while(|w| *w != "packets").nth(1).and_then(|n| n.parse().ok()).unwrap()
}

/// The example configuration of `side` moved to `outer` with both families inside.
fn oxswan_config(side: &str, outer: Outer) -> impl Fn(String) -> String {
    move |c: String| {
        let other = if side == "left" { "right" } else { "left" };
        c.replace(
            &format!("local_addrs  = [\"{}\"]", Outer::V4.addr(side)),
            &format!("local_addrs  = [\"{}\"]", outer.addr(side)),
        )
        .replace(
            &format!("remote_addrs = [\"{}\"]", Outer::V4.addr(other)),
            &format!("remote_addrs = [\"{}\"]", outer.addr(other)),
        )
        .replace("= [\"10.1.0.1/32\"]", "= [\"10.1.0.1/32\", \"fd01::1/128\"]")
        .replace("= [\"10.2.0.1/32\"]", "= [\"10.2.0.1/32\", \"fd02::1/128\"]")
    }
}

/// charon's swanctl.conf on `side` for the same tunnel.
fn charon_config(side: &str, outer: Outer) -> String {
    let (other, initiator) = if side == "left" { ("right", true) } else { ("left", false) };
    let ts = |s: &str| if s == "left" { "10.1.0.1/32,fd01::1/128" } else { "10.2.0.1/32,fd02::1/128" };
    let remote = if initiator { outer.addr(other) } else { "%any" };
    format!(
        "connections {{\n site {{\n  version = 2\n  local_addrs = {}\n  remote_addrs = {remote}\n  \
         proposals = aes256gcm16-prfsha256-x25519\n  local {{\n   auth = psk\n   id = {side}.example\n  }}\n  \
         remote {{\n   auth = psk\n   id = {other}.example\n  }}\n  children {{\n   net {{\n    local_ts = {}\n    \
         remote_ts = {}\n    esp_proposals = aes256gcm16\n   }}\n  }}\n }}\n}}\n\
         secrets {{\n ike-1 {{\n  id-1 = left.example\n  id-2 = right.example\n  secret = \"{PSK}\"\n }}\n}}\n",
        outer.addr(side),
        ts(side),
        ts(other)
    )
}

/// `count` pings from the left's `from` to the right's `to` (either family), all answered.
fn pings(h: &Hosts, from: &str, to: &str, count: u32) -> bool {
    let six = if to.contains(':') { "-6" } else { "-4" };
    sh(&format!("ip netns exec {} ping {six} -c {count} -i 0.2 -W 2 -I {from} {to}", h.ns("left"))).status.success()
}

/// The peer's address of an IKE SA in `status --json`.
fn remote_ip(sa: &serde_json::Value) -> String {
    sa["remote"].as_str().unwrap().parse::<std::net::SocketAddr>().unwrap().ip().to_string()
}

/// The MTU of the left's TUN device.
fn tun_mtu(h: &Hosts) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&ok(&format!("ip -n {} -j link show oxswan0", h.ns("left")))).unwrap();
    j[0]["mtu"].as_u64().unwrap()
}

fn charon_ready() {
    require(&[&CHARON]);
}

fn nft_ready() {
    require(&[&NFT]);
}

/// Between two oxswan daemons over `outer`: IPv4 and IPv6 inside, each pinged; the SA's pair fits
/// its inner packets to the outer family; no IKE or ESP went over the other family. Returns
/// iperf3's Gbit/s.
fn oxswan_pair(p: &str, outer: Outer) -> f64 {
    let mut h = dual_stack(p);
    h.start_edited("right", oxswan_config("right", outer));
    h.start_edited("left", oxswan_config("left", outer));
    let up = h.ox("left", "up site");
    assert!(up.status.success(), "{outer:?}: {}\n{}", String::from_utf8_lossy(&up.stderr), h.log("left"));
    let left = h.status("left");
    let sa = &left["ike_sas"][0];
    assert_eq!(remote_ip(sa), outer.addr("right"), "{left}");
    // AES-GCM-16 in ESP in UDP: 8 of UDP, 8 of ESP, 8 of IV, 2 of trailer, 16 of ICV, and the
    // outer header: 20 for IPv4, 40 for IPv6.
    let want = if outer == Outer::V6 { 1418 } else { 1438 };
    assert_eq!(sa["children"][0]["inner_mtu"].as_u64(), Some(want), "{left}");
    // The TUN device fits an SA of any suite over the configured addresses' family.
    assert_eq!(tun_mtu(&h), if outer == Outer::V6 { 1379 } else { 1399 });
    assert!(pings(&h, "10.1.0.1", "10.2.0.1", 5), "{outer:?}: IPv4 inside\n{}\n{}", h.log("left"), h.log("right"));
    assert!(pings(&h, "fd01::1", "fd02::1", 5), "{outer:?}: IPv6 inside\n{}\n{}", h.log("left"), h.log("right"));
    let child = &h.status("left")["ike_sas"][0]["children"][0];
    assert_eq!(child["packets_out"].as_u64(), Some(10), "{child}");
    assert_eq!(child["packets_in"].as_u64(), Some(10), "{child}");
    let t = h.transfer(64 << 20);
    assert!(t.completed(64 << 20), "{outer:?}: iperf3 {}", t.figures());
    let other = if outer == Outer::V6 { Outer::V4 } else { Outer::V6 };
    let (used, unused) = (sent_over(&h, outer), sent_over(&h, other));
    assert!(used > 1000 && unused == 0, "{outer:?}: {used} datagrams over it, {unused} over {other:?}");
    t.gbps
}

/// IKE and ESP over IPv6, IPv4 and IPv6 inside (4-in-6 and 6-in-6); iperf3 printed next to the
/// same over IPv4 outside (4-in-4) in the same run.
#[test]
#[cfg_attr(not(all(have_netns, have_nft)), ignore = "needs root with ip, ping, iperf3, nft")]
fn oxswan_over_ipv6_carries_both_families() {
    nft_ready();
    require(&[&NETNS]);
    let v6 = oxswan_pair("ox6a", Outer::V6);
    let v4 = oxswan_pair("ox6b", Outer::V4);
    println!("iperf3 through the tunnel, same run: over IPv6 {v6:.2} Gbit/s, over IPv4 {v4:.2} Gbit/s");
}

/// Against charon (kernel-libipsec) over each outer family, each side initiating: both families
/// inside, pinged.
#[test]
#[cfg_attr(not(all(have_netns, have_charon, have_nft)), ignore = "needs root with ip, ping, iperf3, charon, nft")]
fn charon_over_ipv6_and_ipv4_with_both_families_inside() {
    nft_ready();
    charon_ready();
    require(&[&NETNS]);
    for (i, (outer, ox_side)) in
        [(Outer::V6, "left"), (Outer::V6, "right"), (Outer::V4, "left")].into_iter().enumerate()
    {
        let p = format!("ox6c{i}");
        let mut h = dual_stack(&p);
        let ch_side = if ox_side == "left" { "right" } else { "left" };
        h.start_charon(ch_side, &charon_config(ch_side, outer), &[]);
        h.start_edited(ox_side, oxswan_config(ox_side, outer));
        let what = format!("{outer:?} outside, {} initiates", if ox_side == "left" { "oxswan" } else { "charon" });
        if ox_side == "left" {
            let up = h.ox("left", "up site");
            assert!(up.status.success(), "{what}: {}\n{}", String::from_utf8_lossy(&up.stderr), h.charon_log(ch_side));
        } else {
            let up = h.swanctl("left", "--initiate --child net --timeout 20");
            assert!(
                up.status.success(),
                "{what}: {}\n--- oxswan\n{}\n--- charon\n{}",
                String::from_utf8_lossy(&up.stdout),
                h.log("right"),
                h.charon_log("left")
            );
        }
        assert!(
            pings(&h, "10.1.0.1", "10.2.0.1", 5),
            "{what}: IPv4 inside\n{}\n{}",
            h.log(ox_side),
            h.charon_log(ch_side)
        );
        assert!(
            pings(&h, "fd01::1", "fd02::1", 5),
            "{what}: IPv6 inside\n{}\n{}",
            h.log(ox_side),
            h.charon_log(ch_side)
        );
        let ox = h.status(ox_side);
        let sa = &ox["ike_sas"][0];
        assert_eq!(remote_ip(sa), outer.addr(ch_side), "{ox}");
        let child = &sa["children"][0];
        assert_eq!(
            (child["packets_out"].as_u64(), child["packets_in"].as_u64()),
            (Some(10), Some(10)),
            "{what}: {child}"
        );
        let other = if outer == Outer::V6 { Outer::V4 } else { Outer::V6 };
        assert_eq!(sent_over(&h, other), 0, "{what}: nothing over {other:?}");
        assert!(sent_over(&h, outer) >= 12, "{what}: IKE and ESP over {outer:?}");
        println!("charon, {what}: 5 + 5 pings through (IPv4 and IPv6 inside)");
    }
}
