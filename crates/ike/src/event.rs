//! What the engine reports to the daemon.

use core::net::SocketAddr;

use oxswan_crypto::Secret;
use oxswan_crypto::keys::ChildSuite;
use oxswan_wire::ts::TrafficSelector;
use oxswan_wire::{Identity, IkeSpi, NotifyType};

use crate::child::Mode;
use crate::nat::NatState;

/// How an IKE SA's messages and its CHILD SAs' ESP travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams: IKE on 500 or, behind the non-ESP marker, 4500; ESP in UDP on 4500 (RFC 3948).
    #[default]
    Udp,
    /// A TCP stream (RFC 9329): IKE and ESP framed on it. The side that opened the stream opens it
    /// again when it breaks (§6); the other never does. An IKE SA's rekey keeps its stream.
    Tcp,
}

/// A handle for an IKE SA inside one [`crate::Endpoint`]; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaHandle(pub u64);

/// An established IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The connection's name.
    pub name: String,
    /// Whether we initiated this IKE SA (for a rekeyed SA: its rekey).
    pub initiator: bool,
    /// Whether we started the first IKE SA it descends from (RFC 4555 §3.1: that side decides on
    /// MOBIKE's addresses).
    pub original_initiator: bool,
    /// Initiator's SPI.
    pub spi_i: IkeSpi,
    /// Responder's SPI.
    pub spi_r: IkeSpi,
    /// Our address and port (after any float to 4500).
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// UDP, or TCP (RFC 9329).
    pub transport: Transport,
    /// Our identity.
    pub local_id: Identity,
    /// The peer's authenticated identity.
    pub remote_id: Identity,
    /// The IKE proposal in strongSwan notation.
    pub proposal: String,
    /// NAT detection result.
    pub nat: NatState,
    /// As client: the virtual IPs the gateway gave us (RFC 7296 §3.15).
    pub local_vips: Vec<core::net::IpAddr>,
    /// As gateway: the virtual IPs lent to the client.
    pub remote_vips: Vec<core::net::IpAddr>,
    /// As gateway: the holding of each (`Lease::holding`), in the same order.
    pub remote_vip_holdings: Vec<u64>,
    /// As client: the DNS servers the gateway named.
    pub dns: Vec<core::net::IpAddr>,
    /// As client: the DNS domains those servers are for (RFC 8598).
    pub dns_domains: Vec<String>,
    /// The peer's EAP identity, when it authenticated with EAP (RFC 7296 §2.16).
    pub eap_id: Option<String>,
    /// Both sides agreed on MOBIKE (RFC 4555): the SA can move to other addresses.
    pub mobike: bool,
    /// Its keys have a Post-quantum Preshared Key mixed in (RFC 8784), or come from an SA's that
    /// had.
    pub ppk: bool,
    /// It was set up following a gateway's REDIRECT (RFC 5685).
    pub redirected: bool,
    /// It was set up by session resumption (RFC 5723): a ticket instead of IKE_SA_INIT, EAP or a
    /// certificate.
    pub resumed: bool,
    /// As responder: the peer announced INITIAL_CONTACT when it authenticated (RFC 7296 §2.4), so
    /// its other IKE SAs are stale, on this gateway and on the others of a cluster.
    pub initial_contact: bool,
}

/// The keys and parameters of a CHILD SA pair, for the ESP data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    /// The child's configured name.
    pub name: String,
    /// SPI of the inbound SA (chosen by us).
    pub spi_in: u32,
    /// SPI of the outbound SA (chosen by the peer).
    pub spi_out: u32,
    /// Algorithms.
    pub suite: ChildSuite,
    /// Extended sequence numbers negotiated (RFC 4303 §2.2.1).
    pub esn: bool,
    /// The ESP proposal in strongSwan notation.
    pub proposal: String,
    /// Encryption key (with salt for AEADs) of the inbound SA.
    pub encr_in: Secret,
    /// Integrity key of the inbound SA (empty for AEADs).
    pub integ_in: Secret,
    /// Encryption key of the outbound SA.
    pub encr_out: Secret,
    /// Integrity key of the outbound SA.
    pub integ_out: Secret,
    /// Our side's selectors after narrowing.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's side's selectors after narrowing.
    pub remote_ts: Vec<TrafficSelector>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// ESP must be UDP-encapsulated (RFC 3948) between `local` and `remote`.
    pub encap: bool,
    /// UDP, or the IKE SA's TCP stream (RFC 9329 §3.2: ESP framed on the stream that carries IKE).
    pub transport: Transport,
    /// Our outer address and port.
    pub local: SocketAddr,
    /// The peer's outer address and port.
    pub remote: SocketAddr,
    /// The inbound SPI of the CHILD SA this one replaces (a rekey, RFC 7296 §2.8).
    pub replaces: Option<u32>,
    /// Whether to send on this SA at once. A rekey's responder waits for the initiator to delete
    /// the old SA ([`Event::ChildSaOutbound`]), by which time the initiator has installed the new
    /// inbound SA: no packet arrives for an SA the peer does not have yet.
    pub outbound: bool,
    /// Its place among the per-resource pairs of its selectors (RFC 9611), if it is one.
    pub resource: Option<PerResource>,
}

