//! Making a CHILD SA (RFC 7296 §1.2, §1.3.1, §2.9, §2.17): one offer and one check of the answer for
//! the child that rides on IKE_AUTH and for those made with CREATE_CHILD_SA afterwards, and the
//! responder's choice of child, proposal and narrowed selectors for both. Each CREATE_CHILD_SA child
//! has nonces of its own and, when its ESP proposals name a key exchange, a new Diffie-Hellman (PFS).

use oxswan_crypto::keys::ChildSaKeys;
use oxswan_crypto::proposal::proposal_to_string;
use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::payloads::{KePayload, NoncePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::ts::{TrafficSelector, TsPayload};
use oxswan_wire::{ExchangeType, KeId, NotifyType, Payload};

use super::{Collected, InFlight, Next, complete_ke, first_ke, nonce, notify, respond_ke};
use crate::child::{self, ChosenEsp, Mode};
use crate::config::PeerConfig;
use crate::error::Result;
use crate::event::{ChildSa, Event, PerResource};
use crate::sa::{Ask, ChildRecord, Ctx, Job, SaCore, Timer, later};

/// How long to wait before asking again for a per-resource pair the responder refused with
/// TEMPORARY_FAILURE (RFC 7296 §2.25: it is busy, e.g. rekeying the IKE SA).
const RESOURCE_RETRY: core::time::Duration = core::time::Duration::from_secs(2);

/// Pseudo-reason for a child the initiator could not accept locally (no notify was received).
const NO_PROPOSAL_CHOSEN_LOCALLY: NotifyType = NotifyType::NO_PROPOSAL_CHOSEN;

/// Our offer of a new CHILD SA, in flight with IKE_AUTH or CREATE_CHILD_SA.
#[derive(Debug)]
pub(crate) struct ChildOffer {
    /// The child's index in the connection.
    config: usize,
    pub spi_in: u32,
    /// Our nonce in CREATE_CHILD_SA; the child of IKE_AUTH takes its keys from the IKE_SA_INIT nonces
    /// (§2.17).
    nonce: Option<Vec<u8>>,
    offered: Vec<Proposal>,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
    ke: Option<Box<dyn KeyExchange>>,
    ke_retried: bool,
    /// What SA_RESOURCE_INFO announces (RFC 9611): the fallback of a child with `per_cpu_sas`, or
    /// the pair of one of our resources; `None` for an ordinary pair.
    resource: Option<PerResource>,
}

/// The SA_RESOURCE_INFO notify for `resource` (RFC 9611 §4.1): the fallback's carries no
/// identifier, a resource's pair its number, four octets in network order (as strongSwan's CPU
/// IDs). The identifier is opaque to the peer.
fn resource_info(resource: PerResource) -> Payload {
    let data = resource.number().map(|k| k.to_be_bytes().to_vec()).unwrap_or_default();
    Payload::Notify(oxswan_wire::notify::NotifyPayload::new(NotifyType::SA_RESOURCE_INFO, data))
}

impl ChildOffer {
    /// The child's index in the connection.
    pub(crate) fn config_index(&self) -> usize {
        self.config
    }

    /// The offer's payloads, with `extra` (Nonce, KE) after the SA payload.
    pub(crate) fn payloads(&self, extra: Vec<Payload>) -> Vec<Payload> {
        let mut out = Vec::new();
        if self.transport {
            out.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        if let Some(r) = self.resource {
            out.push(resource_info(r));
        }
        out.push(Payload::Sa(SaPayload { proposals: self.offered.clone() }));
        out.extend(extra);
        out.push(Payload::TsI(TsPayload { selectors: self.tsi.clone() }));
        out.push(Payload::TsR(TsPayload { selectors: self.tsr.clone() }));
        out
    }
}

/// What a usable answer to a CHILD SA offer gives.
pub(crate) struct Accepted {
    pub chosen: ChosenEsp,
    pub shared: Option<oxswan_crypto::Secret>,
}

/// Why an authentic answer to a CHILD SA offer cannot be used. The responder installed its half of
/// the pair by then, so the initiator deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// No SA payload, Nonce, or selectors.
    Missing,
    /// The responder chose a proposal we did not offer (§2.7).
    Proposal,
    /// The responder widened the selectors (§2.9: it may only narrow).
    Selectors,
    /// The KE payload does not complete our key exchange (§1.3.1).
    KeyExchange,
}

impl Unusable {
    /// The reason the child is reported failed with.
    pub(crate) fn reason(self) -> NotifyType {
        match self {
            Unusable::Missing | Unusable::Proposal => NO_PROPOSAL_CHOSEN_LOCALLY,
            Unusable::Selectors => NotifyType::TS_UNACCEPTABLE,
            Unusable::KeyExchange => NotifyType::INVALID_SYNTAX,
        }
    }
}

/// Checks an answer to a CHILD SA offer (a new one, or a rekey when `selectors` is `None`): the
/// proposal must be one we offered, the KE must complete ours, and the selectors may only narrow.
pub(crate) fn accept_answer(
    offered: &[Proposal],
    ours: Option<&dyn KeyExchange>,
    p: &Collected,
    with_ke: bool,
    selectors: Option<(&[TrafficSelector], &[TrafficSelector])>,
) -> core::result::Result<Accepted, Unusable> {
    let sa = p.sa.as_ref().ok_or(Unusable::Missing)?;
    if with_ke && p.nonce.is_none() {
        return Err(Unusable::Missing);
    }
    if let Some((tsi, tsr)) = selectors {
        let (Some(got_i), Some(got_r)) = (&p.tsi, &p.tsr) else { return Err(Unusable::Missing) };
        let chosen = child::accept_esp(offered, &sa.proposals, with_ke).map_err(|_| Unusable::Proposal)?;
        if !child::is_narrowing_of(tsi, &got_i.selectors) || !child::is_narrowing_of(tsr, &got_r.selectors) {
            return Err(Unusable::Selectors);
        }
        let shared = complete_ke(chosen.ke, ours, p.ke.as_ref()).map_err(|_| Unusable::KeyExchange)?;
        return Ok(Accepted { chosen, shared });
    }
    let chosen = child::accept_esp(offered, &sa.proposals, with_ke).map_err(|_| Unusable::Proposal)?;
    let shared = complete_ke(chosen.ke, ours, p.ke.as_ref()).map_err(|_| Unusable::KeyExchange)?;
    Ok(Accepted { chosen, shared })
}

impl SaCore {
    /// An offer of the connection's child `index`: in CREATE_CHILD_SA (`group` not `None`) with a
    /// nonce and, with PFS, a key exchange in the group given or the first of its proposals. A child
    /// with `per_cpu_sas` is offered as the fallback of its per-resource pairs, or as the pair of
    /// `resource` (RFC 9611).
    pub(crate) fn child_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: &PeerConfig,
        index: usize,
        group: Option<Option<KeId>>,
        resource: Option<PerResource>,
    ) -> Result<ChildOffer> {
        let config = peer.children.get(index).ok_or(crate::error::IkeError::UnknownConnection)?;
        let resource = if config.per_cpu_sas { Some(resource.unwrap_or(PerResource::Fallback)) } else { None };
        let spi_in = ctx.new_esp_spi_for(resource.and_then(PerResource::number))?;
        let offered = child::esp_offer(&config.esp_proposals, spi_in);
        // RFC 9611 §2: the per-resource pairs have the fallback's selectors, as the responder
        // narrowed them, not the configured ones again.
        let (tsi, tsr) = match resource.and_then(PerResource::number).and_then(|_| self.fallback_of(&config.name)) {
            Some(f) => (f.sa.local_ts.to_vec(), f.sa.remote_ts.to_vec()),
            None => (
                child::resolve_hosts(&config.local_ts, &self.local_hosts()),
                child::resolve(&config.remote_ts, self.remote.ip()),
            ),
        };
        let (nonce, ke) = match group {
            None => (None, None),
            Some(g) => {
                let n = nonce(ctx).ok_or(crate::error::IkeError::NoKeys)?;
                let ke = match g.or_else(|| first_ke(&config.esp_proposals)) {
                    Some(g) => Some(ctx.provider.ke.start(g)?),
                    None => None,
                };
                (Some(n), ke)
            }
        };
        Ok(ChildOffer {
            config: index,
            spi_in,
            nonce,
            offered,
            tsi,
            tsr,
            transport: config.mode == Mode::Transport,
            ke,
            ke_retried: matches!(group, Some(Some(_))),
            resource,
        })
    }

    /// One CREATE_CHILD_SA for each child of the connection from index `first` on: after IKE_AUTH
    /// as initiator those that did not ride on it (all of them for a childless IKE SA, RFC 6023),
    /// or every child for an IKE SA that has none ([`crate::Endpoint::add_children`]).
    pub(crate) fn queue_children_from(&mut self, ctx: &mut Ctx<'_>, first: usize) {
        let n = self.peer.as_ref().map_or(0, |p| p.children.len());
        for i in first..n {
            if let Ok(i) = u16::try_from(i) {
                self.queue(ctx, Job::NewChild(i));
            }
        }
    }

    /// The CREATE_CHILD_SA request for child `index` (§1.3.1): `{ [N(USE_TRANSPORT_MODE)], SA, Ni,
    /// [KEi], TSi, TSr }`, or `None` when there is no such child or no randomness.
    pub(crate) fn additional_child_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        index: u16,
        group: Option<KeId>,
        resource: Option<PerResource>,
    ) -> Option<(Vec<Payload>, Box<ChildOffer>)> {
        let peer = self.peer.clone()?;
        let offer = self.child_offer(ctx, &peer, usize::from(index), Some(group), resource).ok()?;
        let mut extra = vec![Payload::Nonce(NoncePayload { data: offer.nonce.clone().unwrap_or_default() })];
        if let Some(k) = &offer.ke {
            extra.push(Payload::Ke(KePayload { group: k.group(), data: k.public_value().to_vec() }));
        }
        Some((offer.payloads(extra), Box::new(offer)))
    }

    /// The answer to our request for an additional CHILD SA.
    pub(crate) fn handle_new_child_response(&mut self, ctx: &mut Ctx<'_>, offer: ChildOffer, p: &Collected) -> Next {
        // §1.3.1: start again once in the group the responder asked for.
        if p.error() == Some(NotifyType::INVALID_KE_PAYLOAD) && !offer.ke_retried {
            let index = u16::try_from(offer.config).ok();
            let resource = offer.resource;
            let retry = index
                .zip(p.invalid_ke_group())
                .and_then(|(i, g)| self.additional_child_request(ctx, i, Some(g), resource));
            if let Some((payloads, offer)) = retry {
                return Next::Send {
                    exchange: ExchangeType::CREATE_CHILD_SA,
                    payloads,
                    in_flight: InFlight::NewChild(offer),
                };
            }
        }
        self.conclude_child_offer(ctx, offer, p);
        Next::Done
    }

    /// Reads the answer to a CHILD SA offer, in IKE_AUTH or CREATE_CHILD_SA: the pair is made, or
    /// the child is reported failed (the IKE SA stays up without it, §1.2), and a pair the responder
    /// made for an answer we cannot use is deleted (§1.4.1).
    pub(crate) fn conclude_child_offer(&mut self, ctx: &mut Ctx<'_>, offer: ChildOffer, p: &Collected) {
        self.conclude_child_offer_with(ctx, offer, p, &[]);
    }

    /// [`SaCore::conclude_child_offer`] after the additional key exchanges of IKE_FOLLOWUP_KE
    /// (RFC 9370 §2.2.4), whose secrets `extra` enter KEYMAT after the nonces.
    pub(crate) fn conclude_child_offer_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        offer: ChildOffer,
        p: &Collected,
        extra: &[oxswan_crypto::Secret],
    ) {
        let Some(peer) = self.peer.clone() else { return };
        let Some(config) = peer.children.get(offer.config) else { return };
        let fail = |s: &mut Self, ctx: &mut Ctx<'_>, reason| {
            ctx.out.events.push_back(Event::ChildSaFailed { sa: s.handle, name: config.name.clone(), reason });
        };
        if let Some(err) = p.error() {
            // §2.25: the responder cannot make a pair just now; a per-resource one is asked for
            // again shortly (the fallback carries its traffic meanwhile). Any other refusal, such
            // as TS_MAX_QUEUE (RFC 9611 §4.2), ends the per-resource pairs.
            if err == NotifyType::TEMPORARY_FAILURE && offer.resource.and_then(PerResource::number).is_some() {
                self.timers.set(Timer::Resources, later(ctx.now, RESOURCE_RETRY));
                return;
            }
            fail(self, ctx, err);
            return;
        }
        let with_ke = offer.nonce.is_some();
        let selectors = Some((offer.tsi.as_slice(), offer.tsr.as_slice()));
        let accepted = match accept_answer(&offer.offered, offer.ke.as_deref(), p, with_ke, selectors) {
            Ok(a) => a,
            Err(unusable) => {
                fail(self, ctx, unusable.reason());
                if unusable != Unusable::Missing {
                    self.asks.push(Ask::First(Job::DeleteUninstalled(offer.spi_in)));
                }
                return;
            }
        };
        let (Some(tsi), Some(tsr)) = (&p.tsi, &p.tsr) else { return };
        let mode =
            if offer.transport && p.has(NotifyType::USE_TRANSPORT_MODE) { Mode::Transport } else { Mode::Tunnel };
        let ts = (tsi.selectors.clone(), tsr.selectors.clone());
        // §2.17: the IKE_AUTH child's KEYMAT comes from the IKE_SA_INIT nonces, and its initiator is
        // the IKE SA's.
        let (ni, nr, we_initiated) = match (&offer.nonce, &p.nonce) {
            (Some(ni), Some(nr)) => (ni.clone(), nr.clone(), true),
            _ => match self.keys.as_ref().and_then(|k| k.handshake.as_ref()) {
                Some(h) => (h.ni.clone(), h.nr.clone(), self.initiator),
                None => return,
            },
        };
        let mut c = self.derive_child(
            ctx,
            &config.name,
            &accepted.chosen,
            offer.spi_in,
            ts,
            mode,
            &accepted.shared.iter().chain(extra).collect::<Vec<_>>(),
            (&ni, &nr),
            we_initiated,
        );
        // RFC 9611 §2: a per-resource pair only if the responder answered in kind; without it, an
        // ordinary pair (a peer without per-resource SAs treats the selectors as usual).
        c.resource = offer.resource.filter(|_| p.has(NotifyType::SA_RESOURCE_INFO));
        let per_resource = c.resource.is_some();
        self.ready(ctx, c);
        if per_resource {
            self.request_next_resource(ctx, offer.config);
        }
    }

    /// The fallback pair of the child named `name` (RFC 9611 §2), if it is up.
    fn fallback_of(&self, name: &str) -> Option<&ChildRecord> {
        self.children.iter().find(|c| c.sa.name == name && c.sa.resource == Some(PerResource::Fallback))
    }

    /// As initiator, once the peer took the fallback of child `index` (RFC 9611 §2): the pair of
    /// the lowest of our resources without one, each in a CREATE_CHILD_SA of its own, one at a
    /// time, so that the first TS_MAX_QUEUE (§4.2) ends it. They are made eagerly, as the data
    /// plane's workers are few and fixed.
    pub(crate) fn request_next_resource(&mut self, ctx: &mut Ctx<'_>, index: usize) {
        if ctx.resources < 2 {
            return;
        }
        let Some(name) = self.peer.as_ref().and_then(|p| p.children.get(index)).map(|c| c.name.clone()) else {
            return;
        };
        if self.fallback_of(&name).is_none() {
            return;
        }
        let has =
            |k: u32| self.children.iter().any(|c| c.sa.name == name && c.sa.resource == Some(PerResource::Resource(k)));
        let next = (0..ctx.resources).find(|k| !has(*k));
        if let (Some(k), Ok(index)) = (next, u16::try_from(index)) {
            self.queue(ctx, Job::NewResourceChild(index, k));
        }
    }

    /// The per-resource pairs refused with TEMPORARY_FAILURE are asked for again.
    pub(crate) fn resource_timer(&mut self, ctx: &mut Ctx<'_>) {
        if !self.timers.take_due(Timer::Resources, ctx.now) {
            return;
        }
        let n = self.peer.as_ref().map_or(0, |p| p.children.len());
        for i in 0..n {
            if self.peer.as_ref().and_then(|p| p.children.get(i)).is_some_and(|c| c.per_cpu_sas) {
                self.request_next_resource(ctx, i);
            }
        }
    }

    /// The CHILD SA part of the IKE_AUTH response (§1.2); a failure here leaves the IKE SA up.
    pub(crate) fn respond_child_in_auth(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: &PeerConfig,
        p: &Collected,
    ) -> Vec<Payload> {
        let mut sel = match self.select_child(peer, p, false) {
            Ok(sel) => sel,
            Err(SelectError::Missing) => return Vec::new(),
            Err(SelectError::Refused(reason)) => return self.refuse_child(ctx, peer, reason),
        };
        let resource = match self.resource_for(ctx.resources, &sel.config, p) {
            Ok(r) => r,
            Err(reason) => return self.refuse_child(ctx, peer, reason),
        };
        let Ok(spi_in) = ctx.new_esp_spi_for(resource.and_then(PerResource::number)) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        sel.set_spi(spi_in, resource);
        let Some((ni, nr)) =
            self.keys.as_ref().and_then(|k| k.handshake.as_ref()).map(|h| (h.ni.clone(), h.nr.clone()))
        else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let mode = if sel.transport { Mode::Transport } else { Mode::Tunnel };
        let ts = (sel.tsr.clone(), sel.tsi.clone());
        let mut c = self.derive_child(ctx, &sel.config.name, &sel.chosen, spi_in, ts, mode, &[], (&ni, &nr), false);
        c.resource = resource;
        self.ready(ctx, c);
        self.fresh_pairs.push(spi_in);
        sel.payloads(Vec::new())
    }

    /// A new CHILD SA asked for in CREATE_CHILD_SA (§1.3.1): chosen as in IKE_AUTH, with its own
    /// nonces and, with PFS, key exchange. strongSwan also uses it to recreate a CHILD SA that expired.
    pub(crate) fn new_child_request(&mut self, ctx: &mut Ctx<'_>, p: &Collected) -> Vec<Payload> {
        let Some(peer) = self.peer.clone() else { return vec![notify(NotifyType::NO_ADDITIONAL_SAS)] };
        let Some(ni) = p.nonce.clone() else { return vec![notify(NotifyType::INVALID_SYNTAX)] };
        let mut sel = match self.select_child(&peer, p, true) {
            Ok(sel) => sel,
            Err(SelectError::Missing) => return vec![notify(NotifyType::INVALID_SYNTAX)],
            Err(SelectError::Refused(reason)) => return self.refuse_child(ctx, &peer, reason),
        };
        let resource = match self.resource_for(ctx.resources, &sel.config, p) {
            Ok(r) => r,
            Err(reason) => return self.refuse_child(ctx, &peer, reason),
        };
        let Ok(spi_in) = ctx.new_esp_spi_for(resource.and_then(PerResource::number)) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        sel.set_spi(spi_in, resource);
        let (ke_out, shared) = match respond_ke(ctx, sel.chosen.ke, p.ke.as_ref()) {
            Ok(x) => x,
            Err(refusal) => return refusal,
        };
        let Some(nr) = nonce(ctx) else { return vec![notify(NotifyType::TEMPORARY_FAILURE)] };
        let mode = if sel.transport { Mode::Transport } else { Mode::Tunnel };
        let ts = (sel.tsr.clone(), sel.tsi.clone());
        let plan = crate::init::Intermediate::of(&sel.chosen.proposal).plan;
        if !plan.is_empty() {
            // RFC 9370 §2.2.4: the pair is made after the IKE_FOLLOWUP_KE exchanges.
            let finish = super::child_followup::Finish::New {
                name: sel.config.name.clone(),
                chosen: Box::new(sel.chosen.clone()),
                spi_in,
                ts,
                mode,
                resource,
                nonces: (ni, nr.clone()),
            };
            let Some(link) = self.await_child_followup(ctx, plan, shared, finish) else {
                return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
            };
            let mut extra = vec![Payload::Nonce(NoncePayload { data: nr })];
            extra.extend(ke_out);
            let mut out = sel.payloads(extra);
            out.push(link);
            return out;
        }
        let mut c = self.derive_child(
            ctx,
            &sel.config.name,
            &sel.chosen,
            spi_in,
            ts,
            mode,
            shared.as_ref().as_slice(),
            (&ni, &nr),
            false,
        );
        c.resource = resource;
        if !self.install_new_child(ctx, c) {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        let mut extra = vec![Payload::Nonce(NoncePayload { data: nr })];
        extra.extend(ke_out);
        sel.payloads(extra)
    }

    /// The responder's new pair `c`, made: reported and kept. `false` when its keys could not be
    /// derived.
    pub(crate) fn install_new_child(&mut self, ctx: &mut Ctx<'_>, c: ChildSa) -> bool {
        if c.encr_in.is_empty() {
            return false;
        }
        let spi_in = c.spi_in;
        self.ready(ctx, c);
        self.fresh_pairs.push(spi_in);
        true
    }

    /// The responder's refusal of a CHILD SA: an event for the daemon and the notify for the peer.
    fn refuse_child(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig, reason: NotifyType) -> Vec<Payload> {
        let name = peer.children.first().map(|c| c.name.clone()).unwrap_or_default();
        ctx.out.events.push_back(Event::ChildSaFailed { sa: self.handle, name, reason });
        vec![notify(reason)]
    }

    /// The responder's place for a new pair of `config` among its per-resource pairs (RFC 9611 §2),
    /// when the initiator announced one with SA_RESOURCE_INFO and the child has `per_cpu_sas`: the
    /// fallback if the IKE SA has none of the child's per-resource pairs yet, else the lowest of our
    /// resources without one. With all taken, TS_MAX_QUEUE (§4.2): the initiator then stops asking.
    /// An ordinary pair (`None`) otherwise.
    fn resource_for(
        &self,
        resources: u32,
        config: &child::ChildConfig,
        p: &Collected,
    ) -> core::result::Result<Option<PerResource>, NotifyType> {
        if !config.per_cpu_sas || !p.has(NotifyType::SA_RESOURCE_INFO) {
            return Ok(None);
        }
        let mut any = false;
        let mut taken = 0u64;
        for c in self.children.iter().filter(|c| c.sa.name == config.name) {
            match c.sa.resource {
                Some(PerResource::Fallback) => any = true,
                Some(PerResource::Resource(k)) => {
                    any = true;
                    taken |= 1u64.checked_shl(k).unwrap_or(0);
                }
                None => {}
            }
        }
        if !any {
            return Ok(Some(PerResource::Fallback));
        }
        // The daemon has at most 16 workers; 64 bounds what a peer can make us hold all the same.
        let ours = resources.clamp(1, 64);
        (0..ours)
            .find(|k| taken & 1u64.checked_shl(*k).unwrap_or(0) == 0)
            .map(|k| Some(PerResource::Resource(k)))
            .ok_or(NotifyType::TS_MAX_QUEUE)
    }

    /// Picks our child for the initiator's offer (IKE_AUTH or CREATE_CHILD_SA): the first whose
    /// selectors narrow with the offered ones (§2.9) and which accepts one of its proposals. The
    /// chosen proposal's SPI is set once the inbound SPI is drawn ([`SelectedChild::set_spi`]).
    fn select_child(
        &self,
        peer: &PeerConfig,
        p: &Collected,
        with_ke: bool,
    ) -> core::result::Result<SelectedChild, SelectError> {
        let (Some(sa), Some(tsi), Some(tsr)) = (&p.sa, &p.tsi, &p.tsr) else { return Err(SelectError::Missing) };
        let mut narrowed_any = false;
        for config in &peer.children {
            let ours_remote = child::resolve_hosts(&config.remote_ts, &self.remote_hosts());
            let ours_local = child::resolve(&config.local_ts, self.local.ip());
            let Some((n_tsi, n_tsr)) = child::narrow(&tsi.selectors, &tsr.selectors, &ours_remote, &ours_local) else {
                continue;
            };
            narrowed_any = true;
            let Ok(chosen) = child::choose_esp(&config.esp_proposals, &sa.proposals, 0, peer.prefer_initiator, with_ke)
            else {
                continue;
            };
            // §1.3.1: transport mode only if both want it.
            let transport = config.mode == Mode::Transport && p.has(NotifyType::USE_TRANSPORT_MODE);
            return Ok(SelectedChild {
                config: config.clone(),
                chosen,
                tsi: n_tsi,
                tsr: n_tsr,
                transport,
                resource: None,
            });
        }
        Err(SelectError::Refused(if narrowed_any {
            NotifyType::NO_PROPOSAL_CHOSEN
        } else {
            NotifyType::TS_UNACCEPTABLE
        }))
    }

    /// A CHILD SA with KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr) (§2.17): the initiator-to-responder
    /// keys come first, the initiator being that of the exchange that made it (`we_initiated`). Keys
    /// are left empty if the derivation fails; `ready` refuses such a child.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn derive_child(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        chosen: &ChosenEsp,
        spi_in: u32,
        (local_ts, remote_ts): (Vec<TrafficSelector>, Vec<TrafficSelector>),
        mode: Mode,
        shared: &[&oxswan_crypto::Secret],
        (ni, nr): (&[u8], &[u8]),
        we_initiated: bool,
    ) -> ChildSa {
        let empty = ChildSa {
            name: name.to_owned(),
            spi_in,
            spi_out: chosen.peer_spi,
            suite: chosen.suite,
            esn: chosen.esn,
            proposal: proposal_to_string(&chosen.proposal),
            encr_in: oxswan_crypto::Secret::new(Vec::new()),
            integ_in: oxswan_crypto::Secret::new(Vec::new()),
            encr_out: oxswan_crypto::Secret::new(Vec::new()),
            integ_out: oxswan_crypto::Secret::new(Vec::new()),
            local_ts,
            remote_ts,
            mode,
            encap: self.nat.any(),
            transport: self.transport,
            local: self.local,
            remote: self.remote,
            replaces: None,
            outbound: true,
            resource: None,
        };
        let Some(keys) = self.keys.as_ref() else { return empty };
        let secrets: Vec<&[u8]> = shared.iter().map(|s| s.expose()).collect();
        match ChildSaKeys::derive(
            ctx.provider.prf.as_ref(),
            keys.suite.prf,
            keys.sk_d.expose(),
            &chosen.suite,
            &secrets,
            ni,
            nr,
        ) {
            Ok(k) => {
                let (encr_in, integ_in, encr_out, integ_out) = if we_initiated {
                    (k.encr_r, k.integ_r, k.encr_i, k.integ_i)
                } else {
                    (k.encr_i, k.integ_i, k.encr_r, k.integ_r)
                };
                ChildSa { encr_in, integ_in, encr_out, integ_out, ..empty }
            }
            Err(_) => empty,
        }
    }

    /// Reports a made pair to the data plane and keeps its record, with its timers armed.
    pub(crate) fn ready(&mut self, ctx: &mut Ctx<'_>, c: ChildSa) {
        if c.encr_in.is_empty() {
            ctx.out.events.push_back(Event::ChildSaFailed {
                sa: self.handle,
                name: c.name,
                reason: NO_PROPOSAL_CHOSEN_LOCALLY,
            });
            return;
        }
        let spi = c.spi_in;
        self.children.push(ChildRecord::new(&c));
        ctx.out.events.push_back(Event::ChildSaReady { sa: self.handle, child: Box::new(c) });
        self.schedule_rekey(ctx, spi);
    }
}

