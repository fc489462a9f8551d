//! One driver thread: its share of the clients, its sockets, and the loop that runs them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oxswan_crypto::CryptoProvider;
use oxswan_esp::{HEADROOM, TAILROOM};
use oxswan_ike::auth::SharedKeys;
use oxswan_ike::event::DownReason;
use oxswan_ike::{Endpoint, EndpointConfig, Event, NAT_T_PORT, SaHandle};

mod esp;

use esp::Pinger;

use crate::ping::REQUEST_LEN;
use crate::plan::{Auth, Plan};
use crate::{LoadError, Progress};

/// How long a DELETE at the end may wait for the gateway's answer.
const DELETE_WAIT: Duration = Duration::from_secs(10);
/// The loop turns at least this often (stop flag, rate, phases).
const TURN: Duration = Duration::from_millis(50);
/// Datagrams read from one socket per turn before the others get theirs.
const BURST: usize = 64;

/// What one thread saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Per established client: when it finished (since the run's start) and how long it took.
    pub setup: Vec<(Duration, Duration)>,
    /// Failed handshakes by reason.
    pub failures: BTreeMap<String, u64>,
    /// Datagrams not sent because they were addressed to somebody other than a target.
    pub refused: BTreeMap<IpAddr, u64>,
    /// Clients that were up and ended before the end of the run (the gateway deleted them).
    pub lost: u64,
    /// Clients deleted at the end with the gateway's answer.
    pub deleted: u64,
    /// DELETEs at the end the gateway did not answer in time.
    pub delete_unanswered: u64,
    /// Datagrams received that no client of ours was waiting for.
    pub stray: u64,
    /// Datagrams the kernel would not take (full send buffer); the engine's retransmission covers them.
    pub send_errors: u64,
    /// The first handshake's start, since the run's start.
    pub first_start: Option<Duration>,
    /// Clients still connecting or up when max-time ended the run.
    pub cut_off: u64,
    /// Clients that had at least one echo reply (`--ping`).
    pub pinged: u64,
    /// Why the other clients whose CHILD SA came up did not.
    pub ping_failures: BTreeMap<String, u64>,
    /// Echo requests sent, and the replies accepted (one per request at most).
    pub ping_requests: u64,
    /// Echo replies accepted.
    pub ping_replies: u64,
    /// Round-trip times of the replies accepted.
    pub ping_rtt: Vec<Duration>,
    /// ESP packets for a client's inbound SPI that were refused, by reason.
    pub ping_rejected: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Up,
    Deleting,
}

#[derive(Debug)]
struct Client {
    ep: Endpoint,
    sa: SaHandle,
    started: Instant,
    /// When the current phase (handshake or DELETE) gives up.
    deadline: Instant,
    state: State,
    /// The IKE SPIs this client's datagrams carry (registered in `by_spi`).
    spis: Vec<u64>,
    /// Its entry in `timers`.
    timer: Option<Instant>,
    /// What the engine said went wrong, before the SA ended.
    error: Option<String>,
    /// The first IPv4 virtual IP the gateway lent (RFC 7296 §3.15.1).
    vip: Option<Ipv4Addr>,
    /// Its pings, once its CHILD SA is up (`--ping`).
    ping: Option<Box<Pinger>>,
}

#[derive(Debug)]
struct Sock {
    sock: UdpSocket,
    local: SocketAddr,
}

/// Whether IKE between these ports goes behind the non-ESP marker (RFC 3948 §2.2: on port 4500).
fn marked(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == NAT_T_PORT || b.port() == NAT_T_PORT
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Hold(Instant),
    Delete,
}

