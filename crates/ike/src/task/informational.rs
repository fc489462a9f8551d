//! INFORMATIONAL requests from the peer (RFC 7296 §1.4, §2.21.2): DELETE of the IKE SA or of CHILD
//! SAs, AUTHENTICATION_FAILED after IKE_AUTH, and the empty request of a liveness check, which needs
//! no more than an empty answer.

use oxswan_wire::notify::DeletePayload;
use oxswan_wire::{NotifyType, Payload, ProtocolId};

use crate::event::{DownReason, Event};
use crate::sa::{Ctx, SaCore};

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
                        let to = crate::redirect::redirect_target(&n.data);
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
