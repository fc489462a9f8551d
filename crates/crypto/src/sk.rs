//! Protecting and unprotecting the Encrypted and Authenticated payload (RFC 7296 §3.14; AEAD per
//! RFC 5282) and its fragments (SKF, RFC 7383 §2.5).
//!
//! Layout of the payload body: IV ‖ ciphertext of (inner payloads ‖ padding ‖ Pad Length) ‖ ICV.
//! With an AEAD the AAD is the message from the IKE header through the SK generic header (for SKF also
//! Fragment Number and Total Fragments), RFC 5282 §5.1 and RFC 7383 §2.5; with CBC the ICV is an HMAC over
//! the whole message up to the ICV, computed over the ciphertext and checked before decrypting
//! (RFC 7296 §3.14).

use oxswan_wire::{Header, Message, Payload, PayloadType, emit_chain, parse_chain};

use crate::alg::{EncrAlg, IntegAlg};
use crate::error::{CryptoError, Result};
use crate::keys::{IkeSaKeys, IkeSuite};
use crate::provider::CryptoProvider;
use crate::secret::Secret;

/// The keys protecting one direction of an IKE SA.
#[derive(Debug, Clone)]
pub struct SkKeys {
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    /// SK_e: the cipher key followed by the salt for an AEAD.
    sk_e: Secret,
    /// SK_a: empty for an AEAD.
    sk_a: Secret,
}

impl SkKeys {
    /// Keys for one direction; lengths are checked against the algorithms.
    pub fn new(encr: EncrAlg, integ: Option<IntegAlg>, sk_e: Secret, sk_a: Secret) -> Result<Self> {
        if sk_e.len() != encr.keymat_len() {
            return Err(CryptoError::InvalidKeyLength { expected: encr.keymat_len(), got: sk_e.len() });
        }
        match (encr.is_aead(), integ) {
            (true, None) => {}
            (false, Some(i)) if i.key_len() == sk_a.len() => {}
            (false, Some(i)) => return Err(CryptoError::InvalidKeyLength { expected: i.key_len(), got: sk_a.len() }),
            _ => return Err(CryptoError::Malformed("an AEAD takes no integrity algorithm, CBC needs one")),
        }
        Ok(Self { encr, integ, sk_e, sk_a })
    }

    /// The keys for messages sent by the original initiator (SK_ei, SK_ai) or by the original responder
    /// (SK_er, SK_ar), RFC 7296 §2.14.
    pub fn for_sender(keys: &IkeSaKeys, suite: &IkeSuite, original_initiator: bool) -> Result<Self> {
        let (e, a) = if original_initiator { (&keys.sk_ei, &keys.sk_ai) } else { (&keys.sk_er, &keys.sk_ar) };
        Self::new(suite.encr, suite.integ, e.clone(), a.clone())
    }

    fn icv_len(&self) -> usize {
        match self.integ {
            Some(i) if !self.encr.is_aead() => i.icv_len(),
            _ => self.encr.icv_len(),
        }
    }

    /// The plaintext padding: CBC needs whole blocks; an AEAD needs none (RFC 5282 §3 allows any).
    fn pad_len(&self, inner_len: usize) -> usize {
        let block = self.encr.block_len().max(1);
        let used = inner_len.saturating_add(1) % block;
        if used == 0 { 0 } else { block.saturating_sub(used) }
    }

    /// AEAD nonce: salt ‖ IV (RFC 5282 §4).
    fn nonce(&self, iv: &[u8]) -> Result<[u8; 12]> {
        let salt = self.sk_e.expose().get(self.encr.key_len()..).ok_or(CryptoError::Internal("salt"))?;
        let mut nonce = [0u8; 12];
        for (n, b) in nonce.iter_mut().zip(salt.iter().chain(iv)) {
            *n = *b;
        }
        Ok(nonce)
    }

    fn cipher_key(&self) -> Result<&[u8]> {
        self.sk_e.expose().get(..self.encr.key_len()).ok_or(CryptoError::Internal("key"))
    }
}

/// Encrypts `inner` into a message with `header` and a single SK payload (nothing unencrypted before it).
pub fn protect(provider: &CryptoProvider, keys: &SkKeys, header: &Header, inner: &[Payload]) -> Result<Vec<u8>> {
    let mut plain = Vec::new();
    let first = emit_chain(inner, PayloadType::NONE, &mut plain)?;
    seal(provider, keys, header, PayloadType::SK, first, &[], plain)
}

