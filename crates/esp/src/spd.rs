//! The outbound half of the Security Policy Database (RFC 4301 §4.4.1): which installed CHILD SA an
//! inner packet from our side is sent on, found by its destination without walking every SA.
//!
//! The rule is the data plane's: among the entries the caller deems usable (for oxswan: sending is
//! enabled on the pair, see make before break in RFC 7296 §2.8) whose selectors admit the packet
//! (`Selectors::allows_outbound`: source, destination, protocol and ports, RFC 4301 §4.4.1.1), the
//! newest installed wins. That is the order in which a rekeyed or reauthenticated pair replaces its
//! predecessor; RFC 4301 §4.4.1 leaves the order of a decorrelated SPD to the implementation, and
//! "newest first" is the one every other part of oxswan assumes. A more specific selector therefore
//! does not beat a newer, wider one.
//!
//! An entry is indexed under the destination ranges of its remote selectors (traffic selectors are
//! address ranges, RFC 7296 §3.13.1), per address family:
//! - a range that is one CIDR prefix goes into the table of its prefix length, keyed by the prefix. A
//!   single address is the longest prefix (/32, /128): a road-warrior gateway has one per client, and
//!   that table is one hash lookup whatever the number of clients;
//! - any other range goes into a short list that is scanned.
//!
//! A lookup masks the destination once per prefix length in use (longest first), takes each bucket it
//! hits and the list, and keeps the newest entry among them that passes the full check. Every bucket
//! and the list are ordered newest first, so each scan stops at its first match, or as soon as it
//! reaches entries older than the best found so far. The cost grows with the number of prefix lengths
//! in use and with the entries that share a destination, not with the number of entries. Nothing is
//! allocated per lookup.
//!
//! The tables are copy on write: `clone` is cheap and a change to a clone copies only what it touches
//! (see [`CowMap`]), so a control thread can publish a new snapshot per change while packet threads
//! read the old one without a lock.

use core::net::IpAddr;
use std::hash::Hash;
use std::sync::Arc;

use oxswan_wire::ts::{TrafficSelector, TsAddrs};

use crate::cow::CowMap;
use crate::selectors::{PacketInfo, Selectors};

/// Why an entry was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpdError {
    /// An entry with this key is already installed: keys (inbound SPIs in the data plane, the SAD's
    /// key for inbound traffic, RFC 4301 §4.4.2) are unique, and one is never silently replaced.
    #[error("an entry with this key is already installed")]
    KeyInUse,
    /// 2^64 entries were installed into this SPD and its ancestors.
    #[error("the install sequence is exhausted")]
    SequenceExhausted,
}

/// One traffic selector compiled for the lookup: the same test as `Selectors` applies (address range
/// of the family, protocol 0 = any, ports with OPAQUE for non-first fragments, RFC 4301 §4.4.1.1),
/// kept inline in the entry so that checking a candidate touches no further memory.
#[derive(Debug, Clone, Copy)]
struct Rule {
    v6: bool,
    lo: u128,
    hi: u128,
    protocol: u8,
    start_port: u16,
    end_port: u16,
}

impl Rule {
    /// `None` for a TS type we do not interpret: `TrafficSelector::contains_addr` never matches one.
    fn new(ts: &TrafficSelector) -> Option<Self> {
        let (v6, lo, hi) = match &ts.addrs {
            TsAddrs::V4 { start, end } => (false, u128::from(u32::from(*start)), u128::from(u32::from(*end))),
            TsAddrs::V6 { start, end } => (true, u128::from(*start), u128::from(*end)),
            TsAddrs::Unknown { .. } => return None,
        };
        Some(Self { v6, lo, hi, protocol: ts.ip_protocol, start_port: ts.start_port, end_port: ts.end_port })
    }

