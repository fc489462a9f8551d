//! The IKEv2 engine (RFC 7296), sans-IO: it never touches a socket, a thread or the clock.
//!
//! An [`Endpoint`] holds every IKE SA of a daemon. The daemon feeds it datagrams
//! ([`Endpoint::handle_datagram`]), time ([`Endpoint::handle_timeout`]) and commands
//! ([`Endpoint::initiate`], [`Endpoint::delete_ike`], ...), and drains what it produced with
//! [`Endpoint::poll_transmit`], [`Endpoint::poll_event`] and [`Endpoint::poll_timeout`].
//!
//! Inside, each IKE SA runs its exchanges with window size 1: IKE_SA_INIT ([`init`]), IKE_AUTH with
//! PSK or certificates ([`cert`]) and the first CHILD SA ([`child`]), INFORMATIONAL (DELETE, liveness,
//! error notifies); NAT detection ([`nat`]), cookies ([`cookie`]) and retransmission with strongSwan's
//! backoff ([`config::Retransmit`]).
#![forbid(unsafe_code)]

pub mod auth;
pub mod cert;
pub mod child;
pub mod config;
pub mod cookie;
pub mod endpoint;
pub mod error;
pub mod event;
mod ike_sa;
pub mod init;
pub mod leases;
pub mod nat;
pub mod redirect;
pub mod resume;
mod sa;
pub mod suite;
mod task;
pub mod volume;

pub use config::{
    Childless, EndpointConfig, IkeLifetime, LocalAuth, PeerConfig, RemoteAuth, Retransmit, TcpConfig, TcpMode, Unique,
};
pub use endpoint::{Drops, Endpoint, SaCounts, Stats};
pub use error::{IkeError, Result, Unexpected};
pub use event::{ChildSa, DownReason, Event, IkeSaInfo, PerResource, RelayAnswer, SaHandle};
pub use ike_sa::MAX_REASSEMBLED;
pub use nat::NatState;
pub use redirect::{Gateway, GatewayError};
pub use sa::{IKE_PORT, NAT_KEEPALIVE, NAT_T_PORT, Transmit, Transport};
