//! The core of one IKE SA (RFC 7296 §1, §2.8, §2.23): SPIs, role, the connection, keys, the path,
//! its lifecycle, one table of timers and one table of CHILD SAs. The tasks of [`crate::task`] read
//! and change it; the task manager of [`crate::ike_sa`] owns message IDs and the request in flight,
//! and takes the exchanges the core asks for ([`Ask`]).

use core::net::SocketAddr;
use std::sync::Arc;

use oxswan_crypto::proposal::proposal_to_string;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::{ExchangeType, HashAlgorithm, Identity, IkeSpi, Payload};

use crate::config::PeerConfig;
use crate::event::{ChildSa, DownReason, Event, IkeSaInfo, SaHandle};
use crate::init::IkeSaInit;
use crate::nat::NatState;

mod children;
mod timers;
mod transport;

pub(crate) use children::{ChildRecord, ChildTable, Pair};
pub(crate) use timers::{Timer, TimerTable};
pub(crate) use transport::{Ctx, Outbox, Unfragmented, later};
pub use transport::{NAT_KEEPALIVE, Transmit, Transport};

/// How long a closed SA lingers to answer retransmissions of the request that closed it from its cache.
const LINGER: core::time::Duration = core::time::Duration::from_secs(10);

/// The standard IKE ports (RFC 7296 §2.23, RFC 3948 §2).
pub const IKE_PORT: u16 = 500;
/// The NAT-T port.
pub const NAT_T_PORT: u16 = 4500;

/// Where the SA is in its exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT or IKE_AUTH in flight.
    Connecting,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH ([`Timer::HalfOpen`]).
    HalfOpen,
    /// Both sides authenticated.
    Established,
    /// Gone; answers retransmissions from the cache until [`Timer::Linger`], then is removed.
    Closed,
}

/// Whether the SA is still the connection's, or was replaced and only waits to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// In service.
    Live,
    /// A rekey replaced it (§2.18), or it is the tentative or redundant SA of a simultaneous rekey
    /// (§2.8.2): its end is not the connection's.
    Rekeyed,
    /// A reauthentication replaced it; it is being deleted.
    Reauthenticated,
    /// It reached its hard end (`over_time`).
    Expired,
}

/// Why the SA was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A connection coming up, or a responder.
    Connect,
    /// It reauthenticates another SA of the connection: no INITIAL_CONTACT, which would make the
    /// peer drop the SA it replaces before the new one is complete (§2.4).
    Reauthentication,
    /// It follows a gateway's REDIRECT (RFC 5685 §5) of another SA of the connection.
    Redirected,
}

/// An exchange waiting its turn on an established SA (window size 1, §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// DELETE of the IKE SA (§1.4.1).
    DeleteIke,
    /// DELETE of the CHILD SA with this inbound SPI.
    DeleteChild(u32),
    /// DELETE of a pair the peer installed for an answer we could not use, by the inbound SPI we
    /// offered and never installed (§1.4.1): the peer drops its half.
    DeleteUninstalled(u32),
    /// An empty INFORMATIONAL request (§1.4: liveness check).
    Liveness,
    /// CREATE_CHILD_SA rekeying the CHILD SA with this inbound SPI (§1.3.3).
    RekeyChild(u32),
    /// CREATE_CHILD_SA rekeying the IKE SA (§1.3.2).
    RekeyIke,
    /// CREATE_CHILD_SA for the connection's child with this index (§1.3.1).
    NewChild(u16),
    /// CREATE_CHILD_SA for the per-resource pair of the child with this index for our resource
    /// with this number (RFC 9611).
    NewResourceChild(u16, u32),
    /// INFORMATIONAL with UPDATE_SA_ADDRESSES: the SA moves to the first of its probed paths
    /// (RFC 4555 §3.5).
    UpdateAddresses,
    /// INFORMATIONAL with REDIRECT to [`SaCore::redirect_to`] (RFC 5685 §5).
    Redirect,
}

/// What the core asks of the task manager, which takes it after every step.
#[derive(Debug)]
pub(crate) enum Ask {
    /// Queue an exchange behind the others.
    Queue(Job),
    /// Queue an exchange before the others (a consequence of the one just done).
    First(Job),
    /// Forget the exchanges queued for the IKE SA itself: the SA is replaced. Those for its CHILD
    /// SAs go with them to the heir.
    ClearQueue,
    /// Send a request once, without waiting for its answer (a last word before the SA ends).
    Once(ExchangeType, Vec<Payload>),
}

