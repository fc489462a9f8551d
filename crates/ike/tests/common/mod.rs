//! A simulated network for two (or more) endpoints, in the manner of quinn-proto's test `Pair`: a
//! virtual clock, latency, jitter (which reorders), loss, duplication, an MTU and an optional NAT, all
//! driven by a seeded generator so that every run is reproducible.
//!
//! The endpoints' randomness follows the seed too: [`Sim::add`] gives each endpoint the test provider
//! (`oxswan_crypto::test_provider`) seeded from the sim's seed, the endpoint's address and how many
//! endpoints that address had before (a restarted host draws anew), with the real ciphers, PRFs and
//! signatures and real X25519/ECP key exchanges whose private keys come from the seed as well (MODP and
//! ML-KEM are the test provider's fake ones). Nonces, SPIs, IVs, KE data and rekey jitter therefore
//! repeat with the seed, and a failing seed replays. Certificates made with rcgen, and ECDSA or RSA-PSS
//! signatures, are the exceptions: aws-lc draws their randomness itself.
//!
//! Every endpoint's random source passes through a [`SteeredRandom`], so that a test can choose the
//! first octet of an endpoint's next nonces ([`Sim::steer_nonces`]) and with it the outcome of a
//! collision (RFC 7296 §2.8.1, §2.8.2: the exchange with the lowest nonce loses).
//!
//! Endpoints added with [`Sim::add_null_cipher`] (or the pair of [`null_cipher_pair`]) protect their
//! messages with the test provider's identity cipher, so that [`payloads`] can read what is inside the
//! SK payload of every message on the wire.
//!
//! TCP (RFC 9329) is simulated as streams: a `Transport::Tcp` transmit to a node's TCP port
//! ([`Sim::tcp_port`]) opens a stream from a fresh ephemeral port of the sender unless one is open
//! between the two; what goes on a stream arrives in order, without loss or MTU, after the link's
//! latency; the acceptor's transmits go back on the stream, and are dropped when it is gone (the
//! responder never connects back, §6). [`Sim::break_streams`] drops every stream and what is in
//! flight on it, as a reset would; [`Sim::block_udp`] drops every UDP datagram, as a network that
//! blocks UDP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_crypto::provider::SecureRandom;
use oxswan_crypto::test_provider::TestProvider;
use oxswan_crypto::{CryptoProvider, Secret};
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::init::NONCE_LEN;
use oxswan_ike::{Endpoint, EndpointConfig, Event, LocalAuth, PeerConfig, RemoteAuth, Retransmit, Transmit, Transport};
use oxswan_wire::ts::TrafficSelector;
use oxswan_wire::{ExchangeType, Identity, Payload, PayloadType, ProtocolId};

/// 2026-11-24T00:00:00Z: certificate validity is judged against this wall-clock time.
pub const UNIX_EPOCH_AT_START: u64 = 1_795_478_400;

pub const ALICE_IP: &str = "192.0.2.1";
pub const BOB_IP: &str = "192.0.2.2";

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// SplitMix64: small, seeded, good enough to pick losses.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / ((1u64 << 53) as f64)) < p
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Link properties.
#[derive(Debug, Clone)]
pub struct Link {
    pub latency: Duration,
    /// Extra random delay up to this much per datagram: reorders.
    pub jitter: Duration,
    pub loss: f64,
    pub duplicate: f64,
    pub mtu: usize,
    /// A middlebox drops IP fragments.
    pub drop_ip_fragments: bool,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            mtu: 1500,
            drop_ip_fragments: false,
        }
    }
}

/// A datagram on the wire.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub at: Instant,
    pub seq: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
    pub transport: Transport,
}

/// A source NAT in front of one host: its private address is rewritten to `public` with a mapped port.
#[derive(Debug, Clone)]
pub struct Nat {
    pub private_ip: IpAddr,
    pub public_ip: IpAddr,
    map: HashMap<SocketAddr, SocketAddr>,
    back: HashMap<SocketAddr, SocketAddr>,
    next_port: u16,
}

impl Nat {
    pub fn new(private_ip: &str, public_ip: &str) -> Self {
        Self {
            private_ip: private_ip.parse().unwrap(),
            public_ip: public_ip.parse().unwrap(),
            map: HashMap::new(),
            back: HashMap::new(),
            next_port: 40000,
        }
    }
    fn outbound(&mut self, from: SocketAddr) -> SocketAddr {
        if let Some(m) = self.map.get(&from) {
            return *m;
        }
        let m = SocketAddr::new(self.public_ip, self.next_port);
        self.next_port += 1;
        self.map.insert(from, m);
        self.back.insert(m, from);
        m
    }
}

/// Decides by a datagram's index in the log and its bytes whether the network loses it.
pub type DropFilter = Box<dyn FnMut(usize, &[u8]) -> bool>;

