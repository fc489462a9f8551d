//! The data plane's SA tables: the pairs by inbound SPI and, for outbound packets, in an SPD by
//! destination ([`oxswan_esp::Spd`]), as an immutable snapshot the IKE thread swaps and the packet
//! threads load once per batch without a lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use oxswan_esp::{InboundSa, OutboundSa, PacketInfo, Selectors, Spd, SpdError};

/// Where a pair's ESP travels: from our address (which socket sends) to the peer's NAT-T address,
/// or into the IKE SA's TCP stream between the two (RFC 9329 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPath {
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address and port (4500, or what a NAT mapped it to; over TCP the peer's end of
    /// the stream).
    pub remote: SocketAddr,
    /// UDP, or the stream from `local`'s address to `remote`.
    pub transport: oxswan_ike::Transport,
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
    /// Held by a worker from sealing a run of packets on the outbound SA until they are sent. Every
    /// packet gets a sequence number of its own from the SA's atomic counter whoever seals it (RFC
    /// 4303 §3.3.3), but two workers sealing on one SA would each hold a batch of numbers unsent
    /// while the other sends: the peer would see numbers arrive a batch or more out of order, beyond
    /// an anti-replay window of 32 or 64 packets (RFC 4303 §3.4.3's minimum and default). So one
    /// SA's packets leave in the order of their numbers; different SAs are sealed in parallel.
    pub sending: Mutex<()>,
    /// The last new source of authentic ESP reported to the IKE thread, and when.
    pub moved: Mutex<Option<(SocketAddr, std::time::Instant)>>,
    /// The path MTU to the peer as the kernel last told the IKE thread ([`ChildEntry::set_path_mtu`]).
    path_mtu: AtomicU16,
    /// The largest inner packet that fits it once sealed by this pair's outbound SA and carried in
    /// UDP over the path's family: a property of the pair set by the IKE thread, so the packet
    /// threads only compare a length with it.
    inner_mtu: AtomicU16,
    /// Whether its counters moved since the IKE thread last read them ([`Moved`]).
    counted: AtomicBool,
    /// The worker this pair is for, if it is a per-resource pair (RFC 9611): that worker sends on
    /// it rather than on the fallback ([`Tables::outbound_on`]).
    pub resource: Option<u32>,
}

/// The pairs whose counters moved since the IKE thread last collected them: each is listed once
/// until then, so that the IKE thread reads the pairs in use rather than every pair installed
/// (the engine learns nothing from counters that did not move).
#[derive(Debug, Default)]
pub struct Moved(Mutex<Vec<u32>>);

impl Moved {
    /// `entry` counted a packet: listed, unless it is already.
    pub fn note(&self, entry: &ChildEntry) {
        // One atomic load per packet; the lock only once per pair and collection.
        if !entry.counted.load(Ordering::Relaxed) && !entry.counted.swap(true, Ordering::AcqRel) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push(entry.inb.spi());
        }
    }

    /// The pairs listed since the last call, still installed, each unlisted before its counters
    /// are read: a packet counted after that lists it again for the next call.
    pub fn collect(&self, tables: &SaTables) -> Vec<Arc<ChildEntry>> {
        let spis = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        let t = tables.load();
        spis.into_iter()
            .filter_map(|spi| t.by_spi(spi).cloned())
            .inspect(|e| e.counted.store(false, Ordering::Release))
            .collect()
    }
}

/// The path MTU assumed until the kernel says otherwise: Ethernet's.
pub const DEFAULT_PATH_MTU: u16 = 1500;

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
        let inner = inner_mtu(&out, &path, DEFAULT_PATH_MTU);
        Self {
            name,
            out,
            inb,
            selectors,
            path: ArcSwap::from_pointee(path),
            outside: AtomicU64::new(0),
            outbound: AtomicBool::new(outbound),
            sending: Mutex::new(()),
            moved: Mutex::new(None),
            path_mtu: AtomicU16::new(DEFAULT_PATH_MTU),
            inner_mtu: AtomicU16::new(inner),
            counted: AtomicBool::new(false),
            resource: None,
        }
    }

    /// Where ESP goes now.
    pub fn path(&self) -> EspPath {
        **self.path.load()
    }

    /// Takes `path_mtu` as the MTU of the pair's path: the inner MTU follows from the outbound SA's
    /// exact overhead and the path's family. Returns the old and the new inner MTU if it changed.
    pub fn set_path_mtu(&self, path_mtu: u16) -> Option<(u16, u16)> {
        let inner = inner_mtu(&self.out, &self.path(), path_mtu);
        self.path_mtu.store(path_mtu, Ordering::Relaxed);
        let old = self.inner_mtu.swap(inner, Ordering::Relaxed);
        (old != inner).then_some((old, inner))
    }

    /// The path MTU last set.
    pub fn path_mtu(&self) -> u16 {
        self.path_mtu.load(Ordering::Relaxed)
    }

    /// The largest inner packet the pair carries whole on its path.
    pub fn inner_mtu(&self) -> u16 {
        self.inner_mtu.load(Ordering::Relaxed)
    }
}

