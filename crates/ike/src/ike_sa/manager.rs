//! The task manager of an IKE SA: the queue of exchanges waiting their turn, the request in flight
//! and its retransmission (RFC 7296 §2.1, §2.3, §2.4), and what the core asked for.

use oxswan_wire::{ExchangeType, Flags, Header, Payload};

use super::{IkeSa, Pending};
use crate::config::TcpMode;
use crate::error::Result;
use crate::event::DownReason;
use crate::sa::{Ask, Ctx, Job, Timer, Transport, Unfragmented, later};
use crate::task::{self, InFlight, Next};

/// Transmissions of an IKE_SA_INIT request over UDP, unanswered, after which an initiator with
/// `tcp = fallback` sends it over TCP instead (RFC 9329 §5: UDP first, TCP when UDP gets no
/// answer). With the default timing the request goes at 0 s and 4 s over UDP, over TCP at 11.2 s.
pub(crate) const TCP_FALLBACK_AFTER: u32 = 2;
/// Transmissions of an IKE_SESSION_RESUME request without an answer before it goes on as a full
/// IKE_SA_INIT (RFC 5723 §4).
const RESUME_TRIES: u32 = 2;

/// Transmissions of a request, unanswered, after which it goes again in the smaller fragments of
/// the path family's minimum (RFC 7383 §2.5.2 leaves the count to the implementation): with the
/// default timing at 11.2 s, after the tries at 0 s and 4 s.
pub(crate) const REFRAGMENT_AFTER: u32 = 2;

impl IkeSa {
    /// Queues a CREATE_CHILD_SA for each child of the connection ([`crate::Endpoint::add_children`]).
    /// Nothing when the SA has CHILD SAs or is making some already (queued, or in flight with
    /// its IKE_FOLLOWUP_KE exchanges): asked twice, it makes them once.
    pub fn add_children(&mut self, ctx: &mut Ctx<'_>) {
        let making = self.queue.iter().any(|j| matches!(j, Job::NewChild(_) | Job::NewResourceChild(..)))
            || self
                .pending
                .as_ref()
                .is_some_and(|p| matches!(p.exchange, InFlight::NewChild(_) | InFlight::FollowupChild(_)));
        if !self.core.children.is_empty() || making {
            return;
        }
        self.core.queue_children_from(ctx, 0);
        self.settle(ctx);
    }

    /// Queues an exchange; it is sent when no other request is in flight (window size 1).
    pub fn queue(&mut self, ctx: &mut Ctx<'_>, job: Job) {
        self.core.queue(ctx, job);
        self.settle(ctx);
    }

    /// Takes what the core asked for, then starts the next queued exchange. A closed SA drops its
    /// request in flight and its queue.
    pub(crate) fn settle(&mut self, ctx: &mut Ctx<'_>) {
        // Every step ends here: once the SA is up, what only its IKE_AUTH needed goes.
        if self.core.is_established()
            && let Some(keys) = self.core.keys.as_mut()
        {
            keys.handshake = None;
        }
        loop {
            let closed = self.core.is_closed();
            for ask in core::mem::take(&mut self.core.asks) {
                match ask {
                    // A last word goes out even as the SA closes.
                    Ask::Once(exchange, payloads) => self.send_once(ctx, exchange, &payloads),
                    _ if closed => {}
                    Ask::Queue(job) => self.queue.push_back(job),
                    Ask::First(job) => self.queue.push_front(job),
                    Ask::ClearQueue => self.queue.retain(|j| j.is_child_job()),
                }
            }
            // The CHILD SAs went to an heir (§2.18): so do the exchanges queued for them, which
            // would otherwise be lost with their timers already spent.
            if let Some((_, heir)) = ctx.out.inherit.as_mut()
                && self.core.children.is_empty()
            {
                heir.jobs.extend(self.queue.iter().copied().filter(|j| j.is_child_job()));
                self.queue.retain(|j| !j.is_child_job());
            }
            if closed {
                self.take_pending();
                self.queue.clear();
                return;
            }
            self.send_next(ctx);
            if self.core.asks.is_empty() {
                return;
            }
        }
    }

