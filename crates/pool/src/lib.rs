//! Virtual IP address pools for remote-access IKEv2 (RFC 7296 §3.15, the configuration payload's
//! `INTERNAL_IP4_ADDRESS` and `INTERNAL_IP6_ADDRESS`), after strongSwan's in-memory pools
//! (libcharon's `mem_pool.c`): a lease belongs to the client's identity.
//!
//! - The same identity gets the same address again: while it holds it (several IKE SAs of one
//!   identity share it, counted by references; Apple clients open several per user), and after it let
//!   it go: the lease stays reserved for that identity ("offline").
//! - Addresses never handed out come first. When none is left, the offline lease released the longest
//!   ago goes to a new identity, once its grace time has passed; otherwise the pool is exhausted.
//!
//! Where this differs from strongSwan: strongSwan shares an online lease only with an IKE SA that
//! asks for that address again from the same IP address and port, and otherwise gives the identity a
//! second address; here an identity has one address per pool. strongSwan reassigns any offline lease
//! at once when the pool is full; here only the oldest, and only after the grace time.
//!
//! Pure and sans-IO: the time is passed in. A pool never materialises its addresses: a /8 or a /64
//! costs a counter of the next address never handed out and two maps of the leases made so far.
#![forbid(unsafe_code)]

mod range;

use core::net::IpAddr;
use core::time::Duration;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use range::to_u128;
pub use range::{AddrRange, Family};

/// What can go wrong with a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// An address range that does not parse or holds no address; the text says why.
    #[error("bad address range {0}")]
    BadRange(String),
    /// Every address is leased to another identity, online or within its grace time.
    #[error("pool {pool}: no address left")]
    Exhausted {
        /// The pool's name (with [`Pools::acquire`]: the names of the pools tried, comma-separated).
        pool: String,
    },
    /// [`Pools::acquire`] was given a name no pool has.
    #[error("no pool named {0}")]
    UnknownPool(String),
    /// None of the pools [`Pools::acquire`] was given is of the family asked for.
    #[error("no {family} pool")]
    NoPool {
        /// The family asked for.
        family: Family,
    },
    /// The leases are shared by a cluster and its store did not answer, or gave no address: the
    /// text says why.
    #[error("shared leases: {0}")]
    Unavailable(String),
    /// A requested address of the other family.
    #[error("{addr} is not an {family} address")]
    WrongFamily {
        /// The address requested.
        addr: IpAddr,
        /// The pool's family.
        family: Family,
    },
}

/// A lease, as [`Pool::leases`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// The identity it belongs to.
    pub owner: &'a [u8],
    /// The address.
    pub addr: IpAddr,
    /// IKE SAs holding it; 0: offline, reserved for the owner.
    pub refs: u32,
    /// When it went offline; `None` while it is online.
    pub offline_since: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: Box<[u8]>,
    /// The client host (its outer address) that holds it online, or held it last.
    host: Box<[u8]>,
    refs: u32,
    /// Key in `Pool::offline` while `refs` is 0.
    offline: Option<(Instant, u64)>,
}

/// One pool of virtual IP addresses.
#[derive(Debug, Clone)]
pub struct Pool {
    name: String,
    range: AddrRange,
    grace: Duration,
    /// The next address (as a number) never handed out; `None` once all were.
    next: Option<u128>,
    /// Every lease by address: exactly the addresses from the range's first to below `next`.
    by_addr: BTreeMap<u128, Entry>,
    /// The addresses of each owner's leases: one per client host of the identity that is online
    /// at once (two devices of one user must not share an address).
    by_owner: HashMap<Box<[u8]>, Vec<u128>>,
    /// Offline leases by the time they went offline (and a sequence number for ties).
    offline: BTreeMap<(Instant, u64), u128>,
    seq: u64,
}

