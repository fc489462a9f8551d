//! `[cluster]`: several gateways as one on etcd. Each key parsed, its defaults, and each rule's error
//! located at its file, line and key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use oxswan_config::{Cluster, ClusterTls, Config, ConfigError, parse};
use oxswan_ike::Gateway;

/// A node of a cluster over TLS, every key given.
const FULL: &str = r#"
[daemon]
tun = "oxswan0"

[cluster]
etcd = ["https://10.9.0.1:2379", "https://etcd2.example:2379/", "https://[fd00:9::3]:2379"]
node = "gw1"
ttl = "30s"
prefix = "/vpn/oxswan"
address = "vpn1.example.com"
redirect_above = 200
ca = "etcd-ca.pem"
cert = "/etc/oxswan/gw1.pem"
key = "gw1.key"
"#;

/// The least a `[cluster]` table has.
const MINIMAL: &str = r#"
[cluster]
etcd = ["http://10.9.0.1:2379"]
node = "gw1"
"#;

const FILE: &str = "gw/gw1.toml";

fn ok(text: &str) -> Config {
    parse(Path::new(FILE), text).unwrap_or_else(|e| panic!("{e}"))
}

fn cluster(text: &str) -> Cluster {
    ok(text).cluster.expect("a [cluster] table")
}

