//! What a load test does: the targets, the clients and how they authenticate, and the limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use oxswan_crypto::Secret;
use oxswan_ike::cert::{LocalCert, TrustStore};
use oxswan_ike::child::{ChildConfig, Mode, TsConfig};
use oxswan_ike::config::EapClient;
use oxswan_ike::{LocalAuth, NAT_T_PORT, PeerConfig, RemoteAuth, Retransmit};
use oxswan_wire::Identity;
use oxswan_wire::sa::Proposal;
use oxswan_wire::ts::TrafficSelector;

use crate::LoadError;

/// The most source addresses one run takes (a /16 of IPv4): each is a socket per driver thread.
const MAX_SOURCES: usize = 65_536;
/// The most clients one run takes: each is an endpoint held until the end, some kilobytes.
const MAX_CLIENTS: usize = 1_000_000;
/// The most driver threads.
const MAX_THREADS: usize = 64;
/// The most echo requests per client.
const MAX_PINGS: u16 = 1_000;

/// How the clients prove who they are.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A pre-shared key (RFC 7296 §2.15).
    Psk(Secret),
    /// One certificate and key for every client (the gateway must let one identity hold many IKE
    /// SAs: `unique = never`).
    Cert(Arc<LocalCert>),
    /// EAP (MSCHAPv2 or MD5, whatever the gateway asks, RFC 7296 §2.16); `user` may hold `{n}`,
    /// the client's number, and every user has `password`.
    Eap {
        /// The EAP identity pattern.
        user: String,
        /// The users' password.
        password: Secret,
    },
}

/// How the clients check the gateway.
#[derive(Debug, Clone)]
pub enum GatewayAuth {
    /// The same pre-shared key.
    Psk(Secret),
    /// A certificate chaining to one of these CAs (whose identity is `remote_id`, if set).
    Cert(TrustStore),
}

/// A load test.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The gateways; client `n` goes to `targets[n % len]`. Nothing is sent to any other address.
    pub targets: Vec<SocketAddr>,
    /// How many clients in all.
    pub clients: usize,
    /// How many handshakes at most in flight at once.
    pub in_flight: usize,
    /// Where the clients come from (client `n` from `sources[n % len]`); addresses of this host.
    pub sources: Vec<IpAddr>,
    /// The clients' identity; `{n}` is replaced with the client's number (strongSwan's rules: an
    /// IP address, `@fqdn`, `user@fqdn`, a DN with `=`, anything else an FQDN).
    pub identity: String,
    /// The gateway's identity, if the clients insist on one.
    pub remote_id: Option<Identity>,
    /// How the clients authenticate.
    pub auth: Auth,
    /// How they check the gateway.
    pub gateway: GatewayAuth,
    /// IKE proposals (strongSwan's notation, parsed).
    pub ike_proposals: Vec<Proposal>,
    /// ESP proposals.
    pub esp_proposals: Vec<Proposal>,
    /// The gateway's side of the CHILD SA; ours is `dynamic` (our address, or the virtual IP).
    pub remote_ts: Vec<TrafficSelector>,
    /// Ask for an IPv4 virtual IP (RFC 7296 §3.15), as road warriors do.
    pub virtual_ip: bool,
    /// A handshake not complete after this long fails (the engine gives up on its own after its
    /// retransmissions, RFC 7296 §2.1; this bounds it sooner).
    pub timeout: Duration,
    /// At most this many new handshakes per second, all threads together; `None`: as fast as
    /// `in_flight` allows.
    pub rate: Option<f64>,
    /// Keep the clients up this long after the last handshake ended.
    pub hold: Duration,
    /// Delete the clients' IKE SAs at the end (otherwise they are dropped silently, and the gateway
    /// finds out by dead peer detection, RFC 7296 §2.4).
    pub delete: bool,
    /// Driver threads.
    pub threads: usize,
    /// The whole run ends after this long, whatever is left.
    pub max_time: Duration,
    /// Once its CHILD SA is up, each client pings this address through it: ICMP echo requests
    /// from its virtual IP (or its own address) sealed in ESP in UDP by the load tool itself
    /// (RFC 4303, RFC 3948), and the replies opened and checked. The clients then force UDP
    /// encapsulation (as strongSwan's `encap = yes`), so ESP goes to the targets' port 4500.
    pub ping: Option<Ipv4Addr>,
    /// Echo requests per client.
    pub pings: u16,
    /// Between one client's echo requests.
    pub ping_interval: Duration,
    /// How long a client waits for replies after its last request.
    pub ping_wait: Duration,
}

