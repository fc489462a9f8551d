//! EAP-TLS (Type 13): RFC 5216 with TLS 1.2, RFC 9190 with TLS 1.3, both roles, on rustls.
//!
//! # Framing (RFC 5216 §3.1, kept by RFC 9190)
//!
//! Type-Data is one Flags octet — L (0x80, a 4-octet TLS Message Length follows), M (0x40, more
//! fragments follow), S (0x20, EAP-TLS Start, only in the server's first Request) — then the TLS
//! data: records of one flight, split over as many EAP packets as it takes (RFC 5216 §2.1.5,
//! RFC 9190 §2.1.9).
//! Each fragment is acknowledged by an EAP-TLS packet without data from the other side, and the
//! first fragment carries the length of the whole flight (we also put it on unfragmented
//! messages, as strongSwan does with its default `include_length = yes`; RFC 5216 §3.1 allows
//! it).
//!
//! # Limits
//!
//! The packets are hostile until proved otherwise, so everything they make us keep is capped:
//!
//! - [`MAX_MESSAGE_LEN`] (64 KiB): a TLS Message Length above it is refused, and so is a fragment
//!   train that reassembles to more than it. A TLS 1.2 or 1.3 handshake flight, certificate
//!   chain included, is a few kilobytes; rustls itself refuses handshake messages over 64 KiB.
//! - [`MAX_PACKETS`] (128): the EAP-TLS packets one conversation takes, like strongSwan's
//!   `charon.plugins.eap-tls.max_message_count` (32 there). A train of tiny fragments, or a
//!   peer that acknowledges forever, ends there.
//! - [`DEFAULT_FRAGMENT_SIZE`] (1024): the largest EAP packet we send, as strongSwan's
//!   `charon.plugins.eap-tls.fragment_size`, which counts the whole EAP packet (the EAP header,
//!   Type, Flags and TLS Message Length included): the EAP payload rides in an IKE_AUTH message,
//!   which should stay below the path MTU.
//! - Application data: EAP-TLS carries none but the TLS 1.3 success indication (one octet).
//!
//! # The end of the handshake (RFC 5216 §2.1.1, RFC 9190 §2.1.1 and §2.5)
//!
//! With TLS 1.2 the server's ChangeCipherSpec and Finished end it: the peer answers them with an
//! empty EAP-TLS Response and the server sends EAP-Success. With TLS 1.3 the client's Finished is
//! the last handshake message and the server's verdict on the client certificate would be
//! unseen, so once the server has verified the client's Finished it sends one octet 0x00 of
//! application data, the "protected success indication"; the peer answers it with an empty
//! Response and accepts EAP-Success only after receiving it (a Success before it is refused).
//! The server sends no NewSessionTicket (no resumption here), so the 0x00 is the only record
//! after the handshake.
//!
//! strongSwan does the same since 5.9.10 (6.0 included; `eap_tls.c` and `tls_eap.c`): its
//! server sends the 0x00 in a Request of its own after the client's last flight, takes the empty
//! Response as the acknowledgement and then sends EAP-Success, and its peer refuses the MSK
//! without having received the 0x00. Two things to know for charon:
//! - its TLS versions default to 1.2 only (`charon.tls.version_min` and `version_max` are 1.2
//!   unless configured), so EAP-TLS with it is TLS 1.2 by default, which both our roles take;
//! - 5.9.8 (and everything before 5.9.10) has no success indication in either role: with a
//!   5.9.8 gateway configured for TLS 1.3 our peer refuses its EAP-Success, as RFC 9190 wants;
//!   set `max_version` to TLS 1.2 for such a gateway rather than weaken the check.
//!
//! # Failures (RFC 5216 §2.1.3, RFC 9190 §2.1.4)
//!
//! A side that refuses the other's certificate or messages sends the TLS alert rustls makes; the
//! server waits for the peer's answer to its alert (an empty Response) before EAP-Failure, and
//! the peer answers a server's alert with an empty Response. The error both sides report is the
//! TLS cause (the certificate error, or the alert received); neither holds anything secret.
//!
//! # Keys
//!
//! MSK = the first 64 octets of the 128 octets of Key_Material:
//! - TLS 1.3 (RFC 9190 §2.3): TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x0D, 128).
//! - TLS 1.2 (RFC 5216 §2.3): TLS-PRF-128(master_secret, "client EAP encryption",
//!   client.random || server.random), which is the RFC 5705 exporter without a context.
//!
//! strongSwan's `tls_crypto.c` derives the same (the exporter with the one-octet context 0x0D
//! and 128 octets, or its PRF over the label and both randoms, keeping 64).
//!
//! # Identities
//!
//! The server requires a client certificate that chains to one of its `client_cas`
//! ([`rustls::server::WebPkiClientVerifier`]); the peer requires a server certificate that chains
//! to one of its `server_cas` and, if `server_name` is given, is valid for that DNS name or IP
//! address ([`rustls::client::WebPkiServerVerifier`]). The EAP identity is the one of
//! EAP-Identity; this crate does not bind it to the client certificate's subject: strongSwan
//! looks the client's public key up by the EAP identity, so a caller that wants the same must
//! compare [`crate::EapServer::peer_certificate`] with the identity it authorizes.

use std::io::{Read, Write};
use std::sync::Arc;

use oxswan_crypto::Secret;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConnection, ConnectionCommon, DigitallySignedStruct, ProtocolVersion, RootCertStore,
    ServerConnection, SignatureScheme, SupportedProtocolVersion,
};
use zeroize::Zeroizing;

use crate::method::{PeerContext, PeerMethod, PeerOutcome, ServerContext, ServerMethod, ServerOutcome};
use crate::{EapError, MethodType, types};