    /// Carries out what reading an answer asked for.
    pub(crate) fn next(&mut self, ctx: &mut Ctx<'_>, next: Next) {
        match next {
            Next::Done => {}
            Next::Send { exchange, payloads, in_flight } => self.send_protected(ctx, exchange, &payloads, in_flight),
            Next::Restart { datagram, in_flight } => {
                // The retried request is a new message 0 (§2.6, §1.2), with a fresh retransmission budget.
                self.next_message_id = 0;
                self.send_request(ctx, in_flight, vec![datagram]);
            }
        }
    }

    /// The request in flight, taken (its answer came, or it is abandoned), with its timer.
    pub(crate) fn take_pending(&mut self) -> Option<Box<Pending>> {
        self.core.timers.stop(Timer::Retransmit);
        self.pending.take()
    }

    /// Starts the next queued exchange, if none is in flight. A job whose object is gone meanwhile
    /// is skipped.
    fn send_next(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.is_some() || !self.is_established() {
            return;
        }
        while let Some(job) = self.queue.pop_front() {
            let Some((exchange, payloads, in_flight)) = task::request(&mut self.core, ctx, job) else { continue };
            self.send_protected(ctx, exchange, &payloads, in_flight);
            return;
        }
    }

    /// Retransmits the request in flight when its time has come, or gives the peer up.
    pub(crate) fn retransmit_due(&mut self, ctx: &mut Ctx<'_>) {
        if self.core.timers.get(Timer::Retransmit).is_none_or(|at| at > ctx.now) {
            return;
        }
        let retransmit = self.retransmit();
        let Some(p) = self.pending.as_mut() else {
            self.core.timers.stop(Timer::Retransmit);
            return;
        };
        // RFC 5723 §4: a gateway that does not answer IKE_SESSION_RESUME may not know it (or a
        // middlebox drops the exchange): the attempt goes on as IKE_SA_INIT, with a fresh budget.
        if let InFlight::Init { req, .. } = &mut p.exchange
            && req.resuming()
            && p.sent >= RESUME_TRIES
            && req.drop_ticket().is_ok()
        {
            p.datagrams = vec![req.request().to_vec()];
            p.sent = 0;
        }
        // RFC 9329 §5: the same request goes to the responder's TCP port, with a fresh budget of
        // retransmissions; the SA stays on TCP from here on. Its NAT detection hashes keep our UDP
        // port, as the stream's port is not known when the request is made: the responder then
        // sees a NAT, which changes nothing over TCP (RFC 9329 §6: no keepalives, no float).
        let tcp = self.core.peer.as_ref().map(|c| c.tcp).filter(|t| t.mode == TcpMode::Fallback);
        if let Some(tcp) = tcp.filter(|_| matches!(p.exchange, InFlight::Init { .. }))
            && self.core.transport == Transport::Udp
            && p.sent >= TCP_FALLBACK_AFTER
        {
            self.core.transport = Transport::Tcp;
            self.core.remote.set_port(tcp.port);
            p.sent = 0;
        }
        if p.sent > retransmit.tries {
            // §2.4: after the retransmissions are exhausted the peer is considered dead.
            let deleting = matches!(p.exchange, InFlight::DeleteIke);
            self.take_pending();
            self.core.close(ctx, if deleting { DownReason::LocalDeleted } else { DownReason::Timeout });
            self.settle(ctx);
            return;
        }
        // RFC 9329 §7.2: over TCP the stream is reliable and IKE does not retransmit on it; the
        // schedule still runs, to give the peer up after the same time as over UDP. A request is
        // sent again only on a new stream: the first over TCP after the fallback, or after the
        // stream it went on ended (the daemon then opens another).
        let resend = self.core.transport == Transport::Udp || p.sent == 0 || std::mem::take(&mut p.stream_lost);
        // RFC 7383 §2.5.2: after two unanswered transmissions, smaller fragments; the plaintext
        // kept for it goes either way.
        if p.sent >= REFRAGMENT_AFTER {
            let path = self.core.request_path();
            if let Some(smaller) = p.unfragmented.take().and_then(|u| self.core.refragment(ctx, &u, path)) {
                p.datagrams = smaller;
            }
        }
        if resend {
            for (local, remote) in self.core.retransmit_paths() {
                for d in &p.datagrams {
                    ctx.out.transmits.push_back(self.core.transmit_on((local, remote), d.clone()));
                }
            }
        }
        let next = later(ctx.now, retransmit.wait(p.sent));
        p.sent = p.sent.saturating_add(1);
        self.core.timers.set(Timer::Retransmit, next);
    }