    fn admits(&self, addr: Addr, protocol: u8, port: Option<u16>) -> bool {
        let any_port = self.start_port == 0 && self.end_port == u16::MAX;
        let port_ok = match port {
            _ if any_port => true,
            // Ports not visible: only OPAQUE (start 65535, end 0, RFC 7296 §3.13.1) admits them.
            None => self.start_port == u16::MAX && self.end_port == 0,
            Some(p) => self.start_port <= p && p <= self.end_port,
        };
        self.v6 == addr.v6
            && self.lo <= addr.bits
            && addr.bits <= self.hi
            && (self.protocol == 0 || self.protocol == protocol)
            && port_ok
    }
}

/// The selectors of one side: the first inline, the rest (rare) behind a pointer.
#[derive(Debug)]
struct Rules {
    first: Option<Rule>,
    rest: Box<[Rule]>,
}

impl Rules {
    fn new(selectors: &[TrafficSelector]) -> Self {
        let mut all = selectors.iter().filter_map(Rule::new);
        let first = all.next();
        Self { first, rest: all.collect() }
    }

    fn admit(&self, addr: Addr, protocol: u8, port: Option<u16>) -> bool {
        self.first.is_some_and(|r| r.admits(addr, protocol, port))
            || self.rest.iter().any(|r| r.admits(addr, protocol, port))
    }
}

/// An address as the lookup sees it: its family and its bits (IPv4 in the low 32).
#[derive(Debug, Clone, Copy)]
struct Addr {
    v6: bool,
    bits: u128,
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Self { v6: false, bits: u128::from(u32::from(a)) },
            IpAddr::V6(a) => Self { v6: true, bits: u128::from(a) },
        }
    }
}

/// One installed entry: its place in the install order, its selectors compiled, where it is indexed,
/// and the caller's value.
#[derive(Debug)]
struct Entry<V> {
    seq: u64,
    local: Rules,
    remote: Rules,
    slots: Box<[Slot]>,
    value: V,
}

impl<V> Entry<V> {
    /// `Selectors::allows_outbound`: from our side to the peer's.
    fn allows_outbound(&self, src: Addr, dst: Addr, p: &PacketInfo) -> bool {
        let (sport, dport) = p.ports.map_or((None, None), |(s, d)| (Some(s), Some(d)));
        self.local.admit(src, p.protocol, sport) && self.remote.admit(dst, p.protocol, dport)
    }
}

/// Entries sharing an index slot, newest first; one entry, the usual case (one pair per client
/// address, two while it is rekeyed), without a further pointer.
#[derive(Debug)]
enum Bucket<V> {
    One(Arc<Entry<V>>),
    Many(Vec<Arc<Entry<V>>>),
}

impl<V> Clone for Bucket<V> {
    fn clone(&self) -> Self {
        match self {
            Self::One(e) => Self::One(e.clone()),
            Self::Many(v) => Self::Many(v.clone()),
        }
    }
}

impl<V> Default for Bucket<V> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<V> Bucket<V> {
    fn entries(&self) -> &[Arc<Entry<V>>] {
        match self {
            Self::One(e) => core::slice::from_ref(e),
            Self::Many(v) => v,
        }
    }

    fn from_vec(mut v: Vec<Arc<Entry<V>>>) -> Self {
        match v.pop() {
            Some(e) if v.is_empty() => Self::One(e),
            Some(e) => {
                v.push(e);
                Self::Many(v)
            }
            None => Self::Many(v),
        }
    }

    /// Adds the newest entry in front, once.
    fn push_newest(&mut self, e: &Arc<Entry<V>>) {
        if self.entries().first().is_some_and(|f| f.seq == e.seq) {
            return;
        }
        let mut all = Vec::with_capacity(self.entries().len() + 1);
        all.push(e.clone());
        all.extend(self.entries().iter().cloned());
        *self = Self::from_vec(all);
    }

    /// Drops the entry `seq`; whether any is left.
    fn remove(&mut self, seq: u64) -> bool {
        let rest: Vec<_> = self.entries().iter().filter(|e| e.seq != seq).cloned().collect();
        *self = Self::from_vec(rest);
        !self.entries().is_empty()
    }
}

/// The entries whose remote selectors include one prefix of length `len`, by prefix.
#[derive(Debug)]
struct PrefixTable<V> {
    len: u8,
    /// The network part of an address of the family, as the low bits of a `u128`.
    mask: u128,
    buckets: CowMap<u128, Bucket<V>>,
}

