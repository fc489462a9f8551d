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
