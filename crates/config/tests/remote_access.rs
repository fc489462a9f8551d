//! Remote access: pools, EAP, RADIUS, the client's keys, MODP 1024; each key parsed and each error
//! located.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use oxswan_config::{
    AddrRange, AuthKind, Config, ConfigError, DEFAULT_GRACE, DnsMode, EapId, EapKind, Subnet, Unique, parse,
    parse_subnet,
};
use oxswan_ike::child::TsConfig;
use oxswan_wire::Identity;

/// A gateway for road warriors: virtual IPs of both families, EAP-MSCHAPv2 behind a certificate.
const RW: &str = r#"
[daemon]
dns = "auto"

[pools.rw4]
addrs = "10.10.0.0/24"
dns   = ["10.10.0.53"]
split_include = ["10.2.0.0/24", "192.0.2.7"]
dns_domains = ["corp.example", "lab.corp.example."]
grace = "1h"

[pools.rw6]
addrs = "fd10::/120"
dns   = ["fd10::53", "10.10.0.53"]

[connections.rw]
local_addrs = ["192.0.2.2"]
pools       = ["rw4", "rw6"]
unique      = "replace"
proposals   = ["aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048", "aes256-sha1-modp1024"]

[connections.rw.local]
auth  = "pubkey"
id    = "vpn.example"
certs = ["vpn.pem"]
key   = "vpn.key"

[connections.rw.remote]
auth   = "eap-mschapv2"
eap_id = "%any"

[connections.rw.children.net]
local_ts  = ["10.2.0.0/24"]
remote_ts = ["dynamic"]

[[secrets.eap]]
id     = "alice"
secret = "alice's password"

[[secrets.eap]]
id     = "bob"
secret = "bob's password"
"#;

/// Its client.
const CLIENT: &str = r#"
[connections.home]
remote_addrs = ["192.0.2.2"]
vips = ["0.0.0.0", "::"]
mobike = false
fragmentation = false

[connections.home.local]
auth   = "eap-mschapv2"
id     = "alice@corp.example"
eap_id = "alice"

[connections.home.remote]
auth    = "pubkey"
id      = "vpn.example"
cacerts = ["ca.pem"]

[connections.home.children.net]
remote_ts    = ["10.2.0.0/24"]
start_action = "start"

[[secrets.eap]]
id     = "alice"
secret = "alice's password"
"#;

/// A gateway passing its clients' EAP to RADIUS.
const RADIUS: &str = r#"
[radius]
accounting = true
interim = "10m"
timeout = "3s"
tries = 2
nas_identifier = "gw1"

[[radius.servers]]
address = "10.0.0.5"
secret = "radius secret"

[[radius.servers]]
address = "2001:db8::5"
auth_port = 11812
acct_port = 11813
secret = "other secret"

[pools.rw4]
addrs = "10.10.0.10-10.10.0.200"

[connections.rw]
pools = ["rw4"]

[connections.rw.local]
auth = "psk"
id   = "vpn.example"

[connections.rw.remote]
auth   = "eap-radius"
eap_id = "%any"

[[secrets.ike]]
ids = ["vpn.example"]
secret = "group key"
"#;

