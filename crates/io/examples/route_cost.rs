//! What a route costs the daemon: N routes put through a device and removed again, by rtnetlink
//! (`oxswan_io::route`, what the daemon does per CHILD SA) and by starting `ip` per route (what it
//! did before), side by side in one run. Needs root; run it in a namespace of its own, e.g.
//! `ip netns add rc && ip netns exec rc cargo run --release -p oxswan-io --example route_cost -- 1000`
//! (routes go through `lo`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Instant;

fn main() {
    let n: u32 = std::env::args().nth(1).map_or(1000, |a| a.parse().expect("a number of routes"));
    let _ = Command::new("ip").args(["link", "set", "lo", "up"]).status();
    let cidrs: Vec<String> = (0..n).map(|i| format!("10.{}.{}.0/24", 100 + i / 256, i % 256)).collect();

    let t = Instant::now();
    for c in &cidrs {
        oxswan_io::route::replace(c, "lo", None).unwrap();
    }
    for c in &cidrs {
        oxswan_io::route::delete(c, "lo").unwrap();
    }
    let netlink = t.elapsed();

    let t = Instant::now();
    for c in &cidrs {
        assert!(Command::new("ip").args(["route", "replace", c, "dev", "lo"]).status().unwrap().success());
    }
    for c in &cidrs {
        assert!(Command::new("ip").args(["route", "del", c, "dev", "lo"]).status().unwrap().success());
    }
    let ip = t.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / f64::from(2 * n);
    println!("{n} routes added and removed:");
    println!("  rtnetlink (oxswan)   {:>8.1} µs per change", per(netlink));
    println!("  ip route (a process) {:>8.1} µs per change", per(ip));
    println!("  ratio                {:>8.1}×", per(ip) / per(netlink));
}
