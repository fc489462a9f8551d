//! `oxswan setup gateway` and `oxswan client add|remove|list|export`: a road-warrior gateway in one
//! command, and a profile per client for every stock IKEv2 client.
//!
//! Everything lives under one directory (`/etc/oxswan` by default):
//! - `oxswan.toml`, the daemon's configuration (0600: it holds the users' passwords);
//! - `setup.toml`, what the configuration does not say of the gateway (the addresses clients
//!   reach it at);
//! - `oxswan.service`, a systemd unit running the daemon with that configuration;
//! - `pki/`, the CA and certificates (`oxswan pki`);
//! - `clients/NAME/`, each client's profiles (0700, files 0600: they are credentials).
//!
//! The configuration has a connection for certificate clients (`rw-cert`) from the start and one
//! for EAP-MSCHAPv2 users (`rw-eap`) while there are any: a responder picks between them by whether
//! the client sends AUTH in IKE_AUTH (RFC 7296 §2.16).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use oxswan_pki::KeyKind;
use oxswan_profile::{CertKind, Client, Credential, Gateway, LinuxFiles, Pkcs12Kind, suites};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};
use zeroize::Zeroizing;

use crate::control::{self, Request, Response};
use crate::pki::{self, Layout};

/// What `oxswan setup` makes.
#[derive(Debug, Subcommand)]
pub enum SetupCmd {
    /// A road-warrior gateway: DIR/oxswan.toml (address pools, a connection for certificate
    /// clients and, with the first user, one for EAP-MSCHAPv2), the PKI in DIR/pki/ and a systemd
    /// unit, with proposals every stock IKEv2 client accepts (Windows, iOS/macOS, Android, Linux)
    /// and nothing weaker unless --allow-legacy. Then `oxswan client add NAME` per client.
    Gateway {
        /// The name clients connect to and find in the gateway's certificate: vpn.example.com, or
        /// an IP address.
        #[arg(long)]
        name: String,
        /// An IP address clients reach the gateway at (repeatable): it goes in the certificate (as
        /// an IP and a DNS-type subjectAltName, as Windows wants) and in Linux clients'
        /// configurations.
        #[arg(long = "address")]
        addresses: Vec<IpAddr>,
        /// The clients' IPv4 addresses.
        #[arg(long, default_value = "10.10.0.0/24")]
        pool: String,
        /// The clients' IPv6 addresses (none unless given), e.g. fd10::/120.
        #[arg(long)]
        pool6: Option<String>,
        /// A DNS server for the clients (repeatable).
        #[arg(long = "dns")]
        dns: Vec<IpAddr>,
        /// Also accept what Windows proposes when nobody configured it: MODP-1024 and SHA-1
        /// (RFC 8247 says SHOULD NOT). The PowerShell profile does not need it.
        #[arg(long)]
        allow_legacy: bool,
        /// RSA-3072 keys for the CA and the gateway instead of ECDSA P-256 (Android's built-in
        /// client needs RSA).
        #[arg(long)]
        rsa: bool,
        /// Where everything goes.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
}

/// What `oxswan client` does.
#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Add a client and write its profiles to DIR/clients/NAME/: NAME.mobileconfig (iOS, macOS),
    /// NAME.sswan (strongSwan for Android), NAME.ps1 (Windows), NAME.toml with ca.crt (oxswan on
    /// Linux) and, for a certificate client, NAME.p12. A password client is an EAP-MSCHAPv2 user
    /// (a password is made and printed unless --password gives one). A running daemon is told
    /// to reload.
    Add {
        /// The client's name: the user name, or the identity in its certificate
        /// (alice@example.com).
        name: String,
        /// The user's password (else one is made). It shows in the process list: prefer
        /// --password-stdin.
        #[arg(long, conflicts_with_all = ["cert", "password_stdin"])]
        password: Option<String>,
        /// Read the user's password from the first line of standard input.
        #[arg(long, conflicts_with = "cert")]
        password_stdin: bool,
        /// A certificate instead of a password.
        #[arg(long)]
        cert: bool,
        /// An RSA-3072 key for the certificate instead of ECDSA P-256.
        #[arg(long, requires = "cert")]
        rsa: bool,
        /// Apple profiles connect by themselves whenever the device has a network.
        #[arg(long)]
        on_demand: bool,
        /// The gateway's directory.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
    /// Remove a client: its certificate is revoked (DIR/pki/crl.pem) or its password deleted, its
    /// profiles removed; a running daemon reloads and ends the client's IKE SAs.
    Remove {
        /// The client's name.
        name: String,
        /// The gateway's directory.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
    /// List the clients.
    List {
        /// The gateway's directory.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
    /// Write a client's profiles again (a certificate client's PKCS#12 gets a new password); with
    /// --qr, print its .sswan as a QR code for the Android app instead.
    Export {
        /// The client's name.
        name: String,
        /// Print the .sswan profile as a QR code on the terminal.
        #[arg(long)]
        qr: bool,
        /// Apple profiles connect by themselves whenever the device has a network.
        #[arg(long)]
        on_demand: bool,
        /// The gateway's directory.
        #[arg(long, default_value = "/etc/oxswan")]
        dir: PathBuf,
    },
}

const CONFIG: &str = "oxswan.toml";
const SETUP: &str = "setup.toml";
/// The systemd unit `setup gateway` writes beside the configuration.
const UNIT: &str = "oxswan.service";
/// The connection of certificate clients.
const CERT_CONN: &str = "rw-cert";
/// The connection of EAP-MSCHAPv2 users.
const EAP_CONN: &str = "rw-eap";

/// `DIR/setup.toml`: what the configuration does not say of the gateway. Its name and whether it
/// lends IPv6 addresses are read from the configuration itself, so an edit there reaches the
/// profiles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    /// The addresses clients reach it at (a gateway behind a NAT does not listen on them).
    #[serde(default)]
    addresses: Vec<IpAddr>,
}

fn strings<T: ToString>(v: &[T]) -> Item {
    value(v.iter().map(ToString::to_string).collect::<Array>())
}

fn table(entries: Vec<(&str, Item)>) -> Item {
    let mut t = Table::new();
    for (k, v) in entries {
        t.insert(k, v);
    }
    Item::Table(t)
}

fn implicit(t: &mut Item) {
    if let Some(t) = t.as_table_mut() {
        t.set_implicit(true);
    }
}

/// The gateway's configuration as `oxswan setup gateway` writes it.
fn gateway_config(
    name: &str,
    listen: &[IpAddr],
    pool: &str,
    pool6: Option<&str>,
    dns: &[IpAddr],
    legacy: bool,
) -> DocumentMut {
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix(format!(
        "# The oxswan gateway {name}, made by `oxswan setup gateway`.\n\
         # `oxswan client add NAME` adds a user (or with --cert a certificate client) and writes its\n\
         # profiles; `oxswan check-config` checks this file. Relative file names are taken from\n\
         # this file's directory.\n\n"
    ));
    doc.insert("daemon", table(vec![("listen", strings(listen)), ("tun", value("oxswan0"))]));

    let mut pools = Table::new();
    pools.set_implicit(true);
    let mut rw4 = vec![("addrs", value(pool))];
    if !dns.is_empty() {
        rw4.push(("dns", strings(dns)));
    }
    pools.insert("rw4", table(rw4));
    let mut pool_names = vec!["rw4"];
    if let Some(p6) = pool6 {
        pools.insert("rw6", table(vec![("addrs", value(p6))]));
        pool_names.push("rw6");
    }
    doc.insert("pools", Item::Table(pools));

    let mut local_ts = vec!["0.0.0.0/0"];
    if pool6.is_some() {
        local_ts.push("::/0");
    }
    let mut children = table(vec![(
        "net",
        table(vec![
            // Every packet of the clients goes through the tunnel.
            ("local_ts", strings(&local_ts)),
            ("remote_ts", strings(&["dynamic"])),
            ("esp_proposals", strings(&suites::gateway_esp(legacy))),
        ]),
    )]);
    implicit(&mut children);
    let conn = table(vec![
        ("pools", strings(&pool_names)),
        ("proposals", strings(&suites::gateway_ike(legacy))),
        // A user's phone and laptop at once: a new device's INITIAL_CONTACT does not end the other's
        // IKE SA (under `no` it would, RFC 7296 §2.4 taking it for the same device restarted).
        ("unique", value("never")),
        // So a client that went without a word is noticed, its SA and lease released.
        ("dpd_delay", value("30s")),
        (
            "local",
            table(vec![
                ("auth", value("pubkey")),
                ("id", value(name)),
                ("certs", strings(&["pki/server.crt"])),
                ("key", value("pki/private/server.key")),
            ]),
        ),
        (
            "remote",
            table(vec![
                ("auth", value("pubkey")),
                ("cacerts", strings(&["pki/ca.crt"])),
                ("crls", strings(&["pki/crl.pem"])),
            ]),
        ),
        ("children", children),
    ]);
    let mut connections = Table::new();
    connections.set_implicit(true);
    connections.insert(CERT_CONN, conn);
    doc.insert("connections", Item::Table(connections));
    doc
}

/// The EAP users' connection: the certificate clients' with EAP-MSCHAPv2 on the remote side.
fn add_eap_connection(doc: &mut DocumentMut) -> anyhow::Result<()> {
    let connections = doc.get_mut("connections").and_then(Item::as_table_mut).context("no [connections]")?;
    if connections.contains_key(EAP_CONN) {
        return Ok(());
    }
    let mut conn = connections.get(CERT_CONN).cloned().with_context(|| format!("no [connections.{CERT_CONN}]"))?;
    let remote = table(vec![("auth", value("eap-mschapv2")), ("eap_id", value("%any"))]);
    let t = conn.as_table_mut().context("connection is not a table")?;
    t.insert("remote", remote);
    // Written after everything else, not interleaved with the copied connection's tables.
    unplace(t);
    connections.insert(EAP_CONN, conn);
    Ok(())
}

/// Forgets where a table and its subtables were in the file they were read from.
fn unplace(t: &mut Table) {
    t.set_position(None);
    for (_, item) in t.iter_mut() {
        if let Some(sub) = item.as_table_mut() {
            unplace(sub);
        }
    }
}

/// The `[[secrets.eap]]` entries.
fn eap_secrets(doc: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    let secrets = doc.entry("secrets").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let secrets = secrets.as_table_mut().context("[secrets] is not a table")?;
    secrets
        .entry("eap")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .context("secrets.eap is not [[secrets.eap]]")
}

fn secret_of(doc: &DocumentMut, user: &str) -> Option<Zeroizing<String>> {
    let eap = doc.get("secrets")?.get("eap")?.as_array_of_tables()?;
    eap.iter()
        .find(|t| t.get("id").and_then(Item::as_str) == Some(user))
        .and_then(|t| t.get("secret")?.as_str().map(|s| Zeroizing::new(s.to_owned())))
}

fn users(doc: &DocumentMut) -> Vec<String> {
    let Some(eap) = doc.get("secrets").and_then(|s| s.get("eap")).and_then(Item::as_array_of_tables) else {
        return Vec::new();
    };
    eap.iter().filter_map(|t| t.get("id").and_then(Item::as_str).map(str::to_owned)).collect()
}

/// The gateway's directory, its configuration and what setup recorded.
struct Dir {
    root: PathBuf,
    pki: Layout,
}

impl Dir {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let root = std::path::absolute(dir).with_context(|| dir.display().to_string())?;
        Ok(Self { pki: Layout::new(&root), root })
    }
    fn config(&self) -> PathBuf {
        self.root.join(CONFIG)
    }

    /// Holds DIR/.lock until dropped: two `client` commands at once would each read the
    /// configuration and write it back without the other's change.
    fn lock(&self) -> anyhow::Result<std::fs::File> {
        let p = self.root.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .with_context(|| format!("{}: cannot open it (is this a gateway's directory?)", p.display()))?;
        f.lock().with_context(|| p.display().to_string())?;
        Ok(f)
    }
    fn client_dir(&self, name: &str) -> PathBuf {
        self.root.join("clients").join(name)
    }

    fn setup(&self) -> anyhow::Result<Setup> {
        let p = self.root.join(SETUP);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!("{}: cannot read it (make the gateway first: oxswan setup gateway)", p.display())
        })?;
        toml::from_str(&text).with_context(|| p.display().to_string())
    }

    fn read_config(&self) -> anyhow::Result<DocumentMut> {
        let p = self.config();
        // The users' passwords are in it.
        let text = Zeroizing::new(std::fs::read_to_string(&p).with_context(|| p.display().to_string())?);
        text.parse().with_context(|| p.display().to_string())
    }

    /// Replaces the configuration with `doc` once oxswan's loader accepts it (with the
    /// certificates, keys and secrets it names), so that a bad edit never reaches the daemon.
    fn write_config(&self, doc: &DocumentMut) -> anyhow::Result<()> {
        let path = self.config();
        let text = Zeroizing::new(doc.to_string());
        let c = oxswan_config::parse(&path, &text).context("the new configuration is refused")?;
        crate::peers::check(&c)?;
        pki::replace_private(&path, text.as_bytes())
    }

    /// The gateway as its profiles describe it: its name (the certificate clients' connection's
    /// local `id`) and IPv6 (a pool of IPv6 addresses) from the configuration `doc`.
    fn gateway(&self, doc: &DocumentMut) -> anyhow::Result<Gateway> {
        let setup = self.setup()?;
        let name = doc
            .get("connections")
            .and_then(|c| c.get(CERT_CONN))
            .and_then(|c| c.get("local"))
            .and_then(|l| l.get("id"))
            .and_then(Item::as_str)
            .with_context(|| format!("{}: no connections.{CERT_CONN}.local.id", self.config().display()))?
            .to_owned();
        let ipv6 = doc.get("pools").and_then(Item::as_table_like).is_some_and(|p| {
            p.iter().any(|(_, pool)| pool.get("addrs").and_then(Item::as_str).is_some_and(|a| a.contains(':')))
        });
        let ca_path = self.pki.ca_cert();
        let ca = std::fs::read(&ca_path).with_context(|| ca_path.display().to_string())?;
        let ca = oxswan_pki::describe(&ca).with_context(|| ca_path.display().to_string())?;
        Ok(Gateway { name, addresses: setup.addresses, ca_der: ca.der, ca_common_name: ca.common_name, ipv6 })
    }
}

