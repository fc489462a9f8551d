//! What the engine is told: per-peer connections and endpoint-wide limits. The daemon builds these from
//! its TOML (issue 4); the engine checks nothing about files.

use core::time::Duration;
use std::sync::Arc;

use oxswan_crypto::Secret;
use oxswan_wire::Identity;
use oxswan_wire::sa::Proposal;

use crate::cert::{LocalCert, TrustStore};
use crate::child::ChildConfig;

/// How we prove our identity.
#[derive(Debug, Clone)]
pub enum LocalAuth {
    /// Pre-shared key (RFC 7296 §2.15, method 2).
    Psk(Secret),
    /// A pre-shared key looked up in the endpoint's [`Credentials`](crate::auth::Credentials) by our
    /// identity and the peer's when authenticating.
    SharedKey,
    /// Certificate and private key; the chain is sent in CERT payloads (RFC 7296 §3.6).
    Cert(Arc<LocalCert>),
    /// EAP as the client (RFC 7296 §2.16): no AUTH in the first IKE_AUTH request; the gateway runs
    /// an EAP method with us and both AUTH payloads then come from the method's key.
    Eap(EapClient),
}

/// Our side of EAP as a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EapClient {
    /// Our EAP identity (strongSwan's `eap_id`); `None`: our IKE identity.
    pub identity: Option<String>,
    /// The methods we take part in; empty: any we implement.
    pub methods: Vec<oxswan_eap::MethodType>,
    /// EAP-TLS (RFC 5216, RFC 9190): our certificate and key, the CAs of the gateway's. Without
    /// it we Nak EAP-TLS.
    pub tls: Option<oxswan_eap::TlsPeerConfig>,
}

/// The gateway's side of EAP: how a client must authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapServer {
    /// The methods, in our order of preference (more than one: the client may pick, strongSwan's
    /// `eap-dynamic`).
    pub methods: Vec<oxswan_eap::MethodType>,
    /// Ask the client for its EAP identity first (`eap_id = "%any"` or a name); otherwise its IKE
    /// identity is the EAP identity.
    pub ask_identity: bool,
    /// The one EAP identity the connection admits (`eap_id = "alice"`); `None`: any.
    pub identity: Option<String>,
    /// EAP-TLS: our certificate and key for the TLS server, the CAs of the clients'. Required when
    /// `methods` has it.
    pub tls: Option<oxswan_eap::TlsServerConfig>,
    /// Leave CERT and AUTH out of the first answer when the client offers EAP-only authentication
    /// (RFC 5998) and every method is mutual and makes a key. Off by default: a client that offers
    /// it may still insist on the gateway's AUTH by its configuration (charon does, unless its
    /// remote side authenticates by EAP).
    pub eap_only: bool,
}

/// How the peer must prove its identity.
#[derive(Debug, Clone)]
pub enum RemoteAuth {
    /// Pre-shared key.
    Psk(Secret),
    /// A pre-shared key looked up in the endpoint's [`Credentials`](crate::auth::Credentials) by our
    /// identity and the peer's, once the peer named itself: a `%any` connection serves peers with
    /// keys of their own.
    SharedKey,
    /// A certificate chaining to one of these CAs, whose subject or subjectAltName is the peer's ID.
    Cert(TrustStore),
    /// EAP, run by us (RFC 7296 §2.16), with the users' secrets from the endpoint's
    /// [`Credentials`](crate::auth::Credentials).
    Eap(EapServer),
    /// EAP passed through to an authentication server by the daemon (RADIUS, RFC 3579): each of
    /// the client's EAP messages becomes an [`Event::EapRelay`](crate::Event::EapRelay), and the
    /// response waits for [`Endpoint::relay_answer`](crate::Endpoint::relay_answer).
    EapRelay(EapRelay),
}

/// The gateway's side of EAP passed through to an authentication server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EapRelay {
    /// Ask the client for its EAP identity first (`eap_id = "%any"` or a name); otherwise its IKE
    /// identity is the EAP identity.
    pub ask_identity: bool,
    /// The one EAP identity the connection admits; `None`: any.
    pub identity: Option<String>,
    /// How long a round may wait for the server's answer (at least the 30 s of a local method):
    /// the daemon makes it cover its retransmissions to every server.
    pub wait: core::time::Duration,
}

