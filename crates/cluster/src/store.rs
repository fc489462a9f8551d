//! The node's side of the cluster: its etcd lease and the keys on it, a synchronous interface for
//! the IKE thread, and the tasks that keep the lease alive, follow the other nodes (a watch) and
//! write in the background.

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KeyValue, PutOptions, TlsOptions, Txn, TxnOp,
};

use crate::conn::Etcd;
use oxswan_pool::AddrRange;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::layout::{Layout, NodeRecord, SaEntry, redirect_target};
use crate::leases::{allocate, release_held};
use crate::{ClusterError, Settings};

/// Transactions tried for a node number before giving up.
const TRIES: usize = 8;
/// Load is published at most this often (it only steers redirects).
const LOAD_EVERY: Duration = Duration::from_secs(1);
/// How often the members are asked how they are, for `status`.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A background write that failed waits this long before it is tried again.
pub(crate) const RETRY: Duration = Duration::from_millis(500);

/// What the cluster tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// Another node took an address this node's IKE SAs hold: the identity came back there (or
    /// took it while this node was cut off). Those SAs must go, as their address is not theirs.
    LeaseTaken {
        /// The pool.
        pool: String,
        /// The address.
        addr: IpAddr,
        /// The identity.
        owner: String,
        /// The node that holds it now.
        by: String,
        /// The holding that ended ([`Grant::holding`]): only SAs of it lost the address; a later
        /// holding of the same address here (the identity came back) is not concerned.
        holding: u64,
    },
    /// The identity of an IKE SA here came back on another node, which replaces it (`unique`,
    /// INITIAL_CONTACT across gateways): close it.
    SaReplaced {
        /// The identity.
        identity: String,
        /// The SA's SPIs.
        spi_i: u64,
        /// See `spi_i`.
        spi_r: u64,
        /// The node that replaced it.
        by: String,
    },
}

/// How one etcd member answers, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its client endpoint.
    pub endpoint: String,
    /// Whether it answered the last probe.
    pub reachable: bool,
    /// Whether it is the leader.
    pub leader: bool,
    /// Its version, or why it did not answer.
    pub detail: String,
}

/// The cluster as this node sees it, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node.
    pub node: String,
    /// Its number (the top octet of its SPIs).
    pub number: u8,
    /// Its etcd lease (hex), and its TTL in seconds.
    pub lease: String,
    /// See `lease`.
    pub ttl: u64,
    /// Whether the lease was renewed lately (etcd reachable with quorum).
    pub healthy: bool,
    /// Milliseconds since the lease was last renewed.
    pub renewed_ms_ago: u64,
    /// Each etcd member.
    pub members: Vec<MemberStatus>,
    /// Address leases this node's SAs hold.
    pub leases_held: usize,
    /// IKE SAs of this node in the directory.
    pub sas_listed: usize,
    /// Every node of the cluster, this one included.
    pub nodes: Vec<NodeRecord>,
    /// Writes to etcd so far (transactions, puts and deletes; not keep-alives).
    pub writes: u64,
    /// Times the lease ran out and was granted afresh.
    pub lease_renewals: u64,
    /// Leases another node took from this one.
    pub leases_taken: u64,
    /// IKE SAs another node replaced.
    pub sas_replaced: u64,
}

/// A lease this node's SAs hold.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) addr: IpAddr,
    /// The revision of our write of both keys: a release deletes them only if still at it.
    pub(crate) rev: i64,
    /// IKE SAs holding it here.
    pub(crate) refs: u32,
    /// Which holding of the address this is: a new one each time the node comes to hold it after
    /// not holding it (a takeover from another node ends a holding). A release names its holding,
    /// so the SAs of one that ended give back nothing of the next.
    pub(crate) holding: u64,
}

/// An address lent to an IKE SA, as [`Cluster::acquire`] hands it out and [`Cluster::release`]
/// takes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The address.
    pub addr: IpAddr,
    /// Which holding of it (see [`Cluster::release`]).
    pub holding: u64,
}

