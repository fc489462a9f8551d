//! Post-quantum Preshared Keys in IKE_AUTH (RFC 8784): after both sides announced USE_PPK in
//! IKE_SA_INIT, the initiator names its PPK with PPK_IDENTITY and authenticates with SK_pi' =
//! prf+(PPK, SK_pi), adding NO_PPK_AUTH (its AUTH without the PPK) unless the PPK is required; a
//! responder that has that PPK answers with an empty PPK_IDENTITY and SK_pr', and both then use
//! SK_d' = prf+(PPK, SK_d), so that every CHILD SA's keys depend on the PPK. A responder without it
//! checks NO_PPK_AUTH instead, unless it requires the PPK. PPK_IDs are sent as PPK_ID_FIXED, as
//! strongSwan sends them.

use oxswan_crypto::Secret;
use oxswan_crypto::keys::prf_plus;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::AuthPayload;
use oxswan_wire::{NotifyType, Payload};

use super::super::Collected;
use crate::auth::AuthError;
use crate::config::PeerConfig;
use crate::sa::{Ctx, SaCore};

/// PPK_ID type of a PPK_IDENTITY notify for an ID both sides have configured (RFC 8784 §3).
const PPK_ID_FIXED: u8 = 2;

/// N(PPK_IDENTITY) naming `id`.
pub(super) fn ppk_identity(id: &[u8]) -> Payload {
    Payload::Notify(NotifyPayload::new(NotifyType::PPK_IDENTITY, [&[PPK_ID_FIXED][..], id].concat()))
}

/// The PPK_ID a PPK_IDENTITY notify names; `None` for another type or an empty ID.
fn parse_ppk_identity(data: &[u8]) -> Option<&[u8]> {
    match data.split_first() {
        Some((&PPK_ID_FIXED, id)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

fn ppk_error(why: impl Into<String>) -> AuthError {
    AuthError::Ppk(why.into())
}

impl SaCore {
    /// Both sides announced USE_PPK.
    fn ppk_negotiated(&self) -> bool {
        self.keys.as_ref().and_then(|k| k.handshake.as_ref()).is_some_and(|h| h.use_ppk)
    }

    /// The initiator's PPK for IKE_AUTH: `Ok(None)` to go without one (none configured, or the
    /// responder or our credentials lack it and it is not required).
    pub(super) fn initiator_ppk(&self, ctx: &Ctx<'_>, peer: &PeerConfig) -> Result<Option<Secret>, AuthError> {
        let Some(id) = &peer.ppk_id else {
            return if peer.ppk_required { Err(ppk_error("required, but no ppk_id is configured")) } else { Ok(None) };
        };
        if !self.ppk_negotiated() {
            return if peer.ppk_required {
                Err(ppk_error("required, but the responder does not support PPKs (no USE_PPK)"))
            } else {
                Ok(None)
            };
        }
        match ctx.credentials.ppk(id) {
            Some(k) => Ok(Some(k)),
            None if peer.ppk_required => {
                Err(ppk_error(format!("required, but no PPK for '{}'", String::from_utf8_lossy(id))))
            }
            None => Ok(None),
        }
    }

    /// The responder's PPK for the initiator's IKE_AUTH `p`, and the AUTH to check: the AUTH
    /// payload with the PPK, or without one the NO_PPK_AUTH data (or the AUTH payload if there is
    /// none); an error when the connection requires a PPK it does not get.
    pub(super) fn responder_ppk(
        &self,
        ctx: &Ctx<'_>,
        peer: &PeerConfig,
        p: &Collected,
        auth: &AuthPayload,
    ) -> Result<(Option<Secret>, AuthPayload), AuthError> {
        let negotiated = self.ppk_negotiated();
        let without = |why: &str| {
            if peer.ppk_required {
                return Err(ppk_error(format!("required, but {why}")));
            }
            // NO_PPK_AUTH counts only where PPKs were negotiated, as with strongSwan.
            let no_ppk = p.notifies.iter().find(|n| negotiated && n.notify_type == NotifyType::NO_PPK_AUTH);
            let auth = match no_ppk {
                Some(n) => AuthPayload { method: auth.method, data: n.data.clone() },
                None => auth.clone(),
            };
            Ok((None, auth))
        };
        if !negotiated {
            return without("the initiator does not use PPKs (no USE_PPK)");
        }
        let named = p.notifies.iter().find(|n| n.notify_type == NotifyType::PPK_IDENTITY);
        let Some(id) = named.and_then(|n| parse_ppk_identity(&n.data)) else {
            return without("the initiator named no PPK (no PPK_IDENTITY)");
        };
        if peer.ppk_id.as_deref().is_some_and(|want| want != id) {
            return without(&format!("the initiator named PPK '{}'", String::from_utf8_lossy(id)));
        }
        match ctx.credentials.ppk(id) {
            Some(k) => Ok((Some(k), auth.clone())),
            None => without(&format!("there is no PPK for '{}'", String::from_utf8_lossy(id))),
        }
    }

    /// The initiator's reading of the responder's answer: the PPK to check its AUTH with, which is
    /// ours if it answered with PPK_IDENTITY; without it ours is dropped, unless required.
    pub(super) fn initiator_ppk_answered(&mut self, peer: &PeerConfig, p: &Collected) -> Result<(), AuthError> {
        let used = p.has(NotifyType::PPK_IDENTITY);
        let Some(h) = self.keys.as_mut().and_then(|k| k.handshake.as_deref_mut()) else { return Ok(()) };
        match (h.ppk.is_some(), used) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(ppk_error("the responder answered with PPK_IDENTITY, but we used no PPK")),
            (true, false) if peer.ppk_required => Err(ppk_error("required, but the responder did not use it")),
            (true, false) => {
                h.ppk = None;
                Ok(())
            }
        }
    }

    /// The PPK in use for this IKE_AUTH, if any.
    pub(super) fn ppk_in_use(&self) -> Option<&Secret> {
        self.keys.as_ref().and_then(|k| k.handshake.as_ref()).and_then(|h| h.ppk.as_ref())
    }

    /// Records the PPK this IKE_AUTH uses.
    pub(super) fn set_ppk(&mut self, ppk: Option<Secret>) {
        if let Some(h) = self.keys.as_mut().and_then(|k| k.handshake.as_deref_mut()) {
            h.ppk = ppk;
        }
    }

    /// Both sides authenticated with the PPK: SK_d' = prf+(PPK, SK_d) (RFC 8784 §3.1), from which
    /// every CHILD SA and rekeyed IKE SA takes its keys. `Err` if it cannot be derived.
    pub(super) fn apply_ppk(&mut self, ctx: &Ctx<'_>) -> Result<bool, AuthError> {
        let Some(keys) = self.keys.as_deref_mut() else { return Ok(false) };
        let Some(h) = keys.handshake.as_deref_mut() else { return Ok(false) };
        let Some(ppk) = h.ppk.take() else { return Ok(false) };
        let len = keys.suite.prf.key_len();
        let sk_d = prf_plus(ctx.provider.prf.as_ref(), keys.suite.prf, ppk.expose(), &[keys.sk_d.expose()], len)?;
        keys.sk_d = sk_d.clone();
        h.keys.sk_d = sk_d;
        keys.ppk_used = true;
        Ok(true)
    }
}
