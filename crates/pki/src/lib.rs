//! The certificates of an oxswan gateway: a CA, the gateway's own certificate and the clients'.
//!
//! What goes into them is what the stock IKEv2 clients check, beyond RFC 4945:
//! - the gateway's certificate has the serverAuth and the IKE intermediate (1.3.6.1.5.5.7.3.17)
//!   extended key usages, which Windows requires of a machine certificate for IKEv2;
//! - the name clients connect to is a DNS subjectAltName and the CN; a gateway reached by an IP
//!   address has that address both as an IP subjectAltName and as a DNS-type one, as Windows
//!   otherwise fails with error 13801 (it matches the name typed by the user against DNS SANs);
//! - client certificates have clientAuth and an email or DNS subjectAltName for their identity.
//!
//! Keys are ECDSA P-256 by default, RSA-3072 on request: Android's built-in IKEv2 client (11 and
//! later) signs and verifies with RSA only, so a gateway it connects to needs `--rsa` certificates
//! (and its clients' too). Private keys
//! are held in [`Zeroizing`] strings and written with mode 0600 ([`write_private`]).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SanType,
};
use time::Duration;
pub use time::OffsetDateTime;
use zeroize::Zeroizing;

/// id-kp-ipsecIKE (RFC 4945 §5.1.3.12): the IKE intermediate key usage Windows looks for.
pub const IPSEC_IKE_EKU: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 17];

/// How long a CA is valid: ten years.
const CA_DAYS: i64 = 3650;
/// How long a gateway's or client's certificate is valid: two years.
const LEAF_DAYS: i64 = 730;
/// Certificates start a day early, for clients whose clocks lag.
const SKEW_DAYS: i64 = 1;
/// When a revocation list says the next one is due: a year (it is made again at each revocation).
const CRL_DAYS: i64 = 365;

/// Why a certificate was not made, or its files not written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused (a key that cannot be generated or parsed, a name it cannot encode).
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A name that a certificate cannot carry as a DNS name, IP address or email address.
    #[error("{0:?} is not a DNS name, IP address or email address a certificate can carry")]
    BadName(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a certificate (PEM or DER) that could be read.
    #[error("not a certificate: {0}")]
    NotACertificate(String),
    /// A file that would be overwritten: a CA or key is never replaced silently.
    #[error("{0} exists already: remove it first, or use another directory")]
    Exists(PathBuf),
}

/// The type of a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// ECDSA on P-256 with SHA-256.
    #[default]
    EcdsaP256,
    /// RSA, 3072 bits, PKCS#1 v1.5 signatures with SHA-256: what Android's built-in client needs,
    /// and what older Windows builds take for certain.
    Rsa3072,
}

impl KeyKind {
    fn generate(self) -> Result<KeyPair, PkiError> {
        Ok(match self {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyKind::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?,
        })
    }

    /// What the key may do: signatures for IKE's AUTH payload; RSA keys also key encipherment,
    /// which some Windows builds expect of an RSA machine certificate.
    fn leaf_usages(self) -> Vec<KeyUsagePurpose> {
        match self {
            KeyKind::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
            KeyKind::Rsa3072 => vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
        }
    }
}

/// A certificate just made, with its private key.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).field("key_pem", &"(secret)").finish()
    }
}

