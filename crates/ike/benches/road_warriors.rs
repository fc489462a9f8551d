// The counting allocator below implements `GlobalAlloc`, an unsafe trait, and reads glibc's
// `mallinfo2` through FFI: both need `unsafe`, which the workspace denies. This is a benchmark
// binary, not the product; the engine itself stays `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! N road warriors (default 10,000; `ROAD_WARRIORS=N` to change) on ONE gateway, in process, one
//! core: the IKE engine's cost per remote-access client, in time and in memory.
//!
//! The gateway authenticates with an ECDSA P-256 certificate (through one intermediate), runs
//! EAP-MSCHAPv2 asking for the EAP identity, knows the users `user0` .. `user{N-1}`, and lends each
//! client an IPv4 address from a /14 and an IPv6 address from a /110 (CP, RFC 7296 §3.15), with the
//! clients' selectors `dynamic`; `aes256gcm16-prfsha256-x25519`, ESP `aes256gcm16`, the real
//! default provider. Each client is an endpoint of its own with its own UDP source address
//! (100.64.x.y:500), IKE identity (that address, as Windows sends) and EAP user; it is built, runs
//! its whole handshake (IKE_SA_INIT, IKE_AUTH with the EAP rounds, CP and the CHILD SA) against the
//! gateway with the datagrams handed over directly (no latency, no loss), is checked, and is
//! dropped. The gateway keeps every IKE SA: after the run it must hold N established SAs with one
//! CHILD SA each and N distinct virtual IPs of each family; anything else panics.
//!
//! Printed:
//! - The setup rate: whole handshakes per second, one after another on one thread, including BOTH
//!   sides' work (the gateway's and the client's crypto and engine); split into the time spent in the
//!   gateway's calls and the rest (client, glue). Building a client's endpoint is not timed.
//! - References from the same run, as ratios: (a) the cryptography such a handshake cannot avoid
//!   (X25519 on both sides, the gateway's ECDSA AUTH signature, the client's chain validation and
//!   AUTH verification; MSCHAPv2's MD4/DES/SHA-1 is left out, a few µs), one call after each
//!   handshake, timed apart, so that both see the same load on the shared machine; (b) the same N
//!   handshakes site-to-site with one PSK, no EAP, no CP, fixed selectors, on one responder (with
//!   its X25519 interleaved the same way). (b) is run after the road warriors, so its ratio moves
//!   with the machine's load more than (a)'s.
//! - Linearity: the gateway's time per client (the median over the tenth; in all, and by the request
//!   it answers: #1 IKE_SA_INIT, #2 the first IKE_AUTH, #3–#5 the EAP rounds, #6 the final AUTH)
//!   and its memory growth per client, in the first and the last tenth of the N clients. A cost
//!   that grows with the number of SAs (or users) shows as a ratio above 1. As the load of the
//!   shared machine changes over a run, 500 more handshakes then go in turns to the gateway holding
//!   the N SAs and to fresh gateways (with all N users, and with just the 500 used), which see the
//!   same load. The EAP user lookup, which grows with the users, is timed on its own too.
//! - Memory per client on the gateway: (live heap bytes after all N are up − before the first) / N,
//!   measured with a counting global allocator while no client exists (each is dropped after its
//!   handshake, every datagram and event is drained), so the growth is the gateway's alone: the IKE
//!   SA with its CHILD SA, its lease in the pools, the engine's indices and the slack of their
//!   tables. The users' passwords are configured before "before" and are not in it. Rust's heap only:
//!   aws-lc allocates with C `malloc`, which the counting allocator does not see, so glibc's
//!   `mallinfo2` (every `malloc`, with chunk headers) is printed next to it. The breakdown lists the
//!   block sizes that grew most, the share of the leases (measured on a separate `MemoryLeases`) and
//!   the fixed size of what must exist per client (keys, SPIs, addresses, the cached last response).
//!   The same figure for the PSK reference is printed for comparison. No other implementation runs
//!   in this process, so there is no like-for-like memory reference: the site-to-site responder
//!   (the same engine without EAP, CP and leases) and that floor frame the figure instead.
//!
//! The machine's cores are shared with other work: the rates and the tenths' medians move with its
//! load from run to run (the interleaved reference's ratio much less); the memory figures do not.
//!
//! Run with `cargo bench -p oxswan-ike --bench road_warriors`; about 15 s at N = 10,000 once built.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_crypto::auth::{sign_auth, verify_auth};
use oxswan_crypto::proposal::{parse_esp_proposals, parse_ike_proposals};
use oxswan_eap::MethodType;
use oxswan_ike::auth::{Credentials, SharedKeys};
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::config::{EapClient, EapServer};
use oxswan_ike::leases::{AddressLeases, MemoryLeases, PoolAttributes};
use oxswan_ike::{Endpoint, EndpointConfig, Event, LocalAuth, PeerConfig, RemoteAuth, Retransmit, SaHandle};
use oxswan_pool::{AddrRange, Pool};
use oxswan_wire::ts::TrafficSelector;
use oxswan_wire::{AuthMethod, Identity, KeId};

