//! The EAP server: the IKE responder authenticating its initiator (RFC 7296 §2.16).

use oxswan_crypto::Secret;
use oxswan_crypto::provider::SecureRandom;
use oxswan_wire::payloads::{EapCode, EapPayload};

use crate::method::{ServerContext, ServerMethod, ServerOutcome};
use crate::tls::TlsServer;
use crate::tls::{ServerSetup, TlsServerConfig};
use crate::{EapError, EapSecrets, MethodType, packet, types};
use crate::{md5, mschapv2};

/// How the server runs a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Acceptable methods in our order of preference; the first is proposed, a peer's Nak may pick
    /// another of these (strongSwan's eap-dynamic). Must be non-empty.
    pub methods: Vec<MethodType>,
    /// Ask the peer for its EAP identity with EAP-Identity first (eap_id = "%any"); otherwise
    /// `identity` is used.
    pub ask_identity: bool,
    /// The EAP identity when not asking (the peer's IKE identity, as text bytes). When asking, it
    /// stands in for an empty Identity Response, as strongSwan assumes the IKE identity then.
    pub identity: Option<Vec<u8>>,
    /// EAP-TLS: our certificate, key and the CAs of client certificates. Required when `methods`
    /// has [`MethodType::Tls`]; ignored otherwise.
    pub tls: Option<TlsServerConfig>,
}

/// What the server does with the peer's Response.
#[derive(Debug)]
pub enum ServerStep {
    /// Send this EAP Request.
    Continue(EapPayload),
    /// Authenticated: send `packet` (EAP-Success).
    Success {
        /// EAP-Success.
        packet: EapPayload,
        /// The identity the peer proved (for MS-CHAPv2: the name of its Response, as strongSwan
        /// takes it; policy must be checked against this one).
        identity: Vec<u8>,
        /// The method that authenticated it.
        method: MethodType,
        /// The MSK (RFC 3748 §7.10) keying the IKE AUTH payloads (RFC 7296 §2.16), if the method
        /// makes one.
        msk: Option<Secret>,
    },
    /// Refused: send `packet` (EAP-Failure); `identity` names the user for the log.
    Failure {
        /// EAP-Failure.
        packet: EapPayload,
        /// The user, if known.
        identity: Option<Vec<u8>>,
        /// Why.
        error: EapError,
    },
}

#[derive(Debug)]
enum Phase {
    /// The EAP-Identity Request is out.
    Identity,
    /// A method's Request is out.
    Method {
        method: Box<dyn ServerMethod>,
        /// Whether the peer may still Nak it: only in answer to a method's first Request and only
        /// once a conversation (RFC 3748 §5.3; strongSwan's eap-dynamic takes one Nak).
        nak_allowed: bool,
    },
    /// Success or Failure was decided.
    Done,
}

/// The server side of an EAP conversation.
///
/// Each Request gets a new Identifier (RFC 3748 §4.1); a Response is taken only with the
/// Identifier and Type of the outstanding Request. A Response that is refused (malformed, out of
/// order, a stale retransmission) gives [`ServerStep::Failure`] but leaves the state as it was, so
/// a caller that prefers to drop such a packet (RFC 3748 §4.1 says to discard it silently) can go
/// on; an outcome of the method (success, wrong secret, no common method) ends the conversation.
#[derive(Debug)]
pub struct EapServer {
    config: ServerConfig,
    /// The Identifier of the outstanding Request.
    identifier: u8,
    /// The EAP identity, once known.
    identity: Option<Vec<u8>>,
    /// Methods already proposed.
    tried: Vec<MethodType>,
    phase: Phase,
    /// EAP-TLS's rustls configuration, made at the start when the methods have EAP-TLS.
    tls: Option<ServerSetup>,
    /// The peer's certificate (DER) that the method authenticated it by, on success.
    peer_certificate: Option<Vec<u8>>,
}