/// The largest EAP packet we send by default, in octets, header included: strongSwan's
/// `charon.plugins.eap-tls.fragment_size` default.
pub const DEFAULT_FRAGMENT_SIZE: usize = 1024;
/// The smallest `fragment_size` accepted: room for the headers and some data.
pub const MIN_FRAGMENT_SIZE: usize = 64;
/// The largest `fragment_size`: an EAP packet's Length is 16 bits (RFC 3748 §4).
pub const MAX_FRAGMENT_SIZE: usize = u16::MAX as usize;
/// The largest TLS message (one side's flight) we reassemble or send: 64 KiB.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// The most EAP-TLS packets one conversation takes on one side (strongSwan's `max_message_count`
/// is the same idea, 32 by default).
pub const MAX_PACKETS: usize = 128;

/// Flag L: a TLS Message Length follows (RFC 5216 §3.1).
const FLAG_LENGTH: u8 = 0x80;
/// Flag M: more fragments follow.
const FLAG_MORE: u8 = 0x40;
/// Flag S: EAP-TLS Start.
const FLAG_START: u8 = 0x20;
/// EAP header (Code, Identifier, Length), Type and Flags.
const EAP_TLS_HEADER: usize = 6;
/// The TLS Message Length field.
const LENGTH_FIELD: usize = 4;
/// The application data EAP-TLS may carry: the one-octet TLS 1.3 success indication.
const MAX_APPLICATION_DATA: usize = 16;
/// RFC 9190 §2.5: the protected success indication.
const SUCCESS_INDICATION: u8 = 0x00;

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246), EAP-TLS of RFC 5216.
    Tls12,
    /// TLS 1.3 (RFC 8446), EAP-TLS of RFC 9190.
    Tls13,
}

/// The server's EAP-TLS credentials and trust (RFC 5216: client certificates are required).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TlsServerConfig {
    /// Our certificate chain, DER, the end entity first.
    pub cert_chain: Vec<Vec<u8>>,
    /// Our private key, DER: PKCS#8, SEC1 (EC) or PKCS#1 (RSA). Never printed; wiped when dropped.
    pub key: zeroize::Zeroizing<Vec<u8>>,
    /// The CA certificates, DER, that client certificates must chain to. Must be non-empty: a
    /// client certificate is required.
    pub client_cas: Vec<Vec<u8>>,
    /// The lowest TLS version we accept (default TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// The highest TLS version we accept (default TLS 1.3).
    pub max_version: Option<TlsVersion>,
    /// The largest EAP packet we send, in octets (default [`DEFAULT_FRAGMENT_SIZE`]; between
    /// [`MIN_FRAGMENT_SIZE`] and [`MAX_FRAGMENT_SIZE`]).
    pub fragment_size: Option<usize>,
}

impl core::fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("cert_chain", &self.cert_chain.len())
            .field("key", &"<redacted>")
            .field("client_cas", &self.client_cas.len())
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("fragment_size", &self.fragment_size)
            .finish()
    }
}

/// The peer's EAP-TLS credentials and trust.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TlsPeerConfig {
    /// Our certificate chain, DER, the end entity first (EAP-TLS authenticates the peer by it).
    /// Empty, with an empty `key`: we present none (RFC 5216 §2.1.1 leaves asking for one to
    /// the server; ours always does, and refuses a peer without).
    pub cert_chain: Vec<Vec<u8>>,
    /// Our private key, DER: PKCS#8, SEC1 (EC) or PKCS#1 (RSA). Never printed; wiped when dropped.
    pub key: zeroize::Zeroizing<Vec<u8>>,
    /// The CA certificates, DER, that the server's certificate must chain to. Must be non-empty.
    pub server_cas: Vec<Vec<u8>>,
    /// The name the server's certificate must be valid for: a DNS name or an IP address, as
    /// strongSwan's client checks the gateway's IKE identity (its `aaa_identity` or remote id).
    /// `None` accepts any certificate of the `server_cas`, as strongSwan with `%any`; a caller
    /// that knows the gateway by a distinguished name compares [`crate::EapPeer::server_certificate`]
    /// itself.
    pub server_name: Option<String>,
    /// The lowest TLS version we accept (default TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// The highest TLS version we accept (default TLS 1.3).
    pub max_version: Option<TlsVersion>,
    /// The largest EAP packet we send, in octets (default [`DEFAULT_FRAGMENT_SIZE`]).
    pub fragment_size: Option<usize>,
}

impl core::fmt::Debug for TlsPeerConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsPeerConfig")
            .field("cert_chain", &self.cert_chain.len())
            .field("key", &"<redacted>")
            .field("server_cas", &self.server_cas.len())
            .field("server_name", &self.server_name)
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .field("fragment_size", &self.fragment_size)
            .finish()
    }
}

/// A rustls error as ours: certificate problems apart, so that callers can tell them.
fn tls_error(e: &rustls::Error) -> EapError {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            EapError::Certificate(e.to_string())
        }
        _ => EapError::Tls(e.to_string()),
    }
}

fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static SupportedProtocolVersion>, EapError> {
    let (min, max) = (min.unwrap_or(TlsVersion::Tls12), max.unwrap_or(TlsVersion::Tls13));
    let out: Vec<&'static SupportedProtocolVersion> =
        [(TlsVersion::Tls13, &rustls::version::TLS13), (TlsVersion::Tls12, &rustls::version::TLS12)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if out.is_empty() {
        return Err(EapError::Config("EAP-TLS min_version above max_version"));
    }
    Ok(out)
}

fn fragment_size(configured: Option<usize>) -> Result<usize, EapError> {
    let size = configured.unwrap_or(DEFAULT_FRAGMENT_SIZE);
    if !(MIN_FRAGMENT_SIZE..=MAX_FRAGMENT_SIZE).contains(&size) {
        return Err(EapError::Config("EAP-TLS fragment_size must be between 64 and 65535"));
    }
    Ok(size)
}

fn roots(cas: &[Vec<u8>], what: &'static str) -> Result<Arc<RootCertStore>, EapError> {
    if cas.is_empty() {
        return Err(EapError::Config(what));
    }
    let mut store = RootCertStore::empty();
    for ca in cas {
        store
            .add(CertificateDer::from(ca.clone()))
            .map_err(|e| EapError::Tls(format!("EAP-TLS CA certificate refused: {e}")))?;
    }
    Ok(Arc::new(store))
}

fn credentials(
    chain: &[Vec<u8>],
    key: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), EapError> {
    if chain.is_empty() {
        return Err(EapError::Config("EAP-TLS without a certificate"));
    }
    let chain = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
    // The error of pki-types says which encodings it tried, nothing of the key.
    let key = PrivateKeyDer::try_from(key)
        .map_err(|_| EapError::Config("EAP-TLS private key is neither PKCS#8, SEC1 nor PKCS#1 DER"))?
        .clone_key();
    Ok((chain, key))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server's rustls configuration, made once per conversation from [`TlsServerConfig`].
#[derive(Debug, Clone)]
pub(crate) struct ServerSetup {
    config: Arc<rustls::ServerConfig>,
    fragment_size: usize,
}

impl ServerSetup {
    pub(crate) fn new(c: &TlsServerConfig) -> Result<Self, EapError> {
        let fragment_size = fragment_size(c.fragment_size)?;
        let provider = provider();
        let roots = roots(&c.client_cas, "EAP-TLS server without client CAs (client certificates are required)")?;
        // Client certificates are required: the builder does not allow anonymous clients unless
        // told to.
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| EapError::Tls(format!("EAP-TLS client verifier: {e}")))?;
        let (chain, key) = credentials(&c.cert_chain, &c.key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(c.min_version, c.max_version)?)
            .map_err(|e| EapError::Tls(format!("EAP-TLS versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| EapError::Tls(format!("EAP-TLS server certificate or key: {e}")))?;
        // No resumption (RFC 9190 §2.1.2 makes it optional): no NewSessionTicket, so that the
        // success indication is the only record after the TLS 1.3 handshake.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(Self { config: Arc::new(config), fragment_size })
    }
}

/// The server-certificate verifier without a name to check: webpki's, whose name check (its
/// last step, after the chain and the signature algorithms) is skipped.
#[derive(Debug)]
struct AnyNameVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The peer's rustls configuration, made once per conversation from [`TlsPeerConfig`].
#[derive(Debug, Clone)]
pub(crate) struct PeerSetup {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    fragment_size: usize,
}

impl PeerSetup {
    pub(crate) fn new(c: &TlsPeerConfig) -> Result<Self, EapError> {
        let fragment_size = fragment_size(c.fragment_size)?;
        let provider = provider();
        let roots = roots(&c.server_cas, "EAP-TLS peer without server CAs")?;
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| EapError::Tls(format!("EAP-TLS server verifier: {e}")))?;
        let (verifier, server_name): (Arc<dyn ServerCertVerifier>, ServerName<'static>) = match &c.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.as_str())
                    .map_err(|_| EapError::Config("EAP-TLS server_name is neither a DNS name nor an IP address"))?
                    .to_owned();
                (webpki, name)
            }
            // An IP address sends no SNI; the name check it would fail is skipped.
            None => (
                Arc::new(AnyNameVerifier(webpki)),
                ServerName::IpAddress(core::net::IpAddr::from([0u8, 0, 0, 0]).into()),
            ),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(c.min_version, c.max_version)?)
            .map_err(|e| EapError::Tls(format!("EAP-TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = if c.cert_chain.is_empty() && c.key.is_empty() {
            builder.with_no_client_auth()
        } else {
            let (chain, key) = credentials(&c.cert_chain, &c.key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| EapError::Tls(format!("EAP-TLS peer certificate or key: {e}")))?
        };
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self { config: Arc::new(config), server_name, fragment_size })
    }
}

/// One EAP-TLS packet's Type-Data, parsed.
#[derive(Debug)]
struct Parsed<'a> {
    flags: u8,
    length: Option<u32>,
    data: &'a [u8],
}

impl Parsed<'_> {
    fn start(&self) -> bool {
        self.flags & FLAG_START != 0
    }

    fn more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }

    /// An acknowledgement (or "nothing to say"): no data, no more fragments.
    fn is_ack(&self) -> bool {
        self.data.is_empty() && !self.more() && self.length.unwrap_or(0) == 0
    }
}

/// RFC 5216 §3.1: Flags, then the TLS Message Length if L, then the data. Reserved flag bits
/// are ignored.
fn parse(type_data: &[u8]) -> Result<Parsed<'_>, EapError> {
    let (&flags, rest) = type_data.split_first().ok_or(EapError::Malformed("EAP-TLS without Flags"))?;
    if flags & FLAG_LENGTH == 0 {
        return Ok(Parsed { flags, length: None, data: rest });
    }
    let (length, data) =
        rest.split_first_chunk::<LENGTH_FIELD>().ok_or(EapError::Malformed("EAP-TLS L flag without the length"))?;
    Ok(Parsed { flags, length: Some(u32::from_be_bytes(*length)), data })
}

/// The Type-Data of an acknowledgement (RFC 5216 §2.1.5: an EAP-TLS packet without data).
fn ack() -> Vec<u8> {
    vec![0]
}

/// What a packet of the other side amounts to.
#[derive(Debug)]
enum Received {
    /// No data: an acknowledgement, or nothing to say.
    Ack,
    /// A fragment was kept; more are to come (acknowledge it).
    Fragment,
    /// A whole TLS message.
    Message(Vec<u8>),
}

/// Why a packet was refused.
#[derive(Debug)]
enum Refusal {
    /// Malformed: dropped, the state is as before.
    Discard(EapError),
    /// Over a cap: the conversation ends.
    Fatal(EapError),
}