/// Encrypts one fragment of an inner payload chain into an SKF message (RFC 7383 §2.5). `next_inner` is
/// the type of the first inner payload for fragment 1 and NONE for the others.
pub fn protect_fragment(
    provider: &CryptoProvider,
    keys: &SkKeys,
    header: &Header,
    next_inner: PayloadType,
    fragment_number: u16,
    total_fragments: u16,
    chunk: &[u8],
) -> Result<Vec<u8>> {
    let mut numbers = [0u8; 4];
    numbers[..2].copy_from_slice(&fragment_number.to_be_bytes());
    numbers[2..].copy_from_slice(&total_fragments.to_be_bytes());
    seal(provider, keys, header, PayloadType::SKF, next_inner, &numbers, chunk.to_vec())
}

fn seal(
    provider: &CryptoProvider,
    keys: &SkKeys,
    header: &Header,
    sk_type: PayloadType,
    next_inner: PayloadType,
    fields: &[u8],
    mut plain: Vec<u8>,
) -> Result<Vec<u8>> {
    let pad = keys.pad_len(plain.len());
    plain.resize(plain.len().saturating_add(pad), 0);
    plain.push(u8::try_from(pad).map_err(|_| CryptoError::Internal("pad length"))?);

    let iv_len = keys.encr.iv_len();
    let icv_len = keys.icv_len();
    let sk_len =
        4usize.saturating_add(fields.len()).saturating_add(iv_len).saturating_add(plain.len()).saturating_add(icv_len);
    let total = Header::LEN.saturating_add(sk_len);
    let too_long = |_| CryptoError::Malformed("message too long");
    let mut out = Vec::with_capacity(total);
    Header { next_payload: sk_type, length: u32::try_from(total).map_err(too_long)?, ..*header }.emit(&mut out);
    out.push(next_inner.0);
    out.push(0);
    out.extend_from_slice(&u16::try_from(sk_len).map_err(too_long)?.to_be_bytes());
    out.extend_from_slice(fields);
    let aad_end = out.len();

    let mut iv = vec![0u8; iv_len];
    provider.random.fill(&mut iv)?;
    out.extend_from_slice(&iv);
    if keys.encr.is_aead() {
        let aead = provider.cipher.aead(keys.encr, keys.cipher_key()?)?;
        let nonce = keys.nonce(&iv)?;
        let mut tag = vec![0u8; icv_len];
        let aad = out.get(..aad_end).ok_or(CryptoError::Internal("aad"))?.to_vec();
        aead.seal_in_place(&nonce, &aad, &mut plain, &mut tag)?;
        out.extend_from_slice(&plain);
        out.extend_from_slice(&tag);
    } else {
        let integ = keys.integ.ok_or(CryptoError::Internal("integrity algorithm"))?;
        let cbc = provider.cipher.cbc(keys.encr, keys.cipher_key()?)?;
        let iv16: [u8; 16] = iv.as_slice().try_into().map_err(|_| CryptoError::Internal("CBC IV"))?;
        cbc.encrypt_in_place(&iv16, &mut plain)?;
        out.extend_from_slice(&plain);
        let icv = provider.integ.sign(integ, keys.sk_a.expose(), &[&out])?;
        out.extend_from_slice(&icv);
    }
    Ok(out)
}

/// One decrypted SK or SKF payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// Type of the first inner payload (NONE for SKF fragments after the first).
    pub next_inner: PayloadType,
    /// Fragment Number and Total Fragments, for SKF.
    pub fragment: Option<(u16, u16)>,
    /// The inner payload bytes (or fragment bytes), padding removed.
    pub data: Vec<u8>,
    /// Offset of the data's first octet in the message (after the IV), for error reports.
    pub offset: usize,
}