/// The child, proposal and narrowed selectors the responder chose.
struct SelectedChild {
    config: child::ChildConfig,
    chosen: ChosenEsp,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
    transport: bool,
    /// The place among per-resource pairs, answered with SA_RESOURCE_INFO.
    resource: Option<PerResource>,
}

impl SelectedChild {
    /// Our inbound SPI, in the proposal we answer with, and the pair's per-resource place.
    fn set_spi(&mut self, spi_in: u32, resource: Option<PerResource>) {
        self.chosen.proposal.spi = spi_in.to_be_bytes().to_vec();
        self.resource = resource;
    }

    /// The response's payloads for this child, with `extra` (Nonce, KE) after the SA payload.
    fn payloads(&self, extra: Vec<Payload>) -> Vec<Payload> {
        let mut out = Vec::new();
        if self.transport {
            out.push(notify(NotifyType::USE_TRANSPORT_MODE));
        }
        if let Some(r) = self.resource {
            out.push(resource_info(r));
        }
        out.push(Payload::Sa(SaPayload { proposals: vec![self.chosen.proposal.clone()] }));
        out.extend(extra);
        out.push(Payload::TsI(TsPayload { selectors: self.tsi.clone() }));
        out.push(Payload::TsR(TsPayload { selectors: self.tsr.clone() }));
        out
    }
}

enum SelectError {
    /// No SA or TS payloads: no child was asked for.
    Missing,
    /// None acceptable, with the notify that says why.
    Refused(NotifyType),
}
