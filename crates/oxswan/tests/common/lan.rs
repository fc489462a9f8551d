//! A gateway, a NAT box and client hosts behind it, with oxswan daemons and strongSwan's charon in
//! them: the road-warrior tests' network (road_warriors.rs, radius.rs). Removed when `Lan` drops.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::{CHARON, CHARON_MSCHAPV2, NETNS, NFT, OX, ok, require, sh, spawn_charon, spawn_oxswan, stop_all};

pub const GW_IP: &str = "192.0.2.2";
pub const NAT_OUT: &str = "192.0.2.3";

pub fn ready() {
    require(&[&NETNS]);
    require(&[&CHARON, &NFT, &CHARON_MSCHAPV2]);
}

/// The gateway, the NAT box and `clients` client hosts behind it; removed on drop.
pub struct Lan {
    pub p: String,
    pub dir: PathBuf,
    pub daemons: Vec<Child>,
    pub charons: Vec<(String, Child)>,
    pub clients: usize,
}

impl Lan {
    pub fn new(p: &str, clients: usize) -> Self {
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

    /// Gives client `i` a second uplink, straight to the gateway without the NAT box: the client
    /// has [`second_ip`]`(i)` there and a default route through it that loses to the first one
    /// (metric 200) until the first uplink's address goes.
    pub fn second_uplink(&self, i: usize) {
        let (p, c, g) = (&self.p, self.ns(&format!("c{i}")), self.ns("gw"));
        ok(&format!("ip link add {p}u{i} netns {c} type veth peer name {p}g{i}u netns {g}"));
        ok(&format!(
            "ip -n {g} addr add 203.0.113.1/24 dev {p}g{i}u 2>/dev/null || true; ip -n {g} link set {p}g{i}u up && \
             ip -n {c} addr add {}/24 dev {p}u{i} && ip -n {c} link set {p}u{i} up && \
             ip -n {c} route add default via 203.0.113.1 metric 200",
            second_ip(i)
        ));
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.p)
    }

    pub fn remove_namespaces(&self) {
        let mut hosts = vec!["gw".to_owned(), "nat".to_owned()];
        hosts.extend((0..self.clients.max(8)).map(|i| format!("c{i}")));
        for h in hosts {
            let ns = self.ns(&h);
            let _ = sh(&format!("ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null"));
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }

    pub fn sock(&self, host: &str) -> PathBuf {
        self.dir.join(format!("{host}.sock"))
    }

    pub fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{host}.log"))).unwrap_or_default()
    }

