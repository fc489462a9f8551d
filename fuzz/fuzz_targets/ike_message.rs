//! Any datagram: parsing never panics, and whatever parses re-emits to the same payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxswan_wire::{Header, Message};

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    let Ok(msg) = Message::parse(data) else { return };
    let Ok(payloads) = msg.parse_payloads() else { return };
    let bytes = msg.header().encode(&payloads).expect("a parsed message re-emits");
    let again = Message::parse(&bytes).expect("re-emitted header parses");
    assert_eq!(again.parse_payloads().expect("re-emitted payloads parse"), payloads);
});
