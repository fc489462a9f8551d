//! oxswan's configuration file: TOML in the shape of strongSwan's swanctl.conf (../shared/design.md),
//! parsed, validated and turned into typed values. Every error names the file, the line and column,
//! the key, and what is wrong with it. Pure: files the configuration refers to (certificates, keys) are
//! named here and read by the daemon.
#![forbid(unsafe_code)]

mod auth;
mod cluster;
mod connection;
mod pools;
mod raw;
mod values;

use core::net::IpAddr;
use core::time::Duration;
use std::path::{Path, PathBuf};

use oxswan_crypto::Secret;
use oxswan_ike::child::{Mode, TsConfig};
use oxswan_wire::sa::Proposal;
use oxswan_wire::{Identity, KeId, TransformType};
use toml::Spanned;

pub use auth::{AuthKind, EapId, EapKind, EapSecret, LocalSide, RemoteSide};
pub use cluster::{Cluster, ClusterTls};
pub use oxswan_pool::AddrRange;
pub use pools::{DEFAULT_GRACE, DnsMode, PoolConfig, Radius, RadiusServer, Subnet, parse_subnet};
pub use values::{CHILD_REKEY_TIME, IKE_REKEY_TIME, parse_dn, parse_duration, parse_identity, parse_ts, parse_volume};

use raw::{RawDaemon, RawFile, S};
use values::{duration, identity};

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {key}: {message}", file.display())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key path, e.g. `connections.site.children.net.local_ts`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Daemon-wide settings (`[daemon]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    /// Addresses to bind the IKE and NAT-T ports on (empty: every connection's local addresses).
    pub listen: Vec<IpAddr>,
    /// The IKE port (500).
    pub ike_port: u16,
    /// The NAT-T port (4500).
    pub natt_port: u16,
    /// Accept IKE and ESP over TCP (RFC 9329) on `tcp_port` of each listening address (default
    /// off, as Libreswan's `listen-tcp`): only a responder needs it.
    pub listen_tcp: bool,
    /// The TCP port (4500, as Libreswan).
    pub tcp_port: u16,
    /// The control socket.
    pub socket: PathBuf,
    /// The TUN device's name.
    pub tun: String,
    /// Packets in the anti-replay window of each inbound SA.
    pub replay_window: u32,
    /// Interval of NAT keepalives when we are behind a NAT (RFC 3948 §2.3); strongSwan's default 20 s.
    pub keepalive: Duration,
    /// Use the TUN device's segmentation and coalescing offloads (virtio-net header) when the
    /// kernel offers them.
    pub offload: bool,
    /// Retransmission of IKE requests (strongSwan's `charon.retransmit_*`): the first wait, the factor
    /// per retransmission and the number of retransmissions before the peer is given up.
    pub retransmit_timeout: Duration,
    /// See `retransmit_timeout`.
    pub retransmit_base: f64,
    /// See `retransmit_timeout`.
    pub retransmit_tries: u32,
    /// Log levels per subsystem, in `tracing`'s filter syntax (`info,dataplane=debug`); the
    /// `RUST_LOG` environment variable overrides it.
    pub log: String,
    /// How a client applies the DNS servers a gateway sends it.
    pub dns: DnsMode,
    /// The TCP MSS of tunnelled SYNs (`clamp_mss`).
    pub clamp_mss: ClampMss,
    /// The largest IP datagram an IKE fragment is sent in (RFC 7383 §2.5.1; strongSwan's
    /// `charon.fragment_size`: the whole datagram, IP and UDP headers included); 0 for the family's
    /// default (576 for IPv4, 1280 for IPv6).
    pub fragment_size: u16,
    /// Once its sockets, TUN device and control socket are set up, keep only the capabilities the
    /// daemon needs from then on (`CAP_NET_ADMIN`, `CAP_NET_BIND_SERVICE`) and drop every other
    /// one, from the bounding set too.
    pub drop_capabilities: bool,
    /// Where to serve Prometheus metrics over HTTP (`GET /metrics`); off when `None`.
    pub metrics: Option<core::net::SocketAddr>,
    /// Send every new client that supports redirects to this gateway (an address or a domain
    /// name) in the IKE_SA_INIT response (RFC 5685 §4.1), before any key exchange.
    pub redirect: Option<oxswan_ike::Gateway>,
    /// How long the session resumption tickets this gateway gives are good for (RFC 5723), and how
    /// often the key that seals them changes.
    pub ticket_lifetime: Duration,
}

