//! Address ranges: a subnet in CIDR notation, `first-last`, or one address.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::PoolError;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`INTERNAL_IP4_ADDRESS`).
    V4,
    /// IPv6 (`INTERNAL_IP6_ADDRESS`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The addresses a pool hands out, both ends included; never empty, `first <= last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRange {
    /// IPv4 addresses.
    V4 {
        /// The first address handed out.
        first: Ipv4Addr,
        /// The last address handed out.
        last: Ipv4Addr,
    },
    /// IPv6 addresses.
    V6 {
        /// The first address handed out.
        first: Ipv6Addr,
        /// The last address handed out.
        last: Ipv6Addr,
    },
}

impl AddrRange {
    /// Parses a pool's `addrs` as strongSwan reads them:
    ///
    /// - a subnet, `10.10.0.0/24` or `fd10::/120`: as strongSwan's `mem_pool_create()`, a subnet of
    ///   more than two addresses loses its last address (the IPv4 broadcast; strongSwan skips it for
    ///   IPv6 too) and, when the address written is the network's, that one too. So `10.10.0.0/24` is
    ///   `10.10.0.1-10.10.0.254`, and `10.10.0.100/24` is `10.10.0.100-10.10.0.254`. A /31 (/127) hands
    ///   out both addresses, or only the second when it is written; a /32 (/128) the one address;
    /// - a range, `10.10.0.10-10.10.0.200`: exactly these addresses, both ends included;
    /// - one address: that address alone.
    pub fn parse(s: &str) -> Result<Self, PoolError> {
        let s = s.trim();
        let bad = |why: &str| PoolError::BadRange(format!("`{s}`: {why}"));
        if s.is_empty() {
            return Err(bad("empty; write a subnet (10.10.0.0/24) or a range (10.10.0.10-10.10.0.200)"));
        }
        let addr = |a: &str| -> Result<IpAddr, PoolError> {
            a.trim().parse().map_err(|_| bad(&format!("`{}` is not an IP address", a.trim())))
        };
        if let Some((a, prefix)) = s.split_once('/') {
            let base = addr(a)?;
            let max: u8 = if base.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.trim();
            let bits = Some(prefix)
                .filter(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u8>().ok())
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("prefix length `{prefix}`: 0 to {max}")))?;
            let host_bits = u32::from(max.saturating_sub(bits));
            let value = to_u128(base);
            // Host bits of the subnet, as a mask (all ones for /0 of IPv6).
            let host_mask = 1u128.checked_shl(host_bits).map_or(u128::MAX, |v| v.wrapping_sub(1));
            let network = value & !host_mask;
            let top = value | host_mask;
            let (first, last) = if host_bits >= 2 {
                // More than two addresses: skip the network's and the last one.
                let first = if value == network { value.saturating_add(1) } else { value };
                (first, top.saturating_sub(1))
            } else {
                (value, top)
            };
            if first > last {
                return Err(bad("leaves no address to hand out (the subnet's last address is skipped)"));
            }
            return Self::from_u128(Family::of(base), first, last).ok_or_else(|| bad("out of range"));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (first, last) = (addr(a)?, addr(b)?);
            if Family::of(first) != Family::of(last) {
                return Err(bad("mixes IPv4 and IPv6"));
            }
            if to_u128(first) > to_u128(last) {
                return Err(bad("the first address is after the last"));
            }
            return Self::from_u128(Family::of(first), to_u128(first), to_u128(last))
                .ok_or_else(|| bad("out of range"));
        }
        Ok(match addr(s)? {
            IpAddr::V4(a) => AddrRange::V4 { first: a, last: a },
            IpAddr::V6(a) => AddrRange::V6 { first: a, last: a },
        })
    }

    /// The range from `first` to `last`, if they are of one family and in order.
    pub fn from_ips(first: IpAddr, last: IpAddr) -> Option<Self> {
        match (first, last) {
            (IpAddr::V4(first), IpAddr::V4(last)) if first <= last => Some(AddrRange::V4 { first, last }),
            (IpAddr::V6(first), IpAddr::V6(last)) if first <= last => Some(AddrRange::V6 { first, last }),
            _ => None,
        }
    }

    fn from_u128(family: Family, first: u128, last: u128) -> Option<Self> {
        let (first, last) = (from_u128(family, first)?, from_u128(family, last)?);
        Self::from_ips(first, last)
    }

    /// The number of addresses; a whole IPv6 space (`::-ffff:…:ffff`, 2^128) counts as `u128::MAX`.
    pub fn size(&self) -> u128 {
        let (first, last) = self.bounds();
        last.saturating_sub(first).saturating_add(1)
    }

    /// Whether `a` is in the range.
    pub fn contains(&self, a: IpAddr) -> bool {
        let (first, last) = self.bounds();
        Family::of(a) == self.family() && (first..=last).contains(&to_u128(a))
    }

    /// Whether the range is of IPv4 addresses.
    pub fn is_v4(&self) -> bool {
        matches!(self, AddrRange::V4 { .. })
    }

    /// The range's address family.
    pub fn family(&self) -> Family {
        if self.is_v4() { Family::V4 } else { Family::V6 }
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        match *self {
            AddrRange::V4 { first, .. } => IpAddr::V4(first),
            AddrRange::V6 { first, .. } => IpAddr::V6(first),
        }
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        match *self {
            AddrRange::V4 { last, .. } => IpAddr::V4(last),
            AddrRange::V6 { last, .. } => IpAddr::V6(last),
        }
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        let ((a, b), (c, d)) = (self.bounds(), other.bounds());
        self.family() == other.family() && a <= d && c <= b
    }

    /// First and last address as numbers.
    pub(crate) fn bounds(&self) -> (u128, u128) {
        (to_u128(self.first()), to_u128(self.last()))
    }

    /// The address with number `n` in this range's family.
    pub(crate) fn addr(&self, n: u128) -> Option<IpAddr> {
        from_u128(self.family(), n)
    }
}

impl fmt::Display for AddrRange {
    /// `first-last`, which [`AddrRange::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first(), self.last())
    }
}

/// An address as a number (IPv4 in the low 32 bits).
pub(crate) fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(family: Family, n: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(n).ok().map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(n))),
    }
}
