//! oxswan's edge to the Linux kernel: the TUN device with its offloads, UDP sockets that send and
//! receive many datagrams per system call, routes, and the kernel's news of address and route changes.
//!
//! Everything above this crate works on byte buffers; everything that talks to the kernel about
//! packets is here, so the data plane's cost per system call is in one place to measure.

pub mod netlink;
pub mod route;
pub mod tun;
pub mod udp;

pub use route::RouteError;
pub use tun::{Tun, TunRx, TunTx};
pub use udp::{Datagrams, RecvScratch, UdpIo};
