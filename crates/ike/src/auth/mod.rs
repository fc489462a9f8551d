//! Authentication in IKE_AUTH (RFC 7296 §2.15): the octets each side signs, the methods that prove an
//! identity over them ([`Authenticator`]: a shared key, a certificate's key; EAP comes next), and the
//! credentials the keys are looked up in by (our identity, the peer's) when the exchange runs, so that
//! one connection for `%any` serves many peers with secrets of their own.

use core::fmt;

use oxswan_crypto::alg::PrfAlg;
use oxswan_crypto::keys::prf_plus;
use oxswan_crypto::provider::PrfProvider;
use oxswan_crypto::{CryptoProvider, Secret};
use oxswan_wire::Identity;
use oxswan_wire::payloads::{AuthPayload, CertPayload};

mod eap;
mod psk;
mod pubkey;

pub(crate) use eap::{EapCredentials, MskAuth};
pub(crate) use psk::SharedKeyAuth;
pub(crate) use pubkey::PubkeyAuth;

/// Why an authentication failed. It stays local: the peer only learns AUTHENTICATION_FAILED
/// (§2.21.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No shared key is configured for the pair of identities.
    #[error("no shared key for {ours} and {peer}")]
    NoSharedKey {
        /// Our identity.
        ours: String,
        /// The peer's.
        peer: String,
    },
    /// The peer's AUTH method is not the one the connection requires.
    #[error("peer used AUTH method {got}, {want} expected")]
    WrongMethod {
        /// What it sent.
        got: String,
        /// What we require.
        want: &'static str,
    },
    /// The PSK MAC does not verify.
    #[error("PSK authentication data does not verify (wrong PSK?)")]
    BadPsk,
    /// The peer sent no certificate where one is required.
    #[error("peer sent no certificate")]
    NoCertificate,
    /// The certificate chain does not validate.
    #[error("certificate: {0}")]
    Certificate(crate::cert::CertError),
    /// The peer used a shared key where its certificate is required.
    #[error("peer used a PSK, a certificate is required")]
    PskWhereCertificate,
    /// The identity is not in the certificate.
    #[error("identity {0} is not in the peer's certificate")]
    IdentityNotInCertificate(String),
    /// The signature does not verify, or cannot be made.
    #[error("signature: {0}")]
    Signature(String),
    /// A cryptographic operation failed.
    #[error("{0}")]
    Crypto(String),
    /// The peer's identity is not the one the connection names.
    #[error("peer identity {got} is not the configured {want}")]
    WrongIdentity {
        /// The identity it sent.
        got: String,
        /// The configured one.
        want: String,
    },
    /// The identity payload does not parse.
    #[error("malformed identity: {0}")]
    MalformedIdentity(String),
    /// IKE_AUTH without AUTH, and the connection does not run EAP (RFC 7296 §2.16).
    #[error("no AUTH payload, and EAP is not configured for the peer")]
    NoAuthPayload,
    /// The EAP method failed; `user` is the EAP identity, when known.
    #[error("EAP{}: {reason}", user.as_ref().map(|u| format!(" for {u}")).unwrap_or_default())]
    Eap {
        /// The EAP identity.
        user: Option<String>,
        /// Why.
        reason: String,
    },
    /// The AUTH after EAP does not verify with the method's key.
    #[error("AUTH after EAP does not verify with the EAP key")]
    BadEapAuth,
    /// A message of the EAP rounds is missing what it must carry.
    #[error("IKE_AUTH of the EAP rounds without {0}")]
    EapMissing(&'static str),
    /// No connection admits the initiator's identity (and the identity it asked us to have).
    #[error("no connection for {id}{}", asked.as_ref().map(|a| format!(" asking for us as {a}")).unwrap_or_default())]
    NoConnection {
        /// The initiator's identity.
        id: String,
        /// The IDr it asked for, if any.
        asked: Option<String>,
    },
    /// Authentication before the keys exist.
    #[error("no keys")]
    NoKeys,
    /// A Post-quantum Preshared Key (RFC 8784) that the connection requires is not used.
    #[error("PPK {0}")]
    Ppk(String),
}

impl From<oxswan_crypto::CryptoError> for AuthError {
    fn from(e: oxswan_crypto::CryptoError) -> Self {
        AuthError::Crypto(e.to_string())
    }
}

/// Where shared keys come from, asked for each authentication.
pub trait Credentials: Send + Sync + fmt::Debug {
    /// The shared key between `ours` and `peer` (`None`: not known yet, any), if one is configured.
    fn shared_key(&self, ours: &Identity, peer: Option<&Identity>) -> Option<Secret>;

