//! A bounded reader over untrusted bytes.

use crate::error::{Context, Error, ErrorKind, Result};

/// Reads big-endian fields from a slice, never past its end.
///
/// Every read either returns the field or an [`Error`] carrying the reader's [`Context`] and the absolute
/// offset (from the start of the message) of the field that could not be read. A length-prefixed body is
/// read with [`Reader::sub`]; [`Reader::finish`] rejects trailing bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    context: Context,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which starts at offset 0 of the message.
    pub fn new(buf: &'a [u8], context: Context) -> Self {
        Self::with_base(buf, 0, context)
    }

    /// A reader over `buf`, which starts at offset `base` of the message (for error reports).
    pub fn with_base(buf: &'a [u8], base: usize, context: Context) -> Self {
        Self { buf, pos: 0, base, context }
    }

    /// The same bytes under another context.
    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Offset of the next byte from the start of the message.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error at the current offset.
    pub fn error(&self, kind: ErrorKind) -> Error {
        Error::new(self.context, self.offset(), kind)
    }

    /// An error at the current offset, in another context.
    pub fn error_in(&self, context: Context, kind: ErrorKind) -> Error {
        Error::new(context, self.offset(), kind)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end).map(|s| (s, end))) {
            Some((s, end)) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(self.error(ErrorKind::Truncated { needed: n, available: self.remaining() })),
        }
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// A big-endian 16-bit integer.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian 32-bit integer.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian 64-bit integer.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A reader over the next `n` bytes, which this reader skips.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>> {
        let base = self.offset();
        let buf = self.take(n)?;
        Ok(Reader { buf, pos: 0, base, context: self.context })
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }

    /// Succeeds only if everything was read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(ErrorKind::TrailingBytes(n))),
        }
    }
}

/// Helpers for emitting big-endian fields.
pub(crate) trait PutExt {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
}

impl PutExt for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
}

/// Converts a length to the width of its field, or reports that it does not fit.
pub(crate) fn len_u16(len: usize, context: Context, field: &'static str) -> Result<u16> {
    u16::try_from(len).map_err(|_| Error::new(context, 0, ErrorKind::TooLong { field, length: len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_reports_offsets() {
        let mut r = Reader::with_base(&[1, 2, 3, 4, 5, 6, 7], 10, Context::Header);
        assert_eq!(r.u8().ok(), Some(1));
        assert_eq!(r.u16().ok(), Some(0x0203));
        assert_eq!(r.offset(), 13);
        assert_eq!(r.u16().ok(), Some(0x0405));
        let err = r.u32().err();
        assert_eq!(err, Some(Error::new(Context::Header, 15, ErrorKind::Truncated { needed: 4, available: 2 })));
        // A failed read consumes nothing.
        assert_eq!(r.u16().ok(), Some(0x0607));
    }

    #[test]
    fn sub_and_finish() {
        let mut r = Reader::new(&[2, 0xaa, 0xbb, 0xcc], Context::Header);
        let n = r.u8().map(usize::from).unwrap_or(0);
        let mut s = r.sub(n).unwrap_or_else(|_| Reader::new(&[], Context::Header));
        assert_eq!(s.offset(), 1);
        assert_eq!(s.u16().ok(), Some(0xaabb));
        assert!(s.finish().is_ok());
        assert_eq!(r.finish().err().map(|e| e.kind), Some(ErrorKind::TrailingBytes(1)));
        assert!(r.sub(2).is_err());
        assert_eq!(r.rest(), &[0xcc]);
        assert!(r.finish().is_ok());
    }
}
