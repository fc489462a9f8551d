//! The TUN device. With offloads (a virtio-net header before each packet, `TUN_F_TSO*`) the
//! kernel hands us TCP super-packets of up to 64 KiB, split here into segments, and takes
//! coalesced ones from us (GRO): the inner TCP stacks see one packet where the wire had dozens.
//! This is what took wireguard-go from about 2 to about 10 Gbit/s.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tun_rs::{DeviceBuilder, GROTable, SyncDevice, VIRTIO_NET_HDR_LEN};

/// How many segments one read may yield (a 64 KiB super-packet at the smallest MSS we expect).
pub const BATCH: usize = 128;
/// The largest packet one read may return without segmentation.
const MAX_PACKET: usize = 65_535;

/// A TUN device (layer 3, no packet information).
pub struct Tun {
    dev: SyncDevice,
    name: String,
}

impl core::fmt::Debug for Tun {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).field("offload", &self.offload()).finish()
    }
}

impl Tun {
    /// Creates the device `name` with `mtu`, with offloads when `offload` and the kernel allows.
    pub fn create(name: &str, mtu: u16, offload: bool) -> io::Result<Self> {
        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(name)
                .mtu(mtu)
                .with(|b| {
                    b.offload(offload);
                })
                .build_sync()
        };
        let dev = match build(offload) {
            Ok(d) => d,
            Err(e) if offload => {
                tracing::info!(target: "io", "TUN {name}: no offloads ({e}); one packet per read");
                build(false)?
            }
            Err(e) => return Err(e),
        };
        Ok(Self { dev, name: name.to_owned() })
    }

    /// Creates the device `name` with up to `queues` queues (`IFF_MULTI_QUEUE`): one file descriptor
    /// each, for one worker each. The kernel picks a packet's queue by its flow hash, so the packets
    /// of one flow all reach the same worker, in order. Fewer queues come back when the kernel refuses
    /// more (or multi-queue itself: then one, as [`Tun::create`] makes), with a log line; never none.
    pub fn create_queues(name: &str, mtu: u16, offload: bool, queues: usize) -> io::Result<Vec<Self>> {
        if queues <= 1 {
            return Self::create(name, mtu, offload).map(|t| vec![t]);
        }
        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(name)
                .mtu(mtu)
                .with(|b| {
                    b.offload(offload).multi_queue(true);
                })
                .build_sync()
        };
        let first = match build(offload) {
            Ok(d) => d,
            Err(e) if offload => match build(false) {
                Ok(d) => {
                    tracing::info!(target: "io", "TUN {name}: no offloads ({e}); one packet per read");
                    d
                }
                Err(e) => return Self::single_queue(name, mtu, offload, &e),
            },
            Err(e) => return Self::single_queue(name, mtu, offload, &e),
        };
        let mut all = Vec::with_capacity(queues);
        for _ in 1..queues {
            match first.try_clone() {
                Ok(d) => all.push(d),
                Err(e) => {
                    tracing::info!(target: "io", "TUN {name}: {} queue(s), not {queues}: {e}", all.len() + 1);
                    break;
                }
            }
        }
        all.insert(0, first);
        Ok(all.into_iter().map(|dev| Self { dev, name: name.to_owned() }).collect())
    }

    /// The fallback of [`Tun::create_queues`] when the kernel refuses a multi-queue device.
    fn single_queue(name: &str, mtu: u16, offload: bool, why: &io::Error) -> io::Result<Vec<Self>> {
        tracing::info!(target: "io", "TUN {name}: no multi-queue ({why}); one queue, one worker each way");
        Self::create(name, mtu, offload).map(|t| vec![t])
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether packets carry a virtio-net header (segmentation and coalescing offloads).
    pub fn offload(&self) -> bool {
        self.dev.tcp_gso()
    }

    /// Reads one packet or super-packet, split into segments in `rx`; blocks.
    pub fn recv(&self, rx: &mut TunRx) -> io::Result<usize> {
        rx.count = 0;
        let (offset, scratch, bufs, sizes) = (rx.offset, &mut rx.scratch, &mut rx.bufs, &mut rx.sizes);
        // tun-rs splits super-packets the kernel built; a malformed one is an error, and a bug in
        // its splitting must not take the data plane down with it.
        let n = catch_unwind(AssertUnwindSafe(|| self.dev.recv_multiple(scratch, bufs, sizes, offset)))
            .map_err(|_| io::Error::other("TUN segmentation failed"))??;
        rx.count = n.min(rx.bufs.len());
        Ok(rx.count)
    }

    /// Writes the packets queued in `tx`, coalesced where they continue one another, and empties it.
    pub fn send(&self, tx: &mut TunTx) -> io::Result<()> {
        let n = tx.count;
        tx.count = 0;
        let Some(bufs) = tx.bufs.get_mut(..n) else { return Ok(()) };
        if bufs.is_empty() {
            return Ok(());
        }
        if self.offload() {
            let gro = &mut tx.gro;
            catch_unwind(AssertUnwindSafe(|| self.dev.send_multiple(gro, bufs, VIRTIO_NET_HDR_LEN)))
                .map_err(|_| io::Error::other("TUN coalescing failed"))?
                .map(drop)
        } else {
            let mut result = Ok(());
            for b in bufs.iter() {
                if let Err(e) = self.dev.send(b.get(VIRTIO_NET_HDR_LEN..).unwrap_or_default()) {
                    result = Err(e);
                }
            }
            result
        }
    }
}

