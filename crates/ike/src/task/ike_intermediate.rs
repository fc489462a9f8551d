//! IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of an IKE SA's setup
//! (RFC 9370 §2.2.2): after IKE_SA_INIT, one exchange per ADDKE transform the proposal chose, each
//! protected by the keys of the one before and followed by new keys from its shared secret; then
//! IKE_AUTH, whose AUTH covers every IKE_INTERMEDIATE message through IntAuth (RFC 9242 §3.3.2).
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {KEi(n)}            -->
//!                             <--   HDR, SK {KEr(n)}
//! ```
//!
//! The keys change at the same point on both sides: the initiator once it has read the answer,
//! the responder once it has sent it ([`crate::init::Intermediate`]'s `pending`), so that each
//! message is protected, and its IntAuth computed, with the keys of the step before.

use oxswan_crypto::Secret;
use oxswan_crypto::keys::IkeSaKeys;
use oxswan_crypto::provider::KeyExchange;
use oxswan_crypto::sk::SkKeys;
use oxswan_wire::payloads::KePayload;
use oxswan_wire::{ExchangeType, Header, NotifyType, Payload, PayloadType};

use super::{Collected, InFlight, Next, notify};
use crate::config::PeerConfig;
use crate::error::{IkeError, Result, Unexpected};
use crate::event::DownReason;
use crate::sa::{Ctx, SaCore};

/// Our half of an additional key exchange in flight.
#[derive(Debug)]
pub(crate) struct IntermediateOffer {
    pub ke: Box<dyn KeyExchange>,
}

/// The octets an IntAuth covers for one IKE_INTERMEDIATE message (RFC 9242 §3.3.2):
/// `IntAuth_A | IntAuth_P`, the IKE header and the Encrypted payload's header as if the message
/// carried its inner payloads unencrypted (no IV, padding or ICV; the lengths counted so; the
/// header's next payload SK even for a fragmented message), then the inner payloads. strongSwan
/// computes the same.
pub(crate) fn int_auth_octets(header: &Header, next_inner: PayloadType, plain: &[u8]) -> Result<Vec<u8>> {
    let sk_len = plain.len().saturating_add(4);
    let total = sk_len.saturating_add(Header::LEN);
    let too_long = |_| IkeError::TooLongToFragment;
    let length = u32::try_from(total).map_err(too_long)?;
    let sk_len = u16::try_from(sk_len).map_err(too_long)?;
    let mut out = Vec::with_capacity(total);
    Header { next_payload: PayloadType::SK, length, ..*header }.emit(&mut out);
    out.push(next_inner.0);
    out.push(0);
    out.extend_from_slice(&sk_len.to_be_bytes());
    out.extend_from_slice(plain);
    Ok(out)
}

impl SaCore {
    /// Whether the setup still has an additional key exchange to make before IKE_AUTH.
    pub(crate) fn additional_ke_pending(&self) -> bool {
        self.keys.as_ref().and_then(|k| k.handshake.as_ref()).is_some_and(|h| h.intermediate.next().is_some())
    }

    /// After IKE_SA_INIT or an IKE_INTERMEDIATE exchange (initiator): the next additional key
    /// exchange, or IKE_AUTH once none is left.
    pub(crate) fn after_key_exchange(&mut self, ctx: &mut Ctx<'_>, peer: &PeerConfig) -> Result<Next> {
        let next = self.keys.as_ref().and_then(|k| k.handshake.as_ref()).and_then(|h| h.intermediate.next());
        let Some(method) = next else { return self.auth_request(ctx, peer) };
        let ke = ctx.provider.ke.start(method)?;
        let payloads = vec![Payload::Ke(KePayload { group: method, data: ke.public_value().to_vec() })];
        Ok(Next::Send {
            exchange: ExchangeType::IKE_INTERMEDIATE,
            payloads,
            in_flight: InFlight::Intermediate(Box::new(IntermediateOffer { ke })),
        })
    }

    /// The IntAuth of one IKE_INTERMEDIATE message, sent or received (RFC 9242 §3.3.2):
    /// `IntAuth_iN = prf(SK_pi, IntAuth_i(N-1) | A | P)` for the initiator's messages, with SK_pr
    /// and the responder's chain for the responder's, with the keys that protect the message.
    pub(crate) fn note_intermediate(
        &mut self,
        ctx: &Ctx<'_>,
        header: &Header,
        next_inner: PayloadType,
        plain: &[u8],
    ) -> Result<()> {
        let init = self.keys.as_mut().and_then(|k| k.handshake.as_deref_mut()).ok_or(IkeError::NoKeys)?;
        let octets = int_auth_octets(header, next_inner, plain)?;
        let from_initiator = header.flags.initiator();
        let (sk_p, chain) = if from_initiator {
            (&init.keys.sk_pi, &mut init.intermediate.int_auth_i)
        } else {
            (&init.keys.sk_pr, &mut init.intermediate.int_auth_r)
        };
        let prev = chain.as_ref().map_or(&[][..], Secret::expose);
        let mac = ctx.provider.prf.prf(init.suite.prf, sk_p.expose(), &[prev, &octets])?;
        *chain = Some(mac);
        Ok(())
    }

