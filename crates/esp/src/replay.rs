//! The anti-replay window (RFC 4303 §3.4.3, Appendix A): a bitmap of the last `size` sequence numbers
//! below the highest one seen, and the inference of the high 32 bits of an extended sequence number
//! from the low 32 bits a packet carries (Appendix A2.2).

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet carries 1).
    #[error("sequence number 0")]
    Zero,
    /// Already received.
    #[error("replayed sequence number")]
    Duplicate,
    /// Below the window.
    #[error("sequence number below the window")]
    TooOld,
}

/// The receiver's window. A ring of bits: bit `seq % size` stands for `seq` while `seq` is within
/// `size` of the highest sequence number seen.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    size: u64,
    top: u64,
    bits: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `size` packets, rounded up to a multiple of 64 (at least 64, at most 2^20).
    /// strongSwan's default is 32; ours 1024, which tolerates the reordering of a multi-queue path.
    pub fn new(size: u32) -> Self {
        let words = u64::from(size).clamp(64, 1 << 20).div_ceil(64);
        let words_usize = usize::try_from(words).unwrap_or(1);
        Self { size: words.saturating_mul(64), top: 0, bits: vec![0u64; words_usize].into_boxed_slice() }
    }

    /// The window size in packets.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number of a packet that carries `low` (RFC 4303 Appendix A2.2): with ESN, the
    /// high bits are those that put it in or just above the window; without, `low` itself.
    pub fn infer(&self, low: u32, esn: bool) -> u64 {
        if !esn {
            return u64::from(low);
        }
        let w = self.size;
        let tl = self.top & 0xffff_ffff;
        let th = self.top >> 32;
        let low = u64::from(low);
        let bottom = tl.wrapping_sub(w).wrapping_add(1) & 0xffff_ffff;
        let high = if tl >= w.saturating_sub(1) {
            // Case A: the window lies within one 2^32 subspace.
            if low >= bottom { th } else { th.wrapping_add(1) }
        } else if low >= bottom {
            // Case B: the window spans two subspaces; a large `low` is in the previous one.
            th.wrapping_sub(1)
        } else {
            th
        };
        (high << 32) | low
    }

    fn bit(&self, seq: u64) -> (usize, u64) {
        let i = seq % self.size;
        (usize::try_from(i / 64).unwrap_or(0), 1u64 << (i % 64))
    }

    /// Whether `seq` may be accepted (before its integrity is checked; [`Self::update`] records it
    /// after).
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        let (word, mask) = self.bit(seq);
        match self.bits.get(word) {
            Some(w) if w & mask != 0 => Err(ReplayError::Duplicate),
            _ => Ok(()),
        }
    }

    /// Records an authenticated `seq`, moving the window if it is the new highest. Checks again, so
    /// that of two copies racing past [`Self::check`] only one is accepted.
    pub fn update(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= self.size {
                self.bits.fill(0);
            } else {
                for s in self.top + 1..seq {
                    let (word, mask) = self.bit(s);
                    if let Some(w) = self.bits.get_mut(word) {
                        *w &= !mask;
                    }
                }
            }
            self.top = seq;
        }
        let (word, mask) = self.bit(seq);
        if let Some(w) = self.bits.get_mut(word) {
            *w |= mask;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicates_and_old() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        for s in 1..=200 {
            w.update(s).unwrap();
            assert_eq!(w.check(s), Err(ReplayError::Duplicate));
        }
        // The window holds the 64 numbers 137..=200.
        assert_eq!(w.check(137), Err(ReplayError::Duplicate), "the bottom edge is still in the window");
        assert_eq!(w.check(136), Err(ReplayError::TooOld));
        assert!(w.check(201).is_ok());
    }

    #[test]
    fn reordering_within_the_window() {
        let mut w = ReplayWindow::new(1024);
        assert_eq!(w.size(), 1024);
        w.update(1000).unwrap();
        for s in (1..1000).rev() {
            w.update(s).unwrap();
        }
        assert_eq!(w.update(500), Err(ReplayError::Duplicate));
        // A jump further than the window clears it.
        w.update(5000).unwrap();
        assert!(w.check(4000).is_ok());
        assert_eq!(w.check(3976), Err(ReplayError::TooOld));
        // A jump within the window keeps the bits of what is still inside.
        w.update(5100).unwrap();
        assert_eq!(w.check(5000), Err(ReplayError::Duplicate));
        assert!(w.check(5050).is_ok());
    }

    #[test]
    fn sizes_are_rounded() {
        assert_eq!(ReplayWindow::new(0).size(), 64);
        assert_eq!(ReplayWindow::new(100).size(), 128);
        assert_eq!(ReplayWindow::new(u32::MAX).size(), 1 << 20);
    }

    #[test]
    fn esn_inference_appendix_a() {
        let mut w = ReplayWindow::new(64);
        // Case A: the window within the first subspace.
        w.update(1000).unwrap();
        assert_eq!(w.infer(990, true), 990);
        assert_eq!(w.infer(2000, true), 2000);
        assert_eq!(w.infer(10, true), (1 << 32) | 10, "below the window: the next subspace");
        // Near the top of a subspace, then across it.
        let mut w = ReplayWindow::new(64);
        w.update(0xffff_fff0).unwrap();
        assert_eq!(w.infer(0xffff_ffff, true), 0xffff_ffff);
        assert_eq!(w.infer(3, true), (1 << 32) | 3);
        w.update((1 << 32) | 3).unwrap();
        // Case B: the window spans two subspaces.
        assert_eq!(w.infer(0xffff_fffe, true), 0xffff_fffe, "previous subspace");
        assert_eq!(w.infer(2, true), (1 << 32) | 2);
        assert_eq!(w.infer(100, true), (1 << 32) | 100, "ahead");
        assert_eq!(w.update(0xffff_fff0), Err(ReplayError::Duplicate));
        assert!(w.update(0xffff_fff5).is_ok());
        // Without ESN the low bits are the number.
        assert_eq!(w.infer(7, false), 7);
    }

    proptest::proptest! {
        /// Against a set model: accepted exactly when new and not older than the window.
        #[test]
        fn matches_a_model(seqs in proptest::collection::vec(1u64..3000, 1..400), size in 1u32..300) {
            let mut w = ReplayWindow::new(size);
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for s in seqs {
                let expected = !seen.contains(&s) && (s > top || top - s < w.size());
                proptest::prop_assert_eq!(w.update(s).is_ok(), expected, "seq {} top {}", s, top);
                if expected {
                    seen.insert(s);
                    top = top.max(s);
                }
            }
        }
    }
}