impl<V> Clone for PrefixTable<V> {
    fn clone(&self) -> Self {
        Self { len: self.len, mask: self.mask, buckets: self.buckets.clone() }
    }
}

/// The index of one address family.
#[derive(Debug)]
struct Family<V> {
    /// Only prefix lengths in use, longest first.
    prefixes: Vec<PrefixTable<V>>,
    /// Entries with a range that is not one prefix, newest first.
    ranges: Bucket<V>,
}

impl<V> Clone for Family<V> {
    fn clone(&self) -> Self {
        Self { prefixes: self.prefixes.clone(), ranges: self.ranges.clone() }
    }
}

impl<V> Default for Family<V> {
    fn default() -> Self {
        Self { prefixes: Vec::new(), ranges: Bucket::default() }
    }
}

/// Where a remote selector is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Prefix { v6: bool, len: u8, key: u128 },
    Range { v6: bool },
}

/// The slot of a selector's address range, or `None` if no address lies in it (an empty range, or a
/// TS type we do not interpret, which `TrafficSelector::contains_addr` never matches).
fn slot(ts: &TrafficSelector) -> Option<Slot> {
    let (v6, start, end, bits) = match &ts.addrs {
        TsAddrs::V4 { start, end } => (false, u128::from(u32::from(*start)), u128::from(u32::from(*end)), 32u32),
        TsAddrs::V6 { start, end } => (true, u128::from(*start), u128::from(*end), 128),
        TsAddrs::Unknown { .. } => return None,
    };
    if start > end {
        return None;
    }
    // A prefix: the differing bits are all low ones (a run 2^k - 1), and start has them clear.
    let host = start ^ end;
    if host & host.wrapping_add(1) == 0 && start & host == 0 {
        let len = u8::try_from(bits.saturating_sub(host.count_ones())).ok()?;
        Some(Slot::Prefix { v6, len, key: start })
    } else {
        Some(Slot::Range { v6 })
    }
}

/// The network mask of a prefix of `len` bits in a family of `bits` bits, as the low bits of a `u128`.
fn mask(bits: u32, len: u8) -> u128 {
    let host_bits = bits.saturating_sub(u32::from(len));
    let host = u128::MAX.checked_shr(128u32.saturating_sub(host_bits)).unwrap_or(0);
    let family = u128::MAX.checked_shr(128u32.saturating_sub(bits)).unwrap_or(0);
    family & !host
}

/// A packet as the lookup sees it.
#[derive(Debug, Clone, Copy)]
struct Probe<'a> {
    info: &'a PacketInfo,
    src: Addr,
    dst: Addr,
}

/// Scans a bucket (newest first) for an entry newer than `best` that admits the packet and is usable.
fn scan<'a, V>(bucket: &'a Bucket<V>, p: Probe<'_>, usable: &impl Fn(&V) -> bool, best: &mut Option<&'a Entry<V>>) {
    for e in bucket.entries() {
        if best.is_some_and(|b| b.seq >= e.seq) {
            return;
        }
        if e.allows_outbound(p.src, p.dst, p.info) && usable(&e.value) {
            *best = Some(e);
            return;
        }
    }
}

/// The outbound SPD: entries keyed by `K` (unique), each with the selectors it was negotiated for and a
/// value `V` (for oxswan, the SA pair), looked up by inner packet. See the module documentation.
#[derive(Debug)]
pub struct Spd<K, V> {
    next_seq: u64,
    by_key: CowMap<K, Arc<Entry<V>>>,
    v4: Arc<Family<V>>,
    v6: Arc<Family<V>>,
}

impl<K, V> Clone for Spd<K, V> {
    /// A copy sharing everything with `self` until one of them changes.
    fn clone(&self) -> Self {
        Self { next_seq: self.next_seq, by_key: self.by_key.clone(), v4: self.v4.clone(), v6: self.v6.clone() }
    }
}

impl<K, V> Default for Spd<K, V> {
    fn default() -> Self {
        Self { next_seq: 0, by_key: CowMap::default(), v4: Arc::default(), v6: Arc::default() }
    }
}

