//! The daemon's side of `[cluster]` (docs/cluster.md): joins the cluster on etcd, lends virtual IPs
//! from the shared pools, lists its IKE SAs in the directory, takes the cluster's ticket keys and
//! cookie secrets, publishes its load and redirects new clients to a less loaded node. The
//! cluster's own logic is in `oxswan-cluster`; this is the glue to the engine.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use oxswan_cluster::{Cluster, ClusterError, ClusterEvent, ClusterStatus, Grant, SaEntry, Settings, Tls};
use oxswan_config::Config;
use oxswan_crypto::{CryptoProvider, Secret};
use oxswan_ike::leases::{AddressLeases, Lease, LeaseError, PoolAttributes, PoolUsage};
use oxswan_ike::{Endpoint, IkeSaInfo, SaHandle};
use oxswan_pool::{AddrRange, Family};

/// How often a secret that could not be fetched is asked for again.
const SECRET_RETRY: Duration = Duration::from_secs(5);
/// How often the IKE thread looks at the cluster (its events, the load, the epochs): not per
/// datagram.
const TICK: Duration = Duration::from_millis(100);

/// Reads the files `[cluster]` names and joins.
pub fn join(config: &Config) -> anyhow::Result<Option<Arc<Cluster>>> {
    let Some(c) = &config.cluster else { return Ok(None) };
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("[cluster] {}", p.display()));
    let tls = match &c.tls {
        Some(t) => Some(Tls {
            ca: t.ca.as_deref().map(read).transpose()?,
            identity: match &t.cert_key {
                Some((cert, key)) => Some((read(cert)?, zeroize::Zeroizing::new(read(key)?))),
                None => None,
            },
        }),
        None => None,
    };
    let settings = Settings {
        endpoints: c.etcd.clone(),
        node: c.node.clone(),
        ttl: c.ttl,
        prefix: c.prefix.clone(),
        address: c.address.as_ref().map(ToString::to_string),
        redirect_above: c.redirect_above,
        tls,
    };
    let cluster = Cluster::join(settings)
        .with_context(|| format!("[cluster] joining as {} through etcd at {}", c.node, c.etcd.join(", ")))?;
    tracing::info!(
        target: "cluster",
        "joined the cluster as {} (number {}, lease TTL {:?}) through etcd at {}",
        c.node,
        cluster.number(),
        c.ttl,
        c.etcd.join(", ")
    );
    Ok(Some(Arc::new(cluster)))
}

/// Pools whose leases the cluster shares: each address is lent through an etcd transaction.
#[derive(Debug)]
pub struct ClusterLeases {
    cluster: Arc<Cluster>,
    /// In configuration order: name, range, and the attributes every lease of it carries.
    pools: Vec<(Arc<str>, AddrRange, Arc<PoolAttributes>)>,
}

impl ClusterLeases {
    /// The configuration's `[pools.*]`, shared through `cluster`.
    pub fn new(cluster: Arc<Cluster>, config: &Config) -> Self {
        let pools = config
            .pools
            .iter()
            .map(|p| {
                let attributes = PoolAttributes {
                    dns: p.dns.clone(),
                    split_include: p.split_include.iter().map(|s| (s.addr, s.prefix)).collect(),
                    dns_domains: p.dns_domains.clone(),
                };
                (Arc::from(p.name.as_str()), p.range, Arc::new(attributes))
            })
            .collect();
        Self { cluster, pools }
    }
}

impl AddressLeases for ClusterLeases {
    fn acquire(
        &mut self,
        pools: &[String],
        v6: bool,
        owner: &str,
        _host: Option<SocketAddr>,
        requested: Option<IpAddr>,
        _now: Instant,
    ) -> Result<Lease, LeaseError> {
        let family = if v6 { Family::V6 } else { Family::V4 };
        let mut tried = Vec::new();
        for name in pools {
            let Some((pool, range, attributes)) = self.pools.iter().find(|(n, ..)| **n == **name) else {
                return Err(LeaseError::UnknownPool(name.clone()));
            };
            if range.family() != family {
                continue;
            }
            let asked = requested.filter(|r| range.contains(*r));
            match self.cluster.acquire(pool, range, owner, asked) {
                Ok(g) => {
                    return Ok(Lease {
                        pool: pool.clone(),
                        addr: g.addr,
                        attributes: attributes.clone(),
                        holding: g.holding,
                    });
                }
                Err(ClusterError::Exhausted(_)) => tried.push(name.as_str()),
                Err(e) => return Err(LeaseError::Unavailable(e.to_string())),
            }
        }
        if tried.is_empty() {
            return Err(LeaseError::NoPool { family });
        }
        Err(LeaseError::Exhausted { pool: tried.join(", ") })
    }

