//! The client state machine, sans-IO: requests in, datagrams and answers out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use oxswan_crypto::Secret;
use oxswan_crypto::provider::SecureRandom;
use oxswan_wire::payloads::{EapCode, EapPayload};
use oxswan_wire::{Context, PayloadType, Reader};

use crate::attribute::{Attribute, MAX_VALUE_LEN, NAS_PORT_TYPE_VIRTUAL, SERVICE_TYPE_FRAMED, types};
use crate::error::{CodecError, DropReason, InvalidAnswer, RadiusError};
use crate::mppe;
use crate::packet::{Code, Packet, RawPacket, verify_response};

/// One RADIUS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where Access-Requests go (port 1812 usually).
    pub auth: SocketAddr,
    /// Where Accounting-Requests go (port 1813 usually).
    pub acct: SocketAddr,
    /// The shared secret (RFC 2865 §3).
    pub secret: Secret,
}

/// The client's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The servers: the first is the primary, the others are failed over to in order.
    pub servers: Vec<ServerConfig>,
    /// How long to wait for an answer before sending again.
    pub timeout: Duration,
    /// How many times a request is sent to one server before the next one is tried (0 counts as 1).
    pub tries: u32,
    /// NAS-Identifier (RFC 2865 §5.32) of every request; empty: none (then `nas_ip` is required).
    pub nas_identifier: String,
    /// NAS-IP-Address (RFC 2865 §5.4) or NAS-IPv6-Address (RFC 3162 §2.1) of every request.
    pub nas_ip: Option<IpAddr>,
}

/// A request in flight: the handle its caller keeps (with its pending IKE SA) until the answer,
/// a timeout or [`RadiusClient::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// A configured server, by its place in [`ClientConfig::servers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(usize);

impl ServerId {
    /// The server at `index` in [`ClientConfig::servers`].
    pub fn new(index: usize) -> Self {
        Self(index)
    }

    /// Its place in [`ClientConfig::servers`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// `ip[port]`, as strongSwan's eap-radius writes Called- and Calling-Station-Id (`%#H`, with its
/// default `station_id_with_port = yes`): `192.0.2.1[4500]`, `2001:db8::1[500]`; the address
/// alone for port 0.
pub fn station_id(addr: SocketAddr) -> String {
    match addr.port() {
        0 => addr.ip().to_string(),
        port => format!("{}[{port}]", addr.ip()),
    }
}

/// One EAP conversation relayed to a server (RFC 3579 §2): what each of its Access-Requests
/// carries besides the EAP message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EapSession {
    /// User-Name (RFC 3579 §2.1: the EAP identity, from the peer's EAP-Response/Identity).
    pub user_name: Vec<u8>,
    /// The State of the last Access-Challenge, echoed (RFC 2865 §5.24).
    pub state: Option<Vec<u8>>,
    /// The server that sent the last Access-Challenge: the conversation stays with it, without
    /// fail-over, since its State means nothing to another. `None` for the opening request, which
    /// goes to the preferred server and fails over.
    pub server: Option<ServerId>,
    /// Calling-Station-Id (RFC 2865 §5.31): the client's outer address, as [`station_id`] writes it.
    pub calling_station: String,
    /// Called-Station-Id (RFC 2865 §5.30): the gateway's address the client reached, likewise.
    pub called_station: String,
    /// NAS-Port (RFC 2865 §5.5): strongSwan sends the IKE SA's unique ID.
    pub nas_port: Option<u32>,
    /// NAS-Port-Id (RFC 2869 §5.17): strongSwan sends the connection's name.
    pub nas_port_id: Option<String>,
    /// Acct-Session-Id (RFC 2866 §5.5) of the accounting session to come, if known already.
    pub acct_session_id: Option<String>,
}

impl EapSession {
    /// A conversation's opening: no State, no server yet.
    pub fn new(user_name: impl Into<Vec<u8>>, calling_station: String, called_station: String) -> Self {
        Self { user_name: user_name.into(), calling_station, called_station, ..Self::default() }
    }

    /// Takes in an [`Answer::Challenge`]'s server and State, for the next request.
    pub fn challenged(&mut self, server: ServerId, state: Option<Vec<u8>>) {
        self.server = Some(server);
        self.state = state;
    }
}

/// Acct-Status-Type (RFC 2866 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcctStatus {
    /// Start (1).
    Start,
    /// Stop (2).
    Stop,
    /// Interim-Update (3, RFC 2869 §2.1).
    InterimUpdate,
    /// Accounting-On (7).
    AccountingOn,
    /// Accounting-Off (8).
    AccountingOff,
}

impl AcctStatus {
    /// The attribute's value.
    pub fn value(self) -> u32 {
        match self {
            AcctStatus::Start => 1,
            AcctStatus::Stop => 2,
            AcctStatus::InterimUpdate => 3,
            AcctStatus::AccountingOn => 7,
            AcctStatus::AccountingOff => 8,
        }
    }
}

/// Acct-Terminate-Cause (RFC 2866 §5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TerminateCause(pub u32);

