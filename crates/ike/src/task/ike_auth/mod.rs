//! IKE_AUTH (RFC 7296 §1.2, §2.15, §2.21.2): identities, certificates, AUTH with a PSK or a
//! signature (RFC 7427), INITIAL_CONTACT, the configuration payload ([`super::ike_config`]) and
//! the first CHILD SA riding on the exchange ([`super::child_create`]). With EAP (§2.16, [`eap`])
//! the exchange takes several rounds; the CP and CHILD SA parts are answered in the last.

use oxswan_crypto::proposal::select_proposal;
use oxswan_wire::id::IdPayload;
use oxswan_wire::notify::DeletePayload;
use oxswan_wire::payloads::{AuthPayload, CertPayload, CertReqPayload};
use oxswan_wire::{CertEncoding, ExchangeType, Identity, NotifyType, Payload};

use super::{ChildOffer, Collected, InFlight, Next, notify};
use crate::auth::{
    AuthCtx, AuthError, Authenticator, Credentials, PubkeyAuth, SharedKeyAuth, SignedOctets, same_identity,
};
use crate::config::{Childless, LocalAuth, PeerConfig, RemoteAuth};
use crate::error::{IkeError, Result};
use crate::event::{DownReason, Event};
use crate::sa::{Ask, Ctx, Origin, SaCore, State};

pub(crate) mod eap;
mod gateway;
mod ppk;
mod resumed;

impl SaCore {
    /// The IKE_AUTH request, after IKE_SA_INIT: `{ IDi, [CERT+], [CERTREQ], [IDr], AUTH,
    /// [N(INITIAL_CONTACT)], [N(USE_TRANSPORT_MODE)], SA, TSi, TSr }`.
    pub(crate) fn auth_request(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig) -> Result<Next> {
        let keys = self.keys.as_ref().ok_or(IkeError::NoKeys)?;
        let init = keys.handshake.as_deref().ok_or(IkeError::NoKeys)?;
        let idi = IdPayload::from_identity(&peer.local_id);
        let mut payloads = vec![Payload::IdI(idi.clone())];
        // RFC 5723 §5.1: after IKE_SESSION_RESUME no certificates, and AUTH from the resumed keys.
        let resumed = init.resumed.is_some();
        if let (LocalAuth::Cert(cert), false) = (&peer.local_auth, resumed) {
            payloads.extend(cert_payloads(&cert.chain));
        }
        if let (RemoteAuth::Cert(trust), false) = (&peer.remote_auth, resumed) {
            payloads.push(Payload::CertReq(CertReqPayload {
                encoding: CertEncoding::X509_SIGNATURE,
                data: trust.certreq_hashes(),
            }));
        }
        if let Some(r) = &peer.remote_id {
            payloads.push(Payload::IdR(IdPayload::from_identity(r)));
        }
        // §2.16: an EAP client leaves AUTH out; the gateway then starts EAP. A PPK (RFC 8784) is
        // mixed into the AUTH of a shared key or certificate only.
        let mut ppk = None;
        if resumed {
            payloads.push(self.resumed_auth_payload(ctx, true, &idi).map_err(|e| IkeError::Auth(e.to_string()))?);
        } else if !matches!(peer.local_auth, LocalAuth::Eap(_)) {
            ppk = self.initiator_ppk(ctx, peer).map_err(|e| IkeError::Auth(e.to_string()))?;
            let id_body = idi.auth_octets();
            let octets = |ppk: Option<&oxswan_crypto::Secret>| {
                SignedOctets {
                    message: &init.request,
                    nonce: &init.nr,
                    sk_p: init.keys.sk_pi.expose(),
                    id_body: &id_body,
                    ppk: ppk.map(oxswan_crypto::Secret::expose),
                    int_auth: init.intermediate.int_auth().as_deref(),
                }
                .compute(ctx.provider.prf.as_ref(), init.suite.prf)
                .map_err(|e| IkeError::Auth(e.to_string()))
            };
            let auth = self
                .make_auth(ctx, peer, &octets(ppk.as_ref())?, peer.remote_id.as_ref())
                .map_err(|e| IkeError::Auth(e.to_string()))?;
            payloads.push(Payload::Auth(auth));
            if let (Some(_), Some(id)) = (&ppk, &peer.ppk_id) {
                payloads.push(ppk::ppk_identity(id));
                // RFC 8784 §3: the same AUTH without the PPK, for a responder that lacks it.
                if !peer.ppk_required {
                    let plain = self
                        .make_auth(ctx, peer, &octets(None)?, peer.remote_id.as_ref())
                        .map_err(|e| IkeError::Auth(e.to_string()))?;
                    payloads.push(Payload::Notify(oxswan_wire::notify::NotifyPayload::new(
                        NotifyType::NO_PPK_AUTH,
                        plain.data,
                    )));
                }
            }
        } else if peer.ppk_required {
            return Err(IkeError::Auth("PPK required, but PPKs with EAP are not implemented".into()));
        }
        // Not when replacing an SA of ours (a reauthentication, or following a redirect, which
        // may lead to a gateway sharing the old SA's state): the old SA must stay until the new
        // one is up (§2.4).
        if peer.initial_contact && self.origin == Origin::Connect {
            payloads.push(notify(NotifyType::INITIAL_CONTACT));
        }
        // RFC 6023: without a CHILD SA in IKE_AUTH when the connection wants it and the responder
        // announced it; the CHILD SAs follow in CREATE_CHILD_SA.
        let announced = init.peer_notifies.iter().any(|n| n.notify_type == NotifyType::CHILDLESS_IKEV2_SUPPORTED);
        let childless = match peer.childless {
            Childless::Force if !announced => {
                return Err(IkeError::Auth(
                    "childless = force, but the responder does not support childless IKE SAs (RFC 6023)".into(),
                ));
            }
            Childless::Force => true,
            Childless::Prefer => announced,
            Childless::Allow | Childless::Never => false,
        };
        let offer = match peer.children.first() {
            Some(_) if !childless => Some(Box::new(self.child_offer(ctx, peer, 0, None, None)?)),
            _ => None,
        };
        if let (LocalAuth::Eap(client), false) = (&peer.local_auth, resumed)
            && offers_eap_only(client)
        {
            payloads.push(notify(NotifyType::EAP_ONLY_AUTHENTICATION));
        }
        // RFC 5723 §4: a ticket for the next time.
        if peer.resumption {
            payloads.push(notify(NotifyType::TICKET_REQUEST));
        }
        payloads.extend(super::ike_config::request(peer));
        payloads.extend(self.mobike_offer(ctx, peer));
        if let Some(o) = &offer {
            payloads.extend(o.payloads(Vec::new()));
        }
        self.set_ppk(ppk);
        self.state = State::Connecting;
        Ok(Next::Send { exchange: ExchangeType::IKE_AUTH, payloads, in_flight: InFlight::Auth { child: offer } })
    }

