//! Road warriors on an oxswan gateway, and oxswan as a road warrior (issue 13): the stock clients
//! of Windows, macOS/iOS and Android emulated with strongSwan's charon (their proposals, identities
//! and EAP-MSCHAPv2 with virtual IPs), all behind one NAT box; a wrong password; an exhausted pool;
//! EAP-MD5; eight clients at once; oxswan as the client of a charon gateway with pools.
//!
//! Topology: the gateway `P-gw` (192.0.2.2, protected 10.2.0.1 and fd02::1 on lo) and the NAT box
//! `P-nat` (192.0.2.3 outside, masquerading with random ports) whose bridge joins the clients
//! `P-cN` (198.51.100.(10+N)). Needs root, strongSwan with libcharon-extauth-plugins, nftables
//! (`bash .ci/run` installs them); elsewhere each test says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../ike/tests/common/pki.rs"]
mod pki;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{OX, missing, ok, root_with_tools, sh};

const GW_IP: &str = "192.0.2.2";
const NAT_OUT: &str = "192.0.2.3";

fn ready() -> bool {
    if !root_with_tools() {
        return false;
    }
    let have = |c: &str| sh(&format!("command -v {c}")).status.success();
    if !Path::new("/usr/lib/ipsec/charon").exists() || !have("swanctl") || !have("nft") {
        return missing(
            "road-warrior tests need strongSwan (charon, swanctl) and nftables (bash .ci/run installs them)",
        );
    }
    if !Path::new("/usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so").exists() {
        return missing(
            "road-warrior tests need charon's eap-mschapv2 (libcharon-extauth-plugins; bash .ci/run installs it)",
        );
    }
    true
}

/// The gateway, the NAT box and `clients` client hosts behind it; removed on drop.
struct Lan {
    p: String,
    dir: PathBuf,
    daemons: Vec<Child>,
    charons: Vec<(String, Child)>,
    clients: usize,
}

