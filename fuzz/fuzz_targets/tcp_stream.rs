//! A TCP stream as a peer may send it (RFC 9329): the first octet picks the side and how the
//! stream is cut into reads; the frames go to the parsers they are handed to in the daemon.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxswan_tcp::{Decoder, Frame};
use oxswan_wire::Message;
use oxswan_wire::esp::EspPacket;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut stream)) = data.split_first() else { return };
    let mut d = Decoder::new(mode & 1 == 1);
    let cut = usize::from(mode >> 1).max(1) * 97;
    loop {
        loop {
            match d.next_frame() {
                Ok(Some(Frame::Ike(ike))) => {
                    if let Ok(m) = Message::parse(ike) {
                        let _ = m.parse_payloads();
                    }
                }
                Ok(Some(Frame::Esp(esp))) => {
                    let _ = EspPacket::new_checked(&*esp);
                }
                Ok(Some(Frame::Keepalive | Frame::Invalid)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if stream.is_empty() {
            return;
        }
        let spare = d.spare();
        let n = spare.len().min(cut).min(stream.len());
        let (now, rest) = stream.split_at(n);
        if let Some(room) = spare.get_mut(..n) {
            room.copy_from_slice(now);
        }
        d.commit(n);
        stream = rest;
    }
});
