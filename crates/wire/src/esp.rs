//! ESP packet framing (RFC 4303). STUB: being written.
