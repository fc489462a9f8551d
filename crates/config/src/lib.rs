//! oxswan's configuration file: TOML in the shape of strongSwan's swanctl.conf (../shared/design.md),
//! parsed, validated and turned into typed values. Every error names the file, the line and column,
//! the key, and what is wrong with it. Pure: files the configuration refers to (certificates, keys) are
//! named here and read by the daemon.
#![forbid(unsafe_code)]

use core::net::IpAddr;
use core::time::Duration;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oxswan_crypto::Secret;
use oxswan_crypto::proposal::{lookup_keyword, parse_esp_proposal, parse_ike_proposal};
use oxswan_ike::child::{Mode, TsConfig};
use oxswan_wire::Identity;
use oxswan_wire::sa::Proposal;
use oxswan_wire::ts::TrafficSelector;
use serde::Deserialize;
use toml::Spanned;

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
    /// Addresses to bind the IKE and NAT-T ports on (empty: the wildcard address).
    pub listen: Vec<IpAddr>,
    /// The IKE port (500).
    pub ike_port: u16,
    /// The NAT-T port (4500).
    pub natt_port: u16,
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
}

/// How one side authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Pre-shared key from `[[secrets.ike]]`.
    Psk,
    /// Certificate and private key (RFC 7427 signatures).
    Pubkey,
}

/// `connections.<name>.local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSide {
    /// How we authenticate.
    pub auth: AuthKind,
    /// Our identity; `None` with `pubkey` means the certificate's subject DN.
    pub id: Option<Identity>,
    /// Our certificate chain files (end entity first).
    pub certs: Vec<PathBuf>,
    /// Our private key file.
    pub key: Option<PathBuf>,
    /// Sign with RSASSA-PSS rather than PKCS#1 v1.5 when our key is RSA (strongSwan's `rsa_pss`).
    pub rsa_pss: bool,
}

/// `connections.<name>.remote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSide {
    /// How the peer must authenticate.
    pub auth: AuthKind,
    /// The identity it must have; `None` (or `%any`) accepts any that authenticates.
    pub id: Option<Identity>,
    /// CA certificate files for `pubkey`.
    pub cacerts: Vec<PathBuf>,
}

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

/// `connections.<name>.children.<child>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The child's name.
    pub name: String,
    /// Our side's selectors.
    pub local_ts: Vec<TsConfig>,
    /// The peer's side's selectors.
    pub remote_ts: Vec<TsConfig>,
    /// ESP proposals; none has additional key exchanges (`ke1_`..`ke7_` are refused).
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
    /// IKE proposals; none has additional key exchanges (`ke1_`..`ke7_` are refused).
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

/// A whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[daemon]`.
    pub daemon: Daemon,
    /// `[connections.*]`, in name order.
    pub connections: Vec<Connection>,
    /// `[[secrets.ike]]`.
    pub secrets: Vec<IkeSecret>,
}

impl Config {
    /// The PSK for a pair of identities, as swanctl picks it: an entry naming both, else one naming
    /// one of them.
    pub fn psk_for(&self, local: &Identity, remote: Option<&Identity>) -> Option<&Secret> {
        let has = |s: &IkeSecret, id: &Identity| s.ids.iter().any(|i| i == id);
        self.secrets
            .iter()
            .find(|s| has(s, local) && remote.is_some_and(|r| has(s, r)))
            .or_else(|| self.secrets.iter().find(|s| has(s, local) || remote.is_some_and(|r| has(s, r))))
            .map(|s| &s.secret)
    }

    /// A connection by name.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }
}