/// Buffers for reads: each packet lands at `offset` with `tailroom` free after it, so it can be
/// encrypted in place.
#[derive(Debug)]
pub struct TunRx {
    scratch: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    offset: usize,
    count: usize,
}

impl TunRx {
    /// Buffers for segments of up to `mtu` octets with `headroom` before and `tailroom` after.
    pub fn new(mtu: u16, headroom: usize, tailroom: usize) -> Self {
        let seg = headroom + usize::from(mtu) + tailroom;
        let mut bufs = vec![vec![0u8; seg]; BATCH];
        // An unsegmented read lands in the first buffer, whatever its size.
        if let Some(first) = bufs.first_mut() {
            first.resize(headroom + MAX_PACKET + tailroom, 0);
        }
        Self {
            scratch: vec![0u8; VIRTIO_NET_HDR_LEN + MAX_PACKET],
            bufs,
            sizes: vec![0; BATCH],
            offset: headroom,
            count: 0,
        }
    }

    /// The packets of the last read.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last read returned nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Packet `i`: its buffer and where in it the packet lies.
    pub fn packet(&mut self, i: usize) -> Option<(&mut Vec<u8>, core::ops::Range<usize>)> {
        if i >= self.count {
            return None;
        }
        let len = *self.sizes.get(i)?;
        let start = self.offset;
        let buf = self.bufs.get_mut(i)?;
        (start + len <= buf.len()).then_some((buf, start..start + len))
    }
}

/// Packets queued for one write batch.
pub struct TunTx {
    gro: GROTable,
    bufs: Vec<Vec<u8>>,
    count: usize,
}

impl core::fmt::Debug for TunTx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TunTx").field("count", &self.count).finish()
    }
}

impl Default for TunTx {
    fn default() -> Self {
        Self {
            gro: GROTable::default(),
            bufs: (0..BATCH).map(|_| Vec::with_capacity(VIRTIO_NET_HDR_LEN + 2048)).collect(),
            count: 0,
        }
    }
}

impl TunTx {
    /// Queues a copy of `packet`; false when the batch is full (send it first).
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let Some(b) = self.bufs.get_mut(self.count) else { return false };
        b.clear();
        b.resize(VIRTIO_NET_HDR_LEN, 0);
        b.extend_from_slice(packet);
        self.count += 1;
        true
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether another packet fits.
    pub fn is_full(&self) -> bool {
        self.count >= self.bufs.len()
    }
}