/// Fragmentation and reassembly (RFC 5216 §2.1.5), with the caps of the module documentation.
#[derive(Debug)]
struct Link {
    fragment_size: usize,
    /// The TLS message being sent.
    out: Vec<u8>,
    /// How much of `out` has been sent.
    sent: usize,
    /// The fragments received so far.
    reassembly: Vec<u8>,
    /// The TLS Message Length of the first fragment.
    expected: Option<usize>,
    /// The EAP-TLS packets processed.
    packets: usize,
}

impl Link {
    fn new(fragment_size: usize) -> Self {
        Self { fragment_size, out: Vec::new(), sent: 0, reassembly: Vec::new(), expected: None, packets: 0 }
    }

    /// Counts one packet of the other side against [`MAX_PACKETS`].
    fn count(&mut self) -> Result<(), EapError> {
        self.packets = self.packets.saturating_add(1);
        if self.packets > MAX_PACKETS {
            return Err(EapError::TooLarge("number of EAP-TLS packets"));
        }
        Ok(())
    }

    /// Whether fragments of our message remain to be sent (each after an acknowledgement).
    fn sending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Starts sending `message`; its first fragment is the Type-Data returned.
    fn send(&mut self, message: Vec<u8>) -> Result<Vec<u8>, EapError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(EapError::TooLarge("our TLS message"));
        }
        self.out = message;
        self.sent = 0;
        Ok(self.next_fragment())
    }

    /// The next fragment's Type-Data: L and the length on the first, M on all but the last.
    fn next_fragment(&mut self) -> Vec<u8> {
        let first = self.sent == 0;
        let header = if first { EAP_TLS_HEADER + LENGTH_FIELD } else { EAP_TLS_HEADER };
        let room = self.fragment_size.saturating_sub(header).max(1);
        let remaining = self.out.get(self.sent..).unwrap_or_default();
        let chunk = remaining.get(..room).unwrap_or(remaining);
        let more = chunk.len() < remaining.len();
        let mut td = Vec::with_capacity(chunk.len().saturating_add(header));
        td.push(if first { FLAG_LENGTH } else { 0 } | if more { FLAG_MORE } else { 0 });
        if first {
            // `send` keeps messages below MAX_MESSAGE_LEN.
            td.extend_from_slice(&u32::try_from(self.out.len()).unwrap_or(u32::MAX).to_be_bytes());
        }
        td.extend_from_slice(chunk);
        self.sent = self.sent.saturating_add(chunk.len());
        if !more {
            self.out.clear();
            self.sent = 0;
        }
        td
    }

    /// Takes a packet with data (or none) when we are not sending.
    fn receive(&mut self, p: &Parsed<'_>) -> Result<Received, Refusal> {
        let reassembling = !self.reassembly.is_empty();
        if p.data.is_empty() {
            if p.more() {
                return Err(Refusal::Discard(EapError::Malformed("EAP-TLS fragment without data")));
            }
            if reassembling {
                return Err(Refusal::Discard(EapError::Malformed("EAP-TLS fragment train ended without data")));
            }
            if p.length.unwrap_or(0) != 0 {
                return Err(Refusal::Discard(EapError::Malformed("EAP-TLS Message Length without data")));
            }
            return Ok(Received::Ack);
        }
        let expected = match (reassembling, p.length) {
            (false, Some(length)) => {
                let length = usize::try_from(length).unwrap_or(usize::MAX);
                if length > MAX_MESSAGE_LEN {
                    return Err(Refusal::Fatal(EapError::TooLarge("TLS Message Length")));
                }
                Some(length)
            }
            (false, None) => None,
            // RFC 5216 §3.1 puts the length on the first fragment; a later one that repeats it
            // must agree.
            (true, Some(length)) if self.expected.is_some_and(|e| usize::try_from(length).ok() != Some(e)) => {
                return Err(Refusal::Discard(EapError::Malformed("EAP-TLS Message Length changed between fragments")));
            }
            (true, _) => self.expected,
        };
        let total = self.reassembly.len().saturating_add(p.data.len());
        if total > MAX_MESSAGE_LEN {
            return Err(Refusal::Fatal(EapError::TooLarge("reassembled TLS message")));
        }
        if let Some(expected) = expected {
            if total > expected {
                return Err(Refusal::Discard(EapError::Malformed("EAP-TLS data beyond its Message Length")));
            }
            if !p.more() && total != expected {
                return Err(Refusal::Discard(EapError::Malformed("EAP-TLS data short of its Message Length")));
            }
        }
        self.reassembly.extend_from_slice(p.data);
        self.expected = expected;
        if p.more() {
            return Ok(Received::Fragment);
        }
        self.expected = None;
        Ok(Received::Message(core::mem::take(&mut self.reassembly)))
    }
}

/// Hands a whole TLS message to rustls; the application data it carried (bounded).
fn feed<D>(conn: &mut ConnectionCommon<D>, message: &[u8]) -> Result<Vec<u8>, EapError> {
    let mut rest = message;
    let mut plaintext = Vec::new();
    while !rest.is_empty() {
        let n = conn.read_tls(&mut rest).map_err(|e| EapError::Tls(format!("TLS input refused: {e}")))?;
        conn.process_new_packets().map_err(|e| tls_error(&e))?;
        drain(conn, &mut plaintext)?;
        if n == 0 {
            // A close_notify came: rustls reads nothing after it.
            break;
        }
    }
    Ok(plaintext)
}

/// Reads the application data rustls decrypted, refusing more than EAP-TLS ever carries.
fn drain<D>(conn: &mut ConnectionCommon<D>, plaintext: &mut Vec<u8>) -> Result<(), EapError> {
    let mut buf = [0u8; MAX_APPLICATION_DATA];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if plaintext.len().saturating_add(n) > MAX_APPLICATION_DATA {
                    return Err(EapError::Unexpected("application data over EAP-TLS".into()));
                }
                plaintext.extend_from_slice(buf.get(..n).unwrap_or_default());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(EapError::Tls(format!("TLS connection closed: {e}"))),
        }
    }
}