    /// An answer without what we need is an error notify: the responder refused us (§2.21.2) or
    /// the exchange.
    pub(crate) fn refused_by_responder(&mut self, ctx: &mut Ctx<'_>, p: &Collected) {
        let reason = p.error().unwrap_or(NotifyType::INVALID_SYNTAX);
        if reason == NotifyType::AUTHENTICATION_FAILED {
            ctx.out.events.push_back(Event::AuthFailed {
                sa: self.handle,
                peer: self.remote,
                reason: "peer sent AUTHENTICATION_FAILED".into(),
            });
        }
        self.close(ctx, DownReason::PeerNotify(reason));
    }

    /// Our AUTH over `octets`, by the connection's method, for the peer `theirs` (if known yet).
    fn make_auth(
        &self,
        ctx: &Ctx<'_>,
        peer: &PeerConfig,
        octets: &[u8],
        theirs: Option<&Identity>,
    ) -> core::result::Result<AuthPayload, AuthError> {
        let keys = self.keys.as_ref().ok_or_else(|| AuthError::Crypto("no keys".into()))?;
        let actx = AuthCtx {
            provider: ctx.provider,
            prf: keys.suite.prf,
            unix_now: ctx.unix_now,
            ours: &peer.local_id,
            peer: theirs,
            peer_hashes: self.peer_hashes.as_deref(),
        };
        local_authenticator(peer, ctx.credentials).build(&actx, octets)
    }

