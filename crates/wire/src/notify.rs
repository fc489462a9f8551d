//! Notify (RFC 7296 §3.10) and Delete (§3.11) payloads, and the data formats of common notifies.

use crate::error::{ErrorKind, Result};
use crate::reader::{PutExt, Reader, len_u16};
use crate::types::{HashAlgorithm, KeId, NotifyType, PayloadType, ProtocolId};
use crate::{Context, Error};

/// Notify payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    /// Protocol ID: IKE (or NONE) when no SPI is given, AH/ESP for a CHILD SA notify.
    pub protocol: ProtocolId,
    /// The SPI (empty, 4 octets for AH/ESP, 8 for IKE as in INVALID_IKE_SPI).
    pub spi: Vec<u8>,
    /// Notify Message Type.
    pub notify_type: NotifyType,
    /// Notification Data.
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notify without SPI.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Self { protocol: ProtocolId::NONE, spi: Vec::new(), notify_type, data }
    }

    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let protocol = ProtocolId(r.u8()?);
        let spi_size = usize::from(r.u8()?);
        let notify_type = NotifyType(r.u16()?);
        let spi = r.take(spi_size)?.to_vec();
        Ok(Self { protocol, spi, notify_type, data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| {
            Error::new(
                Context::Payload(PayloadType::NOTIFY),
                0,
                ErrorKind::TooLong { field: "SPI", length: self.spi.len() },
            )
        })?;
        out.put_u8(self.protocol.0);
        out.put_u8(spi_size);
        out.put_u16(self.notify_type.0);
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// The group of an INVALID_KE_PAYLOAD notify (RFC 7296 §3.10.1: two octets).
    pub fn invalid_ke_group(&self) -> Option<KeId> {
        match (self.notify_type, self.data.as_slice()) {
            (NotifyType::INVALID_KE_PAYLOAD, [a, b]) => Some(KeId(u16::from_be_bytes([*a, *b]))),
            _ => None,
        }
    }

    /// The hash algorithms of a SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4): a list of 2-octet IDs.
    pub fn signature_hash_algorithms(&self) -> Option<Vec<HashAlgorithm>> {
        if self.notify_type != NotifyType::SIGNATURE_HASH_ALGORITHMS || !self.data.len().is_multiple_of(2) {
            return None;
        }
        Some(
            self.data
                .chunks_exact(2)
                .filter_map(|c| <[u8; 2]>::try_from(c).ok())
                .map(|c| HashAlgorithm(u16::from_be_bytes(c)))
                .collect(),
        )
    }

    /// Builds a SIGNATURE_HASH_ALGORITHMS notify.
    pub fn new_signature_hash_algorithms(algs: &[HashAlgorithm]) -> Self {
        Self::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, algs.iter().flat_map(|a| a.0.to_be_bytes()).collect())
    }
}

/// Delete payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    /// IKE (no SPIs: the SA the message is protected by), AH or ESP.
    pub protocol: ProtocolId,
    /// SPI Size: 0 for IKE, 4 for AH/ESP.
    pub spi_size: u8,
    /// The SPIs, each `spi_size` octets.
    pub spis: Vec<Vec<u8>>,
}

impl DeletePayload {
    /// Deletes the IKE SA that protects the message.
    pub fn ike() -> Self {
        Self { protocol: ProtocolId::IKE, spi_size: 0, spis: Vec::new() }
    }

    /// Deletes the ESP SAs with these inbound SPIs.
    pub fn esp(spis: &[u32]) -> Self {
        Self { protocol: ProtocolId::ESP, spi_size: 4, spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect() }
    }

