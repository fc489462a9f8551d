//! A hash map that is cheap to copy and to change a copy of: its entries are spread over a fixed number
//! of shards, each behind an `Arc`, and a change copies only the shard it touches (copy on write).
//!
//! The data plane publishes its tables as immutable snapshots that the packet threads read without a
//! lock: every install or removal makes a new snapshot from the previous one. With one plain map that
//! is a copy of every entry, so installing n pairs one after another costs O(n²); here it costs a copy
//! of one shard, about n/1024 entries, and of the 32 + 32 pointers that lead to it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;

/// Shards per map: enough that a shard of a 100,000-entry map stays small (about 100 entries). With
/// 64 shards a change at 100,000 pairs copied 1,500 entries, tens of microseconds per install, and
/// the cost of a handshake grew with the SAs held.
const SHARD_BITS: u32 = 10;
const SHARDS: usize = 1 << SHARD_BITS;
/// The shards are reached through 32 groups of 32: a change copies one group's pointers and the
/// list of groups, 64 reference counts to raise (and as many to drop with the old snapshot) instead
/// of 1,024 with one flat list, which a profile of 10,000 handshakes found at 10% of the IKE thread.
const GROUP_BITS: u32 = 5;
const GROUP: usize = 1 << GROUP_BITS;
const GROUPS: usize = SHARDS / GROUP;

type Shard<K, V> = Arc<HashMap<K, V>>;
type Group<K, V> = Arc<[Shard<K, V>; GROUP]>;

/// Picks a key's shard: a multiply-rotate hash seeded per map, one multiplication per word of the key
/// (SipHash, which the shards themselves use, would double the cost of a lookup). Its top bits are the
/// best mixed and choose the shard. Keys a peer influences (addresses in its traffic selectors) cannot
/// target one shard without the seed; if they could, that shard's copies would grow, never a lookup,
/// which the shard's own `HashMap` keeps safe.
#[derive(Debug, Clone, Copy)]
struct ShardHasher(u64);

impl ShardHasher {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for ShardHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A copy-on-write sharded hash map. `clone` is O(1); `insert`/`remove` on a clone copy one shard.
#[derive(Debug)]
pub(crate) struct CowMap<K, V> {
    seed: u64,
    groups: Arc<[Group<K, V>; GROUPS]>,
    len: usize,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        Self { seed: self.seed, groups: self.groups.clone(), len: self.len }
    }
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        let seed = RandomState::new().hash_one(0u8);
        let empty: Group<K, V> = Arc::new(core::array::from_fn(|_| Arc::default()));
        Self { seed, groups: Arc::new(core::array::from_fn(|_| empty.clone())), len: 0 }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    /// The group and the shard within it of `key`.
    fn shard(&self, key: &K) -> (usize, usize) {
        let mut h = ShardHasher(self.seed);
        key.hash(&mut h);
        let i = (h.finish() >> (64 - SHARD_BITS)) as usize;
        (i >> GROUP_BITS, i & (GROUP - 1))
    }

    /// The value under `key`. No allocation.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        let (g, i) = self.shard(key);
        self.groups.get(g)?.get(i)?.get(key)
    }

    /// The shard `key` lives in, made unique to this map (copied, with the pointers that lead to it,
    /// if another copy shares it).
    fn shard_mut(&mut self, key: &K) -> Option<&mut HashMap<K, V>> {
        let (g, i) = self.shard(key);
        let group = Arc::make_mut(&mut self.groups).get_mut(g)?;
        Arc::make_mut(group).get_mut(i).map(Arc::make_mut)
    }

    /// Every shard, in order.
    fn shards(&self) -> impl Iterator<Item = &Shard<K, V>> {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// Inserts or replaces; returns the value replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key)?.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        // Only a present key is worth a copy of its shard.
        self.get(key)?;
        let old = self.shard_mut(key)?.remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value under `key`, inserted as `V::default()` if absent, for changing in place (its shard
    /// copied first if it is shared). `None` only if the map has no shard for it, which cannot be.
    pub(crate) fn get_or_default(&mut self, key: K) -> Option<&mut V>
    where
        V: Default,
    {
        if self.get(&key).is_none() {
            self.len += 1;
        }
        Some(self.shard_mut(&key)?.entry(key).or_default())
    }

    /// Changes the value under `key` in place (copying its shard first if it is shared); `f` returns
    /// whether the value is to stay. Does nothing if the key is absent.
    pub(crate) fn update(&mut self, key: &K, f: impl FnOnce(&mut V) -> bool) {
        if self.get(key).is_none() {
            return;
        }
        let Some(shard) = self.shard_mut(key) else { return };
        let keep = shard.get_mut(key).is_some_and(f);
        if !keep && shard.remove(key).is_some() {
            self.len -= 1;
        }
    }

    /// Entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards().flat_map(|s| s.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_until_changed() {
        let mut a = CowMap::default();
        for i in 0..1000u32 {
            assert_eq!(a.insert(i, i * 2), None);
        }
        let mut b = a.clone();
        assert_eq!(b.insert(7, 0), Some(14));
        assert_eq!(b.remove(&8), Some(16));
        assert_eq!(b.remove(&5000), None);
        b.update(&9, |v| {
            *v = 1;
            true
        });
        b.update(&10, |_| false);
        b.update(&5000, |_| unreachable!());
        *b.get_or_default(11).unwrap() += 1;
        *b.get_or_default(5001).unwrap() += 1;
        assert_eq!(
            (a.get(&7), a.get(&8), a.get(&9), a.get(&10), a.len()),
            (Some(&14), Some(&16), Some(&18), Some(&20), 1000)
        );
        assert_eq!((b.get(&7), b.get(&8), b.get(&9), b.get(&10), b.len()), (Some(&0), None, Some(&1), None, 999));
        assert_eq!((b.get(&11), b.get(&5001)), (Some(&23), Some(&1)));
        // Only the shards b changed were copied.
        let shared = a.shards().zip(b.shards()).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert!(shared >= SHARDS - 6, "{shared} shards shared: six keys changed");
        // And of the groups, all but the ones holding those shards.
        let groups = a.groups.iter().zip(b.groups.iter()).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert!((GROUPS - 6..GROUPS).contains(&groups), "{groups} groups shared: six keys changed");
        assert_eq!(b.values().count(), 999);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut spis = CowMap::default();
        let mut addrs = CowMap::default();
        // 100 keys per shard on average.
        let n = u32::try_from(SHARDS).unwrap() * 100;
        for i in 0..n {
            spis.insert(i, ());
            addrs.insert(u128::from(0x6440_0000 + i), ());
        }
        let spread = |m: Vec<usize>| (m.iter().copied().min().unwrap(), m.iter().copied().max().unwrap());
        for (min, max) in
            [spread(spis.shards().map(|s| s.len()).collect()), spread(addrs.shards().map(|s| s.len()).collect())]
        {
            assert!(min > 50 && max < 150, "100 per shard expected: {min}..{max}");
        }
    }
}
