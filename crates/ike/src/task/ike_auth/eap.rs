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
use oxswan_eap::{EapPeer, PeerStep};
use oxswan_wire::id::IdPayload;
use oxswan_wire::{ExchangeType, Identity, NotifyType, Payload};

use super::super::{ChildOffer, Collected, InFlight, Next, notify};
use crate::auth::{AuthCtx, AuthError, Authenticator, EapCredentials, MskAuth, SignedOctets};
use crate::config::{EapClient, PeerConfig};
use crate::sa::{Ask, Ctx, SaCore};

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
    /// The gateway sent no AUTH (RFC 5998): the method must authenticate it.
    eap_only: bool,
}

/// Which side's octets an AUTH covers.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Initiator,
    Responder,
}

impl SaCore {
    /// The signed octets of `side` with `id_body`, and the key of an AUTH after EAP: the MSK, or
    /// that side's SK_p without one (§2.16).
    pub(super) fn eap_octets(
        &self,
        ctx: &Ctx<'_>,
        side: Side,
        id_body: &[u8],
        msk: Option<&Secret>,
    ) -> Result<(Vec<u8>, Secret), AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        let init = keys.handshake.as_deref().ok_or(AuthError::NoKeys)?;
        let (message, nonce, sk_p) = match side {
            Side::Initiator => (&init.request, &init.nr, &init.keys.sk_pi),
            Side::Responder => (&init.response, &init.ni, &init.keys.sk_pr),
        };
        let octets = SignedOctets {
            message,
            nonce,
            sk_p: sk_p.expose(),
            id_body,
            ppk: None,
            int_auth: init.intermediate.int_auth().as_deref(),
        }
        .compute(ctx.provider.prf.as_ref(), init.suite.prf)?;
        Ok((octets, msk.cloned().unwrap_or_else(|| sk_p.clone())))
    }

    pub(super) fn auth_ctx<'a>(&'a self, ctx: &'a Ctx<'_>, peer: &'a PeerConfig) -> Result<AuthCtx<'a>, AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        Ok(AuthCtx {
            provider: ctx.provider,
            prf: keys.suite.prf,
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
        (idr, remote_id): (IdPayload, Identity),
        p: &Collected,
        eap_only: bool,
    ) -> Next {
        let Some(peer) = self.peer.clone() else { return Next::Done };
        let identity = client.identity.clone().unwrap_or_else(|| crate::cert::identity_string(&peer.local_id));
        // RFC 5998 §4: a gateway that did not authenticate itself gets no answer to a method that
        // would not authenticate it either (a password's MD5 or MSCHAPv2 response could be
        // attacked offline): only mutual, key-generating methods, the others are Nak'ed.
        let methods = if eap_only {
            let all =
                if client.methods.is_empty() { oxswan_eap::MethodType::ALL.to_vec() } else { client.methods.clone() };
            let mutual: Vec<_> = all.into_iter().filter(|m| m.is_mutual() && m.is_key_generating()).collect();
            if mutual.is_empty() {
                self.auth_failed(ctx, AuthError::EapMissing("a mutual method for EAP-only authentication"));
                return Next::Done;
            }
            mutual
        } else {
            client.methods.clone()
        };
        let eap =
            EapPeer::new(oxswan_eap::PeerConfig { identity: identity.into_bytes(), methods, tls: client.tls.clone() });
        let rounds = EapRounds { child, peer: eap, idr, remote_id, key: None, eap_only };
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
            PeerStep::Success { method, .. } if rounds.eap_only && !method.is_mutual() => {
                let reason = format!("EAP-only authentication with {method}, which does not authenticate the gateway");
                self.auth_failed(ctx, AuthError::Eap { user: None, reason });
                Next::Done
            }
            // RFC 5998 §4: without its AUTH, the gateway's IDr is vouched for by the method only:
            // the TLS server's certificate must be for it, whatever name the TLS check used.
            PeerStep::Success { .. }
                if rounds.eap_only
                    && !rounds
                        .peer
                        .server_certificate()
                        .is_some_and(|c| crate::cert::certificate_matches(c, &rounds.remote_id)) =>
            {
                let reason = format!(
                    "the gateway's TLS certificate is not for its identity {}",
                    crate::cert::identity_string(&rounds.remote_id)
                );
                self.auth_failed(ctx, AuthError::Eap { user: None, reason });
                Next::Done
            }
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
                let sk_pr = self.keys.as_ref().and_then(|k| k.handshake.as_ref()).map(|h| h.keys.sk_pr.clone());
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
}