/// What rustls has to send.
fn output<D>(conn: &mut ConnectionCommon<D>) -> Result<Vec<u8>, EapError> {
    let mut out = Vec::new();
    while conn.wants_write() {
        let n = conn.write_tls(&mut out).map_err(|e| EapError::Tls(format!("TLS output: {e}")))?;
        if n == 0 {
            break;
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EapError::TooLarge("our TLS message"));
        }
    }
    Ok(out)
}

/// The MSK: RFC 9190 §2.3 for TLS 1.3, RFC 5216 §2.3 for TLS 1.2 (see the module documentation).
fn msk<D>(conn: &ConnectionCommon<D>) -> Result<Secret, EapError> {
    let mut key_material = Zeroizing::new([0u8; 128]);
    let exported = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => conn.export_keying_material(
            key_material.as_mut_slice(),
            b"EXPORTER_EAP_TLS_Key_Material",
            Some(&[types::TLS]),
        ),
        Some(ProtocolVersion::TLSv1_2) => {
            conn.export_keying_material(key_material.as_mut_slice(), b"client EAP encryption", None)
        }
        _ => return Err(EapError::Tls("no TLS version negotiated".into())),
    };
    exported.map_err(|e| tls_error(&e))?;
    let msk = key_material.get(..64).ok_or(EapError::Tls("short key material".into()))?;
    Ok(Secret::from_slice(msk))
}

fn is_tls13<D>(conn: &ConnectionCommon<D>) -> bool {
    conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
}

fn end_entity<D>(conn: &ConnectionCommon<D>) -> Option<&[u8]> {
    conn.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref())
}

/// The server side.
#[derive(Debug)]
pub(crate) struct TlsServer {
    setup: ServerSetup,
    conn: Option<ServerConnection>,
    link: Link,
    /// The handshake is complete and, with TLS 1.3, the success indication is queued.
    finished: bool,
    /// Our alert is out (RFC 5216 §2.1.3): the conversation ends with this error once the peer
    /// answers.
    pending: Option<EapError>,
}

impl TlsServer {
    pub(crate) fn new(setup: ServerSetup) -> Self {
        let link = Link::new(setup.fragment_size);
        Self { setup, conn: None, link, finished: false, pending: None }
    }

    fn fail(error: EapError) -> ServerOutcome {
        ServerOutcome::Failure { identity: None, error }
    }

    /// A whole TLS message of the peer.
    fn advance(&mut self, message: &[u8], ctx: &ServerContext<'_>) -> ServerOutcome {
        let Some(conn) = self.conn.as_mut() else {
            return Self::fail(EapError::Unexpected("EAP-TLS Response before the Start".into()));
        };
        match feed(conn, message) {
            Err(error) => {
                // rustls queued the alert telling why; send it and wait for the answer.
                let alert = output(conn).unwrap_or_default();
                if alert.is_empty() {
                    return Self::fail(error);
                }
                match self.link.send(alert) {
                    Ok(td) => {
                        self.pending = Some(error);
                        ServerOutcome::Request(td)
                    }
                    Err(_) => Self::fail(error),
                }
            }
            Ok(plaintext) => {
                if !plaintext.is_empty() {
                    // strongSwan refuses it too ("peer sent unexpected TLS data").
                    return Self::fail(EapError::Unexpected("application data from the EAP-TLS peer".into()));
                }
                if !conn.is_handshaking() && !self.finished {
                    if is_tls13(conn) {
                        // RFC 9190 §2.5: the client's Finished verified, the protected success
                        // indication.
                        if let Err(e) = conn.writer().write_all(&[SUCCESS_INDICATION]) {
                            return Self::fail(EapError::Tls(format!("TLS output: {e}")));
                        }
                    }
                    self.finished = true;
                }
                let out = match output(conn) {
                    Ok(out) => out,
                    Err(e) => return Self::fail(e),
                };
                if out.is_empty() {
                    if self.finished {
                        return self.success(ctx);
                    }
                    // The peer's message did not complete a flight: ask for more, as strongSwan.
                    return ServerOutcome::Request(ack());
                }
                match self.link.send(out) {
                    Ok(td) => ServerOutcome::Request(td),
                    Err(e) => Self::fail(e),
                }
            }
        }
    }

    fn success(&self, ctx: &ServerContext<'_>) -> ServerOutcome {
        let Some(conn) = self.conn.as_ref() else {
            return Self::fail(EapError::Unexpected("EAP-TLS success without a handshake".into()));
        };
        match msk(conn) {
            Ok(msk) => ServerOutcome::Success { identity: ctx.identity.to_vec(), msk: Some(msk) },
            Err(e) => Self::fail(e),
        }
    }
}

impl ServerMethod for TlsServer {
    fn method_type(&self) -> MethodType {
        MethodType::Tls
    }

    /// RFC 5216 §2.1.1: the EAP-TLS Start, Flags S and no data.
    fn initiate(&mut self, _ctx: &ServerContext<'_>) -> Result<Vec<u8>, EapError> {
        let conn = ServerConnection::new(self.setup.config.clone()).map_err(|e| tls_error(&e))?;
        self.conn = Some(conn);
        Ok(vec![FLAG_START])
    }

