//! The IKE_SA_INIT exchange (RFC 7296 §1.2): negotiate the IKE SA's algorithms, exchange KE and nonces,
//! derive SKEYSEED and the SK_* keys.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SAi1, KEi, Ni, N(...)  -->
//!                             <--   HDR, SAr1, KEr, Nr, N(...)
//! ```
//!
//! Each side is a consumed-state struct: [`InitRequestSent::handle_response`] takes `self`, so a
//! response cannot be processed twice. Retransmission and message IDs belong to the IKE SA, not here.

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::keys::{IkeSaKeys, IkeSuite};
use oxswan_crypto::proposal::select_proposal;
use oxswan_crypto::provider::KeyExchange;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::payloads::{KePayload, NoncePayload};
use oxswan_wire::sa::{Proposal, SaPayload};
use oxswan_wire::{
    CertEncoding, ExchangeType, Flags, Header, IkeSpi, KeId, Message, NotifyType, Payload, PayloadType, TransformType,
};

use crate::error::{IkeError, Result, Unexpected};
use crate::suite::ike_suite;

/// Length of the nonces we send: 32 octets, at least half the key of every PRF we implement
/// (RFC 7296 §2.10: at least 128 bits and at least half the PRF key size).
pub const NONCE_LEN: usize = 32;

/// The result of a completed IKE_SA_INIT, on either side: what IKE_AUTH needs.
#[derive(Debug)]
pub struct IkeSaInit {
    /// Initiator's SPI.
    pub spi_i: IkeSpi,
    /// Responder's SPI.
    pub spi_r: IkeSpi,
    /// The selected proposal.
    pub proposal: Proposal,
    /// Its algorithms.
    pub suite: IkeSuite,
    /// SK_d, SK_a*, SK_e*, SK_p*.
    pub keys: IkeSaKeys,
    /// Initiator's nonce.
    pub ni: Vec<u8>,
    /// Responder's nonce.
    pub nr: Vec<u8>,
    /// The request as sent (signed by the initiator's AUTH, RFC 7296 §2.15).
    pub request: Vec<u8>,
    /// The response as sent (signed by the responder's AUTH).
    pub response: Vec<u8>,
    /// The peer's notifies (NAT detection, SIGNATURE_HASH_ALGORITHMS, ...), for the caller to evaluate.
    pub peer_notifies: Vec<NotifyPayload>,
    /// The CA key hashes of the peer's X.509 CERTREQ payloads, concatenated (RFC 7296 §3.7).
    pub peer_certreq: Vec<u8>,
    /// The additional key exchanges the proposal chose (RFC 9370), made in IKE_INTERMEDIATE
    /// exchanges before IKE_AUTH, and the IntAuth of those exchanges (RFC 9242 §3.3.2).
    pub intermediate: Intermediate,
    /// Both sides announced USE_PPK (RFC 8784 §3): IKE_AUTH may mix a PPK into the keys.
    pub use_ppk: bool,
    /// The PPK IKE_AUTH uses, once known; it replaces SK_d, SK_pi and SK_pr by prf+(PPK, SK_x)
    /// (RFC 8784 §3.1).
    pub(crate) ppk: Option<oxswan_crypto::Secret>,
    /// The keys the last IKE_INTERMEDIATE request came with, before they changed: a retransmission
    /// of it cut into smaller fragments (RFC 7383 §2.5.2) is still theirs.
    pub(crate) previous_sk_in: Option<oxswan_crypto::sk::SkKeys>,
    /// The SA is a resumed one (RFC 5723): IKE_SESSION_RESUME took IKE_SA_INIT's place, and
    /// IKE_AUTH authenticates with the resumed keys alone.
    pub(crate) resumed: Option<Box<crate::resume::Resumed>>,
}

fn announces(payloads: &[Payload], ty: NotifyType) -> bool {
    payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == ty))
}

