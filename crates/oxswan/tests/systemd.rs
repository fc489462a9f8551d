//! Running in production: the systemd unit (`oxswan systemd-unit`, checked by systemd-analyze), the
//! daemon's sd_notify messages (READY, WATCHDOG, RELOADING, STOPPING, STATUS), the capabilities it
//! keeps once running, and its logs when stderr is the journal's. The daemons run in network
//! namespaces (prefixes oxsd1 and oxsd2) and need root, as in e2e.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// The capabilities the daemon keeps: CAP_NET_ADMIN (12) and CAP_NET_BIND_SERVICE (10).
const KEPT: u64 = (1 << 12) | (1 << 10);

/// The unit that `oxswan systemd-unit` prints passes `systemd-analyze verify` without a word about
/// it (the same check names a wrong value and an unknown key in a spoilt copy, so it is awake), and
/// `systemd-analyze security` rates its exposure at most 3.0 ("OK").
#[test]
#[cfg_attr(not(have_systemd_analyze), ignore = "needs systemd-analyze")]
fn the_unit_passes_systemd_analyze() {
    require(&[&SYSTEMD_ANALYZE]);
    let dir = std::env::temp_dir().join(format!("oxswan-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(OX).args(["systemd-unit", "--config", "/etc/oxswan/oxswan.toml"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unit = String::from_utf8(o.stdout).unwrap();
    let exe = std::fs::canonicalize(OX).unwrap();
    assert!(
        unit.contains(&format!("\nExecStart={} daemon --config /etc/oxswan/oxswan.toml\n", exe.display())),
        "{unit}"
    );
    for line in ["Type=notify", "WatchdogSec=30s", "ExecReload=/bin/kill -HUP $MAINPID", "RuntimeDirectory=oxswan"] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    let verify = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let o = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
        let said = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        // Other units on the machine may draw remarks of their own; only ours count.
        (o.status.success(), said.lines().filter(|l| l.contains(name)).map(str::to_owned).collect::<Vec<_>>())
    };
    let (ok, remarks) = verify("oxswan.service", &unit);
    assert!(ok && remarks.is_empty(), "systemd-analyze verify: {remarks:?}");
    let spoilt = unit.replace("Type=notify\n", "Type=notifyx\n").replace("[Install]\n", "[Install]\nBogus=1\n");
    let (_, remarks) = verify("spoilt.service", &spoilt);
    assert!(
        remarks.iter().any(|r| r.contains("notifyx")) && remarks.iter().any(|r| r.contains("Bogus")),
        "{remarks:?}"
    );

    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=30"])
        .arg(dir.join("oxswan.service"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let overall = out.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_default().to_owned();
    println!("{overall}");
    assert!(o.status.success(), "exposure above 3.0: {overall}\n{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The daemon's datagrams on a NOTIFY_SOCKET, with when each arrived.
struct Notifications {
    sock: UnixDatagram,
    got: Vec<(Instant, String)>,
}

impl Notifications {
    fn bind(path: &Path) -> Self {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Notifications { sock, got: Vec::new() }
    }

    /// Reads what arrives for `secs`.
    fn collect(&mut self, secs: f64) {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.got.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
    }

    /// Waits up to `secs` for a message with `line` among its lines; the message.
    fn wait_for(&mut self, line: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push((Instant::now(), m.clone()));
                if m.lines().any(|l| l == line) {
                    return m;
                }
            }
            assert!(Instant::now() < deadline, "no {line} in {secs} s; got {:?}", self.got);
        }
    }

    fn pings_since(&self, since: Instant) -> Vec<Instant> {
        self.got.iter().filter(|(t, m)| *t >= since && m.lines().any(|l| l == "WATCHDOG=1")).map(|(t, _)| *t).collect()
    }
}

/// sd_notify(3) from the daemon: READY=1 (with STATUS=) only when it serves: its control socket
/// answers, its TUN device exists, its UDP port is bound; WATCHDOG=1 every half of WATCHDOG_USEC
/// (1 s here) from the IKE thread; a STATUS= line that follows the SAs; RELOADING=1 (with
/// MONOTONIC_USEC=) then READY=1 around a SIGHUP reload; STOPPING=1 at SIGTERM, then exit 0.
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn the_daemon_tells_systemd_ready_watchdog_reload_and_stopping() {
    require(&[&NETNS]);
    let mut h = Hosts::new("oxsd1");
    let mut n = Notifications::bind(&h.dir.join("notify"));
    h.daemon_env = vec![
        ("NOTIFY_SOCKET".into(), h.dir.join("notify").display().to_string()),
        ("WATCHDOG_USEC".into(), "1000000".into()),
    ];
    h.start("right");
    h.daemon_env.clear();
    let ready = n.wait_for("READY=1", 10);
    // Nothing before it: no watchdog ping from a daemon that is not serving yet.
    assert_eq!(n.got.len(), 1, "{:?}", n.got);
    assert!(ready.lines().any(|l| l == "STATUS=1 connection(s); 0 IKE SA(s), 0 CHILD SA(s) up"), "{ready}");
    assert!(h.ox("right", "status").status.success(), "READY=1 before the control socket answers");
    assert!(ok(&format!("ip -n {} link show", h.ns("right"))).contains("oxswan0"), "READY=1 before the TUN device");
    assert!(ok(&format!("ip netns exec {} ss -lun", h.ns("right"))).contains("192.0.2.2:500"), "nor UDP 500");

    let since = Instant::now();
    n.collect(3.0);
    let pings = n.pings_since(since);
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    println!("watchdog pings in 3 s: {}, gaps {gaps:?}", pings.len());
    assert!((5..=7).contains(&pings.len()), "every 0.5 s: {} pings in 3 s", pings.len());
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(400) && *g <= Duration::from_millis(700)), "{gaps:?}");

    h.start("left");
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));
    n.wait_for("STATUS=1 connection(s); 1 IKE SA(s), 1 CHILD SA(s) up", 8);

    let right = h.daemons[0].id();
    ok(&format!("kill -HUP {right}"));
    let reloading = n.wait_for("RELOADING=1", 5);
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    n.wait_for("READY=1", 5);
    settles(2, || holds(h.log("right").contains("SIGHUP: "), || h.log("right")));
    let since = Instant::now();
    n.collect(1.5);
    assert!(n.pings_since(since).len() >= 2, "the watchdog goes on after the reload: {:?}", n.got);
    assert!(h.ping(1), "the tunnel after the reload");

    ok(&format!("kill -TERM {right}"));
    n.wait_for("STOPPING=1", 5);
    let mut d = h.daemons.remove(0);
    let code = wait_exit(&mut d, 5);
    assert!(code.success(), "exit status {code:?}: {}", h.log("right"));
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One thread's capability sets from /proc/PID/task/TID/status: (CapInh, CapPrm, CapEff, CapBnd,
/// CapAmb).
fn caps(status: &str) -> [u64; 5] {
    let get = |name: &str| {
        let v = status.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap();
        u64::from_str_radix(v.trim(), 16).unwrap()
    };
    [get("CapInh"), get("CapPrm"), get("CapEff"), get("CapBnd"), get("CapAmb")]
}

