//! What the daemon's tests need from the machine, in groups. One module for two readers: the build
//! script (`build.rs`, by `#[path]`) sets a cfg per group that is there, so a test that lacks its group
//! is compiled as `#[ignore]` and `cargo test` counts it as ignored, not passed; the tests call
//! [`require`], which names what is missing when a test runs anyway (under `CI=true` every group is
//! set, so a missing install step fails the run instead of hiding in a skip).
//!
//! No dependency beyond std: the build script has none.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A group of tools and files some tests need, and the cfg the build script sets when all are there.
pub struct Prerequisite {
    pub cfg: &'static str,
    /// Whether the tests run as root (network namespaces, TUN devices).
    pub root: bool,
    /// Commands looked for on `PATH`.
    pub commands: &'static [&'static str],
    /// Files that must exist.
    pub paths: &'static [&'static str],
    /// What installs them, for the message.
    pub install: &'static str,
}

/// Root, `/dev/net/tun`, ip, ping and iperf3: the tests over network namespaces.
pub const NETNS: Prerequisite = Prerequisite {
    cfg: "have_netns",
    root: true,
    commands: &["ip", "ping", "iperf3"],
    paths: &["/dev/net/tun"],
    install: "run as root; Debian iproute2, iputils-ping, iperf3",
};
/// strongSwan 5.9's charon and swanctl, the interop peer.
pub const CHARON: Prerequisite = Prerequisite {
    cfg: "have_charon",
    root: false,
    commands: &["swanctl"],
    paths: &["/usr/lib/ipsec/charon"],
    install: "Debian strongswan-charon, strongswan-swanctl",
};
/// charon's EAP-MSCHAPv2, for the road warriors it plays.
pub const CHARON_MSCHAPV2: Prerequisite = Prerequisite {
    cfg: "have_charon_mschapv2",
    root: false,
    commands: &[],
    paths: &["/usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so"],
    install: "Debian libcharon-extauth-plugins",
};
/// charon's PKCS#12 loader, for the bundles `oxswan client add` makes.
pub const CHARON_PKCS12: Prerequisite = Prerequisite {
    cfg: "have_charon_pkcs12",
    root: false,
    commands: &[],
    paths: &["/usr/lib/ipsec/plugins/libstrongswan-pkcs12.so"],
    install: "Debian libstrongswan-standard-plugins",
};
/// strongSwan 6's root file system, made by the interop kit's strongswan6.sh.
pub const STRONGSWAN6_FS: Prerequisite = Prerequisite {
    cfg: "have_strongswan6",
    root: false,
    commands: &[],
    paths: &["/opt/strongswan6/usr/lib/ipsec/charon"],
    install: "bash .ci/run makes /opt/strongswan6",
};
pub const NFT: Prerequisite =
    Prerequisite { cfg: "have_nft", root: false, commands: &["nft"], paths: &[], install: "Debian nftables" };
pub const CONNTRACK: Prerequisite = Prerequisite {
    cfg: "have_conntrack",
    root: false,
    commands: &["conntrack"],
    paths: &[],
    install: "Debian conntrack",
};
pub const SS: Prerequisite =
    Prerequisite { cfg: "have_ss", root: false, commands: &["ss"], paths: &[], install: "Debian iproute2" };
pub const TSHARK: Prerequisite =
    Prerequisite { cfg: "have_tshark", root: false, commands: &["tshark"], paths: &[], install: "Debian tshark" };
pub const FREERADIUS: Prerequisite = Prerequisite {
    cfg: "have_freeradius",
    root: false,
    commands: &[],
    paths: &["/usr/sbin/freeradius", "/etc/freeradius/3.0/radiusd.conf"],
    install: "Debian freeradius",
};
pub const PROMTOOL: Prerequisite = Prerequisite {
    cfg: "have_promtool",
    root: false,
    commands: &["promtool"],
    paths: &[],
    install: "Debian prometheus",
};
pub const SYSTEMD_ANALYZE: Prerequisite = Prerequisite {
    cfg: "have_systemd_analyze",
    root: false,
    commands: &["systemd-analyze"],
    paths: &[],
    install: "Debian systemd",
};
/// setpriv and unshare, to run the daemon as systemd would (capabilities, a mount namespace).
pub const UTIL_LINUX: Prerequisite = Prerequisite {
    cfg: "have_util_linux",
    root: false,
    commands: &["setpriv", "unshare"],
    paths: &[],
    install: "Debian util-linux",
};
pub const PYTHON3: Prerequisite =
    Prerequisite { cfg: "have_python3", root: false, commands: &["python3"], paths: &[], install: "Debian python3" };
