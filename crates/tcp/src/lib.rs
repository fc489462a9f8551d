//! TCP encapsulation of IKE and ESP (RFC 9329), sans-IO: no socket, thread or clock.
//!
//! One TCP stream carries both IKE messages and ESP packets between two peers, for networks that
//! block UDP. The stream begins with the six octets `IKETCP` from the side that opened it (§4);
//! then each message is a frame: a 16-bit length that counts itself, and either the four-octet
//! non-ESP marker and an IKE message, or an ESP packet, whose SPI is never zero (§3).
//!
//! - [`Decoder`] reads a stream into frames, in a buffer of fixed size: a frame is at most 65,535
//!   octets, so the buffer never grows and one frame always fits. It never panics on hostile
//!   octets; a stream whose prefix or length field is wrong cannot be resynchronised and fails.
//! - [`push_ike`] and [`push_esp`] write frames.
//! - [`SendQueue`] holds what waits for a stream: IKE first, ESP bounded, so that IKE never waits
//!   behind a full queue of ESP and ESP is dropped rather than queued without bound (§9, the
//!   performance considerations of TCP-in-TCP).
#![forbid(unsafe_code)]

mod decode;
mod encode;
mod queue;

pub use decode::{Decoder, Frame, StreamError};
pub use encode::{EncodeError, esp_header, ike_header, push_esp, push_ike};
pub use queue::{QueueStats, SendQueue};

/// The stream prefix that the side opening the stream sends first, once (RFC 9329 §4).
pub const PREFIX: [u8; 6] = *b"IKETCP";

/// The length field in front of every frame (RFC 9329 §3).
pub const LENGTH_LEN: usize = 2;

/// The non-ESP marker in front of an IKE message in a frame (RFC 9329 §3.1, as RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The longest frame, its length field included: the field is 16 bits and counts itself (§3).
pub const MAX_FRAME: usize = u16::MAX as usize;

/// The longest IKE message a frame carries.
pub const MAX_IKE: usize = MAX_FRAME - LENGTH_LEN - NON_ESP_MARKER.len();

/// The longest ESP packet a frame carries.
pub const MAX_ESP: usize = MAX_FRAME - LENGTH_LEN;

/// The port a responder listens on unless configured otherwise: RFC 9329 §2 leaves the port to
/// configuration and suggests 4500, which is also Libreswan's default.
pub const DEFAULT_PORT: u16 = 4500;
