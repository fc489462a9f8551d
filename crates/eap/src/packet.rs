//! Building EAP packets (RFC 3748 §4) and small helpers shared by the methods.

use oxswan_crypto::provider::SecureRandom;
use oxswan_wire::payloads::{EapCode, EapPayload};

use crate::EapError;

/// The largest Type-Data that fits an EAP packet: the Length field is 16 bits (RFC 3748 §4) and
/// counts the 4-octet header and the Type octet.
pub(crate) const MAX_TYPE_DATA: usize = u16::MAX as usize - 5;

/// A Request or Response of `eap_type` carrying `type_data`.
pub(crate) fn typed(code: EapCode, identifier: u8, eap_type: u8, type_data: &[u8]) -> Result<EapPayload, EapError> {
    if type_data.len() > MAX_TYPE_DATA {
        return Err(EapError::Config("EAP packet longer than 65535 octets"));
    }
    let mut data = Vec::with_capacity(type_data.len().saturating_add(1));
    data.push(eap_type);
    data.extend_from_slice(type_data);
    Ok(EapPayload { code, identifier, data })
}

/// EAP-Success (RFC 3748 §4.2): its Identifier is that of the Response it answers.
pub(crate) fn success(identifier: u8) -> EapPayload {
    EapPayload { code: EapCode::SUCCESS, identifier, data: Vec::new() }
}

/// EAP-Failure (RFC 3748 §4.2): its Identifier is that of the Response it answers.
pub(crate) fn failure(identifier: u8) -> EapPayload {
    EapPayload { code: EapCode::FAILURE, identifier, data: Vec::new() }
}

/// Fills `dest` from the random source.
pub(crate) fn fill(random: &dyn SecureRandom, dest: &mut [u8]) -> Result<(), EapError> {
    random.fill(dest).map_err(|_| EapError::Random)
}

/// A name for an EAP Code in an error message.
pub(crate) fn code_name(code: EapCode) -> String {
    match code {
        EapCode::REQUEST => "Request".into(),
        EapCode::RESPONSE => "Response".into(),
        EapCode::SUCCESS => "Success".into(),
        EapCode::FAILURE => "Failure".into(),
        other => format!("code {}", other.0),
    }
}

/// Upper-case hexadecimal, as RFC 2759 §8.7 and draft-kamath §2 write authenticator responses
/// and challenges.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                s.push(char::from(d));
            }
        }
    }
    s
}

/// Decodes hexadecimal of either case into exactly `N` octets; `None` unless `text` is exactly
/// `2 * N` hex digits.
pub(crate) fn hex_decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if text.len() != N.checked_mul(2)? {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = (digit(*hi)? << 4) | digit(*lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_upper(&[0x00, 0xab, 0x1f]), "00AB1F");
        assert_eq!(hex_decode::<3>(b"00ab1F"), Some([0x00, 0xab, 0x1f]));
        assert_eq!(hex_decode::<3>(b"00ab1"), None);
        assert_eq!(hex_decode::<3>(b"00ab1g"), None);
        assert_eq!(hex_decode::<2>(b"00ab1f"), None);
    }

    #[test]
    fn typed_refuses_oversized() {
        assert!(typed(EapCode::RESPONSE, 1, 1, &vec![0; MAX_TYPE_DATA]).is_ok());
        assert!(matches!(typed(EapCode::RESPONSE, 1, 1, &vec![0; MAX_TYPE_DATA + 1]), Err(EapError::Config(_))));
    }
}
