//! RADIUS attributes (RFC 2865 §5): typed for those this client sends or reads, raw for the others.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::CodecError;

/// The most octets an attribute's value holds (RFC 2865 §5: Length is one octet, and counts the
/// two octets of Type and Length).
pub const MAX_VALUE_LEN: usize = 253;

/// Attribute type codes (IANA "RADIUS Attribute Types").
pub mod types {
    /// User-Name (RFC 2865 §5.1).
    pub const USER_NAME: u8 = 1;
    /// NAS-IP-Address (RFC 2865 §5.4).
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// NAS-Port (RFC 2865 §5.5).
    pub const NAS_PORT: u8 = 5;
    /// Service-Type (RFC 2865 §5.6).
    pub const SERVICE_TYPE: u8 = 6;
    /// Framed-IP-Address (RFC 2865 §5.8).
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    /// Framed-IP-Netmask (RFC 2865 §5.9).
    pub const FRAMED_IP_NETMASK: u8 = 9;
    /// Reply-Message (RFC 2865 §5.18).
    pub const REPLY_MESSAGE: u8 = 18;
    /// State (RFC 2865 §5.24).
    pub const STATE: u8 = 24;
    /// Class (RFC 2865 §5.25).
    pub const CLASS: u8 = 25;
    /// Vendor-Specific (RFC 2865 §5.26).
    pub const VENDOR_SPECIFIC: u8 = 26;
    /// Session-Timeout (RFC 2865 §5.27).
    pub const SESSION_TIMEOUT: u8 = 27;
    /// Called-Station-Id (RFC 2865 §5.30).
    pub const CALLED_STATION_ID: u8 = 30;
    /// Calling-Station-Id (RFC 2865 §5.31).
    pub const CALLING_STATION_ID: u8 = 31;
    /// NAS-Identifier (RFC 2865 §5.32).
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Acct-Status-Type (RFC 2866 §5.1).
    pub const ACCT_STATUS_TYPE: u8 = 40;
    /// Acct-Delay-Time (RFC 2866 §5.2).
    pub const ACCT_DELAY_TIME: u8 = 41;
    /// Acct-Input-Octets (RFC 2866 §5.3).
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    /// Acct-Output-Octets (RFC 2866 §5.4).
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    /// Acct-Session-Id (RFC 2866 §5.5).
    pub const ACCT_SESSION_ID: u8 = 44;
    /// Acct-Session-Time (RFC 2866 §5.7).
    pub const ACCT_SESSION_TIME: u8 = 46;
    /// Acct-Input-Packets (RFC 2866 §5.8).
    pub const ACCT_INPUT_PACKETS: u8 = 47;
    /// Acct-Output-Packets (RFC 2866 §5.9).
    pub const ACCT_OUTPUT_PACKETS: u8 = 48;
    /// Acct-Terminate-Cause (RFC 2866 §5.10).
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    /// Acct-Input-Gigawords (RFC 2869 §5.1).
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    /// Acct-Output-Gigawords (RFC 2869 §5.2).
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    /// NAS-Port-Type (RFC 2865 §5.41).
    pub const NAS_PORT_TYPE: u8 = 61;
    /// EAP-Message (RFC 3579 §3.1).
    pub const EAP_MESSAGE: u8 = 79;
    /// Message-Authenticator (RFC 3579 §3.2).
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    /// Acct-Interim-Interval (RFC 2869 §5.16).
    pub const ACCT_INTERIM_INTERVAL: u8 = 85;
    /// NAS-Port-Id (RFC 2869 §5.17).
    pub const NAS_PORT_ID: u8 = 87;
    /// NAS-IPv6-Address (RFC 3162 §2.1).
    pub const NAS_IPV6_ADDRESS: u8 = 95;
    /// Framed-IPv6-Prefix (RFC 3162 §2.3).
    pub const FRAMED_IPV6_PREFIX: u8 = 97;
    /// Framed-IPv6-Address (RFC 6911 §3.1).
    pub const FRAMED_IPV6_ADDRESS: u8 = 168;
}

/// One sub-attribute of a Vendor-Specific attribute: (vendor type, value).
pub type SubAttribute<'a> = (u8, &'a [u8]);

