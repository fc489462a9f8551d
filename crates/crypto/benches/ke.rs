#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Key exchange throughput on one core: operations per second for each method.
//!
//! - `keygen`: `start` — a key pair and its KE data (the initiator's side).
//! - `complete`: the initiator's `complete` with the responder's KE data — the shared secret (DH) or the
//!   decapsulation (ML-KEM), peer validation included.
//! - `respond`: the responder's whole side — validation, a key pair and the shared secret (DH), or the
//!   encapsulation (ML-KEM).
//!
//! Run with `cargo bench -p oxswan-crypto --bench ke`. Each figure is measured for about
//! [`TARGET`]; the whole run takes about half a minute.

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxswan_crypto::ke::DefaultKe;
use oxswan_crypto::provider::{KeProvider, KeyExchange};
use oxswan_wire::KeId;

/// Measuring time per figure.
const TARGET: Duration = Duration::from_millis(400);

/// Runs `op` repeatedly for about [`TARGET`]; operations per second.
fn rate(mut op: impl FnMut()) -> f64 {
    // Warm-up.
    op();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < TARGET {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `complete` needs a fresh key pair each time: prepare batches outside the timed part.
fn complete_rate(ke: &DefaultKe, group: KeId) -> f64 {
    const BATCH: usize = 16;
    let mut timed = Duration::ZERO;
    let mut n = 0u64;
    while timed < TARGET {
        let batch: Vec<(Box<dyn KeyExchange>, Vec<u8>)> = (0..BATCH)
            .map(|_| {
                let kx = ke.start(group).unwrap();
                let (ker, _) = ke.respond(group, kx.public_value()).unwrap();
                (kx, ker)
            })
            .collect();
        let start = Instant::now();
        for (kx, ker) in batch {
            black_box(kx.complete(black_box(&ker)).unwrap());
        }
        timed += start.elapsed();
        n += BATCH as u64;
    }
    n as f64 / timed.as_secs_f64()
}

fn main() {
    let ke = DefaultKe { allow_modp1024: true };
    let groups = [
        ("curve25519", KeId::CURVE25519),
        ("ecp256", KeId::ECP256),
        ("ecp384", KeId::ECP384),
        ("ecp521", KeId::ECP521),
        ("modp1024", KeId::MODP1024),
        ("modp2048", KeId::MODP2048),
        ("modp3072", KeId::MODP3072),
        ("modp4096", KeId::MODP4096),
        ("mlkem512", KeId::ML_KEM_512),
        ("mlkem768", KeId::ML_KEM_768),
        ("mlkem1024", KeId::ML_KEM_1024),
    ];
    println!("key exchange, one core, operations per second (~{} ms each)", TARGET.as_millis());
    println!("{:<12} {:>5} {:>12} {:>12} {:>12}", "method", "id", "keygen/s", "complete/s", "respond/s");
    let t0 = Instant::now();
    for (name, group) in groups {
        let keygen = rate(|| {
            let kx = ke.start(group).unwrap();
            black_box(kx.public_value());
        });
        let complete = complete_rate(&ke, group);
        let initiator = ke.start(group).unwrap();
        let kei = initiator.public_value().to_vec();
        let respond = rate(|| {
            black_box(ke.respond(group, black_box(&kei)).unwrap());
        });
        println!("{name:<12} {:>5} {keygen:>12.0} {complete:>12.0} {respond:>12.0}", u16::from(group));
    }
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
}
