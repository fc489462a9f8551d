//! The exchanges of an IKE SA, one module per task in libcharon's manner: IKE_SA_INIT (`ike_init`),
//! IKE_AUTH (`ike_auth`, with the first CHILD SA from `child_create`), CREATE_CHILD_SA
//! (`child_create`, `child_rekey`, `ike_rekey`) and INFORMATIONAL (`informational`: DELETE,
//! liveness). Each builds its part of a request and reads its part of the answer; what an exchange
//! in flight needs to read its answer travels with the request ([`InFlight`]) and is consumed by it,
//! so no state of a finished exchange is left behind.
//!
//! Tasks see only the SA's core ([`SaCore`]); the task manager ([`crate::ike_sa`]) sees only the
//! three entry points here — [`request`], [`answer`], [`respond`] — and what they return ([`Next`]),
//! so the import graph runs one way: manager → tasks → core.

use std::collections::VecDeque;

use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::id::IdPayload;
use oxswan_wire::notify::{DeletePayload, NotifyPayload};
use oxswan_wire::payloads::{AuthPayload, CertPayload, KePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::ts::TsPayload;
use oxswan_wire::{ExchangeType, KeId, NotifyType, Payload};

use crate::event::Event;
use crate::init::{InitRequestSent, NONCE_LEN};
use crate::sa::{Ctx, Job, SaCore};

pub(crate) mod child_create;
pub(crate) mod child_followup;
pub(crate) mod child_rekey;
pub(crate) mod ike_auth;
pub(crate) mod ike_config;
pub(crate) mod ike_followup;
pub(crate) mod ike_init;
pub(crate) mod ike_intermediate;
pub(crate) mod ike_rekey;
pub(crate) mod informational;
pub(crate) mod mobike;
pub(crate) mod usage;

pub(crate) use child_create::ChildOffer;

/// The exchange a request in flight belongs to, with what reading its answer needs.
#[derive(Debug)]
pub(crate) enum InFlight {
    /// IKE_SA_INIT (initiator).
    Init {
        req: Box<InitRequestSent>,
        cookie_tries: u8,
        ke_retried: bool,
    },
    /// IKE_INTERMEDIATE with an additional key exchange (RFC 9370 §2.2.2, initiator).
    Intermediate(Box<ike_intermediate::IntermediateOffer>),
    /// IKE_AUTH (initiator), with the first CHILD SA if the connection has one.
    Auth {
        child: Option<Box<ChildOffer>>,
    },
    /// IKE_AUTH rounds of EAP as the client (§2.16).
    AuthEap(Box<ike_auth::eap::EapRounds>),
    DeleteIke,
    DeleteChild(u32),
    DeleteUninstalled,
    Liveness,
    RekeyChild(Box<child_rekey::RekeyOffer>),
    RekeyIke(Box<ike_rekey::IkeRekeyOffer>),
    /// The additional key exchanges of our IKE SA rekey (RFC 9370 §2.2.4).
    FollowupIke(Box<ike_followup::FollowupInitiator>),
    /// The additional key exchanges of our new or rekeyed CHILD SA (RFC 9370 §2.2.4).
    FollowupChild(Box<child_followup::FollowupChildI>),
    NewChild(Box<ChildOffer>),
    /// REDIRECT of the client (RFC 5685 §5).
    Redirect,
    /// A MOBIKE update (RFC 4555 §3.5), with the COOKIE2 the answer must echo (§3.8).
    UpdateAddresses {
        cookie2: Option<Vec<u8>>,
    },
}

impl InFlight {
    /// The inbound SPI offered in this request, which the SA holds while it is in flight.
    pub(crate) fn offered_spi(&self) -> Option<u32> {
        match self {
            InFlight::Auth { child: Some(offer) } | InFlight::NewChild(offer) => Some(offer.spi_in),
            InFlight::AuthEap(rounds) => rounds.child.as_ref().map(|o| o.spi_in),
            InFlight::RekeyChild(offer) => Some(offer.spi_in),
            InFlight::FollowupChild(f) => Some(f.spi_in()),
            _ => None,
        }
    }

    /// The exchange type the answer must have.
    pub(crate) fn exchange(&self) -> oxswan_wire::ExchangeType {
        use oxswan_wire::ExchangeType as X;
        match self {
            InFlight::Init { .. } => X::IKE_SA_INIT,
            InFlight::Intermediate(_) => X::IKE_INTERMEDIATE,
            InFlight::FollowupIke(_) | InFlight::FollowupChild(_) => X::IKE_FOLLOWUP_KE,
            InFlight::Auth { .. } | InFlight::AuthEap(_) => X::IKE_AUTH,
            InFlight::RekeyChild(_) | InFlight::RekeyIke(_) | InFlight::NewChild(_) => X::CREATE_CHILD_SA,
            InFlight::DeleteIke
            | InFlight::DeleteChild(_)
            | InFlight::DeleteUninstalled
            | InFlight::Liveness
            | InFlight::Redirect
            | InFlight::UpdateAddresses { .. } => X::INFORMATIONAL,
        }
    }
}

/// What the task manager does after an answer was read.
#[derive(Debug)]
pub(crate) enum Next {
    /// The exchange is over: the next queued one may start.
    Done,
    /// Send this request now, in flight as `in_flight`: the exchange goes on (IKE_AUTH after
    /// IKE_SA_INIT) or starts again (another group after INVALID_KE_PAYLOAD, §1.2, §1.3).
    Send { exchange: ExchangeType, payloads: Vec<Payload>, in_flight: InFlight },
    /// IKE_SA_INIT again as message 0 (with a cookie or in another group, §1.2, §2.6).
    Restart { datagram: Vec<u8>, in_flight: InFlight },
}

/// What a responder task may know of the manager's own requests: the one in flight and the queue.
/// The rules of simultaneous exchanges depend on them (§2.8.1, §2.8.2, §2.25).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window<'a> {
    pub in_flight: Option<&'a InFlight>,
    pub queued: &'a VecDeque<Job>,
}

