//! MS-MPPE-Send-Key and MS-MPPE-Recv-Key (RFC 2548 §2.4.2, §2.4.3): the keys an EAP server hands
//! the NAS in an Access-Accept, encrypted with the shared secret and the Request Authenticator,
//! and the MSK made of them.

use oxswan_crypto::Secret;
use zeroize::Zeroizing;

use crate::attribute::Attribute;
use crate::error::CodecError;
use crate::packet::md5_of;

/// Microsoft's SMI Private Enterprise Code (RFC 2548 §2).
pub const VENDOR_MICROSOFT: u32 = 311;
/// MS-MPPE-Send-Key's vendor type (RFC 2548 §2.4.2).
pub const MS_MPPE_SEND_KEY: u8 = 16;
/// MS-MPPE-Recv-Key's vendor type (RFC 2548 §2.4.3).
pub const MS_MPPE_RECV_KEY: u8 = 17;

/// The least MSK length (RFC 3748 §7.10: at least 64 octets); strongSwan pads shorter key pairs
/// with zeros to it.
pub const MSK_MIN_LEN: usize = 64;

/// Why an MS-MPPE key does not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MppeError {
    /// The String (after the two Salt octets) is empty or not a multiple of 16 octets.
    #[error("MS-MPPE key of {0} octets: not a non-zero multiple of 16 after the salt")]
    BadLength(usize),
    /// The decrypted Key-Length is zero or longer than what was decrypted.
    #[error("MS-MPPE Key-Length {0} does not fit")]
    BadKeyLength(u8),
}

/// The keystream block `MD5(S + prev)`, with `extra` after `prev` for the first block
/// (RFC 2548 §2.4.2: `b(1) = MD5(S + R + A)`, `b(i) = MD5(S + c(i-1))`).
fn block(secret: &[u8], prev: &[u8], extra: &[u8]) -> Zeroizing<[u8; 16]> {
    Zeroizing::new(md5_of(&[secret, prev, extra]))
}

