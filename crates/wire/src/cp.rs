//! Configuration payload (RFC 7296 §3.15): virtual IPs, DNS servers and subnets for remote-access
//! clients.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::reader::{PutExt, Reader, len_u16};
use crate::types::{CfgAttributeType, CfgType, PayloadType};

const CTX: Context = Context::Part(PayloadType::CP, "configuration attribute");
/// The high bit of the attribute type is reserved (RFC 7296 §3.15.1).
const RESERVED_BIT: u16 = 0x8000;

/// CP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpPayload {
    /// CFG_REQUEST, CFG_REPLY, CFG_SET or CFG_ACK.
    pub cfg_type: CfgType,
    /// Attributes, in order.
    pub attributes: Vec<CfgAttribute>,
}

/// One configuration attribute; any length parses, [`CfgAttribute::typed`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgAttribute {
    /// Attribute Type (15 bits).
    pub attribute_type: CfgAttributeType,
    /// Value; empty in a request for "any".
    pub value: Vec<u8>,
}

/// The value of a known attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CfgValue {
    /// No value: a request for the attribute (RFC 7296 §3.15.1).
    Empty,
    /// An IPv4 address (INTERNAL_IP4_ADDRESS, _NETMASK, _DNS, _NBNS, _DHCP).
    Ipv4(Ipv4Addr),
    /// An IPv6 address (INTERNAL_IP6_DNS, _DHCP).
    Ipv6(Ipv6Addr),
    /// An IPv6 address with a prefix length (INTERNAL_IP6_ADDRESS, INTERNAL_IP6_SUBNET).
    Ipv6Prefix(Ipv6Addr, u8),
    /// An IPv4 address and netmask (INTERNAL_IP4_SUBNET).
    Ipv4Subnet(Ipv4Addr, Ipv4Addr),
    /// Text (APPLICATION_VERSION, INTERNAL_DNS_DOMAIN).
    Text(String),
    /// A list of attribute types (SUPPORTED_ATTRIBUTES).
    Types(Vec<CfgAttributeType>),
    /// An attribute this crate does not interpret.
    Other(Vec<u8>),
}

impl CfgAttribute {
    /// A request for `attribute_type` (empty value).
    pub fn request(attribute_type: CfgAttributeType) -> Self {
        Self { attribute_type, value: Vec::new() }
    }

    /// An attribute carrying an IPv4 address.
    pub fn ipv4(attribute_type: CfgAttributeType, addr: Ipv4Addr) -> Self {
        Self { attribute_type, value: addr.octets().to_vec() }
    }

    /// An attribute carrying an IPv6 address.
    pub fn ipv6(attribute_type: CfgAttributeType, addr: Ipv6Addr) -> Self {
        Self { attribute_type, value: addr.octets().to_vec() }
    }

    /// An attribute carrying an IPv6 address and prefix length (17 octets).
    pub fn ipv6_prefix(attribute_type: CfgAttributeType, addr: Ipv6Addr, prefix_len: u8) -> Self {
        let mut value = addr.octets().to_vec();
        value.push(prefix_len);
        Self { attribute_type, value }
    }

