//! The generic payload chain (RFC 7296 §3.2) and the owned [`Payload`] enum.

use crate::cp::CpPayload;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::id::IdPayload;
use crate::notify::{DeletePayload, NotifyPayload};
use crate::payloads::{
    AuthPayload, CertPayload, CertReqPayload, EapPayload, KePayload, NoncePayload, UnknownPayload, VendorIdPayload,
};
use crate::reader::{PutExt, Reader, len_u16};
use crate::sa::SaPayload;
use crate::sk::{SkPayload, SkfPayload};
use crate::ts::TsPayload;
use crate::types::PayloadType;

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// The critical bit of the generic payload header (RFC 7296 §3.2).
const CRITICAL: u8 = 0x80;

/// One payload of a chain, its body not yet parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type (named by the previous Next Payload field).
    pub payload_type: PayloadType,
    /// The Next Payload field. For SK and SKF this is the type of the first *encrypted* payload
    /// (RFC 7296 §3.14, RFC 7383 §2.5).
    pub next_payload: PayloadType,
    /// The critical bit.
    pub critical: bool,
    /// The body, after the 4-octet generic header.
    pub body: &'a [u8],
    /// Offset of the generic header from the start of the message.
    pub offset: usize,
}

impl RawPayload<'_> {
    /// Offset of the body from the start of the message.
    pub fn body_offset(&self) -> usize {
        self.offset.saturating_add(GENERIC_HEADER_LEN)
    }

    /// A reader over the body, reporting errors against this payload.
    pub fn reader(&self) -> Reader<'_> {
        Reader::with_base(self.body, self.body_offset(), Context::Payload(self.payload_type))
    }
}

/// Iterator over a payload chain.
///
/// Yields each payload until the Next Payload field says "none", then checks that no bytes are left.
/// An SK or SKF payload must be the last one (RFC 7296 §3.14): it ends the walk. After an error the
/// iterator yields nothing more.
#[derive(Debug, Clone)]
pub struct Payloads<'a> {
    next: PayloadType,
    reader: Reader<'a>,
    done: bool,
}

impl<'a> Payloads<'a> {
    /// Walks the chain in `bytes`, whose first payload has type `first` and which starts at `offset` of
    /// the message.
    pub fn new(first: PayloadType, bytes: &'a [u8], offset: usize) -> Self {
        Self { next: first, reader: Reader::with_base(bytes, offset, Context::Payload(first)), done: false }
    }

    fn read_one(&mut self) -> Result<RawPayload<'a>> {
        let ty = self.next;
        let offset = self.reader.offset();
        let mut r = self.reader.clone().context(Context::Payload(ty));
        let next_payload = PayloadType(r.u8()?);
        let critical = r.u8()? & CRITICAL != 0;
        let length = usize::from(r.u16()?);
        let body_len = length.checked_sub(GENERIC_HEADER_LEN).ok_or_else(|| {
            Error::new(
                Context::Payload(ty),
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "shorter than the generic payload header" },
            )
        })?;
        let body = r.take(body_len).map_err(|_| {
            Error::new(
                Context::Payload(ty),
                offset.saturating_add(2),
                ErrorKind::BadLength { length, reason: "runs past the end of the message" },
            )
        })?;
        let raw = RawPayload { payload_type: ty, next_payload, critical, body, offset };
        if ty == PayloadType::SK || ty == PayloadType::SKF {
            r.finish().map_err(|e| Error { kind: ErrorKind::UnexpectedPayload(next_payload), ..e })?;
            self.next = PayloadType::NONE;
        } else {
            self.next = next_payload;
        }
        self.reader = r;
        Ok(raw)
    }
}

impl<'a> Iterator for Payloads<'a> {
    type Item = Result<RawPayload<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.next == PayloadType::NONE {
            self.done = true;
            return match self.reader.finish() {
                Ok(()) => None,
                Err(e) => Some(Err(e)),
            };
        }
        let item = self.read_one();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

/// A payload in owned form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Payload {
    Sa(SaPayload),
    Ke(KePayload),
    IdI(IdPayload),
    IdR(IdPayload),
    Cert(CertPayload),
    CertReq(CertReqPayload),
    Auth(AuthPayload),
    Nonce(NoncePayload),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(VendorIdPayload),
    TsI(TsPayload),
    TsR(TsPayload),
    /// Encrypted and Authenticated, still encrypted.
    Sk(SkPayload),
    /// Encrypted and Authenticated Fragment, still encrypted.
    Skf(SkfPayload),
    Cp(CpPayload),
    Eap(EapPayload),
    /// A payload of a type this crate does not parse, with the critical bit clear (or kept verbatim).
    Unknown(UnknownPayload),
}