impl Window<'_> {
    /// Our request in flight rekeys the CHILD SA with this inbound SPI.
    fn rekeying_child(&self, spi_in: u32) -> bool {
        matches!(self.in_flight, Some(InFlight::RekeyChild(o)) if o.old == spi_in)
    }

    /// Our request in flight rekeys the IKE SA.
    fn rekeying_ike(&self) -> bool {
        matches!(self.in_flight, Some(InFlight::RekeyIke(_)))
    }

    /// The pair is being deleted by us: the DELETE is in flight or queued.
    fn deleting_child(&self, spi_in: u32) -> bool {
        matches!(self.in_flight, Some(InFlight::DeleteChild(s)) if *s == spi_in)
            || self.queued.contains(&Job::DeleteChild(spi_in))
    }
}

/// The request that starts a queued exchange, or `None` when its object is gone meanwhile.
pub(crate) fn request(
    core: &mut SaCore,
    ctx: &mut Ctx<'_>,
    job: Job,
) -> Option<(ExchangeType, Vec<Payload>, InFlight)> {
    let info = ExchangeType::INFORMATIONAL;
    let delete = |spi| vec![Payload::Delete(DeletePayload::esp(&[spi]))];
    Some(match job {
        Job::DeleteIke => (info, vec![Payload::Delete(DeletePayload::ike())], InFlight::DeleteIke),
        Job::DeleteChild(spi) => {
            core.children.get(spi)?;
            (info, delete(spi), InFlight::DeleteChild(spi))
        }
        Job::DeleteUninstalled(spi) => (info, delete(spi), InFlight::DeleteUninstalled),
        Job::Liveness => (info, Vec::new(), InFlight::Liveness),
        Job::Redirect => {
            let to = core.redirect_to.take()?;
            (info, vec![Payload::Notify(to.notify(&[]))], InFlight::Redirect)
        }
        Job::RekeyIke => {
            let (payloads, offer) = core.ike_rekey_request(ctx, None)?;
            (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::RekeyIke(offer))
        }
        Job::NewChild(index) => {
            let (payloads, offer) = core.additional_child_request(ctx, index, None, None)?;
            (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::NewChild(offer))
        }
        Job::NewResourceChild(index, k) => {
            let resource = Some(crate::event::PerResource::Resource(k));
            let (payloads, offer) = core.additional_child_request(ctx, index, None, resource)?;
            (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::NewChild(offer))
        }
        Job::RekeyChild(old) => {
            let (payloads, offer) = core.rekey_request(ctx, old, None)?;
            (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::RekeyChild(offer))
        }
        Job::UpdateAddresses => {
            let (payloads, in_flight) = core.update_request(ctx)?;
            (info, payloads, in_flight)
        }
    })
}

