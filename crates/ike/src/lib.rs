//! The IKEv2 engine (RFC 7296), sans-IO: it never touches a socket, a thread or the clock.
//!
//! Work in progress (issue 3). What exists: the IKE_SA_INIT exchange as consumed-state structs
//! ([`init`]) — the initiator's request and its processing of the response, including
//! INVALID_KE_PAYLOAD and NO_PROPOSAL_CHOSEN, and the responder's processing of a request — ending with
//! both sides holding the same [`oxswan_crypto::keys::IkeSaKeys`].
#![forbid(unsafe_code)]

pub mod error;
pub mod init;
pub mod suite;

pub use error::{IkeError, Result};
