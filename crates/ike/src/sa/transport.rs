//! What leaves an IKE SA: the outbox of datagrams and events, what a step needs from the endpoint
//! ([`Ctx`]), and protection with SK, as IKE fragments (RFC 7383) when the message is long.

use core::net::SocketAddr;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::sk::{protect, protect_fragment};
use oxswan_wire::{Header, IkeSpi, Payload, PayloadType, emit_chain};
use zeroize::Zeroizing;

use super::{Inheritance, Job, SaCore};
use crate::config::PeerConfig;
use crate::error::{IkeError, Result};
pub use crate::event::Transport;
use crate::event::{Event, SaHandle};

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port to send from. Over TCP a stream we opened has a port the kernel chose:
    /// the I/O layer finds the stream by our address and `remote` (RFC 9329 §6).
    pub local: SocketAddr,
    /// Where to.
    pub remote: SocketAddr,
    /// UDP, or the TCP stream to `remote` (opened by the I/O layer if it is ours to open and
    /// there is none; dropped if the peer opened it and it is gone, §6).
    pub transport: Transport,
    /// The IKE message. From or to port 4500 the I/O layer prepends the four-octet non-ESP marker
    /// (RFC 3948 §2.2); over TCP it is framed behind a length and that marker (RFC 9329 §3.1).
    pub payload: Vec<u8>,
}

/// A NAT keepalive (RFC 3948 §2.3): one octet 0xFF, sent to the peer's NAT-T port as it is, without
/// the non-ESP marker. No IKE message is this short.
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

impl Transmit {
    /// Whether this is a NAT keepalive rather than an IKE message.
    pub fn is_keepalive(&self) -> bool {
        self.payload == NAT_KEEPALIVE
    }
}

/// What the engine produced, drained by the `poll_*` methods.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
    /// Retransmitted requests answered from a response cache since the endpoint last looked.
    pub cache_hits: u64,
    /// Clients redirected by an IKE SA since the endpoint last looked (RFC 5685 §5, §6).
    pub redirects: u64,
    /// Tickets gateways gave us (RFC 5723 §4), for the endpoint to keep.
    pub tickets: Vec<crate::resume::ClientTicket>,
    /// IKE SAs that replace the one being handled (rekeyed, §2.18), for the endpoint to adopt, each
    /// with the exchange to start on it (the DELETE of a redundant one, §2.8.2).
    pub spawned: Vec<(SaCore, Option<Job>)>,
    /// The CHILD SAs of the SA being handled, for the IKE SA with this (local) SPI that replaces it.
    pub inherit: Option<(IkeSpi, Inheritance)>,
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
    /// The largest IP datagram a message or fragment is sent in when the peer supports IKE
    /// fragmentation ([`crate::EndpointConfig::fragment_size`]).
    pub fragment_size: usize,
    /// The inbound ESP SPIs the endpoint's SAs hold, by SA.
    pub esp_spis: &'a HashMap<u32, SaHandle>,
    /// Inbound ESP SPIs drawn since the endpoint last registered what its SAs hold.
    pub fresh_spis: Vec<u32>,
    /// Where shared keys are looked up.
    pub credentials: &'a dyn crate::auth::Credentials,
    /// How often to send NAT keepalives behind a NAT.
    pub keepalive: Option<core::time::Duration>,
    /// Where virtual IPs for clients come from.
    pub leases: &'a mut dyn crate::leases::AddressLeases,
    /// How the message being handled arrived (UDP for timers and commands): its answer goes back
    /// the same way.
    pub transport: Transport,
    /// This host's addresses, as the daemon last told them: MOBIKE announces the others than an
    /// SA's own (RFC 4555 §3.4).
    pub local_addresses: &'a [core::net::IpAddr],
    /// [`crate::EndpointConfig::resources`].
    pub resources: u32,
    /// The keys our session resumption tickets are sealed with (RFC 5723).
    pub tickets: &'a crate::resume::TicketKeys,
    /// The top octet of every SPI we choose ([`crate::Endpoint::set_spi_tag`]).
    pub spi_tag: Option<u8>,
}

/// Draws of an inbound SPI before giving up: with a working random source a collision among 2^32
/// values is rare, so reaching this bound means the source is broken.
const SPI_TRIES: usize = 64;

