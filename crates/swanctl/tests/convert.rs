//! The converter on real-world-shaped swanctl.conf files: what is carried over and how, what is
//! named and where, what makes a connection or child stay behind, and credentials found as swanctl
//! finds them. Every converted file is loaded by oxswan's own configuration loader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

#[path = "../../ike/tests/common/pki.rs"]
mod pki;

use std::path::{Path, PathBuf};

use oxswan_swanctl::{Import, import};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxswan-convert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    for (p, d) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    dir.join("swanctl.conf")
}

/// Converts, and checks that oxswan's loader takes the result; returns it with the TOML parsed.
fn convert(conf: &Path) -> (Import, toml::Table) {
    let i = import(conf).unwrap();
    if let Err(e) = oxswan_config::parse(Path::new("converted.toml"), &i.toml) {
        panic!("{e}\n{}", i.toml);
    }
    let t = i.toml.parse().unwrap();
    (i, t)
}

/// The 1-based line of `text` where `needle` first appears.
fn line(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in the text")) + 1
}

/// The notes at `line` of swanctl.conf about `key`, joined.
fn note(i: &Import, line: usize, key: &str) -> String {
    let found: Vec<&str> =
        i.notes.iter().filter(|n| n.loc.line == line && n.key == key).map(|n| n.message.as_str()).collect();
    assert!(!found.is_empty(), "no note at line {line} for {key}: {:#?}", i.notes);
    found.join(" | ")
}

const SITE: &str = r#"# A site with what real configurations carry.
connections {
  site {
    version = 2
    local_addrs = 192.0.2.1, vpn.example.org
    remote_addrs = 192.0.2.2
    proposals = aes256gcm16-prfsha384-ecp384, aes999-sha1-modp2048, aes256gcm16-prfsha384-x25519-ke1_mlkem768, aes256-sha256-modp2048
    encap = yes
    mobike = no
    fragmentation = accept
    dpd_delay = 0
    reauth_time = 8h
    unique = replace
    childless = force
    ppk_id = pqk
    ppk_required = yes
    send_cert = never
    aggressive = no
    keyingtries = 0
    local {
      auth = psk
      id = left.example
    }
    remote {
      auth = psk
      id = right.example
    }
    children {
      net {
        local_ts = 10.1.0.0/16, 10.3.0.0/16[tcp/80]
        remote_ts = 10.2.0.0/16
        esp_proposals = aes256gcm16-modp2048, aes128gcm16, aes128gcm16-x25519-ke1_mlkem768
        start_action = trap|start
        close_action = start
        life_time = 2h
        life_bytes = 11G
        rekey_packets = 1000000
        updown = /usr/local/bin/updown.sh
        mode = tunnel
        copy_df = yes
      }
      ports {
        local_ts = 10.1.0.1/32[udp/53]
        remote_ts = 10.2.0.0/16
      }
      tr {
        mode = transport
      }
    }
  }
}
secrets {
  ike-1 {
    id-a = left.example
    id-b = right.example
    secret = 0x636f727265637420686f727365
  }
  xauth-1 {
    id = bob
    secret = x
  }
  ppk-1 {
    id = pqk
    secret = 0x00ff0102
  }
  ppk-2 {
    id-a = words
    secret = "a textual PPK"
  }
}
"#;

