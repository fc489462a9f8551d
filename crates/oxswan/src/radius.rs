//! RADIUS at the daemon's edge: the engine's relayed EAP (`Event::EapRelay`) goes to the `[radius]`
//! servers as Access-Requests (RFC 3579) and their answers back as `RelayAnswer`s; accounting
//! (RFC 2866) follows each client's IKE SA: Start when it is up with its virtual IPs, Interim-Update
//! every `interim`, Stop with its traffic when it goes. The protocol is `oxswan-radius`'s, sans-IO;
//! here are only the socket, the clock and the bookkeeping per IKE SA.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxswan_config::Radius as RadiusConfig;
use oxswan_crypto::provider::SecureRandom;
use oxswan_ike::{IkeSaInfo, RelayAnswer, SaHandle};
use oxswan_radius::{
    AccountingRecord, AcctStatus, Answer, ClientConfig, EapSession, RadiusClient, RequestId, ServerConfig,
    TerminateCause, Usage, station_id,
};
use oxswan_wire::payloads::EapPayload;

use crate::input::Input;

/// What a request in flight is for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Eap(SaHandle),
    Accounting,
}

/// An accounting session: one client's IKE SA.
#[derive(Debug)]
struct Session {
    id: String,
    user: Vec<u8>,
    framed: Vec<IpAddr>,
    class: Vec<Vec<u8>>,
    calling: String,
    called: String,
    started: Instant,
    next_interim: Option<Instant>,
}

/// The daemon's RADIUS client.
#[derive(Debug)]
pub struct Radius {
    client: RadiusClient,
    socket: Arc<UdpSocket>,
    random: Arc<dyn SecureRandom>,
    accounting: bool,
    interim: Option<Duration>,
    /// The EAP conversation of each IKE SA: its State and server.
    conversations: HashMap<SaHandle, EapSession>,
    /// Class attributes of each SA's Access-Accept, for its accounting.
    class: HashMap<SaHandle, Vec<Vec<u8>>>,
    sessions: HashMap<SaHandle, Session>,
    pending: HashMap<RequestId, Purpose>,
    /// Traffic of the pairs an accounted SA had and that are gone (rekeyed or deleted).
    gone: HashMap<SaHandle, Usage>,
    /// Acct-Session-Ids: unique per daemon run, as strongSwan's (start time and a counter).
    next_session: u64,
    epoch: u64,
    /// Round trips of Access-Requests and Accounting-Requests, for metrics.
    round_trips: (crate::metrics::Histogram, crate::metrics::Histogram),
}

/// The RADIUS view of a pair's counters: input is what the gateway received from the client
/// (RFC 2866 §5.3).
pub fn usage_of(c: &oxswan_ike::volume::ChildUsage) -> Usage {
    Usage {
        input_octets: c.bytes_in,
        output_octets: c.bytes_out,
        input_packets: c.packets_in,
        output_packets: c.packets_out,
    }
}

/// Two counters added.
pub fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        input_octets: a.input_octets.saturating_add(b.input_octets),
        output_octets: a.output_octets.saturating_add(b.output_octets),
        input_packets: a.input_packets.saturating_add(b.input_packets),
        output_packets: a.output_packets.saturating_add(b.output_packets),
    }
}

