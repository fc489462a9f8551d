//! Additional CHILD SAs initiated with CREATE_CHILD_SA (RFC 7296 §1.3.1): the connection's children
//! after the first, which rides on IKE_AUTH. Each has nonces of its own and, when its ESP proposals
//! name a key exchange, a new Diffie-Hellman (PFS).

use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::payloads::{KePayload, NoncePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::ts::{TrafficSelector, TsPayload};
use oxswan_wire::{ExchangeType, KeId, NotifyType, Payload};

use super::rekey::{complete_ke, first_ke, nonce_and_ke};
use super::{AuthPayloads, Ctx, IkeSa, Job, NO_PROPOSAL_CHOSEN_LOCALLY, notify};
use crate::child::{self, Mode};
use crate::event::Event;
use crate::init::NONCE_LEN;

/// Our request for an additional CHILD SA, in flight.
#[derive(Debug)]
pub(super) struct NewChildOffer {
    /// The child's index in the connection.
    config: usize,
    spi_in: u32,
    nonce: Vec<u8>,
    offered: Vec<Proposal>,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
    ke: Option<Box<dyn KeyExchange>>,
    ke_retried: bool,
}

impl IkeSa {
    /// After IKE_AUTH, as initiator: one CREATE_CHILD_SA for each further child of the connection.
    pub(super) fn queue_more_children(&mut self, ctx: &mut Ctx<'_>) {
        let n = self.peer.as_ref().map_or(0, |p| p.children.len());
        for i in 1..n {
            if let Ok(i) = u16::try_from(i) {
                self.queue(ctx, Job::NewChild(i));
            }
        }
    }

    /// The request for child `index`, or `None` when there is no such child or no randomness.
    pub(super) fn additional_child_request(
        &mut self,
        ctx: &Ctx<'_>,
        index: u16,
        group: Option<KeId>,
    ) -> Option<Vec<Payload>> {
        let peer = self.peer.clone()?;
        let config = peer.children.get(usize::from(index))?;
        let spi_in = child::random_esp_spi(ctx.provider).ok()?;
        let mut nonce = vec![0u8; NONCE_LEN];
        ctx.provider.random.fill(&mut nonce).ok()?;
        let offered = child::esp_offer(&config.esp_proposals, spi_in);
        let ke = match group.or_else(|| first_ke(&config.esp_proposals)) {
            Some(g) => Some(ctx.provider.ke.start(g).ok()?),
            None => None,
        };
        let tsi = child::resolve(&config.local_ts, self.local.ip());
        let tsr = child::resolve(&config.remote_ts, self.remote.ip());
        let transport = config.mode == Mode::Transport;
        let mut payloads = Vec::new();
        if transport {
            payloads.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        payloads.push(Payload::Sa(SaPayload { proposals: offered.clone() }));
        payloads.push(Payload::Nonce(NoncePayload { data: nonce.clone() }));
        if let Some(k) = &ke {
            payloads.push(Payload::Ke(KePayload { group: k.group(), data: k.public_value().to_vec() }));
        }
        payloads.push(Payload::TsI(TsPayload { selectors: tsi.clone() }));
        payloads.push(Payload::TsR(TsPayload { selectors: tsr.clone() }));
        self.new_child_offer = Some(Box::new(NewChildOffer {
            config: usize::from(index),
            spi_in,
            nonce,
            offered,
            tsi,
            tsr,
            transport,
            ke,
            ke_retried: group.is_some(),
        }));
        Some(payloads)
    }

    /// The answer to our request for an additional CHILD SA.
    pub(super) fn handle_new_child_response(&mut self, ctx: &mut Ctx<'_>, index: u16, payloads: Vec<Payload>) {
        let Some(offer) = self.new_child_offer.take() else { return };
        let Some(peer) = self.peer.clone() else { return };
        let Some(config) = peer.children.get(offer.config) else { return };
        let fail = |s: &mut Self, ctx: &mut Ctx<'_>, reason| {
            ctx.out.events.push_back(Event::ChildSaFailed { sa: s.handle, name: config.name.clone(), reason });
        };
        let p = AuthPayloads::collect(payloads.clone());
        if let Some(err) = p.error() {
            // §1.3.1: start again once in the group the responder asked for.
            if err == NotifyType::INVALID_KE_PAYLOAD && !offer.ke_retried {
                let group = p.invalid_ke_group();
                if let Some(payloads) = group.and_then(|g| self.additional_child_request(ctx, index, Some(g))) {
                    if let Ok(d) = self.encrypt_request(ctx, ExchangeType::CREATE_CHILD_SA, &payloads) {
                        self.send_request(ctx, Job::NewChild(index), d);
                        return;
                    }
                }
            }
            // The IKE SA stays up without this child (§1.3).
            fail(self, ctx, err);
            return;
        }
        let (nonce, ke) = nonce_and_ke(&payloads);
        let (Some(sa), Some(tsi), Some(tsr), Some(nr)) = (&p.sa, &p.tsi, &p.tsr, nonce) else {
            fail(self, ctx, NotifyType::NO_PROPOSAL_CHOSEN);
            return;
        };
        let Ok(chosen) = child::accept_esp(&offer.offered, &sa.proposals, true) else {
            fail(self, ctx, NO_PROPOSAL_CHOSEN_LOCALLY);
            self.delete_uninstalled_child(ctx, offer.spi_in);
            return;
        };
        // §2.9: the responder may narrow, never widen.
        if !child::is_narrowing_of(&offer.tsi, &tsi.selectors) || !child::is_narrowing_of(&offer.tsr, &tsr.selectors) {
            fail(self, ctx, NotifyType::TS_UNACCEPTABLE);
            self.delete_uninstalled_child(ctx, offer.spi_in);
            return;
        }
        let Ok(shared) = complete_ke(chosen.ke, offer.ke.as_deref(), ke.as_ref()) else {
            fail(self, ctx, NotifyType::INVALID_SYNTAX);
            return;
        };
        let mode =
            if offer.transport && p.has(NotifyType::USE_TRANSPORT_MODE) { Mode::Transport } else { Mode::Tunnel };
        let ts = (tsi.selectors.clone(), tsr.selectors.clone());
        let c = self.derive_child(
            ctx,
            &config.name,
            &chosen,
            offer.spi_in,
            ts,
            mode,
            shared.as_ref(),
            &offer.nonce,
            &nr,
            true,
        );
        self.ready(ctx, c);
    }
}
