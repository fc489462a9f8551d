//! Session resumption (RFC 5723): the gateway hands its client a ticket, opaque to the client,
//! holding what the IKE SA needs to be set up again without a key exchange or EAP: the connection,
//! both identities, the negotiated proposal and SK_d. The client presents it in IKE_SESSION_RESUME
//! (one round trip, no Diffie-Hellman), both sides derive fresh keys from the old SK_d and new
//! nonces (§5.1), and IKE_AUTH proves each side holds them.
//!
//! Tickets are "by value" (§6.1): encrypted and authenticated with AES-256-GCM under a key of the
//! gateway's own, which changes every ticket lifetime; tickets made with the previous key stay
//! readable, so every ticket is honoured for its whole lifetime. A ticket is taken once:
//! the gateway remembers the identifiers of those it accepted until they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oxswan_crypto::alg::{EncrAlg, PrfAlg};
use oxswan_crypto::keys::{IkeSaKeys, IkeSuite};
use oxswan_crypto::{CryptoProvider, Secret};
use oxswan_wire::id::IdPayload;
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::{Context, EncrId, Identity, PayloadType};

use crate::error::{IkeError, Result};

/// The label of the resumption SKEYSEED (RFC 5723 §5.1), ten ASCII octets without a terminator.
const RESUMPTION: &[u8] = b"Resumption";
/// Our ticket format's version, the first octet of its plaintext.
const VERSION: u8 = 1;
/// Authenticated with every ticket: a ticket of another use of the key cannot pass as ours.
const AAD: &[u8] = b"oxswan IKEv2 ticket v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const ID_LEN: usize = 16;
/// Most tickets remembered as taken under one key (64 MiB at most); past it, tickets of that key
/// are refused (their clients set their SAs up in full) rather than a replay let through.
const MAX_SPENT: usize = 1 << 20;

/// What a ticket holds (RFC 5723 §5: "the ticket ... contains ... IDi, IDr, SPIs, the IKE SA's
/// algorithms, SK_d, the authentication method, the expiration time").
#[derive(Clone, PartialEq, Eq)]
pub struct TicketState {
    /// Unique per ticket, for the one-time rule.
    pub id: [u8; ID_LEN],
    /// Seconds since the Unix epoch when the ticket was made.
    pub issued_unix: u64,
    /// Seconds since the Unix epoch after which the ticket is refused.
    pub expires_unix: u64,
    /// The gateway's connection.
    pub connection: String,
    /// The client's IKE identity.
    pub idi: Identity,
    /// The client's EAP identity, if it authenticated with EAP.
    pub eap_identity: Option<String>,
    /// The IKE SA's proposal (one transform of each type).
    pub proposal: Proposal,
    /// The IKE SA's SK_d, when the ticket was made.
    pub sk_d: Secret,
    /// SK_d had a PPK mixed in (RFC 8784), which the resumed SA keeps.
    pub ppk_used: bool,
}

impl core::fmt::Debug for TicketState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TicketState")
            .field("connection", &self.connection)
            .field("idi", &self.idi)
            .field("eap_identity", &self.eap_identity)
            .field("expires_unix", &self.expires_unix)
            .finish_non_exhaustive()
    }
}

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("not a ticket of ours (malformed, altered, or made with a key we no longer have)")]
    NotOurs,
    #[error("expired")]
    Expired,
    #[error("already used")]
    Spent,
    #[error("its connection {0:?} is gone or does not allow resumption")]
    NoConnection(String),
    #[error("{0} was cut off after the ticket was made")]
    Revoked(String),
    #[error("one of too many taken under its key")]
    Full,
}

/// Builds the plaintext of a ticket, length-prefixed fields in order.
struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) -> Result<()> {
        let len = u16::try_from(b.len()).map_err(|_| IkeError::Auth("ticket field too long".into()))?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
        Ok(())
    }
}

/// Reads it back; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        self.take(usize::from(len))
    }
}

