//! IKE SA rekeying with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18): new SPIs, a new key exchange and
//! SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr). The CHILD SAs move to the new IKE SA, whose
//! original initiator is the initiator of the rekey; that side then deletes the old IKE SA. Also the
//! IKE SA's lifetime: when to rekey, reauthenticate, and give up.

use std::time::{Duration, Instant};

use oxswan_crypto::proposal::select_proposal;
use oxswan_crypto::provider::KeyExchange;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::{KePayload, NoncePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::{ExchangeType, IkeSpi, NotifyType, Payload, ProtocolId};

use super::{Collected, InFlight, Next, Window, lowest, nonce, notify};
use crate::event::DownReason;
use crate::sa::{Ask, Ctx, IkeCollision, Inheritance, Job, Keys, Lifecycle, SaCore, State, Timer, VirtualIps, later};
use crate::suite::ike_suite;

/// Our IKE SA rekey in flight.
#[derive(Debug)]
pub(crate) struct IkeRekeyOffer {
    pub(super) spi: IkeSpi,
    pub(super) nonce: Vec<u8>,
    offered: Vec<Proposal>,
    ke: Box<dyn KeyExchange>,
    ke_retried: bool,
}

pub(super) fn spi_of(p: &Proposal) -> Option<IkeSpi> {
    let b: [u8; 8] = p.spi.as_slice().try_into().ok()?;
    let spi = IkeSpi(b);
    (!spi.is_zero()).then_some(spi)
}

/// Whether a CREATE_CHILD_SA request rekeys the IKE SA: its SA payload proposes protocol IKE.
pub(crate) fn is_ike_rekey(p: &Collected) -> bool {
    p.sa.as_ref().and_then(|sa| sa.proposals.first()).is_some_and(|p| p.protocol == ProtocolId::IKE)
}

impl SaCore {
    /// The IKE SA that replaces this one, with `spi_i`/`spi_r` and keys from this SA's SK_d.
    /// `shared` is g^ir, or with additional key exchanges SK(0), SK(1), ... in the order they were
    /// made (RFC 9370 §2.2.4).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn successor(
        &mut self,
        ctx: &mut Ctx<'_>,
        we_initiated: bool,
        proposal: Proposal,
        shared: &[&[u8]],
        ni: Vec<u8>,
        nr: Vec<u8>,
        (spi_i, spi_r): (IkeSpi, IkeSpi),
    ) -> Option<SaCore> {
        let (suite, _) = ike_suite(&proposal).ok()?;
        let old = self.keys.as_ref()?;
        // §2.18: the rekeying exchange belongs to the old IKE SA, so its PRF makes SKEYSEED.
        // RFC 9370 §2.2.4: SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
        let keys = oxswan_crypto::keys::rekey_keys(
            ctx.provider.prf.as_ref(),
            (old.suite.prf, &old.sk_d),
            &suite,
            shared,
            (&ni, &nr),
            (spi_i.0, spi_r.0),
        )
        .ok()?;
        let sk_out = SkKeys::for_sender(&keys, &suite, we_initiated).ok()?;
        let sk_in = SkKeys::for_sender(&keys, &suite, !we_initiated).ok()?;
        let mut new = SaCore::new(self.handle, we_initiated, self.peer.clone(), self.local, self.remote, spi_i, spi_r);
        // The new SA takes over the old one's stream (RFC 9329 §6 lets a rekey share it).
        new.transport = self.transport;
        // No IKE_AUTH follows (§2.18): the new SA keeps SK_d and its suite only.
        // SK_d made from a PPK's keeps it in (RFC 8784 §3.1: the PPK protects the rekeyed SAs too).
        let ppk_used = old.ppk_used;
        new.keys =
            Some(Box::new(Keys { proposal, suite, sk_d: keys.sk_d.clone(), sk_out, sk_in, handshake: None, ppk_used }));
        new.state = State::Established;
        new.nat = self.nat;
        new.peer_id = self.peer_id.clone();
        new.peer_hashes = self.peer_hashes.clone();
        new.peer_fragmentation = self.peer_fragmentation;
        // How the lineage was made, and whether the client follows redirects, stay (RFC 5685 §5).
        new.origin = self.origin;
        new.peer_redirect = self.peer_redirect;
        new.resumed = self.resumed;
        // RFC 4555 §3.1: MOBIKE stays with the SA and with the one who started its lineage.
        new.original_initiator = self.original_initiator;
        new.mobike = self.mobike;
        new.peer_addresses = self.peer_addresses.clone();
        new.init_remote = self.remote;
        // The client authenticated as this EAP identity, and the new SA is still its (status,
        // accounting, uniqueness).
        new.eap_identity.clone_from(&self.eap_identity);
        // The virtual IPs stay the client's (§2.18): the new SA holds a reference of its own to each
        // lease, so whichever SA goes first gives back only its own.
        new.vips = VirtualIps { leases: Vec::new(), ..self.vips.clone() };
        for lease in &self.vips.leases {
            let pool = [lease.pool.to_string()];
            if let Ok(l) = ctx.leases.acquire(
                &pool,
                lease.addr.is_ipv6(),
                &self.vips.owner,
                Some(self.remote),
                Some(lease.addr),
                ctx.now,
            ) {
                new.vips.leases.push(l);
            }
        }
        new.vips.leases.shrink_to_fit();
        new.schedule_ike_rekey(ctx);
        new.heard_from_peer(ctx);
        self.supersede(Lifecycle::Rekeyed);
        Some(new)
    }

    /// Hands the CHILD SAs and their timers to the IKE SA with our SPI `to` (§2.18), through the
    /// endpoint; this SA keeps nothing to tear down.
    pub(crate) fn bequeath(&mut self, ctx: &mut Ctx<'_>, to: IkeSpi) {
        ctx.out.inherit = Some((
            to,
            Inheritance { children: self.children.take(), jobs: Vec::new(), redirect_to: self.redirect_to.take() },
        ));
    }

    /// Takes the CHILD SAs of the IKE SA this one replaces.
    pub(crate) fn inherit(&mut self, from: Inheritance) {
        if self.lifecycle == Lifecycle::Rekeyed {
            self.lifecycle = Lifecycle::Live;
        }
        self.children.extend(from.children);
        if from.redirect_to.is_some() {
            self.redirect_to = from.redirect_to;
        }
    }

    /// This SA, made by the peer's side of a simultaneous rekey, lost (§2.8.2). Its initiator, the
    /// peer, deletes it once its exchange completes; but if our answer was lost and our DELETE of the
    /// old SA reached the peer first, the peer dropped its exchange and never will. So it ends at
    /// `at` unless the peer deleted it before: one DELETE, no CHILD SA lost (it has none).
    pub(crate) fn await_peer_delete(&mut self, at: Instant) {
        if self.lifecycle == Lifecycle::Rekeyed && self.children.is_empty() && !self.is_closed() {
            self.timers.stop_lifetime();
            self.timers.set(Timer::IkeExpire, at);
        }
    }

    /// The peer deletes this IKE SA while a simultaneous rekey is unresolved: it initiated the new SA
    /// that survives (§2.8.2), so the CHILD SAs go there.
    pub(crate) fn peer_deletes_rekeyed(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(c) = self.ike_collision.take() {
            self.bequeath(ctx, c.theirs);
        }
    }

    /// Arms the IKE SA's timers from the connection's [`IkeLifetime`](crate::config::IkeLifetime):
    /// rekey and reauthentication up to `rand_time` early, the hard end `over_time` after the first
    /// of them was due.
    pub(crate) fn schedule_ike_rekey(&mut self, ctx: &Ctx<'_>) {
        let Some(life) = self.peer.as_ref().map(|p| p.ike_lifetime) else { return };
        let mut b = [0u8; 4];
        let jitter = match ctx.provider.random.fill(&mut b) {
            Ok(()) => life.rand_time.mul_f64(f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)),
            Err(_) => Duration::ZERO,
        };
        let early = |d: Duration| later(ctx.now, d.saturating_sub(jitter).max(Duration::from_secs(1)));
        let first_due = match (life.rekey_time, life.reauth_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.timers.stop_lifetime();
        let timers = [
            (Timer::IkeRekey, life.rekey_time.map(early)),
            (Timer::Reauth, life.reauth_time.map(early)),
            (Timer::IkeExpire, first_due.zip(life.over_time).map(|(d, over)| later(ctx.now, d.saturating_add(over)))),
        ];
        for (timer, at) in timers {
            if let Some(at) = at {
                self.timers.set(timer, at);
            }
        }
    }

    /// Rekeys, reauthenticates or ends this IKE SA when its time has come.
    /// `idle`: no request of ours is in flight.
    pub(crate) fn ike_lifetime_timers(&mut self, ctx: &mut Ctx<'_>, idle: bool) {
        if self.timers.take_due(Timer::IkeExpire, ctx.now) {
            // Neither rekeyed nor reauthenticated in time: it ends now. The DELETE goes once, without
            // waiting for an answer (the peer is likely gone), and only when no request is in flight:
            // the peer would not take a message ID past one it has not seen (§2.3).
            self.timers.stop_lifetime();
            self.supersede(Lifecycle::Expired);
            if idle {
                let delete = vec![Payload::Delete(oxswan_wire::notify::DeletePayload::ike())];
                self.asks.push(Ask::Once(ExchangeType::INFORMATIONAL, delete));
            }
            self.close(ctx, DownReason::Expired);
            return;
        }
        if self.timers.take_due(Timer::Reauth, ctx.now) && self.lifecycle == Lifecycle::Live {
            // A reauthentication replaces the rekey: the new IKE SA has timers of its own.
            self.timers.stop(Timer::IkeRekey);
            if let Some(name) = self.name().map(str::to_owned) {
                ctx.out.events.push_back(crate::event::Event::ReauthDue { sa: self.handle, name });
            }
        }
        if self.timers.take_due(Timer::IkeRekey, ctx.now) {
            self.queue(ctx, Job::RekeyIke);
        }
    }
    /// The peer's CREATE_CHILD_SA that rekeys this IKE SA (§1.3.2): the answer, and the new SA in the
    /// outbox for the endpoint.
    pub(crate) fn handle_ike_rekey_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        window: Window<'_>,
        p: &Collected,
    ) -> Vec<Payload> {
        // §2.25.2: not while we delete it or after it was replaced; not while a CHILD SA is being made
        // or deleted (strongSwan does the same). Our own rekey of it in flight is a collision (§2.8.2).
        let colliding = window.rekeying_ike();
        if self.lifecycle == Lifecycle::Rekeyed
            || (window.in_flight.is_some() && !colliding)
            || window.queued.contains(&Job::DeleteIke)
        {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let Some(peer) = self.peer.clone() else { return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)] };
        let (Some(sa), Some(ni), Some(ke)) = (&p.sa, p.nonce.clone(), &p.ke) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let ours: Vec<Proposal> =
            peer.ike_proposals.iter().map(|p| Proposal { protocol: ProtocolId::IKE, ..p.clone() }).collect();
        let Some(chosen) = select_proposal(&ours, &sa.proposals, peer.prefer_initiator) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let (Some(their_spi), Ok((_, group))) = (spi_of(&chosen), ike_suite(&chosen)) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        if ke.group != group {
            return vec![Payload::Notify(NotifyPayload::new(
                NotifyType::INVALID_KE_PAYLOAD,
                group.0.to_be_bytes().to_vec(),
            ))];
        }
        let Ok((public, g_ir)) = ctx.provider.ke.respond(group, &ke.data) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let (Ok(our_spi), Some(nr)) = (ctx.new_ike_spi(), nonce(ctx)) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let response_proposal = Proposal { spi: our_spi.0.to_vec(), ..chosen.clone() };
        let answer = vec![
            Payload::Sa(SaPayload { proposals: vec![response_proposal] }),
            Payload::Nonce(NoncePayload { data: nr.clone() }),
            Payload::Ke(KePayload { group, data: public }),
        ];
        let plan = crate::init::Intermediate::of(&chosen).plan;
        if !plan.is_empty() {
            // RFC 9370 §2.2.4: the new SA is made once the IKE_FOLLOWUP_KE exchanges are done. A
            // collision with our own rekey is not resolved across them: TEMPORARY_FAILURE, as
            // strongSwan answers once it sent its own IKE_FOLLOWUP_KE.
            if colliding {
                return vec![notify(NotifyType::TEMPORARY_FAILURE)];
            }
            let pending =
                super::ike_followup::FollowupResponder::new(ctx, chosen, plan, g_ir, ni, nr, (their_spi, our_spi));
            return match pending {
                Some(pending) => {
                    let link = pending.link_notify();
                    self.followup = Some(Box::new(pending));
                    answer.into_iter().chain([link]).collect()
                }
                None => vec![notify(NotifyType::TEMPORARY_FAILURE)],
            };
        }
        let lowest_nonce = lowest(&ni, &nr);
        let Some(mut new) = self.successor(ctx, false, chosen, &[g_ir.expose()], ni, nr, (their_spi, our_spi)) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        // In a collision the new SA is tentative, like a replaced one, until it inherits the CHILD
        // SAs; if it turns out redundant its end is not the connection's.
        if colliding {
            new.lifecycle = Lifecycle::Rekeyed;
        }
        ctx.out.spawned.push((new, None));
        if colliding {
            self.ike_collision = Some(Box::new(IkeCollision { theirs: our_spi, lowest_nonce }));
        } else {
            self.bequeath(ctx, our_spi);
        }
        answer
    }

    /// Starts rekeying this IKE SA: `{ SA, Ni, KEi }` and the offer.
    pub(crate) fn ike_rekey_request(
        &mut self,
        ctx: &Ctx<'_>,
        group: Option<oxswan_wire::KeId>,
    ) -> Option<(Vec<Payload>, Box<IkeRekeyOffer>)> {
        if self.lifecycle == Lifecycle::Rekeyed {
            return None;
        }
        let peer = self.peer.clone()?;
        let spi = ctx.new_ike_spi().ok()?;
        let nonce = nonce(ctx)?;
        let offered: Vec<Proposal> = peer
            .ike_proposals
            .iter()
            .zip(1u8..)
            .map(|(p, number)| Proposal { number, protocol: ProtocolId::IKE, spi: spi.0.to_vec(), ..p.clone() })
            .collect();
        // The group of the current IKE SA unless the responder asked for another (§1.3.2).
        let current = ike_suite(&self.keys.as_ref()?.proposal).ok()?.1;
        let group = group.unwrap_or(current);
        let ke = ctx.provider.ke.start(group).ok()?;
        let payloads = vec![
            Payload::Sa(SaPayload { proposals: offered.clone() }),
            Payload::Nonce(NoncePayload { data: nonce.clone() }),
            Payload::Ke(KePayload { group, data: ke.public_value().to_vec() }),
        ];
        let ke_retried = group != current;
        Some((payloads, Box::new(IkeRekeyOffer { spi, nonce, offered, ke, ke_retried })))
    }

    /// The answer to our IKE SA rekey.
    pub(crate) fn handle_ike_rekey_response(&mut self, ctx: &mut Ctx<'_>, offer: IkeRekeyOffer, p: &Collected) -> Next {
        if let Some(err) = p.error() {
            if err == NotifyType::INVALID_KE_PAYLOAD
                && !offer.ke_retried
                && let Some((payloads, offer)) = p.invalid_ke_group().and_then(|g| self.ike_rekey_request(ctx, Some(g)))
            {
                return Next::Send {
                    exchange: ExchangeType::CREATE_CHILD_SA,
                    payloads,
                    in_flight: InFlight::RekeyIke(offer),
                };
            }
            // The peer refused ours but we answered its own: its new SA is the one (§2.8.2), and the
            // peer deletes this one.
            if let Some(c) = self.ike_collision.take() {
                self.bequeath(ctx, c.theirs);
                return Next::Done;
            }
            // TEMPORARY_FAILURE and the like: try again shortly (§2.25).
            self.timers.set(Timer::IkeRekey, later(ctx.now, super::jittered(ctx, Duration::from_secs(2))));
            return Next::Done;
        }
        // An answer we cannot use (a proposal we did not offer, a KE that does not fit) leaves this SA
        // as it is. The responder moved to the SA it made, which we cannot speak for without its
        // keys; trying again would only meet its TEMPORARY_FAILURE, so it is not tried again.
        self.conclude_ike_rekey(ctx, offer, p).unwrap_or(Next::Done)
    }

    fn conclude_ike_rekey(&mut self, ctx: &mut Ctx<'_>, offer: IkeRekeyOffer, p: &Collected) -> Option<Next> {
        let (Some(sa), Some(nr), Some(ke)) = (&p.sa, p.nonce.clone(), &p.ke) else { return None };
        let [chosen] = sa.proposals.as_slice() else { return None };
        // What the responder chose must be one of ours (§2.7), with its new SPI.
        let ours = offer.offered.iter().find(|o| o.number == chosen.number);
        let acceptable =
            ours.and_then(|o| select_proposal(core::slice::from_ref(o), core::slice::from_ref(chosen), false));
        let (Some(_), Some(their_spi), Ok((_, group))) = (acceptable, spi_of(chosen), ike_suite(chosen)) else {
            return None;
        };
        if ke.group != group || offer.ke.group() != group {
            return None;
        }
        let g_ir = offer.ke.complete(&ke.data).ok()?;
        let proposal = Proposal { spi: Vec::new(), ..chosen.clone() };
        let plan = crate::init::Intermediate::of(&proposal).plan;
        if !plan.is_empty() {
            // RFC 9370 §2.2.4: the additional key exchanges follow, each in IKE_FOLLOWUP_KE.
            return super::ike_followup::FollowupInitiator::start(ctx, offer, proposal, plan, g_ir, nr, their_spi, p);
        }
        self.finish_ike_rekey(ctx, (offer.spi, their_spi), proposal, &[g_ir.expose()], (offer.nonce, nr));
        Some(Next::Done)
    }

    /// Our rekey's key exchanges are all done: the new IKE SA, and what becomes of the old one.
    pub(super) fn finish_ike_rekey(
        &mut self,
        ctx: &mut Ctx<'_>,
        (our_spi, their_spi): (IkeSpi, IkeSpi),
        proposal: Proposal,
        shared: &[&[u8]],
        (ni, nr): (Vec<u8>, Vec<u8>),
    ) {
        let offer_spi = our_spi;
        let ours_lowest = lowest(&ni, &nr);
        let Some(mut new) = self.successor(ctx, true, proposal, shared, ni, nr, (offer_spi, their_spi)) else {
            return;
        };
        // §2.8.2: both sides rekeyed at once. The new SA made by the exchange with the lowest of the
        // four nonces is redundant and its initiator deletes it; the initiator of the other deletes
        // the old SA; the CHILD SAs go to the survivor.
        if let Some(c) = self.ike_collision.take() {
            if ours_lowest < c.lowest_nonce {
                new.lifecycle = Lifecycle::Rekeyed;
                new.timers.stop_lifetime();
                ctx.out.spawned.push((new, Some(Job::DeleteIke)));
                self.bequeath(ctx, c.theirs);
                return;
            }
            ctx.out.redundant.push(c.theirs);
        }
        ctx.out.spawned.push((new, None));
        self.bequeath(ctx, offer_spi);
        // §1.3.2: the initiator of the rekey deletes the old IKE SA.
        self.asks.push(Ask::ClearQueue);
        self.asks.push(Ask::First(Job::DeleteIke));
    }
}
