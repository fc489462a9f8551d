//! Remote access at the daemon's edge (RFC 7296 §2.19): a client's virtual IPs on the TUN device,
//! and the DNS servers the gateway named, applied the way the host resolves names and restored when
//! the IKE SA goes; a gateway's one route per pool into the TUN device, so that thousands of
//! clients cost no route (and no `ip` process) each.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxswan_config::{AddrRange, DnsMode, PoolConfig};
use oxswan_ike::{IkeSaInfo, SaHandle};

/// Where glibc reads its resolvers.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's varlink socket: present while it runs.
const RESOLVED_SOCKET: &str = "/run/systemd/resolve/io.systemd.Resolve";

/// DNS servers we applied, and how to take them back.
#[derive(Debug)]
enum AppliedDns {
    /// `resolvectl dns <tun> ...`: reverted with `resolvectl revert <tun>`.
    Resolvectl,
    /// /etc/resolv.conf rewritten: the original text, and ours (restored only while the file is
    /// still ours, so that an administrator's edit meanwhile is kept).
    ResolvConf { path: PathBuf, original: String, ours: String },
}

/// The daemon's remote-access state.
#[derive(Debug)]
pub struct RemoteAccess {
    tun: String,
    dns_mode: DnsMode,
    resolv_conf: PathBuf,
    /// Virtual IPs on the TUN device and the IKE SAs holding each: a reauthentication's new SA
    /// comes up with the same address before the old one goes.
    vips: BTreeMap<IpAddr, BTreeSet<SaHandle>>,
    /// The DNS servers applied, how, and the IKE SAs that brought them: a reauthentication's new
    /// SA comes up before the old one goes, and the servers stay until the last goes.
    dns: Option<(BTreeSet<SaHandle>, AppliedDns)>,
    /// The gateway's routes into the TUN device, one per pool.
    pool_routes: Vec<(IpAddr, u8)>,
}

impl RemoteAccess {
    /// Routes each pool's prefix into the TUN device.
    pub fn new(tun: &str, dns_mode: DnsMode, pools: &[PoolConfig]) -> Self {
        let mut me = Self {
            tun: tun.to_owned(),
            dns_mode,
            resolv_conf: PathBuf::from(RESOLV_CONF),
            vips: BTreeMap::new(),
            dns: None,
            pool_routes: Vec::new(),
        };
        for p in pools {
            let (net, len) = covering_prefix(&p.range);
            let cidr = format!("{net}/{len}");
            match oxswan_io::route::replace(&cidr, tun, None) {
                Ok(()) => tracing::info!(target: "route", "pool {}: {} via {tun}", p.name, cidr),
                Err(e) => tracing::warn!(target: "route", "pool {}: {e}", p.name),
            }
            me.pool_routes.push((net, len));
        }
        me
    }