/// The seed of the provider of the `incarnation`-th endpoint (0 for the first) at `ip` in a sim seeded
/// with `seed`: different for every endpoint, and for a host that restarts.
pub fn endpoint_seed(seed: u64, ip: IpAddr, incarnation: u32) -> u64 {
    let octets = match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    let mut x = Rng::new(seed).next_u64();
    for chunk in octets.chunks(8).chain([&u64::from(incarnation).to_be_bytes()[..]]) {
        x = Rng::new(x ^ u64::from_be_bytes(chunk.try_into().unwrap())).next_u64();
    }
    x
}

/// What a test chose for the first octet of an endpoint's nonces.
#[derive(Debug, Default)]
struct NonceSteer {
    /// For the next nonces, one each, in order.
    queue: VecDeque<u8>,
    /// For every nonce after those.
    standing: Option<u8>,
    /// Every nonce-sized draw so far, as handed out.
    drawn: Vec<Vec<u8>>,
}

/// A random source that hands out its inner source's octets, except that the first octet of a draw of
/// `NONCE_LEN` octets (the length of the nonces the engine makes) can be chosen: see
/// [`Sim::steer_nonces`]. Other draws (SPIs, IVs, jitter) are untouched. The engine draws nothing else
/// of that length during an exchange, except a new cookie secret on an IKE_SA_INIT when the old one
/// has expired.
#[derive(Debug)]
pub struct SteeredRandom {
    inner: Arc<dyn SecureRandom>,
    steer: Arc<Mutex<NonceSteer>>,
}

impl SecureRandom for SteeredRandom {
    fn fill(&self, dest: &mut [u8]) -> oxswan_crypto::Result<()> {
        self.inner.fill(dest)?;
        if dest.len() == NONCE_LEN {
            let mut steer = self.steer.lock().unwrap();
            if let Some(first) = steer.queue.pop_front().or(steer.standing) {
                dest[0] = first;
            }
            steer.drawn.push(dest.to_vec());
        }
        Ok(())
    }
}

/// Two or more endpoints on one simulated network.
pub struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub rng: Rng,
    pub link: Link,
    pub nodes: BTreeMap<IpAddr, Endpoint>,
    pub events: BTreeMap<IpAddr, Vec<Event>>,
    pub wire: Vec<InFlight>,
    pub seq: u64,
    pub nat: Option<Nat>,
    /// Every datagram put on the wire, for assertions: (from, to, bytes).
    pub log: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// A filter that may drop a datagram by its index in the log (for "lose exactly this message").
    pub drop_filter: Option<DropFilter>,
    /// The seed everything follows from.
    pub seed: u64,
    /// When each datagram of `log` was sent, from the start.
    pub log_at: Vec<Duration>,
    /// How many datagrams of `log` the link lost (loss, dropped IP fragments; not the drop filter).
    pub lost: usize,
    /// Whether the link carried each datagram of `log` (at least one copy put on the wire), so a test
    /// can say why an exchange failed: which transmissions were lost.
    pub log_carried: Vec<bool>,
    /// How many endpoints each address has had.
    incarnations: BTreeMap<IpAddr, u32>,
    /// The nonce steering of each address's current endpoint.
    steering: BTreeMap<IpAddr, Arc<Mutex<NonceSteer>>>,
    /// The transport of each datagram of `log`.
    pub log_transport: Vec<Transport>,
    /// Every UDP datagram is dropped (and counted in `lost`).
    pub block_udp: bool,
    /// Every node accepts TCP streams on this port; `None`: none listens (a connection is refused).
    pub tcp_port: Option<u16>,
    /// Open streams: (opener's address, acceptor's address and port) → the opener's port.
    pub streams: HashMap<(IpAddr, SocketAddr), u16>,
    /// The next ephemeral port an opener gets.
    next_port: u16,
    /// Streams opened so far.
    pub streams_opened: usize,
    /// Streams that ended, or could not be opened, not told to their endpoint yet: (the
    /// endpoint, our address, the peer's end, whether we opened it, whether it had been open), as
    /// the daemon reports them.
    stream_ends: Vec<(IpAddr, IpAddr, SocketAddr, bool, bool)>,
    /// More addresses of an endpoint (a host with two uplinks): datagrams to the key reach the
    /// endpoint added at the value.
    pub aliases: BTreeMap<IpAddr, IpAddr>,
    /// Addresses that are gone: datagrams from or to them are lost.
    pub unreachable: std::collections::BTreeSet<IpAddr>,
    /// Key exchanges an endpoint handed out (`EndpointConfig::offload_key_exchange`) are kept in
    /// `held_work` instead of being computed and given back at once.
    pub hold_work: bool,
    pub held_work: Vec<(IpAddr, oxswan_ike::endpoint::InitWork)>,
}