pub(crate) struct Driver {
    plan: Plan,
    /// This thread is number `thread` of `threads`: its clients are `thread + i * threads`.
    thread: usize,
    threads: usize,
    count: usize,
    socks: Vec<Sock>,
    sock_of: HashMap<SocketAddr, usize>,
    /// The IKE socket of each of the plan's sources.
    ike_sock: Vec<usize>,
    /// Boxed: a slot per client exists from the start, and an endpoint inline would make each
    /// empty one cost its size.
    clients: Vec<Option<Box<Client>>>,
    by_spi: HashMap<u64, usize>,
    /// Clients by the inbound ESP SPIs of their pairs (`--ping`).
    /// Each client's engine picks its SPIs alone (RFC 4303 §2.1: unique to the receiver), so two
    /// clients may share one; the packet is then opened with each of their SAs in turn.
    by_esp: HashMap<u32, Vec<usize>>,
    /// Clients whose pings are not over.
    pinging: usize,
    /// Where requests are sealed.
    esp_buf: Vec<u8>,
    timers: BTreeSet<(Instant, usize)>,
    targets: HashSet<IpAddr>,
    provider: CryptoProvider,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    start: Instant,
    unix_start: u64,
    next: usize,
    in_flight: usize,
    limit: usize,
    /// Start interval of this thread's share of the rate, and when the next may start.
    interval: Option<Duration>,
    next_at: Instant,
    del_cursor: usize,
    deleting: usize,
    out: Outcome,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("thread", &self.thread).field("count", &self.count).finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(
        plan: &Plan,
        thread: usize,
        threads: usize,
        progress: Arc<Progress>,
        stop: Arc<AtomicBool>,
        start: Instant,
    ) -> Result<Self, LoadError> {
        let count = plan.clients.saturating_sub(thread).div_ceil(threads);
        let mut socks = Vec::new();
        let mut ike_sock = Vec::with_capacity(plan.sources.len());
        let mut seen: HashMap<IpAddr, usize> = HashMap::new();
        for &src in &plan.sources {
            if let Some(&i) = seen.get(&src) {
                ike_sock.push(i);
                continue;
            }
            let bind = |port: u16| -> Result<Sock, std::io::Error> {
                let sock = UdpSocket::bind(SocketAddr::new(src, port))?;
                sock.set_nonblocking(true)?;
                let local = sock.local_addr()?;
                Ok(Sock { sock, local })
            };
            // An ephemeral port: the engine floats to the gateway's port 4500 behind a NAT and
            // stays on its own port (RFC 7296 §2.23 moves the initiator from 500 only), so one
            // socket per address serves both.
            let s = bind(0).map_err(|source| LoadError::Socket { addr: src, source })?;
            seen.insert(src, socks.len());
            ike_sock.push(socks.len());
            socks.push(s);
        }
        let sock_of = socks.iter().enumerate().map(|(i, s)| (s.local, i)).collect();
        let share = |x: usize| (x / threads + usize::from(thread < x % threads)).max(1);
        let interval = plan.rate.map(|r| Duration::from_secs_f64(threads as f64 / r));
        let unix_start = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(Self {
            plan: plan.clone(),
            thread,
            threads,
            count,
            socks,
            sock_of,
            ike_sock,
            clients: std::iter::repeat_with(|| None).take(count).collect(),
            by_spi: HashMap::new(),
            by_esp: HashMap::new(),
            pinging: 0,
            esp_buf: vec![0; HEADROOM + REQUEST_LEN + TAILROOM],
            timers: BTreeSet::new(),
            targets: plan.targets.iter().map(SocketAddr::ip).collect(),
            provider: oxswan_crypto::default_provider(),
            progress,
            stop,
            start,
            unix_start,
            next: 0,
            in_flight: 0,
            limit: share(plan.in_flight),
            interval,
            next_at: start,
            del_cursor: 0,
            deleting: 0,
            out: Outcome::default(),
        })
    }

    pub(crate) fn run(mut self) -> Outcome {
        let mut phase = Phase::Setup;
        let mut buf = vec![0u8; 65_535];
        loop {
            let now = Instant::now();
            if now.saturating_duration_since(self.start) >= self.plan.max_time {
                self.cut_off();
                break;
            }
            if self.stop.load(Ordering::Relaxed) && phase == Phase::Setup {
                phase = Phase::Hold(now);
            }
            match phase {
                Phase::Setup => {
                    while self.in_flight < self.limit && self.next < self.count && self.rate_allows(now) {
                        let i = self.next;
                        self.next += 1;
                        self.begin(i, now);
                    }
                    if self.in_flight == 0 && self.next >= self.count {
                        phase = Phase::Hold(now + self.plan.hold);
                    }
                }
                Phase::Hold(until) => {
                    // The hold lasts until the pings are over too (each has its deadline); a stop
                    // during the hold ends it.
                    if (now >= until && self.pinging == 0) || (self.stop.load(Ordering::Relaxed) && self.in_flight == 0)
                    {
                        if !self.plan.delete {
                            break;
                        }
                        phase = Phase::Delete;
                    }
                }
                Phase::Delete => {
                    self.delete_some(now);
                    if self.deleting == 0 && self.del_cursor >= self.count && self.in_flight == 0 {
                        break;
                    }
                }
            }
            if matches!(phase, Phase::Hold(_)) && self.in_flight > 0 {
                // Handshakes under way when a stop came finish (or time out) before the deletes.
                phase = Phase::Hold(now);
            }
            let wait = self.wait(now, phase);
            self.receive(wait, &mut buf);
            self.due(Instant::now());
        }
        self.out
    }

