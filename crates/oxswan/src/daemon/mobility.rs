//! Following the network: the sockets of each local address (more open when the host gains one),
//! the kernel's news of address and route changes, MOBIKE moves (RFC 4555 §3.5) and NAT rebindings
//! seen in ESP (RFC 7296 §2.23). The rules are the engine's; this module finds out what changed
//! and which source address the routes now pick for each peer.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{Ike, Sockets, route_source};
use crate::dataplane::DataPlane;
use crate::input::Input;

/// How long a burst of rtnetlink messages (an address going takes its routes with it) is let in
/// before the daemon looks at the result.
const SETTLE: Duration = Duration::from_millis(100);

/// Binds the IKE and NAT-T ports on `addr`.
pub(super) fn open_sockets(addr: IpAddr, daemon: &oxswan_config::Daemon) -> anyhow::Result<Sockets> {
    let bind = |port| {
        UdpSocket::bind(SocketAddr::new(addr, port))
            .with_context(|| format!("cannot bind UDP {addr}:{port} (in use, or not an address of this host?)"))
    };
    let ike = bind(daemon.ike_port)?;
    ike.set_read_timeout(Some(Duration::from_millis(200)))?;
    let natt = crate::dataplane::natt_sockets(SocketAddr::new(addr, daemon.natt_port)).with_context(|| {
        format!("cannot bind UDP {addr}:{} (in use, or not an address of this host?)", daemon.natt_port)
    })?;
    let Some(first) = natt.first().cloned() else { anyhow::bail!("no socket for UDP {addr}:{}", daemon.natt_port) };
    Ok(Sockets { ike: Arc::new(ike), natt: first, natt_rx: natt })
}

/// Starts the receiving threads of one address's sockets.
pub(super) fn serve_sockets(
    s: &Sockets,
    dp: &Arc<DataPlane>,
    tx: &crate::input::Inbox,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (sock, tx1, stop) = (s.ike.clone(), tx.clone(), stop.clone());
    std::thread::Builder::new().name("ike-rx".into()).spawn(move || super::ike_rx(&sock, &tx1, &stop))?;
    for (i, sock) in s.natt_rx.iter().enumerate() {
        let (dp, sock, tx) = (dp.clone(), sock.clone(), tx.clone());
        std::thread::Builder::new().name(format!("natt-rx{i}")).spawn(move || dp.natt_loop(sock, tx, i))?;
    }
    Ok(())
}

/// Starts the thread that tells the IKE thread of address and route changes, once per burst.
pub(super) fn watch_network(tx: &crate::input::Inbox) {
    let mut watcher = match oxswan_io::netlink::Watcher::new() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(target: "io", "no rtnetlink: address changes will not be followed (MOBIKE): {e}");
            return;
        }
    };
    let tx = tx.clone();
    let spawned = std::thread::Builder::new().name("netlink".into()).spawn(move || {
        loop {
            if let Err(e) = watcher.wait(SETTLE) {
                tracing::warn!(target: "io", "rtnetlink: {e}; address changes are no longer followed");
                return;
            }
            if tx.send(Input::NetworkChanged).is_err() {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(target: "io", "cannot start the rtnetlink thread: {e}");
    }
}

impl Ike {
    /// Opens the sockets of a local address that appeared, when the configuration does not fix
    /// the addresses to listen on; whether they are open now.
    pub(super) fn open(&mut self, addr: IpAddr) -> bool {
        if self.sockets.contains_key(&addr) {
            return true;
        }
        if !self.config.daemon.listen.is_empty() {
            return false;
        }
        let opened = open_sockets(addr, &self.config.daemon)
            .and_then(|s| serve_sockets(&s, &self.data_plane, &self.tx, &self.stop).map(|()| s));
        match opened {
            Ok(s) => {
                self.data_plane.add_socket(addr, s.natt.clone());
                self.sockets.insert(addr, s);
                tracing::info!(target: "io", "listening on {addr} too (UDP {}, {})", self.config.daemon.ike_port, self.config.daemon.natt_port);
                true
            }
            Err(e) => {
                tracing::warn!(target: "io", "{e:#}");
                false
            }
        }
    }

    /// The data plane opened authentic ESP from a new source: the engine decides whether the IKE
    /// SA follows (`Event::PathChanged` then moves its ESP and logs it).
    pub(super) fn esp_moved(&mut self, spi_in: u32, from: SocketAddr) {
        if !self.endpoint.esp_moved(Instant::now(), spi_in, from) {
            tracing::debug!(target: "dataplane", "ESP of {spi_in:08x}_i from {from}: the SA stays where it is");
        }
    }

    /// Addresses or routes changed: the engine learns our addresses (announced with MOBIKE), and
    /// each IKE SA with MOBIKE that we started moves when the routes now pick another source for
    /// its peer, or reach it only at another of its addresses (RFC 4555 §3.5: the initiator
    /// decides).
    pub(super) fn network_changed(&mut self) {
        let tun = self.config.daemon.tun.clone();
        match oxswan_io::netlink::addresses() {
            Ok(all) => {
                let ours: Vec<IpAddr> = all.into_iter().filter(|(dev, _)| *dev != tun).map(|(_, a)| a).collect();
                self.endpoint.set_local_addresses(ours);
            }
            Err(e) => tracing::debug!(target: "io", "addresses: {e}"),
        }
        let now = Instant::now();
        for sa in self.endpoint.established() {
            let Some(info) = self.endpoint.info(sa) else { continue };
            if !info.mobike || !info.original_initiator {
                continue;
            }
            let mut paths = Vec::new();
            for remote in self.endpoint.peer_addresses(sa) {
                let Some(local) = route_source(remote) else { continue };
                if self.open(local) {
                    paths.push((local, remote));
                }
            }
            let Some(first) = paths.first() else {
                tracing::info!(target: "ike", conn = %info.name, sa = sa.0, "no route to the peer for now; waiting for the network");
                continue;
            };
            if *first == (info.local.ip(), info.remote.ip()) {
                continue;
            }
            tracing::info!(target: "ike", conn = %info.name, sa = sa.0, "MOBIKE: moving from {} to {} → {}", info.local, first.0, first.1);
            if let Err(e) = self.endpoint.roam(now, sa, &paths) {
                tracing::warn!(target: "ike", conn = %info.name, sa = sa.0, "MOBIKE: {e}");
            }
        }
    }
}