impl Sim {
    pub fn new(seed: u64, link: Link) -> Self {
        let now = Instant::now();
        Self {
            now,
            start: now,
            rng: Rng::new(seed),
            link,
            nodes: BTreeMap::new(),
            events: BTreeMap::new(),
            wire: Vec::new(),
            seq: 0,
            nat: None,
            log: Vec::new(),
            drop_filter: None,
            seed,
            log_at: Vec::new(),
            lost: 0,
            log_carried: Vec::new(),
            incarnations: BTreeMap::new(),
            steering: BTreeMap::new(),
            log_transport: Vec::new(),
            block_udp: false,
            tcp_port: Some(4500),
            streams: HashMap::new(),
            next_port: 40_000,
            streams_opened: 0,
            stream_ends: Vec::new(),
            aliases: BTreeMap::new(),
            unreachable: Default::default(),
            hold_work: false,
            held_work: Vec::new(),
        }
    }

    /// Drops every TCP stream and what is in flight on them, as a reset would (RFC 9329 §6).
    /// Both ends hear of it, as the daemon tells its engine.
    pub fn break_streams(&mut self) {
        for ((opener, server), port) in std::mem::take(&mut self.streams) {
            self.stream_ends.push((opener, opener, server, true, true));
            self.stream_ends.push((server.ip(), server.ip(), SocketAddr::new(opener, port), false, true));
        }
        self.wire.retain(|p| p.transport != Transport::Tcp);
        self.collect();
    }

    /// The node that has address `ip` (its own, or an alias).
    fn node_of(&self, ip: IpAddr) -> Option<IpAddr> {
        let node = self.aliases.get(&ip).copied().unwrap_or(ip);
        self.nodes.contains_key(&node).then_some(node)
    }

