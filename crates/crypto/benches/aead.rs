#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! AEAD throughput on one core, in place, at ESP-like packet sizes: seal and open through the
//! `AeadKey` trait objects the data plane uses, side by side with aws-lc-rs called directly (the
//! reference), so the cost of the abstraction shows as a ratio.
//!
//! Run with `cargo bench -p oxswan-crypto --bench aead` (about 15 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use oxswan_crypto::alg::EncrAlg;
use oxswan_crypto::default_provider;
use oxswan_wire::EncrId;

const TARGET: Duration = Duration::from_millis(300);

/// Gbit/s of payload for `op` run on `len`-byte buffers for about [`TARGET`].
fn gbits(len: usize, mut op: impl FnMut(u64)) -> f64 {
    for i in 0..1000 {
        op(i);
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < TARGET {
        for _ in 0..64 {
            op(n);
            n += 1;
        }
    }
    (n as f64 * len as f64 * 8.0) / start.elapsed().as_secs_f64() / 1e9
}

fn nonce(n: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[4..].copy_from_slice(&n.to_be_bytes());
    out
}

fn main() {
    let provider = default_provider();
    println!(
        "{:<22} {:>6} {:>11} {:>11} {:>11} {:>11} {:>7}",
        "algorithm", "bytes", "seal Gb/s", "open Gb/s", "ref seal", "ref open", "ratio"
    );
    for (name, id, bits, reference) in [
        ("aes128-gcm16", EncrId::AES_GCM_16, Some(128), &aead::AES_128_GCM),
        ("aes256-gcm16", EncrId::AES_GCM_16, Some(256), &aead::AES_256_GCM),
        ("chacha20-poly1305", EncrId::CHACHA20_POLY1305, None, &aead::CHACHA20_POLY1305),
    ] {
        let alg = EncrAlg::new(id, bits).unwrap();
        let key = vec![0x42u8; alg.key_len()];
        let ours = provider.cipher.aead(alg, &key).unwrap();
        let direct = LessSafeKey::new(UnboundKey::new(reference, &key).unwrap());
        let aad = [0u8; 8]; // ESP header
        for len in [64usize, 1400] {
            let mut buf = vec![0u8; len];
            let mut tag = [0u8; 16];
            let seal = gbits(len, |n| {
                ours.seal_in_place(&nonce(n), &aad, black_box(&mut buf), &mut tag).unwrap();
            });
            // Open needs a valid packet: seal one and reopen a copy each time.
            let mut sealed = vec![0u8; len];
            let mut sealed_tag = [0u8; 16];
            ours.seal_in_place(&nonce(7), &aad, &mut sealed, &mut sealed_tag).unwrap();
            let open = gbits(len, |_| {
                buf.copy_from_slice(&sealed);
                ours.open_in_place(&nonce(7), &aad, black_box(&mut buf), &sealed_tag).unwrap();
            });
            let ref_seal = gbits(len, |n| {
                let _tag = black_box(
                    direct
                        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce(n)), Aad::from(aad), &mut buf)
                        .unwrap(),
                );
            });
            let ref_open = gbits(len, |_| {
                buf.copy_from_slice(&sealed);
                direct
                    .open_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce(7)),
                        Aad::from(aad),
                        &sealed_tag,
                        &mut buf,
                    )
                    .unwrap();
            });
            println!(
                "{name:<22} {len:>6} {seal:>11.2} {open:>11.2} {ref_seal:>11.2} {ref_open:>11.2} {:>7.2}",
                (seal + open) / (ref_seal + ref_open)
            );
        }
    }
    println!("ratio = (seal + open through oxswan's AeadKey) / (seal + open through aws-lc-rs directly)");
}