    /// The EAP secret (password) of the user `identity` (strongSwan's `secrets.eap`).
    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        let _ = identity;
        None
    }

    /// The Post-quantum Preshared Key named `ppk_id` (RFC 8784, strongSwan's `secrets.ppk`).
    fn ppk(&self, ppk_id: &[u8]) -> Option<Secret> {
        let _ = ppk_id;
        None
    }

    /// Whether any PPK is configured: a responder announces USE_PPK only then, as strongSwan.
    fn has_ppks(&self) -> bool {
        false
    }
}

/// Shared keys by the identities they are for, matched as strongSwan matches them: an entry must
/// name at least one of the two identities unless it names none (then it is for anyone); one that
/// names both beats one that names one, which beats one for anyone; the first wins a tie.
#[derive(Debug, Default, Clone)]
pub struct SharedKeys {
    entries: Vec<(Vec<Identity>, Secret)>,
    /// EAP secrets by user: looked up once per EAP authentication, so a gateway with thousands of
    /// users must not scan them.
    eap: std::collections::HashMap<Vec<u8>, Secret>,
    /// Post-quantum Preshared Keys by PPK_ID (RFC 8784).
    ppks: std::collections::HashMap<Vec<u8>, Secret>,
}

impl SharedKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key for these identities (none: for anyone).
    pub fn add(&mut self, ids: Vec<Identity>, secret: Secret) {
        self.entries.push((ids, secret));
    }

    /// Adds the PPK named `ppk_id` (RFC 8784); the first for an ID wins.
    pub fn add_ppk(&mut self, ppk_id: impl Into<Vec<u8>>, secret: Secret) {
        self.ppks.entry(ppk_id.into()).or_insert(secret);
    }

    /// Adds the EAP secret of the user `identity`; the first for an identity wins.
    pub fn add_eap(&mut self, identity: impl Into<Vec<u8>>, secret: Secret) {
        self.eap.entry(identity.into()).or_insert(secret);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Credentials for SharedKeys {
    fn shared_key(&self, ours: &Identity, peer: Option<&Identity>) -> Option<Secret> {
        // strongSwan's ranks: a perfect match of one identity is worth 20, "any" (no owners) 1.
        let side = |ids: &[Identity], id: Option<&Identity>| -> u32 {
            if ids.is_empty() {
                1
            } else if id.is_some_and(|id| ids.iter().any(|i| same_identity(i, id))) {
                20
            } else {
                0
            }
        };
        let mut best: Option<(u32, &Secret)> = None;
        for (ids, secret) in &self.entries {
            let score = side(ids, Some(ours)) + side(ids, peer);
            let matches = ids.is_empty() || score >= 20;
            if matches && best.is_none_or(|(b, _)| score > b) {
                best = Some((score, secret));
            }
        }
        best.map(|(_, s)| s.clone())
    }

    fn eap_secret(&self, identity: &[u8]) -> Option<Secret> {
        // EAP identities are user names, compared exactly as strongSwan does.
        self.eap.get(identity).cloned()
    }

    fn ppk(&self, ppk_id: &[u8]) -> Option<Secret> {
        self.ppks.get(ppk_id).cloned()
    }

    fn has_ppks(&self) -> bool {
        !self.ppks.is_empty()
    }
}

/// The octets one side's AUTH covers (§2.15): its IKE_SA_INIT message, the other side's nonce and
/// prf(SK_p, ID'). The hooks of the extensions that change them: a Post-quantum Preshared Key
/// replaces SK_p by prf+(PPK, SK_p) (RFC 8784 §3.1), and IKE_INTERMEDIATE appends IntAuth (RFC 9242
/// §3.3.2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedOctets<'a> {
    pub message: &'a [u8],
    pub nonce: &'a [u8],
    pub sk_p: &'a [u8],
    pub id_body: &'a [u8],
    pub ppk: Option<&'a [u8]>,
    pub int_auth: Option<&'a [u8]>,
}

impl SignedOctets<'_> {
    pub(crate) fn compute(&self, prf: &dyn PrfProvider, alg: PrfAlg) -> Result<Vec<u8>, AuthError> {
        let ppk_key;
        let sk_p = match self.ppk {
            Some(ppk) => {
                ppk_key = prf_plus(prf, alg, ppk, &[self.sk_p], self.sk_p.len())?;
                ppk_key.expose()
            }
            None => self.sk_p,
        };
        let maced_id = prf.prf(alg, sk_p, &[self.id_body])?;
        let mut out = Vec::new();
        out.extend_from_slice(self.message);
        out.extend_from_slice(self.nonce);
        out.extend_from_slice(maced_id.expose());
        if let Some(int_auth) = self.int_auth {
            out.extend_from_slice(int_auth);
        }
        Ok(out)
    }
}

