//! The seam between the daemon and a data plane: what the daemon asks of one, whichever carries the
//! packets (the user-space one of [`crate::dataplane`] today; the kernel's XFRM later). The daemon
//! holds a `dyn Datapath` and knows nothing else of it; the data plane reports back through
//! [`crate::input::Input`] (IKE messages that arrived on its sockets, traffic a trap caught).

use std::net::SocketAddr;

use oxswan_esp::Selectors;
use oxswan_ike::ChildSa;
use oxswan_ike::volume::ChildUsage;

/// Where a pair's ESP goes for the peer's IKE address: its NAT-T port (RFC 3948), as the engine
/// floated IKE there; a peer still on 500 gets ESP on 4500.
pub fn esp_destination(ike_remote: SocketAddr) -> SocketAddr {
    let port = if ike_remote.port() == 500 { 4500 } else { ike_remote.port() };
    SocketAddr::new(ike_remote.ip(), port)
}

/// What a data plane counted on one installed pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairCounters {
    /// Traffic both ways and the outbound sequence numbers, as the engine takes them.
    pub usage: ChildUsage,
    /// Inbound packets dropped as replays (RFC 4303 §3.4.3).
    pub replayed: u64,
    /// Inbound packets whose ICV did not verify (RFC 4303 §3.4.4).
    pub integrity_failed: u64,
    /// Inbound packets too short or badly padded.
    pub malformed: u64,
    /// Authentic inbound packets outside the pair's selectors (RFC 4301 §5.2).
    pub outside_selectors: u64,
    /// The path MTU to the peer.
    pub path_mtu: u16,
    /// The largest inner packet the pair carries whole on it.
    pub inner_mtu: u16,
}

/// Counters of the whole data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatapathStats {
    /// NAT keepalives received (RFC 3948 §2.3).
    pub keepalives_received: u64,
    /// ESP datagrams for an SPI with no pair.
    pub esp_unknown_spi: u64,
    /// Inner packets too big for their pair's path, dropped.
    pub too_big: u64,
    /// ICMP errors written back for them.
    pub icmp_too_big_sent: u64,
}

/// A data plane.
pub trait Datapath: Send + Sync {
    /// Installs a CHILD SA pair: its keys, selectors and path, sending at once if `c.outbound`.
    /// An inbound SPI already installed is refused, never replaced.
    fn install(&self, name: String, c: &ChildSa) -> anyhow::Result<()>;
    /// Hands the pair what waited for it: ESP that came before it, packets a trap held. Called once
    /// the routes to its selectors are in place, so that answers find their way back.
    fn release_waiting(&self, spi_in: u32);
    /// Starts sending on the pair.
    fn set_outbound(&self, spi_in: u32);
    /// Sends the pair's ESP from `local` to `remote` from now on (a NAT rebinding, RFC 7296 §2.23);
    /// false if there is no such pair.
    fn update_path(&self, spi_in: u32, local: SocketAddr, remote: SocketAddr) -> bool;
    /// Removes the pair; its last counters, read once the packet threads no longer find it.
    fn remove(&self, spi_in: u32) -> Option<PairCounters>;
    /// Returns once nothing sealed with the pairs as they were before the last `install`,
    /// `set_outbound` or `remove` can still be sent: called before the IKE messages that follow
    /// such a change, since the peer acts on them at once. A DELETE (RFC 7296 §1.4.1) or its
    /// answer makes the peer drop its half of a pair, and a packet sealed on it a moment before
    /// but sent after would be lost there (strongSwan's libipsec keeps no grace for it).
    fn settle_sends(&self);
    /// The counters of every installed pair, by inbound SPI.
    fn counters(&self) -> Vec<(u32, PairCounters)>;
    /// The counters of the pairs that sent or received since the last call: what the engine needs
    /// to hear of (volume, liveness, a new pair's first packet), at a cost that follows the pairs in
    /// use, not all installed.
    fn moved_counters(&self) -> Vec<(u32, PairCounters)>;
    /// Connections that start on traffic: their names and the selectors of their children.
    fn set_traps(&self, traps: Vec<(String, Selectors)>);
    /// Lets the next packet for `name` trigger it again.
    fn rearm_trap(&self, name: &str);
    /// Counters of the whole data plane.
    fn stats(&self) -> DatapathStats;
    /// Looks up the path MTUs of the installed pairs if it is time to (or a send hinted at a
    /// change) and sets what each pair carries whole; called often by the IKE thread.
    fn refresh_mtu(&self, now: std::time::Instant);
    /// Stops its threads.
    fn stop(&self);
}