/// Retransmission of requests (RFC 7296 §2.1). The defaults are strongSwan's: 4 s, ×1.8 per try, 5
/// retransmissions, so a request is given up about 165 s after it was first sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retransmit {
    /// Time to the first retransmission.
    pub timeout: Duration,
    /// Factor applied per retransmission.
    pub base: f64,
    /// Number of retransmissions before giving up.
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(4), base: 1.8, tries: 5 }
    }
}

impl Retransmit {
    /// The wait after the `n`-th transmission (0 = the first send): `timeout × base^n`.
    pub fn wait(&self, n: u32) -> Duration {
        let factor = self.base.max(1.0).powi(i32::try_from(n).unwrap_or(i32::MAX));
        // Saturate absurd configurations instead of panicking in `mul_f64`.
        let secs = (self.timeout.as_secs_f64() * factor).min(86_400.0);
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// One connection to a peer (strongSwan's `connections.<name>`).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The connection's name, for logs and events.
    pub name: String,
    /// Acceptable IKE proposals, in our order of preference.
    pub ike_proposals: Vec<Proposal>,
    /// As responder, choose by the initiator's order rather than ours.
    pub prefer_initiator: bool,
    /// Our identity (IDi or IDr).
    pub local_id: Identity,
    /// The identity the peer must have; `None` accepts any that authenticates. As initiator a
    /// `Some` is also sent as IDr (RFC 7296 §3.5: the responder identity the initiator wants).
    pub remote_id: Option<Identity>,
    /// How we authenticate.
    pub local_auth: LocalAuth,
    /// How the peer must authenticate.
    pub remote_auth: RemoteAuth,
    /// Sign RSA keys with RSASSA-PSS instead of PKCS#1 v1.5 (RFC 7427).
    pub rsa_pss: bool,
    /// The CHILD SAs; the first is created with IKE_AUTH when we initiate.
    pub children: Vec<ChildConfig>,
    /// Request retransmission.
    pub retransmit: Retransmit,
    /// When the IKE SA is rekeyed, reauthenticated and given up.
    pub ike_lifetime: IkeLifetime,
    /// Send INITIAL_CONTACT in IKE_AUTH (RFC 7296 §2.4) when initiating.
    pub initial_contact: bool,
    /// Float to UDP 4500 and encapsulate ESP even without a NAT (strongSwan's `encap`), by faking the
    /// NAT_DETECTION_SOURCE_IP hash (RFC 7296 §2.23 allows it).
    pub force_encap: bool,
    /// Check that the peer is alive (an empty INFORMATIONAL, §2.4) when nothing came from it, IKE or
    /// ESP, for this long (strongSwan's `dpd_delay`); `None`: never.
    pub dpd_delay: Option<Duration>,
    /// As responder: the pools virtual IPs are handed out from (RFC 7296 §3.15), by name, tried in
    /// order for each address family the client asks for.
    pub pools: Vec<String>,
    /// As initiator: the virtual IPs to ask for with CP(CFG_REQUEST) (strongSwan's `vips`); an
    /// unspecified address (`0.0.0.0`, `::`) asks for any of its family.
    pub vips: Vec<core::net::IpAddr>,
    /// What a new IKE SA of a peer identity does to the others of that identity on this
    /// connection (strongSwan's `unique`).
    pub unique: Unique,
    /// Use IKE fragmentation (RFC 7383) on this connection: announce it as initiator and fragment
    /// our long messages when the peer announced it too (strongSwan's `fragmentation`).
    pub fragmentation: bool,
    /// IKE and ESP over TCP as initiator (RFC 9329, Libreswan's `enable-tcp`).
    pub tcp: TcpConfig,
    /// Announce and use MOBIKE (RFC 4555) on this connection (strongSwan's `mobike`): the IKE SA
    /// and its CHILD SAs move to new addresses with UPDATE_SA_ADDRESSES instead of being set up anew.
    pub mobike: bool,
    /// Childless IKE SAs (RFC 6023, strongSwan's `childless`).
    pub childless: Childless,
    /// The Post-quantum Preshared Key to use (RFC 8784), by its PPK_ID (strongSwan's `ppk_id`); the
    /// key itself comes from [`crate::auth::Credentials::ppk`]. As responder `None` takes whichever
    /// PPK_ID the initiator names.
    pub ppk_id: Option<Vec<u8>>,
    /// Fail rather than set the IKE SA up without a PPK (strongSwan's `ppk_required`).
    pub ppk_required: bool,
    /// As responder, send every client that authenticates on this connection, and announced
    /// REDIRECT_SUPPORTED, to this gateway in the IKE_AUTH response (RFC 5685 §6).
    pub redirect: Option<crate::redirect::Gateway>,
    /// Session resumption (RFC 5723): as initiator ask the gateway for a ticket in IKE_AUTH and,
    /// when the connection is started again while it is good, resume with it; as responder give
    /// this connection's clients tickets and take them back.
    pub resumption: bool,
    /// The peer's addresses (swanctl's `remote_addrs`); empty: any. As responder, an IKE_SA_INIT
    /// from an address no connection names is refused before the key exchange.
    pub remote_addrs: Vec<core::net::IpAddr>,
}

/// Whether an IKE SA is set up without a CHILD SA in IKE_AUTH (RFC 6023), the CHILD SAs then made
/// with CREATE_CHILD_SA: strongSwan's `childless` (`prefer` is strongSwan 6's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Childless {
    /// As responder accept either; as initiator make the first CHILD SA in IKE_AUTH.
    #[default]
    Allow,
    /// As initiator go childless when the responder announced CHILDLESS_IKEV2_SUPPORTED, else as
    /// `Allow`.
    Prefer,
    /// Only childless: as initiator fail if the responder does not announce it, as responder refuse
    /// an IKE_AUTH that makes a CHILD SA.
    Force,
    /// As responder refuse a childless IKE_AUTH (and do not announce the extension).
    Never,
}

