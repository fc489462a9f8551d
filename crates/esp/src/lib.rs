//! The ESP data plane of oxswan (RFC 4303), pure: SAs that seal and open packets in place in
//! caller-owned buffers, the anti-replay window with extended sequence numbers, and the traffic
//! selectors applied to inner packets, and the outbound SPD that picks the SA for a packet by its
//! destination (copy on write, for lock-free snapshots). No sockets, no threads; nothing allocated per packet.
//!
//! Algorithms: AES-GCM with 8, 12 or 16-octet ICVs (RFC 4106), ChaCha20-Poly1305 (RFC 7634), and AES-CBC
//! with HMAC-SHA1-96 or HMAC-SHA2 (RFC 3602, RFC 2404, RFC 4868).
#![forbid(unsafe_code)]

mod cow;
pub mod icmp;
pub mod mss;
pub mod mtu;
pub mod replay;
pub mod sa;
pub mod selectors;
pub mod spd;

pub use replay::{ReplayError, ReplayWindow};
pub use sa::{Counters, EspError, HEADROOM, InboundSa, Opened, OutboundSa, SaParams, TAILROOM};
pub use selectors::{PacketInfo, Selectors};
pub use spd::{Spd, SpdError};
