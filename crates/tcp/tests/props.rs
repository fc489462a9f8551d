//! Property tests of the framing: what the encoder and the queue write, the decoder reads back
//! whole and in order however the stream is cut into reads; hostile octets never panic it and
//! never make it hold more than its fixed buffer; the queue puts IKE first and bounds ESP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use oxswan_tcp::{Decoder, Frame, MAX_ESP, PREFIX, SendQueue, push_esp, push_ike};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Ike(Vec<u8>),
    Esp(Vec<u8>),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..300).prop_map(Msg::Ike),
        // ESP: a non-zero SPI first, at least the 8-octet header.
        (1u32.., prop::collection::vec(any::<u8>(), 4..300)).prop_map(|(spi, rest)| {
            let mut v = spi.to_be_bytes().to_vec();
            v.extend(rest);
            Msg::Esp(v)
        }),
    ]
}

/// Feeds `stream` in reads of the sizes `cuts` (cycled), taking every frame after each read.
fn decode(stream: &[u8], expect_prefix: bool, cuts: &[usize]) -> Result<Vec<Msg>, oxswan_tcp::StreamError> {
    let mut d = Decoder::new(expect_prefix);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    loop {
        loop {
            match d.next_frame()? {
                Some(Frame::Ike(b)) => out.push(Msg::Ike(b.to_vec())),
                Some(Frame::Esp(b)) => out.push(Msg::Esp(b.to_vec())),
                Some(Frame::Keepalive | Frame::Invalid) => {}
                None => break,
            }
        }
        if pos == stream.len() {
            break;
        }
        let want = cuts.get(i % cuts.len().max(1)).copied().unwrap_or(1).max(1);
        i += 1;
        let spare = d.spare();
        assert!(!spare.is_empty(), "the decoder always has room once its frames are taken");
        let n = want.min(spare.len()).min(stream.len() - pos);
        spare[..n].copy_from_slice(&stream[pos..pos + n]);
        d.commit(n);
        pos += n;
        assert!(d.buffered() <= Decoder::CAPACITY);
    }
    Ok(out)
}

proptest! {
    #[test]
    fn round_trip_with_any_reads(msgs in prop::collection::vec(msg(), 0..40), cuts in prop::collection::vec(1usize..5000, 1..8)) {
        let mut stream = PREFIX.to_vec();
        for m in &msgs {
            match m {
                Msg::Ike(b) => push_ike(&mut stream, b).unwrap(),
                Msg::Esp(b) => push_esp(&mut stream, b).unwrap(),
            }
        }
        prop_assert_eq!(decode(&stream, true, &cuts).unwrap(), msgs);
    }

    #[test]
    fn hostile_octets_never_panic(data in prop::collection::vec(any::<u8>(), 0..20_000), prefix: bool, cuts in prop::collection::vec(1usize..3000, 1..4)) {
        let _ = decode(&data, prefix, &cuts);
    }

    /// Frames of every size up to the largest, back to back: the fixed buffer takes them all.
    #[test]
    fn large_frames(sizes in prop::collection::vec(8usize..=MAX_ESP, 1..6), cuts in prop::collection::vec(1usize..70_000, 1..4)) {
        let mut stream = Vec::new();
        let mut msgs = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let mut v = vec![i as u8 + 1; *n];
            v[0] = 0x80;
            push_esp(&mut stream, &v).unwrap();
            msgs.push(Msg::Esp(v));
        }
        prop_assert_eq!(decode(&stream, false, &cuts).unwrap(), msgs);
    }

    /// Any interleaving of pushes and takes: the stream starts with the prefix once and decodes;
    /// IKE arrives complete and in order; ESP arrives in order, less what was dropped when full;
    /// in each take no ESP frame comes before an IKE frame; ESP queued never exceeds its bound.
    #[test]
    fn the_queue_puts_ike_first(ops in prop::collection::vec((msg(), any::<bool>(), 0usize..200_000), 1..200), esp_limit in 0usize..100_000) {
        let mut q = SendQueue::new(true, esp_limit, 1000);
        let mut stream = Vec::new();
        let mut ike_sent = Vec::new();
        let mut esp_kept = Vec::new();
        for (m, take, max) in ops {
            match &m {
                Msg::Ike(b) => { prop_assert!(q.push_ike(b).unwrap()); ike_sent.push(m.clone()); }
                Msg::Esp(b) => if q.push_esp(b).unwrap() { esp_kept.push(m.clone()); },
            }
            prop_assert!(q.esp_queued() <= esp_limit);
            if take {
                let mut chunk = Vec::new();
                let first = stream.is_empty();
                q.take(&mut chunk, max);
                let body = if first { prop_assert!(chunk.starts_with(&PREFIX)); &chunk[PREFIX.len()..] } else { &chunk[..] };
                let frames = decode(body, false, &[usize::MAX]).unwrap();
                if let Some(first_esp) = frames.iter().position(|f| matches!(f, Msg::Esp(_))) {
                    prop_assert!(frames[first_esp..].iter().all(|f| matches!(f, Msg::Esp(_))), "IKE after ESP in one take");
                }
                stream.extend_from_slice(&chunk);
            }
        }
        let mut chunk = Vec::new();
        while !q.is_empty() {
            q.take(&mut chunk, 0);
        }
        if stream.is_empty() { prop_assert!(chunk.starts_with(&PREFIX)); }
        stream.extend_from_slice(&chunk);
        let got = decode(&stream, true, &[777]).unwrap();
        let ike: Vec<Msg> = got.iter().filter(|m| matches!(m, Msg::Ike(_))).cloned().collect();
        let esp: Vec<Msg> = got.iter().filter(|m| matches!(m, Msg::Esp(_))).cloned().collect();
        prop_assert_eq!(ike, ike_sent);
        prop_assert_eq!(esp, esp_kept);
    }
}

/// An IKE message queued while ESP waits is written before that ESP, even with the ESP part full.
#[test]
fn ike_overtakes_a_full_esp_queue() {
    let mut q = SendQueue::new(false, 256 * 1024, 8);
    let esp = [0x11u8; 1400];
    while q.push_esp(&esp).unwrap() {}
    assert!(q.stats().esp_dropped == 1);
    assert!(q.push_ike(b"liveness").unwrap());
    let mut chunk = Vec::new();
    q.take(&mut chunk, 16 * 1024);
    assert_eq!(&chunk[..6], &[0, 14, 0, 0, 0, 0]);
    assert_eq!(&chunk[6..14], b"liveness");
    // The rest of that write is ESP, whole frames only, and the remaining ESP is still queued.
    let frames = decode(&chunk, false, &[usize::MAX]).unwrap();
    assert!(frames.len() > 1 && frames[1..].iter().all(|f| matches!(f, Msg::Esp(b) if b.len() == 1400)));
    assert!(q.esp_queued() > 0);
}
