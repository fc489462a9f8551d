//! SK payload protection (RFC 7296 §3.14, RFC 5282). STUB: being written.
