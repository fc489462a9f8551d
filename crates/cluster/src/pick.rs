//! Which address of a shared pool to try for a client: pure, so it is tested without a store.
//!
//! Gateways allocating at the same moment should rarely reach for the same address (each collision
//! costs a failed transaction and a retry), so the search starts at a point drawn from the
//! identity rather than at the pool's first address.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::HashSet;

use oxswan_pool::AddrRange;

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v4: bool, n: u128) -> Option<IpAddr> {
    if v4 { u32::try_from(n).ok().map(|n| IpAddr::V4(Ipv4Addr::from(n))) } else { Some(IpAddr::V6(Ipv6Addr::from(n))) }
}

/// FNV-1a over the identity: a stable, well-spread starting point (not a secret).
fn spread(owner: &str) -> u128 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u128::from(h)
}

/// Up to `count` free addresses of `range` for `owner`, best first: the address the client asked
/// for if it is in the range and free, then free addresses from a point drawn from `owner`, around
/// the range. `used` holds the addresses lent now.
pub fn candidates(
    range: &AddrRange,
    used: &HashSet<IpAddr>,
    owner: &str,
    requested: Option<IpAddr>,
    count: usize,
) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(count);
    if let Some(r) = requested.filter(|r| range.contains(*r) && !used.contains(r)) {
        out.push(r);
    }
    let (first, size) = (to_u128(range.first()), range.size());
    if size == 0 {
        return out;
    }
    let start = spread(owner) % size;
    // Never more steps than the range has addresses, nor than it takes to pass every used one.
    let steps = size.min(used.len() as u128 + count as u128 + 1);
    let mut i = 0u128;
    while out.len() < count && i < steps {
        let offset = (start + i) % size;
        i += 1;
        if let Some(a) = first.checked_add(offset).and_then(|n| from_u128(range.is_v4(), n))
            && !used.contains(&a)
            && !out.contains(&a)
        {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn range(s: &str) -> AddrRange {
        AddrRange::parse(s).unwrap()
    }

    #[test]
    fn the_requested_address_comes_first_when_free() {
        let r = range("10.3.0.0/24");
        let asked = "10.3.0.77".parse().unwrap();
        assert_eq!(candidates(&r, &HashSet::new(), "alice", Some(asked), 3).first(), Some(&asked));
        let used = HashSet::from([asked]);
        assert!(!candidates(&r, &used, "alice", Some(asked), 3).contains(&asked));
        let outside = "10.4.0.1".parse().unwrap();
        assert!(!candidates(&r, &HashSet::new(), "alice", Some(outside), 3).contains(&outside));
    }

    #[test]
    fn a_full_pool_gives_nothing_and_the_last_address_is_found() {
        let r = range("10.3.0.1-10.3.0.4");
        let all: HashSet<IpAddr> = (1..=4).map(|i| format!("10.3.0.{i}").parse().unwrap()).collect();
        assert!(candidates(&r, &all, "bob", None, 4).is_empty());
        let mut three = all.clone();
        let last: IpAddr = "10.3.0.3".parse().unwrap();
        three.remove(&last);
        assert_eq!(candidates(&r, &three, "bob", None, 4), vec![last]);
    }

    #[test]
    fn owners_start_apart() {
        let r = range("10.3.0.0/16");
        let firsts: HashSet<_> =
            (0..50).map(|i| candidates(&r, &HashSet::new(), &format!("user{i}"), None, 1)[0]).collect();
        assert!(firsts.len() >= 45, "{} distinct starting addresses of 50", firsts.len());
    }

    proptest! {
        #[test]
        fn candidates_are_free_distinct_and_in_range(
            used in proptest::collection::hash_set(0u32..64, 0..64),
            owner in ".{0,12}",
            count in 1usize..8,
        ) {
            let r = range("10.9.0.0/26");
            let used: HashSet<IpAddr> = used.into_iter().map(|i| IpAddr::V4(Ipv4Addr::from(0x0a09_0000 + i))).collect();
            let got = candidates(&r, &used, &owner, None, count);
            let free = 64 - used.len();
            prop_assert_eq!(got.len(), count.min(free));
            let distinct: HashSet<_> = got.iter().collect();
            prop_assert_eq!(distinct.len(), got.len());
            for a in got {
                prop_assert!(r.contains(a) && !used.contains(&a));
            }
        }
    }

    #[test]
    fn v6_ranges_work() {
        let r = range("fd00::/120");
        let got = candidates(&r, &HashSet::new(), "carol", None, 2);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|a| r.contains(*a)));
    }
}
