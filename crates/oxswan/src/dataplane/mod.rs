//! The user-space ESP data plane: TUN ↔ UDP-encapsulated ESP (RFC 3948), on plain threads.
//!
//! Packets move in batches: a read from the TUN device yields up to a TCP super-packet's worth of
//! segments, which are sealed in place and leave in one GSO send per peer; a receive on the NAT-T
//! socket yields a run the kernel coalesced, whose inner packets go to the TUN device coalesced
//! again. Nothing is allocated per packet. ESP for an SPI not installed yet, and cleartext a trap
//! caught, wait a moment in preallocated rings ([`PacketRing`]).
//!
//! The SA tables ([`SaTables`]) are an immutable snapshot behind an `ArcSwap`: a packet thread loads
//! it once per batch without a lock, and the IKE thread publishes a new one for every install or
//! removal, made from the previous one by copy on write (oxswan-esp's `Spd`), so it costs a few
//! microseconds whatever the number of SAs. The outbound lookup (RFC 4301 §5.1's SPD search) is by
//! destination ([`oxswan_esp::Spd`]); the inbound one by SPI (the SAD, RFC 4301 §4.4.2, §5.2).
//!
//! What fits the tunnel (issue 14): each pair carries its inner MTU, which the IKE thread derives
//! from the kernel's path MTU to the peer and the SA's exact overhead ([`DataPlane::refresh_mtu`]).
//! An inner packet larger than that gets ICMP "fragmentation needed" / ICMPv6 "packet too big"
//! back on the TUN device ([`oxswan_esp::icmp`]), and the MSS of TCP SYNs both ways is clamped to
//! what fits ([`oxswan_esp::mss`]); a packet thread compares a length and, for TCP, looks at the
//! SYN flag, nothing more.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use oxswan_config::ClampMss;
use oxswan_esp::icmp::{MAX_ERROR_LEN, too_big};
use oxswan_esp::mss::clamp_mss;
use oxswan_esp::{HEADROOM, PacketInfo, Selectors, TAILROOM};
use oxswan_io::udp::{MAX_GSO_BYTES, MAX_SEGMENTS};
use oxswan_io::{RecvScratch, Tun, TunRx, TunTx, UdpIo};
use oxswan_wire::udp_encap::{Udp4500, classify};

use crate::early::{EARLY_AGE, HELD_AGE, PacketRing};
use crate::streams::TcpBatch;
use oxswan_ike::Transport;

mod seam;
mod tables;

pub use tables::{ChildEntry, DEFAULT_PATH_MTU, EspPath, SaTables, Tables};

/// The TUN device's MTU, shared by every SA: a 1500-octet path less the largest ESP-in-UDP overhead
/// of any suite, over IPv6 when some outer address is IPv6 (20 octets more than IPv4): 1399 or
/// 1379. An SA whose path is narrower answers its too-big packets with ICMP (see the module).
pub fn tun_mtu(outer_v6: bool) -> u16 {
    oxswan_esp::mtu::worst_inner_mtu(DEFAULT_PATH_MTU, outer_v6)
}

/// The most workers each way, whatever the number of cores.
const MAX_WORKERS: usize = 16;

/// How many workers each way: one per core (up to [`MAX_WORKERS`]). Each outbound worker reads one
/// TUN queue; each inbound one reads one socket of the NAT-T port's `SO_REUSEPORT` group, which
/// has one more socket for IKE ([`oxswan_io::udp::steer_ike_apart`]).
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, MAX_WORKERS)
}

/// The NAT-T port's sockets on one address (RFC 3948): an `SO_REUSEPORT` group of one socket for
/// IKE behind the non-ESP marker and NAT keepalives, and one for each inbound worker's ESP
/// ([`oxswan_io::udp::steer_ike_apart`]); the first also sends (IKE, and all ESP). Without
/// `SO_REUSEPORT` or the steering program, fewer sockets or the kernel's own spreading, with a log
/// line: the data plane works the same, IKE then shares a socket with some ESP.
pub fn natt_sockets(addr: SocketAddr) -> std::io::Result<Vec<Arc<UdpIo>>> {
    let group = oxswan_io::udp::bind_reuseport(addr, workers() + 1)?;
    let all_apart = match oxswan_io::udp::steer_ike_apart(&group) {
        Ok(()) if group.len() > 1 => {
            tracing::debug!(target: "io", "UDP {addr}: IKE on one socket, ESP over {} by SPI", group.len() - 1);
            true
        }
        Ok(()) => false,
        Err(e) => {
            tracing::info!(target: "io", "UDP {addr}: IKE is not kept apart from ESP ({e}): the kernel spreads both");
            false
        }
    };
    let mut all = Vec::with_capacity(group.len());
    for (i, s) in group.into_iter().enumerate() {
        let r = socket2::SockRef::from(&s);
        let _ = r.set_recv_buffer_size(if i == 0 && all_apart { IKE_RECV_BUFFER } else { ESP_RECV_BUFFER });
        let _ = r.set_send_buffer_size(SEND_BUFFER);
        // The workers look at `stop` this often.
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        all.push(Arc::new(UdpIo::new(s)));
    }
    Ok(all)
}