pub fn setup(cmd: SetupCmd) -> anyhow::Result<()> {
    let SetupCmd::Gateway { name, addresses, pool, pool6, dns, allow_legacy, rsa, dir } = cmd;
    let d = Dir::new(&dir)?;
    oxswan_pki::check_server_name(&name).context("--name")?;
    for p in [d.config(), d.root.join(SETUP), d.root.join(UNIT)] {
        if std::fs::symlink_metadata(&p).is_ok() {
            bail!("{} exists already: this directory has a gateway (use another --dir, or remove it)", p.display());
        }
    }
    let listen = listen_addresses(&addresses)?;
    let doc = gateway_config(&name, &listen, &pool, pool6.as_deref(), &dns, allow_legacy);
    // The options checked as the configuration they make, before anything is written.
    oxswan_config::parse(&d.config(), &doc.to_string())
        .context("these options make a configuration that is refused")?;
    let kind = pki::kind(rsa);
    pki::init(&d.root, &format!("{name} CA"), kind)?;
    pki::server(&d.root, &name, &addresses, kind)?;

    let mut setup = DocumentMut::new();
    setup
        .decor_mut()
        .set_prefix("# The addresses `oxswan client add` gives Linux clients (the rest comes from oxswan.toml).\n");
    setup.insert("addresses", strings(&addresses));
    d.write_config(&doc)?;
    oxswan_pki::write_public(&d.root.join(SETUP), setup.to_string().as_bytes())?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let unit = d.root.join(UNIT);
    oxswan_pki::write_public(&unit, crate::systemd::unit(&exe, &d.config()).as_bytes())?;

    println!("gateway {name:?} in {}:", d.root.display());
    println!(
        "  {}: pools {pool}{}, proposals for Windows, Apple, Android and Linux clients{}",
        d.config().display(),
        pool6.as_deref().map(|p| format!(" and {p}")).unwrap_or_default(),
        if allow_legacy { " and Windows' MODP-1024 default" } else { "" }
    );
    println!("  {}: the CA clients must trust", d.pki.ca_cert().display());
    println!("  {}: a systemd unit running {}", unit.display(), exe.display());
    println!("next:");
    println!("  oxswan client add alice --dir {}        # a user with a password", d.root.display());
    println!("  oxswan client add bob --cert --dir {}   # a client with a certificate", d.root.display());
    println!("  oxswan daemon --config {}   # or under systemd:", d.config().display());
    println!("  cp {} /etc/systemd/system/ && systemctl enable --now oxswan", unit.display());
    println!(
        "  and let the clients' traffic out: sysctl -w net.ipv4.ip_forward=1, and masquerade {pool} on the uplink"
    );
    Ok(())
}

