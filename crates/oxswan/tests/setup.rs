//! Issue 15, `oxswan setup gateway` and `oxswan client`: the profiles each stock client imports
//! are read back by independent readers (Python's plistlib for the Apple profile, JSON for the
//! `.sswan`, OpenSSL for the PKCS#12 bundle), then strongSwan's charon is configured **from each
//! profile** (its server address, identities, proposals, CA and credentials, nothing else) and
//! connects through a NAT box to a gateway made by `oxswan setup gateway`, gets a virtual IP and
//! pings through; so does an oxswan client from its generated configuration. A removed client is
//! cut off and refused. Needs python3 and openssl for the first test, root and strongSwan for the
//! second (`bash .ci/run` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::lan::*;
use common::{CHARON_PKCS12, OPENSSL, OX, PYTHON3, require, sh, spawn_charon, spawn_oxswan};

const NAME: &str = "vpn.example.com";
const USER: &str = "alice";
const CERT: &str = "bob@example.com";
const OTHER: &str = "carol";

fn ox(args: &[&str]) -> String {
    let o = Command::new(OX).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "oxswan {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What `client add` printed after `label`: the password it made.
fn printed(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"))
}

/// A gateway in `dir` reached at `address`, with a password user and a certificate client; their
/// passwords. `netns`: the gateway's network namespace, where setup runs as it would on the
/// gateway (it listens on the addresses of `--address` that are the host's).
fn make_gateway(dir: &Path, address: &str, netns: Option<&str>) -> (String, String) {
    let d = dir.to_str().unwrap();
    let setup = [
        "setup",
        "gateway",
        "--name",
        NAME,
        "--address",
        address,
        "--pool",
        "10.10.0.0/24",
        "--dns",
        "10.10.0.53",
        "--dir",
        d,
    ];
    match netns {
        Some(ns) => {
            let o = Command::new("ip").args(["netns", "exec", ns, OX]).args(setup).output().unwrap();
            assert!(o.status.success(), "setup: {}", String::from_utf8_lossy(&o.stderr));
        }
        None => {
            ox(&setup);
        }
    }
    let out = ox(&["--socket", "/nonexistent.sock", "client", "add", USER, "--dir", d]);
    let password = printed(&out, &format!("password of {USER:?}:"));
    let out = ox(&["--socket", "/nonexistent.sock", "client", "add", CERT, "--cert", "--dir", d]);
    let p12_password = printed(&out, &format!("password of {CERT}.p12:"));
    (password, p12_password)
}

/// Apple's documented keys of the `IKEv2` dictionary of a `com.apple.vpn.managed` payload
/// (Configuration Profile Reference, VPN.IKEv2), with the type each must have.
const APPLE_IKEV2_KEYS: &str = r#"{
 "RemoteAddress": "str", "LocalIdentifier": "str", "RemoteIdentifier": "str",
 "AuthenticationMethod": "str", "ExtendedAuthEnabled": "int", "AuthName": "str", "AuthPassword": "str",
 "PayloadCertificateUUID": "str", "CertificateType": "str", "ServerCertificateIssuerCommonName": "str",
 "ServerCertificateCommonName": "str", "EnablePFS": "int", "DeadPeerDetectionRate": "str",
 "DisableMOBIKE": "int", "DisableRedirect": "int", "EnableCertificateRevocationCheck": "int",
 "UseConfigurationAttributeInternalIPSubnet": "int", "OnDemandEnabled": "int", "OnDemandRules": "list",
 "IKESecurityAssociationParameters": "dict", "ChildSecurityAssociationParameters": "dict",
 "NATKeepAliveInterval": "int", "NATKeepAliveOffloadEnable": "int", "MTU": "int"
}"#;

