//! EAP (RFC 3748) for IKEv2 (RFC 7296 §2.16): the server (the IKE responder, the gateway) and the
//! peer (the IKE initiator, the client), sans-IO.
//!
//! Nothing here sends, receives, sleeps or reads a clock: the IKE engine hands each EAP payload it
//! received to [`EapServer::handle`] or [`EapPeer::handle`] and sends the payload it is given back.
//! Every packet is hostile until checked; no input makes this crate panic.
//!
//! - [`EapServer`]: asks for the EAP identity (EAP-Identity, RFC 3748 §5.1) or takes the one it is
//!   given, proposes the first of its methods, lets the peer's Nak (RFC 3748 §5.3.1) pick another
//!   of them (as strongSwan's eap-dynamic does), runs the method and ends with EAP-Success or
//!   EAP-Failure (RFC 3748 §4.2).
//! - [`EapPeer`]: answers EAP-Identity and Notification (RFC 3748 §5.2), Naks the methods it does
//!   not accept, runs the one it does, and accepts EAP-Success only once that method has finished
//!   (for MS-CHAPv2: once the server proved it knows the password too).
//! - Methods: [`md5`] (EAP-MD5-Challenge, RFC 3748 §5.4) and [`mschapv2`] (EAP-MS-CHAPv2:
//!   draft-kamath-pppext-eap-mschapv2 framing, RFC 2759 computations, RFC 3079 keys). Each method
//!   is a state machine behind the crate's `ServerMethod` and `PeerMethod` traits, which take
//!   one Type-Data and give the next, for as many rounds as the method needs; [`tls`] (EAP-TLS,
//!   RFC 5216 with TLS 1.2 and RFC 9190 with TLS 1.3, on rustls) fragments and reassembles its
//!   flights over those rounds.
//!
//! EAP-TLS authenticates with certificates ([`TlsServerConfig`], [`TlsPeerConfig`]) instead.
//!
//! Passwords come from an [`EapSecrets`] at the moment they are needed, as [`Secret`]s; every
//! buffer holding a password, its hash or a key derived from it is zeroized. Errors and `Debug`
//! output never contain a secret.
#![forbid(unsafe_code)]

mod error;
pub mod md5;
mod method;
pub mod mschapv2;
mod packet;
mod peer;
mod server;
pub mod tls;

pub use error::EapError;
pub use oxswan_crypto::Secret;
pub use peer::{EapPeer, PeerConfig, PeerStep};
pub use server::{EapServer, ServerConfig, ServerStep};
pub use tls::{TlsPeerConfig, TlsServerConfig, TlsVersion};

/// EAP Type codes (RFC 3748 §5, IANA "Method Types") that this crate knows, also those that are
/// not authentication methods.
pub mod types {
    /// Identity (RFC 3748 §5.1).
    pub const IDENTITY: u8 = 1;
    /// Notification (RFC 3748 §5.2).
    pub const NOTIFICATION: u8 = 2;
    /// Legacy Nak (RFC 3748 §5.3.1): only in Responses.
    pub const NAK: u8 = 3;
    /// MD5-Challenge (RFC 3748 §5.4).
    pub const MD5: u8 = 4;
    /// EAP-TLS (RFC 5216).
    pub const TLS: u8 = 13;
    /// EAP-MS-CHAP-V2 (draft-kamath-pppext-eap-mschapv2).
    pub const MSCHAPV2: u8 = 26;
    /// Expanded Types (RFC 3748 §5.7).
    pub const EXPANDED: u8 = 254;
}

/// EAP method types we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodType {
    /// EAP-MD5-Challenge (type 4, RFC 3748 §5.4).
    Md5,
    /// EAP-MS-CHAPv2 (type 26).
    MsChapV2,
    /// EAP-TLS (type 13, RFC 5216 with TLS 1.2, RFC 9190 with TLS 1.3): needs
    /// [`ServerConfig::tls`] or [`PeerConfig::tls`].
    Tls,
}

impl MethodType {
    /// Every method type, in the order the peer lists them in a Nak when it accepts any.
    pub const ALL: [MethodType; 3] = [MethodType::MsChapV2, MethodType::Tls, MethodType::Md5];

    /// The EAP Type code.
    pub fn code(self) -> u8 {
        match self {
            MethodType::Md5 => types::MD5,
            MethodType::MsChapV2 => types::MSCHAPV2,
            MethodType::Tls => types::TLS,
        }
    }

