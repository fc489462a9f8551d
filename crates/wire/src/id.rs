//! Identification payloads IDi and IDr (RFC 7296 §3.5).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Context, Error, ErrorKind, Result};
use crate::reader::{PutExt, Reader};
use crate::types::{IdType, PayloadType};

const CTX: Context = Context::Payload(PayloadType::IDI);

/// IDi or IDr payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// ID Type.
    pub id_type: IdType,
    /// The three RESERVED octets as received: the AUTH computation covers them (RFC 7296 §2.15), so they
    /// are kept rather than assumed zero.
    pub reserved: [u8; 3],
    /// Identification Data.
    pub data: Vec<u8>,
}

/// A typed identity (RFC 7296 §3.5; ID_NULL from RFC 7619).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_FQDN, e.g. `vpn.example.com`.
    Fqdn(String),
    /// ID_RFC822_ADDR, e.g. `user@example.com`.
    Email(String),
    /// ID_DER_ASN1_DN: the DER encoding of a Name.
    Dn(Vec<u8>),
    /// ID_KEY_ID: opaque octets.
    KeyId(Vec<u8>),
    /// ID_NULL: no identity (RFC 7619).
    Null,
    /// Any other type, kept verbatim.
    Other {
        /// ID Type.
        id_type: IdType,
        /// Identification Data.
        data: Vec<u8>,
    },
}

impl IdPayload {
    /// Parses the body.
    pub fn parse(mut r: Reader<'_>) -> Result<Self> {
        let id_type = IdType(r.u8()?);
        let reserved = r.array::<3>()?;
        Ok(Self { id_type, reserved, data: r.rest().to_vec() })
    }

    /// Appends the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        out.put_u8(self.id_type.0);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// The octets the AUTH computation MACs: the payload body without the generic header
    /// (RestOfInitIDPayload / RestOfRespIDPayload, RFC 7296 §2.15).
    pub fn auth_octets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len().saturating_add(4));
        out.put_u8(self.id_type.0);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.data);
        out
    }

    /// The payload for an identity.
    pub fn from_identity(id: &Identity) -> Self {
        let (id_type, data) = match id {
            Identity::Ipv4(a) => (IdType::ID_IPV4_ADDR, a.octets().to_vec()),
            Identity::Ipv6(a) => (IdType::ID_IPV6_ADDR, a.octets().to_vec()),
            Identity::Fqdn(s) => (IdType::ID_FQDN, s.as_bytes().to_vec()),
            Identity::Email(s) => (IdType::ID_RFC822_ADDR, s.as_bytes().to_vec()),
            Identity::Dn(d) => (IdType::ID_DER_ASN1_DN, d.clone()),
            Identity::KeyId(k) => (IdType::ID_KEY_ID, k.clone()),
            Identity::Null => (IdType::ID_NULL, Vec::new()),
            Identity::Other { id_type, data } => (*id_type, data.clone()),
        };
        Self { id_type, reserved: [0; 3], data }
    }

    /// The typed identity, checking the data suits the type: 4 octets for IPv4, 16 for IPv6, non-empty
    /// printable ASCII without spaces for FQDN and RFC 822 names (RFC 7296 §3.5: no terminators, no
    /// padding), nothing for ID_NULL (RFC 7619 §3).
    pub fn identity(&self) -> Result<Identity> {
        let bad = |field: &'static str, value: usize| {
            Error::new(CTX, 4, ErrorKind::InvalidValue { field, value: value as u64 })
        };
        let text = |d: &[u8]| -> Result<String> {
            if d.is_empty() || !d.iter().all(|b| b.is_ascii_graphic()) {
                return Err(bad("printable text identity of length", d.len()));
            }
            Ok(String::from_utf8_lossy(d).into_owned())
        };
        Ok(match self.id_type {
            IdType::ID_IPV4_ADDR => Identity::Ipv4(Ipv4Addr::from(
                <[u8; 4]>::try_from(self.data.as_slice()).map_err(|_| bad("IPv4 identity length", self.data.len()))?,
            )),
            IdType::ID_IPV6_ADDR => Identity::Ipv6(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.data.as_slice()).map_err(|_| bad("IPv6 identity length", self.data.len()))?,
            )),
            IdType::ID_FQDN => Identity::Fqdn(text(&self.data)?),
            IdType::ID_RFC822_ADDR => Identity::Email(text(&self.data)?),
            IdType::ID_DER_ASN1_DN if !self.data.is_empty() => Identity::Dn(self.data.clone()),
            IdType::ID_DER_ASN1_DN => return Err(bad("DN identity length", 0)),
            IdType::ID_KEY_ID => Identity::KeyId(self.data.clone()),
            IdType::ID_NULL if self.data.is_empty() => Identity::Null,
            IdType::ID_NULL => return Err(bad("ID_NULL data length", self.data.len())),
            other => Identity::Other { id_type: other, data: self.data.clone() },
        })
    }
}