impl Lan {
    fn new(p: &str, clients: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("oxswan-rw-{p}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lan = Lan { p: p.into(), dir, daemons: Vec::new(), charons: Vec::new(), clients };
        let (g, n) = (lan.ns("gw"), lan.ns("nat"));
        lan.remove_namespaces();
        for ns in [&g, &n] {
            ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        ok(&format!("ip link add {p}g0 netns {g} type veth peer name {p}n1 netns {n}"));
        ok(&format!(
            "ip -n {g} addr add {GW_IP}/24 dev {p}g0 && ip -n {g} link set {p}g0 up && \
             ip -n {g} addr add 10.2.0.1/32 dev lo && ip -n {g} addr add fd02::1/128 dev lo && \
             ip -n {n} addr add {NAT_OUT}/24 dev {p}n1 && ip -n {n} link set {p}n1 up && \
             ip -n {n} link add {p}br type bridge && ip -n {n} addr add 198.51.100.1/24 dev {p}br && \
             ip -n {n} link set {p}br up && ip netns exec {n} sysctl -qw net.ipv4.ip_forward=1"
        ));
        let nft = format!(
            "table ip nat {{\n chain post {{\n  type nat hook postrouting priority srcnat; oifname \"{p}n1\" masquerade random\n }}\n}}\n"
        );
        ok(&format!("printf '%s' '{nft}' | ip netns exec {n} nft -f -"));
        for i in 0..clients {
            let c = lan.ns(&format!("c{i}"));
            ok(&format!("ip netns add {c} && ip -n {c} link set lo up"));
            ok(&format!("ip link add {p}c{i} netns {c} type veth peer name {p}c{i}n netns {n}"));
            ok(&format!(
                "ip -n {n} link set {p}c{i}n master {p}br && ip -n {n} link set {p}c{i}n up && \
                 ip -n {c} addr add {}/24 dev {p}c{i} && ip -n {c} link set {p}c{i} up && \
                 ip -n {c} route add default via 198.51.100.1",
                client_ip(i)
            ));
        }
        lan
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.p)
    }

    fn remove_namespaces(&self) {
        let mut hosts = vec!["gw".to_owned(), "nat".to_owned()];
        hosts.extend((0..self.clients.max(8)).map(|i| format!("c{i}")));
        for h in hosts {
            let ns = self.ns(&h);
            let _ = sh(&format!("ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null"));
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }

    fn sock(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{host}.sock"))
    }

    fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{host}.log"))).unwrap_or_default()
    }

    /// An oxswan daemon on `host` with this configuration.
    fn oxswan(&mut self, host: &str, config: &str) {
        let path = self.dir.join(format!("{host}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("{host}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host), OX, "--socket"])
            .arg(self.sock(host))
            .args(["daemon", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemons.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.sock(host).exists() {
            assert!(Instant::now() < deadline, "{host} daemon did not start: {}", self.log(host));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ox(&self, host: &str, args: &str) -> std::process::Output {
        sh(&format!("ip netns exec {} {OX} --socket {} {args}", self.ns(host), self.sock(host).display()))
    }

    fn status(&self, host: &str) -> serde_json::Value {
        let o = self.ox(host, "status --json");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// charon on `host` with `swanctl.conf` and `files` (relative to its swanctl directory), with
    /// the EAP plugins, kernel-libipsec for ESP, and its virtual IPs on its TUN device.
    fn charon(&mut self, host: &str, swanctl_conf: &str, files: &[(&str, Vec<u8>)]) {
        let dir = self.dir.join(format!("charon-{host}"));
        for d in ["x509", "x509ca", "private", "conf.d"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for (path, data) in files {
            std::fs::write(dir.join(path), data).unwrap();
        }
        std::fs::write(dir.join("swanctl.conf"), swanctl_conf).unwrap();
        let conf = "charon {\n  load = random nonce openssl aes sha1 sha2 md4 md5 des hmac gcm chapoly curve25519 \
                    gmp x509 pem pkcs1 pkcs8 pubkey kdf constraints revocation attr eap-identity eap-md5 \
                    eap-mschapv2 eap-tls kernel-libipsec kernel-netlink socket-default vici updown\n  \
                    filelog {\n    stderr {\n      default = 1\n      ike = 2\n      cfg = 2\n    }\n  }\n  \
                    plugins { vici { socket = unix:///run/charon.vici } }\n}\n\
                    swanctl { socket = unix:///run/charon.vici }\n";
        std::fs::write(dir.join("strongswan.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.join("charon.log")).unwrap();
        let d = dir.display();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host), "unshare", "-m", "sh", "-c"])
            .arg(format!(
                "mount --make-rprivate / && mount -t tmpfs tmpfs /run && mount --bind '{d}' /etc/swanctl && \
                 STRONGSWAN_CONF='{d}/strongswan.conf' exec /usr/lib/ipsec/charon"
            ))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.charons.push((host.to_owned(), child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sh(&format!("nsenter -t {pid} -m -n test -S /run/charon.vici")).status.success() {
            assert!(Instant::now() < deadline, "charon on {host} did not start: {}", self.charon_log(host));
            std::thread::sleep(Duration::from_millis(50));
        }
        let o = self.swanctl(host, "--load-all");
        assert!(
            o.status.success(),
            "swanctl --load-all: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn swanctl(&self, host: &str, args: &str) -> std::process::Output {
        let pid = self.charons.iter().find(|(h, _)| h == host).map(|(_, c)| c.id()).unwrap();
        sh(&format!("nsenter -t {pid} -m -n swanctl {args}"))
    }

    fn charon_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("charon-{host}/charon.log"))).unwrap_or_default()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (_, c) in &mut self.charons {
            let _ = sh(&format!("kill -TERM {}", c.id()));
        }
        for d in &mut self.daemons {
            let _ = sh(&format!("kill -TERM {}", d.id()));
        }
        for d in &mut self.daemons {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && d.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
        }
        for (_, c) in &mut self.charons {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove_namespaces();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client_ip(i: usize) -> String {
    format!("198.51.100.{}", 10 + i)
}

/// The gateway's certificate (vpn.example, serverAuth as Windows requires) and the CA.
struct Pki {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn pki() -> Pki {
    let ca = pki::Ca::new("road warriors", pki::Alg::P256);
    let (cert, key) = ca.issue_for(
        pki::Alg::P256,
        "vpn.example",
        &["vpn.example"],
        (2025, 2030),
        &[rcgen::ExtendedKeyUsagePurpose::ServerAuth],
    );
    Pki { root: ca.root_der.clone(), intermediate: ca.intermediate_der.clone(), cert, key }
}

/// The proposals of the stock clients (issue 13), which the gateway must all accept.
const GW_IKE: &str = "\"aes256gcm16-prfsha256-x25519\", \"chacha20poly1305-prfsha256-x25519\", \
                      \"aes256gcm16-prfsha512-modp3072\", \"aes256-sha256-modp2048\", \"aes256-sha256-ecp256\", \
                      \"aes256-sha256-modp1024\", \"aes256-sha1-modp1024\"";
const GW_ESP: &str = "\"aes256gcm16\", \"chacha20poly1305\", \"aes256-sha256\", \"aes256-sha1\"";

/// The oxswan gateway: pools rw4 (`v4`) and rw6, EAP `method` with the users alice..hank.
fn gateway_config(lan: &Lan, pki: &Pki, v4: &str, method: &str) -> String {
    let d = lan.dir.join("gw-pki");
    std::fs::create_dir_all(&d).unwrap();
    for (f, data) in [("cert.der", &pki.cert), ("int.der", &pki.intermediate), ("key.der", &pki.key)] {
        std::fs::write(d.join(f), data).unwrap();
    }
    let d = d.display();
    let mut c = format!(
        "[daemon]\ntun = \"oxswan0\"\n\n\
         [pools.rw4]\naddrs = \"{v4}\"\ndns = [\"10.10.0.53\"]\n\n\
         [pools.rw6]\naddrs = \"fd10::/120\"\ndns = [\"fd10::53\"]\n\n\
         [connections.rw]\nlocal_addrs = [\"{GW_IP}\"]\npools = [\"rw4\", \"rw6\"]\nproposals = [{GW_IKE}]\n\n\
         [connections.rw.local]\nauth = \"pubkey\"\nid = \"vpn.example\"\ncerts = [\"{d}/cert.der\", \"{d}/int.der\"]\n\
         key = \"{d}/key.der\"\n\n\
         [connections.rw.remote]\nauth = \"{method}\"\neap_id = \"%any\"\n\n\
         [connections.rw.children.net]\nlocal_ts = [\"10.2.0.0/24\", \"fd02::/64\"]\nremote_ts = [\"dynamic\"]\n\
         esp_proposals = [{GW_ESP}]\n\n"
    );
    for u in USERS {
        c.push_str(&format!("[[secrets.eap]]\nid = \"{u}\"\nsecret = \"{u}'s password\"\n\n"));
    }
    c
}

const USERS: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "hank"];

/// A stock client as charon plays it.
#[derive(Clone, Copy, Debug)]
struct Stock {
    name: &'static str,
    ike: &'static str,
    esp: &'static str,
    /// Virtual IPs asked for.
    vips: &'static str,
    method: &'static str,
}

const WINDOWS: Stock = Stock {
    name: "Windows 10/11",
    ike: "aes256-sha1-modp1024",
    esp: "aes256-sha1",
    vips: "0.0.0.0",
    method: "eap-mschapv2",
};
const WINDOWS_SHA256: Stock = Stock { name: "Windows (SHA-256)", ike: "aes256-sha256-modp1024", ..WINDOWS };
const IOS: Stock = Stock {
    name: "iOS/macOS",
    ike: "aes256-sha256-modp2048",
    esp: "aes256-sha256",
    vips: "0.0.0.0",
    method: "eap-mschapv2",
};
const MACOS_ECP: Stock = Stock { name: "macOS (ECP256)", ike: "aes256-sha256-ecp256", ..IOS };
const ANDROID: Stock = Stock {
    name: "Android 11+",
    ike: "chacha20poly1305-prfsha256-x25519, aes256gcm16-prfsha512-modp3072, aes256-sha256-modp2048",
    esp: "chacha20poly1305, aes256gcm16, aes256-sha256",
    vips: "0.0.0.0, ::",
    method: "eap-mschapv2",
};
const ANDROID_MODP: Stock =
    Stock { name: "Android (MODP3072)", ike: "aes256gcm16-prfsha512-modp3072", esp: "aes256gcm16", ..ANDROID };

/// charon as the stock client `s`, user `user` with `password`, its IKE identity its address (as
/// Windows sends).
fn client_conf(lan: &Lan, i: usize, s: Stock, user: &str, password: &str) -> String {
    let _ = lan;
    format!(
        "connections {{\n rw {{\n  version = 2\n  remote_addrs = {GW_IP}\n  vips = {}\n  proposals = {}\n  \
         local {{\n   auth = {}\n   id = {}\n   eap_id = {user}\n  }}\n  remote {{\n   auth = pubkey\n   id = vpn.example\n  }}\n  \
         children {{\n   net {{\n    remote_ts = 10.2.0.0/24, fd02::/64\n    esp_proposals = {}\n   }}\n  }}\n }}\n}}\n\
         secrets {{\n eap-1 {{\n  id = {user}\n  secret = \"{password}\"\n }}\n}}\n",
        s.vips,
        s.ike,
        s.method,
        client_ip(i),
        s.esp
    )
}

/// Starts charon on client `i` as `s` and initiates; the virtual IPs it got, or the reason.
fn connect(lan: &mut Lan, pki: &Pki, i: usize, s: Stock, user: &str, password: &str) -> Result<Vec<String>, String> {
    let host = format!("c{i}");
    let conf = client_conf(lan, i, s, user, password);
    lan.charon(&host, &conf, &[("x509ca/root.der", pki.root.clone())]);
    let up = lan.swanctl(&host, "--initiate --child net --timeout 20");
    if !up.status.success() {
        return Err(format!("{}{}", String::from_utf8_lossy(&up.stdout), String::from_utf8_lossy(&up.stderr)));
    }
    Ok(charon_vips(lan, &host))
}

/// The virtual IPs charon lists for its IKE SA.
fn charon_vips(lan: &Lan, host: &str) -> Vec<String> {
    let o = lan.swanctl(host, "--list-sas --raw");
    let text = String::from_utf8_lossy(&o.stdout);
    // --raw: `local-vips=[10.10.0.1 fd10::1]`.
    text.split("local-vips=[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn ping(lan: &Lan, i: usize, from: &str, to: &str) -> bool {
    let six = if to.contains(':') { "-6 " } else { "" };
    sh(&format!("ip netns exec {} ping {six}-c 3 -i 0.2 -W 2 -I {from} {to}", lan.ns(&format!("c{i}"))))
        .status
        .success()
}

/// The gateway's IKE SAs as (EAP identity, virtual IPs lent).
fn gateway_sas(lan: &Lan) -> Vec<(String, Vec<String>)> {
    let st = lan.status("gw");
    st["ike_sas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sa| {
            let eap = sa["eap_id"].as_str().unwrap_or("").to_owned();
            let vips = sa["remote_vips"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
            (eap, vips)
        })
        .collect()
}

fn wait(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn the_stock_clients_through_a_nat_box() {
    if !ready() {
        return;
    }
    let stocks = [WINDOWS, WINDOWS_SHA256, IOS, MACOS_ECP, ANDROID, ANDROID_MODP];
    let mut lan = Lan::new("rws", stocks.len());
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    let mut table = Vec::new();
    for (i, s) in stocks.iter().enumerate() {
        let user = USERS[i];
        let vips = connect(&mut lan, &pki, i, *s, user, &format!("{user}'s password")).unwrap_or_else(|e| {
            panic!("{}: {e}\n--- gateway\n{}\n--- charon\n{}", s.name, lan.log("gw"), lan.charon_log(&format!("c{i}")))
        });
        let v4 = vips
            .iter()
            .find(|v| v.contains('.'))
            .cloned()
            .unwrap_or_else(|| panic!("{}: no IPv4 virtual IP: {vips:?}", s.name));
        assert!(v4.starts_with("10.10.0."), "{}: {v4}", s.name);
        assert!(ping(&lan, i, &v4, "10.2.0.1"), "{}: ping from {v4}\n{}", s.name, lan.log("gw"));
        if s.vips.contains("::") {
            let v6 = vips
                .iter()
                .find(|v| v.contains(':'))
                .cloned()
                .unwrap_or_else(|| panic!("{}: no IPv6 virtual IP: {vips:?}", s.name));
            assert!(v6.starts_with("fd10::"), "{}: {v6}", s.name);
            assert!(ping(&lan, i, &v6, "fd02::1"), "{}: ping6 from {v6}\n{}", s.name, lan.log("gw"));
        }
        // The DNS servers reached charon (it has no resolver plugin and says it cannot apply them).
        let log = lan.charon_log(&format!("c{i}"));
        assert!(log.contains("INTERNAL_IP4_DNS"), "{}: no DNS attribute in the reply\n{log}", s.name);
        table.push(format!("| {:<20} | {:<58} | EAP-MSCHAPv2 | {} |", s.name, s.ike, vips.join(", ")));
    }
    let sas = gateway_sas(&lan);
    assert_eq!(sas.len(), stocks.len(), "{sas:?}");
    for (i, s) in stocks.iter().enumerate() {
        assert!(sas.iter().any(|(eap, vips)| eap == USERS[i] && !vips.is_empty()), "{}: {sas:?}", s.name);
    }
    let all: Vec<&String> = sas.iter().flat_map(|(_, v)| v).collect();
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(all.len(), distinct.len(), "every client its own addresses: {sas:?}");
    eprintln!("client emulation × method × virtual IPs:\n{}", table.join("\n"));
}

#[test]
fn a_wrong_password_and_an_exhausted_pool_are_refused_and_leave_nothing() {
    if !ready() {
        return;
    }
    let mut lan = Lan::new("rwf", 3);
    let pki = pki();
    // One IPv4 address in the pool.
    let gw = gateway_config(&lan, &pki, "10.10.0.7-10.10.0.7", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    let vips = connect(&mut lan, &pki, 0, WINDOWS, "alice", "alice's password").unwrap();
    assert_eq!(vips, vec!["10.10.0.7"]);

    // A wrong password: charon gives up; the gateway logs which user failed and keeps nothing.
    let refused = connect(&mut lan, &pki, 1, WINDOWS, "bob", "not bob's password");
    assert!(refused.is_err(), "{refused:?}");
    assert!(wait(5, || lan.log("gw").contains("EAP for bob")), "the gateway names the user:\n{}", lan.log("gw"));
    // The pool is exhausted: INTERNAL_ADDRESS_FAILURE.
    let exhausted = connect(&mut lan, &pki, 2, WINDOWS, "carol", "carol's password");
    assert!(exhausted.is_err(), "{exhausted:?}");
    assert!(lan.charon_log("c2").contains("N(INT_ADDR_FAIL)"), "{}", lan.charon_log("c2"));
    assert!(lan.log("gw").contains("no virtual IP for carol"), "{}", lan.log("gw"));
    assert!(
        wait(40, || gateway_sas(&lan).len() == 1),
        "only alice's IKE SA stays: {:?}\n{}",
        gateway_sas(&lan),
        lan.log("gw")
    );
    assert_eq!(gateway_sas(&lan), vec![("alice".to_owned(), vec!["10.10.0.7".to_owned()])]);
}

#[test]
fn eap_md5() {
    if !ready() {
        return;
    }
    let mut lan = Lan::new("rwm", 1);
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-md5");
    lan.oxswan("gw", &gw);
    let s = Stock { name: "charon EAP-MD5", method: "eap-md5", ..IOS };
    let vips = connect(&mut lan, &pki, 0, s, "alice", "alice's password")
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", lan.log("gw"), lan.charon_log("c0")));
    assert_eq!(vips, vec!["10.10.0.1"]);
    assert!(ping(&lan, 0, "10.10.0.1", "10.2.0.1"));
}

#[test]
fn eight_clients_at_once() {
    if !ready() {
        return;
    }
    let n = 8;
    let mut lan = Lan::new("rw8", n);
    let pki = pki();
    let gw = gateway_config(&lan, &pki, "10.10.0.0/24", "eap-mschapv2");
    lan.oxswan("gw", &gw);
    for (i, user) in USERS.iter().enumerate().take(n) {
        let conf = client_conf(&lan, i, IOS, user, &format!("{user}'s password"));
        lan.charon(&format!("c{i}"), &conf, &[("x509ca/root.der", pki.root.clone())]);
    }
    // All initiate at once.
    let start = Instant::now();
    let pids: Vec<u32> = lan.charons.iter().map(|(_, c)| c.id()).collect();
    let initiations: Vec<_> = pids
        .iter()
        .map(|pid| {
            Command::new("sh")
                .args(["-c", &format!("nsenter -t {pid} -m -n swanctl --initiate --child net --timeout 30")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in initiations.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "client {i}: {}\n{}", String::from_utf8_lossy(&o.stdout), lan.log("gw"));
    }
    let elapsed = start.elapsed();
    for i in 0..n {
        let vips = charon_vips(&lan, &format!("c{i}"));
        assert_eq!(vips.len(), 1, "client {i}: {vips:?}");
        assert!(ping(&lan, i, &vips[0], "10.2.0.1"), "client {i} pings from {}", vips[0]);
    }
    assert_eq!(gateway_sas(&lan).len(), n);
    eprintln!(
        "{n} clients up (IKE_SA_INIT to CHILD SA, EAP-MSCHAPv2, through one NAT) in {:.2} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn oxswan_as_the_client_of_a_charon_gateway_with_pools() {
    if !ready() {
        return;
    }
    let mut lan = Lan::new("rwo", 1);
    let pki = pki();
    // charon is the gateway, in the gateway's host.
    let conf = format!(
        "connections {{\n rw {{\n  version = 2\n  local_addrs = {GW_IP}\n  pools = rw4\n  proposals = aes256gcm16-prfsha256-x25519\n  \
         local {{\n   auth = pubkey\n   certs = cert.der\n   id = vpn.example\n  }}\n  \
         remote {{\n   auth = eap-mschapv2\n   eap_id = %any\n  }}\n  \
         children {{\n   net {{\n    local_ts = 10.2.0.0/24\n    esp_proposals = aes256gcm16\n   }}\n  }}\n }}\n}}\n\
         pools {{\n rw4 {{\n  addrs = 10.20.0.0/24\n  dns = 10.20.0.53\n }}\n}}\n\
         secrets {{\n eap-alice {{\n  id = alice\n  secret = \"alice's password\"\n }}\n}}\n"
    );
    lan.charon(
        "gw",
        &conf,
        &[
            ("x509/cert.der", pki.cert.clone()),
            ("x509/int.der", pki.intermediate.clone()),
            ("x509ca/root.der", pki.root.clone()),
            ("private/key.der", pki.key.clone()),
        ],
    );
    // The client's resolver: `ip netns exec` binds /etc/netns/NS/resolv.conf over /etc/resolv.conf.
    let etc = PathBuf::from(format!("/etc/netns/{}", lan.ns("c0")));
    std::fs::create_dir_all(&etc).unwrap();
    let original = "nameserver 198.51.100.53\n";
    std::fs::write(etc.join("resolv.conf"), original).unwrap();
    let d = lan.dir.join("c0-pki");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("root.der"), &pki.root).unwrap();
    let client = format!(
        "[daemon]\ntun = \"oxswan0\"\ndns = \"resolv.conf\"\n\n\
         [connections.home]\nremote_addrs = [\"{GW_IP}\"]\nvips = [\"0.0.0.0\"]\nproposals = [\"aes256gcm16-prfsha256-x25519\"]\n\n\
         [connections.home.local]\nauth = \"eap-mschapv2\"\nid = \"alice@example.org\"\neap_id = \"alice\"\n\n\
         [connections.home.remote]\nauth = \"pubkey\"\nid = \"vpn.example\"\ncacerts = [\"{}/root.der\"]\n\n\
         [connections.home.children.net]\nlocal_ts = [\"dynamic\"]\nremote_ts = [\"10.2.0.0/24\"]\nesp_proposals = [\"aes256gcm16\"]\n\n\
         [[secrets.eap]]\nid = \"alice\"\nsecret = \"alice's password\"\n",
        d.display()
    );
    lan.oxswan("c0", &client);
    let up = lan.ox("c0", "up home --timeout 20");
    assert!(
        up.status.success(),
        "{}\n--- oxswan\n{}\n--- charon\n{}",
        String::from_utf8_lossy(&up.stderr),
        lan.log("c0"),
        lan.charon_log("gw")
    );
    let st = lan.status("c0");
    let sa = &st["ike_sas"][0];
    assert_eq!(sa["local_vips"], serde_json::json!(["10.20.0.1"]), "{st}");
    assert_eq!(sa["dns"], serde_json::json!(["10.20.0.53"]), "{st}");
    let addrs = ok(&format!("ip -n {} addr show oxswan0", lan.ns("c0")));
    assert!(addrs.contains("10.20.0.1/32"), "the virtual IP is on the TUN device: {addrs}");
    assert!(ping(&lan, 0, "10.20.0.1", "10.2.0.1"), "{}", lan.log("c0"));
    let resolv = std::fs::read_to_string(etc.join("resolv.conf")).unwrap();
    assert!(resolv.lines().any(|l| l == "nameserver 10.20.0.53"), "{resolv}");
    assert!(resolv.find("10.20.0.53") < resolv.find("198.51.100.53"), "ours first: {resolv}");
    let text = String::from_utf8_lossy(&lan.ox("c0", "status").stdout).into_owned();
    assert!(text.contains("local virtual IPs 10.20.0.1") && text.contains("DNS 10.20.0.53"), "{text}");

    let down = lan.ox("c0", "down home");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(wait(5, || std::fs::read_to_string(etc.join("resolv.conf")).unwrap() == original), "resolv.conf restored");
    let addrs = ok(&format!("ip -n {} addr show oxswan0", lan.ns("c0")));
    assert!(!addrs.contains("10.20.0.1"), "the virtual IP is gone: {addrs}");
}
