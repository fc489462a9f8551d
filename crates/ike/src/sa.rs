//! One IKE SA: its exchanges, message IDs, retransmission and response cache (RFC 7296 §1, §2.1–§2.3).
//!
//! The [`crate::Endpoint`] routes datagrams here by SPI. An `IkeSa` owns the request it has in flight
//! (window size 1, §2.3), retransmits it with backoff, caches its last response and resends it for a
//! retransmitted request without processing that again (§2.1). Everything it wants sent or reported goes
//! to the [`Outbox`].

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::auth::{psk_auth, scheme_hash, sign_auth, sign_auth_with, signed_octets, verify_auth, verify_psk};
use oxswan_crypto::hash::sha1;
use oxswan_crypto::keys::ChildSaKeys;
use oxswan_crypto::proposal::{proposal_to_string, select_proposal};
use oxswan_crypto::provider::{KeyType, SignatureScheme};
use oxswan_crypto::sk::{SkKeys, decrypt, protect, protect_fragment};
use oxswan_wire::id::IdPayload;
use oxswan_wire::notify::{DeletePayload, NotifyPayload};
use oxswan_wire::payloads::{AuthPayload, CertPayload, CertReqPayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::ts::{TrafficSelector, TsPayload};
use oxswan_wire::{
    AuthMethod, CertEncoding, ExchangeType, Flags, HashAlgorithm, Header, Identity, IkeSpi, Message, NotifyType,
    Payload, PayloadType, ProtocolId, emit_chain, parse_chain,
};

use crate::child::{self, ChosenEsp, Mode};
use crate::config::{LocalAuth, PeerConfig, RemoteAuth};
use crate::error::{IkeError, Result};
use crate::event::{ChildSa, DownReason, Event, IkeSaInfo, SaHandle};
use crate::init::{IkeSaInit, InitRequestSent, InitResponse};
use crate::nat::{NatState, detect, nat_notifies};

/// How long a closed SA lingers to answer retransmissions of the request that closed it from its cache.
const LINGER: core::time::Duration = core::time::Duration::from_secs(10);

/// Cookie round trips an initiator makes before it gives up (a responder asking again and again is
/// broken or hostile).
const MAX_COOKIE_TRIES: u8 = 3;

/// The standard IKE ports (RFC 7296 §2.23, RFC 3948 §2).
pub const IKE_PORT: u16 = 500;
/// The NAT-T port.
pub const NAT_T_PORT: u16 = 4500;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port to send from.
    pub local: SocketAddr,
    /// Where to.
    pub remote: SocketAddr,
    /// The IKE message. From or to port 4500 the I/O layer prepends the four-octet non-ESP marker
    /// (RFC 3948 §2.2).
    pub payload: Vec<u8>,
}

/// What the engine produced, drained by the `poll_*` methods.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
    /// Retransmitted requests answered from a response cache since the endpoint last looked.
    pub cache_hits: u64,
    /// IKE SAs that replace the one being handled (rekeyed, §2.18), for the endpoint to adopt.
    pub spawned: Vec<IkeSa>,
    /// The CHILD SAs of the SA being handled, for the IKE SA with this (local) SPI that replaces it.
    pub inherit: Option<(IkeSpi, ike_rekey::Inheritance)>,
    /// IKE SAs (by our SPI) that the peer's side of a simultaneous rekey made and that lost
    /// (§2.8.2): the peer should delete them, and they end by themselves if it does not.
    pub redundant: Vec<IkeSpi>,
}

/// What an exchange needs from the endpoint.
pub(crate) struct Ctx<'a> {
    pub provider: &'a CryptoProvider,
    pub out: &'a mut Outbox,
    pub now: Instant,
    /// Seconds since the Unix epoch, for certificate validity.
    pub unix_now: u64,
    /// Every configured connection: a responder picks one by the initiator's identities.
    pub peers: &'a [Arc<PeerConfig>],
    /// Messages longer than this are sent as IKE fragments when the peer supports them.
    pub fragment_size: usize,
}

/// The initiator's offer of the first CHILD SA in IKE_AUTH.
#[derive(Debug)]
struct ChildOffer {
    config: usize,
    spi_in: u32,
    offered: Vec<Proposal>,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
}

#[derive(Debug)]
enum State {
    /// Initiator: IKE_SA_INIT request in flight.
    InitSent { req: Box<InitRequestSent>, cookie_tries: u8, ke_retried: bool },
    /// Initiator: IKE_AUTH request in flight.
    AuthSent { child: Option<ChildOffer> },
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    HalfOpen { deadline: Instant },
    /// Both sides authenticated.
    Established,
    /// Gone; answers retransmissions from the cache until `until`, then is removed.
    Closed { until: Instant },
}

/// A request of ours in flight.
#[derive(Debug)]
struct Pending {
    message_id: u32,
    /// The request: one datagram, or its IKE fragments (RFC 7383).
    datagrams: Vec<Vec<u8>>,
    /// Transmissions so far.
    sent: u32,
    next_at: Instant,
    job: Job,
}

/// INFORMATIONAL work queued on an established SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// IKE_SA_INIT (initiator).
    Init,
    /// IKE_AUTH (initiator).
    Auth,
    /// DELETE of the IKE SA (§1.4.1).
    DeleteIke,
    /// DELETE of the CHILD SA with this inbound SPI.
    DeleteChild(u32),
    /// An empty INFORMATIONAL request (§1.4: liveness check).
    Liveness,
    /// CREATE_CHILD_SA rekeying the CHILD SA with this inbound SPI (§1.3.3).
    RekeyChild(u32),
    /// CREATE_CHILD_SA rekeying the IKE SA (§1.3.2).
    RekeyIke,
    /// CREATE_CHILD_SA for the connection's child with this index (§1.3.1).
    NewChild(u16),
}

/// The last response we sent, by the request it answered.
#[derive(Debug)]
struct Cached {
    message_id: u32,
    /// SHA-1 of the request datagram (of fragment 1 for a fragmented request, RFC 7383 §2.6.1).
    request_digest: [u8; 20],
    response: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Keys {
    init: IkeSaInit,
    sk_out: SkKeys,
    sk_in: SkKeys,
}

/// One IKE SA.
#[derive(Debug)]
pub(crate) struct IkeSa {
    pub handle: SaHandle,
    pub initiator: bool,
    peer: Option<Arc<PeerConfig>>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub spi_i: IkeSpi,
    pub spi_r: IkeSpi,
    state: State,
    keys: Option<Box<Keys>>,
    next_message_id: u32,
    pending: Option<Pending>,
    queue: VecDeque<Job>,
    expected_message_id: u32,
    cached: Option<Cached>,
    children: Vec<ChildSa>,
    nat: NatState,
    peer_id: Option<Identity>,
    /// The hashes of the peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), if it sent the notify.
    peer_hashes: Option<Vec<HashAlgorithm>>,
    /// Where the IKE_SA_INIT request came from (the key for its retransmissions).
    init_remote: SocketAddr,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3), as we do.
    peer_fragmentation: bool,
    /// Fragments of a message being received.
    reassembly: Option<Reassembly>,
    /// Our CREATE_CHILD_SA rekey in flight.
    rekey_offer: Option<Box<rekey::RekeyOffer>>,
    /// When to rekey each CHILD SA, by inbound SPI.
    rekey_at: Vec<(u32, Instant)>,
    /// Rekeys we answered: (old inbound SPI, new inbound SPI) until the old pair is deleted.
    successors: Vec<(u32, u32)>,
    /// The peer rekeyed a pair we were rekeying too (§2.8.1).
    collisions: Vec<rekey::Collision>,
    /// The peer sent INITIAL_CONTACT with its IKE_AUTH, not yet acted upon (§2.4).
    initial_contact: bool,
    /// Our IKE SA rekey in flight.
    ike_rekey_offer: Option<Box<ike_rekey::IkeRekeyOffer>>,
    /// When to rekey, reauthenticate and give up this IKE SA.
    ike_timers: ike_rekey::IkeTimers,
    /// This SA reauthenticates another: no INITIAL_CONTACT, which would make the peer drop the
    /// SA it replaces before the new one is complete (§2.4).
    pub(crate) reauthenticating: bool,
    /// A reauthentication replaced this SA.
    reauthenticated: bool,
    /// Our request for an additional CHILD SA in flight.
    new_child_offer: Option<Box<new_child::NewChildOffer>>,
    /// When each CHILD SA expires (its hard lifetime), by inbound SPI.
    expire_at: Vec<(u32, Instant)>,
    /// A rekey replaced this IKE SA; it only waits to be deleted.
    rekeyed: bool,
    /// The peer's rekey of this IKE SA crossed ours (§2.8.2), not yet resolved.
    ike_collision: Option<ike_rekey::IkeCollision>,
}

