//! One IKE SA = its core ([`crate::sa::SaCore`]) and its task manager: message IDs, the request in
//! flight and its retransmission, the response cache and the queue (RFC 7296 §2.1–§2.3). The
//! manager knows the exchanges only through [`crate::task`]'s entry points: `task::request` builds
//! a queued exchange, `task::answer` reads the answer to ours, `task::respond` answers the peer's.
//!
//! The [`crate::Endpoint`] routes datagrams here by SPI. An `IkeSa` owns the request it has in flight
//! (window size 1, §2.3), retransmits it with backoff, caches its last response and resends it for a
//! retransmitted request without processing that again (§2.1). Everything it wants sent or reported
//! goes to the outbox.

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use oxswan_crypto::hash::sha1;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{ExchangeType, Flags, Header, IkeSpi, Message, NotifyType, Payload};

use crate::config::PeerConfig;
use crate::error::{IkeError, Result, Unexpected};
use crate::event::{ChildSa, DownReason, SaHandle};
use crate::init::{IkeSaInit, InitRequestSent};
use crate::nat::detect;
use crate::sa::{Ctx, Job, Keys, Lifecycle, Origin, SaCore, State, Timer, Transmit, Transport, later};
use crate::task::{self, Collected, InFlight, Window};

mod manager;
mod receive;
pub use receive::MAX_REASSEMBLED;

use receive::{Cached, Inbound, Pending, Reassembly};

/// One IKE SA.
#[derive(Debug)]
pub(crate) struct IkeSa {
    pub core: SaCore,
    next_message_id: u32,
    // What exists only now and then is boxed: an established SA that waits for the peer holds
    // none of it, and the SA's own size is paid for each of them.
    pending: Option<Box<Pending>>,
    queue: VecDeque<Job>,
    expected_message_id: u32,
    cached: Option<Cached>,
    /// How many fragments the message [`IkeSa::receive`] completed last came in (0: one
    /// datagram), and the longest of them, for its answer and the cache of it.
    last_request_fragments: (u16, usize),
    /// Fragments of a message being received.
    reassembly: Option<Box<Reassembly>>,
    /// The peer's request whose response waits for an authentication server (EAP relayed).
    deferred: Option<Box<Deferred>>,
}

/// A request answered later (§2.3 lets the responder take its time; the initiator retransmits).
#[derive(Debug)]
struct Deferred {
    message_id: u32,
    exchange: ExchangeType,
    request_digest: [u8; 20],
    local: SocketAddr,
    remote: SocketAddr,
}

impl IkeSa {
    /// An SA around a core made elsewhere (the successor of a rekey, §2.18).
    pub fn adopt(core: SaCore) -> Self {
        Self {
            core,
            next_message_id: 0,
            pending: None,
            queue: VecDeque::new(),
            expected_message_id: 0,
            cached: None,
            last_request_fragments: (0, usize::MAX),
            reassembly: None,
            deferred: None,
        }
    }