// ---------------------------------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    connections: BTreeMap<String, S<RawConnection>>,
    #[serde(default)]
    secrets: RawSecrets,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    #[serde(default)]
    listen: Vec<S<String>>,
    ike_port: Option<S<u16>>,
    natt_port: Option<S<u16>>,
    socket: Option<S<String>>,
    tun: Option<S<String>>,
    replay_window: Option<S<u32>>,
    keepalive: Option<S<String>>,
    offload: Option<bool>,
    log: Option<S<String>>,
    retransmit_timeout: Option<S<String>>,
    retransmit_base: Option<S<f64>>,
    retransmit_tries: Option<S<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    #[serde(default)]
    local_addrs: Vec<S<String>>,
    #[serde(default)]
    remote_addrs: Vec<S<String>>,
    #[serde(default)]
    proposals: Vec<S<String>>,
    encap: Option<bool>,
    dpd_delay: Option<S<String>>,
    dpd_action: Option<S<String>>,
    close_action: Option<S<String>>,
    rekey_time: Option<S<String>>,
    reauth_time: Option<S<String>>,
    over_time: Option<S<String>>,
    rand_time: Option<S<String>>,
    local: S<RawSide>,
    remote: S<RawSide>,
    #[serde(default)]
    children: BTreeMap<String, S<RawChild>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSide {
    auth: S<String>,
    id: Option<S<String>>,
    #[serde(default)]
    certs: Vec<S<String>>,
    key: Option<S<String>>,
    rsa_pss: Option<bool>,
    #[serde(default)]
    cacerts: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    #[serde(default)]
    local_ts: Vec<S<String>>,
    #[serde(default)]
    remote_ts: Vec<S<String>>,
    #[serde(default)]
    esp_proposals: Vec<S<String>>,
    start_action: Option<S<String>>,
    mode: Option<S<String>>,
    rekey_time: Option<S<String>>,
    life_time: Option<S<String>>,
    rand_time: Option<S<String>>,
    rekey_bytes: Option<S<toml::Value>>,
    life_bytes: Option<S<toml::Value>>,
    rekey_packets: Option<S<toml::Value>>,
    life_packets: Option<S<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    #[serde(default)]
    ike: Vec<S<RawSecret>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    ids: Vec<S<String>>,
    secret: S<String>,
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: core::ops::Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        let before = self.text.get(..span.start.min(self.text.len())).unwrap_or("");
        let line = before.matches('\n').count().saturating_add(1);
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()).saturating_add(1);
        ConfigError { file: self.file.to_path_buf(), line, column, key: key.to_owned(), message: message.into() }
    }
}

/// Parses and validates a configuration file's text; `file` is only for error messages.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ctx.err(span, "(file)", e.message().to_owned())
    })?;
    let daemon = daemon(&ctx, raw.daemon)?;
    let mut connections = Vec::new();
    for (name, c) in raw.connections {
        connections.push(connection(&ctx, &name, c)?);
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
    let config = Config { daemon, connections, secrets };
    for c in &config.connections {
        check_psk(&ctx, &config, c)?;
    }
    Ok(config)
}

/// Reads and parses a file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
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
        socket: d.socket.map_or_else(|| PathBuf::from("/run/oxswan/oxswan.sock"), |s| PathBuf::from(s.into_inner())),
        tun,
        replay_window: d.replay_window.map_or(1024, Spanned::into_inner),
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
        log: d.log.map_or_else(|| "info".to_owned(), Spanned::into_inner),
    })
}

/// A duration as strongSwan writes them: a number of seconds, or with `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).map(Duration::from_secs)
}

fn duration(ctx: &Ctx<'_>, v: Option<S<String>>, key: &str) -> Result<Option<Duration>, ConfigError> {
    v.map(|v| {
        parse_duration(v.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
            ctx.err(v.span(), key, format!("`{}` is not a duration such as 30s, 15m, 4h, 1d", v.get_ref()))
        })
    })
    .transpose()
}

/// strongSwan's default rekey times: 4h for IKE SAs, 1h for CHILD SAs.
pub const IKE_REKEY_TIME: Duration = Duration::from_secs(4 * 3600);
/// See [`IKE_REKEY_TIME`].
pub const CHILD_REKEY_TIME: Duration = Duration::from_secs(3600);

/// A rekey or life time: `default` when absent, never when `0`.
fn lifetime(
    ctx: &Ctx<'_>,
    v: Option<S<String>>,
    key: &str,
    default: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    match span_of_time(ctx, v, key)? {
        None => Ok(default),
        Some(d) => Ok((!d.is_zero()).then_some(d)),
    }
}