    /// The typed value, checking the length the RFC gives for known types (RFC 7296 §3.15.1; RFC 8598
    /// for INTERNAL_DNS_DOMAIN). An empty value is a request and is valid for every type.
    pub fn typed(&self) -> Result<CfgValue> {
        let v = self.value.as_slice();
        if v.is_empty() {
            return Ok(CfgValue::Empty);
        }
        let bad = || {
            Error::new(CTX, 0, ErrorKind::BadLength { length: v.len(), reason: "wrong length for the attribute type" })
        };
        Ok(match self.attribute_type {
            CfgAttributeType::INTERNAL_IP4_ADDRESS
            | CfgAttributeType::INTERNAL_IP4_NETMASK
            | CfgAttributeType::INTERNAL_IP4_DNS
            | CfgAttributeType::INTERNAL_IP4_NBNS
            | CfgAttributeType::INTERNAL_IP4_DHCP
            | CfgAttributeType::P_CSCF_IP4_ADDRESS => {
                CfgValue::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(v).map_err(|_| bad())?))
            }
            CfgAttributeType::INTERNAL_IP6_DNS
            | CfgAttributeType::INTERNAL_IP6_DHCP
            | CfgAttributeType::P_CSCF_IP6_ADDRESS => {
                CfgValue::Ipv6(Ipv6Addr::from(<[u8; 16]>::try_from(v).map_err(|_| bad())?))
            }
            CfgAttributeType::INTERNAL_IP6_ADDRESS | CfgAttributeType::INTERNAL_IP6_SUBNET => {
                let (addr, len) = v.split_first_chunk::<16>().ok_or_else(bad)?;
                match len {
                    [prefix] if *prefix <= 128 => CfgValue::Ipv6Prefix(Ipv6Addr::from(*addr), *prefix),
                    _ => return Err(bad()),
                }
            }
            CfgAttributeType::INTERNAL_IP4_SUBNET => {
                let (addr, mask) = v.split_first_chunk::<4>().ok_or_else(bad)?;
                let mask = <[u8; 4]>::try_from(mask).map_err(|_| bad())?;
                CfgValue::Ipv4Subnet(Ipv4Addr::from(*addr), Ipv4Addr::from(mask))
            }
            CfgAttributeType::SUPPORTED_ATTRIBUTES => {
                if !v.len().is_multiple_of(2) {
                    return Err(bad());
                }
                CfgValue::Types(
                    v.chunks_exact(2)
                        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
                        .map(|c| CfgAttributeType(u16::from_be_bytes(c) & !RESERVED_BIT))
                        .collect(),
                )
            }
            CfgAttributeType::APPLICATION_VERSION | CfgAttributeType::INTERNAL_DNS_DOMAIN => {
                CfgValue::Text(String::from_utf8(v.to_vec()).map_err(|_| {
                    Error::new(CTX, 0, ErrorKind::InvalidValue { field: "UTF-8 text attribute", value: v.len() as u64 })
                })?)
            }
            _ => CfgValue::Other(v.to_vec()),
        })
    }
}

