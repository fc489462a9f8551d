//! The control socket's commands, as the IKE thread answers them: up, down, rekey, status, reload.

use super::*;

impl Ike {
    /// `oxswan rekey`: starts the exchanges that replace `name`'s SAs and answers without waiting
    /// for them, as `swanctl --rekey` does; the log tells how each ends.
    pub(super) fn rekey(&mut self, name: &str, what: RekeyWhat) -> Response {
        let now = Instant::now();
        let sas = self.established_sas(name);
        if sas.is_empty() {
            return Response::Error { message: format!("{name} is not up") };
        }
        let mut started = 0;
        let mut refused = Vec::new();
        for sa in sas {
            let outcome: Vec<Result<(), String>> = match what {
                RekeyWhat::Children => {
                    let spis: Vec<u32> = self.endpoint.children(sa).iter().map(|c| c.spi_in).collect();
                    let rekey = |spi| self.endpoint.rekey_child(now, sa, spi).map_err(|e| format!("{spi:08x}: {e}"));
                    spis.into_iter().map(rekey).collect()
                }
                RekeyWhat::Ike => vec![self.endpoint.rekey_ike(now, sa).map_err(|e| e.to_string())],
                RekeyWhat::Reauth => vec![self.reauthenticate(sa, name).map_err(|e| format!("{e:#}"))],
            };
            for r in outcome {
                match r {
                    Ok(()) => started += 1,
                    Err(e) => refused.push(e),
                }
            }
        }
        let what = match what {
            RekeyWhat::Children => "CHILD SA rekey(s)",
            RekeyWhat::Ike => "IKE SA rekey(s)",
            RekeyWhat::Reauth => "reauthentication(s)",
        };
        if started == 0 {
            return Response::Error { message: format!("{name}: no {what} started: {}", refused.join("; ")) };
        }
        let mut message = format!("{name}: {started} {what} started");
        if !refused.is_empty() {
            message.push_str(&format!(", {} refused: {}", refused.len(), refused.join("; ")));
        }
        Response::Ok { message }
    }

    /// `oxswan redirect`: sends the chosen established clients to `gateway` (RFC 5685 §5) and
    /// answers once the requests are queued; each client's acknowledgment is logged.
    pub(super) fn redirect(&mut self, name: Option<&str>, identities: &[String], gateway: &str) -> Response {
        let to = match oxswan_ike::Gateway::parse(gateway) {
            Ok(to) => to,
            Err(e) => return Response::Error { message: format!("--gateway: {e}") },
        };
        let chosen = |i: &oxswan_ike::IkeSaInfo| {
            name.is_none_or(|n| i.name == n) && (identities.is_empty() || is_one_of(i, identities))
        };
        let sas: Vec<SaHandle> = self
            .endpoint
            .established()
            .into_iter()
            .filter(|sa| self.endpoint.info(*sa).is_some_and(|i| chosen(&i)))
            .collect();
        let whose = match (name, identities.is_empty()) {
            (Some(n), true) => n.to_owned(),
            (Some(n), false) => format!("{n} ({})", identities.join(", ")),
            (None, _) => identities.join(", "),
        };
        if sas.is_empty() {
            return Response::Error { message: format!("{whose}: no established IKE SA") };
        }
        let now = Instant::now();
        let (mut sent, mut unsupported, mut failed) = (0, 0, Vec::new());
        for sa in &sas {
            match self.endpoint.redirect(now, *sa, to.clone()) {
                Ok(()) => {
                    sent += 1;
                    tracing::info!(target: "ike", conn = %self.conn(*sa), sa = sa.0, "redirecting the client to {to}");
                }
                Err(oxswan_ike::IkeError::RedirectUnsupported) => unsupported += 1,
                Err(e) => failed.push(e.to_string()),
            }
        }
        let rest = match (unsupported, failed.is_empty()) {
            (0, true) => String::new(),
            (n, _) => {
                let mut r = String::new();
                if n > 0 {
                    r.push_str(&format!("; {n} did not announce redirect support (REDIRECT_SUPPORTED) and stay"));
                }
                if !failed.is_empty() {
                    r.push_str(&format!("; {} failed: {}", failed.len(), failed.join("; ")));
                }
                r
            }
        };
        if sent == 0 {
            return Response::Error { message: format!("{whose}: no client redirected{rest}") };
        }
        Response::Ok { message: format!("{whose}: {sent} client(s) redirected to {to}{rest}") }
    }