/// A duration that may be zero (`rand_time`, `over_time`).
fn span_of_time(ctx: &Ctx<'_>, v: Option<S<String>>, key: &str) -> Result<Option<Duration>, ConfigError> {
    v.map(|v| {
        parse_duration(v.get_ref()).ok_or_else(|| {
            ctx.err(v.span(), key, format!("`{}` is not a duration such as 30s, 15m, 4h, 1d", v.get_ref()))
        })
    })
    .transpose()
}

/// An amount of octets or packets: an integer, or a string with a k, M or G suffix (powers of 1024,
/// as strongSwan reads them).
pub fn parse_volume(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, factor) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (s.get(..i)?, 1u64 << 10),
        Some((i, 'm' | 'M')) => (s.get(..i)?, 1 << 20),
        Some((i, 'g' | 'G')) => (s.get(..i)?, 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(factor)
}

fn volume(ctx: &Ctx<'_>, v: Option<S<toml::Value>>, key: &str) -> Result<Option<u64>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let parsed = match v.get_ref() {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => parse_volume(s),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        ctx.err(v.span(), key, format!("{} is not an amount such as 1000, \"500M\" or \"2G\"", describe(v.get_ref())))
    })
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => format!("`{s}`"),
        other => format!("a {}", other.type_str()),
    }
}

/// An identity with strongSwan's rules: an IP address is ID_IPV4/IPV6_ADDR, `@x` forces ID_FQDN `x`,
/// a name with `@` is ID_RFC822_ADDR, one with `=` a DN, anything else ID_FQDN; `%any` is `None`.
pub fn parse_identity(s: &str) -> Result<Option<Identity>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty identity".into());
    }
    if s == "%any" {
        return Ok(None);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Some(match ip {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }));
    }
    if let Some(fqdn) = s.strip_prefix('@') {
        return Ok(Some(Identity::Fqdn(fqdn.to_owned())));
    }
    if s.contains('=') {
        return parse_dn(s).map(|der| Some(Identity::Dn(der)));
    }
    if !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("`{s}` has spaces or characters outside printable ASCII"));
    }
    Ok(Some(if s.contains('@') { Identity::Email(s.to_owned()) } else { Identity::Fqdn(s.to_owned()) }))
}

/// A distinguished name as strongSwan writes it, `C=CH, O=Example, CN=vpn.example.com` (attributes
/// in the order of the certificate's subject, `\,` for a literal comma), DER-encoded with one
/// attribute per RDN and UTF8String values as strongSwan does (IA5String for `E` and `DC`). The
/// engine compares DNs by attribute value, so this matches a certificate that uses PrintableString.
pub fn parse_dn(s: &str) -> Result<Vec<u8>, String> {
    // Attribute types by the names strongSwan accepts (RFC 4519 and PKCS #9 OIDs, DER body).
    const TYPES: &[(&str, &[u8])] = &[
        ("C", &[0x55, 0x04, 0x06]),
        ("ST", &[0x55, 0x04, 0x08]),
        ("L", &[0x55, 0x04, 0x07]),
        ("O", &[0x55, 0x04, 0x0a]),
        ("OU", &[0x55, 0x04, 0x0b]),
        ("CN", &[0x55, 0x04, 0x03]),
        ("SN", &[0x55, 0x04, 0x04]),
        ("serialNumber", &[0x55, 0x04, 0x05]),
        ("T", &[0x55, 0x04, 0x0c]),
        ("G", &[0x55, 0x04, 0x2a]),
        ("E", &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        ("emailAddress", &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        ("DC", &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]),
        ("UID", &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01]),
    ];
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next().ok_or("a DN may not end with `\\`")?),
            ',' => parts.push(core::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut rdns = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("`{part}` in a DN is not TYPE=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let oid = TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(key)).map(|(_, o)| *o).ok_or_else(|| {
            format!("`{key}` is not a DN attribute type oxswan knows (C, ST, L, O, OU, CN, E, DC, ...)")
        })?;
        if value.is_empty() {
            return Err(format!("`{key}=` has no value"));
        }
        let tag = if matches!(key.to_ascii_uppercase().as_str(), "E" | "EMAILADDRESS" | "DC") { 0x16 } else { 0x0c };
        let atv = [der_tlv(0x06, oid), der_tlv(tag, value.as_bytes())].concat();
        rdns.extend(der_tlv(0x31, &der_tlv(0x30, &atv)));
    }
    if rdns.is_empty() {
        return Err("empty DN".into());
    }
    Ok(der_tlv(0x30, &rdns))
}

