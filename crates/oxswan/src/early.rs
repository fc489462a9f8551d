//! ESP that arrives before its SA is installed, held for a moment.
//!
//! The responder of an exchange that makes a CHILD SA installs it when it sends its answer, and
//! strongSwan (like most implementations) sends on it at once. Its first packets can then reach us
//! before the answer does, for an SPI we do not know yet. Instead of dropping them, a few are kept
//! in a fixed ring and handed over when an SA with their SPI is installed within `max_age`.
//!
//! Anyone can send datagrams with made-up SPIs, so the ring is small and preallocated: a flood
//! only overwrites other early packets, costs a copy each, and is never decrypted unless an SA with
//! that SPI appears (and then fails authentication like any forgery).

use std::time::{Duration, Instant};

/// Slots in the ring.
pub const EARLY_SLOTS: usize = 32;
/// The largest datagram kept: one ESP packet of a full-size inner packet, with room to spare.
pub const EARLY_BYTES: usize = 2048;
/// How long a packet is worth keeping: an IKE round trip and a bit.
pub const EARLY_AGE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Slot {
    at: Option<Instant>,
    spi: u32,
    len: usize,
    data: Box<[u8]>,
}

/// A ring of ESP packets whose SPI had no SA, oldest overwritten first.
#[derive(Debug)]
pub struct EarlyEsp {
    slots: Vec<Slot>,
    /// The slot written next: the oldest.
    next: usize,
}

impl EarlyEsp {
    /// A ring of `slots` packets of up to `bytes` octets each, allocated now.
    pub fn new(slots: usize, bytes: usize) -> Self {
        let slots = (0..slots.max(1))
            .map(|_| Slot { at: None, spi: 0, len: 0, data: vec![0; bytes].into_boxed_slice() })
            .collect();
        EarlyEsp { slots, next: 0 }
    }

    /// Keeps `pkt`, an ESP packet for `spi` (its first four octets), overwriting the oldest one.
    /// False if it is too large to keep.
    pub fn keep(&mut self, now: Instant, spi: u32, pkt: &[u8]) -> bool {
        let n = self.slots.len();
        let Some(slot) = self.slots.get_mut(self.next) else { return false };
        let Some(dst) = slot.data.get_mut(..pkt.len()) else { return false };
        dst.copy_from_slice(pkt);
        (slot.at, slot.spi, slot.len) = (Some(now), spi, pkt.len());
        self.next = (self.next + 1) % n;
        true
    }

    /// Hands each packet kept for `spi` no longer than `max_age` ago to `f`, oldest first, and
    /// frees every slot it looked at that is for `spi` or too old.
    pub fn take(&mut self, now: Instant, spi: u32, max_age: Duration, mut f: impl FnMut(&mut [u8])) {
        let n = self.slots.len();
        for i in 0..n {
            let Some(slot) = self.slots.get_mut((self.next + i) % n) else { continue };
            let Some(at) = slot.at else { continue };
            let fresh = now.saturating_duration_since(at) <= max_age;
            if fresh && slot.spi == spi {
                if let Some(pkt) = slot.data.get_mut(..slot.len) {
                    f(pkt);
                }
            }
            if !fresh || slot.spi == spi {
                slot.at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(ring: &mut EarlyEsp, now: Instant, spi: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        ring.take(now, spi, EARLY_AGE, |p| out.push(p.to_vec()));
        out
    }

    #[test]
    fn packets_come_back_once_in_order_for_their_spi_only() {
        let t = Instant::now();
        let mut ring = EarlyEsp::new(4, 16);
        assert!(ring.keep(t, 7, b"a1"));
        assert!(ring.keep(t, 9, b"b1"));
        assert!(ring.keep(t, 7, b"a2"));
        assert_eq!(taken(&mut ring, t, 7), [b"a1".to_vec(), b"a2".to_vec()]);
        assert!(taken(&mut ring, t, 7).is_empty(), "each packet is handed over once");
        assert_eq!(taken(&mut ring, t, 9), [b"b1".to_vec()]);
    }

    #[test]
    fn the_ring_is_bounded_and_forgets_what_is_old_or_too_large() {
        let t = Instant::now();
        let mut ring = EarlyEsp::new(2, 4);
        assert!(!ring.keep(t, 1, b"too large"), "larger than a slot");
        for p in [b"p1", b"p2", b"p3"] {
            assert!(ring.keep(t, 1, p));
        }
        assert_eq!(taken(&mut ring, t, 1), [b"p2".to_vec(), b"p3".to_vec()], "the oldest was overwritten");
        assert!(ring.keep(t, 1, b"p4"));
        assert!(taken(&mut ring, t + EARLY_AGE + Duration::from_millis(1), 1).is_empty(), "too old");
        assert!(taken(&mut ring, t, 1).is_empty(), "and freed");
    }
}
