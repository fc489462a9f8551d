//! IKE and ESP over TCP (RFC 9329) in the daemon: the listener, one reader and one writer thread
//! per stream, and the table of streams that the IKE thread and the data plane send into.
//!
//! The framing is `oxswan-tcp`'s; this module only moves octets. A stream is known by our address
//! and the peer's end ([`StreamKey`]): the engine's `Transmit` over TCP names both, and a pair's
//! `EspPath` too. The side that opened a stream opens it again when it breaks (§6): here that
//! means a `Transmit` to a peer's TCP port opens a stream when there is none, while one to a
//! peer's ephemeral port (an accepted stream that is gone) is dropped: the responder never
//! connects back. Everything is bounded: the number of streams, each reader's buffer (the
//! decoder's fixed one), each writer's queue (IKE messages by count, ESP by octets), and a stream
//! that carries no IKE SA is closed after [`IDLE`].

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use oxswan_io::TunTx;
use oxswan_tcp::{Decoder, Frame, SendQueue};

use crate::input::Input;
pub use crate::input::StreamKey;

/// Where the ESP the streams carry goes: the data plane, seen through this trait so that the
/// streams, which it sends into, do not depend on it in turn.
pub trait EspSink: Send + Sync {
    /// Opens an ESP packet that came on a stream (RFC 9329 §3.2) and queues its inner packet in
    /// `tx`.
    fn esp_from_stream(&self, pkt: &mut [u8], tx: &mut TunTx);
    /// Writes what `tx` holds to the TUN device.
    fn flush_tun(&self, tx: &mut TunTx);
}

/// Streams at most, accepted and opened together: each costs two threads and its buffers.
pub const MAX_STREAMS: usize = 256;
/// A stream that no established IKE SA uses and that carried no IKE message for this long is
/// closed (a stranger that connected and said nothing, or the stream of an SA that is gone).
pub const IDLE: Duration = Duration::from_secs(30);
/// ESP octets that may wait for one stream; beyond, packets are dropped (oxswan-tcp's
/// `SendQueue`: IKE never waits behind them).
const ESP_QUEUE: usize = 1 << 20;
/// IKE messages that may wait for one stream.
const IKE_QUEUE: usize = 64;
/// The most one write takes from the queue: an IKE message queued meanwhile waits for this much.
const WRITE_CHUNK: usize = 128 * 1024;
/// Connecting to the peer may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that takes nothing from a full stream for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// Socket buffers: a stream carries the tunnel's traffic.
const SOCKET_BUFFER: usize = 4 << 20;

/// One stream.
#[derive(Debug)]
pub struct Stream {
    /// Our address and the peer's end.
    pub key: StreamKey,
    /// Whether we opened it (and open it again when it breaks, §6).
    pub opener: bool,
    queue: Mutex<SendQueue>,
    ready: Condvar,
    closed: AtomicBool,
    /// The socket, once connected: shut down to stop the reader.
    socket: OnceLock<TcpStream>,
    /// When it last carried an IKE message (or was opened).
    last_ike: Mutex<Instant>,
}

impl Stream {
    fn new(key: StreamKey, opener: bool) -> Self {
        Self {
            key,
            opener,
            queue: Mutex::new(SendQueue::new(opener, ESP_QUEUE, IKE_QUEUE)),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            socket: OnceLock::new(),
            last_ike: Mutex::new(Instant::now()),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, SendQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn touch(&self) {
        *self.last_ike.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_ike.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }
}

/// Counters of the streams, for status.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Streams accepted.
    pub accepted: AtomicU64,
    /// Streams opened (connected).
    pub opened: AtomicU64,
    /// Streams refused: over [`MAX_STREAMS`], or a wrong prefix or length (§3, §4).
    pub refused: AtomicU64,
    /// ESP packets dropped: the stream's queue was full, or there was no stream.
    pub esp_dropped: AtomicU64,
    /// IKE messages dropped for the same reasons (the engine retransmits).
    pub ike_dropped: AtomicU64,
}

/// Every stream of the daemon.
#[derive(Debug)]
pub struct Streams {
    map: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    /// The IKE thread: IKE messages from streams, and streams that closed.
    ike: crate::input::Inbox,
    /// Where inbound ESP goes (set once the data plane exists; it holds this table in turn).
    plane: OnceLock<Weak<dyn EspSink>>,
    /// The TCP ports of our connections' responders: a transmit to one may open a stream.
    open_ports: Mutex<HashSet<u16>>,
    stop: AtomicBool,
    /// How long a stream without an IKE SA may stay silent ([`IDLE`]; tests shorten it).
    idle: Duration,
    /// Counters.
    pub stats: StreamStats,
}

impl Streams {
    /// An empty table; IKE from streams goes to `ike`; streams without an IKE SA close after
    /// `idle` of silence.
    pub fn new(ike: crate::input::Inbox, idle: Duration) -> Self {
        Self {
            idle,
            map: Mutex::new(HashMap::new()),
            ike,
            plane: OnceLock::new(),
            open_ports: Mutex::new(HashSet::new()),
            stop: AtomicBool::new(false),
            stats: StreamStats::default(),
        }
    }