/// A CA that issues the gateway's and the clients' certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// When the CA's own certificate ends: no certificate it issues outlives it (RFC 5280 §6.1.3
    /// would refuse that part of its life anyway).
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA named `name` (its CN), valid for ten years from `now`.
    pub fn generate(name: &str, kind: KeyKind, now: OffsetDateTime) -> Result<(Self, Issued), PkiError> {
        if name.trim().is_empty() {
            return Err(PkiError::BadName(name.to_owned()));
        }
        let key = kind.generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, now, CA_DAYS);
        let cert = params.self_signed(&key)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        };
        let not_after = params.not_after;
        Ok((Self { issuer: Issuer::new(params, key), not_after }, issued))
    }

    /// The CA of `cert_pem` with its key `key_pem`, to issue more certificates.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let key = KeyPair::from_pem(key_pem)?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::NotACertificate(e.to_string()))?;
        let (_, cert) =
            X509Certificate::from_der(&pem.contents).map_err(|e| PkiError::NotACertificate(e.to_string()))?;
        let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
            .map_err(|e| PkiError::NotACertificate(e.to_string()))?;
        Ok(Self { issuer: Issuer::from_ca_cert_pem(cert_pem, key)?, not_after })
    }

    /// The gateway's certificate for `name` (a DNS name or an IP address: what clients connect
    /// to) and any further `addresses` it is reached by.
    pub fn issue_server(
        &self,
        name: &str,
        addresses: &[IpAddr],
        kind: KeyKind,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let mut sans = Vec::new();
        let mut ips: Vec<IpAddr> = Vec::new();
        match name.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => sans.push(SanType::DnsName(dns_name(name)?)),
        }
        for a in addresses {
            if !ips.contains(a) {
                ips.push(*a);
            }
        }
        // Windows matches what the user typed against DNS-type SANs only (error 13801 otherwise):
        // an address goes in both forms.
        for ip in ips {
            sans.push(SanType::IpAddress(ip));
            sans.push(SanType::DnsName(dns_name(&ip.to_string())?));
        }
        let eku = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::Other(IPSEC_IKE_EKU.to_vec())];
        self.issue(name, sans, eku, kind, now)
    }

    /// A client's certificate for `name`: an email address (`alice@example.com`) goes in as an
    /// email subjectAltName, anything else as a DNS one; its CN is `name` either way.
    pub fn issue_client(&self, name: &str, kind: KeyKind, now: OffsetDateTime) -> Result<Issued, PkiError> {
        let san = if name.contains('@') {
            if name.starts_with('@') || name.ends_with('@') || name.chars().any(char::is_whitespace) {
                return Err(PkiError::BadName(name.to_owned()));
            }
            SanType::Rfc822Name(name.try_into().map_err(|_| PkiError::BadName(name.to_owned()))?)
        } else {
            SanType::DnsName(dns_name(name)?)
        };
        self.issue(name, vec![san], vec![ExtendedKeyUsagePurpose::ClientAuth], kind, now)
    }

    /// The CA's revocation list (RFC 5280 §5, PEM) of `revoked`: each certificate's serial number
    /// and when it was revoked. Its number is `now` in seconds, or one more than `previous` (the
    /// last list's, [`crl_number`]) if that is not smaller: a later list always has a larger
    /// number (§5.2.3), even two in one second or after the clock went back.
    pub fn crl(
        &self,
        revoked: &[(Vec<u8>, OffsetDateTime)],
        previous: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let number = u64::try_from(now.unix_timestamp()).unwrap_or(0).max(previous.map_or(0, |p| p.saturating_add(1)));
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(CRL_DAYS),
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(serial, at)| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(serial),
                    revocation_time: *at,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        eku: Vec<ExtendedKeyUsagePurpose>,
        kind: KeyKind,
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let key = kind.generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = eku;
        params.key_usages = kind.leaf_usages();
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, now, LEAF_DAYS);
        params.not_after = params.not_after.min(self.not_after);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), key_pem: Zeroizing::new(key.serialize_pem()) })
    }
}

/// The number of a revocation list (PEM), if it has one that fits 64 bits.
pub fn crl_number(pem: &[u8]) -> Option<u64> {
    use x509_parser::prelude::FromDer as _;
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&p.contents).ok()?;
    let digits = crl.crl_number()?.to_bytes_be();
    (digits.len() <= 8).then(|| digits.iter().fold(0u64, |n, d| (n << 8) | u64::from(*d)))
}

/// The serial number of a certificate (PEM or DER), as its octets.
pub fn serial_of(cert: &[u8]) -> Result<Vec<u8>, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = if cert.starts_with(b"-----") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert).map_err(|e| PkiError::NotACertificate(e.to_string()))?;
        pem.contents
    } else {
        cert.to_vec()
    };
    let (_, c) = X509Certificate::from_der(&der).map_err(|e| PkiError::NotACertificate(e.to_string()))?;
    Ok(c.raw_serial().to_vec())
}

/// What a client profile needs to know of a certificate: its DER, its subject's common name and its
/// key type.
#[derive(Debug, Clone)]
pub struct Described {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The subject's common name (empty if it has none).
    pub common_name: String,
    /// The key type, if it is one this crate makes.
    pub kind: Option<KeyKind>,
}

