//! A RADIUS client for an IKEv2 gateway, sans-IO: EAP relayed to a RADIUS server (RFC 3579) and
//! accounting (RFC 2866), as strongSwan's eap-radius plugin does it.
//!
//! Nothing here sends, receives, sleeps or reads a clock. [`RadiusClient`] turns requests into
//! datagrams ([`RadiusClient::poll_transmit`]), datagrams from servers into answers
//! ([`RadiusClient::handle_datagram`]) and the passing of time into retransmissions, fail-over
//! and timeouts ([`RadiusClient::poll_timeout`], [`RadiusClient::handle_timeout`]), in the style
//! of quinn-proto. Each request is a [`RequestId`] that the IKE engine keeps with the IKE SA
//! waiting for it. Every datagram is hostile until its authenticators verify; none makes this
//! crate panic.
//!
//! # What strongSwan's eap-radius does, and this crate with it
//!
//! (strongSwan's `src/libcharon/plugins/eap_radius/eap_radius.c` and
//! `eap_radius_accounting.c`, and `src/libradius/radius_socket.c`, `radius_message.c` and
//! `radius_client.c`.)
//!
//! - **Access-Request** (RFC 2865 §4.1, RFC 3579 §2.1): User-Name (the EAP identity),
//!   NAS-Port-Type Virtual (5), Service-Type Framed (2), NAS-Port (the IKE SA's unique ID in
//!   strongSwan), NAS-Port-Id (the connection's name), NAS-IP-Address or NAS-IPv6-Address
//!   (RFC 3162 §2.1), Called-Station-Id and Calling-Station-Id as `ip[port]` (strongSwan's `%#H`
//!   with `station_id_with_port = yes`, its default: [`station_id`]), Acct-Session-Id, the EAP
//!   message cut into EAP-Message attributes of 253 octets (RFC 3579 §3.1), NAS-Identifier,
//!   the last Access-Challenge's State (RFC 2865 §5.24), and a Message-Authenticator
//!   (HMAC-MD5, RFC 3579 §3.2). strongSwan appends the Message-Authenticator last; here it comes
//!   first, as the BlastRADIUS (CVE-2024-3596) advisories recommend; RFC 3579 allows either.
//! - **Answers** are verified as strongSwan's `verify()` does: the Response Authenticator
//!   `MD5(Code | Identifier | Length | Request Authenticator | Attributes | Secret)`
//!   (RFC 2865 §3), then the Message-Authenticator computed with the Request Authenticator in
//!   place (RFC 3579 §3.2), required with EAP-Message. Stricter than strongSwan: every
//!   Access-Accept and Access-Challenge must carry one, only the identifier *and* the source
//!   address of a request in flight are taken, and a second Message-Authenticator is refused.
//!   Anything else is dropped with a [`DropReason`].
//! - **Access-Challenge**: the EAP-Message attributes concatenated (as `radius2ike()`) and parsed
//!   as an EAP-Request; the State, echoed in the next request. The conversation stays with the
//!   server that challenged ([`EapSession::server`]), as strongSwan keeps one server per
//!   conversation.
//! - **Access-Accept**: the **MSK is MS-MPPE-Recv-Key | MS-MPPE-Send-Key** (RFC 2548 §2.4.3 and
//!   §2.4.2, each decrypted with the shared secret, the Request Authenticator and its Salt, the
//!   first decrypted octet being the key's length), zero-padded to 64 octets if shorter:
//!   `radius_socket.c`, `decrypt_msk()`, `chunk_cat("mmc", recv, send, pad)`. With the
//!   32-octet keys of EAP-TLS and its kin (RFC 5216 §2.3: Recv-Key is MSK(0,31), Send-Key
//!   MSK(32,63)) that is the method's 64-octet MSK; with EAP-MSCHAPv2's 16-octet
//!   MasterReceiveKey and MasterSendKey (RFC 3079 §3.4), the zero-padded 64 octets are the MSK
//!   strongSwan's eap-mschapv2 (`GenerateMSK()`) and `oxswan_eap::mschapv2::msk` compute. One
//!   key alone, or one that does not decrypt, gives no MSK, as in strongSwan. The Class
//!   attributes are kept to be echoed in accounting (RFC 2865 §5.25, strongSwan's
//!   `accounting_send_class`), with Framed-IP-Address, Framed-IPv6-Address (RFC 6911),
//!   Session-Timeout and Acct-Interim-Interval, which strongSwan uses for the virtual IP, the
//!   reauthentication time and the interim updates. An Access-Accept to the conversation's
//!   opening request, before any method ran, is refused ([`InvalidAnswer::AcceptWithoutChallenge`])
//!   as strongSwan's `initiate()` refuses it.
//! - **Access-Reject**: the EAP-Failure, if any, and the Reply-Messages.
//! - **Accounting-Request** (RFC 2866, RFC 2869): Acct-Status-Type (Start, Interim-Update, Stop),
//!   Acct-Session-Id, the Class attributes, the NAS attributes above, User-Name,
//!   Framed-IP-Address / Framed-IPv6-Address (RFC 6911) and Framed-IPv6-Prefix (RFC 3162 §2.3),
//!   Acct-Output-Octets / -Gigawords (only when not zero, as strongSwan) / -Packets, the same
//!   for input, Acct-Session-Time, Acct-Terminate-Cause for Stop, NAS-Identifier; its
//!   authenticator is RFC 2866 §3's `MD5(Code | Identifier | Length | 16 zero octets | Attributes
//!   | Secret)`, and, as in strongSwan, it carries no Message-Authenticator.
//! - **Retransmission and fail-over**: strongSwan sends the same packet `retransmit_tries` times
//!   with a growing timeout, to one server. Here: `tries` sends to one server, `timeout` apart;
//!   an Access-Request is sent again unchanged (RFC 5080 §2.2.1), an Accounting-Request with
//!   Acct-Delay-Time and so a new identifier (RFC 2866 §5.2); then the next server (new
//!   identifier, new Request Authenticator), except for a conversation a Challenge bound to its
//!   server; then [`Answer::Timeout`]. Identifiers count up from a random start per server
//!   address, as in strongSwan, skipping those in flight (256 per address).
//!
//! The codec ([`Packet`], [`RawPacket`], [`Attribute`]) and the MS-MPPE key functions
//! ([`mppe`]) are public, also for the fake servers of tests.
//!
//! No RADIUS crate on crates.io fits: `radius` requires tokio and async; `radius-rust` draws its
//! own randomness from `rand`, takes the secret as a `&str`, needs a dictionary file, has no
//! MS-MPPE keys and indexes attacker-controlled input directly. RADIUS is small: the codec is
//! written here, on RustCrypto's `md-5` and `hmac`.
#![forbid(unsafe_code)]

pub mod attribute;
mod client;
mod code;
mod error;
pub mod mppe;
pub mod packet;

pub use attribute::Attribute;
pub use client::{
    AccountingRecord, AcctStatus, Answer, ClientConfig, EapSession, RadiusClient, RequestId, RoundTrip, ServerConfig,
    ServerId, Stats, TerminateCause, Usage, station_id,
};
pub use error::{CodecError, DropReason, InvalidAnswer, RadiusError};
pub use oxswan_crypto::Secret;
pub use packet::{Code, Packet, RawPacket, verify_response};