    /// Whether a pool's route already takes traffic to `cidr` (a client's virtual IP) into the
    /// TUN device.
    pub fn routed(&self, cidr: &str) -> bool {
        let Some((addr, len)) =
            cidr.split_once('/').and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)))
        else {
            return false;
        };
        self.pool_routes.iter().any(|(net, plen)| len >= *plen && in_prefix(addr, *net, *plen))
    }

    /// An IKE SA came up: as a client, its virtual IPs go on the TUN device and its DNS servers
    /// are applied.
    pub fn up(&mut self, sa: SaHandle, info: &IkeSaInfo) {
        for vip in &info.local_vips {
            let holders = self.vips.entry(*vip).or_default();
            if holders.is_empty() {
                match oxswan_io::route::add_address(*vip, &self.tun) {
                    Ok(()) => {
                        tracing::info!(target: "ike", conn = %info.name, sa = sa.0, "virtual IP {vip} on {}", self.tun)
                    }
                    Err(e) => tracing::warn!(target: "ike", conn = %info.name, sa = sa.0, "virtual IP {vip}: {e}"),
                }
            }
            holders.insert(sa);
        }
        if let Some((holders, _)) = self.dns.as_mut().filter(|_| !info.dns.is_empty()) {
            holders.insert(sa);
        } else if !info.dns.is_empty() {
            match self.apply_dns(&info.dns, &info.dns_domains) {
                Ok(Some(applied)) => {
                    let servers = info.dns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    tracing::info!(target: "ike", conn = %info.name, sa = sa.0, "DNS {servers} ({})", applied.name());
                    self.dns = Some((BTreeSet::from([sa]), applied));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(target: "ike", conn = %info.name, sa = sa.0, "cannot apply DNS servers: {e}"),
            }
        }
    }

    /// An IKE SA is gone for good (not rekeyed): its virtual IPs come off the TUN device unless
    /// another SA holds them, and the DNS servers it brought are restored.
    pub fn down(&mut self, sa: SaHandle) {
        let mut gone = Vec::new();
        for (vip, holders) in &mut self.vips {
            if holders.remove(&sa) && holders.is_empty() {
                gone.push(*vip);
            }
        }
        for vip in gone {
            self.vips.remove(&vip);
            if let Err(e) = oxswan_io::route::delete_address(vip, &self.tun) {
                tracing::warn!(target: "ike", sa = sa.0, "virtual IP {vip}: {e}");
            }
        }
        let last = self.dns.as_mut().is_some_and(|(holders, _)| holders.remove(&sa) && holders.is_empty());
        if last && let Some((_, applied)) = self.dns.take() {
            self.restore_dns(applied);
        }
    }

    /// An IKE rekey moved `old`'s CHILD SAs to `new` (RFC 7296 §2.18): so do its virtual IPs and
    /// DNS servers.
    pub fn rekeyed(&mut self, old: SaHandle, new: SaHandle) {
        for holders in self.vips.values_mut() {
            if holders.remove(&old) {
                holders.insert(new);
            }
        }
        if let Some((holders, _)) = self.dns.as_mut()
            && holders.remove(&old)
        {
            holders.insert(new);
        }
    }

    /// The daemon stops: everything goes back.
    pub fn shutdown(&mut self) {
        let sas: BTreeSet<SaHandle> = self.vips.values().flatten().copied().collect();
        for sa in sas {
            self.down(sa);
        }
        if let Some((_, applied)) = self.dns.take() {
            self.restore_dns(applied);
        }
        for (net, len) in std::mem::take(&mut self.pool_routes) {
            let _ = oxswan_io::route::delete(&format!("{net}/{len}"), &self.tun);
        }
    }

    fn apply_dns(&self, servers: &[IpAddr], domains: &[String]) -> anyhow::Result<Option<AppliedDns>> {
        let resolvectl = match self.dns_mode {
            DnsMode::None => return Ok(None),
            DnsMode::Resolvectl => true,
            DnsMode::ResolvConf => false,
            DnsMode::Auto => Path::new(RESOLVED_SOCKET).exists(),
        };
        if resolvectl {
            let mut dns = vec!["dns".to_owned(), self.tun.clone()];
            dns.extend(servers.iter().map(ToString::to_string));
            run("resolvectl", &dns)?;
            // Split DNS (RFC 8598) when the gateway named domains; else every name goes there.
            let mut domain = vec!["domain".to_owned(), self.tun.clone()];
            if domains.is_empty() {
                domain.push("~.".into());
            } else {
                domain.extend(domains.iter().map(|d| format!("~{d}")));
            }
            run("resolvectl", &domain)?;
            return Ok(Some(AppliedDns::Resolvectl));
        }
        let path = self.resolv_conf.clone();
        let original = std::fs::read_to_string(&path).unwrap_or_default();
        let ours = resolv_conf_with(&original, servers, domains);
        std::fs::write(&path, &ours).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Some(AppliedDns::ResolvConf { path, original, ours }))
    }

    fn restore_dns(&self, applied: AppliedDns) {
        match applied {
            AppliedDns::Resolvectl => {
                if let Err(e) = run("resolvectl", &["revert".to_owned(), self.tun.clone()]) {
                    tracing::warn!(target: "ike", "cannot revert DNS: {e}");
                }
            }
            AppliedDns::ResolvConf { path, original, ours } => {
                let now = std::fs::read_to_string(&path).unwrap_or_default();
                if now != ours {
                    tracing::warn!(target: "ike", "{} changed meanwhile: left as it is", path.display());
                } else if let Err(e) = std::fs::write(&path, original) {
                    tracing::warn!(target: "ike", "cannot restore {}: {e}", path.display());
                } else {
                    tracing::info!(target: "ike", "{} restored", path.display());
                }
            }
        }
    }
}