impl Radius {
    /// The client for `config`, with a socket of its own whose reader hands datagrams to the IKE
    /// thread.
    pub fn start(
        config: &RadiusConfig,
        random: Arc<dyn SecureRandom>,
        tx: crate::input::Inbox,
    ) -> anyhow::Result<Self> {
        let servers: Vec<ServerConfig> = config
            .servers
            .iter()
            .map(|s| ServerConfig {
                auth: SocketAddr::new(s.address, s.auth_port),
                acct: SocketAddr::new(s.address, s.acct_port),
                secret: s.secret.clone(),
            })
            .collect();
        let v6 = servers.first().is_some_and(|s| s.auth.is_ipv6());
        let any: IpAddr = if v6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
        let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        // NAS-IP-Address: the address the route to the first server takes.
        let nas_ip = servers.first().and_then(|s| {
            let probe = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
            probe.connect(s.auth).ok()?;
            probe.local_addr().ok().map(|a| a.ip()).filter(|a| !a.is_unspecified())
        });
        let client = RadiusClient::new(ClientConfig {
            servers,
            timeout: config.timeout,
            tries: config.tries,
            nas_identifier: config.nas_identifier.clone(),
            nas_ip,
        });
        let socket = Arc::new(socket);
        let reader = socket.clone();
        // It reads on while the daemon stops, for the answers to the accounting Stops; it ends
        // with the IKE thread's receiver.
        std::thread::Builder::new().name("radius-rx".into()).spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = reader.recv_from(&mut buf) else { continue };
                if let Some(data) = buf.get(..n)
                    && tx.send(Input::Radius { from, data: data.to_vec() }).is_err()
                {
                    return;
                }
            }
        })?;
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(Self {
            client,
            socket,
            random,
            accounting: config.accounting,
            interim: config.interim,
            conversations: HashMap::new(),
            class: HashMap::new(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            gone: HashMap::new(),
            next_session: 0,
            epoch,
            round_trips: Default::default(),
        })
    }

    /// The client's EAP message for the servers; `Err` with the answer to give the engine at once
    /// when it cannot even be sent.
    pub fn relay(
        &mut self,
        now: Instant,
        sa: SaHandle,
        identity: &[u8],
        eap: &EapPayload,
        (peer, local): (SocketAddr, SocketAddr),
    ) -> Result<(), RelayAnswer> {
        let session = self
            .conversations
            .entry(sa)
            .or_insert_with(|| EapSession::new(identity.to_vec(), station_id(peer), station_id(local)));
        session.user_name = identity.to_vec();
        match self.client.eap_request(now, session, eap, self.random.as_ref()) {
            Ok(id) => {
                self.pending.insert(id, Purpose::Eap(sa));
                self.send();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target: "radius", sa = sa.0, "cannot send the Access-Request: {e}");
                Err(RelayAnswer::Timeout)
            }
        }
    }

    /// A datagram from a server: the engine's answer, if it was one for an EAP conversation.
    pub fn datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Option<(SaHandle, RelayAnswer)> {
        let Some((id, answer)) = self.client.handle_datagram(now, from, data) else {
            if let Some(why) = self.client.last_drop() {
                tracing::debug!(target: "radius", "dropped a datagram from {from}: {why}");
            }
            return None;
        };
        if let Some(rt) = self.client.stats().last_round_trip {
            let h = if rt.accounting { &mut self.round_trips.1 } else { &mut self.round_trips.0 };
            h.observe(rt.time);
        }
        self.answered(id, answer)
    }

    /// Retransmissions and timeouts.
    pub fn timeout(&mut self, now: Instant) -> Vec<(SaHandle, RelayAnswer)> {
        let answers = self.client.handle_timeout(now);
        self.send();
        answers.into_iter().filter_map(|(id, a)| self.answered(id, a)).collect()
    }

    /// When the client next needs the clock, with the next Interim-Update.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let interim = self.sessions.values().filter_map(|s| s.next_interim).min();
        [self.client.poll_timeout(), interim].into_iter().flatten().min()
    }

    fn answered(&mut self, id: RequestId, answer: Answer) -> Option<(SaHandle, RelayAnswer)> {
        let purpose = self.pending.remove(&id)?;
        let Purpose::Eap(sa) = purpose else {
            if !matches!(answer, Answer::AccountingDone) {
                tracing::warn!(target: "radius", "accounting record not taken: {answer:?}");
            }
            return None;
        };
        let relay = match answer {
            Answer::Challenge { eap, state, server } => {
                if let Some(s) = self.conversations.get_mut(&sa) {
                    s.challenged(server, state);
                }
                RelayAnswer::Challenge(eap)
            }
            Answer::Accept { eap, msk, class, attributes, .. } => {
                // An answer for a conversation that ended meanwhile (the SA gave up) keeps nothing.
                if self.conversations.remove(&sa).is_some() {
                    self.class.insert(sa, class);
                }
                let identity = attributes.into_iter().find_map(|a| match a {
                    oxswan_radius::Attribute::UserName(u) => Some(u),
                    _ => None,
                });
                RelayAnswer::Accept { eap, msk, identity }
            }
            Answer::Reject { eap, reply_message } => {
                self.conversations.remove(&sa);
                let reason = reply_message
                    .map_or_else(|| "RADIUS Access-Reject".to_owned(), |m| format!("RADIUS Access-Reject: {m}"));
                RelayAnswer::Reject { eap, reason }
            }
            Answer::Timeout => {
                self.conversations.remove(&sa);
                tracing::warn!(target: "radius", sa = sa.0, "no RADIUS server answered");
                RelayAnswer::Timeout
            }
            other => {
                self.conversations.remove(&sa);
                tracing::warn!(target: "radius", sa = sa.0, "unusable RADIUS answer: {other:?}");
                RelayAnswer::Timeout
            }
        };
        Some((sa, relay))
    }

    /// A client's IKE SA is up: accounting Start, if it authenticated through RADIUS.
    pub fn up(&mut self, now: Instant, sa: SaHandle, info: &IkeSaInfo) {
        let Some(class) = self.class.remove(&sa) else { return };
        if !self.accounting {
            return;
        }
        self.next_session = self.next_session.wrapping_add(1);
        let session = Session {
            id: format!("{}-{}", self.epoch, self.next_session),
            user: info.eap_id.clone().unwrap_or_default().into_bytes(),
            framed: info.remote_vips.clone(),
            class,
            calling: station_id(info.remote),
            called: station_id(info.local),
            started: now,
            next_interim: self.interim.and_then(|i| now.checked_add(i)),
        };
        let record = self.record(&session, AcctStatus::Start, now, None);
        self.sessions.insert(sa, session);
        self.account(now, &record);
    }

    /// Interim-Updates that are due, with `usage` of each SA (its pairs now, and those gone).
    pub fn interim(&mut self, now: Instant, usage: impl Fn(SaHandle) -> Usage) {
        let Some(every) = self.interim else { return };
        let due: Vec<SaHandle> =
            self.sessions.iter().filter(|(_, s)| s.next_interim.is_some_and(|t| t <= now)).map(|(sa, _)| *sa).collect();
        for sa in due {
            let Some(s) = self.sessions.get_mut(&sa) else { continue };
            s.next_interim = now.checked_add(every);
            let mut record = Self::record_of(s, AcctStatus::InterimUpdate, now);
            record.usage = Some(add(usage(sa), self.gone.get(&sa).copied().unwrap_or_default()));
            self.account(now, &record);
        }
    }

    /// A client's IKE SA went: accounting Stop with the traffic of all its pairs (each reported
    /// by [`Radius::pair_gone`] before).
    pub fn down(&mut self, now: Instant, sa: SaHandle, cause: TerminateCause) {
        self.conversations.remove(&sa);
        self.class.remove(&sa);
        let usage = self.gone.remove(&sa).unwrap_or_default();
        let Some(session) = self.sessions.remove(&sa) else { return };
        let mut record = self.record(&session, AcctStatus::Stop, now, Some(cause));
        record.usage = Some(usage);
        self.account(now, &record);
    }

    /// A pair of the accounted SA `sa` is gone, with its last counters.
    pub fn pair_gone(&mut self, sa: SaHandle, usage: Usage) {
        if self.sessions.contains_key(&sa) {
            let total = self.gone.entry(sa).or_default();
            *total = add(*total, usage);
        }
    }

    /// An IKE rekey moved `old`'s CHILD SAs to `new` (RFC 7296 §2.18): the accounting session
    /// goes on under the new handle.
    pub fn rekeyed(&mut self, old: SaHandle, new: SaHandle) {
        if let Some(s) = self.sessions.remove(&old) {
            self.sessions.insert(new, s);
        }
        if let Some(u) = self.gone.remove(&old) {
            self.gone.insert(new, u);
        }
    }

    fn record(&self, s: &Session, status: AcctStatus, now: Instant, cause: Option<TerminateCause>) -> AccountingRecord {
        let mut r = Self::record_of(s, status, now);
        r.terminate_cause = cause;
        r
    }

    fn record_of(s: &Session, status: AcctStatus, now: Instant) -> AccountingRecord {
        let mut r = AccountingRecord::new(status, s.id.clone(), s.user.clone());
        r.framed_ips.clone_from(&s.framed);
        r.class.clone_from(&s.class);
        r.calling_station.clone_from(&s.calling);
        r.called_station.clone_from(&s.called);
        if status != AcctStatus::Start {
            r.session_time =
                Some(u32::try_from(now.saturating_duration_since(s.started).as_secs()).unwrap_or(u32::MAX));
        }
        r
    }

    fn account(&mut self, now: Instant, record: &AccountingRecord) {
        match self.client.accounting(now, record, self.random.as_ref()) {
            Ok(id) => {
                self.pending.insert(id, Purpose::Accounting);
                self.send();
            }
            Err(e) => tracing::warn!(target: "radius", "cannot send the accounting record: {e}"),
        }
    }

    fn send(&mut self) {
        while let Some((to, data)) = self.client.poll_transmit() {
            if let Err(e) = self.socket.send_to(&data, to) {
                tracing::warn!(target: "radius", "send to {to}: {e}");
            }
        }
    }

    /// Whether `sa` has an accounting session (the daemon then reports its pairs' traffic).
    pub fn accounts(&self, sa: SaHandle) -> bool {
        self.sessions.contains_key(&sa)
    }

    /// Whether accounting requests are waiting for a server's answer.
    pub fn accounting_in_flight(&self) -> bool {
        self.pending.values().any(|p| matches!(p, Purpose::Accounting))
    }

    /// What the client measured and counted, for metrics.
    pub fn metrics(&self) -> crate::metrics::RadiusMetrics {
        let s = self.client.stats();
        crate::metrics::RadiusMetrics {
            access: self.round_trips.0.clone(),
            accounting: self.round_trips.1.clone(),
            timeouts: s.timeouts,
            retransmissions: s.retransmissions,
        }
    }

    /// Whether an Interim-Update is due.
    pub fn interim_due(&self, now: Instant) -> bool {
        self.sessions.values().any(|s| s.next_interim.is_some_and(|t| t <= now))
    }
}