/// One DER TLV (definite length, short or long form).
fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let len = body.len();
    if len < 0x80 {
        v.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend(bytes);
    }
    v.extend_from_slice(body);
    v
}

fn identity(ctx: &Ctx<'_>, v: &S<String>, key: &str) -> Result<Option<Identity>, ConfigError> {
    parse_identity(v.get_ref()).map_err(|m| ctx.err(v.span(), key, m))
}

/// A traffic selector: `dynamic`, an address, or `address/prefix`.
pub fn parse_ts(s: &str) -> Result<TsConfig, String> {
    let s = s.trim();
    if s == "dynamic" {
        return Ok(TsConfig::Dynamic);
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not `dynamic`, an address or a subnet"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len {
        Some(l) => l.parse().ok().filter(|l| *l <= max).ok_or_else(|| format!("`{s}`: prefix length 0 to {max}"))?,
        None => max,
    };
    TrafficSelector::from_prefix(ip, len, 0, 0, u16::MAX).map(TsConfig::Selector).ok_or_else(|| format!("`{s}`"))
}

fn side(
    ctx: &Ctx<'_>,
    key: &str,
    s: S<RawSide>,
    local: bool,
) -> Result<(AuthKind, Option<Identity>, RawSide), ConfigError> {
    let span = s.span();
    let s = s.into_inner();
    let auth = match s.auth.get_ref().as_str() {
        "psk" => AuthKind::Psk,
        "pubkey" => AuthKind::Pubkey,
        other => {
            return Err(ctx.err(
                s.auth.span(),
                &format!("{key}.auth"),
                format!("`{other}`: use psk or pubkey (EAP comes later)"),
            ));
        }
    };
    let id = s.id.as_ref().map(|i| identity(ctx, i, &format!("{key}.id"))).transpose()?.flatten();
    if local && id.is_none() && auth == AuthKind::Psk {
        return Err(ctx.err(span, &format!("{key}.id"), "a PSK needs our identity"));
    }
    if local && auth == AuthKind::Pubkey && (s.certs.is_empty() || s.key.is_none()) {
        return Err(ctx.err(span, key, "auth = \"pubkey\" needs `certs` and `key`"));
    }
    if !local && auth == AuthKind::Pubkey && s.cacerts.is_empty() {
        return Err(ctx.err(span, &format!("{key}.cacerts"), "auth = \"pubkey\" needs the CA certificates to trust"));
    }
    Ok((auth, id, s))
}

