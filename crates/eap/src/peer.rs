//! The EAP peer: the IKE initiator authenticating to its responder (RFC 7296 §2.16).

use oxswan_crypto::Secret;
use oxswan_crypto::provider::SecureRandom;
use oxswan_wire::payloads::{EapCode, EapPayload};

use crate::method::{PeerContext, PeerMethod, PeerOutcome};
use crate::tls::{PeerSetup, TlsPeer};
use crate::{EapError, EapSecrets, MethodType, packet, types};
use crate::{md5, mschapv2};

/// How the peer answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Our EAP identity (sent in EAP-Identity responses and as the MSCHAPv2 user name).
    pub identity: Vec<u8>,
    /// Methods we accept (empty: any we implement); a Request of another method is answered with
    /// a Nak naming these.
    pub methods: Vec<MethodType>,
    /// EAP-TLS: our certificate, key and the CAs of the server's certificate. Without it we do
    /// not accept EAP-TLS (and Nak it).
    pub tls: Option<crate::TlsPeerConfig>,
}

/// What the peer does with the server's packet.
#[derive(Debug)]
pub enum PeerStep {
    /// Send this EAP Response.
    Respond(EapPayload),
    /// EAP-Success received after the method succeeded (for MSCHAPv2: only after we verified the
    /// server's authenticator response).
    Success {
        /// The method that ran.
        method: MethodType,
        /// The MSK keying our IKE AUTH payload (RFC 7296 §2.16), if the method makes one.
        msk: Option<Secret>,
    },
    /// The conversation failed, or the packet was refused.
    Failure(EapError),
}

/// The last Request answered, to answer its retransmission alike (RFC 3748 §4.1: the peer resends
/// its Response to a duplicate Request rather than processing it again).
#[derive(Debug)]
struct Answered {
    identifier: u8,
    request: Vec<u8>,
    response: EapPayload,
}

/// The peer side of an EAP conversation.
///
/// A packet that is refused (malformed, out of order) gives [`PeerStep::Failure`] and leaves the
/// state as it was; an outcome (EAP-Success, EAP-Failure, a server that failed to authenticate,
/// no secret) ends the conversation.
#[derive(Debug)]
pub struct EapPeer {
    config: PeerConfig,
    /// The method, once the server's Request of one was taken.
    method: Option<Box<dyn PeerMethod>>,
    last: Option<Answered>,
    finished: bool,
}

impl EapPeer {
    /// A peer that has received nothing yet.
    pub fn new(config: PeerConfig) -> Self {
        Self { config, method: None, last: None, finished: false }
    }

    /// The method running (or that ran), once the server proposed one we accept.
    pub fn method(&self) -> Option<MethodType> {
        self.method.as_ref().map(|m| m.method_type())
    }

    /// Whether the conversation has ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What the server said when it refused us, printable (an MS-CHAPv2 Failure-Request:
    /// `E=691 R=0 C=... V=3 M=...`; E=691 is a wrong user or password, 647 a disabled account,
    /// 648 an expired password, 649 no dial-in permission, RFC 2759 §6).
    pub fn failure_message(&self) -> Option<&str> {
        self.method.as_ref().and_then(|m| m.failure_message())
    }

    /// The server's certificate (DER, the end entity) as the method verified it (EAP-TLS), once
    /// the handshake has finished: for a caller that checks the gateway's identity itself (a
    /// distinguished name, which [`crate::TlsPeerConfig::server_name`] cannot say).
    pub fn server_certificate(&self) -> Option<&[u8]> {
        self.method.as_ref().and_then(|m| m.peer_certificate())
    }

    /// Whether we accept `m`: implemented, and listed (or nothing listed); EAP-TLS only with
    /// certificates.
    fn accepts(&self, m: MethodType) -> bool {
        m.is_implemented()
            && (m != MethodType::Tls || self.config.tls.is_some())
            && (self.config.methods.is_empty() || self.config.methods.contains(&m))
    }

    /// The types a Nak names: those we accept, in our order; 0 if none (RFC 3748 §5.3.1).
    fn nak_types(&self) -> Vec<u8> {
        let listed: &[MethodType] =
            if self.config.methods.is_empty() { &MethodType::ALL } else { &self.config.methods };
        let mut out: Vec<u8> = Vec::new();
        for m in listed.iter().copied().filter(|&m| self.accepts(m)) {
            if !out.contains(&m.code()) {
                out.push(m.code());
            }
        }
        if out.is_empty() {
            out.push(0);
        }
        out
    }

    /// Ends the conversation with `error`.
    fn fail(&mut self, error: EapError) -> PeerStep {
        self.finished = true;
        PeerStep::Failure(error)
    }

    /// Answers `request` with a Response of `eap_type` carrying `type_data`, remembering it.
    fn respond(&mut self, request: &EapPayload, eap_type: u8, type_data: &[u8]) -> PeerStep {
        match packet::typed(EapCode::RESPONSE, request.identifier, eap_type, type_data) {
            Ok(response) => {
                self.last = Some(Answered {
                    identifier: request.identifier,
                    request: request.data.clone(),
                    response: response.clone(),
                });
                PeerStep::Respond(response)
            }
            Err(e) => self.fail(e),
        }
    }

