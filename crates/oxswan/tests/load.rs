//! `oxswan load` against an oxswan gateway in a network namespace: every client comes up from the
//! source addresses named and the gateway holds them; a wrong key fails every client with the
//! gateway's reason; the exit status says whether all came up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::{Hosts, NETNS, OX, ok, require, sh};

const PSK: &str = "load test pre-shared key";

fn gateway(h: &mut Hosts) {
    let config = format!(
        "[daemon]\nsocket = \"{sock}\"\ntun = \"{p}gw\"\n\n[pools.rw]\naddrs = \"10.96.0.0/16\"\n\n\
         [connections.rw]\nlocal_addrs = [\"192.0.2.2\"]\nproposals = [\"aes256gcm16-prfsha256-x25519\"]\npools = [\"rw\"]\nunique = \"never\"\n\n\
         [connections.rw.local]\nauth = \"psk\"\nid = \"gw.load.test\"\n\n[connections.rw.remote]\nauth = \"psk\"\n\n\
         [connections.rw.children.net]\nlocal_ts = [\"10.2.0.0/16\"]\nremote_ts = [\"dynamic\"]\nesp_proposals = [\"aes256gcm16\"]\n\n\
         [[secrets.ike]]\nids = [\"gw.load.test\"]\nsecret = \"{PSK}\"\n",
        sock = h.sock("right").display(),
        p = h.p,
    );
    h.start_text("right", &config);
}

/// `oxswan load` in the left namespace with these arguments and the key in `key`; its exit status
/// and JSON report.
fn load(h: &Hosts, key: &str, args: &str) -> (bool, serde_json::Value) {
    let file = h.dir.join("psk");
    std::fs::write(&file, format!("{key}\n")).unwrap();
    let o = sh(&format!(
        "ip netns exec {} {OX} load 192.0.2.2 --psk-file {} --json --quiet {args}",
        h.ns("left"),
        file.display()
    ));
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    });
    (o.status.success(), report)
}

#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn clients_from_a_source_range_come_up_and_the_gateway_holds_them() {
    require(&[&NETNS]);
    let mut h = Hosts::new("ld");
    // Eight more addresses on the left host: the clients' sources.
    ok(&format!("for i in $(seq 11 18); do ip -n {} addr add 192.0.2.$i/24 dev {}l0; done", h.ns("left"), h.p));
    gateway(&mut h);
    let (all_up, r) = load(&h, PSK, "--source 192.0.2.11-192.0.2.18 -n 120 -k 16 --no-delete --id 'c{n}.load.test'");
    assert!(all_up, "{r:#}\n{}", h.log("right"));
    assert_eq!((r["established"].as_u64(), r["failed"].as_u64()), (Some(120), Some(0)), "{r:#}");
    assert_eq!(r["sources"], 8);
    assert!(r["setup_ms"]["p50"].as_f64().unwrap() > 0.0);
    let sas = h.status("right")["ike_sas"].as_array().cloned().unwrap_or_default();
    assert_eq!(sas.len(), 120, "the gateway holds every client");
    let mut from: Vec<String> = sas.iter().map(|s| s["remote"].as_str().unwrap_or_default().to_owned()).collect();
    from.iter_mut().for_each(|a| *a = a.rsplit_once(':').map_or(a.clone(), |(ip, _)| ip.to_owned()));
    from.sort();
    from.dedup();
    assert_eq!(from.len(), 8, "from the eight sources: {from:?}");

    // The same clients again, deleted at the end: the gateway is left with the first 120.
    let (_, r) = load(&h, PSK, "--source 192.0.2.11-192.0.2.18 -n 30 -k 8 --id 'd{n}.load.test'");
    assert_eq!((r["established"].as_u64(), r["deleted"].as_u64()), (Some(30), Some(30)), "{r:#}");
    assert_eq!(h.status("right")["ike_sas"].as_array().map(Vec::len), Some(120));

    // A wrong key: each client fails, with the gateway's answer as the reason, and the exit status
    // says so.
    let (all_up, r) = load(&h, "not the key", "-n 5 -k 5");
    assert!(!all_up);
    assert_eq!((r["established"].as_u64(), r["failed"].as_u64()), (Some(0), Some(5)), "{r:#}");
    let reasons = r["failures"].as_object().unwrap();
    assert!(reasons.keys().all(|k| k.contains("AUTHENTICATION_FAILED")), "{reasons:?}");
}

