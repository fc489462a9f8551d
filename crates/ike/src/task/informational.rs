//! INFORMATIONAL requests from the peer (RFC 7296 §1.4, §2.21.2): DELETE of the IKE SA or of CHILD
//! SAs, AUTHENTICATION_FAILED after IKE_AUTH, and the empty request of a liveness check, which needs
//! no more than an empty answer.

use oxswan_wire::notify::DeletePayload;
use oxswan_wire::{NotifyType, Payload, ProtocolId};

use crate::event::{DownReason, Event};
use crate::sa::{Ctx, SaCore};

/// GW Identity Types of REDIRECT and REDIRECTED_FROM (RFC 5685 §8, IANA "Gateway Identity Types").
const GW_IPV4: u8 = 1;
const GW_IPV6: u8 = 2;

/// The `GW Ident Type | GW Ident Len | New Responder GW Identity` of an address (RFC 5685 §8).
pub(crate) fn gateway_identity(addr: core::net::IpAddr) -> Vec<u8> {
    match addr {
        core::net::IpAddr::V4(a) => [&[GW_IPV4, 4][..], &a.octets()].concat(),
        core::net::IpAddr::V6(a) => [&[GW_IPV6, 16][..], &a.octets()].concat(),
    }
}

/// The gateway a REDIRECT names, if it is an address (an FQDN would need a resolver; it is
/// `Err` with its text), and the octets after it (the Nonce Data of an IKE_SA_INIT redirect);
/// `None` when the notify is too short for what it says it holds.
pub(crate) fn redirect_gateway(data: &[u8]) -> Option<(Result<core::net::IpAddr, String>, &[u8])> {
    let (&ty, rest) = data.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let (id, after) = rest.split_at_checked(usize::from(len))?;
    let to = match (ty, <[u8; 4]>::try_from(id), <[u8; 16]>::try_from(id)) {
        (GW_IPV4, Ok(o), _) => Ok(core::net::IpAddr::from(o)),
        (GW_IPV6, _, Ok(o)) => Ok(core::net::IpAddr::from(o)),
        (3, _, _) => Err(format!("redirect to the FQDN {} (not supported)", String::from_utf8_lossy(id))),
        _ => Err(format!("REDIRECT with gateway identity type {ty} and length {len}")),
    };
    Some((to, after))
}

/// Where a REDIRECT sends us, for [`Event::Redirect`].
pub(crate) fn redirect_target(data: &[u8]) -> Result<core::net::IpAddr, String> {
    redirect_gateway(data).map_or_else(|| Err("malformed REDIRECT".to_owned()), |(to, _)| to)
}

impl SaCore {
    pub(crate) fn handle_informational(&mut self, ctx: &mut Ctx<'_>, payloads: &[Payload]) -> Vec<Payload> {
        // Only a MOBIKE SA reads the MOBIKE notifies: a liveness check of any other costs nothing more.
        let mut out = if self.mobike {
            let notifies: Vec<_> = payloads
                .iter()
                .filter_map(|p| match p {
                    Payload::Notify(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            self.handle_mobike_request(ctx, &notifies)
        } else {
            Vec::new()
        };
        let mut deleted_in = Vec::new();
        for p in payloads {
            match p {
                Payload::Delete(d) if d.protocol == ProtocolId::IKE => {
                    // §1.4.1: answer with an empty INFORMATIONAL; the SA and its children are gone,
                    // unless a new SA from a simultaneous rekey takes the children (§2.8.2).
                    self.peer_deletes_rekeyed(ctx);
                    self.close(ctx, DownReason::PeerDeleted);
                    return Vec::new();
                }
                Payload::Delete(d) if d.protocol == ProtocolId::ESP => {
                    // §1.4.1: the SPIs are the sender's inbound ones, our outbound; we answer with our
                    // inbound SPIs of the same pairs. §2.8: the responder of a rekey sends on the new
                    // pair once the old one is deleted, switching before the old pair goes.
                    for spi in d.spis_u32() {
                        if let Some(spi_in) = self.children.by_outbound(spi).map(|c| c.sa.spi_in) {
                            self.child_gone(ctx, spi_in);
                            deleted_in.push(spi_in);
                        }
                    }
                }
                // RFC 5685 §5: the gateway sends its client elsewhere; we set the IKE SA up there
                // (the daemon, as a reauthentication) and this one goes once that one is up.
                Payload::Notify(n) if n.notify_type == NotifyType::REDIRECT && self.original_initiator => {
                    if let Some(name) = self.name().map(str::to_owned) {
                        let to = redirect_target(&n.data);
                        ctx.out.events.push_back(Event::Redirect { sa: self.handle, name, to });
                    }
                }
                Payload::Notify(n) if n.notify_type == NotifyType::AUTHENTICATION_FAILED => {
                    // The initiator refused our AUTH after we considered the SA established (§2.21.2).
                    ctx.out.events.push_back(Event::AuthFailed {
                        sa: self.handle,
                        peer: self.remote,
                        reason: "peer sent AUTHENTICATION_FAILED".into(),
                    });
                    self.close(ctx, DownReason::PeerNotify(NotifyType::AUTHENTICATION_FAILED));
                    return Vec::new();
                }
                _ => {}
            }
        }
        if !deleted_in.is_empty() {
            out.push(Payload::Delete(DeletePayload::esp(&deleted_in)));
        }
        out
    }
}
