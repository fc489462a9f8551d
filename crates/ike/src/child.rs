//! The pure parts of negotiating a CHILD SA (ESP) in IKE_AUTH or CREATE_CHILD_SA: traffic selector
//! narrowing (RFC 7296 §2.9), ESP proposal choice with SPIs (§3.3), and the keys (§2.17).

use core::net::IpAddr;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::alg::{EncrAlg, IntegAlg};
use oxswan_crypto::keys::ChildSuite;
use oxswan_crypto::proposal::select_proposal;
use oxswan_wire::sa::{Proposal, Transform};
use oxswan_wire::ts::{TrafficSelector, TsAddrs};
use oxswan_wire::{EncrId, EsnId, IntegId, KeId, ProtocolId, TransformType};

use crate::error::{IkeError, Result, Unexpected};

/// One side's selectors as the user writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsConfig {
    /// The host's own address on the IKE SA, all protocols and ports (strongSwan's `dynamic`, its
    /// default): a host-to-host tunnel.
    Dynamic,
    /// A fixed selector.
    Selector(TrafficSelector),
}

/// Selectors with `Dynamic` replaced by `host`.
pub fn resolve(cfg: &[TsConfig], host: IpAddr) -> Vec<TrafficSelector> {
    resolve_hosts(cfg, &[host])
}

/// Selectors with `Dynamic` replaced by one selector per host: the address itself, or every address
/// of its family for an unspecified one (a virtual IP asked for and not known yet, which the
/// responder narrows to the address it hands out, RFC 7296 §2.9).
pub fn resolve_hosts(cfg: &[TsConfig], hosts: &[IpAddr]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for c in cfg {
        match c {
            TsConfig::Dynamic => {
                for host in hosts {
                    let len = match (host.is_unspecified(), host.is_ipv4()) {
                        (true, _) => 0,
                        (false, true) => 32,
                        (false, false) => 128,
                    };
                    out.extend(TrafficSelector::from_prefix(*host, len, 0, 0, u16::MAX));
                }
            }
            TsConfig::Selector(ts) => out.push(ts.clone()),
        }
    }
    out
}

/// Tunnel or transport mode (RFC 7296 §1.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The default: the inner packet is carried whole.
    Tunnel,
    /// Host to host, negotiated with USE_TRANSPORT_MODE.
    Transport,
}

/// A child's configuration (strongSwan's `children.<name>`).
#[derive(Debug, Clone)]
pub struct ChildConfig {
    /// The child's name.
    pub name: String,
    /// Acceptable ESP proposals, in our order of preference.
    pub esp_proposals: Vec<Proposal>,
    /// Our side's selectors.
    pub local_ts: Vec<TsConfig>,
    /// The peer's side's selectors.
    pub remote_ts: Vec<TsConfig>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// When to rekey.
    pub lifetime: ChildLifetime,
    /// How much traffic it carries before it is rekeyed or deleted.
    pub volume: crate::volume::VolumeLimits,
    /// Per-resource CHILD SAs (RFC 9611): the first pair, the fallback, announces them with
    /// SA_RESOURCE_INFO; once the peer answers in kind, the IKE SA's initiator makes one more pair
    /// with the same selectors for each of [`crate::EndpointConfig::resources`].
    pub per_cpu_sas: bool,
}

/// When a CHILD SA is replaced and when it expires (strongSwan's `rekey_time`, `rand_time` and
/// `life_time`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildLifetime {
    /// Rekey this long after the CHILD SA was installed; `None`: never.
    pub rekey_time: Option<core::time::Duration>,
    /// Up to this much earlier, at random, so that the two peers rarely start at once (§2.8.1).
    pub rand_time: core::time::Duration,
    /// Delete the CHILD SA this long after it was installed if it was not replaced; `None`: never.
    pub life_time: Option<core::time::Duration>,
}