    /// The server's EAP packet (Request, Success, Failure): our Response, or the end.
    pub fn handle(&mut self, request: &EapPayload, secrets: &dyn EapSecrets, random: &dyn SecureRandom) -> PeerStep {
        if self.finished {
            return PeerStep::Failure(EapError::Unexpected(format!(
                "EAP {} after the conversation ended",
                packet::code_name(request.code)
            )));
        }
        match request.code {
            EapCode::REQUEST => self.request(request, secrets, random),
            EapCode::SUCCESS => {
                // RFC 3748 §4.2 and RFC 4137 §4.4: a Success is accepted only once the method
                // says the peer may finish; a server that skips (or fakes) the method gets none.
                let Some(method) = &self.method else {
                    return PeerStep::Failure(EapError::Unexpected("EAP-Success before any method ran".into()));
                };
                let outcome = method.success().map(|msk| (method.method_type(), msk));
                match outcome {
                    Ok((method, msk)) => {
                        self.finished = true;
                        PeerStep::Success { method, msk }
                    }
                    Err(e) => self.fail(e),
                }
            }
            EapCode::FAILURE => {
                let error = self.method.as_ref().and_then(|m| m.failure_error()).unwrap_or(EapError::PeerFailure);
                self.fail(error)
            }
            other => PeerStep::Failure(EapError::Unexpected(format!(
                "EAP {} where a Request, Success or Failure was expected",
                packet::code_name(other)
            ))),
        }
    }

    fn request(&mut self, request: &EapPayload, secrets: &dyn EapSecrets, random: &dyn SecureRandom) -> PeerStep {
        let Some((&eap_type, type_data)) = request.data.split_first() else {
            return PeerStep::Failure(EapError::Malformed("EAP Request without a Type"));
        };
        if let Some(last) = &self.last
            && last.identifier == request.identifier
            && last.request == request.data
        {
            return PeerStep::Respond(last.response.clone());
        }
        match eap_type {
            types::IDENTITY => {
                // RFC 3748 §5.1: the Type-Data of the Request is a prompt; ours is the answer. Only
                // before a method: RFC 3748 §2.1 lets no other Type interrupt one.
                if self.method.is_some() {
                    return PeerStep::Failure(EapError::Unexpected("EAP-Identity Request during a method".into()));
                }
                let identity = self.config.identity.clone();
                self.respond(request, types::IDENTITY, &identity)
            }
            // RFC 3748 §5.2: a Notification Request is acknowledged with an empty Notification
            // Response, at any time; its text is for display, which we have none for.
            types::NOTIFICATION => self.respond(request, types::NOTIFICATION, &[]),
            types::NAK => PeerStep::Failure(EapError::Malformed("EAP Nak in a Request")),
            _ => {
                let ctx =
                    PeerContext { identity: &self.config.identity, identifier: request.identifier, secrets, random };
                let (outcome, started) = match &mut self.method {
                    // RFC 3748 §2.1: once we answered a method, no other Type may come until it
                    // is finished.
                    Some(method) if method.method_type().code() != eap_type => {
                        return PeerStep::Failure(EapError::Unexpected(format!(
                            "EAP Type {eap_type} during {}",
                            method.method_type()
                        )));
                    }
                    Some(method) => (method.process(type_data, &ctx), None),
                    None => match MethodType::from_code(eap_type).filter(|&m| self.accepts(m)) {
                        Some(offered) => match new_peer_method(offered, self.config.tls.as_ref()) {
                            Ok(mut method) => (method.process(type_data, &ctx), Some(method)),
                            Err(e) => return PeerStep::Failure(e),
                        },
                        None => {
                            // RFC 3748 §5.3.1: Nak a method we do not accept, naming those we do.
                            let wanted = self.nak_types();
                            return self.respond(request, types::NAK, &wanted);
                        }
                    },
                };
                // A method is taken on with the first Request it accepts, not one it refuses.
                match outcome {
                    PeerOutcome::Respond(td) => {
                        if started.is_some() {
                            self.method = started;
                        }
                        self.respond(request, eap_type, &td)
                    }
                    PeerOutcome::Failure(e) => {
                        if started.is_some() {
                            self.method = started;
                        }
                        self.fail(e)
                    }
                    PeerOutcome::Discard(e) => PeerStep::Failure(e),
                }
            }
        }
    }
}

/// A new peer method of `method`; EAP-TLS needs the rustls configuration `tls`, made here from
/// the peer's configuration.
pub(crate) fn new_peer_method(
    method: MethodType,
    tls: Option<&crate::TlsPeerConfig>,
) -> Result<Box<dyn PeerMethod>, EapError> {
    match method {
        MethodType::Md5 => Ok(Box::new(md5::Md5Peer::new())),
        MethodType::MsChapV2 => Ok(Box::new(mschapv2::MsChapV2Peer::new())),
        MethodType::Tls => match tls {
            Some(config) => Ok(Box::new(TlsPeer::new(PeerSetup::new(config)?))),
            None => Err(EapError::Config("EAP-TLS without a TLS configuration")),
        },
    }
}