/// The IKE SA's keys. What only IKE_AUTH needs (the nonces and both IKE_SA_INIT messages that the
/// AUTH payloads sign, SK_pi and SK_pr, RFC 7296 §2.15; the peer's notifies; SK_a*/SK_e*, copied
/// into `sk_out`/`sk_in`) stays in `handshake` until the SA is established, and then goes: an
/// established SA derives from SK_d alone (CHILD SAs §2.17, its rekey §2.18).
#[derive(Debug)]
pub(crate) struct Keys {
    pub proposal: oxswan_wire::sa::Proposal,
    pub suite: oxswan_crypto::keys::IkeSuite,
    pub sk_d: oxswan_crypto::Secret,
    pub sk_out: SkKeys,
    pub sk_in: SkKeys,
    pub handshake: Option<Box<IkeSaInit>>,
    /// SK_d has a PPK mixed in (RFC 8784), or came from one that had.
    pub ppk_used: bool,
}

impl Keys {
    /// The keys of an IKE SA that IKE_SA_INIT made, `handshake` kept for IKE_AUTH.
    pub(crate) fn new(init: IkeSaInit, sk_out: SkKeys, sk_in: SkKeys) -> Self {
        Self {
            proposal: init.proposal.clone(),
            suite: init.suite,
            sk_d: init.keys.sk_d.clone(),
            sk_out,
            sk_in,
            handshake: Some(Box::new(init)),
            ppk_used: false,
        }
    }
}

/// The peer rekeyed this IKE SA while our own rekey of it was in flight (§2.8.2): the SA its exchange
/// made, by our SPI of it, and the lowest nonce of that exchange. Which new SA survives is known once
/// our exchange completes; until then the CHILD SAs stay here.
#[derive(Debug)]
pub(crate) struct IkeCollision {
    pub theirs: IkeSpi,
    pub lowest_nonce: Vec<u8>,
}

/// What an IKE SA hands to the IKE SA that replaces it (§2.18): its CHILD SAs with their state, and
/// the exchanges queued for them (a rekey or delete whose timer already fired).
#[derive(Debug, Default)]
pub(crate) struct Inheritance {
    pub children: Vec<ChildRecord>,
    pub jobs: Vec<Job>,
    /// Where a queued [`Job::Redirect`] among `jobs` sends the client.
    pub redirect_to: Option<Box<crate::redirect::Gateway>>,
}

impl Job {
    /// Whether the job goes with the CHILD SAs to an heir rather than with the IKE SA replaced:
    /// it is about a CHILD SA, or it is the client's redirect (RFC 5685 §5), which the heir sends.
    pub(crate) fn is_child_job(self) -> bool {
        matches!(
            self,
            Job::DeleteChild(_)
                | Job::DeleteUninstalled(_)
                | Job::RekeyChild(_)
                | Job::NewChild(_)
                | Job::NewResourceChild(..)
                | Job::Redirect
        )
    }
}

impl Inheritance {
    /// The inbound and outbound SPIs of the CHILD SAs, for when nobody takes them.
    pub(crate) fn child_spis(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.children.iter().map(|c| (c.sa.spi_in, c.sa.spi_out))
    }
}

