//! What waits to be written to one stream: the prefix, IKE frames, then ESP frames (RFC 9329 §4,
//! §9).

use std::collections::VecDeque;

use crate::{EncodeError, LENGTH_LEN, MAX_FRAME, PREFIX, push_esp, push_ike};

/// What a queue dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// ESP packets dropped because the ESP part was full.
    pub esp_dropped: u64,
    /// IKE messages dropped because the IKE part was full (IKE retransmits them).
    pub ike_dropped: u64,
}

/// The frames waiting for one stream.
///
/// IKE and ESP share the stream, and TCP delivers in order: an IKE message queued behind megabytes
/// of ESP would wait for all of it, and a liveness check or a rekey could time out while the tunnel
/// is merely busy (the head-of-line blocking RFC 9329 §9 warns of). So every [`SendQueue::take`]
/// puts all waiting IKE frames before any ESP; the ESP part is bounded in octets, and a packet that
/// does not fit is dropped, as a router drops what its queue cannot hold (the inner TCP flows slow
/// down, §9 on TCP-in-TCP). Frames are never split between takes, so a writer that writes each take
/// completely before the next keeps the stream's framing intact, and an IKE message waits at most
/// for one take already being written.
#[derive(Debug)]
pub struct SendQueue {
    prefix: bool,
    ike: VecDeque<Vec<u8>>,
    esp: Vec<u8>,
    esp_limit: usize,
    ike_limit: usize,
    stats: QueueStats,
}

impl SendQueue {
    /// A queue for a stream we open (`opener`: the prefix goes first, §4) or accepted; ESP up to
    /// `esp_limit` octets and up to `ike_limit` IKE messages may wait.
    pub fn new(opener: bool, esp_limit: usize, ike_limit: usize) -> Self {
        Self {
            prefix: opener,
            ike: VecDeque::new(),
            esp: Vec::new(),
            esp_limit,
            ike_limit,
            stats: QueueStats::default(),
        }
    }

    /// Queues an IKE message; false if it was dropped (the IKE part is full, or it is too long).
    pub fn push_ike(&mut self, ike: &[u8]) -> Result<bool, EncodeError> {
        if self.ike.len() >= self.ike_limit {
            self.stats.ike_dropped = self.stats.ike_dropped.saturating_add(1);
            return Ok(false);
        }
        let mut frame = Vec::with_capacity(ike.len().saturating_add(6));
        push_ike(&mut frame, ike)?;
        self.ike.push_back(frame);
        Ok(true)
    }

    /// Queues an ESP packet; false if it was dropped because the ESP part is full.
    pub fn push_esp(&mut self, esp: &[u8]) -> Result<bool, EncodeError> {
        if self.esp.len().saturating_add(esp.len()).saturating_add(LENGTH_LEN) > self.esp_limit {
            crate::esp_header(esp.len())?;
            self.stats.esp_dropped = self.stats.esp_dropped.saturating_add(1);
            return Ok(false);
        }
        push_esp(&mut self.esp, esp)?;
        Ok(true)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        !self.prefix && self.ike.is_empty() && self.esp.is_empty()
    }

    /// Octets of ESP waiting.
    pub fn esp_queued(&self) -> usize {
        self.esp.len()
    }

    /// IKE messages waiting.
    pub fn ike_queued(&self) -> usize {
        self.ike.len()
    }

    /// What was dropped so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Moves whole frames into `out` for one write: the prefix if it is still to go, every IKE
    /// frame, then ESP frames while they fit in `max` octets (at least one frame, and `max` is
    /// raised to the longest frame). `out` is appended to; the caller clears it between writes.
    pub fn take(&mut self, out: &mut Vec<u8>, max: usize) {
        let max = max.max(MAX_FRAME);
        if core::mem::take(&mut self.prefix) {
            out.extend_from_slice(&PREFIX);
        }
        // IKE first, whatever the size: a few messages at most (`ike_limit`).
        while let Some(f) = self.ike.pop_front() {
            out.extend_from_slice(&f);
        }
        let room = max.saturating_sub(out.len());
        if self.esp.len() <= room {
            out.extend_from_slice(&self.esp);
            self.esp.clear();
            return;
        }
        // Cut at a frame boundary: walk the length fields.
        let mut cut = 0usize;
        while let Some(&[hi, lo]) = self.esp.get(cut..cut.saturating_add(LENGTH_LEN)) {
            let next = cut.saturating_add(usize::from(u16::from_be_bytes([hi, lo])).max(LENGTH_LEN));
            if next > room && cut > 0 {
                break;
            }
            cut = next.min(self.esp.len());
            if next > room {
                break;
            }
        }
        out.extend(self.esp.drain(..cut));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_goes_before_queued_esp_and_esp_is_bounded() {
        let mut q = SendQueue::new(true, 100, 2);
        for i in 0..10u8 {
            q.push_esp(&[i + 1; 20]).unwrap();
        }
        // 100 octets hold four 22-octet frames.
        assert_eq!(q.esp_queued(), 88);
        assert_eq!(q.stats().esp_dropped, 6);
        assert!(q.push_ike(&[7; 30]).unwrap());
        assert!(q.push_ike(&[8; 30]).unwrap());
        assert!(!q.push_ike(&[9; 30]).unwrap());
        assert_eq!(q.stats().ike_dropped, 1);
        let mut out = Vec::new();
        q.take(&mut out, 0);
        assert_eq!(&out[..6], b"IKETCP");
        assert_eq!(&out[6..12], &[0, 36, 0, 0, 0, 0]);
        assert_eq!(out[12], 7);
        assert_eq!(&out[42..44], &[0, 36]);
        assert_eq!(out[48], 8);
        // Then the ESP frames, in order.
        assert_eq!(&out[78..81], &[0, 22, 1]);
        assert_eq!(out.len(), 6 + 2 * 36 + 88);
        assert!(q.is_empty());
        out.clear();
        q.take(&mut out, 0);
        assert!(out.is_empty(), "the prefix goes once");
    }
}
