//! `[cluster]`: several gateways run as one, with their state in etcd. Without the table oxswan runs
//! alone. What the cluster does is the daemon's (docs/cluster.md); this is the table's text, checked.

use core::time::Duration;
use std::path::PathBuf;

use crate::raw::{RawCluster, S};
use crate::values::duration;
use crate::{ConfigError, Ctx, gateway};

/// `[cluster]`: this node's part in a cluster of gateways that share etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The etcd endpoints, as written (`http://HOST:PORT` or `https://HOST:PORT`) less a trailing
    /// `/`.
    pub etcd: Vec<String>,
    /// This node's name among the cluster's.
    pub node: String,
    /// The TTL of this node's etcd lease (default 10s).
    pub ttl: Duration,
    /// The prefix of the cluster's etcd keys (default `/oxswan`), with no trailing `/`.
    pub prefix: String,
    /// Where clients reach this gateway: what the other nodes name in N(REDIRECT) (RFC 5685) when
    /// they send clients here. A node without it is never redirected to.
    pub address: Option<oxswan_ike::Gateway>,
    /// With this many IKE SAs or more here, new clients that announced REDIRECT_SUPPORTED are sent
    /// to the least-loaded other node that has an `address`; `None`: never for load.
    pub redirect_above: Option<u32>,
    /// TLS to etcd beyond the system's roots: `Some` when `ca`, `cert` or `key` is given.
    pub tls: Option<ClusterTls>,
}

/// `[cluster]`'s `ca`, `cert` and `key`: the files are named here and read by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// The CA certificate (PEM) that signs the etcd servers' certificates; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) and its private key (PEM), for etcd's client-certificate auth.
    pub cert_key: Option<(PathBuf, PathBuf)>,
}

/// The default lease TTL.
const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// The bounds of `ttl`: a lease is kept alive well within its TTL, so below 2s a short stall of the
/// daemon or of etcd would drop a live node; above 5 minutes a dead node would keep its share of
/// clients (and its place as a redirect target) that long.
const MIN_TTL: Duration = Duration::from_secs(2);
const MAX_TTL: Duration = Duration::from_secs(300);
/// The default key prefix.
const DEFAULT_PREFIX: &str = "/oxswan";
/// The longest key prefix, in characters.
const MAX_PREFIX: usize = 64;
/// The longest node name: a DNS label's length (RFC 1035 §2.3.4), so that a name can be a host's.
const MAX_NODE: usize = 63;
/// The largest `redirect_above`.
const MAX_REDIRECT_ABOVE: i64 = 10_000_000;

pub(crate) fn cluster(ctx: &Ctx<'_>, raw: Option<S<RawCluster>>) -> Result<Option<Cluster>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.span();
    let r = raw.into_inner();

    let Some(etcd) = r.etcd else {
        return Err(ctx.err(span, "cluster.etcd", "required: the etcd endpoints, e.g. [\"http://10.9.0.1:2379\"]"));
    };
    if etcd.get_ref().is_empty() {
        return Err(ctx.err(etcd.span(), "cluster.etcd", "names no endpoint, e.g. [\"http://10.9.0.1:2379\"]"));
    }
    let mut endpoints = Vec::new();
    // The first endpoint that is plain http, if any: TLS files are refused with it.
    let mut http = None;
    for e in etcd.get_ref() {
        let (url, https) = endpoint(e.get_ref()).map_err(|m| ctx.err(e.span(), "cluster.etcd", m))?;
        if !https && http.is_none() {
            http = Some(url.clone());
        }
        endpoints.push(url);
    }

    let Some(node) = r.node else {
        return Err(ctx.err(span, "cluster.node", "required: this node's name, e.g. \"gw1\""));
    };
    let n = node.get_ref();
    if n.is_empty()
        || n.len() > MAX_NODE
        || !n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ctx.err(
            node.span(),
            "cluster.node",
            format!("`{n}` is not a node name: 1 to {MAX_NODE} of A-Z a-z 0-9 . _ -"),
        ));
    }

    let ttl = match r.ttl {
        None => DEFAULT_TTL,
        Some(v) => {
            let at = v.span();
            let t = duration(ctx, Some(v), "cluster.ttl")?.unwrap_or_default();
            if !(MIN_TTL..=MAX_TTL).contains(&t) {
                return Err(ctx.err(at, "cluster.ttl", "from 2s to 300s"));
            }
            t
        }
    };

    let prefix = match r.prefix {
        None => DEFAULT_PREFIX.to_owned(),
        Some(p) => {
            let s = p.get_ref();
            if !s.starts_with('/')
                || s.ends_with('/')
                || s.chars().any(char::is_whitespace)
                || s.chars().count() > MAX_PREFIX
            {
                return Err(ctx.err(
                    p.span(),
                    "cluster.prefix",
                    format!(
                        "`{s}` is not a key prefix: it starts with `/`, does not end with one, has no whitespace and at most {MAX_PREFIX} characters, e.g. \"/oxswan\""
                    ),
                ));
            }
            p.into_inner()
        }
    };

    // Checked as `[daemon] redirect` is: it is what N(REDIRECT) carries.
    let address = gateway(ctx, r.address.as_ref(), "cluster.address")?;

    let redirect_above = match r.redirect_above {
        None => None,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if (1..=MAX_REDIRECT_ABOVE).contains(v.get_ref()) => Some(n),
            _ => {
                return Err(ctx.err(
                    v.span(),
                    "cluster.redirect_above",
                    format!("{}: from 1 to {MAX_REDIRECT_ABOVE} IKE SAs", v.get_ref()),
                ));
            }
        },
    };

    let tls = tls(ctx, r.ca, r.cert, r.key, http.as_deref())?;

    Ok(Some(Cluster { etcd: endpoints, node: node.into_inner(), ttl, prefix, address, redirect_above, tls }))
}

