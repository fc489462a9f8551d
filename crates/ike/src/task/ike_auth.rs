//! IKE_AUTH (RFC 7296 §1.2, §2.15, §2.21.2): identities, certificates, AUTH with a PSK or a
//! signature (RFC 7427), INITIAL_CONTACT, and the first CHILD SA riding on the exchange
//! ([`super::child_create`]).

use oxswan_crypto::auth::{psk_auth, scheme_hash, sign_auth, sign_auth_with, signed_octets, verify_auth, verify_psk};
use oxswan_crypto::proposal::select_proposal;
use oxswan_crypto::provider::{KeyType, SignatureScheme};
use oxswan_wire::id::IdPayload;
use oxswan_wire::payloads::{AuthPayload, CertPayload, CertReqPayload};
use oxswan_wire::{AuthMethod, CertEncoding, ExchangeType, Identity, NotifyType, Payload};

use super::{ChildOffer, Collected, InFlight, Next, notify};
use crate::config::{LocalAuth, PeerConfig, RemoteAuth};
use crate::error::{IkeError, Result};
use crate::event::{DownReason, Event};
use crate::sa::{Ask, Ctx, Origin, SaCore, State};

impl SaCore {
    /// The IKE_AUTH request, after IKE_SA_INIT: `{ IDi, [CERT+], [CERTREQ], [IDr], AUTH,
    /// [N(INITIAL_CONTACT)], [N(USE_TRANSPORT_MODE)], SA, TSi, TSr }`.
    pub(crate) fn auth_request(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig) -> Result<Next> {
        let keys = self.keys.as_ref().ok_or(IkeError::NoKeys)?;
        let init = &keys.init;
        let idi = IdPayload::from_identity(&peer.local_id);
        let mut payloads = vec![Payload::IdI(idi.clone())];
        if let LocalAuth::Cert(cert) = &peer.local_auth {
            payloads.extend(cert_payloads(&cert.chain));
        }
        if let RemoteAuth::Cert(trust) = &peer.remote_auth {
            payloads.push(Payload::CertReq(CertReqPayload {
                encoding: CertEncoding::X509_SIGNATURE,
                data: trust.certreq_hashes(),
            }));
        }
        if let Some(r) = &peer.remote_id {
            payloads.push(Payload::IdR(IdPayload::from_identity(r)));
        }
        let octets = signed_octets(
            &init.request,
            &init.nr,
            ctx.provider.prf.as_ref(),
            init.suite.prf,
            init.keys.sk_pi.expose(),
            &idi.auth_octets(),
        )?;
        payloads.push(Payload::Auth(self.make_auth(ctx, peer, &octets)?));
        if peer.initial_contact && self.origin != Origin::Reauthentication {
            payloads.push(notify(NotifyType::INITIAL_CONTACT));
        }
        let offer = match peer.children.first() {
            Some(_) => Some(Box::new(self.child_offer(ctx, peer, 0, None)?)),
            None => None,
        };
        if let Some(o) = &offer {
            payloads.extend(o.payloads(Vec::new()));
        }
        self.state = State::Connecting;
        Ok(Next::Send { exchange: ExchangeType::IKE_AUTH, payloads, in_flight: InFlight::Auth { child: offer } })
    }

