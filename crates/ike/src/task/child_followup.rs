//! IKE_FOLLOWUP_KE for CHILD SAs (RFC 9370 §2.2.4): a new or rekeyed CHILD SA whose ESP proposal
//! has additional key exchanges. The CREATE_CHILD_SA exchange makes the first key exchange (PFS);
//! its response carries N(ADDITIONAL_KEY_EXCHANGE), and one IKE_FOLLOWUP_KE exchange per ADDKE
//! follows. The pair is made after the last, from
//!
//! ```text
//! KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))
//! ```
//!
//! The initiator keeps the CREATE_CHILD_SA answer and reads it, as without additional key
//! exchanges, once the last one is done; the responder keeps what making the pair needs
//! ([`Finish`]) and makes it then. One pending CHILD SA at most, as one request is answered at a
//! time (window size 1).

use oxswan_crypto::Secret;
use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::payloads::KePayload;
use oxswan_wire::ts::TrafficSelector;
use oxswan_wire::{ExchangeType, KeId, NotifyType, Payload};

use super::child_create::ChildOffer;
use super::child_rekey::RekeyOffer;
use super::ike_followup::{fresh_link, link_notify, link_of, request_payloads};
use super::{Collected, InFlight, Next, Window, notify};
use crate::child::{ChosenEsp, Mode};
use crate::event::{Event, PerResource};
use crate::sa::{Ctx, Pair, SaCore};

/// Which of our CHILD SA requests the exchanges follow.
#[derive(Debug)]
pub(crate) enum ChildKind {
    New(Box<ChildOffer>),
    Rekey(Box<RekeyOffer>),
}

/// Our CHILD SA request, answered, in its IKE_FOLLOWUP_KE exchanges.
#[derive(Debug)]
pub(crate) struct FollowupChildI {
    kind: ChildKind,
    /// The CREATE_CHILD_SA answer, read once the exchanges are done.
    answer: Collected,
    plan: Vec<KeId>,
    /// SK(1), SK(2), ... so far (SK(0) is completed from the answer when it is read).
    extra: Vec<Secret>,
    ke: Box<dyn KeyExchange>,
}

/// What the responder makes once the exchanges are done.
#[derive(Debug)]
pub(crate) enum Finish {
    /// A new CHILD SA.
    New {
        name: String,
        chosen: Box<ChosenEsp>,
        spi_in: u32,
        ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
        mode: Mode,
        resource: Option<PerResource>,
        nonces: (Vec<u8>, Vec<u8>),
    },
    /// The pair replacing `old`.
    Rekey { old: Box<Pair>, chosen: Box<ChosenEsp>, spi_in: u32, nonces: (Vec<u8>, Vec<u8>) },
}

/// The peer's CHILD SA request, answered, waiting for its IKE_FOLLOWUP_KE requests.
#[derive(Debug)]
pub(crate) struct FollowupChildR {
    finish: Finish,
    plan: Vec<KeId>,
    /// SK(0), SK(1), ... so far.
    shared: Vec<Secret>,
    link: Vec<u8>,
}

impl FollowupChildI {
    /// The inbound SPI our request offered, which the SA holds meanwhile.
    pub(crate) fn spi_in(&self) -> u32 {
        match &self.kind {
            ChildKind::New(o) => o.spi_in,
            ChildKind::Rekey(o) => o.spi_in,
        }
    }

    fn request(self, link: &[u8]) -> Next {
        let payloads = request_payloads(self.ke.as_ref(), link);
        Next::Send {
            exchange: ExchangeType::IKE_FOLLOWUP_KE,
            payloads,
            in_flight: InFlight::FollowupChild(Box::new(self)),
        }
    }
}

impl FollowupChildR {
    /// The inbound SPI of the pair waiting to be made.
    pub(crate) fn spi_in(&self) -> u32 {
        match &self.finish {
            Finish::New { spi_in, .. } | Finish::Rekey { spi_in, .. } => *spi_in,
        }
    }
}

impl SaCore {
    /// The answer `p` to our CHILD SA request: when it chose additional key exchanges, the first
    /// IKE_FOLLOWUP_KE request (or the failure if it lacks the link); otherwise `Err` with the
    /// request, to be read as usual.
    pub(crate) fn child_followup_begin(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: ChildKind,
        p: &Collected,
    ) -> core::result::Result<Next, ChildKind> {
        let chosen = p.sa.as_ref().and_then(|sa| sa.proposals.first());
        let plan = chosen.map(|c| crate::init::Intermediate::of(c).plan).unwrap_or_default();
        if p.error().is_some() || plan.is_empty() {
            return Err(kind);
        }
        let start = link_of(p).map(<[u8]>::to_vec).zip(plan.first().and_then(|m| ctx.provider.ke.start(*m).ok()));
        let Some((link, ke)) = start else {
            self.child_followup_failed(ctx, &kind, NotifyType::INVALID_SYNTAX);
            return Ok(Next::Done);
        };
        Ok(FollowupChildI { kind, answer: p.clone(), plan, extra: Vec::new(), ke }.request(&link))
    }

    /// Our CHILD SA failed on our side during its IKE_FOLLOWUP_KE exchanges: the responder may have
    /// made its half after the last one, so that goes (§1.4.1; a DELETE of a pair it does not hold
    /// changes nothing).
    fn child_followup_abandoned(&mut self, ctx: &mut Ctx<'_>, f: &FollowupChildI, reason: NotifyType) {
        self.asks.push(crate::sa::Ask::First(crate::sa::Job::DeleteUninstalled(f.spi_in())));
        self.child_followup_failed(ctx, &f.kind, reason);
    }