/// The addresses the daemon binds: those of `addresses` that are this host's, else (a gateway
/// behind a NAT, as a cloud VM whose public address is not its own) the one the default route
/// leaves from.
fn listen_addresses(addresses: &[IpAddr]) -> anyhow::Result<Vec<IpAddr>> {
    let local: Vec<IpAddr> = addresses.iter().copied().filter(|a| std::net::UdpSocket::bind((*a, 0)).is_ok()).collect();
    if !local.is_empty() {
        return Ok(local);
    }
    // A UDP connect sends nothing: it only looks the route up.
    let source = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((std::net::Ipv4Addr::new(1, 1, 1, 1), 53)).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|a| !a.is_unspecified());
    match source {
        Some(a) => {
            println!("listening on {a}, the address the default route leaves from (no --address is this host's)");
            Ok(vec![a])
        }
        None => bail!("no address to listen on: give --address with an address of this host"),
    }
}

/// Where the running daemon listens: `--socket` if given, else the configuration's.
fn daemon_socket(d: &Dir, socket: Option<&Path>) -> PathBuf {
    socket.map(Path::to_path_buf).unwrap_or_else(|| {
        oxswan_config::load(&d.config()).map_or_else(|_| PathBuf::from("/run/oxswan/oxswan.sock"), |c| c.daemon.socket)
    })
}

