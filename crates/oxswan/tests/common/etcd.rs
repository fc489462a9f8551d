//! A flat test network (hosts in network namespaces on one bridge) and a real etcd cluster on some of
//! its hosts: the harness of the tests that run several gateways as one service (cluster.rs,
//! etcd_harness.rs). Everything is removed when its `Net` or `Etcd` drops; declare the `Net` first so
//! that the `Etcd` on it drops before it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::{ok, sh};

/// The longest interface name Linux takes (IFNAMSIZ is 16 with the terminating NUL).
const IFNAME_MAX: usize = 15;

/// Hosts on one L2 segment: the namespace `{p}-sw` holds the bridge `{p}br`, and each host
/// `{p}-{name}` a veth `{p}{name}` whose peer `{p}{name}b` is a port of that bridge.
pub struct Net {
    pub p: String,
    /// The namespaces made, the switch's first.
    made: Vec<String>,
}

impl Net {
    pub fn new(p: &str) -> Self {
        let sw = format!("{p}-sw");
        remove_namespace(&sw);
        let mut net = Net { p: p.into(), made: Vec::new() };
        ok(&format!("ip netns add {sw} && ip -n {sw} link set lo up"));
        net.made.push(sw.clone());
        // STP is off by default, so a new port forwards at once rather than after the bridge's
        // forward delay.
        ok(&format!("ip -n {sw} link add {p}br type bridge && ip -n {sw} link set {p}br up"));
        net
    }

    /// The namespace of host `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.p)
    }

    fn switch(&self) -> String {
        self.ns("sw")
    }

    /// The host's own end of its veth, and the bridge's end.
    fn ends(&self, name: &str) -> (String, String) {
        let (own, port) = (format!("{}{name}", self.p), format!("{}{name}b", self.p));
        assert!(
            port.len() <= IFNAME_MAX,
            "interface name {port} is longer than {IFNAME_MAX}: shorten {} or {name}",
            self.p
        );
        (own, port)
    }

    /// Adds host `name` with `addrs` (`10.9.0.1/16`, `fd09::1/64`) on its veth into the bridge;
    /// returns its namespace.
    pub fn host(&mut self, name: &str, addrs: &[&str]) -> String {
        let (ns, sw) = (self.ns(name), self.switch());
        let (own, port) = self.ends(name);
        remove_namespace(&ns);
        ok(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        self.made.push(ns.clone());
        ok(&format!("ip link add {own} netns {ns} type veth peer name {port} netns {sw}"));
        ok(&format!("ip -n {sw} link set {port} master {}br && ip -n {sw} link set {port} up", self.p));
        for a in addrs {
            // Without duplicate address detection an IPv6 address is usable at once, not after ~1 s
            // of tentative state (RFC 4862 section 5.4).
            let nodad = if a.contains(':') { " nodad" } else { "" };
            ok(&format!("ip -n {ns} addr add {a} dev {own}{nodad}"));
        }
        ok(&format!("ip -n {ns} link set {own} up"));
        ns
    }

    /// Partitions host `name`: its port on the switch goes down, as a cable pulled there. The host
    /// keeps its addresses and routes; nothing passes either way until [`Net::mend`].
    pub fn cut(&self, name: &str) {
        let (_, port) = self.ends(name);
        ok(&format!("ip -n {} link set {port} down", self.switch()));
    }

    /// Undoes [`Net::cut`].
    pub fn mend(&self, name: &str) {
        let (_, port) = self.ends(name);
        ok(&format!("ip -n {} link set {port} up", self.switch()));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The hosts before the switch, whose bridge their veths' peers are ports of.
        for ns in self.made.iter().rev() {
            remove_namespace(ns);
        }
    }
}

/// Kills what still runs in namespace `ns` and deletes it, if it is there.
fn remove_namespace(ns: &str) {
    let _ = sh(&format!("ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null"));
}