/// A pair's place among the per-resource CHILD SAs of one set of selectors (RFC 9611).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerResource {
    /// The first of them, for no resource in particular: what a worker without a pair of its own
    /// sends on (§2).
    Fallback,
    /// The pair of our resource (data-plane worker) with this number: its inbound SPI is the
    /// number modulo [`crate::EndpointConfig::resources`], and that worker sends on it.
    Resource(u32),
}

impl PerResource {
    /// Our resource number, for a pair that has one.
    pub fn number(self) -> Option<u32> {
        match self {
            PerResource::Fallback => None,
            PerResource::Resource(k) => Some(k),
        }
    }
}

/// Why an IKE SA ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The peer answered with an error notify (NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED, ...).
    PeerNotify(NotifyType),
    /// We refused the peer's authentication (the reason stays local; the peer only learns
    /// AUTHENTICATION_FAILED, RFC 7296 §2.21.2).
    AuthFailed(crate::auth::AuthError),
    /// We could not accept the peer's messages (a response that breaks the protocol).
    Protocol(String),
    /// A request was retransmitted until the configured limit without an answer.
    Timeout,
    /// A half-open SA was never completed.
    HalfOpenTimeout,
    /// The peer deleted the IKE SA.
    PeerDeleted,
    /// We deleted it (command).
    LocalDeleted,
    /// A rekey replaced it (RFC 7296 §2.18); see [`Event::IkeSaRekeyed`].
    Rekeyed,
    /// It reached its hard lifetime (`over_time` after its rekey or reauthentication was due).
    Expired,
    /// A reauthentication replaced it with a new IKE SA.
    Reauthenticated,
    /// The peer authenticated a new IKE SA with INITIAL_CONTACT (RFC 7296 §2.4): it restarted and
    /// holds no state for this one, which is removed without telling it.
    PeerRestarted,
    /// As gateway: no virtual IP for the client (INTERNAL_ADDRESS_FAILURE, RFC 7296 §3.15.4).
    AddressFailure(crate::leases::LeaseError),
    /// As client: the gateway gave none of the virtual IPs we asked for.
    NoVirtualIp,
    /// A new IKE SA of the same peer identity replaced it (`unique = replace`).
    Replaced,
    /// An IKE SA of the same peer identity exists from another address (`unique = keep`).
    Duplicate,
    /// Redirected before the IKE SA was up (RFC 5685 §4.1, §6): as client, the gateway sent us elsewhere
    /// (see [`Event::Redirect`]); as gateway, we sent the client to another gateway in our IKE_AUTH
    /// response (the connection's `redirect`).
    Redirected,
}

/// What the authentication server answered to an [`Event::EapRelay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAnswer {
    /// The next EAP Request for the client (RADIUS Access-Challenge).
    Challenge(oxswan_wire::payloads::EapPayload),
    /// Authenticated (Access-Accept): the EAP-Success to pass on, if the server sent one, and the
    /// MSK (RADIUS MS-MPPE-Recv-Key | MS-MPPE-Send-Key).
    Accept {
        /// The EAP-Success.
        eap: Option<oxswan_wire::payloads::EapPayload>,
        /// The key for the AUTH payloads.
        msk: Option<oxswan_crypto::Secret>,
        /// The identity the server authenticated (RADIUS User-Name in the Access-Accept), which
        /// outranks what the client said in EAP-Identity (an outer identity of PEAP or TTLS may be
        /// `anonymous`).
        identity: Option<Vec<u8>>,
    },
    /// Refused (Access-Reject), with the EAP-Failure if one came, and the server's reason.
    Reject {
        /// The EAP-Failure.
        eap: Option<oxswan_wire::payloads::EapPayload>,
        /// Why (RADIUS Reply-Message, or what the daemon knows).
        reason: String,
    },
    /// No server answered.
    Timeout,
}

