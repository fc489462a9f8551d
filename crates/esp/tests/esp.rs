//! ESP SAs against published and captured packets, and against themselves for every suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::atomic::Ordering;

use oxswan_crypto::Secret;
use oxswan_crypto::alg::{EncrAlg, IntegAlg};
use oxswan_crypto::keys::ChildSuite;
use oxswan_esp::{EspError, HEADROOM, InboundSa, OutboundSa, ReplayError, SaParams, TAILROOM};
use oxswan_wire::{EncrId, IntegId};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn provider() -> oxswan_crypto::CryptoProvider {
    oxswan_crypto::default_provider()
}

fn params(spi: u32, encr: EncrAlg, integ: Option<IntegAlg>, esn: bool, seed: u8) -> SaParams {
    let ek: Vec<u8> = (0..encr.keymat_len()).map(|i| seed.wrapping_add(i as u8)).collect();
    let ik: Vec<u8> = (0..integ.map_or(0, |i| i.key_len())).map(|i| seed ^ (i as u8)).collect();
    SaParams { spi, suite: ChildSuite { encr, integ }, esn, encr_key: Secret::new(ek), integ_key: Secret::new(ik) }
}

/// RFC 7634 Appendix A: the published tunnel-mode ESP packet with ChaCha20-Poly1305 (KEYMAT
/// 80..9f with salt a0a1a2a3, SPI 0x01020304, sequence number 5, IV 1011121314151617) opens to the
/// published ICMP echo request.
#[test]
fn rfc7634_appendix_a() {
    let encr = EncrAlg::new(EncrId::CHACHA20_POLY1305, None).unwrap();
    let p = SaParams {
        spi: 0x0102_0304,
        suite: ChildSuite { encr, integ: None },
        esn: false,
        encr_key: Secret::new(h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3")),
        integ_key: Secret::default(),
    };
    let mut packet = h(concat!(
        "01020304000000051011121314151617",
        "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6",
        "14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3",
        "cbec163fac469b502773f6fb94e664da9165b82829f641e0",
        "76aaa8266b7fb0f7b11b369907e1ad43"
    ));
    let inner = h(concat!(
        "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10",
        "0007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223",
        "2425262728292a2b2c2d2e2f3031323334353637"
    ));
    let sa = InboundSa::new(&provider(), &p, 64).unwrap();
    let o = sa.open(&mut packet).unwrap();
    assert_eq!((o.next_header, o.sequence_number), (4, 5));
    assert_eq!(packet[o.inner.clone()], inner[..]);
    // Sealing the same inner packet as packet 5 with the same key gives the published bytes: our
    // IV is the sequence number, and the RFC's IV is not 5, so only the structure is compared.
    let out = OutboundSa::new(&provider(), &SaParams { spi: 0x0102_0304, ..p }).unwrap();
    let mut buf = vec![0u8; HEADROOM + inner.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(&inner);
    let r = out.seal(&mut buf, HEADROOM..HEADROOM + inner.len(), 4).unwrap();
    assert_eq!(r.len(), 8 + 8 + 84 + 2 + 2 + 16, "84 octets, 2 of padding to a 4-octet boundary, 2 trailer");
}

fn charon_values() -> std::collections::HashMap<String, Vec<u8>> {
    include_str!("../../crypto/tests/data/charon-psk-x25519-aes256gcm.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (n, v) = l.split_once('=').unwrap();
            (n.trim().to_owned(), h(v.trim()))
        })
        .collect()
}

/// Packets strongSwan 5.9.8 sent (kernel-libipsec, AES-256-GCM-16) open with the keys it logged:
/// one UDP datagram from 10.1.0.1 to 10.2.0.1 and one back (scripts/capture-charon.sh).
#[test]
fn charon_packets_open() {
    let v = charon_values();
    let encr = EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap();
    for (file, spi, key, src) in [
        (
            &include_bytes!("../../wire/tests/data/charon-psk-esp-1-i2r.bin")[..],
            "child_spi_r",
            "child_encr_i",
            [10, 1, 0, 1],
        ),
        (
            &include_bytes!("../../wire/tests/data/charon-psk-esp-2-r2i.bin")[..],
            "child_spi_i",
            "child_encr_r",
            [10, 2, 0, 1],
        ),
    ] {
        let spi = u32::from_be_bytes(v[spi][..].try_into().unwrap());
        let p = SaParams {
            spi,
            suite: ChildSuite { encr, integ: None },
            esn: false,
            encr_key: Secret::new(v[key].clone()),
            integ_key: Secret::default(),
        };
        let sa = InboundSa::new(&provider(), &p, 64).unwrap();
        let mut packet = file.to_vec();
        let o = sa.open(&mut packet).unwrap();
        let inner = &packet[o.inner.clone()];
        assert_eq!(o.next_header, 4);
        assert_eq!(inner[0] >> 4, 4, "IPv4");
        assert_eq!(inner[9], 17, "UDP: the capture sends one datagram each way");
        assert_eq!(inner[12..16], src);
        assert_eq!(usize::from(u16::from_be_bytes([inner[2], inner[3]])), inner.len(), "IPv4 total length");
        // The same packet again is a replay.
        let mut again = file.to_vec();
        assert!(matches!(sa.open(&mut again), Err(EspError::Replay(ReplayError::Duplicate))));
        assert_eq!(sa.counters.replayed.load(Ordering::Relaxed), 1);
    }
}

fn suites() -> Vec<(&'static str, EncrAlg, Option<IntegAlg>)> {
    let e = |id, bits| EncrAlg::new(id, bits).unwrap();
    let i = |id| Some(IntegAlg::new(id).unwrap());
    vec![
        ("aes128gcm16", e(EncrId::AES_GCM_16, Some(128)), None),
        ("aes256gcm16", e(EncrId::AES_GCM_16, Some(256)), None),
        ("aes256gcm12", e(EncrId::AES_GCM_12, Some(256)), None),
        ("aes128gcm8", e(EncrId::AES_GCM_8, Some(128)), None),
        ("chacha20poly1305", e(EncrId::CHACHA20_POLY1305, None), None),
        ("aes128-sha256", e(EncrId::AES_CBC, Some(128)), i(IntegId::HMAC_SHA2_256_128)),
        ("aes256-sha1", e(EncrId::AES_CBC, Some(256)), i(IntegId::HMAC_SHA1_96)),
        ("aes256-sha512", e(EncrId::AES_CBC, Some(256)), i(IntegId::HMAC_SHA2_512_256)),
    ]
}

fn seal(out: &OutboundSa, inner: &[u8], nh: u8) -> Vec<u8> {
    let mut buf = vec![0xeeu8; HEADROOM + inner.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
    let r = out.seal(&mut buf, HEADROOM..HEADROOM + inner.len(), nh).unwrap();
    assert_eq!(r.len(), out.overhead(inner.len()) + inner.len());
    buf[r].to_vec()
}

#[test]
fn every_suite_round_trips_with_and_without_esn() {
    let p = provider();
    for (name, encr, integ) in suites() {
        for esn in [false, true] {
            let params = params(0x1234_5678, encr, integ, esn, 7);
            let out = OutboundSa::new(&p, &params).unwrap();
            let inb = InboundSa::new(&p, &params, 1024).unwrap();
            for len in [0usize, 1, 2, 3, 15, 16, 17, 40, 1400, 1500] {
                let inner: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let nh = if len % 2 == 0 { 4 } else { 41 };
                let mut pkt = seal(&out, &inner, nh);
                assert_eq!(pkt.len() % 4, 0, "{name}: RFC 4303 §2.4 4-octet alignment");
                let o = inb.open(&mut pkt).unwrap_or_else(|e| panic!("{name} esn={esn} len={len}: {e}"));
                assert_eq!(pkt[o.inner.clone()], inner[..], "{name}");
                assert_eq!(o.next_header, nh);
            }
            assert_eq!(out.counters.packets.load(Ordering::Relaxed), 10);
            assert_eq!(inb.counters.packets.load(Ordering::Relaxed), 10);
            assert_eq!(inb.counters.bytes.load(Ordering::Relaxed), out.counters.bytes.load(Ordering::Relaxed));
        }
    }
}

#[test]
fn every_flipped_bit_is_rejected_and_counted() {
    let p = provider();
    for (name, encr, integ) in suites() {
        let params = params(0x0a0b_0c0d, encr, integ, false, 3);
        let out = OutboundSa::new(&p, &params).unwrap();
        let inb = InboundSa::new(&p, &params, 64).unwrap();
        let pkt = seal(&out, b"an inner packet of some length", 4);
        let mut failures = 0;
        for bit in 0..pkt.len() * 8 {
            let mut bad = pkt.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(inb.open(&mut bad).is_err(), "{name}: bit {bit}");
            failures += 1;
        }
        let c = &inb.counters;
        let counted = c.integrity_failed.load(Ordering::Relaxed)
            + c.malformed.load(Ordering::Relaxed)
            + c.replayed.load(Ordering::Relaxed);
        assert_eq!(counted, failures, "{name}: every drop counted");
        // The genuine packet still opens: nothing above moved the window.
        assert!(inb.open(&mut pkt.clone()).is_ok(), "{name}");
        assert_eq!(c.packets.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn replay_and_reordering() {
    let p = provider();
    let (_, encr, integ) = suites()[1];
    let params = params(0x5000, encr, integ, false, 1);
    let out = OutboundSa::new(&p, &params).unwrap();
    let inb = InboundSa::new(&p, &params, 64).unwrap();
    let pkts: Vec<Vec<u8>> = (0..100).map(|i| seal(&out, &[i as u8; 20], 4)).collect();
    // Out of order within the window: accepted.
    for i in (36..100).rev() {
        inb.open(&mut pkts[i].clone()).unwrap();
    }
    // Below the window: too old. Again: duplicates.
    assert_eq!(inb.open(&mut pkts[10].clone()), Err(EspError::Replay(ReplayError::TooOld)));
    assert_eq!(inb.open(&mut pkts[50].clone()), Err(EspError::Replay(ReplayError::Duplicate)));
    assert_eq!(inb.counters.replayed.load(Ordering::Relaxed), 2);
    // A packet for another SPI is malformed for this SA.
    let other = OutboundSa::new(&p, &SaParams { spi: 0x6000, ..params.clone() }).unwrap();
    assert_eq!(inb.open(&mut seal(&other, b"x", 4)), Err(EspError::Malformed));
    // Garbage and truncations.
    for len in 0..40 {
        assert!(inb.open(&mut pkts[99][..len].to_vec()).is_err());
    }
}

#[test]
fn sequence_numbers_never_wrap() {
    let p = provider();
    let (_, encr, integ) = suites()[0];
    let params = params(0x7000, encr, integ, false, 9);
    let out = OutboundSa::new(&p, &params).unwrap();
    out.skip_sequence_to(u64::from(u32::MAX) - 1);
    let mut buf = vec![0u8; HEADROOM + 10 + TAILROOM];
    assert!(out.seal(&mut buf, HEADROOM..HEADROOM + 10, 4).is_ok(), "2^32 - 1 is the last number");
    assert_eq!(out.seal(&mut buf, HEADROOM..HEADROOM + 10, 4), Err(EspError::SequenceExhausted));
    assert_eq!(out.seal(&mut buf, HEADROOM..HEADROOM + 10, 4), Err(EspError::SequenceExhausted));
    assert_eq!(out.sequence_number(), u64::from(u32::MAX));
    // Buffers without the room are refused, not overrun.
    let out = OutboundSa::new(&p, &params).unwrap();
    assert_eq!(out.seal(&mut buf, 4..14, 4), Err(EspError::Buffer));
    assert_eq!(out.seal(&mut buf[..HEADROOM + 12], HEADROOM..HEADROOM + 10, 4), Err(EspError::Buffer));
}

#[test]
fn esn_crosses_two_to_the_32() {
    let p = provider();
    for (name, encr, integ) in suites() {
        let params = params(0x8000, encr, integ, true, 5);
        let out = OutboundSa::new(&p, &params).unwrap();
        let inb = InboundSa::new(&p, &params, 64).unwrap();
        out.skip_sequence_to((1 << 32) - 3);
        inb.skip_window_to((1 << 32) - 3);
        let pkts: Vec<Vec<u8>> = (0..6).map(|i| seal(&out, &[i; 9], 4)).collect();
        // Sent 2^32-2 .. 2^32+3; the header carries only the low bits.
        assert_eq!(pkts[5][4..8], [0, 0, 0, 3]);
        for (i, pkt) in pkts.iter().enumerate().rev() {
            let o = inb.open(&mut pkt.clone()).unwrap_or_else(|e| panic!("{name} {i}: {e}"));
            assert_eq!(o.sequence_number, (1 << 32) - 2 + i as u64, "{name}");
        }
    }
}
