//! What the endpoint answers before any IKE SA takes a message (RFC 7296 §2.5, §2.6, §2.21.4): an
//! unknown SPI, an unknown major version, and a first IKE_SA_INIT request, which meets the half-open
//! limits and the cookie before it is worth a key exchange.

use core::net::SocketAddr;
use std::time::Instant;

use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::CertReqPayload;
use oxswan_wire::sa::Proposal;
use oxswan_wire::{CertEncoding, ExchangeType, Flags, Header, IkeSpi, Message, NotifyType, Payload};

use super::Endpoint;
use super::work::Deferred;
use crate::config::RemoteAuth;
use crate::error::{IkeError, Result, Unexpected};
use crate::init::{ResponderParams, check_nonce, respond};
use crate::nat::nat_notifies;
use crate::sa::Transmit;
use crate::suite::ike_suite;

/// Unauthenticated answers to messages outside any IKE SA (INVALID_IKE_SPI, RFC 7296 §2.21.4;
/// INVALID_MAJOR_VERSION, §2.5) per second at most: spoofed floods cannot turn the gateway into a
/// reflector, and a real peer that lost its SA still hears of it.
pub(super) const UNAUTHENTICATED_PER_SECOND: u32 = 20;

/// What is left of this second's [`UNAUTHENTICATED_PER_SECOND`].
#[derive(Debug, Default)]
pub(super) struct AnswerBudget {
    left: u32,
    since: Option<Instant>,
}

impl AnswerBudget {
    /// Whether one more answer may go out now.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        if self.since.is_none_or(|t| now.saturating_duration_since(t) >= core::time::Duration::from_secs(1)) {
            self.since = Some(now);
            self.left = UNAUTHENTICATED_PER_SECOND;
        }
        let ok = self.left > 0;
        self.left = self.left.saturating_sub(1);
        ok
    }
}

impl Endpoint {
    /// §2.21.4: a request for an SA we do not know gets an unprotected INVALID_IKE_SPI, with the
    /// SPIs, the message ID and the exchange type copied (§1.5); responses get nothing.
    pub(super) fn invalid_spi(&mut self, h: &Header, local: SocketAddr, remote: SocketAddr) {
        if h.flags.response() {
            return;
        }
        let flags = if h.flags.initiator() { Flags::RESPONSE } else { Flags::RESPONSE.with(Flags::INITIATOR) };
        let header = Header::new(h.spi_i, h.spi_r, h.exchange_type, flags, h.message_id);
        if let Ok(payload) =
            header.encode(&[Payload::Notify(NotifyPayload::new(NotifyType::INVALID_IKE_SPI, Vec::new()))])
        {
            self.stats.invalid_spi_sent = self.stats.invalid_spi_sent.saturating_add(1);
            self.out.transmits.push_back(Transmit { local, remote, transport: self.arrival, payload });
        }
    }

    /// §2.5: a request of a major version we do not speak is answered, unprotected, with the version we
    /// do in the answer's header and no notification data (§1.5, §3.10.1); a response is dropped.
    pub(super) fn invalid_major_version(&mut self, h: &Header, local: SocketAddr, remote: SocketAddr) {
        if h.flags.response() {
            return;
        }
        let flags = if h.flags.initiator() { Flags::RESPONSE } else { Flags::RESPONSE.with(Flags::INITIATOR) };
        let header = Header::new(h.spi_i, h.spi_r, h.exchange_type, flags, h.message_id);
        if let Ok(payload) =
            header.encode(&[Payload::Notify(NotifyPayload::new(NotifyType::INVALID_MAJOR_VERSION, Vec::new()))])
        {
            self.out.transmits.push_back(Transmit { local, remote, transport: self.arrival, payload });
        }
    }

