//! Property tests: every payload emits and parses back to itself, and no input makes a parser panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use oxswan_wire::cp::{CfgAttribute, CpPayload};
use oxswan_wire::id::IdPayload;
use oxswan_wire::notify::{DeletePayload, NotifyPayload};
use oxswan_wire::payloads::{
    AuthPayload, CertPayload, CertReqPayload, EapCode, EapPayload, KePayload, NoncePayload, UnknownPayload,
    VendorIdPayload,
};
use oxswan_wire::sa::{AttributeValue, Proposal, SaPayload, Transform, TransformAttribute};
use oxswan_wire::ts::{TrafficSelector, TsAddrs, TsPayload};
use oxswan_wire::*;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        1u8..=12,
        any::<u16>(),
        prop::collection::vec(
            prop_oneof![any::<u16>().prop_map(AttributeValue::Tv), bytes(8).prop_map(AttributeValue::Tlv),]
                .prop_flat_map(|v| (0u16..0x8000).prop_map(move |t| (t, v.clone()))),
            0..3,
        ),
    )
        .prop_map(|(ty, id, attrs)| Transform {
            transform_type: TransformType(ty),
            transform_id: id,
            attributes: attrs
                .into_iter()
                .map(|(t, value)| TransformAttribute { attribute_type: AttributeType(t), value })
                .collect(),
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (any::<u8>(), 0u8..4, prop_oneof![Just(0usize), Just(4), Just(8)], prop::collection::vec(transform(), 0..6))
        .prop_flat_map(|(number, protocol, spi_len, transforms)| {
            prop::collection::vec(any::<u8>(), spi_len).prop_map(move |spi| Proposal {
                number,
                protocol: ProtocolId(protocol),
                spi,
                transforms: transforms.clone(),
            })
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    let addrs = prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| TsAddrs::V4 { start: a.into(), end: b.into() }),
        (any::<u128>(), any::<u128>()).prop_map(|(a, b)| TsAddrs::V6 { start: a.into(), end: b.into() }),
        (9u8..=255, bytes(12)).prop_map(|(t, data)| TsAddrs::Unknown { ts_type: TsType(t), data }),
    ];
    (any::<u8>(), any::<u16>(), any::<u16>(), addrs).prop_map(|(ip_protocol, start_port, end_port, addrs)| {
        // Unknown types carry no port fields of their own.
        let (start_port, end_port) =
            if matches!(addrs, TsAddrs::Unknown { .. }) { (0, 0) } else { (start_port, end_port) };
        TrafficSelector { ip_protocol, start_port, end_port, addrs }
    })
}

/// Payloads whose parsers are total over their emitted form.
fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        prop::collection::vec(proposal(), 1..4).prop_map(|proposals| Payload::Sa(SaPayload { proposals })),
        (any::<u16>(), bytes(64)).prop_map(|(g, data)| Payload::Ke(KePayload { group: KeId(g), data })),
        (any::<u8>(), bytes(64)).prop_map(|(e, data)| Payload::Cert(CertPayload { encoding: CertEncoding(e), data })),
        (any::<u8>(), bytes(64))
            .prop_map(|(e, data)| Payload::CertReq(CertReqPayload { encoding: CertEncoding(e), data })),
        (any::<u8>(), bytes(64)).prop_map(|(m, data)| Payload::Auth(AuthPayload { method: AuthMethod(m), data })),
        bytes(64).prop_map(|data| Payload::Nonce(NoncePayload { data })),
        (any::<u8>(), bytes(9), any::<u16>(), bytes(32)).prop_map(|(p, spi, t, data)| {
            Payload::Notify(NotifyPayload { protocol: ProtocolId(p), spi, notify_type: NotifyType(t), data })
        }),
        prop::collection::vec(any::<u32>(), 0..5).prop_map(|spis| Payload::Delete(DeletePayload::esp(&spis))),
        Just(Payload::Delete(DeletePayload::ike())),
        bytes(32).prop_map(|data| Payload::VendorId(VendorIdPayload { data })),
        prop::collection::vec(selector(), 0..4).prop_map(|selectors| Payload::TsI(TsPayload { selectors })),
        prop::collection::vec(selector(), 0..4).prop_map(|selectors| Payload::TsR(TsPayload { selectors })),
        (any::<u8>(), any::<[u8; 3]>(), bytes(40)).prop_map(|(t, reserved, data)| Payload::IdI(IdPayload {
            id_type: IdType(t),
            reserved,
            data
        })),
        (any::<u8>(), any::<[u8; 3]>(), bytes(40)).prop_map(|(t, reserved, data)| Payload::IdR(IdPayload {
            id_type: IdType(t),
            reserved,
            data
        })),
        (any::<u8>(), prop::collection::vec((0u16..0x8000, bytes(20)), 0..5)).prop_map(|(t, attrs)| {
            Payload::Cp(CpPayload {
                cfg_type: CfgType(t),
                attributes: attrs
                    .into_iter()
                    .map(|(a, value)| CfgAttribute { attribute_type: CfgAttributeType(a), value })
                    .collect(),
            })
        }),
        (1u8..=2, any::<u8>(), 1u8..=255, bytes(32)).prop_map(|(code, identifier, ty, mut data)| {
            data.insert(0, ty);
            Payload::Eap(EapPayload { code: EapCode(code), identifier, data })
        }),
        (3u8..=4, any::<u8>()).prop_map(|(code, identifier)| Payload::Eap(EapPayload {
            code: EapCode(code),
            identifier,
            data: vec![]
        })),
        (200u8..=250, bytes(32)).prop_map(|(t, data)| Payload::Unknown(UnknownPayload {
            payload_type: PayloadType(t),
            critical: false,
            data
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// emit → parse is the identity, for whole messages.
    #[test]
    fn message_round_trip(payloads in prop::collection::vec(payload(), 0..6), mid in any::<u32>(), flags in any::<u8>()) {
        let header = Header::new(IkeSpi([1; 8]), IkeSpi([2; 8]), ExchangeType::INFORMATIONAL, Flags(flags), mid);
        let bytes = header.encode(&payloads).unwrap();
        let msg = Message::parse(&bytes).unwrap();
        prop_assert_eq!(msg.header().message_id, mid);
        prop_assert_eq!(msg.header().flags, Flags(flags));
        let parsed = msg.parse_payloads().unwrap();
        prop_assert_eq!(&parsed, &payloads);
        // And emitting again gives the same octets.
        prop_assert_eq!(header.encode(&parsed).unwrap(), bytes);
    }

    /// Arbitrary bytes never panic the message parser or any payload parser.
    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(600)) {
        if let Ok(msg) = Message::parse(&data) {
            let _ = msg.parse_payloads();
        }
        let _ = Header::parse(&data);
        for ty in PayloadType::KNOWN.iter().copied().chain([PayloadType(0), PayloadType(99)]) {
            let _ = parse_chain(ty, &data, 28);
        }
        if let Ok(p) = oxswan_wire::esp::EspPacket::new_checked(&data[..])
            && let Ok((len, _)) = oxswan_wire::esp::parse_trailer(p.payload()) {
                prop_assert!(len <= p.payload().len());
            }
        let _ = oxswan_wire::udp_encap::classify(&data);
    }

    /// A valid message with any single byte changed still never panics, and most often still parses
    /// or fails with a located error inside the message.
    #[test]
    fn mutated_messages_never_panic(payloads in prop::collection::vec(payload(), 1..5), pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let header = Header::new(IkeSpi([1; 8]), IkeSpi([2; 8]), ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
        let mut bytes = header.encode(&payloads).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = val;
        if let Ok(msg) = Message::parse(&bytes)
            && let Err(e) = msg.parse_payloads() {
                prop_assert!(e.offset <= bytes.len(), "error offset {} beyond message of {}", e.offset, bytes.len());
            }
    }
}