    fn make_auth(&self, ctx: &Ctx<'_>, peer: &PeerConfig, octets: &[u8]) -> Result<AuthPayload> {
        let keys = self.keys.as_ref().ok_or(IkeError::NoKeys)?;
        Ok(match &peer.local_auth {
            LocalAuth::Psk(psk) => AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: psk_auth(ctx.provider.prf.as_ref(), keys.init.suite.prf, psk.expose(), octets)?.expose().to_vec(),
            },
            LocalAuth::Cert(cert) => {
                // RFC 7427 §4: Digital Signature with a hash the peer announced; without the notify,
                // or without a common hash, the classic method of the key (RFC 4754 for ECDSA).
                // aws-lc-rs makes no SHA-1 signatures, so RSA and Ed25519 keys use Digital Signature
                // with our preferred hash either way.
                let key_type = cert.key.key_type();
                let announced = self.peer_hashes.as_ref().and_then(|hashes| {
                    schemes_for(key_type, peer.rsa_pss).iter().find(|s| hashes.contains(&scheme_hash(**s)))
                });
                match (announced, key_type) {
                    (Some(scheme), _) => sign_auth_with(cert.key.as_ref(), *scheme, octets)?,
                    (None, KeyType::EcdsaP256) => {
                        sign_auth(cert.key.as_ref(), AuthMethod::ECDSA_SHA256_P256, false, octets)?
                    }
                    (None, KeyType::EcdsaP384) => {
                        sign_auth(cert.key.as_ref(), AuthMethod::ECDSA_SHA384_P384, false, octets)?
                    }
                    (None, KeyType::EcdsaP521) => {
                        sign_auth(cert.key.as_ref(), AuthMethod::ECDSA_SHA512_P521, false, octets)?
                    }
                    (None, _) => sign_auth(cert.key.as_ref(), AuthMethod::DIGITAL_SIGNATURE, peer.rsa_pss, octets)?,
                }
            }
        })
    }

    /// The responder's IKE_AUTH answer: `{ IDr, [CERT+], AUTH, SA, TSi, TSr }`, or an error notify.
    pub(crate) fn handle_auth_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        child: Option<Box<ChildOffer>>,
        p: &Collected,
    ) -> Next {
        let Some(peer) = self.peer.clone() else { return Next::Done };
        // An error notify without AUTH: the responder refused us (§2.21.2) or the exchange.
        let (Some(idr), Some(auth)) = (p.idr.clone(), p.auth.clone()) else {
            let reason = p.error().unwrap_or(NotifyType::INVALID_SYNTAX);
            if reason == NotifyType::AUTHENTICATION_FAILED {
                ctx.out.events.push_back(Event::AuthFailed {
                    sa: self.handle,
                    peer: self.remote,
                    reason: "peer sent AUTHENTICATION_FAILED".into(),
                });
            }
            self.close(ctx, DownReason::PeerNotify(reason));
            return Next::Done;
        };
        let remote_id = match self.verify_peer(ctx, &peer, &idr, &auth, &p.certs, false) {
            Ok(id) => id,
            Err(reason) => {
                // §2.21.2: tell the responder in a separate INFORMATIONAL exchange, once.
                let refusal = vec![notify(NotifyType::AUTHENTICATION_FAILED)];
                self.asks.push(Ask::Once(ExchangeType::INFORMATIONAL, refusal));
                self.auth_failed(ctx, reason);
                return Next::Done;
            }
        };
        self.peer_id = Some(remote_id);
        self.state = State::Established;
        if let Some(info) = self.info() {
            ctx.out.events.push_back(Event::IkeSaUp { sa: self.handle, info });
            self.schedule_ike_rekey(ctx);
        }
        if let Some(offer) = child {
            self.conclude_child_offer(ctx, *offer, p);
        }
        self.queue_more_children(ctx);
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
        peer_is_initiator: bool,
    ) -> core::result::Result<Identity, String> {
        let keys = self.keys.as_ref().ok_or("no keys")?;
        let init = &keys.init;
        let identity = id.identity().map_err(|e| format!("malformed identity: {e}"))?;
        if let Some(want) = &peer.remote_id {
            if !same_identity(want, &identity) {
                return Err(format!(
                    "peer identity {} is not the configured {}",
                    crate::cert::identity_string(&identity),
                    crate::cert::identity_string(want)
                ));
            }
        }
        let (message, nonce, sk_p) = if peer_is_initiator {
            (&init.request, &init.nr, &init.keys.sk_pi)
        } else {
            (&init.response, &init.ni, &init.keys.sk_pr)
        };
        let octets =
            signed_octets(message, nonce, ctx.provider.prf.as_ref(), init.suite.prf, sk_p.expose(), &id.auth_octets())
                .map_err(|e| e.to_string())?;
        match &peer.remote_auth {
            RemoteAuth::Psk(psk) => {
                if auth.method != AuthMethod::SHARED_KEY_MIC {
                    return Err(format!("peer used AUTH method {:?}, PSK expected", auth.method));
                }
                verify_psk(ctx.provider.prf.as_ref(), init.suite.prf, psk.expose(), &octets, &auth.data)
                    .map_err(|_| "PSK authentication data does not verify (wrong PSK?)".to_string())?;
            }
            RemoteAuth::Cert(trust) => {
                if auth.method == AuthMethod::SHARED_KEY_MIC {
                    return Err("peer used a PSK, a certificate is required".into());
                }
                let mut x509 = certs.iter().filter(|c| c.encoding == CertEncoding::X509_SIGNATURE);
                let end_entity = x509.next().ok_or("peer sent no certificate")?;
                let intermediates: Vec<Vec<u8>> = x509.map(|c| c.data.clone()).collect();
                let cert = trust
                    .verify(&end_entity.data, &intermediates, ctx.unix_now)
                    .map_err(|e| format!("certificate: {e}"))?;
                if !cert.matches(&identity) {
                    return Err(format!(
                        "identity {} is not in the peer's certificate",
                        crate::cert::identity_string(&identity)
                    ));
                }
                verify_auth(ctx.provider.signature.as_ref(), &cert.spki, auth, &octets)
                    .map_err(|e| format!("signature: {e}"))?;
            }
        }
        Ok(identity)
    }

    /// The initiator's IKE_AUTH request, as responder: picks the connection by the identities,
    /// verifies the peer, authenticates us, and answers the CHILD SA part.
    pub(crate) fn handle_auth_request(&mut self, ctx: &mut Ctx<'_>, p: Collected) -> Vec<Payload> {
        let refuse = |s: &mut Self, ctx: &mut Ctx<'_>, reason: String| {
            s.auth_failed(ctx, reason);
            vec![notify(NotifyType::AUTHENTICATION_FAILED)]
        };
        let Some(idi) = p.idi.clone() else {
            self.close(ctx, DownReason::Protocol("IKE_AUTH without IDi".into()));
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let Some(auth) = p.auth.clone() else {
            // EAP (no AUTH from the initiator, §2.16) is not offered yet.
            return refuse(self, ctx, "no AUTH payload (EAP is not supported)".into());
        };
        let Ok(identity) = idi.identity() else {
            return refuse(self, ctx, "malformed IDi".into());
        };
        let wanted_idr = p.idr.as_ref().and_then(|i| i.identity().ok());
        let Some(keys) = self.keys.as_ref() else { return refuse(self, ctx, "no keys".into()) };
        let negotiated = keys.init.proposal.clone();
        // Pick the connection: the first whose remote identity admits IDi, whose local identity is the
        // IDr the initiator asked for (if any), and which accepts the negotiated IKE proposal.
        let candidate = ctx
            .peers
            .iter()
            .find(|c| {
                c.remote_id.as_ref().is_none_or(|r| same_identity(r, &identity))
                    && wanted_idr.as_ref().is_none_or(|w| same_identity(w, &c.local_id))
                    && select_proposal(&c.ike_proposals, core::slice::from_ref(&negotiated), false).is_some()
            })
            .cloned();
        let Some(peer) = candidate else {
            return refuse(
                self,
                ctx,
                match &wanted_idr {
                    Some(w) => format!(
                        "no connection for {} asking for us as {}",
                        crate::cert::identity_string(&identity),
                        crate::cert::identity_string(w)
                    ),
                    None => format!("no connection for identity {}", crate::cert::identity_string(&identity)),
                },
            );
        };
        self.peer = Some(peer.clone());
        let remote_id = match self.verify_peer(ctx, &peer, &idi, &auth, &p.certs, true) {
            Ok(id) => id,
            Err(reason) => return refuse(self, ctx, reason),
        };
        self.peer_id = Some(remote_id);
        // Our side.
        let Some(keys) = self.keys.as_ref() else { return refuse(self, ctx, "no keys".into()) };
        let init = &keys.init;
        let idr = IdPayload::from_identity(&peer.local_id);
        let octets = match signed_octets(
            &init.response,
            &init.ni,
            ctx.provider.prf.as_ref(),
            init.suite.prf,
            init.keys.sk_pr.expose(),
            &idr.auth_octets(),
        ) {
            Ok(o) => o,
            Err(e) => return refuse(self, ctx, e.to_string()),
        };
        let our_auth = match self.make_auth(ctx, &peer, &octets) {
            Ok(a) => a,
            Err(e) => return refuse(self, ctx, format!("cannot sign: {e}")),
        };
        let mut out = vec![Payload::IdR(idr)];
        if let LocalAuth::Cert(cert) = &peer.local_auth {
            out.extend(cert_payloads(&cert.chain));
        }
        out.push(Payload::Auth(our_auth));
        self.state = State::Established;
        self.initial_contact = p.has(NotifyType::INITIAL_CONTACT);
        if let Some(info) = self.info() {
            ctx.out.events.push_back(Event::IkeSaUp { sa: self.handle, info });
            self.schedule_ike_rekey(ctx);
        }
        out.extend(self.respond_child_in_auth(ctx, &peer, &p));
        out
    }
}