/// Service-Type Framed (RFC 2865 §5.6).
pub const SERVICE_TYPE_FRAMED: u32 = 2;
/// NAS-Port-Type Virtual (RFC 2865 §5.41).
pub const NAS_PORT_TYPE_VIRTUAL: u32 = 5;

/// One attribute. Those with a fixed-size value whose value does not have that size, and every
/// type not named here, are kept as [`Attribute::Other`] with their raw value (RFC 6929 §2.8:
/// an invalid attribute is treated as an unknown one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    /// User-Name (1).
    UserName(Vec<u8>),
    /// NAS-IP-Address (4).
    NasIpAddress(Ipv4Addr),
    /// NAS-Port (5).
    NasPort(u32),
    /// Service-Type (6).
    ServiceType(u32),
    /// Framed-IP-Address (8).
    FramedIpAddress(Ipv4Addr),
    /// Framed-IP-Netmask (9).
    FramedIpNetmask(Ipv4Addr),
    /// Reply-Message (18).
    ReplyMessage(Vec<u8>),
    /// State (24).
    State(Vec<u8>),
    /// Class (25).
    Class(Vec<u8>),
    /// Vendor-Specific (26): the Vendor-Id and the String after it, in which vendors usually put
    /// sub-attributes of the RFC 2865 §5.26 layout ([`Attribute::vendor_sub_attributes`]).
    VendorSpecific {
        /// The SMI Network Management Private Enterprise Code.
        vendor_id: u32,
        /// The String after the Vendor-Id.
        data: Vec<u8>,
    },
    /// Session-Timeout (27), seconds.
    SessionTimeout(u32),
    /// Called-Station-Id (30).
    CalledStationId(Vec<u8>),
    /// Calling-Station-Id (31).
    CallingStationId(Vec<u8>),
    /// NAS-Identifier (32).
    NasIdentifier(Vec<u8>),
    /// Acct-Status-Type (40).
    AcctStatusType(u32),
    /// Acct-Delay-Time (41), seconds.
    AcctDelayTime(u32),
    /// Acct-Input-Octets (42).
    AcctInputOctets(u32),
    /// Acct-Output-Octets (43).
    AcctOutputOctets(u32),
    /// Acct-Session-Id (44).
    AcctSessionId(Vec<u8>),
    /// Acct-Session-Time (46), seconds.
    AcctSessionTime(u32),
    /// Acct-Input-Packets (47).
    AcctInputPackets(u32),
    /// Acct-Output-Packets (48).
    AcctOutputPackets(u32),
    /// Acct-Terminate-Cause (49).
    AcctTerminateCause(u32),
    /// Acct-Input-Gigawords (52).
    AcctInputGigawords(u32),
    /// Acct-Output-Gigawords (53).
    AcctOutputGigawords(u32),
    /// NAS-Port-Type (61).
    NasPortType(u32),
    /// EAP-Message (79): one fragment of an EAP packet.
    EapMessage(Vec<u8>),
    /// Message-Authenticator (80).
    MessageAuthenticator([u8; 16]),
    /// Acct-Interim-Interval (85), seconds.
    AcctInterimInterval(u32),
    /// NAS-Port-Id (87).
    NasPortId(Vec<u8>),
    /// NAS-IPv6-Address (95).
    NasIpv6Address(Ipv6Addr),
    /// Framed-IPv6-Prefix (97): the prefix, bits past the length zero.
    FramedIpv6Prefix {
        /// The prefix length, 0..=128.
        prefix_len: u8,
        /// The prefix.
        prefix: Ipv6Addr,
    },
    /// Framed-IPv6-Address (168).
    FramedIpv6Address(Ipv6Addr),
    /// Any other attribute, or one of the above whose value does not fit its type.
    Other {
        /// The Type octet.
        kind: u8,
        /// The value.
        value: Vec<u8>,
    },
}

fn u32_of(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

fn v4_of(value: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from)
}

fn v6_of(value: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(value).ok().map(Ipv6Addr::from)
}