/// The receive queue of an ESP socket: a bounded queue between the wire and its worker. Bursts of
/// ESP arrive faster than one worker drains them at times, and a queue too short turns them into
/// drops (and TCP's retransmissions: 30,000 in 8 s with 256 KiB on the 2-core test machine); one
/// too long turns a slow worker into latency for every packet behind. 1 MiB is about 7 ms at
/// 1.2 Gbit/s and 1 ms at 8; the kernel counts it in `truesize`, and caps it at
/// `net.core.rmem_max` unless root raised that.
const ESP_RECV_BUFFER: usize = 1 << 20;
/// The IKE socket's: IKE messages and keepalives only, once ESP is steered apart.
const IKE_RECV_BUFFER: usize = 256 << 10;
/// The send buffer of each, as before there were several (a send blocks when it is full: the
/// outbound workers' bound).
const SEND_BUFFER: usize = 8 << 20;

/// How often the IKE thread asks the kernel for the path MTUs (besides when a send hinted at a
/// change); at most [`MTU_LOOKUPS`] paths per round, round-robin, so many peers cost little.
const MTU_REFRESH: Duration = Duration::from_secs(1);
const MTU_LOOKUPS: usize = 256;

/// ICMP errors the TUN thread writes: a bucket of 10, refilled at 100 per second (Linux rate-limits
/// destination unreachable too, `icmp_ratelimit`; RFC 1812 §4.3.2.8, RFC 4443 §2.4 (f)).
const ICMP_BURST: u32 = 10;
const ICMP_EVERY: Duration = Duration::from_millis(10);

/// A connection that starts on traffic (`start_action`, `dpd_action` or `close_action` = trap): its
/// selectors, and whether the IKE thread was already told.
#[derive(Debug)]
pub struct Trap {
    /// The connection.
    pub name: String,
    /// Our and the peer's selectors of its children.
    pub selectors: Selectors,
    /// Set when a packet triggered it; the IKE thread clears it when the attempt ends.
    pub fired: AtomicBool,
}

/// Shared state of the packet threads.
#[derive(Debug)]
pub struct DataPlane {
    /// The SA tables.
    pub tables: SaTables,
    /// The TUN device's queues, one per worker ([`workers`]); at least one. The kernel spreads what
    /// it sends into the device over them by flow hash; each inbound worker writes to its own.
    pub tun: Vec<Tun>,
    /// NAT-T sockets by local address; more come when the host gains an address (MOBIKE).
    pub natt: ArcSwap<HashMap<IpAddr, Arc<UdpIo>>>,
    /// Set when the daemon stops.
    pub stop: AtomicBool,
    /// NAT keepalives received.
    pub keepalives: AtomicU64,
    /// ESP datagrams whose SPI had no SA.
    pub unknown_spi: AtomicU64,
    /// Connections waiting for traffic.
    pub traps: RwLock<Vec<Arc<Trap>>>,
    /// Where trap triggers go (the IKE thread).
    pub ike: crate::input::Inbox,
    /// ESP that came before its SA, by SPI.
    pub early: Mutex<PacketRing>,
    /// Cleartext a trap caught, for the SA the trap brings up.
    pub held: Mutex<PacketRing>,
    /// Pairs whose counters moved since the IKE thread last read them.
    pub moved: crate::dataplane::tables::Moved,
    /// Cryptography for the SAs it installs.
    pub provider: oxswan_crypto::CryptoProvider,
    /// The anti-replay window of its inbound SAs (RFC 4303 §3.4.3).
    pub replay_window: u32,
    /// Where new outbound SAs start numbering (tests only, `OXSWAN_TEST_SEQUENCE_START`).
    pub sequence_start: Option<u64>,
    /// TCP streams (RFC 9329): ESP of pairs whose IKE SA is on TCP goes into them.
    pub tcp: Arc<crate::streams::Streams>,
    /// The TUN device's MTU ([`tun_mtu`]).
    pub tun_mtu: u16,
    /// `[daemon] clamp_mss`.
    pub clamp_mss: ClampMss,
    /// Set by a packet thread when a send hinted that a path MTU changed; the IKE thread looks.
    pub pmtu_check: AtomicBool,
    /// When the path MTUs were last looked up, and where the next round starts.
    pub mtu_refreshed: Mutex<Option<Instant>>,
    /// See `mtu_refreshed`.
    pub mtu_cursor: AtomicUsize,
    /// Inner packets too big for their SA's path, dropped (with an ICMP error unless rate-limited).
    pub too_big: AtomicU64,
    /// ICMP errors written to the TUN device for them.
    pub icmp_sent: AtomicU64,
    /// Reads the kernel's path MTU to a peer, at install and in `refresh_mtu`.
    pub mtu_probe: oxswan_io::udp::PathMtuProbe,
    /// The TUN threads' batches, for [`Datapath::settle_sends`](crate::datapath::Datapath::settle_sends).
    pub sealing: Batches,
}