/// Decrypts the SK or SKF payload that ends `message` and returns its content, after checking the ICV.
pub fn decrypt(provider: &CryptoProvider, keys: &SkKeys, message: &Message<'_>) -> Result<Decrypted> {
    let mut last = None;
    for raw in message.payloads() {
        last = Some(raw?);
    }
    let raw = last.ok_or(CryptoError::Malformed("no SK payload"))?;
    let fields_len = match raw.payload_type {
        PayloadType::SK => 0,
        PayloadType::SKF => 4,
        _ => return Err(CryptoError::Malformed("last payload is not SK or SKF")),
    };
    let bytes = message.as_bytes();
    let aad_end = raw.body_offset().saturating_add(fields_len);
    let fragment = match raw.body.get(..fields_len) {
        Some([a, b, c, d]) => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        Some(_) => None,
        None => return Err(CryptoError::Malformed("SKF payload too short")),
    };
    let iv_len = keys.encr.iv_len();
    let icv_len = keys.icv_len();
    let sealed = raw.body.get(fields_len..).ok_or(CryptoError::Malformed("SK payload too short"))?;
    if sealed.len() < iv_len.saturating_add(icv_len).saturating_add(1) {
        return Err(CryptoError::Malformed("SK payload too short"));
    }
    let (iv, rest) = sealed.split_at(iv_len);
    let (ciphertext, icv) = rest.split_at(rest.len().saturating_sub(icv_len));
    let aad = bytes.get(..aad_end).ok_or(CryptoError::Malformed("SK payload offset"))?;
    let mut plain = ciphertext.to_vec();
    if keys.encr.is_aead() {
        let aead = provider.cipher.aead(keys.encr, keys.cipher_key()?)?;
        aead.open_in_place(&keys.nonce(iv)?, aad, &mut plain, icv)?;
    } else {
        let integ = keys.integ.ok_or(CryptoError::Internal("integrity algorithm"))?;
        // RFC 7296 §3.14: the ICV covers the message from the IKE header through the ciphertext; check it
        // before decrypting anything.
        let covered = bytes.get(..bytes.len().saturating_sub(icv_len)).ok_or(CryptoError::Malformed("ICV"))?;
        provider.integ.verify(integ, keys.sk_a.expose(), &[covered], icv)?;
        let iv16: [u8; 16] = iv.try_into().map_err(|_| CryptoError::Internal("CBC IV"))?;
        cbc_decrypt(provider, keys, &iv16, &mut plain)?;
    }
    // Pad Length is the last octet; the padding before it has no required content (RFC 7296 §3.14).
    let pad = usize::from(*plain.last().ok_or(CryptoError::Malformed("empty plaintext"))?);
    let keep =
        plain.len().checked_sub(pad.saturating_add(1)).ok_or(CryptoError::Malformed("pad length beyond plaintext"))?;
    plain.truncate(keep);
    Ok(Decrypted { next_inner: raw.next_payload, fragment, data: plain, offset: aad_end.saturating_add(iv_len) })
}

fn cbc_decrypt(provider: &CryptoProvider, keys: &SkKeys, iv: &[u8; 16], data: &mut [u8]) -> Result<()> {
    let cbc = provider.cipher.cbc(keys.encr, keys.cipher_key()?)?;
    cbc.decrypt_in_place(iv, data)
}

