//! Test PKIs made with rcgen: a root CA, one intermediate, and end-entity certificates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::IpAddr;
use std::sync::Arc;

use oxswan_ike::cert::{LocalCert, TrustStore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    RsaKeySize, SanType, SignatureAlgorithm, date_time_ymd,
};

/// The key types of the issue: RSA-2048, ECDSA P-256 and P-384, Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rsa2048,
    P256,
    P384,
    Ed25519,
}

pub const ALL: [Alg; 4] = [Alg::Rsa2048, Alg::P256, Alg::P384, Alg::Ed25519];

pub fn key(alg: Alg) -> KeyPair {
    match alg {
        Alg::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap(),
        Alg::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        Alg::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        Alg::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    }
}

fn sig_alg(alg: Alg) -> &'static SignatureAlgorithm {
    match alg {
        Alg::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        Alg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Alg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Alg::Ed25519 => &rcgen::PKCS_ED25519,
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    // RFC 5280 Appendix A: countryName is a PrintableString (tshark flags a UTF8String there).
    d.push(DnType::CountryName, DnValue::PrintableString("CH".try_into().unwrap()));
    d.push(DnType::OrganizationName, "oxswan test");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    p
}

/// A root CA and an intermediate it signed.
pub struct Ca {
    pub root_der: Vec<u8>,
    pub intermediate_der: Vec<u8>,
    intermediate: Issuer<'static, KeyPair>,
    alg: Alg,
}

impl Ca {
    pub fn new(name: &str, alg: Alg) -> Self {
        let root_key = key(alg);
        let root_params = ca_params(&format!("{name} Root CA"));
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root = Issuer::new(root_params, root_key);
        let int_key = key(alg);
        let int_params = ca_params(&format!("{name} Intermediate CA"));
        let int_cert = int_params.signed_by(&int_key, &root).unwrap();
        Self {
            root_der: root_cert.der().to_vec(),
            intermediate_der: int_cert.der().to_vec(),
            intermediate: Issuer::new(int_params, int_key),
            alg,
        }
    }

    pub fn trust(&self) -> TrustStore {
        TrustStore::new(std::slice::from_ref(&self.root_der)).unwrap()
    }

    /// An end-entity certificate for `cn` with these subjectAltNames, valid from `from` to `to`
    /// (years), and its PKCS#8 key.
    pub fn issue(&self, alg: Alg, cn: &str, sans: &[&str], years: (i32, i32)) -> (Vec<u8>, Vec<u8>) {
        self.issue_for(alg, cn, sans, years, &[])
    }

    /// [`Ca::issue`] with extended key usages (a VPN gateway's serverAuth, which Windows requires).
    pub fn issue_for(
        &self,
        alg: Alg,
        cn: &str,
        sans: &[&str],
        years: (i32, i32),
        eku: &[rcgen::ExtendedKeyUsagePurpose],
    ) -> (Vec<u8>, Vec<u8>) {
        let k = key(alg);
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = dn(cn);
        p.subject_alt_names = sans
            .iter()
            .map(|s| {
                if let Ok(ip) = s.parse::<IpAddr>() {
                    SanType::IpAddress(ip)
                } else if s.contains('@') {
                    SanType::Rfc822Name((*s).try_into().unwrap())
                } else {
                    SanType::DnsName((*s).try_into().unwrap())
                }
            })
            .collect();
        p.not_before = date_time_ymd(years.0, 1, 1);
        p.not_after = date_time_ymd(years.1, 1, 1);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = eku.to_vec();
        let _ = sig_alg(self.alg);
        let cert = p.signed_by(&k, &self.intermediate).unwrap();
        (cert.der().to_vec(), k.serialize_der())
    }

    /// A VPN gateway's certificate for `name` (its DNS subjectAltName, and the serverAuth extended
    /// key usage Windows requires) and its key, P-256.
    pub fn issue_gateway(&self, name: &str) -> (Vec<u8>, Vec<u8>) {
        self.issue_for(Alg::P256, name, &[name], (2025, 2030), &[rcgen::ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// Our credential for an end entity: its certificate, then the intermediate.
    pub fn local(&self, alg: Alg, cn: &str, sans: &[&str]) -> Arc<LocalCert> {
        let (cert, key) = self.issue(alg, cn, sans, (2025, 2030));
        let provider = oxswan_crypto::default_provider();
        Arc::new(LocalCert::new(&provider, vec![cert, self.intermediate_der.clone()], &key).unwrap())
    }
}
