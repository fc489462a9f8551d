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
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::time::Instant;

use arc_swap::ArcSwap;
use oxswan_esp::{HEADROOM, InboundSa, OutboundSa, PacketInfo, Selectors, Spd, SpdError, TAILROOM};
use oxswan_io::udp::{MAX_GSO_BYTES, MAX_SEGMENTS};
use oxswan_io::{RecvScratch, Tun, TunRx, TunTx, UdpIo};
use oxswan_wire::udp_encap::{Udp4500, classify};

use crate::early::{EARLY_AGE, HELD_AGE, PacketRing};

/// The TUN device's MTU: 1500 on the wire less the worst ESP-in-UDP overhead we send (IPv4 20,
/// UDP 8, ESP header and IV 16–24, padding, trailer and ICV up to 34).
pub const TUN_MTU: u16 = 1400;

/// Where a pair's ESP travels: from our address (which socket sends) to the peer's NAT-T address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPath {
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address and port (4500, or what a NAT mapped it to).
    pub remote: SocketAddr,
}

/// One CHILD SA pair installed in the data plane.
#[derive(Debug)]
pub struct ChildEntry {
    /// The connection and child.
    pub name: String,
    /// Outbound SA.
    pub out: OutboundSa,
    /// Inbound SA.
    pub inb: InboundSa,
    /// The negotiated selectors.
    pub selectors: Selectors,
    /// Where ESP goes. It changes when the peer's NAT mapping does (RFC 7296 §2.23), while the SAs,
    /// shared with the packet threads, stay: so it is swapped on its own ([`DataPlane::update_path`]).
    path: ArcSwap<EspPath>,
    /// Authentic packets outside the selectors.
    pub outside: AtomicU64,
    /// Whether to send on this pair. The responder of a rekey (RFC 7296 §2.8) or of a
    /// reauthentication holds back until the old pair is deleted or the peer sends on the new one,
    /// whichever comes first: either shows that the peer has installed it (make before break).
    pub outbound: AtomicBool,
}

impl ChildEntry {
    /// A pair to install, sending (`outbound`) or held back.
    pub fn new(
        name: String,
        out: OutboundSa,
        inb: InboundSa,
        selectors: Selectors,
        path: EspPath,
        outbound: bool,
    ) -> Self {
        Self {
            name,
            out,
            inb,
            selectors,
            path: ArcSwap::from_pointee(path),
            outside: AtomicU64::new(0),
            outbound: AtomicBool::new(outbound),
        }
    }

    /// Where ESP goes now.
    pub fn path(&self) -> EspPath {
        **self.path.load()
    }
}

/// Why a pair was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Inbound ESP is found by SPI alone (RFC 4303 §2.1, RFC 4301 §4.4.2), so two pairs cannot share
    /// one: the installed pair stays, the new one is refused rather than silently replacing it.
    #[error("inbound SPI {spi:08x} is already installed (for {holder})")]
    SpiInUse {
        /// The SPI.
        spi: u32,
        /// The pair that has it.
        holder: String,
    },
    /// The SPD refused it otherwise.
    #[error("SPD: {0}")]
    Spd(SpdError),
}

/// One snapshot of the installed SAs: never changed once published, replaced as a whole.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    /// The pairs by inbound SPI (unique), indexed by their selectors for outbound lookups.
    spd: Spd<u32, Arc<ChildEntry>>,
}

impl Tables {
    /// The pair whose inbound SA has `spi`: where inbound ESP goes.
    pub fn by_spi(&self, spi: u32) -> Option<&Arc<ChildEntry>> {
        self.spd.get(&spi)
    }

    /// The pair a packet from our side is sent on (RFC 4301 §5.1): of those sending, the newest
    /// installed whose selectors admit it, so that a rekeyed pair takes over from its predecessor.
    pub fn outbound(&self, info: &PacketInfo) -> Option<&Arc<ChildEntry>> {
        self.spd.lookup(info, |c| c.outbound.load(Ordering::Relaxed))
    }
}

/// The installed SAs: a snapshot the packet threads load without a lock, replaced by the IKE thread.
#[derive(Debug, Default)]
pub struct SaTables {
    current: ArcSwap<Tables>,
    /// Serializes the writers, so that none loses another's change between loading and storing.
    writer: Mutex<()>,
}

