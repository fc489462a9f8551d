#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Messages captured between two strongSwan 5.9.8 charons (`scripts/capture-charon.sh`, see
//! `tests/data/README.md`): aes256gcm16-prfsha256-x25519 with PSK, ESP aes256gcm16, over kernel-libipsec,
//! which floats to UDP 4500 after IKE_SA_INIT. The files hold the UDP payloads with the non-ESP marker
//! already stripped; the `.sk-plain.bin` files hold the decrypted SK contents that charon logged.
//!
//! Nothing here hard-codes the random parts (SPIs, nonces, keys), so a fresh capture passes as well.

use oxswan_wire::id::Identity;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::AuthPayload;
use oxswan_wire::sa::{Proposal, SaPayload, Transform};
use oxswan_wire::{
    AuthMethod, EncrId, EsnId, ExchangeType, HashAlgorithm, Header, IkeSpi, KeId, Message, NotifyType, Payload,
    PayloadType, PrfId, ProtocolId, TransformType, emit_chain, parse_chain,
};

const INIT_REQ: &[u8] = include_bytes!("data/charon-psk-ike_sa_init-req.bin");
const INIT_RESP: &[u8] = include_bytes!("data/charon-psk-ike_sa_init-resp.bin");
const AUTH_REQ: &[u8] = include_bytes!("data/charon-psk-ike_auth-req.bin");
const AUTH_RESP: &[u8] = include_bytes!("data/charon-psk-ike_auth-resp.bin");
const INFO_REQ: &[u8] = include_bytes!("data/charon-psk-informational-req.bin");
const INFO_RESP: &[u8] = include_bytes!("data/charon-psk-informational-resp.bin");
const AUTH_REQ_PLAIN: &[u8] = include_bytes!("data/charon-psk-ike_auth-req.sk-plain.bin");
const AUTH_RESP_PLAIN: &[u8] = include_bytes!("data/charon-psk-ike_auth-resp.sk-plain.bin");
const INFO_REQ_PLAIN: &[u8] = include_bytes!("data/charon-psk-informational-req.sk-plain.bin");
const INFO_RESP_PLAIN: &[u8] = include_bytes!("data/charon-psk-informational-resp.sk-plain.bin");
const ESP_I2R: &[u8] = include_bytes!("data/charon-psk-esp-1-i2r.bin");
const ESP_R2I: &[u8] = include_bytes!("data/charon-psk-esp-2-r2i.bin");

/// AES-GCM in IKEv2 (RFC 5282): 8-octet explicit IV, 16-octet ICV for AES_GCM_16.
const GCM_IV: usize = 8;
const GCM_ICV: usize = 16;

fn parse(bytes: &[u8]) -> (Header, Vec<Payload>) {
    let m = Message::parse(bytes).unwrap();
    (*m.header(), m.parse_payloads().unwrap())
}

fn types(payloads: &[Payload]) -> Vec<PayloadType> {
    payloads.iter().map(Payload::payload_type).collect()
}

fn notifies(payloads: &[Payload]) -> Vec<&NotifyPayload> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn notify_types(payloads: &[Payload]) -> Vec<NotifyType> {
    notifies(payloads).iter().map(|n| n.notify_type).collect()
}

fn notify(payloads: &[Payload], ty: NotifyType) -> &NotifyPayload {
    notifies(payloads).into_iter().find(|n| n.notify_type == ty).unwrap_or_else(|| panic!("no {ty} notify"))
}

fn sa(payloads: &[Payload]) -> &SaPayload {
    payloads.iter().find_map(|p| if let Payload::Sa(sa) = p { Some(sa) } else { None }).expect("SA payload")
}

fn check_header(h: &Header, exchange: ExchangeType, response: bool, message_id: u32, len: usize) {
    assert_eq!((h.major_version, h.minor_version), (2, 0));
    assert_eq!(h.exchange_type, exchange);
    assert_eq!(h.message_id, message_id);
    assert_eq!(h.length as usize, len);
    // Sent by the original initiator (I) or as a response (R), never both here, and no V.
    assert_eq!(h.flags.initiator(), !response);
    assert_eq!(h.flags.response(), response);
    assert_eq!(h.flags.0 & !0x28, 0, "{:?}", h.flags);
}