    fn rate_allows(&mut self, now: Instant) -> bool {
        let Some(iv) = self.interval else { return true };
        if now < self.next_at {
            return false;
        }
        // Strict spacing, no credit for a late turn: never faster than the rate asked for.
        self.next_at = now + iv;
        true
    }

    fn wait(&self, now: Instant, phase: Phase) -> Duration {
        let mut until = now + TURN;
        if let Some(&(t, _)) = self.timers.first() {
            until = until.min(t);
        }
        if phase == Phase::Setup && self.interval.is_some() && self.in_flight < self.limit {
            until = until.min(self.next_at);
        }
        // Pings still going wake the loop by their timers, not by the hold's end.
        if let Phase::Hold(h) = phase
            && self.pinging == 0
        {
            until = until.min(h);
        }
        until.saturating_duration_since(now)
    }

    /// Client `i` starts its handshake.
    fn begin(&mut self, i: usize, now: Instant) {
        let n = self.thread + i * self.threads;
        let (Some(&target), Some(&si)) = (
            self.plan.targets.get(n % self.plan.targets.len().max(1)),
            self.ike_sock.get(n % self.plan.sources.len().max(1)),
        ) else {
            return;
        };
        let Some(local) = self.socks.get(si).map(|s| s.local) else { return };
        let client = self.plan.peer(n).map_err(|e| e.to_string()).and_then(|(peer, eap_user)| {
            let unix = self.unix_start + now.saturating_duration_since(self.start).as_secs();
            let mut ep = Endpoint::new(EndpointConfig::default(), self.provider.clone(), vec![peer], now, unix)
                .map_err(|e| e.to_string())?;
            if let (Some(user), Auth::Eap { password, .. }) = (eap_user, &self.plan.auth) {
                let mut keys = SharedKeys::new();
                keys.add_eap(user, password.clone());
                ep.set_credentials(Arc::new(keys));
            }
            let sa = ep.initiate(now, "load", local, target).map_err(|e| e.to_string())?;
            Ok(Client {
                ep,
                sa,
                started: now,
                deadline: now + self.plan.timeout,
                state: State::Connecting,
                spis: Vec::new(),
                timer: None,
                error: None,
                vip: None,
                ping: None,
            })
        });
        self.progress.started.fetch_add(1, Ordering::Relaxed);
        self.out.first_start.get_or_insert(now.saturating_duration_since(self.start));
        match client {
            Ok(c) => {
                self.in_flight += 1;
                if let Some(slot) = self.clients.get_mut(i) {
                    *slot = Some(Box::new(c));
                }
                self.service(i, now);
            }
            Err(e) => self.fail_reason(format!("could not start: {e}")),
        }
    }

