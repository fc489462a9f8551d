//! The endpoint's view across the IKE SAs of one peer (a connection and the peer's identity: its
//! EAP identity when it has one, as strongSwan's, else its IKE identity): INITIAL_CONTACT forgets the
//! stale ones (RFC 7296 §2.4), the connection's `unique` policy replaces or keeps them, and a
//! reauthentication's responder holds
//! each new pair back while the pair it replaces, in the old IKE SA, still carries the traffic
//! (make before break: the peer may not have the new pair's keys before our answer reached it).
//! Looked up by an index, so nothing here walks every SA.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use super::Endpoint;
use crate::config::Unique;
use crate::event::{DownReason, Event, SaHandle};

/// The established SAs of one peer, in handle order: almost always one (two while one replaces the
/// other), held inline; a B-tree only where a configuration lets many share one identity. A gateway
/// keeps one of these per client.
#[derive(Debug)]
pub(super) enum PeerSas {
    One(SaHandle),
    Many(BTreeSet<SaHandle>),
}

impl PeerSas {
    fn insert(&mut self, h: SaHandle) {
        match self {
            Self::One(x) if *x == h => {}
            Self::One(x) => *self = Self::Many(BTreeSet::from([*x, h])),
            Self::Many(set) => {
                set.insert(h);
            }
        }
    }