/// The additional key exchanges of an IKE SA's setup (RFC 9370 §2.2.2), each in an
/// IKE_INTERMEDIATE exchange of its own (RFC 9242), and the IntAuth chains that AUTH covers.
#[derive(Debug, Default)]
pub struct Intermediate {
    /// The methods of ADDKE1..ADDKE7 as chosen, NONE left out, in the order they are made.
    pub plan: Vec<KeId>,
    /// How many of them are done.
    pub done: usize,
    /// IntAuth_iN and IntAuth_rN so far (RFC 9242 §3.3.2); `None` before the first exchange.
    pub(crate) int_auth_i: Option<oxswan_crypto::Secret>,
    pub(crate) int_auth_r: Option<oxswan_crypto::Secret>,
    /// IKE_INTERMEDIATE exchanges completed: the first IKE_AUTH's message ID is one more.
    pub(crate) exchanges: u32,
    /// The responder's shared secret of the exchange it just answered: the keys change once the
    /// answer, still protected and covered by IntAuth with the old ones, is sent.
    pub(crate) pending: Option<oxswan_crypto::Secret>,
}

impl Intermediate {
    /// The additional key exchanges of `proposal`, by ADDKE number (RFC 9370 §2.2.2: "in the order
    /// of the Transform Types"); NONE means none for that type.
    pub fn of(proposal: &Proposal) -> Self {
        let plan = (TransformType::ADDKE1.0..=TransformType::ADDKE7.0)
            .filter_map(|t| proposal.transforms_of(TransformType(t)).next())
            .map(|t| KeId(t.transform_id))
            .filter(|k| *k != KeId::NONE)
            .collect();
        Self { plan, ..Self::default() }
    }

    /// The method of the next additional key exchange, if one is left.
    pub fn next(&self) -> Option<KeId> {
        self.plan.get(self.done).copied()
    }

    /// `IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID` (RFC 9242 §3.3.2), which AUTH covers
    /// after the exchanges; `None` when there were none.
    pub fn int_auth(&self) -> Option<Vec<u8>> {
        let (i, r) = (self.int_auth_i.as_ref()?, self.int_auth_r.as_ref()?);
        let mid = self.exchanges.saturating_add(1);
        Some([i.expose(), r.expose(), &mid.to_be_bytes()].concat())
    }
}

/// Whether a proposal holds an additional key exchange other than NONE (RFC 9370).
fn has_additional_ke(p: &Proposal) -> bool {
    p.transforms.iter().any(|t| t.transform_type.additional_ke_index().is_some() && t.transform_id != KeId::NONE.0)
}

/// The initiator after sending its IKE_SA_INIT request.
#[derive(Debug)]
pub struct InitRequestSent {
    spi_i: IkeSpi,
    ni: Vec<u8>,
    ke: Box<dyn KeyExchange>,
    proposals: Vec<Proposal>,
    extra: Vec<Payload>,
    request: Vec<u8>,
    /// Announce IKEV2_FRAGMENTATION_SUPPORTED (the connection's `fragmentation`).
    fragmentation: bool,
    /// The ticket presented in IKE_SESSION_RESUME instead of this IKE_SA_INIT (RFC 5723 §4);
    /// the key exchange stays ready for when the gateway refuses it.
    ticket: Option<Box<crate::resume::ClientTicket>>,
}

/// What the initiator learned from the response.
#[derive(Debug)]
pub enum InitResponse {
    /// The IKE SA's keys are ready; IKE_AUTH can follow.
    Established(Box<IkeSaInit>),
    /// INVALID_KE_PAYLOAD: start again with this group, which is in our proposals (RFC 7296 §1.2).
    RetryWithGroup(KeId),
    /// COOKIE: send the request again with this cookie first (RFC 7296 §2.6).
    RetryWithCookie(Vec<u8>),
    /// REDIRECT (RFC 5685 §4.1): set the IKE SA up with this gateway instead, or why we cannot.
    Redirect(core::result::Result<core::net::IpAddr, String>),
    /// TICKET_NACK (RFC 5723 §4): the gateway does not take our ticket; set the SA up in full.
    TicketRefused,
}

pub(crate) fn random(provider: &CryptoProvider, len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    provider.random.fill(&mut v)?;
    Ok(v)
}

/// A random IKE SPI whose first octet is `tag` where one is given
/// ([`crate::Endpoint::set_spi_tag`]); never zero, as the tag is not.
pub fn tagged_spi(provider: &CryptoProvider, tag: Option<u8>) -> Result<IkeSpi> {
    let mut spi = random_spi(provider)?;
    if let Some(t) = tag.filter(|t| *t != 0) {
        spi.0[0] = t;
    }
    Ok(spi)
}

