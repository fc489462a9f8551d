//! The endpoint: every IKE SA of one daemon, the routing of datagrams to them, and the defences of a
//! responder that keeps state for strangers (RFC 7296 §2.6, §2.21).
//!
//! Sans-IO, in the manner of quinn-proto: feed it with [`Endpoint::handle_datagram`] and
//! [`Endpoint::handle_timeout`] (and commands such as [`Endpoint::initiate`]), then drain
//! [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`] until they return `None`, and call
//! `handle_timeout` again at [`Endpoint::poll_timeout`]. Time is always an argument.

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use oxswan_crypto::CryptoProvider;
use oxswan_wire::{ExchangeType, Header, IkeSpi, Message};

use crate::auth::{Credentials, SharedKeys};

mod admission;
mod by_peer;
mod spis;
mod work;
use crate::config::{EndpointConfig, PeerConfig};
use crate::cookie::CookieJar;
use crate::error::{IkeError, Result, Unexpected};
use crate::event::{ChildSa, Event, IkeSaInfo, SaHandle};
use crate::ike_sa::IkeSa;
use crate::leases::{AddressLeases, NoPools};
use crate::sa::{Ctx, Job, Outbox, Transmit, Transport, later};
use crate::volume::ChildUsage;
pub use work::{InitDone, InitWork};

/// Counters of what the endpoint dropped or refused, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams dropped: unparseable, unknown SPI, failed integrity, out of window; by cause in
    /// `drops`.
    pub dropped: u64,
    /// `dropped`, by cause.
    pub drops: Drops,
    /// COOKIE notifies sent.
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests dropped by the half-open limits.
    pub half_open_refused: u64,
    /// INVALID_IKE_SPI notifies sent.
    pub invalid_spi_sent: u64,
    /// Retransmitted requests answered from the response cache.
    pub retransmits_answered: u64,
    /// Clients sent to another gateway (RFC 5685): in IKE_SA_INIT (`redirect` of the endpoint),
    /// in IKE_AUTH (of the connection) or, acknowledged, on an established IKE SA.
    pub redirects_sent: u64,
}

/// Why the endpoint dropped IKE datagrams (issue 18: an operator under attack sees what kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Not a well-formed message: the header, a payload, a fragment.
    pub malformed: u64,
    /// For an IKE SA we do not have.
    pub unknown_spi: u64,
    /// Failed the integrity check or AEAD tag of its SA (RFC 7296 §2.21.2).
    pub unauthenticated: u64,
    /// Well-formed and ours, but not now: a message ID outside the window, a response to nothing,
    /// the half-open limits, and the like.
    pub other: u64,
}

impl Stats {
    /// One datagram dropped, for the reason `e`: in the total and by cause.
    pub(crate) fn drop(&mut self, e: &IkeError) {
        self.dropped = self.dropped.saturating_add(1);
        self.drops.count(e);
    }
}

impl Drops {
    fn count(&mut self, e: &IkeError) {
        let n = match e {
            IkeError::Wire(_)
            | IkeError::MissingPayload(_)
            | IkeError::Fragment(_)
            | IkeError::Syntax(_)
            | IkeError::DuplicatePayload(_) => &mut self.malformed,
            IkeError::UnknownSa => &mut self.unknown_spi,
            IkeError::Crypto(oxswan_crypto::CryptoError::IntegrityCheckFailed) => &mut self.unauthenticated,
            _ => &mut self.other,
        };
        *n = n.saturating_add(1);
    }
}

/// The endpoint's IKE SAs by where they are in their exchanges, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounts {
    /// Ours, IKE_SA_INIT or IKE_AUTH in flight.
    pub connecting: u64,
    /// The peer's, IKE_SA_INIT answered and IKE_AUTH not complete (EAP rounds included).
    pub half_open: u64,
    /// Both sides authenticated.
    pub established: u64,
    /// Gone, lingering to answer retransmissions of the request that ended them.
    pub closing: u64,
}

/// How long a failed reauthentication waits before the next try.
const REAUTH_RETRY: core::time::Duration = core::time::Duration::from_secs(10);

/// How long the peer has to delete the redundant SA of a simultaneous IKE rekey it initiated
/// (§2.8.2) before it ends by itself: a few of the peer's retransmissions of its request.
const REDUNDANT_GRACE: core::time::Duration = core::time::Duration::from_secs(15);

