//! Reading a stream into frames (RFC 9329 §3, §4).

use crate::{LENGTH_LEN, MAX_FRAME, NON_ESP_MARKER, PREFIX};

/// What one frame carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An IKE message, the non-ESP marker removed (§3.1).
    Ike(&'a mut [u8]),
    /// An ESP packet, from its SPI on (§3.2); open it in place.
    Esp(&'a mut [u8]),
    /// A NAT keepalive (the one octet 0xFF of RFC 3948 §2.3). Not needed over TCP (§6), but a
    /// peer may send one: it is ignored.
    Keepalive,
    /// A frame that is neither: a marker with nothing behind it, or shorter than an ESP header.
    /// The length field still delimits it, so the stream goes on; the frame is dropped.
    Invalid,
}

/// Why a stream cannot be read further. Nothing in a frame's body can cause these: only a prefix
/// or a length field that leaves no way to find the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The stream does not begin with `IKETCP` (§4): not IKE over TCP at all.
    #[error("the stream does not begin with the IKETCP prefix")]
    BadPrefix,
    /// A length field below 2 cannot count itself (§3): the frames that follow cannot be found.
    #[error("frame length {0} is shorter than the length field")]
    BadLength(u16),
}

/// Shortest ESP packet: SPI and sequence number (RFC 4303 §2).
const ESP_HEADER: usize = 8;

/// A stream decoder with a buffer of fixed size. Read from the socket into [`Decoder::spare`],
/// [`Decoder::commit`] what was read, then take frames with [`Decoder::next_frame`] until it
/// returns `Ok(None)`.
#[derive(Debug)]
pub struct Decoder {
    buf: Box<[u8]>,
    /// Where the octets not yet taken begin.
    start: usize,
    /// Where they end.
    end: usize,
    /// The prefix is still to come (the responder's side of a stream, §4).
    expect_prefix: bool,
    failed: Option<StreamError>,
}

impl Decoder {
    /// The buffer's size: two of the longest frames and the prefix, so that after compaction a
    /// whole frame always fits behind what is buffered, and one read can bring many frames.
    pub const CAPACITY: usize = 2 * MAX_FRAME + PREFIX.len();

    /// A decoder for the side that accepted the stream (`expect_prefix`: the opener's prefix comes
    /// first, §4) or for the side that opened it (no prefix comes back).
    pub fn new(expect_prefix: bool) -> Self {
        Self { buf: vec![0; Self::CAPACITY].into_boxed_slice(), start: 0, end: 0, expect_prefix, failed: None }
    }

    /// Room for the next read. A frame not yet complete is moved to the front first when the room
    /// behind it would be too small for the rest of it, so the room is empty only when the caller
    /// left complete frames in the buffer without taking them.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if Self::CAPACITY.saturating_sub(self.end) < MAX_FRAME {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// `n` octets were read into [`Decoder::spare`].
    pub fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(Self::CAPACITY);
    }

    /// Octets buffered and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Whether the stream failed (and every further call says so).
    pub fn failed(&self) -> Option<StreamError> {
        self.failed
    }

    /// The next complete frame, `Ok(None)` when more octets are needed, or the error that ends the
    /// stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        if self.expect_prefix {
            // Refuse as soon as the octets that are there disagree: a stranger that is not IKE
            // (a TLS ClientHello, a port scanner) is turned away without waiting for six octets.
            let n = avail.len().min(PREFIX.len());
            if avail.get(..n) != PREFIX.get(..n) {
                return Err(self.fail(StreamError::BadPrefix));
            }
            if n < PREFIX.len() {
                return Ok(None);
            }
            self.expect_prefix = false;
            self.start += PREFIX.len();
        }
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        let Some(&[hi, lo]) = avail.get(..LENGTH_LEN) else { return Ok(None) };
        let len = u16::from_be_bytes([hi, lo]);
        let n = usize::from(len);
        if n < LENGTH_LEN {
            return Err(self.fail(StreamError::BadLength(len)));
        }
        if avail.len() < n {
            return Ok(None);
        }
        let body = self.start + LENGTH_LEN..self.start + n;
        self.start += n;
        let Some(body) = self.buf.get_mut(body) else { return Ok(Some(Frame::Invalid)) };
        Ok(Some(classify(body)))
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.failed = Some(e);
        e
    }
}