    /// Starts an IKE SA as initiator: sends IKE_SA_INIT, over TCP to the connection's TCP port if
    /// `tcp` (RFC 9329), else over UDP to `remote`.
    /// With `redirected_from`, to a gateway another one redirected us to (RFC 5685 §4:
    /// REDIRECTED_FROM with its address, in place of REDIRECT_SUPPORTED).
    pub fn initiate_from(
        ctx: &mut Ctx<'_>,
        handle: SaHandle,
        peer: Arc<PeerConfig>,
        (local, mut remote): (SocketAddr, SocketAddr),
        tcp: bool,
        (redirected_from, ticket): (Option<core::net::IpAddr>, Option<crate::resume::ClientTicket>),
    ) -> Result<Self> {
        if tcp {
            remote.set_port(peer.tcp.port);
        }
        let spi_i = ctx.new_ike_spi()?;
        let mut extra = task::ike_init::init_nat_notifies(ctx.provider, &peer, spi_i, IkeSpi::ZERO, local, remote)?;
        // RFC 8784 §3: a connection with a PPK asks for its use.
        if peer.ppk_id.is_some() {
            extra.push(oxswan_wire::Payload::Notify(oxswan_wire::notify::NotifyPayload::new(
                oxswan_wire::NotifyType::USE_PPK,
                Vec::new(),
            )));
        }
        // RFC 5685 §3: we follow a gateway's REDIRECT; §4: to the new one we say where from.
        extra.push(oxswan_wire::Payload::Notify(match redirected_from {
            None => oxswan_wire::notify::NotifyPayload::new(oxswan_wire::NotifyType::REDIRECT_SUPPORTED, Vec::new()),
            Some(from) => oxswan_wire::notify::NotifyPayload::new(
                oxswan_wire::NotifyType::REDIRECTED_FROM,
                crate::redirect::Gateway::Addr(from).identity(),
            ),
        }));
        let req = InitRequestSent::start(ctx.provider, &peer.ike_proposals, None, spi_i, extra)?;
        let req = if peer.fragmentation { req } else { req.without_fragmentation()? };
        // RFC 5723 §4: with a ticket, IKE_SESSION_RESUME in IKE_SA_INIT's place.
        let req = match ticket {
            Some(t) => req.with_ticket(t)?,
            None => req,
        };
        let mut core = SaCore::new(handle, true, Some(peer), local, remote, spi_i, IkeSpi::ZERO);
        core.state = State::Connecting;
        if tcp {
            core.transport = crate::sa::Transport::Tcp;
        }
        let mut sa = Self::adopt(core);
        let datagram = req.request().to_vec();
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
        let mut core = SaCore::new(handle, false, None, local, remote, init.spi_i, init.spi_r);
        // The transport the initiator chose (RFC 9329 §6: the responder answers on its stream).
        core.transport = ctx.transport;
        core.nat = detect(&init.peer_notifies, init.spi_i, IkeSpi::ZERO, local, remote).unwrap_or_default();
        core.peer_hashes = signature_hashes(&init.peer_notifies);
        core.peer_fragmentation = announces_fragmentation(&init.peer_notifies);
        core.peer_redirect = crate::redirect::PeerRedirect::of(&init.peer_notifies);
        let cached = Cached {
            message_id: 0,
            request_digest: sha1(&[&init.request]),
            request_fragments: 0,
            hits: 0,
            response: Box::new([init.response.as_slice().into()]),
            unfragmented: None,
        };
        let sk_out = SkKeys::for_sender(&init.keys, &init.suite, false)?;
        let sk_in = SkKeys::for_sender(&init.keys, &init.suite, true)?;
        core.keys = Some(Box::new(Keys::new(init, sk_out, sk_in)));
        core.state = State::HalfOpen;
        core.timers.set(Timer::HalfOpen, later(ctx.now, half_open_timeout));
        let mut sa = Self::adopt(core);
        sa.cached = Some(cached);
        sa.expected_message_id = 1;
        Ok(sa)
    }

    /// Octets of IKE fragments held for a message not yet whole (RFC 7383 §2.6).
    pub fn reassembly_held(&self) -> usize {
        self.reassembly.as_ref().map_or(0, |r| r.held())
    }

    /// The key of a responder SA in the endpoint's table of IKE_SA_INIT requests.
    pub fn init_key(&self) -> Option<(IkeSpi, SocketAddr)> {
        (!self.core.initiator).then_some((self.core.spi_i, self.core.init_remote))
    }

    /// Our SPI, by which the peer's messages reach us.
    pub fn local_spi(&self) -> IkeSpi {
        self.core.local_spi()
    }

    /// UDP or TCP.
    pub fn transport(&self) -> crate::sa::Transport {
        self.core.transport
    }

    /// Responder, IKE_SA_INIT answered but IKE_AUTH not yet complete.
    pub fn is_half_open(&self) -> bool {
        self.core.state == State::HalfOpen
    }

    /// Replaced by a rekey or a reauthentication, and waiting to be deleted: its CHILD SAs, if any
    /// are left, move or go with it, so commands for the connection belong to the new SA.
    pub fn is_replaced(&self) -> bool {
        matches!(self.core.lifecycle, Lifecycle::Rekeyed | Lifecycle::Reauthenticated)
    }

    /// Initiator of connection `name`, IKE_SA_INIT or IKE_AUTH still in flight.
    pub fn is_connecting_as(&self, name: &str) -> bool {
        self.core.state == State::Connecting && self.core.name() == Some(name)
    }

    /// Whether the SA is established.
    pub fn is_established(&self) -> bool {
        self.core.is_established()
    }

    /// Established with no request in flight or queued: its CHILD SAs are all made.
    pub fn is_idle(&self) -> bool {
        self.is_established() && self.pending.is_none() && self.queue.is_empty()
    }