    /// Removes `h`; whether none is left.
    fn remove(&mut self, h: SaHandle) -> bool {
        match self {
            Self::One(x) => *x == h,
            Self::Many(set) => {
                set.remove(&h);
                if let (Some(only), 1) = (set.first().copied(), set.len()) {
                    *self = Self::One(only);
                }
                set_is_empty(self)
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = SaHandle> + '_ {
        let (one, many) = match self {
            Self::One(x) => (Some(*x), None),
            Self::Many(set) => (None, Some(set.iter().copied())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

fn set_is_empty(s: &PeerSas) -> bool {
    matches!(s, PeerSas::Many(set) if set.is_empty())
}

impl Endpoint {
    /// Keeps the index of established SAs by (connection, peer identity) up to date for `h`.
    pub(super) fn index_peer(&mut self, h: SaHandle) {
        let key = self.sas.get(&h).filter(|s| s.is_established()).and_then(|s| s.core.peer_key());
        if self.peer_of.get(&h).map(|k| &**k) == key.as_ref() {
            return;
        }
        if let Some(old) = self.peer_of.remove(&h)
            && let Some(set) = self.by_peer.get_mut(&old)
            && set.remove(h)
        {
            self.by_peer.remove(&old);
        }
        if let Some(key) = key {
            let key = Arc::new(key);
            match self.by_peer.get_mut(&key) {
                Some(set) => set.insert(h),
                None => {
                    self.by_peer.insert(key.clone(), PeerSas::One(h));
                }
            }
            self.peer_of.insert(h, key);
        }
    }

    /// The other established SAs of `h`'s connection and peer.
    fn same_peer(&self, h: SaHandle) -> Vec<SaHandle> {
        let Some(key) = self.peer_of.get(&h) else { return Vec::new() };
        self.by_peer.get(key).map_or_else(Vec::new, |set| set.iter().filter(|o| *o != h).collect())
    }

    /// RFC 7296 §2.4: a peer that authenticated with INITIAL_CONTACT has restarted; our other IKE SAs
    /// of the same connection with the same identity are stale and go without a DELETE.
    pub(super) fn initial_contact(&mut self, now: Instant, h: SaHandle) {
        if !self.sas.get_mut(&h).is_some_and(|s| s.take_initial_contact()) {
            return;
        }
        // As strongSwan: every policy but `never` heeds it (`keep` and `replace` apply to a new SA
        // without INITIAL_CONTACT).
        if self.sas.get(&h).and_then(|s| s.core.peer.as_ref()).is_some_and(|p| p.unique == Unique::Never) {
            return;
        }
        self.index_peer(h);
        for o in self.same_peer(h) {
            let (mut ctx, sas) = self.ctx_parts(now);
            if let Some(sa) = sas.get_mut(&o) {
                sa.forget(&mut ctx, DownReason::PeerRestarted);
            }
            self.settle(now, o);
        }
    }

    /// The connection's `unique` policy (strongSwan's), once the responder's SA `h` is up: with
    /// `replace` the peer's older SAs are deleted; with `keep` the new one is, unless it comes from
    /// the address of the old one, where it is taken for a reauthentication (RFC 7296 §2.8.3), as
    /// strongSwan does.
    pub(super) fn uniqueness(&mut self, now: Instant, h: SaHandle) {
        let Some(sa) = self.sas.get_mut(&h) else { return };
        if !core::mem::take(&mut sa.core.just_established) || sa.core.initiator {
            return;
        }
        let policy = sa.core.peer.as_ref().map_or(Unique::No, |p| p.unique);
        let remote = sa.core.remote.ip();
        if matches!(policy, Unique::No | Unique::Never) {
            return;
        }
        self.index_peer(h);
        let others = self.same_peer(h);
        let doomed = match policy {
            Unique::Replace => others,
            Unique::Keep if others.iter().any(|o| self.sas.get(o).is_some_and(|s| s.core.remote.ip() != remote)) => {
                vec![h]
            }
            _ => Vec::new(),
        };
        let reason = if policy == Unique::Replace { DownReason::Replaced } else { DownReason::Duplicate };
        for d in doomed {
            let (mut ctx, sas) = self.ctx_parts(now);
            if let Some(sa) = sas.get_mut(&d) {
                sa.core.delete_reason = Some(Box::new(reason.clone()));
                sa.queue(&mut ctx, crate::sa::Job::DeleteIke);
            }
            self.settle(now, d);
        }
    }

    /// After `h` made pairs as a responder: each that has a sending twin (same child, same
    /// selectors) in an older SA of the same peer waits for that twin to go, or for the peer to send
    /// on it (RFC 7296 §2.8.3). The event that announced it is told so before anyone reads it.
    pub(super) fn hold_replaced_pairs(&mut self, h: SaHandle) {
        let fresh = self.sas.get_mut(&h).map(|s| s.take_fresh_pairs()).unwrap_or_default();
        if fresh.is_empty() {
            return;
        }
        self.index_peer(h);
        let new_children = self.sas.get(&h).map(|s| s.children()).unwrap_or_default();
        let older: Vec<_> =
            self.same_peer(h).iter().filter_map(|o| self.sas.get(o)).flat_map(|s| s.children()).collect();
        for c in new_children.iter().filter(|c| fresh.contains(&c.spi_in) && c.outbound) {
            let twin = older
                .iter()
                .find(|t| t.outbound && t.name == c.name && t.local_ts == c.local_ts && t.remote_ts == c.remote_ts);
            let Some(twin) = twin else { continue };
            if !self.sas.get_mut(&h).is_some_and(|s| s.core.hold(c.spi_in)) {
                continue;
            }
            for e in self.out.events.iter_mut() {
                if let Event::ChildSaReady { sa, child } = e
                    && *sa == h
                    && child.spi_in == c.spi_in
                {
                    child.outbound = false;
                }
            }
            self.held.insert(twin.spi_in, c.spi_in);
        }
    }

    /// The pairs held for twins that are gone now (no SA holds their SPI) start sending, announced
    /// right before the twin's deletion so that a data plane acting on the events in order always
    /// has a pair to send on.
    pub(super) fn release_held(&mut self, gone: &[u32]) {
        for twin in gone {
            let Some(spi) = self.held.remove(twin) else { continue };
            let holder = self.esp_spis.get(&spi).copied();
            let Some(event) = holder.and_then(|h| self.sas.get_mut(&h)).and_then(|s| s.core.release(spi)) else {
                continue;
            };
            let deleted = self
                .out
                .events
                .iter()
                .position(|e| matches!(e, Event::ChildSaDeleted { spi_in, .. } if spi_in == twin));
            match deleted {
                Some(i) => self.out.events.insert(i, event),
                None => self.out.events.push_back(event),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_sas_keep_handle_order_and_report_when_empty() {
        let (a, b, c) = (SaHandle(3), SaHandle(1), SaHandle(2));
        let mut s = PeerSas::One(a);
        s.insert(a);
        assert!(matches!(s, PeerSas::One(x) if x == a), "the same handle twice is one");
        s.insert(b);
        s.insert(c);
        assert_eq!(s.iter().collect::<Vec<_>>(), [b, c, a]);
        assert!(!s.remove(a));
        assert!(!s.remove(b));
        assert!(matches!(s, PeerSas::One(x) if x == c), "back inline with one left");
        assert!(!s.remove(a), "a handle not held changes nothing");
        assert!(s.remove(c));
    }
}