/// How long `settle_sends` waits for a batch at most: one takes microseconds; a thread stuck
/// longer (a full socket buffer) must not hold the IKE thread up.
pub const SETTLE_LIMIT: Duration = Duration::from_millis(20);

/// Each TUN thread's count of batches begun and ended: odd while it seals and sends a batch from
/// one snapshot of the SA tables. After the IKE thread changes the tables, the batches then in
/// progress may still seal on the pairs as they were; once each has ended, none can (the next
/// batch loads the new snapshot).
#[derive(Debug, Default)]
pub struct Batches {
    counts: Vec<AtomicU64>,
    /// Set by the IKE thread when it changed the tables and not yet waited the batches out: only
    /// then has `settle_sends` anything to wait for.
    changed: AtomicBool,
}

impl Batches {
    /// For `threads` TUN threads.
    pub fn new(threads: usize) -> Self {
        Self { counts: (0..threads).map(|_| AtomicU64::new(0)).collect(), changed: AtomicBool::new(false) }
    }

    /// Thread `i` starts a batch; before it loads the tables.
    fn begin(&self, i: usize) {
        if let Some(b) = self.counts.get(i) {
            b.fetch_add(1, Ordering::SeqCst);
        }
        // Pairs with the fence in `wait_out`: either that call sees this batch begun, or this
        // batch's load of the tables sees the change made before that call.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Thread `i` sent its batch and dropped its snapshot.
    fn end(&self, i: usize) {
        if let Some(b) = self.counts.get(i) {
            b.fetch_add(1, Ordering::Release);
        }
    }

    /// The IKE thread installed, activated or removed a pair.
    pub fn tables_changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Whether the tables changed since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// Waits until every batch in progress when called has ended, for at most `limit`; false if
    /// one had not by then. A thread found in a batch begun after the call is waited for too,
    /// needlessly but harmlessly: it is never more than one batch.
    pub fn wait_out(&self, limit: Duration) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        let deadline = Instant::now() + limit;
        for b in &self.counts {
            let at = b.load(Ordering::SeqCst);
            if at % 2 == 0 {
                continue;
            }
            while b.load(Ordering::Acquire) == at {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::yield_now();
            }
        }
        true
    }
}

/// The ICMP errors of one TUN thread: a buffer to build them in, the batch they are written in,
/// and the rate limit.
#[derive(Debug)]
struct IcmpOut {
    buf: Vec<u8>,
    tx: TunTx,
    tokens: u32,
    refilled: Option<Instant>,
}

impl IcmpOut {
    fn new() -> Self {
        Self { buf: vec![0; MAX_ERROR_LEN], tx: TunTx::default(), tokens: ICMP_BURST, refilled: None }
    }

    /// Whether an error may go now; refills the bucket first.
    fn allowed(&mut self) -> bool {
        let now = Instant::now();
        let since = self.refilled.map_or(ICMP_EVERY * ICMP_BURST, |t| now.saturating_duration_since(t));
        let add = u32::try_from(since.as_millis() / ICMP_EVERY.as_millis().max(1)).unwrap_or(u32::MAX);
        if add > 0 {
            self.tokens = self.tokens.saturating_add(add).min(ICMP_BURST);
            self.refilled = Some(now);
        }
        self.tokens > 0
    }

    /// For a packet longer than `mtu`: queues the ICMP error due (if the rate allows) and says
    /// whether one was due, in which case the packet is dropped. A packet that may go on (IPv4
    /// without DF, IPv6 up to 1280, a non-first fragment, an ICMP error) gets `false`: the kernel
    /// fragments its ESP datagram.
    fn answer(&mut self, pkt: &[u8], mtu: u16) -> bool {
        let allowed = self.allowed();
        // Over the rate, the source lookup is skipped: the answer is only "was one due".
        let source = |sender: IpAddr, dest: IpAddr| if allowed { error_source(sender, dest) } else { Some(dest) };
        let Some(n) = too_big(pkt, mtu, source, &mut self.buf) else { return false };
        if allowed
            && !self.tx.is_full()
            && let Some(e) = self.buf.get(..n)
        {
            self.tx.push(e);
            self.tokens = self.tokens.saturating_sub(1);
        }
        true
    }
}

