//! Routes through the TUN device, by `ip route` (iproute2): the daemon changes a handful per SA,
//! and iproute2 is what an administrator reads them back with.

use std::net::IpAddr;
use std::process::Command;

/// A route that could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// `ip` could not be run.
    #[error("cannot run ip: {0}")]
    Spawn(#[from] std::io::Error),
    /// `ip` refused.
    #[error("ip {op} {cidr}: {stderr}")]
    Refused {
        /// The command: route replace, address del, ...
        op: &'static str,
        /// The destination.
        cidr: String,
        /// What `ip` said.
        stderr: String,
    },
}

/// Routes `cidr` through `dev`, with `src` as the source address for locally sent packets.
pub fn replace(cidr: &str, dev: &str, src: Option<IpAddr>) -> Result<(), RouteError> {
    let mut args = vec!["route".to_owned(), "replace".into(), cidr.into(), "dev".into(), dev.into()];
    if let Some(s) = src {
        args.extend(["src".to_owned(), s.to_string()]);
    }
    ip("route replace", cidr, &args)
}

/// Removes the route to `cidr` through `dev`.
pub fn delete(cidr: &str, dev: &str) -> Result<(), RouteError> {
    let args = ["route".to_owned(), "del".into(), cidr.into(), "dev".into(), dev.into()];
    ip("route del", cidr, &args)
}

/// Puts `addr` (a host address: /32, /128) on `dev`: a client's virtual IP (RFC 7296 §2.19).
pub fn add_address(addr: IpAddr, dev: &str) -> Result<(), RouteError> {
    let cidr = host_cidr(addr);
    let args = ["address".to_owned(), "replace".into(), cidr.clone(), "dev".into(), dev.into()];
    ip("address replace", &cidr, &args)
}

/// Takes `addr` off `dev`.
pub fn delete_address(addr: IpAddr, dev: &str) -> Result<(), RouteError> {
    let cidr = host_cidr(addr);
    let args = ["address".to_owned(), "del".into(), cidr.clone(), "dev".into(), dev.into()];
    ip("address del", &cidr, &args)
}

fn host_cidr(addr: IpAddr) -> String {
    format!("{addr}/{}", if addr.is_ipv4() { 32 } else { 128 })
}

fn ip(op: &'static str, cidr: &str, args: &[String]) -> Result<(), RouteError> {
    let o = Command::new("ip").args(args).output()?;
    if o.status.success() {
        Ok(())
    } else {
        Err(RouteError::Refused {
            op,
            cidr: cidr.to_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        })
    }
}

/// A host route that keeps the way to a peer as it is when a selector through the TUN device
/// would cover the peer's own address (a client's 0.0.0.0/0): IKE and ESP to the peer must not
/// enter the tunnel they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `ip route` arguments after `replace`/`del`: `PEER/32 via GW dev DEV`.
    spec: Vec<String>,
}

impl Pin {
    /// The destination, `PEER/32` or `PEER/128`.
    pub fn cidr(&self) -> &str {
        self.spec.first().map_or("", String::as_str)
    }
}

/// What `ip route get` answers for `peer`: `(gateway, device)`; a gateway of the other family is
/// `inet6 ADDR` (RFC 5549 next hops).
fn parse_route_get(out: &str) -> Option<(Option<Vec<String>>, String)> {
    let mut words = out.split_whitespace();
    let (mut via, mut dev) = (None, None);
    while let Some(w) = words.next() {
        match w {
            "via" => {
                via = match words.next() {
                    Some(f @ ("inet" | "inet6")) => words.next().map(|a| vec![f.to_owned(), a.to_owned()]),
                    Some(a) => Some(vec![a.to_owned()]),
                    None => None,
                }
            }
            "dev" => dev = words.next().map(str::to_owned),
            _ => {}
        }
    }
    Some((via, dev?))
}

/// What [`pin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// A host route made, to remove with [`unpin`].
    Made(Pin),
    /// A host route to the peer exists already (an administrator's): it is left as it is.
    HostRouteThere,
    /// The way to the peer is the TUN device already (another SA's route): nothing to pin from.
    IntoTunnel,
}

/// Whether `cidr` is one address (`/32`, `/128`).
pub fn is_host(cidr: &str) -> bool {
    cidr.ends_with("/32") && !cidr.contains(':') || cidr.ends_with("/128")
}