impl Pool {
    /// An empty pool: no lease yet. `grace` is how long an offline lease stays reserved for its owner
    /// at least, before a new identity may get it when the pool has no fresh address left.
    pub fn new(name: impl Into<String>, range: AddrRange, grace: Duration) -> Self {
        Pool {
            name: name.into(),
            range,
            grace,
            next: Some(range.bounds().0),
            by_addr: BTreeMap::new(),
            by_owner: HashMap::new(),
            offline: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its addresses.
    pub fn range(&self) -> &AddrRange {
        &self.range
    }

    /// The grace time of an offline lease.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// An address for `owner`, the client's identity as bytes (e.g. its encoded IKE identity or EAP
    /// identity).
    ///
    /// The owner's lease if it has one, online or offline: one reference more. Otherwise an address
    /// never handed out, else the offline lease released the longest ago whose grace time has passed
    /// at `now` (the previous owner loses it), else [`PoolError::Exhausted`].
    ///
    /// `requested`, the address the client asked for, is honoured only when it is the owner's own
    /// lease, as with strongSwan: asking neither takes an address from another identity nor picks a
    /// fresh one out of order. The unspecified address (`0.0.0.0`, `::`, "any") is no request; one of
    /// the other family (but `0.0.0.0` or `::`) is [`PoolError::WrongFamily`].
    pub fn acquire(&mut self, owner: &[u8], requested: Option<IpAddr>, now: Instant) -> Result<IpAddr, PoolError> {
        self.acquire_for(owner, &[], requested, now)
    }

    /// [`Pool::acquire`] for the client host `host` of the owner (its outer address, as bytes), as
    /// strongSwan's pools do: the owner's online lease is shared only with the same host (several
    /// tunnels of one device, a reauthentication); another device of the identity gets the owner's
    /// offline lease or an address of its own, so that two online devices never share an address.
    /// The owner's lease asked for by `requested` is taken whatever the host (an IKE rekey's new SA),
    /// and so is any of its online leases for an empty `host` (a client that restarted, saying so
    /// with INITIAL_CONTACT, from another address: its old SA is about to go).
    pub fn acquire_for(
        &mut self,
        owner: &[u8],
        host: &[u8],
        requested: Option<IpAddr>,
        now: Instant,
    ) -> Result<IpAddr, PoolError> {
        if let Some(addr) = requested.filter(|a| !a.is_unspecified() && Family::of(*a) != self.range.family()) {
            return Err(PoolError::WrongFamily { addr, family: self.range.family() });
        }
        let mine = self.by_owner.get(owner).cloned().unwrap_or_default();
        let wanted = requested.filter(|a| !a.is_unspecified() && self.range.contains(*a)).map(to_u128);
        let entry_of = |n: &u128| self.by_addr.get(n);
        let reuse = wanted
            .filter(|n| mine.contains(n))
            .or_else(|| {
                mine.iter()
                    .copied()
                    .find(|n| entry_of(n).is_some_and(|e| e.refs > 0 && (host.is_empty() || *e.host == *host)))
            })
            .or_else(|| mine.iter().copied().find(|n| entry_of(n).is_some_and(|e| e.refs == 0)));
        if let Some(n) = reuse {
            self.retain(n, host);
            return self.addr(n);
        }
        if let Some(n) = self.next {
            let (_, last) = self.range.bounds();
            self.next = if n < last { n.checked_add(1) } else { None };
            self.by_addr.insert(n, Entry { owner: owner.into(), host: host.into(), refs: 1, offline: None });
            self.by_owner.entry(owner.into()).or_default().push(n);
            return self.addr(n);
        }
        if let Some((key, n)) = self.reclaimable(now) {
            self.offline.remove(&key);
            if let Some(entry) = self.by_addr.get_mut(&n) {
                if let Some(list) = self.by_owner.get_mut(&entry.owner) {
                    list.retain(|x| *x != n);
                    if list.is_empty() {
                        self.by_owner.remove(&entry.owner);
                    }
                }
                *entry = Entry { owner: owner.into(), host: host.into(), refs: 1, offline: None };
                self.by_owner.entry(owner.into()).or_default().push(n);
                return self.addr(n);
            }
        }
        Err(PoolError::Exhausted { pool: self.name.clone() })
    }

    /// The owner's IKE SA that held `addr` went: one reference fewer; at none the lease is offline
    /// from `now` on, still reserved for the owner. `false` (and nothing changes) when `addr` is not
    /// the owner's lease or the lease is offline already.
    pub fn release(&mut self, owner: &[u8], addr: IpAddr, now: Instant) -> bool {
        if !self.range.contains(addr) {
            return false;
        }
        let n = to_u128(addr);
        if !self.by_owner.get(owner).is_some_and(|l| l.contains(&n)) {
            return false;
        }
        let Some(entry) = self.by_addr.get_mut(&n) else { return false };
        if entry.refs == 0 {
            return false;
        }
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs == 0 {
            let key = (now, self.seq);
            self.seq = self.seq.wrapping_add(1);
            entry.offline = Some(key);
            self.offline.insert(key, n);
        }
        true
    }

    /// Leases held by at least one IKE SA.
    pub fn online(&self) -> usize {
        self.by_addr.len().saturating_sub(self.offline.len())
    }

    /// Leases held by none, reserved for their owners.
    pub fn offline(&self) -> usize {
        self.offline.len()
    }

    /// Addresses never handed out yet (saturating at `u128::MAX`).
    pub fn fresh(&self) -> u128 {
        let (_, last) = self.range.bounds();
        self.next.map_or(0, |n| last.saturating_sub(n).saturating_add(1))
    }

    /// Every lease, online and offline, in address order.
    pub fn leases(&self) -> impl Iterator<Item = Lease<'_>> {
        self.by_addr.iter().filter_map(|(n, e)| self.lease_of(*n, e))
    }

    /// The owner's (first) lease, if it has one.
    pub fn lease(&self, owner: &[u8]) -> Option<Lease<'_>> {
        let n = self.by_owner.get(owner)?.first()?;
        self.lease_of(*n, self.by_addr.get(n)?)
    }