#[test]
fn a_site_to_site_connection_key_by_key() {
    let d = tmp("site");
    let (i, t) = convert(&write(&d, &[("swanctl.conf", SITE.as_bytes())]));
    let site = &t["connections"]["site"];
    assert_eq!(site["local_addrs"].as_array().unwrap().len(), 1);
    assert!(
        note(&i, line(SITE, "vpn.example.org"), "connections.site.local_addrs")
            .contains("`vpn.example.org` not carried over")
    );
    let props: Vec<&str> = site["proposals"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    // IKE SAs make additional key exchanges (IKE_INTERMEDIATE, IKE_FOLLOWUP_KE): carried over.
    assert_eq!(
        props,
        ["aes256gcm16-prfsha384-ecp384", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256-sha256-modp2048"],
        "as written, minus one"
    );
    let m = note(&i, line(SITE, "aes999"), "connections.site.proposals");
    assert!(m.contains("aes999"), "{m}");
    assert_eq!(i.notes.iter().filter(|n| n.key == "connections.site.proposals").count(), 1);
    assert_eq!((site["encap"].as_bool(), site["mobike"].as_bool()), (Some(true), Some(false)));
    assert_eq!(site["fragmentation"].as_bool(), Some(false));
    assert!(site.get("dpd_delay").is_none(), "0 is no DPD");
    assert_eq!(site["reauth_time"].as_str(), Some("8h"));
    assert_eq!(site["rekey_time"].as_str(), Some("0"), "with reauth_time, swanctl's rekey_time defaults to 0");
    assert_eq!(site["unique"].as_str(), Some("replace"));
    assert_eq!(site["childless"].as_str(), Some("force"));
    assert_eq!((site["ppk_id"].as_str(), site["ppk_required"].as_bool()), (Some("pqk"), Some(true)));
    // PPKs: binary keys stay hex, text stays text.
    let ppk = t["secrets"]["ppk"].as_array().unwrap();
    assert_eq!(ppk[0]["ids"].as_array().unwrap()[0].as_str(), Some("pqk"));
    assert_eq!(ppk[0]["secret"].as_str(), Some("0x00ff0102"));
    assert_eq!(
        (ppk[1]["ids"].as_array().unwrap()[0].as_str(), ppk[1]["secret"].as_str()),
        (Some("words"), Some("a textual PPK"))
    );
    assert!(note(&i, line(SITE, "send_cert"), "connections.site.send_cert").contains("not carried over"));
    assert!(note(&i, line(SITE, "keyingtries"), "connections.site.keyingtries").contains("not carried over"));
    assert!(!i.notes.iter().any(|n| n.key.ends_with("aggressive") || n.key.ends_with("version")));
    assert_eq!(site["close_action"].as_str(), Some("start"));

    let net = &site["children"]["net"];
    assert_eq!(net["local_ts"].as_array().unwrap().len(), 1);
    assert!(note(&i, line(SITE, "[tcp/80]"), "connections.site.children.net.local_ts").contains("10.3.0.0/16[tcp/80]"));
    // CHILD SAs make additional key exchanges too (IKE_FOLLOWUP_KE): all three carried over.
    assert_eq!(net["esp_proposals"].as_array().unwrap().len(), 3);
    assert_eq!(net["start_action"].as_str(), Some("start"));
    assert_eq!(net["life_time"].as_str(), Some("2h"));
    assert_eq!(net["rekey_time"].as_str(), Some("6545s"), "life / 1.1 as charon");
    assert_eq!(net["rand_time"].as_str(), Some("655s"), "life - rekey as charon");
    assert_eq!(net["life_bytes"].as_integer(), Some(11 << 30));
    assert_eq!(net["rekey_bytes"].as_integer(), Some((11 << 30) / 11 * 10));
    assert_eq!(net["rekey_packets"].as_integer(), Some(1_000_000));
    assert!(net.get("life_packets").is_none(), "oxswan's default, 1.1 × rekey, is charon's");
    assert!(note(&i, line(SITE, "updown"), "connections.site.children.net.updown").contains("updown"));
    assert!(!i.notes.iter().any(|n| n.key.ends_with("copy_df") || n.key.ends_with("net.mode")), "{:#?}", i.notes);
    // A child none of whose selectors can be carried, and one in transport mode, stay behind.
    assert!(site["children"].get("ports").is_none() && site["children"].get("tr").is_none());
    assert!(
        note(&i, line(SITE, "[udp/53]"), "connections.site.children.ports.local_ts")
            .contains("child `ports` not carried over")
    );
    assert!(note(&i, line(SITE, "transport"), "connections.site.children.tr.mode").contains("tunnel mode only"));

    let ike = &t["secrets"]["ike"][0];
    assert_eq!(ike["secret"].as_str(), Some("correct horse"), "0x hex decoded");
    assert_eq!(ike["ids"].as_array().unwrap().len(), 2);
    assert!(note(&i, line(SITE, "xauth-1"), "secrets.xauth-1").contains("XAuth"));
    // Every note is at the top of the TOML too, as a comment.
    for n in &i.notes {
        assert!(i.toml.contains(&format!("#   {n}")), "{n}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn connections_whose_loss_would_widen_who_may_connect_stay_behind() {
    let d = tmp("left-out");
    let conf = "connections {\n\
      v1 {\n version = 1\n local { auth = psk\n id = a }\n remote { auth = psk }\n }\n\
      rounds {\n local { auth = psk\n id = a }\n remote-1 { auth = psk }\n remote-2 { auth = eap-md5 }\n }\n\
      wild {\n local { auth = psk\n id = a }\n remote { auth = psk\n id = *@example.org }\n }\n\
      groups {\n local { auth = psk\n id = a }\n remote { auth = eap-mschapv2\n groups = staff }\n }\n\
      ttls {\n local { auth = psk\n id = a }\n remote { auth = eap-ttls }\n }\n\
      kept {\n local { auth = psk\n id = a }\n remote { auth = psk }\n }\n\
    }\nsecrets {\n ike { secret = s }\n eap-x { id = x\n secret = p }\n}\n";
    let (i, t) = convert(&write(&d, &[("swanctl.conf", conf.as_bytes())]));
    let conns: Vec<&String> = t["connections"].as_table().unwrap().keys().collect();
    assert_eq!(conns, ["kept"]);
    for (line, key, why) in [
        (line(conf, "version = 1"), "connections.v1.version", "IKEv1"),
        (line(conf, "remote-2"), "connections.rounds.remote-2", "second remote authentication round"),
        (line(conf, "*@"), "connections.wild.remote.id", "wildcards"),
        (line(conf, "groups = staff"), "connections.groups.remote.groups", "would accept peers"),
        (line(conf, "eap-ttls"), "connections.ttls.remote.auth", "eap-ttls"),
    ] {
        assert!(note(&i, line, key).contains(why), "{key}: {}", note(&i, line, key));
    }
    // The secret for any identity goes to our identity of the PSK connection kept.
    assert_eq!(t["secrets"]["ike"][0]["ids"].as_array().unwrap()[0].as_str(), Some("a"));
    assert!(note(&i, line(conf, "ike { secret"), "secrets.ike").contains("carried over for our identities a"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn credentials_are_found_as_swanctl_finds_them() {
    let d = tmp("creds");
    let ca = pki::Ca::new("convert", pki::Alg::P256);
    let (cert, key) = ca.issue(pki::Alg::P256, "gw", &["vpn.example"], (2025, 2030));
    let (_, other_key) = ca.issue(pki::Alg::P256, "other", &["other.example"], (2025, 2030));
    // No certs named: charon takes the certificate of x509/ for our identity whose key it has.
    let conf = b"connections {\n rw {\n  pools = p\n  local {\n   auth = pubkey\n   id = vpn.example\n  }\n  \
                 remote {\n   auth = eap-tls\n   eap_id = %any\n  }\n }\n client {\n  remote_addrs = 192.0.2.9\n  \
                 local {\n   auth = eap-tls\n   certs = gw.der\n  }\n  remote {\n   id = vpn.example\n   cacerts = /nonexistent/ca.pem\n  }\n }\n}\n\
                 pools {\n p {\n  addrs = 10.9.0.0/24\n  dns = 10.9.0.53, fd00::53\n  subnet = 10.2.0.0/16\n  25 = corp.example\n  nbns = 10.9.0.1\n }\n}\n";
    let text = std::str::from_utf8(conf).unwrap();
    let conf = write(
        &d,
        &[
            ("swanctl.conf", conf),
            ("x509/gw.der", &cert),
            ("x509/int.der", &ca.intermediate_der),
            ("x509ca/root.der", &ca.root_der),
            ("private/other.der", &other_key),
            ("rsa/gw.der", &key),
            ("pkcs8/locked.pem", b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
        ],
    );
    let i = import(&conf).unwrap();
    let t: toml::Table = i.toml.parse().unwrap();
    let rw = &t["connections"]["rw"];
    let chain: Vec<&str> = rw["local"]["certs"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(
        chain,
        [d.join("x509/gw.der").to_str().unwrap(), d.join("x509/int.der").to_str().unwrap()],
        "with the intermediate, not the root"
    );
    assert_eq!(rw["local"]["key"].as_str(), d.join("rsa/gw.der").to_str(), "the key matching the certificate");
    assert_eq!(rw["remote"]["cacerts"][0].as_str(), d.join("x509ca/root.der").to_str(), "x509ca/ when none named");
    let pool = &t["pools"]["p"];
    assert_eq!(pool["dns"].as_array().unwrap().len(), 2);
    assert_eq!(pool["split_include"][0].as_str(), Some("10.2.0.0/16"), "swanctl's subnet");
    assert_eq!(pool["dns_domains"][0].as_str(), Some("corp.example"), "attribute 25");
    assert!(note(&i, line(text, "nbns"), "pools.p.nbns").contains("not carried over"));
    // The client names a CA file that is not there: it stays behind, saying which file.
    assert!(t["connections"].get("client").is_none());
    assert!(
        note(&i, line(text, "/nonexistent/ca.pem"), "connections.client.remote.cacerts")
            .contains("/nonexistent/ca.pem")
    );
    oxswan_config::parse(Path::new("converted.toml"), &i.toml).unwrap();

    // Without the matching key, the connection stays behind and the note says what was there.
    std::fs::remove_file(d.join("rsa/gw.der")).unwrap();
    let i = import(&conf).unwrap();
    let n = i.notes.iter().find(|n| n.message.contains("connection `rw` not carried over")).unwrap();
    assert!(n.message.contains("no certificate"), "{n}");
    std::fs::write(d.join("swanctl.conf"), "connections {\n rw {\n  local {\n   certs = gw.der\n  }\n }\n}\n").unwrap();
    let i = import(&conf).unwrap();
    let n = i.notes.iter().find(|n| n.message.contains("connection `rw` not carried over")).unwrap();
    assert!(n.message.contains("no private key") && n.message.contains("locked.pem: encrypted"), "{n}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn road_warrior_client_and_eap_secrets() {
    let d = tmp("client");
    let conf = "connections {\n home : templates.client {\n  remote_addrs = 192.0.2.2\n  local {\n   id = alice@example.org\n   eap_id = alice\n  }\n }\n}\n\
                templates {\n client {\n  vips = 0.0.0.0, ::\n  local { auth = eap-mschapv2 }\n  remote { auth = psk\n id = vpn.example }\n  \
                children { net { remote_ts = 0.0.0.0/0, ::/0\n start_action = start } }\n }\n}\n\
                secrets {\n eap-a {\n  id = alice\n  id-2 = alice@example.org\n  secret = \"pass word\"\n }\n ike-gw {\n  id = vpn.example\n  secret = 0sc2VjcmV0\n }\n}\n";
    let (i, t) = convert(&write(&d, &[("swanctl.conf", conf.as_bytes())]));
    let home = &t["connections"]["home"];
    assert_eq!(home["vips"].as_array().unwrap().len(), 2, "from the referenced template");
    assert_eq!(home["local"]["auth"].as_str(), Some("eap-mschapv2"));
    assert_eq!(home["local"]["eap_id"].as_str(), Some("alice"));
    assert_eq!(home["children"]["net"]["start_action"].as_str(), Some("start"));
    let eap = t["secrets"]["eap"].as_array().unwrap();
    assert_eq!(eap.len(), 2, "one entry per identity");
    assert_eq!(eap[1]["secret"].as_str(), Some("pass word"));
    assert_eq!(t["secrets"]["ike"][0]["secret"].as_str(), Some("secret"), "0s base64 decoded");
    assert!(note(&i, line(conf, "templates {"), "templates").contains("not a section of swanctl.conf"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn nothing_of_the_input_escapes_the_toml_comments_or_strings() {
    let d = tmp("escape");
    let conf = "connections {\n \"x\" {\n }\n evil {\n  local_addrs = \"1.2.3.4\\n[daemon]\\ntun = \\\"pwn\\\"\"\n  \
                local { auth = psk\n id = \"a\\\"b\" }\n  remote { auth = psk }\n }\n}\nsecrets { ike { id = a\n secret = \"q\\\"\\n]\" } }\n";
    let r = import(&write(&d, &[("swanctl.conf", conf.as_bytes())]));
    // `"x" {` is a syntax error in strongSwan too.
    assert!(r.is_err());
    std::fs::write(d.join("swanctl.conf"), conf.replace(" \"x\" {\n }\n", "")).unwrap();
    let i = import(&d.join("swanctl.conf")).unwrap();
    let t: toml::Table = i.toml.parse().unwrap();
    assert!(t.get("daemon").is_none(), "{}", i.toml);
    assert_eq!(t["secrets"]["ike"][0]["secret"].as_str(), Some("q\"\n]"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn default_proposals_are_oxswans_in_place() {
    let d = tmp("default");
    let conf = "connections {\n c {\n  proposals = default\n  local { auth = psk\n id = a }\n  remote { auth = psk }\n  \
                children { n { esp_proposals = aes128gcm16, default } }\n }\n}\nsecrets { ike-1 { id = a\n secret = x } }\n";
    let (i, t) = convert(&write(&d, &[("swanctl.conf", conf.as_bytes())]));
    let c = &t["connections"]["c"];
    assert!(c.get("proposals").is_none(), "`default` alone: the key left out, oxswan's default");
    let esp: Vec<&str> =
        c["children"]["n"]["esp_proposals"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let mut want = vec!["aes128gcm16"];
    want.extend(oxswan_crypto::proposal::DEFAULT_ESP);
    assert_eq!(esp, want, "among others, written out where it stands");
    assert_eq!(i.notes.iter().filter(|n| n.message.contains("`default` is oxswan's")).count(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn per_cpu_sas_is_carried_over() {
    let d = tmp("per-cpu");
    let conf = "connections {\n c {\n  local { auth = psk\n id = a }\n  remote { auth = psk }\n  \
                children { n { per_cpu_sas = yes }\n m { per_cpu_sas = no }\n o { per_cpu_sas = maybe } }\n }\n}\n\
                secrets { ike-1 { id = a\n secret = x } }\n";
    let (i, t) = convert(&write(&d, &[("swanctl.conf", conf.as_bytes())]));
    let children = &t["connections"]["c"]["children"];
    assert_eq!(children["n"]["per_cpu_sas"].as_bool(), Some(true), "{}", i.toml);
    assert!(children["m"].get("per_cpu_sas").is_none(), "{}", i.toml);
    assert!(children["o"].get("per_cpu_sas").is_none(), "{}", i.toml);
    let parsed = oxswan_config::parse(Path::new("converted.toml"), &i.toml).unwrap();
    let per_cpu: Vec<(&str, bool)> =
        parsed.connections[0].children.iter().map(|c| (c.name.as_str(), c.per_cpu_sas)).collect();
    assert!(per_cpu.contains(&("n", true)) && per_cpu.contains(&("m", false)), "{per_cpu:?}");
    assert!(
        i.notes.iter().any(|n| n.message.contains("not yes or no") && n.key.contains("per_cpu_sas")),
        "{:?}",
        i.notes
    );
    let _ = std::fs::remove_dir_all(&d);
}