/// The prefix with every bit past `len` cleared.
fn mask_v6(prefix: Ipv6Addr, len: u8) -> Ipv6Addr {
    let bits = u128::from(prefix);
    let mask = match u32::from(len) {
        0 => 0,
        l @ 1..=127 => u128::MAX << (128 - l),
        _ => u128::MAX,
    };
    Ipv6Addr::from(bits & mask)
}

impl Attribute {
    /// Decodes one attribute's value. Never fails: what does not fit its type is [`Attribute::Other`].
    pub fn decode(kind: u8, value: &[u8]) -> Attribute {
        use types as t;
        let typed = match kind {
            t::USER_NAME => Some(Attribute::UserName(value.to_vec())),
            t::NAS_IP_ADDRESS => v4_of(value).map(Attribute::NasIpAddress),
            t::NAS_PORT => u32_of(value).map(Attribute::NasPort),
            t::SERVICE_TYPE => u32_of(value).map(Attribute::ServiceType),
            t::FRAMED_IP_ADDRESS => v4_of(value).map(Attribute::FramedIpAddress),
            t::FRAMED_IP_NETMASK => v4_of(value).map(Attribute::FramedIpNetmask),
            t::REPLY_MESSAGE => Some(Attribute::ReplyMessage(value.to_vec())),
            t::STATE => Some(Attribute::State(value.to_vec())),
            t::CLASS => Some(Attribute::Class(value.to_vec())),
            t::VENDOR_SPECIFIC => match (value.get(..4), value.get(4..)) {
                (Some(id), Some(data)) => {
                    u32_of(id).map(|vendor_id| Attribute::VendorSpecific { vendor_id, data: data.to_vec() })
                }
                _ => None,
            },
            t::SESSION_TIMEOUT => u32_of(value).map(Attribute::SessionTimeout),
            t::CALLED_STATION_ID => Some(Attribute::CalledStationId(value.to_vec())),
            t::CALLING_STATION_ID => Some(Attribute::CallingStationId(value.to_vec())),
            t::NAS_IDENTIFIER => Some(Attribute::NasIdentifier(value.to_vec())),
            t::ACCT_STATUS_TYPE => u32_of(value).map(Attribute::AcctStatusType),
            t::ACCT_DELAY_TIME => u32_of(value).map(Attribute::AcctDelayTime),
            t::ACCT_INPUT_OCTETS => u32_of(value).map(Attribute::AcctInputOctets),
            t::ACCT_OUTPUT_OCTETS => u32_of(value).map(Attribute::AcctOutputOctets),
            t::ACCT_SESSION_ID => Some(Attribute::AcctSessionId(value.to_vec())),
            t::ACCT_SESSION_TIME => u32_of(value).map(Attribute::AcctSessionTime),
            t::ACCT_INPUT_PACKETS => u32_of(value).map(Attribute::AcctInputPackets),
            t::ACCT_OUTPUT_PACKETS => u32_of(value).map(Attribute::AcctOutputPackets),
            t::ACCT_TERMINATE_CAUSE => u32_of(value).map(Attribute::AcctTerminateCause),
            t::ACCT_INPUT_GIGAWORDS => u32_of(value).map(Attribute::AcctInputGigawords),
            t::ACCT_OUTPUT_GIGAWORDS => u32_of(value).map(Attribute::AcctOutputGigawords),
            t::NAS_PORT_TYPE => u32_of(value).map(Attribute::NasPortType),
            t::EAP_MESSAGE => Some(Attribute::EapMessage(value.to_vec())),
            t::MESSAGE_AUTHENTICATOR => <[u8; 16]>::try_from(value).ok().map(Attribute::MessageAuthenticator),
            t::ACCT_INTERIM_INTERVAL => u32_of(value).map(Attribute::AcctInterimInterval),
            t::NAS_PORT_ID => Some(Attribute::NasPortId(value.to_vec())),
            t::NAS_IPV6_ADDRESS => v6_of(value).map(Attribute::NasIpv6Address),
            t::FRAMED_IPV6_PREFIX => decode_ipv6_prefix(value),
            t::FRAMED_IPV6_ADDRESS => v6_of(value).map(Attribute::FramedIpv6Address),
            _ => None,
        };
        typed.unwrap_or_else(|| Attribute::Other { kind, value: value.to_vec() })
    }