    fn fail_reason(&mut self, reason: String) {
        *self.out.failures.entry(reason).or_insert(0) += 1;
        self.progress.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends what client `i` produced, acts on its events, and files its next timer.
    fn service(&mut self, i: usize, now: Instant) {
        let Some(mut c) = self.clients.get_mut(i).and_then(Option::take) else { return };
        let mut gone = false;
        while let Some(t) = c.ep.poll_transmit() {
            if !self.targets.contains(&t.remote.ip()) {
                *self.out.refused.entry(t.remote.ip()).or_insert(0) += 1;
                continue;
            }
            if !t.is_keepalive() {
                for spi in ike_spis(&t.payload) {
                    if !c.spis.contains(&spi) {
                        c.spis.push(spi);
                        self.by_spi.insert(spi, i);
                    }
                }
            }
            let Some(s) = self.sock_of.get(&t.local).and_then(|&k| self.socks.get(k)) else {
                c.error.get_or_insert_with(|| format!("the engine sent from {}, which has no socket", t.local));
                gone = true;
                continue;
            };
            let r = if marked(t.local, t.remote) && !t.is_keepalive() {
                let mut d = Vec::with_capacity(t.payload.len() + 4);
                d.extend_from_slice(&[0; 4]);
                d.extend_from_slice(&t.payload);
                s.sock.send_to(&d, t.remote)
            } else {
                s.sock.send_to(&t.payload, t.remote)
            };
            if r.is_err() {
                self.out.send_errors += 1;
            }
        }
        while let Some(e) = c.ep.poll_event() {
            match e {
                Event::IkeSaUp { info, .. } => {
                    c.vip = info.local_vips.iter().find_map(|a| match a {
                        IpAddr::V4(v) => Some(*v),
                        IpAddr::V6(_) => None,
                    });
                }
                Event::ChildSaReady { child, .. } if c.state == State::Connecting => {
                    c.state = State::Up;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.out.setup.push((now.saturating_duration_since(self.start), now - c.started));
                    self.progress.established.fetch_add(1, Ordering::Relaxed);
                    self.progress.up.fetch_add(1, Ordering::Relaxed);
                    if self.plan.ping.is_some() {
                        self.start_ping(i, &mut c, &child, now);
                    }
                }
                Event::ChildSaReady { child, .. } => self.rekeyed(i, &mut c, &child),
                Event::ChildSaOutbound { spi_in, .. } => Self::outbound_moved(&mut c, spi_in),
                Event::ChildSaDeleted { spi_in, .. } => self.pair_deleted(i, &mut c, spi_in),
                Event::ChildSaFailed { reason, .. } if c.state == State::Connecting => {
                    c.error = Some(format!("CHILD SA refused: {reason}"));
                    gone = true;
                }
                Event::AuthFailed { reason, .. } => {
                    c.error.get_or_insert(format!("authentication: {reason}"));
                }
                Event::IkeSaDown { reason, .. } => {
                    if c.error.is_none() {
                        c.error = Some(down_reason(&reason));
                    }
                    gone = true;
                }
                _ => {}
            }
        }
        if gone {
            self.end(i, c, now);
            return;
        }
        self.ping_turn(&mut c, now);
        let pings = c.ping.as_ref().and_then(|p| p.due());
        let next = match c.state {
            State::Up => match (c.ep.poll_timeout(), pings) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            State::Connecting | State::Deleting => Some(c.ep.poll_timeout().map_or(c.deadline, |t| t.min(c.deadline))),
        };
        if c.timer != next {
            if let Some(t) = c.timer {
                self.timers.remove(&(t, i));
            }
            if let Some(t) = next {
                self.timers.insert((t, i));
            }
            c.timer = next;
        }
        if let Some(slot) = self.clients.get_mut(i) {
            *slot = Some(c);
        }
    }

    /// Client `c` is over: counts how, and forgets it.
    fn end(&mut self, i: usize, mut c: Box<Client>, now: Instant) {
        self.ping_over(&mut c, "the client ended before a reply came");
        self.forget_pairs(i, &c);
        match c.state {
            State::Connecting => {
                self.in_flight = self.in_flight.saturating_sub(1);
                // A CHILD SA refused leaves an IKE SA on the gateway: deleted politely.
                if c.ep.delete_ike(now, c.sa).is_ok() {
                    self.flush_blind(&mut c);
                }
                let why = c.error.take().unwrap_or_else(|| "ended".into());
                self.fail_reason(why);
            }
            State::Up => {
                self.out.lost += 1;
                self.progress.up.fetch_sub(1, Ordering::Relaxed);
            }
            State::Deleting => {
                self.deleting = self.deleting.saturating_sub(1);
                self.progress.up.fetch_sub(1, Ordering::Relaxed);
                if now < c.deadline {
                    self.out.deleted += 1;
                } else {
                    self.out.delete_unanswered += 1;
                }
            }
        }
        for spi in &c.spis {
            self.by_spi.remove(spi);
        }
        if let Some(t) = c.timer {
            self.timers.remove(&(t, i));
        }
    }

    /// Sends what an ending client has left to say (a DELETE), to targets only, without waiting.
    fn flush_blind(&mut self, c: &mut Client) {
        while let Some(t) = c.ep.poll_transmit() {
            if !self.targets.contains(&t.remote.ip()) {
                *self.out.refused.entry(t.remote.ip()).or_insert(0) += 1;
                continue;
            }
            if let Some(s) = self.sock_of.get(&t.local).and_then(|&k| self.socks.get(k)) {
                let _ = if marked(t.local, t.remote) {
                    let mut d = vec![0; 4];
                    d.extend_from_slice(&t.payload);
                    s.sock.send_to(&d, t.remote)
                } else {
                    s.sock.send_to(&t.payload, t.remote)
                };
            }
        }
        while c.ep.poll_event().is_some() {}
    }

    /// Deletes up clients, at most `limit` at a time.
    fn delete_some(&mut self, now: Instant) {
        while self.deleting < self.limit && self.del_cursor < self.count {
            let i = self.del_cursor;
            self.del_cursor += 1;
            let Some(c) = self.clients.get_mut(i).and_then(Option::as_mut) else { continue };
            if c.state != State::Up {
                continue;
            }
            if c.ep.delete_ike(now, c.sa).is_ok() {
                c.state = State::Deleting;
                c.deadline = now + DELETE_WAIT;
                self.deleting += 1;
                self.service(i, now);
            }
        }
    }

    /// Waits up to `wait` for datagrams, and hands each to its client.
    fn receive(&mut self, wait: Duration, buf: &mut [u8]) {
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd<'_>> =
                self.socks.iter().map(|s| PollFd::new(s.sock.as_fd(), PollFlags::POLLIN)).collect();
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            // Sub-millisecond waits round up: a timer due in 300 µs is not worth a busy loop.
            let ms = if wait.is_zero() { 0 } else { ms.max(1) };
            if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) <= 0 {
                return;
            }
            fds.iter()
                .enumerate()
                .filter(|(_, f)| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
                .map(|(i, _)| i)
                .collect()
        };
        for k in ready {
            for _ in 0..BURST {
                let Some(s) = self.socks.get(k) else { break };
                let (len, from) = match s.sock.recv_from(buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                };
                let local = s.local;
                // From port 4500: IKE behind four zero octets, ESP from a non-zero SPI on (RFC
                // 3948 §2.1, §2.2); NAT keepalives (one octet, §2.3) are not ours to answer.
                if marked(local, from)
                    && let Some(spi) = buf.get(..len).and_then(|d| d.first_chunk::<4>())
                    && *spi != [0; 4]
                {
                    let spi = u32::from_be_bytes(*spi);
                    if let Some(packet) = buf.get_mut(..len) {
                        self.esp_in(spi, packet);
                    }
                    continue;
                }
                let Some(data) = buf.get(..len) else { continue };
                let ike = if marked(local, from) {
                    match data.split_first_chunk::<4>() {
                        Some(([0, 0, 0, 0], rest)) => rest,
                        _ => continue,
                    }
                } else {
                    data
                };
                let i = ike_spis(ike).find_map(|spi| self.by_spi.get(&spi).copied());
                let Some(i) = i else {
                    self.out.stray += 1;
                    continue;
                };
                let now = Instant::now();
                if let Some(c) = self.clients.get_mut(i).and_then(Option::as_mut) {
                    c.ep.handle_datagram(now, local, from, ike);
                }
                self.service(i, now);
            }
        }
    }