/// The single IKE proposal of aes256gcm16-prfsha256-x25519, in strongSwan's transform order.
fn check_ike_proposal(sa: &SaPayload) {
    assert_eq!(sa.proposals.len(), 1);
    let p = &sa.proposals[0];
    assert_eq!((p.number, p.protocol), (1, ProtocolId::IKE));
    assert!(p.spi.is_empty(), "no SPI in an initial IKE_SA_INIT");
    assert_eq!(
        p.transforms,
        vec![
            Transform::encr(EncrId::AES_GCM_16, Some(256)),
            Transform::prf(PrfId::HMAC_SHA2_256),
            Transform::ke(TransformType::KE, KeId::CURVE25519),
        ]
    );
    assert_eq!(p.transforms_of(TransformType::ENCR).next().unwrap().key_length(), Some(256));
    assert_eq!(p.transforms_of(TransformType::INTEG).count(), 0, "AEAD: no integrity transform");
}

/// The ESP proposal of aes256gcm16 with its 4-octet SPI; returns the SPI.
fn check_esp_proposal(sa: &SaPayload) -> u32 {
    assert_eq!(sa.proposals.len(), 1);
    let p: &Proposal = &sa.proposals[0];
    assert_eq!((p.number, p.protocol, p.spi.len()), (1, ProtocolId::ESP, 4));
    assert_eq!(p.transforms, vec![Transform::encr(EncrId::AES_GCM_16, Some(256)), Transform::esn(EsnId::NO_ESN)]);
    p.spi_u32().unwrap()
}

fn check_ke_and_nonce(payloads: &[Payload]) {
    let Payload::Ke(ke) = &payloads[1] else { panic!("{:?}", payloads[1]) };
    assert_eq!(ke.group, KeId::CURVE25519);
    assert_eq!(ke.data.len(), 32, "X25519 public value");
    let Payload::Nonce(nonce) = &payloads[2] else { panic!("{:?}", payloads[2]) };
    // strongSwan sends nonces as long as the PRF output (RFC 7296 §2.10: at least half the PRF key size).
    assert_eq!(nonce.data.len(), 32);
}

fn check_common_init_notifies(payloads: &[Payload]) {
    for ty in [NotifyType::NAT_DETECTION_SOURCE_IP, NotifyType::NAT_DETECTION_DESTINATION_IP] {
        let n = notify(payloads, ty);
        assert_eq!((n.protocol, n.spi.len()), (ProtocolId::NONE, 0));
        assert_eq!(n.data.len(), 20, "SHA-1 of SPIs, address and port");
    }
    // They hash different address/port pairs (RFC 7296 §2.23), so they differ.
    assert_ne!(
        notify(payloads, NotifyType::NAT_DETECTION_SOURCE_IP).data,
        notify(payloads, NotifyType::NAT_DETECTION_DESTINATION_IP).data
    );
    assert!(notify(payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).data.is_empty());
    let hashes = notify(payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS).signature_hash_algorithms().unwrap();
    assert_eq!(
        hashes,
        vec![HashAlgorithm::SHA2_256, HashAlgorithm::SHA2_384, HashAlgorithm::SHA2_512, HashAlgorithm::IDENTITY]
    );
    assert!(!payloads.iter().any(|p| matches!(p, Payload::VendorId(_))), "charon sends no vendor IDs by default");
}

