//! The daemon: the IKE engine on one thread, the packet threads of the data plane, the control socket.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use oxswan_config::{Config, PeerAction, StartAction};
use oxswan_crypto::CryptoProvider;
use oxswan_esp::Selectors;
use oxswan_ike::cert::identity_string;
use oxswan_ike::volume::VolumeAction;
use oxswan_ike::{ChildSa, DownReason, Endpoint, EndpointConfig, Event, SaHandle};
use oxswan_wire::ts::{TrafficSelector, TsAddrs};
use oxswan_wire::udp_encap::with_non_esp_marker;

use crate::control::{ChildStatus, IkeSaStatus, RekeyWhat, Request, Response};
use crate::datapath::{Datapath, DatapathStats, PairCounters, esp_destination};
use crate::dataplane::{Batches, DataPlane, SaTables};
use crate::early::{EARLY_BYTES, EARLY_SLOTS, PacketRing};
use crate::input::Input;
use crate::streams::Streams;
use oxswan_io::{Tun, UdpIo};

mod commands;
mod crypto;
mod events;
mod metrics;
mod mobility;
mod routes;

use routes::{PinOwner, cidr, local_source, route, unpin};
mod tcp;

/// Redirects (RFC 5685) of one connection followed within [`REDIRECT_WINDOW`] at most: more is
/// taken for a loop between gateways.
const MAX_REDIRECTS: usize = 5;
const REDIRECT_WINDOW: Duration = Duration::from_secs(300);

/// The wait before a restart attempt (and between failed ones).
const RESTART_RETRY: Duration = Duration::from_secs(2);

/// How often the IKE thread hands the engine the data plane's counters.
const VOLUME_CHECK: Duration = Duration::from_millis(100);