/// Identity comparison as configured: FQDN and email case-insensitively (DNS names and the domain
/// part of mail addresses are; strongSwan compares both ways), others byte for byte.
pub(crate) fn same_identity(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Fqdn(x), Identity::Fqdn(y)) | (Identity::Email(x), Identity::Email(y)) => x.eq_ignore_ascii_case(y),
        (Identity::Dn(x), Identity::Dn(y)) => crate::cert::dn_equal(x, y),
        _ => a == b,
    }
}

/// What proving or checking an identity needs besides the octets.
pub(crate) struct AuthCtx<'a> {
    pub provider: &'a CryptoProvider,
    pub prf: PrfAlg,
    pub unix_now: u64,
    pub ours: &'a Identity,
    /// The peer's identity; `None` while we build our AUTH without knowing it (an initiator to
    /// `%any`).
    pub peer: Option<&'a Identity>,
    /// The hashes the peer announced in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
    pub peer_hashes: Option<&'a [oxswan_wire::HashAlgorithm]>,
}

/// One way of proving an identity over the signed octets.
pub(crate) trait Authenticator {
    /// Our AUTH payload.
    fn build(&self, ctx: &AuthCtx<'_>, octets: &[u8]) -> Result<AuthPayload, AuthError>;
    /// Checks the peer's AUTH payload (and its certificates).
    fn verify(
        &self,
        ctx: &AuthCtx<'_>,
        octets: &[u8],
        auth: &AuthPayload,
        certs: &[CertPayload],
    ) -> Result<(), AuthError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fqdn(s: &str) -> Identity {
        Identity::Fqdn(s.into())
    }

    #[test]
    fn the_best_matching_shared_key_wins() {
        let mut keys = SharedKeys::new();
        keys.add(vec![fqdn("gw")], Secret::from_slice(b"gw-only"));
        keys.add(vec![fqdn("gw"), fqdn("alice")], Secret::from_slice(b"gw-alice"));
        keys.add(vec![fqdn("gw"), fqdn("bob")], Secret::from_slice(b"gw-bob"));
        keys.add(Vec::new(), Secret::from_slice(b"anyone"));
        let key = |a: &str, b: &str| keys.shared_key(&fqdn(a), Some(&fqdn(b))).map(|s| s.expose().to_vec());
        assert_eq!(key("gw", "alice").as_deref(), Some(&b"gw-alice"[..]));
        assert_eq!(key("gw", "BOB").as_deref(), Some(&b"gw-bob"[..]), "FQDNs compare case-insensitively");
        assert_eq!(key("gw", "carol").as_deref(), Some(&b"gw-only"[..]));
        assert_eq!(key("other", "carol").as_deref(), Some(&b"anyone"[..]));
        let mut none = SharedKeys::new();
        none.add(vec![fqdn("gw")], Secret::from_slice(b"gw-only"));
        assert!(none.shared_key(&fqdn("x"), Some(&fqdn("y"))).is_none());
        assert!(none.shared_key(&fqdn("gw"), None).is_some(), "an unknown peer: the key naming us");
    }

    #[test]
    fn the_signed_octets_take_the_ppk_and_int_auth_hooks() {
        let provider = oxswan_crypto::default_provider();
        let prf = provider.prf.as_ref();
        let base = SignedOctets {
            message: b"message",
            nonce: b"nonce",
            sk_p: &[7; 32],
            id_body: b"id",
            ppk: None,
            int_auth: None,
        };
        let plain = base.compute(prf, PrfAlg(oxswan_wire::PrfId::HMAC_SHA2_256)).unwrap();
        let maced = prf.prf(PrfAlg(oxswan_wire::PrfId::HMAC_SHA2_256), &[7; 32], &[b"id"]).unwrap();
        assert_eq!(plain, [&b"message"[..], b"nonce", maced.expose()].concat(), "RFC 7296 §2.15");
        let with_int = SignedOctets { int_auth: Some(b"intauth"), ..base }
            .compute(prf, PrfAlg(oxswan_wire::PrfId::HMAC_SHA2_256))
            .unwrap();
        assert_eq!(with_int, [&plain[..], b"intauth"].concat(), "RFC 9242 §3.3.2");
        let with_ppk =
            SignedOctets { ppk: Some(b"ppk"), ..base }.compute(prf, PrfAlg(oxswan_wire::PrfId::HMAC_SHA2_256)).unwrap();
        let sk_p2 = prf_plus(prf, PrfAlg(oxswan_wire::PrfId::HMAC_SHA2_256), b"ppk", &[&[7; 32]], 32).unwrap();
        let maced2 = prf.prf(PrfAlg(oxswan_wire::PrfId::HMAC_SHA2_256), sk_p2.expose(), &[b"id"]).unwrap();
        assert_eq!(with_ppk, [&b"message"[..], b"nonce", maced2.expose()].concat(), "RFC 8784 §3.1");
    }
}
