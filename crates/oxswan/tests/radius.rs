//! EAP-RADIUS against a real FreeRADIUS: an oxswan gateway passes its road warriors' EAP to
//! FreeRADIUS (RFC 3579) and accounts their sessions there (RFC 2866); strongSwan's charon is the
//! client. FreeRADIUS checks the password (EAP-MSCHAPv2, EAP-MD5), derives the MSK the IKE AUTH
//! payloads rest on, and writes the accounting records to a detail file, which the tests read.
//!
//! Topology: the road-warrior network of `common::lan` (the gateway `P-gw` 192.0.2.2 with
//! 10.2.0.1 on lo, the NAT box, the clients behind it), and `P-rad`, joined to the gateway by a
//! veth pair: 10.0.0.1 the gateway's side, 10.0.0.5 FreeRADIUS's (auth 1812, acct 1813). FreeRADIUS
//! runs in the foreground (`-X`) with a copy of Debian's /etc/freeradius/3.0 changed by
//! [`FreeRadius::start`]. Needs what road_warriors.rs needs and FreeRADIUS (`bash .ci/run` installs
//! it); elsewhere each test says why it skips (and fails under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../ike/tests/common/pki.rs"]
mod pki;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lan::*;
use common::scrape::{promtool, scrape_until};
use common::{FREERADIUS, ok, require, sh};

const FREERADIUS_BIN: &str = "/usr/sbin/freeradius";
const STOCK: &str = "/etc/freeradius/3.0";
/// FreeRADIUS's address, and the gateway's on the same link.
const RAD_IP: &str = "10.0.0.5";
const GW_RAD_IP: &str = "10.0.0.1";
const SECRET: &str = "radius secret";
/// The Class FreeRADIUS gives alice, and as its detail file writes it (octets, in hex).
const CLASS: &str = "group=vpn";
const CLASS_HEX: &str = "0x67726f75703d76706e";

fn ready_radius() {
    ready();
    require(&[&FREERADIUS]);
}

fn pki() -> Pki {
    let ca = pki::Ca::new("radius", pki::Alg::P256);
    let (cert, key) = ca.issue_gateway("vpn.example");
    Pki { root: ca.root_der.clone(), intermediate: ca.intermediate_der.clone(), cert, key }
}

/// FreeRADIUS in a namespace of its own, `P-rad`, joined to the gateway; killed and removed on drop.
struct FreeRadius {
    ns: String,
    dir: PathBuf,
    child: Child,
}