    /// Where inbound ESP goes.
    pub fn set_plane(&self, plane: &Arc<dyn EspSink>) {
        let _ = self.plane.set(Arc::downgrade(plane));
    }

    /// The responders' TCP ports of the connections (a reload may change them).
    pub fn set_open_ports(&self, ports: impl IntoIterator<Item = u16>) {
        *self.open_ports.lock().unwrap_or_else(PoisonError::into_inner) = ports.into_iter().collect();
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<Stream>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of streams.
    pub fn count(&self) -> usize {
        self.map().len()
    }

    /// Counters for status.
    pub fn status(&self) -> crate::control::TcpStatus {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::control::TcpStatus {
            streams: self.count() as u64,
            accepted: n(&self.stats.accepted),
            opened: n(&self.stats.opened),
            refused: n(&self.stats.refused),
            esp_dropped: n(&self.stats.esp_dropped),
            ike_dropped: n(&self.stats.ike_dropped),
        }
    }

    /// Sends an IKE message on the stream `key`, opening it first if it is ours to open (the
    /// peer's end is one of our connections' TCP ports) and there is none.
    pub fn send_ike(self: &Arc<Self>, key: StreamKey, ike: &[u8]) {
        let stream = {
            let mut map = self.map();
            match map.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let ours = self.open_ports.lock().unwrap_or_else(PoisonError::into_inner).contains(&key.1.port());
                    // §6: only the side that opened a stream opens it again; the other waits for it.
                    if !ours || map.len() >= MAX_STREAMS || self.stop.load(Ordering::Relaxed) {
                        self.stats.ike_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(target: "io", "no TCP stream to {} for an IKE message: dropped", key.1);
                        return;
                    }
                    let s = Arc::new(Stream::new(key, true));
                    map.insert(key, s.clone());
                    let (me, s2) = (self.clone(), s.clone());
                    let spawned = std::thread::Builder::new().name("tcp-tx".into()).spawn(move || me.writer(&s2, None));
                    if spawned.is_err() {
                        map.remove(&key);
                        return;
                    }
                    s
                }
            }
        };
        let pushed = stream.queue().push_ike(ike);
        match pushed {
            Ok(true) => stream.ready.notify_one(),
            Ok(false) | Err(_) => {
                self.stats.ike_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues ESP packets, one frame each, on the stream `key`; packets with no stream, or that
    /// do not fit its queue, are dropped and counted (ESP never opens a stream).
    pub fn send_esp<'a>(&self, key: StreamKey, packets: impl IntoIterator<Item = &'a [u8]>) {
        let Some(stream) = self.map().get(&key).cloned() else {
            let n = packets.into_iter().count() as u64;
            self.stats.esp_dropped.fetch_add(n, Ordering::Relaxed);
            return;
        };
        let mut dropped = 0u64;
        {
            let mut q = stream.queue();
            for p in packets {
                if !matches!(q.push_esp(p), Ok(true)) {
                    dropped += 1;
                }
            }
        }
        stream.ready.notify_one();
        if dropped > 0 {
            self.stats.esp_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Closes the streams that no established IKE SA uses (`used`) and that were idle for
    /// [`IDLE`]. Called by the IKE thread now and then.
    pub fn close_idle(&self, used: &HashSet<StreamKey>) {
        let idle: Vec<Arc<Stream>> =
            self.map().values().filter(|s| !used.contains(&s.key) && s.idle_for() >= self.idle).cloned().collect();
        for s in idle {
            tracing::info!(target: "io", "closing the idle TCP stream with {}", s.key.1);
            self.close(&s, false);
        }
    }

    /// Closes every stream (the daemon stops).
    pub fn close_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let all: Vec<Arc<Stream>> = self.map().values().cloned().collect();
        for s in all {
            self.close(&s, false);
        }
    }

    /// Closes a stream: out of the table, the socket shut down (its reader and writer end), and
    /// the IKE thread told when `report` (it reopens what it opened, §6).
    fn close(&self, s: &Arc<Stream>, report: bool) {
        if s.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        {
            let mut map = self.map();
            if map.get(&s.key).is_some_and(|x| Arc::ptr_eq(x, s)) {
                map.remove(&s.key);
            }
        }
        if let Some(sock) = s.socket.get() {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
        s.ready.notify_all();
        if report && !self.stop.load(Ordering::Relaxed) {
            let connected = s.socket.get().is_some();
            let _ = self.ike.send(Input::StreamClosed { key: s.key, opener: s.opener, connected });
        }
    }

    /// Accepts streams on `listener` until the daemon stops (RFC 9329 §6: the responder's side).
    pub fn listen(self: &Arc<Self>, listener: &TcpListener) {
        let local = listener.local_addr().ok();
        for conn in listener.incoming() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(sock) = conn else { continue };
            let (Some(local), Ok(peer)) = (local, sock.peer_addr()) else { continue };
            let key = (local.ip(), peer);
            let stream = {
                let mut map = self.map();
                if map.len() >= MAX_STREAMS || map.contains_key(&key) {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "io", "refusing a TCP stream from {peer}: {} streams open", map.len());
                    continue;
                }
                let s = Arc::new(Stream::new(key, false));
                map.insert(key, s.clone());
                s
            };
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(target: "io", "TCP stream from {peer} accepted");
            let me = self.clone();
            let spawned =
                std::thread::Builder::new().name("tcp-tx".into()).spawn(move || me.writer(&stream, Some(sock)));
            if spawned.is_err() {
                self.map().remove(&key);
            }
        }
    }

    /// The writer of one stream: connects first if we open it, starts the reader, then writes
    /// what the queue gives, IKE first, one chunk at a time and each chunk whole, so that frames
    /// never interleave (oxswan-tcp's `SendQueue`).
    fn writer(self: &Arc<Self>, s: &Arc<Stream>, accepted: Option<TcpStream>) {
        let sock = match accepted {
            Some(sock) => sock,
            None => match connect(s.key) {
                Ok(sock) => {
                    self.stats.opened.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(target: "io", "TCP stream to {} open (from {})", s.key.1, sock.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()));
                    sock
                }
                Err(e) => {
                    tracing::info!(target: "io", "TCP stream to {}: {e}", s.key.1);
                    // Reported: the request that wanted it goes again at its next retransmission
                    // time, which tries to connect again (the engine's schedule bounds the tries).
                    self.close(s, true);
                    return;
                }
            },
        };
        let _ = sock.set_nodelay(true);
        let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
        {
            let sock2 = socket2::SockRef::from(&sock);
            let _ = sock2.set_send_buffer_size(SOCKET_BUFFER);
            let _ = sock2.set_recv_buffer_size(SOCKET_BUFFER);
        }
        let reader = match sock.try_clone() {
            Ok(r) => r,
            Err(_) => {
                self.close(s, true);
                return;
            }
        };
        let mut sock = sock;
        if let Ok(keep) = sock.try_clone() {
            let _ = s.socket.set(keep);
        }
        // Closed meanwhile (idle, or the daemon stops): the socket was not there to shut down.
        if s.closed.load(Ordering::Relaxed) {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            return;
        }
        {
            let (me, s2) = (self.clone(), s.clone());
            if std::thread::Builder::new().name("tcp-rx".into()).spawn(move || me.reader(&s2, reader)).is_err() {
                self.close(s, true);
                return;
            }
        }
        let mut buf = Vec::with_capacity(WRITE_CHUNK + oxswan_tcp::MAX_FRAME);
        loop {
            buf.clear();
            {
                let mut q = s.queue();
                while q.is_empty() && !s.closed.load(Ordering::Relaxed) {
                    q = s.ready.wait_timeout(q, Duration::from_secs(1)).map_or_else(|e| e.into_inner().0, |(q, _)| q);
                }
                if s.closed.load(Ordering::Relaxed) {
                    return;
                }
                q.take(&mut buf, WRITE_CHUNK);
            }
            if let Err(e) = sock.write_all(&buf) {
                tracing::info!(target: "io", "TCP stream with {}: {e}", s.key.1);
                self.close(s, true);
                return;
            }
        }
    }

