//! Issue 15, `oxswan import-swanctl`: swanctl.conf pairs that work between two charons, one side
//! converted and run by oxswan, the other run by strongSwan's charon as written; the tunnel comes
//! up and pings pass, in both roles. The pairs: the kit's PSK examples (examples/strongswan/, copies
//! of the interop kit's psk-left and psk-right), a site-to-site pair with certificates from `oxswan
//! pki` and several proposals (tests/data/swanctl/cert-*), and a road-warrior gateway with a pool
//! and EAP-MSCHAPv2 users with its client (tests/data/swanctl/rw-*). Certificates and keys are laid
//! out where swanctl looks for them (x509/, x509ca/, private/, pkcs8/), and the converter finds them
//! there. The namespace tests need root, strongSwan and nftables (`bash .ci/run` installs them);
//! the conversion test runs anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::lan::{Lan, charon_vips, gateway_sas, ping, wait};
use common::*;

fn ready() {
    // The road-warrior check covers root, the tools, charon, swanctl, nft and EAP-MSCHAPv2.
    common::lan::ready()
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kit's PSK examples, kept in examples/strongswan/.
fn kit_example(side: &str) -> PathBuf {
    manifest().join(format!("../../examples/strongswan/{side}.swanctl.conf"))
}

/// A pair's side in tests/data/swanctl/.
fn data(pair: &str) -> PathBuf {
    manifest().join("tests/data/swanctl").join(pair).join("swanctl.conf")
}

/// A configuration's files (the file as swanctl.conf and the conf.d/ beside it), relative to its
/// directory.
fn conf_files(src: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("swanctl.conf".to_owned(), std::fs::read(src).unwrap())];
    if let Ok(rd) = std::fs::read_dir(src.parent().unwrap().join("conf.d")) {
        for e in rd {
            let e = e.unwrap();
            out.push((format!("conf.d/{}", e.file_name().to_string_lossy()), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

/// A swanctl directory under `into`: the pair's configuration files and `creds` (paths relative
/// to it); returns its swanctl.conf.
fn lay_out(into: &Path, src: &Path, creds: &[(&str, Vec<u8>)]) -> PathBuf {
    let _ = std::fs::remove_dir_all(into);
    let conf: Vec<(String, Vec<u8>)> = conf_files(src);
    for (p, d) in conf.iter().map(|(p, d)| (p.as_str(), d)).chain(creds.iter().map(|(p, d)| (*p, d))) {
        let path = into.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    into.join("swanctl.conf")
}

/// `oxswan import-swanctl FILE`: the TOML and what it said on stderr.
fn import(conf: &Path) -> (String, String) {
    let o = Command::new(OX).arg("import-swanctl").arg(conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "import-swanctl {}: {stderr}", conf.display());
    (String::from_utf8(o.stdout).unwrap(), stderr)
}

/// Converts and checks the result as the daemon would load it; returns the TOML and stderr.
fn import_checked(conf: &Path) -> (String, String) {
    let (toml, stderr) = import(conf);
    let path = conf.with_extension("toml");
    std::fs::write(&path, &toml).unwrap();
    let o = Command::new(OX).arg("check-config").arg(&path).output().unwrap();
    assert!(
        o.status.success(),
        "check-config of {}'s conversion: {}\n{toml}\n{stderr}",
        conf.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!stderr.contains("does not load"), "{stderr}");
    (toml, stderr)
}

/// `oxswan pki` into `dir`.
fn pki(dir: &Path, steps: &[&[&str]]) {
    for args in steps {
        let o = Command::new(OX).arg("pki").args(*args).arg("--dir").arg(dir).output().unwrap();
        assert!(o.status.success(), "oxswan pki {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

fn read(dir: &Path, p: &str) -> Vec<u8> {
    std::fs::read(dir.join("pki").join(p)).unwrap()
}

/// The site-to-site pair's credentials: left's client certificate, right's gateway certificate
/// with its key in pkcs8/ and an unrelated key in private/ that the converter must pass over, and
/// the CA's revocation list in x509crl/.
fn cert_creds(dir: &Path) -> [Vec<(&'static str, Vec<u8>)>; 2] {
    pki(
        dir,
        &[
            &["init"],
            &["server", "--name", "right.example", "--address", "192.0.2.2"],
            &["client", "left.example"],
            &["client", "decoy"],
        ],
    );
    let ca = read(dir, "ca.crt");
    [
        vec![
            ("x509/left.crt", read(dir, "clients/left.example.crt")),
            ("private/left.key", read(dir, "private/clients/left.example.key")),
            ("x509ca/ca.crt", ca.clone()),
        ],
        vec![
            ("x509/right.crt", read(dir, "server.crt")),
            ("private/decoy.key", read(dir, "private/clients/decoy.key")),
            ("pkcs8/right.key", read(dir, "private/server.key")),
            ("x509ca/ca.crt", ca),
            // The CA's (empty) revocation list, which oxswan must then check left's certificate against.
            ("x509crl/ca.crl", read(dir, "crl.pem")),
        ],
    ]
}

/// The road-warrior pair's: the gateway's certificate for vpn.example; the client trusts the CA.
fn rw_creds(dir: &Path) -> [Vec<(&'static str, Vec<u8>)>; 2] {
    pki(dir, &[&["init"], &["server", "--name", "vpn.example"]]);
    let ca = read(dir, "ca.crt");
    [
        vec![
            ("x509/vpn.crt", read(dir, "server.crt")),
            ("private/vpn.key", read(dir, "private/server.key")),
            ("x509ca/ca.crt", ca.clone()),
        ],
        vec![("x509ca/ca.crt", ca)],
    ]
}

#[test]
fn every_test_configuration_converts_and_loads() {
    let dir = std::env::temp_dir().join(format!("oxswan-import-swanctl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The kit's examples: everything carried over, and psk-right is the project's own right.toml.
    for side in ["left", "right"] {
        let (toml, stderr) = import_checked(&lay_out(&dir.join(format!("psk-{side}")), &kit_example(side), &[]));
        assert!(stderr.is_empty(), "{stderr}");
        assert!(toml.contains("# Every setting was carried over."), "{toml}");
    }
    let converted =
        oxswan_config::parse(Path::new("converted"), &import(&dir.join("psk-right/swanctl.conf")).0).unwrap();
    let example = oxswan_config::load(&manifest().join("../../examples/right.toml")).unwrap();
    let mut net = converted.connection("net").unwrap().clone();
    net.name = "site".into();
    assert_eq!(Some(&net), example.connection("site"));
    assert_eq!(converted.secrets, example.secrets);

    let [left, right] = cert_creds(&dir.join("cert-pki"));
    let (toml, stderr) = import_checked(&lay_out(&dir.join("cert-left"), &data("cert-left"), &left));
    assert!(stderr.is_empty(), "{stderr}");
    assert!(toml.contains(&format!("key = \"{}\"", dir.join("cert-left/private/left.key").display())), "{toml}");
    let right_dir = dir.join("cert-right");
    let (toml, stderr) = import_checked(&lay_out(&right_dir, &data("cert-right"), &right));
    // The key is found by its public key (not the decoy in private/), the CA from x509ca/ with its
    // revocation list from x509crl/, the child from conf.d/; updown is named with where it was
    // written.
    let t: toml::Table = toml.parse().unwrap();
    let site = &t["connections"]["site"];
    assert_eq!(site["local"]["key"].as_str().unwrap(), right_dir.join("pkcs8/right.key").to_str().unwrap());
    assert_eq!(site["remote"]["cacerts"][0].as_str().unwrap(), right_dir.join("x509ca/ca.crt").to_str().unwrap());
    assert_eq!(site["remote"]["crls"][0].as_str().unwrap(), right_dir.join("x509crl/ca.crl").to_str().unwrap());
    assert_eq!(site["proposals"].as_array().unwrap().len(), 3);
    assert_eq!(site["dpd_action"].as_str(), Some("restart"), "dpd_action moves from the child to the connection");
    let net = &site["children"]["net"];
    assert_eq!(net["esp_proposals"].as_array().unwrap().len(), 2);
    assert_eq!(net["rekey_time"].as_str(), Some("1h"), "life_time 66m makes rekey_time 66m / 1.1 (charon's rule)");
    let updown = format!("{}:8: connections.site.children.net.updown", right_dir.join("conf.d/net.conf").display());
    assert!(stderr.lines().any(|l| l.starts_with(&updown)), "{stderr}");
    assert!(toml.contains("#   ") && toml.contains("updown"), "the note is in the TOML too: {toml}");
    assert_eq!(stderr.lines().count(), 1, "only updown is not carried over: {stderr}");

    let [gw, client] = rw_creds(&dir.join("rw-pki"));
    let (toml, stderr) = import_checked(&lay_out(&dir.join("rw-gateway"), &data("rw-gateway"), &gw));
    assert!(stderr.is_empty(), "{stderr}");
    let t: toml::Table = toml.parse().unwrap();
    assert_eq!(t["pools"]["rw4"]["dns"][0].as_str(), Some("10.10.0.53"));
    assert_eq!(t["secrets"]["eap"].as_array().unwrap().len(), 2);
    let (_, stderr) = import_checked(&lay_out(&dir.join("rw-client"), &data("rw-client"), &client));
    assert!(stderr.is_empty(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A broken file: exit status 1 and the file and line of the error.
#[test]
fn a_syntax_error_fails_with_its_line() {
    let dir = std::env::temp_dir().join(format!("oxswan-import-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("swanctl.conf");
    std::fs::write(&conf, "connections {\n  a {\n    local_addrs = 192.0.2.1\n    remote {\n").unwrap();
    let o = Command::new(OX).arg("import-swanctl").arg(&conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains(&format!("{}:5:", conf.display())), "{stderr}");
    assert!(o.stdout.is_empty());
    let o = Command::new(OX).arg("import-swanctl").arg(dir.join("missing.conf")).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.conf"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Charon on `ch_side` with `src`'s configuration as written and `ch_creds`; oxswan on the other
/// side with the conversion of `ox_src` laid out with `ox_creds`; `ox_initiates` says who starts.
/// The tunnel between left's 10.1.0.1 and right's 10.2.0.1 comes up and pings pass.
#[allow(clippy::too_many_arguments)]
fn site_to_site(
    prefix: &str,
    ox_side: &str,
    ox_src: &Path,
    ox_creds: &[(&str, Vec<u8>)],
    ch_src: &Path,
    ch_creds: &[(&str, Vec<u8>)],
    conn: &str,
    ox_initiates: bool,
) {
    let mut h = Hosts::new(prefix);
    let ch_side = if ox_side == "left" { "right" } else { "left" };
    let (toml, _) = import_checked(&lay_out(&h.dir.join(format!("swanctl-{ox_side}")), ox_src, ox_creds));
    let mut files: Vec<(String, Vec<u8>)> = conf_files(ch_src);
    let (_, conf) = files.remove(0);
    files.extend(ch_creds.iter().map(|(p, d)| ((*p).to_owned(), d.clone())));
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let conf = String::from_utf8(conf).unwrap();
    if ox_initiates {
        h.start_charon(ch_side, &conf, &files);
        h.start_text(ox_side, &toml);
        let up = h.ox(ox_side, &format!("up {conn} --timeout 20"));
        assert!(
            up.status.success(),
            "oxswan up: {}\n--- oxswan\n{}\n--- charon\n{}",
            String::from_utf8_lossy(&up.stderr),
            h.log(ox_side),
            h.charon_log(ch_side)
        );
    } else {
        h.start_text(ox_side, &toml);
        h.start_charon(ch_side, &conf, &files);
        let up = h.swanctl(ch_side, "--initiate --child net --timeout 20");
        assert!(
            up.status.success(),
            "swanctl --initiate: {}\n--- oxswan\n{}\n--- charon\n{}",
            String::from_utf8_lossy(&up.stdout),
            h.log(ox_side),
            h.charon_log(ch_side)
        );
    }
    assert!(wait(10, || h.charon_has_sa(ch_side)), "charon's SA\n{}", h.charon_log(ch_side));
    assert!(
        h.ping(3),
        "ping through the tunnel\n--- oxswan\n{}\n--- charon\n{}",
        h.log(ox_side),
        h.charon_log(ch_side)
    );
    let st = h.status(ox_side);
    assert_eq!(st["ike_sas"][0]["name"], conn, "{st}");
    assert!(counter(&st, "packets_in") >= 3, "{st}");
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn the_kits_psk_examples_carry_traffic_with_charon() {
    ready();
    // oxswan answers as the converted psk-right; then initiates as the converted psk-left.
    site_to_site("oxsw1", "right", &kit_example("right"), &[], &kit_example("left"), &[], "net", false);
    site_to_site("oxsw2", "left", &kit_example("left"), &[], &kit_example("right"), &[], "net", true);
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn certificates_and_several_proposals_carry_traffic_with_charon() {
    ready();
    let dir = std::env::temp_dir().join(format!("oxswan-import-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let [left, right] = cert_creds(&dir);
    site_to_site("oxsw3", "right", &data("cert-right"), &right, &data("cert-left"), &left, "site", false);
    site_to_site("oxsw4", "left", &data("cert-left"), &left, &data("cert-right"), &right, "site", true);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The road-warrior pair behind the NAT box of road_warriors.rs: oxswan as the converted gateway
/// with charon as alice, then charon as the gateway with oxswan as the converted client.
#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, nft"
)]
fn a_road_warrior_gateway_with_a_pool_and_eap_carries_traffic_with_charon() {
    ready();
    let text = |p: &str| std::fs::read_to_string(data(p)).unwrap();
    {
        let mut lan = Lan::new("oxsw5", 1);
        let [gw, client] = rw_creds(&lan.dir.join("pki"));
        let (toml, _) = import_checked(&lay_out(&lan.dir.join("swanctl-gw"), &data("rw-gateway"), &gw));
        lan.oxswan("gw", &toml);
        lan.charon("c0", &text("rw-client"), &client);
        let up = lan.swanctl("c0", "--initiate --child home --timeout 20");
        assert!(
            up.status.success(),
            "{}\n--- gateway\n{}\n--- charon\n{}",
            String::from_utf8_lossy(&up.stdout),
            lan.log("gw"),
            lan.charon_log("c0")
        );
        assert_eq!(charon_vips(&lan, "c0"), vec!["10.10.0.1"], "a virtual IP from the converted pool");
        assert!(lan.charon_log("c0").contains("INTERNAL_IP4_DNS"), "the pool's DNS server reached charon");
        assert_eq!(gateway_sas(&lan), vec![("alice".to_owned(), vec!["10.10.0.1".to_owned()])]);
        assert!(ping(&lan, 0, "10.10.0.1", "10.2.0.1"), "{}", lan.log("gw"));
    }
    let mut lan = Lan::new("oxsw6", 1);
    let [gw, client] = rw_creds(&lan.dir.join("pki"));
    lan.charon("gw", &text("rw-gateway"), &gw);
    let (toml, _) = import_checked(&lay_out(&lan.dir.join("swanctl-c0"), &data("rw-client"), &client));
    // The DNS server the client is given goes into this namespace's resolv.conf, not the host's.
    let etc = PathBuf::from(format!("/etc/netns/{}", lan.ns("c0")));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 198.51.100.53\n").unwrap();
    lan.oxswan("c0", &toml);
    let up = lan.ox("c0", "up home --timeout 20");
    assert!(
        up.status.success(),
        "{}\n--- oxswan\n{}\n--- charon\n{}",
        String::from_utf8_lossy(&up.stderr),
        lan.log("c0"),
        lan.charon_log("gw")
    );
    let st = lan.status("c0");
    assert_eq!(st["ike_sas"][0]["local_vips"], serde_json::json!(["10.10.0.1"]), "{st}");
    assert!(ping(&lan, 0, "10.10.0.1", "10.2.0.1"), "{}", lan.log("c0"));
}
