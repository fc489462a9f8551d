//! Packets that come before their SA, held for a moment in small preallocated rings.
//!
//! - ESP for an SPI we do not know yet. The responder of an exchange that makes a CHILD SA
//!   installs it when it sends its answer, and strongSwan (like most implementations) sends on it at
//!   once. Its first packets can then reach us before the answer does. They are kept by SPI and
//!   handed over when an SA with that SPI is installed.
//! - Cleartext from the TUN device that a trap caught (`start_action`/`dpd_action = "trap"`,
//!   RFC 7296 §2.9's "acquire"). It is kept while the trap's IKE SA comes up and sent on the new
//!   CHILD SA if that SA's selectors admit it, so the first packet of a connection is not lost.
//!
//! Anyone can send datagrams with made-up SPIs, so each ring is small and allocated up front. A
//! flood only overwrites other held packets and costs a copy each. Nothing in a ring is decrypted
//! unless an SA with its SPI appears, and then it fails authentication like any forgery.

use std::time::{Duration, Instant};

/// Slots in the ring.
pub const EARLY_SLOTS: usize = 32;
/// The largest datagram kept: one ESP packet of a full-size inner packet, with room to spare.
pub const EARLY_BYTES: usize = 2048;
/// How long an early ESP packet is worth keeping: an IKE round trip and a bit.
pub const EARLY_AGE: Duration = Duration::from_secs(2);
/// How long a trapped packet is worth keeping: a connection that takes longer to come up would
/// deliver it later than the sender's own retransmission.
pub const HELD_AGE: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Slot {
    at: Option<Instant>,
    key: u32,
    len: usize,
    data: Box<[u8]>,
}

/// A ring of packets with a key (an SPI, or 0), oldest overwritten first.
#[derive(Debug)]
pub struct PacketRing {
    slots: Vec<Slot>,
    /// The slot written next: the oldest.
    next: usize,
    /// Slots holding a packet.
    used: usize,
}

impl PacketRing {
    /// A ring of `slots` packets of up to `bytes` octets each, allocated now.
    pub fn new(slots: usize, bytes: usize) -> Self {
        let slots = (0..slots.max(1))
            .map(|_| Slot { at: None, key: 0, len: 0, data: vec![0; bytes].into_boxed_slice() })
            .collect();
        PacketRing { slots, next: 0, used: 0 }
    }

    /// Keeps `pkt` under `key`, overwriting the oldest packet. False if it is too large to keep.
    pub fn keep(&mut self, now: Instant, key: u32, pkt: &[u8]) -> bool {
        let n = self.slots.len();
        let Some(slot) = self.slots.get_mut(self.next) else { return false };
        let Some(dst) = slot.data.get_mut(..pkt.len()) else { return false };
        dst.copy_from_slice(pkt);
        if slot.at.is_none() {
            self.used += 1;
        }
        (slot.at, slot.key, slot.len) = (Some(now), key, pkt.len());
        self.next = (self.next + 1) % n;
        true
    }

    /// Offers each packet kept no longer than `max_age` ago to `f`, oldest first, with its key;
    /// frees those `f` takes (returns true for) and those too old.
    pub fn take(&mut self, now: Instant, max_age: Duration, mut f: impl FnMut(u32, &mut [u8]) -> bool) {
        let n = self.slots.len();
        for i in 0..n {
            let Some(slot) = self.slots.get_mut((self.next + i) % n) else { continue };
            let Some(at) = slot.at else { continue };
            let fresh = now.saturating_duration_since(at) <= max_age;
            let taken = fresh && slot.data.get_mut(..slot.len).is_some_and(|pkt| f(slot.key, pkt));
            if taken || !fresh {
                slot.at = None;
                self.used = self.used.saturating_sub(1);
            }
        }
    }

    /// Whether no packet is kept: then there is nothing to offer, and nothing to prepare for it.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(ring: &mut PacketRing, now: Instant, spi: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        ring.take(now, EARLY_AGE, |key, p| {
            if key == spi {
                out.push(p.to_vec());
            }
            key == spi
        });
        out
    }

    #[test]
    fn packets_come_back_once_in_order_for_their_key_only() {
        let t = Instant::now();
        let mut ring = PacketRing::new(4, 16);
        assert!(ring.keep(t, 7, b"a1"));
        assert!(ring.keep(t, 9, b"b1"));
        assert!(ring.keep(t, 7, b"a2"));
        assert_eq!(taken(&mut ring, t, 7), [b"a1".to_vec(), b"a2".to_vec()]);
        assert!(taken(&mut ring, t, 7).is_empty(), "each packet is handed over once");
        assert!(!ring.is_empty());
        assert_eq!(taken(&mut ring, t, 9), [b"b1".to_vec()]);
        assert!(ring.is_empty(), "every packet was taken");
    }

    #[test]
    fn the_ring_is_bounded_and_forgets_what_is_old_or_too_large() {
        let t = Instant::now();
        let mut ring = PacketRing::new(2, 4);
        assert!(!ring.keep(t, 1, b"too large"), "larger than a slot");
        for p in [b"p1", b"p2", b"p3"] {
            assert!(ring.keep(t, 1, p));
        }
        assert_eq!(taken(&mut ring, t, 1), [b"p2".to_vec(), b"p3".to_vec()], "the oldest was overwritten");
        assert!(ring.is_empty(), "an overwritten packet is not counted twice");
        assert!(ring.keep(t, 1, b"p4"));
        assert!(taken(&mut ring, t + EARLY_AGE + Duration::from_millis(1), 1).is_empty(), "too old");
        assert!(taken(&mut ring, t, 1).is_empty(), "and freed");
        assert!(ring.is_empty());
    }
}