/// A fresh directory for a test's etcd data: on /dev/shm when there is one, a tmpfs, where etcd's
/// writes cost no disk I/O.
pub fn scratch_dir(p: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let dir = base.join(format!("oxswan-etcd-{p}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One member of the cluster.
struct Member {
    name: String,
    ns: String,
    ip: String,
    /// `ip netns exec` execs etcd, so this is etcd itself; `None` while the test has it down.
    child: Option<Child>,
}

/// A static etcd cluster, one member per host of a [`Net`], its data and logs under `dir`.
pub struct Etcd {
    dir: PathBuf,
    token: String,
    initial_cluster: String,
    members: Vec<Member>,
}

/// How long etcdctl waits for a connection.
const DIAL_TIMEOUT: &str = "--dial-timeout=2s";

impl Etcd {
    /// Starts one member per `(host, ip)`, the member named after its host, and waits up to 30 s for
    /// every member to report healthy.
    pub fn start(net: &Net, dir: &Path, members: &[(&str, &str)]) -> Etcd {
        let initial_cluster =
            members.iter().map(|(name, ip)| format!("{name}=http://{ip}:2380")).collect::<Vec<_>>().join(",");
        // Unique per cluster, so that no member of another cluster, one left over from an earlier run
        // say, can join this one (etcd derives the cluster ID from the token and the member URLs).
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let token = format!("oxswan-{}-{}-{nanos}", net.p, std::process::id());
        let mut etcd = Etcd {
            dir: dir.to_path_buf(),
            token,
            initial_cluster,
            members: members
                .iter()
                .map(|(name, ip)| Member { name: (*name).into(), ns: net.ns(name), ip: (*ip).into(), child: None })
                .collect(),
        };
        for i in 0..etcd.members.len() {
            let _ = std::fs::remove_dir_all(etcd.data_dir(i));
            let _ = std::fs::remove_file(etcd.log_path(i));
            etcd.spawn(i, "new");
        }
        etcd.wait_healthy(Duration::from_secs(30));
        etcd
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.members[i].name)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        assert!(m.child.is_none(), "etcd member {} already runs", m.name);
        let log_path = self.log_path(i);
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        use std::io::Write as _;
        writeln!(log, "--- oxswan test harness: etcd starts, --initial-cluster-state {state}").unwrap();
        let peer = format!("http://{}:2380", m.ip);
        let client = format!("http://{}:2379", m.ip);
        let child = Command::new("ip")
            .args(["netns", "exec", &m.ns, "etcd", "--name", &m.name, "--data-dir"])
            .arg(self.data_dir(i))
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-token", &self.token])
            // Read only when the data directory is empty; a member with data rejoins by what it has.
            .args(["--initial-cluster-state", state])
            // etcd's defaults, stated: leader heartbeats every 100 ms, an election after 1 s without
            // one. Shorter would fail over faster but elects spuriously when the shared machine stalls.
            .args(["--heartbeat-interval=100", "--election-timeout=1000"])
            // A member cut off bumps no term while it cannot win (Raft thesis section 9.6), so
            // mending a partition does not depose a working leader.
            .arg("--pre-vote=true")
            // The data is the test's and goes with it: no fsync. A SIGKILL loses nothing by it, since
            // what was written sits in the page cache; only losing the machine would.
            .arg("--unsafe-no-fsync")
            .args(["--logger=zap", "--log-outputs=stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i].child = Some(child);
    }

    /// Waits up to `within` for every running member to report healthy; panics with the members'
    /// log tails if one does not, or exits.
    pub fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..self.members.len() {
                let m = &mut self.members[i];
                if let Some(c) = m.child.as_mut()
                    && let Some(status) = c.try_wait().unwrap()
                {
                    let name = m.name.clone();
                    m.child = None;
                    panic!("etcd member {name} exited ({status}):\n{}", self.log_tails());
                }
            }
            if self.live().iter().all(|&i| self.healthy(i)) {
                return;
            }
            assert!(Instant::now() < deadline, "etcd not healthy within {within:?}:\n{}", self.log_tails());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The members running, by index.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.members[i].child.is_some()).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:2379", self.members[i].ip)
    }

    /// The client URLs of all members, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.members[i].ns
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        let mut c = self.members[i].child.take().unwrap_or_else(|| panic!("member {i} is not running"));
        let _ = c.kill();
        let _ = c.wait();
    }

    /// SIGTERMs member `i` and waits for it to go (10 s, then SIGKILL).
    pub fn stop(&mut self, i: usize) {
        let mut c = self.members[i].child.take().unwrap_or_else(|| panic!("member {i} is not running"));
        // Only a child not yet reaped still owns its PID.
        if matches!(c.try_wait(), Ok(None)) {
            let _ = sh(&format!("kill -TERM {}", c.id()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Starts member `i` again on its data directory; does not wait for it.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i, "existing");
    }

    /// Whether member `i` answers `endpoint health`: it serves a linearizable read, so it is part of
    /// a quorum. Asked from its own namespace, so a cut does not keep the question from it.
    pub fn healthy(&self, i: usize) -> bool {
        let o = self.etcdctl_from(self.ns(i), &[self.endpoint(i)], Duration::from_secs(2), &["endpoint", "health"]);
        o.status.success()
    }

    /// Whether some running member serves a linearizable read within 2 s: only one in touch with a
    /// majority can (etcd confirms its leadership with a quorum for each, Raft thesis section 6.4).
    /// Each member is asked from its own namespace, all at once.
    pub fn has_quorum(&self) -> bool {
        let args = ["get", "--consistency=l", "oxswan-harness-quorum-probe"];
        std::thread::scope(|s| {
            let asks: Vec<_> = self
                .live()
                .into_iter()
                .map(|i| {
                    s.spawn(move || {
                        let o = self.etcdctl_from(self.ns(i), &[self.endpoint(i)], Duration::from_secs(2), &args);
                        o.status.success()
                    })
                })
                .collect();
            // The scope waits for any thread `any` leaves unjoined.
            asks.into_iter().any(|a| a.join().unwrap())
        })
    }

    /// etcdctl from member 0's namespace against the running members, 5 s per command. (With member
    /// 0 cut off, [`Etcd::etcdctl_from`] another namespace.)
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let endpoints: Vec<String> = self.live().into_iter().map(|i| self.endpoint(i)).collect();
        self.etcdctl_from(self.ns(0), &endpoints, Duration::from_secs(5), args)
    }

    /// etcdctl from member `i`'s namespace against member `i` alone, 5 s per command.
    pub fn etcdctl_via(&self, i: usize, args: &[&str]) -> Output {
        self.etcdctl_from(self.ns(i), &[self.endpoint(i)], Duration::from_secs(5), args)
    }

    /// etcdctl (API v3, etcdctl 3.4's default) from namespace `ns` against `endpoints`, giving
    /// each command `timeout`.
    pub fn etcdctl_from(&self, ns: &str, endpoints: &[String], timeout: Duration, args: &[&str]) -> Output {
        // A bound beyond etcdctl's own, should it hang outside its command (a dial it retries).
        let outer = (timeout.as_secs() + 10).to_string();
        Command::new("timeout")
            .args(["-k", "2", &outer, "ip", "netns", "exec", ns, "etcdctl", DIAL_TIMEOUT])
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg(format!("--command-timeout={}ms", timeout.as_millis()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The keys under `prefix` and their values, in key order, read through the running members
    /// (from member 0's namespace, as [`Etcd::etcdctl`]).
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let o = self.etcdctl(&["get", "--prefix", prefix, "-w", "json"]);
        assert!(o.status.success(), "etcdctl get --prefix {prefix}: {}", String::from_utf8_lossy(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // etcdctl's JSON is the gRPC RangeResponse: keys and values are bytes, so base64; `kvs` is
        // absent when nothing matched.
        let b64 = |v: &serde_json::Value| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
            String::from_utf8(bytes).unwrap()
        };
        j["kvs"]
            .as_array()
            .map(|kvs| kvs.iter().map(|kv| (b64(&kv["key"]), b64(&kv["value"]))).collect())
            .unwrap_or_default()
    }

    /// What member `i` logged, over all its runs.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// The last 30 lines of each member's log, for a failure message.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- {} ({})\n", m.name, self.log_path(i).display()));
            for l in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_some() {
                self.kill(i);
            }
        }
        // The logs stay when the test fails, for reading; the data goes either way (on tmpfs it is memory).
        let failed = std::thread::panicking();
        for i in 0..self.members.len() {
            let _ = std::fs::remove_dir_all(self.data_dir(i));
            if !failed {
                let _ = std::fs::remove_file(self.log_path(i));
            }
        }
        if failed {
            eprintln!("etcd logs kept in {}", self.dir.display());
        } else {
            // Only when empty: the directory is the caller's, and may hold more.
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}
