//! `oxswan`: the IKEv2/IPsec daemon and its command line.
#![forbid(unsafe_code)]

mod access;
mod cluster;
mod control;
mod daemon;
mod datapath;
mod dataplane;
mod early;
mod input;
mod load;
mod manual;
mod metrics;
mod peers;
mod pki;
mod privileges;
mod radius;
mod setup;
mod streams;
mod systemd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::control::{RekeyWhat, Request, Response};

/// An IKEv2/IPsec VPN: the daemon and the commands that drive it.
///
/// `oxswan daemon` runs the IKEv2 engine and the ESP data plane in user space, through a TUN
/// device; `up`, `down`, `rekey`, `redirect`, `status` and `reload` talk to it over its control socket
/// (--socket). `check-config`, `pki`, `completions`, `man` and `systemd-unit` work without it.
#[derive(Debug, Parser)]
#[command(name = "oxswan", version)]
struct Cli {
    /// The daemon's control socket (one daemon per socket; [daemon] socket in its configuration).
    #[arg(long, global = true, env = "OXSWAN_SOCKET", default_value = "/run/oxswan/oxswan.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the daemon in the foreground; logs go to stderr (to the journal under systemd). Levels
    /// per subsystem (daemon, ike, dataplane, io, route, config) come from [daemon] log, or
    /// RUST_LOG, e.g. "info,dataplane=debug". SIGHUP reloads the configuration; SIGTERM deletes
    /// every SA and exits.
    Daemon {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Bring a connection up and wait for its CHILD SA; exits non-zero with the reason if it fails.
    Up {
        /// The connection's name.
        name: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Delete a connection's IKE SA and its CHILD SAs.
    Down {
        /// The connection's name.
        name: String,
    },
    /// Replace a connection's CHILD SAs now (make before break, no packet lost), or with --ike its
    /// IKE SA, or with --reauth authenticate again; returns once the exchanges have started.
    Rekey {
        /// The connection's name.
        name: String,
        /// Rekey the IKE SA instead (new SPIs and keys; the CHILD SAs move to it).
        #[arg(long, conflicts_with = "reauth")]
        ike: bool,
        /// Reauthenticate: a new IKE SA from IKE_SA_INIT on, then the old one is deleted.
        #[arg(long)]
        reauth: bool,
    },
    /// Send established clients to another gateway (RFC 5685, as `swanctl --redirect`): those of
    /// the connection NAME, or with --peer-id only those peers. Each client that announced
    /// redirect support sets its IKE SA up at the gateway and then deletes the one here; the others
    /// stay. Returns once the redirects are sent; the log has each client's answer.
    Redirect {
        /// The connection whose clients go (all of them, unless --peer-id names some).
        #[arg(required_unless_present = "peer_ids")]
        name: Option<String>,
        /// Only the client with this identity (its IKE or EAP identity, as status shows it); may be
        /// given more than once.
        #[arg(long = "peer-id", value_name = "ID")]
        peer_ids: Vec<String>,
        /// Where they go: an IP address or a domain name.
        #[arg(long, value_name = "ADDRESS")]
        gateway: String,
    },
    /// Show the IKE and CHILD SAs with their traffic counters.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read the configuration file again: new SAs use it, established ones keep theirs; a file
    /// with an error changes nothing.
    Reload,
    /// Check a configuration file and exit.
    CheckConfig {
        /// The configuration file.
        config: PathBuf,
    },
    /// The gateway's certificates: a CA, the gateway's certificate and the clients', fit for the
    /// IKEv2 clients of Windows, Apple and Android (ECDSA P-256, or RSA-3072 with --rsa).
    #[command(subcommand)]
    Pki(pki::PkiCmd),
    /// Make a road-warrior gateway in one command: its configuration, PKI and systemd unit.
    #[command(subcommand)]
    Setup(setup::SetupCmd),
    /// The gateway's clients: add one (with profiles for iOS/macOS, Android, Windows and Linux),
    /// remove one (revoked and cut off), list them, export their profiles again.
    #[command(subcommand)]
    Client(setup::ClientCmd),
    /// Convert a strongSwan swanctl.conf (with its includes) into oxswan's TOML, written to standard
    /// output. Certificates and keys are found as swanctl finds them (x509/, x509ca/, x509crl/,
    /// private/, rsa/, ecdsa/, pkcs8/ beside the file) and written as absolute paths; every setting
    /// not carried over is named on standard error as FILE:LINE and in comments at the top. Exits
    /// non-zero only when the file cannot be read or parsed.
    ImportSwanctl {
        /// The swanctl.conf, e.g. /etc/swanctl/swanctl.conf.
        file: PathBuf,
    },
    /// Establish many clients against a gateway and measure it (a load tester; see --help).
    Load(Box<load::LoadArgs>),
    /// Print a shell completion script, e.g. `oxswan completions bash >
    /// /etc/bash_completion.d/oxswan`; made from this command line, so it offers every command.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, oxswan(8), or write it into a directory with --dir.
    Man {
        /// Write DIR/oxswan.8 instead, e.g. /usr/local/share/man/man8.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print a systemd unit (oxswan.service) that runs this binary's daemon with the configuration:
    /// Type=notify with the watchdog, reload on SIGHUP, and only the capabilities the daemon keeps.
    SystemdUnit {
        /// The configuration file the unit's daemon reads.
        #[arg(long, default_value = "/etc/oxswan/oxswan.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon sets up logging once it has read its configuration.
    if !matches!(cli.command, Cmd::Daemon { .. }) {
        let _ = init_logging(None);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oxswan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at the levels of `RUST_LOG`, else `configured`, else info. When stderr is the
/// journal's (systemd.exec(5), `JOURNAL_STREAM`), the lines go to journald's native socket with
/// their fields as journal fields (`OXSWAN_CONN=site`) or, if that socket cannot be reached, to
/// stderr without timestamps (journald stamps each line) and with the priority as a `<N>` prefix
/// (sd-daemon(3)).
pub(crate) fn init_logging(configured: Option<&str>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&env).with_context(|| format!("RUST_LOG={env:?}"))?
        }
        _ => {
            let c = configured.unwrap_or("info");
            tracing_subscriber::EnvFilter::try_new(c).with_context(|| format!("[daemon] log = {c:?}"))?
        }
    };
    let failed = |e| anyhow::anyhow!("logging: {e}");
    if !systemd::stderr_is_journal() {
        return tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .try_init()
            .map_err(failed);
    }
    match tracing_journald::layer() {
        Ok(journal) => {
            let journal =
                journal.with_field_prefix(Some("OXSWAN".into())).with_priority_mappings(systemd::journal_priorities());
            tracing_subscriber::registry().with(filter).with(journal).try_init().map_err(|e| failed(e.into()))
        }
        Err(_) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(systemd::PriorityPrefix(tracing_subscriber::fmt::format().without_time().with_level(false)))
            .with_env_filter(filter)
            .try_init()
            .map_err(failed),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let socket_given = std::env::args().any(|a| a == "--socket" || a.starts_with("--socket="))
        || std::env::var_os("OXSWAN_SOCKET").is_some();
    match cli.command {
        Cmd::Daemon { config } => {
            daemon::run(&config, socket_given.then_some(cli.socket.as_path()))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pki(cmd) => {
            pki::run(cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Setup(cmd) => {
            setup::setup(cmd)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Client(cmd) => {
            setup::client(cmd, socket_given.then_some(cli.socket.as_path()))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ImportSwanctl { file } => {
            let import = oxswan_swanctl::import(&file)?;
            print!("{}", import.toml);
            for n in &import.notes {
                eprintln!("{n}");
            }
            // What the loader says of the result (the files it names are checked by check-config).
            if let Err(e) = oxswan_config::parse(std::path::Path::new("(converted)"), &import.toml) {
                eprintln!("oxswan: warning: the converted configuration does not load yet: {e}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Load(args) => Ok(if load::run(&args)? { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Cmd::Completions { shell } => {
            std::io::Write::write_all(&mut std::io::stdout(), &manual::completions(shell, &mut Cli::command()))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { dir } => {
            let page = manual::page(Cli::command())?;
            match dir {
                Some(dir) => {
                    let path = dir.join(manual::file_name());
                    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
                    println!("{}", path.display());
                }
                None => print!("{page}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::SystemdUnit { config } => {
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let config = std::path::absolute(&config).with_context(|| format!("{}", config.display()))?;
            print!("{}", systemd::unit(&exe, &config));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { config } => {
            let c = oxswan_config::load(&config)?;
            // What the daemon would build from it: certificates, keys and secrets are read too,
            // and the addresses it would listen on found.
            peers::check(&c)?;
            daemon::listen_addresses(&c, &config)?;
            println!("{}: {} connection(s), OK", config.display(), c.connections.len());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Up { name, timeout } => {
            let r = control::call(&cli.socket, &Request::Up { name }, Duration::from_secs(timeout))?;
            Ok(report(&r))
        }
        Cmd::Reload => {
            let r = control::call(&cli.socket, &Request::Reload, Duration::from_secs(10))?;
            Ok(report(&r))
        }
        Cmd::Down { name } => {
            let r = control::call(&cli.socket, &Request::Down { name }, Duration::from_secs(10))?;
            Ok(report(&r))
        }
        Cmd::Redirect { name, peer_ids, gateway } => {
            // Checked here for a prompt answer, and again by the daemon.
            oxswan_ike::Gateway::parse(&gateway).with_context(|| format!("--gateway {gateway:?}"))?;
            let req = Request::Redirect { name, identities: peer_ids, gateway };
            let r = control::call(&cli.socket, &req, Duration::from_secs(10))?;
            Ok(report(&r))
        }
        Cmd::Rekey { name, ike, reauth } => {
            let what = match (ike, reauth) {
                (true, _) => RekeyWhat::Ike,
                (false, true) => RekeyWhat::Reauth,
                (false, false) => RekeyWhat::Children,
            };
            let r = control::call(&cli.socket, &Request::Rekey { name, what }, Duration::from_secs(10))?;
            Ok(report(&r))
        }
        Cmd::Status { json } => {
            let r = control::call(&cli.socket, &Request::Status, Duration::from_secs(10))?;
            match (&r, json) {
                (Response::Status { .. }, true) => println!("{}", serde_json::to_string_pretty(&r)?),
                (Response::Status { ike_sas, engine, cluster, .. }, false) => {
                    print_status(ike_sas);
                    if let Some(c) = cluster {
                        print_cluster(c);
                    }
                    let e = engine;
                    println!(
                        "engine: {} half-open{}; dropped {} ({} malformed, {} for unknown SPIs, {} failing integrity), cookies sent {}, refused for load {}, INVALID_IKE_SPI sent {}, retransmissions answered {}, redirects sent {}",
                        e.half_open,
                        if e.cookies { ", demanding cookies" } else { "" },
                        e.dropped,
                        e.dropped_malformed,
                        e.dropped_unknown_spi,
                        e.dropped_unauthenticated,
                        e.cookies_sent,
                        e.half_open_refused,
                        e.invalid_spi_sent,
                        e.retransmits_answered,
                        e.redirects_sent
                    );
                }
                _ => return Ok(report(&r)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(r: &Response) -> ExitCode {
    match r {
        Response::Ok { message } => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Response::Error { message } => {
            eprintln!("oxswan: {message}");
            ExitCode::FAILURE
        }
        Response::Status { .. } => ExitCode::SUCCESS,
    }
}

fn print_cluster(c: &oxswan_cluster::ClusterStatus) {
    println!(
        "cluster: node {} (number {}), etcd lease {} (TTL {}s) {}, renewed {} ms ago; {} leases held, {} IKE SAs listed; {} etcd writes",
        c.node,
        c.number,
        c.lease,
        c.ttl,
        if c.healthy { "alive" } else { "NOT RENEWED" },
        c.renewed_ms_ago,
        c.leases_held,
        c.sas_listed,
        c.writes
    );
    for m in &c.members {
        let state = match (m.reachable, m.leader) {
            (true, true) => "reachable, leader",
            (true, false) => "reachable",
            (false, _) => "UNREACHABLE",
        };
        println!("  etcd {}: {state} ({})", m.endpoint, m.detail);
    }
    for n in &c.nodes {
        println!(
            "  node {} (number {}): {} IKE SAs{}{}",
            n.node,
            n.number,
            n.ike_sas,
            n.address.as_deref().map(|a| format!(", at {a}")).unwrap_or_default(),
            n.redirect_above.map(|l| format!(", redirects above {l}")).unwrap_or_default()
        );
    }
    if c.lease_renewals + c.leases_taken + c.sas_replaced > 0 {
        println!(
            "  lease granted afresh {} time(s); {} lease(s) taken by other nodes, {} IKE SA(s) replaced there",
            c.lease_renewals, c.leases_taken, c.sas_replaced
        );
    }
}

fn print_status(sas: &[control::IkeSaStatus]) {
    if sas.is_empty() {
        println!("no IKE SAs");
    }
    for s in sas {
        println!("{}: {} {}, IKEv2, {}", s.name, s.state, ago(s.established_secs), s.spis);
        println!("  local  {} @ {}", s.local_id, s.local);
        let how = match (s.transport.as_str(), s.nat) {
            ("tcp", _) => " (TCP-encapsulated)",
            (_, true) => " (UDP-encapsulated)",
            _ => "",
        };
        println!(
            "  remote {} @ {}{how}{}{}{}",
            s.remote_id,
            s.remote,
            if s.mobike { ", MOBIKE" } else { "" },
            if s.redirected { ", redirected here" } else { "" },
            if s.resumed { ", resumed (RFC 5723)" } else { "" }
        );
        if let Some(eap) = &s.eap_id {
            println!("  remote EAP identity {eap}");
        }
        if !s.local_vips.is_empty() {
            println!("  local virtual IPs {}", s.local_vips.join(", "));
        }
        if !s.remote_vips.is_empty() {
            println!("  remote virtual IPs {}", s.remote_vips.join(", "));
        }
        if !s.dns.is_empty() {
            println!("  DNS {}", s.dns.join(", "));
        }
        println!("  {}{}", s.proposal, if s.ppk { ", PPK" } else { "" });
        for c in &s.children {
            let rekey = c.rekey_in_secs.map_or_else(String::new, |s| format!(", rekeying in {s}s"));
            println!(
                "  {}: INSTALLED {}{rekey}, {}, ESP {}, {}_i {}_o",
                c.name,
                ago(c.established_secs),
                c.mode,
                c.proposal,
                c.spi_in,
                c.spi_out
            );
            println!(
                "    in  {} bytes, {} packets (dropped: {} replayed, {} bad ICV, {} outside selectors)",
                c.bytes_in, c.packets_in, c.replayed, c.integrity_failed, c.outside_selectors
            );
            println!("    out {} bytes, {} packets", c.bytes_out, c.packets_out);
            if c.path_mtu > 0 {
                println!("    path MTU {}, inner packets up to {} octets", c.path_mtu, c.inner_mtu);
            }
            match c.resource.as_deref() {
                Some("fallback") => println!("    per-resource SAs (RFC 9611): the fallback"),
                Some(k) => println!("    per-resource SAs (RFC 9611): worker {k}'s"),
                None => {}
            }
            println!("    local  {}", c.local_ts.join(", "));
            println!("    remote {}", c.remote_ts.join(", "));
        }
    }
}

fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} seconds ago"),
        120..7200 => format!("{} minutes ago", secs / 60),
        _ => format!("{} hours ago", secs / 3600),
    }
}
