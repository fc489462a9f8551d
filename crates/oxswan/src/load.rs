//! `oxswan load`: the load tester's command line (the work is in oxswan-load).

use std::io::{IsTerminal as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use oxswan_crypto::Secret;
use oxswan_ike::cert::{LocalCert, TrustStore, parse_certificates};
use oxswan_load::{Auth, GatewayAuth, Plan, Progress, parse_sources, parse_target};
use zeroize::Zeroizing;

/// How the clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthKind {
    /// A pre-shared key (--psk-file or OXSWAN_LOAD_PSK); the gateway is checked by it too, unless --ca.
    Psk,
    /// One certificate and key for every client (--cert, --key); the gateway by --ca.
    Cert,
    /// EAP-MSCHAPv2 (or MD5) as --eap-user with the password of --eap-password-file or
    /// OXSWAN_LOAD_EAP_PASSWORD; the gateway by --ca.
    Eap,
}

/// Establish many IKEv2 clients against a gateway: N clients with at most K handshakes in flight,
/// from a range of source addresses; a live progress line on stderr and a final table (rate,
/// setup-time percentiles, failures by reason), or --json. It sends to the TARGETs and nowhere else
/// (no MOBIKE; any other destination is refused and counted) and stops by itself: after the last
/// client, --hold, and the deletes, or at --max-time. Each client has its own identity (--id, where
/// {n} is the client's number) and, with EAP, its own user (--eap-user). With --ping ADDR each
/// client also proves its tunnel carries traffic: it sends ICMP echo requests to ADDR through its
/// CHILD SA, sealed in ESP in UDP by the load tool itself, and checks the replies.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The gateway(s): ADDR or ADDR:PORT (default port 500); clients take them in turn.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// How many clients in all.
    #[arg(short = 'n', long, default_value_t = 100)]
    clients: usize,
    /// How many handshakes at most in flight at once.
    #[arg(short = 'k', long, default_value_t = 8)]
    in_flight: usize,
    /// Source addresses (this host's): ADDR, FIRST-LAST or NET/LEN; repeatable. Default: the
    /// address the kernel's routes pick for the first target.
    #[arg(long = "source", value_name = "RANGE")]
    sources: Vec<String>,
    /// How the clients authenticate.
    #[arg(long, value_enum, default_value_t = AuthKind::Psk)]
    auth: AuthKind,
    /// A file holding the pre-shared key (its first line); or set OXSWAN_LOAD_PSK.
    #[arg(long, value_name = "FILE")]
    psk_file: Option<PathBuf>,
    /// The clients' certificate (PEM, with any intermediates after it).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The clients' private key (PKCS#8, PEM or DER).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// CA certificate(s) (PEM) the gateway's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The EAP user of client {n}.
    #[arg(long, default_value = "load{n}")]
    eap_user: String,
    /// A file holding every EAP user's password (its first line); or set OXSWAN_LOAD_EAP_PASSWORD.
    #[arg(long, value_name = "FILE")]
    eap_password_file: Option<PathBuf>,
    /// Client {n}'s IKE identity (strongSwan's rules: an address, @fqdn, user@fqdn, a DN with =).
    /// Default: load{n}.oxswan.test, or with --auth cert the certificate's subject.
    #[arg(long, value_name = "PATTERN")]
    id: Option<String>,
    /// The identity the gateway must prove.
    #[arg(long, value_name = "ID")]
    remote_id: Option<String>,
    /// IKE proposals, strongSwan's notation.
    #[arg(long, default_value = "aes256gcm16-prfsha256-x25519")]
    ike: String,
    /// ESP proposals.
    #[arg(long, default_value = "aes256gcm16")]
    esp: String,
    /// The gateway's side of the CHILD SA (repeatable); ours is our address or virtual IP.
    #[arg(long = "remote-ts", value_name = "CIDR", default_value = "0.0.0.0/0")]
    remote_ts: Vec<String>,
    /// Do not ask for a virtual IP (site-to-site style clients).
    #[arg(long)]
    no_vip: bool,
    /// Seconds a handshake may take before it counts as failed.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// At most this many new handshakes per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to keep every client up after the last handshake.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Leave the clients' IKE SAs on the gateway at the end (no DELETE).
    #[arg(long)]
    no_delete: bool,
    /// Driver threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The run ends after this many seconds, whatever is left.
    #[arg(long, default_value_t = 600.0)]
    max_time: f64,
    /// Once its CHILD SA is up, each client pings this IPv4 address through it, from its virtual
    /// IP (with --no-vip, its own address): ICMP echo requests sealed as ESP in UDP to the
    /// gateway's port 4500 (the clients force UDP encapsulation), the replies opened and checked.
    /// A client counts as pinged when a reply came; the exit status is non-zero when an
    /// established client had none. The deletes wait for the pings.
    #[arg(long, value_name = "ADDR")]
    ping: Option<Ipv4Addr>,
    /// Echo requests per client with --ping, 200 ms apart; replies are waited for 3 s after the last.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "ping")]
    pings: u16,
    /// Print the final report as JSON on stdout (the progress line stays on stderr).
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{what}: {s} is not a number of seconds"))
}

