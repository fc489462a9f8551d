//! The interface between the EAP layer ([`crate::EapServer`], [`crate::EapPeer`]) and the
//! methods.
//!
//! The EAP layer owns Codes, Identifiers, EAP-Identity, Notification, Nak and the choice of a
//! method (RFC 3748 §2, §4, §5.1–5.3); a method sees only its own Type-Data, one packet at a time,
//! and answers with the next Type-Data or an outcome. A method may run any number of rounds and
//! carry any data that fits a packet; one that must split larger messages (EAP-TLS, RFC 5216
//! §2.1.5, [`crate::tls`]) keeps its fragments and acknowledgements in its own state.

use oxswan_crypto::Secret;
use oxswan_crypto::provider::SecureRandom;

use crate::{EapError, EapSecrets, MethodType};

/// What a server method sees of the conversation.
pub(crate) struct ServerContext<'a> {
    /// The EAP identity (from EAP-Identity or the configuration).
    pub identity: &'a [u8],
    /// The Identifier of the Request being made (in `initiate`) or answered (in `process`).
    pub identifier: u8,
    /// The passwords.
    pub secrets: &'a dyn EapSecrets,
    /// Randomness for challenges.
    pub random: &'a dyn SecureRandom,
}

/// What a server method does with a Response.
#[derive(Debug)]
pub(crate) enum ServerOutcome {
    /// Send another Request of this method with this Type-Data.
    Request(Vec<u8>),
    /// The peer is authenticated as `identity`.
    Success { identity: Vec<u8>, msk: Option<Secret> },
    /// The peer is refused; the conversation ends with EAP-Failure. `identity` names the user the
    /// method tried, if it learned one.
    Failure { identity: Option<Vec<u8>>, error: EapError },
    /// The Response is malformed or out of order: it is refused and the method's state is as
    /// before, so that it can still take the right Response.
    Discard(EapError),
}

/// A server side method (RFC 3748 §2.4: the "authenticator" side).
pub(crate) trait ServerMethod: Send + Sync + core::fmt::Debug {
    /// Which method.
    fn method_type(&self) -> MethodType;
    /// The Type-Data of the first Request.
    fn initiate(&mut self, ctx: &ServerContext<'_>) -> Result<Vec<u8>, EapError>;
    /// The Type-Data of the peer's Response of this method.
    fn process(&mut self, type_data: &[u8], ctx: &ServerContext<'_>) -> ServerOutcome;
    /// The error the method has decided to end with while it waits for the peer to acknowledge
    /// it (MS-CHAPv2's Failure-Request is out).
    fn pending_error(&self) -> Option<&EapError> {
        None
    }
    /// The peer's certificate (DER, the end entity), once the method authenticated it by one
    /// (EAP-TLS).
    fn peer_certificate(&self) -> Option<&[u8]> {
        None
    }
}

/// What a peer method sees of the conversation.
pub(crate) struct PeerContext<'a> {
    /// Our EAP identity.
    pub identity: &'a [u8],
    /// The Identifier of the Request being answered.
    pub identifier: u8,
    /// Our password, looked up by our identity.
    pub secrets: &'a dyn EapSecrets,
    /// Randomness for challenges.
    pub random: &'a dyn SecureRandom,
}

/// What a peer method does with a Request.
#[derive(Debug)]
pub(crate) enum PeerOutcome {
    /// Answer with a Response of this method with this Type-Data.
    Respond(Vec<u8>),
    /// The method failed for good (the server did not authenticate, we have no secret).
    Failure(EapError),
    /// The Request is malformed or out of order: refused, the method's state is as before.
    Discard(EapError),
}

/// A peer side method.
pub(crate) trait PeerMethod: Send + Sync + core::fmt::Debug {
    /// Which method.
    fn method_type(&self) -> MethodType;
    /// The Type-Data of the server's Request of this method.
    fn process(&mut self, type_data: &[u8], ctx: &PeerContext<'_>) -> PeerOutcome;
    /// EAP-Success arrived: the MSK if the method has finished successfully on our side (RFC 3748
    /// §4.2 and RFC 4137 §4: a Success before that must not end the authentication), an error if
    /// not.
    fn success(&self) -> Result<Option<Secret>, EapError>;
    /// What the server told us when it refused us (a method's own failure message), printable.
    fn failure_message(&self) -> Option<&str> {
        None
    }
    /// EAP-Failure arrived: why, if the method knows better than "the server refused us" (EAP-TLS:
    /// our verdict on the server's certificate, or the alert the server sent).
    fn failure_error(&self) -> Option<EapError> {
        None
    }
    /// The server's certificate (DER, the end entity), once the method verified it (EAP-TLS).
    fn peer_certificate(&self) -> Option<&[u8]> {
        None
    }
}
