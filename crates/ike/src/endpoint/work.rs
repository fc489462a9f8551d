//! The responder's key exchange handed to other threads: with
//! [`EndpointConfig::offload_key_exchange`](crate::EndpointConfig::offload_key_exchange), an
//! IKE_SA_INIT request that passed the half-open limits and the cookie becomes an [`InitWork`]
//! instead of being answered at once. The driver takes it with [`Endpoint::poll_work`], calls
//! [`InitWork::run`] on any thread, and gives the result back with [`Endpoint::handle_work`].
//!
//! The work is the pure part of the exchange (RFC 7296 §1.2): choosing the proposal, our KE share
//! and the shared secret, the nonce, SKEYSEED and the SK_* keys, and the encoded response. It is most
//! of a PSK handshake's cost on the responder, and independent between requests, so a gateway's
//! cores can share it while the endpoint itself stays on one thread. What needs the endpoint's state
//! (the limits, the SPI index, the SA) stays before and after it.

use core::net::{IpAddr, SocketAddr};
use std::time::Instant;

use oxswan_crypto::CryptoProvider;
use oxswan_wire::IkeSpi;
use oxswan_wire::Payload;
use oxswan_wire::sa::Proposal;

use super::Endpoint;
use crate::error::{IkeError, Result};
use crate::event::{Event, SaHandle};
use crate::ike_sa::IkeSa;
use crate::init::{InitReply, ResponderParams, respond};
use crate::sa::{Transmit, Transport};

/// How often the key exchanges out are looked over for those out longer than a half-open SA may
/// live, which are forgotten: a driver that lost them would hold their half-open places (and block
/// their addresses) for ever. A walk over at most the half-open limit's worth, once a second.
const STALE_SWEEP: core::time::Duration = core::time::Duration::from_secs(1);

/// An IKE_SA_INIT request's key exchange, to be computed on any thread (see the module).
#[derive(Debug)]
pub struct InitWork {
    provider: CryptoProvider,
    proposals: Vec<Proposal>,
    prefer_initiator: bool,
    extra: Vec<Payload>,
    request: Vec<u8>,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
}

/// A computed [`InitWork`], for [`Endpoint::handle_work`].
#[derive(Debug)]
pub struct InitDone {
    reply: Result<InitReply>,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
}

impl InitWork {
    /// The key exchange and the response; pure, on whichever thread.
    #[must_use]
    pub fn run(self) -> InitDone {
        let params =
            ResponderParams { proposals: &self.proposals, prefer_initiator: self.prefer_initiator, extra: &self.extra };
        let reply = respond(&self.provider, &params, &self.request, self.spi_r);
        InitDone {
            reply,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            local: self.local,
            remote: self.remote,
            transport: self.transport,
        }
    }
}

/// A key exchange handed out and not yet back: what the endpoint holds for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    spi_r: IkeSpi,
    since: Instant,
}

impl Endpoint {
    /// The next key exchange to compute (see [`InitWork`]); only with
    /// [`EndpointConfig::offload_key_exchange`](crate::EndpointConfig::offload_key_exchange).
    #[must_use]
    pub fn poll_work(&mut self) -> Option<InitWork> {
        self.work.pop_front()
    }

    /// Key exchanges handed out and not yet given back.
    #[must_use]
    pub fn work_pending(&self) -> usize {
        self.pending.len()
    }

    /// Turns [`EndpointConfig::offload_key_exchange`](crate::EndpointConfig::offload_key_exchange)
    /// on or off for the requests that come next: a driver hands the key exchanges out while it has
    /// other inputs waiting, and computes them at once when it has not (no other thread to wake, no
    /// second trip through its queue). Work already out is given back as before.
    pub fn set_offload_key_exchange(&mut self, on: bool) {
        self.config.offload_key_exchange = on;
    }

    /// Whether the first IKE_SA_INIT request `(spi_i, remote)` is being computed: a retransmission
    /// of it is dropped, as the response will answer both (§2.1).
    pub(super) fn init_pending(&self, spi_i: IkeSpi, remote: SocketAddr) -> bool {
        self.pending.contains_key(&(spi_i, remote))
    }

    /// Hands out the key exchange of an admitted request; it counts as a half-open SA from `remote`
    /// until it comes back.
    pub(super) fn defer_init(&mut self, now: Instant, req: Deferred<'_>) {
        self.work.push_back(InitWork {
            provider: self.provider.clone(),
            proposals: req.proposals,
            prefer_initiator: req.prefer_initiator,
            extra: req.extra,
            request: req.bytes.to_vec(),
            spi_i: req.spi_i,
            spi_r: req.spi_r,
            local: req.local,
            remote: req.remote,
            transport: self.arrival,
        });
        self.pending.insert((req.spi_i, req.remote), Pending { spi_r: req.spi_r, since: now });
        self.count_half_open(req.remote.ip());
    }

