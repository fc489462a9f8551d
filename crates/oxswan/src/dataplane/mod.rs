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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use oxswan_esp::{HEADROOM, PacketInfo, Selectors, TAILROOM};
use oxswan_io::udp::{MAX_GSO_BYTES, MAX_SEGMENTS};
use oxswan_io::{RecvScratch, Tun, TunRx, TunTx, UdpIo};
use oxswan_wire::udp_encap::{Udp4500, classify};

use crate::early::{EARLY_AGE, HELD_AGE, PacketRing};

mod seam;
mod tables;

pub use tables::{ChildEntry, EspPath, SaTables, Tables};

/// The TUN device's MTU: 1500 on the wire less the worst ESP-in-UDP overhead we send (IPv4 20,
/// UDP 8, ESP header and IV 16–24, padding, trailer and ICV up to 34).
pub const TUN_MTU: u16 = 1400;

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
    /// The TUN device.
    pub tun: Tun,
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
    pub ike: mpsc::Sender<crate::input::Input>,
    /// ESP that came before its SA, by SPI.
    pub early: Mutex<PacketRing>,
    /// Cleartext a trap caught, for the SA the trap brings up.
    pub held: Mutex<PacketRing>,
    /// Cryptography for the SAs it installs.
    pub provider: oxswan_crypto::CryptoProvider,
    /// The anti-replay window of its inbound SAs (RFC 4303 §3.4.3).
    pub replay_window: u32,
    /// Where new outbound SAs start numbering (tests only, `OXSWAN_TEST_SEQUENCE_START`).
    pub sequence_start: Option<u64>,
}

impl DataPlane {
    /// Delivers what the peer sent on a pair before it was installed, and sends on it what a trap
    /// held for it (see [`PacketRing`]); once the routes are there too, so that answers find
    /// their way back.
    pub fn deliver_early(&self, entry: &ChildEntry) {
        let now = Instant::now();
        let mut tx = TunTx::default();
        let spi = entry.inb.spi();
        let path = entry.path();
        let mut early = self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        early.take(now, EARLY_AGE, |key, pkt| {
            let ours = key == spi;
            if ours {
                self.deliver(entry, pkt, None, &mut tx);
            }
            ours
        });
        drop(early);
        if !tx.is_empty() {
            tracing::info!(target: "dataplane", "{}: delivered {} packet(s) that came before the SA", entry.name, tx.len());
            self.write_tun(&mut tx);
        }
        if !entry.outbound.load(Ordering::Relaxed) {
            return;
        }
        let mut sent = 0;
        let mut out = GsoBatch::default();
        let socks = self.natt.load();
        let mut buf = Vec::new();
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.take(now, HELD_AGE, |_, pkt| {
            let Some(info) = PacketInfo::parse(pkt).filter(|i| entry.selectors.allows_outbound(i)) else {
                return false;
            };
            buf.clear();
            buf.resize(HEADROOM, 0);
            buf.extend_from_slice(pkt);
            buf.resize(HEADROOM + pkt.len() + TAILROOM, 0);
            let next_header = if info.src.is_ipv4() { 4 } else { 41 };
            if let Ok(range) = entry.out.seal(&mut buf, HEADROOM..HEADROOM + pkt.len(), next_header) {
                if let Some(esp) = buf.get(range) {
                    out.push(&socks, path.local.ip(), path.remote, esp);
                    sent += 1;
                }
            }
            true
        });
        drop(held);
        out.flush(&socks);
        if sent > 0 {
            tracing::info!(target: "dataplane", "{}: sent {sent} packet(s) held while the connection came up", entry.name);
        }
    }

    /// TUN → ESP: one thread.
    pub fn tun_loop(self: Arc<Self>) {
        let mut rx = TunRx::new(TUN_MTU, HEADROOM, TAILROOM);
        let mut out = GsoBatch::default();
        while !self.stop.load(Ordering::Relaxed) {
            match self.tun.recv(&mut rx) {
                Ok(_) => {}
                Err(_) if self.stop.load(Ordering::Relaxed) => return,
                Err(e) => {
                    tracing::debug!(target: "dataplane", "TUN read: {e}");
                    continue;
                }
            }
            let tables = self.tables.load();
            let socks = self.natt.load();
            let mut last: Option<(PacketInfo, &Arc<ChildEntry>, EspPath)> = None;
            for i in 0..rx.len() {
                let Some((buf, inner)) = rx.packet(i) else { continue };
                let Some(info) = buf.get(inner.clone()).and_then(PacketInfo::parse) else { continue };
                // Segments of one super-packet are one flow: the same addresses, protocol and ports get
                // the same answer from the same snapshot, so the previous packet's lookup stands.
                let (child, path) = match last {
                    Some((flow, c, path)) if flow == info => (c, path),
                    _ => match tables.outbound(&info) {
                        Some(c) => (c, c.path()),
                        None => {
                            if self.trap(&info) {
                                if let Some(pkt) = buf.get(inner.clone()) {
                                    let now = Instant::now();
                                    self.held
                                        .lock()
                                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                                        .keep(now, 0, pkt);
                                }
                            }
                            continue;
                        }
                    },
                };
                last = Some((info, child, path));
                let next_header = if info.src.is_ipv4() { 4 } else { 41 };
                match child.out.seal(buf, inner, next_header) {
                    Ok(range) => {
                        if let Some(pkt) = buf.get(range) {
                            out.push(&socks, path.local.ip(), path.remote, pkt);
                        }
                    }
                    Err(e) => tracing::debug!(target: "dataplane", "{}: seal: {e}", child.name),
                }
            }
            drop(tables);
            out.flush(&socks);
        }
    }

