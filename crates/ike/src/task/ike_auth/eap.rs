//! EAP in IKE_AUTH (RFC 7296 §2.16), both roles:
//!
//! ```text
//!   HDR, SK { IDi, [CERTREQ,] [IDr,] [CP(CFG_REQUEST),] SA, TSi, TSr }  -->   (no AUTH)
//!                              <--  HDR, SK { IDr, [CERT,] AUTH, EAP }
//!   HDR, SK { EAP }  -->
//!                              <--  HDR, SK { EAP (Request | Success) }      (as many rounds as the method takes)
//!   HDR, SK { AUTH }  -->                                                   (keyed by the MSK)
//!                              <--  HDR, SK { AUTH, [CP(CFG_REPLY),] SA, TSi, TSr }
//! ```
//!
//! The gateway proves itself first with its certificate; the client then runs the method, and
//! both last AUTH payloads are shared-key MICs over the usual signed octets with the method's MSK
//! as the key, or SK_pi / SK_pr when the method makes none (strongSwan does the same). The CP and
//! CHILD SA parts of the first request are answered in the last response.

use oxswan_crypto::Secret;
use oxswan_eap::{EapPeer, EapServer, PeerStep, ServerConfig, ServerStep};
use oxswan_wire::id::IdPayload;
use oxswan_wire::{ExchangeType, Identity, NotifyType, Payload};
use std::sync::Arc;

use super::super::{ChildOffer, Collected, InFlight, Next, notify};
use crate::auth::{AuthCtx, AuthError, Authenticator, EapCredentials, MskAuth, SignedOctets};
use crate::config::{EapClient, PeerConfig, RemoteAuth};
use crate::event::{DownReason, Event};
use crate::sa::{Ask, Ctx, EapResponder, SaCore, Timer, later};

/// How long a gateway waits for each round of the client's EAP (the half-open timer, re-armed).
/// Clients ask their users for passwords before they connect, so a round is short.
const EAP_ROUND_WAIT: core::time::Duration = core::time::Duration::from_secs(30);

/// The client's EAP rounds, in flight with each IKE_AUTH request.
#[derive(Debug)]
pub(crate) struct EapRounds {
    pub child: Option<Box<ChildOffer>>,
    peer: EapPeer,
    /// The gateway's IDr of the first answer, which its final AUTH covers.
    idr: IdPayload,
    /// Its authenticated identity.
    remote_id: Identity,
    /// Set once the method succeeded and our AUTH went out: the key the gateway's AUTH must
    /// verify with.
    key: Option<Secret>,
}

/// Which side's octets an AUTH covers.
#[derive(Clone, Copy)]
enum Side {
    Initiator,
    Responder,
}

