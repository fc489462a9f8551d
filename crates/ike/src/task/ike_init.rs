//! IKE_SA_INIT, the initiator's half of reading the answer (RFC 7296 §1.2, §2.6, §2.23): cookies,
//! INVALID_KE_PAYLOAD, NAT detection and the float to port 4500. The exchange's messages themselves
//! are built and checked by the consumed-state structs of [`crate::init`].

use core::net::SocketAddr;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{HashAlgorithm, IkeSpi, Message, NotifyType, Payload};

use super::InFlight;
use crate::config::PeerConfig;
use crate::error::{IkeError, Result, Unexpected};
use crate::event::DownReason;
use crate::ike_sa::{Ctx, IKE_PORT, IkeSa, Keys, NAT_T_PORT};
use crate::init::{InitRequestSent, InitResponse};
use crate::nat::{detect, nat_notifies};

/// Cookie round trips an initiator makes before it gives up (a responder asking again and again is
/// broken or hostile).
const MAX_COOKIE_TRIES: u8 = 3;

impl IkeSa {
    /// The IKE_SA_INIT response. It cannot be authenticated: anything but an accepted answer or an
    /// error notify leaves the request in flight, waiting for the genuine response (§2.4).
    pub(crate) fn handle_init_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> Result<()> {
        let Some(InFlight::Init { req, cookie_tries, ke_retried }) = self.pending.as_ref().map(|p| &p.exchange) else {
            return Err(IkeError::Unexpected(Unexpected::NotInThisState));
        };
        let (cookie_tries, ke_retried) = (*cookie_tries, *ke_retried);
        let response = match req.handle_response(ctx.provider, msg.as_bytes()) {
            Ok(r) => r,
            // An error notify ends the attempt, as with strongSwan: only who saw our request knows SPIi,
            // and waiting out the retransmissions would not change the answer.
            Err(IkeError::PeerNotify(n)) => {
                self.take_pending();
                self.close(ctx, DownReason::PeerNotify(n));
                return Ok(());
            }
            // Anything else may be forged or garbled: keep waiting for the genuine response (§2.4).
            Err(e) => return Err(e),
        };
        let Some(peer) = self.peer.clone() else { return Err(IkeError::Unexpected(Unexpected::NoConfig)) };
        let Some(InFlight::Init { req, .. }) = self.take_pending().map(|p| p.exchange) else {
            return Err(IkeError::Unexpected(Unexpected::NotInThisState));
        };
        match response {
            InitResponse::RetryWithCookie(cookie) => {
                if cookie_tries >= MAX_COOKIE_TRIES {
                    self.close(ctx, DownReason::PeerNotify(NotifyType::COOKIE));
                    return Ok(());
                }
                match req.with_cookie(&cookie) {
                    Ok(req) => self.restart_init(ctx, req, cookie_tries.saturating_add(1), false),
                    Err(e) => self.close(ctx, DownReason::Protocol(e.to_string())),
                }
            }
            InitResponse::RetryWithGroup(group) => {
                // §1.2: retry once with the responder's group; a second INVALID_KE_PAYLOAD ends it.
                if ke_retried {
                    self.close(ctx, DownReason::PeerNotify(NotifyType::INVALID_KE_PAYLOAD));
                    return Ok(());
                }
                match req.retry_with_group(ctx.provider, group) {
                    Ok(req) => self.restart_init(ctx, req, cookie_tries, true),
                    Err(e) => self.close(ctx, DownReason::Protocol(e.to_string())),
                }
            }
            InitResponse::Established(init) => {
                self.spi_r = init.spi_r;
                self.peer_hashes = signature_hashes(&init.peer_notifies);
                self.peer_fragmentation = announces_fragmentation(&init.peer_notifies);
                self.nat = detect(&init.peer_notifies, init.spi_i, init.spi_r, local, remote).unwrap_or_default();
                if peer.force_encap {
                    self.nat.local_behind_nat = true;
                }
                // §2.23: the initiator moves to port 4500 once a NAT is detected; strongSwan also floats
                // for `encap`.
                if self.nat.any() {
                    if self.local.port() == IKE_PORT {
                        self.local.set_port(NAT_T_PORT);
                    }
                    if self.remote.port() == IKE_PORT {
                        self.remote.set_port(NAT_T_PORT);
                    }
                }
                // From here on a failure ends the attempt: nothing is in flight to wait for.
                let keys = SkKeys::for_sender(&init.keys, &init.suite, true)
                    .and_then(|out| Ok((out, SkKeys::for_sender(&init.keys, &init.suite, false)?)));
                let (sk_out, sk_in) = match keys {
                    Ok(k) => k,
                    Err(e) => {
                        self.close(ctx, DownReason::Protocol(e.to_string()));
                        return Ok(());
                    }
                };
                self.keys = Some(Box::new(Keys { sk_out, sk_in, init: *init }));
                self.next_message_id = 1;
                if let Err(e) = self.send_auth_request(ctx, &peer) {
                    self.close(ctx, DownReason::Protocol(e.to_string()));
                }
            }
        }
        Ok(())
    }

    fn restart_init(&mut self, ctx: &mut Ctx<'_>, req: InitRequestSent, cookie_tries: u8, ke_retried: bool) {
        let datagram = req.request().to_vec();
        // The retried request is a new message 0 (§2.6, §1.2), with a fresh retransmission budget.
        self.next_message_id = 0;
        self.send_request(ctx, InFlight::Init { req: Box::new(req), cookie_tries, ke_retried }, vec![datagram]);
    }
}

/// The NAT detection notifies of our IKE_SA_INIT request. With `force_encap` the source hash is of
/// an address that is not ours, so the responder sees a NAT and both sides float and encapsulate
/// (RFC 7296 §2.23 permits it; strongSwan does the same with random data).
pub(crate) fn init_nat_notifies(
    provider: &CryptoProvider,
    peer: &PeerConfig,
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<Vec<Payload>> {
    let mut n = nat_notifies(spi_i, spi_r, local, remote).to_vec();
    if peer.force_encap {
        let mut fake = [0u8; 20];
        provider.random.fill(&mut fake)?;
        if let Some(Payload::Notify(src)) = n.first_mut() {
            src.data = fake.to_vec();
        }
    }
    Ok(n)
}

pub(crate) fn announces_fragmentation(notifies: &[NotifyPayload]) -> bool {
    notifies.iter().any(|n| n.notify_type == NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
}

pub(crate) fn signature_hashes(notifies: &[NotifyPayload]) -> Option<Vec<HashAlgorithm>> {
    notifies.iter().find_map(NotifyPayload::signature_hash_algorithms)
}