    /// The stream ends of a TCP transmit from `local` to `remote`: the source address the peer sees,
    /// or `None` when there is no stream and the transmit may not open one.
    fn stream(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<SocketAddr> {
        // The opener, on a stream it has.
        if let Some(port) = self.streams.get(&(local.ip(), remote)) {
            return Some(SocketAddr::new(local.ip(), *port));
        }
        // The acceptor, back on a stream to the opener's port.
        let accepted = self.streams.iter().find(|((opener, server), port)| {
            *opener == remote.ip() && **port == remote.port() && server.ip() == local.ip()
        });
        if let Some(((_, server), _)) = accepted {
            return Some(*server);
        }
        // A new stream, to a port that listens.
        if Some(remote.port()) != self.tcp_port {
            return None;
        }
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(40_000);
        self.streams.insert((local.ip(), remote), port);
        self.streams_opened += 1;
        Some(SocketAddr::new(local.ip(), port))
    }

    /// An endpoint with the seeded provider (real ciphers) at `ip`, replacing any endpoint there.
    pub fn add(&mut self, ip: &str, config: EndpointConfig, peers: Vec<PeerConfig>) {
        let provider = self.next_provider(ip, false);
        self.add_with(ip, config, peers, provider);
    }

    /// An endpoint with the seeded provider and the NO-SECURITY null cipher: [`payloads`] reads its
    /// messages.
    pub fn add_null_cipher(&mut self, ip: &str, config: EndpointConfig, peers: Vec<PeerConfig>) {
        let provider = self.next_provider(ip, true);
        self.add_with(ip, config, peers, provider);
    }

    /// The provider the next endpoint added at `ip` gets from [`Sim::add`] (`null_cipher` false) or
    /// [`Sim::add_null_cipher`] (true): the test provider seeded by [`endpoint_seed`], with real
    /// X25519/ECP key exchanges.
    pub fn next_provider(&self, ip: &str, null_cipher: bool) -> CryptoProvider {
        let ip: IpAddr = ip.parse().unwrap();
        let incarnation = self.incarnations.get(&ip).copied().unwrap_or(0);
        let p = TestProvider::new(endpoint_seed(self.seed, ip, incarnation)).real_ke();
        if null_cipher { p.null_cipher().build() } else { p.build() }
    }

    /// An endpoint with `provider` at `ip`, replacing any endpoint there. Its random source is wrapped
    /// in a [`SteeredRandom`] (which changes nothing until a test steers it).
    pub fn add_with(&mut self, ip: &str, config: EndpointConfig, peers: Vec<PeerConfig>, provider: CryptoProvider) {
        let ip: IpAddr = ip.parse().unwrap();
        let steer = Arc::new(Mutex::new(NonceSteer::default()));
        let provider = CryptoProvider {
            random: Arc::new(SteeredRandom { inner: provider.random, steer: steer.clone() }),
            ..provider
        };
        let ep = Endpoint::new(config, provider, peers, self.now, UNIX_EPOCH_AT_START).unwrap();
        self.nodes.insert(ip, ep);
        self.events.insert(ip, Vec::new());
        *self.incarnations.entry(ip).or_default() += 1;
        self.steering.insert(ip, steer);
    }

    /// The next nonces the endpoint at `ip` makes start with the octets of `first`, one each, in
    /// order (after any still queued). With [`Sim::steer_all_nonces`] this decides the lowest of the
    /// four nonces of a collision.
    pub fn steer_nonces(&mut self, ip: &str, first: &[u8]) {
        self.steering[&ip.parse::<IpAddr>().unwrap()].lock().unwrap().queue.extend(first);
    }

    /// Every nonce the endpoint at `ip` makes from now on (after those queued by
    /// [`Sim::steer_nonces`]) starts with `first`; `None` leaves them as drawn.
    pub fn steer_all_nonces(&mut self, ip: &str, first: Option<u8>) {
        self.steering[&ip.parse::<IpAddr>().unwrap()].lock().unwrap().standing = first;
    }

    /// Every nonce-sized draw of the endpoint at `ip` so far, in order, as it was handed out.
    pub fn nonces_drawn(&self, ip: &str) -> Vec<Vec<u8>> {
        self.steering[&ip.parse::<IpAddr>().unwrap()].lock().unwrap().drawn.clone()
    }

    pub fn ep(&mut self, ip: &str) -> &mut Endpoint {
        self.nodes.get_mut(&ip.parse::<IpAddr>().unwrap()).unwrap()
    }

    pub fn ep_ref(&self, ip: &str) -> &Endpoint {
        &self.nodes[&ip.parse::<IpAddr>().unwrap()]
    }

    pub fn events(&self, ip: &str) -> &[Event] {
        &self.events[&ip.parse::<IpAddr>().unwrap()]
    }

    /// The CHILD SAs of `sa` as the data plane of `ip` holds them: the endpoint's view of each
    /// (which has no keys: it keeps none once it handed them over), with the keys its
    /// `ChildSaReady` carried.
    pub fn installed(&mut self, ip: &str, sa: oxswan_ike::SaHandle) -> Vec<oxswan_ike::ChildSa> {
        let children = self.ep(ip).children(sa);
        let events = self.events.get(&ip.parse::<IpAddr>().unwrap()).map_or(&[][..], Vec::as_slice);
        children
            .into_iter()
            .map(|mut c| {
                let ready = events.iter().rev().find_map(|e| match e {
                    Event::ChildSaReady { child, .. } if child.spi_in == c.spi_in => Some(child),
                    _ => None,
                });
                assert!(c.encr_in.is_empty() && c.encr_out.is_empty(), "the endpoint keeps no CHILD SA keys");
                let ready = ready.expect("every CHILD SA was announced with ChildSaReady");
                c.encr_in = ready.encr_in.clone();
                c.integ_in = ready.integ_in.clone();
                c.encr_out = ready.encr_out.clone();
                c.integ_out = ready.integ_out.clone();
                c
            })
            .collect()
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves what the endpoints produced onto the wire and into the event logs.
    fn collect(&mut self) {
        let ips: Vec<IpAddr> = self.nodes.keys().copied().collect();
        for ip in ips {
            // Offloaded key exchanges, computed here as a daemon's workers would (or held).
            loop {
                let now = self.now;
                let ep = self.nodes.get_mut(&ip).unwrap();
                let Some(w) = ep.poll_work() else { break };
                if self.hold_work {
                    self.held_work.push((ip, w));
                } else {
                    ep.handle_work(now, w.run());
                }
            }
            loop {
                let ep = self.nodes.get_mut(&ip).unwrap();
                let Some(t) = ep.poll_transmit() else { break };
                self.send(t);
            }
            let ends: Vec<_> = self.stream_ends.iter().filter(|e| e.0 == ip).copied().collect();
            self.stream_ends.retain(|e| e.0 != ip);
            let now = self.now;
            let ep = self.nodes.get_mut(&ip).unwrap();
            for (_, local, remote, opener, connected) in ends {
                ep.tcp_stream_closed(now, (local, remote), opener, connected);
            }
            loop {
                let ep = self.nodes.get_mut(&ip).unwrap();
                let Some(t) = ep.poll_transmit() else { break };
                self.send(t);
            }
            let ep = self.nodes.get_mut(&ip).unwrap();
            while let Some(e) = ep.poll_event() {
                self.events.get_mut(&ip).unwrap().push(e);
            }
        }
    }

    fn send(&mut self, t: Transmit) {
        let Transmit { mut local, remote, transport, payload } = t;
        if transport == Transport::Tcp {
            self.log.push((local, remote, payload.clone()));
            self.log_at.push(self.elapsed());
            self.log_transport.push(transport);
            self.log_carried.push(false);
            let Some(from) = self.stream(local, remote) else {
                // Refused, or no stream back to the opener: the sender hears that it ended.
                let opener = Some(remote.port()) == self.tcp_port;
                if let Some(node) = self.node_of(local.ip()) {
                    self.stream_ends.push((node, local.ip(), remote, opener, false));
                }
                self.lost += 1;
                return;
            };
            self.seq += 1;
            if let Some(c) = self.log_carried.last_mut() {
                *c = true;
            }
            // In order: a stream's packets never overtake one another (no jitter).
            self.wire.push(InFlight {
                at: self.now + self.link.latency,
                seq: self.seq,
                from,
                to: remote,
                data: payload,
                transport,
            });
            return;
        }
        // A NAT rewrites the source of its private host's packets.
        if let Some(nat) = self.nat.as_mut()
            && local.ip() == nat.private_ip
        {
            local = nat.outbound(local);
        }
        let index = self.log.len();
        self.log.push((local, remote, payload.clone()));
        self.log_at.push(self.elapsed());
        self.log_transport.push(transport);
        self.log_carried.push(false);
        if self.block_udp {
            self.lost += 1;
            return;
        }
        if let Some(f) = self.drop_filter.as_mut()
            && f(index, &payload)
        {
            return;
        }
        if self.unreachable.contains(&local.ip()) || self.unreachable.contains(&remote.ip()) {
            self.lost += 1;
            return;
        }
        // Larger than the MTU: IP fragments, each of which can be lost (or all are dropped by a
        // middlebox that filters fragments). IKE fragmentation (RFC 7383) is not implemented yet.
        let fragments = (payload.len() + 28).div_ceil(self.link.mtu.max(68));
        if fragments > 1 && self.link.drop_ip_fragments {
            self.lost += 1;
            return;
        }
        for _ in 0..fragments {
            if self.rng.chance(self.link.loss) {
                self.lost += 1;
                return;
            }
        }
        if let Some(c) = self.log_carried.get_mut(index) {
            *c = true;
        }
        let copies = if self.rng.chance(self.link.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = Duration::from_micros(self.rng.below(self.link.jitter.as_micros() as u64 + 1));
            self.seq += 1;
            self.wire.push(InFlight {
                at: self.now + self.link.latency + jitter,
                seq: self.seq,
                from: local,
                to: remote,
                data: payload.clone(),
                transport,
            });
        }
    }

    /// When the next packet arrives or timer fires, with what the endpoints just produced on the
    /// wire first.
    pub fn next_event_at(&mut self) -> Option<Instant> {
        self.collect();
        let next_packet = self.wire.iter().map(|p| p.at).min();
        let next_timer = self.nodes.values().filter_map(|e| e.poll_timeout()).min();
        [next_packet, next_timer].into_iter().flatten().min()
    }

    /// Advances to the next thing that happens; false when nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.collect();
        let next_packet = self.wire.iter().map(|p| (p.at, p.seq)).min();
        let next_timer = self.nodes.values().filter_map(|e| e.poll_timeout()).min();
        let at = match (next_packet, next_timer) {
            (None, None) => return false,
            (Some((p, _)), None) => p,
            (None, Some(t)) => t,
            (Some((p, _)), Some(t)) => p.min(t),
        };
        if at > self.now {
            self.now = at;
        }
        if next_packet.is_some_and(|(p, _)| p <= self.now) {
            let (_, seq) = next_packet.unwrap();
            let i = self.wire.iter().position(|p| p.seq == seq).unwrap();
            let mut pkt = self.wire.remove(i);
            if let Some(nat) = self.nat.as_ref()
                && let Some(orig) = nat.back.get(&pkt.to)
            {
                pkt.to = *orig;
            }
            let now = self.now;
            let node = self.aliases.get(&pkt.to.ip()).copied().unwrap_or(pkt.to.ip());
            if let Some(ep) = self.nodes.get_mut(&node) {
                match pkt.transport {
                    Transport::Udp => ep.handle_datagram(now, pkt.to, pkt.from, &pkt.data),
                    Transport::Tcp => ep.handle_tcp(now, pkt.to, pkt.from, &pkt.data),
                }
            }
        } else {
            let now = self.now;
            for ep in self.nodes.values_mut() {
                if ep.poll_timeout().is_some_and(|t| t <= now) {
                    ep.handle_timeout(now);
                }
            }
        }
        self.collect();
        true
    }

    /// Runs until `done` holds or nothing is left to do or `limit` of virtual time has passed.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.now > deadline || !self.step() {
                return done(self);
            }
        }
    }

    /// Runs until there is nothing left to do (or an hour of virtual time).
    pub fn run(&mut self) {
        self.run_until(Duration::from_secs(3600), |_| false);
    }

    /// Advances the clock by `d`, handling everything due in between.
    pub fn advance(&mut self, d: Duration) {
        // What a command made the endpoints send goes on the wire first.
        self.collect();
        let target = self.now + d;
        self.run_until(d + Duration::from_secs(1), |s| {
            let next_packet = s.wire.iter().map(|p| p.at).min();
            let next_timer = s.nodes.values().filter_map(|e| e.poll_timeout()).min();
            let next = [next_packet, next_timer].into_iter().flatten().min();
            next.is_none_or(|n| n > target)
        });
        if self.now < target {
            self.now = target;
        }
    }
}