/// A random, non-zero IKE SPI (RFC 7296 §2.6: zero means "not yet chosen").
pub fn random_spi(provider: &CryptoProvider) -> Result<IkeSpi> {
    loop {
        let mut spi = [0u8; 8];
        provider.random.fill(&mut spi)?;
        if spi != [0; 8] {
            return Ok(IkeSpi(spi));
        }
    }
}

/// The notifies both sides add to IKE_SA_INIT: SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4),
/// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3) and INTERMEDIATE_EXCHANGE_SUPPORTED (RFC 9242
/// §3.1; sent by an initiator that proposes additional key exchanges, answered by a responder).
pub(crate) fn capability_notifies(fragmentation: bool, intermediate: bool) -> Vec<Payload> {
    let mut out = vec![Payload::Notify(NotifyPayload::new_signature_hash_algorithms(
        oxswan_crypto::auth::SIGNATURE_HASH_ALGORITHMS,
    ))];
    if fragmentation {
        out.push(Payload::Notify(NotifyPayload::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, Vec::new())));
    }
    if intermediate {
        out.push(Payload::Notify(NotifyPayload::new(NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED, Vec::new())));
    }
    out
}

/// The nonce rule of RFC 7296 §2.10.
pub(crate) fn check_nonce(nonce: &[u8], suite: &IkeSuite) -> Result<()> {
    let n = nonce.len();
    if (16..=256).contains(&n) && n.saturating_mul(2) >= suite.prf.key_len() {
        Ok(())
    } else {
        Err(IkeError::BadNonce(n))
    }
}

/// The payloads of an IKE_SA_INIT message, by kind.
struct InitPayloads {
    sa: Option<SaPayload>,
    ke: Option<KePayload>,
    nonce: Option<Vec<u8>>,
    notifies: Vec<NotifyPayload>,
    certreq: Vec<u8>,
    /// A second SA, KE or Nonce payload: one of each is allowed (RFC 7296 §1.2, §3).
    duplicate: Option<PayloadType>,
}

impl InitPayloads {
    fn collect(payloads: Vec<Payload>) -> Self {
        let mut out =
            Self { sa: None, ke: None, nonce: None, notifies: Vec::new(), certreq: Vec::new(), duplicate: None };
        for p in payloads {
            match p {
                // RFC 7296 §3: only one of each is allowed; the first one counts, and a responder
                // refuses the request (`duplicate`).
                Payload::Sa(sa) if out.sa.is_none() => out.sa = Some(sa),
                Payload::Ke(ke) if out.ke.is_none() => out.ke = Some(ke),
                Payload::Nonce(n) if out.nonce.is_none() => out.nonce = Some(n.data),
                Payload::Sa(_) => out.duplicate = out.duplicate.or(Some(PayloadType::SA)),
                Payload::Ke(_) => out.duplicate = out.duplicate.or(Some(PayloadType::KE)),
                Payload::Nonce(_) => out.duplicate = out.duplicate.or(Some(PayloadType::NONCE)),
                Payload::Notify(n) => out.notifies.push(n),
                Payload::CertReq(c) if c.encoding == CertEncoding::X509_SIGNATURE => {
                    out.certreq.extend(c.ca_key_hashes().flatten())
                }
                _ => {}
            }
        }
        out
    }

    fn notify(&self, ty: NotifyType) -> Option<&NotifyPayload> {
        self.notifies.iter().find(|n| n.notify_type == ty)
    }
}

impl InitRequestSent {
    /// Builds the request with our SPI `spi_i`. `group` is the KE method to send a public value for; by
    /// default the first KE method of the first proposal. `extra` payloads (NAT detection, ...) follow
    /// the nonce.
    pub fn start(
        provider: &CryptoProvider,
        proposals: &[Proposal],
        group: Option<KeId>,
        spi_i: IkeSpi,
        extra: Vec<Payload>,
    ) -> Result<Self> {
        let proposals: Vec<Proposal> =
            proposals.iter().zip(1u8..).map(|(p, number)| Proposal { number, spi: Vec::new(), ..p.clone() }).collect();
        let group = match group {
            Some(g) => g,
            None => proposals
                .first()
                .and_then(|p| p.transforms_of(TransformType::KE).next())
                .map(|t| KeId(t.transform_id))
                .ok_or(IkeError::NoProposalChosen)?,
        };
        let ke = provider.ke.start(group)?;
        let ni = random(provider, NONCE_LEN)?;
        let mut sent = Self { spi_i, ni, ke, proposals, extra, request: Vec::new(), fragmentation: true, ticket: None };
        sent.request = sent.encode(None)?;
        Ok(sent)
    }

