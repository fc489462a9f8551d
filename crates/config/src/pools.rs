//! Remote access: `[pools.*]` (virtual IP addresses and the attributes sent with them, RFC 7296
//! §3.15), `[radius]` (RFC 3579, RFC 2866) and the client's `[daemon] dns`.

use core::fmt;
use core::net::IpAddr;
use core::time::Duration;
use std::collections::BTreeMap;

use oxswan_crypto::Secret;
use oxswan_pool::AddrRange;

use crate::raw::{RawPool, RawRadius, S};
use crate::values::{duration, span_of_time};
use crate::{ConfigError, Ctx};

/// How a client applies the DNS servers (and domains) the gateway sends it (`[daemon] dns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsMode {
    /// `auto`: `resolvectl` where systemd-resolved runs, else `/etc/resolv.conf`.
    #[default]
    Auto,
    /// `resolvectl`: per-link DNS servers and domains on the TUN device (systemd-resolved).
    Resolvectl,
    /// `resolv.conf`: rewrite `/etc/resolv.conf`, restored when the SA goes.
    ResolvConf,
    /// `none`: leave the system's DNS alone.
    None,
}

/// A subnet, `10.2.0.0/24`; the address is the network's (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length, up to 32 or 128.
    pub prefix: u8,
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A subnet, `10.2.0.0/24` or `fd00::/64`, or one address (`/32`, `/128`); host bits are cleared
/// (`10.2.0.5/24` is `10.2.0.0/24`).
pub fn parse_subnet(s: &str) -> Result<Subnet, String> {
    let s = s.trim();
    let (addr, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let ip: IpAddr = addr.trim().parse().map_err(|_| format!("`{s}` is not a subnet such as 10.2.0.0/24"))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(l) => Some(l.trim())
            .filter(|l| !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u8>().ok())
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("`{s}`: prefix length 0 to {max}"))?,
    };
    let addr = match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Ok(Subnet { addr, prefix })
}

/// One `[pools.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool's name, as connections' `pools` name it.
    pub name: String,
    /// The virtual IP addresses handed out.
    pub range: AddrRange,
    /// DNS servers sent with an address (`INTERNAL_IP4_DNS`, `INTERNAL_IP6_DNS`), either family.
    pub dns: Vec<IpAddr>,
    /// Subnets reachable through the tunnel (`INTERNAL_IP4_SUBNET`, `INTERNAL_IP6_SUBNET`), for
    /// clients that route only these (split tunnelling).
    pub split_include: Vec<Subnet>,
    /// DNS domains to resolve through the tunnel's servers (`INTERNAL_DNS_DOMAIN`, RFC 8598).
    pub dns_domains: Vec<String>,
    /// How long a lease stays reserved for its identity at least after its last IKE SA went, before
    /// a full pool may give it to another identity (default [`DEFAULT_GRACE`]).
    pub grace: Duration,
}

/// The default grace time of a pool's offline leases: none. As in strongSwan, a full pool gives an
/// offline lease to a new identity at once (here the one offline the longest); while the pool has
/// addresses never handed out, offline leases stay with their identities whatever the grace time.
pub const DEFAULT_GRACE: Duration = Duration::ZERO;

/// `[radius]`: the RADIUS servers for `eap-radius` (RFC 3579) and accounting (RFC 2866).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Radius {
    /// The servers: the first is the primary, the others are tried in order when it does not answer.
    pub servers: Vec<RadiusServer>,
    /// Send Accounting-Request Start and Stop for each client's IKE SA (RFC 2866).
    pub accounting: bool,
    /// With `accounting`: Interim-Update this often (RFC 2869 §2.1); `None`: none.
    pub interim: Option<Duration>,
    /// How long to wait for an answer before sending again (default 2s).
    pub timeout: Duration,
    /// How often to send a request to one server before the next is tried (default 3).
    pub tries: u32,
    /// The NAS-Identifier attribute (RFC 2865 §5.32) of every request (default `oxswan`).
    pub nas_identifier: String,
}

/// One `[[radius.servers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusServer {
    /// The server's address.
    pub address: IpAddr,
    /// Its authentication port (default 1812).
    pub auth_port: u16,
    /// Its accounting port (default 1813).
    pub acct_port: u16,
    /// The shared secret (RFC 2865 §3).
    pub secret: Secret,
}

pub(crate) fn dns_mode(ctx: &Ctx<'_>, v: Option<S<String>>) -> Result<DnsMode, ConfigError> {
    let Some(v) = v else { return Ok(DnsMode::Auto) };
    Ok(match v.get_ref().as_str() {
        "auto" => DnsMode::Auto,
        "resolvectl" => DnsMode::Resolvectl,
        "resolv.conf" => DnsMode::ResolvConf,
        "none" => DnsMode::None,
        other => {
            return Err(ctx.err(
                v.span(),
                "daemon.dns",
                format!("`{other}`: use auto, resolvectl, resolv.conf or none"),
            ));
        }
    })
}

