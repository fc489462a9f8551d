//! The Code of a RADIUS packet (RFC 2865 §3, RFC 2866 §3), apart so that the errors can name one
//! without depending on the codec.

/// A RADIUS Code (RFC 2865 §3, RFC 2866 §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

impl Code {
    /// Access-Request.
    pub const ACCESS_REQUEST: Code = Code(1);
    /// Access-Accept.
    pub const ACCESS_ACCEPT: Code = Code(2);
    /// Access-Reject.
    pub const ACCESS_REJECT: Code = Code(3);
    /// Accounting-Request.
    pub const ACCOUNTING_REQUEST: Code = Code(4);
    /// Accounting-Response.
    pub const ACCOUNTING_RESPONSE: Code = Code(5);
    /// Access-Challenge.
    pub const ACCESS_CHALLENGE: Code = Code(11);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Code::ACCESS_REQUEST => "Access-Request",
            Code::ACCESS_ACCEPT => "Access-Accept",
            Code::ACCESS_REJECT => "Access-Reject",
            Code::ACCOUNTING_REQUEST => "Accounting-Request",
            Code::ACCOUNTING_RESPONSE => "Accounting-Response",
            Code::ACCESS_CHALLENGE => "Access-Challenge",
            _ => return None,
        })
    }

    /// Whether the client sends this code (and a server answers it).
    pub fn is_request(self) -> bool {
        matches!(self, Code::ACCESS_REQUEST | Code::ACCOUNTING_REQUEST)
    }
}

impl core::fmt::Debug for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Code({})", self.0),
        }
    }
}
