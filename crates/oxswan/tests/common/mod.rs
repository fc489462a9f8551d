//! What the end-to-end and interop tests share: test hosts in network namespaces, oxswan daemons
//! and strongSwan's charon in them. Everything a test creates is removed when its `Hosts` drops.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

pub mod etcd;
pub mod lan;
pub mod prereq;
pub mod scrape;

pub use prereq::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const OX: &str = env!("CARGO_BIN_EXE_oxswan");

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().unwrap()
}

pub fn ok(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(o.status.success(), "{cmd}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two hosts joined by a veth pair, with oxswan daemons; everything is removed on drop.
pub struct Hosts {
    pub p: String,
    pub dir: PathBuf,
    pub daemons: Vec<Child>,
    /// strongSwan's charon per side (the child is charon itself: `ip netns exec`, `unshare` and `sh`
    /// each exec the next).
    pub charons: Vec<(String, Child)>,
    /// Whether left sits behind a NAT box.
    pub nat: bool,
    /// Extra settings for charon's section of strongswan.conf (e.g. `rsa_pss = yes`).
    pub charon_extra: String,
    /// Let charon log key material (its `ike` log level 4), for decrypting captures.
    pub charon_logs_keys: bool,
    /// Let charon's data plane log each ESP packet's SPI and sequence number and why it drops one
    /// (its `esp` log level 2), to place a lost packet.
    pub charon_logs_esp: bool,
    /// Environment of the oxswan daemons started from then on.
    pub daemon_env: Vec<(String, String)>,
    /// The root file system of the charon to run instead of the host's (strongSwan 6, made by the
    /// kit's strongswan6.sh: [`STRONGSWAN6`]).
    pub charon_root: Option<PathBuf>,
}

/// Where `.ci/run` puts strongSwan 6 (the interop kit's `strongswan6.sh`, Debian 13's packages).
pub const STRONGSWAN6: &str = "/opt/strongswan6";

impl Hosts {
    fn empty(p: &str, nat: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("oxswan-e2e-{p}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Hosts {
            p: p.into(),
            dir,
            daemons: Vec::new(),
            charons: Vec::new(),
            nat,
            charon_extra: String::new(),
            charon_logs_keys: false,
            charon_logs_esp: false,
            daemon_env: Vec::new(),
            charon_root: None,
        }
    }

    pub fn new(p: &str) -> Self {
        let h = Self::empty(p, false);
        let (l, r) = (h.ns("left"), h.ns("right"));
        for ns in [&l, &r, &h.ns("nat")] {
            let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
        }
        for ns in [&l, &r] {
            let _ = sh(&format!("ip netns del {ns}"));
            ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        ok(&format!("ip link add {p}l0 netns {l} type veth peer name {p}r0 netns {r}"));
        ok(&format!(
            "ip -n {l} addr add 192.0.2.1/24 dev {p}l0 && ip -n {l} link set {p}l0 up && ip -n {l} addr add 10.1.0.1/32 dev lo"
        ));
        ok(&format!(
            "ip -n {r} addr add 192.0.2.2/24 dev {p}r0 && ip -n {r} link set {p}r0 up && ip -n {r} addr add 10.2.0.1/32 dev lo"
        ));
        h
    }

    /// Left behind a NAT box (nftables masquerade with random ports): left 198.51.100.2 routes through
    /// the box (198.51.100.1 inside, 192.0.2.3 outside) to right 192.0.2.2, which sees 192.0.2.3.
    pub fn with_nat(p: &str) -> Self {
        let h = Self::empty(p, true);
        let (l, n, r) = (h.ns("left"), h.ns("nat"), h.ns("right"));
        for ns in [&l, &n, &r] {
            let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
            ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        ok(&format!("ip link add {p}l0 netns {l} type veth peer name {p}n0 netns {n}"));
        ok(&format!("ip link add {p}n1 netns {n} type veth peer name {p}r0 netns {r}"));
        ok(&format!(
            "ip -n {l} addr add 198.51.100.2/24 dev {p}l0 && ip -n {l} link set {p}l0 up && \
             ip -n {l} route add default via 198.51.100.1 && ip -n {l} addr add 10.1.0.1/32 dev lo && \
             ip -n {n} addr add 198.51.100.1/24 dev {p}n0 && ip -n {n} addr add 192.0.2.3/24 dev {p}n1 && \
             ip -n {n} link set {p}n0 up && ip -n {n} link set {p}n1 up && \
             ip -n {r} addr add 192.0.2.2/24 dev {p}r0 && ip -n {r} link set {p}r0 up && \
             ip -n {r} addr add 10.2.0.1/32 dev lo && ip netns exec {n} sysctl -qw net.ipv4.ip_forward=1"
        ));
        let nft = format!(
            "table ip nat {{\n chain post {{\n  type nat hook postrouting priority srcnat; oifname \"{p}n1\" masquerade random\n }}\n}}\n"
        );
        ok(&format!("printf '%s' '{nft}' | ip netns exec {n} nft -f -"));
        h
    }

    /// Left and right on either side of a router whose link to the right carries at most
    /// `link_mtu` octets (left also has fd01::1 and right fd02::1 on lo, for IPv6 inside), and which drops IP fragments (a path that blackholes them): left
    /// 198.51.100.2 routes through the router (198.51.100.1 on its side, 192.0.2.3 on the
    /// right's) to right 192.0.2.2, whose own link has the small MTU too, so the right's kernel
    /// knows it from its route while the left's learns it only from the router's ICMP errors.
    pub fn with_router(p: &str, link_mtu: u32) -> Self {
        let h = Self::empty(p, false);
        let (l, m, r) = (h.ns("left"), h.ns("mid"), h.ns("right"));
        for ns in [&l, &m, &r] {
            let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
            ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        ok(&format!("ip link add {p}l0 netns {l} type veth peer name {p}m0 netns {m}"));
        ok(&format!("ip link add {p}m1 netns {m} type veth peer name {p}r0 netns {r}"));
        ok(&format!(
            "ip -n {l} addr add 198.51.100.2/24 dev {p}l0 && ip -n {l} link set {p}l0 up && \
             ip -n {l} route add default via 198.51.100.1 && ip -n {l} addr add 10.1.0.1/32 dev lo && \
             ip -n {l} addr add fd01::1/128 dev lo && ip -n {r} addr add fd02::1/128 dev lo && \
             ip -n {m} addr add 198.51.100.1/24 dev {p}m0 && ip -n {m} addr add 192.0.2.3/24 dev {p}m1 && \
             ip -n {m} link set {p}m0 up && ip -n {m} link set {p}m1 mtu {link_mtu} up && \
             ip -n {r} addr add 192.0.2.2/24 dev {p}r0 && ip -n {r} link set {p}r0 mtu {link_mtu} up && \
             ip -n {r} route add default via 192.0.2.3 && ip -n {r} addr add 10.2.0.1/32 dev lo && \
             ip netns exec {m} sysctl -qw net.ipv4.ip_forward=1"
        ));
        // Before defragmentation (priority -400), so that no reassembly rescues a fragment.
        let nft = "table ip blackhole {\n chain pre {\n  type filter hook prerouting priority -500; \
                   ip frag-off & 0x3fff != 0 counter drop\n }\n}\n";
        ok(&format!("printf '%b' '{nft}' | ip netns exec {m} nft -f -"));
        h
    }

    /// Left's own address.
    pub fn left_ip(&self) -> &'static str {
        if self.nat { "198.51.100.2" } else { "192.0.2.1" }
    }

    /// Right's address.
    pub fn right_ip(&self) -> &'static str {
        "192.0.2.2"
    }

    /// Starts a daemon with this configuration text.
    pub fn start_text(&mut self, side: &str, text: &str) {
        let config = self.dir.join(format!("{side}.toml"));
        std::fs::write(&config, text).unwrap();
        self.start_with(side, &config);
    }

    /// Starts charon on `side` with `swanctl.conf` and `files` (paths relative to its swanctl
    /// directory: x509/, x509ca/, private/), a private /run and its own strongswan.conf whose
    /// kernel-libipsec plugin carries ESP through a TUN device; loads the configuration.
    pub fn start_charon(&mut self, side: &str, swanctl_conf: &str, files: &[(&str, Vec<u8>)]) {
        // Level 4 is where charon logs private data such as key material. One setting per line: a
        // value runs to the end of its line.
        let ike_level = if self.charon_logs_keys { 4 } else { 2 };
        let esp_level = if self.charon_logs_esp { 2 } else { 1 };
        let conf = format!(
            "charon {{\n  {}\n  load = random nonce openssl aes sha1 sha2 hmac gcm chapoly curve25519 x509 pem \
             pkcs1 pkcs8 pubkey kdf constraints revocation kernel-libipsec kernel-netlink socket-default vici \
             updown\n  filelog {{\n    stderr {{\n      default = 1\n      ike = {ike_level}\n      esp = {esp_level}\n      cfg = 2\n    }}\n  }}\n  \
             plugins {{ vici {{ socket = unix:///run/charon.vici }} }}\n}}\n\
             swanctl {{ socket = unix:///run/charon.vici }}\n",
            self.charon_extra
        );
        let dir = self.dir.join(format!("charon-{side}"));
        let child = spawn_charon_in(self.charon_root.as_deref(), &self.ns(side), &dir, swanctl_conf, &conf, files);
        self.charons.push((side.to_owned(), child));
    }

    /// swanctl against the charon on `side`.
    pub fn swanctl(&self, side: &str, args: &str) -> Output {
        let pid = self.charons.iter().find(|(s, _)| s == side).map(|(_, c)| c.id()).unwrap();
        // In charon's own root, when it has one (`-r`: the target's root directory).
        let root = if self.charon_root.is_some() { "-r" } else { "" };
        sh(&format!("nsenter -t {pid} -m -n {root} swanctl {args}"))
    }

    /// What charon on `side` logged.
    pub fn charon_log(&self, side: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("charon-{side}/charon.log"))).unwrap_or_default()
    }

    /// Whether charon on `side` has an IKE SA.
    pub fn charon_has_sa(&self, side: &str) -> bool {
        let o = self.swanctl(side, "--list-sas");
        String::from_utf8_lossy(&o.stdout).contains("ESTABLISHED")
    }

    pub fn ns(&self, side: &str) -> String {
        format!("{}-{side}", self.p)
    }

    pub fn sock(&self, side: &str) -> PathBuf {
        self.dir.join(format!("{side}.sock"))
    }

    pub fn start(&mut self, side: &str) {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{side}.toml"));
        self.start_with(side, &config);
    }

    /// Starts a daemon with the example configuration changed by `edit`.
    pub fn start_edited(&mut self, side: &str, edit: impl Fn(String) -> String) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{side}.toml"));
        let config = self.dir.join(format!("{side}.toml"));
        std::fs::write(&config, edit(std::fs::read_to_string(example).unwrap())).unwrap();
        self.start_with(side, &config);
    }

    pub fn start_with(&mut self, side: &str, config: &Path) {
        let log = self.dir.join(format!("{side}.log"));
        let child = spawn_oxswan(&self.ns(side), &self.sock(side), config, &log, &self.daemon_env);
        self.daemons.push(child);
    }

    pub fn log(&self, side: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{side}.log"))).unwrap_or_default()
    }

    pub fn ox(&self, side: &str, args: &str) -> Output {
        sh(&format!("ip netns exec {} {OX} --socket {} {args}", self.ns(side), self.sock(side).display()))
    }

    pub fn status(&self, side: &str) -> serde_json::Value {
        let o = self.ox(side, "status --json");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// iperf3 TCP for `secs` from left's 10.1.0.1 to right's 10.2.0.1; Gbit/s received (0 on failure).
    pub fn iperf(&self, secs: u32) -> f64 {
        let out = self.iperf3(&format!("-t {secs}"), secs + 20);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|j| j["end"]["sum_received"]["bits_per_second"].as_f64())
            .unwrap_or(0.0)
            / 1e9
    }

    /// iperf3's client with `args` (and `-J`) from left's 10.1.0.1 to a one-test server on right's
    /// 10.2.0.1, given `timeout` seconds.
    fn iperf3(&self, args: &str, timeout: u32) -> Output {
        let mut server = Command::new("ip")
            .args(["netns", "exec", &self.ns("right"), "iperf3", "-s", "-1", "-B", "10.2.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let out = sh(&format!(
            "ip netns exec {} timeout {timeout} iperf3 -c 10.2.0.1 -B 10.1.0.1 {args} -J",
            self.ns("left")
        ));
        let _ = server.kill();
        let _ = server.wait();
        out
    }

    /// iperf3 of `bytes` from left's 10.1.0.1 to right's 10.2.0.1 within 30 s.
    pub fn transfer(&self, bytes: u64) -> Transfer {
        let out = self.iperf3(&format!("-n {bytes}"), 30);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let end = &j["end"];
        Transfer {
            sent: if out.status.success() { end["sum_sent"]["bytes"].as_u64().unwrap_or(0) } else { 0 },
            received: end["sum_received"]["bytes"].as_u64().unwrap_or(0),
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            gbps: end["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
        }
    }

    pub fn ping(&self, count: u32) -> bool {
        sh(&format!("ip netns exec {} ping -c {count} -i 0.2 -W 2 -I 10.1.0.1 10.2.0.1", self.ns("left")))
            .status
            .success()
    }
}

/// What an iperf3 transfer of a fixed size did: octets sent, octets the receiver counted,
/// retransmitted segments, Gbit/s received.
#[derive(Debug)]
pub struct Transfer {
    pub sent: u64,
    pub received: u64,
    pub retransmits: u64,
    pub gbps: f64,
}

impl Transfer {
    /// Whether it completed: iperf3 wrote every octet within the timeout (rounded up to its
    /// 128 KiB blocks), which it can only do once the receiver acknowledged all but a socket
    /// buffer's worth; the receiver's count ends when the sender's does, so it may fall short of
    /// that by what was in flight.
    pub fn completed(&self, bytes: u64) -> bool {
        self.sent >= bytes && self.received >= bytes / 4 * 3
    }

    /// The figures, for the test's output.
    pub fn figures(&self) -> String {
        let Transfer { sent, received, retransmits, gbps } = self;
        format!("{sent} octets sent, {received} counted by the receiver, {retransmits} retransmits, {gbps:.2} Gbit/s")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        stop_all(&mut self.daemons, &mut self.charons);
        for side in ["left", "right", "nat", "mid"] {
            let _ = sh(&format!(
                "ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null",
                ns = self.ns(side)
            ));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// charon's side of the example tunnel (`examples/left.toml` is the other): connection `net` from
/// `local_addrs` to 192.0.2.1 with `proposals`, child `net` (10.2.0.1/32 to 10.1.0.1/32) with
/// `esp`, the example's PSK; `conn` (lines of `key = value`) is added to the connection and
/// `secrets` (sections) to the secrets.
pub fn charon_example_conf(local_addrs: &str, proposals: &str, esp: &str, conn: &str, secrets: &str) -> String {
    format!(
        "connections {{\n net {{\n  local_addrs = {local_addrs}\n  remote_addrs = 192.0.2.1\n{conn}  \
         proposals = {proposals}\n  local {{ auth = psk\n id = right.example }}\n  \
         remote {{ auth = psk\n id = left.example }}\n  children {{\n   net {{ local_ts = 10.2.0.1/32\n \
         remote_ts = 10.1.0.1/32\n esp_proposals = {esp} }}\n  }}\n }}\n}}\n\
         secrets {{ ike-net {{ id-1 = left.example\n id-2 = right.example\n \
         secret = \"correct horse battery staple 42\" }}\n{secrets}}}\n"
    )
}

/// Starts charon in the network namespace `ns` with its own mount namespace: `dir` becomes its
/// /etc/swanctl (with `swanctl_conf` and `files`, paths relative to it: x509/, x509ca/, private/), a
/// private /run holds its VICI socket, `strongswan_conf` its settings; kernel-libipsec carries ESP
/// through a TUN device. Waits for the socket and loads the configuration.
pub fn spawn_charon(
    ns: &str,
    dir: &Path,
    swanctl_conf: &str,
    strongswan_conf: &str,
    files: &[(&str, Vec<u8>)],
) -> Child {
    spawn_charon_in(None, ns, dir, swanctl_conf, strongswan_conf, files)
}

/// [`spawn_charon`], with `root` the root file system of another strongSwan (strongSwan 6 in
/// [`STRONGSWAN6`]): charon runs chrooted there, `dir` bound to its /etc/swanctl, with the host's
/// /dev (the TUN device) and a /proc and /run of its own.
pub fn spawn_charon_in(
    root: Option<&Path>,
    ns: &str,
    dir: &Path,
    swanctl_conf: &str,
    strongswan_conf: &str,
    files: &[(&str, Vec<u8>)],
) -> Child {
    for d in ["x509", "x509ca", "private", "conf.d"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for (path, data) in files {
        // Other key directories (rsa/, ecdsa/, pkcs8/) and conf.d/ snippets too.
        std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
        std::fs::write(dir.join(path), data).unwrap();
    }
    std::fs::write(dir.join("swanctl.conf"), swanctl_conf).unwrap();
    std::fs::write(dir.join("strongswan.conf"), strongswan_conf).unwrap();
    let log = std::fs::File::create(dir.join("charon.log")).unwrap();
    let d = dir.display();
    let script = match root {
        None => format!(
            "mount --make-rprivate / && mount -t tmpfs tmpfs /run && mount --bind '{d}' /etc/swanctl && \
             STRONGSWAN_CONF='{d}/strongswan.conf' exec /usr/lib/ipsec/charon"
        ),
        Some(r) => {
            let r = r.display();
            format!(
                "mount --make-rprivate / && mount --rbind /dev '{r}/dev' && mount -t proc proc '{r}/proc' && \
                 mount -t tmpfs tmpfs '{r}/run' && mkdir -p '{r}/etc/swanctl' && mount --bind '{d}' '{r}/etc/swanctl' && \
                 STRONGSWAN_CONF=/etc/swanctl/strongswan.conf exec chroot '{r}' /usr/lib/ipsec/charon"
            )
        }
    };
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "unshare", "-m", "sh", "-c"])
        .arg(script)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let charon_log = || std::fs::read_to_string(dir.join("charon.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = if root.is_some() { "-r" } else { "" };
    while !sh(&format!("nsenter -t {pid} -m -n {r} test -S /run/charon.vici")).status.success() {
        assert!(Instant::now() < deadline, "charon in {ns} did not start: {}", charon_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = sh(&format!("nsenter -t {pid} -m -n {r} swanctl --load-all"));
    assert!(
        o.status.success(),
        "swanctl --load-all: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    child
}

/// Starts an oxswan daemon in `ns` with `config`, its control socket at `sock`, logging to `log`;
/// waits for the socket.
pub fn spawn_oxswan(ns: &str, sock: &Path, config: &Path, log: &Path, env: &[(String, String)]) -> Child {
    let log_file = std::fs::File::create(log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, OX, "--socket"])
        .arg(sock)
        .args(["daemon", "--config"])
        .arg(config)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "daemon in {ns} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Stops the daemons (SIGTERM: they delete their SAs) and charons, killing what does not go.
pub fn stop_all(daemons: &mut [Child], charons: &mut [(String, Child)]) {
    // Only a child not yet reaped still owns its PID: signalling one a test already waited for
    // could hit whatever process got the number since (pid_max is 32768 here, and the tests fork
    // thousands): that once killed another test's ping.
    let term = |c: &mut Child| {
        if matches!(c.try_wait(), Ok(None)) {
            let _ = sh(&format!("kill -TERM {}", c.id()));
        }
    };
    for (_, c) in charons.iter_mut() {
        term(c);
    }
    for d in daemons.iter_mut() {
        term(d);
    }
    for d in daemons.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && d.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = d.kill();
    }
    for (_, c) in charons.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub fn counter(status: &serde_json::Value, key: &str) -> u64 {
    status["ike_sas"][0]["children"][0][key].as_u64().unwrap()
}

/// Polls `check` every 50 ms for up to `secs` until it passes, and panics with its last complaint
/// if it never does. For the SAs left after a stream of rekeys: a snapshot taken while an exchange
/// is in flight rightly shows an old SA beside its replacement (make before break), so what must
/// hold is that the two sides settle on one set, not that every instant shows one.
pub fn settles(secs: u64, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => panic!("not settled after {secs} s: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `Err(what)` unless `cond`: the complaint for [`settles`].
pub fn holds(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

/// How many IKE SAs a daemon's `status --json` lists, and how many pairs its first one holds.
pub fn sa_counts(status: &serde_json::Value) -> (usize, usize) {
    let ike = status["ike_sas"].as_array().map_or(0, Vec::len);
    (ike, status["ike_sas"][0]["children"].as_array().map_or(0, Vec::len))
}

/// The left side of the example tunnel (examples/left.toml) as oxswan's engine initiates it, for
/// tests that drive the engine by hand against a daemon.
pub fn example_left_peer() -> oxswan_ike::PeerConfig {
    use oxswan_crypto::Secret;
    use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
    use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
    use oxswan_ike::{LocalAuth, PeerConfig, RemoteAuth, Retransmit};
    use oxswan_wire::Identity;
    use oxswan_wire::ts::TrafficSelector;
    let psk = || Secret::from_slice(b"correct horse battery staple 42");
    let ts =
        |a: &str| TsConfig::Selector(TrafficSelector::from_prefix(a.parse().unwrap(), 32, 0, 0, u16::MAX).unwrap());
    PeerConfig {
        name: "site".into(),
        ike_proposals: parse_ike_proposals("aes256gcm16-prfsha256-x25519").unwrap(),
        prefer_initiator: false,
        local_id: Identity::Fqdn("left.example".into()),
        remote_id: Some(Identity::Fqdn("right.example".into())),
        local_auth: LocalAuth::Psk(psk()),
        remote_auth: RemoteAuth::Psk(psk()),
        rsa_pss: false,
        children: vec![ChildConfig {
            per_cpu_sas: false,
            name: "net".into(),
            esp_proposals: parse_esp_proposals("aes256gcm16").unwrap(),
            local_ts: vec![ts("10.1.0.1")],
            remote_ts: vec![ts("10.2.0.1")],
            mode: Mode::Tunnel,
            lifetime: Default::default(),
            volume: Default::default(),
        }],
        retransmit: Retransmit::default(),
        ike_lifetime: Default::default(),
        initial_contact: true,
        force_encap: false,
        dpd_delay: None,
        pools: Vec::new(),
        vips: Vec::new(),
        unique: Default::default(),
        fragmentation: true,
        tcp: oxswan_ike::TcpConfig::NO,
        mobike: true,
        childless: Default::default(),
        ppk_id: None,
        ppk_required: false,
        redirect: None,
        resumption: false,
        remote_addrs: Vec::new(),
    }
}
