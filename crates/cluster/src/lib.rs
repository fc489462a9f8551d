//! Several oxswan gateways as one service, sharing what they must through etcd and nothing per
//! packet: address leases keyed by (pool, identity), a directory of IKE SAs, cluster secrets and
//! each node's load. The layout of the keys is in [`layout`]; docs/cluster.md tells the design.
//!
//! etcd does the consensus. Everything a node writes hangs on its own etcd lease, kept alive while
//! the node lives: a node that dies takes its leases and directory entries with it once the TTL
//! runs out, never before, so an address is not lent again while its holder may still be alive.
//! A node keeps its own truth (the leases and SAs it holds) and etcd is the shared index of it:
//! when its lease has run out (it was cut off for longer than the TTL) it writes everything back
//! under a new one, and anything another node took meanwhile is reported, not overwritten.
//!
//! The interface is synchronous, for the daemon's IKE thread: what needs an answer (an address, a
//! secret) waits for etcd, bounded by a timeout and refused at once while etcd is known to be
//! unreachable; what needs none (releases, the directory, load) is written in order in the
//! background and retried until it lands.

mod conn;
pub mod layout;
mod leases;
pub mod pick;
mod store;
mod tasks;

pub use layout::{Layout, LeaseValue, NodeRecord, SaEntry};
pub use store::{Cluster, ClusterEvent, ClusterStatus, Grant, MemberStatus};

use std::time::Duration;

/// How to reach etcd and who this node is (`[cluster]`).
#[derive(Clone)]
pub struct Settings {
    /// etcd's client endpoints (`http://HOST:PORT`, `https://HOST:PORT`).
    pub endpoints: Vec<String>,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// The TTL of the node's etcd lease: how long after its death its leases stay taken.
    pub ttl: Duration,
    /// The prefix of every key of the cluster.
    pub prefix: String,
    /// Where clients reach this node, for the others' redirects.
    pub address: Option<String>,
    /// Above how many IKE SAs this node sends new clients elsewhere.
    pub redirect_above: Option<u32>,
    /// TLS to etcd.
    pub tls: Option<Tls>,
}

impl core::fmt::Debug for Settings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoints", &self.endpoints)
            .field("node", &self.node)
            .field("ttl", &self.ttl)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// TLS to etcd: the CA that signs its servers' certificates (else the system's roots) and a client
/// certificate with its key (PEM).
#[derive(Clone)]
pub struct Tls {
    /// The CA certificate.
    pub ca: Option<Vec<u8>>,
    /// The client certificate and its private key.
    pub identity: Option<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)>,
}

impl core::fmt::Debug for Tls {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the key.
        f.debug_struct("Tls").field("ca", &self.ca.is_some()).field("identity", &self.identity.is_some()).finish()
    }
}

/// What can go wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd refused or failed a request.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// etcd gave no answer in time.
    #[error("etcd gave no answer within {0:?}")]
    Timeout(Duration),
    /// etcd is known to be unreachable, or without quorum: the node's lease has not been renewed.
    #[error("the cluster store is unreachable (lease not renewed for {0:?})")]
    Unavailable(Duration),
    /// All 255 node numbers are held by live nodes.
    #[error("every node number (1 to 255) is taken")]
    NoNumber,
    /// No free address in the pool.
    #[error("pool {0}: no address left")]
    Exhausted(String),
    /// Other nodes kept winning the race for the pool's addresses.
    #[error("pool {pool}: lost the race for an address {tries} times")]
    Contended {
        /// The pool.
        pool: String,
        /// How many transactions failed.
        tries: usize,
    },
    /// A lease this node took ran out before its work on it was done.
    #[error("the etcd lease {0:x} ran out")]
    LeaseLost(i64),
    /// A key of this node's changed under each of its writes.
    #[error("{key}: changed under each of {tries} writes")]
    Raced {
        /// The key.
        key: String,
        /// How many transactions failed.
        tries: usize,
    },
    /// A value in etcd that is not what the layout says.
    #[error("bad value at {key}: {why}")]
    BadValue {
        /// Its key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The runtime that talks to etcd could not start.
    #[error("the etcd client's runtime: {0}")]
    Runtime(std::io::Error),
    /// The task talking to etcd for a request ended without an answer (it panicked or was
    /// cancelled as the node shut down).
    #[error("the etcd request's task ended without an answer: {0}")]
    Task(String),
}