    /// The same request without IKEV2_FRAGMENTATION_SUPPORTED: the connection does not use IKE
    /// fragmentation (RFC 7383 §2.3 makes it an option of each side).
    pub fn without_fragmentation(mut self) -> Result<Self> {
        self.fragmentation = false;
        self.request = self.encode(None)?;
        Ok(self)
    }

    /// IKE_SESSION_RESUME with `ticket` in place of this IKE_SA_INIT (RFC 5723 §4): same SPI
    /// and nonce; [`Self::without_ticket`] goes back to IKE_SA_INIT.
    pub fn with_ticket(mut self, ticket: crate::resume::ClientTicket) -> Result<Self> {
        self.ticket = Some(Box::new(ticket));
        self.request = self.encode(None)?;
        Ok(self)
    }

    /// The full IKE_SA_INIT after the gateway refused our ticket.
    pub fn without_ticket(mut self) -> Result<Self> {
        self.drop_ticket()?;
        Ok(self)
    }

    /// [`Self::without_ticket`] in place, for a request in flight that got no answer.
    pub fn drop_ticket(&mut self) -> Result<()> {
        self.ticket = None;
        self.request = self.encode(None)?;
        Ok(())
    }

    /// Whether the request presents a ticket.
    pub fn resuming(&self) -> bool {
        self.ticket.is_some()
    }