impl EapServer {
    /// Starts a conversation: the first EAP Request (Identity, or the first method's).
    pub fn start(config: ServerConfig, random: &dyn SecureRandom) -> Result<(EapServer, EapPayload), EapError> {
        let Some(&first) = config.methods.first() else {
            return Err(EapError::Config("no EAP method configured"));
        };
        if let Some(&m) = config.methods.iter().find(|m| !m.is_implemented()) {
            return Err(EapError::Unsupported(m));
        }
        if !config.ask_identity && config.identity.is_none() {
            return Err(EapError::Config("neither asking for the EAP identity nor given one"));
        }
        // Certificates and keys are checked now rather than when a Nak picks EAP-TLS.
        let tls = if config.methods.contains(&MethodType::Tls) {
            let Some(tls) = &config.tls else {
                return Err(EapError::Config("EAP-TLS without a TLS configuration"));
            };
            Some(ServerSetup::new(tls)?)
        } else {
            None
        };
        // RFC 3748 §4.1: the first Identifier is best random, so that Identifiers of a new
        // conversation do not repeat an older one's.
        let mut id = [0u8; 1];
        packet::fill(random, &mut id)?;
        let [identifier] = id;
        let mut server = EapServer {
            identity: if config.ask_identity { None } else { config.identity.clone() },
            config,
            identifier,
            tried: Vec::new(),
            phase: Phase::Done,
            tls,
            peer_certificate: None,
        };
        let request = if server.config.ask_identity {
            server.phase = Phase::Identity;
            packet::typed(EapCode::REQUEST, identifier, types::IDENTITY, &[])?
        } else {
            server.begin(first, random, false, true)?
        };
        Ok((server, request))
    }

    /// The EAP identity, once known.
    pub fn identity(&self) -> Option<&[u8]> {
        self.identity.as_deref()
    }

