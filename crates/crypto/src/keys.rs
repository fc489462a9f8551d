//! Key derivation (RFC 7296 §2.13–2.18, RFC 9370 §2.2.4). STUB: being written.
