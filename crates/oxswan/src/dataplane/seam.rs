//! The user-space data plane behind the daemon's [`Datapath`] seam.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use oxswan_esp::{InboundSa, OutboundSa, SaParams, Selectors};
use oxswan_ike::volume::ChildUsage;
use oxswan_ike::{ChildSa, Transport};

use super::{ChildEntry, DataPlane, EspPath, SETTLE_LIMIT, Trap};
use crate::datapath::{Datapath, DatapathStats, PairCounters, esp_destination};

impl Datapath for DataPlane {
    fn install(&self, name: String, c: &ChildSa) -> anyhow::Result<()> {
        let params = |spi, encr: &oxswan_crypto::Secret, integ: &oxswan_crypto::Secret| SaParams {
            spi,
            suite: c.suite,
            esn: c.esn,
            encr_key: encr.clone(),
            integ_key: integ.clone(),
        };
        let out = OutboundSa::new(&self.provider, &params(c.spi_out, &c.encr_out, &c.integ_out))
            .map_err(|e| anyhow::anyhow!("outbound SA: {e}"))?;
        if let Some(start) = self.sequence_start {
            out.skip_sequence_to(start);
        }
        let inb = InboundSa::new(&self.provider, &params(c.spi_in, &c.encr_in, &c.integ_in), self.replay_window)
            .map_err(|e| anyhow::anyhow!("inbound SA: {e}"))?;
        let selectors = Selectors { local: c.local_ts.clone(), remote: c.remote_ts.clone() };
        // Over TCP, ESP goes into the IKE SA's stream (RFC 9329 §3.2), to the peer's end of it.
        let remote = if c.transport == Transport::Tcp { c.remote } else { esp_destination(c.remote) };
        let path = EspPath { local: c.local, remote, transport: c.transport };
        let mut entry = ChildEntry::new(name, out, inb, selectors, path, c.outbound);
        entry.resource = c.resource.and_then(oxswan_ike::PerResource::number);
        // What fits from the first packet on: the kernel's path MTU to the peer now.
        if let Ok(mtu) = self.mtu_probe.path_mtu(path.local.ip(), path.remote) {
            entry.set_path_mtu(mtu);
        }
        tracing::debug!(
            target: "dataplane",
            "{}: path MTU {}, inner packets up to {} octets",
            entry.name,
            entry.path_mtu(),
            entry.inner_mtu()
        );
        self.tables.install(entry).context("install")?;
        self.sealing.tables_changed();
        Ok(())
    }

    fn release_waiting(&self, spi_in: u32) {
        if let Some(entry) = self.tables.load().by_spi(spi_in).cloned() {
            self.deliver_early(&entry);
        }
    }

    fn set_outbound(&self, spi_in: u32) {
        self.tables.activate(spi_in);
        self.sealing.tables_changed();
    }

    fn update_path(&self, spi_in: u32, local: SocketAddr, remote: SocketAddr) -> bool {
        self.tables.update_path(spi_in, local, remote)
    }

    fn settle_sends(&self) {
        if self.sealing.take_changed() && !self.sealing.wait_out(SETTLE_LIMIT) {
            tracing::debug!(target: "dataplane", "a batch took over {SETTLE_LIMIT:?} to send");
        }
    }

    fn remove(&self, spi_in: u32) -> Option<PairCounters> {
        let gone = self.tables.remove(spi_in)?;
        self.sealing.tables_changed();
        Some(counters_of(&gone))
    }

    fn moved_counters(&self) -> Vec<(u32, PairCounters)> {
        self.moved.collect(&self.tables).iter().map(|e| (e.inb.spi(), counters_of(e))).collect()
    }

    fn counters(&self) -> Vec<(u32, PairCounters)> {
        self.tables.snapshot().iter().map(|e| (e.inb.spi(), counters_of(e))).collect()
    }

    fn set_traps(&self, traps: Vec<(String, Selectors)>) {
        let traps = traps
            .into_iter()
            .map(|(name, selectors)| Arc::new(Trap { name, selectors, fired: AtomicBool::new(false) }))
            .collect();
        *self.traps.write().unwrap_or_else(std::sync::PoisonError::into_inner) = traps;
    }

    fn rearm_trap(&self, name: &str) {
        let traps = self.traps.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = traps.iter().find(|t| t.name == name) {
            t.fired.store(false, Ordering::Relaxed);
        }
    }

    fn stats(&self) -> DatapathStats {
        DatapathStats {
            keepalives_received: self.keepalives.load(Ordering::Relaxed),
            esp_unknown_spi: self.unknown_spi.load(Ordering::Relaxed),
            too_big: self.too_big.load(Ordering::Relaxed),
            icmp_too_big_sent: self.icmp_sent.load(Ordering::Relaxed),
        }
    }

    fn refresh_mtu(&self, now: std::time::Instant) {
        DataPlane::refresh_mtu(self, now);
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A pair's counters, read without stopping the packet threads.
fn counters_of(e: &ChildEntry) -> PairCounters {
    let (i, o) = (&e.inb.counters, &e.out.counters);
    let usage = ChildUsage {
        bytes_in: i.bytes.load(Ordering::Relaxed),
        packets_in: i.packets.load(Ordering::Relaxed),
        bytes_out: o.bytes.load(Ordering::Relaxed),
        packets_out: o.packets.load(Ordering::Relaxed),
        seq: e.out.sequence_number(),
        seq_limit: e.out.sequence_limit(),
    };
    PairCounters {
        usage,
        replayed: i.replayed.load(Ordering::Relaxed),
        integrity_failed: i.integrity_failed.load(Ordering::Relaxed),
        malformed: i.malformed.load(Ordering::Relaxed),
        outside_selectors: e.outside.load(Ordering::Relaxed),
        path_mtu: e.path_mtu(),
        inner_mtu: e.inner_mtu(),
    }
}