    /// The certificate (DER, the end entity) that the peer authenticated with, once
    /// [`ServerStep::Success`] was given by a method that uses one (EAP-TLS: the client
    /// certificate, verified against the configured CAs). Its subject and subjectAltNames are
    /// the peer's certified names; the EAP identity of [`ServerStep::Success`] is the one it
    /// claimed in EAP-Identity, which policy may want to match against them (strongSwan looks the
    /// client's key up by that identity).
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.peer_certificate.as_deref()
    }

    /// The method running (or that ran), once one was proposed.
    pub fn method(&self) -> Option<MethodType> {
        self.tried.last().copied()
    }

    /// Whether the conversation has ended (a Success or Failure was decided).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The error the conversation is bound to end with, once the method has refused the peer but
    /// waits for it to acknowledge (an MS-CHAPv2 Failure-Request is out). A peer that gives up
    /// instead (Windows clients do not send the Failure-Response, strongSwan notes) never makes
    /// [`EapServer::handle`] return it: this names the user and the reason for the log then.
    pub fn pending_error(&self) -> Option<&EapError> {
        match &self.phase {
            Phase::Method { method, .. } => method.pending_error(),
            Phase::Identity | Phase::Done => None,
        }
    }

    /// Proposes `method` with its first Request, under a new Identifier unless this is the very
    /// first Request of the conversation (whose Identifier `start` drew).
    fn begin(
        &mut self,
        method: MethodType,
        random: &dyn SecureRandom,
        new_identifier: bool,
        nak_allowed: bool,
    ) -> Result<EapPayload, EapError> {
        let mut m = new_server_method(method, self.tls.as_ref())?;
        let identifier = if new_identifier { self.identifier.wrapping_add(1) } else { self.identifier };
        let identity = self.identity.as_deref().unwrap_or_default();
        let ctx = ServerContext { identity, identifier, secrets: &NoSecrets, random };
        let td = m.initiate(&ctx)?;
        let request = packet::typed(EapCode::REQUEST, identifier, method.code(), &td)?;
        self.identifier = identifier;
        self.tried.push(method);
        self.phase = Phase::Method { method: m, nak_allowed };
        Ok(request)
    }

    /// Ends the conversation with EAP-Failure answering the Response of `identifier`.
    fn fail(&mut self, identifier: u8, identity: Option<Vec<u8>>, error: EapError) -> ServerStep {
        self.phase = Phase::Done;
        ServerStep::Failure {
            packet: packet::failure(identifier),
            identity: identity.or_else(|| self.identity.clone()),
            error,
        }
    }

    /// Refuses a Response without changing the state.
    fn refuse(&self, identifier: u8, error: EapError) -> ServerStep {
        ServerStep::Failure { packet: packet::failure(identifier), identity: self.identity.clone(), error }
    }

    /// The peer's EAP Response: what to send next.
    pub fn handle(&mut self, response: &EapPayload, secrets: &dyn EapSecrets, random: &dyn SecureRandom) -> ServerStep {
        let id = response.identifier;
        if matches!(self.phase, Phase::Done) {
            return self.refuse(id, EapError::Unexpected("EAP Response after the conversation ended".into()));
        }
        if response.code != EapCode::RESPONSE {
            return self.refuse(
                id,
                EapError::Unexpected(format!("EAP {} where a Response was expected", packet::code_name(response.code))),
            );
        }
        if id != self.identifier {
            return self.refuse(
                id,
                EapError::Unexpected(format!("EAP Response with Identifier {id}, expected {}", self.identifier)),
            );
        }
        let Some((&eap_type, type_data)) = response.data.split_first() else {
            return self.refuse(id, EapError::Malformed("EAP Response without a Type"));
        };
        match &mut self.phase {
            Phase::Done => self.refuse(id, EapError::Unexpected("EAP Response after the conversation ended".into())),
            Phase::Identity => {
                if eap_type != types::IDENTITY {
                    return self
                        .refuse(id, EapError::Unexpected(format!("EAP Type {eap_type} answering EAP-Identity")));
                }
                // RFC 3748 §5.1: the Type-Data is the identity, not NUL-terminated; an empty one
                // means the peer did not say, and the configured (IKE) identity stands in.
                let identity =
                    if type_data.is_empty() { self.config.identity.clone() } else { Some(type_data.to_vec()) };
                let Some(identity) = identity else {
                    return self.refuse(id, EapError::Malformed("empty EAP identity"));
                };
                self.identity = Some(identity);
                let first = self.config.methods.first().copied();
                match first.map(|m| self.begin(m, random, true, true)) {
                    Some(Ok(request)) => ServerStep::Continue(request),
                    Some(Err(e)) => self.fail(id, None, e),
                    None => self.fail(id, None, EapError::Config("no EAP method configured")),
                }
            }
            Phase::Method { method, nak_allowed } => {
                let current = method.method_type();
                if eap_type == types::NAK {
                    if !*nak_allowed {
                        return self.refuse(id, EapError::Unexpected("EAP Nak after the method began".into()));
                    }
                    return self.nak(id, type_data, random);
                }
                if eap_type != current.code() {
                    return self.refuse(
                        id,
                        EapError::Unexpected(format!("EAP Type {eap_type} answering a Request of {current}")),
                    );
                }
                let identity = self.identity.as_deref().unwrap_or_default();
                let ctx = ServerContext { identity, identifier: id, secrets, random };
                match method.process(type_data, &ctx) {
                    ServerOutcome::Request(td) => {
                        let next = self.identifier.wrapping_add(1);
                        match packet::typed(EapCode::REQUEST, next, current.code(), &td) {
                            Ok(request) => {
                                *nak_allowed = false;
                                self.identifier = next;
                                ServerStep::Continue(request)
                            }
                            Err(e) => self.fail(id, None, e),
                        }
                    }
                    ServerOutcome::Success { identity, msk } => {
                        self.peer_certificate = method.peer_certificate().map(<[u8]>::to_vec);
                        self.phase = Phase::Done;
                        self.identity = Some(identity.clone());
                        ServerStep::Success { packet: packet::success(id), identity, method: current, msk }
                    }
                    ServerOutcome::Failure { identity, error } => self.fail(id, identity, error),
                    ServerOutcome::Discard(error) => self.refuse(id, error),
                }
            }
        }
    }

    /// A Nak (RFC 3748 §5.3.1): the Type-Data lists the types the peer wants, 0 for none. The
    /// next of ours that it lists is proposed, in our order of preference (eap-dynamic's default;
    /// a method already proposed is not proposed again).
    fn nak(&mut self, id: u8, wanted: &[u8], random: &dyn SecureRandom) -> ServerStep {
        let choice = self
            .config
            .methods
            .iter()
            .copied()
            .find(|m| !self.tried.contains(m) && wanted.contains(&m.code()) && m.is_implemented());
        match choice {
            Some(m) => match self.begin(m, random, true, false) {
                Ok(request) => ServerStep::Continue(request),
                Err(e) => self.fail(id, None, e),
            },
            None => self.fail(id, None, EapError::NoCommonMethod),
        }
    }
}

/// The server never needs secrets to start a method.
#[derive(Debug)]
struct NoSecrets;

impl EapSecrets for NoSecrets {
    fn eap_secret(&self, _identity: &[u8]) -> Option<Secret> {
        None
    }
}

/// A new server method of `method`; EAP-TLS needs the rustls configuration `tls`.
pub(crate) fn new_server_method(
    method: MethodType,
    tls: Option<&ServerSetup>,
) -> Result<Box<dyn ServerMethod>, EapError> {
    match method {
        MethodType::Md5 => Ok(Box::new(md5::Md5Server::new())),
        MethodType::MsChapV2 => Ok(Box::new(mschapv2::MsChapV2Server::new())),
        MethodType::Tls => match tls {
            Some(setup) => Ok(Box::new(TlsServer::new(setup.clone()))),
            None => Err(EapError::Config("EAP-TLS without a TLS configuration")),
        },
    }
}