impl TicketState {
    fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer(Vec::with_capacity(256));
        w.0.push(VERSION);
        w.0.extend_from_slice(&self.id);
        w.0.extend_from_slice(&self.issued_unix.to_be_bytes());
        w.0.extend_from_slice(&self.expires_unix.to_be_bytes());
        w.0.push(u8::from(self.ppk_used));
        w.bytes(self.connection.as_bytes())?;
        let mut idi = Vec::new();
        IdPayload::from_identity(&self.idi).emit(&mut idi)?;
        w.bytes(&idi)?;
        match &self.eap_identity {
            Some(e) => {
                w.0.push(1);
                w.bytes(e.as_bytes())?;
            }
            None => w.0.push(0),
        }
        let mut sa = Vec::new();
        SaPayload { proposals: vec![self.proposal.clone()] }.emit(&mut sa)?;
        w.bytes(&sa)?;
        w.bytes(self.sk_d.expose())?;
        Ok(w.0)
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader(b);
        if r.take(1)? != [VERSION] {
            return None;
        }
        let id: [u8; ID_LEN] = r.take(ID_LEN)?.try_into().ok()?;
        let issued_unix = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let expires_unix = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
        let ppk_used = match r.take(1)? {
            [0] => false,
            [1] => true,
            _ => return None,
        };
        let connection = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let idi = IdPayload::parse(oxswan_wire::Reader::new(r.bytes()?, Context::Payload(PayloadType::IDI)))
            .ok()?
            .identity()
            .ok()?;
        let eap_identity = match r.take(1)? {
            [0] => None,
            [1] => Some(String::from_utf8(r.bytes()?.to_vec()).ok()?),
            _ => return None,
        };
        let sa = SaPayload::parse(oxswan_wire::Reader::new(r.bytes()?, Context::Payload(PayloadType::SA))).ok()?;
        let [proposal] = <[Proposal; 1]>::try_from(sa.proposals).ok()?;
        let sk_d = Secret::from_slice(r.bytes()?);
        if !r.0.is_empty() {
            return None;
        }
        Some(Self { id, issued_unix, expires_unix, connection, idi, eap_identity, proposal, sk_d, ppk_used })
    }
}

#[derive(Debug)]
struct TicketKey {
    id: u32,
    key: Secret,
    /// The identifiers of the tickets of this key taken so far: they go with the key, when no
    /// ticket it sealed is valid any more.
    spent: std::collections::HashSet<[u8; ID_LEN]>,
}

impl TicketKey {
    fn new(id: u32, key: Secret) -> Self {
        Self { id, key, spent: std::collections::HashSet::new() }
    }
}

/// The key `id` of `old` with `key` (keeping the tickets taken under it), or a new one.
fn reuse(old: &mut Vec<TicketKey>, (id, key): (u32, Secret)) -> TicketKey {
    match old.iter().position(|k| k.id == id) {
        Some(i) => {
            let mut k = old.swap_remove(i);
            k.key = key;
            k
        }
        None => TicketKey::new(id, key),
    }
}

/// A ticket opened, not yet taken ([`TicketKeys::take`]).
#[derive(Debug)]
pub struct Opened {
    /// What it holds.
    pub state: TicketState,
    key_id: u32,
}

/// The gateway's ticket keys: the current one seals, it and its predecessor open.
#[derive(Debug)]
pub struct TicketKeys {
    current: TicketKey,
    previous: Option<TicketKey>,
    changed_at: Instant,
    /// How long a ticket is good for, and how often the key changes.
    pub lifetime: Duration,
    /// Peers cut off (their IKE or EAP identity), with when (Unix seconds): tickets made before
    /// are refused.
    revoked: HashMap<String, u64>,
    /// Whether the keys come from outside ([`Self::set_shared`]: a cluster's, the same on every
    /// gateway) rather than drawn and rotated here.
    shared: bool,
}

fn aead(provider: &CryptoProvider, key: &Secret) -> Result<Box<dyn oxswan_crypto::provider::AeadKey>> {
    let alg = EncrAlg::new(EncrId::AES_GCM_16, Some(256))?;
    Ok(provider.cipher.aead(alg, key.expose())?)
}

fn fresh(provider: &CryptoProvider, len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    provider.random.fill(&mut v)?;
    Ok(v)
}

impl TicketKeys {
    /// Keys drawn afresh: tickets of an earlier run of the gateway are refused (the client falls
    /// back to a full IKE_SA_INIT).
    pub fn new(provider: &CryptoProvider, now: Instant, lifetime: Duration) -> Result<Self> {
        // One draw for the key's number and the key (of another size than a nonce's).
        let drawn = Secret::new(fresh(provider, 36)?);
        let (id, key) = drawn.expose().split_first_chunk::<4>().ok_or(IkeError::SpiExhausted)?;
        Ok(Self {
            current: TicketKey::new(u32::from_be_bytes(*id), Secret::from_slice(key)),
            previous: None,
            changed_at: now,
            lifetime,
            revoked: HashMap::new(),
            shared: false,
        })
    }

