//! CHILD SA rekeying with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.8): the request, the answer, and the
//! make-before-break order in which the new pair replaces the old one.
//!
//! The initiator of the exchange offers new SPIs, a nonce and (with PFS) a key exchange, names the
//! old SA in N(REKEY_SA), and on the answer installs the new pair and deletes the old one. The
//! responder installs the new inbound SA at once but sends on the new outbound SA only once the
//! initiator deleted the old pair, so nothing reaches the initiator on an SA it has not installed.

use core::time::Duration;

use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::{KePayload, NoncePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::ts::TsPayload;
use oxswan_wire::{KeId, NotifyType, Payload, ProtocolId};

use super::{AuthPayloads, Ctx, IkeSa, Job, later, notify};
use crate::child::{self, ChildConfig, ChosenEsp, Mode};
use crate::event::{ChildSa, Event};
use crate::init::NONCE_LEN;

/// Our CREATE_CHILD_SA request in flight.
#[derive(Debug)]
pub(super) struct RekeyOffer {
    /// Inbound SPI of the CHILD SA being replaced.
    old: u32,
    /// Our inbound SPI of the new one.
    spi_in: u32,
    nonce: Vec<u8>,
    offered: Vec<Proposal>,
    ke: Option<Box<dyn KeyExchange>>,
    /// INVALID_KE_PAYLOAD already made us start again once.
    ke_retried: bool,
}

/// The peer's rekey of a CHILD SA we were rekeying ourselves (§2.8.1): the lowest nonce of its
/// exchange.
#[derive(Debug)]
pub(super) struct Collision {
    old: u32,
    lowest_nonce: Vec<u8>,
}

/// How long to wait before trying again after TEMPORARY_FAILURE or a refused rekey.
const RETRY: Duration = Duration::from_secs(2);

fn random(ctx: &Ctx<'_>, len: usize) -> Option<Vec<u8>> {
    let mut v = vec![0u8; len];
    ctx.provider.random.fill(&mut v).ok()?;
    Some(v)
}

/// The Nonce and KE payloads of a CREATE_CHILD_SA message, which `AuthPayloads` does not keep.
pub(super) fn nonce_and_ke(payloads: &[Payload]) -> (Option<Vec<u8>>, Option<KePayload>) {
    let nonce = payloads.iter().find_map(|x| match x {
        Payload::Nonce(n) => Some(n.data.clone()),
        _ => None,
    });
    let ke = payloads.iter().find_map(|x| match x {
        Payload::Ke(k) => Some(k.clone()),
        _ => None,
    });
    (nonce, ke)
}

/// The responder's side of a CREATE_CHILD_SA key exchange in `group` (§1.3): our KE payload and the
/// shared secret; none without PFS; or the refusal to send, INVALID_KE_PAYLOAD naming our group when
/// the initiator guessed another.
#[allow(clippy::type_complexity)]
fn respond_ke(
    ctx: &Ctx<'_>,
    group: Option<KeId>,
    theirs: Option<&KePayload>,
) -> core::result::Result<(Option<Payload>, Option<oxswan_crypto::Secret>), Vec<Payload>> {
    let Some(g) = group else { return Ok((None, None)) };
    match theirs {
        Some(k) if k.group == g => match ctx.provider.ke.respond(g, &k.data) {
            Ok((public, shared)) => Ok((Some(Payload::Ke(KePayload { group: g, data: public })), Some(shared))),
            Err(_) => Err(vec![notify(NotifyType::INVALID_SYNTAX)]),
        },
        _ => Err(vec![Payload::Notify(NotifyPayload::new(NotifyType::INVALID_KE_PAYLOAD, g.0.to_be_bytes().to_vec()))]),
    }
}

/// The first KE method of our proposals, for PFS.
/// With PFS the answer must complete our key exchange in the chosen group (§1.3.1, §1.3.3): the new
/// shared secret, none without PFS, or `Err` for an answer that does not fit our offer.
pub(super) fn complete_ke(
    chosen: Option<KeId>,
    ours: Option<&dyn KeyExchange>,
    theirs: Option<&KePayload>,
) -> Result<Option<oxswan_crypto::Secret>, ()> {
    match (chosen, ours, theirs) {
        (None, _, _) => Ok(None),
        (Some(g), Some(ours), Some(theirs)) if g == ours.group() && theirs.group == g => {
            ours.complete(&theirs.data).map(Some).map_err(|_| ())
        }
        _ => Err(()),
    }
}

pub(super) fn first_ke(proposals: &[Proposal]) -> Option<KeId> {
    proposals.iter().find_map(|p| {
        p.transforms
            .iter()
            .find(|t| t.transform_type == oxswan_wire::TransformType::KE && t.transform_id != KeId::NONE.0)
            .map(|t| KeId(t.transform_id))
    })
}

impl IkeSa {
    fn child_config(&self, name: &str) -> Option<ChildConfig> {
        self.peer.as_ref()?.children.iter().find(|c| c.name == name).cloned()
    }

    /// Arms the rekey timer of a newly installed CHILD SA: `rekey_time` less a random part of
    /// `rand_time`, so that the two peers rarely start at once (§2.8.1).
    pub(super) fn schedule_rekey(&mut self, ctx: &Ctx<'_>, spi_in: u32, name: &str) {
        let Some(lifetime) = self.child_config(name).map(|c| c.lifetime) else { return };
        if let Some(life) = lifetime.life_time {
            self.expire_at.retain(|(s, _)| *s != spi_in);
            self.expire_at.push((spi_in, later(ctx.now, life)));
        }
        let Some(rekey) = lifetime.rekey_time else { return };
        let mut b = [0u8; 4];
        let jitter = match ctx.provider.random.fill(&mut b) {
            Ok(()) => lifetime.rand_time.mul_f64(f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)),
            Err(_) => Duration::ZERO,
        };
        let at = later(ctx.now, rekey.saturating_sub(jitter).max(Duration::from_secs(1)));
        self.rekey_at.retain(|(s, _)| *s != spi_in);
        self.rekey_at.push((spi_in, at));
    }

    /// Queues the rekeys whose time has come, and the deletes of CHILD SAs at their hard lifetime.
    pub(super) fn rekey_timers(&mut self, ctx: &mut Ctx<'_>) {
        let children = &self.children;
        self.expire_at.retain(|(s, _)| children.iter().any(|c| c.spi_in == *s));
        let expired: Vec<u32> = self.expire_at.iter().filter(|(_, at)| *at <= ctx.now).map(|(s, _)| *s).collect();
        for spi in expired {
            self.expire_at.retain(|(s, _)| *s != spi);
            self.rekey_at.retain(|(s, _)| *s != spi);
            self.queue(ctx, Job::DeleteChild(spi));
        }
        let due: Vec<u32> = self.rekey_at.iter().filter(|(_, at)| *at <= ctx.now).map(|(s, _)| *s).collect();
        if due.is_empty() {
            return;
        }
        self.rekey_at.retain(|(_, at)| *at > ctx.now);
        for spi in due {
            self.queue(ctx, Job::RekeyChild(spi));
        }
    }

    /// Starts rekeying the CHILD SA with inbound SPI `old`; the request's payloads, or `None` when
    /// there is nothing to rekey (it is gone, or already replaced).
    pub(super) fn rekey_request(&mut self, ctx: &Ctx<'_>, old: u32, retry_group: Option<KeId>) -> Option<Vec<Payload>> {
        let c = self.children.iter().find(|c| c.spi_in == old)?;
        if self.successors.iter().any(|(o, _)| *o == old) {
            return None;
        }
        let config = self.child_config(&c.name)?;
        let spi_in = child::random_esp_spi(ctx.provider).ok()?;
        let nonce = random(ctx, NONCE_LEN)?;
        let offered = child::esp_offer(&config.esp_proposals, spi_in);
        let group = retry_group.or_else(|| first_ke(&config.esp_proposals));
        let ke = match group {
            Some(g) => Some(ctx.provider.ke.start(g).ok()?),
            None => None,
        };
        // §1.3.3: REKEY_SA carries the SPI we receive on, with the old pair's protocol.
        let mut rekey = NotifyPayload::new(NotifyType::REKEY_SA, Vec::new());
        rekey.protocol = ProtocolId::ESP;
        rekey.spi = old.to_be_bytes().to_vec();
        let mut payloads = vec![
            Payload::Notify(rekey),
            Payload::Sa(SaPayload { proposals: offered.clone() }),
            Payload::Nonce(NoncePayload { data: nonce.clone() }),
        ];
        if let Some(k) = &ke {
            payloads.push(Payload::Ke(KePayload { group: k.group(), data: k.public_value().to_vec() }));
        }
        payloads.push(Payload::TsI(TsPayload { selectors: c.local_ts.clone() }));
        payloads.push(Payload::TsR(TsPayload { selectors: c.remote_ts.clone() }));
        if c.mode == Mode::Transport {
            payloads.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        self.rekey_offer =
            Some(Box::new(RekeyOffer { old, spi_in, nonce, offered, ke, ke_retried: retry_group.is_some() }));
        Some(payloads)
    }

    /// The answer to our CREATE_CHILD_SA request.
    pub(super) fn handle_rekey_response(&mut self, ctx: &mut Ctx<'_>, old: u32, payloads: Vec<Payload>) {
        let Some(offer) = self.rekey_offer.take() else { return };
        if offer.old != old {
            return;
        }
        let p = AuthPayloads::collect(payloads.clone());
        let (nonce, ke) = nonce_and_ke(&payloads);
        if let Some(err) = p.error() {
            match err {
                // §1.3: start again once with the group the responder names.
                NotifyType::INVALID_KE_PAYLOAD if !offer.ke_retried => {
                    let group = p.invalid_ke_group();
                    if let Some(g) = group {
                        self.send_rekey(ctx, old, Some(g));
                        return;
                    }
                }
                // §2.25: the peer has no such SA any more; neither may we.
                NotifyType::CHILD_SA_NOT_FOUND => {
                    if let Some(i) = self.children.iter().position(|c| c.spi_in == old) {
                        let c = self.children.remove(i);
                        ctx.out.events.push_back(Event::ChildSaDeleted {
                            sa: self.handle,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                        });
                    }
                    return;
                }
                _ => {}
            }
            // The peer's own rekey of this pair (a collision, §2.8.1) replaces it: nothing to retry.
            if let Some(i) = self.collisions.iter().position(|c| c.old == old) {
                self.collisions.remove(i);
                return;
            }
            // TEMPORARY_FAILURE (§2.25), NO_PROPOSAL_CHOSEN, ...: the old pair stays; try again soon.
            if let Some(name) = self.children.iter().find(|c| c.spi_in == old).map(|c| c.name.clone()) {
                self.rekey_at.push((old, later(ctx.now, RETRY)));
                ctx.out.events.push_back(Event::ChildSaFailed { sa: self.handle, name, reason: err });
            }
            return;
        }
        let Some(c) = self.children.iter().find(|c| c.spi_in == old).cloned() else { return };
        let (Some(sa), Some(nr)) = (&p.sa, nonce) else { return };
        let Ok(chosen) = child::accept_esp(&offer.offered, &sa.proposals, true) else {
            ctx.out.events.push_back(Event::ChildSaFailed {
                sa: self.handle,
                name: c.name.clone(),
                reason: NotifyType::NO_PROPOSAL_CHOSEN,
            });
            return;
        };
        let Ok(shared) = complete_ke(chosen.ke, offer.ke.as_deref(), ke.as_ref()) else { return };
        let new = self.rekeyed_child(ctx, &c, &chosen, offer.spi_in, shared.as_ref(), &offer.nonce, &nr, true);
        if new.encr_in.is_empty() {
            return;
        }
        let name = new.name.clone();
        ctx.out.events.push_back(Event::ChildSaReady { sa: self.handle, child: Box::new(new.clone()) });
        self.children.push(new);
        self.schedule_rekey(ctx, offer.spi_in, &name);
        // §2.8.1: when both peers rekeyed the pair at once, the new pair made by the exchange with the
        // lowest of the four nonces is redundant and its initiator deletes it; the initiator of the
        // other exchange deletes the old pair.
        let ours_lowest = if offer.nonce <= nr { offer.nonce.clone() } else { nr };
        if let Some(i) = self.collisions.iter().position(|c| c.old == old) {
            let collision = self.collisions.remove(i);
            if ours_lowest < collision.lowest_nonce {
                self.rekey_at.retain(|(s, _)| *s != offer.spi_in);
                self.queue.push_front(Job::DeleteChild(offer.spi_in));
                return;
            }
        }
        // §2.8: the initiator of the rekey deletes the old pair.
        self.queue.push_front(Job::DeleteChild(old));
    }

    /// Sends a rekey request now if nothing else is in flight (used for the INVALID_KE retry).
    fn send_rekey(&mut self, ctx: &mut Ctx<'_>, old: u32, group: Option<KeId>) {
        let Some(payloads) = self.rekey_request(ctx, old, group) else { return };
        match self.encrypt_request(ctx, oxswan_wire::ExchangeType::CREATE_CHILD_SA, &payloads) {
            Ok(d) => self.send_request(ctx, Job::RekeyChild(old), d),
            Err(_) => self.rekey_offer = None,
        }
    }

    /// A CREATE_CHILD_SA request from the peer: a rekey of one of our CHILD SAs, or a new one
    /// (§1.3.1), which strongSwan also sends to recreate a CHILD SA that expired.
    pub(super) fn handle_create_child_request(&mut self, ctx: &mut Ctx<'_>, payloads: Vec<Payload>) -> Vec<Payload> {
        let p = AuthPayloads::collect(payloads.clone());
        if super::ike_rekey::is_ike_rekey(&p) {
            return self.handle_ike_rekey_request(ctx, &p, &payloads);
        }
        // This IKE SA was rekeyed: its CHILD SAs belong to the new one, or will once a simultaneous
        // rekey is resolved (§2.8.2). The peer asks again there.
        if self.rekeyed {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let Some(rekey) = p.notifies.iter().find(|n| n.notify_type == NotifyType::REKEY_SA) else {
            return self.new_child_request(ctx, &p, &payloads);
        };
        // The SPI the peer receives on: our outbound SPI of the pair.
        let spi = match rekey.spi.as_slice() {
            [a, b, c, d] if rekey.protocol == ProtocolId::ESP => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return vec![notify(NotifyType::INVALID_SYNTAX)],
        };
        let Some(old) = self.children.iter().find(|c| c.spi_out == spi).cloned() else {
            let mut n = NotifyPayload::new(NotifyType::CHILD_SA_NOT_FOUND, Vec::new());
            n.protocol = ProtocolId::ESP;
            n.spi = rekey.spi.clone();
            return vec![Payload::Notify(n)];
        };
        // §2.25.1: a pair we are deleting (our own rekey of it completed) is not rekeyed again.
        let retiring = self.queue.contains(&Job::DeleteChild(old.spi_in))
            || self.pending.as_ref().is_some_and(|p| p.job == Job::DeleteChild(old.spi_in));
        if retiring {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let (nonce, ke) = nonce_and_ke(&payloads);
        let (Some(sa), Some(ni)) = (&p.sa, nonce) else { return vec![notify(NotifyType::INVALID_SYNTAX)] };
        let Some(config) = self.child_config(&old.name) else { return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)] };
        let Ok(spi_in) = child::random_esp_spi(ctx.provider) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let Ok(chosen) = child::choose_esp(&config.esp_proposals, &sa.proposals, spi_in, false, true) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let mut out = vec![Payload::Sa(SaPayload { proposals: vec![chosen.proposal.clone()] })];
        let (ke_out, shared) = match respond_ke(ctx, chosen.ke, ke.as_ref()) {
            Ok(x) => x,
            Err(refusal) => return refusal,
        };
        let Some(nr) = random(ctx, NONCE_LEN) else { return vec![notify(NotifyType::TEMPORARY_FAILURE)] };
        out.push(Payload::Nonce(NoncePayload { data: nr.clone() }));
        out.extend(ke_out);
        let mut new = self.rekeyed_child(ctx, &old, &chosen, spi_in, shared.as_ref(), &ni, &nr, false);
        // Make before break: receive on the new pair now, send on it once the old one is deleted.
        new.outbound = false;
        out.push(Payload::TsI(TsPayload { selectors: old.remote_ts.clone() }));
        out.push(Payload::TsR(TsPayload { selectors: old.local_ts.clone() }));
        if old.mode == Mode::Transport {
            out.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        if new.encr_in.is_empty() {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        let name = new.name.clone();
        ctx.out.events.push_back(Event::ChildSaReady { sa: self.handle, child: Box::new(new.clone()) });
        self.children.push(new);
        self.successors.push((old.spi_in, spi_in));
        self.schedule_rekey(ctx, spi_in, &name);
        // §2.8.1: we are rekeying the same pair; which new pair survives is decided by the nonces once
        // our own exchange completes.
        if self.rekey_offer.as_ref().is_some_and(|o| o.old == old.spi_in) {
            let lowest_nonce = if ni <= nr { ni.clone() } else { nr.clone() };
            self.collisions.push(Collision { old: old.spi_in, lowest_nonce });
        }
        out
    }

    /// A new CHILD SA asked for in CREATE_CHILD_SA (§1.3.1): chosen as in IKE_AUTH, with its own
    /// nonces and, with PFS, key exchange.
    fn new_child_request(&mut self, ctx: &mut Ctx<'_>, p: &AuthPayloads, payloads: &[Payload]) -> Vec<Payload> {
        let Some(peer) = self.peer.clone() else { return vec![notify(NotifyType::NO_ADDITIONAL_SAS)] };
        let (nonce, ke) = nonce_and_ke(payloads);
        let Some(ni) = nonce else { return vec![notify(NotifyType::INVALID_SYNTAX)] };
        let Ok(spi_in) = child::random_esp_spi(ctx.provider) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let sel = match self.select_child(&peer, p, spi_in, true) {
            Ok(sel) => sel,
            Err(super::SelectError::Missing) => return vec![notify(NotifyType::INVALID_SYNTAX)],
            Err(super::SelectError::Refused(reason)) => return self.refuse_child(ctx, &peer, reason),
        };
        let (ke_out, shared) = match respond_ke(ctx, sel.chosen.ke, ke.as_ref()) {
            Ok(x) => x,
            Err(refusal) => return refusal,
        };
        let Some(nr) = random(ctx, NONCE_LEN) else { return vec![notify(NotifyType::TEMPORARY_FAILURE)] };
        let mode = if sel.transport { Mode::Transport } else { Mode::Tunnel };
        let ts = (sel.tsr.clone(), sel.tsi.clone());
        let c =
            self.derive_child(ctx, &sel.config.name, &sel.chosen, spi_in, ts, mode, shared.as_ref(), &ni, &nr, false);
        if c.encr_in.is_empty() {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        self.ready(ctx, c);
        let mut extra = vec![Payload::Nonce(NoncePayload { data: nr })];
        extra.extend(ke_out);
        sel.payloads(extra)
    }

    /// The old pair `old_in` is gone: the responder of its rekey starts sending on the new pair.
    pub(super) fn activate_successor(&mut self, ctx: &mut Ctx<'_>, old_in: u32) {
        let Some(i) = self.successors.iter().position(|(o, _)| *o == old_in) else { return };
        let (_, new_in) = self.successors.remove(i);
        if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == new_in) {
            c.outbound = true;
            ctx.out.events.push_back(Event::ChildSaOutbound { sa: self.handle, spi_in: new_in });
        }
    }

    /// The pair replacing `old`: its name, selectors and mode, new SPIs and keys (§2.8).
    #[allow(clippy::too_many_arguments)]
    fn rekeyed_child(
        &self,
        ctx: &Ctx<'_>,
        old: &ChildSa,
        chosen: &ChosenEsp,
        spi_in: u32,
        shared: Option<&oxswan_crypto::Secret>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
    ) -> ChildSa {
        let ts = (old.local_ts.clone(), old.remote_ts.clone());
        let c = self.derive_child(ctx, &old.name, chosen, spi_in, ts, old.mode, shared, ni, nr, we_initiated);
        ChildSa { replaces: Some(old.spi_in), ..c }
    }
}