    /// Ended (it may linger a while to answer retransmissions).
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Whether the endpoint may forget this SA.
    pub fn is_finished(&self, now: Instant) -> bool {
        self.core.is_closed() && self.core.timers.get(Timer::Linger).is_none_or(|until| now >= until)
    }

    /// The connection this SA was made with (a reauthentication uses the same).
    pub fn peer_config(&self) -> Option<Arc<PeerConfig>> {
        self.core.peer.clone()
    }

    /// This SA reauthenticates another of its connection (§2.4: no INITIAL_CONTACT).
    pub fn set_reauthenticating(&mut self) {
        self.core.origin = Origin::Reauthentication;
    }

    /// The gateway the next [`Job::Redirect`] sends the client to (RFC 5685 §5): only a client
    /// that announced support, on an SA it started.
    pub(crate) fn set_redirect(&mut self, to: crate::redirect::Gateway) -> crate::error::Result<()> {
        if self.core.original_initiator || !self.core.peer_redirect.follows() {
            return Err(crate::error::IkeError::RedirectUnsupported);
        }
        self.core.redirect_to = Some(Box::new(to));
        Ok(())
    }

    /// This SA follows a gateway's REDIRECT of another (RFC 5685 §5).
    pub fn set_redirected(&mut self) {
        self.core.origin = Origin::Redirected;
    }

    /// A reauthentication replaced this SA: delete it (§2.8.3), after the new one is up.
    pub fn reauthenticated(&mut self, ctx: &mut Ctx<'_>) {
        self.core.supersede(Lifecycle::Reauthenticated);
        self.core.timers.stop_lifetime();
        self.queue(ctx, Job::DeleteIke);
    }

    /// The reauthentication failed: try again at `at`.
    pub fn retry_reauth(&mut self, at: Instant) {
        if self.core.lifecycle != Lifecycle::Expired {
            self.core.timers.set(Timer::Reauth, at);
        }
    }

    /// This SA, made by the peer's side of a simultaneous rekey, lost (§2.8.2); see
    /// [`SaCore::await_peer_delete`].
    pub fn await_peer_delete(&mut self, at: Instant) {
        self.core.await_peer_delete(at);
    }

    /// Takes the CHILD SAs of the IKE SA this one replaces.
    pub fn inherit(&mut self, ctx: &mut Ctx<'_>, mut from: crate::sa::Inheritance) {
        let jobs = core::mem::take(&mut from.jobs);
        self.core.inherit(from);
        for job in jobs {
            self.core.queue(ctx, job);
        }
        self.settle(ctx);
    }

    /// The CHILD SAs.
    pub fn children(&self) -> Vec<ChildSa> {
        self.core.children()
    }

    /// Parameters for status and events.
    pub fn info(&self) -> Option<crate::event::IkeSaInfo> {
        self.core.info()
    }

    /// Every inbound ESP SPI this SA holds: its CHILD SAs' and the one offered in its request in
    /// flight. The endpoint keeps them unique across its SAs.
    pub fn inbound_spis(&self) -> Vec<u32> {
        let mut spis: Vec<u32> = self.core.children.inbound_spis().collect();
        spis.extend(self.pending.as_ref().and_then(|p| p.exchange.offered_spi()));
        // The pair the peer's CHILD SA request waits to make after its IKE_FOLLOWUP_KE exchanges
        // (RFC 9370 §2.2.4): its SPI was answered and must stay ours.
        spis.extend(self.core.child_followup.as_ref().map(|f| f.spi_in()));
        spis
    }

    /// Whether the peer announced INITIAL_CONTACT (once: the flag is cleared).
    pub fn take_initial_contact(&mut self) -> bool {
        core::mem::take(&mut self.core.initial_contact)
    }

    /// The pairs it just made as responder, not by a rekey (once).
    pub fn take_fresh_pairs(&mut self) -> Vec<u32> {
        core::mem::take(&mut self.core.fresh_pairs)
    }

    /// The data plane's counters of one pair (see [`crate::Endpoint::handle_usage`]).
    pub fn handle_usage(&mut self, ctx: &mut Ctx<'_>, spi_in: u32, usage: crate::volume::ChildUsage) {
        self.core.handle_usage(ctx, spi_in, usage);
        self.settle(ctx);
    }