mod ike_rekey;
mod new_child;
mod rekey;

/// The fragments of one message (RFC 7383 §2.6).
#[derive(Debug)]
struct Reassembly {
    message_id: u32,
    response: bool,
    total: u16,
    next_inner: PayloadType,
    digest: Option<[u8; 20]>,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
}

/// What arrived.
enum Inbound {
    /// A fragment was stored; the message is not complete.
    Partial,
    /// The whole message.
    Complete { payloads: core::result::Result<Vec<Payload>, oxswan_wire::Error>, digest: [u8; 20] },
}

/// At most this many fragments per message, and this many octets reassembled: a bound on what a peer
/// can make us hold (a 64 KiB message in 512-octet fragments fits).
const MAX_FRAGMENTS: u16 = 128;
const MAX_REASSEMBLED: usize = 64 * 1024;

/// The most an SKF fragment adds to its share of the inner payloads: IKE header, SKF header, IV (16),
/// padding (up to 15), Pad Length and ICV (up to 32).
const FRAGMENT_OVERHEAD: usize = 28 + 8 + 16 + 15 + 1 + 32;

/// `now + d` without the panic of `Instant + Duration` on overflow: configured durations are capped
/// at a year.
pub(crate) fn later(now: Instant, d: core::time::Duration) -> Instant {
    let capped = d.min(core::time::Duration::from_secs(365 * 86_400));
    now.checked_add(capped).unwrap_or(now)
}

fn notify(ty: NotifyType) -> Payload {
    Payload::Notify(NotifyPayload::new(ty, Vec::new()))
}

impl IkeSa {
    /// Starts an IKE SA as initiator: sends IKE_SA_INIT.
    pub fn initiate(
        ctx: &mut Ctx<'_>,
        handle: SaHandle,
        peer: Arc<PeerConfig>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Self> {
        let spi_i = crate::init::random_spi(ctx.provider)?;
        let req = InitRequestSent::start(
            ctx.provider,
            &peer.ike_proposals,
            None,
            spi_i,
            init_nat_notifies(ctx.provider, &peer, spi_i, IkeSpi::ZERO, local, remote)?,
        )?;
        let mut sa = Self::new(handle, true, Some(peer), local, remote, spi_i, IkeSpi::ZERO);
        let datagram = req.request().to_vec();
        sa.state = State::InitSent { req: Box::new(req), cookie_tries: 0, ke_retried: false };
        sa.send_request(ctx, Job::Init, vec![datagram]);
        Ok(sa)
    }

    /// A responder SA after [`crate::init::respond`] accepted the request and `response` was sent.
    pub fn responder(
        ctx: &mut Ctx<'_>,
        handle: SaHandle,
        init: IkeSaInit,
        local: SocketAddr,
        remote: SocketAddr,
        half_open_timeout: core::time::Duration,
    ) -> Result<Self> {
        let mut sa = Self::new(handle, false, None, local, remote, init.spi_i, init.spi_r);
        sa.nat = detect(&init.peer_notifies, init.spi_i, IkeSpi::ZERO, local, remote).unwrap_or_default();
        sa.peer_hashes = signature_hashes(&init.peer_notifies);
        sa.peer_fragmentation = announces_fragmentation(&init.peer_notifies);
        sa.cached = Some(Cached {
            message_id: 0,
            request_digest: sha1(&[&init.request]),
            response: vec![init.response.clone()],
        });
        sa.expected_message_id = 1;
        sa.keys = Some(Box::new(Keys {
            sk_out: SkKeys::for_sender(&init.keys, &init.suite, false)?,
            sk_in: SkKeys::for_sender(&init.keys, &init.suite, true)?,
            init,
        }));
        sa.state = State::HalfOpen { deadline: later(ctx.now, half_open_timeout) };
        Ok(sa)
    }

    fn new(
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
            spi_i,
            spi_r,
            state: State::Established,
            keys: None,
            next_message_id: 0,
            pending: None,
            queue: VecDeque::new(),
            expected_message_id: 0,
            cached: None,
            children: Vec::new(),
            nat: NatState::default(),
            peer_id: None,
            peer_hashes: None,
            init_remote: remote,
            peer_fragmentation: false,
            reassembly: None,
            rekey_offer: None,
            rekey_at: Vec::new(),
            successors: Vec::new(),
            collisions: Vec::new(),
            initial_contact: false,
            ike_rekey_offer: None,
            ike_timers: ike_rekey::IkeTimers::default(),
            expire_at: Vec::new(),
            new_child_offer: None,
            reauthenticating: false,
            reauthenticated: false,
            rekeyed: false,
            ike_collision: None,
        }
    }

    /// The key of a responder SA in the endpoint's table of IKE_SA_INIT requests.
    pub fn init_key(&self) -> Option<(IkeSpi, SocketAddr)> {
        (!self.initiator).then_some((self.spi_i, self.init_remote))
    }

    /// Our SPI, by which the peer's messages reach us.
    pub fn local_spi(&self) -> IkeSpi {
        if self.initiator { self.spi_i } else { self.spi_r }
    }

    /// Responder, IKE_SA_INIT answered but IKE_AUTH not yet complete.
    pub fn is_half_open(&self) -> bool {
        matches!(self.state, State::HalfOpen { .. })
    }

    /// Whether the SA is established.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Established with no request in flight or queued: its CHILD SAs are all made.
    pub fn is_idle(&self) -> bool {
        self.is_established() && self.pending.is_none() && self.queue.is_empty()
    }

    /// The connection this SA was made with (a reauthentication uses the same).
    pub fn peer_config(&self) -> Option<Arc<PeerConfig>> {
        self.peer.clone()
    }

    /// A reauthentication replaced this SA: delete it (§2.8.3), after the new one is up.
    pub fn reauthenticated(&mut self, ctx: &mut Ctx<'_>) {
        self.reauthenticated = true;
        self.ike_timers = Default::default();
        self.queue(ctx, Job::DeleteIke);
    }

    /// The reauthentication failed: try again at `at`.
    pub fn retry_reauth(&mut self, at: Instant) {
        self.ike_timers.retry_reauth(at);
    }

    /// Ended (it may linger a while to answer retransmissions).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// Whether the endpoint may forget this SA.
    pub fn is_finished(&self, now: Instant) -> bool {
        matches!(self.state, State::Closed { until } if now >= until)
    }

    /// The connection's name, once known.
    pub fn name(&self) -> Option<&str> {
        self.peer.as_deref().map(|p| p.name.as_str())
    }

    /// The CHILD SAs.
    pub fn children(&self) -> &[ChildSa] {
        &self.children
    }

    /// The next moment [`Self::handle_timeout`] has work.
    /// Whether the peer announced INITIAL_CONTACT (once: the flag is cleared).
    pub fn take_initial_contact(&mut self) -> bool {
        core::mem::take(&mut self.initial_contact)
    }

    /// Removes the SA without a word to the peer (it restarted and knows nothing of it).
    pub fn forget(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        self.pending = None;
        self.queue.clear();
        self.close(ctx, reason);
    }

