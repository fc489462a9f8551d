//! Client profiles for an oxswan gateway, one per kind of client: an Apple configuration profile
//! (`.mobileconfig`, iOS and macOS), a strongSwan for Android profile (`.sswan`), a PowerShell
//! script for Windows' built-in client, a PKCS#12 bundle with the client's certificate, and an
//! oxswan client configuration for Linux.
//!
//! Each kind of client is given one suite of algorithms ([`suites`]) that it is known to accept and
//! that the gateway's proposals ([`suites::gateway_ike`], [`suites::gateway_esp`]) contain, so that
//! a profile made here always matches a gateway made by `oxswan setup gateway`.
//!
//! Pure functions: bytes and strings in, file contents out. Writing them is the caller's job.

mod android;
mod apple;
mod linux;
mod pkcs12;
pub mod suites;
mod windows;

use std::net::IpAddr;

use zeroize::Zeroizing;

pub use android::sswan;
pub use apple::mobileconfig;
pub use linux::{LinuxFiles, oxswan_toml};
pub use pkcs12::{Pkcs12Kind, pkcs12};
pub use windows::powershell;

/// Why a profile could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The system's random generator failed.
    #[error("no randomness from the system")]
    Random,
    /// The PKCS#12 bundle could not be made.
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
    /// The property list could not be written.
    #[error("property list: {0}")]
    Plist(String),
    /// A value that cannot go into the profile as it is.
    #[error("{what} {value:?}: {why}")]
    BadValue { what: &'static str, value: String, why: &'static str },
    /// A client configuration for Linux needs an IP address of the gateway (oxswan's `remote_addrs`
    /// takes addresses, not names).
    #[error("the gateway {0:?} has no IP address on record (oxswan setup gateway --address)")]
    NoAddress(String),
}

/// The gateway as its clients see it.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The name clients connect to and expect in its certificate: a DNS name or an IP address. It is
    /// the server address and the remote identity of every profile.
    pub name: String,
    /// IP addresses the gateway is reached at (for the oxswan client, whose `remote_addrs` takes
    /// addresses).
    pub addresses: Vec<IpAddr>,
    /// The CA certificate the clients trust the gateway's certificate by, DER.
    pub ca_der: Vec<u8>,
    /// The CA's common name (Apple checks the issuer of the gateway's certificate by it).
    pub ca_common_name: String,
    /// Whether the gateway lends IPv6 addresses too (the oxswan client then asks for one).
    pub ipv6: bool,
}

/// The key type of a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// ECDSA on P-256.
    EcdsaP256,
    /// RSA.
    Rsa,
}

/// How a client authenticates itself. Its `Debug` leaves the secrets out.
#[derive(Clone)]
pub enum Credential {
    /// EAP-MSCHAPv2 with a user name and password (the gateway authenticates with its certificate).
    Password {
        /// The EAP identity.
        user: String,
        /// The password.
        password: Zeroizing<String>,
    },
    /// An X.509 certificate (IKEv2 public-key authentication, RFC 7296 §2.15).
    Certificate {
        /// The identity in the certificate's subjectAltName, sent as IDi.
        id: String,
        /// Its key type (Apple must be told).
        kind: CertKind,
        /// The PKCS#12 bundle with the certificate, its key and the CA ([`pkcs12`]).
        p12: Vec<u8>,
        /// The bundle's password.
        p12_password: Zeroizing<String>,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password { user, .. } => {
                f.debug_struct("Password").field("user", user).field("password", &"(secret)").finish()
            }
            Credential::Certificate { id, kind, p12, .. } => f
                .debug_struct("Certificate")
                .field("id", id)
                .field("kind", kind)
                .field("p12", &format_args!("{} octets", p12.len()))
                .field("p12_password", &"(secret)")
                .finish(),
        }
    }
}

/// One client of one gateway.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's name (the user, or the certificate's identity).
    pub name: String,
    /// How it authenticates.
    pub credential: Credential,
}

/// A password of `len` characters from an alphabet without look-alikes (no 0/O, 1/l/I), for users
/// to type on a phone: 57 symbols, so 20 characters carry 116 bits.
pub fn generate_password(len: usize) -> Result<Zeroizing<String>, ProfileError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        aws_lc_rs::rand::fill(buf.as_mut()).map_err(|_| ProfileError::Random)?;
        // Rejection sampling: below 228 = 4 × 57, every symbol is equally likely.
        for b in buf.iter().filter(|&&b| usize::from(b) < ALPHABET.len() * 4) {
            if out.len() == len {
                break;
            }
            if let Some(&c) = ALPHABET.get(usize::from(*b) % ALPHABET.len()) {
                out.push(char::from(c));
            }
        }
    }
    Ok(out)
}

/// A random (version 4) UUID, as Apple's profiles and strongSwan's `.sswan` want one per payload.
pub fn uuid() -> Result<String, ProfileError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ProfileError::Random)?;
    Ok(uuid::Builder::from_random_bytes(b).into_uuid().hyphenated().to_string().to_uppercase())
}

/// The standard base64 of `data`, as `.sswan` and the PowerShell script carry certificates.
pub(crate) fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn passwords_are_long_random_and_unambiguous() {
        let a = generate_password(20).unwrap();
        let b = generate_password(20).unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(*a, *b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)), "{}", *a);
        // Over many draws every symbol turns up: the rejection sampling reaches the whole alphabet.
        let many = generate_password(4000).unwrap();
        let distinct: std::collections::BTreeSet<char> = many.chars().collect();
        assert_eq!(distinct.len(), 57);
    }

    #[test]
    fn debug_leaves_the_secrets_out() {
        let c = Credential::Password { user: "alice".into(), password: Zeroizing::new("hunter2".into()) };
        let shown = format!("{c:?}");
        assert!(shown.contains("alice") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid().unwrap());
    }
}