#[test]
fn ike_sa_init_request() {
    let (h, payloads) = parse(INIT_REQ);
    check_header(&h, ExchangeType::IKE_SA_INIT, false, 0, INIT_REQ.len());
    assert!(!h.spi_i.is_zero());
    assert_eq!(h.spi_r, IkeSpi::ZERO);
    assert_eq!(h.next_payload, PayloadType::SA);
    assert_eq!(
        types(&payloads),
        [&[PayloadType::SA, PayloadType::KE, PayloadType::NONCE][..], &[PayloadType::NOTIFY; 5]].concat()
    );
    check_ike_proposal(sa(&payloads));
    check_ke_and_nonce(&payloads);
    assert_eq!(
        notify_types(&payloads),
        vec![
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType::REDIRECT_SUPPORTED,
        ]
    );
    check_common_init_notifies(&payloads);
    assert!(notify(&payloads, NotifyType::REDIRECT_SUPPORTED).data.is_empty());
}

#[test]
fn ike_sa_init_response() {
    let (req, _) = parse(INIT_REQ);
    let (h, payloads) = parse(INIT_RESP);
    check_header(&h, ExchangeType::IKE_SA_INIT, true, 0, INIT_RESP.len());
    assert_eq!(h.spi_i, req.spi_i);
    assert!(!h.spi_r.is_zero());
    assert_eq!(
        types(&payloads),
        [&[PayloadType::SA, PayloadType::KE, PayloadType::NONCE][..], &[PayloadType::NOTIFY; 6]].concat()
    );
    // The responder echoes the one proposal it chose, number and all.
    check_ike_proposal(sa(&payloads));
    check_ke_and_nonce(&payloads);
    assert_eq!(
        notify_types(&payloads),
        vec![
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType::CHILDLESS_IKEV2_SUPPORTED,
            NotifyType::MULTIPLE_AUTH_SUPPORTED,
        ]
    );
    check_common_init_notifies(&payloads);
    // The two sides' nonces and KE values differ.
    let (_, req_payloads) = parse(INIT_REQ);
    assert_ne!(req_payloads[1], payloads[1]);
    assert_ne!(req_payloads[2], payloads[2]);
}

/// Checks an SK-protected message and returns its SK payload's data (IV | ciphertext | ICV).
fn check_encrypted(
    bytes: &[u8],
    exchange: ExchangeType,
    response: bool,
    message_id: u32,
    inner: PayloadType,
) -> Vec<u8> {
    let (init, _) = parse(INIT_RESP);
    let (h, payloads) = parse(bytes);
    check_header(&h, exchange, response, message_id, bytes.len());
    assert_eq!((h.spi_i, h.spi_r), (init.spi_i, init.spi_r), "SPIs fixed by IKE_SA_INIT");
    assert_eq!(h.next_payload, PayloadType::SK);
    assert_eq!(payloads.len(), 1);
    let Payload::Sk(sk) = payloads.last().unwrap() else { panic!("{payloads:?}") };
    assert_eq!(sk.next_inner, inner);
    // Header, SK generic header, then IV | ciphertext | ICV filling the rest of the message.
    assert_eq!(Header::LEN + 4 + sk.data.len(), bytes.len());
    assert!(sk.data.len() > GCM_IV + GCM_ICV);
    sk.data.clone()
}

/// The ciphertext length of an SK payload: the inner payloads, padding and the Pad Length octet.
/// strongSwan pads AEAD plaintext with nothing, so ciphertext = plaintext + 1.
fn check_sk_lengths(sk_data: &[u8], plain: &[u8]) {
    assert_eq!(sk_data.len(), GCM_IV + plain.len() + 1 + GCM_ICV);
}