    /// UDP 4500 → TUN (ESP) or the IKE thread (IKE behind the non-ESP marker): one thread per socket.
    pub fn natt_loop(self: Arc<Self>, sock: Arc<UdpIo>, ike: mpsc::Sender<crate::input::Input>) {
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
                                let _ = ike.send(crate::input::Input::Datagram { local, remote: d.from, data });
                            }
                            continue;
                        }
                        Ok(Udp4500::Keepalive) => {
                            self.keepalives.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(_) => continue,
                    }
                    self.esp_in(&tables, pkt, d.from, &mut tx);
                }
                drop(tables);
                // A full receive may hold 64 datagrams: keep room for one more.
                if tx.len() + MAX_SEGMENTS > oxswan_io::tun::BATCH {
                    self.write_tun(&mut tx);
                }
            }
            self.write_tun(&mut tx);
        }
    }

    /// A packet no SA takes: if a trap covers it, ask the IKE thread once to connect, and say so:
    /// the caller holds the packet for the new SA (bounded: the ring overwrites the oldest).
    fn trap(&self, info: &PacketInfo) -> bool {
        let traps = self.traps.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(t) = traps.iter().find(|t| t.selectors.allows_outbound(info)) else { return false };
        if !t.fired.swap(true, Ordering::Relaxed) {
            let _ = self.ike.send(crate::input::Input::Trap(t.name.clone()));
        }
        true
    }

    fn write_tun(&self, tx: &mut TunTx) {
        if let Err(e) = self.tun.send(tx) {
            tracing::debug!(target: "dataplane", "TUN write: {e}");
        }
    }

    fn esp_in(&self, tables: &Tables, pkt: &mut [u8], from: SocketAddr, tx: &mut TunTx) {
        let spi = match pkt.get(..4) {
            Some([a, b, c, d]) => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return,
        };
        let Some(child) = tables.by_spi(spi) else {
            self.unknown_spi.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            self.early.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keep(now, spi, pkt);
            return;
        };
        self.deliver(child, pkt, Some(from), tx);
    }

    /// Opens an ESP packet of `child` that came `from` there and queues its inner packet for the
    /// TUN device.
    fn deliver(&self, child: &ChildEntry, pkt: &mut [u8], from: Option<SocketAddr>, tx: &mut TunTx) {
        // Whether the peer's first packet on a new pair lets us send on it is the engine's rule
        // (the counters reach it through `Endpoint::handle_usage`), not this thread's.
        let Ok(opened) = child.inb.open(pkt) else { return };
        if let Some(from) = from.filter(|f| *f != child.path().remote) {
            self.moved(child, from, opened.sequence_number);
        }
        if opened.next_header == oxswan_wire::esp::NEXT_HEADER_NONE {
            return;
        }
        let Some(inner) = pkt.get(opened.inner) else { return };
        // RFC 4301 §5.2: an inner packet outside the SA's selectors is dropped and counted. One
        // whose IP length disagrees with what ESP carried is not handed to the kernel either.
        match PacketInfo::parse(inner) {
            Some(info) if ip_length_matches(inner) && child.selectors.allows_inbound(&info) => {
                if tx.is_full() {
                    self.write_tun(tx);
                }
                tx.push(inner);
            }
            _ => {
                child.outside.fetch_add(1, Ordering::Relaxed);
            }
        }
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
        let _ = self.ike.send(crate::input::Input::EspMoved { spi_in: child.inb.spi(), from });
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
}

impl Default for GsoBatch {
    fn default() -> Self {
        Self { buf: Vec::with_capacity(MAX_GSO_BYTES + 2048), segment: 0, count: 0, to: None, closed: false }
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
        if let Some((local, remote)) = self.to.take() {
            if let Some(sock) = socks.get(&local) {
                if let Err(e) = sock.send_segments(remote, &self.buf, self.segment) {
                    tracing::debug!(target: "dataplane", "send to {remote}: {e}");
                }
            }
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::ip_length_matches;

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