/// The largest inner packet that `out` carries whole on `path` when its MTU is `path_mtu`. Over
/// TCP (RFC 9329) the stream is segmented to the path by the kernel and an ESP frame may be as long
/// as its 16-bit length allows, so the path sets no limit: only the TUN device's MTU does.
fn inner_mtu(out: &OutboundSa, path: &EspPath, path_mtu: u16) -> u16 {
    match path.transport {
        oxswan_ike::Transport::Udp => out.inner_mtu(path_mtu, path.remote.is_ipv6()),
        oxswan_ike::Transport::Tcp => u16::MAX,
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
    /// How many of them are per-resource pairs: without any, a lookup is one walk.
    per_resource: usize,
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

    /// The pair worker `worker` sends a packet on: the newest sending pair of that worker's
    /// resource whose selectors admit it (RFC 9611: each worker its own SA, sequence numbers and
    /// lock); for a worker without one, the newest that is no worker's (the fallback, RFC 9611 §2,
    /// or an ordinary pair); else as [`Tables::outbound`].
    pub fn outbound_on(&self, info: &PacketInfo, worker: u32) -> Option<&Arc<ChildEntry>> {
        if self.per_resource > 0 {
            let sending = |c: &Arc<ChildEntry>| c.outbound.load(Ordering::Relaxed);
            if let Some(c) = self.spd.lookup(info, |c| c.resource == Some(worker) && sending(c)) {
                return Some(c);
            }
            if let Some(c) = self.spd.lookup(info, |c| c.resource.is_none() && sending(c)) {
                return Some(c);
            }
        }
        self.outbound(info)
    }
}

/// The installed SAs: a snapshot the packet threads load without a lock, replaced by the IKE thread.
#[derive(Debug, Default)]
pub struct SaTables {
    current: ArcSwap<Tables>,
    /// Serializes the writers, so that none loses another's change between loading and storing.
    writer: Mutex<()>,
    /// Pairs removed a moment ago, still opening what their peer sent on them (see [`Retired`]).
    retired: Mutex<Retired>,
}

/// How long a removed pair still opens what its peer sent on it. The peer stops sending on an old
/// pair when its IKE thread handles our DELETE (RFC 7296 §2.8), but its packet threads may have
/// sealed packets on it before and send them after the DELETE's response, which is what makes us
/// remove the pair: without this, a rekey under traffic lost such a packet now and then.
pub const RETIRED_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Removed pairs kept at most (the oldest go first beyond).
const RETIRED_MAX: usize = 4096;

/// Removed pairs by inbound SPI, with when each was removed, oldest first. Only the packets whose
/// SPI no installed pair has look here. They are never sent on: the SPD no longer has them.
#[derive(Debug, Default)]
struct Retired {
    by_spi: std::collections::HashMap<u32, Arc<ChildEntry>>,
    order: std::collections::VecDeque<(Instant, u32)>,
}

impl Retired {
    fn expire(&mut self, now: Instant) {
        while let Some((at, spi)) = self.order.front().copied() {
            if self.order.len() <= RETIRED_MAX && now.saturating_duration_since(at) < RETIRED_GRACE {
                break;
            }
            self.order.pop_front();
            self.by_spi.remove(&spi);
        }
    }
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
            Ok(()) => next.per_resource += usize::from(entry.resource.is_some()),
            Err(SpdError::KeyInUse) => {
                let holder = next.by_spi(spi).map_or_else(String::new, |c| c.name.clone());
                return Err(InstallError::SpiInUse { spi, holder });
            }
            Err(e) => return Err(InstallError::Spd(e)),
        }
        self.current.store(Arc::new(next));
        Ok(entry)
    }

    /// Removes the pair with inbound SPI `spi_in`; for [`RETIRED_GRACE`] it still opens what comes
    /// on it ([`SaTables::retired`]).
    pub fn remove(&self, spi_in: u32) -> Option<Arc<ChildEntry>> {
        self.remove_at(spi_in, Instant::now())
    }

    fn remove_at(&self, spi_in: u32, now: Instant) -> Option<Arc<ChildEntry>> {
        // Nothing to publish for an SPI that is not there (a DELETE for a pair refused at install).
        self.load().by_spi(spi_in)?;
        let gone = self.change(|t| {
            let gone = t.spd.remove(&spi_in)?;
            t.per_resource = t.per_resource.saturating_sub(usize::from(gone.resource.is_some()));
            Some(gone)
        })?;
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        // An SPI drawn again since (the engine draws among the SPIs it holds) keeps only its newest.
        if retired.by_spi.insert(spi_in, gone.clone()).is_none() {
            retired.order.push_back((now, spi_in));
        }
        retired.expire(now);
        Some(gone)
    }

    /// The pair with inbound SPI `spi` removed less than [`RETIRED_GRACE`] ago, if any: for a packet
    /// no installed pair takes.
    pub fn retired(&self, spi: u32) -> Option<Arc<ChildEntry>> {
        self.retired_at(spi, Instant::now())
    }

    fn retired_at(&self, spi: u32, now: Instant) -> Option<Arc<ChildEntry>> {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.expire(now);
        retired.by_spi.get(&spi).cloned()
    }

    /// Starts sending on the pair with inbound SPI `spi_in`.
    pub fn activate(&self, spi_in: u32) {
        if let Some(c) = self.load().by_spi(spi_in) {
            c.outbound.store(true, Ordering::Relaxed);
        }
    }

    /// Sends the ESP of the pair with inbound SPI `spi_in` to `local` and `remote` from now on,
    /// over the transport it has (an SA keeps its transport, RFC 9329 §6); false if there is no
    /// such pair. The entry is shared with the packet threads, so only its path is swapped: a
    /// batch being sealed goes out the old way, the next batch the new one.
    pub fn update_path(&self, spi_in: u32, local: SocketAddr, remote: SocketAddr) -> bool {
        let tables = self.load();
        let Some(c) = tables.by_spi(spi_in) else { return false };
        let transport = c.path().transport;
        c.path.store(Arc::new(EspPath { local, remote, transport }));
        true
    }

    /// All installed pairs, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<ChildEntry>> {
        self.load().spd.values().into_iter().cloned().collect()
    }

    /// All installed pairs in no particular order: without the sort by age, for walks that do
    /// not care (the path MTU refresh).
    pub fn unordered(&self) -> Vec<Arc<ChildEntry>> {
        self.load().spd.values_unordered().cloned().collect()
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
    use oxswan_esp::{InboundSa, OutboundSa};

    fn path(local: &str, remote: &str) -> EspPath {
        EspPath {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            transport: oxswan_ike::Transport::Udp,
        }
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
    fn a_removed_pair_still_opens_for_a_moment_and_never_sends() {
        let t = SaTables::default();
        let now = Instant::now();
        t.install(pair(1, "10.2.0.0/16", true)).unwrap();
        assert!(t.retired_at(1, now).is_none(), "an installed pair is not retired");
        assert_eq!(t.remove_at(1, now).map(|c| c.inb.spi()), Some(1));
        assert!(t.load().by_spi(1).is_none());
        assert_eq!(out_spi(&t, "10.2.0.1"), None);
        let later = now + RETIRED_GRACE - std::time::Duration::from_millis(1);
        assert_eq!(t.retired_at(1, later).map(|c| c.inb.spi()), Some(1));
        assert!(t.retired_at(1, now + RETIRED_GRACE).is_none());
        assert!(t.retired_at(1, now).is_none(), "gone for good once expired");
        // At most RETIRED_MAX are kept, the oldest going first.
        for spi in 10..10 + u32::try_from(RETIRED_MAX).unwrap() + 1 {
            t.retired.lock().unwrap().by_spi.insert(spi, Arc::new(pair(spi, "10.3.0.0/16", true)));
            t.retired.lock().unwrap().order.push_back((now, spi));
        }
        assert!(t.retired_at(10, now).is_none());
        assert!(t.retired_at(11, now).is_some());
        assert_eq!(t.retired.lock().unwrap().by_spi.len(), RETIRED_MAX);
    }

    #[test]
    fn each_worker_sends_on_its_own_per_resource_pair_and_the_others_on_the_fallback() {
        let t = SaTables::default();
        let on = |t: &SaTables, worker| t.load().outbound_on(&to("10.2.0.1"), worker).map(|c| c.inb.spi());
        // Ordinary pairs only: every worker the newest, as `outbound`.
        t.install(pair(0x100, "10.2.0.0/16", true)).unwrap();
        assert_eq!((on(&t, 0), on(&t, 5)), (Some(0x100), Some(0x100)));
        let resource = |spi, k| ChildEntry { resource: Some(k), ..pair(spi, "10.2.0.0/16", true) };
        t.install(resource(0x200, 0)).unwrap();
        t.install(resource(0x201, 1)).unwrap();
        assert_eq!((on(&t, 0), on(&t, 1)), (Some(0x200), Some(0x201)));
        // A worker without a pair of its own: the fallback, though newer pairs are others'.
        assert_eq!(on(&t, 2), Some(0x100));
        // Worker 1's pair not sending yet (a rekey's responder holds back): the fallback too.
        t.install(resource(0x202, 1)).unwrap();
        t.remove(0x201);
        t.load().by_spi(0x202).unwrap().outbound.store(false, Ordering::Relaxed);
        assert_eq!(on(&t, 1), Some(0x100));
        t.activate(0x202);
        assert_eq!(on(&t, 1), Some(0x202));
        // Without the fallback, any sending pair (the newest), and without per-resource pairs the
        // count is back to none.
        t.remove(0x100);
        assert_eq!(on(&t, 3), Some(0x202));
        t.remove(0x200);
        t.remove(0x202);
        assert_eq!(t.load().per_resource, 0);
        assert_eq!(on(&t, 0), None);
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
        assert!(t.update_path(7, "192.0.2.1:4500".parse().unwrap(), "198.51.100.1:61000".parse().unwrap()));
        assert_eq!(held.path().remote, "198.51.100.1:61000".parse().unwrap(), "seen through the old snapshot");
        assert_eq!(entry.path(), held.path());
        assert!(Arc::ptr_eq(held, &entry), "the SAs themselves stay");
        assert!(!t.update_path(8, "192.0.2.1:4500".parse().unwrap(), "198.51.100.1:1".parse().unwrap()));
    }

    #[test]
    fn the_inner_mtu_follows_the_path_and_its_family() {
        // AES-GCM-16 over IPv4: 1500 - 20 - 8 - 8 - 8 - 2 - 16.
        let e = pair(9, "10.2.0.0/16", true);
        assert_eq!((e.path_mtu(), e.inner_mtu()), (1500, 1438));
        assert_eq!(e.set_path_mtu(1280), Some((1438, 1218)));
        assert_eq!(e.set_path_mtu(1280), None, "unchanged");
        assert_eq!(e.path_mtu(), 1280);
        let t = SaTables::default();
        let e = t.install(pair(10, "10.2.0.0/16", true)).unwrap();
        assert!(t.update_path(10, "[2001:db8::1]:4500".parse().unwrap(), "[2001:db8::2]:4500".parse().unwrap()));
        // IPv6 outside costs 20 octets more.
        assert_eq!(e.set_path_mtu(1500), Some((1438, 1418)));
    }

    /// Over TCP the kernel segments the stream: a narrow path never makes an inner packet too big.
    #[test]
    fn over_tcp_the_path_sets_no_inner_mtu() {
        let t = SaTables::default();
        let mut p = pair(11, "10.2.0.0/16", true);
        p.path = ArcSwap::from_pointee(EspPath { transport: oxswan_ike::Transport::Tcp, ..p.path() });
        p.inner_mtu = AtomicU16::new(inner_mtu(&p.out, &p.path(), DEFAULT_PATH_MTU));
        let e = t.install(p).unwrap();
        assert_eq!(e.inner_mtu(), u16::MAX);
        assert_eq!(e.set_path_mtu(1280), None, "unchanged by the path");
        assert_eq!(e.path_mtu(), 1280);
        // A move keeps the transport (RFC 9329 §6), and so the rule.
        assert!(t.update_path(11, "[2001:db8::1]:4500".parse().unwrap(), "[2001:db8::2]:4500".parse().unwrap()));
        assert_eq!(e.set_path_mtu(1500), None);
        assert_eq!(e.path().transport, oxswan_ike::Transport::Tcp);
    }

    #[test]
    fn a_pair_in_use_is_collected_once_per_round_and_a_removed_one_not_at_all() {
        let t = SaTables::default();
        let a = t.install(pair(1, "10.0.0.1/32", true)).unwrap();
        let b = t.install(pair(2, "10.0.0.2/32", true)).unwrap();
        t.install(pair(3, "10.0.0.3/32", true)).unwrap();
        let moved = Moved::default();
        let spis = |v: Vec<Arc<ChildEntry>>| v.iter().map(|e| e.inb.spi()).collect::<Vec<_>>();
        assert!(moved.collect(&t).is_empty(), "nothing counted yet");
        for _ in 0..3 {
            moved.note(&a);
        }
        moved.note(&b);
        assert_eq!(spis(moved.collect(&t)), [1, 2], "each once, the idle pair 3 not at all");
        assert!(moved.collect(&t).is_empty());
        moved.note(&a);
        moved.note(&b);
        t.remove(2);
        assert_eq!(spis(moved.collect(&t)), [1], "listed again after a collection; a removed pair is gone");
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
}