    /// Runs the timers that are due: the engine's (retransmissions, DPD) and the phases' deadlines.
    fn due(&mut self, now: Instant) {
        while let Some(&(t, i)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, i));
            let Some(c) = self.clients.get_mut(i).and_then(Option::as_mut) else { continue };
            c.timer = None;
            if c.state != State::Up && c.deadline <= now {
                let Some(mut c) = self.clients.get_mut(i).and_then(Option::take) else { continue };
                if c.state == State::Connecting {
                    c.error = Some(format!("no complete handshake within {:?}", self.plan.timeout));
                }
                self.end(i, c, now);
                continue;
            }
            if c.ep.poll_timeout().is_some_and(|at| at <= now) {
                c.ep.handle_timeout(now);
            }
            self.service(i, now);
        }
    }

    /// Max-time is up: what is left is counted, not waited for.
    fn cut_off(&mut self) {
        let left: Vec<Box<Client>> = self.clients.iter_mut().filter_map(Option::take).collect();
        for mut c in left {
            self.ping_over(&mut c, "cut off by max-time");
            if c.state == State::Connecting {
                *self.out.failures.entry("cut off by max-time".into()).or_insert(0) += 1;
                self.progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            self.out.cut_off += 1;
        }
        self.in_flight = 0;
    }
}

/// The non-zero IKE SPIs of a message (RFC 7296 §3.1: initiator's, then responder's).
fn ike_spis(msg: &[u8]) -> impl Iterator<Item = u64> {
    let spi = |at: usize| msg.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
    [spi(0), spi(8)].into_iter().flatten().filter(|s| *s != 0)
}

/// Why an IKE SA ended, as the final table says it.
fn down_reason(r: &DownReason) -> String {
    match r {
        DownReason::PeerNotify(n) => format!("gateway said {n}"),
        DownReason::AuthFailed(e) => format!("authentication: {e}"),
        DownReason::Protocol(s) => format!("protocol: {s}"),
        DownReason::Timeout => "no answer (retransmissions exhausted)".into(),
        DownReason::HalfOpenTimeout => "half-open timeout".into(),
        DownReason::PeerDeleted => "deleted by the gateway".into(),
        other => format!("{other:?}"),
    }
}