impl<K: Hash + Eq + Clone, V> Spd<K, V> {
    /// An empty SPD.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `value` under `key` with `selectors`, as the newest entry. Refuses a key already
    /// installed rather than replacing its entry.
    pub fn insert(&mut self, key: K, selectors: &Selectors, value: V) -> Result<(), SpdError> {
        if self.by_key.get(&key).is_some() {
            return Err(SpdError::KeyInUse);
        }
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).ok_or(SpdError::SequenceExhausted)?;
        // Two remote selectors of one entry may share a slot (same prefix, other ports): once.
        let mut slots: Vec<Slot> = Vec::with_capacity(selectors.remote.len());
        for s in selectors.remote.iter().filter_map(slot) {
            if !slots.contains(&s) {
                slots.push(s);
            }
        }
        let entry = Arc::new(Entry {
            seq,
            local: Rules::new(&selectors.local),
            remote: Rules::new(&selectors.remote),
            slots: slots.into_boxed_slice(),
            value,
        });
        for &slot in &entry.slots {
            let (Slot::Prefix { v6, .. } | Slot::Range { v6 }) = slot;
            let family = Arc::make_mut(if v6 { &mut self.v6 } else { &mut self.v4 });
            let bucket = match slot {
                Slot::Prefix { len, key, .. } => {
                    // Longest first: the first table not longer than `len` is it, or where it goes.
                    let at = family.prefixes.iter().position(|t| t.len <= len).unwrap_or(family.prefixes.len());
                    if family.prefixes.get(at).is_none_or(|t| t.len != len) {
                        let bits = if v6 { 128 } else { 32 };
                        family
                            .prefixes
                            .insert(at, PrefixTable { len, mask: mask(bits, len), buckets: CowMap::default() });
                    }
                    let Some(bucket) = family.prefixes.get_mut(at).and_then(|t| t.buckets.get_or_default(key)) else {
                        continue;
                    };
                    bucket
                }
                Slot::Range { .. } => &mut family.ranges,
            };
            bucket.push_newest(&entry);
        }
        self.by_key.insert(key, entry);
        Ok(())
    }

    /// Removes the entry under `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        let entry = self.by_key.remove(key)?;
        let seq = entry.seq;
        for &slot in &entry.slots {
            let (Slot::Prefix { v6, .. } | Slot::Range { v6 }) = slot;
            let family = Arc::make_mut(if v6 { &mut self.v6 } else { &mut self.v4 });
            match slot {
                Slot::Prefix { len, key, .. } => {
                    let Some(at) = family.prefixes.iter().position(|t| t.len == len) else { continue };
                    let Some(table) = family.prefixes.get_mut(at) else { continue };
                    table.buckets.update(&key, |b| b.remove(seq));
                    // A length no entry uses any more costs lookups nothing.
                    if table.buckets.len() == 0 {
                        family.prefixes.remove(at);
                    }
                }
                Slot::Range { .. } => {
                    family.ranges.remove(seq);
                }
            }
        }
        Some(entry.value.clone())
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.by_key.get(key).map(|e| &e.value)
    }

    /// Entries installed.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is installed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value, oldest installed first. Allocates: for the control side, not per packet.
    pub fn values_unordered(&self) -> impl Iterator<Item = &V> {
        self.by_key.values().map(|e| &e.value)
    }

    /// Every value, oldest first.
    pub fn values(&self) -> Vec<&V> {
        let mut all: Vec<&Entry<V>> = self.by_key.values().map(|e| &**e).collect();
        all.sort_unstable_by_key(|e| e.seq);
        all.into_iter().map(|e| &e.value).collect()
    }

    /// The entry a packet from our side is sent on: the newest installed among those that `usable`
    /// accepts and whose selectors admit the packet. No allocation; `usable` is called only for
    /// entries whose selectors admit the packet and that are newer than any match so far.
    pub fn lookup(&self, info: &PacketInfo, usable: impl Fn(&V) -> bool) -> Option<&V> {
        let p = Probe { info, src: info.src.into(), dst: info.dst.into() };
        let family = if p.dst.v6 { &*self.v6 } else { &*self.v4 };
        let mut best = None;
        for t in &family.prefixes {
            if let Some(bucket) = t.buckets.get(&(p.dst.bits & t.mask)) {
                scan(bucket, p, &usable, &mut best);
            }
        }
        scan(&family.ranges, p, &usable, &mut best);
        best.map(|e| &e.value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        ts_p(s, 0, (0, u16::MAX))
    }

    fn ts_p(s: &str, proto: u8, ports: (u16, u16)) -> TrafficSelector {
        if let Some((a, b)) = s.split_once("..") {
            let addrs = match (a.parse().unwrap(), b.parse().unwrap()) {
                (IpAddr::V4(start), IpAddr::V4(end)) => TsAddrs::V4 { start, end },
                (IpAddr::V6(start), IpAddr::V6(end)) => TsAddrs::V6 { start, end },
                _ => panic!("mixed families"),
            };
            return TrafficSelector { ip_protocol: proto, start_port: ports.0, end_port: ports.1, addrs };
        }
        let (a, l) = s.split_once('/').unwrap();
        TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap(), proto, ports.0, ports.1).unwrap()
    }

    fn sel(local: &str, remote: &[TrafficSelector]) -> Selectors {
        Selectors { local: vec![ts(local)], remote: remote.to_vec() }
    }

    fn pkt(src: &str, dst: &str, protocol: u8, ports: Option<(u16, u16)>) -> PacketInfo {
        PacketInfo { src: src.parse().unwrap(), dst: dst.parse().unwrap(), protocol, ports }
    }

    fn udp(src: &str, dst: &str) -> PacketInfo {
        pkt(src, dst, 17, Some((1000, 53)))
    }

    fn find(spd: &Spd<u32, u32>, p: &PacketInfo) -> Option<u32> {
        spd.lookup(p, |_| true).copied()
    }

    #[test]
    fn slots() {
        assert_eq!(slot(&ts("10.1.2.3/32")), Some(Slot::Prefix { v6: false, len: 32, key: 0x0a01_0203 }));
        assert_eq!(slot(&ts("10.1.0.0/16")), Some(Slot::Prefix { v6: false, len: 16, key: 0x0a01_0000 }));
        assert_eq!(slot(&ts("0.0.0.0/0")), Some(Slot::Prefix { v6: false, len: 0, key: 0 }));
        assert_eq!(slot(&ts("::/0")), Some(Slot::Prefix { v6: true, len: 0, key: 0 }));
        assert_eq!(slot(&ts("fd00::1/128")), Some(Slot::Prefix { v6: true, len: 128, key: 0xfd00 << 112 | 1 }));
        assert_eq!(slot(&ts("10.0.0.1..10.0.0.2")), Some(Slot::Range { v6: false }));
        assert_eq!(slot(&ts("10.0.0.0..10.0.0.2")), Some(Slot::Range { v6: false }));
        assert_eq!(slot(&ts("10.0.0.2..10.0.0.3")), Some(Slot::Prefix { v6: false, len: 31, key: 0x0a00_0002 }));
        assert_eq!(slot(&ts("fd00::1..fd00::2")), Some(Slot::Range { v6: true }));
        assert_eq!(slot(&ts("10.0.0.3..10.0.0.2")), None, "empty");
        let unknown = TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 0,
            addrs: TsAddrs::Unknown { ts_type: oxswan_wire::TsType(9), data: vec![] },
        };
        assert_eq!(slot(&unknown), None);
        assert_eq!(mask(32, 24), 0xffff_ff00);
        assert_eq!(mask(32, 0), 0);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(128, 128), u128::MAX);
        assert_eq!(mask(128, 64), u128::MAX << 64);
    }

    #[test]
    fn newest_match_wins_across_buckets() {
        let mut spd = Spd::new();
        spd.insert(1, &sel("10.1.0.0/16", &[ts("10.2.0.7/32")]), 1).unwrap();
        spd.insert(2, &sel("10.1.0.0/16", &[ts("10.2.0.0/16")]), 2).unwrap();
        // The wider, newer selector wins over the more specific, older one.
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.7")), Some(2));
        spd.insert(3, &sel("10.1.0.0/16", &[ts("10.2.0.7/32")]), 3).unwrap();
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.7")), Some(3), "a rekeyed pair replaces its predecessor");
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.8")), Some(2));
        spd.insert(4, &sel("10.1.0.0/16", &[ts("10.2.0.5..10.2.0.9")]), 4).unwrap();
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.7")), Some(4), "a non-prefix range, newest");
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.4")), Some(2));
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.10")), Some(2));
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.3.0.7")), None);
        assert_eq!(find(&spd, &udp("10.9.0.1", "10.2.0.7")), None, "the source must match too");
        assert_eq!(spd.len(), 4);
        assert_eq!(spd.values(), [&1, &2, &3, &4]);
    }

    #[test]
    fn usable_is_respected() {
        let mut spd = Spd::new();
        spd.insert(1, &sel("0.0.0.0/0", &[ts("10.2.0.7/32")]), 1).unwrap();
        spd.insert(2, &sel("0.0.0.0/0", &[ts("10.2.0.7/32")]), 2).unwrap();
        let p = udp("10.1.0.1", "10.2.0.7");
        // The responder of a rekey does not send on the new pair yet: the old one carries the traffic.
        assert_eq!(spd.lookup(&p, |v| *v != 2), Some(&1));
        assert_eq!(spd.lookup(&p, |_| false), None);
        assert_eq!(spd.lookup(&p, |_| true), Some(&2));
    }

    #[test]
    fn ports_and_protocol() {
        let mut spd = Spd::new();
        spd.insert(1, &sel("10.1.0.0/16", &[ts("10.2.0.0/16")]), 1).unwrap();
        spd.insert(2, &sel("10.1.0.0/16", &[ts_p("10.2.0.0/16", 6, (443, 443))]), 2).unwrap();
        spd.insert(3, &sel("10.1.0.0/16", &[ts_p("10.2.0.0/16", 17, (53, 53)), ts_p("10.2.0.0/16", 6, (22, 22))]), 3)
            .unwrap();
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 6, Some((40000, 443)))), Some(2));
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 6, Some((40000, 22)))), Some(3));
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 17, Some((40000, 53)))), Some(3));
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 6, Some((40000, 80)))), Some(1));
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 1, None)), Some(1));
        // A non-first fragment (ports OPAQUE) only goes where any port is admitted.
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 6, None)), Some(1));
        spd.remove(&3).unwrap();
        assert_eq!(find(&spd, &pkt("10.1.0.1", "10.2.0.1", 6, Some((40000, 22)))), Some(1));
    }

    #[test]
    fn ipv6_and_families_apart() {
        let mut spd = Spd::new();
        spd.insert(1, &sel("fd01::/64", &[ts("fd02::/64")]), 1).unwrap();
        spd.insert(2, &sel("fd01::/64", &[ts("fd02::7/128")]), 2).unwrap();
        spd.insert(3, &sel("0.0.0.0/0", &[ts("0.0.0.0/0")]), 3).unwrap();
        spd.insert(4, &sel("fd01::/64", &[ts("fd02::10..fd02::20")]), 4).unwrap();
        assert_eq!(find(&spd, &udp("fd01::1", "fd02::7")), Some(2));
        assert_eq!(find(&spd, &udp("fd01::1", "fd02::8")), Some(1));
        assert_eq!(find(&spd, &udp("fd01::1", "fd02::15")), Some(4));
        assert_eq!(find(&spd, &udp("fd01::1", "fd03::1")), None, "an IPv4 selector takes no IPv6");
        assert_eq!(find(&spd, &udp("10.0.0.1", "10.0.0.2")), Some(3));
        spd.insert(5, &sel("::/0", &[ts("::/0")]), 5).unwrap();
        assert_eq!(find(&spd, &udp("fd01::1", "fd02::7")), Some(5));
        assert_eq!(find(&spd, &udp("fd09::1", "fd03::1")), Some(5));
        assert_eq!(find(&spd, &udp("10.0.0.1", "10.0.0.2")), Some(3));
    }

    #[test]
    fn removal_and_unique_keys() {
        let mut spd = Spd::new();
        spd.insert(7, &sel("0.0.0.0/0", &[ts("10.2.0.7/32"), ts("10.3.0.0/24"), ts("10.4.0.1..10.4.0.5")]), 70)
            .unwrap();
        assert_eq!(spd.insert(7, &sel("0.0.0.0/0", &[ts("0.0.0.0/0")]), 71), Err(SpdError::KeyInUse));
        assert_eq!(spd.get(&7), Some(&70), "the installed entry stays");
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.9.0.1")), None, "the refused entry is nowhere");
        spd.insert(8, &sel("0.0.0.0/0", &[ts("10.2.0.7/32")]), 80).unwrap();
        let before = spd.clone();
        assert_eq!(spd.remove(&8), Some(80));
        assert_eq!(spd.remove(&8), None);
        assert_eq!(find(&spd, &udp("10.1.0.1", "10.2.0.7")), Some(70));
        assert_eq!(find(&before, &udp("10.1.0.1", "10.2.0.7")), Some(80), "a copy is unchanged");
        assert_eq!(spd.remove(&7), Some(70));
        for dst in ["10.2.0.7", "10.3.0.9", "10.4.0.3"] {
            assert_eq!(find(&spd, &udp("10.1.0.1", dst)), None);
            assert_eq!(find(&before, &udp("10.1.0.1", dst)), if dst == "10.2.0.7" { Some(80) } else { Some(70) });
        }
        assert!(spd.is_empty());
        assert!(spd.v4.prefixes.is_empty() && spd.v4.ranges.entries().is_empty(), "empty tables are dropped");
        assert_eq!(spd.get(&7), None);
    }

    #[test]
    fn many_hosts() {
        let mut spd = Spd::new();
        for i in 0..10_000u32 {
            let a = IpAddr::from(core::net::Ipv4Addr::from(0x0a00_0000 + i));
            let remote = TrafficSelector::from_prefix(a, 32, 0, 0, u16::MAX).unwrap();
            spd.insert(i, &Selectors { local: vec![TrafficSelector::any_v4()], remote: vec![remote] }, i).unwrap();
        }
        for i in [0u32, 1, 4999, 9999] {
            let dst = core::net::Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(find(&spd, &udp("192.168.0.1", &dst.to_string())), Some(i));
        }
        assert_eq!(spd.v4.prefixes.len(), 1);
    }

    // Against the rule itself: the newest usable entry whose selectors admit the packet, by a
    // backwards scan over all entries in install order (the data plane's lookup before the SPD).

    fn arb_remote() -> impl Strategy<Value = TrafficSelector> {
        let addr = (0u8..16).prop_map(|o| IpAddr::from([10, 2, 0, o]));
        let addr6 = (0u16..16).prop_map(|o| IpAddr::from([0xfd02, 0, 0, 0, 0, 0, 0, o]));
        let ports = prop_oneof![
            Just((0, 6, 0, u16::MAX)),
            Just((0, 0, 0, u16::MAX)),
            Just((6, 6, 443, 443)),
            Just((17, 17, 50, 60)),
            Just((6, 6, u16::MAX, 0)),
            Just((0, 0, 50, 60))
        ];
        let range = prop_oneof![
            (addr.clone(), prop_oneof![Just(32u8), Just(31), Just(30), Just(28), Just(0)])
                .prop_map(|(a, l)| (a, l, None)),
            (addr6.clone(), prop_oneof![Just(128u8), Just(127), Just(124), Just(0)]).prop_map(|(a, l)| (a, l, None)),
            (addr.clone(), addr).prop_map(|(a, b)| (a, 0, Some(b))),
            (addr6.clone(), addr6).prop_map(|(a, b)| (a, 0, Some(b))),
        ];
        (range, ports).prop_map(|((a, len, end), (_, proto, sp, ep))| match end {
            None => TrafficSelector::from_prefix(a, len, proto, sp, ep).unwrap(),
            Some(b) => {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let addrs = match (lo, hi) {
                    (IpAddr::V4(start), IpAddr::V4(end)) => TsAddrs::V4 { start, end },
                    (IpAddr::V6(start), IpAddr::V6(end)) => TsAddrs::V6 { start, end },
                    _ => unreachable!(),
                };
                TrafficSelector { ip_protocol: proto, start_port: sp, end_port: ep, addrs }
            }
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert { key: u8, local: bool, remote: Vec<TrafficSelector>, usable: bool },
        Remove(u8),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..24, any::<bool>(), proptest::collection::vec(arb_remote(), 1..4), prop::bool::weighted(0.8))
                .prop_map(|(key, local, remote, usable)| Op::Insert { key, local, remote, usable }),
            1 => (0u8..24).prop_map(Op::Remove),
        ]
    }

    fn arb_packet() -> impl Strategy<Value = PacketInfo> {
        let v4 = (0u8..3, 0u8..16).prop_map(|(s, d)| (IpAddr::from([10, 1, 0, s]), IpAddr::from([10, 2, 0, d])));
        let v6 = (0u16..3, 0u16..16).prop_map(|(s, d)| {
            (IpAddr::from([0xfd01, 0, 0, 0, 0, 0, 0, s]), IpAddr::from([0xfd02, 0, 0, 0, 0, 0, 0, d]))
        });
        let l4 = prop_oneof![
            Just((6, Some((40000, 443)))),
            Just((6, Some((40000, 80)))),
            Just((17, Some((1, 55)))),
            Just((17, None)),
            Just((6, None)),
            Just((1, None))
        ];
        (prop_oneof![v4, v6], l4).prop_map(|((src, dst), (protocol, ports))| PacketInfo { src, dst, protocol, ports })
    }

    proptest! {
        #[test]
        fn same_answer_as_the_backwards_scan(
            ops in proptest::collection::vec(arb_op(), 1..40),
            packets in proptest::collection::vec(arb_packet(), 16),
        ) {
            let mut spd: Spd<u8, u8> = Spd::new();
            let mut reference: Vec<(u8, Selectors)> = Vec::new();
            let mut unusable = HashSet::new();
            for op in ops {
                match op {
                    Op::Insert { key, local, remote, usable } => {
                        let local = if local {
                            vec![TrafficSelector::from_prefix(IpAddr::from([10, 1, 0, 0]), 24, 0, 0, u16::MAX).unwrap(),
                                 TrafficSelector::from_prefix(IpAddr::from([0xfd01, 0, 0, 0, 0, 0, 0, 0]), 64, 0, 0, u16::MAX).unwrap()]
                        } else {
                            vec![TrafficSelector::from_prefix(IpAddr::from([10, 1, 0, 1]), 32, 0, 0, u16::MAX).unwrap(),
                                 TrafficSelector::any_v6()]
                        };
                        let s = Selectors { local, remote };
                        let fresh = !reference.iter().any(|(k, _)| *k == key);
                        prop_assert_eq!(spd.insert(key, &s, key).is_ok(), fresh);
                        if fresh {
                            reference.push((key, s));
                            if usable { unusable.remove(&key); } else { unusable.insert(key); }
                        }
                    }
                    Op::Remove(key) => {
                        let had = reference.iter().any(|(k, _)| *k == key);
                        reference.retain(|(k, _)| *k != key);
                        prop_assert_eq!(spd.remove(&key).is_some(), had);
                    }
                }
                for p in &packets {
                    let want = reference.iter().rev().find(|(k, s)| !unusable.contains(k) && s.allows_outbound(p)).map(|(k, _)| *k);
                    prop_assert_eq!(spd.lookup(p, |k| !unusable.contains(k)).copied(), want, "{:?}", p);
                }
            }
            prop_assert_eq!(spd.len(), reference.len());
            let order: Vec<u8> = reference.iter().map(|(k, _)| *k).collect();
            prop_assert_eq!(spd.values().into_iter().copied().collect::<Vec<_>>(), order);
        }
    }
}