    fn encode(&self, cookie: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut payloads = Vec::with_capacity(self.extra.len().saturating_add(6));
        if let Some(c) = cookie {
            // RFC 7296 §2.6: the COOKIE notify must be the first payload, the others unchanged.
            payloads.push(Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, c.to_vec())));
        }
        if let Some(t) = &self.ticket {
            // RFC 5723 §4: `HDR, [N(COOKIE),] Ni, N(TICKET_OPAQUE) [,N+]`, the N+ being NAT
            // detection and our redirect support (a gateway being drained refuses the ticket and
            // redirects the IKE_SA_INIT that follows); no SA or KE: the ticket's algorithms and
            // SK_d stand in for them.
            payloads.push(Payload::Nonce(NoncePayload { data: self.ni.clone() }));
            payloads.push(Payload::Notify(NotifyPayload::new(NotifyType::TICKET_OPAQUE, t.ticket.clone())));
            let kept = |n: &NotifyPayload| {
                matches!(
                    n.notify_type,
                    NotifyType::NAT_DETECTION_SOURCE_IP
                        | NotifyType::NAT_DETECTION_DESTINATION_IP
                        | NotifyType::REDIRECT_SUPPORTED
                        | NotifyType::REDIRECTED_FROM
                )
            };
            payloads.extend(self.extra.iter().filter(|p| matches!(p, Payload::Notify(n) if kept(n))).cloned());
            payloads.extend(capability_notifies(self.fragmentation, false));
            let header = Header::new(self.spi_i, IkeSpi::ZERO, ExchangeType::IKE_SESSION_RESUME, Flags::INITIATOR, 0);
            return Ok(header.encode(&payloads)?);
        }
        payloads.push(Payload::Sa(SaPayload { proposals: self.proposals.clone() }));
        payloads.push(Payload::Ke(KePayload { group: self.ke.group(), data: self.ke.public_value().to_vec() }));
        payloads.push(Payload::Nonce(NoncePayload { data: self.ni.clone() }));
        payloads.extend(self.extra.iter().cloned());
        payloads.extend(capability_notifies(self.fragmentation, self.proposals.iter().any(has_additional_ke)));
        let header = Header::new(self.spi_i, IkeSpi::ZERO, ExchangeType::IKE_SA_INIT, Flags::INITIATOR, 0);
        Ok(header.encode(&payloads)?)
    }

    /// The same request with the responder's cookie in front (RFC 7296 §2.6).
    pub fn with_cookie(mut self, cookie: &[u8]) -> Result<Self> {
        self.request = self.encode(Some(cookie))?;
        Ok(self)
    }

    /// The request again with a key exchange in `group`, as INVALID_KE_PAYLOAD demands (RFC 7296 §1.2);
    /// SPI, nonce and proposals stay.
    pub fn retry_with_group(mut self, provider: &CryptoProvider, group: KeId) -> Result<Self> {
        self.ke = provider.ke.start(group)?;
        self.request = self.encode(None)?;
        Ok(self)
    }

    /// The request to send (and to retransmit unchanged).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Our SPI, by which the response is routed back.
    pub fn spi_i(&self) -> IkeSpi {
        self.spi_i
    }

    /// Processes the response. It is unauthenticated, so an error leaves `self` usable: the caller may
    /// keep waiting for a genuine response until its retransmissions run out (RFC 7296 §2.4).
    pub fn handle_response(&self, provider: &CryptoProvider, bytes: &[u8]) -> Result<InitResponse> {
        if let Some(t) = &self.ticket {
            return self.resume_response(provider, t, bytes);
        }
        let (h, p) = self.first_response(bytes, ExchangeType::IKE_SA_INIT)?;
        if let Some(c) = p.notify(NotifyType::COOKIE) {
            return Ok(InitResponse::RetryWithCookie(c.data.clone()));
        }
        if let Some(n) = p.notify(NotifyType::INVALID_KE_PAYLOAD) {
            // Only a group we proposed is acceptable (RFC 7296 §1.2), and not the one we just sent.
            let g = n.invalid_ke_group().ok_or(IkeError::PeerNotify(NotifyType::INVALID_KE_PAYLOAD))?;
            let offered =
                self.proposals.iter().any(|p| p.transforms_of(TransformType::KE).any(|t| t.transform_id == g.0));
            return if offered && g != self.ke.group() {
                Ok(InitResponse::RetryWithGroup(g))
            } else {
                Err(IkeError::PeerNotify(NotifyType::INVALID_KE_PAYLOAD))
            };
        }
        if let Some(n) = p.notify(NotifyType::REDIRECT) {
            // RFC 5685 §4.1: only with our Ni as its Nonce Data; anything else may be forged, and
            // the request stays in flight for the genuine response.
            return match crate::redirect::redirect_gateway(&n.data) {
                Some((to, nonce)) if nonce == self.ni.as_slice() => Ok(InitResponse::Redirect(to)),
                _ => Err(IkeError::Unexpected(Unexpected::RedirectNonce)),
            };
        }
        if let Some(e) = p.notifies.iter().find(|n| n.notify_type.is_error()) {
            return Err(IkeError::PeerNotify(e.notify_type));
        }
        if h.spi_r.is_zero() {
            return Err(IkeError::Unexpected(Unexpected::ZeroResponderSpi));
        }
        let sa = p.sa.ok_or(IkeError::MissingPayload(PayloadType::SA))?;
        let ke = p.ke.ok_or(IkeError::MissingPayload(PayloadType::KE))?;
        let nr = p.nonce.ok_or(IkeError::MissingPayload(PayloadType::NONCE))?;
        // The responder must pick exactly one of our proposals, unchanged but for the reduction to one
        // transform per type (RFC 7296 §2.7, §3.3.6).
        let [chosen] = sa.proposals.as_slice() else {
            return Err(IkeError::Unexpected(Unexpected::NotOneProposal));
        };
        let ours = self.proposals.iter().find(|p| p.number == chosen.number).ok_or(IkeError::NoProposalChosen)?;
        let accepted = select_proposal(std::slice::from_ref(ours), std::slice::from_ref(chosen), false)
            .ok_or(IkeError::NoProposalChosen)?;
        if !same_transforms(&accepted, chosen) {
            return Err(IkeError::NoProposalChosen);
        }
        let (suite, group) = ike_suite(chosen)?;
        if group != self.ke.group() || ke.group != group {
            return Err(IkeError::Unexpected(Unexpected::OtherKeGroup));
        }
        check_nonce(&nr, &suite)?;
        let intermediate = Intermediate::of(chosen);
        let use_ppk = announces(&self.extra, NotifyType::USE_PPK)
            && p.notifies.iter().any(|n| n.notify_type == NotifyType::USE_PPK);
        let announced = p.notifies.iter().any(|n| n.notify_type == NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED);
        if !intermediate.plan.is_empty() && !announced {
            return Err(IkeError::Unexpected(Unexpected::NoIntermediateSupport));
        }
        let g_ir = self.ke.complete(&ke.data)?;
        let keys = IkeSaKeys::from_ike_sa_init(
            provider.prf.as_ref(),
            &suite,
            g_ir.expose(),
            &self.ni,
            &nr,
            self.spi_i.0,
            h.spi_r.0,
        )?;
        Ok(InitResponse::Established(Box::new(IkeSaInit {
            spi_i: self.spi_i,
            spi_r: h.spi_r,
            proposal: chosen.clone(),
            suite,
            keys,
            ni: self.ni.clone(),
            nr,
            request: self.request.clone(),
            response: bytes.to_vec(),
            peer_notifies: p.notifies,
            peer_certreq: p.certreq,
            intermediate,
            use_ppk,
            ppk: None,
            previous_sk_in: None,
            resumed: None,
        })))
    }

    /// The header and payloads of a response to our first request, of `exchange`, with our SPI.
    fn first_response(&self, bytes: &[u8], exchange: ExchangeType) -> Result<(Header, InitPayloads)> {
        let msg = Message::parse(bytes)?;
        let h = *msg.header();
        if h.exchange_type != exchange
            || !h.flags.response()
            || h.flags.initiator()
            || h.message_id != 0
            || h.spi_i != self.spi_i
        {
            return Err(IkeError::Unexpected(Unexpected::NotOurInitResponse));
        }
        Ok((h, InitPayloads::collect(msg.parse_payloads()?)))
    }

    /// The IKE_SESSION_RESUME response (RFC 5723 §4): `HDR, Nr [,N+]`, or TICKET_NACK, or a
    /// COOKIE to echo; the keys come from the ticket's SK_d (§5.1).
    fn resume_response(
        &self,
        provider: &CryptoProvider,
        t: &crate::resume::ClientTicket,
        bytes: &[u8],
    ) -> Result<InitResponse> {
        let (h, p) = self.first_response(bytes, ExchangeType::IKE_SESSION_RESUME)?;
        if let Some(c) = p.notify(NotifyType::COOKIE) {
            return Ok(InitResponse::RetryWithCookie(c.data.clone()));
        }
        if p.notify(NotifyType::TICKET_NACK).is_some() {
            return Ok(InitResponse::TicketRefused);
        }
        if let Some(e) = p.notifies.iter().find(|n| n.notify_type.is_error()) {
            return Err(IkeError::PeerNotify(e.notify_type));
        }
        if h.spi_r.is_zero() {
            return Err(IkeError::Unexpected(Unexpected::ZeroResponderSpi));
        }
        let nr = p.nonce.ok_or(IkeError::MissingPayload(PayloadType::NONCE))?;
        let (suite, _) = ike_suite(&t.proposal)?;
        check_nonce(&nr, &suite)?;
        let keys = crate::resume::resumed_keys(provider, &suite, &t.sk_d, (&self.ni, &nr), (self.spi_i.0, h.spi_r.0))?;
        Ok(InitResponse::Established(Box::new(IkeSaInit {
            spi_i: self.spi_i,
            spi_r: h.spi_r,
            proposal: t.proposal.clone(),
            suite,
            keys,
            ni: self.ni.clone(),
            nr,
            request: self.request.clone(),
            response: bytes.to_vec(),
            peer_notifies: p.notifies,
            peer_certreq: Vec::new(),
            // No IKE_INTERMEDIATE: the ticket's keys already hold what they contributed.
            intermediate: Intermediate::default(),
            use_ppk: false,
            ppk: None,
            previous_sk_in: None,
            resumed: Some(Box::new(crate::resume::Resumed::Client { ppk_used: t.ppk_used })),
        })))
    }
}