    /// The Type octet.
    pub fn kind(&self) -> u8 {
        use types as t;
        match self {
            Attribute::UserName(_) => t::USER_NAME,
            Attribute::NasIpAddress(_) => t::NAS_IP_ADDRESS,
            Attribute::NasPort(_) => t::NAS_PORT,
            Attribute::ServiceType(_) => t::SERVICE_TYPE,
            Attribute::FramedIpAddress(_) => t::FRAMED_IP_ADDRESS,
            Attribute::FramedIpNetmask(_) => t::FRAMED_IP_NETMASK,
            Attribute::ReplyMessage(_) => t::REPLY_MESSAGE,
            Attribute::State(_) => t::STATE,
            Attribute::Class(_) => t::CLASS,
            Attribute::VendorSpecific { .. } => t::VENDOR_SPECIFIC,
            Attribute::SessionTimeout(_) => t::SESSION_TIMEOUT,
            Attribute::CalledStationId(_) => t::CALLED_STATION_ID,
            Attribute::CallingStationId(_) => t::CALLING_STATION_ID,
            Attribute::NasIdentifier(_) => t::NAS_IDENTIFIER,
            Attribute::AcctStatusType(_) => t::ACCT_STATUS_TYPE,
            Attribute::AcctDelayTime(_) => t::ACCT_DELAY_TIME,
            Attribute::AcctInputOctets(_) => t::ACCT_INPUT_OCTETS,
            Attribute::AcctOutputOctets(_) => t::ACCT_OUTPUT_OCTETS,
            Attribute::AcctSessionId(_) => t::ACCT_SESSION_ID,
            Attribute::AcctSessionTime(_) => t::ACCT_SESSION_TIME,
            Attribute::AcctInputPackets(_) => t::ACCT_INPUT_PACKETS,
            Attribute::AcctOutputPackets(_) => t::ACCT_OUTPUT_PACKETS,
            Attribute::AcctTerminateCause(_) => t::ACCT_TERMINATE_CAUSE,
            Attribute::AcctInputGigawords(_) => t::ACCT_INPUT_GIGAWORDS,
            Attribute::AcctOutputGigawords(_) => t::ACCT_OUTPUT_GIGAWORDS,
            Attribute::NasPortType(_) => t::NAS_PORT_TYPE,
            Attribute::EapMessage(_) => t::EAP_MESSAGE,
            Attribute::MessageAuthenticator(_) => t::MESSAGE_AUTHENTICATOR,
            Attribute::AcctInterimInterval(_) => t::ACCT_INTERIM_INTERVAL,
            Attribute::NasPortId(_) => t::NAS_PORT_ID,
            Attribute::NasIpv6Address(_) => t::NAS_IPV6_ADDRESS,
            Attribute::FramedIpv6Prefix { .. } => t::FRAMED_IPV6_PREFIX,
            Attribute::FramedIpv6Address(_) => t::FRAMED_IPV6_ADDRESS,
            Attribute::Other { kind, .. } => *kind,
        }
    }

