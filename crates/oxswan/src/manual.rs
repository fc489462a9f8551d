//! The manual page and the shell completions, both made from the command line's clap definition at
//! run time, so every subcommand and option that exists appears in them without further work.

use clap::Command;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// The manual's section: system administration, as wg(8) and swanctl(8).
pub const SECTION: &str = "8";

/// The file name of the page: `oxswan.8`.
pub fn file_name() -> String {
    format!("oxswan.{SECTION}")
}

/// A completion script for `shell`, for the command line `cmd`.
pub fn completions(shell: clap_complete::Shell, cmd: &mut Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, "oxswan", &mut out);
    out
}

/// One page, oxswan(8), with every subcommand in it (as wg(8) and swanctl(8) hold theirs, rather
/// than a page per subcommand): name, synopsis, description and global options as clap_mangen
/// renders them, then a COMMANDS section with each subcommand's synopsis, description and
/// options, then files, signals, environment and exit status.
pub fn page(cmd: Command) -> std::io::Result<String> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let man = Man::new(cmd.clone()).section(SECTION).manual("System Administration");
    let mut out = render(|w| man.render_title(w))?;
    for part in [Man::render_name_section, Man::render_synopsis_section, Man::render_description_section] {
        out.push_str(&body(&render(|w| part(&man, w))?));
    }
    out.push_str(&body(&render(|w| man.render_options_section(w))?));

    out.push_str(".SH COMMANDS\n");
    let mut subs = Vec::new();
    walk(&cmd, &mut subs);
    for sub in subs {
        // The global options and --help are told once, under OPTIONS.
        let own = sub.mut_args(|a| if a.is_global_set() || a.get_id() == "help" { a.hide(true) } else { a });
        let name = own.get_bin_name().unwrap_or_else(|| own.get_name()).to_owned();
        let m = Man::new(own).section(SECTION);
        let mut heading = Roff::new();
        heading.control("SS", [name.as_str()]);
        out.push_str(&body(&heading.render()));
        out.push_str(&without_heading(&render(|w| m.render_synopsis_section(w))?, "SYNOPSIS"));
        out.push_str(".PP\n");
        out.push_str(&without_heading(&render(|w| m.render_description_section(w))?, "DESCRIPTION"));
        out.push_str(&without_heading(&render(|w| m.render_options_section(w))?, "OPTIONS"));
    }
    out.push_str(&body(&trailer().render()));
    out.push_str(&body(&render(|w| man.render_version_section(w))?));
    Ok(out)
}

/// Every subcommand below `cmd`, depth first (`pki` before `pki init`), but hidden ones.
fn walk(cmd: &Command, out: &mut Vec<Command>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push(sub.clone());
        walk(sub, out);
    }
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> std::io::Result<String> {
    let mut buf = Vec::new();
    f(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Each rendering begins with the same definition of the apostrophe string (roff's preamble); the
/// page needs it once, at its top.
fn body(s: &str) -> String {
    let preamble = Roff::new().render();
    s.strip_prefix(preamble.as_str()).unwrap_or(s).to_owned()
}

/// A section's rendering without its `.SH` line, to stand under a subcommand's `.SS`.
fn without_heading(s: &str, heading: &str) -> String {
    let s = body(s);
    s.strip_prefix(&format!(".SH {heading}\n")).map_or(s.clone(), str::to_owned)
}

/// What clap does not know: files, signals, environment, exit status.
fn trailer() -> Roff {
    let mut r = Roff::new();
    let entries = |r: &mut Roff, title: &str, items: &[(&str, &str)]| {
        r.control("SH", [title]);
        for (term, text) in items {
            r.control("TP", []);
            r.text([bold(*term)]);
            r.text([roman(*text)]);
        }
    };
    entries(
        &mut r,
        "FILES",
        &[
            (
                "/etc/oxswan/oxswan.toml",
                "The configuration (oxswan daemon --config). Its keys are described in docs/configuration.md.",
            ),
            (
                "/run/oxswan/oxswan.sock",
                "The daemon's control socket, mode 0600 ([daemon] socket, --socket, OXSWAN_SOCKET).",
            ),
            (
                "/etc/oxswan/pki/",
                "What oxswan pki makes: ca.crt, server.crt, clients/, crl.pem, and the keys under private/.",
            ),
        ],
    );
    entries(
        &mut r,
        "SIGNALS",
        &[
            ("SIGHUP", "The daemon reads its configuration again, as oxswan reload does."),
            ("SIGTERM, SIGINT", "The daemon deletes every IKE SA, removes its routes and exits 0."),
        ],
    );
    entries(
        &mut r,
        "ENVIRONMENT",
        &[
            ("OXSWAN_SOCKET", "The control socket, as --socket."),
            ("RUST_LOG", "Log levels per subsystem, over [daemon] log, e.g. info,ike=debug."),
            (
                "NOTIFY_SOCKET, WATCHDOG_USEC",
                "Set by systemd for a Type=notify service: the daemon reports READY=1, RELOADING=1, STOPPING=1 and STATUS= there, and WATCHDOG=1 from its IKE thread at half the watchdog interval.",
            ),
            (
                "JOURNAL_STREAM",
                "When it names the daemon's standard error, logs go to the journal with structured fields (OXSWAN_CONN=, OXSWAN_SA=), or to standard error without timestamps if the journal's socket cannot be reached.",
            ),
        ],
    );
    r.control("SH", ["EXIT STATUS"]);
    r.text([roman("0 on success; 1 when a command fails, with the reason on standard error; 2 for a command line that does not parse.")]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman("swanctl(8), ip(8), systemd.service(5), systemd.exec(5)")]);
    r
}
