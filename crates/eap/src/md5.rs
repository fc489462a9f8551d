//! EAP-MD5-Challenge (RFC 3748 §5.4): CHAP (RFC 1994) carried in EAP.
//!
//! Type-Data of both Request and Response: Value-Size (1 octet), Value, Name (the rest, optional).
//! The server's Value is a random challenge; the peer's is MD5(Identifier | secret | challenge)
//! (RFC 1994 §4.1), with the Identifier of the Request. It authenticates only the peer, derives no
//! key and its secret falls to an offline dictionary attack on one exchange; RFC 7296 §2.16
//! warns against such methods, so it is here for the few setups that still use it.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::method::{PeerContext, PeerMethod, PeerOutcome, ServerContext, ServerMethod, ServerOutcome};
use crate::{EapError, MethodType, packet, printable};

/// Length of the challenge we send: as strongSwan's eap-md5, 16 octets.
pub const CHALLENGE_LEN: usize = 16;
/// Length of an MD5 value.
pub const VALUE_LEN: usize = 16;

/// The CHAP response value (RFC 1994 §4.1): MD5 over the Identifier, the secret and the
/// challenge.
pub fn response_value(identifier: u8, secret: &[u8], challenge: &[u8]) -> [u8; VALUE_LEN] {
    let mut hasher = Md5::new();
    hasher.update([identifier]);
    hasher.update(secret);
    hasher.update(challenge);
    hasher.finalize().into()
}

/// Splits Type-Data into (Value, Name), checking Value-Size against the length.
fn parse(type_data: &[u8]) -> Result<(&[u8], &[u8]), EapError> {
    let (&size, rest) = type_data.split_first().ok_or(EapError::Malformed("EAP-MD5 without Value-Size"))?;
    if size == 0 {
        return Err(EapError::Malformed("EAP-MD5 Value-Size 0"));
    }
    if rest.len() < usize::from(size) {
        return Err(EapError::Malformed("EAP-MD5 Value-Size beyond the packet"));
    }
    Ok(rest.split_at(usize::from(size)))
}

/// The server side: one challenge, one response.
#[derive(Debug)]
pub(crate) struct Md5Server {
    /// The challenge we sent.
    challenge: [u8; CHALLENGE_LEN],
    /// The Identifier of the Request that carried it (part of the hashed value).
    identifier: u8,
}

impl Md5Server {
    pub(crate) fn new() -> Self {
        Self { challenge: [0; CHALLENGE_LEN], identifier: 0 }
    }
}

impl ServerMethod for Md5Server {
    fn method_type(&self) -> MethodType {
        MethodType::Md5
    }

    fn initiate(&mut self, ctx: &ServerContext<'_>) -> Result<Vec<u8>, EapError> {
        packet::fill(ctx.random, &mut self.challenge)?;
        self.identifier = ctx.identifier;
        let mut td = Vec::with_capacity(1 + CHALLENGE_LEN);
        td.push(CHALLENGE_LEN as u8);
        td.extend_from_slice(&self.challenge);
        Ok(td)
    }

    fn process(&mut self, type_data: &[u8], ctx: &ServerContext<'_>) -> ServerOutcome {
        let value = match parse(type_data) {
            Ok((value, _name)) => value,
            Err(e) => return ServerOutcome::Discard(e),
        };
        if value.len() != VALUE_LEN {
            return ServerOutcome::Discard(EapError::Malformed("EAP-MD5 response is not 16 octets"));
        }
        // The secret is that of the EAP identity: the Name field is the peer's own say, RFC 3748
        // §5.4 gives it no authority.
        let identity = ctx.identity.to_vec();
        let Some(secret) = ctx.secrets.eap_secret(&identity) else {
            let error = EapError::UnknownUser(printable(&identity));
            return ServerOutcome::Failure { identity: Some(identity), error };
        };
        let expected = Zeroizing::new(response_value(self.identifier, secret.expose(), &self.challenge));
        if bool::from(expected.as_slice().ct_eq(value)) {
            ServerOutcome::Success { identity, msk: None }
        } else {
            let error = EapError::WrongSecret(printable(&identity));
            ServerOutcome::Failure { identity: Some(identity), error }
        }
    }
}

/// The peer side: answers each challenge; done once it answered one.
#[derive(Debug)]
pub(crate) struct Md5Peer {
    answered: bool,
}

impl Md5Peer {
    pub(crate) fn new() -> Self {
        Self { answered: false }
    }
}

impl PeerMethod for Md5Peer {
    fn method_type(&self) -> MethodType {
        MethodType::Md5
    }

    fn process(&mut self, type_data: &[u8], ctx: &PeerContext<'_>) -> PeerOutcome {
        let challenge = match parse(type_data) {
            Ok((challenge, _name)) => challenge,
            Err(e) => return PeerOutcome::Discard(e),
        };
        let Some(secret) = ctx.secrets.eap_secret(ctx.identity) else {
            return PeerOutcome::Failure(EapError::UnknownUser(printable(ctx.identity)));
        };
        let value = Zeroizing::new(response_value(ctx.identifier, secret.expose(), challenge));
        let mut td = Vec::with_capacity(1 + VALUE_LEN);
        td.push(VALUE_LEN as u8);
        td.extend_from_slice(value.as_slice());
        self.answered = true;
        PeerOutcome::Respond(td)
    }

    fn success(&self) -> Result<Option<oxswan_crypto::Secret>, EapError> {
        if self.answered {
            Ok(None)
        } else {
            Err(EapError::Unexpected("EAP-Success before the MD5 challenge was answered".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// RFC 1994 has no test vector; this one is the CHAP computation as any implementation (e.g.
    /// `echo -n` of the concatenation into md5sum) gives it.
    #[test]
    fn value_is_md5_of_identifier_secret_challenge() {
        let mut concat = vec![0x2a];
        concat.extend_from_slice(b"secret");
        concat.extend_from_slice(&[1, 2, 3]);
        let direct: [u8; 16] = Md5::digest(&concat).into();
        assert_eq!(response_value(0x2a, b"secret", &[1, 2, 3]), direct);
        // MD5("") is the well-known d41d8cd9...
        assert_eq!(hex::encode(Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn parse_checks_value_size() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0]).is_err());
        assert!(parse(&[2, 1]).is_err());
        assert_eq!(parse(&[2, 1, 2, b'n']).unwrap(), (&[1u8, 2][..], &b"n"[..]));
    }
}