/// Decrypts the SK payload of `message` and parses the inner payloads.
pub fn unprotect(provider: &CryptoProvider, keys: &SkKeys, message: &Message<'_>) -> Result<Vec<Payload>> {
    let d = decrypt(provider, keys, message)?;
    if d.fragment.is_some() {
        return Err(CryptoError::Malformed("SKF fragment: reassemble before parsing"));
    }
    Ok(parse_chain(d.next_inner, &d.data, d.offset)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::default_provider;
    use oxswan_wire::payloads::NoncePayload;
    use oxswan_wire::{EncrId, ExchangeType, Flags, IkeSpi, IntegId, NotifyType, notify::NotifyPayload};

    fn header() -> Header {
        Header::new(IkeSpi([1; 8]), IkeSpi([2; 8]), ExchangeType::IKE_AUTH, Flags::INITIATOR, 1)
    }

    fn inner() -> Vec<Payload> {
        vec![
            Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, vec![])),
            Payload::Nonce(NoncePayload { data: (0u8..37).collect() }),
        ]
    }

    fn suites() -> Vec<SkKeys> {
        let mut out = Vec::new();
        for (id, bits) in [
            (EncrId::AES_GCM_16, 128),
            (EncrId::AES_GCM_16, 256),
            (EncrId::AES_GCM_12, 256),
            (EncrId::AES_GCM_8, 128),
            (EncrId::CHACHA20_POLY1305, 256),
        ] {
            let e = EncrAlg::new(id, Some(bits)).unwrap();
            out.push(SkKeys::new(e, None, Secret::new(vec![0x11; e.keymat_len()]), Secret::default()).unwrap());
        }
        for integ in
            [IntegId::HMAC_SHA1_96, IntegId::HMAC_SHA2_256_128, IntegId::HMAC_SHA2_384_192, IntegId::HMAC_SHA2_512_256]
        {
            let e = EncrAlg::new(EncrId::AES_CBC, Some(256)).unwrap();
            let i = IntegAlg::new(integ).unwrap();
            out.push(
                SkKeys::new(e, Some(i), Secret::new(vec![0x22; 32]), Secret::new(vec![0x33; i.key_len()])).unwrap(),
            );
        }
        out
    }

    #[test]
    fn round_trip_every_suite() {
        let p = default_provider();
        for keys in suites() {
            let bytes = protect(&p, &keys, &header(), &inner()).unwrap();
            let msg = Message::parse(&bytes).unwrap();
            assert_eq!(msg.header().next_payload, PayloadType::SK);
            assert_eq!(unprotect(&p, &keys, &msg).unwrap(), inner(), "{:?}", keys.encr);
            if !keys.encr.is_aead() {
                // Ciphertext is whole blocks for CBC.
                let sk_body = bytes.len() - 32 - keys.encr.iv_len() - keys.icv_len();
                assert_eq!(sk_body % 16, 0);
            }
        }
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let p = default_provider();
        for keys in suites() {
            let bytes = protect(&p, &keys, &header(), &inner()).unwrap();
            // Every octet: header (SPIs, types, flags, message ID), SK header, IV, ciphertext, ICV. A
            // broken length or version fails earlier, in parsing.
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x01;
                if let Ok(msg) = Message::parse(&b) {
                    assert!(unprotect(&p, &keys, &msg).is_err(), "{:?}: flip at {i} not detected", keys.encr);
                }
            }
        }
    }

    #[test]
    fn wrong_key_and_truncations_fail_cleanly() {
        let p = default_provider();
        for keys in suites() {
            let bytes = protect(&p, &keys, &header(), &inner()).unwrap();
            let mut other = keys.clone();
            other.sk_e = Secret::new(vec![0x99; keys.encr.keymat_len()]);
            if !keys.encr.is_aead() {
                other.sk_a = Secret::new(vec![0x98; keys.sk_a.len()]);
            }
            assert!(unprotect(&p, &other, &Message::parse(&bytes).unwrap()).is_err());
            // Cut the message anywhere and fix up the lengths so that it still parses as a message.
            for cut in 32..bytes.len() {
                let mut b = bytes[..cut].to_vec();
                b[24..28].copy_from_slice(&u32::try_from(cut).unwrap().to_be_bytes());
                b[30..32].copy_from_slice(&u16::try_from(cut - 28).unwrap().to_be_bytes());
                let msg = Message::parse(&b).unwrap();
                assert!(unprotect(&p, &keys, &msg).is_err());
            }
        }
    }

    #[test]
    fn message_without_sk_is_rejected() {
        let p = default_provider();
        let bytes = header().encode(&inner()).unwrap();
        let keys = suites().remove(0);
        assert!(matches!(unprotect(&p, &keys, &Message::parse(&bytes).unwrap()), Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn fragments_round_trip_and_protect_their_numbers() {
        let p = default_provider();
        for keys in suites() {
            let mut chain = Vec::new();
            let first = emit_chain(&inner(), PayloadType::NONE, &mut chain).unwrap();
            let (a, b) = chain.split_at(20);
            let f1 = protect_fragment(&p, &keys, &header(), first, 1, 2, a).unwrap();
            let f2 = protect_fragment(&p, &keys, &header(), PayloadType::NONE, 2, 2, b).unwrap();
            let d1 = decrypt(&p, &keys, &Message::parse(&f1).unwrap()).unwrap();
            let d2 = decrypt(&p, &keys, &Message::parse(&f2).unwrap()).unwrap();
            assert_eq!((d1.fragment, d1.next_inner), (Some((1, 2)), first));
            assert_eq!(d2.fragment, Some((2, 2)));
            let joined = [d1.data, d2.data].concat();
            assert_eq!(parse_chain(first, &joined, 0).unwrap(), inner());
            // Fragment numbers are authenticated (RFC 7383 §2.5).
            let mut forged = f2.clone();
            forged[33] = 1;
            assert!(decrypt(&p, &keys, &Message::parse(&forged).unwrap()).is_err());
            // A fragment is not a whole message.
            assert!(unprotect(&p, &keys, &Message::parse(&f1).unwrap()).is_err());
        }
    }

    #[test]
    fn key_lengths_are_checked() {
        let gcm = EncrAlg::new(EncrId::AES_GCM_16, Some(256)).unwrap();
        assert!(SkKeys::new(gcm, None, Secret::new(vec![0; 32]), Secret::default()).is_err());
        let cbc = EncrAlg::new(EncrId::AES_CBC, Some(128)).unwrap();
        assert!(SkKeys::new(cbc, None, Secret::new(vec![0; 16]), Secret::default()).is_err());
        let sha = IntegAlg::new(IntegId::HMAC_SHA2_256_128).unwrap();
        assert!(SkKeys::new(cbc, Some(sha), Secret::new(vec![0; 16]), Secret::new(vec![0; 31])).is_err());
        assert!(SkKeys::new(gcm, Some(sha), Secret::new(vec![0; 36]), Secret::new(vec![0; 32])).is_err());
    }
}
