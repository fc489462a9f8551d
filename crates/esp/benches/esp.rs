#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! ESP seal and open on one core, in place, next to the bare AEAD (or CBC + HMAC) over the same
//! number of octets in the same run: the ratio is what ESP framing, sequence numbers, the replay
//! window and padding cost on top of the cipher.
//!
//! Run with `cargo bench -p oxswan-esp --bench esp`; about 15 seconds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_crypto::alg::{EncrAlg, IntegAlg};
use oxswan_crypto::keys::ChildSuite;
use oxswan_esp::{HEADROOM, InboundSa, OutboundSa, SaParams, TAILROOM};
use oxswan_wire::{EncrId, IntegId};

const TARGET: Duration = Duration::from_millis(500);

fn gbps(bytes_per_op: usize, mut op: impl FnMut()) -> f64 {
    for _ in 0..100 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < TARGET {
        for _ in 0..64 {
            op();
        }
        n += 64;
    }
    (n as f64 * bytes_per_op as f64 * 8.0) / start.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let p = oxswan_crypto::default_provider();
    let e = |id, bits| EncrAlg::new(id, bits).unwrap();
    let suites = [
        ("aes128gcm16", e(EncrId::AES_GCM_16, Some(128)), None),
        ("aes256gcm16", e(EncrId::AES_GCM_16, Some(256)), None),
        ("chacha20poly1305", e(EncrId::CHACHA20_POLY1305, None), None),
        ("aes128-sha256", e(EncrId::AES_CBC, Some(128)), Some(IntegAlg::new(IntegId::HMAC_SHA2_256_128).unwrap())),
    ];
    println!("ESP on one core, Gbit/s of inner packets; ref = the bare cipher over the same octets");
    println!("{:<18} {:>6} {:>8} {:>8} {:>8} {:>6}", "suite", "bytes", "seal", "open", "ref", "ratio");
    for (name, encr, integ) in suites {
        for len in [64usize, 1400] {
            let params = SaParams {
                spi: 0x1000,
                suite: ChildSuite { encr, integ },
                esn: false,
                encr_key: Secret::new(vec![7; encr.keymat_len()]),
                integ_key: Secret::new(vec![9; integ.map_or(0, |i| i.key_len())]),
            };
            let out = OutboundSa::new(&p, &params).unwrap();
            let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
            let seal = gbps(len, || {
                black_box(out.seal(&mut buf, HEADROOM..HEADROOM + len, 4).unwrap());
            });
            // Open: a window as large as the run, fed packets sealed beforehand (copied back each time,
            // the copy is part of the figure, as a receive path would have it in its buffer anyway).
            let inb = InboundSa::new(&p, &params, 1 << 20).unwrap();
            let out2 = OutboundSa::new(&p, &params).unwrap();
            let sealed: Vec<Vec<u8>> = (0..if len < 1000 { 1_000_000 } else { 300_000 })
                .map(|_| {
                    let mut b = vec![0u8; HEADROOM + len + TAILROOM];
                    let r = out2.seal(&mut b, HEADROOM..HEADROOM + len, 4).unwrap();
                    b[r].to_vec()
                })
                .collect();
            // One pass over all of them, every packet authentic and new: the timed work is the copy
            // into the receive buffer and `open`.
            let mut pkt = Vec::with_capacity(HEADROOM + len + TAILROOM);
            let start = Instant::now();
            let mut ok = 0usize;
            for s in &sealed {
                pkt.clear();
                pkt.extend_from_slice(s);
                ok += usize::from(black_box(inb.open(&mut pkt)).is_ok());
            }
            let open = (sealed.len() as f64 * len as f64 * 8.0) / start.elapsed().as_secs_f64() / 1e9;
            assert_eq!(ok, sealed.len(), "every packet opened");
            // Reference: the cipher alone over payload + trailer.
            let body = len + 2 + oxswan_wire::esp::pad_len(len, encr.block_len().max(4));
            let mut data = vec![0u8; body];
            let reference = if encr.is_aead() {
                let key = p.cipher.aead(encr, &vec![7; encr.key_len()]).unwrap();
                let mut tag = vec![0u8; key.tag_len()];
                gbps(len, || key.seal_in_place(&[1; 12], &[0; 8], &mut data, &mut tag).unwrap())
            } else {
                let key = p.cipher.cbc(encr, &vec![7; encr.key_len()]).unwrap();
                let mac = p.integ.key(integ.unwrap(), &vec![9; integ.unwrap().key_len()]).unwrap();
                let mut icv = vec![0u8; mac.icv_len()];
                gbps(len, || {
                    key.encrypt_in_place(&[1; 16], &mut data).unwrap();
                    mac.sign_into(&[&data], &mut icv).unwrap();
                })
            };
            println!(
                "{name:<18} {len:>6} {seal:>8.2} {open:>8.2} {reference:>8.2} {:>6.2}",
                (seal + open) / 2.0 / reference
            );
        }
    }
}