/// The parameters of the (single) established SA of the endpoint at `ip`.
pub fn info(sim: &mut Sim, ip: &str) -> oxswan_ike::IkeSaInfo {
    let ep = sim.ep(ip);
    let sa = ep.established()[0];
    ep.info(sa).unwrap()
}

pub fn has_event(events: &[Event], f: impl Fn(&Event) -> bool) -> bool {
    events.iter().any(f)
}

pub fn up(events: &[Event]) -> bool {
    has_event(events, |e| matches!(e, Event::IkeSaUp { .. }))
}

pub fn down(events: &[Event]) -> Option<oxswan_ike::DownReason> {
    events.iter().find_map(|e| match e {
        Event::IkeSaDown { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// The inbound SPIs of the pairs `events` switch the sending to (`ChildSaOutbound`).
pub fn switched_to(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaOutbound { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

pub fn child(events: &[Event]) -> Option<oxswan_ike::ChildSa> {
    events.iter().find_map(|e| match e {
        Event::ChildSaReady { child, .. } => Some((**child).clone()),
        _ => None,
    })
}

pub fn ts(s: &str) -> TrafficSelector {
    let (a, len) = s.split_once('/').unwrap();
    TrafficSelector::from_prefix(a.parse().unwrap(), len.parse().unwrap(), 0, 0, u16::MAX).unwrap()
}

pub fn child_config(name: &str, local: &[&str], remote: &[&str]) -> ChildConfig {
    ChildConfig {
        per_cpu_sas: false,
        name: name.into(),
        esp_proposals: parse_esp_proposals("aes256gcm16").unwrap(),
        local_ts: local
            .iter()
            .map(|s| if *s == "dynamic" { TsConfig::Dynamic } else { TsConfig::Selector(ts(s)) })
            .collect(),
        remote_ts: remote
            .iter()
            .map(|s| if *s == "dynamic" { TsConfig::Dynamic } else { TsConfig::Selector(ts(s)) })
            .collect(),
        mode: Mode::Tunnel,
        lifetime: Default::default(),
        volume: Default::default(),
    }
}

/// A PSK connection between alice (10.1.0.0/16) and bob (10.2.0.0/16).
pub fn psk_peer(
    name: &str,
    local_id: &str,
    remote_id: &str,
    psk: &str,
    local_net: &str,
    remote_net: &str,
) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        ike_proposals: parse_ike_proposals("aes256gcm16-prfsha256-x25519").unwrap(),
        prefer_initiator: false,
        local_id: Identity::Fqdn(local_id.into()),
        remote_id: Some(Identity::Fqdn(remote_id.into())),
        local_auth: LocalAuth::Psk(Secret::from_slice(psk.as_bytes())),
        remote_auth: RemoteAuth::Psk(Secret::from_slice(psk.as_bytes())),
        rsa_pss: false,
        children: vec![child_config("net", &[local_net], &[remote_net])],
        retransmit: Retransmit::default(),
        ike_lifetime: Default::default(),
        initial_contact: true,
        force_encap: false,
        dpd_delay: None,
        pools: Vec::new(),
        vips: Vec::new(),
        unique: Default::default(),
        fragmentation: true,
        tcp: oxswan_ike::TcpConfig::NO,
        // Off here so that the annotated exchanges stay as they were; tests/mobility.rs turns it on.
        mobike: false,
        childless: Default::default(),
        ppk_id: None,
        ppk_required: false,
        redirect: None,
        resumption: false,
        remote_addrs: Vec::new(),
    }
}

pub fn alice_psk() -> PeerConfig {
    psk_peer("to-bob", "alice.example", "bob.example", "correct horse battery staple", "10.1.0.0/16", "10.2.0.0/16")
}

pub fn bob_psk() -> PeerConfig {
    psk_peer("to-alice", "bob.example", "alice.example", "correct horse battery staple", "10.2.0.0/16", "10.1.0.0/16")
}

/// Alice and Bob with one connection each, on a link.
pub fn pair(seed: u64, link: Link, alice: PeerConfig, bob: PeerConfig) -> Sim {
    let mut sim = Sim::new(seed, link);
    sim.add(ALICE_IP, EndpointConfig::default(), vec![alice]);
    sim.add(BOB_IP, EndpointConfig::default(), vec![bob]);
    sim
}

/// [`pair`] with the null cipher on both sides and whole messages (no IKE fragments), so that
/// [`payloads`] reads every message.
pub fn null_cipher_pair(seed: u64, link: Link, alice: PeerConfig, bob: PeerConfig) -> Sim {
    let config = EndpointConfig { fragment_size: 65_535, ..EndpointConfig::default() };
    let mut sim = Sim::new(seed, link);
    sim.add_null_cipher(ALICE_IP, config.clone(), vec![alice]);
    sim.add_null_cipher(BOB_IP, config, vec![bob]);
    sim
}

/// Alice initiates her first connection to Bob on port 500.
pub fn initiate(sim: &mut Sim) -> oxswan_ike::SaHandle {
    let now = sim.now;
    let name = "to-bob";
    sim.ep(ALICE_IP).initiate(now, name, addr(ALICE_IP, 500), addr(BOB_IP, 500)).unwrap()
}

pub fn both_up(sim: &Sim) -> bool {
    up(sim.events(ALICE_IP)) && up(sim.events(BOB_IP))
}

/// The exchange type, flags and message ID of an IKE message, for annotated assertions.
pub fn describe(data: &[u8]) -> (oxswan_wire::ExchangeType, bool, u32) {
    let h = oxswan_wire::Header::parse(data).unwrap();
    (h.exchange_type, h.flags.response(), h.message_id)
}

/// Takes the first datagram whose (exchange, response, message ID) `matches` off the wire: the
/// network loses it, and the test gets it, to answer in its place or to deliver it changed.
pub fn intercept(
    sim: &mut Sim,
    matches: impl Fn(ExchangeType, bool, u32) -> bool + 'static,
) -> std::rc::Rc<std::cell::RefCell<Option<Vec<u8>>>> {
    let taken: std::rc::Rc<std::cell::RefCell<Option<Vec<u8>>>> = std::rc::Rc::default();
    let keep = std::rc::Rc::clone(&taken);
    sim.drop_filter = Some(Box::new(move |_, d| {
        let (exchange, response, id) = describe(d);
        if keep.borrow().is_none() && matches(exchange, response, id) {
            *keep.borrow_mut() = Some(d.to_vec());
            return true;
        }
        false
    }));
    taken
}

/// A message sealed by the null cipher, sealed again with its inner payloads as `change` makes
/// them (see [`null_keys`]).
pub fn reseal(datagram: &[u8], change: impl FnOnce(Vec<Payload>) -> Vec<Payload>) -> Vec<u8> {
    let h = *oxswan_wire::Message::parse(datagram).unwrap().header();
    let (provider, keys) = null_keys();
    oxswan_crypto::sk::protect(&provider, &keys, &h, &change(plain_payloads(datagram))).unwrap()
}

/// For [`reseal`]: N(ADDITIONAL_KEY_EXCHANGE) with link data the responder never sent.
pub fn other_link(inner: Vec<Payload>) -> Vec<Payload> {
    inner
        .into_iter()
        .map(|p| match p {
            Payload::Notify(n) if n.notify_type == oxswan_wire::NotifyType::ADDITIONAL_KEY_EXCHANGE => {
                Payload::Notify(oxswan_wire::notify::NotifyPayload::new(n.notify_type, b"other".to_vec()))
            }
            p => p,
        })
        .collect()
}

/// The provider and keys that open an SK payload sealed by the null cipher with AES-GCM-16 (any key
/// size: the null cipher ignores the key; 8-octet IV, 16-octet all-zero ICV).
pub fn null_keys() -> (CryptoProvider, oxswan_crypto::sk::SkKeys) {
    use oxswan_crypto::alg::EncrAlg;
    let keys = oxswan_crypto::sk::SkKeys::new(
        EncrAlg::new(oxswan_wire::EncrId::AES_GCM_16, Some(256)).unwrap(),
        None,
        Secret::new(vec![0; 36]),
        Secret::default(),
    )
    .unwrap();
    (TestProvider::new(0).null_cipher().build(), keys)
}

/// The payloads of an IKE message as its receiver sees them: the unencrypted ones, and in place of an
/// SK payload the payloads inside it, which only works for endpoints with the null cipher and an
/// AES-GCM-16 IKE SA (panics on anything else: a test that reads an encrypted message is wrong). An
/// SKF fragment stays as it is.
pub fn plain_payloads(datagram: &[u8]) -> Vec<Payload> {
    let msg = oxswan_wire::Message::parse(datagram).unwrap();
    let mut out = Vec::new();
    for p in msg.parse_payloads().unwrap() {
        match p {
            Payload::Sk(_) => {
                let (provider, keys) = null_keys();
                let inner = oxswan_crypto::sk::unprotect(&provider, &keys, &msg)
                    .expect("an SK payload sealed by the null cipher with AES-GCM-16");
                out.extend(inner);
            }
            other => out.push(other),
        }
    }
    out
}

/// The types of [`plain_payloads`].
pub fn payload_types(datagram: &[u8]) -> Vec<PayloadType> {
    plain_payloads(datagram).iter().map(Payload::payload_type).collect()
}

/// A payload as strongSwan's exchange tests name it: `SA`, `KE`, `No`, `IDi`, `IDr`, `CERT`, `CERTREQ`,
/// `AUTH`, `TSi`, `TSr`, `CP`, `EAP`, `V`, `N(<notify type>)`, `D(IKE)` / `D(ESP)`, `SKF(n/total)`.
pub fn payload_name(p: &Payload) -> String {
    match p {
        Payload::Sa(_) => "SA".into(),
        Payload::Ke(_) => "KE".into(),
        Payload::IdI(_) => "IDi".into(),
        Payload::IdR(_) => "IDr".into(),
        Payload::Cert(_) => "CERT".into(),
        Payload::CertReq(_) => "CERTREQ".into(),
        Payload::Auth(_) => "AUTH".into(),
        Payload::Nonce(_) => "No".into(),
        Payload::Notify(n) => format!("N({:?})", n.notify_type),
        Payload::Delete(d) => format!("D({:?})", d.protocol),
        Payload::VendorId(_) => "V".into(),
        Payload::TsI(_) => "TSi".into(),
        Payload::TsR(_) => "TSr".into(),
        Payload::Sk(_) => "SK".into(),
        Payload::Skf(f) => format!("SKF({}/{})", f.fragment_number, f.total_fragments),
        Payload::Cp(_) => "CP".into(),
        Payload::Eap(_) => "EAP".into(),
        Payload::Unknown(u) => format!("{:?}", u.payload_type),
    }
}

/// The names of the payloads of a message, inner ones included (see [`plain_payloads`]).
pub fn payloads(datagram: &[u8]) -> Vec<String> {
    plain_payloads(datagram).iter().map(payload_name).collect()
}

/// One message of the log as the annotations of the exchange tests name it: exchange type, whether it
/// is a response, and its payloads (inner ones included).
pub fn message(datagram: &[u8]) -> (ExchangeType, bool, Vec<String>) {
    let (exchange, response, _) = describe(datagram);
    (exchange, response, payloads(datagram))
}

/// The messages of the log from index `from` on, as [`message`] names them, with their sender's
/// address.
pub fn messages_since(sim: &Sim, from: usize) -> Vec<(IpAddr, ExchangeType, bool, Vec<String>)> {
    sim.log[from..]
        .iter()
        .map(|(src, _, d)| {
            let (e, r, p) = message(d);
            (src.ip(), e, r, p)
        })
        .collect()
}

/// A message as the exchange tests assert it: its sender (`"alice"` for [`ALICE_IP`] and the NAT's
/// public address, `"bob"` for [`BOB_IP`], the address otherwise), exchange type, whether it is a
/// response, and its payloads as [`payloads`] names them.
pub type Named = (String, ExchangeType, bool, Vec<String>);

/// `response` of [`msg`]: the message is a request.
pub const REQUEST: bool = false;
/// `response` of [`msg`]: the message is a response.
pub const RESPONSE: bool = true;

/// An expected message, for comparing with [`named_messages`].
pub fn msg(sender: &str, exchange: ExchangeType, response: bool, payloads: &[&str]) -> Named {
    (sender.to_string(), exchange, response, payloads.iter().map(|p| p.to_string()).collect())
}

/// The messages of the log from index `from` on, as [`Named`].
pub fn named_messages(sim: &Sim, from: usize) -> Vec<Named> {
    let public = sim.nat.as_ref().map(|n| n.public_ip);
    sim.log[from..]
        .iter()
        .map(|(src, _, d)| {
            let ip = src.ip();
            let who = if ip.to_string() == ALICE_IP || Some(ip) == public {
                "alice".to_string()
            } else if ip.to_string() == BOB_IP {
                "bob".to_string()
            } else {
                ip.to_string()
            };
            let (e, r, p) = message(d);
            (who, e, r, p)
        })
        .collect()
}

/// [`named_messages`], sorted: for messages that cross, whose order on the wire depends on the moment.
pub fn sorted_messages(sim: &Sim, from: usize) -> Vec<Named> {
    sorted(named_messages(sim, from))
}

/// `v`, sorted.
pub fn sorted(mut v: Vec<Named>) -> Vec<Named> {
    v.sort();
    v
}

/// The Nonce payload of a message (null cipher), if it has one.
pub fn nonce_of(datagram: &[u8]) -> Option<Vec<u8>> {
    plain_payloads(datagram).into_iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.data),
        _ => None,
    })
}

/// The SPI of the (first) proposal of a message's SA payload (null cipher), if it has one: the
/// sender's inbound ESP SPI (4 octets) or its IKE SPI of a rekeyed IKE SA (8 octets).
pub fn proposal_spi(datagram: &[u8]) -> Option<Vec<u8>> {
    plain_payloads(datagram).into_iter().find_map(|p| match p {
        Payload::Sa(sa) => sa.proposals.first().map(|p| p.spi.clone()),
        _ => None,
    })
}

/// The SPIs a message's Delete payloads name (null cipher): `(protocol, SPIs)` for each.
pub fn deletes_of(datagram: &[u8]) -> Vec<(ProtocolId, Vec<Vec<u8>>)> {
    plain_payloads(datagram)
        .into_iter()
        .filter_map(|p| match p {
            Payload::Delete(d) => Some((d.protocol, d.spis)),
            _ => None,
        })
        .collect()
}
