//! Errors of the engine, each naming the notify the RFC wants sent (or none).

use oxswan_wire::{NotifyType, PayloadType};

/// Result of the engine.
pub type Result<T, E = IkeError> = core::result::Result<T, E>;

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IkeError {
    /// The message did not parse.
    #[error("malformed message: {0}")]
    Wire(#[from] oxswan_wire::Error),
    /// A cryptographic operation failed (bad peer KE value, integrity failure, ...).
    #[error("crypto: {0}")]
    Crypto(#[from] oxswan_crypto::CryptoError),
    /// A payload the exchange requires is missing (RFC 7296 §2.21.1/§3: INVALID_SYNTAX).
    #[error("missing {0} payload")]
    MissingPayload(PayloadType),
    /// The message is not what this state expects (wrong exchange, flags, SPI or message ID).
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// No proposal of the peer is acceptable (RFC 7296 §2.7).
    #[error("none of the peer's proposals matches ours")]
    NoProposalChosen,
    /// The peer's nonce is outside 16..=256 octets or shorter than half the PRF key (RFC 7296 §2.10).
    #[error("nonce of {0} octets")]
    BadNonce(usize),
    /// The initiator's KE payload is not for the group we chose; we asked for this one instead.
    #[error("initiator must use KE method {0:?}")]
    InvalidKePayload(oxswan_wire::KeId),
    /// No connection of that name is configured.
    #[error("no such connection")]
    UnknownConnection,
    /// No IKE SA with that handle or SPI.
    #[error("no such IKE SA")]
    UnknownSa,
    /// The peer answered with an error notify.
    #[error("peer sent {0}")]
    PeerNotify(NotifyType),
}

impl IkeError {
    /// The notify to send in response to a request that failed this way, if any.
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            IkeError::NoProposalChosen => Some(NotifyType::NO_PROPOSAL_CHOSEN),
            IkeError::InvalidKePayload(_) => Some(NotifyType::INVALID_KE_PAYLOAD),
            IkeError::MissingPayload(_) | IkeError::BadNonce(_) => Some(NotifyType::INVALID_SYNTAX),
            IkeError::Wire(e) => match e.disposition() {
                oxswan_wire::Disposition::Notify(n) => Some(n),
                oxswan_wire::Disposition::Drop => None,
            },
            _ => None,
        }
    }
}