fn same_transforms(a: &Proposal, b: &Proposal) -> bool {
    let key = |p: &Proposal| {
        let mut t: Vec<_> = p.transforms.iter().map(|t| (t.transform_type, t.transform_id, t.key_length())).collect();
        t.sort();
        t
    };
    key(a) == key(b)
}

/// The responder's answer to an IKE_SA_INIT request.
#[derive(Debug)]
pub enum InitReply {
    /// Send `response`; the SA is half-open until IKE_AUTH completes.
    Accepted {
        /// The response datagram.
        response: Vec<u8>,
        /// The negotiated state.
        sa: Box<IkeSaInit>,
    },
    /// Send `response` (an error notify) and keep no state (RFC 7296 §2.21.1).
    Rejected {
        /// The notify in the response.
        notify: NotifyType,
        /// The response datagram.
        response: Vec<u8>,
        /// Why.
        error: IkeError,
    },
}

/// The responder's configuration for IKE_SA_INIT.
#[derive(Debug, Clone)]
pub struct ResponderParams<'a> {
    /// Acceptable proposals, in our order of preference.
    pub proposals: &'a [Proposal],
    /// Choose by the initiator's order instead of ours.
    pub prefer_initiator: bool,
    /// Payloads to add after the nonce (NAT detection for these SPIs, CERTREQ, ...).
    pub extra: &'a [Payload],
}

