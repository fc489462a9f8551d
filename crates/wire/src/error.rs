//! Parse and emit errors, and what an engine should do about them.

use crate::types::{NotifyType, PayloadType};

/// Result of the codec.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Where in a message an error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Context {
    /// The fixed IKE header (RFC 7296 §3.1).
    Header,
    /// A payload, by type (the generic header or the body).
    Payload(PayloadType),
    /// A substructure of a payload: a proposal, transform, attribute, selector, ...
    Part(PayloadType, &'static str),
    /// An ESP packet (RFC 4303 §2).
    Esp,
    /// A UDP-encapsulated datagram on port 4500 (RFC 3948).
    UdpEncap,
}

impl core::fmt::Display for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Context::Header => f.write_str("IKE header"),
            Context::Payload(t) => write!(f, "{t} payload"),
            Context::Part(t, part) => write!(f, "{part} in {t} payload"),
            Context::Esp => f.write_str("ESP packet"),
            Context::UdpEncap => f.write_str("UDP-encapsulated datagram"),
        }
    }
}

/// Why bytes could not be parsed or a structure could not be emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The buffer ends before a field it must hold.
    #[error("truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the enclosing structure.
        available: usize,
    },
    /// A length field disagrees with the structure around it.
    #[error("bad length {length}: {reason}")]
    BadLength {
        /// The value of the length field (or the computed length).
        length: usize,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// Bytes are left over after a structure that must fill its container.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A field holds a value the RFC forbids.
    #[error("invalid {field}: {value}")]
    InvalidValue {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The major version is not 2 (RFC 7296 §3.1).
    #[error("major version {0} is not 2")]
    InvalidMajorVersion(u8),
    /// A payload with the critical bit set has a type this implementation does not know (RFC 7296 §2.5).
    #[error("unsupported critical payload {0}")]
    UnsupportedCriticalPayload(PayloadType),
    /// A payload must not appear where it was found (e.g. a second SK, or a payload after SK).
    #[error("unexpected payload {0}")]
    UnexpectedPayload(PayloadType),
    /// A structure is too large for its length field when emitting.
    #[error("{field} of {length} bytes does not fit its length field")]
    TooLong {
        /// The structure.
        field: &'static str,
        /// Its length.
        length: usize,
    },
}

/// A codec error: what is wrong, in which structure, and at which offset from the start of the message
/// (or packet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context} at offset {offset}: {kind}")]
pub struct Error {
    /// The structure being read or written.
    pub context: Context,
    /// Offset of the offending field from the start of the message.
    pub offset: usize,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What an engine should do with a message that failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Answer with this notify. RFC 7296 §2.21.2/§2.21.3: only when the message is a request and — for
    /// `INVALID_SYNTAX` — only once it was authenticated; otherwise drop it.
    Notify(NotifyType),
    /// Drop silently and log (RFC 7296 §2.21.1: a message that cannot be attributed to an IKE SA, a
    /// malformed header, an ESP packet).
    Drop,
}

impl Error {
    /// Builds an error.
    pub fn new(context: Context, offset: usize, kind: ErrorKind) -> Self {
        Self { context, offset, kind }
    }

    /// The response RFC 7296 calls for.
    pub fn disposition(&self) -> Disposition {
        match (&self.kind, self.context) {
            (ErrorKind::InvalidMajorVersion(_), _) => Disposition::Notify(NotifyType::INVALID_MAJOR_VERSION),
            (ErrorKind::UnsupportedCriticalPayload(_), _) => {
                Disposition::Notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD)
            }
            // Nothing trustworthy can be said about a message whose header is broken, nor about ESP.
            (_, Context::Header | Context::Esp | Context::UdpEncap) => Disposition::Drop,
            _ => Disposition::Notify(NotifyType::INVALID_SYNTAX),
        }
    }

    /// For `UNSUPPORTED_CRITICAL_PAYLOAD`, the notification data: the one-octet payload type
    /// (RFC 7296 §3.10.1).
    pub fn notify_data(&self) -> Vec<u8> {
        match self.kind {
            ErrorKind::UnsupportedCriticalPayload(t) => vec![t.0],
            _ => Vec::new(),
        }
    }
}
