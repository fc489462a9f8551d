//! What the data plane's counters mean for the protocol: volume limits rekey or delete a pair
//! (strongSwan's `rekey_bytes`, `life_packets`, ..., and RFC 4303 §3.3.3's end of the sequence
//! space), traffic from the peer shows it alive (§2.4, dead peer detection), and the first packet
//! the peer sends on a new pair shows it installed that pair, so we may send on it too (make before
//! break, §2.8). One rule for each, here, instead of copies in the daemon and the data plane.

use crate::event::Event;
use crate::sa::{Ctx, Job, NAT_KEEPALIVE, SaCore, State, Timer, later};
use crate::volume::{ChildUsage, VolumeAction, volume_step};

impl SaCore {
    /// The counters of the pair with inbound SPI `spi_in`.
    pub(crate) fn handle_usage(&mut self, ctx: &mut Ctx<'_>, spi_in: u32, usage: ChildUsage) {
        let limits = self.children.get(spi_in).and_then(|c| {
            let peer = self.peer.as_ref()?;
            peer.children.iter().find(|cfg| cfg.name == c.sa.name).map(|cfg| cfg.volume)
        });
        let Some(record) = self.children.get_mut(spi_in) else { return };
        let heard = usage.packets_in > record.usage.packets_in;
        record.usage = usage;
        // The peer sends on the new pair: it has it, and so may we.
        let start_sending = heard && !record.sa.outbound && (record.successor_of.is_some() || record.held);
        if start_sending {
            record.successor_of = None;
            record.held = false;
            record.sa.outbound = true;
            ctx.out.events.push_back(Event::ChildSaOutbound { sa: self.handle, spi_in });
        }
        let action = limits.and_then(|l| volume_step(&l, &usage.volume(), record.volume_asked));
        if let Some(action) = action {
            record.volume_asked = Some(action);
            ctx.out.events.push_back(Event::VolumeLimit { sa: self.handle, spi_in, action, usage });
            let job = match action {
                VolumeAction::Rekey => Job::RekeyChild(spi_in),
                VolumeAction::Delete => Job::DeleteChild(spi_in),
            };
            self.queue(ctx, job);
        }
        if heard {
            self.heard_from_peer(ctx);
        }
    }

    /// The peer showed it is alive (an authentic message, or ESP): the liveness check waits another
    /// `dpd_delay`.
    pub(crate) fn heard_from_peer(&mut self, ctx: &Ctx<'_>) {
        if self.state != State::Established {
            return;
        }
        if let Some(delay) = self.peer.as_ref().and_then(|p| p.dpd_delay) {
            self.timers.set(Timer::Dpd, later(ctx.now, delay));
        }
        // RFC 3948 §2.3: behind a NAT, keepalives hold the mapping open from the moment the SA is up.
        // Not over TCP (RFC 9329 §6): the stream's own traffic and TCP keep the mapping.
        let udp = self.transport == crate::sa::Transport::Udp;
        if let Some(every) = ctx.keepalive.filter(|_| self.nat.local_behind_nat && udp)
            && self.timers.get(Timer::Keepalive).is_none()
        {
            self.timers.set(Timer::Keepalive, later(ctx.now, every));
        }
    }

    /// Sends the NAT keepalive when it is due, and arms the next.
    pub(crate) fn keepalive_timer(&mut self, ctx: &mut Ctx<'_>) {
        let Some(every) = ctx.keepalive else { return };
        if self.timers.take_due(Timer::Keepalive, ctx.now) {
            ctx.out.transmits.push_back(self.transmit(NAT_KEEPALIVE.to_vec()));
            self.timers.set(Timer::Keepalive, later(ctx.now, every));
        }
    }

    /// §2.4: nothing came from the peer for `dpd_delay`: an empty INFORMATIONAL asks whether it is
    /// alive, and its retransmissions run out if it is not. A request of ours already in flight
    /// does the same. Armed again by what comes from the peer.
    pub(crate) fn dpd_timer(&mut self, ctx: &mut Ctx<'_>, idle: bool) {
        if self.timers.take_due(Timer::Dpd, ctx.now) && idle {
            self.queue(ctx, Job::Liveness);
        }
    }

    /// Holds the pair `spi_in` back until the pair it replaces, in the SA being reauthenticated,
    /// goes or the peer sends on it (§2.8.3, make before break: until then the peer may not have its
    /// keys).
    pub(crate) fn hold(&mut self, spi_in: u32) -> bool {
        let Some(c) = self.children.get_mut(spi_in) else { return false };
        c.sa.outbound = false;
        c.held = true;
        true
    }

    /// The pair a held pair waited for is gone: send on it.
    pub(crate) fn release(&mut self, spi_in: u32) -> Option<Event> {
        let c = self.children.get_mut(spi_in)?;
        if !core::mem::take(&mut c.held) {
            return None;
        }
        c.sa.outbound = true;
        Some(Event::ChildSaOutbound { sa: self.handle, spi_in })
    }
}