#[path = "../tests/common/pki.rs"]
mod pki;

// -------------------------------------------------------------------------------------------------
// A counting allocator: live bytes, live blocks, and live blocks by exact size (for the breakdown).
// -------------------------------------------------------------------------------------------------

/// Sizes below this are counted one by one; larger blocks (hash tables, big vectors) together.
const EXACT: usize = 1 << 16;

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static BY_SIZE: [AtomicUsize; EXACT] = [const { AtomicUsize::new(0) }; EXACT];
static LARGE_BYTES: AtomicUsize = AtomicUsize::new(0);

fn count_in(size: usize) {
    LIVE_BYTES.fetch_add(size, Relaxed);
    LIVE_BLOCKS.fetch_add(1, Relaxed);
    match BY_SIZE.get(size) {
        Some(c) => c.fetch_add(1, Relaxed),
        None => LARGE_BYTES.fetch_add(size, Relaxed),
    };
}

fn count_out(size: usize) {
    LIVE_BYTES.fetch_sub(size, Relaxed);
    LIVE_BLOCKS.fetch_sub(1, Relaxed);
    match BY_SIZE.get(size) {
        Some(c) => c.fetch_sub(1, Relaxed),
        None => LARGE_BYTES.fetch_sub(size, Relaxed),
    };
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe the layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_in(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_in(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (through this allocator).
        unsafe { System.dealloc(ptr, layout) };
        count_out(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`; on failure the old block stays, and so do its counts.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_out(layout.size());
            count_in(new_size);
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

/// The allocator's counters at one moment. `by_size` is allocated once and refilled in place, so
/// that taking a snapshot allocates nothing.
struct Snapshot {
    bytes: usize,
    blocks: usize,
    malloc: Option<usize>,
    large: usize,
    by_size: Vec<usize>,
}

impl Snapshot {
    fn new() -> Self {
        Self { bytes: 0, blocks: 0, malloc: None, large: 0, by_size: Vec::with_capacity(EXACT) }
    }

    fn take(&mut self) {
        self.by_size.clear();
        self.by_size.extend(BY_SIZE.iter().map(|c| c.load(Relaxed)));
        self.large = LARGE_BYTES.load(Relaxed);
        self.blocks = LIVE_BLOCKS.load(Relaxed);
        self.malloc = malloc_in_use();
        self.bytes = LIVE_BYTES.load(Relaxed);
    }
}

fn growth(after: usize, before: usize) -> f64 {
    after as f64 - before as f64
}

// -------------------------------------------------------------------------------------------------
// Configurations
// -------------------------------------------------------------------------------------------------

const GW: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 500);
const UNIX_NOW: u64 = 1_795_478_400;
const PROPOSAL: &str = "aes256gcm16-prfsha256-x25519";

/// Client `i`'s public address: 100.64.0.0/10 upwards, port 500.
fn client_addr(i: usize) -> SocketAddr {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 1));
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(base + u32::try_from(i).unwrap())), 500)
}

fn user(i: usize) -> String {
    format!("user{i}")
}

fn password(i: usize) -> Secret {
    Secret::from_slice(format!("password of user{i}").as_bytes())
}

fn sel(s: &str) -> TsConfig {
    let (a, len) = s.split_once('/').unwrap();
    TsConfig::Selector(TrafficSelector::from_prefix(a.parse().unwrap(), len.parse().unwrap(), 0, 0, u16::MAX).unwrap())
}

fn child(local_ts: Vec<TsConfig>, remote_ts: Vec<TsConfig>) -> ChildConfig {
    ChildConfig {
        per_cpu_sas: false,
        name: "net".into(),
        esp_proposals: parse_esp_proposals("aes256gcm16").unwrap(),
        local_ts,
        remote_ts,
        mode: Mode::Tunnel,
        lifetime: Default::default(),
        volume: Default::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn peer(
    name: &str,
    local_id: Identity,
    remote_id: Option<Identity>,
    local_auth: LocalAuth,
    remote_auth: RemoteAuth,
    child: ChildConfig,
    pools: &[&str],
    vips: &[&str],
) -> PeerConfig {
    PeerConfig {
        name: name.into(),
        ike_proposals: parse_ike_proposals(PROPOSAL).unwrap(),
        prefer_initiator: false,
        local_id,
        remote_id,
        local_auth,
        remote_auth,
        rsa_pss: false,
        children: vec![child],
        retransmit: Retransmit::default(),
        ike_lifetime: Default::default(),
        initial_contact: true,
        force_encap: false,
        dpd_delay: None,
        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
        vips: vips.iter().map(|v| v.parse().unwrap()).collect(),
        unique: Default::default(),
        fragmentation: true,
        tcp: oxswan_ike::TcpConfig::NO,
        mobike: true,
        childless: Default::default(),
        ppk_id: None,
        ppk_required: false,
        redirect: None,
        resumption: false,
        remote_addrs: Vec::new(),
    }
}

fn endpoint(peers: Vec<PeerConfig>, now: Instant) -> Endpoint {
    // The daemon's defaults (cookies and half-open limits included): the handshakes come one after
    // another, so at most one SA is half-open at a time.
    Endpoint::new(EndpointConfig::default(), oxswan_crypto::default_provider(), peers, now, UNIX_NOW).unwrap()
}

/// The pools: 10.8.0.0/14 and fd10::/110 (262,142 and 262,144 addresses), with DNS servers.
fn leases() -> MemoryLeases {
    let mut leases = MemoryLeases::new();
    let grace = Duration::from_secs(3600);
    let dns4 = PoolAttributes { dns: vec!["10.10.0.53".parse().unwrap()], ..Default::default() };
    leases.insert(Pool::new("rw4", AddrRange::parse("10.8.0.0/14").unwrap(), grace), dns4);
    let dns6 = PoolAttributes { dns: vec!["fd10::53".parse().unwrap()], ..Default::default() };
    leases.insert(Pool::new("rw6", AddrRange::parse("fd10::/110").unwrap(), grace), dns6);
    leases
}

/// The road-warrior gateway with the users `user{i}` for i in `users`.
fn rw_gateway(gw_cert: &Arc<oxswan_ike::cert::LocalCert>, users: Range<usize>, now: Instant) -> Endpoint {
    let gw = peer(
        "rw",
        Identity::Fqdn("vpn.example".into()),
        None,
        LocalAuth::Cert(gw_cert.clone()),
        RemoteAuth::Eap(EapServer {
            methods: vec![MethodType::MsChapV2],
            ask_identity: true,
            identity: None,
            tls: None,
            eap_only: false,
        }),
        child(vec![sel("0.0.0.0/0"), sel("::/0")], vec![TsConfig::Dynamic]),
        &["rw4", "rw6"],
        &[],
    );
    let mut ep = endpoint(vec![gw], now);
    let mut keys = SharedKeys::new();
    for i in users {
        keys.add_eap(user(i), password(i));
    }
    ep.set_credentials(Arc::new(keys));
    ep.set_leases(Box::new(leases()));
    ep
}

/// Road warrior `i` (address `client_addr(i)`, its IKE identity) with the EAP user `user{u}`, asking
/// for an address of each family, everything through the tunnel.
fn rw_client(i: usize, u: usize, trust: &oxswan_ike::cert::TrustStore, now: Instant) -> Endpoint {
    let IpAddr::V4(ip) = client_addr(i).ip() else { unreachable!() };
    let mut p = peer(
        "to-gw",
        Identity::Ipv4(ip),
        Some(Identity::Fqdn("vpn.example".into())),
        LocalAuth::Eap(EapClient { identity: Some(user(u)), methods: Vec::new(), tls: None }),
        RemoteAuth::Cert(trust.clone()),
        child(vec![TsConfig::Dynamic], vec![sel("0.0.0.0/0"), sel("::/0")]),
        &[],
        &["0.0.0.0", "::"],
    );
    // A second device of a user (another address than the user's own) sends no INITIAL_CONTACT,
    // which would replace the user's first IKE SA (RFC 7296 §2.4; SAs are indexed by EAP identity).
    p.initial_contact = i == u;
    let mut ep = endpoint(vec![p], now);
    let mut own = SharedKeys::new();
    own.add_eap(user(u), password(u));
    ep.set_credentials(Arc::new(own));
    ep
}

fn psk() -> Secret {
    Secret::from_slice(b"site-to-site benchmark pre-shared key")
}

/// The reference responder: one PSK for every site, no EAP, no pools; sites in 10.128.0.0/9.
fn s2s_gateway(now: Instant) -> Endpoint {
    let gw = peer(
        "sites",
        Identity::Fqdn("hub.example".into()),
        None,
        LocalAuth::Psk(psk()),
        RemoteAuth::Psk(psk()),
        child(vec![sel("10.0.0.0/16")], vec![sel("10.128.0.0/9")]),
        &[],
        &[],
    );
    endpoint(vec![gw], now)
}

/// Site `i`: its own FQDN and a /29 of 10.128.0.0/9.
fn s2s_client(i: usize, now: Instant) -> Endpoint {
    let subnet = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (u32::try_from(i).unwrap() << 3));
    let p = peer(
        "to-gw",
        Identity::Fqdn(format!("site{i}.example")),
        Some(Identity::Fqdn("hub.example".into())),
        LocalAuth::Psk(psk()),
        RemoteAuth::Psk(psk()),
        child(vec![sel(&format!("{subnet}/29"))], vec![sel("10.0.0.0/16")]),
        &[],
        &[],
    );
    endpoint(vec![p], now)
}

// -------------------------------------------------------------------------------------------------
// The run
// -------------------------------------------------------------------------------------------------

/// What one run of N handshakes against one gateway measured.
struct Run {
    n: usize,
    /// Wall time of the handshakes (initiate to the last datagram), clients' construction excluded.
    total: Duration,
    /// Of which inside the gateway's calls.
    in_gateway: Duration,
    /// N calls of the reference.
    reference: Duration,
    /// The gateway's time per client in µs, by the request it was answering (see [`pump`]), then
    /// in all (timers included).
    samples: Vec<[f32; MSGS + 1]>,
    /// How often a timer of the gateway fell due.
    timeouts: usize,
    /// The gateway's live Rust heap at each tenth's end (clients dropped), and at the start.
    bytes_at: [usize; 11],
    before: Snapshot,
    after: Snapshot,
    /// The virtual time after the last client.
    end: Instant,
    /// Octets of the gateway's IKE_SA_INIT response, of the client's IKE_SA_INIT request, and of the
    /// gateway's last response (client 0's).
    init_response: usize,
    init_request: usize,
    last_response: usize,
}

/// The gateway's time is split by the request it answers; requests after the seventh go together.
const MSGS: usize = 8;

/// Times one call into the gateway.
fn timed<T>(in_gw: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let r = f();
    *in_gw += t0.elapsed();
    r
}

/// Hands the datagrams between `client` and `gw` until both are quiet, timing the gateway's calls
/// (`in_gw`, by the request it received last: 0 = IKE_SA_INIT, 1 = the first IKE_AUTH, ...) and recording datagram sizes into `sizes` up to its capacity (the client's first, then
/// the gateway's). Panics on any failure; returns the number of CHILD SAs the gateway reported.
fn pump(
    gw: &mut Endpoint,
    client: &mut Endpoint,
    now: Instant,
    in_gw: &mut [Duration; MSGS],
    sizes: &mut Vec<usize>,
) -> usize {
    let mut gw_children = 0;
    let mut client_children = 0;
    let mut received = 0usize;
    let mut slot = 0;
    loop {
        let mut moved = false;
        while let Some(t) = client.poll_transmit() {
            moved = true;
            if sizes.is_empty() && sizes.capacity() > 0 {
                sizes.push(t.payload.len());
            }
            slot = received.min(MSGS - 1);
            received += 1;
            timed(&mut in_gw[slot], || gw.handle_datagram(now, t.remote, t.local, &t.payload));
        }
        while let Some(e) = client.poll_event() {
            match e {
                Event::ChildSaReady { .. } => client_children += 1,
                Event::IkeSaDown { reason, .. } => panic!("a client's IKE SA went down: {reason:?}"),
                Event::AuthFailed { reason, .. } => panic!("a client failed to authenticate: {reason}"),
                Event::ChildSaFailed { .. } | Event::AddressFailure { .. } => panic!("client: {e:?}"),
                _ => {}
            }
        }
        while let Some(e) = timed(&mut in_gw[slot], || gw.poll_event()) {
            match e {
                Event::ChildSaReady { .. } => gw_children += 1,
                Event::IkeSaDown { reason, .. } => panic!("an IKE SA on the gateway went down: {reason:?}"),
                Event::AuthFailed { reason, .. } => panic!("the gateway refused a client: {reason}"),
                Event::ChildSaFailed { .. } | Event::AddressFailure { .. } => panic!("gateway: {e:?}"),
                _ => {}
            }
        }
        while let Some(t) = timed(&mut in_gw[slot], || gw.poll_transmit()) {
            moved = true;
            if sizes.len() < sizes.capacity() {
                sizes.push(t.payload.len());
            }
            client.handle_datagram(now, t.remote, t.local, &t.payload);
        }
        if !moved {
            assert_eq!(client_children, 1, "the client has its CHILD SA");
            return gw_children;
        }
    }
}

/// N handshakes against `gw`, one after another, each with a fresh client from `make` that
/// `check` inspects before it is dropped; after each, one call of `reference`, timed apart, so
/// that the handshakes and their reference share the machine's conditions (the core is shared).
fn run(
    gw: &mut Endpoint,
    n: usize,
    mut make: impl FnMut(usize, Instant) -> Endpoint,
    mut check: impl FnMut(usize, &Endpoint, SaHandle),
    mut reference: impl FnMut(),
) -> Run {
    let mut now = Instant::now();
    let mut r = Run {
        n,
        total: Duration::ZERO,
        in_gateway: Duration::ZERO,
        reference: Duration::ZERO,
        samples: Vec::with_capacity(n),
        timeouts: 0,
        bytes_at: [0; 11],
        before: Snapshot::new(),
        after: Snapshot::new(),
        end: now,
        init_response: 0,
        init_request: 0,
        last_response: 0,
    };
    // Client 0's datagram sizes, collected without allocating during the run.
    let mut sizes: Vec<usize> = Vec::with_capacity(32);
    let mut no_sizes: Vec<usize> = Vec::new();
    r.before.take();
    r.bytes_at[0] = r.before.bytes;
    for i in 0..n {
        let mut client = make(i, now);
        let start = Instant::now();
        let mut by_msg = [Duration::ZERO; MSGS];
        let sa = client.initiate(now, "to-gw", client_addr(i), GW).unwrap();
        let record = if i == 0 { &mut sizes } else { &mut no_sizes };
        let children = pump(gw, &mut client, now, &mut by_msg, record);
        r.total += start.elapsed();
        assert_eq!(children, 1, "client {i}: the gateway has its CHILD SA");
        check(i, &client, sa);
        drop(client);
        let t0 = Instant::now();
        reference();
        r.reference += t0.elapsed();
        // Virtual time: 1 ms per client; whatever falls due on the gateway is handled (and timed).
        now += Duration::from_millis(1);
        let mut in_gw: Duration = by_msg.iter().sum();
        if gw.poll_timeout().is_some_and(|t| t <= now) {
            let t0 = Instant::now();
            gw.handle_timeout(now);
            while let Some(e) = gw.poll_event() {
                assert!(!matches!(e, Event::IkeSaDown { .. }), "an SA timed out on the gateway: {e:?}");
            }
            while gw.poll_transmit().is_some() {}
            in_gw += t0.elapsed();
            r.total += t0.elapsed();
            r.timeouts += 1;
        }
        r.in_gateway += in_gw;
        let mut row = [0f32; MSGS + 1];
        for (x, d) in row.iter_mut().zip(by_msg.iter().chain([&in_gw])) {
            *x = d.as_secs_f32() * 1e6;
        }
        r.samples.push(row);
        if (i + 1) * 10 / n != i * 10 / n {
            r.bytes_at[(i + 1) * 10 / n] = LIVE_BYTES.load(Relaxed);
        }
    }
    r.after.take();
    r.end = now;
    // sizes: [client's IKE_SA_INIT request, gateway's IKE_SA_INIT response, ..., gateway's last].
    r.init_request = sizes.first().copied().unwrap_or(0);
    r.init_response = sizes.get(1).copied().unwrap_or(0);
    r.last_response = sizes.last().copied().unwrap_or(0);
    drop(sizes);
    r
}

impl Run {
    fn rate(&self) -> f64 {
        self.n as f64 / self.total.as_secs_f64()
    }

    fn reference_rate(&self) -> f64 {
        self.n as f64 / self.reference.as_secs_f64()
    }

    fn bytes_per_client(&self) -> f64 {
        growth(self.after.bytes, self.before.bytes) / self.n as f64
    }

    /// The clients of tenth `t` (client i is in tenth i * 10 / n).
    fn tenth(&self, t: usize) -> core::ops::Range<usize> {
        (t * self.n).div_ceil(10)..((t + 1) * self.n).div_ceil(10)
    }

    /// The gateway's bytes per client over tenth `t`.
    fn tenth_bytes(&self, t: usize) -> f64 {
        growth(self.bytes_at[t + 1], self.bytes_at[t]) / self.tenth(t).len() as f64
    }

    /// The median of column `col` of the samples over tenth `t`: medians, as the core is shared
    /// and another process's burst lands in a few samples only.
    fn tenth_median(&self, t: usize, col: usize) -> f64 {
        median(&self.samples[self.tenth(t)], col)
    }

    fn print_linearity(&self) {
        if self.n < 10 {
            return;
        }
        let (us0, us9) = (self.tenth_median(0, MSGS), self.tenth_median(9, MSGS));
        println!(
            "    gateway per client, medians: first tenth {us0:.1} µs, last tenth {us9:.1} µs, ratio {:.2}; memory {:.0} B and {:.0} B; {} timer expiries",
            us9 / us0,
            self.tenth_bytes(0),
            self.tenth_bytes(9),
            self.timeouts
        );
        let msgs: Vec<String> = (0..MSGS)
            .filter(|m| self.samples.iter().any(|row| row[*m] > 0.0))
            .map(|m| format!("#{} {:.1}→{:.1}", m + 1, self.tenth_median(0, m), self.tenth_median(9, m)))
            .collect();
        println!("    by request answered (median µs, first tenth→last): {}", msgs.join(", "));
    }

    fn print_memory(&self, label: &str) {
        let n = self.n as f64;
        let blocks = growth(self.after.blocks, self.before.blocks) / n;
        let malloc = match (self.after.malloc, self.before.malloc) {
            (Some(a), Some(b)) => format!("{:.0} B", growth(a, b) / n),
            _ => "n/a".into(),
        };
        println!(
            "  {label}: {:.0} B per client (Rust heap, {blocks:.1} blocks); all of malloc incl. aws-lc and chunk headers: {malloc}",
            self.bytes_per_client()
        );
    }

    /// The block sizes whose live count grew most, by bytes.
    fn print_breakdown(&self) {
        let n = self.n as f64;
        let mut rows: Vec<(f64, usize, f64)> = self
            .after
            .by_size
            .iter()
            .zip(&self.before.by_size)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(size, (a, b))| {
                let blocks = growth(*a, *b);
                (blocks * size as f64 / n, size, blocks / n)
            })
            .collect();
        rows.sort_by(|x, y| y.0.total_cmp(&x.0));
        let large = growth(self.after.large, self.before.large) / n;
        let shown: f64 = rows.iter().take(12).map(|r| r.0).sum();
        println!("    largest contributors (block size × blocks per client = bytes per client):");
        for (bytes, size, per) in rows.iter().take(12) {
            println!("      {size:>6} B × {per:>5.2} = {bytes:>6.0} B");
        }
        println!(
            "      blocks ≥ 64 KiB (the engine's hash tables and B-tree roots, growing by doubling): {large:.0} B"
        );
        println!("      all other sizes: {:.0} B", self.bytes_per_client() - shown - large);
    }
}

fn median(rows: &[[f32; MSGS + 1]], col: usize) -> f64 {
    let mut v: Vec<f32> = rows.iter().map(|row| row[col]).collect();
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).map_or(0.0, |x| f64::from(*x))
}

/// After a run: `k` more handshakes against each of `gws` (the first holds the run's N SAs, the
/// others are fresh gateways of the same configuration), in turns, so that all see the same load on
/// the shared machine: a cost that grows with what a gateway holds shows as a ratio above 1
/// whatever the load does. Client j comes from `make(j, now)` and sends from `client_addr(first +
/// j)`. Returns each gateway's per-client samples, as [`Run::samples`].
fn probe(
    gws: &mut [&mut Endpoint],
    k: usize,
    first: usize,
    mut now: Instant,
    mut make: impl FnMut(usize, Instant) -> Endpoint,
) -> Vec<Vec<[f32; MSGS + 1]>> {
    let mut samples: Vec<Vec<[f32; MSGS + 1]>> = gws.iter().map(|_| Vec::with_capacity(k)).collect();
    for j in 0..k {
        for turn in 0..gws.len() {
            let side = (turn + j) % gws.len();
            let gw = &mut *gws[side];
            let mut client = make(j, now);
            let mut by_msg = [Duration::ZERO; MSGS];
            client.initiate(now, "to-gw", client_addr(first + j), GW).unwrap();
            assert_eq!(pump(gw, &mut client, now, &mut by_msg, &mut Vec::new()), 1, "probe {j}: a CHILD SA");
            let mut row = [0f32; MSGS + 1];
            let total: Duration = by_msg.iter().sum();
            for (x, d) in row.iter_mut().zip(by_msg.iter().chain([&total])) {
                *x = d.as_secs_f32() * 1e6;
            }
            samples[side].push(row);
        }
        now += Duration::from_millis(1);
        for gw in gws.iter_mut() {
            if gw.poll_timeout().is_some_and(|t| t <= now) {
                gw.handle_timeout(now);
                while let Some(e) = gw.poll_event() {
                    assert!(!matches!(e, Event::IkeSaDown { .. }), "an SA timed out on the gateway: {e:?}");
                }
                while gw.poll_transmit().is_some() {}
            }
        }
    }
    samples
}

/// Prints what [`probe`] measured, the gateways named by `names`, each against the last.
fn print_probe(k: usize, names: &[&str], samples: &[Vec<[f32; MSGS + 1]>]) {
    println!("    {k} more handshakes against each of these gateways in turns (medians, µs; ratio to the last):");
    let Some(last) = samples.last() else { return };
    for (name, rows) in names.iter().zip(samples) {
        let msgs: Vec<String> = (0..MSGS)
            .filter(|m| rows.iter().any(|row| row[*m] > 0.0))
            .map(|m| format!("#{} {:.1}", m + 1, median(rows, m)))
            .collect();
        println!(
            "      {name}: {:.1} ({:.2}); {}",
            median(rows, MSGS),
            median(rows, MSGS) / median(last, MSGS),
            msgs.join(", ")
        );
    }
}

// -------------------------------------------------------------------------------------------------
// References
// -------------------------------------------------------------------------------------------------

/// ns per call of `op`, over `k` calls.
fn ns_per(k: u32, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..k {
        op();
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(k)
}

fn main() {
    let n: usize = std::env::var("ROAD_WARRIORS").ok().map_or(10_000, |v| v.parse().expect("ROAD_WARRIORS=<clients>"));
    assert!((1..=262_142).contains(&n), "1 ≤ ROAD_WARRIORS ≤ 262142 (the IPv4 pool is a /14)");
    let provider = oxswan_crypto::default_provider();
    let ca = pki::Ca::new("Bench", pki::Alg::P256);
    let gw_cert = ca.local(pki::Alg::P256, "vpn.example", &["vpn.example"]);
    let trust = ca.trust();

    // The references, called once after each handshake: the cryptography a road-warrior handshake
    // cannot avoid (X25519 on both sides; the gateway's ECDSA signature; the client's chain
    // validation and AUTH verification), and a PSK handshake's (X25519 on both sides).
    let x25519 = || {
        let i = provider.ke.start(KeId::CURVE25519).unwrap();
        let (r, _) = provider.ke.respond(KeId::CURVE25519, i.public_value()).unwrap();
        black_box(i.complete(&r).unwrap());
    };
    let octets = vec![0x5a; 600];
    let rw_crypto = || {
        x25519();
        let auth = sign_auth(gw_cert.key.as_ref(), AuthMethod::DIGITAL_SIGNATURE, false, &octets).unwrap();
        let peer = trust.verify(&gw_cert.chain[0], &gw_cert.chain[1..], UNIX_NOW).unwrap();
        verify_auth(provider.signature.as_ref(), &peer.spki, &auth, &octets).unwrap();
    };

    // --- Road warriors -------------------------------------------------------------------------
    // Warm-up on a throwaway gateway (code, caches, lazily initialised state of the libraries), so
    // that the first tenth of the measured run is not the cold start.
    let now = Instant::now();
    let mut warm = rw_gateway(&gw_cert, 0..50, now);
    drop(run(&mut warm, 50, |i, now| rw_client(i, i, &trust, now), |_, _, _| {}, rw_crypto));
    drop(warm);
    let mut warm = s2s_gateway(now);
    drop(run(&mut warm, 50, s2s_client, |_, _, _| {}, x25519));
    drop(warm);

    let mut gw = rw_gateway(&gw_cert, 0..n, now);
    let mut v4: Vec<u32> = Vec::with_capacity(n);
    let mut v6: Vec<u128> = Vec::with_capacity(n);
    let rw = run(
        &mut gw,
        n,
        |i, now| rw_client(i, i, &trust, now),
        |i, client, sa| {
            let info = client.info(sa).unwrap_or_else(|| panic!("client {i} is not established"));
            let mut got4 = None;
            let mut got6 = None;
            for vip in &info.local_vips {
                match vip {
                    IpAddr::V4(a) => got4 = Some(u32::from(*a)),
                    IpAddr::V6(a) => got6 = Some(u128::from(*a)),
                }
            }
            assert_eq!(info.local_vips.len(), 2, "client {i}: {:?}", info.local_vips);
            v4.push(got4.unwrap_or_else(|| panic!("client {i} has no IPv4 address")));
            v6.push(got6.unwrap_or_else(|| panic!("client {i} has no IPv6 address")));
        },
        rw_crypto,
    );
    // The result, checked after the memory was measured.
    let mut distinct4 = v4.clone();
    distinct4.sort_unstable();
    distinct4.dedup();
    let mut distinct6 = v6.clone();
    distinct6.sort_unstable();
    distinct6.dedup();
    assert_eq!((distinct4.len(), distinct6.len()), (n, n), "every client has its own virtual IPs");
    assert_eq!(gw.sa_count(), n, "the gateway holds exactly N IKE SAs");
    let established = gw.established();
    assert_eq!(established.len(), n, "all of them established");
    let mut users: Vec<String> = Vec::with_capacity(n);
    let mut remote4: Vec<u32> = Vec::with_capacity(n);
    let mut remote6: Vec<u128> = Vec::with_capacity(n);
    for h in &established {
        let info = gw.info(*h).unwrap();
        assert_eq!(gw.children(*h).len(), 1, "one CHILD SA per IKE SA");
        users.push(info.eap_id.expect("the gateway knows each client's EAP identity"));
        for vip in info.remote_vips {
            match vip {
                IpAddr::V4(a) => remote4.push(u32::from(a)),
                IpAddr::V6(a) => remote6.push(u128::from(a)),
            }
        }
    }
    users.sort_unstable();
    users.dedup();
    remote4.sort_unstable();
    remote6.sort_unstable();
    assert_eq!(users.len(), n, "N distinct EAP users");
    assert_eq!(remote4, distinct4, "the gateway's view of the IPv4 virtual IPs is the clients'");
    assert_eq!(remote6, distinct6, "the gateway's view of the IPv6 virtual IPs is the clients'");
    let gw_stats = gw.stats();
    assert_eq!(gw_stats.dropped, 0, "the gateway dropped nothing: {gw_stats:?}");

    // Linearity under the same load: k more clients (new addresses and IKE identities, the last k
    // EAP users) against this gateway, a fresh one with all N users, and a fresh one with just
    // those k users.
    let k = n.min(500);
    let mut all_users = rw_gateway(&gw_cert, 0..n, rw.end);
    let mut few_users = rw_gateway(&gw_cert, n - k..n, rw.end);
    let rw_probe = probe(&mut [&mut gw, &mut all_users, &mut few_users], k, n, rw.end, |j, now| {
        rw_client(n + j, n - k + j, &trust, now)
    });
    drop((all_users, few_users));

    // The users' lookup, which the EAP method makes once per handshake: the first and the last user.
    let mut keys = SharedKeys::new();
    for i in 0..n {
        keys.add_eap(user(i), password(i));
    }
    let (first, last) = (user(0), user(n - 1));
    let lookup_first = ns_per(2_000, || {
        black_box(keys.eap_secret(black_box(first.as_bytes())));
    });
    let lookup_last = ns_per(2_000, || {
        black_box(keys.eap_secret(black_box(last.as_bytes())));
    });
    drop(keys);
    drop(gw);

    // The leases alone: N owners, one address of each family, in a separate `MemoryLeases`.
    let names = ["rw4".to_owned(), "rw6".to_owned()];
    let owners: Vec<String> = (0..n).map(user).collect();
    let mut pools = leases();
    let mut held = Vec::with_capacity(2 * n);
    let before = LIVE_BYTES.load(Relaxed);
    for (i, owner) in owners.iter().enumerate() {
        held.push(pools.acquire(&names, false, owner, Some(client_addr(i)), None, now).unwrap());
        held.push(pools.acquire(&names, true, owner, Some(client_addr(i)), None, now).unwrap());
    }
    // The engine keeps each `Lease` (its pool's name, the address, the pool's attributes) in the
    // IKE SA too; they are counted here, in `held`'s heap parts (the vector itself was allocated
    // before).
    let lease_bytes = growth(LIVE_BYTES.load(Relaxed), before) / n as f64;
    drop((held, pools, owners));

    // --- Reference: N site-to-site PSK handshakes on one responder -------------------------------
    let mut hub = s2s_gateway(Instant::now());
    let s2s = run(
        &mut hub,
        n,
        s2s_client,
        |i, client, sa| {
            assert!(client.info(sa).is_some(), "site {i} is established");
        },
        x25519,
    );
    assert_eq!(hub.established().len(), n, "the hub holds N established SAs");
    let mut fresh = s2s_gateway(s2s.end);
    let s2s_probe = probe(&mut [&mut hub, &mut fresh], k, n, s2s.end, |j, now| s2s_client(n + j, now));
    drop((hub, fresh));

    // --- Report ------------------------------------------------------------------------------------
    let rw_rate = rw.rate();
    let rw_crypto_rate = rw.reference_rate();
    let ke_rate = s2s.reference_rate();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("{n} road warriors on one gateway, one thread, handshakes one after another, BOTH sides' work timed");
    println!(
        "(IKE_SA_INIT, IKE_AUTH with ECDSA P-256 certificate + EAP-MSCHAPv2 rounds, CP with IPv4 + IPv6, CHILD SA;"
    );
    println!(" {PROPOSAL}, ESP aes256gcm16; the clients' endpoints are built untimed):");
    println!(
        "  road warriors {rw_rate:.0}/s ({:.1} µs per client: gateway {:.1}, client and glue {:.1})",
        us(rw.total),
        us(rw.in_gateway),
        us(rw.total - rw.in_gateway)
    );
    rw.print_linearity();
    let rw_names = [format!("holding {n} SAs, {n} users"), format!("fresh, {n} users"), format!("fresh, {k} users")];
    print_probe(k, &rw_names.iter().map(String::as_str).collect::<Vec<_>>(), &rw_probe);
    println!(
        "  reference, its unavoidable crypto (X25519 both sides, gateway's ECDSA signature, client's chain validation + AUTH verification): {rw_crypto_rate:.0}/s, ratio {:.2}",
        rw_rate / rw_crypto_rate
    );
    println!(
        "  reference, {n} site-to-site PSK handshakes on one responder, same proposals, no EAP/CP: {:.0}/s, ratio {:.2} (PSK vs its X25519 alone {ke_rate:.0}/s: {:.2})",
        s2s.rate(),
        rw_rate / s2s.rate(),
        s2s.rate() / ke_rate
    );
    s2s.print_linearity();
    print_probe(k, &[&format!("holding {n} SAs"), "fresh"], &s2s_probe);
    println!(
        "  EAP user lookup (SharedKeys::eap_secret) among {n} users: {first} {lookup_first:.0} ns, {last} {lookup_last:.0} ns"
    );
    println!("memory on the gateway, (live bytes after all N are up − before the first) / N, no client alive:");
    rw.print_memory("road warriors");
    rw.print_breakdown();
    println!(
        "    of it, the two leases in the pools (a separate MemoryLeases, with the engine's Lease copies): {lease_bytes:.0} B"
    );
    // What must exist per client whatever the implementation: SK_d, SK_e (2 × 36), SK_p (2 × 32),
    // the CHILD SA's keys (2 × 36), four SPIs, the two UDP addresses, the two virtual IPs, the user
    // name, and the last response, cached for a retransmitted request (RFC 7296 §2.1).
    let floor =
        32 + 2 * 36 + 2 * 32 + 2 * 36 + (8 + 8 + 4 + 4) + 2 * 16 + (4 + 16) + user(n - 1).len() + rw.last_response;
    println!(
        "    floor of what must exist per client: {floor} B (IKE and CHILD SA keys 240, SPIs 24, addresses 52, user name, last response {} B); ratio {:.1}",
        rw.last_response,
        rw.bytes_per_client() / floor as f64
    );
    println!(
        "    the IKE_SA_INIT request and response are {} B and {} B (freed with the nonces and SK_p* once the SA is established)",
        rw.init_request, rw.init_response
    );
    s2s.print_memory("site-to-site PSK reference");
    s2s.print_breakdown();
}
