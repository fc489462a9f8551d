//! Each profile read back and checked field by field: the property list with the `plist` crate
//! against Apple's documented IKEv2 keys, the `.sswan` as JSON, the PowerShell script's cmdlet
//! parameters, the PKCS#12 bundle opened with its password, the oxswan configuration by oxswan's
//! own loader. (`crates/oxswan/tests/setup.rs` reads the same files with Python's plistlib and
//! OpenSSL, and connects strongSwan clients configured from them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;

use oxswan_pki::{Ca, KeyKind, OffsetDateTime};
use oxswan_profile::*;
use plist::Value;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use zeroize::Zeroizing;

struct Fixture {
    gateway: Gateway,
    ca: Ca,
}

fn fixture() -> Fixture {
    let now = OffsetDateTime::now_utc();
    let (ca, issued) = Ca::generate("Test CA", KeyKind::EcdsaP256, now).unwrap();
    let gateway = Gateway {
        name: "vpn.example.com".into(),
        addresses: vec!["192.0.2.2".parse().unwrap()],
        ca_der: issued.cert_der,
        ca_common_name: "Test CA".into(),
        ipv6: true,
    };
    Fixture { gateway, ca }
}

fn password_client() -> Client {
    Client {
        name: "alice".into(),
        credential: Credential::Password { user: "alice".into(), password: Zeroizing::new("pw'\"$x".into()) },
    }
}

fn cert_client(f: &Fixture, kind: KeyKind) -> (Client, Vec<u8>) {
    let issued = f.ca.issue_client("bob@example.com", kind, OffsetDateTime::now_utc()).unwrap();
    let key = PrivatePkcs8KeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let p12 = pkcs12(&issued.cert_der, key.secret_pkcs8_der(), &f.gateway.ca_der, "bob", "p12pw", Pkcs12Kind::Legacy)
        .unwrap();
    let kind = if kind == KeyKind::Rsa3072 { CertKind::Rsa } else { CertKind::EcdsaP256 };
    let c = Client {
        name: "bob".into(),
        credential: Credential::Certificate {
            id: "bob@example.com".into(),
            kind,
            p12: p12.clone(),
            p12_password: Zeroizing::new("p12pw".into()),
        },
    };
    (c, issued.cert_der)
}

fn dict<'a>(v: &'a Value, key: &str) -> &'a plist::Dictionary {
    v.as_dictionary().unwrap().get(key).and_then(Value::as_dictionary).unwrap_or_else(|| panic!("no dict {key}"))
}

fn s<'a>(d: &'a plist::Dictionary, key: &str) -> &'a str {
    d.get(key).and_then(Value::as_string).unwrap_or_else(|| panic!("no string {key}"))
}

fn i(d: &plist::Dictionary, key: &str) -> i64 {
    d.get(key).and_then(Value::as_signed_integer).unwrap_or_else(|| panic!("no integer {key}"))
}

/// The payloads of a profile by type.
fn payloads(v: &Value) -> Vec<plist::Dictionary> {
    let top = v.as_dictionary().unwrap();
    assert_eq!(s(top, "PayloadType"), "Configuration");
    assert_eq!(i(top, "PayloadVersion"), 1);
    top.get("PayloadContent")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|p| p.as_dictionary().unwrap().clone())
        .collect()
}

fn of_type<'a>(ps: &'a [plist::Dictionary], t: &str) -> &'a plist::Dictionary {
    ps.iter().find(|p| s(p, "PayloadType") == t).unwrap_or_else(|| panic!("no {t} payload"))
}

#[test]
fn mobileconfig_for_a_password_client() {
    let f = fixture();
    let xml = mobileconfig(&f.gateway, &password_client(), false).unwrap();
    let v = Value::from_reader_xml(xml.as_slice()).unwrap();
    let ps = payloads(&v);
    assert_eq!(ps.len(), 2, "the CA and the VPN");
    let mut uuids: Vec<&str> = ps.iter().map(|p| s(p, "PayloadUUID")).collect();
    uuids.push(s(v.as_dictionary().unwrap(), "PayloadUUID"));
    uuids.sort_unstable();
    uuids.dedup();
    assert_eq!(uuids.len(), 3, "a UUID per payload");
    let ca = of_type(&ps, "com.apple.security.root");
    assert_eq!(ca.get("PayloadContent").and_then(Value::as_data), Some(f.gateway.ca_der.as_slice()));
    let vpn = of_type(&ps, "com.apple.vpn.managed");
    assert_eq!(s(vpn, "VPNType"), "IKEv2");
    let ike = vpn.get("IKEv2").and_then(Value::as_dictionary).unwrap();
    assert_eq!(s(ike, "RemoteAddress"), "vpn.example.com");
    assert_eq!(s(ike, "RemoteIdentifier"), "vpn.example.com");
    assert_eq!(s(ike, "LocalIdentifier"), "alice");
    assert_eq!(s(ike, "AuthenticationMethod"), "Certificate");
    assert_eq!(i(ike, "ExtendedAuthEnabled"), 1);
    assert_eq!(s(ike, "AuthName"), "alice");
    assert_eq!(s(ike, "AuthPassword"), "pw'\"$x", "escaped in XML, read back whole");
    assert_eq!(s(ike, "ServerCertificateIssuerCommonName"), "Test CA");
    assert!(ike.get("PayloadCertificateUUID").is_none());
    for sa in ["IKESecurityAssociationParameters", "ChildSecurityAssociationParameters"] {
        let p = ike.get(sa).and_then(Value::as_dictionary).unwrap();
        assert_eq!(s(p, "EncryptionAlgorithm"), "AES-256-GCM");
        assert_eq!(s(p, "IntegrityAlgorithm"), "SHA2-256");
        assert_eq!(i(p, "DiffieHellmanGroup"), 19);
    }
    assert_eq!(i(ike, "EnablePFS"), 0);
    assert_eq!(i(ike, "OnDemandEnabled"), 0);
    assert_eq!(i(dict(&Value::Dictionary(vpn.clone()), "IPv4"), "OverridePrimary"), 1);
}