    fn process(&mut self, type_data: &[u8], ctx: &ServerContext<'_>) -> ServerOutcome {
        if let Err(e) = self.link.count() {
            return Self::fail(e);
        }
        let p = match parse(type_data) {
            Ok(p) => p,
            Err(e) => return ServerOutcome::Discard(e),
        };
        if p.start() {
            return ServerOutcome::Discard(EapError::Malformed("EAP-TLS Start flag in a Response"));
        }
        if self.link.sending() {
            return if p.is_ack() {
                ServerOutcome::Request(self.link.next_fragment())
            } else {
                ServerOutcome::Discard(EapError::Unexpected(
                    "EAP-TLS data where an acknowledgement was expected".into(),
                ))
            };
        }
        // RFC 5216 §2.1.3: whatever answers our alert, EAP-Failure follows.
        if let Some(error) = self.pending.take() {
            return Self::fail(error);
        }
        match self.link.receive(&p) {
            Err(Refusal::Discard(e)) => ServerOutcome::Discard(e),
            Err(Refusal::Fatal(e)) => Self::fail(e),
            Ok(Received::Fragment) => ServerOutcome::Request(ack()),
            // The acknowledgement of our last flight: of the Finished (TLS 1.2) or of the success
            // indication (TLS 1.3, RFC 9190 §2.1.1).
            Ok(Received::Ack) if self.finished => self.success(ctx),
            Ok(Received::Ack) => {
                Self::fail(EapError::Tls("the EAP-TLS peer sent nothing before the handshake finished".into()))
            }
            Ok(Received::Message(m)) => self.advance(&m, ctx),
        }
    }

    fn pending_error(&self) -> Option<&EapError> {
        self.pending.as_ref()
    }

    fn peer_certificate(&self) -> Option<&[u8]> {
        self.conn.as_ref().filter(|c| !c.is_handshaking()).and_then(|c| end_entity(c))
    }
}

/// The peer side.
#[derive(Debug)]
pub(crate) struct TlsPeer {
    setup: PeerSetup,
    conn: Option<ClientConnection>,
    link: Link,
    /// RFC 9190 §2.5: the TLS 1.3 server's success indication arrived.
    indicated: bool,
    /// The method failed (our verdict on the server, or the server's alert); answered with our
    /// alert or an empty Response, then EAP-Failure is what may come.
    failed: Option<EapError>,
}

impl TlsPeer {
    pub(crate) fn new(setup: PeerSetup) -> Self {
        let link = Link::new(setup.fragment_size);
        Self { setup, conn: None, link, indicated: false, failed: None }
    }

    /// The reply to the server's TLS-level verdict: our alert if rustls made one, else an empty
    /// Response (RFC 5216 §2.1.3), the method failed from now on.
    fn refuse(&mut self, error: EapError, alert: Vec<u8>) -> PeerOutcome {
        self.failed = Some(error.clone());
        if alert.is_empty() {
            return PeerOutcome::Respond(ack());
        }
        match self.link.send(alert) {
            Ok(td) => PeerOutcome::Respond(td),
            Err(_) => PeerOutcome::Failure(error),
        }
    }

    fn start(&mut self) -> PeerOutcome {
        let mut conn = match ClientConnection::new(self.setup.config.clone(), self.setup.server_name.clone()) {
            Ok(c) => c,
            Err(e) => return PeerOutcome::Failure(tls_error(&e)),
        };
        let hello = match output(&mut conn) {
            Ok(h) => h,
            Err(e) => return PeerOutcome::Failure(e),
        };
        self.conn = Some(conn);
        match self.link.send(hello) {
            Ok(td) => PeerOutcome::Respond(td),
            Err(e) => PeerOutcome::Failure(e),
        }
    }

    fn advance(&mut self, message: &[u8]) -> PeerOutcome {
        let Some(conn) = self.conn.as_mut() else {
            return PeerOutcome::Failure(EapError::Unexpected("EAP-TLS Request before the Start".into()));
        };
        match feed(conn, message) {
            Err(error) => {
                let alert = output(conn).unwrap_or_default();
                self.refuse(error, alert)
            }
            Ok(plaintext) => {
                if !plaintext.is_empty() {
                    // RFC 9190 §2.5: after the TLS 1.3 handshake, one octet 0x00, once.
                    let indication = is_tls13(conn)
                        && !conn.is_handshaking()
                        && !self.indicated
                        && plaintext == [SUCCESS_INDICATION];
                    if !indication {
                        let error = EapError::Unexpected("application data from the EAP-TLS server".into());
                        self.failed = Some(error.clone());
                        return PeerOutcome::Failure(error);
                    }
                    self.indicated = true;
                }
                let out = match output(conn) {
                    Ok(out) => out,
                    Err(e) => return PeerOutcome::Failure(e),
                };
                if out.is_empty() {
                    return PeerOutcome::Respond(ack());
                }
                match self.link.send(out) {
                    Ok(td) => PeerOutcome::Respond(td),
                    Err(e) => PeerOutcome::Failure(e),
                }
            }
        }
    }
}

impl PeerMethod for TlsPeer {
    fn method_type(&self) -> MethodType {
        MethodType::Tls
    }

    fn process(&mut self, type_data: &[u8], _ctx: &PeerContext<'_>) -> PeerOutcome {
        if let Err(e) = self.link.count() {
            return PeerOutcome::Failure(e);
        }
        let p = match parse(type_data) {
            Ok(p) => p,
            Err(e) => return PeerOutcome::Discard(e),
        };
        if self.conn.is_none() {
            // RFC 5216 §2.1.1: the conversation begins with the server's Start (its data, which
            // it should not have, is ignored).
            if !p.start() {
                return PeerOutcome::Discard(EapError::Unexpected("EAP-TLS Request without Start".into()));
            }
            return self.start();
        }
        if p.start() {
            return PeerOutcome::Discard(EapError::Unexpected("a second EAP-TLS Start".into()));
        }
        if self.link.sending() {
            return if p.is_ack() {
                PeerOutcome::Respond(self.link.next_fragment())
            } else {
                PeerOutcome::Discard(EapError::Unexpected("EAP-TLS data where an acknowledgement was expected".into()))
            };
        }
        if let Some(e) = &self.failed {
            return PeerOutcome::Failure(e.clone());
        }
        match self.link.receive(&p) {
            Err(Refusal::Discard(e)) => PeerOutcome::Discard(e),
            Err(Refusal::Fatal(e)) => {
                self.failed = Some(e.clone());
                PeerOutcome::Failure(e)
            }
            Ok(Received::Fragment) => PeerOutcome::Respond(ack()),
            // The server waits for something and we have nothing: say so (strongSwan answers
            // alike); the server decides.
            Ok(Received::Ack) => PeerOutcome::Respond(ack()),
            Ok(Received::Message(m)) => self.advance(&m),
        }
    }