/// Tells a running daemon to read its configuration again, and to end the IKE SAs of the
/// identities in `terminate`.
fn tell_daemon(d: &Dir, socket: Option<&Path>, terminate: &[String]) -> anyhow::Result<()> {
    let socket = daemon_socket(d, socket);
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(_) => {}
        // Nobody listens there: the daemon reads the files when it starts.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            println!("no daemon answers on {}: the change applies when it starts", socket.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot reach the daemon on {}", socket.display())),
    }
    match control::call(&socket, &Request::Reload, Duration::from_secs(10))? {
        Response::Ok { message } => println!("daemon: {message}"),
        Response::Error { message } => bail!("the daemon did not reload: {message}"),
        Response::Status { .. } => {}
    }
    if !terminate.is_empty() {
        let r =
            control::call(&socket, &Request::Terminate { identities: terminate.to_vec() }, Duration::from_secs(10))?;
        match r {
            Response::Ok { message } => println!("daemon: {message}"),
            Response::Error { message } => bail!("the daemon did not end the client's SAs: {message}"),
            Response::Status { .. } => {}
        }
    }
    Ok(())
}

/// A client's name: it becomes file names, an identity, and text in the profiles (a PowerShell
/// script among them), so only letters, digits and `. _ @ + -` from ASCII, up to 64, not starting
/// with a dot or a hyphen: `alice`, `alice@example.com`, `bob-laptop`.
fn client_name(name: &str) -> anyhow::Result<&str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
    if name.is_empty() || name.len() > 64 || name.starts_with(['.', '-']) || !name.chars().all(ok) {
        bail!(
            "{name:?}: a client's name is 1 to 64 of the letters and digits of ASCII and `. _ @ + -`, \
             not starting with `.` or `-` (e.g. alice, alice@example.com)"
        );
    }
    Ok(name)
}