impl FreeRadius {
    /// Starts FreeRADIUS on `P-rad` (10.0.0.5, also holding `extra` addresses where nothing
    /// listens) with EAP `default_eap_type`, the user alice, the gateway 10.0.0.1 as its client,
    /// and accounting to a detail file; waits until it is ready.
    fn start(lan: &Lan, default_eap_type: &str, extra: &[&str]) -> Self {
        let p = &lan.p;
        let (ns, gw) = (lan.ns("rad"), lan.ns("gw"));
        let _ = sh(&format!("ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null"));
        ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        ok(&format!("ip link add {p}r0 netns {gw} type veth peer name {p}r1 netns {ns}"));
        ok(&format!(
            "ip -n {gw} addr add {GW_RAD_IP}/24 dev {p}r0 && ip -n {gw} link set {p}r0 up && \
             ip -n {ns} addr add {RAD_IP}/24 dev {p}r1 && ip -n {ns} link set {p}r1 up"
        ));
        for a in extra {
            ok(&format!("ip -n {ns} addr add {a}/24 dev {p}r1"));
        }
        let dir = lan.dir.join("raddb");
        configure(&dir, default_eap_type);
        let log = std::fs::File::create(dir.join("radiusd.out")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, FREERADIUS_BIN, "-X", "-d"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut rad = FreeRadius { ns, dir, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !rad.log().contains("Ready to process requests") {
            if let Ok(Some(status)) = rad.child.try_wait() {
                panic!("FreeRADIUS exited ({status}):\n{}", rad.log());
            }
            assert!(Instant::now() < deadline, "FreeRADIUS did not get ready:\n{}", rad.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = rad.log();
        for l in [format!("auth address {RAD_IP} port 1812"), format!("acct address {RAD_IP} port 1813")] {
            assert!(log.contains(&l), "FreeRADIUS is not listening on {l}:\n{log}");
        }
        rad
    }

    /// What FreeRADIUS logged (its debug output).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("radiusd.out")).unwrap_or_default()
    }

    /// The accounting records the detail module wrote, each as its attributes (values unquoted).
    fn detail(&self) -> Vec<HashMap<String, String>> {
        let mut text = String::new();
        for f in files_under(&self.dir.join("radacct")) {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
            text.push('\n');
        }
        text.split("\n\n")
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                r.lines()
                    .filter_map(|l| l.split_once(" = "))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
                    .collect()
            })
            .collect()
    }

    /// The detail record of `status` (`Start`, `Stop`) for `user`.
    fn record(&self, status: &str, user: &str) -> Option<HashMap<String, String>> {
        self.detail().into_iter().find(|r| {
            r.get("Acct-Status-Type").map(String::as_str) == Some(status)
                && r.get("User-Name").map(String::as_str) == Some(user)
        })
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        // Not once reaped: its PID may be another process's by then.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = sh(&format!("kill -TERM {}", self.child.id()));
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The veth pair goes with the namespace.
        let _ = sh(&format!(
            "ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null",
            ns = self.ns
        ));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A copy of Debian's FreeRADIUS configuration in `dir`, changed to run here: every path in `dir`,
/// root (no switch to freerad), the default site listening on 10.0.0.5 only (IPv4, auth 1812 and
/// acct 1813), the gateway as the one client, alice in the users file, an EAP module with only MD5
/// and MSCHAPv2 (the TLS methods need certificates Debian does not ship) and `default_eap_type`,
/// and "Login OK"/"Login incorrect" lines in the log. Accounting goes to the stock `detail` module,
/// which the default site's accounting section calls: `radacct/10.0.0.1/detail-YYYYMMDD`.
fn configure(dir: &Path, default_eap_type: &str) {
    let _ = std::fs::remove_dir_all(dir);
    ok(&format!("cp -a {STOCK} '{}'", dir.display()));
    for d in ["log", "run", "radacct"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let d = dir.display();
    let conf = std::fs::read_to_string(dir.join("radiusd.conf")).unwrap();
    let mut changed = 0;
    let conf: Vec<String> = conf
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let set = |key: &str, value: String| (t.starts_with(&format!("{key} =")), value);
            for (hit, new) in [
                set("raddbdir", format!("raddbdir = {d}")),
                set("logdir", format!("logdir = {d}/log")),
                set("run_dir", format!("run_dir = {d}/run")),
                set("radacctdir", format!("radacctdir = {d}/radacct")),
                set("user", "#user = freerad".into()),
                set("group", "#group = freerad".into()),
                set("auth", "auth = yes".into()),
            ] {
                if hit {
                    changed += 1;
                    return new;
                }
            }
            l.to_owned()
        })
        .collect();
    assert_eq!(changed, 7, "radiusd.conf changed from what the test knows");
    std::fs::write(dir.join("radiusd.conf"), conf.join("\n") + "\n").unwrap();

    // The default site: its IPv4 listeners on our address, its IPv6 ones (`ipv6addr = ::`) gone.
    let site = std::fs::read_to_string(dir.join("sites-available/default")).unwrap();
    let mut out = Vec::new();
    let mut block: Option<Vec<String>> = None;
    let mut listeners = 0;
    for l in site.lines() {
        match &mut block {
            None if l == "listen {" => block = Some(vec![l.to_owned()]),
            None => out.push(l.to_owned()),
            Some(b) => {
                b.push(l.to_owned());
                if l == "}" {
                    let b = block.take().unwrap();
                    if !b.iter().any(|l| l.trim_start().starts_with("ipv6addr")) {
                        listeners += 1;
                        out.extend(
                            b.into_iter()
                                .map(|l| if l.trim() == "ipaddr = *" { format!("\tipaddr = {RAD_IP}") } else { l }),
                        );
                    }
                }
            }
        }
    }
    assert_eq!(listeners, 2, "the default site's listen sections changed from what the test knows");
    std::fs::remove_file(dir.join("sites-enabled/default")).unwrap();
    std::fs::write(dir.join("sites-enabled/default"), out.join("\n") + "\n").unwrap();
    // The inner tunnel is for PEAP and TTLS, which are not here.
    std::fs::remove_file(dir.join("sites-enabled/inner-tunnel")).unwrap();

    std::fs::remove_file(dir.join("mods-enabled/eap")).unwrap();
    std::fs::write(
        dir.join("mods-enabled/eap"),
        format!(
            "eap {{\n\tdefault_eap_type = {default_eap_type}\n\ttimer_expire = 60\n\tignore_unknown_eap_types = no\n\t\
             cisco_accounting_username_bug = no\n\tmax_sessions = ${{max_requests}}\n\tmd5 {{\n\t}}\n\tmschapv2 {{\n\t}}\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("clients.conf"),
        format!(
            "client gateway {{\n\tipaddr = {GW_RAD_IP}\n\tsecret = \"{SECRET}\"\n\trequire_message_authenticator = yes\n}}\n"
        ),
    )
    .unwrap();
    // A Class for alice's Access-Accept, which the gateway is to echo in her accounting (RFC 2865 §5.25).
    std::fs::write(
        dir.join("mods-config/files/authorize"),
        format!("alice\tCleartext-Password := \"alice's password\"\n\tClass := \"{CLASS}\"\n"),
    )
    .unwrap();
}

/// The road-warrior gateway of `common::lan`, with `eap-radius` (asking each client its EAP
/// identity), no passwords of its own, and `[radius]` with `servers` (addresses), accounting,
/// `timeout` and `tries`.
fn gateway(lan: &Lan, pki: &Pki, servers: &[&str], timeout: &str, tries: u32) -> String {
    let c = gateway_config(lan, pki, "10.10.0.0/24", "eap-radius");
    let mut c = c.split("[[secrets.eap]]").next().unwrap().to_owned();
    c.push_str(&format!(
        "[radius]\naccounting = true\ninterim = \"60s\"\ntimeout = \"{timeout}\"\ntries = {tries}\n\
         nas_identifier = \"oxswan-test\"\n\n"
    ));
    for s in servers {
        c.push_str(&format!("[[radius.servers]]\naddress = \"{s}\"\nsecret = \"{SECRET}\"\n\n"));
    }
    c
}

fn why(lan: &Lan, rad: &FreeRadius) -> String {
    format!("\n--- gateway\n{}\n--- charon\n{}\n--- FreeRADIUS\n{}", lan.log("gw"), lan.charon_log("c0"), rad.log())
}

/// Alice in through FreeRADIUS with `stock`'s EAP method: her virtual IP, after a ping through
/// the tunnel.
fn alice_in(lan: &mut Lan, pki: &Pki, rad: &FreeRadius, stock: Stock) -> String {
    let vips =
        connect(lan, pki, 0, stock, "alice", "alice's password").unwrap_or_else(|e| panic!("{e}{}", why(lan, rad)));
    assert_eq!(vips.len(), 1, "{vips:?}");
    let v4 = vips[0].clone();
    assert!(v4.starts_with("10.10.0."), "{v4}");
    assert!(ping(lan, 0, &v4, "10.2.0.1"), "ping from {v4}{}", why(lan, rad));
    assert_eq!(gateway_sas(lan), vec![("alice".to_owned(), vec![v4.clone()])], "{}", lan.status("gw"));
    v4
}

/// The client leaves; FreeRADIUS has alice's Start and Stop with `vip` and the ping's traffic.
fn accounted(lan: &Lan, rad: &FreeRadius, vip: &str) {
    assert!(wait(10, || rad.record("Start", "alice").is_some()), "no Accounting Start{}", why(lan, rad));
    let start = rad.record("Start", "alice").unwrap();
    assert_eq!(start.get("Framed-IP-Address").map(String::as_str), Some(vip), "{start:?}");
    assert_eq!(start.get("Class").map(String::as_str), Some(CLASS_HEX), "the Access-Accept's Class: {start:?}");
    // A second at least, for a non-zero Acct-Session-Time.
    std::thread::sleep(Duration::from_millis(1100));
    let o = lan.swanctl("c0", "--terminate --ike rw --timeout 10");
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(wait(10, || rad.record("Stop", "alice").is_some()), "no Accounting Stop{}", why(lan, rad));
    let stop = rad.record("Stop", "alice").unwrap();
    let num = |k: &str| stop.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    assert_eq!(stop.get("Framed-IP-Address").map(String::as_str), Some(vip), "{stop:?}");
    assert_eq!(stop.get("Acct-Session-Id"), start.get("Acct-Session-Id"), "one session: {start:?} {stop:?}");
    assert_eq!(stop.get("Class").map(String::as_str), Some(CLASS_HEX), "{stop:?}");
    for k in
        ["Acct-Input-Octets", "Acct-Output-Octets", "Acct-Input-Packets", "Acct-Output-Packets", "Acct-Session-Time"]
    {
        assert!(num(k) > 0, "{k} in the Stop: {stop:?}");
    }
    assert_eq!(stop.get("Acct-Terminate-Cause").map(String::as_str), Some("User-Request"), "{stop:?}");
    assert!(wait(10, || gateway_sas(lan).is_empty()), "{:?}", gateway_sas(lan));
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_freeradius)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, freeradius"
)]
fn eap_mschapv2_through_freeradius() {
    ready_radius();
    let mut lan = Lan::new("rdm", 1);
    let rad = FreeRadius::start(&lan, "mschapv2", &[]);
    let pki = pki();
    lan.oxswan("gw", &gateway(&lan, &pki, &[RAD_IP], "2s", 3));
    let vip = alice_in(&mut lan, &pki, &rad, WINDOWS);
    let log = rad.log();
    assert!(log.contains("Login OK: [alice]"), "{log}");
    assert!(log.contains("Sent Access-Accept"), "{log}");
    assert!(!log.contains("Sent Access-Reject"), "{log}");
    // The MSK was FreeRADIUS's MS-MPPE keys: charon checked the gateway's AUTH with it.
    assert!(log.contains("MS-MPPE-Recv-Key"), "{log}");
    accounted(&lan, &rad, &vip);
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_freeradius)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, freeradius"
)]
fn a_wrong_password_is_rejected_by_freeradius() {
    ready_radius();
    let mut lan = Lan::new("rdw", 1);
    let rad = FreeRadius::start(&lan, "mschapv2", &[]);
    let pki = pki();
    lan.oxswan("gw", &gateway(&lan, &pki, &[RAD_IP], "2s", 3));
    let refused = connect(&mut lan, &pki, 0, WINDOWS, "alice", "not alice's password");
    assert!(refused.is_err(), "{refused:?}{}", why(&lan, &rad));
    assert!(wait(5, || lan.log("gw").contains("EAP for alice")), "the gateway names the user{}", why(&lan, &rad));
    // FreeRADIUS's EAP-Failure reached the client.
    assert!(lan.charon_log("c0").contains("received EAP_FAILURE"), "{}", why(&lan, &rad));
    assert!(wait(10, || gateway_sas(&lan).is_empty()), "no SA stays: {:?}", gateway_sas(&lan));
    let log = rad.log();
    assert!(log.contains("Sent Access-Reject"), "{log}");
    assert!(log.lines().any(|l| l.contains("Login incorrect") && l.contains("[alice]")), "{log}");
    assert!(!log.contains("Sent Access-Accept"), "{log}");
    assert!(rad.record("Start", "alice").is_none(), "no accounting for a refused client: {:?}", rad.detail());
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_freeradius)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, freeradius"
)]
fn fail_over_to_the_second_server() {
    ready_radius();
    let mut lan = Lan::new("rdf", 1);
    // 10.0.0.6 is there (on FreeRADIUS's host) but nothing listens on it.
    let rad = FreeRadius::start(&lan, "mschapv2", &["10.0.0.6"]);
    // What reaches the dead server, counted on its host.
    let nft = "table inet dead {\n chain in {\n  type filter hook input priority 0;\n  \
               ip daddr 10.0.0.6 udp dport 1812 counter name auth\n  ip daddr 10.0.0.6 udp dport 1813 counter name acct\n }\n \
               counter auth {}\n counter acct {}\n}\n";
    ok(&format!("printf '%s' '{nft}' | ip netns exec {} nft -f -", lan.ns("rad")));
    let rad_ns = lan.ns("rad");
    let sent = |what: &str| {
        let o = ok(&format!("ip netns exec {rad_ns} nft list counter inet dead {what}"));
        o.split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap()
    };
    let pki = pki();
    let metrics: std::net::SocketAddr = "127.0.0.1:9101".parse().unwrap();
    let gw = gateway(&lan, &pki, &["10.0.0.6", RAD_IP], "1s", 2)
        .replace("[daemon]\n", &format!("[daemon]\nmetrics = \"{metrics}\"\n"));
    lan.oxswan("gw", &gw);
    let start = Instant::now();
    let vip = alice_in(&mut lan, &pki, &rad, IOS);
    let took = start.elapsed();
    assert!(rad.log().contains("Login OK: [alice]"), "{}", rad.log());
    // The first Access-Request went to the dead server `tries` = 2 times, 1 s apart, before the
    // second server took it; the rest of the conversation went to the one that answered.
    assert_eq!(sent("auth"), 2, "{}", lan.log("gw"));
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "{took:?}");
    eprintln!("in through the second server in {:.2} s", took.as_secs_f64());
    // So did the accounting: new requests go first to the server that answered last.
    accounted(&lan, &rad, &vip);
    assert_eq!((sent("auth"), sent("acct")), (2, 0), "{}", lan.log("gw"));

    // The metrics: one retransmission to the dead server, no timeout; a round trip for every
    // request sent once (the conversation's others and the accounting Start and Stop), none for
    // the first, which went three times.
    let count = |kind: &str| format!("oxswan_radius_round_trip_seconds_count{{request=\"{kind}\"}}");
    let s = scrape_until(&lan.ns("gw"), metrics, 5, |s| s.get(&count("accounting")) >= 2.0);
    promtool(&s);
    assert_eq!(s.get("oxswan_radius_retransmissions_total"), 1.0, "{}", s.text);
    assert_eq!(s.get("oxswan_radius_timeouts_total"), 0.0, "{}", s.text);
    let access = s.get(&count("access"));
    assert!(access >= 2.0, "{}", s.text);
    // Each of them waited less than the 1 s timeout (that is when it would have been sent again).
    let below = |le: &str| s.get(&format!("oxswan_radius_round_trip_seconds_bucket{{request=\"access\",le=\"{le}\"}}"));
    assert_eq!(below("1"), access, "{}", s.text);
    let sum = s.get("oxswan_radius_round_trip_seconds_sum{request=\"access\"}");
    assert!(sum < access, "{}", s.text);
    eprintln!(
        "RADIUS round trips: {access} Access-Requests, {:.2} ms on average; {} Accounting-Requests",
        1000.0 * sum / access,
        s.get(&count("accounting"))
    );
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_freeradius)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, freeradius"
)]
fn eap_md5_through_freeradius() {
    ready_radius();
    let mut lan = Lan::new("rd5", 1);
    let rad = FreeRadius::start(&lan, "md5", &[]);
    let pki = pki();
    lan.oxswan("gw", &gateway(&lan, &pki, &[RAD_IP], "2s", 3));
    let vip = alice_in(&mut lan, &pki, &rad, Stock { name: "charon EAP-MD5", method: "eap-md5", ..IOS });
    let log = rad.log();
    assert!(log.contains("Login OK: [alice]"), "{log}");
    assert!(log.contains("eap_md5"), "EAP-MD5 it was: {log}");
    accounted(&lan, &rad, &vip);
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_freeradius)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, freeradius"
)]
fn a_gateway_shutdown_stops_the_sessions() {
    ready_radius();
    let mut lan = Lan::new("rds", 1);
    let rad = FreeRadius::start(&lan, "mschapv2", &[]);
    let pki = pki();
    lan.oxswan("gw", &gateway(&lan, &pki, &[RAD_IP], "2s", 3));
    let vip = alice_in(&mut lan, &pki, &rad, WINDOWS);
    assert!(wait(10, || rad.record("Start", "alice").is_some()), "no Accounting Start{}", why(&lan, &rad));
    ok(&format!("kill -TERM {}", lan.daemons[0].id()));
    let _ = lan.daemons[0].wait();
    assert!(wait(5, || rad.record("Stop", "alice").is_some()), "no Accounting Stop{}", why(&lan, &rad));
    let stop = rad.record("Stop", "alice").unwrap();
    assert_eq!(stop.get("Framed-IP-Address").map(String::as_str), Some(vip.as_str()), "{stop:?}");
    assert_eq!(stop.get("Acct-Terminate-Cause").map(String::as_str), Some("Admin-Reboot"), "{stop:?}");
    let num = |k: &str| stop.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    assert!(num("Acct-Input-Octets") > 0 && num("Acct-Output-Octets") > 0, "the ping's traffic: {stop:?}");
    assert!(!lan.log("gw").contains("without the servers' answer"), "FreeRADIUS took the Stop:\n{}", lan.log("gw"));
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft, have_freeradius)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft, freeradius"
)]
fn accounting_goes_on_across_rekeys() {
    ready_radius();
    let mut lan = Lan::new("rdr", 1);
    let rad = FreeRadius::start(&lan, "mschapv2", &[]);
    let pki = pki();
    lan.oxswan("gw", &gateway(&lan, &pki, &[RAD_IP], "2s", 3));
    // charon rekeys its IKE SA every 3 s and its CHILD SA every 2 s. Its lifetimes are in whole
    // seconds, the default ones (10 % more) would be as short: they are set apart.
    let conf = client_conf(&lan, 0, IOS, "alice", "alice's password")
        .replacen("  version = 2\n", "  version = 2\n  rekey_time = 3s\n  over_time = 30s\n  rand_time = 0s\n", 1)
        .replacen(
            "    esp_proposals",
            "    rekey_time = 2s\n    life_time = 30s\n    rand_time = 0s\n    esp_proposals",
            1,
        );
    lan.charon("c0", &conf, &[("x509ca/root.der", pki.root.clone())]);
    let up = lan.swanctl("c0", "--initiate --child net --timeout 20");
    assert!(up.status.success(), "{}{}", String::from_utf8_lossy(&up.stdout), why(&lan, &rad));
    let vip = charon_vips(&lan, "c0").first().cloned().unwrap_or_else(|| panic!("no virtual IP{}", why(&lan, &rad)));
    assert!(ping(&lan, 0, &vip, "10.2.0.1"), "ping from {vip}{}", why(&lan, &rad));
    let rekeys = |what: &str| lan.log("gw").matches(what).count();
    assert!(
        wait(10, || rekeys("IKE SA rekeyed") >= 1 && rekeys("CHILD SA net rekeyed") >= 2),
        "charon rekeyed{}",
        why(&lan, &rad)
    );
    // The rekeyed SA is still alice's.
    assert_eq!(gateway_sas(&lan), vec![("alice".to_owned(), vec![vip.clone()])], "{}", lan.status("gw"));
    assert!(ping(&lan, 0, &vip, "10.2.0.1"), "ping from {vip} after the rekeys{}", why(&lan, &rad));
    let o = lan.swanctl("c0", "--terminate --ike rw --timeout 10");
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(wait(10, || rad.record("Stop", "alice").is_some()), "no Accounting Stop{}", why(&lan, &rad));
    let records = rad.detail();
    let statuses: Vec<&str> = records.iter().filter_map(|r| r.get("Acct-Status-Type").map(String::as_str)).collect();
    assert_eq!(statuses, ["Start", "Stop"], "one session, however often rekeyed: {records:?}");
    let (start, stop) = (&records[0], &records[1]);
    assert_eq!(start.get("Acct-Session-Id"), stop.get("Acct-Session-Id"), "{records:?}");
    assert_eq!(stop.get("Framed-IP-Address"), Some(&vip), "{stop:?}");
    // Both pings, 6 × 84 octets each way, through pairs that are long gone.
    let num = |k: &str| stop.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    for k in ["Acct-Input-Octets", "Acct-Output-Octets"] {
        assert!(num(k) >= 6 * 84, "{k}: both pings in the Stop: {stop:?}");
    }
    for k in ["Acct-Input-Packets", "Acct-Output-Packets"] {
        assert!(num(k) >= 6, "{k}: both pings in the Stop: {stop:?}");
    }
    eprintln!(
        "{} IKE and {} CHILD rekeys; Stop: {} octets in, {} out",
        rekeys("IKE SA rekeyed"),
        rekeys("CHILD SA net rekeyed"),
        num("Acct-Input-Octets"),
        num("Acct-Output-Octets")
    );
}