    pub(super) fn command(&mut self, req: Request, reply: mpsc::Sender<Response>) {
        match req {
            Request::Up { name } => {
                let up = self.endpoint.established().into_iter().find(|sa| {
                    self.endpoint.info(*sa).is_some_and(|i| i.name == name) && !self.endpoint.children(*sa).is_empty()
                });
                if up.is_some() {
                    let _ = reply.send(Response::Ok { message: format!("{name} is already up") });
                    return;
                }
                // An IKE SA of the connection without CHILD SAs (childless, RFC 6023, or its
                // children gone): they are made on it instead of on a new IKE SA.
                let has_children = self.config.connection(&name).is_some_and(|c| !c.children.is_empty());
                let bare = self.endpoint.established().into_iter().find(|sa| {
                    self.endpoint.info(*sa).is_some_and(|i| i.name == name) && self.endpoint.children(*sa).is_empty()
                });
                if bare.is_some() && !has_children {
                    let _ = reply.send(Response::Ok { message: format!("{name} is already up (it has no CHILD SAs)") });
                    return;
                }
                if let Some(sa) = bare
                    && self.endpoint.add_children(Instant::now(), sa).is_ok()
                {
                    self.waiters.push((sa, name, reply));
                    return;
                }
                match self.initiate(&name) {
                    Ok(sa) => self.waiters.push((sa, name, reply)),
                    Err(e) => {
                        let _ = reply.send(Response::Error { message: format!("{e:#}") });
                    }
                }
            }
            Request::Down { name } => {
                self.restarts.remove(&name);
                let now = Instant::now();
                let sas = self.established_sas(&name);
                for sa in &sas {
                    let _ = self.endpoint.delete_ike(now, *sa);
                }
                let message = if sas.is_empty() { format!("{name} is not up") } else { format!("{name}: deleting") };
                let _ = reply.send(Response::Ok { message });
            }
            Request::Terminate { identities } => {
                let now = Instant::now();
                let theirs = |sa: &SaHandle| self.endpoint.info(*sa).is_some_and(|i| is_one_of(&i, &identities));
                let sas: Vec<SaHandle> = self.endpoint.established().into_iter().filter(theirs).collect();
                for sa in &sas {
                    let _ = self.endpoint.delete_ike(now, *sa);
                }
                // Cut off means cut off: their session resumption tickets go too (RFC 5723).
                self.endpoint.revoke_tickets(now, &identities);
                let message = format!("{}: {} IKE SA(s) deleted", identities.join(", "), sas.len());
                let _ = reply.send(Response::Ok { message });
            }
            Request::Rekey { name, what } => {
                let _ = reply.send(self.rekey(&name, what));
            }
            Request::Redirect { name, identities, gateway } => {
                let _ = reply.send(self.redirect(name.as_deref(), &identities, &gateway));
            }
            Request::Reload => {
                let r = match self.reload() {
                    Ok(message) => Response::Ok { message },
                    Err(e) => {
                        Response::Error { message: format!("reload refused, the running configuration stays: {e:#}") }
                    }
                };
                let _ = reply.send(r);
            }
            Request::Status => {
                let DatapathStats { keepalives_received, esp_unknown_spi, too_big, icmp_too_big_sent } =
                    self.dp.stats();
                let tcp = self.streams.status();
                let s = self.endpoint.stats();
                let engine = crate::control::EngineStatus {
                    half_open: self.endpoint.half_open_count() as u64,
                    cookies: self.endpoint.cookie_mode(),
                    dropped: s.dropped,
                    dropped_malformed: s.drops.malformed,
                    dropped_unknown_spi: s.drops.unknown_spi,
                    dropped_unauthenticated: s.drops.unauthenticated,
                    cookies_sent: s.cookies_sent,
                    half_open_refused: s.half_open_refused,
                    invalid_spi_sent: s.invalid_spi_sent,
                    retransmits_answered: s.retransmits_answered,
                    redirects_sent: s.redirects_sent,
                };
                let _ = reply.send(Response::Status {
                    ike_sas: self.status(),
                    keepalives_received,
                    esp_unknown_spi,
                    too_big,
                    icmp_too_big_sent,
                    tcp,
                    engine,
                    cluster: self.cluster.as_ref().map(|c| Box::new(c.status())),
                });
            }
        }
    }

