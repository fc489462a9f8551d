//! The etcd harness itself (tests/common/etcd.rs), before the cluster tests lean on it: a real
//! three-member cluster in network namespaces on a flat test network serves a write through one member
//! and a read through another, keeps going with two members (a majority), refuses writes with one,
//! and has them back, with what was written before, once the members return; a member cut off the
//! network loses quorum while the other two keep it, and catches up when mended.
//!
//! Topology: hosts `P-e0`..`P-e2` (10.9.0.1..3/16) on the bridge of `P-sw`. Needs root, iproute2 and
//! etcd 3.4 (`bash .ci/run` installs them); elsewhere the test says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::etcd::{Etcd, Net, scratch_dir};
use common::*;

const P: &str = "etch";
const MEMBERS: [(&str, &str); 3] = [("e0", "10.9.0.1"), ("e1", "10.9.0.2"), ("e2", "10.9.0.3")];

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Puts `key` through member `via` (every running member when `None`), 2 s a try, trying again until
/// `within`: etcdctl does not retry a put, and one that meets a leader election fails though the
/// cluster has quorum (a follower forwarded it to the dead leader, and it waits out its timeout; or
/// "leader changed"). Returns how long it took.
fn put_within(etcd: &Etcd, via: Option<usize>, key: &str, value: &str, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let endpoints = match via {
            Some(i) => vec![etcd.endpoint(i)],
            None => etcd.live().into_iter().map(|i| etcd.endpoint(i)).collect(),
        };
        let ns = etcd.ns(via.unwrap_or(0));
        let o = etcd.etcdctl_from(ns, &endpoints, Duration::from_secs(2), &["put", key, value]);
        if o.status.success() {
            return t.elapsed();
        }
        assert!(t.elapsed() < within, "put {key} not through within {within:?}: {}\n{}", text(&o), etcd.log_tails());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of `key` read (linearizably, etcdctl's default) through member `i`.
fn get_via(etcd: &Etcd, i: usize, key: &str) -> String {
    let o = etcd.etcdctl_via(i, &["get", "--print-value-only", key]);
    assert!(o.status.success(), "get {key} via member {i}: {}\n{}", text(&o), etcd.log_tails());
    String::from_utf8_lossy(&o.stdout).trim_end().to_owned()
}

/// A put through member `i` alone with a 2 s command timeout.
fn put_2s(etcd: &Etcd, i: usize, key: &str, value: &str) -> std::process::Output {
    etcd.etcdctl_from(etcd.ns(i), &[etcd.endpoint(i)], Duration::from_secs(2), &["put", key, value])
}

#[test]
#[cfg_attr(not(all(have_netns, have_etcd)), ignore = "needs root with ip, ping, iperf3, etcd")]
fn a_three_member_cluster_writes_with_a_majority_and_refuses_without() {
    require(&[&NETNS, &ETCD]);
    // Declared before the cluster, so that the cluster drops first.
    let mut net = Net::new(P);
    for (host, ip) in MEMBERS {
        net.host(host, &[&format!("{ip}/16")]);
    }
    let dir = scratch_dir(P);

    let t = Instant::now();
    let mut etcd = Etcd::start(&net, &dir, &MEMBERS);
    println!("phase 1, 3 members healthy: {:?}", t.elapsed());
    assert_eq!(etcd.endpoints(), ["http://10.9.0.1:2379", "http://10.9.0.2:2379", "http://10.9.0.3:2379"]);

    // Written through member 0, read through member 2: one store, not three.
    let t = Instant::now();
    put_within(&etcd, Some(0), "harness/k1", "v1", Duration::from_secs(5));
    assert_eq!(get_via(&etcd, 2, "harness/k1"), "v1");
    println!("phase 2, put via e0 and get via e2: {:?}", t.elapsed());

    // Two of three are a majority: writes and reads go on without member 1 (perhaps the leader, so
    // the first put may wait for an election).
    let t = Instant::now();
    etcd.kill(1);
    let took = put_within(&etcd, None, "harness/k2", "v2", Duration::from_secs(10));
    assert_eq!(get_via(&etcd, 2, "harness/k2"), "v2");
    assert_eq!(get_via(&etcd, 0, "harness/k1"), "v1");
    assert!(etcd.has_quorum());
    println!("phase 3, e1 killed, write and read with 2 of 3: {:?} (the put took {took:?})", t.elapsed());

    // One of three is not: a write cannot commit. (Whether this put commits later, once the members
    // are back, is unknown to its client as to any timed-out write, so it is not looked for.)
    let t = Instant::now();
    etcd.kill(2);
    let o = put_2s(&etcd, 0, "harness/lost", "x");
    assert!(!o.status.success(), "a write with 1 of 3 members succeeded: {}", text(&o));
    assert!(!etcd.has_quorum());
    assert!(!etcd.healthy(0));
    let why = text(&o);
    println!("phase 4, e2 killed too, write refused: {:?} ({})", t.elapsed(), why.trim().lines().last().unwrap_or(""));

    // Back on their data directories, the two rejoin: writes work again and nothing written was lost,
    // including k2, which neither returning member saw written.
    let t = Instant::now();
    etcd.restart(1);
    etcd.restart(2);
    let took = put_within(&etcd, None, "harness/k3", "v3", Duration::from_secs(20));
    etcd.wait_healthy(Duration::from_secs(20));
    let kvs = etcd.get_prefix("harness/k");
    let want = [("harness/k1", "v1"), ("harness/k2", "v2"), ("harness/k3", "v3")];
    assert_eq!(kvs, want.map(|(k, v)| (k.to_owned(), v.to_owned())), "{}", etcd.log_tails());
    for i in [1, 2] {
        assert_eq!(get_via(&etcd, i, "harness/k2"), "v2", "member {i} after its restart");
    }
    // Each rejoined as the member its data directory holds, not as a new one.
    for i in [1, 2] {
        let log = etcd.log(i);
        let rerun = &log[log.rfind("--initial-cluster-state existing").unwrap()..];
        assert!(rerun.contains("restarting local member"), "member {i} did not reuse its data:\n{rerun}");
    }
    println!("phase 5, e1 and e2 restarted, write works again: {:?} (the put took {took:?})", t.elapsed());

    // A member cut off the network is a minority of one: writes through it fail while the other two
    // keep writing, and it catches up once mended.
    let t = Instant::now();
    net.cut("e0");
    let took = put_within(&etcd, Some(1), "harness/k4", "v4", Duration::from_secs(10));
    let o = put_2s(&etcd, 0, "harness/lost-too", "x");
    assert!(!o.status.success(), "a write through a member cut off succeeded: {}", text(&o));
    assert!(!etcd.healthy(0));
    assert!(etcd.has_quorum());
    net.mend("e0");
    etcd.wait_healthy(Duration::from_secs(20));
    assert_eq!(get_via(&etcd, 0, "harness/k4"), "v4");
    println!("phase 6, e0 cut off and mended: {:?} (the put via e1 took {took:?})", t.elapsed());
}
