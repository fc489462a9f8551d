//! Running under systemd: the service unit, the daemon's notifications to the service manager
//! (sd_notify(3): READY, RELOADING, STOPPING, WATCHDOG, STATUS) and whether stderr goes to the
//! journal (systemd.exec(5), `JOURNAL_STREAM`).

use std::path::Path;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The text of `oxswan.service`, running `exe daemon --config config`.
///
/// The daemon keeps root's user ID and only the capabilities it needs once running
/// (`CAP_NET_ADMIN` for the TUN device, routes and addresses, `CAP_NET_BIND_SERVICE` to bind
/// ports 500 and 4500 on addresses that appear later, for MOBIKE): the bounding set here is the
/// same as what the daemon keeps itself ([`crate::privileges`]). Being root is what lets it
/// read its root-owned configuration, keys and CRLs again on a reload and rewrite
/// /etc/resolv.conf as a client; `ProtectSystem=strict` keeps the rest of the file system
/// read-only to it.
pub fn unit(exe: &Path, config: &Path) -> String {
    // ProtectHome=yes would hide a binary or configuration under a home directory.
    let under_home = [exe, config].iter().any(|p| ["/home", "/root", "/run/user"].iter().any(|h| p.starts_with(h)));
    let protect_home = if under_home { "read-only" } else { "yes" };
    let (exe, config) = (exec_arg(exe), exec_arg(config));
    let caps = crate::privileges::KEPT.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    format!(
        "\
# oxswan.service, written by oxswan: see oxswan(8).
[Unit]
Description=oxswan IKEv2/IPsec VPN
Documentation=man:oxswan(8)
# The daemon binds its local addresses at start.
Wants=network-online.target
After=network-online.target

[Service]
# READY=1 once the sockets, the TUN device and the control socket are up; STOPPING=1 when
# SIGTERM's shutdown begins (every IKE SA is deleted).
Type=notify
NotifyAccess=main
ExecStart={exe} daemon --config {config}
# SIGHUP reads the configuration again (RELOADING=1, then READY=1); `oxswan reload` does the
# same and prints the result.
ExecReload=/bin/kill -HUP $MAINPID
# Pinged from the IKE thread's loop at half this interval: a hung engine gets restarted.
WatchdogSec=30s
Restart=on-failure
RestartSec=5s
# /run/oxswan/oxswan.sock, the default control socket.
RuntimeDirectory=oxswan
RuntimeDirectoryMode=0700
UMask=0077

# What the daemon keeps once running (it drops the rest itself): CAP_NET_ADMIN for the TUN
# device, routes and addresses; CAP_NET_BIND_SERVICE for ports 500 and 4500 on new addresses.
CapabilityBoundingSet={caps}
NoNewPrivileges=yes
ProtectSystem=strict
# A client applying the DNS servers its gateway sends with [daemon] dns = \"resolv.conf\".
ReadWritePaths=-/etc/resolv.conf
ProtectHome={protect_home}
PrivateTmp=yes
PrivateMounts=yes
ProtectProc=invisible
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"
    )
}