    /// When the CHILD SA with this inbound SPI is due for rekeying.
    pub fn rekey_time(&self, spi_in: u32) -> Option<Instant> {
        self.rekey_at.iter().find(|(s, _)| *s == spi_in).map(|(_, at)| *at)
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        match self.state {
            State::HalfOpen { deadline } => Some(deadline),
            State::Closed { until } => Some(until),
            State::Established => {
                let rekey =
                    self.rekey_at.iter().chain(&self.expire_at).map(|(_, at)| *at).chain(self.ike_timers.next()).min();
                match (self.pending.as_ref().map(|p| p.next_at), rekey) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            _ => self.pending.as_ref().map(|p| p.next_at),
        }
    }

    /// Parameters for status and events.
    pub fn info(&self) -> Option<IkeSaInfo> {
        let peer = self.peer.as_ref()?;
        let keys = self.keys.as_ref()?;
        Some(IkeSaInfo {
            name: peer.name.clone(),
            initiator: self.initiator,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            local: self.local,
            remote: self.remote,
            local_id: peer.local_id.clone(),
            remote_id: self.peer_id.clone()?,
            proposal: proposal_to_string(&keys.init.proposal),
            nat: self.nat,
        })
    }

    // -----------------------------------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------------------------------

    /// Queues an INFORMATIONAL job; it is sent when no other request is in flight (window size 1).
    pub fn queue(&mut self, ctx: &mut Ctx<'_>, job: Job) {
        match self.state {
            State::Established => {
                self.queue.push_back(job);
                self.send_next(ctx);
            }
            State::Closed { .. } => {}
            // Deleting an SA that is not up yet: there is nothing to tell the peer with protection,
            // so forget it (strongSwan does the same).
            _ if job == Job::DeleteIke => self.close(ctx, DownReason::LocalDeleted),
            _ => {}
        }
    }

    fn send_next(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.is_some() || !self.is_established() {
            return;
        }
        while let Some(job) = self.queue.pop_front() {
            let payloads = match job {
                Job::DeleteIke => vec![Payload::Delete(DeletePayload::ike())],
                Job::DeleteChild(spi) => {
                    if !self.children.iter().any(|c| c.spi_in == spi) {
                        continue;
                    }
                    vec![Payload::Delete(DeletePayload::esp(&[spi]))]
                }
                Job::Liveness => Vec::new(),
                Job::RekeyIke | Job::NewChild(_) | Job::RekeyChild(_) => {
                    let payloads = match job {
                        Job::RekeyIke => self.ike_rekey_request(ctx, None),
                        Job::NewChild(index) => self.additional_child_request(ctx, index, None),
                        Job::RekeyChild(old) => self.rekey_request(ctx, old, None),
                        _ => None,
                    };
                    let Some(payloads) = payloads else { continue };
                    match self.encrypt_request(ctx, ExchangeType::CREATE_CHILD_SA, &payloads) {
                        Ok(datagram) => self.send_request(ctx, job, datagram),
                        Err(_) => self.close(ctx, DownReason::Protocol("cannot protect a request".into())),
                    }
                    return;
                }
                Job::Init | Job::Auth => continue,
            };
            match self.encrypt_request(ctx, ExchangeType::INFORMATIONAL, &payloads) {
                Ok(datagram) => self.send_request(ctx, job, datagram),
                Err(_) => self.close(ctx, DownReason::Protocol("cannot protect a request".into())),
            }
            return;
        }
    }

    fn encrypt_request(&mut self, ctx: &Ctx<'_>, exchange: ExchangeType, payloads: &[Payload]) -> Result<Vec<Vec<u8>>> {
        let flags = if self.initiator { Flags::INITIATOR } else { Flags(0) };
        let header = Header::new(self.spi_i, self.spi_r, exchange, flags, self.next_message_id);
        self.seal(ctx, &header, payloads)
    }

    /// Protects a message, as IKE fragments (RFC 7383 §2.5) when both sides announced support and it
    /// would exceed the fragment size.
    fn seal(&self, ctx: &Ctx<'_>, header: &Header, payloads: &[Payload]) -> Result<Vec<Vec<u8>>> {
        let keys = self.keys.as_ref().ok_or(IkeError::Unexpected("no keys"))?;
        let mut plain = Vec::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut plain)?;
        let chunk = ctx.fragment_size.saturating_sub(FRAGMENT_OVERHEAD).max(64);
        if !self.peer_fragmentation || plain.len() <= chunk {
            return Ok(vec![protect(ctx.provider, &keys.sk_out, header, payloads)?]);
        }
        let parts: Vec<&[u8]> = plain.chunks(chunk).collect();
        let total = u16::try_from(parts.len()).map_err(|_| IkeError::Unexpected("message too long to fragment"))?;
        parts
            .iter()
            .zip(1u16..)
            .map(|(part, n)| {
                let next = if n == 1 { first } else { PayloadType::NONE };
                Ok(protect_fragment(ctx.provider, &keys.sk_out, header, next, n, total, part)?)
            })
            .collect()
    }

    fn send_request(&mut self, ctx: &mut Ctx<'_>, job: Job, datagrams: Vec<Vec<u8>>) {
        for d in &datagrams {
            ctx.out.transmits.push_back(Transmit { local: self.local, remote: self.remote, payload: d.clone() });
        }
        let wait = self.retransmit().wait(0);
        self.pending =
            Some(Pending { message_id: self.next_message_id, datagrams, sent: 1, next_at: later(ctx.now, wait), job });
        self.next_message_id = self.next_message_id.wrapping_add(1);
    }

    fn retransmit(&self) -> crate::config::Retransmit {
        self.peer.as_ref().map(|p| p.retransmit).unwrap_or_default()
    }

    /// Ends the SA: reports its children and itself gone and lingers to answer retransmissions.
    fn close(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        if matches!(self.state, State::Closed { .. }) {
            return;
        }
        for c in self.children.drain(..) {
            ctx.out.events.push_back(Event::ChildSaDeleted { sa: self.handle, spi_in: c.spi_in, spi_out: c.spi_out });
        }
        let reason = self.down_reason(reason);
        ctx.out.events.push_back(Event::IkeSaDown { sa: self.handle, name: self.name().map(str::to_owned), reason });
        self.pending = None;
        self.queue.clear();
        self.state = State::Closed { until: later(ctx.now, LINGER) };
    }

    fn auth_failed(&mut self, ctx: &mut Ctx<'_>, reason: String) {
        ctx.out.events.push_back(Event::AuthFailed { sa: self.handle, peer: self.remote, reason: reason.clone() });
        self.close(ctx, DownReason::AuthFailed(reason));
    }

    // -----------------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------------