    /// The n-th additional key exchange is made with shared secret `sk_n` (RFC 9370 §2.2.4):
    /// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) and all SK_* from it, with IKE_SA_INIT's nonces
    /// and SPIs.
    fn rekey_with(&mut self, ctx: &Ctx<'_>, sk_n: &Secret) -> Result<()> {
        let keys = self.keys.as_deref_mut().ok_or(IkeError::NoKeys)?;
        let init = keys.handshake.as_deref_mut().ok_or(IkeError::NoKeys)?;
        let next: IkeSaKeys = init.keys.additional_ke(
            ctx.provider.prf.as_ref(),
            &init.suite,
            sk_n.expose(),
            &init.ni,
            &init.nr,
            init.spi_i.0,
            init.spi_r.0,
        )?;
        keys.sk_out = SkKeys::for_sender(&next, &init.suite, self.initiator)?;
        let sk_in = SkKeys::for_sender(&next, &init.suite, !self.initiator)?;
        init.previous_sk_in = Some(core::mem::replace(&mut keys.sk_in, sk_in));
        keys.sk_d = next.sk_d.clone();
        init.keys = next;
        init.intermediate.done = init.intermediate.done.saturating_add(1);
        init.intermediate.exchanges = init.intermediate.exchanges.saturating_add(1);
        Ok(())
    }

    /// The answer to our IKE_INTERMEDIATE request: its KE completes ours, the keys change, and the
    /// next exchange goes.
    pub(crate) fn handle_intermediate_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        offer: IntermediateOffer,
        p: &Collected,
    ) -> Next {
        if let Some(n) = p.error() {
            self.close(ctx, DownReason::PeerNotify(n));
            return Next::Done;
        }
        let Some(peer) = self.peer.clone() else {
            self.close(ctx, DownReason::Protocol("initiator without configuration".into()));
            return Next::Done;
        };
        let result = (|| {
            let theirs = p.ke.as_ref().filter(|k| k.group == offer.ke.group());
            let theirs = theirs.ok_or(IkeError::Unexpected(Unexpected::OtherAdditionalKe))?;
            let shared = offer.ke.complete(&theirs.data)?;
            self.rekey_with(ctx, &shared)?;
            self.after_key_exchange(ctx, &peer)
        })();
        match result {
            Ok(next) => next,
            Err(e) => {
                self.close(ctx, DownReason::Protocol(format!("IKE_INTERMEDIATE: {e}")));
                Next::Done
            }
        }
    }

    /// The responder's answer to an IKE_INTERMEDIATE request: our KE for the next additional key
    /// exchange. The new keys take effect once it is sent ([`SaCore::intermediate_answered`]). A
    /// request out of turn, or with another method, ends the setup: INVALID_SYNTAX, as a message
    /// that does not fit what was negotiated (strongSwan answers NO_PROPOSAL_CHOSEN for the method).
    pub(crate) fn handle_intermediate_request(&mut self, ctx: &mut Ctx<'_>, p: &Collected) -> Vec<Payload> {
        let next = self.keys.as_ref().and_then(|k| k.handshake.as_ref()).and_then(|h| h.intermediate.next());
        let (group, answer) = match (next, p.ke.as_ref()) {
            (Some(method), Some(theirs)) if theirs.group == method => {
                (method, ctx.provider.ke.respond(method, &theirs.data))
            }
            _ => {
                self.close(ctx, DownReason::Protocol(IkeError::Unexpected(Unexpected::OtherAdditionalKe).to_string()));
                return vec![notify(NotifyType::INVALID_SYNTAX)];
            }
        };
        let (public, shared) = match answer {
            Ok(a) => a,
            Err(e) => {
                self.close(ctx, DownReason::Protocol(format!("IKE_INTERMEDIATE: {e}")));
                return vec![notify(NotifyType::INVALID_SYNTAX)];
            }
        };
        if let Some(init) = self.keys.as_mut().and_then(|k| k.handshake.as_deref_mut()) {
            init.intermediate.pending = Some(shared);
        }
        vec![Payload::Ke(KePayload { group, data: public })]
    }

    /// Our IKE_INTERMEDIATE answer went out: its key exchange's keys take effect (responder).
    pub(crate) fn intermediate_answered(&mut self, ctx: &mut Ctx<'_>) {
        let pending =
            self.keys.as_mut().and_then(|k| k.handshake.as_deref_mut()).and_then(|h| h.intermediate.pending.take());
        if let Some(shared) = pending
            && let Err(e) = self.rekey_with(ctx, &shared)
        {
            self.close(ctx, DownReason::Protocol(format!("IKE_INTERMEDIATE: {e}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxswan_wire::{Flags, IkeSpi};

    #[test]
    fn int_auth_octets_are_the_message_as_if_unencrypted() {
        let h = Header::new(IkeSpi([1; 8]), IkeSpi([2; 8]), ExchangeType::IKE_INTERMEDIATE, Flags::INITIATOR, 1);
        let plain = [0u8, 0, 0, 8, 0, 31, 0, 0];
        let octets = int_auth_octets(&h, PayloadType::KE, &plain).unwrap();
        let mut want = vec![1u8; 8];
        want.extend([2u8; 8]);
        // Next payload SK (46), version 2.0, IKE_INTERMEDIATE (43), I flag, message ID 1, length
        // 28 + 4 + 8.
        want.extend([46, 0x20, 43, 0x08, 0, 0, 0, 1, 0, 0, 0, 40]);
        // The Encrypted payload's header: first inner payload KE (34), no flags, length 4 + 8.
        want.extend([34, 0, 0, 12]);
        want.extend(plain);
        assert_eq!(octets, want);
    }
}