    /// Uses keys from outside from now on: `current` seals, it and `previous` open. Several
    /// gateways given the same keys honour each other's tickets, so a client whose gateway died
    /// resumes on another (a ticket is opaque to the client: RFC 5723 leaves its making to the gateways). A key
    /// kept (same number) keeps the tickets taken under it; no key is drawn or rotated here any
    /// more.
    pub fn set_shared(&mut self, current: (u32, Secret), previous: Option<(u32, Secret)>) {
        let mut old: Vec<TicketKey> = [
            Some(core::mem::replace(&mut self.current, TicketKey::new(0, Secret::new(Vec::new())))),
            self.previous.take(),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.current = reuse(&mut old, current);
        self.previous = previous.map(|p| reuse(&mut old, p));
        self.shared = true;
    }

    /// The number of the key that seals now.
    pub fn current_id(&self) -> u32 {
        self.current.id
    }

    /// A new key once the current one has sealed for a lifetime; the one before goes, as no ticket
    /// it sealed is still valid.
    pub fn rotate_if_due(&mut self, provider: &CryptoProvider, now: Instant) -> Result<()> {
        if !self.shared && now.saturating_duration_since(self.changed_at) >= self.lifetime {
            let next = TicketKey::new(self.current.id.wrapping_add(1), Secret::new(fresh(provider, 32)?));
            self.previous = Some(core::mem::replace(&mut self.current, next));
            self.changed_at = now;
        }
        Ok(())
    }

    /// Refuses from now on the tickets made so far for `identity` (its IKE identity as `status`
    /// shows it, or its EAP identity): a client cut off must authenticate again.
    pub fn revoke(&mut self, identity: &str, unix_now: u64) {
        let horizon = self.lifetime.as_secs();
        self.revoked.retain(|_, at| at.saturating_add(horizon) >= unix_now);
        self.revoked.insert(identity.to_owned(), unix_now);
    }

    /// A ticket for `state` (whose `id` and expiry this sets): `key id | nonce | ciphertext | tag`.
    pub fn seal(&self, provider: &CryptoProvider, state: &mut TicketState, unix_now: u64) -> Result<Vec<u8>> {
        state.id = fresh(provider, ID_LEN)?.try_into().map_err(|_| IkeError::SpiExhausted)?;
        state.issued_unix = unix_now;
        state.expires_unix = unix_now.saturating_add(self.lifetime.as_secs());
        let nonce: [u8; NONCE_LEN] = fresh(provider, NONCE_LEN)?.try_into().map_err(|_| IkeError::SpiExhausted)?;
        let mut body = state.encode()?;
        let mut tag = [0u8; TAG_LEN];
        let key_id = self.current.id.to_be_bytes();
        aead(provider, &self.current.key)?.seal_in_place(&nonce, &[AAD, &key_id].concat(), &mut body, &mut tag)?;
        Ok([&key_id[..], &nonce, &body, &tag].concat())
    }

    /// The state in `ticket`, if we sealed it, it has not expired, was not taken before and its
    /// peer was not cut off since. It is not taken yet: [`Self::take`] does that once the gateway
    /// accepts it.
    pub fn open(&self, provider: &CryptoProvider, ticket: &[u8], unix_now: u64) -> Result<Opened, TicketError> {
        let (key_id, rest) = ticket.split_first_chunk::<4>().ok_or(TicketError::NotOurs)?;
        let (nonce, rest) = rest.split_first_chunk::<NONCE_LEN>().ok_or(TicketError::NotOurs)?;
        let (body, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or(TicketError::NotOurs)?;
        let id = u32::from_be_bytes(*key_id);
        let key = self.key(id).ok_or(TicketError::NotOurs)?;
        let mut plain = body.to_vec();
        let opened = aead(provider, &key.key)
            .and_then(|k| Ok(k.open_in_place(nonce, &[AAD, key_id.as_slice()].concat(), &mut plain, tag)?));
        // The plaintext holds SK_d: a Secret, wiped when it goes.
        let plain = Secret::new(plain);
        opened.map_err(|_| TicketError::NotOurs)?;
        let state = TicketState::decode(plain.expose()).ok_or(TicketError::NotOurs)?;
        if state.expires_unix <= unix_now {
            return Err(TicketError::Expired);
        }
        let who = [Some(crate::cert::identity_string(&state.idi)), state.eap_identity.clone()];
        if let Some(w) =
            who.into_iter().flatten().find(|w| self.revoked.get(w).is_some_and(|at| *at >= state.issued_unix))
        {
            return Err(TicketError::Revoked(w));
        }
        if key.spent.contains(&state.id) {
            return Err(TicketError::Spent);
        }
        Ok(Opened { state, key_id: id })
    }

    /// Takes an opened ticket: it opens no more.
    pub fn take(&mut self, opened: &Opened) -> Result<(), TicketError> {
        let key = [Some(&mut self.current), self.previous.as_mut()]
            .into_iter()
            .flatten()
            .find(|k| k.id == opened.key_id)
            .ok_or(TicketError::NotOurs)?;
        if key.spent.len() >= MAX_SPENT {
            return Err(TicketError::Full);
        }
        if !key.spent.insert(opened.state.id) {
            return Err(TicketError::Spent);
        }
        Ok(())
    }

    fn key(&self, id: u32) -> Option<&TicketKey> {
        [Some(&self.current), self.previous.as_ref()].into_iter().flatten().find(|k| k.id == id)
    }
}

/// What the client keeps of a ticket: the ticket itself, until when it may be used, and what the
/// resumed IKE SA starts from (the gateway's copy is inside the ticket).
#[derive(Clone)]
pub struct ClientTicket {
    /// The connection.
    pub connection: String,
    /// The opaque ticket (TICKET_OPAQUE, RFC 5723 §4).
    pub ticket: Vec<u8>,
    /// When the lifetime the gateway gave runs out.
    pub expires: Instant,
    /// The IKE SA's proposal.
    pub proposal: Proposal,
    /// Its SK_d when the ticket came.
    pub sk_d: Secret,
    /// SK_d had a PPK mixed in.
    pub ppk_used: bool,
}

impl core::fmt::Debug for ClientTicket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientTicket")
            .field("connection", &self.connection)
            .field("ticket_len", &self.ticket.len())
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// How an IKE SA being set up was resumed (RFC 5723), for its IKE_AUTH.
#[derive(Debug)]
pub(crate) enum Resumed {
    /// We presented a ticket; its SK_d had a PPK in it or not.
    Client { ppk_used: bool },
    /// The client presented this ticket of ours.
    Gateway(Box<TicketState>),
}

/// TICKET_LT_OPAQUE's data (RFC 5723 §4): a 4-octet lifetime in seconds, then the ticket.
pub(crate) fn lifetime_and_ticket(lifetime: Duration, ticket: &[u8]) -> Vec<u8> {
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
    [&secs.to_be_bytes()[..], ticket].concat()
}

/// Reads TICKET_LT_OPAQUE's data: the lifetime and the ticket (which must not be empty).
pub(crate) fn read_lifetime_and_ticket(data: &[u8]) -> Option<(Duration, &[u8])> {
    let (secs, ticket) = data.split_first_chunk::<4>()?;
    (!ticket.is_empty()).then(|| (Duration::from_secs(u64::from(u32::from_be_bytes(*secs))), ticket))
}

/// The keys of the resumed IKE SA (§5.1): `SKEYSEED = prf(SK_d_old, "Resumption" | Ni | Nr)`, then
/// RFC 7296 §2.14 with the new nonces and SPIs.
pub(crate) fn resumed_keys(
    provider: &CryptoProvider,
    suite: &IkeSuite,
    sk_d_old: &Secret,
    (ni, nr): (&[u8], &[u8]),
    (spi_i, spi_r): ([u8; 8], [u8; 8]),
) -> Result<IkeSaKeys> {
    let seed = provider.prf.prf(suite.prf, sk_d_old.expose(), &[RESUMPTION, ni, nr])?;
    Ok(IkeSaKeys::derive(provider.prf.as_ref(), suite, seed.expose(), ni, nr, spi_i, spi_r)?)
}

/// The AUTH data of IKE_AUTH after resumption (§5.1): `prf(SK_px, <SignedOctets>)`, with the
/// Shared Key Message Integrity Code method; no certificate, PSK or EAP takes part.
pub(crate) fn resumed_auth(provider: &CryptoProvider, prf: PrfAlg, sk_p: &Secret, octets: &[u8]) -> Result<Secret> {
    Ok(provider.prf.prf(prf, sk_p.expose(), &[octets])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        oxswan_crypto::provider::default_provider()
    }

    fn state() -> TicketState {
        TicketState {
            id: [0; ID_LEN],
            issued_unix: 0,
            expires_unix: 0,
            connection: "rw".into(),
            idi: Identity::Email("alice@example.com".into()),
            eap_identity: Some("alice".into()),
            proposal: oxswan_crypto::proposal::parse_ike_proposals("aes256gcm16-prfsha256-x25519").unwrap().remove(0),
            sk_d: Secret::from_slice(&[7; 32]),
            ppk_used: true,
        }
    }

    #[test]
    fn a_ticket_opens_once_with_its_state_and_only_unaltered() {
        let p = provider();
        let now = Instant::now();
        let mut keys = TicketKeys::new(&p, now, Duration::from_secs(3600)).unwrap();
        let mut s = state();
        let ticket = keys.seal(&p, &mut s, 1_000).unwrap();
        assert_eq!(s.expires_unix, 4_600);
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 1;
            assert_eq!(keys.open(&p, &bad, 1_001).unwrap_err(), TicketError::NotOurs, "octet {i} altered");
        }
        assert_eq!(keys.open(&p, &ticket[..ticket.len() - 1], 1_001).unwrap_err(), TicketError::NotOurs);
        let opened = keys.open(&p, &ticket, 1_001).unwrap();
        assert_eq!(opened.state, s);
        assert!(keys.open(&p, &ticket, 1_001).is_ok(), "not taken by opening");
        keys.take(&opened).unwrap();
        assert_eq!(keys.open(&p, &ticket, 1_002).unwrap_err(), TicketError::Spent, "one time only");
        assert_eq!(keys.take(&opened), Err(TicketError::Spent));
        let ticket = keys.seal(&p, &mut s, 1_000).unwrap();
        assert_eq!(keys.open(&p, &ticket, 4_600).unwrap_err(), TicketError::Expired);
    }

    #[test]
    fn tickets_made_before_a_peer_was_cut_off_are_refused() {
        let p = provider();
        let mut keys = TicketKeys::new(&p, Instant::now(), Duration::from_secs(3600)).unwrap();
        let (mut a, mut b) = (state(), state());
        let before = keys.seal(&p, &mut a, 100).unwrap();
        keys.revoke("alice", 100);
        let after = keys.seal(&p, &mut b, 101).unwrap();
        assert_eq!(keys.open(&p, &before, 102).unwrap_err(), TicketError::Revoked("alice".into()));
        assert!(keys.open(&p, &after, 102).is_ok(), "a ticket of a later authentication");
    }

    #[test]
    fn the_previous_key_opens_the_one_before_does_not() {
        let p = provider();
        let t0 = Instant::now();
        let life = Duration::from_secs(3600);
        let mut keys = TicketKeys::new(&p, t0, life).unwrap();
        let (mut a, mut b) = (state(), state());
        let first = keys.seal(&p, &mut a, 0).unwrap();
        keys.rotate_if_due(&p, t0 + life).unwrap();
        let second = keys.seal(&p, &mut b, 0).unwrap();
        assert!(keys.open(&p, &first, 10).is_ok(), "sealed with the previous key");
        keys.rotate_if_due(&p, t0 + life * 2).unwrap();
        let mut c = state();
        let third = keys.seal(&p, &mut c, 0).unwrap();
        assert!(keys.open(&p, &second, 10).is_ok());
        assert!(keys.open(&p, &third, 10).is_ok());
        let other = TicketKeys::new(&p, t0, life).unwrap().seal(&p, &mut state(), 0).unwrap();
        assert_eq!(keys.open(&p, &other, 10).unwrap_err(), TicketError::NotOurs, "another gateway's key");
    }

    #[test]
    fn ticket_lifetimes_round_trip() {
        let data = lifetime_and_ticket(Duration::from_secs(28_800), b"opaque");
        assert_eq!(read_lifetime_and_ticket(&data), Some((Duration::from_secs(28_800), &b"opaque"[..])));
        assert_eq!(read_lifetime_and_ticket(&data[..4]), None, "no ticket");
        assert_eq!(read_lifetime_and_ticket(&[0, 1]), None);
    }
}