    /// Retransmits, gives up, or expires a half-open SA.
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if let State::HalfOpen { deadline } = self.state {
            if ctx.now >= deadline {
                self.close(ctx, DownReason::HalfOpenTimeout);
            }
            return;
        }
        if self.is_established() {
            self.rekey_timers(ctx);
            self.ike_lifetime_timers(ctx);
        }
        let retransmit = self.retransmit();
        let Some(p) = self.pending.as_mut() else { return };
        if ctx.now < p.next_at {
            return;
        }
        if p.sent > retransmit.tries {
            // §2.4: after the retransmissions are exhausted the peer is considered dead.
            let job = p.job;
            self.pending = None;
            let reason = if job == Job::DeleteIke { DownReason::LocalDeleted } else { DownReason::Timeout };
            self.close(ctx, reason);
            return;
        }
        for d in &p.datagrams {
            ctx.out.transmits.push_back(Transmit { local: self.local, remote: self.remote, payload: d.clone() });
        }
        p.next_at = later(ctx.now, retransmit.wait(p.sent));
        p.sent = p.sent.saturating_add(1);
    }

    // -----------------------------------------------------------------------------------------------
    // Messages
    // -----------------------------------------------------------------------------------------------

    /// A message for this SA, routed by SPI. Anything unacceptable is dropped with the state unchanged
    /// (the `Err` says why, for the log) unless the RFC names a notify to answer with.
    pub fn handle_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let h = *msg.header();
        // The Initiator flag tells who sent it (§3.1): it must be the other role than ours.
        if h.flags.initiator() == self.initiator {
            return Err(IkeError::Unexpected("initiator flag of our own role"));
        }
        if h.flags.response() {
            self.handle_response(ctx, local, remote, msg)
        } else {
            self.handle_request(ctx, local, remote, msg)
        }
    }

    fn handle_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let h = *msg.header();
        let Some(pending) = self.pending.as_ref() else { return Err(IkeError::Unexpected("no request in flight")) };
        if h.message_id != pending.message_id {
            return Err(IkeError::Unexpected("response to another message ID"));
        }
        let job = pending.job;
        if job == Job::Init {
            return self.handle_init_response(ctx, local, remote, msg);
        }
        let expected = match job {
            Job::Auth => ExchangeType::IKE_AUTH,
            Job::RekeyChild(_) | Job::RekeyIke | Job::NewChild(_) => ExchangeType::CREATE_CHILD_SA,
            _ => ExchangeType::INFORMATIONAL,
        };
        if h.exchange_type != expected {
            return Err(IkeError::Unexpected("response of another exchange type"));
        }
        let payloads = match self.receive(ctx, msg)? {
            Inbound::Partial => return Ok(()),
            Inbound::Complete { payloads: Ok(p), .. } => p,
            // A response we cannot parse after it authenticated: the peer is broken (§2.21.2).
            Inbound::Complete { payloads: Err(e), .. } => {
                self.pending = None;
                self.close(ctx, DownReason::Protocol(e.to_string()));
                return Ok(());
            }
        };
        self.pending = None;
        self.update_addresses(local, remote);
        match job {
            Job::Auth => self.handle_auth_response(ctx, payloads),
            Job::DeleteIke => self.close(ctx, DownReason::LocalDeleted),
            Job::DeleteChild(spi) => {
                if let Some(i) = self.children.iter().position(|c| c.spi_in == spi) {
                    let c = self.children.remove(i);
                    self.rekey_at.retain(|(s, _)| *s != spi);
                    // The successor sends before the old pair goes, so that no packet finds neither.
                    self.activate_successor(ctx, spi);
                    ctx.out.events.push_back(Event::ChildSaDeleted {
                        sa: self.handle,
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                    });
                }
            }
            Job::Liveness => ctx.out.events.push_back(Event::LivenessConfirmed { sa: self.handle }),
            Job::RekeyChild(old) => self.handle_rekey_response(ctx, old, payloads),
            Job::RekeyIke => self.handle_ike_rekey_response(ctx, payloads),
            Job::NewChild(index) => self.handle_new_child_response(ctx, index, payloads),
            Job::Init => {}
        }
        self.send_next(ctx);
        Ok(())
    }

    /// Decrypts an SK message, or an SKF fragment which it keeps until all fragments of the message
    /// are in (RFC 7383 §2.6). The outer `Err` is an integrity failure or garbage (drop, §2.21.2 forbids
    /// answering); `Partial` a stored fragment; `Complete` the inner payloads, or the payload error of
    /// an authentic message, with the digest that identifies a retransmission of the request.
    fn receive(&mut self, ctx: &Ctx<'_>, msg: &Message<'_>) -> Result<Inbound> {
        let keys = self.keys.as_ref().ok_or(IkeError::Unexpected("no keys yet"))?;
        let d = decrypt(ctx.provider, &keys.sk_in, msg)?;
        let h = msg.header();
        let Some((number, total)) = d.fragment else {
            return Ok(Inbound::Complete {
                payloads: parse_chain(d.next_inner, &d.data, d.offset),
                digest: sha1(&[msg.as_bytes()]),
            });
        };
        if total > MAX_FRAGMENTS {
            return Err(IkeError::Unexpected("too many fragments"));
        }
        let response = h.flags.response();
        let same = |r: &Reassembly| r.message_id == h.message_id && r.response == response;
        match &self.reassembly {
            // §2.6: fewer Total Fragments than before: a stale fragment, ignore it.
            Some(r) if same(r) && total < r.total => return Ok(Inbound::Partial),
            Some(r) if same(r) && total == r.total => {}
            // More: the sender fragmented again with a smaller size; start over. Or another message.
            _ => {
                self.reassembly = Some(Reassembly {
                    message_id: h.message_id,
                    response,
                    total,
                    next_inner: PayloadType::NONE,
                    digest: None,
                    parts: vec![None; usize::from(total)],
                    bytes: 0,
                })
            }
        }
        let Some(r) = self.reassembly.as_mut() else { return Ok(Inbound::Partial) };
        let slot = r.parts.get_mut(usize::from(number).saturating_sub(1)).ok_or(IkeError::Unexpected("fragment"))?;
        if slot.is_none() {
            r.bytes = r.bytes.saturating_add(d.data.len());
            if r.bytes > MAX_REASSEMBLED {
                self.reassembly = None;
                return Err(IkeError::Unexpected("reassembled message too long"));
            }
            *slot = Some(d.data);
            if number == 1 {
                r.next_inner = d.next_inner;
                r.digest = Some(sha1(&[msg.as_bytes()]));
            }
        }
        if r.parts.iter().any(Option::is_none) {
            return Ok(Inbound::Partial);
        }
        let Some(r) = self.reassembly.take() else { return Ok(Inbound::Partial) };
        let data: Vec<u8> = r.parts.into_iter().flatten().flatten().collect();
        Ok(Inbound::Complete {
            payloads: parse_chain(r.next_inner, &data, 0),
            digest: r.digest.unwrap_or_else(|| sha1(&[msg.as_bytes()])),
        })
    }

    /// §2.23: with a NAT in the path, the peer's address is where its latest authenticated message
    /// came from; without one the addresses still follow the initiator's float to port 4500.
    fn update_addresses(&mut self, local: SocketAddr, remote: SocketAddr) {
        if self.nat.any() || local.port() == NAT_T_PORT {
            self.local = local;
            self.remote = remote;
        }
    }

    fn handle_init_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let State::InitSent { req, cookie_tries, ke_retried } = &mut self.state else {
            return Err(IkeError::Unexpected("IKE_SA_INIT response in another state"));
        };
        let response = match req.handle_response(ctx.provider, msg.as_bytes()) {
            Ok(r) => r,
            // An error notify ends the attempt, as with strongSwan: only who saw our request knows SPIi,
            // and waiting out the retransmissions would not change the answer.
            Err(IkeError::PeerNotify(n)) => {
                self.pending = None;
                self.close(ctx, DownReason::PeerNotify(n));
                return Ok(());
            }
            // Anything else may be forged or garbled: keep waiting for the genuine response (§2.4).
            Err(e) => return Err(e),
        };
        let Some(peer) = self.peer.clone() else { return Err(IkeError::Unexpected("initiator without config")) };
        match response {
            InitResponse::RetryWithCookie(cookie) => {
                if *cookie_tries >= MAX_COOKIE_TRIES {
                    self.pending = None;
                    self.close(ctx, DownReason::PeerNotify(NotifyType::COOKIE));
                    return Ok(());
                }
                *cookie_tries = cookie_tries.saturating_add(1);
                let tries = *cookie_tries;
                let State::InitSent { req, .. } = core::mem::replace(&mut self.state, State::Established) else {
                    return Err(IkeError::Unexpected("state"));
                };
                let req = req.with_cookie(&cookie)?;
                self.restart_init(ctx, req, tries, false);
            }
            InitResponse::RetryWithGroup(group) => {
                // §1.2: retry once with the responder's group; a second INVALID_KE_PAYLOAD ends it.
                if *ke_retried {
                    self.pending = None;
                    self.close(ctx, DownReason::PeerNotify(NotifyType::INVALID_KE_PAYLOAD));
                    return Ok(());
                }
                let tries = *cookie_tries;
                let State::InitSent { req, .. } = core::mem::replace(&mut self.state, State::Established) else {
                    return Err(IkeError::Unexpected("state"));
                };
                let req = req.retry_with_group(ctx.provider, group)?;
                self.restart_init(ctx, req, tries, true);
            }
            InitResponse::Established(init) => {
                self.pending = None;
                self.spi_r = init.spi_r;
                self.peer_hashes = signature_hashes(&init.peer_notifies);
                self.peer_fragmentation = announces_fragmentation(&init.peer_notifies);
                self.nat = detect(&init.peer_notifies, init.spi_i, init.spi_r, local, remote).unwrap_or_default();
                if peer.force_encap {
                    self.nat.local_behind_nat = true;
                }
                // §2.23: the initiator moves to port 4500 once a NAT is detected; strongSwan also floats
                // for `encap`.
                if self.nat.any() {
                    if self.local.port() == IKE_PORT {
                        self.local.set_port(NAT_T_PORT);
                    }
                    if self.remote.port() == IKE_PORT {
                        self.remote.set_port(NAT_T_PORT);
                    }
                }
                self.keys = Some(Box::new(Keys {
                    sk_out: SkKeys::for_sender(&init.keys, &init.suite, true)?,
                    sk_in: SkKeys::for_sender(&init.keys, &init.suite, false)?,
                    init: *init,
                }));
                self.next_message_id = 1;
                self.send_auth_request(ctx, &peer)?;
            }
        }
        Ok(())
    }

    fn restart_init(&mut self, ctx: &mut Ctx<'_>, req: InitRequestSent, cookie_tries: u8, ke_retried: bool) {
        let datagram = req.request().to_vec();
        self.state = State::InitSent { req: Box::new(req), cookie_tries, ke_retried };
        // The retried request is a new message 0 (§2.6, §1.2), with a fresh retransmission budget.
        self.next_message_id = 0;
        self.send_request(ctx, Job::Init, vec![datagram]);
    }

    // -----------------------------------------------------------------------------------------------
    // IKE_AUTH, initiator
    // -----------------------------------------------------------------------------------------------

    fn send_auth_request(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig) -> Result<()> {
        let keys = self.keys.as_ref().ok_or(IkeError::Unexpected("no keys"))?;
        let init = &keys.init;
        let idi = IdPayload::from_identity(&peer.local_id);
        let mut payloads = vec![Payload::IdI(idi.clone())];
        if let LocalAuth::Cert(cert) = &peer.local_auth {
            payloads.extend(cert_payloads(&cert.chain));
        }
        if let RemoteAuth::Cert(trust) = &peer.remote_auth {
            payloads.push(Payload::CertReq(CertReqPayload {
                encoding: CertEncoding::X509_SIGNATURE,
                data: trust.certreq_hashes(),
            }));
        }
        if let Some(r) = &peer.remote_id {
            payloads.push(Payload::IdR(IdPayload::from_identity(r)));
        }
        let octets = signed_octets(
            &init.request,
            &init.nr,
            ctx.provider.prf.as_ref(),
            init.suite.prf,
            init.keys.sk_pi.expose(),
            &idi.auth_octets(),
        )?;
        payloads.push(Payload::Auth(self.make_auth(ctx, peer, &octets)?));
        if peer.initial_contact && !self.reauthenticating {
            payloads.push(notify(NotifyType::INITIAL_CONTACT));
        }
        let mut offer = None;
        if let Some(child) = peer.children.first() {
            let spi_in = child::random_esp_spi(ctx.provider)?;
            let offered = child::esp_offer(&child.esp_proposals, spi_in);
            let tsi = child::resolve(&child.local_ts, self.local.ip());
            let tsr = child::resolve(&child.remote_ts, self.remote.ip());
            let transport = child.mode == Mode::Transport;
            if transport {
                payloads.push(notify(NotifyType::USE_TRANSPORT_MODE));
            }
            payloads.push(Payload::Sa(SaPayload { proposals: offered.clone() }));
            payloads.push(Payload::TsI(TsPayload { selectors: tsi.clone() }));
            payloads.push(Payload::TsR(TsPayload { selectors: tsr.clone() }));
            offer = Some(ChildOffer { config: 0, spi_in, offered, tsi, tsr, transport });
        }
        let datagram = self.encrypt_request(ctx, ExchangeType::IKE_AUTH, &payloads)?;
        self.state = State::AuthSent { child: offer };
        self.send_request(ctx, Job::Auth, datagram);
        Ok(())
    }

    fn make_auth(&self, ctx: &Ctx<'_>, peer: &PeerConfig, octets: &[u8]) -> Result<AuthPayload> {
        let keys = self.keys.as_ref().ok_or(IkeError::Unexpected("no keys"))?;
        Ok(match &peer.local_auth {
            LocalAuth::Psk(psk) => AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: psk_auth(ctx.provider.prf.as_ref(), keys.init.suite.prf, psk.expose(), octets)?.expose().to_vec(),
            },
            LocalAuth::Cert(cert) => {
                // RFC 7427 §4: Digital Signature with a hash the peer announced; without the notify,
                // or without a common hash, the classic method of the key (RFC 4754 for ECDSA).
                // aws-lc-rs makes no SHA-1 signatures, so RSA and Ed25519 keys use Digital Signature
                // with our preferred hash either way.
                let key_type = cert.key.key_type();
                let announced = self.peer_hashes.as_ref().and_then(|hashes| {
                    schemes_for(key_type, peer.rsa_pss).iter().find(|s| hashes.contains(&scheme_hash(**s)))
                });
                match (announced, key_type) {
                    (Some(scheme), _) => sign_auth_with(cert.key.as_ref(), *scheme, octets)?,
                    (None, KeyType::EcdsaP256) => {
                        sign_auth(cert.key.as_ref(), AuthMethod::ECDSA_SHA256_P256, false, octets)?
                    }
                    (None, KeyType::EcdsaP384) => {
                        sign_auth(cert.key.as_ref(), AuthMethod::ECDSA_SHA384_P384, false, octets)?
                    }
                    (None, KeyType::EcdsaP521) => {
                        sign_auth(cert.key.as_ref(), AuthMethod::ECDSA_SHA512_P521, false, octets)?
                    }
                    (None, _) => sign_auth(cert.key.as_ref(), AuthMethod::DIGITAL_SIGNATURE, peer.rsa_pss, octets)?,
                }
            }
        })
    }

    fn handle_auth_response(&mut self, ctx: &mut Ctx<'_>, payloads: Vec<Payload>) {
        let Some(peer) = self.peer.clone() else { return };
        let State::AuthSent { child } = core::mem::replace(&mut self.state, State::Established) else {
            self.state = State::Closed { until: ctx.now };
            return;
        };
        let p = AuthPayloads::collect(payloads);
        // An error notify without AUTH: the responder refused us (§2.21.2) or the exchange.
        let (Some(idr), Some(auth)) = (p.idr.clone(), p.auth.clone()) else {
            let reason = p.error().unwrap_or(NotifyType::INVALID_SYNTAX);
            if reason == NotifyType::AUTHENTICATION_FAILED {
                ctx.out.events.push_back(Event::AuthFailed {
                    sa: self.handle,
                    peer: self.remote,
                    reason: "peer sent AUTHENTICATION_FAILED".into(),
                });
            }
            self.close(ctx, DownReason::PeerNotify(reason));
            return;
        };
        let verified = self.verify_peer(ctx, &peer, &idr, &auth, &p.certs, false);
        let remote_id = match verified {
            Ok(id) => id,
            Err(reason) => {
                // §2.21.2: tell the responder in a separate INFORMATIONAL exchange, once.
                if let Ok(ds) =
                    self.encrypt_request(ctx, ExchangeType::INFORMATIONAL, &[notify(NotifyType::AUTHENTICATION_FAILED)])
                {
                    for d in ds {
                        ctx.out.transmits.push_back(Transmit { local: self.local, remote: self.remote, payload: d });
                    }
                }
                self.auth_failed(ctx, reason);
                return;
            }
        };
        self.peer_id = Some(remote_id);
        self.state = State::Established;
        if let Some(info) = self.info() {
            ctx.out.events.push_back(Event::IkeSaUp { sa: self.handle, info });
            self.schedule_ike_rekey(ctx);
        }
        if let Some(offer) = child {
            self.finish_child_offer(ctx, &peer, offer, &p);
        }
        self.queue_more_children(ctx);
    }

    fn finish_child_offer(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig, offer: ChildOffer, p: &AuthPayloads) {
        let Some(config) = peer.children.get(offer.config) else { return };
        let fail = |s: &mut Self, ctx: &mut Ctx<'_>, reason| {
            ctx.out.events.push_back(Event::ChildSaFailed { sa: s.handle, name: config.name.clone(), reason });
        };
        if let Some(err) = p.error() {
            // §1.2: the IKE SA stays up without the child.
            fail(self, ctx, err);
            return;
        }
        let (Some(sa), Some(tsi), Some(tsr)) = (&p.sa, &p.tsi, &p.tsr) else {
            fail(self, ctx, NotifyType::NO_PROPOSAL_CHOSEN);
            return;
        };
        let chosen = match child::accept_esp(&offer.offered, &sa.proposals, false) {
            Ok(c) => c,
            Err(_) => {
                fail(self, ctx, NO_PROPOSAL_CHOSEN_LOCALLY);
                return;
            }
        };
        // §2.9: the responder may narrow, never widen.
        if !child::is_narrowing_of(&offer.tsi, &tsi.selectors) || !child::is_narrowing_of(&offer.tsr, &tsr.selectors) {
            fail(self, ctx, NotifyType::TS_UNACCEPTABLE);
            // The responder installed the pair: delete it (§1.4.1).
            self.delete_uninstalled_child(ctx, offer.spi_in);
            return;
        }
        let mode =
            if offer.transport && p.has(NotifyType::USE_TRANSPORT_MODE) { Mode::Transport } else { Mode::Tunnel };
        let c = self.child_sa(ctx, config, &chosen, offer.spi_in, tsi.selectors.clone(), tsr.selectors.clone(), mode);
        self.ready(ctx, c);
    }

    /// Sends DELETE for an inbound SPI we never installed, so the peer drops its half. Called right
    /// after the IKE_AUTH response, when no request is in flight.
    fn delete_uninstalled_child(&mut self, ctx: &mut Ctx<'_>, spi_in: u32) {
        let payloads = [Payload::Delete(DeletePayload::esp(&[spi_in]))];
        if self.pending.is_none() {
            if let Ok(ds) = self.encrypt_request(ctx, ExchangeType::INFORMATIONAL, &payloads) {
                self.send_request(ctx, Job::DeleteChild(spi_in), ds);
            }
        }
    }

    /// The CHILD SA of IKE_AUTH: KEYMAT from the IKE_SA_INIT nonces, no key exchange of its own
    /// (§2.17), the IKE SA's initiator's keys first.
    #[allow(clippy::too_many_arguments)]
    fn child_sa(
        &self,
        ctx: &Ctx<'_>,
        config: &child::ChildConfig,
        chosen: &ChosenEsp,
        spi_in: u32,
        local_ts: Vec<TrafficSelector>,
        remote_ts: Vec<TrafficSelector>,
        mode: Mode,
    ) -> ChildSa {
        // Without keys derive_child leaves the child keyless, which ready() refuses.
        let (ni, nr) = self.keys.as_ref().map(|k| (k.init.ni.clone(), k.init.nr.clone())).unwrap_or_default();
        let ts = (local_ts, remote_ts);
        self.derive_child(ctx, &config.name, chosen, spi_in, ts, mode, None, &ni, &nr, self.initiator)
    }

    /// A CHILD SA with KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr) (§2.17): the initiator-to-responder
    /// keys come first, the initiator being that of the exchange that made it (`we_initiated`). Keys
    /// are left empty if the derivation fails; `ready` refuses such a child.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn derive_child(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        chosen: &ChosenEsp,
        spi_in: u32,
        (local_ts, remote_ts): (Vec<TrafficSelector>, Vec<TrafficSelector>),
        mode: Mode,
        shared: Option<&oxswan_crypto::Secret>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
    ) -> ChildSa {
        let empty = ChildSa {
            name: name.to_owned(),
            spi_in,
            spi_out: chosen.peer_spi,
            suite: chosen.suite,
            esn: chosen.esn,
            proposal: proposal_to_string(&chosen.proposal),
            encr_in: oxswan_crypto::Secret::new(Vec::new()),
            integ_in: oxswan_crypto::Secret::new(Vec::new()),
            encr_out: oxswan_crypto::Secret::new(Vec::new()),
            integ_out: oxswan_crypto::Secret::new(Vec::new()),
            local_ts,
            remote_ts,
            mode,
            encap: self.nat.any(),
            local: self.local,
            remote: self.remote,
            replaces: None,
            outbound: true,
        };
        let Some(keys) = self.keys.as_ref() else { return empty };
        let init = &keys.init;
        let secrets: Vec<&[u8]> = shared.map(|s| s.expose()).into_iter().collect();
        match ChildSaKeys::derive(
            ctx.provider.prf.as_ref(),
            init.suite.prf,
            init.keys.sk_d.expose(),
            &chosen.suite,
            &secrets,
            ni,
            nr,
        ) {
            Ok(k) => {
                let (encr_in, integ_in, encr_out, integ_out) = if we_initiated {
                    (k.encr_r, k.integ_r, k.encr_i, k.integ_i)
                } else {
                    (k.encr_i, k.integ_i, k.encr_r, k.integ_r)
                };
                ChildSa { encr_in, integ_in, encr_out, integ_out, ..empty }
            }
            Err(_) => empty,
        }
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, c: ChildSa) {
        if c.encr_in.is_empty() {
            ctx.out.events.push_back(Event::ChildSaFailed {
                sa: self.handle,
                name: c.name,
                reason: NO_PROPOSAL_CHOSEN_LOCALLY,
            });
            return;
        }
        ctx.out.events.push_back(Event::ChildSaReady { sa: self.handle, child: Box::new(c.clone()) });
        let (spi, name) = (c.spi_in, c.name.clone());
        self.children.push(c);
        self.schedule_rekey(ctx, spi, &name);
    }

    /// Checks the peer's AUTH (and certificate chain) over its signed octets; returns its identity or
    /// the reason, which stays local (§2.21.2).
    fn verify_peer(
        &self,
        ctx: &Ctx<'_>,
        peer: &PeerConfig,
        id: &IdPayload,
        auth: &AuthPayload,
        certs: &[CertPayload],
        peer_is_initiator: bool,
    ) -> core::result::Result<Identity, String> {
        let keys = self.keys.as_ref().ok_or("no keys")?;
        let init = &keys.init;
        let identity = id.identity().map_err(|e| format!("malformed identity: {e}"))?;
        if let Some(want) = &peer.remote_id {
            if !same_identity(want, &identity) {
                return Err(format!(
                    "peer identity {} is not the configured {}",
                    crate::cert::identity_string(&identity),
                    crate::cert::identity_string(want)
                ));
            }
        }
        let (message, nonce, sk_p) = if peer_is_initiator {
            (&init.request, &init.nr, &init.keys.sk_pi)
        } else {
            (&init.response, &init.ni, &init.keys.sk_pr)
        };
        let octets =
            signed_octets(message, nonce, ctx.provider.prf.as_ref(), init.suite.prf, sk_p.expose(), &id.auth_octets())
                .map_err(|e| e.to_string())?;
        match &peer.remote_auth {
            RemoteAuth::Psk(psk) => {
                if auth.method != AuthMethod::SHARED_KEY_MIC {
                    return Err(format!("peer used AUTH method {:?}, PSK expected", auth.method));
                }
                verify_psk(ctx.provider.prf.as_ref(), init.suite.prf, psk.expose(), &octets, &auth.data)
                    .map_err(|_| "PSK authentication data does not verify (wrong PSK?)".to_string())?;
            }
            RemoteAuth::Cert(trust) => {
                if auth.method == AuthMethod::SHARED_KEY_MIC {
                    return Err("peer used a PSK, a certificate is required".into());
                }
                let mut x509 = certs.iter().filter(|c| c.encoding == CertEncoding::X509_SIGNATURE);
                let end_entity = x509.next().ok_or("peer sent no certificate")?;
                let intermediates: Vec<Vec<u8>> = x509.map(|c| c.data.clone()).collect();
                let cert = trust
                    .verify(&end_entity.data, &intermediates, ctx.unix_now)
                    .map_err(|e| format!("certificate: {e}"))?;
                if !cert.matches(&identity) {
                    return Err(format!(
                        "identity {} is not in the peer's certificate",
                        crate::cert::identity_string(&identity)
                    ));
                }
                verify_auth(ctx.provider.signature.as_ref(), &cert.spki, auth, &octets)
                    .map_err(|e| format!("signature: {e}"))?;
            }
        }
        Ok(identity)
    }

    // -----------------------------------------------------------------------------------------------
    // Requests from the peer
    // -----------------------------------------------------------------------------------------------

    fn handle_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let h = *msg.header();
        // §2.1: a retransmitted request is answered from the cache, without processing it again.
        if let Some(c) = &self.cached {
            if h.message_id == c.message_id {
                if sha1(&[msg.as_bytes()]) == c.request_digest {
                    ctx.out.cache_hits = ctx.out.cache_hits.saturating_add(1);
                    for d in &c.response {
                        ctx.out.transmits.push_back(Transmit { local, remote, payload: d.clone() });
                    }
                    return Ok(());
                }
                return Err(IkeError::Unexpected("different request with the message ID of the last one"));
            }
        }
        if h.message_id != self.expected_message_id {
            return Err(IkeError::Unexpected("request outside the window"));
        }
        let exchange = h.exchange_type;
        let valid = match self.state {
            State::HalfOpen { .. } => exchange == ExchangeType::IKE_AUTH,
            // An exchange type we do not know is dropped before decryption, as strongSwan does: no
            // message ID is consumed, nothing changes.
            State::Established => exchange == ExchangeType::INFORMATIONAL || exchange == ExchangeType::CREATE_CHILD_SA,
            _ => false,
        };
        if !valid {
            return Err(IkeError::Unexpected("exchange not valid in this state"));
        }
        let (parsed, digest) = match self.receive(ctx, msg)? {
            Inbound::Partial => return Ok(()),
            Inbound::Complete { payloads, digest } => (payloads, digest),
        };
        // Authentic: from here on the request is consumed and answered.
        self.expected_message_id = self.expected_message_id.wrapping_add(1);
        self.update_addresses(local, remote);
        if exchange == ExchangeType::IKE_AUTH {
            // The initiator floated (or not): answer and send from where IKE_AUTH came (§2.23).
            self.local = local;
            self.remote = remote;
        }
        let response = match parsed {
            Err(e) => {
                let n = match e.disposition() {
                    oxswan_wire::Disposition::Notify(n) => n,
                    oxswan_wire::Disposition::Drop => NotifyType::INVALID_SYNTAX,
                };
                let fatal = exchange == ExchangeType::IKE_AUTH;
                let r = vec![Payload::Notify(NotifyPayload::new(n, e.notify_data()))];
                if fatal {
                    self.close(ctx, DownReason::Protocol(e.to_string()));
                }
                r
            }
            Ok(payloads) => match exchange {
                ExchangeType::IKE_AUTH => self.handle_auth_request(ctx, payloads),
                ExchangeType::INFORMATIONAL => self.handle_informational(ctx, payloads),
                _ => self.handle_create_child_request(ctx, payloads),
            },
        };
        let flags = if self.initiator { Flags::RESPONSE.with(Flags::INITIATOR) } else { Flags::RESPONSE };
        let header = Header::new(self.spi_i, self.spi_r, exchange, flags, h.message_id);
        let datagrams = self.seal(ctx, &header, &response)?;
        for d in &datagrams {
            ctx.out.transmits.push_back(Transmit { local, remote, payload: d.clone() });
        }
        self.cached = Some(Cached { message_id: h.message_id, request_digest: digest, response: datagrams });
        self.send_next(ctx);
        Ok(())
    }

    fn handle_auth_request(&mut self, ctx: &mut Ctx<'_>, payloads: Vec<Payload>) -> Vec<Payload> {
        let p = AuthPayloads::collect(payloads);
        let refuse = |s: &mut Self, ctx: &mut Ctx<'_>, reason: String| {
            s.auth_failed(ctx, reason);
            vec![notify(NotifyType::AUTHENTICATION_FAILED)]
        };
        let Some(idi) = p.idi.clone() else {
            self.close(ctx, DownReason::Protocol("IKE_AUTH without IDi".into()));
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let Some(auth) = p.auth.clone() else {
            // EAP (no AUTH from the initiator, §2.16) is not offered yet.
            return refuse(self, ctx, "no AUTH payload (EAP is not supported)".into());
        };
        let Ok(identity) = idi.identity() else {
            return refuse(self, ctx, "malformed IDi".into());
        };
        let wanted_idr = p.idr.as_ref().and_then(|i| i.identity().ok());
        let Some(keys) = self.keys.as_ref() else { return refuse(self, ctx, "no keys".into()) };
        let negotiated = keys.init.proposal.clone();
        // Pick the connection: the first whose remote identity admits IDi, whose local identity is the
        // IDr the initiator asked for (if any), and which accepts the negotiated IKE proposal.
        let candidate = ctx
            .peers
            .iter()
            .find(|c| {
                c.remote_id.as_ref().is_none_or(|r| same_identity(r, &identity))
                    && wanted_idr.as_ref().is_none_or(|w| same_identity(w, &c.local_id))
                    && select_proposal(&c.ike_proposals, core::slice::from_ref(&negotiated), false).is_some()
            })
            .cloned();
        let Some(peer) = candidate else {
            return refuse(
                self,
                ctx,
                match &wanted_idr {
                    Some(w) => format!(
                        "no connection for {} asking for us as {}",
                        crate::cert::identity_string(&identity),
                        crate::cert::identity_string(w)
                    ),
                    None => format!("no connection for identity {}", crate::cert::identity_string(&identity)),
                },
            );
        };
        self.peer = Some(peer.clone());
        let remote_id = match self.verify_peer(ctx, &peer, &idi, &auth, &p.certs, true) {
            Ok(id) => id,
            Err(reason) => return refuse(self, ctx, reason),
        };
        self.peer_id = Some(remote_id);
        // Our side.
        let Some(keys) = self.keys.as_ref() else { return refuse(self, ctx, "no keys".into()) };
        let init = &keys.init;
        let idr = IdPayload::from_identity(&peer.local_id);
        let octets = match signed_octets(
            &init.response,
            &init.ni,
            ctx.provider.prf.as_ref(),
            init.suite.prf,
            init.keys.sk_pr.expose(),
            &idr.auth_octets(),
        ) {
            Ok(o) => o,
            Err(e) => return refuse(self, ctx, e.to_string()),
        };
        let our_auth = match self.make_auth(ctx, &peer, &octets) {
            Ok(a) => a,
            Err(e) => return refuse(self, ctx, format!("cannot sign: {e}")),
        };
        let mut out = vec![Payload::IdR(idr)];
        if let LocalAuth::Cert(cert) = &peer.local_auth {
            out.extend(cert_payloads(&cert.chain));
        }
        out.push(Payload::Auth(our_auth));
        self.state = State::Established;
        self.initial_contact = p.has(NotifyType::INITIAL_CONTACT);
        if let Some(info) = self.info() {
            ctx.out.events.push_back(Event::IkeSaUp { sa: self.handle, info });
            self.schedule_ike_rekey(ctx);
        }
        out.extend(self.respond_child(ctx, &peer, &p));
        out
    }

    /// The CHILD SA part of the IKE_AUTH response (§1.2); a failure here leaves the IKE SA up.
    fn respond_child(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig, p: &AuthPayloads) -> Vec<Payload> {
        let Ok(spi_in) = child::random_esp_spi(ctx.provider) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let sel = match self.select_child(peer, p, spi_in, false) {
            Ok(sel) => sel,
            Err(SelectError::Missing) => return Vec::new(),
            Err(SelectError::Refused(reason)) => return self.refuse_child(ctx, peer, reason),
        };
        let mode = if sel.transport { Mode::Transport } else { Mode::Tunnel };
        let c = self.child_sa(ctx, &sel.config, &sel.chosen, spi_in, sel.tsr.clone(), sel.tsi.clone(), mode);
        self.ready(ctx, c);
        sel.payloads(Vec::new())
    }

    /// The responder's refusal of a CHILD SA: an event for the daemon and the notify for the peer.
    fn refuse_child(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig, reason: NotifyType) -> Vec<Payload> {
        let name = peer.children.first().map(|c| c.name.clone()).unwrap_or_default();
        ctx.out.events.push_back(Event::ChildSaFailed { sa: self.handle, name, reason });
        vec![notify(reason)]
    }

    /// Picks our child for the initiator's offer (IKE_AUTH or CREATE_CHILD_SA): the first whose
    /// selectors narrow with the offered ones (§2.9) and which accepts one of its proposals.
    fn select_child(
        &self,
        peer: &PeerConfig,
        p: &AuthPayloads,
        spi_in: u32,
        with_ke: bool,
    ) -> core::result::Result<SelectedChild, SelectError> {
        let (Some(sa), Some(tsi), Some(tsr)) = (&p.sa, &p.tsi, &p.tsr) else { return Err(SelectError::Missing) };
        let mut narrowed_any = false;
        for config in &peer.children {
            let ours_remote = child::resolve(&config.remote_ts, self.remote.ip());
            let ours_local = child::resolve(&config.local_ts, self.local.ip());
            let Some((n_tsi, n_tsr)) = child::narrow(&tsi.selectors, &tsr.selectors, &ours_remote, &ours_local) else {
                continue;
            };
            narrowed_any = true;
            let Ok(chosen) =
                child::choose_esp(&config.esp_proposals, &sa.proposals, spi_in, peer.prefer_initiator, with_ke)
            else {
                continue;
            };
            // §1.3.1: transport mode only if both want it.
            let transport = config.mode == Mode::Transport && p.has(NotifyType::USE_TRANSPORT_MODE);
            return Ok(SelectedChild { config: config.clone(), chosen, tsi: n_tsi, tsr: n_tsr, transport });
        }
        Err(SelectError::Refused(if narrowed_any {
            NotifyType::NO_PROPOSAL_CHOSEN
        } else {
            NotifyType::TS_UNACCEPTABLE
        }))
    }

    fn handle_informational(&mut self, ctx: &mut Ctx<'_>, payloads: Vec<Payload>) -> Vec<Payload> {
        let mut out = Vec::new();
        let mut deleted_in = Vec::new();
        for p in &payloads {
            match p {
                Payload::Delete(d) if d.protocol == ProtocolId::IKE => {
                    // §1.4.1: answer with an empty INFORMATIONAL; the SA and its children are gone,
                    // unless a new SA from a simultaneous rekey takes the children (§2.8.2).
                    self.peer_deletes_rekeyed(ctx);
                    self.close(ctx, DownReason::PeerDeleted);
                    return Vec::new();
                }
                Payload::Delete(d) if d.protocol == ProtocolId::ESP => {
                    // §1.4.1: the SPIs are the sender's inbound ones, our outbound; we answer with our
                    // inbound SPIs of the same pairs.
                    for spi in d.spis_u32() {
                        if let Some(i) = self.children.iter().position(|c| c.spi_out == spi) {
                            let c = self.children.remove(i);
                            self.rekey_at.retain(|(s, _)| *s != c.spi_in);
                            // §2.8: the responder of a rekey sends on the new pair once the old one
                            // is deleted. Switching before the old pair goes leaves no instant in
                            // which an outbound packet finds neither.
                            self.activate_successor(ctx, c.spi_in);
                            ctx.out.events.push_back(Event::ChildSaDeleted {
                                sa: self.handle,
                                spi_in: c.spi_in,
                                spi_out: c.spi_out,
                            });
                            deleted_in.push(c.spi_in);
                        }
                    }
                }
                Payload::Notify(n) if n.notify_type == NotifyType::AUTHENTICATION_FAILED => {
                    // The initiator refused our AUTH after we considered the SA established (§2.21.2).
                    ctx.out.events.push_back(Event::AuthFailed {
                        sa: self.handle,
                        peer: self.remote,
                        reason: "peer sent AUTHENTICATION_FAILED".into(),
                    });
                    self.close(ctx, DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED));
                    return Vec::new();
                }
                _ => {}
            }
        }
        if !deleted_in.is_empty() {
            out.push(Payload::Delete(DeletePayload::esp(&deleted_in)));
        }
        out
    }
}