/// The source of an ICMP error about a packet from `sender` to `dest`, written into the TUN device
/// as if it came from the tunnel. IPv6: an address of ours, the one the route to the sender picks
/// (RFC 4443 §2.2 (c)). IPv4: the packet's destination. RFC 1812 §4.3.2.4 would have one of the
/// router's addresses, but a packet the kernel receives from one of its own addresses (what the
/// TUN device is to it) is a martian source and dropped unless `accept_local`, and reverse-path
/// filtering would drop it too; the destination is routed into the TUN device, so it passes either,
/// and the sender's path MTU discovery reads only the quoted header (RFC 1191 §4).
fn error_source(sender: IpAddr, dest: IpAddr) -> Option<IpAddr> {
    match sender {
        IpAddr::V4(_) => Some(dest),
        IpAddr::V6(_) => {
            let s = UdpSocket::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)).ok();
            let ours = s.filter(|s| s.connect(SocketAddr::new(sender, 9)).is_ok()).and_then(|s| s.local_addr().ok());
            Some(ours.map_or(dest, |a| a.ip()))
        }
    }
}

impl DataPlane {
    /// Delivers what the peer sent on a pair before it was installed, and sends on it what a trap
    /// held for it (see [`PacketRing`]); once the routes are there too, so that answers find
    /// their way back.
    pub fn deliver_early(&self, entry: &ChildEntry) {
        let empty = |r: &Mutex<PacketRing>| r.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty();
        // Usually nothing waits: then no batch buffers (TUN and GSO, about 200 KiB) are made for
        // each new pair, which at thousands of pairs a second was half the IKE thread's time.
        let (no_early, no_held) = (empty(&self.early), empty(&self.held));
        if no_early && (no_held || !entry.outbound.load(Ordering::Relaxed)) {
            return;
        }
        let now = Instant::now();
        let mut tx = TunTx::default();
        let spi = entry.inb.spi();
        let queue = 0;
        let path = entry.path();
        let mut early = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        early.take(now, EARLY_AGE, |key, pkt| {
            let ours = key == spi;
            if ours {
                self.deliver(entry, pkt, None, queue, &mut tx);
            }
            ours
        });
        drop(early);
        if !tx.is_empty() {
            tracing::info!(target: "dataplane", "{}: delivered {} packet(s) that came before the SA", entry.name, tx.len());
            self.write_tun(queue, &mut tx);
        }
        if !entry.outbound.load(Ordering::Relaxed) {
            return;
        }
        let mut sent = 0;
        let mut out = GsoBatch::default();
        let mut tcp = TcpBatch::default();
        let socks = self.natt.load();
        let mut buf = Vec::new();
        // The SA's lock first, as the workers take it (before `held`, which they take for a trap).
        let sending = entry.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.take(now, HELD_AGE, |_, pkt| {
            let Some(info) = PacketInfo::parse(pkt).filter(|i| entry.selectors.allows_outbound(i)) else {
                return false;
            };
            buf.clear();
            buf.resize(HEADROOM, 0);
            buf.extend_from_slice(pkt);
            buf.resize(HEADROOM + pkt.len() + TAILROOM, 0);
            // A trap usually catches a connection's first packet: a SYN.
            if let (Some(mss), Some(p)) =
                (self.mss(entry, info.src.is_ipv6()), buf.get_mut(HEADROOM..HEADROOM + pkt.len()))
            {
                clamp_mss(p, mss);
            }
            let next_header = if info.src.is_ipv4() { 4 } else { 41 };
            if let Ok(range) = entry.out.seal(&mut buf, HEADROOM..HEADROOM + pkt.len(), next_header)
                && let Some(esp) = buf.get(range)
            {
                self.moved.note(entry);
                match path.transport {
                    Transport::Udp => out.push(&socks, path.local.ip(), path.remote, esp),
                    Transport::Tcp => tcp.push(&self.tcp, (path.local.ip(), path.remote), esp),
                }
                sent += 1;
            }
            true
        });
        drop(held);
        out.flush(&socks);
        tcp.flush(&self.tcp);
        drop(sending);
        self.note_sends(&mut out);
        if sent > 0 {
            tracing::info!(target: "dataplane", "{}: sent {sent} packet(s) held while the connection came up", entry.name);
        }
    }

    /// The MSS TCP SYNs through `child` are clamped to, if any (`[daemon] clamp_mss`): what fits
    /// the pair's inner MTU and the TUN device's, less the IP and TCP headers of the family.
    fn mss(&self, child: &ChildEntry, ipv6: bool) -> Option<u16> {
        match self.clamp_mss {
            ClampMss::Off => None,
            ClampMss::Fixed(m) => Some(m),
            ClampMss::Auto => Some(oxswan_esp::mtu::mss_for(child.inner_mtu().min(self.tun_mtu), ipv6)),
        }
    }

    /// After a send: a send the kernel refused as too big, or a GSO send that turned GSO off,
    /// may mean the path MTU fell; the IKE thread then looks at once.
    fn note_sends(&self, out: &mut GsoBatch) {
        if std::mem::take(&mut out.suspect) {
            self.pmtu_check.store(true, Ordering::Relaxed);
        }
    }

