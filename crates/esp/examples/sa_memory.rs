// The counting allocator below implements `GlobalAlloc`, an unsafe trait, and reads glibc's
// `mallinfo2` through FFI: both need `unsafe`, which the workspace denies. This is an example
// binary that measures, not the product; the data plane itself stays `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! The data plane's memory per CHILD SA pair: N pairs (default 100,000; `SA_PAIRS=N` to change) of
//! an [`InboundSa`] and an [`OutboundSa`] with AES-256-GCM-16, built from [`SaParams`] as the daemon
//! builds them for each `ChildSaReady`, with its default replay window of 1024 packets and with
//! RFC 4303 §3.4.3's default of 64; then the outbound SPD's share: each pair indexed once with
//! [`Spd::insert`] under a /32 remote selector (one virtual IP per road warrior) and the local
//! 0.0.0.0/0, as the daemon indexes every pair it installs.
//!
//! Printed per pair: the growth of the live Rust heap, from a counting global allocator, and of
//! everything glibc's `malloc` hands out (`mallinfo2`, chunk headers included), which also sees
//! aws-lc's C allocations (its AES-GCM key schedules and GHASH tables) that the counting allocator
//! does not. As references from the same run: the two AEAD keys alone
//! (`provider.cipher.aead`), which any implementation holds per pair, and the key material the
//! pair is made from (2 × 36 octets). The ratio to the 4 KiB goal of a whole road warrior (engine
//! and data plane, docs/benchmarks.md) is printed next to the total.
//!
//! Run with `cargo run --release -p oxswan-esp --example sa_memory`; a few seconds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use oxswan_crypto::Secret;
use oxswan_crypto::alg::EncrAlg;
use oxswan_crypto::keys::ChildSuite;
use oxswan_esp::{InboundSa, OutboundSa, SaParams, Selectors, Spd};
use oxswan_wire::EncrId;
use oxswan_wire::ts::TrafficSelector;

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe the layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (through this allocator).
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`; on failure the old block stays, and so do its counts.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
            LIVE_BYTES.fetch_add(new_size, Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// glibc's `struct mallinfo2`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
#[allow(dead_code)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
}

/// Bytes in use in glibc's `malloc` (Rust's `System` allocator and aws-lc's C allocations alike,
/// with the chunk headers): in-use chunks in the arenas plus mmapped blocks.
fn malloc_in_use() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 (glibc ≥ 2.33) takes nothing and returns a struct by value.
        let m = unsafe { mallinfo2() };
        Some(m.uordblks + m.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// The counters at one moment.
#[derive(Clone, Copy)]
struct Snapshot {
    bytes: usize,
    blocks: usize,
    malloc: Option<usize>,
}

impl Snapshot {
    fn take() -> Self {
        Self { bytes: LIVE_BYTES.load(Relaxed), blocks: LIVE_BLOCKS.load(Relaxed), malloc: malloc_in_use() }
    }
}

/// Growth per item between two snapshots: (Rust heap bytes, blocks, all of malloc).
struct Growth {
    bytes: f64,
    blocks: f64,
    malloc: Option<f64>,
}

fn growth(before: Snapshot, after: Snapshot, n: usize) -> Growth {
    let per = |a: usize, b: usize| (a as f64 - b as f64) / n as f64;
    Growth {
        bytes: per(after.bytes, before.bytes),
        blocks: per(after.blocks, before.blocks),
        malloc: after.malloc.zip(before.malloc).map(|(a, b)| per(a, b)),
    }
}

fn print(label: &str, g: &Growth) {
    let malloc = g.malloc.map_or("n/a".to_owned(), |m| format!("{m:.0} B"));
    println!("  {label}: Rust heap {:.0} B ({:.1} blocks); all of malloc incl. aws-lc: {malloc}", g.bytes, g.blocks);
}

/// The keys of pair `i`, distinct per pair and direction (their values do not matter here).
fn params(encr: EncrAlg, spi: u32, i: u32) -> SaParams {
    let mut key = vec![0u8; encr.keymat_len()];
    for (j, b) in key.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(spi) as u8) ^ (j as u8);
    }
    SaParams {
        spi,
        suite: ChildSuite { encr, integ: None },
        esn: false,
        encr_key: Secret::new(key),
        integ_key: Secret::new(Vec::new()),
    }
}

/// A pair as the data plane holds it (the daemon's entry adds its name, path and flags).
struct Pair {
    #[allow(dead_code)]
    inb: InboundSa,
    #[allow(dead_code)]
    out: OutboundSa,
}

/// N pairs with `window` packets of replay window, and what they cost per pair. The `SaParams`
/// are made and dropped one by one, as the daemon's are (the event that carried the keys goes).
fn pairs(p: &oxswan_crypto::CryptoProvider, encr: EncrAlg, n: u32, window: u32) -> (Vec<Arc<Pair>>, Growth) {
    let mut all = Vec::with_capacity(n as usize);
    let before = Snapshot::take();
    for i in 0..n {
        let (spi_in, spi_out) = (0x1000_0000 + 2 * i, 0x2000_0000 + 2 * i);
        let inb = InboundSa::new(p, &params(encr, spi_in, i), window).unwrap();
        let out = OutboundSa::new(p, &params(encr, spi_out, i)).unwrap();
        all.push(Arc::new(Pair { inb, out }));
    }
    let after = Snapshot::take();
    (all, growth(before, after, n as usize))
}

fn main() {
    let n: u32 = std::env::var("SA_PAIRS").ok().map_or(100_000, |v| v.parse().expect("SA_PAIRS=<pairs>"));
    assert!((1..=1 << 22).contains(&n), "1 ≤ SA_PAIRS ≤ 4194304 (the clients are in 100.64.0.0/10)");
    let p = oxswan_crypto::default_provider();
    let encr = EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap();
    // Warm-up: whatever the libraries initialise lazily on the first key is not the pairs' cost.
    drop(pairs(&p, encr, 16, 1024));

    // Reference: the two AEAD keys of a pair, alone (2 × 32-octet AES-256 keys; the salts stay out).
    let mut keys = Vec::with_capacity(2 * n as usize);
    let before = Snapshot::take();
    for i in 0..2 * n {
        let k = params(encr, i, i);
        keys.push(p.cipher.aead(encr, &k.encr_key.expose()[..encr.key_len()]).unwrap());
    }
    let aead = growth(before, Snapshot::take(), n as usize);
    drop(black_box(keys));

    let (small, w64) = pairs(&p, encr, n, 64);
    drop(black_box(small));
    let (all, w1024) = pairs(&p, encr, n, 1024);

    // The SPD's share: each pair under its client's /32, the local side everything (a gateway).
    let any = TrafficSelector::from_prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0, 0, u16::MAX).unwrap();
    let selectors: Vec<Selectors> = (0..n)
        .map(|i| {
            let client = IpAddr::V4(Ipv4Addr::from(0x6440_0000 + i));
            Selectors {
                local: vec![any.clone()],
                remote: vec![TrafficSelector::from_prefix(client, 32, 0, 0, u16::MAX).unwrap()],
            }
        })
        .collect();
    let mut spd: Spd<u32, Arc<Pair>> = Spd::new();
    let before = Snapshot::take();
    for (i, (pair, sel)) in all.iter().zip(&selectors).enumerate() {
        spd.insert(0x1000_0000 + 2 * i as u32, sel, pair.clone()).unwrap();
    }
    let spd_cost = growth(before, Snapshot::take(), n as usize);
    assert_eq!(spd.len(), n as usize);

    println!("{n} ESP SA pairs (InboundSa + OutboundSa, AES-256-GCM-16, built from SaParams), bytes per pair:");
    print("pairs, replay window 1024 (the daemon's default)", &w1024);
    print("pairs, replay window 64 (RFC 4303 §3.4.3's default)", &w64);
    print("reference, the two AEAD keys alone (provider.cipher.aead)", &aead);
    print("SPD entry (Spd::insert, /32 remote selector, local 0.0.0.0/0)", &spd_cost);
    let total_rust = w1024.bytes + spd_cost.bytes;
    let total_malloc = w1024.malloc.zip(spd_cost.malloc).map(|(a, b)| a + b);
    println!(
        "  data plane per pair (window 1024, with its SPD entry): Rust heap {total_rust:.0} B; all of malloc {}; \
         {:.2} of the 4 KiB goal; the pair's keys are 72 B, the AEAD keys' C state {} per pair (ratio {})",
        total_malloc.map_or("n/a".to_owned(), |m| format!("{m:.0} B")),
        total_malloc.unwrap_or(total_rust) / 4096.0,
        aead.malloc.map_or("n/a".to_owned(), |m| format!("{m:.0} B")),
        total_malloc.zip(aead.malloc).map_or("n/a".to_owned(), |(t, a)| format!("{:.2}", t / a)),
    );
    drop(black_box((spd, all, selectors)));
}
