//! Any datagram on port 4500: classification, then the parser it is handed to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxswan_wire::Message;
use oxswan_wire::esp::EspPacket;
use oxswan_wire::udp_encap::{Udp4500, classify};

fuzz_target!(|data: &[u8]| {
    match classify(data) {
        Ok(Udp4500::Ike(ike)) => {
            if let Ok(m) = Message::parse(ike) {
                let _ = m.parse_payloads();
            }
        }
        Ok(Udp4500::Esp(esp)) => {
            let _ = EspPacket::new_checked(esp);
        }
        Ok(Udp4500::Keepalive) | Err(_) => {}
    }
});