/// A frame's body: a keepalive, IKE behind the non-ESP marker, or ESP (whose SPI, its first four
/// octets, is never zero, RFC 4303 §2.1).
fn classify(body: &mut [u8]) -> Frame<'_> {
    if body == [0xff] {
        return Frame::Keepalive;
    }
    if body.starts_with(&NON_ESP_MARKER) {
        return match body.get_mut(NON_ESP_MARKER.len()..) {
            Some(ike) if !ike.is_empty() => Frame::Ike(ike),
            _ => Frame::Invalid,
        };
    }
    if body.len() >= ESP_HEADER { Frame::Esp(body) } else { Frame::Invalid }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut Decoder, mut data: &[u8]) {
        while !data.is_empty() {
            let spare = d.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            d.commit(n);
            data = &data[n..];
        }
    }

    #[test]
    fn prefix_then_frames() {
        let mut d = Decoder::new(true);
        let mut stream = b"IKETCP".to_vec();
        stream.extend_from_slice(&[0, 10, 0, 0, 0, 0, 1, 2, 3, 4]); // IKE, 4 octets
        stream.extend_from_slice(&[0, 10, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1]); // ESP
        stream.extend_from_slice(&[0, 3, 0xff]); // keepalive
        stream.extend_from_slice(&[0, 6, 0, 0, 0, 0]); // marker alone
        stream.extend_from_slice(&[0, 5, 1, 2, 3]); // too short for ESP
        stream.extend_from_slice(&[0, 2]); // empty
        feed(&mut d, &stream);
        assert_eq!(d.next_frame(), Ok(Some(Frame::Ike(&mut [1, 2, 3, 4]))));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Esp(&mut [0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1]))));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Keepalive)));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Invalid)));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Invalid)));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Invalid)));
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn byte_by_byte() {
        let mut d = Decoder::new(true);
        let stream = [b"IKETCP".as_slice(), &[0, 7, 0, 0, 0, 0, 9]].concat();
        for (i, b) in stream.iter().enumerate() {
            assert_eq!(d.next_frame(), Ok(None), "at {i}");
            feed(&mut d, &[*b]);
        }
        assert_eq!(d.next_frame(), Ok(Some(Frame::Ike(&mut [9]))));
    }

    #[test]
    fn a_wrong_prefix_fails_at_the_first_wrong_octet() {
        let mut d = Decoder::new(true);
        feed(&mut d, b"IKE");
        assert_eq!(d.next_frame(), Ok(None));
        feed(&mut d, b"x");
        assert_eq!(d.next_frame(), Err(StreamError::BadPrefix));
        // It stays failed.
        feed(&mut d, b"TCP");
        assert_eq!(d.next_frame(), Err(StreamError::BadPrefix));
        // A TLS ClientHello starts with 0x16.
        let mut d = Decoder::new(true);
        feed(&mut d, &[0x16, 3, 1]);
        assert_eq!(d.next_frame(), Err(StreamError::BadPrefix));
    }

    #[test]
    fn the_opener_gets_no_prefix_back() {
        let mut d = Decoder::new(false);
        feed(&mut d, &[0, 7, 0, 0, 0, 0, 5]);
        assert_eq!(d.next_frame(), Ok(Some(Frame::Ike(&mut [5]))));
        // A prefix where a frame belongs is a frame of length 0x494b: it waits for the rest.
        feed(&mut d, b"IKETCP");
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn length_below_two_ends_the_stream() {
        for len in [0u8, 1] {
            let mut d = Decoder::new(false);
            feed(&mut d, &[0, len, 0, 0]);
            assert_eq!(d.next_frame(), Err(StreamError::BadLength(u16::from(len))));
        }
    }

    #[test]
    fn the_longest_frames_fit_and_the_buffer_never_grows() {
        let mut d = Decoder::new(false);
        let mut frame = vec![0xff, 0xff];
        frame.extend(std::iter::repeat_n(0x11, crate::MAX_ESP));
        for round in 0..5 {
            feed(&mut d, &frame[..1000]);
            assert_eq!(d.next_frame(), Ok(None));
            feed(&mut d, &frame[1000..]);
            match d.next_frame() {
                Ok(Some(Frame::Esp(esp))) => assert_eq!(esp.len(), crate::MAX_ESP, "round {round}"),
                other => panic!("round {round}: {other:?}"),
            }
            assert!(d.buf.len() == Decoder::CAPACITY);
        }
    }
}
