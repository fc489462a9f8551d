//! Writing frames (RFC 9329 §3).

use crate::{LENGTH_LEN, MAX_ESP, MAX_IKE, NON_ESP_MARKER};

/// A message too long for a frame's 16-bit length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len} octets do not fit a frame (at most {max})")]
pub struct EncodeError {
    /// The message's length.
    pub len: usize,
    /// The most a frame carries of it.
    pub max: usize,
}

/// The length field and non-ESP marker in front of an IKE message of `len` octets (§3.1).
pub fn ike_header(len: usize) -> Result<[u8; 6], EncodeError> {
    if len > MAX_IKE {
        return Err(EncodeError { len, max: MAX_IKE });
    }
    let [hi, lo] = frame_len(len + LENGTH_LEN + NON_ESP_MARKER.len())?;
    let [a, b, c, d] = NON_ESP_MARKER;
    Ok([hi, lo, a, b, c, d])
}

/// The length field in front of an ESP packet of `len` octets (§3.2).
pub fn esp_header(len: usize) -> Result<[u8; 2], EncodeError> {
    if len > MAX_ESP {
        return Err(EncodeError { len, max: MAX_ESP });
    }
    frame_len(len + LENGTH_LEN)
}

fn frame_len(total: usize) -> Result<[u8; 2], EncodeError> {
    u16::try_from(total).map(u16::to_be_bytes).map_err(|_| EncodeError { len: total, max: crate::MAX_FRAME })
}

/// Appends an IKE message as a frame.
pub fn push_ike(out: &mut Vec<u8>, ike: &[u8]) -> Result<(), EncodeError> {
    out.extend_from_slice(&ike_header(ike.len())?);
    out.extend_from_slice(ike);
    Ok(())
}

/// Appends an ESP packet as a frame.
pub fn push_esp(out: &mut Vec<u8>, esp: &[u8]) -> Result<(), EncodeError> {
    out.extend_from_slice(&esp_header(esp.len())?);
    out.extend_from_slice(esp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_themselves() {
        let mut out = Vec::new();
        push_ike(&mut out, &[1, 2, 3]).unwrap();
        assert_eq!(out, [0, 9, 0, 0, 0, 0, 1, 2, 3]);
        out.clear();
        push_esp(&mut out, &[9; 8]).unwrap();
        assert_eq!(out[..2], [0, 10]);
        assert_eq!(ike_header(MAX_IKE).unwrap()[..2], [0xff, 0xff]);
        assert_eq!(esp_header(MAX_ESP).unwrap(), [0xff, 0xff]);
        assert_eq!(ike_header(MAX_IKE + 1), Err(EncodeError { len: MAX_IKE + 1, max: MAX_IKE }));
        assert!(esp_header(MAX_ESP + 1).is_err());
        assert!(push_esp(&mut out, &vec![0; 70_000]).is_err());
    }
}