    /// Asks the kernel for the path MTU of each pair's path and sets the pairs' inner MTUs: every
    /// [`MTU_REFRESH`], or at once after a send hinted at a change ([`DataPlane::pmtu_check`]). The
    /// kernel learns a smaller path MTU from the ICMP errors routers send about our ESP datagrams
    /// (RFC 1191, RFC 8201), whichever socket sent them. Called by the IKE thread.
    pub fn refresh_mtu(&self, now: Instant) {
        let forced = self.pmtu_check.swap(false, Ordering::Relaxed);
        {
            let mut last = self.mtu_refreshed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !forced && last.is_some_and(|t| now.saturating_duration_since(t) < MTU_REFRESH) {
                return;
            }
            *last = Some(now);
        }
        let entries = self.tables.unordered();
        if entries.is_empty() {
            return;
        }
        let start = self.mtu_cursor.load(Ordering::Relaxed) % entries.len();
        let mut known: HashMap<(IpAddr, SocketAddr), u16> = HashMap::new();
        let mut changed = false;
        let mut done = 0;
        for e in entries.iter().cycle().skip(start).take(entries.len()) {
            let path = e.path();
            let key = (path.local.ip(), path.remote);
            let mtu = match known.get(&key) {
                Some(m) => *m,
                None if known.len() >= MTU_LOOKUPS => break,
                None => {
                    let m = self.mtu_probe.path_mtu(key.0, key.1).unwrap_or(DEFAULT_PATH_MTU);
                    known.insert(key, m);
                    m
                }
            };
            done += 1;
            if let Some((old, new)) = e.set_path_mtu(mtu) {
                changed = true;
                tracing::info!(
                    target: "dataplane",
                    "{}: path MTU to {} is {mtu}: inner packets up to {new} octets (was {old})",
                    e.name,
                    path.remote.ip()
                );
            }
        }
        self.mtu_cursor.store(start + done, Ordering::Relaxed);
        // GSO may have been turned off by sends whose segments exceeded the old path MTU.
        if changed {
            for s in self.natt.load().values() {
                s.retry_gso();
            }
        }
    }