/// All IKE SAs of a daemon.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    provider: CryptoProvider,
    peers: Vec<Arc<PeerConfig>>,
    /// Ordered so that timeouts and events come out in a reproducible order. Boxed: the handles
    /// only grow, so the B-tree's leaves stay about 7/11 full, and an `IkeSa` inline would make
    /// every empty slot cost its size (measured with `--bench road_warriors`).
    sas: BTreeMap<SaHandle, Box<IkeSa>>,
    by_spi: HashMap<IkeSpi, SaHandle>,
    /// Responder SAs by the initiator's SPI and address, for retransmitted IKE_SA_INIT requests,
    /// which carry no responder SPI yet (§2.1).
    by_init: HashMap<(IkeSpi, SocketAddr), SaHandle>,
    half_open: HashMap<SaHandle, IpAddr>,
    /// Every SA's next timer, ordered: `poll_timeout` is the first, `handle_timeout` takes the due ones.
    timers: BTreeSet<(Instant, SaHandle)>,
    timer_of: HashMap<SaHandle, Instant>,
    /// Reauthentications under way: the new SA and the one it replaces.
    reauths: HashMap<SaHandle, SaHandle>,
    half_open_per_ip: HashMap<IpAddr, usize>,
    /// Every inbound ESP SPI an SA holds, and which: drawn unique (RFC 4303 §2.1, the SPI alone
    /// names an inbound SA to the data plane), registered after each operation on an SA.
    esp_spis: HashMap<u32, SaHandle>,
    spis_of: HashMap<SaHandle, Vec<u32>>,
    /// Established IKE SAs by connection and peer identity (INITIAL_CONTACT, reauthentication).
    /// The key is shared by both maps: one copy of the two names per peer.
    by_peer: HashMap<Arc<(String, String)>, by_peer::PeerSas>,
    peer_of: HashMap<SaHandle, Arc<(String, String)>>,
    /// Pairs of a reauthentication's responder held back (inbound SPI), by the inbound SPI of the
    /// pair each waits for. Both are found through `esp_spis`, whichever IKE SA holds them by then.
    held: HashMap<u32, u32>,
    cookies: CookieJar,
    credentials: Arc<dyn Credentials>,
    leases: Box<dyn AddressLeases>,
    out: Outbox,
    next_handle: u64,
    epoch: (Instant, u64),
    stats: Stats,
    /// Whether the half-open SAs reached the cookie threshold at the last IKE_SA_INIT request.
    cookie_mode: bool,
    /// How the message being handled arrived; UDP outside [`Endpoint::handle_tcp`].
    arrival: Transport,
    /// This host's addresses (see [`Endpoint::set_local_addresses`]).
    local_addresses: Vec<IpAddr>,
    /// Key exchanges to hand out ([`Endpoint::poll_work`]), and those out, by the request's
    /// initiator SPI and source.
    work: std::collections::VecDeque<InitWork>,
    pending: HashMap<(IkeSpi, SocketAddr), work::Pending>,
    /// When `pending` was last looked over for key exchanges a driver lost.
    swept: Option<Instant>,
    /// As gateway: the keys our session resumption tickets are sealed with (RFC 5723).
    tickets: crate::resume::TicketKeys,
    /// As client: the tickets gateways gave us, by connection.
    client_tickets: HashMap<String, crate::resume::ClientTicket>,
    /// How many unauthenticated answers to messages of no SA (INVALID_IKE_SPI,
    /// INVALID_MAJOR_VERSION) may still go out this second.
    unauthenticated: admission::AnswerBudget,
    /// The top octet of every SPI this endpoint chooses (IKE and inbound ESP), if set
    /// ([`Endpoint::set_spi_tag`]).
    spi_tag: Option<u8>,
}

