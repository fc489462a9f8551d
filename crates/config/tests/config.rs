//! The configuration file: the design's example, and one error of each kind with its location.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use oxswan_config::{AuthKind, ConfigError, StartAction, TcpMode, parse, parse_duration, parse_identity, parse_ts};
use oxswan_ike::child::{Mode, TsConfig};
use oxswan_wire::Identity;

const SITE: &str = r#"
[daemon]
listen = ["192.0.2.1"]
tun = "ox0"

[connections.site]
local_addrs  = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
proposals    = ["aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"]
dpd_delay = "30s"
rekey_time = "4h"

[connections.site.local]
auth = "psk"
id   = "left.example"

[connections.site.remote]
auth = "psk"
id   = "right.example"

[connections.site.children.net]
local_ts      = ["10.1.0.0/16"]
remote_ts     = ["10.2.0.1"]
esp_proposals = ["aes256gcm16"]
start_action  = "start"

[[secrets.ike]]
ids    = ["left.example", "right.example"]
secret = "correct horse battery staple 42"
"#;

fn err(text: &str) -> ConfigError {
    parse(Path::new("test.toml"), text).unwrap_err()
}

#[test]
fn the_design_example() {
    let c = parse(Path::new("site.toml"), SITE).unwrap();
    assert_eq!(c.daemon.tun, "ox0");
    assert_eq!((c.daemon.ike_port, c.daemon.natt_port, c.daemon.replay_window), (500, 4500, 1024));
    assert_eq!(c.daemon.keepalive, Duration::from_secs(20));
    let k = parse(Path::new("k.toml"), &SITE.replace("[daemon]", "[daemon]\nkeepalive = \"5s\"")).unwrap();
    assert_eq!(k.daemon.keepalive, Duration::from_secs(5));
    let s = c.connection("site").unwrap();
    assert_eq!(s.remote_addrs, vec!["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(s.proposals.len(), 2);
    assert_eq!((s.proposals[0].number, s.proposals[1].number), (1, 2));
    assert_eq!(s.dpd_delay, Some(Duration::from_secs(30)));
    assert_eq!(s.rekey_time, Some(Duration::from_secs(4 * 3600)));
    assert_eq!(s.local.auth, AuthKind::Psk);
    assert_eq!(s.remote.id, Some(Identity::Fqdn("right.example".into())));
    let net = &s.children[0];
    assert_eq!(net.start_action, StartAction::Start);
    assert_eq!(net.mode, Mode::Tunnel);
    assert_eq!(net.remote_ts, vec![parse_ts("10.2.0.1/32").unwrap()]);
    let psk = c.psk_for(&Identity::Fqdn("left.example".into()), Some(&Identity::Fqdn("right.example".into())));
    assert_eq!(psk.unwrap().expose(), b"correct horse battery staple 42");
}

#[test]
fn errors_name_file_line_and_key() {
    // A misspelt key.
    let e = err(&SITE.replace("esp_proposals =", "esp_proposal ="));
    assert_eq!((e.file.as_path(), e.line), (Path::new("test.toml"), 24), "{e}");
    assert!(e.message.contains("esp_proposal"), "{e}");
    // A bad proposal: the key and the line of the value.
    let e = err(&SITE.replace("aes128-sha256-modp2048", "aes128-sha256-modp9999"));
    assert_eq!((e.key.as_str(), e.line), ("connections.site.proposals", 9), "{e}");
    assert!(e.to_string().starts_with("test.toml:9:"), "{e}");
    let e = err(&SITE.replace(r#"esp_proposals = ["aes256gcm16"]"#, r#"esp_proposals = ["aes256gcm16-bogus"]"#));
    assert!(e.key.ends_with("esp_proposals"), "{e}");
    // Selectors, durations, actions, addresses, identities.
    let e = err(&SITE.replace("10.1.0.0/16", "10.1.0.0/33"));
    assert_eq!((e.key.as_str(), e.line), ("connections.site.children.net.local_ts", 22), "{e}");
    let e = err(&SITE.replace("\"30s\"", "\"30 parsecs\""));
    assert_eq!(e.key, "connections.site.dpd_delay", "{e}");
    let e = err(&SITE.replace("\"start\"", "\"later\""));
    assert!(e.message.contains("none, start or trap"), "{e}");
    let e = err(&SITE.replace(r#"remote_addrs = ["192.0.2.2"]"#, r#"remote_addrs = ["moon"]"#));
    assert_eq!(e.key, "connections.site.remote_addrs", "{e}");
    let e = err(&SITE.replace(r#"id   = "right.example""#, r#"id   = "C=CH, XX=right""#));
    assert!(e.message.contains("`XX` is not a DN attribute type"), "{e}");
    assert_eq!(e.key, "connections.site.remote.id", "{e}");
    // No secret for the identities.
    let e = err(&SITE.replace(r#"ids    = ["left.example", "right.example"]"#, r#"ids    = ["other.example"]"#));
    assert!(e.message.contains("secrets.ike"), "{e}");
    // Certificates without files.
    let e = err(&SITE.replace("auth = \"psk\"\nid   = \"left.example\"", "auth = \"pubkey\""));
    assert!(e.message.contains("certs"), "{e}");
    // TOML syntax.
    let e = err("[connections.x\nlocal = 1");
    assert_eq!(e.line, 1, "{e}");
    // Interface names.
    let e = err(&SITE.replace("\"ox0\"", "\"a-name-far-too-long\""));
    assert_eq!(e.key, "daemon.tun");
}

#[test]
fn identities_follow_strongswan() {
    assert_eq!(parse_identity("192.0.2.1").unwrap(), Some(Identity::Ipv4("192.0.2.1".parse().unwrap())));
    assert_eq!(parse_identity("2001:db8::1").unwrap(), Some(Identity::Ipv6("2001:db8::1".parse().unwrap())));
    assert_eq!(parse_identity("vpn.example").unwrap(), Some(Identity::Fqdn("vpn.example".into())));
    assert_eq!(parse_identity("@192.0.2.1").unwrap(), Some(Identity::Fqdn("192.0.2.1".into())));
    assert_eq!(parse_identity("carol@example.org").unwrap(), Some(Identity::Email("carol@example.org".into())));
    assert_eq!(parse_identity("%any").unwrap(), None);
    assert!(parse_identity("").is_err());
    assert!(parse_identity("two words").is_err());
}

#[test]
fn durations_and_selectors() {
    assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
    assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("1w"), None);
    assert_eq!(parse_duration("h"), None);
    assert_eq!(parse_duration("99999999999999999999d"), None);
    assert_eq!(parse_ts("dynamic").unwrap(), TsConfig::Dynamic);
    assert!(parse_ts("fd00::/8").is_ok());
    assert!(parse_ts("fd00::/129").is_err());
    assert!(parse_ts("10.0.0.0/x").is_err());
}

#[test]
fn defaults_and_responder_for_any_peer() {
    let text = r#"
[connections.road]
remote_addrs = ["%any"]
[connections.road.local]
auth = "psk"
id = "gw.example"
[connections.road.remote]
auth = "psk"
[connections.road.children.all]
[[secrets.ike]]
ids = ["gw.example"]
secret = "s"
"#;
    let c = parse(Path::new("road.toml"), text).unwrap();
    let r = c.connection("road").unwrap();
    assert!(r.remote_addrs.is_empty() && r.remote.id.is_none());
    assert!(!r.proposals.is_empty(), "strongSwan's default proposals");
    assert_eq!(r.children[0].local_ts, vec![TsConfig::Dynamic]);
    assert_eq!(c.daemon.socket, Path::new("/run/oxswan/oxswan.sock"));
    // A start action needs someone to start to.
    let e =
        err(&text
            .replace("[connections.road.children.all]", "[connections.road.children.all]\nstart_action = \"start\""));
    assert!(e.message.contains("remote address"), "{e}");
}

/// DNs as strongSwan writes them: attributes in subject order, UTF8String values, `\,` for a comma.
#[test]
fn distinguished_names_encode_as_der() {
    use oxswan_config::{parse_dn, parse_identity};
    use oxswan_wire::Identity;
    let der = parse_dn("C=CH, O=oxswan test, CN=left").unwrap();
    let expected: Vec<u8> = [
        &[0x30, 0x32][..],
        &[0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x0c, 0x02],
        b"CH",
        &[0x31, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x0b],
        b"oxswan test",
        &[0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x04],
        b"left",
    ]
    .concat();
    assert_eq!(der, expected, "the encoding charon sends for the same string");
    assert_eq!(parse_identity("C=CH, O=oxswan test, CN=left").unwrap(), Some(Identity::Dn(der)));
    let escaped = parse_dn(r"O=Smith\, Jones and Co, CN=x").unwrap();
    assert!(escaped.windows(19).any(|w| w == b"Smith, Jones and Co"), "the escaped comma stays in the value");
    let long = parse_dn(&format!("CN={}", "a".repeat(200))).unwrap();
    assert_eq!(&long[..4], &[0x30, 0x81, 0xd6, 0x31], "long form lengths: 3 + 3 + 5 + 3 + 200");
    for bad in ["C=CH, nonsense", "XX=1", "CN=", "=x", ",", "CN=a\\"] {
        assert!(parse_dn(bad).is_err(), "{bad}");
    }
}

#[test]
fn peer_actions_and_retransmission() {
    use oxswan_config::PeerAction;
    let text = SITE
        .replace(
            "[connections.site.local]",
            "dpd_action = \"restart\"\nclose_action = \"start\"\n\n[connections.site.local]",
        )
        .replace("[daemon]\n", "[daemon]\nretransmit_timeout = \"2s\"\nretransmit_base = 1.5\nretransmit_tries = 3\n");
    let c = parse(Path::new("site.toml"), &text).unwrap();
    let conn = &c.connections[0];
    assert_eq!((conn.dpd_action, conn.close_action), (PeerAction::Restart, PeerAction::Restart));
    assert_eq!(c.daemon.retransmit_timeout, Duration::from_secs(2));
    assert_eq!((c.daemon.retransmit_base, c.daemon.retransmit_tries), (1.5, 3));
    let d = parse(Path::new("site.toml"), SITE).unwrap();
    assert_eq!((d.connections[0].dpd_action, d.daemon.retransmit_tries), (PeerAction::Clear, 5));
    let e = err(&SITE.replace("[connections.site.local]", "dpd_action = \"sometimes\"\n\n[connections.site.local]"));
    assert!(e.message.contains("use clear, restart or trap") && e.key == "connections.site.dpd_action", "{e}");
    let e = err(&SITE.replace("[daemon]\n", "[daemon]\nretransmit_base = 0.5\n"));
    assert_eq!(e.key, "daemon.retransmit_base", "{e}");
    let t = parse(
        Path::new("site.toml"),
        &SITE.replace("[connections.site.local]", "close_action = \"trap\"\n\n[connections.site.local]"),
    )
    .unwrap();
    assert_eq!(t.connections[0].close_action, PeerAction::Trap);
}

#[test]
fn lifetimes_and_volumes_follow_strongswan() {
    // Defaults: the IKE SA rekeyed after 4h, a CHILD SA after 1h with a hard life of 1.1 × that.
    let c = parse(Path::new("d.toml"), &SITE.replace("rekey_time = \"4h\"\n", "")).unwrap();
    let s = c.connection("site").unwrap();
    assert_eq!(s.rekey_time, Some(Duration::from_secs(4 * 3600)));
    assert_eq!((s.reauth_time, s.over_time, s.rand_time), (None, None, None));
    let net = &s.children[0];
    assert_eq!(net.rekey_time, Some(Duration::from_secs(3600)));
    assert_eq!(net.life_time, Some(Duration::from_secs(3960)));
    assert_eq!((net.rekey_bytes, net.rekey_packets, net.life_bytes, net.life_packets), (0, 0, 0, 0));

    let text = SITE
        .replace(
            "rekey_time = \"4h\"",
            "rekey_time = \"0\"\nreauth_time = \"2h\"\nover_time = \"5m\"\nrand_time = \"0s\"",
        )
        .replace(
            "start_action  = \"start\"",
            "start_action  = \"start\"\nrekey_time = \"0\"\nlife_time = \"30m\"\nrekey_bytes = \"500M\"\n\
             rekey_packets = 1000000\nlife_packets = \"2k\"",
        );
    let c = parse(Path::new("l.toml"), &text).unwrap();
    let s = c.connection("site").unwrap();
    assert_eq!(s.rekey_time, None, "0 turns rekeying off");
    assert_eq!(s.reauth_time, Some(Duration::from_secs(7200)));
    assert_eq!((s.over_time, s.rand_time), (Some(Duration::from_secs(300)), Some(Duration::ZERO)));
    let net = &s.children[0];
    assert_eq!((net.rekey_time, net.life_time), (None, Some(Duration::from_secs(1800))));
    assert_eq!(net.rekey_bytes, 500 << 20);
    assert_eq!(net.life_bytes, (500 << 20) + (500 << 20) / 10, "1.1 × rekey_bytes");
    assert_eq!((net.rekey_packets, net.life_packets), (1_000_000, 2048));

    for (bad, key) in [
        ("rekey_bytes = \"lots\"", "rekey_bytes"),
        ("rekey_bytes = -5", "rekey_bytes"),
        ("life_packets = \"99999999999999999999G\"", "life_packets"),
        ("life_time = \"soon\"", "life_time"),
    ] {
        let e = err(&SITE.replace("start_action  = \"start\"", &format!("start_action  = \"start\"\n{bad}")));
        assert_eq!(e.key, format!("connections.site.children.net.{key}"), "{e}");
        assert_eq!(e.line, 26, "{e}");
    }
    // Huge values saturate instead of overflowing.
    let huge = SITE.replace(
        "start_action  = \"start\"",
        "start_action  = \"start\"\nrekey_time = \"213503982334601d\"\nrekey_packets = \"17179869183G\"",
    );
    let c = parse(Path::new("h.toml"), &huge).unwrap();
    let net = &c.connection("site").unwrap().children[0];
    assert!(net.life_time.unwrap() >= net.rekey_time.unwrap());
    assert_eq!(net.life_packets, u64::MAX);
    assert_eq!(oxswan_config::parse_volume("1G"), Some(1 << 30));
    assert_eq!(oxswan_config::parse_volume("12"), Some(12));
    assert_eq!(oxswan_config::parse_volume("k"), None);
}

/// Additional key exchanges (RFC 9370 `ke1_`..`ke7_`) are taken in IKE and ESP proposals:
/// IKE_INTERMEDIATE makes them when the IKE SA is set up, IKE_FOLLOWUP_KE when an IKE SA is rekeyed
/// and for CHILD SAs.
#[test]
fn additional_key_exchanges_are_taken() {
    let text = SITE
        .replace(
            "\"aes128-sha256-modp2048\"",
            "\"aes256gcm16-prfsha384-x25519-ke1_mlkem768\", \"aes128-sha256-modp3072-KE1_mlkem768-ke1_none-ke2_ecp384\"",
        )
        .replace(r#"esp_proposals = ["aes256gcm16"]"#, r#"esp_proposals = ["aes128gcm16-x25519-ke1_mlkem768-ke1_none"]"#);
    let c = parse(Path::new("ok.toml"), &text).unwrap();
    let site = c.connection("site").unwrap();
    assert_eq!(
        site.proposals[1..],
        oxswan_crypto::proposal::parse_ike_proposals(
            "aes256gcm16-prfsha384-x25519-ke1_mlkem768, aes128-sha256-modp3072-ke1_mlkem768-ke1_none-ke2_ecp384"
        )
        .unwrap()
        .into_iter()
        .zip(2u8..)
        .map(|(p, number)| oxswan_wire::sa::Proposal { number, ..p })
        .collect::<Vec<_>>()[..]
    );
    assert_eq!(
        site.children[0].esp_proposals,
        oxswan_crypto::proposal::parse_esp_proposals("aes128gcm16-x25519-ke1_mlkem768-ke1_none").unwrap()
    );
    // In an ESP proposal they need a first key exchange (PFS) to follow.
    let e = err(&SITE.replace(r#"esp_proposals = ["aes256gcm16"]"#, r#"esp_proposals = ["aes128gcm16-ke1_mlkem768"]"#));
    assert_eq!((e.line, e.key.as_str()), (24, "connections.site.children.net.esp_proposals"), "{e}");
    assert!(e.message.contains("follow a first one"), "{e}");
    // An unknown keyword after a prefix is still an error, located.
    let e = err(&SITE.replace(r#"esp_proposals = ["aes256gcm16"]"#, r#"esp_proposals = ["aes128gcm16-ke1_sha256"]"#));
    assert_eq!((e.line, e.key.as_str()), (24, "connections.site.children.net.esp_proposals"), "{e}");
}

/// TCP encapsulation (RFC 9329): off by default on both sides, as Libreswan; the connection's
/// `tcp` takes exactly `no`, `fallback` and `always`; bad values are located.
#[test]
fn tcp_keys() {
    let c = parse(Path::new("test.toml"), SITE).unwrap();
    assert!(!c.daemon.listen_tcp);
    assert_eq!(c.daemon.tcp_port, 4500);
    let s = c.connection("site").unwrap();
    assert_eq!((s.tcp, s.tcp_port), (TcpMode::No, 4500));
    for (word, mode) in [("no", TcpMode::No), ("fallback", TcpMode::Fallback), ("always", TcpMode::Always)] {
        let text =
            SITE.replace("rekey_time = \"4h\"", &format!("rekey_time = \"4h\"\ntcp = \"{word}\"\ntcp_port = 443"));
        let c = parse(Path::new("test.toml"), &text).unwrap();
        let s = c.connection("site").unwrap();
        assert_eq!((s.tcp, s.tcp_port), (mode, 443), "{word}");
    }
    let text = SITE.replace("tun = \"ox0\"", "tun = \"ox0\"\nlisten_tcp = true\ntcp_port = 8443");
    let c = parse(Path::new("test.toml"), &text).unwrap();
    assert!(c.daemon.listen_tcp);
    assert_eq!(c.daemon.tcp_port, 8443);

    let e = err(&SITE.replace("rekey_time = \"4h\"", "rekey_time = \"4h\"\ntcp = \"yes\""));
    assert_eq!(e.to_string(), "test.toml:12:7: connections.site.tcp: `yes`: use no, fallback or always");
    let e = err(&SITE.replace("rekey_time = \"4h\"", "rekey_time = \"4h\"\ntcp_port = 0"));
    assert_eq!(e.to_string(), "test.toml:12:12: connections.site.tcp_port: port 0");
    let e = err(&SITE.replace("tun = \"ox0\"", "tun = \"ox0\"\ntcp_port = 0"));
    assert_eq!(e.to_string(), "test.toml:5:12: daemon.tcp_port: port 0");
    let e = err(&SITE.replace("tun = \"ox0\"", "tun = \"ox0\"\nlisten_tcp = \"yes\""));
    assert!(e.to_string().starts_with("test.toml:5:"), "{e}");
    let e = err(&SITE.replace("tun = \"ox0\"", "tun = \"ox0\"\ntcp_port = 70000"));
    assert!(e.to_string().starts_with("test.toml:5:"), "{e}");
}

#[test]
fn clamp_mss_and_fragment_size() {
    use oxswan_config::ClampMss;
    let d = parse(Path::new("site.toml"), SITE).unwrap().daemon;
    assert_eq!((d.clamp_mss, d.fragment_size), (ClampMss::Auto, 1280), "on by default; strongSwan's 1280");
    let with = |line: &str| SITE.replace("[daemon]\n", &format!("[daemon]\n{line}\n"));
    for (line, want) in [
        ("clamp_mss = true", ClampMss::Auto),
        ("clamp_mss = false", ClampMss::Off),
        ("clamp_mss = 1200", ClampMss::Fixed(1200)),
        ("clamp_mss = 88", ClampMss::Fixed(88)),
        ("clamp_mss = 65495", ClampMss::Fixed(65495)),
    ] {
        assert_eq!(parse(Path::new("site.toml"), &with(line)).unwrap().daemon.clamp_mss, want, "{line}");
    }
    for bad in ["clamp_mss = 87", "clamp_mss = 65496", "clamp_mss = -1", "clamp_mss = 0"] {
        let e = err(&with(bad));
        assert_eq!((e.key.as_str(), e.line, e.column), ("daemon.clamp_mss", 3, 13), "{bad}: {e}");
        assert!(e.message.contains("true, false or an MSS from 88 to 65495"), "{e}");
        assert!(e.to_string().starts_with("test.toml:3:13: daemon.clamp_mss: "), "{e}");
    }
    let e = err(&with("clamp_mss = \"yes\""));
    assert_eq!(e.to_string(), "test.toml:3:13: daemon.clamp_mss: true, false or an MSS from 88 to 65495, not \"yes\"");
    for (line, want) in [("fragment_size = 0", 0), ("fragment_size = 576", 576), ("fragment_size = 65535", 65535)] {
        assert_eq!(parse(Path::new("site.toml"), &with(line)).unwrap().daemon.fragment_size, want, "{line}");
    }
    for bad in ["fragment_size = 575", "fragment_size = 65536", "fragment_size = -5"] {
        let e = err(&with(bad));
        assert_eq!((e.key.as_str(), e.line, e.column), ("daemon.fragment_size", 3, 17), "{bad}: {e}");
    }
}

/// `[daemon] metrics`: off by default; an IPv4 or IPv6 address with a port; anything else is an
/// error at the key's line and column.
#[test]
fn metrics_address() {
    let with = |line: &str| SITE.replace("[daemon]\n", &format!("[daemon]\n{line}\n"));
    assert_eq!(parse(Path::new("site.toml"), SITE).unwrap().daemon.metrics, None, "off by default");
    for (line, want) in [("metrics = \"127.0.0.1:9101\"", "127.0.0.1:9101"), ("metrics = \"[::1]:9101\"", "[::1]:9101")]
    {
        let got = parse(Path::new("site.toml"), &with(line)).unwrap().daemon.metrics;
        assert_eq!(got, Some(want.parse().unwrap()), "{line}");
    }
    for (bad, why) in [
        ("metrics = \"127.0.0.1\"", "`127.0.0.1`: not an IP address and port"),
        ("metrics = \"localhost:9101\"", "`localhost:9101`: not an IP address and port"),
        ("metrics = \"::1:9101\"", "`::1:9101`: not an IP address and port"),
        ("metrics = \"127.0.0.1:0\"", "`127.0.0.1:0`: port 0"),
        ("metrics = \"127.0.0.1:70000\"", "`127.0.0.1:70000`: not an IP address and port"),
    ] {
        let e = err(&with(bad));
        assert_eq!((e.key.as_str(), e.line, e.column), ("daemon.metrics", 3, 11), "{bad}: {e}");
        assert_eq!(e.message, format!("{why}, e.g. \"127.0.0.1:9101\" or \"[::1]:9101\""), "{bad}");
    }
    let e = err(&with("metrics = 9101"));
    assert_eq!((e.line, e.column), (3, 11), "a number is refused at the key: {e}");
}

/// A directory of its own with empty files at these relative names, for configurations that name
/// them (the loader checks that each file is there).
fn files(name: &str, names: &[&str]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oxswan-config-{}-{name}", std::process::id()));
    for n in names {
        let p = dir.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
    }
    dir
}

/// `crls` on the remote side: revocation lists for a `pubkey` peer's chain, which needs `cacerts`.
#[test]
fn crls_come_with_cacerts() {
    let d = files("crls", &["ca.crt", "crl.pem"]);
    let (ca, crl) = (d.join("ca.crt"), d.join("crl.pem"));
    let remote = "[connections.site.remote]\nauth = \"psk\"\nid   = \"right.example\"";
    let with = |extra: &str| SITE.replace(remote, &format!("[connections.site.remote]\nauth = \"pubkey\"\n{extra}"));
    let c = parse(
        Path::new("site.toml"),
        &with(&format!("cacerts = [{:?}]\ncrls = [{:?}]", ca.display().to_string(), crl.display().to_string())),
    )
    .unwrap();
    let s = c.connection("site").unwrap();
    assert_eq!(s.remote.crls, [crl.as_path()]);
    let only_ca = with(&format!("cacerts = [{:?}]", ca.display().to_string()));
    assert!(parse(Path::new("site.toml"), &only_ca).unwrap().connection("site").unwrap().remote.crls.is_empty());
    let e = err(&SITE.replace(remote, &format!("{remote}\ncrls = [\"/x.pem\"]")));
    assert_eq!(e.key, "connections.site.remote.crls", "{e}");
    assert!(e.message.contains("cacerts"), "{e}");
    let _ = std::fs::remove_dir_all(d);
}

/// A relative file name is taken from the configuration file's directory (as swanctl takes its
/// files from beside swanctl.conf); an absolute one stays as written. A file that is not there is
/// an error at its key, line and column.
#[test]
fn relative_files_are_beside_the_configuration() {
    let d = files("relative", &["pki/ca.crt", "crl.pem", "other/ca2.crt"]);
    let abs = d.join("other/ca2.crt").display().to_string();
    let remote = "[connections.site.remote]\nauth = \"psk\"\nid   = \"right.example\"";
    let side = |cacerts: &str| {
        SITE.replace(
            remote,
            &format!("[connections.site.remote]\nauth = \"pubkey\"\ncacerts = [{cacerts}]\ncrls = [\"crl.pem\"]"),
        )
    };
    let text = side(&format!("\"pki/ca.crt\", {abs:?}"));
    let c = parse(&d.join("site.toml"), &text).unwrap();
    let s = c.connection("site").unwrap();
    assert_eq!(s.remote.cacerts, [d.join("pki/ca.crt"), d.join("other/ca2.crt")]);
    assert_eq!(s.remote.crls, [d.join("crl.pem")]);
    // A configuration named without a directory: its files stay relative to the working directory
    // (the crate's, where Cargo.toml is).
    let plain = SITE.replace(remote, "[connections.site.remote]\nauth = \"pubkey\"\ncacerts = [\"Cargo.toml\"]");
    let c = parse(Path::new("site.toml"), &plain).unwrap();
    assert_eq!(c.connection("site").unwrap().remote.cacerts[0], Path::new("Cargo.toml"));
    std::fs::write(d.join("gone.toml"), side("\"pki/gone.crt\"")).unwrap();
    assert!(parse(&d.join("gone.toml"), &side("\"pki/gone.crt\"")).is_ok(), "parse reads the text alone");
    let e = oxswan_config::load(&d.join("gone.toml")).unwrap_err();
    assert_eq!((e.line, e.column, e.key.as_str()), (19, 12, "connections.site.remote.cacerts"), "{e}");
    assert!(e.message.starts_with(&format!("cannot read {}", d.join("pki/gone.crt").display())), "{e}");
    let _ = std::fs::remove_dir_all(d);
}

/// Values of the wrong type or range, a `rand_time` not shorter than the time it jitters, a replay
/// window of 0 and transport mode are errors at their file, line, column and key (issue 18).
#[test]
fn errors_of_range_and_type_name_their_key() {
    let with = |line: &str| SITE.replace("[daemon]\n", &format!("[daemon]\n{line}\n"));
    let e = err(&with("replay_window = 99999999999"));
    assert_eq!(
        e.to_string(),
        "test.toml:3:17: daemon.replay_window: invalid value: integer `99999999999`, expected u32"
    );
    let e = err(&with("ike_port = 70000"));
    assert_eq!((e.line, e.key.as_str()), (3, "daemon.ike_port"), "{e}");
    let e = err(&with("replay_window = 0"));
    assert_eq!((e.line, e.key.as_str()), (3, "daemon.replay_window"), "{e}");
    assert!(e.message.contains("0 would turn replay protection off"), "{e}");
    let e = err(&SITE.replace("rekey_time = \"4h\"\n", "rekey_time = \"4h\"\nrand_time = \"4h\"\n"));
    assert_eq!((e.line, e.key.as_str()), (12, "connections.site.rand_time"), "{e}");
    let e = err(&SITE.replace("start_action  = \"start\"", "start_action  = \"start\"\nrand_time = \"2h\""));
    assert_eq!(e.key, "connections.site.children.net.rand_time", "{e}");
    let shorter = SITE.replace("start_action  = \"start\"", "start_action  = \"start\"\nrand_time = \"59m\"");
    assert!(parse(Path::new("ok.toml"), &shorter).is_ok(), "59 minutes of a 1-hour rekey_time");
    let e = err(&SITE.replace("start_action  = \"start\"", "start_action  = \"start\"\nmode = \"transport\""));
    assert_eq!(e.key, "connections.site.children.net.mode", "{e}");
}

/// A file that is not UTF-8 is refused where its first bad octet is.
#[test]
fn a_file_that_is_not_utf8_names_where() {
    let d = files("utf8", &[]);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("bad.toml");
    let bytes: Vec<u8> =
        SITE.replacen("left.example", "left\u{1}", 1).bytes().map(|b| if b == 1 { 0xff } else { b }).collect();
    std::fs::write(&path, bytes).unwrap();
    let e = oxswan_config::load(&path).unwrap_err();
    assert_eq!((e.line, e.column, e.key.as_str()), (15, 13, "connections.site.local.id"), "{e}");
    assert!(e.message.starts_with("not UTF-8"), "{e}");
    let _ = std::fs::remove_dir_all(d);
}

/// `[daemon] drop_capabilities`: on unless turned off; anything but a boolean is refused at its line.
#[test]
fn drop_capabilities_is_on_by_default() {
    assert!(parse(Path::new("site.toml"), SITE).unwrap().daemon.drop_capabilities);
    let with = |line: &str| SITE.replace("[daemon]\n", &format!("[daemon]\n{line}\n"));
    assert!(!parse(Path::new("site.toml"), &with("drop_capabilities = false")).unwrap().daemon.drop_capabilities);
    let e = err(&with("drop_capabilities = \"no\""));
    assert_eq!(e.to_string(), "test.toml:3:21: daemon.drop_capabilities: true or false, not a string");
}

/// Post-quantum Preshared Keys (RFC 8784): `ppk_id` and `ppk_required` on a connection as swanctl,
/// the keys in `[[secrets.ppk]]` (a string, or hex after `0x`); a `ppk_id` without its entry, a
/// bad entry and a PPK with EAP are located errors.
#[test]
fn ppk_keys() {
    let with = |conn: &str, secrets: &str| {
        SITE.replace("rekey_time = \"4h\"\n", &format!("rekey_time = \"4h\"\n{conn}"))
            .replace("[[secrets.ike]]", &format!("{secrets}[[secrets.ike]]"))
    };
    let text = with(
        "ppk_id = \"pqk\"\nppk_required = true\n",
        "[[secrets.ppk]]\nids = [\"pqk\", \"alias\"]\nsecret = \"0x00ff10\"\n\n[[secrets.ppk]]\nids = [\"text\"]\nsecret = \"words\"\n\n",
    );
    let c = parse(Path::new("ok.toml"), &text).unwrap();
    let site = c.connection("site").unwrap();
    assert_eq!((site.ppk_id.as_deref(), site.ppk_required), (Some("pqk"), true));
    assert_eq!(c.ppk_secrets[0].ids, ["pqk", "alias"]);
    assert_eq!(c.ppk_secrets[0].secret.expose(), [0x00, 0xff, 0x10]);
    assert_eq!(c.ppk_secrets[1].secret.expose(), b"words");
    let plain = parse(Path::new("ok.toml"), SITE).unwrap();
    assert_eq!(
        (plain.connection("site").unwrap().ppk_id.as_deref(), plain.connection("site").unwrap().ppk_required),
        (None, false)
    );

    let e = err(&with("ppk_id = \"pqk\"\n", ""));
    assert_eq!((e.key.as_str(), e.message.as_str()), ("connections.site.ppk_id", "no [[secrets.ppk]] entry for `pqk`"));
    let e = err(&with("ppk_id = \"\"\n", ""));
    assert_eq!((e.line, e.key.as_str(), e.message.as_str()), (12, "connections.site.ppk_id", "empty PPK_ID"));
    let e = err(&with("", "[[secrets.ppk]]\nids = [\"pqk\"]\nsecret = \"0xabc\"\n\n"));
    assert_eq!((e.key.as_str(), e.message.as_str()), ("secrets.ppk[0].secret", "not hex after 0x"));
    let e = err(&with("", "[[secrets.ppk]]\nids = []\nsecret = \"x\"\n\n"));
    assert_eq!((e.key.as_str(), e.message.as_str()), ("secrets.ppk[0].ids", "names no PPK_ID"));
    let e = err(&with(
        "",
        "[[secrets.ppk]]\nids = [\"a\"]\nsecret = \"x\"\n\n[[secrets.ppk]]\nids = [\"a\"]\nsecret = \"y\"\n\n",
    ));
    assert_eq!((e.key.as_str(), e.message.as_str()), ("secrets.ppk[1].ids", "`a` has a PPK already"));
    let e = err(&with("", "[[secrets.ppk]]\nids = [\"a\"]\nsecret = \"\"\n\n"));
    assert_eq!((e.key.as_str(), e.message.as_str()), ("secrets.ppk[0].secret", "empty secret"));
}

/// Redirect (RFC 5685): `[daemon] redirect` and a connection's `redirect`, each an address or a
/// domain name; anything else is an error at its key.
#[test]
fn redirect_gateways() {
    use oxswan_ike::Gateway;
    let plain = parse(Path::new("ok.toml"), SITE).unwrap();
    assert_eq!((plain.daemon.redirect.as_ref(), plain.connection("site").unwrap().redirect.as_ref()), (None, None));
    let text = SITE
        .replace("[daemon]\n", "[daemon]\nredirect = \"2001:db8::7\"\n")
        .replace("rekey_time = \"4h\"\n", "rekey_time = \"4h\"\nredirect = \"vpn2.example.com\"\n");
    let c = parse(Path::new("ok.toml"), &text).unwrap();
    assert_eq!(c.daemon.redirect, Some(Gateway::Addr("2001:db8::7".parse().unwrap())));
    assert_eq!(c.connection("site").unwrap().redirect, Some(Gateway::Fqdn("vpn2.example.com".into())));
    for (bad, why) in [
        ("0.0.0.0", "`0.0.0.0` is not an address a client can reach (unspecified or multicast)"),
        ("vpn 2", "`vpn 2` is neither an IP address nor a domain name (letters, digits, `-` and `.`)"),
        ("10.0.0", "`10.0.0` is neither an IP address nor a domain name (letters, digits, `-` and `.`)"),
        ("", "empty gateway"),
    ] {
        let e = err(&SITE.replace("[daemon]\n", &format!("[daemon]\nredirect = \"{bad}\"\n")));
        assert_eq!((e.key.as_str(), e.line, e.column, e.message.as_str()), ("daemon.redirect", 3, 12, why), "{bad}");
        let e = err(&SITE.replace("rekey_time = \"4h\"\n", &format!("rekey_time = \"4h\"\nredirect = \"{bad}\"\n")));
        assert_eq!((e.key.as_str(), e.line, e.message.as_str()), ("connections.site.redirect", 12, why), "{bad}");
    }
}

/// Session resumption (RFC 5723): a connection's `resumption` (off by default) and the daemon's
/// `ticket_lifetime` (8 hours by default, from a minute to a week).
#[test]
fn resumption_keys() {
    let plain = parse(Path::new("ok.toml"), SITE).unwrap();
    assert!(!plain.connection("site").unwrap().resumption);
    assert_eq!(plain.daemon.ticket_lifetime, Duration::from_secs(8 * 3600));
    let text = SITE
        .replace("[daemon]\n", "[daemon]\nticket_lifetime = \"1d\"\n")
        .replace("rekey_time = \"4h\"\n", "rekey_time = \"4h\"\nresumption = true\n");
    let c = parse(Path::new("ok.toml"), &text).unwrap();
    assert!(c.connection("site").unwrap().resumption);
    assert_eq!(c.daemon.ticket_lifetime, Duration::from_secs(86_400));
    for bad in ["30s", "8d"] {
        let e = err(&SITE.replace("[daemon]\n", &format!("[daemon]\nticket_lifetime = \"{bad}\"\n")));
        assert_eq!(
            (e.key.as_str(), e.line, e.message.as_str()),
            ("daemon.ticket_lifetime", 3, "from 1m to 7d"),
            "{bad}"
        );
    }
    let e = err(&SITE.replace("[daemon]\n", "[daemon]\nticket_lifetime = \"soon\"\n"));
    assert_eq!((e.key.as_str(), e.line), ("daemon.ticket_lifetime", 3), "{e}");
    let e = err(&SITE.replace("rekey_time = \"4h\"\n", "rekey_time = \"4h\"\nresumption = \"yes\"\n"));
    assert_eq!(e.line, 12, "a string is refused at the key: {e}");
}