/// How the MSS option of TCP SYNs through the tunnel is clamped (`[daemon] clamp_mss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClampMss {
    /// `false`: SYNs pass as they are.
    Off,
    /// `true` (the default): to what fits the SA's tunnel MTU, less 40 octets of IPv4 and TCP
    /// headers or 60 of IPv6 and TCP.
    Auto,
    /// At most this MSS, whatever the tunnel.
    Fixed(u16),
}

/// The smallest MSS `clamp_mss` takes: Linux's TCP_MIN_MSS (88), below which no stack sends.
pub const MIN_CLAMP_MSS: u16 = 88;
/// The largest: a 65535-octet IPv4 datagram less its IP and TCP headers.
pub const MAX_CLAMP_MSS: u16 = 65_495;
/// The smallest `fragment_size` other than 0: IPv4's minimum reassembly size (RFC 791), which is
/// also room for the headers of an IKE fragment and some data.
pub const MIN_FRAGMENT_SIZE: u16 = 576;

/// What to do when a peer is found dead or closes the SA (strongSwan's `dpd_action` and
/// `close_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerAction {
    /// Remove the SAs (`clear` for `dpd_action`, `none` for `close_action`).
    #[default]
    Clear,
    /// Connect again at once, and keep trying.
    Restart,
    /// Connect again when traffic for the connection's selectors arrives.
    Trap,
}

/// When an initiator uses TCP (RFC 9329), Libreswan's `enable-tcp`: `no`, `fallback`, `always`:
/// the engine's own type, read from the file as it is.
pub use oxswan_ike::{Childless, TcpMode};

/// What to do with a child when the daemon starts (strongSwan's `start_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAction {
    /// Wait for the peer or a command.
    None,
    /// Initiate at startup.
    Start,
    /// Initiate when the first packet for the child's selectors arrives.
    Trap,
}

/// What to do with an identity's other IKE SAs when it authenticates a new one (strongSwan's
/// `unique`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unique {
    /// `no` (default): keep the others, but replace one with the same identity when the new one
    /// says INITIAL_CONTACT.
    #[default]
    No,
    /// `never`: keep the others, INITIAL_CONTACT or not.
    Never,
    /// `replace`: delete the others.
    Replace,
    /// `keep`: refuse the new IKE SA and keep the existing one.
    Keep,
}

/// `connections.<name>.children.<child>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The child's name.
    pub name: String,
    /// Our side's selectors.
    pub local_ts: Vec<TsConfig>,
    /// The peer's side's selectors.
    pub remote_ts: Vec<TsConfig>,
    /// ESP proposals; additional key exchanges (`ke1_`..`ke7_`) are made in IKE_FOLLOWUP_KE (RFC 9370).
    pub esp_proposals: Vec<Proposal>,
    /// Start action.
    pub start_action: StartAction,
    /// Tunnel or transport mode.
    pub mode: Mode,
    /// Time to rekey the CHILD SA (default 1h, as strongSwan; `0`: never).
    pub rekey_time: Option<Duration>,
    /// Hard lifetime: delete the CHILD SA if it was not replaced by then (default 1.1 ×
    /// `rekey_time`; `0`: never).
    pub life_time: Option<Duration>,
    /// Up to this much earlier at random (default a tenth of `rekey_time`).
    pub rand_time: Option<Duration>,
    /// Rekey after this many octets through the CHILD SA either way (0: never).
    pub rekey_bytes: u64,
    /// Delete after this many octets (default 1.1 × `rekey_bytes`; 0: never).
    pub life_bytes: u64,
    /// Rekey after this many packets either way (0: never).
    pub rekey_packets: u64,
    /// Delete after this many packets (default 1.1 × `rekey_packets`; 0: never).
    pub life_packets: u64,
    /// Per-resource CHILD SAs (RFC 9611, strongSwan's `per_cpu_sas`): besides the first (the
    /// fallback), one more with the same selectors for each data-plane worker, so that the workers
    /// seal and open in parallel, each on its own SA (default false).
    pub per_cpu_sas: bool,
}

