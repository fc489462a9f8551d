//! CHILD SA rekeying with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.8): the request, the answer, and the
//! make-before-break order in which the new pair replaces the old one.
//!
//! The initiator of the exchange offers new SPIs, a nonce and (with PFS) a key exchange, names the
//! old SA in N(REKEY_SA), and on the answer installs the new pair and deletes the old one. The
//! responder installs the new inbound SA at once but sends on the new outbound SA only once the
//! initiator deleted the old pair, so nothing reaches the initiator on an SA it has not installed.
//!
//! Reading the answer ends in a [`RekeyEnd`], and one function applies it: every way an answer can
//! go leaves the old pair either replaced, gone, or scheduled for another try, and a pair the
//! responder made for an answer we cannot use is deleted.

use core::time::Duration;

use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::{KePayload, NoncePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::ts::TsPayload;
use oxswan_wire::{ExchangeType, KeId, NotifyType, Payload, ProtocolId};

use super::child_create::accept_answer;
use super::{Collected, InFlight, Next, Window, first_ke, lowest, nonce, notify, respond_ke};
use crate::child::{self, ChildConfig, ChosenEsp, Mode};
use crate::event::{ChildSa, Event};
use crate::sa::{Ask, ChildRecord, Ctx, Job, Lifecycle, Pair, SaCore, later};

/// Our CREATE_CHILD_SA rekey in flight.
#[derive(Debug)]
pub(crate) struct RekeyOffer {
    /// Inbound SPI of the CHILD SA being replaced.
    pub old: u32,
    /// Our inbound SPI of the new one.
    pub spi_in: u32,
    nonce: Vec<u8>,
    offered: Vec<Proposal>,
    ke: Option<Box<dyn KeyExchange>>,
    /// INVALID_KE_PAYLOAD already made us start again once.
    ke_retried: bool,
}

/// How reading the answer to our rekey of a pair ended.
enum RekeyEnd {
    /// The new pair is made; `delete` is the pair to delete now: the old one, or the new one when
    /// the peer's crossing rekey of the same pair won (§2.8.1).
    Replaced { new: Box<ChildSa>, delete: u32 },
    /// §1.3: start again now in the group the responder names.
    Again(KeId),
    /// §2.25: the peer has no such pair any more; neither may we.
    NotFound,
    /// The peer's own crossing rekey of the pair replaces it (§2.8.1): nothing to retry.
    Superseded,
    /// The old pair went meanwhile; the responder's new pair `orphan` (our inbound SPI) goes too.
    Vanished { orphan: u32 },
    /// The old pair stays and is rekeyed again in a while. `orphan` is our inbound SPI of a pair
    /// the responder made for an answer we cannot use, which is deleted (§1.4.1).
    Retry { reason: NotifyType, orphan: Option<u32> },
}

/// How long to wait before trying again after TEMPORARY_FAILURE or a refused rekey.
const RETRY: Duration = Duration::from_secs(2);

impl SaCore {
    fn child_config(&self, name: &str) -> Option<ChildConfig> {
        self.peer.as_ref()?.children.iter().find(|c| c.name == name).cloned()
    }

    /// Arms the timers of a newly installed CHILD SA: rekey at `rekey_time` less a random part of
    /// `rand_time`, so that the two peers rarely start at once (§2.8.1), and its hard end.
    pub(crate) fn schedule_rekey(&mut self, ctx: &Ctx<'_>, spi_in: u32) {
        let Some(name) = self.children.get(spi_in).map(|c| c.sa.name.clone()) else { return };
        let Some(lifetime) = self.child_config(&name).map(|c| c.lifetime) else { return };
        let mut b = [0u8; 4];
        let jitter = match ctx.provider.random.fill(&mut b) {
            Ok(()) => lifetime.rand_time.mul_f64(f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)),
            Err(_) => Duration::ZERO,
        };
        let Some(record) = self.children.get_mut(spi_in) else { return };
        if let Some(life) = lifetime.life_time {
            record.expire_at = Some(later(ctx.now, life));
        }
        if let Some(rekey) = lifetime.rekey_time {
            record.rekey_at = Some(later(ctx.now, rekey.saturating_sub(jitter).max(Duration::from_secs(1))));
        }
    }

    /// Queues the rekeys whose time has come, and the deletes of CHILD SAs at their hard lifetime.
    pub(crate) fn child_timers(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let mut expired = Vec::new();
        let mut due = Vec::new();
        for c in self.children.iter_mut() {
            if c.expire_at.is_some_and(|at| at <= now) {
                c.expire_at = None;
                c.rekey_at = None;
                expired.push(c.sa.spi_in);
            } else if c.rekey_at.is_some_and(|at| at <= now) {
                c.rekey_at = None;
                due.push(c.sa.spi_in);
            }
        }
        for spi in expired {
            self.queue(ctx, Job::DeleteChild(spi));
        }
        for spi in due {
            self.queue(ctx, Job::RekeyChild(spi));
        }
    }

    /// Tries the rekey of `old` again in a while (the old pair stays meanwhile).
    pub(super) fn rekey_later(&mut self, ctx: &Ctx<'_>, old: u32) {
        if let Some(c) = self.children.get_mut(old) {
            c.rekey_at = Some(later(ctx.now, super::jittered(ctx, RETRY)));
        }
    }

    /// Starts rekeying the CHILD SA with inbound SPI `old`: `{ N(REKEY_SA), SA, Ni, [KEi], TSi, TSr
    /// }` and the offer, or `None` when there is nothing to rekey (it is gone, or the peer's rekey
    /// already replaces it). A pair that cannot be offered now is tried again later.
    pub(crate) fn rekey_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        old: u32,
        retry_group: Option<KeId>,
    ) -> Option<(Vec<Payload>, Box<RekeyOffer>)> {
        let c = self.children.get(old)?.sa.clone();
        if self.children.has_successor(old) {
            return None;
        }
        let config = self.child_config(&c.name)?;
        let Some(offer) = Self::rekey_offer(ctx, &config, (old, c.resource), retry_group) else {
            self.rekey_later(ctx, old);
            return None;
        };
        // §1.3.3: REKEY_SA carries the SPI we receive on, with the old pair's protocol.
        let mut rekey = NotifyPayload::new(NotifyType::REKEY_SA, Vec::new());
        rekey.protocol = ProtocolId::ESP;
        rekey.spi = old.to_be_bytes().to_vec();
        let mut payloads = vec![
            Payload::Notify(rekey),
            Payload::Sa(SaPayload { proposals: offer.offered.clone() }),
            Payload::Nonce(NoncePayload { data: offer.nonce.clone() }),
        ];
        if let Some(k) = &offer.ke {
            payloads.push(Payload::Ke(KePayload { group: k.group(), data: k.public_value().to_vec() }));
        }
        payloads.push(Payload::TsI(TsPayload { selectors: c.local_ts.to_vec() }));
        payloads.push(Payload::TsR(TsPayload { selectors: c.remote_ts.to_vec() }));
        if c.mode == Mode::Transport {
            payloads.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        Some((payloads, Box::new(offer)))
    }

    fn rekey_offer(
        ctx: &mut Ctx<'_>,
        config: &ChildConfig,
        (old, resource): (u32, Option<crate::event::PerResource>),
        retry_group: Option<KeId>,
    ) -> Option<RekeyOffer> {
        let spi_in = ctx.new_esp_spi_for(resource.and_then(crate::event::PerResource::number)).ok()?;
        let nonce = nonce(ctx)?;
        let offered = child::esp_offer(&config.esp_proposals, spi_in);
        let ke = match retry_group.or_else(|| first_ke(&config.esp_proposals)) {
            Some(g) => Some(ctx.provider.ke.start(g).ok()?),
            None => None,
        };
        Some(RekeyOffer { old, spi_in, nonce, offered, ke, ke_retried: retry_group.is_some() })
    }

    /// The answer to our CREATE_CHILD_SA rekey request; with additional key exchanges (RFC 9370
    /// §2.2.4) the answer that began them, `extra` holding their secrets.
    pub(crate) fn handle_rekey_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        offer: RekeyOffer,
        p: &Collected,
        extra: &[oxswan_crypto::Secret],
    ) -> Next {
        let end = self.conclude_rekey(ctx, &offer, p, extra);
        self.apply_rekey(ctx, offer, end)
    }

    /// What the answer means; changes nothing.
    fn conclude_rekey(
        &self,
        ctx: &Ctx<'_>,
        offer: &RekeyOffer,
        p: &Collected,
        extra: &[oxswan_crypto::Secret],
    ) -> RekeyEnd {
        let old = self.children.get(offer.old);
        if let Some(err) = p.error() {
            return match (err, p.invalid_ke_group()) {
                (NotifyType::INVALID_KE_PAYLOAD, Some(g)) if !offer.ke_retried => RekeyEnd::Again(g),
                (NotifyType::CHILD_SA_NOT_FOUND, _) => RekeyEnd::NotFound,
                _ if old.is_some_and(|c| c.collision.is_some()) => RekeyEnd::Superseded,
                // TEMPORARY_FAILURE (§2.25), NO_PROPOSAL_CHOSEN, ...: the responder made nothing.
                _ => RekeyEnd::Retry { reason: err, orphan: None },
            };
        }
        // No error notify: the responder installed a new pair for our offer.
        let orphan = Some(offer.spi_in);
        let Some(old) = old else { return RekeyEnd::Vanished { orphan: offer.spi_in } };
        let accepted = match accept_answer(&offer.offered, offer.ke.as_deref(), p, true, None) {
            Ok(a) => a,
            Err(unusable) => return RekeyEnd::Retry { reason: unusable.reason(), orphan },
        };
        let Some(nr) = p.nonce.as_ref() else { return RekeyEnd::Retry { reason: NotifyType::INVALID_SYNTAX, orphan } };
        let new = self.rekeyed_child(
            ctx,
            &old.sa,
            &accepted.chosen,
            offer.spi_in,
            &accepted.shared.iter().chain(extra).collect::<Vec<_>>(),
            (&offer.nonce, nr),
            true,
        );
        if new.encr_in.is_empty() {
            return RekeyEnd::Retry { reason: NotifyType::NO_PROPOSAL_CHOSEN, orphan };
        }
        // §2.8.1: when both peers rekeyed the pair at once, the new pair made by the exchange with the
        // lowest of the four nonces is redundant and its initiator deletes it; the initiator of the
        // other exchange deletes the old pair.
        let ours_lowest = lowest(&offer.nonce, nr);
        let delete = match &old.collision {
            Some(theirs) if ours_lowest.as_slice() < &**theirs => offer.spi_in,
            _ => offer.old,
        };
        RekeyEnd::Replaced { new: Box::new(new), delete }
    }

    /// Carries out how the rekey ended.
    fn apply_rekey(&mut self, ctx: &mut Ctx<'_>, offer: RekeyOffer, end: RekeyEnd) -> Next {
        let old = offer.old;
        match end {
            RekeyEnd::Again(group) => match self.rekey_request(ctx, old, Some(group)) {
                Some((payloads, offer)) => {
                    return Next::Send {
                        exchange: ExchangeType::CREATE_CHILD_SA,
                        payloads,
                        in_flight: InFlight::RekeyChild(offer),
                    };
                }
                None => self.rekey_later(ctx, old),
            },
            RekeyEnd::NotFound => self.child_gone(ctx, old),
            RekeyEnd::Superseded => {
                if let Some(c) = self.children.get_mut(old) {
                    c.collision = None;
                }
            }
            RekeyEnd::Vanished { orphan } => self.asks.push(Ask::First(Job::DeleteUninstalled(orphan))),
            RekeyEnd::Retry { reason, orphan } => {
                if let Some(name) = self.children.get(old).map(|c| c.sa.name.clone()) {
                    self.rekey_later(ctx, old);
                    ctx.out.events.push_back(Event::ChildSaFailed { sa: self.handle, name, reason });
                }
                if let Some(spi) = orphan {
                    self.asks.push(Ask::First(Job::DeleteUninstalled(spi)));
                }
            }
            RekeyEnd::Replaced { mut new, delete } => {
                let collided = self.children.get_mut(old).and_then(|c| c.collision.take()).is_some();
                let spi = new.spi_in;
                let redundant = delete == spi;
                if redundant {
                    // §2.8.1: ours lost to the peer's crossing rekey: never sent on, deleted at once.
                    new.outbound = false;
                } else if collided {
                    // Ours won: the pair the peer's exchange made is redundant and the peer deletes
                    // it. It must not start sending when the old pair goes.
                    if let Some(theirs) = self.children.iter_mut().find(|c| c.successor_of == Some(old)) {
                        theirs.successor_of = None;
                    }
                }
                self.children.push(ChildRecord::new(&new));
                ctx.out.events.push_back(Event::ChildSaReady { sa: self.handle, child: new });
                if !redundant {
                    self.schedule_rekey(ctx, spi);
                }
                self.asks.push(Ask::First(Job::DeleteChild(delete)));
            }
        }
        Next::Done
    }

    /// A CREATE_CHILD_SA request from the peer: a rekey of the IKE SA or of one of our CHILD SAs, or
    /// a new CHILD SA (§1.3.1), which strongSwan also sends to recreate a CHILD SA that expired.
    pub(crate) fn handle_create_child_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        window: Window<'_>,
        p: Collected,
    ) -> Vec<Payload> {
        if super::ike_rekey::is_ike_rekey(&p) {
            return self.handle_ike_rekey_request(ctx, window, &p);
        }
        // This IKE SA was rekeyed: its CHILD SAs belong to the new one, or will once a simultaneous
        // rekey is resolved (§2.8.2). The peer asks again there.
        if self.lifecycle == Lifecycle::Rekeyed {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let Some(rekey) = p.notifies.iter().find(|n| n.notify_type == NotifyType::REKEY_SA) else {
            return self.new_child_request(ctx, &p);
        };
        // The SPI the peer receives on: our outbound SPI of the pair.
        let spi = match rekey.spi.as_slice() {
            [a, b, c, d] if rekey.protocol == ProtocolId::ESP => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return vec![notify(NotifyType::INVALID_SYNTAX)],
        };
        let Some(old) = self.children.by_outbound(spi).map(|c| c.sa.clone()) else {
            let mut n = NotifyPayload::new(NotifyType::CHILD_SA_NOT_FOUND, Vec::new());
            n.protocol = ProtocolId::ESP;
            n.spi = rekey.spi.clone();
            return vec![Payload::Notify(n)];
        };
        // §2.25.1: a pair we are deleting (our own rekey of it completed) is not rekeyed again.
        if window.deleting_child(old.spi_in) {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let (Some(sa), Some(ni)) = (&p.sa, p.nonce.clone()) else { return vec![notify(NotifyType::INVALID_SYNTAX)] };
        let Some(config) = self.child_config(&old.name) else { return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)] };
        let resource = old.resource.and_then(crate::event::PerResource::number);
        let Ok(spi_in) = ctx.new_esp_spi_for(resource) else { return vec![notify(NotifyType::TEMPORARY_FAILURE)] };
        let Ok(chosen) = child::choose_esp(&config.esp_proposals, &sa.proposals, spi_in, false, true) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let mut out = vec![Payload::Sa(SaPayload { proposals: vec![chosen.proposal.clone()] })];
        let (ke_out, shared) = match respond_ke(ctx, chosen.ke, p.ke.as_ref()) {
            Ok(x) => x,
            Err(refusal) => return refusal,
        };
        let Some(nr) = nonce(ctx) else { return vec![notify(NotifyType::TEMPORARY_FAILURE)] };
        out.push(Payload::Nonce(NoncePayload { data: nr.clone() }));
        out.extend(ke_out);
        out.push(Payload::TsI(TsPayload { selectors: old.remote_ts.to_vec() }));
        out.push(Payload::TsR(TsPayload { selectors: old.local_ts.to_vec() }));
        if old.mode == Mode::Transport {
            out.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        let plan = crate::init::Intermediate::of(&chosen.proposal).plan;
        if !plan.is_empty() {
            // RFC 9370 §2.2.4: the new pair is made after the IKE_FOLLOWUP_KE exchanges. Not while
            // a request of ours is in flight: a crossing rekey is not resolved across them
            // (TEMPORARY_FAILURE, as strongSwan answers once its own IKE_FOLLOWUP_KE went).
            if window.in_flight.is_some() {
                return vec![notify(NotifyType::TEMPORARY_FAILURE)];
            }
            let finish = super::child_followup::Finish::Rekey {
                old: Box::new(old),
                chosen: Box::new(chosen),
                spi_in,
                nonces: (ni, nr),
            };
            let Some(link) = self.await_child_followup(ctx, plan, shared, finish) else {
                return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
            };
            out.push(link);
            return out;
        }
        let new = self.rekeyed_child(ctx, &old, &chosen, spi_in, shared.as_ref().as_slice(), (&ni, &nr), false);
        if !self.install_rekeyed(ctx, window, &old, new, (&ni, &nr)) {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        out
    }

    /// The responder's new pair replacing `old`, made: kept, reported, its rekey scheduled, and a
    /// crossing rekey of ours noted (§2.8.1). `false` when its keys could not be derived.
    pub(crate) fn install_rekeyed(
        &mut self,
        ctx: &mut Ctx<'_>,
        window: Window<'_>,
        old: &Pair,
        mut new: ChildSa,
        (ni, nr): (&[u8], &[u8]),
    ) -> bool {
        // Make before break: receive on the new pair now, send on it once the old one is deleted.
        new.outbound = false;
        if new.encr_in.is_empty() {
            return false;
        }
        let spi_in = new.spi_in;
        let mut record = ChildRecord::new(&new);
        ctx.out.events.push_back(Event::ChildSaReady { sa: self.handle, child: Box::new(new) });
        record.successor_of = Some(old.spi_in);
        self.children.push(record);
        self.schedule_rekey(ctx, spi_in);
        // §2.8.1: we are rekeying the same pair; which new pair survives is decided by the nonces once
        // our own exchange completes.
        if window.rekeying_child(old.spi_in)
            && let Some(c) = self.children.get_mut(old.spi_in)
        {
            c.collision = Some(lowest(ni, nr).into_boxed_slice());
        }
        true
    }

    /// The pair replacing `old`: its name, selectors and mode, new SPIs and keys (§2.8).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rekeyed_child(
        &self,
        ctx: &Ctx<'_>,
        old: &Pair,
        chosen: &ChosenEsp,
        spi_in: u32,
        shared: &[&oxswan_crypto::Secret],
        nonces: (&[u8], &[u8]),
        we_initiated: bool,
    ) -> ChildSa {
        let ts = (old.local_ts.to_vec(), old.remote_ts.to_vec());
        let c = self.derive_child(ctx, &old.name, chosen, spi_in, ts, old.mode, shared, nonces, we_initiated);
        // RFC 9611 §2: a rekeyed per-resource pair stays the pair of its resource. The REKEY_SA
        // names the pair, so the exchange carries no SA_RESOURCE_INFO (nor does strongSwan's).
        ChildSa { replaces: Some(old.spi_in), resource: old.resource, ..c }
    }
}
