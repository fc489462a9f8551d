//! The configuration payload in IKE_AUTH (RFC 7296 §2.19, §3.15): the client asks for virtual IPs
//! and DNS servers with CP(CFG_REQUEST); the gateway lends addresses from the connection's pools,
//! by the client's identity, and answers with CP(CFG_REPLY). The child that rides on the exchange
//! then has the virtual IPs as its `dynamic` selectors (§2.9: the gateway narrows the client's
//! 0.0.0.0/0 to its address).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use oxswan_wire::cp::{CfgAttribute, CfgValue, CpPayload};
use oxswan_wire::{CfgAttributeType as A, CfgType, NotifyType, Payload};

use super::{Collected, notify};
use crate::config::PeerConfig;
use crate::event::{DownReason, Event};
use crate::leases::{Lease, LeaseError};
use crate::sa::{Ctx, SaCore};

/// The CP(CFG_REQUEST) for the connection's virtual IPs, if it asks for any: an address and DNS
/// servers of each family (a specific address where configured, else an empty value: any).
pub(crate) fn request(peer: &PeerConfig) -> Option<Payload> {
    if peer.vips.is_empty() {
        return None;
    }
    let mut attributes = Vec::new();
    let (mut v4, mut v6) = (false, false);
    for vip in &peer.vips {
        match vip {
            IpAddr::V4(a) if !v4 => {
                v4 = true;
                attributes.push(if a.is_unspecified() {
                    CfgAttribute::request(A::INTERNAL_IP4_ADDRESS)
                } else {
                    CfgAttribute::ipv4(A::INTERNAL_IP4_ADDRESS, *a)
                });
            }
            IpAddr::V6(a) if !v6 => {
                v6 = true;
                attributes.push(if a.is_unspecified() {
                    CfgAttribute::request(A::INTERNAL_IP6_ADDRESS)
                } else {
                    CfgAttribute::ipv6_prefix(A::INTERNAL_IP6_ADDRESS, *a, 128)
                });
            }
            _ => {}
        }
    }
    if v4 {
        attributes.push(CfgAttribute::request(A::INTERNAL_IP4_DNS));
    }
    if v6 {
        attributes.push(CfgAttribute::request(A::INTERNAL_IP6_DNS));
    }
    Some(Payload::Cp(CpPayload { cfg_type: CfgType::CFG_REQUEST, attributes }))
}

/// An address a gateway may give: not unspecified, loopback or multicast.
fn usable(a: IpAddr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}