impl SaTables {
    /// The current snapshot: for a batch of packets, then dropped.
    pub fn load(&self) -> arc_swap::Guard<Arc<Tables>> {
        self.current.load()
    }

    /// Publishes `change` applied to a copy of the current snapshot; the copy shares all it does not
    /// change, so this costs microseconds whatever the number of SAs.
    fn change<R>(&self, change: impl FnOnce(&mut Tables) -> R) -> R {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Tables::clone(&self.current.load());
        let r = change(&mut next);
        self.current.store(Arc::new(next));
        r
    }

    /// Installs a pair as the newest; refuses one whose inbound SPI is installed already.
    pub fn install(&self, entry: ChildEntry) -> Result<Arc<ChildEntry>, InstallError> {
        let entry = Arc::new(entry);
        let spi = entry.inb.spi();
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Tables::clone(&self.current.load());
        match next.spd.insert(spi, &entry.selectors, entry.clone()) {
            Ok(()) => {}
            Err(SpdError::KeyInUse) => {
                let holder = next.by_spi(spi).map_or_else(String::new, |c| c.name.clone());
                return Err(InstallError::SpiInUse { spi, holder });
            }
            Err(e) => return Err(InstallError::Spd(e)),
        }
        self.current.store(Arc::new(next));
        Ok(entry)
    }

    /// Removes the pair with inbound SPI `spi_in`.
    pub fn remove(&self, spi_in: u32) -> Option<Arc<ChildEntry>> {
        // Nothing to publish for an SPI that is not there (a DELETE for a pair refused at install).
        self.load().by_spi(spi_in)?;
        self.change(|t| t.spd.remove(&spi_in))
    }

    /// Starts sending on the pair with inbound SPI `spi_in`.
    pub fn activate(&self, spi_in: u32) {
        if let Some(c) = self.load().by_spi(spi_in) {
            c.outbound.store(true, Ordering::Relaxed);
        }
    }

    /// Sends the ESP of the pair with inbound SPI `spi_in` along `path` from now on; false if there is
    /// no such pair. The entry is shared with the packet threads, so only its path is swapped: a
    /// batch being sealed goes out the old way, the next batch the new one.
    pub fn update_path(&self, spi_in: u32, path: EspPath) -> bool {
        let tables = self.load();
        let Some(c) = tables.by_spi(spi_in) else { return false };
        c.path.store(Arc::new(path));
        true
    }

    /// All installed pairs, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<ChildEntry>> {
        self.load().spd.values().into_iter().cloned().collect()
    }
}

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
    /// NAT-T sockets by local address.
    pub natt: HashMap<IpAddr, Arc<UdpIo>>,
    /// Set when the daemon stops.
    pub stop: AtomicBool,
    /// NAT keepalives received.
    pub keepalives: AtomicU64,
    /// ESP datagrams whose SPI had no SA.
    pub unknown_spi: AtomicU64,
    /// Connections waiting for traffic.
    pub traps: RwLock<Vec<Arc<Trap>>>,
    /// Where trap triggers go (the IKE thread).
    pub ike: mpsc::Sender<crate::daemon::Input>,
    /// ESP that came before its SA, by SPI.
    pub early: Mutex<PacketRing>,
    /// Cleartext a trap caught, for the SA the trap brings up.
    pub held: Mutex<PacketRing>,
}

impl DataPlane {
    /// Installs a CHILD SA pair; refuses one whose inbound SPI is installed already
    /// ([`InstallError::SpiInUse`]), which the caller logs.
    pub fn install(&self, entry: ChildEntry) -> Result<Arc<ChildEntry>, InstallError> {
        self.tables.install(entry)
    }