    fn retransmit(&self) -> crate::config::Retransmit {
        self.core.peer.as_ref().map(|p| p.retransmit).unwrap_or_default()
    }

    fn encrypt_request(
        &self,
        ctx: &Ctx<'_>,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<(Vec<Vec<u8>>, Option<Unfragmented>)> {
        self.core.seal(ctx, &self.request_header(exchange), payloads)
    }

    /// The header of our next request of `exchange`.
    fn request_header(&self, exchange: ExchangeType) -> Header {
        let flags = if self.core.initiator { Flags::INITIATOR } else { Flags(0) };
        Header::new(self.core.spi_i, self.core.spi_r, exchange, flags, self.next_message_id)
    }

    /// The IntAuth of an IKE_INTERMEDIATE message of ours (RFC 9242 §3.3.2), request or response,
    /// over its inner payloads as they are encrypted.
    pub(crate) fn note_sent_intermediate(&mut self, ctx: &Ctx<'_>, header: Header, payloads: &[Payload]) -> Result<()> {
        let mut plain = Vec::new();
        let first = oxswan_wire::emit_chain(payloads, oxswan_wire::PayloadType::NONE, &mut plain)?;
        self.core.note_intermediate(ctx, &header, first, &plain)
    }

    /// Sends a request and keeps it in flight with the state its answer needs.
    pub(crate) fn send_request(&mut self, ctx: &mut Ctx<'_>, exchange: InFlight, datagrams: Vec<Vec<u8>>) {
        self.send_request_with(ctx, exchange, datagrams, None);
    }

    /// [`IkeSa::send_request`] of a protected request, with what re-fragmenting it takes.
    fn send_request_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange: InFlight,
        datagrams: Vec<Vec<u8>>,
        unfragmented: Option<Unfragmented>,
    ) {
        let (local, remote) = self.core.request_path();
        for d in &datagrams {
            ctx.out.transmits.push_back(self.core.transmit_on((local, remote), d.clone()));
        }
        let wait = self.retransmit().wait(0);
        self.core.timers.set(Timer::Retransmit, later(ctx.now, wait));
        self.pending = Some(Box::new(Pending {
            message_id: self.next_message_id,
            datagrams,
            sent: 1,
            exchange,
            unfragmented,
            stream_lost: false,
        }));
        self.next_message_id = self.next_message_id.wrapping_add(1);
    }

    /// Protects and sends a request; a request we cannot protect ends the SA.
    fn send_protected(&mut self, ctx: &mut Ctx<'_>, exchange: ExchangeType, payloads: &[Payload], in_flight: InFlight) {
        if exchange == ExchangeType::IKE_INTERMEDIATE
            && let Err(e) = self.note_sent_intermediate(ctx, self.request_header(exchange), payloads)
        {
            self.core.close(ctx, DownReason::Protocol(format!("IKE_INTERMEDIATE: {e}")));
            self.settle(ctx);
            return;
        }
        match self.encrypt_request(ctx, exchange, payloads) {
            Ok((datagrams, unfragmented)) => self.send_request_with(ctx, in_flight, datagrams, unfragmented),
            Err(e) => {
                self.core.close(ctx, DownReason::Protocol(format!("cannot protect a request: {e}")));
                self.settle(ctx);
            }
        }
    }

    /// Sends a request once, without keeping it in flight (a last word before the SA ends). It
    /// takes the next message ID without consuming it: nothing follows it.
    fn send_once(&mut self, ctx: &mut Ctx<'_>, exchange: ExchangeType, payloads: &[Payload]) {
        if let Ok((datagrams, _)) = self.encrypt_request(ctx, exchange, payloads) {
            let (local, remote) = self.core.request_path();
            for payload in datagrams {
                ctx.out.transmits.push_back(self.core.transmit_on((local, remote), payload));
            }
        }
    }
}