/// Responder narrowing (RFC 7296 §2.9): each received selector intersected with each of ours, in the
/// initiator's order, duplicates removed. `None` if either side ends up empty (TS_UNACCEPTABLE).
///
/// The initiator's first selectors may describe the packet that triggered the request (§2.9); like
/// strongSwan we treat them as ordinary selectors, so a triggering host is covered by the result
/// whenever any of its subnet is. Selectors of unknown types intersect with nothing (§3.13.1).
pub fn narrow(
    received_tsi: &[TrafficSelector],
    received_tsr: &[TrafficSelector],
    ours_remote: &[TrafficSelector],
    ours_local: &[TrafficSelector],
) -> Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)> {
    let tsi = intersect_all(received_tsi, ours_remote);
    let tsr = intersect_all(received_tsr, ours_local);
    (!tsi.is_empty() && !tsr.is_empty()).then_some((tsi, tsr))
}

fn intersect_all(theirs: &[TrafficSelector], ours: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for t in theirs {
        for o in ours {
            if let Some(i) = t.intersect(o)
                && !out.contains(&i)
            {
                out.push(i);
            }
        }
    }
    out
}

/// Whether `inner` lies within `outer`: addresses, ports and protocol (0 in `outer` covers any).
fn covers(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    matches!(inner.addrs, TsAddrs::V4 { .. } | TsAddrs::V6 { .. }) && outer.intersect(inner).as_ref() == Some(inner)
}

/// The initiator's check of a response (§2.9: the responder may narrow, never widen): every received
/// selector lies within one we proposed, and there is at least one.
pub fn is_narrowing_of(proposed: &[TrafficSelector], received: &[TrafficSelector]) -> bool {
    !received.is_empty() && received.iter().all(|r| proposed.iter().any(|p| covers(p, r)))
}

/// Our ESP proposals for an SA payload, numbered from 1, with our inbound SPI (§3.3.1).
pub fn esp_offer(proposals: &[Proposal], spi: u32) -> Vec<Proposal> {
    proposals
        .iter()
        .zip(1u8..)
        .map(|(p, number)| Proposal {
            number,
            protocol: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: p.transforms.clone(),
        })
        .collect()
}

/// The outcome of choosing an ESP proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenEsp {
    /// The proposal as the responder sends it (its own SPI) or as the initiator received it.
    pub proposal: Proposal,
    /// The other side's inbound SPI, our outbound one.
    pub peer_spi: u32,
    /// The algorithms.
    pub suite: ChildSuite,
    /// Extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// The key exchange method for PFS, if any.
    pub ke: Option<KeId>,
}

fn is_ke(ty: TransformType) -> bool {
    ty == TransformType::KE || (TransformType::ADDKE1.0..=TransformType::ADDKE7.0).contains(&ty.0)
}

/// Without key exchange (the child of IKE_AUTH, §1.2) the KE transforms are dropped from both sides
/// before choosing, as strongSwan does, so a proposal with PFS still matches.
fn without_ke(p: &[Proposal]) -> Vec<Proposal> {
    p.iter()
        .map(|p| Proposal {
            transforms: p.transforms.iter().filter(|t| !is_ke(t.transform_type)).cloned().collect(),
            ..p.clone()
        })
        .collect()
}

fn spi_of(p: &Proposal) -> Result<u32> {
    // RFC 4303 §2.1: SPI 0 is reserved for local use, 1..=255 by IANA; ESP SPIs are 4 octets.
    match p.spi_u32() {
        Some(s) if s > 255 => Ok(s),
        _ => Err(IkeError::Unexpected(Unexpected::BadEspSpi)),
    }
}

/// The suite of a proposal that holds one transform per type.
fn suite_of(p: &Proposal) -> Result<(ChildSuite, bool, Option<KeId>)> {
    let one = |ty| p.transforms_of(ty).next();
    let encr = one(TransformType::ENCR).ok_or(IkeError::NoProposalChosen)?;
    let encr = EncrAlg::new(EncrId(encr.transform_id), encr.key_length())?;
    let integ = match one(TransformType::INTEG) {
        Some(t) if t.transform_id != IntegId::NONE.0 => Some(IntegAlg::new(IntegId(t.transform_id))?),
        _ => None,
    };
    if encr.is_aead() == integ.is_some() {
        return Err(IkeError::NoProposalChosen);
    }
    let esn = match one(TransformType::ESN).map(|t| EsnId(t.transform_id)) {
        None | Some(EsnId::NO_ESN) => false,
        Some(EsnId::ESN) => true,
        Some(_) => return Err(IkeError::NoProposalChosen),
    };
    let ke = one(TransformType::KE).map(|t| KeId(t.transform_id)).filter(|k| *k != KeId::NONE);
    Ok((ChildSuite { encr, integ }, esn, ke))
}