/// The core of one IKE SA.
#[derive(Debug)]
pub(crate) struct SaCore {
    pub handle: SaHandle,
    pub initiator: bool,
    pub peer: Option<Arc<PeerConfig>>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// UDP, or TCP (RFC 9329): an SA that came up over TCP stays on it, rekeyed or not.
    pub transport: Transport,
    pub spi_i: IkeSpi,
    pub spi_r: IkeSpi,
    pub state: State,
    pub lifecycle: Lifecycle,
    pub origin: Origin,
    pub keys: Option<Box<Keys>>,
    pub timers: TimerTable,
    pub children: ChildTable,
    pub nat: NatState,
    pub peer_id: Option<Identity>,
    /// The hashes of the peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), if it sent the notify.
    pub peer_hashes: Option<Vec<HashAlgorithm>>,
    /// Where the IKE_SA_INIT request came from (the key for its retransmissions).
    pub init_remote: SocketAddr,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3), as we do.
    pub peer_fragmentation: bool,
    /// As responder: what the initiator said of redirects (RFC 5685 §3, §4).
    pub peer_redirect: crate::redirect::PeerRedirect,
    /// Where the queued [`Job::Redirect`] sends the client (RFC 5685 §5).
    pub redirect_to: Option<Box<crate::redirect::Gateway>>,
    /// The lineage began with a session resumption (RFC 5723), not a full IKE_SA_INIT.
    pub resumed: bool,
    /// The peer sent INITIAL_CONTACT with its IKE_AUTH, not yet acted upon (§2.4).
    pub initial_contact: bool,
    /// The peer sent INITIAL_CONTACT with its IKE_AUTH (kept, for [`crate::IkeSaInfo`]).
    pub announced_initial_contact: bool,
    /// Pairs (inbound SPIs) this step made as responder, not by a rekey: the endpoint looks for the
    /// pairs they replace (a reauthentication, §2.8.3).
    pub fresh_pairs: Vec<u32>,
    /// The peer's rekey of this IKE SA crossed ours (§2.8.2), not yet resolved.
    /// Boxed, as the other rare states: the SA's own size is paid for each of them.
    pub ike_collision: Option<Box<IkeCollision>>,
    /// The peer's rekey of this IKE SA waiting for its IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4).
    pub followup: Option<Box<crate::task::ike_followup::FollowupResponder>>,
    /// The peer's CHILD SA waiting for its IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4).
    pub child_followup: Option<Box<crate::task::child_followup::FollowupChildR>>,
    /// What the task manager is to do next, in order.
    pub asks: Vec<Ask>,
    /// Virtual IPs: those the gateway gave us, or those we lent the client (RFC 7296 §3.15).
    pub vips: VirtualIps,
    /// As responder: EAP in progress between IKE_AUTH rounds (§2.16).
    pub eap: Option<Box<EapResponder>>,
    /// The peer's EAP identity, once it authenticated with EAP.
    pub eap_identity: Option<String>,
    /// It just came up, and the endpoint has not applied the connection's `unique` policy yet.
    pub just_established: bool,
    /// Why our DELETE of it is sent (the uniqueness policy), instead of a plain local delete.
    pub delete_reason: Option<Box<DownReason>>,
    /// We made the first IKE SA of this lineage (rekeys pass it on): the original initiator decides
    /// on MOBIKE's addresses (RFC 4555 §3.1).
    pub original_initiator: bool,
    /// Both sides announced MOBIKE_SUPPORTED in IKE_AUTH (RFC 4555 §3.3).
    pub mobike: bool,
    /// The peer's other addresses (ADDITIONAL_IP4/6_ADDRESS, RFC 4555 §3.4, §3.6), where a new path
    /// may lead when its current address is unreachable.
    pub peer_addresses: Vec<core::net::IpAddr>,
    /// Paths (our address, the peer's) that a MOBIKE update in progress tries, the preferred first;
    /// empty when the SA stays where it is (RFC 4555 §3.5, §3.7).
    pub probe: Vec<(SocketAddr, SocketAddr)>,
    /// The addresses of the message being handled: on which of ours and from where it came.
    pub received_on: (SocketAddr, SocketAddr),
}

/// The responder's EAP between the IKE_AUTH rounds (RFC 7296 §2.16).
#[derive(Debug)]
pub(crate) struct EapResponder {
    /// The connection chosen in the first round.
    pub peer: Arc<PeerConfig>,
    /// Who runs the method.
    pub backend: EapBackend,
    /// The initiator's IDi of the first round, which its final AUTH covers.
    pub idi: oxswan_wire::id::IdPayload,
    /// Its identity.
    pub identity: Identity,
    /// Our IDr's octets, which our final AUTH covers.
    pub idr_body: Vec<u8>,
    /// The first request's CP, CHILD SA and notify payloads, answered in the last round.
    pub first: Vec<Payload>,
    /// The method succeeded: the EAP identity and the key for both AUTH payloads.
    pub done: Option<(String, Option<oxswan_crypto::Secret>)>,
    /// The method's failure was reported already (an MSCHAPv2 Failure-Request went out, which
    /// charon and Windows never answer).
    pub reported: bool,
}

/// Who runs the gateway's EAP method.
#[derive(Debug)]
pub(crate) enum EapBackend {
    /// We do.
    Local(Box<oxswan_eap::EapServer>),
    /// An authentication server the daemon asks (RADIUS).
    Relay(EapRelayState),
}