    /// A computed key exchange: the response goes out and the SA is made, as if the request had been
    /// answered at once. One that was forgotten meanwhile (see [`Endpoint::sweep_stale`]) is dropped.
    pub fn handle_work(&mut self, now: Instant, done: InitDone) {
        let key = (done.spi_i, done.remote);
        match self.pending.get(&key) {
            Some(p) if p.spi_r == done.spi_r => {
                self.pending.remove(&key);
            }
            _ => {
                self.stats.drop(&IkeError::Unexpected(crate::error::Unexpected::NoDeferredRequest));
                return;
            }
        }
        let ip = done.remote.ip();
        self.arrival = done.transport;
        // Our SPI was free when drawn; an SA we initiated since may have drawn it too. Either way, and
        // for a request `respond` drops (§2.21.1), nothing is answered, as without the offload.
        let taken = self.by_spi.contains_key(&done.spi_r);
        let made = match done.reply {
            Ok(reply) if !taken => self.answer_init(now, done.local, done.remote, done.spi_i, reply, true),
            Ok(_) => Err(IkeError::SpiExhausted),
            Err(e) => Err(e),
        };
        match made {
            Ok(true) => {}
            Ok(false) => self.uncount_half_open(ip),
            Err(e) => {
                self.uncount_half_open(ip);
                self.stats.drop(&e);
            }
        }
        self.arrival = Transport::Udp;
    }

    /// Forgets key exchanges out for longer than a half-open SA may live (at most once per
    /// [`STALE_SWEEP`]). Called before a new request meets the half-open limits.
    pub(super) fn sweep_stale(&mut self, now: Instant) {
        if self.pending.is_empty() || self.swept.is_some_and(|t| now.saturating_duration_since(t) < STALE_SWEEP) {
            return;
        }
        self.swept = Some(now);
        let timeout = self.config.half_open_timeout;
        let stale: Vec<(IkeSpi, SocketAddr)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            self.pending.remove(&k);
            self.uncount_half_open(k.1.ip());
        }
    }

    pub(super) fn count_half_open(&mut self, ip: IpAddr) {
        let n = self.half_open_per_ip.entry(ip).or_insert(0);
        *n = n.saturating_add(1);
    }

    pub(super) fn uncount_half_open(&mut self, ip: IpAddr) {
        if let Some(n) = self.half_open_per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open_per_ip.remove(&ip);
            }
        }
    }

    /// Sends the answer to a first IKE_SA_INIT request and, if it was accepted, makes the half-open
    /// SA. `counted`: the request already counts in the per-address half-open figure. Returns whether
    /// an SA was made.
    pub(super) fn answer_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        spi_i: IkeSpi,
        reply: InitReply,
        counted: bool,
    ) -> Result<bool> {
        match reply {
            InitReply::Rejected { response, notify, error } => {
                self.out.transmits.push_back(Transmit { local, remote, transport: self.arrival, payload: response });
                self.out.events.push_back(Event::InitRejected { peer: remote, notify, reason: error.to_string() });
                Ok(false)
            }
            InitReply::Accepted { response, sa } => {
                let spi_r = sa.spi_r;
                let handle = SaHandle(self.next_handle);
                self.next_handle = self.next_handle.wrapping_add(1);
                let timeout = self.config.half_open_timeout;
                let (mut ctx, sas) = self.ctx_parts(now);
                let ike_sa = IkeSa::responder(&mut ctx, handle, *sa, local, remote, timeout)?;
                ctx.out.transmits.push_back(Transmit { local, remote, transport: ctx.transport, payload: response });
                sas.insert(handle, Box::new(ike_sa));
                self.by_spi.insert(spi_r, handle);
                self.by_init.insert((spi_i, remote), handle);
                self.half_open.insert(handle, remote.ip());
                if !counted {
                    self.count_half_open(remote.ip());
                }
                self.settle(now, handle);
                Ok(true)
            }
        }
    }
}

/// The request a key exchange is deferred for, and what `init::respond` is to answer it from.
pub(super) struct Deferred<'a> {
    pub(super) proposals: Vec<Proposal>,
    pub(super) prefer_initiator: bool,
    pub(super) extra: Vec<Payload>,
    pub(super) bytes: &'a [u8],
    pub(super) spi_i: IkeSpi,
    pub(super) spi_r: IkeSpi,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
}