fn connection(ctx: &Ctx<'_>, name: &str, c: S<RawConnection>) -> Result<Connection, ConfigError> {
    let key = format!("connections.{name}");
    let span = c.span();
    let c = c.into_inner();
    let addrs = |v: &[S<String>], k: &str| -> Result<Vec<IpAddr>, ConfigError> {
        v.iter()
            .filter(|a| a.get_ref() != "%any")
            .map(|a| {
                a.get_ref().parse().map_err(|_| ctx.err(a.span(), &format!("{key}.{k}"), "not an IP address or %any"))
            })
            .collect()
    };
    let proposals = |v: &[S<String>], k: &str, ike: bool| -> Result<Vec<Proposal>, ConfigError> {
        v.iter()
            .flat_map(|p| p.get_ref().split(',').map(move |s| (p.span(), s.trim().to_owned())))
            .enumerate()
            .map(|(i, (sp, s))| {
                let parsed = if ike { parse_ike_proposal(&s) } else { parse_esp_proposal(&s) };
                let mut p = parsed.map_err(|e| ctx.err(sp.clone(), &format!("{key}.{k}"), e.to_string()))?;
                refuse_additional_ke(&p, &s, ike).map_err(|m| ctx.err(sp, &format!("{key}.{k}"), m))?;
                p.number = u8::try_from(i + 1).unwrap_or(u8::MAX);
                Ok(p)
            })
            .collect()
    };
    let mut ike = proposals(&c.proposals, "proposals", true)?;
    if ike.is_empty() {
        ike = oxswan_crypto::proposal::parse_ike_proposals("default")
            .map_err(|e| ctx.err(span.clone(), &key, e.to_string()))?;
    }
    let (lauth, lid, lraw) = side(ctx, &format!("{key}.local"), c.local, true)?;
    let (rauth, rid, rraw) = side(ctx, &format!("{key}.remote"), c.remote, false)?;
    let mut children = Vec::new();
    for (cname, ch) in c.children {
        let ckey = format!("{key}.children.{cname}");
        let ch = ch.into_inner();
        let ts = |v: &[S<String>], k: &str| -> Result<Vec<TsConfig>, ConfigError> {
            if v.is_empty() {
                return Ok(vec![TsConfig::Dynamic]);
            }
            v.iter().map(|t| parse_ts(t.get_ref()).map_err(|m| ctx.err(t.span(), &format!("{ckey}.{k}"), m))).collect()
        };
        let mut esp = proposals(&ch.esp_proposals, &format!("children.{cname}.esp_proposals"), false)?;
        if esp.is_empty() {
            esp = oxswan_crypto::proposal::parse_esp_proposals("default")
                .map_err(|e| ctx.err(0..0, &ckey, e.to_string()))?;
        }
        let start_action = match ch.start_action.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("none", _)) => StartAction::None,
            Some(("start", _)) => StartAction::Start,
            Some(("trap", _)) => StartAction::Trap,
            Some((other, sp)) => {
                return Err(ctx.err(
                    sp,
                    &format!("{ckey}.start_action"),
                    format!("`{other}`: use none, start or trap"),
                ));
            }
        };
        let mode = match ch.mode.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
            None | Some(("tunnel", _)) => Mode::Tunnel,
            Some(("transport", _)) => Mode::Transport,
            Some((other, sp)) => {
                return Err(ctx.err(sp, &format!("{ckey}.mode"), format!("`{other}`: use tunnel or transport")));
            }
        };
        let rekey_time = lifetime(ctx, ch.rekey_time, &format!("{ckey}.rekey_time"), Some(CHILD_REKEY_TIME))?;
        let rekey_bytes = volume(ctx, ch.rekey_bytes, &format!("{ckey}.rekey_bytes"))?.unwrap_or(0);
        let rekey_packets = volume(ctx, ch.rekey_packets, &format!("{ckey}.rekey_packets"))?.unwrap_or(0);
        children.push(Child {
            name: cname,
            local_ts: ts(&ch.local_ts, "local_ts")?,
            remote_ts: ts(&ch.remote_ts, "remote_ts")?,
            esp_proposals: esp,
            start_action,
            mode,
            rekey_time,
            life_time: lifetime(
                ctx,
                ch.life_time,
                &format!("{ckey}.life_time"),
                rekey_time.map(|r| r.saturating_add(r / 10)),
            )?,
            rand_time: span_of_time(ctx, ch.rand_time, &format!("{ckey}.rand_time"))?,
            rekey_bytes,
            life_bytes: volume(ctx, ch.life_bytes, &format!("{ckey}.life_bytes"))?
                .unwrap_or(rekey_bytes.saturating_add(rekey_bytes / 10)),
            rekey_packets,
            life_packets: volume(ctx, ch.life_packets, &format!("{ckey}.life_packets"))?
                .unwrap_or(rekey_packets.saturating_add(rekey_packets / 10)),
        });
    }
    let remote_addrs = addrs(&c.remote_addrs, "remote_addrs")?;
    if remote_addrs.is_empty() && children.iter().any(|c| c.start_action != StartAction::None) {
        return Err(ctx.err(
            span,
            &format!("{key}.remote_addrs"),
            "a child with start_action start or trap needs a remote address",
        ));
    }
    Ok(Connection {
        name: name.to_owned(),
        local_addrs: addrs(&c.local_addrs, "local_addrs")?,
        remote_addrs,
        proposals: ike,
        encap: c.encap.unwrap_or(false),
        dpd_delay: duration(ctx, c.dpd_delay, &format!("{key}.dpd_delay"))?,
        dpd_action: action(ctx, c.dpd_action.as_ref(), &format!("{key}.dpd_action"), "clear")?,
        close_action: action(ctx, c.close_action.as_ref(), &format!("{key}.close_action"), "none")?,
        rekey_time: lifetime(ctx, c.rekey_time, &format!("{key}.rekey_time"), Some(IKE_REKEY_TIME))?,
        reauth_time: lifetime(ctx, c.reauth_time, &format!("{key}.reauth_time"), None)?,
        over_time: span_of_time(ctx, c.over_time, &format!("{key}.over_time"))?,
        rand_time: span_of_time(ctx, c.rand_time, &format!("{key}.rand_time"))?,
        local: LocalSide {
            auth: lauth,
            id: lid,
            certs: lraw.certs.into_iter().map(|p| PathBuf::from(p.into_inner())).collect(),
            key: lraw.key.map(|p| PathBuf::from(p.into_inner())),
            rsa_pss: lraw.rsa_pss.unwrap_or(false),
        },
        remote: RemoteSide {
            auth: rauth,
            id: rid,
            cacerts: rraw.cacerts.into_iter().map(|p| PathBuf::from(p.into_inner())).collect(),
        },
        children,
    })
}