    /// A first IKE_SA_INIT request: limits, cookie, then the exchange (§2.6).
    pub(super) fn new_responder(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let h = *msg.header();
        // A failure to draw a new secret keeps the old one: cookies keep working.
        let _ = self.cookies.rotate_if_due(&self.provider, now, self.config.cookie_secret_lifetime);
        let _ = self.tickets.rotate_if_due(&self.provider, now);
        let ip = remote.ip();
        self.sweep_stale(now);
        // Key exchanges being computed elsewhere hold their place as half-open SAs.
        let total = self.half_open.len().saturating_add(self.pending.len());
        let from_ip = self.half_open_per_ip.get(&ip).copied().unwrap_or(0);
        if total >= self.config.half_open_limit || from_ip >= self.config.block_threshold_per_peer {
            self.stats.half_open_refused = self.stats.half_open_refused.saturating_add(1);
            return Err(IkeError::Unexpected(Unexpected::HalfOpenLimit));
        }
        let loaded = total >= self.config.cookie_threshold;
        if loaded != self.cookie_mode {
            self.cookie_mode = loaded;
            self.out.events.push_back(crate::Event::CookieMode { on: loaded, half_open: total });
        }
        if self.config.force_cookies || loaded || from_ip >= self.config.cookie_threshold_per_peer {
            // Cheap checks only: the request is not yet worth a key exchange.
            let mut nonce = None;
            let mut cookie = None;
            for (i, raw) in msg.payloads().enumerate() {
                let raw = raw?;
                let p = Payload::parse(&raw)?;
                match p {
                    Payload::Notify(n) if n.notify_type == NotifyType::COOKIE && i == 0 => cookie = Some(n.data),
                    Payload::Nonce(n) => nonce = Some(n.data),
                    _ => {}
                }
            }
            let ni = nonce.ok_or(IkeError::MissingPayload(oxswan_wire::PayloadType::NONCE))?;
            let valid = cookie.is_some_and(|c| self.cookies.check(&self.provider, &c, &ni, ip, h.spi_i));
            if !valid {
                let c = self.cookies.make(&self.provider, &ni, ip, h.spi_i)?;
                // In the request's own exchange: IKE_SA_INIT, or IKE_SESSION_RESUME (RFC 5723 §4).
                let header = Header::new(h.spi_i, IkeSpi::ZERO, h.exchange_type, Flags::RESPONSE, 0);
                let payload = header.encode(&[Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, c))])?;
                self.out.transmits.push_back(Transmit { local, remote, transport: self.arrival, payload });
                self.stats.cookies_sent = self.stats.cookies_sent.saturating_add(1);
                return Ok(());
            }
        }
        // As strongSwan ("no IKE config found for ..."): when every connection names its peers'
        // addresses and none names this one, NO_PROPOSAL_CHOSEN before any key exchange.
        if !self.peers.is_empty()
            && self.peers.iter().all(|p| !p.remote_addrs.is_empty() && !p.remote_addrs.contains(&ip))
        {
            let reason = format!("no connection has {ip} among its remote_addrs");
            return self.refuse_first(&h, (local, remote), NotifyType::NO_PROPOSAL_CHOSEN, reason);
        }
        if h.exchange_type == ExchangeType::IKE_SESSION_RESUME {
            return self.resume_responder(now, local, remote, msg);
        }
        if self.redirect_init(local, remote, msg)? {
            return Ok(());
        }
        let spi_r = loop {
            let s = crate::init::tagged_spi(&self.provider, self.spi_tag)?;
            if !self.by_spi.contains_key(&s) {
                break s;
            }
        };
        let proposals = self.all_proposals();
        let mut extra: Vec<Payload> = Vec::new();
        let hashes: Vec<u8> = self
            .peers
            .iter()
            .filter_map(|p| match &p.remote_auth {
                RemoteAuth::Cert(t) => Some(t.certreq_hashes()),
                RemoteAuth::Psk(_) | RemoteAuth::SharedKey | RemoteAuth::Eap(_) | RemoteAuth::EapRelay(_) => None,
            })
            .flatten()
            .collect();
        if !hashes.is_empty() {
            extra.push(Payload::CertReq(CertReqPayload { encoding: CertEncoding::X509_SIGNATURE, data: hashes }));
        }
        extra.extend(nat_notifies(h.spi_i, spi_r, local, remote));
        // RFC 6023 §3: the responder announces childless IKE SAs. Which connection the initiator
        // wants is known only in IKE_AUTH: announced unless every one says `never`.
        if self.peers.iter().any(|p| p.childless != crate::config::Childless::Never) {
            extra.push(Payload::Notify(NotifyPayload::new(NotifyType::CHILDLESS_IKEV2_SUPPORTED, Vec::new())));
        }
        // RFC 8784 §3: USE_PPK when we have a PPK, as strongSwan (init::respond sends it only in
        // answer to the initiator's).
        if self.credentials.has_ppks() {
            extra.push(Payload::Notify(NotifyPayload::new(NotifyType::USE_PPK, Vec::new())));
        }
        let prefer_initiator = self.peers.iter().any(|p| p.prefer_initiator);
        if self.config.offload_key_exchange {
            let req = Deferred {
                proposals,
                prefer_initiator,
                extra,
                bytes: msg.as_bytes(),
                spi_i: h.spi_i,
                spi_r,
                local,
                remote,
            };
            self.defer_init(now, req);
            return Ok(());
        }
        let params = ResponderParams { proposals: &proposals, prefer_initiator, extra: &extra };
        let reply = respond(&self.provider, &params, msg.as_bytes(), spi_r)?;
        self.answer_init(now, local, remote, h.spi_i, reply, false).map(|_| ())
    }

    /// Refuses a first request (`h`, IKE_SA_INIT or IKE_SESSION_RESUME) with `notify`, unprotected
    /// and with a zero responder SPI (no state is kept, RFC 7296 §2.6), and says why in an event.
    fn refuse_first(
        &mut self,
        h: &Header,
        (local, remote): (SocketAddr, SocketAddr),
        notify: NotifyType,
        reason: String,
    ) -> Result<()> {
        let header = Header::new(h.spi_i, IkeSpi::ZERO, h.exchange_type, Flags::RESPONSE, 0);
        let payload = header.encode(&[Payload::Notify(NotifyPayload::new(notify, Vec::new()))])?;
        self.out.transmits.push_back(Transmit { local, remote, transport: self.arrival, payload });
        self.out.events.push_back(crate::Event::InitRejected { peer: remote, notify, reason });
        Ok(())
    }

    /// An IKE_SESSION_RESUME request (RFC 5723 §4): a ticket of ours, unexpired and not used
    /// before, for a connection that still allows resumption, makes a half-open SA with keys from
    /// the ticket's SK_d and fresh nonces (§5.1); anything else gets an unprotected TICKET_NACK
    /// (RFC 5723 §4), and the client sets the SA up in full.
    fn resume_responder(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let h = *msg.header();
        if h.flags.response() || !h.flags.initiator() || h.message_id != 0 || h.spi_i.is_zero() {
            return Err(IkeError::Unexpected(Unexpected::NotInitialInit));
        }
        let mut ticket = None;
        let mut nonce = None;
        let mut notifies = Vec::new();
        for p in msg.parse_payloads()? {
            match p {
                Payload::Nonce(n) if nonce.is_none() => nonce = Some(n.data),
                Payload::Notify(n) if n.notify_type == NotifyType::TICKET_OPAQUE && ticket.is_none() => {
                    ticket = Some(n.data);
                }
                Payload::Notify(n) => notifies.push(n),
                _ => {}
            }
        }
        let unix_now = self.unix_at(now);
        let accepted = match (ticket, nonce) {
            (Some(t), Some(ni)) => self.accept_ticket(&t, &ni, &notifies, local, unix_now).map(|(s, x)| (s, ni, x)),
            _ => Err("IKE_SESSION_RESUME without a ticket or a nonce".into()),
        };
        let (state, ni, suite) = match accepted {
            Ok(a) => a,
            Err(reason) => return self.refuse_first(&h, (local, remote), NotifyType::TICKET_NACK, reason),
        };
        let spi_r = loop {
            let s = crate::init::tagged_spi(&self.provider, self.spi_tag)?;
            if !self.by_spi.contains_key(&s) {
                break s;
            }
        };
        let nr = crate::init::random(&self.provider, crate::init::NONCE_LEN)?;
        let keys = crate::resume::resumed_keys(&self.provider, &suite, &state.sk_d, (&ni, &nr), (h.spi_i.0, spi_r.0))?;
        let mut out = vec![Payload::Nonce(oxswan_wire::payloads::NoncePayload { data: nr.clone() })];
        out.extend(nat_notifies(h.spi_i, spi_r, local, remote));
        out.extend(crate::init::capability_notifies(true, false));
        let response =
            Header::new(h.spi_i, spi_r, ExchangeType::IKE_SESSION_RESUME, Flags::RESPONSE, 0).encode(&out)?;
        let sa = crate::init::IkeSaInit {
            spi_i: h.spi_i,
            spi_r,
            proposal: state.proposal.clone(),
            suite,
            keys,
            ni,
            nr,
            request: msg.as_bytes().to_vec(),
            response: response.clone(),
            peer_notifies: notifies,
            peer_certreq: Vec::new(),
            intermediate: crate::init::Intermediate::default(),
            use_ppk: false,
            ppk: None,
            previous_sk_in: None,
            resumed: Some(Box::new(crate::resume::Resumed::Gateway(Box::new(state)))),
        };
        let reply = crate::init::InitReply::Accepted { response, sa: Box::new(sa) };
        self.answer_init(now, local, remote, h.spi_i, reply, false).map(|_| ())
    }

    /// Whether the ticket of an IKE_SESSION_RESUME request is taken, and the algorithms of the SA it
    /// resumes; else why not. The connection must still admit what the ticket holds, as a full
    /// authentication would now; a gateway redirecting new clients refuses it from those that follow
    /// redirects, which then set the SA up in full and are redirected there (RFC 5685 §4.1). The
    /// ticket is taken only when everything passed.
    fn accept_ticket(
        &mut self,
        ticket: &[u8],
        ni: &[u8],
        notifies: &[NotifyPayload],
        local: SocketAddr,
        unix_now: u64,
    ) -> core::result::Result<(crate::resume::TicketState, oxswan_crypto::keys::IkeSuite), String> {
        if let Some(to) = self.config.redirect.as_ref().filter(|to| to.addr() != Some(local.ip()))
            && crate::redirect::PeerRedirect::of(notifies).may_send_to(to)
        {
            return Err(format!("new clients are redirected to {to}"));
        }
        let opened = self.tickets.open(&self.provider, ticket, unix_now).map_err(|e| e.to_string())?;
        let s = &opened.state;
        let Some(c) = self.peers.iter().find(|c| c.name == s.connection && c.resumption) else {
            return Err(crate::resume::TicketError::NoConnection(s.connection.clone()).to_string());
        };
        let who = crate::cert::identity_string(&s.idi);
        if !c.remote_id.as_ref().is_none_or(|r| crate::auth::same_identity(r, &s.idi)) {
            return Err(format!("connection {} no longer admits {who}", c.name));
        }
        let proposal = core::slice::from_ref(&s.proposal);
        if oxswan_crypto::proposal::select_proposal(&c.ike_proposals, proposal, false).is_none() {
            return Err(format!("connection {} no longer accepts the ticket's proposal", c.name));
        }
        if c.ppk_required && !s.ppk_used {
            return Err(format!("connection {} requires a PPK, which the ticket's SA had not", c.name));
        }
        // An EAP user whose password is gone is gone (with RADIUS or EAP-TLS, only the server or
        // the certificate authority knows: the ticket holds for its lifetime).
        if let (RemoteAuth::Eap(server), Some(user)) = (&c.remote_auth, &s.eap_identity) {
            if server.identity.as_ref().is_some_and(|only| only != user) {
                return Err(format!("connection {} no longer admits the EAP identity {user:?}", c.name));
            }
            if server.tls.is_none() && self.credentials.eap_secret(user.as_bytes()).is_none() {
                return Err(format!("the EAP user {user:?} has no secret any more"));
            }
        }
        let (suite, _) = ike_suite(&s.proposal).map_err(|e| e.to_string())?;
        check_nonce(ni, &suite).map_err(|e| e.to_string())?;
        self.tickets.take(&opened).map_err(|e| e.to_string())?;
        Ok((opened.state, suite))
    }

    /// RFC 5685 §4.1: with a gateway to redirect to, an initiator that announced support gets an
    /// unprotected N(REDIRECT) with its own nonce, which tells it the answer is not forged, and no
    /// SA is made here. Whether it was redirected.
    fn redirect_init(&mut self, local: SocketAddr, remote: SocketAddr, msg: &Message<'_>) -> Result<bool> {
        let Some(to) = self.config.redirect.as_ref() else { return Ok(false) };
        // Never to the address the client reached: it would come straight back.
        if to.addr() == Some(local.ip()) {
            return Ok(false);
        }
        let mut nonce = None;
        let mut notifies = Vec::new();
        // Only a whole IKE_SA_INIT request is redirected, and only by an answer no larger than it
        // (below): a spoofed source gets no amplification (RFC 7296 §2.6's concern).
        let (mut sa, mut ke) = (false, false);
        for raw in msg.payloads() {
            // A malformed request is the exchange's to refuse (INVALID_SYNTAX), not redirected.
            let Ok(p) = raw.map_err(IkeError::from).and_then(|r| Ok(Payload::parse(&r)?)) else { return Ok(false) };
            match p {
                Payload::Sa(_) => sa = true,
                Payload::Ke(_) => ke = true,
                Payload::Nonce(n) => nonce = Some(n.data),
                Payload::Notify(n)
                    if matches!(n.notify_type, NotifyType::REDIRECT_SUPPORTED | NotifyType::REDIRECTED_FROM) =>
                {
                    notifies.push(n);
                }
                _ => {}
            }
        }
        // A nonce outside RFC 7296 §2.10's sizes is refused by the exchange proper, not echoed.
        let Some(ni) = nonce.filter(|n| (16..=256).contains(&n.len()) && sa && ke) else { return Ok(false) };
        if !crate::redirect::PeerRedirect::of(&notifies).may_send_to(to) {
            return Ok(false);
        }
        let h = msg.header();
        let header = Header::new(h.spi_i, IkeSpi::ZERO, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0);
        let payload = header.encode(&[Payload::Notify(to.notify(&ni))])?;
        if payload.len() > msg.as_bytes().len() {
            // A gateway name so long that the answer would outgrow the request: served here.
            return Ok(false);
        }
        self.out.transmits.push_back(Transmit { local, remote, transport: self.arrival, payload });
        self.stats.redirects_sent = self.stats.redirects_sent.saturating_add(1);
        Ok(true)
    }

    /// The IKE proposals of every connection, in configuration order without repeats: before
    /// IKE_AUTH the responder cannot know which connection the initiator wants.
    fn all_proposals(&self) -> Vec<Proposal> {
        let mut out: Vec<Proposal> = Vec::new();
        for p in self.peers.iter().flat_map(|c| c.ike_proposals.iter()) {
            if !out.iter().any(|o| o.transforms == p.transforms) {
                out.push(p.clone());
            }
        }
        out
    }
}