/// Reads a `.mobileconfig` with plistlib, checks every key of its IKEv2 payload against Apple's
/// list and type, every SA parameter against Apple's enumerations, and returns the profile as
/// JSON (data as base64).
fn plistlib(path: &Path) -> serde_json::Value {
    let script = format!(
        r#"
import base64, json, plistlib, sys
keys = json.loads('''{APPLE_IKEV2_KEYS}''')
types = {{"str": str, "int": int, "list": list, "dict": dict}}
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
assert p["PayloadType"] == "Configuration" and p["PayloadVersion"] == 1, p
for payload in p["PayloadContent"]:
    for k in ("PayloadType", "PayloadVersion", "PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"):
        assert k in payload, (k, payload.get("PayloadType"))
    if payload["PayloadType"] == "com.apple.vpn.managed":
        assert payload["VPNType"] == "IKEv2"
        ike = payload["IKEv2"]
        for k, v in ike.items():
            assert k in keys, "undocumented key " + k
            assert isinstance(v, types[keys[k]]) and not (keys[k] == "int" and isinstance(v, bool)), (k, v)
        assert ike["AuthenticationMethod"] in ("None", "SharedSecret", "Certificate")
        assert ike.get("CertificateType", "RSA") in ("RSA", "ECDSA256", "ECDSA384", "ECDSA521", "Ed25519")
        for sa in ("IKESecurityAssociationParameters", "ChildSecurityAssociationParameters"):
            s = ike[sa]
            assert s["EncryptionAlgorithm"] in ("DES", "3DES", "AES-128", "AES-256", "AES-128-GCM", "AES-256-GCM", "ChaCha20Poly1305"), s
            assert s["IntegrityAlgorithm"] in ("SHA1-96", "SHA1-160", "SHA2-256", "SHA2-384", "SHA2-512"), s
            assert s["DiffieHellmanGroup"] in (1, 2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 31, 32), s
            assert 10 <= s["LifeTimeInMinutes"] <= 1440, s
def enc(o):
    if isinstance(o, bytes):
        return base64.b64encode(o).decode()
    raise TypeError(o)
print(json.dumps(p, default=enc))
"#
    );
    let o = Command::new("python3").arg("-c").arg(&script).arg(path).output().unwrap();
    assert!(o.status.success(), "plistlib on {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn b64(s: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s.as_str().unwrap()).unwrap()
}

/// The payload of type `t`.
fn payload<'a>(profile: &'a serde_json::Value, t: &str) -> &'a serde_json::Value {
    profile["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PayloadType"] == t)
        .unwrap_or_else(|| panic!("no {t}"))
}