impl Endpoint {
    /// An endpoint with these connections. `unix_now` is the wall-clock time at `now` (seconds since
    /// the Unix epoch); certificate validity is judged by it, advanced with `now`.
    pub fn new(
        config: EndpointConfig,
        provider: CryptoProvider,
        peers: Vec<PeerConfig>,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self> {
        let cookies = CookieJar::new(&provider, now)?;
        let tickets = crate::resume::TicketKeys::new(&provider, now, config.ticket_lifetime)?;
        Ok(Self {
            config,
            provider,
            peers: peers.into_iter().map(Arc::new).collect(),
            sas: BTreeMap::new(),
            by_spi: HashMap::new(),
            by_init: HashMap::new(),
            half_open: HashMap::new(),
            timers: BTreeSet::new(),
            timer_of: HashMap::new(),
            reauths: HashMap::new(),
            half_open_per_ip: HashMap::new(),
            esp_spis: HashMap::new(),
            spis_of: HashMap::new(),
            by_peer: HashMap::new(),
            peer_of: HashMap::new(),
            held: HashMap::new(),
            cookies,
            credentials: Arc::new(SharedKeys::new()),
            leases: Box::new(NoPools),
            out: Outbox::default(),
            next_handle: 1,
            epoch: (now, unix_now),
            stats: Stats::default(),
            cookie_mode: false,
            arrival: Transport::Udp,
            local_addresses: Vec::new(),
            work: std::collections::VecDeque::new(),
            pending: HashMap::new(),
            swept: None,
            tickets,
            client_tickets: HashMap::new(),
            unauthenticated: admission::AnswerBudget::default(),
            spi_tag: None,
        })
    }

    fn unix_at(&self, now: Instant) -> u64 {
        self.epoch.1.saturating_add(now.saturating_duration_since(self.epoch.0).as_secs())
    }

    fn ctx_parts(&mut self, now: Instant) -> (Ctx<'_>, &mut BTreeMap<SaHandle, Box<IkeSa>>) {
        let unix_now = self.unix_at(now);
        let fragment_size = self.config.fragment_size;
        let ctx = Ctx {
            provider: &self.provider,
            out: &mut self.out,
            now,
            unix_now,
            peers: &self.peers,
            fragment_size,
            esp_spis: &self.esp_spis,
            fresh_spis: Vec::new(),
            credentials: self.credentials.as_ref(),
            keepalive: self.config.keepalive,
            leases: self.leases.as_mut(),
            transport: self.arrival,
            local_addresses: &self.local_addresses,
            resources: self.config.resources,
            tickets: &self.tickets,
            spi_tag: self.spi_tag,
        };
        (ctx, &mut self.sas)
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Drop counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The IKE SAs held, by state: one walk over them.
    pub fn sa_counts(&self) -> SaCounts {
        use crate::sa::State;
        let mut c = SaCounts::default();
        for sa in self.sas.values() {
            let n = match sa.core.state {
                State::Connecting => &mut c.connecting,
                State::HalfOpen => &mut c.half_open,
                State::Established => &mut c.established,
                State::Closed => &mut c.closing,
            };
            *n = n.saturating_add(1);
        }
        // A key exchange out is an SA about to be half-open.
        c.half_open = c.half_open.saturating_add(self.pending.len() as u64);
        c
    }

    /// How many addresses each pool lends, for metrics (empty without pools).
    pub fn pool_usage(&self) -> Vec<crate::leases::PoolUsage> {
        self.leases.usage()
    }

    /// Number of IKE SAs held, in any state.
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Whether the endpoint demands cookies of every new initiator now (RFC 7296 §2.6).
    pub fn cookie_mode(&self) -> bool {
        self.cookie_mode
    }

    /// Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet), and first requests whose key
    /// exchange is out ([`Endpoint::poll_work`]), which hold a half-open place.
    pub fn half_open_count(&self) -> usize {
        self.half_open.len().saturating_add(self.pending.len())
    }

    /// An established SA's parameters.
    pub fn info(&self, sa: SaHandle) -> Option<IkeSaInfo> {
        self.sas.get(&sa).filter(|s| s.is_established()).and_then(|s| s.info())
    }

    /// An SA's CHILD SAs.
    /// Octets of IKE fragments an IKE SA holds for a message not yet whole; never more than
    /// [`MAX_REASSEMBLED`](crate::MAX_REASSEMBLED) (RFC 7383 §2.6 lets a receiver bound it).
    pub fn reassembly_held(&self, sa: SaHandle) -> usize {
        self.sas.get(&sa).map_or(0, |s| s.reassembly_held())
    }

    pub fn children(&self, sa: SaHandle) -> Vec<ChildSa> {
        self.sas.get(&sa).map(|s| s.children()).unwrap_or_default()
    }

    /// When the CHILD SA with inbound SPI `spi_in` of `sa` is due for rekeying, if it is scheduled.
    pub fn rekey_time(&self, sa: SaHandle, spi_in: u32) -> Option<Instant> {
        self.sas.get(&sa).and_then(|s| s.rekey_time(spi_in))
    }

    /// Handles of the established SAs.
    pub fn established(&self) -> Vec<SaHandle> {
        self.sas.iter().filter(|(_, s)| s.is_established()).map(|(h, _)| *h).collect()
    }

    /// Whether the IKE SA was replaced by a rekey or a reauthentication and is being deleted:
    /// [`Self::established`] lists it until its DELETE is answered, but commands for its connection
    /// (other than deleting it) belong to the SA that replaced it ([`IkeError::ReplacedSa`]).
    pub fn replaced(&self, sa: SaHandle) -> bool {
        self.sas.get(&sa).is_some_and(|s| s.is_replaced())
    }

    /// Whether an IKE SA of connection `name` that we initiated is still being set up: a driver
    /// restarting the connection waits for it (it ends up or down) rather than start another.
    pub fn connecting(&self, name: &str) -> bool {
        self.sas.values().any(|s| s.is_connecting_as(name))
    }

    // -----------------------------------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------------------------------

    /// Replaces the connections (a configuration reload). New IKE SAs, ours or the peer's, use the
    /// new set; established SAs keep the configuration they were made with until they end.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) {
        self.peers = peers.into_iter().map(Arc::new).collect();
    }

    /// Replaces where shared keys are looked up for connections that authenticate with
    /// [`LocalAuth::SharedKey`](crate::LocalAuth::SharedKey) or
    /// [`RemoteAuth::SharedKey`](crate::RemoteAuth::SharedKey); asked at each authentication, so a
    /// reload takes effect for the next one.
    pub fn set_credentials(&mut self, credentials: Arc<dyn Credentials>) {
        self.credentials = credentials;
    }

    /// Sets where virtual IPs for remote-access clients come from (RFC 7296 §3.15); without it no
    /// client gets one.
    pub fn set_leases(&mut self, leases: Box<dyn AddressLeases>) {
        self.leases = leases;
    }

    /// Makes `tag` the top octet of every SPI chosen from now on: IKE SPIs (the responder's, and
    /// ours in rekeys) and inbound ESP SPIs. A gateway of a cluster puts its node number there, so
    /// that a balancer in front can send each message and packet to the node holding its SA by
    /// the SPI alone (the SPI is ours to choose, RFC 7296 §2.6, RFC 4303 §2.1). None: random.
    pub fn set_spi_tag(&mut self, tag: Option<u8>) {
        self.spi_tag = tag.filter(|t| *t != 0);
    }

    /// From now on seals session resumption tickets with `current` and opens those of it and of
    /// `previous` (key number and 32 octets each): keys shared by several gateways, which then
    /// honour each other's tickets (RFC 5723). The endpoint draws no ticket key of its own any more.
    pub fn set_shared_ticket_keys(
        &mut self,
        current: (u32, oxswan_crypto::Secret),
        previous: Option<(u32, oxswan_crypto::Secret)>,
    ) {
        self.tickets.set_shared(current, previous);
    }

    /// The number of the ticket key that seals now.
    pub fn ticket_key_id(&self) -> u32 {
        self.tickets.current_id()
    }

    /// From now on makes cookies with the secret `current` and accepts those of it and of
    /// `previous` (RFC 7296 §2.6): secrets shared by several gateways, so a cookie one handed out
    /// is good at another. The endpoint draws no cookie secret of its own any more.
    pub fn set_shared_cookie_secrets(
        &mut self,
        current: (u32, oxswan_crypto::Secret),
        previous: Option<(u32, oxswan_crypto::Secret)>,
    ) {
        self.cookies.set_shared(current, previous);
    }

    /// Starts the connection `name` from `local` to `remote` (usually port 500).
    pub fn initiate(&mut self, now: Instant, name: &str, local: SocketAddr, remote: SocketAddr) -> Result<SaHandle> {
        self.start(now, name, (local, remote), None)
    }

    /// A new IKE SA of connection `name`, `redirected_from` another gateway or not.
    fn start(
        &mut self,
        now: Instant,
        name: &str,
        (local, remote): (SocketAddr, SocketAddr),
        redirected_from: Option<core::net::IpAddr>,
    ) -> Result<SaHandle> {
        let peer = self.peers.iter().find(|p| p.name == name).cloned().ok_or(IkeError::UnknownConnection)?;
        let handle = SaHandle(self.next_handle);
        self.next_handle = self.next_handle.wrapping_add(1);
        let tcp = peer.tcp.mode == crate::config::TcpMode::Always;
        // RFC 5723: a ticket of the connection's gateway, if it is still good, is used once.
        let ticket = match self.client_tickets.remove(name) {
            Some(t) if peer.resumption && redirected_from.is_none() && now < t.expires => Some(t),
            _ => None,
        };
        let (mut ctx, _) = self.ctx_parts(now);
        let mut sa = IkeSa::initiate_from(&mut ctx, handle, peer, (local, remote), tcp, (redirected_from, ticket))?;
        if redirected_from.is_some() {
            sa.set_redirected();
        }
        self.by_spi.insert(sa.local_spi(), handle);
        self.sas.insert(handle, Box::new(sa));
        self.settle(now, handle);
        Ok(handle)
    }

    /// As gateway, refuses the session resumption tickets made so far for these peers (their IKE
    /// identity as [`crate::cert::identity_string`] writes it, or their EAP identity): a client cut
    /// off must authenticate in full to come back (tickets are bearer credentials).
    pub fn revoke_tickets(&mut self, now: Instant, identities: &[String]) {
        let unix = self.unix_at(now);
        for id in identities {
            self.tickets.revoke(id, unix);
        }
    }

    /// Whether the client holds a ticket for connection `name` that it may still present
    /// (RFC 5723): [`Endpoint::initiate`] resumes with it.
    pub fn has_ticket(&self, now: Instant, name: &str) -> bool {
        self.client_tickets.get(name).is_some_and(|t| now < t.expires)
    }

    /// [`Endpoint::initiate`] to the gateway another one redirected us to before our IKE SA was up
    /// (RFC 5685 §4.1, §6; [`Event::Redirect`]), announcing REDIRECTED_FROM with `from`.
    pub fn initiate_redirected(
        &mut self,
        now: Instant,
        name: &str,
        (local, remote): (SocketAddr, SocketAddr),
        from: core::net::IpAddr,
    ) -> Result<SaHandle> {
        self.start(now, name, (local, remote), Some(from))
    }

    /// Reauthenticates `old` (after [`Event::ReauthDue`]): a new IKE SA of the same connection from
    /// `local` to `remote`, without INITIAL_CONTACT, with all the connection's CHILD SAs. Once it is
    /// up with them the old SA is deleted (make before break); if it fails, the old SA tries again
    /// later until its `over_time` runs out.
    pub fn reauthenticate(
        &mut self,
        now: Instant,
        old: SaHandle,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<SaHandle> {
        self.reestablish(now, old, (local, remote), None)
    }

    /// Follows the gateway's REDIRECT of the established `old` (RFC 5685 §5, [`Event::Redirect`]):
    /// as a reauthentication, to the new gateway at `remote`, announcing REDIRECTED_FROM with the
    /// old one's address.
    pub fn follow_redirect(
        &mut self,
        now: Instant,
        old: SaHandle,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<SaHandle> {
        let from = self.sas.get(&old).and_then(|s| s.info()).map(|i| i.remote.ip()).ok_or(IkeError::UnknownSa)?;
        self.reestablish(now, old, (local, remote), Some(from))
    }

    fn reestablish(
        &mut self,
        now: Instant,
        old: SaHandle,
        (local, remote): (SocketAddr, SocketAddr),
        redirected_from: Option<core::net::IpAddr>,
    ) -> Result<SaHandle> {
        let sa = self.sas.get(&old).ok_or(IkeError::UnknownSa)?;
        // Reauthenticating a replaced SA would make a second SA beside the one that replaced it.
        if sa.is_replaced() {
            return Err(IkeError::ReplacedSa);
        }
        let peer = sa.peer_config().ok_or(IkeError::UnknownSa)?;
        // An SA that fell back to TCP is replaced over TCP at once: UDP did not work before.
        let tcp = peer.tcp.mode == crate::config::TcpMode::Always || sa.transport() == Transport::Tcp;
        let handle = SaHandle(self.next_handle);
        self.next_handle = self.next_handle.wrapping_add(1);
        let (mut ctx, _) = self.ctx_parts(now);
        let mut sa = IkeSa::initiate_from(&mut ctx, handle, peer, (local, remote), tcp, (redirected_from, None))?;
        if redirected_from.is_some() {
            sa.set_redirected();
        } else {
            sa.set_reauthenticating();
        }
        self.by_spi.insert(sa.local_spi(), handle);
        self.sas.insert(handle, Box::new(sa));
        self.reauths.insert(handle, old);
        self.settle(now, handle);
        Ok(handle)
    }

    /// Rekeys the CHILD SA with inbound SPI `spi_in` now (a command, or its byte or packet limit).
    pub fn rekey_child(&mut self, now: Instant, sa: SaHandle, spi_in: u32) -> Result<()> {
        self.job(now, sa, Job::RekeyChild(spi_in))
    }

    /// Rekeys the IKE SA now.
    pub fn rekey_ike(&mut self, now: Instant, sa: SaHandle) -> Result<()> {
        self.job(now, sa, Job::RekeyIke)
    }

    /// Makes the connection's CHILD SAs on the established IKE SA `sa`, one CREATE_CHILD_SA each:
    /// for an IKE SA that has none (a childless one, RFC 6023, or one whose children failed or were
    /// deleted). Events report each as with any other CHILD SA.
    pub fn add_children(&mut self, now: Instant, sa: SaHandle) -> Result<()> {
        let (mut ctx, sas) = self.ctx_parts(now);
        let s = sas.get_mut(&sa).ok_or(IkeError::UnknownSa)?;
        if !s.is_established() {
            return Err(IkeError::UnknownSa);
        }
        s.add_children(&mut ctx);
        self.settle(now, sa);
        Ok(())
    }

    /// Sends new initiators that support redirects to `to` in the IKE_SA_INIT response (RFC 5685
    /// §4.1), or with `None` serves them here; [`EndpointConfig::redirect`](crate::EndpointConfig::redirect)
    /// at the start.
    pub fn set_redirect(&mut self, to: Option<crate::redirect::Gateway>) {
        self.config.redirect = to;
    }

    /// Sends the client of the established `sa` to the gateway `to` (RFC 5685 §5): an
    /// INFORMATIONAL with REDIRECT; [`Event::RedirectAcknowledged`] follows its answer. The client
    /// sets its IKE SA up there and then deletes this one. Refused for a peer that did not announce
    /// REDIRECT_SUPPORTED (§3), or one whose IKE SA we started.
    pub fn redirect(&mut self, now: Instant, sa: SaHandle, to: crate::redirect::Gateway) -> Result<()> {
        let s = self.sas.get_mut(&sa).ok_or(IkeError::UnknownSa)?;
        if !s.is_established() {
            return Err(IkeError::UnknownSa);
        }
        s.set_redirect(to)?;
        self.job(now, sa, Job::Redirect)
    }

    /// Deletes an IKE SA (and its children) with an INFORMATIONAL DELETE (§1.4.1).
    pub fn delete_ike(&mut self, now: Instant, sa: SaHandle) -> Result<()> {
        self.job(now, sa, Job::DeleteIke)
    }

    /// The authentication server's answer to the [`Event::EapRelay`] of `sa`: the IKE_AUTH response
    /// that waited for it goes out.
    pub fn relay_answer(&mut self, now: Instant, sa: SaHandle, answer: crate::event::RelayAnswer) -> Result<()> {
        let (mut ctx, sas) = self.ctx_parts(now);
        let s = sas.get_mut(&sa).ok_or(IkeError::UnknownSa)?;
        let r = s.relay_answer(&mut ctx, answer);
        self.collect_outbox();
        self.initial_contact(now, sa);
        self.uniqueness(now, sa);
        self.hold_replaced_pairs(sa);
        self.settle(now, sa);
        r
    }

    /// Deletes the CHILD SA with inbound SPI `spi_in`.
    pub fn delete_child(&mut self, now: Instant, sa: SaHandle, spi_in: u32) -> Result<()> {
        self.job(now, sa, Job::DeleteChild(spi_in))
    }

    /// Sends an empty INFORMATIONAL request; [`Event::LivenessConfirmed`] follows the answer, and an
    /// unanswered probe ends the SA like any other request (§1.4, §2.4).
    pub fn liveness(&mut self, now: Instant, sa: SaHandle) -> Result<()> {
        self.job(now, sa, Job::Liveness)
    }

    /// The TCP stream between our `local` address and the peer's end `remote` ended (RFC 9329 §6),
    /// after it had been open (`connected`) or when it could not be opened. When we opened it
    /// (`opener`: the daemon opens it again), each IKE SA on it sends its request in flight again at
    /// once on the next stream (at its next retransmission time if the stream never opened) and an
    /// established one checks liveness, which moves the peer's side there. Returns how many IKE
    /// SAs used it.
    pub fn tcp_stream_closed(
        &mut self,
        now: Instant,
        (local, remote): (IpAddr, SocketAddr),
        opener: bool,
        connected: bool,
    ) -> usize {
        let on_it: Vec<SaHandle> =
            self.sas.iter().filter(|(_, s)| s.on_stream(local, remote)).map(|(h, _)| *h).collect();
        for sa in &on_it {
            let (mut ctx, sas) = self.ctx_parts(now);
            if let Some(s) = sas.get_mut(sa) {
                s.tcp_stream_closed(&mut ctx, opener, connected);
            }
            self.settle(now, *sa);
        }
        on_it.len()
    }

    /// This host's addresses, which MOBIKE announces to peers (RFC 4555 §3.4). The daemon updates
    /// them when the kernel reports a change.
    pub fn set_local_addresses(&mut self, addrs: Vec<IpAddr>) {
        self.local_addresses = addrs;
    }

    /// Our addresses changed under the IKE SA `sa` (MOBIKE, RFC 4555 §3.5): it moves to the first
    /// of `paths` (our address, the peer's) that answers, keeping its SPIs, keys and CHILD SAs.
    /// [`Event::PathChanged`] follows the peer's answer. Fails when MOBIKE is off on the SA.
    pub fn roam(&mut self, now: Instant, sa: SaHandle, paths: &[(IpAddr, IpAddr)]) -> Result<()> {
        let (mut ctx, sas) = self.ctx_parts(now);
        let s = sas.get_mut(&sa).ok_or(IkeError::UnknownSa)?;
        let r = s.roam(&mut ctx, paths);
        self.settle(now, sa);
        r
    }

    /// The peer's addresses for a new path of `sa`: its current one first, then those it announced
    /// with MOBIKE (RFC 4555 §3.4).
    pub fn peer_addresses(&self, sa: SaHandle) -> Vec<IpAddr> {
        let Some(s) = self.sas.get(&sa) else { return Vec::new() };
        let mut out = vec![s.core.remote.ip()];
        out.extend(s.peer_addresses().iter().copied().filter(|a| *a != s.core.remote.ip()));
        out
    }

    /// The data plane opened authentic ESP on the pair with inbound SPI `spi_in` from `remote`,
    /// which is not where the pair sends: a NAT rebinding seen in ESP first (RFC 7296 §2.23). The
    /// IKE SA and its CHILD SAs follow when the peer is behind a NAT and we are not; returns whether
    /// they did ([`Event::PathChanged`] follows).
    pub fn esp_moved(&mut self, now: Instant, spi_in: u32, remote: SocketAddr) -> bool {
        let Some(h) = self.esp_spis.get(&spi_in).copied() else { return false };
        let (mut ctx, sas) = self.ctx_parts(now);
        let Some(s) = sas.get_mut(&h) else { return false };
        let moved = s.esp_moved(&mut ctx, remote);
        self.settle(now, h);
        moved
    }

    /// What the data plane counted on the CHILD SA with inbound SPI `spi_in` of `sa`, since it was
    /// installed. Call it when a pair's counters moved (checked every 100–200 ms; counters that did not
    /// move tell nothing, and skipping them keeps the cost with the pairs in use, not all of them):
    /// the engine rekeys or deletes pairs at their volume limits, counts inbound traffic as a sign
    /// of life for dead peer detection, and starts sending on a new pair once the peer sends on it
    /// ([`Event::ChildSaOutbound`]).
    pub fn handle_usage(&mut self, now: Instant, sa: SaHandle, spi_in: u32, usage: ChildUsage) -> Result<()> {
        let (mut ctx, sas) = self.ctx_parts(now);
        let s = sas.get_mut(&sa).ok_or(IkeError::UnknownSa)?;
        s.handle_usage(&mut ctx, spi_in, usage);
        self.settle(now, sa);
        Ok(())
    }

    /// The IKE SA that holds the inbound ESP SPI `spi_in` (an installed pair's, or one offered in a
    /// request in flight): found by index, for callers that know pairs by SPI (the data plane).
    pub fn sa_of(&self, spi_in: u32) -> Option<SaHandle> {
        self.esp_spis.get(&spi_in).copied()
    }

    fn job(&mut self, now: Instant, handle: SaHandle, job: Job) -> Result<()> {
        let (mut ctx, sas) = self.ctx_parts(now);
        let sa = sas.get_mut(&handle).ok_or(IkeError::UnknownSa)?;
        // A replaced SA is still listed (established) until its DELETE is answered; a rekey of a
        // CHILD SA that moved to the new SA would do nothing there, and its deletion is under way.
        // Deleting it, or checking that the peer is alive on it, is still meaningful.
        if sa.is_replaced() && !matches!(job, Job::DeleteIke | Job::Liveness) {
            return Err(IkeError::ReplacedSa);
        }
        sa.queue(&mut ctx, job);
        self.settle(now, handle);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------------

    /// Retransmissions, timeouts, removal of finished SAs.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SaHandle> = self.timers.iter().take_while(|(t, _)| *t <= now).map(|(_, h)| *h).collect();
        let (mut ctx, sas) = self.ctx_parts(now);
        for h in &due {
            if let Some(sa) = sas.get_mut(h) {
                sa.handle_timeout(&mut ctx);
            }
        }
        for h in due {
            self.settle(now, h);
        }
    }

    /// After an SA did something: removes it if finished, updates the half-open accounting and its
    /// timer.
    fn settle(&mut self, now: Instant, h: SaHandle) {
        if let Some(old) = self.reauths.get(&h).copied() {
            self.settle_reauth(now, h, old);
        }
        if self.sas.get(&h).is_some_and(|s| s.is_finished(now))
            && let Some(sa) = self.sas.remove(&h)
        {
            if self.by_spi.get(&sa.local_spi()) == Some(&h) {
                self.by_spi.remove(&sa.local_spi());
            }
            if let Some(key) = sa.init_key()
                && self.by_init.get(&key) == Some(&h)
            {
                self.by_init.remove(&key);
            }
        }
        if self.half_open.contains_key(&h)
            && self.sas.get(&h).is_none_or(|s| !s.is_half_open())
            && let Some(ip) = self.half_open.remove(&h)
            && let Some(n) = self.half_open_per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open_per_ip.remove(&ip);
            }
        }
        let gone = self.register_spis(h);
        self.index_peer(h);
        self.release_held(&gone);
        if let Some(old) = self.timer_of.remove(&h) {
            self.timers.remove(&(old, h));
        }
        if let Some(t) = self.sas.get(&h).and_then(|s| s.next_timeout()) {
            self.timers.insert((t, h));
            self.timer_of.insert(h, t);
        }
    }

    // -----------------------------------------------------------------------------------------------
    // Datagrams
    // -----------------------------------------------------------------------------------------------

    /// An IKE message received on `local` from `remote` (without the non-ESP marker of port 4500).
    /// Anything unacceptable is dropped or answered as RFC 7296 says; the endpoint never panics and
    /// no SA changes state on a message it did not authenticate, except a half-open initiator, whose
    /// IKE_SA_INIT response cannot be authenticated.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.handle_input(now, local, remote, Transport::Udp, data);
    }

