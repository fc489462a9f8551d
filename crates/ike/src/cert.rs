//! Certificates for IKE_AUTH (RFC 7296 §3.6, §3.7; RFC 4945 for what a certificate must say about an
//! IKE identity): the CAs we trust, validation of the peer's chain with rustls-webpki, the peer's
//! identity in its certificate, and our own chain and key.

use core::net::IpAddr;
use core::time::Duration;
use std::sync::Arc;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::hash::sha1;
use oxswan_crypto::provider::SigningKey;
use oxswan_wire::Identity;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Why a certificate was not accepted. The text is for our logs only: the peer learns nothing but
/// AUTHENTICATION_FAILED (RFC 7296 §2.21.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Not a certificate we can parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The chain does not lead to a configured CA, or a signature in it is wrong.
    #[error("untrusted certificate: {0}")]
    Untrusted(String),
    /// A certificate of the chain expired.
    #[error("certificate expired")]
    Expired,
    /// A certificate of the chain is not valid yet.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// A certificate of the chain is on its CA's revocation list (RFC 5280 §5).
    #[error("certificate revoked")]
    Revoked,
    /// The private key is not the certificate's, or is of a kind we cannot use.
    #[error("key: {0}")]
    Key(String),
}

/// Signature algorithms accepted on certificates: RSA PKCS#1 and PSS (2048 bits and more), ECDSA on
/// P-256, P-384 and P-521, Ed25519.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ECDSA_P521_SHA256,
    webpki::aws_lc_rs::ECDSA_P521_SHA384,
    webpki::aws_lc_rs::ECDSA_P521_SHA512,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// The extended key usages an IKE certificate may carry: none at all, or one of serverAuth,
/// clientAuth, id-kp-ipsecIKE (RFC 4945 §5.1.3.12 leaves EKU to local policy; strongSwan, Windows and
/// macOS issue each of these), or anyExtendedKeyUsage.
#[derive(Debug, Clone, Copy)]
struct IkeUsage;

const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
const EKU_IPSEC_IKE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11];
const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

impl ExtendedKeyUsageValidator for IkeUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let accepted = [EKU_SERVER_AUTH, EKU_CLIENT_AUTH, EKU_IPSEC_IKE, EKU_ANY].map(KeyPurposeId::new);
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if accepted.contains(&id) {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(webpki::RequiredEkuNotFoundContext {
            required: webpki::KeyUsage::required(EKU_IPSEC_IKE),
            present,
        }))
    }
}

/// The CAs we trust.
#[derive(Debug, Clone)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    spki_hashes: Vec<[u8; 20]>,
    /// The CAs' subjects (DER Names), which a revocation list's issuer must be one of.
    subjects: Vec<Vec<u8>>,
    /// The CAs' revocation lists; a certificate whose CA has none is not checked (as strongSwan
    /// does without a CRL at hand).
    crls: Arc<Vec<webpki::CertRevocationList<'static>>>,
}

impl TrustStore {
    /// A store of these CA certificates (DER).
    pub fn new(ca_ders: &[Vec<u8>]) -> Result<Self, CertError> {
        let mut anchors = Vec::with_capacity(ca_ders.len());
        let mut spki_hashes = Vec::with_capacity(ca_ders.len());
        let mut subjects = Vec::with_capacity(ca_ders.len());
        for der in ca_ders {
            let cert = CertificateDer::from(der.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| CertError::Malformed(format!("CA certificate: {e}")))?
                .to_owned();
            let parsed = parse(der)?;
            spki_hashes.push(sha1(&[parsed.public_key().raw]));
            subjects.push(parsed.subject().as_raw().to_vec());
            anchors.push(anchor);
        }
        Ok(Self { anchors, spki_hashes, subjects, crls: Arc::default() })
    }

    /// The store with these certificate revocation lists (DER, RFC 5280 §5), which the chains it
    /// validates are checked against. A list is trusted only once a chain's CA is shown to have
    /// signed it, at validation.
    pub fn with_crls(mut self, crl_ders: &[Vec<u8>]) -> Result<Self, CertError> {
        let mut crls = Vec::with_capacity(crl_ders.len());
        for der in crl_ders {
            // A list from a CA we do not trust would never apply: a mistake to report (a CA made
            // anew, an old list), not to carry silently. Its signature is checked at validation.
            let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
                .map_err(|e| CertError::Malformed(format!("certificate revocation list: {e}")))?;
            let issuer = parsed.issuer().as_raw();
            if !self.subjects.iter().any(|s| dn_equal(s, issuer)) {
                let name = parsed.issuer().to_string();
                return Err(CertError::Untrusted(format!("revocation list of {name}, which is not among the CAs")));
            }
            let crl = webpki::OwnedCertRevocationList::from_der(der)
                .map_err(|e| CertError::Malformed(format!("certificate revocation list: {e}")))?;
            crls.push(webpki::CertRevocationList::from(crl));
        }
        self.crls = Arc::new(crls);
        Ok(self)
    }