fn sswan(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn openssl(args: &str) -> String {
    let o = sh(&format!("openssl {args}"));
    assert!(o.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[cfg_attr(not(all(have_python3, have_openssl)), ignore = "needs python3, openssl")]
fn profiles_read_back_by_plistlib_json_and_openssl() {
    require(&[&PYTHON3, &OPENSSL]);
    let dir = tempdir("read");
    let (password, p12_password) = make_gateway(&dir, "127.0.0.1", None);
    let d = dir.to_str().unwrap();
    let ca_der = openssl(&format!("x509 -in {d}/pki/ca.crt -outform DER | base64 -w0"));
    let ca_der = base64::engine::general_purpose::STANDARD.decode(ca_der.trim()).unwrap();

    // The systemd unit beside the configuration is the one `oxswan systemd-unit` prints for it.
    let unit = std::fs::read_to_string(dir.join("oxswan.service")).unwrap();
    assert_eq!(unit, ox(&["systemd-unit", "--config", &format!("{d}/oxswan.toml")]));
    assert!(unit.contains(&format!("daemon --config {d}/oxswan.toml")), "{unit}");

    // The password user: the Apple profile, field by field.
    let p = plistlib(&dir.join(format!("clients/{USER}/{USER}.mobileconfig")));
    assert_eq!(b64(&payload(&p, "com.apple.security.root")["PayloadContent"]), ca_der);
    let ike = &payload(&p, "com.apple.vpn.managed")["IKEv2"];
    assert_eq!(ike["RemoteAddress"], NAME);
    assert_eq!(ike["RemoteIdentifier"], NAME);
    assert_eq!(ike["LocalIdentifier"], USER);
    assert_eq!(ike["AuthenticationMethod"], "Certificate");
    assert_eq!(ike["ExtendedAuthEnabled"], 1);
    assert_eq!(ike["AuthName"], USER);
    assert_eq!(ike["AuthPassword"].as_str().unwrap(), password);
    assert_eq!(ike["ServerCertificateIssuerCommonName"], format!("{NAME} CA"));
    // The certificate client: its identity payload opens with the printed password.
    let p = plistlib(&dir.join(format!("clients/{CERT}/{CERT}.mobileconfig")));
    let id = payload(&p, "com.apple.security.pkcs12");
    let ike = &payload(&p, "com.apple.vpn.managed")["IKEv2"];
    assert_eq!(ike["PayloadCertificateUUID"], id["PayloadUUID"]);
    assert_eq!(ike["CertificateType"], "ECDSA256");
    assert_eq!(ike["ExtendedAuthEnabled"], 0);
    assert_eq!(ike["LocalIdentifier"], CERT);
    assert_eq!(id["Password"].as_str().unwrap(), p12_password);
    let p12 = dir.join(format!("clients/{CERT}/{CERT}.p12"));
    assert_eq!(b64(&id["PayloadContent"]), std::fs::read(&p12).unwrap());

    // The PKCS#12 bundle: Apple's and Windows' legacy protection (OpenSSL 3 needs -legacy), the
    // client's certificate with its key and the CA.
    let info =
        openssl(&format!("pkcs12 -info -legacy -in '{}' -passin pass:{p12_password} -nokeys 2>&1", p12.display()));
    assert!(info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
    assert!(info.contains("MAC: sha1"), "{info}");
    assert!(info.contains(&format!("subject=CN = {CERT}")) || info.contains(&format!("subject=CN={CERT}")), "{info}");
    assert!(
        info.contains(&format!("subject=CN = {NAME} CA")) || info.contains(&format!("subject=CN={NAME} CA")),
        "{info}"
    );
    let key_pub = openssl(&format!(
        "pkcs12 -legacy -in '{}' -passin pass:{p12_password} -nocerts -nodes | openssl pkey -pubout",
        p12.display()
    ));
    let cert_pub = openssl(&format!("x509 -in '{d}/pki/clients/{CERT}.crt' -noout -pubkey"));
    assert_eq!(key_pub, cert_pub, "the key in the bundle is the certificate's");
    assert!(
        !sh(&format!("openssl pkcs12 -legacy -in '{}' -passin pass:wrong -nokeys", p12.display())).status.success()
    );

    // The .sswan files, as JSON.
    let v = sswan(&dir.join(format!("clients/{USER}/{USER}.sswan")));
    assert_eq!(
        (v["type"].as_str(), v["remote"]["addr"].as_str(), v["remote"]["id"].as_str()),
        (Some("ikev2-eap"), Some(NAME), Some(NAME))
    );
    assert_eq!(b64(&v["remote"]["cert"]), ca_der);
    assert_eq!(v["local"]["eap_id"], USER);
    // No IPv6 pool (the configuration has none): the app blocks IPv6 instead of letting it pass.
    assert_eq!(v["split-tunneling"]["block-ipv6"], true);
    let v = sswan(&dir.join(format!("clients/{CERT}/{CERT}.sswan")));
    assert_eq!(v["type"], "ikev2-cert");
    assert_eq!(b64(&v["local"]["p12"]), std::fs::read(&p12).unwrap());

    // Every profile is 0600 in a 0700 directory: they are credentials.
    use std::os::unix::fs::PermissionsExt as _;
    for client in [USER, CERT] {
        let cdir = dir.join("clients").join(client);
        assert_eq!(std::fs::metadata(&cdir).unwrap().permissions().mode() & 0o777, 0o700);
        for f in std::fs::read_dir(&cdir).unwrap() {
            let f = f.unwrap();
            assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{:?}", f.path());
        }
    }
    assert_eq!(std::fs::metadata(dir.join("oxswan.toml")).unwrap().permissions().mode() & 0o777, 0o600);

    // export --qr: the .sswan file, exactly, as a QR code (the same text encodes to the same code).
    let qr = ox(&["client", "export", USER, "--qr", "--dir", d]);
    let text = std::fs::read(dir.join(format!("clients/{USER}/{USER}.sswan"))).unwrap();
    let want =
        qrcode::QrCode::new(&text).unwrap().render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
    assert_eq!(qr.trim_end(), want.trim_end());
    let o = Command::new(OX).args(["client", "export", CERT, "--qr", "--dir", d]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("does not fit a QR code"));
    // export: the profiles made again, the PKCS#12 under a new password.
    let out = ox(&["client", "export", CERT, "--dir", d]);
    let new_password = printed(&out, &format!("password of {CERT}.p12:"));
    assert_ne!(new_password, p12_password);
    openssl(&format!("pkcs12 -legacy -in '{}' -passin pass:{new_password} -nokeys -noout", p12.display()));
    assert!(
        !sh(&format!("openssl pkcs12 -legacy -in '{}' -passin pass:{p12_password} -nokeys -noout", p12.display()))
            .status
            .success()
    );

    // list, then remove: the certificate is on the CA's list, the user's password is gone.
    let list = ox(&["client", "list", "--dir", d]);
    assert!(list.contains(&format!("{USER}\tpassword")) && list.contains(&format!("{CERT}\tcertificate")), "{list}");
    let serial = openssl(&format!("x509 -in '{d}/pki/clients/{CERT}.crt' -noout -serial"));
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    ox(&["--socket", "/nonexistent.sock", "client", "remove", CERT, "--dir", d]);
    ox(&["--socket", "/nonexistent.sock", "client", "remove", USER, "--dir", d]);
    let crl = openssl(&format!("crl -in {d}/pki/crl.pem -noout -text"));
    assert!(crl.to_uppercase().contains(&format!("SERIAL NUMBER: {serial}")), "{serial} not in\n{crl}");
    assert!(!dir.join(format!("clients/{CERT}")).exists() && !dir.join(format!("clients/{USER}")).exists());
    let config = std::fs::read_to_string(dir.join("oxswan.toml")).unwrap();
    assert!(!config.contains(USER) && !config.contains("rw-eap"), "{config}");
    ox(&["check-config", &format!("{d}/oxswan.toml")]);
    assert!(ox(&["client", "list", "--dir", d]).contains("no clients"));
    // The name is free again, with a new certificate.
    ox(&["--socket", "/nonexistent.sock", "client", "add", CERT, "--cert", "--dir", d]);
    // A client may be called `ca`: its certificate does not take the CA's file.
    ox(&["--socket", "/nonexistent.sock", "client", "add", "ca", "--cert", "--dir", d]);
    assert!(dir.join("clients/ca/ca.crt").exists() && dir.join("clients/ca/ca.pem").exists());
    // A password from standard input, not the command line.
    let mut child = Command::new(OX)
        .args(["--socket", "/nonexistent.sock", "client", "add", "dave", "--password-stdin", "--dir", d])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"dave's pass phrase\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let config = std::fs::read_to_string(dir.join("oxswan.toml")).unwrap();
    assert!(config.contains("secret = \"dave's pass phrase\""), "{config}");
    // Names that would be more than a name (a PowerShell quote, a path) are refused, and nothing
    // is made for them.
    for bad in ["x\u{201D};calc;\u{201D}", "../etc", "-rf", "a b", ""] {
        let o = Command::new(OX)
            .args(["--socket", "/nonexistent.sock", "client", "add", "--dir", d, "--", bad])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{bad:?} accepted");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("a client's name"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(std::fs::read_dir(dir.join("clients")).unwrap().count(), 3, "bob, ca and dave only");
    // A bad gateway name is refused before anything is written, so the same command with the right
    // name works next.
    let again = tempdir("again");
    let a = again.to_str().unwrap();
    let o = Command::new(OX)
        .args(["setup", "gateway", "--name", "vpn_example.com", "--address", "127.0.0.1", "--dir", a])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--name"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!again.exists(), "nothing written for a refused name");
    ox(&["setup", "gateway", "--name", "vpn.example.com", "--address", "127.0.0.1", "--dir", a]);
    let _ = std::fs::remove_dir_all(&again);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxswan-setup-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Apple's names as strongSwan's keywords: the test's own reading of Apple's reference.
fn apple_proposals(ike: &serde_json::Value) -> (String, String) {
    let enc = BTreeMap::from([
        ("AES-256-GCM", "aes256gcm16"),
        ("AES-128-GCM", "aes128gcm16"),
        ("AES-256", "aes256"),
        ("AES-128", "aes128"),
        ("ChaCha20Poly1305", "chacha20poly1305"),
    ]);
    let integ =
        BTreeMap::from([("SHA2-256", "sha256"), ("SHA2-384", "sha384"), ("SHA2-512", "sha512"), ("SHA1-96", "sha1")]);
    let dh = BTreeMap::from([
        (14, "modp2048"),
        (15, "modp3072"),
        (19, "ecp256"),
        (20, "ecp384"),
        (21, "ecp521"),
        (31, "curve25519"),
    ]);
    let sa = |k: &str| {
        let s = &ike[k];
        let e = enc[s["EncryptionAlgorithm"].as_str().unwrap()];
        let i = integ[s["IntegrityAlgorithm"].as_str().unwrap()];
        let g = dh[&s["DiffieHellmanGroup"].as_i64().unwrap()];
        (e, i, g)
    };
    let (e, i, g) = sa("IKESecurityAssociationParameters");
    let aead = e.contains("gcm") || e.contains("poly");
    let ike_p = if aead { format!("{e}-prf{i}-{g}") } else { format!("{e}-{i}-{g}") };
    let (e, i, g) = sa("ChildSecurityAssociationParameters");
    let pfs = if ike["EnablePFS"] == 1 { format!("-{g}") } else { String::new() };
    let esp = if e.contains("gcm") || e.contains("poly") { format!("{e}{pfs}") } else { format!("{e}-{i}{pfs}") };
    (ike_p, esp)
}

/// The PowerShell script's cmdlet parameters, and Windows' names as strongSwan's keywords.
fn windows_profile(script: &str) -> (BTreeMap<String, String>, String, String, Vec<u8>) {
    let mut params = BTreeMap::new();
    for line in script
        .lines()
        .filter(|l| l.starts_with("Add-VpnConnection") || l.starts_with("Set-VpnConnectionIPsecConfiguration"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            if let Some(k) = w[0].strip_prefix('-') {
                params.insert(k.to_owned(), w[1].trim_matches('\'').to_owned());
            }
        }
    }
    let enc = BTreeMap::from([
        ("AES256", "aes256"),
        ("AES128", "aes128"),
        ("GCMAES256", "aes256gcm16"),
        ("GCMAES128", "aes128gcm16"),
    ]);
    let integ = BTreeMap::from([("SHA256", "sha256"), ("SHA384", "sha384"), ("SHA1", "sha1")]);
    let dh =
        BTreeMap::from([("Group14", "modp2048"), ("ECP256", "ecp256"), ("ECP384", "ecp384"), ("Group2", "modp1024")]);
    let ike = format!(
        "{}-{}-{}",
        enc[params["EncryptionMethod"].as_str()],
        integ[params["IntegrityCheckMethod"].as_str()],
        dh[params["DHGroup"].as_str()]
    );
    assert_eq!(params["PfsGroup"], "None");
    let cipher = params["CipherTransformConstants"].as_str();
    let esp = if cipher.starts_with("GCM") {
        assert_eq!(params["AuthenticationTransformConstants"], cipher, "GCM's integrity is the cipher's");
        enc[cipher].to_owned()
    } else {
        format!("{}-sha256", enc[cipher])
    };
    let ca = script.split("FromBase64String('").nth(1).and_then(|r| r.split('\'').next()).unwrap();
    (params, ike, esp, base64::engine::general_purpose::STANDARD.decode(ca).unwrap())
}

/// How charon is told to be one profile's client.
struct Charon {
    profile: &'static str,
    addr: String,
    local: String,
    remote_id: String,
    ike: String,
    esp: String,
    ca: Vec<u8>,
    secrets: String,
    p12: Option<Vec<u8>>,
}

fn charon_client(lan: &mut Lan, i: usize, c: &Charon) -> Result<Vec<String>, String> {
    let host = format!("c{i}");
    let conf = format!(
        "connections {{\n vpn {{\n  version = 2\n  remote_addrs = {}\n  vips = 0.0.0.0\n  proposals = {}\n  \
         local {{\n{}\n  }}\n  remote {{\n   auth = pubkey\n   id = {}\n  }}\n  \
         children {{\n   vpn {{\n    remote_ts = 10.2.0.1/32\n    esp_proposals = {}\n   }}\n  }}\n }}\n}}\n\
         secrets {{\n{}\n}}\n",
        c.addr, c.ike, c.local, c.remote_id, c.esp, c.secrets
    );
    let strongswan = "charon {\n  load = random nonce openssl aes sha1 sha2 md4 md5 des rc2 hmac gcm chapoly curve25519 \
                      gmp x509 pem pkcs1 pkcs8 pkcs12 pubkey kdf constraints revocation attr eap-identity \
                      eap-mschapv2 kernel-libipsec kernel-netlink socket-default vici updown\n  \
                      filelog {\n    stderr {\n      default = 1\n      ike = 2\n      cfg = 2\n    }\n  }\n  \
                      plugins { vici { socket = unix:///run/charon.vici } }\n}\n\
                      swanctl { socket = unix:///run/charon.vici }\n";
    let dir = lan.dir.join(format!("charon-{host}"));
    std::fs::create_dir_all(dir.join("pkcs12")).unwrap();
    let mut files = vec![("x509ca/ca.der", c.ca.clone())];
    if let Some(p12) = &c.p12 {
        files.push(("pkcs12/client.p12", p12.clone()));
    }
    let child = spawn_charon(&lan.ns(&host), &dir, &conf, strongswan, &files);
    lan.charons.push((host.clone(), child));
    let up = lan.swanctl(&host, "--initiate --child vpn --timeout 20");
    if !up.status.success() {
        return Err(format!("{}{}", String::from_utf8_lossy(&up.stdout), String::from_utf8_lossy(&up.stderr)));
    }
    Ok(charon_vips(lan, &host))
}

#[test]
#[cfg_attr(
    not(all(have_netns, have_charon, have_charon_mschapv2, have_charon_pkcs12, have_nft)),
    ignore = "needs root with ip, ping, iperf3, charon, charon's eap-mschapv2, charon's pkcs12, nft"
)]
fn charon_configured_from_each_profile_connects_and_a_removed_client_is_refused() {
    ready();
    require(&[&CHARON_PKCS12]);
    let mut lan = Lan::new("oxgw", 7);
    // The clients find the gateway by its name, as a phone would through DNS.
    for i in 0..7 {
        let etc = PathBuf::from(format!("/etc/netns/{}", lan.ns(&format!("c{i}"))));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{GW_IP} {NAME}\n")).unwrap();
        // The oxswan client applies the pool's DNS server to a resolv.conf of its own.
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.53\n").unwrap();
    }
    let dir = lan.dir.join("etc-oxswan");
    let (password, p12_password) = make_gateway(&dir, GW_IP, Some(&lan.ns("gw")));
    let d = dir.to_str().unwrap().to_owned();
    let gw_sock = lan.sock("gw");
    let child = spawn_oxswan(
        &lan.ns("gw"),
        &gw_sock,
        &dir.join("oxswan.toml"),
        &lan.dir.join("gw.log"),
        &[("RUST_LOG".into(), "info".into())],
    );
    lan.daemons.push(child);

    let user_dir = dir.join(format!("clients/{USER}"));
    let cert_dir = dir.join(format!("clients/{CERT}"));
    let subject = openssl(&format!("x509 -in '{d}/pki/clients/{CERT}.crt' -noout -subject -nameopt RFC2253"));
    let subject = subject.trim().trim_start_matches("subject=").to_owned();

    let mut clients = Vec::new();
    // iOS/macOS, both kinds.
    for (file, user) in
        [(user_dir.join(format!("{USER}.mobileconfig")), true), (cert_dir.join(format!("{CERT}.mobileconfig")), false)]
    {
        let p = plistlib(&file);
        let ike = payload(&p, "com.apple.vpn.managed")["IKEv2"].clone();
        let (ike_p, esp) = apple_proposals(&ike);
        let ca = b64(&payload(&p, "com.apple.security.root")["PayloadContent"]);
        let s = |k: &str| ike[k].as_str().unwrap().to_owned();
        let c = if user {
            Charon {
                profile: "Apple, password",
                addr: s("RemoteAddress"),
                local: format!(
                    "   auth = eap-mschapv2\n   id = {}\n   eap_id = {}",
                    s("LocalIdentifier"),
                    s("AuthName")
                ),
                remote_id: s("RemoteIdentifier"),
                ike: ike_p,
                esp,
                ca,
                secrets: format!(" eap-1 {{\n  id = {}\n  secret = \"{}\"\n }}", s("AuthName"), s("AuthPassword")),
                p12: None,
            }
        } else {
            let id = payload(&p, "com.apple.security.pkcs12");
            Charon {
                profile: "Apple, certificate",
                addr: s("RemoteAddress"),
                local: format!("   auth = pubkey\n   id = {}", s("LocalIdentifier")),
                remote_id: s("RemoteIdentifier"),
                ike: ike_p,
                esp,
                ca,
                secrets: format!(
                    " pkcs12-1 {{\n  file = client.p12\n  secret = \"{}\"\n }}",
                    id["Password"].as_str().unwrap()
                ),
                p12: Some(b64(&id["PayloadContent"])),
            }
        };
        clients.push(c);
    }
    // strongSwan for Android: the app asks for the passwords, here the ones `client add` printed.
    for (file, user) in
        [(user_dir.join(format!("{USER}.sswan")), true), (cert_dir.join(format!("{CERT}.sswan")), false)]
    {
        let v = sswan(&file);
        let s = |k: &serde_json::Value| k.as_str().unwrap().to_owned();
        let mut c = Charon {
            profile: if user { "Android, password" } else { "Android, certificate" },
            addr: s(&v["remote"]["addr"]),
            local: String::new(),
            remote_id: s(&v["remote"]["id"]),
            ike: s(&v["ike-proposal"]),
            esp: s(&v["esp-proposal"]),
            ca: b64(&v["remote"]["cert"]),
            secrets: String::new(),
            p12: None,
        };
        if user {
            let eap = s(&v["local"]["eap_id"]);
            c.local = format!("   auth = eap-mschapv2\n   id = {eap}\n   eap_id = {eap}");
            c.secrets = format!(" eap-1 {{\n  id = {eap}\n  secret = \"{password}\"\n }}");
        } else {
            c.local = format!("   auth = pubkey\n   id = {}", s(&v["local"]["id"]));
            c.secrets = format!(" pkcs12-1 {{\n  file = client.p12\n  secret = \"{p12_password}\"\n }}");
            c.p12 = Some(b64(&v["local"]["p12"]));
        }
        clients.push(c);
    }
    // Windows: its IKE identity is its address with EAP, its certificate's subject DN without.
    for (i, user) in [(4, true), (5, false)] {
        let (dirp, name) = if user { (&user_dir, USER) } else { (&cert_dir, CERT) };
        let (params, ike, esp, ca) =
            windows_profile(&std::fs::read_to_string(dirp.join(format!("{name}.ps1"))).unwrap());
        let server = params["ServerAddress"].clone();
        let c = if user {
            assert_eq!(params["AuthenticationMethod"], "Eap");
            Charon {
                profile: "Windows, password",
                addr: server.clone(),
                local: format!("   auth = eap-mschapv2\n   id = {}\n   eap_id = {USER}", client_ip(i)),
                remote_id: server,
                ike,
                esp,
                ca,
                secrets: format!(" eap-1 {{\n  id = {USER}\n  secret = \"{password}\"\n }}"),
                p12: None,
            }
        } else {
            assert_eq!(params["AuthenticationMethod"], "MachineCertificate");
            Charon {
                profile: "Windows, certificate",
                addr: server.clone(),
                local: format!("   auth = pubkey\n   id = \"{subject}\""),
                remote_id: server,
                ike,
                esp,
                ca,
                secrets: format!(" pkcs12-1 {{\n  file = client.p12\n  secret = \"{p12_password}\"\n }}"),
                p12: Some(std::fs::read(dirp.join(format!("{CERT}.p12"))).unwrap()),
            }
        };
        clients.push(c);
    }
    let mut table = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let vips = charon_client(&mut lan, i, c).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n--- gateway\n{}\n--- charon\n{}",
                c.profile,
                lan.log("gw"),
                lan.charon_log(&format!("c{i}"))
            )
        });
        let v4 = vips
            .iter()
            .find(|v| v.starts_with("10.10.0."))
            .unwrap_or_else(|| panic!("{}: no virtual IP: {vips:?}", c.profile));
        assert!(ping(&lan, i, v4, "10.2.0.1"), "{}: ping from {v4}\n{}", c.profile, lan.log("gw"));
        table.push(format!("| {:<22} | {:<30} | {:<12} | {v4} |", c.profile, c.ike, c.esp));
    }

    // oxswan on Linux from its generated configuration, all traffic through the tunnel: the
    // way to the gateway stays outside it. Another user, who must stay connected when the first
    // is removed.
    let other = ox(&["--socket", gw_sock.to_str().unwrap(), "client", "add", OTHER, "--dir", &d]);
    assert!(other.contains("daemon: "), "the running gateway reloaded: {other}");
    let linux = dir.join(format!("clients/{OTHER}/{OTHER}.toml"));
    let c6 = lan.ns("c6");
    let child =
        spawn_oxswan(&c6, &lan.sock("c6"), &linux, &lan.dir.join("c6.log"), &[("RUST_LOG".into(), "info".into())]);
    lan.daemons.push(child);
    assert!(
        wait(20, || lan.status("c6")["ike_sas"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| !s["local_vips"].as_array().unwrap().is_empty()))),
        "the oxswan client got no virtual IP\n{}\n--- gateway\n{}",
        std::fs::read_to_string(lan.dir.join("c6.log")).unwrap_or_default(),
        lan.log("gw")
    );
    let st = lan.status("c6");
    let vip = st["ike_sas"][0]["local_vips"][0].as_str().unwrap().to_owned();
    let routes = sh(&format!("ip -n {c6} route")).stdout;
    let routes = String::from_utf8_lossy(&routes);
    assert!(routes.contains("0.0.0.0/1 dev oxswan0") && routes.contains("128.0.0.0/1 dev oxswan0"), "{routes}");
    assert!(routes.contains(&format!("{GW_IP} via 198.51.100.1")), "the way to the gateway is pinned: {routes}");
    assert!(routes.contains("default via 198.51.100.1"), "the default route is left alone: {routes}");
    assert!(ping(&lan, 6, &vip, "10.2.0.1"), "oxswan client: ping from {vip}\n{}", lan.log("gw"));
    let resolv = std::fs::read_to_string(format!("/etc/netns/{c6}/resolv.conf")).unwrap();
    assert!(resolv.contains("10.10.0.53"), "the pool's DNS server applied: {resolv}");
    table.push(format!(
        "| {:<22} | {:<30} | {:<12} | {vip} |",
        "Linux (oxswan), password", "aes256gcm16-prfsha256-x25519", "aes256gcm16"
    ));
    eprintln!("profile × proposals × virtual IP:\n{}", table.join("\n"));

    // Removed: the daemon reloads and ends their SAs (three devices each: `unique = never` keeps a
    // user's several devices); connecting again is refused; the other user stays.
    let sas = lan.status("gw")["ike_sas"].as_array().unwrap().clone();
    let count = |who: &str| {
        sas.iter().filter(|sa| sa["eap_id"] == who || sa["remote_id"].as_str().is_some_and(|r| r.contains(who))).count()
    };
    assert_eq!((count(USER), count(CERT), count(OTHER)), (3, 3, 1), "{sas:?}");
    for name in [USER, CERT] {
        let o = Command::new(OX)
            .args(["--socket", gw_sock.to_str().unwrap(), "client", "remove", name, "--dir", &d])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "remove {name}: {out}{}", String::from_utf8_lossy(&o.stderr));
        assert!(out.contains("daemon: ") && out.contains("oxswan.toml: "), "the daemon reloaded: {out}");
        assert!(out.contains("IKE SA(s) deleted"), "the daemon ended {name}'s SAs: {out}");
        let deleted =
            out.lines().find(|l| l.starts_with(&format!("daemon: {name}"))).unwrap_or_else(|| panic!("{out}"));
        assert!(deleted.ends_with(": 3 IKE SA(s) deleted"), "{deleted}");
    }
    let theirs =
        |sa: &serde_json::Value| sa["eap_id"] == USER || sa["remote_id"].as_str().is_some_and(|r| r.contains(CERT));
    assert!(
        wait(10, || !lan.status("gw")["ike_sas"].as_array().unwrap().iter().any(theirs)),
        "their IKE SAs are gone: {}",
        lan.status("gw")
    );
    for i in [0, 1] {
        // Whatever charon still holds goes before it tries again.
        let _ = lan.swanctl(&format!("c{i}"), "--terminate --ike vpn --force --timeout 2");
        let again = lan.swanctl(&format!("c{i}"), "--initiate --child vpn --timeout 15");
        assert!(!again.status.success(), "{} connects after removal", clients[i].profile);
        let out = String::from_utf8_lossy(&again.stdout);
        // The user is unknown to EAP-MSCHAPv2 now (the connection stays for the other user); the
        // certificate is revoked.
        let why = if i == 0 {
            "EAP-MS-CHAPv2 failed with error ERROR_AUTHENTICATION_FAILURE"
        } else {
            "AUTHENTICATION_FAILED"
        };
        assert!(out.contains(why), "{}: refused by the gateway:\n{out}\n{}", clients[i].profile, lan.log("gw"));
    }
    let log = lan.log("gw");
    assert!(log.contains("revoked"), "the gateway says why it refuses {CERT}:\n{log}");
    let left = lan.status("gw")["ike_sas"].as_array().unwrap().clone();
    assert!(left.len() == 1 && left[0]["eap_id"] == OTHER, "{OTHER} stays: {left:?}");
    assert!(ping(&lan, 6, &vip, "10.2.0.1"), "{OTHER} still pings");

    // The oxswan client's routes go with its SA: the halves and the pin, not the default route.
    let down = lan.ox("c6", "down vpn");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(
        wait(5, || {
            let r = String::from_utf8_lossy(&sh(&format!("ip -n {c6} route")).stdout).into_owned();
            !r.contains("0.0.0.0/1") && !r.contains("128.0.0.0/1") && !r.contains(&format!("{GW_IP} via"))
        }),
        "routes left: {}",
        String::from_utf8_lossy(&sh(&format!("ip -n {c6} route")).stdout)
    );
    assert!(String::from_utf8_lossy(&sh(&format!("ip -n {c6} route")).stdout).contains("default via 198.51.100.1"));
}