    /// The lease of an address, if it was handed out.
    pub fn lease_at(&self, addr: IpAddr) -> Option<Lease<'_>> {
        if !self.range.contains(addr) {
            return None;
        }
        let n = to_u128(addr);
        self.lease_of(n, self.by_addr.get(&n)?)
    }

    /// Whether [`Pool::acquire_for`] would give `owner` at `host` one of its own leases.
    pub fn can_reuse(&self, owner: &[u8], host: &[u8], requested: Option<IpAddr>) -> bool {
        let Some(mine) = self.by_owner.get(owner) else { return false };
        let wanted = requested.filter(|a| !a.is_unspecified() && self.range.contains(*a)).map(to_u128);
        wanted.is_some_and(|n| mine.contains(&n))
            || mine
                .iter()
                .any(|n| self.by_addr.get(n).is_some_and(|e| e.refs == 0 || host.is_empty() || *e.host == *host))
    }

    /// Whether `owner` holds a lease here, online or offline.
    pub fn holds(&self, owner: &[u8]) -> bool {
        self.by_owner.contains_key(owner)
    }

    /// Whether [`Pool::acquire`] would give a new owner an address at `now`.
    pub fn has_free(&self, now: Instant) -> bool {
        self.next.is_some() || self.reclaimable(now).is_some()
    }

    fn lease_of<'a>(&self, n: u128, e: &'a Entry) -> Option<Lease<'a>> {
        Some(Lease { owner: &e.owner, addr: self.range.addr(n)?, refs: e.refs, offline_since: e.offline.map(|k| k.0) })
    }

    /// The offline lease released the longest ago, if its grace time has passed at `now`.
    fn reclaimable(&self, now: Instant) -> Option<((Instant, u64), u128)> {
        let (key, n) = self.offline.first_key_value()?;
        let gone = now.checked_duration_since(key.0)?;
        (gone >= self.grace).then_some((*key, *n))
    }

    /// One reference more to the lease at `n`, for `host`; an offline one is online again.
    fn retain(&mut self, n: u128, host: &[u8]) {
        if let Some(entry) = self.by_addr.get_mut(&n) {
            if entry.refs == 0 {
                entry.host = host.into();
            }
            entry.refs = entry.refs.saturating_add(1);
            if let Some(key) = entry.offline.take() {
                self.offline.remove(&key);
            }
        }
    }

    fn addr(&self, n: u128) -> Result<IpAddr, PoolError> {
        self.range.addr(n).ok_or_else(|| PoolError::Exhausted { pool: self.name.clone() })
    }
}

