//! The control protocol between the CLI and the daemon: one JSON request per line on a Unix socket,
//! answered with one JSON line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// A command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Bring a connection up and wait for the outcome.
    Up {
        /// The connection.
        name: String,
    },
    /// Delete a connection's IKE SAs.
    Down {
        /// The connection.
        name: String,
    },
    /// Replace a connection's SAs now, before their time (`swanctl --rekey`).
    Rekey {
        /// The connection.
        name: String,
        /// What to replace.
        what: RekeyWhat,
    },
    /// Report every SA.
    Status,
    /// Read the configuration file again.
    Reload,
    /// Delete the IKE SAs of a peer identity (its IKE identity or EAP identity), as `swanctl
    /// --terminate --ike-id`: a removed client is cut off at once.
    Terminate {
        /// The identities, as `status` shows them (a certificate's DN as `CN=...`).
        identities: Vec<String>,
    },
    /// Send established clients to another gateway (RFC 5685 §5), as `swanctl --redirect`: those
    /// of a connection, of peer identities, or of both at once.
    Redirect {
        /// The connection, or every one.
        name: Option<String>,
        /// The peer identities (IKE or EAP, as `status` shows them), or every peer.
        identities: Vec<String>,
        /// The gateway: an IP address or a domain name.
        gateway: String,
    },
}

/// What `Request::Rekey` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RekeyWhat {
    /// Every CHILD SA, each by CREATE_CHILD_SA (RFC 7296 §1.3.3).
    Children,
    /// The IKE SA, by CREATE_CHILD_SA with new SPIs (§1.3.2); the CHILD SAs move to it.
    Ike,
    /// A new IKE SA from IKE_SA_INIT on, authenticated again, with new CHILD SAs (§2.8.3).
    Reauth,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Done.
    Ok {
        /// What happened.
        message: String,
    },
    /// Not done, and why.
    Error {
        /// Why.
        message: String,
    },
    /// The SAs.
    Status {
        /// One entry per IKE SA.
        ike_sas: Vec<IkeSaStatus>,
        /// NAT keepalives received (RFC 3948 §2.3).
        #[serde(default)]
        keepalives_received: u64,
        /// ESP datagrams for an SPI with no SA when they came (held a moment, see `early.rs`).
        #[serde(default)]
        esp_unknown_spi: u64,
        /// TCP streams (RFC 9329).
        #[serde(default)]
        tcp: TcpStatus,
        /// Inner packets too big for their SA's path, dropped.
        #[serde(default)]
        too_big: u64,
        /// ICMP "fragmentation needed" / ICMPv6 "packet too big" written back for them.
        #[serde(default)]
        icmp_too_big_sent: u64,
        /// The IKE engine's counters.
        #[serde(default)]
        engine: EngineStatus,
        /// With `[cluster]`: this node, etcd's members and the other nodes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<Box<oxswan_cluster::ClusterStatus>>,
    },
}

/// The IKE engine's half-open SAs, cookie state and drop counters in `status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineStatus {
    /// Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet).
    pub half_open: u64,
    /// Whether every new initiator must return a cookie now (RFC 7296 §2.6).
    pub cookies: bool,
    /// IKE datagrams dropped: unparseable, unknown SPI, failed integrity, outside the window.
    pub dropped: u64,
    /// Of them, not well-formed.
    #[serde(default)]
    pub dropped_malformed: u64,
    /// Of them, for an IKE SA we do not have.
    #[serde(default)]
    pub dropped_unknown_spi: u64,
    /// Of them, failing their SA's integrity check.
    #[serde(default)]
    pub dropped_unauthenticated: u64,
    /// COOKIE notifies sent.
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests refused by the half-open limits.
    pub half_open_refused: u64,
    /// INVALID_IKE_SPI notifies sent.
    pub invalid_spi_sent: u64,
    /// Retransmitted requests answered from the cache.
    pub retransmits_answered: u64,
    /// Clients sent to another gateway (RFC 5685).
    #[serde(default)]
    pub redirects_sent: u64,
}