    fn release(&mut self, lease: &Lease, owner: &str, _now: Instant) {
        self.cluster.release(&lease.pool, Grant { addr: lease.addr, holding: lease.holding }, owner);
    }

    fn usage(&self) -> Vec<PoolUsage> {
        let held = self.cluster.held_per_pool();
        self.pools
            .iter()
            .map(|(name, range, _)| PoolUsage {
                pool: name.to_string(),
                size: range.size(),
                online: held.get(&**name).copied().unwrap_or(0),
                offline: 0,
            })
            .collect()
    }
}

fn spi(s: oxswan_wire::IkeSpi) -> u64 {
    u64::from_be_bytes(s.0)
}

/// Who a peer is for the cluster: its EAP identity where it has one, else its IKE identity (as the
/// engine names lease owners and `unique` peers).
fn identity(info: &IkeSaInfo) -> String {
    info.eap_id.clone().unwrap_or_else(|| oxswan_ike::cert::identity_string(&info.remote_id))
}

/// What the IKE thread keeps of the cluster.
#[derive(Debug)]
pub struct Node {
    pub cluster: Arc<Cluster>,
    /// The IKE SAs listed in the directory, with their SPIs.
    listed: HashMap<SaHandle, (u64, u64)>,
    /// The epoch of the ticket keys and cookie secrets installed, and when to try again after a
    /// failure.
    tickets: Option<u64>,
    cookies: Option<u64>,
    retry: Option<Instant>,
    /// The redirect the load decided last (None: the configured one).
    redirect: Option<String>,
    /// When the IKE thread last looked ([`Node::due`]).
    ticked: Option<Instant>,
}