/// Every thread of process `pid`: its name and capability sets.
fn threads(pid: u32) -> Vec<(String, [u64; 5])> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(status) = std::fs::read_to_string(t.unwrap().path().join("status")) else { continue };
        let name = status.lines().next().unwrap_or_default().trim_start_matches("Name:").trim().to_owned();
        out.push((name, caps(&status)));
    }
    out
}

/// After start, every thread of both daemons holds CAP_NET_ADMIN and CAP_NET_BIND_SERVICE and
/// nothing else, in the effective, permitted and bounding sets, none inheritable or ambient; and
/// with only those the daemons still do their work: the tunnel comes up and carries pings, its
/// CHILD SA and IKE SA rekey, a SIGHUP makes the left read its (changed) configuration again, a
/// new address of the left gets the IKE ports bound (port 500: CAP_NET_BIND_SERVICE) and the SA
/// moves there with MOBIKE, routes come and go with the SA (`ip`, run with CAP_NET_ADMIN). With
/// `drop_capabilities = false` the daemon keeps what it was started with.
#[test]
#[cfg_attr(not(have_netns), ignore = "needs root with ip, ping, iperf3")]
fn the_daemon_keeps_only_its_capabilities_and_still_works() {
    require(&[&NETNS]);
    let mut h = Hosts::new("oxsd2");
    h.start("right");
    // No local_addrs: the left listens where the route to the right leads, and follows it.
    h.start_edited("left", |c| c.replace("local_addrs  = [\"192.0.2.1\"]\n", ""));
    for (side, d) in [("right", &h.daemons[0]), ("left", &h.daemons[1])] {
        let ts = threads(d.id());
        assert!(ts.len() >= 4, "{side}: the daemon's threads: {ts:?}");
        for (name, [inh, prm, eff, bnd, amb]) in &ts {
            assert_eq!((*prm, *eff, *bnd), (KEPT, KEPT, KEPT), "{side} thread {name}: {ts:x?}");
            assert_eq!((*inh, *amb), (0, 0), "{side} thread {name}: {ts:x?}");
        }
        assert!(
            h.log(side).contains("capabilities dropped: kept CAP_NET_ADMIN, CAP_NET_BIND_SERVICE"),
            "{}",
            h.log(side)
        );
    }
    let up = h.ox("left", "up site");
    assert!(up.status.success(), "{}\n{}", String::from_utf8_lossy(&up.stderr), h.log("left"));
    assert!(h.ping(3), "{}", h.log("left"));
    assert!(ok(&format!("ip -n {} route", h.ns("left"))).contains("10.2.0.1 dev oxswan0"));

    let spis = |h: &Hosts| {
        let s = h.status("left");
        (s["ike_sas"][0]["spis"].as_str().unwrap_or_default().to_owned(), counter_str(&s, "spi_in"))
    };
    for (cmd, new_ike, new_child) in [("rekey site", false, true), ("rekey --ike site", true, false)] {
        let (ike, child) = spis(&h);
        assert!(h.ox("left", cmd).status.success(), "{cmd}");
        settles(10, || {
            let (i, c) = spis(&h);
            let one = sa_counts(&h.status("left")) == (1, 1) && sa_counts(&h.status("right")) == (1, 1);
            holds((i != ike) == new_ike && (c != child) == new_child && one, || {
                format!("{cmd}: {ike} -> {i}, {child} -> {c}")
            })
        });
        assert!(h.ping(2), "{cmd}: traffic after it\n{}", h.log("left"));
    }

    // SIGHUP: the configuration, owned by root with mode 0600 like its keys, read again.
    let config = h.dir.join("left.toml");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let text = std::fs::read_to_string(&config).unwrap();
        let site = text.split("[[secrets.ike]]").next().unwrap().split_once("[connections.site]").unwrap().1;
        let other = site.replace("connections.site", "connections.other").replace("\"192.0.2.2\"", "\"192.0.2.99\"");
        std::fs::write(&config, format!("{text}\n[connections.other]{other}")).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    ok(&format!("kill -HUP {}", h.daemons[1].id()));
    settles(5, || holds(h.log("left").contains("SIGHUP: "), || h.log("left")));
    let log = h.log("left");
    assert!(log.contains("2 connection(s), 1 added, 0 removed"), "{log}");

    // A new source address towards the right: the left binds UDP 500 and 4500 there (a port
    // below 1024) and moves the SA with MOBIKE.
    let (l, dev) = (h.ns("left"), format!("{}l0", h.p));
    ok(&format!(
        "ip -n {l} addr add 192.0.2.11/24 dev {dev} && ip -n {l} route replace 192.0.2.2/32 dev {dev} src 192.0.2.11"
    ));
    settles(10, || {
        let local = h.status("left")["ike_sas"][0]["local"].as_str().unwrap_or_default().to_owned();
        holds(local.starts_with("192.0.2.11"), || format!("the SA is at {local}\n{}", h.log("left")))
    });
    assert!(h.log("left").contains("listening on 192.0.2.11 too"), "{}", h.log("left"));
    assert!(!h.log("left").contains("cannot bind"), "{}", h.log("left"));
    assert!(h.ping(2), "after the move\n{}", h.log("left"));

    // Without CAP_DAC_OVERRIDE, root reads root's files but not another user's private ones: a
    // reload of such a file is refused and the running configuration stays.
    ok(&format!("chown 65534 '{}'", config.display()));
    ok(&format!("kill -HUP {}", h.daemons[1].id()));
    settles(5, || holds(h.log("left").contains("Permission denied"), || h.log("left")));
    ok(&format!("chown 0 '{}'", config.display()));
    assert!(h.ping(1), "the running configuration stays\n{}", h.log("left"));

    // Down: the route goes (ip route del, run by the daemon with its capabilities).
    assert!(h.ox("left", "down site").status.success());
    settles(5, || holds(!ok(&format!("ip -n {l} route")).contains("10.2.0.1"), || "the route stays".into()));

    // The switch: a daemon told to keep everything has the bounding set it was started with.
    let mut left = h.daemons.remove(1);
    ok(&format!("kill -TERM {}", left.id()));
    assert!(wait_exit(&mut left, 5).success(), "{}", h.log("left"));
    h.start_edited("left", |c| c.replace("tun = \"oxswan0\"", "tun = \"oxswan0\"\ndrop_capabilities = false"));
    let ours = caps(&std::fs::read_to_string("/proc/self/status").unwrap());
    let ts = threads(h.daemons[1].id());
    assert!(ts.iter().all(|(_, c)| c[3] == ours[3] && c[2] == ours[2]), "{ts:x?} vs ours {ours:x?}");
    assert!(!h.log("left").contains("capabilities dropped"), "{}", h.log("left"));
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));
    assert!(h.ping(1));
}