    /// The CHILD SA of `kind` could not be made; a rekey is tried again later.
    fn child_followup_failed(&mut self, ctx: &mut Ctx<'_>, kind: &ChildKind, reason: NotifyType) {
        let name = match kind {
            ChildKind::New(offer) => {
                self.peer.as_ref().and_then(|p| p.children.get(offer.config_index())).map(|c| c.name.clone())
            }
            ChildKind::Rekey(offer) => {
                self.rekey_later(ctx, offer.old);
                self.children.get(offer.old).map(|c| c.sa.name.clone())
            }
        };
        if let Some(name) = name {
            ctx.out.events.push_back(Event::ChildSaFailed { sa: self.handle, name, reason });
        }
    }

    /// The answer to our IKE_FOLLOWUP_KE request for a CHILD SA: the next request, or, after the
    /// last, the CREATE_CHILD_SA answer read with all the secrets.
    pub(crate) fn handle_child_followup_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut f: FollowupChildI,
        p: &Collected,
    ) -> Next {
        if let Some(err) = p.error() {
            self.child_followup_failed(ctx, &f.kind, err);
            return Next::Done;
        }
        let shared = p.ke.as_ref().filter(|k| k.group == f.ke.group()).and_then(|k| f.ke.complete(&k.data).ok());
        let Some(shared) = shared else {
            self.child_followup_abandoned(ctx, &f, NotifyType::INVALID_SYNTAX);
            return Next::Done;
        };
        f.extra.push(shared);
        if let Some(method) = f.plan.get(f.extra.len()).copied() {
            let (Some(link), Ok(ke)) = (link_of(p).map(<[u8]>::to_vec), ctx.provider.ke.start(method)) else {
                self.child_followup_abandoned(ctx, &f, NotifyType::INVALID_SYNTAX);
                return Next::Done;
            };
            f.ke = ke;
            return f.request(&link);
        }
        match f.kind {
            ChildKind::New(offer) => {
                self.conclude_child_offer_with(ctx, *offer, &f.answer, &f.extra);
                Next::Done
            }
            ChildKind::Rekey(offer) => self.handle_rekey_response(ctx, *offer, &f.answer, &f.extra),
        }
    }

    /// The responder's CHILD SA waits for `plan`'s IKE_FOLLOWUP_KE exchanges; `shared` is SK(0).
    /// The N(ADDITIONAL_KEY_EXCHANGE) to answer with, or `None` without a first key exchange
    /// (RFC 9370 §2.2.4 builds on one) or randomness.
    pub(crate) fn await_child_followup(
        &mut self,
        ctx: &Ctx<'_>,
        plan: Vec<KeId>,
        shared: Option<Secret>,
        finish: Finish,
    ) -> Option<Payload> {
        let shared = shared?;
        let link = fresh_link(ctx)?;
        let n = link_notify(&link);
        self.child_followup = Some(Box::new(FollowupChildR { finish, plan, shared: vec![shared], link }));
        Some(n)
    }

    /// The peer's IKE_FOLLOWUP_KE request, if it is for our pending CHILD SA (its link): our KE,
    /// and after the last exchange the pair, made. `None`: not for a CHILD SA.
    pub(crate) fn handle_child_followup_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        window: Window<'_>,
        p: &Collected,
    ) -> Option<Vec<Payload>> {
        let mut f = self.child_followup.take_if(|f| link_of(p) == Some(f.link.as_slice()))?;
        // As for the CREATE_CHILD_SA that began it: not on an IKE SA that was replaced or is being
        // deleted, nor for a pair that went meanwhile.
        if self.lifecycle == crate::sa::Lifecycle::Rekeyed || window.queued.contains(&crate::sa::Job::DeleteIke) {
            return Some(vec![notify(NotifyType::TEMPORARY_FAILURE)]);
        }
        if let Finish::Rekey { old, .. } = &f.finish
            && self.children.get(old.spi_in).is_none()
        {
            return Some(vec![notify(NotifyType::CHILD_SA_NOT_FOUND)]);
        }
        let Some(method) = f.plan.get(f.shared.len().saturating_sub(1)).copied() else {
            return Some(vec![notify(NotifyType::STATE_NOT_FOUND)]);
        };
        let Some(theirs) = p.ke.as_ref() else { return Some(vec![notify(NotifyType::INVALID_SYNTAX)]) };
        if theirs.group != method {
            return Some(vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)]);
        }
        let Ok((public, shared)) = ctx.provider.ke.respond(method, &theirs.data) else {
            return Some(vec![notify(NotifyType::INVALID_SYNTAX)]);
        };
        f.shared.push(shared);
        let ke = Payload::Ke(KePayload { group: method, data: public });
        if f.shared.len() <= f.plan.len() {
            let Some(link) = fresh_link(ctx) else { return Some(vec![notify(NotifyType::TEMPORARY_FAILURE)]) };
            let out = vec![ke, link_notify(&link)];
            f.link = link;
            self.child_followup = Some(f);
            return Some(out);
        }
        let secrets: Vec<&Secret> = f.shared.iter().collect();
        let made = match &f.finish {
            Finish::New { name, chosen, spi_in, ts, mode, resource, nonces: (ni, nr) } => {
                let mut c = self.derive_child(ctx, name, chosen, *spi_in, ts.clone(), *mode, &secrets, (ni, nr), false);
                c.resource = *resource;
                self.install_new_child(ctx, c)
            }
            Finish::Rekey { old, chosen, spi_in, nonces: (ni, nr) } => {
                let new = self.rekeyed_child(ctx, old, chosen, *spi_in, &secrets, (ni, nr), false);
                self.install_rekeyed(ctx, window, old, new, (ni, nr))
            }
        };
        Some(if made { vec![ke] } else { vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)] })
    }
}