/// Reads a certificate (PEM or DER) for [`Described`].
pub fn describe(cert: &[u8]) -> Result<Described, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let bad = |e: String| PkiError::NotACertificate(e);
    let der = if cert.starts_with(b"-----") {
        x509_parser::pem::parse_x509_pem(cert).map_err(|e| bad(e.to_string()))?.1.contents
    } else {
        cert.to_vec()
    };
    let (_, c) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let common_name =
        c.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_owned();
    let kind = match c.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(_)) => Some(KeyKind::EcdsaP256),
        Ok(x509_parser::public_key::PublicKey::RSA(_)) => Some(KeyKind::Rsa3072),
        _ => None,
    };
    Ok(Described { der, common_name, kind })
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, days: i64) {
    params.not_before = now - Duration::days(SKEW_DAYS);
    params.not_after = now + Duration::days(days);
}

/// Whether `name` can be a gateway's name: an IP address, or a DNS name of letters, digits and
/// hyphens ([`Ca::issue_server`] refuses anything else).
pub fn check_server_name(name: &str) -> Result<(), PkiError> {
    dns_name(name).map(|_| ())
}

/// `name` as a DNS-type subjectAltName: labels of letters, digits and hyphens (an IP address's
/// text passes too, as Windows wants it there).
fn dns_name(name: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    let ip = name.parse::<IpAddr>().is_ok();
    let ok = ip
        || (!name.is_empty()
            && name.len() <= 253
            && name
                .split('.')
                .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')));
    if !ok {
        return Err(PkiError::BadName(name.to_owned()));
    }
    name.try_into().map_err(|_| PkiError::BadName(name.to_owned()))
}

/// Writes a public file (a certificate), refusing to replace one.
pub fn write_public(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    write_new(path, data, 0o644)
}

/// Writes a private key with mode 0600 from the start (never readable by others, not even for a
/// moment), refusing to replace one.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    write_new(path, data, 0o600)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A key's directory is the owner's alone too (directories made for it are 0700).
        let dir_mode = if mode & 0o077 == 0 { 0o700 } else { 0o755 };
        std::fs::DirBuilder::new().recursive(true).mode(dir_mode).create(dir).map_err(io)?;
    }
    let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(PkiError::Exists(path.to_owned())),
        Err(e) => return Err(io(e)),
    };
    // A file half written (a full disk) is removed: it would block every retry as existing.
    if let Err(e) = f.write_all(data).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap()
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(der).unwrap().1
    }

    fn sans<'a>(c: &'a X509Certificate<'_>) -> Vec<GeneralName<'a>> {
        c.subject_alternative_name().unwrap().map(|s| s.value.general_names.clone()).unwrap_or_default()
    }

    fn ekus(c: &X509Certificate<'_>) -> Vec<String> {
        let e = c.extended_key_usage().unwrap().unwrap().value;
        let mut v: Vec<String> = e.other.iter().map(|o| o.to_id_string()).collect();
        if e.server_auth {
            v.push("serverAuth".into());
        }
        if e.client_auth {
            v.push("clientAuth".into());
        }
        v.sort();
        v
    }

    #[test]
    fn a_ca_is_a_ca_and_signs_what_it_issues() {
        for kind in [KeyKind::EcdsaP256, KeyKind::Rsa3072] {
            let (ca, issued) = Ca::generate("oxswan CA", kind, now()).unwrap();
            let c = parse(&issued.cert_der);
            assert!(c.is_ca(), "{kind:?}");
            assert_eq!(c.subject().to_string(), "CN=oxswan CA");
            let ku = c.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
            assert_eq!(c.validity().not_after.timestamp() - now().unix_timestamp(), CA_DAYS * 86_400);
            let algo = c.public_key().algorithm.algorithm.to_id_string();
            let want = if kind == KeyKind::EcdsaP256 { "1.2.840.10045.2.1" } else { "1.2.840.113549.1.1.1" };
            assert_eq!(algo, want);
            let server = ca.issue_server("vpn.example.com", &[], kind, now()).unwrap();
            let s = parse(&server.cert_der);
            assert_eq!(s.issuer(), c.subject());
            s.verify_signature(Some(c.public_key())).expect("signed by the CA");
            assert!(!s.is_ca());
            assert!(issued.key_pem.contains("PRIVATE KEY"));
        }
    }

    /// The gateway's certificate carries both EKUs Windows looks for and its name as a DNS SAN;
    /// reached by IP, the address is both an IP and a DNS-type SAN (Windows error 13801).
    #[test]
    fn the_gateway_certificate_is_what_windows_and_apple_check() {
        let (ca, _) = Ca::generate("oxswan CA", KeyKind::EcdsaP256, now()).unwrap();
        let by_name = ca.issue_server("vpn.example.com", &["192.0.2.2".parse().unwrap()], KeyKind::EcdsaP256, now());
        let by_name = by_name.unwrap();
        let c = parse(&by_name.cert_der);
        assert_eq!(ekus(&c), ["1.3.6.1.5.5.7.3.17", "serverAuth"]);
        assert_eq!(c.subject().to_string(), "CN=vpn.example.com");
        let names: Vec<String> = sans(&c).iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(names, ["DNSName(\"vpn.example.com\")", "IPAddress([192, 0, 2, 2])", "DNSName(\"192.0.2.2\")"]);
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(
            c.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
                .unwrap()
                .is_some()
        );

        let issued = ca.issue_server("203.0.113.7", &[], KeyKind::Rsa3072, now()).unwrap();
        let c = parse(&issued.cert_der);
        let names: Vec<String> = sans(&c).iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(names, ["IPAddress([203, 0, 113, 7])", "DNSName(\"203.0.113.7\")"]);
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment(), "RSA: key encipherment too");
        let v6 = ca.issue_server("2001:db8::2", &[], KeyKind::EcdsaP256, now()).unwrap();
        let names: Vec<String> = sans(&parse(&v6.cert_der)).iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(names.len(), 2);
        assert_eq!(names[1], "DNSName(\"2001:db8::2\")");
    }

    #[test]
    fn client_certificates_name_their_identity() {
        let (ca, _) = Ca::generate("oxswan CA", KeyKind::EcdsaP256, now()).unwrap();
        let alice = ca.issue_client("alice@example.com", KeyKind::EcdsaP256, now()).unwrap();
        let c = parse(&alice.cert_der);
        assert_eq!(ekus(&c), ["clientAuth"]);
        let names: Vec<String> = sans(&c).iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(names, ["RFC822Name(\"alice@example.com\")"]);
        assert_eq!(c.validity().not_after.timestamp() - now().unix_timestamp(), LEAF_DAYS * 86_400);
        assert_eq!(now().unix_timestamp() - c.validity().not_before.timestamp(), SKEW_DAYS * 86_400);
        let bob = ca.issue_client("bob.example.com", KeyKind::EcdsaP256, now()).unwrap();
        let names: Vec<String> = sans(&parse(&bob.cert_der)).iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(names, ["DNSName(\"bob.example.com\")"]);
    }

    #[test]
    fn names_a_certificate_cannot_carry_are_refused() {
        let (ca, _) = Ca::generate("oxswan CA", KeyKind::EcdsaP256, now()).unwrap();
        for bad in ["", "a b", "vpn..example.com", "@example.com", "alice@", "x\u{e9}.example", "a/b", "a:b"] {
            let r = ca.issue_client(bad, KeyKind::EcdsaP256, now());
            assert!(matches!(r, Err(PkiError::BadName(_))), "{bad:?}: {r:?}");
        }
        assert!(matches!(ca.issue_server("vpn example", &[], KeyKind::EcdsaP256, now()), Err(PkiError::BadName(_))));
        assert!(matches!(Ca::generate(" ", KeyKind::EcdsaP256, now()), Err(PkiError::BadName(_))));
    }

    /// A CA read back from its files issues certificates that chain to it.
    #[test]
    fn a_loaded_ca_issues_like_the_new_one() {
        let (_, issued) = Ca::generate("oxswan CA", KeyKind::EcdsaP256, now()).unwrap();
        let ca = Ca::load(&issued.cert_pem, &issued.key_pem).unwrap();
        let server = ca.issue_server("vpn.example.com", &[], KeyKind::EcdsaP256, now()).unwrap();
        let root = parse(&issued.cert_der);
        let s = parse(&server.cert_der);
        assert_eq!(s.issuer(), root.subject());
        s.verify_signature(Some(root.public_key())).expect("signed by the loaded CA");
        assert!(Ca::load(&issued.cert_pem, "not a key").is_err());
    }

    #[test]
    fn keys_are_written_0600_and_nothing_is_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("oxswan-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = dir.join("private/ca.key");
        write_private(&key, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("private")).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(matches!(write_private(&key, b"other"), Err(PkiError::Exists(_))));
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        let cert = dir.join("ca.crt");
        write_public(&cert, b"cert").unwrap();
        assert_eq!(std::fs::metadata(&cert).unwrap().permissions().mode() & 0o777, 0o644);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A revoked client's certificate is on the CA's list and the engine refuses it with the list;
    /// the others pass, and without the list it would pass too.
    #[test]
    fn a_revoked_client_is_refused_by_the_engine() {
        use oxswan_ike::cert::{CertError, TrustStore};
        let (ca, root) = Ca::generate("oxswan CA", KeyKind::EcdsaP256, now()).unwrap();
        let alice = ca.issue_client("alice@example.com", KeyKind::EcdsaP256, now()).unwrap();
        let bob = ca.issue_client("bob@example.com", KeyKind::EcdsaP256, now()).unwrap();
        let bob_serial = serial_of(bob.cert_pem.as_bytes()).unwrap();
        assert_eq!(bob_serial, serial_of(&bob.cert_der).unwrap(), "PEM and DER alike");
        assert_ne!(bob_serial, serial_of(&alice.cert_der).unwrap());
        let crl_pem = ca.crl(&[(bob_serial.clone(), now())], None, now()).unwrap();
        let crls = oxswan_ike::cert::parse_crls(crl_pem.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crls[0]).unwrap();
        let listed: Vec<Vec<u8>> = parsed.iter_revoked_certificates().map(|r| r.raw_serial().to_vec()).collect();
        assert_eq!(listed, [bob_serial]);
        assert_eq!(parsed.issuer(), parse(&root.cert_der).subject());
        let at = u64::try_from(now().unix_timestamp()).unwrap() + 60;
        let plain = TrustStore::new(std::slice::from_ref(&root.cert_der)).unwrap();
        assert!(plain.verify(&bob.cert_der, &[], at).is_ok(), "without the list");
        let checked = plain.with_crls(&crls).unwrap();
        assert_eq!(checked.verify(&bob.cert_der, &[], at).unwrap_err(), CertError::Revoked);
        assert!(checked.verify(&alice.cert_der, &[], at).is_ok());
        // Another CA's list is refused when loaded: it could never apply.
        let (other, _) = Ca::generate("other CA", KeyKind::EcdsaP256, now()).unwrap();
        let foreign = oxswan_ike::cert::parse_crls(other.crl(&[], None, now()).unwrap().as_bytes()).unwrap();
        let r = TrustStore::new(std::slice::from_ref(&root.cert_der)).unwrap().with_crls(&foreign);
        assert!(matches!(r, Err(CertError::Untrusted(ref m)) if m.contains("CN=other CA")), "{r:?}");
        // An empty list revokes nothing.
        let empty_pem = ca.crl(&[], None, now()).unwrap();
        let first = crl_number(crl_pem.as_bytes()).unwrap();
        assert_eq!(first, u64::try_from(now().unix_timestamp()).unwrap());
        assert_eq!(crl_number(empty_pem.as_bytes()), Some(first), "the same second, no previous given");
        let next = ca.crl(&[], Some(first), now()).unwrap();
        assert_eq!(crl_number(next.as_bytes()), Some(first + 1), "never the same number twice");
        let empty = oxswan_ike::cert::parse_crls(empty_pem.as_bytes()).unwrap();
        let t = TrustStore::new(std::slice::from_ref(&root.cert_der)).unwrap().with_crls(&empty).unwrap();
        assert!(t.verify(&bob.cert_der, &[], at).is_ok());
    }

    /// A CA with 100 days left issues certificates that end with it, loaded from its files or not.
    #[test]
    fn no_certificate_outlives_its_ca() {
        let made = now() - Duration::days(CA_DAYS - 100);
        let (ca, root) = Ca::generate("old CA", KeyKind::EcdsaP256, made).unwrap();
        let ca_end = parse(&root.cert_der).validity().not_after.timestamp();
        for ca in [ca, Ca::load(&root.cert_pem, &root.key_pem).unwrap()] {
            let leaf = ca.issue_client("alice@example.com", KeyKind::EcdsaP256, now()).unwrap();
            assert_eq!(parse(&leaf.cert_der).validity().not_after.timestamp(), ca_end);
        }
        let (young, _) = Ca::generate("young CA", KeyKind::EcdsaP256, now()).unwrap();
        let leaf = young.issue_client("alice@example.com", KeyKind::EcdsaP256, now()).unwrap();
        assert_eq!(parse(&leaf.cert_der).validity().not_after.timestamp() - now().unix_timestamp(), LEAF_DAYS * 86_400);
    }

    #[test]
    fn debug_never_shows_a_key() {
        let (_, issued) = Ca::generate("oxswan CA", KeyKind::EcdsaP256, now()).unwrap();
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
    }
}