impl Ctx<'_> {
    /// A random IKE SPI of ours, tagged ([`Self::spi_tag`]).
    pub(crate) fn new_ike_spi(&self) -> Result<oxswan_wire::IkeSpi> {
        crate::init::tagged_spi(self.provider, self.spi_tag)
    }

    /// A random inbound ESP SPI above 255 (RFC 4303 §2.1) that no SA of the endpoint holds: the SPI
    /// alone identifies an inbound SA to the data plane, so a duplicate would replace another SA.
    /// For the per-resource pair of `resource` (RFC 9611), one that is `resource` modulo
    /// [`crate::EndpointConfig::resources`]: the daemon steers inbound ESP to its workers by the SPI,
    /// so each resource's pair arrives at its own worker.
    pub(crate) fn new_esp_spi_for(&mut self, resource: Option<u32>) -> Result<u32> {
        for _ in 0..SPI_TRIES {
            let mut spi = crate::child::random_esp_spi(self.provider)?;
            if let Some(tag) = self.spi_tag {
                spi = (u32::from(tag) << 24) | (spi & 0x00ff_ffff);
            }
            if let Some(k) = resource
                && self.resources > 1
            {
                let n = self.resources;
                // Down to a multiple of n, plus k; SPIs below 256 are reserved (RFC 4303 §2.1).
                match (spi - spi % n).checked_add(k % n) {
                    Some(s) if s >= 256 => spi = s,
                    _ => continue,
                }
            }
            // Rounding for a resource must not leave the tag's range.
            let tagged = self.spi_tag.is_none_or(|tag| spi >> 24 == u32::from(tag));
            if tagged && !self.esp_spis.contains_key(&spi) && !self.fresh_spis.contains(&spi) {
                self.fresh_spis.push(spi);
                return Ok(spi);
            }
        }
        Err(IkeError::SpiExhausted)
    }
}

/// The most an SKF fragment adds to its share of the inner payloads: IKE header, SKF header, IV (16),
/// padding (up to 15), Pad Length and ICV (up to 32).
const FRAGMENT_OVERHEAD: usize = 28 + 8 + 16 + 15 + 1 + 32;

/// The most octets an IKE message may have for its datagram to fit `fragment_size`, the whole IP
/// datagram as with strongSwan's `charon.fragment_size` (RFC 7383 §2.5.1: IP and UDP headers
/// count), on the path from `local` to `remote`: less the IP header of the path's family (no
/// options or extension headers), UDP's 8 octets, and the non-ESP marker's 4 (RFC 3948 §2.2) unless
/// a port is IKE's own. 0 means the family's default: 576 for IPv4 (RFC 791's minimum reassembly
/// size, what RFC 7383 §2.5.1 suggests for it) and 1280 for IPv6 (RFC 8200 §5's minimum MTU).
pub(crate) fn message_limit(fragment_size: usize, local: SocketAddr, remote: SocketAddr) -> usize {
    let v6 = remote.is_ipv6();
    let size = match fragment_size {
        0 if v6 => 1280,
        0 => 576,
        n => n,
    };
    let ip = if v6 { 40 } else { 20 };
    let marker = if local.port() != super::IKE_PORT && remote.port() != super::IKE_PORT { 4 } else { 0 };
    size.saturating_sub(ip + 8 + marker)
}

/// `now + d` without the panic of `Instant + Duration` on overflow: configured durations are capped
/// at a year.
pub(crate) fn later(now: Instant, d: core::time::Duration) -> Instant {
    let capped = d.min(core::time::Duration::from_secs(365 * 86_400));
    now.checked_add(capped).unwrap_or(now)
}

impl SaCore {
    /// A message to the peer along the SA's path.
    pub(crate) fn transmit(&self, payload: Vec<u8>) -> Transmit {
        Transmit { local: self.local, remote: self.remote, transport: self.transport, payload }
    }

    /// A message to the peer along `(local, remote)` (a path MOBIKE probes), on the SA's transport.
    pub(crate) fn transmit_on(&self, (local, remote): (SocketAddr, SocketAddr), payload: Vec<u8>) -> Transmit {
        Transmit { local, remote, transport: self.transport, payload }
    }

    /// Protects a message, as IKE fragments (RFC 7383 §2.5) when both sides announced support and its
    /// datagram on the SA's current path would exceed the fragment size ([`message_limit`]); and,
    /// when IKE fragmentation may carry it, what cutting it again into smaller fragments takes
    /// (RFC 7383 §2.5.2, [`SaCore::refragment`]).
    pub(crate) fn seal(
        &self,
        ctx: &Ctx<'_>,
        header: &Header,
        payloads: &[Payload],
    ) -> Result<(Vec<Vec<u8>>, Option<Unfragmented>)> {
        self.seal_within(ctx, header, payloads, usize::MAX)
    }

    /// [`SaCore::seal`] with no fragment longer than `cap` octets (a response to a request that
    /// came in fragments that short: RFC 7383 §2.5.2, the path may carry no more).
    pub(crate) fn seal_within(
        &self,
        ctx: &Ctx<'_>,
        header: &Header,
        payloads: &[Payload],
        cap: usize,
    ) -> Result<(Vec<Vec<u8>>, Option<Unfragmented>)> {
        let keys = self.keys.as_ref().ok_or(IkeError::NoKeys)?;
        let mut plain = Zeroizing::new(Vec::new());
        let first = emit_chain(payloads, PayloadType::NONE, &mut plain)?;
        let limit = message_limit(ctx.fragment_size, self.local, self.remote).min(cap);
        let chunk = limit.saturating_sub(FRAGMENT_OVERHEAD).max(64);
        if !self.fragmenting() {
            return Ok((vec![protect(ctx.provider, &keys.sk_out, header, payloads)?], None));
        }
        let datagrams = if plain.len() <= chunk {
            vec![protect(ctx.provider, &keys.sk_out, header, payloads)?]
        } else {
            self.fragments(ctx, &keys.sk_out, header, first, &plain, chunk)?
        };
        // Kept only where smaller fragments could be cut from it later ([`SaCore::refragment`]).
        let smaller = fragment_chunk(0, self.local, self.remote);
        let keep = self.transport == super::Transport::Udp && smaller < chunk && plain.len() > smaller;
        // An IKE_INTERMEDIATE message is cut again with the keys it went out with: ours may have
        // changed by then (RFC 9370 §2.2.2: after each exchange).
        let sealed_with = (header.exchange_type == oxswan_wire::ExchangeType::IKE_INTERMEDIATE)
            .then(|| Box::new(keys.sk_out.clone()));
        Ok((datagrams, keep.then_some(Unfragmented { header: *header, first, plain, chunk, sealed_with })))
    }