/// `connections.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The connection's name.
    pub name: String,
    /// Our addresses (empty: any).
    pub local_addrs: Vec<IpAddr>,
    /// The peer's addresses; empty for `%any` (a responder for any peer).
    pub remote_addrs: Vec<IpAddr>,
    /// IKE proposals; additional key exchanges (`ke1_`..`ke7_`) are made in IKE_INTERMEDIATE and IKE_FOLLOWUP_KE (RFC 9242, 9370).
    pub proposals: Vec<Proposal>,
    /// Force UDP encapsulation.
    pub encap: bool,
    /// Liveness check interval.
    pub dpd_delay: Option<Duration>,
    /// What to do when the peer stops answering.
    pub dpd_action: PeerAction,
    /// What to do when the peer deletes the IKE SA.
    pub close_action: PeerAction,
    /// Time to rekey the IKE SA (default 4h, as strongSwan; `0`: never).
    pub rekey_time: Option<Duration>,
    /// Time to reauthenticate: a new IKE SA from IKE_SA_INIT on (default never).
    pub reauth_time: Option<Duration>,
    /// Delete the IKE SA this long after its rekey or reauthentication was due if it did not happen
    /// (default a tenth of that time).
    pub over_time: Option<Duration>,
    /// Up to this much earlier at random (default a tenth of the rekey or reauthentication time).
    pub rand_time: Option<Duration>,
    /// Pools to give clients virtual IP addresses from (names of `[pools.*]`), in order.
    pub pools: Vec<String>,
    /// What to do with the identity's other IKE SAs.
    pub unique: Unique,
    /// MOBIKE (RFC 4555): offer it, and follow the peer to new addresses (default on).
    pub mobike: bool,
    /// IKE fragmentation (RFC 7383): offer it and fragment large messages when the peer supports it
    /// (default on).
    pub fragmentation: bool,
    /// As initiator, IKE and ESP over TCP (RFC 9329): never (default, as Libreswan's `enable-tcp`),
    /// when UDP gets no answer, or always.
    pub tcp: TcpMode,
    /// Childless IKE SAs (RFC 6023, strongSwan's `childless`): `allow` (default), `prefer`,
    /// `force` or `never`.
    pub childless: Childless,
    /// The Post-quantum Preshared Key to use (RFC 8784), by its ID in `[[secrets.ppk]]`
    /// (strongSwan's `ppk_id`); as responder without it, whichever the initiator names.
    pub ppk_id: Option<String>,
    /// Fail rather than set the IKE SA up without a PPK (strongSwan's `ppk_required`).
    pub ppk_required: bool,
    /// As responder, send each client that authenticated on this connection, and supports
    /// redirects, to this gateway in the IKE_AUTH response (RFC 5685 §6).
    pub redirect: Option<oxswan_ike::Gateway>,
    /// Session resumption (RFC 5723): as client ask for a ticket and resume with it; as gateway
    /// give this connection's clients tickets and take them back.
    pub resumption: bool,
    /// The responder's TCP port (default 4500, Libreswan's `tcp-remoteport`).
    pub tcp_port: u16,
    /// Virtual IP addresses to request as a client, one per entry: `0.0.0.0` or `::` for any of that
    /// family, or a specific address.
    pub vips: Vec<IpAddr>,
    /// Our side.
    pub local: LocalSide,
    /// The peer's side.
    pub remote: RemoteSide,
    /// Children, in file order.
    pub children: Vec<Child>,
}