fn err(text: &str) -> ConfigError {
    match parse(Path::new(FILE), text) {
        Ok(c) => panic!("accepted: {:?}", c.cluster),
        Err(e) => e,
    }
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

/// Asserts file, key, line and message of an error, and that its text begins `file:line:`.
#[track_caller]
fn expect(e: &ConfigError, key: &str, line: usize, message: &str) {
    assert_eq!(
        (e.file.as_path(), e.key.as_str(), e.line, e.message.as_str()),
        (Path::new(FILE), key, line, message),
        "{e}"
    );
    assert!(e.to_string().starts_with(&format!("{FILE}:{line}:")), "{e}");
    assert!(e.to_string().ends_with(&format!(": {key}: {message}")), "{e}");
}

#[test]
fn a_full_table() {
    let c = cluster(FULL);
    assert_eq!(
        c,
        Cluster {
            etcd: vec![
                "https://10.9.0.1:2379".to_owned(),
                "https://etcd2.example:2379".to_owned(),
                "https://[fd00:9::3]:2379".to_owned(),
            ],
            node: "gw1".to_owned(),
            ttl: Duration::from_secs(30),
            prefix: "/vpn/oxswan".to_owned(),
            address: Some(Gateway::Fqdn("vpn1.example.com".to_owned())),
            redirect_above: Some(200),
            tls: Some(ClusterTls {
                // Relative names beside the configuration file, as certificates are.
                ca: Some(PathBuf::from("gw/etcd-ca.pem")),
                cert_key: Some((PathBuf::from("/etc/oxswan/gw1.pem"), PathBuf::from("gw/gw1.key"))),
            }),
        }
    );
    let c = cluster(&with(FULL, "\"vpn1.example.com\"", "\"2001:db8::1\""));
    assert_eq!(c.address, Some(Gateway::Addr("2001:db8::1".parse().unwrap())));
}

#[test]
fn defaults() {
    assert_eq!(ok("[daemon]\n").cluster, None, "without [cluster] oxswan runs alone");
    assert_eq!(
        cluster(MINIMAL),
        Cluster {
            etcd: vec!["http://10.9.0.1:2379".to_owned()],
            node: "gw1".to_owned(),
            ttl: Duration::from_secs(10),
            prefix: "/oxswan".to_owned(),
            address: None,
            redirect_above: None,
            tls: None,
        }
    );
    // https without `ca` takes the system's roots: no TLS files.
    let c = cluster(&with(MINIMAL, "http://10.9.0.1:2379", "https://etcd.example:443"));
    assert_eq!((c.etcd, c.tls), (vec!["https://etcd.example:443".to_owned()], None));
    // A client certificate without `ca`; `ca` without a client certificate.
    let https = with(MINIMAL, "http://", "https://");
    let c = cluster(&format!("{https}cert = \"gw1.pem\"\nkey = \"gw1.key\"\n"));
    assert_eq!(
        c.tls,
        Some(ClusterTls { ca: None, cert_key: Some((PathBuf::from("gw/gw1.pem"), PathBuf::from("gw/gw1.key"))) })
    );
    let c = cluster(&format!("{https}ca = \"/etc/ssl/etcd-ca.pem\"\n"));
    assert_eq!(c.tls, Some(ClusterTls { ca: Some(PathBuf::from("/etc/ssl/etcd-ca.pem")), cert_key: None }));
    // http and https endpoints may be mixed while no TLS file is named.
    let c = cluster(&with(MINIMAL, "\"http://10.9.0.1:2379\"", "\"http://10.9.0.1:2379\", \"https://10.9.0.2:2379\""));
    assert_eq!(c.etcd, ["http://10.9.0.1:2379", "https://10.9.0.2:2379"]);
    // The bounds are inside.
    for (ttl, secs) in [("\"2s\"", 2), ("\"300s\"", 300), ("\"5m\"", 300), ("\"45\"", 45)] {
        assert_eq!(cluster(&format!("{MINIMAL}ttl = {ttl}\n")).ttl, Duration::from_secs(secs), "{ttl}");
    }
    for n in [1, 10_000_000] {
        assert_eq!(cluster(&format!("{MINIMAL}redirect_above = {n}\n")).redirect_above, Some(n));
    }
    let node = "a".repeat(63);
    assert_eq!(cluster(&with(MINIMAL, "\"gw1\"", &format!("\"{node}\""))).node, node);
    assert_eq!(cluster(&with(MINIMAL, "\"gw1\"", "\"GW-1.dc_2\"")).node, "GW-1.dc_2");
    let prefix = format!("/{}", "p".repeat(63));
    assert_eq!(cluster(&format!("{MINIMAL}prefix = \"{prefix}\"\n")).prefix, prefix);
}

#[test]
fn etcd_is_required_and_each_endpoint_checked() {
    let header = line_of(MINIMAL, "[cluster]");
    let e = err(&with(MINIMAL, "etcd = [\"http://10.9.0.1:2379\"]\n", ""));
    expect(&e, "cluster.etcd", header, "required: the etcd endpoints, e.g. [\"http://10.9.0.1:2379\"]");
    let e = err(&with(MINIMAL, "[\"http://10.9.0.1:2379\"]", "[]"));
    expect(&e, "cluster.etcd", line_of(MINIMAL, "etcd"), "names no endpoint, e.g. [\"http://10.9.0.1:2379\"]");
    let example = "such as \"http://10.9.0.1:2379\" or \"https://etcd1.example:2379\"";
    let not_one = format!(" is not an endpoint {example}: it starts with http:// or https://");
    let no_port = format!(": the port is missing, {example}");
    let only = format!(": no user, path or query, only the host and port, {example}");
    let port = |p: &str| format!(": `{p}` is not a port from 1 to 65535");
    let host = |h: &str| format!(": `{h}` is not an IP address or DNS name etcd can be reached at");
    let cases = [
        ("10.9.0.1:2379", not_one.clone()),
        ("ftp://10.9.0.1:2379", not_one.clone()),
        ("HTTP://10.9.0.1:2379", not_one.clone()),
        ("http://10.9.0.1", no_port.clone()),
        ("http://[fd00::1]", no_port.clone()),
        ("http://10.9.0.1:", port("")),
        ("http://10.9.0.1:0", port("0")),
        ("http://10.9.0.1:65536", port("65536")),
        ("http://10.9.0.1:+80", port("+80")),
        ("http://10.9.0.1:2379/v3", only.clone()),
        ("http://10.9.0.1:2379//", only.clone()),
        ("http://10.9.0.1:2379?x=1", only.clone()),
        ("http://10.9.0.1:2379#f", only.clone()),
        ("http://user@10.9.0.1:2379", only.clone()),
        ("http://fd00::1:2379", ": an IPv6 address goes in brackets, e.g. \"http://[fd00::1]:2379\"".to_owned()),
        ("http://[10.9.0.1]:2379", ": `10.9.0.1` in brackets is not an IPv6 address".to_owned()),
        ("http://[fd00::1:2379", ": `[` without `]`".to_owned()),
        ("http://:2379", host("")),
        ("http://etcd_1:2379", host("etcd_1")),
        ("http://10.9.0:2379", host("10.9.0")),
        ("http://0.0.0.0:2379", host("0.0.0.0")),
        ("https://[ff02::1]:2379", host("ff02::1")),
    ];
    for (bad, why) in cases {
        // The second endpoint, on a line of its own, to show which one is named.
        let text = with(MINIMAL, "\"http://10.9.0.1:2379\"", &format!("\"http://10.9.0.1:2379\",\n  \"{bad}\""));
        let e = err(&text);
        expect(&e, "cluster.etcd", line_of(&text, &format!("  \"{bad}\"")), &format!("`{bad}`{why}"));
    }
}

#[test]
fn node_is_required_and_a_name() {
    let e = err(&with(MINIMAL, "node = \"gw1\"\n", ""));
    expect(&e, "cluster.node", line_of(MINIMAL, "[cluster]"), "required: this node's name, e.g. \"gw1\"");
    let long = "a".repeat(64);
    for bad in ["", "gw 1", "gw/1", "gw1:", "gw\u{e9}", long.as_str()] {
        let e = err(&with(MINIMAL, "\"gw1\"", &format!("\"{bad}\"")));
        expect(
            &e,
            "cluster.node",
            line_of(MINIMAL, "node"),
            &format!("`{bad}` is not a node name: 1 to 63 of A-Z a-z 0-9 . _ -"),
        );
    }
    let e = err(&with(MINIMAL, "\"gw1\"", "1"));
    assert_eq!((e.key.as_str(), e.line), ("cluster.node", line_of(MINIMAL, "node")), "{e}");
}

#[test]
fn ttl_prefix_address_and_redirect_above_are_bounded() {
    let line = line_of(MINIMAL, "node") + 1;
    for bad in ["1s", "301s", "6m", "1h"] {
        let e = err(&format!("{MINIMAL}ttl = \"{bad}\"\n"));
        expect(&e, "cluster.ttl", line, "from 2s to 300s");
    }
    for bad in ["0", "soon", "10 s"] {
        let e = err(&format!("{MINIMAL}ttl = \"{bad}\"\n"));
        expect(&e, "cluster.ttl", line, &format!("`{bad}` is not a duration such as 30s, 15m, 4h, 1d"));
    }
    let long = format!("/{}", "p".repeat(64));
    for bad in ["oxswan", "/oxswan/", "/", "", "/ox swan", "/ox\tswan", long.as_str()] {
        let e = err(&format!("{MINIMAL}prefix = \"{bad}\"\n"));
        expect(
            &e,
            "cluster.prefix",
            line,
            &format!(
                "`{bad}` is not a key prefix: it starts with `/`, does not end with one, has no whitespace and at \
                 most 64 characters, e.g. \"/oxswan\""
            ),
        );
    }
    // `address` is refused where, and as, `[daemon] redirect` refuses the same value.
    for bad in ["0.0.0.0", "ff02::1", "vpn_1.example", "1.2.3", ""] {
        let e = err(&format!("{MINIMAL}address = \"{bad}\"\n"));
        let daemon = err(&format!("[daemon]\nredirect = \"{bad}\"\n"));
        assert_eq!(daemon.key, "daemon.redirect", "{daemon}");
        expect(&e, "cluster.address", line, &daemon.message);
    }
    for bad in ["0", "-1", "10000001", "4294967296"] {
        let e = err(&format!("{MINIMAL}redirect_above = {bad}\n"));
        expect(&e, "cluster.redirect_above", line, &format!("{bad}: from 1 to 10000000 IKE SAs"));
    }
    let e = err(&format!("{MINIMAL}redirect_above = \"200\"\n"));
    assert_eq!((e.key.as_str(), e.line), ("cluster.redirect_above", line), "a string is refused at its key: {e}");
    let e = err(&format!("{MINIMAL}etcd_endpoints = []\n"));
    assert_eq!((e.key.as_str(), e.line), ("cluster.etcd_endpoints", line), "{e}");
    assert!(e.message.contains("unknown field `etcd_endpoints`"), "{e}");
}

#[test]
fn cert_and_key_go_together() {
    let https = with(MINIMAL, "http://", "https://");
    let line = line_of(&https, "node") + 1;
    let e = err(&format!("{https}cert = \"gw1.pem\"\n"));
    expect(&e, "cluster.key", line, "missing: `cert` needs its private key in `key`");
    let e = err(&format!("{https}key = \"gw1.key\"\n"));
    expect(&e, "cluster.cert", line, "missing: `key` needs its certificate in `cert`");
    let e = err(&format!("{https}ca = \"ca.pem\"\nkey = \"gw1.key\"\n"));
    expect(&e, "cluster.cert", line + 1, "missing: `key` needs its certificate in `cert`");
    for k in ["ca", "cert", "key"] {
        let empty = format!("{k} = \"\"");
        let text: String = FULL
            .lines()
            .map(|l| if l.starts_with(&format!("{k} = ")) { format!("{empty}\n") } else { format!("{l}\n") })
            .collect();
        let e = err(&text);
        expect(&e, &format!("cluster.{k}"), line_of(&text, &empty), "empty file name");
    }
}

#[test]
fn tls_files_need_https_endpoints() {
    // Each of the three alone, and all of them, with every endpoint http: the first is refused.
    for (extra, key) in [
        ("ca = \"ca.pem\"\n", "ca"),
        ("cert = \"gw1.pem\"\nkey = \"gw1.key\"\n", "cert"),
        ("key = \"gw1.key\"\n", "key"),
        ("ca = \"ca.pem\"\ncert = \"gw1.pem\"\nkey = \"gw1.key\"\n", "ca"),
    ] {
        let text = format!("{MINIMAL}{extra}");
        let e = err(&text);
        expect(
            &e,
            &format!("cluster.{key}"),
            line_of(&text, &format!("{key} = ")),
            "only with https etcd endpoints, and `http://10.9.0.1:2379` is http",
        );
    }
    // One http endpoint among https ones is enough to refuse them, and it is the one named.
    let text = with(FULL, "\"https://etcd2.example:2379/\"", "\"http://etcd2.example:2379/\"");
    let e = err(&text);
    expect(
        &e,
        "cluster.ca",
        line_of(&text, "ca = "),
        "only with https etcd endpoints, and `http://etcd2.example:2379` is http",
    );
}

/// `load` requires the files named to be there, as it does the sides' certificates, and does not
/// read them: empty files pass.
#[test]
fn load_wants_the_files_there() {
    let dir = std::env::temp_dir().join(format!("oxswan-config-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let abs = dir.join("abs-gw1.pem");
    let text = FULL.replace("/etc/oxswan/gw1.pem", &abs.display().to_string());
    let path = dir.join("gw1.toml");
    std::fs::write(&path, &text).unwrap();
    let e = oxswan_config::load(&path).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("cluster.ca", line_of(&text, "ca = ")), "{e}");
    assert!(e.message.starts_with(&format!("cannot read {}", dir.join("etcd-ca.pem").display())), "{e}");
    std::fs::write(dir.join("etcd-ca.pem"), b"").unwrap();
    let e = oxswan_config::load(&path).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("cluster.cert", line_of(&text, "cert = ")), "{e}");
    std::fs::write(&abs, b"").unwrap();
    let e = oxswan_config::load(&path).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("cluster.key", line_of(&text, "key = ")), "{e}");
    std::fs::create_dir_all(dir.join("gw1.key")).unwrap();
    let e = oxswan_config::load(&path).unwrap_err();
    assert_eq!(e.message, format!("{} is not a file", dir.join("gw1.key").display()), "{e}");
    std::fs::remove_dir(dir.join("gw1.key")).unwrap();
    std::fs::write(dir.join("gw1.key"), b"").unwrap();
    let c = oxswan_config::load(&path).unwrap_or_else(|e| panic!("{e}")).cluster.unwrap();
    assert_eq!(
        c.tls,
        Some(ClusterTls { ca: Some(dir.join("etcd-ca.pem")), cert_key: Some((abs.clone(), dir.join("gw1.key"))) })
    );
    let _ = std::fs::remove_dir_all(dir);
}