/// Refuses a proposal with additional key exchanges (RFC 9370 ADDKE transforms, `ke1_`..`ke7_`,
/// `keN_none` included). oxswan-crypto parses them, but the engine has neither IKE_INTERMEDIATE
/// (RFC 9242), which carries them when an IKE SA is set up, nor IKE_FOLLOWUP_KE (RFC 9370 §2.2.4),
/// which carries them in CREATE_CHILD_SA: only the first key exchange would be made, and the one the
/// proposal adds (typically the post-quantum ML-KEM) silently dropped. `text` is the proposal as
/// written, for the message.
fn refuse_additional_ke(p: &Proposal, text: &str, ike: bool) -> Result<(), String> {
    if !p.transforms.iter().any(|t| t.transform_type.additional_ke_index().is_some()) {
        return Ok(());
    }
    let mut words: Vec<String> = Vec::new();
    for w in text.split('-').map(str::trim) {
        let quoted = format!("'{w}'");
        if lookup_keyword(w).is_some_and(|t| t.transform_type.additional_ke_index().is_some())
            && !words.contains(&quoted)
        {
            words.push(quoted);
        }
    }
    let what = if words.is_empty() { "an additional key exchange".to_owned() } else { words.join(", ") };
    let exchange = if ike {
        "need IKE_INTERMEDIATE (RFC 9242/9370)"
    } else {
        "in an ESP proposal need IKE_FOLLOWUP_KE (RFC 9370)"
    };
    Err(format!(
        "{what} in proposal '{text}': additional key exchanges (ke1_…ke7_) {exchange}, which oxswan does not \
         implement yet"
    ))
}

/// `clear`/`none`, `restart`/`start` or `trap`: strongSwan's words for the two actions.
fn action(ctx: &Ctx<'_>, v: Option<&S<String>>, key: &str, off: &str) -> Result<PeerAction, ConfigError> {
    let on = if off == "clear" { "restart" } else { "start" };
    match v.map(|v| (v.get_ref().as_str(), v.span())) {
        None => Ok(PeerAction::Clear),
        Some((w, _)) if w == off => Ok(PeerAction::Clear),
        Some((w, _)) if w == on => Ok(PeerAction::Restart),
        Some(("trap", _)) => Ok(PeerAction::Trap),
        Some((other, span)) => Err(ctx.err(span, key, format!("`{other}`: use {off}, {on} or trap"))),
    }
}

fn check_psk(ctx: &Ctx<'_>, config: &Config, c: &Connection) -> Result<(), ConfigError> {
    if c.local.auth != AuthKind::Psk && c.remote.auth != AuthKind::Psk {
        return Ok(());
    }
    let Some(local) = &c.local.id else { return Ok(()) };
    if config.psk_for(local, c.remote.id.as_ref()).is_none() {
        let at = ctx.text.find(&format!("[connections.{}", c.name)).unwrap_or(0);
        return Err(ctx.err(at..at, &format!("connections.{}", c.name), "no [[secrets.ike]] entry for its identities"));
    }
    Ok(())
}
