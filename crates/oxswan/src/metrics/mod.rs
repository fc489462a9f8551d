//! Prometheus metrics (`[daemon] metrics`): what the daemon counts, as one snapshot of plain numbers
//! that the IKE thread publishes once a second ([`Recorder`]), and its encoding in the Prometheus
//! text exposition format 0.0.4 ([`render`], prometheus-client's encoder), served by [`http`].
//!
//! A scrape reads the last published snapshot through an `ArcSwap`: it never waits for the IKE
//! thread, takes no lock the IKE thread or the packet threads take, and costs them nothing. Names
//! follow Prometheus' conventions (an `oxswan_` prefix, `_total` on counters, base units); labels
//! take a small fixed set of values (state, reason, cause, direction, pool, request), never one per
//! peer.

pub mod http;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use oxswan_ike::leases::PoolUsage;
use oxswan_ike::{DownReason, Event, SaCounts, SaHandle};
use oxswan_wire::NotifyType;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::datapath::{DatapathStats, PairCounters};

/// How often the IKE thread publishes a snapshot: as often as anyone scrapes, and seldom enough
/// that a gateway with many SAs does not notice the walk over them.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Traffic through CHILD SAs, and what their inbound SAs dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Inner octets received.
    pub bytes_in: u64,
    /// Inner octets sent.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Dropped as replays (RFC 4303 §3.4.3).
    pub replayed: u64,
    /// Dropped for an ICV that did not verify (RFC 4303 §3.4.4).
    pub integrity_failed: u64,
    /// Dropped as malformed or badly padded.
    pub malformed: u64,
    /// Authentic, but outside the pair's selectors (RFC 4301 §5.2).
    pub outside_selectors: u64,
}

impl Traffic {
    /// Adds one pair's counters.
    pub fn add(&mut self, k: &PairCounters) {
        let add = |t: &mut u64, v: u64| *t = t.saturating_add(v);
        add(&mut self.bytes_in, k.usage.bytes_in);
        add(&mut self.bytes_out, k.usage.bytes_out);
        add(&mut self.packets_in, k.usage.packets_in);
        add(&mut self.packets_out, k.usage.packets_out);
        add(&mut self.replayed, k.replayed);
        add(&mut self.integrity_failed, k.integrity_failed);
        add(&mut self.malformed, k.malformed);
        add(&mut self.outside_selectors, k.outside_selectors);
    }
}