impl Plan {
    /// A plan with oxswan's defaults: one client, one in flight, `aes256gcm16-prfsha256-x25519`, ESP
    /// `aes256gcm16`, everything through the tunnel (`0.0.0.0/0`), a virtual IP asked for.
    pub fn new(targets: Vec<SocketAddr>, sources: Vec<IpAddr>, auth: Auth, gateway: GatewayAuth) -> Self {
        let all = TrafficSelector::from_prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0, 0, u16::MAX);
        Self {
            targets,
            clients: 1,
            in_flight: 1,
            sources,
            identity: "load{n}.oxswan.test".into(),
            remote_id: None,
            auth,
            gateway,
            ike_proposals: oxswan_crypto::proposal::parse_ike_proposals("aes256gcm16-prfsha256-x25519")
                .unwrap_or_default(),
            esp_proposals: oxswan_crypto::proposal::parse_esp_proposals("aes256gcm16").unwrap_or_default(),
            remote_ts: all.into_iter().collect(),
            virtual_ip: true,
            timeout: Duration::from_secs(30),
            rate: None,
            hold: Duration::ZERO,
            delete: true,
            threads: 1,
            max_time: Duration::from_secs(600),
            ping: None,
            pings: 3,
            ping_interval: Duration::from_millis(200),
            ping_wait: Duration::from_secs(3),
        }
    }

    /// Refuses what cannot be run, naming what is wrong.
    pub fn check(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::Plan(m));
        if self.targets.is_empty() {
            return bad("no target: name the gateway(s) to test".into());
        }
        for t in &self.targets {
            refuse_target(t.ip())?;
            if t.port() == 0 {
                return bad(format!("target {t}: port 0"));
            }
        }
        if self.sources.is_empty() {
            return bad("no source address".into());
        }
        if self.sources.len() > MAX_SOURCES {
            return bad(format!("{} source addresses: at most {MAX_SOURCES}", self.sources.len()));
        }
        let v6 = self.targets.iter().any(|t| t.is_ipv6());
        if self.targets.iter().any(|t| t.is_ipv6() != v6) || self.sources.iter().any(|s| s.is_ipv6() != v6) {
            return bad("targets and sources must all be IPv4 or all IPv6".into());
        }
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return bad(format!("clients: {} (1 to {MAX_CLIENTS})", self.clients));
        }
        if self.in_flight == 0 {
            return bad("in-flight: at least 1".into());
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return bad(format!("threads: {} (1 to {MAX_THREADS})", self.threads));
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("rate: a positive number of handshakes per second".into());
        }
        if self.ike_proposals.is_empty() || self.esp_proposals.is_empty() {
            return bad("no IKE or ESP proposal".into());
        }
        if self.timeout.is_zero() || self.max_time.is_zero() {
            return bad("timeout and max-time must be above zero".into());
        }
        if self.remote_ts.is_empty() {
            return bad("no remote traffic selector".into());
        }
        if let Auth::Eap { user, .. } = &self.auth
            && user.is_empty()
        {
            return bad("EAP user: empty".into());
        }
        if let Some(a) = self.ping {
            if v6 {
                return bad("ping: IPv4 only, and the targets are IPv6".into());
            }
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
                return bad(format!("ping {a}: not a host's address"));
            }
            // ESP in UDP and IKE share a port only behind the non-ESP marker, which is used on
            // port 4500 (RFC 3948 §2.2); a target on 500 is left for 4500 (RFC 7296 §2.23).
            if let Some(t) = self.targets.iter().find(|t| t.port() != 500 && t.port() != NAT_T_PORT) {
                return bad(format!("ping: target {t}: ESP in UDP needs the gateway on port 500 or 4500"));
            }
            if self.pings == 0 || self.pings > MAX_PINGS {
                return bad(format!("pings: {} (1 to {MAX_PINGS})", self.pings));
            }
            if self.ping_interval.is_zero() || self.ping_interval > Duration::from_secs(1) {
                return bad("ping interval: above zero, at most a second".into());
            }
        }
        self.identity_of(0).map(|_| ())
    }

    /// Client `n`'s IKE identity.
    pub fn identity_of(&self, n: usize) -> Result<Identity, LoadError> {
        let s = self.identity.replace("{n}", &n.to_string());
        match oxswan_config::parse_identity(&s) {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(LoadError::Plan(format!("identity `{s}`: a client needs an identity of its own"))),
            Err(e) => Err(LoadError::Plan(format!("identity `{s}`: {e}"))),
        }
    }

    /// The connection of client `n`, with the EAP user it runs as (if any).
    pub(crate) fn peer(&self, n: usize) -> Result<(PeerConfig, Option<String>), LoadError> {
        let (local_auth, eap_user) = match &self.auth {
            Auth::Psk(k) => (LocalAuth::Psk(k.clone()), None),
            Auth::Cert(c) => (LocalAuth::Cert(c.clone()), None),
            Auth::Eap { user, .. } => {
                let u = user.replace("{n}", &n.to_string());
                (LocalAuth::Eap(EapClient { identity: Some(u.clone()), methods: Vec::new(), tls: None }), Some(u))
            }
        };
        let remote_auth = match &self.gateway {
            GatewayAuth::Psk(k) => RemoteAuth::Psk(k.clone()),
            GatewayAuth::Cert(t) => RemoteAuth::Cert(t.clone()),
        };
        let peer = PeerConfig {
            name: "load".into(),
            ike_proposals: self.ike_proposals.clone(),
            prefer_initiator: false,
            local_id: self.identity_of(n)?,
            remote_id: self.remote_id.clone(),
            local_auth,
            remote_auth,
            rsa_pss: false,
            children: vec![ChildConfig {
                per_cpu_sas: false,
                name: "load".into(),
                esp_proposals: self.esp_proposals.clone(),
                local_ts: vec![TsConfig::Dynamic],
                remote_ts: self.remote_ts.iter().map(|t| TsConfig::Selector(t.clone())).collect(),
                mode: Mode::Tunnel,
                lifetime: Default::default(),
                volume: Default::default(),
            }],
            retransmit: Retransmit::default(),
            ike_lifetime: Default::default(),
            // Each client is a device of its own: INITIAL_CONTACT (RFC 7296 §2.4) lets the gateway
            // drop what an earlier run left under the same identity.
            initial_contact: true,
            // ESP from the load tool goes in UDP (RFC 3948), on the socket the engine uses for
            // IKE: without a NAT, only faking one floats IKE to port 4500 and encapsulates ESP.
            force_encap: self.ping.is_some(),
            dpd_delay: None,
            pools: Vec::new(),
            vips: if self.virtual_ip { vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)] } else { Vec::new() },
            unique: Default::default(),
            fragmentation: true,
            tcp: oxswan_ike::TcpConfig::NO,
            // No MOBIKE: it would let the gateway name other addresses to send to (RFC 4555 §3.4).
            mobike: false,
            childless: Default::default(),
            ppk_id: None,
            ppk_required: false,
            redirect: None,
            resumption: false,
            remote_addrs: Vec::new(),
        };
        Ok((peer, eap_user))
    }
}