    /// Sends the ESP of the pair with inbound SPI `spi_in` from `local` to `remote` from now on, for
    /// a peer whose NAT mapping changed (RFC 7296 §2.23: the other end of a NAT sends to the address
    /// and port the last authenticated IKE message came from; `remote` is that, with the port ESP goes
    /// to). One call per pair: the caller walks the IKE SA's CHILD SAs. False if there is no such pair.
    pub fn update_path(&self, spi_in: u32, local: SocketAddr, remote: SocketAddr) -> bool {
        self.tables.update_path(spi_in, EspPath { local, remote })
    }

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
                self.deliver(entry, pkt, &mut tx);
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
                    out.push(&self.natt, path.local.ip(), path.remote, esp);
                    sent += 1;
                }
            }
            true
        });
        drop(held);
        out.flush(&self.natt);
        if sent > 0 {
            tracing::info!(target: "dataplane", "{}: sent {sent} packet(s) held while the connection came up", entry.name);
        }
    }

    /// Removes a CHILD SA pair by inbound SPI.
    pub fn remove(&self, spi_in: u32) -> Option<Arc<ChildEntry>> {
        self.tables.remove(spi_in)
    }

    /// Starts sending on the pair with inbound SPI `spi_in`.
    pub fn activate(&self, spi_in: u32) {
        self.tables.activate(spi_in);
    }

    /// All installed pairs, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<ChildEntry>> {
        self.tables.snapshot()
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
                            out.push(&self.natt, path.local.ip(), path.remote, pkt);
                        }
                    }
                    Err(e) => tracing::debug!(target: "dataplane", "{}: seal: {e}", child.name),
                }
            }
            drop(tables);
            out.flush(&self.natt);
        }
    }

    /// UDP 4500 → TUN (ESP) or the IKE thread (IKE behind the non-ESP marker): one thread per socket.
    pub fn natt_loop(self: Arc<Self>, sock: Arc<UdpIo>, ike: mpsc::Sender<crate::daemon::Input>) {
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
                                let _ = ike.send(crate::daemon::Input::Datagram { local, remote: d.from, data });
                            }
                            continue;
                        }
                        Ok(Udp4500::Keepalive) => {
                            self.keepalives.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(_) => continue,
                    }
                    self.esp_in(&tables, pkt, &mut tx);
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
            let _ = self.ike.send(crate::daemon::Input::Trap(t.name.clone()));
        }
        true
    }

    fn write_tun(&self, tx: &mut TunTx) {
        if let Err(e) = self.tun.send(tx) {
            tracing::debug!(target: "dataplane", "TUN write: {e}");
        }
    }

    fn esp_in(&self, tables: &Tables, pkt: &mut [u8], tx: &mut TunTx) {
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
        self.deliver(child, pkt, tx);
    }

    /// Opens an ESP packet of `child` and queues its inner packet for the TUN device.
    fn deliver(&self, child: &ChildEntry, pkt: &mut [u8], tx: &mut TunTx) {
        // Whether the peer's first packet on a new pair lets us send on it is the engine's rule
        // (the counters reach it through `Endpoint::handle_usage`), not this thread's.
        let Ok(opened) = child.inb.open(pkt) else { return };
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
    use std::time::Instant;

    use oxswan_crypto::Secret;
    use oxswan_crypto::alg::EncrAlg;
    use oxswan_crypto::keys::ChildSuite;
    use oxswan_esp::SaParams;
    use oxswan_wire::EncrId;
    use oxswan_wire::ts::TrafficSelector;

    use super::*;

    fn path(local: &str, remote: &str) -> EspPath {
        EspPath { local: local.parse().unwrap(), remote: remote.parse().unwrap() }
    }

    fn pair(spi_in: u32, remote_ts: &str, outbound: bool) -> ChildEntry {
        let p = oxswan_crypto::default_provider();
        let encr = EncrAlg::new(EncrId::AES_GCM_16, Some(128)).unwrap();
        let params = |spi| SaParams {
            spi,
            suite: ChildSuite { encr, integ: None },
            esn: false,
            encr_key: Secret::new(vec![7; encr.keymat_len()]),
            integ_key: Secret::new(Vec::new()),
        };
        let (a, l) = remote_ts.split_once('/').unwrap();
        let remote = TrafficSelector::from_prefix(a.parse().unwrap(), l.parse().unwrap(), 0, 0, u16::MAX).unwrap();
        let selectors = Selectors { local: vec![TrafficSelector::any_v4()], remote: vec![remote] };
        ChildEntry::new(
            format!("conn/{spi_in:x}"),
            OutboundSa::new(&p, &params(spi_in ^ 0xffff_0000)).unwrap(),
            InboundSa::new(&p, &params(spi_in), 64).unwrap(),
            selectors,
            path("192.0.2.1:4500", "198.51.100.1:4500"),
            outbound,
        )
    }

    fn to(dst: &str) -> PacketInfo {
        PacketInfo { src: "10.0.0.1".parse().unwrap(), dst: dst.parse().unwrap(), protocol: 17, ports: Some((1, 2)) }
    }

    fn out_spi(t: &SaTables, dst: &str) -> Option<u32> {
        t.load().outbound(&to(dst)).map(|c| c.inb.spi())
    }

    #[test]
    fn an_inbound_spi_is_installed_once() {
        let t = SaTables::default();
        t.install(pair(0x1000, "10.2.0.0/16", true)).unwrap();
        let err = t.install(pair(0x1000, "10.9.0.0/16", true)).unwrap_err();
        assert!(matches!(&err, InstallError::SpiInUse { spi: 0x1000, holder } if holder == "conn/1000"), "{err}");
        assert_eq!(err.to_string(), "inbound SPI 00001000 is already installed (for conn/1000)");
        // The first pair stays where it was, with its selectors; the refused one is nowhere.
        let tables = t.load();
        let c = tables.by_spi(0x1000).unwrap();
        assert_eq!(c.selectors.remote[0].to_string(), "10.2.0.0/16");
        assert_eq!(out_spi(&t, "10.2.0.1"), Some(0x1000));
        assert_eq!(out_spi(&t, "10.9.0.1"), None);
        assert_eq!(t.snapshot().len(), 1);
    }

    #[test]
    fn newest_sending_pair_wins_and_removal_falls_back() {
        let t = SaTables::default();
        t.install(pair(1, "10.2.0.0/16", true)).unwrap();
        // A rekey's responder holds the new pair back until the old one goes.
        t.install(pair(2, "10.2.0.0/16", false)).unwrap();
        assert_eq!(out_spi(&t, "10.2.0.1"), Some(1));
        let before = t.load();
        t.activate(2);
        assert_eq!(out_spi(&t, "10.2.0.1"), Some(2));
        assert_eq!(t.remove(1).map(|c| c.inb.spi()), Some(1));
        assert!(t.remove(1).is_none());
        assert_eq!(out_spi(&t, "10.2.0.1"), Some(2));
        // A snapshot a packet thread still holds is unchanged by what was published since.
        assert!(before.by_spi(1).is_some());
        t.install(pair(3, "10.2.0.7/32", true)).unwrap();
        assert_eq!(out_spi(&t, "10.2.0.7"), Some(3));
        assert_eq!(out_spi(&t, "10.2.0.8"), Some(2));
        let order: Vec<u32> = t.snapshot().iter().map(|c| c.inb.spi()).collect();
        assert_eq!(order, [2, 3], "oldest first");
    }

    #[test]
    fn the_path_changes_under_a_held_entry() {
        let t = SaTables::default();
        let entry = t.install(pair(7, "10.2.0.0/16", true)).unwrap();
        let tables = t.load();
        let held = tables.outbound(&to("10.2.0.1")).unwrap();
        assert_eq!(held.path(), path("192.0.2.1:4500", "198.51.100.1:4500"));
        // The peer's NAT mapped it to another port (RFC 7296 §2.23).
        assert!(t.update_path(7, path("192.0.2.1:4500", "198.51.100.1:61000")));
        assert_eq!(held.path().remote, "198.51.100.1:61000".parse().unwrap(), "seen through the old snapshot");
        assert_eq!(entry.path(), held.path());
        assert!(Arc::ptr_eq(held, &entry), "the SAs themselves stay");
        assert!(!t.update_path(8, path("192.0.2.1:4500", "198.51.100.1:1")));
    }

    /// Installing one pair after another publishes a snapshot each time: that stays cheap with many
    /// SAs (`cargo bench -p oxswan-esp --bench spd` has the release figure for the tables alone).
    #[test]
    fn ten_thousand_installs() {
        let pairs: Vec<ChildEntry> =
            (0..10_000u32).map(|i| pair(0x10_0000 + i, &format!("100.64.{}.{}/32", i >> 8, i & 0xff), true)).collect();
        let t = SaTables::default();
        let start = Instant::now();
        for p in pairs {
            t.install(p).unwrap();
        }
        let took = start.elapsed();
        println!("10,000 installs: {took:?} ({:?} each)", took / 10_000);
        assert_eq!(out_spi(&t, "100.64.39.15"), Some(0x10_0000 + 39 * 256 + 15));
        assert_eq!(t.snapshot().len(), 10_000);
        assert!(took.as_secs() < 10, "{took:?}");
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
