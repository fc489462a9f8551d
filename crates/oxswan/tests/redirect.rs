//! Redirect (RFC 5685) against strongSwan. oxswan as the client: `swanctl --redirect` of charon
//! 5.9.8 sends the oxswan client to the gateway's second address; oxswan sets the IKE SA and its
//! CHILD SA up there (announcing REDIRECTED_FROM), deletes the old one once the new one is up, shows
//! it as redirected, and traffic flows. oxswan as the gateway: two oxswan gateways send charon
//! between them in IKE_SA_INIT (`[daemon] redirect`), in IKE_AUTH (a connection's `redirect`,
//! strongSwan 6) and when established (`oxswan redirect`). Needs root and strongSwan (`bash .ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::Path;

use common::*;

#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn oxswan_follows_charons_redirect_of_an_established_sa() {
    require(&[&NETNS, &CHARON]);
    let mut h = Hosts::new("ord");
    // The gateway's second address, where it redirects to.
    ok(&format!("ip -n {} addr add 192.0.2.3/24 dev {}r0", h.ns("right"), h.p));
    let conf = charon_example_conf("192.0.2.2, 192.0.2.3", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "", "");
    h.start_charon("right", &conf, &[]);
    h.start("left");
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}\n--- charon\n{}", String::from_utf8_lossy(&o.stderr), h.charon_log("right"));
    let remote = |h: &Hosts| h.status("left")["ike_sas"][0]["remote"].as_str().unwrap_or_default().to_owned();
    assert!(remote(&h).starts_with("192.0.2.2:"), "{}", remote(&h));
    let o = h.swanctl("right", "--redirect --ike net --gateway 192.0.2.3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    settles(15, || {
        let s = h.status("left");
        holds(sa_counts(&s) == (1, 1) && remote(&h).starts_with("192.0.2.3:"), || format!("{s}\n{}", h.log("left")))
    });
    assert_eq!(h.status("left")["ike_sas"][0]["redirected"], true);
    let log = h.charon_log("right");
    assert!(log.contains("redirecting peer to 192.0.2.3"), "{log}");
    assert!(log.contains("N(REDIR_FROM)"), "REDIRECTED_FROM in the new IKE_SA_INIT: {log}");
    assert!(h.ping(3), "{}", h.log("left"));
}

/// charon at 192.0.2.1 as the client of `net` to the gateway at 192.0.2.2 (examples/right.toml's
/// peer), following redirects as it does by default.
const CHARON_CLIENT: &str = "connections {\n net {\n  local_addrs = 192.0.2.1\n  remote_addrs = 192.0.2.2\n  \
    proposals = aes256gcm16-prfsha256-x25519\n  local { auth = psk\n id = left.example }\n  \
    remote { auth = psk\n id = right.example }\n  children {\n   net { local_ts = 10.1.0.1/32\n \
    remote_ts = 10.2.0.1/32\n esp_proposals = aes256gcm16 }\n  }\n }\n}\n\
    secrets { ike-net { id-1 = left.example\n id-2 = right.example\n \
    secret = \"correct horse battery staple 42\" }\n}\n";

/// Who is the gateways' client on left.
enum Client<'a> {
    /// charon, from this root file system (strongSwan 6) or the host's.
    Charon(Option<&'a str>),
    /// oxswan, the example's `left`.
    Oxswan,
}

/// Two oxswan gateways in right's namespace, the example's `right` each: `a` on 192.0.2.2 (changed
/// by `edit_a`), `b` on a second address, 192.0.2.3, with a TUN device of its own; and `client` on
/// left.
fn two_gateways(p: &str, client: Client<'_>, edit_a: impl Fn(String) -> String) -> Hosts {
    let mut h = Hosts::new(p);
    ok(&format!("ip -n {} addr add 192.0.2.3/24 dev {}r0", h.ns("right"), h.p));
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/right.toml")).unwrap();
    let a = edit_a(example.replace("[daemon]\n", "[daemon]\nlisten = [\"192.0.2.2\"]\n"));
    let b = example
        .replace("[daemon]\n", "[daemon]\nlisten = [\"192.0.2.3\"]\n")
        .replace("tun = \"oxswan0\"", "tun = \"oxswan1\"")
        .replace("local_addrs  = [\"192.0.2.2\"]", "local_addrs  = [\"192.0.2.3\"]");
    for (name, text) in [("a", a), ("b", b)] {
        let config = h.dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = h.dir.join(format!("{name}.log"));
        let child = spawn_oxswan(&h.ns("right"), &gateway_sock(&h, name), &config, &log, &h.daemon_env);
        h.daemons.push(child);
    }
    match client {
        Client::Charon(root) => {
            h.charon_root = root.map(std::path::PathBuf::from);
            h.start_charon("left", CHARON_CLIENT, &[]);
        }
        Client::Oxswan => h.start("left"),
    }
    h
}