/// How often the STATUS= line told to systemd is brought up to date.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How long a stopping daemon waits for the RADIUS servers to take its accounting Stops.
const SHUTDOWN_ACCOUNTING: Duration = Duration::from_secs(3);

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The sockets of one local address.
struct Sockets {
    ike: Arc<UdpSocket>,
    /// Where IKE on the NAT-T port arrives and is sent from, and ESP is sent from.
    natt: Arc<UdpIo>,
    /// The NAT-T port's receiving sockets, `natt` first (see `mobility::open_sockets`).
    natt_rx: Vec<Arc<UdpIo>>,
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the configuration.
/// Where the daemon listens: `[daemon] listen`, else every connection's local addresses (for an
/// initiator without them, the source the route to its peer picks, as strongSwan does). None is
/// an error, which `check-config` reports as the daemon would.
pub fn listen_addresses(config: &Config, config_path: &Path) -> anyhow::Result<Vec<IpAddr>> {
    let mut addrs: Vec<IpAddr> = config.daemon.listen.clone();
    if addrs.is_empty() {
        for c in &config.connections {
            let from_route = match (c.local_addrs.is_empty(), c.remote_addrs.first()) {
                (true, Some(r)) => route_source(*r),
                _ => None,
            };
            for a in c.local_addrs.iter().chain(from_route.as_ref()) {
                if !addrs.contains(a) {
                    addrs.push(*a);
                }
            }
        }
    }
    if addrs.is_empty() {
        bail!("{}: no address to listen on: set [daemon] listen or local_addrs", config_path.display());
    }
    Ok(addrs)
}

pub fn run(config_path: &Path, socket_override: Option<&Path>) -> anyhow::Result<()> {
    let config = oxswan_config::load(config_path)?;
    crate::init_logging(Some(&config.daemon.log))?;
    // MODP1024 only where a connection names it (RFC 8247: SHOULD NOT; Windows' default).
    let provider = oxswan_crypto::default_provider_with(config.needs_modp1024());
    let mut peers = Vec::new();
    for c in &config.connections {
        peers.push(crate::peers::peer_config(&provider, &config, c)?);
    }
    let socket_path = socket_override.map_or_else(|| config.daemon.socket.clone(), Path::to_path_buf);

    let addrs = listen_addresses(&config, config_path)?;
    let mut sockets: HashMap<IpAddr, Sockets> = HashMap::new();
    for a in &addrs {
        sockets.insert(*a, mobility::open_sockets(*a, &config.daemon)?);
    }

    // The TUN device's MTU is the same for every SA: over IPv6 outside if any address is IPv6.
    let tun_mtu = crate::dataplane::tun_mtu(addrs.iter().any(IpAddr::is_ipv6));
    let tun = Tun::create_queues(&config.daemon.tun, tun_mtu, config.daemon.offload, crate::dataplane::workers())
        .with_context(|| format!("cannot create TUN device {} (is /dev/net/tun there? root?)", config.daemon.tun))?;
    tracing::info!(
        target: "io",
        "TUN {}: offloads {}, {} queue(s); UDP GSO {}, GRO {}",
        config.daemon.tun,
        on_off(tun.iter().all(Tun::offload)),
        tun.len(),
        on_off(sockets.values().all(|s| s.natt.gso())),
        on_off(sockets.values().all(|s| s.natt.gro()))
    );
    tracing::info!(target: "io", "TUN {}: MTU {tun_mtu}; TCP MSS clamping {:?}", config.daemon.tun, config.daemon.clamp_mss);
    // Per-resource CHILD SAs (RFC 9611) are one per TUN queue; their inbound ESP reaches a worker
    // of its own only when there is an ESP socket for each (one more in the group is IKE's).
    if let Some(esp) = sockets.values().map(|s| s.natt_rx.len().saturating_sub(1)).min()
        && esp != tun.len()
    {
        tracing::info!(
            target: "io",
            "{} TUN queue(s) but {esp} ESP socket(s): per-resource CHILD SAs share inbound workers",
            tun.len()
        );
    }
    let (tx, rx) = crate::input::inbox(crate::input::INBOX_CAPACITY);
    let streams = Arc::new(Streams::new(tx.clone(), tcp::tcp_idle()?));
    streams.set_open_ports(config.connections.iter().map(|c| c.tcp_port));
    let tun_threads = tun.len();
    let dp = Arc::new(DataPlane {
        tables: SaTables::default(),
        tun,
        natt: ArcSwap::from_pointee(sockets.iter().map(|(a, s)| (*a, s.natt.clone())).collect()),
        stop: AtomicBool::new(false),
        keepalives: Default::default(),
        unknown_spi: Default::default(),
        traps: RwLock::new(Vec::new()),
        ike: tx.clone(),
        early: Mutex::new(PacketRing::new(EARLY_SLOTS, EARLY_BYTES)),
        held: Mutex::new(PacketRing::new(EARLY_SLOTS, EARLY_BYTES)),
        moved: Default::default(),
        provider: provider.clone(),
        replay_window: config.daemon.replay_window,
        sequence_start: sequence_start()?,
        tcp: streams.clone(),
        tun_mtu,
        clamp_mss: config.daemon.clamp_mss,
        pmtu_check: AtomicBool::new(false),
        mtu_refreshed: Mutex::new(None),
        mtu_cursor: Default::default(),
        too_big: Default::default(),
        icmp_sent: Default::default(),
        mtu_probe: Default::default(),
        sealing: Batches::new(tun_threads),
    });
    let sink: Arc<dyn crate::streams::EspSink> = dp.clone();
    streams.set_plane(&sink);
    // RFC 9329: a responder for IKE and ESP over TCP, when asked for (off by default, as
    // Libreswan's listen-tcp).
    let mut tcp_listeners = Vec::new();
    if config.daemon.listen_tcp {
        for a in &addrs {
            let at = SocketAddr::new(*a, config.daemon.tcp_port);
            let listener = std::net::TcpListener::bind(at)
                .with_context(|| format!("cannot listen on TCP {at} (in use, or not an address of this host?)"))?;
            tracing::info!(target: "io", "IKE and ESP over TCP (RFC 9329) accepted on {at}");
            tcp_listeners.push(listener);
        }
    }

    if let Some(dir) = socket_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path)
        .with_context(|| format!("cannot bind control socket {}", socket_path.display()))?;
    // Whoever can write to the socket controls the VPN: owner only.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", socket_path.display()))?;
    }
    // What needed more than the kept capabilities is done (the TUN device, the sockets); no thread
    // runs yet, so every thread started from here on has only those (see privileges.rs).
    if config.daemon.drop_capabilities {
        crate::privileges::drop_capabilities()?;
    }
    // Its thread starts after the drop (see above), and before the control socket answers: a
    // daemon that answers commands answers scrapes.
    let metrics = match config.daemon.metrics {
        Some(at) => Some(metrics::serve(at, Instant::now())?),
        None => None,
    };
    for listener in tcp_listeners {
        let streams = streams.clone();
        std::thread::Builder::new().name("tcp-listen".into()).spawn(move || streams.listen(&listener))?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;

    for s in sockets.values() {
        mobility::serve_sockets(s, &dp, &tx, &stop)?;
    }
    mobility::watch_network(&tx);
    for queue in 0..dp.tun.len() {
        let dp = dp.clone();
        std::thread::Builder::new().name(format!("tun-rx{queue}")).spawn(move || dp.tun_loop(queue))?;
    }
    {
        let tx = tx.clone();
        std::thread::Builder::new().name("control".into()).spawn(move || control_loop(&listener, &tx))?;
    }

    let now = Instant::now();
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // One crypto worker per core, with more than one: the IKE_SA_INIT key exchanges go to them.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let crypto = crypto::CryptoWorkers::start(if cores > 1 { crate::dataplane::workers() } else { 0 }, &tx)?;
    let engine = EndpointConfig {
        keepalive: Some(config.daemon.keepalive),
        fragment_size: usize::from(config.daemon.fragment_size),
        offload_key_exchange: crypto.is_some(),
        // Per-resource CHILD SAs (RFC 9611): one for each outbound worker, which reads its own TUN
        // queue; their inbound SPIs steer the peer's ESP to the ESP socket of the same number.
        resources: u32::try_from(dp.tun.len()).unwrap_or(1),
        redirect: config.daemon.redirect.clone(),
        ticket_lifetime: config.daemon.ticket_lifetime,
        ..EndpointConfig::default()
    };
    let mut endpoint = Endpoint::new(engine, provider.clone(), peers, now, unix)?;
    endpoint.set_credentials(crate::peers::credentials(&config));
    // With [cluster]: leases from the shared pools on etcd, the node's number in our SPIs and the
    // cluster's ticket keys and cookie secrets (docs/cluster.md); else pools in memory.
    let mut cluster = match crate::cluster::join(&config)? {
        Some(c) => {
            endpoint.set_spi_tag(Some(c.number()));
            endpoint.set_leases(Box::new(crate::cluster::ClusterLeases::new(c.clone(), &config)));
            Some(crate::cluster::Node::new(c))
        }
        None => {
            endpoint.set_leases(Box::new(crate::peers::leases(&config)));
            None
        }
    };
    if let Some(c) = cluster.as_mut() {
        c.secrets(&mut endpoint, &provider, secret_lifetimes(&config));
    }
    let access = crate::access::RemoteAccess::new(&config.daemon.tun, config.daemon.dns, &config.pools);
    let radius = match &config.radius {
        Some(r) => Some(crate::radius::Radius::start(r, provider.random.clone(), tx.clone())?),
        None => None,
    };
    let mut ike = Ike {
        access,
        radius,
        cluster,
        metrics,
        config,
        config_path: config_path.to_path_buf(),
        since: HashMap::new(),
        provider,
        endpoint,
        crypto,
        sockets,
        dp: dp.clone() as Arc<dyn Datapath>,
        waiters: Vec::new(),
        redirects: HashMap::new(),
        routes: HashMap::new(),
        pins: HashMap::new(),
        restarts: HashMap::new(),
        remote_turn: HashMap::new(),
        trap_routes: Vec::new(),
        usage_reported: Instant::now(),
        refused: Default::default(),
        streams: streams.clone(),
        streams_checked: Instant::now(),
        data_plane: dp.clone(),
        tx: tx.clone(),
        stop: stop.clone(),
        notify: crate::systemd::Notifier::from_env(Instant::now()),
        status_told: Instant::now(),
        inbox_dropped: 0,
    };
    ike.network_changed();
    ike.set_traps();
    ike.publish_metrics(Instant::now());
    tracing::info!(
        target: "daemon",
        "oxswan daemon up: {} connection(s), TUN {}, control {}",
        ike.config.connections.len(),
        ike.config.daemon.tun,
        socket_path.display()
    );

    let starts = started(&ike.config, &[]);
    ike.start(starts);
    // Serving: UDP bound, TUN device up, the control socket listening.
    let status = ike.status_line();
    ike.notify.ready(&status);
    ike.run(&rx, &stop, &hup);
    ike.notify.stopping();

    // Orderly shutdown: accounting Stop for every client, DELETE every IKE SA, give the messages a
    // moment to leave, remove routes.
    ike.stop_accounting(&rx);
    let now = Instant::now();
    for sa in ike.endpoint.established() {
        let _ = ike.endpoint.delete_ike(now, sa);
    }
    ike.flush();
    std::thread::sleep(Duration::from_millis(200));
    ike.flush();
    ike.streams.close_all();
    let mut gone: Vec<String> = std::mem::take(&mut ike.trap_routes);
    gone.extend(std::mem::take(&mut ike.routes).into_values().flatten());
    gone.sort();
    gone.dedup();
    for r in gone {
        route("del", &r, &ike.config.daemon.tun, None);
    }
    let mut unpinned: Vec<oxswan_io::route::Pin> = Vec::new();
    for p in std::mem::take(&mut ike.pins).into_values() {
        if !unpinned.contains(&p) {
            unpin(&p);
            unpinned.push(p);
        }
    }
    ike.access.shutdown();
    ike.dp.stop();
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!(target: "daemon", "oxswan daemon stopped");
    Ok(())
}