impl Payload {
    /// The payload type of this payload.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Sk(_) => PayloadType::SK,
            Payload::Skf(_) => PayloadType::SKF,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Unknown(u) => u.payload_type,
        }
    }

    /// Parses the body of `raw`.
    ///
    /// An unknown payload type becomes [`Payload::Unknown`] if its critical bit is clear and an
    /// [`ErrorKind::UnsupportedCriticalPayload`] error if it is set (RFC 7296 §2.5).
    pub fn parse(raw: &RawPayload<'_>) -> Result<Self> {
        let r = raw.reader();
        Ok(match raw.payload_type {
            PayloadType::SA => Payload::Sa(SaPayload::parse(r)?),
            PayloadType::KE => Payload::Ke(KePayload::parse(r)?),
            PayloadType::IDI => Payload::IdI(IdPayload::parse(r)?),
            PayloadType::IDR => Payload::IdR(IdPayload::parse(r)?),
            PayloadType::CERT => Payload::Cert(CertPayload::parse(r)?),
            PayloadType::CERTREQ => Payload::CertReq(CertReqPayload::parse(r)?),
            PayloadType::AUTH => Payload::Auth(AuthPayload::parse(r)?),
            PayloadType::NONCE => Payload::Nonce(NoncePayload::parse(r)?),
            PayloadType::NOTIFY => Payload::Notify(NotifyPayload::parse(r)?),
            PayloadType::DELETE => Payload::Delete(DeletePayload::parse(r)?),
            PayloadType::VENDOR_ID => Payload::VendorId(VendorIdPayload::parse(r)?),
            PayloadType::TSI => Payload::TsI(TsPayload::parse(r)?),
            PayloadType::TSR => Payload::TsR(TsPayload::parse(r)?),
            PayloadType::SK => Payload::Sk(SkPayload::parse(raw.next_payload, r)?),
            PayloadType::SKF => Payload::Skf(SkfPayload::parse(raw.next_payload, r)?),
            PayloadType::CP => Payload::Cp(CpPayload::parse(r)?),
            PayloadType::EAP => Payload::Eap(EapPayload::parse(r)?),
            other if raw.critical => {
                return Err(Error::new(
                    Context::Payload(other),
                    raw.offset,
                    ErrorKind::UnsupportedCriticalPayload(other),
                ));
            }
            other => Payload::Unknown(UnknownPayload { payload_type: other, critical: false, data: raw.body.to_vec() }),
        })
    }

    /// Appends the body (without the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Payload::Sa(p) => p.emit(out),
            Payload::Ke(p) => p.emit(out),
            Payload::IdI(p) | Payload::IdR(p) => p.emit(out),
            Payload::Cert(p) => p.emit(out),
            Payload::CertReq(p) => p.emit(out),
            Payload::Auth(p) => p.emit(out),
            Payload::Nonce(p) => p.emit(out),
            Payload::Notify(p) => p.emit(out),
            Payload::Delete(p) => p.emit(out),
            Payload::VendorId(p) => p.emit(out),
            Payload::TsI(p) | Payload::TsR(p) => p.emit(out),
            Payload::Sk(p) => p.emit(out),
            Payload::Skf(p) => p.emit(out),
            Payload::Cp(p) => p.emit(out),
            Payload::Eap(p) => p.emit(out),
            Payload::Unknown(p) => {
                out.extend_from_slice(&p.data);
                Ok(())
            }
        }
    }

    /// Appends the generic header, with `next` as Next Payload, and the body.
    ///
    /// For SK and SKF, `next` is ignored: their Next Payload names the first encrypted payload.
    pub fn emit(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<()> {
        let (next, critical) = match self {
            Payload::Sk(sk) => (sk.next_inner, false),
            Payload::Skf(skf) => (skf.next_inner, false),
            Payload::Unknown(u) => (next, u.critical),
            _ => (next, false),
        };
        let start = out.len();
        out.put_u8(next.0);
        out.put_u8(if critical { CRITICAL } else { 0 });
        out.put_u16(0);
        self.emit_body(out)?;
        let len = out.len().saturating_sub(start);
        let len =
            len_u16(len, Context::Payload(self.payload_type()), "payload").map_err(|e| Error { offset: start, ..e })?;
        if let Some(field) = out.get_mut(start.saturating_add(2)..start.saturating_add(4)) {
            field.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}

/// Parses a whole chain (for instance the decrypted content of an SK payload, whose first type comes from
/// the SK header) into owned payloads. `offset` is where `bytes` start in the message, for error reports.
pub fn parse_chain(first: PayloadType, bytes: &[u8], offset: usize) -> Result<Vec<Payload>> {
    Payloads::new(first, bytes, offset).map(|raw| raw.and_then(|raw| Payload::parse(&raw))).collect()
}

/// Appends a chain of payloads, each naming the next; the last names `last_next` (normally
/// [`PayloadType::NONE`]). Returns the type of the first payload, for the field that precedes the chain.
///
/// An SK or SKF payload must be last, since its Next Payload field is taken (RFC 7296 §3.14).
pub fn emit_chain(payloads: &[Payload], last_next: PayloadType, out: &mut Vec<u8>) -> Result<PayloadType> {
    let mut iter = payloads.iter().peekable();
    while let Some(p) = iter.next() {
        let next = match iter.peek() {
            Some(n) => {
                if matches!(p, Payload::Sk(_) | Payload::Skf(_)) {
                    return Err(Error::new(
                        Context::Payload(p.payload_type()),
                        out.len(),
                        ErrorKind::UnexpectedPayload(n.payload_type()),
                    ));
                }
                n.payload_type()
            }
            None => last_next,
        };
        p.emit(next, out)?;
    }
    Ok(payloads.first().map_or(last_next, Payload::payload_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NotifyType;

    fn chain(bytes: &[u8]) -> Vec<Result<(PayloadType, bool, usize)>> {
        Payloads::new(PayloadType::NONCE, bytes, 28)
            .map(|r| r.map(|p| (p.payload_type, p.critical, p.body.len())))
            .collect()
    }

    #[test]
    fn walks_a_chain() {
        // Nonce (next: Notify) with 2 bytes, then Notify (next: none) with an empty-SPI COOKIE of 1 byte.
        let bytes = hex::decode(
            "29000006aabb" /**/
                .to_owned()
                + "000000090000400601",
        )
        .unwrap();
        assert_eq!(chain(&bytes), vec![Ok((PayloadType::NONCE, false, 2)), Ok((PayloadType::NOTIFY, false, 5))]);
        let parsed = parse_chain(PayloadType::NONCE, &bytes, 28).unwrap();
        let mut out = Vec::new();
        assert_eq!(emit_chain(&parsed, PayloadType::NONE, &mut out).unwrap(), PayloadType::NONCE);
        assert_eq!(out, bytes);
        match &parsed[1] {
            Payload::Notify(n) => assert_eq!(n.notify_type, NotifyType::COOKIE),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lengths() {
        // Length 3 < 4.
        let e = chain(&hex::decode("00000003").unwrap()).remove(0).unwrap_err();
        assert_eq!(e.offset, 30);
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 3, .. }));
        // Length past the end.
        let e = chain(&hex::decode("00000009aabb").unwrap()).remove(0).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 9, .. }));
        // Trailing bytes after the last payload.
        let r = chain(&hex::decode("00000004ff").unwrap());
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].clone().unwrap_err().kind, ErrorKind::TrailingBytes(1));
        // Truncated generic header.
        let e = chain(&[0, 0]).remove(0).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
        assert_eq!(e.disposition(), crate::Disposition::Notify(NotifyType::INVALID_SYNTAX));
    }

    #[test]
    fn unknown_payloads() {
        // Nonce, then an unknown type 200 without the critical bit, then one with it.
        let bytes = hex::decode(
            "c8000004" /* nonce, next 200 */
                .to_owned()
                + "c9000005ee"
                + "0080000401",
        )
        .unwrap();
        let raws: Vec<_> = Payloads::new(PayloadType::NONCE, &bytes[..bytes.len() - 1], 28).collect();
        assert_eq!(raws.len(), 3);
        let unknown = Payload::parse(raws[1].as_ref().unwrap()).unwrap();
        assert_eq!(
            unknown,
            Payload::Unknown(UnknownPayload { payload_type: PayloadType(200), critical: false, data: vec![0xee] })
        );
        let crit = Payload::parse(raws[2].as_ref().unwrap()).unwrap_err();
        assert_eq!(crit.kind, ErrorKind::UnsupportedCriticalPayload(PayloadType(201)));
        assert_eq!(crit.disposition(), crate::Disposition::Notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD));
        assert_eq!(crit.notify_data(), vec![201]);
        // Unknown payloads survive a round trip.
        let mut out = Vec::new();
        unknown.emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(out, hex::decode("00000005ee").unwrap());
    }

    #[test]
    fn sk_must_be_last() {
        // SK (inner first: IDi) followed by stray bytes.
        let bytes = hex::decode("23000006aabbcc").unwrap();
        let r: Vec<_> = Payloads::new(PayloadType::SK, &bytes, 28).collect();
        assert!(matches!(r[0], Err(Error { kind: ErrorKind::UnexpectedPayload(_), .. })));
        let ok: Vec<_> = Payloads::new(PayloadType::SK, &bytes[..6], 28).collect::<Result<_>>().unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].next_payload, PayloadType::IDI);
    }
}
