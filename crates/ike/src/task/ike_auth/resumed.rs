//! IKE_AUTH of session resumption (RFC 5723 §4, §5.1): the client asks for a ticket with
//! N(TICKET_REQUEST) and keeps the one the gateway sends in N(TICKET_LT_OPAQUE); after
//! IKE_SESSION_RESUME both sides authenticate with the resumed keys alone, `AUTH = prf(SK_px,
//! <SignedOctets>)` (Shared Key Message Integrity Code), with the identities of the ticket and no
//! certificate, PSK or EAP; the CP and CHILD SA parts are as in any IKE_AUTH.

use oxswan_wire::id::IdPayload;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::AuthPayload;
use oxswan_wire::{AuthMethod, Identity, NotifyType, Payload};

use super::super::{Collected, notify};
use crate::auth::{AuthError, SignedOctets, same_identity};
use crate::config::PeerConfig;
use crate::resume::{ClientTicket, Resumed, TicketState};
use crate::sa::{Ctx, SaCore};

impl SaCore {
    /// How the IKE SA being set up was resumed, if it was.
    pub(crate) fn resumption(&self) -> Option<&Resumed> {
        self.keys.as_ref()?.handshake.as_ref()?.resumed.as_deref()
    }

    /// The resumed AUTH of the initiator (`as_initiator`) or the responder over its IKE_SESSION_RESUME
    /// message, the other's nonce and its ID payload `id`.
    pub(super) fn resumed_auth(
        &self,
        ctx: &Ctx<'_>,
        as_initiator: bool,
        id: &IdPayload,
    ) -> core::result::Result<oxswan_crypto::Secret, AuthError> {
        let keys = self.keys.as_ref().ok_or(AuthError::NoKeys)?;
        let init = keys.handshake.as_deref().ok_or(AuthError::NoKeys)?;
        let (message, nonce, sk_p) = if as_initiator {
            (&init.request, &init.nr, &init.keys.sk_pi)
        } else {
            (&init.response, &init.ni, &init.keys.sk_pr)
        };
        let id_body = id.auth_octets();
        let octets = SignedOctets { message, nonce, sk_p: sk_p.expose(), id_body: &id_body, ppk: None, int_auth: None }
            .compute(ctx.provider.prf.as_ref(), init.suite.prf)?;
        crate::resume::resumed_auth(ctx.provider, init.suite.prf, sk_p, &octets)
            .map_err(|e| AuthError::Crypto(e.to_string()))
    }

