//! oxswan's edge to the Linux kernel: the TUN device with its offloads, UDP sockets that send and
//! receive many datagrams per system call, and routes.
//!
//! Everything above this crate works on byte buffers; everything that talks to the kernel about
//! packets is here, so the data plane's cost per system call is in one place to measure.

pub mod route;
pub mod tun;
pub mod udp;

pub use route::RouteError;
pub use tun::{Tun, TunRx, TunTx};
pub use udp::{Datagrams, RecvScratch, UdpIo};