    /// An IKE message that came in a TCP stream (RFC 9329 §3.1: a frame's contents after the
    /// non-ESP marker) between `local` and `remote`, the stream's two ends. Handled as a datagram,
    /// and answered on the stream; an SA set up this way stays on TCP.
    pub fn handle_tcp(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.handle_input(now, local, remote, Transport::Tcp, data);
    }

    fn handle_input(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, via: Transport, data: &[u8]) {
        self.arrival = via;
        let mut touched = None;
        if let Err(e) = self.dispatch(now, local, remote, data, &mut touched) {
            self.stats.drop(&e);
        }
        if let Some(h) = touched {
            self.initial_contact(now, h);
            self.uniqueness(now, h);
            self.hold_replaced_pairs(h);
            self.settle(now, h);
        }
        self.arrival = Transport::Udp;
    }

    /// A reauthentication's new SA `h` did something: once it is up with all its CHILD SAs the old
    /// one goes; if it failed the old one tries again in a while.
    fn settle_reauth(&mut self, now: Instant, h: SaHandle, old: SaHandle) {
        let new = self.sas.get(&h);
        let done = new.is_some_and(|s| s.is_idle());
        let closed = new.is_none_or(|s| s.is_closed());
        if done {
            self.reauths.remove(&h);
            let (mut ctx, sas) = self.ctx_parts(now);
            if let Some(sa) = sas.get_mut(&old) {
                sa.reauthenticated(&mut ctx);
            }
            self.settle(now, old);
        } else if closed {
            self.reauths.remove(&h);
            if let Some(sa) = self.sas.get_mut(&old) {
                sa.retry_reauth(later(now, REAUTH_RETRY));
            }
            self.settle(now, old);
        }
    }