/// Whether an initiator uses TCP (RFC 9329): Libreswan's `enable-tcp` and `tcp-remoteport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// When.
    pub mode: TcpMode,
    /// The responder's TCP port (RFC 9329 §2 leaves it to configuration; 4500 by default).
    pub port: u16,
}

/// When an initiator sets its IKE SA up over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpMode {
    /// Never: UDP only (Libreswan's default).
    #[default]
    No,
    /// UDP first; TCP when the IKE_SA_INIT request got no answer over UDP (RFC 9329 §5, the
    /// recommended fallback: TCP costs more, so it is the second choice).
    Fallback,
    /// TCP from the first message.
    Always,
}

impl TcpConfig {
    /// TCP never (the default), to the usual port should it be turned on.
    pub const NO: Self = Self { mode: TcpMode::No, port: 4500 };
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self::NO
    }
}

/// The uniqueness policy of a connection's peer identities (strongSwan's `unique`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unique {
    /// Several IKE SAs of one identity coexist, unless the new one sends INITIAL_CONTACT (RFC 7296
    /// §2.4), which replaces the others. Apple clients open several tunnels per user.
    #[default]
    No,
    /// As `No`, and INITIAL_CONTACT is ignored too.
    Never,
    /// A new IKE SA of the identity replaces the old ones, which are deleted.
    Replace,
    /// The old IKE SA stays and the new one is refused.
    Keep,
}

/// When an IKE SA is replaced (strongSwan's connection `rekey_time`, `reauth_time`, `rand_time` and
/// `over_time`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IkeLifetime {
    /// Rekey with CREATE_CHILD_SA (§1.3.2) this long after establishment; `None`: never.
    pub rekey_time: Option<core::time::Duration>,
    /// Reauthenticate, with a new IKE_SA_INIT and IKE_AUTH, this long after establishment; `None`:
    /// never.
    pub reauth_time: Option<core::time::Duration>,
    /// Up to this much earlier, at random, so that the two peers rarely start at once (§2.8.2).
    pub rand_time: core::time::Duration,
    /// How long after the rekey or reauthentication was due the IKE SA is deleted if it has not
    /// been replaced; `None`: never.
    pub over_time: Option<core::time::Duration>,
}