fn gateway_sock(h: &Hosts, name: &str) -> std::path::PathBuf {
    h.dir.join(format!("{name}.sock"))
}

/// `oxswan ARGS` against gateway `name`.
fn gw(h: &Hosts, name: &str, args: &str) -> std::process::Output {
    sh(&format!("ip netns exec {} {OX} --socket {} {args}", h.ns("right"), gateway_sock(h, name).display()))
}

fn gw_status(h: &Hosts, name: &str) -> serde_json::Value {
    let o = gw(h, name, "status --json");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn gw_log(h: &Hosts, name: &str) -> String {
    std::fs::read_to_string(h.dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Pings from charon's side (10.1.0.1) to the gateways' 10.2.0.1.
fn ping(h: &Hosts) -> bool {
    h.ping(3)
}

fn logs(h: &Hosts) -> String {
    format!("--- charon\n{}\n--- a\n{}\n--- b\n{}", h.charon_log("left"), gw_log(h, "a"), gw_log(h, "b"))
}

fn ready() {
    require(&[&NETNS, &CHARON]);
}

/// RFC 5685 §4.1 and §5 with charon as the client. Gateway a's `[daemon] redirect` sends charon
/// to b in the IKE_SA_INIT response, where the tunnel comes up. Then `oxswan redirect` on b sends
/// the established client back to a, which now serves it: it came from b, the gateway a would
/// send it to (REDIRECTED_FROM), so a does not bounce it back. b's SA goes (charon deletes it).
#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn charon_follows_oxswans_redirects_at_ike_sa_init_and_when_established() {
    ready();
    let h =
        two_gateways("ogr", Client::Charon(None), |a| a.replace("[daemon]\n", "[daemon]\nredirect = \"192.0.2.3\"\n"));
    let o = h.swanctl("left", "--initiate --child net --timeout 20");
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), logs(&h));
    let log = h.charon_log("left");
    assert!(log.contains("N(REDIR)"), "a answered with REDIRECT: {}", logs(&h));
    assert!(log.contains("N(REDIR_FROM)"), "to b with REDIRECTED_FROM: {}", logs(&h));
    assert_eq!(sa_counts(&gw_status(&h, "a")), (0, 0), "a made no SA");
    assert_eq!(gw_status(&h, "a")["engine"]["redirects_sent"], 1);
    let at_b = gw_status(&h, "b");
    assert_eq!(sa_counts(&at_b), (1, 1), "{at_b}");
    assert_eq!(at_b["ike_sas"][0]["redirected"], true, "{at_b}");
    assert!(ping(&h), "{}", logs(&h));

    let o = gw(&h, "b", "redirect site --gateway 192.0.2.2");
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && said.contains("1 client(s) redirected to 192.0.2.2"), "{said}\n{}", logs(&h));
    settles(20, || {
        let (a, b) = (gw_status(&h, "a"), gw_status(&h, "b"));
        holds(sa_counts(&a) == (1, 1) && sa_counts(&b) == (0, 0), || format!("a: {a}\nb: {b}\n{}", logs(&h)))
    });
    assert!(gw_log(&h, "b").contains("acknowledged the redirect"), "{}", logs(&h));
    assert_eq!(gw_status(&h, "b")["engine"]["redirects_sent"], 1);
    assert_eq!(gw_status(&h, "a")["engine"]["redirects_sent"], 1, "a served the client b sent back");
    assert_eq!(gw_status(&h, "a")["ike_sas"][0]["redirected"], true);
    assert!(ping(&h), "{}", logs(&h));
}

