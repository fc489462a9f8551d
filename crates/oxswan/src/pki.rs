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
    pub fn client_cert(&self, name: &str) -> PathBuf {
        self.root.join("clients").join(format!("{name}.crt"))
    }
    pub fn client_key(&self, name: &str) -> PathBuf {
        self.root.join("private/clients").join(format!("{name}.key"))
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

fn kind(rsa: bool) -> KeyKind {
    if rsa { KeyKind::Rsa3072 } else { KeyKind::EcdsaP256 }
}

/// A client name that is also a file name: no path separators, not hidden.
fn file_name(name: &str) -> anyhow::Result<&str> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        anyhow::bail!("{name:?}: a client's name is also its file name: no '/', and not starting with '.'");
    }
    Ok(name)
}

pub fn run(cmd: PkiCmd) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    match cmd {
        PkiCmd::Init { name, rsa, dir } => {
            let l = Layout::new(&dir);
            // Both files checked before either is written: no CA key without its certificate.
            for p in [l.ca_cert(), l.ca_key()] {
                if p.exists() {
                    anyhow::bail!("{} exists already: remove it first, or use another --dir", p.display());
                }
            }
            let (_, issued) = Ca::generate(&name, kind(rsa), now)?;
            write_private(&l.ca_key(), issued.key_pem.as_bytes())?;
            write_public(&l.ca_cert(), issued.cert_pem.as_bytes())?;
            println!("CA {name:?}: {} (key {})", l.ca_cert().display(), l.ca_key().display());
            println!("next: oxswan pki server --name vpn.example.com --dir {}", dir.display());
        }
        PkiCmd::Server { name, addresses, rsa, dir } => {
            let l = Layout::new(&dir);
            let ca = l.load_ca()?;
            let issued = ca.issue_server(&name, &addresses, kind(rsa), now)?;
            write_private(&l.server_key(), issued.key_pem.as_bytes())?;
            write_public(&l.server_cert(), issued.cert_pem.as_bytes())?;
            println!("gateway {name:?}: {} (key {})", l.server_cert().display(), l.server_key().display());
        }
        PkiCmd::Client { name, rsa, dir } => {
            let l = Layout::new(&dir);
            let ca = l.load_ca()?;
            let issued = ca.issue_client(file_name(&name)?, kind(rsa), now)?;
            write_private(&l.client_key(&name), issued.key_pem.as_bytes())?;
            write_public(&l.client_cert(&name), issued.cert_pem.as_bytes())?;
            println!("client {name:?}: {} (key {})", l.client_cert(&name).display(), l.client_key(&name).display());
        }
    }
    Ok(())
}
