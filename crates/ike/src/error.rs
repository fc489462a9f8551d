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
    Unexpected(Unexpected),
    /// An IKE fragment that cannot be taken (RFC 7383 §2.6): too many, out of range, too long.
    #[error("IKE fragment: {0}")]
    Fragment(&'static str),
    /// A protected message before keys exist.
    #[error("no keys yet")]
    NoKeys,
    /// A message too long to send even as IKE fragments.
    #[error("message too long to fragment")]
    TooLongToFragment,
    /// Our AUTH payload cannot be made (no key for the identities, a signing failure).
    #[error("authentication: {0}")]
    Auth(String),
    /// No free inbound ESP SPI could be drawn (the random source repeats itself).
    #[error("no free inbound SPI")]
    SpiExhausted,
    /// No proposal of the peer is acceptable (RFC 7296 §2.7).
    #[error("none of the peer's proposals matches ours")]
    NoProposalChosen,
    /// The peer's nonce is outside 16..=256 octets or shorter than half the PRF key (RFC 7296 §2.10).
    #[error("nonce of {0} octets")]
    BadNonce(usize),
    /// A payload the exchange allows once came twice (RFC 7296 §3: INVALID_SYNTAX).
    #[error("a second {0} payload")]
    DuplicatePayload(PayloadType),
    /// A payload or notify does not have the form the RFC gives it (INVALID_SYNTAX).
    #[error("malformed: {0}")]
    Syntax(&'static str),
    /// The peer's KE payload holds no valid public value of its method (RFC 7296 §3.4).
    #[error("KE payload of {0:?} with an invalid public value: {1}")]
    BadKePayload(oxswan_wire::KeId, oxswan_crypto::CryptoError),
    /// The initiator's KE payload is not for the group we chose; we asked for this one instead.
    #[error("initiator must use KE method {0:?}")]
    InvalidKePayload(oxswan_wire::KeId),
    /// No connection of that name is configured.
    #[error("no such connection")]
    UnknownConnection,
    /// No IKE SA with that handle or SPI.
    #[error("no such IKE SA")]
    UnknownSa,
    /// The IKE SA was replaced (rekeyed or reauthenticated, §2.18, §2.8.3) and is being deleted:
    /// commands go to the SA that replaced it.
    #[error("the IKE SA was replaced and is being deleted")]
    ReplacedSa,
    /// The peer answered with an error notify.
    #[error("peer sent {0}")]
    PeerNotify(NotifyType),
    /// The IKE SA cannot move: MOBIKE (RFC 4555) was not agreed on it.
    #[error("MOBIKE is not enabled on this IKE SA")]
    NoMobike,
    /// No path to try: none of the addresses given pairs one of ours with one of the peer's of the
    /// same family.
    #[error("no usable path")]
    NoPath,
    /// The peer cannot be redirected (RFC 5685 §3, §5): it did not announce REDIRECT_SUPPORTED,
    /// or it is not the client of this IKE SA (we started its lineage).
    #[error("the peer did not announce redirect support (REDIRECT_SUPPORTED)")]
    RedirectUnsupported,
}

/// Why a message does not fit the state it reached (it is dropped, RFC 7296 §2.21, unless the
/// RFC names a notify for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unexpected {
    /// The Initiator flag says we sent it (§3.1).
    #[error("initiator flag of our own role")]
    OwnRole,
    /// A response when no request of ours is in flight.
    #[error("no request in flight")]
    NoRequestInFlight,
    /// An authentication server's answer when no request waits for one.
    #[error("no request waits for an authentication server")]
    NoDeferredRequest,
    /// A response to another message ID than the request in flight (§2.2).
    #[error("response to another message ID")]
    OtherMessageId,
    /// A response of another exchange type than the request in flight.
    #[error("response of another exchange type")]
    OtherExchange,
    /// A request outside the window (§2.3).
    #[error("request outside the window")]
    OutsideWindow,
    /// A different request with the message ID of the one answered last (§2.1).
    #[error("different request with the message ID of the last one")]
    ReusedMessageId,
    /// An exchange not valid in the SA's state (an unknown one is dropped unread, as strongSwan does).
    #[error("exchange not valid in this state")]
    NotInThisState,
    /// An IKE_SA_INIT response that does not answer our request.
    #[error("not the IKE_SA_INIT response to our request")]
    NotOurInitResponse,
    /// A zero responder SPI where one is needed.
    #[error("responder SPI is zero")]
    ZeroResponderSpi,
    /// A zero responder SPI outside an initial IKE_SA_INIT request.
    #[error("zero responder SPI outside IKE_SA_INIT")]
    ZeroSpiOutsideInit,
    /// The peer's SPI is not the one of the SA its message reached.
    #[error("peer SPI does not match")]
    PeerSpiMismatch,
    /// An SA payload of a response with other than one proposal (§3.3).
    #[error("SA payload of a response must hold one proposal")]
    NotOneProposal,
    /// The responder's KE payload is in another group than ours (§1.2).
    #[error("KE group differs from the one we sent")]
    OtherKeGroup,
    /// A request that cannot start an IKE SA (not an initial IKE_SA_INIT request).
    #[error("not an initial IKE_SA_INIT request")]
    NotInitialInit,
    /// An ESP SPI of the wrong size or in the reserved range (RFC 4303 §2.1).
    #[error("ESP SPI must be 4 octets and above 255")]
    BadEspSpi,
    /// A new IKE_SA_INIT request beyond the half-open limits (§2.6).
    #[error("half-open limit")]
    HalfOpenLimit,
    /// An initiator SA without its connection.
    #[error("initiator without configuration")]
    NoConfig,
    /// Additional key exchanges were chosen, but the peer did not announce
    /// INTERMEDIATE_EXCHANGE_SUPPORTED, the exchange that carries them (RFC 9370 §2.2.1).
    #[error("additional key exchanges without INTERMEDIATE_EXCHANGE_SUPPORTED")]
    NoIntermediateSupport,
    /// An IKE_INTERMEDIATE KE payload of another method than the one negotiated next (RFC 9370
    /// §2.2.2), or none.
    #[error("IKE_INTERMEDIATE without the KE payload of the next additional key exchange")]
    OtherAdditionalKe,
    /// An IKE_SA_INIT response's REDIRECT without our nonce (RFC 5685 §4.1: it may be forged).
    #[error("REDIRECT without our nonce")]
    RedirectNonce,
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
