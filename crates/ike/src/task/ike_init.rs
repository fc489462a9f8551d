//! IKE_SA_INIT, the initiator's half of reading the answer (RFC 7296 §1.2, §2.6, §2.23): cookies,
//! INVALID_KE_PAYLOAD, NAT detection and the float to port 4500. The exchange's messages themselves
//! are built and checked by the consumed-state structs of [`crate::init`].

use core::net::SocketAddr;

use oxswan_crypto::CryptoProvider;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::notify::NotifyPayload;
use oxswan_wire::{HashAlgorithm, IkeSpi, NotifyType, Payload};

use super::{InFlight, Next};
use crate::config::PeerConfig;
use crate::error::{IkeError, Result};
use crate::event::DownReason;
use crate::init::{InitRequestSent, InitResponse};
use crate::nat::{detect, nat_notifies};
use crate::sa::{Ctx, IKE_PORT, Keys, NAT_T_PORT, SaCore};

/// Cookie round trips an initiator makes before it gives up (a responder asking again and again is
/// broken or hostile).
const MAX_COOKIE_TRIES: u8 = 3;

/// Whether this reading of an IKE_SA_INIT response ends the request in flight: an answer, or an
/// error notify, which ends the attempt as with strongSwan (only who saw our request knows SPIi, and
/// waiting out the retransmissions would not change the answer). Anything else may be forged or
/// garbled: the request stays in flight, waiting for the genuine response (§2.4).
pub(crate) fn is_final(response: &Result<InitResponse>) -> bool {
    matches!(response, Ok(_) | Err(IkeError::PeerNotify(_)))
}

/// The IKE_SA_INIT response to our request `req`, read by [`InitRequestSent::handle_response`]:
/// cookies, INVALID_KE_PAYLOAD, NAT detection and the float to port 4500, then IKE_AUTH.
pub(crate) fn answer(
    core: &mut SaCore,
    ctx: &mut Ctx<'_>,
    req: InitRequestSent,
    (cookie_tries, ke_retried): (u8, bool),
    response: Result<InitResponse>,
    (local, remote): (SocketAddr, SocketAddr),
) -> Next {
    let response = match response {
        Ok(r) => r,
        Err(IkeError::PeerNotify(n)) => {
            core.close(ctx, DownReason::PeerNotify(n));
            return Next::Done;
        }
        Err(e) => {
            core.close(ctx, DownReason::Protocol(e.to_string()));
            return Next::Done;
        }
    };
    let Some(peer) = core.peer.clone() else {
        core.close(ctx, DownReason::Protocol("initiator without configuration".into()));
        return Next::Done;
    };
    let restart =
        |req: Result<InitRequestSent>, cookie_tries, ke_retried, core: &mut SaCore, ctx: &mut Ctx<'_>| match req {
            Ok(req) => Next::Restart {
                datagram: req.request().to_vec(),
                in_flight: InFlight::Init { req: Box::new(req), cookie_tries, ke_retried },
            },
            Err(e) => {
                core.close(ctx, DownReason::Protocol(e.to_string()));
                Next::Done
            }
        };
    match response {
        InitResponse::RetryWithCookie(cookie) => {
            if cookie_tries >= MAX_COOKIE_TRIES {
                core.close(ctx, DownReason::PeerNotify(NotifyType::COOKIE));
                return Next::Done;
            }
            restart(req.with_cookie(&cookie), cookie_tries.saturating_add(1), false, core, ctx)
        }
        InitResponse::RetryWithGroup(group) => {
            // §1.2: retry once with the responder's group; a second INVALID_KE_PAYLOAD ends it.
            if ke_retried {
                core.close(ctx, DownReason::PeerNotify(NotifyType::INVALID_KE_PAYLOAD));
                return Next::Done;
            }
            restart(req.retry_with_group(ctx.provider, group), cookie_tries, true, core, ctx)
        }
        // RFC 5723 §4: the ticket is refused (expired, used, or the gateway lost its key);
        // the same SPI and nonce go again as a full IKE_SA_INIT.
        InitResponse::TicketRefused => restart(req.without_ticket(), 0, false, core, ctx),
        InitResponse::Redirect(to) => {
            if let Some(name) = core.name().map(str::to_owned) {
                ctx.out.events.push_back(crate::event::Event::Redirect { sa: core.handle, name, to });
            }
            core.close(ctx, DownReason::Redirected);
            Next::Done
        }
        InitResponse::Established(init) => {
            core.spi_r = init.spi_r;
            core.peer_hashes = signature_hashes(&init.peer_notifies);
            core.peer_fragmentation = announces_fragmentation(&init.peer_notifies);
            let detected = detect(&init.peer_notifies, init.spi_i, init.spi_r, local, remote);
            core.nat = detected.unwrap_or_default();
            if peer.force_encap {
                core.nat.local_behind_nat = true;
            }
            // §2.23: the initiator moves to port 4500 once a NAT is detected; strongSwan also floats
            // for `encap`, and with MOBIKE whenever the responder does NAT traversal (RFC 4555 §3.3:
            // a later move may bring a NAT, and MOBIKE's paths use port 4500). Not over TCP: the
            // stream carries IKE and ESP whatever NAT detection found (RFC 9329 §6).
            if core.transport == crate::sa::Transport::Udp && (core.nat.any() || (peer.mobike && detected.is_some())) {
                if core.local.port() == IKE_PORT {
                    core.local.set_port(NAT_T_PORT);
                }
                if core.remote.port() == IKE_PORT {
                    core.remote.set_port(NAT_T_PORT);
                }
            }
            // From here on a failure ends the attempt: nothing is in flight to wait for.
            let keys = SkKeys::for_sender(&init.keys, &init.suite, true)
                .and_then(|out| Ok((out, SkKeys::for_sender(&init.keys, &init.suite, false)?)));
            let (sk_out, sk_in) = match keys {
                Ok(k) => k,
                Err(e) => {
                    core.close(ctx, DownReason::Protocol(e.to_string()));
                    return Next::Done;
                }
            };
            core.keys = Some(Box::new(Keys::new(*init, sk_out, sk_in)));
            match core.after_key_exchange(ctx, &peer) {
                Ok(next) => next,
                Err(e) => {
                    core.close(ctx, DownReason::Protocol(e.to_string()));
                    Next::Done
                }
            }
        }
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
