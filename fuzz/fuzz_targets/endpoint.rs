//! Drives `Endpoint::handle_datagram` of two endpoints that completed a handshake with the
//! NO-SECURITY test provider (null cipher), so forged SK payloads get past the integrity check and
//! reach the exchange logic: IKE_AUTH, INFORMATIONAL, DELETE, retransmission caches.
//!
//! Input: records of `[target: u8][len: u16 BE][bytes]`. Bit 0 of `target` picks the endpoint, bit 1
//! the port (500/4500), bits 2.. advance the clock by that many seconds first. After every record the
//! endpoints' output is delivered to each other, as a network would.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

#[path = "../common/endpoint_pair.rs"]
mod endpoint_pair;
use endpoint_pair::{addr, endpoints, exchange, next_record};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let Some(mut eps) = endpoints(now, |_, _| {}) else { return };
    let mut rest = data;
    while let Some((target, datagram)) = next_record(&mut rest) {
        now += Duration::from_secs(u64::from(target >> 2));
        let to = usize::from(target & 1);
        let port = if target & 2 == 0 { 500 } else { 4500 };
        for ep in eps.iter_mut() {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        eps[to].handle_datagram(now, addr(1 + to as u8, port), addr(2 - to as u8, port), datagram);
        exchange(&mut eps, now, |_, _| {});
    }
});