    fn success(&self) -> Result<Option<Secret>, EapError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(EapError::Unexpected("EAP-Success before the TLS handshake".into()));
        };
        if conn.is_handshaking() || self.link.sending() {
            return Err(EapError::Unexpected("EAP-Success before the TLS handshake finished".into()));
        }
        if is_tls13(conn) && !self.indicated {
            return Err(EapError::Unexpected(
                "EAP-Success before the TLS 1.3 protected success indication (RFC 9190 §2.5)".into(),
            ));
        }
        msk(conn).map(Some)
    }

    fn failure_error(&self) -> Option<EapError> {
        self.failed.clone()
    }

    fn peer_certificate(&self) -> Option<&[u8]> {
        self.conn.as_ref().filter(|c| !c.is_handshaking()).and_then(|c| end_entity(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_flags_and_length() {
        let p = parse(&[0xc0, 0, 0, 0, 9, 1, 2]).unwrap();
        assert_eq!((p.length, p.data, p.more(), p.start()), (Some(9), &[1u8, 2][..], true, false));
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x80, 0, 0]).is_err());
        assert!(parse(&[0x00]).unwrap().is_ack());
        assert!(parse(&[0x20]).unwrap().start());
    }

    #[test]
    fn fragments_reassemble() {
        let message: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut tx = Link::new(1024);
        let mut rx = Link::new(1024);
        let mut td = tx.send(message.clone()).unwrap();
        let mut packets = 1;
        assert!(td.len() + 4 <= 1024 && td[0] == FLAG_LENGTH | FLAG_MORE);
        loop {
            match rx.receive(&parse(&td).unwrap()).unwrap() {
                Received::Fragment => {
                    assert!(tx.sending());
                    td = tx.next_fragment();
                    assert!(td.len() + 5 <= 1024);
                    packets += 1;
                }
                Received::Message(m) => {
                    assert_eq!(m, message);
                    break;
                }
                Received::Ack => panic!(),
            }
        }
        assert!(!tx.sending());
        assert_eq!(packets, 3);
        // A short message goes whole, with its length.
        assert_eq!(tx.send(vec![7; 3]).unwrap(), [FLAG_LENGTH, 0, 0, 0, 3, 7, 7, 7]);
        assert!(!tx.sending());
    }

    #[test]
    fn reassembly_caps_and_checks() {
        let mut rx = Link::new(1024);
        let too_long = u32::try_from(MAX_MESSAGE_LEN + 1).unwrap().to_be_bytes();
        let p = [&[FLAG_LENGTH | FLAG_MORE][..], &too_long, &[1]].concat();
        assert!(matches!(rx.receive(&parse(&p).unwrap()), Err(Refusal::Fatal(EapError::TooLarge(_)))));
        // Length shorter than the data, and data beyond it.
        assert!(matches!(rx.receive(&parse(&[0x80, 0, 0, 0, 1, 1, 2]).unwrap()), Err(Refusal::Discard(_))));
        assert!(matches!(rx.receive(&parse(&[0x80, 0, 0, 0, 3, 1, 2]).unwrap()), Err(Refusal::Discard(_))));
        assert!(matches!(rx.receive(&parse(&[0x40]).unwrap()), Err(Refusal::Discard(_))));
        assert!(rx.reassembly.is_empty());
        // A train without a length ends at the cap.
        let chunk = [&[FLAG_MORE][..], &[0u8; 1000]].concat();
        let mut result = Ok(Received::Ack);
        for _ in 0..100 {
            result = rx.receive(&parse(&chunk).unwrap());
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(Refusal::Fatal(EapError::TooLarge(_)))));
        assert!(rx.reassembly.len() <= MAX_MESSAGE_LEN);
    }

    /// The key log of the peer: the TLS 1.2 master secret or the TLS 1.3 exporter master secret.
    #[derive(Debug, Default)]
    struct Log(std::sync::Mutex<Vec<Logged>>);

    /// Label, client random, secret.
    type Logged = (String, Vec<u8>, Vec<u8>);
    /// DER certificate and PKCS#8 key.
    type Credential = (Vec<u8>, Vec<u8>);

    impl rustls::KeyLog for Log {
        fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
            self.0.lock().unwrap().push((label.to_owned(), client_random.to_vec(), secret.to_vec()));
        }
    }

    #[derive(Debug)]
    struct NoSecrets;

    impl crate::EapSecrets for NoSecrets {
        fn eap_secret(&self, _identity: &[u8]) -> Option<Secret> {
            None
        }
    }

    #[derive(Debug)]
    struct Zero;

    impl oxswan_crypto::provider::SecureRandom for Zero {
        fn fill(&self, dest: &mut [u8]) -> oxswan_crypto::Result<()> {
            dest.fill(0);
            Ok(())
        }
    }

    /// A CA, a server and a client certificate with their PKCS#8 keys.
    fn pki() -> (Vec<u8>, Credential, Credential) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let issue = |name: &str| {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
            (cert.der().to_vec(), key.serialize_der())
        };
        (ca_cert.der().to_vec(), issue("gw.example"), issue("peer.example"))
    }

    /// RFC 5246 §5: P_hash(secret, label || seed), for TLS 1.2's PRF.
    fn tls12_prf(alg: aws_lc_rs::hmac::Algorithm, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(alg, secret);
        let label_seed = [label, seed].concat();
        let mut a = hmac::sign(&key, &label_seed).as_ref().to_vec();
        let mut out = Vec::new();
        while out.len() < len {
            out.extend_from_slice(hmac::sign(&key, &[&a[..], &label_seed].concat()).as_ref());
            a = hmac::sign(&key, &a).as_ref().to_vec();
        }
        out.truncate(len);
        out
    }

    /// RFC 8446 §7.1: HKDF-Expand-Label.
    fn expand_label(
        alg: aws_lc_rs::hkdf::Algorithm,
        secret: &[u8],
        label: &str,
        context: &[u8],
        len: usize,
    ) -> Vec<u8> {
        struct Len(usize);
        impl aws_lc_rs::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let full = format!("tls13 {label}");
        let info = [
            &u16::try_from(len).unwrap().to_be_bytes()[..],
            &[u8::try_from(full.len()).unwrap()],
            full.as_bytes(),
            &[u8::try_from(context.len()).unwrap()],
            context,
        ]
        .concat();
        let prk = aws_lc_rs::hkdf::Prk::new_less_safe(alg, secret);
        let mut out = vec![0; len];
        prk.expand(&[&info], Len(len)).unwrap().fill(&mut out).unwrap();
        out
    }

    /// The MSKs of both sides against their definitions, recomputed here from the secrets the
    /// peer's key log gives: RFC 5216 §2.3 (TLS 1.2) and RFC 9190 §2.3 (TLS 1.3).
    #[test]
    fn msk_matches_the_rfcs() {
        use aws_lc_rs::{digest, hkdf, hmac};
        let (ca, (server_cert, server_key), (client_cert, client_key)) = pki();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let server = ServerSetup::new(&TlsServerConfig {
                cert_chain: vec![server_cert.clone()],
                key: server_key.clone().into(),
                client_cas: vec![ca.clone()],
                min_version: Some(version),
                max_version: Some(version),
                fragment_size: None,
            })
            .unwrap();
            let mut peer_setup = PeerSetup::new(&TlsPeerConfig {
                cert_chain: vec![client_cert.clone()],
                key: client_key.clone().into(),
                server_cas: vec![ca.clone()],
                server_name: Some("gw.example".into()),
                ..TlsPeerConfig::default()
            })
            .unwrap();
            let log = Arc::new(Log::default());
            let mut client_config = (*peer_setup.config).clone();
            client_config.key_log = log.clone();
            peer_setup.config = Arc::new(client_config);
            let (mut s, mut p) = (TlsServer::new(server), TlsPeer::new(peer_setup));
            let sctx = ServerContext { identity: b"peer", identifier: 1, secrets: &NoSecrets, random: &Zero };
            let pctx = PeerContext { identity: b"peer", identifier: 1, secrets: &NoSecrets, random: &Zero };
            let mut td = s.initiate(&sctx).unwrap();
            let mut server_random = None;
            let server_msk = loop {
                let PeerOutcome::Respond(response) = p.process(&td, &pctx) else { panic!() };
                match s.process(&response, &sctx) {
                    ServerOutcome::Request(next) => {
                        // The first data after the Start opens with the ServerHello: Flags and
                        // Length (5), record header (5), handshake header (4), version (2).
                        if server_random.is_none() && next.len() > 48 {
                            server_random = Some(next[16..48].to_vec());
                        }
                        td = next;
                    }
                    ServerOutcome::Success { msk: Some(msk), identity } => {
                        assert_eq!(identity, b"peer");
                        break msk;
                    }
                    other => panic!("{other:?}"),
                }
            };
            let peer_msk = p.success().unwrap().unwrap();
            assert_eq!(server_msk, peer_msk);
            let conn = p.conn.as_ref().unwrap();
            let suite = conn.negotiated_cipher_suite().unwrap();
            let sha384 = format!("{:?}", suite.suite()).ends_with("SHA384");
            let logged = log.0.lock().unwrap().clone();
            let entry = |label: &str| logged.iter().find(|(l, _, _)| l == label).cloned().unwrap();
            let expected = match version {
                TlsVersion::Tls12 => {
                    // Key_Material = TLS-PRF-128(master_secret, "client EAP encryption",
                    // client.random || server.random).
                    let (_, client_random, master) = entry("CLIENT_RANDOM");
                    let alg = if sha384 { hmac::HMAC_SHA384 } else { hmac::HMAC_SHA256 };
                    let randoms = [client_random, server_random.clone().unwrap()].concat();
                    tls12_prf(alg, &master, b"client EAP encryption", &randoms, 128)
                }
                TlsVersion::Tls13 => {
                    // TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x0D, 128), RFC 8446 §7.5.
                    let (_, _, exporter_master) = entry("EXPORTER_SECRET");
                    let (alg, hash) = if sha384 {
                        (hkdf::HKDF_SHA384, &digest::SHA384)
                    } else {
                        (hkdf::HKDF_SHA256, &digest::SHA256)
                    };
                    let empty = digest::digest(hash, b"");
                    let derived = expand_label(
                        alg,
                        &exporter_master,
                        "EXPORTER_EAP_TLS_Key_Material",
                        empty.as_ref(),
                        hash.output_len(),
                    );
                    let context = digest::digest(hash, &[0x0d]);
                    expand_label(alg, &derived, "exporter", context.as_ref(), 128)
                }
            };
            assert_eq!(server_msk.expose(), &expected[..64], "{version:?}");
        }
    }

    #[test]
    fn config_checks() {
        assert!(matches!(fragment_size(Some(10)), Err(EapError::Config(_))));
        assert!(matches!(fragment_size(Some(70_000)), Err(EapError::Config(_))));
        assert_eq!(fragment_size(None).unwrap(), 1024);
        assert!(versions(Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)).is_err());
        assert_eq!(versions(None, Some(TlsVersion::Tls12)).unwrap().len(), 1);
        let c = TlsServerConfig { key: vec![0x30, 1, 2, 3].into(), ..Default::default() };
        assert!(!format!("{c:?}").contains("48"));
        assert!(matches!(ServerSetup::new(&c), Err(EapError::Config(_))));
    }
}
