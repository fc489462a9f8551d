//! The CHILD SAs of one IKE SA: one record per pair, holding what the data plane was given and the
//! pair's own state (its rekey and hard-lifetime timers, whether it waits to start sending, a
//! crossing rekey), so that nothing about a pair can outlive it or be looked up in a parallel list.

use core::net::SocketAddr;
use std::time::Instant;

use oxswan_crypto::Secret;
use oxswan_crypto::keys::ChildSuite;
use oxswan_wire::ts::TrafficSelector;

use crate::child::Mode;
use crate::event::ChildSa;
use crate::sa::Transport;

/// What the data plane was given for a pair ([`crate::Event::ChildSaReady`]) but its keys. The
/// engine keeps no copy of those: they went to the data plane with the event, and a rekey derives
/// the new pair's keys from SK_d and fresh nonces (RFC 7296 §2.17), never from the old pair's.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub name: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub suite: ChildSuite,
    pub esn: bool,
    pub proposal: Box<str>,
    pub local_ts: Box<[TrafficSelector]>,
    pub remote_ts: Box<[TrafficSelector]>,
    pub mode: Mode,
    pub encap: bool,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub replaces: Option<u32>,
    pub outbound: bool,
    pub resource: Option<crate::event::PerResource>,
}

impl Pair {
    /// The pair of `c`, without its keys.
    fn of(c: &ChildSa) -> Self {
        Self {
            name: c.name.clone(),
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            suite: c.suite,
            esn: c.esn,
            proposal: c.proposal.as_str().into(),
            local_ts: c.local_ts.as_slice().into(),
            remote_ts: c.remote_ts.as_slice().into(),
            mode: c.mode,
            encap: c.encap,
            transport: c.transport,
            local: c.local,
            remote: c.remote,
            replaces: c.replaces,
            outbound: c.outbound,
            resource: c.resource,
        }
    }

    /// The data plane's view of the pair, without keys (empty [`Secret`]s).
    pub(crate) fn to_child_sa(&self) -> ChildSa {
        ChildSa {
            name: self.name.clone(),
            spi_in: self.spi_in,
            spi_out: self.spi_out,
            suite: self.suite,
            esn: self.esn,
            proposal: self.proposal.to_string(),
            encr_in: Secret::default(),
            integ_in: Secret::default(),
            encr_out: Secret::default(),
            integ_out: Secret::default(),
            local_ts: self.local_ts.to_vec(),
            remote_ts: self.remote_ts.to_vec(),
            mode: self.mode,
            encap: self.encap,
            transport: self.transport,
            local: self.local,
            remote: self.remote,
            replaces: self.replaces,
            outbound: self.outbound,
            resource: self.resource,
        }
    }
}

/// One CHILD SA pair.
#[derive(Debug, Clone)]
pub(crate) struct ChildRecord {
    /// What the data plane was given, but the keys.
    pub sa: Pair,
    /// When to rekey it (`rekey_time` less jitter); `None` while a rekey is queued or in flight, or
    /// when it is never rekeyed by time.
    pub rekey_at: Option<Instant>,
    /// When it ends if not replaced (`life_time`).
    pub expire_at: Option<Instant>,
    /// This pair answers the peer's rekey of the pair with this inbound SPI: it starts sending once
    /// that one is deleted (RFC 7296 §2.8, make before break).
    pub successor_of: Option<u32>,
    /// The peer rekeyed this pair while our own rekey of it was in flight (§2.8.1): the lowest nonce
    /// of the peer's exchange, compared with ours when our answer comes.
    pub collision: Option<Box<[u8]>>,
    /// This pair of a reauthentication's responder waits to send until the pair it replaces, in
    /// the IKE SA being replaced, goes (the endpoint watches that one), or the peer sends on it.
    pub held: bool,
    /// What the data plane counted at its last report.
    pub usage: crate::volume::ChildUsage,
    /// What the volume limits asked for already (each once, a rekey before a delete).
    pub volume_asked: Option<crate::volume::VolumeAction>,
}

impl ChildRecord {
    /// The record of a pair handed to the data plane; its keys are not kept.
    pub(crate) fn new(sa: &ChildSa) -> Self {
        Self {
            sa: Pair::of(sa),
            rekey_at: None,
            expire_at: None,
            successor_of: None,
            collision: None,
            held: false,
            usage: Default::default(),
            volume_asked: None,
        }
    }

    /// The record's earliest deadline.
    fn next(&self) -> Option<Instant> {
        [self.rekey_at, self.expire_at].into_iter().flatten().min()
    }
}

/// The pairs, in the order they were made.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChildTable(Vec<ChildRecord>);

impl ChildTable {
    pub(crate) fn push(&mut self, record: ChildRecord) {
        // Most IKE SAs hold one pair, or two for a moment while one replaces the other: room for
        // exactly those rather than the four a first `push` reserves.
        self.0.reserve_exact(1);
        self.0.push(record);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ChildRecord> {
        self.0.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut ChildRecord> {
        self.0.iter_mut()
    }

    /// By our inbound SPI.
    pub(crate) fn get(&self, spi_in: u32) -> Option<&ChildRecord> {
        self.0.iter().find(|c| c.sa.spi_in == spi_in)
    }

    pub(crate) fn get_mut(&mut self, spi_in: u32) -> Option<&mut ChildRecord> {
        self.0.iter_mut().find(|c| c.sa.spi_in == spi_in)
    }

    /// By the peer's inbound SPI (our outbound), as DELETE and REKEY_SA name them (§3.11, §1.3.3).
    pub(crate) fn by_outbound(&self, spi_out: u32) -> Option<&ChildRecord> {
        self.0.iter().find(|c| c.sa.spi_out == spi_out)
    }

    /// Removes the pair with this inbound SPI.
    pub(crate) fn remove(&mut self, spi_in: u32) -> Option<ChildRecord> {
        let i = self.0.iter().position(|c| c.sa.spi_in == spi_in)?;
        let gone = self.0.remove(i);
        self.0.shrink_to_fit();
        Some(gone)
    }

    /// Whether a pair already answers the peer's rekey of `old`.
    pub(crate) fn has_successor(&self, old: u32) -> bool {
        self.0.iter().any(|c| c.successor_of == Some(old))
    }

    /// Takes every record (for the IKE SA that replaces this one, or to report them gone).
    pub(crate) fn take(&mut self) -> Vec<ChildRecord> {
        core::mem::take(&mut self.0)
    }

    pub(crate) fn extend(&mut self, records: impl IntoIterator<Item = ChildRecord>) {
        self.0.extend(records);
        self.0.shrink_to_fit();
    }

    /// The inbound SPIs held.
    pub(crate) fn inbound_spis(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|c| c.sa.spi_in)
    }

    /// The earliest deadline of any pair.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().filter_map(ChildRecord::next).min()
    }

    /// The data plane's view of the pairs.
    pub(crate) fn snapshot(&self) -> Vec<ChildSa> {
        self.0.iter().map(|c| c.sa.to_child_sa()).collect()
    }
}
