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

/// Routes `cidr` through `dev`, with `src` as the source address for locally sent packets, as
/// `ip route replace CIDR dev DEV [src SRC]` does, but in one rtnetlink request: a gateway with
/// thousands of CHILD SAs spent a fifth of its time starting `ip` processes.
pub fn replace(cidr: &str, dev: &str, src: Option<IpAddr>) -> Result<(), RouteError> {
    rtnl::route(rtnl::Op::Replace, cidr, dev, src).map_err(|e| RouteError::Refused {
        op: "route replace",
        cidr: cidr.to_owned(),
        stderr: e,
    })
}

/// Removes the route to `cidr` through `dev` (`ip route del CIDR dev DEV`).
pub fn delete(cidr: &str, dev: &str) -> Result<(), RouteError> {
    rtnl::route(rtnl::Op::Delete, cidr, dev, None).map_err(|e| RouteError::Refused {
        op: "route del",
        cidr: cidr.to_owned(),
        stderr: e,
    })
}

/// Route requests over rtnetlink (RFC 3549), one socket per request.
mod rtnl {
    use std::net::IpAddr;

    use netlink_packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use netlink_packet_route::route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    use netlink_sys::protocols::NETLINK_ROUTE;
    use netlink_sys::{Socket, SocketAddr};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Op {
        Replace,
        Delete,
    }

    /// `ADDR/LEN` as an address and a prefix length.
    pub(super) fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), String> {
        let bad = || format!("{cidr:?} is not an address/prefix length");
        let (a, l) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        if len > if addr.is_ipv4() { 32 } else { 128 } {
            return Err(bad());
        }
        Ok((addr, len))
    }

    fn address(a: IpAddr) -> RouteAddress {
        match a {
            IpAddr::V4(v) => RouteAddress::Inet(v),
            IpAddr::V6(v) => RouteAddress::Inet6(v),
        }
    }

    /// The request: a unicast route of the main table through the device, scope link as `ip`
    /// gives a route without a gateway; a deletion matches any scope (RT_SCOPE_NOWHERE).
    pub(super) fn message(
        op: Op,
        dst: IpAddr,
        len: u8,
        oif: u32,
        src: Option<IpAddr>,
    ) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut m = RouteMessage::default();
        m.header.address_family = if dst.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.destination_prefix_length = len;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.kind = RouteType::Unicast;
        m.header.scope = if op == Op::Replace { RouteScope::Link } else { RouteScope::NoWhere };
        m.attributes.push(RouteAttribute::Destination(address(dst)));
        m.attributes.push(RouteAttribute::Oif(oif));
        if let Some(s) = src.filter(|s| s.is_ipv4() == dst.is_ipv4()) {
            m.attributes.push(RouteAttribute::PrefSource(address(s)));
        }
        let (inner, flags) = match op {
            Op::Replace => (RouteNetlinkMessage::NewRoute(m), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE),
            Op::Delete => (RouteNetlinkMessage::DelRoute(m), NLM_F_REQUEST | NLM_F_ACK),
        };
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = 1;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
        msg.finalize();
        msg
    }

    pub(super) fn route(op: Op, cidr: &str, dev: &str, src: Option<IpAddr>) -> Result<(), String> {
        let (dst, len) = parse_cidr(cidr)?;
        let oif = nix::net::if_::if_nametoindex(dev).map_err(|e| format!("no device {dev}: {e}"))?;
        let msg = message(op, dst, len, oif, src);
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        let sock = Socket::new(NETLINK_ROUTE).map_err(|e| format!("rtnetlink: {e}"))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(|e| format!("rtnetlink: {e}"))?;
        sock.send(&buf, 0).map_err(|e| format!("rtnetlink: {e}"))?;
        let mut answer: Vec<u8> = Vec::with_capacity(8192);
        sock.recv(&mut answer, 0).map_err(|e| format!("rtnetlink: {e}"))?;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer)
            .map_err(|e| format!("rtnetlink: an answer that does not parse: {e}"))?;
        match reply.payload {
            NetlinkPayload::Error(e) => match e.code {
                None => Ok(()),
                Some(code) => Err(std::io::Error::from_raw_os_error(-code.get()).to_string()),
            },
            other => Err(format!("rtnetlink: no acknowledgement but {:?}", other.message_type())),
        }
    }
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

/// `addr` as a one-address prefix: `/32` or `/128`.
pub fn host_cidr(addr: IpAddr) -> String {
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
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
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
    fn route_requests_carry_what_ip_route_would() {
        use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkPayload};
        use netlink_packet_route::RouteNetlinkMessage;
        use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteScope};
        assert_eq!(rtnl::parse_cidr("10.2.0.0/24"), Ok(("10.2.0.0".parse().unwrap(), 24)));
        assert!(rtnl::parse_cidr("10.2.0.0/33").is_err() && rtnl::parse_cidr("10.2.0.0").is_err());
        assert!(rtnl::parse_cidr("x/8").is_err() && rtnl::parse_cidr("::/129").is_err());
        let src: IpAddr = "10.1.0.1".parse().unwrap();
        let m = rtnl::message(rtnl::Op::Replace, "10.2.0.0".parse().unwrap(), 24, 7, Some(src));
        assert_eq!(m.header.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        let back = netlink_packet_core::NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) = back.payload else { panic!("{back:?}") };
        assert_eq!(r.header.destination_prefix_length, 24);
        assert_eq!(r.header.scope, RouteScope::Link);
        assert!(r.attributes.contains(&RouteAttribute::Destination(RouteAddress::Inet("10.2.0.0".parse().unwrap()))));
        assert!(r.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(r.attributes.contains(&RouteAttribute::PrefSource(RouteAddress::Inet("10.1.0.1".parse().unwrap()))));
        // A source of the other family is left out, as `ip` would refuse it.
        let m = rtnl::message(rtnl::Op::Delete, "fd02::".parse().unwrap(), 64, 7, Some(src));
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) = m.payload else { panic!() };
        assert!(!r.attributes.iter().any(|a| matches!(a, RouteAttribute::PrefSource(_))));
        assert_eq!(r.header.scope, RouteScope::NoWhere);
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