/// The TCP streams (RFC 9329) in `status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TcpStatus {
    /// Open now.
    pub streams: u64,
    /// Accepted since the start.
    pub accepted: u64,
    /// Opened (connected) since the start.
    pub opened: u64,
    /// Refused or closed for a wrong prefix or length, or over the limit.
    pub refused: u64,
    /// ESP packets dropped: a full queue, or no stream.
    pub esp_dropped: u64,
    /// IKE messages dropped: a full queue, or no stream.
    pub ike_dropped: u64,
}

/// One IKE SA in `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IkeSaStatus {
    /// Seconds since it was established.
    pub established_secs: u64,
    /// Connection name.
    pub name: String,
    /// ESTABLISHED, CONNECTING, ...
    pub state: String,
    /// Whether we initiated it.
    pub initiator: bool,
    /// Our address and port.
    pub local: String,
    /// The peer's address and port.
    pub remote: String,
    /// Our identity.
    pub local_id: String,
    /// The peer's identity.
    pub remote_id: String,
    /// IKE proposal.
    pub proposal: String,
    /// SPIs, initiator's then responder's.
    pub spis: String,
    /// A NAT was detected (or encapsulation forced).
    pub nat: bool,
    /// `udp`, or `tcp` (RFC 9329).
    #[serde(default)]
    pub transport: String,
    /// MOBIKE (RFC 4555) was agreed: the SA follows our address changes.
    #[serde(default)]
    pub mobike: bool,
    /// A Post-quantum Preshared Key (RFC 8784) is mixed into its keys.
    #[serde(default)]
    pub ppk: bool,
    /// Set up following a gateway's REDIRECT (RFC 5685).
    #[serde(default)]
    pub redirected: bool,
    /// Set up by session resumption (RFC 5723): a ticket instead of a key exchange and
    /// authentication.
    #[serde(default)]
    pub resumed: bool,
    /// The peer's EAP identity, when it authenticated with EAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eap_id: Option<String>,
    /// As client: the virtual IPs the gateway gave us.
    #[serde(default)]
    pub local_vips: Vec<String>,
    /// As gateway: the virtual IPs lent to the client.
    #[serde(default)]
    pub remote_vips: Vec<String>,
    /// As client: the DNS servers the gateway gave.
    #[serde(default)]
    pub dns: Vec<String>,
    /// CHILD SAs.
    pub children: Vec<ChildStatus>,
}

/// One CHILD SA in `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildStatus {
    /// Seconds since it was installed.
    pub established_secs: u64,
    /// Seconds until it is rekeyed; absent when no rekey is scheduled (no `rekey_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey_in_secs: Option<u64>,
    /// Child name.
    pub name: String,
    /// Inbound SPI.
    pub spi_in: String,
    /// Outbound SPI.
    pub spi_out: String,
    /// ESP proposal.
    pub proposal: String,
    /// Tunnel or transport.
    pub mode: String,
    /// UDP-encapsulated.
    pub encap: bool,
    /// Our selectors.
    pub local_ts: Vec<String>,
    /// The peer's selectors.
    pub remote_ts: Vec<String>,
    /// Inner octets received.
    pub bytes_in: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Inner octets sent.
    pub bytes_out: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Packets dropped as replays.
    pub replayed: u64,
    /// Packets dropped for a bad ICV.
    pub integrity_failed: u64,
    /// Authentic packets dropped for lying outside the selectors.
    pub outside_selectors: u64,
    /// The path MTU to the peer the kernel reports.
    #[serde(default)]
    pub path_mtu: u16,
    /// The largest inner packet the pair carries whole on that path.
    #[serde(default)]
    pub inner_mtu: u16,
    /// A per-resource pair's place (RFC 9611): `fallback`, or the number of the worker that sends
    /// on it; absent for an ordinary pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Sends a request to the daemon at `socket` and waits up to `timeout` for the answer.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the daemon at {} (is `oxswan daemon` running? --socket selects another)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).with_context(|| format!("no answer within {timeout:?}"))?;
    serde_json::from_str(&answer).with_context(|| format!("bad answer from the daemon: {answer:?}"))
}