/// The RFC 7427 schemes a key can sign with, our preference first.
fn schemes_for(key_type: KeyType, rsa_pss: bool) -> &'static [SignatureScheme] {
    use SignatureScheme as S;
    match key_type {
        KeyType::Rsa(_) if rsa_pss => &[S::RsaPssSha256, S::RsaPssSha384, S::RsaPssSha512],
        KeyType::Rsa(_) => &[S::RsaPkcs1Sha256, S::RsaPkcs1Sha384, S::RsaPkcs1Sha512],
        KeyType::EcdsaP256 => &[S::EcdsaP256Sha256],
        KeyType::EcdsaP384 => &[S::EcdsaP384Sha384],
        KeyType::EcdsaP521 => &[S::EcdsaP521Sha512],
        KeyType::Ed25519 => &[S::Ed25519],
    }
}

fn cert_payloads(chain: &[Vec<u8>]) -> impl Iterator<Item = Payload> + '_ {
    chain.iter().map(|der| Payload::Cert(CertPayload { encoding: CertEncoding::X509_SIGNATURE, data: der.clone() }))
}

/// Identity comparison as configured: FQDN and email case-insensitively (DNS names and the domain
/// part of mail addresses are; strongSwan compares both ways), others byte for byte.
pub(crate) fn same_identity(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Fqdn(x), Identity::Fqdn(y)) | (Identity::Email(x), Identity::Email(y)) => x.eq_ignore_ascii_case(y),
        (Identity::Dn(x), Identity::Dn(y)) => crate::cert::dn_equal(x, y),
        _ => a == b,
    }
}