/// An address [`Pools::acquire`] handed out, and the pool it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The pool's name.
    pub pool: String,
    /// The address.
    pub addr: IpAddr,
}

/// Pools by name.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    pools: BTreeMap<String, Pool>,
}

impl Pools {
    /// No pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pool, replacing (and returning) the one of the same name.
    pub fn insert(&mut self, pool: Pool) -> Option<Pool> {
        self.pools.insert(pool.name.clone(), pool)
    }

    /// Removes a pool.
    pub fn remove(&mut self, name: &str) -> Option<Pool> {
        self.pools.remove(name)
    }

    /// A pool by name.
    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// A pool by name.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Pool> {
        self.pools.get_mut(name)
    }

    /// The pools, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// The pools, in name order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pool> {
        self.pools.values_mut()
    }

    /// The number of pools.
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// Whether there is no pool.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// An address of `family` for `owner` from the pools `names` (a connection's `pools`, in its
    /// order), as strongSwan's attribute manager looks: first a lease the owner has in any of them,
    /// then a fresh address from the first that has one, then a reclaimed offline lease from the first
    /// that has one. Pools of the other family are skipped; see [`Pool::acquire`] for `requested`.
    ///
    /// Errors: [`PoolError::UnknownPool`] for a name without a pool, [`PoolError::NoPool`] when none
    /// is of `family` (the client gets no address of that family), [`PoolError::WrongFamily`] for a
    /// requested address of the other family, [`PoolError::Exhausted`] when every pool is.
    pub fn acquire<S: AsRef<str>>(
        &mut self,
        names: &[S],
        family: Family,
        owner: &[u8],
        requested: Option<IpAddr>,
        now: Instant,
    ) -> Result<Acquired, PoolError> {
        self.acquire_for(names, family, owner, &[], requested, now)
    }

    /// [`Pools::acquire`] for the owner's client host `host` (see [`Pool::acquire_for`]).
    pub fn acquire_for<S: AsRef<str>>(
        &mut self,
        names: &[S],
        family: Family,
        owner: &[u8],
        host: &[u8],
        requested: Option<IpAddr>,
        now: Instant,
    ) -> Result<Acquired, PoolError> {
        if let Some(addr) = requested.filter(|a| !a.is_unspecified() && Family::of(*a) != family) {
            return Err(PoolError::WrongFamily { addr, family });
        }
        let mut candidates: Vec<&str> = Vec::new();
        for name in names {
            let name = name.as_ref();
            let pool = self.pools.get(name).ok_or_else(|| PoolError::UnknownPool(name.to_owned()))?;
            if pool.range.family() == family && !candidates.contains(&name) {
                candidates.push(name);
            }
        }
        if candidates.is_empty() {
            return Err(PoolError::NoPool { family });
        }
        let chosen = candidates
            .iter()
            .find(|n| self.pools.get(**n).is_some_and(|p| p.can_reuse(owner, host, requested)))
            .or_else(|| candidates.iter().find(|n| self.pools.get(**n).is_some_and(|p| p.next.is_some())))
            .or_else(|| candidates.iter().find(|n| self.pools.get(**n).is_some_and(|p| p.has_free(now))));
        let Some(pool) = chosen.and_then(|n| self.pools.get_mut(*n)) else {
            return Err(PoolError::Exhausted { pool: candidates.join(", ") });
        };
        let addr = pool.acquire_for(owner, host, requested, now)?;
        Ok(Acquired { pool: pool.name.clone(), addr })
    }

    /// Releases `owner`'s lease of `addr` in the pool that has it; see [`Pool::release`].
    pub fn release(&mut self, owner: &[u8], addr: IpAddr, now: Instant) -> bool {
        self.pools.values_mut().filter(|p| p.range.contains(addr)).any(|p| p.release(owner, addr, now))
    }
}

impl<'a> IntoIterator for &'a Pools {
    type Item = &'a Pool;
    type IntoIter = std::collections::btree_map::Values<'a, String, Pool>;

    fn into_iter(self) -> Self::IntoIter {
        self.pools.values()
    }
}