    /// The responder's IKE_AUTH answer: `{ IDr, [CERT+], AUTH, SA, TSi, TSr }`, or an error notify.
    pub(crate) fn handle_auth_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        child: Option<Box<ChildOffer>>,
        p: &Collected,
    ) -> Next {
        let Some(peer) = self.peer.clone() else { return Next::Done };
        if self.resumption().is_some() {
            if p.idr.is_none() || p.auth.is_none() {
                self.refused_by_responder(ctx, p);
                return Next::Done;
            }
            return match self.check_resumed_responder(ctx, &peer, p) {
                Ok(remote_id) => self.auth_complete_as_initiator(ctx, remote_id, child, p),
                Err(reason) => {
                    self.asks
                        .push(Ask::Once(ExchangeType::INFORMATIONAL, vec![notify(NotifyType::AUTHENTICATION_FAILED)]));
                    self.auth_failed(ctx, reason);
                    Next::Done
                }
            };
        }
        // RFC 5998: after our EAP_ONLY_AUTHENTICATION the gateway may leave its AUTH out and be
        // authenticated by a mutual EAP method instead (checked when the method ends).
        if let (LocalAuth::Eap(client), Some(idr), None, Some(_)) = (&peer.local_auth, &p.idr, &p.auth, &p.eap)
            && offers_eap_only(client)
        {
            let claimed = idr.identity().map_err(|e| AuthError::MalformedIdentity(e.to_string()));
            let checked = claimed.and_then(|id| match &peer.remote_id {
                Some(want) if !same_identity(want, &id) => Err(AuthError::WrongIdentity {
                    got: crate::cert::identity_string(&id),
                    want: crate::cert::identity_string(want),
                }),
                _ => Ok(id),
            });
            return match checked {
                Ok(remote_id) => self.start_eap_client(ctx, client, child, (idr.clone(), remote_id), p, true),
                Err(reason) => {
                    self.auth_failed(ctx, reason);
                    Next::Done
                }
            };
        }
        let (Some(idr), Some(auth)) = (p.idr.clone(), p.auth.clone()) else {
            self.refused_by_responder(ctx, p);
            return Next::Done;
        };
        let checked = self.initiator_ppk_answered(&peer, p).and_then(|()| {
            let ppk = self.ppk_in_use().cloned();
            self.verify_peer(ctx, &peer, &idr, &auth, &p.certs, (false, ppk.as_ref()))
        });
        let remote_id = match checked {
            Ok(id) => id,
            Err(reason) => {
                // §2.21.2: tell the responder in a separate INFORMATIONAL exchange, once.
                let refusal = vec![notify(NotifyType::AUTHENTICATION_FAILED)];
                self.asks.push(Ask::Once(ExchangeType::INFORMATIONAL, refusal));
                self.auth_failed(ctx, reason);
                return Next::Done;
            }
        };
        if let LocalAuth::Eap(client) = &peer.local_auth {
            return self.start_eap_client(ctx, client, child, (idr, remote_id), p, false);
        }
        self.auth_complete_as_initiator(ctx, remote_id, child, p)
    }

    /// The initiator's end of IKE_AUTH, the responder authenticated: the SA is up, with the virtual
    /// IPs of the CP reply and the CHILD SA of the answer.
    pub(crate) fn auth_complete_as_initiator(
        &mut self,
        ctx: &mut Ctx<'_>,
        remote_id: Identity,
        child: Option<Box<ChildOffer>>,
        p: &Collected,
    ) -> Next {
        // RFC 5685 §6: the gateway authenticated and redirects us; this IKE SA goes.
        if let Some(n) = p.notifies.iter().find(|n| n.notify_type == NotifyType::REDIRECT) {
            if let Some(name) = self.name().map(str::to_owned) {
                let to = crate::redirect::redirect_target(&n.data);
                ctx.out.events.push_back(Event::Redirect { sa: self.handle, name, to });
            }
            self.asks.push(Ask::Once(ExchangeType::INFORMATIONAL, vec![Payload::Delete(DeletePayload::ike())]));
            self.close(ctx, DownReason::Redirected);
            return Next::Done;
        }
        self.peer_id = Some(remote_id);
        if let Err(e) = self.apply_ppk(ctx) {
            self.auth_failed(ctx, e);
            return Next::Done;
        }
        if let Some(crate::resume::Resumed::Client { ppk_used }) = self.resumption() {
            let ppk_used = *ppk_used;
            if let Some(keys) = self.keys.as_deref_mut() {
                keys.ppk_used = ppk_used;
            }
            self.resumed = true;
        }
        if let Some(peer) = self.peer.clone() {
            self.keep_ticket(ctx, &peer, p);
        }
        self.state = State::Established;
        if let Some(peer) = self.peer.clone() {
            self.mobike_agreed(&peer, p);
        }
        if !self.read_cp_reply(ctx, p) {
            self.asks.push(Ask::Once(ExchangeType::INFORMATIONAL, vec![Payload::Delete(DeletePayload::ike())]));
            return Next::Done;
        }
        if let Some(info) = self.info() {
            ctx.out.events.push_back(Event::IkeSaUp { sa: self.handle, info });
            self.schedule_ike_rekey(ctx);
        }
        // Without a CHILD SA in IKE_AUTH (childless, RFC 6023) every child comes by CREATE_CHILD_SA.
        let first = usize::from(child.is_some());
        if let Some(offer) = child {
            self.conclude_child_offer(ctx, *offer, p);
        }
        self.queue_children_from(ctx, first);
        Next::Done
    }

    /// Checks the peer's AUTH (and certificate chain) over its signed octets; returns its identity or
    /// the reason, which stays local (§2.21.2).
    fn verify_peer(
        &self,
        ctx: &Ctx<'_>,
        peer: &PeerConfig,
        id: &IdPayload,
        auth: &AuthPayload,
        certs: &[CertPayload],
        (peer_is_initiator, ppk): (bool, Option<&oxswan_crypto::Secret>),
    ) -> core::result::Result<Identity, AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        let init = keys.handshake.as_deref().ok_or(AuthError::NoKeys)?;
        let identity = id.identity().map_err(|e| AuthError::MalformedIdentity(e.to_string()))?;
        if let Some(want) = &peer.remote_id
            && !same_identity(want, &identity)
        {
            return Err(AuthError::WrongIdentity {
                got: crate::cert::identity_string(&identity),
                want: crate::cert::identity_string(want),
            });
        }
        let (message, nonce, sk_p) = if peer_is_initiator {
            (&init.request, &init.nr, &init.keys.sk_pi)
        } else {
            (&init.response, &init.ni, &init.keys.sk_pr)
        };
        let id_body = id.auth_octets();
        let octets = SignedOctets {
            message,
            nonce,
            sk_p: sk_p.expose(),
            id_body: &id_body,
            ppk: ppk.map(oxswan_crypto::Secret::expose),
            int_auth: init.intermediate.int_auth().as_deref(),
        }
        .compute(ctx.provider.prf.as_ref(), init.suite.prf)?;
        let actx = AuthCtx {
            provider: ctx.provider,
            prf: init.suite.prf,
            unix_now: ctx.unix_now,
            ours: &peer.local_id,
            peer: Some(&identity),
            peer_hashes: self.peer_hashes.as_deref(),
        };
        remote_authenticator(peer, ctx.credentials).verify(&actx, &octets, auth, certs)?;
        Ok(identity)
    }

    /// The initiator's IKE_AUTH request, as responder: picks the connection by the identities,
    /// verifies the peer (or starts EAP with it, §2.16), authenticates us, and answers the CP and
    /// CHILD SA parts.
    pub(crate) fn handle_auth_request(&mut self, ctx: &mut Ctx<'_>, p: Collected) -> Option<Vec<Payload>> {
        if let Some(rounds) = self.eap.take() {
            return self.eap_round(ctx, *rounds, p);
        }
        if let Some(crate::resume::Resumed::Gateway(state)) = self.resumption() {
            let state = state.clone();
            return Some(self.handle_resumed_auth_request(ctx, &state, &p));
        }
        let Some(idi) = p.idi.clone() else {
            self.close(ctx, DownReason::Protocol("IKE_AUTH without IDi".into()));
            return Some(vec![notify(NotifyType::INVALID_SYNTAX)]);
        };
        let identity = match idi.identity() {
            Ok(id) => id,
            Err(e) => return Some(self.refuse_auth(ctx, AuthError::MalformedIdentity(e.to_string()))),
        };
        let wanted_idr = p.idr.as_ref().and_then(|i| i.identity().ok());
        let Some(keys) = self.keys.as_ref() else { return Some(self.refuse_auth(ctx, AuthError::NoKeys)) };
        let negotiated = keys.proposal.clone();
        // §2.16: an initiator without AUTH wants EAP.
        let wants_eap = p.auth.is_none();
        // Pick the connection: the first whose remote identity admits IDi, whose local identity is the
        // IDr the initiator asked for (if any), which accepts the negotiated IKE proposal, and which
        // runs EAP exactly when the initiator asks for it.
        let fits = |c: &PeerConfig| {
            c.remote_id.as_ref().is_none_or(|r| same_identity(r, &identity))
                && wanted_idr.as_ref().is_none_or(|w| same_identity(w, &c.local_id))
                && select_proposal(&c.ike_proposals, core::slice::from_ref(&negotiated), false).is_some()
        };
        let eap = |c: &PeerConfig| matches!(c.remote_auth, RemoteAuth::Eap(_) | RemoteAuth::EapRelay(_));
        let candidate = ctx.peers.iter().find(|c| fits(c) && eap(c) == wants_eap).cloned();
        let Some(peer) = candidate else {
            if wants_eap {
                return Some(self.refuse_auth(ctx, AuthError::NoAuthPayload));
            }
            let id = crate::cert::identity_string(&identity);
            let asked = wanted_idr.as_ref().map(crate::cert::identity_string);
            return Some(self.refuse_auth(ctx, AuthError::NoConnection { id, asked }));
        };
        self.peer = Some(peer.clone());
        let Some(auth) = p.auth.clone() else {
            return self.start_eap_server(ctx, peer, idi, identity, p);
        };
        let checked = self.responder_ppk(ctx, &peer, &p, &auth).and_then(|(ppk, auth)| {
            let id = self.verify_peer(ctx, &peer, &idi, &auth, &p.certs, (true, ppk.as_ref()))?;
            Ok((id, ppk))
        });
        let remote_id = match checked {
            Ok((id, ppk)) => {
                self.set_ppk(ppk);
                id
            }
            Err(reason) => return Some(self.refuse_auth(ctx, reason)),
        };
        self.peer_id = Some(remote_id);
        let out = match self.our_identity_as_responder(ctx, &peer) {
            Ok((out, _)) => out,
            Err(e) => return Some(self.refuse_auth(ctx, e)),
        };
        self.vips.owner = crate::cert::identity_string(&identity);
        Some(self.auth_complete_as_responder(ctx, &peer, &p, out))
    }

    /// Refuses the initiator (§2.21.2): the reason stays local, the answer is AUTHENTICATION_FAILED.
    pub(crate) fn refuse_auth(&mut self, ctx: &mut Ctx<'_>, reason: AuthError) -> Vec<Payload> {
        self.auth_failed(ctx, reason);
        vec![notify(NotifyType::AUTHENTICATION_FAILED)]
    }

    /// `{ IDr, [CERT+], AUTH }` by the connection's method, and IDr's octets for a later AUTH.
    pub(crate) fn our_identity_as_responder(
        &self,
        ctx: &Ctx<'_>,
        peer: &PeerConfig,
    ) -> core::result::Result<(Vec<Payload>, Vec<u8>), AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        let init = keys.handshake.as_deref().ok_or(AuthError::NoKeys)?;
        let idr = IdPayload::from_identity(&peer.local_id);
        let id_body = idr.auth_octets();
        let octets = SignedOctets {
            message: &init.response,
            nonce: &init.ni,
            sk_p: init.keys.sk_pr.expose(),
            id_body: &id_body,
            ppk: init.ppk.as_ref().map(oxswan_crypto::Secret::expose),
            int_auth: init.intermediate.int_auth().as_deref(),
        }
        .compute(ctx.provider.prf.as_ref(), init.suite.prf)?;
        let used_ppk = init.ppk.is_some();
        let theirs = self.peer_id.clone();
        let our_auth = self.make_auth(ctx, peer, &octets, theirs.as_ref())?;
        let mut out = vec![Payload::IdR(idr)];
        if let LocalAuth::Cert(cert) = &peer.local_auth {
            out.extend(cert_payloads(&cert.chain));
        }
        out.push(Payload::Auth(our_auth));
        // RFC 8784 §3: an empty PPK_IDENTITY says the PPK was used.
        if used_ppk {
            out.push(notify(NotifyType::PPK_IDENTITY));
        }
        Ok((out, id_body))
    }

    /// The responder's end of IKE_AUTH, the initiator authenticated: `out` (our identity and
    /// AUTH), the CP reply, and the CHILD SA.
    pub(crate) fn auth_complete_as_responder(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: &PeerConfig,
        p: &Collected,
        mut out: Vec<Payload>,
    ) -> Vec<Payload> {
        // RFC 6023 §3, as strongSwan: `never` refuses an IKE_AUTH without a CHILD SA, `force` one
        // with; the IKE SA fails with INVALID_SYNTAX.
        let childless = p.sa.is_none() && p.tsi.is_none() && p.tsr.is_none();
        let refused = match peer.childless {
            Childless::Never => childless.then_some("a childless IKE SA, and childless = never"),
            Childless::Force => (!childless).then_some("a CHILD SA in IKE_AUTH, and childless = force"),
            Childless::Allow | Childless::Prefer => None,
        };
        if let Some(why) = refused {
            self.close(ctx, DownReason::Protocol(format!("the initiator asked for {why}")));
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        }
        // RFC 5685 §6: the client is authenticated, and goes to another gateway; this SA ends
        // with our answer (no CP, no CHILD SA: the new gateway makes them).
        if let Some(to) = peer.redirect.as_ref().filter(|to| self.peer_redirect.may_send_to(to)) {
            out.push(Payload::Notify(to.notify(&[])));
            ctx.out.redirects = ctx.out.redirects.saturating_add(1);
            self.close(ctx, DownReason::Redirected);
            return out;
        }
        if let Err(e) = self.apply_ppk(ctx) {
            return self.refuse_auth(ctx, e);
        }
        match self.answer_cp_request(ctx, peer, p) {
            Ok(cp) => out.extend(cp),
            Err(failure) => return vec![failure],
        }
        self.state = State::Established;
        self.just_established = true;
        self.initial_contact = p.has(NotifyType::INITIAL_CONTACT);
        self.announced_initial_contact = self.initial_contact;
        if let Some(ticket) = self.ticket_for_client(ctx, peer, p) {
            out.push(ticket);
        }
        // RFC 4555 §3.3: in the last IKE_AUTH response, when the initiator announced it too.
        self.mobike_agreed(peer, p);
        if self.mobike {
            out.extend(self.mobike_offer(ctx, peer));
        }
        if let Some(info) = self.info() {
            ctx.out.events.push_back(Event::IkeSaUp { sa: self.handle, info });
            self.schedule_ike_rekey(ctx);
        }
        out.extend(self.respond_child_in_auth(ctx, peer, p));
        out
    }
}