/// EAP passed through: what the rounds need besides the server's answers.
#[derive(Debug, Default)]
pub(crate) struct EapRelayState {
    /// The client's EAP identity, once it said it.
    pub identity: Option<Vec<u8>>,
    /// Payloads that go before the server's EAP message in the waiting response (the first
    /// round's IDr, CERT and AUTH).
    pub prefix: Vec<Payload>,
    /// The identifier of the client's last EAP Response, which an EAP-Success made here takes.
    pub last_identifier: u8,
}

impl EapResponder {
    /// The failure the method is about to end with, as an authentication error.
    pub(crate) fn pending_failure(&self) -> Option<crate::auth::AuthError> {
        let EapBackend::Local(server) = &self.backend else { return None };
        let e = server.pending_error()?;
        let user = e
            .identity()
            .map(str::to_owned)
            .or_else(|| server.identity().map(|i| String::from_utf8_lossy(i).into_owned()));
        Some(crate::auth::AuthError::Eap { user, reason: e.to_string() })
    }
}

/// The virtual IPs of an IKE SA and what came with them (RFC 7296 §2.19).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct VirtualIps {
    /// As client: our addresses, given by the gateway.
    pub local: Vec<core::net::IpAddr>,
    /// As client: the DNS servers the gateway named.
    pub dns: Vec<core::net::IpAddr>,
    /// As client: the subnets the gateway said are behind it.
    pub split_include: Vec<(core::net::IpAddr, u8)>,
    /// As client: the DNS domains of those servers (RFC 8598).
    pub dns_domains: Vec<String>,
    /// As gateway: the addresses lent to the client, released when the SA goes.
    pub leases: Vec<crate::leases::Lease>,
    /// As gateway: whom the leases belong to (the client's EAP identity, else its IKE identity).
    pub owner: String,
}

impl SaCore {
    pub(crate) fn new(
        handle: SaHandle,
        initiator: bool,
        peer: Option<Arc<PeerConfig>>,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: IkeSpi,
        spi_r: IkeSpi,
    ) -> Self {
        Self {
            handle,
            initiator,
            peer,
            local,
            remote,
            transport: Transport::Udp,
            spi_i,
            spi_r,
            state: State::Established,
            lifecycle: Lifecycle::Live,
            origin: Origin::Connect,
            keys: None,
            timers: TimerTable::default(),
            children: ChildTable::default(),
            nat: NatState::default(),
            peer_id: None,
            peer_hashes: None,
            init_remote: remote,
            peer_fragmentation: false,
            peer_redirect: crate::redirect::PeerRedirect::Unsupported,
            redirect_to: None,
            resumed: false,
            initial_contact: false,
            announced_initial_contact: false,
            fresh_pairs: Vec::new(),
            ike_collision: None,
            followup: None,
            child_followup: None,
            asks: Vec::new(),
            vips: VirtualIps::default(),
            eap: None,
            eap_identity: None,
            just_established: false,
            delete_reason: None,
            original_initiator: initiator,
            mobike: false,
            peer_addresses: Vec::new(),
            probe: Vec::new(),
            received_on: (local, remote),
        }
    }

    /// Our SPI, by which the peer's messages reach us.
    pub(crate) fn local_spi(&self) -> IkeSpi {
        if self.initiator { self.spi_i } else { self.spi_r }
    }

