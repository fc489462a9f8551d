//! The timers of one IKE SA, in one table indexed by an enum (quinn-proto's `TimerTable`): the next
//! wake-up is the table's minimum, and a timer that fired is cleared as it is taken. The CHILD SAs'
//! timers live in their records (`children`).

use std::time::Instant;

/// What an IKE SA waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The request in flight is due for retransmission, or given up (§2.1, §2.4).
    Retransmit,
    /// A responder's half-open SA that IKE_AUTH never completed is dropped (§2.6).
    HalfOpen,
    /// A closed SA stops answering retransmissions from its cache and is removed.
    Linger,
    /// Rekey the IKE SA (`rekey_time`, §2.8).
    IkeRekey,
    /// Reauthenticate (`reauth_time`, §2.8.3).
    Reauth,
    /// The hard end: neither rekeyed nor reauthenticated in time (`over_time`).
    IkeExpire,
    /// Nothing came from the peer for `dpd_delay`: check that it is alive (§2.4).
    Dpd,
    /// Behind a NAT: the next NAT keepalive (RFC 3948 §2.3).
    Keepalive,
    /// Ask again for the per-resource CHILD SAs refused with TEMPORARY_FAILURE (RFC 9611).
    Resources,
}

impl Timer {
    const ALL: [Timer; 9] = [
        Timer::Retransmit,
        Timer::HalfOpen,
        Timer::Linger,
        Timer::IkeRekey,
        Timer::Reauth,
        Timer::IkeExpire,
        Timer::Dpd,
        Timer::Keepalive,
        Timer::Resources,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One deadline per [`Timer`].
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable([Option<Instant>; Timer::ALL.len()]);

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.0.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.0.get_mut(timer.index()) {
            *slot = None;
        }
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0.get(timer.index()).copied().flatten()
    }

    /// Whether `timer` is due at `now`; a due timer is cleared (it fires once).
    pub(crate) fn take_due(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.get(timer).is_some_and(|at| at <= now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// Stops the IKE SA's lifetime timers (rekey, reauthentication, hard end).
    pub(crate) fn stop_lifetime(&mut self) {
        for t in [Timer::IkeRekey, Timer::Reauth, Timer::IkeExpire] {
            self.stop(t);
        }
    }

    /// Stops everything.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The earliest deadline.
    #[cfg(test)]
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn the_next_deadline_is_the_minimum_and_a_due_timer_fires_once() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::IkeRekey, t0 + Duration::from_secs(10));
        table.set(Timer::Retransmit, t0 + Duration::from_secs(2));
        assert_eq!(table.next(), Some(t0 + Duration::from_secs(2)));
        assert!(!table.take_due(Timer::IkeRekey, t0 + Duration::from_secs(9)));
        assert!(table.take_due(Timer::IkeRekey, t0 + Duration::from_secs(10)));
        assert!(!table.take_due(Timer::IkeRekey, t0 + Duration::from_secs(11)));
        table.stop(Timer::Retransmit);
        assert_eq!(table.next(), None);
    }
}