/// One `[[secrets.ike]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSecret {
    /// The identities it is for.
    pub ids: Vec<Identity>,
    /// The key.
    pub secret: Secret,
}

/// One `[[secrets.ppk]]` entry: a Post-quantum Preshared Key (RFC 8784).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PpkSecret {
    /// The PPK_IDs it is known by.
    pub ids: Vec<String>,
    /// The key: the string's octets, or the octets of `0x`-prefixed hex.
    pub secret: Secret,
}

/// A whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[daemon]`.
    pub daemon: Daemon,
    /// `[connections.*]`, in name order.
    pub connections: Vec<Connection>,
    /// `[[secrets.ike]]`.
    pub secrets: Vec<IkeSecret>,
    /// `[pools.*]`, in name order.
    pub pools: Vec<PoolConfig>,
    /// `[[secrets.eap]]`.
    pub eap_secrets: Vec<EapSecret>,
    /// `[[secrets.ppk]]`.
    pub ppk_secrets: Vec<PpkSecret>,
    /// `[radius]`.
    pub radius: Option<Radius>,
    /// `[cluster]`: `None` when this gateway runs alone.
    pub cluster: Option<Cluster>,
}

impl Config {
    /// The PSK for a pair of identities, as swanctl picks it: an entry naming both, else one naming
    /// one of them.
    pub fn psk_for(&self, local: &Identity, remote: Option<&Identity>) -> Option<&Secret> {
        auth::psk_for(&self.secrets, local, remote)
    }

    /// The `[[secrets.eap]]` password of an EAP identity.
    pub fn eap_secret(&self, id: &str) -> Option<&Secret> {
        self.eap_secrets.iter().find(|s| s.id == id).map(|s| &s.secret)
    }

    /// A pool by name.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Whether a proposal names MODP 1024 (group 2), in a connection's `proposals` or a child's
    /// `esp_proposals`: the daemon must then build its crypto provider with
    /// `oxswan_crypto::default_provider_with(true)`. Never true for `default` proposals.
    pub fn needs_modp1024(&self) -> bool {
        let names = |p: &Proposal| {
            p.transforms.iter().any(|t| t.transform_type == TransformType::KE && t.transform_id == KeId::MODP1024.0)
        };
        self.connections
            .iter()
            .any(|c| c.proposals.iter().any(names) || c.children.iter().any(|ch| ch.esp_proposals.iter().any(names)))
    }

    /// A connection by name.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    /// The certificates, keys and revocation lists named must be there ([`load`]); [`parse`]
    /// checks the text alone.
    pub(crate) files_exist: bool,
}

impl Ctx<'_> {
    /// A file named in the configuration: a relative name is taken from the configuration file's
    /// directory, as swanctl takes its files from beside swanctl.conf, so that a configuration and
    /// its certificates move together and the daemon's working directory does not matter.
    pub(crate) fn path(&self, name: String) -> PathBuf {
        let p = PathBuf::from(name);
        match self.file.parent() {
            Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p,
        }
    }
    /// A file named in the configuration ([`Ctx::path`]) that [`load`] requires to be there, as the
    /// sides' certificates and keys are; an empty name is an error.
    pub(crate) fn existing_file(&self, p: S<String>, key: &str) -> Result<PathBuf, ConfigError> {
        let span = p.span();
        if p.get_ref().is_empty() {
            return Err(self.err(span, key, "empty file name"));
        }
        let path = self.path(p.into_inner());
        if !self.files_exist {
            return Ok(path);
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(path),
            Ok(_) => Err(self.err(span, key, format!("{} is not a file", path.display()))),
            Err(e) => Err(self.err(span, key, format!("cannot read {}: {e}", path.display()))),
        }
    }
    /// The dotted key written at `at`: the last table header before it and the key of its line,
    /// for errors that come with a position only (a value of the wrong type or range).
    pub(crate) fn key_at(&self, at: usize) -> String {
        let before = self.text.get(..at.min(self.text.len())).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
        let line = self.text.get(line_start..).unwrap_or("").lines().next().unwrap_or("");
        let table = before
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty() && !k.starts_with('['));
        match (table, key) {
            (Some(t), Some(k)) => format!("{t}.{k}"),
            (None, Some(k)) => k.to_owned(),
            (Some(t), None) => t,
            (None, None) => "(file)".to_owned(),
        }
    }

    pub(crate) fn err(&self, span: core::ops::Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        let before = self.text.get(..span.start.min(self.text.len())).unwrap_or("");
        let line = before.matches('\n').count().saturating_add(1);
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()).saturating_add(1);
        ConfigError { file: self.file.to_path_buf(), line, column, key: key.to_owned(), message: message.into() }
    }
}