    /// Appends Type, Length and the value; [`CodecError::ValueTooLong`] past 253 octets.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let kind = self.kind();
        let start = out.len();
        out.push(kind);
        out.push(0);
        match self {
            Attribute::UserName(v)
            | Attribute::ReplyMessage(v)
            | Attribute::State(v)
            | Attribute::Class(v)
            | Attribute::CalledStationId(v)
            | Attribute::CallingStationId(v)
            | Attribute::NasIdentifier(v)
            | Attribute::AcctSessionId(v)
            | Attribute::EapMessage(v)
            | Attribute::NasPortId(v)
            | Attribute::Other { value: v, .. } => out.extend_from_slice(v),
            Attribute::NasIpAddress(a) | Attribute::FramedIpAddress(a) | Attribute::FramedIpNetmask(a) => {
                out.extend_from_slice(&a.octets())
            }
            Attribute::NasPort(n)
            | Attribute::ServiceType(n)
            | Attribute::SessionTimeout(n)
            | Attribute::AcctStatusType(n)
            | Attribute::AcctDelayTime(n)
            | Attribute::AcctInputOctets(n)
            | Attribute::AcctOutputOctets(n)
            | Attribute::AcctSessionTime(n)
            | Attribute::AcctInputPackets(n)
            | Attribute::AcctOutputPackets(n)
            | Attribute::AcctTerminateCause(n)
            | Attribute::AcctInputGigawords(n)
            | Attribute::AcctOutputGigawords(n)
            | Attribute::NasPortType(n)
            | Attribute::AcctInterimInterval(n) => out.extend_from_slice(&n.to_be_bytes()),
            Attribute::VendorSpecific { vendor_id, data } => {
                out.extend_from_slice(&vendor_id.to_be_bytes());
                out.extend_from_slice(data);
            }
            Attribute::MessageAuthenticator(m) => out.extend_from_slice(m),
            Attribute::NasIpv6Address(a) | Attribute::FramedIpv6Address(a) => out.extend_from_slice(&a.octets()),
            Attribute::FramedIpv6Prefix { prefix_len, prefix } => {
                // RFC 3162 §2.3: Reserved, Prefix-Length, then the prefix; all 16 octets are sent
                // (every server takes that form), bits past the length zero.
                let len = (*prefix_len).min(128);
                out.push(0);
                out.push(len);
                out.extend_from_slice(&mask_v6(*prefix, len).octets());
            }
        }
        let length = out.len().saturating_sub(start);
        match u8::try_from(length) {
            Ok(l) if length <= MAX_VALUE_LEN + 2 => {
                if let Some(slot) = out.get_mut(start.saturating_add(1)) {
                    *slot = l;
                }
                Ok(())
            }
            _ => {
                out.truncate(start);
                Err(CodecError::ValueTooLong { kind, length: length.saturating_sub(2) })
            }
        }
    }

    /// A Vendor-Specific attribute holding one sub-attribute of the RFC 2865 §5.26 layout
    /// (vendor type, vendor length, value).
    pub fn vendor(vendor_id: u32, vendor_type: u8, value: &[u8]) -> Result<Attribute, CodecError> {
        let sub_len = value.len().saturating_add(2);
        let length = u8::try_from(sub_len)
            .ok()
            .filter(|_| sub_len.saturating_add(4) <= MAX_VALUE_LEN)
            .ok_or(CodecError::ValueTooLong { kind: types::VENDOR_SPECIFIC, length: sub_len.saturating_add(4) })?;
        let mut data = Vec::with_capacity(sub_len);
        data.push(vendor_type);
        data.push(length);
        data.extend_from_slice(value);
        Ok(Attribute::VendorSpecific { vendor_id, data })
    }

    /// For a Vendor-Specific attribute whose String is a sequence of RFC 2865 §5.26 sub-attributes,
    /// those (vendor type, value); `None` for any other attribute or a String of another layout.
    pub fn vendor_sub_attributes(&self) -> Option<(u32, Vec<SubAttribute<'_>>)> {
        let Attribute::VendorSpecific { vendor_id, data } = self else { return None };
        let mut subs = Vec::new();
        let mut rest: &[u8] = data;
        while !rest.is_empty() {
            let (&kind, after) = rest.split_first()?;
            let (&len, after) = after.split_first()?;
            let value_len = usize::from(len).checked_sub(2)?;
            let value = after.get(..value_len)?;
            subs.push((kind, value));
            rest = after.get(value_len..)?;
        }
        Some((*vendor_id, subs))
    }
}