    /// The method of an EAP Type code, if it is one of ours.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            types::MD5 => Some(MethodType::Md5),
            types::MSCHAPV2 => Some(MethodType::MsChapV2),
            types::TLS => Some(MethodType::Tls),
            _ => None,
        }
    }

    /// The name strongSwan's configuration uses (`eap-md5`, `eap-mschapv2`, `eap-tls` without
    /// the prefix).
    pub fn name(self) -> &'static str {
        match self {
            MethodType::Md5 => "md5",
            MethodType::MsChapV2 => "mschapv2",
            MethodType::Tls => "tls",
        }
    }

    /// The method of a name as [`MethodType::name`] gives it (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether the method derives an MSK (RFC 3748 §7.10). With one, the IKE AUTH payloads are
    /// keyed with it (RFC 7296 §2.16); without one (MD5), with SK_pi/SK_pr, and the EAP exchange
    /// is not bound to the IKE SA, which is why RFC 7296 §2.16 advises against such methods.
    pub fn is_key_generating(self) -> bool {
        match self {
            MethodType::Md5 => false,
            MethodType::MsChapV2 | MethodType::Tls => true,
        }
    }

    /// Whether the method authenticates the server strongly enough that the server may skip its
    /// own AUTH by certificate (EAP-only authentication, RFC 5998). MS-CHAPv2 does prove that the
    /// server knows the password, but it is not among the methods RFC 5998 §4 deems safe (its
    /// secret can be brute-forced from one exchange), and strongSwan's eap-mschapv2 plugin
    /// answers `is_mutual` with FALSE too; only EAP-TLS is mutual here.
    pub fn is_mutual(self) -> bool {
        match self {
            MethodType::Md5 | MethodType::MsChapV2 => false,
            MethodType::Tls => true,
        }
    }

    /// Whether this crate can run the method (all of them now; EAP-TLS also needs its
    /// certificates configured).
    pub fn is_implemented(self) -> bool {
        match self {
            MethodType::Md5 | MethodType::MsChapV2 | MethodType::Tls => true,
        }
    }
}

impl core::fmt::Display for MethodType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the server looks up a user's password (for MD5, MSCHAPv2), at authentication time.
///
/// The peer looks its own password up here too, by its own EAP identity.
pub trait EapSecrets: Send + Sync + core::fmt::Debug {
    /// The password of `identity` (the EAP identity, or the name in an MS-CHAPv2 Response), as
    /// the configuration holds it: MS-CHAPv2 reads it as UTF-8 and hashes its UTF-16LE form
    /// (RFC 2759 §8.3).
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret>;

    /// The NT password hash (MD4 of the UTF-16LE password, 16 octets, RFC 2759 §8.3) of
    /// `identity`, for stores that keep that instead of the password (strongSwan's `NTLM`
    /// secrets). MS-CHAPv2 asks for it before [`EapSecrets::eap_secret`], as strongSwan does; a
    /// value that is not 16 octets long is ignored. MD5 needs the password itself.
    fn eap_nt_hash(&self, identity: &[u8]) -> Option<Secret> {
        let _ = identity;
        None
    }
}

/// Renders an identity for a log line or an error: lossy UTF-8, control characters replaced by
/// `?` (as strongSwan's `sanitize` does), so that a hostile identity cannot forge log lines.
pub(crate) fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_type_codes_and_names() {
        for m in MethodType::ALL {
            assert_eq!(MethodType::from_code(m.code()), Some(m));
            assert_eq!(MethodType::from_name(m.name()), Some(m));
        }
        assert_eq!(MethodType::Md5.code(), 4);
        assert_eq!(MethodType::MsChapV2.code(), 26);
        assert_eq!(MethodType::Tls.code(), 13);
        assert_eq!(MethodType::from_code(1), None);
        assert_eq!(MethodType::from_name("MSCHAPv2"), Some(MethodType::MsChapV2));
        assert!(MethodType::MsChapV2.is_key_generating() && !MethodType::Md5.is_key_generating());
        assert!(!MethodType::MsChapV2.is_mutual() && MethodType::Tls.is_mutual());
        assert_eq!(printable(b"a\nb\xff"), "a?b\u{fffd}");
    }
}