/// Processes an IKE_SA_INIT request as the responder, choosing `spi_r` as our SPI.
///
/// Returns `Err` for a message to drop silently (unparseable, not a first IKE_SA_INIT request): RFC 7296
/// §2.21.1 forbids answering what cannot be attributed. Otherwise the reply, which is an error notify
/// (NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD naming our group, INVALID_SYNTAX) when the request is
/// unacceptable.
pub fn respond(
    provider: &CryptoProvider,
    params: &ResponderParams<'_>,
    bytes: &[u8],
    spi_r: IkeSpi,
) -> Result<InitReply> {
    let msg = Message::parse(bytes)?;
    let h = *msg.header();
    if h.exchange_type != ExchangeType::IKE_SA_INIT
        || h.flags.response()
        || !h.flags.initiator()
        || h.message_id != 0
        || !h.spi_r.is_zero()
        || h.spi_i.is_zero()
    {
        return Err(IkeError::Unexpected(Unexpected::NotInitialInit));
    }
    let reject = |notify: NotifyType, data: Vec<u8>, error: IkeError| -> Result<InitReply> {
        // Error responses to IKE_SA_INIT carry a zero responder SPI: no state is kept (RFC 7296 §2.6).
        let header = Header::new(h.spi_i, IkeSpi::ZERO, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0);
        let response = header.encode(&[Payload::Notify(NotifyPayload::new(notify, data))])?;
        Ok(InitReply::Rejected { response, notify, error })
    };
    let payloads = match msg.parse_payloads() {
        Ok(p) => p,
        Err(e) => {
            let notify = match e.disposition() {
                oxswan_wire::Disposition::Notify(n) => n,
                oxswan_wire::Disposition::Drop => return Err(e.into()),
            };
            return reject(notify, e.notify_data(), IkeError::Wire(e));
        }
    };
    let p = InitPayloads::collect(payloads);
    let missing = |ty| reject(NotifyType::INVALID_SYNTAX, Vec::new(), IkeError::MissingPayload(ty));
    let syntax = |why: &'static str| reject(NotifyType::INVALID_SYNTAX, Vec::new(), IkeError::Syntax(why));
    if let Some(ty) = p.duplicate {
        return reject(NotifyType::INVALID_SYNTAX, Vec::new(), IkeError::DuplicatePayload(ty));
    }
    // RFC 7296 §2.23: NAT_DETECTION_*_IP carries a SHA-1 digest, 20 octets.
    let nat_detection = [NotifyType::NAT_DETECTION_SOURCE_IP, NotifyType::NAT_DETECTION_DESTINATION_IP];
    if p.notifies.iter().any(|n| nat_detection.contains(&n.notify_type) && n.data.len() != 20) {
        return syntax("a NAT_DETECTION notify that is not a 20-octet SHA-1 digest");
    }
    // RFC 7296 §3.3.1: an initial IKE_SA_INIT's proposals have an SPI Size of 0.
    if p.sa.as_ref().is_some_and(|sa| sa.proposals.iter().any(|pr| !pr.spi.is_empty())) {
        return syntax("an SPI in an IKE_SA_INIT proposal");
    }
    let Some(sa) = p.sa else { return missing(PayloadType::SA) };
    let Some(ke) = p.ke else { return missing(PayloadType::KE) };
    let Some(ni) = p.nonce else { return missing(PayloadType::NONCE) };
    let Some(mut chosen) = select_proposal(params.proposals, &sa.proposals, params.prefer_initiator) else {
        return reject(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new(), IkeError::NoProposalChosen);
    };
    if KeId(chosen.transforms_of(TransformType::KE).next().map_or(0, |t| t.transform_id)) != ke.group {
        // Prefer the group the initiator already sent a value for, if some proposal with it is
        // acceptable (saves a round trip); otherwise name ours in INVALID_KE_PAYLOAD (RFC 7296 §1.2).
        let with_sent_group: Vec<Proposal> = sa
            .proposals
            .iter()
            .map(|p| Proposal {
                transforms: p
                    .transforms
                    .iter()
                    .filter(|t| t.transform_type != TransformType::KE || t.transform_id == ke.group.0)
                    .cloned()
                    .collect(),
                ..p.clone()
            })
            .collect();
        match select_proposal(params.proposals, &with_sent_group, params.prefer_initiator) {
            Some(c) => chosen = c,
            None => {
                let ours = chosen.transforms_of(TransformType::KE).next().map_or(0, |t| t.transform_id);
                return reject(
                    NotifyType::INVALID_KE_PAYLOAD,
                    ours.to_be_bytes().to_vec(),
                    IkeError::InvalidKePayload(KeId(ours)),
                );
            }
        }
    }
    let (suite, group) = ike_suite(&chosen)?;
    if let Err(e) = check_nonce(&ni, &suite) {
        return reject(NotifyType::INVALID_SYNTAX, Vec::new(), e);
    }
    // RFC 9370 §2.2.1: additional key exchanges need IKE_INTERMEDIATE, which the initiator announces.
    let announced = p.notifies.iter().any(|n| n.notify_type == NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED);
    let use_ppk =
        announces(params.extra, NotifyType::USE_PPK) && p.notifies.iter().any(|n| n.notify_type == NotifyType::USE_PPK);
    let intermediate = Intermediate::of(&chosen);
    if !intermediate.plan.is_empty() && !announced {
        return reject(
            NotifyType::NO_PROPOSAL_CHOSEN,
            Vec::new(),
            IkeError::Unexpected(Unexpected::NoIntermediateSupport),
        );
    }
    // A public value that is not one of the group's (a wrong length, an all-zero X25519 share, a
    // point off the curve) gets NO_PROPOSAL_CHOSEN, as strongSwan answers ("applying DH public
    // value failed"): silence would leave the initiator retransmitting for minutes.
    let (public, g_ir) = match provider.ke.respond(group, &ke.data) {
        Ok(r) => r,
        Err(e) => return reject(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new(), IkeError::BadKePayload(group, e)),
    };
    let nr = random(provider, NONCE_LEN)?;
    let keys = IkeSaKeys::from_ike_sa_init(provider.prf.as_ref(), &suite, g_ir.expose(), &ni, &nr, h.spi_i.0, spi_r.0)?;
    let mut out = vec![
        Payload::Sa(SaPayload { proposals: vec![chosen.clone()] }),
        Payload::Ke(KePayload { group, data: public }),
        Payload::Nonce(NoncePayload { data: nr.clone() }),
    ];
    // USE_PPK only in answer to the initiator's (RFC 8784 §3).
    let asked_ppk = p.notifies.iter().any(|n| n.notify_type == NotifyType::USE_PPK);
    out.extend(
        params
            .extra
            .iter()
            .filter(|x| asked_ppk || !matches!(x, Payload::Notify(n) if n.notify_type == NotifyType::USE_PPK))
            .cloned(),
    );
    out.extend(capability_notifies(true, announced));
    let header = Header::new(h.spi_i, spi_r, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0);
    let response = header.encode(&out)?;
    Ok(InitReply::Accepted {
        response: response.clone(),
        sa: Box::new(IkeSaInit {
            spi_i: h.spi_i,
            spi_r,
            proposal: chosen,
            suite,
            keys,
            ni,
            nr,
            request: bytes.to_vec(),
            response,
            peer_notifies: p.notifies,
            peer_certreq: p.certreq,
            intermediate,
            use_ppk,
            ppk: None,
            previous_sk_in: None,
            resumed: None,
        }),
    })
}