#[test]
fn a_target_that_is_nobodys_is_refused_before_anything_is_sent() {
    for target in ["255.255.255.255", "224.0.0.5", "0.0.0.0"] {
        let o = sh(&format!("OXSWAN_LOAD_PSK=k {OX} load {target} --source 127.0.0.1 -n 1"));
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("target {target} is")), "{err}");
    }
    let o = sh(&format!("{OX} load 127.0.0.1 --source 127.0.0.1 -n 1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("OXSWAN_LOAD_PSK"), "a key is required: {err}");
}

#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn eap_users_and_certificate_clients_come_up_against_a_gateway_made_by_setup() {
    require(&[&NETNS]);
    let mut h = Hosts::new("le");
    let d = h.dir.join("gw");
    let dir = d.display();
    ok(&format!(
        "ip netns exec {} {OX} setup gateway --name vpn.load.test --address 192.0.2.2 --pool 10.10.0.0/24 --dir {dir}",
        h.ns("right")
    ));
    for i in 0..4 {
        ok(&format!(
            "echo 'load test password' | {OX} --socket /nonexistent.sock client add user{i} --password-stdin --dir {dir}"
        ));
    }
    ok(&format!("{OX} --socket /nonexistent.sock client add cert0@load.test --cert --dir {dir}"));
    h.start_with("right", &d.join("oxswan.toml"));
    let run = |env: &str, args: &str| {
        let o = sh(&format!(
            "{env} ip netns exec {} {OX} load 192.0.2.2 --ca {dir}/pki/ca.crt --remote-id vpn.load.test --json --quiet {args}",
            h.ns("left")
        ));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
        });
        (o.status.success(), r)
    };
    // EAP-MSCHAPv2 as user0..user3, the gateway's certificate checked against the CA.
    let (all_up, r) = run("OXSWAN_LOAD_EAP_PASSWORD='load test password'", "--auth eap --eap-user 'user{n}' -n 4 -k 4");
    assert!(all_up, "{r:#}\n{}", h.log("right"));
    assert_eq!(r["established"], 4, "{r:#}");
    // A user the gateway does not know fails with the gateway's answer.
    let (all_up, r) =
        run("OXSWAN_LOAD_EAP_PASSWORD='load test password'", "--auth eap --eap-user 'nobody{n}' -n 2 -k 2");
    assert!(!all_up && r["failed"] == 2, "{r:#}");
    // Three clients with one certificate (the gateway's `unique = never` keeps them all).
    let (all_up, r) = run(
        "",
        &format!(
            "--auth cert --cert {dir}/pki/clients/cert0@load.test.crt --key {dir}/pki/private/clients/cert0@load.test.key -n 3 -k 3"
        ),
    );
    assert!(all_up, "{r:#}\n{}", h.log("right"));
    assert_eq!(r["established"], 3, "{r:#}");
}

/// `--ping`: every client's CHILD SA carries an echo request from its virtual IP to the gateway's
/// 10.2.0.1 and the reply back, sealed and opened by the load tool itself (ESP in UDP to the
/// gateway's port 4500, which the clients force without a NAT between them).
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn every_client_pings_through_its_own_child_sa() {
    require(&[&NETNS]);
    let mut h = Hosts::new("lp");
    gateway(&mut h);
    let (all_ok, r) = load(&h, PSK, "-n 20 -k 10 --ping 10.2.0.1 --id 'p{n}.load.test'");
    assert!(all_ok, "{r:#}\n{}", h.log("right"));
    assert_eq!((r["established"].as_u64(), r["pinged"].as_u64()), (Some(20), Some(20)), "{r:#}");
    assert_eq!(r["ping"], "10.2.0.1");
    // Three requests each (the default), and a reply to at least one of each client's.
    assert_eq!(r["ping_requests"], 60, "{r:#}");
    let replies = r["ping_replies"].as_u64().unwrap();
    assert!((20..=60).contains(&replies), "{r:#}");
    assert!(r["ping_rtt_ms"]["max"].as_f64().unwrap() > 0.0, "{r:#}");
    assert_eq!(r["ping_failures"], serde_json::json!({}), "{r:#}");
    assert_eq!(r["ping_rejected"], serde_json::json!({}), "{r:#}");
    assert_eq!((r["refused_sends"].as_u64(), r["deleted"].as_u64()), (Some(0), Some(20)), "{r:#}");
    // The pings waited for, the clients were deleted: the gateway holds none.
    assert_eq!(h.status("right")["ike_sas"].as_array().map(Vec::len), Some(0));
}

/// A ping target inside the CHILD SA's selectors that nobody answers: every client is up, none
/// pinged, each for the reason that no reply came, and the exit status says so.
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn a_ping_target_that_does_not_answer_fails_the_run() {
    require(&[&NETNS]);
    let mut h = Hosts::new("lq");
    gateway(&mut h);
    let (all_ok, r) = load(&h, PSK, "-n 5 -k 5 --ping 10.2.0.9 --pings 2 --id 'q{n}.load.test'");
    assert!(!all_ok, "{r:#}");
    assert_eq!((r["established"].as_u64(), r["failed"].as_u64()), (Some(5), Some(0)), "{r:#}");
    assert_eq!(
        (r["pinged"].as_u64(), r["ping_requests"].as_u64(), r["ping_replies"].as_u64()),
        (Some(0), Some(10), Some(0)),
        "{r:#}"
    );
    assert_eq!(r["ping_failures"], serde_json::json!({"no echo reply within 3s": 5}), "{r:#}");
    // Without --ping the same clients pass: it is the pings that failed the run.
    let (all_ok, r) = load(&h, PSK, "-n 5 -k 5 --id 'q{n}.load.test'");
    assert!(all_ok && r["pinged"].is_null(), "{r:#}");
}