    /// An oxswan daemon on `host` with this configuration.
    pub fn oxswan(&mut self, host: &str, config: &str) {
        let path = self.dir.join(format!("{host}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = self.dir.join(format!("{host}.log"));
        let env = [("RUST_LOG".to_owned(), "info".to_owned())];
        let child = spawn_oxswan(&self.ns(host), &self.sock(host), &path, &log, &env);
        self.daemons.push(child);
    }

    pub fn ox(&self, host: &str, args: &str) -> std::process::Output {
        sh(&format!("ip netns exec {} {OX} --socket {} {args}", self.ns(host), self.sock(host).display()))
    }

    pub fn status(&self, host: &str) -> serde_json::Value {
        let o = self.ox(host, "status --json");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// charon on `host` with `swanctl.conf` and `files` (relative to its swanctl directory), with
    /// the EAP plugins, kernel-libipsec for ESP, and its virtual IPs on its TUN device.
    pub fn charon(&mut self, host: &str, swanctl_conf: &str, files: &[(&str, Vec<u8>)]) {
        let conf = "charon {\n  load = random nonce openssl aes sha1 sha2 md4 md5 des hmac gcm chapoly curve25519 \
                    gmp x509 pem pkcs1 pkcs8 pubkey kdf constraints revocation attr eap-identity eap-md5 \
                    eap-mschapv2 eap-tls kernel-libipsec kernel-netlink socket-default vici updown\n  \
                    filelog {\n    stderr {\n      default = 1\n      ike = 2\n      cfg = 2\n    }\n  }\n  \
                    plugins { vici { socket = unix:///run/charon.vici } }\n}\n\
                    swanctl { socket = unix:///run/charon.vici }\n";
        let dir = self.dir.join(format!("charon-{host}"));
        let child = spawn_charon(&self.ns(host), &dir, swanctl_conf, conf, files);
        self.charons.push((host.to_owned(), child));
    }

    pub fn swanctl(&self, host: &str, args: &str) -> std::process::Output {
        let pid = self.charons.iter().find(|(h, _)| h == host).map(|(_, c)| c.id()).unwrap();
        sh(&format!("nsenter -t {pid} -m -n swanctl {args}"))
    }

    pub fn charon_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("charon-{host}/charon.log"))).unwrap_or_default()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        stop_all(&mut self.daemons, &mut self.charons);
        self.remove_namespaces();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn client_ip(i: usize) -> String {
    format!("198.51.100.{}", 10 + i)
}

/// An oxswan client on `c0` of a gateway at [`GW_IP`] (vpn.example, certified by `root`): user
/// alice with EAP-MSCHAPv2, a virtual IP, connection `home`; `daemon` goes into `[daemon]`.
pub fn oxswan_client_config(lan: &Lan, root: &[u8], daemon: &str) -> String {
    let d = lan.dir.join("c0-pki");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("root.der"), root).unwrap();
    format!(
        "[daemon]\ntun = \"oxswan0\"\n{daemon}\n\
         [connections.home]\nremote_addrs = [\"{GW_IP}\"]\nvips = [\"0.0.0.0\"]\nproposals = [\"aes256gcm16-prfsha256-x25519\"]\n\n\
         [connections.home.local]\nauth = \"eap-mschapv2\"\nid = \"alice@example.org\"\neap_id = \"alice\"\n\n\
         [connections.home.remote]\nauth = \"pubkey\"\nid = \"vpn.example\"\ncacerts = [\"{}/root.der\"]\n\n\
         [connections.home.children.net]\nlocal_ts = [\"dynamic\"]\nremote_ts = [\"10.2.0.0/24\"]\nesp_proposals = [\"aes256gcm16\"]\n\n\
         [[secrets.eap]]\nid = \"alice\"\nsecret = \"alice's password\"\n",
        d.display()
    )
}

/// Client `i`'s address on its second uplink ([`Lan::second_uplink`]).
pub fn second_ip(i: usize) -> String {
    format!("203.0.113.{}", 10 + i)
}

/// The gateway's certificate (vpn.example, serverAuth as Windows requires) and the CA.
pub struct Pki {
    pub root: Vec<u8>,
    pub intermediate: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// The proposals of the stock clients (issue 13), which the gateway must all accept.
pub const GW_IKE: &str = "\"aes256gcm16-prfsha256-x25519\", \"chacha20poly1305-prfsha256-x25519\", \
                      \"aes256gcm16-prfsha512-modp3072\", \"aes256-sha256-modp2048\", \"aes256-sha256-ecp256\", \
                      \"aes256-sha256-modp1024\", \"aes256-sha1-modp1024\"";
pub const GW_ESP: &str = "\"aes256gcm16\", \"chacha20poly1305\", \"aes256-sha256\", \"aes256-sha1\"";

/// The oxswan gateway: pools rw4 (`v4`) and rw6, EAP `method` with the users alice..hank.
pub fn gateway_config(lan: &Lan, pki: &Pki, v4: &str, method: &str) -> String {
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

pub const USERS: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "hank"];

/// A stock client as charon plays it.
#[derive(Clone, Copy, Debug)]
pub struct Stock {
    pub name: &'static str,
    pub ike: &'static str,
    pub esp: &'static str,
    /// Virtual IPs asked for.
    pub vips: &'static str,
    pub method: &'static str,
}

pub const WINDOWS: Stock = Stock {
    name: "Windows 10/11",
    ike: "aes256-sha1-modp1024",
    esp: "aes256-sha1",
    vips: "0.0.0.0",
    method: "eap-mschapv2",
};
pub const WINDOWS_SHA256: Stock = Stock { name: "Windows (SHA-256)", ike: "aes256-sha256-modp1024", ..WINDOWS };
pub const IOS: Stock = Stock {
    name: "iOS/macOS",
    ike: "aes256-sha256-modp2048",
    esp: "aes256-sha256",
    vips: "0.0.0.0",
    method: "eap-mschapv2",
};
pub const MACOS_ECP: Stock = Stock { name: "macOS (ECP256)", ike: "aes256-sha256-ecp256", ..IOS };
pub const ANDROID: Stock = Stock {
    name: "Android 11+",
    ike: "chacha20poly1305-prfsha256-x25519, aes256gcm16-prfsha512-modp3072, aes256-sha256-modp2048",
    esp: "chacha20poly1305, aes256gcm16, aes256-sha256",
    vips: "0.0.0.0, ::",
    method: "eap-mschapv2",
};
pub const ANDROID_MODP: Stock =
    Stock { name: "Android (MODP3072)", ike: "aes256gcm16-prfsha512-modp3072", esp: "aes256gcm16", ..ANDROID };

/// charon as the stock client `s`, user `user` with `password`, its IKE identity its address (as
/// Windows sends).
pub fn client_conf(lan: &Lan, i: usize, s: Stock, user: &str, password: &str) -> String {
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
pub fn connect(
    lan: &mut Lan,
    pki: &Pki,
    i: usize,
    s: Stock,
    user: &str,
    password: &str,
) -> Result<Vec<String>, String> {
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
pub fn charon_vips(lan: &Lan, host: &str) -> Vec<String> {
    let o = lan.swanctl(host, "--list-sas --raw");
    let text = String::from_utf8_lossy(&o.stdout);
    // --raw: `local-vips=[10.10.0.1 fd10::1]`.
    text.split("local-vips=[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

pub fn ping(lan: &Lan, i: usize, from: &str, to: &str) -> bool {
    let six = if to.contains(':') { "-6 " } else { "" };
    sh(&format!("ip netns exec {} ping {six}-c 3 -i 0.2 -W 2 -I {from} {to}", lan.ns(&format!("c{i}"))))
        .status
        .success()
}

/// The gateway's IKE SAs as (EAP identity, virtual IPs lent).
pub fn gateway_sas(lan: &Lan) -> Vec<(String, Vec<String>)> {
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

pub fn wait(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
