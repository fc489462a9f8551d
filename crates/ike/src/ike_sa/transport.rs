//! How an IKE SA's messages reach the wire and come back: protection with SK, IKE fragmentation
//! (RFC 7383) both ways, the outbox of datagrams and events, and what an exchange needs from the
//! endpoint ([`Ctx`]).

use core::net::SocketAddr;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::hash::sha1;
use oxswan_crypto::sk::{decrypt, protect, protect_fragment};
use oxswan_wire::{ExchangeType, Flags, Header, IkeSpi, Message, Payload, PayloadType, emit_chain, parse_chain};

use super::IkeSa;
use crate::config::PeerConfig;
use crate::error::{IkeError, Result};
use crate::event::{Event, SaHandle};
use crate::task::InFlight;

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
    pub inherit: Option<(IkeSpi, crate::task::ike_rekey::Inheritance)>,
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
    /// The inbound ESP SPIs the endpoint's SAs hold, by SA.
    pub esp_spis: &'a HashMap<u32, SaHandle>,
    /// Inbound ESP SPIs drawn since the endpoint last registered what its SAs hold.
    pub fresh_spis: Vec<u32>,
}

/// Draws of an inbound SPI before giving up: with a working random source a collision among 2^32
/// values is rare, so reaching this bound means the source is broken.
const SPI_TRIES: usize = 64;

impl Ctx<'_> {
    /// A random inbound ESP SPI above 255 (RFC 4303 §2.1) that no SA of the endpoint holds: the SPI
    /// alone identifies an inbound SA to the data plane, so a duplicate would replace another SA.
    pub(crate) fn new_esp_spi(&mut self) -> Result<u32> {
        for _ in 0..SPI_TRIES {
            let spi = crate::child::random_esp_spi(self.provider)?;
            if !self.esp_spis.contains_key(&spi) && !self.fresh_spis.contains(&spi) {
                self.fresh_spis.push(spi);
                return Ok(spi);
            }
        }
        Err(IkeError::SpiExhausted)
    }
}

/// The last response we sent, by the request it answered.
#[derive(Debug)]
pub(crate) struct Cached {
    pub message_id: u32,
    /// SHA-1 of the request datagram (of fragment 1 for a fragmented request, RFC 7383 §2.6.1).
    pub request_digest: [u8; 20],
    pub response: Vec<Vec<u8>>,
}

/// A request of ours in flight.
#[derive(Debug)]
pub(crate) struct Pending {
    pub message_id: u32,
    /// The request: one datagram, or its IKE fragments (RFC 7383).
    pub datagrams: Vec<Vec<u8>>,
    /// Transmissions so far.
    pub sent: u32,
    /// The exchange, and what reading its answer needs.
    pub exchange: InFlight,
}

/// The fragments of one message (RFC 7383 §2.6).
#[derive(Debug)]
pub(crate) struct Reassembly {
    message_id: u32,
    response: bool,
    total: u16,
    next_inner: PayloadType,
    digest: Option<[u8; 20]>,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
}

/// What arrived.
pub(crate) enum Inbound {
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

impl IkeSa {
    pub(crate) fn encrypt_request(
        &mut self,
        ctx: &Ctx<'_>,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<Vec<Vec<u8>>> {
        let flags = if self.initiator { Flags::INITIATOR } else { Flags(0) };
        let header = Header::new(self.spi_i, self.spi_r, exchange, flags, self.next_message_id);
        self.seal(ctx, &header, payloads)
    }

