//! Pools: leases by identity, references, exhaustion, grace times, requested addresses, IPv6, and the
//! parsing of ranges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use oxswan_pool::{Acquired, AddrRange, Family, Pool, PoolError, Pools};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(s: &str) -> AddrRange {
    AddrRange::parse(s).unwrap()
}

fn pool(s: &str, grace: Duration) -> Pool {
    Pool::new("rw", range(s), grace)
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn cidr_skips_the_network_and_the_last_address_as_strongswan() {
    let r = range("10.10.0.0/24");
    assert_eq!((r.first(), r.last(), r.size()), (ip("10.10.0.1"), ip("10.10.0.254"), 254));
    assert!(r.is_v4() && r.family() == Family::V4);
    assert!(r.contains(ip("10.10.0.1")) && r.contains(ip("10.10.0.254")));
    assert!(!r.contains(ip("10.10.0.0")) && !r.contains(ip("10.10.0.255")) && !r.contains(ip("::a0a:1")));
    // Written inside the subnet: from that address on.
    let r = range("10.10.0.100/24");
    assert_eq!((r.first(), r.last()), (ip("10.10.0.100"), ip("10.10.0.254")));
    // /30: two addresses; /31: both; written as the second, only it; /32: the one.
    assert_eq!(range("10.0.0.0/30"), AddrRange::parse("10.0.0.1-10.0.0.2").unwrap());
    assert_eq!(range("10.0.0.0/31").size(), 2);
    assert_eq!((range("10.0.0.1/31").first(), range("10.0.0.1/31").size()), (ip("10.0.0.1"), 1));
    assert_eq!(range("10.0.0.7/32"), range("10.0.0.7"));
    assert_eq!(range(" 10.0.0.7 ").size(), 1);
    // Big ones are numbers, not lists.
    assert_eq!(range("10.0.0.0/8").size(), (1 << 24) - 2);
    assert_eq!(range("0.0.0.0/0").size(), (1 << 32) - 2);
    assert_eq!(range("fd00::/64").size(), (1 << 64) - 2);
    assert_eq!(range("::/0").size(), u128::MAX - 1);
    assert_eq!(range("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").size(), u128::MAX, "2^128 saturates");
    // IPv6 alike (strongSwan skips the last address of an IPv6 subnet too).
    let r = range("fd10::/120");
    assert_eq!((r.first(), r.last(), r.size()), (ip("fd10::1"), ip("fd10::fe"), 254));
    assert!(!r.is_v4() && r.family() == Family::V6);
}

#[test]
fn ranges_and_display() {
    let r = range("10.10.0.10-10.10.0.200");
    assert_eq!((r.first(), r.last(), r.size()), (ip("10.10.0.10"), ip("10.10.0.200"), 191));
    assert_eq!(range(" 10.10.0.10 - 10.10.0.10 ").size(), 1);
    let r = range("fd10::10-fd10::20");
    assert_eq!(r.size(), 17);
    assert_eq!(r.to_string(), "fd10::10-fd10::20");
    assert_eq!(range("10.10.0.0/24").to_string(), "10.10.0.1-10.10.0.254");
    for s in ["10.10.0.0/24", "10.0.0.5", "fd10::/120", "fd10::10-fd10::20"] {
        assert_eq!(range(&range(s).to_string()), range(s), "{s}");
    }
    assert!(range("10.0.0.0/24").overlaps(&range("10.0.0.200-10.0.1.5")));
    assert!(!range("10.0.0.0/24").overlaps(&range("10.0.1.0/24")));
    assert!(!range("10.0.0.0/24").overlaps(&range("::/0")), "families never overlap");
    assert_eq!(AddrRange::from_ips(ip("10.0.0.2"), ip("10.0.0.1")), None);
}

#[test]
fn bad_ranges() {
    for (s, why) in [
        ("10.0.0.9-10.0.0.1", "`10.0.0.9-10.0.0.1`: the first address is after the last"),
        ("fd10::20-fd10::10", "the first address is after the last"),
        ("10.0.0.1-fd10::1", "`10.0.0.1-fd10::1`: mixes IPv4 and IPv6"),
        ("10.0.0.0/33", "`10.0.0.0/33`: prefix length `33`: 0 to 32"),
        ("fd10::/129", "prefix length `129`: 0 to 128"),
        ("10.0.0.0/", "prefix length ``"),
        ("10.0.0.0/+8", "prefix length `+8`"),
        ("10.0.0.0/-1", "prefix length `-1`"),
        ("10.0.0.0/24/8", "prefix length `24/8`"),
        ("10.0.0.0/0024", "prefix length `0024`"),
        ("10.0.0.255/24", "leaves no address"),
        ("moon", "`moon` is not an IP address"),
        ("10.0.0.1-", "`` is not an IP address"),
        ("-10.0.0.1", "`` is not an IP address"),
        ("10.0.0.1-10.0.0.2-10.0.0.3", "is not an IP address"),
        ("10.0.0.256/24", "`10.0.0.256` is not an IP address"),
        ("", "empty"),
        ("   ", "empty"),
    ] {
        match AddrRange::parse(s) {
            Err(PoolError::BadRange(m)) => assert!(m.contains(why), "{s}: {m}"),
            other => panic!("{s}: {other:?}"),
        }
    }
    let e = AddrRange::parse("10.0.0.9-10.0.0.1").unwrap_err();
    assert_eq!(e.to_string(), "bad address range `10.0.0.9-10.0.0.1`: the first address is after the last");
}

#[test]
fn the_same_identity_gets_the_same_address() {
    let t = Instant::now();
    let mut p = pool("10.10.0.0/24", HOUR);
    let a = p.acquire(b"alice", None, t).unwrap();
    let b = p.acquire(b"bob", None, t).unwrap();
    assert_eq!((a, b), (ip("10.10.0.1"), ip("10.10.0.2")), "in order, from the first");
    // A second IKE SA of alice's (Apple clients open several): the same address, two references.
    assert_eq!(p.acquire(b"alice", None, t).unwrap(), a);
    assert_eq!(p.lease(b"alice").unwrap().refs, 2);
    assert_eq!((p.online(), p.offline()), (2, 0));
    // Both go; the lease stays alice's.
    assert!(p.release(b"alice", a, t));
    assert_eq!((p.online(), p.offline()), (2, 0), "one reference left");
    assert!(p.release(b"alice", a, t + Duration::from_secs(1)));
    assert_eq!((p.online(), p.offline()), (1, 1));
    let l = p.lease(b"alice").unwrap();
    assert_eq!((l.addr, l.refs, l.offline_since), (a, 0, Some(t + Duration::from_secs(1))));
    assert!(!p.release(b"alice", a, t), "no reference left");
    // A new identity gets a fresh address, not alice's; alice comes back to hers, even after days.
    assert_eq!(p.acquire(b"carol", None, t).unwrap(), ip("10.10.0.3"));
    assert_eq!(p.acquire(b"alice", None, t + 100 * HOUR).unwrap(), a);
    assert_eq!((p.online(), p.offline()), (3, 0));
    assert_eq!(p.lease_at(a).unwrap().owner, b"alice");
    assert_eq!(p.fresh(), 251);
    let all: Vec<_> = p.leases().map(|l| (l.owner.to_vec(), l.addr, l.refs)).collect();
    assert_eq!(
        all,
        vec![(b"alice".to_vec(), a, 1), (b"bob".to_vec(), b, 1), (b"carol".to_vec(), ip("10.10.0.3"), 1)],
        "in address order"
    );
}

#[test]
fn release_checks_owner_and_address() {
    let t = Instant::now();
    let mut p = pool("10.10.0.0/24", HOUR);
    let a = p.acquire(b"alice", None, t).unwrap();
    assert!(!p.release(b"bob", a, t), "not bob's");
    assert!(!p.release(b"alice", ip("10.10.0.2"), t), "not alice's address");
    assert!(!p.release(b"alice", ip("192.0.2.1"), t), "not in the pool");
    assert!(!p.release(b"alice", ip("fd10::1"), t), "other family");
    assert_eq!(p.online(), 1);
    assert!(p.release(b"alice", a, t));
}

#[test]
fn exhaustion_and_grace() {
    let t = Instant::now();
    // A /30: two addresses.
    let mut p = pool("10.0.0.0/30", HOUR);
    let a = p.acquire(b"a", None, t).unwrap();
    let b = p.acquire(b"b", None, t).unwrap();
    assert_eq!((a, b), (ip("10.0.0.1"), ip("10.0.0.2")));
    assert_eq!(p.acquire(b"c", None, t), Err(PoolError::Exhausted { pool: "rw".into() }));
    assert_eq!(p.acquire(b"c", None, t).unwrap_err().to_string(), "pool rw: no address left");
    // Offline but within the grace time: still reserved.
    assert!(p.release(b"b", b, t));
    assert!(p.release(b"a", a, t + Duration::from_secs(10)));
    assert!(!p.has_free(t + HOUR - Duration::from_secs(1)));
    assert_eq!(
        p.acquire(b"c", None, t + HOUR - Duration::from_secs(1)),
        Err(PoolError::Exhausted { pool: "rw".into() })
    );
    // Once it passed: the oldest offline lease (b's, released first) goes to c.
    assert!(p.has_free(t + HOUR));
    assert_eq!(p.acquire(b"c", None, t + HOUR).unwrap(), b);
    assert!(p.lease(b"b").is_none(), "b lost it");
    assert_eq!(p.lease(b"c").unwrap().refs, 1);
    assert_eq!((p.online(), p.offline()), (1, 1));
    // a's grace time has not passed yet: d waits; b, now new, too.
    assert!(p.acquire(b"d", None, t + HOUR + Duration::from_secs(9)).is_err());
    assert_eq!(p.acquire(b"b", None, t + HOUR + Duration::from_secs(10)).unwrap(), a);
    assert_eq!((p.online(), p.offline()), (2, 0));
    // A time before the release never counts as past the grace time.
    let mut q = pool("10.0.0.1", Duration::ZERO);
    let x = q.acquire(b"x", None, t + HOUR).unwrap();
    assert!(q.release(b"x", x, t + HOUR));
    assert!(q.acquire(b"y", None, t).is_err());
    assert_eq!(q.acquire(b"y", None, t + HOUR).unwrap(), x, "no grace: at once");
}

#[test]
fn a_three_address_range() {
    let t = Instant::now();
    let mut p = Pool::new("three", range("192.168.5.10-192.168.5.12"), Duration::ZERO);
    let got: Vec<_> = [b"1", b"2", b"3"].iter().map(|o| p.acquire(*o, None, t).unwrap()).collect();
    assert_eq!(got, [ip("192.168.5.10"), ip("192.168.5.11"), ip("192.168.5.12")]);
    assert_eq!(p.fresh(), 0);
    assert_eq!(p.acquire(b"4", None, t), Err(PoolError::Exhausted { pool: "three".into() }));
    // Owners already in keep getting theirs.
    assert_eq!(p.acquire(b"2", None, t).unwrap(), ip("192.168.5.11"));
}

#[test]
fn requested_addresses() {
    let t = Instant::now();
    let mut p = pool("10.10.0.0/24", HOUR);
    let a = p.acquire(b"alice", None, t).unwrap();
    // Asking for someone else's address does not take it.
    let b = p.acquire(b"bob", Some(a), t).unwrap();
    assert_ne!(a, b);
    // Asking for a fresh one out of order does not pick it either.
    let c = p.acquire(b"carol", Some(ip("10.10.0.200")), t).unwrap();
    assert_eq!(c, ip("10.10.0.3"));
    // Asking for one's own: granted; for another while holding one: one's own.
    assert_eq!(p.acquire(b"alice", Some(a), t).unwrap(), a);
    assert_eq!(p.acquire(b"alice", Some(ip("10.10.0.100")), t).unwrap(), a);
    // "Any" (0.0.0.0, ::) is no request; the other family is an error.
    assert_eq!(p.acquire(b"dave", Some(ip("0.0.0.0")), t).unwrap(), ip("10.10.0.4"));
    assert_eq!(p.acquire(b"erin", Some(ip("::")), t).unwrap(), ip("10.10.0.5"));
    let e = p.acquire(b"frank", Some(ip("fd10::1")), t).unwrap_err();
    assert_eq!(e, PoolError::WrongFamily { addr: ip("fd10::1"), family: Family::V4 });
    assert_eq!(e.to_string(), "fd10::1 is not an IPv4 address");
}

#[test]
fn ipv6_pools() {
    let t = Instant::now();
    let mut p = Pool::new("rw6", range("fd10::/64"), HOUR);
    assert_eq!(p.acquire(b"alice", None, t).unwrap(), ip("fd10::1"));
    assert_eq!(p.acquire(b"bob", Some(ip("::")), t).unwrap(), ip("fd10::2"));
    assert_eq!(p.fresh(), (1 << 64) - 4);
    let mut q = Pool::new(
        "top",
        range("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        HOUR,
    );
    assert_eq!(q.acquire(b"1", None, t).unwrap(), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
    assert_eq!(q.acquire(b"2", None, t).unwrap(), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert!(q.acquire(b"3", None, t).is_err(), "the counter does not wrap");
    let mut v4 = Pool::new("top4", range("255.255.255.255"), HOUR);
    assert_eq!(v4.acquire(b"1", None, t).unwrap(), ip("255.255.255.255"));
    assert!(v4.acquire(b"2", None, t).is_err());
}

#[test]
fn ten_thousand_leases_in_a_slash_eight() {
    let t = Instant::now();
    let mut p = pool("10.0.0.0/8", HOUR);
    for i in 0u32..10_000 {
        let a = p.acquire(&i.to_be_bytes(), None, t).unwrap();
        assert_eq!(a, IpAddr::V4((0x0a00_0001 + i).into()));
    }
    for i in (0u32..10_000).step_by(2) {
        assert!(p.release(&i.to_be_bytes(), IpAddr::V4((0x0a00_0001 + i).into()), t));
    }
    assert_eq!((p.online(), p.offline(), p.leases().count()), (5_000, 5_000, 10_000));
    assert_eq!(p.acquire(&4u32.to_be_bytes(), None, t).unwrap(), ip("10.0.0.5"));
}

#[test]
fn pools_by_name_and_family() {
    let t = Instant::now();
    let mut pools = Pools::new();
    assert!(pools.is_empty());
    pools.insert(Pool::new("a4", range("10.0.0.1-10.0.0.1"), HOUR));
    pools.insert(Pool::new("b4", range("10.1.0.0/24"), HOUR));
    pools.insert(Pool::new("v6", range("fd10::/120"), HOUR));
    assert_eq!(pools.len(), 3);
    assert_eq!(pools.iter().map(Pool::name).collect::<Vec<_>>(), ["a4", "b4", "v6"]);
    assert_eq!((&pools).into_iter().count(), 3);
    let names = ["a4", "b4", "v6"];
    let got = |pools: &mut Pools, owner: &[u8], f| pools.acquire(&names, f, owner, None, t);
    assert_eq!(got(&mut pools, b"alice", Family::V4).unwrap(), Acquired { pool: "a4".into(), addr: ip("10.0.0.1") });
    assert_eq!(got(&mut pools, b"alice", Family::V6).unwrap(), Acquired { pool: "v6".into(), addr: ip("fd10::1") });
    // a4 is full: the next pool of the family.
    assert_eq!(got(&mut pools, b"bob", Family::V4).unwrap().addr, ip("10.1.0.1"));
    // alice's lease is found wherever it is, even if a pool before has room again.
    assert!(pools.release(b"bob", ip("10.1.0.1"), t));
    assert!(!pools.release(b"bob", ip("10.1.0.1"), t));
    assert_eq!(got(&mut pools, b"bob", Family::V4).unwrap().addr, ip("10.1.0.1"));
    // Errors.
    assert_eq!(pools.acquire(&["nope"], Family::V4, b"x", None, t), Err(PoolError::UnknownPool("nope".into())));
    assert_eq!(pools.acquire(&["v6"], Family::V4, b"x", None, t), Err(PoolError::NoPool { family: Family::V4 }));
    assert_eq!(pools.acquire(&["v6"], Family::V4, b"x", None, t).unwrap_err().to_string(), "no IPv4 pool");
    assert_eq!(
        pools.acquire(&names, Family::V4, b"x", Some(ip("fd10::5")), t),
        Err(PoolError::WrongFamily { addr: ip("fd10::5"), family: Family::V4 })
    );
    assert_eq!(
        pools.acquire(&["a4", "a4"], Family::V4, b"x", None, t),
        Err(PoolError::Exhausted { pool: "a4".into() })
    );
    let mut full = Pools::new();
    full.insert(Pool::new("p", range("10.9.0.1"), HOUR));
    full.insert(Pool::new("q", range("10.9.0.2"), HOUR));
    full.acquire(&["p", "q"], Family::V4, b"1", None, t).unwrap();
    full.acquire(&["p", "q"], Family::V4, b"2", None, t).unwrap();
    assert_eq!(full.acquire(&["p", "q"], Family::V4, b"3", None, t), Err(PoolError::Exhausted { pool: "p, q".into() }));
    // A reclaimable lease in the second pool once the grace time passed.
    assert!(full.release(b"2", ip("10.9.0.2"), t));
    assert_eq!(full.acquire(&["p", "q"], Family::V4, b"3", None, t + HOUR).unwrap().addr, ip("10.9.0.2"));
    // get, get_mut, replace, remove.
    assert_eq!(full.get("p").unwrap().online(), 1);
    assert!(full.get_mut("q").unwrap().release(b"3", ip("10.9.0.2"), t + HOUR));
    let old = full.insert(Pool::new("q", range("10.9.0.3"), HOUR)).unwrap();
    assert_eq!(old.offline(), 1);
    assert!(full.remove("p").is_some() && full.get("p").is_none());
    assert_eq!(full.iter_mut().count(), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Acquire(u8, bool),
    Release(u8),
    Wait(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, any::<bool>()).prop_map(|(o, r)| Op::Acquire(o, r)),
        (0u8..12).prop_map(Op::Release),
        (0u8..4).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever the order, no address is online for two owners, an owner holds one address at a time,
    /// and the counts add up.
    #[test]
    fn no_address_is_online_for_two_owners(ops in proptest::collection::vec(op(), 1..200)) {
        let start = Instant::now();
        let mut now = start;
        let mut p = Pool::new("p", range("10.0.0.0/29"), Duration::from_secs(2));
        // What the test believes each owner holds: address and references.
        let mut held: HashMap<u8, (IpAddr, u32)> = HashMap::new();
        for op in ops {
            match op {
                Op::Acquire(o, with_request) => {
                    let requested = with_request.then(|| ip("10.0.0.3"));
                    match p.acquire(&[o], requested, now) {
                        Ok(a) => {
                            prop_assert!(p.range().contains(a));
                            let e = held.entry(o).or_insert((a, 0));
                            prop_assert_eq!(e.0, a, "an owner online keeps its address");
                            e.1 += 1;
                        }
                        Err(e) => {
                            prop_assert_eq!(e, PoolError::Exhausted { pool: "p".into() });
                            prop_assert!(!held.contains_key(&o));
                        }
                    }
                }
                Op::Release(o) => {
                    let mine = held.get(&o).copied();
                    let addr = mine.map_or(ip("10.0.0.1"), |m| m.0);
                    let released = p.release(&[o], addr, now);
                    prop_assert_eq!(released, mine.is_some());
                    if let Some((a, refs)) = mine {
                        if refs == 1 { held.remove(&o); } else { held.insert(o, (a, refs - 1)); }
                    }
                }
                Op::Wait(s) => now += Duration::from_secs(u64::from(s)),
            }
            let mut online: HashMap<IpAddr, &[u8]> = HashMap::new();
            for l in p.leases() {
                if l.refs > 0 {
                    prop_assert!(online.insert(l.addr, l.owner).is_none(), "{} twice", l.addr);
                    prop_assert_eq!(held.get(&l.owner[0]).map(|h| (h.0, h.1)), Some((l.addr, l.refs)));
                }
            }
            prop_assert_eq!(online.len(), held.len());
            prop_assert_eq!(p.online(), held.len());
            prop_assert_eq!(p.online() + p.offline(), p.leases().count());
            prop_assert!(p.leases().count() <= 6);
        }
    }
}

#[test]
fn two_devices_of_one_identity_get_an_address_each() {
    // As strongSwan's pools: an online lease is shared with the same client host only (several
    // tunnels of one device, a reauthentication), never with another device of the identity.
    let now = Instant::now();
    let mut p = Pool::new("rw", AddrRange::parse("10.10.0.0/29").unwrap(), Duration::ZERO);
    let phone = p.acquire_for(b"alice", b"198.51.100.1[4500]", None, now).unwrap();
    let laptop = p.acquire_for(b"alice", b"203.0.113.7[4500]", None, now).unwrap();
    assert_ne!(phone, laptop);
    assert_eq!(p.acquire_for(b"alice", b"198.51.100.1[4500]", None, now).unwrap(), phone, "same device: shared");
    assert_eq!(p.online(), 2);
    // Whatever the host, the owner's lease asked for by address (an IKE rekey's new SA).
    assert_eq!(p.acquire_for(b"alice", b"elsewhere", Some(laptop), now).unwrap(), laptop);
    // All gone offline: a reconnect from a new address takes one of alice's reserved leases.
    for _ in 0..2 {
        assert!(p.release(b"alice", phone, now));
    }
    for _ in 0..2 {
        assert!(p.release(b"alice", laptop, now));
    }
    assert_eq!(p.offline(), 2);
    let again = p.acquire_for(b"alice", b"192.0.2.99[4500]", None, now).unwrap();
    assert!(again == phone || again == laptop, "{again}");
    // Another identity takes neither while fresh addresses remain.
    let bob = p.acquire_for(b"bob", b"192.0.2.99[4500]", None, now).unwrap();
    assert!(bob != phone && bob != laptop);
}