    /// Removes the SA without a word to the peer (it restarted and knows nothing of it).
    pub fn forget(&mut self, ctx: &mut Ctx<'_>, reason: DownReason) {
        self.take_pending();
        self.queue.clear();
        self.core.close(ctx, reason);
        self.settle(ctx);
    }

    /// When the CHILD SA with this inbound SPI is due for rekeying.
    pub fn rekey_time(&self, spi_in: u32) -> Option<Instant> {
        self.core.children.get(spi_in).and_then(|c| c.rekey_at)
    }

    /// The next moment [`Self::handle_timeout`] has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        let timers = &self.core.timers;
        let retransmit = self.pending.as_ref().and(timers.get(Timer::Retransmit));
        let others = match self.core.state {
            State::HalfOpen => timers.get(Timer::HalfOpen),
            State::Closed => timers.get(Timer::Linger),
            State::Established => [timers.get(Timer::IkeRekey), timers.get(Timer::Reauth)]
                .into_iter()
                .chain([timers.get(Timer::IkeExpire), timers.get(Timer::Dpd), timers.get(Timer::Keepalive)])
                .chain([timers.get(Timer::Resources)])
                .chain([self.core.children.next()])
                .flatten()
                .min(),
            State::Connecting => None,
        };
        [retransmit, others].into_iter().flatten().min()
    }

    // -----------------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------------

    /// Retransmits, gives up, expires a half-open SA, or starts what the SA's timers call for.
    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.core.state == State::HalfOpen {
            if self.core.timers.take_due(Timer::HalfOpen, ctx.now) {
                // An EAP client that went silent after its method failed (MSCHAPv2's Failure-Request
                // is never answered by charon or Windows) failed to authenticate.
                let eap = self.core.eap.take().and_then(|e| e.pending_failure());
                self.core.close(ctx, eap.map_or(DownReason::HalfOpenTimeout, DownReason::AuthFailed));
            }
            return;
        }
        if self.is_established() {
            self.core.child_timers(ctx);
            let idle = self.pending.is_none();
            self.core.ike_lifetime_timers(ctx, idle);
            self.core.keepalive_timer(ctx);
            self.core.resource_timer(ctx);
            self.settle(ctx);
            // §2.4: a request already in flight (perhaps one the timers above just started) checks
            // the peer as well as an empty INFORMATIONAL would.
            let idle = self.pending.is_none() && self.queue.is_empty();
            self.core.dpd_timer(ctx, idle);
            self.settle(ctx);
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
        if h.flags.initiator() == self.core.initiator {
            return Err(IkeError::Unexpected(Unexpected::OwnRole));
        }
        let r = if h.flags.response() {
            self.handle_response(ctx, local, remote, msg)
        } else {
            self.handle_request(ctx, local, remote, msg)
        };
        self.settle(ctx);
        r
    }

    /// The answer to our request in flight: its exchange's tasks read their parts of it.
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
        if let InFlight::Init { req, .. } = &pending.exchange {
            // IKE_SA_INIT cannot be authenticated: a reading that is not final leaves the request in
            // flight, waiting for the genuine response (§2.4).
            let response = req.handle_response(ctx.provider, msg.as_bytes());
            if !task::ike_init::is_final(&response) {
                return response.map(|_| ());
            }
            let Some(Pending { exchange: InFlight::Init { req, cookie_tries, ke_retried }, .. }) =
                self.take_pending().map(|p| *p)
            else {
                return Ok(());
            };
            let next = task::ike_init::answer(
                &mut self.core,
                ctx,
                *req,
                (cookie_tries, ke_retried),
                response,
                (local, remote),
            );
            self.next(ctx, next);
            return Ok(());
        }
        if h.exchange_type != pending.exchange.exchange() {
            return Err(IkeError::Unexpected(Unexpected::OtherExchange));
        }
        let payloads = match self.receive(ctx, msg)? {
            Inbound::Partial => return Ok(()),
            Inbound::Complete { payloads: Ok(p), plain, .. } => {
                if let Some((first, plain)) = plain
                    && let Err(e) = self.core.note_intermediate(ctx, &h, first, &plain)
                {
                    self.take_pending();
                    self.core.close(ctx, DownReason::Protocol(format!("IKE_INTERMEDIATE: {e}")));
                    return Ok(());
                }
                p
            }
            // A response we cannot parse after it authenticated: the peer is broken (§2.21.2).
            Inbound::Complete { payloads: Err(e), .. } => {
                self.take_pending();
                self.core.close(ctx, DownReason::Protocol(e.to_string()));
                return Ok(());
            }
        };
        let Some(pending) = self.take_pending() else { return Ok(()) };
        self.core.received_on = (local, remote);
        self.core.update_addresses(ctx, local, remote);
        let next = task::answer(&mut self.core, ctx, pending.exchange, &Collected::collect(payloads));
        self.core.heard_from_peer(ctx);
        self.next(ctx, next);
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
        // A retransmission of the request we are still answering: the answer goes out once the
        // authentication server gave it.
        if let Some(d) = self
            .deferred
            .as_mut()
            .filter(|d| d.message_id == h.message_id && d.request_digest == sha1(&[msg.as_bytes()]))
        {
            // Over TCP the peer sent it again on a new stream (RFC 9329 §6): the answer goes there.
            if ctx.transport == Transport::Tcp {
                (d.local, d.remote) = (local, remote);
            }
            return Ok(());
        }
        // Window size 1 (§2.3): no other request before the deferred one is answered.
        if self.deferred.is_some() {
            return Err(IkeError::Unexpected(Unexpected::OutsideWindow));
        }
        // §2.1: a retransmitted request is answered from the cache, without processing it again.
        if let Some(c) = self.cached.as_mut()
            && h.message_id == c.message_id
        {
            if sha1(&[msg.as_bytes()]) == c.request_digest {
                ctx.out.cache_hits = ctx.out.cache_hits.saturating_add(1);
                // RFC 7383 §2.5.2 from our side: an answer asked for a third time may have
                // been lost to a path narrower than its fragments.
                c.hits = c.hits.saturating_add(1);
                if c.hits >= crate::ike_sa::manager::REFRAGMENT_AFTER {
                    let path = (local, remote);
                    if let Some(smaller) = c.unfragmented.take().and_then(|u| self.core.refragment(ctx, &u, path)) {
                        c.response = boxed(smaller);
                    }
                }
                for d in &c.response {
                    let transport = ctx.transport;
                    ctx.out.transmits.push_back(Transmit { local, remote, transport, payload: d.to_vec() });
                }
                return Ok(());
            }
            let answered_total = c.request_fragments;
            if self.refragmented_retransmission(ctx, msg, answered_total) {
                self.answer_refragmented(ctx, (local, remote), msg);
                return Ok(());
            }
            return Err(IkeError::Unexpected(Unexpected::ReusedMessageId));
        }
        if h.message_id != self.expected_message_id {
            return Err(IkeError::Unexpected(Unexpected::OutsideWindow));
        }
        let exchange = h.exchange_type;
        let valid = match self.core.state {
            // RFC 9242 §3: IKE_INTERMEDIATE only before IKE_AUTH, and here only while an
            // additional key exchange (RFC 9370) is left to make.
            State::HalfOpen => {
                exchange == ExchangeType::IKE_AUTH
                    || (exchange == ExchangeType::IKE_INTERMEDIATE && self.core.additional_ke_pending())
            }
            // An exchange type we do not know is dropped before decryption, as strongSwan does: no
            // message ID is consumed, nothing changes.
            State::Established => {
                exchange == ExchangeType::INFORMATIONAL
                    || exchange == ExchangeType::CREATE_CHILD_SA
                    || exchange == ExchangeType::IKE_FOLLOWUP_KE
            }
            _ => false,
        };
        if !valid {
            return Err(IkeError::Unexpected(Unexpected::NotInThisState));
        }
        let (parsed, digest, plain) = match self.receive(ctx, msg)? {
            Inbound::Partial => return Ok(()),
            Inbound::Complete { payloads, digest, plain } => (payloads, digest, plain),
        };
        // Authentic: from here on the request is consumed and answered.
        self.expected_message_id = self.expected_message_id.wrapping_add(1);
        self.core.received_on = (local, remote);
        let before = self.core.remote;
        self.core.update_addresses(ctx, local, remote);
        if self.core.transport == Transport::Tcp && self.core.remote != before {
            // The peer opened a new stream (RFC 9329 §6): a request of ours that went on the old
            // one is sent again on it, as TCP will not retransmit across streams.
            self.resend_pending(ctx);
        }
        let setup = exchange == ExchangeType::IKE_AUTH || exchange == ExchangeType::IKE_INTERMEDIATE;
        if setup {
            // The initiator floated (or not): answer and send from where its first request after
            // IKE_SA_INIT came (§2.23; RFC 9242 §3.3: IKE_INTERMEDIATE floats as IKE_AUTH does).
            self.core.local = local;
            self.core.remote = remote;
        }
        if let Some((first, plain)) = plain
            && let Err(e) = self.core.note_intermediate(ctx, &h, first, &plain)
        {
            self.core.close(ctx, DownReason::Protocol(format!("IKE_INTERMEDIATE: {e}")));
        }
        let response = match parsed {
            Err(e) => {
                let n = match e.disposition() {
                    oxswan_wire::Disposition::Notify(n) => n,
                    oxswan_wire::Disposition::Drop => NotifyType::INVALID_SYNTAX,
                };
                if setup {
                    self.core.close(ctx, DownReason::Protocol(e.to_string()));
                }
                vec![Payload::Notify(NotifyPayload::new(n, e.notify_data()))]
            }
            Ok(payloads) => {
                let window = Window { in_flight: self.pending.as_ref().map(|p| &p.exchange), queued: &self.queue };
                let response = task::respond(&mut self.core, ctx, window, exchange, payloads);
                self.core.heard_from_peer(ctx);
                match response {
                    Some(r) => r,
                    None => {
                        self.deferred = Some(Box::new(Deferred {
                            message_id: h.message_id,
                            exchange,
                            request_digest: digest,
                            local,
                            remote,
                        }));
                        return Ok(());
                    }
                }
            }
        };
        self.send_response(ctx, (exchange, h.message_id, digest), (local, remote), &response)?;
        if exchange == ExchangeType::IKE_INTERMEDIATE {
            self.core.intermediate_answered(ctx);
        }
        Ok(())
    }

    /// Sends and caches our response to the request `(exchange, message_id, digest)`.
    fn send_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        (exchange, message_id, request_digest): (ExchangeType, u32, [u8; 20]),
        (local, remote): (SocketAddr, SocketAddr),
        response: &[Payload],
    ) -> Result<()> {
        let initiator = self.core.initiator;
        let flags = if initiator { Flags::RESPONSE.with(Flags::INITIATOR) } else { Flags::RESPONSE };
        let header = Header::new(self.core.spi_i, self.core.spi_r, exchange, flags, message_id);
        // RFC 7383 §2.5.2: fragments no longer than the request's, which the path carried.
        let (request_fragments, longest) = self.last_request_fragments;
        let (datagrams, unfragmented) = self.core.seal_within(ctx, &header, response, longest)?;
        if exchange == ExchangeType::IKE_INTERMEDIATE && !self.core.is_closed() {
            self.note_sent_intermediate(ctx, header, response)?;
        }
        for d in &datagrams {
            let transport = ctx.transport;
            ctx.out.transmits.push_back(Transmit { local, remote, transport, payload: d.to_vec() });
        }
        let response = boxed(datagrams);
        let unfragmented = unfragmented.map(Box::new);
        self.cached = Some(Cached { message_id, request_digest, request_fragments, hits: 0, response, unfragmented });
        Ok(())
    }

    /// The peer sent the request we answered again in smaller fragments (RFC 7383 §2.5.2): our
    /// answer, which may have been lost the same way, goes in fragments of the path family's
    /// minimum too, and from now on the cache answers the new form of the request.
    fn answer_refragmented(&mut self, ctx: &mut Ctx<'_>, path: (SocketAddr, SocketAddr), msg: &Message<'_>) {
        let Some(c) = self.cached.as_mut() else { return };
        if let Some(smaller) = c.unfragmented.take().and_then(|u| self.core.refragment(ctx, &u, path)) {
            c.response = boxed(smaller);
        }
        c.request_digest = sha1(&[msg.as_bytes()]);
        c.request_fragments = u16::MAX;
        ctx.out.cache_hits = ctx.out.cache_hits.saturating_add(1);
        for d in &c.response {
            let transport = ctx.transport;
            ctx.out.transmits.push_back(Transmit { local: path.0, remote: path.1, transport, payload: d.to_vec() });
        }
    }

    /// Our addresses changed (MOBIKE, RFC 4555 §3.5): the SA tries `addrs` (our address, the
    /// peer's; the preferred first) with an UPDATE_SA_ADDRESSES request, queued before anything else.
    /// A request already in flight is sent again at once on the preferred path, and its
    /// retransmissions try every path (§3.7), so it does not wait on a path that is gone. As
    /// responder the SA only tells the peer its new address list (§3.6).
    pub fn roam(&mut self, ctx: &mut Ctx<'_>, addrs: &[(core::net::IpAddr, core::net::IpAddr)]) -> Result<()> {
        if !self.is_established() {
            return Err(IkeError::Unexpected(Unexpected::NotInThisState));
        }
        if !self.core.mobike {
            return Err(IkeError::NoMobike);
        }
        if self.core.original_initiator {
            let paths = self.core.probe_paths(addrs);
            if paths.is_empty() {
                return Err(IkeError::NoPath);
            }
            self.core.probe = paths;
            self.resend_pending(ctx);
        }
        // A newer update supersedes one queued; one in flight still completes (its answer moves
        // the SA), and the new one follows it.
        self.queue.retain(|j| *j != Job::UpdateAddresses);
        self.queue.push_front(Job::UpdateAddresses);
        self.settle(ctx);
        Ok(())
    }

    /// The TCP stream the SA used ended (RFC 9329 §6). `connected`: it had been open, so the side
    /// that opened it (`opener`) sends its request in flight again at once, on the stream the daemon
    /// opens for it, and queues a liveness check behind it: the peer may answer the request from
    /// its cache, which moves nothing, while a new request moves the peer's side of the SA and its
    /// ESP to the new stream. A stream that could not be opened waits for the next retransmission
    /// time (the schedule bounds the tries). The other side waits for the opener.
    pub fn tcp_stream_closed(&mut self, ctx: &mut Ctx<'_>, opener: bool, connected: bool) {
        if self.core.transport != Transport::Tcp {
            return;
        }
        let now = opener && connected;
        if let Some(p) = self.pending.as_mut() {
            p.stream_lost = !now;
        }
        if now {
            self.resend_pending(ctx);
        }
        if opener && self.is_established() && !self.queue.contains(&Job::Liveness) {
            self.queue(ctx, Job::Liveness);
        }
    }

    /// Whether the SA is on the TCP stream between our `local` address and the peer's `remote`.
    pub fn on_stream(&self, local: core::net::IpAddr, remote: SocketAddr) -> bool {
        self.core.transport == Transport::Tcp && self.core.local.ip() == local && self.core.remote == remote
    }

    /// Sends the request in flight again at once on the SA's path (not counted as a retransmission).
    fn resend_pending(&self, ctx: &mut Ctx<'_>) {
        if let Some(p) = &self.pending {
            let path = self.core.request_path();
            for d in &p.datagrams {
                ctx.out.transmits.push_back(self.core.transmit_on(path, d.clone()));
            }
        }
    }

    /// Authentic ESP of the pair `spi_in` came from `remote` (see [`SaCore::esp_moved`]); whether
    /// the SA followed.
    pub fn esp_moved(&mut self, ctx: &mut Ctx<'_>, remote: SocketAddr) -> bool {
        let moved = self.core.esp_moved(ctx, remote);
        self.settle(ctx);
        moved
    }

    /// The peer's other addresses it announced with MOBIKE (RFC 4555 §3.4).
    pub fn peer_addresses(&self) -> &[core::net::IpAddr] {
        &self.core.peer_addresses
    }

    /// The authentication server answered: the deferred response goes out.
    pub fn relay_answer(&mut self, ctx: &mut Ctx<'_>, answer: crate::event::RelayAnswer) -> Result<()> {
        let Some(d) = self.deferred.take() else { return Err(IkeError::Unexpected(Unexpected::NoDeferredRequest)) };
        if self.core.is_closed() {
            return Ok(());
        }
        let response = task::resume(&mut self.core, ctx, answer);
        // The request came in over the SA's transport; the answer goes back that way.
        ctx.transport = self.core.transport;
        let r = self.send_response(ctx, (d.exchange, d.message_id, d.request_digest), (d.local, d.remote), &response);
        self.settle(ctx);
        r
    }
}

/// A response as the cache keeps it until the next request (§2.1): boxed slices, without the slack
/// of the vectors it was built in.
fn boxed(datagrams: Vec<Vec<u8>>) -> Box<[Box<[u8]>]> {
    datagrams.into_iter().map(Vec::into_boxed_slice).collect()
}