#[test]
fn ike_auth_request() {
    let data = check_encrypted(AUTH_REQ, ExchangeType::IKE_AUTH, false, 1, PayloadType::IDI);
    check_sk_lengths(&data, AUTH_REQ_PLAIN);

    // The content charon encrypted: IDi N(INITIAL_CONTACT) IDr AUTH SA TSi TSr and five notifies.
    let inner = parse_chain(PayloadType::IDI, AUTH_REQ_PLAIN, Header::LEN + 4 + GCM_IV).unwrap();
    assert_eq!(
        types(&inner),
        [
            &[
                PayloadType::IDI,
                PayloadType::NOTIFY,
                PayloadType::IDR,
                PayloadType::AUTH,
                PayloadType::SA,
                PayloadType::TSI,
                PayloadType::TSR,
            ][..],
            &[PayloadType::NOTIFY; 5],
        ]
        .concat()
    );
    assert_eq!(
        notify_types(&inner),
        vec![
            NotifyType::INITIAL_CONTACT,
            NotifyType::MOBIKE_SUPPORTED,
            NotifyType::NO_ADDITIONAL_ADDRESSES,
            NotifyType::MULTIPLE_AUTH_SUPPORTED,
            NotifyType::EAP_ONLY_AUTHENTICATION,
            NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
        ]
    );
    check_psk_auth(&inner);
    check_esp_proposal(sa(&inner));
    check_ids_and_selectors(&inner, "left.example", Some("right.example"));
    let mut out = Vec::new();
    assert_eq!(emit_chain(&inner, PayloadType::NONE, &mut out).unwrap(), PayloadType::IDI);
    assert_eq!(out, AUTH_REQ_PLAIN);
}

#[test]
fn ike_auth_response() {
    let data = check_encrypted(AUTH_RESP, ExchangeType::IKE_AUTH, true, 1, PayloadType::IDR);
    check_sk_lengths(&data, AUTH_RESP_PLAIN);

    let inner = parse_chain(PayloadType::IDR, AUTH_RESP_PLAIN, Header::LEN + 4 + GCM_IV).unwrap();
    assert_eq!(
        types(&inner),
        vec![
            PayloadType::IDR,
            PayloadType::AUTH,
            PayloadType::SA,
            PayloadType::TSI,
            PayloadType::TSR,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY,
        ]
    );
    assert_eq!(notify_types(&inner), vec![NotifyType::MOBIKE_SUPPORTED, NotifyType::NO_ADDITIONAL_ADDRESSES]);
    check_psk_auth(&inner);
    check_ids_and_selectors(&inner, "right.example", None);
    let mut out = Vec::new();
    assert_eq!(emit_chain(&inner, PayloadType::NONE, &mut out).unwrap(), PayloadType::IDR);
    assert_eq!(out, AUTH_RESP_PLAIN);
}

fn check_psk_auth(inner: &[Payload]) {
    let auth: &AuthPayload =
        inner.iter().find_map(|p| if let Payload::Auth(a) = p { Some(a) } else { None }).expect("AUTH");
    assert_eq!(auth.method, AuthMethod::SHARED_KEY_MIC);
    assert_eq!(auth.data.len(), 32, "prf output of HMAC-SHA-256");
}

#[test]
fn esp_spis_match_the_child_sa() {
    let req = parse_chain(PayloadType::IDI, AUTH_REQ_PLAIN, 0).unwrap();
    let resp = parse_chain(PayloadType::IDR, AUTH_RESP_PLAIN, 0).unwrap();
    let spi_i = check_esp_proposal(sa(&req));
    let spi_r = check_esp_proposal(sa(&resp));
    assert_ne!(spi_i, spi_r);
    // An SA's SPI is chosen by its receiver: initiator-to-responder packets carry the responder's SPI.
    let spi_of = |esp: &[u8]| u32::from_be_bytes(esp[..4].try_into().unwrap());
    let seq_of = |esp: &[u8]| u32::from_be_bytes(esp[4..8].try_into().unwrap());
    assert_eq!(spi_of(ESP_I2R), spi_r);
    assert_eq!(spi_of(ESP_R2I), spi_i);
    assert_eq!((seq_of(ESP_I2R), seq_of(ESP_R2I)), (1, 1));
    // SPI, sequence number, 8-octet IV, ciphertext, 16-octet ICV: a 15-octet UDP datagram in IPv4 (43
    // octets) plus the ESP trailer, padded to a multiple of 4.
    for esp in [ESP_I2R, ESP_R2I] {
        assert_eq!(esp.len(), 8 + GCM_IV + 48 + GCM_ICV);
    }
}