pub const OPENSSL: Prerequisite =
    Prerequisite { cfg: "have_openssl", root: false, commands: &["openssl"], paths: &[], install: "Debian openssl" };
pub const BASH: Prerequisite =
    Prerequisite { cfg: "have_bash", root: false, commands: &["bash"], paths: &[], install: "Debian bash" };
/// man and groff, to render the page `oxswan man` makes.
pub const MAN: Prerequisite = Prerequisite {
    cfg: "have_man",
    root: false,
    commands: &["man", "groff"],
    paths: &[],
    install: "Debian man-db, groff-base",
};
/// etcd and etcdctl, a real cluster for the tests of several gateways as one service.
pub const ETCD: Prerequisite = Prerequisite {
    cfg: "have_etcd",
    root: false,
    commands: &["etcd", "etcdctl"],
    paths: &[],
    install: "Debian etcd-server, etcd-client",
};

pub const ALL: &[&Prerequisite] = &[
    &NETNS,
    &CHARON,
    &CHARON_MSCHAPV2,
    &CHARON_PKCS12,
    &STRONGSWAN6_FS,
    &NFT,
    &CONNTRACK,
    &SS,
    &TSHARK,
    &FREERADIUS,
    &PROMTOOL,
    &SYSTEMD_ANALYZE,
    &UTIL_LINUX,
    &PYTHON3,
    &OPENSSL,
    &BASH,
    &MAN,
    &ETCD,
];

/// The directories of `PATH`.
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default()
}

/// Whether `command` is an executable file in a `PATH` directory (what `command -v` finds).
pub fn on_path(command: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path_dirs()
        .iter()
        .any(|d| std::fs::metadata(d.join(command)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Whether this process runs with effective user ID 0 (`Uid:` of /proc/self/status: real, effective, ...).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1)) == Some("0")
    })
}

/// What of `p` this machine lacks; empty when the group is there.
pub fn lacking(p: &Prerequisite) -> Vec<String> {
    let mut out = Vec::new();
    if p.root && !is_root() {
        out.push("root".to_string());
    }
    out.extend(p.commands.iter().filter(|c| !on_path(c)).map(|c| c.to_string()));
    out.extend(p.paths.iter().filter(|f| !Path::new(f).exists()).map(|f| f.to_string()));
    out
}

/// Panics naming whatever of `groups` is missing. A test only runs this far when the build found the
/// groups (or under `CI=true`, which claims them all), so a miss here is a machine that changed since
/// the build, or CI lacking an install step.
pub fn require(groups: &[&Prerequisite]) {
    let missing: Vec<String> = groups
        .iter()
        .filter_map(|p| {
            let lacks = lacking(p);
            (!lacks.is_empty()).then(|| format!("{} ({})", lacks.join(", "), p.install))
        })
        .collect();
    assert!(missing.is_empty(), "this test needs {}: bash .ci/run installs them", missing.join("; "));
}

/// What the build script watches to run again when `p` may have changed: the `PATH` directories for
/// commands; each path or, while it is missing, its nearest existing ancestor (cargo runs a build
/// script on every build when a watched path does not exist), except the large system directories,
/// which cargo would scan file by file on every build: there dpkg's status file, which changes with
/// every package installed, stands in.
pub fn watched(p: &Prerequisite) -> Vec<PathBuf> {
    const LARGE: &[&str] = &["/", "/usr", "/usr/lib", "/usr/sbin", "/usr/bin", "/etc"];
    let mut out: Vec<PathBuf> =
        if p.commands.is_empty() { Vec::new() } else { path_dirs().into_iter().filter(|d| d.is_absolute()).collect() };
    for f in p.paths {
        let mut at = Path::new(f);
        while !at.exists() {
            match at.parent() {
                Some(up) => at = up,
                None => break,
            }
        }
        if LARGE.iter().any(|l| Path::new(l) == at) {
            out.push(PathBuf::from("/var/lib/dpkg/status"));
        } else {
            out.push(at.to_path_buf());
        }
    }
    out
}
