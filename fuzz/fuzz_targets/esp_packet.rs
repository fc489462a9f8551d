//! Any ESP packet: the header view and the trailer parser never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxswan_wire::esp::{EspPacket, parse_trailer};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = EspPacket::new_checked(data) {
        let _ = (p.spi(), p.sequence_number());
        if let Ok((len, _next)) = parse_trailer(p.payload()) {
            assert!(len <= p.payload().len());
        }
    }
});
