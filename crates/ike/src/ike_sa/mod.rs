//! One IKE SA (RFC 7296 §1, §2.1–§2.3): its core (SPIs, role, keys, path, lifecycle, timers, CHILD
//! SAs) and its task manager (message IDs, the request in flight, the response cache, the queue,
//! retransmission). The exchanges themselves are in [`crate::task`].
//!
//! The [`crate::Endpoint`] routes datagrams here by SPI. An `IkeSa` owns the request it has in flight
//! (window size 1, §2.3), retransmits it with backoff, caches its last response and resends it for a
//! retransmitted request without processing that again (§2.1). Everything it wants sent or reported goes
//! to the [`Outbox`].

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;

use oxswan_crypto::hash::sha1;
use oxswan_crypto::proposal::proposal_to_string;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{ExchangeType, Flags, HashAlgorithm, Header, Identity, IkeSpi, Message, NotifyType, Payload};

use crate::config::PeerConfig;
use crate::error::{IkeError, Result, Unexpected};
use crate::event::{ChildSa, DownReason, Event, IkeSaInfo, SaHandle};
use crate::init::{IkeSaInit, InitRequestSent};
use crate::nat::{NatState, detect};
use crate::task::{Collected, InFlight, Job};

mod children;
mod manager;
mod timers;
mod transport;

pub(crate) use children::{ChildRecord, ChildTable};
pub(crate) use timers::{Timer, TimerTable};
pub use transport::Transmit;
pub(crate) use transport::{Cached, Ctx, Inbound, Outbox, Pending, Reassembly, later};

/// How long a closed SA lingers to answer retransmissions of the request that closed it from its cache.
const LINGER: core::time::Duration = core::time::Duration::from_secs(10);

/// The standard IKE ports (RFC 7296 §2.23, RFC 3948 §2).
pub const IKE_PORT: u16 = 500;
/// The NAT-T port.
pub const NAT_T_PORT: u16 = 4500;

/// Where the SA is in its exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT or IKE_AUTH in flight ([`InFlight::Init`], [`InFlight::Auth`]).
    Connecting,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH ([`Timer::HalfOpen`]).
    HalfOpen,
    /// Both sides authenticated.
    Established,
    /// Gone; answers retransmissions from the cache until [`Timer::Linger`], then is removed.
    Closed,
}

/// Whether the SA is still the connection's, or was replaced and only waits to go. The order of the
/// variants is the precedence of the reason an SA reports when it ends.
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
}

#[derive(Debug)]
pub(crate) struct Keys {
    pub init: IkeSaInit,
    pub sk_out: SkKeys,
    pub sk_in: SkKeys,
}