    /// Whether no CA is configured.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The Certification Authority field of our CERTREQ (RFC 7296 §3.7): the SHA-1 hashes of each CA's
    /// SubjectPublicKeyInfo, concatenated.
    pub fn certreq_hashes(&self) -> Vec<u8> {
        self.spki_hashes.concat()
    }

    /// Validates the peer's certificate with the intermediates it sent (any order) against our CAs at
    /// `now_unix` (seconds since the Unix epoch: the engine does not read the clock).
    pub fn verify(&self, end_entity: &[u8], intermediates: &[Vec<u8>], now_unix: u64) -> Result<PeerCert, CertError> {
        let ee_der = CertificateDer::from(end_entity);
        let ee = EndEntityCert::try_from(&ee_der).map_err(|e| CertError::Malformed(e.to_string()))?;
        let inter: Vec<CertificateDer<'_>> = intermediates.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(now_unix));
        let crls: Vec<&webpki::CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crls)
            .ok()
            .map(|b| b.with_status_policy(webpki::UnknownStatusPolicy::Allow).build());
        ee.verify_for_usage(ALGORITHMS, &self.anchors, &inter, time, IkeUsage, revocation, None).map_err(
            |e| match e {
                webpki::Error::CertExpired { .. } => CertError::Expired,
                webpki::Error::CertNotValidYet { .. } => CertError::NotYetValid,
                webpki::Error::CertRevoked => CertError::Revoked,
                e => CertError::Untrusted(e.to_string()),
            },
        )?;
        PeerCert::from_der(end_entity)
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CertError::Malformed("octets after the certificate".into())),
        Err(e) => Err(CertError::Malformed(e.to_string())),
    }
}

/// What IKE_AUTH needs from a validated peer certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// DER SubjectPublicKeyInfo: the key that must have signed AUTH.
    pub spki: Vec<u8>,
    /// DER Name of the subject.
    pub subject: Vec<u8>,
    /// subjectAltName dNSName entries.
    pub dns_names: Vec<String>,
    /// subjectAltName rfc822Name entries.
    pub emails: Vec<String>,
    /// subjectAltName iPAddress entries.
    pub ips: Vec<IpAddr>,
}

impl PeerCert {
    fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = parse(der)?;
        let mut out = Self {
            spki: cert.public_key().raw.to_vec(),
            subject: cert.subject().as_raw().to_vec(),
            dns_names: Vec::new(),
            emails: Vec::new(),
            ips: Vec::new(),
        };
        let san = cert.subject_alternative_name().map_err(|e| CertError::Malformed(e.to_string()))?;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(n) => out.dns_names.push((*n).to_owned()),
                GeneralName::RFC822Name(n) => out.emails.push((*n).to_owned()),
                GeneralName::IPAddress(a) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*a) {
                        out.ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*a) {
                        out.ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether the peer's identity is vouched for by this certificate (RFC 4945 §3.1, as strongSwan
    /// does it): ID_DER_ASN1_DN equal to the subject; ID_FQDN, ID_RFC822_ADDR, ID_IPV4_ADDR and
    /// ID_IPV6_ADDR present in subjectAltName (names compared without regard to case). Other types
    /// are never vouched for.
    pub fn matches(&self, id: &Identity) -> bool {
        match id {
            Identity::Dn(dn) => dn_equal(dn, &self.subject),
            Identity::Fqdn(n) => self.dns_names.iter().any(|d| d.eq_ignore_ascii_case(n)),
            Identity::Email(n) => self.emails.iter().any(|d| d.eq_ignore_ascii_case(n)),
            Identity::Ipv4(a) => self.ips.contains(&IpAddr::V4(*a)),
            Identity::Ipv6(a) => self.ips.contains(&IpAddr::V6(*a)),
            _ => false,
        }
    }
}

/// Whether a certificate (DER, not validated here) vouches for an IKE identity, as
/// [`PeerCert::matches`].
pub fn certificate_matches(der: &[u8], id: &Identity) -> bool {
    PeerCert::from_der(der).is_ok_and(|p| p.matches(id))
}