/// Parses and validates a configuration file's text; `file` is only for error messages and to
/// place relative file names. The files it names are not looked at ([`load`] does that).
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_with(Ctx { file, text, files_exist: false })
}

fn parse_with(ctx: Ctx<'_>) -> Result<Config, ConfigError> {
    let text = ctx.text;
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let key = ctx.key_at(span.start);
        ctx.err(span, &key, e.message().to_owned())
    })?;
    let daemon = daemon(&ctx, raw.daemon)?;
    let pools = pools::pools(&ctx, raw.pools)?;
    let radius = pools::radius(&ctx, raw.radius)?;
    let cluster = cluster::cluster(&ctx, raw.cluster)?;
    let eap_secrets = auth::eap_secrets(&ctx, raw.secrets.eap)?;
    let known = auth::Known { eap_secrets: &eap_secrets, radius: radius.is_some() };
    let mut connections = Vec::new();
    for (name, c) in raw.connections {
        connections.push(connection::connection(&ctx, &name, c, &known, &pools)?);
    }
    let mut secrets = Vec::new();
    for (i, s) in raw.secrets.ike.into_iter().enumerate() {
        let key = format!("secrets.ike[{i}]");
        let span = s.span();
        let s = s.into_inner();
        if s.secret.get_ref().is_empty() {
            return Err(ctx.err(s.secret.span(), &format!("{key}.secret"), "empty secret"));
        }
        if s.ids.is_empty() {
            return Err(ctx.err(span, &format!("{key}.ids"), "names no identity"));
        }
        let ids = s
            .ids
            .iter()
            .map(|id| {
                identity(&ctx, id, &format!("{key}.ids"))?.ok_or_else(|| ctx.err(id.span(), &key, "%any has no secret"))
            })
            .collect::<Result<_, _>>()?;
        secrets.push(IkeSecret { ids, secret: Secret::from_slice(s.secret.get_ref().as_bytes()) });
    }
    let ppk_secrets = auth::ppk_secrets(&ctx, raw.secrets.ppk)?;
    let config = Config { daemon, connections, secrets, pools, eap_secrets, ppk_secrets, radius, cluster };
    for c in &config.connections {
        auth::check_psk(&ctx, &config, c)?;
        auth::check_ppk(&ctx, &config, c)?;
    }
    Ok(config)
}

/// Reads and parses a file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        // Where the first octet that is not UTF-8 is, in the text before it.
        let good = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(e.as_bytes().get(..good).unwrap_or_default()).into_owned();
        let ctx = Ctx { file: path, text: &prefix, files_exist: false };
        let at = prefix.len();
        ctx.err(at..at, &ctx.key_at(at), format!("not UTF-8 (octet {good} of the file)"))
    })?;
    // The daemon, check-config and reload read the file: the files it names must be there too,
    // or the error is at their key rather than at the daemon's start.
    parse_with(Ctx { file: path, text: &text, files_exist: true })
}

