//! Virtual IP addresses for remote-access clients (RFC 7296 §2.19, §3.15): the responder hands each
//! client an address from the connection's pools, with the pool's attributes (DNS servers, split
//! subnets, DNS domains). The engine only asks and gives back; where addresses come from is the
//! endpoint's [`AddressLeases`] (in memory in the daemon, shared among gateways later), so the
//! engine keeps no pool state of its own.

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// What a pool gives its clients besides an address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolAttributes {
    /// DNS servers (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS).
    pub dns: Vec<IpAddr>,
    /// Subnets reached through the tunnel (INTERNAL_IP4_SUBNET, INTERNAL_IP6_SUBNET): address and
    /// prefix length.
    pub split_include: Vec<(IpAddr, u8)>,
    /// DNS domains resolved by those servers (INTERNAL_DNS_DOMAIN, RFC 8598).
    pub dns_domains: Vec<String>,
}

/// An address handed to a client, with its pool's attributes. Each IKE SA of a gateway keeps its
/// leases for its life: the pool's name and attributes are shared by every lease of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The pool's name.
    pub pool: Arc<str>,
    /// The address.
    pub addr: IpAddr,
    /// The pool's attributes.
    pub attributes: Arc<PoolAttributes>,
    /// The source's mark of which holding of the address this is, handed back with the release
    /// (a shared store's: a release from an SA whose holding ended frees nothing of a later one);
    /// 0 where the source needs none.
    pub holding: u64,
}

pub use oxswan_pool::PoolError as LeaseError;

/// How much of one pool is lent, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool's name.
    pub pool: String,
    /// Addresses it can lend.
    pub size: u128,
    /// Leases held by at least one IKE SA.
    pub online: u64,
    /// Leases held by none, still reserved for their owners.
    pub offline: u64,
}

/// Where virtual IPs come from. A lease belongs to the client's identity (`owner`): the same
/// identity gets the same address again, and several IKE SAs of one identity from one client host
/// (`host`, its outer address) share it, each holding one reference until it goes; another device
/// of the identity gets an address of its own, as with strongSwan's pools. Without a host (a client
/// that restarted, INITIAL_CONTACT) any lease of the identity is taken.
pub trait AddressLeases: Send + fmt::Debug {
    /// An address of the family `v6` for `owner` from the first of `pools` that has one; the
    /// client's `requested` address is honoured where the pool allows it.
    fn acquire(
        &mut self,
        pools: &[String],
        v6: bool,
        owner: &str,
        host: Option<SocketAddr>,
        requested: Option<IpAddr>,
        now: Instant,
    ) -> Result<Lease, LeaseError>;

    /// The IKE SA that held `lease` for `owner` is gone.
    fn release(&mut self, lease: &Lease, owner: &str, now: Instant);

    /// How much of each pool is lent; nothing where the leases are not counted here.
    fn usage(&self) -> Vec<PoolUsage> {
        Vec::new()
    }
}

/// Pools in memory ([`oxswan_pool::Pools`]), each with its attributes: the daemon's.
#[derive(Debug, Default)]
pub struct MemoryLeases {
    pools: oxswan_pool::Pools,
    /// By pool: its name and attributes, as each of its leases shares them.
    attributes: std::collections::HashMap<String, (Arc<str>, Arc<PoolAttributes>)>,
}

impl MemoryLeases {
    /// No pools yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pool with its attributes, replacing one of the same name.
    pub fn insert(&mut self, pool: oxswan_pool::Pool, attributes: PoolAttributes) {
        let name = pool.name().to_owned();
        self.attributes.insert(name.clone(), (name.into(), Arc::new(attributes)));
        self.pools.insert(pool);
    }

    /// The pools, for status.
    pub fn pools(&self) -> &oxswan_pool::Pools {
        &self.pools
    }
}

impl AddressLeases for MemoryLeases {
    fn acquire(
        &mut self,
        pools: &[String],
        v6: bool,
        owner: &str,
        host: Option<SocketAddr>,
        requested: Option<IpAddr>,
        now: Instant,
    ) -> Result<Lease, LeaseError> {
        let family = if v6 { oxswan_pool::Family::V6 } else { oxswan_pool::Family::V4 };
        let host = host.map(|h| h.to_string()).unwrap_or_default();
        let got = self.pools.acquire_for(pools, family, owner.as_bytes(), host.as_bytes(), requested, now)?;
        let (pool, attributes) =
            self.attributes.get(&got.pool).cloned().unwrap_or_else(|| (got.pool.into(), Arc::default()));
        Ok(Lease { pool, addr: got.addr, attributes, holding: 0 })
    }

    fn release(&mut self, lease: &Lease, owner: &str, now: Instant) {
        if let Some(pool) = self.pools.get_mut(&lease.pool) {
            pool.release(owner.as_bytes(), lease.addr, now);
        }
    }

    fn usage(&self) -> Vec<PoolUsage> {
        self.pools
            .iter()
            .map(|p| PoolUsage {
                pool: p.name().to_owned(),
                size: p.range().size(),
                online: p.online() as u64,
                offline: p.offline() as u64,
            })
            .collect()
    }
}

/// No pools: every request fails. The endpoint's default, for configurations without pools.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPools;

impl AddressLeases for NoPools {
    fn acquire(
        &mut self,
        pools: &[String],
        _v6: bool,
        _owner: &str,
        _host: Option<SocketAddr>,
        _requested: Option<IpAddr>,
        _now: Instant,
    ) -> Result<Lease, LeaseError> {
        Err(LeaseError::UnknownPool(pools.first().cloned().unwrap_or_default()))
    }

    fn release(&mut self, _lease: &Lease, _owner: &str, _now: Instant) {}
}