/// The password from standard input's first line (a terminal echoes it: pipe it in).
fn read_password() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line).context("--password-stdin: cannot read standard input")?;
    Ok(Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned()))
}

/// A password as a user gives it: something to type, which EAP-MSCHAPv2 can carry (RFC 2759 §8:
/// up to 256 characters).
fn check_password(pw: &str) -> anyhow::Result<()> {
    if pw.is_empty() || pw.chars().count() > 256 || pw.chars().any(char::is_control) {
        bail!("--password: 1 to 256 characters, no control characters");
    }
    Ok(())
}

pub fn client(cmd: ClientCmd, socket: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        ClientCmd::Add { name, password, password_stdin, cert, rsa, on_demand, dir } => {
            let d = Dir::new(&dir)?;
            client_name(&name)?;
            let _lock = d.lock()?;
            let mut doc = d.read_config()?;
            let gateway = d.gateway(&doc)?;
            if users(&doc).contains(&name) || std::fs::symlink_metadata(d.pki.client_cert(&name)).is_ok() {
                bail!("{name:?} is a client already (oxswan client remove {name} first)");
            }
            if std::fs::symlink_metadata(d.client_dir(&name)).is_ok() {
                bail!("{} exists already: remove it first", d.client_dir(&name).display());
            }
            let client = if cert {
                let issued = pki::client(&d.root, &name, pki::kind(rsa))?;
                let kind = if rsa { KeyKind::Rsa3072 } else { KeyKind::EcdsaP256 };
                certificate_client(&gateway, &name, &issued.cert_der, &issued.key_pem, kind)?
            } else {
                let (password, made) = match (password, password_stdin) {
                    (Some(p), _) => (Zeroizing::new(p), false),
                    (None, true) => (read_password()?, false),
                    (None, false) => (oxswan_profile::generate_password(20)?, true),
                };
                check_password(&password)?;
                add_eap_connection(&mut doc)?;
                let mut entry = Table::new();
                entry.insert("id", value(name.as_str()));
                entry.insert("secret", value(password.as_str()));
                eap_secrets(&mut doc)?.push(entry);
                d.write_config(&doc)?;
                if made {
                    println!("password of {name:?}: {}", password.as_str());
                }
                Client { name: name.clone(), credential: Credential::Password { user: name.clone(), password } }
            };
            write_profiles(&d, &gateway, &client, on_demand)?;
            tell_daemon(&d, socket, &[])
        }
        ClientCmd::Remove { name, dir } => {
            let d = Dir::new(&dir)?;
            d.setup()?;
            let _lock = d.lock()?;
            client_name(&name)?;
            let mut doc = d.read_config()?;
            let is_user = users(&doc).contains(&name);
            let cert_path = d.pki.client_cert(&name);
            let key_path = d.pki.client_key(&name);
            let profiles = d.client_dir(&name);
            let there = |p: &Path| std::fs::symlink_metadata(p).is_ok();
            let has_cert = there(&cert_path);
            // What an earlier removal that stopped half-way left is removed too.
            if !is_user && !has_cert && !there(&key_path) && !there(&profiles) {
                bail!("no client {name:?} in {}", d.root.display());
            }
            if is_user {
                let eap = eap_secrets(&mut doc)?;
                eap.retain(|t| t.get("id").and_then(Item::as_str) != Some(name.as_str()));
                if eap.is_empty() {
                    // A password connection without passwords is refused (and has no use).
                    if let Some(c) = doc.get_mut("connections").and_then(Item::as_table_mut) {
                        c.remove(EAP_CONN);
                    }
                    if let Some(s) = doc.get_mut("secrets").and_then(Item::as_table_mut) {
                        s.remove("eap");
                    }
                }
                d.write_config(&doc)?;
                println!("removed the user {name:?}");
            }
            // Its IKE SAs go by its name (an EAP identity, a certificate's subjectAltName) or by
            // its certificate's subject, which Windows sends as its identity.
            let mut identities = vec![name.clone()];
            if has_cert {
                let cert = std::fs::read(&cert_path).with_context(|| cert_path.display().to_string())?;
                let cn = oxswan_pki::describe(&cert).with_context(|| cert_path.display().to_string())?.common_name;
                identities.push(format!("CN={cn}"));
                let serial = pki::revoke(&d.root, &name)?;
                // The certificate is kept (as revoked/NAME-SERIAL.crt) and its key deleted, so the
                // name can be given to a new client.
                pki::move_aside(&cert_path, &d.pki.revoked_cert(&name, &serial))?;
            }
            // The rest goes whatever fails on the way, and the daemon is told in any case: the
            // failures are reported together at the end.
            let mut failed = Vec::new();
            for (what, gone) in [
                (key_path.clone(), std::fs::remove_file(&key_path)),
                (profiles.clone(), std::fs::remove_dir_all(&profiles)),
            ] {
                match gone {
                    Ok(()) => println!("removed {}", what.display()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => failed.push(format!("{}: {e}", what.display())),
                }
            }
            if let Err(e) = tell_daemon(&d, socket, &identities) {
                failed.push(format!("{e:#}"));
            }
            if !failed.is_empty() {
                bail!("{name:?} is revoked or deleted in the configuration, but: {}", failed.join("; "));
            }
            Ok(())
        }
        ClientCmd::List { dir } => {
            let d = Dir::new(&dir)?;
            let doc = d.read_config()?;
            let mut rows: Vec<(String, &str)> = users(&doc).into_iter().map(|u| (u, "password")).collect();
            if let Ok(entries) = std::fs::read_dir(d.pki.clients_dir()) {
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().into_owned();
                    if let Some(n) = file.strip_suffix(".crt") {
                        rows.push((n.to_owned(), "certificate"));
                    }
                }
            }
            rows.sort();
            if rows.is_empty() {
                println!("no clients (oxswan client add NAME --dir {})", d.root.display());
            }
            for (n, kind) in &rows {
                let profiles = d.client_dir(n);
                let has = if profiles.is_dir() { profiles.display().to_string() } else { "no profiles".into() };
                println!("{n}\t{kind}\t{has}");
            }
            let revoked = pki::revoked_serials(&d.root)?.len();
            if revoked > 0 {
                println!("({revoked} revoked certificate(s) in {})", d.pki.revoked().display());
            }
            Ok(())
        }
        ClientCmd::Export { name, qr, on_demand, dir } => {
            let d = Dir::new(&dir)?;
            client_name(&name)?;
            let doc = d.read_config()?;
            let gateway = d.gateway(&doc)?;
            let client = if let Some(password) = secret_of(&doc, &name) {
                Client { name: name.clone(), credential: Credential::Password { user: name.clone(), password } }
            } else {
                let (cp, kp) = (d.pki.client_cert(&name), d.pki.client_key(&name));
                let cert = std::fs::read(&cp).with_context(|| format!("{}: no client {name:?}", cp.display()))?;
                let described = oxswan_pki::describe(&cert).with_context(|| cp.display().to_string())?;
                let key = Zeroizing::new(std::fs::read_to_string(&kp).with_context(|| kp.display().to_string())?);
                let kind = described.kind.unwrap_or_default();
                certificate_client(&gateway, &name, &described.der, &key, kind)?
            };
            if qr {
                let text = oxswan_profile::sswan(&gateway, &client)?;
                let code = qrcode::QrCode::new(text.as_bytes())
                    .map_err(|e| anyhow::anyhow!("{name}.sswan does not fit a QR code ({e}): send the file instead"))?;
                println!("{}", code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
                return Ok(());
            }
            write_profiles(&d, &gateway, &client, on_demand)
        }
    }
}

