//! The routes the daemon keeps through the TUN device: each CHILD SA's remote selectors, the trapped
//! connections', and the host routes that keep the way to a peer out of a full tunnel.

use super::*;

/// `ip route` on the TUN device; failures are logged.
pub(super) fn route(op: &str, cidr: &str, dev: &str, src: Option<IpAddr>) {
    let r = if op == "del" { oxswan_io::route::delete(cidr, dev) } else { oxswan_io::route::replace(cidr, dev, src) };
    match r {
        Ok(()) => tracing::debug!(target: "route", "ip route {op} {cidr} dev {dev}"),
        Err(e) => tracing::warn!(target: "route", "{e}"),
    }
}

/// A trap's route: the prefix and the source address for locally sent packets.
pub(super) type TrapRoute = (String, Option<IpAddr>);

/// Who needs a host route to a peer kept out of the tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PinOwner {
    /// A CHILD SA's pair, by its inbound SPI.
    Pair(u32),
    /// A trapped connection's routes, by its name.
    Trap(String),
}

/// Removes a host route to a peer; failures are logged.
pub(super) fn unpin(p: &oxswan_io::route::Pin) {
    match oxswan_io::route::unpin(p) {
        Ok(()) => tracing::debug!(target: "route", "ip route del {}", p.cidr()),
        Err(e) => tracing::warn!(target: "route", "{e}"),
    }
}

/// A selector as CIDR, if its range is one prefix.
pub(super) fn cidr(ts: &TrafficSelector) -> Option<String> {
    let (start, end, bits) = match ts.addrs {
        TsAddrs::V4 { start, end } => (u128::from(u32::from(start)), u128::from(u32::from(end)), 32u32),
        TsAddrs::V6 { start, end } => (u128::from(start), u128::from(end), 128u32),
        TsAddrs::Unknown { .. } => return None,
    };
    let span = end.checked_sub(start)?.checked_add(1);
    let host_bits = match span {
        None => bits,
        Some(s) if s.is_power_of_two() && start % s == 0 => s.trailing_zeros(),
        _ => return None,
    };
    let addr = match ts.addrs {
        TsAddrs::V4 { start, .. } => start.to_string(),
        TsAddrs::V6 { start, .. } => start.to_string(),
        TsAddrs::Unknown { .. } => return None,
    };
    Some(format!("{addr}/{}", bits.saturating_sub(host_bits)))
}

/// An address of this host inside our selectors, as the source for routed traffic.
pub(super) fn local_source(local_ts: &[TrafficSelector]) -> Option<IpAddr> {
    local_ts
        .iter()
        .find_map(|ts| match ts.addrs {
            TsAddrs::V4 { start, end } if start == end => Some(IpAddr::V4(start)),
            TsAddrs::V6 { start, end } if start == end => Some(IpAddr::V6(start)),
            _ => None,
        })
        .filter(|a| UdpSocket::bind(SocketAddr::new(*a, 0)).is_ok())
}

impl Ike {
    /// Installs the traps of the configuration: connections that start (again) on traffic, with a
    /// route to their remote selectors through the TUN device so that the traffic arrives.
    pub(super) fn set_traps(&mut self) {
        let mut traps = Vec::new();
        // Each trapped connection's routes (prefix, source), with the peer their prefixes would
        // take into the tunnel, if any.
        let mut wanted: Vec<(String, Vec<TrapRoute>, Option<IpAddr>)> = Vec::new();
        for c in &self.config.connections {
            let trapped = c.dpd_action == PeerAction::Trap
                || c.close_action == PeerAction::Trap
                || c.children.iter().any(|ch| ch.start_action == StartAction::Trap);
            let Some(remote) = c.remote_addrs.first() else { continue };
            if !trapped {
                continue;
            }
            let local = c.local_addrs.first().copied().unwrap_or(*remote);
            let mut selectors = Selectors { local: Vec::new(), remote: Vec::new() };
            for ch in &c.children {
                selectors.local.extend(oxswan_ike::child::resolve(&ch.local_ts, local));
                selectors.remote.extend(oxswan_ike::child::resolve(&ch.remote_ts, *remote));
            }
            let src = local_source(&selectors.local);
            let mut routes = Vec::new();
            let mut covered = None;
            for ts in &selectors.remote {
                for r in cidr(ts).map(|r| oxswan_io::route::tunnel_prefixes(&r)).unwrap_or_default() {
                    if oxswan_io::route::covers(&r, *remote) && !oxswan_io::route::is_host(&r) {
                        covered = Some(*remote);
                    }
                    let s = src.filter(|s| s.is_ipv4() == r.contains('.'));
                    routes.push((r, s));
                }
            }
            wanted.push((c.name.clone(), routes, covered));
            traps.push((c.name.clone(), selectors));
        }
        // The pins first: with the trap routes in place, the way to the peer is the tunnel's.
        let stale: Vec<PinOwner> = self
            .pins
            .keys()
            .filter(|o| matches!(o, PinOwner::Trap(n) if !wanted.iter().any(|(w, _, c)| w == n && c.is_some())))
            .cloned()
            .collect();
        for o in &stale {
            self.unpin_owner(o);
        }
        let mut cidrs = Vec::new();
        for (name, routes, covered) in wanted {
            if let Some(peer) = covered
                && !self.pins.contains_key(&PinOwner::Trap(name.clone()))
            {
                self.pin_peer(PinOwner::Trap(name), peer);
            }
            for (r, src) in routes {
                route("replace", &r, &self.config.daemon.tun, src);
                cidrs.push(r);
            }
        }
        for old in std::mem::take(&mut self.trap_routes) {
            if !cidrs.contains(&old) && !self.routes.values().any(|rs| rs.contains(&old)) {
                route("del", &old, &self.config.daemon.tun, None);
            }
        }
        self.trap_routes = cidrs;
        self.dp.set_traps(traps);
    }

    /// Keeps the way to `peer` out of the tunnel while `owner` routes a prefix holding its
    /// address (a full tunnel), so that IKE and ESP to it are not sent into the TUN device.
    pub(super) fn pin_peer(&mut self, owner: PinOwner, peer: IpAddr) {
        let cidr = oxswan_io::route::host_cidr(peer);
        if let Some(p) = self.pins.values().find(|p| p.cidr() == cidr) {
            let p = p.clone();
            self.pins.insert(owner, p);
            return;
        }
        match oxswan_io::route::pin(peer, &self.config.daemon.tun) {
            Ok(oxswan_io::route::Pinned::Made(p)) => {
                tracing::debug!(target: "route", "ip route replace {} (the way to the peer, kept out of the tunnel)", p.cidr());
                self.pins.insert(owner, p);
            }
            Ok(oxswan_io::route::Pinned::HostRouteThere) => {}
            Ok(oxswan_io::route::Pinned::IntoTunnel) => tracing::warn!(
                target: "route",
                "the way to the peer {peer} goes into {} already: IKE and ESP to it would enter the tunnel",
                self.config.daemon.tun
            ),
            Err(e) => tracing::warn!(target: "route", "the route to {peer} could not be kept out of the tunnel: {e}"),
        }
    }

    /// Lets go of `owner`'s pin; the host route goes when no one else holds it.
    pub(super) fn unpin_owner(&mut self, owner: &PinOwner) {
        if let Some(pin) = self.pins.remove(owner)
            && !self.pins.values().any(|p| p == &pin)
        {
            unpin(&pin);
        }
    }
}
