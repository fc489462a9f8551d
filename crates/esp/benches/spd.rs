#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! The outbound SPD lookup on one core with 1, 100 and 10,000 installed pairs, each with a /32 remote
//! selector (a road-warrior gateway: one virtual address per client), next to the backwards scan over
//! every pair that the data plane did before, in the same run. The SPD's figure should not move with
//! the number of pairs; the scan's grows with it. Then the cost of installing 10,000 pairs one after
//! another, each into a new snapshot made from the previous one (what the data plane publishes),
//! next to snapshots that copy a plain map and list each time.
//!
//! With 10,000 pairs, lookups spread over all of them miss the caches (each touches a hash bucket, an
//! entry and the pair's flag, in tables larger than a core's L2), which the "one flow" column leaves
//! out.
//!
//! Run with `cargo bench -p oxswan-esp --bench spd`; about 10 seconds.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oxswan_esp::{PacketInfo, Selectors, Spd};
use oxswan_wire::ts::TrafficSelector;

const TARGET: Duration = Duration::from_millis(500);

/// What the data plane keeps per pair, as far as the lookup is concerned.
struct Child {
    selectors: Selectors,
    outbound: AtomicBool,
}

/// The client addresses: 100.64.0.0/10, one per pair.
fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x6440_0000 + i)
}

fn selectors(i: u32) -> Selectors {
    let ts = |a: Ipv4Addr, len| TrafficSelector::from_prefix(IpAddr::V4(a), len, 0, 0, u16::MAX).unwrap();
    Selectors { local: vec![ts(Ipv4Addr::new(10, 0, 0, 0), 16)], remote: vec![ts(client(i), 32)] }
}

/// Packets from the local subnet to the installed clients, in a fixed pseudo-random order.
fn packets(n: u32) -> Vec<PacketInfo> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            PacketInfo {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
                dst: IpAddr::V4(client((x % u64::from(n)) as u32)),
                protocol: 6,
                ports: Some((40000, 443)),
            }
        })
        .collect()
}

/// ns per call of `op` over `packets`, repeated for TARGET.
fn ns_per_packet(packets: &[PacketInfo], mut op: impl FnMut(&PacketInfo) -> bool) -> f64 {
    let mut found = 0usize;
    for p in packets.iter().take(64) {
        found += usize::from(op(p));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < TARGET {
        for p in packets {
            found += usize::from(op(black_box(p)));
        }
        n += packets.len() as u64;
    }
    let ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
    assert!(found > 0);
    ns
}

fn main() {
    println!("Outbound lookup, ns/packet on one core, /32 remote selectors, packets spread over all pairs;");
    println!("ref = backwards scan over all pairs; ratio = spd / ref; one flow = the SPD with one destination");
    println!("{:>8} {:>10} {:>12} {:>10} {:>10}", "pairs", "spd", "ref", "ratio", "one flow");
    for n in [1u32, 100, 10_000] {
        let mut spd = Spd::new();
        let mut list = Vec::new();
        for i in 0..n {
            let c = Arc::new(Child { selectors: selectors(i), outbound: AtomicBool::new(true) });
            spd.insert(i, &c.selectors, c.clone()).unwrap();
            list.push(c);
        }
        let pkts = packets(n);
        // Both must agree on every packet before they are timed.
        for p in &pkts {
            let a = spd.lookup(p, |c| c.outbound.load(Ordering::Relaxed));
            let b = list.iter().rev().find(|c| c.outbound.load(Ordering::Relaxed) && c.selectors.allows_outbound(p));
            assert!(a.is_some() && Arc::ptr_eq(a.unwrap(), b.unwrap()));
        }
        let ours = ns_per_packet(&pkts, |p| black_box(spd.lookup(p, |c| c.outbound.load(Ordering::Relaxed))).is_some());
        let reference = ns_per_packet(&pkts, |p| {
            black_box(list.iter().rev().find(|c| c.outbound.load(Ordering::Relaxed) && c.selectors.allows_outbound(p)))
                .is_some()
        });
        // The same lookup for one flow (what a TCP super-packet's segments ask): everything it touches
        // stays in cache, so this is the lookup's own work, without the memory the spread costs.
        let one = vec![pkts[0]; pkts.len()];
        let flow = ns_per_packet(&one, |p| black_box(spd.lookup(p, |c| c.outbound.load(Ordering::Relaxed))).is_some());
        println!("{n:>8} {ours:>10.1} {reference:>12.1} {:>10.4} {flow:>10.1}", ours / reference);
    }

    // Installing 10,000 pairs one after another, each publishing a snapshot: the SPD's copy on write
    // against a snapshot that copies a map by SPI and the install-order list every time.
    const N: u32 = 10_000;
    let children: Vec<Arc<Child>> =
        (0..N).map(|i| Arc::new(Child { selectors: selectors(i), outbound: AtomicBool::new(true) })).collect();
    let start = Instant::now();
    let mut published = Arc::new(Spd::new());
    for (i, c) in (0..N).zip(&children) {
        let mut next = (*published).clone();
        next.insert(i, &c.selectors, c.clone()).unwrap();
        published = Arc::new(next);
    }
    let ours = start.elapsed();
    assert_eq!(published.len(), N as usize);
    let start = Instant::now();
    let mut published = Arc::new((HashMap::new(), Vec::new()));
    for (i, c) in (0..N).zip(&children) {
        let (mut by_spi, mut list): (HashMap<u32, Arc<Child>>, Vec<Arc<Child>>) = (*published).clone();
        by_spi.insert(i, c.clone());
        list.push(c.clone());
        published = Arc::new((by_spi, list));
    }
    let reference = start.elapsed();
    assert_eq!(published.0.len(), N as usize);
    println!(
        "install {N} one after another, a snapshot each: spd {:.1} ms ({:.2} µs/pair), ref full copies {:.1} ms, ratio {:.3}",
        ours.as_secs_f64() * 1e3,
        ours.as_secs_f64() * 1e6 / f64::from(N),
        reference.as_secs_f64() * 1e3,
        ours.as_secs_f64() / reference.as_secs_f64()
    );
}
