//! What the IKE thread takes in, from the sockets, the data plane and the control socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

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
    /// A key exchange computed by a crypto worker (see `daemon::crypto`).
    KeyExchange(Box<oxswan_ike::endpoint::InitDone>),
    /// A datagram from a RADIUS server.
    Radius {
        /// Its source.
        from: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
}

/// Inputs the IKE thread's channel holds at most: at 0.2–0.3 ms per handshake message, under a
/// second of work. A flood of spoofed requests fills it and is dropped at the door, not queued in
/// memory without end.
pub const INBOX_CAPACITY: usize = 4096;

/// The sending side of the IKE thread's channel, bounded (see [`INBOX_CAPACITY`]).
#[derive(Debug, Clone)]
pub struct Inbox {
    tx: mpsc::SyncSender<Input>,
    dropped: Arc<AtomicU64>,
}

/// A channel to the IKE thread holding at most `capacity` inputs.
pub fn inbox(capacity: usize) -> (Inbox, mpsc::Receiver<Input>) {
    let (tx, rx) = mpsc::sync_channel(capacity);
    (Inbox { tx, dropped: Arc::default() }, rx)
}

impl Inbox {
    /// For what the network or a packet thread brings (a datagram, a trap, a moved peer): queued if
    /// there is room, else dropped and counted, never waiting. The peer retransmits (RFC 7296 §2.1).
    /// Whether it was queued.
    pub fn offer(&self, input: Input) -> bool {
        match self.tx.try_send(input) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::TrySendError::Disconnected(_)) => false,
        }
    }

    /// For what must not be lost (a command, a computed key exchange, the end of a stream, a TCP
    /// stream's messages, whose reader may as well wait): waits for room.
    pub fn send(&self, input: Input) -> Result<(), mpsc::SendError<Input>> {
        self.tx.send(input)
    }

    /// Inputs [`Inbox::offer`] dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_full_inbox_drops_offers_and_makes_senders_wait() {
        let (tx, rx) = inbox(2);
        assert!(tx.offer(Input::NetworkChanged));
        assert!(tx.offer(Input::NetworkChanged));
        assert!(!tx.offer(Input::Trap("x".into())));
        assert_eq!(tx.dropped(), 1);
        // A send waits until the IKE thread takes one.
        let sender = tx.clone();
        let waiting = std::thread::spawn(move || sender.send(Input::Trap("kept".into())).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiting.is_finished());
        assert!(matches!(rx.recv().unwrap(), Input::NetworkChanged));
        assert!(waiting.join().unwrap());
        assert!(matches!(rx.recv().unwrap(), Input::NetworkChanged));
        assert!(matches!(rx.recv().unwrap(), Input::Trap(n) if n == "kept"));
        // The dropped one never arrived.
        assert!(rx.try_recv().is_err());
        drop(rx);
        assert!(!tx.offer(Input::NetworkChanged));
        assert_eq!(tx.dropped(), 1, "a closed inbox is not a full one");
    }
}
