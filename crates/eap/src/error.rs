//! Why an EAP conversation failed.

use crate::MethodType;

/// Why an EAP conversation failed, or why a packet was refused. Identities in it are printable
/// renderings (control characters replaced); no variant ever carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EapError {
    /// No secret is configured for this identity (on the peer: for our own identity).
    #[error("no EAP secret for '{0}'")]
    UnknownUser(String),
    /// The peer's proof of the secret was wrong.
    #[error("EAP authentication of '{0}' failed: wrong secret")]
    WrongSecret(String),
    /// The peer's Nak named none of the server's remaining methods (RFC 3748 §5.3.1), or the
    /// peer accepts none that we implement.
    #[error("no EAP method acceptable to both sides")]
    NoCommonMethod,
    /// A field or length is wrong.
    #[error("malformed EAP packet: {0}")]
    Malformed(&'static str),
    /// A packet out of order, with the wrong identifier or the wrong code.
    #[error("unexpected EAP packet: {0}")]
    Unexpected(String),
    /// The MS-CHAPv2 Authenticator Response (RFC 2759 §8.7) did not prove that the server knows
    /// our password.
    #[error("the EAP server did not prove that it knows the secret")]
    ServerNotAuthenticated,
    /// The server sent EAP-Failure.
    #[error("the EAP server sent EAP-Failure")]
    PeerFailure,
    /// The peer ended the method before it succeeded (an MS-CHAPv2 Failure-Response while the
    /// server expected a Response or a Success-Response: for instance because our Authenticator
    /// Response did not verify, or because it gave up).
    #[error("EAP peer '{0}' aborted the method")]
    PeerAborted(String),
    /// The random source failed.
    #[error("random source failed")]
    Random,
    /// The method is not implemented (yet).
    #[error("EAP method {0} is not implemented")]
    Unsupported(MethodType),
    /// The TLS handshake of EAP-TLS failed: rustls's cause (a protocol error, or the alert the
    /// other side sent, RFC 5216 §2.1.3).
    #[error("EAP-TLS: {0}")]
    Tls(String),
    /// EAP-TLS: the other side's certificate was refused or missing (the webpki or rustls
    /// cause: unknown issuer, expired, not valid for the server name, none presented).
    #[error("EAP-TLS certificate refused: {0}")]
    Certificate(String),
    /// Something the other side sent is over one of our caps (EAP-TLS: the TLS Message Length,
    /// the reassembled message, the number of packets).
    #[error("{0} over its limit")]
    TooLarge(&'static str),
    /// The configuration cannot work (no method, no identity, an identity too long for a packet).
    #[error("EAP configuration: {0}")]
    Config(&'static str),
}

impl EapError {
    /// The user the error is about, for the log line naming who failed.
    pub fn identity(&self) -> Option<&str> {
        match self {
            EapError::UnknownUser(id) | EapError::WrongSecret(id) | EapError::PeerAborted(id) => Some(id),
            _ => None,
        }
    }
}