/// The first line of `file`, or the variable `env`: a secret, never from the command line.
fn secret(file: Option<&Path>, env: &str, what: &str) -> anyhow::Result<Secret> {
    let text = match file {
        Some(f) => Zeroizing::new(std::fs::read_to_string(f).with_context(|| format!("{what}: {}", f.display()))?),
        None => Zeroizing::new(std::env::var(env).map_err(|_| anyhow::anyhow!("{what}: give a file or set {env}"))?),
    };
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        bail!("{what}: empty");
    }
    Ok(Secret::from_slice(line.as_bytes()))
}

fn plan(a: &LoadArgs) -> anyhow::Result<Plan> {
    let targets = a.targets.iter().map(|t| parse_target(t)).collect::<Result<Vec<_>, _>>()?;
    let mut sources: Vec<IpAddr> = Vec::new();
    for s in &a.sources {
        sources.extend(parse_sources(s)?);
    }
    if sources.is_empty() {
        let first = targets.first().map(|t| t.ip()).context("no target")?;
        sources.push(
            crate::daemon::route_source(first)
                .with_context(|| format!("no route to {first}: name a --source address"))?,
        );
    }
    let trust = match &a.ca {
        Some(f) => {
            let pem = std::fs::read(f).with_context(|| format!("--ca {}", f.display()))?;
            let cas = parse_certificates(&pem).with_context(|| format!("--ca {}", f.display()))?;
            Some(TrustStore::new(&cas).with_context(|| format!("--ca {}", f.display()))?)
        }
        None => None,
    };
    let mut default_id = None;
    let (auth, gateway) = match a.auth {
        AuthKind::Psk => {
            let k = secret(a.psk_file.as_deref(), "OXSWAN_LOAD_PSK", "--psk-file")?;
            let gw = trust.map_or_else(|| GatewayAuth::Psk(k.clone()), GatewayAuth::Cert);
            (Auth::Psk(k), gw)
        }
        AuthKind::Cert => {
            let (Some(cert), Some(key)) = (&a.cert, &a.key) else { bail!("--auth cert needs --cert and --key") };
            let chain = parse_certificates(&std::fs::read(cert).with_context(|| format!("--cert {}", cert.display()))?)
                .with_context(|| format!("--cert {}", cert.display()))?;
            let key_der = std::fs::read(key)
                .map_err(anyhow::Error::from)
                .and_then(|b| crate::peers::private_key(&b))
                .with_context(|| format!("--key {}", key.display()))?;
            let local = LocalCert::new(&oxswan_crypto::default_provider(), chain, &key_der)
                .with_context(|| format!("--cert {} with --key {}", cert.display(), key.display()))?;
            default_id = Some(oxswan_ike::cert::identity_string(&local.subject_identity()?));
            let gw = GatewayAuth::Cert(trust.context("--auth cert needs --ca (the gateway's CA)")?);
            (Auth::Cert(Arc::new(local)), gw)
        }
        AuthKind::Eap => {
            let pw = secret(a.eap_password_file.as_deref(), "OXSWAN_LOAD_EAP_PASSWORD", "--eap-password-file")?;
            let gw = GatewayAuth::Cert(trust.context("--auth eap needs --ca (the gateway's CA)")?);
            (Auth::Eap { user: a.eap_user.clone(), password: pw }, gw)
        }
    };
    let mut p = Plan::new(targets, sources, auth, gateway);
    p.clients = a.clients;
    p.in_flight = a.in_flight;
    if let Some(id) = a.id.clone().or(default_id) {
        p.identity = id;
    }
    p.remote_id = match &a.remote_id {
        Some(r) => oxswan_config::parse_identity(r).map_err(|e| anyhow::anyhow!("--remote-id: {e}"))?,
        None => None,
    };
    p.ike_proposals = oxswan_crypto::proposal::parse_ike_proposals(&a.ike).context("--ike")?;
    p.esp_proposals = oxswan_crypto::proposal::parse_esp_proposals(&a.esp).context("--esp")?;
    p.remote_ts = a
        .remote_ts
        .iter()
        .map(|t| match oxswan_config::parse_ts(t) {
            Ok(oxswan_ike::child::TsConfig::Selector(s)) => Ok(s),
            Ok(oxswan_ike::child::TsConfig::Dynamic) => bail!("--remote-ts {t}: the gateway's side is a subnet"),
            Err(e) => bail!("--remote-ts {t}: {e}"),
        })
        .collect::<Result<_, _>>()?;
    p.virtual_ip = !a.no_vip;
    p.timeout = seconds("timeout", a.timeout)?;
    p.rate = a.rate;
    p.hold = seconds("hold", a.hold)?;
    p.delete = !a.no_delete;
    p.threads = a.threads;
    p.max_time = seconds("max-time", a.max_time)?;
    p.ping = a.ping;
    p.pings = a.pings;
    p.check()?;
    Ok(p)
}