/// How long the cluster's ticket keys and cookie secrets last: the ticket lifetime (a ticket stays
/// readable for one more, under the previous key) and the engine's cookie secret lifetime.
fn secret_lifetimes(config: &Config) -> (Duration, Duration) {
    (config.daemon.ticket_lifetime, EndpointConfig::default().cookie_secret_lifetime)
}

/// Connections with a child to start at once, leaving out those in `except`.
fn started(config: &Config, except: &[String]) -> Vec<String> {
    config
        .connections
        .iter()
        .filter(|c| c.children.iter().any(|ch| ch.start_action == StartAction::Start))
        .map(|c| c.name.clone())
        .filter(|n| !except.contains(n))
        .collect()
}

/// The source address the kernel's routes pick for traffic to `remote` (no packet is sent: a UDP
/// socket's connect only looks the route up).
pub(crate) fn route_source(remote: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = if remote.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let s = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    s.connect(SocketAddr::new(remote, 500)).ok()?;
    s.local_addr().ok().map(|a| a.ip()).filter(|a| !a.is_unspecified())
}

pub(super) fn ike_rx(sock: &UdpSocket, tx: &crate::input::Inbox, stop: &AtomicBool) {
    let local = sock.local_addr().ok();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        if let (Some(local), Some(data)) = (local, buf.get(..n)) {
            tx.offer(Input::Datagram { local, remote: from, data: data.to_vec() });
        }
    }
}

fn control_loop(listener: &UnixListener, tx: &crate::input::Inbox) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let tx = tx.clone();
        let _ = std::thread::Builder::new().name("control-conn".into()).spawn(move || serve(stream, &tx));
    }
}

