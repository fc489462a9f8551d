//! EAP as the gateway (RFC 7296 §2.16): we prove ourselves with IDr, CERT and AUTH in the first
//! response, then run the method over IKE_AUTH rounds, ourselves ([`EapBackend::Local`]) or by
//! passing each EAP message to an authentication server through the daemon
//! ([`EapBackend::Relay`], RADIUS per RFC 3579): then the response waits for the server's answer
//! ([`Event::EapRelay`], [`SaCore::relay_answered`]). Once the method succeeded the client's AUTH is
//! checked with its key, ours is made with it, and the first request's CP and CHILD SA parts are
//! answered.

use std::sync::Arc;

use oxswan_crypto::Secret;
use oxswan_eap::{EapServer, ServerConfig, ServerStep};
use oxswan_wire::id::IdPayload;
use oxswan_wire::payloads::{EapCode, EapPayload};
use oxswan_wire::{Identity, NotifyType, Payload};

use super::super::{Collected, notify};
use super::eap::Side;
use crate::auth::{AuthError, Authenticator, EapCredentials, MskAuth};
use crate::config::{PeerConfig, RemoteAuth};
use crate::event::{DownReason, Event, RelayAnswer};
use crate::sa::{Ctx, EapBackend, EapRelayState, EapResponder, SaCore, Timer, later};

/// How long a gateway waits for each round of the client's EAP (the half-open timer, re-armed).
/// Clients ask their users for passwords before they connect, and an authentication server
/// answers within its retransmissions (RADIUS: seconds), so a round is short.
const EAP_ROUND_WAIT: core::time::Duration = core::time::Duration::from_secs(30);

/// The wait for a round: a relayed one as long as the daemon's retransmissions to every server.
fn round_wait(peer: Option<&PeerConfig>) -> core::time::Duration {
    match peer.map(|p| &p.remote_auth) {
        Some(RemoteAuth::EapRelay(relay)) => relay.wait.max(EAP_ROUND_WAIT),
        _ => EAP_ROUND_WAIT,
    }
}

/// EAP type Identity (RFC 3748 §5.1).
const EAP_IDENTITY: u8 = 1;

impl SaCore {
    /// The first round as gateway: we authenticate ourselves and send the first EAP request, or
    /// (relayed, the identity known) wait for the server's.
    pub(crate) fn start_eap_server(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: Arc<PeerConfig>,
        idi: IdPayload,
        identity: Identity,
        p: Collected,
    ) -> Option<Vec<Payload>> {
        // RFC 8784 with EAP is not implemented: a connection that requires a PPK is not served
        // without one.
        if peer.ppk_required {
            return Some(self.refuse_auth(ctx, crate::auth::AuthError::Ppk("required, but not with EAP".into())));
        }
        let (mut out, idr_body) = match self.our_identity_as_responder(ctx, &peer) {
            Ok(x) => x,
            Err(e) => return Some(self.refuse_auth(ctx, e)),
        };
        // RFC 5998 §4: configured for it, the client offered EAP-only authentication, and every
        // method we may run authenticates us and makes a key: IDr alone, no CERT or AUTH.
        if let RemoteAuth::Eap(server) = &peer.remote_auth {
            let mutual = |m: &oxswan_eap::MethodType| m.is_mutual() && m.is_key_generating();
            if server.eap_only
                && p.has(NotifyType::EAP_ONLY_AUTHENTICATION)
                && !server.methods.is_empty()
                && server.methods.iter().all(mutual)
            {
                out.retain(|x| matches!(x, Payload::IdR(_)));
            }
        }
        let ike_identity = crate::cert::identity_string(&identity).into_bytes();
        let (backend, first_request) = match &peer.remote_auth {
            RemoteAuth::Eap(server) => {
                let config = ServerConfig {
                    methods: server.methods.clone(),
                    ask_identity: server.ask_identity,
                    identity: Some(ike_identity),
                    tls: server.tls.clone(),
                };
                match EapServer::start(config, ctx.provider.random.as_ref()) {
                    Ok((eap, first)) => (EapBackend::Local(Box::new(eap)), Some(first)),
                    Err(e) => return Some(self.refuse_auth(ctx, AuthError::Eap { user: None, reason: e.to_string() })),
                }
            }
            RemoteAuth::EapRelay(relay) if relay.ask_identity => {
                let mut id = [0u8; 1];
                if ctx.provider.random.fill(&mut id).is_err() {
                    return Some(self.refuse_auth(ctx, AuthError::Crypto("no randomness".into())));
                }
                let request = EapPayload { code: EapCode::REQUEST, identifier: id[0], data: vec![EAP_IDENTITY] };
                (EapBackend::Relay(EapRelayState::default()), Some(request))
            }
            RemoteAuth::EapRelay(_) => {
                // The IKE identity is the EAP identity: the server hears it as the client's
                // EAP-Response/Identity, and its first request completes our first response.
                let mut data = vec![EAP_IDENTITY];
                data.extend_from_slice(&ike_identity);
                let response = EapPayload { code: EapCode::RESPONSE, identifier: 0, data };
                self.relay(ctx, &ike_identity, response);
                let state = EapRelayState { identity: Some(ike_identity), prefix: out, last_identifier: 0 };
                out = Vec::new();
                (EapBackend::Relay(state), None)
            }
            _ => return Some(self.refuse_auth(ctx, AuthError::NoAuthPayload)),
        };
        let waiting = first_request.is_none();
        out.extend(first_request.map(Payload::Eap));
        self.eap = Some(Box::new(EapResponder {
            peer,
            backend,
            idi,
            identity,
            idr_body,
            first: p.child_part(),
            done: None,
            reported: false,
        }));
        self.timers.set(Timer::HalfOpen, later(ctx.now, round_wait(self.peer.as_deref())));
        (!waiting).then_some(out)
    }