    /// Protects a message, as IKE fragments (RFC 7383 §2.5) when both sides announced support and it
    /// would exceed the fragment size.
    pub(crate) fn seal(&self, ctx: &Ctx<'_>, header: &Header, payloads: &[Payload]) -> Result<Vec<Vec<u8>>> {
        let keys = self.keys.as_ref().ok_or(IkeError::NoKeys)?;
        let mut plain = Vec::new();
        let first = emit_chain(payloads, PayloadType::NONE, &mut plain)?;
        let chunk = ctx.fragment_size.saturating_sub(FRAGMENT_OVERHEAD).max(64);
        if !self.peer_fragmentation || plain.len() <= chunk {
            return Ok(vec![protect(ctx.provider, &keys.sk_out, header, payloads)?]);
        }
        let parts: Vec<&[u8]> = plain.chunks(chunk).collect();
        let total = u16::try_from(parts.len()).map_err(|_| IkeError::TooLongToFragment)?;
        parts
            .iter()
            .zip(1u16..)
            .map(|(part, n)| {
                let next = if n == 1 { first } else { PayloadType::NONE };
                Ok(protect_fragment(ctx.provider, &keys.sk_out, header, next, n, total, part)?)
            })
            .collect()
    }

    /// Sends a request and keeps it in flight with the state its answer needs.
    pub(crate) fn send_request(&mut self, ctx: &mut Ctx<'_>, exchange: InFlight, datagrams: Vec<Vec<u8>>) {
        for d in &datagrams {
            ctx.out.transmits.push_back(Transmit { local: self.local, remote: self.remote, payload: d.clone() });
        }
        let wait = self.retransmit().wait(0);
        self.timers.set(super::Timer::Retransmit, later(ctx.now, wait));
        self.pending = Some(Pending { message_id: self.next_message_id, datagrams, sent: 1, exchange });
        self.next_message_id = self.next_message_id.wrapping_add(1);
    }

    /// Protects and sends a request; a request we cannot protect ends the SA.
    pub(crate) fn send_protected(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange_type: ExchangeType,
        payloads: &[Payload],
        exchange: InFlight,
    ) {
        match self.encrypt_request(ctx, exchange_type, payloads) {
            Ok(datagrams) => self.send_request(ctx, exchange, datagrams),
            Err(e) => self.close(ctx, crate::event::DownReason::Protocol(format!("cannot protect a request: {e}"))),
        }
    }

    pub(crate) fn retransmit(&self) -> crate::config::Retransmit {
        self.peer.as_ref().map(|p| p.retransmit).unwrap_or_default()
    }

    /// Sends a request once, without keeping it in flight (a last word before the SA ends).
    pub(crate) fn send_once(&mut self, ctx: &mut Ctx<'_>, exchange_type: ExchangeType, payloads: &[Payload]) {
        if let Ok(datagrams) = self.encrypt_request(ctx, exchange_type, payloads) {
            for payload in datagrams {
                ctx.out.transmits.push_back(Transmit { local: self.local, remote: self.remote, payload });
            }
        }
    }

    /// Decrypts an SK message, or an SKF fragment which it keeps until all fragments of the message
    /// are in (RFC 7383 §2.6). The outer `Err` is an integrity failure or garbage (drop, §2.21.2 forbids
    /// answering); `Partial` a stored fragment; `Complete` the inner payloads, or the payload error of
    /// an authentic message, with the digest that identifies a retransmission of the request.
    pub(crate) fn receive(&mut self, ctx: &Ctx<'_>, msg: &Message<'_>) -> Result<Inbound> {
        let keys = self.keys.as_ref().ok_or(IkeError::NoKeys)?;
        let d = decrypt(ctx.provider, &keys.sk_in, msg)?;
        let h = msg.header();
        let Some((number, total)) = d.fragment else {
            return Ok(Inbound::Complete {
                payloads: parse_chain(d.next_inner, &d.data, d.offset),
                digest: sha1(&[msg.as_bytes()]),
            });
        };
        if total > MAX_FRAGMENTS {
            return Err(IkeError::Fragment("more fragments than we hold"));
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
        let slot = r.parts.get_mut(usize::from(number).saturating_sub(1)).ok_or(IkeError::Fragment("number"))?;
        if slot.is_none() {
            r.bytes = r.bytes.saturating_add(d.data.len());
            if r.bytes > MAX_REASSEMBLED {
                self.reassembly = None;
                return Err(IkeError::Fragment("reassembled message too long"));
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
}