/// An IKE SA in the directory.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) key: String,
    pub(crate) entry: SaEntry,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) lease: i64,
    pub(crate) number: u8,
    pub(crate) healthy: bool,
    pub(crate) renewed: Instant,
    /// The last holding number given out.
    pub(crate) holdings: u64,
    /// Allocations under way, by (pool, owner): an orphan check leaves their keys alone.
    pub(crate) allocating: HashMap<(String, String), u32>,
    /// By (pool, owner).
    pub(crate) held: HashMap<(String, String), Held>,
    /// By SPIs (initiator's, responder's).
    pub(crate) listed: HashMap<(u64, u64), Listed>,
    /// Every node's record, by name, as the watch sees them.
    pub(crate) nodes: BTreeMap<String, NodeRecord>,
    /// What this node last published, and when.
    pub(crate) load: u64,
    pub(crate) published: Option<(u64, Instant)>,
    /// A publication is on its way (delayed to keep to [`LOAD_EVERY`]).
    pub(crate) publish_scheduled: bool,
    pub(crate) events: VecDeque<ClusterEvent>,
    pub(crate) members: Vec<MemberStatus>,
    pub(crate) lease_renewals: u64,
    pub(crate) leases_taken: u64,
    pub(crate) sas_replaced: u64,
}

/// A write that needs no answer, done in order in the background.
#[derive(Debug)]
pub(crate) enum Job {
    Release {
        pool: String,
        owner: String,
    },
    /// An allocation failed after sending a transaction that may have committed: keys of this
    /// node's for the identity that no SA here holds are deleted.
    Orphan {
        pool: String,
        owner: String,
    },
    /// The listed SA of these SPIs, as it is when the job runs (gone: nothing to write).
    SaPut {
        spis: (u64, u64),
        replace_identity: bool,
    },
    SaDelete {
        key: String,
    },
    Publish,
}

pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) layout: Layout,
    pub(crate) state: Mutex<State>,
    pub(crate) writes: AtomicU64,
    /// Bounds every request that the IKE thread waits for.
    pub(crate) timeout: Duration,
    /// The writer's queue.
    pub(crate) jobs: mpsc::UnboundedSender<Job>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind: go on with it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Something failed on the way to etcd: new clients are refused from now on if the lease was
    /// not renewed for so long that it may run out before another try (two request bounds before
    /// the TTL), and served meanwhile: one hung member costs nothing.
    pub(crate) fn suspect(&self) {
        let stale = self.settings.ttl.saturating_sub(self.timeout * 2).max(self.timeout);
        let mut st = self.state();
        if st.renewed.elapsed() > stale {
            st.healthy = false;
        }
    }

    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn put_opts(&self, lease: i64) -> Option<PutOptions> {
        Some(PutOptions::new().with_lease(lease))
    }

    pub(crate) fn my_record(&self, st: &State) -> NodeRecord {
        NodeRecord {
            node: self.settings.node.clone(),
            number: st.number,
            address: self.settings.address.clone(),
            ike_sas: st.load,
            redirect_above: self.settings.redirect_above,
        }
    }
}

/// This node's membership of the cluster. Dropping it revokes the node's etcd lease, which frees
/// every lease and directory entry it holds at once.
pub struct Cluster {
    rt: tokio::runtime::Runtime,
    client: Arc<Etcd>,
    shared: Arc<Shared>,
    /// Whether dropping revokes the lease (a node leaving on purpose) or not ([`Cluster::crash`]).
    revoke: bool,
}

impl core::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.shared.settings.node).finish_non_exhaustive()
    }
}

pub(crate) fn options(s: &Settings, timeout: Duration) -> ConnectOptions {
    let mut o = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(s.ttl / 3, timeout)
        // A member cut off from the leader fails requests at once instead of holding them.
        .with_require_leader(true);
    if let Some(tls) = &s.tls {
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            t = t.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(Identity::from_pem(cert, key.as_slice()));
        }
        o = o.with_tls(t);
    }
    o
}

