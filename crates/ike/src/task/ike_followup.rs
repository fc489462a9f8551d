//! IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): the additional key exchanges of an IKE SA rekey. The
//! CREATE_CHILD_SA exchange makes the first key exchange as usual; its response carries
//! N(ADDITIONAL_KEY_EXCHANGE) with data the initiator echoes in an IKE_FOLLOWUP_KE request with the
//! next KE payload, one exchange per ADDKE transform chosen. The new IKE SA is made once the last
//! is done, from all their shared secrets:
//!
//! ```text
//! SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n))
//! ```
//!
//! ```text
//! Initiator                                        Responder
//! CREATE_CHILD_SA { SA, Ni, KEi }            -->
//!                                            <--   { SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link1) }
//! IKE_FOLLOWUP_KE { KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1) }  -->
//!                                            <--   { KEr(1), [N(ADDITIONAL_KEY_EXCHANGE)(link2)] }
//! ```

use std::time::Duration;

use oxswan_crypto::Secret;
use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::KePayload;
use oxswan_wire::sa::Proposal;
use oxswan_wire::{ExchangeType, IkeSpi, KeId, NotifyType, Payload};

use super::ike_rekey::IkeRekeyOffer;
use super::{Collected, InFlight, Next, Window, notify};
use crate::sa::{Ctx, Job, Lifecycle, SaCore, Timer, later};

/// Octets of the responder's link data (RFC 9370 §2.2.4 leaves its content to the responder).
const LINK_LEN: usize = 8;

/// Our IKE SA rekey, its first key exchange done, in its IKE_FOLLOWUP_KE exchanges.
#[derive(Debug)]
pub(crate) struct FollowupInitiator {
    /// Our SPI of the new SA and the responder's.
    spis: (IkeSpi, IkeSpi),
    proposal: Proposal,
    plan: Vec<KeId>,
    /// SK(0), SK(1), ... so far.
    shared: Vec<Secret>,
    nonces: (Vec<u8>, Vec<u8>),
    ke: Box<dyn KeyExchange>,
}

/// The peer's rekey of this IKE SA, answered, waiting for its IKE_FOLLOWUP_KE requests.
#[derive(Debug)]
pub(crate) struct FollowupResponder {
    /// The initiator's SPI of the new SA and ours.
    spis: (IkeSpi, IkeSpi),
    proposal: Proposal,
    plan: Vec<KeId>,
    shared: Vec<Secret>,
    nonces: (Vec<u8>, Vec<u8>),
    /// What the next request must echo.
    link: Vec<u8>,
}

/// The link data of a message's N(ADDITIONAL_KEY_EXCHANGE), for IKE and CHILD SAs alike.
pub(super) fn link_of(p: &Collected) -> Option<&[u8]> {
    p.notifies.iter().find(|n| n.notify_type == NotifyType::ADDITIONAL_KEY_EXCHANGE).map(|n| n.data.as_slice())
}

pub(super) fn link_notify(link: &[u8]) -> Payload {
    Payload::Notify(NotifyPayload::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link.to_vec()))
}

/// New link data for the responder's next answer.
pub(super) fn fresh_link(ctx: &Ctx<'_>) -> Option<Vec<u8>> {
    let mut link = vec![0u8; LINK_LEN];
    ctx.provider.random.fill(&mut link).ok()?;
    Some(link)
}

/// An IKE_FOLLOWUP_KE request's payloads: our KE for the next exchange and the link it echoes.
pub(super) fn request_payloads(ke: &dyn KeyExchange, link: &[u8]) -> Vec<Payload> {
    vec![Payload::Ke(KePayload { group: ke.group(), data: ke.public_value().to_vec() }), link_notify(link)]
}

impl FollowupInitiator {
    /// The first IKE_FOLLOWUP_KE request after the CREATE_CHILD_SA answer `p`, which must carry the
    /// link; `None` when it does not, or the key exchange cannot start (the rekey fails).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        ctx: &Ctx<'_>,
        offer: IkeRekeyOffer,
        proposal: Proposal,
        plan: Vec<KeId>,
        g_ir: Secret,
        nr: Vec<u8>,
        their_spi: IkeSpi,
        p: &Collected,
    ) -> Option<Next> {
        let link = link_of(p)?.to_vec();
        let method = *plan.first()?;
        let ke = ctx.provider.ke.start(method).ok()?;
        let next =
            Self { spis: (offer.spi, their_spi), proposal, plan, shared: vec![g_ir], nonces: (offer.nonce, nr), ke };
        Some(next.request(&link))
    }

    fn request(self, link: &[u8]) -> Next {
        let payloads = request_payloads(self.ke.as_ref(), link);
        Next::Send {
            exchange: ExchangeType::IKE_FOLLOWUP_KE,
            payloads,
            in_flight: InFlight::FollowupIke(Box::new(self)),
        }
    }
}

