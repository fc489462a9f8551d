//! What the IKE thread takes in, from the sockets, the data plane and the control socket.

use std::net::SocketAddr;
use std::sync::mpsc;

use crate::control::{Request, Response};

/// What the IKE thread waits for.
#[derive(Debug)]
pub enum Input {
    /// An IKE message (without the non-ESP marker).
    Datagram {
        /// Our address it arrived on.
        local: SocketAddr,
        /// Its source.
        remote: SocketAddr,
        /// The message.
        data: Vec<u8>,
    },
    /// An IKE message from a TCP stream (RFC 9329 §3.1, the non-ESP marker removed).
    Stream {
        /// Our end of the stream.
        local: SocketAddr,
        /// The peer's end.
        remote: SocketAddr,
        /// The message.
        data: Vec<u8>,
    },
    /// A TCP stream ended (closed by the peer, reset, or failed).
    StreamClosed {
        /// Which.
        key: crate::streams::StreamKey,
        /// Whether we had opened it: then we open it again if IKE SAs use it (RFC 9329 §6).
        opener: bool,
    },
    /// A CLI command and where to answer.
    Command(Request, mpsc::Sender<Response>),
    /// Traffic for a trapped connection arrived.
    Trap(String),
    /// A datagram from a RADIUS server.
    Radius {
        /// Its source.
        from: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
}