/// The child, proposal and narrowed selectors the responder chose.
struct SelectedChild {
    config: child::ChildConfig,
    chosen: ChosenEsp,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
}

impl SelectedChild {
    /// The response's payloads for this child, with `extra` (Nonce, KE) after the SA payload.
    fn payloads(&self, extra: Vec<Payload>) -> Vec<Payload> {
        let mut out = Vec::new();
        if self.transport {
            out.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        out.push(Payload::Sa(SaPayload { proposals: vec![self.chosen.proposal.clone()] }));
        out.extend(extra);
        out.push(Payload::TsI(TsPayload { selectors: self.tsi.clone() }));
        out.push(Payload::TsR(TsPayload { selectors: self.tsr.clone() }));
        out
    }
}

enum SelectError {
    /// No SA or TS payloads: no child was asked for.
    Missing,
    /// None acceptable, with the notify that says why.
    Refused(NotifyType),
}

/// Pseudo-reason for a child the initiator could not accept locally (no notify was received).
const NO_PROPOSAL_CHOSEN_LOCALLY: NotifyType = NotifyType::NO_PROPOSAL_CHOSEN;

/// The NAT detection notifies of our IKE_SA_INIT request. With `force_encap` the source hash is of
/// an address that is not ours, so the responder sees a NAT and both sides float and encapsulate
/// (RFC 7296 §2.23 permits it; strongSwan does the same with random data).
fn init_nat_notifies(
    provider: &CryptoProvider,
    peer: &PeerConfig,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<Vec<Payload>> {
    let mut n = nat_notifies(spi_i, spi_r, local, remote).to_vec();
    if peer.force_encap {
        let mut fake = [0u8; 20];
        provider.random.fill(&mut fake)?;
        if let Some(Payload::Notify(src)) = n.first_mut() {
            src.data = fake.to_vec();
        }
    }
    Ok(n)
}

fn announces_fragmentation(notifies: &[NotifyPayload]) -> bool {
    notifies.iter().any(|n| n.notify_type == NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
}

fn signature_hashes(notifies: &[NotifyPayload]) -> Option<Vec<HashAlgorithm>> {
    notifies.iter().find_map(NotifyPayload::signature_hash_algorithms)
}

/// The RFC 7427 schemes a key can sign with, our preference first.
fn schemes_for(key_type: KeyType, rsa_pss: bool) -> &'static [SignatureScheme] {
    use SignatureScheme as S;
    match key_type {
        KeyType::Rsa(_) if rsa_pss => &[S::RsaPssSha256, S::RsaPssSha384, S::RsaPssSha512],
        KeyType::Rsa(_) => &[S::RsaPkcs1Sha256, S::RsaPkcs1Sha384, S::RsaPkcs1Sha512],
        KeyType::EcdsaP256 => &[S::EcdsaP256Sha256],
        KeyType::EcdsaP384 => &[S::EcdsaP384Sha384],
        KeyType::EcdsaP521 => &[S::EcdsaP521Sha512],
        KeyType::Ed25519 => &[S::Ed25519],
    }
}

fn cert_payloads(chain: &[Vec<u8>]) -> impl Iterator<Item = Payload> + '_ {
    chain.iter().map(|der| Payload::Cert(CertPayload { encoding: CertEncoding::X509_SIGNATURE, data: der.clone() }))
}

/// Identity comparison as configured: FQDN and email case-insensitively (DNS names and the domain
/// part of mail addresses are; strongSwan compares both ways), others byte for byte.
pub(crate) fn same_identity(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Fqdn(x), Identity::Fqdn(y)) | (Identity::Email(x), Identity::Email(y)) => x.eq_ignore_ascii_case(y),
        (Identity::Dn(x), Identity::Dn(y)) => crate::cert::dn_equal(x, y),
        _ => a == b,
    }
}