    /// Takes in the IKE SAs that a rekey of `old` made, and hands `old`'s CHILD SAs to the one that
    /// replaces it (§2.18).
    fn adopt(&mut self, now: Instant, old: SaHandle) {
        for (mut core, job) in core::mem::take(&mut self.out.spawned) {
            let handle = SaHandle(self.next_handle);
            self.next_handle = self.next_handle.wrapping_add(1);
            core.handle = handle;
            let mut sa = IkeSa::adopt(core);
            if let Some(job) = job {
                let (mut ctx, _) = self.ctx_parts(now);
                sa.queue(&mut ctx, job);
            }
            self.by_spi.insert(sa.local_spi(), handle);
            self.sas.insert(handle, Box::new(sa));
            self.settle(now, handle);
        }
        for spi in core::mem::take(&mut self.out.redundant) {
            if let Some(h) = self.by_spi.get(&spi).copied() {
                if let Some(sa) = self.sas.get_mut(&h) {
                    sa.await_peer_delete(later(now, REDUNDANT_GRACE));
                }
                self.settle(now, h);
            }
        }
        let Some((spi, inheritance)) = self.out.inherit.take() else { return };
        let heir = self.by_spi.get(&spi).copied().filter(|h| self.sas.get(h).is_some_and(|s| s.is_established()));
        let (mut ctx, sas) = self.ctx_parts(now);
        match heir.and_then(|h| Some((h, sas.get_mut(&h)?))) {
            Some((h, sa)) => {
                // The event first: the heir's queued exchanges may already report on its CHILD SAs.
                if let Some(info) = sa.info() {
                    ctx.out.events.push_back(Event::IkeSaRekeyed { old, new: h, info });
                }
                sa.inherit(&mut ctx, inheritance);
                // A reauthentication of `old` under way replaces the heir now, which holds the CHILD
                // SAs (§2.18): deleting only `old`, gone by then, left the heir and its pairs beside
                // the new SA's for good (tests/lifecycle_sim.rs, the peer rekeying during it).
                for target in self.reauths.values_mut() {
                    if *target == old {
                        *target = h;
                    }
                }
                self.settle(now, h);
            }
            // The heir is gone already (deleted by the peer before the handover): so are its children.
            None => {
                for (spi_in, spi_out) in inheritance.child_spis() {
                    self.out.events.push_back(Event::ChildSaDeleted { sa: old, spi_in, spi_out });
                }
            }
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        touched: &mut Option<SaHandle>,
    ) -> Result<()> {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                // Only for a header of the datagram's own length: anything else is noise, not a
                // message of another version (RFC 7296 §2.5 "SHOULD send"), and gets nothing.
                if let (oxswan_wire::ErrorKind::InvalidMajorVersion(_), Ok(h)) = (&e.kind, Header::parse(data))
                    && usize::try_from(h.length).is_ok_and(|l| l == data.len())
                    && !h.flags.response()
                    && self.unauthenticated.take(now)
                {
                    self.invalid_major_version(&h, local, remote);
                }
                return Err(e.into());
            }
        };
        let h = *msg.header();
        // The Initiator flag is set by the original initiator (§3.1); our SPI is the other one.
        let from_initiator = h.flags.initiator();
        let our_spi = if from_initiator { h.spi_r } else { h.spi_i };
        if from_initiator && h.spi_r.is_zero() {
            // RFC 5723 §4: IKE_SESSION_RESUME starts an IKE SA as IKE_SA_INIT does.
            let first = matches!(h.exchange_type, ExchangeType::IKE_SA_INIT | ExchangeType::IKE_SESSION_RESUME);
            if !first || h.flags.response() || h.message_id != 0 {
                return Err(IkeError::Unexpected(Unexpected::ZeroSpiOutsideInit));
            }
            // A retransmission is answered from its SA's cache (§2.1), but not by an SA that is gone
            // and only lingers (a half-open SA that timed out): its answer would start the
            // initiator on an IKE_AUTH nothing is left to take. The request starts afresh instead.
            if let Some(handle) = self.by_init.get(&(h.spi_i, remote)).copied()
                && self.sas.get(&handle).is_some_and(|s| !s.is_closed())
            {
                *touched = Some(handle);
                return self.deliver(now, handle, local, remote, &msg);
            }
            if self.init_pending(h.spi_i, remote) {
                return Ok(());
            }
            return self.new_responder(now, local, remote, &msg);
        }
        let Some(handle) = self.by_spi.get(&our_spi).copied() else {
            // §2.21.4 lets us answer (MAY); a flood of them is answered at a bounded rate.
            if !h.flags.response() && self.unauthenticated.take(now) {
                self.invalid_spi(&h, local, remote);
            }
            return Err(IkeError::UnknownSa);
        };
        let sa = self.sas.get(&handle).ok_or(IkeError::UnknownSa)?;
        // The other SPI must be the one we know, except in the IKE_SA_INIT response that tells us.
        let their_spi = if from_initiator { h.spi_i } else { h.spi_r };
        let known = if from_initiator { sa.core.spi_i } else { sa.core.spi_r };
        if !known.is_zero() && their_spi != known {
            return Err(IkeError::Unexpected(Unexpected::PeerSpiMismatch));
        }
        *touched = Some(handle);
        self.deliver(now, handle, local, remote, &msg)
    }

    fn deliver(
        &mut self,
        now: Instant,
        handle: SaHandle,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let (mut ctx, sas) = self.ctx_parts(now);
        let sa = sas.get_mut(&handle).ok_or(IkeError::UnknownSa)?;
        let r = sa.handle_message(&mut ctx, local, remote, msg);
        self.adopt(now, handle);
        let hits = core::mem::take(&mut self.out.cache_hits);
        self.stats.retransmits_answered = self.stats.retransmits_answered.saturating_add(hits);
        self.collect_outbox();
        r
    }

    /// What the last step left for the endpoint itself: redirects to count, tickets to keep.
    fn collect_outbox(&mut self) {
        let n = core::mem::take(&mut self.out.redirects);
        self.stats.redirects_sent = self.stats.redirects_sent.saturating_add(n);
        for t in core::mem::take(&mut self.out.tickets) {
            self.client_tickets.insert(t.connection.clone(), t);
        }
    }
}