/// Endpoint-wide limits against resource exhaustion (RFC 7296 §2.6). The defaults are strongSwan's
/// (charon.cookie_threshold, .cookie_threshold_ip, .block_threshold, .half_open_timeout).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Above this many half-open IKE SAs in total, new IKE_SA_INIT requests must return a cookie.
    pub cookie_threshold: usize,
    /// Above this many half-open IKE SAs from one address, requests from it must return a cookie.
    pub cookie_threshold_per_peer: usize,
    /// At this many half-open IKE SAs from one address, further requests from it are dropped.
    pub block_threshold_per_peer: usize,
    /// At this many half-open IKE SAs in total, new requests are dropped.
    pub half_open_limit: usize,
    /// A half-open SA (IKE_SA_INIT answered, no IKE_AUTH) is removed after this long.
    pub half_open_timeout: Duration,
    /// The cookie secret changes this often; cookies made with the previous secret stay valid.
    pub cookie_secret_lifetime: Duration,
    /// Always demand a cookie (tests, or an administrator under attack).
    pub force_cookies: bool,
    /// When the peer announced IKE fragmentation (RFC 7383), messages whose datagram would exceed
    /// this many octets go as fragments that fit it. As strongSwan's `charon.fragment_size` (default
    /// 1280) it is the whole IP datagram: the path's IP header (20 or 40), UDP (8) and the non-ESP
    /// marker (4, on port 4500) count (RFC 7383 §2.5.1); 0 means 576 for IPv4 and 1280 for IPv6.
    pub fragment_size: usize,
    /// Behind a NAT, send a NAT keepalive (RFC 3948 §2.3) to the peer this often; `None`: never.
    pub keepalive: Option<Duration>,
    /// Hand the responder's IKE_SA_INIT key exchanges out to be computed on other threads
    /// ([`Endpoint::poll_work`](crate::Endpoint::poll_work)) instead of answering at once.
    pub offload_key_exchange: bool,
    /// The data plane's resources (its workers) that per-resource CHILD SAs are made for (RFC 9611,
    /// children with `per_cpu_sas`): as initiator, one pair for each besides the fallback; as
    /// responder, at most this many besides it (more get TS_MAX_QUEUE). The inbound SPI of the pair
    /// for resource `k` is `k` modulo this, which is how the daemon steers its ESP to worker `k`.
    /// 0 or 1: no per-resource pairs but the fallback (a peer may still make its own).
    pub resources: u32,
    /// Send every new initiator that announced REDIRECT_SUPPORTED to this gateway in the
    /// IKE_SA_INIT response, before any key exchange (RFC 5685 §4.1); others are served here.
    /// [`Endpoint::set_redirect`](crate::Endpoint::set_redirect) changes it.
    pub redirect: Option<crate::redirect::Gateway>,
    /// How long a session resumption ticket we give is good for (RFC 5723 §4), and how often the
    /// key that seals them changes.
    pub ticket_lifetime: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            cookie_threshold: 30,
            cookie_threshold_per_peer: 3,
            block_threshold_per_peer: 5,
            half_open_limit: 10_000,
            half_open_timeout: Duration::from_secs(30),
            cookie_secret_lifetime: Duration::from_secs(120),
            force_cookies: false,
            fragment_size: 1280,
            keepalive: None,
            offload_key_exchange: false,
            resources: 0,
            redirect: None,
            ticket_lifetime: Duration::from_secs(8 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongswan_backoff() {
        let r = Retransmit::default();
        let waits: Vec<f64> = (0..=5).map(|n| r.wait(n).as_secs_f64()).collect();
        let expected = [4.0, 7.2, 12.96, 23.328, 41.99, 75.58];
        for (w, e) in waits.iter().zip(expected) {
            assert!((w - e).abs() < 0.01, "{waits:?}");
        }
        assert!(
            Retransmit { timeout: Duration::from_secs(4), base: 1e300, tries: 5 }.wait(9)
                <= Duration::from_secs(86_400)
        );
    }
}
