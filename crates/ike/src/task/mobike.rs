//! MOBIKE (RFC 4555): the IKE SA and its CHILD SAs move to other addresses, keeping their SPIs and
//! keys. Both sides announce MOBIKE_SUPPORTED in IKE_AUTH with their other addresses (§3.3,
//! §3.4). The original initiator decides on the addresses (§3.1): it moves the SA with an
//! INFORMATIONAL request carrying UPDATE_SA_ADDRESSES, NAT detection and COOKIE2, sent on the new
//! path (§3.5, §3.8); the responder moves to where that request came from and answers with its own
//! NAT detection and the cookie. A responder whose addresses change only tells the initiator its
//! new list (§3.6).

use core::net::{IpAddr, SocketAddr};

use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{NotifyType, Payload};

use super::{Collected, InFlight, Next, notify};
use crate::config::PeerConfig;
use crate::event::DownReason;
use crate::nat::{detect, nat_notifies};
use crate::sa::{Ctx, NAT_T_PORT, SaCore};

/// At most this many ADDITIONAL_*_ADDRESS notifies go out, and at most this many of the peer's
/// addresses are kept: a bound on what a peer makes us hold (strongSwan sends at most 8 too).
pub(crate) const MAX_ADDITIONAL: usize = 8;

/// Our COOKIE2 length; §3.8 allows 8 to 64 octets.
const COOKIE2_LEN: usize = 16;
const COOKIE2_RANGE: core::ops::RangeInclusive<usize> = 8..=64;

impl SaCore {
    /// IKE_AUTH: MOBIKE_SUPPORTED and our other addresses, if the connection wants MOBIKE (§3.3).
    pub(crate) fn mobike_offer(&self, ctx: &Ctx<'_>, peer: &PeerConfig) -> Vec<Payload> {
        if !peer.mobike {
            return Vec::new();
        }
        let mut out = vec![notify(NotifyType::MOBIKE_SUPPORTED)];
        out.extend(self.address_list(ctx));
        out
    }

    /// Reads the peer's side of IKE_AUTH: MOBIKE is on when both announced it (§3.3).
    pub(crate) fn mobike_agreed(&mut self, peer: &PeerConfig, p: &Collected) {
        self.mobike = peer.mobike && p.has(NotifyType::MOBIKE_SUPPORTED);
        if self.mobike {
            self.read_address_list(&p.notifies);
        }
    }

    /// ADDITIONAL_IP4/6_ADDRESS for each of our addresses but the SA's own, or
    /// NO_ADDITIONAL_ADDRESSES when there is none (§3.4).
    fn address_list(&self, ctx: &Ctx<'_>) -> Vec<Payload> {
        let ours = self.local.ip();
        let list: Vec<Payload> = ctx
            .local_addresses
            .iter()
            .filter(|a| **a != ours && usable(**a))
            .take(MAX_ADDITIONAL)
            .map(|a| match a {
                IpAddr::V4(v4) => NotifyPayload::new(NotifyType::ADDITIONAL_IP4_ADDRESS, v4.octets().to_vec()),
                IpAddr::V6(v6) => NotifyPayload::new(NotifyType::ADDITIONAL_IP6_ADDRESS, v6.octets().to_vec()),
            })
            .map(Payload::Notify)
            .collect();
        if list.is_empty() { vec![notify(NotifyType::NO_ADDITIONAL_ADDRESSES)] } else { list }
    }

    /// The peer's address list (§3.4, §3.6): ADDITIONAL_*_ADDRESS notifies replace what we knew,
    /// NO_ADDITIONAL_ADDRESSES empties it, a message with neither leaves it. Addresses of the wrong
    /// length, unspecified, loopback or multicast ones are ignored.
    fn read_address_list(&mut self, notifies: &[NotifyPayload]) {
        let mut list = Vec::new();
        let mut said = false;
        for n in notifies {
            let addr = match n.notify_type {
                NotifyType::ADDITIONAL_IP4_ADDRESS => <[u8; 4]>::try_from(n.data.as_slice()).ok().map(IpAddr::from),
                NotifyType::ADDITIONAL_IP6_ADDRESS => <[u8; 16]>::try_from(n.data.as_slice()).ok().map(IpAddr::from),
                NotifyType::NO_ADDITIONAL_ADDRESSES => None,
                _ => continue,
            };
            said = true;
            if let Some(a) = addr.filter(|a| usable(*a) && *a != self.remote.ip())
                && list.len() < MAX_ADDITIONAL
                && !list.contains(&a)
            {
                list.push(a);
            }
        }
        if said {
            self.peer_addresses = list;
        }
    }

    /// The paths to try for a move to these addresses (ours, the peer's), with the ports RFC 4555
    /// §3.5 implies: a path keeps the SA's port on an address it already uses, and takes port 4500
    /// on a new one (MOBIKE always runs on the NAT-T port).
    pub(crate) fn probe_paths(&self, addrs: &[(IpAddr, IpAddr)]) -> Vec<(SocketAddr, SocketAddr)> {
        let port = |ip: IpAddr, now: SocketAddr| if ip == now.ip() { now.port() } else { NAT_T_PORT };
        let mut paths: Vec<(SocketAddr, SocketAddr)> = Vec::new();
        for (l, r) in addrs.iter().copied().filter(|(l, r)| l.is_ipv4() == r.is_ipv4()) {
            let path = (SocketAddr::new(l, port(l, self.local)), SocketAddr::new(r, port(r, self.remote)));
            if !paths.contains(&path) && paths.len() < MAX_ADDITIONAL + 1 {
                paths.push(path);
            }
        }
        paths
    }

