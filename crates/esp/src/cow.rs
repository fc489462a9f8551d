//! A hash map that is cheap to copy and to change a copy of: its entries are spread over a fixed number
//! of shards, each behind an `Arc`, and a change copies only the shard it touches (copy on write).
//!
//! The data plane publishes its tables as immutable snapshots that the packet threads read without a
//! lock: every install or removal makes a new snapshot from the previous one. With one plain map that
//! is a copy of every entry, so installing n pairs one after another costs O(n²); here it costs a copy
//! of the shard list and of one shard, about n/64 entries.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Arc;

/// Shards per map: enough that a shard of a 10,000-entry map stays small (about 160 entries), few
/// enough that copying the list of shards is cheap for a map of one entry.
const SHARDS: usize = 64;

/// A copy-on-write sharded hash map. `clone` is O(1); `insert`/`remove` on a clone copy one shard.
#[derive(Debug)]
pub(crate) struct CowMap<K, V> {
    /// Picks the shard. Seeded per map (as `HashMap`'s own hasher is), so that keys a peer can
    /// influence (addresses in its traffic selectors) cannot be chosen to fill one shard.
    hasher: RandomState,
    shards: Arc<Vec<Arc<HashMap<K, V>>>>,
    len: usize,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        Self { hasher: self.hasher.clone(), shards: self.shards.clone(), len: self.len }
    }
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self { hasher: RandomState::new(), shards: Arc::new((0..SHARDS).map(|_| Arc::default()).collect()), len: 0 }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    fn shard(&self, key: &K) -> usize {
        // SHARDS divides 2^64, so the remainder is as uniform as the hash.
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// The value under `key`. No allocation.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards.get(self.shard(key))?.get(key)
    }

    /// The shard `key` lives in, made unique to this map (copied if another copy shares it).
    fn shard_mut(&mut self, key: &K) -> Option<&mut HashMap<K, V>> {
        let i = self.shard(key);
        Arc::make_mut(&mut self.shards).get_mut(i).map(Arc::make_mut)
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
        self.shards.iter().flat_map(|s| s.values())
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
        let shared = a.shards.iter().zip(b.shards.iter()).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert!(shared >= SHARDS - 6, "{shared} shards shared: six keys changed");
        assert_eq!(b.values().count(), 999);
    }
}