/// A path as one argument of an `Exec*=` line (systemd.service(5), "Command lines"): quoted when
/// it holds anything but plain path characters, `%` and `$` doubled so that systemd takes them
/// literally rather than as specifiers and variables.
fn exec_arg(p: &Path) -> String {
    let s = p.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.into_owned();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The daemon's side of sd_notify(3). Without `NOTIFY_SOCKET` (not started by systemd as
/// `Type=notify`) nothing is sent; without `WATCHDOG_USEC` there is no watchdog.
#[derive(Debug)]
pub struct Notifier {
    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises.
    ping_every: Option<Duration>,
    pinged: Instant,
    /// The last STATUS= sent, so that an unchanged one is not sent again.
    status: String,
    /// Whether a failure to notify was logged already (once is enough).
    complained: bool,
}

impl Notifier {
    pub fn from_env(now: Instant) -> Self {
        Self {
            ping_every: sd_notify::watchdog_enabled().map(|t| t / 2),
            pinged: now,
            status: String::new(),
            complained: false,
        }
    }

    fn send(&mut self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states)
            && !self.complained
        {
            tracing::warn!(target: "daemon", "cannot notify the service manager (NOTIFY_SOCKET): {e}");
            self.complained = true;
        }
    }

    /// READY=1: the daemon serves (sockets bound, TUN device up, control socket listening); also
    /// after a reload.
    pub fn ready(&mut self, status: &str) {
        self.status = status.to_owned();
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// RELOADING=1 before the configuration is read again, with the time that newer systemd's
    /// `Type=notify-reload` asks for (systemd.service(5)); READY=1 follows.
    pub fn reloading(&mut self) {
        match NotifyState::monotonic_usec_now() {
            Ok(t) => self.send(&[NotifyState::Reloading, t, NotifyState::Status("reloading the configuration")]),
            Err(_) => self.send(&[NotifyState::Reloading, NotifyState::Status("reloading the configuration")]),
        }
    }

    /// STOPPING=1: the shutdown began.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping: deleting every IKE SA")]);
    }

    /// STATUS=, when it changed.
    pub fn status(&mut self, status: &str) {
        if status != self.status {
            self.status = status.to_owned();
            self.send(&[NotifyState::Status(status)]);
        }
    }

    /// WATCHDOG=1 when half the watchdog interval has passed since the last. Called from the IKE
    /// thread's loop, so the pings stop when that thread hangs and systemd restarts the daemon.
    pub fn alive(&mut self, now: Instant) {
        if self.ping_every.is_some_and(|every| now.saturating_duration_since(self.pinged) >= every) {
            self.pinged = now;
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// How long the IKE thread may wait for input before the next ping is due.
    pub fn next_ping(&self, now: Instant) -> Option<Duration> {
        self.ping_every.map(|every| (self.pinged + every).saturating_duration_since(now))
    }
}

/// Whether stderr is connected to the journal: systemd.exec(5) sets `JOURNAL_STREAM` to the
/// device and inode numbers of the stream it connected stdout/stderr to; a child whose stderr
/// went elsewhere (a redirection) inherits the variable, hence the comparison.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// A log level as a syslog priority (RFC 5424 §6.2.1), the same on both ways into the journal:
/// info is 6 (informational), debug and trace 7.
fn priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    }
}

/// [`priority`] for tracing-journald, whose own default puts info at 5 (notice).
pub fn journal_priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    let of = |level| match priority(level) {
        3 => Priority::Error,
        4 => Priority::Warning,
        6 => Priority::Informational,
        _ => Priority::Debug,
    };
    tracing_journald::PriorityMappings {
        error: of(tracing::Level::ERROR),
        warn: of(tracing::Level::WARN),
        info: of(tracing::Level::INFO),
        debug: of(tracing::Level::DEBUG),
        trace: of(tracing::Level::TRACE),
    }
}

/// Each line begins with its priority as `<N>`, which journald reads from a service's stderr
/// (sd-daemon(3), `SyslogLevelPrefix=` in systemd.exec(5)) and takes off the line.
#[derive(Debug)]
pub struct PriorityPrefix<F>(pub F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for PriorityPrefix<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_unit_runs_the_daemon_with_the_configuration() {
        let u = unit(Path::new("/usr/bin/oxswan"), Path::new("/etc/oxswan/oxswan.toml"));
        assert!(u.contains("\nExecStart=/usr/bin/oxswan daemon --config /etc/oxswan/oxswan.toml\n"), "{u}");
        assert!(u.contains("\nType=notify\n") && u.contains("\nWatchdogSec=30s\n"), "{u}");
        assert!(u.contains("\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n"), "{u}");
        assert!(u.contains("\nProtectHome=yes\n"), "{u}");
        // One key per line, each in a section.
        let mut section = "";
        for line in u.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            assert!(!section.is_empty() && line.contains('='), "{line}");
        }
    }

    #[test]
    fn paths_are_quoted_for_systemd() {
        assert_eq!(exec_arg(Path::new("/opt/ox swan/bin/oxswan")), "\"/opt/ox swan/bin/oxswan\"");
        assert_eq!(exec_arg(Path::new("/etc/100%/a$b\"c")), "\"/etc/100%%/a$$b\\\"c\"");
        let u = unit(Path::new("/home/me/oxswan"), Path::new("/etc/oxswan/oxswan.toml"));
        assert!(u.contains("\nProtectHome=read-only\n"), "a binary under /home stays reachable: {u}");
    }
}