/// The upper bounds of the RADIUS round-trip buckets, in seconds: from a server on the LAN to one
/// that answers just before the default 2 s timeout, and the retransmission times after it.
pub const RTT_BOUNDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A histogram of durations over [`RTT_BOUNDS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative): `buckets[i]` counts those above bound `i - 1` up to
    /// bound `i`; those above the last bound are only in `count`.
    pub buckets: [u64; RTT_BOUNDS.len()],
    /// The sum of all observations, in seconds.
    pub sum: f64,
    /// How many there were.
    pub count: u64,
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = RTT_BOUNDS.iter().position(|b| secs <= *b)
            && let Some(n) = self.buckets.get_mut(i)
        {
            *n = n.saturating_add(1);
        }
        self.sum += secs;
        self.count = self.count.saturating_add(1);
    }
}

/// What the RADIUS client measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RadiusMetrics {
    /// Round trips of Access-Requests sent once.
    pub access: Histogram,
    /// Round trips of Accounting-Requests sent once.
    pub accounting: Histogram,
    /// Requests no server answered.
    pub timeouts: u64,
    /// Requests sent again.
    pub retransmissions: u64,
}

/// This node of the cluster (`[cluster]`, docs/cluster.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetrics {
    /// Whether the node's etcd lease was renewed lately.
    pub healthy: bool,
    /// etcd members that answered the last probe, and all of them.
    pub members_reachable: u64,
    pub members: u64,
    /// Nodes of the cluster as the watch sees them.
    pub nodes: u64,
    /// Address leases held here, and IKE SAs listed in the directory.
    pub leases_held: u64,
    pub sas_listed: u64,
    /// etcd writes (transactions, puts, deletes).
    pub writes: u64,
    /// Times the node's lease ran out and was granted afresh.
    pub lease_renewals: u64,
    /// Leases other nodes took from this one, and IKE SAs they replaced.
    pub leases_taken: u64,
    pub sas_replaced: u64,
}

/// Everything a scrape shows, as numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// IKE SAs by state.
    pub ike_sas: SaCounts,
    /// Half-open IKE SAs as the cookie threshold and the limits count them.
    pub half_open: u64,
    /// Whether every new initiator must return a cookie now (RFC 7296 §2.6).
    pub cookie_mode: bool,
    /// The engine's drop and refusal counters.
    pub engine: oxswan_ike::Stats,
    /// IKE SAs established (IKE_SA_INIT and IKE_AUTH completed), either role.
    pub handshakes: u64,
    /// Handshakes that failed, by reason.
    pub failures: BTreeMap<String, u64>,
    /// IKE SA rekeys (RFC 7296 §1.3.2).
    pub ike_rekeys: u64,
    /// CHILD SA pairs installed now.
    pub child_sas: u64,
    /// CHILD SA rekeys (RFC 7296 §1.3.3).
    pub child_rekeys: u64,
    /// Traffic and drops of every pair ever installed.
    pub traffic: Traffic,
    /// The data plane's own counters.
    pub datapath: DatapathStats,
    /// ESP packets dropped for TCP streams (RFC 9329): a full queue, or no stream.
    pub tcp_esp_dropped: u64,
    /// The virtual IP pools.
    pub pools: Vec<PoolUsage>,
    /// The RADIUS client, with `[radius]`.
    pub radius: Option<RadiusMetrics>,
    /// This node of the cluster, with `[cluster]`.
    pub cluster: Option<ClusterMetrics>,
}

/// The label of a notify: its RFC name in lower case, or `other` for a number without one (a peer
/// chooses the number; the label's values must stay few).
fn notify_label(n: NotifyType) -> String {
    let name = n.to_string();
    if name.starts_with("NotifyType(") { "other".to_owned() } else { name.to_ascii_lowercase() }
}

/// Why an IKE SA that was never established ended, as a label; `None` when that is no failure of
/// the handshake: we deleted it, or it was the new SA of a rekey or reauthentication that lost.
pub fn failure_reason(r: &DownReason) -> Option<String> {
    let fixed = match r {
        DownReason::PeerNotify(n) => return Some(format!("peer_{}", notify_label(*n))),
        DownReason::LocalDeleted | DownReason::Rekeyed | DownReason::Reauthenticated | DownReason::Redirected => {
            return None;
        }
        DownReason::AuthFailed(_) => "auth_failed",
        DownReason::Protocol(_) => "protocol",
        DownReason::Timeout => "timeout",
        DownReason::HalfOpenTimeout => "half_open_timeout",
        DownReason::PeerDeleted => "peer_deleted",
        DownReason::PeerRestarted => "peer_restarted",
        DownReason::Expired => "expired",
        DownReason::AddressFailure(_) => "address_failure",
        DownReason::NoVirtualIp => "no_virtual_ip",
        DownReason::Replaced => "replaced",
        DownReason::Duplicate => "duplicate",
    };
    Some(fixed.to_owned())
}

/// What the IKE thread counts from the engine's events and the data plane's removals, between
/// snapshots.
#[derive(Debug, Default)]
pub struct Tally {
    /// See [`Snapshot::handshakes`].
    pub handshakes: u64,
    /// See [`Snapshot::failures`].
    pub failures: BTreeMap<String, u64>,
    /// See [`Snapshot::ike_rekeys`].
    pub ike_rekeys: u64,
    /// See [`Snapshot::child_rekeys`].
    pub child_rekeys: u64,
    /// The traffic of the pairs that are gone: the totals never go back when a pair is deleted
    /// or rekeyed.
    pub gone: Traffic,
    /// IKE SAs established and not yet down: an SA that ends without being here never completed
    /// its handshake.
    up: HashSet<SaHandle>,
}

impl Tally {
    /// Counts what an event tells.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::IkeSaUp { sa, .. } => {
                self.handshakes = self.handshakes.saturating_add(1);
                self.up.insert(*sa);
            }
            Event::IkeSaRekeyed { new, .. } => {
                self.ike_rekeys = self.ike_rekeys.saturating_add(1);
                self.up.insert(*new);
            }
            Event::IkeSaDown { sa, reason, .. } => {
                if !self.up.remove(sa)
                    && let Some(r) = failure_reason(reason)
                {
                    self.fail(r);
                }
            }
            Event::ChildSaReady { child, .. } if child.replaces.is_some() => {
                self.child_rekeys = self.child_rekeys.saturating_add(1);
            }
            // A request refused at IKE_SA_INIT (no state kept, so no IkeSaDown follows).
            // INVALID_KE_PAYLOAD only asks for another group: the handshake goes on (RFC 7296 §1.2).
            Event::InitRejected { notify, .. } if *notify != NotifyType::INVALID_KE_PAYLOAD => {
                self.fail(format!("refused_{}", notify_label(*notify)));
            }
            _ => {}
        }
    }

    fn fail(&mut self, reason: String) {
        let n = self.failures.entry(reason).or_default();
        *n = n.saturating_add(1);
    }

    /// A pair left the data plane with these last counters.
    pub fn pair_gone(&mut self, k: &PairCounters) {
        self.gone.add(k);
    }
}

/// The IKE thread's side: the tally, and where and when it publishes.
#[derive(Debug)]
pub struct Recorder {
    /// What the events told.
    pub tally: Tally,
    published: Arc<ArcSwap<Snapshot>>,
    next: Instant,
}

impl Recorder {
    /// Publishes into `published`, the first time at once.
    pub fn new(published: Arc<ArcSwap<Snapshot>>, now: Instant) -> Self {
        Self { tally: Tally::default(), published, next: now }
    }

    /// Whether a snapshot is due.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Publishes `s`; the next is due [`PUBLISH_EVERY`] later.
    pub fn publish(&mut self, now: Instant, s: Snapshot) {
        self.published.store(Arc::new(s));
        self.next = now.checked_add(PUBLISH_EVERY).unwrap_or(now);
    }
}

/// A snapshot as prometheus-client's collector, encoded on each scrape.
#[derive(Debug)]
struct Collected(Arc<Snapshot>);

/// The Prometheus text (exposition format 0.0.4) of `s`.
pub fn render(s: Arc<Snapshot>) -> String {
    let mut registry = Registry::with_prefix("oxswan");
    registry.register_collector(Box::new(Collected(s)));
    let mut out = String::new();
    // Writing into a String fails only if an encoder does, which ours do not.
    if prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// One metric family: a descriptor and a value per label set (none: one value without labels).
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
}

impl Family {
    fn one(&self, e: &mut DescriptorEncoder, v: Value) -> std::fmt::Result {
        let m = e.encode_descriptor(self.name, self.help, self.unit.as_ref(), self.kind)?;
        v.encode(m)
    }

    /// Leaves the family out when it has no series: a descriptor without samples says nothing.
    fn each<L: EncodeLabelSet>(&self, e: &mut DescriptorEncoder, series: &[(L, Value)]) -> std::fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut m = e.encode_descriptor(self.name, self.help, self.unit.as_ref(), self.kind)?;
        for (labels, v) in series {
            v.encode(m.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// A sample's value.
#[derive(Clone, Copy)]
enum Value {
    Counter(u64),
    Gauge(u64),
    GaugeF(f64),
}

impl Value {
    fn encode(self, m: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        match self {
            Value::Counter(v) => ConstCounter::new(v).encode(m),
            Value::Gauge(v) => ConstGauge::new(v).encode(m),
            Value::GaugeF(v) => ConstGauge::new(v).encode(m),
        }
    }
}

fn counter(name: &'static str, help: &'static str) -> Family {
    Family { name, help, unit: None, kind: MetricType::Counter }
}

fn gauge(name: &'static str, help: &'static str) -> Family {
    Family { name, help, unit: None, kind: MetricType::Gauge }
}

impl Collector for Collected {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        use Value::{Counter as C, Gauge as G};
        let s = &*self.0;
        let e = &mut e;
        let states = s.ike_sas;
        gauge("ike_sas", "IKE SAs held, by state").each(
            e,
            &[
                ([("state", "connecting")], G(states.connecting)),
                ([("state", "half_open")], G(states.half_open)),
                ([("state", "established")], G(states.established)),
                ([("state", "closing")], G(states.closing)),
            ],
        )?;
        gauge("ike_half_open_sas", "Half-open IKE SAs, as the cookie threshold and the half-open limits count them")
            .one(e, G(s.half_open))?;
        gauge("ike_cookie_mode", "1 while every new initiator must return a cookie (RFC 7296 section 2.6)")
            .one(e, G(u64::from(s.cookie_mode)))?;
        counter("ike_handshakes", "IKE SAs established: IKE_SA_INIT and IKE_AUTH completed, either role")
            .one(e, C(s.handshakes))?;
        let failures: Vec<_> = s.failures.iter().map(|(r, n)| ([("reason", r.as_str())], C(*n))).collect();
        counter("ike_handshake_failures", "IKE SAs that ended before they were established, by reason")
            .each(e, &failures)?;
        counter("ike_rekeys", "IKE SAs rekeyed (RFC 7296 section 1.3.2)").one(e, C(s.ike_rekeys))?;
        counter("ike_cookies_sent", "COOKIE notifies sent (RFC 7296 section 2.6)").one(e, C(s.engine.cookies_sent))?;
        counter("ike_half_open_refused", "IKE_SA_INIT requests dropped by the half-open limits")
            .one(e, C(s.engine.half_open_refused))?;
        let drops = s.engine.drops;
        counter("ike_dropped_messages", "IKE messages dropped, by cause").each(
            e,
            &[
                ([("cause", "malformed")], C(drops.malformed)),
                ([("cause", "unknown_spi")], C(drops.unknown_spi)),
                ([("cause", "integrity")], C(drops.unauthenticated)),
                ([("cause", "other")], C(drops.other)),
            ],
        )?;
        counter("ike_invalid_spi_sent", "INVALID_IKE_SPI notifies sent (RFC 7296 section 2.21.4)")
            .one(e, C(s.engine.invalid_spi_sent))?;
        counter("ike_retransmits_answered", "Retransmitted IKE requests answered from the response cache")
            .one(e, C(s.engine.retransmits_answered))?;
        counter("ike_redirects_sent", "Clients sent to another gateway (RFC 5685)")
            .one(e, C(s.engine.redirects_sent))?;

        gauge("child_sas", "CHILD SA pairs installed in the data plane (both pairs while one is rekeyed)")
            .one(e, G(s.child_sas))?;
        counter("child_sa_rekeys", "CHILD SAs rekeyed (RFC 7296 section 1.3.3)").one(e, C(s.child_rekeys))?;
        let t = s.traffic;
        let bytes = Family {
            name: "child_sa",
            help: "Inner octets through CHILD SAs, deleted ones included",
            unit: Some(Unit::Bytes),
            kind: MetricType::Counter,
        };
        bytes.each(e, &[([("direction", "in")], C(t.bytes_in)), ([("direction", "out")], C(t.bytes_out))])?;
        counter("child_sa_packets", "Packets through CHILD SAs, deleted ones included")
            .each(e, &[([("direction", "in")], C(t.packets_in)), ([("direction", "out")], C(t.packets_out))])?;
        let d = s.datapath;
        counter("esp_dropped_packets", "Packets the data plane dropped, by cause").each(
            e,
            &[
                ([("cause", "replay")], C(t.replayed)),
                ([("cause", "integrity")], C(t.integrity_failed)),
                ([("cause", "malformed")], C(t.malformed)),
                ([("cause", "outside_selectors")], C(t.outside_selectors)),
                ([("cause", "too_big")], C(d.too_big)),
                ([("cause", "tcp_queue")], C(s.tcp_esp_dropped)),
            ],
        )?;
        counter(
            "esp_unknown_spi_packets",
            "ESP packets for an SPI without an SA when they came: held 2 s for an SA being installed, then dropped",
        )
        .one(e, C(d.esp_unknown_spi))?;
        counter("icmp_too_big_sent", "ICMP fragmentation-needed and ICMPv6 packet-too-big errors sent for them")
            .one(e, C(d.icmp_too_big_sent))?;
        counter("nat_keepalives_received", "NAT keepalives received (RFC 3948 section 2.3)")
            .one(e, C(d.keepalives_received))?;

        // A pool's size can exceed 2^64 (an IPv6 /48): then a float, exact to 53 bits.
        let size = |n: u128| u64::try_from(n).map_or(Value::GaugeF(n as f64), G);
        let sizes: Vec<_> = s.pools.iter().map(|p| ([("pool", p.pool.as_str())], size(p.size))).collect();
        gauge("pool_addresses", "Addresses a virtual IP pool can lend").each(e, &sizes)?;
        let leases: Vec<_> = s
            .pools
            .iter()
            .flat_map(|p| {
                [
                    ([("pool", p.pool.as_str()), ("state", "online")], G(p.online)),
                    ([("pool", p.pool.as_str()), ("state", "offline")], G(p.offline)),
                ]
            })
            .collect();
        gauge("pool_leases", "Leases of a pool: online (held by an IKE SA) or offline (reserved for its owner)")
            .each(e, &leases)?;

        if let Some(r) = &s.radius {
            let m = e.encode_descriptor(
                "radius_round_trip",
                "Time from a RADIUS request to its answer, for requests sent once",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            let mut m = m;
            for (kind, h) in [("access", &r.access), ("accounting", &r.accounting)] {
                let labels = [("request", kind)];
                let buckets: Vec<(f64, u64)> = RTT_BOUNDS.iter().copied().zip(h.buckets.iter().copied()).collect();
                m.encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum, h.count, &buckets, None)?;
            }
            counter("radius_timeouts", "RADIUS requests no server answered").one(e, C(r.timeouts))?;
            counter("radius_retransmissions", "RADIUS requests sent again").one(e, C(r.retransmissions))?;
        }
        if let Some(c) = &s.cluster {
            gauge("cluster_healthy", "Whether this node's etcd lease was renewed lately (1) or not (0)")
                .one(e, G(u64::from(c.healthy)))?;
            gauge("cluster_etcd_members", "etcd members, by whether they answered the last probe").each(
                e,
                &[
                    ([("state", "reachable")], G(c.members_reachable)),
                    ([("state", "unreachable")], G(c.members.saturating_sub(c.members_reachable))),
                ],
            )?;
            gauge("cluster_nodes", "Gateways of the cluster, this one included").one(e, G(c.nodes))?;
            gauge("cluster_leases_held", "Shared address leases this node's IKE SAs hold").one(e, G(c.leases_held))?;
            gauge("cluster_sas_listed", "IKE SAs of this node in the cluster's directory").one(e, G(c.sas_listed))?;
            counter("cluster_etcd_writes", "Writes to etcd: transactions, puts and deletes").one(e, C(c.writes))?;
            counter("cluster_lease_renewals", "Times this node's etcd lease ran out and was granted afresh")
                .one(e, C(c.lease_renewals))?;
            counter("cluster_leases_taken", "Leases another node took from this one").one(e, C(c.leases_taken))?;
            counter("cluster_sas_replaced", "IKE SAs another node replaced (unique, INITIAL_CONTACT)")
                .one(e, C(c.sas_replaced))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
