//! Any inner packet from the TUN device or out of the tunnel: MSS clamping and the ICMP too-big
//! error never panic, and an error is only ever made for a packet larger than the MTU, fits its
//! buffer, and is addressed back to the packet's sender.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use oxswan_esp::icmp::{MAX_ERROR_LEN, too_big};
use oxswan_esp::mss::clamp_mss;

fuzz_target!(|data: &[u8]| {
    let Some((head, packet)) = data.split_first_chunk::<4>() else { return };
    let mtu = u16::from_be_bytes([head[0], head[1]]);
    let mss = u16::from_be_bytes([head[2], head[3]]);
    let mut p = packet.to_vec();
    clamp_mss(&mut p, mss);
    assert_eq!(p.len(), packet.len());
    let mut out = [0u8; MAX_ERROR_LEN];
    let ours = |sender: IpAddr, dest: IpAddr| {
        Some(if sender.is_ipv4() { dest } else { IpAddr::V6([0xfd00, 0, 0, 0, 0, 0, 0, 1].into()) })
    };
    if let Some(n) = too_big(packet, mtu, ours, &mut out) {
        assert!(n <= MAX_ERROR_LEN && packet.len() > usize::from(mtu));
        // The error goes to the packet's source.
        let (to, from) =
            if out[0] >> 4 == 4 { (&out[16..20], &packet[12..16]) } else { (&out[24..40], &packet[8..24]) };
        assert_eq!(to, from);
    }
});