pub(crate) async fn within<T>(
    d: Duration,
    f: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(d, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ClusterError::Timeout(d)),
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, ClusterError> {
    serde_json::from_slice(kv.value())
        .map_err(|e| ClusterError::BadValue { key: String::from_utf8_lossy(kv.key()).into_owned(), why: e.to_string() })
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own plain structs: serialising them cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Cluster {
    /// Joins the cluster: connects to etcd, takes a lease of `ttl` and the lowest free node number,
    /// publishes the node's record and starts following the others.
    pub fn join(settings: Settings) -> Result<Self, ClusterError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("oxswan-etcd")
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        // Long enough for a leader election, short enough that a client's retransmission finds an
        // answer: a third of the TTL, from 1 to 3 seconds.
        let timeout = (settings.ttl / 3).clamp(Duration::from_secs(1), Duration::from_secs(3));
        let layout = Layout::new(&settings.prefix);
        let endpoints = settings.endpoints.clone();
        // Each request a third of that, so one that finds its member gone leaves time for another.
        let opts = options(&settings, timeout / 3);
        let ttl = i64::try_from(settings.ttl.as_secs()).unwrap_or(i64::MAX);
        let client = Arc::new(Etcd::new(endpoints, opts, timeout));
        let (lease, number) = rt.block_on(async {
            let lease = within(timeout * 2, client.lease_grant(ttl)).await?.id();
            let number = claim_number(&client, &layout, &settings.node, lease, timeout).await?;
            Ok::<_, ClusterError>((lease, number))
        })?;
        let state = State {
            lease,
            number,
            healthy: true,
            renewed: Instant::now(),
            holdings: 0,
            allocating: HashMap::new(),
            held: HashMap::new(),
            listed: HashMap::new(),
            nodes: BTreeMap::new(),
            load: 0,
            published: None,
            publish_scheduled: false,
            events: VecDeque::new(),
            members: Vec::new(),
            lease_renewals: 0,
            leases_taken: 0,
            sas_replaced: 0,
        };
        let (jobs, rx) = mpsc::unbounded_channel();
        let shared =
            Arc::new(Shared { settings, layout, state: Mutex::new(state), writes: AtomicU64::new(0), timeout, jobs });
        let cluster = Self { rt, client, shared, revoke: true };
        // The node's record first, so the others see it before its first client.
        let (record, key) = {
            let st = cluster.shared.state();
            (cluster.shared.my_record(&st), cluster.shared.layout.node(&cluster.shared.settings.node))
        };
        let opts = cluster.shared.put_opts(lease);
        cluster.rt.block_on(within(timeout, cluster.client.put(key, encode(&record), opts)))?;
        cluster.shared.wrote();
        if let Ok(mut st) = cluster.shared.state.lock() {
            st.published = Some((0, Instant::now()));
        }
        cluster.rt.spawn(crate::tasks::keep_alive(cluster.client.clone(), cluster.shared.clone()));
        cluster.rt.spawn(crate::tasks::follow(cluster.client.clone(), cluster.shared.clone()));
        cluster.rt.spawn(crate::tasks::writer(cluster.client.clone(), cluster.shared.clone(), rx));
        cluster.rt.spawn(crate::tasks::probe(cluster.shared.clone()));
        Ok(cluster)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.settings.node
    }

    /// This node's number, 1 to 255: the top octet of the SPIs it chooses, so that a front end
    /// can route by SPI.
    pub fn number(&self) -> u8 {
        self.shared.state().number
    }

    /// Whether etcd renewed the node's lease lately.
    pub fn healthy(&self) -> bool {
        self.shared.state().healthy
    }

    fn check_healthy(&self) -> Result<(), ClusterError> {
        let st = self.shared.state();
        if st.healthy { Ok(()) } else { Err(ClusterError::Unavailable(st.renewed.elapsed())) }
    }

    /// An address of `pool` (whose addresses are `range`) for the identity `owner`: the one it
    /// holds anywhere in the cluster if it holds one (taken over from the node that held it: the
    /// client came back here), else a free one, the client's `requested` address where free.
    /// Waits for etcd; refused at once while etcd is unreachable.
    pub fn acquire(
        &self,
        pool: &str,
        range: &AddrRange,
        owner: &str,
        requested: Option<IpAddr>,
    ) -> Result<Grant, ClusterError> {
        let id = (pool.to_owned(), owner.to_owned());
        {
            let mut st = self.shared.state();
            if let Some(h) = st.held.get_mut(&id).filter(|h| h.refs > 0) {
                h.refs += 1;
                return Ok(Grant { addr: h.addr, holding: h.holding });
            }
        }
        self.check_healthy()?;
        *self.shared.state().allocating.entry(id.clone()).or_insert(0) += 1;
        let (shared, client) = (self.shared.clone(), self.client.clone());
        let range = *range;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.rt.spawn(async move {
            let r = allocate(&client, &shared, &id.0, &range, &id.1, requested).await;
            {
                let mut st = shared.state();
                if let Some(n) = st.allocating.get_mut(&id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        st.allocating.remove(&id);
                    }
                }
            }
            if r.is_err() {
                // A transaction whose answer was lost may have committed (and a retry of it on
                // another member then lost its compare): look for keys of ours no SA holds.
                let _ = shared.jobs.send(Job::Orphan { pool: id.0.clone(), owner: id.1.clone() });
            }
            if let Err(Ok(grant)) = tx.send(r) {
                // The caller gave up at its deadline, after etcd committed: give it back, or the
                // address would stay leased to nobody.
                tracing::debug!(target: "cluster", pool = %id.0, owner = %id.1, addr = %grant.addr, "an allocation given up on ended: releasing it");
                release_held(&shared, &id.0, grant, &id.1);
            }
        });
        let deadline = self.shared.timeout;
        let got = self.rt.block_on(async {
            match tokio::time::timeout(deadline, &mut rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(ClusterError::Task("the allocation ended without an answer".into())),
                Err(_) => {
                    // Closed, the allocation's answer can no longer arrive unseen: one sent
                    // before is taken, a later one is released by the allocation itself.
                    rx.close();
                    match rx.try_recv() {
                        Ok(r) => r,
                        Err(_) => Err(ClusterError::Timeout(deadline)),
                    }
                }
            }
        });
        if let Err(ClusterError::Timeout(_) | ClusterError::Etcd(_)) = &got {
            self.shared.suspect();
        }
        got
    }

    /// One IKE SA that held `grant` of `pool` for `owner` is gone; the last one of its holding
    /// frees it. A release of a holding that ended (another node took the address over) gives
    /// back nothing: the address may be this node's again, for other SAs.
    pub fn release(&self, pool: &str, grant: Grant, owner: &str) {
        release_held(&self.shared, pool, grant, owner);
    }

    /// Lists an IKE SA that came up here. With `replace` (the connection's `unique` policy, or the
    /// client's INITIAL_CONTACT) the identity's SAs on other nodes are marked replaced, and those
    /// nodes close them.
    pub fn sa_up(&self, entry: SaEntry, replace: bool) {
        let key = self.shared.layout.sa(&entry.identity, &self.shared.settings.node, entry.spi_i, entry.spi_r);
        let spis = (entry.spi_i, entry.spi_r);
        self.shared.state().listed.insert(spis, Listed { key, entry });
        let _ = self.shared.jobs.send(Job::SaPut { spis, replace_identity: replace });
    }

    /// A listed IKE SA's peer moved (MOBIKE, NAT rebinding).
    pub fn sa_moved(&self, spi_i: u64, spi_r: u64, remote: SocketAddr) {
        let mut st = self.shared.state();
        let Some(l) = st.listed.get_mut(&(spi_i, spi_r)) else { return };
        if l.entry.remote == remote {
            return;
        }
        l.entry.remote = remote;
        drop(st);
        let _ = self.shared.jobs.send(Job::SaPut { spis: (spi_i, spi_r), replace_identity: false });
    }

    /// A listed IKE SA was rekeyed: its entry moves to the new SPIs.
    pub fn sa_rekeyed(&self, old: (u64, u64), new: (u64, u64)) {
        let mut st = self.shared.state();
        let Some(mut l) = st.listed.remove(&old) else { return };
        let old_key = l.key.clone();
        (l.entry.spi_i, l.entry.spi_r) = new;
        l.key = self.shared.layout.sa(&l.entry.identity, &self.shared.settings.node, new.0, new.1);
        st.listed.insert(new, l);
        drop(st);
        let _ = self.shared.jobs.send(Job::SaDelete { key: old_key });
        let _ = self.shared.jobs.send(Job::SaPut { spis: new, replace_identity: false });
    }

    /// A listed IKE SA is gone.
    pub fn sa_down(&self, spi_i: u64, spi_r: u64) {
        let Some(l) = self.shared.state().listed.remove(&(spi_i, spi_r)) else { return };
        let _ = self.shared.jobs.send(Job::SaDelete { key: l.key });
    }

    /// The cluster's secret of `kind` for `epoch`: the one a node stored first, or `fresh` if
    /// this node is first. Kept in etcd for three epochs of `lifetime`, on a lease of its own.
    pub fn secret(
        &self,
        kind: &str,
        epoch: u64,
        lifetime: Duration,
        fresh: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, ClusterError> {
        self.check_healthy()?;
        let key = self.shared.layout.secret(kind, epoch);
        let client = self.client.clone();
        let shared = self.shared.clone();
        let t = self.shared.timeout;
        let ttl = i64::try_from(lifetime.as_secs().saturating_mul(3).max(1)).unwrap_or(i64::MAX);
        let got = self.rt.block_on(async move {
            let got = within(t, client.get(key.as_bytes(), None)).await?;
            let value = match got.kvs().first() {
                Some(kv) => kv.value().to_vec(),
                None => {
                    let lease = within(t, client.lease_grant(ttl)).await?.id();
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.as_bytes(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key.as_bytes(), fresh.to_vec(), shared.put_opts(lease))])
                        .or_else([TxnOp::get(key.as_bytes(), None)]);
                    let r = within(t, client.txn(txn)).await?;
                    shared.wrote();
                    if r.succeeded() {
                        fresh.to_vec()
                    } else {
                        let found = r.op_responses().into_iter().find_map(|op| match op {
                            etcd_client::TxnOpResponse::Get(g) => {
                                g.kvs().first().map(|kv| (kv.value().to_vec(), kv.lease()))
                            }
                            _ => None,
                        });
                        let (value, on) = found.unwrap_or_default();
                        // Another node was first: its secret is the cluster's, ours goes unused.
                        // Unless the secret found is ours, on our lease: the transaction was
                        // retried on another member after it had committed.
                        if on != lease {
                            let _ = within(t, client.lease_revoke(lease)).await;
                        }
                        value
                    }
                }
            };
            let value = Zeroizing::new(value);
            let arr: [u8; 32] = value.as_slice().try_into().map_err(|_| ClusterError::BadValue {
                key: key.clone(),
                why: format!("{} octets, not 32", value.len()),
            })?;
            Ok(Zeroizing::new(arr))
        });
        if let Err(ClusterError::Timeout(_) | ClusterError::Etcd(_)) = &got {
            self.shared.suspect();
        }
        got
    }

    /// The number of IKE SAs this node holds, published for the others' redirect decisions at most
    /// once a second.
    pub fn publish_load(&self, ike_sas: u64) {
        let mut st = self.shared.state();
        st.load = ike_sas;
        if st.publish_scheduled || st.published.is_some_and(|(n, _)| n == ike_sas) {
            return;
        }
        // The value written is the load when the write goes out, so changes meanwhile are not lost.
        let wait = st.published.map_or(Duration::ZERO, |(_, at)| LOAD_EVERY.saturating_sub(at.elapsed()));
        st.publish_scheduled = true;
        drop(st);
        let jobs = self.shared.jobs.clone();
        self.rt.spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = jobs.send(Job::Publish);
        });
    }

    /// Where to send a new client instead of serving it here: the least loaded node with room, if
    /// this node is at its `redirect_above`.
    pub fn redirect_target(&self) -> Option<String> {
        let st = self.shared.state();
        let me = self.shared.my_record(&st);
        redirect_target(&me, st.nodes.values()).and_then(|n| n.address.clone())
    }

    /// The nodes of the cluster as the watch last saw them.
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.shared.state().nodes.values().cloned().collect()
    }

    /// The next thing the daemon must act on.
    pub fn poll_event(&self) -> Option<ClusterEvent> {
        self.shared.state().events.pop_front()
    }

    /// Address leases this node's SAs hold, by pool.
    pub fn held_per_pool(&self) -> HashMap<String, u64> {
        let mut by = HashMap::new();
        for ((pool, _), h) in &self.shared.state().held {
            if h.refs > 0 {
                *by.entry(pool.clone()).or_insert(0) += 1;
            }
        }
        by
    }

    /// Etcd writes so far (transactions, puts, deletes; not keep-alives).
    pub fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// Stops without a word, as a node that crashed: its lease is not revoked, so what it held
    /// stays taken until the TTL runs out. For tests of failover.
    pub fn crash(mut self) {
        self.revoke = false;
    }

    /// The cluster's state for `status`.
    pub fn status(&self) -> ClusterStatus {
        let st = self.shared.state();
        ClusterStatus {
            node: self.shared.settings.node.clone(),
            number: st.number,
            lease: format!("{:x}", st.lease),
            ttl: self.shared.settings.ttl.as_secs(),
            healthy: st.healthy,
            renewed_ms_ago: u64::try_from(st.renewed.elapsed().as_millis()).unwrap_or(u64::MAX),
            members: st.members.clone(),
            leases_held: st.held.values().filter(|h| h.refs > 0).count(),
            sas_listed: st.listed.len(),
            nodes: st.nodes.values().cloned().collect(),
            writes: self.writes(),
            lease_renewals: st.lease_renewals,
            leases_taken: st.leases_taken,
            sas_replaced: st.sas_replaced,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.revoke {
            return;
        }
        // Leaving on purpose: free everything now rather than after the TTL.
        let lease = self.shared.state().lease;
        let t = self.shared.timeout;
        let _ = self.rt.block_on(within(t, self.client.lease_revoke(lease)));
    }
}