    /// The reader of one stream: IKE to the IKE thread, ESP opened and written to the TUN device
    /// as UDP's is, until the stream ends or fails (§3: a bad prefix or length cannot be
    /// resynchronised).
    fn reader(&self, s: &Arc<Stream>, mut sock: TcpStream) {
        let (Ok(local), Ok(remote)) = (sock.local_addr(), sock.peer_addr()) else {
            self.close(s, true);
            return;
        };
        let mut dec = Decoder::new(!s.opener);
        let mut tx = TunTx::default();
        let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
        loop {
            if s.closed.load(Ordering::Relaxed) {
                return;
            }
            match sock.read(dec.spare()) {
                Ok(0) => break,
                Ok(n) => dec.commit(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::debug!(target: "io", "TCP stream with {remote}: {e}");
                    break;
                }
            }
            let plane = self.plane.get().and_then(Weak::upgrade);
            loop {
                match dec.next_frame() {
                    Ok(Some(Frame::Ike(ike))) => {
                        s.touch();
                        let _ = self.ike.send(Input::Stream { local, remote, data: ike.to_vec() });
                    }
                    Ok(Some(Frame::Esp(esp))) => {
                        if let Some(p) = plane.as_ref() {
                            p.esp_from_stream(esp, &mut tx);
                            if tx.len() >= oxswan_io::tun::BATCH {
                                p.flush_tun(&mut tx);
                            }
                        }
                    }
                    Ok(Some(Frame::Keepalive | Frame::Invalid)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(target: "io", "TCP stream with {remote}: {e}; closing it");
                        self.close(s, true);
                        return;
                    }
                }
            }
            if let Some(p) = plane.as_ref() {
                p.flush_tun(&mut tx);
            }
        }
        tracing::info!(target: "io", "TCP stream with {remote} closed");
        self.close(s, true);
    }
}

/// Opens a stream from our address to the peer's TCP port.
fn connect((local, remote): StreamKey) -> std::io::Result<TcpStream> {
    let domain = if remote.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.bind(&SocketAddr::new(local, 0).into())?;
    sock.connect_timeout(&remote.into(), CONNECT_TIMEOUT)?;
    Ok(sock.into())
}

/// Flush helper for the data plane's outbound batch: ESP packets for one stream, back to back.
#[derive(Debug, Default)]
pub struct TcpBatch {
    key: Option<StreamKey>,
    /// Packet boundaries in `buf`.
    ends: Vec<usize>,
    buf: Vec<u8>,
}

impl TcpBatch {
    /// Adds a sealed ESP packet for `key`, flushing what was there for another stream first.
    pub fn push(&mut self, streams: &Streams, key: StreamKey, pkt: &[u8]) {
        if self.key.is_some_and(|k| k != key) || self.ends.len() >= 256 {
            self.flush(streams);
        }
        self.key = Some(key);
        self.buf.extend_from_slice(pkt);
        self.ends.push(self.buf.len());
    }

    /// Queues what was collected on its stream.
    pub fn flush(&mut self, streams: &Streams) {
        if let Some(key) = self.key.take() {
            let buf = &self.buf;
            let mut start = 0usize;
            let packets = self.ends.iter().filter_map(|&end| {
                let p = buf.get(start..end);
                start = end;
                p
            });
            streams.send_esp(key, packets);
        }
        self.ends.clear();
        self.buf.clear();
    }
}