impl SaCore {
    /// The signed octets of `side` with `id_body`, and the key of an AUTH after EAP: the MSK, or
    /// that side's SK_p without one (§2.16).
    fn eap_octets(
        &self,
        ctx: &Ctx<'_>,
        side: Side,
        id_body: &[u8],
        msk: Option<&Secret>,
    ) -> Result<(Vec<u8>, Secret), AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        let init = &keys.init;
        let (message, nonce, sk_p) = match side {
            Side::Initiator => (&init.request, &init.nr, &init.keys.sk_pi),
            Side::Responder => (&init.response, &init.ni, &init.keys.sk_pr),
        };
        let octets = SignedOctets { message, nonce, sk_p: sk_p.expose(), id_body, ppk: None, int_auth: None }
            .compute(ctx.provider.prf.as_ref(), init.suite.prf)?;
        Ok((octets, msk.cloned().unwrap_or_else(|| sk_p.clone())))
    }

    fn auth_ctx<'a>(&'a self, ctx: &'a Ctx<'_>, peer: &'a PeerConfig) -> Result<AuthCtx<'a>, AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        Ok(AuthCtx {
            provider: ctx.provider,
            prf: keys.init.suite.prf,
            unix_now: ctx.unix_now,
            ours: &peer.local_id,
            peer: self.peer_id.as_ref(),
            peer_hashes: self.peer_hashes.as_deref(),
        })
    }

    // ---- the client ------------------------------------------------------------------------

    /// The gateway authenticated itself and sent the first EAP request: the method starts.
    pub(crate) fn start_eap_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &EapClient,
        child: Option<Box<ChildOffer>>,
        idr: IdPayload,
        remote_id: Identity,
        p: &Collected,
    ) -> Next {
        let Some(peer) = self.peer.clone() else { return Next::Done };
        let identity = client.identity.clone().unwrap_or_else(|| crate::cert::identity_string(&peer.local_id));
        let eap = EapPeer::new(oxswan_eap::PeerConfig {
            identity: identity.into_bytes(),
            methods: client.methods.clone(),
            tls: None,
        });
        let rounds = EapRounds { child, peer: eap, idr, remote_id, key: None };
        self.eap_client_step(ctx, rounds, p)
    }

    /// The gateway's answer in the EAP rounds.
    pub(crate) fn handle_eap_answer(&mut self, ctx: &mut Ctx<'_>, rounds: EapRounds, p: &Collected) -> Next {
        if rounds.key.is_some() {
            return self.eap_client_final(ctx, rounds, p);
        }
        self.eap_client_step(ctx, rounds, p)
    }

    /// One EAP request of the gateway, answered; at the method's success our AUTH goes out.
    fn eap_client_step(&mut self, ctx: &mut Ctx<'_>, mut rounds: EapRounds, p: &Collected) -> Next {
        let Some(request) = p.eap.as_ref() else {
            if p.error().is_some() {
                self.refused_by_responder(ctx, p);
            } else {
                self.auth_failed(ctx, AuthError::EapMissing("EAP"));
            }
            return Next::Done;
        };
        let secrets = EapCredentials(ctx.credentials);
        match rounds.peer.handle(request, &secrets, ctx.provider.random.as_ref()) {
            PeerStep::Respond(response) => Next::Send {
                exchange: ExchangeType::IKE_AUTH,
                payloads: vec![Payload::Eap(response)],
                in_flight: InFlight::AuthEap(Box::new(rounds)),
            },
            PeerStep::Success { msk, .. } => {
                let Some(peer) = self.peer.clone() else { return Next::Done };
                let idi = IdPayload::from_identity(&peer.local_id);
                let auth = self.eap_octets(ctx, Side::Initiator, &idi.auth_octets(), msk.as_ref()).and_then(
                    |(octets, key)| {
                        let actx = self.auth_ctx(ctx, &peer)?;
                        MskAuth { key: key.expose() }.build(&actx, &octets)
                    },
                );
                // The gateway's AUTH is keyed by the MSK too, or by its own SK_pr.
                let sk_pr = self.keys.as_ref().map(|k| k.init.keys.sk_pr.clone());
                match (auth, msk.or(sk_pr)) {
                    (Ok(auth), Some(key)) => {
                        rounds.key = Some(key);
                        Next::Send {
                            exchange: ExchangeType::IKE_AUTH,
                            payloads: vec![Payload::Auth(auth)],
                            in_flight: InFlight::AuthEap(Box::new(rounds)),
                        }
                    }
                    (auth, _) => {
                        self.auth_failed(ctx, auth.err().unwrap_or(AuthError::NoKeys));
                        Next::Done
                    }
                }
            }
            PeerStep::Failure(error) => {
                let user = error.identity().map(str::to_owned);
                self.auth_failed(ctx, AuthError::Eap { user, reason: error.to_string() });
                Next::Done
            }
        }
    }

    /// The gateway's last answer: its AUTH keyed by the method's key, the CP reply and the child.
    fn eap_client_final(&mut self, ctx: &mut Ctx<'_>, rounds: EapRounds, p: &Collected) -> Next {
        let Some(peer) = self.peer.clone() else { return Next::Done };
        let Some(auth) = p.auth.as_ref() else {
            self.refused_by_responder(ctx, p);
            return Next::Done;
        };
        let key = rounds.key.clone().unwrap_or_else(|| Secret::new(Vec::new()));
        let verified =
            self.eap_octets(ctx, Side::Responder, &rounds.idr.auth_octets(), Some(&key)).and_then(|(octets, key)| {
                let actx = self.auth_ctx(ctx, &peer)?;
                MskAuth { key: key.expose() }.verify(&actx, &octets, auth, &[])
            });
        if let Err(reason) = verified {
            self.asks.push(Ask::Once(ExchangeType::INFORMATIONAL, vec![notify(NotifyType::AUTHENTICATION_FAILED)]));
            self.auth_failed(ctx, reason);
            return Next::Done;
        }
        self.auth_complete_as_initiator(ctx, rounds.remote_id, rounds.child, p)
    }

    // ---- the gateway -----------------------------------------------------------------------

    /// The first round as gateway: we authenticate ourselves and send the first EAP request.
    pub(crate) fn start_eap_server(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: Arc<PeerConfig>,
        idi: IdPayload,
        identity: Identity,
        p: Collected,
    ) -> Vec<Payload> {
        let RemoteAuth::Eap(server) = &peer.remote_auth else {
            return self.refuse_auth(ctx, AuthError::NoAuthPayload);
        };
        let (mut out, idr_body) = match self.our_identity_as_responder(ctx, &peer) {
            Ok(x) => x,
            Err(e) => return self.refuse_auth(ctx, e),
        };
        let config = ServerConfig {
            methods: server.methods.clone(),
            ask_identity: server.ask_identity,
            identity: Some(crate::cert::identity_string(&identity).into_bytes()),
            tls: None,
        };
        let (eap, first_request) = match EapServer::start(config, ctx.provider.random.as_ref()) {
            Ok(x) => x,
            Err(e) => return self.refuse_auth(ctx, AuthError::Eap { user: None, reason: e.to_string() }),
        };
        out.push(Payload::Eap(first_request));
        self.eap = Some(Box::new(EapResponder {
            peer,
            server: eap,
            idi,
            identity,
            idr_body,
            first: p.child_part(),
            done: None,
            reported: false,
        }));
        self.timers.set(Timer::HalfOpen, later(ctx.now, EAP_ROUND_WAIT));
        out
    }

    /// A later round as gateway: the client's EAP response, or its AUTH after the method.
    pub(crate) fn eap_round(&mut self, ctx: &mut Ctx<'_>, mut rounds: EapResponder, p: Collected) -> Vec<Payload> {
        if let Some((eap_identity, msk)) = rounds.done.take() {
            return self.eap_server_final(ctx, rounds, eap_identity, msk, &p);
        }
        let Some(response) = p.eap.as_ref() else {
            return self.refuse_auth(ctx, AuthError::EapMissing("EAP"));
        };
        let secrets = EapCredentials(ctx.credentials);
        match rounds.server.handle(response, &secrets, ctx.provider.random.as_ref()) {
            ServerStep::Continue(request) => {
                // A failure told to the client before the method's end (MSCHAPv2's Failure-Request):
                // the log names the user now, as charon and Windows never answer it.
                if let Some(reason) = rounds.pending_failure().filter(|_| !rounds.reported) {
                    rounds.reported = true;
                    ctx.out.events.push_back(Event::AuthFailed {
                        sa: self.handle,
                        peer: self.remote,
                        reason: reason.to_string(),
                    });
                }
                self.eap = Some(Box::new(rounds));
                self.timers.set(Timer::HalfOpen, later(ctx.now, EAP_ROUND_WAIT));
                vec![Payload::Eap(request)]
            }
            ServerStep::Success { packet, identity, msk, .. } => {
                rounds.done = Some((String::from_utf8_lossy(&identity).into_owned(), msk));
                self.eap = Some(Box::new(rounds));
                self.timers.set(Timer::HalfOpen, later(ctx.now, EAP_ROUND_WAIT));
                vec![Payload::Eap(packet)]
            }
            ServerStep::Failure { packet, identity, error } => {
                let user = identity.map(|i| String::from_utf8_lossy(&i).into_owned());
                let reason = AuthError::Eap { user, reason: error.to_string() };
                if rounds.reported {
                    self.close(ctx, DownReason::AuthFailed(reason));
                } else {
                    self.auth_failed(ctx, reason);
                }
                vec![Payload::Eap(packet)]
            }
        }
    }

    /// The client's AUTH after the method: checked with the method's key, ours made with it, and
    /// the first request's CP and CHILD SA answered.
    fn eap_server_final(
        &mut self,
        ctx: &mut Ctx<'_>,
        rounds: EapResponder,
        eap_identity: String,
        msk: Option<Secret>,
        p: &Collected,
    ) -> Vec<Payload> {
        let Some(auth) = p.auth.as_ref() else {
            return self.refuse_auth(ctx, AuthError::EapMissing("AUTH"));
        };
        let peer = rounds.peer.clone();
        self.peer_id = Some(rounds.identity.clone());
        let checked =
            self.eap_octets(ctx, Side::Initiator, &rounds.idi.auth_octets(), msk.as_ref()).and_then(|(octets, key)| {
                let actx = self.auth_ctx(ctx, &peer)?;
                MskAuth { key: key.expose() }.verify(&actx, &octets, auth, &[])
            });
        if let Err(reason) = checked {
            return self.refuse_auth(ctx, reason);
        }
        let ours = self.eap_octets(ctx, Side::Responder, &rounds.idr_body, msk.as_ref()).and_then(|(octets, key)| {
            let actx = self.auth_ctx(ctx, &peer)?;
            MskAuth { key: key.expose() }.build(&actx, &octets)
        });
        let ours = match ours {
            Ok(a) => a,
            Err(e) => return self.refuse_auth(ctx, e),
        };
        self.vips.owner.clone_from(&eap_identity);
        self.eap_identity = Some(eap_identity);
        let first = Collected::collect(rounds.first);
        self.auth_complete_as_responder(ctx, &peer, &first, vec![Payload::Auth(ours)])
    }
}