#[test]
fn informational_delete() {
    let data = check_encrypted(INFO_REQ, ExchangeType::INFORMATIONAL, false, 2, PayloadType::DELETE);
    check_sk_lengths(&data, INFO_REQ_PLAIN);
    let inner = parse_chain(PayloadType::DELETE, INFO_REQ_PLAIN, 0).unwrap();
    assert_eq!(inner, vec![Payload::Delete(oxswan_wire::notify::DeletePayload::ike())]);

    // The empty response still carries an SK payload, with no inner payload.
    let data = check_encrypted(INFO_RESP, ExchangeType::INFORMATIONAL, true, 2, PayloadType::NONE);
    assert!(INFO_RESP_PLAIN.is_empty());
    check_sk_lengths(&data, INFO_RESP_PLAIN);
}

#[test]
fn re_emitting_reproduces_the_captured_bytes() {
    for (name, bytes) in [
        ("IKE_SA_INIT request", INIT_REQ),
        ("IKE_SA_INIT response", INIT_RESP),
        ("IKE_AUTH request", AUTH_REQ),
        ("IKE_AUTH response", AUTH_RESP),
        ("INFORMATIONAL request", INFO_REQ),
        ("INFORMATIONAL response", INFO_RESP),
    ] {
        let (h, payloads) = parse(bytes);
        assert_eq!(h.encode(&payloads).unwrap(), bytes, "{name}");
        // Also from a header built from scratch, as an engine would.
        let fresh = Header::new(h.spi_i, h.spi_r, h.exchange_type, h.flags, h.message_id);
        assert_eq!(fresh.encode(&payloads).unwrap(), bytes, "{name}");
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for bytes in [INIT_REQ, INIT_RESP, AUTH_REQ, AUTH_RESP] {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            assert!(Message::parse(cut).is_err(), "length field must reject {len} octets");
            // With a length field patched to match, the chain walk must fail cleanly.
            if len >= Header::LEN {
                let mut patched = cut.to_vec();
                patched[24..28].copy_from_slice(&(len as u32).to_be_bytes());
                let m = Message::parse(&patched).unwrap();
                assert!(m.parse_payloads().is_err(), "{len} of {} octets parsed", bytes.len());
            }
        }
    }
}

/// The identities of the psk-left/psk-right configs, and TSi = 10.1.0.1/32, TSr = 10.2.0.1/32 (the
/// initiator's view, in both messages: RFC 7296 §2.9 keeps TSi for the initiator's side).
fn check_ids_and_selectors(inner: &[Payload], own: &str, expected_peer: Option<&str>) {
    let fqdn = |s: &str| Identity::Fqdn(s.to_owned());
    let (first, second): (Vec<_>, Vec<_>) = inner
        .iter()
        .filter_map(|p| match p {
            Payload::IdI(id) => Some((true, id)),
            Payload::IdR(id) => Some((false, id)),
            _ => None,
        })
        .partition(|(initiator, _)| *initiator);
    let own_id = first.first().or(second.first()).map(|(_, id)| id).unwrap();
    assert_eq!(own_id.identity().unwrap(), fqdn(own));
    assert_eq!(own_id.identity().unwrap().to_string(), own);
    if let Some(peer) = expected_peer {
        // The initiator names the responder it expects in an IDr (RFC 7296 §3.5).
        assert_eq!(second[0].1.identity().unwrap(), fqdn(peer));
    }
    let ts = |want: PayloadType| -> Vec<String> {
        inner
            .iter()
            .filter_map(|p| match p {
                Payload::TsI(t) if want == PayloadType::TSI => Some(t),
                Payload::TsR(t) if want == PayloadType::TSR => Some(t),
                _ => None,
            })
            .flat_map(|t| t.selectors.iter().map(ToString::to_string))
            .collect()
    };
    assert_eq!(ts(PayloadType::TSI), vec!["10.1.0.1/32"]);
    assert_eq!(ts(PayloadType::TSR), vec!["10.2.0.1/32"]);
}