/// Runs the load test; the exit status is non-zero when any handshake failed, or with --ping when
/// an established client had no echo reply.
pub fn run(a: &LoadArgs) -> anyhow::Result<bool> {
    let p = plan(a)?;
    let stop = Arc::new(AtomicBool::new(false));
    // Ctrl-C or SIGTERM: no more clients start; those up are deleted, and the report printed. A
    // second one ends the process at once (the first set `stop`).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone()).context("signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("signal handler")?;
    }
    let tty = std::io::stderr().is_terminal();
    let quiet = a.quiet;
    let total = p.clients;
    let pinging = p.ping.is_some();
    let mut last = (Duration::ZERO, 0u64);
    let report = oxswan_load::run(&p, &stop, Duration::from_secs(1), |pr: &Progress, at: Duration| {
        if quiet {
            return;
        }
        let up = pr.established.load(Ordering::Relaxed);
        let dt = at.saturating_sub(last.0).as_secs_f64();
        let now_rate = if dt > 0.0 { up.saturating_sub(last.1) as f64 / dt } else { 0.0 };
        last = (at, up);
        let pinged = if pinging { format!(", {} pinged", pr.pinged.load(Ordering::Relaxed)) } else { String::new() };
        let line = format!(
            "{:>7.1}s  {up}/{total} established, {} failed, {} in flight, {} up{pinged}, {now_rate:.0}/s",
            at.as_secs_f64(),
            pr.failed.load(Ordering::Relaxed),
            pr.in_flight(),
            pr.up.load(Ordering::Relaxed),
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty { write!(err, "\r\x1b[K{line}") } else { writeln!(err, "{line}") };
    })?;
    if tty && !quiet {
        eprintln!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    let pings_ok = report.pinged.is_none_or(|n| n == report.established);
    Ok(report.failed == 0 && report.established > 0 && pings_ok)
}