fn daemon(ctx: &Ctx<'_>, d: RawDaemon) -> Result<Daemon, ConfigError> {
    let listen = d
        .listen
        .iter()
        .map(|a| a.get_ref().parse().map_err(|_| ctx.err(a.span(), "daemon.listen", "not an IP address")))
        .collect::<Result<_, _>>()?;
    let port = |p: Option<S<u16>>, default: u16, key: &str| match p {
        Some(p) if *p.get_ref() == 0 => Err(ctx.err(p.span(), key, "port 0")),
        Some(p) => Ok(p.into_inner()),
        None => Ok(default),
    };
    let tun = d.tun.map_or_else(|| "oxswan0".to_owned(), Spanned::into_inner);
    // Linux limits interface names to 15 characters (IFNAMSIZ 16 with the terminator).
    if tun.is_empty() || tun.len() > 15 || !tun.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ctx.err(
            0..0,
            "daemon.tun",
            format!("`{tun}` is not a valid interface name (1-15 of a-z 0-9 - _ .)"),
        ));
    }
    Ok(Daemon {
        listen,
        ike_port: port(d.ike_port, 500, "daemon.ike_port")?,
        natt_port: port(d.natt_port, 4500, "daemon.natt_port")?,
        listen_tcp: d.listen_tcp.unwrap_or(false),
        tcp_port: port(d.tcp_port, 4500, "daemon.tcp_port")?,
        socket: d.socket.map_or_else(|| PathBuf::from("/run/oxswan/oxswan.sock"), |s| PathBuf::from(s.into_inner())),
        tun,
        replay_window: match d.replay_window {
            None => 1024,
            Some(w) if (1..=MAX_REPLAY_WINDOW).contains(w.get_ref()) => w.into_inner(),
            Some(w) => {
                return Err(ctx.err(
                    w.span(),
                    "daemon.replay_window",
                    format!(
                        "{} packets: from 1 to {MAX_REPLAY_WINDOW} (0 would turn replay protection off, which oxswan does not do)",
                        w.get_ref()
                    ),
                ));
            }
        },
        keepalive: duration(ctx, d.keepalive, "daemon.keepalive")?.unwrap_or(Duration::from_secs(20)),
        offload: d.offload.unwrap_or(true),
        retransmit_timeout: duration(ctx, d.retransmit_timeout, "daemon.retransmit_timeout")?
            .unwrap_or(Duration::from_secs(4)),
        retransmit_base: match d.retransmit_base {
            Some(b) if !(1.0..=10.0).contains(b.get_ref()) => {
                return Err(ctx.err(b.span(), "daemon.retransmit_base", "a factor from 1.0 to 10.0"));
            }
            Some(b) => b.into_inner(),
            None => 1.8,
        },
        retransmit_tries: match d.retransmit_tries {
            Some(t) if *t.get_ref() > 20 => {
                return Err(ctx.err(t.span(), "daemon.retransmit_tries", "at most 20 retransmissions"));
            }
            Some(t) => t.into_inner(),
            None => 5,
        },
        log: match d.log {
            None => "info".to_owned(),
            // The daemon's own parser: what it would refuse at start is refused here, for
            // check-config and reload alike.
            Some(l) => match tracing_subscriber::EnvFilter::try_new(l.get_ref()) {
                Ok(_) => l.into_inner(),
                Err(e) => {
                    return Err(ctx.err(
                        l.span(),
                        "daemon.log",
                        format!("`{}` is not a log filter such as \"info,dataplane=debug\": {e}", l.get_ref()),
                    ));
                }
            },
        },
        dns: pools::dns_mode(ctx, d.dns)?,
        clamp_mss: match d.clamp_mss {
            None => ClampMss::Auto,
            Some(c) => {
                let mss = match c.get_ref() {
                    toml::Value::Boolean(true) => Some(ClampMss::Auto),
                    toml::Value::Boolean(false) => Some(ClampMss::Off),
                    toml::Value::Integer(m) => u16::try_from(*m)
                        .ok()
                        .filter(|m| (MIN_CLAMP_MSS..=MAX_CLAMP_MSS).contains(m))
                        .map(ClampMss::Fixed),
                    _ => None,
                };
                let shown = match c.get_ref() {
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::String(s) => format!("{s:?}"),
                    other => format!("a {}", other.type_str()),
                };
                mss.ok_or_else(|| {
                    ctx.err(
                        c.span(),
                        "daemon.clamp_mss",
                        format!("true, false or an MSS from {MIN_CLAMP_MSS} to {MAX_CLAMP_MSS}, not {shown}"),
                    )
                })?
            }
        },
        fragment_size: match d.fragment_size {
            None => 1280,
            Some(f) => match u16::try_from(*f.get_ref()) {
                Ok(n) if n == 0 || n >= MIN_FRAGMENT_SIZE => n,
                _ => {
                    return Err(ctx.err(
                        f.span(),
                        "daemon.fragment_size",
                        format!(
                            "0 (the family's default) or a datagram size from {MIN_FRAGMENT_SIZE} to 65535, not {}",
                            f.get_ref()
                        ),
                    ));
                }
            },
        },
        drop_capabilities: match d.drop_capabilities {
            None => true,
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(b) => *b,
                other => {
                    return Err(ctx.err(
                        v.span(),
                        "daemon.drop_capabilities",
                        format!("true or false, not a {}", other.type_str()),
                    ));
                }
            },
        },
        metrics: match d.metrics {
            None => None,
            Some(m) => Some(metrics_address(ctx, &m)?),
        },
        redirect: gateway(ctx, d.redirect.as_ref(), "daemon.redirect")?,
        ticket_lifetime: match d.ticket_lifetime {
            None => Duration::from_secs(8 * 3600),
            Some(v) => {
                let span = v.span();
                let t = duration(ctx, Some(v), "daemon.ticket_lifetime")?.unwrap_or_default();
                if !(MIN_TICKET_LIFETIME..=MAX_TICKET_LIFETIME).contains(&t) {
                    return Err(ctx.err(span, "daemon.ticket_lifetime", "from 1m to 7d"));
                }
                t
            }
        },
    })
}

