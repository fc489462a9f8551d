//! Certificates, keys and revocation lists where swanctl finds them (src/swanctl/commands/
//! load_creds.c, load_conns.c): beside the swanctl.conf, `x509/` holds end-entity and intermediate
//! certificates, `x509ca/` CA certificates, `x509crl/` revocation lists, and `private/`, `rsa/`,
//! `ecdsa/`, `pkcs8/` private keys. swanctl loads every file of those directories and charon picks
//! the key whose public key is the certificate's; oxswan names one key per `local` side, so the
//! key is found here the same way: by public key.

use std::path::{Path, PathBuf};

use oxswan_crypto::CryptoProvider;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// One certificate file's first certificate, with what the chain and key lookups need.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub path: PathBuf,
    pub der: Vec<u8>,
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub spki: Vec<u8>,
}

impl Cert {
    pub fn self_signed(&self) -> bool {
        oxswan_ike::cert::dn_equal(&self.subject, &self.issuer)
    }
}

/// A private key file and its public key.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub path: PathBuf,
    pub spki: Vec<u8>,
}

/// A revocation list file and its issuer.
#[derive(Debug, Clone)]
pub(crate) struct Crl {
    pub path: PathBuf,
    pub issuer: Vec<u8>,
}

/// What the swanctl directory holds.
#[derive(Debug)]
pub(crate) struct Store {
    pub dir: PathBuf,
    pub x509: Vec<Cert>,
    pub x509ca: Vec<Cert>,
    pub crls: Vec<Crl>,
    pub keys: Vec<Key>,
    /// Files of the key directories that are no key oxswan reads (encrypted, PKCS#12 ...), with why.
    pub unreadable_keys: Vec<(PathBuf, String)>,
}

/// The directories swanctl reads private keys from (`load_keys`).
pub(crate) const KEY_DIRS: [&str; 4] = ["private", "rsa", "ecdsa", "pkcs8"];

/// The regular files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    // A directory is bounded like the includes: a hostile tree must not make us read forever.
    v.truncate(crate::settings::MAX_FILES);
    v
}

/// Reads a file no larger than the settings' file limit.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    crate::settings::read_limited(path, crate::settings::MAX_FILE_SIZE).map_err(|e| e.to_string())
}

/// The first certificate of a PEM or DER file.
pub(crate) fn read_cert(path: &Path) -> Result<Cert, String> {
    let bytes = read_bounded(path)?;
    let ders = oxswan_ike::cert::parse_certificates(&bytes).map_err(|e| e.to_string())?;
    let der = ders.into_iter().next().ok_or("no certificate")?;
    let (_, c) = x509_parser::parse_x509_certificate(&der).map_err(|e| format!("not a certificate: {e}"))?;
    Ok(Cert {
        path: path.to_path_buf(),
        subject: c.subject().as_raw().to_vec(),
        issuer: c.issuer().as_raw().to_vec(),
        spki: c.public_key().raw.to_vec(),
        der: der.clone(),
    })
}

fn read_key(provider: &CryptoProvider, path: &Path) -> Result<Key, String> {
    let bytes = read_bounded(path)?;
    if bytes.windows(9).any(|w| w == b"ENCRYPTED") {
        return Err("encrypted; oxswan reads unencrypted keys (openssl pkey -in KEY -out PLAIN)".into());
    }
    let der = if bytes.starts_with(b"-----") {
        PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| format!("no private key in the PEM file: {e}"))?
            .secret_der()
            .to_vec()
    } else {
        bytes
    };
    let key = provider.signature.load_private_key(&der).map_err(|e| format!("not a key oxswan reads: {e}"))?;
    Ok(Key { path: path.to_path_buf(), spki: key.public_key_spki() })
}

fn read_crl(path: &Path) -> Result<Crl, String> {
    let bytes = read_bounded(path)?;
    let ders = oxswan_ike::cert::parse_crls(&bytes).map_err(|e| e.to_string())?;
    let der = ders.first().ok_or("no revocation list")?;
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| format!("not a revocation list: {e}"))?;
    Ok(Crl { path: path.to_path_buf(), issuer: crl.issuer().as_raw().to_vec() })
}

impl Store {
    /// Reads the credential directories beside the swanctl.conf (`dir`). Files that do not parse
    /// are left out (certificates) or remembered (keys), as swanctl reports and skips them.
    pub fn load(dir: &Path) -> Self {
        let provider = oxswan_crypto::default_provider();
        let certs = |sub: &str| files(&dir.join(sub)).iter().filter_map(|p| read_cert(p).ok()).collect();
        let mut keys = Vec::new();
        let mut unreadable_keys = Vec::new();
        for sub in KEY_DIRS {
            for p in files(&dir.join(sub)) {
                match read_key(&provider, &p) {
                    Ok(k) => keys.push(k),
                    Err(why) => unreadable_keys.push((p, why)),
                }
            }
        }
        Store {
            dir: dir.to_path_buf(),
            x509: certs("x509"),
            x509ca: certs("x509ca"),
            crls: files(&dir.join("x509crl")).iter().filter_map(|p| read_crl(p).ok()).collect(),
            keys,
            unreadable_keys,
        }
    }

    /// The key whose public key is the certificate's.
    pub fn key_for(&self, cert: &Cert) -> Option<&Key> {
        self.keys.iter().find(|k| k.spki == cert.spki)
    }

    /// `cert` and the intermediates up to (not including) a self-signed root, from x509/ and
    /// x509ca/, as charon sends them: the chain a peer that trusts only the root needs.
    pub fn chain(&self, cert: &Cert) -> Vec<Cert> {
        let mut chain = vec![cert.clone()];
        while let Some(last) = chain.last() {
            if last.self_signed() || chain.len() > 8 {
                break;
            }
            let issuer = self
                .x509
                .iter()
                .chain(&self.x509ca)
                .find(|c| oxswan_ike::cert::dn_equal(&c.subject, &last.issuer) && !c.self_signed());
            match issuer {
                Some(i) if !chain.iter().any(|c| c.der == i.der) => chain.push(i.clone()),
                _ => break,
            }
        }
        chain
    }

    /// The revocation lists of x509crl/ issued by one of `cas`.
    pub fn crls_for<'a>(&'a self, cas: &'a [Cert]) -> impl Iterator<Item = &'a Crl> + 'a {
        self.crls.iter().filter(move |crl| cas.iter().any(|ca| oxswan_ike::cert::dn_equal(&ca.subject, &crl.issuer)))
    }
}

/// A relative file name of `certs`, `cacerts` or an authority's `cacert`, as swanctl resolves it:
/// under `sub` of the swanctl directory.
pub(crate) fn resolve(dir: &Path, sub: &str, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() { p.to_path_buf() } else { dir.join(sub).join(p) }
}

/// A revocation list named by an authority's `crl_uris`, when it is a file (`file:///path`).
pub(crate) fn crl_file(uri: &str) -> Option<PathBuf> {
    let path = uri.strip_prefix("file://")?;
    Path::new(path).is_absolute().then(|| PathBuf::from(path))
}

pub(crate) fn read_crl_file(path: &Path) -> Result<Crl, String> {
    read_crl(path)
}
