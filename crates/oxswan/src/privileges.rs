//! Dropping what the daemon does not need once it serves (capabilities(7)).
//!
//! The daemon stays root (user ID 0): its configuration, keys and CRLs are root's files of mode
//! 0600, read again on every reload, and a client rewrites /etc/resolv.conf; as root it reaches
//! them as their owner, without `CAP_DAC_OVERRIDE` (which would open every file on the system). Of
//! the capabilities it keeps only those it needs while running, in every set, the bounding set
//! too, so that the programs it runs (`ip`, `resolvectl`) get no more than that either: for a root
//! process the bounding set is what an exec'd program's capabilities come from.

use anyhow::{Context as _, bail};
use caps::{CapSet, Capability, CapsHashSet};

/// What the daemon keeps: `CAP_NET_ADMIN` for the TUN device, its routes and addresses (and,
/// later, the kernel's XFRM); `CAP_NET_BIND_SERVICE` for binding ports 500 and 4500 on
/// addresses that appear while it runs (MOBIKE) or on a reload.
pub const KEPT: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_BIND_SERVICE];

/// Drops every capability but [`KEPT`] from the bounding, permitted, effective, inheritable and
/// ambient sets. Capabilities belong to threads and a new thread copies its creator's, so this
/// runs before the daemon starts any thread, and refuses if one runs already (its capabilities
/// would stay whole). A daemon that is not root keeps [`KEPT`] inheritable and ambient, so that
/// the programs it runs keep them too (for root the bounding set does that).
pub fn drop_capabilities() -> anyhow::Result<()> {
    let threads = std::fs::read_dir("/proc/self/task").context("/proc/self/task")?.count();
    if threads > 1 {
        bail!("cannot drop capabilities: {threads} threads run already and would keep theirs");
    }
    let kept: CapsHashSet = KEPT.into_iter().collect();
    let bounding = caps::read(None, CapSet::Bounding).map_err(|e| anyhow::anyhow!("reading capabilities: {e}"))?;
    for cap in bounding.difference(&kept) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| {
            anyhow::anyhow!(
                "cannot drop {cap} from the bounding set ({e}; it takes CAP_SETPCAP): start the daemon with \
                 those capabilities only, or set [daemon] drop_capabilities = false"
            )
        })?;
    }
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| anyhow::anyhow!("reading capabilities: {e}"))?;
    let keep: CapsHashSet = permitted.intersection(&kept).copied().collect();
    let root = std::fs::read_to_string("/proc/self/status")
        .context("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|effective| effective == "0");
    let passed_on = if root { CapsHashSet::new() } else { keep.clone() };
    let set = |set: CapSet, value: &CapsHashSet| {
        caps::set(None, set, value).map_err(|e| anyhow::anyhow!("cannot set the {set:?} capabilities: {e}"))
    };
    // Ambient ones must be inheritable and permitted; the effective set within the permitted one.
    caps::clear(None, CapSet::Ambient).map_err(|e| anyhow::anyhow!("cannot clear the ambient capabilities: {e}"))?;
    set(CapSet::Inheritable, &passed_on)?;
    set(CapSet::Effective, &keep)?;
    set(CapSet::Permitted, &keep)?;
    set(CapSet::Ambient, &passed_on)?;
    // The caps crate knows the capabilities up to its release; one the kernel added since would
    // be neither read nor dropped. The kernel's own account says what is left.
    let mask = KEPT.iter().fold(0u64, |m, c| m | c.bitmask());
    let status = std::fs::read_to_string("/proc/thread-self/status").context("/proc/thread-self/status")?;
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(set).and_then(|v| v.strip_prefix(':')))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .with_context(|| format!("no {set} in /proc/thread-self/status"))?;
        if value & !mask != 0 {
            bail!("capabilities {:#x} are still in {set} after dropping", value & !mask);
        }
    }
    tracing::info!(
        target: "daemon",
        "capabilities dropped: kept {}",
        if keep.is_empty() { "none".to_owned() } else { names(&keep) }
    );
    Ok(())
}

fn names(caps: &CapsHashSet) -> String {
    let mut v: Vec<String> = caps.iter().map(ToString::to_string).collect();
    v.sort();
    v.join(", ")
}