/// A DNS name: labels of letters, digits, `-` and `_`, at most 63 octets each, 253 in all, with
/// an optional final dot.
fn is_dns_name(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The prefix length of an IPv4 netmask, if it is one.
fn mask_len(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then(|| u8::try_from(len).ok()).flatten()
}

impl SaCore {
    /// The virtual IPs of this SA's `dynamic` selectors on our side: as a client asking for them,
    /// those the gateway gave, else those asked for (unspecified: any of the family); otherwise our
    /// address on the IKE SA.
    pub(crate) fn local_hosts(&self) -> Vec<IpAddr> {
        let asking = self.peer.as_ref().is_some_and(|p| !p.vips.is_empty());
        match (asking, self.vips.local.is_empty()) {
            (true, false) => self.vips.local.clone(),
            (true, true) => self.peer.as_ref().map(|p| p.vips.clone()).unwrap_or_default(),
            (false, _) => vec![self.local.ip()],
        }
    }

    /// The hosts of the peer's `dynamic` selectors: the virtual IPs lent to it, else its address.
    pub(crate) fn remote_hosts(&self) -> Vec<IpAddr> {
        if self.vips.leases.is_empty() {
            vec![self.remote.ip()]
        } else {
            self.vips.leases.iter().map(|l| l.addr).collect()
        }
    }

    /// As client, the gateway's CP(CFG_REPLY): our virtual IPs and DNS servers. Without an
    /// address when we asked for one, the IKE SA is of no use (strongSwan's client gives up too):
    /// `false`, and the SA is closed.
    pub(crate) fn read_cp_reply(&mut self, ctx: &mut Ctx<'_>, p: &Collected) -> bool {
        let Some(peer) = self.peer.clone() else { return true };
        if peer.vips.is_empty() {
            return true;
        }
        if let Some(cp) = p.cp.as_ref().filter(|cp| cp.cfg_type == CfgType::CFG_REPLY) {
            for a in &cp.attributes {
                // §3.15.1: a malformed attribute is skipped, not fatal.
                let Ok(value) = a.typed() else { continue };
                match (a.attribute_type, value) {
                    (A::INTERNAL_IP4_ADDRESS, CfgValue::Ipv4(x)) if usable(x.into()) => self.vips.local.push(x.into()),
                    (A::INTERNAL_IP6_ADDRESS, CfgValue::Ipv6Prefix(x, _)) if usable(x.into()) => {
                        self.vips.local.push(x.into());
                    }
                    (A::INTERNAL_IP4_DNS, CfgValue::Ipv4(x)) if usable(x.into()) => self.vips.dns.push(x.into()),
                    (A::INTERNAL_IP6_DNS, CfgValue::Ipv6(x)) if usable(x.into()) => self.vips.dns.push(x.into()),
                    (A::INTERNAL_IP4_SUBNET, CfgValue::Ipv4Subnet(x, m)) => {
                        if let Some(len) = mask_len(m) {
                            self.vips.split_include.push((x.into(), len));
                        }
                    }
                    (A::INTERNAL_IP6_SUBNET, CfgValue::Ipv6Prefix(x, len)) => {
                        self.vips.split_include.push((x.into(), len))
                    }
                    // It goes into the resolver's configuration: a DNS name only (RFC 8598 §4).
                    (A::INTERNAL_DNS_DOMAIN, CfgValue::Text(d)) if is_dns_name(&d) => self.vips.dns_domains.push(d),
                    _ => {}
                }
            }
        }
        let mut seen = Vec::new();
        self.vips.local.retain(|a| {
            let fresh = !seen.contains(a);
            seen.push(*a);
            fresh
        });
        if self.vips.local.is_empty() {
            self.close(ctx, DownReason::NoVirtualIp);
            return false;
        }
        true
    }

    /// As gateway, the client's CP(CFG_REQUEST): addresses lent from the connection's pools to
    /// `owner` and the pools' attributes, as CP(CFG_REPLY); `None` when nothing was asked or the
    /// connection has no pools (§3.15: the request is then ignored). No address for a family asked
    /// for fails the IKE SA with INTERNAL_ADDRESS_FAILURE (§3.15.4), as strongSwan does; the
    /// leases taken so far go back.
    pub(crate) fn answer_cp_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: &PeerConfig,
        p: &Collected,
    ) -> Result<Option<Payload>, Payload> {
        let Some(cp) = p.cp.as_ref().filter(|cp| cp.cfg_type == CfgType::CFG_REQUEST) else { return Ok(None) };
        if peer.pools.is_empty() {
            return Ok(None);
        }
        let mut wanted: Vec<(bool, Option<IpAddr>)> = Vec::new();
        let (mut dns4, mut dns6) = (false, false);
        for a in &cp.attributes {
            let value = a.typed().ok();
            let requested = match value {
                Some(CfgValue::Ipv4(x)) if !x.is_unspecified() => Some(IpAddr::V4(x)),
                Some(CfgValue::Ipv6Prefix(x, _)) if !x.is_unspecified() => Some(IpAddr::V6(x)),
                _ => None,
            };
            match a.attribute_type {
                A::INTERNAL_IP4_ADDRESS if !wanted.iter().any(|(v6, _)| !v6) => wanted.push((false, requested)),
                A::INTERNAL_IP6_ADDRESS if !wanted.iter().any(|(v6, _)| *v6) => wanted.push((true, requested)),
                A::INTERNAL_IP4_DNS => dns4 = true,
                A::INTERNAL_IP6_DNS => dns6 = true,
                _ => {}
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        // A client that restarted (INITIAL_CONTACT, §2.4) replaces its old SA, which the endpoint
        // forgets right after this step unless `unique = never`: it takes the old lease over from
        // whatever address it comes now. Otherwise leases are shared with the same host only.
        let restarted = p.has(NotifyType::INITIAL_CONTACT) && peer.unique != crate::config::Unique::Never;
        let host = (!restarted).then_some(self.remote);
        let mut none_of = None;
        for (v6, requested) in wanted {
            match ctx.leases.acquire(&peer.pools, v6, &self.vips.owner, host, requested, ctx.now) {
                Ok(lease) => self.vips.leases.push(lease),
                // No pool of that family: the client gets no address of it (a dual-stack client
                // on an IPv4-only gateway), as long as it gets one of the other.
                Err(error @ LeaseError::NoPool { .. }) => none_of = Some(error),
                Err(error) => return Err(self.address_failure(ctx, error)),
            }
        }
        // One or two leases, kept for the SA's life: no room for more.
        self.vips.leases.shrink_to_fit();
        if self.vips.leases.is_empty()
            && let Some(error) = none_of
        {
            return Err(self.address_failure(ctx, error));
        }
        Ok(Some(reply(&self.vips.leases, dns4, dns6)))
    }

    /// No address for the client: the leases go back, the daemon hears why, and the IKE SA ends
    /// with INTERNAL_ADDRESS_FAILURE as the answer.
    fn address_failure(&mut self, ctx: &mut Ctx<'_>, error: LeaseError) -> Payload {
        ctx.out.events.push_back(Event::AddressFailure {
            sa: self.handle,
            owner: self.vips.owner.clone(),
            error: error.clone(),
        });
        self.close(ctx, DownReason::AddressFailure(error));
        notify(NotifyType::INTERNAL_ADDRESS_FAILURE)
    }
}

/// CP(CFG_REPLY) with the lent addresses and their pools' attributes. DNS servers go to a client
/// that asked for them or got an address of their family; Windows asks for IPv4 DNS only.
fn reply(leases: &[Lease], dns4: bool, dns6: bool) -> Payload {
    let mut attributes = Vec::new();
    for l in leases {
        attributes.push(match l.addr {
            IpAddr::V4(a) => CfgAttribute::ipv4(A::INTERNAL_IP4_ADDRESS, a),
            // §3.15.1: the prefix is that of the client's own address, a host.
            IpAddr::V6(a) => CfgAttribute::ipv6_prefix(A::INTERNAL_IP6_ADDRESS, a, 128),
        });
    }
    let mut seen: Vec<CfgAttribute> = Vec::new();
    let mut push = |attributes: &mut Vec<CfgAttribute>, a: CfgAttribute| {
        if !seen.contains(&a) {
            seen.push(a.clone());
            attributes.push(a);
        }
    };
    for l in leases {
        let family_v6 = l.addr.is_ipv6();
        for d in &l.attributes.dns {
            match d {
                IpAddr::V4(x) if dns4 || !family_v6 => {
                    push(&mut attributes, CfgAttribute::ipv4(A::INTERNAL_IP4_DNS, *x))
                }
                IpAddr::V6(x) if dns6 || family_v6 => {
                    push(&mut attributes, CfgAttribute::ipv6(A::INTERNAL_IP6_DNS, *x))
                }
                _ => {}
            }
        }
        for (net, len) in &l.attributes.split_include {
            match net {
                IpAddr::V4(x) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from((*len).min(32))).unwrap_or(0);
                    let value = [x.octets(), Ipv4Addr::from(mask).octets()].concat();
                    push(&mut attributes, CfgAttribute { attribute_type: A::INTERNAL_IP4_SUBNET, value });
                }
                IpAddr::V6(x) => push(&mut attributes, subnet6(*x, *len)),
            }
        }
        for d in &l.attributes.dns_domains {
            push(
                &mut attributes,
                CfgAttribute { attribute_type: A::INTERNAL_DNS_DOMAIN, value: d.as_bytes().to_vec() },
            );
        }
    }
    Payload::Cp(CpPayload { cfg_type: CfgType::CFG_REPLY, attributes })
}