    pub(super) fn status(&self) -> Vec<IkeSaStatus> {
        let counters: HashMap<u32, PairCounters> = self.dp.counters().into_iter().collect();
        self.endpoint
            .established()
            .into_iter()
            .filter_map(|sa| {
                let info = self.endpoint.info(sa)?;
                let children = self
                    .endpoint
                    .children(sa)
                    .iter()
                    .map(|c| {
                        let k = counters.get(&c.spi_in).copied().unwrap_or_default();
                        ChildStatus {
                            name: c.name.clone(),
                            established_secs: self.age(sa, Some(c.spi_in)),
                            rekey_in_secs: self
                                .endpoint
                                .rekey_time(sa, c.spi_in)
                                .map(|t| t.saturating_duration_since(Instant::now()).as_secs()),
                            spi_in: format!("{:08x}", c.spi_in),
                            spi_out: format!("{:08x}", c.spi_out),
                            proposal: c.proposal.clone(),
                            mode: format!("{:?}", c.mode).to_lowercase(),
                            encap: c.encap,
                            local_ts: c.local_ts.iter().map(ToString::to_string).collect(),
                            remote_ts: c.remote_ts.iter().map(ToString::to_string).collect(),
                            bytes_in: k.usage.bytes_in,
                            packets_in: k.usage.packets_in,
                            bytes_out: k.usage.bytes_out,
                            packets_out: k.usage.packets_out,
                            replayed: k.replayed,
                            integrity_failed: k.integrity_failed,
                            outside_selectors: k.outside_selectors,
                            path_mtu: k.path_mtu,
                            inner_mtu: k.inner_mtu,
                            resource: c.resource.map(|r| match r {
                                oxswan_ike::PerResource::Fallback => "fallback".to_owned(),
                                oxswan_ike::PerResource::Resource(k) => k.to_string(),
                            }),
                        }
                    })
                    .collect();
                Some(IkeSaStatus {
                    established_secs: self.age(sa, None),
                    name: info.name,
                    state: "ESTABLISHED".into(),
                    initiator: info.initiator,
                    local: info.local.to_string(),
                    remote: info.remote.to_string(),
                    local_id: identity_string(&info.local_id),
                    remote_id: identity_string(&info.remote_id),
                    proposal: info.proposal,
                    spis: format!("{}_i {}_r", info.spi_i, info.spi_r),
                    nat: info.nat.any(),
                    transport: match info.transport {
                        oxswan_ike::Transport::Udp => "udp".into(),
                        oxswan_ike::Transport::Tcp => "tcp".into(),
                    },
                    mobike: info.mobike,
                    ppk: info.ppk,
                    redirected: info.redirected,
                    resumed: info.resumed,
                    eap_id: info.eap_id,
                    local_vips: info.local_vips.iter().map(ToString::to_string).collect(),
                    remote_vips: info.remote_vips.iter().map(ToString::to_string).collect(),
                    dns: info.dns.iter().map(ToString::to_string).collect(),
                    children,
                })
            })
            .collect()
    }

    /// Seconds since an SA came up.
    pub(super) fn age(&self, sa: SaHandle, child: Option<u32>) -> u64 {
        self.since.get(&(sa, child)).map_or(0, |t| t.elapsed().as_secs())
    }
}

/// Whether the SA's peer is one of `identities`: its IKE identity as `status` shows it, or its EAP
/// identity (`terminate` and `redirect` pick peers so).
fn is_one_of(i: &oxswan_ike::IkeSaInfo, identities: &[String]) -> bool {
    identities.iter().any(|id| identity_string(&i.remote_id) == *id || i.eap_id.as_ref() == Some(id))
}