impl core::fmt::Display for Identity {
    /// As strongSwan prints identities; DNs and key IDs in hex until a DN printer exists.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let hex = |f: &mut core::fmt::Formatter<'_>, d: &[u8]| d.iter().try_for_each(|b| write!(f, "{b:02x}"));
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) | Identity::Email(s) => f.write_str(s),
            Identity::Dn(d) => {
                f.write_str("dn:")?;
                hex(f, d)
            }
            Identity::KeyId(k) => {
                f.write_str("keyid:")?;
                hex(f, k)
            }
            Identity::Null => f.write_str("%any"),
            Identity::Other { id_type, data } => {
                write!(f, "{id_type}:")?;
                hex(f, data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Payloads};

    fn one(hex_chain: &str) -> Result<IdPayload> {
        let bytes = hex::decode(hex_chain).unwrap();
        let raw = Payloads::new(PayloadType::IDI, &bytes, 0).next().unwrap()?;
        match Payload::parse(&raw)? {
            Payload::IdI(id) => Ok(id),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fqdn_round_trip_and_auth_octets() {
        // ID_FQDN "left.example", as charon sends it.
        let hex = "0000001402000000" /* header + type + reserved */
            .to_owned()
            + &hex::encode("left.example");
        let id = one(&hex).unwrap();
        assert_eq!(id.identity().unwrap(), Identity::Fqdn("left.example".into()));
        assert_eq!(id.identity().unwrap().to_string(), "left.example");
        assert_eq!(hex::encode(id.auth_octets()), hex[8..]);
        let mut out = Vec::new();
        Payload::IdI(id.clone()).emit(PayloadType::NONE, &mut out).unwrap();
        assert_eq!(hex::encode(out), hex);
        assert_eq!(IdPayload::from_identity(&Identity::Fqdn("left.example".into())), id);
    }

    #[test]
    fn reserved_octets_are_kept_for_auth() {
        // Too short for IPv4 is not a parse error of the payload, but of the typed identity.
        let id = one("0000000a01abcdef0a00").unwrap();
        assert!(matches!(id.identity().unwrap_err().kind, ErrorKind::InvalidValue { .. }));
        let id = one("0000000c01abcdef0a000001").unwrap();
        assert_eq!(id.reserved, [0xab, 0xcd, 0xef]);
        assert_eq!(id.auth_octets(), vec![1, 0xab, 0xcd, 0xef, 10, 0, 0, 1]);
        assert_eq!(id.identity().unwrap(), Identity::Ipv4(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn typed_checks() {
        let mk = |t: IdType, d: &[u8]| IdPayload { id_type: t, reserved: [0; 3], data: d.to_vec() };
        assert!(mk(IdType::ID_IPV4_ADDR, &[1, 2, 3]).identity().is_err());
        assert!(mk(IdType::ID_IPV6_ADDR, &[0; 4]).identity().is_err());
        assert_eq!(mk(IdType::ID_IPV6_ADDR, &[0; 16]).identity().unwrap().to_string(), "::");
        assert!(mk(IdType::ID_FQDN, b"").identity().is_err());
        assert!(mk(IdType::ID_FQDN, b"a b").identity().is_err());
        assert!(mk(IdType::ID_FQDN, b"a\0").identity().is_err());
        assert_eq!(mk(IdType::ID_RFC822_ADDR, b"u@x.org").identity().unwrap(), Identity::Email("u@x.org".into()));
        assert!(mk(IdType::ID_NULL, b"x").identity().is_err());
        assert_eq!(mk(IdType::ID_NULL, b"").identity().unwrap().to_string(), "%any");
        assert_eq!(mk(IdType::ID_KEY_ID, &[0xbe, 0xef]).identity().unwrap().to_string(), "keyid:beef");
        assert!(mk(IdType::ID_DER_ASN1_DN, b"").identity().is_err());
        let other = mk(IdType(200), &[1]);
        assert_eq!(other.identity().unwrap(), Identity::Other { id_type: IdType(200), data: vec![1] });
        assert_eq!(IdPayload::from_identity(&other.identity().unwrap()), other);
        // Truncated: no room for the type and reserved octets.
        assert!(one("0000000602ab").is_err());
    }
}