/// A DNS domain as `INTERNAL_DNS_DOMAIN` carries it (RFC 8598 §4: a name, no wildcard): labels of
/// letters, digits, `-` and `_`, 1 to 63 octets each, 253 at most in all; a trailing dot is dropped.
fn domain(s: &str) -> Option<String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)).then(|| name.to_owned())
}

pub(crate) fn pools(ctx: &Ctx<'_>, raw: BTreeMap<String, S<RawPool>>) -> Result<Vec<PoolConfig>, ConfigError> {
    let mut out: Vec<PoolConfig> = Vec::new();
    for (name, p) in raw {
        let key = format!("pools.{name}");
        let p = p.into_inner();
        let range = AddrRange::parse(p.addrs.get_ref()).map_err(|e| {
            let message = match e {
                oxswan_pool::PoolError::BadRange(m) => m,
                other => other.to_string(),
            };
            ctx.err(p.addrs.span(), &format!("{key}.addrs"), message)
        })?;
        if let Some(other) = out.iter().find(|o| o.range.overlaps(&range)) {
            return Err(ctx.err(
                p.addrs.span(),
                &format!("{key}.addrs"),
                format!("{range} overlaps pool {} ({})", other.name, other.range),
            ));
        }
        let dns = p
            .dns
            .iter()
            .map(|a| {
                a.get_ref().trim().parse().map_err(|_| {
                    ctx.err(a.span(), &format!("{key}.dns"), format!("`{}` is not an IP address", a.get_ref()))
                })
            })
            .collect::<Result<_, _>>()?;
        let split_include = p
            .split_include
            .iter()
            .map(|s| parse_subnet(s.get_ref()).map_err(|m| ctx.err(s.span(), &format!("{key}.split_include"), m)))
            .collect::<Result<_, _>>()?;
        let dns_domains = p
            .dns_domains
            .iter()
            .map(|d| {
                domain(d.get_ref()).ok_or_else(|| {
                    ctx.err(d.span(), &format!("{key}.dns_domains"), format!("`{}` is not a domain name", d.get_ref()))
                })
            })
            .collect::<Result<_, _>>()?;
        let grace = span_of_time(ctx, p.grace, &format!("{key}.grace"))?.unwrap_or(DEFAULT_GRACE);
        out.push(PoolConfig { name, range, dns, split_include, dns_domains, grace });
    }
    Ok(out)
}

pub(crate) fn radius(ctx: &Ctx<'_>, raw: Option<S<RawRadius>>) -> Result<Option<Radius>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.span();
    let r = raw.into_inner();
    if r.servers.is_empty() {
        return Err(ctx.err(span, "radius.servers", "names no server; add [[radius.servers]]"));
    }
    let mut servers = Vec::new();
    for (i, s) in r.servers.into_iter().enumerate() {
        let key = format!("radius.servers[{i}]");
        let s = s.into_inner();
        let address = s.address.get_ref().trim().parse().map_err(|_| {
            ctx.err(
                s.address.span(),
                &format!("{key}.address"),
                format!("`{}` is not an IP address", s.address.get_ref()),
            )
        })?;
        let port = |p: Option<S<u16>>, default: u16, k: &str| match p {
            Some(p) if *p.get_ref() == 0 => Err(ctx.err(p.span(), &format!("{key}.{k}"), "port 0")),
            Some(p) => Ok(p.into_inner()),
            None => Ok(default),
        };
        let (auth_port, acct_port) = (port(s.auth_port, 1812, "auth_port")?, port(s.acct_port, 1813, "acct_port")?);
        if s.secret.get_ref().is_empty() {
            return Err(ctx.err(s.secret.span(), &format!("{key}.secret"), "empty secret"));
        }
        servers.push(RadiusServer {
            address,
            auth_port,
            acct_port,
            secret: Secret::from_slice(s.secret.get_ref().as_bytes()),
        });
    }
    let interim = match r.interim {
        // RFC 2869 §5.16: Acct-Interim-Interval SHOULD NOT be less than 60 seconds.
        Some(v) => match duration(ctx, Some(v.clone()), "radius.interim")? {
            Some(d) if d < Duration::from_secs(60) => {
                return Err(ctx.err(v.span(), "radius.interim", "at least 60s (RFC 2869 §5.16)"));
            }
            d => d,
        },
        None => None,
    };
    let tries = match r.tries {
        Some(t) if !(1..=10).contains(t.get_ref()) => {
            return Err(ctx.err(t.span(), "radius.tries", "1 to 10 tries per server"));
        }
        Some(t) => t.into_inner(),
        None => 3,
    };
    let nas_identifier = match r.nas_identifier {
        Some(n) if n.get_ref().is_empty() || n.get_ref().len() > 253 => {
            return Err(ctx.err(n.span(), "radius.nas_identifier", "1 to 253 octets (RFC 2865 §5.32)"));
        }
        Some(n) => n.into_inner(),
        None => "oxswan".to_owned(),
    };
    Ok(Some(Radius {
        servers,
        accounting: r.accounting.unwrap_or(false),
        interim,
        timeout: duration(ctx, r.timeout, "radius.timeout")?.unwrap_or(Duration::from_secs(2)),
        tries,
        nas_identifier,
    }))
}