/// Whether a certificate vouches for an identity given as text, an EAP identity after EAP-TLS
/// (RFC 5216 §5.2: the peer's identity is to be checked against its certificate): an email
/// address, IP address or DNS name in its subjectAltName, its subject's common name, or its whole
/// subject written as strongSwan writes DNs.
pub fn vouches_for(der: &[u8], identity: &str) -> bool {
    let Ok(cert) = parse(der) else { return false };
    let Ok(peer) = PeerCert::from_der(der) else { return false };
    let typed = if let Ok(ip) = identity.parse::<IpAddr>() {
        match ip {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }
    } else if identity.contains('@') {
        Identity::Email(identity.to_owned())
    } else {
        Identity::Fqdn(identity.to_owned())
    };
    let squash = |s: &str| s.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    peer.matches(&typed)
        || cert.subject().iter_common_name().any(|cn| cn.as_str().is_ok_and(|c| c == identity))
        || squash(&cert.subject().to_string()) == squash(identity)
}

/// Our certificate chain (end entity first, then intermediates) and private key.
#[derive(Debug, Clone)]
pub struct LocalCert {
    /// The certificates we send in CERT payloads.
    pub chain: Vec<Vec<u8>>,
    /// The key that signs our AUTH payload.
    pub key: Arc<dyn SigningKey>,
}

impl LocalCert {
    /// Our chain and the private key (PKCS#8, PKCS#1 or SEC1 DER); the key must be the end entity's.
    pub fn new(provider: &CryptoProvider, chain: Vec<Vec<u8>>, key_der: &[u8]) -> Result<Self, CertError> {
        let end_entity = chain.first().ok_or_else(|| CertError::Malformed("empty chain".into()))?;
        let spki = parse(end_entity)?.public_key().raw.to_vec();
        let key = provider.signature.load_private_key(key_der).map_err(|e| CertError::Key(e.to_string()))?;
        if key.public_key_spki() != spki {
            return Err(CertError::Key("the private key does not belong to the certificate".into()));
        }
        for c in chain.iter().skip(1) {
            parse(c)?;
        }
        Ok(Self { chain, key })
    }

    /// The identity strongSwan uses by default for a certificate: its subject DN.
    pub fn subject_identity(&self) -> Result<Identity, CertError> {
        let end_entity = self.chain.first().ok_or_else(|| CertError::Malformed("empty chain".into()))?;
        Ok(Identity::Dn(parse(end_entity)?.subject().as_raw().to_vec()))
    }
}

/// The certificates of a PEM file (every CERTIFICATE block) or of a DER file.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        let certs: Result<Vec<Vec<u8>>, _> =
            CertificateDer::pem_slice_iter(bytes).map(|c| c.map(|c| c.as_ref().to_vec())).collect();
        let certs = certs.map_err(|e| CertError::Malformed(format!("PEM: {e}")))?;
        if certs.is_empty() {
            return Err(CertError::Malformed("no CERTIFICATE block".into()));
        }
        for c in &certs {
            parse(c)?;
        }
        return Ok(certs);
    }
    parse(bytes)?;
    Ok(vec![bytes.to_vec()])
}

/// The revocation lists of a PEM file (every X509 CRL block) or of a DER file.
pub fn parse_crls(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    use rustls_pki_types::CertificateRevocationListDer;
    if bytes.starts_with(b"-----") {
        let crls: Result<Vec<Vec<u8>>, _> =
            CertificateRevocationListDer::pem_slice_iter(bytes).map(|c| c.map(|c| c.as_ref().to_vec())).collect();
        let crls = crls.map_err(|e| CertError::Malformed(format!("PEM: {e}")))?;
        if crls.is_empty() {
            return Err(CertError::Malformed("no X509 CRL block".into()));
        }
        return Ok(crls);
    }
    Ok(vec![bytes.to_vec()])
}

/// Whether two DER-encoded Names name the same subject: the same attribute types with the same
/// values in the same order. Values are compared as strings whatever their ASN.1 string type and
/// without regard to ASCII case (RFC 5280 §7.1's caseIgnoreMatch): strongSwan encodes a configured
/// DN with UTF8String where a certificate may hold PrintableString, and the two must still match.
pub fn dn_equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Some(xa), Some(xb)) = (dn_attributes(a), dn_attributes(b)) else { return false };
    xa.len() == xb.len() && xa.iter().zip(&xb).all(|((ta, va), (tb, vb))| ta == tb && va.eq_ignore_ascii_case(vb))
}

/// The (type, value) pairs of a DER Name in order, if it parses completely and every value is a string.
fn dn_attributes(der: &[u8]) -> Option<Vec<(String, String)>> {
    let (rest, name) = X509Name::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    name.iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .map(|atv| Some((atv.attr_type().to_id_string(), atv.as_str().ok()?.to_owned())))
        .collect()
}

/// An identity as strongSwan prints it, with a DN in its `C=.., O=.., CN=..` form.
pub fn identity_string(id: &Identity) -> String {
    match id {
        Identity::Dn(der) => match X509Name::from_der(der) {
            Ok(([], name)) => name.to_string(),
            _ => id.to_string(),
        },
        _ => id.to_string(),
    }
}