impl TerminateCause {
    /// User Request: the client deleted its IKE SA.
    pub const USER_REQUEST: TerminateCause = TerminateCause(1);
    /// Lost Carrier: dead peer detection.
    pub const LOST_CARRIER: TerminateCause = TerminateCause(2);
    /// Lost Service.
    pub const LOST_SERVICE: TerminateCause = TerminateCause(3);
    /// Idle Timeout.
    pub const IDLE_TIMEOUT: TerminateCause = TerminateCause(4);
    /// Session Timeout: the authorization's lifetime ended.
    pub const SESSION_TIMEOUT: TerminateCause = TerminateCause(5);
    /// Admin Reset: the administrator ended it.
    pub const ADMIN_RESET: TerminateCause = TerminateCause(6);
    /// Admin Reboot: the administrator stopped the gateway.
    pub const ADMIN_REBOOT: TerminateCause = TerminateCause(7);
    /// Port Error.
    pub const PORT_ERROR: TerminateCause = TerminateCause(8);
    /// NAS Error.
    pub const NAS_ERROR: TerminateCause = TerminateCause(9);
    /// NAS Request: the gateway ended it (a failed rekey, for instance).
    pub const NAS_REQUEST: TerminateCause = TerminateCause(10);
    /// NAS Reboot.
    pub const NAS_REBOOT: TerminateCause = TerminateCause(11);
}

/// Traffic counters of a session. "Input" is what the NAS received from the user (RFC 2866
/// §5.3), "output" what it sent to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Octets received from the client: Acct-Input-Octets, the part past 2^32 as
    /// Acct-Input-Gigawords (RFC 2869 §5.1).
    pub input_octets: u64,
    /// Octets sent to the client: Acct-Output-Octets and Acct-Output-Gigawords (RFC 2869 §5.2).
    pub output_octets: u64,
    /// Packets received from the client: Acct-Input-Packets, modulo 2^32.
    pub input_packets: u64,
    /// Packets sent to the client: Acct-Output-Packets, modulo 2^32.
    pub output_packets: u64,
}

/// One accounting record (RFC 2866).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingRecord {
    /// Acct-Status-Type.
    pub status: AcctStatus,
    /// Acct-Session-Id: the same in a session's Start, Interim-Updates and Stop.
    pub session_id: String,
    /// User-Name: the EAP identity; empty: none.
    pub user_name: Vec<u8>,
    /// The client's virtual addresses: Framed-IP-Address for IPv4, Framed-IPv6-Address
    /// (RFC 6911 §3.1) for IPv6.
    pub framed_ips: Vec<IpAddr>,
    /// Framed-IPv6-Prefix (RFC 3162 §2.3): the prefix and its length.
    pub framed_ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// The counters (for Interim-Update and Stop).
    pub usage: Option<Usage>,
    /// Acct-Session-Time (RFC 2866 §5.7), seconds.
    pub session_time: Option<u32>,
    /// Acct-Terminate-Cause; sent with Stop only.
    pub terminate_cause: Option<TerminateCause>,
    /// The Class attributes of the Access-Accept, echoed unchanged (RFC 2865 §5.25).
    pub class: Vec<Vec<u8>>,
    /// Calling-Station-Id, as in the Access-Requests; empty: none.
    pub calling_station: String,
    /// Called-Station-Id, likewise.
    pub called_station: String,
    /// NAS-Port, as in the Access-Requests.
    pub nas_port: Option<u32>,
    /// NAS-Port-Id, likewise.
    pub nas_port_id: Option<String>,
}

impl AccountingRecord {
    /// A record with only the status, session and user: add the rest as needed.
    pub fn new(status: AcctStatus, session_id: String, user_name: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            session_id,
            user_name: user_name.into(),
            framed_ips: Vec::new(),
            framed_ipv6_prefix: None,
            usage: None,
            session_time: None,
            terminate_cause: None,
            class: Vec::new(),
            calling_station: String::new(),
            called_station: String::new(),
            nas_port: None,
            nas_port_id: None,
        }
    }
}

/// The outcome of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Access-Challenge: the EAP-Request to relay to the client; pass `server` and `state` on with
    /// [`EapSession::challenged`].
    Challenge {
        /// The reassembled EAP-Message, an EAP-Request.
        eap: EapPayload,
        /// The State to echo.
        state: Option<Vec<u8>>,
        /// The server the conversation stays with.
        server: ServerId,
    },
    /// Access-Accept.
    Accept {
        /// The EAP-Success, if the server sent one.
        eap: Option<EapPayload>,
        /// The MSK: MS-MPPE-Recv-Key | MS-MPPE-Send-Key, zero-padded to 64 octets (as strongSwan's
        /// eap-radius); `None` unless both keys were there and decrypted.
        msk: Option<Secret>,
        /// The Class attributes, to echo in accounting (RFC 2865 §5.25).
        class: Vec<Vec<u8>>,
        /// Framed-IP-Address (but for its special values 255.255.255.255 and 255.255.255.254,
        /// RFC 2865 §5.8) and Framed-IPv6-Address (RFC 6911): the addresses to assign.
        framed_ips: Vec<IpAddr>,
        /// Session-Timeout (RFC 2865 §5.27), seconds: strongSwan makes it the IKE SA's
        /// reauthentication time.
        session_timeout: Option<u32>,
        /// Acct-Interim-Interval (RFC 2869 §5.16), seconds.
        interim_interval: Option<u32>,
        /// Every attribute, for whatever else the caller uses.
        attributes: Vec<Attribute>,
    },
    /// Access-Reject.
    Reject {
        /// The EAP-Failure, if the server sent one.
        eap: Option<EapPayload>,
        /// The Reply-Messages (RFC 2865 §5.18), joined with newlines.
        reply_message: Option<String>,
    },
    /// Accounting-Response: the record was taken.
    AccountingDone,
    /// No server answered: `tries` sends to each server that could take the request.
    Timeout,
    /// An authenticated answer that cannot be used: the request failed.
    Invalid(InvalidAnswer),
}