    pub(crate) fn is_established(&self) -> bool {
        self.state == State::Established
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The connection's name, once known.
    pub(crate) fn name(&self) -> Option<&str> {
        self.peer.as_deref().map(|p| p.name.as_str())
    }

    /// Asks for an exchange: queued on an established SA; a DELETE of an SA not up yet forgets it,
    /// as there is nothing to tell the peer with protection (strongSwan does the same).
    pub(crate) fn queue(&mut self, ctx: &mut Ctx<'_>, job: Job) {
        match self.state {
            State::Established => self.asks.push(Ask::Queue(job)),
            State::Closed => {}
            _ if job == Job::DeleteIke => self.close(ctx, DownReason::LocalDeleted),
            _ => {}
        }
    }

    /// Moves the lifecycle on: a rekey outranks everything, a reauthentication or the hard end
    /// only an SA still in service.
    pub(crate) fn supersede(&mut self, to: Lifecycle) {
        if to == Lifecycle::Rekeyed || self.lifecycle == Lifecycle::Live {
            self.lifecycle = to;
        }
    }

    /// Gives back the virtual IPs lent to the client: the IKE SA that held them is gone.
    pub(crate) fn release_leases(&mut self, ctx: &mut Ctx<'_>) {
        for lease in core::mem::take(&mut self.vips.leases) {
            ctx.leases.release(&lease, &self.vips.owner, ctx.now);
        }
    }

    /// Parameters for status and events.
    pub(crate) fn info(&self) -> Option<IkeSaInfo> {
        let peer = self.peer.as_ref()?;
        let keys = self.keys.as_ref()?;
        Some(IkeSaInfo {
            name: peer.name.clone(),
            initiator: self.initiator,
            original_initiator: self.original_initiator,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            local: self.local,
            remote: self.remote,
            transport: self.transport,
            local_id: peer.local_id.clone(),
            remote_id: self.peer_id.clone()?,
            proposal: proposal_to_string(&keys.proposal),
            nat: self.nat,
            local_vips: self.vips.local.clone(),
            remote_vips: self.vips.leases.iter().map(|l| l.addr).collect(),
            remote_vip_holdings: self.vips.leases.iter().map(|l| l.holding).collect(),
            dns: self.vips.dns.clone(),
            dns_domains: self.vips.dns_domains.clone(),
            eap_id: self.eap_identity.clone(),
            mobike: self.mobike,
            ppk: self.keys.as_ref().is_some_and(|k| k.ppk_used),
            // Sent here by another gateway (ours, or the client's REDIRECTED_FROM).
            redirected: self.origin == Origin::Redirected
                || matches!(self.peer_redirect, crate::redirect::PeerRedirect::From(_)),
            resumed: self.resumed,
            initial_contact: self.announced_initial_contact,
        })
    }

    /// The connection and who the peer is (its EAP identity if it has one, else its IKE identity),
    /// once known: what the endpoint indexes established SAs by. Cheaper than [`SaCore::info`],
    /// which formats the proposal and copies the addresses, and runs after every message.
    pub(crate) fn peer_key(&self) -> Option<(String, String)> {
        let peer = self.peer.as_ref()?;
        self.keys.as_ref()?;
        let who = match &self.eap_identity {
            Some(e) => e.clone(),
            None => crate::cert::identity_string(self.peer_id.as_ref()?),
        };
        Some((peer.name.clone(), who))
    }

    /// The CHILD SAs as the data plane knows them.
    pub(crate) fn children(&self) -> Vec<ChildSa> {
        self.children.snapshot()
    }

    /// Ends the SA: reports its children and itself gone and lingers to answer retransmissions. The
    /// task manager drops its request in flight and its queue when it sees the SA closed.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        if self.state == State::Closed {
            return;
        }
        for c in self.children.take() {
            ctx.out.events.push_back(Event::ChildSaDeleted {
                sa: self.handle,
                spi_in: c.sa.spi_in,
                spi_out: c.sa.spi_out,
            });
        }
        let reason = self.down_reason(reason);
        ctx.out.events.push_back(Event::IkeSaDown { sa: self.handle, name: self.name().map(str::to_owned), reason });
        self.release_leases(ctx);
        self.timers.clear();
        self.timers.set(Timer::Linger, later(ctx.now, LINGER));
        self.state = State::Closed;
    }

    /// Why this SA ended: its lifecycle when it was replaced or expired, else `reason`.
    pub(crate) fn down_reason(&self, reason: DownReason) -> DownReason {
        match self.lifecycle {
            Lifecycle::Rekeyed => DownReason::Rekeyed,
            Lifecycle::Reauthenticated => DownReason::Reauthenticated,
            Lifecycle::Expired => DownReason::Expired,
            Lifecycle::Live => reason,
        }
    }

    pub(crate) fn auth_failed(&mut self, ctx: &mut Ctx<'_>, reason: crate::auth::AuthError) {
        let text = reason.to_string();
        ctx.out.events.push_back(Event::AuthFailed { sa: self.handle, peer: self.remote, reason: text });
        self.close(ctx, DownReason::AuthFailed(reason));
    }

    /// §2.23: with a NAT in the path, the peer's address is where its latest authenticated message
    /// came from; without one the addresses still follow the initiator's float to port 4500. A host
    /// behind a NAT does not follow (§2.23: it would open a denial of service, as the UDP header is
    /// not protected), nor does an SA that floated to 4500 go back to 500, nor a MOBIKE SA whose
    /// peer is not behind a NAT: it moves by UPDATE_SA_ADDRESSES only (RFC 4555 §3.5). A change on
    /// an established SA (a NAT rebinding) moves its CHILD SAs' ESP too: the data plane hears of it
    /// through [`Event::PathChanged`].
    pub(crate) fn update_addresses(&mut self, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr) {
        if ctx.transport != self.transport || (local, remote) == (self.local, self.remote) {
            // An SA on TCP stays there, and one on UDP does not move to a stream (RFC 9329 §6:
            // the transport is the initiator's choice when it sets the SA up).
            return;
        }
        // Over TCP the stream is the path: the initiator opens a new one when the old one breaks
        // (RFC 9329 §6), with a new port, and an authentic message on it moves the SA there. The
        // UDP rules below (§2.23: who follows whom behind a NAT) guard against forged UDP
        // sources, which a TCP handshake already rules out.
        let tcp = self.transport == Transport::Tcp;
        if !(tcp || self.nat.any() || local.port() == NAT_T_PORT) {
            return;
        }
        let unfloat = self.local.port() == NAT_T_PORT && local.port() != NAT_T_PORT;
        let established = self.is_established();
        if !tcp
            && ((established && self.nat.local_behind_nat)
                || unfloat
                || (established && self.mobike && !self.nat.remote_behind_nat))
        {
            return;
        }
        if established {
            self.move_to(ctx, local, remote);
        } else {
            self.local = local;
            self.remote = remote;
        }
    }

    /// Moves the SA and its CHILD SAs to `(local, remote)` and ends any probing: the data plane hears
    /// of it through [`Event::PathChanged`].
    pub(crate) fn move_to(&mut self, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr) {
        self.probe.clear();
        if (local, remote) == (self.local, self.remote) {
            return;
        }
        self.local = local;
        self.remote = remote;
        if self.is_established() {
            let mut spis_in = Vec::new();
            for c in self.children.iter_mut() {
                c.sa.local = local;
                c.sa.remote = remote;
                spis_in.push(c.sa.spi_in);
            }
            ctx.out.events.push_back(Event::PathChanged { sa: self.handle, local, remote, spis_in });
        }
    }

    /// Authentic ESP of one of our pairs came from `remote`, not from where the SA's ESP goes: the
    /// NAT in front of the peer gave it a new mapping (RFC 7296 §2.23, RFC 3948). The SA follows at
    /// once, as the kernel's XFRM mapping events make strongSwan do, rather than waiting for the
    /// peer's next IKE message; only when the peer is behind a NAT and we are not (§2.23).
    pub(crate) fn esp_moved(&mut self, ctx: &mut Ctx<'_>, remote: SocketAddr) -> bool {
        let follows = self.is_established()
            && self.nat.remote_behind_nat
            && !self.nat.local_behind_nat
            && remote != self.remote
            && remote.is_ipv4() == self.remote.is_ipv4()
            && remote.port() != 0;
        if follows {
            let local = self.local;
            self.move_to(ctx, local, remote);
        }
        follows
    }
    /// Where requests go: the first path a MOBIKE update tries, else the SA's.
    pub(crate) fn request_path(&self) -> (SocketAddr, SocketAddr) {
        self.probe.first().copied().unwrap_or((self.local, self.remote))
    }

    /// Where retransmissions go: every path the update tries (§3.7: the initiator of MOBIKE
    /// decides which paths to try), else the SA's.
    pub(crate) fn retransmit_paths(&self) -> Vec<(SocketAddr, SocketAddr)> {
        if self.probe.is_empty() { vec![(self.local, self.remote)] } else { self.probe.clone() }
    }

    /// The pair with inbound SPI `spi` is gone (deleted by either side): the responder of its rekey
    /// starts sending on the successor first, so that no packet finds neither (§2.8).
    pub(crate) fn child_gone(&mut self, ctx: &mut Ctx<'_>, spi: u32) {
        let Some(c) = self.children.remove(spi) else { return };
        self.activate_successor(ctx, spi);
        ctx.out.events.push_back(Event::ChildSaDeleted { sa: self.handle, spi_in: c.sa.spi_in, spi_out: c.sa.spi_out });
    }

    /// The old pair `old_in` is gone: the responder of its rekey starts sending on the new pair.
    pub(crate) fn activate_successor(&mut self, ctx: &mut Ctx<'_>, old_in: u32) {
        let Some(c) = self.children.iter_mut().find(|c| c.successor_of == Some(old_in)) else { return };
        c.successor_of = None;
        c.sa.outbound = true;
        ctx.out.events.push_back(Event::ChildSaOutbound { sa: self.handle, spi_in: c.sa.spi_in });
    }
}