/// Reads the answer to our request (not IKE_SA_INIT's, see [`ike_init::answer`]).
pub(crate) fn answer(core: &mut SaCore, ctx: &mut Ctx<'_>, in_flight: InFlight, p: &Collected) -> Next {
    match in_flight {
        InFlight::Intermediate(offer) => core.handle_intermediate_response(ctx, *offer, p),
        InFlight::Auth { child } => core.handle_auth_response(ctx, child, p),
        InFlight::AuthEap(rounds) => core.handle_eap_answer(ctx, *rounds, p),
        InFlight::DeleteIke => {
            let reason = core.delete_reason.take().map_or(crate::event::DownReason::LocalDeleted, |r| *r);
            core.close(ctx, reason);
            Next::Done
        }
        InFlight::DeleteChild(spi) => {
            core.child_gone(ctx, spi);
            Next::Done
        }
        InFlight::DeleteUninstalled | InFlight::Init { .. } => Next::Done,
        InFlight::Liveness => {
            ctx.out.events.push_back(Event::LivenessConfirmed { sa: core.handle });
            Next::Done
        }
        // RFC 5685 §5: the client acknowledged; it deletes this SA once it is up at the new gateway.
        InFlight::Redirect => {
            ctx.out.redirects = ctx.out.redirects.saturating_add(1);
            ctx.out.events.push_back(Event::RedirectAcknowledged { sa: core.handle });
            Next::Done
        }
        InFlight::RekeyChild(offer) => match core.child_followup_begin(ctx, child_followup::ChildKind::Rekey(offer), p)
        {
            Ok(next) => next,
            Err(child_followup::ChildKind::Rekey(offer)) => core.handle_rekey_response(ctx, *offer, p, &[]),
            Err(child_followup::ChildKind::New(offer)) => core.handle_new_child_response(ctx, *offer, p),
        },
        InFlight::FollowupChild(f) => core.handle_child_followup_response(ctx, *f, p),
        InFlight::RekeyIke(offer) => core.handle_ike_rekey_response(ctx, *offer, p),
        InFlight::FollowupIke(f) => core.handle_ike_followup_response(ctx, *f, p),
        InFlight::NewChild(offer) => match core.child_followup_begin(ctx, child_followup::ChildKind::New(offer), p) {
            Ok(next) => next,
            Err(child_followup::ChildKind::New(offer)) => core.handle_new_child_response(ctx, *offer, p),
            Err(child_followup::ChildKind::Rekey(offer)) => core.handle_rekey_response(ctx, *offer, p, &[]),
        },
        InFlight::UpdateAddresses { cookie2 } => core.handle_update_answer(ctx, cookie2, p),
    }
}

/// Answers the peer's request of `exchange` (authenticated, parsed): the response's payloads, or
/// `None` when the answer comes later, from an authentication server the daemon asks
/// ([`Event::EapRelay`], then [`resume`]).
pub(crate) fn respond(
    core: &mut SaCore,
    ctx: &mut Ctx<'_>,
    window: Window<'_>,
    exchange: ExchangeType,
    payloads: Vec<Payload>,
) -> Option<Vec<Payload>> {
    match exchange {
        ExchangeType::IKE_INTERMEDIATE => Some(core.handle_intermediate_request(ctx, &Collected::collect(payloads))),
        // RFC 9370 §2.2.2: IKE_AUTH comes only after every additional key exchange.
        ExchangeType::IKE_AUTH if core.additional_ke_pending() => {
            let e = crate::error::IkeError::Unexpected(crate::error::Unexpected::OtherAdditionalKe);
            core.close(
                ctx,
                crate::event::DownReason::Protocol(format!("IKE_AUTH before the additional key exchanges: {e}")),
            );
            Some(vec![notify(NotifyType::INVALID_SYNTAX)])
        }
        ExchangeType::IKE_AUTH => core.handle_auth_request(ctx, Collected::collect(payloads)),
        ExchangeType::INFORMATIONAL => Some(core.handle_informational(ctx, &payloads)),
        ExchangeType::IKE_FOLLOWUP_KE => {
            let p = Collected::collect(payloads);
            Some(match core.handle_child_followup_request(ctx, window, &p) {
                Some(answer) => answer,
                None => core.handle_ike_followup_request(ctx, window, &p),
            })
        }
        _ => Some(core.handle_create_child_request(ctx, window, Collected::collect(payloads))),
    }
}

/// The authentication server's answer for the request whose response was deferred: the response's
/// payloads.
pub(crate) fn resume(core: &mut SaCore, ctx: &mut Ctx<'_>, answer: crate::event::RelayAnswer) -> Vec<Payload> {
    core.relay_answered(ctx, answer)
}

/// The payloads of a message, by kind (the first of each, every CERT and notify).
#[derive(Debug, Default, Clone)]
pub(crate) struct Collected {
    pub idi: Option<IdPayload>,
    pub idr: Option<IdPayload>,
    pub auth: Option<AuthPayload>,
    pub certs: Vec<CertPayload>,
    pub sa: Option<SaPayload>,
    pub tsi: Option<TsPayload>,
    pub tsr: Option<TsPayload>,
    pub nonce: Option<Vec<u8>>,
    pub ke: Option<KePayload>,
    pub cp: Option<oxswan_wire::cp::CpPayload>,
    pub eap: Option<oxswan_wire::payloads::EapPayload>,
    pub notifies: Vec<NotifyPayload>,
}