impl CpPayload {
    /// Parses the body: CFG Type, 3 reserved octets, attributes to the end.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let cfg_type = CfgType(r.u8()?);
        r.take(3)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let mut a = r.clone().context(CTX);
            // The reserved bit is ignored on receipt (RFC 7296 §3.15.1).
            let attribute_type = CfgAttributeType(a.u16()? & !RESERVED_BIT);
            let len = usize::from(a.u16()?);
            let value = a.take(len)?.to_vec();
            r = a.context(Context::Payload(PayloadType::CP));
            attributes.push(CfgAttribute { attribute_type, value });
        }
        Ok(Self { cfg_type, attributes })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u8(self.cfg_type.0);
        out.extend_from_slice(&[0; 3]);
        for a in &self.attributes {
            out.put_u16(a.attribute_type.0 & !RESERVED_BIT);
            out.put_u16(len_u16(a.value.len(), CTX, "attribute value")?);
            out.extend_from_slice(&a.value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Payloads};

    fn one(hex_chain: &str) -> Result<CpPayload> {
        let bytes = hex::decode(hex_chain).unwrap();
        let raw = Payloads::new(PayloadType::CP, &bytes, 0).next().unwrap()?;
        match Payload::parse(&raw)? {
            Payload::Cp(cp) => Ok(cp),
            other => panic!("{other:?}"),
        }
    }

    fn round_trip(hex_chain: &str) -> CpPayload {
        let cp = one(hex_chain).unwrap();
        let mut out = Vec::new();
        Payload::Cp(cp.clone()).emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(hex::encode(out), hex_chain);
        cp
    }

    #[test]
    fn request_and_reply() {
        // CFG_REQUEST for an IPv4 address and DNS, and an IPv6 address.
        let req = round_trip("0000001401000000000100000003000000080000");
        assert_eq!(req.cfg_type, CfgType::CFG_REQUEST);
        assert_eq!(req.attributes.len(), 3);
        assert!(req.attributes.iter().all(|a| a.typed().unwrap() == CfgValue::Empty));
        // CFG_REPLY: 10.3.0.1, DNS 10.3.0.53, 2001:db8::1/64, subnet 10.0.0.0/255.0.0.0.
        let reply = CpPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                CfgAttribute::ipv4(CfgAttributeType::INTERNAL_IP4_ADDRESS, Ipv4Addr::new(10, 3, 0, 1)),
                CfgAttribute::ipv4(CfgAttributeType::INTERNAL_IP4_DNS, Ipv4Addr::new(10, 3, 0, 53)),
                CfgAttribute::ipv6_prefix(CfgAttributeType::INTERNAL_IP6_ADDRESS, "2001:db8::1".parse().unwrap(), 64),
                CfgAttribute {
                    attribute_type: CfgAttributeType::INTERNAL_IP4_SUBNET,
                    value: vec![10, 0, 0, 0, 255, 0, 0, 0],
                },
                CfgAttribute { attribute_type: CfgAttributeType::APPLICATION_VERSION, value: b"oxswan".to_vec() },
                CfgAttribute { attribute_type: CfgAttributeType::SUPPORTED_ATTRIBUTES, value: vec![0, 1, 0, 3] },
            ],
        };
        let mut out = Vec::new();
        Payload::Cp(reply.clone()).emit(PayloadType::NONE, &mut out).unwrap();
        let back = round_trip(&hex::encode(&out));
        assert_eq!(back, reply);
        let typed: Vec<_> = back.attributes.iter().map(|a| a.typed().unwrap()).collect();
        assert_eq!(typed[0], CfgValue::Ipv4(Ipv4Addr::new(10, 3, 0, 1)));
        assert_eq!(typed[2], CfgValue::Ipv6Prefix("2001:db8::1".parse().unwrap(), 64));
        assert_eq!(typed[3], CfgValue::Ipv4Subnet(Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(255, 0, 0, 0)));
        assert_eq!(typed[4], CfgValue::Text("oxswan".into()));
        assert_eq!(
            typed[5],
            CfgValue::Types(vec![CfgAttributeType::INTERNAL_IP4_ADDRESS, CfgAttributeType::INTERNAL_IP4_DNS])
        );
    }

    #[test]
    fn reserved_bit_ignored_and_unknown_kept() {
        // Type 0x8001 (reserved bit set) is INTERNAL_IP4_ADDRESS; unknown type 0x1234 with 2 octets.
        let cp = one("0000001602000000800100040a0300011234000299aa").unwrap();
        assert_eq!(cp.attributes[0].attribute_type, CfgAttributeType::INTERNAL_IP4_ADDRESS);
        assert_eq!(cp.attributes[1].typed().unwrap(), CfgValue::Other(vec![0x99, 0xaa]));
        let mut out = Vec::new();
        cp.emit(&mut out).unwrap();
        assert_eq!(hex::encode(&out[4..8]), "00010004", "reserved bit cleared on emit");
    }

    #[test]
    fn bad_lengths() {
        // Attribute length past the end.
        assert!(one("0000000e0200000000010008aabb").is_err());
        // Truncated attribute header.
        assert!(one("0000000b02000000000100").is_err());
        let bad = |t, v: &[u8]| CfgAttribute { attribute_type: t, value: v.to_vec() }.typed().is_err();
        assert!(bad(CfgAttributeType::INTERNAL_IP4_ADDRESS, &[1, 2, 3]));
        assert!(bad(CfgAttributeType::INTERNAL_IP6_DNS, &[0; 15]));
        assert!(bad(CfgAttributeType::INTERNAL_IP6_ADDRESS, &[0; 16]));
        assert!(bad(CfgAttributeType::INTERNAL_IP6_ADDRESS, &[[0u8; 16].as_slice(), &[129]].concat()));
        assert!(bad(CfgAttributeType::INTERNAL_IP4_SUBNET, &[0; 7]));
        assert!(bad(CfgAttributeType::SUPPORTED_ATTRIBUTES, &[0; 3]));
        assert!(bad(CfgAttributeType::APPLICATION_VERSION, &[0xff, 0xfe]));
    }
}
