//! `oxswan pki`: the gateway's CA, its certificate and the clients', as files under a directory
//! (`DIR/pki/`, keys in `DIR/pki/private/` with mode 0600), made with `oxswan-pki`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use oxswan_pki::{Ca, KeyKind, OffsetDateTime, write_private, write_public};

/// What `oxswan pki` does.
#[derive(Debug, Subcommand)]
pub enum PkiCmd {
    /// Make the CA: DIR/pki/ca.crt and DIR/pki/private/ca.key (0600). Refuses to replace one.
    Init {
        /// The CA's name (its CN).
        #[arg(long, default_value = "oxswan CA")]
        name: String,
        /// An RSA-3072 key instead of ECDSA P-256.
        #[arg(long)]
        rsa: bool,
        /// Where the PKI lives.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
    /// The gateway's certificate: DIR/pki/server.crt and DIR/pki/private/server.key, for the name
    /// clients connect to (a DNS name or an IP address) with serverAuth and the IKE intermediate
    /// key usage; each --address goes in as an IP and a DNS-type subjectAltName.
    Server {
        /// The name clients connect to: vpn.example.com, or an IP address.
        #[arg(long)]
        name: String,
        /// Another address clients reach the gateway by (repeatable).
        #[arg(long = "address")]
        addresses: Vec<IpAddr>,
        /// An RSA-3072 key instead of ECDSA P-256.
        #[arg(long)]
        rsa: bool,
        /// Where the PKI lives.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
    /// A client's certificate: DIR/pki/clients/NAME.crt and DIR/pki/private/clients/NAME.key, with
    /// clientAuth and NAME as an email (alice@example.com) or DNS subjectAltName.
    Client {
        /// The client's identity.
        name: String,
        /// An RSA-3072 key instead of ECDSA P-256.
        #[arg(long)]
        rsa: bool,
        /// Where the PKI lives.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
    /// Revoke a client's certificate: it goes on DIR/pki/revoked.txt and the CA's revocation list,
    /// DIR/pki/crl.pem, is made again. A gateway whose remote side lists that file in `crls`
    /// refuses the client from its next reload on.
    Revoke {
        /// The client's identity, as given to `oxswan pki client`.
        name: String,
        /// Where the PKI lives.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
}

/// Where the files of `dir`'s PKI are.
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self { root: dir.join("pki") }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("private/ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("private/server.key")
    }
    /// Where the clients' certificates are.
    pub fn clients_dir(&self) -> PathBuf {
        self.root.join("clients")
    }
    pub fn client_cert(&self, name: &str) -> PathBuf {
        self.clients_dir().join(format!("{name}.crt"))
    }
    pub fn client_key(&self, name: &str) -> PathBuf {
        self.root.join("private/clients").join(format!("{name}.key"))
    }
    pub fn revoked(&self) -> PathBuf {
        self.root.join("revoked.txt")
    }
    pub fn crl(&self) -> PathBuf {
        self.root.join("crl.pem")
    }
    /// Where a revoked client's certificate is kept once its name is free again.
    pub fn revoked_cert(&self, name: &str, serial: &[u8]) -> PathBuf {
        self.root.join("revoked").join(format!("{name}-{}.crt", hex::encode(serial)))
    }

    /// The CA, read back from its files.
    pub fn load_ca(&self) -> anyhow::Result<Ca> {
        let (cert, key) = (self.ca_cert(), self.ca_key());
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read it (make the CA first: oxswan pki init)", p.display()))
        };
        let (c, k) = (read(&cert)?, zeroize::Zeroizing::new(read(&key)?));
        Ca::load(&c, &k).with_context(|| format!("{} and {}", cert.display(), key.display()))
    }
}

pub fn kind(rsa: bool) -> KeyKind {
    if rsa { KeyKind::Rsa3072 } else { KeyKind::EcdsaP256 }
}

/// A client name that is also a file name: no path separators, not hidden.
pub fn file_name(name: &str) -> anyhow::Result<&str> {
    let bad = |c: char| c == '/' || c == '\\' || c.is_control() || c.is_whitespace();
    if name.is_empty() || name.starts_with('.') || name.chars().any(bad) {
        anyhow::bail!(
            "{name:?}: a client's name is also its file name and a field of revoked.txt: no '/', spaces or control characters, and not starting with '.'"
        );
    }
    Ok(name)
}

pub fn run(cmd: PkiCmd) -> anyhow::Result<()> {
    match cmd {
        PkiCmd::Init { name, rsa, dir } => {
            init(&dir, &name, kind(rsa))?;
            println!("next: oxswan pki server --name vpn.example.com --dir {}", dir.display());
        }
        PkiCmd::Server { name, addresses, rsa, dir } => server(&dir, &name, &addresses, kind(rsa))?,
        PkiCmd::Client { name, rsa, dir } => {
            client(&dir, &name, kind(rsa))?;
        }
        PkiCmd::Revoke { name, dir } => {
            let l = Layout::new(&dir);
            revoke(&dir, &name)?;
            println!("next: the gateway's remote side needs crls = [\"{}\"], then oxswan reload", l.crl().display());
        }
    }
    Ok(())
}

/// `oxswan pki init`: the CA and an empty revocation list.
pub fn init(dir: &Path, name: &str, kind: KeyKind) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let l = Layout::new(dir);
    absent(&[l.ca_cert(), l.ca_key()])?;
    absent(&[l.crl(), l.revoked()])?;
    let (ca, issued) = Ca::generate(name, kind, now)?;
    write_private(&l.ca_key(), issued.key_pem.as_bytes())?;
    write_public(&l.ca_cert(), issued.cert_pem.as_bytes())?;
    // An empty list from the start, so that a gateway's `crls` can name it before any
    // revocation.
    write_public(&l.crl(), ca.crl(&[], None, now)?.as_bytes())?;
    println!("CA {name:?}: {} (key {})", l.ca_cert().display(), l.ca_key().display());
    Ok(())
}

/// `oxswan pki server`: the gateway's certificate.
pub fn server(dir: &Path, name: &str, addresses: &[IpAddr], kind: KeyKind) -> anyhow::Result<()> {
    let l = Layout::new(dir);
    absent(&[l.server_cert(), l.server_key()])?;
    let ca = l.load_ca()?;
    let issued = ca.issue_server(name, addresses, kind, OffsetDateTime::now_utc())?;
    write_private(&l.server_key(), issued.key_pem.as_bytes())?;
    write_public(&l.server_cert(), issued.cert_pem.as_bytes())?;
    println!("gateway {name:?}: {} (key {})", l.server_cert().display(), l.server_key().display());
    Ok(())
}

/// `oxswan pki client`: a client's certificate, returned with its key.
pub fn client(dir: &Path, name: &str, kind: KeyKind) -> anyhow::Result<oxswan_pki::Issued> {
    let l = Layout::new(dir);
    absent(&[l.client_cert(file_name(name)?), l.client_key(name)])?;
    let ca = l.load_ca()?;
    let issued = ca.issue_client(name, kind, OffsetDateTime::now_utc())?;
    write_private(&l.client_key(name), issued.key_pem.as_bytes())?;
    write_public(&l.client_cert(name), issued.cert_pem.as_bytes())?;
    println!("client {name:?}: {} (key {})", l.client_cert(name).display(), l.client_key(name).display());
    Ok(issued)
}

/// `oxswan pki revoke`: the client's certificate on revoked.txt and a new revocation list; returns
/// the certificate's serial number.
pub fn revoke(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let now = OffsetDateTime::now_utc();
    let l = Layout::new(dir);
    let ca = l.load_ca()?;
    let cert_path = l.client_cert(file_name(name)?);
    let cert = std::fs::read(&cert_path).with_context(|| format!("{}: no such client", cert_path.display()))?;
    let serial = oxswan_pki::serial_of(&cert).with_context(|| cert_path.display().to_string())?;
    let mut revoked = read_revoked(&l.revoked())?;
    let again = revoked.iter().any(|(s, _, _)| *s == serial);
    if !again {
        revoked.push((serial.clone(), now, name.to_owned()));
    }
    let list: Vec<(Vec<u8>, OffsetDateTime)> = revoked.iter().map(|(s, t, _)| (s.clone(), *t)).collect();
    let previous = std::fs::read(l.crl()).ok().and_then(|p| oxswan_pki::crl_number(&p));
    let crl = ca.crl(&list, previous, now)?;
    let lines: String =
        revoked.iter().map(|(s, t, n)| format!("{} {} {n}\n", hex::encode(s), t.unix_timestamp())).collect();
    // The list first: a revocation on record is always on the list too (a failure in
    // between is mended by revoking again, which makes the list anew).
    replace(&l.crl(), crl.as_bytes())?;
    replace(&l.revoked(), lines.as_bytes())?;
    if again {
        println!("{name:?} was revoked already: {} made again", l.crl().display());
    }
    println!("revoked {name:?}; {} lists {} certificate(s)", l.crl().display(), revoked.len());
    Ok(serial)
}

/// The serial numbers on `dir`'s revoked.txt.
pub fn revoked_serials(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(read_revoked(&Layout::new(dir).revoked())?.into_iter().map(|(s, _, _)| s).collect())
}

/// Both files of a pair checked before either is written: never a key without its certificate.
fn absent(paths: &[PathBuf]) -> anyhow::Result<()> {
    for p in paths {
        // Not `exists()`, which follows a symbolic link: a dangling one is there too.
        if std::fs::symlink_metadata(p).is_ok() {
            anyhow::bail!("{} exists already: remove it first, or use another --dir", p.display());
        }
    }
    Ok(())
}

/// `revoked.txt`: a line per revoked certificate, `SERIAL-HEX UNIX-TIME NAME`.
fn read_revoked(path: &Path) -> anyhow::Result<Vec<(Vec<u8>, OffsetDateTime, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || anyhow::anyhow!("{}:{}: not `SERIAL-HEX UNIX-TIME NAME`", path.display(), i + 1);
        let mut f = line.splitn(3, ' ');
        let (Some(s), Some(t), Some(n)) = (f.next(), f.next(), f.next()) else { return Err(bad()) };
        let serial = hex::decode(s).ok().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        // 1970 to 9999: what a revocation list's times can say (and what was written).
        let at = t
            .parse::<i64>()
            .ok()
            .filter(|t| (0..=253_402_300_799).contains(t))
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(bad)?;
        out.push((serial, at, n.to_owned()));
    }
    Ok(out)
}

/// Writes `path` anew through a file beside it and a rename, so that a reader sees the old file or
/// the new one, never half of one.
pub fn replace(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    replace_with(path, data, write_public)
}

/// As [`replace`], for a file only its owner may read (mode 0600 from the start).
pub fn replace_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    replace_with(path, data, write_private)
}

fn replace_with(
    path: &Path,
    data: &[u8],
    write: fn(&Path, &[u8]) -> Result<(), oxswan_pki::PkiError>,
) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write(&tmp, data).with_context(|| format!("{}: cannot write the new file beside it", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())
}

/// Moves `from` to `to`, which must not exist, making `to`'s directory if needed.
pub fn move_aside(from: &Path, to: &Path) -> anyhow::Result<()> {
    absent(&[to.to_path_buf()])?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    std::fs::rename(from, to).with_context(|| format!("{} to {}", from.display(), to.display()))
}