#[test]
fn mobileconfig_for_a_certificate_client_names_its_identity() {
    let f = fixture();
    let (client, _) = cert_client(&f, KeyKind::EcdsaP256);
    let xml = mobileconfig(&f.gateway, &client, true).unwrap();
    let ps = payloads(&Value::from_reader_xml(xml.as_slice()).unwrap());
    assert_eq!(ps.len(), 3);
    let id = of_type(&ps, "com.apple.security.pkcs12");
    let Credential::Certificate { p12, .. } = &client.credential else { unreachable!() };
    assert_eq!(id.get("PayloadContent").and_then(Value::as_data), Some(p12.as_slice()));
    assert_eq!(s(id, "Password"), "p12pw");
    let vpn = of_type(&ps, "com.apple.vpn.managed");
    let ike = vpn.get("IKEv2").and_then(Value::as_dictionary).unwrap();
    assert_eq!(s(ike, "PayloadCertificateUUID"), s(id, "PayloadUUID"), "the VPN names the identity payload");
    assert_eq!(s(ike, "CertificateType"), "ECDSA256");
    assert_eq!(s(ike, "LocalIdentifier"), "bob@example.com");
    assert_eq!(i(ike, "ExtendedAuthEnabled"), 0);
    assert!(ike.get("AuthPassword").is_none());
    assert_eq!(i(ike, "OnDemandEnabled"), 1);
    let rules = ike.get("OnDemandRules").and_then(Value::as_array).unwrap();
    assert_eq!(s(rules[0].as_dictionary().unwrap(), "Action"), "Connect");
}

#[test]
fn pkcs12_opens_with_its_password_and_holds_the_chain() {
    let f = fixture();
    for kind in [Pkcs12Kind::Legacy, Pkcs12Kind::Modern] {
        let issued = f.ca.issue_client("carol", KeyKind::EcdsaP256, OffsetDateTime::now_utc()).unwrap();
        let key = PrivatePkcs8KeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let p12 = pkcs12(&issued.cert_der, key.secret_pkcs8_der(), &f.gateway.ca_der, "carol", "s3cret", kind).unwrap();
        let store =
            p12_keystore::KeyStore::from_pkcs12(&p12, "s3cret", p12_keystore::Pkcs12ImportPolicy::Relaxed).unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.key().as_der(), key.secret_pkcs8_der());
        assert_eq!(chain.certs()[0].as_der(), issued.cert_der.as_slice());
        assert_eq!(chain.certs()[1].as_der(), f.gateway.ca_der.as_slice());
        assert!(p12_keystore::KeyStore::from_pkcs12(&p12, "wrong", p12_keystore::Pkcs12ImportPolicy::Relaxed).is_err());
    }
}