/// Counters of what the client did and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Answers handed out (all but timeouts).
    pub answers: u64,
    /// Datagrams sent again (to the same server).
    pub retransmissions: u64,
    /// Requests moved to the next server.
    pub failovers: u64,
    /// Requests no server answered.
    pub timeouts: u64,
    /// Datagrams dropped.
    pub dropped: u64,
    /// Of those, the ones whose Response Authenticator or Message-Authenticator did not verify or
    /// whose Message-Authenticator was missing.
    pub dropped_unauthenticated: u64,
    /// Why the last one was dropped.
    pub last_drop: Option<DropReason>,
    /// How long the last answer took, if its request was sent once: an answer to a request sent
    /// again may answer any of its copies, so it is no sample (Karn's rule, RFC 6298 §3).
    pub last_round_trip: Option<RoundTrip>,
}

/// How long a server took to answer a request sent once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrip {
    /// An Accounting-Request's answer; else an Access-Request's.
    pub accounting: bool,
    /// From the request to its answer, as the caller's clock says.
    pub time: Duration,
}

#[derive(Debug)]
enum Kind {
    Access {
        /// The conversation's opening request: an Accept to it is refused.
        opening: bool,
        /// Stays with its server.
        pinned: bool,
        /// A Request Authenticator drawn for each server.
        authenticators: Vec<[u8; 16]>,
    },
    Accounting {
        /// When the record was first sent, for Acct-Delay-Time.
        first_sent: Instant,
    },
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    /// The attributes, without Message-Authenticator and Acct-Delay-Time.
    attributes: Vec<Attribute>,
    server: usize,
    servers_tried: usize,
    sent: u32,
    /// When it was first handed out to send.
    created: Instant,
    /// Whether it went more than once (again, or to another server): no round-trip sample then.
    repeated: bool,
    deadline: Instant,
    dest: SocketAddr,
    datagram: Vec<u8>,
    /// Every (destination, identifier) this request was sent with: answers to any are taken.
    ids: Vec<(SocketAddr, u8)>,
}

/// One datagram of a request, to send.
#[derive(Debug)]
struct Transmission {
    server: usize,
    dest: SocketAddr,
    datagram: Vec<u8>,
    /// The new identifier and Request Authenticator it carries; `None`: the same packet again.
    sent_as: Option<(u8, [u8; 16])>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    request: RequestId,
    server: usize,
    authenticator: [u8; 16],
}

/// The RADIUS client: a sans-IO state machine in the style of quinn-proto. It sends, receives,
/// sleeps and reads clocks never; the caller feeds it datagrams ([`RadiusClient::handle_datagram`])
/// and time ([`RadiusClient::handle_timeout`]), and sends what [`RadiusClient::poll_transmit`]
/// gives. Nothing a network sends can make it panic.
#[derive(Debug)]
pub struct RadiusClient {
    config: ClientConfig,
    /// Where new requests go first: moves on when a server stops answering.
    preferred: usize,
    next_request: u64,
    /// Whether the per-destination identifier counters got their random start.
    seeded: bool,
    next_identifier: BTreeMap<SocketAddr, u8>,
    pending: BTreeMap<RequestId, Pending>,
    sent: BTreeMap<(SocketAddr, u8), Sent>,
    timers: BTreeSet<(Instant, RequestId)>,
    transmits: VecDeque<(RequestId, SocketAddr, Vec<u8>)>,
    stats: Stats,
}

fn random_error(e: impl core::fmt::Display) -> RadiusError {
    RadiusError::Random(e.to_string())
}

/// The Access-Request of `attributes` for one server: Message-Authenticator first (RFC 3579 §3.2
/// requires it with EAP-Message; first, as the BlastRADIUS advisories recommend).
fn build_access(
    attributes: &[Attribute],
    identifier: u8,
    authenticator: [u8; 16],
    secret: &Secret,
) -> Result<Vec<u8>, CodecError> {
    let mut attrs = Vec::with_capacity(attributes.len().saturating_add(1));
    attrs.push(Attribute::MessageAuthenticator([0; 16]));
    attrs.extend_from_slice(attributes);
    Packet { code: Code::ACCESS_REQUEST, identifier, authenticator, attributes: attrs }.encode_request(secret.expose())
}

