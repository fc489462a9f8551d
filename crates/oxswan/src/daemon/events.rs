//! What the IKE thread does with the engine's events: installs and removes CHILD SAs through the
//! data plane, routes, virtual IPs and DNS, RADIUS, restarts, and the log lines a user reads.

use super::*;

impl Ike {
    pub(super) fn event(&mut self, e: Event) {
        if let Some(m) = self.metrics.as_mut() {
            m.tally.event(&e);
        }
        match e {
            Event::IkeSaUp { sa, info } => {
                self.restarts.remove(&info.name);
                if let Some(eap) = &info.eap_id {
                    tracing::info!(target: "ike", conn = %info.name, sa = sa.0, "EAP identity {eap}");
                }
                if !info.remote_vips.is_empty() {
                    let vips = info.remote_vips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    tracing::info!(target: "ike", conn = %info.name, sa = sa.0, "virtual IPs {vips} lent to the peer");
                }
                self.rearm(&info.name);
                if let Some(c) = self.cluster.as_mut() {
                    let replace =
                        self.config.connection(&info.name).is_some_and(|c| c.unique == oxswan_config::Unique::Replace);
                    c.up(sa, &info, replace);
                }
                self.since.insert((sa, None), Instant::now());
                self.access.up(sa, &info);
                if let Some(r) = self.radius.as_mut() {
                    r.up(Instant::now(), sa, &info);
                }
                tracing::info!(
                    target: "ike", conn = %info.name, sa = sa.0,
                    "IKE SA established with {} @ {} ({}){}{}",
                    identity_string(&info.remote_id), info.remote, info.proposal, if info.nat.any() { ", NAT or encapsulation" } else { "" },
                    if info.resumed { ", resumed with a ticket (RFC 5723)" } else { "" }
                );
            }
            Event::EapRelay { sa, identity, eap, peer, local } => {
                let sent = match self.radius.as_mut() {
                    Some(r) => r.relay(Instant::now(), sa, &identity, &eap, (peer, local)),
                    None => Err(oxswan_ike::RelayAnswer::Timeout),
                };
                if let Err(answer) = sent {
                    let _ = self.endpoint.relay_answer(Instant::now(), sa, answer);
                }
            }
            Event::AddressFailure { sa, owner, error } => {
                tracing::warn!(target: "ike", conn = %self.conn(sa), sa = sa.0, "no virtual IP for {owner}: {error}; sending INTERNAL_ADDRESS_FAILURE");
            }
            Event::ChildSaReady { sa, child } => {
                let conn = self.conn(sa);
                self.since.insert((sa, Some(child.spi_in)), Instant::now());
                match child.replaces {
                    Some(old) => tracing::info!(
                        target: "ike", conn = %conn, sa = sa.0,
                        "CHILD SA {} rekeyed: {old:08x}_i replaced by {:08x}_i {:08x}_o {}",
                        child.name, child.spi_in, child.spi_out, child.proposal
                    ),
                    None => tracing::info!(
                        target: "ike", conn = %conn, sa = sa.0,
                        "CHILD SA {} up: {:08x}_i {:08x}_o {}, {} === {}",
                        child.name, child.spi_in, child.spi_out, child.proposal,
                        join(&child.local_ts), join(&child.remote_ts)
                    ),
                }
                if let Err(err) = self.install(sa, &child) {
                    // A pair the data plane does not hold must not stay in the engine either.
                    tracing::warn!(target: "dataplane", conn = %conn, sa = sa.0, "cannot install CHILD SA {}: {err:#}; deleting it", child.name);
                    self.refused.insert(child.spi_in);
                    let _ = self.endpoint.delete_child(Instant::now(), sa, child.spi_in);
                }
                self.answer(sa, Response::Ok { message: format!("{} established", child.name) });
            }
            // Only a per-resource pair beyond the peer's count, with other pairs up: a TS_MAX_QUEUE
            // that leaves the IKE SA without any is a failure like the others below.
            Event::ChildSaFailed { sa, name, reason }
                if reason == oxswan_wire::NotifyType::TS_MAX_QUEUE && !self.endpoint.children(sa).is_empty() =>
            {
                // RFC 9611 §4.2: the peer has as many per-resource pairs as it takes; the others
                // stay up, and our workers without a pair of their own send on the fallback.
                if self.endpoint.info(sa).is_some_and(|i| i.initiator) {
                    tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "CHILD SA {name}: the peer takes no more per-resource pairs (TS_MAX_QUEUE)");
                } else {
                    tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "CHILD SA {name}: a per-resource pair beyond our workers refused (TS_MAX_QUEUE)");
                }
            }
            Event::ChildSaFailed { sa, name, reason } => {
                let ours = self.endpoint.info(sa).is_some_and(|i| i.initiator);
                if ours {
                    tracing::warn!(target: "ike", conn = %self.conn(sa), sa = sa.0, "CHILD SA {name} failed: the peer answered {reason}");
                } else {
                    tracing::warn!(target: "ike", conn = %self.conn(sa), sa = sa.0, "refused the peer's CHILD SA {name} with {reason}");
                }
                self.answer(
                    sa,
                    Response::Error { message: format!("CHILD SA {name} failed: the peer answered {reason}") },
                );
                // An IKE SA we started for a child that could not be made carries nothing: delete it
                // rather than leave it half set up (strongSwan keeps it; the RFC allows either).
                if ours && self.endpoint.children(sa).is_empty() {
                    tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "deleting the IKE SA: it has no CHILD SA");
                    let _ = self.endpoint.delete_ike(Instant::now(), sa);
                }
            }
            Event::ChildSaDeleted { sa, spi_in, .. } => {
                tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "CHILD SA {spi_in:08x}_i deleted");
                self.since.remove(&(sa, Some(spi_in)));
                // A pair the data plane refused is not its to remove: the SPI may be another's.
                // The last counters of one it removes go to the accounting and the metrics' totals.
                let last = if self.refused.remove(&spi_in) { None } else { self.dp.remove(spi_in) };
                if let Some(k) = last {
                    if let Some(r) = self.radius.as_mut() {
                        r.pair_gone(sa, crate::radius::usage_of(&k.usage));
                    }
                    if let Some(m) = self.metrics.as_mut() {
                        m.tally.pair_gone(&k);
                    }
                }
                // A route stays while another pair (a rekey's successor) still covers its prefix.
                for r in self.routes.remove(&spi_in).unwrap_or_default() {
                    if !self.routes.values().any(|rs| rs.contains(&r)) && !self.trap_routes.contains(&r) {
                        route("del", &r, &self.config.daemon.tun, None);
                    }
                }
                self.unpin_owner(&PinOwner::Pair(spi_in));
            }
            Event::IkeSaRekeyed { old, new, info } => {
                tracing::info!(
                    target: "ike", conn = %info.name, sa = new.0,
                    "IKE SA rekeyed: {} replaces SA {} ({})", info.spi_i, old.0, info.proposal
                );
                self.access.rekeyed(old, new);
                if let Some(c) = self.cluster.as_mut() {
                    c.rekeyed(old, new, &info);
                }
                if let Some(r) = self.radius.as_mut() {
                    r.rekeyed(old, new);
                }
                // The CHILD SAs moved: so do their ages and the SA's own.
                let moved: Vec<_> = self.since.keys().filter(|(sa, _)| *sa == old).copied().collect();
                for key in moved {
                    if let Some(t) = self.since.remove(&key) {
                        self.since.insert((new, key.1), t);
                    }
                }
            }
            Event::ReauthDue { sa, name } => {
                let _ = self.reauthenticate(sa, &name);
            }
            Event::Redirect { sa, name, to } => self.follow_redirect(sa, &name, to),
            Event::ChildSaOutbound { sa, spi_in } => {
                tracing::debug!(target: "ike", conn = %self.conn(sa), sa = sa.0, "sending on CHILD SA {spi_in:08x}_i");
                self.dp.set_outbound(spi_in);
            }
            Event::IkeSaDown { sa, name, reason } => {
                let why = down_reason(&reason);
                // dpd_action (the peer stopped answering) and close_action (it deleted the SA); a
                // connection being restarted keeps trying until an SA is up.
                if let Some(n) = name.as_deref() {
                    self.rearm(n);
                    let c = self.config.connection(n);
                    let restart = self.restarts.contains_key(n)
                        || match reason {
                            DownReason::Timeout => c.is_some_and(|c| c.dpd_action == PeerAction::Restart),
                            DownReason::PeerDeleted => c.is_some_and(|c| c.close_action == PeerAction::Restart),
                            _ => false,
                        };
                    if restart && c.is_some_and(|c| !c.remote_addrs.is_empty()) {
                        self.restarts.insert(n.to_owned(), Instant::now() + RESTART_RETRY);
                        // A peer that stopped answering: try the connection's next address.
                        if reason == DownReason::Timeout && c.is_some_and(|c| c.remote_addrs.len() > 1) {
                            let turn = self.remote_turn.entry(n.to_owned()).or_insert(0);
                            *turn = turn.wrapping_add(1);
                            tracing::info!(target: "ike", conn = %n, "the peer stopped answering: trying its next address");
                        }
                    }
                }
                self.since.remove(&(sa, None));
                if let Some(c) = self.cluster.as_mut() {
                    c.down(sa);
                }
                // A rekeyed IKE SA handed its virtual IPs and accounting to its successor
                // (IkeSaRekeyed), so this touches only what it still has.
                self.access.down(sa);
                if let Some(r) = self.radius.as_mut() {
                    r.down(Instant::now(), sa, terminate_cause(&reason));
                }
                tracing::info!(target: "ike", conn = name.as_deref().unwrap_or("?"), sa = sa.0, "IKE SA down: {why}");
                self.answer(sa, Response::Error { message: why });
            }
            Event::AuthFailed { sa, peer, reason } => {
                tracing::warn!(target: "ike", conn = %self.conn(sa), sa = sa.0, "authentication with {peer} failed: {reason}");
            }
            Event::CookieMode { on: true, half_open } => {
                tracing::warn!(target: "ike", "{half_open} half-open IKE SAs: demanding a cookie of every new initiator (RFC 7296 §2.6)");
            }
            Event::CookieMode { on: false, half_open } => {
                tracing::info!(target: "ike", "{half_open} half-open IKE SAs: no longer demanding cookies");
            }
            Event::InitRejected { peer, notify, reason } => {
                // INVALID_KE_PAYLOAD is part of a normal negotiation (RFC 7296 §1.2); the rest is not.
                if notify == oxswan_wire::NotifyType::INVALID_KE_PAYLOAD {
                    tracing::info!(target: "ike", "IKE_SA_INIT from {peer}: asked for another key exchange ({reason})");
                } else if notify == oxswan_wire::NotifyType::TICKET_NACK {
                    // RFC 5723 §4: the client then sets the SA up in full.
                    tracing::info!(target: "ike", "IKE_SESSION_RESUME from {peer} refused with TICKET_NACK ({reason}); the client may set the SA up in full");
                } else {
                    tracing::warn!(target: "ike", "IKE_SA_INIT from {peer} refused with {notify}: {reason}");
                }
            }
            Event::PathChanged { sa, local, remote, spis_in } => {
                if let Some(c) = self.cluster.as_mut() {
                    c.moved(sa, remote);
                }
                // RFC 7296 §2.23: ESP follows IKE to the peer's new mapping (to its NAT-T port).
                tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "the peer moved: now {remote} (from {local})");
                // Over TCP the peer's end of the stream, as it is (RFC 9329 §3.2).
                let tcp = self.endpoint.info(sa).is_some_and(|i| i.transport == oxswan_ike::Transport::Tcp);
                let esp = if tcp { remote } else { esp_destination(remote) };
                for spi in spis_in {
                    if !self.dp.update_path(spi, local, esp) {
                        tracing::debug!(target: "dataplane", sa = sa.0, "no pair {spi:08x}_i to move");
                    }
                }
            }
            Event::LivenessConfirmed { sa } => {
                tracing::debug!(target: "ike", conn = %self.conn(sa), sa = sa.0, "the peer is alive");
            }
            Event::RedirectAcknowledged { sa } => {
                tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "the client acknowledged the redirect; it deletes this IKE SA once it is up at the new gateway");
            }
            Event::VolumeLimit { sa, spi_in, action, usage } => {
                let what = format!(
                    "{} octets, {} packets, sequence number {}",
                    usage.bytes_in.max(usage.bytes_out),
                    usage.packets_in.max(usage.packets_out),
                    usage.seq
                );
                let (limit, doing) = match action {
                    VolumeAction::Rekey => ("rekey", "rekeying"),
                    VolumeAction::Delete => ("life", "deleting"),
                };
                tracing::info!(target: "ike", conn = %self.conn(sa), sa = sa.0, "CHILD SA {spi_in:08x}_i reached its {limit} volume ({what}): {doing}");
            }
        }
    }

    pub(super) fn install(&mut self, sa: SaHandle, c: &ChildSa) -> anyhow::Result<()> {
        let info = self.endpoint.info(sa);
        let name = info.as_ref().map_or_else(|| c.name.clone(), |i| format!("{}/{}", i.name, c.name));
        // The engine says when a pair starts sending (make before break, RFC 7296 §2.8, §2.8.3):
        // `outbound` now, or Event::ChildSaOutbound later.
        if !c.outbound {
            tracing::debug!(target: "ike", conn = %name, sa = sa.0, "CHILD SA {:08x}_i waits to send", c.spi_in);
        }
        self.dp.install(name, c)?;
        let src = local_source(&c.local_ts);
        let peer = info.as_ref().map(|i| i.remote.ip());
        let mut added = Vec::new();
        for ts in &c.remote_ts {
            if let Some(r) = cidr(ts) {
                // A client's virtual IP: the pool's one route takes it in already.
                if self.access.routed(&r) {
                    continue;
                }
                for r in oxswan_io::route::tunnel_prefixes(&r) {
                    if let Some(peer) = peer.filter(|p| oxswan_io::route::covers(&r, *p)) {
                        if oxswan_io::route::is_host(&r) {
                            // The selector is the peer itself: its route into the tunnel wins.
                            tracing::warn!(target: "route", "selector {r} is the peer's own address: IKE and ESP to it enter the tunnel");
                        } else {
                            self.pin_peer(PinOwner::Pair(c.spi_in), peer);
                        }
                    }
                    route("replace", &r, &self.config.daemon.tun, src.filter(|s| s.is_ipv4() == r.contains('.')));
                    added.push(r);
                }
            } else {
                tracing::warn!(target: "route", "selector {ts} is not one prefix: no route for it");
            }
        }
        self.routes.insert(c.spi_in, added);
        self.dp.release_waiting(c.spi_in);
        Ok(())
    }
}