/// Encrypts `key` as an MS-MPPE-Send/Recv-Key String (RFC 2548 §2.4.2): returns the sub-attribute
/// value, `salt` followed by the ciphertext of Key-Length | Key | zero padding. What a server does;
/// for tests and tools. The salt's top bit must be set (RFC 2548) and each salt in one packet
/// unique: the caller's business.
pub fn encrypt_key(
    key: &[u8],
    salt: [u8; 2],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, CodecError> {
    let key_len =
        u8::try_from(key.len()).ok().filter(|&l| l > 0 && l <= 239).ok_or(CodecError::BadMppeKey(key.len()))?;
    let mut plain = Zeroizing::new(Vec::with_capacity(key.len().saturating_add(16)));
    plain.push(key_len);
    plain.extend_from_slice(key);
    let padded = plain.len().div_ceil(16).saturating_mul(16);
    plain.resize(padded, 0);
    let mut out = Vec::with_capacity(padded.saturating_add(2));
    out.extend_from_slice(&salt);
    let mut b = block(secret, request_authenticator, &salt);
    for p in plain.chunks(16) {
        let c: Vec<u8> = p.iter().zip(b.iter()).map(|(p, b)| p ^ b).collect();
        b = block(secret, &c, &[]);
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// Decrypts an MS-MPPE-Send/Recv-Key sub-attribute value (Salt | String) of an answer to the
/// request whose Request Authenticator was `request_authenticator` (RFC 2548 §2.4.2); the key
/// without its padding. As strongSwan's `decrypt_mppe_key()`, the Salt's top bit is not checked.
pub fn decrypt_key(value: &[u8], secret: &[u8], request_authenticator: &[u8; 16]) -> Result<Secret, MppeError> {
    let (salt, cipher) = match (value.get(..2), value.get(2..)) {
        (Some(s), Some(c)) => (s, c),
        _ => return Err(MppeError::BadLength(value.len())),
    };
    if cipher.is_empty() || cipher.len() % 16 != 0 {
        return Err(MppeError::BadLength(cipher.len()));
    }
    let mut plain = Zeroizing::new(Vec::with_capacity(cipher.len()));
    let mut b = block(secret, request_authenticator, salt);
    for c in cipher.chunks(16) {
        plain.extend(c.iter().zip(b.iter()).map(|(c, b)| c ^ b));
        b = block(secret, c, &[]);
    }
    let (&key_len, rest) = plain.split_first().ok_or(MppeError::BadLength(0))?;
    match rest.get(..usize::from(key_len)) {
        Some(key) if key_len > 0 => Ok(Secret::from_slice(key)),
        _ => Err(MppeError::BadKeyLength(key_len)),
    }
}

/// The MS-MPPE-Recv-Key and MS-MPPE-Send-Key sub-attribute values (Salt | String) in `attributes`,
/// the first of each (in Vendor-Specific attributes of vendor 311, any number of sub-attributes
/// each).
pub fn find_keys(attributes: &[Attribute]) -> (Option<&[u8]>, Option<&[u8]>) {
    let mut recv = None;
    let mut send = None;
    for a in attributes {
        let Some((VENDOR_MICROSOFT, subs)) = a.vendor_sub_attributes() else { continue };
        for (kind, value) in subs {
            match kind {
                MS_MPPE_RECV_KEY if recv.is_none() => recv = Some(value),
                MS_MPPE_SEND_KEY if send.is_none() => send = Some(value),
                _ => {}
            }
        }
    }
    (recv, send)
}

/// The MSK as strongSwan's eap-radius builds it (`radius_socket.c`, `decrypt_msk()`): the
/// MS-MPPE-Recv-Key, then the MS-MPPE-Send-Key, zero-padded to 64 octets if shorter (with the
/// 32-octet keys of RFC 3079/RFC 5216 servers: exactly Recv-Key | Send-Key, 64 octets).
pub fn msk(recv: &Secret, send: &Secret) -> Secret {
    let len = recv.len().saturating_add(send.len()).max(MSK_MIN_LEN);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(recv.expose());
    out.extend_from_slice(send.expose());
    out.resize(len, 0);
    Secret::new(out)
}

/// The MSK from an Access-Accept's attributes: `None` unless both keys are there and decrypt (as
/// strongSwan: one key alone, or one that does not decrypt, gives no MSK).
pub fn msk_from_attributes(
    attributes: &[Attribute],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Option<Secret> {
    let (Some(recv), Some(send)) = find_keys(attributes) else { return None };
    let recv = decrypt_key(recv, secret, request_authenticator).ok()?;
    let send = decrypt_key(send, secret, request_authenticator).ok()?;
    Some(msk(&recv, &send))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"testing123";
    const REQ_AUTH: [u8; 16] =
        [0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22, 0x7a];

    // Computed independently with Python's hashlib from RFC 2548 §2.4.2's recipe: the 32-octet key
    // 00 01 .. 1f, salt 80 01, the secret and Request Authenticator above.
    const ENCRYPTED: &str =
        "80011c2d3642bc1017ca6502a9837fb1b2024cbb8c23a6ca44786ebcdec1b974caf7b1d02c6078171aa2eb34a2f25e05babe";

    #[test]
    fn encryption_matches_an_independent_computation_and_round_trips() {
        let key: Vec<u8> = (0u8..32).collect();
        let c = encrypt_key(&key, [0x80, 0x01], SECRET, &REQ_AUTH).unwrap();
        assert_eq!(c.len(), 2 + 48);
        assert_eq!(hex::encode(&c), ENCRYPTED);
        assert_eq!(decrypt_key(&c, SECRET, &REQ_AUTH).unwrap().expose(), key.as_slice());
        // Another secret or Request Authenticator gives other octets, caught by Key-Length or not:
        // never the key.
        assert_ne!(decrypt_key(&c, b"testing124", &REQ_AUTH).ok().map(|k| k.expose().to_vec()), Some(key.clone()));
        for len in [1usize, 15, 16, 31, 32, 64, 239] {
            let key = vec![0xa5; len];
            let c = encrypt_key(&key, [0x80 | len as u8, 7], SECRET, &REQ_AUTH).unwrap();
            assert_eq!((c.len() - 2) % 16, 0);
            assert_eq!(decrypt_key(&c, SECRET, &REQ_AUTH).unwrap().expose(), key.as_slice());
        }
        assert_eq!(encrypt_key(&[], [0x80, 0], SECRET, &REQ_AUTH), Err(CodecError::BadMppeKey(0)));
        assert_eq!(encrypt_key(&[0; 240], [0x80, 0], SECRET, &REQ_AUTH), Err(CodecError::BadMppeKey(240)));
    }

    #[test]
    fn bad_strings_do_not_decrypt() {
        assert_eq!(decrypt_key(&[0x80], SECRET, &REQ_AUTH), Err(MppeError::BadLength(1)));
        assert_eq!(decrypt_key(&[0x80, 0], SECRET, &REQ_AUTH), Err(MppeError::BadLength(0)));
        assert_eq!(decrypt_key(&[0x80, 0, 1, 2, 3], SECRET, &REQ_AUTH), Err(MppeError::BadLength(3)));
        // A Key-Length past the decrypted octets: encrypt 16 octets whose first is 16.
        let mut c = encrypt_key(&[0; 15], [0x80, 0], SECRET, &REQ_AUTH).unwrap();
        c[2] ^= 15 ^ 16;
        assert_eq!(decrypt_key(&c, SECRET, &REQ_AUTH), Err(MppeError::BadKeyLength(16)));
        c[2] ^= 16;
        assert_eq!(decrypt_key(&c, SECRET, &REQ_AUTH), Err(MppeError::BadKeyLength(0)));
    }

    #[test]
    fn msk_is_recv_then_send_padded_to_64() {
        let recv = Secret::new(vec![1; 32]);
        let send = Secret::new(vec![2; 32]);
        let m = msk(&recv, &send);
        assert_eq!(m.expose(), [[1u8; 32], [2u8; 32]].concat().as_slice());
        let m = msk(&Secret::new(vec![1; 16]), &Secret::new(vec![2; 16]));
        assert_eq!(m.expose(), [vec![1u8; 16], vec![2u8; 16], vec![0u8; 32]].concat().as_slice());
        let m = msk(&Secret::new(vec![1; 40]), &Secret::new(vec![2; 40]));
        assert_eq!(m.len(), 80);
    }

    #[test]
    fn keys_are_found_in_vendor_attributes() {
        let recv = encrypt_key(&[1; 32], [0x80, 1], SECRET, &REQ_AUTH).unwrap();
        let send = encrypt_key(&[2; 32], [0x80, 2], SECRET, &REQ_AUTH).unwrap();
        let attributes = vec![
            Attribute::vendor(9, MS_MPPE_RECV_KEY, &[0; 18]).unwrap(),
            Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_SEND_KEY, &send).unwrap(),
            Attribute::State(vec![1]),
            Attribute::vendor(VENDOR_MICROSOFT, MS_MPPE_RECV_KEY, &recv).unwrap(),
        ];
        let m = msk_from_attributes(&attributes, SECRET, &REQ_AUTH).unwrap();
        assert_eq!(m.expose(), [[1u8; 32], [2u8; 32]].concat().as_slice());
        assert!(msk_from_attributes(&attributes[..3], SECRET, &REQ_AUTH).is_none());
        assert!(msk_from_attributes(&attributes, SECRET, &[0; 16]).is_none_or(|m| m.expose()[..32] != [1u8; 32]));
    }
}
