//! The user-space ESP data plane: TUN ↔ UDP-encapsulated ESP (RFC 3948), on plain threads.
//!
//! The SA tables are read-mostly: the IKE thread replaces entries behind an `RwLock`; the packet
//! threads take the read lock per packet (uncontended, no allocation).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, mpsc};

use oxswan_esp::{HEADROOM, InboundSa, OutboundSa, PacketInfo, Selectors, TAILROOM};
use oxswan_wire::udp_encap::{Udp4500, classify};

/// One CHILD SA pair installed in the data plane.
#[derive(Debug)]
pub struct ChildEntry {
    /// The connection and child.
    pub name: String,
    /// Outbound SA.
    pub out: OutboundSa,
    /// Inbound SA.
    pub inb: InboundSa,
    /// The negotiated selectors.
    pub selectors: Selectors,
    /// Where ESP goes (the peer's NAT-T address).
    pub remote: SocketAddr,
    /// Our address (which socket sends).
    pub local: SocketAddr,
    /// Authentic packets outside the selectors.
    pub outside: std::sync::atomic::AtomicU64,
}

/// The installed SAs.
#[derive(Debug, Default)]
pub struct Tables {
    /// By inbound SPI.
    pub by_spi: HashMap<u32, Arc<ChildEntry>>,
    /// In installation order, newest last: the outbound lookup takes the newest match.
    pub children: Vec<Arc<ChildEntry>>,
}

/// Shared state of the packet threads.
pub struct DataPlane {
    /// The SA tables.
    pub tables: RwLock<Tables>,
    /// The TUN device.
    pub tun: tun_rs::SyncDevice,
    /// NAT-T sockets by local address.
    pub natt: HashMap<std::net::IpAddr, Arc<UdpSocket>>,
    /// Set when the daemon stops.
    pub stop: AtomicBool,
    /// NAT keepalives received.
    pub keepalives: std::sync::atomic::AtomicU64,
}

impl core::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DataPlane").field("natt", &self.natt.keys()).finish()
    }
}

impl DataPlane {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs a CHILD SA pair.
    pub fn install(&self, entry: ChildEntry) {
        let entry = Arc::new(entry);
        let mut t = self.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.by_spi.insert(entry.inb.spi(), entry.clone());
        t.children.push(entry);
    }

    /// Removes a CHILD SA pair by inbound SPI.
    pub fn remove(&self, spi_in: u32) -> Option<Arc<ChildEntry>> {
        let mut t = self.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.children.retain(|c| c.inb.spi() != spi_in);
        t.by_spi.remove(&spi_in)
    }

    /// All installed pairs.
    pub fn snapshot(&self) -> Vec<Arc<ChildEntry>> {
        self.read().children.clone()
    }

    /// TUN → ESP: one thread.
    pub fn tun_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; HEADROOM + 65536 + TAILROOM];
        while !self.stop.load(Ordering::Relaxed) {
            let Some(slot) = buf.get_mut(HEADROOM..HEADROOM + 65536) else { return };
            let n = match self.tun.recv(slot) {
                Ok(n) => n,
                Err(_) if self.stop.load(Ordering::Relaxed) => return,
                Err(e) => {
                    tracing::warn!(target: "dataplane", "TUN read: {e}");
                    continue;
                }
            };
            let inner = HEADROOM..HEADROOM + n;
            let Some(info) = buf.get(inner.clone()).and_then(PacketInfo::parse) else { continue };
            let next_header = if info.src.is_ipv4() { 4 } else { 41 };
            let child = self.read().children.iter().rev().find(|c| c.selectors.allows_outbound(&info)).cloned();
            let Some(child) = child else { continue };
            match child.out.seal(&mut buf, inner, next_header) {
                Ok(range) => {
                    let (Some(sock), Some(pkt)) = (self.natt.get(&child.local.ip()), buf.get(range)) else { continue };
                    if let Err(e) = sock.send_to(pkt, child.remote) {
                        tracing::debug!(target: "dataplane", "send to {}: {e}", child.remote);
                    }
                }
                Err(e) => tracing::debug!(target: "dataplane", "{}: seal: {e}", child.name),
            }
        }
    }

    /// UDP 4500 → TUN (ESP) or the IKE thread (IKE behind the non-ESP marker): one thread per socket.
    pub fn natt_loop(self: Arc<Self>, sock: Arc<UdpSocket>, ike: mpsc::Sender<crate::daemon::Input>) {
        let local = sock.local_addr().ok();
        let mut buf = vec![0u8; 65536];
        while !self.stop.load(Ordering::Relaxed) {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::warn!(target: "dataplane", "UDP 4500: {e}");
                    continue;
                }
            };
            let Some(pkt) = buf.get_mut(..n) else { continue };
            match classify(pkt) {
                Ok(Udp4500::Ike(ike_msg)) => {
                    if let Some(local) = local {
                        let _ =
                            ike.send(crate::daemon::Input::Datagram { local, remote: from, data: ike_msg.to_vec() });
                    }
                }
                Ok(Udp4500::Esp(_)) => self.esp_in(pkt),
                Ok(Udp4500::Keepalive) => {
                    self.keepalives.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
    }

    fn esp_in(&self, pkt: &mut [u8]) {
        let spi = match pkt.get(..4) {
            Some([a, b, c, d]) => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return,
        };
        let Some(child) = self.read().by_spi.get(&spi).cloned() else { return };
        let Ok(opened) = child.inb.open(pkt) else { return };
        if opened.next_header == oxswan_wire::esp::NEXT_HEADER_NONE {
            return;
        }
        let Some(inner) = pkt.get(opened.inner) else { return };
        // RFC 4301 §5.2: an inner packet outside the SA's selectors is dropped and counted.
        match PacketInfo::parse(inner) {
            Some(info) if child.selectors.allows_inbound(&info) => {
                let _ = self.tun.send(inner);
            }
            _ => {
                child.outside.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