/// Acct-Terminate-Cause (RFC 2866 §5.10) for why an IKE SA ended.
fn terminate_cause(r: &DownReason) -> oxswan_radius::TerminateCause {
    use oxswan_radius::TerminateCause as C;
    match r {
        DownReason::PeerDeleted | DownReason::PeerRestarted => C::USER_REQUEST,
        DownReason::Timeout => C::LOST_CARRIER,
        DownReason::Expired => C::SESSION_TIMEOUT,
        DownReason::LocalDeleted => C::ADMIN_RESET,
        _ => C::NAS_REQUEST,
    }
}

/// What a user reads for why an IKE SA ended.
fn down_reason(r: &DownReason) -> String {
    match r {
        DownReason::PeerNotify(n) => format!("the peer answered {n}"),
        DownReason::AuthFailed(why) => format!("authentication of the peer failed: {why}"),
        DownReason::Protocol(why) => format!("protocol error: {why}"),
        DownReason::Timeout => "no answer from the peer (retransmissions exhausted)".into(),
        DownReason::HalfOpenTimeout => "the peer never completed the exchange".into(),
        DownReason::PeerDeleted => "deleted by the peer".into(),
        DownReason::LocalDeleted => "deleted".into(),
        DownReason::PeerRestarted => "the peer restarted (INITIAL_CONTACT)".into(),
        DownReason::Rekeyed => "replaced by its rekeyed successor".into(),
        DownReason::Expired => "expired: not rekeyed or reauthenticated within its lifetime".into(),
        DownReason::Reauthenticated => "replaced by a reauthenticated IKE SA".into(),
        DownReason::AddressFailure(why) => format!("no virtual IP for the client: {why}"),
        DownReason::NoVirtualIp => "the gateway gave no virtual IP".into(),
        DownReason::Replaced => "replaced by a new IKE SA of the same identity (unique = replace)".into(),
        DownReason::Duplicate => "an IKE SA of the same identity exists (unique = keep)".into(),
        DownReason::Redirected => "redirected to another gateway before it was up (RFC 5685)".into(),
    }
}
