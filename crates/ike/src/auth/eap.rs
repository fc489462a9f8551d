//! The AUTH payloads around EAP (RFC 7296 §2.16): once the method succeeded, each side's AUTH is
//! that of a shared key, the key being the method's MSK, or SK_pi / SK_pr for a method that makes
//! none (strongSwan does the same). And the users' secrets, looked up by EAP identity in the
//! endpoint's [`Credentials`] while the method runs.

use oxswan_crypto::Secret;
use oxswan_crypto::auth::{psk_auth, verify_psk};
use oxswan_wire::AuthMethod;
use oxswan_wire::payloads::{AuthPayload, CertPayload};

use super::{AuthCtx, AuthError, Authenticator, Credentials};

/// AUTH keyed by the EAP method's MSK (or SK_p).
pub(crate) struct MskAuth<'a> {
    pub key: &'a [u8],
}

impl Authenticator for MskAuth<'_> {
    fn build(&self, ctx: &AuthCtx<'_>, octets: &[u8]) -> Result<AuthPayload, AuthError> {
        let data = psk_auth(ctx.provider.prf.as_ref(), ctx.prf, self.key, octets)?;
        Ok(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: data.expose().to_vec() })
    }

    fn verify(
        &self,
        ctx: &AuthCtx<'_>,
        octets: &[u8],
        auth: &AuthPayload,
        _certs: &[CertPayload],
    ) -> Result<(), AuthError> {
        if auth.method != AuthMethod::SHARED_KEY_MIC {
            return Err(AuthError::WrongMethod { got: format!("{:?}", auth.method), want: "EAP (shared key MIC)" });
        }
        verify_psk(ctx.provider.prf.as_ref(), ctx.prf, self.key, octets, &auth.data).map_err(|_| AuthError::BadEapAuth)
    }
}

/// The endpoint's credentials as the EAP methods ask for them.
#[derive(Debug)]
pub(crate) struct EapCredentials<'a>(pub &'a dyn Credentials);

impl oxswan_eap::EapSecrets for EapCredentials<'_> {
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        self.0.eap_secret(identity)
    }
}