/// The other way to run it, as systemd's `User=` with `AmbientCapabilities=` and
/// `CapabilityBoundingSet=` would: a daemon started by an unprivileged user (nobody) with the two
/// capabilities ambient and nothing else in its bounding set keeps them, inheritable and ambient
/// too, so that the `ip` it runs for routes has them; the tunnel comes up and carries pings.
#[test]
#[cfg_attr(not(all(have_netns, have_util_linux)), ignore = "needs root with ip, ping, iperf3, util-linux")]
fn an_unprivileged_user_with_the_two_capabilities_runs_the_daemon() {
    require(&[&NETNS, &UTIL_LINUX]);
    let mut h = Hosts::new("oxsd2u");
    h.start("right");
    // nobody needs a directory of its own for the control socket, and the binary and the
    // configuration where it may read them (the checkout may be under a private home).
    let run = h.dir.join("nobody");
    std::fs::create_dir_all(&run).unwrap();
    ok(&format!("chown 65534 '{}' && chmod 0755 '{}'", run.display(), h.dir.display()));
    let sock = run.join("left.sock");
    let config = run.join("left.toml");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/left.toml"), &config).unwrap();
    let exe = run.join("oxswan");
    std::fs::copy(OX, &exe).unwrap();
    ok(&format!("chmod 0644 '{}' && chmod 0755 '{}'", config.display(), exe.display()));
    let caps = "-all,+net_admin,+net_bind_service";
    let log = h.dir.join("left.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &h.ns("left"), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .args([format!("--inh-caps={caps}"), format!("--ambient-caps={caps}"), format!("--bounding-set={caps}")])
        .arg(&exe)
        .arg("--socket")
        .arg(&sock)
        .args(["daemon", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    h.daemons.push(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "the daemon did not start: {}", h.log("left"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = h.daemons[1].id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("65534")), "{status}");
    for (name, c) in threads(pid) {
        assert_eq!(c, [KEPT; 5], "thread {name}: {c:x?}");
    }
    let up = sh(&format!("ip netns exec {} {OX} --socket {} up site", h.ns("left"), sock.display()));
    assert!(up.status.success(), "{}\n{}", String::from_utf8_lossy(&up.stderr), h.log("left"));
    assert!(ok(&format!("ip -n {} route", h.ns("left"))).contains("10.2.0.1 dev oxswan0"), "{}", h.log("left"));
    assert!(h.ping(3), "{}", h.log("left"));
}

fn counter_str(status: &serde_json::Value, key: &str) -> String {
    status["ike_sas"][0]["children"][0][key].as_str().unwrap_or_default().to_owned()
}

/// A log file for a daemon's stderr, made before the daemon so that its device and inode are
/// known: `JOURNAL_STREAM` as systemd would set it for that stream.
fn journal_stream(log: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::File::create(log).unwrap();
    let m = std::fs::metadata(log).unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

/// Starts the daemon of `side` (examples/SIDE.toml) in its network namespace and a mount namespace
/// of its own whose /run is empty, so that no journald of this host is reachable; with `journal`,
/// that directory is its /run/systemd/journal. Its stderr goes to `log` (made by
/// [`journal_stream`]), and `JOURNAL_STREAM` is `stream`.
fn spawn_with_own_run(h: &mut Hosts, side: &str, journal: Option<&Path>, stream: &str) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/{side}.toml"));
    let bind = journal.map_or_else(String::new, |j| {
        format!("mkdir -p /run/systemd/journal && mount --bind '{}' /run/systemd/journal && ", j.display())
    });
    let log = h.dir.join(format!("{side}.log"));
    let child = Command::new("ip")
        .args(["netns", "exec", &h.ns(side), "unshare", "-m", "sh", "-c"])
        .arg(format!(
            "mount --make-rprivate / && mount -t tmpfs tmpfs /run && {bind}exec '{OX}' --socket '{}' daemon --config '{}'",
            h.sock(side).display(),
            config.display()
        ))
        .env("JOURNAL_STREAM", stream)
        .envs(h.daemon_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    h.daemons.push(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.sock(side).exists() {
        assert!(Instant::now() < deadline, "the daemon did not start: {}", h.log(side));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_timestamp(line: &str) -> bool {
    // tracing's default: 2025-01-31T12:34:56.789012Z at the start of the line.
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// With `JOURNAL_STREAM` naming its stderr and no journald socket to reach (a mount namespace with
/// an empty /run), the daemon writes its
/// lines to stderr without timestamps and without ANSI colours, each with its syslog priority as a
/// `<N>` prefix for journald (info 6, warn 4). With `JOURNAL_STREAM` naming another stream (a
/// redirected stderr), the lines are the usual ones, timestamps first.
#[test]
#[cfg_attr(not(all(have_netns, have_util_linux)), ignore = "needs root with ip, ping, iperf3, util-linux")]
fn logs_under_journald_have_no_timestamps() {
    require(&[&NETNS, &UTIL_LINUX]);
    let mut h = Hosts::new("oxsd1j");
    let stream = journal_stream(&h.dir.join("right.log"));
    h.daemon_env = vec![("OXSWAN_TEST_SEQUENCE_START".into(), "1000".into())];
    spawn_with_own_run(&mut h, "right", None, &stream);
    h.daemon_env = vec![("JOURNAL_STREAM".into(), "1:1".into())];
    h.start("left");
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));
    let right = h.log("right");
    let lines: Vec<&str> = right.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("<6>daemon: oxswan daemon up")), "{right}");
    assert!(lines.iter().any(|l| l.starts_with("<4>daemon: testing: outbound ESP")), "a warning is 4: {right}");
    assert!(lines.iter().any(|l| l.starts_with("<6>ike: ") && l.contains("conn=site")), "{right}");
    for l in &lines {
        assert!(l.len() > 3 && l.starts_with('<') && l.as_bytes()[2] == b'>', "no priority: {l}");
        assert!(!has_timestamp(&l[3..]) && !l.contains('\u{1b}'), "{l}");
    }
    let left = h.log("left");
    assert!(!left.is_empty() && left.lines().all(has_timestamp), "another stream: timestamps as usual\n{left}");
}

/// The journal's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): `KEY=value` lines, or
/// `KEY`, a 64-bit little-endian length and the value, for values that need it.
fn journal_fields(mut d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let end = d.iter().position(|b| *b == b'\n' || *b == b'=').unwrap();
        let key = String::from_utf8_lossy(&d[..end]).into_owned();
        if d[end] == b'=' {
            let rest = &d[end + 1..];
            let nl = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            out.push((key, String::from_utf8_lossy(&rest[..nl]).into_owned()));
            d = rest.get(nl + 1..).unwrap_or_default();
        } else {
            let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()) as usize;
            let value = &d[end + 9..end + 9 + len];
            out.push((key, String::from_utf8_lossy(value).into_owned()));
            d = &d[end + 9 + len + 1..];
        }
    }
    out
}

/// Under journald (`JOURNAL_STREAM` naming stderr, and its socket there), each log line goes to
/// /run/systemd/journal/socket as a native journal entry: MESSAGE, PRIORITY (info 6), TARGET,
/// SYSLOG_IDENTIFIER=oxswan and the event's fields as OXSWAN_CONN=, OXSWAN_SA=; nothing goes to
/// stderr. The daemon runs in a mount namespace whose /run/systemd/journal is the test's directory,
/// where the test listens.
#[test]
#[cfg_attr(not(all(have_netns, have_util_linux)), ignore = "needs root with ip, ping, iperf3, util-linux")]
fn logs_under_journald_go_to_its_socket_with_fields() {
    require(&[&NETNS, &UTIL_LINUX]);
    let mut h = Hosts::new("oxsd2j");
    let jdir = h.dir.join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let journal = UnixDatagram::bind(jdir.join("socket")).unwrap();
    journal.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    h.start("left");
    let stream = journal_stream(&h.dir.join("right.log"));
    spawn_with_own_run(&mut h, "right", Some(&jdir), &stream);
    assert!(h.ox("left", "up site").status.success(), "{}", h.log("left"));

    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(n) = journal.recv(&mut buf)
            && n > 0
        {
            entries.push(journal_fields(&buf[..n]));
        }
        let done = entries.iter().any(|e| e.iter().any(|(k, v)| k == "MESSAGE" && v.starts_with("CHILD SA")));
        if done {
            break;
        }
    }
    let field = |e: &Vec<(String, String)>, k: &str| e.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let up = entries
        .iter()
        .find(|e| field(e, "MESSAGE").is_some_and(|m| m.starts_with("oxswan daemon up")))
        .unwrap_or_else(|| panic!("no start line in {entries:?}"));
    assert_eq!(field(up, "PRIORITY").as_deref(), Some("6"), "{up:?}");
    assert_eq!(field(up, "TARGET").as_deref(), Some("daemon"), "{up:?}");
    assert_eq!(field(up, "SYSLOG_IDENTIFIER").as_deref(), Some("oxswan"), "{up:?}");
    let ike = entries
        .iter()
        .find(|e| field(e, "OXSWAN_CONN").as_deref() == Some("site"))
        .unwrap_or_else(|| panic!("no entry with OXSWAN_CONN=site in {entries:?}"));
    assert_eq!(field(ike, "TARGET").as_deref(), Some("ike"), "{ike:?}");
    assert!(field(ike, "OXSWAN_SA").is_some_and(|sa| sa.parse::<u64>().is_ok()), "{ike:?}");
    assert!(h.log("right").is_empty(), "nothing on stderr: {}", h.log("right"));
}