impl Node {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self {
            cluster,
            listed: HashMap::new(),
            tickets: None,
            cookies: None,
            retry: None,
            redirect: None,
            ticked: None,
        }
    }

    /// Whether it is time to look at the cluster again (at most every [`TICK`]).
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.ticked.is_some_and(|t| now.saturating_duration_since(t) < TICK) {
            return false;
        }
        self.ticked = Some(now);
        true
    }

    /// An IKE SA came up: as responder, list it; `unique = replace` or the client's INITIAL_CONTACT
    /// replace the identity's SAs on the other nodes.
    pub fn up(&mut self, sa: SaHandle, info: &IkeSaInfo, unique_replace: bool) {
        if info.original_initiator {
            return;
        }
        let entry = SaEntry {
            node: self.cluster.node().to_owned(),
            identity: identity(info),
            conn: info.name.clone(),
            spi_i: spi(info.spi_i),
            spi_r: spi(info.spi_r),
            remote: info.remote,
            vips: info.remote_vips.clone(),
            replaced_by: None,
        };
        self.listed.insert(sa, (entry.spi_i, entry.spi_r));
        self.cluster.sa_up(entry, unique_replace || info.initial_contact);
    }

    pub fn rekeyed(&mut self, old: SaHandle, new: SaHandle, info: &IkeSaInfo) {
        if let Some(spis) = self.listed.remove(&old) {
            let now = (spi(info.spi_i), spi(info.spi_r));
            self.cluster.sa_rekeyed(spis, now);
            self.listed.insert(new, now);
        }
    }

    pub fn moved(&mut self, sa: SaHandle, remote: SocketAddr) {
        if let Some((i, r)) = self.listed.get(&sa) {
            self.cluster.sa_moved(*i, *r, remote);
        }
    }

    pub fn down(&mut self, sa: SaHandle) {
        if let Some((i, r)) = self.listed.remove(&sa) {
            self.cluster.sa_down(i, r);
        }
    }

    /// The SA listed with these SPIs.
    fn by_spis(&self, spis: (u64, u64)) -> Option<SaHandle> {
        self.listed.iter().find(|(_, s)| **s == spis).map(|(h, _)| *h)
    }

    /// Installs the cluster's ticket keys and cookie secrets of the current epochs (and the one
    /// before) when they change; draws a candidate for an epoch no node has made yet.
    pub fn secrets(&mut self, endpoint: &mut Endpoint, provider: &CryptoProvider, lifetimes: (Duration, Duration)) {
        let now = Instant::now();
        if self.retry.is_some_and(|t| now < t) {
            return;
        }
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut failed = false;
        for (kind, lifetime) in [("ticket", lifetimes.0), ("cookie", lifetimes.1)] {
            let epoch = unix / lifetime.as_secs().max(1);
            let installed = if kind == "ticket" { self.tickets } else { self.cookies };
            if installed == Some(epoch) {
                continue;
            }
            match self.fetch(kind, epoch, lifetime, provider) {
                Ok((current, previous)) => {
                    let id = |e: u64| u32::try_from(e & u64::from(u32::MAX)).unwrap_or(0);
                    let (cur, prev) = ((id(epoch), current), Some((id(epoch.saturating_sub(1)), previous)));
                    if kind == "ticket" {
                        endpoint.set_shared_ticket_keys(cur, prev);
                        self.tickets = Some(epoch);
                    } else {
                        endpoint.set_shared_cookie_secrets(cur, prev);
                        self.cookies = Some(epoch);
                    }
                    tracing::debug!(target: "cluster", "{kind} secrets of epoch {epoch} installed");
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(target: "cluster", "the cluster's {kind} secret of epoch {epoch}: {e}; keeping the ones in use");
                }
            }
        }
        self.retry = failed.then(|| now + SECRET_RETRY);
    }

    fn fetch(
        &self,
        kind: &str,
        epoch: u64,
        lifetime: Duration,
        provider: &CryptoProvider,
    ) -> anyhow::Result<(Secret, Secret)> {
        let get = |e: u64| -> anyhow::Result<Secret> {
            let mut fresh = zeroize::Zeroizing::new([0u8; 32]);
            provider.random.fill(fresh.as_mut_slice()).map_err(|e| anyhow::anyhow!("random: {e:?}"))?;
            let s = self.cluster.secret(kind, e, lifetime, &fresh)?;
            Ok(Secret::from_slice(s.as_slice()))
        };
        Ok((get(epoch)?, get(epoch.saturating_sub(1))?))
    }

    /// Publishes the load, and points new clients elsewhere while this node is at its limit
    /// (`[cluster] redirect_above`; RFC 5685 §3); back to `configured` below it.
    pub fn load(&mut self, endpoint: &mut Endpoint, ike_sas: usize, configured: Option<&oxswan_ike::Gateway>) {
        self.cluster.publish_load(ike_sas as u64);
        let target = self.cluster.redirect_target();
        if target == self.redirect {
            return;
        }
        match &target {
            Some(t) => match oxswan_ike::Gateway::parse(t) {
                Ok(g) => {
                    tracing::info!(target: "cluster", "{ike_sas} IKE SAs: redirecting new clients to {g}");
                    endpoint.set_redirect(Some(g));
                }
                Err(e) => tracing::warn!(target: "cluster", "a node's address {t:?}: {e}"),
            },
            None => {
                tracing::info!(target: "cluster", "{ike_sas} IKE SAs: serving new clients again");
                endpoint.set_redirect(configured.cloned());
            }
        }
        self.redirect = target;
    }

    /// What the cluster asks of the engine: the SAs whose lease another node took, or whose
    /// identity came back elsewhere, go.
    pub fn events(&mut self, endpoint: &mut Endpoint) -> Vec<(SaHandle, String)> {
        let mut doomed = Vec::new();
        while let Some(e) = self.cluster.poll_event() {
            match e {
                ClusterEvent::LeaseTaken { pool, addr, owner, by, holding } => {
                    for sa in endpoint.established() {
                        let Some(info) = endpoint.info(sa) else { continue };
                        // Only the SAs of the holding that ended: the identity may hold the
                        // address here again, for newer SAs.
                        let of_it = info
                            .remote_vips
                            .iter()
                            .zip(&info.remote_vip_holdings)
                            .any(|(a, h)| *a == addr && *h == holding);
                        if of_it && identity(&info) == owner {
                            doomed.push((sa, format!("node {by} took its virtual IP {addr} (pool {pool})")));
                        }
                    }
                }
                ClusterEvent::SaReplaced { identity, spi_i, spi_r, by } => {
                    if let Some(sa) = self.by_spis((spi_i, spi_r)) {
                        self.listed.remove(&sa);
                        doomed.push((sa, format!("{identity} came back on node {by}")));
                    }
                }
            }
        }
        doomed
    }

    pub fn status(&self) -> ClusterStatus {
        self.cluster.status()
    }

    pub fn metrics(&self) -> crate::metrics::ClusterMetrics {
        let s = self.cluster.status();
        crate::metrics::ClusterMetrics {
            healthy: s.healthy,
            members_reachable: s.members.iter().filter(|m| m.reachable).count() as u64,
            members: s.members.len() as u64,
            nodes: s.nodes.len() as u64,
            leases_held: s.leases_held as u64,
            sas_listed: s.sas_listed as u64,
            writes: s.writes,
            lease_renewals: s.lease_renewals,
            leases_taken: s.leases_taken,
            sas_replaced: s.sas_replaced,
        }
    }
}