impl AppliedDns {
    fn name(&self) -> &'static str {
        match self {
            AppliedDns::Resolvectl => "resolvectl",
            AppliedDns::ResolvConf { .. } => "/etc/resolv.conf",
        }
    }
}

fn run(cmd: &str, args: &[String]) -> anyhow::Result<()> {
    let o = Command::new(cmd).args(args).output().map_err(|e| anyhow::anyhow!("cannot run {cmd}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        anyhow::bail!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())
    }
}

/// resolv.conf with our servers first: glibc asks the first `nameserver` lines in order (at most
/// three), so the tunnel's come before the host's, which stay as fallbacks; our domains go first
/// in `search`.
fn resolv_conf_with(original: &str, servers: &[IpAddr], domains: &[String]) -> String {
    let mut out =
        String::from("# oxswan: DNS servers of the VPN gateway; the original is restored when the tunnel goes\n");
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    let mut search: Vec<String> = domains.to_vec();
    for line in original.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("search") {
            search.extend(words.map(str::to_owned));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    out
}

/// The smallest prefix holding a whole range: the pool's route.
fn covering_prefix(range: &AddrRange) -> (IpAddr, u8) {
    let (first, last, bits) = match (range.first(), range.last()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
        (a, b) => (v6(a), v6(b), 128),
    };
    let differing = 128 - (first ^ last).leading_zeros();
    let len = bits.saturating_sub(differing);
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) >> (128 - bits) };
    let net = first & mask;
    let addr = if bits == 32 {
        IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(net).unwrap_or(0)))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(net))
    };
    (addr, u8::try_from(len).unwrap_or(0))
}

fn v6(a: IpAddr) -> u128 {
    match a {
        IpAddr::V6(a) => u128::from(a),
        IpAddr::V4(a) => u128::from(u32::from(a)),
    }
}

fn in_prefix(addr: IpAddr, net: IpAddr, len: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn prefix(s: &str) -> String {
        let (a, l) = covering_prefix(&AddrRange::parse(s).unwrap());
        format!("{a}/{l}")
    }

    #[test]
    fn a_pool_is_routed_by_its_smallest_covering_prefix() {
        assert_eq!(prefix("10.10.0.0/24"), "10.10.0.0/24");
        assert_eq!(prefix("10.10.0.10-10.10.0.200"), "10.10.0.0/24");
        assert_eq!(prefix("10.10.0.7-10.10.0.7"), "10.10.0.7/32");
        assert_eq!(prefix("fd10::/120"), "fd10::/120");
        assert_eq!(prefix("10.0.0.1-10.255.255.254"), "10.0.0.0/8");
    }

    #[test]
    fn a_client_route_inside_a_pool_is_not_added_again() {
        let me = RemoteAccess {
            tun: "t".into(),
            dns_mode: DnsMode::None,
            resolv_conf: PathBuf::new(),
            vips: BTreeMap::new(),
            dns: None,
            pool_routes: vec![("10.10.0.0".parse().unwrap(), 24), ("fd10::".parse().unwrap(), 120)],
        };
        assert!(me.routed("10.10.0.7/32"));
        assert!(me.routed("fd10::5/128"));
        assert!(!me.routed("10.10.1.7/32"));
        assert!(!me.routed("10.10.0.0/16"), "wider than the pool");
        assert!(!me.routed("garbage"));
    }

    #[test]
    fn resolv_conf_puts_ours_first_and_keeps_the_rest() {
        let original = "search example.org\nnameserver 192.0.2.53\noptions edns0\n";
        let out = resolv_conf_with(original, &["10.10.0.53".parse().unwrap()], &["corp.example".into()]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with('#'));
        assert_eq!(
            &lines[1..],
            ["nameserver 10.10.0.53", "nameserver 192.0.2.53", "options edns0", "search corp.example example.org"]
        );
    }
}