/// Pins the route the kernel takes to `peer` now as a host route, unless a host route to it is
/// there already or the way goes through `tun`; a pin made is for [`unpin`] when no SA needs it
/// any more.
pub fn pin(peer: IpAddr, tun: &str) -> Result<Pinned, RouteError> {
    let cidr = host_cidr(peer);
    let run = |args: &[&str]| -> Result<String, RouteError> {
        let o = Command::new("ip").args(args).output()?;
        if !o.status.success() {
            let stderr = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            return Err(RouteError::Refused { op: "route get", cidr: cidr.clone(), stderr });
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let family = if peer.is_ipv4() { "-4" } else { "-6" };
    if !run(&[family, "route", "show", "exact", &cidr])?.trim().is_empty() {
        return Ok(Pinned::HostRouteThere);
    }
    let Some((via, dev)) = parse_route_get(&run(&["route", "get", &peer.to_string()])?) else {
        return Ok(Pinned::IntoTunnel);
    };
    if dev == tun {
        return Ok(Pinned::IntoTunnel);
    }
    if dev == "lo" {
        return Ok(Pinned::HostRouteThere);
    }
    let mut spec = vec![cidr.clone()];
    if let Some(v) = via {
        spec.push("via".to_owned());
        spec.extend(v);
    }
    spec.extend(["dev".to_owned(), dev]);
    let mut args = vec!["route".to_owned(), "replace".into()];
    args.extend(spec.iter().cloned());
    ip("route replace", &cidr, &args)?;
    Ok(Pinned::Made(Pin { spec }))
}

/// Removes a host route [`pin`] made.
pub fn unpin(p: &Pin) -> Result<(), RouteError> {
    let mut args = vec!["route".to_owned(), "del".into()];
    args.extend(p.spec.iter().cloned());
    ip("route del", p.cidr(), &args)
}

/// The prefixes that route `cidr` through the TUN device: a default route (`0.0.0.0/0`, `::/0`)
/// becomes its two halves, which win over the system's default route by being longer without
/// replacing it, so it is there again unchanged when the tunnel goes.
pub fn tunnel_prefixes(cidr: &str) -> Vec<String> {
    match cidr {
        "0.0.0.0/0" => vec!["0.0.0.0/1".into(), "128.0.0.0/1".into()],
        "::/0" => vec!["::/1".into(), "8000::/1".into()],
        other => vec![other.to_owned()],
    }
}

/// Whether the prefix `cidr` (as [`tunnel_prefixes`] gives) holds `addr`.
pub fn covers(cidr: &str, addr: IpAddr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else { return false };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else { return false };
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let ((n, width), (a, w2)) = (bits(net), bits(addr));
    if width != w2 || len > width {
        return false;
    }
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    n & mask == a & mask
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_routes_are_split_and_covering_is_exact() {
        assert_eq!(tunnel_prefixes("0.0.0.0/0"), ["0.0.0.0/1", "128.0.0.0/1"]);
        assert_eq!(tunnel_prefixes("::/0"), ["::/1", "8000::/1"]);
        assert_eq!(tunnel_prefixes("10.0.0.0/8"), ["10.0.0.0/8"]);
        let a: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(covers("128.0.0.0/1", a));
        assert!(!covers("0.0.0.0/1", a));
        assert!(covers("192.0.2.0/24", a));
        assert!(!covers("192.0.3.0/24", a));
        assert!(!covers("::/1", a), "another family");
        assert!(covers("2001:db8::/32", "2001:db8::1".parse().unwrap()));
        assert!(covers("0.0.0.0/0", a));
    }

    #[test]
    fn route_get_is_read() {
        let out = "192.0.2.2 via 198.51.100.1 dev eth0 src 198.51.100.10 uid 0 \n    cache \n";
        assert_eq!(parse_route_get(out), Some((Some(vec!["198.51.100.1".into()]), "eth0".into())));
        let v6 = "192.0.2.2 via inet6 fe80::1 dev eth0 src 198.51.100.10 uid 0";
        assert_eq!(parse_route_get(v6), Some((Some(vec!["inet6".into(), "fe80::1".into()]), "eth0".into())));
        assert!(is_host("192.0.2.2/32") && is_host("2001:db8::1/128") && !is_host("0.0.0.0/1"));
        assert!(!is_host("2001:db8::/32"));
        assert_eq!(parse_route_get("10.0.0.2 dev veth0 src 10.0.0.1 uid 0"), Some((None, "veth0".into())));
        assert_eq!(parse_route_get("garbage"), None);
    }
}
