//! The task manager of an IKE SA: the queue of exchanges waiting their turn, the request in flight
//! and its retransmission (RFC 7296 §2.1, §2.3, §2.4).

use oxswan_wire::notify::DeletePayload;
use oxswan_wire::{ExchangeType, Payload};

use super::{Ctx, IkeSa, Pending, State, Timer, Transmit, later};
use crate::event::DownReason;
use crate::task::{InFlight, Job};

impl IkeSa {
    /// Queues an exchange; it is sent when no other request is in flight (window size 1).
    pub fn queue(&mut self, ctx: &mut Ctx<'_>, job: Job) {
        match self.state {
            State::Established => {
                self.queue.push_back(job);
                self.send_next(ctx);
            }
            State::Closed => {}
            // Deleting an SA that is not up yet: there is nothing to tell the peer with protection,
            // so forget it (strongSwan does the same).
            _ if job == Job::DeleteIke => self.close(ctx, DownReason::LocalDeleted),
            _ => {}
        }
    }

    /// The request in flight, taken (its answer came, or it is abandoned), with its timer.
    pub(crate) fn take_pending(&mut self) -> Option<Pending> {
        self.timers.stop(Timer::Retransmit);
        self.pending.take()
    }

    /// Whether the request in flight, or one queued, is `job`.
    pub(crate) fn has_job(&self, job: Job) -> bool {
        let in_flight = match (self.pending.as_ref().map(|p| &p.exchange), job) {
            (Some(InFlight::DeleteIke), Job::DeleteIke) | (Some(InFlight::RekeyIke(_)), Job::RekeyIke) => true,
            (Some(InFlight::DeleteChild(a)), Job::DeleteChild(b)) => *a == b,
            _ => false,
        };
        in_flight || self.queue.contains(&job)
    }

    /// Starts the next queued exchange, if none is in flight. A job whose object is gone meanwhile
    /// is skipped.
    pub(crate) fn send_next(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending.is_some() || !self.is_established() {
            return;
        }
        while let Some(job) = self.queue.pop_front() {
            let info = ExchangeType::INFORMATIONAL;
            let (exchange_type, payloads, in_flight) = match job {
                Job::DeleteIke => (info, vec![Payload::Delete(DeletePayload::ike())], InFlight::DeleteIke),
                Job::DeleteChild(spi) => {
                    if self.children.get(spi).is_none() {
                        continue;
                    }
                    (info, vec![Payload::Delete(DeletePayload::esp(&[spi]))], InFlight::DeleteChild(spi))
                }
                Job::DeleteUninstalled(spi) => {
                    (info, vec![Payload::Delete(DeletePayload::esp(&[spi]))], InFlight::DeleteUninstalled)
                }
                Job::Liveness => (info, Vec::new(), InFlight::Liveness),
                Job::RekeyIke => match self.ike_rekey_request(ctx, None) {
                    Some((payloads, offer)) => (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::RekeyIke(offer)),
                    None => continue,
                },
                Job::NewChild(index) => match self.additional_child_request(ctx, index, None) {
                    Some((payloads, offer)) => (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::NewChild(offer)),
                    None => continue,
                },
                Job::RekeyChild(old) => match self.rekey_request(ctx, old, None) {
                    Some((payloads, offer)) => (ExchangeType::CREATE_CHILD_SA, payloads, InFlight::RekeyChild(offer)),
                    None => continue,
                },
            };
            self.send_protected(ctx, exchange_type, &payloads, in_flight);
            return;
        }
    }

    /// Retransmits the request in flight when its time has come, or gives the peer up.
    pub(crate) fn retransmit_due(&mut self, ctx: &mut Ctx<'_>) {
        if self.timers.get(Timer::Retransmit).is_none_or(|at| at > ctx.now) {
            return;
        }
        let retransmit = self.retransmit();
        let Some(p) = self.pending.as_mut() else {
            self.timers.stop(Timer::Retransmit);
            return;
        };
        if p.sent > retransmit.tries {
            // §2.4: after the retransmissions are exhausted the peer is considered dead.
            let deleting = matches!(p.exchange, InFlight::DeleteIke);
            self.take_pending();
            self.close(ctx, if deleting { DownReason::LocalDeleted } else { DownReason::Timeout });
            return;
        }
        for d in &p.datagrams {
            ctx.out.transmits.push_back(Transmit { local: self.local, remote: self.remote, payload: d.clone() });
        }
        let next = later(ctx.now, retransmit.wait(p.sent));
        p.sent = p.sent.saturating_add(1);
        self.timers.set(Timer::Retransmit, next);
    }
}
