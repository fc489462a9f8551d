//! End to end: two oxswan daemons in network namespaces, a real tunnel, real traffic. Needs root (and
//! iproute2, ping, iperf3, which .ci/run installs); elsewhere each test says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const OX: &str = env!("CARGO_BIN_EXE_oxswan");

fn root_with_tools() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let tools = ["ip", "ping", "iperf3"].iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    });
    if !root || !tools || !Path::new("/dev/net/tun").exists() {
        eprintln!(
            "SKIPPED: end-to-end tests need root, /dev/net/tun, ip, ping and iperf3 (bash .ci/run installs them)"
        );
        return false;
    }
    true
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().unwrap()
}

fn ok(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(o.status.success(), "{cmd}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Two hosts joined by a veth pair, with oxswan daemons; everything is removed on drop.
struct Hosts {
    p: String,
    dir: PathBuf,
    daemons: Vec<Child>,
}

impl Hosts {
    fn new(p: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("oxswan-e2e-{p}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = Hosts { p: p.into(), dir, daemons: Vec::new() };
        let (l, r) = (h.ns("left"), h.ns("right"));
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

    fn ns(&self, side: &str) -> String {
        format!("{}-{side}", self.p)
    }

    fn sock(&self, side: &str) -> PathBuf {
        self.dir.join(format!("{side}.sock"))
    }

    fn start(&mut self, side: &str) {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{side}.toml"));
        self.start_with(side, &config);
    }

    /// Starts a daemon with the example configuration changed by `edit`.
    fn start_edited(&mut self, side: &str, edit: impl Fn(String) -> String) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{side}.toml"));
        let config = self.dir.join(format!("{side}.toml"));
        std::fs::write(&config, edit(std::fs::read_to_string(example).unwrap())).unwrap();
        self.start_with(side, &config);
    }

    fn start_with(&mut self, side: &str, config: &Path) {
        let log = std::fs::File::create(self.dir.join(format!("{side}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(side), OX, "--socket"])
            .arg(self.sock(side))
            .args(["daemon", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemons.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.sock(side).exists() {
            assert!(Instant::now() < deadline, "{side} daemon did not start: {}", self.log(side));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, side: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{side}.log"))).unwrap_or_default()
    }

    fn ox(&self, side: &str, args: &str) -> Output {
        sh(&format!("ip netns exec {} {OX} --socket {} {args}", self.ns(side), self.sock(side).display()))
    }

    fn status(&self, side: &str) -> serde_json::Value {
        let o = self.ox(side, "status --json");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn ping(&self, count: u32) -> bool {
        sh(&format!("ip netns exec {} ping -c {count} -i 0.2 -W 2 -I 10.1.0.1 10.2.0.1", self.ns("left")))
            .status
            .success()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
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
        for side in ["left", "right"] {
            let _ = sh(&format!("ip netns pids {} | xargs -r kill -9; ip netns del {}", self.ns(side), self.ns(side)));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn counter(status: &serde_json::Value, key: &str) -> u64 {
    status["ike_sas"][0]["children"][0][key].as_u64().unwrap()
}

#[test]
fn psk_tunnel_carries_ping_and_iperf3_and_counts_it() {
    if !root_with_tools() {
        return;
    }
    let mut h = Hosts::new("oxe1");
    h.start("right");
    h.start("left");
    let up = h.ox("left", "up site");
    assert!(up.status.success(), "up failed: {}\n{}", String::from_utf8_lossy(&up.stderr), h.log("left"));
    // The control socket is the owner's alone: whoever can write to it controls the VPN.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(h.sock("left")).unwrap().permissions().mode() & 0o777, 0o600);

    // Counters match the traffic: 5 echo requests out, 5 replies in, 84-octet IPv4 packets.
    let before = h.status("left");
    assert!(h.ping(5), "ping through the tunnel\n{}", h.log("left"));
    let after = h.status("left");
    assert_eq!(counter(&after, "packets_out") - counter(&before, "packets_out"), 5);
    assert_eq!(counter(&after, "packets_in") - counter(&before, "packets_in"), 5);
    assert_eq!(counter(&after, "bytes_out") - counter(&before, "bytes_out"), 5 * 84);
    let right = h.status("right");
    assert_eq!(counter(&right, "packets_in"), counter(&after, "packets_out"), "what left sent, right received");
    assert_eq!(after["ike_sas"][0]["children"][0]["local_ts"][0], "10.1.0.1/32");
    assert_eq!(after["ike_sas"][0]["nat"], true, "ESP in UDP: the user-space data plane always encapsulates");

    // iperf3 through the tunnel.
    let server = Command::new("ip")
        .args(["netns", "exec", &h.ns("right"), "iperf3", "-s", "-1", "-B", "10.2.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = ok(&format!("ip netns exec {} iperf3 -c 10.2.0.1 -B 10.1.0.1 -t 2 -J", h.ns("left")));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bps = j["end"]["sum_received"]["bits_per_second"].as_f64().unwrap();
    println!("iperf3 through the tunnel: {:.2} Gbit/s", bps / 1e9);
    assert!(bps > 10e6, "{bps} bit/s");
    drop(server);

    // Down, then up again.
    assert!(h.ox("left", "down site").status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.status("right")["ike_sas"].as_array().is_some_and(|a| !a.is_empty()) {
        assert!(Instant::now() < deadline, "right still has the SA after down");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!h.ping(1), "no tunnel, no route: the ping must fail");
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));
    assert!(h.ping(2), "ping after up again");
}

#[test]
fn cli_reports_failures_clearly() {
    if !root_with_tools() {
        return;
    }
    let mut h = Hosts::new("oxe2");
    // No daemon on the socket.
    let o = h.ox("left", "status");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach the daemon") && err.contains("left.sock"), "{err}");
    // The peer is not there: up fails with the reason, well within its timeout.
    h.start("left");
    let o = h.ox("left", "up site --timeout 3");
    assert!(!o.status.success());
    // A connection that does not exist.
    let o = h.ox("left", "up nosuch");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no connection nosuch"));
}

#[test]
fn nat_keepalives_flow_from_the_encapsulating_initiator() {
    if !root_with_tools() {
        return;
    }
    let mut h = Hosts::new("oxe3");
    h.start("right");
    h.start_edited("left", |c| c.replace("[daemon]", "[daemon]\nkeepalive = \"1s\""));
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));
    std::thread::sleep(Duration::from_millis(3500));
    // The initiator treats forced encapsulation as being behind a NAT (RFC 3948 §2.3).
    let n = h.status("right")["keepalives_received"].as_u64().unwrap();
    assert!((2..=5).contains(&n), "{n} keepalives in 3.5 s at 1 s intervals");
    assert_eq!(h.status("left")["keepalives_received"].as_u64().unwrap(), 0, "the responder sends none");
}

/// Runs an nftables script in a namespace.
fn nft(ns: &str, script: &str) {
    let mut c = Command::new("ip").args(["netns", "exec", ns, "nft", "-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "nft: {script}");
}

#[test]
fn replayed_and_corrupted_esp_are_dropped_and_counted() {
    if !root_with_tools() {
        return;
    }
    if !sh("command -v nft").status.success() {
        eprintln!("SKIPPED: needs nft (nftables) to duplicate and corrupt packets on the wire");
        return;
    }
    let mut h = Hosts::new("oxe4");
    h.start("right");
    h.start("left");
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));
    let dev = format!("{}l0", h.p);
    // The wire duplicates every ESP packet (nftables `dup` on left's egress): Right accepts each once
    // and drops and counts the copies as replays (RFC 4303 §3.4.3).
    nft(
        &h.ns("left"),
        &format!(
            "table netdev oxdup {{\n chain c {{\n type filter hook egress device \"{dev}\" priority 0;\n \
         udp dport 4500 udp length > 100 dup to \"{dev}\"\n }}\n}}\n"
        ),
    );
    assert!(h.ping(5), "ping with duplicated ESP");
    let r = h.status("right");
    assert_eq!(counter(&r, "packets_in"), 5, "each ping once");
    assert!(counter(&r, "replayed") >= 5, "copies dropped as replays: {r}");
    let _ = sh(&format!("ip netns exec {} nft delete table netdev oxdup", h.ns("left")));

    // The wire corrupts every ESP packet (one octet of ciphertext overwritten): all are dropped and
    // counted, and once the wire is clean again the SA works as before.
    let before = h.status("right");
    nft(
        &h.ns("left"),
        &format!(
            "table netdev oxbad {{\n chain c {{\n type filter hook egress device \"{dev}\" priority 0;\n \
         udp dport 4500 udp length > 100 @th,256,8 set 0x55\n }}\n}}\n"
        ),
    );
    assert!(!h.ping(3), "corrupted ESP must not get through");
    let during = h.status("right");
    assert_eq!(counter(&during, "packets_in"), counter(&before, "packets_in"));
    assert_eq!(counter(&during, "integrity_failed") - counter(&before, "integrity_failed"), 3);
    let _ = sh(&format!("ip netns exec {} nft delete table netdev oxbad", h.ns("left")));
    assert!(h.ping(2), "the SA is unharmed");
}