/// The responder's choice among the initiator's ESP proposals, answered with `our_spi`.
pub fn choose_esp(
    ours: &[Proposal],
    theirs: &[Proposal],
    our_spi: u32,
    prefer_theirs: bool,
    with_ke: bool,
) -> Result<ChosenEsp> {
    let (ours, theirs) =
        if with_ke { (ours.to_vec(), theirs.to_vec()) } else { (without_ke(ours), without_ke(theirs)) };
    let ours: Vec<Proposal> = ours.into_iter().map(|p| Proposal { protocol: ProtocolId::ESP, ..p }).collect();
    let chosen = select_proposal(&ours, &theirs, prefer_theirs).ok_or(IkeError::NoProposalChosen)?;
    let peer_spi = spi_of(&chosen)?;
    let (suite, esn, ke) = suite_of(&chosen)?;
    Ok(ChosenEsp { proposal: Proposal { spi: our_spi.to_be_bytes().to_vec(), ..chosen }, peer_spi, suite, esn, ke })
}

fn sorted(ts: &[Transform]) -> Vec<(TransformType, u16, Option<u16>)> {
    let mut v: Vec<_> = ts.iter().map(|t| (t.transform_type, t.transform_id, t.key_length())).collect();
    v.sort();
    v
}

/// The initiator's check of the responder's single proposal: one we offered, reduced to one transform
/// of each type we offered (§2.7, §3.3.6); returns the responder's SPI and the suite.
pub fn accept_esp(offered: &[Proposal], response: &[Proposal], with_ke: bool) -> Result<ChosenEsp> {
    let [chosen] = response else { return Err(IkeError::Unexpected(Unexpected::NotOneProposal)) };
    if chosen.protocol != ProtocolId::ESP {
        return Err(IkeError::NoProposalChosen);
    }
    let offered = if with_ke { offered.to_vec() } else { without_ke(offered) };
    let ours = offered.iter().find(|p| p.number == chosen.number).ok_or(IkeError::NoProposalChosen)?;
    // What we would have chosen from exactly that proposal must be what the responder sent.
    let reference = select_proposal(core::slice::from_ref(ours), core::slice::from_ref(chosen), false)
        .ok_or(IkeError::NoProposalChosen)?;
    if sorted(&reference.transforms) != sorted(&chosen.transforms) {
        return Err(IkeError::NoProposalChosen);
    }
    if !with_ke && chosen.transforms.iter().any(|t| is_ke(t.transform_type) && t.transform_id != KeId::NONE.0) {
        return Err(IkeError::NoProposalChosen);
    }
    let peer_spi = spi_of(chosen)?;
    let (suite, esn, ke) = suite_of(chosen)?;
    Ok(ChosenEsp { proposal: chosen.clone(), peer_spi, suite, esn, ke })
}

