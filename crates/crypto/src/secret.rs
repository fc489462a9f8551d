//! Key material that is zeroized on drop and never printed.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret bytes: keys, shared secrets, PRF outputs keyed with secrets.
///
/// `Debug` prints only the length; equality is constant-time; the bytes are wiped when dropped.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// The secret bytes. Callers must not log or persist them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Splits off the first `n` octets into a new secret, keeping the rest (prf+ output is cut into keys
    /// this way, RFC 7296 §2.14). Returns `None` if fewer than `n` remain.
    pub fn take_prefix(&mut self, n: usize) -> Option<Secret> {
        if n > self.0.len() {
            return None;
        }
        let rest = self.0.split_off(n);
        let head = core::mem::replace(&mut self.0, rest);
        Some(Secret(head))
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secret([REDACTED; {}])", self.0.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_bytes_and_prefix_splits() {
        let mut s = Secret::new(vec![0x41, 0x42, 0x43]);
        assert_eq!(format!("{s:?}"), "Secret([REDACTED; 3])");
        let head = s.take_prefix(2).unwrap();
        assert_eq!(head.expose(), b"AB");
        assert_eq!(s.expose(), b"C");
        assert!(s.take_prefix(2).is_none());
        assert_eq!(s, Secret::from_slice(b"C"));
        assert_ne!(s, Secret::from_slice(b"D"));
    }
}