/// A certificate client with a PKCS#12 bundle of `cert` and `key_pem` under a new password.
fn certificate_client(
    gateway: &Gateway,
    name: &str,
    cert: &[u8],
    key_pem: &str,
    kind: KeyKind,
) -> anyhow::Result<Client> {
    let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{name}'s key is not PKCS#8 PEM: {e}"))?;
    let p12_password = oxswan_profile::generate_password(20)?;
    // The legacy protection: what iOS, macOS and Android import (OpenSSL 3 needs -legacy).
    let p12 =
        oxswan_profile::pkcs12(cert, key.secret_pkcs8_der(), &gateway.ca_der, name, &p12_password, Pkcs12Kind::Legacy)?;
    let kind = match kind {
        KeyKind::Rsa3072 => CertKind::Rsa,
        KeyKind::EcdsaP256 => CertKind::EcdsaP256,
    };
    println!("password of {name}.p12: {}", p12_password.as_str());
    Ok(Client {
        name: name.to_owned(),
        credential: Credential::Certificate { id: name.to_owned(), kind, p12, p12_password },
    })
}

/// The client's profiles into DIR/clients/NAME/ (0700, files 0600).
fn write_profiles(d: &Dir, gateway: &Gateway, client: &Client, on_demand: bool) -> anyhow::Result<()> {
    let name = &client.name;
    let dir = d.client_dir(name);
    let mut files: Vec<(String, Zeroizing<Vec<u8>>)> = vec![
        (format!("{name}.mobileconfig"), Zeroizing::new(oxswan_profile::mobileconfig(gateway, client, on_demand)?)),
        (format!("{name}.sswan"), Zeroizing::new(oxswan_profile::sswan(gateway, client)?.into_bytes())),
        (format!("{name}.ps1"), Zeroizing::new(oxswan_profile::powershell(gateway, client).into_bytes())),
    ];
    // `ca.pem`, not `.crt`: no client's certificate (NAME.crt) can take its name.
    let mut linux = LinuxFiles { ca: "ca.pem".into(), cert_and_key: None };
    if let Credential::Certificate { p12, .. } = &client.credential {
        files.push((format!("{name}.p12"), Zeroizing::new(p12.clone())));
        let cert =
            std::fs::read(d.pki.client_cert(name)).with_context(|| d.pki.client_cert(name).display().to_string())?;
        let key =
            std::fs::read(d.pki.client_key(name)).with_context(|| d.pki.client_key(name).display().to_string())?;
        files.push((format!("{name}.crt"), Zeroizing::new(cert)));
        files.push((format!("{name}.key"), Zeroizing::new(key)));
        linux.cert_and_key = Some((format!("{name}.crt"), format!("{name}.key")));
    }
    match oxswan_profile::oxswan_toml(gateway, client, &linux) {
        Ok(toml) => {
            let ca = std::fs::read(d.pki.ca_cert()).with_context(|| d.pki.ca_cert().display().to_string())?;
            files.push(("ca.pem".into(), Zeroizing::new(ca)));
            files.push((format!("{name}.toml"), Zeroizing::new(toml.into_bytes())));
        }
        Err(e @ oxswan_profile::ProfileError::NoAddress(_)) => println!("no Linux profile: {e}"),
        Err(e) => return Err(e.into()),
    }
    // Made whole beside the client's directory, then put in its place: a failure on the way leaves
    // no half set of profiles (and no name a client can have: names do not start with a dot).
    let new = d.root.join("clients").join(format!(".{name}.new"));
    let _ = std::fs::remove_dir_all(&new);
    let written = files.iter().try_for_each(|(file, data)| oxswan_pki::write_private(&new.join(file), data));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e.into());
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}: cannot replace it", dir.display())),
    }
    std::fs::rename(&new, &dir).with_context(|| format!("{} to {}", new.display(), dir.display()))?;
    println!("profiles of {name:?} in {}:", dir.display());
    for (file, _) in &files {
        println!("  {file}");
    }
    Ok(())
}