impl Collected {
    /// The CP, SA, TS and notify payloads, in an order that collects back to the same: what an
    /// EAP responder keeps of the first IKE_AUTH request to answer in the last (§2.16).
    pub(crate) fn child_part(&self) -> Vec<Payload> {
        let mut out: Vec<Payload> = self.notifies.iter().cloned().map(Payload::Notify).collect();
        out.extend(self.cp.clone().map(Payload::Cp));
        out.extend(self.sa.clone().map(Payload::Sa));
        out.extend(self.tsi.clone().map(Payload::TsI));
        out.extend(self.tsr.clone().map(Payload::TsR));
        out
    }

    pub(crate) fn collect(payloads: Vec<Payload>) -> Self {
        let mut out = Self::default();
        for p in payloads {
            match p {
                Payload::IdI(x) if out.idi.is_none() => out.idi = Some(x),
                Payload::IdR(x) if out.idr.is_none() => out.idr = Some(x),
                Payload::Auth(x) if out.auth.is_none() => out.auth = Some(x),
                Payload::Cert(x) => out.certs.push(x),
                Payload::Sa(x) if out.sa.is_none() => out.sa = Some(x),
                Payload::TsI(x) if out.tsi.is_none() => out.tsi = Some(x),
                Payload::TsR(x) if out.tsr.is_none() => out.tsr = Some(x),
                Payload::Nonce(x) if out.nonce.is_none() => out.nonce = Some(x.data),
                Payload::Ke(x) if out.ke.is_none() => out.ke = Some(x),
                Payload::Cp(x) if out.cp.is_none() => out.cp = Some(x),
                Payload::Eap(x) if out.eap.is_none() => out.eap = Some(x),
                Payload::Notify(x) => out.notifies.push(x),
                _ => {}
            }
        }
        out
    }

    pub(crate) fn has(&self, ty: NotifyType) -> bool {
        self.notifies.iter().any(|n| n.notify_type == ty)
    }

    /// The first error notify (types below 16384, §3.10.1).
    pub(crate) fn error(&self) -> Option<NotifyType> {
        self.notifies.iter().map(|n| n.notify_type).find(|t| t.is_error())
    }

    /// The group the responder asked for with INVALID_KE_PAYLOAD (§1.2, §1.3).
    pub(crate) fn invalid_ke_group(&self) -> Option<KeId> {
        self.notifies
            .iter()
            .find(|n| n.notify_type == NotifyType::INVALID_KE_PAYLOAD)
            .and_then(|n| n.invalid_ke_group())
    }
}

pub(crate) fn notify(ty: NotifyType) -> Payload {
    Payload::Notify(NotifyPayload::new(ty, Vec::new()))
}

/// A fresh nonce (§2.10), or `None` when the random source fails.
pub(crate) fn nonce(ctx: &Ctx<'_>) -> Option<Vec<u8>> {
    let mut v = vec![0u8; NONCE_LEN];
    ctx.provider.random.fill(&mut v).ok()?;
    Some(v)
}

/// `base` plus up to a second at random: when both peers were refused (TEMPORARY_FAILURE, §2.25)
/// for crossing requests, their next tries do not cross again at the same instant.
pub(crate) fn jittered(ctx: &Ctx<'_>, base: core::time::Duration) -> core::time::Duration {
    let mut b = [0u8; 2];
    let extra = match ctx.provider.random.fill(&mut b) {
        Ok(()) => u64::from(u16::from_be_bytes(b)) * 1000 / u64::from(u16::MAX),
        Err(_) => 500,
    };
    base.saturating_add(core::time::Duration::from_millis(extra))
}

/// The lower of two nonces, by which simultaneous rekeys are resolved (§2.8.1).
pub(crate) fn lowest(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a <= b { a.to_vec() } else { b.to_vec() }
}

/// The first KE method of our proposals, for PFS.
pub(crate) fn first_ke(proposals: &[Proposal]) -> Option<KeId> {
    proposals.iter().find_map(|p| {
        p.transforms
            .iter()
            .find(|t| t.transform_type == oxswan_wire::TransformType::KE && t.transform_id != KeId::NONE.0)
            .map(|t| KeId(t.transform_id))
    })
}

/// With PFS the answer must complete our key exchange in the chosen group (§1.3.1, §1.3.3): the new
/// shared secret, none without PFS, or `Err` for an answer that does not fit our offer.
pub(crate) fn complete_ke(
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

/// The responder's side of a CREATE_CHILD_SA key exchange in `group` (§1.3): our KE payload and the
/// shared secret; none without PFS; or the refusal to send, INVALID_KE_PAYLOAD naming our group when
/// the initiator guessed another.
#[allow(clippy::type_complexity)]
pub(crate) fn respond_ke(
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