    /// Our AUTH payload after resumption.
    pub(super) fn resumed_auth_payload(
        &self,
        ctx: &Ctx<'_>,
        as_initiator: bool,
        id: &IdPayload,
    ) -> core::result::Result<Payload, AuthError> {
        let mac = self.resumed_auth(ctx, as_initiator, id)?;
        Ok(Payload::Auth(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: mac.expose().to_vec() }))
    }

    /// Checks the peer's AUTH after resumption: the method, and the MAC over its octets.
    pub(super) fn check_resumed_auth(
        &self,
        ctx: &Ctx<'_>,
        peer_is_initiator: bool,
        id: &IdPayload,
        auth: &AuthPayload,
    ) -> core::result::Result<(), AuthError> {
        if auth.method != AuthMethod::SHARED_KEY_MIC {
            return Err(AuthError::WrongMethod { got: format!("{:?}", auth.method), want: "shared key (resumed)" });
        }
        let want = self.resumed_auth(ctx, peer_is_initiator, id)?;
        // Secret's equality does not stop at the first difference.
        if want != oxswan_crypto::Secret::from_slice(&auth.data) {
            return Err(AuthError::Crypto("the AUTH of the resumed IKE SA does not verify".into()));
        }
        Ok(())
    }

    /// The gateway's IKE_AUTH after IKE_SESSION_RESUME: the client must be the ticket's, on the
    /// ticket's connection, which must still allow resumption; then the answer as after any
    /// authentication, without EAP.
    pub(crate) fn handle_resumed_auth_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        state: &TicketState,
        p: &Collected,
    ) -> Vec<Payload> {
        let Some(idi) = p.idi.clone() else {
            return self.refuse_auth(ctx, AuthError::MalformedIdentity("IKE_AUTH without IDi".into()));
        };
        let identity = match idi.identity() {
            Ok(id) => id,
            Err(e) => return self.refuse_auth(ctx, AuthError::MalformedIdentity(e.to_string())),
        };
        // The client must be who the ticket was made for (RFC 5723 §5: the IDi of this IKE_AUTH is
        // the ticket's).
        if !same_identity(&state.idi, &identity) {
            return self.refuse_auth(
                ctx,
                AuthError::WrongIdentity {
                    got: crate::cert::identity_string(&identity),
                    want: crate::cert::identity_string(&state.idi),
                },
            );
        }
        let Some(peer) = ctx.peers.iter().find(|c| c.name == state.connection && c.resumption).cloned() else {
            let id = crate::cert::identity_string(&identity);
            return self.refuse_auth(ctx, AuthError::NoConnection { id, asked: None });
        };
        self.peer = Some(peer.clone());
        let Some(auth) = p.auth.clone() else { return self.refuse_auth(ctx, AuthError::NoAuthPayload) };
        if let Err(e) = self.check_resumed_auth(ctx, true, &idi, &auth) {
            return self.refuse_auth(ctx, e);
        }
        // The ticket's spelling of the identity, not the one sent now: status, the next ticket
        // and a later cut-off (`terminate`) see the identity as it was authenticated.
        self.peer_id = Some(state.idi.clone());
        self.eap_identity.clone_from(&state.eap_identity);
        self.vips.owner = state.eap_identity.clone().unwrap_or_else(|| crate::cert::identity_string(&identity));
        let idr = IdPayload::from_identity(&peer.local_id);
        let out = match self.resumed_auth_payload(ctx, false, &idr) {
            Ok(auth) => vec![Payload::IdR(idr), auth],
            Err(e) => return self.refuse_auth(ctx, e),
        };
        if let Some(keys) = self.keys.as_deref_mut() {
            keys.ppk_used = state.ppk_used;
        }
        self.resumed = true;
        self.auth_complete_as_responder(ctx, &peer, p, out)
    }

    /// The client's IKE_AUTH answer after IKE_SESSION_RESUME: the gateway's AUTH with the resumed
    /// keys. The identity it claims must be the connection's.
    pub(super) fn check_resumed_responder(
        &self,
        ctx: &Ctx<'_>,
        peer: &PeerConfig,
        p: &Collected,
    ) -> core::result::Result<Identity, AuthError> {
        let (Some(idr), Some(auth)) = (&p.idr, &p.auth) else { return Err(AuthError::NoAuthPayload) };
        let identity = idr.identity().map_err(|e| AuthError::MalformedIdentity(e.to_string()))?;
        if let Some(want) = &peer.remote_id
            && !same_identity(want, &identity)
        {
            return Err(AuthError::WrongIdentity {
                got: crate::cert::identity_string(&identity),
                want: crate::cert::identity_string(want),
            });
        }
        self.check_resumed_auth(ctx, false, idr, auth)?;
        Ok(identity)
    }

    /// As gateway, the answer to the client's N(TICKET_REQUEST) (RFC 5723 §4): a ticket of the IKE SA as
    /// it now is (its final SK_d), with its lifetime; TICKET_NACK when the connection gives none.
    pub(super) fn ticket_for_client(&self, ctx: &Ctx<'_>, peer: &PeerConfig, p: &Collected) -> Option<Payload> {
        if !p.has(NotifyType::TICKET_REQUEST) {
            return None;
        }
        let keys = self.keys.as_ref()?;
        let (true, Some(idi)) = (peer.resumption, self.peer_id.clone()) else {
            return Some(notify(NotifyType::TICKET_NACK));
        };
        let mut state = TicketState {
            id: [0; 16],
            issued_unix: 0,
            expires_unix: 0,
            connection: peer.name.clone(),
            idi,
            eap_identity: self.eap_identity.clone(),
            proposal: keys.proposal.clone(),
            sk_d: keys.sk_d.clone(),
            ppk_used: keys.ppk_used,
        };
        Some(match ctx.tickets.seal(ctx.provider, &mut state, ctx.unix_now) {
            Ok(ticket) => Payload::Notify(NotifyPayload::new(
                NotifyType::TICKET_LT_OPAQUE,
                crate::resume::lifetime_and_ticket(ctx.tickets.lifetime, &ticket),
            )),
            Err(_) => notify(NotifyType::TICKET_NACK),
        })
    }

    /// As client, keeps the ticket of the gateway's N(TICKET_LT_OPAQUE) for the connection, with
    /// the SK_d it goes with.
    pub(super) fn keep_ticket(&self, ctx: &mut Ctx<'_>, peer: &PeerConfig, p: &Collected) {
        let Some(n) = p.notifies.iter().find(|n| n.notify_type == NotifyType::TICKET_LT_OPAQUE) else { return };
        let (Some((lifetime, ticket)), Some(keys), true) =
            (crate::resume::read_lifetime_and_ticket(&n.data), self.keys.as_ref(), peer.resumption)
        else {
            return;
        };
        ctx.out.tickets.push(ClientTicket {
            connection: peer.name.clone(),
            ticket: ticket.to_vec(),
            expires: crate::sa::later(ctx.now, lifetime),
            proposal: keys.proposal.clone(),
            sk_d: keys.sk_d.clone(),
            ppk_used: keys.ppk_used,
        });
    }
}