/// The largest anti-replay window the data plane keeps (RFC 4303 §3.4.3), in packets; smaller ones
/// are rounded up to a multiple of 64 (at least 64).
const MAX_REPLAY_WINDOW: u32 = 1 << 20;

/// The bounds of `[daemon] ticket_lifetime`: a ticket must outlive a reconnection, and a key that
/// seals tickets should not live for weeks.
const MIN_TICKET_LIFETIME: Duration = Duration::from_secs(60);
const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// A redirect's gateway: an IP address or a domain name (`[daemon] redirect`, a connection's
/// `redirect`).
pub(crate) fn gateway(
    ctx: &Ctx<'_>,
    v: Option<&S<String>>,
    key: &str,
) -> Result<Option<oxswan_ike::Gateway>, ConfigError> {
    v.map(|v| oxswan_ike::Gateway::parse(v.get_ref()).map_err(|e| ctx.err(v.span(), key, e.to_string()))).transpose()
}

/// `[daemon] metrics`: an IP address and a port, `127.0.0.1:9101` or `[::1]:9101`.
fn metrics_address(ctx: &Ctx<'_>, m: &S<String>) -> Result<core::net::SocketAddr, ConfigError> {
    let bad = |why: &str| {
        ctx.err(
            m.span(),
            "daemon.metrics",
            format!("`{}`: {why}, e.g. \"127.0.0.1:9101\" or \"[::1]:9101\"", m.get_ref()),
        )
    };
    let at: core::net::SocketAddr = m.get_ref().parse().map_err(|_| bad("not an IP address and port"))?;
    if at.port() == 0 {
        return Err(bad("port 0"));
    }
    Ok(at)
}