/// One IKE SA.
#[derive(Debug)]
pub(crate) struct IkeSa {
    pub handle: SaHandle,
    pub initiator: bool,
    pub(crate) peer: Option<Arc<PeerConfig>>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub spi_i: IkeSpi,
    pub spi_r: IkeSpi,
    pub(crate) state: State,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) origin: Origin,
    pub(crate) keys: Option<Box<Keys>>,
    pub(crate) timers: TimerTable,
    pub(crate) children: ChildTable,
    pub(crate) nat: NatState,
    pub(crate) peer_id: Option<Identity>,
    /// The hashes of the peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), if it sent the notify.
    pub(crate) peer_hashes: Option<Vec<HashAlgorithm>>,
    /// Where the IKE_SA_INIT request came from (the key for its retransmissions).
    pub(crate) init_remote: SocketAddr,
    /// The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3), as we do.
    pub(crate) peer_fragmentation: bool,
    /// The peer sent INITIAL_CONTACT with its IKE_AUTH, not yet acted upon (§2.4).
    pub(crate) initial_contact: bool,
    /// The peer's rekey of this IKE SA crossed ours (§2.8.2), not yet resolved.
    pub(crate) ike_collision: Option<crate::task::ike_rekey::IkeCollision>,
    // The task manager.
    pub(crate) next_message_id: u32,
    pub(crate) pending: Option<Pending>,
    pub(crate) queue: VecDeque<Job>,
    pub(crate) expected_message_id: u32,
    pub(crate) cached: Option<Cached>,
    /// Fragments of a message being received.
    pub(crate) reassembly: Option<Reassembly>,
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
            crate::task::ike_init::init_nat_notifies(ctx.provider, &peer, spi_i, IkeSpi::ZERO, local, remote)?,
        )?;
        let mut sa = Self::new(handle, true, Some(peer), local, remote, spi_i, IkeSpi::ZERO);
        let datagram = req.request().to_vec();
        sa.state = State::Connecting;
        sa.send_request(ctx, InFlight::Init { req: Box::new(req), cookie_tries: 0, ke_retried: false }, vec![datagram]);
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
        use crate::task::ike_init::{announces_fragmentation, signature_hashes};
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
        sa.state = State::HalfOpen;
        sa.timers.set(Timer::HalfOpen, later(ctx.now, half_open_timeout));
        Ok(sa)
    }

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
            initial_contact: false,
            ike_collision: None,
            next_message_id: 0,
            pending: None,
            queue: VecDeque::new(),
            expected_message_id: 0,
            cached: None,
            reassembly: None,
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
        self.state == State::HalfOpen
    }

    /// Whether the SA is established.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Established with no request in flight or queued: its CHILD SAs are all made.
    pub fn is_idle(&self) -> bool {
        self.is_established() && self.pending.is_none() && self.queue.is_empty()
    }

    /// The connection this SA was made with (a reauthentication uses the same).
    pub fn peer_config(&self) -> Option<Arc<PeerConfig>> {
        self.peer.clone()
    }

    /// This SA reauthenticates another of its connection (§2.4: no INITIAL_CONTACT).
    pub fn set_reauthenticating(&mut self) {
        self.origin = Origin::Reauthentication;
    }

    /// A reauthentication replaced this SA: delete it (§2.8.3), after the new one is up.
    pub fn reauthenticated(&mut self, ctx: &mut Ctx<'_>) {
        self.supersede(Lifecycle::Reauthenticated);
        self.timers.stop_lifetime();
        self.queue(ctx, Job::DeleteIke);
    }

    /// The reauthentication failed: try again at `at`.
    pub fn retry_reauth(&mut self, at: std::time::Instant) {
        if self.lifecycle != Lifecycle::Expired {
            self.timers.set(Timer::Reauth, at);
        }
    }

    /// Moves the lifecycle on: a rekey outranks everything, a reauthentication or the hard end
    /// only an SA still in service.
    pub(crate) fn supersede(&mut self, to: Lifecycle) {
        if to == Lifecycle::Rekeyed || self.lifecycle == Lifecycle::Live {
            self.lifecycle = to;
        }
    }

    /// Ended (it may linger a while to answer retransmissions).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the endpoint may forget this SA.
    pub fn is_finished(&self, now: std::time::Instant) -> bool {
        self.state == State::Closed && self.timers.get(Timer::Linger).is_none_or(|until| now >= until)
    }

    /// The connection's name, once known.
    pub fn name(&self) -> Option<&str> {
        self.peer.as_deref().map(|p| p.name.as_str())
    }

    /// The CHILD SAs.
    pub fn children(&self) -> Vec<ChildSa> {
        self.children.snapshot()
    }

    /// Every inbound ESP SPI this SA holds: its CHILD SAs' and the one offered in its request in
    /// flight. The endpoint keeps them unique across its SAs.
    pub fn inbound_spis(&self) -> Vec<u32> {
        let mut spis: Vec<u32> = self.children.inbound_spis().collect();
        let offered = match self.pending.as_ref().map(|p| &p.exchange) {
            Some(InFlight::Auth { child: Some(offer) }) | Some(InFlight::NewChild(offer)) => Some(offer.spi_in),
            Some(InFlight::RekeyChild(offer)) => Some(offer.spi_in),
            _ => None,
        };
        spis.extend(offered);
        spis
    }

    /// Whether the peer announced INITIAL_CONTACT (once: the flag is cleared).
    pub fn take_initial_contact(&mut self) -> bool {
        core::mem::take(&mut self.initial_contact)
    }

    /// Removes the SA without a word to the peer (it restarted and knows nothing of it).
    pub fn forget(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        self.take_pending();
        self.queue.clear();
        self.close(ctx, reason);
    }

    /// When the CHILD SA with this inbound SPI is due for rekeying.
    pub fn rekey_time(&self, spi_in: u32) -> Option<std::time::Instant> {
        self.children.get(spi_in).and_then(|c| c.rekey_at)
    }

    /// The next moment [`Self::handle_timeout`] has work.
    pub fn next_timeout(&self) -> Option<std::time::Instant> {
        let retransmit = self.pending.as_ref().and(self.timers.get(Timer::Retransmit));
        let others = match self.state {
            State::HalfOpen => self.timers.get(Timer::HalfOpen),
            State::Closed => self.timers.get(Timer::Linger),
            State::Established => [self.timers.get(Timer::IkeRekey), self.timers.get(Timer::Reauth)]
                .into_iter()
                .chain([self.timers.get(Timer::IkeExpire), self.children.next()])
                .flatten()
                .min(),
            State::Connecting => None,
        };
        [retransmit, others].into_iter().flatten().min()
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

    /// Ends the SA: reports its children and itself gone and lingers to answer retransmissions.
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
        self.pending = None;
        self.queue.clear();
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

    pub(crate) fn auth_failed(&mut self, ctx: &mut Ctx<'_>, reason: String) {
        ctx.out.events.push_back(Event::AuthFailed { sa: self.handle, peer: self.remote, reason: reason.clone() });
        self.close(ctx, DownReason::AuthFailed(reason));
    }

    /// §2.23: with a NAT in the path, the peer's address is where its latest authenticated message
    /// came from; without one the addresses still follow the initiator's float to port 4500. A
    /// change on an established SA (a NAT rebinding) moves its CHILD SAs' ESP too: the data plane
    /// hears of it through [`Event::PathChanged`].
    pub(crate) fn update_addresses(&mut self, ctx: &mut Ctx<'_>, local: SocketAddr, remote: SocketAddr) {
        if !(self.nat.any() || local.port() == NAT_T_PORT) || (local, remote) == (self.local, self.remote) {
            return;
        }
        self.local = local;
        self.remote = remote;
        if self.is_established() {
            for c in self.children.iter_mut() {
                c.sa.local = local;
                c.sa.remote = remote;
            }
            ctx.out.events.push_back(Event::PathChanged { sa: self.handle, local, remote });
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------------

    /// Retransmits, gives up, or expires a half-open SA.
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == State::HalfOpen {
            if self.timers.take_due(Timer::HalfOpen, ctx.now) {
                self.close(ctx, DownReason::HalfOpenTimeout);
            }
            return;
        }
        if self.is_established() {
            self.child_timers(ctx);
            self.ike_lifetime_timers(ctx);
        }
        self.retransmit_due(ctx);
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
            return Err(IkeError::Unexpected(Unexpected::OwnRole));
        }
        if h.flags.response() {
            self.handle_response(ctx, local, remote, msg)
        } else {
            self.handle_request(ctx, local, remote, msg)
        }
    }

    /// The answer to our request in flight: the exchange's tasks read their parts of it.
    fn handle_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let h = *msg.header();
        let Some(pending) = self.pending.as_ref() else {
            return Err(IkeError::Unexpected(Unexpected::NoRequestInFlight));
        };
        if h.message_id != pending.message_id {
            return Err(IkeError::Unexpected(Unexpected::OtherMessageId));
        }
        if matches!(pending.exchange, InFlight::Init { .. }) {
            return self.handle_init_response(ctx, local, remote, msg);
        }
        if h.exchange_type != pending.exchange.exchange() {
            return Err(IkeError::Unexpected(Unexpected::OtherExchange));
        }
        let payloads = match self.receive(ctx, msg)? {
            Inbound::Partial => return Ok(()),
            Inbound::Complete { payloads: Ok(p), .. } => p,
            // A response we cannot parse after it authenticated: the peer is broken (§2.21.2).
            Inbound::Complete { payloads: Err(e), .. } => {
                self.take_pending();
                self.close(ctx, DownReason::Protocol(e.to_string()));
                return Ok(());
            }
        };
        let Some(pending) = self.take_pending() else { return Ok(()) };
        self.update_addresses(ctx, local, remote);
        let p = Collected::collect(payloads);
        match pending.exchange {
            InFlight::Auth { child } => self.handle_auth_response(ctx, child, p),
            InFlight::DeleteIke => self.close(ctx, DownReason::LocalDeleted),
            InFlight::DeleteChild(spi) => self.child_gone(ctx, spi),
            InFlight::DeleteUninstalled | InFlight::Init { .. } => {}
            InFlight::Liveness => ctx.out.events.push_back(Event::LivenessConfirmed { sa: self.handle }),
            InFlight::RekeyChild(offer) => self.handle_rekey_response(ctx, *offer, &p),
            InFlight::RekeyIke(offer) => self.handle_ike_rekey_response(ctx, *offer, &p),
            InFlight::NewChild(offer) => self.handle_new_child_response(ctx, *offer, &p),
        }
        self.send_next(ctx);
        Ok(())
    }

    /// A request from the peer: answered from the cache if retransmitted, else by the tasks of its
    /// exchange, and the answer cached.
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
                return Err(IkeError::Unexpected(Unexpected::ReusedMessageId));
            }
        }
        if h.message_id != self.expected_message_id {
            return Err(IkeError::Unexpected(Unexpected::OutsideWindow));
        }
        let exchange = h.exchange_type;
        let valid = match self.state {
            State::HalfOpen => exchange == ExchangeType::IKE_AUTH,
            // An exchange type we do not know is dropped before decryption, as strongSwan does: no
            // message ID is consumed, nothing changes.
            State::Established => exchange == ExchangeType::INFORMATIONAL || exchange == ExchangeType::CREATE_CHILD_SA,
            _ => false,
        };
        if !valid {
            return Err(IkeError::Unexpected(Unexpected::NotInThisState));
        }
        let (parsed, digest) = match self.receive(ctx, msg)? {
            Inbound::Partial => return Ok(()),
            Inbound::Complete { payloads, digest } => (payloads, digest),
        };
        // Authentic: from here on the request is consumed and answered.
        self.expected_message_id = self.expected_message_id.wrapping_add(1);
        self.update_addresses(ctx, local, remote);
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
                if exchange == ExchangeType::IKE_AUTH {
                    self.close(ctx, DownReason::Protocol(e.to_string()));
                }
                vec![Payload::Notify(NotifyPayload::new(n, e.notify_data()))]
            }
            Ok(payloads) => {
                let raw = payloads;
                match exchange {
                    ExchangeType::IKE_AUTH => self.handle_auth_request(ctx, Collected::collect(raw)),
                    ExchangeType::INFORMATIONAL => self.handle_informational(ctx, &raw),
                    _ => self.handle_create_child_request(ctx, Collected::collect(raw)),
                }
            }
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