fn serve(stream: UnixStream, tx: &crate::input::Inbox) {
    let mut line = String::new();
    let Ok(mut writer) = stream.try_clone() else { return };
    // One request per connection, of bounded size.
    if BufReader::new(std::io::Read::take(stream, 64 * 1024)).read_line(&mut line).is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Input::Command(req, rtx)).is_err() {
                Response::Error { message: "daemon is stopping".into() }
            } else {
                rrx.recv().unwrap_or(Response::Error { message: "no answer".into() })
            }
        }
        Err(e) => Response::Error { message: format!("bad request: {e}") },
    };
    if let Ok(mut s) = serde_json::to_string(&response) {
        s.push('\n');
        let _ = writer.write_all(s.as_bytes());
    }
}

fn join(ts: &[TrafficSelector]) -> String {
    ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

struct Ike {
    /// Virtual IPs, DNS and pool routes.
    access: crate::access::RemoteAccess,
    /// The RADIUS client, with `[radius]`.
    radius: Option<crate::radius::Radius>,
    /// This node of the cluster, with `[cluster]`.
    cluster: Option<crate::cluster::Node>,
    /// What `[daemon] metrics` serves.
    metrics: Option<crate::metrics::Recorder>,
    config: Config,
    config_path: std::path::PathBuf,
    /// When each IKE SA and CHILD SA (by inbound SPI) came up.
    since: HashMap<(SaHandle, Option<u32>), Instant>,
    provider: CryptoProvider,
    endpoint: Endpoint,
    /// Where the engine's key exchanges are computed; `None` on one core.
    crypto: Option<crypto::CryptoWorkers>,
    sockets: HashMap<IpAddr, Sockets>,
    dp: Arc<dyn Datapath>,
    waiters: Vec<(SaHandle, String, mpsc::Sender<Response>)>,
    /// When each connection was redirected lately (RFC 5685), to stop a loop between gateways.
    redirects: HashMap<String, Vec<Instant>>,
    routes: HashMap<u32, Vec<String>>,
    /// Host routes to peers that a pair's routes would otherwise take into the tunnel, by the
    /// pair's inbound SPI.
    pins: HashMap<PinOwner, oxswan_io::route::Pin>,
    /// Connections to bring up again (`dpd_action`/`close_action` = restart), and when to try next.
    restarts: HashMap<String, Instant>,
    /// Which of a connection's `remote_addrs` to initiate to: the next one after the peer stopped
    /// answering (several gateways of one service, docs/cluster.md), counted modulo their number.
    remote_turn: HashMap<String, usize>,
    /// Routes that send trapped connections' traffic to the TUN device while they have no SA.
    trap_routes: Vec<String>,
    /// When the data plane's counters were last handed to the engine.
    usage_reported: Instant,
    /// Pairs (inbound SPI) the data plane refused to install, being deleted in the engine.
    refused: std::collections::HashSet<u32>,
    /// TCP streams (RFC 9329).
    streams: Arc<Streams>,
    /// When idle streams were last looked for.
    streams_checked: Instant,
    /// The user-space data plane itself, for the sockets of addresses that appear.
    data_plane: Arc<DataPlane>,
    /// Where the threads of new sockets send what they receive.
    tx: crate::input::Inbox,
    /// Set when the daemon stops.
    stop: Arc<AtomicBool>,
    /// The service manager's notifications (sd_notify): readiness, reloads, the watchdog.
    notify: crate::systemd::Notifier,
    /// When the STATUS= line was last brought up to date.
    status_told: Instant,
    /// What `tx.dropped()` was when last logged.
    inbox_dropped: u64,
}

/// `OXSWAN_TEST_SEQUENCE_START`: new outbound SAs number their packets from there, so that a test
/// can reach the end of the sequence space (RFC 4303 §3.3.3) without sending 2^32 packets. Numbers
/// only move forward, so no (key, nonce) pair is used twice; the cost is an earlier rekey.
fn sequence_start() -> anyhow::Result<Option<u64>> {
    match std::env::var("OXSWAN_TEST_SEQUENCE_START") {
        Ok(v) => {
            let start = v.parse().with_context(|| format!("OXSWAN_TEST_SEQUENCE_START={v:?}"))?;
            tracing::warn!(target: "daemon", "testing: outbound ESP sequence numbers start after {start}");
            Ok(Some(start))
        }
        Err(_) => Ok(None),
    }
}

impl Ike {
    fn run(&mut self, rx: &mpsc::Receiver<Input>, stop: &AtomicBool, hup: &AtomicBool) {
        // The input after the one being handled, taken early to see whether others wait.
        let mut ahead: Option<Input> = None;
        while !stop.load(Ordering::Relaxed) {
            if hup.swap(false, Ordering::Relaxed) {
                match self.reload() {
                    Ok(m) => tracing::info!(target: "config", "SIGHUP: {m}"),
                    Err(e) => tracing::warn!(target: "config", "SIGHUP: {e:#}"),
                }
            }
            let now = Instant::now();
            let next = [self.endpoint.poll_timeout(), self.radius.as_ref().and_then(|r| r.poll_timeout())]
                .into_iter()
                .flatten()
                .min();
            let wait = next.map_or(VOLUME_CHECK, |t| t.saturating_duration_since(now)).min(VOLUME_CHECK);
            let wait = self.notify.next_ping(now).map_or(wait, |p| p.min(wait));
            let got = match ahead.take() {
                Some(input) => Ok(input),
                None => rx.recv_timeout(wait),
            };
            // With inputs waiting behind a datagram, a new IKE_SA_INIT's key exchange goes to a
            // crypto worker and the IKE thread moves on; with none, it is computed here at once,
            // which spares a worker's and this thread's wake-ups (the latency of a quiet gateway).
            if self.crypto.is_some()
                && let Ok(Input::Datagram { .. }) = &got
            {
                ahead = rx.try_recv().ok();
                let busy = ahead.is_some() || self.endpoint.work_pending() > 0;
                self.endpoint.set_offload_key_exchange(busy);
            }
            match got {
                Ok(Input::Datagram { local, remote, data }) => {
                    self.endpoint.handle_datagram(Instant::now(), local, remote, &data)
                }
                Ok(Input::Stream { local, remote, data }) => {
                    self.endpoint.handle_tcp(Instant::now(), local, remote, &data)
                }
                Ok(Input::StreamClosed { key, opener, connected }) => self.stream_closed(key, opener, connected),
                Ok(Input::Command(req, reply)) => self.command(req, reply),
                Ok(Input::Trap(name)) => {
                    let up = self
                        .endpoint
                        .established()
                        .iter()
                        .any(|sa| self.endpoint.info(*sa).is_some_and(|i| i.name == name));
                    if !up {
                        tracing::info!(target: "ike", conn = %name, "traffic for the connection: connecting");
                        if let Err(e) = self.initiate(&name) {
                            tracing::warn!(target: "ike", conn = %name, "trap: {e:#}");
                            self.rearm(&name);
                        }
                    } else {
                        self.rearm(&name);
                    }
                }
                Ok(Input::EspMoved { spi_in, from }) => self.esp_moved(spi_in, from),
                Ok(Input::KeyExchange(done)) => self.endpoint.handle_work(Instant::now(), *done),
                Ok(Input::NetworkChanged) => self.network_changed(),
                Ok(Input::Radius { from, data }) => {
                    let answer = self.radius.as_mut().and_then(|r| r.datagram(Instant::now(), from, &data));
                    if let Some((sa, answer)) = answer {
                        let _ = self.endpoint.relay_answer(Instant::now(), sa, answer);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
            }
            self.radius_due(now);
            self.cluster_due();
            self.flush();
            self.restart_due(now);
            self.report_usage(now);
            self.publish_metrics(now);
            self.idle_streams(now);
            self.dp.refresh_mtu(now);
            self.tell_service_manager(now);
        }
    }

    /// WATCHDOG=1 when due, from this loop: it stops when the IKE thread hangs. STATUS= with the
    /// SA counts every few seconds.
    fn tell_service_manager(&mut self, now: Instant) {
        self.notify.alive(now);
        if now.saturating_duration_since(self.status_told) >= STATUS_EVERY {
            self.status_told = now;
            // Said once per episode of overload, with the count since the last word.
            let dropped = self.tx.dropped();
            if dropped > self.inbox_dropped {
                tracing::warn!(
                    target: "ike",
                    "the IKE thread is behind: {} input(s) from the network dropped at its full queue ({} in all)",
                    dropped - self.inbox_dropped,
                    dropped
                );
                self.inbox_dropped = dropped;
            }
            let status = self.status_line();
            self.notify.status(&status);
        }
    }

    /// What systemctl status shows as the daemon's status.
    fn status_line(&self) -> String {
        // Counters, not a walk over every SA: this runs every few seconds at any number of them.
        let ike = self.endpoint.sa_counts().established;
        let children = self.routes.len();
        format!("{} connection(s); {ike} IKE SA(s), {children} CHILD SA(s) up", self.config.connections.len())
    }

    /// At shutdown: accounting Stop (Admin-Reboot) for every accounted IKE SA, with the traffic of
    /// its pairs, and up to [`SHUTDOWN_ACCOUNTING`] for the servers to take them. The IkeSaDown
    /// that would send them otherwise comes with the answer to our DELETE, which shutdown does not
    /// wait for.
    fn stop_accounting(&mut self, rx: &mpsc::Receiver<Input>) {
        let Some(r) = self.radius.as_ref() else { return };
        let now = Instant::now();
        let accounted: Vec<SaHandle> = self.endpoint.established().into_iter().filter(|sa| r.accounts(*sa)).collect();
        let counters: HashMap<u32, PairCounters> = self.dp.counters().into_iter().collect();
        for sa in accounted {
            let usage = self
                .endpoint
                .children(sa)
                .iter()
                .filter_map(|c| counters.get(&c.spi_in))
                .fold(oxswan_radius::Usage::default(), |t, k| crate::radius::add(t, crate::radius::usage_of(&k.usage)));
            if let Some(r) = self.radius.as_mut() {
                r.pair_gone(sa, usage);
                r.down(now, sa, oxswan_radius::TerminateCause::ADMIN_REBOOT);
            }
        }
        let deadline = now + SHUTDOWN_ACCOUNTING;
        while let Some(r) = self.radius.as_mut().filter(|r| r.accounting_in_flight()) {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(target: "radius", "stopping without the servers' answer to the accounting Stops");
                return;
            }
            let until = r.poll_timeout().map_or(deadline, |t| t.min(deadline));
            match rx.recv_timeout(until.saturating_duration_since(now)) {
                Ok(Input::Radius { from, data }) => {
                    let _ = r.datagram(Instant::now(), from, &data);
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let _ = r.timeout(Instant::now());
        }
    }

    /// RADIUS retransmissions, timeouts and Interim-Updates that are due.
    /// The cluster's secrets of a new epoch, the load published (and the redirect it decides), and
    /// the SAs the other nodes took over closed.
    fn cluster_due(&mut self) {
        let Some(node) = self.cluster.as_mut() else { return };
        if !node.due() {
            return;
        }
        node.secrets(&mut self.endpoint, &self.provider, secret_lifetimes(&self.config));
        let ike_sas = self.endpoint.sa_count();
        node.load(&mut self.endpoint, ike_sas, self.config.daemon.redirect.as_ref());
        let now = Instant::now();
        for (sa, why) in node.events(&mut self.endpoint) {
            tracing::info!(target: "cluster", conn = %self.conn(sa), sa = sa.0, "closing the IKE SA: {why}");
            let _ = self.endpoint.delete_ike(now, sa);
        }
    }

    fn radius_due(&mut self, now: Instant) {
        let Some(r) = self.radius.as_mut() else { return };
        if r.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        for (sa, answer) in r.timeout(now) {
            let _ = self.endpoint.relay_answer(now, sa, answer);
        }
        if self.radius.as_ref().is_some_and(|r| r.interim_due(now)) {
            let counters: HashMap<u32, PairCounters> = self.dp.counters().into_iter().collect();
            let endpoint = &self.endpoint;
            let usage = |sa| {
                endpoint
                    .children(sa)
                    .iter()
                    .filter_map(|c| counters.get(&c.spi_in))
                    .fold(oxswan_radius::Usage::default(), |t, k| {
                        crate::radius::add(t, crate::radius::usage_of(&k.usage))
                    })
            };
            if let Some(r) = self.radius.as_mut() {
                r.interim(now, usage);
            }
        }
    }

    /// Hands the engine the data plane's counters of every installed pair, every 100 ms at most:
    /// it decides on volume limits, dead peer detection and when a new pair starts sending. The
    /// loop turns once per IKE datagram too; a flood of them must not make it walk every SA each time.
    fn report_usage(&mut self, now: Instant) {
        if now.saturating_duration_since(self.usage_reported) < VOLUME_CHECK {
            return;
        }
        self.usage_reported = now;
        // Only the pairs whose counters moved: an idle pair's tell the engine nothing new (no
        // traffic, no volume), and walking every SA's CHILD SAs each time cost as much as the
        // handshakes themselves once there were ten thousand of them.
        for (spi, counters) in self.dp.moved_counters() {
            let Some(sa) = self.endpoint.sa_of(spi) else { continue };
            if let Err(e) = self.endpoint.handle_usage(now, sa, spi, counters.usage) {
                tracing::debug!(target: "ike", sa = sa.0, "usage of {spi:08x}_i: {e}");
            }
        }
    }

    /// Initiates the connections whose restart is due. A failed attempt schedules the next one
    /// (see the IkeSaDown event); an established SA ends the restarting. An attempt still being
    /// set up is waited for (looked at again in 20 s): on a lossy link it may take minutes of
    /// retransmissions, and a second attempt beside it made a second IKE SA.
    fn restart_due(&mut self, now: Instant) {
        let due: Vec<String> = self.restarts.iter().filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            self.restarts.insert(name.clone(), now + RESTART_RETRY * 10);
            let busy =
                self.endpoint.established().iter().any(|sa| self.endpoint.info(*sa).is_some_and(|i| i.name == name));
            if busy {
                self.restarts.remove(&name);
                continue;
            }
            if self.endpoint.connecting(&name) {
                continue;
            }
            tracing::info!(target: "ike", conn = %name, "restarting the connection");
            if let Err(e) = self.initiate(&name) {
                tracing::warn!(target: "ike", conn = %name, "restart: {e:#}");
                self.restarts.insert(name, now + RESTART_RETRY);
            }
        }
    }

    /// Lets the next packet for `name` trigger a connection attempt again.
    fn rearm(&self, name: &str) {
        self.dp.rearm_trap(name);
    }

    fn start(&mut self, names: Vec<String>) {
        for name in names {
            if let Err(e) = self.initiate(&name) {
                tracing::warn!(target: "ike", conn = %name, "start: {e:#}");
            }
        }
    }

    /// Reads the configuration file again. New SAs use the new connections; established SAs keep
    /// theirs until they end (as strongSwan's `swanctl --load-conns`). A file with an error changes
    /// nothing.
    fn reload(&mut self) -> anyhow::Result<String> {
        self.notify.reloading();
        let r = self.reload_config();
        // Ready again either way: a file with an error leaves the running configuration.
        let status = self.status_line();
        self.notify.ready(&status);
        r
    }

    /// [`Self::reload`]'s work, between its notifications to systemd.
    fn reload_config(&mut self) -> anyhow::Result<String> {
        let mut config = oxswan_config::load(&self.config_path)?;
        let mut peers = Vec::new();
        for c in &config.connections {
            peers.push(crate::peers::peer_config(&self.provider, &config, c)?);
        }
        let mut note = String::new();
        // `[daemon] redirect` changes at once: it is how a gateway is drained (RFC 5685 §4.1).
        if config.daemon.redirect != self.config.daemon.redirect {
            self.endpoint.set_redirect(config.daemon.redirect.clone());
            note = match &config.daemon.redirect {
                Some(to) => format!("; new clients are redirected to {to}"),
                None => "; new clients are served here".into(),
            };
        }
        let running = oxswan_config::Daemon { redirect: config.daemon.redirect.clone(), ..self.config.daemon.clone() };
        if config.daemon != running {
            note.push_str("; other [daemon] changes take effect at the next start");
            config.daemon = running;
        }
        // The leases live in the pools: changing them under the clients would hand out addresses
        // that are in use.
        if config.pools != self.config.pools {
            note.push_str("; [pools] changes take effect at the next start");
            config.pools = self.config.pools.clone();
        }
        if config.cluster != self.config.cluster {
            note.push_str("; [cluster] changes take effect at the next start");
            config.cluster = self.config.cluster.clone();
        }
        if config.needs_modp1024() && !self.config.needs_modp1024() {
            note.push_str("; modp1024 takes effect at the next start");
        }
        let names = |c: &Config| c.connections.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let (old, new) = (names(&self.config), names(&config));
        let added = new.iter().filter(|n| !old.contains(n)).count();
        let removed = old.iter().filter(|n| !new.contains(n)).count();
        self.endpoint.set_peers(peers);
        self.endpoint.set_credentials(crate::peers::credentials(&config));
        self.streams.set_open_ports(config.connections.iter().map(|c| c.tcp_port));
        self.config = config;
        self.set_traps();
        self.start(started(&self.config, &old));
        Ok(format!(
            "{}: {} connection(s), {added} added, {removed} removed{note}",
            self.config_path.display(),
            new.len()
        ))
    }

    /// The connection name of an SA, for log lines.
    fn conn(&self, sa: SaHandle) -> String {
        self.endpoint.info(sa).map_or_else(|| "?".into(), |i| i.name)
    }

    fn initiate(&mut self, name: &str) -> anyhow::Result<SaHandle> {
        let (local, remote) = self.addresses(name)?;
        Ok(self.endpoint.initiate(Instant::now(), name, local, remote)?)
    }

    /// Where the connection `name` is initiated: its first remote address on the IKE port, from its
    /// first local address or else ours of the same family.
    fn addresses(&mut self, name: &str) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        let c = self.config.connection(name).with_context(|| format!("no connection {name}"))?;
        let turn = self.remote_turn.get(name).copied().unwrap_or(0);
        let remote = *c
            .remote_addrs
            .get(turn % c.remote_addrs.len().max(1))
            .with_context(|| format!("{name} has no remote address"))?;
        let fixed = c.local_addrs.first().copied();
        // Without local_addrs, the source the route to the peer picks now (it may have moved since
        // the start, MOBIKE), if we have or can open its sockets; else any of ours of the family.
        let routed = match fixed {
            Some(_) => None,
            None => route_source(remote).filter(|a| self.open(*a)),
        };
        let local = fixed
            .or(routed)
            .or_else(|| self.sockets.keys().find(|a| a.is_ipv4() == remote.is_ipv4()).copied())
            .with_context(|| format!("{name}: no local address of the remote's family"))?;
        let port = self.config.daemon.ike_port;
        Ok((SocketAddr::new(local, port), SocketAddr::new(remote, port)))
    }

    /// `reauth_time` came for `sa`: a new IKE SA replaces it, to the connection's address or else to
    /// the peer's current one.
    fn reauthenticate(&mut self, sa: SaHandle, name: &str) -> anyhow::Result<()> {
        let port = self.config.daemon.ike_port;
        let target = self.addresses(name).ok().or_else(|| {
            let i = self.endpoint.info(sa)?;
            Some((SocketAddr::new(i.local.ip(), port), SocketAddr::new(i.remote.ip(), port)))
        });
        let Some((local, remote)) = target else { anyhow::bail!("no address to reauthenticate to") };
        match self.endpoint.reauthenticate(Instant::now(), sa, local, remote) {
            Ok(new) => {
                tracing::info!(target: "ike", conn = %name, sa = sa.0, "reauthenticating as SA {}", new.0);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target: "ike", conn = %name, sa = sa.0, "reauthentication: {e}");
                Err(e.into())
            }
        }
    }

    /// The gateway redirected `sa` (RFC 5685 §5): set up anew at `to`, as a reauthentication, unless
    /// the connection was redirected more than [`MAX_REDIRECTS`] times within [`REDIRECT_WINDOW`]
    /// (a loop between gateways), or `to` cannot be followed.
    fn follow_redirect(&mut self, sa: SaHandle, name: &str, to: Result<core::net::IpAddr, String>) {
        let to = match to {
            Ok(to) => to,
            Err(why) => {
                tracing::warn!(target: "ike", conn = %name, sa = sa.0, "redirect not followed: {why}");
                return;
            }
        };
        let now = Instant::now();
        let recent = self.redirects.entry(name.to_owned()).or_default();
        recent.retain(|t| now.saturating_duration_since(*t) < REDIRECT_WINDOW);
        if recent.len() >= MAX_REDIRECTS {
            tracing::warn!(
                target: "ike",
                conn = %name,
                sa = sa.0,
                "redirect to {to} refused: {} redirects within {} s (a loop?)",
                recent.len(),
                REDIRECT_WINDOW.as_secs()
            );
            return;
        }
        recent.push(now);
        let port = self.config.daemon.ike_port;
        let established = self.endpoint.established().contains(&sa);
        let r = match self.endpoint.info(sa).filter(|_| established) {
            // §5: an established SA is set up anew there, as a reauthentication.
            Some(i) => {
                let local = SocketAddr::new(i.local.ip(), port);
                self.endpoint.follow_redirect(now, sa, local, SocketAddr::new(to, port))
            }
            // §4.1, §6: before it was up, the connection starts again there; `up` waits for that.
            None => match self.addresses(name) {
                Ok((local, from)) => {
                    let r = self.endpoint.initiate_redirected(now, name, (local, SocketAddr::new(to, port)), from.ip());
                    if let Ok(new) = r {
                        for w in self.waiters.iter_mut().filter(|w| w.0 == sa) {
                            w.0 = new;
                        }
                    }
                    r
                }
                Err(e) => {
                    tracing::warn!(target: "ike", conn = %name, sa = sa.0, "redirect to {to}: {e:#}");
                    return;
                }
            },
        };
        match r {
            Ok(new) => tracing::info!(target: "ike", conn = %name, sa = sa.0, "redirected to {to}, as SA {}", new.0),
            Err(e) => tracing::warn!(target: "ike", conn = %name, sa = sa.0, "redirect to {to}: {e}"),
        }
    }

    /// The established IKE SAs of connection `name` that are its own: not one a rekey or a
    /// reauthentication replaced, which is listed until its DELETE is answered and is going anyway.
    fn established_sas(&self, name: &str) -> Vec<SaHandle> {
        let ours =
            |sa: &SaHandle| !self.endpoint.replaced(*sa) && self.endpoint.info(*sa).is_some_and(|i| i.name == name);
        self.endpoint.established().into_iter().filter(ours).collect()
    }

    /// Acts on the engine's events, then sends what it produced, until neither is left. Events
    /// first: a pair the engine made is in the data plane before the message that lets the peer
    /// rely on it goes out (RFC 7296 §2.8, make before break). Sent first, the initiator's DELETE
    /// of a rekeyed CHILD SA overtook its own switch to the new pair: packets sealed meanwhile with
    /// the old one reached a peer that had already removed it.
    fn flush(&mut self) {
        loop {
            let mut any = false;
            while let Some(work) = self.endpoint.poll_work() {
                any = true;
                let left = match &self.crypto {
                    Some(c) => c.submit(work),
                    None => Some(work),
                };
                if let Some(work) = left {
                    self.endpoint.handle_work(Instant::now(), work.run());
                }
            }
            let mut events = false;
            while let Some(e) = self.endpoint.poll_event() {
                events = true;
                self.event(e);
            }
            if events {
                // What the events changed in the data plane is in effect before the messages that
                // follow them go out: none sealed on a pair as it was leaves after them.
                self.dp.settle_sends();
            }
            any |= events;
            any |= self.send_transmits();
            if !any {
                return;
            }
        }
    }

    /// Sends what the engine produced; whether there was anything.
    fn send_transmits(&mut self) -> bool {
        let mut any = false;
        while let Some(t) = self.endpoint.poll_transmit() {
            any = true;
            if t.transport == oxswan_ike::Transport::Tcp {
                // RFC 9329 §3.1: framed on the stream; no keepalives over TCP (the engine sends none).
                if !t.is_keepalive() {
                    self.streams.send_ike((t.local.ip(), t.remote), &t.payload);
                }
                continue;
            }
            let Some(s) = self.sockets.get(&t.local.ip()) else { continue };
            // A NAT keepalive (RFC 3948 §2.3) goes as it is; IKE on port 4500 behind the non-ESP marker.
            let r = if t.is_keepalive() {
                s.natt.socket().send_to(&t.payload, t.remote)
            } else if t.local.port() == self.config.daemon.natt_port {
                s.natt.socket().send_to(&with_non_esp_marker(&t.payload), t.remote)
            } else {
                s.ike.send_to(&t.payload, t.remote)
            };
            if let Err(e) = r {
                tracing::debug!(target: "ike", "send to {}: {e}", t.remote);
            }
        }
        any
    }

    fn answer(&mut self, sa: SaHandle, r: Response) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters.get(i).is_some_and(|w| w.0 == sa) {
                let (_, _, tx) = self.waiters.swap_remove(i);
                let _ = tx.send(r.clone());
            } else {
                i += 1;
            }
        }
    }
}