    /// Parses the body: Num of SPIs × SPI Size must fill it exactly.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let protocol = ProtocolId(r.u8()?);
        let spi_size = r.u8()?;
        let num = usize::from(r.u16()?);
        if spi_size == 0 && num != 0 {
            return Err(r.error(ErrorKind::InvalidValue { field: "Num of SPIs with SPI size 0", value: num as u64 }));
        }
        let total = usize::from(spi_size).saturating_mul(num);
        if total != r.remaining() {
            return Err(
                r.error(ErrorKind::BadLength { length: total, reason: "SPI count × size differs from the payload" })
            );
        }
        let mut spis = Vec::with_capacity(num.min(r.remaining()));
        for _ in 0..num {
            spis.push(r.take(usize::from(spi_size))?.to_vec());
        }
        Ok(Self { protocol, spi_size, spis })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let ctx = Context::Payload(PayloadType::DELETE);
        let num = len_u16(self.spis.len(), ctx, "SPI list")?;
        if let Some(bad) = self.spis.iter().find(|s| s.len() != usize::from(self.spi_size)) {
            return Err(Error::new(ctx, 0, ErrorKind::InvalidValue { field: "SPI length", value: bad.len() as u64 }));
        }
        out.put_u8(self.protocol.0);
        out.put_u8(self.spi_size);
        out.put_u16(num);
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        Ok(())
    }

    /// The SPIs as 32-bit values, for AH/ESP deletes.
    pub fn spis_u32(&self) -> Vec<u32> {
        self.spis.iter().filter_map(|s| <[u8; 4]>::try_from(s.as_slice()).ok().map(u32::from_be_bytes)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Payloads};

    fn one(ty: PayloadType, hex_chain: &str) -> Result<Payload> {
        let bytes = hex::decode(hex_chain).unwrap();
        let raw = Payloads::new(ty, &bytes, 0).next().unwrap()?;
        Payload::parse(&raw)
    }

    fn round_trip(ty: PayloadType, hex_chain: &str) -> Payload {
        let p = one(ty, hex_chain).unwrap();
        let mut out = Vec::new();
        p.emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(hex::encode(&out), hex_chain);
        p
    }

    #[test]
    fn notify_with_and_without_spi() {
        let Payload::Notify(n) = round_trip(PayloadType::NOTIFY, "0000000a00000011001f") else { panic!() };
        assert_eq!(n.notify_type, NotifyType::INVALID_KE_PAYLOAD);
        assert_eq!(n.invalid_ke_group(), Some(KeId::CURVE25519));
        // REKEY_SA for ESP SPI 0x01020304.
        let Payload::Notify(n) = round_trip(PayloadType::NOTIFY, "0000000c0304400901020304") else { panic!() };
        assert_eq!((n.protocol, n.spi.len(), n.notify_type), (ProtocolId::ESP, 4, NotifyType::REKEY_SA));
        // SPI size larger than the payload.
        let e = one(PayloadType::NOTIFY, "000000090308400901").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { needed: 8, .. }));
        // An unknown notify type survives.
        let Payload::Notify(n) = round_trip(PayloadType::NOTIFY, "000000080000ffff") else { panic!() };
        assert_eq!(n.notify_type, NotifyType(0xffff));
        assert_eq!(format!("{:?}", n.notify_type), "NotifyType(65535)");
    }

    #[test]
    fn signature_hash_algorithms() {
        let n = NotifyPayload::new_signature_hash_algorithms(&[HashAlgorithm::SHA2_256, HashAlgorithm::IDENTITY]);
        assert_eq!(n.data, vec![0, 2, 0, 5]);
        assert_eq!(n.signature_hash_algorithms(), Some(vec![HashAlgorithm::SHA2_256, HashAlgorithm::IDENTITY]));
    }

    #[test]
    fn delete() {
        assert_eq!(round_trip(PayloadType::DELETE, "0000000801000000"), Payload::Delete(DeletePayload::ike()));
        let Payload::Delete(d) = round_trip(PayloadType::DELETE, "000000100304000201020304aabbccdd") else { panic!() };
        assert_eq!(d.spis_u32(), vec![0x01020304, 0xaabbccdd]);
        assert_eq!(d, DeletePayload::esp(&[0x01020304, 0xaabbccdd]));
        // Count says 3 but only 2 SPIs.
        let e = one(PayloadType::DELETE, "000000100304000301020304aabbccdd").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::BadLength { length: 12, .. }));
        // Huge count with a zero SPI size must not allocate or loop forever on garbage.
        assert!(one(PayloadType::DELETE, "000000080100ffff").is_err());
    }
}