    /// Whether our messages go as IKE fragments when too long (RFC 7383 §2.3: only when both
    /// announced it, and the connection, once known, wants it).
    fn fragmenting(&self) -> bool {
        let ours = self.peer.as_ref().is_none_or(|p| p.fragmentation);
        self.peer_fragmentation && ours
    }

    fn fragments(
        &self,
        ctx: &Ctx<'_>,
        sk_out: &oxswan_crypto::sk::SkKeys,
        header: &Header,
        first: PayloadType,
        plain: &[u8],
        chunk: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let parts: Vec<&[u8]> = plain.chunks(chunk.max(1)).collect();
        let total = u16::try_from(parts.len()).map_err(|_| IkeError::TooLongToFragment)?;
        parts
            .iter()
            .zip(1u16..)
            .map(|(part, n)| {
                let next = if n == 1 { first } else { PayloadType::NONE };
                Ok(protect_fragment(ctx.provider, sk_out, header, next, n, total, part)?)
            })
            .collect()
    }

    /// RFC 7383 §2.5.2: a message on the path `(local, remote)` that went unanswered may have been lost to a path narrower than
    /// the fragment size (a middlebox dropping IP fragments, or an MTU below it). It is cut again
    /// into the fragments of the path family's minimum (576 octets for IPv4, 1280 for IPv6) when
    /// those are smaller than the ones it went in and the message is longer than one of them; the
    /// new fragments keep the message ID and have a larger Total Fragments, which makes the peer
    /// drop what it holds of the old ones (§2.6.1). `None` when nothing smaller applies.
    pub(crate) fn refragment(
        &self,
        ctx: &Ctx<'_>,
        u: &Unfragmented,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Option<Vec<Vec<u8>>> {
        let smaller = fragment_chunk(0, local, remote);
        // Over TCP no path MTU applies to a message (RFC 9329), and nothing is retransmitted.
        let tcp = self.transport == super::Transport::Tcp;
        if tcp || smaller >= u.chunk || u.plain.len() <= smaller || !self.fragmenting() {
            return None;
        }
        let keys = self.keys.as_ref()?;
        let sk_out = u.sealed_with.as_deref().unwrap_or(&keys.sk_out);
        self.fragments(ctx, sk_out, &u.header, u.first, &u.plain, smaller).ok()
    }
}

/// What a request was made of before protection, kept while it is in flight so that it can be cut
/// into smaller fragments (RFC 7383 §2.5.2). Wiped when dropped: it is what SK protects.
#[derive(Debug)]
pub(crate) struct Unfragmented {
    header: Header,
    first: PayloadType,
    plain: Zeroizing<Vec<u8>>,
    /// The share of the inner payloads per fragment it went out in.
    chunk: usize,
    /// The keys an IKE_INTERMEDIATE message was protected with.
    sealed_with: Option<Box<oxswan_crypto::sk::SkKeys>>,
}

/// How many octets of the inner payloads go into each fragment for datagrams of `fragment_size`.
fn fragment_chunk(fragment_size: usize, local: SocketAddr, remote: SocketAddr) -> usize {
    message_limit(fragment_size, local, remote).saturating_sub(FRAGMENT_OVERHEAD).max(64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_limit_counts_the_family_s_header_udp_and_the_marker() {
        // IPv4 on 500: 1280 - 20 - 8.
        assert_eq!(message_limit(1280, a("192.0.2.1:500"), a("192.0.2.2:500")), 1252);
        // On 4500 the non-ESP marker takes 4 more.
        assert_eq!(message_limit(1280, a("192.0.2.1:4500"), a("192.0.2.2:4500")), 1248);
        // IPv6 costs 20 more than IPv4.
        assert_eq!(message_limit(1280, a("[2001:db8::1]:500"), a("[2001:db8::2]:500")), 1232);
        assert_eq!(message_limit(1280, a("[2001:db8::1]:4500"), a("[2001:db8::2]:4500")), 1228);
        // 0: the family's default.
        assert_eq!(message_limit(0, a("192.0.2.1:500"), a("192.0.2.2:500")), 548);
        assert_eq!(message_limit(0, a("[2001:db8::1]:500"), a("[2001:db8::2]:500")), 1232);
        assert_eq!(message_limit(10, a("192.0.2.1:500"), a("192.0.2.2:500")), 0);
    }
}