/// Addresses no load test may go to: nobody's gateway, or everybody's.
fn refuse_target(ip: IpAddr) -> Result<(), LoadError> {
    let why = match ip {
        IpAddr::V4(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("a broadcast address"),
        IpAddr::V4(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(a) if a.is_multicast() => Some("a multicast address"),
        _ => None,
    };
    match why {
        Some(w) => Err(LoadError::Plan(format!("target {ip} is {w}"))),
        None => Ok(()),
    }
}

/// A target as given on the command line: `ADDR` (port 500) or `ADDR:PORT` (`[V6]:PORT`).
pub fn parse_target(s: &str) -> Result<SocketAddr, LoadError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 500)).map_err(|_| {
        LoadError::Plan(format!("target `{s}`: an IP address, optionally with :PORT (names are not resolved)"))
    })
}

/// Source addresses as given: `ADDR`, `FIRST-LAST` or `NET/LEN` (IPv4 below /31 without the
/// network and broadcast addresses).
pub fn parse_sources(s: &str) -> Result<Vec<IpAddr>, LoadError> {
    let bad = |why: &str| LoadError::Plan(format!("source `{s}`: {why}"));
    let (first, last) = if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.trim().parse().map_err(|_| bad("not an address range"))?;
        let b: IpAddr = b.trim().parse().map_err(|_| bad("not an address range"))?;
        (a, b)
    } else if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().map_err(|_| bad("not a prefix"))?;
        let len: u32 = len.parse().map_err(|_| bad("not a prefix length"))?;
        let bits = if a.is_ipv4() { 32 } else { 128 };
        if len > bits {
            return Err(bad("prefix length too long"));
        }
        let host_bits = bits - len;
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        let net = to_u128(a) & mask;
        let top = net | !mask & (if bits == 32 { u128::from(u32::MAX) } else { u128::MAX });
        // An IPv4 subnet's first and last addresses are its network and broadcast (not for /31,
        // /32: RFC 3021).
        let (lo, hi) = if a.is_ipv4() && host_bits >= 2 { (net + 1, top - 1) } else { (net, top) };
        (from_u128(lo, a.is_ipv4()), from_u128(hi, a.is_ipv4()))
    } else {
        let a: IpAddr = s.trim().parse().map_err(|_| bad("not an address"))?;
        (a, a)
    };
    if first.is_ipv4() != last.is_ipv4() {
        return Err(bad("the range mixes IPv4 and IPv6"));
    }
    let (lo, hi) = (to_u128(first), to_u128(last));
    if hi < lo {
        return Err(bad("the range ends before it starts"));
    }
    if hi - lo >= MAX_SOURCES as u128 {
        return Err(bad(&format!("more than {MAX_SOURCES} addresses")));
    }
    Ok((lo..=hi).map(|v| from_u128(v, first.is_ipv4())).collect())
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))) } else { IpAddr::V6(v.into()) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn plan() -> Plan {
        let k = Secret::from_slice(b"k");
        Plan::new(
            vec!["192.0.2.1:500".parse().unwrap()],
            vec!["192.0.2.2".parse().unwrap()],
            Auth::Psk(k.clone()),
            GatewayAuth::Psk(k),
        )
    }

    #[test]
    fn sources_are_ranges_prefixes_or_addresses() {
        assert_eq!(parse_sources("10.0.0.1").unwrap(), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let r = parse_sources("10.0.0.254-10.0.1.1").unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[3], "10.0.1.1".parse::<IpAddr>().unwrap());
        let p = parse_sources("10.9.0.0/26").unwrap();
        assert_eq!((p.len(), p[0], p[61]), (62, "10.9.0.1".parse().unwrap(), "10.9.0.62".parse().unwrap()));
        assert_eq!(parse_sources("10.9.0.7/32").unwrap().len(), 1);
        assert_eq!(parse_sources("fd00::/120").unwrap().len(), 256);
        for bad in ["10.0.0.2-10.0.0.1", "10.0.0.0/8", "10.0.0.1-fd00::1", "x", "10.0.0.0/33", "fd00::/64"] {
            assert!(parse_sources(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_take_a_port_or_500() {
        assert_eq!(parse_target("192.0.2.1").unwrap(), "192.0.2.1:500".parse().unwrap());
        assert_eq!(parse_target("[2001:db8::1]:4500").unwrap(), "[2001:db8::1]:4500".parse().unwrap());
        assert!(parse_target("vpn.example.com").is_err());
    }

    #[test]
    fn unsafe_or_inconsistent_plans_are_refused_with_the_reason() {
        assert!(plan().check().is_ok());
        type Change = fn(&mut Plan);
        let cases: Vec<(Change, &str)> = vec![
            (|p| p.targets.clear(), "no target"),
            (|p| p.targets = vec!["255.255.255.255:500".parse().unwrap()], "broadcast"),
            (|p| p.targets = vec!["224.0.0.1:500".parse().unwrap()], "multicast"),
            (|p| p.targets = vec!["0.0.0.0:500".parse().unwrap()], "unspecified"),
            (|p| p.targets = vec!["[ff02::1]:500".parse().unwrap()], "multicast"),
            (|p| p.sources = vec!["2001:db8::1".parse().unwrap()], "must all be IPv4 or all IPv6"),
            (|p| p.clients = 0, "clients"),
            (|p| p.in_flight = 0, "in-flight"),
            (|p| p.threads = 65, "threads"),
            (|p| p.rate = Some(f64::NAN), "rate"),
            (|p| p.identity = "%any".into(), "identity of its own"),
            (|p| p.identity = "a b{n}".into(), "identity `a b0`"),
            (|p| p.ping = Some(Ipv4Addr::BROADCAST), "not a host's address"),
            (|p| p.ping = Some(Ipv4Addr::new(224, 0, 0, 1)), "not a host's address"),
            (
                |p| {
                    p.ping = Some(Ipv4Addr::new(10, 2, 0, 1));
                    p.pings = 0;
                },
                "pings: 0",
            ),
            (
                |p| {
                    p.ping = Some(Ipv4Addr::new(10, 2, 0, 1));
                    p.targets = vec!["[2001:db8::1]:500".parse().unwrap()];
                    p.sources = vec!["2001:db8::2".parse().unwrap()];
                },
                "IPv4 only",
            ),
            (
                |p| {
                    p.ping = Some(Ipv4Addr::new(10, 2, 0, 1));
                    p.targets = vec!["192.0.2.1:4501".parse().unwrap()];
                },
                "port 500 or 4500",
            ),
        ];
        for (change, want) in cases {
            let mut p = plan();
            change(&mut p);
            let e = p.check().unwrap_err().to_string();
            assert!(e.contains(want), "{e} should say {want}");
        }
    }

    #[test]
    fn each_client_has_its_own_identity_and_eap_user() {
        let mut p = plan();
        p.identity = "c{n}@load.test".into();
        p.auth = Auth::Eap { user: "user{n}".into(), password: Secret::from_slice(b"pw") };
        let (peer, user) = p.peer(41).unwrap();
        assert_eq!(peer.local_id, Identity::Email("c41@load.test".into()));
        assert_eq!(user.as_deref(), Some("user41"));
        assert!(!peer.mobike);
        assert_eq!(peer.vips.len(), 1);
        assert!(!peer.force_encap, "no ESP of ours, no need for UDP encapsulation");
        p.ping = Some(Ipv4Addr::new(10, 2, 0, 1));
        assert!(p.check().is_ok());
        assert!(p.peer(41).unwrap().0.force_encap, "ESP of ours goes in UDP");
    }
}