/// The Accounting-Request of `attributes`, with Acct-Delay-Time on retransmissions; its
/// authenticator (RFC 2866 §3) comes back with it.
fn build_accounting(
    attributes: &[Attribute],
    identifier: u8,
    delay: Option<u32>,
    secret: &Secret,
) -> Result<(Vec<u8>, [u8; 16]), CodecError> {
    let mut attrs = attributes.to_vec();
    if let Some(d) = delay {
        attrs.push(Attribute::AcctDelayTime(d));
    }
    let out = Packet { code: Code::ACCOUNTING_REQUEST, identifier, authenticator: [0; 16], attributes: attrs }
        .encode_request(secret.expose())?;
    let auth = RawPacket::parse(&out).map(|p| p.authenticator()).unwrap_or_default();
    Ok((out, auth))
}

fn string_attr(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

fn nas_ip_attr(ip: IpAddr) -> Attribute {
    match ip {
        IpAddr::V4(a) => Attribute::NasIpAddress(a),
        IpAddr::V6(a) => Attribute::NasIpv6Address(a),
    }
}

fn parse_eap(data: &[u8]) -> Result<EapPayload, InvalidAnswer> {
    EapPayload::parse(Reader::new(data, Context::Payload(PayloadType::EAP)))
        .map_err(|e| InvalidAnswer::BadEap(e.to_string()))
}

impl RadiusClient {
    /// A client with no request in flight.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            preferred: 0,
            next_request: 0,
            seeded: false,
            next_identifier: BTreeMap::new(),
            pending: BTreeMap::new(),
            sent: BTreeMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The counters, and why the last datagram was dropped.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the last datagram was dropped.
    pub fn last_drop(&self) -> Option<&DropReason> {
        self.stats.last_drop.as_ref()
    }

    /// How many requests are in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Checks what every request needs and gives each destination's identifiers a random start
    /// (as strongSwan, so that a restarted client does not reuse the identifiers just used).
    fn prepare(&mut self, random: &dyn SecureRandom) -> Result<(), RadiusError> {
        if self.config.servers.is_empty() {
            return Err(RadiusError::NoServers);
        }
        if self.config.nas_identifier.is_empty() && self.config.nas_ip.is_none() {
            return Err(RadiusError::NoNasIdentification);
        }
        if !self.seeded {
            let dests: Vec<SocketAddr> = self.config.servers.iter().flat_map(|s| [s.auth, s.acct]).collect();
            let mut starts = vec![0u8; dests.len()];
            random.fill(&mut starts).map_err(random_error)?;
            for (d, s) in dests.into_iter().zip(starts) {
                self.next_identifier.entry(d).or_insert(s);
            }
            self.seeded = true;
        }
        Ok(())
    }

    /// A free identifier towards `dest`, the next after the last one given out.
    fn allocate(&mut self, dest: SocketAddr) -> Option<u8> {
        let start = self.next_identifier.get(&dest).copied().unwrap_or(0);
        for k in 0..=255u8 {
            let id = start.wrapping_add(k);
            if !self.sent.contains_key(&(dest, id)) {
                self.next_identifier.insert(dest, id.wrapping_add(1));
                return Some(id);
            }
        }
        None
    }

    fn server(&self, index: usize) -> Option<&ServerConfig> {
        self.config.servers.get(index)
    }

    /// The NAS attributes every request carries, in strongSwan's order: NAS-Port-Type Virtual,
    /// Service-Type Framed, NAS-Port, NAS-Port-Id, NAS-IP-Address or NAS-IPv6-Address,
    /// Called-Station-Id, Calling-Station-Id.
    fn nas_attributes(
        &self,
        out: &mut Vec<Attribute>,
        nas_port: Option<u32>,
        nas_port_id: Option<&str>,
        called: &str,
        calling: &str,
    ) {
        out.push(Attribute::NasPortType(NAS_PORT_TYPE_VIRTUAL));
        out.push(Attribute::ServiceType(SERVICE_TYPE_FRAMED));
        if let Some(p) = nas_port {
            out.push(Attribute::NasPort(p));
        }
        if let Some(id) = nas_port_id.filter(|s| !s.is_empty()) {
            out.push(Attribute::NasPortId(string_attr(id)));
        }
        if let Some(ip) = self.config.nas_ip {
            out.push(nas_ip_attr(ip));
        }
        if !called.is_empty() {
            out.push(Attribute::CalledStationId(string_attr(called)));
        }
        if !calling.is_empty() {
            out.push(Attribute::CallingStationId(string_attr(calling)));
        }
    }

    fn nas_identifier(&self, out: &mut Vec<Attribute>) {
        if !self.config.nas_identifier.is_empty() {
            out.push(Attribute::NasIdentifier(string_attr(&self.config.nas_identifier)));
        }
    }

    fn new_request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1);
        id
    }

    fn start(&mut self, id: RequestId, pending: Pending) {
        let key = (pending.dest, pending.ids.last().map_or(0, |k| k.1));
        let authenticator = match &pending.kind {
            Kind::Access { authenticators, .. } => authenticators.get(pending.server).copied().unwrap_or_default(),
            Kind::Accounting { .. } => {
                RawPacket::parse(&pending.datagram).map(|p| p.authenticator()).unwrap_or_default()
            }
        };
        self.sent.insert(key, Sent { request: id, server: pending.server, authenticator });
        self.timers.insert((pending.deadline, id));
        self.transmits.push_back((id, pending.dest, pending.datagram.clone()));
        self.pending.insert(id, pending);
    }

    /// Relays one EAP message of `session` (RFC 3579 §2): an Access-Request with, in order,
    /// Message-Authenticator, User-Name, NAS-Port-Type Virtual (5), Service-Type Framed (2),
    /// NAS-Port, NAS-Port-Id, NAS-IP-Address or NAS-IPv6-Address, Called-Station-Id,
    /// Calling-Station-Id, Acct-Session-Id, EAP-Message (split into 253-octet attributes,
    /// RFC 3579 §3.1), NAS-Identifier and State; those without a value are left out.
    pub fn eap_request(
        &mut self,
        now: Instant,
        session: &EapSession,
        eap: &EapPayload,
        random: &dyn SecureRandom,
    ) -> Result<RequestId, RadiusError> {
        self.prepare(random)?;
        let n = self.config.servers.len();
        let (first, pinned) = match session.server {
            Some(ServerId(i)) if i < n => (i, true),
            Some(_) => return Err(RadiusError::UnknownServer),
            None => (self.preferred.min(n.saturating_sub(1)), false),
        };

        let mut attributes = Vec::new();
        if !session.user_name.is_empty() {
            attributes.push(Attribute::UserName(session.user_name.clone()));
        }
        self.nas_attributes(
            &mut attributes,
            session.nas_port,
            session.nas_port_id.as_deref(),
            &session.called_station,
            &session.calling_station,
        );
        if let Some(sid) = session.acct_session_id.as_deref().filter(|s| !s.is_empty()) {
            attributes.push(Attribute::AcctSessionId(string_attr(sid)));
        }
        let mut message = Vec::new();
        eap.emit(&mut message).map_err(|e| RadiusError::Eap(e.to_string()))?;
        for chunk in message.chunks(MAX_VALUE_LEN) {
            attributes.push(Attribute::EapMessage(chunk.to_vec()));
        }
        self.nas_identifier(&mut attributes);
        if let Some(state) = &session.state {
            attributes.push(Attribute::State(state.clone()));
        }

        let mut drawn = vec![0u8; n.saturating_mul(16)];
        random.fill(&mut drawn).map_err(random_error)?;
        let authenticators: Vec<[u8; 16]> =
            drawn.chunks_exact(16).map(|c| <[u8; 16]>::try_from(c).unwrap_or_default()).collect();

        let candidates = if pinned { 1 } else { n };
        for step in 0..candidates {
            let server = first.saturating_add(step) % n;
            let Some(cfg) = self.server(server) else { continue };
            let (dest, secret) = (cfg.auth, cfg.secret.clone());
            let Some(identifier) = self.allocate(dest) else { continue };
            let authenticator = authenticators.get(server).copied().unwrap_or_default();
            let datagram = build_access(&attributes, identifier, authenticator, &secret)?;
            let id = self.new_request_id();
            let pending = Pending {
                kind: Kind::Access {
                    opening: session.server.is_none() && session.state.is_none(),
                    pinned,
                    authenticators,
                },
                attributes,
                server,
                servers_tried: step.saturating_add(1),
                sent: 1,
                created: now,
                repeated: false,
                deadline: now.checked_add(self.config.timeout).unwrap_or(now),
                dest,
                datagram,
                ids: vec![(dest, identifier)],
            };
            self.start(id, pending);
            return Ok(id);
        }
        Err(RadiusError::IdentifiersExhausted)
    }

    /// Sends an accounting record (RFC 2866): an Accounting-Request with Acct-Status-Type,
    /// Acct-Session-Id, the Class attributes, NAS-Port-Type, Service-Type, NAS-Port, NAS-Port-Id,
    /// NAS-IP(v6)-Address, Called-Station-Id, Calling-Station-Id, User-Name, Framed-IP-Address /
    /// Framed-IPv6-Address, Framed-IPv6-Prefix, the counters (Acct-Output-Octets,
    /// Acct-Output-Gigawords if not zero, Acct-Output-Packets, then the same for input),
    /// Acct-Session-Time, Acct-Terminate-Cause (Stop only) and NAS-Identifier; retransmissions
    /// add Acct-Delay-Time (RFC 2866 §5.2), which makes them new packets with new identifiers.
    pub fn accounting(
        &mut self,
        now: Instant,
        record: &AccountingRecord,
        random: &dyn SecureRandom,
    ) -> Result<RequestId, RadiusError> {
        self.prepare(random)?;
        let n = self.config.servers.len();
        let mut a = vec![Attribute::AcctStatusType(record.status.value())];
        if !record.session_id.is_empty() {
            a.push(Attribute::AcctSessionId(string_attr(&record.session_id)));
        }
        for c in &record.class {
            a.push(Attribute::Class(c.clone()));
        }
        self.nas_attributes(
            &mut a,
            record.nas_port,
            record.nas_port_id.as_deref(),
            &record.called_station,
            &record.calling_station,
        );
        if !record.user_name.is_empty() {
            a.push(Attribute::UserName(record.user_name.clone()));
        }
        for ip in &record.framed_ips {
            a.push(match ip {
                IpAddr::V4(v4) => Attribute::FramedIpAddress(*v4),
                IpAddr::V6(v6) => Attribute::FramedIpv6Address(*v6),
            });
        }
        if let Some((prefix, prefix_len)) = record.framed_ipv6_prefix {
            a.push(Attribute::FramedIpv6Prefix { prefix_len: prefix_len.min(128), prefix });
        }
        if let Some(u) = record.usage {
            let low = |v: u64| (v & 0xffff_ffff) as u32;
            let high = |v: u64| (v >> 32) as u32;
            a.push(Attribute::AcctOutputOctets(low(u.output_octets)));
            if high(u.output_octets) != 0 {
                a.push(Attribute::AcctOutputGigawords(high(u.output_octets)));
            }
            a.push(Attribute::AcctOutputPackets(low(u.output_packets)));
            a.push(Attribute::AcctInputOctets(low(u.input_octets)));
            if high(u.input_octets) != 0 {
                a.push(Attribute::AcctInputGigawords(high(u.input_octets)));
            }
            a.push(Attribute::AcctInputPackets(low(u.input_packets)));
        }
        if let Some(t) = record.session_time {
            a.push(Attribute::AcctSessionTime(t));
        }
        if let (AcctStatus::Stop, Some(cause)) = (record.status, record.terminate_cause) {
            a.push(Attribute::AcctTerminateCause(cause.0));
        }
        self.nas_identifier(&mut a);

        let first = self.preferred.min(n.saturating_sub(1));
        for step in 0..n {
            let server = first.saturating_add(step) % n;
            let Some(cfg) = self.server(server) else { continue };
            let (dest, secret) = (cfg.acct, cfg.secret.clone());
            let Some(identifier) = self.allocate(dest) else { continue };
            let (datagram, _) = build_accounting(&a, identifier, None, &secret)?;
            let id = self.new_request_id();
            let pending = Pending {
                kind: Kind::Accounting { first_sent: now },
                attributes: a,
                server,
                servers_tried: step.saturating_add(1),
                sent: 1,
                created: now,
                repeated: false,
                deadline: now.checked_add(self.config.timeout).unwrap_or(now),
                dest,
                datagram,
                ids: vec![(dest, identifier)],
            };
            self.start(id, pending);
            return Ok(id);
        }
        Err(RadiusError::IdentifiersExhausted)
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front().map(|(_, dest, data)| (dest, data))
    }

    /// When [`RadiusClient::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Forgets a request (its IKE SA went away): its answer, if one comes, is dropped.
    pub fn cancel(&mut self, id: RequestId) {
        self.finish(id);
    }

    /// Removes a request and everything that refers to it.
    fn finish(&mut self, id: RequestId) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        for key in &p.ids {
            self.sent.remove(key);
        }
        self.timers.remove(&(p.deadline, id));
        self.transmits.retain(|(r, _, _)| *r != id);
        Some(p)
    }

    /// Takes a datagram that arrived from `from`: the answer it completes, or `None` when it is
    /// dropped ([`RadiusClient::last_drop`] says why).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Option<(RequestId, Answer)> {
        match self.answer(now, from, data) {
            Ok(answer) => {
                self.stats.answers = self.stats.answers.saturating_add(1);
                Some(answer)
            }
            Err(reason) => {
                self.stats.dropped = self.stats.dropped.saturating_add(1);
                if matches!(
                    reason,
                    DropReason::BadResponseAuthenticator
                        | DropReason::BadMessageAuthenticator
                        | DropReason::DuplicateMessageAuthenticator
                        | DropReason::MissingMessageAuthenticator
                ) {
                    self.stats.dropped_unauthenticated = self.stats.dropped_unauthenticated.saturating_add(1);
                }
                self.stats.last_drop = Some(reason);
                None
            }
        }
    }

    fn answer(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<(RequestId, Answer), DropReason> {
        let raw = RawPacket::parse(data).map_err(DropReason::Malformed)?;
        let code = raw.code();
        if !matches!(
            code,
            Code::ACCESS_ACCEPT | Code::ACCESS_REJECT | Code::ACCESS_CHALLENGE | Code::ACCOUNTING_RESPONSE
        ) {
            return Err(DropReason::NotAnAnswer(code));
        }
        let Some(sent) = self.sent.get(&(from, raw.identifier())).copied() else {
            let known = self.config.servers.iter().any(|s| s.auth == from || s.acct == from);
            return Err(if known {
                DropReason::UnknownIdentifier(raw.identifier())
            } else {
                DropReason::UnexpectedSource(from)
            });
        };
        let pending = self.pending.get(&sent.request).ok_or(DropReason::UnknownIdentifier(raw.identifier()))?;
        let access = matches!(pending.kind, Kind::Access { .. });
        if access == (code == Code::ACCOUNTING_RESPONSE) {
            return Err(DropReason::WrongCode(code));
        }
        let secret = self.server(sent.server).map(|s| s.secret.clone()).ok_or(DropReason::UnexpectedSource(from))?;
        let has_ma = verify_response(&raw, &sent.authenticator, secret.expose())?;
        let has_eap = raw.attributes().any(|(_, kind, _)| kind == types::EAP_MESSAGE);
        // RFC 3579 §3.2: with EAP-Message, a Message-Authenticator is required. Every Access-Accept
        // and Access-Challenge answers an EAP relay here, so those need one too whatever they hold
        // (the BlastRADIUS defence, CVE-2024-3596); an Access-Reject without EAP can only refuse.
        if !has_ma && (has_eap || matches!(code, Code::ACCESS_ACCEPT | Code::ACCESS_CHALLENGE)) {
            return Err(DropReason::MissingMessageAuthenticator);
        }
        let opening = matches!(pending.kind, Kind::Access { opening: true, .. });
        self.stats.last_round_trip = (!pending.repeated)
            .then(|| RoundTrip { accounting: !access, time: now.saturating_duration_since(pending.created) });
        self.finish(sent.request);
        let attributes = raw.decode_attributes();
        let answer = match code {
            Code::ACCOUNTING_RESPONSE => Answer::AccountingDone,
            Code::ACCESS_CHALLENGE => Self::challenge(&attributes, ServerId(sent.server)),
            Code::ACCESS_ACCEPT if opening => Answer::Invalid(InvalidAnswer::AcceptWithoutChallenge),
            Code::ACCESS_ACCEPT => Self::accept(attributes, secret.expose(), &sent.authenticator),
            _ => Self::reject(&attributes),
        };
        Ok((sent.request, answer))
    }

    /// The EAP-Message attributes' values, concatenated (RFC 3579 §3.1); `None` if there are none.
    fn eap_message(attributes: &[Attribute]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for a in attributes {
            if let Attribute::EapMessage(v) = a {
                out.get_or_insert_with(Vec::new).extend_from_slice(v);
            }
        }
        out
    }

    fn challenge(attributes: &[Attribute], server: ServerId) -> Answer {
        let Some(message) = Self::eap_message(attributes) else {
            return Answer::Invalid(InvalidAnswer::MissingEap);
        };
        let eap = match parse_eap(&message) {
            Ok(e) => e,
            Err(e) => return Answer::Invalid(e),
        };
        if eap.code != EapCode::REQUEST {
            return Answer::Invalid(InvalidAnswer::UnexpectedEap { code: Code::ACCESS_CHALLENGE, eap: eap.code.0 });
        }
        let state = attributes.iter().find_map(|a| match a {
            Attribute::State(s) => Some(s.clone()),
            _ => None,
        });
        Answer::Challenge { eap, state, server }
    }

    fn accept(attributes: Vec<Attribute>, secret: &[u8], request_authenticator: &[u8; 16]) -> Answer {
        let eap = match Self::eap_message(&attributes).map(|m| parse_eap(&m)) {
            None => None,
            Some(Ok(e)) if e.code == EapCode::SUCCESS => Some(e),
            Some(Ok(e)) => {
                return Answer::Invalid(InvalidAnswer::UnexpectedEap { code: Code::ACCESS_ACCEPT, eap: e.code.0 });
            }
            Some(Err(e)) => return Answer::Invalid(e),
        };
        let msk = mppe::msk_from_attributes(&attributes, secret, request_authenticator);
        let mut class = Vec::new();
        let mut framed_ips = Vec::new();
        let mut session_timeout = None;
        let mut interim_interval = None;
        for a in &attributes {
            match a {
                Attribute::Class(c) => class.push(c.clone()),
                Attribute::FramedIpAddress(ip)
                    if *ip != Ipv4Addr::BROADCAST && *ip != Ipv4Addr::new(255, 255, 255, 254) =>
                {
                    framed_ips.push(IpAddr::V4(*ip))
                }
                Attribute::FramedIpv6Address(ip) => framed_ips.push(IpAddr::V6(*ip)),
                Attribute::SessionTimeout(t) if session_timeout.is_none() => session_timeout = Some(*t),
                Attribute::AcctInterimInterval(t) if interim_interval.is_none() => interim_interval = Some(*t),
                _ => {}
            }
        }
        Answer::Accept { eap, msk, class, framed_ips, session_timeout, interim_interval, attributes }
    }

    fn reject(attributes: &[Attribute]) -> Answer {
        let eap = Self::eap_message(attributes).and_then(|m| parse_eap(&m).ok()).filter(|e| e.code == EapCode::FAILURE);
        let messages: Vec<String> = attributes
            .iter()
            .filter_map(|a| match a {
                Attribute::ReplyMessage(m) => Some(String::from_utf8_lossy(m).into_owned()),
                _ => None,
            })
            .collect();
        let reply_message = if messages.is_empty() { None } else { Some(messages.join("\n")) };
        Answer::Reject { eap, reply_message }
    }

    /// Advances time: requests whose answer is overdue are sent again (an Access-Request as the
    /// same packet to the same server, RFC 5080 §2.2.1; an Accounting-Request with Acct-Delay-Time
    /// and so a new identifier, RFC 2866 §5.2), after `tries` sends moved to the next server (a
    /// new identifier and Request Authenticator there; not for a conversation that a server's
    /// Challenge bound to it), and after every server given up on with [`Answer::Timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(RequestId, Answer)> {
        let due: Vec<RequestId> = self.timers.iter().take_while(|(t, _)| *t <= now).map(|(_, id)| *id).collect();
        let mut out = Vec::new();
        for id in due {
            if !self.expire(id, now) {
                self.finish(id);
                self.stats.timeouts = self.stats.timeouts.saturating_add(1);
                out.push((id, Answer::Timeout));
            }
        }
        out
    }

    /// Sends `id` again, here or to the next server; false when there is nothing left to try.
    fn expire(&mut self, id: RequestId, now: Instant) -> bool {
        let tries = self.config.tries.max(1);
        let n = self.config.servers.len();
        let deadline = now.checked_add(self.config.timeout).unwrap_or(now);
        let Some(p) = self.pending.get(&id) else { return false };
        let (server, sent, servers_tried) = (p.server, p.sent, p.servers_tried);
        let attrs = p.attributes.clone();
        let (pinned, authenticators, delay) = match &p.kind {
            Kind::Access { pinned, authenticators, .. } => (*pinned, authenticators.clone(), None),
            Kind::Accounting { first_sent } => {
                let secs = now.saturating_duration_since(*first_sent).as_secs();
                (false, Vec::new(), Some(u32::try_from(secs).unwrap_or(u32::MAX)))
            }
        };

        if sent < tries {
            let again = match delay {
                // RFC 5080 §2.2.1: the same packet, same identifier and Request Authenticator.
                None => None,
                Some(d) => self.accounting_datagram(server, &attrs, d),
            };
            let t = match again {
                Some(t) => t,
                // An Access-Request, or no identifier or no room left for Acct-Delay-Time: the
                // same packet again.
                None => match self.pending.get(&id) {
                    Some(p) => Transmission { server, dest: p.dest, datagram: p.datagram.clone(), sent_as: None },
                    None => return false,
                },
            };
            self.reschedule(id, deadline, t, sent.saturating_add(1), servers_tried);
            self.stats.retransmissions = self.stats.retransmissions.saturating_add(1);
            return true;
        }

        if pinned {
            return false;
        }
        let mut tried = servers_tried;
        let mut next = server;
        while tried < n {
            tried = tried.saturating_add(1);
            next = next.saturating_add(1) % n;
            let moved = match delay {
                None => self.access_datagram(next, &attrs, authenticators.get(next).copied().unwrap_or_default()),
                Some(d) => self.accounting_datagram(next, &attrs, d),
            };
            if let Some(t) = moved {
                if self.preferred == server {
                    self.preferred = next;
                }
                self.reschedule(id, deadline, t, 1, tried);
                self.stats.failovers = self.stats.failovers.saturating_add(1);
                return true;
            }
        }
        false
    }

    /// An Access-Request of `attrs` for server `index`, with a fresh identifier there.
    fn access_datagram(&mut self, index: usize, attrs: &[Attribute], authenticator: [u8; 16]) -> Option<Transmission> {
        let (dest, secret) = self.server(index).map(|s| (s.auth, s.secret.clone()))?;
        let identifier = self.allocate(dest)?;
        let datagram = build_access(attrs, identifier, authenticator, &secret).ok()?;
        Some(Transmission { server: index, dest, datagram, sent_as: Some((identifier, authenticator)) })
    }

    /// An Accounting-Request of `attrs` with Acct-Delay-Time `delay` for server `index`, with a
    /// fresh identifier.
    fn accounting_datagram(&mut self, index: usize, attrs: &[Attribute], delay: u32) -> Option<Transmission> {
        let (dest, secret) = self.server(index).map(|s| (s.acct, s.secret.clone()))?;
        let identifier = self.allocate(dest)?;
        let (datagram, authenticator) = build_accounting(attrs, identifier, Some(delay), &secret).ok()?;
        Some(Transmission { server: index, dest, datagram, sent_as: Some((identifier, authenticator)) })
    }

    fn reschedule(&mut self, id: RequestId, deadline: Instant, t: Transmission, sent: u32, servers_tried: usize) {
        let Some(p) = self.pending.get_mut(&id) else { return };
        if let Some((identifier, authenticator)) = t.sent_as {
            p.ids.push((t.dest, identifier));
            self.sent.insert((t.dest, identifier), Sent { request: id, server: t.server, authenticator });
        }
        self.timers.remove(&(p.deadline, id));
        self.timers.insert((deadline, id));
        p.server = t.server;
        p.dest = t.dest;
        p.datagram.clone_from(&t.datagram);
        p.sent = sent;
        p.repeated = true;
        p.servers_tried = servers_tried;
        p.deadline = deadline;
        self.transmits.push_back((id, t.dest, t.datagram));
    }
}