/// An event for the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// IKE_AUTH completed; the IKE SA is established.
    /// No virtual IP could be lent to a client (RFC 7296 §3.15.4): its IKE SA fails.
    AddressFailure {
        /// Which SA.
        sa: SaHandle,
        /// Whom the address was for.
        owner: String,
        /// Why.
        error: crate::leases::LeaseError,
    },
    /// The client's EAP message for the authentication server (EAP relayed, e.g. to RADIUS, RFC
    /// 3579): the IKE_AUTH response waits for [`crate::Endpoint::relay_answer`].
    EapRelay {
        /// Which SA.
        sa: SaHandle,
        /// The client's EAP identity (from EAP-Identity, or its IKE identity).
        identity: Vec<u8>,
        /// The EAP message, a Response.
        eap: oxswan_wire::payloads::EapPayload,
        /// The client's address (RADIUS Calling-Station-Id).
        peer: SocketAddr,
        /// Our address (RADIUS Called-Station-Id, NAS-IP-Address).
        local: SocketAddr,
    },
    IkeSaUp {
        /// Which SA.
        sa: SaHandle,
        /// Its parameters.
        info: IkeSaInfo,
    },
    /// The IKE SA is gone (and with it all its CHILD SAs, each reported by [`Event::ChildSaDeleted`]
    /// first).
    IkeSaDown {
        /// Which SA.
        sa: SaHandle,
        /// The connection's name, if known (a responder learns it in IKE_AUTH).
        name: Option<String>,
        /// Why.
        reason: DownReason,
    },
    /// A CHILD SA pair is ready for the data plane.
    ChildSaReady {
        /// The IKE SA it belongs to.
        sa: SaHandle,
        /// Keys and parameters.
        child: Box<ChildSa>,
    },
    /// No CHILD SA came with IKE_AUTH; the IKE SA stays up without it (RFC 7296 §1.2).
    ChildSaFailed {
        /// The IKE SA.
        sa: SaHandle,
        /// The child's name.
        name: String,
        /// The notify that says why (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN, ...).
        reason: NotifyType,
    },
    /// A CHILD SA pair was removed; the data plane drops its keys.
    ChildSaDeleted {
        /// The IKE SA it belonged to.
        sa: SaHandle,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
    },
    /// Authentication failed, on either side.
    AuthFailed {
        /// The IKE SA.
        sa: SaHandle,
        /// The peer's address.
        peer: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The IKE SA `old` was rekeyed into `new`, which holds its CHILD SAs now (§2.18). `old` ends
    /// with [`DownReason::Rekeyed`] once it is deleted.
    IkeSaRekeyed {
        /// The replaced SA.
        old: SaHandle,
        /// The new SA.
        new: SaHandle,
        /// The new SA's parameters (SPIs, proposal).
        info: IkeSaInfo,
    },
    /// The gateway redirected this client's established IKE SA (RFC 5685 §5): call
    /// [`Endpoint::follow_redirect`](crate::Endpoint::follow_redirect) with the new gateway's
    /// address, which sets the SA up there and deletes this one once that is up; `Err` says why
    /// it cannot be followed (a gateway named by FQDN, a malformed notify).
    Redirect {
        /// The IKE SA.
        sa: SaHandle,
        /// Its connection.
        name: String,
        /// The new gateway.
        to: core::result::Result<core::net::IpAddr, String>,
    },
    /// The IKE SA is due for reauthentication (`reauth_time`): call
    /// [`Endpoint::reauthenticate`](crate::Endpoint::reauthenticate) with the addresses to use. The
    /// old SA is deleted once the new one and all its CHILD SAs are up.
    ReauthDue {
        /// The IKE SA.
        sa: SaHandle,
        /// Its connection.
        name: String,
    },
    /// Start sending on the CHILD SA with this inbound SPI (the responder of a rekey, see
    /// [`ChildSa::outbound`]). It comes right before the old pair's [`Event::ChildSaDeleted`], so
    /// that a data plane acting on the events in order always has a pair to send on.
    ChildSaOutbound {
        /// The IKE SA.
        sa: SaHandle,
        /// The new CHILD SA's inbound SPI.
        spi_in: u32,
    },
    /// The endpoint started demanding cookies of every new initiator (`on`), as `half_open` IKE
    /// SAs reached the threshold (RFC 7296 §2.6), or stopped when they fell below it: once per
    /// episode, for the log.
    CookieMode {
        /// Demanding now.
        on: bool,
        /// Half-open IKE SAs at the change.
        half_open: usize,
    },
    /// We answered an IKE_SA_INIT request with an error notify and kept no state (RFC 7296 §2.21.1):
    /// no acceptable proposal, a key exchange in another group, or a malformed request.
    InitRejected {
        /// The initiator's address.
        peer: SocketAddr,
        /// The notify we answered with.
        notify: NotifyType,
        /// Why.
        reason: String,
    },
    /// The peer's address or port changed on an established IKE SA (a NAT rebinding, RFC 7296
    /// §2.23): its IKE messages and its CHILD SAs' ESP go to `remote`, from `local`, from now on.
    PathChanged {
        /// The IKE SA.
        sa: SaHandle,
        /// Our address and port.
        local: SocketAddr,
        /// The peer's new address and port.
        remote: SocketAddr,
        /// The CHILD SAs (by inbound SPI) whose ESP moves: named here, as the exchange that showed
        /// the move may hand them to another IKE SA (a rekey) before the event is read.
        spis_in: Vec<u32>,
    },
    /// A CHILD SA reached a volume limit (or the end of its sequence numbers, RFC 4303 §3.3.3): it is
    /// being rekeyed, or deleted.
    VolumeLimit {
        /// The IKE SA.
        sa: SaHandle,
        /// The pair's inbound SPI.
        spi_in: u32,
        /// What happens to it.
        action: crate::volume::VolumeAction,
        /// The counters that reached the limit.
        usage: crate::volume::ChildUsage,
    },
    /// An empty INFORMATIONAL request (a liveness check) we sent was answered.
    LivenessConfirmed {
        /// The IKE SA.
        sa: SaHandle,
    },
    /// The client acknowledged our REDIRECT of its established IKE SA
    /// ([`Endpoint::redirect`](crate::Endpoint::redirect), RFC 5685 §5).
    RedirectAcknowledged {
        /// The IKE SA.
        sa: SaHandle,
    },
}
