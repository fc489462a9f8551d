//! IKEv2 (RFC 7296) messages and ESP (RFC 4303, RFC 3948) framing.
//!
//! Two layers:
//! - zero-copy views over untrusted bytes ([`Message`], [`RawPayload`], [`esp::EspPacket`]): a checked
//!   constructor validates every length once, after which no accessor can panic;
//! - owned representations ([`Payload`] and the per-payload structs) with `parse` from a payload body and
//!   `emit` into a `Vec<u8>`, so an engine can build and keep messages.
//!
//! Wire enumerations are newtypes over the integer with named constants ([`PayloadType::SA`],
//! [`NotifyType::COOKIE`]), so values this crate has never heard of survive a parse/emit round trip.
//!
//! Parsing never panics: every error is an [`Error`] naming the payload, the offset from the start of the
//! message and the reason, and [`Error::disposition`] says whether the RFC wants a notify or a silent drop.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

#[macro_use]
mod macros;

pub mod cp;
pub mod error;
pub mod esp;
pub mod header;
pub mod id;
pub mod notify;
pub mod payload;
pub mod payloads;
pub mod reader;
pub mod sa;
pub mod sk;
pub mod ts;
pub mod types;
pub mod udp_encap;

pub use error::{Context, Disposition, Error, ErrorKind, Result};
pub use header::{Flags, Header, IkeSpi, Message};
pub use id::Identity;
pub use payload::{Payload, Payloads, RawPayload, emit_chain, parse_chain};
pub use reader::Reader;
pub use types::*;
