//! NAT detection (RFC 7296 §2.23): each side sends the hash of the addresses it believes the packet
//! carries; a mismatch at the receiver reveals a NAT in between.

use core::net::{IpAddr, SocketAddr};

use oxswan_crypto::hash::sha1;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{IkeSpi, NotifyType, Payload};

/// What NAT detection found, from our point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatState {
    /// Our address is translated: the peer saw another source than ours (our NAT_DETECTION_SOURCE_IP
    /// did not match at the peer, which we learn from its NAT_DETECTION_DESTINATION_IP not matching
    /// our address).
    pub local_behind_nat: bool,
    /// The peer's address is translated: its NAT_DETECTION_SOURCE_IP does not match the source of the
    /// datagram.
    pub remote_behind_nat: bool,
}

impl NatState {
    /// Whether any NAT is in the path: IKE floats to port 4500 and ESP is UDP-encapsulated
    /// (RFC 7296 §2.23, RFC 3948).
    pub fn any(&self) -> bool {
        self.local_behind_nat || self.remote_behind_nat
    }
}

/// `SHA-1(SPIi | SPIr | IP | Port)` with the SPIs as they appear in the message header (RFC 7296 §2.23).
pub fn nat_hash(spi_i: IkeSpi, spi_r: IkeSpi, addr: SocketAddr) -> [u8; 20] {
    let port = addr.port().to_be_bytes();
    match addr.ip() {
        IpAddr::V4(a) => sha1(&[&spi_i.0, &spi_r.0, &a.octets(), &port]),
        IpAddr::V6(a) => sha1(&[&spi_i.0, &spi_r.0, &a.octets(), &port]),
    }
}

/// The two notifies for a message with these SPIs sent from `local` to `remote`.
pub fn nat_notifies(spi_i: IkeSpi, spi_r: IkeSpi, local: SocketAddr, remote: SocketAddr) -> [Payload; 2] {
    [
        Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            nat_hash(spi_i, spi_r, local).to_vec(),
        )),
        Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_hash(spi_i, spi_r, remote).to_vec(),
        )),
    ]
}

/// Evaluates the peer's NAT detection notifies of a message received on `local` from `remote`.
/// `None` if the peer sent none (it does not do NAT traversal); a peer may send several SOURCE
/// notifies, one per address it might send from, and any match counts (RFC 7296 §2.23).
pub fn detect<'a>(
    notifies: impl IntoIterator<Item = &'a NotifyPayload>,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<NatState> {
    let source = nat_hash(spi_i, spi_r, remote);
    let destination = nat_hash(spi_i, spi_r, local);
    let (mut saw_src, mut saw_dst, mut src_match, mut dst_match) = (false, false, false, false);
    for n in notifies {
        if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP {
            saw_src = true;
            src_match |= n.data == source;
        } else if n.notify_type == NotifyType::NAT_DETECTION_DESTINATION_IP {
            saw_dst = true;
            dst_match |= n.data == destination;
        }
    }
    (saw_src || saw_dst).then_some(NatState { local_behind_nat: !dst_match, remote_behind_nat: !src_match })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifies(p: &[Payload]) -> Vec<NotifyPayload> {
        p.iter()
            .filter_map(|p| match p {
                Payload::Notify(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn same_addresses_no_nat_and_translation_detected() {
        let (i, r) = (IkeSpi([1; 8]), IkeSpi::ZERO);
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:500".parse().unwrap();
        let sent = notifies(&nat_notifies(i, r, a, b));
        assert_eq!(detect(&sent, i, r, b, a), Some(NatState::default()));
        // A NAT rewrote a's source to 198.51.100.7:4711.
        let natted: SocketAddr = "198.51.100.7:4711".parse().unwrap();
        let s = detect(&sent, i, r, b, natted).unwrap();
        assert!(s.remote_behind_nat && !s.local_behind_nat);
        // The destination was rewritten (we are behind a NAT, seen from the receiver).
        let s = detect(&sent, i, r, "10.0.0.2:500".parse().unwrap(), a).unwrap();
        assert!(s.local_behind_nat && !s.remote_behind_nat);
        // The SPIs are part of the hash.
        assert!(detect(&sent, i, IkeSpi([2; 8]), b, a).unwrap().any());
        assert_eq!(detect(&[], i, r, b, a), None);
    }

    #[test]
    fn hash_is_sha1_of_spis_address_port() {
        let h = nat_hash(IkeSpi([0; 8]), IkeSpi([0; 8]), "[::1]:4500".parse().unwrap());
        let mut input = vec![0u8; 16];
        input.extend_from_slice(&core::net::Ipv6Addr::LOCALHOST.octets());
        input.extend_from_slice(&4500u16.to_be_bytes());
        assert_eq!(h, sha1(&[&input]));
    }
}