/// Whether a client offers EAP-only authentication (RFC 5998 §4): only when it can run a method
/// that authenticates the gateway too and makes a key (EAP-TLS).
fn offers_eap_only(client: &crate::config::EapClient) -> bool {
    client.tls.is_some()
        && (client.methods.is_empty() || client.methods.iter().any(|m| m.is_mutual() && m.is_key_generating()))
}

/// How we prove our identity on this connection.
fn local_authenticator<'a>(peer: &'a PeerConfig, credentials: &'a dyn Credentials) -> Box<dyn Authenticator + 'a> {
    match &peer.local_auth {
        LocalAuth::Psk(k) => Box::new(SharedKeyAuth { fixed: Some(k), credentials }),
        LocalAuth::SharedKey => Box::new(SharedKeyAuth { fixed: None, credentials }),
        LocalAuth::Cert(c) => Box::new(PubkeyAuth { local: Some(c), trust: None, rsa_pss: peer.rsa_pss }),
        // Only after the method, with its key (eap.rs); never over the first round's octets.
        LocalAuth::Eap(_) => Box::new(Refuse),
    }
}

/// How the peer must prove its identity on this connection.
fn remote_authenticator<'a>(peer: &'a PeerConfig, credentials: &'a dyn Credentials) -> Box<dyn Authenticator + 'a> {
    match &peer.remote_auth {
        RemoteAuth::Psk(k) => Box::new(SharedKeyAuth { fixed: Some(k), credentials }),
        RemoteAuth::SharedKey => Box::new(SharedKeyAuth { fixed: None, credentials }),
        RemoteAuth::Cert(t) => Box::new(PubkeyAuth { local: None, trust: Some(t), rsa_pss: peer.rsa_pss }),
        RemoteAuth::Eap(_) | RemoteAuth::EapRelay(_) => Box::new(Refuse),
    }
}

/// The AUTH of an EAP side outside the EAP rounds: there is none to make or accept.
struct Refuse;

impl Authenticator for Refuse {
    fn build(&self, _ctx: &AuthCtx<'_>, _octets: &[u8]) -> core::result::Result<AuthPayload, AuthError> {
        Err(AuthError::EapMissing("the EAP method's key"))
    }

    fn verify(
        &self,
        _ctx: &AuthCtx<'_>,
        _octets: &[u8],
        auth: &AuthPayload,
        _certs: &[CertPayload],
    ) -> core::result::Result<(), AuthError> {
        Err(AuthError::WrongMethod { got: format!("{:?}", auth.method), want: "EAP" })
    }
}

fn cert_payloads(chain: &[Vec<u8>]) -> impl Iterator<Item = Payload> + '_ {
    chain.iter().map(|der| Payload::Cert(CertPayload { encoding: CertEncoding::X509_SIGNATURE, data: der.clone() }))
}
