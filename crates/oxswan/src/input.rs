//! What the IKE thread takes in, from the sockets, the data plane and the control socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;

use crate::control::{Request, Response};

/// A TCP stream (RFC 9329): our address, and the peer's address and port.
pub type StreamKey = (IpAddr, SocketAddr);

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
        key: StreamKey,
        /// Whether we had opened it: then we open it again if IKE SAs use it (RFC 9329 §6).
        opener: bool,
        /// Whether it had been open (not a connection that failed).
        connected: bool,
    },
    /// A CLI command and where to answer.
    Command(Request, mpsc::Sender<Response>),
    /// Traffic for a trapped connection arrived.
    Trap(String),
    /// Authentic ESP of the pair with this inbound SPI came from another address than the pair's
    /// peer: a NAT rebinding (RFC 7296 §2.23), reported at most once a second per pair.
    EspMoved {
        /// The pair.
        spi_in: u32,
        /// Where the packet came from.
        from: SocketAddr,
    },
    /// The kernel reported address or route changes (MOBIKE, RFC 4555 §3.5).
    NetworkChanged,
    /// A datagram from a RADIUS server.
    Radius {
        /// Its source.
        from: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
}