#[test]
fn sswan_is_what_the_android_app_imports() {
    let f = fixture();
    let v: serde_json::Value = serde_json::from_str(&sswan(&f.gateway, &password_client()).unwrap()).unwrap();
    assert_eq!(v["type"], "ikev2-eap");
    assert_eq!(v["remote"]["addr"], "vpn.example.com");
    assert_eq!(v["remote"]["id"], "vpn.example.com");
    use base64::Engine as _;
    let cert = base64::engine::general_purpose::STANDARD.decode(v["remote"]["cert"].as_str().unwrap()).unwrap();
    assert_eq!(cert, f.gateway.ca_der);
    assert_eq!(v["local"]["eap_id"], "alice");
    assert!(!sswan(&f.gateway, &password_client()).unwrap().contains("pw'"), "no password in the file");
    assert_eq!(v["ike-proposal"], suites::ANDROID.ike);
    assert_eq!(v["esp-proposal"], suites::ANDROID.esp);
    assert_eq!(v["uuid"].as_str().unwrap().len(), 36);
    let again: serde_json::Value = serde_json::from_str(&sswan(&f.gateway, &password_client()).unwrap()).unwrap();
    assert_eq!(v["uuid"], again["uuid"], "the same client, the same profile for the app");
    assert_eq!(v["split-tunneling"]["block-ipv6"], false, "the fixture lends IPv6");
    let mut v4_only = f.gateway.clone();
    v4_only.ipv6 = false;
    let v4: serde_json::Value = serde_json::from_str(&sswan(&v4_only, &password_client()).unwrap()).unwrap();
    assert_eq!(v4["split-tunneling"]["block-ipv6"], true);

    let (client, _) = cert_client(&f, KeyKind::Rsa3072);
    let v: serde_json::Value = serde_json::from_str(&sswan(&f.gateway, &client).unwrap()).unwrap();
    assert_eq!(v["type"], "ikev2-cert");
    let Credential::Certificate { p12, .. } = &client.credential else { unreachable!() };
    let got = base64::engine::general_purpose::STANDARD.decode(v["local"]["p12"].as_str().unwrap()).unwrap();
    assert_eq!(&got, p12);
}

#[test]
fn powershell_sets_the_windows_suite_and_quotes_names() {
    let mut f = fixture();
    f.gateway.name = "it's.example".into();
    let ps = powershell(&f.gateway, &password_client());
    assert!(ps.starts_with('\u{FEFF}'), "a byte order mark, for Windows PowerShell 5.1");
    assert!(ps.contains("$Name = 'it''s.example'"), "{ps}");
    assert!(ps.contains("-AllUserConnection -Force\n"), "{ps}");
    assert!(ps.contains("Remove-VpnConnection -Name $Name -AllUserConnection"), "{ps}");
    // PowerShell takes U+2019 for a quote too: doubled like the ASCII one; a newline cannot end a
    // comment line early.
    let mut odd = password_client();
    odd.name = "x\u{2019};calc;\u{201D}\nrm".into();
    if let Credential::Password { user, .. } = &mut odd.credential {
        *user = "x\u{2019};calc".into();
    }
    let ps = powershell(&f.gateway, &odd);
    assert!(ps.contains("' + 'x\u{2019}\u{2019};calc' + '"), "{ps}");
    assert!(!ps.contains("\nrm"), "{ps}");
    assert!(ps.contains("-AuthenticationMethod Eap "), "{ps}");
    for p in [
        "-EncryptionMethod AES256",
        "-IntegrityCheckMethod SHA256",
        "-DHGroup Group14",
        "-CipherTransformConstants GCMAES256",
        "-AuthenticationTransformConstants GCMAES256",
        "-PfsGroup None",
        "-TunnelType Ikev2",
        "Cert:\\LocalMachine\\Root",
    ] {
        assert!(ps.contains(p), "{p} missing:\n{ps}");
    }
    assert!(!ps.contains("pw'"), "no password in the script");
    let (client, _) = cert_client(&f, KeyKind::EcdsaP256);
    let ps = powershell(&f.gateway, &client);
    assert!(ps.contains("-AuthenticationMethod MachineCertificate"), "{ps}");
    assert!(ps.contains("Import-PfxCertificate -FilePath $P12 -CertStoreLocation Cert:\\LocalMachine\\My"), "{ps}");
    assert!(ps.contains("'bob.p12'"), "{ps}");
}

#[test]
fn oxswan_toml_is_a_valid_client_configuration() {
    let f = fixture();
    let files = LinuxFiles { ca: "ca.pem".into(), cert_and_key: None };
    let text = oxswan_toml(&f.gateway, &password_client(), &files).unwrap();
    let c = oxswan_config::parse(Path::new("/etc/oxswan/client/alice.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let vpn = c.connection("vpn").unwrap();
    assert_eq!(vpn.remote_addrs, ["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(vpn.remote.cacerts, [Path::new("/etc/oxswan/client/ca.pem")]);
    assert_eq!(c.eap_secret("alice").map(|s| s.len()), Some("pw'\"$x".len()));

    let (client, _) = cert_client(&f, KeyKind::EcdsaP256);
    let files = LinuxFiles { ca: "ca.pem".into(), cert_and_key: Some(("bob.crt".into(), "bob.key".into())) };
    let text = oxswan_toml(&f.gateway, &client, &files).unwrap();
    let c = oxswan_config::parse(Path::new("/x/bob.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.connection("vpn").unwrap().local.certs, [Path::new("/x/bob.crt")]);

    let mut nameless = f.gateway.clone();
    nameless.addresses.clear();
    assert!(matches!(oxswan_toml(&nameless, &password_client(), &files), Err(ProfileError::NoAddress(_))));
}
