//! Errors: of the codec, of building a request, and why an answer was dropped or not usable.

use std::net::SocketAddr;

use crate::code::Code;

/// Why octets are not a well-formed RADIUS packet (RFC 2865 §3, §5), or why a packet cannot be
/// encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Fewer than 20 or more than 4096 octets (RFC 2865 §3).
    #[error("RADIUS packet of {0} octets, outside 20..=4096")]
    BadPacketLength(usize),
    /// The Length field is outside 20..=4096 or more than the octets received (RFC 2865 §3: such a
    /// packet is silently discarded).
    #[error("RADIUS Length field {length} with {available} octets received")]
    BadLengthField {
        /// The Length field.
        length: usize,
        /// The octets received.
        available: usize,
    },
    /// An attribute's Length is below 2 or runs past the packet (RFC 2865 §5).
    #[error("RADIUS attribute at offset {offset}: length {length} does not fit")]
    BadAttributeLength {
        /// Offset of the attribute in the packet.
        offset: usize,
        /// Its Length octet (0 if the octet itself is missing).
        length: usize,
    },
    /// A value longer than the 253 octets an attribute holds.
    #[error("RADIUS attribute {kind}: value of {length} octets, more than 253")]
    ValueTooLong {
        /// The attribute type.
        kind: u8,
        /// The value's length.
        length: usize,
    },
    /// The encoded packet would exceed 4096 octets.
    #[error("RADIUS packet would be {0} octets, more than 4096")]
    TooLarge(usize),
    /// A request was asked to be signed as a response, or the other way round.
    #[error("RADIUS code {0:?} cannot be signed this way")]
    WrongCodeForSigning(Code),
    /// An MS-MPPE key (RFC 2548 §2.4.2) is not of a length that can be encrypted.
    #[error("MS-MPPE key of {0} octets cannot be encrypted")]
    BadMppeKey(usize),
}

/// Why a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RadiusError {
    /// The configuration names no server.
    #[error("no RADIUS server configured")]
    NoServers,
    /// Neither a NAS-Identifier nor a NAS-IP-Address is configured: RFC 2865 §4.1 requires one.
    #[error("neither NAS-Identifier nor NAS-IP-Address configured")]
    NoNasIdentification,
    /// An [`crate::EapSession`] names a server the configuration does not have.
    #[error("no such RADIUS server")]
    UnknownServer,
    /// The random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// All 256 identifiers towards every server that could take the request are in flight.
    #[error("all 256 RADIUS identifiers in flight")]
    IdentifiersExhausted,
    /// The EAP message could not be encoded.
    #[error("EAP message cannot be encoded: {0}")]
    Eap(String),
    /// A value is too long for its attribute or the packet for RADIUS.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Why a received datagram was dropped without an answer (RFC 2865 §3 and RFC 3579 §3.2: silently
/// discarded). Kept as [`crate::Stats::last_drop`] and counted in [`crate::Stats`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a well-formed RADIUS packet.
    #[error("malformed: {0}")]
    Malformed(CodecError),
    /// A code a client never receives (a request, or unknown).
    #[error("code {0:?} is not an answer")]
    NotAnAnswer(Code),
    /// From an address that is no configured server's authentication or accounting address.
    #[error("from {0}, which is no configured RADIUS server")]
    UnexpectedSource(SocketAddr),
    /// No request in flight to that server has this identifier (a late duplicate, or forged).
    #[error("identifier {0} matches no request in flight")]
    UnknownIdentifier(u8),
    /// An accounting answer to an access request or the other way round.
    #[error("code {0:?} does not answer the request")]
    WrongCode(Code),
    /// The Response Authenticator (RFC 2865 §3, RFC 2866 §3) does not verify.
    #[error("Response Authenticator does not verify")]
    BadResponseAuthenticator,
    /// The Message-Authenticator (RFC 3579 §3.2) does not verify, or is not 16 octets.
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    /// More than one Message-Authenticator (RFC 3579 §3.3's table: exactly one).
    #[error("more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
    /// No Message-Authenticator where one is required: with EAP-Message (RFC 3579 §3.2), and in
    /// every Access-Accept and Access-Challenge.
    #[error("Message-Authenticator missing")]
    MissingMessageAuthenticator,
}

/// An authenticated answer whose content cannot be used: the request is over, as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAnswer {
    /// An Access-Challenge without EAP-Message (RFC 3579 §3.3's table requires one or more).
    #[error("Access-Challenge without EAP-Message")]
    MissingEap,
    /// The reassembled EAP-Message is no EAP packet.
    #[error("EAP-Message is not EAP: {0}")]
    BadEap(String),
    /// An EAP code that does not fit the RADIUS code (e.g. an Access-Accept with EAP-Failure).
    #[error("EAP code {eap} in RADIUS {code:?}")]
    UnexpectedEap {
        /// The RADIUS code.
        code: Code,
        /// The EAP code.
        eap: u8,
    },
    /// An Access-Accept to the request that opened the conversation, before any method ran: as
    /// strongSwan's eap-radius (`initiate()`), taken as a failure (some servers answer so when
    /// they authenticate nothing).
    #[error("Access-Accept before any EAP method ran")]
    AcceptWithoutChallenge,
}