fn decode_ipv6_prefix(value: &[u8]) -> Option<Attribute> {
    let (&_reserved, rest) = value.split_first()?;
    let (&prefix_len, octets) = rest.split_first()?;
    if prefix_len > 128 || octets.len() > 16 {
        return None;
    }
    let mut full = [0u8; 16];
    full.get_mut(..octets.len())?.copy_from_slice(octets);
    Some(Attribute::FramedIpv6Prefix { prefix_len, prefix: mask_v6(Ipv6Addr::from(full), prefix_len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(a: Attribute) {
        let mut out = Vec::new();
        a.encode(&mut out).unwrap();
        assert_eq!(usize::from(out[1]), out.len());
        assert_eq!(out[0], a.kind());
        assert_eq!(Attribute::decode(out[0], &out[2..]), a);
    }

    #[test]
    fn typed_attributes_round_trip() {
        round_trip(Attribute::UserName(b"alice".to_vec()));
        round_trip(Attribute::NasIpAddress(Ipv4Addr::new(192, 0, 2, 1)));
        round_trip(Attribute::NasPortType(NAS_PORT_TYPE_VIRTUAL));
        round_trip(Attribute::ServiceType(SERVICE_TYPE_FRAMED));
        round_trip(Attribute::MessageAuthenticator([7; 16]));
        round_trip(Attribute::NasIpv6Address("2001:db8::1".parse().unwrap()));
        round_trip(Attribute::FramedIpv6Address("2001:db8::2".parse().unwrap()));
        round_trip(Attribute::FramedIpv6Prefix { prefix_len: 64, prefix: "2001:db8:1:2::".parse().unwrap() });
        round_trip(Attribute::FramedIpv6Prefix { prefix_len: 0, prefix: Ipv6Addr::UNSPECIFIED });
        round_trip(Attribute::VendorSpecific { vendor_id: 311, data: vec![16, 4, 1, 2] });
        round_trip(Attribute::Other { kind: 200, value: vec![1, 2, 3] });
        round_trip(Attribute::EapMessage(vec![0; 253]));
    }

    #[test]
    fn wrong_sized_values_are_kept_raw() {
        assert_eq!(Attribute::decode(types::NAS_PORT, &[1, 2, 3]), Attribute::Other { kind: 5, value: vec![1, 2, 3] });
        assert_eq!(
            Attribute::decode(types::MESSAGE_AUTHENTICATOR, &[0; 15]),
            Attribute::Other { kind: 80, value: vec![0; 15] }
        );
        assert_eq!(
            Attribute::decode(types::VENDOR_SPECIFIC, &[0, 0, 1]),
            Attribute::Other { kind: 26, value: vec![0, 0, 1] }
        );
        assert_eq!(
            Attribute::decode(types::FRAMED_IPV6_PREFIX, &[0, 129]),
            Attribute::Other { kind: 97, value: vec![0, 129] }
        );
    }

    #[test]
    fn short_ipv6_prefixes_are_padded_and_masked() {
        // RFC 3162 §2.3: the prefix field may be shorter than 16 octets; bits past the length are
        // cleared.
        assert_eq!(
            Attribute::decode(types::FRAMED_IPV6_PREFIX, &[0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0xff, 0xff]),
            Attribute::FramedIpv6Prefix { prefix_len: 56, prefix: "2001:db8:1:ff00::".parse().unwrap() }
        );
    }

    #[test]
    fn values_over_253_octets_are_refused() {
        let mut out = vec![9];
        assert_eq!(
            Attribute::UserName(vec![0; 254]).encode(&mut out),
            Err(CodecError::ValueTooLong { kind: 1, length: 254 })
        );
        assert_eq!(out, [9]);
        assert!(Attribute::vendor(311, 16, &[0; 247]).is_ok());
        assert!(Attribute::vendor(311, 16, &[0; 248]).is_err());
    }

    #[test]
    fn vendor_sub_attributes_parse() {
        let a = Attribute::VendorSpecific { vendor_id: 311, data: vec![16, 4, 1, 2, 17, 2] };
        let (vendor, subs) = a.vendor_sub_attributes().unwrap();
        assert_eq!(vendor, 311);
        assert_eq!(subs, vec![(16, &[1u8, 2][..]), (17, &[][..])]);
        let bad = Attribute::VendorSpecific { vendor_id: 311, data: vec![16, 9, 1] };
        assert!(bad.vendor_sub_attributes().is_none());
        let bad = Attribute::VendorSpecific { vendor_id: 311, data: vec![16, 1] };
        assert!(bad.vendor_sub_attributes().is_none());
        assert!(Attribute::State(vec![]).vendor_sub_attributes().is_none());
    }
}
