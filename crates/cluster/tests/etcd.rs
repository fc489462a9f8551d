//! The cluster against a real etcd (one member on loopback, started by each test): leases are
//! never lent twice, follow their identity from node to node, go with a dead node's TTL and not
//! before; the directory replaces an identity's SAs across nodes; secrets are the same on every
//! node; load steers redirects; etcd going away refuses new work and coming back heals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

#[path = "../../oxswan/tests/common/prereq.rs"]
mod prereq;

use std::collections::HashSet;
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxswan_cluster::{Cluster, ClusterError, ClusterEvent, SaEntry, Settings};
use oxswan_pool::AddrRange;

struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
    /// With TLS: the server's certificate and key files, and the CA clients must be issued by.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// A port no other test of this run takes: tests run in parallel, and a port probed free can be
/// probed free by another test before either etcd binds it.
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    loop {
        let base = 30_000 + (std::process::id() % 500) as u16 * 40;
        let port = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 40;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Etcd {
    fn start(name: &str) -> Self {
        prereq::require(&[&prereq::ETCD]);
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("oxswan-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut e = Etcd { child: None, dir, client: free_port(), peer: free_port(), tls: None };
        e.run();
        e
    }

    /// etcd serving TLS with a certificate of `ca`, asking clients for a certificate of it too.
    fn start_tls(name: &str, ca: &oxswan_pki::Ca, ca_pem: &str, ctl: &oxswan_pki::Issued) -> Self {
        prereq::require(&[&prereq::ETCD]);
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("oxswan-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let server = ca.issue_server("127.0.0.1", &[], oxswan_pki::KeyKind::EcdsaP256, now).unwrap();
        let files = (dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem"));
        std::fs::write(&files.0, &server.cert_pem).unwrap();
        std::fs::write(&files.1, server.key_pem.as_bytes()).unwrap();
        std::fs::write(&files.2, ca_pem).unwrap();
        std::fs::write(dir.join("ctl.pem"), &ctl.cert_pem).unwrap();
        std::fs::write(dir.join("ctl.key"), ctl.key_pem.as_bytes()).unwrap();
        let mut e = Etcd { child: None, dir, client: free_port(), peer: free_port(), tls: Some(files) };
        e.run();
        e
    }

    fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    /// etcdctl's arguments for this server: its endpoint, and with TLS its CA and a client
    /// certificate.
    fn ctl_args(&self) -> Vec<String> {
        let mut a = vec!["--endpoints".to_owned(), self.endpoint()];
        if let Some((_, _, ca)) = &self.tls {
            let d = self.dir.display();
            a.extend([
                format!("--cacert={}", ca.display()),
                format!("--cert={d}/ctl.pem"),
                format!("--key={d}/ctl.key"),
            ]);
        }
        a
    }

    fn run(&mut self) {
        let p = self.peer;
        let log = std::fs::File::create(self.dir.join("etcd.log")).unwrap();
        let url = self.endpoint();
        let tls: Vec<String> = match &self.tls {
            Some((cert, key, ca)) => vec![
                format!("--cert-file={}", cert.display()),
                format!("--key-file={}", key.display()),
                format!("--trusted-ca-file={}", ca.display()),
                "--client-cert-auth".to_owned(),
            ],
            None => Vec::new(),
        };
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(&tls)
            .args([
                &format!("--listen-client-urls={url}"),
                &format!("--advertise-client-urls={url}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{p}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{p}"),
                &format!("--initial-cluster=t=http://127.0.0.1:{p}"),
                "--heartbeat-interval=100",
                "--election-timeout=500",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        loop {
            let health = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(self.ctl_args())
                .args(["--command-timeout=1s", "endpoint", "health"])
                .output()
                .unwrap();
            if health.status.success() {
                break;
            }
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!("etcd exited ({status}): {}", self.log());
            }
            assert!(t.elapsed() < Duration::from_secs(20), "etcd is not healthy: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    /// etcdctl with these arguments; its output, which must say it succeeded.
    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl").env("ETCDCTL_API", "3").args(self.ctl_args()).args(args).output().unwrap();
        assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Keys under `prefix`, through etcdctl (a second opinion on what the crate wrote).
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(self.ctl_args())
            .args(["get", "--prefix", "--keys-only", prefix])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings(etcd: &Etcd, node: &str) -> Settings {
    Settings {
        endpoints: vec![etcd.endpoint()],
        node: node.into(),
        ttl: Duration::from_secs(2),
        prefix: "/t".into(),
        address: Some(format!("{node}.example")),
        redirect_above: None,
        tls: None,
    }
}

fn pool() -> AddrRange {
    AddrRange::parse("10.3.0.0/25").unwrap()
}

fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn entry(identity: &str, spi: u64) -> SaEntry {
    SaEntry {
        node: String::new(),
        identity: identity.into(),
        conn: "rw".into(),
        spi_i: spi,
        spi_r: spi + 1,
        remote: "198.51.100.7:4500".parse().unwrap(),
        vips: vec![],
        replaced_by: None,
    }
}

#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn three_nodes_allocating_at_once_never_lend_an_address_twice() {
    let etcd = Etcd::start("race");
    let nodes: Vec<Cluster> = ["a", "b", "c"].iter().map(|n| Cluster::join(settings(&etcd, n)).unwrap()).collect();
    let numbers: HashSet<u8> = nodes.iter().map(Cluster::number).collect();
    assert_eq!(numbers, HashSet::from([1, 2, 3]), "each node its own number");
    // 3 × 40 identities from a pool of 126 (a /25 without its network and broadcast addresses),
    // all at once; then 3 × 4 more, of which 6 find one.
    let size = usize::try_from(pool().size()).unwrap();
    assert_eq!(size, 126);
    let results: Vec<Vec<(String, Result<IpAddr, ClusterError>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                s.spawn(move || {
                    (0..40)
                        .map(|k| format!("user{i}-{k}"))
                        .map(|o| (o.clone(), n.acquire("p", &pool(), &o, None).map(|g| g.addr)))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = HashSet::new();
    for (owner, r) in results.iter().flatten() {
        let a = r.as_ref().unwrap_or_else(|e| panic!("{owner}: {e}"));
        assert!(seen.insert(*a), "{a} lent twice");
        assert!(pool().contains(*a));
    }
    assert_eq!(seen.len(), 120);
    let more: Vec<_> =
        (0..12).map(|k| nodes[k % 3].acquire("p", &pool(), &format!("late{k}"), None).map(|g| g.addr)).collect();
    let (ok, full): (Vec<_>, Vec<_>) = more.iter().partition(|r| r.is_ok());
    assert_eq!(ok.len(), size - 120, "{more:?}");
    assert!(full.iter().all(|r| matches!(r, Err(ClusterError::Exhausted(_)))), "{more:?}");
    for r in ok {
        assert!(seen.insert(*r.as_ref().unwrap()), "lent twice");
    }
    // What etcd holds agrees: one ip key and one owner key per lease.
    assert_eq!(etcd.keys("/t/leases/p/ip/").len(), size);
    assert_eq!(etcd.keys("/t/leases/p/owner/").len(), size);
    let writes: u64 = nodes.iter().map(Cluster::writes).sum();
    // One transaction per address, plus those lost in races and each node's record: print it, it
    // is a figure of the note; bound it loosely only against a runaway retry loop.
    println!("etcd writes for {size} leases by 3 nodes at once: {writes}");
    assert!(writes < 126 * 3, "{writes} writes");
}

#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn an_identity_keeps_its_address_from_node_to_node_and_the_old_node_is_told() {
    let etcd = Etcd::start("move");
    let (a, b) = (Cluster::join(settings(&etcd, "a")).unwrap(), Cluster::join(settings(&etcd, "b")).unwrap());
    let first = a.acquire("p", &pool(), "carol", None).unwrap();
    // A second SA of carol on a shares it, and costs no write.
    let w = a.writes();
    assert_eq!(a.acquire("p", &pool(), "carol", None).unwrap(), first, "the same holding");
    assert_eq!(a.writes(), w);
    // carol comes back on b (a died, or she moved): same address, and a hears of it.
    let writes_before = b.writes();
    let on_b = b.acquire("p", &pool(), "carol", Some("10.3.0.99".parse().unwrap())).unwrap();
    assert_eq!(on_b.addr, first.addr);
    assert_eq!(b.writes() - writes_before, 1, "a takeover is one transaction");
    let mut got = None;
    assert!(until(5, || {
        got = a.poll_event();
        got.is_some()
    }));
    assert_eq!(
        got,
        Some(ClusterEvent::LeaseTaken {
            pool: "p".into(),
            addr: first.addr,
            owner: "carol".into(),
            by: "b".into(),
            holding: first.holding
        })
    );
    assert_eq!(a.status().leases_held, 0);
    // a's SAs of carol go; their releases must not free b's lease.
    a.release("p", first, "carol");
    a.release("p", first, "carol");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(etcd.keys("/t/leases/p/ip/").len(), 1);
    // b's last SA of carol goes: the lease is freed.
    b.release("p", on_b, "carol");
    assert!(until(5, || etcd.keys("/t/leases/").is_empty()), "{:?}", etcd.keys("/t/"));
}

#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn a_dead_nodes_leases_are_freed_after_its_ttl_and_not_before() {
    let etcd = Etcd::start("ttl");
    let (a, b) = (Cluster::join(settings(&etcd, "a")).unwrap(), Cluster::join(settings(&etcd, "b")).unwrap());
    let tiny = AddrRange::parse("10.3.0.1-10.3.0.1").unwrap();
    let addr = a.acquire("tiny", &tiny, "dave", None).unwrap().addr;
    assert!(until(5, || b.nodes().len() == 2));
    let died = Instant::now();
    a.crash();
    // While a may still be alive the address stays taken.
    assert!(matches!(b.acquire("tiny", &tiny, "erin", None), Err(ClusterError::Exhausted(_))));
    let mut freed = None;
    assert!(until(10, || match b.acquire("tiny", &tiny, "erin", None) {
        Ok(x) => {
            freed = Some(x.addr);
            true
        }
        Err(_) => false,
    }));
    let after = died.elapsed();
    assert_eq!(freed, Some(addr));
    println!("a dead node's lease freed after {after:?} (TTL 2 s)");
    assert!(after >= Duration::from_secs(1), "freed after {after:?}, before the TTL could run out");
    assert!(until(5, || b.nodes().iter().all(|n| n.node == "b")), "{:?}", b.nodes());
}

#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn the_directory_replaces_an_identitys_sa_on_another_node() {
    let etcd = Etcd::start("dir");
    let (a, b) = (Cluster::join(settings(&etcd, "a")).unwrap(), Cluster::join(settings(&etcd, "b")).unwrap());
    a.sa_up(SaEntry { node: "a".into(), ..entry("frank", 10) }, false);
    a.sa_up(SaEntry { node: "a".into(), ..entry("grace", 20) }, false);
    assert!(until(5, || etcd.keys("/t/sas/").len() == 2));
    // frank comes back on b without replacing (unique = no): a keeps its SA.
    b.sa_up(SaEntry { node: "b".into(), ..entry("frank", 30) }, false);
    assert!(until(5, || etcd.keys("/t/sas/").len() == 3));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.poll_event(), None);
    // Again with INITIAL_CONTACT: a is told to close its SA of frank, not grace's.
    b.sa_up(SaEntry { node: "b".into(), ..entry("frank", 40) }, true);
    let mut got = None;
    assert!(until(5, || {
        got = a.poll_event();
        got.is_some()
    }));
    assert_eq!(got, Some(ClusterEvent::SaReplaced { identity: "frank".into(), spi_i: 10, spi_r: 11, by: "b".into() }));
    assert_eq!(a.status().sas_listed, 1);
    // a deletes its replaced entry itself: no SA of a's is listed under it any more.
    assert!(
        until(5, || !etcd.keys("/t/sas/").iter().any(|k| k.ends_with("/a/000000000000000a000000000000000b"))),
        "{:?}",
        etcd.keys("/t/sas/")
    );
    // Rekey moves an entry; down removes it.
    b.sa_rekeyed((40, 41), (50, 51));
    b.sa_down(30, 31);
    a.sa_down(20, 21);
    assert!(
        until(5, || {
            let k = etcd.keys("/t/sas/");
            k.len() == 1 && k.iter().any(|k| k.ends_with("00000000000000320000000000000033"))
        }),
        "{:?}",
        etcd.keys("/t/sas/")
    );
}

#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn secrets_are_the_clusters_and_load_steers_redirects() {
    let etcd = Etcd::start("secrets");
    let a = Cluster::join(Settings { redirect_above: Some(3), ..settings(&etcd, "a") }).unwrap();
    let b = Cluster::join(settings(&etcd, "b")).unwrap();
    let sa = a.secret("ticket", 7, Duration::from_secs(60), &[1; 32]).unwrap();
    let sb = b.secret("ticket", 7, Duration::from_secs(60), &[2; 32]).unwrap();
    assert_eq!(*sa, [1; 32]);
    assert_eq!(*sb, [1; 32], "the first node's secret is the cluster's");
    assert_eq!(*b.secret("ticket", 8, Duration::from_secs(60), &[3; 32]).unwrap(), [3; 32]);
    assert_eq!(*a.secret("cookie", 7, Duration::from_secs(60), &[4; 32]).unwrap(), [4; 32]);
    // Below its threshold a keeps its clients.
    a.publish_load(2);
    b.publish_load(1);
    assert!(until(5, || a.nodes().iter().any(|n| n.node == "b" && n.ike_sas == 1)));
    assert_eq!(a.redirect_target(), None);
    a.publish_load(3);
    assert_eq!(a.redirect_target().as_deref(), Some("b.example"));
    // b has no threshold: it never redirects.
    b.publish_load(10);
    assert!(until(5, || a.nodes().iter().any(|n| n.node == "b" && n.ike_sas == 10)));
    assert_eq!(a.redirect_target(), None, "b is as loaded as a now");
    assert_eq!(b.redirect_target(), None);
}

#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn without_etcd_new_leases_are_refused_at_once_and_it_heals() {
    let mut etcd = Etcd::start("down");
    let a = Cluster::join(settings(&etcd, "a")).unwrap();
    let held = a.acquire("p", &pool(), "heidi", None).unwrap();
    etcd.stop();
    let t = Instant::now();
    let r = a.acquire("p", &pool(), "ivan", None);
    assert!(matches!(r, Err(ClusterError::Timeout(_) | ClusterError::Etcd(_) | ClusterError::Unavailable(_))), "{r:?}");
    println!("first refusal after {:?}", t.elapsed());
    // Once the lease is known not renewed, refusals are immediate.
    assert!(until(5, || !a.healthy()));
    let t = Instant::now();
    assert!(matches!(a.acquire("p", &pool(), "judy", None), Err(ClusterError::Unavailable(_))));
    assert!(t.elapsed() < Duration::from_millis(100), "{:?}", t.elapsed());
    // An SA already holding its lease still gets it (no etcd needed).
    assert_eq!(a.acquire("p", &pool(), "heidi", None).unwrap(), held);
    // etcd comes back (same data): the lease may have run out meanwhile; either way the node heals
    // and its lease is in etcd again.
    etcd.run();
    assert!(until(15, || a.healthy()), "{}", etcd.log());
    assert!(until(10, || a.acquire("p", &pool(), "ivan", None).is_ok()));
    assert!(until(5, || etcd.keys("/t/leases/p/ip/").len() == 2), "{:?} status {:?}", etcd.keys("/t/"), a.status());
}

/// An SA whose address another node took over is still going (its DELETE waits for the peer)
/// when the identity comes back here and takes the address back for a new SA: the old SA's
/// release, when it ends, frees nothing of the new holding.
#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn a_release_from_an_ended_holding_frees_nothing_of_the_next() {
    let etcd = Etcd::start("holding");
    let (a, b) = (Cluster::join(settings(&etcd, "a")).unwrap(), Cluster::join(settings(&etcd, "b")).unwrap());
    let old = a.acquire("p", &pool(), "nina", None).unwrap();
    let on_b = b.acquire("p", &pool(), "nina", None).unwrap();
    assert_eq!(on_b.addr, old.addr);
    assert!(until(5, || matches!(a.poll_event(), Some(ClusterEvent::LeaseTaken { .. }))));
    let again = a.acquire("p", &pool(), "nina", None).unwrap();
    assert_eq!(again.addr, old.addr, "taken back");
    assert_ne!(again.holding, old.holding, "a new holding");
    a.release("p", old, "nina");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a.status().leases_held, 1, "{:?}", a.status());
    assert_eq!(etcd.keys("/t/leases/p/ip/"), vec![format!("/t/leases/p/ip/{}", old.addr)]);
    // b's own SA of nina ends too: it no longer holds her address, so nothing of a's goes.
    b.release("p", on_b, "nina");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(etcd.keys("/t/leases/p/ip/").len(), 1);
    a.release("p", again, "nina");
    assert!(until(5, || etcd.keys("/t/leases/").is_empty()), "{:?}", etcd.keys("/t/"));
}

/// The node's etcd lease revoked under it, as etcd does when a node was cut off for longer than its
/// TTL: the keys on it vanish. The node takes a new lease and writes back every address it lends,
/// over a key of its own an earlier write-back left (not on a lease: it must end up on the new
/// one), and gives up one another node took meanwhile; then it serves new clients again, with
/// neither of those addresses.
#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn a_revoked_lease_is_written_back_and_the_node_serves_again() {
    let _ = tracing_subscriber::fmt().with_env_filter("cluster=debug").with_test_writer().try_init();
    let etcd = Etcd::start("revoke");
    let a = Cluster::join(settings(&etcd, "a")).unwrap();
    let kim = a.acquire("p", &pool(), "kim", None).unwrap().addr;
    let leo = a.acquire("p", &pool(), "leo", None).unwrap().addr;
    let owner = |who: &str| format!("/t/leases/p/owner/{}", hex::encode(who));
    let ip = |addr: IpAddr| format!("/t/leases/p/ip/{addr}");
    // Written again without a lease, these keys outlive the revocation: kim's owner key as a's own
    // (what a write-back cut off part way leaves), leo's pair as node b's.
    let kim_value = etcd.ctl(&["get", &owner("kim"), "--print-value-only"]);
    assert!(kim_value.contains("\"node\":\"a\""), "{kim_value}");
    etcd.ctl(&["put", &owner("kim"), &kim_value]);
    let leo_value = etcd.ctl(&["get", &owner("leo"), "--print-value-only"]).replace("\"node\":\"a\"", "\"node\":\"b\"");
    etcd.ctl(&["put", &owner("leo"), &leo_value]);
    etcd.ctl(&["put", &ip(leo), &leo_value]);
    let old = a.status().lease;
    etcd.ctl(&["lease", "revoke", &old]);
    assert!(until(10, || a.status().lease_renewals == 1 && a.healthy()), "{:?}", a.status());
    assert_ne!(a.status().lease, old);
    let mut taken = Vec::new();
    while let Some(e) = a.poll_event() {
        taken.push(e);
    }
    assert!(
        taken
            .iter()
            .any(|e| matches!(e, ClusterEvent::LeaseTaken { owner, addr, .. } if owner == "leo" && *addr == leo)),
        "{taken:?}"
    );
    assert_eq!(a.status().leases_held, 1, "kim's only: {:?}", a.status());
    let mut keys = etcd.keys("/t/leases/");
    keys.sort();
    let mut want = vec![owner("kim"), owner("leo"), ip(kim), ip(leo)];
    want.sort();
    assert_eq!(keys, want);
    // kim's keys are on a's new lease: they go with it, b's stay.
    let lease_of = |key: &str| {
        let json = etcd.ctl(&["get", key, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["kvs"][0]["lease"].as_i64().unwrap_or(0)
    };
    let new = i64::from_str_radix(&a.status().lease, 16).unwrap();
    assert_eq!(lease_of(&owner("kim")), new);
    assert_eq!(lease_of(&ip(kim)), new);
    assert_eq!(lease_of(&owner("leo")), 0);
    let max = a.acquire("p", &pool(), "max", None).unwrap().addr;
    assert!(max != kim && max != leo, "{max}");
    assert_eq!(a.acquire("p", &pool(), "kim", None).unwrap().addr, kim, "kim still holds hers");
}

/// TLS to etcd, with etcd asking for a client certificate: a node with a certificate of the CA
/// joins and allocates; one without is refused at the handshake and says so.
#[test]
#[cfg_attr(not(have_etcd), ignore = "needs etcd, etcdctl")]
fn tls_with_a_client_certificate() {
    let now = time::OffsetDateTime::now_utc();
    let (ca, ca_cert) = oxswan_pki::Ca::generate("etcd test CA", oxswan_pki::KeyKind::EcdsaP256, now).unwrap();
    // etcdctl's own certificate, for the health check and the key listing.
    let ctl = ca.issue_client("etcdctl", oxswan_pki::KeyKind::EcdsaP256, now).unwrap();
    let etcd = Etcd::start_tls("tls", &ca, &ca_cert.cert_pem, &ctl);
    assert!(etcd.endpoint().starts_with("https://"));
    let node = ca.issue_client("gw1.cluster.test", oxswan_pki::KeyKind::EcdsaP256, now).unwrap();
    let tls = oxswan_cluster::Tls {
        ca: Some(ca_cert.cert_pem.clone().into_bytes()),
        identity: Some((node.cert_pem.clone().into_bytes(), zeroize::Zeroizing::new(node.key_pem.as_bytes().to_vec()))),
    };
    let a = Cluster::join(Settings { tls: Some(tls.clone()), ..settings(&etcd, "a") }).unwrap();
    let addr = a.acquire("p", &pool(), "kate", None).unwrap().addr;
    assert_eq!(etcd.keys("/t/leases/p/ip/"), vec![format!("/t/leases/p/ip/{addr}")]);
    // Without a client certificate: refused.
    let anonymous = oxswan_cluster::Tls { identity: None, ..tls };
    let err = Cluster::join(Settings { tls: Some(anonymous), ..settings(&etcd, "b") }).unwrap_err();
    println!("without a client certificate: {err}");
    // Without TLS at all, against a TLS server: refused.
    assert!(
        Cluster::join(Settings {
            tls: None,
            endpoints: vec![etcd.endpoint().replace("https", "http")],
            ..settings(&etcd, "c")
        })
        .is_err()
    );
}