fn ok(text: &str) -> Config {
    parse(Path::new("ra.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ConfigError {
    parse(Path::new("ra.toml"), text).unwrap_err()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// `text` with `old` replaced, which must be there.
fn with(text: &str, old: &str, new: &str) -> String {
    assert!(text.contains(old), "{old}");
    text.replacen(old, new, 1)
}

/// Asserts key, line and message of an error.
#[track_caller]
fn expect(e: &ConfigError, key: &str, line: usize, message: &str) {
    assert_eq!((e.key.as_str(), e.line, e.message.as_str()), (key, line, message), "{e}");
}

#[test]
fn the_gateway() {
    let c = ok(RW);
    assert_eq!(c.daemon.dns, DnsMode::Auto);
    assert_eq!(c.pools.len(), 2);
    let rw4 = c.pool("rw4").unwrap();
    assert_eq!(rw4.range, AddrRange::parse("10.10.0.1-10.10.0.254").unwrap(), "network and broadcast skipped");
    assert_eq!(rw4.dns, vec![ip("10.10.0.53")]);
    assert_eq!(
        rw4.split_include,
        vec![Subnet { addr: ip("10.2.0.0"), prefix: 24 }, Subnet { addr: ip("192.0.2.7"), prefix: 32 }]
    );
    assert_eq!(rw4.dns_domains, vec!["corp.example".to_owned(), "lab.corp.example".to_owned()]);
    assert_eq!(rw4.grace, Duration::from_secs(3600));
    let rw6 = c.pool("rw6").unwrap();
    assert_eq!((rw6.range.first(), rw6.range.last()), (ip("fd10::1"), ip("fd10::fe")));
    assert_eq!(rw6.dns, vec![ip("fd10::53"), ip("10.10.0.53")], "DNS servers of either family");
    assert_eq!(rw6.grace, DEFAULT_GRACE);
    assert_eq!(DEFAULT_GRACE, Duration::ZERO);

    let rw = c.connection("rw").unwrap();
    assert_eq!(rw.pools, ["rw4", "rw6"]);
    assert!(rw.remote_addrs.is_empty(), "any client");
    assert_eq!(rw.unique, Unique::Replace);
    assert!(rw.mobike && rw.fragmentation, "on by default");
    assert!(rw.vips.is_empty());
    assert_eq!(rw.local.auth, AuthKind::Pubkey);
    assert_eq!(rw.local.eap_id, None);
    assert_eq!(rw.remote.auth, AuthKind::Eap(EapKind::Mschapv2));
    assert_eq!(rw.remote.eap_id, Some(EapId::Any));
    assert_eq!(rw.children[0].remote_ts, vec![TsConfig::Dynamic], "the client's virtual IP");
    assert_eq!(rw.proposals.len(), 3);
    // EAP needs no [[secrets.ike]].
    assert!(c.secrets.is_empty());
    assert_eq!(c.eap_secret("alice").unwrap().expose(), b"alice's password");
    assert_eq!(c.eap_secret("bob").unwrap().expose(), b"bob's password");
    assert!(c.eap_secret("carol").is_none());
    assert!(c.radius.is_none());
    assert!(c.needs_modp1024(), "aes256-sha1-modp1024 is written out");
}

#[test]
fn the_client() {
    let c = ok(CLIENT);
    let home = c.connection("home").unwrap();
    assert_eq!(home.vips, vec![ip("0.0.0.0"), ip("::")]);
    assert!(!home.mobike && !home.fragmentation);
    assert_eq!(home.local.auth, AuthKind::Eap(EapKind::Mschapv2));
    assert_eq!(home.local.id, Some(Identity::Email("alice@corp.example".into())));
    assert_eq!(home.local.eap_id.as_deref(), Some("alice"));
    assert_eq!(home.local.eap_identity().as_deref(), Some("alice"));
    assert_eq!(home.remote.eap_id, None);
    assert!(!c.needs_modp1024(), "default proposals never have MODP 1024");
    // Without eap_id, our EAP identity is our IKE identity.
    let c =
        ok(&with(&with(CLIENT, "eap_id = \"alice\"\n", ""), "id     = \"alice\"", "id     = \"alice@corp.example\""));
    let home = c.connection("home").unwrap();
    assert_eq!(home.local.eap_id, None);
    assert_eq!(home.local.eap_identity().as_deref(), Some("alice@corp.example"));
    // A specific address, and other methods a client runs.
    let c = ok(&with(CLIENT, "vips = [\"0.0.0.0\", \"::\"]", "vips = [\"10.10.0.7\"]"));
    assert_eq!(c.connections[0].vips, vec![ip("10.10.0.7")]);
    let c = ok(&with(CLIENT, "auth   = \"eap-mschapv2\"", "auth   = \"eap-md5\""));
    assert_eq!(c.connections[0].local.auth, AuthKind::Eap(EapKind::Md5));
    let c = ok(&with(CLIENT, "auth   = \"eap-mschapv2\"", "auth   = \"eap-dynamic\""));
    assert_eq!(c.connections[0].local.auth, AuthKind::Eap(EapKind::Dynamic));
    let tls =
        with(CLIENT, "auth   = \"eap-mschapv2\"", "auth   = \"eap-tls\"\ncerts = [\"alice.pem\"]\nkey = \"alice.key\"");
    let c = ok(&with(&tls, "id     = \"alice@corp.example\"\n", ""));
    assert_eq!((c.connections[0].local.auth, c.connections[0].local.id.as_ref()), (AuthKind::Eap(EapKind::Tls), None));
}

#[test]
fn defaults_of_the_new_keys() {
    let text = r#"
[connections.site]
remote_addrs = ["192.0.2.2"]
[connections.site.local]
auth = "psk"
id = "a.example"
[connections.site.remote]
auth = "psk"
[[secrets.ike]]
ids = ["a.example"]
secret = "s"
"#;
    let c = ok(text);
    assert_eq!(c.daemon.dns, DnsMode::Auto);
    assert!(c.pools.is_empty() && c.eap_secrets.is_empty() && c.radius.is_none());
    let s = &c.connections[0];
    assert!(s.pools.is_empty() && s.vips.is_empty());
    assert_eq!(s.unique, Unique::No);
    assert!(s.mobike && s.fragmentation);
    assert_eq!((s.local.eap_id.as_ref(), s.remote.eap_id.as_ref()), (None, None));
    assert!(!c.needs_modp1024());
    for (word, unique) in
        [("no", Unique::No), ("never", Unique::Never), ("replace", Unique::Replace), ("keep", Unique::Keep)]
    {
        let c = ok(&with(text, "[connections.site.local]", &format!("unique = \"{word}\"\n[connections.site.local]")));
        assert_eq!(c.connections[0].unique, unique, "{word}");
    }
    // Pools on a connection that names its peer: allowed, as strongSwan.
    let c = ok(&with(
        &with(text, "[connections.site.local]", "pools = [\"p\"]\n[connections.site.local]"),
        "[[secrets.ike]]",
        "[pools.p]\naddrs = \"10.3.0.0/28\"\n[[secrets.ike]]",
    ));
    assert_eq!((c.connections[0].pools.len(), c.connections[0].remote_addrs.len()), (1, 1));
}

#[test]
fn daemon_dns() {
    for (word, mode) in [
        ("auto", DnsMode::Auto),
        ("resolvectl", DnsMode::Resolvectl),
        ("resolv.conf", DnsMode::ResolvConf),
        ("none", DnsMode::None),
    ] {
        assert_eq!(ok(&with(RW, "dns = \"auto\"", &format!("dns = \"{word}\""))).daemon.dns, mode, "{word}");
    }
    let e = err(&with(RW, "dns = \"auto\"", "dns = \"dnsmasq\""));
    assert_eq!(e.to_string(), "ra.toml:3:7: daemon.dns: `dnsmasq`: use auto, resolvectl, resolv.conf or none");
}

#[test]
fn pool_errors() {
    let l = line_of(RW, "addrs = \"10.10.0.0/24\"");
    for (bad, message) in [
        ("10.10.0.200-10.10.0.10", "`10.10.0.200-10.10.0.10`: the first address is after the last"),
        ("10.10.0.1-fd10::1", "`10.10.0.1-fd10::1`: mixes IPv4 and IPv6"),
        ("10.10.0.0/33", "`10.10.0.0/33`: prefix length `33`: 0 to 32"),
        ("the moon", "`the moon`: `the moon` is not an IP address"),
    ] {
        let e = err(&with(RW, "\"10.10.0.0/24\"", &format!("\"{bad}\"")));
        expect(&e, "pools.rw4.addrs", l, message);
        assert_eq!(e.column, 9, "{e}");
    }
    // Overlapping pools: the second by name is named.
    let e = err(&with(RW, "addrs = \"fd10::/120\"", "addrs = \"10.10.0.128/25\""));
    expect(
        &e,
        "pools.rw6.addrs",
        line_of(RW, "fd10::/120"),
        "10.10.0.129-10.10.0.254 overlaps pool rw4 (10.10.0.1-10.10.0.254)",
    );
    let e = err(&with(RW, "[connections.rw]", "[pools.zz]\naddrs = \"10.10.0.254\"\n[connections.rw]"));
    assert_eq!(
        (e.key.as_str(), e.message.as_str()),
        ("pools.zz.addrs", "10.10.0.254-10.10.0.254 overlaps pool rw4 (10.10.0.1-10.10.0.254)")
    );
    // Ranges of the other family never overlap.
    ok(&with(RW, "[connections.rw]", "[pools.v6b]\naddrs = \"fd11::1-fd11::9\"\n[connections.rw]"));
    // DNS servers, subnets, domains, grace.
    let e = err(&with(RW, "dns   = [\"10.10.0.53\"]", "dns   = [\"10.10.0.53\", \"ns1.corp\"]"));
    expect(&e, "pools.rw4.dns", line_of(RW, "dns   = [\"10.10.0.53\"]"), "`ns1.corp` is not an IP address");
    let l = line_of(RW, "split_include");
    for (bad, message) in [
        ("10.2.0.0/40", "`10.2.0.0/40`: prefix length 0 to 32"),
        ("corp", "`corp` is not a subnet such as 10.2.0.0/24"),
        ("dynamic", "`dynamic` is not a subnet such as 10.2.0.0/24"),
    ] {
        expect(&err(&with(RW, "\"192.0.2.7\"", &format!("\"{bad}\""))), "pools.rw4.split_include", l, message);
    }
    let l = line_of(RW, "dns_domains");
    for bad in ["", "corp..example", "*.corp.example", "-corp.example", "corp example", &"a".repeat(64)] {
        let e = err(&with(RW, "\"corp.example\"", &format!("\"{bad}\"")));
        expect(&e, "pools.rw4.dns_domains", l, &format!("`{bad}` is not a domain name"));
    }
    let e = err(&with(RW, "grace = \"1h\"", "grace = \"a while\""));
    expect(&e, "pools.rw4.grace", line_of(RW, "grace"), "`a while` is not a duration such as 30s, 15m, 4h, 1d");
    assert_eq!(ok(&with(RW, "grace = \"1h\"", "grace = \"0\"")).pools[0].grace, Duration::ZERO);
    // A pool without addresses, and an unknown key.
    let e = err(&with(RW, "addrs = \"fd10::/120\"\n", ""));
    assert!(e.message.contains("missing field `addrs`"), "{e}");
    let e = err(&with(RW, "grace = \"1h\"", "grace = \"1h\"\nlease_time = \"1h\""));
    assert!(e.message.contains("unknown field `lease_time`"), "{e}");
    assert_eq!(e.line, line_of(RW, "grace") + 1, "{e}");
}

#[test]
fn connection_errors() {
    let e = err(&with(RW, "pools       = [\"rw4\", \"rw6\"]", "pools       = [\"rw4\", \"rw5\"]"));
    assert_eq!(
        e.to_string(),
        format!("ra.toml:{}:23: connections.rw.pools: `rw5`: no [pools.rw5] table", line_of(RW, "pools       ="))
    );
    let e = err(&with(RW, "unique      = \"replace\"", "unique      = \"yes\""));
    expect(&e, "connections.rw.unique", line_of(RW, "unique"), "`yes`: use no, never, replace or keep");
    let e = err(&with(CLIENT, "vips = [\"0.0.0.0\", \"::\"]", "vips = [\"0.0.0.0\", \"%any6\"]"));
    expect(
        &e,
        "connections.home.vips",
        line_of(CLIENT, "vips"),
        "`%any6` is not an IP address (0.0.0.0 or :: asks for any)",
    );
    assert_eq!(e.column, 20, "{e}");
    let e = err(&with(CLIENT, "mobike = false", "mobike = \"no\""));
    assert!(e.message.contains("expected a boolean") && e.line == line_of(CLIENT, "mobike"), "{e}");
    let e = err(&with(CLIENT, "fragmentation = false", "fragmentation = 1"));
    assert!(e.message.contains("expected a boolean") && e.line == line_of(CLIENT, "fragmentation"), "{e}");
}

#[test]
fn eap_errors() {
    // An unknown method.
    let e = err(&with(RW, "auth   = \"eap-mschapv2\"", "auth   = \"eap-gtc\""));
    expect(
        &e,
        "connections.rw.remote.auth",
        line_of(RW, "auth   = \"eap-mschapv2\""),
        "`eap-gtc`: use psk, pubkey, eap-mschapv2, eap-md5, eap-tls, eap-dynamic or eap-radius",
    );
    // eap-radius is a gateway's, and needs servers.
    let e = err(&with(CLIENT, "auth   = \"eap-mschapv2\"", "auth   = \"eap-radius\""));
    expect(
        &e,
        "connections.home.local.auth",
        line_of(CLIENT, "auth   = \"eap-mschapv2\""),
        "eap-radius is for the remote side (a gateway passing its clients' EAP to RADIUS); a client uses \
         eap-mschapv2, eap-md5, eap-tls or eap-dynamic",
    );
    let e = err(&with(RW, "auth   = \"eap-mschapv2\"", "auth   = \"eap-radius\""));
    expect(&e, "connections.rw.remote.auth", line_of(RW, "eap-mschapv2"), "eap-radius needs [[radius.servers]]");
    // eap_id only with EAP, %any only on the remote side, never empty.
    let e = err(&with(RW, "auth  = \"pubkey\"", "auth  = \"pubkey\"\neap_id = \"gw\""));
    expect(
        &e,
        "connections.rw.local.eap_id",
        line_of(RW, "auth  = \"pubkey\"") + 1,
        "only with an eap-* auth, not with auth = \"pubkey\"",
    );
    let e = err(&with(CLIENT, "cacerts = [\"ca.pem\"]", "cacerts = [\"ca.pem\"]\neap_id = \"%any\""));
    expect(
        &e,
        "connections.home.remote.eap_id",
        line_of(CLIENT, "cacerts") + 1,
        "only with an eap-* auth, not with auth = \"pubkey\"",
    );
    let e = err(&with(CLIENT, "eap_id = \"alice\"", "eap_id = \"%any\""));
    expect(
        &e,
        "connections.home.local.eap_id",
        line_of(CLIENT, "eap_id"),
        "%any is for the remote side: name our EAP identity",
    );
    let e = err(&with(RW, "eap_id = \"%any\"", "eap_id = \" \""));
    expect(&e, "connections.rw.remote.eap_id", line_of(RW, "eap_id"), "empty EAP identity");
    let e = err(&with(RW, "eap_id = \"%any\"", "eap_id = \"alice\\n\""));
    assert_eq!(e.message, "`alice\n` has control characters or surrounding spaces", "{e}");
    // EAP on both sides.
    let e = err(&with(RW, "auth  = \"pubkey\"", "auth  = \"eap-md5\""));
    expect(
        &e,
        "connections.rw.remote.auth",
        line_of(RW, "eap-mschapv2"),
        "EAP on both sides: only the client (the initiator) authenticates with EAP (RFC 7296 §2.16)",
    );
    // A client's password, certificate, identity.
    let e = err(&with(CLIENT, "id     = \"alice\"", "id     = \"carol\""));
    expect(
        &e,
        "connections.home.local",
        line_of(CLIENT, "eap_id"),
        "auth = \"eap-mschapv2\": no [[secrets.eap]] entry for `alice`",
    );
    let no_eap_id = with(CLIENT, "eap_id = \"alice\"\n", "");
    let e = err(&no_eap_id);
    assert_eq!(e.message, "auth = \"eap-mschapv2\": no [[secrets.eap]] entry for `alice@corp.example`", "{e}");
    let e = err(&with(&no_eap_id, "id     = \"alice@corp.example\"", "id     = \"CN=alice, O=corp\""));
    assert_eq!(
        (e.key.as_str(), e.message.as_str()),
        ("connections.home.local.eap_id", "our IKE identity is a DN: name our EAP identity")
    );
    let dn_dynamic = with(
        &with(
            &no_eap_id,
            "id     = \"alice@corp.example\"",
            "id     = \"CN=alice, O=corp\"\ncerts = [\"a.pem\"]\nkey = \"a.key\"",
        ),
        "auth   = \"eap-mschapv2\"",
        "auth   = \"eap-dynamic\"",
    );
    assert_eq!(ok(&dn_dynamic).connections[0].local.eap_identity(), None, "EAP-TLS with the certificate's subject");
    let e = err(&with(CLIENT, "auth   = \"eap-mschapv2\"", "auth   = \"eap-tls\""));
    expect(
        &e,
        "connections.home.local",
        line_of(CLIENT, "[connections.home.local]"),
        "auth = \"eap-tls\" needs `certs` and `key`",
    );
    let e = err(&with(CLIENT, "id     = \"alice@corp.example\"\n", ""));
    expect(
        &e,
        "connections.home.local.id",
        line_of(CLIENT, "[connections.home.local]"),
        "an EAP client needs our identity",
    );
    let e = err(&with(
        &with(CLIENT, "auth   = \"eap-mschapv2\"", "auth   = \"eap-dynamic\""),
        "id     = \"alice\"",
        "id     = \"carol\"",
    ));
    assert_eq!(
        e.message, "auth = \"eap-dynamic\": no [[secrets.eap]] entry for `alice` and no `certs` and `key`",
        "{e}"
    );
    // A gateway's: CA certificates for EAP-TLS, passwords to check.
    let e = err(&with(RW, "auth   = \"eap-mschapv2\"", "auth   = \"eap-tls\""));
    expect(
        &e,
        "connections.rw.remote.cacerts",
        line_of(RW, "[connections.rw.remote]"),
        "auth = \"eap-tls\" needs the CA certificates the clients' certificates must lead to",
    );
    ok(&with(RW, "auth   = \"eap-mschapv2\"", "auth   = \"eap-tls\"\ncacerts = [\"ca.pem\"]"));
    let no_secrets = RW.split("[[secrets.eap]]").next().unwrap();
    let e = err(no_secrets);
    expect(
        &e,
        "connections.rw.remote.auth",
        line_of(RW, "eap-mschapv2"),
        "auth = \"eap-mschapv2\" checks passwords, but there is no [[secrets.eap]] entry",
    );
    let e = err(&with(RW, "eap_id = \"%any\"", "eap_id = \"carol\""));
    expect(
        &e,
        "connections.rw.remote.eap_id",
        line_of(RW, "eap_id"),
        "auth = \"eap-mschapv2\": no [[secrets.eap]] entry for `carol`",
    );
    let c = ok(&with(RW, "eap_id = \"%any\"", "eap_id = \"bob\""));
    assert_eq!(c.connections[0].remote.eap_id, Some(EapId::Name("bob".into())));
    // eap-dynamic on a gateway checks nothing it cannot know.
    ok(&with(no_secrets, "eap-mschapv2", "eap-dynamic"));
}

#[test]
fn eap_secret_errors() {
    let l = line_of(RW, "id     = \"alice\"");
    let e = err(&with(RW, "id     = \"alice\"", "id     = \"\""));
    assert_eq!(e.to_string(), format!("ra.toml:{l}:10: secrets.eap[0].id: empty EAP identity"));
    let e = err(&with(RW, "secret = \"alice's password\"", "secret = \"\""));
    expect(&e, "secrets.eap[0].secret", l + 1, "empty secret");
    let e = err(&with(RW, "id     = \"bob\"", "id     = \"alice\""));
    expect(&e, "secrets.eap[1].id", line_of(RW, "id     = \"bob\""), "`alice` has an entry already");
    let e = err(&with(RW, "secret = \"bob's password\"\n", ""));
    assert!(e.message.contains("missing field `secret`"), "{e}");
}

#[test]
fn radius() {
    let c = ok(RADIUS);
    let r = c.radius.as_ref().unwrap();
    assert_eq!(r.servers.len(), 2);
    assert_eq!((r.servers[0].address, r.servers[0].auth_port, r.servers[0].acct_port), (ip("10.0.0.5"), 1812, 1813));
    assert_eq!(r.servers[0].secret.expose(), b"radius secret");
    assert_eq!(
        (r.servers[1].address, r.servers[1].auth_port, r.servers[1].acct_port),
        (ip("2001:db8::5"), 11812, 11813)
    );
    assert!(r.accounting);
    assert_eq!((r.interim, r.timeout, r.tries), (Some(Duration::from_secs(600)), Duration::from_secs(3), 2));
    assert_eq!(r.nas_identifier, "gw1");
    assert_eq!(c.connections[0].remote.auth, AuthKind::Eap(EapKind::Radius));
    // Defaults.
    let minimal = RADIUS
        .replace("accounting = true\ninterim = \"10m\"\ntimeout = \"3s\"\ntries = 2\nnas_identifier = \"gw1\"\n", "");
    let r = ok(&minimal).radius.unwrap();
    assert!(!r.accounting);
    assert_eq!((r.interim, r.timeout, r.tries, r.nas_identifier.as_str()), (None, Duration::from_secs(2), 3, "oxswan"));
    // Errors.
    let e = err(&with(RADIUS, "address = \"10.0.0.5\"", "address = \"radius.corp\""));
    expect(&e, "radius.servers[0].address", line_of(RADIUS, "10.0.0.5"), "`radius.corp` is not an IP address");
    let e = err(&with(RADIUS, "auth_port = 11812", "auth_port = 0"));
    expect(&e, "radius.servers[1].auth_port", line_of(RADIUS, "auth_port"), "port 0");
    let e = err(&with(RADIUS, "acct_port = 11813", "acct_port = 0"));
    expect(&e, "radius.servers[1].acct_port", line_of(RADIUS, "acct_port"), "port 0");
    let e = err(&with(RADIUS, "secret = \"other secret\"", "secret = \"\""));
    expect(&e, "radius.servers[1].secret", line_of(RADIUS, "other secret"), "empty secret");
    let e = err(&with(RADIUS, "interim = \"10m\"", "interim = \"30s\""));
    expect(&e, "radius.interim", line_of(RADIUS, "interim"), "at least 60s (RFC 2869 §5.16)");
    let e = err(&with(RADIUS, "interim = \"10m\"", "interim = \"often\""));
    expect(&e, "radius.interim", line_of(RADIUS, "interim"), "`often` is not a duration such as 30s, 15m, 4h, 1d");
    let e = err(&with(RADIUS, "timeout = \"3s\"", "timeout = \"0\""));
    expect(&e, "radius.timeout", line_of(RADIUS, "timeout"), "`0` is not a duration such as 30s, 15m, 4h, 1d");
    for bad in ["0", "11"] {
        let e = err(&with(RADIUS, "tries = 2", &format!("tries = {bad}")));
        expect(&e, "radius.tries", line_of(RADIUS, "tries"), "1 to 10 tries per server");
    }
    let e = err(&with(RADIUS, "nas_identifier = \"gw1\"", "nas_identifier = \"\""));
    expect(&e, "radius.nas_identifier", line_of(RADIUS, "nas_identifier"), "1 to 253 octets (RFC 2865 §5.32)");
    let e = err(&with(RADIUS, "port = 11812", "port = 11812\nsource = \"10.0.0.1\""));
    assert!(e.message.contains("unknown field `source`"), "{e}");
    // [radius] without servers; eap-radius without [radius].
    let no_servers = RADIUS.split("[[radius.servers]]").next().unwrap().to_owned();
    let e = err(&no_servers);
    expect(&e, "radius.servers", 2, "names no server; add [[radius.servers]]");
    let without = RADIUS.split("[pools.rw4]").nth(1).map(|rest| format!("[pools.rw4]{rest}")).unwrap();
    let e = err(&without);
    expect(&e, "connections.rw.remote.auth", line_of(&without, "eap-radius"), "eap-radius needs [[radius.servers]]");
}

/// MODP 1024: accepted where a proposal names it, and then the daemon needs a provider that has it.
#[test]
fn modp1024_is_an_explicit_opt_in() {
    let c = ok(RW);
    assert!(c.needs_modp1024());
    let k = &c.connections[0].proposals[2];
    assert!(k.transforms.iter().any(|t| t.transform_type == oxswan_wire::TransformType::KE && t.transform_id == 2));
    assert!(!ok(&with(RW, ", \"aes256-sha1-modp1024\"", "")).needs_modp1024());
    // In a comma-separated item, and as PFS group of a child.
    assert!(
        ok(&with(RW, ", \"aes256-sha1-modp1024\"", ", \"aes128-sha256-ecp256, aes128-sha1-modp1024\""))
            .needs_modp1024()
    );
    let esp = with(RW, ", \"aes256-sha1-modp1024\"", "");
    assert!(
        ok(&with(
            &esp,
            "remote_ts = [\"dynamic\"]",
            "remote_ts = [\"dynamic\"]\nesp_proposals = [\"aes128-sha1-modp1024\"]"
        ))
        .needs_modp1024()
    );
    // Without `proposals`, the default ones, which never hold it.
    let c = ok(&with(
        RW,
        "proposals   = [\"aes256gcm16-prfsha256-x25519\", \"aes256-sha256-modp2048\", \"aes256-sha1-modp1024\"]\n",
        "",
    ));
    assert_eq!(c.connections[0].proposals, oxswan_crypto::proposal::parse_ike_proposals("default").unwrap());
    assert!(!c.needs_modp1024());
}

#[test]
fn subnets() {
    assert_eq!(parse_subnet("10.2.0.5/24").unwrap(), Subnet { addr: ip("10.2.0.0"), prefix: 24 }, "host bits cleared");
    assert_eq!(parse_subnet("fd00::1:2/64").unwrap(), Subnet { addr: ip("fd00::"), prefix: 64 });
    assert_eq!(parse_subnet("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
    assert_eq!(parse_subnet("::/0").unwrap().prefix, 0);
    assert_eq!(parse_subnet("2001:db8::7").unwrap().to_string(), "2001:db8::7/128");
    for bad in ["10.2.0.0/", "10.2.0.0/+8", "10.2.0.0/33", "fd00::/129", "10.2.0.0/24/1", "", "x/8"] {
        assert!(parse_subnet(bad).is_err(), "{bad}");
    }
}