/// A random inbound SPI above 255 (RFC 4303 §2.1).
pub fn random_esp_spi(provider: &CryptoProvider) -> Result<u32> {
    loop {
        let mut b = [0u8; 4];
        provider.random.fill(&mut b)?;
        let spi = u32::from_be_bytes(b);
        if spi > 255 {
            return Ok(spi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxswan_crypto::proposal::parse_esp_proposals;

    fn ts(s: &str) -> TrafficSelector {
        let (a, len) = s.split_once('/').unwrap();
        TrafficSelector::from_prefix(a.parse().unwrap(), len.parse().unwrap(), 0, 0, u16::MAX).unwrap()
    }

    fn port(s: &str, proto: u8, p: u16) -> TrafficSelector {
        TrafficSelector { ip_protocol: proto, start_port: p, end_port: p, ..ts(s) }
    }

    #[test]
    fn narrowing_cases() {
        // Exact match.
        let (i, r) =
            narrow(&[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")], &[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")]).unwrap();
        assert_eq!((i, r), (vec![ts("10.1.0.0/16")], vec![ts("10.2.0.0/16")]));
        // Initiator asks wider: narrowed to ours.
        let (i, r) =
            narrow(&[ts("0.0.0.0/0")], &[ts("0.0.0.0/0")], &[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")]).unwrap();
        assert_eq!((i, r), (vec![ts("10.1.0.0/16")], vec![ts("10.2.0.0/16")]));
        // Narrower: kept.
        let (i, _) =
            narrow(&[ts("10.1.2.0/24")], &[ts("10.2.0.0/16")], &[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")]).unwrap();
        assert_eq!(i, vec![ts("10.1.2.0/24")]);
        // Disjoint on either side.
        assert!(
            narrow(&[ts("10.9.0.0/16")], &[ts("10.2.0.0/16")], &[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")]).is_none()
        );
        assert!(
            narrow(&[ts("10.1.0.0/16")], &[ts("10.9.0.0/16")], &[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")]).is_none()
        );
        // Families only meet their own kind; several selectors each side, initiator's order kept.
        let (i, _) = narrow(
            &[ts("fd00::/8"), ts("10.0.0.0/8")],
            &[ts("0.0.0.0/0")],
            &[ts("10.1.0.0/16"), ts("fd00:1::/32"), ts("10.3.0.0/16")],
            &[ts("10.2.0.0/16")],
        )
        .unwrap();
        assert_eq!(i, vec![ts("fd00:1::/32"), ts("10.1.0.0/16"), ts("10.3.0.0/16")]);
        // Protocol and ports narrowed to ours.
        let (_, r) =
            narrow(&[ts("10.1.0.0/16")], &[ts("10.2.0.0/16")], &[ts("10.1.0.0/16")], &[port("10.2.0.1/32", 6, 80)])
                .unwrap();
        assert_eq!(r, vec![port("10.2.0.1/32", 6, 80)]);
        // §2.9 triggering packet first: a host then its subnet; both survive, without duplicates.
        let (i, _) = narrow(
            &[ts("10.1.2.3/32"), ts("10.1.0.0/16")],
            &[ts("10.2.0.0/16")],
            &[ts("10.1.0.0/16")],
            &[ts("10.2.0.0/16")],
        )
        .unwrap();
        assert_eq!(i, vec![ts("10.1.2.3/32"), ts("10.1.0.0/16")]);
    }

    #[test]
    fn initiator_accepts_only_narrowing() {
        let proposed = [ts("10.1.0.0/16")];
        assert!(is_narrowing_of(&proposed, &[ts("10.1.0.0/16")]));
        assert!(is_narrowing_of(&proposed, &[ts("10.1.5.0/24"), ts("10.1.7.7/32")]));
        assert!(is_narrowing_of(&proposed, &[port("10.1.0.1/32", 17, 53)]));
        assert!(!is_narrowing_of(&proposed, &[ts("10.0.0.0/8")]), "wider");
        assert!(!is_narrowing_of(&proposed, &[ts("10.2.0.0/16")]), "disjoint");
        assert!(!is_narrowing_of(&proposed, &[]), "empty");
        assert!(!is_narrowing_of(&proposed, &[ts("fd00::/8")]), "other family");
        assert!(!is_narrowing_of(&[port("10.1.0.1/32", 6, 80)], &[ts("10.1.0.1/32")]), "wider protocol");
        let unknown = TrafficSelector {
            addrs: TsAddrs::Unknown { ts_type: oxswan_wire::TsType(99), data: vec![] },
            ..ts("10.1.0.0/16")
        };
        assert!(!is_narrowing_of(&proposed, &[unknown]));
    }

    #[test]
    fn dynamic_resolves_to_the_host() {
        let r = resolve(&[TsConfig::Dynamic, TsConfig::Selector(ts("10.0.0.0/8"))], "192.0.2.7".parse().unwrap());
        assert_eq!(r, vec![ts("192.0.2.7/32"), ts("10.0.0.0/8")]);
        assert_eq!(resolve(&[TsConfig::Dynamic], "2001:db8::1".parse().unwrap()), vec![ts("2001:db8::1/128")]);
        let hosts: Vec<IpAddr> = vec!["0.0.0.0".parse().unwrap(), "::".parse().unwrap(), "10.3.0.1".parse().unwrap()];
        assert_eq!(resolve_hosts(&[TsConfig::Dynamic], &hosts), vec![ts("0.0.0.0/0"), ts("::/0"), ts("10.3.0.1/32")]);
    }

    #[test]
    fn esp_choice_and_spis() {
        let ours = parse_esp_proposals("aes256gcm16,aes128-sha256").unwrap();
        let theirs = esp_offer(&parse_esp_proposals("aes128-sha256-esn,aes256gcm16").unwrap(), 0x1234_5678);
        assert_eq!(theirs[1].number, 2);
        let c = choose_esp(&ours, &theirs, 0xabcd_0001, false, false).unwrap();
        assert_eq!(c.peer_spi, 0x1234_5678);
        assert_eq!(c.proposal.spi, 0xabcd_0001u32.to_be_bytes());
        assert_eq!(c.proposal.number, 2, "our order: GCM first");
        assert!(c.suite.encr.is_aead() && c.suite.integ.is_none() && !c.esn);
        // The initiator's order, and ESN.
        let c =
            choose_esp(&parse_esp_proposals("aes256gcm16,aes128-sha256-esn").unwrap(), &theirs, 0x1000, true, false)
                .unwrap();
        assert_eq!(c.proposal.number, 1);
        assert!(c.esn && c.suite.integ.is_some());
        // Accepted by the initiator with the responder's SPI.
        let back = accept_esp(&theirs, std::slice::from_ref(&c.proposal), false).unwrap();
        assert_eq!(back.peer_spi, 0x1000);
        assert_eq!(back.suite, c.suite);
        // Bad SPIs.
        let mut bad = theirs.clone();
        bad[0].spi = vec![0, 0, 0, 0];
        bad[1].spi = vec![0, 0, 0, 0];
        assert!(choose_esp(&ours, &bad, 0x1000, false, false).is_err());
        bad[1].spi = vec![1, 2, 3];
        assert!(choose_esp(&ours, &bad, 0x1000, false, false).is_err());
        // Nothing in common.
        assert!(matches!(
            choose_esp(&parse_esp_proposals("chacha20poly1305").unwrap(), &theirs, 0x1000, false, false),
            Err(IkeError::NoProposalChosen)
        ));
    }

    #[test]
    fn ike_auth_child_ignores_ke() {
        // A PFS proposal matches in IKE_AUTH, where no KE is exchanged (§1.2).
        let ours = parse_esp_proposals("aes256gcm16-x25519").unwrap();
        let theirs = esp_offer(&parse_esp_proposals("aes256gcm16-modp2048").unwrap(), 0x4000);
        let c = choose_esp(&ours, &theirs, 0x5000, false, false).unwrap();
        assert_eq!(c.ke, None);
        assert!(c.proposal.transforms.iter().all(|t| t.transform_type != TransformType::KE));
        assert!(accept_esp(&theirs, &[c.proposal], false).is_ok());
        // With KE the groups must agree.
        assert!(choose_esp(&ours, &theirs, 0x5000, false, true).is_err());
    }

    #[test]
    fn accept_rejects_what_we_did_not_offer() {
        let offered = esp_offer(&parse_esp_proposals("aes256gcm16").unwrap(), 0x4000);
        let other = esp_offer(&parse_esp_proposals("aes128gcm16").unwrap(), 0x5000);
        assert!(accept_esp(&offered, &other, false).is_err());
        // Two of a type: not a selection.
        let mut two = esp_offer(&parse_esp_proposals("aes256gcm16-aes128gcm16").unwrap(), 0x5000);
        two[0].number = 1;
        let offered2 = esp_offer(&parse_esp_proposals("aes256gcm16-aes128gcm16").unwrap(), 0x4000);
        assert!(accept_esp(&offered2, &two, false).is_err());
        // Two proposals.
        assert!(accept_esp(&offered, &[offered[0].clone(), offered[0].clone()], false).is_err());
        // An unknown number.
        let mut n = offered.clone();
        n[0].number = 7;
        assert!(accept_esp(&offered, &n, false).is_err());
    }

    #[test]
    fn spis_avoid_the_reserved_range() {
        let p = oxswan_crypto::default_provider();
        for _ in 0..100 {
            assert!(random_esp_spi(&p).unwrap() > 255);
        }
    }
}