fn subnet6(addr: Ipv6Addr, len: u8) -> CfgAttribute {
    CfgAttribute::ipv6_prefix(A::INTERNAL_IP6_SUBNET, addr, len.min(128))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn only_dns_names_are_taken_as_domains() {
        assert!(is_dns_name("corp.example"));
        assert!(is_dns_name("corp.example."));
        assert!(is_dns_name("_srv.x-y.example"));
        assert!(!is_dns_name(""));
        assert!(!is_dns_name("x\nnameserver 203.0.113.9"));
        assert!(!is_dns_name("two words"));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name(&"a".repeat(64)));
    }

    #[test]
    fn netmask_lengths() {
        assert_eq!(mask_len(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_len(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_len(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_len(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn reply_carries_addresses_and_attributes_once() {
        let attrs = crate::leases::PoolAttributes {
            dns: vec!["10.10.0.53".parse().unwrap(), "fd10::53".parse().unwrap()],
            split_include: vec![("10.2.0.0".parse().unwrap(), 24)],
            dns_domains: vec!["corp.example".into()],
        };
        let leases = [
            Lease {
                pool: "rw4".into(),
                addr: "10.10.0.1".parse().unwrap(),
                attributes: attrs.clone().into(),
                holding: 0,
            },
            Lease { pool: "rw6".into(), addr: "fd10::1".parse().unwrap(), attributes: attrs.into(), holding: 0 },
        ];
        let Payload::Cp(cp) = reply(&leases, true, true) else { panic!() };
        let typed: Vec<_> = cp.attributes.iter().map(|a| (a.attribute_type, a.typed().unwrap())).collect();
        assert_eq!(
            typed,
            vec![
                (A::INTERNAL_IP4_ADDRESS, CfgValue::Ipv4("10.10.0.1".parse().unwrap())),
                (A::INTERNAL_IP6_ADDRESS, CfgValue::Ipv6Prefix("fd10::1".parse().unwrap(), 128)),
                (A::INTERNAL_IP4_DNS, CfgValue::Ipv4("10.10.0.53".parse().unwrap())),
                (A::INTERNAL_IP6_DNS, CfgValue::Ipv6("fd10::53".parse().unwrap())),
                (
                    A::INTERNAL_IP4_SUBNET,
                    CfgValue::Ipv4Subnet("10.2.0.0".parse().unwrap(), "255.255.255.0".parse().unwrap())
                ),
                (A::INTERNAL_DNS_DOMAIN, CfgValue::Text("corp.example".into())),
            ]
        );
    }
}