impl FollowupResponder {
    /// The pending rekey after our CREATE_CHILD_SA answer, with a fresh link.
    pub(super) fn new(
        ctx: &Ctx<'_>,
        proposal: Proposal,
        plan: Vec<KeId>,
        g_ir: Secret,
        ni: Vec<u8>,
        nr: Vec<u8>,
        spis: (IkeSpi, IkeSpi),
    ) -> Option<Self> {
        Some(Self { spis, proposal, plan, shared: vec![g_ir], nonces: (ni, nr), link: fresh_link(ctx)? })
    }

    /// N(ADDITIONAL_KEY_EXCHANGE) with the link the next request must echo.
    pub(super) fn link_notify(&self) -> Payload {
        link_notify(&self.link)
    }
}

impl SaCore {
    /// The answer to our IKE_FOLLOWUP_KE request: the next one, or the new IKE SA.
    pub(crate) fn handle_ike_followup_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut f: FollowupInitiator,
        p: &Collected,
    ) -> Next {
        if let Some(err) = p.error() {
            // As after a refused CREATE_CHILD_SA: the peer's own rekey wins if we answered one
            // (§2.8.2); after TEMPORARY_FAILURE (§2.25) we try again shortly; STATE_NOT_FOUND and
            // the rest leave this SA as it is.
            if let Some(c) = self.ike_collision.take() {
                self.bequeath(ctx, c.theirs);
            } else if err == NotifyType::TEMPORARY_FAILURE {
                self.timers.set(Timer::IkeRekey, later(ctx.now, super::jittered(ctx, Duration::from_secs(2))));
            }
            return Next::Done;
        }
        let Some(theirs) = p.ke.as_ref().filter(|k| k.group == f.ke.group()) else { return Next::Done };
        let Ok(shared) = f.ke.complete(&theirs.data) else { return Next::Done };
        f.shared.push(shared);
        // SK(0) came from CREATE_CHILD_SA: ADDKE n's secret is SK(n).
        if let Some(method) = f.plan.get(f.shared.len().saturating_sub(1)).copied() {
            let (Some(link), Ok(ke)) = (link_of(p).map(<[u8]>::to_vec), ctx.provider.ke.start(method)) else {
                return Next::Done;
            };
            f.ke = ke;
            return f.request(&link);
        }
        let shared: Vec<&[u8]> = f.shared.iter().map(Secret::expose).collect();
        self.finish_ike_rekey(ctx, f.spis, f.proposal, &shared, f.nonces);
        Next::Done
    }

    /// The peer's IKE_FOLLOWUP_KE request for its rekey of this IKE SA: our KE, and once the last
    /// additional key exchange is made the new SA, which takes the CHILD SAs. A request for no
    /// pending rekey, or with other link data, gets STATE_NOT_FOUND (RFC 9370 §2.2.4); a KE of
    /// another method NO_PROPOSAL_CHOSEN, as strongSwan answers; either ends the rekey.
    pub(crate) fn handle_ike_followup_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        window: Window<'_>,
        p: &Collected,
    ) -> Vec<Payload> {
        let Some(mut f) = self.followup.take().filter(|f| link_of(p) == Some(f.link.as_slice())) else {
            return vec![notify(NotifyType::STATE_NOT_FOUND)];
        };
        if self.lifecycle == Lifecycle::Rekeyed || window.queued.contains(&Job::DeleteIke) {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let Some(method) = f.plan.get(f.shared.len().saturating_sub(1)).copied() else {
            return vec![notify(NotifyType::STATE_NOT_FOUND)];
        };
        let Some(theirs) = p.ke.as_ref() else { return vec![notify(NotifyType::INVALID_SYNTAX)] };
        if theirs.group != method {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        let Ok((public, shared)) = ctx.provider.ke.respond(method, &theirs.data) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        f.shared.push(shared);
        let ke = Payload::Ke(KePayload { group: method, data: public });
        if f.shared.len() <= f.plan.len() {
            let Some(link) = fresh_link(ctx) else { return vec![notify(NotifyType::TEMPORARY_FAILURE)] };
            f.link = link;
            let out = vec![ke, f.link_notify()];
            self.followup = Some(f);
            return out;
        }
        let f = *f;
        let shared: Vec<&[u8]> = f.shared.iter().map(Secret::expose).collect();
        let (ni, nr) = f.nonces.clone();
        let Some(new) = self.successor(ctx, false, f.proposal.clone(), &shared, ni, nr, f.spis) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        ctx.out.spawned.push((new, None));
        self.bequeath(ctx, f.spis.1);
        vec![ke]
    }
}