    /// The client's EAP message goes to the authentication server.
    fn relay(&mut self, ctx: &mut Ctx<'_>, identity: &[u8], eap: EapPayload) {
        ctx.out.events.push_back(Event::EapRelay {
            sa: self.handle,
            identity: identity.to_vec(),
            eap,
            peer: self.remote,
            local: self.local,
        });
    }

    /// A later round as gateway: the client's EAP response, or its AUTH after the method.
    pub(crate) fn eap_round(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut rounds: EapResponder,
        p: Collected,
    ) -> Option<Vec<Payload>> {
        if let Some((eap_identity, msk)) = rounds.done.take() {
            return Some(self.eap_server_final(ctx, rounds, eap_identity, msk, &p));
        }
        let Some(response) = p.eap.as_ref() else {
            return Some(self.refuse_auth(ctx, AuthError::EapMissing("EAP")));
        };
        if let EapBackend::Relay(relay) = &mut rounds.backend {
            let identity = match relay.identity.clone() {
                Some(i) => i,
                // The answer to our EAP-Identity request (RFC 3748 §5.1).
                None => match response.data.split_first() {
                    Some((&EAP_IDENTITY, name)) if response.code == EapCode::RESPONSE && !name.is_empty() => {
                        relay.identity = Some(name.to_vec());
                        name.to_vec()
                    }
                    _ => return Some(self.refuse_auth(ctx, AuthError::EapMissing("an EAP-Response/Identity"))),
                },
            };
            relay.last_identifier = response.identifier;
            self.relay(ctx, &identity, response.clone());
            self.eap = Some(Box::new(rounds));
            self.timers.set(Timer::HalfOpen, later(ctx.now, round_wait(self.peer.as_deref())));
            return None;
        }
        let EapBackend::Local(server) = &mut rounds.backend else { return None };
        let secrets = EapCredentials(ctx.credentials);
        let step = server.handle(response, &secrets, ctx.provider.random.as_ref());
        Some(match step {
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
                self.timers.set(Timer::HalfOpen, later(ctx.now, round_wait(self.peer.as_deref())));
                vec![Payload::Eap(request)]
            }
            ServerStep::Success { packet, identity, msk, method } => {
                // RFC 5216 §5.2: after EAP-TLS the EAP identity must be the certificate's.
                if method == oxswan_eap::MethodType::Tls {
                    let name = String::from_utf8_lossy(&identity).into_owned();
                    let cert = match &rounds.backend {
                        EapBackend::Local(server) => server.peer_certificate(),
                        EapBackend::Relay(_) => None,
                    };
                    if !cert.is_some_and(|c| crate::cert::vouches_for(c, &name)) {
                        let reason = "the client's certificate is not for its EAP identity".to_owned();
                        return Some(self.refuse_auth(ctx, AuthError::Eap { user: Some(name), reason }));
                    }
                }
                self.eap_succeeded(ctx, rounds, &identity, msk, packet)
            }
            ServerStep::Failure { packet, identity, error } => {
                // The user the method failed for, or else the one EAP-Identity named.
                let known = match &rounds.backend {
                    EapBackend::Local(server) => server.identity().map(<[u8]>::to_vec),
                    EapBackend::Relay(relay) => relay.identity.clone(),
                };
                let user = identity.or(known).map(|i| String::from_utf8_lossy(&i).into_owned());
                let reason = AuthError::Eap { user, reason: error.to_string() };
                if rounds.reported {
                    self.close(ctx, DownReason::AuthFailed(reason));
                } else {
                    self.auth_failed(ctx, reason);
                }
                vec![Payload::Eap(packet)]
            }
        })
    }

    /// The method succeeded for `identity`: EAP-Success goes to the client, which then sends its
    /// AUTH; unless the connection admits another EAP identity only.
    fn eap_succeeded(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut rounds: EapResponder,
        identity: &[u8],
        msk: Option<Secret>,
        success: EapPayload,
    ) -> Vec<Payload> {
        let wanted = match &rounds.peer.remote_auth {
            RemoteAuth::Eap(server) => server.identity.clone(),
            RemoteAuth::EapRelay(relay) => relay.identity.clone(),
            _ => None,
        };
        let user = String::from_utf8_lossy(identity).into_owned();
        if let Some(want) = wanted.filter(|w| w.as_bytes() != identity) {
            let reason = format!("the connection admits the EAP identity {want} only");
            return self.refuse_auth(ctx, AuthError::Eap { user: Some(user), reason });
        }
        rounds.done = Some((user, msk));
        self.eap = Some(Box::new(rounds));
        self.timers.set(Timer::HalfOpen, later(ctx.now, round_wait(self.peer.as_deref())));
        vec![Payload::Eap(success)]
    }

    /// The authentication server answered the client's last EAP message: the waiting response.
    pub(crate) fn relay_answered(&mut self, ctx: &mut Ctx<'_>, answer: RelayAnswer) -> Vec<Payload> {
        let Some(mut rounds) = self.eap.take() else { return vec![notify(NotifyType::AUTHENTICATION_FAILED)] };
        let EapBackend::Relay(relay) = &mut rounds.backend else {
            return self.refuse_auth(ctx, AuthError::EapMissing("a relayed conversation"));
        };
        let mut out = core::mem::take(&mut relay.prefix);
        let user = relay.identity.clone().unwrap_or_default();
        let last_identifier = relay.last_identifier;
        let name = String::from_utf8_lossy(&user).into_owned();
        match answer {
            RelayAnswer::Challenge(request) if request.code == EapCode::REQUEST => {
                self.eap = Some(rounds);
                self.timers.set(Timer::HalfOpen, later(ctx.now, round_wait(self.peer.as_deref())));
                out.push(Payload::Eap(request));
                out
            }
            RelayAnswer::Challenge(_) => self.refuse_auth(
                ctx,
                AuthError::Eap { user: Some(name), reason: "the server's challenge is no EAP Request".into() },
            ),
            RelayAnswer::Accept { eap, msk, identity } => {
                let user = identity.filter(|i| !i.is_empty()).unwrap_or(user);
                // RFC 3579 §2.6.3: an Access-Accept carries EAP-Success; one without gets ours.
                let success = eap.filter(|e| e.code == EapCode::SUCCESS).unwrap_or(EapPayload {
                    code: EapCode::SUCCESS,
                    identifier: last_identifier,
                    data: Vec::new(),
                });
                out.extend(self.eap_succeeded(ctx, *rounds, &user, msk, success));
                out
            }
            RelayAnswer::Reject { eap, reason } => {
                self.auth_failed(ctx, AuthError::Eap { user: Some(name), reason });
                match eap.filter(|e| e.code == EapCode::FAILURE) {
                    Some(failure) => vec![Payload::Eap(failure)],
                    None => vec![notify(NotifyType::AUTHENTICATION_FAILED)],
                }
            }
            RelayAnswer::Timeout => {
                let reason = "no answer from the authentication server".to_owned();
                self.refuse_auth(ctx, AuthError::Eap { user: Some(name), reason })
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