/// RFC 5685 §6 with charon as the client: connection `site` of gateway a has `redirect`; a
/// authenticates charon and answers IKE_AUTH with N(REDIRECT) and no CHILD SA, and charon sets the
/// tunnel up at b. strongSwan 6's charon: 5.9.8 crashes following a redirect in IKE_AUTH (a double
/// free, fixed in 5.9.12 by "ike-sa: Fix handling of redirects during IKE_AUTH").
#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_strongswan6)),
    ignore = "needs root with ip, ping, iperf3, charon, /opt/strongswan6"
)]
fn charon6_follows_oxswans_redirect_in_ike_auth() {
    ready();
    require(&[&STRONGSWAN6_FS]);
    let h = two_gateways("oga", Client::Charon(Some(STRONGSWAN6)), |a| {
        a.replace("[connections.site.local]", "redirect = \"192.0.2.3\"\n\n[connections.site.local]")
    });
    let o = h.swanctl("left", "--initiate --child net --timeout 20");
    let log = h.charon_log("left");
    assert!(log.contains("IKE_AUTH response 1 [ IDr AUTH N(REDIR) ]"), "{}", logs(&h));
    settles(20, || {
        let b = gw_status(&h, "b");
        holds(sa_counts(&b) == (1, 1), || format!("{}\nb: {b}\n{}", String::from_utf8_lossy(&o.stdout), logs(&h)))
    });
    assert_eq!(sa_counts(&gw_status(&h, "a")), (0, 0));
    assert!(gw_log(&h, "a").contains("redirected to another gateway"), "{}", logs(&h));
    assert_eq!(gw_status(&h, "a")["engine"]["redirects_sent"], 1);
    assert!(ping(&h), "{}", logs(&h));
}

/// The client's limit on redirects (RFC 5685 §5 leaves loops to the client): oxswan follows five
/// redirects of its connection within five minutes, here `oxswan redirect` between gateways a
/// and b, and refuses the sixth, staying where it is.
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn oxswan_follows_five_redirects_in_five_minutes_and_refuses_the_sixth() {
    require(&[&NETNS]);
    let h = two_gateways("ogl", Client::Oxswan, |a| a);
    let o = h.ox("left", "up site");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let remote = |h: &Hosts| h.status("left")["ike_sas"][0]["remote"].as_str().unwrap_or_default().to_owned();
    let mut at = ("a", "192.0.2.2");
    for n in 1..=6 {
        let to = if at.0 == "a" { ("b", "192.0.2.3") } else { ("a", "192.0.2.2") };
        let o = gw(&h, at.0, &format!("redirect site --gateway {}", to.1));
        assert!(
            o.status.success(),
            "redirect {n}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if n <= 5 {
            settles(15, || {
                let s = h.status("left");
                holds(sa_counts(&s) == (1, 1) && remote(&h).starts_with(&format!("{}:", to.1)), || {
                    format!("redirect {n}: {s}\n{}", h.log("left"))
                })
            });
            at = to;
        } else {
            settles(10, || holds(h.log("left").contains("refused: 5 redirects within 300 s"), || h.log("left")));
            std::thread::sleep(std::time::Duration::from_secs(1));
            assert!(remote(&h).starts_with(&format!("{}:", at.1)), "stays at {}: {}", at.1, h.status("left"));
            assert_eq!(sa_counts(&h.status("left")), (1, 1));
        }
    }
    assert!(h.ping(3), "{}", h.log("left"));
}

/// `[daemon] redirect` changes with `oxswan reload` (the other `[daemon]` keys wait for a
/// restart): gateway a, serving at first, is drained by a reload, and charon's next IKE_SA_INIT is
/// redirected to b.
#[test]
#[cfg_attr(not(all(have_netns, have_charon)), ignore = "needs root with ip, ping, iperf3, charon")]
fn a_reload_that_sets_redirect_drains_the_gateway() {
    ready();
    let h = two_gateways("ogd", Client::Charon(None), |a| a);
    let config = h.dir.join("a.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[daemon]\n", "[daemon]\nredirect = \"192.0.2.3\"\n")).unwrap();
    let o = gw(&h, "a", "reload");
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && said.contains("new clients are redirected to 192.0.2.3"), "{said}");
    assert!(!said.contains("other [daemon] changes"), "{said}");
    let o = h.swanctl("left", "--initiate --child net --timeout 20");
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), logs(&h));
    assert_eq!(sa_counts(&gw_status(&h, "a")), (0, 0), "{}", logs(&h));
    assert_eq!(sa_counts(&gw_status(&h, "b")), (1, 1), "{}", logs(&h));
}
