//! What reaches an IKE SA: decryption, reassembly of IKE fragments (RFC 7383 §2.6), and the state
//! of the task manager's requests and responses.

use oxswan_crypto::hash::sha1;
use oxswan_crypto::sk::decrypt;
use oxswan_wire::{ExchangeType, Message, Payload, PayloadType, parse_chain};

use super::IkeSa;
use crate::error::{IkeError, Result};
use crate::sa::Ctx;
use crate::task::InFlight;

/// The last response we sent, by the request it answered.
#[derive(Debug)]
pub(crate) struct Cached {
    pub message_id: u32,
    /// SHA-1 of the request datagram (of fragment 1 for a fragmented request, RFC 7383 §2.6.1).
    pub request_digest: [u8; 20],
    /// The Total Fragments of that request (0: it was not fragmented).
    pub request_fragments: u16,
    /// Retransmissions of it answered from here.
    pub hits: u32,
    pub response: Box<[Box<[u8]>]>,
    /// What the response was made of, to cut it into smaller fragments when the peer does so with
    /// its retransmitted request (RFC 7383 §2.5.2).
    pub unfragmented: Option<Box<crate::sa::Unfragmented>>,
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
    /// What it was made of, to cut it into smaller fragments (RFC 7383 §2.5.2).
    pub unfragmented: Option<crate::sa::Unfragmented>,
    /// Over TCP: the stream it went on ended, so the next retransmission is sent (on the new
    /// stream); otherwise TCP itself retransmits and IKE does not (RFC 9329 §7.2).
    pub stream_lost: bool,
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
    /// The longest fragment datagram so far.
    largest: usize,
}

/// What arrived.
pub(crate) enum Inbound {
    /// A fragment was stored; the message is not complete.
    Partial,
    /// The whole message; for IKE_INTERMEDIATE also its first inner payload's type and the inner
    /// payloads as decrypted, which its IntAuth covers (RFC 9242 §3.3.2).
    Complete {
        payloads: core::result::Result<Vec<Payload>, oxswan_wire::Error>,
        digest: [u8; 20],
        plain: Option<(PayloadType, Vec<u8>)>,
    },
}

/// At most this many fragments per message, and this many octets reassembled: a bound on what a peer
/// can make us hold (a 64 KiB message in 512-octet fragments fits).
const MAX_FRAGMENTS: u16 = 128;
pub const MAX_REASSEMBLED: usize = 64 * 1024;

impl Reassembly {
    /// The octets of fragment data held (the count the bound is checked against).
    pub(crate) fn held(&self) -> usize {
        self.bytes
    }
}

/// The Fragment Number and Total Fragments of an SKF message (RFC 7383 §2.5), unauthenticated.
fn skf_numbers(msg: &Message<'_>) -> Option<(u16, u16)> {
    let last = msg.payloads().last()?.ok()?;
    match (last.payload_type, last.body.get(..4)) {
        (PayloadType::SKF, Some([a, b, c, d])) => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

impl IkeSa {
    /// Whether `msg`, which reuses the message ID of the request we answered last but is not the
    /// datagram we answered, is fragment 1 of that request cut again into more, smaller fragments
    /// (RFC 7383 §2.5.2), and authentic. Only fragment 1 counts, as for any retransmission
    /// (§2.6.1), so that the answer goes once per retransmission.
    pub(crate) fn refragmented_retransmission(&self, ctx: &Ctx<'_>, msg: &Message<'_>, answered_total: u16) -> bool {
        // The numbers are in the SKF header, outside the encryption (RFC 7383 §2.5): anything else
        // is dropped without the cost of decrypting it.
        if !skf_numbers(msg).is_some_and(|(number, total)| number == 1 && total > answered_total) {
            return false;
        }
        let Some(keys) = self.core.keys.as_ref() else { return false };
        let recut = |sk_in| {
            decrypt(ctx.provider, sk_in, msg)
                .is_ok_and(|d| d.fragment.is_some_and(|(n, t)| n == 1 && t > answered_total))
        };
        // The last IKE_INTERMEDIATE request came with the keys before its exchange changed them.
        let previous = keys.handshake.as_ref().and_then(|h| h.previous_sk_in.as_ref());
        recut(&keys.sk_in)
            || (msg.header().exchange_type == ExchangeType::IKE_INTERMEDIATE && previous.is_some_and(recut))
    }

    /// Decrypts an SK message, or an SKF fragment which it keeps until all fragments of the message
    /// are in (RFC 7383 §2.6). The outer `Err` is an integrity failure or garbage (drop, §2.21.2 forbids
    /// answering); `Partial` a stored fragment; `Complete` the inner payloads, or the payload error of
    /// an authentic message, with the digest that identifies a retransmission of the request.
    pub(crate) fn receive(&mut self, ctx: &Ctx<'_>, msg: &Message<'_>) -> Result<Inbound> {
        let keys = self.core.keys.as_ref().ok_or(IkeError::NoKeys)?;
        let d = decrypt(ctx.provider, &keys.sk_in, msg)?;
        let h = msg.header();
        let Some((number, total)) = d.fragment else {
            self.last_request_fragments = (0, usize::MAX);
            let payloads = parse_chain(d.next_inner, &d.data, d.offset);
            let plain = (h.exchange_type == ExchangeType::IKE_INTERMEDIATE).then_some((d.next_inner, d.data));
            return Ok(Inbound::Complete { payloads, digest: sha1(&[msg.as_bytes()]), plain });
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
                self.reassembly = Some(Box::new(Reassembly {
                    message_id: h.message_id,
                    response,
                    total,
                    next_inner: PayloadType::NONE,
                    digest: None,
                    parts: vec![None; usize::from(total)],
                    bytes: 0,
                    largest: 0,
                }))
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
            r.largest = r.largest.max(msg.as_bytes().len());
            if number == 1 {
                r.next_inner = d.next_inner;
                r.digest = Some(sha1(&[msg.as_bytes()]));
            }
        }
        if r.parts.iter().any(Option::is_none) {
            return Ok(Inbound::Partial);
        }
        let Some(r) = self.reassembly.take() else { return Ok(Inbound::Partial) };
        self.last_request_fragments = (r.total, r.largest);
        let data: Vec<u8> = r.parts.into_iter().flatten().flatten().collect();
        let payloads = parse_chain(r.next_inner, &data, 0);
        // RFC 9242 §3.3.2 with RFC 7383: a fragmented message's IntAuth is that of the message
        // reassembled.
        let plain = (h.exchange_type == ExchangeType::IKE_INTERMEDIATE).then_some((r.next_inner, data));
        Ok(Inbound::Complete { payloads, digest: r.digest.unwrap_or_else(|| sha1(&[msg.as_bytes()])), plain })
    }
}