    /// TUN → ESP: one thread per TUN queue. The kernel gives one flow's packets to one queue, so
    /// they are sealed and sent in order; an SA shared by flows on several queues is sealed by one
    /// worker at a time ([`ChildEntry::sending`]).
    pub fn tun_loop(self: Arc<Self>, queue: usize) {
        let Some(tun) = self.tun.get(queue) else { return };
        // This worker's resource (RFC 9611): the engine numbers them as the queues.
        let worker = u32::try_from(queue).unwrap_or(u32::MAX);
        let mut rx = TunRx::new(self.tun_mtu, HEADROOM, TAILROOM);
        let mut out = GsoBatch::default();
        let mut tcp = TcpBatch::default();
        let mut icmp = IcmpOut::new();
        while !self.stop.load(Ordering::Relaxed) {
            match tun.recv(&mut rx) {
                Ok(_) => {}
                Err(_) if self.stop.load(Ordering::Relaxed) => return,
                Err(e) => {
                    tracing::debug!(target: "dataplane", "TUN read: {e}");
                    continue;
                }
            }
            self.sealing.begin(queue);
            let tables = self.tables.load();
            let socks = self.natt.load();
            let mut last: Option<(PacketInfo, &Arc<ChildEntry>, EspPath, u16)> = None;
            // The SA this worker seals on, locked until what it sealed has left.
            let mut sealing: Option<(&Arc<ChildEntry>, std::sync::MutexGuard<'_, ()>)> = None;
            for i in 0..rx.len() {
                let Some((buf, inner)) = rx.packet(i) else { continue };
                let Some(info) = buf.get(inner.clone()).and_then(PacketInfo::parse) else { continue };
                // Segments of one super-packet are one flow: the same addresses, protocol and ports get
                // the same answer from the same snapshot, so the previous packet's lookup stands.
                let (child, path, mtu) = match last {
                    Some((flow, c, path, mtu)) if flow == info => (c, path, mtu),
                    _ => match tables.outbound_on(&info, worker) {
                        Some(c) => (c, c.path(), c.inner_mtu()),
                        None => {
                            if self.trap(&info)
                                && let Some(pkt) = buf.get(inner.clone())
                            {
                                let now = Instant::now();
                                self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keep(now, 0, pkt);
                            }
                            continue;
                        }
                    },
                };
                last = Some((info, child, path, mtu));
                // Too big for the SA's path: the sender hears of it (and its packet goes no further).
                if inner.len() > usize::from(mtu) && buf.get(inner.clone()).is_some_and(|p| icmp.answer(p, mtu)) {
                    self.too_big.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // SYNs are never super-packets: for TCP the clamp reads the flags and stops there.
                if info.protocol == 6
                    && let (Some(mss), Some(p)) = (self.mss(child, info.src.is_ipv6()), buf.get_mut(inner.clone()))
                {
                    clamp_mss(p, mss);
                }
                if sealing.as_ref().is_none_or(|(c, _)| !Arc::ptr_eq(c, child)) {
                    // Another SA: what was sealed on the previous one leaves before its lock goes.
                    out.flush(&socks);
                    tcp.flush(&self.tcp);
                    // Released before the next is taken: a worker never holds two (no deadlock).
                    drop(sealing.take());
                    sealing = Some((child, child.sending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
                }
                let next_header = if info.src.is_ipv4() { 4 } else { 41 };
                match child.out.seal(buf, inner, next_header) {
                    Ok(range) => {
                        self.moved.note(child);
                        if let Some(pkt) = buf.get(range) {
                            match path.transport {
                                Transport::Udp => out.push(&socks, path.local.ip(), path.remote, pkt),
                                // RFC 9329 §3.2: into the IKE SA's stream, framed.
                                Transport::Tcp => tcp.push(&self.tcp, (path.local.ip(), path.remote), pkt),
                            }
                        }
                    }
                    Err(e) => tracing::debug!(target: "dataplane", "{}: seal: {e}", child.name),
                }
            }
            out.flush(&socks);
            tcp.flush(&self.tcp);
            drop(sealing);
            drop(tables);
            self.sealing.end(queue);
            self.note_sends(&mut out);
            if !icmp.tx.is_empty() {
                self.icmp_sent.fetch_add(icmp.tx.len() as u64, Ordering::Relaxed);
                self.write_tun(queue, &mut icmp.tx);
            }
        }
    }

    /// UDP 4500 → TUN (ESP) or the IKE thread (IKE behind the non-ESP marker): one thread per socket
    /// of the port's group, writing to TUN queue `queue` (modulo their number). One SA's ESP
    /// arrives on one socket ([`oxswan_io::udp::steer_ike_apart`], by SPI), so its inner packets reach
    /// the TUN device in the order they came (a rekey's old and new pair may arrive on two).
    pub fn natt_loop(self: Arc<Self>, sock: Arc<UdpIo>, ike: crate::input::Inbox, queue: usize) {
        let queue = queue % self.tun.len().max(1);
        let local = sock.socket().local_addr().ok();
        let mut buf = vec![0u8; 65536];
        let mut scratch = RecvScratch::default();
        let mut tx = TunTx::default();
        while !self.stop.load(Ordering::Relaxed) {
            // Wait for the first run, then take what else is queued without waiting, so the TUN
            // device gets one coalesced write for many datagrams.
            let mut wait = true;
            for _ in 0..16 {
                let d = match sock.recv(&mut buf, &mut scratch, wait) {
                    Ok(d) => d,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(target: "dataplane", "UDP 4500: {e}");
                        break;
                    }
                };
                wait = false;
                let Some(run) = buf.get_mut(..d.len) else { break };
                let tables = self.tables.load();
                for pkt in run.chunks_mut(d.stride.max(1)) {
                    match classify(pkt) {
                        Ok(Udp4500::Esp(_)) => {}
                        Ok(Udp4500::Ike(ike_msg)) => {
                            if let Some(local) = local {
                                let data = ike_msg.to_vec();
                                ike.offer(crate::input::Input::Datagram { local, remote: d.from, data });
                            }
                            continue;
                        }
                        Ok(Udp4500::Keepalive) => {
                            self.keepalives.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(_) => continue,
                    }
                    self.esp_in(&tables, pkt, Some(d.from), queue, &mut tx);
                }
                drop(tables);
                // A full receive may hold 64 datagrams: keep room for one more.
                if tx.len() + MAX_SEGMENTS > oxswan_io::tun::BATCH {
                    self.write_tun(queue, &mut tx);
                }
            }
            self.write_tun(queue, &mut tx);
        }
    }

    /// A packet no SA takes: if a trap covers it, ask the IKE thread once to connect, and say so:
    /// the caller holds the packet for the new SA (bounded: the ring overwrites the oldest).
    fn trap(&self, info: &PacketInfo) -> bool {
        let traps = self.traps.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(t) = traps.iter().find(|t| t.selectors.allows_outbound(info)) else { return false };
        if !t.fired.swap(true, Ordering::Relaxed) {
            self.ike.offer(crate::input::Input::Trap(t.name.clone()));
        }
        true
    }

    /// Writes `tx` to TUN queue `queue` (any queue takes any packet: a queue only decides which
    /// reader the kernel's packets go to).
    fn write_tun(&self, queue: usize, tx: &mut TunTx) {
        let Some(tun) = self.tun.get(queue).or_else(|| self.tun.first()) else { return };
        if let Err(e) = tun.send(tx) {
            tracing::debug!(target: "dataplane", "TUN write: {e}");
        }
    }

    /// ESP from UDP 4500 or a TCP stream (RFC 9329 §3.2): by SPI to its pair, opened, to the TUN
    /// device; for an SPI not installed yet, kept a moment. `from` is the UDP source; `None` over
    /// TCP, where the stream is the path and a move follows the stream the initiator reopens (§6).
    fn esp_in(&self, tables: &Tables, pkt: &mut [u8], from: Option<SocketAddr>, queue: usize, tx: &mut TunTx) {
        let spi = match pkt.get(..4) {
            Some([a, b, c, d]) => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return,
        };
        let Some(child) = tables.by_spi(spi) else {
            // Sent on a pair just removed, before the peer's IKE thread had our DELETE.
            if let Some(old) = self.tables.retired(spi) {
                self.deliver(&old, pkt, from, queue, tx);
                return;
            }
            self.unknown_spi.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keep(now, spi, pkt);
            return;
        };
        self.deliver(child, pkt, from, queue, tx);
    }

    /// Opens an ESP packet of `child` that came `from` there and queues its inner packet for the
    /// TUN device (queue `queue` when `tx` is full).
    fn deliver(&self, child: &ChildEntry, pkt: &mut [u8], from: Option<SocketAddr>, queue: usize, tx: &mut TunTx) {
        // Whether the peer's first packet on a new pair lets us send on it is the engine's rule
        // (the counters reach it through `Endpoint::handle_usage`), not this thread's.
        let Ok(opened) = child.inb.open(pkt) else { return };
        self.moved.note(child);
        if let Some(from) = from.filter(|f| *f != child.path().remote) {
            self.moved(child, from, opened.sequence_number);
        }
        if opened.next_header == oxswan_wire::esp::NEXT_HEADER_NONE {
            return;
        }
        let Some(inner) = pkt.get_mut(opened.inner) else { return };
        // RFC 4301 §5.2: an inner packet outside the SA's selectors is dropped and counted. One
        // whose IP length disagrees with what ESP carried is not handed to the kernel either.
        match PacketInfo::parse(inner) {
            Some(info) if ip_length_matches(inner) && child.selectors.allows_inbound(&info) => {
                // A SYN out of the tunnel: its MSS is what our side may send it, through this tunnel.
                if info.protocol == 6
                    && let Some(mss) = self.mss(child, info.src.is_ipv6())
                {
                    clamp_mss(inner, mss);
                }
                if tx.is_full() {
                    self.write_tun(queue, tx);
                }
                tx.push(inner);
            }
            _ => {
                child.outside.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl crate::streams::EspSink for DataPlane {
    fn esp_from_stream(&self, pkt: &mut [u8], tx: &mut TunTx) {
        let tables = self.tables.load();
        self.esp_in(&tables, pkt, None, 0, tx);
    }

    fn flush_tun(&self, tx: &mut TunTx) {
        self.write_tun(0, tx);
    }
}

impl DataPlane {
    /// Authentic ESP of `child` came from `from`, not from where the pair sends: the peer's NAT
    /// mapping changed (RFC 7296 §2.23). The IKE thread hears of it, and the engine decides
    /// whether the SA follows; only for the pair's newest packet (a late one from the old mapping
    /// must not pull it back), and once a second per source.
    fn moved(&self, child: &ChildEntry, from: SocketAddr, seq: u64) {
        if seq < child.inb.highest() {
            return;
        }
        let now = Instant::now();
        let mut last = child.moved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|(at, when)| at == from && now.saturating_duration_since(when) < MOVED_REPORT) {
            return;
        }
        *last = Some((from, now));
        drop(last);
        self.ike.offer(crate::input::Input::EspMoved { spi_in: child.inb.spi(), from });
    }

    /// Adds the NAT-T socket of a local address that appeared (MOBIKE): the packet threads see it
    /// from their next batch.
    pub fn add_socket(&self, addr: IpAddr, sock: Arc<UdpIo>) {
        self.natt.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(addr, sock.clone());
            m
        });
    }
}

/// How often a pair's new source is reported at most.
const MOVED_REPORT: Duration = Duration::from_secs(1);

/// Whether the IP header's length field covers exactly the packet.
fn ip_length_matches(p: &[u8]) -> bool {
    match (p.first().map(|b| b >> 4), p.get(2..4), p.get(4..6)) {
        (Some(4), Some(&[a, b]), _) => usize::from(u16::from_be_bytes([a, b])) == p.len(),
        (Some(6), _, Some(&[a, b])) => usize::from(u16::from_be_bytes([a, b])) + 40 == p.len(),
        _ => false,
    }
}

/// Sealed ESP packets for one peer, back to back, to leave in one GSO send: every datagram but
/// the last has the size of the first (the kernel's rule for UDP_SEGMENT).
#[derive(Debug)]
struct GsoBatch {
    buf: Vec<u8>,
    segment: usize,
    count: usize,
    to: Option<(IpAddr, SocketAddr)>,
    closed: bool,
    /// A send since the owner last looked was refused as too big, or turned GSO off.
    suspect: bool,
}

impl Default for GsoBatch {
    fn default() -> Self {
        Self {
            buf: Vec::with_capacity(MAX_GSO_BYTES + 2048),
            segment: 0,
            count: 0,
            to: None,
            closed: false,
            suspect: false,
        }
    }
}

impl GsoBatch {
    fn push(&mut self, socks: &HashMap<IpAddr, Arc<UdpIo>>, local: IpAddr, remote: SocketAddr, pkt: &[u8]) {
        let fits = self.count == 0
            || (self.to == Some((local, remote))
                && !self.closed
                && pkt.len() <= self.segment
                && self.count < MAX_SEGMENTS
                && self.buf.len() + pkt.len() <= MAX_GSO_BYTES);
        if !fits {
            self.flush(socks);
        }
        if self.count == 0 {
            self.segment = pkt.len();
            self.to = Some((local, remote));
        }
        self.closed = pkt.len() < self.segment;
        self.buf.extend_from_slice(pkt);
        self.count += 1;
    }

    fn flush(&mut self, socks: &HashMap<IpAddr, Arc<UdpIo>>) {
        if let Some((local, remote)) = self.to.take()
            && let Some(sock) = socks.get(&local)
        {
            let gso = sock.gso();
            if let Err(e) = sock.send_segments(remote, &self.buf, self.segment) {
                self.suspect |= oxswan_io::udp::is_too_big(&e);
                tracing::debug!(target: "dataplane", "send to {remote}: {e}");
            }
            self.suspect |= gso && !sock.gso();
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::{ICMP_BURST, IcmpOut, ip_length_matches};

    /// A DF IPv4 packet of `len` octets from 10.1.0.1 to 10.2.0.1.
    fn df_packet(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, 2, 0, 1]);
        p
    }

    #[test]
    fn icmp_errors_are_rate_limited_and_the_packets_dropped_all_the_same() {
        let mut icmp = IcmpOut::new();
        let big = df_packet(1400);
        // A burst: the first ten are answered, the rest dropped unanswered.
        for _ in 0..25 {
            assert!(icmp.answer(&big, 1218), "a DF packet that does not fit is dropped");
        }
        assert_eq!(icmp.tx.len(), ICMP_BURST as usize);
        // Without DF it goes on (the outer datagram is fragmented), and no error is queued.
        let mut no_df = big.clone();
        no_df[6] = 0;
        assert!(!icmp.answer(&no_df, 1218));
        assert_eq!(icmp.tx.len(), ICMP_BURST as usize);
        // The bucket refills at one per 10 ms.
        std::thread::sleep(std::time::Duration::from_millis(35));
        let before = icmp.tx.len();
        for _ in 0..10 {
            icmp.answer(&big, 1218);
        }
        let refilled = icmp.tx.len() - before;
        assert!((3..=ICMP_BURST as usize).contains(&refilled), "{refilled} after 35 ms or more");
    }

    #[test]
    fn ip_length_must_cover_the_packet() {
        let mut v4 = vec![0x45u8, 0, 0, 28];
        v4.resize(28, 0);
        assert!(ip_length_matches(&v4));
        v4.push(0);
        assert!(!ip_length_matches(&v4));
        let mut v6 = vec![0x60u8, 0, 0, 0, 0, 8];
        v6.resize(48, 0);
        assert!(ip_length_matches(&v6));
        assert!(!ip_length_matches(&v6[..47]));
        assert!(!ip_length_matches(&[0x45]));
        assert!(!ip_length_matches(&[]));
    }
}

#[cfg(test)]
mod batches_tests {
    use super::*;

    /// `wait_out` returns at once when no batch is in progress, holds while one is, and waits for
    /// that one only: a batch begun after the call does not hold it up.
    #[test]
    fn the_batches_in_progress_are_waited_out() {
        let b = Arc::new(Batches::new(2));
        assert!(b.wait_out(Duration::ZERO), "nothing in progress");
        b.begin(0);
        b.end(0);
        b.begin(1);
        assert!(!b.wait_out(Duration::from_millis(10)), "thread 1's batch is in progress");
        let other = b.clone();
        let ends = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.end(1);
            // The next batch, begun after the wait started.
            other.begin(1);
        });
        let start = Instant::now();
        assert!(b.wait_out(Duration::from_secs(10)), "the batch ended");
        // The thread's 50 ms began a moment before `start`.
        assert!(start.elapsed() >= Duration::from_millis(40), "returned before the batch ended");
        ends.join().unwrap();
        assert!(!b.wait_out(Duration::ZERO), "the next batch is in progress");
    }

    /// Only a change to the tables calls for a wait, once.
    #[test]
    fn a_change_is_waited_out_once() {
        let b = Batches::new(1);
        assert!(!b.take_changed());
        b.tables_changed();
        b.tables_changed();
        assert!(b.take_changed());
        assert!(!b.take_changed());
    }
}