/// `ca`, `cert` and `key`: with https endpoints only, and `cert` with `key`.
fn tls(
    ctx: &Ctx<'_>,
    ca: Option<S<String>>,
    cert: Option<S<String>>,
    key: Option<S<String>>,
    http: Option<&str>,
) -> Result<Option<ClusterTls>, ConfigError> {
    if let Some(http) = http {
        let given = [("ca", &ca), ("cert", &cert), ("key", &key)];
        if let Some((k, Some(v))) = given.into_iter().find(|(_, v)| v.is_some()) {
            return Err(ctx.err(
                v.span(),
                &format!("cluster.{k}"),
                format!("only with https etcd endpoints, and `{http}` is http"),
            ));
        }
    }
    let ca = ca.map(|p| ctx.existing_file(p, "cluster.ca")).transpose()?;
    let cert_key = match (cert, key) {
        (None, None) => None,
        (Some(c), None) => {
            return Err(ctx.err(c.span(), "cluster.key", "missing: `cert` needs its private key in `key`"));
        }
        (None, Some(k)) => {
            return Err(ctx.err(k.span(), "cluster.cert", "missing: `key` needs its certificate in `cert`"));
        }
        (Some(c), Some(k)) => Some((ctx.existing_file(c, "cluster.cert")?, ctx.existing_file(k, "cluster.key")?)),
    };
    Ok((ca.is_some() || cert_key.is_some()).then_some(ClusterTls { ca, cert_key }))
}

/// An etcd endpoint, `http://HOST:PORT` or `https://HOST:PORT` with HOST an IP address (IPv6 in
/// brackets, RFC 3986 §3.2.2) or a DNS name, and nothing after the port but a `/`: the endpoint
/// without that `/`, and whether it is https.
fn endpoint(s: &str) -> Result<(String, bool), String> {
    let example = "such as \"http://10.9.0.1:2379\" or \"https://etcd1.example:2379\"";
    let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{s}` is not an endpoint {example}: it starts with http:// or https://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!("`{s}`: no user, path or query, only the host and port, {example}"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(r) => {
            let (h, after) = r.split_once(']').ok_or_else(|| format!("`{s}`: `[` without `]`"))?;
            if h.parse::<core::net::Ipv6Addr>().is_err() {
                return Err(format!("`{s}`: `{h}` in brackets is not an IPv6 address"));
            }
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!("`{s}`: an IPv6 address goes in brackets, e.g. \"http://[fd00::1]:2379\""));
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let Some(port) = port else {
        return Err(format!("`{s}`: the port is missing, {example}"));
    };
    // The host is checked as a redirect's gateway is: a name of letters, digits and `-` in labels
    // (RFC 1035 §2.3.4), not all digits, or an address that is neither unspecified nor multicast.
    oxswan_ike::Gateway::parse(host)
        .map_err(|_| format!("`{s}`: `{host}` is not an IP address or DNS name etcd can be reached at"))?;
    let port_ok =
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return Err(format!("`{s}`: `{port}` is not a port from 1 to 65535"));
    }
    Ok((s.strip_suffix('/').unwrap_or(s).to_owned(), https))
}