/// The payloads of an IKE_AUTH message, by kind.
#[derive(Debug, Default)]
struct AuthPayloads {
    idi: Option<IdPayload>,
    idr: Option<IdPayload>,
    auth: Option<AuthPayload>,
    certs: Vec<CertPayload>,
    sa: Option<SaPayload>,
    tsi: Option<TsPayload>,
    tsr: Option<TsPayload>,
    notifies: Vec<NotifyPayload>,
}

impl AuthPayloads {
    /// The group the responder asked for with INVALID_KE_PAYLOAD (§1.2, §1.3).
    fn invalid_ke_group(&self) -> Option<oxswan_wire::KeId> {
        self.notifies
            .iter()
            .find(|n| n.notify_type == NotifyType::INVALID_KE_PAYLOAD)
            .and_then(|n| n.invalid_ke_group())
    }

    fn collect(payloads: Vec<Payload>) -> Self {
        let mut out = Self::default();
        for p in payloads {
            match p {
                Payload::IdI(x) if out.idi.is_none() => out.idi = Some(x),
                Payload::IdR(x) if out.idr.is_none() => out.idr = Some(x),
                Payload::Auth(x) if out.auth.is_none() => out.auth = Some(x),
                Payload::Cert(x) => out.certs.push(x),
                Payload::Sa(x) if out.sa.is_none() => out.sa = Some(x),
                Payload::TsI(x) if out.tsi.is_none() => out.tsi = Some(x),
                Payload::TsR(x) if out.tsr.is_none() => out.tsr = Some(x),
                Payload::Notify(x) => out.notifies.push(x),
                _ => {}
            }
        }
        out
    }

    fn has(&self, ty: NotifyType) -> bool {
        self.notifies.iter().any(|n| n.notify_type == ty)
    }

    /// The first error notify (types below 16384, §3.10.1).
    fn error(&self) -> Option<NotifyType> {
        self.notifies.iter().map(|n| n.notify_type).find(|t| t.is_error())
    }
}
