//! Authentication with a shared key (RFC 7296 §2.15, AUTH method 2): AUTH = prf(prf(Shared Secret,
//! "Key Pad for IKEv2"), <SignedOctets>).

use oxswan_crypto::Secret;
use oxswan_crypto::auth::{psk_auth, verify_psk};
use oxswan_wire::AuthMethod;
use oxswan_wire::payloads::{AuthPayload, CertPayload};

use super::{AuthCtx, AuthError, Authenticator, Credentials};
use crate::cert::identity_string;

/// A shared key: fixed for the connection, or looked up by the two identities when authenticating.
pub(crate) struct SharedKeyAuth<'a> {
    pub fixed: Option<&'a Secret>,
    pub credentials: &'a dyn Credentials,
}

impl SharedKeyAuth<'_> {
    fn key(&self, ctx: &AuthCtx<'_>) -> Result<Secret, AuthError> {
        if let Some(k) = self.fixed {
            return Ok(k.clone());
        }
        self.credentials.shared_key(ctx.ours, ctx.peer).ok_or_else(|| AuthError::NoSharedKey {
            ours: identity_string(ctx.ours),
            peer: ctx.peer.map_or_else(|| "%any".to_owned(), identity_string),
        })
    }
}

impl Authenticator for SharedKeyAuth<'_> {
    fn build(&self, ctx: &AuthCtx<'_>, octets: &[u8]) -> Result<AuthPayload, AuthError> {
        let key = self.key(ctx)?;
        let data = psk_auth(ctx.provider.prf.as_ref(), ctx.prf, key.expose(), octets)?;
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
            return Err(AuthError::WrongMethod { got: format!("{:?}", auth.method), want: "PSK" });
        }
        let key = self.key(ctx)?;
        verify_psk(ctx.provider.prf.as_ref(), ctx.prf, key.expose(), octets, &auth.data).map_err(|_| AuthError::BadPsk)
    }
}