/// The lowest node number no live node holds, taken on `lease`.
async fn claim_number(client: &Etcd, layout: &Layout, node: &str, lease: i64, t: Duration) -> Result<u8, ClusterError> {
    for _ in 0..TRIES {
        let taken = within(t, client.get(layout.ids(), Some(GetOptions::new().with_prefix()))).await?;
        let used: HashSet<u8> =
            taken.kvs().iter().filter_map(|kv| kv.key_str().ok()?.rsplit('/').next()?.parse().ok()).collect();
        let Some(n) = (1..=255u8).find(|n| !used.contains(n)) else { return Err(ClusterError::NoNumber) };
        let key = layout.id(n);
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_bytes(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_bytes(), node.as_bytes(), Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key.as_bytes(), None)]);
        let r = within(t, client.txn(txn)).await?;
        // Ours already, on this lease: the transaction was retried on another member after it
        // had committed.
        let ours = r.op_responses().into_iter().any(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => {
                g.kvs().first().is_some_and(|kv| kv.value() == node.as_bytes() && kv.lease() == lease)
            }
            _ => false,
        });
        if r.succeeded() || ours {
            return Ok(n);
        }
    }
    Err(ClusterError::NoNumber)
}

pub(crate) fn txn_revision(r: &etcd_client::TxnResponse) -> i64 {
    r.header().map(|h| h.revision()).unwrap_or(0)
}