    /// The INFORMATIONAL request of [`crate::sa::Job::UpdateAddresses`]. The original initiator
    /// sends `{ N(UPDATE_SA_ADDRESSES), N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
    /// N(COOKIE2), address list }` on the path it moves to (§3.5); the responder only its new
    /// address list (§3.6). `None` when MOBIKE is off on the SA.
    pub(crate) fn update_request(&mut self, ctx: &Ctx<'_>) -> Option<(Vec<Payload>, InFlight)> {
        if !self.mobike {
            self.probe.clear();
            return None;
        }
        if !self.original_initiator {
            return Some((self.address_list(ctx), InFlight::UpdateAddresses { cookie2: None }));
        }
        let (local, remote) = self.request_path();
        let mut payloads = vec![notify(NotifyType::UPDATE_SA_ADDRESSES)];
        payloads.extend(self.nat_detection(ctx, local, remote)?);
        let mut cookie2 = vec![0u8; COOKIE2_LEN];
        ctx.provider.random.fill(&mut cookie2).ok()?;
        payloads.push(Payload::Notify(NotifyPayload::new(NotifyType::COOKIE2, cookie2.clone())));
        payloads.extend(self.address_list(ctx));
        Some((payloads, InFlight::UpdateAddresses { cookie2: Some(cookie2) }))
    }

    /// Our NAT detection notifies for a message from `local` to `remote`. With `force_encap` the
    /// source hash matches no address, as in IKE_SA_INIT, so the peer keeps ESP in UDP after the
    /// move (§2.23; strongSwan's `encap` does the same): a peer whose data plane cannot change
    /// the encapsulation of an SA (charon's kernel-libipsec) would rekey it instead.
    fn nat_detection(&self, ctx: &Ctx<'_>, local: SocketAddr, remote: SocketAddr) -> Option<Vec<Payload>> {
        let mut nat = nat_notifies(self.spi_i, self.spi_r, local, remote);
        if self.peer.as_ref().is_some_and(|p| p.force_encap) {
            let mut fake = [0u8; 20];
            ctx.provider.random.fill(&mut fake).ok()?;
            if let [Payload::Notify(src), _] = &mut nat {
                src.data = fake.to_vec();
            }
        }
        Some(nat.to_vec())
    }

    /// The answer to our update (§3.5): the cookie must come back as sent (§3.8, else the answer is
    /// not to this request and the SA ends, as strongSwan does); NAT detection is done again for the
    /// new path; the SA and its CHILD SAs move to where the answer came.
    pub(crate) fn handle_update_answer(&mut self, ctx: &mut Ctx<'_>, cookie2: Option<Vec<u8>>, p: &Collected) -> Next {
        if let Some(sent) = cookie2 {
            let back = p.notifies.iter().find(|n| n.notify_type == NotifyType::COOKIE2).map(|n| n.data.as_slice());
            if back != Some(sent.as_slice()) {
                self.close(
                    ctx,
                    DownReason::Protocol("MOBIKE: the answer's COOKIE2 is not ours (RFC 4555 §3.8)".into()),
                );
                return Next::Done;
            }
        }
        self.read_address_list(&p.notifies);
        if !self.original_initiator {
            return Next::Done;
        }
        let (local, remote) = self.received_on;
        if let Some(mut nat) = detect(&p.notifies, self.spi_i, self.spi_r, local, remote) {
            if self.peer.as_ref().is_some_and(|c| c.force_encap) {
                nat.local_behind_nat = true;
            }
            self.nat = nat;
        }
        self.move_to(ctx, local, remote);
        Next::Done
    }

    /// The MOBIKE part of the peer's INFORMATIONAL request (§3.5, §3.6, §3.8), on an SA with MOBIKE:
    /// the address list, UPDATE_SA_ADDRESSES (the SA moves to where the request came from), NAT
    /// detection (answered with ours for the path the request took) and COOKIE2 (echoed). Returns
    /// the notifies for the response.
    pub(crate) fn handle_mobike_request(&mut self, ctx: &mut Ctx<'_>, notifies: &[NotifyPayload]) -> Vec<Payload> {
        let mut out = Vec::new();
        if !self.mobike {
            return out;
        }
        self.read_address_list(notifies);
        let (local, remote) = self.received_on;
        let has = |t| notifies.iter().any(|n| n.notify_type == t);
        let natd = has(NotifyType::NAT_DETECTION_SOURCE_IP) || has(NotifyType::NAT_DETECTION_DESTINATION_IP);
        if has(NotifyType::UPDATE_SA_ADDRESSES) {
            if let Some(nat) = detect(notifies, self.spi_i, self.spi_r, local, remote) {
                self.nat = nat;
            }
            self.move_to(ctx, local, remote);
        }
        if natd {
            out.extend(self.nat_detection(ctx, local, remote).unwrap_or_default());
        }
        if let Some(c) = notifies.iter().find(|n| n.notify_type == NotifyType::COOKIE2)
            && COOKIE2_RANGE.contains(&c.data.len())
        {
            out.push(Payload::Notify(NotifyPayload::new(NotifyType::COOKIE2, c.data.clone())));
        }
        out
    }
}

/// Whether an address can carry IKE (§3.4 lists the host's addresses; these never reach a peer).
fn usable(a: IpAddr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
        && match a {
            IpAddr::V4(v4) => !v4.is_broadcast() && !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        }
}
